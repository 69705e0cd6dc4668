//! Adapters: the library (name, base model, size, date, scores); rename, delete after a
//! confirmation, export as one shareable file, import a file or a PEFT folder, make one active.

use egui::{RichText, Ui};

use crate::protocol::{AdapterEntry, Command, IfExists, PickPurpose};
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
        ui.label("No adapters yet. Train one, or import one someone shared (a file or a Hub id).");
    }
    egui::Grid::new("library")
        .striped(true)
        .num_columns(6)
        .show(ui, |ui| {
            for (title, hover) in [
                ("Name", ""),
                ("Learned on", "The model it was trained on, and works with"),
                ("Size", "Its file size; hover a size for its rank and layers"),
                ("Changed", ""),
                (
                    "Score",
                    "How close its summaries came to the references at its last evaluation (ROUGE-L)",
                ),
                ("", ""),
            ] {
                let label = ui.label(RichText::new(title).strong());
                if !hover.is_empty() {
                    label.on_hover_text(hover);
                }
            }
            ui.end_row();
            for entry in state.library.clone() {
                row(ui, state, &entry, out);
                ui.end_row();
            }
        });
    ui.separator();
    ui.label(RichText::new("Share the adapter in use").strong());
    let suggestion = state
        .active_adapter
        .as_ref()
        .map(|name| format!("{name}.dlora"))
        .unwrap_or_default();
    widgets::path_field_suggesting(
        ui,
        "Export to file:",
        &mut state.adapter_file,
        PickPurpose::ExportAdapter,
        &suggestion,
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
    widgets::command_button(ui, &label, command, state.busy(), false, out);
    ui.add_space(6.0);
    widgets::path_field(
        ui,
        "Import a file or folder:",
        &mut state.import_path,
        PickPurpose::ImportAdapter,
        out,
    );
    widgets::reason(
        ui,
        "Or a Hub id, such as someone/flan-t5-meetings-lora: downloaded once, then it works offline.",
    );
    let path = state.import_path.trim();
    let command = (!path.is_empty()).then(|| Command::ImportAdapter {
        path: path.to_string(),
        if_exists: IfExists::Ask,
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
                let response = ui
                    .add_sized([180.0, 20.0], egui::TextEdit::singleline(new_name))
                    .labelled_by(label.id);
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
    ui.scope(|ui| {
        ui.set_max_width(180.0);
        ui.add(egui::Label::new(&entry.base_model).truncate())
            .on_hover_text(&entry.base_model);
    });
    ui.label(widgets::bytes(entry.bytes)).on_hover_text(format!(
        "LoRA rank {} on {}",
        entry.rank,
        entry.targets.join(", ")
    ));
    ui.label(widgets::date(entry.modified));
    match entry.rouge {
        Some(rouge) => ui
            .label(format!("{:.0}%", rouge[2] * 100.0))
            .on_hover_text(format!("ROUGE-L {:.3}", rouge[2])),
        None => ui.label("-").on_hover_text("Not evaluated yet (Evaluate)"),
    };
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

/// Asks what to do with an import whose name the library has already.
pub(crate) fn import_conflict(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    let Some((path, name)) = state.import_conflict.clone() else {
        return;
    };
    let mut answer = None;
    egui::Modal::new(egui::Id::unique("import-conflict")).show(ui.ctx(), |ui| {
        ui.set_max_width(420.0);
        ui.heading(format!("\"{name}\" is already in the library"));
        ui.add(
            egui::Label::new(format!(
                "{path} holds an adapter named \"{name}\" too. Replace the one in the library \
                 with it, or keep both (the new one as the next free name)?"
            ))
            .wrap(),
        );
        ui.horizontal(|ui| {
            if ui.button("Keep both").clicked() {
                answer = Some(Some(IfExists::KeepBoth));
            }
            if ui.button("Replace it").clicked() {
                answer = Some(Some(IfExists::Replace));
            }
            if ui.button("Cancel").clicked() {
                answer = Some(None);
            }
        });
    });
    if let Some(answer) = answer {
        state.import_conflict = None;
        out.extend(answer.map(|if_exists| Command::ImportAdapter {
            path: path.clone(),
            if_exists,
        }));
    }
}

/// Shared adapter files end in `.dlora`, which the app opens when double-clicked.
pub(crate) fn with_extension(path: &str) -> String {
    if path.ends_with(".dlora") {
        path.to_string()
    } else {
        format!("{path}.dlora")
    }
}
