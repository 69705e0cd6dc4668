//! What the benchmarks share: their arguments and the median of repeated timings.

/// The positional arguments after `cargo bench ... --` (cargo's own `--bench` flag left out).
pub fn arguments() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect()
}

/// The median of `values` (the upper one of an even count).
#[allow(dead_code)] // not every benchmark repeats its timings
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Whether `reference` (a backend of the reference scripts: `torch-f32`, `torch-bf16`, `ct2-f32`,
/// `ct2-int8`) is left out by `BENCH_SKIP`, a comma-separated list of them. `bench/run --avx2`
/// leaves out PyTorch bf16, which without native bf16 instructions takes hours.
#[allow(dead_code)] // not every benchmark has references
pub fn skipped(reference: &str) -> bool {
    std::env::var("BENCH_SKIP")
        .unwrap_or_default()
        .split(',')
        .any(|s| s.trim() == reference)
}
