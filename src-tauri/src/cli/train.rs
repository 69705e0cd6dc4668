//! `dialora train`: LoRA or full fine-tuning on dialogues with summaries, with a progress bar, a
//! JSON-lines log of every step, checkpoints and `--resume`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use dialora_engine::fsutil::{check_new_file, write_atomically};
use dialora_engine::summarize::DEFAULT_PROMPT;
use dialora_engine::task::Cancel;
use dialora_engine::train::{
    Schedule, TrainData, TrainEvent, TrainRequest, TrainSettings, model_precision, train,
};
use dialora_engine::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::data::ImportArgs;
use super::progress::TerminalProgress;
use super::summarize::{ModelArgs, NamedAdapter, TemplateArgs};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Training dialogues with summaries: any data file or folder, or dialogsum[:split] (train by
    /// default) from the Hub.
    #[arg(long)]
    train: PathBuf,
    /// Dialogues for the validation loss (dialogsum: its validation split by default).
    #[arg(long)]
    validation: Option<PathBuf>,
    #[command(flatten)]
    import: ImportArgs,
    /// The adapter folder to write (with --full: the model folder).
    #[arg(long)]
    output: PathBuf,
    /// Continue training this adapter (its rank, alpha, dropout and targets are kept): a PEFT
    /// folder, a .dlora file or a Hub id.
    #[arg(long, conflicts_with = "full")]
    init_adapter: Option<PathBuf>,
    /// LoRA rank.
    #[arg(long, default_value_t = 32, allow_negative_numbers = true)]
    rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 32.0, allow_hyphen_values = true)]
    alpha: f64,
    /// Dropout on the LoRA path.
    #[arg(long, default_value_t = 0.05, allow_hyphen_values = true)]
    dropout: f64,
    /// Modules to adapt, comma-separated (q, k, v, o, wi, wi_0, wi_1, wo, lm_head).
    #[arg(long, default_value = "q,v", value_delimiter = ',')]
    targets: Vec<String>,
    /// Scale the update by alpha / sqrt(rank) (rank-stabilized LoRA).
    #[arg(long)]
    use_rslora: bool,
    /// Train every weight of the model instead of an adapter.
    #[arg(long)]
    full: bool,
    #[arg(long, default_value_t = 1e-3, allow_hyphen_values = true)]
    learning_rate: f64,
    #[arg(long, default_value_t = 0.01, allow_hyphen_values = true)]
    weight_decay: f64,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 8, allow_negative_numbers = true)]
    batch_size: usize,
    /// Forward passes per optimizer step (the step sees batch-size x this many examples).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    gradient_accumulation: usize,
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    epochs: usize,
    /// Stop after this many optimizer steps (overrides --epochs).
    #[arg(long, allow_negative_numbers = true)]
    max_steps: Option<usize>,
    /// Steps of linear warm-up from 0 to the learning rate.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    warmup_steps: usize,
    #[arg(long, value_enum, default_value = "linear")]
    lr_schedule: ScheduleArg,
    /// Clip the gradient's global norm to this (0: off).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    max_grad_norm: f64,
    #[arg(long, default_value_t = 42, allow_negative_numbers = true)]
    seed: u64,
    /// Keep the data's order instead of shuffling every epoch.
    #[arg(long)]
    no_shuffle: bool,
    /// Longest prompt in tokens; longer dialogues are cut (with a warning).
    #[arg(long, default_value_t = 512, allow_negative_numbers = true)]
    max_source_length: usize,
    /// Longest summary in tokens.
    #[arg(long, default_value_t = 128, allow_negative_numbers = true)]
    max_target_length: usize,
    /// The model's own dropout (default: the model's dropout_rate).
    #[arg(long, allow_hyphen_values = true)]
    model_dropout: Option<f64>,
    #[command(flatten)]
    template: TemplateArgs,
    /// Also train on rows whose summary is still marked as an unreviewed draft ("draft": true).
    #[arg(long)]
    include_drafts: bool,
    /// Compute the validation loss every N steps (and at the end).
    #[arg(long, allow_negative_numbers = true)]
    eval_every: Option<usize>,
    /// Write a checkpoint every N steps (one is always written when stopped with Ctrl-C).
    #[arg(long, allow_negative_numbers = true)]
    checkpoint_every: Option<usize>,
    /// Continue the unfinished run in --output from its checkpoint.
    #[arg(long)]
    resume: bool,
    /// Replace what --output holds.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Write one JSON object per optimizer step to this file.
    #[arg(long)]
    log: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum ScheduleArg {
    Linear,
    Constant,
    Cosine,
}

impl TrainArgs {
    /// The template given, else the one of the adapter training continues, else the reference.
    fn prompt_template(&self, init: Option<&NamedAdapter>) -> Result<String> {
        if let Some(template) = self.template.explicit()? {
            return Ok(template);
        }
        let continued = init.and_then(|adapter| adapter.prompt_template.clone());
        Ok(continued.unwrap_or_else(|| DEFAULT_PROMPT.to_string()))
    }

    fn settings(&self, init: Option<&NamedAdapter>) -> Result<TrainSettings> {
        Ok(TrainSettings {
            full: self.full,
            rank: self.rank,
            alpha: self.alpha,
            lora_dropout: self.dropout,
            targets: self.targets.iter().map(|t| t.trim().to_string()).collect(),
            use_rslora: self.use_rslora,
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            gradient_accumulation: self.gradient_accumulation,
            epochs: self.epochs,
            max_steps: self.max_steps,
            warmup_steps: self.warmup_steps,
            schedule: match self.lr_schedule {
                ScheduleArg::Linear => Schedule::Linear,
                ScheduleArg::Constant => Schedule::Constant,
                ScheduleArg::Cosine => Schedule::Cosine,
            },
            max_grad_norm: self.max_grad_norm,
            seed: self.seed,
            shuffle: !self.no_shuffle,
            max_source_length: self.max_source_length,
            max_target_length: self.max_target_length,
            model_dropout: self.model_dropout,
            prompt_template: self.prompt_template(init)?,
            include_drafts: self.include_drafts,
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every,
        })
    }
}

fn read_data(
    import: &ImportArgs,
    path: &Path,
    default_split: &str,
    cancel: &Cancel,
) -> Result<TrainData> {
    Ok(TrainData {
        source: path.to_path_buf(),
        dialogues: import.load(path, default_split, false, cancel)?.dialogues,
    })
}

/// The step log: rewritten to the checkpoint's step when resuming, then appended to line by line.
struct StepLog {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl StepLog {
    fn start(&mut self, first_step: usize) -> Result<()> {
        let kept = if first_step > 0 {
            let text = std::fs::read_to_string(&self.path).unwrap_or_default();
            text.lines()
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_some_and(|step| step as usize <= first_step)
                })
                .map(|line| format!("{line}\n"))
                .collect::<String>()
        } else {
            String::new()
        };
        write_atomically(&self.path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::file(&self.path, e))?;
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, record: &impl serde::Serialize) -> Result<()> {
        if let Some(file) = &mut self.file {
            let line = serde_json::to_string(record).map_err(|e| Error::settings(e.to_string()))?;
            writeln!(file, "{line}").map_err(|e| Error::file(&self.path, e))?;
        }
        Ok(())
    }
}

pub fn run(args: TrainArgs, cancel: &Cancel) -> Result<()> {
    let progress = TerminalProgress::new();
    let init = args
        .init_adapter
        .as_deref()
        .map(|spec| NamedAdapter::resolve(spec, &progress, cancel))
        .transpose()?;
    let settings = args.settings(init.as_ref())?;
    settings.validate()?;
    if let Some(log) = &args.log {
        // A resumed run keeps the log's lines up to its checkpoint; a new one replaces it.
        check_new_file(log, args.overwrite || args.resume, "--log")?;
    }
    let train_data = read_data(&args.import, &args.train, "train", cancel)?;
    let validation = args
        .validation
        .as_deref()
        .map(|path| read_data(&args.import, path, "validation", cancel))
        .transpose()?;
    // Without --model: the base model the adapter training continues names.
    let model_name = args.model.name(init.as_ref())?;
    let precision = model_precision(&settings, args.model.precision)?;
    let (files, mut model) = args
        .model
        .load_in(&model_name, precision, &progress, cancel)?;
    if let Some(init) = &init {
        init.read_for(&model)?;
    }
    let mut log = args.log.as_ref().map(|path| StepLog {
        path: path.clone(),
        file: None,
    });
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "training {bar:30} {pos}/{len} steps [{elapsed} < {eta}] {msg}",
    ) {
        bar.set_style(style);
    }
    let mut failure = None;
    let request = TrainRequest {
        model: &mut model,
        model_files: &files,
        train: &train_data,
        validation: validation.as_ref(),
        init_adapter: init.as_ref().map(|adapter| adapter.path.clone()),
        output: args.output.clone(),
        resume: args.resume,
        overwrite: args.overwrite,
        settings,
    };
    let mut last_step = 0;
    let result = train(request, cancel, &mut |event| {
        let outcome = match &event {
            TrainEvent::Started {
                first_step,
                total_steps,
                ..
            } => {
                last_step = *first_step;
                bar.set_length(*total_steps as u64);
                bar.set_position(*first_step as u64);
                log.as_mut().map_or(Ok(()), |log| log.start(*first_step))
            }
            TrainEvent::Warning { message } => {
                bar.suspend(|| eprintln!("warning: {message}"));
                Ok(())
            }
            TrainEvent::Step(record) => {
                last_step = record.step;
                bar.set_position(record.step as u64);
                let validation = record
                    .validation_loss
                    .map(|v| format!(", validation {v:.4}"))
                    .unwrap_or_default();
                bar.set_message(format!("loss {:.4}{validation}", record.loss));
                log.as_mut().map_or(Ok(()), |log| log.write(record))
            }
            TrainEvent::Checkpoint { .. } => Ok(()),
        };
        if let Err(error) = outcome {
            failure.get_or_insert(error);
            cancel.cancel();
        }
    });
    bar.finish_and_clear();
    if let Some(error) = failure {
        return Err(error);
    }
    match result {
        Ok(summary) => {
            let validation = summary
                .validation_loss
                .map(|v| format!(", validation loss {v:.4}"))
                .unwrap_or_default();
            eprintln!(
                "trained {} steps: loss {:.4}{validation}; written to {}",
                summary.steps,
                summary.train_loss,
                summary.output.display()
            );
            Ok(())
        }
        Err(Error::Cancelled) => Err(Error::settings(format!(
            "stopped after step {last_step}; the checkpoint is in {}: continue with --resume",
            args.output.display()
        ))),
        Err(error) => Err(error),
    }
}
