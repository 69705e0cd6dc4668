//! Matrix multiply with AVX-512 kernels, for the large products of the encoder, of training and of
//! the language-model head: in f32, and with a bf16 right operand (a frozen weight stored in
//! bf16, `--precision bf16`) on AVX-512's bf16 dot products. candle's own multiply (the `gemm`
//! crate) runs its AVX2 kernel on stable Rust, about half of what an AVX-512 CPU does, and has no
//! bf16 kernel; below a kernel's level (a CPU without it, or `DIALORA_CPU` capping it) candle's
//! f32 multiply is used, a bf16 operand widened to f32 first.
//!
//! A bf16 product rounds the left operand to bf16 too and sums the exact products in f32, at
//! every level: the same arithmetic whichever path runs, and PyTorch's for a bf16 matrix multiply
//! but for its final rounding of the result to bf16, which dialora does not do.
//!
//! The layout is the usual one of BLIS: the right operand is packed in panels of `NR` columns per
//! block of `KC` rows, the left one in panels of `MR` rows, and an `MR x NR` kernel keeps its
//! results in registers over the block. Operands may have any strides, so a transposed weight is
//! read in place. A packed word is 32 bits: one f32, or the bf16 values of two consecutive rows
//! of the block (the even one in the low half), which is what a bf16 dot product consumes.

use candle_core::{DType, Storage, Tensor, WithDType};
use half::bf16;
use rayon::prelude::*;

use super::cpu::{Level, level};

const MR: usize = 12;
const NR: usize = 32;
/// The most rows of the left operand packed at once (kept in the L2 cache).
const MC_MAX: usize = 192;

/// A read-only strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
struct View<'a, T> {
    data: &'a [T],
    row_stride: usize,
    col_stride: usize,
}

/// `a (m, k) @ b (k, n)`: with our kernels where they apply, else candle's multiply. A bf16 `b`
/// (a frozen weight) gives an f32 product of `a` rounded to bf16.
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    matmul_at(level(), a, b)
}

fn matmul_at(level: Level, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if b.dtype() == DType::BF16 {
        if let Some(product) = packed_matmul::<Bf16>(level, a, b)? {
            return Ok(product);
        }
        return matmul_at(level, &round_to_bf16(a)?, &b.to_dtype(DType::F32)?);
    }
    match packed_matmul::<F32>(level, a, b)? {
        Some(product) => Ok(product),
        None => a.matmul(b),
    }
}

/// `xs W^T` for each weight `(out, in)` of `weights`: the few-row kernels when `xs` has a few
/// rows (decoding), else the multiply.
pub fn products_with_weights(xs: &Tensor, weights: &[&Tensor]) -> candle_core::Result<Vec<Tensor>> {
    match super::cpu::few_rows_matmuls(xs, weights)? {
        Some(products) => Ok(products),
        None => weights.iter().map(|w| matmul(xs, &w.t()?)).collect(),
    }
}

/// `xs` with each value rounded to the nearest bf16 (ties to even), kept in f32.
pub(super) fn round_to_bf16(xs: &Tensor) -> candle_core::Result<Tensor> {
    xs.to_dtype(DType::BF16)?.to_dtype(DType::F32)
}

/// `a (m, k) @ b (k, n)` for 2-D CPU tensors of any strides, `a` f32 and `b` of the packing's
/// type, when `level` has the packing's kernel and the product is large enough to gain from it.
fn packed_matmul<P: Packing>(
    level: Level,
    a: &Tensor,
    b: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    let (Ok((m, k)), Ok((k2, n))) = (a.dims2(), b.dims2()) else {
        return Ok(None);
    };
    let on_cpu = a.device().is_cpu() && b.device().is_cpu();
    let types = a.dtype() == DType::F32 && b.dtype() == P::Right::DTYPE;
    if k != k2 || level < P::LEVEL || !on_cpu || !types || m < 16 || n < NR || k < 16 {
        return Ok(None);
    }
    let (a_storage, a_layout) = a.storage_and_layout();
    let (b_storage, b_layout) = b.storage_and_layout();
    let (Storage::Cpu(a_cpu), Storage::Cpu(b_cpu)) = (&*a_storage, &*b_storage) else {
        return Ok(None);
    };
    let a_data = a_cpu.as_slice::<f32>()?;
    let b_data = b_cpu.as_slice::<P::Right>()?;
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
    // SAFETY: a level is only ever one this CPU runs, and it includes the packing's.
    unsafe { multiply::<P>(a_view, b_view, m, k, n, &mut out) };
    drop((a_storage, b_storage));
    Ok(Some(Tensor::from_vec(out, (m, n), a.device())?))
}

/// How the operands are packed into 32-bit words and which kernel multiplies them.
trait Packing {
    /// The lowest kernel level with the kernel.
    const LEVEL: Level;
    /// Rows of the block per packed word.
    const DEPTH: usize;
    /// Rows of the right operand per block: a packed panel of `KC / DEPTH` words by `NR` fills
    /// about half of the L2 cache's share of one core.
    const KC: usize;
    /// The right operand's element type.
    type Right: WithDType;

    fn pack_b(
        b: View<Self::Right>,
        block_start: usize,
        kc: usize,
        col: usize,
        n: usize,
        out: &mut [u32],
    );

    /// Word `w` of one row of the left operand's block, `row` (`kc` values `col_stride` apart):
    /// its values `w * DEPTH..`, zero past `kc`.
    fn word(row: &[f32], col_stride: usize, kc: usize, w: usize) -> u32;

    /// The product of `words` packed words of a strip and a panel, written into `tile`.
    ///
    /// # Safety
    /// The CPU has the kernel's instructions (`LEVEL`); `a` holds `words * MR` words, `b`
    /// `words * NR`, and `tile` is within its matrix.
    unsafe fn kernel(words: usize, a: *const u32, b: *const u32, tile: Tile);
}

/// f32 operands.
struct F32;

impl Packing for F32 {
    const LEVEL: Level = Level::Avx512;
    const DEPTH: usize = 1;
    const KC: usize = 512;
    type Right = f32;

    fn pack_b(b: View<f32>, block_start: usize, kc: usize, col: usize, n: usize, out: &mut [u32]) {
        let width = NR.min(n.saturating_sub(col));
        if b.col_stride == 1 {
            for p in 0..kc {
                let start = (block_start + p) * b.row_stride + col;
                let row = &b.data[start..start + width];
                for (word, value) in out[p * NR..p * NR + width].iter_mut().zip(row) {
                    *word = value.to_bits();
                }
            }
        } else {
            // A transposed weight when `row_stride` is 1: each column is contiguous.
            let columns = columns(b, block_start, kc, col, width);
            for p in 0..kc {
                let row = &mut out[p * NR..p * NR + width];
                for (word, column) in row.iter_mut().zip(&columns) {
                    *word = column[p * b.row_stride].to_bits();
                }
            }
        }
        for p in 0..kc {
            out[p * NR + width..(p + 1) * NR].fill(0);
        }
    }

    fn word(row: &[f32], col_stride: usize, _kc: usize, w: usize) -> u32 {
        row[w * col_stride].to_bits()
    }

    unsafe fn kernel(words: usize, a: *const u32, b: *const u32, tile: Tile) {
        // SAFETY: as the caller guarantees.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            kernel_f32(words, a.cast(), b.cast(), tile)
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (words, a, b, tile);
            unreachable!("no AVX-512 level off x86-64")
        }
    }
}

/// An f32 left operand rounded to bf16, a bf16 right one.
struct Bf16;

impl Packing for Bf16 {
    const LEVEL: Level = Level::Avx512Bf16;
    const DEPTH: usize = 2;
    const KC: usize = 1024;
    type Right = bf16;

    fn pack_b(b: View<bf16>, block_start: usize, kc: usize, col: usize, n: usize, out: &mut [u32]) {
        let width = NR.min(n.saturating_sub(col));
        let pair = |low: bf16, high: bf16| low.to_bits() as u32 | (high.to_bits() as u32) << 16;
        let words = kc.div_ceil(2);
        if b.row_stride == 1 {
            // A transposed weight: each column's pairs are adjacent.
            let columns = columns(b, block_start, kc, col, width);
            for (j, column) in columns.iter().enumerate() {
                for (w, values) in column.chunks(2).enumerate() {
                    let high = values.get(1).copied().unwrap_or(bf16::ZERO);
                    out[w * NR + j] = pair(values[0], high);
                }
            }
        } else {
            for w in 0..words {
                let low = (block_start + 2 * w) * b.row_stride + col * b.col_stride;
                let high = (2 * w + 1 < kc).then_some(low + b.row_stride);
                for j in 0..width {
                    let at = j * b.col_stride;
                    let high = high.map_or(bf16::ZERO, |high| b.data[high + at]);
                    out[w * NR + j] = pair(b.data[low + at], high);
                }
            }
        }
        for w in 0..words {
            out[w * NR + width..(w + 1) * NR].fill(0);
        }
    }

    fn word(row: &[f32], col_stride: usize, kc: usize, w: usize) -> u32 {
        let low = row[2 * w * col_stride];
        let high = if 2 * w + 1 < kc {
            row[(2 * w + 1) * col_stride]
        } else {
            0.0
        };
        let [low, high] = [low, high].map(|v| bf16::from_f32(v).to_bits() as u32);
        low | high << 16
    }

    unsafe fn kernel(words: usize, a: *const u32, b: *const u32, tile: Tile) {
        // SAFETY: as the caller guarantees.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            kernel_bf16(words, a, b, tile)
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (words, a, b, tile);
            unreachable!("no AVX-512 level off x86-64")
        }
    }
}

/// Columns `col..col + width` of `b`, rows `block_start..+kc`, each as one slice read with the
/// row stride (contiguous when the row stride is 1).
fn columns<'a, T>(
    b: View<'a, T>,
    block_start: usize,
    kc: usize,
    col: usize,
    width: usize,
) -> Vec<&'a [T]> {
    (0..width)
        .map(|j| {
            let start = block_start * b.row_stride + (col + j) * b.col_stride;
            &b.data[start..start + (kc - 1) * b.row_stride + 1]
        })
        .collect()
}

thread_local! {
    /// Packing buffers, kept between calls: allocating (and page-faulting) megabytes per product
    /// costs as much as a small product.
    static PACKED_A: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    static PACKED_B: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer `key` of at least `len` words. The buffer is taken out of
/// its cell while `f` runs, so that a product started inside `f` on this thread (rayon runs other
/// tasks while it waits) gets a buffer of its own instead of finding this one borrowed.
fn with_buffer<R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<u32>>>,
    len: usize,
    f: impl FnOnce(&mut [u32]) -> R,
) -> R {
    let mut buffer = key.with(|cell| cell.take());
    if buffer.len() < len {
        buffer.resize(len, 0);
    }
    let result = f(&mut buffer[..len]);
    key.with(|cell| cell.replace(buffer));
    result
}

/// `c = a @ b`, `c` row-major `(m, n)`; every element of `c` is written.
///
/// # Safety
/// The CPU has the packing's kernel.
unsafe fn multiply<P: Packing>(
    a: View<f32>,
    b: View<P::Right>,
    m: usize,
    k: usize,
    n: usize,
    c: &mut [f32],
) {
    let panels = n.div_ceil(NR);
    let block_words = P::KC / P::DEPTH;
    // Row blocks of equal size, a whole number of them per thread.
    let threads = rayon::current_num_threads().max(1);
    let blocks = m.div_ceil(MC_MAX * threads) * threads;
    let mc_block = m.div_ceil(blocks).next_multiple_of(MR);
    with_buffer(&PACKED_B, panels * block_words * NR, |packed_b| {
        for block_start in (0..k).step_by(P::KC) {
            let kc = P::KC.min(k - block_start);
            let words = kc.div_ceil(P::DEPTH);
            packed_b
                .par_chunks_mut(block_words * NR)
                .enumerate()
                .for_each(|(panel, out)| P::pack_b(b, block_start, kc, panel * NR, n, out));
            let packed_b = &*packed_b;
            let first = block_start == 0;
            c.par_chunks_mut(mc_block * n)
                .enumerate()
                .for_each(|(block, c_rows)| {
                    let row_start = block * mc_block;
                    let mc = mc_block.min(m - row_start);
                    with_buffer(&PACKED_A, mc_block * block_words, |packed_a| {
                        pack_a::<P>(a, row_start, mc, block_start, kc, packed_a);
                        for panel in 0..panels {
                            let col = panel * NR;
                            let nr = NR.min(n - col);
                            let b_panel = &packed_b[panel * block_words * NR..];
                            for strip in 0..mc.div_ceil(MR) {
                                let row = strip * MR;
                                let mr = MR.min(mc - row);
                                let a_strip = &packed_a[strip * MR * words..];
                                let c_tile = &mut c_rows[row * n + col..];
                                // SAFETY: this function's caller checked the kernel's level.
                                unsafe {
                                    tile::<P>(words, a_strip, b_panel, c_tile, n, mr, nr, first)
                                };
                            }
                        }
                    })
                });
        }
    })
}

/// Packs rows `row_start..+mc`, columns `block_start..+kc` of `a` as strips of `MR` rows, each
/// `words` groups of `MR` words (zero past `mc` and past `kc`).
fn pack_a<P: Packing>(
    a: View<f32>,
    row_start: usize,
    mc: usize,
    block_start: usize,
    kc: usize,
    out: &mut [u32],
) {
    let words = kc.div_ceil(P::DEPTH);
    for strip in 0..mc.div_ceil(MR) {
        let strip_out = &mut out[strip * MR * words..(strip + 1) * MR * words];
        let rows = MR.min(mc - strip * MR);
        let sources: Vec<&[f32]> = (0..rows)
            .map(|i| {
                let start =
                    (row_start + strip * MR + i) * a.row_stride + block_start * a.col_stride;
                &a.data[start..start + (kc - 1) * a.col_stride + 1]
            })
            .collect();
        for (w, group) in strip_out.chunks_exact_mut(MR).enumerate() {
            for (word, source) in group.iter_mut().zip(&sources) {
                *word = P::word(source, a.col_stride, kc, w);
            }
            group[rows..].fill(0);
        }
    }
}

/// Where a kernel's `mr x nr` results go: the top-left corner `c` of a tile of a row-major
/// matrix with row stride `ldc`, set to them when `first`, else added to them. The kernel writes
/// them straight from its registers: through a buffer, the buffer's zeroing and copy cost a
/// tenth of a small product.
#[derive(Clone, Copy)]
struct Tile {
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    first: bool,
}

/// One `mr x nr` tile of `c` (row stride `ldc`): set to, or with `first` false added to, the
/// product of a packed strip and a packed panel of `words` words.
///
/// # Safety
/// The CPU has the packing's kernel.
#[allow(clippy::too_many_arguments)]
unsafe fn tile<P: Packing>(
    words: usize,
    a: &[u32],
    b: &[u32],
    c: &mut [f32],
    ldc: usize,
    mr: usize,
    nr: usize,
    first: bool,
) {
    assert!(a.len() >= words * MR && b.len() >= words * NR);
    assert!(mr <= MR && nr <= NR && mr > 0 && c.len() >= (mr - 1) * ldc + nr);
    let tile = Tile {
        c: c.as_mut_ptr(),
        ldc,
        mr,
        nr,
        first,
    };
    // SAFETY: the caller guarantees the kernel's level; the asserts above bound every read and
    // every write of the kernel.
    unsafe { P::kernel(words, a.as_ptr(), b.as_ptr(), tile) };
}

/// # Safety
/// The CPU has AVX-512F; `kc * NR` values at `b` and `kc * MR` at `a`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_f32(kc: usize, a: *const f32, b: *const f32, tile: Tile) {
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
    // SAFETY: the caller guarantees that `tile` is within its matrix.
    unsafe { store(&acc, tile) };
}

/// # Safety
/// The CPU has AVX-512F and AVX512-BF16; `words * NR` words at `b` and `words * MR` at `a`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn kernel_bf16(words: usize, a: *const u32, b: *const u32, tile: Tile) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..words {
        // SAFETY: the caller guarantees `words * NR` words at `b` and `words * MR` at `a`; a
        // vector of 16 words is one of 32 bf16 values.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR).cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR + 16).cast()));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*a.add(p * MR + i) as i32));
                row[0] = _mm512_dpbf16_ps(row[0], ai, b0);
                row[1] = _mm512_dpbf16_ps(row[1], ai, b1);
            }
        }
    }
    // SAFETY: the caller guarantees that `tile` is within its matrix.
    unsafe { store(&acc, tile) };
}

/// Writes a kernel's accumulators, `MR` rows of two vectors, into the first `tile.mr` rows and
/// `tile.nr` columns of `tile`.
///
/// # Safety
/// The CPU has AVX-512F; `tile` is within its matrix.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn store(acc: &[[std::arch::x86_64::__m512; 2]; MR], tile: Tile) {
    use std::arch::x86_64::*;
    let lanes = |n: usize| -> __mmask16 { if n >= 16 { 0xFFFF } else { (1 << n) - 1 } };
    let masks = [lanes(tile.nr), lanes(tile.nr.saturating_sub(16))];
    for (i, row) in acc.iter().enumerate().take(tile.mr) {
        for (half, (value, mask)) in row.iter().zip(masks).enumerate() {
            if mask == 0 {
                continue;
            }
            // SAFETY: the masked lanes are columns below `tile.nr` of rows below `tile.mr`.
            unsafe {
                let at = tile.c.add(i * tile.ldc + half * 16);
                let sum = match tile.first {
                    true => *value,
                    false => _mm512_add_ps(_mm512_maskz_loadu_ps(mask, at), *value),
                };
                _mm512_mask_storeu_ps(at, mask, sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::super::cpu::Level;

    /// Against `fixtures/make_precision_fixtures.py`: rounding to bf16 as PyTorch's
    /// `.bfloat16()` (ties to even, subnormals, overflow to infinity), and a linear layer's bf16
    /// product as PyTorch computes the rounded operands' product exactly, at every level, by the
    /// multiply's kernel and by the few-row kernels.
    #[test]
    fn bf16_rounding_and_products_match_pytorchs_at_every_level() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let load = |file: &str| candle_core::safetensors::load(fixtures.join(file), &Device::Cpu);
        let recorded = load("precision.safetensors").unwrap();
        let model = load("t5-gated/model.safetensors").unwrap();
        let rounded = super::round_to_bf16(&recorded["rounding.input"]).unwrap();
        let bits = |t: &Tensor| -> Vec<u32> {
            t.to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&rounded), bits(&recorded["rounding.bf16"]));
        let weight = model["encoder.block.0.layer.0.SelfAttention.q.weight"]
            .to_dtype(DType::BF16)
            .unwrap();
        let (x, y) = (&recorded["linear.input"], &recorded["linear.output"]);
        // Three copies: enough rows for the multiply's kernel.
        let rows = Tensor::cat(&[x, x, x], 0).unwrap();
        let expected = Tensor::cat(&[y, y, y], 0).unwrap();
        let scale = y
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        for level in Level::available() {
            let product = super::matmul_at(level, &rows, &weight.t().unwrap()).unwrap();
            let difference = crate::model::max_abs_difference(&product, &expected);
            assert!(difference <= 1e-6 * scale, "{level:?}: {difference}");
            let few = crate::model::cpu::few_rows_matmuls_at(level, x, &[&weight]).unwrap();
            for product in few.into_iter().flatten() {
                let difference = crate::model::max_abs_difference(&product, y);
                assert!(
                    difference <= 1e-6 * scale,
                    "{level:?}, few rows: {difference}"
                );
            }
        }
    }

    #[test]
    fn matches_candle_for_every_layout_and_edge_at_every_level() {
        for level in Level::available() {
            products_match_candle(level);
        }
    }

    /// Below a kernel's level the kernel must decline (candle multiplies), at it it must run; a
    /// bf16 right operand gives the product of the left one rounded to bf16, at every level.
    fn products_match_candle(level: Level) {
        let device = Device::Cpu;
        for (m, k, n) in [
            (16, 16, 32),
            (37, 301, 45),
            (130, 1100, 97),
            (200, 64, 1000),
        ] {
            let a = Tensor::randn(0f32, 1.0, (m, k), &device).unwrap();
            let b = Tensor::randn(0f32, 1.0, (k, n), &device).unwrap();
            let bt = Tensor::randn(0f32, 1.0, (n, k), &device).unwrap();
            let at = Tensor::randn(0f32, 1.0, (k, m), &device).unwrap();
            for (lhs, rhs) in [
                (a.clone(), b.clone()),
                (a.clone(), bt.t().unwrap()),
                (at.t().unwrap(), b.clone()),
            ] {
                let tolerance = 1e-3 * (k as f32).sqrt();
                let theirs = lhs.matmul(&rhs).unwrap();
                match super::packed_matmul::<super::F32>(level, &lhs, &rhs).unwrap() {
                    Some(ours) => {
                        assert!(level >= Level::Avx512, "the kernel ran at {level:?}");
                        let difference = crate::model::max_abs_difference(&ours, &theirs);
                        assert!(difference < tolerance, "{m}x{k}x{n}: {difference}");
                    }
                    None => assert!(level < Level::Avx512, "the kernel declined at {level:?}"),
                }
                let rhs_bf16 = rhs.to_dtype(DType::BF16).unwrap();
                let rounded = super::round_to_bf16(&lhs).unwrap();
                let theirs = rounded
                    .matmul(&rhs_bf16.to_dtype(DType::F32).unwrap())
                    .unwrap();
                let ran = super::packed_matmul::<super::Bf16>(level, &lhs, &rhs_bf16).unwrap();
                assert_eq!(ran.is_some(), level >= Level::Avx512Bf16, "{level:?}");
                let ours = super::matmul_at(level, &lhs, &rhs_bf16).unwrap();
                let difference = crate::model::max_abs_difference(&ours, &theirs);
                assert!(
                    difference < tolerance,
                    "bf16 {m}x{k}x{n} at {level:?}: {difference}"
                );
            }
        }
    }
}
