//! Training speed and memory: LoRA r=32 on q and v, batches of the first 8 DialogSum dialogues,
//! AdamW, dropout on (the model's 0.1 and LoRA's 0.05), on random flan-t5-small and -base-shaped
//! models, dialora's trainer vs PyTorch + PEFT (`bench/reference_training.py`). Each side runs in its
//! own process so that its peak resident memory is its own; they take turns, two rounds each, and
//! the ratio is of their medians. Tokens are the real source and target tokens of a step.
//!
//!     cargo bench -p dialora-engine --bench training -- MODELS_DIR DIALOGSUM_JSONL PYTHON

mod common;
use common::median;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use dialora_engine::data::{ImportOptions, import};
use dialora_engine::model::{LoadedModel, ModelFiles};
use dialora_engine::task::Cancel;
use dialora_engine::train::{TrainData, TrainEvent, TrainRequest, TrainSettings, train};

const BATCH: usize = 8;
const STEPS: usize = 4;
const ROUNDS: usize = 2;

/// One measurement: seconds per step (median of the steps after the first), tokens per step,
/// peak resident bytes of the process.
struct Measurement {
    seconds: f64,
    tokens: f64,
    peak_bytes: f64,
}

fn parse(stdout: &[u8], what: &str) -> Measurement {
    let text = String::from_utf8_lossy(stdout);
    let numbers: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [seconds, tokens, peak_bytes] => Measurement {
            seconds,
            tokens,
            peak_bytes,
        },
        _ => panic!("{what} printed no measurement: {text}"),
    }
}

fn peak_rss_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

/// The child process: trains `STEPS` steps and prints its measurement.
fn measure_dialora(folder: &Path, data: &Path) {
    dialora_engine::runtime::keep_freed_memory();
    let files = ModelFiles::in_folder(folder).unwrap();
    let mut model = LoadedModel::load(&files, "bench", &Device::Cpu).unwrap();
    let mut dialogues = import(data, &ImportOptions::default()).unwrap().dialogues;
    dialogues.truncate(BATCH);
    let data = TrainData {
        source: data.to_path_buf(),
        dialogues,
    };
    let output = tempfile::tempdir().unwrap();
    let settings = TrainSettings {
        batch_size: BATCH,
        max_steps: Some(STEPS),
        ..TrainSettings::default()
    };
    let request = TrainRequest {
        model: &mut model,
        model_files: &files,
        train: &data,
        validation: None,
        init_adapter: None,
        output: output.path().join("adapter"),
        resume: false,
        overwrite: false,
        settings,
    };
    let mut elapsed = Vec::new();
    let mut tokens = 0;
    train(request, &Cancel::new(), &mut |event| {
        if let TrainEvent::Step(record) = event {
            elapsed.push(record.elapsed_s);
            tokens = record.tokens;
        }
    })
    .unwrap();
    let mut steps: Vec<f64> = elapsed.windows(2).map(|w| w[1] - w[0]).collect();
    steps.sort_by(f64::total_cmp);
    let seconds = steps[steps.len() / 2];
    println!("{seconds} {tokens} {}", peak_rss_bytes());
}

fn main() {
    let args = common::arguments();
    if args.first().map(String::as_str) == Some("child") {
        measure_dialora(Path::new(&args[1]), Path::new(&args[2]));
        return;
    }
    let (Some(models), Some(data), Some(python)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: cargo bench --bench training -- MODELS_DIR DIALOGSUM_JSONL PYTHON");
        std::process::exit(2);
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/reference_training.py");
    let me = std::env::current_exe().unwrap();
    println!(
        "| model | dialora tokens/s | PyTorch tokens/s | dialora / PyTorch | dialora peak GB | PyTorch peak GB | memory ratio |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for name in ["flan-t5-small", "flan-t5-base"] {
        let folder: PathBuf = Path::new(models).join(name);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let output = Command::new(&me)
                .arg("child")
                .arg(&folder)
                .arg(data)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            ours.push(parse(&output.stdout, "dialora"));
            let output = Command::new(python)
                .arg(&script)
                .args([models.as_str(), data.as_str(), name, &BATCH.to_string()])
                .output()
                .unwrap();
            theirs.push(parse(&output.stdout, "the reference"));
        }
        let rate =
            |runs: &[Measurement]| median(runs.iter().map(|m| m.tokens / m.seconds).collect());
        let peak = |runs: &[Measurement]| median(runs.iter().map(|m| m.peak_bytes / 1e9).collect());
        let (our_rate, their_rate) = (rate(&ours), rate(&theirs));
        let (our_peak, their_peak) = (peak(&ours), peak(&theirs));
        println!(
            "| {name} | {our_rate:.0} | {their_rate:.0} | {:.2}x | {our_peak:.2} | {their_peak:.2} | {:.2} |",
            our_rate / their_rate,
            our_peak / their_peak
        );
    }
}
