//! The messages between the UI and the engine: commands go in, events come out. They are plain
//! serde types so that the same UI talks to an engine in the same process (natively, and in the
//! tests) or across the desktop shell's bridge (the UI in a webview).

use serde::{Deserialize, Serialize};

/// What the UI asks of the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Sent once at start: the engine answers with [`Event::Ready`].
    Start,
    /// Loads a model: a Hub id (`google/flan-t5-base`) or a local folder.
    LoadModel {
        source: String,
        device: Device,
    },
    /// Reads data files (or [`DIALOGSUM`], downloaded from the Hub) and splits off validation.
    ImportData {
        request: DataRequest,
    },
    /// Asks how long and how much memory training with these settings would take.
    EstimateTraining {
        settings: TrainOptions,
    },
    /// Trains a new adapter `name` on the imported data.
    Train {
        name: String,
        settings: TrainOptions,
    },
    /// Continues an interrupted run from its checkpoint.
    Resume {
        name: String,
    },
    /// Stops the running task at its next safe point (training writes a checkpoint first).
    Cancel,
    /// Evaluates the baseline and each named adapter on the first `limit` validation dialogues.
    Evaluate {
        adapters: Vec<String>,
        limit: usize,
    },
    /// Writes the last evaluation as a report folder (report.json, plots, report.html).
    ExportReport {
        folder: String,
    },
    /// Summarizes a transcript: pasted text, or a file.
    Summarize {
        transcript: Transcript,
        adapter: Option<String>,
    },
    /// Saves text (a summary) to a file.
    SaveText {
        path: String,
        text: String,
    },
    RenameAdapter {
        name: String,
        new_name: String,
    },
    DeleteAdapter {
        name: String,
    },
    /// Writes the adapter as one shareable `.dlora` file.
    ExportAdapter {
        name: String,
        file: String,
    },
    /// Copies an adapter file or a PEFT folder into the library.
    ImportAdapter {
        path: String,
    },
    SaveSettings {
        settings: Settings,
    },
    /// Asks the shell for a native file or folder dialog; answered by [`Event::Picked`].
    Pick {
        purpose: PickPurpose,
    },
}

impl Command {
    /// The long task this command runs on the engine's worker, if any.
    pub fn task(&self) -> Option<Task> {
        match self {
            Command::Start | Command::EstimateTraining { .. } | Command::Cancel => None,
            Command::Pick { .. } => None,
            Command::LoadModel { .. } => Some(Task::LoadModel),
            Command::ImportData { .. } => Some(Task::ImportData),
            Command::Train { .. } | Command::Resume { .. } => Some(Task::Train),
            Command::Evaluate { .. } | Command::ExportReport { .. } => Some(Task::Evaluate),
            Command::Summarize { .. } | Command::SaveText { .. } => Some(Task::Summarize),
            Command::RenameAdapter { .. }
            | Command::DeleteAdapter { .. }
            | Command::ExportAdapter { .. }
            | Command::ImportAdapter { .. } => Some(Task::Library),
            // Written by the shell at once, never queued behind long work.
            Command::SaveSettings { .. } => None,
        }
    }
}

/// Where a transcript comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transcript {
    Text { text: String },
    File { path: String },
}

/// The device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    #[default]
    Auto,
    Cpu,
    Gpu,
}

impl Device {
    pub const ALL: [Device; 3] = [Device::Auto, Device::Cpu, Device::Gpu];

    pub fn label(self) -> &'static str {
        match self {
            Device::Auto => "Automatic",
            Device::Cpu => "CPU",
            Device::Gpu => "GPU",
        }
    }
}

/// The source that means DialogSum from the Hub (its train and validation splits).
pub const DIALOGSUM: &str = "dialogsum";

/// Which dialogues to import and how to split them; a resumed run imports the same again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRequest {
    pub sources: Vec<String>,
    pub columns: Columns,
    /// Share of the dialogues held out for validation; 0 keeps them all for training.
    pub validation_fraction: f64,
    pub seed: u64,
}

/// Column names for tables and JSON; empty means "find it by name".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Columns {
    pub dialogue: String,
    pub summary: String,
    pub id: String,
}

/// The trainer's settings as the app offers them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Module names, e.g. `q`, `v`.
    pub targets: Vec<String>,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub epochs: usize,
    /// Stops after this many steps when set.
    pub max_steps: Option<usize>,
    pub max_source_length: usize,
    /// Validation loss every this many steps.
    pub eval_every: usize,
    /// A checkpoint every this many steps.
    pub checkpoint_every: usize,
    pub seed: u64,
}

/// What the user's files and choices are, kept between launches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub dark_mode: bool,
    pub device: Device,
    /// The model loaded last, loaded again on the next launch's request.
    pub last_model: String,
    /// Where file dialogs open, and where reports and summaries go by default.
    pub data_folder: String,
    pub export_folder: String,
    /// The window's inner size when it was last resized, in points.
    pub window_size: Option<[f32; 2]>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            dark_mode: true,
            device: Device::Auto,
            last_model: String::new(),
            data_folder: String::new(),
            export_folder: String::new(),
            window_size: None,
        }
    }
}

/// Why a dialog was asked for; the answer goes to the field of that purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PickPurpose {
    ModelFolder,
    DataFiles,
    Transcript,
    SaveSummary,
    ReportFolder,
    ExportAdapter,
    ImportAdapter,
}

/// The kinds of long work, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    LoadModel,
    ImportData,
    Train,
    Evaluate,
    Summarize,
    Library,
}

impl Task {
    pub fn label(self) -> &'static str {
        match self {
            Task::LoadModel => "Loading the model",
            Task::ImportData => "Reading the data",
            Task::Train => "Training",
            Task::Evaluate => "Evaluating",
            Task::Summarize => "Summarizing",
            Task::Library => "Updating the adapter library",
        }
    }
}

/// The Tauri command that carries a [`Command`] (its argument `command`) from the webview to the
/// desktop shell.
pub const BRIDGE_COMMAND: &str = "send";
/// The Tauri event that carries each [`Event`] from the desktop shell to the webview.
pub const BRIDGE_EVENT: &str = "dialora:event";

/// What the engine reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Ready {
        settings: Settings,
        machine: Machine,
        library: Vec<AdapterEntry>,
        /// Runs that stopped before their end and can be resumed.
        interrupted: Vec<InterruptedRun>,
    },
    TaskStarted {
        task: Task,
    },
    Progress {
        task: Task,
        stage: String,
        done: u64,
        total: u64,
    },
    /// The task ended; `error` says why when it failed.
    TaskEnded {
        task: Task,
        outcome: Outcome,
    },
    ModelLoaded(ModelInfo),
    DataImported(DataSummary),
    Estimate(Estimate),
    TrainStarted {
        name: String,
        first_step: usize,
        total_steps: usize,
    },
    TrainWarning {
        message: String,
    },
    TrainStep(TrainPoint),
    TrainFinished {
        name: String,
        steps: usize,
        train_loss: f64,
    },
    /// Training stopped at `step` with a checkpoint; [`Command::Resume`] continues it.
    TrainStopped {
        name: String,
        step: usize,
    },
    Evaluated(Evaluation),
    Summary(SummaryResult),
    Library {
        adapters: Vec<AdapterEntry>,
    },
    Interrupted {
        runs: Vec<InterruptedRun>,
    },
    Picked {
        purpose: PickPurpose,
        paths: Vec<String>,
    },
    /// Something done that the user should hear of (a file written).
    Notice {
        message: String,
    },
    /// The system asks the app to open something: from the command line, a second launch, or a
    /// drop on the window.
    OpenRequested(OpenRequest),
}

/// What the system asks the app to open: a model to load, and files (adapters, transcripts, data;
/// absolute paths).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenRequest {
    pub model: Option<String>,
    pub files: Vec<String>,
}

impl OpenRequest {
    pub fn is_empty(&self) -> bool {
        self.model.is_none() && self.files.is_empty()
    }
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Done,
    Cancelled,
    Failed { message: String },
}

/// The machine the engine runs on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Machine {
    pub memory_bytes: u64,
    pub threads: usize,
    /// Whether a GPU backend is compiled in.
    pub gpu: bool,
    /// Where the adapter library lives.
    pub library_folder: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub parameters: u64,
    pub device: String,
}

/// An import's counts, checks and first rows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DataSummary {
    pub sources: Vec<String>,
    pub format: String,
    pub dialogues: usize,
    pub with_summary: usize,
    pub speakers: usize,
    pub train: usize,
    pub validation: usize,
    pub warnings: Vec<String>,
    pub preview: Vec<PreviewRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewRow {
    pub id: String,
    pub dialogue: String,
    pub summary: String,
}

/// A training run's expected cost, before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The settings it is for.
    pub settings: TrainOptions,
    pub steps: usize,
    pub tokens: u64,
    pub seconds: f64,
    pub memory_bytes: u64,
    /// Whether the estimate fits in the machine's memory.
    pub fits: bool,
}

/// One optimizer step for the loss plot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainPoint {
    pub step: usize,
    pub total_steps: usize,
    pub loss: f64,
    pub validation_loss: Option<f64>,
    pub learning_rate: f64,
    pub elapsed_s: f64,
    pub eta_s: f64,
}

/// The baseline and adapters on the same dialogues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub count: usize,
    pub runs: Vec<RunScores>,
    pub examples: Vec<ExampleRow>,
}

/// The four ROUGE scores, in the order ROUGE-1, ROUGE-2, ROUGE-L, ROUGE-Lsum.
pub type Rouge = [f64; 4];

pub const ROUGE_NAMES: [&str; 4] = ["ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-Lsum"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunScores {
    pub label: String,
    pub loss: f64,
    pub rouge: Rouge,
    /// The 95% bootstrap interval of each mean.
    pub ci95: [[f64; 2]; 4],
}

/// One dialogue with the summary of each run (in the order of `runs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleRow {
    pub id: String,
    pub dialogue: String,
    pub reference: String,
    pub summaries: Vec<String>,
    pub rouge_l: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryResult {
    pub source: String,
    pub adapter: Option<String>,
    pub text: String,
    /// How many windows a long transcript was cut into (1 when it fitted).
    pub windows: usize,
}

/// An adapter in the library.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterEntry {
    pub name: String,
    pub base_model: String,
    pub bytes: u64,
    /// Seconds since the Unix epoch of the last change.
    pub modified: u64,
    pub rank: usize,
    pub targets: Vec<String>,
    /// ROUGE of its last evaluation, when it had one.
    pub rouge: Option<Rouge>,
}

/// A run that stopped before its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterruptedRun {
    pub name: String,
    pub step: usize,
    pub total_steps: usize,
}

/// Memory to train a LoRA adapter on a model of `parameters` f32 weights with batches of
/// `batch_size` DialogSum-sized dialogues: the weights, activations and the gradients through them
/// (measured here at batch 8: flan-t5-small 1.4 GB, flan-t5-base 3.6 GB). The Model screen and the
/// engine's estimate both use it.
pub fn training_memory(parameters: u64, batch_size: usize) -> u64 {
    parameters * 4 * 3 + 62_500_000 * batch_size as u64
}
