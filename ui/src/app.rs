//! The app: the navigation, the status bar with the running task, keyboard shortcuts, and the
//! loop that sends the screens' commands and applies the engine's events.

use std::time::Duration;

use egui::{Key, KeyboardShortcut, Modifiers, RichText, Ui};

use crate::backend::Backend;
use crate::protocol::{Command, Event, OpenRequest};
use crate::screens::{self, Screen};
use crate::state::State;
use crate::widgets;

pub struct DialoraApp {
    backend: Box<dyn Backend>,
    pub state: State,
    pub screen: Screen,
    started: bool,
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
            resized: None,
        }
    }

    /// Sends a command as if the user had asked for it (the shell's file associations use this).
    /// A task counts as running from here on, so that its button cannot start it twice.
    pub fn send(&mut self, command: Command) {
        if let Some(task) = command.task() {
            self.state.apply(Event::TaskStarted { task });
        }
        self.backend.send(command);
    }

    /// Applies the engine's events that have arrived.
    pub fn receive(&mut self) {
        for event in self.backend.poll() {
            if let Event::OpenRequested(request) = event {
                self.open(request);
                continue;
            }
            self.route(&event);
            let loaded = matches!(event, Event::ModelLoaded(_));
            let opened = matches!(event, Event::Dataset(_));
            let ready = matches!(event, Event::Ready { .. });
            self.state.apply(event);
            if ready && !self.state.settings.last_dataset.is_empty() {
                // The review opens where it stopped.
                self.send(Command::OpenDataset {
                    name: self.state.settings.last_dataset.clone(),
                });
            }
            if loaded || opened {
                // The next launch offers the same model.
                self.send(Command::SaveSettings {
                    settings: self.state.settings.clone(),
                });
            }
        }
    }

    /// Moves to the screen where an event's result is shown.
    fn route(&mut self, event: &Event) {
        match event {
            Event::ModelLoaded(_) if self.screen == Screen::Model && self.state.data.is_none() => {
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
            widgets::error_banner(ui, &mut self.state.error);
            if let Some(notice) = self.state.notice.clone() {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(notice.as_str()).strong());
                    if ui.small_button("OK").clicked() {
                        self.state.notice = None;
                    }
                });
            }
            egui::ScrollArea::vertical()
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    screens::show(self.screen, ui, &mut self.state, &mut out)
                });
        });

        if let Some(screen) = self.state.requested_screen.take() {
            self.screen = screen;
        }
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
        if self.state.busy() || !self.state.ready {
            ui.ctx().request_repaint_after(Duration::from_millis(50));
        } else {
            ui.ctx().request_repaint_after(Duration::from_millis(250));
        }
    }

    fn navigation(&mut self, ui: &mut Ui) {
        ui.add_space(8.0);
        ui.heading("Dialora");
        ui.add_space(8.0);
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
            Some(model) => format!("Model: {}", model.name),
            None => "No model loaded".to_string(),
        };
        ui.label(RichText::new(model).small());
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
        for (key, screen) in keys.into_iter().zip(Screen::ALL) {
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
        let takes_transcript = matches!(self.screen, Screen::Model | Screen::Summarize);
        if paths.iter().all(is_adapter) || self.screen == Screen::Adapters {
            for path in paths {
                self.send(Command::ImportAdapter { path });
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
            if ui.button("Cancel").on_hover_text("Esc").clicked() {
                out.push(Command::Cancel);
            }
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
