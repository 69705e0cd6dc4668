//! Model: a Flan-T5 size from the Hub (with its download size and the memory it needs here) or a
//! local folder, the device, and loading it.

use egui::{RichText, Ui};

use crate::protocol::{Command, Device, PickPurpose, training_memory};
use crate::state::State;
use crate::widgets;

/// A Flan-T5 size offered for download.
struct Size {
    id: &'static str,
    parameters: u64,
    summary: &'static str,
}

const SIZES: [Size; 4] = [
    Size {
        id: "google/flan-t5-small",
        parameters: 76_961_152,
        summary: "Fast on any laptop; rough summaries.",
    },
    Size {
        id: "google/flan-t5-base",
        parameters: 247_577_856,
        summary: "The usual choice: good summaries, trains on a laptop.",
    },
    Size {
        id: "google/flan-t5-large",
        parameters: 783_150_080,
        summary: "Better summaries; training is slow without a GPU.",
    },
    Size {
        id: "google/flan-t5-xl",
        parameters: 2_849_757_184,
        summary: "The best; needs a large GPU or much memory and patience.",
    },
];

pub fn load_command(state: &State) -> Command {
    Command::LoadModel {
        source: state.model_source.trim().to_string(),
        device: state.device(),
    }
}

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    widgets::screen_title(
        ui,
        "Model",
        "Pick the model that writes the summaries. It is downloaded once, then used offline.",
    );
    let memory = state.machine.memory_bytes;
    egui::Grid::new("sizes").striped(true).show(ui, |ui| {
        ui.label(RichText::new("Model").strong());
        ui.label(RichText::new("Download").strong());
        ui.label(RichText::new("Memory to train").strong());
        ui.label("");
        ui.end_row();
        for size in &SIZES {
            ui.radio_value(&mut state.model_source, size.id.to_string(), size.id);
            ui.label(widgets::bytes(size.parameters * 4));
            let needed = training_memory(size.parameters, 8);
            let fits = memory == 0 || needed <= memory;
            let text = format!("about {}", widgets::bytes(needed));
            if fits {
                ui.label(text);
            } else {
                ui.label(RichText::new(format!("{text}: more than this machine has")).weak());
            }
            ui.label(RichText::new(size.summary).weak());
            ui.end_row();
        }
    });
    if memory > 0 {
        ui.label(
            RichText::new(format!(
                "This machine has {} of memory.",
                widgets::bytes(memory)
            ))
            .weak(),
        );
    }
    ui.add_space(8.0);
    widgets::path_field(
        ui,
        "Hub id or model folder:",
        &mut state.model_source,
        PickPurpose::ModelFolder,
        out,
    );
    ui.horizontal(|ui| {
        let label = ui.label("Run on:");
        let mut device = state.settings.device;
        egui::ComboBox::from_id_salt("device")
            .selected_text(device.label())
            .show_ui(ui, |ui| {
                for choice in Device::ALL {
                    let enabled = choice != Device::Gpu || state.machine.gpu;
                    ui.add_enabled_ui(enabled, |ui| {
                        ui.selectable_value(&mut device, choice, choice.label())
                    });
                }
            })
            .response
            .labelled_by(label.id);
        if device != state.settings.device {
            state.settings.device = device;
            out.push(Command::SaveSettings {
                settings: state.settings.clone(),
            });
        }
        if !state.machine.gpu {
            ui.label(RichText::new("This build has no GPU support.").weak());
        }
    });
    ui.add_space(8.0);
    let command = (!state.model_source.trim().is_empty()).then(|| load_command(state));
    widgets::command_button(ui, "Load model", command, state.busy(), true, out);
    ui.add_space(8.0);
    match &state.model {
        Some(model) => ui.label(format!(
            "Loaded: {} ({} parameters, {})",
            model.name,
            group_digits(model.parameters),
            model.device
        )),
        None => ui.label(RichText::new("No model is loaded yet.").weak()),
    };
}

fn group_digits(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
