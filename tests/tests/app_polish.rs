//! The app as a person new to it meets it: the first run on the sample conversations, state kept
//! across renames, exports and relaunches, messages that never move the page, and every screen
//! laid out in a small window without clipped text.

mod harness;

use std::collections::BTreeMap;

use dialora_tests::fixtures;
use dialora_ui::DialoraApp;
use dialora_ui::presets::Preset;
use dialora_ui::screens::Screen;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{By, NodeT, Queryable};
use harness::*;

/// The navigation panel's width (ui/src/app.rs).
const NAVIGATION_WIDTH: f32 = 170.0;

/// Every widget with a text on screen (a button's label, a label's text) and where it is, by
/// role and text.
fn layout(harness: &Harness<'_, DialoraApp>) -> BTreeMap<String, Vec<[i32; 4]>> {
    let mut widgets: BTreeMap<String, Vec<[i32; 4]>> = BTreeMap::new();
    let texts = By::new()
        .include_labels()
        .predicate(|n| n.label().is_some() || n.value().is_some());
    for node in harness.query_all(texts) {
        let accessible = node.accesskit_node();
        let text = accessible
            .label()
            .or_else(|| accessible.value())
            .unwrap_or_default();
        let rect = node.rect();
        widgets
            .entry(format!("{:?} {text}", accessible.role()))
            .or_default()
            .push([rect.min.x, rect.min.y, rect.max.x, rect.max.y].map(|v| v.round() as i32));
    }
    widgets
}

fn import_adapter(harness: &mut Harness<'_, DialoraApp>, path: &std::path::Path) {
    go_to(harness, Screen::Adapters);
    harness.state_mut().state.import_path.clear();
    type_into(
        harness,
        "Import a file or folder:",
        &path.display().to_string(),
    );
    click(harness, "Import adapter");
    wait_idle(harness);
}

#[test]
fn a_first_run_goes_from_the_welcome_to_a_trained_adapter_and_a_summary() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    assert_eq!(harness.state().screen, Screen::Welcome, "the first launch");
    assert!(shown(&harness, "Welcome to Dialora"));
    assert!(shown(&harness, "Recommended for this computer"));
    harness.state_mut().state.model_source.clear();
    let model = fixtures().join("t5-gated");
    type_into(&mut harness, "Model to use:", &model.display().to_string());
    click(&mut harness, "Try it on sample conversations");
    wait(&mut harness, "the model and the samples", |s| {
        s.model.is_some() && s.data.is_some() && !s.busy()
    });
    assert_eq!(harness.state().screen, Screen::Train);
    let data = harness.state().state.data.clone().unwrap();
    assert_eq!((data.dialogues, data.with_summary), (16, 16));
    assert!(data.validation >= 1);
    let state = &harness.state().state;
    assert_eq!(
        Preset::of(&state.train, state.train_examples()),
        Some(Preset::Quick)
    );
    wait_for_estimate(&mut harness);
    click(&mut harness, "Start training");
    wait(&mut harness, "the trained adapter", |s| {
        s.training.as_ref().is_some_and(|t| t.finished) && !s.busy()
    });
    let adapter = harness
        .state()
        .state
        .active_adapter
        .clone()
        .expect("in use");
    assert!(home.path().join("adapters").join(&adapter).is_dir());

    go_to(&mut harness, Screen::Summarize);
    assert!(
        harness.state().state.transcript_text.contains("Rosa:"),
        "the sample meeting waits"
    );
    click(&mut harness, "Summarize");
    wait(&mut harness, "the summary", |s| {
        s.summary.is_some() && !s.busy()
    });
    let summary = harness.state().state.summary.clone().unwrap();
    assert_eq!(summary.adapter.as_deref(), Some(adapter.as_str()));
    assert!(!summary.text.trim().is_empty());

    // The welcome is not shown again.
    drop(harness);
    let harness = app(home.path(), PLENTY);
    assert_ne!(harness.state().screen, Screen::Welcome);
}

#[test]
fn a_model_too_large_for_the_machine_asks_before_loading() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), 8 << 30);
    go_to(&mut harness, Screen::Model);
    harness.state_mut().state.model_source = "google/flan-t5-xl".into();
    harness.run_steps(2);
    assert!(shown(&harness, "too much for this computer"));
    click(&mut harness, "Load model");
    assert!(
        !harness.state().state.busy(),
        "nothing loads before the answer"
    );
    assert!(shown(&harness, "This model is larger than this computer"));
    click(&mut harness, "Choose a smaller one");
    assert_eq!(harness.state().state.model_source, "google/flan-t5-base");
    assert!(!harness.state().state.busy());
}

#[test]
fn renaming_the_adapter_in_use_keeps_it_in_use_everywhere() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    import_adapter(&mut harness, &fixtures().join("adapters/gated-a"));
    click(&mut harness, "Use");
    harness
        .state_mut()
        .state
        .eval_adapters
        .insert("gated-a".into());
    harness.run_steps(2);
    assert!(shown(&harness, "Adapter: gated-a"));

    click(&mut harness, "Rename");
    let field = harness.get_by_role_and_label(Role::TextInput, "New name");
    assert!(
        field.rect().width() >= 150.0,
        "the whole name shows: {:?}",
        field.rect()
    );
    field.focus();
    harness.run_steps(1);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness
        .get_by_role_and_label(Role::TextInput, "New name")
        .type_text("support-desk");
    harness.run_steps(1);
    click(&mut harness, "Save name");
    wait(&mut harness, "the new name", |s| {
        s.library.first().is_some_and(|a| a.name == "support-desk")
    });
    let state = &harness.state().state;
    assert_eq!(state.active_adapter.as_deref(), Some("support-desk"));
    assert!(state.eval_adapters.contains("support-desk"));
    assert!(!state.eval_adapters.contains("gated-a"));
    assert!(shown(&harness, "Adapter: support-desk"), "the sidebar");
    assert!(shown(&harness, "support-desk (in use)"));
    assert!(shown(&harness, "Export \"support-desk\""));
}

#[test]
fn an_exported_adapter_comes_back_with_its_name_and_scores_and_a_duplicate_asks() {
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    load_model_and_data(&mut harness);
    import_adapter(&mut harness, &fixtures().join("adapters/gated-a"));
    click(&mut harness, "Use");
    go_to(&mut harness, Screen::Evaluate);
    harness
        .state_mut()
        .state
        .eval_adapters
        .insert("gated-a".into());
    harness.state_mut().state.eval_limit = 3;
    click(&mut harness, "Evaluate");
    wait(&mut harness, "the scores", |s| {
        s.library.first().is_some_and(|a| a.rouge.is_some()) && !s.busy()
    });
    let scores = harness.state().state.library[0].rouge;

    go_to(&mut harness, Screen::Adapters);
    let file = out.path().join("shared-with-me.dlora");
    type_into(&mut harness, "Export to file:", &file.display().to_string());
    click(&mut harness, "Export \"gated-a\"");
    wait_idle(&mut harness);
    assert!(file.is_file());

    // Someone else's library: the file brings its name and scores.
    let other = tempfile::tempdir().unwrap();
    drop(harness);
    let mut harness = app(other.path(), PLENTY);
    import_adapter(&mut harness, &file);
    let entry = harness
        .state()
        .state
        .library
        .first()
        .cloned()
        .expect("imported");
    assert_eq!(entry.name, "gated-a", "the name, not the file's");
    assert_eq!(entry.rouge, scores);

    // The same again asks, and keeps both when told to.
    import_adapter(&mut harness, &file);
    // A dialog takes a few frames to come in.
    harness.run_steps(3);
    assert!(
        shown(&harness, "already in the library"),
        "{:?} {:?}",
        harness.state().state.import_conflict,
        harness.state().state.library
    );
    assert_eq!(harness.state().state.library.len(), 1, "nothing yet");
    click(&mut harness, "Keep both");
    wait(&mut harness, "the second copy", |s| s.library.len() == 2);
    let names: Vec<String> = harness
        .state()
        .state
        .library
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(names, ["gated-a", "gated-a-2"]);
}

#[test]
fn a_relaunch_restores_the_model_the_data_the_adapter_and_the_preset() {
    let home = tempfile::tempdir().unwrap();
    // An adapter under the name the app offers for a new one.
    let shared = tempfile::tempdir().unwrap();
    let mine = shared.path().join("my-adapter");
    std::fs::create_dir(&mine).unwrap();
    for file in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(
            fixtures().join("adapters/gated-a").join(file),
            mine.join(file),
        )
        .unwrap();
    }
    let mut harness = app(home.path(), PLENTY);
    load_model_and_data(&mut harness);
    import_adapter(&mut harness, &mine);
    click(&mut harness, "Use");
    go_to(&mut harness, Screen::Train);
    click(&mut harness, "Best quality");
    let (model, data, train) = {
        let state = &harness.state().state;
        (state.model.clone(), state.data.clone(), state.train.clone())
    };
    drop(harness);

    let mut harness = app(home.path(), PLENTY);
    wait(&mut harness, "the last session", |s| {
        s.model.is_some() && s.data.is_some()
    });
    let state = &harness.state().state;
    assert_eq!(state.model, model);
    assert_eq!(state.data, data);
    assert_eq!(state.active_adapter.as_deref(), Some("my-adapter"));
    assert_eq!(state.train, train);
    assert_eq!(
        state.adapter_name, "my-adapter-2",
        "a free name for the next run"
    );
}

#[test]
fn a_message_never_moves_what_is_on_the_page() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path(), PLENTY);
    go_to(&mut harness, Screen::Model);
    harness.state_mut().state.model_source = home.path().join("missing").display().to_string();
    harness.run_steps(3);
    let before = layout(&harness);
    click(&mut harness, "Load model");
    wait_idle(&mut harness);
    assert!(harness.state().state.error.is_some());
    let sentence = harness
        .state()
        .state
        .error
        .as_ref()
        .unwrap()
        .explanation()
        .sentence;
    assert!(shown(&harness, &sentence));
    let after = layout(&harness);
    for (widget, places) in &before {
        if let Some(now) = after.get(widget) {
            assert_eq!(places, now, "{widget} moved when the message came");
        }
    }
    assert!(before.keys().filter(|w| after.contains_key(*w)).count() > 10);
}

#[test]
fn every_screen_fits_a_small_window_without_clipped_text() {
    let home = tempfile::tempdir().unwrap();
    let (width, height) = (1024.0, 640.0);
    // A laptop's memory: the larger models are marked as too large for it.
    let mut harness = app_sized(home.path(), 16 << 30, [width, height]);
    load_model_and_data(&mut harness);
    import_adapter(&mut harness, &fixtures().join("adapters/gated-a"));
    click(&mut harness, "Use");
    go_to(&mut harness, Screen::Train);
    quick_settings(&mut harness, "small-window", 4, 2);
    wait_for_estimate(&mut harness);
    click(&mut harness, "Start training");
    wait(&mut harness, "the run", |s| {
        s.training.as_ref().is_some_and(|t| t.finished) && !s.busy()
    });
    go_to(&mut harness, Screen::Evaluate);
    harness.state_mut().state.eval_limit = 3;
    click(&mut harness, "Evaluate");
    wait(&mut harness, "the evaluation", |s| {
        s.evaluation.is_some() && !s.busy()
    });
    harness.state_mut().state.transcript_text = dialora_ui::samples::MEETING.into();
    go_to(&mut harness, Screen::Summarize);
    click(&mut harness, "Summarize");
    wait(&mut harness, "the summary", |s| {
        s.summary.is_some() && !s.busy()
    });

    let mut screens = vec![Screen::Welcome];
    screens.extend(Screen::ALL);
    for screen in screens {
        harness.state_mut().screen = screen;
        harness.run_steps(3);
        let clipped: Vec<String> = layout(&harness)
            .into_iter()
            .filter(|(_, places)| {
                // Past the window's edge, or out of the navigation into the page.
                places.iter().any(|&[x0, _, x1, _]| {
                    x0 < 0
                        || x1 as f32 > width + 1.0
                        || ((x0 as f32) < NAVIGATION_WIDTH && x1 as f32 > NAVIGATION_WIDTH + 1.0)
                })
            })
            .map(|(widget, places)| format!("{widget} at {places:?}"))
            .collect();
        assert!(
            clipped.is_empty(),
            "{screen:?} at {width}x{height} cuts: {clipped:#?}"
        );
    }
}

/// The Model screen's own settings stay in view in the smallest window the app opens at: the
/// sizes' explanations must not grow the list above them (in a table column they wrapped a word
/// per line and pushed Run on and Weights below the window's edge).
#[test]
fn the_model_screen_shows_its_settings_in_the_smallest_window() {
    let home = tempfile::tempdir().unwrap();
    let (width, height) = (760.0, 520.0);
    let mut harness = app_sized(home.path(), 16 << 30, [width, height]);
    go_to(&mut harness, Screen::Model);
    harness.run_steps(3);
    for label in ["Run on:", "Weights:", "Recommended here."] {
        let node = harness
            .query_all_by_label_contains(label)
            .next()
            .unwrap_or_else(|| panic!("{label} is on the Model screen"));
        let rect = node.rect();
        assert!(
            rect.max.y <= height && rect.max.x <= width,
            "{label} is at {rect:?}, outside the {width}x{height} window"
        );
    }
}
