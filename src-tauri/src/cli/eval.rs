//! `dialora eval`: the baseline and each adapter on the same dialogues, written as a report folder.

use std::path::PathBuf;

use clap::Args;
use dialora_engine::eval::{EvalSettings, evaluate};
use dialora_engine::summarize::Summarizer;
use dialora_engine::task::Cancel;
use dialora_engine::{Error, Result, report};

use super::data::ImportArgs;
use super::progress::TerminalProgress;
use super::summarize::{GenerationArgs, ModelArgs, NamedAdapter, PromptArgs};

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// An adapter to evaluate beside the baseline (repeat for several): a PEFT folder, a .dlora
    /// file or a Hub id.
    #[arg(long)]
    adapter: Vec<PathBuf>,
    /// Dialogues with reference summaries: any data file or folder, or dialogsum[:split] (test by
    /// default) from the Hub.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    import: ImportArgs,
    /// The report folder to write.
    #[arg(long)]
    output: PathBuf,
    /// Replace the report --output holds.
    #[arg(long)]
    overwrite: bool,
    /// Evaluate only the first N dialogues.
    #[arg(long, allow_negative_numbers = true)]
    limit: Option<usize>,
    /// Stem words when scoring ROUGE (rouge-score's use_stemmer).
    #[arg(long)]
    stemmer: bool,
    /// Longest reference in tokens for the loss.
    #[arg(long, default_value_t = 128, allow_negative_numbers = true)]
    max_target_length: usize,
    /// A training log (JSON lines with step, loss, validation_loss) to plot in the report.
    #[arg(long)]
    training_log: Option<PathBuf>,
    /// Seed of the bootstrap intervals.
    #[arg(long, default_value_t = 42, allow_negative_numbers = true)]
    seed: u64,
    #[command(flatten)]
    prompt: PromptArgs,
    #[command(flatten)]
    generation: GenerationArgs,
}

pub fn run(args: EvalArgs, cancel: &Cancel) -> Result<()> {
    let explicit = args.prompt.template.explicit()?;
    let mut settings = EvalSettings {
        summarize: args
            .prompt
            .settings(&args.generation, args.prompt.template.or_default()?),
        max_target_length: args.max_target_length,
        use_stemmer: args.stemmer,
        bootstrap_samples: 1000,
        seed: args.seed,
    };
    settings.summarize.validate()?;
    report::check_new(&args.output, args.overwrite)?;
    if args.limit == Some(0) {
        return Err(Error::settings("--limit must be at least 1"));
    }
    let mut dialogues = args
        .import
        .load(&args.data, "test", false, cancel)?
        .dialogues;
    if let Some(dialogue) = dialogues.iter().find(|d| d.summaries.is_empty()) {
        return Err(Error::invalid_at(
            &dialogue.file,
            dialogue.line,
            "this dialogue has no \"summary\" (or summary1..3) to evaluate against",
        ));
    }
    if let Some(dialogue) = dialogues.iter().find(|d| d.draft) {
        return Err(Error::invalid_at(
            &dialogue.file,
            dialogue.line,
            "this dialogue's summary is an unreviewed draft (\"draft\": true), not a reference to evaluate against",
        ));
    }
    dialogues.truncate(args.limit.unwrap_or(usize::MAX));
    let training_log = args
        .training_log
        .as_deref()
        .map(report::read_training_log)
        .transpose()?;
    let progress = TerminalProgress::new();
    let adapters = args
        .adapter
        .iter()
        .map(|spec| NamedAdapter::resolve(spec, &progress, cancel))
        .collect::<Result<Vec<_>>>()?;
    // Without --model: the base model the first adapter naming one names.
    let base_namer = adapters
        .iter()
        .find(|a| a.base_model.is_some())
        .or(adapters.first());
    let model_name = args.model.name(base_namer)?;
    let mut summarizer = Summarizer::new(args.model.load(&model_name, &progress, cancel)?.1);
    let precision = summarizer.model.precision;
    let mut labels = Vec::new();
    for named in &adapters {
        let path = &named.spec;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let label = if labels.contains(&name) {
            path.display().to_string()
        } else {
            name
        };
        summarizer.add_adapter(&label, named.read_for(&summarizer.model)?)?;
        labels.push(label);
    }
    // Each run with its own prompt: the adapter's template unless one was given.
    let mut runs = Vec::new();
    let adapters = std::iter::once(None).chain(labels.iter().map(|l| Some(l.as_str())));
    for adapter in adapters {
        settings.summarize.prompt_template =
            summarizer.prompt_template(adapter, explicit.as_deref());
        runs.push(evaluate(
            &summarizer,
            adapter,
            adapter.unwrap_or("baseline"),
            &dialogues,
            &settings,
            cancel,
            &progress,
        )?);
    }
    report::write(
        &args.output,
        &model_name,
        precision,
        &args.data.display().to_string(),
        &dialogues,
        &runs,
        training_log.as_deref(),
    )?;
    for run in &runs {
        eprintln!(
            "{:<24} loss {:.4}  rouge1 {:.4}  rouge2 {:.4}  rougeL {:.4}  rougeLsum {:.4}",
            run.label,
            run.loss,
            run.rouge.rouge1,
            run.rouge.rouge2,
            run.rouge.rouge_l,
            run.rouge.rouge_lsum
        );
    }
    eprintln!(
        "report written to {}",
        args.output.join("report.html").display()
    );
    Ok(())
}
