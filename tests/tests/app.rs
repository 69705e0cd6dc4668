//! The app driven as a user would (egui_kittest clicks and typing) against the real engine in
//! this process, with the tiny fixture model: the whole flow from loading a model to a saved
//! summary, closing the window mid-training, and engine errors shown as readable messages.

mod harness;

use dialora_tests::fixtures;
use dialora_ui::DialoraApp;
use dialora_ui::protocol::{ProblemKind, ReviewStatus};
use dialora_ui::screens::Screen;
use dialora_ui::state::State;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use harness::*;

#[test]
fn a_user_goes_from_a_csv_to_a_shared_adapter_and_a_saved_summary() {
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    load_model_and_data(&mut harness);
    let data = harness.state().state.data.clone().unwrap();
    assert_eq!((data.dialogues, data.with_summary), (12, 12));
    assert_eq!((data.train, data.validation), (9, 3));
    assert!(shown(&harness, "order 1042"));

    go_to(&mut harness, Screen::Train);
    quick_settings(&mut harness, "support", 6, 100);
    wait_for_estimate(&mut harness);
    assert!(shown(&harness, "Estimate: 6 steps"));
    click(&mut harness, "Start training");
    wait(&mut harness, "two training steps", |s| {
        s.training.as_ref().is_some_and(|t| t.points.len() >= 2)
    });
    click(&mut harness, "Stop");
    wait_idle(&mut harness);
    let view = harness.state().state.training.clone().unwrap();
    let stopped = view.stopped_at.expect("stopped with a checkpoint");
    assert!((2..6).contains(&stopped), "stopped at {stopped}");
    assert!(shown(&harness, "paused at step"));
    assert!(
        home.path()
            .join("adapters/support/training-checkpoint.safetensors")
            .exists()
    );

    click(&mut harness, "Resume");
    wait(&mut harness, "the end of training", |s| {
        s.training.as_ref().is_some_and(|t| t.finished)
    });
    let view = harness.state().state.training.clone().unwrap();
    let steps: Vec<usize> = view.points.iter().map(|p| p.step).collect();
    assert_eq!(steps, (1..=6).collect::<Vec<_>>(), "one point per step");
    assert!(view.points.iter().any(|p| p.validation_loss.is_some()));
    assert!(
        home.path()
            .join("adapters/support/adapter_model.safetensors")
            .exists()
    );

    go_to(&mut harness, Screen::Evaluate);
    harness.state_mut().state.eval_limit = 3;
    click(&mut harness, "Evaluate");
    wait(&mut harness, "the evaluation", |s| s.evaluation.is_some());
    let evaluation = harness.state().state.evaluation.clone().unwrap();
    let labels: Vec<&str> = evaluation.runs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["the model alone", "support"]);
    assert_eq!(evaluation.examples.len(), 3);
    // The scores table and the per-example table name both runs.
    assert!(harness.get_all_by_label("the model alone").count() >= 2);
    let report = out.path().join("report");
    type_into(
        &mut harness,
        "Report folder:",
        &report.display().to_string(),
    );
    click(&mut harness, "Export report");
    wait_idle(&mut harness);
    assert!(report.join("report.json").exists());
    assert!(report.join("report.html").exists());

    go_to(&mut harness, Screen::Adapters);
    let entry = harness.state().state.library[0].clone();
    assert_eq!((entry.name.as_str(), entry.rank), ("support", 4));
    assert!(entry.rouge.is_some(), "the library shows its scores");
    let shared = out.path().join("support.dlora");
    type_into(
        &mut harness,
        "Export to file:",
        &shared.display().to_string(),
    );
    click(&mut harness, "Export \"support\"");
    wait_idle(&mut harness);
    assert!(shared.exists());
    type_into(
        &mut harness,
        "Import a file or folder:",
        &shared.display().to_string(),
    );
    click(&mut harness, "Import adapter");
    // It comes back under its own name, which the library has: the app asks.
    wait(&mut harness, "the question", |s| {
        s.import_conflict.is_some()
    });
    click(&mut harness, "Keep both");
    wait(&mut harness, "the imported adapter", |s| {
        s.library.len() == 2
    });
    let imported = harness.state().state.library[1].clone();
    assert_eq!((imported.name.as_str(), imported.rank), ("support-2", 4));
    assert_eq!(imported.rouge, entry.rouge, "with its scores");

    go_to(&mut harness, Screen::Summarize);
    let transcript = fixtures().join("data/teams.vtt");
    type_into(
        &mut harness,
        "Transcript file:",
        &transcript.display().to_string(),
    );
    click(&mut harness, "Summarize");
    wait(&mut harness, "the summary", |s| s.summary.is_some());
    let summary = harness.state().state.summary.clone().unwrap();
    assert_eq!(summary.source, "teams.vtt");
    assert_eq!(summary.adapter.as_deref(), Some("support"));
    let saved = out.path().join("summary.txt");
    type_into(&mut harness, "Save as:", &saved.display().to_string());
    click(&mut harness, "Save");
    wait_idle(&mut harness);
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), summary.text);
}

/// The review's items as (status, summary) pairs.
fn decisions(state: &State) -> Vec<(ReviewStatus, Option<String>)> {
    let review = state.review.as_ref().expect("a review is open");
    review
        .view
        .items
        .iter()
        .map(|i| (i.status, i.summary.clone()))
        .collect()
}

/// Accepts the current draft with Ctrl+Enter, after adding `edit` to it when given (or any word
/// when the draft is empty, since an empty summary cannot be accepted).
fn accept(harness: &mut Harness<'_, DialoraApp>, edit: Option<&str>, with_button: bool) {
    let empty = harness
        .state()
        .state
        .review
        .as_ref()
        .unwrap()
        .text
        .trim()
        .is_empty();
    match (edit, empty) {
        (Some(words), _) => type_into(harness, "Summary", words),
        (None, true) => type_into(harness, "Summary", "meeting"),
        (None, false) => {}
    }
    if with_button {
        click(harness, "Accept");
    } else {
        harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
        harness.run_steps(2);
    }
}

#[test]
fn transcripts_without_summaries_become_an_adapter_by_correcting_drafts() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    load_model(&mut harness);
    let folder = fixtures().join("data/meetings");
    type_into(&mut harness, "Data files", &folder.display().to_string());
    click(&mut harness, "Import");
    wait(&mut harness, "the transcripts", |s| {
        s.data.is_some() && !s.busy()
    });
    let data = harness.state().state.data.clone().unwrap();
    assert_eq!((data.dialogues, data.with_summary), (6, 0));
    assert!(shown(&harness, "No dialogue has a summary yet"));
    click(&mut harness, "Review drafts");
    assert_eq!(harness.state().screen, Screen::Review);

    // A style of its own, chosen before drafting.
    let minutes = harness
        .state()
        .state
        .styles
        .iter()
        .find(|s| s.id == "minutes")
        .expect("the minutes style")
        .template
        .clone();
    {
        let state = &mut harness.state_mut().state;
        state.new_dataset_name = "meetings".into();
        state.review_style = minutes.clone();
    }
    harness.run_steps(2);
    click(&mut harness, "Create and draft");
    wait(&mut harness, "six drafts", |s| {
        !s.busy()
            && s.review
                .as_ref()
                .is_some_and(|r| r.view.items.iter().all(|i| i.drafted.is_some()))
    });
    let review = harness.state().state.review.clone().unwrap();
    assert_eq!(review.view.entry.dialogues, 6);
    assert!(
        review
            .view
            .items
            .iter()
            .all(|i| i.draft && !i.turns.is_empty())
    );
    assert!(shown(&harness, "0 of 6 reviewed · 0 accepted"));
    assert_eq!(harness.state().state.new_dataset_name, "meetings-2");
    assert!(shown(
        &harness,
        "Round 1, drafted by the model alone: 6 drafts"
    ));

    // Two drafts edited, two accepted as they are, two skipped.
    accept(&mut harness, Some(" The team agreed."), false);
    accept(&mut harness, Some(" Ben will call."), true);
    accept(&mut harness, None, false);
    accept(&mut harness, None, true);
    click(&mut harness, "Skip");
    click(&mut harness, "Skip");
    wait(&mut harness, "six decisions saved", |s| {
        s.review
            .as_ref()
            .is_some_and(|r| r.view.entry.reviewed == 6 && r.view.entry.accepted == 4)
    });
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::ArrowUp);
    harness.run_steps(2);
    let position = harness.state().state.review.as_ref().unwrap().position();
    let kept = decisions(&harness.state().state);
    assert!(kept[0].1.as_deref().unwrap().ends_with("The team agreed."));
    assert!(shown(&harness, "6 of 6 reviewed · 4 accepted"));

    // The window goes away mid-review; the next launch opens the review where it was.
    drop(harness);
    let mut harness = app(home.path(), PLENTY);
    wait(&mut harness, "the review to reopen", |s| s.review.is_some());
    assert_eq!(harness.state().screen, Screen::Review);
    assert_eq!(
        harness.state().state.review.as_ref().unwrap().position(),
        position
    );
    assert_eq!(
        decisions(&harness.state().state),
        kept,
        "every decision kept"
    );
    assert!(shown(&harness, "\"meetings\""));

    // Train on the accepted summaries: the preset adapts to a handful of them.
    load_model(&mut harness);
    go_to(&mut harness, Screen::Review);
    click(&mut harness, "Train on this dataset");
    wait(&mut harness, "the dataset as data", |s| {
        s.data.is_some() && !s.busy()
    });
    assert_eq!(harness.state().screen, Screen::Train);
    let data = harness.state().state.data.clone().unwrap();
    assert_eq!((data.with_summary, data.drafts), (4, 2));
    assert!(data.validation >= 1, "{data:?}");
    let train = harness.state().state.train.clone();
    assert_eq!(train.prompt_template, minutes);
    assert!(
        train.batch_size <= data.train_examples && train.epochs > 1,
        "{train:?}"
    );
    assert!(shown(&harness, "Chosen for"));
    harness.state_mut().state.adapter_name = "meetings-v1".into();
    wait_for_estimate(&mut harness);
    click(&mut harness, "Start training");
    wait(&mut harness, "the end of training", |s| {
        s.training.as_ref().is_some_and(|t| t.finished)
    });
    let view = harness.state().state.training.clone().unwrap();
    assert!(
        view.warnings
            .iter()
            .any(|w| w.contains("2 dialogues left out")),
        "{:?}",
        view.warnings
    );
    let entry = harness.state().state.library[0].clone();
    assert_eq!(entry.prompt_template.as_deref(), Some(minutes.as_str()));

    // The new adapter drafts the rest; the second round's figure is shown beside the first's.
    go_to(&mut harness, Screen::Review);
    click(&mut harness, "Draft the rest with meetings-v1");
    wait(&mut harness, "the second round", |s| {
        !s.busy()
            && s.review.as_ref().is_some_and(|r| {
                r.view
                    .items
                    .iter()
                    .filter(|i| i.drafted_by.as_deref() == Some("meetings-v1"))
                    .count()
                    == 2
            })
    });
    let pending: Vec<usize> = decisions(&harness.state().state)
        .iter()
        .enumerate()
        .filter(|(_, (status, _))| *status != ReviewStatus::Accepted)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(pending.len(), 2);
    harness
        .state_mut()
        .state
        .review
        .as_mut()
        .unwrap()
        .go_to(pending[0]);
    harness.run_steps(2);
    accept(&mut harness, Some(" Done."), false);
    accept(&mut harness, None, false);
    wait(&mut harness, "every dialogue accepted", |s| {
        s.review
            .as_ref()
            .is_some_and(|r| r.view.entry.accepted == 6)
    });
    assert!(shown(
        &harness,
        "Round 2, drafted by meetings-v1: 2 drafts, 2 accepted"
    ));
    assert!(shown(&harness, "edits than the model alone's"));

    // Summarize with the adapter: the engine is given the prompt it was trained with.
    go_to(&mut harness, Screen::Summarize);
    type_into(
        &mut harness,
        "Transcript file:",
        &folder.join("clinic.vtt").display().to_string(),
    );
    click(&mut harness, "Summarize");
    wait(&mut harness, "the summary", |s| s.summary.is_some());
    let summary = harness.state().state.summary.clone().unwrap();
    assert_eq!(summary.adapter.as_deref(), Some("meetings-v1"));
    assert_eq!(summary.prompt_template, minutes);
    assert!(shown(&harness, "Meeting minutes"));
}

#[test]
fn closing_the_window_during_training_leaves_a_run_to_resume() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    load_model_and_data(&mut harness);
    go_to(&mut harness, Screen::Train);
    quick_settings(&mut harness, "closed", 5000, 1000);
    wait_for_estimate(&mut harness);
    click(&mut harness, "Start training");
    wait(&mut harness, "a training step", |s| {
        s.training.as_ref().is_some_and(|t| !t.points.is_empty())
    });
    // Closing the window drops the app, and with it the engine service.
    drop(harness);
    let folder = home.path().join("adapters/closed");
    eprintln!(
        "{:?}",
        std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    assert!(folder.join("training-checkpoint.safetensors").exists());
    assert!(!folder.join("adapter_model.safetensors").exists());

    let mut harness = app(home.path(), PLENTY);
    let run = harness.state().state.interrupted.first().cloned();
    let run = run.expect("the interrupted run is offered at the next launch");
    assert_eq!((run.name.as_str(), run.total_steps), ("closed", 5000));
    assert!(run.step >= 1);
    go_to(&mut harness, Screen::Train);
    assert!(shown(&harness, "paused at step"));
    // Resuming loads the model and data the run used by itself.
    click(&mut harness, "Resume");
    wait(&mut harness, "steps after the resumed one", |s| {
        s.training.as_ref().is_some_and(|t| t.points.len() >= 2)
    });
    let first = harness.state().state.training.as_ref().unwrap().points[0].step;
    assert_eq!(first, run.step + 1, "it continues where it stopped");
    click(&mut harness, "Stop");
    wait_idle(&mut harness);
}

/// Waits for the task to fail with `kind`, the technical line holding each of `fragments`; the
/// plain sentence is on screen, Details shows the line, and Dismiss takes it away.
fn shows_error(harness: &mut Harness<'_, DialoraApp>, kind: ProblemKind, fragments: &[&str]) {
    wait_idle(harness);
    let failure = harness
        .state()
        .state
        .error
        .clone()
        .expect("an error message");
    assert_eq!(failure.problem.kind, kind, "{failure:?}");
    let detail = &failure.problem.detail;
    for fragment in fragments {
        assert!(detail.contains(fragment), "{detail:?} lacks {fragment:?}");
    }
    assert_eq!(detail.lines().count(), 1, "one line: {detail:?}");
    let sentence = failure.explanation().sentence;
    assert!(shown(harness, &sentence), "{sentence} is on screen");
    click(harness, "Details");
    assert!(shown(harness, detail), "Details shows {detail}");
    click(harness, "Dismiss");
    assert!(harness.state().state.error.is_none());
}

#[test]
fn engine_errors_are_readable_messages_in_the_app() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), 100_000_000);
    go_to(&mut harness, Screen::Model);

    let missing = home.path().join("no-such-model");
    harness.state_mut().state.model_source.clear();
    type_into(
        &mut harness,
        "Hub id or model folder:",
        &missing.display().to_string(),
    );
    click(&mut harness, "Load model");
    shows_error(&mut harness, ProblemKind::Missing, &["no-such-model"]);
    assert!(harness.state().state.model.is_none());

    load_model_and_data(&mut harness);
    harness.state_mut().state.data_paths.clear();
    let broken = fixtures().join("data/invalid.jsonl");
    type_into(&mut harness, "Data files", &broken.display().to_string());
    click(&mut harness, "Import");
    shows_error(
        &mut harness,
        ProblemKind::Invalid,
        &["invalid.jsonl:3", "invalid JSON"],
    );
    assert_eq!(
        harness.state().state.data.as_ref().unwrap().dialogues,
        12,
        "kept"
    );

    go_to(&mut harness, Screen::Train);
    quick_settings(&mut harness, "too-big", 4, 100);
    wait_for_estimate(&mut harness);
    assert!(!harness.state().state.estimate.as_ref().unwrap().fits);
    click(&mut harness, "Start training");
    shows_error(
        &mut harness,
        ProblemKind::Settings,
        &["memory", "this machine has 0.1 GB"],
    );
    assert!(!home.path().join("adapters/too-big").exists());
}

#[test]
fn settings_are_kept_between_launches() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    assert!(harness.state().state.settings.dark_mode);
    go_to(&mut harness, Screen::Settings);
    click(&mut harness, "Light");
    wait_idle(&mut harness);
    type_into(
        &mut harness,
        "Export folder (reports, summaries)",
        "/srv/exports",
    );
    harness.get_by_label("Theme:").click();
    harness.run_steps(2);
    wait_idle(&mut harness);
    drop(harness);

    let harness = app(home.path(), PLENTY);
    let state = &harness.state().state;
    assert!(!state.settings.dark_mode);
    assert_eq!(state.settings.export_folder, "/srv/exports");
    assert_eq!(state.report_folder, "/srv/exports/report");
}

#[test]
fn the_library_imports_renames_and_deletes_after_asking() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    go_to(&mut harness, Screen::Adapters);
    let peft_folder = fixtures().join("adapters/gated-a");
    type_into(
        &mut harness,
        "Import a file or folder:",
        &peft_folder.display().to_string(),
    );
    click(&mut harness, "Import adapter");
    wait(&mut harness, "the imported adapter", |s| {
        s.library.len() == 1
    });
    assert_eq!(harness.state().state.library[0].name, "gated-a");

    click(&mut harness, "Rename");
    harness
        .get_by_role_and_label(Role::TextInput, "New name")
        .focus();
    harness.run_steps(1);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.run_steps(1);
    harness
        .get_by_role_and_label(Role::TextInput, "New name")
        .type_text("gated-a-renamed");
    harness.run_steps(1);
    click(&mut harness, "Save name");
    wait(&mut harness, "the new name", |s| {
        s.library
            .first()
            .is_some_and(|a| a.name == "gated-a-renamed")
    });
    assert!(home.path().join("adapters/gated-a-renamed").is_dir());

    click(&mut harness, "Delete");
    assert!(shown(&harness, "cannot be undone"), "it asks first");
    click(&mut harness, "Keep it");
    assert_eq!(harness.state().state.library.len(), 1);
    click(&mut harness, "Delete");
    click(&mut harness, "Delete for good");
    wait(&mut harness, "the deletion", |s| s.library.is_empty());
    assert!(!home.path().join("adapters/gated-a-renamed").exists());
}

/// The Train screen's time comes from this computer: the first estimate with a model measures
/// how fast it trains here, a finished run's own speed replaces the measurement, and the next
/// launch keeps it instead of measuring again.
#[test]
fn the_training_time_is_estimated_from_a_speed_measured_here_and_kept() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    load_model_and_data(&mut harness);
    go_to(&mut harness, Screen::Train);
    quick_settings(&mut harness, "timed", 2, 100);
    wait_for_estimate(&mut harness);
    let speeds = harness.state().state.settings.speeds.clone();
    assert_eq!(speeds.len(), 1, "one measurement: {speeds:?}");
    assert!(!speeds[0].from_run && speeds[0].tokens_per_second > 0.0);
    let estimate = harness.state().state.estimate.clone().unwrap();
    let seconds = estimate.seconds.expect("a time");
    let expected = estimate.tokens as f64 / speeds[0].tokens_per_second;
    assert!((seconds - expected).abs() <= 1e-9 * expected, "{seconds} s");
    assert!(!shown(&harness, "time unknown"));

    click(&mut harness, "Start training");
    wait(&mut harness, "the run", |s| {
        s.training.as_ref().is_some_and(|t| t.finished) && !s.busy()
    });
    wait_idle(&mut harness);
    let speeds = harness.state().state.settings.speeds.clone();
    assert_eq!(
        speeds.len(),
        1,
        "the run's speed replaces the measurement: {speeds:?}"
    );
    assert!(speeds[0].from_run);

    // The settings are written on a thread of their own, which closing the app waits for.
    drop(harness);
    let saved = std::fs::read_to_string(home.path().join("settings.json")).unwrap();
    assert!(saved.contains("\"from_run\": true"), "{saved}");
    // The next launch loads the same model and data again by itself.
    let mut harness = app(home.path(), PLENTY);
    wait(&mut harness, "the model and data again", |s| {
        s.model.is_some() && s.data.is_some() && !s.busy()
    });
    go_to(&mut harness, Screen::Train);
    quick_settings(&mut harness, "timed-again", 2, 100);
    wait_for_estimate(&mut harness);
    assert_eq!(
        harness.state().state.settings.speeds,
        speeds,
        "not measured again"
    );
    assert!(
        harness
            .state()
            .state
            .estimate
            .as_ref()
            .unwrap()
            .seconds
            .is_some()
    );
}
