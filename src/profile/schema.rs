//! The profile JSON (`"schema": "edgepack.profile/1"`): what `edgepack profile` writes and
//! what the gate, the report and the bundler read. Units live in the field names; times are
//! seconds (`_s`), sizes bytes (`_bytes`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema identifier written in every profile.
pub const PROFILE_SCHEMA: &str = "edgepack.profile/1";

/// A whole profile: one model, one host, many configurations.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub schema: String,
    pub edgepack_version: String,
    pub created_unix_s: u64,
    pub model: ModelRef,
    pub host: Host,
    pub onnxruntime_version: String,
    pub plan: PlanSummary,
    pub configs: Vec<ConfigResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<Needs>,
    /// Session entries every configuration ran with that the model records in its own
    /// metadata (`model::metadata`), e.g. `session.disable_quant_qdq` for int8 weights.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub model_session_config: BTreeMap<String, String>,
    /// Configurations of the sweep that were never measured. Non-empty while the sweep
    /// runs (the file is rewritten after each configuration) and after an interruption:
    /// a profile with any is incomplete and no gate passes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_run: Vec<String>,
    /// The sweep was stopped by a signal (SIGINT, SIGTERM) before it finished.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

impl Profile {
    /// Why this profile does not hold its whole sweep, or `None` when it does.
    pub fn incompleteness(&self) -> Option<String> {
        if self.not_run.is_empty() && !self.interrupted {
            return None;
        }
        let how = if self.interrupted {
            "the profile was interrupted"
        } else {
            "the profile never finished (the file was written mid-sweep)"
        };
        Some(if self.not_run.is_empty() {
            how.to_string()
        } else {
            format!(
                "{how}; {} configuration(s) never ran: {}",
                self.not_run.len(),
                self.not_run.join("; ")
            )
        })
    }
}

/// Which model was profiled.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    pub path: String,
    pub sha256: String,
    pub size_bytes: u64,
}

/// The machine the profile was measured on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub os: String,
    pub arch: String,
    pub cpu_model: String,
    pub logical_cores: usize,
    #[serde(default)]
    pub physical_cores: Option<usize>,
    pub total_memory_bytes: u64,
    #[serde(default)]
    pub isa_features: Vec<String>,
}

fn one_round() -> u64 {
    1
}

/// The measurement settings used (for the whole configuration: its rounds share them).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanSummary {
    pub name: String,
    /// Independent processes per configuration (profiles before rounds: 1).
    #[serde(default = "one_round")]
    pub rounds: u64,
    pub warmup_iterations: u64,
    pub min_iterations: u64,
    pub max_iterations: u64,
    pub min_time_s: f64,
    pub max_time_s: f64,
    /// Target relative half-width of the median's confidence interval (0.01 = ±1%).
    pub target_ci_rel: f64,
    pub graph_optimization_level: String,
}

/// Outcome of one configuration.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
}

/// Why a configuration failed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Oom,
    Signal,
    Timeout,
    LoadError,
    RunError,
    ProviderUnavailable,
}

/// One point of the sweep: query size x threads x execution provider.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigResult {
    /// Stable identifier, e.g. `ep=cpu threads=2 batch=4`.
    pub id: String,
    pub ep_requested: String,
    pub threads: usize,
    #[serde(default)]
    pub batch: Option<i64>,
    /// Values given to symbolic dims (batch included where the model has one).
    #[serde(default)]
    pub dims: BTreeMap<String, i64>,
    /// The concrete input shapes used.
    #[serde(default)]
    pub input_shapes: BTreeMap<String, Vec<i64>>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The execution provider that actually ran the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ep_used: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_create_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_run_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_items_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuStats>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_op: Vec<OpShare>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The configuration's threads occupy every core this machine offers the process
    /// (or `threads = 0`, ONNX Runtime's one per core): its timings then depend on
    /// everything else the machine runs, and on a small VM can swing 2x between processes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uses_all_cores: bool,
}

impl ConfigResult {
    /// One progress line: `id: p50 1.234 ms ±0.8% (300 runs)`, or `id: FAILED (reason)`.
    pub fn progress_line(&self) -> String {
        self.progress_line_as(&self.id)
    }

    /// [`Self::progress_line`] under a display label (e.g. only what varies in the sweep).
    pub fn progress_line_as(&self, label: &str) -> String {
        match (&self.status, &self.latency) {
            (Status::Ok, Some(l)) => format!(
                "{}: p50 {} ±{:.1}% ({} runs)",
                label,
                crate::units::format_duration_s(l.p50_s),
                l.p50_ci_rel * 100.0,
                l.iterations
            ),
            _ => format!(
                "{}: FAILED ({})",
                label,
                self.reason.as_deref().unwrap_or("unknown reason")
            ),
        }
    }
}

/// Steady-state latency of one configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LatencyStats {
    pub iterations: u64,
    pub min_s: f64,
    pub mean_s: f64,
    pub p50_s: f64,
    pub p90_s: f64,
    pub p95_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
    #[serde(default)]
    pub stddev_s: Option<f64>,
    /// Distribution-free confidence interval of the median (95%).
    pub p50_ci_low_s: f64,
    pub p50_ci_high_s: f64,
    /// Relative half-width of that interval: (high - low) / 2 / p50.
    pub p50_ci_rel: f64,
    pub outliers_mild: u64,
    pub outliers_severe: u64,
    /// Whether the last stability windows agreed within the plan's tolerance.
    pub stable: bool,
    /// The raw steady-state samples, so gates can bootstrap ratios (round after round,
    /// in the order of `rounds` when there are several).
    #[serde(default)]
    pub samples_s: Vec<f64>,
    /// Each round's own figures when the configuration was measured in several independent
    /// processes ([`crate::profile::rounds`]); the interval above then comes from a
    /// bootstrap over rounds, then samples, and covers the between-process spread.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<RoundLatency>,
    /// Present when rounds disagree beyond their own intervals by a material gap: the
    /// modes, fastest first. Decisions use the slowest ([`Self::pessimistic_p50_s`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modes: Vec<LatencyMode>,
}

/// One round (one process) of a configuration measured in several.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoundLatency {
    pub p50_s: f64,
    /// The round's own (within-process) 95% interval of its median.
    pub p50_ci_low_s: f64,
    pub p50_ci_high_s: f64,
    /// Samples this round contributed (its slice of `samples_s`).
    pub iterations: u64,
}

/// A group of rounds that agree with each other and not with the other groups.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LatencyMode {
    /// Median of the pooled samples of this mode's rounds.
    pub p50_s: f64,
    /// Indices into `rounds` (0-based).
    pub rounds: Vec<usize>,
}

impl LatencyStats {
    /// The latency object of a sample summary. Without a median interval (too few
    /// samples for a 95% one) the interval is [min, max], never invented narrower;
    /// `ci_rel` overrides the relative half-width computed from it.
    pub fn from_summary(
        s: &crate::stats::Summary,
        ci_rel: Option<f64>,
        stable: bool,
        samples_s: Vec<f64>,
    ) -> LatencyStats {
        let (lo, hi) = s
            .median_ci
            .map(|c| (c.low, c.high))
            .unwrap_or((s.min, s.max));
        LatencyStats {
            iterations: s.n as u64,
            min_s: s.min,
            mean_s: s.mean,
            p50_s: s.p50,
            p90_s: s.p90,
            p95_s: s.p95,
            p99_s: s.p99,
            max_s: s.max,
            stddev_s: s.stddev,
            p50_ci_low_s: lo,
            p50_ci_high_s: hi,
            p50_ci_rel: ci_rel
                .or_else(|| crate::stats::rel_half_width(lo, hi, s.p50))
                .unwrap_or(f64::INFINITY),
            outliers_mild: s.outliers.mild() as u64,
            outliers_severe: s.outliers.severe() as u64,
            stable,
            samples_s,
            rounds: Vec::new(),
            modes: Vec::new(),
        }
    }

    /// The p50 that decisions (thread counts, budgets, bundle predictions) use: the slowest
    /// mode's when the rounds were multi-modal, never the lucky one; else the p50.
    pub fn pessimistic_p50_s(&self) -> f64 {
        self.modes
            .iter()
            .map(|m| m.p50_s)
            .fold(self.p50_s, f64::max)
    }

    /// Whether the rounds disagreed (see [`Self::modes`]).
    pub fn is_multimodal(&self) -> bool {
        self.modes.len() > 1
    }

    /// `12.4 ms (2 rounds), 25.6 ms (1 round)`: the modes for a warning or a message.
    pub fn modes_line(&self) -> String {
        self.modes
            .iter()
            .map(|m| {
                format!(
                    "{} ({} round{})",
                    crate::units::format_duration_s(m.p50_s),
                    m.rounds.len(),
                    if m.rounds.len() == 1 { "" } else { "s" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Process memory of one configuration (its own child process).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemoryStats {
    pub rss_before_load_bytes: u64,
    pub rss_after_session_bytes: u64,
    /// Peak RSS during inference (the high-water mark is reset after session creation
    /// where the kernel allows; see the warnings otherwise).
    pub peak_rss_bytes: u64,
    /// Peak RSS up to the end of session creation (graph optimization can briefly need
    /// more than inference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_session_create_bytes: Option<u64>,
}

/// CPU need of one configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CpuStats {
    pub cpu_time_s: f64,
    pub wall_time_s: f64,
    /// cpu_time / wall_time during the measured loop.
    pub busy_cores: f64,
}

/// GPU need of one configuration (CUDA execution provider only).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpuStats {
    pub device_name: String,
    pub memory_used_bytes: u64,
    #[serde(default)]
    pub utilization_percent: Option<f64>,
}

/// A node or op type's share of the run time, from ONNX Runtime's own profiler.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpShare {
    /// `op` (an op type) or `node` (a node name).
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub op_type: Option<String>,
    pub total_s: f64,
    pub share: f64,
    pub calls: u64,
}

/// What the model needs on this host, summarised over the sweep.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Needs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_budget_s: Option<f64>,
    /// Fewest threads whose p50 meets the latency budget, per batch.
    #[serde(default)]
    pub min_threads_for_budget: BTreeMap<String, Option<usize>>,
    /// Memory model: peak RSS ≈ fixed + per_item * batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_fixed_bytes: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_item_bytes: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_within_memory_limit: Option<i64>,
}
