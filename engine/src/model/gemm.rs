//! Single-precision matrix multiply with an AVX-512 kernel, for the large products of the encoder,
//! of training and of the language-model head. candle's own multiply (the `gemm` crate) runs its
//! AVX2 kernel on stable Rust, about half of what an AVX-512 CPU does; below the AVX-512 kernel
//! level (a CPU without it, or `DIALORA_CPU` capping it) candle's is used.
//!
//! The layout is the usual one of BLIS: the right operand is packed in panels of `NR` columns per
//! block of `KC` rows, the left one in panels of `MR` rows, and an `MR x NR` kernel keeps its
//! results in registers over the block. Operands may have any strides, so a transposed weight is
//! read in place.

use candle_core::{Storage, Tensor};
use rayon::prelude::*;

use super::cpu::{Level, level};

const MR: usize = 12;
const NR: usize = 32;
const KC: usize = 512;
/// The most rows of the left operand packed at once (kept in the L2 cache).
const MC_MAX: usize = 192;

/// A read-only strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

/// `a (m, k) @ b (k, n)`: with the AVX-512 kernel where it applies, else candle's multiply.
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    match avx512_matmul(level(), a, b)? {
        Some(product) => Ok(product),
        None => a.matmul(b),
    }
}

/// `a (m, k) @ b (k, n)` for 2-D f32 CPU tensors of any strides, when `level` has the AVX-512
/// kernel and the product is large enough to gain from it.
fn avx512_matmul(level: Level, a: &Tensor, b: &Tensor) -> candle_core::Result<Option<Tensor>> {
    let (Ok((m, k)), Ok((k2, n))) = (a.dims2(), b.dims2()) else {
        return Ok(None);
    };
    let applies = level >= Level::Avx512 && super::cpu::applies(level, &[a, b]);
    if k != k2 || !applies || m < 16 || n < NR || k < 16 {
        return Ok(None);
    }
    let (a_storage, a_layout) = a.storage_and_layout();
    let (b_storage, b_layout) = b.storage_and_layout();
    let (Storage::Cpu(a_cpu), Storage::Cpu(b_cpu)) = (&*a_storage, &*b_storage) else {
        return Ok(None);
    };
    let a_data = a_cpu.as_slice::<f32>()?;
    let b_data = b_cpu.as_slice::<f32>()?;
    let a_view = View {
        data: &a_data[a_layout.start_offset()..],
        row_stride: a_layout.stride()[0],
        col_stride: a_layout.stride()[1],
    };
    let b_view = View {
        data: &b_data[b_layout.start_offset()..],
        row_stride: b_layout.stride()[0],
        col_stride: b_layout.stride()[1],
    };
    let mut out = vec![0f32; m * n];
    // SAFETY: a level is only ever one this CPU runs, and this one has AVX-512F.
    unsafe { multiply(a_view, b_view, m, k, n, &mut out) };
    drop((a_storage, b_storage));
    Ok(Some(Tensor::from_vec(out, (m, n), a.device())?))
}

thread_local! {
    /// Packing buffers, kept between calls: allocating (and page-faulting) megabytes per product
    /// costs as much as a small product.
    static PACKED_A: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    static PACKED_B: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer `key` of at least `len` values. The buffer is taken out of
/// its cell while `f` runs, so that a product started inside `f` on this thread (rayon runs other
/// tasks while it waits) gets a buffer of its own instead of finding this one borrowed.
fn with_buffer<R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let mut buffer = key.with(|cell| cell.take());
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let result = f(&mut buffer[..len]);
    key.with(|cell| cell.replace(buffer));
    result
}

/// `c = a @ b`, `c` row-major `(m, n)`; every element of `c` is written.
///
/// # Safety
/// The CPU has AVX-512F.
unsafe fn multiply(a: View, b: View, m: usize, k: usize, n: usize, c: &mut [f32]) {
    let panels = n.div_ceil(NR);
    // Row blocks of equal size, a whole number of them per thread.
    let threads = rayon::current_num_threads().max(1);
    let blocks = m.div_ceil(MC_MAX * threads) * threads;
    let mc_block = m.div_ceil(blocks).next_multiple_of(MR);
    with_buffer(&PACKED_B, panels * KC * NR, |packed_b| {
        for block_start in (0..k).step_by(KC) {
            let kc = KC.min(k - block_start);
            packed_b
                .par_chunks_mut(KC * NR)
                .enumerate()
                .for_each(|(panel, out)| pack_b(b, block_start, kc, panel * NR, n, out));
            let packed_b = &*packed_b;
            let first = block_start == 0;
            c.par_chunks_mut(mc_block * n)
                .enumerate()
                .for_each(|(block, c_rows)| {
                    let row_start = block * mc_block;
                    let mc = mc_block.min(m - row_start);
                    with_buffer(&PACKED_A, mc_block * KC, |packed_a| {
                        pack_a(a, row_start, mc, block_start, kc, packed_a);
                        for panel in 0..panels {
                            let col = panel * NR;
                            let nr = NR.min(n - col);
                            let b_panel = &packed_b[panel * KC * NR..];
                            for strip in 0..mc.div_ceil(MR) {
                                let row = strip * MR;
                                let mr = MR.min(mc - row);
                                let a_strip = &packed_a[strip * MR * KC..];
                                let c_tile = &mut c_rows[row * n + col..];
                                // SAFETY: this function's caller checked AVX-512F.
                                unsafe { tile(kc, a_strip, b_panel, c_tile, n, mr, nr, first) };
                            }
                        }
                    })
                });
        }
    })
}

/// Packs rows `block_start..+kc` of columns `col..col+NR` of `b` as `kc` rows of `NR` (zero past `n`).
fn pack_b(b: View, block_start: usize, kc: usize, col: usize, n: usize, out: &mut [f32]) {
    let width = NR.min(n.saturating_sub(col));
    if b.col_stride == 1 {
        for p in 0..kc {
            let start = (block_start + p) * b.row_stride + col;
            out[p * NR..p * NR + width].copy_from_slice(&b.data[start..start + width]);
        }
    } else {
        // A transposed weight when `row_stride` is 1: each column is contiguous.
        let columns: Vec<&[f32]> = (0..width)
            .map(|j| {
                let start = block_start * b.row_stride + (col + j) * b.col_stride;
                &b.data[start..start + (kc - 1) * b.row_stride + 1]
            })
            .collect();
        for p in 0..kc {
            let row = &mut out[p * NR..p * NR + width];
            for (value, column) in row.iter_mut().zip(&columns) {
                *value = column[p * b.row_stride];
            }
        }
    }
    for p in 0..kc {
        out[p * NR + width..(p + 1) * NR].fill(0.0);
    }
}

/// Packs rows `row_start..+mc`, columns `block_start..+kc` of `a` as strips of `MR` rows, each
/// `kc` groups of `MR` (zero past `mc`).
fn pack_a(a: View, row_start: usize, mc: usize, block_start: usize, kc: usize, out: &mut [f32]) {
    for strip in 0..mc.div_ceil(MR) {
        let strip_out = &mut out[strip * MR * KC..strip * MR * KC + kc * MR];
        let rows = MR.min(mc - strip * MR);
        let sources: Vec<&[f32]> = (0..rows)
            .map(|i| {
                let start =
                    (row_start + strip * MR + i) * a.row_stride + block_start * a.col_stride;
                &a.data[start..start + (kc - 1) * a.col_stride + 1]
            })
            .collect();
        for (p, group) in strip_out.chunks_exact_mut(MR).enumerate() {
            for (value, source) in group.iter_mut().zip(&sources) {
                *value = source[p * a.col_stride];
            }
            group[rows..].fill(0.0);
        }
    }
}

/// One `mr x nr` tile of `c` (row stride `ldc`): set to, or with `first` false added to, the
/// product of a packed strip and a packed panel over `kc`.
///
/// # Safety
/// The CPU has AVX-512F.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn tile(
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    ldc: usize,
    mr: usize,
    nr: usize,
    first: bool,
) {
    let mut result = [0f32; MR * NR];
    assert!(a.len() >= kc * MR && b.len() >= kc * NR);
    // SAFETY: the caller guarantees AVX-512F; the assert above bounds every read of the kernel.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        kernel(kc, a.as_ptr(), b.as_ptr(), &mut result)
    };
    for i in 0..mr {
        let row = &mut c[i * ldc..i * ldc + nr];
        let values = &result[i * NR..i * NR + nr];
        if first {
            row.copy_from_slice(values);
        } else {
            for (c, v) in row.iter_mut().zip(values) {
                *c += v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, out: &mut [f32; MR * NR]) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kc {
        // SAFETY: the caller guarantees `kc * NR` values at `b` and `kc * MR` at `a`.
        unsafe {
            let b0 = _mm512_loadu_ps(b.add(p * NR));
            let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*a.add(p * MR + i));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: `out` holds MR rows of NR values.
        unsafe {
            _mm512_storeu_ps(out.as_mut_ptr().add(i * NR), row[0]);
            _mm512_storeu_ps(out.as_mut_ptr().add(i * NR + 16), row[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::super::cpu::Level;

    #[test]
    fn matches_candle_for_every_layout_and_edge_at_every_level() {
        for level in Level::available() {
            products_match_candle(level);
        }
    }

    /// Below the AVX-512 level the kernel must decline (candle multiplies), at it it must run.
    fn products_match_candle(level: Level) {
        let device = Device::Cpu;
        for (m, k, n) in [(16, 16, 32), (37, 300, 45), (130, 513, 97), (200, 64, 1000)] {
            let a = Tensor::randn(0f32, 1.0, (m, k), &device).unwrap();
            let b = Tensor::randn(0f32, 1.0, (k, n), &device).unwrap();
            let bt = Tensor::randn(0f32, 1.0, (n, k), &device).unwrap();
            let at = Tensor::randn(0f32, 1.0, (k, m), &device).unwrap();
            for (lhs, rhs) in [
                (a.clone(), b.clone()),
                (a.clone(), bt.t().unwrap()),
                (at.t().unwrap(), b.clone()),
            ] {
                let theirs = lhs.matmul(&rhs).unwrap();
                let Some(ours) = super::avx512_matmul(level, &lhs, &rhs).unwrap() else {
                    assert!(level < Level::Avx512, "the kernel declined at {level:?}");
                    continue;
                };
                assert!(level >= Level::Avx512, "the kernel ran at {level:?}");
                let difference = crate::model::max_abs_difference(&ours, &theirs);
                assert!(
                    difference < 1e-3 * (k as f32).sqrt(),
                    "{m}x{k}x{n}: {difference}"
                );
            }
        }
    }
}
