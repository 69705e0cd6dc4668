//! Small widgets the screens share: a setting with its explanation, a path field with a Browse
//! button, the kind-of-summary and adapter pickers, the error banner, the delete confirmation,
//! text with the words shared with a reference highlighted, and number and date formatting.

use std::collections::HashSet;

use egui::text::LayoutJob;
use egui::{Color32, RichText, TextFormat, Ui};

use crate::protocol::{AdapterEntry, Command, PickPurpose, StyleChoice};

/// Space between the sections of a screen.
pub const SECTION_GAP: f32 = 10.0;

/// What a person's own instruction starts as: the reference prompt's shape, to edit.
const OWN_INSTRUCTION: &str =
    "Summarize the following conversation for my team in two sentences.\n\n{dialogue}\n\nSummary: ";

/// A labelled setting: the control, then a one-line explanation in a weaker colour.
pub fn setting(ui: &mut Ui, label: &str, explanation: &str, control: impl FnOnce(&mut Ui)) {
    ui.label(label);
    control(ui);
    ui.label(RichText::new(explanation).weak());
    ui.end_row();
}

/// A path typed in or chosen with the system's dialog (through the shell).
pub fn path_field(
    ui: &mut Ui,
    label: &str,
    value: &mut String,
    purpose: PickPurpose,
    out: &mut Vec<Command>,
) {
    path_field_suggesting(ui, label, value, purpose, "", out);
}

/// [`path_field`] whose dialog suggests the file name `suggestion` while the field is empty.
pub fn path_field_suggesting(
    ui: &mut Ui,
    label: &str,
    value: &mut String,
    purpose: PickPurpose,
    suggestion: &str,
    out: &mut Vec<Command>,
) {
    ui.horizontal_wrapped(|ui| {
        let label = ui.label(label);
        let width = (ui.available_width() - 90.0).clamp(160.0, 360.0);
        ui.add(
            egui::TextEdit::singleline(value)
                .desired_width(width)
                .hint_text(suggestion),
        )
        .labelled_by(label.id);
        if ui.button("Browse…").clicked() {
            let current = if value.trim().is_empty() {
                suggestion.to_string()
            } else {
                value.clone()
            };
            out.push(Command::Pick { purpose, current });
        }
    });
}

/// A button that sends `command`: disabled while a task runs or while there is nothing to send.
/// A screen's main action (one a screen) stands out and says in its tooltip that Ctrl+Enter runs
/// it too. A disabled button says why when hovered: add the screen's own reason to the response
/// with `on_disabled_hover_text`.
pub fn command_button(
    ui: &mut Ui,
    label: &str,
    command: Option<Command>,
    busy: bool,
    main: bool,
    out: &mut Vec<Command>,
) -> egui::Response {
    let enabled = command.is_some() && !busy;
    let mut response = if main {
        main_button(ui, label, enabled)
    } else {
        ui.add_enabled(enabled, egui::Button::new(label))
    };
    if busy {
        response = response
            .on_disabled_hover_text("Another task is running: wait for it, or stop it (Esc).");
    }
    if response.clicked() {
        out.extend(command);
    }
    response
}

/// The look of a screen's main action, which Ctrl+Enter runs too.
pub fn main_button(ui: &mut Ui, label: &str, enabled: bool) -> egui::Response {
    let button = egui::Button::new(
        RichText::new(label)
            .strong()
            .color(ui.visuals().strong_text_color()),
    )
    .fill(ui.visuals().selection.bg_fill)
    .min_size(egui::vec2(120.0, 26.0));
    ui.add_enabled(enabled, button).on_hover_text("Ctrl+Enter")
}

/// Why something cannot be done yet, or what it will do, beside its button.
pub fn reason(ui: &mut Ui, text: &str) {
    ui.label(RichText::new(text).weak());
}

/// The kind of summary: a named style or the person's own instruction (a template with
/// `{dialogue}`); `none_label` offers "no choice" (`None`) first, when given.
pub fn style_picker(
    ui: &mut Ui,
    label: &str,
    styles: &[StyleChoice],
    choice: &mut Option<String>,
    none_label: Option<&str>,
) {
    let named = |template: &str| styles.iter().find(|s| s.template == template);
    let own = choice.as_deref().is_some_and(|t| named(t).is_none());
    let shown = match choice.as_deref() {
        None => none_label
            .map(str::to_string)
            .or_else(|| styles.first().map(|s| s.label.clone()))
            .unwrap_or_default(),
        Some(template) => {
            named(template).map_or("Your own instruction".into(), |s| s.label.clone())
        }
    };
    ui.horizontal(|ui| {
        let text = ui.label(label);
        egui::ComboBox::from_id_salt(label)
            .selected_text(shown)
            .width(240.0)
            .show_ui(ui, |ui| {
                if let Some(none) = none_label
                    && ui.selectable_label(choice.is_none(), none).clicked()
                {
                    *choice = None;
                }
                for style in styles {
                    let chosen = choice.as_deref() == Some(style.template.as_str());
                    if ui.selectable_label(chosen, &style.label).clicked() {
                        *choice = Some(style.template.clone());
                    }
                }
                if ui.selectable_label(own, "Your own instruction…").clicked() && !own {
                    *choice = Some(OWN_INSTRUCTION.to_string());
                }
            })
            .response
            .labelled_by(text.id);
    });
    if let Some(template) = choice.as_mut().filter(|_| own) {
        let text = ui.label("Your instruction ({dialogue} is where the conversation goes):");
        ui.add(
            egui::TextEdit::multiline(template)
                .desired_rows(3)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(text.id);
        if !template.contains("{dialogue}") {
            ui.label(
                RichText::new("Put {dialogue} where the conversation goes.")
                    .color(ui.visuals().warn_fg_color),
            );
        }
    }
}

/// The adapter to use, or none (the model alone).
pub fn adapter_picker(
    ui: &mut Ui,
    label: &str,
    library: &[AdapterEntry],
    choice: &mut Option<String>,
) {
    ui.horizontal(|ui| {
        let text = ui.label(label);
        egui::ComboBox::from_id_salt(label)
            .selected_text(choice.clone().unwrap_or_else(|| "The model alone".into()))
            .show_ui(ui, |ui| {
                ui.selectable_value(choice, None, "The model alone");
                for entry in library {
                    ui.selectable_value(choice, Some(entry.name.clone()), &entry.name);
                }
            })
            .response
            .labelled_by(text.id);
    });
}

/// A count in words a person reads at a glance: "67 thousand", "248 million", "2.8 billion".
pub fn count(value: u64) -> String {
    let scaled = |unit: f64, name: &str| {
        let x = value as f64 / unit;
        if x < 10.0 {
            format!("{:.1} {name}", x)
        } else {
            format!("{:.0} {name}", x)
        }
    };
    match value {
        0..1_000 => value.to_string(),
        1_000..1_000_000 => scaled(1e3, "thousand"),
        1_000_000..1_000_000_000 => scaled(1e6, "million"),
        _ => scaled(1e9, "billion"),
    }
}

/// `seconds` since the Unix epoch as a UTC date and time.
pub fn date(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let minutes = seconds % 86_400 / 60;
    // Howard Hinnant's days-to-civil conversion.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}",
        minutes / 60,
        minutes % 60
    )
}

/// Asks before something of the library (an adapter, an interrupted run, a dataset) is deleted
/// for good; `delete` makes the command for its name.
pub fn confirm_delete(
    ui: &mut Ui,
    confirm: &mut Option<String>,
    delete: impl Fn(String) -> Command,
    out: &mut Vec<Command>,
) {
    let Some(name) = confirm.clone() else {
        return;
    };
    egui::Modal::new(egui::Id::unique(("confirm-delete", &name))).show(ui.ctx(), |ui| {
        ui.heading(format!("Delete \"{name}\"?"));
        ui.label("Its folder is removed from the library. This cannot be undone.");
        ui.horizontal(|ui| {
            if ui.button("Delete for good").clicked() {
                out.push(delete(name.clone()));
                *confirm = None;
            }
            if ui.button("Keep it").clicked() {
                *confirm = None;
            }
        });
    });
}

/// A heading with a line under it saying what the screen is for.
pub fn screen_title(ui: &mut Ui, title: &str, purpose: &str) {
    ui.heading(title);
    ui.label(RichText::new(purpose).weak());
    ui.add_space(6.0);
}

fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// `text` with each word that also occurs in `reference` highlighted (what ROUGE counts).
pub fn highlighted(ui: &mut Ui, text: &str, reference: &str) {
    let shared = words(reference);
    let base = TextFormat {
        color: ui.visuals().text_color(),
        ..Default::default()
    };
    let marked = TextFormat {
        background: Color32::from_rgba_unmultiplied(80, 170, 90, 90),
        ..base.clone()
    };
    let mut job = LayoutJob::default();
    let mut start = 0;
    // Alternating runs of word and non-word characters.
    while start < text.len() {
        let is_word = text[start..].starts_with(|c: char| c.is_alphanumeric());
        let end = text[start..]
            .char_indices()
            .find(|(_, c)| c.is_alphanumeric() != is_word)
            .map_or(text.len(), |(i, _)| start + i);
        let piece = &text[start..end];
        let format = if is_word && shared.contains(&piece.to_lowercase()) {
            marked.clone()
        } else {
            base.clone()
        };
        job.append(piece, 0.0, format);
        start = end;
    }
    job.wrap.max_width = ui.available_width();
    ui.label(job);
}

pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// An estimate's duration: "under a minute", or about so many minutes or hours.
pub fn rough_duration(seconds: f64) -> String {
    if seconds < 60.0 {
        "under a minute".to_string()
    } else {
        format!("about {}", duration(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3_538_944 * 4), "14.2 MB");
        assert_eq!(bytes(990_000_000), "990.0 MB");
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(125.0), "2 min 5 s");
        assert_eq!(duration(7300.0), "2 h 1 min");
        assert_eq!(rough_duration(0.4), "under a minute");
        assert_eq!(rough_duration(125.0), "about 2 min 5 s");
        assert_eq!(date(0), "1970-01-01 00:00");
        // Checked against Python's datetime.utcfromtimestamp.
        assert_eq!(date(1_795_950_000), "2026-11-29 11:00");
        assert_eq!(date(951_782_400), "2000-02-29 00:00");
    }
}
