//! What the app knows and what the user has typed, apart from drawing: each screen reads and edits
//! it, and engine events update it through [`State::apply`].

use std::collections::BTreeSet;

use crate::plain::{self, Explanation};
use crate::presets::Preset;
use crate::protocol::{
    AdapterEntry, Columns, Command, DEFAULT_PROMPT, DataRequest, DataSummary, DatasetChange,
    DatasetEntry, DatasetView, Device, Estimate, Evaluation, Event, InterruptedRun, Machine,
    ModelInfo, Outcome, PickPurpose, Problem, ReviewItem, ReviewStatus, Settings, StyleChoice,
    SummaryResult, Task, TrainPoint, TrainSettings,
};

/// The long task now running, as the status bar shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub task: Task,
    pub stage: String,
    pub done: u64,
    pub total: u64,
    /// Seconds left, when the task can tell.
    pub eta_s: Option<f64>,
}

/// The dataset under review and the summary being typed for the dialogue the review is at.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub view: DatasetView,
    /// The text in the summary box; it is saved when accepted.
    pub text: String,
}

impl Review {
    pub fn new(view: DatasetView) -> Self {
        let mut review = Self {
            view,
            text: String::new(),
        };
        review.text = review.shown_summary();
        review
    }

    pub fn name(&self) -> &str {
        &self.view.entry.name
    }

    pub fn position(&self) -> usize {
        self.view.position
    }

    pub fn current(&self) -> Option<&ReviewItem> {
        self.view.items.get(self.view.position)
    }

    /// What the summary box shows for the current dialogue: its accepted summary or draft.
    fn shown_summary(&self) -> String {
        self.current()
            .and_then(|i| i.summary.clone())
            .unwrap_or_default()
    }

    /// Moves to dialogue `index`; what was typed and not accepted is let go.
    pub fn go_to(&mut self, index: usize) {
        self.view.position = index.min(self.view.items.len().saturating_sub(1));
        self.text = self.shown_summary();
    }

    /// The next dialogue after the current one that nobody has decided on, else the next one.
    pub fn next_to_review(&self) -> usize {
        let count = self.view.items.len();
        let position = self.view.position;
        (1..count)
            .map(|step| (position + step) % count)
            .find(|&i| self.view.items[i].status == ReviewStatus::Pending)
            .unwrap_or((position + 1).min(count.saturating_sub(1)))
    }

    /// Takes in changed dialogues; the box follows a new draft of the current one unless the
    /// person has typed in it.
    fn apply(&mut self, change: DatasetChange) {
        let untouched = self.text == self.shown_summary();
        for (index, item) in change.items {
            if let Some(slot) = self.view.items.get_mut(index) {
                *slot = item;
            }
        }
        self.view.entry = change.entry;
        self.view.rounds = change.rounds;
        if untouched {
            self.text = self.shown_summary();
        }
    }
}

/// A failure the user must see, until dismissed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The work it stopped; none for a quick action.
    pub task: Option<Task>,
    pub problem: Problem,
    /// The command to send again for Retry.
    pub retry: Option<Command>,
    pub show_details: bool,
}

impl Failure {
    pub fn explanation(&self) -> Explanation {
        plain::explain(self.task, &self.problem)
    }
}

/// A training run as the Train screen shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingView {
    pub name: String,
    pub total_steps: usize,
    pub points: Vec<TrainPoint>,
    pub warnings: Vec<String>,
    /// Set when the run stopped early and can be resumed.
    pub stopped_at: Option<usize>,
    pub finished: bool,
}

pub struct State {
    pub ready: bool,
    pub settings: Settings,
    pub machine: Machine,
    /// A failure the user must see, until dismissed.
    pub error: Option<Failure>,
    /// The last thing done worth telling (a file written).
    pub notice: Option<String>,
    /// The last command that started a task, for Retry.
    pub last_task_command: Option<Command>,
    /// The log of failures when asked for: its path and its end.
    pub log: Option<(String, String)>,
    pub running: Option<Running>,

    pub model_source: String,
    pub model: Option<ModelInfo>,
    /// A model size too large for this machine that the person chose to load anyway.
    pub confirm_model: Option<String>,
    /// Whether the app is asking before loading a size too large for this machine.
    pub asking_model: bool,
    /// Launch-time work still under way (reloading the last model and data): its results do
    /// not move the person to another screen.
    pub restoring: usize,

    pub data_paths: String,
    pub columns: Columns,
    pub show_columns: bool,
    pub validation_percent: f64,
    pub data: Option<DataSummary>,
    /// The import under way, and the one whose data is loaded (restored at the next launch).
    pub importing: Option<DataRequest>,
    pub imported: Option<DataRequest>,

    pub train: TrainSettings,
    /// The training settings kept for the next launch: a preset chosen, or a run's.
    pub kept_train: Option<TrainSettings>,
    pub adapter_name: String,
    pub estimate: Option<Estimate>,
    /// The settings the last estimate was asked for.
    pub estimate_asked: Option<TrainSettings>,
    pub training: Option<TrainingView>,
    /// Warnings of a run that has not started yet (the trainer checks the data first).
    pending_warnings: Vec<String>,
    pub interrupted: Vec<InterruptedRun>,

    /// The kinds of summary offered by name (from the engine).
    pub styles: Vec<StyleChoice>,
    pub datasets: Vec<DatasetEntry>,
    pub review: Option<Review>,
    pub new_dataset_name: String,
    /// The prompt new drafts are written with.
    pub review_style: String,
    pub dataset_file: String,
    pub dataset_import: String,
    pub renaming_dataset: Option<(String, String)>,
    pub confirm_delete_dataset: Option<String>,
    /// The next import is a dataset to train on: show Train when it is read.
    pub train_after_import: bool,
    /// A screen a button asked to go to.
    pub requested_screen: Option<crate::screens::Screen>,

    pub eval_limit: usize,
    pub eval_adapters: BTreeSet<String>,
    pub evaluation: Option<Evaluation>,
    pub report_folder: String,

    pub transcript_text: String,
    pub transcript_file: String,
    pub summary: Option<SummaryResult>,
    pub summary_path: String,
    /// The kind of summary asked for; `None` is the adapter's own (or the reference prompt).
    pub summary_style: Option<String>,

    pub library: Vec<AdapterEntry>,
    /// The adapter used for summaries unless the user picks another.
    pub active_adapter: Option<String>,
    pub renaming: Option<(String, String)>,
    pub confirm_delete: Option<String>,
    pub adapter_file: String,
    pub import_path: String,
    /// An import that found its name taken: its path and that name, until the person answers.
    pub import_conflict: Option<(String, String)>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            ready: false,
            settings: Settings::default(),
            machine: Machine::default(),
            error: None,
            notice: None,
            last_task_command: None,
            log: None,
            running: None,
            model_source: "google/flan-t5-base".into(),
            model: None,
            confirm_model: None,
            asking_model: false,
            restoring: 0,
            data_paths: String::new(),
            columns: Columns::default(),
            show_columns: false,
            validation_percent: 10.0,
            data: None,
            importing: None,
            imported: None,
            train: Preset::Balanced.options(0, DEFAULT_PROMPT.to_string()),
            kept_train: None,
            adapter_name: "my-adapter".into(),
            estimate: None,
            estimate_asked: None,
            training: None,
            pending_warnings: Vec::new(),
            interrupted: Vec::new(),
            styles: Vec::new(),
            datasets: Vec::new(),
            review: None,
            new_dataset_name: "my-dialogues".into(),
            review_style: String::new(),
            dataset_file: String::new(),
            dataset_import: String::new(),
            renaming_dataset: None,
            confirm_delete_dataset: None,
            train_after_import: false,
            requested_screen: None,
            eval_limit: 20,
            eval_adapters: BTreeSet::new(),
            evaluation: None,
            report_folder: String::new(),
            transcript_text: String::new(),
            transcript_file: String::new(),
            summary: None,
            summary_path: String::new(),
            summary_style: None,
            library: Vec::new(),
            active_adapter: None,
            renaming: None,
            confirm_delete: None,
            adapter_file: String::new(),
            import_path: String::new(),
            import_conflict: None,
        }
    }
}

impl State {
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    pub fn device(&self) -> Device {
        self.settings.device
    }

    /// Takes in one engine event.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Ready {
                settings,
                machine,
                library,
                interrupted,
                datasets,
                styles,
            } => {
                self.ready = true;
                if self.review_style.is_empty() {
                    self.review_style = styles
                        .first()
                        .map(|s| s.template.clone())
                        .unwrap_or_default();
                }
                self.styles = styles;
                self.datasets = datasets;
                if !settings.last_model.is_empty() {
                    self.model_source = settings.last_model.clone();
                }
                if !settings.export_folder.is_empty() {
                    let folder = settings.export_folder.trim_end_matches('/');
                    self.report_folder = format!("{folder}/report");
                    self.summary_path = format!("{folder}/summary.txt");
                }
                self.settings = settings;
                self.machine = machine;
                self.set_library(library);
                self.interrupted = interrupted;
            }
            Event::TaskStarted { task } => {
                self.error = None;
                self.running = Some(Running {
                    task,
                    stage: task.label().to_string(),
                    done: 0,
                    total: 0,
                    eta_s: None,
                });
            }
            Event::Progress {
                task,
                stage,
                done,
                total,
                eta_s,
            } => {
                self.running = Some(Running {
                    task,
                    stage,
                    done,
                    total,
                    eta_s,
                })
            }
            Event::TaskEnded { task, outcome } => {
                self.running = None;
                if matches!(task, Task::LoadModel | Task::ImportData) {
                    self.restoring = self.restoring.saturating_sub(1);
                }
                if task == Task::ImportData {
                    self.importing = None;
                }
                if task == Task::Train {
                    self.pending_warnings.clear();
                }
                match outcome {
                    Outcome::Done => {}
                    // A stopped training run says so itself: it is paused, not lost.
                    Outcome::Cancelled if task == Task::Train => {}
                    Outcome::Cancelled => {
                        self.notice = Some(format!("{} was stopped.", task.label()));
                    }
                    Outcome::Failed { problem } => self.fail(Some(task), problem),
                }
            }
            Event::ModelLoaded(info) => {
                self.settings.last_model = info.name.clone();
                self.model = Some(info);
                self.estimate = None;
                self.estimate_asked = None;
            }
            Event::DataImported(summary) => {
                // A preset follows the data: a few corrected dialogues get more passes.
                let before = self.data.as_ref().map_or(0, |d| d.train_examples);
                if let Some(preset) = Preset::of(&self.train, before) {
                    self.train =
                        preset.options(summary.train_examples, self.train.prompt_template.clone());
                }
                self.data = Some(summary);
                self.imported = self.importing.take().or(self.imported.take());
                self.estimate = None;
                self.estimate_asked = None;
            }
            Event::Estimate(estimate) => self.estimate = Some(estimate),
            Event::SpeedMeasured(speed) => self.settings.record_speed(speed),
            Event::TrainStarted {
                name,
                first_step,
                total_steps,
            } => {
                // A resumed run keeps the points it had; a new one starts a new plot.
                let keep = self
                    .training
                    .as_ref()
                    .is_some_and(|t| t.name == name && first_step > 0);
                let warnings = std::mem::take(&mut self.pending_warnings);
                if keep {
                    if let Some(view) = self.training.as_mut() {
                        view.stopped_at = None;
                        view.points.retain(|p| p.step <= first_step);
                        view.warnings.extend(warnings);
                    }
                } else {
                    self.training = Some(TrainingView {
                        name: name.clone(),
                        total_steps,
                        warnings,
                        ..TrainingView::default()
                    });
                }
                self.interrupted.retain(|run| run.name != name);
            }
            Event::TrainWarning { message } => {
                let underway = self
                    .training
                    .as_mut()
                    .filter(|v| !v.finished && v.stopped_at.is_none() && !v.points.is_empty());
                match underway {
                    Some(view) => view.warnings.push(message),
                    None => self.pending_warnings.push(message),
                }
            }
            Event::TrainStep(point) => {
                if let Some(view) = self.training.as_mut() {
                    view.total_steps = point.total_steps;
                    view.points.push(point);
                }
            }
            Event::TrainFinished { name, .. } => {
                if let Some(view) = self.training.as_mut() {
                    view.finished = true;
                }
                // The next run gets a name of its own rather than a refusal.
                if self.adapter_name.trim() == name {
                    self.adapter_name = next_name(&name);
                }
                self.eval_adapters.insert(name.clone());
                self.active_adapter = Some(name);
            }
            Event::TrainStopped { name, step } => {
                let total_steps = self.training.as_ref().map_or(0, |t| t.total_steps);
                if let Some(view) = self.training.as_mut() {
                    view.stopped_at = Some(step);
                }
                self.notice = Some(format!(
                    "\"{name}\" is paused at step {step} of {total_steps}: resume it any time on Train."
                ));
                self.interrupted.retain(|run| run.name != name);
                self.interrupted.push(InterruptedRun {
                    name,
                    step,
                    total_steps,
                });
            }
            Event::Evaluated(evaluation) => self.evaluation = Some(evaluation),
            Event::Summary(summary) => self.summary = Some(summary),
            Event::Library { adapters } => self.set_library(adapters),
            Event::AdapterRenamed { name, new_name } => self.rename_adapter(&name, &new_name),
            Event::AdapterExists { path, name } => self.import_conflict = Some((path, name)),
            Event::Interrupted { runs } => self.interrupted = runs,
            Event::Picked { purpose, paths } => self.take_picked(purpose, paths),
            Event::Notice { message } => self.notice = Some(message),
            Event::Error { problem } => self.fail(None, problem),
            Event::Log { path, text } => self.log = Some((path, text)),
            Event::Datasets { datasets } => {
                if self
                    .review
                    .as_ref()
                    .is_some_and(|r| !datasets.iter().any(|d| d.name == r.name()))
                {
                    self.review = None;
                }
                self.datasets = datasets;
            }
            Event::Dataset(view) => {
                // The next dataset gets a name of its own rather than a refusal.
                if self.new_dataset_name.trim() == view.entry.name {
                    self.new_dataset_name = next_name(&view.entry.name);
                }
                self.settings.last_dataset = view.entry.name.clone();
                self.review_style = view.style.clone();
                self.review = Some(Review::new(view));
            }
            Event::DatasetChanged(change) => {
                if let Some(entry) = self
                    .datasets
                    .iter_mut()
                    .find(|d| d.name == change.entry.name)
                {
                    *entry = change.entry.clone();
                }
                if let Some(review) = self
                    .review
                    .as_mut()
                    .filter(|r| r.name() == change.entry.name)
                {
                    review.apply(change);
                }
            }
            // The app acts on it: opening sends commands, which the state cannot.
            Event::OpenRequested(_) => {}
        }
    }

    fn fail(&mut self, task: Option<Task>, problem: Problem) {
        let retry = self
            .last_task_command
            .clone()
            .filter(|command| task.is_some() && command.task() == task);
        self.error = Some(Failure {
            task,
            problem,
            retry,
            show_details: false,
        });
    }

    /// Every choice of the adapter `name` follows it to `new_name`.
    fn rename_adapter(&mut self, name: &str, new_name: &str) {
        if self.active_adapter.as_deref() == Some(name) {
            self.active_adapter = Some(new_name.to_string());
        }
        if self.eval_adapters.remove(name) {
            self.eval_adapters.insert(new_name.to_string());
        }
        if let Some(training) = self.training.as_mut().filter(|t| t.name == name) {
            training.name = new_name.to_string();
        }
        if let Some(summary) = self.summary.as_mut()
            && summary.adapter.as_deref() == Some(name)
        {
            summary.adapter = Some(new_name.to_string());
        }
        if let Some(evaluation) = self.evaluation.as_mut() {
            for run in evaluation.runs.iter_mut().filter(|r| r.label == name) {
                run.label = new_name.to_string();
            }
        }
    }

    fn set_library(&mut self, library: Vec<AdapterEntry>) {
        let known = |name: &String| library.iter().any(|a| &a.name == name);
        self.eval_adapters.retain(known);
        if self.active_adapter.as_ref().is_some_and(|a| !known(a)) {
            self.active_adapter = None;
        }
        self.library = library;
        // The name offered for the next run is a free one.
        while self
            .library
            .iter()
            .any(|a| a.name == self.adapter_name.trim())
        {
            self.adapter_name = next_name(self.adapter_name.trim());
        }
    }

    fn take_picked(&mut self, purpose: PickPurpose, paths: Vec<String>) {
        let Some(first) = paths.first().cloned() else {
            return;
        };
        match purpose {
            PickPurpose::ModelFolder => self.model_source = first,
            PickPurpose::DataFiles => self.data_paths = paths.join("\n"),
            PickPurpose::Transcript => self.transcript_file = first,
            PickPurpose::SaveSummary => self.summary_path = first,
            PickPurpose::ReportFolder => self.report_folder = first,
            PickPurpose::ExportAdapter => self.adapter_file = first,
            PickPurpose::ImportAdapter => self.import_path = first,
            PickPurpose::ExportDataset => self.dataset_file = first,
            PickPurpose::ImportDataset => self.dataset_import = first,
        }
    }

    /// The training dialogues with a summary to learn from.
    pub fn train_examples(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.train_examples)
    }

    /// The label of the style whose template is `template`, or "Your own instruction".
    pub fn style_label(&self, template: &str) -> String {
        self.styles
            .iter()
            .find(|s| s.template == template)
            .map_or_else(|| "Your own instruction".to_string(), |s| s.label.clone())
    }

    /// The data paths as typed: one per line.
    pub fn data_sources(&self) -> Vec<String> {
        self.data_paths
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }
}

/// `name-2` after `name`, `name-3` after `name-2`.
fn next_name(name: &str) -> String {
    match name.rsplit_once('-') {
        Some((stem, number)) if number.parse::<u32>().is_ok_and(|n| n >= 2) => {
            format!("{stem}-{}", number.parse::<u32>().unwrap_or(1) + 1)
        }
        _ => format!("{name}-2"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_finished_name_moves_on_to_the_next() {
        assert_eq!(super::next_name("my-adapter"), "my-adapter-2");
        assert_eq!(super::next_name("my-adapter-2"), "my-adapter-3");
        assert_eq!(super::next_name("run-1"), "run-1-2");
    }
}
