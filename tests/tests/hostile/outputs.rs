//! Outputs and paths: one rule for every command that writes (an existing output is refused
//! unless --overwrite, regular files only, `-` for standard output, nothing left behind on
//! failure), tried on outputs that are folders, device files, symlinks, missing or read-only
//! folders, the input itself, and one file given for two outputs.

use std::os::unix::fs::FileTypeExt;

use super::*;

/// The commands that write, each with inputs taken from the fixtures.
#[derive(Clone, Copy, Debug)]
enum Writer {
    /// `summarize` to a JSONL file.
    Summarize,
    /// `summarize` of a folder of transcripts to a folder of Markdown files and index.csv.
    SummarizeFolder,
    /// `adapter export` to a .dlora file.
    Export,
    /// `adapter import` to a PEFT folder.
    Import,
    /// `data convert` to a JSONL file.
    Convert,
    /// `data draft` to a JSONL file.
    Draft,
    /// `eval` to a report folder.
    Eval,
    /// `train` to an adapter folder.
    Train,
}

impl Writer {
    /// The command writing to `output`; `dir` is its working folder (and holds its scratch).
    fn command(self, dir: &Path, output: &Path) -> Command {
        let mut command = dialora_in(dir);
        let model = fixtures().join("t5-gated");
        match self {
            Writer::Summarize => {
                command
                    .args(["summarize", "--model"])
                    .arg(&model)
                    .arg("--input")
                    .arg(fixtures().join("inputs.jsonl"))
                    .args(["--max-new-tokens", "4"]);
            }
            Writer::SummarizeFolder => {
                command
                    .args(["summarize", "--model"])
                    .arg(&model)
                    .arg("--input")
                    .arg(fixtures().join("data/meetings"))
                    .args(["--max-new-tokens", "4", "--max-source-length", "64"]);
            }
            Writer::Export => {
                command
                    .args(["adapter", "export"])
                    .arg(fixtures().join("adapters/gated-a"));
            }
            Writer::Import => {
                command
                    .args(["adapter", "import"])
                    .arg(fixtures().join("adapters/styled.dlora"));
            }
            Writer::Convert => {
                command
                    .args(["data", "convert"])
                    .arg(fixtures().join("data/chats.csv"));
            }
            Writer::Draft => {
                command
                    .args(["data", "draft"])
                    .arg(fixtures().join("data/standup.txt"))
                    .arg("--model")
                    .arg(&model)
                    .args(["--max-new-tokens", "4"]);
            }
            Writer::Eval => {
                command
                    .args(["eval", "--model"])
                    .arg(&model)
                    .arg("--data")
                    .arg(fixtures().join("data/dialogsum.jsonl"))
                    .args(["--max-new-tokens", "4"]);
            }
            Writer::Train => {
                let data = clean_training_data(dir);
                return train_on(dir, &data, output);
            }
        }
        command.arg("--output").arg(output);
        command
    }

    /// Puts what a user may already have at `output`: their own file, or a folder holding their
    /// own result. Returns the name the refusal must give.
    fn plant_existing(self, output: &Path) -> String {
        match self {
            Writer::Summarize | Writer::Export | Writer::Convert | Writer::Draft => {
                std::fs::write(output, "my own file, months of work\n").unwrap();
                file_name(output)
            }
            Writer::SummarizeFolder => {
                std::fs::create_dir_all(output).unwrap();
                std::fs::write(output.join("index.csv"), "my,own,index\n").unwrap();
                "index.csv".to_string()
            }
            Writer::Import | Writer::Train => {
                std::fs::create_dir_all(output).unwrap();
                copy_into(&fixtures().join("adapters/gated-b"), output);
                file_name(output)
            }
            Writer::Eval => {
                std::fs::create_dir_all(output).unwrap();
                std::fs::write(output.join("report.json"), "{\"my\": \"report\"}").unwrap();
                file_name(output)
            }
        }
    }

    /// The output's name as a user would give it.
    fn output_name(self) -> &'static str {
        match self {
            Writer::Summarize => "summaries.jsonl",
            Writer::Convert => "converted.jsonl",
            Writer::Draft => "drafts.jsonl",
            Writer::SummarizeFolder => "summaries/",
            Writer::Export => "shared.dlora",
            Writer::Import | Writer::Train => "my-adapter",
            Writer::Eval => "report",
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// A workspace with an `out` folder, the one whose content the case watches.
fn workspace_with_out() -> (tempfile::TempDir, PathBuf) {
    let work = workspace();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    (work, out)
}

fn existing_output_is_refused(writer: Writer) {
    let (work, out) = workspace_with_out();
    let output = out.join(writer.output_name());
    let name = writer.plant_existing(&output);
    let before = snapshot(&out);
    refused(
        run_measured(&mut writer.command(work.path(), &output)),
        &[&name, "--overwrite"],
    );
    assert_unchanged(&out, &before);
}

fn existing_output_is_replaced_with_overwrite(writer: Writer) {
    let (work, out) = workspace_with_out();
    let output = out.join(writer.output_name());
    writer.plant_existing(&output);
    let before = snapshot(&out);
    let mut command = writer.command(work.path(), &output);
    command.arg("--overwrite");
    succeeded(run_measured(&mut command));
    assert_ne!(snapshot(&out), before, "--overwrite replaced nothing");
    let leftovers: Vec<_> = snapshot(&out)
        .into_keys()
        .filter(|path| file_name(path).ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn summarize_refuses_an_existing_file() {
    existing_output_is_refused(Writer::Summarize);
}

#[test]
fn summarize_into_a_folder_refuses_to_replace_the_users_index() {
    existing_output_is_refused(Writer::SummarizeFolder);
}

#[test]
fn adapter_export_refuses_an_existing_file() {
    existing_output_is_refused(Writer::Export);
}

#[test]
fn adapter_import_refuses_a_folder_holding_an_adapter() {
    existing_output_is_refused(Writer::Import);
}

#[test]
fn data_convert_refuses_an_existing_file() {
    existing_output_is_refused(Writer::Convert);
}

#[test]
fn data_draft_refuses_an_existing_file() {
    existing_output_is_refused(Writer::Draft);
}

#[test]
fn eval_refuses_a_folder_holding_a_report() {
    existing_output_is_refused(Writer::Eval);
}

#[test]
fn train_refuses_a_folder_holding_an_adapter() {
    existing_output_is_refused(Writer::Train);
}

#[test]
fn summarize_replaces_an_existing_file_with_overwrite() {
    existing_output_is_replaced_with_overwrite(Writer::Summarize);
}

#[test]
fn summarize_into_a_folder_replaces_the_index_with_overwrite() {
    existing_output_is_replaced_with_overwrite(Writer::SummarizeFolder);
}

#[test]
fn adapter_export_replaces_an_existing_file_with_overwrite() {
    existing_output_is_replaced_with_overwrite(Writer::Export);
}

#[test]
fn adapter_import_replaces_an_adapter_with_overwrite() {
    existing_output_is_replaced_with_overwrite(Writer::Import);
}

#[test]
fn data_convert_replaces_an_existing_file_with_overwrite() {
    existing_output_is_replaced_with_overwrite(Writer::Convert);
}

#[test]
fn data_draft_replaces_an_existing_file_with_overwrite() {
    existing_output_is_replaced_with_overwrite(Writer::Draft);
}

#[test]
fn eval_replaces_a_report_with_overwrite() {
    existing_output_is_replaced_with_overwrite(Writer::Eval);
}

#[test]
fn train_replaces_an_adapter_with_overwrite() {
    existing_output_is_replaced_with_overwrite(Writer::Train);
}

/// A file writer pointed at a folder of the user's: refused naming it, the folder untouched.
fn folder_as_file_output_is_refused(writer: Writer) {
    let (work, out) = workspace_with_out();
    let folder = out.join("Documents");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("letter.txt"), "Dear Anna,\n").unwrap();
    let before = snapshot(&out);
    refused(
        run_measured(&mut writer.command(work.path(), &folder)),
        &["Documents"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn adapter_export_to_a_folder_is_refused() {
    folder_as_file_output_is_refused(Writer::Export);
}

#[test]
fn data_convert_to_a_folder_is_refused() {
    folder_as_file_output_is_refused(Writer::Convert);
}

#[test]
fn data_draft_to_a_folder_is_refused() {
    folder_as_file_output_is_refused(Writer::Draft);
}

/// A folder writer pointed at a file of the user's: refused naming it, the file untouched.
fn file_as_folder_output_is_refused(writer: Writer) {
    let (work, out) = workspace_with_out();
    let file = out.join("thesis.docx");
    std::fs::write(&file, random_bytes(3000)).unwrap();
    let before = snapshot(&out);
    refused(
        run_measured(&mut writer.command(work.path(), &file)),
        &["thesis.docx"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn adapter_import_to_a_file_is_refused() {
    file_as_folder_output_is_refused(Writer::Import);
}

#[test]
fn eval_to_a_file_is_refused() {
    file_as_folder_output_is_refused(Writer::Eval);
}

#[test]
fn train_to_a_file_is_refused() {
    file_as_folder_output_is_refused(Writer::Train);
}

/// An output inside a folder that does not exist: written (the folder made), or refused naming
/// the folder with nothing made.
fn output_in_a_missing_folder(writer: Writer) {
    let (work, out) = workspace_with_out();
    let output = out.join("not-yet").join(writer.output_name());
    let run = run_measured(&mut writer.command(work.path(), &output));
    if run.code == 0 {
        assert!(output.exists(), "success without the output");
    } else {
        refused(run, &["not-yet"]);
        assert!(snapshot(&out).is_empty(), "a failed write leaves nothing");
    }
}

#[test]
fn summarize_into_a_missing_folder() {
    output_in_a_missing_folder(Writer::Summarize);
}

#[test]
fn adapter_export_into_a_missing_folder() {
    output_in_a_missing_folder(Writer::Export);
}

#[test]
fn data_convert_into_a_missing_folder() {
    output_in_a_missing_folder(Writer::Convert);
}

/// An output in a read-only folder (a read-only tmpfs: as root, permissions alone would not
/// stop the write): refused naming the output, nothing written.
fn output_in_a_read_only_folder(writer: Writer) {
    let (work, _out) = workspace_with_out();
    let folder = work.path().join("read-only");
    let Some(_mounted) = Mounted::tmpfs(&folder, "ro,size=1m") else {
        return;
    };
    let output = folder.join(writer.output_name());
    refused(
        run_measured(&mut writer.command(work.path(), &output)),
        &[writer.output_name().trim_end_matches('/')],
    );
    assert!(snapshot(&folder).is_empty());
}

#[test]
fn summarize_into_a_read_only_folder() {
    output_in_a_read_only_folder(Writer::Summarize);
}

#[test]
fn adapter_export_into_a_read_only_folder() {
    output_in_a_read_only_folder(Writer::Export);
}

#[test]
fn data_convert_into_a_read_only_folder() {
    output_in_a_read_only_folder(Writer::Convert);
}

#[test]
fn train_into_a_read_only_folder() {
    output_in_a_read_only_folder(Writer::Train);
}

/// `/dev/full` as the output: one line naming it, and the device still a device (a rename
/// over it would turn it into a regular file).
fn dev_full_as_output(writer: Writer) {
    let work = workspace();
    let device = Path::new("/dev/full");
    refused(
        run_measured(&mut writer.command(work.path(), device)),
        &["/dev/full"],
    );
    let kind = std::fs::metadata(device).unwrap().file_type();
    assert!(kind.is_char_device(), "/dev/full is no longer a device");
}

#[test]
fn summarize_to_dev_full() {
    dev_full_as_output(Writer::Summarize);
}

#[test]
fn adapter_export_to_dev_full() {
    dev_full_as_output(Writer::Export);
}

#[test]
fn data_convert_to_dev_full() {
    dev_full_as_output(Writer::Convert);
}

#[test]
fn data_draft_to_dev_full() {
    dev_full_as_output(Writer::Draft);
}

#[test]
fn summarize_to_dev_null_leaves_it_a_device() {
    let work = workspace();
    let device = Path::new("/dev/null");
    let run = run_measured(&mut Writer::Summarize.command(work.path(), device));
    if run.code != 0 {
        refused(run, &["/dev/null"]);
    }
    let kind = std::fs::metadata(device).unwrap().file_type();
    assert!(kind.is_char_device(), "/dev/null is no longer a device");
}

#[test]
fn summarize_to_standard_output() {
    let work = workspace();
    let stdout = succeeded(run_measured(
        &mut Writer::Summarize.command(work.path(), Path::new("-")),
    ));
    let rows: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSONL on stdout"))
        .collect();
    assert!(!rows.is_empty() && rows.iter().all(|row| row["summary"].is_string()));
    assert!(!work.path().join("-").exists(), "\"-\" became a file");
}

#[test]
fn data_convert_to_standard_output() {
    let work = workspace();
    let stdout = succeeded(run_measured(
        &mut Writer::Convert.command(work.path(), Path::new("-")),
    ));
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(!work.path().join("-").exists(), "\"-\" became a file");
}

/// A symlink to the user's file as the output: refused (dialora replaces regular files only),
/// the link and its target untouched.
fn symlink_to_a_users_file(writer: Writer) {
    let (work, out) = workspace_with_out();
    let target = out.join("precious.jsonl");
    std::fs::write(&target, "{\"id\": 1, \"summary\": \"mine\"}\n").unwrap();
    let link = out.join(writer.output_name());
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let before = snapshot(&out);
    refused(
        run_measured(&mut writer.command(work.path(), &link)),
        &[writer.output_name()],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn summarize_to_a_symlink() {
    symlink_to_a_users_file(Writer::Summarize);
}

#[test]
fn data_convert_to_a_symlink() {
    symlink_to_a_users_file(Writer::Convert);
}

/// `data convert` with --validation-output naming `validation` (relative to the workspace).
fn convert_split(dir: &Path, output: &Path, validation: &Path) -> Command {
    let mut command = dialora_in(dir);
    command
        .args(["data", "convert"])
        .arg(fixtures().join("data/dialogsum.jsonl"))
        .arg(fixtures().join("data/chats.csv"))
        .arg("--output")
        .arg(output)
        .args(["--validation-fraction", "0.5", "--validation-output"])
        .arg(validation);
    command
}

#[test]
fn one_file_for_both_outputs_of_a_split() {
    let (work, out) = workspace_with_out();
    let same = out.join("all.jsonl");
    refused(
        run_measured(&mut convert_split(work.path(), &same, &same)),
        &["--validation-output"],
    );
    assert!(snapshot(&out).is_empty());
}

#[test]
fn one_file_spelled_two_ways_for_both_outputs_of_a_split() {
    let (work, out) = workspace_with_out();
    refused(
        run_measured(&mut convert_split(
            work.path(),
            &out.join("all.jsonl"),
            Path::new("out/./all.jsonl"),
        )),
        &["--validation-output"],
    );
    assert!(snapshot(&out).is_empty());
}

#[test]
fn a_symlink_and_its_target_for_both_outputs_of_a_split() {
    let (work, out) = workspace_with_out();
    let target = out.join("all.jsonl");
    let link = out.join("validation.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let before = snapshot(&out);
    refused(
        run_measured(&mut convert_split(work.path(), &target, &link)),
        &["validation.jsonl"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn an_existing_validation_output_is_refused() {
    let (work, out) = workspace_with_out();
    let validation = out.join("validation.jsonl");
    std::fs::write(&validation, "{\"dialogue\": \"mine\"}\n").unwrap();
    let before = snapshot(&out);
    refused(
        run_measured(&mut convert_split(
            work.path(),
            &out.join("train.jsonl"),
            &validation,
        )),
        &["validation.jsonl", "--overwrite"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn converting_a_file_onto_itself_is_refused() {
    let (work, out) = workspace_with_out();
    let data = out.join("rows.jsonl");
    std::fs::copy(fixtures().join("data/dialogsum.jsonl"), &data).unwrap();
    let before = snapshot(&out);
    refused(
        run_measured(
            dialora_in(work.path())
                .args(["data", "convert"])
                .arg(&data)
                .arg("--output")
                .arg(&data),
        ),
        &["rows.jsonl", "--overwrite"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn summarizing_a_file_onto_itself_is_refused() {
    let (work, out) = workspace_with_out();
    let data = out.join("inputs.jsonl");
    std::fs::copy(fixtures().join("inputs.jsonl"), &data).unwrap();
    let before = snapshot(&out);
    refused(
        run_measured(
            dialora_in(work.path())
                .args(["summarize", "--model"])
                .arg(fixtures().join("t5-gated"))
                .arg("--input")
                .arg(&data)
                .arg("--output")
                .arg(&data),
        ),
        &["inputs.jsonl", "--overwrite"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn summarize_into_a_folder_refuses_to_replace_a_users_markdown_file() {
    let (work, out) = workspace_with_out();
    let folder = out.join("summaries");
    std::fs::create_dir(&folder).unwrap();
    // One Markdown file per transcript, named after it: laptop.vtt gives laptop.md.
    std::fs::write(folder.join("laptop.md"), "# My notes on the laptop\n").unwrap();
    let before = snapshot(&out);
    refused(
        run_measured(&mut Writer::SummarizeFolder.command(work.path(), &folder)),
        &["laptop.md", "--overwrite"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn eval_refuses_a_folder_holding_the_users_html() {
    let (work, out) = workspace_with_out();
    let report = out.join("report");
    std::fs::create_dir(&report).unwrap();
    std::fs::write(report.join("report.html"), "<h1>My own report</h1>").unwrap();
    let before = snapshot(&out);
    refused(
        run_measured(&mut Writer::Eval.command(work.path(), &report)),
        &["report", "--overwrite"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn train_refuses_to_replace_a_users_file_given_as_log() {
    let (work, out) = workspace_with_out();
    let log = out.join("diary.txt");
    std::fs::write(&log, "Dear diary,\n").unwrap();
    let before = snapshot(&out);
    let data = clean_training_data(work.path());
    let output = work.path().join("adapter");
    let mut command = train_on(work.path(), &data, &output);
    command.arg("--log").arg(&log);
    refused(run_measured(&mut command), &["diary.txt", "--overwrite"]);
    assert_unchanged(&out, &before);
    assert!(!output.exists());
}

/// An empty --output: refused (as a usage error or in one line), nothing left in the working
/// folder.
fn empty_output(writer: Writer) {
    let work = workspace();
    let before = snapshot(work.path());
    let run = run_measured(&mut writer.command(work.path(), Path::new("")));
    if run.code == 2 {
        usage_error(run, "--output");
    } else {
        refused(run, &["--output"]);
    }
    assert_unchanged(work.path(), &before);
}

#[test]
fn summarize_to_an_empty_path() {
    empty_output(Writer::Summarize);
}

#[test]
fn data_convert_to_an_empty_path() {
    empty_output(Writer::Convert);
}

#[test]
fn a_file_name_too_long_for_the_system() {
    let (work, out) = workspace_with_out();
    let long = format!("{}.jsonl", "summary-".repeat(40));
    refused(
        run_measured(&mut Writer::Summarize.command(work.path(), &out.join(&long))),
        &[&long],
    );
    assert!(snapshot(&out).is_empty());
}

#[test]
fn eval_that_fails_leaves_no_empty_report_folder() {
    let work = workspace();
    let data = work.path().join("no-summaries.jsonl");
    std::fs::write(&data, "{\"dialogue\": \"#Person1#: Hi.\"}\n").unwrap();
    let report = work.path().join("report");
    let run = run_measured(
        dialora_in(work.path())
            .args(["eval", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--data")
            .arg(&data)
            .arg("--output")
            .arg(&report),
    );
    refused(run, &["no-summaries.jsonl", "summary"]);
    assert!(!report.exists());
}

#[test]
fn train_that_cannot_start_leaves_no_empty_folder() {
    let work = workspace();
    let data = clean_training_data(work.path());
    let output = work.path().join("adapter");
    let mut command = train_on(work.path(), &data, &output);
    command.args(["--targets", "nowhere"]);
    refused(run_measured(&mut command), &["--targets", "\"nowhere\""]);
    assert!(!output.exists());
}
