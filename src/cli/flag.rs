//! The one mapping from the library's [`Setting`]s to this CLI's flag names.
//!
//! The library names settings typed and never spells a flag (`edgepack::setting`);
//! [`install`] makes every message it writes in this process (errors, warnings stored in
//! reports, report hints) say the flag a user types instead of the concept name.

use edgepack::setting::Setting;

/// The flag that sets `setting`, as a user types it. The match has no wildcard arm: a new
/// setting does not build until it has its flag.
pub fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Shape => "--shape",
        Setting::Dim => "--dim",
        Setting::Batch => "--batch",
        Setting::Inputs => "--inputs",
        Setting::Input => "--input",
        Setting::InputRange => "--input-range",
        Setting::SampleInputs => "--sample-inputs",
        Setting::Mode => "--mode",
        Setting::Calibration => "--calibration",
        Setting::Eval => "--eval",
        Setting::AccuracyTarget => "--accuracy-target",
        Setting::Prepare => "--prepare",
        Setting::ExcludeNodes => "--exclude-nodes",
        Setting::ExcludeOps => "--exclude-ops",
        Setting::NoLatency => "--no-latency",
        Setting::Std => "--std",
        Setting::Resize => "--resize",
        Setting::Task => "--task",
        Setting::QuantizeReportOut => "--report",
        Setting::Plan => "--plan",
        Setting::PerOp => "--per-op",
        Setting::LatencyBudget => "--latency-budget",
        Setting::MemoryLimit => "--memory-limit",
        Setting::Threads => "--threads",
        Setting::Policy => "--policy",
        Setting::MaxP95 => "--max-p95",
        Setting::MaxPeakMemory => "--max-peak-memory",
        Setting::MaxSize => "--max-size",
        Setting::MinSqnr => "--min-sqnr",
        Setting::Baseline => "--baseline",
        Setting::Current => "--current",
        Setting::MaxRegression => "--max-regression",
        Setting::QuantizeReport => "--quantize",
        Setting::AllowModelRename => "--allow-model-rename",
        Setting::Remeasure => "--remeasure",
        Setting::Variant => "--variant",
        Setting::AccuracyFloor => "--accuracy-floor",
        Setting::HostCompute => "--host-compute",
        Setting::DeviceProfile => "--device-profile",
        Setting::WithDeviceBinary => "--with-device-binary",
        Setting::Targets => "--targets",
        Setting::Labels => "--labels",
        Setting::Lineage => "--lineage",
        Setting::OrtLib => "--ort-lib",
        Setting::Platform => "--platform",
        Setting::RuntimeVersion => "--version",
    }
}

/// Make the library spell settings as flags from now on (called first thing in `main`,
/// before any library work, worker children included).
pub fn install() {
    edgepack::setting::spell_with(flag);
}

