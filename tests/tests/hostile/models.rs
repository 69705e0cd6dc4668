//! Model folders: config.json with impossible or mistyped values, a tokenizer that is empty or
//! another model's, weights of the wrong dtype or shape, truncated or not safetensors at all.
//! Every one is refused at load, by every command, naming the file and the field or tensor.

use super::*;

/// Asserts that summarizing with `model` is refused naming `fragments`, and writes nothing.
fn summarize_refuses(model: &Path, fragments: &[&str]) {
    let work = workspace();
    refused(
        run_measured(&mut summarize_with(work.path(), model)),
        fragments,
    );
    assert!(!work.path().join("summaries.jsonl").exists());
}

/// A copy of t5-gated whose config.json has `key` set to `value`.
fn model_with_config(key: &str, value: Value) -> tempfile::TempDir {
    let model = copy_model("t5-gated");
    edit_json(&model.path().join("config.json"), |config| {
        config[key] = value
    });
    model
}

fn config_refused(key: &str, value: Value) {
    let model = model_with_config(key, value);
    summarize_refuses(model.path(), &["config.json", key]);
}

#[test]
fn no_encoder_layers() {
    config_refused("num_layers", 0.into());
}

#[test]
fn no_decoder_layers() {
    config_refused("num_decoder_layers", 0.into());
}

#[test]
fn no_feed_forward_width() {
    config_refused("d_ff", 0.into());
}

#[test]
fn no_model_width() {
    config_refused("d_model", 0.into());
}

#[test]
fn no_attention_heads() {
    config_refused("num_heads", 0.into());
}

#[test]
fn no_head_width() {
    config_refused("d_kv", 0.into());
}

#[test]
fn an_empty_vocabulary_size() {
    config_refused("vocab_size", 0.into());
}

#[test]
fn a_vocabulary_size_written_as_a_string() {
    config_refused("vocab_size", "160".into());
}

#[test]
fn a_layer_count_written_as_a_string() {
    config_refused("num_layers", "two".into());
}

#[test]
fn a_negative_layer_count() {
    config_refused("num_layers", (-2).into());
}

#[test]
fn a_fractional_head_count() {
    config_refused("num_heads", 2.5.into());
}

#[test]
fn a_huge_vocabulary_size_is_refused_before_any_allocation() {
    // The weights hold 160 rows: believing the config would allocate 10^12 of them.
    config_refused("vocab_size", 1_000_000_000_000u64.into());
}

#[test]
fn a_vocabulary_size_beyond_any_integer() {
    let model = copy_model("t5-gated");
    set_raw_json_value(&model.path().join("config.json"), "vocab_size", "1e40");
    summarize_refuses(model.path(), &["config.json", "vocab_size"]);
}

#[test]
fn more_encoder_layers_than_the_weights_hold() {
    config_refused("num_layers", 100_000.into());
}

#[test]
fn fewer_decoder_layers_than_the_weights_hold_is_not_silently_a_smaller_model() {
    config_refused("num_decoder_layers", 1.into());
}

#[test]
fn a_head_count_that_disagrees_with_the_weights() {
    config_refused("num_heads", 4.into());
}

#[test]
fn a_vocabulary_size_that_disagrees_with_the_weights() {
    config_refused("vocab_size", 200.into());
}

#[test]
fn too_few_relative_attention_buckets() {
    config_refused("relative_attention_num_buckets", 0.into());
}

#[test]
fn a_huge_relative_attention_bucket_count() {
    config_refused("relative_attention_num_buckets", 1_000_000_000.into());
}

#[test]
fn a_layer_norm_epsilon_written_as_a_word() {
    config_refused("layer_norm_epsilon", "tiny".into());
}

#[test]
fn a_negative_layer_norm_epsilon() {
    config_refused("layer_norm_epsilon", (-1.0).into());
}

#[test]
fn an_unknown_feed_forward_activation() {
    config_refused("feed_forward_proj", "gated-banana".into());
}

#[test]
fn a_feed_forward_activation_written_as_a_number() {
    config_refused("feed_forward_proj", 7.into());
}

#[test]
fn an_end_token_outside_the_vocabulary() {
    config_refused("eos_token_id", 100_000.into());
}

#[test]
fn a_decoder_start_token_outside_the_vocabulary() {
    config_refused("decoder_start_token_id", 99_999.into());
}

#[test]
fn a_negative_padding_token() {
    config_refused("pad_token_id", (-1).into());
}

#[test]
fn a_config_of_random_bytes() {
    let model = copy_model("t5-gated");
    std::fs::write(model.path().join("config.json"), random_bytes(700)).unwrap();
    summarize_refuses(model.path(), &["config.json"]);
}

#[test]
fn an_empty_config() {
    let model = copy_model("t5-gated");
    std::fs::write(model.path().join("config.json"), "").unwrap();
    summarize_refuses(model.path(), &["config.json"]);
}

#[test]
fn a_config_that_is_an_array() {
    let model = copy_model("t5-gated");
    std::fs::write(model.path().join("config.json"), "[1, 2, 3]").unwrap();
    summarize_refuses(model.path(), &["config.json"]);
}

#[test]
fn a_config_in_utf16() {
    let model = copy_model("t5-gated");
    let path = model.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut bytes = vec![0xff, 0xfe];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&path, bytes).unwrap();
    summarize_refuses(model.path(), &["config.json"]);
}

#[test]
fn a_config_that_is_a_folder() {
    let model = copy_model("t5-gated");
    let path = model.path().join("config.json");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    summarize_refuses(model.path(), &["config.json"]);
}

#[test]
fn unknown_config_keys_are_fine() {
    let model = copy_model("t5-gated");
    edit_json(&model.path().join("config.json"), |config| {
        config["n_positions"] = 512.into();
        config["task_specific_params"] = serde_json::json!({"summarization": {"num_beams": 4}});
        config["torch_dtype"] = "bfloat16".into();
    });
    let work = workspace();
    succeeded(run_measured(&mut summarize_with(work.path(), model.path())));
}

/// A tokenizer.json like the fixture's, with `edit` applied to its Unigram model.
fn model_with_tokenizer(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let model = copy_model("t5-gated");
    edit_json(&model.path().join("tokenizer.json"), |tokenizer| {
        edit(&mut tokenizer["model"])
    });
    model
}

#[test]
fn a_tokenizer_with_an_empty_vocabulary() {
    let model = model_with_tokenizer(|unigram| {
        unigram["vocab"] = serde_json::json!([]);
        unigram["unk_id"] = Value::Null;
    });
    summarize_refuses(model.path(), &["tokenizer.json", "vocabulary"]);
}

#[test]
fn another_models_tokenizer_is_checked_against_vocab_size() {
    // A bigger vocabulary than the model's 160 rows, as a tokenizer from flan-t5 would have.
    let model = model_with_tokenizer(|unigram| {
        let vocab = unigram["vocab"].as_array_mut().unwrap();
        for i in 0..400 {
            vocab.push(serde_json::json!([format!("▁word{i}"), -20.0]));
        }
    });
    summarize_refuses(model.path(), &["tokenizer.json", "vocab_size"]);
}

#[test]
fn another_models_tokenizer_is_refused_when_only_measuring_data() {
    let model = model_with_tokenizer(|unigram| {
        let vocab = unigram["vocab"].as_array_mut().unwrap();
        for i in 0..400 {
            vocab.push(serde_json::json!([format!("▁word{i}"), -20.0]));
        }
    });
    let work = workspace();
    let run = run_measured(
        dialora_in(work.path())
            .args(["data", "check"])
            .arg(fixtures().join("data/chats.csv"))
            .arg("--model")
            .arg(model.path()),
    );
    refused(run, &["tokenizer.json", "vocab_size"]);
}

#[test]
fn a_tokenizer_of_random_bytes() {
    let model = copy_model("t5-gated");
    std::fs::write(model.path().join("tokenizer.json"), random_bytes(4000)).unwrap();
    summarize_refuses(model.path(), &["tokenizer.json"]);
}

#[test]
fn a_truncated_tokenizer() {
    let model = copy_model("t5-gated");
    let path = model.path().join("tokenizer.json");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    summarize_refuses(model.path(), &["tokenizer.json"]);
}

#[test]
fn an_empty_tokenizer() {
    let model = copy_model("t5-gated");
    std::fs::write(model.path().join("tokenizer.json"), "").unwrap();
    summarize_refuses(model.path(), &["tokenizer.json"]);
}

const WEIGHTS: &str = "model.safetensors";
const EMBEDDING: &str = "shared.weight";
const LM_HEAD: &str = "lm_head.weight";

/// A copy of t5-gated whose tensor `name` has `edit` applied.
fn model_with_tensor(name: &str, edit: impl FnOnce(&mut StoredTensor)) -> tempfile::TempDir {
    let model = copy_model("t5-gated");
    edit_tensor(&model.path().join(WEIGHTS), name, edit);
    model
}

#[test]
fn embedding_weights_stored_as_32_bit_integers() {
    let model = model_with_tensor(EMBEDDING, |tensor| {
        let values = tensor.f32_values();
        tensor.dtype = "I32".to_string();
        tensor.data = values
            .iter()
            .flat_map(|v| ((v * 1000.0) as i32).to_le_bytes())
            .collect();
    });
    summarize_refuses(model.path(), &[WEIGHTS, EMBEDDING]);
}

#[test]
fn output_weights_stored_as_bytes() {
    let model = model_with_tensor(LM_HEAD, |tensor| {
        let values = tensor.f32_values();
        tensor.dtype = "U8".to_string();
        tensor.data = values.iter().map(|v| (v.abs() * 100.0) as u8).collect();
    });
    summarize_refuses(model.path(), &[WEIGHTS, LM_HEAD]);
}

#[test]
fn embedding_weights_of_the_wrong_shape() {
    let model = model_with_tensor(EMBEDDING, |tensor| {
        // The same bytes read as 320 x 16 instead of 160 x 32.
        tensor.shape = vec![320, 16];
    });
    summarize_refuses(model.path(), &[WEIGHTS, EMBEDDING]);
}

#[test]
fn output_weights_holding_nan() {
    let model = model_with_tensor(LM_HEAD, |tensor| {
        let mut values = tensor.f32_values();
        values[7] = f32::NAN;
        tensor.set_f32_values(&values);
    });
    summarize_refuses(model.path(), &[WEIGHTS, LM_HEAD]);
}

#[test]
fn a_tensor_missing_from_the_weights() {
    let model = copy_model("t5-gated");
    edit_safetensors(&model.path().join(WEIGHTS), |tensors, _| {
        tensors.retain(|t| t.name != LM_HEAD)
    });
    summarize_refuses(model.path(), &[WEIGHTS, LM_HEAD]);
}

#[test]
fn truncated_weights() {
    let model = copy_model("t5-gated");
    let path = model.path().join(WEIGHTS);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    summarize_refuses(model.path(), &[WEIGHTS]);
}

#[test]
fn a_weights_header_length_near_the_largest_integer() {
    let model = copy_model("t5-gated");
    let path = model.path().join(WEIGHTS);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(&(u64::MAX - 7).to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    summarize_refuses(model.path(), &[WEIGHTS]);
}

#[test]
fn a_weights_header_length_past_the_end_of_the_file() {
    let model = copy_model("t5-gated");
    let path = model.path().join(WEIGHTS);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(&(1u64 << 30).to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    summarize_refuses(model.path(), &[WEIGHTS]);
}

#[test]
fn a_weights_header_whose_offsets_point_past_the_data() {
    let model = copy_model("t5-gated");
    let path = model.path().join(WEIGHTS);
    let (tensors, metadata) = read_safetensors(&path);
    let mut bytes = safetensors_bytes(&tensors, metadata.as_ref());
    // Drop the last tensor's bytes while the header still claims them.
    bytes.truncate(bytes.len() - tensors.last().unwrap().data.len() / 2);
    std::fs::write(&path, bytes).unwrap();
    summarize_refuses(model.path(), &[WEIGHTS]);
}

#[test]
fn weights_of_random_bytes() {
    let model = copy_model("t5-gated");
    std::fs::write(model.path().join(WEIGHTS), random_bytes(50_000)).unwrap();
    summarize_refuses(model.path(), &[WEIGHTS]);
}

#[test]
fn empty_weights() {
    let model = copy_model("t5-gated");
    std::fs::write(model.path().join(WEIGHTS), b"").unwrap();
    summarize_refuses(model.path(), &[WEIGHTS]);
}

#[test]
fn weights_stored_in_half_precision_are_fine() {
    // Checkpoints are often shared in bfloat16; they load as any other.
    let model = copy_model("t5-gated");
    edit_safetensors(&model.path().join(WEIGHTS), |tensors, _| {
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
    succeeded(run_measured(&mut summarize_with(work.path(), model.path())));
}

#[test]
fn a_shard_index_naming_a_file_outside_the_folder() {
    let model = copy_model("t5-gated");
    std::fs::remove_file(model.path().join(WEIGHTS)).unwrap();
    std::fs::write(
        model.path().join("model.safetensors.index.json"),
        r#"{"weight_map": {"shared.weight": "../../etc/passwd"}}"#,
    )
    .unwrap();
    summarize_refuses(model.path(), &["model.safetensors.index.json"]);
}

#[test]
fn a_shard_index_of_random_bytes() {
    let model = copy_model("t5-gated");
    std::fs::remove_file(model.path().join(WEIGHTS)).unwrap();
    std::fs::write(
        model.path().join("model.safetensors.index.json"),
        random_bytes(300),
    )
    .unwrap();
    summarize_refuses(model.path(), &["model.safetensors.index.json"]);
}

#[test]
fn a_model_path_that_is_a_file() {
    let work = workspace();
    let not_a_folder = work.path().join("flan-t5-small.txt");
    std::fs::write(&not_a_folder, "a model, I promise").unwrap();
    summarize_refuses(&not_a_folder, &["flan-t5-small.txt"]);
}

#[test]
fn a_model_reached_through_a_symlink_is_fine() {
    let work = workspace();
    let link = work.path().join("linked-model");
    std::os::unix::fs::symlink(fixtures().join("t5-gated"), &link).unwrap();
    succeeded(run_measured(&mut summarize_with(work.path(), &link)));
}

#[test]
fn training_refuses_a_model_without_decoder_layers() {
    let model = model_with_config("num_decoder_layers", 0.into());
    let work = workspace();
    let data = clean_training_data(work.path());
    let output = work.path().join("adapter");
    refused(
        run_measured(&mut train_with(work.path(), model.path(), &data, &output)),
        &["config.json", "num_decoder_layers"],
    );
    assert!(!output.exists(), "a failed start leaves no output folder");
}

#[test]
fn evaluation_refuses_a_model_without_encoder_layers() {
    let model = model_with_config("num_layers", 0.into());
    let work = workspace();
    let report = work.path().join("report");
    let run = run_measured(
        dialora_in(work.path())
            .args(["eval", "--model"])
            .arg(model.path())
            .arg("--data")
            .arg(fixtures().join("data/dialogsum.jsonl"))
            .arg("--output")
            .arg(&report),
    );
    refused(run, &["config.json", "num_layers"]);
    assert!(!report.exists(), "a failed start leaves no report folder");
}

#[test]
fn drafting_refuses_a_tokenizer_with_an_empty_vocabulary() {
    let model = model_with_tokenizer(|unigram| {
        unigram["vocab"] = serde_json::json!([]);
        unigram["unk_id"] = Value::Null;
    });
    let work = workspace();
    let drafts = work.path().join("drafts.jsonl");
    let run = run_measured(
        dialora_in(work.path())
            .args(["data", "draft"])
            .arg(fixtures().join("data/standup.txt"))
            .arg("--model")
            .arg(model.path())
            .arg("--output")
            .arg(&drafts),
    );
    refused(run, &["tokenizer.json", "vocabulary"]);
    assert!(!drafts.exists());
}
