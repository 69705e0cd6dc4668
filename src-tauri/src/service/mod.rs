//! The engine behind the app: it takes the UI's commands and runs them on a worker thread in this
//! process, sending events back, so the UI never waits on the engine. The native window and the
//! tests use it through [`InProcess`], the UI's [`Backend`]; the Tauri window hands its events to
//! the webview as they come ([`InProcess::start_with_sink`]).

mod datasets;
mod folders;
mod library;
mod problems;
pub(crate) mod settings;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use dialora_engine::Result;
use dialora_engine::summarize::DEFAULT_PROMPT;
use dialora_engine::task::{Cancel, Progress, ProgressSink};
use dialora_ui::Backend;
use dialora_ui::protocol::{Command, Event, PickPurpose, Settings, Task};

use datasets::Datasets;
use problems::Log;

/// Opens the system's file dialog for a purpose, starting at the field's current path; returns
/// the chosen paths (none when cancelled).
pub type Picker = Arc<dyn Fn(PickPurpose, &str, &Settings) -> Vec<String> + Send + Sync>;

/// Where the app keeps its files and what it may assume of the machine.
pub struct ServiceConfig {
    /// The settings file and the adapter library live here.
    pub home: PathBuf,
    /// The memory training estimates are checked against.
    pub memory_bytes: u64,
    pub picker: Option<Picker>,
}

impl ServiceConfig {
    /// `$DIALORA_HOME`, else `$XDG_DATA_HOME/dialora`, else `~/.local/share/dialora`; the
    /// machine's memory.
    pub fn for_this_user() -> Self {
        let home = std::env::var_os("DIALORA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("dialora")))
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/dialora"))
            })
            .unwrap_or_else(|| PathBuf::from("dialora-data"));
        Self {
            home,
            memory_bytes: dialora_engine::runtime::machine_memory(),
            picker: None,
        }
    }
}

/// The engine on a worker thread of this process. Dropping it (closing the window) cancels the
/// running task and waits for it to stop safely: a training run writes its checkpoint first.
pub struct InProcess {
    /// Each command for the worker goes with its own cancel flag.
    commands: Option<Sender<(Command, Cancel)>>,
    /// The flags of the commands sent to the worker and not yet done (queued or running): a
    /// Cancel stops them all, the queued ones before they start.
    issued: Vec<Cancel>,
    /// The events for [`Backend::poll`]; none when they go to a sink.
    events: Option<Receiver<Event>>,
    emitter: Emitter,
    shutdown: Cancel,
    picker: Option<Picker>,
    /// The settings as last saved or loaded, where dialogs open.
    settings: Arc<Mutex<Settings>>,
    /// Settings to write, in order, on their own thread: never queued behind long work.
    settings_writer: Option<Sender<Settings>>,
    /// Dataset commands, on their own thread: a review goes on while the worker drafts.
    dataset_commands: Option<Sender<Command>>,
    log: Log,
    worker: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    reviewer: Option<JoinHandle<()>>,
}

impl InProcess {
    /// The engine with its events kept for [`Backend::poll`].
    pub fn start(config: ServiceConfig) -> Self {
        Self::start_waking(config, || {})
    }

    /// The engine with its events kept for [`Backend::poll`], calling `wake` after each one so
    /// that an idle window draws only when there is something new.
    pub fn start_waking(config: ServiceConfig, wake: impl Fn() + Send + Sync + 'static) -> Self {
        let (event_sender, events) = mpsc::channel();
        let mut service = Self::start_with_sink(config, move |event| {
            // A closed UI is not an error for the engine.
            let _ = event_sender.send(event);
            wake();
        });
        service.events = Some(events);
        service
    }

    /// The engine handing each event to `sink` as it comes, from the engine's threads.
    pub fn start_with_sink(
        config: ServiceConfig,
        sink: impl Fn(Event) + Send + Sync + 'static,
    ) -> Self {
        let (command_sender, command_receiver) = mpsc::channel();
        let settings = Arc::new(Mutex::new(Settings::default()));
        let emitter = {
            let settings = settings.clone();
            Emitter(Arc::new(move |event: Event| {
                if let Event::Ready {
                    settings: loaded, ..
                } = &event
                {
                    *settings.lock().unwrap_or_else(PoisonError::into_inner) = loaded.clone();
                }
                sink(event);
            }))
        };
        let shutdown = Cancel::new();
        let picker = config.picker.clone();
        let (settings_writer, to_write) = mpsc::channel::<Settings>();
        let writer = {
            let (home, emitter) = (config.home.clone(), emitter.clone());
            std::thread::Builder::new()
                .name("dialora-settings".into())
                .spawn(move || {
                    for settings in to_write {
                        if let Err(error) = settings::save(&home, &settings) {
                            emitter.emit(Event::Notice {
                                message: format!("The settings could not be saved: {error}"),
                            });
                        }
                    }
                })
                .ok()
        };
        let datasets = Arc::new(Mutex::new(Datasets::new(&config.home)));
        let (dataset_commands, dataset_receiver) = mpsc::channel::<Command>();
        let log = Log::new(&config.home);
        let reviewer = {
            let (datasets, emitter, log) = (datasets.clone(), emitter.clone(), log.clone());
            std::thread::Builder::new()
                .name("dialora-datasets".into())
                .spawn(move || {
                    for command in dataset_receiver {
                        let store = datasets.lock().unwrap_or_else(PoisonError::into_inner);
                        let what = review_label(&command);
                        if let Err(error) = review(&store, command, &emitter) {
                            let problem = problems::problem(&error, error.to_string());
                            log.record(what, &problem);
                            emitter.emit(Event::Error { problem });
                        }
                    }
                })
                .ok()
        };
        let worker = {
            let (emitter, shutdown) = (emitter.clone(), shutdown.clone());
            std::thread::Builder::new()
                .name("dialora-engine".into())
                .spawn(move || {
                    worker::Worker::new(config, emitter, shutdown, datasets).serve(command_receiver)
                })
                .ok()
        };
        Self {
            commands: Some(command_sender),
            issued: Vec::new(),
            events: None,
            emitter,
            shutdown,
            picker,
            settings,
            settings_writer: Some(settings_writer),
            dataset_commands: Some(dataset_commands),
            log,
            worker,
            writer,
            reviewer,
        }
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the dialog on its own thread: the worker may be busy, and the UI must not wait.
    fn pick(&self, purpose: PickPurpose, current: String) {
        let emitter = self.emitter.clone();
        let Some(picker) = self.picker.clone() else {
            emitter.emit(Event::Notice {
                message: "This window cannot open file dialogs: type the path instead".into(),
            });
            return;
        };
        let settings = self.settings().clone();
        let _ = std::thread::Builder::new()
            .name("dialora-dialog".into())
            .spawn(move || {
                let paths = picker(purpose, &current, &settings);
                if !paths.is_empty() {
                    emitter.emit(Event::Picked { purpose, paths });
                }
            });
    }
}

impl Backend for InProcess {
    fn send(&mut self, command: Command) {
        // Cancel and dialogs act at once; everything else waits its turn on the worker.
        match command {
            Command::Cancel => self.issued.iter().for_each(Cancel::cancel),
            Command::Pick { purpose, current } => self.pick(purpose, current),
            Command::ShowLog => self.emitter.emit(Event::Log {
                path: self.log.path().display().to_string(),
                text: self.log.tail(),
            }),
            command if command.for_review() => {
                if let Some(commands) = &self.dataset_commands {
                    let _ = commands.send(command);
                }
            }
            command => {
                if let Command::SaveSettings { settings } = &command {
                    *self.settings() = settings.clone();
                    if let Some(writer) = &self.settings_writer {
                        let _ = writer.send(settings.clone());
                    }
                }
                if let Some(commands) = &self.commands {
                    // The worker drops a command's flag when it is done with it.
                    self.issued.retain(Cancel::shared);
                    let cancel = Cancel::new();
                    self.issued.push(cancel.clone());
                    let _ = commands.send((command, cancel));
                }
            }
        }
    }

    fn poll(&mut self) -> Vec<Event> {
        self.events
            .as_ref()
            .map(|events| events.try_iter().collect())
            .unwrap_or_default()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // Shutdown first: the worker checks it before taking the next command.
        self.shutdown.cancel();
        self.issued.iter().for_each(Cancel::cancel);
        // Closing the channel ends the worker's loop once the running task has stopped.
        self.commands = None;
        self.settings_writer = None;
        self.dataset_commands = None;
        for thread in [self.worker.take(), self.writer.take(), self.reviewer.take()]
            .into_iter()
            .flatten()
        {
            let _ = thread.join();
        }
    }
}

/// Sends events to the UI.
#[derive(Clone)]
pub(crate) struct Emitter(Arc<dyn Fn(Event) + Send + Sync>);

impl Emitter {
    pub fn emit(&self, event: Event) {
        (self.0)(event);
    }

    /// Progress reports of `task` as events.
    pub fn progress(&self, task: Task) -> TaskProgress {
        TaskProgress {
            emitter: self.clone(),
            task,
        }
    }
}

pub(crate) struct TaskProgress {
    emitter: Emitter,
    task: Task,
}

impl ProgressSink for TaskProgress {
    fn report(&self, progress: Progress) {
        self.emitter.emit(Event::Progress {
            task: self.task,
            stage: progress.stage,
            done: progress.done,
            total: progress.total,
            eta_s: None,
        });
    }
}

/// What a review command was doing, for the log.
fn review_label(command: &Command) -> &'static str {
    match command {
        Command::OpenDataset { .. } => "Opening a dataset",
        Command::Review { .. } | Command::ReviewAt { .. } => "Reviewing",
        Command::RenameDataset { .. } => "Renaming a dataset",
        Command::DeleteDataset { .. } => "Deleting a dataset",
        Command::ExportDataset { .. } => "Exporting a dataset",
        _ => "Importing a dataset",
    }
}

/// Does a dataset command of the review (quick file work) and reports what changed.
fn review(datasets: &Datasets, command: Command, emitter: &Emitter) -> Result<()> {
    let list = || Event::Datasets {
        datasets: datasets.entries(),
    };
    match command {
        Command::OpenDataset { name } => emitter.emit(Event::Dataset(datasets.open(&name)?)),
        Command::Review {
            name,
            index,
            decision,
            next,
        } => emitter.emit(Event::DatasetChanged(
            datasets.decide(&name, index, decision, next)?,
        )),
        Command::ReviewAt { name, index } => datasets.move_to(&name, index)?,
        Command::RenameDataset { name, new_name } => {
            datasets.rename(&name, &new_name)?;
            emitter.emit(list());
        }
        Command::DeleteDataset { name } => {
            datasets.delete(&name)?;
            emitter.emit(list());
        }
        Command::ExportDataset { name, file } => {
            datasets.export(&name, Path::new(&file))?;
            emitter.emit(Event::Notice {
                message: format!("\"{name}\" exported to {file}"),
            });
        }
        Command::ImportDataset { path } => {
            let name = datasets.import(Path::new(&path), DEFAULT_PROMPT)?;
            emitter.emit(list());
            emitter.emit(Event::Notice {
                message: format!("Imported as the dataset \"{name}\""),
            });
        }
        _ => {}
    }
    Ok(())
}
