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
