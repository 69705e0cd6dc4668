//! Adapters: adapter_config.json disagreeing with its tensors (rank, targets, rank_pattern),
//! impossible or mistyped values, weights that are NaN, infinite, integer-typed or of the wrong
//! shape, unreadable weights files, and single-file adapters (.dlora) truncated or carrying
//! metadata that contradicts their tensors. Every command that reads an adapter refuses them.

use super::*;

const CONFIG: &str = "adapter_config.json";
const WEIGHTS: &str = "adapter_model.safetensors";
/// A module that gated-a adapts, and the keys of its two halves.
const MODULE: &str = "encoder.block.0.layer.0.SelfAttention.q";
const MODULE_A: &str = "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight";
const MODULE_B: &str = "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight";

/// `dialora summarize` with the fixture model t5-gated and `adapter`.
fn summarize_adapted(dir: &Path, adapter: &Path) -> Command {
    let mut command = summarize_with(dir, &fixtures().join("t5-gated"));
    command.arg("--adapter").arg(adapter);
    command
}

/// Asserts that summarizing with `adapter` is refused naming `fragments`, and writes nothing.
fn summarize_refuses(adapter: &Path, fragments: &[&str]) {
    let work = workspace();
    refused(
        run_measured(&mut summarize_adapted(work.path(), adapter)),
        fragments,
    );
    assert!(!work.path().join("summaries.jsonl").exists());
}

fn inspect_refuses(adapter: &Path, fragments: &[&str]) {
    let work = workspace();
    let run = run_measured(
        dialora_in(work.path())
            .args(["adapter", "inspect"])
            .arg(adapter)
            .arg("--json"),
    );
    refused(run, fragments);
}

/// A copy of gated-a whose adapter_config.json has `key` set to `value`.
fn adapter_with_config(key: &str, value: Value) -> tempfile::TempDir {
    let adapter = copy_adapter("gated-a");
    edit_json(&adapter.path().join(CONFIG), |config| config[key] = value);
    adapter
}

/// A copy of gated-a whose tensor `name` has `edit` applied.
fn adapter_with_tensor(name: &str, edit: impl FnOnce(&mut StoredTensor)) -> tempfile::TempDir {
    let adapter = copy_adapter("gated-a");
    edit_tensor(&adapter.path().join(WEIGHTS), name, edit);
    adapter
}

/// Sets one value of a tensor (stored as F32) to `value`.
fn poison(value: f32) -> impl FnOnce(&mut StoredTensor) {
    move |tensor| {
        let mut values = tensor.f32_values();
        values[3] = value;
        tensor.set_f32_values(&values);
    }
}

/// Stores a tensor as integers of `dtype` (`bytes` per value), as a careless conversion would.
fn as_integers(dtype: &'static str, bytes: usize) -> impl FnOnce(&mut StoredTensor) {
    move |tensor| {
        let values = tensor.f32_values();
        tensor.dtype = dtype.to_string();
        tensor.data = values
            .iter()
            .flat_map(|v| ((v * 100.0) as i64).to_le_bytes()[..bytes].to_vec())
            .collect();
    }
}

#[test]
fn a_rank_far_larger_than_the_tensors() {
    // r = 10^9 with rank-4 tensors: believing the config would scale by alpha / 10^9.
    let adapter = adapter_with_config("r", 1_000_000_000.into());
    summarize_refuses(adapter.path(), &[CONFIG, "r"]);
}

#[test]
fn a_rank_that_disagrees_with_the_tensors() {
    let adapter = adapter_with_config("r", 8.into());
    inspect_refuses(adapter.path(), &[CONFIG, "r"]);
}

#[test]
fn a_rank_of_zero() {
    let adapter = adapter_with_config("r", 0.into());
    summarize_refuses(adapter.path(), &[CONFIG, "r"]);
}

#[test]
fn a_negative_rank() {
    let adapter = adapter_with_config("r", (-4).into());
    summarize_refuses(adapter.path(), &[CONFIG, "r"]);
}

#[test]
fn a_rank_written_as_a_string() {
    let adapter = adapter_with_config("r", "4".into());
    inspect_refuses(adapter.path(), &[CONFIG, "r"]);
}

#[test]
fn an_alpha_written_as_a_word() {
    let adapter = adapter_with_config("lora_alpha", "eight".into());
    summarize_refuses(adapter.path(), &[CONFIG, "lora_alpha"]);
}

#[test]
fn an_alpha_beyond_any_number() {
    let adapter = copy_adapter("gated-a");
    set_raw_json_value(&adapter.path().join(CONFIG), "lora_alpha", "1e400");
    summarize_refuses(adapter.path(), &[CONFIG, "lora_alpha"]);
}

#[test]
fn a_dropout_above_one() {
    let adapter = adapter_with_config("lora_dropout", 2.into());
    inspect_refuses(adapter.path(), &[CONFIG, "lora_dropout"]);
}

#[test]
fn an_empty_target_list_with_tensors_present() {
    let adapter = adapter_with_config("target_modules", serde_json::json!([]));
    summarize_refuses(adapter.path(), &[CONFIG, "target_modules"]);
}

#[test]
fn target_names_that_match_no_module() {
    let adapter = adapter_with_config("target_modules", serde_json::json!(["query", "value"]));
    summarize_refuses(adapter.path(), &[CONFIG, "target_modules"]);
}

#[test]
fn a_target_pattern_that_is_not_a_regular_expression() {
    let adapter = adapter_with_config("target_modules", ".*(q|v".into());
    summarize_refuses(adapter.path(), &[CONFIG, "target_modules"]);
}

#[test]
fn a_target_pattern_that_matches_no_module() {
    let adapter = adapter_with_config("target_modules", ".*\\.attention\\.query".into());
    inspect_refuses(adapter.path(), &[CONFIG, "target_modules"]);
}

#[test]
fn targets_that_leave_out_modules_the_tensors_adapt() {
    // The tensors adapt q, v, wi_0 and wo; the config claims q alone.
    let adapter = adapter_with_config("target_modules", serde_json::json!(["q"]));
    summarize_refuses(adapter.path(), &[CONFIG, "target_modules"]);
}

#[test]
fn targets_written_as_a_number() {
    let adapter = adapter_with_config("target_modules", 5.into());
    summarize_refuses(adapter.path(), &[CONFIG, "target_modules"]);
}

#[test]
fn a_rank_pattern_of_zero() {
    let adapter = adapter_with_config("rank_pattern", serde_json::json!({"q": 0}));
    summarize_refuses(adapter.path(), &[CONFIG, "rank_pattern"]);
}

#[test]
fn a_rank_pattern_that_disagrees_with_the_tensors() {
    let adapter = adapter_with_config("rank_pattern", serde_json::json!({"q": 8}));
    inspect_refuses(adapter.path(), &[CONFIG, "rank_pattern"]);
}

#[test]
fn a_negative_rank_pattern() {
    let adapter = adapter_with_config("rank_pattern", serde_json::json!({"q": -1}));
    summarize_refuses(adapter.path(), &[CONFIG, "rank_pattern"]);
}

#[test]
fn an_alpha_pattern_written_as_a_word() {
    let adapter = adapter_with_config("alpha_pattern", serde_json::json!({"q": "high"}));
    summarize_refuses(adapter.path(), &[CONFIG, "alpha_pattern"]);
}

#[test]
fn another_kind_of_peft_adapter() {
    let adapter = adapter_with_config("peft_type", "PREFIX_TUNING".into());
    summarize_refuses(adapter.path(), &[CONFIG, "peft_type"]);
}

#[test]
fn a_config_of_random_bytes() {
    let adapter = copy_adapter("gated-a");
    std::fs::write(adapter.path().join(CONFIG), random_bytes(900)).unwrap();
    summarize_refuses(adapter.path(), &[CONFIG]);
}

#[test]
fn an_empty_config() {
    let adapter = copy_adapter("gated-a");
    std::fs::write(adapter.path().join(CONFIG), "").unwrap();
    inspect_refuses(adapter.path(), &[CONFIG]);
}

#[test]
fn a_config_that_is_an_array() {
    let adapter = copy_adapter("gated-a");
    std::fs::write(adapter.path().join(CONFIG), "[\"q\", \"v\"]").unwrap();
    summarize_refuses(adapter.path(), &[CONFIG]);
}

#[test]
fn nan_weights() {
    let adapter = adapter_with_tensor(MODULE_A, poison(f32::NAN));
    summarize_refuses(adapter.path(), &[WEIGHTS, MODULE]);
}

#[test]
fn infinite_weights() {
    let adapter = adapter_with_tensor(MODULE_B, poison(f32::INFINITY));
    summarize_refuses(adapter.path(), &[WEIGHTS, MODULE]);
}

#[test]
fn negatively_infinite_weights_are_refused_by_inspect_too() {
    let adapter = adapter_with_tensor(MODULE_A, poison(f32::NEG_INFINITY));
    inspect_refuses(adapter.path(), &[WEIGHTS, MODULE]);
}

#[test]
fn weights_stored_as_32_bit_integers() {
    let adapter = adapter_with_tensor(MODULE_A, as_integers("I32", 4));
    summarize_refuses(adapter.path(), &[WEIGHTS, MODULE]);
}

#[test]
fn weights_stored_as_bytes() {
    let adapter = adapter_with_tensor(MODULE_B, as_integers("U8", 1));
    summarize_refuses(adapter.path(), &[WEIGHTS, MODULE]);
}

#[test]
fn weights_stored_as_64_bit_integers() {
    let adapter = adapter_with_tensor(MODULE_A, as_integers("I64", 8));
    inspect_refuses(adapter.path(), &[WEIGHTS, MODULE]);
}

/// IEEE half precision of `value` (truncated; values too small for it become 0).
fn half_bits(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mantissa = ((bits >> 13) & 0x3ff) as u16;
    match exponent {
        ..=0 => sign,
        31.. => sign | 0x7c00,
        _ => sign | ((exponent as u16) << 10) | mantissa,
    }
}

#[test]
fn weights_saved_in_half_precision_are_fine() {
    // PEFT adapters trained in float16 are common on the Hub.
    let adapter = copy_adapter("gated-a");
    edit_safetensors(&adapter.path().join(WEIGHTS), |tensors, _| {
        for tensor in tensors.iter_mut() {
            let values = tensor.f32_values();
            tensor.dtype = "F16".to_string();
            tensor.data = values
                .iter()
                .flat_map(|v| half_bits(*v).to_le_bytes())
                .collect();
        }
    });
    let work = workspace();
    succeeded(run_measured(&mut summarize_adapted(
        work.path(),
        adapter.path(),
    )));
}

#[test]
fn weights_saved_in_bfloat16_are_fine() {
    let adapter = copy_adapter("gated-a");
    edit_safetensors(&adapter.path().join(WEIGHTS), |tensors, _| {
        for tensor in tensors.iter_mut() {
            let values = tensor.f32_values();
            tensor.dtype = "BF16".to_string();
            tensor.data = values
                .iter()
                .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
                .collect();
        }
    });
    let work = workspace();
    succeeded(run_measured(&mut summarize_adapted(
        work.path(),
        adapter.path(),
    )));
}

#[test]
fn an_a_half_whose_width_is_not_the_modules() {
    // q takes 32 inputs; the A half claims 4 x 31 (and its bytes are cut to fit).
    let adapter = adapter_with_tensor(MODULE_A, |tensor| {
        tensor.shape = vec![4, 31];
        tensor.data.truncate(4 * 31 * 4);
    });
    summarize_refuses(adapter.path(), &[MODULE]);
}

#[test]
fn halves_of_different_ranks() {
    // B claims rank 2 where A has rank 4.
    let adapter = adapter_with_tensor(MODULE_B, |tensor| {
        tensor.shape = vec![72, 2];
    });
    summarize_refuses(adapter.path(), &[WEIGHTS, MODULE]);
}

#[test]
fn a_half_that_is_a_vector() {
    let adapter = adapter_with_tensor(MODULE_A, |tensor| {
        tensor.shape = vec![4 * 32];
    });
    summarize_refuses(adapter.path(), &[WEIGHTS, MODULE]);
}

#[test]
fn a_half_with_three_dimensions() {
    let adapter = adapter_with_tensor(MODULE_A, |tensor| {
        tensor.shape = vec![2, 2, 32];
    });
    inspect_refuses(adapter.path(), &[WEIGHTS, MODULE]);
}

#[test]
fn a_module_with_only_one_half() {
    let adapter = copy_adapter("gated-a");
    edit_safetensors(&adapter.path().join(WEIGHTS), |tensors, _| {
        tensors.retain(|t| t.name != MODULE_B)
    });
    summarize_refuses(adapter.path(), &[WEIGHTS, MODULE]);
}

#[test]
fn a_tensor_that_is_not_lora() {
    let adapter = copy_adapter("gated-a");
    edit_safetensors(&adapter.path().join(WEIGHTS), |tensors, _| {
        let mut extra = tensors[0].clone();
        extra.name = "base_model.model.shared.weight".to_string();
        tensors.push(extra);
    });
    summarize_refuses(adapter.path(), &[WEIGHTS, "base_model.model.shared.weight"]);
}

#[test]
fn a_module_the_model_does_not_have() {
    // t5-gated has two encoder blocks; this adapts a tenth.
    let adapter = copy_adapter("gated-a");
    edit_safetensors(&adapter.path().join(WEIGHTS), |tensors, _| {
        for tensor in tensors.iter_mut() {
            tensor.name = tensor.name.replace("encoder.block.1.", "encoder.block.9.");
        }
    });
    summarize_refuses(adapter.path(), &["encoder.block.9"]);
}

#[test]
fn truncated_weights() {
    let adapter = copy_adapter("gated-a");
    let path = adapter.path().join(WEIGHTS);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
    summarize_refuses(adapter.path(), &[WEIGHTS]);
}

#[test]
fn a_weights_header_length_near_the_largest_integer() {
    let adapter = copy_adapter("gated-a");
    let path = adapter.path().join(WEIGHTS);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    inspect_refuses(adapter.path(), &[WEIGHTS]);
}

#[test]
fn weights_of_random_bytes() {
    let adapter = copy_adapter("gated-a");
    std::fs::write(adapter.path().join(WEIGHTS), random_bytes(20_000)).unwrap();
    summarize_refuses(adapter.path(), &[WEIGHTS]);
}

#[test]
fn empty_weights() {
    let adapter = copy_adapter("gated-a");
    std::fs::write(adapter.path().join(WEIGHTS), b"").unwrap();
    summarize_refuses(adapter.path(), &[WEIGHTS]);
}

#[test]
fn weights_without_any_tensor() {
    let adapter = copy_adapter("gated-a");
    edit_safetensors(&adapter.path().join(WEIGHTS), |tensors, _| tensors.clear());
    summarize_refuses(adapter.path(), &[WEIGHTS]);
}

#[test]
fn missing_weights() {
    let adapter = copy_adapter("gated-a");
    std::fs::remove_file(adapter.path().join(WEIGHTS)).unwrap();
    summarize_refuses(adapter.path(), &[WEIGHTS]);
}

#[test]
fn keys_of_an_old_peft_version_are_fine() {
    // PEFT 0.3 wrote `...q.lora_A.default.weight`.
    let adapter = copy_adapter("gated-a");
    edit_safetensors(&adapter.path().join(WEIGHTS), |tensors, _| {
        for tensor in tensors.iter_mut() {
            tensor.name = tensor.name.replace(".weight", ".default.weight");
        }
    });
    let work = workspace();
    succeeded(run_measured(&mut summarize_adapted(
        work.path(),
        adapter.path(),
    )));
}

/// A copy of fixtures/adapters/styled.dlora named `shared.dlora`, with `edit` applied to its
/// embedded adapter config.
fn single_file_with_config(edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, PathBuf) {
    let dir = workspace();
    let file = dir.path().join("shared.dlora");
    std::fs::copy(fixtures().join("adapters/styled.dlora"), &file).unwrap();
    edit_safetensors(&file, |_, metadata| {
        let metadata = metadata.as_mut().expect("a .dlora has metadata");
        let text = metadata["dialora.adapter_config"].as_str().unwrap();
        let mut config: Value = serde_json::from_str(text).unwrap();
        edit(&mut config);
        metadata["dialora.adapter_config"] = config.to_string().into();
    });
    (dir, file)
}

fn single_file() -> (tempfile::TempDir, PathBuf) {
    single_file_with_config(|_| {})
}

#[test]
fn a_single_file_adapter_claiming_another_rank() {
    let (_dir, file) = single_file_with_config(|config| config["r"] = 8.into());
    summarize_refuses(&file, &["shared.dlora", "r"]);
}

#[test]
fn a_single_file_adapter_claiming_other_targets() {
    let (_dir, file) =
        single_file_with_config(|config| config["target_modules"] = serde_json::json!(["k"]));
    summarize_refuses(&file, &["shared.dlora", "target_modules"]);
}

#[test]
fn a_single_file_adapter_with_a_rank_written_as_a_string() {
    let (_dir, file) = single_file_with_config(|config| config["r"] = "four".into());
    inspect_refuses(&file, &["shared.dlora", "r"]);
}

#[test]
fn a_single_file_adapter_whose_config_is_not_json() {
    let (_dir, file) = single_file();
    edit_safetensors(&file, |_, metadata| {
        metadata.as_mut().unwrap()["dialora.adapter_config"] = "{\"r\": 4, oops".into();
    });
    summarize_refuses(&file, &["shared.dlora"]);
}

#[test]
fn a_truncated_single_file_adapter() {
    let (_dir, file) = single_file();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() * 3 / 4]).unwrap();
    summarize_refuses(&file, &["shared.dlora"]);
}

#[test]
fn a_single_file_adapter_cut_inside_its_header() {
    let (_dir, file) = single_file();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..100]).unwrap();
    inspect_refuses(&file, &["shared.dlora"]);
}

#[test]
fn a_single_file_adapter_of_random_bytes() {
    let (_dir, file) = single_file();
    std::fs::write(&file, random_bytes(30_000)).unwrap();
    summarize_refuses(&file, &["shared.dlora"]);
}

#[test]
fn an_empty_single_file_adapter() {
    let (_dir, file) = single_file();
    std::fs::write(&file, b"").unwrap();
    summarize_refuses(&file, &["shared.dlora"]);
}

#[test]
fn a_single_file_adapter_holding_nan() {
    let (_dir, file) = single_file();
    edit_tensor(&file, MODULE_A, poison(f32::NAN));
    summarize_refuses(&file, &["shared.dlora", MODULE]);
}

#[test]
fn exporting_a_nan_adapter_writes_nothing() {
    let adapter = adapter_with_tensor(MODULE_B, poison(f32::NAN));
    let work = workspace();
    let file = work.path().join("shared.dlora");
    let run = run_measured(
        dialora_in(work.path())
            .args(["adapter", "export"])
            .arg(adapter.path())
            .arg("--output")
            .arg(&file),
    );
    refused(run, &[WEIGHTS, MODULE]);
    assert!(snapshot(work.path()).is_empty(), "nothing is written");
}

#[test]
fn importing_an_adapter_whose_rank_disagrees_writes_nothing() {
    let adapter = adapter_with_config("r", 16.into());
    let work = workspace();
    let run = run_measured(
        dialora_in(work.path())
            .args(["adapter", "import"])
            .arg(adapter.path())
            .arg("--output")
            .arg(work.path().join("imported")),
    );
    refused(run, &[CONFIG, "r"]);
    assert!(snapshot(work.path()).is_empty(), "no folder is left behind");
}

#[test]
fn continuing_training_from_a_nan_adapter_is_not_called_divergence() {
    let adapter = copy_adapter("train-init");
    let weights = adapter.path().join(WEIGHTS);
    let (tensors, _) = read_safetensors(&weights);
    let first = tensors[0].name.clone();
    let module = first
        .trim_start_matches("base_model.model.")
        .split(".lora_")
        .next()
        .unwrap()
        .to_string();
    edit_tensor(&weights, &first, poison(f32::NAN));
    let work = workspace();
    let data = clean_training_data(work.path());
    let output = work.path().join("continued");
    let mut command = train_on(work.path(), &data, &output);
    command.arg("--init-adapter").arg(adapter.path());
    let run = run_measured(&mut command);
    assert!(
        !run.stderr.contains("--learning-rate"),
        "a NaN adapter is not a learning rate problem: {}",
        run.stderr
    );
    refused(run, &[WEIGHTS, &module]);
    assert!(!output.exists(), "a failed start leaves no output folder");
}

#[test]
fn evaluating_an_integer_typed_adapter_writes_no_report() {
    let adapter = adapter_with_tensor(MODULE_A, as_integers("I32", 4));
    let work = workspace();
    let report = work.path().join("report");
    let run = run_measured(
        dialora_in(work.path())
            .args(["eval", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--adapter")
            .arg(adapter.path())
            .arg("--data")
            .arg(fixtures().join("data/dialogsum.jsonl"))
            .arg("--output")
            .arg(&report)
            .args(["--max-new-tokens", "4"]),
    );
    refused(run, &[WEIGHTS, MODULE]);
    assert!(!report.exists(), "a failed start leaves no report folder");
}

#[test]
fn drafting_with_an_adapter_targeting_nothing_writes_nothing() {
    let adapter = adapter_with_config("target_modules", serde_json::json!([]));
    let work = workspace();
    let drafts = work.path().join("drafts.jsonl");
    let run = run_measured(
        dialora_in(work.path())
            .args(["data", "draft"])
            .arg(fixtures().join("data/standup.txt"))
            .arg("--model")
            .arg(fixtures().join("t5-gated"))
            .arg("--adapter")
            .arg(adapter.path())
            .arg("--output")
            .arg(&drafts),
    );
    refused(run, &[CONFIG, "target_modules"]);
    assert!(!drafts.exists());
}
