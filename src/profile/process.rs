//! The measuring process's own resource use: resident memory and CPU time (Linux).
//!
//! - RSS now and its high-water mark come from `/proc/self/status` (`VmRSS`, `VmHWM`).
//! - The high-water mark can be reset to the current RSS by writing `5` to
//!   `/proc/self/clear_refs` (Linux ≥ 4.0, see proc(5)). The worker resets it after session
//!   creation, so `peak_rss_bytes` is the peak *during inference* and the session-creation
//!   peak (graph optimization can briefly need more) is reported on its own.
//! - CPU time is user + system time from `getrusage(RUSAGE_SELF)`, which covers every
//!   thread of the process, ONNX Runtime's pool included.

use std::time::Duration;

/// Resident set size now and its peak, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rss {
    pub current_bytes: u64,
    pub peak_bytes: u64,
}

/// Parse `VmRSS` and `VmHWM` from the text of `/proc/<pid>/status` (values in kB).
pub fn parse_status(text: &str) -> Option<Rss> {
    let field = |key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        let kb: u64 = line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some(Rss {
        current_bytes: field("VmRSS:")?,
        peak_bytes: field("VmHWM:")?,
    })
}

/// This process's RSS now and its peak; `None` where `/proc` is unavailable.
pub fn rss() -> Option<Rss> {
    parse_status(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Reset the peak RSS to the current RSS; false where the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// Put glibc's `malloc` in the state of a process that has already freed a large buffer,
/// before the model is loaded: its mmap threshold at the ceiling (32 MiB on 64-bit), so
/// blocks below it come from the heap, where a freed copy stays resident.
///
/// Why: glibc starts with a 128 KiB threshold and raises it to the size of each mapped
/// block a process frees (mallopt(3), `M_MMAP_THRESHOLD`). Whether ONNX Runtime's freed
/// copies of a model's weights stayed resident then depended on what the measuring
/// process had allocated and freed before: measured on this project's x86-64 host, the
/// same Gemm model with 32 MiB of weights was resident at 64.8 MiB in one build of the
/// worker and at 80.2 MiB in the next, with no change to the worker's code
/// (BENCHMARKS.md, "Sizing memory: conv weights rewritten at session creation"). Any
/// real process that has read a file or freed a buffer of a few MiB is in this state; the
/// cost model's weight lines assume it ([`crate::hardware::cost::MMAP_THRESHOLD_MAX_BYTES`]).
/// The block is never touched, so it costs no resident memory.
pub fn settle_allocator() {
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        // Below the ceiling (the threshold only follows blocks up to it), above 128 KiB.
        let block: Vec<u8> = Vec::with_capacity(31 << 20);
        drop(std::hint::black_box(block));
    }
}

/// User + system CPU time of this process (all threads).
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we own; RUSAGE_SELF is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_fields_in_kib() {
        let text =
            "Name:\tedgepack\nVmPeak:\t  99999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Rss {
                current_bytes: 1024 * 1024,
                peak_bytes: 2048 * 1024
            })
        );
        assert_eq!(parse_status("Name: x\n"), None);
    }

    #[test]
    fn peak_tracks_allocation_and_resets() {
        let before = rss().unwrap();
        assert!(before.current_bytes > 0 && before.peak_bytes >= before.current_bytes);
        // Touch 64 MiB so it becomes resident, then free it.
        let v = vec![1u8; 64 << 20];
        std::hint::black_box(&v);
        let during = rss().unwrap();
        drop(v);
        assert!(during.peak_bytes >= before.current_bytes + (60 << 20));
        if reset_peak_rss() {
            let after = rss().unwrap();
            assert!(after.peak_bytes < during.peak_bytes);
        }
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let a = cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_time() > a);
    }
}
