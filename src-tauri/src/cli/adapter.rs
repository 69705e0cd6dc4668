//! `dialora adapter ...`: describe adapters and convert them.

use std::path::PathBuf;

use clap::Subcommand;
use dialora_engine::Result;
use dialora_engine::adapter;

#[derive(Subcommand)]
pub enum AdapterCommand {
    /// Describe an adapter: type, rank, alpha, target modules, base model, size.
    Inspect {
        /// The adapter: a PEFT folder or a single-file adapter.
        adapter: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read an adapter in any supported form and write it as a clean PEFT folder.
    Import {
        /// The adapter to read: a PEFT folder (any PEFT version) or a single-file adapter (.dlora).
        source: PathBuf,
        /// The PEFT folder to write.
        #[arg(long)]
        output: PathBuf,
    },
    /// Write an adapter as one shareable file (safetensors with the PEFT config and its card inside).
    Export {
        /// The adapter to read: a PEFT folder or a single-file adapter.
        source: PathBuf,
        /// The file to write (conventionally NAME.dlora).
        #[arg(long)]
        output: PathBuf,
    },
}

pub fn run(command: AdapterCommand) -> Result<()> {
    match command {
        AdapterCommand::Inspect { adapter, json } => {
            let description = adapter::describe(&adapter)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&description).unwrap_or_default()
                );
            } else {
                print!("{}", human(&description));
            }
            Ok(())
        }
        AdapterCommand::Import { source, output } => adapter::import(&source, &output),
        AdapterCommand::Export { source, output } => adapter::export(&source, &output),
    }
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
    format!(
        "{} adapter {}\n  base model:  {}\n  rank:        {} (alpha {}, scale {scale}{}), dropout {}\n  targets:     {} ({} modules: {})\n  parameters:  {} ({} bytes)\n{trained}",
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
