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

pub use dialora_settings::DEFAULT_PROMPT;

/// A kind of summary a person can ask for: a prompt template with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// What `--style` takes.
    pub id: &'static str,
    pub label: &'static str,
    pub template: &'static str,
}

/// The styles offered by name; a person's own instruction is any template with `{dialogue}`.
pub const STYLES: [Style; 4] = [
    Style {
        id: "summary",
        label: "Summary (as DialogSum)",
        template: DEFAULT_PROMPT,
    },
    Style {
        id: "minutes",
        label: "Meeting minutes",
        template: "Write the minutes of the following meeting.\n\n{dialogue}\n\nMinutes: ",
    },
    Style {
        id: "action-items",
        label: "Action items",
        template: "List the action items agreed in the following conversation: who will do what, and by when.\n\n{dialogue}\n\nAction items: ",
    },
    Style {
        id: "decisions",
        label: "Decisions and open questions",
        template: "What was decided in the following conversation, and which questions are still open?\n\n{dialogue}\n\nDecisions and open questions: ",
    },
];

/// The style named `id`, or the list of names when there is none.
pub fn style(id: &str) -> Result<&'static Style> {
    STYLES.iter().find(|s| s.id == id).ok_or_else(|| {
        let names: Vec<&str> = STYLES.iter().map(|s| s.id).collect();
        Error::settings(format!(
            "--style \"{id}\" is not a style; choose one of {}",
            names.join(", ")
        ))
    })
}

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
    /// The prompt template each adapter was trained with, when it records one.
    templates: BTreeMap<String, String>,
    /// The template of an adapter merged into the base weights.
    merged_template: Option<String>,
}

impl Summarizer {
    pub fn new(model: LoadedModel) -> Self {
        Self {
            model,
            adapters: BTreeMap::new(),
            templates: BTreeMap::new(),
            merged_template: None,
        }
    }

    /// Attaches an adapter under `name`, checking that it fits this model.
    pub fn add_adapter(&mut self, name: &str, files: AdapterFiles) -> Result<()> {
        let template = files.prompt_template();
        let adapter = Adapter::new(files.config, files.weights, &self.model.t5.linear_shapes())
            .map_err(|e| Error::invalid(&files.folder, e.to_string()))?;
        self.adapters.insert(name.to_string(), adapter);
        match template {
            Some(template) => self.templates.insert(name.to_string(), template),
            None => self.templates.remove(name),
        };
        Ok(())
    }

    /// The prompt template for a request with `adapter`: `explicit` when the user gave one, else
    /// the template the adapter was trained with, else the reference prompt.
    pub fn prompt_template(&self, adapter: Option<&str>, explicit: Option<&str>) -> String {
        let trained = match adapter {
            Some(name) => self.templates.get(name),
            None => self.merged_template.as_ref(),
        };
        explicit
            .map(str::to_string)
            .or_else(|| trained.cloned())
            .unwrap_or_else(|| DEFAULT_PROMPT.to_string())
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
        self.merged_template = self.templates.get(name).cloned();
        self.adapters.clear();
        self.templates.clear();
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
        let longest = encoded.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let rows = settings.batch_size.min(encoded.len().max(1));
        let needed = crate::generate::memory_needed(t5, rows, longest, &settings.generation);
        if let Some(shortfall) = crate::runtime::memory_shortfall("generating", needed) {
            return Err(Error::settings(format!(
                "{shortfall}: choose a smaller --max-new-tokens, --num-beams or --batch-size"
            )));
        }
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
