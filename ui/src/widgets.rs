//! Small widgets the screens share: a setting with its explanation, a path field with a Browse
//! button, the error banner, text with the words shared with a reference highlighted, and number
//! formatting.

use std::collections::HashSet;

use egui::text::LayoutJob;
use egui::{Color32, RichText, TextFormat, Ui};

use crate::protocol::{Command, PickPurpose};

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
    ui.horizontal(|ui| {
        let label = ui.label(label);
        ui.add(egui::TextEdit::singleline(value).desired_width(360.0))
            .labelled_by(label.id);
        if ui.button("Browse…").clicked() {
            out.push(Command::Pick { purpose });
        }
    });
}

/// A button that sends `command`: disabled while a task runs or while there is nothing to send.
/// A screen's main action says in its tooltip that Ctrl+Enter runs it too.
pub fn command_button(
    ui: &mut Ui,
    label: impl Into<egui::WidgetText>,
    command: Option<Command>,
    busy: bool,
    main: bool,
    out: &mut Vec<Command>,
) {
    let mut response = ui.add_enabled(command.is_some() && !busy, egui::Button::new(label));
    if main {
        response = response.on_hover_text("Ctrl+Enter");
    }
    if response.clicked() {
        out.extend(command);
    }
}

/// Asks before an adapter (or an interrupted run) is deleted for good.
pub fn confirm_delete(ui: &mut Ui, confirm: &mut Option<String>, out: &mut Vec<Command>) {
    let Some(name) = confirm.clone() else {
        return;
    };
    egui::Modal::new(egui::Id::unique("confirm-delete")).show(ui.ctx(), |ui| {
        ui.heading(format!("Delete \"{name}\"?"));
        ui.label("Its folder is removed from the library. This cannot be undone.");
        ui.horizontal(|ui| {
            if ui.button("Delete for good").clicked() {
                out.push(Command::DeleteAdapter { name: name.clone() });
                *confirm = None;
            }
            if ui.button("Keep it").clicked() {
                *confirm = None;
            }
        });
    });
}

/// The engine's last error, in red, until dismissed.
pub fn error_banner(ui: &mut Ui, error: &mut Option<String>) {
    let Some(message) = error.clone() else {
        return;
    };
    egui::Frame::new()
        .fill(ui.visuals().error_fg_color.linear_multiply(0.15))
        .inner_margin(8.0)
        .corner_radius(4.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.add(
                egui::Label::new(RichText::new(&message).color(ui.visuals().error_fg_color)).wrap(),
            );
            if ui.small_button("Dismiss").clicked() {
                *error = None;
            }
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
    }
}
