//! Matrix multiply with AVX-512 and AMX kernels, for the large products of the encoder, of
//! training and of the language-model head: in f32, and with a bf16 right operand (a frozen weight
//! stored in bf16, `--precision bf16`) on AMX tiles or AVX-512's bf16 dot products. candle's own
//! multiply (the `gemm` crate) runs its AVX2 kernel on stable Rust, about half of what an AVX-512
//! CPU does, and has no bf16 kernel; below a kernel's level (a CPU without it, or `DIALORA_CPU`
//! capping it) candle's f32 multiply is used, a bf16 operand widened to f32 first. The AMX
//! instructions are written with `asm!`: their intrinsics are not in stable Rust.
//!
//! A bf16 product rounds the left operand to bf16 too and sums the exact products in f32, at
//! every level: the same arithmetic whichever path runs, and PyTorch's for a bf16 matrix multiply
//! but for its final rounding of the result to bf16, which dialora does not do.
//!
//! The layout is the usual one of BLIS: the right operand is packed in panels of `NR` columns per
//! block of `KC` rows, the left one in panels of `MR` rows, and an `MR x NR` kernel keeps its
//! results in registers (AMX: in tiles) over the block. Operands may have any strides, so a
//! transposed weight is read in place. A packed word is 32 bits: one f32, or the bf16 values of
//! two consecutive rows of the block (the even one in the low half), which is what a bf16 dot
//! product and an AMX tile product consume.

use std::mem::MaybeUninit;

use candle_core::{DType, Storage, Tensor, WithDType};
use half::bf16;
use rayon::prelude::*;

use super::cpu::{Level, level};

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
        if let Some(product) = packed_matmul::<Bf16Tiles>(level, a, b)? {
            return Ok(product);
        }
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
    // Not zeroed first: the multiply sets every element, and zeroing costs a twentieth of it.
    let mut out = Vec::with_capacity(m * n);
    // SAFETY: a level is only ever one this CPU runs, and it includes the packing's; the
    // multiply has written all `m * n` elements when it returns.
    unsafe {
        multiply::<P>(
            a_view,
            b_view,
            m,
            k,
            n,
            &mut out.spare_capacity_mut()[..m * n],
        );
        out.set_len(m * n);
    }
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
    /// Rows of the left operand per strip, the rows of a kernel's tile.
    const MR: usize;
    /// The kernel consumes a block's words this many at a time: the words are counted up to a
    /// multiple of it, zeros past `kc`.
    const STEP: usize;
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

    /// One row of the left operand's block, `row` (`kc` values `col_stride` apart), as the
    /// words `out` (`kc.div_ceil(DEPTH)` of them), zero past `kc`.
    fn pack_row(row: &[f32], col_stride: usize, kc: usize, out: &mut [u32]);

    /// Whether a packed strip holds each row's words together (the rows of a tile), rather than
    /// the words of one step of all rows side by side (what a vector kernel broadcasts).
    const ROWS_TOGETHER: bool = false;

    /// Readies this thread for `kernel` calls until `finish` (AMX loads its tile configuration).
    ///
    /// # Safety
    /// The CPU has the kernel's instructions (`LEVEL`).
    unsafe fn start() {}

    /// Ends what `start` began.
    ///
    /// # Safety
    /// The CPU has the kernel's instructions (`LEVEL`).
    unsafe fn finish() {}

    /// The product of `words` packed words of a strip and a panel, written into `tile`.
    ///
    /// # Safety
    /// The CPU has the kernel's instructions (`LEVEL`); `words` is a multiple of `STEP`, `a`
    /// holds `words * MR` words, `b` `words * NR`, and `tile` is within its matrix.
    unsafe fn kernel(words: usize, a: *const u32, b: *const u32, tile: Tile);
}

/// f32 operands.
struct F32;

impl Packing for F32 {
    const LEVEL: Level = Level::Avx512;
    const DEPTH: usize = 1;
    const KC: usize = 512;
    const MR: usize = 12;
    const STEP: usize = 1;
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

    fn pack_row(row: &[f32], col_stride: usize, kc: usize, out: &mut [u32]) {
        for (p, word) in out[..kc].iter_mut().enumerate() {
            *word = row[p * col_stride].to_bits();
        }
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
    const MR: usize = 12;
    const STEP: usize = 1;
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

    fn pack_row(row: &[f32], col_stride: usize, kc: usize, out: &mut [u32]) {
        let pair = |low: f32, high: f32| bf16_bits(low) | bf16_bits(high) << 16;
        if col_stride == 1 {
            let (pairs, last) = row[..kc].as_chunks::<2>();
            for (word, [low, high]) in out.iter_mut().zip(pairs) {
                *word = pair(*low, *high);
            }
            if let [low] = last {
                out[pairs.len()] = pair(*low, 0.0);
            }
        } else {
            let value = |p: usize| if p < kc { row[p * col_stride] } else { 0.0 };
            for (w, word) in out.iter_mut().enumerate() {
                *word = pair(value(2 * w), value(2 * w + 1));
            }
        }
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

/// bf16 operands as [`Bf16`] packs them, multiplied on AMX tiles: a right panel's words are
/// already the layout of a tile of the right operand (a row per word, `NR` columns), and each
/// strip of the left operand is packed row by row, a tile's rows.
struct Bf16Tiles;

impl Packing for Bf16Tiles {
    const LEVEL: Level = Level::Amx;
    const DEPTH: usize = 2;
    const KC: usize = 1024;
    const MR: usize = 2 * TILE_ROWS;
    const STEP: usize = TILE_ROWS;
    type Right = bf16;

    fn pack_b(b: View<bf16>, block_start: usize, kc: usize, col: usize, n: usize, out: &mut [u32]) {
        Bf16::pack_b(b, block_start, kc, col, n, out)
    }

    fn pack_row(row: &[f32], col_stride: usize, kc: usize, out: &mut [u32]) {
        Bf16::pack_row(row, col_stride, kc, out)
    }

    const ROWS_TOGETHER: bool = true;

    unsafe fn start() {
        // SAFETY: as the caller guarantees.
        #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
        unsafe {
            std::arch::asm!("ldtilecfg [{}]", in(reg) &TILE_CONFIG, options(nostack, readonly))
        };
    }

    unsafe fn finish() {
        // SAFETY: as the caller guarantees.
        #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
        unsafe {
            std::arch::asm!("tilerelease", options(nostack, nomem))
        };
    }

    unsafe fn kernel(words: usize, a: *const u32, b: *const u32, tile: Tile) {
        // SAFETY: as the caller guarantees.
        #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
        unsafe {
            kernel_tiles(words, a, b, tile)
        };
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
        {
            let _ = (words, a, b, tile);
            unreachable!("no AMX level off x86-64 Linux")
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

/// Words per cache line: packed buffers start on a line, so that no 64-byte row of a tile
/// straddles two (which halves the speed of AMX's tile loads).
const LINE_WORDS: usize = 16;

/// Runs `f` with this thread's buffer `key` of `len` words, starting on a cache line. The buffer
/// is taken out of its cell while `f` runs, so that a product started inside `f` on this thread
/// (rayon runs other tasks while it waits) gets a buffer of its own instead of finding this one
/// borrowed.
fn with_buffer<R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<u32>>>,
    len: usize,
    f: impl FnOnce(&mut [u32]) -> R,
) -> R {
    let mut buffer = key.with(|cell| cell.take());
    if buffer.len() < len + LINE_WORDS {
        buffer.resize(len + LINE_WORDS, 0);
    }
    let start = buffer.as_ptr().align_offset(LINE_WORDS * 4).min(LINE_WORDS);
    let result = f(&mut buffer[start..start + len]);
    key.with(|cell| cell.replace(buffer));
    result
}

/// `c = a @ b`, `c` row-major `(m, n)`; every element of `c` is written (the first block of
/// `a`'s columns sets them, the others add to them).
///
/// # Safety
/// The CPU has the packing's kernel.
unsafe fn multiply<P: Packing>(
    a: View<f32>,
    b: View<P::Right>,
    m: usize,
    k: usize,
    n: usize,
    c: &mut [MaybeUninit<f32>],
) {
    let panels = n.div_ceil(NR);
    let block_words = (P::KC / P::DEPTH).next_multiple_of(P::STEP);
    // Row blocks of equal size, a whole number of them per thread.
    let threads = rayon::current_num_threads().max(1);
    let blocks = m.div_ceil(MC_MAX * threads) * threads;
    let mc_block = m.div_ceil(blocks).next_multiple_of(P::MR);
    with_buffer(&PACKED_B, panels * block_words * NR, |packed_b| {
        for block_start in (0..k).step_by(P::KC) {
            let kc = P::KC.min(k - block_start);
            let words = kc.div_ceil(P::DEPTH).next_multiple_of(P::STEP);
            packed_b
                .par_chunks_mut(block_words * NR)
                .enumerate()
                .for_each(|(panel, out)| {
                    P::pack_b(b, block_start, kc, panel * NR, n, out);
                    out[kc.div_ceil(P::DEPTH) * NR..words * NR].fill(0);
                });
            let packed_b = &*packed_b;
            let first = block_start == 0;
            c.par_chunks_mut(mc_block * n)
                .enumerate()
                .for_each(|(block, c_rows)| {
                    let row_start = block * mc_block;
                    let mc = mc_block.min(m - row_start);
                    with_buffer(&PACKED_A, mc_block * block_words, |packed_a| {
                        pack_a::<P>(a, row_start, mc, block_start, kc, packed_a);
                        // SAFETY: this function's caller checked the kernel's level.
                        unsafe { P::start() };
                        for panel in 0..panels {
                            let col = panel * NR;
                            let nr = NR.min(n - col);
                            let b_panel = &packed_b[panel * block_words * NR..];
                            for strip in 0..mc.div_ceil(P::MR) {
                                let row = strip * P::MR;
                                let mr = P::MR.min(mc - row);
                                let a_strip = &packed_a[strip * P::MR * words..];
                                let c_tile = &mut c_rows[row * n + col..];
                                // SAFETY: this function's caller checked the kernel's level.
                                unsafe {
                                    tile::<P>(words, a_strip, b_panel, c_tile, n, mr, nr, first)
                                };
                            }
                        }
                        // SAFETY: as for `start`.
                        unsafe { P::finish() };
                    })
                });
        }
    })
}

/// Packs rows `row_start..+mc`, columns `block_start..+kc` of `a` as strips of `MR` rows of
/// `words` words each, laid out as the packing's `ROWS_TOGETHER` says (zero past `mc` and past
/// `kc`).
fn pack_a<P: Packing>(
    a: View<f32>,
    row_start: usize,
    mc: usize,
    block_start: usize,
    kc: usize,
    out: &mut [u32],
) {
    let filled = kc.div_ceil(P::DEPTH);
    let words = filled.next_multiple_of(P::STEP);
    let mut row_words = vec![0; if P::ROWS_TOGETHER { 0 } else { filled }];
    for strip in 0..mc.div_ceil(P::MR) {
        let strip_out = &mut out[strip * P::MR * words..(strip + 1) * P::MR * words];
        let rows = P::MR.min(mc - strip * P::MR);
        for i in 0..rows {
            let start = (row_start + strip * P::MR + i) * a.row_stride + block_start * a.col_stride;
            let source = &a.data[start..start + (kc - 1) * a.col_stride + 1];
            if P::ROWS_TOGETHER {
                let row = &mut strip_out[i * words..(i + 1) * words];
                P::pack_row(source, a.col_stride, kc, &mut row[..filled]);
                row[filled..].fill(0);
            } else {
                P::pack_row(source, a.col_stride, kc, &mut row_words);
                for (w, word) in row_words.iter().enumerate() {
                    strip_out[w * P::MR + i] = *word;
                }
            }
        }
        if P::ROWS_TOGETHER {
            strip_out[rows * words..].fill(0);
        } else {
            for group in strip_out.chunks_exact_mut(P::MR) {
                group[rows..].fill(0);
            }
        }
    }
}

/// `value` rounded to the nearest bf16 (ties to even; a NaN stays a NaN), as bits: what
/// `half::bf16::from_f32` gives, in arithmetic a compiler turns into vector code.
fn bf16_bits(value: f32) -> u32 {
    let bits = value.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + (bits >> 16 & 1)) >> 16;
    if value.is_nan() {
        bits >> 16 | 0x40
    } else {
        rounded
    }
}

/// Where a kernel's `mr x nr` results go: the top-left corner `c` of a tile of a row-major
/// matrix with row stride `ldc`, set to them when `first`, else added to them. The kernel writes
/// them straight from its registers: through a buffer, the buffer's zeroing and copy cost a
/// tenth of a small product.
#[derive(Clone, Copy)]
// Off x86-64 no kernel runs, so nothing reads a tile.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Tile {
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    first: bool,
}

/// One `mr x nr` tile of `c` (row stride `ldc`): set to, or with `first` false added to (it
/// was set before then), the product of a packed strip and a packed panel of `words` words.
///
/// # Safety
/// The CPU has the packing's kernel.
#[allow(clippy::too_many_arguments)]
unsafe fn tile<P: Packing>(
    words: usize,
    a: &[u32],
    b: &[u32],
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
    mr: usize,
    nr: usize,
    first: bool,
) {
    assert!(words.is_multiple_of(P::STEP));
    assert!(a.len() >= words * P::MR && b.len() >= words * NR);
    assert!(mr <= P::MR && nr <= NR && mr > 0 && c.len() >= (mr - 1) * ldc + nr);
    let tile = Tile {
        c: c.as_mut_ptr().cast(),
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
    let mut acc = [[_mm512_setzero_ps(); 2]; F32::MR];
    for p in 0..kc {
        // SAFETY: the caller guarantees `kc * NR` values at `b` and `kc * MR` at `a`.
        unsafe {
            let b0 = _mm512_loadu_ps(b.add(p * NR));
            let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*a.add(p * F32::MR + i));
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
    let mut acc = [[_mm512_setzero_ps(); 2]; Bf16::MR];
    for p in 0..words {
        // SAFETY: the caller guarantees `words * NR` words at `b` and `words * MR` at `a`; a
        // vector of 16 words is one of 32 bf16 values.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR).cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR + 16).cast()));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*a.add(p * Bf16::MR + i) as i32));
                row[0] = _mm512_dpbf16_ps(row[0], ai, b0);
                row[1] = _mm512_dpbf16_ps(row[1], ai, b1);
            }
        }
    }
    // SAFETY: the caller guarantees that `tile` is within its matrix.
    unsafe { store(&acc, tile) };
}

/// Rows of an AMX tile: 16 rows of 64 bytes, 16 f32 results or 32 bf16 values.
const TILE_ROWS: usize = 16;

/// The tile configuration every AMX kernel loads (palette 1): eight tiles of 16 rows of 64
/// bytes: results, left rows, right rows alike.
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
const TILE_CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// `x` (`m` rows of `k` values, 2 to 16 rows) as the right operand of [`few_rows_on_tiles`]:
/// for each pair of columns, a row of 16 words (one per row of `x`, packed as [`Bf16`] packs a
/// left row; zero past `m`), the layout of a tile's rows. `None` where the tiles do not apply:
/// below the level `amx`, or `k` not a multiple of a tile's 32 values.
pub(super) fn few_rows_for_tiles(level: Level, x: &[f32], m: usize, k: usize) -> Option<Vec<u32>> {
    if level < Level::Amx || !k.is_multiple_of(2 * TILE_ROWS) || !(2..=TILE_ROWS).contains(&m) {
        return None;
    }
    let mut packed = vec![0u32; k / 2 * TILE_ROWS];
    let mut row_words = vec![0u32; k / 2];
    for (j, row) in x.chunks_exact(k).take(m).enumerate() {
        Bf16::pack_row(row, 1, k, &mut row_words);
        for (w, word) in row_words.iter().enumerate() {
            packed[w * TILE_ROWS + j] = *word;
        }
    }
    Some(packed)
}

/// `x W^T` for a few rows of `x` (packed by [`few_rows_for_tiles`]) and rows of a bf16 weight
/// (`weight`, rows of `k` values, a multiple of 16 rows), on AMX tiles: the weight is the left
/// operand, read in place (its rows are a tile's rows), so that decoding streams each weight once
/// with no packing. `out` gets the product as `weight`'s rows by `m` columns.
///
/// # Safety
/// The CPU runs the level `amx`; `packed` came from `few_rows_for_tiles` with this `m` and `k`.
pub(super) unsafe fn few_rows_on_tiles(
    weight: &[bf16],
    packed: &[u32],
    k: usize,
    m: usize,
    out: &mut [f32],
) {
    let rows = weight.len() / k;
    assert!(rows.is_multiple_of(TILE_ROWS) && weight.len() == rows * k);
    assert!(packed.len() == k / 2 * TILE_ROWS && out.len() == rows * m && m <= TILE_ROWS);
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    // SAFETY: the caller guarantees AMX; the asserts bound every tile's reads and `out`'s writes.
    unsafe {
        use std::arch::asm;
        Bf16Tiles::start();
        let weight_stride = k * 2;
        let packed_stride = TILE_ROWS * 4;
        let mut results = [[0f32; TILE_ROWS]; TILE_ROWS];
        let mut block = 0;
        while block < rows {
            // Two blocks of 16 rows at once where there are, for two independent sums.
            let pair = block + 2 * TILE_ROWS <= rows;
            let first = weight.as_ptr().add(block * k);
            asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem));
            for step in 0..k / (2 * TILE_ROWS) {
                let left = first.add(step * 2 * TILE_ROWS);
                let right = packed.as_ptr().add(step * TILE_ROWS * TILE_ROWS);
                if pair {
                    asm!(
                        "tileloadd tmm4, [{w0} + {ws}]",
                        "tileloadd tmm5, [{w1} + {ws}]",
                        "tileloadd tmm6, [{x} + {xs}]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm5, tmm6",
                        w0 = in(reg) left,
                        w1 = in(reg) left.add(TILE_ROWS * k),
                        x = in(reg) right,
                        ws = in(reg) weight_stride,
                        xs = in(reg) packed_stride,
                        options(nostack, readonly),
                    );
                } else {
                    asm!(
                        "tileloadd tmm4, [{w0} + {ws}]",
                        "tileloadd tmm6, [{x} + {xs}]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        w0 = in(reg) left,
                        x = in(reg) right,
                        ws = in(reg) weight_stride,
                        xs = in(reg) packed_stride,
                        options(nostack, readonly),
                    );
                }
            }
            let mut copy_out = |start: usize, results: &[[f32; TILE_ROWS]; TILE_ROWS]| {
                for (i, row) in results.iter().enumerate() {
                    out[(start + i) * m..(start + i + 1) * m].copy_from_slice(&row[..m]);
                }
            };
            asm!("tilestored [{c} + {s}], tmm0", c = in(reg) results.as_mut_ptr(), s = in(reg) packed_stride, options(nostack));
            copy_out(block, &results);
            if pair {
                asm!("tilestored [{c} + {s}], tmm1", c = in(reg) results.as_mut_ptr(), s = in(reg) packed_stride, options(nostack));
                copy_out(block + TILE_ROWS, &results);
            }
            block += if pair { 2 * TILE_ROWS } else { TILE_ROWS };
        }
        Bf16Tiles::finish();
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
    unreachable!("no AMX level off x86-64 Linux")
}

/// A 32 x 32 tile on AMX: results in tiles 0-3 (rows 0-15 and 16-31 by columns 0-15 and
/// 16-31), the strip's two halves in tiles 4 and 5, the panel's in 6 and 7; each step of 16
/// words is four tile products of 16 x 16 results by 32 bf16 values.
///
/// # Safety
/// The CPU has AMX-BF16 and AVX-512F, this process was granted the tiles' state and this thread
/// loaded [`TILE_CONFIG`] (`Bf16Tiles::start`); `words`
/// is a multiple of 16, `words * 32` words at `a` (a strip, row by row) and at `b` (a panel).
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_tiles(words: usize, a: *const u32, b: *const u32, tile: Tile) {
    use std::arch::asm;
    use std::arch::x86_64::*;
    let a_stride = words * 4;
    let b_stride = NR * 4;
    // SAFETY: the caller guarantees AMX; each load reads 16 rows of 64 bytes within `a` or `b`.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for step in (0..words).step_by(TILE_ROWS) {
            asm!(
                "tileloadd tmm4, [{a0} + {a_stride}]",
                "tileloadd tmm5, [{a1} + {a_stride}]",
                "tileloadd tmm6, [{b0} + {b_stride}]",
                "tileloadd tmm7, [{b1} + {b_stride}]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a.add(step),
                a1 = in(reg) a.add(TILE_ROWS * words + step),
                b0 = in(reg) b.add(step * NR),
                b1 = in(reg) b.add(step * NR + 16),
                a_stride = in(reg) a_stride,
                b_stride = in(reg) b_stride,
                options(nostack, readonly),
            );
        }
    }
    let mut results = [[_mm512_setzero_ps(); 2]; Bf16Tiles::MR];
    let at = results.as_mut_ptr().cast::<f32>();
    // SAFETY: each store writes 16 rows of 64 bytes within `results`, 32 rows of 128 bytes.
    unsafe {
        asm!(
            "tilestored [{c00} + {stride}], tmm0",
            "tilestored [{c01} + {stride}], tmm1",
            "tilestored [{c10} + {stride}], tmm2",
            "tilestored [{c11} + {stride}], tmm3",
            c00 = in(reg) at,
            c01 = in(reg) at.add(16),
            c10 = in(reg) at.add(TILE_ROWS * NR),
            c11 = in(reg) at.add(TILE_ROWS * NR + 16),
            stride = in(reg) NR * 4,
            options(nostack),
        );
        store(&results, tile)
    };
}

/// Writes a kernel's accumulators, rows of two vectors, into the first `tile.mr` rows and
/// `tile.nr` columns of `tile`.
///
/// # Safety
/// The CPU has AVX-512F; `tile` is within its matrix.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn store(acc: &[[std::arch::x86_64::__m512; 2]], tile: Tile) {
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
        let packed: Vec<u32> = recorded["rounding.input"]
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(|v| super::bf16_bits(v) << 16)
            .collect();
        assert_eq!(packed, bits(&recorded["rounding.bf16"]));
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
                let tiles = super::packed_matmul::<super::Bf16Tiles>(level, &lhs, &rhs_bf16);
                assert_eq!(tiles.unwrap().is_some(), level >= Level::Amx, "{level:?}");
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
