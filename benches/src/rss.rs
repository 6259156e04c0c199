//! Resident memory of the current process, from `/proc/self/status` (Linux only; `None`
//! elsewhere).

use std::fs;

/// Read one `kB` field (e.g. `VmHWM`, `VmRSS`) of `/proc/self/status`.
pub fn status_kb(field: &str) -> Option<u64> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Peak resident set size of the process so far (`VmHWM`), in KiB.
pub fn peak_kb() -> Option<u64> {
    status_kb("VmHWM")
}

/// Current resident set size (`VmRSS`), in KiB.
pub fn current_kb() -> Option<u64> {
    status_kb("VmRSS")
}

/// Reset the peak (`VmHWM`) to the current RSS by writing `5` to `/proc/self/clear_refs`
/// (Linux 4.0+). Returns whether it worked.
pub fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}
