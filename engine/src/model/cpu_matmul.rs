//! `x W^T` for a few rows of `x` on the CPU, the shape of every linear layer while decoding. There
//! the cost is streaming the weights from memory once per step; general matrix-multiply kernels
//! pack and tile for reuse that a handful of rows cannot give. Here each weight row is read once and
//! multiplied with all rows of `x` while it is in cache, on all cores.

use candle_core::{DType, Device, Storage, Tensor};
use rayon::prelude::*;

/// Largest number of rows of `x` taken by these paths.
pub const MAX_ROWS: usize = 16;

/// `x (m, k) @ w^T` with `w (n, k)`; `None` when not applicable (GPU, other dtypes, many rows).
pub fn few_rows_matmul(x: &Tensor, w: &Tensor) -> candle_core::Result<Option<Tensor>> {
    let (m, k) = x.dims2()?;
    let (n, wk) = w.dims2()?;
    if m > MAX_ROWS
        || k != wk
        || !matches!(x.device(), Device::Cpu)
        || x.dtype() != DType::F32
        || w.dtype() != DType::F32
    {
        return Ok(None);
    }
    if !w.is_contiguous() {
        return Ok(None);
    }
    if m > 1 {
        // With the weight as the left operand gemm streams it once for all rows.
        return Ok(Some(w.matmul(&x.t()?)?.t()?.contiguous()?));
    }
    let x = x.contiguous()?;
    let mut out = vec![0f32; n * m];
    {
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (Storage::Cpu(xs), Storage::Cpu(ws)) = (&*xs, &*ws) else {
            return Ok(None);
        };
        let xv = &xs.as_slice::<f32>()?[xl.start_offset()..xl.start_offset() + m * k];
        let wv = &ws.as_slice::<f32>()?[wl.start_offset()..wl.start_offset() + n * k];
        // Output transposed (n, m): each task owns whole weight rows.
        let rows_per_task = (n / (rayon::current_num_threads() * 8)).max(16);
        let kernel = row_times_rows();
        out.par_chunks_mut(rows_per_task * m)
            .enumerate()
            .for_each(|(task, chunk)| {
                let first = task * rows_per_task;
                for (offset, outputs) in chunk.chunks_mut(m).enumerate() {
                    let row = &wv[(first + offset) * k..(first + offset + 1) * k];
                    kernel(row, xv, outputs);
                }
            });
    }
    let transposed = Tensor::from_vec(out, (n, m), x.device())?;
    Ok(Some(if m == 1 {
        transposed.reshape((1, n))?
    } else {
        transposed.t()?.contiguous()?
    }))
}

type Kernel = fn(&[f32], &[f32], &mut [f32]);

/// The fastest kernel this CPU runs: `outputs[r] = row . x[r]` for every row `r` of `x`.
fn row_times_rows() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        return |row, x, outputs| {
            // SAFETY: the CPU supports the features the function is compiled for (checked above).
            unsafe { row_times_rows_avx2(row, x, outputs) }
        };
    }
    row_times_rows_portable
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_times_rows_avx2(row: &[f32], x: &[f32], outputs: &mut [f32]) {
    row_times_rows_portable(row, x, outputs)
}

#[inline(always)]
fn row_times_rows_portable(row: &[f32], x: &[f32], outputs: &mut [f32]) {
    let k = row.len();
    for (r, output) in outputs.iter_mut().enumerate() {
        *output = dot(row, &x[r * k..(r + 1) * k]);
    }
}

/// Sixteen independent partial sums, so the compiler vectorizes without reassociating.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = a.len() / 16;
    for c in 0..chunks {
        let (x, y) = (&a[c * 16..c * 16 + 16], &b[c * 16..c * 16 + 16]);
        for i in 0..16 {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for i in chunks * 16..a.len() {
        sum += a[i] * b[i];
    }
    sum
}
