//! The app given broken files, as a person would pick them: each refusal is the engine's one line
//! (naming the file and what is wrong in it) under Details, below a plain sentence, and the app
//! goes on working.

mod harness;

use std::path::Path;

use dialora_tests::fixtures;
use dialora_ui::protocol::{ProblemKind, Task};
use dialora_ui::screens::Screen;
use egui_kittest::Harness;
use harness::*;

/// The message of the task that failed, shown: its plain sentence at once, the engine's one line
/// under Details; every fragment is in that line.
fn shows_one_line(
    harness: &mut Harness<'_, dialora_ui::DialoraApp>,
    task: Task,
    fragments: &[&str],
) {
    let failure = harness.state().state.error.clone().expect("a message");
    assert_eq!(failure.task, Some(task), "{failure:?}");
    assert_eq!(failure.problem.kind, ProblemKind::Invalid, "{failure:?}");
    let detail = &failure.problem.detail;
    assert_eq!(detail.lines().count(), 1, "{detail}");
    for fragment in fragments {
        assert!(
            detail.contains(fragment),
            "\"{fragment}\" missing from: {detail}"
        );
    }
    assert!(shown(harness, &failure.explanation().sentence));
    click(harness, "Details");
    assert!(shown(harness, detail), "the line is on the page: {detail}");
    click(harness, "Dismiss");
    assert!(harness.state().state.error.is_none());
}

/// A copy of the fixture model `name` with `edit` applied to its config.json.
fn broken_model(root: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let folder = root.join("broken-model");
    std::fs::create_dir_all(&folder).unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixtures().join("t5-gated").join(file), folder.join(file)).unwrap();
    }
    let path = folder.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
    folder
}

#[test]
fn a_model_without_layers_is_refused_in_one_line_naming_the_field() {
    let home = tempfile::tempdir().unwrap();
    let model = broken_model(home.path(), |c| c["num_layers"] = 0.into());
    let mut harness = app(home.path(), PLENTY);
    go_to(&mut harness, Screen::Model);
    harness.state_mut().state.model_source.clear();
    type_into(
        &mut harness,
        "Hub id or model folder:",
        &model.display().to_string(),
    );
    click(&mut harness, "Load model");
    wait_idle(&mut harness);
    shows_one_line(
        &mut harness,
        Task::LoadModel,
        &["config.json", "num_layers"],
    );
    // The app goes on: the real model loads after it.
    load_model(&mut harness);
}

#[test]
fn a_utf16_data_file_is_refused_in_one_line_not_called_empty() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    load_model(&mut harness);
    let file = home.path().join("exported.csv");
    let mut bytes = vec![0xFF, 0xFE];
    for unit in "dialogue,summary\nA: hi,greeting\n".encode_utf16() {
        bytes.extend(unit.to_le_bytes());
    }
    std::fs::write(&file, bytes).unwrap();
    type_into(&mut harness, "Data files", &file.display().to_string());
    click(&mut harness, "Import");
    wait_idle(&mut harness);
    shows_one_line(&mut harness, Task::ImportData, &["exported.csv", "UTF-16"]);
}

#[test]
fn an_adapter_with_broken_weights_is_refused_in_one_line_and_not_added() {
    let home = tempfile::tempdir().unwrap();
    let adapter = home.path().join("stranger");
    std::fs::create_dir_all(&adapter).unwrap();
    let source = fixtures().join("adapters/gated-a");
    std::fs::copy(
        source.join("adapter_config.json"),
        adapter.join("adapter_config.json"),
    )
    .unwrap();
    // Every f32 of the weights made NaN: the header's length, then the header, then the data.
    let mut weights = std::fs::read(source.join("adapter_model.safetensors")).unwrap();
    let header = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    for value in weights[8 + header..].chunks_exact_mut(4) {
        value.copy_from_slice(&f32::NAN.to_le_bytes());
    }
    std::fs::write(adapter.join("adapter_model.safetensors"), weights).unwrap();

    let mut harness = app(home.path(), PLENTY);
    go_to(&mut harness, Screen::Adapters);
    harness.state_mut().state.import_path.clear();
    type_into(
        &mut harness,
        "Import a file or folder:",
        &adapter.display().to_string(),
    );
    click(&mut harness, "Import adapter");
    wait_idle(&mut harness);
    shows_one_line(
        &mut harness,
        Task::Library,
        &["adapter_model.safetensors", "NaN"],
    );
    assert!(
        harness.state().state.library.is_empty(),
        "nothing was added"
    );
}
