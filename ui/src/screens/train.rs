//! Train: a preset in plain words over the LoRA and trainer settings (each with its explanation),
//! the time and memory estimate, start and stop, the live loss curves, and resuming a run that was
//! interrupted.

use egui::{RichText, Ui};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use crate::presets::{Preset, explain};
use crate::protocol::{Command, Task, TrainPoint};
use crate::state::{State, TrainingView};
use crate::widgets;

/// The layers LoRA can adapt, as PEFT names them (`wi` in T5 v1.0, `wi_0`/`wi_1` in Flan-T5).
const TARGETS: [&str; 9] = ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo", "lm_head"];

pub fn train_command(state: &State) -> Option<Command> {
    let ready = state.model.is_some() && state.train_examples() > 0;
    (ready && !state.adapter_name.trim().is_empty()).then(|| Command::Train {
        name: state.adapter_name.trim().to_string(),
        settings: state.train.clone(),
    })
}

/// Why training cannot start yet, in the words of what to do.
fn blocker(state: &State) -> Option<&'static str> {
    if state.model.is_none() {
        Some("Load a model first (Model, Ctrl+1).")
    } else if state.data.is_none() {
        Some("Import dialogues with summaries first (Data, Ctrl+2).")
    } else if state.train_examples() == 0 {
        Some("No training dialogue has a summary yet: accept some drafts on Review (Ctrl+3).")
    } else if state.adapter_name.trim().is_empty() {
        Some("Give the adapter a name.")
    } else {
        None
    }
}

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    widgets::screen_title(
        ui,
        "Train",
        "Teach the model your kind of summaries. The result is a small adapter file.",
    );
    interrupted_runs(ui, state, out);
    if let Some(reason) = blocker(state) {
        ui.label(RichText::new(reason).strong());
    }
    ui.horizontal(|ui| {
        let label = ui.label("Adapter name");
        ui.text_edit_singleline(&mut state.adapter_name)
            .labelled_by(label.id);
    });
    let examples = state.train_examples();
    let chosen = Preset::of(&state.train, examples);
    ui.horizontal(|ui| {
        ui.label("Preset:");
        for preset in Preset::ALL {
            if ui
                .selectable_label(chosen == Some(preset), preset.label())
                .clicked()
            {
                state.train = preset.options(examples, state.train.prompt_template.clone());
                state.kept_train = Some(state.train.clone());
            }
        }
    });
    match chosen {
        Some(preset) => {
            ui.label(RichText::new(preset.description()).weak())
                .on_hover_text(preset.technical());
        }
        None => {
            ui.label(RichText::new("Your own settings (Advanced settings).").weak());
        }
    }
    if chosen.is_some() && (state.train.epochs > 1 || state.train.batch_size < 8) && examples > 0 {
        ui.label(
            RichText::new(format!(
                "Chosen for {examples} training dialogues: batches of {}, {} passes over them.",
                state.train.batch_size, state.train.epochs
            ))
            .weak(),
        );
    }
    let mut style = Some(state.train.prompt_template.clone());
    widgets::style_picker(ui, "Kind of summary", &state.styles, &mut style, None);
    if let Some(template) = style {
        state.train.prompt_template = template;
    }
    ui.label(RichText::new(crate::presets::explain::STYLE).weak());
    egui::CollapsingHeader::new("Advanced settings")
        .default_open(false)
        .show(ui, |ui| settings_grid(ui, state));

    ask_for_estimate(state, out);
    if let Some(estimate) = state
        .estimate
        .as_ref()
        .filter(|e| e.settings == state.train)
    {
        let time = match estimate.seconds {
            Some(seconds) => widgets::rough_duration(seconds),
            None => "time unknown (the speed measurement was stopped)".to_string(),
        };
        let text = format!(
            "Estimate: {} steps, {time} and {} of memory (this machine has {}).",
            estimate.steps,
            widgets::bytes(estimate.memory_bytes),
            widgets::bytes(state.machine.memory_bytes),
        );
        if estimate.fits {
            ui.label(text);
        } else {
            ui.label(RichText::new(text).color(ui.visuals().warn_fg_color));
        }
    }
    ui.horizontal(|ui| {
        let command = train_command(state);
        let button =
            widgets::command_button(ui, "Start training", command, state.busy(), true, out);
        if let Some(reason) = blocker(state) {
            button.on_disabled_hover_text(reason);
        }
        if state
            .running
            .as_ref()
            .is_some_and(|r| r.task == Task::Train)
        {
            widgets::reason(ui, "Stop it below (Esc): it pauses, and resumes any time.");
        }
    });
    if let Some(view) = &state.training {
        progress(ui, view);
        loss_plot(ui, view);
        if let Some(reading) = loss_reading(&view.points) {
            ui.add(egui::Label::new(RichText::new(reading).weak()).wrap());
        }
    }
}

fn interrupted_runs(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    for run in state.interrupted.clone() {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(format!(
                    "The run \"{}\" is paused at step {} of {}: resume it any time.",
                    run.name, run.step, run.total_steps
                ));
                if ui
                    .add_enabled(!state.busy(), egui::Button::new("Resume"))
                    .clicked()
                {
                    state.adapter_name = run.name.clone();
                    out.push(Command::Resume {
                        name: run.name.clone(),
                    });
                }
                if ui
                    .add_enabled(!state.busy(), egui::Button::new("Discard"))
                    .on_hover_text("Deletes the run's checkpoint")
                    .clicked()
                {
                    state.confirm_delete = Some(run.name);
                }
            });
        });
    }
}

fn settings_grid(ui: &mut Ui, state: &mut State) {
    let options = &mut state.train;
    egui::Grid::new("train-settings")
        .num_columns(3)
        .striped(true)
        .show(ui, |ui| {
            widgets::setting(ui, explain::RANK_LABEL, explain::RANK, |ui| {
                ui.add(egui::DragValue::new(&mut options.rank).range(1..=256));
            });
            widgets::setting(ui, explain::ALPHA_LABEL, explain::ALPHA, |ui| {
                ui.add(egui::DragValue::new(&mut options.alpha).range(1.0..=512.0));
            });
            widgets::setting(ui, explain::DROPOUT_LABEL, explain::DROPOUT, |ui| {
                ui.add(
                    egui::DragValue::new(&mut options.lora_dropout)
                        .range(0.0..=0.5)
                        .speed(0.01),
                );
            });
            widgets::setting(ui, explain::TARGETS_LABEL, explain::TARGETS, |ui| {
                ui.horizontal(|ui| {
                    for module in TARGETS {
                        let mut on = options.targets.iter().any(|t| t == module);
                        if ui.checkbox(&mut on, module).changed() {
                            options.targets.retain(|t| t != module);
                            if on {
                                options.targets.push(module.to_string());
                            }
                        }
                    }
                });
            });
            widgets::setting(
                ui,
                explain::LEARNING_RATE_LABEL,
                explain::LEARNING_RATE,
                |ui| {
                    ui.add(
                        egui::DragValue::new(&mut options.learning_rate)
                            .range(1e-6..=1e-1)
                            .speed(1e-5)
                            .max_decimals(6),
                    );
                },
            );
            widgets::setting(ui, explain::BATCH_LABEL, explain::BATCH, |ui| {
                ui.add(egui::DragValue::new(&mut options.batch_size).range(1..=64));
            });
            widgets::setting(ui, explain::EPOCHS_LABEL, explain::EPOCHS, |ui| {
                ui.add(egui::DragValue::new(&mut options.epochs).range(1..=50));
            });
            widgets::setting(ui, explain::MAX_STEPS_LABEL, explain::MAX_STEPS, |ui| {
                let mut steps = options.max_steps.unwrap_or(0);
                ui.add(egui::DragValue::new(&mut steps).range(0..=1_000_000));
                options.max_steps = (steps > 0).then_some(steps);
            });
            widgets::setting(
                ui,
                explain::SOURCE_LENGTH_LABEL,
                explain::SOURCE_LENGTH,
                |ui| {
                    ui.add(egui::DragValue::new(&mut options.max_source_length).range(16..=2048));
                },
            );
            widgets::setting(ui, explain::EVAL_EVERY_LABEL, explain::EVAL_EVERY, |ui| {
                every_steps(ui, &mut options.eval_every);
            });
            widgets::setting(
                ui,
                explain::CHECKPOINT_EVERY_LABEL,
                explain::CHECKPOINT_EVERY,
                |ui| {
                    every_steps(ui, &mut options.checkpoint_every);
                },
            );
            widgets::setting(ui, explain::SEED_LABEL, explain::SEED, |ui| {
                ui.add(egui::DragValue::new(&mut options.seed));
            });
        });
}

/// A field for "every this many steps" (at the end only when unset).
fn every_steps(ui: &mut Ui, every: &mut Option<usize>) {
    let mut steps = every.unwrap_or(0);
    ui.add(egui::DragValue::new(&mut steps).range(0..=10_000))
        .on_hover_text("0: only at the end");
    *every = (steps > 0).then_some(steps);
}

/// Asks for a new estimate whenever the settings, model or data changed.
fn ask_for_estimate(state: &mut State, out: &mut Vec<Command>) {
    let ready = state.model.is_some() && state.train_examples() > 0;
    if ready && !state.busy() && state.estimate_asked.as_ref() != Some(&state.train) {
        state.estimate_asked = Some(state.train.clone());
        out.push(Command::EstimateTraining {
            settings: state.train.clone(),
        });
    }
}

fn progress(ui: &mut Ui, view: &TrainingView) {
    for warning in &view.warnings {
        ui.label(RichText::new(warning).color(ui.visuals().warn_fg_color));
    }
    let Some(last) = view.points.last() else {
        ui.label(format!("\"{}\": preparing…", view.name));
        return;
    };
    let mut line = format!(
        "\"{}\": step {} of {} · loss {:.3}",
        view.name, last.step, view.total_steps, last.loss
    );
    if let Some(validation) = view.points.iter().rev().find_map(|p| p.validation_loss) {
        line += &format!(" · validation loss {validation:.3}");
    }
    if view.finished {
        line += " · finished and saved in the library: let it draft the rest on Review (Ctrl+3), evaluate it (Ctrl+5) or summarize with it (Ctrl+6)";
    } else if let Some(step) = view.stopped_at {
        line += &format!(" · paused at step {step}: resume any time");
    } else {
        line += &format!(" · {} left", widgets::duration(last.eta_s));
    }
    ui.label(RichText::new(line).strong());
}

fn loss_plot(ui: &mut Ui, view: &TrainingView) {
    let training: PlotPoints = view
        .points
        .iter()
        .map(|p| [p.step as f64, p.loss])
        .collect();
    let validation: PlotPoints = view
        .points
        .iter()
        .filter_map(|p| p.validation_loss.map(|v| [p.step as f64, v]))
        .collect();
    Plot::new("loss")
        .height(260.0)
        .legend(Legend::default())
        .x_axis_label("training step")
        .y_axis_label("loss (lower is better)")
        .include_y(0.0)
        .show(ui, |plot| {
            plot.line(Line::new("training loss", training).width(2.0));
            plot.line(Line::new("validation loss", validation).width(2.0));
        });
}

/// The loss curve read in one sentence, once there are enough points to tell.
pub fn loss_reading(points: &[TrainPoint]) -> Option<String> {
    if points.len() < 4 {
        return None;
    }
    let quarter = points.len() / 4;
    let mean = |part: &[TrainPoint]| part.iter().map(|p| p.loss).sum::<f64>() / part.len() as f64;
    let (first, last) = (
        mean(&points[..quarter]),
        mean(&points[points.len() - quarter..]),
    );
    let validation: Vec<f64> = points.iter().filter_map(|p| p.validation_loss).collect();
    let best = validation.iter().copied().fold(f64::INFINITY, f64::min);
    let falling = last < first * 0.95;
    let reading = match validation.last() {
        Some(&now) if validation.len() >= 3 && falling && now > best * 1.05 => {
            "The training loss falls but the held-out loss has started to rise: it begins to \
             memorize the training dialogues, and a shorter run may summarize better."
        }
        _ if falling => {
            "The loss is going down: it is learning your summaries (the curve flattens as it \
             has learned what it can)."
        }
        _ if last > first * 1.05 => {
            "The loss is going up: learning is unsteady; a smaller step size (Advanced \
             settings) usually helps."
        }
        _ => "The loss is flat so far: it has little left to learn, or needs more steps.",
    };
    Some(reading.to_string())
}
