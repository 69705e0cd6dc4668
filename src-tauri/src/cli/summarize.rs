//! `dialora summarize`: dialogues in (JSONL), summaries out (JSONL, input order).

use std::path::{Path, PathBuf};

use clap::Args;
use dialora_engine::adapter::{self, AdapterFiles};
use dialora_engine::data::{Dialogue, Speakers};
use dialora_engine::fsutil::{NewFolder, check_new_files, write_atomically};
use dialora_engine::generate::{EarlyStopping, GenerationConfig};
use dialora_engine::long_input::{self, LongInput, LongSummary};
use dialora_engine::lora::Adapter;
use dialora_engine::model::{DeviceChoice, LoadedModel, ModelFiles, Precision};
use dialora_engine::summarize::{self, DEFAULT_PROMPT, SummarizeSettings, Summarizer};
use dialora_engine::task::Cancel;
use dialora_engine::{Error, Result, hub};

use super::data::ImportArgs;
use super::output::Destination;
use super::progress::TerminalProgress;

/// Decoding options shared by the commands that generate.
#[derive(Args, Clone)]
pub struct GenerationArgs {
    /// Hypotheses kept by beam search (1: greedy).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub num_beams: usize,
    /// Most tokens of a summary.
    #[arg(long, default_value_t = 200, allow_negative_numbers = true)]
    pub max_new_tokens: usize,
    /// Fewest tokens of a summary.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub min_new_tokens: usize,
    /// Beam search: >1 favours longer summaries, <1 shorter ones.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub length_penalty: f32,
    /// Never repeat a sequence of this many tokens (0: off).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
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
    /// Dialogues longer than --max-source-length: summarized window by window, or cut to fit (as
    /// transformers' truncation does). auto windows transcripts and cuts rows of data sets.
    #[arg(long, value_enum, default_value = "auto")]
    long_input: LongInputArg,
    /// Where to write the summaries: a JSONL file (- for standard output), or a folder (an
    /// existing one, or a path ending in /) for one Markdown file per transcript and index.csv.
    #[arg(long)]
    output: PathBuf,
    /// Replace what --output holds (files of the same names in a folder).
    #[arg(long)]
    overwrite: bool,
    /// A LoRA adapter: a PEFT folder, a single-file adapter (.dlora) or a Hub id such as
    /// someone/flan-t5-meetings-lora (downloaded once into the Hub cache).
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

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum LongInputArg {
    Auto,
    Window,
    Cut,
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
    #[arg(long, default_value_t = 8, allow_negative_numbers = true)]
    pub batch_size: usize,
    /// Longest prompt in tokens; longer dialogues are cut (with a warning).
    #[arg(long, default_value_t = 512, allow_negative_numbers = true)]
    pub max_source_length: usize,
    #[command(flatten)]
    pub template: TemplateArgs,
}

impl PromptArgs {
    /// The settings with the prompt template `template`.
    pub fn settings(&self, generation: &GenerationArgs, template: String) -> SummarizeSettings {
        SummarizeSettings {
            generation: generation.config(),
            batch_size: self.batch_size,
            max_source_length: self.max_source_length,
            prompt_template: template,
        }
    }
}

/// The prompt asked for on the command line: a style by name, or a template of one's own. Without
/// either, an adapter's own template is used, else the reference prompt.
#[derive(Args)]
pub struct TemplateArgs {
    /// The kind of summary: summary (DialogSum's), minutes, action-items or decisions.
    #[arg(long, conflicts_with = "prompt_template")]
    pub style: Option<String>,
    /// The prompt; {dialogue} stands for the dialogue [default: the adapter's own, else
    /// "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "].
    #[arg(long)]
    pub prompt_template: Option<String>,
}

impl TemplateArgs {
    /// The template given by `--style` or `--prompt-template`, if any.
    pub fn explicit(&self) -> Result<Option<String>> {
        match (&self.style, &self.prompt_template) {
            (Some(style), _) => Ok(Some(summarize::style(style)?.template.to_string())),
            (None, template) => Ok(template.clone()),
        }
    }

    /// The template given, else the reference prompt.
    pub fn or_default(&self) -> Result<String> {
        Ok(self
            .explicit()?
            .unwrap_or_else(|| DEFAULT_PROMPT.to_string()))
    }
}

/// The model to run and where, shared by the commands that load one.
#[derive(Args)]
pub struct ModelArgs {
    /// Model folder or Hub id (e.g. google/flan-t5-base) [default: the base model the adapter
    /// names in its adapter_config.json].
    #[arg(long)]
    pub model: Option<String>,
    /// Where to compute: auto takes a GPU when this build has support for one.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// How the model's weights are held: f32 (exact), bf16 (half the memory, faster on processors
    /// with AMX tiles), or auto (bf16 where it is faster, f32 elsewhere).
    #[arg(long, value_parser = precision, default_value = "auto")]
    pub precision: Precision,
}

fn precision(name: &str) -> std::result::Result<Precision, String> {
    Precision::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Precision::ALL.iter().map(|p| p.name()).collect();
        format!("it is one of {}", names.join(", "))
    })
}

impl ModelArgs {
    /// The model to load: `--model`, else the base model `adapter` names (said on stderr).
    pub fn name(&self, adapter: Option<&NamedAdapter>) -> Result<String> {
        if let Some(model) = &self.model {
            return Ok(model.clone());
        }
        match adapter {
            Some(named) => match &named.base_model {
                Some(base) => {
                    eprintln!(
                        "using the base model {} names: {base} (--model to choose another)",
                        named.spec.display()
                    );
                    Ok(base.clone())
                }
                None => Err(Error::settings(format!(
                    "{}: the adapter names no base model (base_model_name_or_path); give --model (a model folder or a Hub id like google/flan-t5-base)",
                    named.spec.display()
                ))),
            },
            None => Err(Error::settings(
                "no model: give --model (a model folder or a Hub id like google/flan-t5-base), or an adapter whose config names its base model",
            )),
        }
    }

    /// The files of the model `name` (a folder or a Hub id, with a progress bar for downloads)
    /// and the model loaded on the device asked for.
    pub fn load(
        &self,
        name: &str,
        progress: &TerminalProgress,
        cancel: &Cancel,
    ) -> Result<(ModelFiles, LoadedModel)> {
        self.load_in(name, self.precision, progress, cancel)
    }

    /// [`ModelArgs::load`] in `precision` (which a command may decide from `--precision`).
    pub fn load_in(
        &self,
        name: &str,
        precision: Precision,
        progress: &TerminalProgress,
        cancel: &Cancel,
    ) -> Result<(ModelFiles, LoadedModel)> {
        let device = self.device.choice().device()?;
        let files = hub::resolve_model(name, progress, cancel)?;
        let model = LoadedModel::load(&files, name, &device, precision)?;
        Ok((files, model))
    }
}

/// An adapter named on the command line: a PEFT folder, a single-file adapter, or a Hub id
/// (downloaded into the Hub cache first), with what its config says about it.
pub struct NamedAdapter {
    /// As the user gave it, for messages and labels.
    pub spec: PathBuf,
    /// Where it is read from: the path given, or its folder in the Hub cache.
    pub path: PathBuf,
    /// The model it was trained on (`base_model_name_or_path`), if its config says.
    pub base_model: Option<String>,
    /// The prompt template it was trained with, if it records one.
    pub prompt_template: Option<String>,
}

impl NamedAdapter {
    /// Finds (downloads when it is a Hub id not yet cached) and checks the adapter `spec`.
    pub fn resolve(spec: &Path, progress: &TerminalProgress, cancel: &Cancel) -> Result<Self> {
        let path = hub::resolve_adapter(spec, progress, cancel)?;
        let description = adapter::describe(&path)?;
        Ok(Self {
            spec: spec.to_path_buf(),
            path,
            base_model: description.base_model,
            prompt_template: description.prompt_template,
        })
    }

    /// Reads the adapter for `model`. When it was trained on another base model (by name) this
    /// is said in one sentence before anything runs: a warning when its weights fit the model,
    /// else the error (the shape check every use of an adapter makes).
    pub fn read_for(&self, model: &LoadedModel) -> Result<AdapterFiles> {
        let files = adapter::read(&self.path, model.t5.device())?;
        let Some(base) = self
            .base_model
            .as_deref()
            .filter(|b| !same_model(b, &model.name))
        else {
            return Ok(files);
        };
        let fits = Adapter::new(
            files.config.clone(),
            files.weights.clone(),
            &model.t5.linear_shapes(),
        );
        match fits {
            Ok(_) => {
                eprintln!(
                    "warning: {} was trained on {base}, not {}; its weights fit, so it is used with this model, though it may do worse than with its own",
                    self.spec.display(),
                    model.name
                );
                Ok(files)
            }
            Err(error) => Err(Error::invalid(
                &self.spec,
                format!(
                    "this adapter was trained on {base}, not {}, and does not fit it: {error}",
                    model.name
                ),
            )),
        }
    }
}

/// Whether two model names (Hub ids or folders) name the same model: owners and folders aside,
/// `google/flan-t5-base`, `flan-t5-base` and `/models/flan-t5-base/` are one model.
fn same_model(a: &str, b: &str) -> bool {
    let name = |spec: &str| {
        let trimmed = spec.trim_end_matches(['/', '\\']);
        trimmed
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(trimmed)
            .to_lowercase()
    };
    name(a) == name(b)
}

/// The settings asked for on the command line, and the template given explicitly (if any).
pub(super) fn asked_settings(
    prompt: &PromptArgs,
    generation: &GenerationArgs,
) -> Result<(SummarizeSettings, Option<String>)> {
    let explicit = prompt.template.explicit()?;
    let template = explicit
        .clone()
        .unwrap_or_else(|| DEFAULT_PROMPT.to_string());
    let settings = prompt.settings(generation, template);
    settings.validate()?;
    Ok((settings, explicit))
}

/// Loads the model (`--model`, else the base model the adapter names) with `adapter` (a path or a
/// Hub id) attached as "adapter" (folded in with `merge`) and sets the prompt of `settings`: the
/// explicit one, else the adapter's own (said on stderr), else the reference. Returns the name to
/// summarize with.
pub(super) fn load_with_adapter(
    model: &ModelArgs,
    adapter: Option<&Path>,
    merge: bool,
    settings: &mut SummarizeSettings,
    explicit: Option<&str>,
    cancel: &Cancel,
) -> Result<(Summarizer, Option<&'static str>)> {
    let progress = TerminalProgress::new();
    let named = adapter
        .map(|spec| NamedAdapter::resolve(spec, &progress, cancel))
        .transpose()?;
    let model_name = model.name(named.as_ref())?;
    let mut summarizer = Summarizer::new(model.load(&model_name, &progress, cancel)?.1);
    let name = match named {
        Some(named) => {
            let files = named.read_for(&summarizer.model)?;
            summarizer.add_adapter("adapter", files)?;
            if merge {
                summarizer.merge("adapter")?;
                None
            } else {
                Some("adapter")
            }
        }
        None => None,
    };
    settings.prompt_template = summarizer.prompt_template(name, explicit);
    settings.validate()?;
    if explicit.is_none() && settings.prompt_template != DEFAULT_PROMPT {
        eprintln!(
            "using the prompt the adapter was trained with: {:?} (--style or --prompt-template to change it)",
            settings.prompt_template
        );
    }
    Ok((summarizer, name))
}

pub fn run(args: SummarizeArgs, cancel: &Cancel) -> Result<()> {
    let (mut settings, explicit) = asked_settings(&args.prompt, &args.generation)?;
    let dialogues = args
        .import
        .load(&args.input, "test", false, cancel)?
        .dialogues;
    let as_folder = args.output.is_dir() || args.output.to_string_lossy().ends_with(['/', '\\']);
    // The output rule, before the work: nothing of the user's is replaced without --overwrite.
    let destination = if as_folder {
        let files = folder_files(&dialogues);
        let names: Vec<&str> = files.iter().map(String::as_str).collect();
        check_new_files(&args.output, &names, args.overwrite)?;
        None
    } else {
        Some(Destination::checked(
            &args.output,
            args.overwrite,
            "--output",
        )?)
    };
    let (summarizer, adapter_name) = load_with_adapter(
        &args.model,
        args.adapter.as_deref(),
        args.merge,
        &mut settings,
        explicit.as_deref(),
        cancel,
    )?;
    let progress = TerminalProgress::new();
    let summaries = summarize_all(
        &summarizer,
        &dialogues,
        args.import.speakers(),
        args.long_input,
        adapter_name,
        &settings,
        cancel,
        &progress,
    )?;
    let written = match destination {
        None => write_folder(&args.output, &dialogues, &summaries),
        Some(destination) => destination.write(jsonl(&dialogues, &summaries).as_bytes()),
    };
    written.map_err(|e| match e {
        Error::File {
            path,
            message,
            problem,
        } => Error::File {
            path,
            message: format!("cannot write the summaries: {message}"),
            problem,
        },
        other => other,
    })
}

/// Summaries of every dialogue, with a warning for those cut to the source window.
#[allow(clippy::too_many_arguments)]
pub(super) fn summarize_all(
    summarizer: &Summarizer,
    dialogues: &[Dialogue],
    speakers: Speakers,
    long_input: LongInputArg,
    adapter: Option<&str>,
    settings: &SummarizeSettings,
    cancel: &Cancel,
    progress: &TerminalProgress,
) -> Result<Vec<LongSummary>> {
    let long_input = match long_input {
        LongInputArg::Auto => LongInput::Auto,
        LongInputArg::Window => LongInput::Window,
        LongInputArg::Cut => LongInput::Cut,
    };
    let (summaries, cut) = long_input::summarize_all(
        summarizer, dialogues, speakers, long_input, adapter, settings, cancel, progress,
    )?;
    if cut > 0 {
        eprintln!(
            "warning: {cut} of {} dialogues were longer than {} tokens and were cut (see --max-source-length and --long-input)",
            dialogues.len(),
            settings.max_source_length
        );
    }
    Ok(summaries)
}

fn jsonl(dialogues: &[Dialogue], summaries: &[LongSummary]) -> String {
    let mut output = String::new();
    for (index, (dialogue, summary)) in dialogues.iter().zip(summaries).enumerate() {
        let row =
            serde_json::json!({ "id": dialogue.id_or_position(index), "summary": summary.summary });
        output.push_str(&row.to_string());
        output.push('\n');
    }
    output
}

/// The title of each dialogue (its id, else its position).
fn title(dialogue: &Dialogue, number: usize) -> String {
    match dialogue.id_or_position(number) {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

/// The files a folder of summaries gets: one Markdown file per dialogue, named after its title
/// (made unique), then `index.csv`.
fn folder_files(dialogues: &[Dialogue]) -> Vec<String> {
    let mut used = std::collections::HashSet::new();
    let mut files = Vec::new();
    for (number, dialogue) in dialogues.iter().enumerate() {
        let stem: String = title(dialogue, number)
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut file = format!("{stem}.md");
        let mut copy = 2;
        while !used.insert(file.clone()) {
            file = format!("{stem}-{copy}.md");
            copy += 1;
        }
        files.push(file);
    }
    files.push(INDEX_FILE.to_string());
    files
}

const INDEX_FILE: &str = "index.csv";

/// One Markdown file per dialogue (title, participants, summary, the partial summaries folded
/// away) and `index.csv` listing them.
fn write_folder(folder: &Path, dialogues: &[Dialogue], summaries: &[LongSummary]) -> Result<()> {
    let made = NewFolder::create(folder)?;
    let mut index = String::from("file,title,participants,turns,windows,summary\n");
    let files = folder_files(dialogues);
    for (number, ((dialogue, summary), file)) in
        dialogues.iter().zip(summaries).zip(files).enumerate()
    {
        let title = title(dialogue, number);
        let mut participants: Vec<&str> = Vec::new();
        for name in dialogue.turns.iter().filter_map(|t| t.speaker.as_deref()) {
            if !participants.contains(&name) {
                participants.push(name);
            }
        }
        let named = if participants.is_empty() {
            "not named in the transcript".to_string()
        } else {
            participants.join(", ")
        };
        let mut markdown = format!(
            "# {title}\n\n**Participants:** {named}\n\n## Summary\n\n{}\n",
            summary.summary
        );
        if !summary.levels.is_empty() {
            markdown.push_str(&format!(
                "\n<details>\n<summary>Partial summaries ({} windows)</summary>\n",
                summary.windows
            ));
            for (level, partials) in summary.levels.iter().enumerate() {
                markdown.push_str(&format!("\n### Level {}\n\n", level + 1));
                for (i, partial) in partials.iter().enumerate() {
                    markdown.push_str(&format!("{}. {partial}\n", i + 1));
                }
            }
            markdown.push_str("\n</details>\n");
        }
        write_atomically(&folder.join(&file), markdown.as_bytes())?;
        let fields = [
            file,
            title,
            participants.join("; "),
            dialogue.turns.len().to_string(),
            summary.windows.to_string(),
            summary.summary.clone(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        index.push_str(&row.join(","));
        index.push('\n');
    }
    write_atomically(&folder.join(INDEX_FILE), index.as_bytes())?;
    made.keep();
    Ok(())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
