//! Training checkpoints and the run's output folder: one safetensors file holding the trained
//! weights, AdamW's moments, the step, the dropout generator and a fingerprint of what decides the
//! loss curve (settings, model, tokenized data), written atomically, so that `--resume` continues
//! exactly where the run stopped and refuses a checkpoint made with other settings.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::TrainSettings;
use super::optimizer::{AdamW, Moments};
use crate::adapter::serialize_tensors;
use crate::error::{Error, Result};
use crate::fsutil::{FolderLock, NewFolder, write_atomically};
use crate::lora::Adapter;
use crate::model::ModelFiles;
use crate::model::t5::{Pair, T5};
use crate::rng::SplitMix64;

const FILE: &str = "training-checkpoint.safetensors";
const STATE_KEY: &str = "dialora.training_state";

/// Where a run stands: its progress, and the optimizer with its moments.
#[derive(Debug, Clone)]
pub(super) struct Checkpoint {
    pub progress: Progress,
    /// Has taken `progress.step` steps.
    pub optimizer: AdamW,
}

/// The part of a checkpoint that is not tensors (kept in the file's metadata).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Progress {
    /// Optimizer steps done.
    pub step: usize,
    pub elapsed_s: f64,
    /// The dropout generator.
    pub rng: SplitMix64,
    pub fingerprint: serde_json::Value,
    pub last_loss: Option<f64>,
    pub last_validation_loss: Option<f64>,
}

/// Whether `output` holds an unfinished run's checkpoint.
pub fn exists(output: &Path) -> bool {
    output.join(FILE).is_file()
}

/// The output folder of a run: made if missing (and removed again if the run fails before
/// writing anything), and locked, so that a second run into it is refused while this one lives.
pub(super) struct OutputFolder {
    folder: NewFolder,
    _lock: FolderLock,
}

impl OutputFolder {
    /// The run wrote its result: the folder stays.
    pub fn keep(self) {
        self.folder.keep();
    }
}

/// Checks that `output` can take this run, creates and locks it, and clears temporary files a
/// crash left.
pub(super) fn prepare_output(
    output: &Path,
    resume: bool,
    overwrite: bool,
    full: bool,
) -> Result<OutputFolder> {
    if output.exists() && !output.is_dir() {
        return Err(Error::exists(
            output,
            "--output must be a folder, and this is a file",
        ));
    }
    let folder = NewFolder::create(output)?;
    let lock = match FolderLock::take(output, "training run") {
        Ok(lock) => lock,
        Err(refused) => {
            // The run that holds the lock writes here, even into a folder this run made.
            folder.keep();
            return Err(refused);
        }
    };
    let unfinished = exists(output);
    if resume && !unfinished {
        return Err(Error::missing(
            output,
            "nothing to resume: no training checkpoint here",
        ));
    }
    if !resume && unfinished && !overwrite {
        return Err(Error::exists(
            output,
            "holds an unfinished training run: add --resume to continue it, or --overwrite to start over",
        ));
    }
    let product = if full {
        "model.safetensors"
    } else {
        crate::adapter::CONFIG_FILE
    };
    if !resume && !overwrite && output.join(product).exists() {
        return Err(Error::exists(
            output,
            "already holds a trained result: choose another --output, or add --overwrite to replace it",
        ));
    }
    // No other run writes here (the lock), so every temporary is a crashed writer's.
    let entries = std::fs::read_dir(output).map_err(|e| Error::file(output, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(OutputFolder {
        folder,
        _lock: lock,
    })
}

/// What must be equal for a resumed run to continue the same loss curve.
pub(super) fn fingerprint(
    settings: &TrainSettings,
    model: &str,
    pairs: &[Pair],
    init_adapter: Option<&Path>,
) -> serde_json::Value {
    let mut settings = settings.clone();
    settings.eval_every = None;
    settings.checkpoint_every = None;
    // Over the tokenized data: the same files and tokenizer give the same number.
    let mut data = Checksum::new();
    for pair in pairs {
        for &id in pair
            .source
            .iter()
            .chain([u32::MAX].iter())
            .chain(&pair.target)
        {
            data.add(&id.to_le_bytes());
        }
    }
    serde_json::json!({
        "settings": settings,
        "model": model,
        "data": data.hex(),
        "init_adapter": init_adapter.map(|p| p.display().to_string()),
    })
}

/// Names and tensors of what is trained.
fn trained_weights(t5: &T5, adapter: Option<&Adapter>) -> Vec<(String, Tensor)> {
    match adapter {
        Some(adapter) => adapter
            .weights()
            .map(|(name, tensor)| (name, tensor.clone()))
            .collect(),
        None => t5.named_weights(),
    }
}

pub(super) fn save(
    output: &Path,
    checkpoint: &Checkpoint,
    t5: &T5,
    adapter: Option<&Adapter>,
) -> Result<()> {
    let mut tensors = Vec::new();
    for (name, tensor) in trained_weights(t5, adapter) {
        if let Some(moments) = checkpoint.optimizer.moments.get(&name) {
            let shape = tensor.shape().clone();
            for (kind, values) in [("first", &moments.first), ("second", &moments.second)] {
                let moment = Tensor::from_slice(values, &shape, &Device::Cpu)?;
                tensors.push((format!("{kind}/{name}"), moment));
            }
        }
        tensors.push((format!("weight/{name}"), tensor));
    }
    let state =
        serde_json::to_string(&checkpoint.progress).map_err(|e| Error::settings(e.to_string()))?;
    // safetensors lays the data out by name (all of it f32), so this is the file's data section.
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut checksum = Checksum::new();
    for (_, tensor) in &tensors {
        for value in tensor.flatten_all()?.to_vec1::<f32>()? {
            checksum.add(&value.to_le_bytes());
        }
    }
    let metadata = BTreeMap::from([
        (STATE_KEY.to_string(), state),
        (CHECKSUM_KEY.to_string(), checksum.hex()),
    ]);
    write_atomically(&output.join(FILE), &serialize_tensors(&tensors, metadata)?)
}

const CHECKSUM_KEY: &str = "dialora.checksum";

/// FNV-1a, 64 bits: enough to tell a checkpoint whose bytes changed on disk from the one saved,
/// or data that changed from the data a run was started on.
struct Checksum(u64);

impl Checksum {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Refuses a checkpoint whose data is not what was saved (a disk error, a bad copy, an edit).
fn check_data(path: &Path, bytes: &[u8], header: &serde_json::Value) -> Result<()> {
    let Some(saved) = header["__metadata__"][CHECKSUM_KEY].as_str() else {
        return Err(Error::invalid(
            path,
            "not a usable training checkpoint: it has no checksum (dialora.checksum); add --overwrite to start over",
        ));
    };
    let header_length = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()) as usize;
    let mut checksum = Checksum::new();
    checksum.add(&bytes[8 + header_length..]);
    if checksum.hex() != saved {
        return Err(Error::invalid(
            path,
            "the training checkpoint is damaged (its data does not match its checksum): add --overwrite to start over",
        ));
    }
    Ok(())
}

/// The first setting in which two fingerprints differ.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            x.keys().chain(y.keys()).find_map(|key| {
                let null = serde_json::Value::Null;
                let inner = if path.is_empty() || path == "settings" {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                first_difference(
                    x.get(key).unwrap_or(&null),
                    y.get(key).unwrap_or(&null),
                    &inner,
                )
            })
        }
        _ if a == b => None,
        _ => Some(path.to_string()),
    }
}

/// The progress recorded in the metadata of a checkpoint's `bytes` (at least its header).
fn read_progress(path: &Path, bytes: &[u8]) -> Result<Progress> {
    read_header(path, bytes).map(|(progress, _)| progress)
}

/// The progress and the whole header of a checkpoint's `bytes` (at least its header).
fn read_header(path: &Path, bytes: &[u8]) -> Result<(Progress, serde_json::Value)> {
    let unreadable =
        |what: &str| Error::invalid(path, format!("not a usable training checkpoint: {what}"));
    let header_length = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| unreadable("too short"))?;
    let header = usize::try_from(header_length)
        .ok()
        .and_then(|length| bytes.get(8..8usize.checked_add(length)?))
        .ok_or_else(|| unreadable("the header is cut"))?;
    let header: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| unreadable(&crate::error::json_problem(&e)))?;
    let state_text = header["__metadata__"][STATE_KEY]
        .as_str()
        .ok_or_else(|| unreadable("no training state"))?;
    let progress = serde_json::from_str(state_text)
        .map_err(|e| unreadable(&crate::error::json_problem(&e)))?;
    Ok((progress, header))
}

/// The step an unfinished run in `output` stopped at, reading only the checkpoint's header.
pub fn stopped_at(output: &Path) -> Result<usize> {
    use std::io::Read;
    let path = output.join(FILE);
    let mut file = std::fs::File::open(&path).map_err(|e| Error::file(&path, e))?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|e| Error::file(&path, e))?;
    let header_length = u64::from_le_bytes(length).min(100 << 20);
    let mut bytes = length.to_vec();
    file.take(header_length)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::file(&path, e))?;
    Ok(read_progress(&path, &bytes)?.step)
}

/// Restores the trained weights and optimizer state of the checkpoint in `output` into `t5` or
/// `adapter`, after checking that it was made with the settings of `fresh`.
pub(super) fn restore(
    output: &Path,
    fresh: Checkpoint,
    t5: &mut T5,
    adapter: Option<&mut Adapter>,
) -> Result<Checkpoint> {
    let path = output.join(FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::file(&path, e))?;
    let (progress, header) = read_header(&path, &bytes)?;
    check_data(&path, &bytes, &header)?;
    let unreadable =
        |what: &str| Error::invalid(&path, format!("not a usable training checkpoint: {what}"));
    if let Some(setting) = first_difference(&progress.fingerprint, &fresh.progress.fingerprint, "")
    {
        return Err(Error::settings(format!(
            "cannot resume: the checkpoint in {} was made with a different {setting}; use the same settings and data, or add --overwrite to start over",
            output.display()
        )));
    }
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load_buffer(&bytes, t5.device())
            .map_err(|e| unreadable(&e.to_string()))?;
    let mut optimizer = fresh.optimizer;
    optimizer.steps = progress.step as u64;
    let mut missing = None;
    let mut restore_one = |name: &str, tensor: &mut Tensor| {
        match tensors.remove(&format!("weight/{name}")) {
            Some(saved) if saved.shape() == tensor.shape() => *tensor = saved,
            _ => missing = Some(name.to_string()),
        }
        let moment = |kind: &str, tensors: &mut HashMap<String, Tensor>| {
            tensors
                .remove(&format!("{kind}/{name}"))
                .and_then(|t| t.flatten_all().ok()?.to_vec1::<f32>().ok())
        };
        if let (Some(first), Some(second)) = (
            moment("first", &mut tensors),
            moment("second", &mut tensors),
        ) {
            optimizer
                .moments
                .insert(name.to_string(), Moments { first, second });
        }
    };
    match adapter {
        Some(adapter) => {
            for (name, tensor) in adapter.weights_mut() {
                restore_one(&name, tensor);
            }
        }
        None => t5.visit_weights_mut(&mut restore_one),
    }
    if let Some(name) = missing {
        return Err(unreadable(&format!(
            "weight \"{name}\" is missing or has another shape"
        )));
    }
    Ok(Checkpoint {
        progress,
        optimizer,
    })
}

/// Removes the checkpoint of a finished run.
pub(super) fn remove(output: &Path) -> Result<()> {
    let path = output.join(FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::file(&path, e)),
        _ => Ok(()),
    }
}

/// Writes a fully fine-tuned model as a model folder: weights, config and tokenizer files.
pub(super) fn write_model(t5: &T5, files: &ModelFiles, output: &Path) -> Result<()> {
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let weights = serialize_tensors(&t5.named_weights(), metadata)?;
    write_atomically(&output.join("model.safetensors"), &weights)?;
    let tokenizer_config = files.tokenizer.with_file_name("tokenizer_config.json");
    for source in [&files.config, &files.tokenizer, &tokenizer_config] {
        if !source.is_file() {
            continue;
        }
        let bytes = std::fs::read(source).map_err(|e| Error::file(source, e))?;
        let name = source.file_name().unwrap_or_default();
        write_atomically(&output.join(name), &bytes)?;
    }
    Ok(())
}
