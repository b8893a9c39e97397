//! The process's memory, for logs at stage boundaries of long jobs (`ACCESSATLAS_LOG=debug`): what
//! `cargo xtask bench scale` measures from outside as one peak, broken down by stage.

/// Resident set now and its peak so far, in MB (`VmRSS`, `VmHWM` of `/proc/self/status`);
/// `None` where there is no procfs.
pub fn rss_mb() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Logs the resident set and its peak after `stage` (debug level).
pub fn log_stage(stage: &str) {
    if let Some((now, peak)) = rss_mb() {
        tracing::debug!("memory after {stage}: {now:.0} MB resident, {peak:.0} MB peak");
    }
}

/// Hands memory the allocator holds but no longer uses back to the system, after a stage that
/// freed a lot (a map, an area's geometry): glibc keeps freed blocks resident, and blocks
/// freed in one thread's arena are not reused by another, so without this the next stage's
/// peak stacks on the last one's. Nothing happens on other platforms.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim only returns free pages to the kernel; it takes no
        // pointers and is safe to call from any thread at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}
