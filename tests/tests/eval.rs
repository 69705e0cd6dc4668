//! `dialora eval` end to end: the report folder follows the CLI contract, its numbers are the
//! reference stack's, and its HTML page opens in headless Chromium without script errors.

use std::path::Path;
use std::process::Command;

use dialora_tests::{eval_command, fixtures, run};
use serde_json::Value;

fn recorded() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("parity.json")).unwrap()).unwrap()
}

/// `dialora eval --model fixtures/MODEL --data DATA --output OUTPUT`, for more options to be added.
fn eval_into(home: &Path, output: &Path) {
    let mut command = eval_command(home, "t5-gated", &fixtures().join("inputs.jsonl"), output);
    command
        .arg("--adapter")
        .arg(fixtures().join("adapters/gated-a"))
        .args([
            "--max-new-tokens",
            "24",
            "--max-source-length",
            "128",
            "--max-target-length",
            "12",
            // The reference numbers are f32's.
            "--precision",
            "f32",
        ]);
    run(&mut command).success();
}

#[test]
fn the_report_follows_the_contract_with_the_reference_numbers() {
    let home = tempfile::tempdir().unwrap();
    let output = home.path().join("report");
    eval_into(home.path(), &output);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["count"], 4);
    assert!(report["model"].as_str().unwrap().ends_with("t5-gated"));
    assert!(report["data"].as_str().unwrap().ends_with("inputs.jsonl"));
    assert_eq!(
        report["precision"], "f32",
        "the report says how the weights were held"
    );
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["label"], "baseline");
    assert!(runs[0]["adapter"].is_null());
    assert_eq!(runs[1]["label"], "gated-a");
    let parity = recorded();
    for (run, case) in runs.iter().zip(["gated", "gated-a"]) {
        let recorded_case = &parity["cases"][case];
        let examples = run["examples"].as_array().unwrap();
        assert_eq!(examples.len(), 4);
        let texts = recorded_case["outputs"]["greedy"]["texts"]
            .as_array()
            .unwrap();
        let losses = recorded_case["losses"].as_array().unwrap();
        for ((example, text), loss) in examples.iter().zip(texts).zip(losses) {
            for key in [
                "id",
                "summary",
                "reference",
                "loss",
                "rouge1",
                "rouge2",
                "rougeL",
                "rougeLsum",
            ] {
                assert!(!example[key].is_null(), "{key} missing from {example}");
            }
            assert_eq!(
                example["summary"], *text,
                "{case}: the summary transformers gave"
            );
            let (ours, theirs) = (example["loss"].as_f64().unwrap(), loss.as_f64().unwrap());
            assert!(
                ((ours - theirs) / theirs).abs() < 1e-4,
                "{case}: loss {ours} vs {theirs}"
            );
        }
        let mean_loss: f64 = examples
            .iter()
            .map(|e| e["loss"].as_f64().unwrap())
            .sum::<f64>()
            / 4.0;
        assert!((run["loss"].as_f64().unwrap() - mean_loss).abs() < 1e-9);
        for name in ["rouge1", "rouge2", "rougeL", "rougeLsum"] {
            let mean = run["rouge"][name].as_f64().unwrap();
            let expected: f64 = examples
                .iter()
                .map(|e| e[name].as_f64().unwrap())
                .sum::<f64>()
                / 4.0;
            assert!(
                (mean - expected).abs() < 1e-12,
                "{name} is the mean of the examples"
            );
            let ci = run["rouge_ci95"][name].as_array().unwrap();
            let (low, high) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
            assert!(
                low <= mean + 1e-12 && mean <= high + 1e-12,
                "{name}: {mean} outside [{low}, {high}]"
            );
        }
    }
    let html = std::fs::read_to_string(output.join("report.html")).unwrap();
    assert!(html.contains("synthetic_3") && html.matches("<svg").count() == 2);
    for plot in ["rouge.svg", "rougeL_distribution.svg"] {
        assert!(
            std::fs::read_to_string(output.join(plot))
                .unwrap()
                .starts_with("<svg")
        );
    }
}

#[test]
fn the_html_report_opens_in_headless_chromium_without_errors() {
    let home = tempfile::tempdir().unwrap();
    let output = home.path().join("report");
    eval_into(home.path(), &output);
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is needed for this test: apt-get install chromium (scripts/setup does)");
    let profile = home.path().join("chromium-profile");
    let page = format!("file://{}", output.join("report.html").display());
    let result = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
        ])
        .args([
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=2000", "--dump-dom"])
        .arg(&page)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&result.stdout);
    let log = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "chromium failed: {log}");
    assert!(
        dom.contains("id=\"examples\""),
        "the page did not render: {dom}"
    );
    assert!(!log.contains("Uncaught"), "script error: {log}");
}

#[test]
fn data_without_references_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("no-summaries.jsonl");
    std::fs::write(&data, "{\"dialogue\": \"#Person1#: Hi.\"}\n").unwrap();
    let mut command = eval_command(home.path(), "t5-gated", &data, &home.path().join("out"));
    run(&mut command).clear_error(&["no-summaries.jsonl", "summary"]);
    assert!(!home.path().join("out").exists(), "no report is written");
}

#[test]
fn a_training_log_adds_the_loss_curve_and_a_broken_one_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("train.jsonl");
    std::fs::write(
        &log,
        "{\"step\": 1, \"loss\": 5.0}\n{\"step\": 2, \"loss\": 4.0, \"validation_loss\": 4.5}\n",
    )
    .unwrap();
    let output = home.path().join("report");
    let eval = |log: &Path, output: &Path| {
        let mut command = eval_command(
            home.path(),
            "t5-relu",
            &fixtures().join("inputs.jsonl"),
            output,
        );
        command
            .arg("--training-log")
            .arg(log)
            .args(["--max-new-tokens", "4", "--limit", "2"]);
        run(&mut command)
    };
    eval(&log, &output).success();
    for file in ["loss_curve.svg", "loss_curve.png"] {
        assert!(output.join(file).is_file(), "{file} missing");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["count"], 2, "--limit keeps the first dialogues");
    assert!(
        std::fs::read_to_string(output.join("report.html"))
            .unwrap()
            .contains("Training loss")
    );

    std::fs::write(&log, "{\"step\": 1, \"loss\": 5.0}\n{\"loss\": 4.0}\n").unwrap();
    eval(&log, &home.path().join("other")).clear_error(&["train.jsonl:2", "step"]);
}
