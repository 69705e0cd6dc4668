//! ROUGE scoring speed against rouge-score: the DialogSum test summaries scored against each other
//! (1,500 pairs, four types, stemmer on), dialora and rouge-score taking turns three times.
//!
//!     cargo bench -p dialora-engine --bench rouge -- DIALOGSUM_TEST_JSONL [PYTHON]

mod common;
use common::median;

use std::path::Path;
use std::time::Instant;

use dialora_engine::data::{ImportOptions, import};
use dialora_engine::rouge;

fn main() {
    let args = common::arguments();
    let Some(data) = args.first() else {
        eprintln!("usage: cargo bench --bench rouge -- DIALOGSUM_TEST_JSONL [PYTHON]");
        std::process::exit(2);
    };
    let rows = import(Path::new(data), &ImportOptions::default())
        .unwrap()
        .dialogues;
    let pairs: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r.summaries.len() == 3)
        .flat_map(|r| {
            [(0, 1), (1, 2), (2, 0)].map(|(a, b)| (r.summaries[a].clone(), r.summaries[b].clone()))
        })
        .collect();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..3 {
        if let Some(python) = args.get(1) {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/reference_rouge.py");
            let output = std::process::Command::new(python)
                .arg(script)
                .arg(data)
                .output()
                .unwrap();
            theirs.push(
                String::from_utf8_lossy(&output.stdout)
                    .trim()
                    .parse::<f64>()
                    .unwrap(),
            );
        }
        let start = Instant::now();
        for (prediction, reference) in &pairs {
            std::hint::black_box(rouge::score(reference, prediction, true));
        }
        ours.push(start.elapsed().as_secs_f64());
    }
    let ours = median(ours);
    println!("| pairs | dialora s | rouge-score s | rouge-score / dialora |");
    println!("| --- | --- | --- | --- |");
    match (!theirs.is_empty()).then(|| median(theirs)) {
        Some(t) => println!(
            "| {} | {ours:.3} | {t:.3} | {:.1}x |",
            pairs.len(),
            t / ours
        ),
        None => println!("| {} | {ours:.3} | - | - |", pairs.len()),
    }
}
