//! Process-wide settings for programs that run the engine.

/// Keeps freed memory in the process for reuse. Every step of the model allocates and frees
/// tensors of megabytes; by default glibc returns such blocks to the system at once, and the kernel
/// then zeroes fresh pages for the next step, which cost a fifth of the encoder's time. Call once,
/// early in `main`. Memory use stays at its peak instead of shrinking between steps.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}

/// This machine's memory in bytes, from /proc/meminfo (0 when unknown: nothing is refused then).
pub fn machine_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// What is missing when `work` would need more memory than this machine has, in the words every
/// such refusal starts with: "`work` would need about … GB of memory and this machine has … GB".
/// `bytes` is computed in floating point, so an absurd setting cannot overflow it.
pub fn memory_shortfall(work: &str, bytes: f64) -> Option<String> {
    let limit = match std::env::var("DIALORA_MEMORY_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(limit) => limit,
        None => machine_memory(),
    };
    (limit != 0 && bytes > limit as f64).then(|| {
        format!(
            "{work} would need about {:.1} GB of memory and this machine has {:.1} GB",
            bytes / 1e9,
            limit as f64 / 1e9
        )
    })
}
