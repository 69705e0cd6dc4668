//! Welcome: what Dialora does in three lines, the model size recommended for this machine, and
//! "Try it on sample conversations", which takes a first-time user from nothing to a trained
//! adapter on bundled data (with a path to a model folder when nothing can be downloaded).

use egui::{RichText, Ui};

use crate::presets::Preset;
use crate::protocol::{Command, DEFAULT_PROMPT, DataRequest, PickPurpose, SAMPLES};
use crate::samples;
use crate::screens::{Screen, model};
use crate::state::State;
use crate::widgets;

const STEPS: [(&str, &str); 3] = [
    (
        "A model writes the summaries.",
        "Flan-T5, downloaded once and then used offline (Model).",
    ),
    (
        "Your conversations teach it your way.",
        "With summaries you wrote, or drafts the model writes and you correct (Data, Review).",
    ),
    (
        "Training makes a small adapter file.",
        "Summarize new meetings with it, and share it with others (Train, Summarize, Adapters).",
    ),
];

/// Share of the samples held out to measure the result.
const SAMPLE_VALIDATION: f64 = 0.25;

/// The commands that try the app on the sample conversations: the model (unless it is the one
/// loaded), the samples, and a quick training setting; the sample meeting waits on Summarize.
pub fn try_samples(state: &mut State) -> Vec<Command> {
    let mut commands = Vec::new();
    let source = state.model_source.trim().to_string();
    if state.model.as_ref().is_none_or(|m| m.name != source) {
        commands.push(Command::LoadModel {
            source,
            device: state.device(),
            precision: state.settings.precision,
        });
    }
    commands.push(Command::ImportData {
        request: DataRequest {
            sources: vec![SAMPLES.to_string()],
            columns: Default::default(),
            validation_fraction: SAMPLE_VALIDATION,
            seed: 0,
        },
    });
    state.validation_percent = SAMPLE_VALIDATION * 100.0;
    state.data_paths = SAMPLES.to_string();
    state.train = Preset::Quick.options(state.train_examples(), DEFAULT_PROMPT.to_string());
    state.transcript_text = samples::MEETING.to_string();
    state.train_after_import = true;
    commands
}

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    widgets::screen_title(
        ui,
        "Welcome to Dialora",
        "Dialora learns to summarize conversations the way you do, then summarizes your meetings \
         and chats on this computer.",
    );
    egui::Grid::new("welcome-steps")
        .num_columns(2)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            for (number, (step, detail)) in STEPS.iter().enumerate() {
                ui.label(RichText::new(format!("{}", number + 1)).heading());
                ui.vertical(|ui| {
                    ui.label(RichText::new(*step).strong());
                    ui.add(egui::Label::new(RichText::new(*detail).weak()).wrap());
                });
                ui.end_row();
            }
        });
    ui.add_space(widgets::SECTION_GAP);

    let recommended = model::recommended(&state.machine);
    ui.label(RichText::new("The model").strong());
    ui.add(
        egui::Label::new(format!(
            "Recommended for this computer: {} ({} to download, about {} of memory to train). {}",
            recommended.id,
            widgets::bytes(recommended.download_bytes()),
            widgets::bytes(recommended.training_bytes()),
            recommended.summary
        ))
        .wrap(),
    );
    widgets::path_field(
        ui,
        "Model to use:",
        &mut state.model_source,
        PickPurpose::ModelFolder,
        out,
    );
    ui.add(
        egui::Label::new(
            RichText::new(
                "No internet? Choose (Browse…) a Flan-T5 folder you already have: one with \
                 config.json, tokenizer.json and model.safetensors.",
            )
            .weak(),
        )
        .wrap(),
    );
    ui.add_space(widgets::SECTION_GAP);

    ui.horizontal_wrapped(|ui| {
        let ready = !state.model_source.trim().is_empty();
        let response =
            widgets::main_button(ui, "Try it on sample conversations", ready && !state.busy())
                .on_hover_text("16 short conversations with summaries, and a meeting to summarize");
        if response.clicked() {
            out.extend(try_samples(state));
            remember_welcomed(state, out);
        }
        if ui.button("Start with my own files").clicked() {
            state.requested_screen = Some(Screen::Model);
            remember_welcomed(state, out);
        }
    });
    widgets::reason(
        ui,
        "The samples load the model, read the conversations and open Train with a quick setting \
         (a few minutes on a laptop).",
    );
}

fn remember_welcomed(state: &mut State, out: &mut Vec<Command>) {
    if !state.settings.welcomed {
        state.settings.welcomed = true;
        out.push(Command::SaveSettings {
            settings: state.settings.clone(),
        });
    }
}
