//! Evaluate: the baseline and chosen adapters on the validation dialogues; ROUGE bars with their
//! 95% intervals, a table per example, summaries side by side with the words they share with the
//! reference highlighted, and the report folder export.

use egui::{Color32, RichText, Ui};
use egui_plot::{Bar, BarChart, Legend, Line, Plot};

use crate::protocol::{Command, Evaluation, PickPurpose, ROUGE_NAMES};
use crate::state::State;
use crate::widgets;

const RUN_COLORS: [Color32; 6] = [
    Color32::from_rgb(140, 140, 150),
    Color32::from_rgb(70, 130, 220),
    Color32::from_rgb(230, 140, 40),
    Color32::from_rgb(80, 170, 90),
    Color32::from_rgb(190, 80, 170),
    Color32::from_rgb(200, 70, 70),
];

pub fn evaluate_command(state: &State) -> Option<Command> {
    let ready = state.model.is_some() && state.data.as_ref().is_some_and(|d| d.with_summary > 0);
    ready.then(|| Command::Evaluate {
        adapters: state.eval_adapters.iter().cloned().collect(),
        limit: state.eval_limit,
    })
}

pub fn show(ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    widgets::screen_title(
        ui,
        "Evaluate",
        "Did it help? Compare the model alone with your adapters on dialogues held out from training.",
    );
    ui.horizontal_wrapped(|ui| {
        ui.label("Dialogues to evaluate:");
        let (available, from) = match &state.data {
            Some(data) if data.validation > 0 => (
                data.validation,
                format!("of the {} held out from training", data.validation),
            ),
            Some(data) => (
                data.train,
                format!(
                    "of the {} training dialogues (none were held out: scores will look better than they are)",
                    data.train
                ),
            ),
            None => (10_000, String::new()),
        };
        ui.add(egui::DragValue::new(&mut state.eval_limit).range(1..=available.max(1)));
        ui.label(RichText::new(from).weak());
    });
    if state.library.is_empty() {
        ui.label(RichText::new("No adapters yet: the model alone is evaluated.").weak());
    } else {
        ui.label("Adapters to compare with the model alone:");
        ui.horizontal_wrapped(|ui| {
            for entry in &state.library {
                let mut on = state.eval_adapters.contains(&entry.name);
                if ui.checkbox(&mut on, &entry.name).changed() {
                    if on {
                        state.eval_adapters.insert(entry.name.clone());
                    } else {
                        state.eval_adapters.remove(&entry.name);
                    }
                }
            }
        });
    }
    let command = evaluate_command(state);
    if command.is_none() {
        ui.label(RichText::new("Load a model and import dialogues with summaries first.").weak());
    }
    widgets::command_button(ui, "Evaluate", command, state.busy(), true, out);
    let Some(evaluation) = &state.evaluation else {
        return;
    };
    ui.separator();
    for line in verdict(evaluation) {
        ui.add(egui::Label::new(RichText::new(line).strong()).wrap());
    }
    if evaluation.count < STEADY_COUNT {
        ui.add(
            egui::Label::new(
                RichText::new(format!(
                    "Only {} dialogues were scored: with so few the figures can change a lot. \
                     {STEADY_COUNT} or more give a steadier answer.",
                    evaluation.count
                ))
                .color(ui.visuals().warn_fg_color),
            )
            .wrap(),
        );
    }
    egui::CollapsingHeader::new("The scores in detail (ROUGE)")
        .default_open(true)
        .show(ui, |ui| {
            ui.add(
                egui::Label::new(
                    RichText::new(
                        "ROUGE counts the words and word sequences a summary shares with the \
                         reference: higher is closer. The thin lines show the range the true \
                         score lies in, 95 times out of 100.",
                    )
                    .weak(),
                )
                .wrap(),
            );
            rouge_chart(ui, evaluation);
            scores_table(ui, evaluation);
        });
    ui.add_space(8.0);
    examples(ui, evaluation);
    ui.add_space(8.0);
    widgets::path_field(
        ui,
        "Report folder:",
        &mut state.report_folder,
        PickPurpose::ReportFolder,
        out,
    );
    let folder = state.report_folder.trim();
    let command = (!folder.is_empty()).then(|| Command::ExportReport {
        folder: folder.to_string(),
    });
    widgets::command_button(ui, "Export report", command, state.busy(), false, out);
}

/// Fewer scored dialogues than this give figures too unsteady to decide on.
const STEADY_COUNT: usize = 20;

/// A sentence per adapter: closer to the references than the model alone, further, or no
/// different beyond chance (their 95% intervals of ROUGE-L overlap).
pub fn verdict(evaluation: &Evaluation) -> Vec<String> {
    const ROUGE_L: usize = 2;
    let Some((baseline, adapters)) = evaluation.runs.split_first() else {
        return Vec::new();
    };
    let percent = |score: f64| format!("{:.0}%", score * 100.0);
    if adapters.is_empty() {
        return vec![format!(
            "The model alone shares {} of the references' wording (ROUGE-L). Train an adapter, \
             then compare it here.",
            percent(baseline.rouge[ROUGE_L])
        )];
    }
    adapters
        .iter()
        .map(|run| {
            let (score, base) = (run.rouge[ROUGE_L], baseline.rouge[ROUGE_L]);
            let [low, high] = run.ci95[ROUGE_L];
            let [base_low, base_high] = baseline.ci95[ROUGE_L];
            let figures = format!("{} against {} (ROUGE-L)", percent(score), percent(base));
            if low > base_high {
                format!(
                    "\"{}\" writes summaries closer to yours than the model alone: {figures}.",
                    run.label
                )
            } else if high < base_low {
                format!(
                    "\"{}\" writes summaries further from yours than the model alone: {figures}; \
                     more training data or the Balanced preset may help.",
                    run.label
                )
            } else {
                format!(
                    "\"{}\" and the model alone are about as close to your summaries ({figures}): \
                     the difference is within chance on these dialogues.",
                    run.label
                )
            }
        })
        .collect()
}

fn rouge_chart(ui: &mut Ui, evaluation: &Evaluation) {
    let runs = evaluation.runs.len().max(1) as f64;
    let width = 0.8 / runs;
    let mut charts = Vec::new();
    let mut whiskers = Vec::new();
    for (r, run) in evaluation.runs.iter().enumerate() {
        let bars = (0..4)
            .map(|m| {
                let x = m as f64 + (r as f64 - (runs - 1.0) / 2.0) * width;
                whiskers.push((x, run.ci95[m]));
                Bar::new(x, run.rouge[m])
                    .width(width * 0.9)
                    .name(format!("{} {}", run.label, ROUGE_NAMES[m]))
            })
            .collect();
        charts.push(BarChart::new(run.label.clone(), bars).color(RUN_COLORS[r % RUN_COLORS.len()]));
    }
    let whisker_color = ui.visuals().text_color();
    Plot::new("rouge")
        .height(240.0)
        .legend(Legend::default())
        .include_y(0.0)
        .include_y(1.0)
        .x_axis_formatter(|mark, _| {
            let index = mark.value.round();
            if (mark.value - index).abs() < 1e-6 && (0.0..4.0).contains(&index) {
                ROUGE_NAMES[index as usize].to_string()
            } else {
                String::new()
            }
        })
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .show(ui, |plot| {
            for chart in charts {
                plot.bar_chart(chart);
            }
            for (x, [low, high]) in whiskers {
                plot.line(
                    Line::new("", vec![[x, low], [x, high]])
                        .color(whisker_color)
                        .width(1.5),
                );
            }
        });
}

fn scores_table(ui: &mut Ui, evaluation: &Evaluation) {
    egui::Grid::new("scores").striped(true).show(ui, |ui| {
        ui.label(RichText::new("Run").strong());
        ui.label(RichText::new("Loss").strong())
            .on_hover_text("How unlikely the references are to the model: lower is better");
        for name in ROUGE_NAMES {
            ui.label(RichText::new(name).strong());
        }
        ui.end_row();
        for run in &evaluation.runs {
            ui.label(&run.label);
            ui.label(format!("{:.3}", run.loss));
            for m in 0..4 {
                ui.label(format!("{:.3}", run.rouge[m]))
                    .on_hover_text(format!(
                        "95% interval {:.3} to {:.3}",
                        run.ci95[m][0], run.ci95[m][1]
                    ));
            }
            ui.end_row();
        }
    });
}

fn examples(ui: &mut Ui, evaluation: &Evaluation) {
    let id = ui.scope_id().with("example");
    let mut selected: usize = ui.data(|d| d.get_temp(id)).unwrap_or(0);
    ui.label(RichText::new("Per example (ROUGE-L); pick one to read it").strong());
    egui::ScrollArea::vertical()
        .id_salt("examples")
        .max_height(160.0)
        .show(ui, |ui| {
            egui::Grid::new("examples-grid")
                .striped(true)
                .show(ui, |ui| {
                    ui.label(RichText::new("Id").strong());
                    for run in &evaluation.runs {
                        ui.label(RichText::new(&run.label).strong());
                    }
                    ui.end_row();
                    for (index, example) in evaluation.examples.iter().enumerate() {
                        if ui
                            .selectable_label(selected == index, &example.id)
                            .clicked()
                        {
                            selected = index;
                        }
                        for score in &example.rouge_l {
                            ui.label(format!("{score:.3}"));
                        }
                        ui.end_row();
                    }
                });
        });
    ui.data_mut(|d| d.insert_temp(id, selected));
    let Some(example) = evaluation.examples.get(selected) else {
        return;
    };
    ui.add_space(6.0);
    let columns = 2 + evaluation.runs.len();
    ui.columns(columns, |columns| {
        let left = egui::Layout::top_down(egui::Align::Min);
        columns[0].with_layout(left, |ui| {
            ui.label(RichText::new("Dialogue").strong());
            ui.label(&example.dialogue);
        });
        columns[1].with_layout(left, |ui| {
            ui.label(RichText::new("Reference").strong());
            ui.label(&example.reference);
        });
        for (r, run) in evaluation.runs.iter().enumerate() {
            columns[2 + r].with_layout(left, |ui| {
                ui.label(RichText::new(&run.label).strong());
                if let Some(summary) = example.summaries.get(r) {
                    widgets::highlighted(ui, summary, &example.reference);
                }
            });
        }
    });
    ui.label(RichText::new("Highlighted: words the summary shares with the reference.").weak());
}
