//! LoRA as PEFT defines it: the adapter configuration, the low-rank weights of each adapted layer,
//! the linear layer that adds them on the fly, and merging them into the base weights.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::gemm::{matmul, products_with_weights};
use crate::model::t5::{Dropout, Mask, apply_mask};

/// Which modules an adapter targets: PEFT accepts a list of names (matched against the end of the
/// module path) or one regular expression (matched against the whole path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    Names(Vec<String>),
    Pattern(String),
}

impl TargetModules {
    pub fn matches(&self, module_path: &str) -> bool {
        match self {
            TargetModules::Names(names) => {
                names.iter().any(|name| ends_with_module(module_path, name))
            }
            TargetModules::Pattern(pattern) => full_match(pattern, module_path),
        }
    }

    pub fn describe(&self) -> Vec<String> {
        match self {
            TargetModules::Names(names) => names.clone(),
            TargetModules::Pattern(pattern) => vec![pattern.clone()],
        }
    }
}

fn ends_with_module(path: &str, name: &str) -> bool {
    path == name || path.ends_with(&format!(".{name}"))
}

fn full_match(pattern: &str, text: &str) -> bool {
    Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(text))
}

/// The subset of PEFT's `LoraConfig` that changes results; unknown keys are ignored when reading.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoraConfig {
    #[serde(default = "default_peft_type")]
    pub peft_type: String,
    #[serde(default = "default_task_type")]
    pub task_type: Option<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default = "default_r")]
    pub r: usize,
    #[serde(default = "default_alpha")]
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: Option<TargetModules>,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, usize>,
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, f64>,
    #[serde(default = "default_bias")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    pub inference_mode: bool,
}

fn default_peft_type() -> String {
    "LORA".to_string()
}
fn default_task_type() -> Option<String> {
    Some("SEQ_2_SEQ_LM".to_string())
}
fn default_r() -> usize {
    8
}
fn default_alpha() -> f64 {
    8.0
}
fn default_bias() -> String {
    "none".to_string()
}

impl LoraConfig {
    /// Refuses the PEFT features whose results we would not reproduce.
    pub fn check_supported(&self) -> std::result::Result<(), String> {
        if self.peft_type != "LORA" {
            return Err(format!(
                "peft_type \"{}\" is not supported (only LORA)",
                self.peft_type
            ));
        }
        if self.use_dora {
            return Err("DoRA adapters (use_dora) are not supported".to_string());
        }
        if self.bias != "none" {
            return Err(format!(
                "bias \"{}\" is not supported (T5 has no biases)",
                self.bias
            ));
        }
        if self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err("modules_to_save is not supported".to_string());
        }
        if self.r == 0 {
            return Err("r (the rank) must be at least 1".to_string());
        }
        if let Some((module, _)) = self.rank_pattern.iter().find(|(_, rank)| **rank == 0) {
            return Err(format!(
                "rank_pattern gives \"{module}\" rank 0; a rank is at least 1"
            ));
        }
        if !self.lora_alpha.is_finite() || self.alpha_pattern.values().any(|a| !a.is_finite()) {
            return Err("lora_alpha must be a number".to_string());
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err("lora_dropout must be at least 0 and below 1".to_string());
        }
        match &self.target_modules {
            Some(TargetModules::Names(names)) if names.is_empty() => {
                Err("target_modules is an empty list: it names no layer to adapt".to_string())
            }
            Some(TargetModules::Pattern(pattern))
                if Regex::new(&format!("^(?:{pattern})$")).is_err() =>
            {
                Err(format!(
                    "target_modules \"{pattern}\" is not a valid regular expression"
                ))
            }
            _ => Ok(()),
        }
    }

    /// The value of a `rank_pattern` / `alpha_pattern` entry for `module_path`, as PEFT resolves it.
    fn pattern_value<T: Copy>(patterns: &BTreeMap<String, T>, module_path: &str) -> Option<T> {
        patterns
            .iter()
            .find(|(pattern, _)| {
                ends_with_module(module_path, pattern)
                    || full_match(&format!("(.*\\.)?(?:{pattern})"), module_path)
            })
            .map(|(_, value)| *value)
    }

    pub fn rank_for(&self, module_path: &str) -> usize {
        Self::pattern_value(&self.rank_pattern, module_path).unwrap_or(self.r)
    }

    /// The factor applied to `B @ A`: alpha / r, or alpha / sqrt(r) for rank-stabilized LoRA.
    pub fn scale_for(&self, module_path: &str) -> f64 {
        let rank = self.rank_for(module_path) as f64;
        let alpha =
            Self::pattern_value(&self.alpha_pattern, module_path).unwrap_or(self.lora_alpha);
        if self.use_rslora {
            alpha / rank.sqrt()
        } else {
            alpha / rank
        }
    }
}

/// The low-rank update of one linear layer: `x @ A^T @ B^T * scale`.
#[derive(Debug, Clone)]
pub struct LoraWeights {
    /// `(r, in_features)`.
    pub a: Tensor,
    /// `(out_features, r)`.
    pub b: Tensor,
    pub scale: f64,
}

/// A LoRA adapter: its configuration and the weights of each adapted module, keyed by the module's
/// path in PEFT's naming (`encoder.block.0.layer.0.SelfAttention.q`).
#[derive(Debug, Clone)]
pub struct Adapter {
    pub config: LoraConfig,
    pub layers: BTreeMap<String, LoraWeights>,
}

impl Adapter {
    /// Builds an adapter from `(module path, A, B)` triples, checking each against the model's layer
    /// shapes `(name, out, in)` so that a mismatch is reported here rather than mid-computation.
    pub fn new(
        config: LoraConfig,
        weights: Vec<(String, Tensor, Tensor)>,
        model_linears: &[(String, usize, usize)],
    ) -> Result<Self> {
        config.check_supported().map_err(Error::settings)?;
        let shapes: HashMap<&str, (usize, usize)> = model_linears
            .iter()
            .map(|(n, o, i)| (n.as_str(), (*o, *i)))
            .collect();
        let mut layers = BTreeMap::new();
        for (path, a, b) in weights {
            let Some(&(out_features, in_features)) = shapes.get(path.as_str()) else {
                return Err(Error::settings(format!(
                    "the adapter adapts \"{path}\", which this model does not have (is it for another base model?)"
                )));
            };
            let (rank, a_in) = a.dims2()?;
            let (b_out, b_rank) = b.dims2()?;
            if a_in != in_features || b_out != out_features || b_rank != rank {
                return Err(Error::settings(format!(
                    "the adapter's weights for \"{path}\" are {rank}x{a_in} and {b_out}x{b_rank}, but this model's layer is {out_features}x{in_features} (is it for another base model?)"
                )));
            }
            let scale = config.scale_for(&path);
            layers.insert(path, LoraWeights { a, b, scale });
        }
        if layers.is_empty() {
            return Err(Error::settings("the adapter has no LoRA weights"));
        }
        Ok(Self { config, layers })
    }
}

impl Adapter {
    /// Every LoRA weight with its name as gradients and checkpoints name it
    /// (`{module}.lora_A.weight`, `{module}.lora_B.weight`).
    pub fn weights(&self) -> impl Iterator<Item = (String, &Tensor)> {
        self.layers
            .iter()
            .flat_map(|(module, lora)| lora_names(module).into_iter().zip([&lora.a, &lora.b]))
    }

    /// [`Adapter::weights`], to change.
    pub fn weights_mut(&mut self) -> impl Iterator<Item = (String, &mut Tensor)> {
        self.layers.iter_mut().flat_map(|(module, lora)| {
            lora_names(module)
                .into_iter()
                .zip([&mut lora.a, &mut lora.b])
        })
    }
}

fn lora_names(module: &str) -> [String; 2] {
    [
        format!("{module}.lora_A.weight"),
        format!("{module}.lora_B.weight"),
    ]
}

/// A bias-free linear layer `y = x W^T` that adds the active adapter's update for its module path.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `(out_features, in_features)`, as PyTorch stores it.
    weight: Tensor,
    name: String,
}

impl Linear {
    pub fn load(
        vb: VarBuilder,
        out_features: usize,
        in_features: usize,
        name: String,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get((out_features, in_features), "weight")?,
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `(out_features, in_features)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub(crate) fn weight_mut(&mut self) -> &mut Tensor {
        &mut self.weight
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    /// `xs (..., in)` to `(..., out)`; leading dimensions are folded into one matrix multiply.
    pub fn forward(&self, xs: &Tensor, adapter: Option<&Adapter>) -> Result<Tensor> {
        Ok(self.forward_taped(xs, adapter, &mut None)?.0)
    }

    /// [`Linear::forward`] with the LoRA path's dropout when training, and what the backward pass
    /// needs.
    pub(crate) fn forward_taped(
        &self,
        xs: &Tensor,
        adapter: Option<&Adapter>,
        dropout: &mut Option<Dropout>,
    ) -> Result<(Tensor, LinearTape)> {
        let mut outputs = Self::forward_each(&[self], xs, adapter, dropout)?;
        Ok(outputs.remove(0))
    }

    /// Each of `linears` applied to the same `xs`: while decoding, their products share one pass
    /// over the threads.
    pub(crate) fn forward_each(
        linears: &[&Linear],
        xs: &Tensor,
        adapter: Option<&Adapter>,
        dropout: &mut Option<Dropout>,
    ) -> Result<Vec<(Tensor, LinearTape)>> {
        let flat = flatten(xs)?;
        let weights: Vec<&Tensor> = linears.iter().map(|l| &l.weight).collect();
        let products = products_with_weights(&flat, &weights)?;
        linears
            .iter()
            .zip(products)
            .map(|(linear, out)| linear.finish(out, flat.clone(), xs, adapter, dropout))
            .collect()
    }

    /// Adds the adapter's update to the base product `out` of `flat` and restores `xs`'s leading
    /// dimensions.
    fn finish(
        &self,
        mut out: Tensor,
        flat: Tensor,
        xs: &Tensor,
        adapter: Option<&Adapter>,
        dropout: &mut Option<Dropout>,
    ) -> Result<(Tensor, LinearTape)> {
        let lora = match adapter.and_then(|a| Some((a, a.layers.get(&self.name)?))) {
            Some((adapter, lora)) => {
                let mask = match dropout {
                    Some(dropout) => dropout.mask(adapter.config.lora_dropout, &flat)?,
                    None => None,
                };
                let hidden = matmul(&apply_mask(&flat, &mask)?, &lora.a.t()?)?;
                out = (out + (matmul(&hidden, &lora.b.t()?)? * lora.scale)?)?;
                Some(LoraTape { mask, hidden })
            }
            None => None,
        };
        let mut shape = xs.dims()[..xs.rank() - 1].to_vec();
        shape.push(self.out_features());
        // A frozen weight's gradient is not computed, so only its LoRA layer needs the input;
        // without an adapter every weight is trained and needs it.
        let input = (adapter.is_none() || lora.is_some()).then_some(flat);
        Ok((out.reshape(shape)?, LinearTape { input, lora }))
    }

    /// Folds the adapter's update into the weight: `W + scale * B @ A`, summed in f32 and stored
    /// in the weight's type (rounded to bf16 for a bf16 weight, as PEFT merges into a bf16 base).
    pub fn merge(&mut self, lora: &LoraWeights) -> Result<()> {
        let delta = (lora.b.matmul(&lora.a)? * lora.scale)?;
        let stored = self.weight.dtype();
        self.weight = (self.weight.to_dtype(DType::F32)? + delta)?.to_dtype(stored)?;
        Ok(())
    }
}

/// What a linear layer's forward pass keeps for the backward pass.
pub(crate) struct LinearTape {
    /// The input as one matrix `(rows, in)`, kept only where a gradient needs it: for the LoRA
    /// layer when an adapter is trained, for the weight itself when every weight is.
    pub input: Option<Tensor>,
    pub lora: Option<LoraTape>,
}

/// The LoRA path's part of a [`LinearTape`].
pub(crate) struct LoraTape {
    /// The dropout mask on the input, when training drew one. The backward pass applies it to the
    /// kept input again rather than keeping the dropped input: layers that read one input (q, k
    /// and v) share that input, and each mask is a quarter of its size.
    pub mask: Option<Mask>,
    /// `dropout(x) A^T`, `(rows, r)`.
    pub hidden: Tensor,
}

/// `xs (..., in)` as one matrix `(rows, in)`.
fn flatten(xs: &Tensor) -> Result<Tensor> {
    let dims = xs.dims();
    let (lead, last) = dims.split_at(dims.len() - 1);
    Ok(xs.reshape((lead.iter().product::<usize>(), last[0]))?)
}
