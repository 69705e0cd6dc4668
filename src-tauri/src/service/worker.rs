//! The worker thread: the loaded model, the imported data and the last evaluation, and what each
//! command does with them. One task runs at a time; each ends with a `TaskEnded` event that
//! carries the engine's one-line error when it failed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use dialora_engine::data::{self, Dialogue, ImportOptions, Speakers, Turn};
use dialora_engine::eval::{self, EvalSettings};
use dialora_engine::fsutil::write_atomically;
use dialora_engine::long_input::LongInput;
use dialora_engine::model::{DeviceChoice, LoadedModel, ModelFiles, Precision};
use dialora_engine::summarize::{STYLES, SummarizeSettings, Summarizer};
use dialora_engine::task::{Cancel, NoProgress};
use dialora_engine::train::{self, TrainData, TrainEvent, TrainRequest, TrainSettings};
use dialora_engine::{Error, Result, adapter, hub, long_input, report};
use dialora_ui::presets::AppWords;
use dialora_ui::protocol::{
    Columns, Command, DIALOGSUM, DataRequest, DataSummary, Device, Estimate, Evaluation, Event,
    ExampleRow, Machine, MeasuredSpeed, ModelInfo, Outcome, PreviewRow, Problem, ProblemKind,
    RunScores, SAMPLES, Settings, StyleChoice, SummaryResult, Task, TrainPoint, Transcript,
    training_memory,
};
use dialora_ui::samples;

use super::datasets::Datasets;
use super::library::{Imported, Library, RunRecord};
use super::problems::{self, Log};
use super::{Emitter, ServiceConfig, settings};

const PREVIEW_ROWS: usize = 20;

struct Model {
    summarizer: Summarizer,
    files: ModelFiles,
    parameters: u64,
}

/// Imported data and how it was asked for (a resumed run must see the same).
struct Data {
    train: TrainData,
    validation: Option<TrainData>,
    request: DataRequest,
}

struct LastEvaluation {
    dialogues: Vec<Dialogue>,
    runs: Vec<eval::Run>,
    data: String,
}

pub struct Worker {
    config: ServiceConfig,
    emitter: Emitter,
    /// The running command's own cancel flag.
    cancel: Cancel,
    shutdown: Cancel,
    library: Library,
    /// Shared with the review's own thread.
    datasets: Arc<Mutex<Datasets>>,
    settings: Settings,
    model: Option<Model>,
    data: Option<Data>,
    /// See [`Worker::example_lengths`], with the prompt they were counted with; cleared when the
    /// model or the data change.
    example_lengths: Option<(String, Vec<(usize, usize)>)>,
    evaluation: Option<LastEvaluation>,
    log: Log,
    /// Whether this computer's training speed was measured, or tried, with the loaded model: a
    /// measurement stopped or failed is not tried again until another model is loaded.
    speed_tried: bool,
}

impl Worker {
    pub fn new(
        config: ServiceConfig,
        emitter: Emitter,
        shutdown: Cancel,
        datasets: Arc<Mutex<Datasets>>,
    ) -> Self {
        let library = Library::new(&config.home);
        let log = Log::new(&config.home);
        Self {
            config,
            emitter,
            cancel: Cancel::new(),
            shutdown,
            library,
            datasets,
            settings: Settings::default(),
            model: None,
            data: None,
            example_lengths: None,
            evaluation: None,
            log,
            speed_tried: false,
        }
    }

    pub fn serve(mut self, commands: Receiver<(Command, Cancel)>) {
        while let Ok((command, cancel)) = commands.recv() {
            if self.shutdown.is_cancelled() {
                break;
            }
            self.cancel = cancel;
            // Cancelled while it waited its turn: it ends as cancelled without starting.
            match command.task() {
                Some(task) if self.cancel.is_cancelled() => {
                    self.task(task, |_| Err(Error::Cancelled))
                }
                _ => self.handle(command),
            }
            // Done with its flag: the sender forgets it.
            self.cancel = Cancel::new();
        }
    }

    fn emit(&self, event: Event) {
        self.emitter.emit(event);
    }

    fn handle(&mut self, command: Command) {
        match (command.task(), command) {
            (_, Command::Start) => self.start(),
            // The shell writes them; the worker keeps the device for resumed runs.
            (_, Command::SaveSettings { settings }) => self.settings = settings,
            (_, Command::EstimateTraining { settings }) => {
                // The first estimate with a model measures how fast it trains here, once.
                if !self.speed_tried && self.speed().is_none() && settings.validate().is_ok() {
                    self.task(Task::MeasureSpeed, |w| w.measure_speed(&settings));
                }
                // Asked for without a click: a failure shows no estimate and stops nothing.
                let estimate = catch_unwind(AssertUnwindSafe(|| self.estimate(&settings)));
                if let Ok(Ok(estimate)) = estimate {
                    self.emit(Event::Estimate(estimate));
                }
            }
            (Some(task), command) => self.task(task, |w| w.run(command)),
            // Cancel and dialogs are handled by the sender, at once.
            (None, _) => {}
        }
    }

    /// The work of a command that runs as a task.
    fn run(&mut self, command: Command) -> Result<()> {
        match command {
            Command::LoadModel {
                source,
                device,
                precision,
            } => self.load_model(&source, device, precision),
            Command::ImportData { request } => self.import_data(request),
            Command::Train { name, settings } => self.start_training(&name, settings),
            Command::Resume { name } => self.resume_training(&name),
            Command::Evaluate { adapters, limit } => self.evaluate(&adapters, limit),
            Command::ExportReport { folder } => self.export_report(Path::new(&folder)),
            Command::Summarize {
                transcript,
                adapter,
                prompt_template,
            } => self.summarize(transcript, adapter, prompt_template),
            Command::CreateDataset { name, style } => self.create_dataset(&name, &style),
            Command::DraftDataset {
                name,
                adapter,
                style,
            } => self.draft_dataset(&name, adapter, &style),
            Command::SaveText { path, text } => {
                write_atomically(Path::new(&path), text.as_bytes())?;
                self.notice(format!("Saved to {path}"));
                Ok(())
            }
            Command::RenameAdapter { name, new_name } => {
                self.library.rename(&name, &new_name)?;
                let new_name = new_name.trim().to_string();
                // A report exported later names the adapter as it is called now.
                if let Some(evaluation) = self.evaluation.as_mut() {
                    for run in evaluation.runs.iter_mut().filter(|r| r.label == name) {
                        run.label = new_name.clone();
                    }
                }
                self.emit(Event::AdapterRenamed { name, new_name });
                self.emit_library();
                Ok(())
            }
            Command::DeleteAdapter { name } => {
                self.library.delete(&name)?;
                self.emit_library();
                Ok(())
            }
            Command::ExportAdapter { name, file } => {
                self.library.export(&name, Path::new(&file))?;
                self.notice(format!("\"{name}\" exported to {file}"));
                Ok(())
            }
            Command::ImportAdapter { path, if_exists } => {
                let progress = self.emitter.progress(Task::Library);
                match self
                    .library
                    .import(Path::new(&path), if_exists, &progress, &self.cancel)?
                {
                    Imported::Added(name) => {
                        self.emit_library();
                        self.notice(format!("Imported as \"{name}\""));
                    }
                    Imported::Exists(name) => self.emit(Event::AdapterExists { path, name }),
                }
                Ok(())
            }
            // Handled by the sender at once, or by the review's thread.
            Command::Start
            | Command::EstimateTraining { .. }
            | Command::SaveSettings { .. }
            | Command::Cancel
            | Command::Pick { .. }
            | Command::ShowLog
            | Command::OpenDataset { .. }
            | Command::Review { .. }
            | Command::ReviewAt { .. }
            | Command::RenameDataset { .. }
            | Command::DeleteDataset { .. }
            | Command::ExportDataset { .. }
            | Command::ImportDataset { .. } => Ok(()),
        }
    }

    fn notice(&self, message: String) {
        self.emit(Event::Notice { message });
    }

    /// Runs `work` as `task`: started and ended events around it; errors (and bugs) end it as a
    /// message, never as a crash of the app.
    fn task(&mut self, task: Task, work: impl FnOnce(&mut Self) -> Result<()>) {
        self.emit(Event::TaskStarted { task });
        let outcome = match catch_unwind(AssertUnwindSafe(|| work(self))) {
            Ok(Ok(())) => Outcome::Done,
            Ok(Err(Error::Cancelled)) => Outcome::Cancelled,
            Ok(Err(error)) => Outcome::Failed {
                problem: problems::problem(&error, error.worded(&AppWords)),
            },
            Err(_) => Outcome::Failed {
                problem: Problem {
                    kind: ProblemKind::Internal,
                    detail: format!("{} stopped on an internal error", task.label()),
                },
            },
        };
        if let Outcome::Failed { problem } = &outcome {
            self.log.record(task.label(), problem);
        }
        self.emit(Event::TaskEnded { task, outcome });
    }

    fn start(&mut self) {
        let (settings, warning) = settings::load(&self.config.home);
        self.settings = settings;
        let machine = Machine {
            memory_bytes: self.config.memory_bytes,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            gpu: cfg!(any(feature = "cuda", feature = "metal")),
            library_folder: self.library.root().display().to_string(),
        };
        self.emit(Event::Ready {
            settings: self.settings.clone(),
            machine,
            library: self.library.entries(),
            interrupted: self.library.interrupted(),
            datasets: self.datasets().entries(),
            styles: STYLES
                .iter()
                .map(|style| StyleChoice {
                    id: style.id.to_string(),
                    label: style.label.to_string(),
                    template: style.template.to_string(),
                })
                .collect(),
        });
        if let Some(message) = warning {
            self.emit(Event::Notice { message });
        }
    }

    fn datasets(&self) -> MutexGuard<'_, Datasets> {
        self.datasets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit_library(&self) {
        self.emit(Event::Library {
            adapters: self.library.entries(),
        });
        self.emit(Event::Interrupted {
            runs: self.library.interrupted(),
        });
    }

    fn load_model(&mut self, source: &str, device: Device, precision: Precision) -> Result<()> {
        if source.trim().is_empty() {
            return Err(Error::settings("choose a model or a model folder first"));
        }
        let progress = self.emitter.progress(Task::LoadModel);
        let files = hub::resolve_model(source, &progress, &self.cancel)?;
        let device = match device {
            Device::Auto => DeviceChoice::Auto,
            Device::Cpu => DeviceChoice::Cpu,
            Device::Gpu if cfg!(feature = "metal") => DeviceChoice::Metal,
            Device::Gpu => DeviceChoice::Cuda,
        }
        .device()?;
        // The old model goes first: two large models need not fit in memory together.
        self.model = None;
        self.evaluation = None;
        self.example_lengths = None;
        self.speed_tried = false;
        let model = LoadedModel::load(&files, source, &device, precision)?;
        let parameters = model
            .t5
            .named_weights()
            .iter()
            .map(|(_, w)| w.elem_count() as u64)
            .sum();
        let info = ModelInfo {
            name: source.to_string(),
            parameters,
            device: format!("{:?}", device.location()).to_lowercase(),
            precision: model.precision,
        };
        self.model = Some(Model {
            summarizer: Summarizer::new(model),
            files,
            parameters,
        });
        self.emit(Event::ModelLoaded(info));
        Ok(())
    }

    /// With no model loaded, loads the base model `adapter` names (an adapter shared from the
    /// Hub brings its own), so that choosing an adapter is enough.
    fn ensure_model(&mut self, adapter: Option<&str>) -> Result<()> {
        if self.model.is_some() {
            return Ok(());
        }
        match adapter.and_then(|name| self.library.base_model(name)) {
            Some(base) => self.load_model(&base, self.settings.device, self.settings.precision),
            None => Err(Error::settings("load a model first (the Model screen)")),
        }
    }

    fn model(&self) -> Result<&Model> {
        self.model
            .as_ref()
            .ok_or_else(|| Error::settings("load a model first (the Model screen)"))
    }

    fn data(&self) -> Result<&Data> {
        self.data
            .as_ref()
            .ok_or_else(|| Error::settings("import dialogues first (the Data screen)"))
    }

    /// The file a data source names: the bundled samples are written into the app's home
    /// first (where a person can open them); any other source is itself.
    fn local_source(&self, source: &str) -> Result<String> {
        if source != SAMPLES {
            return Ok(source.to_string());
        }
        let path = self
            .config
            .home
            .join("samples")
            .join(samples::CONVERSATIONS_FILE);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(samples::CONVERSATIONS) {
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder).map_err(|e| Error::file(folder, e))?;
            }
            write_atomically(&path, samples::CONVERSATIONS.as_bytes())?;
        }
        Ok(path.display().to_string())
    }

    fn import_data(&mut self, request: DataRequest) -> Result<()> {
        if request.sources.is_empty() {
            return Err(Error::settings("choose data files first"));
        }
        let sources = request
            .sources
            .iter()
            .map(|source| self.local_source(source))
            .collect::<Result<Vec<String>>>()?;
        let options = import_options(&request.columns);
        let progress = self.emitter.progress(Task::ImportData);
        let mut warnings = Vec::new();
        let mut read = |spec: &str, split: &str| -> Result<(TrainData, String)> {
            let imported =
                hub::import_data(Path::new(spec), split, &options, &progress, &self.cancel)?;
            warnings.extend(imported.warnings.iter().map(|w| w.worded(&AppWords)));
            let format = format!("{:?}", imported.format).to_uppercase();
            Ok((
                TrainData {
                    source: PathBuf::from(spec),
                    dialogues: imported.dialogues,
                },
                format,
            ))
        };
        let (train, validation, format) = if request.sources == [DIALOGSUM] {
            let (train, format) = read("dialogsum:train", "train")?;
            let (validation, _) = read("dialogsum:validation", "validation")?;
            (train, Some(validation), format)
        } else {
            let mut dialogues = Vec::new();
            let mut formats = Vec::new();
            for source in &sources {
                self.cancel.check()?;
                let (data, format) = read(source, "train")?;
                dialogues.extend(data.dialogues);
                formats.push(format);
            }
            formats.dedup();
            let source = PathBuf::from(&sources[0]);
            let fraction = request.validation_fraction;
            if fraction > 0.0 && dialogues.len() >= 2 {
                let (train, held) = data::split_for_validation(dialogues, fraction, request.seed);
                // Fewer than two reviewed summaries leave nothing to hold out.
                let validation = (!held.is_empty()).then(|| TrainData {
                    source: source.clone(),
                    dialogues: held,
                });
                (
                    TrainData {
                        source,
                        dialogues: train,
                    },
                    validation,
                    formats.join(", "),
                )
            } else {
                (TrainData { source, dialogues }, None, formats.join(", "))
            }
        };
        let all: Vec<&Dialogue> = train
            .dialogues
            .iter()
            .chain(validation.iter().flat_map(|v| &v.dialogues))
            .collect();
        let speakers: std::collections::BTreeSet<&str> = all
            .iter()
            .flat_map(|d| d.turns.iter().filter_map(|t| t.speaker.as_deref()))
            .collect();
        let reviewed = |d: &Dialogue| d.reviewed_summary().is_some();
        let summary = DataSummary {
            sources,
            format,
            dialogues: all.len(),
            with_summary: all.iter().filter(|d| reviewed(d)).count(),
            drafts: all
                .iter()
                .filter(|d| d.unreviewed_draft().is_some())
                .count(),
            speakers: speakers.len(),
            train: train.dialogues.len(),
            train_examples: train.dialogues.iter().filter(|d| reviewed(d)).count(),
            validation: validation.as_ref().map_or(0, |v| v.dialogues.len()),
            warnings,
            preview: all
                .iter()
                .take(PREVIEW_ROWS)
                .enumerate()
                .map(|(index, d)| PreviewRow {
                    id: id_text(d, index),
                    dialogue: d.dialogue.clone(),
                    summary: d.summaries.first().cloned().unwrap_or_default(),
                    draft: d.draft,
                })
                .collect(),
        };
        self.data = Some(Data {
            train,
            validation,
            request,
        });
        self.evaluation = None;
        self.example_lengths = None;
        self.emit(Event::DataImported(summary));
        Ok(())
    }

    /// The whole prompt and summary length in tokens of each training example, counted once per
    /// model and data: estimates are asked for at every change of a setting.
    fn example_lengths(&mut self, template: &str) -> Result<&[(usize, usize)]> {
        if self
            .example_lengths
            .as_ref()
            .is_none_or(|(t, _)| t != template)
        {
            let model = self.model()?;
            let data = self.data()?;
            let tokenizer = &model.summarizer.model.tokenizer;
            let mut lengths = Vec::with_capacity(data.train.dialogues.len());
            for dialogue in &data.train.dialogues {
                // The trainer's own choice: drafts nobody accepted are left out.
                let Some(summary) = dialogue.reviewed_summary() else {
                    continue;
                };
                let prompt = template.replace("{dialogue}", &dialogue.dialogue);
                lengths.push((
                    tokenizer.encode(&prompt, usize::MAX)?.ids.len(),
                    tokenizer.encode(summary, usize::MAX)?.ids.len(),
                ));
            }
            self.example_lengths = Some((template.to_string(), lengths));
        }
        Ok(self
            .example_lengths
            .as_ref()
            .map(|(_, lengths)| lengths.as_slice())
            .unwrap_or_default())
    }

    fn estimate(&mut self, settings: &TrainSettings) -> Result<Estimate> {
        // The trainer's refusals come first: a batch of 0 has no step count.
        settings.validate()?;
        let (examples, tokens) = {
            let lengths = self.example_lengths(&settings.prompt_template)?;
            let tokens: usize = lengths
                .iter()
                .map(|&(source, target)| {
                    source.min(settings.max_source_length) + target.min(settings.max_target_length)
                })
                .sum();
            (lengths.len(), tokens as u64)
        };
        let model = self.model()?;
        // The trainer's own step count.
        let steps = settings.total_steps(examples).max(1);
        let run_tokens =
            tokens as f64 * steps as f64 / settings.steps_per_epoch(examples).max(1) as f64;
        let speed = self.speed().map(|s| s.tokens_per_second);
        let memory_bytes = training_memory(model.parameters, settings.batch_size);
        Ok(Estimate {
            settings: settings.clone(),
            steps,
            tokens: run_tokens as u64,
            seconds: speed.map(|tokens_per_second| run_tokens / tokens_per_second),
            memory_bytes,
            fits: self.config.memory_bytes == 0 || memory_bytes <= self.config.memory_bytes,
        })
    }

    fn start_training(&mut self, name: &str, settings: TrainSettings) -> Result<()> {
        let folder = self.library.folder(name)?;
        if folder.join(adapter::CONFIG_FILE).exists() {
            return Err(Error::settings(format!(
                "an adapter named \"{name}\" exists already: choose another name, or rename or delete it on the Adapters screen"
            )));
        }
        if train::has_checkpoint(&folder) {
            return Err(Error::settings(format!(
                "an interrupted run named \"{name}\" exists: resume it, or choose another name"
            )));
        }
        let estimate = self.estimate(&settings)?;
        if !estimate.fits {
            return Err(Error::settings(format!(
                "training would need about {:.1} GB of memory and this machine has {:.1} GB: choose a smaller model, batch size or rank",
                estimate.memory_bytes as f64 / 1e9,
                self.config.memory_bytes as f64 / 1e9
            )));
        }
        let model = self.model()?.summarizer.model.name.clone();
        let record = RunRecord {
            model,
            data: self.data()?.request.clone(),
            settings,
            total_steps: estimate.steps,
        };
        self.library.save_run_record(name, &record)?;
        let started = Instant::now();
        self.train(name, &record.settings, false)?;
        // The next estimates use the speed this run had, with its validation and checkpoints.
        let seconds = started.elapsed().as_secs_f64();
        if seconds > 0.0 {
            self.keep_speed(estimate.tokens as f64 / seconds, true)?;
        }
        Ok(())
    }

    /// The training speed measured here with the loaded model as it is held.
    fn speed(&self) -> Option<&MeasuredSpeed> {
        let model = &self.model.as_ref()?.summarizer.model;
        let gpu = !model.t5.device().is_cpu();
        self.settings.speed(&model.name, model.precision, gpu)
    }

    /// Keeps `tokens_per_second` as the loaded model's speed here, and tells the app to save it.
    fn keep_speed(&mut self, tokens_per_second: f64, from_run: bool) -> Result<()> {
        let model = &self.model()?.summarizer.model;
        let speed = MeasuredSpeed {
            model: model.name.clone(),
            precision: model.precision,
            gpu: !model.t5.device().is_cpu(),
            tokens_per_second,
            from_run,
        };
        self.settings.record_speed(speed.clone());
        self.emit(Event::SpeedMeasured(speed));
        Ok(())
    }

    /// Measures how fast the loaded model trains here with `settings` on the loaded data.
    fn measure_speed(&mut self, settings: &TrainSettings) -> Result<()> {
        self.speed_tried = true;
        let (model, data) = (self.model()?, self.data()?);
        let emitter = &self.emitter;
        let tokens_per_second = train::measure_speed(
            &model.summarizer.model,
            &data.train,
            settings,
            &self.cancel,
            &mut |done, total| {
                emitter.emit(Event::Progress {
                    task: Task::MeasureSpeed,
                    stage: Task::MeasureSpeed.label().to_string(),
                    done: done as u64,
                    total: total as u64,
                    eta_s: None,
                })
            },
        )?;
        self.keep_speed(tokens_per_second, false)
    }

    /// Continues an interrupted run: the model and data it used are loaded again when they are
    /// not the ones loaded now.
    fn resume_training(&mut self, name: &str) -> Result<()> {
        let record = self.library.run_record(name)?;
        let same_model = self
            .model
            .as_ref()
            .is_some_and(|m| m.summarizer.model.name == record.model);
        if !same_model {
            self.load_model(&record.model, self.settings.device, self.settings.precision)?;
        }
        if self.data.as_ref().map(|d| &d.request) != Some(&record.data) {
            self.import_data(record.data.clone())?;
        }
        self.train(name, &record.settings, true)
    }

    fn train(&mut self, name: &str, settings: &TrainSettings, resume: bool) -> Result<()> {
        let folder = self.library.folder(name)?;
        let (Some(model), Some(data)) = (self.model.as_mut(), self.data.as_ref()) else {
            return Err(Error::settings("load a model and import dialogues first"));
        };
        let emitter = self.emitter.clone();
        let mut total_steps = 0;
        let request = TrainRequest {
            model: &mut model.summarizer.model,
            model_files: &model.files,
            train: &data.train,
            validation: data.validation.as_ref(),
            init_adapter: None,
            output: folder.clone(),
            resume,
            overwrite: false,
            settings: settings.clone(),
        };
        let result = train::train(request, &self.cancel, &mut |event| match event {
            TrainEvent::Started {
                first_step,
                total_steps: total,
                ..
            } => {
                total_steps = total;
                emitter.emit(Event::TrainStarted {
                    name: name.to_string(),
                    first_step,
                    total_steps: total,
                });
            }
            TrainEvent::Warning { message } => emitter.emit(Event::TrainWarning {
                message: message.worded(&AppWords),
            }),
            TrainEvent::Step(record) => {
                emitter.emit(Event::TrainStep(TrainPoint {
                    step: record.step,
                    total_steps,
                    loss: record.loss,
                    validation_loss: record.validation_loss,
                    learning_rate: record.learning_rate,
                    elapsed_s: record.elapsed_s,
                    eta_s: record.eta_s,
                }));
                emitter.emit(Event::Progress {
                    task: Task::Train,
                    stage: format!("Training \"{name}\""),
                    done: record.step as u64,
                    total: total_steps as u64,
                    eta_s: Some(record.eta_s),
                });
            }
            TrainEvent::Checkpoint { .. } => {}
        });
        match result {
            Ok(summary) => {
                self.emit(Event::TrainFinished {
                    name: name.to_string(),
                    steps: summary.steps,
                    train_loss: summary.train_loss,
                });
                self.emit_library();
                Ok(())
            }
            Err(Error::Cancelled) => {
                if let Ok(step) = train::stopped_at(&folder) {
                    self.emit(Event::TrainStopped {
                        name: name.to_string(),
                        step,
                    });
                }
                Err(Error::Cancelled)
            }
            Err(error) => {
                self.emit_library();
                Err(error)
            }
        }
    }

    fn evaluate(&mut self, adapters: &[String], limit: usize) -> Result<()> {
        let data = self.data()?;
        let source = match &data.validation {
            Some(validation) if !validation.dialogues.is_empty() => validation,
            _ => &data.train,
        };
        let mut dialogues: Vec<Dialogue> = source
            .dialogues
            .iter()
            .filter(|d| d.reviewed_summary().is_some())
            .take(limit.max(1))
            .cloned()
            .collect();
        if dialogues.is_empty() {
            return Err(Error::settings(
                "no dialogue has a reference summary to evaluate against",
            ));
        }
        dialogues.shrink_to_fit();
        let data_label = source.source.display().to_string();
        self.ensure_model(adapters.first().map(String::as_str))?;
        let Some(model) = self.model.as_mut() else {
            return Err(Error::settings("load a model first (the Model screen)"));
        };
        for name in adapters {
            self.library.attach(name, &mut model.summarizer)?;
        }
        let mut settings = EvalSettings {
            summarize: SummarizeSettings::default(),
            max_target_length: 128,
            use_stemmer: false,
            bootstrap_samples: 1000,
            seed: 42,
        };
        let progress = self.emitter.progress(Task::Evaluate);
        let labels = std::iter::once(None).chain(adapters.iter().map(|a| Some(a.as_str())));
        let mut runs = Vec::new();
        for adapter in labels {
            // Each adapter with the prompt it was trained with.
            settings.summarize.prompt_template = model.summarizer.prompt_template(adapter, None);
            runs.push(eval::evaluate(
                &model.summarizer,
                adapter,
                // The app's word for the baseline.
                adapter.unwrap_or("the model alone"),
                &dialogues,
                &settings,
                &self.cancel,
                &progress,
            )?);
        }
        for run in runs.iter().skip(1) {
            let mut scores = serde_json::json!({ "data": data_label, "count": dialogues.len() });
            for (key, value) in run.rouge.named() {
                scores[key] = serde_json::json!(value);
            }
            self.library.save_scores(&run.label, &scores)?;
        }
        self.emit(Event::Evaluated(evaluation_event(&dialogues, &runs)));
        self.evaluation = Some(LastEvaluation {
            dialogues,
            runs,
            data: data_label,
        });
        self.emit_library();
        Ok(())
    }

    fn export_report(&self, folder: &Path) -> Result<()> {
        let evaluation = self
            .evaluation
            .as_ref()
            .ok_or_else(|| Error::settings("evaluate first: there is no report to export"))?;
        let model = self.model()?;
        report::write(
            folder,
            &model.summarizer.model.name,
            model.summarizer.model.precision,
            &evaluation.data,
            &evaluation.dialogues,
            &evaluation.runs,
            None,
        )?;
        self.notice(format!(
            "Report written to {}",
            folder.join("report.html").display()
        ));
        Ok(())
    }

    fn summarize(
        &mut self,
        transcript: Transcript,
        adapter: Option<String>,
        prompt_template: Option<String>,
    ) -> Result<()> {
        let options = ImportOptions::default();
        let (imported, source) = match transcript {
            Transcript::Text { text } => (
                data::import_text(&text, "pasted text", &options)?,
                "the pasted text".into(),
            ),
            Transcript::File { path } => {
                let path = PathBuf::from(path);
                let name = path.file_name().map_or(path.display().to_string(), |n| {
                    n.to_string_lossy().into_owned()
                });
                (data::import(&path, &options)?, name)
            }
        };
        let [dialogue] = imported.dialogues.as_slice() else {
            return Err(Error::settings(format!(
                "{source} holds {} dialogues; Summarize takes one transcript at a time (Evaluate, or `dialora summarize`, takes many)",
                imported.dialogues.len()
            )));
        };
        self.ensure_model(adapter.as_deref())?;
        let Some(model) = self.model.as_mut() else {
            return Err(Error::settings("load a model first (the Model screen)"));
        };
        if let Some(name) = &adapter {
            self.library.attach(name, &mut model.summarizer)?;
        }
        let settings = SummarizeSettings {
            prompt_template: model
                .summarizer
                .prompt_template(adapter.as_deref(), prompt_template.as_deref()),
            ..SummarizeSettings::default()
        };
        settings.validate()?;
        let progress = self.emitter.progress(Task::Summarize);
        let turns = if dialogue.turns.is_empty() {
            vec![Turn {
                speaker: None,
                text: dialogue.dialogue.clone(),
            }]
        } else {
            dialogue.turns.clone()
        };
        let summary = long_input::summarize_long(
            &model.summarizer,
            &turns,
            Speakers::Names,
            adapter.as_deref(),
            &settings,
            &self.cancel,
            &progress,
        )?;
        self.emit(Event::Summary(SummaryResult {
            source,
            adapter,
            prompt_template: settings.prompt_template,
            text: summary.summary,
            windows: summary.windows.max(1),
        }));
        Ok(())
    }
}

impl Worker {
    /// A dataset of the imported dialogues (training and validation alike), opened for review.
    fn create_dataset(&mut self, name: &str, style: &str) -> Result<()> {
        let data = self.data()?;
        let dialogues: Vec<Dialogue> = data
            .train
            .dialogues
            .iter()
            .chain(data.validation.iter().flat_map(|v| &v.dialogues))
            .cloned()
            .collect();
        let view = self.datasets().create(name, style, &dialogues)?;
        self.emit(Event::Datasets {
            datasets: self.datasets().entries(),
        });
        self.emit(Event::Dataset(view));
        Ok(())
    }

    /// A drafting round: every dialogue of the dataset not accepted yet, in batches, each batch
    /// saved (and shown) as it comes; a cancel keeps the drafts made so far.
    fn draft_dataset(&mut self, name: &str, adapter: Option<String>, style: &str) -> Result<()> {
        self.ensure_model(adapter.as_deref())?;
        let Some(model) = self.model.as_mut() else {
            return Err(Error::settings("load a model first (the Model screen)"));
        };
        if let Some(adapter) = &adapter {
            self.library.attach(adapter, &mut model.summarizer)?;
        }
        let work = self
            .datasets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .begin_round(name, adapter.clone(), style)?;
        let drafted = self.draft_round(name, adapter.as_deref(), style, &work);
        self.datasets().end_round();
        self.emit(Event::Datasets {
            datasets: self.datasets().entries(),
        });
        drafted
    }

    fn draft_round(
        &self,
        name: &str,
        adapter: Option<&str>,
        style: &str,
        work: &super::datasets::RoundWork,
    ) -> Result<()> {
        let model = self.model()?;
        let settings = SummarizeSettings {
            prompt_template: style.to_string(),
            ..SummarizeSettings::default()
        };
        let total = work.dialogues.len() as u64;
        let stage = format!("Drafting \"{name}\"");
        let started = Instant::now();
        let mut done = 0u64;
        self.emit(Event::Progress {
            task: Task::Draft,
            stage: stage.clone(),
            done,
            total,
            eta_s: None,
        });
        for chunk in work.dialogues.chunks(settings.batch_size) {
            self.cancel.check()?;
            let dialogues: Vec<Dialogue> = chunk.iter().map(|(_, d)| d.clone()).collect();
            let (summaries, _) = dialora_engine::long_input::summarize_all(
                &model.summarizer,
                &dialogues,
                Speakers::Names,
                LongInput::Window,
                adapter,
                &settings,
                &self.cancel,
                &NoProgress,
            )?;
            let drafts = chunk
                .iter()
                .zip(summaries)
                .map(|((index, _), summary)| (*index, summary.summary))
                .collect();
            let change = self.datasets().put_drafts(name, work.round, drafts)?;
            self.emit(Event::DatasetChanged(change));
            done += chunk.len() as u64;
            let per_dialogue = started.elapsed().as_secs_f64() / done as f64;
            self.emit(Event::Progress {
                task: Task::Draft,
                stage: stage.clone(),
                done,
                total,
                eta_s: Some(per_dialogue * (total - done) as f64),
            });
        }
        Ok(())
    }
}

fn import_options(columns: &Columns) -> ImportOptions {
    let named = |name: &str| (!name.trim().is_empty()).then(|| name.trim().to_string());
    ImportOptions {
        dialogue_column: named(&columns.dialogue),
        summary_column: named(&columns.summary),
        id_column: named(&columns.id),
        speakers: Speakers::Names,
    }
}

fn id_text(dialogue: &Dialogue, index: usize) -> String {
    match dialogue.id_or_position(index) {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

fn evaluation_event(dialogues: &[Dialogue], runs: &[eval::Run]) -> Evaluation {
    let values = |scores: &eval::PerType<f64>| scores.named().map(|(_, v)| v);
    Evaluation {
        count: dialogues.len(),
        runs: runs
            .iter()
            .map(|run| RunScores {
                label: run.label.clone(),
                loss: run.loss,
                rouge: values(&run.rouge),
                ci95: run.rouge_ci95.named().map(|(_, v)| v),
            })
            .collect(),
        examples: dialogues
            .iter()
            .enumerate()
            .map(|(index, dialogue)| ExampleRow {
                id: id_text(dialogue, index),
                dialogue: dialogue.dialogue.clone(),
                reference: dialogue.summaries.first().cloned().unwrap_or_default(),
                summaries: runs
                    .iter()
                    .filter_map(|r| r.examples.get(index))
                    .map(|e| e.summary.clone())
                    .collect(),
                rouge_l: runs
                    .iter()
                    .filter_map(|r| r.examples.get(index))
                    .map(|e| e.rouge.rouge_l)
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_name_the_app_fields_not_the_command_line_options() {
        use dialora_engine::Error;
        use dialora_engine::error::Sentence;
        use dialora_settings::{Refusal, Setting};
        let batch = Error::from(Refusal::new(
            Setting::BatchSize,
            "8 is larger than the 6 training examples in a.csv",
        ));
        assert_eq!(
            batch.to_string(),
            "--batch-size 8 is larger than the 6 training examples in a.csv"
        );
        assert_eq!(
            batch.worded(&super::AppWords),
            "\"Dialogues per step (batch size)\" 8 is larger than the 6 training examples in a.csv"
        );
        let column = Error::invalid_at(
            "a.csv",
            1,
            Sentence::from("no dialogue column; ").remedy(Setting::DialogueColumn),
        );
        assert_eq!(
            column.to_string(),
            "a.csv:1: no dialogue column; name it with --dialogue-column"
        );
        assert_eq!(
            column.worded(&super::AppWords),
            "a.csv:1: no dialogue column; name it in the Dialogue column field (Data, Column names)"
        );
        let every = Error::from(Refusal::new(Setting::CheckpointEvery, "must be at least 1"));
        assert_eq!(
            every.worded(&super::AppWords),
            "\"Save progress every (steps)\" must be at least 1"
        );
    }
}
