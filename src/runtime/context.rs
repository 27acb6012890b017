//! The execution context: every ONNX Runtime session setting that changes speed, memory or
//! results, as one plain struct. It is stored in package manifests (strict TOML/JSON), so a
//! measured latency always travels with the settings that produced it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// ONNX Runtime's graph optimization level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphOptimizationLevel {
    /// No graph rewrites.
    Disable,
    /// Constant folding, redundant node removal, simple fusions (all providers).
    Basic,
    /// Complex fusions for the CPU/CUDA providers.
    Extended,
    /// Everything, including layout optimizations (ONNX Runtime's default).
    #[default]
    All,
}

impl GraphOptimizationLevel {
    /// Parse `disable|basic|extended|all`.
    pub fn from_name(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => Self::Disable,
            "basic" => Self::Basic,
            "extended" => Self::Extended,
            "all" => Self::All,
            _ => {
                return Err(Error::usage(
                    "graph_optimization_level",
                    format!("'{s}' is not one of disable, basic, extended, all"),
                ))
            }
        })
    }
}

/// How nodes are scheduled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// One node at a time (intra-op threads parallelize inside a node).
    #[default]
    Sequential,
    /// Independent branches run concurrently on the inter-op pool.
    Parallel,
}

/// An execution provider edgepack can ask ONNX Runtime for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The default CPU provider (MLAS); always available.
    Cpu,
    /// NVIDIA CUDA (needs edgepack's `cuda` feature and a GPU build of ONNX Runtime).
    Cuda,
}

impl Provider {
    /// Lower-case name (`cpu`, `cuda`).
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
        }
    }

    /// Parse a provider name.
    pub fn from_name(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            _ => Err(Error::usage(
                "execution provider",
                format!("unknown execution provider '{s}' (known: cpu, cuda)"),
            )),
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to do when a requested execution provider cannot be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderFallback {
    /// Fall back to the next provider and record it (`cpu (cuda unavailable: ...)`).
    #[default]
    Record,
    /// Refuse to build the session.
    Fail,
}

fn default_providers() -> Vec<Provider> {
    vec![Provider::Cpu]
}

fn default_true() -> bool {
    true
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Settings that build an ONNX Runtime session. `None` thread counts mean ONNX Runtime's
/// own default (one intra-op thread per physical core).
///
/// ```
/// use edgepack::runtime::{ExecutionContext, Provider};
/// let ctx: ExecutionContext = toml::from_str(r#"
///     intra_op_threads = 2
///     execution_providers = ["cuda", "cpu"]
///     graph_optimization_level = "extended"
/// "#).unwrap();
/// assert_eq!(ctx.execution_providers, vec![Provider::Cuda, Provider::Cpu]);
/// assert!(ctx.enable_mem_arena);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionContext {
    /// Threads inside one operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intra_op_threads: Option<usize>,
    /// Threads across operators (parallel mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inter_op_threads: Option<usize>,
    /// Graph rewrites before running.
    #[serde(default)]
    pub graph_optimization_level: GraphOptimizationLevel,
    /// Providers in order of preference; CPU is always the last resort.
    #[serde(default = "default_providers")]
    pub execution_providers: Vec<Provider>,
    /// What to do when a listed provider is unavailable.
    #[serde(default, skip_serializing_if = "is_default")]
    pub provider_fallback: ProviderFallback,
    /// CPU memory arena (faster allocation, higher resident memory).
    #[serde(default = "default_true")]
    pub enable_mem_arena: bool,
    /// Memory pattern planning (helps fixed shapes; useless for varying shapes).
    #[serde(default = "default_true")]
    pub enable_mem_pattern: bool,
    /// Sequential or parallel node scheduling.
    #[serde(default)]
    pub execution_mode: ExecutionMode,
    /// Write ONNX Runtime's per-node profile to `<prefix>_<timestamp>.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiling_prefix: Option<PathBuf>,
    /// Save the optimized graph here when the session is built (offline optimization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimized_model_path: Option<PathBuf>,
    /// ONNX Runtime session configuration entries (`AddSessionConfigEntry`), e.g.
    /// `"session.disable_quant_qdq" = "1"`, which lets ONNX Runtime fold the
    /// DequantizeLinear of int8 weights into float weights once, at load.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub session_config: BTreeMap<String, String>,
}

/// The session entry that lets ONNX Runtime constant-fold DequantizeLinear nodes (QDQ
/// fusion off): an int8 weight-only model then runs float kernels on weights dequantized
/// once at load instead of dequantizing them on every call.
pub const DISABLE_QUANT_QDQ: &str = "session.disable_quant_qdq";

impl Default for ExecutionContext {
    fn default() -> Self {
        ExecutionContext {
            intra_op_threads: None,
            inter_op_threads: None,
            graph_optimization_level: GraphOptimizationLevel::All,
            execution_providers: default_providers(),
            provider_fallback: ProviderFallback::Record,
            enable_mem_arena: true,
            enable_mem_pattern: true,
            execution_mode: ExecutionMode::Sequential,
            profiling_prefix: None,
            optimized_model_path: None,
            session_config: BTreeMap::new(),
        }
    }
}

impl ExecutionContext {
    /// Check values that serde cannot (zero threads, empty or repeated providers).
    pub fn validate(&self) -> Result<()> {
        if self.intra_op_threads == Some(0) || self.inter_op_threads == Some(0) {
            return Err(Error::usage(
                "execution context",
                "thread counts must be at least 1 (leave them out for ONNX Runtime's default)",
            ));
        }
        if self.execution_providers.is_empty() {
            return Err(Error::usage(
                "execution context",
                "execution_providers is empty (use [\"cpu\"])",
            ));
        }
        if let Some(k) = self
            .session_config
            .keys()
            .find(|k| k.is_empty() || k.chars().any(char::is_whitespace))
        {
            return Err(Error::usage(
                "execution context",
                format!("session_config key '{k}' is empty or has whitespace (keys look like session.disable_quant_qdq)"),
            ));
        }
        let mut seen = Vec::new();
        for p in &self.execution_providers {
            if seen.contains(p) {
                return Err(Error::usage(
                    "execution context",
                    format!("execution provider '{p}' is listed twice"),
                ));
            }
            seen.push(*p);
        }
        Ok(())
    }

    /// A copy with one intra-op thread and sequential execution, the most repeatable
    /// setting for tests and cross-checks.
    pub fn single_threaded() -> Self {
        ExecutionContext {
            intra_op_threads: Some(1),
            inter_op_threads: Some(1),
            ..Default::default()
        }
    }
}

/// Which execution providers a session actually got. Never hides ONNX Runtime's fallback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderReport {
    /// What the context asked for, in order.
    pub requested: Vec<Provider>,
    /// What was registered with the session, in order (CPU always last).
    pub registered: Vec<Provider>,
    /// Requested providers that could not be used, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<UnavailableProvider>,
}

/// A requested provider that was not used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnavailableProvider {
    pub provider: Provider,
    pub reason: String,
}

impl ProviderReport {
    /// The provider that runs the graph first in line: `cpu`, `cuda`, or
    /// `cpu (cuda unavailable: <reason>)` when a requested one fell back.
    pub fn summary(&self) -> String {
        let first = self.registered.first().copied().unwrap_or(Provider::Cpu);
        if self.unavailable.is_empty() {
            return first.name().to_string();
        }
        let why = self
            .unavailable
            .iter()
            .map(|u| format!("{} unavailable: {}", u.provider, u.reason))
            .collect::<Vec<_>>()
            .join("; ");
        format!("{first} ({why})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strict_toml_and_rejects_unknown_fields() {
        let ctx: ExecutionContext = toml::from_str("").unwrap();
        assert_eq!(ctx, ExecutionContext::default());
        let e = toml::from_str::<ExecutionContext>("intra_threads = 2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `intra_threads`"), "{e}");
        let e = toml::from_str::<ExecutionContext>("execution_providers = [\"tpu\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tpu"), "{e}");
    }

    #[test]
    fn round_trips_through_toml_and_json() {
        let ctx = ExecutionContext {
            intra_op_threads: Some(4),
            graph_optimization_level: GraphOptimizationLevel::Basic,
            execution_providers: vec![Provider::Cuda, Provider::Cpu],
            execution_mode: ExecutionMode::Parallel,
            profiling_prefix: Some("prof/run".into()),
            ..Default::default()
        };
        let t = toml::to_string(&ctx).unwrap();
        assert_eq!(toml::from_str::<ExecutionContext>(&t).unwrap(), ctx);
        let j = serde_json::to_string(&ctx).unwrap();
        assert_eq!(serde_json::from_str::<ExecutionContext>(&j).unwrap(), ctx);
    }

    #[test]
    fn validate_rejects_zero_threads_and_repeated_providers() {
        let mut ctx = ExecutionContext {
            intra_op_threads: Some(0),
            ..Default::default()
        };
        assert!(ctx.validate().is_err());
        ctx.intra_op_threads = None;
        ctx.execution_providers = vec![Provider::Cpu, Provider::Cpu];
        assert!(ctx.validate().unwrap_err().to_string().contains("twice"));
        ctx.execution_providers = vec![];
        assert!(ctx.validate().is_err());
    }

    #[test]
    fn report_summary_names_the_fallback() {
        let r = ProviderReport {
            requested: vec![Provider::Cuda, Provider::Cpu],
            registered: vec![Provider::Cpu],
            unavailable: vec![UnavailableProvider {
                provider: Provider::Cuda,
                reason: "edgepack was built without the `cuda` feature".into(),
            }],
        };
        assert_eq!(
            r.summary(),
            "cpu (cuda unavailable: edgepack was built without the `cuda` feature)"
        );
    }
}
