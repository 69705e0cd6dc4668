//! Text generation with the T5 decoder: greedy search and beam search, batched over padded inputs,
//! reproducing transformers' `generate` (4.57) step for step so that the same settings give the
//! same tokens: its logits processors, its vectorized beam search with the early-stopping
//! heuristic, and its length penalty.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::lora::Adapter;
use crate::model::t5::{self, T5};
use crate::task::Cancel;

/// When beam search may stop, as transformers' `early_stopping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EarlyStopping {
    /// Stop when the best running beam can no longer beat the finished ones at the current length.
    Heuristic,
    /// Stop as soon as `num_beams` hypotheses are finished.
    Always,
    /// Keep searching until no improvement is possible at any length.
    Never,
}

/// Decoding settings; the defaults are transformers' except `max_new_tokens`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    pub min_new_tokens: usize,
    pub num_beams: usize,
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    pub no_repeat_ngram_size: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 200,
            min_new_tokens: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            no_repeat_ngram_size: 0,
        }
    }
}

impl GenerationConfig {
    pub fn validate(&self) -> Result<()> {
        if self.max_new_tokens == 0 {
            return Err(Error::settings("--max-new-tokens must be at least 1"));
        }
        if self.num_beams == 0 {
            return Err(Error::settings("--num-beams must be at least 1"));
        }
        if self.min_new_tokens > self.max_new_tokens {
            return Err(Error::settings(
                "--min-new-tokens cannot exceed --max-new-tokens",
            ));
        }
        if !self.length_penalty.is_finite() {
            return Err(Error::settings("--length-penalty must be a finite number"));
        }
        Ok(())
    }
}

/// About how many bytes generating for `rows` prompts of up to `source_tokens` takes beyond the
/// model's weights: each hypothesis (rows times beams) keeps every decoder layer's keys and values
/// of the prompt and of its own tokens, and scores the whole vocabulary at each step.
pub fn memory_needed(
    model: &T5,
    rows: usize,
    source_tokens: usize,
    config: &GenerationConfig,
) -> f64 {
    let c = model.config();
    let hypotheses = rows as f64 * config.num_beams as f64;
    let inner = (c.num_heads * c.d_kv) as f64;
    let per_layer = 2.0 * (source_tokens as f64 + config.max_new_tokens as f64 + 1.0) * inner;
    let per_hypothesis = c.decoder_layers() as f64 * per_layer + 4.0 * c.vocab_size as f64;
    let encoder = rows as f64 * source_tokens as f64 * (c.d_model.max(c.d_ff) as f64) * 4.0;
    4.0 * (hypotheses * per_hypothesis + encoder)
}

/// transformers' masking value for scores that must never be chosen (finished or impossible beams).
const NEG_LARGE: f32 = -1.0e9;

/// Generates a continuation for every row of a padded batch; returns the new tokens of each row
/// (the start token excluded, the end-of-sequence token kept when one was produced).
pub fn generate(
    model: &T5,
    adapter: Option<&Adapter>,
    input_ids: &Tensor,
    attention_mask: &Tensor,
    config: &GenerationConfig,
    cancel: &Cancel,
) -> Result<Vec<Vec<u32>>> {
    config.validate()?;
    let encoded = model.encode(input_ids, attention_mask, adapter)?;
    if config.num_beams == 1 {
        greedy(model, adapter, &encoded, config, cancel)
    } else {
        beam_search(model, adapter, &encoded, config, cancel)
    }
}

/// The rules that forbid tokens at a step (`no_repeat_ngram_size`, `min_new_tokens`).
struct Processors<'a> {
    config: &'a GenerationConfig,
    eos: u32,
}

impl Processors<'_> {
    /// Sets forbidden entries of `scores` to minus infinity; `sequence` includes the start token.
    fn apply(&self, sequence: &[u32], scores: &mut [f32]) {
        let n = self.config.no_repeat_ngram_size;
        if n > 0 && sequence.len() + 1 >= n {
            let prefix = &sequence[sequence.len() + 1 - n..];
            for window in sequence.windows(n) {
                if &window[..n - 1] == prefix
                    && let Some(score) = scores.get_mut(window[n - 1] as usize)
                {
                    *score = f32::NEG_INFINITY;
                }
            }
        }
        if sequence.len() - 1 < self.config.min_new_tokens
            && let Some(score) = scores.get_mut(self.eos as usize)
        {
            *score = f32::NEG_INFINITY;
        }
    }
}

fn logits_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t5::last_position(logits)?.to_vec2::<f32>()?)
}

fn greedy(
    model: &T5,
    adapter: Option<&Adapter>,
    encoded: &t5::Encoded,
    config: &GenerationConfig,
    cancel: &Cancel,
) -> Result<Vec<Vec<u32>>> {
    let cfg = model.config();
    let batch = encoded.hidden.dim(0)?;
    let processors = Processors {
        config,
        eos: cfg.eos_token_id,
    };
    let start = cfg.decoder_start();
    let mut sequences: Vec<Vec<u32>> = vec![vec![start]; batch];
    // Rows still generating; finished rows leave the batch, which changes nothing for the others.
    let mut active: Vec<usize> = (0..batch).collect();
    let mut state = model.start_decoding(encoded, adapter)?;
    for _ in 0..config.max_new_tokens {
        cancel.check()?;
        let last: Vec<u32> = active
            .iter()
            .map(|&row| *sequences[row].last().unwrap_or(&start))
            .collect();
        let tokens = Tensor::from_vec(last, (active.len(), 1), model.device())?;
        let rows = logits_rows(&model.decode(&tokens, &mut state, adapter)?)?;
        let mut still_active = Vec::with_capacity(active.len());
        for (position, (row, mut scores)) in active.iter().copied().zip(rows).enumerate() {
            processors.apply(&sequences[row], &mut scores);
            let next = argmax(&scores);
            sequences[row].push(next);
            if next != cfg.eos_token_id {
                still_active.push((position, row));
            }
        }
        if still_active.is_empty() {
            break;
        }
        if still_active.len() != active.len() {
            let keep: Vec<u32> = still_active
                .iter()
                .map(|&(position, _)| position as u32)
                .collect();
            state.select(&keep)?;
        }
        active = still_active.into_iter().map(|(_, row)| row).collect();
    }
    Ok(sequences.into_iter().map(|mut s| s.split_off(1)).collect())
}

/// Index of the largest value, the first one on ties (as `torch.argmax`).
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (index, &value) in values.iter().enumerate() {
        if value > values[best] {
            best = index;
        }
    }
    best as u32
}

fn log_softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = values.iter().map(|v| (v - max).exp()).sum();
    let log_sum = sum.ln();
    for value in values.iter_mut() {
        *value = *value - max - log_sum;
    }
}

/// Indices of the `k` largest values, best first (ties: lower index first).
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let k = k.min(values.len());
    let mut indices: Vec<usize> = (0..values.len()).collect();
    let order = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    if k < indices.len() {
        indices.select_nth_unstable_by(k, order);
        indices.truncate(k);
    }
    indices.sort_by(order);
    indices
}

/// A hypothesis: its tokens (start token first) and its score.
#[derive(Debug, Clone)]
struct Hypothesis {
    tokens: Vec<u32>,
    score: f32,
    finished: bool,
}

/// Beam search state of one input.
struct BeamItem {
    running: Vec<Hypothesis>,
    finished: Vec<Hypothesis>,
    early_stop_unsatisfied: bool,
}

fn beam_search(
    model: &T5,
    adapter: Option<&Adapter>,
    encoded: &t5::Encoded,
    config: &GenerationConfig,
    cancel: &Cancel,
) -> Result<Vec<Vec<u32>>> {
    let cfg = model.config();
    let beams = config.num_beams;
    let batch = encoded.hidden.dim(0)?;
    let vocab = cfg.vocab_size;
    let eos = cfg.eos_token_id;
    let start = cfg.decoder_start();
    let processors = Processors { config, eos };
    let prompt_len = 1usize;
    let max_length = prompt_len + config.max_new_tokens;
    let keep = 2 * beams;
    let penalty = config.length_penalty;

    let mut items: Vec<BeamItem> = (0..batch)
        .map(|_| BeamItem {
            running: (0..beams)
                .map(|beam| Hypothesis {
                    tokens: vec![start],
                    score: if beam == 0 { 0.0 } else { NEG_LARGE },
                    finished: false,
                })
                .collect(),
            finished: (0..beams)
                .map(|_| Hypothesis {
                    tokens: Vec::new(),
                    score: NEG_LARGE,
                    finished: false,
                })
                .collect(),
            early_stop_unsatisfied: true,
        })
        .collect();

    let expanded = encoded.repeat_rows(beams)?;
    let mut state = model.start_decoding(&expanded, adapter)?;
    let mut cur_len = prompt_len;
    loop {
        cancel.check()?;
        let last: Vec<u32> = items
            .iter()
            .flat_map(|item| {
                item.running
                    .iter()
                    .map(|h| *h.tokens.last().unwrap_or(&start))
            })
            .collect();
        let tokens = Tensor::from_vec(last, (batch * beams, 1), model.device())?;
        let rows = logits_rows(&model.decode(&tokens, &mut state, adapter)?)?;

        let mut reorder = Vec::with_capacity(batch * beams);
        let mut all_hit_stop = true;
        for (item_index, item) in items.iter_mut().enumerate() {
            let item_rows = &rows[item_index * beams..(item_index + 1) * beams];
            let mut accumulated = Vec::with_capacity(beams * vocab);
            for (hypothesis, row) in item.running.iter().zip(item_rows) {
                let mut scores = row.clone();
                scores.resize(vocab, f32::NEG_INFINITY);
                log_softmax(&mut scores);
                processors.apply(&hypothesis.tokens, &mut scores);
                accumulated.extend(scores.iter().map(|s| s + hypothesis.score));
            }
            let candidates: Vec<(usize, u32, f32, bool)> = top_k(&accumulated, keep)
                .into_iter()
                .map(|index| {
                    let (beam, token) = (index / vocab, (index % vocab) as u32);
                    let hits_stop = token == eos || cur_len + 1 >= max_length;
                    (beam, token, accumulated[index], hits_stop)
                })
                .collect();
            all_hit_stop &= candidates.iter().all(|c| c.3);

            // The best candidates that did not stop keep running.
            let running_scores: Vec<f32> = candidates
                .iter()
                .map(|&(_, _, score, hits)| if hits { score + NEG_LARGE } else { score })
                .collect();
            let next_running: Vec<Hypothesis> = top_k(&running_scores, beams)
                .into_iter()
                .map(|i| {
                    let (beam, token, _, _) = candidates[i];
                    reorder.push((item_index * beams + beam) as u32);
                    let mut tokens = item.running[beam].tokens.clone();
                    tokens.push(token);
                    Hypothesis {
                        tokens,
                        score: running_scores[i],
                        finished: false,
                    }
                })
                .collect();

            // The best `beams` candidates that stopped compete with the finished hypotheses.
            let length_factor = ((cur_len + 1 - prompt_len) as f64).powf(penalty as f64) as f32;
            let full = item.finished.iter().all(|h| h.finished)
                && config.early_stopping == EarlyStopping::Always;
            let mut merged: Vec<Hypothesis> = item.finished.clone();
            for (rank, &(beam, token, score, hits)) in candidates.iter().enumerate() {
                let just_finished = hits && rank < beams;
                let mut score = score / length_factor;
                if full {
                    score += NEG_LARGE;
                }
                if !item.early_stop_unsatisfied {
                    score += NEG_LARGE;
                }
                if !just_finished {
                    score += NEG_LARGE;
                }
                let mut tokens = item.running[beam].tokens.clone();
                tokens.push(token);
                merged.push(Hypothesis {
                    tokens,
                    score,
                    finished: just_finished,
                });
            }
            let merged_scores: Vec<f32> = merged.iter().map(|h| h.score).collect();
            item.finished = top_k(&merged_scores, beams)
                .into_iter()
                .map(|i| merged[i].clone())
                .collect();
            item.running = next_running;
        }
        state.select(&reorder)?;
        cur_len += 1;

        for item in &mut items {
            let best_length = if config.early_stopping == EarlyStopping::Never && penalty > 0.0 {
                max_length - prompt_len
            } else {
                cur_len - prompt_len
            };
            let best_possible =
                item.running[0].score / ((best_length as f64).powf(penalty as f64) as f32);
            let worst_finished = item
                .finished
                .iter()
                .map(|h| h.score)
                .fold(f32::INFINITY, f32::min);
            let improvable = item.finished.iter().any(|h| {
                best_possible
                    > if h.finished {
                        worst_finished
                    } else {
                        NEG_LARGE
                    }
            });
            item.early_stop_unsatisfied &= improvable;
        }
        let improvement_possible = items.iter().any(|item| item.early_stop_unsatisfied);
        let all_finished = items
            .iter()
            .all(|item| item.finished.iter().all(|h| h.finished));
        let open_beam = !(all_finished && config.early_stopping == EarlyStopping::Always);
        if !(improvement_possible && open_beam && !all_hit_stop) {
            break;
        }
    }
    Ok(items
        .into_iter()
        .map(|item| {
            item.finished
                .into_iter()
                .next()
                .map(|h| h.tokens)
                .unwrap_or_default()
                .into_iter()
                .skip(1)
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens the processors forbid after `sequence` (start token first) in a vocabulary of `vocab`.
    fn banned(config: GenerationConfig, sequence: &[u32], vocab: usize) -> Vec<usize> {
        let processors = Processors {
            config: &config,
            eos: 1,
        };
        let mut scores = vec![0.0; vocab];
        processors.apply(sequence, &mut scores);
        (0..vocab).filter(|&i| scores[i].is_infinite()).collect()
    }

    #[test]
    fn no_repeat_ngram_bans_the_token_that_would_repeat_a_bigram() {
        let config = GenerationConfig {
            no_repeat_ngram_size: 2,
            ..GenerationConfig::default()
        };
        // The sequence ends in 5 and "5 6" was seen: 6 is banned, nothing else.
        assert_eq!(banned(config, &[0, 5, 6, 3, 5], 8), vec![6]);
    }

    #[test]
    fn min_new_tokens_forbids_the_end_until_reached() {
        let config = GenerationConfig {
            min_new_tokens: 2,
            ..GenerationConfig::default()
        };
        assert_eq!(banned(config.clone(), &[0, 3], 4), vec![1]);
        assert!(banned(config, &[0, 3, 3], 4).is_empty());
    }

    #[test]
    fn top_k_orders_best_first() {
        assert_eq!(top_k(&[0.1, 0.5, -1.0, 0.5, 0.3], 3), vec![1, 3, 4]);
    }
}
