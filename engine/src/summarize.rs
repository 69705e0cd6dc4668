//! Summarization: a loaded model with any number of adapters attached, prompts built from a
//! template, inputs tokenized and batched by length, summaries generated and returned in input order.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::adapter::AdapterFiles;
use crate::error::{Error, Result};
use crate::generate::{GenerationConfig, generate};
use crate::lora::Adapter;
use crate::model::LoadedModel;
use crate::task::{Cancel, Progress, ProgressSink};
use crate::tokenize::PaddedBatch;

/// The prompt of the reference workflow (the PEFT + Flan-T5 + DialogSum notebook).
pub const DEFAULT_PROMPT: &str = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: ";

/// How to turn dialogues into summaries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SummarizeSettings {
    pub generation: GenerationConfig,
    pub batch_size: usize,
    pub max_source_length: usize,
    pub prompt_template: String,
}

impl Default for SummarizeSettings {
    fn default() -> Self {
        Self {
            generation: GenerationConfig::default(),
            batch_size: 8,
            max_source_length: 512,
            prompt_template: DEFAULT_PROMPT.to_string(),
        }
    }
}

impl SummarizeSettings {
    pub fn validate(&self) -> Result<()> {
        self.generation.validate()?;
        if self.batch_size == 0 {
            return Err(Error::settings("--batch-size must be at least 1"));
        }
        if self.max_source_length < 2 {
            return Err(Error::settings("--max-source-length must be at least 2"));
        }
        if !self.prompt_template.contains("{dialogue}") {
            return Err(Error::settings("--prompt-template must contain {dialogue}"));
        }
        Ok(())
    }

    pub fn prompt(&self, dialogue: &str) -> String {
        self.prompt_template.replace("{dialogue}", dialogue)
    }
}

/// One generated summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub text: String,
    /// Whether the prompt was cut to `max_source_length` tokens.
    pub truncated: bool,
}

/// A base model with named adapters; each request picks one (or none) without reloading the base.
pub struct Summarizer {
    pub model: LoadedModel,
    adapters: BTreeMap<String, Adapter>,
}

impl Summarizer {
    pub fn new(model: LoadedModel) -> Self {
        Self {
            model,
            adapters: BTreeMap::new(),
        }
    }

    /// Attaches an adapter under `name`, checking that it fits this model.
    pub fn add_adapter(&mut self, name: &str, files: AdapterFiles) -> Result<()> {
        let adapter = Adapter::new(files.config, files.weights, &self.model.t5.linear_shapes())
            .map_err(|e| Error::invalid(&files.folder, e.to_string()))?;
        self.adapters.insert(name.to_string(), adapter);
        Ok(())
    }

    pub fn adapter(&self, name: &str) -> Result<&Adapter> {
        self.adapters
            .get(name)
            .ok_or_else(|| Error::settings(format!("no adapter named \"{name}\" is loaded")))
    }

    /// Folds the adapter `name` into the base weights for the fastest inference; other attached
    /// adapters are dropped, since they were trained against the unmerged base.
    pub fn merge(&mut self, name: &str) -> Result<()> {
        let adapter = self.adapter(name)?.clone();
        self.model.t5.merge_adapter(&adapter)?;
        self.adapters.clear();
        Ok(())
    }

    /// Summaries of `dialogues` in their order, with `adapter` (by name) or the base model.
    pub fn summarize(
        &self,
        dialogues: &[String],
        adapter: Option<&str>,
        settings: &SummarizeSettings,
        cancel: &Cancel,
        progress: &dyn ProgressSink,
    ) -> Result<Vec<Summary>> {
        settings.validate()?;
        let adapter = adapter.map(|name| self.adapter(name)).transpose()?;
        let tokenizer = &self.model.tokenizer;
        let encoded = dialogues
            .iter()
            .map(|d| tokenizer.encode(&settings.prompt(d), settings.max_source_length))
            .collect::<Result<Vec<_>>>()?;
        // Similar lengths together: less padding, the same results.
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].ids.len()));
        let t5 = &self.model.t5;
        let pad = t5.config().pad_token_id;
        let mut texts: Vec<Option<String>> = vec![None; dialogues.len()];
        let total = dialogues.len() as u64;
        progress.report(Progress {
            stage: "summarizing".to_string(),
            done: 0,
            total,
        });
        let mut done = 0u64;
        for chunk in order.chunks(settings.batch_size) {
            cancel.check()?;
            let sequences: Vec<Vec<u32>> = chunk.iter().map(|&i| encoded[i].ids.clone()).collect();
            let batch = PaddedBatch::new(&sequences, pad);
            let ids = Tensor::from_vec(batch.ids, (batch.rows, batch.width), t5.device())?;
            let mask = Tensor::from_vec(batch.mask, (batch.rows, batch.width), t5.device())?;
            let outputs = generate(t5, adapter, &ids, &mask, &settings.generation, cancel)?;
            for (&index, tokens) in chunk.iter().zip(outputs) {
                texts[index] = Some(tokenizer.decode(&tokens)?);
            }
            done += chunk.len() as u64;
            progress.report(Progress {
                stage: "summarizing".to_string(),
                done,
                total,
            });
        }
        Ok(texts
            .into_iter()
            .zip(&encoded)
            .map(|(text, encoded)| Summary {
                text: text.unwrap_or_default(),
                truncated: encoded.truncated,
            })
            .collect())
    }
}
