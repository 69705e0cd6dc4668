//! A download from the Hub stops at its next chunk when cancelled, keeps nothing that looks
//! complete, and the next download finishes it. One test in this file: it sets the process's Hub
//! environment.

use std::collections::HashMap;

use dialora_engine::Error;
use dialora_engine::model::ModelFiles;
use dialora_engine::task::{Cancel, Progress, ProgressSink};
use dialora_tests::fixtures;
use dialora_tests::mock_hub::MockHub;

/// Cancels as soon as the first bytes of a file arrive, as a person pressing Stop would.
struct StopOnFirstBytes {
    cancel: Cancel,
}

impl ProgressSink for StopOnFirstBytes {
    fn report(&self, progress: Progress) {
        if progress.done > 0 && progress.stage.ends_with("model.safetensors") {
            self.cancel.cancel();
        }
    }
}

#[test]
fn a_cancelled_download_stops_and_the_next_one_completes_it() {
    let home = tempfile::tempdir().unwrap();
    let hub = MockHub::start(HashMap::from([(
        "google/tiny-t5".to_string(),
        fixtures().join("t5-gated"),
    )]));
    // SAFETY: the only test of this executable sets them before any download starts.
    unsafe {
        std::env::set_var("HF_ENDPOINT", &hub.endpoint);
        std::env::set_var("HF_HOME", home.path());
        std::env::remove_var("HF_HUB_OFFLINE");
    }
    let cancel = Cancel::new();
    let stopping = StopOnFirstBytes {
        cancel: cancel.clone(),
    };
    let result = dialora_engine::hub::fetch_model("google/tiny-t5", &stopping, &cancel);
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    let kept: Vec<_> = walk(home.path())
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "model.safetensors"))
        .collect();
    assert!(kept.is_empty(), "no complete-looking weights: {kept:?}");

    let again = Cancel::new();
    let folder = dialora_engine::hub::fetch_model(
        "google/tiny-t5",
        &dialora_engine::task::NoProgress,
        &again,
    )
    .expect("the next download completes");
    ModelFiles::in_folder(&folder).expect("a whole model folder");
    assert_eq!(
        std::fs::read(folder.join("model.safetensors")).unwrap(),
        std::fs::read(fixtures().join("t5-gated/model.safetensors")).unwrap()
    );
}

fn walk(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
