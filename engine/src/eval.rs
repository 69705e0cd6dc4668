//! Evaluation: the baseline and each adapter summarize the same dialogues; every summary is scored
//! with ROUGE against its references (the best reference per type, as rouge-score's score_multi)
//! and every first reference gets its teacher-forced loss; means come with bootstrap 95% intervals.

use candle_core::Tensor;
use serde::Serialize;

use crate::data::Dialogue;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;
use crate::rouge::{self, Scores};
use crate::summarize::{SummarizeSettings, Summarizer};
use crate::task::{Cancel, Progress, ProgressSink};
use crate::tokenize::PaddedBatch;

/// One example of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub id: serde_json::Value,
    pub summary: String,
    pub reference: String,
    pub loss: f64,
    /// ROUGE F-measures against the best reference of each type.
    #[serde(flatten)]
    pub rouge: PerType<f64>,
}

/// One value per ROUGE type, named as rouge-score names them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PerType<T> {
    pub rouge1: T,
    pub rouge2: T,
    #[serde(rename = "rougeL")]
    pub rouge_l: T,
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: T,
}

impl<T> PerType<T> {
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> PerType<U> {
        PerType {
            rouge1: f(self.rouge1),
            rouge2: f(self.rouge2),
            rouge_l: f(self.rouge_l),
            rouge_lsum: f(self.rouge_lsum),
        }
    }
}

impl<T: Copy> PerType<T> {
    pub fn named(&self) -> [(&'static str, T); 4] {
        [
            ("rouge1", self.rouge1),
            ("rouge2", self.rouge2),
            ("rougeL", self.rouge_l),
            ("rougeLsum", self.rouge_lsum),
        ]
    }
}

impl PerType<f64> {
    fn fmeasures(scores: &Scores) -> Self {
        Self {
            rouge1: scores.rouge1.fmeasure,
            rouge2: scores.rouge2.fmeasure,
            rouge_l: scores.rouge_l.fmeasure,
            rouge_lsum: scores.rouge_lsum.fmeasure,
        }
    }

    /// Each type's values across `examples`.
    fn columns(examples: &[Example]) -> PerType<Vec<f64>> {
        let column =
            |get: fn(&PerType<f64>) -> f64| examples.iter().map(|e| get(&e.rouge)).collect();
        PerType {
            rouge1: column(|r| r.rouge1),
            rouge2: column(|r| r.rouge2),
            rouge_l: column(|r| r.rouge_l),
            rouge_lsum: column(|r| r.rouge_lsum),
        }
    }
}

/// One model configuration's results.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub label: String,
    /// `None` for the baseline.
    pub adapter: Option<String>,
    /// Mean teacher-forced loss of the references.
    pub loss: f64,
    /// Mean F-measures.
    pub rouge: PerType<f64>,
    /// `[low, high]` of each mean's bootstrap 95% interval.
    pub rouge_ci95: PerType<[f64; 2]>,
    pub examples: Vec<Example>,
}

/// What an evaluation needs besides the model.
pub struct EvalSettings {
    pub summarize: SummarizeSettings,
    pub max_target_length: usize,
    pub use_stemmer: bool,
    pub bootstrap_samples: usize,
    pub seed: u64,
}

/// Evaluates `adapter` (a name attached to `summarizer`, or `None` for the baseline) on `dialogues`,
/// which must all have references.
pub fn evaluate(
    summarizer: &Summarizer,
    adapter: Option<&str>,
    label: &str,
    dialogues: &[Dialogue],
    settings: &EvalSettings,
    cancel: &Cancel,
    progress: &dyn ProgressSink,
) -> Result<Run> {
    if let Some(index) = dialogues.iter().position(|d| d.summaries.is_empty()) {
        return Err(Error::settings(format!(
            "dialogue {} has no reference summary to evaluate against",
            index + 1
        )));
    }
    let texts: Vec<String> = dialogues.iter().map(|d| d.dialogue.clone()).collect();
    let summaries = summarizer.summarize(&texts, adapter, &settings.summarize, cancel, progress)?;
    let losses = reference_losses(summarizer, adapter, dialogues, settings, cancel, progress)?;
    let examples: Vec<Example> = dialogues
        .iter()
        .zip(summaries)
        .zip(losses)
        .enumerate()
        .map(|(index, ((dialogue, summary), loss))| {
            let scores: Scores =
                rouge::score_multi(&dialogue.summaries, &summary.text, settings.use_stemmer);
            Example {
                id: dialogue.id_or_position(index),
                summary: summary.text,
                reference: dialogue.summaries[0].clone(),
                loss,
                rouge: PerType::fmeasures(&scores),
            }
        })
        .collect();
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
    let columns = PerType::columns(&examples);
    let rouge = columns.clone().map(|values| mean(&values));
    let rouge_ci95 = columns.map(|values| {
        let (low, high) = bootstrap_interval(&values, settings.bootstrap_samples, settings.seed);
        [low, high]
    });
    Ok(Run {
        label: label.to_string(),
        adapter: adapter.map(str::to_string),
        loss: mean(&examples.iter().map(|e| e.loss).collect::<Vec<_>>()),
        rouge,
        rouge_ci95,
        examples,
    })
}

fn reference_losses(
    summarizer: &Summarizer,
    adapter: Option<&str>,
    dialogues: &[Dialogue],
    settings: &EvalSettings,
    cancel: &Cancel,
    progress: &dyn ProgressSink,
) -> Result<Vec<f64>> {
    let model = &summarizer.model;
    let adapter = adapter.map(|name| summarizer.adapter(name)).transpose()?;
    let device = model.t5.device();
    let mut losses = Vec::with_capacity(dialogues.len());
    for chunk in dialogues.chunks(settings.summarize.batch_size.max(1)) {
        cancel.check()?;
        let sources = chunk
            .iter()
            .map(|d| {
                Ok(model
                    .tokenizer
                    .encode(
                        &settings.summarize.prompt(&d.dialogue),
                        settings.summarize.max_source_length,
                    )?
                    .ids)
            })
            .collect::<Result<Vec<_>>>()?;
        let targets = chunk
            .iter()
            .map(|d| {
                Ok(model
                    .tokenizer
                    .encode(&d.summaries[0], settings.max_target_length)?
                    .ids)
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = PaddedBatch::new(&sources, model.t5.config().pad_token_id);
        let ids = Tensor::from_vec(batch.ids, (batch.rows, batch.width), device)?;
        let mask = Tensor::from_vec(batch.mask, (batch.rows, batch.width), device)?;
        losses.extend(model.t5.sequence_losses(&ids, &mask, &targets, adapter)?);
        progress.report(Progress {
            stage: "scoring references".to_string(),
            done: losses.len() as u64,
            total: dialogues.len() as u64,
        });
    }
    Ok(losses)
}

/// The 2.5th and 97.5th percentiles of the mean of `values` over `samples` resamples with
/// replacement, drawn from a generator seeded with `seed` (the same data and seed, the same interval).
pub fn bootstrap_interval(values: &[f64], samples: usize, seed: u64) -> (f64, f64) {
    if values.is_empty() || samples == 0 {
        return (0.0, 0.0);
    }
    let mut rng = SplitMix64::new(seed);
    let n = values.len();
    let mut means: Vec<f64> = (0..samples)
        .map(|_| {
            (0..n)
                .map(|_| values[rng.below(n as u64) as usize])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (samples - 1) as f64).round() as usize).min(samples - 1)];
    (at(0.025), at(0.975))
}

#[cfg(test)]
mod tests {
    use super::bootstrap_interval;

    #[test]
    fn bootstrap_interval_brackets_the_mean_and_is_reproducible() {
        let values: Vec<f64> = (0..200).map(|i| (i % 10) as f64 / 10.0).collect();
        let (low, high) = bootstrap_interval(&values, 1000, 7);
        assert!(
            low < 0.45 && 0.45 < high && high - low < 0.1,
            "({low}, {high})"
        );
        assert_eq!((low, high), bootstrap_interval(&values, 1000, 7));
        assert_eq!(bootstrap_interval(&[0.3; 5], 100, 1), (0.3, 0.3));
    }
}
