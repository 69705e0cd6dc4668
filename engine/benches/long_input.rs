//! Long-transcript summarization time against transcript length: synthetic meetings of about 5k,
//! 10k and 20k tokens (T5 tokenizer) on a random flan-t5-base-shaped model, 512-token windows,
//! greedy, at most 48 new tokens per summary, batch 8. Prints each time and the least-squares
//! slope in seconds per 1,000 tokens; time grows linearly when the per-length times agree.
//!
//!     cargo bench -p dialora-engine --bench long_input -- MODELS_DIR

mod common;

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use dialora_engine::data::{Speakers, Turn};
use dialora_engine::long_input::summarize_long;
use dialora_engine::model::{LoadedModel, ModelFiles, Precision};
use dialora_engine::summarize::{SummarizeSettings, Summarizer};
use dialora_engine::task::{Cancel, NoProgress};

const SENTENCES: [&str; 6] = [
    "I think we should move the release to next Thursday.",
    "The budget for the second quarter is still under review.",
    "Can you send me the numbers from the last customer survey?",
    "We agreed to hire two more engineers for the platform team.",
    "Let's ask the legal department before we sign the contract.",
    "The new office opens in March, and everyone gets a parking spot.",
];

fn meeting(tokens: usize, summarizer: &Summarizer) -> Vec<Turn> {
    let names = ["Mary Ann", "Raj Patel", "Chen", "Olu"];
    let mut turns = Vec::new();
    let mut count = 0;
    let mut i = 0;
    while count < tokens {
        let text = (0..1 + i % 3)
            .map(|j| SENTENCES[(i * 7 + j) % SENTENCES.len()])
            .collect::<Vec<_>>()
            .join(" ");
        count += summarizer.model.tokenizer.count(&text).unwrap();
        turns.push(Turn {
            speaker: Some(names[i % names.len()].to_string()),
            text,
        });
        i += 1;
    }
    turns
}

fn main() {
    dialora_engine::runtime::keep_freed_memory();
    let args = common::arguments();
    let Some(models) = args.first() else {
        eprintln!("usage: cargo bench --bench long_input -- MODELS_DIR");
        std::process::exit(2);
    };
    let folder = Path::new(models).join("flan-t5-base");
    let files = ModelFiles::in_folder(&folder).unwrap();
    let summarizer =
        Summarizer::new(LoadedModel::load(&files, "base", &Device::Cpu, Precision::F32).unwrap());
    let mut settings = SummarizeSettings::default();
    settings.generation.max_new_tokens = 48;
    println!("| transcript tokens | windows | seconds | seconds per 1k tokens |");
    println!("| --- | --- | --- | --- |");
    let mut points = Vec::new();
    for tokens in [5_000, 10_000, 20_000] {
        let turns = meeting(tokens, &summarizer);
        let start = Instant::now();
        let long = summarize_long(
            &summarizer,
            &turns,
            Speakers::Names,
            None,
            &settings,
            &Cancel::new(),
            &NoProgress,
        )
        .unwrap();
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "| {tokens} | {} | {seconds:.1} | {:.2} |",
            long.windows,
            seconds / tokens as f64 * 1000.0
        );
        points.push((tokens as f64 / 1000.0, seconds));
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let slope = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum::<f64>()
        / points
            .iter()
            .map(|(x, _)| (x - mean_x).powi(2))
            .sum::<f64>();
    println!(
        "\nleast-squares slope: {slope:.2} s per 1,000 tokens, intercept {:.1} s",
        mean_y - slope * mean_x
    );
}
