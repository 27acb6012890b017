//! The `host` target: the machine edgepack runs on, detected with sysinfo and, for ISA
//! features, [`crate::isa::host_features`] (sysinfo does not report them).
//!
//! The host's `relative_compute` is what host measurements are scaled *from*, so it matters
//! as much as the target's. It is resolved in this order: `EDGEPACK_HOST_COMPUTE` (or the
//! CLI flag that sets it), a hardware file in `hardware/` whose `cpu_model` names the host's
//! CPU, and last an estimate from the clock (documented in [`estimate_from_clock`]). The
//! basis is recorded with every prediction.

use std::path::Path;

use sysinfo::System;

use super::{Arch, Target};

/// Where the host's relative compute figure came from.
#[derive(Clone, Debug, PartialEq)]
pub struct HostCompute {
    pub relative_compute: f64,
    /// Human-readable basis, recorded in predictions.
    pub basis: String,
}

/// Detect the host as a target. Storage budget is unbounded (u64::MAX) and the model may use
/// 80% of the RAM; execution providers are `cpu` only (what every ONNX Runtime build has).
pub fn host() -> Target {
    let mut sys = System::new();
    sys.refresh_memory();
    sys.refresh_cpu_all();
    let cpu_model = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown CPU".to_string());
    let arch = if cfg!(target_arch = "aarch64") {
        Arch::Aarch64
    } else {
        Arch::X86_64
    };
    let cores = System::physical_core_count()
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let compute = host_relative_compute(None, &cpu_model, None);
    Target {
        name: "host".to_string(),
        description: Some("the machine edgepack runs on (detected)".to_string()),
        arch,
        cores,
        cpu_model,
        isa_features: crate::isa::host_features(),
        ram_bytes: sys.total_memory().max(1),
        model_ram_share: 0.8,
        storage_budget_bytes: u64::MAX,
        accelerator: None,
        execution_providers: vec!["cpu".to_string()],
        relative_compute: compute.relative_compute,
        source: vec![format!("detected at run time ({})", compute.basis)],
        device_profile: None,
    }
}

/// The host's relative compute: explicit value, then a hardware file naming this CPU, then
/// the clock-based estimate.
pub fn host_relative_compute(
    explicit: Option<f64>,
    cpu_model: &str,
    hardware_dir: Option<&Path>,
) -> HostCompute {
    if let Some(v) = explicit {
        return HostCompute {
            relative_compute: v,
            basis: format!("host relative_compute {v} given explicitly"),
        };
    }
    if let Some(v) = std::env::var("EDGEPACK_HOST_COMPUTE")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
    {
        return HostCompute {
            relative_compute: v,
            basis: format!("host relative_compute {v} from EDGEPACK_HOST_COMPUTE"),
        };
    }
    if let Some(dir) = hardware_dir {
        if let Ok(targets) = super::load_dir(dir) {
            let needle = cpu_model.to_ascii_lowercase();
            for (_, t) in targets {
                let m = t.cpu_model.to_ascii_lowercase();
                if !needle.is_empty() && (m.contains(&needle) || needle.contains(&m)) {
                    return HostCompute {
                        relative_compute: t.relative_compute,
                        basis: format!("host CPU matches hardware target '{}'", t.name),
                    };
                }
            }
        }
    }
    let mhz = stable_clock_mhz();
    let arch = if cfg!(target_arch = "aarch64") {
        Arch::Aarch64
    } else {
        Arch::X86_64
    };
    let v = estimate_from_clock(arch, mhz);
    HostCompute {
        relative_compute: v,
        basis: format!(
            "host relative_compute {v:.2} estimated from a {mhz} MHz {} clock (set EDGEPACK_HOST_COMPUTE to override)",
            arch.as_str()
        ),
    }
}

/// The CPU's clock in MHz, from the most stable source available: the cpufreq maximum
/// (fixed for the machine), else the kernel's reported clock rounded to 100 MHz (the current
/// clock wanders with power states, and the estimate must not change between two builds).
fn stable_clock_mhz() -> u64 {
    let max_khz = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(khz) = max_khz {
        return khz / 1000;
    }
    let mut sys = System::new();
    sys.refresh_cpu_all();
    let mhz = sys.cpus().iter().map(|c| c.frequency()).max().unwrap_or(0);
    (mhz + 50) / 100 * 100
}

/// Clock-based estimate of per-core speed relative to a Cortex-A72 @ 1.8 GHz.
///
/// `clock / 1.8 GHz * per-clock factor`, where the per-clock factor is 2.0 for recent x86-64
/// cores (the x86 files in `hardware/` imply 1.8-2.1 per clock: see their comments) and 1.0
/// for unknown Arm cores (A72-class, the conservative end). Unknown clock: 1.0.
pub fn estimate_from_clock(arch: Arch, mhz: u64) -> f64 {
    if mhz == 0 {
        return 1.0;
    }
    let per_clock = match arch {
        Arch::X86_64 => 2.0,
        Arch::Aarch64 => 1.0,
    };
    ((mhz as f64 / 1800.0) * per_clock * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_detected_with_positive_figures() {
        let h = host();
        assert!(h.cores >= 1);
        assert!(h.ram_bytes > 0);
        assert!(h.relative_compute > 0.0);
    }

    #[test]
    fn explicit_host_compute_wins() {
        let c = host_relative_compute(Some(3.5), "whatever", None);
        assert_eq!(c.relative_compute, 3.5);
        assert!(c.basis.contains("explicitly"));
    }

    #[test]
    fn clock_estimate_is_relative_to_a72_at_1800_mhz() {
        assert_eq!(estimate_from_clock(Arch::Aarch64, 1800), 1.0);
        assert_eq!(estimate_from_clock(Arch::X86_64, 3600), 4.0);
        assert_eq!(estimate_from_clock(Arch::X86_64, 0), 1.0);
    }
}
