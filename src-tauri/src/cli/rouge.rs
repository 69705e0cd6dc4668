//! `dialora rouge`: ROUGE of prediction and reference files, one text per line, as rouge-score.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use dialora_engine::data::read_text;
use dialora_engine::rouge::{self, Scores};
use dialora_engine::{Error, Result};

use super::output;

#[derive(Args)]
pub struct RougeArgs {
    /// Generated summaries, one per line.
    #[arg(long)]
    predictions: PathBuf,
    /// Reference summaries, one per line, in the same order.
    #[arg(long)]
    references: PathBuf,
    /// Stem words with the Porter stemmer (rouge-score's use_stemmer=True).
    #[arg(long)]
    stemmer: bool,
    /// Print JSON with the per-example scores.
    #[arg(long)]
    json: bool,
}

/// The lines of a UTF-8 text file (a final newline ends the last line; CRLF is accepted).
fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text = read_text(path)?;
    if text.is_empty() {
        return Err(Error::invalid(
            path,
            "the file is empty: it needs one text per line",
        ));
    }
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line).to_string())
        .collect())
}

pub fn run(args: RougeArgs) -> Result<()> {
    let predictions = read_lines(&args.predictions)?;
    let references = read_lines(&args.references)?;
    if predictions.len() != references.len() {
        return Err(Error::settings(format!(
            "{} has {} lines but {} has {}: each prediction needs its reference on the same line",
            args.predictions.display(),
            predictions.len(),
            args.references.display(),
            references.len()
        )));
    }
    let per_example: Vec<Scores> = predictions
        .iter()
        .zip(&references)
        .map(|(prediction, reference)| rouge::score(reference, prediction, args.stemmer))
        .collect();
    let mean = rouge::mean(&per_example);
    let mut text = String::new();
    if args.json {
        let mut json = serde_json::Map::new();
        json.insert("count".into(), per_example.len().into());
        for (name, score) in mean.named() {
            json.insert(name.into(), serde_json::to_value(score).unwrap_or_default());
        }
        json.insert(
            "per_example".into(),
            serde_json::to_value(&per_example).unwrap_or_default(),
        );
        let _ = writeln!(text, "{}", serde_json::Value::Object(json));
    } else {
        let _ = writeln!(
            text,
            "{} pairs{}",
            per_example.len(),
            if args.stemmer { ", stemmed" } else { "" }
        );
        let _ = writeln!(
            text,
            "{:<10} {:>9} {:>9} {:>9}",
            "", "precision", "recall", "F1"
        );
        for (name, score) in mean.named() {
            let _ = writeln!(
                text,
                "{name:<10} {:>9.4} {:>9.4} {:>9.4}",
                score.precision, score.recall, score.fmeasure
            );
        }
    }
    output::print(&text)
}
