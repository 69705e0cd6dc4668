//! Model folders: finding a checkpoint's files (config, weights whole or sharded, tokenizer),
//! choosing the device, and loading the T5 with its tokenizer.

pub(crate) mod cpu;
pub(crate) mod gemm;
pub mod t5;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};
use crate::tokenize::TextTokenizer;

/// Where computation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The GPU when one is compiled in and present, otherwise the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    Metal,
}

impl DeviceChoice {
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => {
                if candle_core::utils::cuda_is_available() {
                    Ok(Device::new_cuda(0)?)
                } else if candle_core::utils::metal_is_available() {
                    Ok(Device::new_metal(0)?)
                } else {
                    Ok(Device::Cpu)
                }
            }
            DeviceChoice::Cuda if candle_core::utils::cuda_is_available() => {
                Ok(Device::new_cuda(0)?)
            }
            DeviceChoice::Cuda => Err(Error::settings(
                "--device cuda: this build of dialora has no CUDA support or no CUDA GPU was found (build with --features cuda)",
            )),
            DeviceChoice::Metal if candle_core::utils::metal_is_available() => {
                Ok(Device::new_metal(0)?)
            }
            DeviceChoice::Metal => Err(Error::settings(
                "--device metal: this build of dialora has no Metal support (build with --features metal on macOS)",
            )),
        }
    }
}

/// The files of a model checkpoint.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub weights: Vec<PathBuf>,
    pub tokenizer: PathBuf,
}

/// The largest elementwise difference of two tensors of one shape, for the kernels' tests.
#[cfg(test)]
pub(crate) fn max_abs_difference(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("tensors of one shape")
}

pub const SHARD_INDEX: &str = "model.safetensors.index.json";

impl ModelFiles {
    /// The files of a local model folder; says which one is missing.
    pub fn in_folder(folder: &Path) -> Result<Self> {
        if !folder.is_dir() {
            return Err(Error::missing(folder, "no such model folder"));
        }
        let config = folder.join("config.json");
        if !config.is_file() {
            return Err(Error::missing(
                config,
                "missing: a model folder needs config.json",
            ));
        }
        let tokenizer = folder.join("tokenizer.json");
        if !tokenizer.is_file() {
            return Err(Error::missing(
                tokenizer,
                "missing: a model folder needs tokenizer.json",
            ));
        }
        let single = folder.join("model.safetensors");
        let index = folder.join(SHARD_INDEX);
        let weights = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            shard_files(&index)?
                .into_iter()
                .map(|name| folder.join(name))
                .collect()
        } else if folder.join("pytorch_model.bin").is_file() {
            return Err(Error::invalid(
                folder.join("pytorch_model.bin"),
                "pickled weights are not loaded (they can run code); save the model with safe_serialization=True",
            ));
        } else {
            return Err(Error::missing(
                single,
                "missing: a model folder needs model.safetensors or a sharded index",
            ));
        };
        for shard in &weights {
            if !shard.is_file() {
                return Err(Error::missing(
                    shard,
                    "missing weights shard named by the index",
                ));
            }
        }
        Ok(Self {
            config,
            weights,
            tokenizer,
        })
    }
}

/// The distinct shard file names of a sharded checkpoint's index, in order of first appearance.
pub fn shard_files(index: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(index).map_err(|e| Error::file(index, e))?;
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid_at(index, e.line(), format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::invalid(index, "no \"weight_map\" object"))?;
    let mut files: Vec<String> = Vec::new();
    for value in map.values() {
        let name = value
            .as_str()
            .ok_or_else(|| Error::invalid(index, "weight_map values must be file names"))?;
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            return Err(Error::invalid(
                index,
                format!("shard name \"{name}\" is not a plain file name"),
            ));
        }
        if !files.iter().any(|f| f == name) {
            files.push(name.to_string());
        }
    }
    Ok(files)
}

/// A loaded T5 checkpoint and its tokenizer.
pub struct LoadedModel {
    pub t5: t5::T5,
    pub tokenizer: TextTokenizer,
    /// What the user named: a folder or a Hub id.
    pub name: String,
}

impl LoadedModel {
    pub fn load(files: &ModelFiles, name: &str, device: &Device) -> Result<Self> {
        let config_bytes =
            std::fs::read(&files.config).map_err(|e| Error::file(&files.config, e))?;
        let config: t5::Config = serde_json::from_slice(&config_bytes).map_err(|e| {
            Error::invalid_at(&files.config, e.line(), format!("not a model config: {e}"))
        })?;
        config
            .validate()
            .map_err(|m| Error::invalid(&files.config, m))?;
        let tokenizer = TextTokenizer::load(&files.tokenizer)?;
        // SAFETY: the weights are memory-mapped read-only; dialora never writes to a model it reads.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files.weights, DType::F32, device) }
            .map_err(|e| t5::T5::load_error(&files.weights[0], e))?;
        let t5 = t5::T5::load(vb, &config).map_err(|e| t5::T5::load_error(&files.weights[0], e))?;
        Ok(Self {
            t5,
            tokenizer,
            name: name.to_string(),
        })
    }
}
