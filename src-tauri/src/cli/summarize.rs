//! `dialora summarize`: dialogues in (JSONL), summaries out (JSONL, input order).

use std::path::PathBuf;

use clap::Args;
use dialora_engine::adapter;
use dialora_engine::fsutil::write_atomically;
use dialora_engine::generate::{EarlyStopping, GenerationConfig};
use dialora_engine::model::{DeviceChoice, LoadedModel, ModelFiles};
use dialora_engine::summarize::{DEFAULT_PROMPT, SummarizeSettings, Summarizer};
use dialora_engine::task::Cancel;
use dialora_engine::{Error, Result, hub};

use super::data::ImportArgs;
use super::progress::TerminalProgress;

/// Decoding options shared by the commands that generate.
#[derive(Args, Clone)]
pub struct GenerationArgs {
    /// Hypotheses kept by beam search (1: greedy).
    #[arg(long, default_value_t = 1)]
    pub num_beams: usize,
    /// Most tokens of a summary.
    #[arg(long, default_value_t = 200)]
    pub max_new_tokens: usize,
    /// Fewest tokens of a summary.
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
    /// Beam search: >1 favours longer summaries, <1 shorter ones.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub length_penalty: f32,
    /// Never repeat a sequence of this many tokens (0: off).
    #[arg(long, default_value_t = 0)]
    pub no_repeat_ngram_size: usize,
    /// Beam search stopping rule.
    #[arg(long, value_enum, default_value = "heuristic")]
    pub early_stopping: EarlyStoppingArg,
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum EarlyStoppingArg {
    Heuristic,
    Always,
    Never,
}

impl GenerationArgs {
    pub fn config(&self) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            min_new_tokens: self.min_new_tokens,
            num_beams: self.num_beams,
            length_penalty: self.length_penalty,
            early_stopping: match self.early_stopping {
                EarlyStoppingArg::Heuristic => EarlyStopping::Heuristic,
                EarlyStoppingArg::Always => EarlyStopping::Always,
                EarlyStoppingArg::Never => EarlyStopping::Never,
            },
            no_repeat_ngram_size: self.no_repeat_ngram_size,
        }
    }
}

#[derive(Args)]
pub struct SummarizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Dialogues: a data file (JSONL, JSON, CSV, TSV), a transcript (.vtt, .srt, .txt) or a folder
    /// of them ("id" or "fname", or the file name, is carried over).
    #[arg(long)]
    input: PathBuf,
    #[command(flatten)]
    import: ImportArgs,
    /// Where to write the summaries (JSONL).
    #[arg(long)]
    output: PathBuf,
    /// A LoRA adapter (PEFT folder).
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Fold the adapter into the model weights before generating (fastest for many inputs).
    #[arg(long, requires = "adapter")]
    merge: bool,
    #[command(flatten)]
    prompt: PromptArgs,
    #[command(flatten)]
    generation: GenerationArgs,
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
    Metal,
}

impl DeviceArg {
    pub fn choice(self) -> DeviceChoice {
        match self {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
            DeviceArg::Metal => DeviceChoice::Metal,
        }
    }
}

/// Prompt settings shared by the commands that generate.
#[derive(Args)]
pub struct PromptArgs {
    /// Dialogues generated together (more is faster, and takes more memory).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Longest prompt in tokens; longer dialogues are cut (with a warning).
    #[arg(long, default_value_t = 512)]
    pub max_source_length: usize,
    /// The prompt; {dialogue} stands for the dialogue.
    #[arg(long, default_value = DEFAULT_PROMPT)]
    pub prompt_template: String,
}

impl PromptArgs {
    pub fn settings(&self, generation: &GenerationArgs) -> SummarizeSettings {
        SummarizeSettings {
            generation: generation.config(),
            batch_size: self.batch_size,
            max_source_length: self.max_source_length,
            prompt_template: self.prompt_template.clone(),
        }
    }
}

/// The model to run and where, shared by the commands that load one.
#[derive(Args)]
pub struct ModelArgs {
    /// Model folder or Hub id (e.g. google/flan-t5-base).
    #[arg(long)]
    pub model: String,
    /// Where to compute: auto takes a GPU when this build has support for one.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
}

impl ModelArgs {
    /// Loads the model (a folder or a Hub id) with a progress bar for downloads.
    pub fn load(&self, progress: &TerminalProgress) -> Result<Summarizer> {
        Ok(Summarizer::new(self.load_with_files(progress)?.1))
    }

    /// The model's files and the loaded model.
    pub fn load_with_files(
        &self,
        progress: &TerminalProgress,
    ) -> Result<(ModelFiles, LoadedModel)> {
        let device = self.device.choice().device()?;
        let files = hub::resolve_model(&self.model, progress)?;
        let model = LoadedModel::load(&files, &self.model, &device)?;
        Ok((files, model))
    }
}

pub fn run(args: SummarizeArgs, cancel: &Cancel) -> Result<()> {
    let settings = args.prompt.settings(&args.generation);
    settings.validate()?;
    let dialogues = args.import.load(&args.input, "test", false)?.dialogues;
    let progress = TerminalProgress::new();
    let mut summarizer = args.model.load(&progress)?;
    let adapter_name = match &args.adapter {
        Some(path) => {
            let device = summarizer.model.t5.device().clone();
            summarizer.add_adapter("adapter", adapter::read(path, &device)?)?;
            if args.merge {
                summarizer.merge("adapter")?;
                None
            } else {
                Some("adapter")
            }
        }
        None => None,
    };
    let texts: Vec<String> = dialogues.iter().map(|d| d.dialogue.clone()).collect();
    let summaries = summarizer.summarize(&texts, adapter_name, &settings, cancel, &progress)?;

    let truncated = summaries.iter().filter(|s| s.truncated).count();
    if truncated > 0 {
        eprintln!(
            "warning: {truncated} of {} dialogues were longer than {} tokens and were cut (see --max-source-length)",
            summaries.len(),
            args.prompt.max_source_length
        );
    }
    let mut output = String::new();
    for (index, (dialogue, summary)) in dialogues.iter().zip(&summaries).enumerate() {
        let id = dialogue
            .id
            .clone()
            .unwrap_or_else(|| serde_json::Value::from(index));
        let row = serde_json::json!({ "id": id, "summary": summary.text });
        output.push_str(&row.to_string());
        output.push('\n');
    }
    write_atomically(&args.output, output.as_bytes()).map_err(|e| match e {
        Error::File { path, message } => Error::File {
            path,
            message: format!("cannot write the summaries: {message}"),
        },
        other => other,
    })
}
