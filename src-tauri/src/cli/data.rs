//! `dialora data check|convert`, and how every command reads its dialogues: any importable file or
//! folder, or `dialogsum[:split]` from the Hub, with the import's warnings on stderr.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use dialora_engine::data::{self, Dialogue, ImportOptions, Imported, Speakers};
use dialora_engine::summarize::DEFAULT_PROMPT;
use dialora_engine::task::Cancel;
use dialora_engine::{Error, Result, hub};

use super::output::{self, Destination};
use super::progress::TerminalProgress;
use super::summarize::{
    GenerationArgs, LongInputArg, ModelArgs, PromptArgs, asked_settings, load_with_adapter,
    summarize_all,
};

/// How to read data files: column names for tables and JSON, and the speaker style.
#[derive(Args, Clone)]
pub struct ImportArgs {
    /// The column (or JSON field) holding the dialogue, when it is not found by its name.
    #[arg(long)]
    dialogue_column: Option<String>,
    /// The column holding the reference summary.
    #[arg(long)]
    summary_column: Option<String>,
    /// The column holding an id.
    #[arg(long)]
    id_column: Option<String>,
    /// Write speakers as named in the source, or as DialogSum's #Person1#, #Person2#.
    #[arg(long, value_enum, default_value = "names")]
    speakers: SpeakersArg,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum SpeakersArg {
    Names,
    Persons,
}

impl ImportArgs {
    pub fn speakers(&self) -> Speakers {
        self.options().speakers
    }

    fn options(&self) -> ImportOptions {
        ImportOptions {
            dialogue_column: self.dialogue_column.clone(),
            summary_column: self.summary_column.clone(),
            id_column: self.id_column.clone(),
            speakers: match self.speakers {
                SpeakersArg::Names => Speakers::Names,
                SpeakersArg::Persons => Speakers::Persons,
            },
        }
    }

    /// Reads `spec`: `dialogsum[:split]` (`default_split` when none is named) or a file or folder.
    /// Prints the import's warnings unless `quiet`.
    pub fn load(
        &self,
        spec: &Path,
        default_split: &str,
        quiet: bool,
        cancel: &Cancel,
    ) -> Result<Imported> {
        let progress = TerminalProgress::new();
        let imported = hub::import_data(spec, default_split, &self.options(), &progress, cancel)?;
        if !quiet {
            const SHOWN: usize = 5;
            for warning in imported.warnings.iter().take(SHOWN) {
                eprintln!("warning: {warning}");
            }
            if imported.warnings.len() > SHOWN {
                eprintln!(
                    "warning: {} more (see dialora data check {})",
                    imported.warnings.len() - SHOWN,
                    spec.display()
                );
            }
        }
        Ok(imported)
    }
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Read a data file and report what is in it: counts, lengths, duplicates, empty rows.
    Check {
        /// A data file or folder (CSV, TSV, JSONL, JSON, VTT, SRT, text), or dialogsum[:split].
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// A model whose tokenizer measures the prompts (folder or Hub id).
        #[arg(long)]
        model: Option<String>,
        /// The source window the lengths are measured against.
        #[arg(long, default_value_t = 512, allow_negative_numbers = true)]
        max_source_length: usize,
        #[command(flatten)]
        import: ImportArgs,
    },
    /// Convert data files to one DialogSum-shaped JSONL file (id, dialogue, summary).
    Convert {
        /// Data files or folders.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The JSONL file to write (- for standard output).
        #[arg(long)]
        output: PathBuf,
        /// Replace --output and --validation-output if they exist.
        #[arg(long)]
        overwrite: bool,
        /// Also split off this fraction of the dialogues into --validation-output.
        #[arg(long, requires = "validation_output", allow_hyphen_values = true)]
        validation_fraction: Option<f64>,
        /// Where the split-off dialogues go.
        #[arg(long, requires = "validation_fraction")]
        validation_output: Option<PathBuf>,
        /// Seed of the split.
        #[arg(long, default_value_t = 42, allow_negative_numbers = true)]
        seed: u64,
        #[command(flatten)]
        import: ImportArgs,
    },
    /// Draft a summary for each dialogue that has none, for a person to correct: DialogSum-shaped
    /// JSONL with the draft in "summary" and "draft": true. Remove the mark from each row you have
    /// checked; `dialora train` leaves out rows still marked.
    Draft(DraftArgs),
}

#[derive(Args)]
pub struct DraftArgs {
    /// A data file or folder (transcripts, CSV, JSONL...), or dialogsum[:split].
    data: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// An adapter to draft with (its own prompt is used unless --style or --prompt-template): a
    /// PEFT folder, a .dlora file or a Hub id.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// The JSONL file to write.
    #[arg(long)]
    output: PathBuf,
    /// Replace --output if it exists (it may hold corrections).
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    import: ImportArgs,
    #[command(flatten)]
    prompt: PromptArgs,
    #[command(flatten)]
    generation: GenerationArgs,
}

pub fn run(command: DataCommand, cancel: &Cancel) -> Result<()> {
    match command {
        DataCommand::Check {
            file,
            json,
            model,
            max_source_length,
            import,
        } => {
            let imported = import.load(&file, "train", true, cancel)?;
            let tokenizer = match &model {
                Some(spec) => {
                    let files = hub::resolve_model(spec, &TerminalProgress::new(), cancel)?;
                    if max_source_length < 2 {
                        return Err(Error::settings("--max-source-length must be at least 2"));
                    }
                    Some(files.tokenizer()?)
                }
                None => None,
            };
            let statistics = data::statistics(
                &imported,
                tokenizer
                    .as_ref()
                    .map(|t| (t, DEFAULT_PROMPT, max_source_length)),
            )?;
            if json {
                let json = serde_json::to_string_pretty(&statistics).unwrap_or_default();
                output::print(&format!("{json}\n"))
            } else {
                output::print(&human(&file, &statistics))
            }
        }
        DataCommand::Convert {
            files,
            output,
            overwrite,
            validation_fraction,
            validation_output,
            seed,
            import,
        } => {
            let output = Destination::checked(&output, overwrite, "--output")?;
            let validation = validation_output
                .map(|path| Destination::checked(&path, overwrite, "--validation-output"))
                .transpose()?;
            if let Some(validation) = &validation {
                output.distinct(validation, ("--output", "--validation-output"))?;
            }
            let mut dialogues = Vec::new();
            for file in &files {
                dialogues.extend(import.load(file, "train", false, cancel)?.dialogues);
            }
            match (validation_fraction, validation) {
                (Some(fraction), Some(validation)) => {
                    if !(fraction > 0.0 && fraction < 1.0) || dialogues.len() < 2 {
                        return Err(Error::settings(
                            "--validation-fraction must be between 0 and 1, with at least 2 dialogues",
                        ));
                    }
                    let (train, held_out) = data::split(dialogues, fraction, seed);
                    output.write(data::to_jsonl(&train).as_bytes())?;
                    validation.write(data::to_jsonl(&held_out).as_bytes())?;
                    eprintln!(
                        "wrote {} dialogues to {} and {} to {}",
                        train.len(),
                        output.describe(),
                        held_out.len(),
                        validation.describe()
                    );
                }
                _ => {
                    output.write(data::to_jsonl(&dialogues).as_bytes())?;
                    eprintln!(
                        "wrote {} dialogues to {}",
                        dialogues.len(),
                        output.describe()
                    );
                }
            }
            Ok(())
        }
        DataCommand::Draft(args) => draft(args, cancel),
    }
}

/// `dialora data draft`: the dialogues with a reviewed summary as they are, the others with the
/// model's draft marked as one.
fn draft(args: DraftArgs, cancel: &Cancel) -> Result<()> {
    let output = Destination::checked(&args.output, args.overwrite, "--output")?;
    let (mut settings, explicit) = asked_settings(&args.prompt, &args.generation)?;
    let mut dialogues = args
        .import
        .load(&args.data, "train", false, cancel)?
        .dialogues;
    let (summarizer, adapter_name) = load_with_adapter(
        &args.model,
        args.adapter.as_deref(),
        false,
        &mut settings,
        explicit.as_deref(),
        cancel,
    )?;
    let progress = TerminalProgress::new();
    let (to_draft, indices): (Vec<Dialogue>, Vec<usize>) = dialogues
        .iter()
        .enumerate()
        .filter(|(_, d)| d.reviewed_summary().is_none())
        .map(|(i, d)| (d.clone(), i))
        .unzip();
    let drafts = summarize_all(
        &summarizer,
        &to_draft,
        args.import.speakers(),
        LongInputArg::Auto,
        adapter_name,
        &settings,
        cancel,
        &progress,
    )?;
    for (index, draft) in indices.iter().zip(drafts) {
        let dialogue = &mut dialogues[*index];
        dialogue.summaries = vec![draft.summary];
        dialogue.draft = true;
    }
    output.write(data::to_jsonl(&dialogues).as_bytes())?;
    eprintln!(
        "drafted {} of {} dialogues into {}: correct each draft and remove its \"draft\": true, then train on the file",
        indices.len(),
        dialogues.len(),
        output.describe()
    );
    Ok(())
}

fn human(file: &Path, s: &data::Statistics) -> String {
    let format = serde_json::to_value(s.format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut text = format!(
        "{} ({format})\n  dialogues:     {} ({} with a summary)\n  turns:         {}\n  speakers:      {}\n",
        file.display(),
        s.dialogues,
        s.with_summary,
        s.turns,
        s.speakers
    );
    if s.drafts > 0 {
        text.push_str(&format!(
            "  drafts:        {} summaries still to review (\"draft\": true)\n",
            s.drafts
        ));
    }
    if let Some(t) = &s.token_lengths {
        text.push_str(&format!(
            "  prompt tokens: min {}, median {}, 90% {}, max {}; {} over the {}-token window (they would be cut)\n",
            t.min, t.median, t.p90, t.max, t.over_window, t.window
        ));
    }
    for warning in &s.warnings {
        text.push_str(&format!("  warning: {warning}\n"));
    }
    text
}
