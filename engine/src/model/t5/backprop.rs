//! The T5's backward pass, written out by hand over the tape of the forward pass (`forward.rs`).
//!
//! Written by hand rather than with candle's autograd because autograd computes the gradient of
//! every operand, frozen base weights included; here a frozen weight costs only the product that
//! carries the gradient through it, which is what LoRA training spends most of its time on.

use std::collections::BTreeMap;

use candle_core::{D, DType, Tensor};

use super::super::cpu;
use super::super::gemm::matmul;
use super::forward::{
    AttentionLayout, AttentionTape, FeedForwardTape, NormTape, ResidualTape, Tape, apply_mask,
    from_heads, to_heads,
};
use super::{Activation, Attention, FeedForward, LayerNorm, T5, relative_position_bucket};
use crate::error::Result;
use crate::lora::{Adapter, Linear, LinearTape};

/// What the backward pass computes gradients for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trained {
    /// The LoRA weights of the adapter passed in.
    Adapter,
    /// Every weight of the model (full fine-tuning).
    Everything,
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

/// An input the forward pass kept for this gradient; one it did not keep is a bug in the tape.
fn kept_input<'a>(kept: &'a Option<Tensor>, layer: &str) -> Result<&'a Tensor> {
    kept.as_ref().ok_or_else(|| {
        candle_core::Error::Msg(format!("the forward pass kept no input for {layer}")).into()
    })
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
    let input = || kept_input(&tape.input, linear.name());
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
        let dropped = apply_mask(input()?, &lora_tape.mask)?;
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
            matmul(&grad.t()?, input()?)?,
        )?;
    }
    Ok(grad_input)
}

fn norm_backward(
    norm: &LayerNorm,
    tape: &NormTape,
    grad: &Tensor,
    trained: Trained,
    gradients: &mut Gradients,
) -> Result<Tensor> {
    // `1 / sqrt(mean(x^2) + eps)` per row, `(rows, 1)`, as the forward pass's norm computed it.
    let inverse_rms = (tape.input.sqr()?.mean_keepdim(D::Minus1)? + norm.eps as f64)?
        .sqrt()?
        .recip()?;
    let normalized = tape.input.broadcast_mul(&inverse_rms)?;
    if trained == Trained::Everything {
        gradients.add(norm.name.clone(), (grad * &normalized)?.sum(0)?)?;
    }
    let weighted = grad.broadcast_mul(&norm.weight)?;
    let projection = (&weighted * &normalized)?.mean_keepdim(D::Minus1)?;
    Ok((weighted - normalized.broadcast_mul(&projection)?)?.broadcast_mul(&inverse_rms)?)
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

impl T5 {
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
        let grad_decoder_output = match (&self.lm_head, &tape.decoder.head) {
            (Some(linear), Some(head_tape)) => {
                linear_backward(linear, head_tape, &grad_logits, adapter, trained, g)?
            }
            _ => {
                if everything {
                    g.add(
                        "shared.weight".into(),
                        matmul(
                            &grad_logits.t()?,
                            kept_input(&tape.decoder.tied_head_input, "lm_head")?,
                        )?,
                    )?;
                }
                (matmul(&grad_logits, &self.shared)? * (config.d_model as f64).powf(-0.5))?
            }
        };
        let grad = apply_mask(&grad_decoder_output, &tape.decoder.output_mask)?;
        let mut grad = norm_backward(
            &self.decoder_norm,
            &tape.decoder.final_norm,
            &grad,
            trained,
            g,
        )?;

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
        for (block, layer) in self.decoder_blocks.iter().zip(&tape.decoder.layers).rev() {
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
        let grad_decoder_embedding = apply_mask(&grad, &tape.decoder.embedding_mask)?;

        let grad = apply_mask(&grad_encoder_output, &tape.encoder.output_mask)?;
        let mut grad = norm_backward(
            &self.encoder_norm,
            &tape.encoder.final_norm,
            &grad,
            trained,
            g,
        )?;
        let layout = AttentionLayout {
            query_rows: &tape.source_rows,
            key_rows: &tape.source_rows,
            bias: Some(&tape.encoder_bias),
        };
        let mut encoder_bias_grad = everything
            .then(|| tape.encoder_bias.zeros_like())
            .transpose()?;
        for (block, layer) in self.encoder_blocks.iter().zip(&tape.encoder.layers).rev() {
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
            let grad_encoder_embedding = apply_mask(&grad, &tape.encoder.embedding_mask)?;
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
