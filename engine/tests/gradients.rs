//! Gradient parity with PyTorch + PEFT, against the step-1 gradients `fixtures/make_training_fixtures.py`
//! records (`gradients.json`, `gradients.safetensors`): every trained parameter's gradient of the
//! first batch of train.jsonl, within 1e-4 relative, and the total norm `clip_grad_norm_` returns,
//! for LoRA on attention and feed-forward modules (with rsLoRA, rank and alpha patterns, lm_head),
//! full fine-tuning of both T5 families, and gradient accumulation in two micro-batches.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use dialora_engine::adapter;
use dialora_engine::data::{ImportOptions, import};
use dialora_engine::lora::Adapter;
use dialora_engine::model::t5::{Gradients, Pair, Trained};
use dialora_engine::model::{LoadedModel, ModelFiles, Precision};
use dialora_engine::summarize::DEFAULT_PROMPT;
use dialora_engine::train::optimizer::clip_factor;
use serde_json::Value;

/// The longest prompt and summary the reference tokenized (make_fixtures.py's MAX_SOURCE and
/// make_training_fixtures.py's MAX_TARGET).
const MAX_SOURCE: usize = 128;
const MAX_TARGET: usize = 24;
/// How many values of each gradient the fixtures keep (make_training_fixtures.py's rule).
const SAMPLES: usize = 48;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("gradients.json")).expect("gradients.json");
    serde_json::from_str(&text).expect("gradients.json is JSON")
}

fn recorded() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("gradients.safetensors"), &Device::Cpu)
        .expect("gradients.safetensors")
}

/// The reference's first batch, tokenized as the trainer does.
fn batch(model: &LoadedModel, ids: &[Value]) -> Vec<Pair> {
    let data = import(&fixtures().join("train.jsonl"), &ImportOptions::default()).unwrap();
    ids.iter()
        .map(|id| {
            let dialogue = data
                .dialogues
                .iter()
                .find(|d| d.id.as_ref() == Some(id))
                .expect("the batch's dialogue is in train.jsonl");
            let prompt = DEFAULT_PROMPT.replace("{dialogue}", &dialogue.dialogue);
            Pair {
                source: model.tokenizer.encode(&prompt, MAX_SOURCE).unwrap().ids,
                target: model
                    .tokenizer
                    .encode(&dialogue.summaries[0], MAX_TARGET)
                    .unwrap()
                    .ids,
            }
        })
        .collect()
}

/// The step-1 gradients of `case` computed by dialora, with `micro_batches` splitting the batch
/// as gradient accumulation does; also the mean loss.
fn dialora_gradients(case: &Value, ids: &[Value], micro_batches: usize) -> (Gradients, f64) {
    let model_name = case["model"].as_str().unwrap();
    let files = ModelFiles::in_folder(&fixtures().join(model_name)).unwrap();
    let model = LoadedModel::load(&files, model_name, &Device::Cpu, Precision::F32).unwrap();
    let adapter = case["adapter"].as_str().map(|folder| {
        let files = adapter::read(&fixtures().join(folder), &Device::Cpu).unwrap();
        Adapter::new(files.config, files.weights, &model.t5.linear_shapes()).unwrap()
    });
    let trained = match adapter {
        Some(_) => Trained::Adapter,
        None => Trained::Everything,
    };
    let pairs = batch(&model, ids);
    let tokens: usize = pairs.iter().map(|p| p.target.len()).sum();
    let mut gradients = Gradients::default();
    let mut loss_sum = 0.0;
    for micro_batch in pairs.chunks(pairs.len() / micro_batches) {
        let refs: Vec<&Pair> = micro_batch.iter().collect();
        let (pass, tape) = model
            .t5
            .training_forward(&refs, adapter.as_ref(), &mut None)
            .unwrap();
        loss_sum += pass.loss_sum;
        let scale = 1.0 / tokens as f64;
        let micro = model
            .t5
            .backward(tape, adapter.as_ref(), trained, scale)
            .unwrap();
        gradients.accumulate(micro).unwrap();
    }
    (gradients, loss_sum / tokens as f64)
}

fn norm(tensor: &Tensor) -> f64 {
    tensor
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64
}

/// Compares `ours` with the reference of `case`: the same parameters, each gradient's norm and
/// its recorded values within `1e-4` relative (values: relative to the value, with the gradient's
/// root mean square as the floor for values near zero). The first difference found, in words.
fn compare(case_name: &str, ours: &Gradients) -> Result<(), String> {
    let reference = reference();
    let case = &reference["cases"][case_name];
    let recorded = recorded();
    let norms = case["norms"].as_object().unwrap();
    let mut names: Vec<&String> = ours.0.keys().collect();
    names.sort();
    let mut expected: Vec<&String> = norms.keys().collect();
    expected.sort();
    if names != expected {
        return Err(format!(
            "{case_name}: gradients of {names:?}, PyTorch has {expected:?}"
        ));
    }
    for (name, want_norm) in norms {
        let gradient = &ours.0[name];
        let want_norm = want_norm.as_f64().unwrap();
        let got_norm = norm(gradient).sqrt();
        if (got_norm - want_norm).abs() > 1e-4 * want_norm.max(1e-12) {
            return Err(format!(
                "{case_name} {name}: gradient norm {got_norm:e}, PyTorch {want_norm:e}"
            ));
        }
        let flat = gradient.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let n = flat.len();
        let k = n.min(SAMPLES);
        let want = recorded[&format!("{case_name}/{name}")]
            .to_vec1::<f32>()
            .unwrap();
        if want.len() != k {
            return Err(format!(
                "{case_name} {name}: {} recorded values for {n} elements",
                want.len()
            ));
        }
        let rms = want_norm / (n as f64).sqrt();
        for (i, &want) in want.iter().enumerate() {
            let got = flat[i * n / k] as f64;
            let want = want as f64;
            if (got - want).abs() > 1e-4 * (want.abs() + rms) {
                return Err(format!(
                    "{case_name} {name}[{}]: {got:e}, PyTorch {want:e}",
                    i * n / k
                ));
            }
        }
    }
    Ok(())
}

fn check_case(case_name: &str, micro_batches: usize) {
    let reference = reference();
    let case = &reference["cases"][case_name];
    let ids = reference["batch"].as_array().unwrap();
    let (gradients, loss) = dialora_gradients(case, ids, micro_batches);
    let want_loss = case["loss"].as_f64().unwrap();
    assert!(
        ((loss - want_loss) / want_loss).abs() < 1e-5,
        "{case_name}: loss {loss}, PyTorch {want_loss}"
    );
    if let Err(difference) = compare(case_name, &gradients) {
        panic!("{difference}");
    }
    let (_, grad_norm) = clip_factor(&gradients, 1.0).unwrap();
    let want_norm = case["grad_norm"].as_f64().unwrap();
    assert!(
        ((grad_norm - want_norm) / want_norm).abs() < 1e-4,
        "{case_name}: total gradient norm {grad_norm}, clip_grad_norm_ {want_norm}"
    );
}

#[test]
fn lora_gradients_match_peft_on_attention_and_feed_forward() {
    check_case("gated-a", 1);
}

#[test]
fn rslora_gradients_with_the_head_adapted_match_peft() {
    check_case("gated-b", 1);
}

#[test]
fn gradients_with_rank_and_alpha_patterns_match_peft_on_the_relu_family() {
    check_case("relu-c", 1);
}

#[test]
fn full_fine_tuning_gradients_match_transformers_for_both_families() {
    check_case("full-gated", 1);
    check_case("full-relu", 1);
}

#[test]
fn accumulated_micro_batches_give_the_whole_batch_gradients() {
    check_case("gated-a", 2);
    check_case("full-relu", 2);
}

#[test]
fn a_gradient_wrong_by_a_factor_of_two_in_one_tensor_fails_the_comparison() {
    let reference = reference();
    let ids = reference["batch"].as_array().unwrap();
    for case_name in ["gated-a", "full-gated"] {
        let case = &reference["cases"][case_name];
        let (mut gradients, _) = dialora_gradients(case, ids, 1);
        assert_eq!(compare(case_name, &gradients), Ok(()));
        let name = gradients.0.keys().nth(1).unwrap().clone();
        let doubled = (&gradients.0[&name] * 2.0).unwrap();
        gradients.0.insert(name.clone(), doubled);
        let refused = compare(case_name, &gradients).expect_err("a doubled gradient passed");
        assert!(refused.contains(&name), "{refused}");
    }
}

#[test]
fn passes_at_every_kernel_level() {
    common::passes_at_every_kernel_level();
}
