//! The app in a native eframe window (`dialora gui --native`, the fallback where no webview
//! runs), with the engine in this process and the system's file dialogs (rfd), which the Tauri
//! window uses too.

use std::sync::Arc;

use dialora_ui::DialoraApp;
use dialora_ui::protocol::{OpenRequest, PickPurpose, Settings};

use crate::service::{InProcess, ServiceConfig, settings};

/// The window's icon, drawn by `icons/make_icons.sh`.
const ICON: &[u8] = include_bytes!("../../icons/icon-256.png");

/// Opens the window with what the launch asks to open: its model starts loading at once, and its
/// files (adapters, transcripts, data, as the system hands them over) are opened in it. Returns
/// when it is closed (or Ctrl-C), after the running task has stopped safely (training keeps a
/// checkpoint).
pub fn run(open: OpenRequest) -> Result<(), String> {
    let mut config = ServiceConfig::for_this_user();
    config.picker = Some(Arc::new(pick));
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Dialora")
        .with_app_id("dialora")
        .with_inner_size(settings::window_size(&config.home))
        .with_min_inner_size(settings::MIN_WINDOW_SIZE);
    if let Ok(icon) = eframe::icon_data::from_png_bytes(ICON) {
        viewport = viewport.with_icon(icon);
    }
    let options = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    eframe::run_native(
        "Dialora",
        options,
        Box::new(move |creation| {
            // Ctrl-C in the terminal that started the app closes it as the window's close
            // button does.
            let context = creation.egui_ctx.clone();
            let _ = ctrlc::set_handler(move || {
                context.send_viewport_cmd(egui::ViewportCommand::Close);
                context.request_repaint();
            });
            let waker = creation.egui_ctx.clone();
            let service = InProcess::start_waking(config, move || waker.request_repaint());
            let mut app = DialoraApp::new(Box::new(service));
            app.open(open);
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| format!("cannot open the window: {e}"))
}

/// The system dialog for each purpose, opening where the field's path `current` is (with its
/// file name for a save), else in the data folder when one is set.
pub(crate) fn pick(purpose: PickPurpose, current: &str, settings: &Settings) -> Vec<String> {
    let mut dialog = rfd::FileDialog::new();
    let current = std::path::Path::new(current.trim());
    let folder = current
        .parent()
        .filter(|p| p.is_dir())
        .or_else(|| (!settings.data_folder.is_empty()).then(|| settings.data_folder.as_ref()));
    if let Some(folder) = folder {
        dialog = dialog.set_directory(folder);
    }
    let name = |default: &str| {
        current
            .file_name()
            .map_or(default.to_string(), |n| n.to_string_lossy().into_owned())
    };
    let one = |path: Option<std::path::PathBuf>| {
        path.map(|p| vec![p.display().to_string()])
            .unwrap_or_default()
    };
    match purpose {
        PickPurpose::ModelFolder | PickPurpose::ReportFolder => one(dialog.pick_folder()),
        PickPurpose::DataFiles => dialog
            .add_filter(
                "Dialogues",
                &["csv", "tsv", "jsonl", "json", "vtt", "srt", "txt"],
            )
            .pick_files()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.display().to_string())
            .collect(),
        PickPurpose::Transcript => one(dialog
            .add_filter("Transcripts", &["vtt", "srt", "txt"])
            .pick_file()),
        PickPurpose::SaveSummary => one(dialog
            .add_filter("Text", &["txt", "md"])
            .set_file_name(name("summary.txt"))
            .save_file()),
        PickPurpose::ExportAdapter => one(dialog
            .add_filter("Dialora adapter", &["dlora"])
            .set_file_name(name("adapter.dlora"))
            .save_file()),
        PickPurpose::ImportAdapter => one(dialog
            .add_filter("Adapters", &["dlora", "safetensors"])
            .pick_file()),
        PickPurpose::ExportDataset => one(dialog
            .add_filter("Dialogues (JSONL)", &["jsonl"])
            .set_file_name(name("dataset.jsonl"))
            .save_file()),
        PickPurpose::ImportDataset => one(dialog
            .add_filter("Dialogues", &["jsonl", "json", "csv", "tsv"])
            .pick_file()),
    }
}
