//! The user-settable things the library refers to in its errors, warnings and report
//! hints, typed: [`Setting`].
//!
//! The library never spells a command-line flag. Where a message gives advice ("pass an
//! input shape", "drop the batch size"), it names the [`Setting`], and the setting's
//! `Display` decides the words:
//!
//! - a library user sees the plain concept name (`input shape`, `calibration samples`);
//! - the `edgepack` binary installs its spelling once at startup ([`spell_with`], with the
//!   one mapping `fn flag(Setting) -> &'static str` in `src/cli/`), so the same message
//!   reads `--shape`, `--calibration` on its command line.
//!
//! Why a spelling installed once rather than a renderer applied when an error is printed:
//! library text leaves the library in more ways than one printed error. Errors cross
//! process boundaries as one line (the isolated workers' replies), get wrapped as context
//! of other errors, and warnings are stored in JSON reports and rendered into HTML. A
//! message built from a [`Setting`] speaks the language of the program that runs the
//! library at every one of those points, with no flag name below `cli/`.
//!
//! [`Subject`] is what a usage error ([`crate::Error::Usage`]) is about: a [`Setting`],
//! or, for the rare subject that is not a setting (a patch, an execution context), a name.
//!
//! ```
//! use edgepack::setting::Setting;
//! let e = edgepack::Error::usage(Setting::Calibration, "no calibration samples");
//! assert_eq!(e.to_string(), "calibration samples: no calibration samples");
//! ```

use std::fmt;
use std::sync::OnceLock;

/// A user-settable thing the library refers to by name. One variant per setting;
/// [`Setting::concept`] is its plain name.
///
/// Not `#[non_exhaustive]` on purpose: the binary's flag mapping matches every variant, so
/// a new setting cannot ship without its flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Setting {
    // Inputs (every command that runs a model).
    /// A whole input shape, `NAME=DIMS`.
    Shape,
    /// The size of a symbolic dim, `SYMBOL=N`.
    Dim,
    /// The batch size(s) to run.
    Batch,
    /// A folder or `.npz` of input samples.
    Inputs,
    /// One input's sample file, `NAME=FILE`.
    Input,
    /// The value range of a generated input, `NAME=LO..HI`.
    InputRange,
    /// Sample inputs a package carries for its self-test.
    SampleInputs,
    // Quantization.
    /// The quantization mode.
    Mode,
    /// Calibration samples.
    Calibration,
    /// Held-out evaluation samples.
    Eval,
    /// The accuracy the quantized model must keep.
    AccuracyTarget,
    /// The graph preparation before quantizing.
    Prepare,
    /// Nodes kept in float.
    ExcludeNodes,
    /// Op types kept in float.
    ExcludeOps,
    /// Skipping the latency measurement.
    NoLatency,
    /// The per-channel standard deviations of image preprocessing.
    Std,
    /// The resize of image preprocessing.
    Resize,
    /// The task metric of a model's outputs.
    Task,
    /// The quantize report a quantize run writes.
    QuantizeReportOut,
    // Profiling.
    /// The measurement plan.
    Plan,
    /// Per-op timing.
    PerOp,
    /// The latency budget.
    LatencyBudget,
    /// The memory limit of each configuration.
    MemoryLimit,
    /// Thread counts.
    Threads,
    // Gate.
    /// The gate policy file.
    Policy,
    /// The p95 latency budget.
    MaxP95,
    /// The peak memory budget.
    MaxPeakMemory,
    /// The model size budget.
    MaxSize,
    /// The SQNR floor.
    MinSqnr,
    /// The baseline profile.
    Baseline,
    /// The current profile.
    Current,
    /// The largest regression allowed against the baseline.
    MaxRegression,
    /// The quantize report a gate or report reads.
    QuantizeReport,
    /// Allowing a baseline of a differently named model.
    AllowModelRename,
    /// Measuring baseline and current models interleaved, in one process.
    Remeasure,
    // Packages and bundles.
    /// The variant of a package or bundle.
    Variant,
    /// The accuracy a bundle's variants must keep.
    AccuracyFloor,
    /// The compute figure of the host that measured the profiles.
    HostCompute,
    /// A device profile measured on the target.
    DeviceProfile,
    /// A device binary carried in the bundle.
    WithDeviceBinary,
    /// The folder of hardware target files.
    Targets,
    /// The labels file of a package.
    Labels,
    /// A package's lineage.
    Lineage,
    // ONNX Runtime.
    /// The ONNX Runtime shared library.
    OrtLib,
    /// The platform of an ONNX Runtime install.
    Platform,
    /// The ONNX Runtime release to install.
    RuntimeVersion,
}

impl Setting {
    /// Every setting, in declaration order.
    pub const ALL: [Setting; 46] = [
        Setting::Shape,
        Setting::Dim,
        Setting::Batch,
        Setting::Inputs,
        Setting::Input,
        Setting::InputRange,
        Setting::SampleInputs,
        Setting::Mode,
        Setting::Calibration,
        Setting::Eval,
        Setting::AccuracyTarget,
        Setting::Prepare,
        Setting::ExcludeNodes,
        Setting::ExcludeOps,
        Setting::NoLatency,
        Setting::Std,
        Setting::Resize,
        Setting::Task,
        Setting::QuantizeReportOut,
        Setting::Plan,
        Setting::PerOp,
        Setting::LatencyBudget,
        Setting::MemoryLimit,
        Setting::Threads,
        Setting::Policy,
        Setting::MaxP95,
        Setting::MaxPeakMemory,
        Setting::MaxSize,
        Setting::MinSqnr,
        Setting::Baseline,
        Setting::Current,
        Setting::MaxRegression,
        Setting::QuantizeReport,
        Setting::AllowModelRename,
        Setting::Remeasure,
        Setting::Variant,
        Setting::AccuracyFloor,
        Setting::HostCompute,
        Setting::DeviceProfile,
        Setting::WithDeviceBinary,
        Setting::Targets,
        Setting::Labels,
        Setting::Lineage,
        Setting::OrtLib,
        Setting::Platform,
        Setting::RuntimeVersion,
    ];

    /// The plain name of the setting, for a library user: words, never a flag. It reads
    /// in a sentence and before a value (`input shape x=1x3x224x224`).
    pub fn concept(self) -> &'static str {
        match self {
            Setting::Shape => "input shape",
            Setting::Dim => "symbolic dim",
            Setting::Batch => "batch size",
            Setting::Inputs => "input samples",
            Setting::Input => "input file",
            Setting::InputRange => "input range",
            Setting::SampleInputs => "sample inputs",
            Setting::Mode => "quantization mode",
            Setting::Calibration => "calibration samples",
            Setting::Eval => "evaluation samples",
            Setting::AccuracyTarget => "accuracy target",
            Setting::Prepare => "graph preparation",
            Setting::ExcludeNodes => "excluded nodes",
            Setting::ExcludeOps => "excluded op types",
            Setting::NoLatency => "skipping latency",
            Setting::Std => "preprocessing std",
            Setting::Resize => "preprocessing resize",
            Setting::Task => "task",
            Setting::QuantizeReportOut => "quantize report output",
            Setting::Plan => "measurement plan",
            Setting::PerOp => "per-op timing",
            Setting::LatencyBudget => "latency budget",
            Setting::MemoryLimit => "memory limit",
            Setting::Threads => "thread counts",
            Setting::Policy => "gate policy",
            Setting::MaxP95 => "p95 budget",
            Setting::MaxPeakMemory => "peak memory budget",
            Setting::MaxSize => "size budget",
            Setting::MinSqnr => "SQNR floor",
            Setting::Baseline => "baseline profile",
            Setting::Current => "current profile",
            Setting::MaxRegression => "regression limit",
            Setting::QuantizeReport => "quantize report",
            Setting::AllowModelRename => "allowing a model rename",
            Setting::Remeasure => "interleaved remeasurement",
            Setting::Variant => "variant",
            Setting::AccuracyFloor => "accuracy floor",
            Setting::HostCompute => "host compute",
            Setting::DeviceProfile => "device profile",
            Setting::WithDeviceBinary => "device binary",
            Setting::Targets => "hardware targets",
            Setting::Labels => "labels file",
            Setting::Lineage => "lineage",
            Setting::OrtLib => "ONNX Runtime library path",
            Setting::Platform => "platform",
            Setting::RuntimeVersion => "runtime version",
        }
    }
}

/// The spelling the program running the library installed ([`spell_with`]).
static SPELLING: OnceLock<fn(Setting) -> &'static str> = OnceLock::new();

/// Install how settings are spelled in every message the library writes from now on (the
/// `edgepack` binary installs its flag names before it does anything else). The first
/// spelling wins: returns `false`, changing nothing, when one was already installed.
pub fn spell_with(spelling: fn(Setting) -> &'static str) -> bool {
    SPELLING.set(spelling).is_ok()
}

impl fmt::Display for Setting {
    /// The installed spelling ([`spell_with`]), or else the [`Setting::concept`] name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match SPELLING.get() {
            Some(spell) => f.write_str(spell(*self)),
            None => f.write_str(self.concept()),
        }
    }
}

/// What a usage error is about: a setting, or a named thing that is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A user-settable thing.
    Setting(Setting),
    /// Something else by name (`patch`, `execution context`, a file field).
    Named(String),
}

impl Subject {
    /// The setting, when the subject is one.
    pub fn setting(&self) -> Option<Setting> {
        match self {
            Subject::Setting(s) => Some(*s),
            Subject::Named(_) => None,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Setting(s) => s.fmt(f),
            Subject::Named(n) => f.write_str(n),
        }
    }
}

impl From<Setting> for Subject {
    fn from(s: Setting) -> Self {
        Subject::Setting(s)
    }
}

impl From<&str> for Subject {
    fn from(s: &str) -> Self {
        Subject::Named(s.to_string())
    }
}

impl From<String> for Subject {
    fn from(s: String) -> Self {
        Subject::Named(s)
    }
}

impl From<&String> for Subject {
    fn from(s: &String) -> Self {
        Subject::Named(s.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protects the library's own wording: without an installed spelling (the unit tests
    /// install none) a setting reads as its concept, never as a flag.
    #[test]
    fn settings_read_as_concepts_without_a_spelling() {
        for s in Setting::ALL {
            let text = s.to_string();
            assert_eq!(text, s.concept());
            assert!(!text.starts_with('-'), "{s:?}: {text}");
        }
    }

    #[test]
    fn all_lists_every_setting_once() {
        let mut all = Setting::ALL.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), Setting::ALL.len());
        let concepts: std::collections::BTreeSet<_> =
            Setting::ALL.iter().map(|s| s.concept()).collect();
        assert_eq!(
            concepts.len(),
            Setting::ALL.len(),
            "two settings share a name"
        );
    }

    #[test]
    fn usage_errors_carry_their_setting() {
        let e = crate::Error::usage(Setting::Dim, "symbol 'n' given twice");
        match &e {
            crate::Error::Usage { what, .. } => assert_eq!(what.setting(), Some(Setting::Dim)),
            other => panic!("{other:?}"),
        }
        assert_eq!(e.to_string(), "symbolic dim: symbol 'n' given twice");
        let named = crate::Error::usage("patch", "it has no operations");
        assert_eq!(named.to_string(), "patch: it has no operations");
    }
}
