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
