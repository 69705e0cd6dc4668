//! `dialora adapter ...`: describe adapters and convert them.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use dialora_engine::adapter;
use dialora_engine::task::Cancel;
use dialora_engine::{Error, Result, hub};

use super::output::{self, Destination};
use super::progress::TerminalProgress;

#[derive(Subcommand)]
pub enum AdapterCommand {
    /// Describe an adapter: type, rank, alpha, target modules, base model, size.
    Inspect {
        /// The adapter: a PEFT folder, a single-file adapter or a Hub id.
        adapter: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read an adapter in any supported form and write it as a clean PEFT folder.
    Import {
        /// The adapter to read: a PEFT folder (any PEFT version), a single-file adapter (.dlora) or
        /// a Hub id such as someone/flan-t5-meetings-lora (downloaded into the Hub cache).
        source: PathBuf,
        /// The PEFT folder to write.
        #[arg(long)]
        output: PathBuf,
        /// Replace the adapter --output holds.
        #[arg(long)]
        overwrite: bool,
    },
    /// Write an adapter as one shareable file (safetensors with the PEFT config and its card inside).
    Export {
        /// The adapter to read: a PEFT folder, a single-file adapter or a Hub id.
        source: PathBuf,
        /// The file to write (conventionally NAME.dlora; - for standard output).
        #[arg(long)]
        output: PathBuf,
        /// Replace --output if it exists.
        #[arg(long)]
        overwrite: bool,
        /// Record the adapter's ROUGE from a `dialora eval` report (report.json or its folder).
        #[arg(long)]
        rouge_from: Option<PathBuf>,
        /// Which run of the report, by label, when it evaluated several adapters.
        #[arg(long, requires = "rouge_from")]
        run: Option<String>,
    },
}

pub fn run(command: AdapterCommand, cancel: &Cancel) -> Result<()> {
    // Every adapter named here may be a Hub id, fetched (or found in the cache) first.
    let resolve = |spec: &Path| hub::resolve_adapter(spec, &TerminalProgress::new(), cancel);
    match command {
        AdapterCommand::Inspect { adapter, json } => {
            let mut description = adapter::describe(&resolve(&adapter)?)?;
            description.path = adapter.display().to_string();
            if json {
                let json = serde_json::to_string_pretty(&description).unwrap_or_default();
                output::print(&format!("{json}\n"))
            } else {
                output::print(&human(&description))
            }
        }
        AdapterCommand::Import {
            source,
            output,
            overwrite,
        } => {
            adapter::check_new_folder(&output, overwrite)?;
            adapter::import(&resolve(&source)?, &output)
        }
        AdapterCommand::Export {
            source,
            output,
            overwrite,
            rouge_from,
            run,
        } => {
            let destination = Destination::checked(&output, overwrite, "--output")?;
            let rouge = rouge_from
                .map(|report| rouge_of_run(&report, run.as_deref()))
                .transpose()?;
            destination.write(&adapter::export(&resolve(&source)?, rouge)?)
        }
    }
}

/// The ROUGE means of one adapter run of an eval report, with the data and count they were
/// measured on.
fn rouge_of_run(report: &Path, label: Option<&str>) -> Result<serde_json::Value> {
    let path = if report.is_dir() {
        report.join("report.json")
    } else {
        report.to_path_buf()
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid_at(&path, e.line(), format!("not an eval report: {e}")))?;
    let runs: Vec<&serde_json::Value> = json["runs"]
        .as_array()
        .map(|runs| runs.iter().filter(|r| !r["adapter"].is_null()).collect())
        .unwrap_or_default();
    let labels: Vec<&str> = runs.iter().filter_map(|r| r["label"].as_str()).collect();
    let chosen = match label {
        Some(label) => runs.iter().find(|r| r["label"] == label),
        None if runs.len() == 1 => runs.first(),
        None => None,
    };
    let Some(run) = chosen else {
        return Err(Error::invalid(
            &path,
            format!(
                "choose the adapter's run with --run (the report has: {})",
                labels.join(", ")
            ),
        ));
    };
    let mut rouge = run["rouge"].clone();
    rouge["data"] = json["data"].clone();
    rouge["count"] = json["count"].clone();
    Ok(rouge)
}

fn human(d: &adapter::Description) -> String {
    let scale = if d.use_rslora {
        d.lora_alpha / (d.r as f64).sqrt()
    } else {
        d.lora_alpha / d.r as f64
    };
    let by_name: Vec<String> = d
        .modules_by_name
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    let trained = d
        .card
        .as_ref()
        .map(|card| {
            let number = |key: &str| card.get(key).and_then(|v| v.as_f64());
            let losses = [
                ("loss", number("train_loss")),
                ("validation loss", number("validation_loss")),
            ]
            .iter()
            .filter_map(|(name, value)| value.map(|v| format!("{name} {v:.4}")))
            .collect::<Vec<_>>()
            .join(", ");
            format!(
                "  trained:     {} steps on {} ({losses})\n",
                card.get("steps").and_then(|v| v.as_u64()).unwrap_or(0),
                card.get("data")
                    .and_then(|v| v.as_str())
                    .unwrap_or("unknown data"),
            )
        })
        .unwrap_or_default();
    let rouge = d
        .card
        .as_ref()
        .and_then(|card| card.get("rouge"))
        .filter(|rouge| rouge.is_object())
        .map(|rouge| {
            let score = |key: &str| rouge[key].as_f64().unwrap_or(f64::NAN);
            format!(
                "  ROUGE:       1 {:.4}, 2 {:.4}, L {:.4}, Lsum {:.4} on {} dialogues of {}\n",
                score("rouge1"),
                score("rouge2"),
                score("rougeL"),
                score("rougeLsum"),
                rouge["count"],
                rouge["data"].as_str().unwrap_or("unknown data")
            )
        })
        .unwrap_or_default();
    let prompt = match &d.prompt_template {
        Some(template) => format!("{template:?}"),
        None => "not recorded (the reference prompt is used)".to_string(),
    };
    format!(
        "{} adapter {}\n  base model:  {}\n  rank:        {} (alpha {}, scale {scale}{}), dropout {}\n  targets:     {} ({} modules: {})\n  parameters:  {} ({} bytes)\n  prompt:      {prompt}\n{trained}{rouge}",
        d.peft_type,
        d.path,
        d.base_model.as_deref().unwrap_or("not recorded"),
        d.r,
        d.lora_alpha,
        if d.use_rslora { ", rsLoRA" } else { "" },
        d.lora_dropout,
        d.target_modules.join(", "),
        d.modules,
        by_name.join(", "),
        d.parameters,
        d.bytes,
    )
}
