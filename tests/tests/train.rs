//! `dialora train` end to end: real learning on a synthetic task, exact continuation after kill -9
//! and after a crash injected between writing a file and renaming it into place, the shareable
//! single-file adapter, and bad settings refused before any work starts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dialora_tests::{dialora, eval_command, fixtures, run};
use serde_json::Value;

/// A dialogue-to-summary task whose summary copies three facts from the dialogue.
fn synthetic_task(folder: &Path, count: usize, seed: u64) -> PathBuf {
    const ITEMS: [&str; 8] = [
        "ticket", "report", "laptop", "umbrella", "coffee", "passport", "meeting", "invoice",
    ];
    const PLACES: [&str; 6] = [
        "the office",
        "the station",
        "the market",
        "the library",
        "the clinic",
        "the park",
    ];
    const TIMES: [&str; 6] = [
        "tomorrow",
        "tonight",
        "on Monday",
        "next week",
        "at noon",
        "after lunch",
    ];
    const NAMES: [&str; 4] = ["Anna", "Ben", "Dana", "Greg"];
    let mut state = seed;
    let mut pick = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % n as u64) as usize
    };
    let mut text = String::new();
    for i in 0..count {
        let (item, place, time, name) = (
            ITEMS[pick(8)],
            PLACES[pick(6)],
            TIMES[pick(6)],
            NAMES[pick(4)],
        );
        let row = serde_json::json!({
            "id": format!("s{i}"),
            "dialogue": format!("#Person1#: Hello, can you bring the {item} to {place} {time}?\n#Person2#: Sure, I will bring the {item}. Ask {name} too."),
            "summary": format!("#Person2# will bring the {item} to {place} {time}."),
        });
        text.push_str(&format!("{row}\n"));
    }
    let path = folder.join(format!("task-{seed}.jsonl"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A small LoRA run on the fixture model with dropout and shuffling on, so that resuming must
/// restore the data order and the dropout generator too.
fn resumable_run(home: &Path, data: &Path, output: &Path, log: &Path) -> Command {
    let mut command = dialora(home);
    command
        .args(["train", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--train")
        .arg(data)
        .arg("--output")
        .arg(output)
        .arg("--log")
        .arg(log)
        .args(["--batch-size", "4", "--epochs", "3", "--rank", "4"])
        .args(["--targets", "q,v,wo", "--checkpoint-every", "2"]);
    command
}

/// `dialora eval` of the adapter in `dir/adapter` on `data`; returns `dir/report/report.json`.
fn evaluate_adapter(dir: &Path, data: &Path, extra: &[&str]) -> Value {
    let report = dir.join("report");
    run(eval_command(dir, "t5-gated", data, &report)
        .arg("--adapter")
        .arg(dir.join("adapter"))
        .args(extra))
    .success();
    let text = std::fs::read_to_string(report.join("report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Makes a task and runs [`resumable_run`] on it to the end; returns the data, that run's log and
/// the path for an interrupted run's log.
fn uninterrupted_run(dir: &Path, seed: u64) -> (PathBuf, PathBuf, PathBuf) {
    let data = synthetic_task(dir, 80, seed);
    let (whole_log, part_log) = (dir.join("whole.jsonl"), dir.join("part.jsonl"));
    run(&mut resumable_run(
        dir,
        &data,
        &dir.join("whole"),
        &whole_log,
    ))
    .success();
    (data, whole_log, part_log)
}

/// Waits until a running training has logged `steps` steps.
fn wait_for_steps(log: &Path, steps: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(log).map_or(0, |t| t.lines().count()) < steps {
        assert!(Instant::now() < deadline, "the run never got going");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn logged_losses(log: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).expect("each log line is JSON");
            (
                record["step"].as_u64().unwrap(),
                record["loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The tensor bytes of a safetensors file (its header's metadata order varies from run to run).
fn tensor_bytes(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header..].to_vec()
}

fn temporary_files(folder: &Path) -> Vec<String> {
    std::fs::read_dir(folder)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

#[test]
fn training_learns_a_synthetic_task() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let train = synthetic_task(dir, 240, 1);
    let validation = synthetic_task(dir, 24, 2);
    let started = Instant::now();
    run(dialora(dir)
        .args(["train", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--train")
        .arg(&train)
        .arg("--validation")
        .arg(&validation)
        .arg("--output")
        .arg(dir.join("adapter"))
        .arg("--log")
        .arg(dir.join("log.jsonl"))
        .args(["--targets", "q,k,v,o,wi_0,wi_1,wo,lm_head", "--rank", "8"])
        .args(["--alpha", "16", "--learning-rate", "5e-3", "--epochs", "8"])
        .args(["--lr-schedule", "constant", "--eval-every", "60"]))
    .success();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 240);
    for key in [
        "step",
        "loss",
        "learning_rate",
        "tokens_per_s",
        "elapsed_s",
        "eta_s",
        "epoch",
    ] {
        assert!(records[0].get(key).is_some(), "log lacks {key}");
    }
    assert_eq!(
        records
            .iter()
            .filter(|r| r.get("validation_loss").is_some())
            .count(),
        4
    );

    let report = evaluate_adapter(dir, &validation, &["--max-new-tokens", "24"]);
    let (baseline, trained) = (&report["runs"][0], &report["runs"][1]);
    let loss = |run: &Value| run["loss"].as_f64().unwrap();
    let rouge_l = |run: &Value| run["rouge"]["rougeL"].as_f64().unwrap();
    assert!(
        loss(trained) < loss(baseline) / 2.0,
        "validation loss {} vs untrained {}",
        loss(trained),
        loss(baseline)
    );
    assert!(
        rouge_l(trained) > rouge_l(baseline) + 0.2,
        "ROUGE-L {} vs untrained {}",
        rouge_l(trained),
        rouge_l(baseline)
    );
}

#[test]
fn a_run_killed_with_sigkill_resumes_to_the_same_losses() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let (data, whole_log, part_log) = uninterrupted_run(dir, 3);
    let expected = logged_losses(&whole_log);
    assert_eq!(expected.len(), 60);

    let output = dir.join("part");
    let mut child = resumable_run(dir, &data, &output, &part_log)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_steps(&part_log, 7);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run finished before it was killed");
    assert!(!output.join("adapter_config.json").exists());

    run(resumable_run(dir, &data, &output, &part_log).arg("--resume")).success();
    assert_eq!(logged_losses(&part_log), expected);
    assert!(temporary_files(&output).is_empty());
}

#[test]
fn a_crash_between_write_and_rename_never_leaves_a_half_written_file() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let data = synthetic_task(dir, 80, 4);
    let expected_log = dir.join("expected.jsonl");
    run(&mut resumable_run(
        dir,
        &data,
        &dir.join("expected"),
        &expected_log,
    ))
    .success();

    let output = dir.join("crashed");
    let log = dir.join("crashed.jsonl");
    // The third checkpoint (step 6) crashes after its temporary file is complete.
    let crashed = run(resumable_run(dir, &data, &output, &log).env(
        "DIALORA_CRASH_BEFORE_RENAME",
        "training-checkpoint.safetensors:3",
    ));
    assert_ne!(crashed.code, 0);
    assert_eq!(temporary_files(&output).len(), 1, "the unfinished write");
    // Resuming starts from step 4's checkpoint, intact, and the final adapter write crashes too.
    let crashed = run(resumable_run(dir, &data, &output, &log)
        .arg("--resume")
        .env("DIALORA_CRASH_BEFORE_RENAME", "adapter_model.safetensors"));
    assert_ne!(crashed.code, 0);
    assert!(!output.join("adapter_model.safetensors").exists());
    run(resumable_run(dir, &data, &output, &log).arg("--resume")).success();
    assert_eq!(logged_losses(&log), logged_losses(&expected_log));
    assert!(temporary_files(&output).is_empty());
    assert!(
        tensor_bytes(&output.join("adapter_model.safetensors"))
            == tensor_bytes(&dir.join("expected/adapter_model.safetensors")),
        "the resumed adapter differs from the uninterrupted one"
    );
}

#[test]
fn a_trained_adapter_travels_as_one_file_and_comes_back() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let data = synthetic_task(dir, 16, 5);
    run(dialora(dir)
        .args(["train", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--train")
        .arg(&data)
        .arg("--output")
        .arg(dir.join("adapter"))
        .args(["--batch-size", "4", "--rank", "2"]))
    .success();
    let report = evaluate_adapter(dir, &data, &["--limit", "4", "--max-new-tokens", "8"]);
    let file = dir.join("shared.dlora");
    run(dialora(dir)
        .args(["adapter", "export"])
        .arg(dir.join("adapter"))
        .arg("--output")
        .arg(&file)
        .arg("--rouge-from")
        .arg(dir.join("report")))
    .success();
    let description: Value = serde_json::from_str(
        &run(dialora(dir)
            .args(["adapter", "inspect"])
            .arg(&file)
            .arg("--json"))
        .success(),
    )
    .unwrap();
    assert_eq!(description["r"], 2);
    assert_eq!(description["card"]["steps"], 4);
    assert!(description["card"]["train_loss"].as_f64().unwrap() > 0.0);
    assert!(
        description["card"]["base_model"]
            .as_str()
            .unwrap()
            .ends_with("t5-gated")
    );
    let card_rouge = &description["card"]["rouge"];
    assert_eq!(card_rouge["rougeL"], report["runs"][1]["rouge"]["rougeL"]);
    assert_eq!(card_rouge["count"], 4);
    let text = run(dialora(dir).args(["adapter", "inspect"]).arg(&file)).success();
    assert!(text.contains("ROUGE:       1 "), "{text}");

    run(dialora(dir)
        .args(["adapter", "import"])
        .arg(&file)
        .arg("--output")
        .arg(dir.join("imported")))
    .success();
    assert_eq!(
        std::fs::read(dir.join("adapter/adapter_config.json")).unwrap(),
        std::fs::read(dir.join("imported/adapter_config.json")).unwrap(),
    );
    assert!(
        tensor_bytes(&dir.join("adapter/adapter_model.safetensors"))
            == tensor_bytes(&dir.join("imported/adapter_model.safetensors")),
        "the weights differ after export and import"
    );
    let summarize = |adapter: &Path, output: &str| {
        run(dialora(dir)
            .args(["summarize", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--adapter")
            .arg(adapter)
            .arg("--input")
            .arg(fixtures().join("inputs.jsonl"))
            .arg("--output")
            .arg(dir.join(output)))
        .success();
        std::fs::read_to_string(dir.join(output)).unwrap()
    };
    assert_eq!(
        summarize(&file, "from-file.jsonl"),
        summarize(&dir.join("adapter"), "from-folder.jsonl")
    );
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let data = synthetic_task(dir, 6, 6);
    let no_summaries = dir.join("no-summaries.jsonl");
    std::fs::write(&no_summaries, "{\"dialogue\": \"#Person1#: Hi.\"}\n").unwrap();
    let output = dir.join("never-written");
    let attempt = |data: &Path, extra: &[&str], fragments: &[&str]| {
        let batch: &[&str] = if extra.contains(&"--batch-size") {
            &[]
        } else {
            &["--batch-size", "2"]
        };
        run(dialora(dir)
            .args(["train", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--train")
            .arg(data)
            .arg("--output")
            .arg(&output)
            .args(batch)
            .args(extra))
        .clear_error(fragments);
        assert!(!output.exists(), "{extra:?} created the output");
    };
    attempt(&data, &["--rank", "0"], &["--rank"]);
    attempt(
        &data,
        &["--targets", "q,query"],
        &["--targets", "\"query\""],
    );
    attempt(&data, &["--learning-rate", "0"], &["--learning-rate"]);
    attempt(&data, &["--learning-rate=-1e-3"], &["--learning-rate"]);
    attempt(
        &data,
        &["--batch-size", "7"],
        &["--batch-size", "6 training examples"],
    );
    attempt(&no_summaries, &[], &["no-summaries.jsonl", "summary"]);
    attempt(&data, &["--resume"], &["nothing to resume"]);
}

#[test]
fn ctrl_c_checkpoints_and_resume_continues_the_same_run() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let (data, whole_log, part_log) = uninterrupted_run(dir, 7);

    let output = dir.join("part");
    let child = resumable_run(dir, &data, &output, &part_log)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_steps(&part_log, 5);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped: dialora_tests::Run = child.wait_with_output().unwrap().into();
    // Warnings about the data (duplicates) come first; the last line says what happened.
    assert_eq!(stopped.code, 1, "{}", stopped.stderr);
    let last = stopped.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("stopped after step") && last.contains("--resume"),
        "{}",
        stopped.stderr
    );
    run(resumable_run(dir, &data, &output, &part_log).arg("--resume")).success();
    assert_eq!(logged_losses(&part_log), logged_losses(&whole_log));
}

#[test]
fn a_diverging_run_stops_with_a_clear_message_and_keeps_its_checkpoint() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let output = dir.join("adapter");
    run(dialora(dir)
        .args(["train", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--train")
        .arg(fixtures().join("train.jsonl"))
        .arg("--output")
        .arg(&output)
        .args(["--learning-rate", "1e30", "--lr-schedule", "constant"])
        .args(["--targets", "q,v,wo,lm_head", "--batch-size", "4"])
        .args(["--checkpoint-every", "1"]))
    .clear_error(&["diverged", "--learning-rate", "checkpoint"]);
    assert!(output.join("training-checkpoint.safetensors").is_file());
    assert!(!output.join("adapter_model.safetensors").exists());
}
