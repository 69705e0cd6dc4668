//! Training speed and memory: LoRA r=32 on q and v, batches of the first 8 DialogSum dialogues,
//! AdamW, dropout on (the model's 0.1 and LoRA's 0.05), on random flan-t5-small and -base-shaped
//! models, dialora's trainer vs PyTorch + PEFT, each in f32 and in bf16 (dialora's `--precision
//! bf16`; PyTorch's model in bfloat16, the adapter in f32, autocast; `bench/reference_training.py`).
//! Each side runs in its own process so that its peak resident memory is its own; every run of
//! dialora's is followed by one of the reference's in the same precision, two rounds, and the
//! ratios are of the medians. Tokens are the real source and target tokens of a step.
//!
//!     cargo bench -p dialora-engine --bench training -- MODELS_DIR DIALOGSUM_JSONL PYTHON

mod common;
use common::median;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use dialora_engine::data::{ImportOptions, import};
use dialora_engine::model::{LoadedModel, ModelFiles, Precision};
use dialora_engine::task::Cancel;
use dialora_engine::train::{TrainData, TrainEvent, TrainRequest, TrainSettings, train};

const BATCH: usize = 8;
const STEPS: usize = 4;
const ROUNDS: usize = 2;
/// The precisions each side trains in (`--precision`, `bench/reference_training.py`'s last
/// argument).
const PRECISIONS: [&str; 2] = ["f32", "bf16"];

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

/// The child process: trains `STEPS` steps with the base model in `precision` and prints its
/// measurement.
fn measure_dialora(folder: &Path, data: &Path, precision: Precision) {
    dialora_engine::runtime::keep_freed_memory();
    let files = ModelFiles::in_folder(folder).unwrap();
    let mut model = LoadedModel::load(&files, "bench", &Device::Cpu, precision).unwrap();
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
        let precision = Precision::from_name(&args[3]).expect("a precision");
        measure_dialora(Path::new(&args[1]), Path::new(&args[2]), precision);
        return;
    }
    let (Some(models), Some(data), Some(python)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: cargo bench --bench training -- MODELS_DIR DIALOGSUM_JSONL PYTHON");
        std::process::exit(2);
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/reference_training.py");
    let me = std::env::current_exe().unwrap();
    println!(
        "| model | dialora f32 tokens/s | dialora bf16 tokens/s | PyTorch f32 tokens/s | PyTorch bf16 tokens/s | best dialora / fastest PyTorch | dialora f32 peak GB | dialora bf16 peak GB | PyTorch f32 peak GB | PyTorch bf16 peak GB |"
    );
    println!("|{}", " --- |".repeat(10));
    for name in ["flan-t5-small", "flan-t5-base"] {
        let folder: PathBuf = Path::new(models).join(name);
        let mut ours = PRECISIONS.map(|_| Vec::<Measurement>::new());
        let mut theirs = PRECISIONS.map(|_| Vec::<Measurement>::new());
        for _ in 0..ROUNDS {
            for ((precision, our_runs), their_runs) in
                PRECISIONS.into_iter().zip(&mut ours).zip(&mut theirs)
            {
                let output = Command::new(&me)
                    .arg("child")
                    .arg(&folder)
                    .arg(data)
                    .arg(precision)
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                our_runs.push(parse(&output.stdout, "dialora"));
                if common::skipped(&format!("torch-{precision}")) {
                    continue;
                }
                let output = Command::new(python)
                    .arg(&script)
                    .args([
                        models.as_str(),
                        data.as_str(),
                        name,
                        &BATCH.to_string(),
                        precision,
                    ])
                    .output()
                    .unwrap();
                their_runs.push(parse(&output.stdout, "the reference"));
            }
        }
        // A side that did not run (`BENCH_SKIP`) shows as "-".
        let median_of = |runs: &[Measurement], value: fn(&Measurement) -> f64| {
            (!runs.is_empty()).then(|| median(runs.iter().map(value).collect()))
        };
        let rate = |runs: &[Measurement]| median_of(runs, |m| m.tokens / m.seconds);
        let peak = |runs: &[Measurement]| median_of(runs, |m| m.peak_bytes / 1e9);
        let best =
            |runs: &[Vec<Measurement>]| runs.iter().filter_map(|r| rate(r)).max_by(f64::total_cmp);
        let show =
            |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
        let ratio = best(&ours).zip(best(&theirs)).map(|(o, t)| o / t);
        let [ours_f32, ours_bf16] = &ours;
        let [theirs_f32, theirs_bf16] = &theirs;
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            show(rate(ours_f32), 0),
            show(rate(ours_bf16), 0),
            show(rate(theirs_f32), 0),
            show(rate(theirs_bf16), 0),
            ratio.map_or("-".to_string(), |r| format!("{r:.2}x")),
            show(peak(ours_f32), 2),
            show(peak(ours_bf16), 2),
            show(peak(theirs_f32), 2),
            show(peak(theirs_bf16), 2)
        );
    }
}
