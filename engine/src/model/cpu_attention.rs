//! Attention of a single query position on the CPU, fused: scores, softmax and the weighted sum of
//! values in one pass per (row, head). Decoding asks this once per layer and step with tiny shapes,
//! where a batched matrix multiply per head costs more in dispatch than in arithmetic.

use candle_core::{CpuStorage, Device, Storage, Tensor};

/// `softmax(q k^T + bias) v` for `q (b, h, 1, d)`, `k`/`v (b, h, t, d)` and a bias broadcastable to
/// `(b, h, 1, t)`; `None` when the tensors are not f32 on the CPU (the caller uses the general path).
pub fn single_query_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    if !matches!(q.device(), Device::Cpu) || q.dtype() != candle_core::DType::F32 {
        return Ok(None);
    }
    let (b, h, one, d) = q.dims4()?;
    let t = k.dim(2)?;
    if one != 1 {
        return Ok(None);
    }
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let bias = bias.broadcast_as((b, h, 1, t))?.contiguous()?;
    let mut out = vec![0f32; b * h * d];
    {
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (bs, bl) = bias.storage_and_layout();
        let (Storage::Cpu(qs), Storage::Cpu(ks), Storage::Cpu(vs), Storage::Cpu(bs)) =
            (&*qs, &*ks, &*vs, &*bs)
        else {
            return Ok(None);
        };
        let slice = |s: &CpuStorage, offset: usize, len: usize| -> candle_core::Result<Vec<f32>> {
            // Only the small query and bias are copied; keys and values are read in place below.
            Ok(s.as_slice::<f32>()?[offset..offset + len].to_vec())
        };
        let qv = slice(qs, ql.start_offset(), b * h * d)?;
        let bv = slice(bs, bl.start_offset(), b * h * t)?;
        let kv = &ks.as_slice::<f32>()?[kl.start_offset()..kl.start_offset() + b * h * t * d];
        let vv = &vs.as_slice::<f32>()?[vl.start_offset()..vl.start_offset() + b * h * t * d];
        let mut scores = vec![0f32; t];
        for bh in 0..b * h {
            let query = &qv[bh * d..(bh + 1) * d];
            let keys = &kv[bh * t * d..(bh + 1) * t * d];
            let values = &vv[bh * t * d..(bh + 1) * t * d];
            let bias = &bv[bh * t..(bh + 1) * t];
            let mut max = f32::NEG_INFINITY;
            for (j, score) in scores.iter_mut().enumerate() {
                let key = &keys[j * d..(j + 1) * d];
                *score = query.iter().zip(key).map(|(a, b)| a * b).sum::<f32>() + bias[j];
                max = max.max(*score);
            }
            let mut sum = 0f32;
            for score in scores.iter_mut() {
                *score = (*score - max).exp();
                sum += *score;
            }
            let context = &mut out[bh * d..(bh + 1) * d];
            for (j, &weight) in scores.iter().enumerate() {
                let weight = weight / sum;
                for (c, value) in context.iter_mut().zip(&values[j * d..(j + 1) * d]) {
                    *c += weight * value;
                }
            }
        }
    }
    Ok(Some(Tensor::from_vec(out, (b, h, 1, d), q.device())?))
}
