//! Adapters shared on the Hub: an id such as `someone/flan-t5-meetings-lora` works wherever an
//! adapter path does, downloaded through the mock Hub into the standard cache with the base model
//! its config names, and used offline from the cache afterwards; the one-sentence messages when the
//! adapter names another model than the one given, or none at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dialora_tests::mock_hub::MockHub;
use dialora_tests::{dialora, fixtures, recorded_summaries, run};
use serde_json::Value;

const ADAPTER_ID: &str = "someone/flan-t5-meetings-lora";
const BASE_ID: &str = "tiny/t5-gated";

/// A copy of the fixture adapter gated-a in `dir`, as it would be published: its config naming
/// `base` as its base model (or none).
fn adapter_repo(dir: &Path, base: Option<&str>) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let source = fixtures().join("adapters/gated-a");
    std::fs::copy(
        source.join("adapter_model.safetensors"),
        repo.join("adapter_model.safetensors"),
    )
    .unwrap();
    let text = std::fs::read_to_string(source.join("adapter_config.json")).unwrap();
    let mut config: Value = serde_json::from_str(&text).unwrap();
    config["base_model_name_or_path"] = base.map_or(Value::Null, Value::from);
    std::fs::write(
        repo.join("adapter_config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    repo
}

/// The mock Hub serving the adapter repository and its base model, the fixture t5-gated.
fn hub_with_adapter_and_base(repo: &Path) -> MockHub {
    MockHub::start(HashMap::from([
        (ADAPTER_ID.to_string(), repo.to_path_buf()),
        (BASE_ID.to_string(), fixtures().join("t5-gated")),
    ]))
}

fn summaries(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            row["summary"].as_str().unwrap().to_string()
        })
        .collect()
}

/// `dialora summarize` of the fixture inputs with `args` (model and adapter), Hub at `endpoint`
/// (none: unreachable).
fn summarize(
    hf_home: &Path,
    endpoint: Option<&str>,
    args: &[&str],
    output: &Path,
) -> dialora_tests::Run {
    let mut command = dialora(hf_home);
    if let Some(endpoint) = endpoint {
        command.env("HF_ENDPOINT", endpoint);
    }
    command
        .arg("summarize")
        .args(args)
        .arg("--input")
        .arg(fixtures().join("inputs.jsonl"))
        .arg("--output")
        .arg(output)
        .args(["--max-new-tokens", "24", "--max-source-length", "128"]);
    run(&mut command)
}

#[test]
fn a_hub_adapter_brings_its_base_model_then_works_offline_from_the_cache() {
    let home = tempfile::tempdir().unwrap();
    let repo = adapter_repo(home.path(), Some(BASE_ID));
    let out = home.path().join("out.jsonl");
    let hub = hub_with_adapter_and_base(&repo);
    let result = summarize(
        home.path(),
        Some(&hub.endpoint),
        &["--adapter", ADAPTER_ID],
        &out,
    );
    let stderr = result.stderr.clone();
    result.success();
    // The adapter with its base model gives what PEFT gives for it.
    assert_eq!(summaries(&out), recorded_summaries("gated-a"));
    assert!(
        stderr.contains(&format!(
            "using the base model {ADAPTER_ID} names: {BASE_ID}"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("trained on"),
        "no mismatch to say: {stderr}"
    );
    assert!(
        hub.files_served() >= 5,
        "the adapter's config and weights, the model's config, tokenizer and weights: {}",
        hub.files_served()
    );
    let cache = home.path().join("hub");
    assert!(
        cache
            .join("models--someone--flan-t5-meetings-lora")
            .is_dir()
    );
    assert!(cache.join("models--tiny--t5-gated").is_dir());
    drop(hub);

    // The endpoint is now unreachable: both come from the cache.
    std::fs::remove_file(&out).unwrap();
    summarize(home.path(), None, &["--adapter", ADAPTER_ID], &out).success();
    assert_eq!(summaries(&out), recorded_summaries("gated-a"));
}

#[test]
fn adapter_import_and_inspect_take_a_hub_id() {
    let home = tempfile::tempdir().unwrap();
    let repo = adapter_repo(home.path(), Some(BASE_ID));
    let hub = hub_with_adapter_and_base(&repo);
    let imported = home.path().join("imported");
    let mut command = dialora(home.path());
    command
        .env("HF_ENDPOINT", &hub.endpoint)
        .args(["adapter", "import", ADAPTER_ID, "--output"])
        .arg(&imported);
    run(&mut command).success();
    assert!(hub.files_served() >= 2, "the adapter's config and weights");
    assert!(
        !home.path().join("hub/models--tiny--t5-gated").exists(),
        "importing needs no base model"
    );
    drop(hub);
    let description: Value = serde_json::from_str(
        &run(dialora(home.path())
            .args(["adapter", "inspect", "--json"])
            .arg(&imported))
        .success(),
    )
    .unwrap();
    assert_eq!(description["base_model"], BASE_ID);
    assert_eq!(description["r"], 4);

    // Offline, the id is read from the cache.
    let description: Value = serde_json::from_str(
        &run(dialora(home.path()).args(["adapter", "inspect", "--json", ADAPTER_ID])).success(),
    )
    .unwrap();
    assert_eq!(description["path"], ADAPTER_ID);
    assert_eq!(description["base_model"], BASE_ID);
}

#[test]
fn adapters_that_are_neither_files_nor_on_the_hub_are_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("never.jsonl");
    let model = fixtures().join("t5-gated");
    let missing = home.path().join("no-such-adapter");
    summarize(
        home.path(),
        None,
        &[
            "--model",
            model.to_str().unwrap(),
            "--adapter",
            missing.to_str().unwrap(),
        ],
        &out,
    )
    .clear_error(&[
        "no-such-adapter",
        "no such adapter file or folder",
        "someone/flan-t5-meetings-lora",
    ]);
    // A bare name is a mistyped path, not a download.
    run(dialora(home.path()).args(["adapter", "inspect", "my-adapter"]))
        .clear_error(&["my-adapter", "no such adapter file or folder"]);

    let hub = MockHub::start(HashMap::new());
    summarize(
        home.path(),
        Some(&hub.endpoint),
        &["--adapter", "nobody/nothing"],
        &out,
    )
    .clear_error(&["nobody/nothing", "adapter_config.json"]);
    drop(hub);
    summarize(home.path(), None, &["--adapter", "nobody/nothing"], &out)
        .clear_error(&["nobody/nothing", "cannot be reached"]);
    assert!(!out.exists());
}

#[test]
fn without_a_model_an_adapter_must_name_its_base() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("never.jsonl");
    let nameless = adapter_repo(home.path(), None);
    summarize(
        home.path(),
        None,
        &["--adapter", nameless.to_str().unwrap()],
        &out,
    )
    .clear_error(&["names no base model", "--model"]);
    summarize(home.path(), None, &[], &out).clear_error(&["no model", "--model"]);
    assert!(!out.exists());
}

#[test]
fn another_model_than_the_adapters_base_is_said_in_one_sentence() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out.jsonl");
    let model = fixtures().join("t5-gated");
    // Its shapes fit: a warning, then the summaries.
    let other = adapter_repo(home.path(), Some("google/flan-t5-base"));
    let result = summarize(
        home.path(),
        None,
        &[
            "--model",
            model.to_str().unwrap(),
            "--adapter",
            other.to_str().unwrap(),
        ],
        &out,
    );
    let stderr = result.stderr.clone();
    result.success();
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("trained on"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].starts_with("warning: ") && said[0].contains("trained on google/flan-t5-base"),
        "{stderr}"
    );
    assert_eq!(summaries(&out), recorded_summaries("gated-a"));

    // The same base by another path (the fixtures name it "t5-gated"): nothing to say.
    let gated_a = fixtures().join("adapters/gated-a");
    let result = summarize(
        home.path(),
        None,
        &[
            "--model",
            model.to_str().unwrap(),
            "--adapter",
            gated_a.to_str().unwrap(),
            "--overwrite",
        ],
        &out,
    );
    assert!(!result.stderr.contains("trained on"), "{}", result.stderr);
    result.success();

    // They do not fit: one line, before anything runs.
    std::fs::remove_file(&out).unwrap();
    let relu = fixtures().join("adapters/relu-c");
    summarize(
        home.path(),
        None,
        &[
            "--model",
            model.to_str().unwrap(),
            "--adapter",
            relu.to_str().unwrap(),
        ],
        &out,
    )
    .clear_error(&["relu-c", "trained on t5-relu", "another base model"]);
    assert!(!out.exists());
}
