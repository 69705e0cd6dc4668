//! Greedy generation speed, 64 new tokens, batch 1 and batch 8 of DialogSum dialogues, on random
//! flan-t5-small and -base-shaped models: dialora vs candle-transformers' T5 (batch 1: it has no
//! padding masks) vs, when a Python with the reference stack is given, PyTorch + transformers in
//! f32 and bf16 and CTranslate2 in f32 and int8 (`bench/reference_generation.py`, each in its own
//! process, whose peak resident memory goes into the results JSON), dialora in f32 and with
//! `--precision bf16`. This machine's speed drifts with its neighbours' load, so each round runs
//! every reference and then dialora in both precisions, three rounds, and the ratios are of the
//! medians: the fastest reference's over dialora's.
//!
//!     cargo bench -p dialora-engine --bench generation -- MODELS_DIR DIALOGSUM_JSONL [PYTHON]

mod common;
use common::median;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use dialora_engine::data::{ImportOptions, import};
use dialora_engine::generate::{GenerationConfig, generate};
use dialora_engine::model::{LoadedModel, ModelFiles, Precision};
use dialora_engine::summarize::DEFAULT_PROMPT;
use dialora_engine::task::Cancel;
use dialora_engine::tokenize::PaddedBatch;
use serde_json::{Value, json};

const NEW_TOKENS: usize = 64;
const RUNS: usize = 3;
const ROUNDS: usize = 3;

/// The backends of `bench/reference_generation.py` and their columns' names.
const REFERENCES: [(&str, &str); 4] = [
    ("torch-f32", "PyTorch f32"),
    ("torch-bf16", "PyTorch bf16"),
    ("ct2-f32", "CTranslate2 f32"),
    ("ct2-int8", "CTranslate2 int8"),
];

/// A reference's median time for the same work and its process's peak resident memory.
struct ReferenceRun {
    seconds: f64,
    peak_bytes: f64,
}

/// One run of `bench/reference_generation.py` on `backend`.
fn reference_run(
    python: &str,
    models: &str,
    data: &str,
    name: &str,
    batch: usize,
    backend: &str,
) -> ReferenceRun {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/reference_generation.py");
    let output = Command::new(python)
        .arg(script)
        .args([models, data, name, &batch.to_string(), backend])
        .output()
        .expect("the reference Python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<f64> = stdout
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [seconds, peak_bytes] => ReferenceRun {
            seconds,
            peak_bytes,
        },
        _ => panic!(
            "reference run {backend} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The medians of a reference's runs; `None` when it did not run.
fn medians(runs: &[ReferenceRun]) -> Option<ReferenceRun> {
    (!runs.is_empty()).then(|| ReferenceRun {
        seconds: median(runs.iter().map(|r| r.seconds).collect()),
        peak_bytes: median(runs.iter().map(|r| r.peak_bytes).collect()),
    })
}

fn time_runs(mut run: impl FnMut()) -> f64 {
    run(); // warm-up: page in the weights, size the allocator
    median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn dialora_seconds(model: &LoadedModel, prompts: &[Vec<u32>]) -> f64 {
    let batch = PaddedBatch::new(prompts, 0);
    let ids = Tensor::from_vec(batch.ids, (batch.rows, batch.width), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(batch.mask, (batch.rows, batch.width), &Device::Cpu).unwrap();
    let config = GenerationConfig {
        max_new_tokens: NEW_TOKENS,
        min_new_tokens: NEW_TOKENS,
        ..GenerationConfig::default()
    };
    time_runs(|| {
        let out = generate(&model.t5, None, &ids, &mask, &config, &Cancel::new()).unwrap();
        assert!(out.iter().all(|o| o.len() == NEW_TOKENS));
    })
}

fn candle_transformers_seconds(folder: &Path, prompt: &[u32]) -> f64 {
    use candle_transformers::models::t5;
    let config: t5::Config =
        serde_json::from_slice(&std::fs::read(folder.join("config.json")).unwrap()).unwrap();
    let weights = [folder.join("model.safetensors")];
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&weights, DType::F32, &Device::Cpu).unwrap() };
    let mut model = t5::T5ForConditionalGeneration::load(vb, &config).unwrap();
    let input = Tensor::new(prompt, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    time_runs(|| {
        model.clear_kv_cache();
        let encoded = model.encode(&input).unwrap();
        let mut tokens = vec![0u32];
        for step in 0..NEW_TOKENS {
            // With its KV cache on, the model takes only the newest token after the first step.
            let context = if step == 0 {
                &tokens[..]
            } else {
                &tokens[tokens.len() - 1..]
            };
            let decoder_input = Tensor::new(context, &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let logits = model
                .decode(&decoder_input, &encoded)
                .unwrap()
                .squeeze(0)
                .unwrap();
            // Forbid the end so that every run makes 64 tokens, as the others do.
            let mut values = logits.to_vec1::<f32>().unwrap();
            values[1] = f32::NEG_INFINITY;
            let next = values
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            tokens.push(next as u32);
        }
    })
}

fn main() {
    // As the dialora binary does.
    dialora_engine::runtime::keep_freed_memory();
    let args = common::arguments();
    let (Some(models), Some(data)) = (args.first(), args.get(1)) else {
        eprintln!("usage: cargo bench --bench generation -- MODELS_DIR DIALOGSUM_JSONL [PYTHON]");
        std::process::exit(2);
    };
    let python = args.get(2);
    let dialogues = import(Path::new(data), &ImportOptions::default())
        .unwrap()
        .dialogues;
    let mut results = Vec::new();
    let columns: Vec<String> = ["model", "batch", "dialora f32 s", "dialora bf16 s"]
        .into_iter()
        .map(String::from)
        .chain(["candle-transformers s".to_string()])
        .chain(REFERENCES.iter().map(|(_, column)| format!("{column} s")))
        .chain(
            [
                "fastest reference / dialora f32",
                "fastest reference / dialora bf16",
            ]
            .map(String::from),
        )
        .collect();
    println!("| {} |", columns.join(" | "));
    println!("|{}", " --- |".repeat(columns.len()));
    for name in ["flan-t5-small", "flan-t5-base"] {
        let folder: PathBuf = Path::new(models).join(name);
        let files = ModelFiles::in_folder(&folder).unwrap();
        let load = |precision| LoadedModel::load(&files, name, &Device::Cpu, precision).unwrap();
        let models_in = [load(Precision::F32), load(Precision::Bf16)];
        let prompts: Vec<Vec<u32>> = dialogues[..8]
            .iter()
            .map(|d| {
                models_in[0]
                    .tokenizer
                    .encode(&DEFAULT_PROMPT.replace("{dialogue}", &d.dialogue), 512)
                    .unwrap()
                    .ids
            })
            .collect();
        for batch in [1usize, 8] {
            let mut ours = [Vec::new(), Vec::new()];
            let mut reference_runs: Vec<Vec<ReferenceRun>> =
                REFERENCES.iter().map(|_| Vec::new()).collect();
            for _ in 0..ROUNDS {
                if let Some(python) = python {
                    for ((backend, _), runs) in REFERENCES.iter().zip(&mut reference_runs) {
                        if !common::skipped(backend) {
                            runs.push(reference_run(python, models, data, name, batch, backend));
                        }
                    }
                }
                for (model, times) in models_in.iter().zip(&mut ours) {
                    times.push(dialora_seconds(model, &prompts[..batch]));
                }
            }
            let ours = ours.map(median);
            let references: Vec<Option<ReferenceRun>> =
                reference_runs.iter().map(|runs| medians(runs)).collect();
            let fastest = references
                .iter()
                .flatten()
                .map(|r| r.seconds)
                .min_by(f64::total_cmp);
            let candle = (batch == 1).then(|| candle_transformers_seconds(&folder, &prompts[0]));
            let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
            let reference_seconds: Vec<String> = references
                .iter()
                .map(|r| show(r.as_ref().map(|r| r.seconds)))
                .collect();
            let ratio =
                |ours: f64| fastest.map_or("-".to_string(), |t| format!("{:.2}x", t / ours));
            println!(
                "| {name} | {batch} | {:.2} | {:.2} | {} | {} | {} | {} |",
                ours[0],
                ours[1],
                show(candle),
                reference_seconds.join(" | "),
                ratio(ours[0]),
                ratio(ours[1]),
            );
            let reference_results: serde_json::Map<String, Value> = REFERENCES
                .iter()
                .zip(&references)
                .map(|((backend, _), r)| {
                    let result = r.as_ref().map_or(
                        Value::Null,
                        |r| json!({"seconds": r.seconds, "peak_bytes": r.peak_bytes}),
                    );
                    (backend.to_string(), result)
                })
                .collect();
            results.push(json!({"model": name, "batch": batch, "dialora_f32_s": ours[0], "dialora_bf16_s": ours[1], "candle_transformers_s": candle, "references": reference_results}));
        }
    }
    let out = Path::new(models).join("../generation_results.json");
    let _ = std::fs::write(out, serde_json::to_string_pretty(&results).unwrap());
}
