//! The T5's training passes: a forward pass over packed sequences (every row's real tokens one
//! after another, so no work is spent on padding and no attention mask is needed) that keeps what
//! the backward pass needs, and the backward pass written out by hand.
//!
//! Written by hand rather than with candle's autograd because autograd computes the gradient of
//! every operand, frozen base weights included; here a frozen weight costs only the product that
//! carries the gradient through it, which is what LoRA training spends most of its time on.

use std::collections::BTreeMap;

use candle_core::{D, DType, Tensor};

use super::super::cpu;
use super::super::gemm::matmul;
use super::{Activation, Attention, FeedForward, LayerNorm, T5, relative_position_bucket};
use crate::error::Result;
use crate::lora::{Adapter, Linear};
use crate::rng::SplitMix64;

/// One training example: the tokenized prompt and the target summary (ending with `</s>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub source: Vec<u32>,
    pub target: Vec<u32>,
}

/// What the backward pass computes gradients for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trained {
    /// The LoRA weights of the adapter passed in.
    Adapter,
    /// Every weight of the model (full fine-tuning).
    Everything,
}

/// Dropout as training applies it: each element kept with probability `1 - rate` and scaled by
/// `1 / (1 - rate)`, drawn from a seeded generator so that a resumed run draws the same masks.
#[derive(Debug, Clone)]
pub struct Dropout {
    /// The model's own dropout (`dropout_rate`): embeddings, attention weights, sub-layer outputs.
    pub model_rate: f64,
    pub rng: SplitMix64,
}

impl Dropout {
    /// A mask of `like`'s shape: 0 with probability `rate` (to 1/65536), else `1 / (1 - rate)`.
    /// Drawn in parallel from sub-streams seeded by one draw of the generator, so the masks depend
    /// only on the generator's state, not on the number of threads.
    fn mask(&mut self, rate: f64, like: &Tensor) -> Result<Option<Tensor>> {
        use rayon::prelude::*;
        if rate <= 0.0 {
            return Ok(None);
        }
        const CHUNK: usize = 1 << 14;
        let keep = 1.0 / (1.0 - rate) as f32;
        let threshold = (rate * 65536.0).round() as u64;
        let seed = self.rng.next_u64();
        let mut values = vec![0f32; like.elem_count()];
        values
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(index, chunk)| {
                let mut rng =
                    SplitMix64::new(seed ^ (index as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
                for group in chunk.chunks_mut(4) {
                    let bits = rng.next_u64();
                    for (lane, value) in group.iter_mut().enumerate() {
                        let draw = (bits >> (16 * lane)) & 0xFFFF;
                        *value = if draw < threshold { 0.0 } else { keep };
                    }
                }
            });
        Ok(Some(Tensor::from_vec(values, like.shape(), like.device())?))
    }
}

/// Gradients by weight name: transformers' names for base weights (`shared.weight`), PEFT's module
/// path plus `.lora_A.weight` / `.lora_B.weight` for adapter weights.
#[derive(Debug, Default)]
pub struct Gradients(pub BTreeMap<String, Tensor>);

impl Gradients {
    fn add(&mut self, name: String, gradient: Tensor) -> Result<()> {
        match self.0.get_mut(&name) {
            Some(sum) => *sum = (&*sum + gradient)?,
            None => {
                self.0.insert(name, gradient);
            }
        }
        Ok(())
    }

    /// Adds every gradient of `other` into this one.
    pub fn accumulate(&mut self, other: Gradients) -> Result<()> {
        for (name, gradient) in other.0 {
            self.add(name, gradient)?;
        }
        Ok(())
    }
}

fn apply_mask(xs: &Tensor, mask: &Option<Tensor>) -> Result<Tensor> {
    Ok(match mask {
        Some(mask) => xs.mul(mask)?,
        None => xs.clone(),
    })
}

/// `(start, len)` of each row in a packed sequence.
fn segments(lengths: impl Iterator<Item = usize>) -> Vec<(usize, usize)> {
    lengths
        .scan(0, |start, len| {
            let segment = (*start, len);
            *start += len;
            Some(segment)
        })
        .collect()
}

struct LoraTape {
    mask: Option<Tensor>,
    /// `dropout(x) A^T`, `(rows, r)`.
    hidden: Tensor,
}

struct LinearTape {
    input: Tensor,
    lora: Option<LoraTape>,
}

fn linear_forward(
    linear: &Linear,
    xs: &Tensor,
    adapter: Option<&Adapter>,
    dropout: &mut Option<Dropout>,
) -> Result<(Tensor, LinearTape)> {
    let mut out = matmul(xs, &linear.weight().t()?)?;
    let lora = match adapter.and_then(|a| Some((a, a.layers.get(linear.name())?))) {
        Some((adapter, lora)) => {
            let mask = match dropout {
                Some(dropout) => dropout.mask(adapter.config.lora_dropout, xs)?,
                None => None,
            };
            let hidden = matmul(&apply_mask(xs, &mask)?, &lora.a.t()?)?;
            out = (out + (matmul(&hidden, &lora.b.t()?)? * lora.scale)?)?;
            Some(LoraTape { mask, hidden })
        }
        None => None,
    };
    Ok((
        out,
        LinearTape {
            input: xs.clone(),
            lora,
        },
    ))
}

fn linear_backward(
    linear: &Linear,
    tape: &LinearTape,
    grad: &Tensor,
    adapter: Option<&Adapter>,
    trained: Trained,
    gradients: &mut Gradients,
) -> Result<Tensor> {
    let mut grad_input = matmul(grad, linear.weight())?;
    if let (Some(lora_tape), Some(lora)) = (
        &tape.lora,
        adapter.and_then(|a| a.layers.get(linear.name())),
    ) {
        let name = linear.name();
        let through_b = matmul(grad, &lora.b)?;
        gradients.add(
            format!("{name}.lora_B.weight"),
            (matmul(&grad.t()?, &lora_tape.hidden)? * lora.scale)?,
        )?;
        let dropped = apply_mask(&tape.input, &lora_tape.mask)?;
        gradients.add(
            format!("{name}.lora_A.weight"),
            (matmul(&through_b.t()?, &dropped)? * lora.scale)?,
        )?;
        let through_a = (matmul(&through_b, &lora.a)? * lora.scale)?;
        grad_input = (grad_input + apply_mask(&through_a, &lora_tape.mask)?)?;
    }
    if trained == Trained::Everything {
        gradients.add(
            format!("{}.weight", linear.name()),
            matmul(&grad.t()?, &tape.input)?,
        )?;
    }
    Ok(grad_input)
}

struct NormTape {
    input: Tensor,
    /// `1 / sqrt(mean(x^2) + eps)` per row, `(rows, 1)`.
    inverse_rms: Tensor,
}

fn norm_forward(norm: &LayerNorm, xs: &Tensor) -> Result<(Tensor, NormTape)> {
    let inverse_rms = (xs.sqr()?.mean_keepdim(D::Minus1)? + norm.eps as f64)?
        .sqrt()?
        .recip()?;
    let out = xs
        .broadcast_mul(&inverse_rms)?
        .broadcast_mul(&norm.weight)?;
    Ok((
        out,
        NormTape {
            input: xs.clone(),
            inverse_rms,
        },
    ))
}

fn norm_backward(
    norm: &LayerNorm,
    tape: &NormTape,
    grad: &Tensor,
    trained: Trained,
    gradients: &mut Gradients,
) -> Result<Tensor> {
    let normalized = tape.input.broadcast_mul(&tape.inverse_rms)?;
    if trained == Trained::Everything {
        gradients.add(norm.name.clone(), (grad * &normalized)?.sum(0)?)?;
    }
    let weighted = grad.broadcast_mul(&norm.weight)?;
    let projection = (&weighted * &normalized)?.mean_keepdim(D::Minus1)?;
    Ok((weighted - normalized.broadcast_mul(&projection)?)?.broadcast_mul(&tape.inverse_rms)?)
}

struct RowTape {
    /// Attention weights `(heads, queries, keys)` before dropout.
    probs: Tensor,
    mask: Option<Tensor>,
}

struct AttentionTape {
    q: LinearTape,
    k: LinearTape,
    v: LinearTape,
    o: LinearTape,
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    rows: Vec<RowTape>,
}

/// A packed `(len, heads * d_kv)` slice as `(heads, len, d_kv)`.
fn to_heads(attention: &Attention, packed: &Tensor, start: usize, len: usize) -> Result<Tensor> {
    Ok(packed
        .narrow(0, start, len)?
        .reshape((len, attention.num_heads, attention.d_kv))?
        .transpose(0, 1)?
        .contiguous()?)
}

/// `(heads, len, d_kv)` back to `(len, heads * d_kv)`.
fn from_heads(attention: &Attention, split: &Tensor) -> Result<Tensor> {
    let len = split.dim(1)?;
    Ok(split
        .transpose(0, 1)?
        .contiguous()?
        .reshape((len, attention.num_heads * attention.d_kv))?)
}

/// Where the queries and the keys of each row are, and the additive bias `(heads, L, L)` (position
/// bias, causal mask) whose top-left corner each row uses.
struct AttentionLayout<'a> {
    query_rows: &'a [(usize, usize)],
    key_rows: &'a [(usize, usize)],
    bias: Option<&'a Tensor>,
}

fn attention_forward(
    attention: &Attention,
    query_input: &Tensor,
    key_input: &Tensor,
    layout: &AttentionLayout,
    adapter: Option<&Adapter>,
    dropout: &mut Option<Dropout>,
) -> Result<(Tensor, AttentionTape)> {
    let (queries, q) = linear_forward(&attention.q, query_input, adapter, dropout)?;
    let (keys, k) = linear_forward(&attention.k, key_input, adapter, dropout)?;
    let (values, v) = linear_forward(&attention.v, key_input, adapter, dropout)?;
    let mut contexts = Vec::with_capacity(layout.query_rows.len());
    let mut rows = Vec::with_capacity(layout.query_rows.len());
    for (&(q_start, q_len), &(k_start, k_len)) in layout.query_rows.iter().zip(layout.key_rows) {
        let row_q = to_heads(attention, &queries, q_start, q_len)?;
        let row_k = to_heads(attention, &keys, k_start, k_len)?;
        let row_v = to_heads(attention, &values, k_start, k_len)?;
        let mut scores = row_q.matmul(&row_k.t()?)?;
        if let Some(bias) = layout.bias {
            scores = scores.broadcast_add(&bias.narrow(1, 0, q_len)?.narrow(2, 0, k_len)?)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let mask = match dropout {
            Some(dropout) => dropout.mask(dropout.model_rate, &probs)?,
            None => None,
        };
        let context = apply_mask(&probs, &mask)?.matmul(&row_v)?;
        contexts.push(from_heads(attention, &context)?);
        rows.push(RowTape { probs, mask });
    }
    let (out, o) = linear_forward(&attention.o, &Tensor::cat(&contexts, 0)?, adapter, dropout)?;
    Ok((
        out,
        AttentionTape {
            q,
            k,
            v,
            o,
            queries,
            keys,
            values,
            rows,
        },
    ))
}

/// Returns the gradients of the query input and of the key/value input; adds the gradient of the
/// additive bias into `bias_gradient` when given.
#[allow(clippy::too_many_arguments)]
fn attention_backward(
    attention: &Attention,
    tape: &AttentionTape,
    grad: &Tensor,
    layout: &AttentionLayout,
    adapter: Option<&Adapter>,
    trained: Trained,
    gradients: &mut Gradients,
    bias_gradient: Option<&mut Tensor>,
) -> Result<(Tensor, Tensor)> {
    let grad_context = linear_backward(&attention.o, &tape.o, grad, adapter, trained, gradients)?;
    let rows = layout.query_rows.len();
    let (mut grad_q, mut grad_k, mut grad_v) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    let mut bias_sum: Option<Tensor> = None;
    for ((&(q_start, q_len), &(k_start, k_len)), row) in layout
        .query_rows
        .iter()
        .zip(layout.key_rows)
        .zip(&tape.rows)
    {
        let row_grad = to_heads(attention, &grad_context, q_start, q_len)?;
        let row_q = to_heads(attention, &tape.queries, q_start, q_len)?;
        let row_k = to_heads(attention, &tape.keys, k_start, k_len)?;
        let row_v = to_heads(attention, &tape.values, k_start, k_len)?;
        let used = apply_mask(&row.probs, &row.mask)?;
        grad_v.push(from_heads(attention, &used.t()?.matmul(&row_grad)?)?);
        let grad_probs = apply_mask(&row_grad.matmul(&row_v.t()?)?, &row.mask)?;
        let inner = (&grad_probs * &row.probs)?.sum_keepdim(D::Minus1)?;
        let grad_scores = (grad_probs.broadcast_sub(&inner)? * &row.probs)?;
        grad_q.push(from_heads(attention, &grad_scores.matmul(&row_k)?)?);
        grad_k.push(from_heads(attention, &grad_scores.t()?.matmul(&row_q)?)?);
        if bias_gradient.is_some() {
            let width = layout.bias.map_or(0, |b| b.dim(1).unwrap_or(0));
            let padded = grad_scores
                .pad_with_zeros(1, 0, width - q_len)?
                .pad_with_zeros(2, 0, width - k_len)?;
            bias_sum = Some(match bias_sum {
                Some(sum) => (sum + padded)?,
                None => padded,
            });
        }
    }
    if let (Some(total), Some(sum)) = (bias_gradient, bias_sum) {
        *total = (&*total + sum)?;
    }
    let backward = |linear: &Linear, tape: &LinearTape, parts: Vec<Tensor>, g: &mut Gradients| {
        linear_backward(linear, tape, &Tensor::cat(&parts, 0)?, adapter, trained, g)
    };
    let grad_query_input = backward(&attention.q, &tape.q, grad_q, gradients)?;
    let grad_key_input = (backward(&attention.k, &tape.k, grad_k, gradients)?
        + backward(&attention.v, &tape.v, grad_v, gradients)?)?;
    Ok((grad_query_input, grad_key_input))
}

struct FeedForwardTape {
    wi: LinearTape,
    /// The gate's tape and output, for the gated variant.
    gate: Option<(LinearTape, Tensor)>,
    /// `wi`'s output before the activation.
    pre_activation: Tensor,
    mask: Option<Tensor>,
    wo: LinearTape,
}

fn feed_forward_forward(
    feed_forward: &FeedForward,
    xs: &Tensor,
    adapter: Option<&Adapter>,
    dropout: &mut Option<Dropout>,
) -> Result<(Tensor, FeedForwardTape)> {
    let (pre_activation, wi) = linear_forward(&feed_forward.wi, xs, adapter, dropout)?;
    let gate = match &feed_forward.wi_gate {
        Some(linear) => {
            let (out, tape) = linear_forward(linear, xs, adapter, dropout)?;
            Some((tape, out))
        }
        None => None,
    };
    let gate_output = gate.as_ref().map(|(_, output)| output);
    let fused = match feed_forward.activation {
        Activation::GeluTanh => cpu::gelu_tanh(&pre_activation, gate_output)?,
        _ => None,
    };
    let hidden = match (fused, gate_output) {
        (Some(hidden), _) => hidden,
        (None, Some(gate)) => (feed_forward.activation.apply(&pre_activation)? * gate)?,
        (None, None) => feed_forward.activation.apply(&pre_activation)?,
    };
    let mask = match dropout {
        Some(dropout) => dropout.mask(dropout.model_rate, &hidden)?,
        None => None,
    };
    let (out, wo) = linear_forward(
        &feed_forward.wo,
        &apply_mask(&hidden, &mask)?,
        adapter,
        dropout,
    )?;
    Ok((
        out,
        FeedForwardTape {
            wi,
            gate,
            pre_activation,
            mask,
            wo,
        },
    ))
}

fn feed_forward_backward(
    feed_forward: &FeedForward,
    tape: &FeedForwardTape,
    grad: &Tensor,
    adapter: Option<&Adapter>,
    trained: Trained,
    gradients: &mut Gradients,
) -> Result<Tensor> {
    let grad_hidden = apply_mask(
        &linear_backward(
            &feed_forward.wo,
            &tape.wo,
            grad,
            adapter,
            trained,
            gradients,
        )?,
        &tape.mask,
    )?;
    let gate = tape.gate.as_ref().map(|(_, output)| output);
    let fused = match feed_forward.activation {
        Activation::GeluTanh => cpu::gelu_tanh_backward(&tape.pre_activation, gate, &grad_hidden)?,
        _ => None,
    };
    let (grad_pre, grad_gate) = match fused {
        Some(gradients) => gradients,
        None => {
            let derivative = activation_derivative(feed_forward.activation, &tape.pre_activation)?;
            match gate {
                Some(gate) => {
                    let activated = feed_forward.activation.apply(&tape.pre_activation)?;
                    (
                        ((&grad_hidden * gate)? * derivative)?,
                        Some((&grad_hidden * activated)?),
                    )
                }
                None => ((grad_hidden * derivative)?, None),
            }
        }
    };
    let mut grad_input = linear_backward(
        &feed_forward.wi,
        &tape.wi,
        &grad_pre,
        adapter,
        trained,
        gradients,
    )?;
    if let (Some(linear), Some((gate_tape, _)), Some(grad_gate)) =
        (&feed_forward.wi_gate, &tape.gate, grad_gate)
    {
        grad_input = (grad_input
            + linear_backward(linear, gate_tape, &grad_gate, adapter, trained, gradients)?)?;
    }
    Ok(grad_input)
}

/// The derivative of the activation at `xs`, element by element.
fn activation_derivative(activation: Activation, xs: &Tensor) -> Result<Tensor> {
    Ok(match activation {
        Activation::Relu => xs.gt(0f32)?.to_dtype(DType::F32)?,
        Activation::GeluTanh => {
            // gelu(x) = x/2 (1 + tanh(u)), u = c (x + 0.044715 x^3).
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let squared = xs.sqr()?;
            let u = ((xs * &squared)? * 0.044715 + xs)? * c;
            let t = u?.tanh()?;
            let du = ((squared * (3.0 * 0.044715))? + 1.0)? * c;
            let one_minus_t2 = (t.sqr()?.neg()? + 1.0)?;
            (((t + 1.0)? * 0.5)? + ((xs * 0.5)? * one_minus_t2)?.mul(&du?)?)?
        }
        Activation::GeluErf => {
            let cdf = (((xs * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)? * 0.5)?;
            let pdf = ((xs.sqr()? * -0.5)?.exp()? * (1.0 / (2.0 * std::f64::consts::PI).sqrt()))?;
            (cdf + (xs * pdf)?)?
        }
        Activation::Silu => {
            let sigmoid = candle_nn::ops::sigmoid(xs)?;
            let one_minus = (sigmoid.neg()? + 1.0)?;
            (&sigmoid * ((xs * one_minus)? + 1.0)?)?
        }
    })
}

/// One pre-norm residual sub-layer's tape: the norm, and the dropout on its output.
struct ResidualTape {
    norm: NormTape,
    mask: Option<Tensor>,
}

fn residual_mask(dropout: &mut Option<Dropout>, like: &Tensor) -> Result<Option<Tensor>> {
    match dropout {
        Some(dropout) => dropout.mask(dropout.model_rate, like),
        None => Ok(None),
    }
}

/// A stack's output: `dropout(norm(hidden))`, with the norm's tape and the mask.
fn final_norm(
    norm: &LayerNorm,
    hidden: &Tensor,
    dropout: &mut Option<Dropout>,
) -> Result<(Tensor, NormTape, Option<Tensor>)> {
    let (normed, tape) = norm_forward(norm, hidden)?;
    let mask = residual_mask(dropout, &normed)?;
    Ok((apply_mask(&normed, &mask)?, tape, mask))
}

/// `hidden + dropout(sublayer(norm(hidden)))`, T5's pre-norm residual sub-layer, with its tapes.
fn residual_forward<T>(
    norm: &LayerNorm,
    hidden: Tensor,
    dropout: &mut Option<Dropout>,
    sublayer: impl FnOnce(&Tensor, &mut Option<Dropout>) -> Result<(Tensor, T)>,
) -> Result<(Tensor, ResidualTape, T)> {
    let (normed, norm) = norm_forward(norm, &hidden)?;
    let (out, tape) = sublayer(&normed, dropout)?;
    let mask = residual_mask(dropout, &out)?;
    let hidden = (hidden + apply_mask(&out, &mask)?)?;
    Ok((hidden, ResidualTape { norm, mask }, tape))
}

/// The gradient of a residual sub-layer's input; `sublayer` turns the gradient of its output into
/// that of its (normed) input.
fn residual_backward(
    norm: &LayerNorm,
    tape: &ResidualTape,
    grad: Tensor,
    trained: Trained,
    gradients: &mut Gradients,
    sublayer: impl FnOnce(&Tensor, &mut Gradients) -> Result<Tensor>,
) -> Result<Tensor> {
    let branch = sublayer(&apply_mask(&grad, &tape.mask)?, gradients)?;
    Ok((grad + norm_backward(norm, &tape.norm, &branch, trained, gradients)?)?)
}

struct EncoderLayerTape {
    attention_residual: ResidualTape,
    attention: AttentionTape,
    feed_forward_residual: ResidualTape,
    feed_forward: FeedForwardTape,
}

struct DecoderLayerTape {
    self_residual: ResidualTape,
    self_attention: AttentionTape,
    cross_residual: ResidualTape,
    cross_attention: AttentionTape,
    feed_forward_residual: ResidualTape,
    feed_forward: FeedForwardTape,
}

/// Everything the backward pass needs from the forward pass.
pub struct Tape {
    source_ids: Tensor,
    decoder_ids: Tensor,
    labels: Tensor,
    source_rows: Vec<(usize, usize)>,
    target_rows: Vec<(usize, usize)>,
    encoder_bias: Tensor,
    decoder_bias: Tensor,
    encoder_embedding_mask: Option<Tensor>,
    encoder_layers: Vec<EncoderLayerTape>,
    encoder_final: NormTape,
    encoder_output_mask: Option<Tensor>,
    encoder_output: Tensor,
    decoder_embedding_mask: Option<Tensor>,
    decoder_layers: Vec<DecoderLayerTape>,
    decoder_final: NormTape,
    decoder_output_mask: Option<Tensor>,
    /// The head's input (after the tied scaling) and, when untied, its linear tape.
    head_input: Tensor,
    head: Option<LinearTape>,
    log_probs: Tensor,
}

/// The result of a training forward pass.
pub struct Pass {
    /// Sum of the token cross-entropies of every target token.
    pub loss_sum: f64,
    pub target_tokens: usize,
    pub source_tokens: usize,
    pub tape: Tape,
}

impl T5 {
    /// A stack's input: `dropout(embedding[ids])`, with the mask.
    fn embed_with_dropout(
        &self,
        ids: &Tensor,
        dropout: &mut Option<Dropout>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let embedded = self.shared.index_select(ids, 0)?;
        let mask = residual_mask(dropout, &embedded)?;
        Ok((apply_mask(&embedded, &mask)?, mask))
    }

    /// Teacher-forced forward pass over `batch`, keeping what [`T5::backward`] needs. With
    /// `dropout`, the model's dropout and the adapter's LoRA dropout are applied as in training.
    pub fn training_forward(
        &self,
        batch: &[&Pair],
        adapter: Option<&Adapter>,
        dropout: &mut Option<Dropout>,
    ) -> Result<Pass> {
        let device = &self.device;
        let config = &self.config;
        let source_rows = segments(batch.iter().map(|p| p.source.len()));
        let target_rows = segments(batch.iter().map(|p| p.target.len()));
        let source: Vec<u32> = batch
            .iter()
            .flat_map(|p| p.source.iter().copied())
            .collect();
        let labels: Vec<u32> = batch
            .iter()
            .flat_map(|p| p.target.iter().copied())
            .collect();
        // The decoder reads each target shifted right behind the start token.
        let decoder: Vec<u32> = batch
            .iter()
            .flat_map(|p| {
                std::iter::once(config.decoder_start())
                    .chain(p.target[..p.target.len() - 1].iter().copied())
            })
            .collect();
        let (source_tokens, target_tokens) = (source.len(), labels.len());
        let source_ids = Tensor::from_vec(source, source_tokens, device)?;
        let decoder_ids = Tensor::from_vec(decoder, target_tokens, device)?;
        let labels = Tensor::from_vec(labels, target_tokens, device)?;
        let longest_source = source_rows.iter().map(|r| r.1).max().unwrap_or(1);
        let longest_target = target_rows.iter().map(|r| r.1).max().unwrap_or(1);
        let encoder_bias = self.encoder_blocks[0]
            .self_attention
            .position_bias(0, longest_source, longest_source, device)?
            .squeeze(0)?;
        let decoder_bias = self.decoder_blocks[0]
            .self_attention
            .position_bias(0, longest_target, longest_target, device)?
            .broadcast_add(&super::causal_mask(
                0,
                longest_target,
                longest_target,
                device,
            )?)?
            .squeeze(0)?;

        let (mut hidden, encoder_embedding_mask) = self.embed_with_dropout(&source_ids, dropout)?;
        let layout = AttentionLayout {
            query_rows: &source_rows,
            key_rows: &source_rows,
            bias: Some(&encoder_bias),
        };
        let mut encoder_layers = Vec::with_capacity(self.encoder_blocks.len());
        for block in &self.encoder_blocks {
            let (attended, attention_residual, attention) =
                residual_forward(&block.attention_norm, hidden, dropout, |x, d| {
                    attention_forward(&block.self_attention, x, x, &layout, adapter, d)
                })?;
            let (fed, feed_forward_residual, feed_forward) =
                residual_forward(&block.feed_forward_norm, attended, dropout, |x, d| {
                    feed_forward_forward(&block.feed_forward, x, adapter, d)
                })?;
            hidden = fed;
            encoder_layers.push(EncoderLayerTape {
                attention_residual,
                attention,
                feed_forward_residual,
                feed_forward,
            });
        }
        let (encoder_output, encoder_final, encoder_output_mask) =
            final_norm(&self.encoder_norm, &hidden, dropout)?;

        let (mut hidden, decoder_embedding_mask) =
            self.embed_with_dropout(&decoder_ids, dropout)?;
        let self_layout = AttentionLayout {
            query_rows: &target_rows,
            key_rows: &target_rows,
            bias: Some(&decoder_bias),
        };
        let cross_layout = AttentionLayout {
            query_rows: &target_rows,
            key_rows: &source_rows,
            bias: None,
        };
        let mut decoder_layers = Vec::with_capacity(self.decoder_blocks.len());
        for block in &self.decoder_blocks {
            let (attended, self_residual, self_attention) =
                residual_forward(&block.self_attention_norm, hidden, dropout, |x, d| {
                    attention_forward(&block.self_attention, x, x, &self_layout, adapter, d)
                })?;
            let (crossed, cross_residual, cross_attention) =
                residual_forward(&block.cross_attention_norm, attended, dropout, |x, d| {
                    let memory = &encoder_output;
                    attention_forward(&block.cross_attention, x, memory, &cross_layout, adapter, d)
                })?;
            let (fed, feed_forward_residual, feed_forward) =
                residual_forward(&block.feed_forward_norm, crossed, dropout, |x, d| {
                    feed_forward_forward(&block.feed_forward, x, adapter, d)
                })?;
            hidden = fed;
            decoder_layers.push(DecoderLayerTape {
                self_residual,
                self_attention,
                cross_residual,
                cross_attention,
                feed_forward_residual,
                feed_forward,
            });
        }
        let (decoder_output, decoder_final, decoder_output_mask) =
            final_norm(&self.decoder_norm, &hidden, dropout)?;
        let (logits, head_input, head) = match &self.lm_head {
            Some(linear) => {
                let (logits, tape) = linear_forward(linear, &decoder_output, adapter, dropout)?;
                (logits, decoder_output, Some(tape))
            }
            None => {
                let scaled = (decoder_output * (config.d_model as f64).powf(-0.5))?;
                (matmul(&scaled, &self.shared.t()?)?, scaled, None)
            }
        };
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let picked = log_probs.gather(&labels.unsqueeze(1)?, 1)?;
        let loss_sum = -(picked.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?);
        Ok(Pass {
            loss_sum,
            target_tokens,
            source_tokens,
            tape: Tape {
                source_ids,
                decoder_ids,
                labels,
                source_rows,
                target_rows,
                encoder_bias,
                decoder_bias,
                encoder_embedding_mask,
                encoder_layers,
                encoder_final,
                encoder_output_mask,
                encoder_output,
                decoder_embedding_mask,
                decoder_layers,
                decoder_final,
                decoder_output_mask,
                head_input,
                head,
                log_probs,
            },
        })
    }

    /// Gradients of `loss_scale * loss_sum` of the forward pass that recorded `tape`.
    pub fn backward(
        &self,
        tape: Tape,
        adapter: Option<&Adapter>,
        trained: Trained,
        loss_scale: f64,
    ) -> Result<Gradients> {
        let mut gradients = Gradients::default();
        let g = &mut gradients;
        let config = &self.config;
        let everything = trained == Trained::Everything;

        let grad_logits = cross_entropy_gradient(&tape.log_probs, &tape.labels, loss_scale)?;
        let grad_decoder_output = match (&self.lm_head, &tape.head) {
            (Some(linear), Some(head_tape)) => {
                linear_backward(linear, head_tape, &grad_logits, adapter, trained, g)?
            }
            _ => {
                if everything {
                    g.add(
                        "shared.weight".into(),
                        matmul(&grad_logits.t()?, &tape.head_input)?,
                    )?;
                }
                (matmul(&grad_logits, &self.shared)? * (config.d_model as f64).powf(-0.5))?
            }
        };
        let grad = apply_mask(&grad_decoder_output, &tape.decoder_output_mask)?;
        let mut grad = norm_backward(&self.decoder_norm, &tape.decoder_final, &grad, trained, g)?;

        let self_layout = AttentionLayout {
            query_rows: &tape.target_rows,
            key_rows: &tape.target_rows,
            bias: Some(&tape.decoder_bias),
        };
        let cross_layout = AttentionLayout {
            query_rows: &tape.target_rows,
            key_rows: &tape.source_rows,
            bias: None,
        };
        let mut decoder_bias_grad = everything
            .then(|| tape.decoder_bias.zeros_like())
            .transpose()?;
        let mut grad_encoder_output = tape.encoder_output.zeros_like()?;
        for (block, layer) in self.decoder_blocks.iter().zip(&tape.decoder_layers).rev() {
            let ff = (&block.feed_forward, &layer.feed_forward);
            grad = residual_backward(
                &block.feed_forward_norm,
                &layer.feed_forward_residual,
                grad,
                trained,
                g,
                |grad, g| feed_forward_backward(ff.0, ff.1, grad, adapter, trained, g),
            )?;
            let mut grad_keys = None;
            grad = residual_backward(
                &block.cross_attention_norm,
                &layer.cross_residual,
                grad,
                trained,
                g,
                |grad, g| {
                    let (queries, keys) = attention_backward(
                        &block.cross_attention,
                        &layer.cross_attention,
                        grad,
                        &cross_layout,
                        adapter,
                        trained,
                        g,
                        None,
                    )?;
                    grad_keys = Some(keys);
                    Ok(queries)
                },
            )?;
            if let Some(keys) = grad_keys {
                grad_encoder_output = (grad_encoder_output + keys)?;
            }
            grad = residual_backward(
                &block.self_attention_norm,
                &layer.self_residual,
                grad,
                trained,
                g,
                |grad, g| {
                    let (queries, keys) = attention_backward(
                        &block.self_attention,
                        &layer.self_attention,
                        grad,
                        &self_layout,
                        adapter,
                        trained,
                        g,
                        decoder_bias_grad.as_mut(),
                    )?;
                    Ok((queries + keys)?)
                },
            )?;
        }
        let grad_decoder_embedding = apply_mask(&grad, &tape.decoder_embedding_mask)?;

        let grad = apply_mask(&grad_encoder_output, &tape.encoder_output_mask)?;
        let mut grad = norm_backward(&self.encoder_norm, &tape.encoder_final, &grad, trained, g)?;
        let layout = AttentionLayout {
            query_rows: &tape.source_rows,
            key_rows: &tape.source_rows,
            bias: Some(&tape.encoder_bias),
        };
        let mut encoder_bias_grad = everything
            .then(|| tape.encoder_bias.zeros_like())
            .transpose()?;
        for (block, layer) in self.encoder_blocks.iter().zip(&tape.encoder_layers).rev() {
            let ff = (&block.feed_forward, &layer.feed_forward);
            grad = residual_backward(
                &block.feed_forward_norm,
                &layer.feed_forward_residual,
                grad,
                trained,
                g,
                |grad, g| feed_forward_backward(ff.0, ff.1, grad, adapter, trained, g),
            )?;
            grad = residual_backward(
                &block.attention_norm,
                &layer.attention_residual,
                grad,
                trained,
                g,
                |grad, g| {
                    let (queries, keys) = attention_backward(
                        &block.self_attention,
                        &layer.attention,
                        grad,
                        &layout,
                        adapter,
                        trained,
                        g,
                        encoder_bias_grad.as_mut(),
                    )?;
                    Ok((queries + keys)?)
                },
            )?;
        }

        if everything {
            let grad_encoder_embedding = apply_mask(&grad, &tape.encoder_embedding_mask)?;
            let table = self.shared.zeros_like()?;
            let table = table.index_add(&tape.source_ids, &grad_encoder_embedding, 0)?;
            let table = table.index_add(&tape.decoder_ids, &grad_decoder_embedding, 0)?;
            g.add("shared.weight".into(), table)?;
            for (attention, sum) in [
                (&self.encoder_blocks[0].self_attention, encoder_bias_grad),
                (&self.decoder_blocks[0].self_attention, decoder_bias_grad),
            ] {
                if let Some(sum) = sum {
                    g.add(
                        format!("{}.relative_attention_bias.weight", attention.path),
                        bucket_gradient(attention, &sum, config.relative_attention_num_buckets)?,
                    )?;
                }
            }
        }
        Ok(gradients)
    }
}

/// `scale * (softmax - one_hot(label))`, the gradient of `scale * -log softmax[label]` per row.
fn cross_entropy_gradient(log_probs: &Tensor, labels: &Tensor, scale: f64) -> Result<Tensor> {
    use rayon::prelude::*;
    let (rows, vocab) = log_probs.dims2()?;
    let labels = labels.to_vec1::<u32>()?;
    let mut values = log_probs.flatten_all()?.to_vec1::<f32>()?;
    let scale = scale as f32;
    values
        .par_chunks_mut(vocab)
        .zip(labels.par_iter())
        .for_each(|(row, &label)| {
            for value in row.iter_mut() {
                let gradient = value.exp() * scale;
                // Subnormal numbers slow every later multiply by two orders of magnitude, and
                // probabilities this small change nothing.
                *value = if gradient.abs() < f32::MIN_POSITIVE {
                    0.0
                } else {
                    gradient
                };
            }
            if let Some(value) = row.get_mut(label as usize) {
                *value -= scale;
            }
        });
    Ok(Tensor::from_vec(values, (rows, vocab), log_probs.device())?)
}

/// Sums the gradient of the position bias `(heads, L, L)` into the bucket table `(buckets, heads)`.
fn bucket_gradient(
    attention: &Attention,
    bias_gradient: &Tensor,
    buckets: usize,
) -> Result<Tensor> {
    let per_head = bias_gradient.to_vec3::<f32>()?;
    let heads = per_head.len();
    let mut table = vec![0f32; buckets * heads];
    for (head, rows) in per_head.iter().enumerate() {
        for (query, row) in rows.iter().enumerate() {
            for (key, &value) in row.iter().enumerate() {
                let bucket = relative_position_bucket(
                    key as i64 - query as i64,
                    attention.bidirectional,
                    attention.num_buckets,
                    attention.max_distance,
                ) as usize;
                table[bucket * heads + head] += value;
            }
        }
    }
    Ok(Tensor::from_vec(
        table,
        (buckets, heads),
        bias_gradient.device(),
    )?)
}

impl T5 {
    /// Every weight with its name in transformers' naming, `shared.weight` first.
    pub fn named_weights(&self) -> Vec<(String, Tensor)> {
        let mut copy = self.clone();
        let mut named = Vec::new();
        copy.visit_weights_mut(&mut |name, tensor| named.push((name.to_string(), tensor.clone())));
        named
    }

    /// Calls `visit` with the name and storage of every weight.
    pub fn visit_weights_mut(&mut self, visit: &mut dyn FnMut(&str, &mut Tensor)) {
        visit("shared.weight", &mut self.shared);
        for block in &mut self.encoder_blocks {
            visit_attention(&mut block.self_attention, visit);
            visit_norm(&mut block.attention_norm, visit);
            visit_feed_forward(&mut block.feed_forward, visit);
            visit_norm(&mut block.feed_forward_norm, visit);
        }
        visit_norm(&mut self.encoder_norm, visit);
        for block in &mut self.decoder_blocks {
            visit_attention(&mut block.self_attention, visit);
            visit_norm(&mut block.self_attention_norm, visit);
            visit_attention(&mut block.cross_attention, visit);
            visit_norm(&mut block.cross_attention_norm, visit);
            visit_feed_forward(&mut block.feed_forward, visit);
            visit_norm(&mut block.feed_forward_norm, visit);
        }
        visit_norm(&mut self.decoder_norm, visit);
        if let Some(head) = &mut self.lm_head {
            visit_linear(head, visit);
        }
    }
}

fn visit_linear(linear: &mut Linear, visit: &mut dyn FnMut(&str, &mut Tensor)) {
    let name = format!("{}.weight", linear.name());
    visit(&name, linear.weight_mut());
}

fn visit_norm(norm: &mut LayerNorm, visit: &mut dyn FnMut(&str, &mut Tensor)) {
    visit(&norm.name, &mut norm.weight);
}

fn visit_attention(attention: &mut Attention, visit: &mut dyn FnMut(&str, &mut Tensor)) {
    for linear in [
        &mut attention.q,
        &mut attention.k,
        &mut attention.v,
        &mut attention.o,
    ] {
        visit_linear(linear, visit);
    }
    if let Some(table) = &mut attention.relative_attention_bias {
        visit(
            &format!("{}.relative_attention_bias.weight", attention.path),
            table,
        );
    }
}

fn visit_feed_forward(feed_forward: &mut FeedForward, visit: &mut dyn FnMut(&str, &mut Tensor)) {
    visit_linear(&mut feed_forward.wi, visit);
    if let Some(gate) = &mut feed_forward.wi_gate {
        visit_linear(gate, visit);
    }
    visit_linear(&mut feed_forward.wo, visit);
}
