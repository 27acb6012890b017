//! Profile plans: what to sweep and how to measure, from `profiles/NAME.toml`.
//!
//! A plan is parsed strictly (`deny_unknown_fields` everywhere): a typo such as
//! `min_iteration = 10` is an error naming the file, never a silently ignored setting.
//! The plans shipped in `profiles/` are also compiled into the binary, so `--plan quick`
//! works from any folder; a path (anything with a `/` or ending in `.toml`) is read from
//! disk. Command-line flags override the plan ([`Overrides`]).
//!
//! ```toml
//! description = "what this plan is for"
//!
//! [sizes]
//! batch = [1, 4]                          # values of the leading symbolic dim
//! dims = { "seq" = [128, 512] }           # values of other symbolic dims, by name
//!
//! [run]
//! threads = [1, 2]                        # intra-op threads; 0 = ONNX Runtime's default
//! execution_providers = ["cpu"]           # cpu, cuda
//! graph_optimization_level = "all"        # disable, basic, extended, all
//!
//! [measure]
//! rounds = 3                              # independent processes per configuration
//! warmup_iterations = 3
//! min_iterations = 10
//! max_iterations = 1000
//! min_time_s = 0.5                       # per configuration, shared by its rounds
//! max_time_s = 5.0
//! target_ci_rel = 0.01                    # ±1% relative half-width of the median's CI
//! stability_tolerance = 0.05              # last 3 windows within ±5%
//!
//! [limits]                                # all optional
//! timeout_s = 120                         # per configuration, wall clock
//! memory_limit_bytes = 2_000_000_000      # per configuration (child address space)
//! latency_budget_s = 0.02                 # for the needs summary
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::measure::Protocol;
use super::schema::PlanSummary;
use crate::error::{Error, Result};
use crate::setting::Setting;

/// Plans shipped in `profiles/`, compiled in (name, TOML).
pub const BUILTIN_PLANS: [(&str, &str); 4] = [
    ("quick", include_str!("../../profiles/quick.toml")),
    ("default", include_str!("../../profiles/default.toml")),
    ("ci", include_str!("../../profiles/ci.toml")),
    ("edge", include_str!("../../profiles/edge.toml")),
];

/// Execution providers the profiler knows how to request.
pub const KNOWN_EPS: [&str; 2] = ["cpu", "cuda"];

/// ONNX Runtime's graph optimization levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GraphOptimizationLevel {
    Disable,
    Basic,
    Extended,
    #[default]
    All,
}

impl GraphOptimizationLevel {
    /// The name used in plans and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            GraphOptimizationLevel::Disable => "disable",
            GraphOptimizationLevel::Basic => "basic",
            GraphOptimizationLevel::Extended => "extended",
            GraphOptimizationLevel::All => "all",
        }
    }

    /// Parse a name (as written in plans).
    pub fn from_name(s: &str) -> Result<Self> {
        match s {
            "disable" => Ok(Self::Disable),
            "basic" => Ok(Self::Basic),
            "extended" => Ok(Self::Extended),
            "all" => Ok(Self::All),
            _ => Err(Error::usage(
                "graph optimization level",
                format!("unknown level '{s}' (use disable, basic, extended or all)"),
            )),
        }
    }
}

/// A plan file as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub sizes: Sizes,
    #[serde(default)]
    pub run: RunSettings,
    #[serde(default)]
    pub measure: MeasureSettings,
    #[serde(default)]
    pub limits: Limits,
}

/// Query sizes to sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    /// Values of the leading (batch) dim where it is symbolic; empty = 1.
    #[serde(default)]
    pub batch: Vec<i64>,
    /// Values of other symbolic dims, by symbol name.
    #[serde(default)]
    pub dims: BTreeMap<String, Vec<i64>>,
}

/// Session settings to sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    #[serde(default = "default_threads")]
    pub threads: Vec<usize>,
    #[serde(default = "default_eps")]
    pub execution_providers: Vec<String>,
    #[serde(default)]
    pub graph_optimization_level: GraphOptimizationLevel,
}

fn default_threads() -> Vec<usize> {
    vec![1]
}
fn default_eps() -> Vec<String> {
    vec!["cpu".into()]
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            threads: default_threads(),
            execution_providers: default_eps(),
            graph_optimization_level: GraphOptimizationLevel::All,
        }
    }
}

/// Measurement settings (see [`super::measure`] for the protocol).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureSettings {
    /// Independent processes each configuration is measured in (see
    /// [`super::rounds`]); the iteration and time settings below are the configuration's
    /// total, shared by its rounds ([`Self::per_round`]).
    #[serde(default = "default_rounds")]
    pub rounds: u64,
    pub warmup_iterations: u64,
    pub min_iterations: u64,
    pub max_iterations: u64,
    pub min_time_s: f64,
    pub max_time_s: f64,
    pub target_ci_rel: f64,
    pub stability_tolerance: f64,
}

/// The fewest runs a round makes when the rounds share a plan's iterations: 6 is the
/// smallest sample whose [min, max] covers the median with at least 95% (1 - 2/2^6).
pub const MIN_ROUND_ITERATIONS: u64 = 6;

/// Rounds when a plan does not say: three processes are the fewest in which one odd
/// process shows as the odd one out (issue 18).
pub const DEFAULT_ROUNDS: u64 = 3;

fn default_rounds() -> u64 {
    DEFAULT_ROUNDS
}

impl MeasureSettings {
    /// The settings of one of `self.rounds` rounds: each gets `1/rounds` of the time and
    /// iteration budget (at least [`MIN_ROUND_ITERATIONS`] runs, the fewest with a 95%
    /// median interval of their own, which mode detection compares), so the pooled rounds
    /// cost what the plan says, and a target interval `√rounds` wider, so the pooled
    /// samples reach the plan's target. The result is a single round; one round is the
    /// plan's settings unchanged.
    pub fn per_round(&self) -> MeasureSettings {
        if self.rounds <= 1 {
            return MeasureSettings {
                rounds: 1,
                ..self.clone()
            };
        }
        let r = self.rounds as f64;
        let min_iterations = ((self.min_iterations as f64 / r).ceil() as u64)
            .max(MIN_ROUND_ITERATIONS)
            .min(self.min_iterations.max(1));
        MeasureSettings {
            rounds: 1,
            min_iterations,
            max_iterations: ((self.max_iterations as f64 / r).ceil() as u64).max(min_iterations),
            min_time_s: self.min_time_s / r,
            max_time_s: self.max_time_s / r,
            target_ci_rel: (self.target_ci_rel * r.sqrt()).min(0.5),
            ..self.clone()
        }
    }

    /// The measurement protocol these settings describe (the rest at its defaults).
    pub fn protocol(&self) -> Protocol {
        Protocol {
            warmup_iterations: self.warmup_iterations,
            min_iterations: self.min_iterations,
            max_iterations: self.max_iterations,
            min_time_s: self.min_time_s,
            max_time_s: self.max_time_s,
            target_ci_rel: self.target_ci_rel,
            stability_tolerance: self.stability_tolerance,
            ..Protocol::default()
        }
    }
}

impl Default for MeasureSettings {
    fn default() -> Self {
        let p = Protocol::default();
        MeasureSettings {
            rounds: DEFAULT_ROUNDS,
            warmup_iterations: p.warmup_iterations,
            min_iterations: p.min_iterations,
            max_iterations: p.max_iterations,
            min_time_s: p.min_time_s,
            max_time_s: p.max_time_s,
            target_ci_rel: p.target_ci_rel,
            stability_tolerance: p.stability_tolerance,
        }
    }
}

/// Per-configuration limits and the needs-summary budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub timeout_s: Option<f64>,
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    #[serde(default)]
    pub latency_budget_s: Option<f64>,
}

/// A resolved plan: the file's settings with command-line overrides applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub name: String,
    pub file: PlanFile,
}

/// Command-line values that replace the plan's (each `Some`/non-empty one wins).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub batch: Vec<i64>,
    pub dims: BTreeMap<String, Vec<i64>>,
    pub threads: Vec<usize>,
    pub execution_providers: Vec<String>,
    pub graph_optimization_level: Option<GraphOptimizationLevel>,
    pub rounds: Option<u64>,
    pub warmup_iterations: Option<u64>,
    pub min_iterations: Option<u64>,
    pub max_iterations: Option<u64>,
    pub min_time_s: Option<f64>,
    pub max_time_s: Option<f64>,
    pub target_ci_rel: Option<f64>,
    pub timeout_s: Option<f64>,
    pub memory_limit_bytes: Option<u64>,
    pub latency_budget_s: Option<f64>,
}

impl Plan {
    /// Parse plan TOML; `origin` names the file in errors.
    pub fn from_toml_str(name: &str, text: &str, origin: &Path) -> Result<Plan> {
        let file: PlanFile = toml::from_str(text).map_err(|e| {
            // toml's Display draws a multi-line source excerpt; errors are one line.
            let line = e
                .span()
                .map(|s| {
                    format!(
                        "line {}: ",
                        text[..s.start.min(text.len())].lines().count().max(1)
                    )
                })
                .unwrap_or_default();
            Error::file(
                origin,
                format!("invalid profile plan: {line}{}", e.message().trim()),
            )
        })?;
        let plan = Plan {
            name: name.to_string(),
            file,
        };
        plan.check().map_err(|m| Error::file(origin, m))?;
        Ok(plan)
    }

    /// Read a plan from a file.
    pub fn from_path(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plan".into());
        Self::from_toml_str(&name, &text, path)
    }

    /// A built-in plan by name (`quick`, `default`, `ci`, `edge`).
    pub fn builtin(name: &str) -> Result<Plan> {
        let (n, text) = BUILTIN_PLANS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| {
                Error::usage(
                    Setting::Plan,
                    format!(
                        "no plan named '{name}' (built in: quick, default, ci, edge; or give a path to a .toml file)"
                    ),
                )
            })?;
        Self::from_toml_str(n, text, Path::new(&format!("profiles/{n}.toml")))
    }

    /// `--plan` argument: a path when it looks like one, otherwise a built-in name.
    pub fn resolve(arg: &str) -> Result<Plan> {
        if arg.contains('/') || arg.ends_with(".toml") || Path::new(arg).is_file() {
            Self::from_path(Path::new(arg))
        } else {
            Self::builtin(arg)
        }
    }

    /// Apply command-line overrides, then re-validate.
    pub fn with_overrides(mut self, o: &Overrides) -> Result<Plan> {
        let f = &mut self.file;
        if !o.batch.is_empty() {
            f.sizes.batch = o.batch.clone();
        }
        for (k, v) in &o.dims {
            f.sizes.dims.insert(k.clone(), v.clone());
        }
        if !o.threads.is_empty() {
            f.run.threads = o.threads.clone();
        }
        if !o.execution_providers.is_empty() {
            f.run.execution_providers = o.execution_providers.clone();
        }
        if let Some(l) = o.graph_optimization_level {
            f.run.graph_optimization_level = l;
        }
        if let Some(r) = o.rounds {
            f.measure.rounds = r;
        }
        let m = &mut f.measure;
        macro_rules! take {
            ($field:ident, $dst:expr) => {
                if let Some(v) = o.$field {
                    $dst = v;
                }
            };
        }
        take!(warmup_iterations, m.warmup_iterations);
        take!(min_iterations, m.min_iterations);
        take!(max_iterations, m.max_iterations);
        take!(min_time_s, m.min_time_s);
        take!(max_time_s, m.max_time_s);
        take!(target_ci_rel, m.target_ci_rel);
        if o.timeout_s.is_some() {
            f.limits.timeout_s = o.timeout_s;
        }
        if o.memory_limit_bytes.is_some() {
            f.limits.memory_limit_bytes = o.memory_limit_bytes;
        }
        if o.latency_budget_s.is_some() {
            f.limits.latency_budget_s = o.latency_budget_s;
        }
        self.check()
            .map_err(|m| Error::usage(format!("plan '{}' with flags", self.name), m))?;
        Ok(self)
    }

    /// Check value ranges; the error names the plan and says which setting is wrong.
    pub fn validate(&self) -> Result<()> {
        self.check()
            .map_err(|m| Error::usage(format!("plan '{}'", self.name), m))
    }

    /// [`Plan::validate`]'s checks, the message saying which setting is wrong.
    fn check(&self) -> std::result::Result<(), String> {
        let f = &self.file;
        if let Some(b) = f.sizes.batch.iter().find(|b| **b < 1) {
            return Err(format!("sizes.batch: {b} is not a positive batch size"));
        }
        for (k, vs) in &f.sizes.dims {
            if vs.is_empty() {
                return Err(format!("sizes.dims.{k}: give at least one value"));
            }
            if let Some(v) = vs.iter().find(|v| **v < 1) {
                return Err(format!("sizes.dims.{k}: {v} is not a positive size"));
            }
        }
        if f.run.threads.is_empty() {
            return Err("run.threads: give at least one thread count".into());
        }
        if f.run.execution_providers.is_empty() {
            return Err("run.execution_providers: give at least one provider".into());
        }
        if let Some(ep) = f
            .run
            .execution_providers
            .iter()
            .find(|e| !KNOWN_EPS.contains(&e.as_str()))
        {
            return Err(format!(
                "run.execution_providers: unknown provider '{ep}' (known: {})",
                KNOWN_EPS.join(", ")
            ));
        }
        let m = &f.measure;
        if !(1..=100).contains(&m.rounds) {
            return Err(format!(
                "measure.rounds: {} must be between 1 and 100 (processes per configuration)",
                m.rounds
            ));
        }
        if m.min_iterations < 1 {
            return Err("measure.min_iterations must be at least 1".into());
        }
        if m.max_iterations < m.min_iterations {
            return Err(format!(
                "measure.max_iterations ({}) is below min_iterations ({})",
                m.max_iterations, m.min_iterations
            ));
        }
        if !(m.min_time_s >= 0.0 && m.max_time_s >= m.min_time_s && m.max_time_s.is_finite()) {
            return Err(format!(
                "measure: need 0 <= min_time_s ({}) <= max_time_s ({})",
                m.min_time_s, m.max_time_s
            ));
        }
        if !(m.target_ci_rel > 0.0 && m.target_ci_rel < 1.0) {
            return Err(format!(
                "measure.target_ci_rel: {} must be between 0 and 1 (0.01 = ±1%)",
                m.target_ci_rel
            ));
        }
        if !(m.stability_tolerance > 0.0 && m.stability_tolerance < 1.0) {
            return Err(format!(
                "measure.stability_tolerance: {} must be between 0 and 1 (0.05 = ±5%)",
                m.stability_tolerance
            ));
        }
        if let Some(t) = f.limits.timeout_s {
            if !(t > 0.0 && t.is_finite()) {
                return Err(format!("limits.timeout_s: {t} must be positive"));
            }
        }
        if f.limits.memory_limit_bytes == Some(0) {
            return Err("limits.memory_limit_bytes must be positive".into());
        }
        Ok(())
    }

    /// The measurement protocol of this plan.
    pub fn protocol(&self) -> Protocol {
        self.file.measure.protocol()
    }

    /// The schema's plan summary.
    pub fn summary(&self) -> PlanSummary {
        let m = &self.file.measure;
        PlanSummary {
            name: self.name.clone(),
            rounds: m.rounds,
            warmup_iterations: m.warmup_iterations,
            min_iterations: m.min_iterations,
            max_iterations: m.max_iterations,
            min_time_s: m.min_time_s,
            max_time_s: m.max_time_s,
            target_ci_rel: m.target_ci_rel,
            graph_optimization_level: self.file.run.graph_optimization_level.as_str().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_share_the_plan_budget_and_one_round_is_the_plan() {
        let m = Plan::builtin("default").unwrap().file.measure;
        assert_eq!(m.rounds, 3);
        assert_eq!(Plan::builtin("quick").unwrap().file.measure.rounds, 2);
        let r = m.per_round();
        assert_eq!(r.rounds, 1);
        assert!((r.max_time_s - m.max_time_s / 3.0).abs() < 1e-12);
        assert!((r.min_time_s - m.min_time_s / 3.0).abs() < 1e-12);
        assert_eq!(r.min_iterations, 7); // ceil(20 / 3)
        assert!((r.target_ci_rel - m.target_ci_rel * 3f64.sqrt()).abs() < 1e-12);
        let one = MeasureSettings {
            rounds: 1,
            min_iterations: 3,
            ..m.clone()
        };
        assert_eq!(one.per_round(), one);
        // A plan asking for fewer runs than the floor is not given more per round.
        let few = MeasureSettings {
            min_iterations: 2,
            ..m
        };
        assert_eq!(few.per_round().min_iterations, 2);
        // The floor: 10 runs over 3 rounds is 6 per round, not 4.
        let ten = MeasureSettings {
            min_iterations: 10,
            ..few.clone()
        };
        assert_eq!(ten.per_round().min_iterations, MIN_ROUND_ITERATIONS);
        let e = Plan::from_toml_str("p", "[measure]\nrounds = 0\nwarmup_iterations = 1\nmin_iterations = 1\nmax_iterations = 1\nmin_time_s = 0.0\nmax_time_s = 1.0\ntarget_ci_rel = 0.01\nstability_tolerance = 0.05\n", Path::new("p.toml")).unwrap_err().to_string();
        assert!(e.contains("measure.rounds"), "{e}");
    }

    #[test]
    fn every_file_in_profiles_parses_strictly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().and_then(|e| e.to_str()) == Some("toml") {
                let plan = Plan::from_path(&p).unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    !plan.file.description.is_empty(),
                    "{} has no description",
                    p.display()
                );
                n += 1;
            }
        }
        assert!(
            n >= 4,
            "expected quick, default, ci and edge plans, found {n}"
        );
        for (name, _) in BUILTIN_PLANS {
            let builtin = Plan::builtin(name).unwrap();
            let on_disk = Plan::from_path(&dir.join(format!("{name}.toml"))).unwrap();
            assert_eq!(builtin, on_disk);
        }
    }

    #[test]
    fn rejects_a_typo_naming_the_file_and_key() {
        let e = Plan::from_toml_str(
            "t",
            "[measure]\nmin_iteration = 10\n",
            Path::new("profiles/t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("profiles/t.toml"), "{e}");
        assert!(e.contains("min_iteration"), "{e}");
        let e = Plan::from_toml_str("t", "treads = [1]\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("treads"), "{e}");
    }

    #[test]
    fn rejects_out_of_range_values() {
        let bad = [
            ("[sizes]\nbatch = [0]\n", "sizes.batch"),
            (
                "[run]\nexecution_providers = [\"tpu\"]\n",
                "unknown provider 'tpu'",
            ),
            ("[run]\nthreads = []\n", "run.threads"),
            (
                "[run]\ngraph_optimization_level = \"max\"\n",
                "line 2: unknown variant `max`",
            ),
        ];
        for (text, needle) in bad {
            let e = Plan::from_toml_str("t", text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let mut p = Plan::builtin("quick").unwrap();
        p.file.measure.max_iterations = 1;
        p.file.measure.min_iterations = 5;
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_iterations"));
    }

    #[test]
    fn flags_override_the_plan() {
        let plan = Plan::builtin("default").unwrap();
        let o = Overrides {
            batch: vec![1, 2, 4, 8],
            threads: vec![2],
            execution_providers: vec!["cpu".into()],
            target_ci_rel: Some(0.02),
            timeout_s: Some(30.0),
            memory_limit_bytes: Some(512_000_000),
            dims: [("seq".to_string(), vec![16])].into(),
            ..Overrides::default()
        };
        let p = plan.with_overrides(&o).unwrap();
        assert_eq!(p.file.sizes.batch, vec![1, 2, 4, 8]);
        assert_eq!(p.file.run.threads, vec![2]);
        assert_eq!(p.file.measure.target_ci_rel, 0.02);
        assert_eq!(p.file.limits.timeout_s, Some(30.0));
        assert_eq!(p.file.sizes.dims["seq"], vec![16]);
        assert_eq!(p.protocol().target_ci_rel, 0.02);
        let bad = Overrides {
            execution_providers: vec!["gpu".into()],
            ..Overrides::default()
        };
        let e = Plan::builtin("quick")
            .unwrap()
            .with_overrides(&bad)
            .unwrap_err();
        assert!(e.to_string().contains("unknown provider 'gpu'"), "{e}");
    }

    #[test]
    fn resolves_names_and_paths() {
        assert_eq!(Plan::resolve("quick").unwrap().name, "quick");
        let e = Plan::resolve("quikc").unwrap_err().to_string();
        assert!(e.contains("no plan named 'quikc'"), "{e}");
        let e = Plan::resolve("/nonexistent/p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/p.toml"), "{e}");
    }
}
