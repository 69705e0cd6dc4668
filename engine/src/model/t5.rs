//! The T5 encoder-decoder (T5 v1.0, T5 v1.1 / Flan-T5, mT5) with a LoRA hook on every linear layer.
//!
//! Follows transformers' `modeling_t5.py` operation for operation so that logits match it: RMS layer
//! norm without mean subtraction, unscaled attention with relative position buckets computed by the
//! first layer of each stack and shared by the others, gated or plain feed-forward, and the tied
//! embedding variant that scales the decoder output by `d_model^-0.5`.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::lora::{Adapter, Linear};

mod backprop;
mod forward;
pub use backprop::{Gradients, Trained};
pub use forward::{Dropout, Pair, Pass, Tape};
pub(crate) use forward::{Mask, apply_mask};

/// `config.json` of a T5-family checkpoint, with transformers' defaults for absent keys.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "default_d_model")]
    pub d_model: usize,
    #[serde(default = "default_d_kv")]
    pub d_kv: usize,
    #[serde(default = "default_d_ff")]
    pub d_ff: usize,
    #[serde(default = "default_num_layers")]
    pub num_layers: usize,
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    #[serde(default = "default_num_heads")]
    pub num_heads: usize,
    #[serde(default = "default_num_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_dropout_rate")]
    pub dropout_rate: f64,
    #[serde(default = "default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_feed_forward_proj")]
    pub feed_forward_proj: String,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(default = "default_eos_token_id")]
    pub eos_token_id: u32,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
}

fn default_vocab_size() -> usize {
    32128
}
fn default_d_model() -> usize {
    512
}
fn default_d_kv() -> usize {
    64
}
fn default_d_ff() -> usize {
    2048
}
fn default_num_layers() -> usize {
    6
}
fn default_num_heads() -> usize {
    8
}
fn default_num_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_dropout_rate() -> f64 {
    0.1
}
fn default_layer_norm_epsilon() -> f64 {
    1e-6
}
fn default_feed_forward_proj() -> String {
    "relu".to_string()
}
fn default_true() -> bool {
    true
}
fn default_eos_token_id() -> u32 {
    1
}

/// The feed-forward activation, as transformers derives it from `feed_forward_proj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// Exact GELU (`gelu`).
    GeluErf,
    /// The tanh approximation (`gelu_new`), which `gated-gelu` means for T5 v1.1 and Flan-T5.
    GeluTanh,
    Silu,
}

impl Activation {
    fn apply(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Relu => xs.relu(),
            Activation::GeluErf => xs.gelu_erf(),
            Activation::GeluTanh => xs.gelu(),
            Activation::Silu => xs.silu(),
        }
    }
}

impl Config {
    /// Checks that this is an architecture we run and returns its feed-forward shape.
    pub fn feed_forward(&self) -> std::result::Result<(Activation, bool), String> {
        let parts: Vec<&str> = self.feed_forward_proj.split('-').collect();
        let (gated, name) = match parts.as_slice() {
            [name] => (false, *name),
            ["gated", name] => (true, *name),
            _ => {
                return Err(format!(
                    "unsupported feed_forward_proj \"{}\"",
                    self.feed_forward_proj
                ));
            }
        };
        let activation = match (gated, name) {
            (true, "gelu") => Activation::GeluTanh,
            (_, "relu") => Activation::Relu,
            (_, "gelu") => Activation::GeluErf,
            (_, "gelu_new" | "gelu_pytorch_tanh") => Activation::GeluTanh,
            (_, "silu" | "swish") => Activation::Silu,
            _ => {
                return Err(format!(
                    "unsupported feed_forward_proj \"{}\"",
                    self.feed_forward_proj
                ));
            }
        };
        Ok((activation, gated))
    }

    /// Refuses configurations that are not a T5-family encoder-decoder.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self.model_type.as_deref() {
            Some("t5" | "mt5") | None => {}
            Some(other) => {
                return Err(format!(
                    "unknown architecture \"{other}\" (model_type): dialora runs T5-family models (t5, mt5)"
                ));
            }
        }
        let known = |a: &String| {
            matches!(
                a.as_str(),
                "T5ForConditionalGeneration" | "MT5ForConditionalGeneration" | "T5WithLMHeadModel"
            )
        };
        if let Some(other) = self.architectures.iter().flatten().find(|a| !known(a)) {
            return Err(format!(
                "unknown architecture \"{other}\": dialora runs T5ForConditionalGeneration models"
            ));
        }
        for (field, value) in [
            ("d_model", self.d_model),
            ("num_heads", self.num_heads),
            ("d_kv", self.d_kv),
            ("d_ff", self.d_ff),
            ("vocab_size", self.vocab_size),
            ("num_layers", self.num_layers),
            ("num_decoder_layers", self.decoder_layers()),
        ] {
            if value == 0 {
                return Err(format!("{field} is 0; a T5 model has at least one of each"));
            }
        }
        for (field, id) in [
            ("pad_token_id", self.pad_token_id),
            ("eos_token_id", self.eos_token_id),
            ("decoder_start_token_id", self.decoder_start()),
        ] {
            if id as usize >= self.vocab_size {
                return Err(format!(
                    "{field} {id} is outside the vocabulary (vocab_size {})",
                    self.vocab_size
                ));
            }
        }
        if !(self.layer_norm_epsilon.is_finite() && self.layer_norm_epsilon > 0.0) {
            return Err("layer_norm_epsilon must be a small positive number".to_string());
        }
        if !(0.0..1.0).contains(&self.dropout_rate) {
            return Err("dropout_rate must be at least 0 and below 1".to_string());
        }
        if self.relative_attention_num_buckets < 4 || self.relative_attention_max_distance == 0 {
            return Err("relative_attention_num_buckets must be at least 4".to_string());
        }
        self.feed_forward().map(|_| ())
    }

    pub fn decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    pub fn decoder_start(&self) -> u32 {
        self.decoder_start_token_id.unwrap_or(self.pad_token_id)
    }
}

/// T5's RMS layer norm: no mean subtraction, no bias.
#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    eps: f32,
    /// The weight's name in the checkpoint.
    name: String,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.to_dtype(DType::F32).get(size, "weight")?,
            eps: eps as f32,
            name: format!("{}.weight", vb.prefix()),
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(
            &xs.contiguous()?,
            &self.weight,
            self.eps,
        )?)
    }
}

/// The bucket of each relative position, as `T5Attention._relative_position_bucket` computes it
/// (in f32, as PyTorch does, so that boundary positions land in the same bucket).
fn relative_position_bucket(
    relative: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> u32 {
    let mut num_buckets = num_buckets as i64;
    let mut bucket = 0i64;
    let distance = if bidirectional {
        num_buckets /= 2;
        if relative > 0 {
            bucket += num_buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = num_buckets / 2;
    if distance < max_exact {
        bucket += distance;
    } else {
        let scale = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
        let large = ((distance as f32 / max_exact as f32).ln() / scale
            * (num_buckets - max_exact) as f32) as i64;
        bucket += (max_exact + large).min(num_buckets - 1);
    }
    bucket as u32
}

#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    num_heads: usize,
    d_kv: usize,
    /// `(buckets, heads)`, in the first layer of each stack only.
    relative_attention_bias: Option<Tensor>,
    /// The module's path (`encoder.block.0.layer.0.SelfAttention`).
    path: String,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
}

impl Attention {
    fn load(
        vb: VarBuilder,
        path: &str,
        has_bias: bool,
        bidirectional: bool,
        cfg: &Config,
    ) -> candle_core::Result<Self> {
        let inner = cfg.num_heads * cfg.d_kv;
        let linear = |name: &str, out: usize, inp: usize| {
            Linear::load(vb.pp(name), out, inp, format!("{path}.{name}"))
        };
        let relative_attention_bias = if has_bias {
            Some(vb.to_dtype(DType::F32).get(
                (cfg.relative_attention_num_buckets, cfg.num_heads),
                "relative_attention_bias.weight",
            )?)
        } else {
            None
        };
        Ok(Self {
            q: linear("q", inner, cfg.d_model)?,
            k: linear("k", inner, cfg.d_model)?,
            v: linear("v", inner, cfg.d_model)?,
            o: linear("o", cfg.d_model, inner)?,
            num_heads: cfg.num_heads,
            d_kv: cfg.d_kv,
            relative_attention_bias,
            path: path.to_string(),
            bidirectional,
            num_buckets: cfg.relative_attention_num_buckets,
            max_distance: cfg.relative_attention_max_distance,
        })
    }

    /// Position bias `(1, heads, queries, keys)` for query positions `first_query..` and keys `0..key_len`.
    fn position_bias(
        &self,
        first_query: usize,
        query_len: usize,
        key_len: usize,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let Some(table) = &self.relative_attention_bias else {
            candle_core::bail!(
                "position bias requested from a layer without relative_attention_bias"
            )
        };
        let buckets: Vec<u32> = (first_query..first_query + query_len)
            .flat_map(|q| {
                (0..key_len).map(move |k| {
                    relative_position_bucket(
                        k as i64 - q as i64,
                        self.bidirectional,
                        self.num_buckets,
                        self.max_distance,
                    )
                })
            })
            .collect();
        let buckets = Tensor::from_vec(buckets, query_len * key_len, device)?;
        table
            .index_select(&buckets, 0)?
            .reshape((query_len, key_len, self.num_heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)
    }

    /// `(batch, seq, heads * d_kv)` to `(batch, heads, seq, d_kv)`.
    fn split_heads(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        xs.reshape((b, s, self.num_heads, self.d_kv))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn project_heads(
        &self,
        linear: &Linear,
        xs: &Tensor,
        adapter: Option<&Adapter>,
    ) -> Result<Tensor> {
        Ok(self.split_heads(&linear.forward(xs, adapter)?)?)
    }

    /// Attention of `queries` over `keys`/`values` (all split into heads) with an additive `bias`.
    fn attend(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        bias: &Tensor,
        adapter: Option<&Adapter>,
    ) -> Result<Tensor> {
        let context = self.context(queries, keys, values, bias)?;
        self.o.forward(&context, adapter)
    }

    /// The attention output before the `o` projection, heads merged: `(batch, queries, heads * d_kv)`.
    fn context(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        bias: &Tensor,
    ) -> Result<Tensor> {
        let context = match super::cpu::single_query_attention(queries, keys, values, bias)? {
            Some(context) => context,
            None => {
                let scores = queries.matmul(&keys.t()?)?.broadcast_add(bias)?;
                candle_nn::ops::softmax_last_dim(&scores)?.matmul(values)?
            }
        };
        let (b, _, s, _) = context.dims4()?;
        Ok(context
            .transpose(1, 2)?
            .reshape((b, s, self.num_heads * self.d_kv))?)
    }
}

#[derive(Debug, Clone)]
struct FeedForward {
    /// `wi` for plain T5, `wi_0` (activated) for the gated variant.
    wi: Linear,
    /// `wi_1`, the linear gate of the gated variant.
    wi_gate: Option<Linear>,
    wo: Linear,
    activation: Activation,
}

impl FeedForward {
    fn load(vb: VarBuilder, path: &str, cfg: &Config) -> candle_core::Result<Self> {
        let (activation, gated) = cfg.feed_forward().map_err(candle_core::Error::msg)?;
        let vb = vb.pp("DenseReluDense");
        let path = format!("{path}.DenseReluDense");
        let linear = |name: &str, out: usize, inp: usize| {
            Linear::load(vb.pp(name), out, inp, format!("{path}.{name}"))
        };
        let (wi, wi_gate) = if gated {
            (
                linear("wi_0", cfg.d_ff, cfg.d_model)?,
                Some(linear("wi_1", cfg.d_ff, cfg.d_model)?),
            )
        } else {
            (linear("wi", cfg.d_ff, cfg.d_model)?, None)
        };
        Ok(Self {
            wi,
            wi_gate,
            wo: linear("wo", cfg.d_model, cfg.d_ff)?,
            activation,
        })
    }
}

#[derive(Debug, Clone)]
struct EncoderBlock {
    self_attention: Attention,
    attention_norm: LayerNorm,
    feed_forward: FeedForward,
    feed_forward_norm: LayerNorm,
}

impl EncoderBlock {
    fn load(vb: VarBuilder, index: usize, cfg: &Config) -> candle_core::Result<Self> {
        let path = format!("encoder.block.{index}.layer");
        let vb = vb.pp("layer");
        Ok(Self {
            self_attention: Attention::load(
                vb.pp("0.SelfAttention"),
                &format!("{path}.0.SelfAttention"),
                index == 0,
                true,
                cfg,
            )?,
            attention_norm: LayerNorm::load(
                vb.pp("0.layer_norm"),
                cfg.d_model,
                cfg.layer_norm_epsilon,
            )?,
            feed_forward: FeedForward::load(vb.pp("1"), &format!("{path}.1"), cfg)?,
            feed_forward_norm: LayerNorm::load(
                vb.pp("1.layer_norm"),
                cfg.d_model,
                cfg.layer_norm_epsilon,
            )?,
        })
    }
}

#[derive(Debug, Clone)]
struct DecoderBlock {
    self_attention: Attention,
    self_attention_norm: LayerNorm,
    cross_attention: Attention,
    cross_attention_norm: LayerNorm,
    feed_forward: FeedForward,
    feed_forward_norm: LayerNorm,
}

impl DecoderBlock {
    fn load(vb: VarBuilder, index: usize, cfg: &Config) -> candle_core::Result<Self> {
        let path = format!("decoder.block.{index}.layer");
        let vb = vb.pp("layer");
        let eps = cfg.layer_norm_epsilon;
        Ok(Self {
            self_attention: Attention::load(
                vb.pp("0.SelfAttention"),
                &format!("{path}.0.SelfAttention"),
                index == 0,
                false,
                cfg,
            )?,
            self_attention_norm: LayerNorm::load(vb.pp("0.layer_norm"), cfg.d_model, eps)?,
            cross_attention: Attention::load(
                vb.pp("1.EncDecAttention"),
                &format!("{path}.1.EncDecAttention"),
                false,
                true,
                cfg,
            )?,
            cross_attention_norm: LayerNorm::load(vb.pp("1.layer_norm"), cfg.d_model, eps)?,
            feed_forward: FeedForward::load(vb.pp("2"), &format!("{path}.2"), cfg)?,
            feed_forward_norm: LayerNorm::load(vb.pp("2.layer_norm"), cfg.d_model, eps)?,
        })
    }
}

/// The keys and values a decoder layer has seen so far, plus the fixed cross-attention ones.
#[derive(Debug, Clone)]
struct LayerCache {
    self_keys: Option<Tensor>,
    self_values: Option<Tensor>,
    cross_keys: Tensor,
    cross_values: Tensor,
}

/// What incremental decoding keeps between steps for a batch of sequences.
#[derive(Debug, Clone)]
pub struct DecoderState {
    layers: Vec<LayerCache>,
    /// Additive cross-attention mask `(batch, 1, 1, source_len)`.
    encoder_mask: Tensor,
    /// Number of decoder positions already processed.
    position: usize,
}

impl DecoderState {
    /// Keeps only the rows `indices` (in that order): beam search's reordering of hypotheses.
    pub fn select(&mut self, indices: &[u32]) -> Result<()> {
        let device = self.encoder_mask.device().clone();
        let index = Tensor::new(indices, &device)?;
        let batch = self.encoder_mask.dim(0)?;
        let cross_changes =
            indices.len() != batch || indices.iter().enumerate().any(|(i, &j)| i as u32 != j);
        for layer in &mut self.layers {
            if let Some(keys) = &layer.self_keys {
                layer.self_keys = Some(keys.index_select(&index, 0)?);
            }
            if let Some(values) = &layer.self_values {
                layer.self_values = Some(values.index_select(&index, 0)?);
            }
            if cross_changes {
                layer.cross_keys = layer.cross_keys.index_select(&index, 0)?;
                layer.cross_values = layer.cross_values.index_select(&index, 0)?;
            }
        }
        if cross_changes {
            self.encoder_mask = self.encoder_mask.index_select(&index, 0)?;
        }
        Ok(())
    }
}

/// The output of the encoder for a padded batch.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// `(batch, source_len, d_model)`.
    pub hidden: Tensor,
    /// Additive attention mask `(batch, 1, 1, source_len)`: 0 for tokens, a large negative for padding.
    pub mask: Tensor,
    /// How long each row is.
    packing: Packing,
}

impl Encoded {
    /// Repeats each row `times` times in place (`[a, b]` to `[a, a, b, b]`), as beam search needs.
    pub fn repeat_rows(&self, times: usize) -> Result<Encoded> {
        let batch = self.hidden.dim(0)?;
        let index: Vec<u32> = (0..batch as u32)
            .flat_map(|row| std::iter::repeat_n(row, times))
            .collect();
        let index = Tensor::new(index.as_slice(), self.hidden.device())?;
        let packing = Packing {
            lengths: self
                .packing
                .lengths
                .iter()
                .flat_map(|&len| std::iter::repeat_n(len, times))
                .collect(),
            width: self.packing.width,
        };
        Ok(Encoded {
            hidden: self.hidden.index_select(&index, 0)?,
            mask: self.mask.index_select(&index, 0)?,
            packing,
        })
    }
}

/// A weight of the model: a linear layer's (named after its module in PEFT's naming), or another
/// one with its name in transformers' naming.
pub enum Weight<'a> {
    Linear(&'a Linear),
    Other(String, &'a Tensor),
}

impl Weight<'_> {
    /// The weight's name in transformers' naming (`encoder.block.0.layer.0.SelfAttention.q.weight`).
    pub fn name(&self) -> String {
        match self {
            Weight::Linear(linear) => format!("{}.weight", linear.name()),
            Weight::Other(name, _) => name.clone(),
        }
    }

    pub fn tensor(&self) -> &Tensor {
        match self {
            Weight::Linear(linear) => linear.weight(),
            Weight::Other(_, tensor) => tensor,
        }
    }
}

/// [`Weight`], to change.
enum WeightMut<'a> {
    Linear(&'a mut Linear),
    Other(String, &'a mut Tensor),
}

/// The one walk over a model's weights, in transformers' order with `shared.weight` first, as a
/// list of `$kind` ([`Weight`] or, with `mut`, [`WeightMut`]). A macro so that the same walk
/// serves shared and exclusive borrows.
macro_rules! walk_weights {
    ($model:expr, $kind:ident $(, $m:tt)?) => {{
        let model = $model;
        let mut all = Vec::new();
        all.push($kind::Other("shared.weight".to_string(), & $($m)? model.shared));
        for block in & $($m)? model.encoder_blocks {
            walk_weights!(@attention all, $kind, block.self_attention $(, $m)?);
            walk_weights!(@norm all, $kind, block.attention_norm $(, $m)?);
            walk_weights!(@feed_forward all, $kind, block.feed_forward $(, $m)?);
            walk_weights!(@norm all, $kind, block.feed_forward_norm $(, $m)?);
        }
        walk_weights!(@norm all, $kind, model.encoder_norm $(, $m)?);
        for block in & $($m)? model.decoder_blocks {
            walk_weights!(@attention all, $kind, block.self_attention $(, $m)?);
            walk_weights!(@norm all, $kind, block.self_attention_norm $(, $m)?);
            walk_weights!(@attention all, $kind, block.cross_attention $(, $m)?);
            walk_weights!(@norm all, $kind, block.cross_attention_norm $(, $m)?);
            walk_weights!(@feed_forward all, $kind, block.feed_forward $(, $m)?);
            walk_weights!(@norm all, $kind, block.feed_forward_norm $(, $m)?);
        }
        walk_weights!(@norm all, $kind, model.decoder_norm $(, $m)?);
        if let Some(head) = & $($m)? model.lm_head {
            all.push($kind::Linear(head));
        }
        all
    }};
    (@norm $all:ident, $kind:ident, $norm:expr $(, $m:tt)?) => {
        $all.push($kind::Other($norm.name.clone(), & $($m)? $norm.weight))
    };
    (@attention $all:ident, $kind:ident, $attention:expr $(, $m:tt)?) => {{
        let attention = & $($m)? $attention;
        let table = format!("{}.relative_attention_bias.weight", attention.path);
        $all.push($kind::Linear(& $($m)? attention.q));
        $all.push($kind::Linear(& $($m)? attention.k));
        $all.push($kind::Linear(& $($m)? attention.v));
        $all.push($kind::Linear(& $($m)? attention.o));
        if let Some(bias) = & $($m)? attention.relative_attention_bias {
            $all.push($kind::Other(table, bias));
        }
    }};
    (@feed_forward $all:ident, $kind:ident, $feed_forward:expr $(, $m:tt)?) => {{
        let feed_forward = & $($m)? $feed_forward;
        $all.push($kind::Linear(& $($m)? feed_forward.wi));
        if let Some(gate) = & $($m)? feed_forward.wi_gate {
            $all.push($kind::Linear(gate));
        }
        $all.push($kind::Linear(& $($m)? feed_forward.wo));
    }};
}

/// A T5-family encoder-decoder with its language-model head.
#[derive(Debug, Clone)]
pub struct T5 {
    /// The token embedding `(vocab, d_model)`, also the head when tied.
    shared: Tensor,
    encoder_blocks: Vec<EncoderBlock>,
    encoder_norm: LayerNorm,
    decoder_blocks: Vec<DecoderBlock>,
    decoder_norm: LayerNorm,
    /// `None` when the head is tied to the shared embedding.
    lm_head: Option<Linear>,
    config: Config,
    device: Device,
}

impl T5 {
    /// Loads the weights of `vb`: the linear layers' and the embedding in `vb`'s type (f32, or
    /// bf16 for `--precision bf16`), the norms and position biases in f32.
    pub fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        let shared_name = [
            "shared.weight",
            "encoder.embed_tokens.weight",
            "decoder.embed_tokens.weight",
        ]
        .into_iter()
        .find(|name| vb.contains_tensor(name))
        .unwrap_or("shared.weight");
        let shared = vb.get((config.vocab_size, config.d_model), shared_name)?;
        let encoder_blocks = (0..config.num_layers)
            .map(|i| EncoderBlock::load(vb.pp(format!("encoder.block.{i}")), i, config))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let decoder_blocks = (0..config.decoder_layers())
            .map(|i| DecoderBlock::load(vb.pp(format!("decoder.block.{i}")), i, config))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let eps = config.layer_norm_epsilon;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(Linear::load(
                vb.pp("lm_head"),
                config.vocab_size,
                config.d_model,
                "lm_head".to_string(),
            )?)
        };
        Ok(Self {
            shared,
            encoder_blocks,
            encoder_norm: LayerNorm::load(vb.pp("encoder.final_layer_norm"), config.d_model, eps)?,
            decoder_blocks,
            decoder_norm: LayerNorm::load(vb.pp("decoder.final_layer_norm"), config.d_model, eps)?,
            lm_head,
            config: config.clone(),
            device: vb.device().clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How the linear layers' and the embedding's weights are stored: f32, or bf16.
    pub fn weights_dtype(&self) -> DType {
        self.shared.dtype()
    }

    /// Every weight, in transformers' order with `shared.weight` first.
    pub fn weights(&self) -> Vec<Weight<'_>> {
        walk_weights!(self, Weight)
    }

    fn weights_mut(&mut self) -> Vec<WeightMut<'_>> {
        walk_weights!(self, WeightMut, mut)
    }

    /// Every weight with its name, for what trains or saves them all.
    pub fn named_weights(&self) -> Vec<(String, Tensor)> {
        self.weights()
            .into_iter()
            .map(|w| (w.name(), w.tensor().clone()))
            .collect()
    }

    /// Calls `visit` with the name and storage of every weight.
    pub fn visit_weights_mut(&mut self, visit: &mut dyn FnMut(&str, &mut Tensor)) {
        for weight in self.weights_mut() {
            match weight {
                WeightMut::Linear(linear) => {
                    let name = format!("{}.weight", linear.name());
                    visit(&name, linear.weight_mut());
                }
                WeightMut::Other(name, tensor) => visit(&name, tensor),
            }
        }
    }

    /// Folds `adapter` into the base weights of the layers it adapts.
    pub fn merge_adapter(&mut self, adapter: &Adapter) -> Result<()> {
        for weight in self.weights_mut() {
            if let WeightMut::Linear(linear) = weight
                && let Some(lora) = adapter.layers.get(linear.name())
            {
                linear.merge(lora)?;
            }
        }
        Ok(())
    }

    /// Names and shapes `(out, in)` of every linear layer, in PEFT's module naming.
    pub fn linear_shapes(&self) -> Vec<(String, usize, usize)> {
        self.weights()
            .into_iter()
            .filter_map(|w| match w {
                Weight::Linear(l) => {
                    Some((l.name().to_string(), l.out_features(), l.in_features()))
                }
                Weight::Other(..) => None,
            })
            .collect()
    }

    /// Runs the encoder over `input_ids (batch, len)` with `attention_mask (batch, len)`: ones for
    /// tokens, then zeros for the padding on the right.
    pub fn encode(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        adapter: Option<&Adapter>,
    ) -> Result<Encoded> {
        let (batch, width) = input_ids.dims2()?;
        let (packing, packed) = self.encoder_output(input_ids, attention_mask, adapter)?;
        let hidden = if packing.padded() {
            packing.unpack(&packed.unsqueeze(0)?)?
        } else {
            packed.reshape((batch, width, self.config.d_model))?
        };
        Ok(Encoded {
            hidden,
            mask: additive_mask(attention_mask)?,
            packing,
        })
    }

    /// The encoder's output for a right-padded batch, packed `(tokens, d_model)`, with the rows' lengths.
    fn encoder_output(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        adapter: Option<&Adapter>,
    ) -> Result<(Packing, Tensor)> {
        let packing = Packing::of(attention_mask)?;
        let ids = input_ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let rows = ids
            .iter()
            .zip(&packing.lengths)
            .map(|(row, &len)| &row[..len]);
        let source = forward::Packed::new(rows, self)?;
        let bias = self.encoder_bias(source.longest())?;
        let (output, _) = self.encoder_pass(&source, &bias, adapter, &mut None, false)?;
        Ok((packing, output))
    }

    /// Prepares incremental decoding over `encoded`: the cross-attention keys and values of every layer.
    pub fn start_decoding(
        &self,
        encoded: &Encoded,
        adapter: Option<&Adapter>,
    ) -> Result<DecoderState> {
        // Padding costs as much as real tokens in a linear layer: the rows are packed for it.
        let packed = match encoded.packing.padded() {
            true => Some(encoded.packing.pack(&encoded.hidden)?),
            false => None,
        };
        let layers = self
            .decoder_blocks
            .iter()
            .map(|block| {
                let attention = &block.cross_attention;
                let project = |linear: &Linear| -> Result<Tensor> {
                    match &packed {
                        Some(hidden) => {
                            let projected = linear.forward(hidden, adapter)?;
                            Ok(attention.split_heads(&encoded.packing.unpack(&projected)?)?)
                        }
                        None => attention.project_heads(linear, &encoded.hidden, adapter),
                    }
                };
                Ok(LayerCache {
                    self_keys: None,
                    self_values: None,
                    cross_keys: project(&attention.k)?,
                    cross_values: project(&attention.v)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderState {
            layers,
            encoder_mask: encoded.mask.clone(),
            position: 0,
        })
    }

    /// Feeds `tokens (batch, new)` to the decoder after what `state` has seen; returns logits
    /// `(batch, new, vocab)` and extends the state. Several new tokens attend causally to each other.
    pub fn decode(
        &self,
        tokens: &Tensor,
        state: &mut DecoderState,
        adapter: Option<&Adapter>,
    ) -> Result<Tensor> {
        let (_, new) = tokens.dims2()?;
        let start = state.position;
        let total = start + new;
        let first = &self.decoder_blocks[0].self_attention;
        let mut self_bias = first.position_bias(start, new, total, &self.device)?;
        if new > 1 {
            self_bias = self_bias.broadcast_add(&causal_mask(start, new, total, &self.device)?)?;
        }
        let mut hidden = self.embed(tokens)?;
        for (block, cache) in self.decoder_blocks.iter().zip(state.layers.iter_mut()) {
            let attention = &block.self_attention;
            let normed = block.self_attention_norm.forward(&hidden)?;
            let projected = Linear::forward_each(
                &[&attention.q, &attention.k, &attention.v],
                &normed,
                adapter,
                &mut None,
            )?;
            let [q, k, v] = [0, 1, 2].map(|i| attention.split_heads(&projected[i].0));
            let (q, mut k, mut v) = (q?, k?, v?);
            if let (Some(past_k), Some(past_v)) = (&cache.self_keys, &cache.self_values) {
                k = Tensor::cat(&[past_k, &k], 2)?;
                v = Tensor::cat(&[past_v, &v], 2)?;
            }
            hidden = (hidden + attention.attend(&q, &k, &v, &self_bias, adapter)?)?;
            cache.self_keys = Some(k);
            cache.self_values = Some(v);

            let attention = &block.cross_attention;
            let normed = block.cross_attention_norm.forward(&hidden)?;
            let q = attention.project_heads(&attention.q, &normed, adapter)?;
            hidden = (hidden
                + attention.attend(
                    &q,
                    &cache.cross_keys,
                    &cache.cross_values,
                    &state.encoder_mask,
                    adapter,
                )?)?;

            let normed = block.feed_forward_norm.forward(&hidden)?;
            let (fed, _) = block
                .feed_forward
                .forward_taped(&normed, adapter, &mut None)?;
            hidden = (&hidden + fed)?;
        }
        state.position = total;
        let hidden = self.decoder_norm.forward(&hidden)?;
        Ok(self.head_taped(&hidden, adapter, &mut None)?.0)
    }

    /// Token embeddings of `ids (batch, len)`: `(batch, len, d_model)`.
    fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, len) = ids.dims2()?;
        self.embedding_rows(&ids.flatten_all()?)?
            .reshape((b, len, self.config.d_model))
    }

    /// The embedding table's rows `ids` (a vector), in f32 whatever the table is stored in.
    fn embedding_rows(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.shared.index_select(ids, 0)?.to_dtype(DType::F32)
    }

    /// Teacher-forced logits `(batch, target_len, vocab)` for `decoder_input_ids` (the labels
    /// shifted right), every position of every row included.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        decoder_input_ids: &Tensor,
        adapter: Option<&Adapter>,
    ) -> Result<Tensor> {
        let (packing, source) = self.encoder_output(input_ids, attention_mask, adapter)?;
        let (batch, width) = decoder_input_ids.dims2()?;
        let ids = decoder_input_ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let target = forward::Packed::new(ids.iter().map(Vec::as_slice), self)?;
        let bias = self.decoder_bias(width)?;
        let source_rows = forward::segments(packing.lengths.iter().copied());
        let (logits, _) = self.decoder_pass(
            &target,
            &bias,
            &source,
            &source_rows,
            adapter,
            &mut None,
            false,
        )?;
        Ok(logits.reshape((batch, width, self.config.vocab_size))?)
    }

    /// The teacher-forced loss of each target: the mean token cross-entropy of `targets[i]` (with its
    /// end-of-sequence token) given row `i` of the padded batch, as transformers' `labels=` loss of
    /// that row alone.
    pub fn sequence_losses(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        targets: &[Vec<u32>],
        adapter: Option<&Adapter>,
    ) -> Result<Vec<f64>> {
        let lengths = Packing::of(attention_mask)?.lengths;
        let ids = input_ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let pairs: Vec<Pair> = ids
            .iter()
            .zip(&lengths)
            .zip(targets)
            .map(|((row, &len), target)| Pair {
                source: row[..len].to_vec(),
                target: target.clone(),
            })
            .collect();
        let refs: Vec<&Pair> = pairs.iter().collect();
        let pass = self.losses(&refs, adapter)?;
        Ok(pass
            .target_losses
            .iter()
            .zip(targets)
            .map(|(loss, target)| loss / target.len().max(1) as f64)
            .collect())
    }

    /// Converts a loading failure into one line that names the weights file.
    pub fn load_error(path: &std::path::Path, error: candle_core::Error) -> Error {
        let message = error.to_string();
        let first_line = message.lines().next().unwrap_or("unreadable weights");
        Error::invalid(path, format!("cannot load the model weights: {first_line}"))
    }
}

/// The rows of a right-padded batch: how many real tokens each holds, and the padded width.
#[derive(Debug, Clone)]
struct Packing {
    lengths: Vec<usize>,
    width: usize,
}

impl Packing {
    /// The lengths of the rows of a mask of ones then zeros in every row; another mask (padding
    /// on the left or inside, an empty row) is refused.
    fn of(attention_mask: &Tensor) -> Result<Self> {
        let rows = attention_mask.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let width = rows.first().map_or(0, Vec::len);
        let mut lengths = Vec::with_capacity(rows.len());
        for row in &rows {
            let len = row.iter().take_while(|&&m| m == 1).count();
            if len == 0 || row[len..].iter().any(|&m| m != 0) {
                return Err(Error::settings(
                    "the attention mask must be ones then zeros (padding on the right) in every row",
                ));
            }
            lengths.push(len);
        }
        Ok(Self { lengths, width })
    }

    /// Whether some row is shorter than the batch.
    fn padded(&self) -> bool {
        self.lengths.iter().any(|&len| len < self.width)
    }

    /// `(batch, width, ...)` to `(1, total, ...)`.
    fn pack(&self, padded: &Tensor) -> Result<Tensor> {
        let rows = self
            .lengths
            .iter()
            .enumerate()
            .map(|(row, &len)| padded.narrow(0, row, 1)?.narrow(1, 0, len))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 1)?)
    }

    /// `(1, total, d)` to `(batch, width, d)`, padding positions zero.
    fn unpack(&self, packed: &Tensor) -> Result<Tensor> {
        let rows = forward::segments(self.lengths.iter().copied())
            .into_iter()
            .map(|(start, len)| {
                packed
                    .narrow(1, start, len)?
                    .pad_with_zeros(1, 0, self.width - len)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    }
}

/// `(batch, 1, 1, len)`: 0 where `mask` is 1, the most negative f32 where it is 0 (as transformers).
fn additive_mask(mask: &Tensor) -> candle_core::Result<Tensor> {
    let (b, len) = mask.dims2()?;
    let mask = mask.to_dtype(DType::F32)?;
    let inverted = (mask.ones_like()? - mask)?;
    (inverted * f32::MIN as f64)?.reshape((b, 1, 1, len))
}

/// `(1, 1, new, total)`: hides from query `start + i` every key after it.
fn causal_mask(
    start: usize,
    new: usize,
    total: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..new)
        .flat_map(|i| (0..total).map(move |k| if k > start + i { f32::MIN } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (1, 1, new, total), device)
}

/// Logits of the last position of each row: `(batch, new, vocab)` to `(batch, vocab)`.
pub fn last_position(logits: &Tensor) -> Result<Tensor> {
    let (_, new, _) = logits.dims3()?;
    Ok(logits.i((.., new - 1, ..))?.contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::relative_position_bucket;

    #[test]
    fn buckets_match_transformers_for_t5_defaults() {
        // Values of transformers' _relative_position_bucket with 32 buckets, max distance 128.
        let bidirectional: Vec<u32> = [-200, -128, -20, -8, -7, -1, 0, 1, 7, 8, 20, 128, 200]
            .into_iter()
            .map(|r| relative_position_bucket(r, true, 32, 128))
            .collect();
        assert_eq!(
            bidirectional,
            vec![15, 15, 10, 8, 7, 1, 0, 17, 23, 24, 26, 31, 31]
        );
        let causal: Vec<u32> = [1, 0, -1, -15, -16, -40, -127, -128, -500]
            .into_iter()
            .map(|r| relative_position_bucket(r, false, 32, 128))
            .collect();
        assert_eq!(causal, vec![0, 0, 1, 15, 16, 23, 31, 31, 31]);
    }
}
