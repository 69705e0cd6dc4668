//! ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum exactly as Google's `rouge_score.RougeScorer`
//! computes them: its tokenizer (lowercase, anything but `a-z0-9` splits, Porter stemming of tokens
//! longer than three characters when asked), clipped n-gram overlap, LCS, and Lsum's union LCS over
//! newline-separated sentences; aggregates are means of the per-example scores.

mod porter;

use std::collections::HashMap;

use serde::Serialize;

pub use porter::stem;

/// Precision, recall and F-measure of one ROUGE type.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Score {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

impl Score {
    fn new(precision: f64, recall: f64) -> Self {
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// The four scores of one prediction against one reference.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Scores {
    pub rouge1: Score,
    pub rouge2: Score,
    #[serde(rename = "rougeL")]
    pub rouge_l: Score,
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: Score,
}

impl Scores {
    /// The four scores as `(name, score)`, in rouge-score's naming.
    pub fn named(&self) -> [(&'static str, Score); 4] {
        [
            ("rouge1", self.rouge1),
            ("rouge2", self.rouge2),
            ("rougeL", self.rouge_l),
            ("rougeLsum", self.rouge_lsum),
        ]
    }

    fn named_mut(&mut self) -> [&mut Score; 4] {
        [
            &mut self.rouge1,
            &mut self.rouge2,
            &mut self.rouge_l,
            &mut self.rouge_lsum,
        ]
    }
}

/// rouge-score's `DefaultTokenizer`.
pub fn tokenize(text: &str, use_stemmer: bool) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|token| !token.is_empty())
        .map(|token| {
            if use_stemmer && token.len() > 3 {
                stem(token)
            } else {
                token.to_string()
            }
        })
        .filter(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .collect()
}

/// Scores `prediction` against `reference`, as `RougeScorer(["rouge1", "rouge2", "rougeL",
/// "rougeLsum"], use_stemmer).score(reference, prediction)`.
pub fn score(reference: &str, prediction: &str, use_stemmer: bool) -> Scores {
    let reference_tokens = tokenize(reference, use_stemmer);
    let prediction_tokens = tokenize(prediction, use_stemmer);
    // Lsum's sentences are the lines; a one-line text is one sentence of the tokens we have.
    let sentences = |text: &str, tokens: &[String]| -> Vec<Vec<String>> {
        if text.contains('\n') {
            text.split('\n')
                .filter(|s| !s.is_empty())
                .map(|s| tokenize(s, use_stemmer))
                .collect()
        } else if text.is_empty() {
            Vec::new()
        } else {
            vec![tokens.to_vec()]
        }
    };
    Scores {
        rouge1: ngram_score(&reference_tokens, &prediction_tokens, 1),
        rouge2: ngram_score(&reference_tokens, &prediction_tokens, 2),
        rouge_l: lcs_score(&reference_tokens, &prediction_tokens),
        rouge_lsum: summary_level_lcs(
            &sentences(reference, &reference_tokens),
            &sentences(prediction, &prediction_tokens),
        ),
    }
}

/// The best score over several references for each type (by F-measure, the first on ties), as
/// `RougeScorer.score_multi`.
pub fn score_multi(references: &[String], prediction: &str, use_stemmer: bool) -> Scores {
    let all: Vec<Scores> = references
        .iter()
        .map(|r| score(r, prediction, use_stemmer))
        .collect();
    let mut best = all.first().copied().unwrap_or_default();
    for scores in &all[1..] {
        for (best, candidate) in best.named_mut().into_iter().zip(scores.named()) {
            if candidate.1.fmeasure > best.fmeasure {
                *best = candidate.1;
            }
        }
    }
    best
}

/// The mean of each value over the examples (zero for none).
pub fn mean(examples: &[Scores]) -> Scores {
    let mut total = Scores::default();
    for example in examples {
        for (sum, (_, score)) in total.named_mut().into_iter().zip(example.named()) {
            sum.precision += score.precision;
            sum.recall += score.recall;
            sum.fmeasure += score.fmeasure;
        }
    }
    let count = examples.len().max(1) as f64;
    for sum in total.named_mut() {
        sum.precision /= count;
        sum.recall /= count;
        sum.fmeasure /= count;
    }
    total
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

fn ngram_score(reference: &[String], prediction: &[String], n: usize) -> Score {
    let reference_counts = ngram_counts(reference, n);
    let prediction_counts = ngram_counts(prediction, n);
    let overlap: usize = reference_counts
        .iter()
        .map(|(gram, &count)| count.min(prediction_counts.get(gram).copied().unwrap_or(0)))
        .sum();
    let reference_total: usize = reference_counts.values().sum();
    let prediction_total: usize = prediction_counts.values().sum();
    Score::new(
        overlap as f64 / prediction_total.max(1) as f64,
        overlap as f64 / reference_total.max(1) as f64,
    )
}

/// The LCS length table, `(reference.len() + 1) x (prediction.len() + 1)`, row-major.
fn lcs_table(reference: &[String], prediction: &[String]) -> Vec<u32> {
    let cols = prediction.len() + 1;
    let mut table = vec![0u32; (reference.len() + 1) * cols];
    for i in 1..=reference.len() {
        for j in 1..=prediction.len() {
            table[i * cols + j] = if reference[i - 1] == prediction[j - 1] {
                table[(i - 1) * cols + j - 1] + 1
            } else {
                table[(i - 1) * cols + j].max(table[i * cols + j - 1])
            };
        }
    }
    table
}

/// The LCS length in two rows of memory (texts can be long).
fn lcs_length(reference: &[String], prediction: &[String]) -> usize {
    let mut previous = vec![0usize; prediction.len() + 1];
    let mut current = vec![0usize; prediction.len() + 1];
    for r in reference {
        for (j, p) in prediction.iter().enumerate() {
            current[j + 1] = if r == p {
                previous[j] + 1
            } else {
                previous[j + 1].max(current[j])
            };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[prediction.len()]
}

fn lcs_score(reference: &[String], prediction: &[String]) -> Score {
    if reference.is_empty() || prediction.is_empty() {
        return Score::default();
    }
    let length = lcs_length(reference, prediction) as f64;
    Score::new(
        length / prediction.len() as f64,
        length / reference.len() as f64,
    )
}

/// Indices into `reference` of one LCS with `prediction`, backtracking as rouge-score does.
fn lcs_indices(reference: &[String], prediction: &[String]) -> Vec<usize> {
    let table = lcs_table(reference, prediction);
    let cols = prediction.len() + 1;
    let (mut i, mut j) = (reference.len(), prediction.len());
    let mut indices = Vec::new();
    while i > 0 && j > 0 {
        if reference[i - 1] == prediction[j - 1] {
            indices.push(i - 1);
            i -= 1;
            j -= 1;
        } else if table[i * cols + j - 1] > table[(i - 1) * cols + j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    indices.reverse();
    indices
}

fn summary_level_lcs(reference: &[Vec<String>], prediction: &[Vec<String>]) -> Score {
    let m: usize = reference.iter().map(Vec::len).sum();
    let n: usize = prediction.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return Score::default();
    }
    let mut reference_left: HashMap<&str, usize> = HashMap::new();
    let mut prediction_left: HashMap<&str, usize> = HashMap::new();
    for token in reference.iter().flatten() {
        *reference_left.entry(token).or_insert(0) += 1;
    }
    for token in prediction.iter().flatten() {
        *prediction_left.entry(token).or_insert(0) += 1;
    }
    let mut hits = 0usize;
    for sentence in reference {
        let mut union: Vec<usize> = prediction
            .iter()
            .flat_map(|p| lcs_indices(sentence, p))
            .collect();
        union.sort_unstable();
        union.dedup();
        for index in union {
            let token = sentence[index].as_str();
            let (Some(r), Some(p)) = (
                reference_left.get_mut(token),
                prediction_left.get_mut(token),
            ) else {
                continue;
            };
            if *r > 0 && *p > 0 {
                hits += 1;
                *r -= 1;
                *p -= 1;
            }
        }
    }
    Score::new(hits as f64 / n as f64, hits as f64 / m as f64)
}
