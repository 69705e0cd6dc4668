//! Teaching by correcting from the command line: `dialora data draft` writes drafts for a person
//! to correct in any editor, `dialora train` learns from the corrected rows only, and the adapter
//! keeps the summary style it learned through export and import, so `dialora summarize` uses it.

use std::path::Path;

use dialora_tests::{dialora, fixtures, run};
use serde_json::Value;

const MINUTES: &str = "Write the minutes of the following meeting.\n\n{dialogue}\n\nMinutes: ";

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn summaries(path: &Path) -> Vec<String> {
    jsonl(path)
        .iter()
        .map(|row| row["summary"].as_str().unwrap().to_string())
        .collect()
}

fn summarize(home: &Path, adapter: &Path, output: &Path, extra: &[&str]) -> String {
    let run = run(dialora(home)
        .args(["summarize", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--input")
        .arg(fixtures().join("data/meetings"))
        .arg("--adapter")
        .arg(adapter)
        .arg("--output")
        .arg(output)
        .args(["--max-new-tokens", "12"])
        .args(extra));
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stderr
}

fn inspect(home: &Path, adapter: &Path) -> Value {
    let out = run(dialora(home)
        .args(["adapter", "inspect", "--json"])
        .arg(adapter))
    .success();
    serde_json::from_str(&out).unwrap()
}

#[test]
fn drafts_corrected_in_a_file_train_an_adapter_that_keeps_its_style() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let drafts = home.join("drafts.jsonl");
    let draft = |extra: &[&str]| {
        run(dialora(home)
            .args(["data", "draft"])
            .arg(fixtures().join("data/meetings"))
            .arg("--model")
            .arg(fixtures().join("t5-gated"))
            .args(["--style", "minutes", "--max-new-tokens", "12", "--output"])
            .arg(&drafts)
            .args(extra))
    };
    let stderr = draft(&[]).stderr;
    let rows = jsonl(&drafts);
    assert_eq!(rows.len(), 6, "{stderr}");
    for row in &rows {
        assert_eq!(row["draft"], true, "{row}");
        assert!(
            row["summary"].is_string() && row["dialogue"].is_string(),
            "{row}"
        );
        assert!(
            row["id"].is_string(),
            "the transcript's name is carried: {row}"
        );
    }
    assert!(stderr.contains("drafted 6 of 6"), "{stderr}");
    // A second draft would replace the person's corrections: refused without --overwrite.
    draft(&[]).clear_error(&["drafts.jsonl", "exists already", "--overwrite"]);

    // The person corrects four drafts in an editor and removes their mark.
    let corrected: String = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut row = row.clone();
            if i < 4 {
                row["summary"] = Value::from(format!("Anna and Ben meet at the clinic {i}."));
                row.as_object_mut().unwrap().remove("draft");
            }
            format!("{row}\n")
        })
        .collect();
    std::fs::write(&drafts, corrected).unwrap();
    let check = run(dialora(home).args(["data", "check", "--json"]).arg(&drafts)).success();
    let check: Value = serde_json::from_str(&check).unwrap();
    assert_eq!(
        (check["with_summary"].as_u64(), check["drafts"].as_u64()),
        (Some(4), Some(2))
    );

    let train = |output: &Path, extra: &[&str]| {
        run(dialora(home)
            .args(["train", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--train")
            .arg(&drafts)
            .arg("--output")
            .arg(output)
            .args([
                "--style",
                "minutes",
                "--rank",
                "4",
                "--batch-size",
                "2",
                "--max-steps",
                "3",
            ])
            .args(extra))
    };
    let adapter = home.join("minutes-adapter");
    let trained = train(&adapter, &[]);
    assert_eq!(trained.code, 0, "{}", trained.stderr);
    assert!(
        trained.stderr.contains("2 dialogues left out")
            && trained.stderr.contains("--include-drafts"),
        "the drafts are counted: {}",
        trained.stderr
    );
    let with_drafts = train(&home.join("with-drafts"), &["--include-drafts"]);
    assert_eq!(with_drafts.code, 0, "{}", with_drafts.stderr);
    assert!(
        !with_drafts.stderr.contains("left out"),
        "{}",
        with_drafts.stderr
    );
    assert_eq!(inspect(home, &adapter)["prompt_template"], MINUTES);

    // Shared as one file, imported elsewhere: the style travels with it.
    let shared = home.join("minutes.dlora");
    run(dialora(home)
        .args(["adapter", "export"])
        .arg(&adapter)
        .arg("--output")
        .arg(&shared))
    .success();
    let elsewhere = tempfile::tempdir().unwrap();
    let imported = elsewhere.path().join("minutes");
    run(dialora(home)
        .args(["adapter", "import"])
        .arg(&shared)
        .arg("--output")
        .arg(&imported))
    .success();
    let described = inspect(home, &imported);
    assert_eq!(described["prompt_template"], MINUTES);
    let human = run(dialora(home).args(["adapter", "inspect"]).arg(&imported)).success();
    assert!(
        human.contains("prompt:      \"Write the minutes"),
        "{human}"
    );

    // Summaries with it use the template it was trained with, unless told otherwise.
    let own = home.join("own.jsonl");
    let stderr = summarize(home, &imported, &own, &[]);
    assert!(
        stderr.contains("the prompt the adapter was trained with"),
        "{stderr}"
    );
    let explicit = home.join("explicit.jsonl");
    let stderr = summarize(home, &imported, &explicit, &["--style", "minutes"]);
    assert!(!stderr.contains("trained with"), "{stderr}");
    assert_eq!(summaries(&own), summaries(&explicit));
    assert_eq!(summaries(&own).len(), 6);
}

#[test]
fn adapters_without_a_template_use_the_reference_prompt_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let peft = fixtures().join("adapters/gated-a");
    assert_eq!(inspect(home, &peft)["prompt_template"], Value::Null);
    let plain = home.join("plain.jsonl");
    let stderr = summarize(home, &peft, &plain, &[]);
    assert!(!stderr.contains("trained with"), "{stderr}");
    let reference = home.join("reference.jsonl");
    summarize(home, &peft, &reference, &["--style", "summary"]);
    assert_eq!(summaries(&plain), summaries(&reference));
}

#[test]
fn an_unknown_style_or_a_file_of_drafts_only_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    run(dialora(home)
        .args(["data", "draft"])
        .arg(fixtures().join("data/meetings"))
        .arg("--model")
        .arg(fixtures().join("t5-gated"))
        .args(["--style", "haiku", "--output"])
        .arg(home.join("d.jsonl")))
    .clear_error(&["--style \"haiku\"", "minutes"]);
    let only_drafts = home.join("only-drafts.jsonl");
    std::fs::write(
        &only_drafts,
        "{\"id\": \"a\", \"dialogue\": \"Anna: hi\", \"summary\": \"x\", \"draft\": true}\n\
         {\"id\": \"b\", \"dialogue\": \"Ben: hi\", \"summary\": \"y\", \"draft\": true}\n",
    )
    .unwrap();
    run(dialora(home)
        .args(["train", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--train")
        .arg(&only_drafts)
        .arg("--output")
        .arg(home.join("nothing"))
        .args(["--batch-size", "1", "--max-steps", "1"]))
    .clear_error(&["only-drafts.jsonl", "unreviewed drafts", "--include-drafts"]);
    assert!(!home.join("nothing").exists());
    run(dialora(home)
        .args(["eval", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--data")
        .arg(&only_drafts)
        .arg("--output")
        .arg(home.join("report")))
    .clear_error(&["only-drafts.jsonl:1", "unreviewed draft"]);
}
