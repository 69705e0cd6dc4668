//! The message area: a failure (its plain sentence, next steps and Details) and the last notice,
//! drawn over the page's lower right corner so that a message never moves what is on the page.

use egui::{Align2, RichText, Ui};

use crate::plain::NextStep;
use crate::protocol::{Command, PickPurpose};
use crate::screens::Screen;
use crate::state::State;

/// Wide enough for a sentence on three lines, narrow enough to leave the page readable.
const WIDTH: f32 = 420.0;
/// Above the status bar, clear of the window's edge.
const OFFSET: [f32; 2] = [-14.0, -44.0];

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    if state.error.is_none() && state.notice.is_none() && state.log.is_none() {
        return;
    }
    egui::Area::new(egui::Id::unique("messages"))
        .anchor(Align2::RIGHT_BOTTOM, OFFSET)
        .order(egui::Order::Foreground)
        .show(ui.ctx(), |ui| {
            ui.set_max_width(WIDTH);
            if state.error.is_some() {
                failure(ui, state, out);
            }
            if let Some(notice) = state.notice.clone() {
                card(ui, false, |ui| {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new(notice).strong());
                        if ui.small_button("OK").clicked() {
                            state.notice = None;
                        }
                    });
                });
            }
        });
    log_window(ui, state);
}

fn card(ui: &mut Ui, error: bool, content: impl FnOnce(&mut Ui)) {
    let visuals = ui.visuals();
    let stroke = if error {
        egui::Stroke::new(1.0, visuals.error_fg_color)
    } else {
        visuals.window_stroke
    };
    egui::Frame::popup(ui.style())
        .stroke(stroke)
        .inner_margin(10.0)
        .show(ui, |ui| {
            ui.set_width(WIDTH);
            content(ui);
        });
    ui.add_space(6.0);
}

fn failure(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    let Some(failure) = state.error.clone() else {
        return;
    };
    let explanation = failure.explanation();
    let mut dismissed = false;
    card(ui, true, |ui| {
        ui.add(
            egui::Label::new(
                RichText::new(&explanation.sentence)
                    .color(ui.visuals().error_fg_color)
                    .strong(),
            )
            .wrap(),
        );
        if let Some(specific) = &explanation.specific {
            ui.add(egui::Label::new(specific.as_str()).wrap());
        }
        ui.horizontal_wrapped(|ui| {
            for step in &explanation.steps {
                let enabled = *step != NextStep::Retry || failure.retry.is_some();
                if ui
                    .add_enabled(enabled, egui::Button::new(step.label()))
                    .clicked()
                {
                    take(*step, &failure.retry, state, out);
                    dismissed = true;
                }
            }
            let details = if failure.show_details {
                "Hide details"
            } else {
                "Details"
            };
            if ui.button(details).clicked()
                && let Some(shown) = state.error.as_mut()
            {
                shown.show_details = !shown.show_details;
            }
            if ui.button("Dismiss").clicked() {
                dismissed = true;
            }
        });
        if failure.show_details {
            ui.add(
                egui::Label::new(RichText::new(&failure.problem.detail).monospace().small()).wrap(),
            );
            if ui.small_button("Show the log").clicked() {
                out.push(Command::ShowLog);
            }
        }
    });
    if dismissed {
        state.error = None;
    }
}

fn take(step: NextStep, retry: &Option<Command>, state: &mut State, out: &mut Vec<Command>) {
    match step {
        NextStep::Retry => out.extend(retry.clone()),
        NextStep::ChooseModelFolder => {
            state.requested_screen = Some(Screen::Model);
            out.push(Command::Pick {
                purpose: PickPurpose::ModelFolder,
                current: String::new(),
            });
        }
        NextStep::ChooseDataFiles => {
            state.requested_screen = Some(Screen::Data);
            out.push(Command::Pick {
                purpose: PickPurpose::DataFiles,
                current: String::new(),
            });
        }
        NextStep::OpenSettings => state.requested_screen = Some(Screen::Settings),
        NextStep::ShowLog => out.push(Command::ShowLog),
    }
}

/// The log of failures, newest last, with where the file is.
fn log_window(ui: &mut Ui, state: &mut State) {
    let Some((path, text)) = state.log.clone() else {
        return;
    };
    let mut open = true;
    egui::Window::new("Log of problems")
        .open(&mut open)
        .collapsible(false)
        .default_size([640.0, 360.0])
        .show(ui.ctx(), |ui| {
            ui.label(RichText::new(format!("Kept in {path}")).weak());
            if ui.button("Copy all").clicked() {
                ui.ctx().copy_text(text.clone());
            }
            egui::ScrollArea::vertical()
                .stick_to_bottom(true)
                .show(ui, |ui| {
                    let shown = if text.is_empty() {
                        "Nothing went wrong so far."
                    } else {
                        text.as_str()
                    };
                    ui.add(egui::Label::new(RichText::new(shown).monospace().small()).wrap());
                });
        });
    if !open {
        state.log = None;
    }
}
