//! Data: DialogSum from the Hub or the user's files, the column names when they cannot be told
//! apart, the train/validation split, and what the import found: counts, warnings, first rows.

use egui::{RichText, Ui};

use crate::protocol::{Command, DIALOGSUM, DataRequest, PickPurpose, ProblemKind, Task};
use crate::state::State;
use crate::widgets;

pub fn import_command(state: &State) -> Option<Command> {
    let sources = state.data_sources();
    (!sources.is_empty()).then(|| Command::ImportData {
        request: DataRequest {
            sources,
            columns: state.columns.clone(),
            validation_fraction: state.validation_percent / 100.0,
            seed: state.train.seed,
        },
    })
}

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    widgets::screen_title(
        ui,
        "Data",
        "Dialogues with the summaries you want the model to learn to write.",
    );
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!state.busy(), egui::Button::new("Use DialogSum"))
            .on_hover_text("12,460 everyday dialogues with summaries, downloaded from the Hub")
            .clicked()
        {
            state.data_paths = DIALOGSUM.to_string();
            out.extend(import_command(state));
        }
        ui.label(RichText::new("or your own files:").weak());
        if ui.button("Choose files…").clicked() {
            out.push(Command::Pick {
                purpose: PickPurpose::DataFiles,
                current: String::new(),
            });
        }
    });
    ui.label(
        RichText::new(
            "CSV, TSV, JSONL, JSON, WebVTT (.vtt), SRT (.srt) or Name: text transcripts (.txt). \
             Drop files or a folder on the window, or type paths, one per line:",
        )
        .weak(),
    );
    let label = ui.label("Data files");
    ui.add(
        egui::TextEdit::multiline(&mut state.data_paths)
            .desired_rows(2)
            .desired_width(f32::INFINITY),
    )
    .labelled_by(label.id);

    // A file read without its columns found opens the place to name them.
    let mentions_column = state.error.as_ref().is_some_and(|f| {
        f.task == Some(Task::ImportData) && f.problem.kind == ProblemKind::Invalid
    });
    egui::CollapsingHeader::new("Column names")
        .open(mentions_column.then_some(true))
        .show(ui, |ui| {
            ui.label(
                RichText::new(
                    "Leave empty to let Dialora find them (dialogue, summary, id and the like).",
                )
                .weak(),
            );
            egui::Grid::new("columns").show(ui, |ui| {
                for (label, value) in [
                    ("Dialogue column", &mut state.columns.dialogue),
                    ("Summary column", &mut state.columns.summary),
                    ("Id column", &mut state.columns.id),
                ] {
                    let label = ui.label(label);
                    ui.add_sized([220.0, 20.0], egui::TextEdit::singleline(value))
                        .labelled_by(label.id);
                    ui.end_row();
                }
            });
        });
    ui.horizontal(|ui| {
        ui.label("Held out for validation:");
        ui.add(egui::Slider::new(&mut state.validation_percent, 0.0..=50.0).suffix(" %"));
    });
    ui.label(
        RichText::new(
            "Validation dialogues are never trained on; they show whether it generalizes.",
        )
        .weak(),
    );
    let command = import_command(state);
    widgets::command_button(ui, "Import", command, state.busy(), true, out);

    let Some(data) = &state.data else {
        return;
    };
    ui.separator();
    ui.label(
        RichText::new(format!(
            "Read {} ({})",
            data.sources.join(", "),
            data.format
        ))
        .strong(),
    );
    ui.add(
        egui::Label::new(format!(
            "{} dialogues, {} with a summary, {} speakers · {} for training, {} held out to measure the result",
            data.dialogues, data.with_summary, data.speakers, data.train, data.validation
        ))
        .wrap(),
    );
    if data.drafts > 0 {
        ui.label(format!(
            "{} summaries are drafts nobody accepted yet: training leaves them out.",
            data.drafts
        ));
    }
    if data.with_summary == 0 {
        ui.horizontal_wrapped(|ui| {
            ui.label(
                RichText::new(
                    "No dialogue has a summary yet: let the model draft them, correct the drafts, and train on your corrections.",
                )
                .color(ui.visuals().warn_fg_color),
            );
            if ui.button("Review drafts").clicked() {
                state.requested_screen = Some(crate::screens::Screen::Review);
            }
        });
    }
    if !data.warnings.is_empty() {
        egui::CollapsingHeader::new(format!("{} warnings", data.warnings.len()))
            .default_open(true)
            .show(ui, |ui| {
                for warning in data.warnings.iter().take(50) {
                    ui.label(RichText::new(warning).color(ui.visuals().warn_fg_color));
                }
            });
    }
    ui.add_space(6.0);
    // The dialogue takes three fifths of the width left beside the ids, the summary the rest.
    let text_width = (ui.available_width() - 140.0).max(240.0);
    egui::Grid::new("preview")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.label(RichText::new("Id").strong());
            ui.label(RichText::new("Dialogue").strong());
            ui.label(RichText::new("Summary").strong());
            ui.end_row();
            for row in &data.preview {
                ui.label(&row.id);
                cell(ui, text_width * 0.6, &row.dialogue);
                cell(ui, text_width * 0.4, &row.summary);
                ui.end_row();
            }
        });
}

/// One line of `width` showing the start of `text`; the whole text shows on hover.
fn cell(ui: &mut Ui, width: f32, text: &str) {
    ui.scope(|ui| {
        ui.set_width(width);
        ui.add(egui::Label::new(shorten(text, 200)).truncate())
            .on_hover_text(text);
    });
}

/// The first `limit` characters on one line, with an ellipsis when cut.
fn shorten(text: &str, limit: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}
