//! Reports: the gate's verdict in every format CI systems read (one format per file, all
//! behind [`Exporter`]), and the self-contained HTML report of a profile ([`html`]).
//!
//! Exporters are pure: they turn a [`Verdict`] into text, and the caller writes it (through
//! `artifact::write_atomic`). Snapshot tests feed them hand-built verdicts, never live
//! timings, so a format change shows up as a reviewed snapshot diff.

pub mod build;
pub mod build_schema;
pub mod bundles;
#[doc(hidden)]
#[cfg(any(test, feature = "test-support"))]
pub mod fixture;
pub mod format;
pub mod github;
pub mod html;
pub mod json;
pub mod junit;
pub mod label;
pub mod markdown;
pub mod plot;
pub mod profile_table;
pub mod quantize;
pub mod table;
pub mod targets;

use crate::gate::{Check, CheckStatus, Decision, Metric, Severity, Verdict};
use crate::units::Display;

/// One output format of the gate's verdict.
pub trait Exporter {
    /// Render the verdict in this format.
    fn render(&self, verdict: &Verdict) -> String;
}

/// The exporter for a format name (`table`, `json`, `junit`, `markdown`, `github`).
pub fn exporter(name: &str) -> Option<Box<dyn Exporter>> {
    Some(match name {
        "table" => Box::new(table::Table),
        "json" => Box::new(json::Json),
        "junit" => Box::new(junit::Junit),
        "markdown" => Box::new(markdown::Markdown),
        "github" => Box::new(github::Annotations),
        _ => return None,
    })
}

/// Lower-case label of a check's outcome; soft checks that did not pass are warnings.
pub(crate) fn status_label(c: &Check) -> &'static str {
    match (c.status, c.severity) {
        (CheckStatus::Pass, _) => "pass",
        (_, Severity::Soft) => "warn",
        (CheckStatus::Fail, Severity::Hard) => "fail",
        (CheckStatus::Inconclusive, Severity::Hard) => "inconclusive",
    }
}

/// Label of the whole gate's decision.
pub(crate) fn decision_label(d: Decision) -> &'static str {
    match d {
        Decision::Pass => "pass",
        Decision::Fail => "fail",
        Decision::Inconclusive => "inconclusive",
    }
}

/// A value of `metric` in readable units, or `-`.
pub(crate) fn value(v: Option<f64>, metric: Metric) -> String {
    v.map(|v| Display(v, metric.unit()).to_string())
        .unwrap_or_else(|| "-".into())
}

/// A check's current value with its interval where measured with noise.
pub(crate) fn current_cell(c: &Check) -> String {
    match (c.current, c.current_low, c.current_high) {
        (Some(v), Some(lo), Some(hi)) => format!(
            "{} [{}, {}]",
            value(Some(v), c.metric),
            value(Some(lo), c.metric),
            value(Some(hi), c.metric)
        ),
        (v, ..) => value(v, c.metric),
    }
}

/// The relative change against the baseline, with its interval for regression checks.
pub(crate) fn change_cell(c: &Check) -> String {
    let pct = |r: f64| format!("{:+.1}%", (r - 1.0) * 100.0);
    match (c.ratio, c.ratio_low, c.ratio_high) {
        (Some(r), Some(lo), Some(hi)) => format!("{} [{}, {}]", pct(r), pct(lo), pct(hi)),
        (Some(r), ..) => pct(r),
        _ => c
            .delta()
            .map(|d| pct(d + 1.0))
            .unwrap_or_else(|| "-".into()),
    }
}

/// The budget or tolerated regression a check was held to.
pub(crate) fn limit_cell(c: &Check) -> String {
    use crate::gate::CheckKind;
    match (c.kind, c.limit) {
        (CheckKind::Regression, Some(t)) => format!("<= {:+.1}%", t * 100.0),
        (CheckKind::Budget, Some(l)) => {
            let is_min = c.metric.natural_direction() == crate::gate::Direction::HigherIsBetter;
            format!(
                "{} {}",
                if is_min { ">=" } else { "<=" },
                value(Some(l), c.metric)
            )
        }
        _ => "-".into(),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A hand-built verdict covering every status, kind and severity, for snapshot tests.
    use crate::gate::verdict::{ModelLabel, GATE_SCHEMA};
    use crate::gate::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn check(metric: Metric, kind: CheckKind, status: CheckStatus) -> Check {
        Check {
            metric,
            kind,
            config: Some("ep=cpu threads=2 batch=1".into()),
            severity: Severity::Hard,
            status,
            current: None,
            current_low: None,
            current_high: None,
            baseline: None,
            ratio: None,
            ratio_low: None,
            ratio_high: None,
            limit: None,
            message: String::new(),
        }
    }

    pub fn verdict() -> Verdict {
        let mut reg = check(Metric::P50Latency, CheckKind::Regression, CheckStatus::Fail);
        reg.current = Some(0.0115);
        reg.baseline = Some(0.0100);
        reg.ratio = Some(1.15);
        reg.ratio_low = Some(1.12);
        reg.ratio_high = Some(1.18);
        reg.limit = Some(0.05);
        reg.message = "11.500 ms vs baseline 10.000 ms: +15.0% (CI +12.0% to +18.0%) is a \
                       regression beyond the tolerated +5.0%"
            .into();
        let mut p95 = check(
            Metric::P95Latency,
            CheckKind::Budget,
            CheckStatus::Inconclusive,
        );
        p95.current = Some(0.0199);
        p95.current_low = Some(0.0191);
        p95.current_high = Some(0.0207);
        p95.baseline = Some(0.0150);
        p95.limit = Some(0.020);
        p95.message = "19.900 ms (CI 19.100 ms to 20.700 ms): the confidence interval \
                       straddles the budget 20.000 ms; too noisy to decide"
            .into();
        let mut mem = check(Metric::PeakMemory, CheckKind::Budget, CheckStatus::Pass);
        mem.current = Some(245.1 * MIB);
        mem.baseline = Some(240.0 * MIB);
        mem.limit = Some(300.0 * MIB);
        mem.message = "245.1 MiB is within the budget <= 300.0 MiB".into();
        let mut size = check(Metric::ModelSize, CheckKind::Budget, CheckStatus::Fail);
        size.config = None;
        size.severity = Severity::Soft;
        size.current = Some(5.2 * MIB);
        size.limit = Some(5.0 * MIB);
        size.message = "5.2 MiB breaks the budget <= 5.0 MiB & needs <attention>".into();
        let mut run = check(Metric::P50Latency, CheckKind::Run, CheckStatus::Fail);
        run.config = Some("ep=cpu threads=2 batch=64".into());
        run.message = "the configuration failed to run (Oom: killed at 512 MiB)".into();
        Verdict {
            schema: GATE_SCHEMA.into(),
            decision: Decision::Fail,
            current_model: ModelLabel {
                path: "models/det.onnx".into(),
                sha256: "ab".repeat(32),
            },
            baseline_model: Some(ModelLabel {
                path: "models/det.onnx".into(),
                sha256: "cd".repeat(32),
            }),
            checks: vec![reg, p95, mem, size, run],
            notes: vec!["baseline was measured on a different machine".into()],
        }
    }
}
