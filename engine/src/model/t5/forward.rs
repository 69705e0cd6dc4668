//! The T5's one forward pass over whole sequences, which encoding, teacher-forced logits, losses
//! and training all run. Rows are packed: every row's real tokens one after another, so no work is
//! spent on padding and no attention mask is needed. With a tape it keeps what the backward pass
//! needs; without one each layer's intermediates are freed as soon as the next layer has them.
//! Only the incremental decoding step with its key/value cache (in `t5.rs`) stays apart.

use candle_core::{D, Tensor};

use super::super::cpu;
use super::super::gemm::products_with_weights;
use super::{Activation, Attention, FeedForward, LayerNorm, T5, causal_mask};
use crate::error::{Error, Result};
use crate::lora::{Adapter, Linear, LinearTape};
use crate::rng::SplitMix64;

/// One example: the tokenized prompt and the target summary (ending with `</s>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub source: Vec<u32>,
    pub target: Vec<u32>,
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
    /// A mask of `like`'s shape: dropped with probability `rate` (to 1/65536), else kept and
    /// scaled by `1 / (1 - rate)`. Drawn in parallel from sub-streams seeded by one draw of the
    /// generator, so the masks depend only on the generator's state, not on the number of threads.
    pub(crate) fn mask(&mut self, rate: f64, like: &Tensor) -> Result<Option<Mask>> {
        use rayon::prelude::*;
        if rate <= 0.0 {
            return Ok(None);
        }
        const CHUNK: usize = 1 << 14;
        let threshold = (rate * 65536.0).round() as u64;
        let seed = self.rng.next_u64();
        let mut kept = vec![0u8; like.elem_count()];
        kept.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(index, chunk)| {
                let mut rng =
                    SplitMix64::new(seed ^ (index as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
                for group in chunk.chunks_mut(4) {
                    let bits = rng.next_u64();
                    for (lane, kept) in group.iter_mut().enumerate() {
                        let draw = (bits >> (16 * lane)) & 0xFFFF;
                        *kept = u8::from(draw >= threshold);
                    }
                }
            });
        Ok(Some(Mask {
            kept: Tensor::from_vec(kept, like.shape(), like.device())?,
            scale: 1.0 / (1.0 - rate) as f32,
        }))
    }
}

/// A drawn dropout mask: a byte per element, 1 where the element is kept, and the scale of the
/// kept ones. Bytes rather than the scaled values in f32, because the tape holds a mask beside most
/// activations: a quarter of their memory.
#[derive(Debug, Clone)]
pub(crate) struct Mask {
    kept: Tensor,
    scale: f32,
}

impl Mask {
    /// `xs` with the dropped elements 0 and the kept ones scaled.
    fn apply(&self, xs: &Tensor) -> Result<Tensor> {
        if let Some(out) = cpu::dropout(xs, &self.kept, self.scale)? {
            return Ok(out);
        }
        Ok((xs.mul(&self.kept.to_dtype(xs.dtype())?)? * f64::from(self.scale))?)
    }
}

/// `xs` times the dropout mask, when one was drawn.
pub(crate) fn apply_mask(xs: &Tensor, mask: &Option<Mask>) -> Result<Tensor> {
    match mask {
        Some(mask) => mask.apply(xs),
        None => Ok(xs.clone()),
    }
}

/// `(start, len)` of each row in a packed sequence of rows of `lengths`.
pub(super) fn segments(lengths: impl Iterator<Item = usize>) -> Vec<(usize, usize)> {
    lengths
        .scan(0, |start, len| {
            let segment = (*start, len);
            *start += len;
            Some(segment)
        })
        .collect()
}

pub(super) struct NormTape {
    pub input: Tensor,
}

impl LayerNorm {
    fn forward_taped(&self, xs: &Tensor) -> Result<(Tensor, NormTape)> {
        Ok((self.forward(xs)?, NormTape { input: xs.clone() }))
    }
}

pub(super) struct RowTape {
    /// Attention weights `(heads, queries, keys)` before dropout.
    pub probs: Tensor,
    pub mask: Option<Mask>,
}

pub(super) struct AttentionTape {
    pub q: LinearTape,
    pub k: LinearTape,
    pub v: LinearTape,
    pub o: LinearTape,
    pub queries: Tensor,
    pub keys: Tensor,
    pub values: Tensor,
    pub rows: Vec<RowTape>,
}

/// A packed `(len, heads * d_kv)` slice as `(heads, len, d_kv)`.
pub(super) fn to_heads(
    attention: &Attention,
    packed: &Tensor,
    start: usize,
    len: usize,
) -> Result<Tensor> {
    Ok(packed
        .narrow(0, start, len)?
        .reshape((len, attention.num_heads, attention.d_kv))?
        .transpose(0, 1)?
        .contiguous()?)
}

/// `(heads, len, d_kv)` back to `(len, heads * d_kv)`.
pub(super) fn from_heads(attention: &Attention, split: &Tensor) -> Result<Tensor> {
    let len = split.dim(1)?;
    Ok(split
        .transpose(0, 1)?
        .contiguous()?
        .reshape((len, attention.num_heads * attention.d_kv))?)
}

/// Where the queries and the keys of each row are, and the additive bias `(heads, L, L)` (position
/// bias, causal mask) whose top-left corner each row uses.
pub(super) struct AttentionLayout<'a> {
    pub query_rows: &'a [(usize, usize)],
    pub key_rows: &'a [(usize, usize)],
    pub bias: Option<&'a Tensor>,
}

fn attention_forward(
    attention: &Attention,
    query_input: &Tensor,
    key_input: &Tensor,
    layout: &AttentionLayout,
    adapter: Option<&Adapter>,
    dropout: &mut Option<Dropout>,
) -> Result<(Tensor, AttentionTape)> {
    let (queries, q) = attention.q.forward_taped(query_input, adapter, dropout)?;
    let (keys, k) = attention.k.forward_taped(key_input, adapter, dropout)?;
    let (values, v) = attention.v.forward_taped(key_input, adapter, dropout)?;
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
    let context = Tensor::cat(&contexts, 0)?;
    let (out, o) = attention.o.forward_taped(&context, adapter, dropout)?;
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

pub(super) struct FeedForwardTape {
    pub wi: LinearTape,
    /// The gate's tape and output, for the gated variant.
    pub gate: Option<(LinearTape, Tensor)>,
    /// `wi`'s output before the activation.
    pub pre_activation: Tensor,
    pub mask: Option<Mask>,
    pub wo: LinearTape,
}

impl FeedForward {
    /// `wo(dropout(act(wi(x)) [* wi_gate(x)]))`, for whole sequences and decoding steps alike.
    pub(super) fn forward_taped(
        &self,
        xs: &Tensor,
        adapter: Option<&Adapter>,
        dropout: &mut Option<Dropout>,
    ) -> Result<(Tensor, FeedForwardTape)> {
        let mut inputs = vec![&self.wi];
        inputs.extend(&self.wi_gate);
        // One output per input layer: the activated one first, then the gate.
        let mut projected = Linear::forward_each(&inputs, xs, adapter, dropout)?;
        let gate = self
            .wi_gate
            .is_some()
            .then(|| projected.pop())
            .flatten()
            .map(|(out, tape)| (tape, out));
        let (pre_activation, wi) = projected.remove(0);
        let gate_output = gate.as_ref().map(|(_, output)| output);
        let fused = match self.activation {
            Activation::GeluTanh => cpu::gelu_tanh(&pre_activation, gate_output)?,
            _ => None,
        };
        let hidden = match (fused, gate_output) {
            (Some(hidden), _) => hidden,
            (None, Some(gate)) => (self.activation.apply(&pre_activation)? * gate)?,
            (None, None) => self.activation.apply(&pre_activation)?,
        };
        let mask = match dropout {
            Some(dropout) => dropout.mask(dropout.model_rate, &hidden)?,
            None => None,
        };
        let (out, wo) = self
            .wo
            .forward_taped(&apply_mask(&hidden, &mask)?, adapter, dropout)?;
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
}

/// One pre-norm residual sub-layer's tape: the norm, and the dropout on its output.
pub(super) struct ResidualTape {
    pub norm: NormTape,
    pub mask: Option<Mask>,
}

fn residual_mask(dropout: &mut Option<Dropout>, like: &Tensor) -> Result<Option<Mask>> {
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
) -> Result<(Tensor, NormTape, Option<Mask>)> {
    let (normed, tape) = norm.forward_taped(hidden)?;
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
    let (normed, norm) = norm.forward_taped(&hidden)?;
    let (out, tape) = sublayer(&normed, dropout)?;
    let mask = residual_mask(dropout, &out)?;
    let hidden = (hidden + apply_mask(&out, &mask)?)?;
    Ok((hidden, ResidualTape { norm, mask }, tape))
}

pub(super) struct EncoderLayerTape {
    pub attention_residual: ResidualTape,
    pub attention: AttentionTape,
    pub feed_forward_residual: ResidualTape,
    pub feed_forward: FeedForwardTape,
}

pub(super) struct DecoderLayerTape {
    pub self_residual: ResidualTape,
    pub self_attention: AttentionTape,
    pub cross_residual: ResidualTape,
    pub cross_attention: AttentionTape,
    pub feed_forward_residual: ResidualTape,
    pub feed_forward: FeedForwardTape,
}

/// What the encoder's pass keeps for the backward pass.
pub(super) struct EncoderTape {
    pub embedding_mask: Option<Mask>,
    pub layers: Vec<EncoderLayerTape>,
    pub final_norm: NormTape,
    pub output_mask: Option<Mask>,
}

/// What the decoder's pass and the head keep for the backward pass.
pub(super) struct DecoderTape {
    pub embedding_mask: Option<Mask>,
    pub layers: Vec<DecoderLayerTape>,
    pub final_norm: NormTape,
    pub output_mask: Option<Mask>,
    /// The tied head's input (after its scaling), kept when the embedding itself is trained.
    pub tied_head_input: Option<Tensor>,
    /// The untied head's linear tape.
    pub head: Option<LinearTape>,
}

/// Everything the backward pass needs from the forward pass.
pub struct Tape {
    pub(super) source_ids: Tensor,
    pub(super) decoder_ids: Tensor,
    pub(super) labels: Tensor,
    pub(super) source_rows: Vec<(usize, usize)>,
    pub(super) target_rows: Vec<(usize, usize)>,
    pub(super) encoder_bias: Tensor,
    pub(super) decoder_bias: Tensor,
    pub(super) encoder_output: Tensor,
    pub(super) encoder: EncoderTape,
    pub(super) decoder: DecoderTape,
    pub(super) log_probs: Tensor,
}

/// The losses of a forward pass.
pub struct Pass {
    /// Sum of the token cross-entropies of every target token.
    pub loss_sum: f64,
    /// Each target's summed token cross-entropy, in the batch's order.
    pub target_losses: Vec<f64>,
    pub target_tokens: usize,
    pub source_tokens: usize,
}

/// A packed encoder input: the token ids one row after another, and where each row is.
pub(super) struct Packed {
    pub ids: Tensor,
    pub rows: Vec<(usize, usize)>,
}

impl Packed {
    pub fn new<'a>(rows: impl Iterator<Item = &'a [u32]> + Clone, t5: &T5) -> Result<Self> {
        let ids: Vec<u32> = rows.clone().flatten().copied().collect();
        let rows = segments(rows.map(<[u32]>::len));
        if rows.iter().any(|&(_, len)| len == 0) {
            return Err(Error::settings("an input has no tokens"));
        }
        let count = ids.len();
        Ok(Self {
            ids: Tensor::from_vec(ids, count, &t5.device)?,
            rows,
        })
    }

    pub fn longest(&self) -> usize {
        self.rows.iter().map(|r| r.1).max().unwrap_or(1)
    }
}

impl T5 {
    /// A stack's input: `dropout(embedding[ids])`, with the mask.
    fn embed_with_dropout(
        &self,
        ids: &Tensor,
        dropout: &mut Option<Dropout>,
    ) -> Result<(Tensor, Option<Mask>)> {
        let embedded = self.embedding_rows(ids)?;
        let mask = residual_mask(dropout, &embedded)?;
        Ok((apply_mask(&embedded, &mask)?, mask))
    }

    /// The encoder's position bias `(heads, L, L)` for rows of up to `longest` tokens.
    pub(super) fn encoder_bias(&self, longest: usize) -> Result<Tensor> {
        let first = &self.encoder_blocks[0].self_attention;
        Ok(first
            .position_bias(0, longest, longest, &self.device)?
            .squeeze(0)?)
    }

    /// The decoder's position bias plus the causal mask `(heads, L, L)`.
    pub(super) fn decoder_bias(&self, longest: usize) -> Result<Tensor> {
        let first = &self.decoder_blocks[0].self_attention;
        Ok(first
            .position_bias(0, longest, longest, &self.device)?
            .broadcast_add(&causal_mask(0, longest, longest, &self.device)?)?
            .squeeze(0)?)
    }

    /// The encoder over packed rows: its output `(tokens, d_model)`, and with `record` its tape.
    pub(super) fn encoder_pass(
        &self,
        source: &Packed,
        bias: &Tensor,
        adapter: Option<&Adapter>,
        dropout: &mut Option<Dropout>,
        record: bool,
    ) -> Result<(Tensor, Option<EncoderTape>)> {
        let (mut hidden, embedding_mask) = self.embed_with_dropout(&source.ids, dropout)?;
        let layout = AttentionLayout {
            query_rows: &source.rows,
            key_rows: &source.rows,
            bias: Some(bias),
        };
        let mut layers = Vec::with_capacity(if record { self.encoder_blocks.len() } else { 0 });
        for block in &self.encoder_blocks {
            let (attended, attention_residual, attention) =
                residual_forward(&block.attention_norm, hidden, dropout, |x, d| {
                    attention_forward(&block.self_attention, x, x, &layout, adapter, d)
                })?;
            let (fed, feed_forward_residual, feed_forward) =
                residual_forward(&block.feed_forward_norm, attended, dropout, |x, d| {
                    block.feed_forward.forward_taped(x, adapter, d)
                })?;
            hidden = fed;
            if record {
                layers.push(EncoderLayerTape {
                    attention_residual,
                    attention,
                    feed_forward_residual,
                    feed_forward,
                });
            }
        }
        let (output, final_norm, output_mask) = final_norm(&self.encoder_norm, &hidden, dropout)?;
        let tape = record.then_some(EncoderTape {
            embedding_mask,
            layers,
            final_norm,
            output_mask,
        });
        Ok((output, tape))
    }

    /// The decoder and the head over packed rows of `decoder_ids`, each row attending to its
    /// encoder row: logits `(tokens, vocab)`, and with `record` the tape.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decoder_pass(
        &self,
        target: &Packed,
        bias: &Tensor,
        encoder_output: &Tensor,
        source_rows: &[(usize, usize)],
        adapter: Option<&Adapter>,
        dropout: &mut Option<Dropout>,
        record: bool,
    ) -> Result<(Tensor, Option<DecoderTape>)> {
        let (mut hidden, embedding_mask) = self.embed_with_dropout(&target.ids, dropout)?;
        let self_layout = AttentionLayout {
            query_rows: &target.rows,
            key_rows: &target.rows,
            bias: Some(bias),
        };
        let cross_layout = AttentionLayout {
            query_rows: &target.rows,
            key_rows: source_rows,
            bias: None,
        };
        let mut layers = Vec::with_capacity(if record { self.decoder_blocks.len() } else { 0 });
        for block in &self.decoder_blocks {
            let (attended, self_residual, self_attention) =
                residual_forward(&block.self_attention_norm, hidden, dropout, |x, d| {
                    attention_forward(&block.self_attention, x, x, &self_layout, adapter, d)
                })?;
            let (crossed, cross_residual, cross_attention) =
                residual_forward(&block.cross_attention_norm, attended, dropout, |x, d| {
                    let memory = encoder_output;
                    attention_forward(&block.cross_attention, x, memory, &cross_layout, adapter, d)
                })?;
            let (fed, feed_forward_residual, feed_forward) =
                residual_forward(&block.feed_forward_norm, crossed, dropout, |x, d| {
                    block.feed_forward.forward_taped(x, adapter, d)
                })?;
            hidden = fed;
            if record {
                layers.push(DecoderLayerTape {
                    self_residual,
                    self_attention,
                    cross_residual,
                    cross_attention,
                    feed_forward_residual,
                    feed_forward,
                });
            }
        }
        let (output, final_norm, output_mask) = final_norm(&self.decoder_norm, &hidden, dropout)?;
        let (logits, tied_head_input, head) = self.head_taped(&output, adapter, dropout)?;
        let tape = record.then_some(DecoderTape {
            embedding_mask,
            layers,
            final_norm,
            output_mask,
            tied_head_input,
            head,
        });
        Ok((logits, tape))
    }

    /// The language-model head over `hidden (..., d_model)`: logits, the tied head's scaled input
    /// as one matrix (without an adapter, when every weight is trained), and the untied head's tape.
    pub(super) fn head_taped(
        &self,
        hidden: &Tensor,
        adapter: Option<&Adapter>,
        dropout: &mut Option<Dropout>,
    ) -> Result<(Tensor, Option<Tensor>, Option<LinearTape>)> {
        match &self.lm_head {
            Some(linear) => {
                let (logits, tape) = linear.forward_taped(hidden, adapter, dropout)?;
                Ok((logits, None, Some(tape)))
            }
            None => {
                let dims = hidden.dims();
                let rows = dims[..dims.len() - 1].iter().product::<usize>();
                let scaled = (hidden.reshape((rows, self.config.d_model))?
                    * (self.config.d_model as f64).powf(-0.5))?;
                let logits = products_with_weights(&scaled, &[&self.shared])?.remove(0);
                let mut shape = dims[..dims.len() - 1].to_vec();
                shape.push(self.config.vocab_size);
                let kept = adapter.is_none().then_some(scaled);
                Ok((logits.reshape(shape)?, kept, None))
            }
        }
    }

    /// The teacher-forced pass over `batch`: its losses, and with `record` the tape
    /// [`T5::backward`] needs. With `dropout`, the model's dropout and the adapter's LoRA dropout
    /// are applied as in training.
    pub(super) fn pass(
        &self,
        batch: &[&Pair],
        adapter: Option<&Adapter>,
        dropout: &mut Option<Dropout>,
        record: bool,
    ) -> Result<(Pass, Option<Tape>)> {
        let start = self.config.decoder_start();
        let source = Packed::new(batch.iter().map(|p| p.source.as_slice()), self)?;
        // The decoder reads each target shifted right behind the start token.
        let shifted: Vec<Vec<u32>> = batch
            .iter()
            .map(|p| {
                std::iter::once(start)
                    .chain(p.target.iter().copied())
                    .take(p.target.len())
                    .collect()
            })
            .collect();
        let target = Packed::new(shifted.iter().map(Vec::as_slice), self)?;
        let labels: Vec<u32> = batch
            .iter()
            .flat_map(|p| p.target.iter().copied())
            .collect();
        let (source_tokens, target_tokens) = (source.ids.elem_count(), labels.len());
        let labels = Tensor::from_vec(labels, target_tokens, &self.device)?;
        let encoder_bias = self.encoder_bias(source.longest())?;
        let decoder_bias = self.decoder_bias(target.longest())?;
        let (encoder_output, encoder) =
            self.encoder_pass(&source, &encoder_bias, adapter, dropout, record)?;
        let (logits, decoder) = self.decoder_pass(
            &target,
            &decoder_bias,
            &encoder_output,
            &source.rows,
            adapter,
            dropout,
            record,
        )?;
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let picked = log_probs
            .gather(&labels.unsqueeze(1)?, 1)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let target_losses: Vec<f64> = target
            .rows
            .iter()
            .map(|&(start, len)| {
                -picked[start..start + len]
                    .iter()
                    .map(|&p| p as f64)
                    .sum::<f64>()
            })
            .collect();
        let pass = Pass {
            loss_sum: target_losses.iter().sum(),
            target_losses,
            target_tokens,
            source_tokens,
        };
        let tape = match (encoder, decoder) {
            (Some(encoder), Some(decoder)) => Some(Tape {
                source_ids: source.ids,
                decoder_ids: target.ids,
                labels,
                source_rows: source.rows,
                target_rows: target.rows,
                encoder_bias,
                decoder_bias,
                encoder_output,
                encoder,
                decoder,
                log_probs,
            }),
            _ => None,
        };
        Ok((pass, tape))
    }

    /// The training pass over `batch`: its losses and the tape [`T5::backward`] needs.
    pub fn training_forward(
        &self,
        batch: &[&Pair],
        adapter: Option<&Adapter>,
        dropout: &mut Option<Dropout>,
    ) -> Result<(Pass, Tape)> {
        let (pass, tape) = self.pass(batch, adapter, dropout, true)?;
        let tape = tape.ok_or_else(|| Error::settings("the training pass kept no tape"))?;
        Ok((pass, tape))
    }

    /// The losses of `batch` without dropout, keeping nothing for a backward pass.
    pub fn losses(&self, batch: &[&Pair], adapter: Option<&Adapter>) -> Result<Pass> {
        Ok(self.pass(batch, adapter, &mut None, false)?.0)
    }
}
