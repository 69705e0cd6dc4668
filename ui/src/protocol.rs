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
        #[serde(default)]
        precision: Precision,
    },
    /// Reads data files (or [`DIALOGSUM`], downloaded from the Hub) and splits off validation.
    ImportData {
        request: DataRequest,
    },
    /// Asks how long and how much memory training with these settings would take.
    EstimateTraining {
        settings: TrainSettings,
    },
    /// Trains a new adapter `name` on the imported data.
    Train {
        name: String,
        settings: TrainSettings,
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
    /// Summarizes a transcript: pasted text, or a file. Without a template, the adapter's own is
    /// used, else the reference prompt.
    Summarize {
        transcript: Transcript,
        adapter: Option<String>,
        prompt_template: Option<String>,
    },
    /// Makes a dataset `name` of the imported dialogues, for review; drafts are asked separately.
    CreateDataset {
        name: String,
        style: String,
    },
    /// Drafts a summary with `adapter` (or the model alone) for every dialogue of the dataset not
    /// accepted yet, in the prompt `style`; each batch is saved as it comes.
    DraftDataset {
        name: String,
        adapter: Option<String>,
        style: String,
    },
    /// Opens a dataset for review: answered by [`Event::Dataset`].
    OpenDataset {
        name: String,
    },
    /// Records a person's decision on dialogue `index` and moves the review to `next`; saved at
    /// once.
    Review {
        name: String,
        index: usize,
        decision: Decision,
        next: usize,
    },
    /// Moves the review to dialogue `index` (kept for the next launch).
    ReviewAt {
        name: String,
        index: usize,
    },
    RenameDataset {
        name: String,
        new_name: String,
    },
    DeleteDataset {
        name: String,
    },
    /// Writes the dataset as one DialogSum-shaped JSONL file.
    ExportDataset {
        name: String,
        file: String,
    },
    /// Makes a dataset of a JSONL file (one exported before, or any data file).
    ImportDataset {
        path: String,
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
    /// Copies an adapter file, a PEFT folder or a Hub id's adapter into the library, under the
    /// name its card gives (else its file's); `if_exists` says what to do when that name is
    /// taken.
    ImportAdapter {
        path: String,
        #[serde(default)]
        if_exists: IfExists,
    },
    SaveSettings {
        settings: Settings,
    },
    /// Asks for the end of the log of failures: answered by [`Event::Log`].
    ShowLog,
    /// Asks the shell for a native file or folder dialog; answered by [`Event::Picked`]. The
    /// dialog starts at `current` (the field's path: its folder, and its name for a save).
    Pick {
        purpose: PickPurpose,
        #[serde(default)]
        current: String,
    },
}

impl Command {
    /// Whether it is the review's quick file work, done on a thread of its own so that a review
    /// goes on while the worker drafts.
    pub fn for_review(&self) -> bool {
        matches!(
            self,
            Command::OpenDataset { .. }
                | Command::Review { .. }
                | Command::ReviewAt { .. }
                | Command::RenameDataset { .. }
                | Command::DeleteDataset { .. }
                | Command::ExportDataset { .. }
                | Command::ImportDataset { .. }
        )
    }

    /// The long task this command runs on the engine's worker, if any.
    pub fn task(&self) -> Option<Task> {
        match self {
            Command::Start
            | Command::EstimateTraining { .. }
            | Command::Cancel
            | Command::ShowLog => None,
            Command::Pick { .. } => None,
            Command::LoadModel { .. } => Some(Task::LoadModel),
            Command::ImportData { .. } => Some(Task::ImportData),
            Command::Train { .. } | Command::Resume { .. } => Some(Task::Train),
            Command::Evaluate { .. } | Command::ExportReport { .. } => Some(Task::Evaluate),
            Command::Summarize { .. } | Command::SaveText { .. } => Some(Task::Summarize),
            Command::CreateDataset { .. } | Command::DraftDataset { .. } => Some(Task::Draft),
            // [`Command::for_review`]: quick file work on the review's own thread.
            Command::OpenDataset { .. }
            | Command::Review { .. }
            | Command::ReviewAt { .. }
            | Command::RenameDataset { .. }
            | Command::DeleteDataset { .. }
            | Command::ExportDataset { .. }
            | Command::ImportDataset { .. } => None,
            Command::RenameAdapter { .. }
            | Command::DeleteAdapter { .. }
            | Command::ExportAdapter { .. }
            | Command::ImportAdapter { .. } => Some(Task::Library),
            // Written by the shell at once, never queued behind long work.
            Command::SaveSettings { .. } => None,
        }
    }
}

/// What an import does when the library has an adapter of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfExists {
    /// Nothing yet: [`Event::AdapterExists`] asks the person.
    #[default]
    Ask,
    Replace,
    /// Imported under the next free name.
    KeepBoth,
}

/// What a person decided about a draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The summary as the person left it: the draft, edited or not.
    Accept { text: String },
    /// Not now: the dialogue is drafted again by the next round.
    Skip,
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
/// The source that means the sample conversations bundled with the app ([`crate::samples`]).
pub const SAMPLES: &str = "dialora-samples";

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

/// The trainer's settings (the engine's own type, which the app shows as fields), the prompt of
/// the published recipe, and how a model's weights are held.
pub use dialora_settings::{DEFAULT_PROMPT, Precision, TrainSettings};

/// What the user's files and choices are, kept between launches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub dark_mode: bool,
    pub device: Device,
    /// How the model's weights are held: exact, fast, or fast where this processor gains.
    pub precision: Precision,
    /// The model loaded last, loaded again on the next launch's request.
    pub last_model: String,
    /// Where file dialogs open, and where reports and summaries go by default.
    pub data_folder: String,
    pub export_folder: String,
    /// The window's inner size when it was last resized, in points.
    pub window_size: Option<[f32; 2]>,
    /// The dataset under review, opened again at the next launch.
    pub last_dataset: String,
    /// Whether the welcome was seen (the first launch shows it).
    pub welcomed: bool,
    /// The data imported last, imported again at the next launch (boxed, as the training
    /// settings: the settings travel in events, which stay small).
    pub last_data: Option<Box<DataRequest>>,
    /// The adapter in use, in use again at the next launch.
    pub active_adapter: Option<String>,
    /// The training settings chosen last (a preset or the person's own).
    pub train: Option<Box<TrainSettings>>,
    /// How fast training went on this computer, per model, precision and device: the estimates
    /// of a run's time use it.
    pub speeds: Vec<MeasuredSpeed>,
}

impl Settings {
    /// The training speed measured for `model` held in `precision`, on the GPU or not.
    pub fn speed(&self, model: &str, precision: Precision, gpu: bool) -> Option<&MeasuredSpeed> {
        self.speeds.iter().find(|s| s.is_for(model, precision, gpu))
    }

    /// Keeps `speed`, in place of an earlier one of the same model, precision and device.
    pub fn record_speed(&mut self, speed: MeasuredSpeed) {
        self.speeds
            .retain(|s| !s.is_for(&speed.model, speed.precision, speed.gpu));
        self.speeds.push(speed);
    }
}

/// Training tokens a second that a model reached on this computer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredSpeed {
    /// The model's name as loaded (a Hub id or a folder).
    pub model: String,
    /// How its weights were held: f32 or bf16.
    pub precision: Precision,
    pub gpu: bool,
    pub tokens_per_second: f64,
    /// Where it comes from: a short measurement, or a whole run (its validation and
    /// checkpoints included), which then replaces the measurement.
    pub from_run: bool,
}

impl MeasuredSpeed {
    /// Whether it was measured with `model` held in `precision`, on the GPU or not.
    fn is_for(&self, model: &str, precision: Precision, gpu: bool) -> bool {
        self.model == model && self.precision == precision && self.gpu == gpu
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            dark_mode: true,
            device: Device::Auto,
            precision: Precision::Auto,
            last_model: String::new(),
            data_folder: String::new(),
            export_folder: String::new(),
            window_size: None,
            last_dataset: String::new(),
            welcomed: false,
            last_data: None,
            active_adapter: None,
            train: None,
            speeds: Vec::new(),
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
    ExportDataset,
    ImportDataset,
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
    Draft,
    MeasureSpeed,
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
            Task::Draft => "Drafting summaries",
            Task::MeasureSpeed => "Measuring this computer's training speed",
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
        datasets: Vec<DatasetEntry>,
        /// The kinds of summary offered by name.
        styles: Vec<StyleChoice>,
    },
    TaskStarted {
        task: Task,
    },
    Progress {
        task: Task,
        stage: String,
        done: u64,
        total: u64,
        /// Seconds left, when the task can tell.
        #[serde(default)]
        eta_s: Option<f64>,
    },
    /// The task ended; `error` says why when it failed.
    TaskEnded {
        task: Task,
        outcome: Outcome,
    },
    ModelLoaded(ModelInfo),
    DataImported(DataSummary),
    Estimate(Estimate),
    /// A training speed to keep in the settings.
    SpeedMeasured(MeasuredSpeed),
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
    /// An import found an adapter named `name` in the library already; nothing was changed.
    AdapterExists {
        path: String,
        name: String,
    },
    /// An adapter of the library has a new name; sent before the new [`Event::Library`].
    AdapterRenamed {
        name: String,
        new_name: String,
    },
    Interrupted {
        runs: Vec<InterruptedRun>,
    },
    Datasets {
        datasets: Vec<DatasetEntry>,
    },
    /// A dataset opened for review, whole.
    Dataset(DatasetView),
    /// Dialogues of the open dataset that changed (drafted, accepted, skipped), and its figures.
    DatasetChanged(DatasetChange),
    Picked {
        purpose: PickPurpose,
        paths: Vec<String>,
    },
    /// Something done that the user should hear of (a file written).
    Notice {
        message: String,
    },
    /// A quick command (one that runs as no task) failed.
    Error {
        problem: Problem,
    },
    /// The end of the app's log of failures, as [`Command::ShowLog`] asked.
    Log {
        path: String,
        text: String,
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
    Failed { problem: Problem },
}

/// A failure: what kind it is, which the app words for a person, and the technical line (the
/// command line's message) kept for Details and the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
}

/// The kinds of failure, as a person acts on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A file or folder that should be there is not.
    Missing,
    NoPermission,
    DiskFull,
    /// Something is already where a file would be written.
    Exists,
    /// Reading or writing a file failed otherwise.
    FileFailed,
    /// A file was read, and what is in it cannot be used.
    Invalid,
    /// A setting or a choice cannot be used as it is.
    Settings,
    /// The model hub cannot be reached.
    Offline,
    /// The model hub has no such model, adapter or file.
    NotOnHub,
    /// The model hub answered with an error.
    HubFailed,
    /// The work was stopped before its end.
    Stopped,
    /// A fault inside Dialora.
    Internal,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 12] = [
        ProblemKind::Missing,
        ProblemKind::NoPermission,
        ProblemKind::DiskFull,
        ProblemKind::Exists,
        ProblemKind::FileFailed,
        ProblemKind::Invalid,
        ProblemKind::Settings,
        ProblemKind::Offline,
        ProblemKind::NotOnHub,
        ProblemKind::HubFailed,
        ProblemKind::Stopped,
        ProblemKind::Internal,
    ];
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
    /// How its weights are held: f32 or bf16.
    #[serde(default)]
    pub precision: Precision,
}

/// An import's counts, checks and first rows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DataSummary {
    pub sources: Vec<String>,
    pub format: String,
    pub dialogues: usize,
    /// Dialogues with a summary a person wrote or accepted.
    pub with_summary: usize,
    /// Dialogues whose summary is a draft nobody accepted yet (left out of training).
    pub drafts: usize,
    pub speakers: usize,
    pub train: usize,
    /// Training dialogues with a summary to learn from.
    pub train_examples: usize,
    pub validation: usize,
    pub warnings: Vec<String>,
    pub preview: Vec<PreviewRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewRow {
    pub id: String,
    pub dialogue: String,
    pub summary: String,
    /// Whether the summary is a draft nobody accepted yet.
    #[serde(default)]
    pub draft: bool,
}

/// A training run's expected cost, before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The settings it is for.
    pub settings: TrainSettings,
    pub steps: usize,
    pub tokens: u64,
    /// At the speed measured on this computer; none when the measurement was stopped.
    pub seconds: Option<f64>,
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
    /// The prompt the model was given, `{dialogue}` standing for the transcript.
    pub prompt_template: String,
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
    /// The prompt it was trained with, used with it unless the user picks another.
    #[serde(default)]
    pub prompt_template: Option<String>,
}

/// A kind of summary offered by name: a prompt template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleChoice {
    pub id: String,
    pub label: String,
    pub template: String,
}

/// A dataset in the library, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetEntry {
    pub name: String,
    pub dialogues: usize,
    pub accepted: usize,
    /// Accepted or skipped.
    pub reviewed: usize,
    /// Seconds since the Unix epoch of the last change.
    pub modified: u64,
    /// The JSONL file Train and Evaluate read.
    pub file: String,
}

/// Where a dialogue of a dataset stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    #[default]
    Pending,
    Accepted,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewTurn {
    pub speaker: Option<String>,
    pub text: String,
}

/// One dialogue of a dataset. It is also the dataset file's row: DialogSum-shaped (`id`,
/// `dialogue`, `summary`, with `"draft": true` while the summary is an unreviewed draft) plus what
/// the review needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub id: String,
    pub dialogue: String,
    /// The accepted summary; else the latest draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Whether `summary` is a draft nobody accepted yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draft: bool,
    #[serde(default)]
    pub status: ReviewStatus,
    #[serde(default)]
    pub turns: Vec<ReviewTurn>,
    /// The model's latest draft as it wrote it.
    #[serde(default)]
    pub drafted: Option<String>,
    /// The adapter that wrote it (none: the model alone).
    #[serde(default)]
    pub drafted_by: Option<String>,
    /// The drafting round (1-based) of `drafted`.
    #[serde(default)]
    pub round: Option<usize>,
    /// Words changed from the draft to the accepted summary (word-level edit distance).
    #[serde(default)]
    pub edits: Option<usize>,
}

/// One drafting round of a dataset and how much its drafts had to be changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundFigure {
    pub round: usize,
    /// The adapter that drafted (none: the model alone).
    pub drafted_by: Option<String>,
    pub drafted: usize,
    /// Drafts of this round accepted so far.
    pub accepted: usize,
    /// Mean word-level edits per accepted draft.
    pub mean_edits: Option<f64>,
}

/// A dataset under review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetView {
    pub entry: DatasetEntry,
    /// The prompt drafts are written with.
    pub style: String,
    /// The dialogue the review is at.
    pub position: usize,
    pub items: Vec<ReviewItem>,
    pub rounds: Vec<RoundFigure>,
}

/// What changed in the open dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetChange {
    pub entry: DatasetEntry,
    pub items: Vec<(usize, ReviewItem)>,
    pub rounds: Vec<RoundFigure>,
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
