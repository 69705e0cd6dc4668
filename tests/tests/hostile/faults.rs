//! Faults: kill -9 at random points of every writer and a crash between writing a file and
//! renaming it into place (the previous output stays intact, and the next run of the same
//! command leaves no temporary file), a full disk on a small tmpfs, two trainings on one output
//! at once, a tampered checkpoint, Ctrl-C, and a standard output that is full or closed.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use dialora_tests::dialora_binary;

use super::*;

/// Milliseconds to wait before each of `count` kills, spread over `0..max_ms` at random; printed
/// so that a failure can be replayed.
fn random_delays(count: usize, max_ms: u64) -> Vec<u64> {
    let mut state = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let delays: Vec<u64> = (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % max_ms
        })
        .collect();
    eprintln!("kill -9 after {delays:?} ms");
    delays
}

/// Starts `command`, sends it SIGKILL after `delay_ms` and reaps it.
fn kill_after(command: &mut Command, delay_ms: u64) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dialora runs");
    std::thread::sleep(Duration::from_millis(delay_ms));
    let _ = child.kill();
    let _ = child.wait();
}

/// The temporary files (`.NAME.XXXX.tmp`) in `folder`.
fn temporaries(folder: &Path) -> Vec<String> {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with('.') && name.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// The tensors of a safetensors file by name (its header's order may vary between writes).
fn tensors_by_name(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    read_safetensors(path)
        .0
        .into_iter()
        .map(|t| (t.name, (t.dtype, t.shape, t.data)))
        .collect()
}

/// Kills `command` (which writes `output`) at random points; after each kill the output still
/// holds what a complete run writes, and the next complete run leaves no temporary file.
fn killed_writer_keeps_its_output(output: &Path, command: impl Fn() -> Command, max_ms: u64) {
    succeeded(run_measured(&mut command()));
    let complete = std::fs::read(output).unwrap();
    for delay in random_delays(4, max_ms) {
        kill_after(&mut command(), delay);
        assert_eq!(
            std::fs::read(output).unwrap(),
            complete,
            "killed after {delay} ms, the previous output is not intact"
        );
    }
    succeeded(run_measured(&mut command()));
    let folder = output.parent().unwrap();
    assert!(temporaries(folder).is_empty(), "{:?}", temporaries(folder));
    assert_eq!(std::fs::read(output).unwrap(), complete);
}

#[test]
fn summarize_killed_at_random_points() {
    let work = workspace();
    let dir = work.path();
    let output = dir.join("summaries.jsonl");
    let command = || {
        let mut command = dialora_in(dir);
        command
            .args(["summarize", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--input")
            .arg(fixtures().join("inputs.jsonl"))
            .arg("--output")
            .arg(&output)
            .args(["--max-new-tokens", "16", "--overwrite"]);
        command
    };
    killed_writer_keeps_its_output(&output, command, 200);
}

#[test]
fn data_convert_killed_at_random_points() {
    let work = workspace();
    let dir = work.path();
    let output = dir.join("converted.jsonl");
    let command = || {
        let mut command = dialora_in(dir);
        command
            .args(["data", "convert"])
            .arg(fixtures().join("data/support.csv"))
            .arg(fixtures().join("data/meetings"))
            .arg("--output")
            .arg(&output)
            .arg("--overwrite");
        command
    };
    killed_writer_keeps_its_output(&output, command, 60);
}

#[test]
fn adapter_export_killed_at_random_points() {
    let work = workspace();
    let dir = work.path();
    let output = dir.join("shared.dlora");
    let export = |source: &str| {
        let mut command = dialora_in(dir);
        command
            .args(["adapter", "export"])
            .arg(fixtures().join("adapters").join(source))
            .arg("--output")
            .arg(&output)
            .arg("--overwrite");
        command
    };
    succeeded(run_measured(&mut export("gated-b")));
    let previous = tensors_by_name(&output);
    succeeded(run_measured(&mut export("gated-a")));
    let next = tensors_by_name(&output);
    succeeded(run_measured(&mut export("gated-b")));
    for delay in random_delays(4, 40) {
        kill_after(&mut export("gated-a"), delay);
        // Whole, old or new: never a mix or a half-written file.
        let found = tensors_by_name(&output);
        assert!(
            found == previous || found == next,
            "killed after {delay} ms, shared.dlora is neither the old nor the new adapter"
        );
        succeeded(run_measured(&mut export("gated-b")));
    }
    assert!(temporaries(dir).is_empty(), "{:?}", temporaries(dir));
}

#[test]
fn train_with_checkpoints_killed_at_random_points() {
    let work = workspace();
    let dir = work.path();
    let data = clean_training_data(dir);
    let output = dir.join("adapter");
    let command = || {
        let mut command = dialora_in(dir);
        command
            .args(["train", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--train")
            .arg(&data)
            .arg("--output")
            .arg(&output)
            .args(["--batch-size", "2", "--epochs", "20", "--rank", "2"])
            .args(["--checkpoint-every", "3", "--overwrite"]);
        command
    };
    for delay in random_delays(3, 800) {
        kill_after(&mut command(), delay);
        // Whatever the kill interrupted, an adapter there is a whole one.
        if output.join("adapter_config.json").exists() {
            succeeded(run_measured(
                dialora_in(dir).args(["adapter", "inspect"]).arg(&output),
            ));
        }
    }
    succeeded(run_measured(&mut command()));
    assert!(
        temporaries(&output).is_empty(),
        "{:?}",
        temporaries(&output)
    );
    succeeded(run_measured(
        dialora_in(dir).args(["adapter", "inspect"]).arg(&output),
    ));
}

/// Crashes `command` between writing `file_name`'s temporary file and renaming it, then runs
/// it again: that run must leave no temporary file in `folder`.
fn crash_before_rename_then_run_again(
    command: impl Fn() -> Command,
    file_name: &str,
    folder: &Path,
) {
    let crashed = run_measured(command().env("DIALORA_CRASH_BEFORE_RENAME", file_name));
    assert_ne!(crashed.code, 0, "the crash was not injected");
    succeeded(run_measured(&mut command()));
    assert!(temporaries(folder).is_empty(), "{:?}", temporaries(folder));
}

#[test]
fn a_crashed_adapter_export_leaves_no_temporary_after_the_next_export() {
    let work = workspace();
    let dir = work.path();
    let command = || {
        let mut command = dialora_in(dir);
        command
            .args(["adapter", "export"])
            .arg(fixtures().join("adapters/gated-a"))
            .arg("--output")
            .arg(dir.join("shared.dlora"))
            .arg("--overwrite");
        command
    };
    crash_before_rename_then_run_again(command, "shared.dlora", dir);
}

#[test]
fn a_crashed_summarize_leaves_no_temporary_after_the_next_summarize() {
    let work = workspace();
    let dir = work.path();
    let command = || {
        let mut command = dialora_in(dir);
        command
            .args(["summarize", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--input")
            .arg(fixtures().join("inputs.jsonl"))
            .arg("--output")
            .arg(dir.join("summaries.jsonl"))
            .args(["--max-new-tokens", "4", "--overwrite"]);
        command
    };
    crash_before_rename_then_run_again(command, "summaries.jsonl", dir);
}

#[test]
fn a_crashed_data_convert_leaves_no_temporary_after_the_next_convert() {
    let work = workspace();
    let dir = work.path();
    let command = || {
        let mut command = dialora_in(dir);
        command
            .args(["data", "convert"])
            .arg(fixtures().join("data/chats.csv"))
            .arg("--output")
            .arg(dir.join("converted.jsonl"))
            .arg("--overwrite");
        command
    };
    crash_before_rename_then_run_again(command, "converted.jsonl", dir);
}

#[test]
fn a_crashed_adapter_import_leaves_no_temporary_after_the_next_import() {
    let work = workspace();
    let dir = work.path();
    let folder = dir.join("imported");
    let command = || {
        let mut command = dialora_in(dir);
        command
            .args(["adapter", "import"])
            .arg(fixtures().join("adapters/styled.dlora"))
            .arg("--output")
            .arg(&folder)
            .arg("--overwrite");
        command
    };
    crash_before_rename_then_run_again(command, "adapter_model.safetensors", &folder);
}

#[test]
fn a_crashed_eval_leaves_no_temporary_after_the_next_eval() {
    let work = workspace();
    let dir = work.path();
    let report = dir.join("report");
    let command = || {
        let mut command = dialora_in(dir);
        command
            .args(["eval", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--data")
            .arg(fixtures().join("data/dialogsum.jsonl"))
            .arg("--output")
            .arg(&report)
            .args(["--max-new-tokens", "4", "--overwrite"]);
        command
    };
    crash_before_rename_then_run_again(command, "report.json", &report);
}

/// A long enough training (tens of steps) for two runs to overlap.
fn long_training(dir: &Path, data: &Path, output: &Path) -> Command {
    let mut command = dialora_in(dir);
    command
        .args(["train", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--train")
        .arg(data)
        .arg("--output")
        .arg(output)
        .args(["--batch-size", "2", "--epochs", "30", "--rank", "2"])
        .args(["--checkpoint-every", "5"]);
    command
}

#[test]
fn two_trainings_on_one_output_at_once() {
    let work = workspace();
    let dir = work.path().to_path_buf();
    let data = clean_training_data(&dir);
    let output = dir.join("adapter");
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let started: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| run_measured(&mut long_training(&dir, &data, &output))))
            .collect();
        started.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let (won, lost): (Vec<Run>, Vec<Run>) = runs.into_iter().partition(|run| run.code == 0);
    assert_eq!(won.len(), 1, "exactly one of the two runs trains");
    refused(lost.into_iter().next().unwrap(), &["adapter"]);
    succeeded(run_measured(
        dialora_in(&dir).args(["adapter", "inspect"]).arg(&output),
    ));
}

#[test]
fn a_training_killed_with_sigkill_leaves_no_lock_behind() {
    let work = workspace();
    let dir = work.path();
    let data = clean_training_data(dir);
    let output = dir.join("adapter");
    let log = dir.join("log.jsonl");
    let mut child = long_training(dir, &data, &output)
        .arg("--log")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 6 {
        assert!(Instant::now() < deadline, "the run never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut resumed = long_training(dir, &data, &output);
    resumed.arg("--log").arg(&log).arg("--resume");
    succeeded(run_measured(&mut resumed));
}

/// A training whose final adapter write crashed, leaving the checkpoint of its last step.
fn interrupted_training(dir: &Path) -> (Command, PathBuf) {
    let data = clean_training_data(dir);
    let output = dir.join("adapter");
    let mut command = train_on(dir, &data, &output);
    command.args(["--checkpoint-every", "1"]);
    let crashed = run_measured(
        train_on(dir, &data, &output)
            .args(["--checkpoint-every", "1"])
            .env("DIALORA_CRASH_BEFORE_RENAME", "adapter_model.safetensors"),
    );
    assert_ne!(crashed.code, 0, "the crash was not injected");
    let checkpoint = output.join("training-checkpoint.safetensors");
    assert!(checkpoint.is_file(), "no checkpoint was kept");
    command.arg("--resume");
    (command, checkpoint)
}

#[test]
fn a_checkpoint_whose_tensor_bytes_were_altered_is_not_resumed() {
    let work = workspace();
    let (mut resume, checkpoint) = interrupted_training(work.path());
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x40;
    std::fs::write(&checkpoint, bytes).unwrap();
    refused(
        run_measured(&mut resume),
        &["training-checkpoint.safetensors"],
    );
}

#[test]
fn a_truncated_checkpoint_is_not_resumed() {
    let work = workspace();
    let (mut resume, checkpoint) = interrupted_training(work.path());
    let bytes = std::fs::read(&checkpoint).unwrap();
    std::fs::write(&checkpoint, &bytes[..bytes.len() / 2]).unwrap();
    refused(
        run_measured(&mut resume),
        &["training-checkpoint.safetensors"],
    );
}

#[test]
fn a_checkpoint_with_its_state_replaced_is_not_resumed() {
    let work = workspace();
    let (mut resume, checkpoint) = interrupted_training(work.path());
    edit_safetensors(&checkpoint, |_, metadata| {
        let metadata = metadata.as_mut().expect("a checkpoint has metadata");
        for (_, value) in metadata.as_object_mut().unwrap().iter_mut() {
            if value.as_str().is_some_and(|v| v.contains("\"step\"")) {
                *value = "{\"step\": \"seven\"}".into();
            }
        }
    });
    refused(
        run_measured(&mut resume),
        &["training-checkpoint.safetensors"],
    );
}

/// Fills the tmpfs at `folder` to its last byte.
fn fill(folder: &Path) {
    use std::io::Write;
    let mut filler = std::fs::File::create(folder.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.sync_all();
}

/// Runs a writer whose output is in a full 1 MB tmpfs: one line naming the output and saying
/// the disk is full, and nothing left there but what was there before.
fn full_disk(writer_to: impl FnOnce(&Path, &Path) -> Command, output_name: &str) {
    let work = workspace();
    let disk = work.path().join("disk");
    let Some(_mounted) = Mounted::tmpfs(&disk, "size=1m") else {
        return;
    };
    std::fs::write(
        disk.join("summaries.jsonl"),
        "{\"id\": 1, \"summary\": \"mine\"}\n",
    )
    .unwrap();
    fill(&disk);
    let before = snapshot(&disk);
    let run = run_measured(&mut writer_to(work.path(), &disk.join(output_name)));
    let line = run
        .stderr
        .trim()
        .lines()
        .next()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        line.contains("full") || line.contains("space"),
        "not said to be a full disk: {}",
        run.stderr
    );
    refused(run, &[output_name]);
    assert_unchanged(&disk, &before);
}

#[test]
fn summarize_on_a_full_disk_keeps_the_users_file() {
    full_disk(
        |dir, output| {
            let mut command = dialora_in(dir);
            command
                .args(["summarize", "--model"])
                .arg(fixtures().join("t5-gated"))
                .arg("--input")
                .arg(fixtures().join("inputs.jsonl"))
                .arg("--output")
                .arg(output)
                .args(["--max-new-tokens", "4", "--overwrite"]);
            command
        },
        "summaries.jsonl",
    );
}

#[test]
fn adapter_export_on_a_full_disk() {
    full_disk(
        |dir, output| {
            let mut command = dialora_in(dir);
            command
                .args(["adapter", "export"])
                .arg(fixtures().join("adapters/gated-a"))
                .arg("--output")
                .arg(output);
            command
        },
        "shared.dlora",
    );
}

#[test]
fn data_convert_on_a_full_disk() {
    full_disk(
        |dir, output| {
            let mut command = dialora_in(dir);
            command
                .args(["data", "convert"])
                .arg(fixtures().join("data/support.csv"))
                .arg("--output")
                .arg(output);
            command
        },
        "converted.jsonl",
    );
}

#[test]
fn train_on_a_full_disk_leaves_no_empty_folder() {
    full_disk(
        |dir, output| {
            let data = clean_training_data(dir);
            train_on(dir, &data, output)
        },
        "adapter",
    );
}

#[test]
fn eval_on_a_full_disk_leaves_no_empty_folder() {
    full_disk(
        |dir, output| {
            let mut command = dialora_in(dir);
            command
                .args(["eval", "--model"])
                .arg(fixtures().join("t5-gated"))
                .arg("--data")
                .arg(fixtures().join("data/dialogsum.jsonl"))
                .arg("--output")
                .arg(output)
                .args(["--max-new-tokens", "4"]);
            command
        },
        "report",
    );
}

#[test]
fn adapter_import_on_a_full_disk_leaves_no_empty_folder() {
    full_disk(
        |dir, output| {
            let mut command = dialora_in(dir);
            command
                .args(["adapter", "import"])
                .arg(fixtures().join("adapters/styled.dlora"))
                .arg("--output")
                .arg(output);
            command
        },
        "imported",
    );
}

/// `dialora ARGS` run by bash with its standard output sent by `redirect` (bash syntax, after
/// the command); bash exits with dialora's status.
fn with_stdout(dir: &Path, redirect: &str, args: &[&std::ffi::OsStr]) -> Command {
    let mut command = Command::new("bash");
    command
        .current_dir(dir)
        .env("HF_HOME", dir)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("HF_HUB_OFFLINE")
        .arg("-c")
        .arg(format!("{redirect}; exit \"${{PIPESTATUS[0]}}\""))
        .arg(dialora_binary())
        .args(args);
    command
}

/// Into /dev/full.
const FULL: &str = "\"$0\" \"$@\" > /dev/full";
/// Into a pipe whose reader is gone before dialora starts.
const CLOSED: &str = "{ sleep 0.2; exec \"$0\" \"$@\"; } | true";

fn inspect_json() -> Vec<std::ffi::OsString> {
    vec![
        "adapter".into(),
        "inspect".into(),
        fixtures().join("adapters/gated-a").into(),
        "--json".into(),
    ]
}

/// Predictions and references of many lines, so that the JSON printed is far larger than a pipe
/// holds.
fn rouge_json(dir: &Path) -> Vec<std::ffi::OsString> {
    let lines: String = (0..3000)
        .map(|i| format!("the meeting number {i} moved to friday\n"))
        .collect();
    std::fs::write(dir.join("predictions.txt"), &lines).unwrap();
    std::fs::write(dir.join("references.txt"), &lines).unwrap();
    vec![
        "rouge".into(),
        "--predictions".into(),
        dir.join("predictions.txt").into(),
        "--references".into(),
        dir.join("references.txt").into(),
        "--json".into(),
    ]
}

fn data_check_json() -> Vec<std::ffi::OsString> {
    vec![
        "data".into(),
        "check".into(),
        fixtures().join("data/chats.csv").into(),
        "--json".into(),
    ]
}

fn summarize_to_stdout() -> Vec<std::ffi::OsString> {
    vec![
        "summarize".into(),
        "--model".into(),
        fixtures().join("t5-gated").into(),
        "--input".into(),
        fixtures().join("inputs.jsonl").into(),
        "--output".into(),
        "-".into(),
        "--max-new-tokens".into(),
        "4".into(),
    ]
}

fn as_args(args: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    args.iter().map(|a| a.as_os_str()).collect()
}

/// A full standard output: one line saying so.
fn stdout_full(args: Vec<std::ffi::OsString>) {
    let work = workspace();
    let run = run_measured(&mut with_stdout(work.path(), FULL, &as_args(&args)));
    refused(run, &["standard output"]);
}

/// A closed standard output: a quiet end, neither a message nor a crash.
fn stdout_closed(args: Vec<std::ffi::OsString>) {
    let work = workspace();
    let run = run_measured(&mut with_stdout(work.path(), CLOSED, &as_args(&args)));
    assert!(
        run.stderr.trim().is_empty(),
        "a closed pipe is not an error to report: {}",
        run.stderr
    );
    // 141: ended by SIGPIPE, as command-line tools do.
    assert!(matches!(run.code, 0 | 1 | 141), "exit {}", run.code);
}

#[test]
fn adapter_inspect_into_a_full_standard_output() {
    stdout_full(inspect_json());
}

#[test]
fn adapter_inspect_into_a_closed_pipe() {
    stdout_closed(inspect_json());
}

#[test]
fn rouge_into_a_full_standard_output() {
    let work = workspace();
    stdout_full(rouge_json(work.path()));
}

#[test]
fn rouge_into_a_closed_pipe() {
    let work = workspace();
    stdout_closed(rouge_json(work.path()));
}

#[test]
fn rouge_into_a_pipe_read_for_ten_bytes() {
    let work = workspace();
    let args = rouge_json(work.path());
    let run = run_measured(&mut with_stdout(
        work.path(),
        "\"$0\" \"$@\" | head -c 10 > /dev/null",
        &as_args(&args),
    ));
    assert!(run.stderr.trim().is_empty(), "{}", run.stderr);
    assert!(matches!(run.code, 0 | 1 | 141), "exit {}", run.code);
}

#[test]
fn data_check_into_a_full_standard_output() {
    stdout_full(data_check_json());
}

#[test]
fn data_check_into_a_closed_pipe() {
    stdout_closed(data_check_json());
}

#[test]
fn summaries_into_a_full_standard_output() {
    stdout_full(summarize_to_stdout());
}

#[test]
fn summaries_into_a_closed_pipe() {
    stdout_closed(summarize_to_stdout());
}

#[test]
fn ctrl_c_while_summarizing_writes_nothing() {
    let work = workspace();
    let dir = work.path();
    // Distinct dialogues (duplicates would add warnings), each generated to its full length by
    // beam search: a minute of work, so that the interrupt lands in it on any machine.
    let many: String = (0..3000)
        .map(|i| {
            let row = serde_json::json!({
                "id": format!("d{i}"),
                "dialogue": format!("#Person1#: Shall we move meeting {i} to Friday?\n#Person2#: Yes."),
            });
            format!("{row}\n")
        })
        .collect();
    std::fs::write(dir.join("many.jsonl"), many).unwrap();
    let args: Vec<std::ffi::OsString> = vec![
        "summarize".into(),
        "--model".into(),
        fixtures().join("t5-gated").into(),
        "--input".into(),
        dir.join("many.jsonl").into(),
        "--output".into(),
        dir.join("summaries.jsonl").into(),
        "--max-new-tokens".into(),
        "64".into(),
        "--min-new-tokens".into(),
        "64".into(),
        "--num-beams".into(),
        "4".into(),
    ];
    let script = "\"$0\" \"$@\" & pid=$!; sleep 0.5; kill -INT $pid 2>/dev/null; wait $pid";
    let run = run_measured(&mut with_stdout(dir, script, &as_args(&args)));
    refused(run, &[]);
    assert!(!dir.join("summaries.jsonl").exists());
    assert!(temporaries(dir).is_empty(), "{:?}", temporaries(dir));
}
