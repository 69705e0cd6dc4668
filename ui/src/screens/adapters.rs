//! Adapters: the library (name, base model, size, date, scores); rename, delete after a
//! confirmation, export as one shareable file, import a file or a PEFT folder, make one active.

use egui::{RichText, Ui};

use crate::protocol::{AdapterEntry, Command, PickPurpose};
use crate::state::State;
use crate::widgets;

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    widgets::screen_title(
        ui,
        "Adapters",
        "Your trained adapters. Share one as a single .dlora file; PEFT folders work too.",
    );
    if !state.machine.library_folder.is_empty() {
        ui.label(RichText::new(format!("Kept in {}", state.machine.library_folder)).weak());
    }
    if state.library.is_empty() {
        ui.label("No adapters yet. Train one, or import a file someone shared.");
    }
    egui::Grid::new("library")
        .striped(true)
        .num_columns(7)
        .show(ui, |ui| {
            for title in [
                "Name",
                "Base model",
                "Rank / layers",
                "Size",
                "Changed",
                "ROUGE-L",
                "",
            ] {
                ui.label(RichText::new(title).strong());
            }
            ui.end_row();
            for entry in state.library.clone() {
                row(ui, state, &entry, out);
                ui.end_row();
            }
        });
    ui.separator();
    ui.label(RichText::new("Share the adapter in use").strong());
    widgets::path_field(
        ui,
        "Export to file:",
        &mut state.adapter_file,
        PickPurpose::ExportAdapter,
        out,
    );
    let file = state.adapter_file.trim();
    let label = match &state.active_adapter {
        Some(name) => format!("Export \"{name}\""),
        None => "Export (choose an adapter with Use first)".to_string(),
    };
    let command = state
        .active_adapter
        .clone()
        .filter(|_| !file.is_empty())
        .map(|name| Command::ExportAdapter {
            name,
            file: with_extension(file),
        });
    widgets::command_button(ui, label, command, state.busy(), false, out);
    ui.add_space(6.0);
    widgets::path_field(
        ui,
        "Import a file or folder:",
        &mut state.import_path,
        PickPurpose::ImportAdapter,
        out,
    );
    let path = state.import_path.trim();
    let command = (!path.is_empty()).then(|| Command::ImportAdapter {
        path: path.to_string(),
    });
    widgets::command_button(ui, "Import adapter", command, state.busy(), false, out);
}

fn row(ui: &mut Ui, state: &mut State, entry: &AdapterEntry, out: &mut Vec<Command>) {
    let active = state.active_adapter.as_deref() == Some(entry.name.as_str());
    let mut rename_to = None;
    let mut renaming = false;
    match &mut state.renaming {
        Some((name, new_name)) if *name == entry.name => {
            renaming = true;
            ui.horizontal(|ui| {
                let label = ui.label("New name");
                let response = ui.text_edit_singleline(new_name).labelled_by(label.id);
                let enter = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if enter {
                    rename_to = Some(new_name.trim().to_string());
                }
            });
        }
        _ => {
            let name = if active {
                RichText::new(format!("{} (in use)", entry.name)).strong()
            } else {
                RichText::new(&entry.name)
            };
            ui.label(name);
        }
    }
    ui.label(&entry.base_model);
    ui.label(format!("{} / {}", entry.rank, entry.targets.join(",")));
    ui.label(widgets::bytes(entry.bytes));
    ui.label(widgets::date(entry.modified));
    ui.label(
        entry
            .rouge
            .map_or("-".to_string(), |r| format!("{:.3}", r[2])),
    );
    ui.horizontal(|ui| {
        if renaming {
            if ui.button("Save name").clicked() {
                rename_to = state.renaming.as_ref().map(|(_, n)| n.trim().to_string());
            }
            if ui.button("Cancel").clicked() {
                state.renaming = None;
            }
            return;
        }
        if ui.add_enabled(!active, egui::Button::new("Use")).clicked() {
            state.active_adapter = Some(entry.name.clone());
        }
        if ui.button("Rename").clicked() {
            state.renaming = Some((entry.name.clone(), entry.name.clone()));
        }
        if ui.button("Delete").clicked() {
            state.confirm_delete = Some(entry.name.clone());
        }
    });
    if let Some(new_name) = rename_to.filter(|n| !n.is_empty()) {
        out.push(Command::RenameAdapter {
            name: entry.name.clone(),
            new_name,
        });
        state.renaming = None;
    }
}

/// Shared adapter files end in `.dlora`, which the app opens when double-clicked.
fn with_extension(path: &str) -> String {
    if path.ends_with(".dlora") {
        path.to_string()
    } else {
        format!("{path}.dlora")
    }
}
