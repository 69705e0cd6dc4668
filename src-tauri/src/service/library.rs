//! The adapter library on disk: one PEFT folder per adapter under `<home>/adapters`, with the
//! app's notes beside the weights (the run that trained it, its last scores). A folder holding a
//! training checkpoint and no adapter yet is an interrupted run.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use dialora_engine::fsutil::write_atomically;
use dialora_engine::summarize::Summarizer;
use dialora_engine::task::{Cancel, ProgressSink};
use dialora_engine::{Error, Result, adapter, hub, train};
use dialora_ui::protocol::{AdapterEntry, DataRequest, IfExists, InterruptedRun, TrainSettings};
use serde::{Deserialize, Serialize};

use super::folders;

const RUN_FILE: &str = "dialora-run.json";
const SCORES_FILE: &str = "dialora-scores.json";

/// What a run was asked to do, so that it can be resumed after the app was closed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub model: String,
    pub data: DataRequest,
    pub settings: TrainSettings,
    pub total_steps: usize,
}

/// What an import did.
#[derive(Debug, PartialEq)]
pub enum Imported {
    /// The adapter is in the library under this name.
    Added(String),
    /// An adapter of this name is there already, and nothing was changed.
    Exists(String),
}

pub struct Library {
    folder: PathBuf,
}

impl Library {
    pub fn new(home: &Path) -> Self {
        Self {
            folder: home.join("adapters"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.folder
    }

    /// The folder of adapter `name`, refusing names that are not plain folder names.
    pub fn folder(&self, name: &str) -> Result<PathBuf> {
        folders::named(&self.folder, name, "an adapter")
    }

    fn names(&self) -> Vec<String> {
        folders::names(&self.folder)
    }

    /// The finished adapters; ones that cannot be read are listed with the reason.
    pub fn entries(&self) -> Vec<AdapterEntry> {
        self.names()
            .into_iter()
            .filter(|name| self.folder.join(name).join(adapter::CONFIG_FILE).exists())
            .map(|name| self.entry(name))
            .collect()
    }

    fn entry(&self, name: String) -> AdapterEntry {
        let folder = self.folder.join(&name);
        let modified = std::fs::metadata(&folder)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let rouge = self.scores(&name).and_then(|scores| {
            let get = |key: &str| scores[key].as_f64();
            Some([
                get("rouge1")?,
                get("rouge2")?,
                get("rougeL")?,
                get("rougeLsum")?,
            ])
        });
        match adapter::describe(&folder) {
            Ok(description) => AdapterEntry {
                name,
                base_model: description.base_model.unwrap_or_default(),
                bytes: description.bytes,
                modified,
                rank: description.r,
                targets: description.target_modules,
                rouge,
                prompt_template: description.prompt_template,
            },
            Err(error) => AdapterEntry {
                name,
                base_model: format!("cannot be read: {error}"),
                bytes: 0,
                modified,
                rank: 0,
                targets: Vec::new(),
                rouge: None,
                prompt_template: None,
            },
        }
    }

    /// The base model adapter `name` was trained on, as its config names it.
    pub fn base_model(&self, name: &str) -> Option<String> {
        adapter::describe(&self.existing(name).ok()?)
            .ok()?
            .base_model
            .filter(|base| !base.is_empty())
    }

    /// Runs that stopped before their end, with the step their checkpoint holds.
    pub fn interrupted(&self) -> Vec<InterruptedRun> {
        self.names()
            .into_iter()
            .filter_map(|name| {
                let folder = self.folder.join(&name);
                if !train::has_checkpoint(&folder) {
                    return None;
                }
                let step = train::stopped_at(&folder).ok()?;
                let total_steps = self.run_record(&name).map_or(0, |r| r.total_steps);
                Some(InterruptedRun {
                    name,
                    step,
                    total_steps,
                })
            })
            .collect()
    }

    pub fn save_run_record(&self, name: &str, record: &RunRecord) -> Result<()> {
        let folder = self.folder(name)?;
        std::fs::create_dir_all(&folder).map_err(|e| Error::file(&folder, e))?;
        let text = serde_json::to_string_pretty(record)
            .map_err(|e| Error::settings(format!("cannot record the run: {e}")))?;
        write_atomically(&folder.join(RUN_FILE), text.as_bytes())
    }

    pub fn run_record(&self, name: &str) -> Result<RunRecord> {
        let path = self.folder(name)?.join(RUN_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::invalid_at(&path, e.line(), format!("not a run record: {e}")))
    }

    /// Records an evaluation's ROUGE means for the library and for exported cards.
    pub fn save_scores(&self, name: &str, scores: &serde_json::Value) -> Result<()> {
        let path = self.folder(name)?.join(SCORES_FILE);
        write_atomically(&path, scores.to_string().as_bytes())
    }

    fn scores(&self, name: &str) -> Option<serde_json::Value> {
        let path = self.folder(name).ok()?.join(SCORES_FILE);
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    pub fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        folders::rename(&self.existing(name)?, &self.folder(new_name)?, "An adapter")
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        folders::delete(&self.existing(name)?)
    }

    fn existing(&self, name: &str) -> Result<PathBuf> {
        let folder = self.folder(name)?;
        if !folder.is_dir() {
            return Err(Error::settings(format!("no adapter named \"{name}\"")));
        }
        Ok(folder)
    }

    /// Attaches the adapter `name` to `summarizer` under that name (read again, so that a
    /// retrained or renamed adapter is the one used).
    pub fn attach(&self, name: &str, summarizer: &mut Summarizer) -> Result<()> {
        let files = adapter::read(&self.existing(name)?, summarizer.model.t5.device())?;
        summarizer.add_adapter(name, files)
    }

    /// Writes the adapter as one shareable file whose card carries its last scores.
    pub fn export(&self, name: &str, file: &Path) -> Result<()> {
        let folder = self.existing(name)?;
        write_atomically(file, &adapter::export(&folder, self.scores(name))?)
    }

    /// Copies an adapter file or PEFT folder, or the adapter of a Hub id such as
    /// `someone/flan-t5-meetings-lora` (downloaded into the Hub cache first), into the library
    /// under the name its card gives (else its file's), with the scores its card carries.
    /// When the name is taken, `if_exists` says whether to ask first, replace, or keep both. A
    /// Hub download reports to `progress`.
    pub fn import(
        &self,
        source: &Path,
        if_exists: IfExists,
        progress: &dyn ProgressSink,
        cancel: &Cancel,
    ) -> Result<Imported> {
        let local = hub::resolve_adapter(source, progress, cancel)?;
        let files = adapter::read_to_copy(&local)?;
        let card = files.card_json();
        let named = card
            .as_ref()
            .and_then(|c| c.get("name")?.as_str().map(str::to_string))
            .filter(|name| self.folder(name).is_ok())
            .unwrap_or_else(|| folders::name_of(source));
        let taken = self.folder.join(&named).exists();
        let name = match (taken, if_exists) {
            (true, IfExists::Ask) => return Ok(Imported::Exists(named)),
            (true, IfExists::KeepBoth) => folders::free_name(&self.folder, &named),
            _ => named,
        };
        let folder = self.folder(&name)?;
        let scores = card.and_then(|mut c| c.get_mut("rouge").map(serde_json::Value::take));
        let write = |staging: &Path| {
            adapter::write_copy(&files, staging)?;
            match scores {
                Some(scores) => {
                    write_atomically(&staging.join(SCORES_FILE), scores.to_string().as_bytes())
                }
                None => Ok(()),
            }
        };
        if self.folder.join(&name).exists() {
            folders::replace(&self.folder, &folder, write)?;
        } else {
            folders::write_new(&self.folder, &folder, write)?;
        }
        Ok(Imported::Added(name))
    }
}
