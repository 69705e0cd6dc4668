//! The app on a machine without a network: loading a Hub model says so in plain words, with
//! Retry and the technical line under Details, and the app goes on. One test in this file, so
//! that the Hub's address it sets for the engine is the only one in its process.

mod harness;

use dialora_ui::plain::NextStep;
use dialora_ui::protocol::{ProblemKind, Task};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use harness::*;

#[test]
fn an_offline_model_load_says_offline_with_retry_and_details() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this process sets them before any engine thread starts.
    unsafe {
        std::env::set_var("HF_HOME", home.path().join("hub"));
        std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
        std::env::remove_var("HF_HUB_OFFLINE");
    }
    let mut harness = app(home.path(), PLENTY);
    go_to(&mut harness, dialora_ui::screens::Screen::Model);
    let source = harness.state().state.model_source.clone();
    assert!(
        !std::path::Path::new(&source).exists(),
        "a Hub id: {source}"
    );
    click(&mut harness, "Load model");
    wait_idle(&mut harness);

    let failure = harness.state().state.error.clone().expect("a message");
    assert_eq!(failure.task, Some(Task::LoadModel));
    assert_eq!(failure.problem.kind, ProblemKind::Offline, "{failure:?}");
    let explanation = failure.explanation();
    assert!(explanation.sentence.contains("offline"));
    assert!(shown(&harness, &explanation.sentence));
    // The hub's own words are not on the page until asked for.
    assert!(!shown(&harness, &failure.problem.detail));
    click(&mut harness, "Details");
    assert!(shown(&harness, &failure.problem.detail));
    assert!(failure.problem.detail.contains("cannot be reached"));

    // Retry runs the same load again, and it fails the same way while offline.
    assert_eq!(explanation.steps[0], NextStep::Retry);
    click(&mut harness, "Retry");
    assert!(harness.state().state.busy() || harness.state().state.error.is_some());
    wait_idle(&mut harness);
    let again = harness.state().state.error.clone().expect("failed again");
    assert_eq!(again.problem.kind, ProblemKind::Offline);
    assert!(
        harness.state().state.running.is_none(),
        "the status bar no longer shows the load"
    );

    // The log keeps both, and the app shows it.
    click(&mut harness, "Details");
    click(&mut harness, "Show the log");
    for _ in 0..500 {
        if harness.state().state.log.is_some() {
            break;
        }
        harness.step();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    harness.run_steps(2);
    let (path, text) = harness.state().state.log.clone().unwrap();
    assert_eq!(text.matches("Offline").count(), 2, "{text}");
    assert!(path.ends_with("dialora.log"));
    assert!(shown(&harness, "Log of problems"));

    click(&mut harness, "Dismiss");
    assert!(harness.state().state.error.is_none());
    assert!(
        harness
            .query_by_role_and_label(Role::Button, "Retry")
            .is_none()
    );
}
