//! Greedy generation speed, 64 new tokens, batch 1 and batch 8 of DialogSum dialogues, on random
//! flan-t5-small and -base-shaped models: dialora vs candle-transformers' T5 (batch 1: it has no
//! padding masks) vs PyTorch + transformers when a Python with the reference stack is given.
//! This machine's speed drifts with its neighbours' load, so dialora and PyTorch take turns, three
//! rounds each, and the ratio is of their medians.
//!
//!     cargo bench -p dialora-engine --bench generation -- MODELS_DIR DIALOGSUM_JSONL [PYTHON]

mod common;
use common::median;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use dialora_engine::data::{ImportOptions, import};
use dialora_engine::generate::{GenerationConfig, generate};
use dialora_engine::model::{LoadedModel, ModelFiles};
use dialora_engine::summarize::DEFAULT_PROMPT;
use dialora_engine::task::Cancel;
use dialora_engine::tokenize::PaddedBatch;
use serde_json::json;

const NEW_TOKENS: usize = 64;
const RUNS: usize = 3;
const ROUNDS: usize = 3;

/// PyTorch's median time for the same work, measured by `bench/reference_generation.py`.
fn pytorch_seconds(python: &str, models: &str, data: &str, name: &str, batch: usize) -> f64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/reference_generation.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .args([models, data, name, &batch.to_string()])
        .output()
        .expect("the reference Python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .trim()
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "reference run failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
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
    println!(
        "| model | batch | dialora s | candle-transformers s | PyTorch s | PyTorch / dialora |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for name in ["flan-t5-small", "flan-t5-base"] {
        let folder: PathBuf = Path::new(models).join(name);
        let model = LoadedModel::load(&ModelFiles::in_folder(&folder).unwrap(), name, &Device::Cpu)
            .unwrap();
        let prompts: Vec<Vec<u32>> = dialogues[..8]
            .iter()
            .map(|d| {
                model
                    .tokenizer
                    .encode(&DEFAULT_PROMPT.replace("{dialogue}", &d.dialogue), 512)
                    .unwrap()
                    .ids
            })
            .collect();
        for batch in [1usize, 8] {
            let mut ours = Vec::new();
            let mut torch = Vec::new();
            for _ in 0..ROUNDS {
                if let Some(python) = python {
                    torch.push(pytorch_seconds(python, models, data, name, batch));
                }
                ours.push(dialora_seconds(&model, &prompts[..batch]));
            }
            let ours = median(ours);
            let torch = (!torch.is_empty()).then(|| median(torch));
            let candle = (batch == 1).then(|| candle_transformers_seconds(&folder, &prompts[0]));
            let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
            println!(
                "| {name} | {batch} | {ours:.2} | {} | {} | {} |",
                show(candle),
                show(torch),
                torch.map_or("-".to_string(), |t| format!("{:.2}x", t / ours))
            );
            results.push(json!({"model": name, "batch": batch, "dialora_s": ours, "candle_transformers_s": candle, "pytorch_s": torch}));
        }
    }
    let out = Path::new(models).join("../generation_results.json");
    let _ = std::fs::write(out, serde_json::to_string_pretty(&results).unwrap());
}
