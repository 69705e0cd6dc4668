//! Adapter files: PEFT's folder layout (`adapter_config.json` + `adapter_model.safetensors`, PEFT's
//! key names), read from any PEFT version and written so that `PeftModel.from_pretrained` loads it;
//! the single-file form for sharing (the same safetensors with the PEFT config and a short card in
//! its metadata); and the description `dialora adapter inspect` prints. Pickled `.bin` adapters are
//! refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fsutil::{NewFolder, write_atomically};
use crate::lora::LoraConfig;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const PICKLE_FILE: &str = "adapter_model.bin";
const KEY_PREFIX: &str = "base_model.model.";
/// Metadata keys of the single-file form (and of the weights file of folders dialora writes).
const CONFIG_KEY: &str = "dialora.adapter_config";
const CARD_KEY: &str = "dialora.card";
/// The extension dialora gives single-file adapters.
pub const FILE_EXTENSION: &str = "dlora";

/// An adapter as read from disk, before it is checked against a model.
pub struct AdapterFiles {
    pub folder: PathBuf,
    pub config: LoraConfig,
    /// `(module path, A, B)` for each adapted module.
    pub weights: Vec<(String, Tensor, Tensor)>,
    /// Size of the weights file in bytes.
    pub bytes: u64,
    /// The card (JSON) dialora wrote with the adapter, when there is one.
    pub card: Option<String>,
}

impl AdapterFiles {
    /// The card as a JSON object, when there is one.
    pub fn card_json(&self) -> Option<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(self.card.as_deref()?)
            .ok()
            .filter(serde_json::Value::is_object)
    }

    /// The prompt template the adapter was trained with, when its card records one (adapters
    /// from PEFT have none, and are used with the reference prompt).
    pub fn prompt_template(&self) -> Option<String> {
        card_prompt_template(self.card.as_deref())
    }
}

/// The `prompt_template` of a card (JSON), when it has a usable one.
fn card_prompt_template(card: Option<&str>) -> Option<String> {
    let card: serde_json::Value = serde_json::from_str(card?).ok()?;
    card.get("prompt_template")?
        .as_str()
        .filter(|t| t.contains("{dialogue}"))
        .map(str::to_string)
}

/// Reads a PEFT adapter folder (or the path of its `adapter_config.json`) or a single-file adapter.
pub fn read(path: &Path, device: &Device) -> Result<AdapterFiles> {
    let folder = if path.is_file() {
        if path.file_name().is_some_and(|n| n != CONFIG_FILE) {
            return read_single_file(path, device);
        }
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    if !folder.is_dir() {
        return Err(Error::missing(path, "no such adapter folder"));
    }
    let config_path = folder.join(CONFIG_FILE);
    let weights_path = folder.join(WEIGHTS_FILE);
    if !weights_path.exists() && folder.join(PICKLE_FILE).exists() {
        return Err(Error::invalid(
            folder.join(PICKLE_FILE),
            "pickled adapters are not loaded (they can run code); convert it to safetensors with PEFT's save_pretrained(safe_serialization=True)",
        ));
    }
    let config_bytes = std::fs::read(&config_path).map_err(|e| Error::file(&config_path, e))?;
    let config: LoraConfig =
        crate::error::read_json(&config_path, &config_bytes, "not a PEFT adapter config")?;
    config
        .check_supported()
        .map_err(|m| Error::invalid(&config_path, m))?;

    let bytes = std::fs::read(&weights_path).map_err(|e| Error::file(&weights_path, e))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| {
        Error::invalid(
            &weights_path,
            format!("not a readable safetensors file: {}", one_line(&e)),
        )
    })?;
    let weights = pair_up(tensors, &weights_path)?;
    check_weights(&config, &weights, &config_path, &weights_path)?;
    let card = metadata(&bytes).and_then(|mut m| m.remove(CARD_KEY));
    Ok(AdapterFiles {
        folder,
        config,
        weights,
        bytes: bytes.len() as u64,
        card,
    })
}

/// The metadata of a safetensors file's header.
fn metadata(bytes: &[u8]) -> Option<std::collections::HashMap<String, String>> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).ok()?;
    header.metadata().clone()
}

fn read_single_file(path: &Path, device: &Device) -> Result<AdapterFiles> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    let not_adapter = || {
        Error::invalid(
            path,
            format!(
                "not an adapter: expected a PEFT adapter folder or a single-file adapter (.{FILE_EXTENSION})"
            ),
        )
    };
    let mut metadata = metadata(&bytes).ok_or_else(not_adapter)?;
    let config_text = metadata.remove(CONFIG_KEY).ok_or_else(not_adapter)?;
    let config: LoraConfig = crate::error::read_json(
        path,
        config_text.as_bytes(),
        "the adapter's embedded config (dialora.adapter_config) is not valid",
    )
    .map_err(|e| match e {
        // The line is the embedded text's, not the file's.
        Error::Invalid { path, message, .. } => Error::invalid(path, message),
        other => other,
    })?;
    config
        .check_supported()
        .map_err(|m| Error::invalid(path, m))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| {
        Error::invalid(
            path,
            format!("not a readable safetensors file: {}", one_line(&e)),
        )
    })?;
    let weights = pair_up(tensors, path)?;
    check_weights(&config, &weights, path, path)?;
    Ok(AdapterFiles {
        folder: path.to_path_buf(),
        config,
        weights,
        bytes: bytes.len() as u64,
        card: metadata.remove(CARD_KEY),
    })
}

fn one_line(error: &impl std::fmt::Display) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Groups `...q.lora_A[.adapter].weight` and `...q.lora_B[.adapter].weight` by module path.
fn pair_up(
    tensors: std::collections::HashMap<String, Tensor>,
    path: &Path,
) -> Result<Vec<(String, Tensor, Tensor)>> {
    let mut halves: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
    for (key, tensor) in tensors {
        let stripped = key.strip_prefix(KEY_PREFIX).unwrap_or(&key);
        let Some((module, part)) = split_lora_key(stripped) else {
            return Err(Error::invalid(
                path,
                format!("unexpected tensor \"{key}\": only LoRA A/B weights are supported"),
            ));
        };
        if !tensor.dtype().is_float() {
            return Err(Error::invalid(
                path,
                format!(
                    "tensor \"{key}\" holds {:?} values; adapter weights are floating point",
                    tensor.dtype()
                ),
            ));
        }
        if tensor.rank() != 2 {
            return Err(Error::invalid(
                path,
                format!(
                    "tensor \"{key}\" has shape {:?}; LoRA weights are matrices",
                    tensor.dims()
                ),
            ));
        }
        let tensor = tensor.to_dtype(DType::F32)?;
        let entry = halves.entry(module.to_string()).or_default();
        match part {
            LoraPart::A => entry.0 = Some(tensor),
            LoraPart::B => entry.1 = Some(tensor),
        }
    }
    halves
        .into_iter()
        .map(|(module, pair)| match pair {
            (Some(a), Some(b)) => Ok((module, a, b)),
            _ => Err(Error::invalid(
                path,
                format!("module \"{module}\" has only one of lora_A and lora_B"),
            )),
        })
        .collect()
}

/// The one check of an adapter's weights against its config, made by every reading: each
/// module is one the config targets, with the rank the config gives it, and every value is a
/// finite number. `config_path` is where the config was read (the file itself for `.dlora`).
fn check_weights(
    config: &LoraConfig,
    weights: &[(String, Tensor, Tensor)],
    config_path: &Path,
    weights_path: &Path,
) -> Result<()> {
    if weights.is_empty() {
        return Err(Error::invalid(
            weights_path,
            "the adapter has no LoRA weights",
        ));
    }
    for (module, a, b) in weights {
        let rank = a.dims()[0];
        if b.dims()[1] != rank {
            return Err(Error::invalid(
                weights_path,
                format!(
                    "the weights of \"{module}\" disagree: lora_A has rank {rank}, lora_B {}",
                    b.dims()[1]
                ),
            ));
        }
        let expected = config.rank_for(module);
        if expected != rank {
            return Err(Error::invalid(
                config_path,
                format!(
                    "r (or rank_pattern) says rank {expected} for \"{module}\", but its weights have rank {rank}"
                ),
            ));
        }
        if let Some(targets) = &config.target_modules
            && !targets.matches(module)
        {
            return Err(Error::invalid(
                config_path,
                format!(
                    "the weights adapt \"{module}\", which target_modules ({}) does not name",
                    targets.describe().join(", ")
                ),
            ));
        }
        for (part, tensor) in [("lora_A", a), ("lora_B", b)] {
            let values = tensor.flatten_all()?.to_vec1::<f32>()?;
            if values.iter().any(|v| !v.is_finite()) {
                return Err(Error::invalid(
                    weights_path,
                    format!(
                        "the {part} weights of \"{module}\" hold values that are not numbers (NaN or infinite): the adapter is broken"
                    ),
                ));
            }
        }
    }
    Ok(())
}

enum LoraPart {
    A,
    B,
}

/// `encoder...q.lora_A.weight` (or `.lora_A.default.weight`, as old PEFT versions wrote) to
/// `("encoder...q", A)`.
fn split_lora_key(key: &str) -> Option<(&str, LoraPart)> {
    let without_weight = key.strip_suffix(".weight")?;
    for (marker, part) in [(".lora_A", LoraPart::A), (".lora_B", LoraPart::B)] {
        if let Some(index) = without_weight.rfind(marker) {
            let rest = &without_weight[index + marker.len()..];
            if rest.is_empty() || (rest.starts_with('.') && !rest[1..].contains('.')) {
                return Some((&without_weight[..index], part));
            }
        }
    }
    None
}

/// Reads an adapter in any form dialora reads and writes it as a PEFT folder in today's layout.
pub fn import(source: &Path, folder: &Path) -> Result<()> {
    write_copy(&read_to_copy(source)?, folder)
}

/// An adapter in any form dialora reads, on the CPU, to be copied (its card read first, say).
pub fn read_to_copy(source: &Path) -> Result<AdapterFiles> {
    read(source, &Device::Cpu)
}

/// Writes `files` as a PEFT folder in today's layout, with their card.
pub fn write_copy(files: &AdapterFiles, folder: &Path) -> Result<()> {
    write_folder(
        &files.config,
        module_weights(files),
        files.card.as_deref(),
        folder,
    )
}

/// Reads an adapter in any form dialora reads and makes it one shareable file (its bytes). The card
/// carries the adapter's name (its folder's, unless the card names it already), so that it is
/// imported under that name whatever the file is called; with `rouge`, the card records those
/// scores (from an evaluation of the adapter).
pub fn export(source: &Path, rouge: Option<serde_json::Value>) -> Result<Vec<u8>> {
    let files = read(source, &Device::Cpu)?;
    let (config_text, tensors) = peft_parts(&files.config, module_weights(&files))?;
    let mut metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        (CONFIG_KEY.to_string(), config_text),
    ]);
    let mut card = files.card_json().unwrap_or_else(
        || serde_json::json!({ "base_model": files.config.base_model_name_or_path }),
    );
    if card.get("name").is_none()
        && source.is_dir()
        && let Some(name) = source.file_name()
    {
        card["name"] = name.to_string_lossy().into();
    }
    if let Some(rouge) = rouge {
        card["rouge"] = rouge;
    }
    metadata.insert(CARD_KEY.to_string(), card.to_string());
    serialize_tensors(&tensors, metadata)
}

fn module_weights(files: &AdapterFiles) -> impl Iterator<Item = (&str, &Tensor, &Tensor)> {
    files
        .weights
        .iter()
        .map(|(module, a, b)| (module.as_str(), a, b))
}

/// The config as PEFT writes it (for inference) and the weights under PEFT's key names.
fn peft_parts<'a>(
    config: &LoraConfig,
    weights: impl Iterator<Item = (&'a str, &'a Tensor, &'a Tensor)>,
) -> Result<(String, Vec<(String, Tensor)>)> {
    let mut config = config.clone();
    config.inference_mode = true;
    let json = peft_config_json(&config);
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::settings(e.to_string()))?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (module, a, b) in weights {
        tensors.push((
            format!("{KEY_PREFIX}{module}.lora_A.weight"),
            a.contiguous()?,
        ));
        tensors.push((
            format!("{KEY_PREFIX}{module}.lora_B.weight"),
            b.contiguous()?,
        ));
    }
    Ok((text, tensors))
}

/// Writes a PEFT adapter folder; `card` (JSON) goes into the weights file's metadata, which PEFT
/// ignores and `dialora adapter export` carries into the single file.
pub fn write_folder<'a>(
    config: &LoraConfig,
    weights: impl Iterator<Item = (&'a str, &'a Tensor, &'a Tensor)>,
    card: Option<&str>,
    folder: &Path,
) -> Result<()> {
    let made = NewFolder::create(folder)?;
    let (text, tensors) = peft_parts(config, weights)?;
    let mut metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    if let Some(card) = card {
        metadata.insert(CARD_KEY.to_string(), card.to_string());
    }
    let data = serialize_tensors(&tensors, metadata)?;
    write_atomically(&folder.join(WEIGHTS_FILE), &data)?;
    write_atomically(&folder.join(CONFIG_FILE), text.as_bytes())?;
    made.keep();
    Ok(())
}

/// The output rule for an adapter folder to be written: neither of its files may be replaced
/// unless `overwrite`, and only when they are regular files.
pub fn check_new_folder(folder: &Path, overwrite: bool) -> Result<()> {
    crate::fsutil::check_new_files(folder, &[CONFIG_FILE, WEIGHTS_FILE], overwrite)
}

/// The config as PEFT writes it: every key `LoraConfig` has, so any PEFT version reads it.
fn peft_config_json(config: &LoraConfig) -> serde_json::Value {
    let mut json = serde_json::to_value(config).unwrap_or_default();
    if let Some(map) = json.as_object_mut() {
        for (key, value) in [
            ("layers_to_transform", serde_json::Value::Null),
            ("layers_pattern", serde_json::Value::Null),
            ("init_lora_weights", serde_json::Value::Bool(true)),
            ("revision", serde_json::Value::Null),
        ] {
            map.entry(key).or_insert(value);
        }
    }
    json
}

/// Serializes tensors in safetensors format with `metadata` in its header.
pub fn serialize_tensors(
    tensors: &[(String, Tensor)],
    metadata: BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (name, tensor) in tensors {
        let values = tensor
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((name.clone(), bytes, tensor.dims().to_vec()));
    }
    let views = owned
        .iter()
        .map(|(name, bytes, shape)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| Error::settings(format!("cannot serialize {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata: std::collections::HashMap<String, String> = metadata.into_iter().collect();
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::settings(format!("cannot serialize the adapter: {e}")))
}

/// What `dialora adapter inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub path: String,
    pub peft_type: String,
    pub task_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub use_rslora: bool,
    pub target_modules: Vec<String>,
    pub base_model: Option<String>,
    /// Number of tensors in the weights file.
    pub tensors: usize,
    /// Number of adapted modules.
    pub modules: usize,
    pub parameters: usize,
    pub bytes: u64,
    /// The modules adapted, grouped by their last name (`q`: 12).
    pub modules_by_name: BTreeMap<String, usize>,
    /// The prompt it was trained with, used with it unless told otherwise (none: the reference
    /// prompt).
    pub prompt_template: Option<String>,
    /// What dialora recorded when it trained the adapter: base model, data, steps, losses, ROUGE.
    pub card: Option<serde_json::Value>,
}

pub fn describe(path: &Path) -> Result<Description> {
    let files = read(path, &Device::Cpu)?;
    let mut modules_by_name = BTreeMap::new();
    for (module, _, _) in &files.weights {
        let name = module.rsplit('.').next().unwrap_or(module).to_string();
        *modules_by_name.entry(name).or_insert(0) += 1;
    }
    let parameters = files
        .weights
        .iter()
        .map(|(_, a, b)| a.elem_count() + b.elem_count())
        .sum();
    let prompt_template = files.prompt_template();
    let config = files.config;
    Ok(Description {
        path: path.display().to_string(),
        peft_type: config.peft_type.clone(),
        task_type: config.task_type.clone(),
        r: config.r,
        lora_alpha: config.lora_alpha,
        lora_dropout: config.lora_dropout,
        use_rslora: config.use_rslora,
        target_modules: config
            .target_modules
            .as_ref()
            .map(|t| t.describe())
            .unwrap_or_default(),
        base_model: config.base_model_name_or_path.clone(),
        tensors: files.weights.len() * 2,
        modules: files.weights.len(),
        parameters,
        bytes: files.bytes,
        modules_by_name,
        prompt_template,
        card: files
            .card
            .as_deref()
            .and_then(|card| serde_json::from_str(card).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_keys_of_every_peft_version_are_recognised() {
        let (module, part) =
            split_lora_key("encoder.block.0.layer.0.SelfAttention.q.lora_A.weight").unwrap();
        assert_eq!(module, "encoder.block.0.layer.0.SelfAttention.q");
        assert!(matches!(part, LoraPart::A));
        let (module, part) = split_lora_key("lm_head.lora_B.default.weight").unwrap();
        assert_eq!(module, "lm_head");
        assert!(matches!(part, LoraPart::B));
        assert!(split_lora_key("encoder.block.0.layer.0.SelfAttention.q.weight").is_none());
    }
}
