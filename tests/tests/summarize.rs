//! `dialora summarize` end to end: local folders, a Hub id through the mock Hub and then offline from
//! the cache, adapters, and the one-line errors for unusable models, adapters and inputs.

use std::collections::HashMap;
use std::path::Path;

use dialora_tests::mock_hub::MockHub;
use dialora_tests::{dialora, fixtures, recorded_summaries, run};
use serde_json::Value;

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn summarize(home: &Path, model: &str, extra: &[&str], output: &Path) -> dialora_tests::Run {
    let input = fixtures().join("inputs.jsonl");
    let mut command = dialora(home);
    command
        .args(["summarize", "--model", model, "--input"])
        .arg(&input)
        .arg("--output")
        .arg(output)
        .args(["--max-new-tokens", "24", "--max-source-length", "128"])
        // The recorded summaries are f32's.
        .args(["--precision", "f32"])
        .args(extra);
    run(&mut command)
}

fn summaries(path: &Path) -> Vec<String> {
    read_jsonl(path)
        .iter()
        .map(|row| row["summary"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn summarizes_a_local_model_with_and_without_an_adapter() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out.jsonl");
    let model = fixtures().join("t5-gated");
    summarize(home.path(), model.to_str().unwrap(), &[], &out).success();
    let rows = read_jsonl(&out);
    assert_eq!(
        rows[0]["id"], "synthetic_0",
        "ids are carried over in input order"
    );
    assert_eq!(rows[3]["id"], "synthetic_3");
    assert_eq!(summaries(&out), recorded_summaries("gated"));

    let adapter = fixtures().join("adapters/gated-a");
    summarize(
        home.path(),
        model.to_str().unwrap(),
        &[
            "--adapter",
            adapter.to_str().unwrap(),
            "--batch-size",
            "3",
            "--overwrite",
        ],
        &out,
    )
    .success();
    assert_eq!(summaries(&out), recorded_summaries("gated-a"));
    summarize(
        home.path(),
        model.to_str().unwrap(),
        &[
            "--adapter",
            adapter.to_str().unwrap(),
            "--merge",
            "--overwrite",
        ],
        &out,
    )
    .success();
    assert_eq!(summaries(&out), recorded_summaries("gated-a"));
}

#[test]
fn summarizes_a_hub_model_then_works_offline_from_the_cache() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out.jsonl");
    let hub = MockHub::start(HashMap::from([(
        "tiny/t5-relu".to_string(),
        fixtures().join("t5-relu"),
    )]));
    let mut command = dialora(home.path());
    command.env("HF_ENDPOINT", &hub.endpoint);
    command
        .args(["summarize", "--model", "tiny/t5-relu", "--input"])
        .arg(fixtures().join("inputs.jsonl"))
        .arg("--output")
        .arg(&out)
        .args(["--max-new-tokens", "24", "--max-source-length", "128"])
        .args(["--precision", "f32"]);
    run(&mut command).success();
    assert_eq!(summaries(&out), recorded_summaries("relu"));
    assert!(
        hub.files_served() >= 3,
        "config, tokenizer and weights were downloaded"
    );
    drop(hub);

    // The endpoint is now unreachable: everything must come from the cache.
    std::fs::remove_file(&out).unwrap();
    summarize(home.path(), "tiny/t5-relu", &[], &out).success();
    assert_eq!(summaries(&out), recorded_summaries("relu"));
}

#[test]
fn an_unknown_hub_model_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let hub = MockHub::start(HashMap::new());
    let mut command = dialora(home.path());
    command.env("HF_ENDPOINT", &hub.endpoint);
    command
        .args(["summarize", "--model", "nobody/nothing", "--input"])
        .arg(fixtures().join("inputs.jsonl"))
        .arg("--output")
        .arg(home.path().join("out.jsonl"));
    run(&mut command).clear_error(&["nobody/nothing", "config.json"]);
}

/// A copy of a fixture model folder to break.
fn model_copy(dir: &Path, name: &str) -> std::path::PathBuf {
    let copy = dir.join(name);
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    copy
}

fn summarize_fails(
    home: &Path,
    model: &Path,
    extra: &[&str],
    input: Option<&Path>,
    fragments: &[&str],
) {
    let out = home.join("never.jsonl");
    let default_input = fixtures().join("inputs.jsonl");
    let mut command = dialora(home);
    command
        .args(["summarize", "--model"])
        .arg(model)
        .arg("--input")
        .arg(input.unwrap_or(&default_input))
        .arg("--output")
        .arg(&out)
        .args(extra);
    run(&mut command).clear_error(fragments);
    assert!(!out.exists(), "nothing is written on failure");
}

#[test]
fn missing_or_corrupt_weights_are_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let model = model_copy(home.path(), "t5-gated");
    let weights = model.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    summarize_fails(
        home.path(),
        &model,
        &[],
        None,
        &["model.safetensors", "cannot load the model weights"],
    );
    std::fs::write(&weights, b"\x08\x00\x00\x00\x00\x00\x00\x00not json").unwrap();
    summarize_fails(home.path(), &model, &[], None, &["model.safetensors"]);
    std::fs::remove_file(&weights).unwrap();
    summarize_fails(
        home.path(),
        &model,
        &[],
        None,
        &["model.safetensors", "missing"],
    );
}

#[test]
fn an_unknown_architecture_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let model = model_copy(home.path(), "t5-gated");
    let config_path = model.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["model_type"] = "bert".into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    summarize_fails(
        home.path(),
        &model,
        &[],
        None,
        &["config.json", "unknown architecture \"bert\""],
    );
}

#[test]
fn an_adapter_for_another_model_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let relu_adapter = fixtures().join("adapters/relu-c");
    summarize_fails(
        home.path(),
        &fixtures().join("t5-gated"),
        &["--adapter", relu_adapter.to_str().unwrap()],
        None,
        &["relu-c", "another base model"],
    );
}

#[test]
fn a_pickled_adapter_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let adapter = home.path().join("pickled");
    std::fs::create_dir_all(&adapter).unwrap();
    std::fs::copy(
        fixtures().join("adapters/gated-a/adapter_config.json"),
        adapter.join("adapter_config.json"),
    )
    .unwrap();
    std::fs::write(adapter.join("adapter_model.bin"), b"\x80\x04pickle").unwrap();
    summarize_fails(
        home.path(),
        &fixtures().join("t5-gated"),
        &["--adapter", adapter.to_str().unwrap()],
        None,
        &["adapter_model.bin", "pickled"],
    );
}

#[test]
fn unusable_input_files_are_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let model = fixtures().join("t5-gated");
    let input = home.path().join("input.jsonl");
    std::fs::write(&input, "").unwrap();
    summarize_fails(
        home.path(),
        &model,
        &[],
        Some(&input),
        &["input.jsonl:1", "empty"],
    );
    std::fs::write(
        &input,
        b"{\"dialogue\": \"#Person1#: Hi\"}\n{\"dialogue\": \"caf\xe9\"}\n",
    )
    .unwrap();
    summarize_fails(
        home.path(),
        &model,
        &[],
        Some(&input),
        &["input.jsonl:2", "UTF-8"],
    );
    std::fs::write(
        &input,
        "{\"dialogue\": \"#Person1#: Hi\"}\n{\"dialog\": \"x\"}\n",
    )
    .unwrap();
    summarize_fails(
        home.path(),
        &model,
        &[],
        Some(&input),
        &["input.jsonl:2", "dialogue"],
    );
    std::fs::write(&input, "{\"dialogue\": \"#Person1#: Hi\"}\n{broken\n").unwrap();
    summarize_fails(
        home.path(),
        &model,
        &[],
        Some(&input),
        &["input.jsonl:2", "invalid JSON"],
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let home = tempfile::tempdir().unwrap();
    let result = run(dialora(home.path()).args(["summarize", "--model"]));
    assert_eq!(result.code, 2, "{}", result.stderr);
    let result = run(dialora(home.path()).args([
        "summarize",
        "--model",
        "m",
        "--input",
        "i",
        "--output",
        "o",
        "--num-beams",
        "x",
    ]));
    assert_eq!(result.code, 2, "{}", result.stderr);
    // A mistyped command is not taken for a file to open in the app.
    let result = run(dialora(home.path()).arg("summarise"));
    assert_eq!(result.code, 2, "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("'summarise' is neither a dialora command nor a file")
    );
}

#[test]
fn a_folder_of_long_transcripts_becomes_markdown_summaries_and_an_index() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let transcripts = dir.join("meetings");
    std::fs::create_dir(&transcripts).unwrap();
    let mut long = String::new();
    for i in 0..300 {
        let speaker = ["Mary Ann", "Raj"][i % 2];
        long.push_str(&format!(
            "{speaker}: I will bring the report to the office tomorrow. Did you finish the invoice?\n"
        ));
    }
    std::fs::write(transcripts.join("weekly sync.txt"), long).unwrap();
    std::fs::copy(
        fixtures().join("data/teams.vtt"),
        transcripts.join("budget.vtt"),
    )
    .unwrap();
    let output = dir.join("summaries/");
    run(dialora(dir)
        .args(["summarize", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--input")
        .arg(&transcripts)
        .arg("--output")
        .arg(&output)
        .args(["--max-source-length", "256", "--max-new-tokens", "12"]))
    .success();
    let index = std::fs::read_to_string(output.join("index.csv")).unwrap();
    let rows: Vec<&str> = index.lines().collect();
    assert_eq!(rows[0], "file,title,participants,turns,windows,summary");
    assert_eq!(rows.len(), 3, "{index}");
    assert!(rows[1].starts_with("budget.md,budget,Mary Ann Smith; Raj Patel,3,1,"));
    assert!(rows[2].starts_with("weekly_sync.md,weekly sync,Mary Ann; Raj,300,"));
    let markdown = std::fs::read_to_string(output.join("weekly_sync.md")).unwrap();
    assert!(
        markdown.starts_with("# weekly sync\n\n**Participants:** Mary Ann, Raj\n\n## Summary\n")
    );
    assert!(markdown.contains("<details>\n<summary>Partial summaries ("));
    assert!(markdown.contains("### Level 1\n\n1. "));
    let short = std::fs::read_to_string(output.join("budget.md")).unwrap();
    assert!(!short.contains("<details>"));

    std::fs::write(dir.join("silent.vtt"), "WEBVTT\n\nNOTE nothing was said\n").unwrap();
    summarize_fails(
        dir,
        &fixtures().join("t5-gated"),
        &[],
        Some(&dir.join("silent.vtt")),
        &["silent.vtt:1", "no spoken text"],
    );
}
