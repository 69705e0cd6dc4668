//! Summarize: a pasted or dropped transcript (.txt, .vtt, .srt), an adapter or none, and the summary
//! to copy or save. Long transcripts are summarized in windows by the engine.

use egui::{RichText, Ui};

use crate::protocol::{Command, PickPurpose, Transcript};
use crate::state::State;
use crate::widgets;

pub fn summarize_command(state: &State) -> Option<Command> {
    let file = state.transcript_file.trim();
    let transcript = if !file.is_empty() {
        Transcript::File {
            path: file.to_string(),
        }
    } else if !state.transcript_text.trim().is_empty() {
        Transcript::Text {
            text: state.transcript_text.clone(),
        }
    } else {
        return None;
    };
    state.model.as_ref().map(|_| Command::Summarize {
        transcript,
        adapter: state.active_adapter.clone(),
        prompt_template: state.summary_style.clone(),
    })
}

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    widgets::screen_title(
        ui,
        "Summarize",
        "Paste a conversation or open a transcript (.txt, .vtt, .srt). Nothing leaves this machine.",
    );
    widgets::path_field(
        ui,
        "Transcript file:",
        &mut state.transcript_file,
        PickPurpose::Transcript,
        out,
    );
    let label = ui.label("Or paste the text (Name: what they said, one turn per line):");
    ui.add(
        egui::TextEdit::multiline(&mut state.transcript_text)
            .desired_rows(8)
            .desired_width(f32::INFINITY)
            .hint_text("Anna: Shall we move the review to Friday?\nBen: Friday works for me."),
    )
    .labelled_by(label.id);
    if !state.transcript_file.trim().is_empty() && !state.transcript_text.trim().is_empty() {
        ui.label(RichText::new("The file is used; clear its field to use the pasted text.").weak());
    }
    widgets::adapter_picker(ui, "Adapter:", &state.library, &mut state.active_adapter);
    let own = state
        .active_adapter
        .as_ref()
        .and_then(|name| state.library.iter().find(|a| &a.name == name))
        .and_then(|a| a.prompt_template.as_deref())
        .map(|template| format!("As the adapter learned ({})", state.style_label(template)));
    let none_label = own.unwrap_or_else(|| "Summary (as DialogSum)".to_string());
    widgets::style_picker(
        ui,
        "Kind of summary:",
        &state.styles,
        &mut state.summary_style,
        Some(&none_label),
    );
    let command = summarize_command(state);
    if state.model.is_none() {
        ui.label(RichText::new("Load a model first (Model, Ctrl+1).").weak());
    }
    widgets::command_button(ui, "Summarize", command, state.busy(), true, out);
    let Some(summary) = state.summary.clone() else {
        return;
    };
    ui.separator();
    let how = match (&summary.adapter, summary.windows) {
        (Some(adapter), 1) => format!("with {adapter}"),
        (None, 1) => "with the model alone".to_string(),
        (Some(adapter), windows) => format!("with {adapter}, in {windows} windows"),
        (None, windows) => format!("with the model alone, in {windows} windows"),
    };
    ui.label(RichText::new(format!("Summary of {} ({how})", summary.source)).strong());
    ui.label(RichText::new(state.style_label(&summary.prompt_template)).weak())
        .on_hover_text(&summary.prompt_template);
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.add(egui::Label::new(&summary.text).selectable(true));
    });
    ui.horizontal(|ui| {
        if ui.button("Copy").clicked() {
            ui.ctx().copy_text(summary.text.clone());
            state.notice = Some("The summary is on the clipboard.".into());
        }
    });
    let suggestion = summary_file_name(&summary.source);
    widgets::path_field_suggesting(
        ui,
        "Save as:",
        &mut state.summary_path,
        PickPurpose::SaveSummary,
        &suggestion,
        out,
    );
    let pressed = ui.button("Save").on_hover_text("Ctrl+S").clicked();
    if pressed || save_pressed(ui) {
        // Without a path the dialog asks for one, and saves when it closes.
        out.push(match state.summary_path.trim() {
            "" => Command::Pick {
                purpose: PickPurpose::SaveSummary,
                current: suggestion,
            },
            path => Command::SaveText {
                path: path.to_string(),
                text: summary.text,
            },
        });
    }
}

/// `standup.vtt` gives `standup-summary.txt`; pasted text gives `summary.txt`.
pub fn summary_file_name(source: &str) -> String {
    let path = std::path::Path::new(source);
    match path.file_stem().map(|s| s.to_string_lossy()) {
        Some(stem) if path.extension().is_some() && !stem.is_empty() => {
            format!("{stem}-summary.txt")
        }
        _ => "summary.txt".to_string(),
    }
}

/// Ctrl+S on this screen saves the summary.
fn save_pressed(ui: &mut Ui) -> bool {
    let shortcut = egui::KeyboardShortcut::new(egui::Modifiers::COMMAND, egui::Key::S);
    ui.input_mut(|i| i.consume_shortcut(&shortcut))
}
