//! Resident memory of this process, now (`VmRSS`) and at its peak per benchmark case: Linux keeps
//! the high-water mark in `/proc/self/status` (`VmHWM`) and resets it when "5" is written to
//! `/proc/self/clear_refs`. Elsewhere these calls report nothing.

/// Resets the peak to the current resident size; false where the kernel does not support it.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak resident size since the last reset (or the start), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// The resident size now, in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
