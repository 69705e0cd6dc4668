//! Hand-written CPU kernels for the shapes where candle's general ones spend more time dispatching,
//! packing or calling scalar math than computing: linear layers on a single row (every decoding
//! step at batch 1), attention of a single query (every decoding step), and the tanh-approximated
//! GELU of T5 v1.1 / Flan-T5 (scalar `tanhf` otherwise). Each returns `None` where it does not apply
//! (another device or dtype, or a kernel level that leaves it out), and the caller takes candle's
//! path. Also owns the kernel level: how far these kernels go on this CPU, which `DIALORA_CPU` caps.

use std::sync::OnceLock;

use candle_core::{DType, Device, Storage, Tensor, WithDType};
use half::bf16;
use rayon::prelude::*;

/// How far the hand-written kernels go: the best this CPU has, or less when `DIALORA_CPU` asks,
/// so that one machine runs the path other machines take. Ordered: each level includes the ones
/// below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// candle's own operations only: the path a GPU takes.
    Generic,
    /// Our kernels compiled for the architecture's baseline (SSE2 on x86-64, NEON on aarch64).
    Portable,
    /// Plus the AVX2 + FMA paths (most x86-64 laptops).
    Avx2,
    /// Plus the AVX-512 paths and the AVX-512 matrix multiply.
    Avx512,
    /// Plus the bf16 matrix multiply on AVX-512's bf16 dot products (AMD Zen 4 on, Intel Xeon
    /// since Cooper Lake). It saves memory but is slower than the f32 one (measured on Zen 4 and
    /// on a Xeon capped to it), so `--precision auto` stays f32 here.
    Avx512Bf16,
    /// Plus the bf16 matrix multiply on AMX tiles (Intel Xeon since Sapphire Rapids), on Linux,
    /// which grants a process the tiles' state only when asked: what `--precision auto` picks
    /// bf16 for.
    Amx,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Generic,
        Level::Portable,
        Level::Avx2,
        Level::Avx512,
        Level::Avx512Bf16,
        Level::Amx,
    ];

    /// The name `DIALORA_CPU` takes.
    pub fn name(self) -> &'static str {
        match self {
            Level::Generic => "generic",
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Avx512Bf16 => "avx512bf16",
            Level::Amx => "amx",
        }
    }

    /// Whether this CPU runs the level's instructions.
    pub fn runs_here(self) -> bool {
        match self {
            Level::Generic | Level::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => Level::Avx2.runs_here() && is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512Bf16 => {
                Level::Avx512.runs_here()
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512bf16")
            }
            Level::Amx => Level::Avx512Bf16.runs_here() && amx_granted(),
            #[cfg(not(target_arch = "x86_64"))]
            Level::Avx2 | Level::Avx512 | Level::Avx512Bf16 => false,
        }
    }

    /// Every level this CPU runs, lowest first.
    pub fn available() -> Vec<Level> {
        Level::ALL.into_iter().filter(|l| l.runs_here()).collect()
    }

    /// The level `setting` (a `DIALORA_CPU` value, or none for the best) gives on this CPU.
    pub fn from_setting(setting: Option<&str>) -> std::result::Result<Level, String> {
        let names = || {
            let names: Vec<&str> = Level::available().iter().map(|l| l.name()).collect();
            names.join(", ")
        };
        let Some(setting) = setting.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(*Level::available().last().unwrap_or(&Level::Portable));
        };
        let Some(level) = Level::ALL.into_iter().find(|l| l.name() == setting) else {
            return Err(format!(
                "DIALORA_CPU={setting} is not a kernel level; this computer runs {}",
                names()
            ));
        };
        if !level.runs_here() {
            return Err(format!(
                "DIALORA_CPU={setting} asks for instructions this processor lacks; it runs {}",
                names()
            ));
        }
        Ok(level)
    }
}

/// Whether this CPU has AMX tiles with bf16 products and the kernel lets this process use them
/// (asked once: the grant is for the whole process, every thread included).
fn amx_granted() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    {
        static GRANTED: OnceLock<bool> = OnceLock::new();
        *GRANTED.get_or_init(|| {
            // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
            let features = std::arch::x86_64::__cpuid_count(7, 0).edx;
            let has_tiles = features >> 22 & 1 == 1 && features >> 24 & 1 == 1;
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: arch_prctl with these arguments only changes which state the kernel saves
            // for this process; it fails on a kernel or CPU without AMX.
            has_tiles
                && unsafe {
                    libc::syscall(
                        libc::SYS_arch_prctl,
                        ARCH_REQ_XCOMP_PERM,
                        XFEATURE_XTILEDATA,
                    )
                } == 0
        })
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
    false
}

static LEVEL: OnceLock<std::result::Result<Level, String>> = OnceLock::new();

/// The kernel level of this process, read from `DIALORA_CPU` once; an unknown level, or one this
/// CPU lacks, is one line naming `DIALORA_CPU`.
pub fn checked_level() -> std::result::Result<Level, String> {
    LEVEL
        .get_or_init(|| Level::from_setting(std::env::var("DIALORA_CPU").ok().as_deref()))
        .clone()
}

/// The kernel level every kernel runs at (candle's own operations when `DIALORA_CPU` is unusable,
/// which loading a model refuses before any kernel runs).
pub fn level() -> Level {
    checked_level().unwrap_or(Level::Generic)
}

/// The values of contiguous CPU tensors of type `T`, handed to `f` without copying; `None` when one of
/// them is elsewhere or not contiguous.
fn with_slices<T: WithDType, R>(
    tensors: &[&Tensor],
    f: impl FnOnce(&[&[T]]) -> R,
) -> candle_core::Result<Option<R>> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        let (Storage::Cpu(storage), Some((start, end))) = (&**storage, layout.contiguous_offsets())
        else {
            return Ok(None);
        };
        slices.push(&storage.as_slice::<T>()?[start..end]);
    }
    Ok(Some(f(&slices)))
}

/// Whether the hand-written kernels apply at `level`: f32 tensors on the CPU, and a level above
/// candle's own operations.
pub(super) fn applies(level: Level, tensors: &[&Tensor]) -> bool {
    level > Level::Generic
        && tensors
            .iter()
            .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32)
}

/// Runs `body` compiled for AVX2 + FMA when `level` has them, else for the baseline.
macro_rules! fast_path {
    ($name:ident, fn($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        #[allow(clippy::too_many_arguments)]
        fn $name(level: Level, $($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn portable($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                /// # Safety
                /// The CPU has AVX2 and FMA.
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret { portable($($arg),*) }
                if level >= Level::Avx2 {
                    // SAFETY: a level is only ever one this CPU runs (`Level::from_setting`, and
                    // the tests take `Level::available`), and AVX2 includes FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            let _ = level;
            portable($($arg),*)
        }
    };
}

/// Sixteen independent partial sums, so that the compiler vectorizes without reassociating.
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

/// `out[i] = weights[i] . x` for consecutive weight rows of `x`'s length: four rows per pass, so
/// that four memory streams are in flight while `x` stays in registers and cache.
fn dot_rows(level: Level, weights: &[f32], x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && x.len().is_multiple_of(16) {
        let k = x.len();
        let mut rows = weights.chunks_exact(4 * k).zip(out.chunks_exact_mut(4));
        for (block, outputs) in &mut rows {
            // SAFETY: the level has AVX2 and FMA; `block` holds four rows of `k` values, k.is_multiple_of(16).
            unsafe { dot_four_rows_avx2(block, x, outputs) };
        }
        let done = weights.len() / (4 * k) * 4;
        for (row, output) in weights[done * k..].chunks_exact(k).zip(&mut out[done..]) {
            *output = dot(row, x);
        }
        return;
    }
    let _ = level;
    for (row, output) in weights.chunks_exact(x.len()).zip(out.iter_mut()) {
        *output = dot(row, x);
    }
}

/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_four_rows_avx2(block: &[f32], x: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let k = x.len();
    debug_assert!(block.len() == 4 * k && k.is_multiple_of(16) && out.len() == 4);
    let (w, xs) = (block.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 8];
    for c in (0..k).step_by(16) {
        // SAFETY: c + 16 <= k; row r spans r * k .. r * k + k of `block`.
        unsafe {
            let (x0, x1) = (_mm256_loadu_ps(xs.add(c)), _mm256_loadu_ps(xs.add(c + 8)));
            for r in 0..4 {
                let row = w.add(r * k + c);
                acc[2 * r] = _mm256_fmadd_ps(_mm256_loadu_ps(row), x0, acc[2 * r]);
                acc[2 * r + 1] = _mm256_fmadd_ps(_mm256_loadu_ps(row.add(8)), x1, acc[2 * r + 1]);
            }
        }
    }
    for r in 0..4 {
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` has room for eight f32.
        unsafe {
            _mm256_storeu_ps(
                lanes.as_mut_ptr(),
                _mm256_add_ps(acc[2 * r], acc[2 * r + 1]),
            )
        };
        out[r] = lanes.iter().sum();
    }
}

/// `out[i * m + r] = weights[i] . x[r]` for `m` rows of `x` (each of the weights' row length):
/// each weight is loaded once for up to eight products.
#[cfg(target_arch = "x86_64")]
fn dot_many_rows(level: Level, weights: &[f32], x: &[f32], m: usize, out: &mut [f32]) -> bool {
    let k = x.len() / m;
    let n = weights.len() / k;
    assert!(weights.len() == n * k && out.len() == n * m && x.len() == m * k);
    if level >= Level::Avx512 {
        // Tiles of four weight rows (four memory streams) by up to four rows of x: sixteen
        // 16-wide accumulators.
        for_each_tile(n, m, 4, 4, |i, r, pair, rows| {
            let (w, xs, o) = (&weights[i * k..], &x[r * k..], &mut out[i * m + r..]);
            // SAFETY: the level has AVX-512F; `w` holds the tile's weight rows, `xs` its rows
            // of x and `o` its outputs at (i.., r..) (checked by the assertion and the tiling).
            unsafe {
                match (pair, rows) {
                    (true, 4) => tile_avx512::<4, 4>(w, xs, k, o, m),
                    (true, 2) => tile_avx512::<4, 2>(w, xs, k, o, m),
                    (true, _) => tile_avx512::<4, 1>(w, xs, k, o, m),
                    (false, 4) => tile_avx512::<1, 4>(w, xs, k, o, m),
                    (false, 2) => tile_avx512::<1, 2>(w, xs, k, o, m),
                    (false, _) => tile_avx512::<1, 1>(w, xs, k, o, m),
                }
            }
        });
        return true;
    }
    if level < Level::Avx2 {
        return false;
    }
    // Tiles of four weight rows (four memory streams) by two rows of x: eight accumulators in
    // registers, six loads for eight multiply-adds.
    for_each_tile(n, m, 4, 2, |i, r, quad, pair| {
        let (w, xs, o) = (&weights[i * k..], &x[r * k..], &mut out[i * m + r..]);
        // SAFETY: the level has AVX2 and FMA; `w` holds the tile's weight rows, `xs` its rows
        // of x and `o` its outputs at (i.., r..) (checked by the assertion and the tiling).
        unsafe {
            match (quad, pair == 2) {
                (true, true) => tile_avx2::<4, 2>(w, xs, k, o, m),
                (true, false) => tile_avx2::<4, 1>(w, xs, k, o, m),
                (false, true) => tile_avx2::<1, 2>(w, xs, k, o, m),
                (false, false) => tile_avx2::<1, 1>(w, xs, k, o, m),
            }
        }
    });
    true
}

/// Calls `tile(i, r, full, rows)` over an `n` by `m` output in tiles of `tile_n` weight rows
/// (`full`, or a single row at the end) by `rows` rows of x: `tile_m`, then halves of it.
#[cfg(target_arch = "x86_64")]
fn for_each_tile(
    n: usize,
    m: usize,
    tile_n: usize,
    tile_m: usize,
    mut tile: impl FnMut(usize, usize, bool, usize),
) {
    let mut i = 0;
    while i < n {
        let full = n - i >= tile_n;
        let mut r = 0;
        while r < m {
            let mut rows = tile_m;
            while rows > m - r {
                rows /= 2;
            }
            tile(i, r, full, rows);
            r += rows;
        }
        i += if full { tile_n } else { 1 };
    }
}

/// `out[a * stride + b] = w[a] . x[b]` for `W` weight rows and `R` rows of x, each of length `k`.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<const W: usize, const R: usize>(
    w: &[f32],
    x: &[f32],
    k: usize,
    out: &mut [f32],
    stride: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(w.len() >= W * k && x.len() >= R * k && out.len() > (W - 1) * stride + R - 1);
    let chunks = k / 16;
    let mut acc = [[_mm512_setzero_ps(); R]; W];
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    for c in 0..chunks {
        // SAFETY: c * 16 + 16 <= k; weight row a spans a * k .. a * k + k of `w`, row b of x likewise.
        unsafe {
            let mut weights = [_mm512_setzero_ps(); W];
            for (a, weight) in weights.iter_mut().enumerate() {
                *weight = _mm512_loadu_ps(wp.add(a * k + c * 16));
            }
            for b in 0..R {
                let xv = _mm512_loadu_ps(xp.add(b * k + c * 16));
                for (row, weight) in acc.iter_mut().zip(&weights) {
                    row[b] = _mm512_fmadd_ps(*weight, xv, row[b]);
                }
            }
        }
    }
    for (a, row) in acc.iter().enumerate() {
        for (b, lane_sums) in row.iter().enumerate() {
            let mut sum = _mm512_reduce_add_ps(*lane_sums);
            for i in chunks * 16..k {
                sum += w[a * k + i] * x[b * k + i];
            }
            out[a * stride + b] = sum;
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn dot_many_rows(_level: Level, _weights: &[f32], _x: &[f32], _m: usize, _out: &mut [f32]) -> bool {
    false
}

/// `out[a * stride + b] = w[a] . x[b]` for `W` weight rows and `R` rows of x, each of length `k`.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const W: usize, const R: usize>(
    w: &[f32],
    x: &[f32],
    k: usize,
    out: &mut [f32],
    stride: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(w.len() >= W * k && x.len() >= R * k && out.len() > (W - 1) * stride + R - 1);
    let chunks = k / 8;
    let mut acc = [[_mm256_setzero_ps(); R]; W];
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    for c in 0..chunks {
        // SAFETY: c * 8 + 8 <= k; weight row a spans a * k .. a * k + k of `w`, row b of x likewise.
        unsafe {
            let mut weights = [_mm256_setzero_ps(); W];
            for (a, weight) in weights.iter_mut().enumerate() {
                *weight = _mm256_loadu_ps(wp.add(a * k + c * 8));
            }
            for b in 0..R {
                let xv = _mm256_loadu_ps(xp.add(b * k + c * 8));
                for (row, weight) in acc.iter_mut().zip(&weights) {
                    row[b] = _mm256_fmadd_ps(*weight, xv, row[b]);
                }
            }
        }
    }
    for (a, row) in acc.iter().enumerate() {
        for (b, lane_sums) in row.iter().enumerate() {
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` has room for eight f32.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *lane_sums) };
            let mut sum: f32 = lanes.iter().sum();
            for i in chunks * 8..k {
                sum += w[a * k + i] * x[b * k + i];
            }
            out[a * stride + b] = sum;
        }
    }
}

/// `x (m, k) @ w^T` with each `w (n, k)` of `weights`, for a few rows of `x`: the shape of every
/// linear layer while decoding, where the cost is streaming the weights from memory once per step.
/// The projections that read the same input (q, k, v; a gated FFN's two) share a single parallel
/// pass, which wakes the threads once instead of once each. Weights stored in bf16 are read as
/// such (half the memory traffic), with `x` rounded to bf16 as the multiply's bf16 products are.
pub fn few_rows_matmuls(
    x: &Tensor,
    weights: &[&Tensor],
) -> candle_core::Result<Option<Vec<Tensor>>> {
    few_rows_matmuls_at(level(), x, weights)
}

/// Weight values widened to f32 at once for the f32 kernels: a block that stays in the L2 cache.
const WIDENED_BLOCK: usize = 16 * 1024;

pub(super) fn few_rows_matmuls_at(
    level: Level,
    x: &Tensor,
    weights: &[&Tensor],
) -> candle_core::Result<Option<Vec<Tensor>>> {
    let (m, k) = x.dims2()?;
    let dtype = weights.first().map_or(DType::F32, |w| w.dtype());
    let fits = weights.iter().all(|w| {
        w.dims2().is_ok_and(|(_, wk)| wk == k)
            && w.is_contiguous()
            && w.dtype() == dtype
            && w.device().is_cpu()
    });
    let known = dtype == DType::F32 || dtype == DType::BF16;
    if m > 16 || !fits || !known || !applies(level, &[x]) {
        return Ok(None);
    }
    let bf16_weights = dtype == DType::BF16;
    if bf16_weights && m > 1 && !(cfg!(target_arch = "x86_64") && level >= Level::Avx2) {
        // No many-row kernel: the multiply's bf16 path.
        return Ok(None);
    }
    let x = if bf16_weights {
        super::gemm::round_to_bf16(x)?
    } else {
        x.contiguous()?
    };
    let sizes: Vec<usize> = weights.iter().map(|w| w.dims()[0]).collect();
    let total: usize = sizes.iter().sum();
    let mut outs: Vec<Vec<f32>> = sizes.iter().map(|&n| vec![0f32; n * m]).collect();
    // A task never spans two weights; with several, twice as many tasks as threads keeps the
    // threads evenly loaded.
    let tasks_per_thread = weights.len().min(2);
    let rows_per_task = total
        .div_ceil(rayon::current_num_threads() * tasks_per_thread)
        .next_multiple_of(16)
        .max(16);
    let done = with_slices::<f32, _>(&[&x], |xs| {
        let xv = xs[0];
        let product = |weights: &[f32], out: &mut [f32]| {
            if m == 1 {
                dot_rows(level, weights, xv, out);
                true
            } else {
                dot_many_rows(level, weights, xv, m, out)
            }
        };
        let on_tiles = bf16_weights && sizes.iter().all(|n| n.is_multiple_of(16));
        if let Some(packed) = on_tiles
            .then(|| super::gemm::few_rows_for_tiles(level, xv, m, k))
            .flatten()
        {
            with_slices::<bf16, _>(weights, |slices| {
                tasks(&mut outs, slices, rows_per_task, k, m)
                    .into_par_iter()
                    // SAFETY: `packed` exists only at the level `amx`, for this `m` and `k`.
                    .for_each(|(out, weights)| unsafe {
                        super::gemm::few_rows_on_tiles(weights, &packed, k, m, out)
                    });
                true
            })
        } else if bf16_weights {
            let block_rows = (WIDENED_BLOCK / k).max(4).next_multiple_of(4);
            with_slices::<bf16, _>(weights, |slices| {
                tasks(&mut outs, slices, rows_per_task, k, m)
                    .into_par_iter()
                    .map_init(Vec::new, |widened, (out, weights)| {
                        weights
                            .chunks(block_rows * k)
                            .zip(out.chunks_mut(block_rows * m))
                            .all(|(block, out)| {
                                widened.resize(block.len(), 0.0);
                                widen_bf16(level, block, widened);
                                product(widened, out)
                            })
                    })
                    .all(|done| done)
            })
        } else {
            with_slices::<f32, _>(weights, |slices| {
                tasks(&mut outs, slices, rows_per_task, k, m)
                    .into_par_iter()
                    .map(|(out, weights)| product(weights, out))
                    .all(|done| done)
            })
        }
    })?
    .transpose()?
    .flatten();
    match done {
        None => return Ok(None),
        // Without the many-row kernel: with the weight as the left operand gemm streams it once
        // for all rows.
        Some(false) => {
            return weights
                .iter()
                .map(|w| w.matmul(&x.t()?)?.t()?.contiguous())
                .collect::<candle_core::Result<Vec<_>>>()
                .map(Some);
        }
        Some(true) => {}
    }
    outs.into_iter()
        .zip(sizes)
        .map(|(out, n)| {
            if m == 1 {
                Tensor::from_vec(out, (1, n), x.device())
            } else {
                Tensor::from_vec(out, (n, m), x.device())?.t()?.contiguous()
            }
        })
        .collect::<candle_core::Result<Vec<_>>>()
        .map(Some)
}

/// The parallel tasks of a few-row product: each a run of `rows_per_task` rows of one weight,
/// with the outputs they write.
fn tasks<'a, T>(
    outs: &'a mut [Vec<f32>],
    weights: &[&'a [T]],
    rows_per_task: usize,
    k: usize,
    m: usize,
) -> Vec<(&'a mut [f32], &'a [T])> {
    outs.iter_mut()
        .zip(weights)
        .flat_map(|(out, weights)| {
            out.chunks_mut(rows_per_task * m)
                .zip(weights.chunks(rows_per_task * k))
        })
        .collect()
}

fast_path!(widen_bf16, fn(values: &[bf16], out: &mut [f32]) -> () {
    for (out, value) in out.iter_mut().zip(values) {
        *out = f32::from_bits((value.to_bits() as u32) << 16);
    }
});

fast_path!(attend_heads, fn(dot_level: Level, q: &[f32], k: &[f32], v: &[f32], bias: &[f32], scores: &mut Vec<f32>, out: &mut [f32]) -> () {
    let d = q.len();
    scores.resize(bias.len(), 0.0);
    dot_rows(dot_level, k, q, scores);
    let mut max = f32::NEG_INFINITY;
    for (score, bias) in scores.iter_mut().zip(bias) {
        *score += bias;
        max = max.max(*score);
    }
    for score in scores.iter_mut() {
        *score = exp(*score - max);
    }
    let scale = 1.0 / scores.iter().sum::<f32>();
    out.fill(0.0);
    for (&weight, value) in scores.iter().zip(v.chunks_exact(d)) {
        let weight = weight * scale;
        for (c, value) in out.iter_mut().zip(value) {
            *c += weight * value;
        }
    }
});

/// `softmax(q k^T + bias) v` for `q (b, h, 1, d)`, `k`/`v (b, h, t, d)` and a bias broadcastable
/// to `(b, h, 1, t)`, one (row, head) per task.
pub fn single_query_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    single_query_attention_at(level(), q, k, v, bias)
}

fn single_query_attention_at(
    level: Level,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    let (b, h, one, d) = q.dims4()?;
    if one != 1 || !applies(level, &[q, k, v, bias]) {
        return Ok(None);
    }
    let t = k.dim(2)?;
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let bias = bias.broadcast_as((b, h, 1, t))?.contiguous()?;
    let mut out = vec![0f32; b * h * d];
    let done = with_slices::<f32, _>(&[&q, &k, &v, &bias], |slices| {
        let (qv, kv, vv, bv) = (slices[0], slices[1], slices[2], slices[3]);
        out.par_chunks_mut(d)
            .enumerate()
            .for_each_init(Vec::new, |scores, (head, out)| {
                let keys = &kv[head * t * d..(head + 1) * t * d];
                let values = &vv[head * t * d..(head + 1) * t * d];
                let (query, bias) = (&qv[head * d..(head + 1) * d], &bv[head * t..(head + 1) * t]);
                attend_heads(level, level, query, keys, values, bias, scores, out);
            })
    })?;
    if done.is_none() {
        return Ok(None);
    }
    Ok(Some(Tensor::from_vec(out, (b, h, 1, d), q.device())?))
}

/// `e^x` for `x` in about [-87, 88], within 2 ulp, in operations the compiler vectorizes.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by the 1.5 * 2^23 trick, which vectorizes where `round` does not.
    let n = (x * LOG2E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1;
    let p = p * r * r + r + 1.0;
    p * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

#[inline(always)]
fn gelu_tanh_one(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    // tanh(u) = 1 - 2 / (e^{2u} + 1); |u| > 10 is exactly +-1 in f32.
    let tanh = 1.0 - 2.0 / (exp(2.0 * u.clamp(-10.0, 10.0)) + 1.0);
    0.5 * x * (1.0 + tanh)
}

fast_path!(gelu_tanh_slice, fn(input: &[f32], gate: Option<&[f32]>, out: &mut [f32]) -> () {
    match gate {
        Some(gate) => {
            for ((o, &x), &g) in out.iter_mut().zip(input).zip(gate) {
                *o = gelu_tanh_one(x) * g;
            }
        }
        None => {
            for (o, &x) in out.iter_mut().zip(input) {
                *o = gelu_tanh_one(x);
            }
        }
    }
});

/// `gelu_tanh(x)` and its derivative.
#[inline(always)]
fn gelu_tanh_and_derivative(x: f32) -> (f32, f32) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    let tanh = 1.0 - 2.0 / (exp(2.0 * u.clamp(-10.0, 10.0)) + 1.0);
    let derivative = 0.5 * (1.0 + tanh)
        + 0.5 * x * (1.0 - tanh * tanh) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x);
    (0.5 * x * (1.0 + tanh), derivative)
}

fast_path!(gelu_tanh_backward_slice, fn(input: &[f32], gate: Option<&[f32]>, grad: &[f32], grad_input: &mut [f32], grad_gate: &mut [f32]) -> () {
    match gate {
        Some(gate) => {
            for ((((&x, &g), &gate), gi), gg) in input.iter().zip(grad).zip(gate).zip(grad_input.iter_mut()).zip(grad_gate.iter_mut()) {
                let (value, derivative) = gelu_tanh_and_derivative(x);
                *gi = g * gate * derivative;
                *gg = g * value;
            }
        }
        None => {
            for ((&x, &g), gi) in input.iter().zip(grad).zip(grad_input.iter_mut()) {
                *gi = g * gelu_tanh_and_derivative(x).1;
            }
        }
    }
});

/// The gradients of `gelu_tanh(x) * gate` (or of `gelu_tanh(x)`) with respect to `x` and to the
/// gate, given the gradient of the output.
pub fn gelu_tanh_backward(
    x: &Tensor,
    gate: Option<&Tensor>,
    grad: &Tensor,
) -> candle_core::Result<Option<(Tensor, Option<Tensor>)>> {
    gelu_tanh_backward_at(level(), x, gate, grad)
}

fn gelu_tanh_backward_at(
    level: Level,
    x: &Tensor,
    gate: Option<&Tensor>,
    grad: &Tensor,
) -> candle_core::Result<Option<(Tensor, Option<Tensor>)>> {
    let mut inputs = vec![x, grad];
    inputs.extend(gate);
    if !applies(level, &inputs) || inputs.iter().any(|t| t.shape() != x.shape()) {
        return Ok(None);
    }
    let contiguous = inputs
        .iter()
        .map(|t| t.contiguous())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let refs: Vec<&Tensor> = contiguous.iter().collect();
    let n = x.elem_count();
    let mut grad_input = vec![0f32; n];
    let mut grad_gate = vec![0f32; if gate.is_some() { n } else { 0 }];
    const CHUNK: usize = 16 * 1024;
    let done = with_slices::<f32, _>(&refs, |slices| {
        let (input, grad) = (slices[0], slices[1]);
        let range = |i: usize, len: usize| i * CHUNK..i * CHUNK + len;
        match slices.get(2) {
            Some(gate) => grad_input
                .par_chunks_mut(CHUNK)
                .zip(grad_gate.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(i, (gi, gg))| {
                    let r = range(i, gi.len());
                    let gate = Some(&gate[r.clone()]);
                    gelu_tanh_backward_slice(level, &input[r.clone()], gate, &grad[r], gi, gg)
                }),
            None => grad_input
                .par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(|(i, gi)| {
                    let r = range(i, gi.len());
                    gelu_tanh_backward_slice(level, &input[r.clone()], None, &grad[r], gi, &mut [])
                }),
        }
    })?;
    if done.is_none() {
        return Ok(None);
    }
    let grad_input = Tensor::from_vec(grad_input, x.shape(), x.device())?;
    let grad_gate = match gate {
        Some(_) => Some(Tensor::from_vec(grad_gate, x.shape(), x.device())?),
        None => None,
    };
    Ok(Some((grad_input, grad_gate)))
}

/// `gelu_tanh(x)`, times `gate` elementwise when given (T5's gated feed-forward).
pub fn gelu_tanh(x: &Tensor, gate: Option<&Tensor>) -> candle_core::Result<Option<Tensor>> {
    gelu_tanh_at(level(), x, gate)
}

fn gelu_tanh_at(
    level: Level,
    x: &Tensor,
    gate: Option<&Tensor>,
) -> candle_core::Result<Option<Tensor>> {
    let mut inputs = vec![x];
    inputs.extend(gate);
    if !applies(level, &inputs) || gate.is_some_and(|g| g.shape() != x.shape()) {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let gate = gate.map(Tensor::contiguous).transpose()?;
    let mut out = vec![0f32; x.elem_count()];
    const CHUNK: usize = 16 * 1024;
    let mut tensors = vec![&x];
    tensors.extend(gate.as_ref());
    let done = with_slices::<f32, _>(&tensors, |slices| {
        let gate = slices.get(1);
        slices[0]
            .par_chunks(CHUNK)
            .zip(out.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(i, (x, out))| {
                let gate = gate.map(|g| &g[i * CHUNK..i * CHUNK + x.len()]);
                gelu_tanh_slice(level, x, gate, out)
            });
    })?;
    if done.is_none() {
        return Ok(None);
    }
    Ok(Some(Tensor::from_vec(out, x.shape(), x.device())?))
}

fast_path!(dropout_slice, fn(input: &[f32], kept: &[u8], scale: f32, out: &mut [f32]) -> () {
    for ((o, &x), &k) in out.iter_mut().zip(input).zip(kept) {
        *o = if k != 0 { x * scale } else { 0.0 };
    }
});

/// `xs` with the elements `kept` marks (1) scaled by `scale` and the others 0, in one pass: a
/// dropout mask of bytes applied. `None` where the kernels do not apply.
pub fn dropout(xs: &Tensor, kept: &Tensor, scale: f32) -> candle_core::Result<Option<Tensor>> {
    dropout_at(level(), xs, kept, scale)
}

fn dropout_at(
    level: Level,
    xs: &Tensor,
    kept: &Tensor,
    scale: f32,
) -> candle_core::Result<Option<Tensor>> {
    if !applies(level, &[xs])
        || !matches!(kept.device(), Device::Cpu)
        || kept.dtype() != DType::U8
        || kept.shape() != xs.shape()
    {
        return Ok(None);
    }
    let xs = xs.contiguous()?;
    let kept = kept.contiguous()?;
    let mut out = vec![0f32; xs.elem_count()];
    const CHUNK: usize = 16 * 1024;
    let done = with_slices::<f32, _>(&[&xs], |input| {
        with_slices::<u8, _>(&[&kept], |kept| {
            input[0]
                .par_chunks(CHUNK)
                .zip(kept[0].par_chunks(CHUNK))
                .zip(out.par_chunks_mut(CHUNK))
                .for_each(|((input, kept), out)| dropout_slice(level, input, kept, scale, out));
        })
    })?;
    match done {
        Some(Ok(Some(()))) => Ok(Some(Tensor::from_vec(out, xs.shape(), xs.device())?)),
        Some(Err(error)) => Err(error),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::max_abs_difference;

    #[test]
    fn exp_is_accurate_across_the_range() {
        for i in -8700..8800 {
            let x = i as f32 / 100.0;
            let (ours, std) = (exp(x), x.exp());
            assert!(
                ((ours - std) / std).abs() < 3e-7,
                "exp({x}) = {ours}, expected {std}"
            );
        }
    }

    #[test]
    fn every_level_this_cpu_runs_is_known_and_the_best_is_the_default() {
        let available = Level::available();
        assert_eq!(available[..2], [Level::Generic, Level::Portable]);
        assert_eq!(Level::from_setting(None), Ok(*available.last().unwrap()));
        for level in &available {
            assert_eq!(Level::from_setting(Some(level.name())), Ok(*level));
        }
        let unknown = Level::from_setting(Some("sse9")).unwrap_err();
        assert!(
            unknown.starts_with("DIALORA_CPU=sse9 is not a kernel level"),
            "{unknown}"
        );
        for missing in Level::ALL.iter().filter(|l| !l.runs_here()) {
            let refused = Level::from_setting(Some(missing.name())).unwrap_err();
            assert!(refused.contains("lacks"), "{refused}");
        }
    }

    #[test]
    fn few_rows_matmul_matches_candle_for_every_row_count_and_odd_widths() {
        let device = Device::Cpu;
        for level in Level::available() {
            for (n, k) in [(37, 45), (64, 48), (9, 3)] {
                let w = Tensor::randn(0f32, 1.0, (n, k), &device).unwrap();
                for m in 1..=17 {
                    let x = Tensor::randn(0f32, 1.0, (m, k), &device).unwrap();
                    let theirs = x.matmul(&w.t().unwrap()).unwrap();
                    match few_rows_matmuls_at(level, &x, &[&w])
                        .unwrap()
                        .map(|mut o| o.remove(0))
                    {
                        Some(ours) => {
                            let diff = max_abs_difference(&ours, &theirs);
                            assert!(diff < 1e-4, "{level:?} m={m} n={n} k={k}");
                            assert!(level > Level::Generic, "a kernel ran at {level:?}");
                        }
                        None => assert!(
                            m > 16 || level == Level::Generic,
                            "the kernel declined m={m} at {level:?}"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn few_rows_of_bf16_weights_match_the_rounded_product_at_every_level() {
        let device = Device::Cpu;
        for level in Level::available() {
            let many_rows = cfg!(target_arch = "x86_64") && level >= Level::Avx2;
            // Wider than a widened block, so that a task spans several blocks; the last two
            // fit AMX tiles (rows by 16, values by 32), in pairs of 16 rows and alone.
            for (n, k) in [(37, 45), (64, 48), (300, 1030), (64, 64), (96, 1024)] {
                let w = Tensor::randn(0f32, 1.0, (n, k), &device).unwrap();
                let w16 = w.to_dtype(DType::BF16).unwrap();
                for m in [1, 2, 3, 8, 16, 17] {
                    let x = Tensor::randn(0f32, 1.0, (m, k), &device).unwrap();
                    let rounded = super::super::gemm::round_to_bf16(&x).unwrap();
                    let widened = w16.to_dtype(DType::F32).unwrap();
                    let theirs = rounded.matmul(&widened.t().unwrap()).unwrap();
                    let ours = few_rows_matmuls_at(level, &x, &[&w16, &w16]).unwrap();
                    let runs = level > Level::Generic && m <= 16 && (m == 1 || many_rows);
                    assert_eq!(ours.is_some(), runs, "{level:?} m={m}");
                    for ours in ours.into_iter().flatten() {
                        let diff = max_abs_difference(&ours, &theirs);
                        assert!(diff < 1e-3, "{level:?} m={m} n={n} k={k}: {diff}");
                    }
                }
            }
        }
    }

    #[test]
    fn products_with_several_weights_in_one_pass_equal_each_alone() {
        let device = Device::Cpu;
        let k = 45;
        let weights: Vec<Tensor> = [37, 400, 9]
            .map(|n| Tensor::randn(0f32, 1.0, (n, k), &device).unwrap())
            .to_vec();
        let refs: Vec<&Tensor> = weights.iter().collect();
        for (level, m) in Level::available()[1..]
            .iter()
            .flat_map(|&l| [(l, 1), (l, 3), (l, 8)])
        {
            let x = Tensor::randn(0f32, 1.0, (m, k), &device).unwrap();
            let together = few_rows_matmuls_at(level, &x, &refs).unwrap().unwrap();
            assert_eq!(together.len(), 3);
            for (w, ours) in weights.iter().zip(&together) {
                let alone = few_rows_matmuls_at(level, &x, &[w])
                    .unwrap()
                    .unwrap()
                    .remove(0);
                assert_eq!(max_abs_difference(ours, &alone), 0.0, "{level:?} m={m}");
            }
        }
        let other_width = Tensor::zeros((5, k + 1), DType::F32, &device).unwrap();
        let x = Tensor::zeros((1, k), DType::F32, &device).unwrap();
        assert!(
            few_rows_matmuls(&x, &[&weights[0], &other_width])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn gelu_and_attention_match_candle_at_every_level() {
        assert!(
            gelu_tanh_at(
                Level::Generic,
                &Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
                None
            )
            .unwrap()
            .is_none()
        );
        for level in &Level::available()[1..] {
            gelu_and_attention_match_candle(*level);
        }
    }

    /// A dropout mask of bytes gives, at every level, what candle's operations give with the
    /// mask widened to f32: the same values, bit for bit.
    #[test]
    fn dropout_matches_candle_at_every_level() {
        let device = Device::Cpu;
        // Transposed, so that the kernel sees a layout it must copy first.
        let xs = Tensor::randn(0f32, 3.0, (300, 7), &device)
            .unwrap()
            .t()
            .unwrap();
        let kept: Vec<u8> = (0..2100u32).map(|i| u8::from(i * 7919 % 10 != 0)).collect();
        let kept = Tensor::from_vec(kept, (7, 300), &device).unwrap();
        let scale = 1.0 / 0.9f32;
        let widened =
            (xs.mul(&kept.to_dtype(DType::F32).unwrap()).unwrap() * scale as f64).unwrap();
        assert!(
            dropout_at(Level::Generic, &xs, &kept, scale)
                .unwrap()
                .is_none()
        );
        for level in &Level::available()[1..] {
            let ours = dropout_at(*level, &xs, &kept, scale).unwrap().unwrap();
            assert_eq!(max_abs_difference(&ours, &widened), 0.0, "{level:?}");
        }
    }

    fn gelu_and_attention_match_candle(level: Level) {
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 3.0, (7, 300), &device).unwrap();
        let gate = Tensor::randn(0f32, 1.0, (7, 300), &device).unwrap();
        let ours = gelu_tanh_at(level, &x, Some(&gate)).unwrap().unwrap();
        let theirs = (x.gelu().unwrap() * &gate).unwrap();
        let diff = max_abs_difference(&ours, &theirs);
        assert!(diff < 1e-5, "{level:?}: gelu differs by {diff}");
        let grad = Tensor::randn(0f32, 1.0, (7, 300), &device).unwrap();
        let (grad_x, grad_gate) = gelu_tanh_backward_at(level, &x, Some(&gate), &grad)
            .unwrap()
            .unwrap();
        let (h, e) = (1e-2f64, (&x + 1e-2f64).unwrap());
        let slope = ((e.gelu().unwrap() - x.gelu().unwrap()).unwrap() / h).unwrap();
        let want_x = ((slope * &gate).unwrap() * &grad).unwrap();
        let diff = max_abs_difference(&grad_x, &want_x);
        assert!(diff < 0.1, "{level:?}: gelu's derivative differs by {diff}");
        let want_gate = (x.gelu().unwrap() * &grad).unwrap();
        let diff = max_abs_difference(&grad_gate.unwrap(), &want_gate);
        assert!(
            diff < 1e-5,
            "{level:?}: the gate's gradient differs by {diff}"
        );

        let q = Tensor::randn(0f32, 1.0, (2, 3, 1, 20), &device).unwrap();
        let k = Tensor::randn(0f32, 1.0, (2, 3, 9, 20), &device).unwrap();
        let v = Tensor::randn(0f32, 1.0, (2, 3, 9, 20), &device).unwrap();
        let bias = Tensor::randn(0f32, 1.0, (1, 3, 1, 9), &device).unwrap();
        let ours = single_query_attention_at(level, &q, &k, &v, &bias)
            .unwrap()
            .unwrap();
        let scores = q
            .matmul(&k.t().unwrap())
            .unwrap()
            .broadcast_add(&bias)
            .unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&scores)
            .unwrap()
            .matmul(&v)
            .unwrap();
        let diff = max_abs_difference(&ours, &theirs);
        assert!(diff < 1e-5, "{level:?}: attention differs by {diff}");
    }
}
