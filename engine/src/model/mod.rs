//! Model folders: finding a checkpoint's files (config, weights whole or sharded, tokenizer),
//! choosing the device, and loading the T5 with its tokenizer.

pub(crate) mod cpu;
pub(crate) mod gemm;
pub mod t5;

pub use cpu::{Level as KernelLevel, checked_level as kernel_level};
pub use dialora_settings::Precision;

use std::collections::HashMap;
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

    /// The folder's config.json, read and checked (a T5-family model we run).
    pub fn read_config(&self) -> Result<t5::Config> {
        let bytes = std::fs::read(&self.config).map_err(|e| Error::file(&self.config, e))?;
        let config: t5::Config =
            crate::error::read_json(&self.config, &bytes, "not a model config")?;
        config
            .validate()
            .map_err(|m| Error::invalid(&self.config, m))?;
        Ok(config)
    }

    /// The folder's tokenizer, checked against its config (for measuring data without the
    /// weights).
    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        self.tokenizer_for(&self.read_config()?)
    }

    fn tokenizer_for(&self, config: &t5::Config) -> Result<TextTokenizer> {
        let tokenizer = TextTokenizer::load(&self.tokenizer)?;
        let tokens = tokenizer.vocabulary_size();
        if tokens > config.vocab_size {
            return Err(Error::invalid(
                &self.tokenizer,
                format!(
                    "has {tokens} tokens but the model has {} (vocab_size in config.json): is it another model's tokenizer?",
                    config.vocab_size
                ),
            ));
        }
        Ok(tokenizer)
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
    /// How its frozen weights are stored: f32 or bf16, never `Auto`.
    pub precision: Precision,
}

/// The precision `requested` gives on `device`: `Auto` is bf16 where the processor's bf16
/// products are faster than its f32 ones (the kernel level `amx`, which `DIALORA_CPU` may cap),
/// else f32.
pub fn resolve_precision(requested: Precision, device: &Device) -> Precision {
    match requested {
        Precision::Auto if device.is_cpu() && cpu::level() >= KernelLevel::Amx => Precision::Bf16,
        Precision::Auto => Precision::F32,
        chosen => chosen,
    }
}

impl LoadedModel {
    /// Loads and checks a model folder's files: the config (a T5 we run, of the weights' sizes),
    /// the tokenizer against the config's vocabulary, the weights' types and values. Every
    /// command and the app load models here, so a broken folder is named in one line before any
    /// work.
    pub fn load(
        files: &ModelFiles,
        name: &str,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        kernel_level().map_err(Error::settings)?;
        let config = files.read_config()?;
        let tokenizer = files.tokenizer_for(&config)?;
        check_weights(files, &config)?;
        let precision = resolve_precision(precision, device);
        let stored = match precision {
            Precision::Bf16 => DType::BF16,
            Precision::Auto | Precision::F32 => DType::F32,
        };
        // SAFETY: the weights are memory-mapped read-only; dialora never writes to a model it reads.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files.weights, stored, device) }
            .map_err(|e| t5::T5::load_error(&files.weights[0], e))?;
        let t5 = t5::T5::load(vb, &config).map_err(|e| t5::T5::load_error(&files.weights[0], e))?;
        Ok(Self {
            t5,
            tokenizer,
            name: name.to_string(),
            precision,
        })
    }
}

/// Checks the weights before they are loaded: floating-point tensors of finite values, of the
/// sizes the config gives. A mismatch names config.json and its field, and nothing is allocated
/// by a size the config made up.
fn check_weights(files: &ModelFiles, config: &t5::Config) -> Result<()> {
    let mut shapes: HashMap<String, (Vec<usize>, PathBuf)> = HashMap::new();
    for file in &files.weights {
        // SAFETY: read-only map of a file dialora never writes.
        let mapped = unsafe { candle_core::safetensors::MmapedSafetensors::new(file) }
            .map_err(|e| t5::T5::load_error(file, e))?;
        for (name, view) in mapped.tensors() {
            let dtype = DType::try_from(view.dtype()).ok().filter(|d| d.is_float());
            let Some(dtype) = dtype else {
                return Err(Error::invalid(
                    file,
                    format!(
                        "tensor \"{name}\" holds {:?} values; model weights are floating point (F32, F16 or BF16)",
                        view.dtype()
                    ),
                ));
            };
            if !all_finite(view.data(), dtype) {
                return Err(Error::invalid(
                    file,
                    format!(
                        "tensor \"{name}\" holds values that are not numbers (NaN or infinite): the weights are damaged"
                    ),
                ));
            }
            shapes.insert(name, (view.shape().to_vec(), file.clone()));
        }
    }
    check_sizes(config, &shapes).map_err(|(field, found)| {
        Error::invalid(
            &files.config,
            format!("{field} does not match the weights: {found}"),
        )
    })
}

/// The config's sizes against the weights' shapes: `(field, what the weights hold)` for the
/// first that disagrees.
fn check_sizes(
    c: &t5::Config,
    shapes: &HashMap<String, (Vec<usize>, PathBuf)>,
) -> std::result::Result<(), (String, String)> {
    let file_name = |path: &Path| {
        path.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    };
    let must_be = |name: &str, dims: &[usize], field: &str| match shapes.get(name) {
        Some((shape, file)) if shape.as_slice() != dims => Err((
            field.to_string(),
            format!(
                "{name} in {} is {shape:?}, and the config makes it {dims:?}",
                file_name(file)
            ),
        )),
        _ => Ok(()),
    };
    let embedding = [
        "shared.weight",
        "encoder.embed_tokens.weight",
        "decoder.embed_tokens.weight",
    ]
    .into_iter()
    .find(|name| shapes.contains_key(*name))
    .unwrap_or("shared.weight");
    must_be(
        embedding,
        &[c.vocab_size, c.d_model],
        "vocab_size (or d_model)",
    )?;
    let inner = c.num_heads * c.d_kv;
    for stack in ["encoder", "decoder"] {
        let attention = format!("{stack}.block.0.layer.0.SelfAttention");
        must_be(
            &format!("{attention}.q.weight"),
            &[inner, c.d_model],
            "num_heads (or d_kv)",
        )?;
        must_be(
            &format!("{attention}.relative_attention_bias.weight"),
            &[c.relative_attention_num_buckets, c.num_heads],
            "relative_attention_num_buckets (or num_heads)",
        )?;
    }
    let ffn = "encoder.block.0.layer.1.DenseReluDense";
    for name in ["wi", "wi_0"] {
        must_be(
            &format!("{ffn}.{name}.weight"),
            &[c.d_ff, c.d_model],
            "d_ff",
        )?;
    }
    for (stack, field, layers) in [
        ("encoder", "num_layers", c.num_layers),
        ("decoder", "num_decoder_layers", c.decoder_layers()),
    ] {
        let prefix = format!("{stack}.block.");
        let held = shapes
            .keys()
            .filter_map(|name| {
                name.strip_prefix(&prefix)?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map_or(0, |last| last + 1);
        if held != layers {
            return Err((
                field.to_string(),
                format!("it says {layers} {stack} layers, and the weights hold {held}"),
            ));
        }
    }
    Ok(())
}

/// Whether every value of a tensor's raw little-endian data is a finite number (read on all
/// cores: a model's weights are hundreds of megabytes).
fn all_finite(data: &[u8], dtype: DType) -> bool {
    match dtype {
        DType::F64 => exponents_not_full::<8>(data, 0x7ff0_0000_0000_0000),
        DType::F32 => exponents_not_full::<4>(data, 0x7f80_0000),
        DType::F16 => exponents_not_full::<2>(data, 0x7c00),
        DType::BF16 => exponents_not_full::<2>(data, 0x7f80),
        _ => true,
    }
}

/// Whether no value of `WIDTH` bytes has all the bits of `exponent` set (NaN and infinities do).
/// Branch-free within a chunk, so that it runs at memory speed.
fn exponents_not_full<const WIDTH: usize>(data: &[u8], exponent: u64) -> bool {
    use rayon::prelude::*;
    data.par_chunks(1 << 20).all(|chunk| {
        let full = chunk.chunks_exact(WIDTH).fold(false, |full, value| {
            let mut bits = [0u8; 8];
            bits[..WIDTH].copy_from_slice(value);
            full | (u64::from_le_bytes(bits) & exponent == exponent)
        });
        !full
    })
}
