//! The gate policy: which metrics to check, against which absolute budgets and which
//! maximum regression, which direction is better, and whether a breach fails the job
//! (hard) or only warns (soft).
//!
//! The file is TOML, parsed strictly: an unknown key or an unknown metric name is an
//! error that names it, because a typo in a gate must never silently turn a check off.
//!
//! ```toml
//! [defaults]
//! min_effect = "1%"     # changes smaller than this are never called regressions
//! confidence = 0.95     # of the bootstrap interval
//! resamples = 2000
//! seed = 1
//!
//! [scope]               # which configurations are gated (all when absent)
//! batch = [1]
//! threads = [2]
//!
//! [metrics.p50_latency]
//! max_regression = "5%"
//!
//! [metrics.p95_latency]
//! max = "20ms"
//!
//! [metrics.peak_memory]
//! max = "300MB"
//! severity = "soft"
//! ```
//!
//! Quantities are strings with a unit (`"20ms"`, `"300MB"`, `"25dB"`, `"5%"`, `"2/s"`), by
//! the grammar of [`crate::units`]; a bare TOML number is refused with the expected form.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::units::{self, Unit};

/// A metric the gate knows how to read from a profile (or a quantize report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Median steady-state latency per configuration (`latency.p50_s`).
    P50Latency,
    /// 95th percentile latency per configuration (`latency.p95_s`).
    P95Latency,
    /// Peak resident memory per configuration (`memory.peak_rss_bytes`).
    PeakMemory,
    /// Model file size (`model.size_bytes`).
    ModelSize,
    /// Worst per-output SQNR of a quantized model (from the quantize report).
    Sqnr,
    /// Items per second per configuration (`throughput_items_per_s`).
    Throughput,
    /// Worst per-output character error rate of greedy CTC decoding against the fp32
    /// model's text (`outputs[].ctc.cer` of the quantize report), a fraction.
    Cer,
    /// Worst per-output mean IoU of the binarised maps against the fp32 model's
    /// (`outputs[].mask.mean_iou` of the quantize report), a fraction.
    MaskIou,
    /// Worst per-output top-1 agreement with the fp32 model on class axes
    /// (`outputs[].top1_agreement` of the quantize report), a fraction.
    Top1,
    /// Worst per-output minimum cosine similarity over samples against the fp32 model
    /// (`outputs[].min_cosine` of the quantize report): embeddings, hidden states.
    MinCosine,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 10] = [
        Metric::P50Latency,
        Metric::P95Latency,
        Metric::Throughput,
        Metric::PeakMemory,
        Metric::ModelSize,
        Metric::Sqnr,
        Metric::Cer,
        Metric::MaskIou,
        Metric::Top1,
        Metric::MinCosine,
    ];

    /// The name used in policy files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::P50Latency => "p50_latency",
            Metric::P95Latency => "p95_latency",
            Metric::PeakMemory => "peak_memory",
            Metric::ModelSize => "model_size",
            Metric::Sqnr => "sqnr",
            Metric::Throughput => "throughput",
            Metric::Cer => "cer",
            Metric::MaskIou => "mask_iou",
            Metric::Top1 => "top1",
            Metric::MinCosine => "min_cosine",
        }
    }

    /// The unit its values are stored in.
    pub fn unit(self) -> Unit {
        match self {
            Metric::P50Latency | Metric::P95Latency => Unit::Seconds,
            Metric::PeakMemory | Metric::ModelSize => Unit::Bytes,
            Metric::Sqnr => Unit::Decibels,
            Metric::Throughput => Unit::PerSecond,
            Metric::Cer | Metric::MaskIou | Metric::Top1 => Unit::Percent,
            Metric::MinCosine => Unit::Fraction,
        }
    }

    /// Which direction is better when the policy does not say.
    pub fn natural_direction(self) -> Direction {
        match self {
            Metric::Sqnr
            | Metric::Throughput
            | Metric::MaskIou
            | Metric::Top1
            | Metric::MinCosine => Direction::HigherIsBetter,
            _ => Direction::LowerIsBetter,
        }
    }

    /// Whether the value is an accuracy figure read from a quantize report (one value per
    /// model, judged against absolute limits only).
    pub fn from_quantize_report(self) -> bool {
        matches!(
            self,
            Metric::Sqnr | Metric::Cer | Metric::MaskIou | Metric::Top1 | Metric::MinCosine
        )
    }

    /// Whether the value is a timing (noisy; judged with confidence intervals).
    pub fn is_timing(self) -> bool {
        matches!(
            self,
            Metric::P50Latency | Metric::P95Latency | Metric::Throughput
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metric name that is not one of [`Metric::ALL`]; the message lists the known names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric '{0}' (known: {known})", known = Metric::ALL.map(Metric::name).join(", "))]
pub struct UnknownMetric(pub String);

impl FromStr for Metric {
    type Err = UnknownMetric;
    fn from_str(s: &str) -> Result<Self, UnknownMetric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMetric(s.to_string()))
    }
}

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    #[serde(rename = "lower")]
    LowerIsBetter,
    #[serde(rename = "higher")]
    HigherIsBetter,
}

/// Whether a breach fails the gate or only warns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A breach fails the gate (exit status 1); an undecidable check makes it inconclusive.
    #[default]
    Hard,
    /// A breach is reported as a warning and does not change the exit status.
    Soft,
}

/// Rules for one metric, resolved to SI units.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub direction: Direction,
    /// Absolute upper budget (SI units).
    pub max: Option<f64>,
    /// Absolute lower budget (SI units).
    pub min: Option<f64>,
    /// Largest tolerated worsening relative to the baseline (0.05 = 5%).
    pub max_regression: Option<f64>,
    /// Changes smaller than this (relative) are never called regressions.
    pub min_effect: f64,
    pub severity: Severity,
}

impl Rule {
    /// A hard rule with no limits yet, in the metric's natural direction.
    pub fn new(metric: Metric, min_effect: f64) -> Rule {
        Rule {
            direction: metric.natural_direction(),
            max: None,
            min: None,
            max_regression: None,
            min_effect,
            severity: Severity::Hard,
        }
    }
}

/// Which configurations of the sweep are gated; an empty list means all.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default)]
    pub batch: Vec<i64>,
    #[serde(default)]
    pub threads: Vec<usize>,
    #[serde(default)]
    pub ep: Vec<String>,
}

impl Scope {
    /// Whether a configuration (its batch, threads and requested provider) is gated.
    pub fn includes(&self, batch: Option<i64>, threads: usize, ep: &str) -> bool {
        (self.batch.is_empty() || batch.is_some_and(|b| self.batch.contains(&b)))
            && (self.threads.is_empty() || self.threads.contains(&threads))
            && (self.ep.is_empty() || self.ep.iter().any(|e| e == ep))
    }
}

/// Settings of the bootstrap that compares candidate and baseline timings.
#[derive(Clone, Debug, PartialEq)]
pub struct Bootstrap {
    /// Two-sided confidence level of the interval (0.95).
    pub confidence: f64,
    /// Number of bootstrap resamples (2000).
    pub resamples: usize,
    /// Seed of the resampling, so the same inputs always give the same verdict.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            confidence: 0.95,
            resamples: 2000,
            seed: 0x6564_6765, // "edge"
        }
    }
}

/// The default minimum effect size: 1%.
pub const DEFAULT_MIN_EFFECT: f64 = 0.01;

/// A resolved gate policy (plain values, SI units).
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub rules: BTreeMap<Metric, Rule>,
    pub scope: Scope,
    pub bootstrap: Bootstrap,
    /// Default minimum effect size for rules added later (from CLI flags).
    pub min_effect: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rules: BTreeMap::new(),
            scope: Scope::default(),
            bootstrap: Bootstrap::default(),
            min_effect: DEFAULT_MIN_EFFECT,
        }
    }
}

/// A string with a unit (a bare number is parsed only to be refused with a clear message).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Quantity {
    Number(f64),
    Text(String),
}

impl Quantity {
    fn resolve(&self, unit: Unit) -> Result<f64, String> {
        match self {
            // A budget needs its unit (`"20ms"`, not `20`): a bare number is refused the
            // same way on the command line and in a policy (issue 17, bug 1).
            Quantity::Number(v) => units::from_bare_number(*v, unit).map_err(|e| e.to_string()),
            Quantity::Text(t) => units::parse(t, unit).map_err(|e| e.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    defaults: Option<DefaultsFile>,
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default)]
    metrics: BTreeMap<String, RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsFile {
    min_effect: Option<Quantity>,
    confidence: Option<f64>,
    resamples: Option<usize>,
    seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    direction: Option<Direction>,
    max: Option<Quantity>,
    min: Option<Quantity>,
    max_regression: Option<Quantity>,
    min_effect: Option<Quantity>,
    #[serde(default)]
    severity: Severity,
}

impl Policy {
    /// Read and validate a policy file.
    pub fn from_path(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Policy::parse(&text).map_err(|m| Error::file(path, m))
    }

    /// Parse and validate policy TOML; the error is one line naming the bad key or value
    /// (`policy: metrics.p50_latency.max: ...`).
    pub fn from_toml(text: &str) -> Result<Policy> {
        Policy::parse(text).map_err(|m| Error::usage("policy", m))
    }

    /// Check the resolved values make sense together (also after CLI overrides); the error
    /// names `origin` (the policy file, or the flags the values came from) and the key.
    pub fn validate(&self, origin: &str) -> Result<()> {
        self.check().map_err(|m| Error::usage(origin, m))
    }

    /// [`Policy::from_toml`], the error being the bare message (the caller adds where
    /// the text came from).
    fn parse(text: &str) -> Result<Policy, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            // toml's message spans lines (it quotes the source); keep it to one line.
            e.message().replace('\n', " ")
                + &e.span()
                    .map(|s| format!(" (at byte {})", s.start))
                    .unwrap_or_default()
        })?;
        let mut policy = Policy::default();
        if let Some(d) = file.defaults {
            if let Some(q) = d.min_effect {
                policy.min_effect = q
                    .resolve(Unit::Percent)
                    .map_err(|e| format!("defaults.min_effect: {e}"))?;
            }
            if let Some(c) = d.confidence {
                policy.bootstrap.confidence = c;
            }
            if let Some(r) = d.resamples {
                policy.bootstrap.resamples = r;
            }
            if let Some(s) = d.seed {
                policy.bootstrap.seed = s;
            }
        }
        if let Some(s) = file.scope {
            policy.scope = s;
        }
        for (name, raw) in &file.metrics {
            let metric: Metric = name.parse().map_err(|e| format!("metrics: {e}"))?;
            let unit = metric.unit();
            let ctx = |field: &str, e: String| format!("metrics.{name}.{field}: {e}");
            let rule = Rule {
                direction: raw.direction.unwrap_or(metric.natural_direction()),
                max: raw
                    .max
                    .as_ref()
                    .map(|q| q.resolve(unit))
                    .transpose()
                    .map_err(|e| ctx("max", e))?,
                min: raw
                    .min
                    .as_ref()
                    .map(|q| q.resolve(unit))
                    .transpose()
                    .map_err(|e| ctx("min", e))?,
                max_regression: raw
                    .max_regression
                    .as_ref()
                    .map(|q| q.resolve(Unit::Percent))
                    .transpose()
                    .map_err(|e| ctx("max_regression", e))?,
                min_effect: raw
                    .min_effect
                    .as_ref()
                    .map(|q| q.resolve(Unit::Percent))
                    .transpose()
                    .map_err(|e| ctx("min_effect", e))?
                    .unwrap_or(policy.min_effect),
                severity: raw.severity,
            };
            policy.rules.insert(metric, rule);
        }
        policy.check()?;
        Ok(policy)
    }

    /// [`Policy::validate`], the error being the bare message.
    fn check(&self) -> Result<(), String> {
        let b = &self.bootstrap;
        if !(b.confidence > 0.5 && b.confidence < 1.0) {
            return Err(format!(
                "defaults.confidence: {} must be between 0.5 and 1 (e.g. 0.95)",
                b.confidence
            ));
        }
        if !(100..=1_000_000).contains(&b.resamples) {
            return Err(format!(
                "defaults.resamples: {} must be between 100 and 1000000",
                b.resamples
            ));
        }
        if !(0.0..1.0).contains(&self.min_effect) {
            return Err(format!(
                "defaults.min_effect: {} must be between 0% and 100%",
                units::Display(self.min_effect, Unit::Percent)
            ));
        }
        for (metric, rule) in &self.rules {
            let name = metric.name();
            if rule.max.is_none() && rule.min.is_none() && rule.max_regression.is_none() {
                return Err(format!(
                    "metrics.{name}: nothing to check (set max, min or max_regression)"
                ));
            }
            if let (Some(lo), Some(hi)) = (rule.min, rule.max) {
                if lo > hi {
                    return Err(format!("metrics.{name}: min is above max"));
                }
            }
            if !(0.0..1.0).contains(&rule.min_effect) {
                return Err(format!(
                    "metrics.{name}.min_effect: must be between 0% and 100%"
                ));
            }
            if let Some(r) = rule.max_regression {
                if metric.from_quantize_report() {
                    return Err(format!(
                        "metrics.{name}.max_regression: not supported for {name} \
                         (the gate reads one quantize report; use {})",
                        if metric.natural_direction() == Direction::HigherIsBetter {
                            "min"
                        } else {
                            "max"
                        }
                    ));
                }
                if !(0.0..10.0).contains(&r) {
                    return Err(format!(
                        "metrics.{name}.max_regression: {} must be between 0% and 1000%",
                        units::Display(r, Unit::Percent)
                    ));
                }
                if rule.min_effect > r {
                    return Err(format!(
                        "metrics.{name}: min_effect ({}) is larger than max_regression ({})",
                        units::Display(rule.min_effect, Unit::Percent),
                        units::Display(r, Unit::Percent)
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rule for `metric`, created (hard, natural direction) if absent; for CLI overrides.
    pub fn rule_mut(&mut self, metric: Metric) -> &mut Rule {
        let min_effect = self.min_effect;
        self.rules
            .entry(metric)
            .or_insert_with(|| Rule::new(metric, min_effect))
    }

    /// The accuracy check a package's declared task asks for (`[postprocessing] task`):
    /// when neither the policy file nor a flag sets a rule on the task's metric, its
    /// default limit becomes a hard rule (`ctc`: `cer` at most 0.5%; `mask@T`: `mask_iou`
    /// at least 98%; `top1`: `top1` at least 99%; `embedding`: `min_cosine` at least 0.99;
    /// [`crate::quantize::task::Task::default_limit`]); a rule already set is kept. Returns
    /// one line saying what was done, for stderr.
    pub fn apply_declared_task(&mut self, task: &crate::quantize::task::Task) -> String {
        use crate::quantize::task::Task;
        let metric = match task {
            Task::Ctc { .. } => Metric::Cer,
            Task::Mask { .. } => Metric::MaskIou,
            Task::Top1 => Metric::Top1,
            Task::Embedding => Metric::MinCosine,
        };
        if self.rules.contains_key(&metric) {
            return format!(
                "the package declares task {}: its metric {metric} is checked by the rule given",
                task.name()
            );
        }
        let limit = task.default_limit();
        let rule = self.rule_mut(metric);
        let bound = if rule.direction == Direction::HigherIsBetter {
            rule.min = Some(limit);
            "at least"
        } else {
            rule.max = Some(limit);
            "at most"
        };
        format!(
            "the package declares task {}: checking {metric} {bound} {} (the task's default limit; set [metrics.{metric}] or its flag to change it)",
            task.name(),
            units::Display(limit, metric.unit())
        )
    }

    /// Whether any rule compares against a baseline.
    pub fn needs_baseline(&self) -> bool {
        self.rules.values().any(|r| r.max_regression.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_example_policy() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gate.toml");
        let p = Policy::from_path(&path).unwrap();
        let p50 = &p.rules[&Metric::P50Latency];
        assert_eq!(p50.max_regression, Some(0.05));
        assert_eq!(p50.direction, Direction::LowerIsBetter);
        assert_eq!(p50.severity, Severity::Hard);
        assert!((p.rules[&Metric::P95Latency].max.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(p.rules[&Metric::PeakMemory].max, Some(1.5e9));
        assert_eq!(p.rules[&Metric::Sqnr].severity, Severity::Soft);
        assert_eq!(
            p.rules[&Metric::Throughput].direction,
            Direction::HigherIsBetter
        );
        assert_eq!(p.bootstrap.resamples, 2000);
    }

    #[test]
    fn unknown_metric_is_an_error_naming_it() {
        let e = Policy::parse("[metrics.p99_latency]\nmax = \"20ms\"\n").unwrap_err();
        assert!(e.contains("unknown metric 'p99_latency'"), "{e}");
        assert!(e.contains("p95_latency"), "lists known metrics: {e}");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e = Policy::parse("[metrics.p95_latency]\nmaximum = \"20ms\"\n").unwrap_err();
        assert!(e.contains("maximum"), "{e}");
        let e = Policy::parse("[defaults]\nresample = 10\n").unwrap_err();
        assert!(e.contains("resample"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn quantities_need_units() {
        let p = Policy::parse(
            "[metrics.p95_latency]\nmax = \"20ms\"\n[metrics.peak_memory]\nmax = \"300MiB\"\n\
             [metrics.p50_latency]\nmax_regression = \"5%\"\nmin_effect = \"2%\"\n",
        )
        .unwrap();
        assert!((p.rules[&Metric::P95Latency].max.unwrap() - 0.02).abs() < 1e-12);
        assert_eq!(p.rules[&Metric::PeakMemory].max, Some(300.0 * 1048576.0));
        assert!((p.rules[&Metric::P50Latency].max_regression.unwrap() - 0.05).abs() < 1e-12);
        assert!((p.rules[&Metric::P50Latency].min_effect - 0.02).abs() < 1e-12);
        // A bare number is never silently seconds, bytes or percent (issue 17, bug 1).
        for toml in [
            "[metrics.p95_latency]\nmax = 20\n",
            "[metrics.peak_memory]\nmax = 512\n",
            "[metrics.p50_latency]\nmax_regression = 5\n",
            "[defaults]\nmin_effect = 1\n",
        ] {
            let e = Policy::parse(toml).unwrap_err();
            assert!(e.contains("has no unit"), "{toml}: {e}");
        }
    }

    #[test]
    fn rejects_wrong_unit_and_inconsistent_rules() {
        let e = Policy::parse("[metrics.peak_memory]\nmax = \"20ms\"\n").unwrap_err();
        assert!(e.contains("metrics.peak_memory.max"), "{e}");
        let e = Policy::parse("[metrics.p50_latency]\nseverity = \"soft\"\n").unwrap_err();
        assert!(e.contains("nothing to check"), "{e}");
        let e =
            Policy::parse("[metrics.p50_latency]\nmax_regression = \"2%\"\nmin_effect = \"5%\"\n")
                .unwrap_err();
        assert!(e.contains("min_effect"), "{e}");
        let e = Policy::parse("[metrics.sqnr]\nmax_regression = \"5%\"\n").unwrap_err();
        assert!(e.contains("sqnr"), "{e}");
        let e = Policy::parse("[defaults]\nconfidence = 95\n").unwrap_err();
        assert!(e.contains("confidence"), "{e}");
        let e = Policy::parse("[metrics.p50_latency]\nmax = \"1ms\"\nseverity = \"fatal\"\n")
            .unwrap_err();
        assert!(e.contains("fatal"), "{e}");
    }

    #[test]
    fn scope_selects_configurations() {
        let s = Scope {
            batch: vec![1],
            threads: vec![],
            ep: vec!["cpu".into()],
        };
        assert!(s.includes(Some(1), 4, "cpu"));
        assert!(!s.includes(Some(2), 4, "cpu"));
        assert!(!s.includes(None, 4, "cpu"));
        assert!(!s.includes(Some(1), 4, "cuda"));
        assert!(Scope::default().includes(None, 1, "x"));
    }

    #[test]
    fn a_declared_task_adds_its_metric_unless_a_rule_is_set() {
        use crate::quantize::task::Task;
        let mut p = Policy::default();
        let note = p.apply_declared_task(&Task::Embedding);
        assert_eq!(p.rules[&Metric::MinCosine].min, Some(0.99));
        assert!(
            note.contains("checking min_cosine at least 0.9900"),
            "{note}"
        );
        let mut p = Policy::default();
        let note = p.apply_declared_task(&Task::Top1);
        assert_eq!(p.rules[&Metric::Top1].min, Some(0.99));
        assert!(note.contains("checking top1 at least 99.0%"), "{note}");
        let mut p = Policy::default();
        let note = p.apply_declared_task(&Task::Ctc { blank: 0 });
        assert_eq!(p.rules[&Metric::Cer].max, Some(0.005));
        assert_eq!(p.rules[&Metric::Cer].severity, Severity::Hard);
        assert!(note.contains("checking cer at most 0.5%"), "{note}");
        let mut p = Policy::from_toml("[metrics.mask_iou]\nmin = \"95%\"\n").unwrap();
        let note = p.apply_declared_task(&Task::Mask { threshold: 0.3 });
        let kept = p.rules[&Metric::MaskIou].min.unwrap();
        assert!(
            (kept - 0.95).abs() < 1e-12,
            "the given rule is kept: {kept}"
        );
        assert!(note.contains("checked by the rule given"), "{note}");
        let mut p = Policy::default();
        p.apply_declared_task(&Task::Mask { threshold: 0.3 });
        assert_eq!(p.rules[&Metric::MaskIou].min, Some(0.98));
    }

    #[test]
    fn task_metrics_are_percentages_read_from_the_quantize_report() {
        let p =
            Policy::from_toml("[metrics.cer]\nmax = \"0.5%\"\n[metrics.mask_iou]\nmin = \"98%\"\n")
                .unwrap();
        assert_eq!(p.rules[&Metric::Cer].max, Some(0.005));
        assert_eq!(p.rules[&Metric::Cer].direction, Direction::LowerIsBetter);
        assert_eq!(p.rules[&Metric::MaskIou].min, Some(0.98));
        assert_eq!(
            p.rules[&Metric::MaskIou].direction,
            Direction::HigherIsBetter
        );
        let e = Policy::from_toml("[metrics.cer]\nmax = 0.005\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.cer.max"), "{e}");
        let e = Policy::from_toml("[metrics.cer]\nmax_regression = \"5%\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("use max"), "{e}");
        let e = Policy::from_toml("[metrics.wer]\nmax = \"1%\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mask_iou"),
            "the known list names the new metrics: {e}"
        );
    }
}
