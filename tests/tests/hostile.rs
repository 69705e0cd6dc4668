//! Hostile input end to end: malformed model folders, adapters and data files, outputs in the
//! way, absurd settings and injected faults. Each case asserts what a user would notice: exit 1
//! (2 for usage errors) with exactly one line on stderr naming the file and the field or setting,
//! or success where the input is in fact fine; never a panic, an abort or a changed user file, and
//! never more than 2 GB of memory.

// A test file's modules are found beside it; these live in hostile/, which cargo does not take
// for test binaries of their own.
#[path = "hostile/adapters.rs"]
mod adapters;
#[path = "hostile/data.rs"]
mod data;
#[path = "hostile/faults.rs"]
mod faults;
#[path = "hostile/models.rs"]
mod models;
#[path = "hostile/outputs.rs"]
mod outputs;
#[path = "hostile/settings.rs"]
mod settings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dialora_tests::{Run, dialora, fixtures, run_measured};
use serde_json::Value;
use tempfile::TempDir;

/// A fresh folder for one case: the Hub cache, the outputs and the working folder live there.
fn workspace() -> TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// A `dialora` command with a private Hub cache in `dir`, run from `dir`, so that anything it
/// leaves behind in its working folder shows up there.
fn dialora_in(dir: &Path) -> Command {
    let mut command = dialora(dir);
    command.current_dir(dir);
    command
}

/// A copy of the fixture model `name` (t5-gated or t5-relu) to break, in a folder of its own.
fn copy_model(name: &str) -> TempDir {
    let dir = workspace();
    copy_into(&fixtures().join(name), dir.path());
    dir
}

/// A copy of the fixture adapter `name` (in fixtures/adapters) to break, in a folder of its own.
fn copy_adapter(name: &str) -> TempDir {
    let dir = workspace();
    copy_into(&fixtures().join("adapters").join(name), dir.path());
    dir
}

/// Copies each file of the folder `source` into `folder`.
fn copy_into(source: &Path, folder: &Path) {
    for entry in std::fs::read_dir(source).expect("the fixture folder") {
        let entry = entry.expect("a folder entry");
        std::fs::copy(entry.path(), folder.join(entry.file_name())).expect("a copied file");
    }
}

/// Reads a JSON file, lets `edit` change it and writes it back.
fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let text = std::fs::read_to_string(path).expect("a JSON file");
    let mut json: Value = serde_json::from_str(&text).expect("valid JSON");
    edit(&mut json);
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).expect("written back");
}

/// Replaces `"key": <value>` in a JSON file's text, for values serde_json cannot hold (a number
/// out of range, say).
fn set_raw_json_value(path: &Path, key: &str, raw: &str) {
    edit_json(path, |json| {
        json[key] = Value::String("\u{1}placeholder".into())
    });
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, text.replace("\"\\u0001placeholder\"", raw)).unwrap();
}

/// One tensor of a safetensors file as stored: its dtype name, shape and raw bytes.
#[derive(Clone)]
struct StoredTensor {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl StoredTensor {
    fn f32_values(&self) -> Vec<f32> {
        assert_eq!(self.dtype, "F32", "{} is not F32", self.name);
        self.data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn set_f32_values(&mut self, values: &[f32]) {
        self.dtype = "F32".to_string();
        self.data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    }
}

/// The tensors (in file order) and the `__metadata__` of a safetensors file, read by hand.
fn read_safetensors(path: &Path) -> (Vec<StoredTensor>, Option<Value>) {
    let bytes = std::fs::read(path).expect("a safetensors file");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + header_len]).expect("a safetensors header");
    let data = &bytes[8 + header_len..];
    let mut metadata = None;
    let mut tensors = Vec::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            metadata = Some(entry);
            continue;
        }
        let offsets: Vec<usize> = serde_json::from_value(entry["data_offsets"].clone()).unwrap();
        tensors.push(StoredTensor {
            name,
            dtype: entry["dtype"].as_str().unwrap().to_string(),
            shape: serde_json::from_value(entry["shape"].clone()).unwrap(),
            data: data[offsets[0]..offsets[1]].to_vec(),
        });
    }
    (tensors, metadata)
}

/// A safetensors file by hand: 8-byte little-endian header length, the JSON header (padded with
/// spaces to a multiple of 8, as the format's writers do), then the tensors' bytes in order.
fn safetensors_bytes(tensors: &[StoredTensor], metadata: Option<&Value>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if let Some(metadata) = metadata {
        header.insert("__metadata__".to_string(), metadata.clone());
    }
    let mut offset = 0;
    for tensor in tensors {
        let end = offset + tensor.data.len();
        header.insert(
            tensor.name.clone(),
            serde_json::json!({
                "dtype": tensor.dtype,
                "shape": tensor.shape,
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
    }
    let mut header_text = Value::Object(header).to_string();
    while !header_text.len().is_multiple_of(8) {
        header_text.push(' ');
    }
    let mut bytes = (header_text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header_text.as_bytes());
    for tensor in tensors {
        bytes.extend_from_slice(&tensor.data);
    }
    bytes
}

/// Reads a safetensors file, lets `edit` change its tensors and metadata, and writes it back.
fn edit_safetensors(path: &Path, edit: impl FnOnce(&mut Vec<StoredTensor>, &mut Option<Value>)) {
    let (mut tensors, mut metadata) = read_safetensors(path);
    edit(&mut tensors, &mut metadata);
    std::fs::write(path, safetensors_bytes(&tensors, metadata.as_ref())).unwrap();
}

/// Lets `edit` change the one tensor called `name` of a safetensors file.
fn edit_tensor(path: &Path, name: &str, edit: impl FnOnce(&mut StoredTensor)) {
    edit_safetensors(path, |tensors, _| {
        let tensor = tensors
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tensor {name} in {}", path.display()));
        edit(tensor);
    });
}

/// Bytes that are no known format: a fixed pseudo-random sequence with NULs and invalid UTF-8.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// Every file and folder under `dir` with the bytes of each file, to show that nothing was
/// changed, added (a temporary file, an empty folder) or removed.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)
            .expect("a folder to list")
            .flatten()
        {
            let path = entry.path();
            let relative = path.strip_prefix(dir).unwrap().to_path_buf();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(path);
                entries.insert(relative, None);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                entries.insert(relative, Some(target.into_os_string().into_encoded_bytes()));
            } else {
                entries.insert(relative, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    entries
}

/// Asserts that `dir` holds exactly what `before` recorded, naming what differs.
fn assert_unchanged(dir: &Path, before: &BTreeMap<PathBuf, Option<Vec<u8>>>) {
    let after = snapshot(dir);
    let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let changed: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        added.is_empty() && removed.is_empty() && changed.is_empty(),
        "{}: added {added:?}, removed {removed:?}, changed {changed:?}",
        dir.display()
    );
}

/// Words that give away a programmer's message instead of one for a person: a crash, Rust's
/// type names, serde's wording, and the name of a temporary file the user never made.
const NOT_PLAIN_WORDS: [&str; 16] = [
    "internal error",
    "please report",
    "panicked",
    "computation failed",
    "invalid type:",
    "untagged enum",
    "{ kind:",
    ".tmp",
    "usize",
    "isize",
    "u32",
    "u64",
    "i32",
    "i64",
    "f32",
    "f64",
];

/// Whether `line` holds `fragment` as a word of its own: not glued to letters, digits or `_`
/// on a side where the fragment itself starts or ends with one ("r" is not the r of "rank",
/// "config.json" is not the end of "adapter_config.json").
fn names(line: &str, fragment: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let starts_word = fragment.chars().next().is_some_and(word);
    let ends_word = fragment.chars().last().is_some_and(word);
    line.match_indices(fragment).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + fragment.len()..].chars().next();
        !(starts_word && before.is_some_and(word) || ends_word && after.is_some_and(word))
    })
}

/// Asserts a clear refusal: exit 1 and one line naming each of `fragments` as a word, in plain
/// words.
fn refused(run: Run, fragments: &[&str]) {
    assert_eq!(run.code, 1, "expected exit 1; stderr: {}", run.stderr);
    let line = run.stderr.trim().lines().next().unwrap_or_default();
    for jargon in NOT_PLAIN_WORDS {
        assert!(!names(line, jargon), "\"{jargon}\" in: {}", run.stderr);
    }
    for fragment in fragments {
        assert!(
            names(line, fragment),
            "\"{fragment}\" not named in: {}",
            run.stderr
        );
    }
    run.clear_error(fragments);
}

/// Asserts a usage error as the command-line parser reports one: exit 2, the setting named on
/// the first line, no panic.
fn usage_error(run: Run, setting: &str) {
    assert_eq!(run.code, 2, "expected exit 2; stderr: {}", run.stderr);
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(names(first, setting), "\"{setting}\" not named in: {first}");
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// Asserts success (and no panic message), returning stdout.
fn succeeded(run: Run) -> String {
    assert!(
        !run.stderr.contains("internal error") && !run.stderr.contains("panicked"),
        "{}",
        run.stderr
    );
    run.success()
}

/// `dialora summarize` of the fixture inputs with `model`, writing `dir/summaries.jsonl`.
fn summarize_with(dir: &Path, model: &Path) -> Command {
    let mut command = dialora_in(dir);
    command
        .args(["summarize", "--model"])
        .arg(model)
        .arg("--input")
        .arg(fixtures().join("inputs.jsonl"))
        .arg("--output")
        .arg(dir.join("summaries.jsonl"))
        .args(["--max-new-tokens", "8"]);
    command
}

/// `dialora train` of a LoRA on the fixture model for two steps of `data`, into `output`.
fn train_on(dir: &Path, data: &Path, output: &Path) -> Command {
    train_with(dir, &fixtures().join("t5-gated"), data, output)
}

/// `dialora train` of a LoRA on `model` for two steps of `data`, into `output`.
fn train_with(dir: &Path, model: &Path, data: &Path, output: &Path) -> Command {
    let mut command = dialora_in(dir);
    command
        .args(["train", "--model"])
        .arg(model)
        .arg("--train")
        .arg(data)
        .arg("--output")
        .arg(output)
        .args(["--batch-size", "2", "--max-steps", "2", "--rank", "2"]);
    command
}

/// Training dialogues without duplicates or empty rows, so that training prints no warning.
fn clean_training_data(dir: &Path) -> PathBuf {
    let rows: String = [
        (
            "Can you bring the ticket tomorrow?",
            "The ticket comes tomorrow.",
        ),
        ("Is the station far from here?", "The station is near."),
        ("Shall we meet at noon?", "They meet at noon."),
        ("Where is my umbrella?", "The umbrella is lost."),
    ]
    .iter()
    .enumerate()
    .map(|(i, (dialogue, summary))| {
        format!(
            "{}\n",
            serde_json::json!({
                "id": format!("t{i}"),
                "dialogue": format!("#Person1#: {dialogue}\n#Person2#: Yes."),
                "summary": summary,
            })
        )
    })
    .collect();
    let path = dir.join("training.jsonl");
    std::fs::write(&path, rows).unwrap();
    path
}

/// A tmpfs mounted for one case (we run as root in CI and here), unmounted when dropped.
struct Mounted {
    folder: PathBuf,
}

impl Mounted {
    /// Mounts a tmpfs with `options` (such as `size=1m` or `ro`) on `folder`, or says why not
    /// and returns None, for the case to be skipped where the machine does not allow it.
    fn tmpfs(folder: &Path, options: &str) -> Option<Self> {
        std::fs::create_dir_all(folder).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(folder)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self {
                folder: folder.to_path_buf(),
            }),
            Ok(output) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs here ({})",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(error) => {
                eprintln!("skipped: cannot run mount ({error})");
                None
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there must not leave the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.folder).status();
    }
}
