//! `dialora adapter inspect` and `import` end to end.

use dialora_tests::{dialora, fixtures, run};
use serde_json::Value;

#[test]
fn inspect_describes_a_peft_adapter() {
    let home = tempfile::tempdir().unwrap();
    let adapter = fixtures().join("adapters/gated-a");
    let json = run(dialora(home.path())
        .args(["adapter", "inspect"])
        .arg(&adapter)
        .arg("--json"))
    .success();
    let description: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(description["peft_type"], "LORA");
    assert_eq!(description["r"], 4);
    assert_eq!(description["lora_alpha"], 8.0);
    assert_eq!(description["base_model"], "t5-gated");
    let mut targets: Vec<&str> = description["target_modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    targets.sort();
    assert_eq!(targets, ["q", "v", "wi_0", "wo"]);
    // q and v in 2 encoder + 3 decoder self-attention + 3 cross-attention layers; wi_0, wo in 5 FFNs.
    assert_eq!(description["modules"], 8 * 2 + 5 * 2);
    assert_eq!(description["tensors"], 52);
    // A is r x in and B is out x r: q (36x32), v (36x32), wi_0 (40x32), wo (32x40).
    assert_eq!(
        description["parameters"],
        8 * 2 * 4 * (32 + 36) + 5 * 2 * 4 * (32 + 40)
    );
    assert!(description["bytes"].as_u64().unwrap() > 4 * 3000);

    let text = run(dialora(home.path())
        .args(["adapter", "inspect"])
        .arg(&adapter))
    .success();
    assert!(text.contains("rank:        4"), "{text}");
}

#[test]
fn inspecting_something_that_is_not_an_adapter_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("empty");
    std::fs::create_dir_all(&folder).unwrap();
    run(dialora(home.path())
        .args(["adapter", "inspect"])
        .arg(&folder))
    .clear_error(&["adapter_config.json"]);
    std::fs::write(
        folder.join("adapter_config.json"),
        "{\"r\": 4,\n \"peft_type\": 5}",
    )
    .unwrap();
    run(dialora(home.path())
        .args(["adapter", "inspect"])
        .arg(&folder))
    .clear_error(&["adapter_config.json:2"]);
}
