//! `edgepack gate`: budgets and noise-aware regression checks over profiles, for CI.
//!
//! Settings resolve flag > policy file > default: a flag such as `--max-p95` overrides the
//! same limit in `--policy`. Exit status: 0 pass, 1 a hard check failed, 2 usage or input
//! error, 3 inconclusive (too noisy to decide; never reported as a pass).

use std::path::PathBuf;

use anyhow::Context;

use super::Outcome;
use edgepack::artifact::write_atomic;
use edgepack::gate::{self, Decision, Extras, Metric, Policy};
use edgepack::quantize::task::Task;
use edgepack::report::{self, Exporter};
use edgepack::units::Unit;
use edgepack::Error;

#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// Profile of the candidate model (from `edgepack profile --json`).
    #[arg(
        long,
        value_name = "PROFILE.json",
        required_unless_present = "remeasure"
    )]
    pub current: Option<PathBuf>,
    /// Profile to compare against (e.g. the main branch's, from a CI artifact).
    #[arg(long, value_name = "PROFILE.json")]
    pub baseline: Option<PathBuf>,
    /// Policy file (TOML): per-metric budgets, regressions, direction, soft/hard.
    #[arg(long, value_name = "gate.toml")]
    pub policy: Option<PathBuf>,
    /// Quantize report (from `edgepack quantize --report`), for the SQNR floor.
    #[arg(long, value_name = "QUANTIZE.json")]
    pub quantize: Option<PathBuf>,
    /// Budget on the median latency, judged on its confidence interval (e.g. 15ms).
    #[arg(long, value_name = "DURATION")]
    pub max_p50: Option<String>,
    /// Budget on the 95th percentile latency, judged on its confidence interval (e.g. 20ms).
    #[arg(long, value_name = "DURATION")]
    pub max_p95: Option<String>,
    /// Budget on peak resident memory per configuration (e.g. 300MB).
    #[arg(long, value_name = "SIZE")]
    pub max_peak_memory: Option<String>,
    /// Budget on the model file size (e.g. 5MB).
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// The package (`.edgepkg`) the gated model comes from: its declared task
    /// (`[postprocessing] task`) sets the accuracy check unless one is given (`ctc`: cer at
    /// most 0.5%; `mask@T`: mask_iou at least 98%; `top1`: top1 at least 99%; `embedding`:
    /// min_cosine at least 0.99), and without --quantize the accuracy
    /// figures are those the package records for the profiled model's variant.
    #[arg(long, value_name = "PKG.edgepkg")]
    pub package: Option<PathBuf>,
    /// Floor on the worst output SQNR of the quantize report (e.g. 25dB).
    #[arg(long, value_name = "DB")]
    pub min_sqnr: Option<String>,
    /// Ceiling on the quantize report's CTC character error rate against the fp32 text
    /// (e.g. 0.5%; the report needs `quantize --accuracy-target cer<=...`).
    #[arg(long, value_name = "PERCENT")]
    pub max_cer: Option<String>,
    /// Floor on the quantize report's mean IoU of binarised maps (e.g. 98%; the report
    /// needs `quantize --accuracy-target mask-iou>=...@T`).
    #[arg(long, value_name = "PERCENT")]
    pub min_mask_iou: Option<String>,
    /// Floor on the quantize report's top-1 agreement with the fp32 model on class axes
    /// (e.g. 99%; the worst output with a class axis).
    #[arg(long, value_name = "PERCENT")]
    pub min_top1: Option<String>,
    /// Floor on the quantize report's minimum cosine similarity to the fp32 outputs over
    /// samples (e.g. 0.99; embeddings, hidden states; the worst output).
    #[arg(long, value_name = "FRACTION")]
    pub min_cosine: Option<String>,
    /// Tolerated median-latency regression against the baseline (e.g. 5%).
    #[arg(long, value_name = "PERCENT")]
    pub max_regression: Option<String>,
    /// Changes smaller than this are never called regressions (default 1%).
    #[arg(long, value_name = "PERCENT")]
    pub min_effect: Option<String>,
    /// Gate only these batch sizes (overrides the policy's scope).
    #[arg(long, value_delimiter = ',', value_name = "N,..")]
    pub batch: Vec<i64>,
    /// Gate only these thread counts (overrides the policy's scope).
    #[arg(long, value_delimiter = ',', value_name = "N,..")]
    pub threads: Vec<usize>,
    /// Seed of the bootstrap (the same inputs and seed always give the same verdict).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Compare profiles of differently named model files (a renamed model).
    #[arg(long)]
    pub allow_model_rename: bool,
    /// Write the verdict as JSON (`edgepack.gate/1`) to FILE.
    #[arg(long = "json-out", alias = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML, one test case per check.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary (e.g. "$GITHUB_STEP_SUMMARY").
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Profile --baseline-model and --model interleaved (A B A B ...) in this job, so
    /// drift of the machine cancels; the recommended mode on shared CI runners.
    #[arg(long, requires_all = ["baseline_model", "model"], conflicts_with_all = ["current", "baseline"])]
    pub remeasure: bool,
    /// With --remeasure: the old model (e.g. from the main branch).
    #[arg(long, value_name = "OLD.onnx", requires = "remeasure")]
    pub baseline_model: Option<PathBuf>,
    /// With --remeasure: the new model.
    #[arg(long, value_name = "NEW.onnx", requires = "remeasure")]
    pub model: Option<PathBuf>,
    /// With --remeasure: write the two profiles measured here (baseline.json and
    /// current.json, for artifacts and reports).
    #[arg(long, value_name = "DIR", requires = "remeasure")]
    pub save_profiles: Option<PathBuf>,
    /// With --remeasure: the profile plan (name in profiles/ or a TOML file).
    #[arg(long, default_value = "ci", requires = "remeasure")]
    pub plan: String,
    /// With --remeasure: interleaved rounds per model (each gets 1/N of the plan's time).
    #[arg(long, default_value_t = 4, requires = "remeasure")]
    pub rounds: usize,
    /// With --remeasure: an input shape, as for `edgepack profile` (e.g. x=1x3x48x192).
    #[arg(long = "shape", value_name = "NAME=DIMS", requires = "remeasure")]
    pub shapes: Vec<String>,
    /// With --remeasure: an ONNX Runtime session entry KEY=VALUE for both models, on top
    /// of those each model records in its metadata (which are always applied). Repeatable.
    #[arg(long, value_name = "KEY=VALUE", requires = "remeasure")]
    pub session_config: Vec<String>,
}

fn quantity(flag: &str, text: &str, unit: Unit) -> anyhow::Result<f64> {
    Ok(super::quantity(flag, text, unit)?)
}

/// Resolve the policy: file (if any), then flags on top, then the package's declared task
/// for an accuracy metric neither sets.
fn resolve_policy(a: &GateArgs, task: Option<&Task>) -> anyhow::Result<Policy> {
    let mut p = match &a.policy {
        Some(path) => Policy::from_path(path)?,
        None => Policy::default(),
    };
    if let Some(t) = &a.min_effect {
        let e = quantity("--min-effect", t, Unit::Percent)?;
        p.min_effect = e;
        for r in p.rules.values_mut() {
            r.min_effect = e;
        }
    }
    if let Some(t) = &a.max_p50 {
        p.rule_mut(Metric::P50Latency).max = Some(quantity("--max-p50", t, Unit::Seconds)?);
    }
    if let Some(t) = &a.max_p95 {
        p.rule_mut(Metric::P95Latency).max = Some(quantity("--max-p95", t, Unit::Seconds)?);
    }
    if let Some(t) = &a.max_peak_memory {
        p.rule_mut(Metric::PeakMemory).max = Some(quantity("--max-peak-memory", t, Unit::Bytes)?);
    }
    if let Some(t) = &a.max_size {
        p.rule_mut(Metric::ModelSize).max = Some(quantity("--max-size", t, Unit::Bytes)?);
    }
    if let Some(t) = &a.min_sqnr {
        p.rule_mut(Metric::Sqnr).min = Some(quantity("--min-sqnr", t, Unit::Decibels)?);
    }
    if let Some(t) = &a.max_cer {
        p.rule_mut(Metric::Cer).max = Some(quantity("--max-cer", t, Unit::Percent)?);
    }
    if let Some(t) = &a.min_mask_iou {
        p.rule_mut(Metric::MaskIou).min = Some(quantity("--min-mask-iou", t, Unit::Percent)?);
    }
    if let Some(t) = &a.min_top1 {
        p.rule_mut(Metric::Top1).min = Some(quantity("--min-top1", t, Unit::Percent)?);
    }
    if let Some(t) = &a.min_cosine {
        p.rule_mut(Metric::MinCosine).min = Some(quantity("--min-cosine", t, Unit::Fraction)?);
    }
    if let Some(t) = &a.max_regression {
        p.rule_mut(Metric::P50Latency).max_regression =
            Some(quantity("--max-regression", t, Unit::Percent)?);
    } else if p.rules.is_empty() && (a.baseline.is_some() || a.remeasure) {
        // A baseline and nothing else asked: the common CI case, median within 5%.
        p.rule_mut(Metric::P50Latency).max_regression = Some(0.05);
    }
    if !a.batch.is_empty() {
        p.scope.batch = a.batch.clone();
    }
    if !a.threads.is_empty() {
        p.scope.threads = a.threads.clone();
    }
    if let Some(s) = a.seed {
        p.bootstrap.seed = s;
    }
    if let Some(t) = task {
        eprintln!("edgepack: {}", p.apply_declared_task(t));
    }
    let origin = a
        .policy
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "gate flags".into());
    p.validate(&origin)?;
    Ok(p)
}

pub fn run(ort_lib: &Option<PathBuf>, a: GateArgs) -> anyhow::Result<Outcome> {
    let package = a
        .package
        .as_deref()
        .map(|p| edgepack::package::open(p, None))
        .transpose()?;
    let task = package
        .as_ref()
        .and_then(|p| p.manifest.postprocessing.as_ref()?.task.as_deref())
        .map(|t| Task::parse("postprocessing.task", t))
        .transpose()?;
    let policy = resolve_policy(&a, task.as_ref())?;
    // Every output location is checked before anything is measured: a remeasure takes
    // minutes, and its verdict must not be lost to a missing folder at the end.
    let saved = a
        .save_profiles
        .iter()
        .flat_map(|d| [d.join("baseline.json"), d.join("current.json")]);
    for path in a
        .json
        .iter()
        .chain(&a.junit)
        .chain(&a.markdown)
        .cloned()
        .chain(saved)
    {
        edgepack::artifact::check_writable(&path)?;
    }
    let mut extras = Extras {
        allow_model_rename: a.allow_model_rename,
        ..Extras::default()
    };
    if let Some(q) = &a.quantize {
        let summary = report::quantize::QuantizeSummary::from_path(q)?;
        extras.sqnr_db =
            Some(summary.worst_sqnr_db().ok_or_else(|| {
                Error::file(q, "the quantize report has no finite per-output SQNR")
            })?);
        // The task metrics (CTC character error rate, mask IoU) the report carries.
        let text = std::fs::read(q).map_err(|e| Error::io(q, e))?;
        let json: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| Error::file(q, format!("not valid JSON: {e}")))?;
        extras.read_task_metrics(&json);
    }
    let (current, baseline) = if a.remeasure {
        // Both models are named explicitly, so differing file names are expected.
        extras.allow_model_rename = true;
        // clap's `requires_all` guarantees both with --remeasure.
        let (Some(old), Some(new)) = (a.baseline_model.as_ref(), a.model.as_ref()) else {
            return Err(Error::usage("--remeasure", "needs --baseline-model and --model").into());
        };
        let settings = super::remeasure::Settings {
            ort_lib,
            old,
            new,
            plan: &a.plan,
            rounds: a.rounds,
            shapes: &a.shapes,
            seed: a.seed.unwrap_or(0),
            session_config: super::session_entries("--session-config", &a.session_config)?,
        };
        let r = super::remeasure::interleaved(&settings, &policy)?;
        for (path, p) in [(old, &r.baseline), (new, &r.current)] {
            super::report_model_entries(path, &p.model_session_config);
        }
        if let Some(dir) = &a.save_profiles {
            for (name, p) in [("baseline.json", &r.baseline), ("current.json", &r.current)] {
                let mut bytes = serde_json::to_vec_pretty(p).context("serializing a profile")?;
                bytes.push(b'\n');
                write_atomic(&dir.join(name), &bytes)?;
            }
        }
        extras.rounds = r.rounds;
        (r.current, Some(r.baseline))
    } else {
        let Some(current) = a.current.as_ref() else {
            return Err(Error::usage("--current", "a profile is needed (or --remeasure)").into());
        };
        let current = gate::read_profile(current)?;
        let baseline = a.baseline.as_deref().map(gate::read_profile).transpose()?;
        (current, baseline)
    };
    if let (Some(pkg), None) = (&package, &a.quantize) {
        let variant = pkg
            .manifest
            .components
            .iter()
            .flat_map(|c| &c.variants)
            .find(|v| v.sha256 == current.model.sha256);
        if let Some(v) = variant {
            extras.read_package_variant(v);
        }
    }
    let verdict = gate::evaluate(&policy, &current, baseline.as_ref(), &extras)?;

    // Files first: a failed write is an error (exit 2), and nothing half-written is left.
    for (path, format) in [
        (&a.json, "json"),
        (&a.junit, "junit"),
        (&a.markdown, "markdown"),
    ] {
        if let Some(path) = path {
            let text = report::exporter(format)
                .expect("known format")
                .render(&verdict);
            write_atomic(path, text.as_bytes())?;
        }
    }
    print!("{}", report::table::Table.render(&verdict));
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        print!("{}", report::github::Annotations.render(&verdict));
    }
    Ok(match verdict.decision {
        Decision::Pass => Outcome::Success,
        Decision::Fail => Outcome::Failed,
        Decision::Inconclusive => Outcome::Inconclusive,
    })
}
