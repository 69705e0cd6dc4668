//! Review ("teach by correcting"): the model drafts a summary for each imported dialogue, the
//! person reads the dialogue beside its draft, corrects it and accepts it (or skips it); every
//! decision is saved at once in a named dataset, which Train learns from. After a training run the
//! new adapter drafts the rest, and each round shows how many words the person still had to
//! change. Without a dataset open it lists the datasets and makes new ones.

use egui::{Key, KeyboardShortcut, Modifiers, RichText, Ui};

use crate::protocol::{
    Command, DIALOGSUM, DataRequest, Decision, PickPurpose, ReviewStatus, RoundFigure,
};
use crate::state::{Review, State};
use crate::widgets;

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    widgets::screen_title(
        ui,
        "Review",
        "The model drafts a summary of each dialogue; you correct it. Your corrections are what the next adapter learns.",
    );
    if state.review.is_some() {
        shortcuts(ui, state, out);
        open_dataset(ui, state, out);
    } else {
        new_dataset(ui, state, out);
        ui.add_space(widgets::SECTION_GAP);
        dataset_list(ui, state, out);
    }
}

/// Ctrl+Enter accepts and moves on; Ctrl+Up and Ctrl+Down move between dialogues. Taken before
/// the summary box sees them.
fn shortcuts(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    let pressed = |ui: &mut Ui, key: Key| {
        ui.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, key)))
    };
    if pressed(ui, Key::Enter) {
        decide(
            state,
            Decision::Accept {
                text: String::new(),
            },
            out,
        );
    }
    if pressed(ui, Key::ArrowDown) {
        step(state, 1, out);
    }
    if pressed(ui, Key::ArrowUp) {
        step(state, -1, out);
    }
}

/// Accepts the typed summary (the text of an `Accept` is taken from the box) or skips, and
/// moves to the next dialogue nobody has decided on.
fn decide(state: &mut State, decision: Decision, out: &mut Vec<Command>) {
    let Some(review) = state.review.as_mut() else {
        return;
    };
    if review.current().is_none() {
        return;
    }
    let decision = match decision {
        Decision::Accept { .. } => Decision::Accept {
            text: review.text.clone(),
        },
        Decision::Skip => Decision::Skip,
    };
    let index = review.position();
    let next = review.next_to_review();
    out.push(Command::Review {
        name: review.name().to_string(),
        index,
        decision,
        next,
    });
    review.go_to(next);
}

fn step(state: &mut State, by: isize, out: &mut Vec<Command>) {
    let Some(review) = state.review.as_mut() else {
        return;
    };
    let count = review.view.items.len();
    let target = review
        .position()
        .saturating_add_signed(by)
        .min(count.saturating_sub(1));
    go(review, target, out);
}

fn go(review: &mut Review, index: usize, out: &mut Vec<Command>) {
    if index == review.position() {
        return;
    }
    review.go_to(index);
    out.push(Command::ReviewAt {
        name: review.name().to_string(),
        index,
    });
}

/// Makes a dataset of the imported dialogues and drafts them.
fn new_dataset(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    ui.label(RichText::new("New dataset").strong());
    let Some(data) = &state.data else {
        ui.label(
            RichText::new(
                "Import your transcripts or chats on the Data screen (Ctrl+2) first; they need no summaries.",
            )
            .weak(),
        );
        return;
    };
    if data.sources == [DIALOGSUM] {
        ui.label(
            RichText::new("DialogSum has its summaries already: train on it directly (Ctrl+4).")
                .weak(),
        );
    }
    ui.label(format!(
        "From the {} imported dialogues ({} with a summary already).",
        data.dialogues, data.with_summary
    ));
    ui.horizontal(|ui| {
        let label = ui.label("Dataset name");
        ui.add(egui::TextEdit::singleline(&mut state.new_dataset_name).desired_width(220.0))
            .labelled_by(label.id);
    });
    let mut style = Some(state.review_style.clone());
    widgets::style_picker(ui, "Kind of summary", &state.styles, &mut style, None);
    state.review_style = style.unwrap_or_default();
    widgets::adapter_picker(ui, "Draft with", &state.library, &mut state.active_adapter);
    let name = state.new_dataset_name.trim().to_string();
    let taken = state.datasets.iter().any(|d| d.name == name);
    let ready = state.model.is_some() && !name.is_empty() && !taken;
    let command = ready.then(|| Command::CreateDataset {
        name: name.clone(),
        style: state.review_style.clone(),
    });
    if widgets::command_button(ui, "Create and draft", command, state.busy(), false, out).clicked()
    {
        out.push(Command::DraftDataset {
            name,
            adapter: state.active_adapter.clone(),
            style: state.review_style.clone(),
        });
    } else if state.model.is_none() {
        widgets::reason(
            ui,
            "Load a model first (Model, Ctrl+1): it writes the drafts.",
        );
    } else if taken {
        widgets::reason(ui, "A dataset has this name already: choose another.");
    }
}

fn dataset_list(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    ui.label(RichText::new("Your datasets").strong());
    if state.datasets.is_empty() {
        ui.label(RichText::new("None yet.").weak());
    }
    egui::Grid::new("datasets")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            if !state.datasets.is_empty() {
                for heading in ["Name", "Dialogues", "Accepted", "Last change", ""] {
                    ui.label(RichText::new(heading).strong());
                }
                ui.end_row();
            }
            for entry in state.datasets.clone() {
                match &mut state.renaming_dataset {
                    Some((old, new_name)) if *old == entry.name => {
                        let label = ui.label("New name");
                        ui.add(egui::TextEdit::singleline(new_name).desired_width(160.0))
                            .labelled_by(label.id);
                    }
                    _ => {
                        ui.label(&entry.name);
                    }
                }
                ui.label(entry.dialogues.to_string());
                ui.label(format!("{} ({} reviewed)", entry.accepted, entry.reviewed));
                ui.label(widgets::date(entry.modified));
                ui.horizontal(|ui| {
                    if ui.button(format!("Open \"{}\"", entry.name)).clicked() {
                        out.push(Command::OpenDataset {
                            name: entry.name.clone(),
                        });
                    }
                    match state.renaming_dataset.clone() {
                        Some((old, new_name)) if old == entry.name => {
                            if ui.button("Save name").clicked() {
                                out.push(Command::RenameDataset {
                                    name: old,
                                    new_name: new_name.trim().to_string(),
                                });
                                state.renaming_dataset = None;
                            }
                        }
                        _ => {
                            if ui.button("Rename").clicked() {
                                state.renaming_dataset =
                                    Some((entry.name.clone(), entry.name.clone()));
                            }
                        }
                    }
                    if ui.button("Delete").clicked() {
                        state.confirm_delete_dataset = Some(entry.name.clone());
                    }
                });
                ui.end_row();
            }
        });
    ui.add_space(widgets::SECTION_GAP);
    widgets::path_field(
        ui,
        "Import a dataset (JSONL):",
        &mut state.dataset_import,
        PickPurpose::ImportDataset,
        out,
    );
    let path = state.dataset_import.trim().to_string();
    let command = (!path.is_empty()).then_some(Command::ImportDataset { path });
    widgets::command_button(ui, "Import dataset", command, false, false, out);
}

fn open_dataset(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    let Some(review) = state.review.as_ref() else {
        return;
    };
    let entry = review.view.entry.clone();
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(format!("\"{}\"", entry.name)).strong());
        ui.label(format!(
            "{} of {} reviewed · {} accepted",
            entry.reviewed, entry.dialogues, entry.accepted
        ));
        if ui.button("All datasets").clicked() {
            state.review = None;
        }
    });
    let Some(review) = state.review.as_ref() else {
        return;
    };
    for line in round_lines(&review.view.rounds) {
        ui.label(line);
    }
    drafting(ui, state, out);
    train_on_it(ui, state, out);
    ui.add_space(widgets::SECTION_GAP);
    ui.horizontal_top(|ui| {
        dialogue_list(ui, state, out);
        ui.separator();
        ui.vertical(|ui| current_dialogue(ui, state, out));
    });
    ui.add_space(widgets::SECTION_GAP);
    export(ui, state, out);
}

/// The drafting controls: the kind of summary, the adapter, and the button for this round.
fn drafting(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    let mut style = Some(state.review_style.clone());
    widgets::style_picker(ui, "Kind of summary", &state.styles, &mut style, None);
    state.review_style = style.unwrap_or_default();
    widgets::adapter_picker(ui, "Draft with", &state.library, &mut state.active_adapter);
    let Some(review) = &state.review else {
        return;
    };
    let left = review
        .view
        .items
        .iter()
        .filter(|i| i.status != ReviewStatus::Accepted)
        .count();
    let label = match &state.active_adapter {
        Some(adapter) => format!("Draft the rest with {adapter}"),
        None => "Draft summaries".to_string(),
    };
    let command = (state.model.is_some() && left > 0).then(|| Command::DraftDataset {
        name: review.name().to_string(),
        adapter: state.active_adapter.clone(),
        style: state.review_style.clone(),
    });
    ui.horizontal(|ui| {
        widgets::command_button(ui, &label, command, state.busy(), false, out);
        if state.model.is_none() {
            widgets::reason(ui, "Load a model (Ctrl+1) to draft.");
        } else if left == 0 {
            widgets::reason(ui, "Every dialogue is accepted.");
        } else {
            widgets::reason(
                ui,
                &format!("{left} not accepted yet; you can review while drafts are written."),
            );
        }
    });
}

/// One line per dialogue: its mark and id; a click goes to it.
fn dialogue_list(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    let Some(review) = state.review.as_mut() else {
        return;
    };
    let mut target = None;
    ui.vertical(|ui| {
        ui.set_width(190.0);
        egui::ScrollArea::vertical()
            .id_salt("review-list")
            .max_height(380.0)
            .show(ui, |ui| {
                for (index, item) in review.view.items.iter().enumerate() {
                    let mark = match (item.status, &item.summary) {
                        (ReviewStatus::Accepted, _) => "accepted",
                        (ReviewStatus::Skipped, _) => "skipped",
                        (ReviewStatus::Pending, Some(_)) => "draft",
                        (ReviewStatus::Pending, None) => "to draft",
                    };
                    let chosen = index == review.position();
                    let text = format!("{}. {} · {mark}", index + 1, item.id);
                    if ui
                        .add(egui::Button::selectable(chosen, text).truncate())
                        .clicked()
                    {
                        target = Some(index);
                    }
                }
            });
    });
    if let Some(index) = target {
        go(review, index, out);
    }
}

fn current_dialogue(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    let Some(review) = state.review.as_mut() else {
        return;
    };
    let Some(item) = review.current().cloned() else {
        ui.label("This dataset has no dialogues.");
        return;
    };
    let status = match (item.status, &item.drafted_by, item.round) {
        (ReviewStatus::Accepted, _, _) => "Accepted: edit it and accept again to change it.".into(),
        (ReviewStatus::Skipped, _, _) => "Skipped: the next round drafts it again.".into(),
        (ReviewStatus::Pending, _, None) if item.summary.is_none() => {
            "Not drafted yet.".to_string()
        }
        (ReviewStatus::Pending, by, round) => format!(
            "Draft by {}{}: correct it, then accept.",
            by.as_deref().unwrap_or("the model alone"),
            round.map(|r| format!(" (round {r})")).unwrap_or_default()
        ),
    };
    ui.label(
        RichText::new(format!(
            "{} of {} · {}",
            review.position() + 1,
            review.view.items.len(),
            item.id
        ))
        .strong(),
    );
    ui.label(RichText::new(status).weak());
    egui::Frame::group(ui.style()).show(ui, |ui| {
        egui::ScrollArea::vertical()
            .id_salt("review-dialogue")
            .max_height(220.0)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                if item.turns.is_empty() {
                    ui.add(egui::Label::new(&item.dialogue).wrap());
                }
                for turn in &item.turns {
                    let mut job = egui::text::LayoutJob::default();
                    if let Some(speaker) = &turn.speaker {
                        job.append(
                            &format!("{speaker}: "),
                            0.0,
                            egui::TextFormat {
                                color: ui.visuals().strong_text_color(),
                                ..Default::default()
                            },
                        );
                    }
                    job.append(
                        &turn.text,
                        0.0,
                        egui::TextFormat {
                            color: ui.visuals().text_color(),
                            ..Default::default()
                        },
                    );
                    job.wrap.max_width = ui.available_width();
                    ui.label(job);
                }
            });
    });
    let label = ui.label("Summary");
    ui.add(
        egui::TextEdit::multiline(&mut review.text)
            .desired_rows(4)
            .desired_width(f32::INFINITY)
            .hint_text("Write the summary you want, or wait for the draft."),
    )
    .labelled_by(label.id);
    let mut decision = None;
    let mut move_by = 0;
    ui.horizontal_wrapped(|ui| {
        let can_accept = !review.text.trim().is_empty();
        if ui
            .add_enabled(can_accept, egui::Button::new("Accept"))
            .on_hover_text("Saves this summary and moves on (Ctrl+Enter)")
            .clicked()
        {
            decision = Some(Decision::Accept {
                text: String::new(),
            });
        }
        if ui
            .button("Skip")
            .on_hover_text("Not now: the next round drafts it again")
            .clicked()
        {
            decision = Some(Decision::Skip);
        }
        if ui.button("Previous").on_hover_text("Ctrl+Up").clicked() {
            move_by = -1;
        }
        if ui.button("Next").on_hover_text("Ctrl+Down").clicked() {
            move_by = 1;
        }
    });
    if let Some(decision) = decision {
        decide(state, decision, out);
    } else if move_by != 0 {
        step(state, move_by, out);
    }
}

/// Imports the dataset as the data to train on, with its kind of summary, and goes to Train.
fn train_on_it(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    let Some(entry) = state.review.as_ref().map(|r| r.view.entry.clone()) else {
        return;
    };
    let accepted = entry.accepted;
    let command = (accepted > 0).then(|| Command::ImportData {
        request: DataRequest {
            sources: vec![entry.file.clone()],
            columns: Default::default(),
            validation_fraction: state.validation_percent / 100.0,
            seed: state.train.seed,
        },
    });
    ui.horizontal(|ui| {
        if widgets::command_button(
            ui,
            "Train on this dataset",
            command,
            state.busy(),
            false,
            out,
        )
        .clicked()
        {
            state.data_paths = entry.file.clone();
            state.train.prompt_template = state.review_style.clone();
            state.train_after_import = true;
        }
        if accepted == 0 {
            widgets::reason(ui, "Accept a few summaries first.");
        } else {
            widgets::reason(
                ui,
                &format!("It learns from the {accepted} accepted summaries; drafts are left out."),
            );
        }
    });
}

/// Writes the dataset to a JSONL file of the person's choice.
fn export(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    let Some(name) = state.review.as_ref().map(|r| r.name().to_string()) else {
        return;
    };
    let mut file = state.dataset_file.clone();
    widgets::path_field(
        ui,
        "Export to file:",
        &mut file,
        PickPurpose::ExportDataset,
        out,
    );
    state.dataset_file = file;
    let path = state.dataset_file.trim().to_string();
    let command = (!path.is_empty()).then_some(Command::ExportDataset { name, file: path });
    widgets::command_button(ui, "Export dataset", command, false, false, out);
}

/// A sentence per drafting round: who drafted, what was accepted, the words changed, and the
/// change against the first round (the person's own measure of progress).
pub fn round_lines(rounds: &[RoundFigure]) -> Vec<String> {
    let first = rounds.iter().find(|r| r.mean_edits.is_some());
    rounds
        .iter()
        .map(|round| {
            let who = round.drafted_by.as_deref().unwrap_or("the model alone");
            let mut line = format!(
                "Round {}, drafted by {who}: {} drafts, {} accepted",
                round.round, round.drafted, round.accepted
            );
            if let Some(mean) = round.mean_edits {
                line += &format!(", {mean:.1} words changed per summary");
                if let Some(first) = first.filter(|f| f.round != round.round)
                    && let Some(base) = first.mean_edits.filter(|b| *b > 0.0)
                {
                    let change = (mean - base) / base * 100.0;
                    let than = first.drafted_by.as_deref().unwrap_or("the model alone");
                    line += &if change <= 0.0 {
                        format!(": {:.0}% fewer edits than {than}'s", -change)
                    } else {
                        format!(": {change:.0}% more edits than {than}'s")
                    };
                }
            }
            line + "."
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::round_lines;
    use crate::protocol::RoundFigure;

    #[test]
    fn each_round_says_how_many_words_changed_against_the_first() {
        let rounds = [
            RoundFigure {
                round: 1,
                drafted_by: None,
                drafted: 6,
                accepted: 4,
                mean_edits: Some(8.0),
            },
            RoundFigure {
                round: 2,
                drafted_by: Some("my-adapter".into()),
                drafted: 2,
                accepted: 2,
                mean_edits: Some(5.0),
            },
        ];
        let lines = round_lines(&rounds);
        assert_eq!(
            lines[0],
            "Round 1, drafted by the model alone: 6 drafts, 4 accepted, 8.0 words changed per summary."
        );
        assert!(
            lines[1].ends_with(
                "5.0 words changed per summary: 38% fewer edits than the model alone's."
            ),
            "{}",
            lines[1]
        );
    }
}
