//! Model, adapter and data sources: a local folder, or a Hugging Face Hub id (a model, an adapter,
//! or the DialogSum dataset) fetched with hf-hub into the standard cache (`HF_HOME`, endpoint from
//! `HF_ENDPOINT`) with progress, and used offline from the cache once every file is there.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::adapter;
use crate::data::{self, ImportOptions, Imported};
use crate::error::{Error, HubProblem, Result};
use crate::model::{ModelFiles, SHARD_INDEX, shard_files};
use crate::task::{Cancel, Progress, ProgressSink};

/// Optional files that change how a model behaves when present.
const OPTIONAL_FILES: [&str; 2] = ["tokenizer_config.json", "generation_config.json"];

/// Resolves what the user named: an existing folder, or a Hub id such as `google/flan-t5-base`.
pub fn resolve_model(
    spec: &str,
    progress: &dyn ProgressSink,
    cancel: &Cancel,
) -> Result<ModelFiles> {
    let path = Path::new(spec);
    if path.exists() {
        return ModelFiles::in_folder(path);
    }
    if !looks_like_hub_id(spec) {
        return Err(Error::missing(
            path,
            "no such model folder (and not a Hub id like google/flan-t5-base)",
        ));
    }
    let folder = fetch_model(spec, progress, cancel)?;
    ModelFiles::in_folder(&folder)
}

/// Resolves an adapter the user named: an existing adapter folder or file, else a Hub id such as
/// `someone/flan-t5-meetings-lora` (owner and name: a bare name is taken for a mistyped path),
/// fetched into the Hub cache. Returns the local path to read with [`crate::adapter::read`].
pub fn resolve_adapter(
    spec: &Path,
    progress: &dyn ProgressSink,
    cancel: &Cancel,
) -> Result<PathBuf> {
    if spec.exists() {
        return Ok(spec.to_path_buf());
    }
    match spec.to_str() {
        Some(id) if id.contains('/') && looks_like_hub_id(id) => {
            fetch_adapter(id, progress, cancel)
        }
        _ => Err(Error::missing(
            spec,
            "no such adapter file or folder (and not a Hub id like someone/flan-t5-meetings-lora)",
        )),
    }
}

fn looks_like_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !part.starts_with('.')
    };
    matches!(parts.as_slice(), [name] if valid(name))
        || matches!(parts.as_slice(), [owner, name] if valid(owner) && valid(name))
}

/// The snapshot folder of `model_id` in the Hub cache, downloading what is missing.
pub fn fetch_model(
    model_id: &str,
    progress: &dyn ProgressSink,
    cancel: &Cancel,
) -> Result<PathBuf> {
    let cache = Cache::from_env();
    let cached = cache.repo(Repo::new(model_id.to_string(), RepoType::Model));
    if let Some(config) = cached.get("config.json")
        && let Some(folder) = config.parent()
        && ModelFiles::in_folder(folder).is_ok()
    {
        return Ok(folder.to_path_buf());
    }
    let repo = HubRepo::open(model_id, RepoType::Model, progress, cancel)?;
    let download = |file: &str| repo.download(file);
    let config = download("config.json")?;
    download("tokenizer.json")?;
    for optional in OPTIONAL_FILES {
        // Absent optional files are normal; other failures surface with the required files.
        let _ = download(optional);
    }
    match download("model.safetensors") {
        Ok(_) => {}
        Err(single_error) => {
            let Ok(index) = download(SHARD_INDEX) else {
                return Err(single_error);
            };
            for shard in shard_files(&index)? {
                download(&shard)?;
            }
        }
    }
    snapshot_folder(model_id, &config)
}

/// The snapshot folder of the adapter repository `adapter_id` (PEFT's layout:
/// `adapter_config.json` and `adapter_model.safetensors`) in the Hub cache, downloading what is
/// missing.
pub fn fetch_adapter(
    adapter_id: &str,
    progress: &dyn ProgressSink,
    cancel: &Cancel,
) -> Result<PathBuf> {
    let cache = Cache::from_env();
    let cached = cache.repo(Repo::new(adapter_id.to_string(), RepoType::Model));
    if let Some(config) = cached.get(adapter::CONFIG_FILE)
        && let Some(folder) = config.parent()
        && folder.join(adapter::WEIGHTS_FILE).is_file()
    {
        return Ok(folder.to_path_buf());
    }
    let repo = HubRepo::open(adapter_id, RepoType::Model, progress, cancel)?;
    let config = repo.download(adapter::CONFIG_FILE)?;
    repo.download(adapter::WEIGHTS_FILE)?;
    snapshot_folder(adapter_id, &config)
}

/// The snapshot folder a downloaded file of repository `id` lies in.
fn snapshot_folder(id: &str, file: &Path) -> Result<PathBuf> {
    file.parent().map(Path::to_path_buf).ok_or_else(|| {
        Error::hub(
            HubProblem::Other,
            format!("{id}: the hub cache has an unexpected layout"),
        )
    })
}

/// A Hub repository whose files are downloaded into the cache, each reporting its progress and
/// failing with [`hub_error`].
struct HubRepo<'a> {
    id: &'a str,
    repo: ApiRepo,
    progress: &'a dyn ProgressSink,
    cancel: &'a Cancel,
}

impl<'a> HubRepo<'a> {
    fn open(
        id: &'a str,
        kind: RepoType,
        progress: &'a dyn ProgressSink,
        cancel: &'a Cancel,
    ) -> Result<Self> {
        let api = ApiBuilder::from_env()
            .with_progress(false)
            .build()
            .map_err(|e| Error::hub(HubProblem::Other, format!("cannot use the model hub: {e}")))?;
        Ok(Self {
            id,
            repo: api.repo(Repo::new(id.to_string(), kind)),
            progress,
            cancel,
        })
    }

    /// Downloads `file`; a cancel stops it at its next chunk (hf-hub keeps the partial file
    /// and resumes it next time).
    fn download(&self, file: &str) -> Result<PathBuf> {
        self.cancel.check()?;
        let reporter = HubProgress {
            sink: self.progress,
            cancel: self.cancel,
            stage: format!("downloading {}/{file}", self.id),
            done: 0,
            total: 0,
        };
        let downloaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.repo.download_with_progress(file, reporter)
        }));
        match downloaded {
            Ok(result) => result.map_err(|e| hub_error(self.id, file, &e)),
            Err(payload) if payload.is::<DownloadCancelled>() => Err(Error::Cancelled),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }
}

/// The Hub's DialogSum (`knkarthick/dialogsum`: train, validation and test CSVs).
pub const DIALOGSUM_REPO: &str = "knkarthick/dialogsum";

/// Reads the dialogues of `spec`: `dialogsum[:split]` from the Hub (`default_split` when none is
/// named), else a data file or folder.
pub fn import_data(
    spec: &Path,
    default_split: &str,
    options: &ImportOptions,
    progress: &dyn ProgressSink,
    cancel: &Cancel,
) -> Result<Imported> {
    let downloaded = match spec.to_str() {
        Some(name) => resolve_dialogsum(name, default_split, progress, cancel)?,
        None => None,
    };
    data::import(downloaded.as_deref().unwrap_or(spec), options)
}

/// For `dialogsum` or `dialogsum:SPLIT`, the local path of that split's CSV (`default_split` when
/// none is named), downloaded into the Hub cache when missing; `None` for any other name.
pub fn resolve_dialogsum(
    spec: &str,
    default_split: &str,
    progress: &dyn ProgressSink,
    cancel: &Cancel,
) -> Result<Option<PathBuf>> {
    let split = match spec.split_once(':') {
        None if spec == "dialogsum" => default_split,
        Some(("dialogsum", split)) => split,
        _ => return Ok(None),
    };
    if !["train", "validation", "test"].contains(&split) {
        return Err(Error::settings(format!(
            "\"{spec}\": DialogSum has the splits train, validation and test"
        )));
    }
    let file = format!("{split}.csv");
    let cache = Cache::from_env();
    let cached = cache.repo(Repo::new(DIALOGSUM_REPO.to_string(), RepoType::Dataset));
    if let Some(path) = cached.get(&file) {
        return Ok(Some(path));
    }
    HubRepo::open(DIALOGSUM_REPO, RepoType::Dataset, progress, cancel)?
        .download(&file)
        .map(Some)
}

fn hub_error(model_id: &str, file: &str, error: &ApiError) -> Error {
    let message = error.to_string();
    let detail = message.lines().next().unwrap_or("download failed");
    match hub_problem(error) {
        HubProblem::NotFound => Error::hub(
            HubProblem::NotFound,
            format!("{model_id}: the hub has no file {file} (is the id right?)"),
        ),
        HubProblem::Offline => Error::hub(
            HubProblem::Offline,
            format!(
                "{model_id}/{file}: the model hub cannot be reached ({detail}); what is already downloaded works without a network"
            ),
        ),
        HubProblem::Other => Error::hub(
            HubProblem::Other,
            format!("{model_id}/{file}: download failed: {detail}"),
        ),
    }
}

/// Offline is any failure to reach the hub at all; not found is the hub's own answer.
fn hub_problem(error: &ApiError) -> HubProblem {
    match error {
        ApiError::RequestError(request) => match request.as_ref() {
            ureq::Error::Status(401 | 404, _) => HubProblem::NotFound,
            ureq::Error::Status(..) => HubProblem::Other,
            ureq::Error::Transport(_) => HubProblem::Offline,
        },
        ApiError::TooManyRetries(inner) => hub_problem(inner),
        _ => HubProblem::Other,
    }
}

/// What unwinds out of hf-hub's download loop when the user cancels: hf-hub has no way to stop
/// a download, and its progress callback is called for every chunk.
struct DownloadCancelled;

struct HubProgress<'a> {
    sink: &'a dyn ProgressSink,
    cancel: &'a Cancel,
    stage: String,
    done: u64,
    total: u64,
}

impl hf_hub::api::Progress for HubProgress<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.total = size as u64;
        self.done = 0;
        self.report();
    }

    fn update(&mut self, size: usize) {
        if self.cancel.is_cancelled() {
            // resume_unwind, not panic!: no panic hook runs, nothing is printed.
            std::panic::resume_unwind(Box::new(DownloadCancelled));
        }
        self.done += size as u64;
        self.report();
    }

    fn finish(&mut self) {
        self.done = self.total;
        self.report();
    }
}

impl HubProgress<'_> {
    fn report(&self) {
        self.sink.report(Progress {
            stage: self.stage.clone(),
            done: self.done,
            total: self.total,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{looks_like_hub_id, resolve_adapter};
    use crate::error::Kind;
    use crate::task::{Cancel, NoProgress};

    #[test]
    fn hub_ids_are_told_from_paths() {
        assert!(looks_like_hub_id("google/flan-t5-base"));
        assert!(looks_like_hub_id("t5-small"));
        assert!(!looks_like_hub_id("./models/x"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id(""));
    }

    #[test]
    fn a_missing_adapter_that_is_no_hub_id_is_a_missing_file() {
        // A bare name is a mistyped path for adapters, never a download.
        for spec in ["no-such-adapter", "./no/such/adapter", "a/b/c"] {
            let error = resolve_adapter(Path::new(spec), &NoProgress, &Cancel::new()).unwrap_err();
            assert_eq!(error.kind(), Kind::Missing, "{spec}");
            assert!(
                error.to_string().contains("someone/flan-t5-meetings-lora"),
                "{error}"
            );
        }
    }
}
