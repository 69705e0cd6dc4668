//! `dialora data check|convert` end to end, DialogSum from a mock Hub (and offline from the cache
//! afterwards), and every kind of unusable file refused with one line naming the file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dialora_tests::mock_hub::MockHub;
use dialora_tests::{dialora, fixtures, run};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    fixtures().join("data").join(name)
}

fn check(home: &Path, file: &Path, extra: &[&str]) -> Value {
    let out = run(dialora(home)
        .args(["data", "check"])
        .arg(file)
        .arg("--json")
        .args(extra))
    .success();
    serde_json::from_str(&out).expect("data check prints JSON")
}

#[test]
fn check_reports_counts_lengths_and_warnings() {
    let home = tempfile::tempdir().unwrap();
    let report = check(
        home.path(),
        &data("chats.csv"),
        &["--model", fixtures().join("t5-gated").to_str().unwrap()],
    );
    assert_eq!(report["format"], "csv");
    assert_eq!(report["dialogues"], 3);
    assert_eq!(report["with_summary"], 2);
    assert_eq!(report["turns"], 6);
    assert_eq!(report["speakers"], 2);
    let lengths = &report["token_lengths"];
    assert_eq!(lengths["window"], 512);
    assert!(lengths["min"].as_u64().unwrap() > 10);
    assert_eq!(lengths["over_window"], 0);

    let short = check(
        home.path(),
        &data("chats.csv"),
        &[
            "--model",
            fixtures().join("t5-gated").to_str().unwrap(),
            "--max-source-length",
            "30",
        ],
    );
    assert!(short["token_lengths"]["over_window"].as_u64().unwrap() >= 1);

    let dir = home.path();
    std::fs::write(
        dir.join("ugly.csv"),
        "dialogue,summary\nA: hi,hello\n\"\",empty\nA: hi,again\n",
    )
    .unwrap();
    let ugly = check(dir, &dir.join("ugly.csv"), &[]);
    let warnings: Vec<&str> = ugly["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].ends_with("ugly.csv:3: empty dialogue, skipped"));
    assert!(warnings[1].contains("ugly.csv:4: the same dialogue as"));
}

#[test]
fn convert_joins_formats_and_splits_with_a_seed() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    run(dialora(dir)
        .args(["data", "convert"])
        .arg(data("chats.csv"))
        .arg(data("teams.vtt"))
        .arg(data("dialogsum.jsonl"))
        .arg("--output")
        .arg(dir.join("all.jsonl"))
        .args(["--speakers", "persons"]))
    .success();
    let rows: Vec<Value> = std::fs::read_to_string(dir.join("all.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["id"], "c1");
    assert!(
        rows[0]["dialogue"]
            .as_str()
            .unwrap()
            .starts_with("#Person1#: Did you book")
    );
    assert_eq!(rows[3]["id"], "teams");
    assert_eq!(rows[4]["summary2"], "#Person2# needs a ticket.");

    run(dialora(dir)
        .args(["data", "convert"])
        .arg(dir.join("all.jsonl"))
        .arg("--output")
        .arg(dir.join("train.jsonl"))
        .args(["--validation-fraction", "0.5", "--validation-output"])
        .arg(dir.join("validation.jsonl")))
    .success();
    let count = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!((count("train.jsonl"), count("validation.jsonl")), (3, 3));
}

fn dialogsum_hub(folder: &Path) -> MockHub {
    std::fs::write(
        folder.join("train.csv"),
        "id,dialogue,summary,topic\n\
         train_0,\"#Person1#: Hi, Mr. Smith.\n#Person2#: Hello.\",#Person1# greets Mr. Smith.,greeting\n\
         train_1,\"#Person1#: Is it far?\n#Person2#: Ten minutes.\",It is ten minutes away.,directions\n\
         train_2,\"#Person1#: Coffee?\n#Person2#: Please.\",They have coffee.,food\n\
         train_3,\"#Person1#: Done?\n#Person2#: Almost.\",#Person2# is almost done.,work\n",
    )
    .unwrap();
    MockHub::start(HashMap::from([(
        "datasets/knkarthick/dialogsum".to_string(),
        folder.to_path_buf(),
    )]))
}

#[test]
fn dialogsum_comes_from_the_hub_once_and_then_offline() {
    let home = tempfile::tempdir().unwrap();
    let served = tempfile::tempdir().unwrap();
    let hub = dialogsum_hub(served.path());
    let first = run(dialora(home.path())
        .env("HF_ENDPOINT", &hub.endpoint)
        .args(["data", "check", "dialogsum:train", "--json"]))
    .success();
    let report: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(report["dialogues"], 4);
    assert_eq!(report["with_summary"], 4);
    let downloads = hub.files_served();
    assert!(downloads >= 1);
    drop(hub);
    // No hub reachable now: the cached copy serves, for training too.
    let second: Value = serde_json::from_str(
        &run(dialora(home.path()).args(["data", "check", "dialogsum", "--json"])).success(),
    )
    .unwrap();
    assert_eq!(second["dialogues"], 4);
    run(dialora(home.path())
        .args(["train", "--model"])
        .arg(fixtures().join("t5-gated"))
        .args(["--train", "dialogsum", "--output"])
        .arg(home.path().join("adapter"))
        .args(["--batch-size", "2", "--max-steps", "2", "--rank", "2"]))
    .success();
    run(dialora(home.path()).args(["data", "check", "dialogsum:dev"]))
        .clear_error(&["dialogsum:dev", "train, validation and test"]);
}

#[test]
fn unusable_files_end_with_one_line_naming_file_and_line() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::write(dir.join("empty.csv"), "").unwrap();
    std::fs::write(
        dir.join("junk.csv"),
        b"id,dialogue\n\x00\x01\x02\xff\xfe binary",
    )
    .unwrap();
    std::fs::write(dir.join("latin1.txt"), b"Anna: caf\xe9\n").unwrap();
    let huge_line = format!(
        "{{\"dialogue\": \"A: hi\"}}\n{{\"dialogue\": \"{}\"}}\n",
        "a".repeat(17 << 20)
    );
    std::fs::write(dir.join("huge-line.jsonl"), huge_line).unwrap();
    let cases: Vec<(PathBuf, &str, &str)> = vec![
        (data("missing-column.csv"), ":1:", "no dialogue column"),
        (data("invalid.jsonl"), ":3:", "invalid JSON"),
        (data("only-empty.csv"), ":2:", "every dialogue is empty"),
        (data("broken-timestamp.vtt"), ":8:", "broken timestamp"),
        (data("broken.srt"), ":5:", "subtitle number"),
        (data("unclosed-quote.csv"), ":3:", "never closed"),
        (dir.join("empty.csv"), ":1:", "empty"),
        (dir.join("junk.csv"), ":2:", "binary"),
        (dir.join("latin1.txt"), ":1:", "not UTF-8"),
        (dir.join("huge-line.jsonl"), ":2:", "longer than 16 MiB"),
    ];
    for (file, line, what) in &cases {
        let name = file.file_name().unwrap().to_str().unwrap();
        let located = format!("{name}{line}");
        run(dialora(dir).args(["data", "check"]).arg(file)).clear_error(&[located.as_str(), what]);
        run(dialora(dir)
            .args(["summarize", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--input")
            .arg(file)
            .arg("--output")
            .arg(dir.join("out.jsonl")))
        .clear_error(&[located.as_str(), what]);
    }
    assert!(!dir.join("out.jsonl").exists());
}
