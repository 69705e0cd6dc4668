//! Settings: theme, folders and device, kept between launches; the keyboard shortcuts.

use egui::{RichText, Ui};

use crate::protocol::Command;
use crate::state::State;
use crate::widgets;

const SHORTCUTS: [(&str, &str); 6] = [
    ("Ctrl+1 … Ctrl+8", "Go to a screen (Ctrl+0: the welcome)"),
    (
        "Ctrl+Enter",
        "The screen's main action (load, import, train, evaluate, summarize); on Review, accept the summary and move on",
    ),
    (
        "Ctrl+Up, Ctrl+Down",
        "On Review: the previous or next dialogue",
    ),
    (
        "Esc",
        "Cancel the running task (training keeps a checkpoint)",
    ),
    ("Ctrl+S", "Save the summary"),
    (
        "Drop files",
        "Data on most screens, a transcript on Summarize, .dlora adapters anywhere",
    ),
];

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    widgets::screen_title(ui, "Settings", "Kept between launches.");
    let before = state.settings.clone();
    ui.horizontal(|ui| {
        ui.label("Theme:");
        ui.selectable_value(&mut state.settings.dark_mode, true, "Dark");
        ui.selectable_value(&mut state.settings.dark_mode, false, "Light");
    });
    let mut typed = false;
    egui::Grid::new("folders").show(ui, |ui| {
        for (label, value) in [
            (
                "Data folder (file dialogs open here)",
                &mut state.settings.data_folder,
            ),
            (
                "Export folder (reports, summaries)",
                &mut state.settings.export_folder,
            ),
        ] {
            let label = ui.label(label);
            typed |= ui
                .add_sized([360.0, 20.0], egui::TextEdit::singleline(value))
                .labelled_by(label.id)
                .lost_focus();
            ui.end_row();
        }
    });
    if typed || state.settings.dark_mode != before.dark_mode {
        out.push(Command::SaveSettings {
            settings: state.settings.clone(),
        });
    }
    ui.add_space(10.0);
    ui.label(RichText::new("Keyboard shortcuts").strong());
    egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
        for (keys, action) in SHORTCUTS {
            ui.label(RichText::new(keys).monospace());
            ui.label(action);
            ui.end_row();
        }
    });
}
