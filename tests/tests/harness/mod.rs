//! The app in egui_kittest, driven as a user would (clicks and typing) against the real engine in
//! this process: starting it, waiting for the engine, finding, typing and clicking, and the steps
//! most tests share (the fixture model and data). Shared by the app's test files; each uses some.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use dialora::service::{InProcess, ServiceConfig};
use dialora_tests::fixtures;
use dialora_ui::DialoraApp;
use dialora_ui::screens::Screen;
use dialora_ui::state::State;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

pub fn app(home: &Path, memory_bytes: u64) -> Harness<'static, DialoraApp> {
    app_sized(home, memory_bytes, [1280.0, 1000.0])
}

/// The app in a window of `size` points, once its engine has started.
pub fn app_sized(home: &Path, memory_bytes: u64, size: [f32; 2]) -> Harness<'static, DialoraApp> {
    let service = InProcess::start(ServiceConfig {
        home: home.to_path_buf(),
        memory_bytes,
        picker: None,
    });
    let app = DialoraApp::new(Box::new(service));
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::from(size))
        .build_ui_state(|ui, app: &mut DialoraApp| app.show(ui), app);
    // The last session's model and data come back at launch; the buttons wait for that.
    wait(&mut harness, "the engine to start and restore", |s| {
        s.ready && s.restoring == 0 && !s.busy()
    });
    harness
}

pub const PLENTY: u64 = 64 << 30;

/// Runs frames until `done` holds for the app's state (the engine works on its own thread).
pub fn wait(harness: &mut Harness<'_, DialoraApp>, what: &str, done: impl Fn(&State) -> bool) {
    let start = Instant::now();
    loop {
        harness.step();
        if done(&harness.state().state) {
            harness.run_steps(2);
            return;
        }
        if let Some(error) = &harness.state().state.error {
            panic!("while waiting for {what}: the app shows an error: {error:?}");
        }
        let state = &harness.state().state;
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}; running {:?}, training {:?}, notice {:?}, screen {:?}",
            state.running,
            state
                .training
                .as_ref()
                .map(|t| (&t.name, t.points.len(), t.stopped_at)),
            state.notice,
            harness.state().screen,
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the running task to end, whatever its outcome.
pub fn wait_idle(harness: &mut Harness<'_, DialoraApp>) {
    let start = Instant::now();
    loop {
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
        harness.step();
        if !harness.state().state.busy() {
            // What the end brought in (a message) is sized on its first frame, shown on the next.
            harness.run_steps(2);
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the task did not end"
        );
    }
}

/// Whether some widget on screen shows `text`.
pub fn shown(harness: &Harness<'_, DialoraApp>, text: &str) -> bool {
    harness.query_all_by_label_contains(text).next().is_some()
}

pub fn text_field<'t>(
    harness: &'t Harness<'_, DialoraApp>,
    label: &'t str,
) -> egui_kittest::Node<'t> {
    harness
        .query_by_role_and_label(Role::TextInput, label)
        .unwrap_or_else(|| harness.get_by_role_and_label(Role::MultilineTextInput, label))
}

/// Types into the text field labelled `label`, scrolled into view first.
pub fn type_into(harness: &mut Harness<'_, DialoraApp>, label: &str, text: &str) {
    text_field(harness, label).scroll_to_me();
    harness.run_steps(2);
    let field = text_field(harness, label);
    field.focus();
    field.type_text(text);
    harness.run_steps(2);
}

/// Clicks the button `label`, scrolled into view first.
pub fn click(harness: &mut Harness<'_, DialoraApp>, label: &str) {
    harness
        .get_by_role_and_label(Role::Button, label)
        .scroll_to_me();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, label).click();
    harness.run_steps(2);
}

/// Clicks the screen's entry in the navigation.
pub fn go_to(harness: &mut Harness<'_, DialoraApp>, screen: Screen) {
    let position = Screen::ALL.iter().position(|s| *s == screen).unwrap_or(0);
    harness
        .get_by_label(&format!("{}  {}", position + 1, screen.title()))
        .click();
    harness.run_steps(2);
    assert_eq!(harness.state().screen, screen);
}

pub fn load_model(harness: &mut Harness<'_, DialoraApp>) {
    go_to(harness, Screen::Model);
    harness.state_mut().state.model_source.clear();
    let model = fixtures().join("t5-gated");
    type_into(
        harness,
        "Hub id or model folder:",
        &model.display().to_string(),
    );
    click(harness, "Load model");
    // The result comes just before the task ends; the buttons wait for that.
    wait(harness, "the model", |s| s.model.is_some() && !s.busy());
}

pub fn load_model_and_data(harness: &mut Harness<'_, DialoraApp>) {
    load_model(harness);
    let data = fixtures().join("data/support.csv");
    type_into(harness, "Data files", &data.display().to_string());
    harness.state_mut().state.validation_percent = 25.0;
    click(harness, "Import");
    wait(harness, "the data", |s| s.data.is_some() && !s.busy());
}

/// Waits for the estimate of the settings shown: its line moves the buttons below it, so a click
/// before it arrives can land where a button was.
pub fn wait_for_estimate(harness: &mut Harness<'_, DialoraApp>) {
    wait(harness, "the estimate", |s| {
        s.estimate.as_ref().is_some_and(|e| e.settings == s.train)
    });
}

/// Small and quick settings for the fixture model.
pub fn quick_settings(
    harness: &mut Harness<'_, DialoraApp>,
    name: &str,
    steps: usize,
    every: usize,
) {
    let state = &mut harness.state_mut().state;
    state.adapter_name = name.to_string();
    state.train.rank = 4;
    state.train.alpha = 8.0;
    state.train.batch_size = 3;
    state.train.max_steps = Some(steps);
    state.train.checkpoint_every = Some(every);
    state.train.eval_every = Some(2);
    state.train.learning_rate = 5e-3;
}
