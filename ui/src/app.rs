//! The app: the navigation, the status bar with the running task, keyboard shortcuts, and the
//! loop that sends the screens' commands and applies the engine's events.

use std::time::Duration;

use egui::{Key, KeyboardShortcut, Modifiers, RichText, Ui};

use crate::backend::Backend;
use crate::messages;
use crate::protocol::{Command, Event, IfExists, OpenRequest, PickPurpose, Task};
use crate::screens::{self, Screen};
use crate::state::State;
use crate::widgets;

pub struct DialoraApp {
    backend: Box<dyn Backend>,
    pub state: State,
    pub screen: Screen,
    started: bool,
    /// Whether this launch asked for a model or data before the last session's were restored.
    asked_model: bool,
    asked_data: bool,
    /// A new window size and when it was first seen; saved once it has held for a second.
    resized: Option<([f32; 2], f64)>,
}

impl DialoraApp {
    pub fn new(backend: Box<dyn Backend>) -> Self {
        Self {
            backend,
            state: State::default(),
            screen: Screen::Model,
            started: false,
            asked_model: false,
            asked_data: false,
            resized: None,
        }
    }

    /// Sends a command as if the user had asked for it (the shell's file associations use this).
    /// A task counts as running from here on, so that its button cannot start it twice.
    pub fn send(&mut self, command: Command) {
        if let Some(task) = command.task() {
            self.state.apply(Event::TaskStarted { task });
            self.state.last_task_command = Some(command.clone());
        }
        match &command {
            Command::LoadModel { .. } => self.asked_model = true,
            Command::ImportData { request } => {
                self.asked_data = true;
                self.state.importing = Some(request.clone());
            }
            Command::Train { settings, .. } => self.state.kept_train = Some(settings.clone()),
            _ => {}
        }
        self.backend.send(command);
    }

    /// At launch: the welcome the first time; else the model, data, adapter and training
    /// settings of the last session, unless this launch asked for others already.
    fn restore(&mut self) {
        let settings = self.state.settings.clone();
        if !settings.welcomed && self.screen == Screen::Model {
            self.screen = Screen::Welcome;
        }
        if let Some(train) = settings.train.clone() {
            self.state.train = (*train).clone();
            self.state.kept_train = Some(*train);
        }
        if let Some(adapter) = settings
            .active_adapter
            .filter(|a| self.state.library.iter().any(|e| &e.name == a))
        {
            self.state.active_adapter = Some(adapter);
        }
        if !settings.last_model.is_empty() && !self.asked_model {
            self.state.restoring += 1;
            self.send(Command::LoadModel {
                source: settings.last_model.clone(),
                device: self.state.device(),
                precision: self.state.settings.precision,
            });
        }
        if let Some(request) = settings.last_data.map(|r| *r).filter(|_| !self.asked_data) {
            self.state.restoring += 1;
            self.state.data_paths = request.sources.join("\n");
            self.state.validation_percent = request.validation_fraction * 100.0;
            self.state.columns = request.columns.clone();
            self.send(Command::ImportData { request });
        }
        if !settings.last_dataset.is_empty() {
            // The review opens where it stopped.
            self.send(Command::OpenDataset {
                name: settings.last_dataset,
            });
        }
    }

    /// What a save dialog's answer `path` writes: the summary shown, or the adapter in use.
    fn save_command(&self, purpose: PickPurpose, path: &str) -> Option<Command> {
        match purpose {
            PickPurpose::SaveSummary => self.state.summary.as_ref().map(|s| Command::SaveText {
                path: path.to_string(),
                text: s.text.clone(),
            }),
            PickPurpose::ExportAdapter => {
                self.state
                    .active_adapter
                    .clone()
                    .map(|name| Command::ExportAdapter {
                        name,
                        file: screens::adapters::with_extension(path),
                    })
            }
            PickPurpose::ExportDataset => {
                self.state.review.as_ref().map(|r| Command::ExportDataset {
                    name: r.name().to_string(),
                    file: path.to_string(),
                })
            }
            _ => None,
        }
    }

    /// Saves what the next launch restores whenever it changed.
    fn keep_settings(&mut self) {
        if !self.state.ready {
            return;
        }
        let mut kept = self.state.settings.clone();
        kept.active_adapter = self.state.active_adapter.clone();
        kept.train = self.state.kept_train.clone().map(Box::new);
        // An import under way counts: closing the window while it runs keeps it for next time.
        let data = self.state.importing.clone().or(self.state.imported.clone());
        kept.last_data = data.map(Box::new);
        if kept != self.state.settings {
            self.state.settings = kept;
            self.send(Command::SaveSettings {
                settings: self.state.settings.clone(),
            });
        }
    }

    /// Applies the engine's events that have arrived.
    pub fn receive(&mut self) {
        for event in self.backend.poll() {
            if let Event::OpenRequested(request) = event {
                self.open(request);
                continue;
            }
            let saved_as = match &event {
                Event::Picked { purpose, paths } => paths
                    .first()
                    .and_then(|path| self.save_command(*purpose, path)),
                _ => None,
            };
            self.route(&event);
            // The model loaded, the dataset opened and a measured speed are for the next launch.
            let settings_changed = matches!(
                event,
                Event::ModelLoaded(_) | Event::Dataset(_) | Event::SpeedMeasured(_)
            );
            let ready = matches!(event, Event::Ready { .. });
            self.state.apply(event);
            if ready {
                self.restore();
            }
            // A save dialog writes when it closes.
            if let Some(command) = saved_as {
                self.send(command);
            }
            if settings_changed {
                self.send(Command::SaveSettings {
                    settings: self.state.settings.clone(),
                });
            }
        }
        self.keep_settings();
    }

    /// Moves to the screen where an event's result is shown.
    fn route(&mut self, event: &Event) {
        match event {
            Event::ModelLoaded(_)
                if self.screen == Screen::Model
                    && self.state.data.is_none()
                    && self.state.restoring == 0 =>
            {
                self.screen = Screen::Data
            }
            Event::Evaluated(_) => self.screen = Screen::Evaluate,
            Event::Dataset(_) => self.screen = Screen::Review,
            Event::DataImported(_) if self.state.train_after_import => {
                self.state.train_after_import = false;
                self.screen = Screen::Train;
            }
            Event::Summary(_) => self.screen = Screen::Summarize,
            _ => {}
        }
    }

    /// Draws one frame; platform-independent (eframe calls it, and so do the tests).
    pub fn show(&mut self, ui: &mut Ui) {
        if !self.started {
            self.started = true;
            self.backend.send(Command::Start);
        }
        self.receive();
        let mut out = Vec::new();
        self.shortcuts(ui, &mut out);
        self.dropped_files(ui);
        self.remember_window_size(ui);
        ui.ctx().set_theme(if self.state.settings.dark_mode {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });

        egui::Panel::left("navigation")
            .resizable(false)
            .exact_size(170.0)
            .show(ui, |ui| self.navigation(ui));
        egui::Panel::bottom("status")
            .exact_size(34.0)
            .show(ui, |ui| status_bar(ui, &self.state, &mut out));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical()
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    screens::show(self.screen, ui, &mut self.state, &mut out)
                });
        });

        messages::show(ui, &mut self.state, &mut out);
        if let Some(screen) = self.state.requested_screen.take() {
            self.screen = screen;
        }
        screens::adapters::import_conflict(ui, &mut self.state, &mut out);
        widgets::confirm_delete(
            ui,
            &mut self.state.confirm_delete,
            |name| Command::DeleteAdapter { name },
            &mut out,
        );
        widgets::confirm_delete(
            ui,
            &mut self.state.confirm_delete_dataset,
            |name| Command::DeleteDataset { name },
            &mut out,
        );
        for command in out {
            self.send(command);
        }
    }

    fn navigation(&mut self, ui: &mut Ui) {
        ui.add_space(8.0);
        ui.heading("Dialora");
        ui.add_space(8.0);
        if ui
            .selectable_label(self.screen == Screen::Welcome, "Welcome")
            .on_hover_text("What Dialora does, and a try on sample conversations (Ctrl+0)")
            .clicked()
        {
            self.screen = Screen::Welcome;
        }
        for (index, screen) in Screen::ALL.into_iter().enumerate() {
            let label = format!("{}  {}", index + 1, screen.title());
            if ui
                .selectable_label(self.screen == screen, label)
                .on_hover_text(format!("Ctrl+{}", index + 1))
                .clicked()
            {
                self.screen = screen;
            }
        }
        ui.add_space(12.0);
        ui.separator();
        let model = match &self.state.model {
            // A folder by its name: the whole path is on hover.
            Some(model) => format!(
                "Model: {}",
                model
                    .name
                    .rsplit('/')
                    .find(|p| !p.is_empty())
                    .unwrap_or(&model.name)
            ),
            None => "No model loaded".to_string(),
        };
        let full = self.state.model.as_ref().map_or("", |m| m.name.as_str());
        ui.add(egui::Label::new(RichText::new(model).small()).wrap())
            .on_hover_text(full);
        if let Some(data) = &self.state.data {
            ui.label(RichText::new(format!("Data: {} dialogues", data.dialogues)).small());
        }
        if let Some(adapter) = &self.state.active_adapter {
            ui.label(RichText::new(format!("Adapter: {adapter}")).small());
        }
    }

    fn shortcuts(&mut self, ui: &mut Ui, out: &mut Vec<Command>) {
        let keys = [
            Key::Num1,
            Key::Num2,
            Key::Num3,
            Key::Num4,
            Key::Num5,
            Key::Num6,
            Key::Num7,
            Key::Num8,
        ];
        let welcome = std::iter::once((Key::Num0, Screen::Welcome));
        for (key, screen) in welcome.chain(keys.into_iter().zip(Screen::ALL)) {
            let shortcut = KeyboardShortcut::new(Modifiers::COMMAND, key);
            if ui.input_mut(|i| i.consume_shortcut(&shortcut)) {
                self.screen = screen;
            }
        }
        let escape = KeyboardShortcut::new(Modifiers::NONE, Key::Escape);
        if self.state.busy() && ui.input_mut(|i| i.consume_shortcut(&escape)) {
            out.push(Command::Cancel);
        }
        let run = KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);
        let review = self.screen == Screen::Review;
        if !review && !self.state.busy() && ui.input_mut(|i| i.consume_shortcut(&run)) {
            out.extend(screens::main_action(self.screen, &self.state));
        }
    }

    /// Keeps the window's size in the settings, once a resize has settled.
    fn remember_window_size(&mut self, ui: &Ui) {
        // In the webview the page is the window, and the viewport has no rectangle of its own.
        let rect = ui.input(|i| i.viewport().inner_rect.unwrap_or_else(|| i.viewport_rect()));
        let size = [rect.width().round(), rect.height().round()];
        let now = ui.input(|i| i.time);
        if !self.state.ready || self.state.settings.window_size == Some(size) {
            self.resized = None;
            return;
        }
        match self.resized {
            Some((pending, since)) if pending == size => {
                if now - since >= 1.0 {
                    self.resized = None;
                    self.state.settings.window_size = Some(size);
                    self.send(Command::SaveSettings {
                        settings: self.state.settings.clone(),
                    });
                }
            }
            _ => self.resized = Some((size, now)),
        }
        if self.resized.is_some() {
            // A frame to save it once it has held still (an idle window is not woken otherwise).
            ui.ctx().request_repaint_after(Duration::from_millis(500));
        }
    }

    /// Files dropped on the window go where [`Self::open_files`] puts them.
    fn dropped_files(&mut self, ui: &mut Ui) {
        let paths: Vec<String> = ui.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().display().to_string())
                .filter(|p| !p.is_empty())
                .collect()
        });
        if !paths.is_empty() {
            self.open_files(paths);
        }
    }

    /// Loads the request's model when given, then opens its files as [`Self::open_files`] does.
    pub fn open(&mut self, OpenRequest { model, files }: OpenRequest) {
        if let Some(model) = model {
            self.state.model_source = model.clone();
            self.send(Command::LoadModel {
                source: model,
                device: self.state.device(),
                precision: self.state.settings.precision,
            });
        }
        self.open_files(files);
    }

    /// Opens files dropped on the window or opened from the system: adapter files are imported
    /// into the library, one transcript goes to Summarize (from the start screen or Summarize),
    /// anything else is data to import.
    pub fn open_files(&mut self, paths: Vec<String>) {
        let Some(first) = paths.first().cloned() else {
            return;
        };
        let is_adapter = |p: &String| p.ends_with(".dlora");
        let is_transcript = |p: &String| [".vtt", ".srt", ".txt"].iter().any(|e| p.ends_with(e));
        let takes_transcript = matches!(
            self.screen,
            Screen::Welcome | Screen::Model | Screen::Summarize
        );
        if paths.iter().all(is_adapter) || self.screen == Screen::Adapters {
            for path in paths {
                self.send(Command::ImportAdapter {
                    path,
                    if_exists: IfExists::Ask,
                });
            }
            self.screen = Screen::Adapters;
        } else if paths.len() == 1 && is_transcript(&first) && takes_transcript {
            self.state.transcript_file = first;
            self.screen = Screen::Summarize;
        } else {
            self.state.data_paths = paths.join("\n");
            self.screen = Screen::Data;
        }
    }
}

fn status_bar(ui: &mut Ui, state: &State, out: &mut Vec<Command>) {
    ui.horizontal_centered(|ui| match &state.running {
        Some(running) => {
            let hover = if running.task == Task::Train {
                "Stops after this step and keeps a checkpoint to resume from (Esc)"
            } else {
                "Stops at the next safe point (Esc)"
            };
            if ui.button("Stop").on_hover_text(hover).clicked() {
                out.push(Command::Cancel);
            }
            ui.spinner();
            let fraction = if running.total > 0 {
                running.done as f32 / running.total as f32
            } else {
                0.0
            };
            let left = running
                .eta_s
                .filter(|_| running.done < running.total)
                .map(|s| format!(" · {} left", widgets::duration(s)))
                .unwrap_or_default();
            let text = if running.total > 0 {
                format!(
                    "{}: {} of {}{left}",
                    running.stage, running.done, running.total
                )
            } else {
                format!("{}…", running.stage)
            };
            ui.add(
                egui::ProgressBar::new(fraction)
                    .text(text)
                    .animate(running.total == 0),
            );
        }
        None if !state.ready => {
            ui.spinner();
            ui.label("Starting the engine…");
        }
        None => {
            ui.label(RichText::new("Ready").weak());
        }
    });
}

impl eframe::App for DialoraApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}
