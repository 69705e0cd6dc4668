//! Model: a Flan-T5 size from the Hub (with its download size and the memory it needs here) or a
//! local folder, the device, and loading it.

use egui::{RichText, Ui};

use crate::protocol::{Command, Device, Machine, PickPurpose, Precision, training_memory};
use crate::state::State;
use crate::widgets;

/// A Flan-T5 size offered for download.
pub struct Size {
    pub id: &'static str,
    parameters: u64,
    pub summary: &'static str,
}

impl Size {
    pub fn download_bytes(&self) -> u64 {
        self.parameters * 4
    }

    /// Memory to train it with a batch of 8.
    pub fn training_bytes(&self) -> u64 {
        training_memory(self.parameters, 8)
    }

    fn fits(&self, machine: &Machine) -> bool {
        machine.memory_bytes == 0 || self.training_bytes() <= machine.memory_bytes
    }
}

/// Sizes larger than this train too slowly without a GPU to recommend.
const CPU_PARAMETERS: u64 = 250_000_000;

/// The largest size that trains comfortably here: within half the memory, and small enough for
/// the processor when there is no GPU.
pub fn recommended(machine: &Machine) -> &'static Size {
    let comfortable = |size: &&Size| {
        (machine.memory_bytes == 0 || size.training_bytes() * 2 <= machine.memory_bytes)
            && (machine.gpu || size.parameters <= CPU_PARAMETERS)
    };
    SIZES.iter().rev().find(comfortable).unwrap_or(&SIZES[0])
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
        precision: state.settings.precision,
    }
}

/// Load model, once there is a source, and once the person said yes to a size too large here.
pub fn main_command(state: &State) -> Option<Command> {
    let source = state.model_source.trim();
    let unconfirmed = too_big(state).is_some() && state.confirm_model.as_deref() != Some(source);
    (!source.is_empty() && !unconfirmed).then(|| load_command(state))
}

/// The offered size a source names, when it needs more memory to train than this machine has.
fn too_big(state: &State) -> Option<&'static Size> {
    let source = state.model_source.trim();
    SIZES
        .iter()
        .find(|s| s.id == source && !s.fits(&state.machine))
}

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    widgets::screen_title(
        ui,
        "Model",
        "Pick the model that writes the summaries. It is downloaded once, then used offline.",
    );
    let memory = state.machine.memory_bytes;
    // One entry per size, its explanation on a line of its own: in a table column the
    // explanation wrapped a word per line and pushed the settings below off the window.
    let recommended = recommended(&state.machine).id;
    for size in &SIZES {
        ui.horizontal_wrapped(|ui| {
            ui.radio_value(&mut state.model_source, size.id.to_string(), size.id);
            let download = format!("{} download", widgets::bytes(size.download_bytes()));
            ui.label(RichText::new(download).weak());
            let training = format!("about {} to train", widgets::bytes(size.training_bytes()));
            if size.fits(&state.machine) {
                ui.label(RichText::new(training).weak());
            } else {
                ui.label(
                    RichText::new(format!("{training}: too much for this computer"))
                        .color(ui.visuals().warn_fg_color),
                );
            }
        });
        let summary = if size.id == recommended {
            RichText::new(format!("Recommended here. {}", size.summary)).strong()
        } else {
            RichText::new(size.summary)
        };
        ui.indent(size.id, |ui| ui.add(egui::Label::new(summary).wrap()));
        ui.add_space(4.0);
    }
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
    ui.horizontal(|ui| {
        let label = ui.label("Weights:");
        let mut precision = state.settings.precision;
        egui::ComboBox::from_id_salt("precision")
            .selected_text(precision_label(precision))
            .show_ui(ui, |ui| {
                for choice in Precision::ALL {
                    ui.selectable_value(&mut precision, choice, precision_label(choice));
                }
            })
            .response
            .labelled_by(label.id)
            .on_hover_text(
                "Fast keeps the model's weights in bfloat16: half the memory, and faster on \
                 processors with AMX (recent Intel Xeons). Summaries can differ in a word now and then; \
                 Exact computes as the reference tools do.",
            );
        if precision != state.settings.precision {
            state.settings.precision = precision;
            out.push(Command::SaveSettings {
                settings: state.settings.clone(),
            });
        }
    });
    ui.add_space(8.0);
    let command = main_command(state);
    let oversized = too_big(state);
    if command.is_none() && oversized.is_some() {
        // A size that cannot train here is loaded only once the person has said so.
        if widgets::main_button(ui, "Load model", !state.busy()).clicked() {
            state.asking_model = true;
        }
    } else {
        widgets::command_button(ui, "Load model", command, state.busy(), true, out);
    }
    if state.asking_model
        && let Some(size) = oversized
    {
        confirm_size(ui, state, size, out);
    }
    ui.add_space(8.0);
    match &state.model {
        Some(model) => ui.label(format!(
            "Loaded: {}, {} parameters, on the {}, {}.",
            model.name,
            widgets::count(model.parameters),
            if model.device == "cpu" {
                "processor"
            } else {
                "GPU"
            },
            match model.precision {
                Precision::Bf16 => "weights in bfloat16 (fast)",
                Precision::F32 | Precision::Auto => "weights in f32 (exact)",
            }
        )),
        None => ui.label(RichText::new("No model is loaded yet.").weak()),
    };
}

/// The Weights choice as the menu shows it.
fn precision_label(precision: Precision) -> &'static str {
    match precision {
        Precision::Auto => "Automatic (fast where this processor gains)",
        Precision::F32 => "Exact (f32)",
        Precision::Bf16 => "Fast (bfloat16)",
    }
}

fn confirm_size(ui: &mut Ui, state: &mut State, size: &Size, out: &mut Vec<Command>) {
    egui::Modal::new(egui::Id::unique("confirm-model")).show(ui.ctx(), |ui| {
        ui.set_max_width(420.0);
        ui.heading("This model is larger than this computer");
        ui.add(
            egui::Label::new(format!(
                "{} needs about {} of memory to train, and this computer has {}. It may still                  summarize, slowly, but training will stop for lack of memory.",
                size.id,
                widgets::bytes(size.training_bytes()),
                widgets::bytes(state.machine.memory_bytes)
            ))
            .wrap(),
        );
        ui.horizontal(|ui| {
            if ui.button("Load it anyway").clicked() {
                state.confirm_model = Some(size.id.to_string());
                state.asking_model = false;
                out.push(load_command(state));
            }
            if ui.button("Choose a smaller one").clicked() {
                state.model_source = recommended(&state.machine).id.to_string();
                state.asking_model = false;
            }
        });
    });
}
