//! What a build decided, as plain data for the HTML build report and the terminal summary:
//! per target the chosen variant and every variant's fit, and per variant its accuracy,
//! size and speed on this host.
//!
//! [`BuildSummary`] is filled from the files `edgepack build` leaves in its output folder:
//! `<name>-build.json`, read as the typed [`BuildReport`] (schema `edgepack.build/1`, a
//! file that is not one is an error naming it), and in `work/` the quantizer's reports and
//! the profiles it points to.

use std::path::{Path, PathBuf};

use super::build_schema::BuildReport;
use super::format;
use super::quantize::QuantizeSummary;
use super::targets::TargetRam;
use crate::error::{Error, Result};
use crate::profile::schema::{Profile, Status};

/// One variant's verdict on one target, with the configuration the prediction is for.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Evaluation {
    pub variant: String,
    pub fits: bool,
    /// Why it does not fit (empty when it fits).
    pub reasons: Vec<String>,
    pub threads: Option<u64>,
    pub batch: Option<i64>,
    /// Predicted p50 latency on the target.
    pub p50_s: Option<f64>,
    /// Predicted peak memory on the target.
    pub peak_memory_bytes: Option<u64>,
    /// How the prediction was made (e.g. "host profile scaled by relative compute").
    pub basis: Option<String>,
}

/// One target's decision.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TargetDecision {
    pub name: String,
    /// RAM the model may use on the target (its RAM times its model share).
    pub model_ram_bytes: Option<u64>,
    pub chosen: Option<String>,
    pub evaluations: Vec<Evaluation>,
}

impl TargetDecision {
    /// The chosen variant's evaluation.
    pub fn chosen_eval(&self) -> Option<&Evaluation> {
        let c = self.chosen.as_deref()?;
        self.evaluations.iter().find(|e| e.variant == c)
    }
}

/// One variant the build made (or the original), with what was measured of it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct VariantFacts {
    pub name: String,
    pub size_bytes: u64,
    /// Worst per-output SQNR against fp32 (`None` for fp32 itself).
    pub sqnr_db: Option<f64>,
    /// Fastest p50 at batch 1 measured on this host, and its thread count.
    pub host_p50_s: Option<f64>,
    pub host_threads: Option<usize>,
    /// The quantizer's report of this variant.
    pub quantize: Option<QuantizeSummary>,
}

/// Everything the build report shows about the decision.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BuildSummary {
    /// The model the build started from.
    pub model: String,
    pub latency_budget_s: Option<f64>,
    /// `accuracy`, `latency` or `size`: what decides among the variants that fit.
    pub prefer: String,
    pub variants: Vec<VariantFacts>,
    /// Variant modes the build tried and could not make, with why.
    pub skipped: Vec<(String, String)>,
    pub targets: Vec<TargetDecision>,
}

impl BuildSummary {
    /// Why the target's chosen variant won, in one sentence.
    pub fn why(&self, t: &TargetDecision) -> String {
        let fitting: Vec<&Evaluation> = t.evaluations.iter().filter(|e| e.fits).collect();
        let Some(chosen) = t.chosen.as_deref() else {
            return if t.evaluations.is_empty() {
                "no variant was evaluated".into()
            } else {
                "no variant fits".into()
            };
        };
        let of = if fitting.len() == 1 {
            "the only variant that fits".to_string()
        } else {
            let what = match self.prefer.as_str() {
                "latency" => "fastest",
                "size" => "smallest",
                _ => "most accurate",
            };
            format!("{what} of the {} that fit", fitting.len())
        };
        let others: Vec<&str> = t
            .evaluations
            .iter()
            .filter(|e| !e.fits && e.variant != chosen)
            .map(|e| e.variant.as_str())
            .collect();
        if others.is_empty() {
            of
        } else {
            let verb = if others.len() == 1 { "does" } else { "do" };
            format!("{of}; {} {verb} not", others.join(", "))
        }
    }

    /// Every variant evaluated on some target, in first-seen order: the fit matrix's
    /// columns (its rows are [`Self::targets`]).
    pub fn evaluated_variants(&self) -> Vec<&str> {
        let mut cols: Vec<&str> = vec![];
        for e in self.targets.iter().flat_map(|t| &t.evaluations) {
            if !cols.contains(&e.variant.as_str()) {
                cols.push(&e.variant);
            }
        }
        cols
    }

    /// The variant's facts by name.
    pub fn variant(&self, name: &str) -> Option<&VariantFacts> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// The summary of a build report, without the files it points to.
    pub fn from_report(r: &BuildReport) -> BuildSummary {
        BuildSummary {
            model: r.model.clone(),
            latency_budget_s: r.latency_budget_s,
            prefer: r.prefer.clone(),
            variants: r
                .variants
                .iter()
                .map(|v| VariantFacts {
                    name: v.name.clone(),
                    size_bytes: v.size_bytes,
                    sqnr_db: v.sqnr_db,
                    ..Default::default()
                })
                .collect(),
            skipped: r
                .skipped_variants
                .iter()
                .map(|v| (v.variant.clone(), v.why.clone()))
                .collect(),
            targets: r
                .targets
                .iter()
                .map(|t| TargetDecision {
                    name: t.target.clone(),
                    model_ram_bytes: Some(t.model_ram_bytes),
                    chosen: t.chosen.clone(),
                    evaluations: t
                        .evaluations
                        .iter()
                        .map(|e| Evaluation {
                            variant: e.variant.clone(),
                            fits: e.fits,
                            reasons: e.reasons.clone(),
                            threads: e.threads.map(|t| t as u64),
                            batch: e.batch,
                            p50_s: e.latency_p50_s,
                            peak_memory_bytes: e.peak_memory_bytes,
                            basis: e.basis.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Read a build's output folder: its `*-build.json` (the first by name), and the
    /// quantizer reports and profiles it left in `work/`. `Ok(None)` when there is no
    /// build report.
    pub fn from_dir(dir: &Path) -> Result<Option<BuildSummary>> {
        let Some(report) = BuildReport::find_in(dir)? else {
            return Ok(None);
        };
        Ok(Some(Self::from_build_dir(dir, &report)?))
    }

    /// [`Self::from_report`], with the quantizer reports and host profiles the build left
    /// in `dir/work/`.
    fn from_build_dir(dir: &Path, report: &BuildReport) -> Result<BuildSummary> {
        let mut s = Self::from_report(report);
        let work = dir.join("work");
        let stem = Path::new(&s.model)
            .file_stem()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_default();
        for f in &mut s.variants {
            let q = work.join(format!("{stem}.{}.quantize.json", f.name));
            if q.is_file() {
                f.quantize = Some(QuantizeSummary::from_path(&q)?);
            }
            let Some(v) = report.variants.iter().find(|v| v.name == f.name) else {
                continue;
            };
            if let Ok(profile) = crate::gate::read_profile(&profile_path(dir, &v.sha256)) {
                if let Some((p50, threads)) = fastest_batch1(&profile) {
                    f.host_p50_s = Some(p50);
                    f.host_threads = Some(threads);
                }
            }
        }
        Ok(s)
    }
}

/// Where a build keeps the host profile of the variant with this hash:
/// `work/<sha256[..16]>.profile.json`.
fn profile_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join("work")
        .join(format!("{}.profile.json", &sha256[..sha256.len().min(16)]))
}

/// The end of `build`: write the HTML build report, then print the summary table (target,
/// chosen variant, p50, memory, fits, why) and the report's path to `w`.
pub fn finish(dir: &Path, targets: &[TargetRam], w: &mut dyn std::io::Write) -> Result<()> {
    let html = write_report(dir, targets)?;
    let io = |e| Error::io("standard output", e);
    if let Some(s) = BuildSummary::from_dir(dir)? {
        writeln!(w, "\nbuild summary").map_err(io)?;
        write!(w, "{}", terminal_summary(&s)).map_err(io)?;
    }
    if let Some(p) = html {
        writeln!(w, "report: {}", p.display()).map_err(io)?;
    }
    Ok(())
}

/// Write the HTML build report of a build's output folder, `<dir>/<model>-report.html`, and
/// return its path: the decision, the variants, the fp32 profile's charts (the profile the
/// build left in `work/`), the bundles. `Ok(None)` when there is no build report or the fp32
/// variant was not profiled (nothing to draw).
pub fn write_report(dir: &Path, targets: &[TargetRam]) -> Result<Option<PathBuf>> {
    let Some(report) = BuildReport::find_in(dir)? else {
        return Ok(None);
    };
    let summary = BuildSummary::from_build_dir(dir, &report)?;
    let stem = Path::new(&summary.model)
        .file_stem()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let Some(profile) = fp32_profile(dir, &report)? else {
        return Ok(None);
    };
    let bundles = super::bundles::read_bundle_dir(dir)?;
    let page = super::html::render(&super::html::Inputs {
        profile,
        quantize: None,
        bundles: Some(bundles),
        targets: targets.to_vec(),
        build: Some(summary),
        device_profiles: vec![],
    })?;
    let out = dir.join(format!("{stem}-report.html"));
    crate::artifact::write_atomic(&out, page.as_bytes())?;
    Ok(Some(out))
}

/// The profile of the build's fp32 variant, from `work/<sha256[..16]>.profile.json`.
fn fp32_profile(dir: &Path, report: &BuildReport) -> Result<Option<Profile>> {
    let Some(fp32) = report.variants.iter().find(|v| v.name == "fp32") else {
        return Ok(None);
    };
    if fp32.sha256.is_empty() {
        return Ok(None);
    }
    let p = profile_path(dir, &fp32.sha256);
    if !p.is_file() {
        return Ok(None);
    }
    Ok(Some(crate::gate::read_profile(&p)?))
}

/// The fastest p50 among the configurations at batch 1 (or without a batch), and its threads.
pub fn fastest_batch1(p: &Profile) -> Option<(f64, usize)> {
    p.configs
        .iter()
        .filter(|c| c.status == Status::Ok && c.batch.unwrap_or(1) == 1)
        .filter_map(|c| c.latency.as_ref().map(|l| (l.p50_s, c.threads)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// The short table `build` ends with: per target the chosen variant, its predicted p50 and
/// peak memory, whether it fits, and why it won.
pub fn terminal_summary(s: &BuildSummary) -> String {
    let mut table = crate::table::Table::new(["target", "chosen", "p50", "memory", "fits", "why"])
        .right_aligned([2, 3]);
    for t in &s.targets {
        let e = t.chosen_eval();
        table.row([
            t.name.clone(),
            t.chosen.clone().unwrap_or_else(|| "none".into()),
            format::opt(e.and_then(|e| e.p50_s), format::duration),
            format::opt(e.and_then(|e| e.peak_memory_bytes), |b| {
                format::bytes(b as f64)
            }),
            if e.is_some_and(|e| e.fits) {
                "yes".into()
            } else {
                "no".into()
            },
            s.why(t),
        ]);
    }
    table.render()
}

/// A hand-built summary (three variants, two targets, one misfit), for the report's tests.
#[doc(hidden)]
pub fn sample_summary() -> BuildSummary {
    let eval = |variant: &str,
                fits: bool,
                reason: Option<&str>,
                threads: usize,
                p50: f64,
                mem: u64| {
        serde_json::json!({"variant": variant, "fits": fits, "reasons": reason.into_iter().collect::<Vec<_>>(),
            "notes": [], "threads": threads, "batch": 1, "latency_p50_s": p50,
            "peak_memory_bytes": mem, "basis": null})
    };
    let report: BuildReport = serde_json::from_value(serde_json::json!({
        "schema": super::build_schema::BUILD_SCHEMA, "edgepack_version": "0.0.0",
        "model": "models/det.onnx", "package": "dist/det.edgepkg",
        "latency_budget_s": 0.5, "prefer": "accuracy", "host_compute": null, "profiles": [],
        "variants": [
            {"name": "fp32", "sha256": "aa", "size_bytes": 4_700_000u64, "sqnr_db": null},
            {"name": "fp16", "sha256": "bb", "size_bytes": 2_400_000u64, "sqnr_db": 62.0},
            {"name": "int8", "sha256": "cc", "size_bytes": 1_300_000u64, "sqnr_db": 21.5}],
        "skipped_variants": [{"variant": "int4-weight", "why": "not offered"}],
        "targets": [
            {"target": "pi4", "bundle": null, "size_bytes": null,
             "model_ram_bytes": 2_000_000_000u64, "chosen": "int8", "evaluations": [
                eval("fp32", false, Some("p50 900 ms > budget 500 ms"), 4, 0.9, 200_000_000),
                eval("fp16", false, Some("p50 1.1 s > budget 500 ms"), 4, 1.1, 190_000_000),
                eval("int8", true, None, 4, 0.4, 150_000_000)]},
            {"target": "vm", "bundle": null, "size_bytes": null,
             "model_ram_bytes": 2_000_000_000u64, "chosen": "fp32", "evaluations": [
                eval("fp32", true, None, 2, 0.1, 200_000_000),
                eval("fp16", true, None, 2, 0.12, 190_000_000),
                eval("int8", true, None, 2, 0.05, 150_000_000)]}]}))
    .expect("a build report");
    let mut s = BuildSummary::from_report(&report);
    for (v, p50) in s.variants.iter_mut().zip([0.2, 0.25, 0.09]) {
        v.host_p50_s = Some(p50);
        v.host_threads = Some(2);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_build_report_and_says_why_the_chosen_variant_won() {
        let s = sample_summary();
        assert_eq!(s.latency_budget_s, Some(0.5));
        assert_eq!(s.variants.len(), 3);
        assert_eq!(s.skipped[0].0, "int4-weight");
        let t = &s.targets[0];
        assert_eq!(t.chosen_eval().unwrap().p50_s, Some(0.4));
        assert_eq!(s.why(t), "the only variant that fits; fp32, fp16 do not");
        assert_eq!(s.why(&s.targets[1]), "most accurate of the 3 that fit");
        let table = terminal_summary(&s);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("target"));
        assert!(lines[1].contains("int8") && lines[1].contains("400.000 ms"));
        assert!(lines[1].contains("143.1 MiB") && lines[1].contains("yes"));
    }

    /// The fit matrix (every variant's fit per target) as a build report records it: the
    /// columns in first-seen order, a variant a target did not evaluate left out of its row.
    #[test]
    fn reads_the_fit_matrix_of_a_build_report() {
        let dir = tempfile::tempdir().unwrap();
        let report = serde_json::json!({"schema": "edgepack.build/1", "edgepack_version": "0.1.0",
            "model": "det.onnx", "package": "det.edgepkg", "variants": [],
            "skipped_variants": [], "profiles": [], "prefer": "accuracy", "targets": [
            {"target": "pi4", "model_ram_bytes": 1u64 << 30, "chosen": "int8", "evaluations": [
                {"variant": "fp32", "fits": false, "reasons": ["peak memory 1.2 GB > 1.0 GB"],
                 "notes": [], "latency_p50_s": 0.4, "peak_memory_bytes": 1200000000u64},
                {"variant": "int8", "fits": true, "reasons": [], "notes": [],
                 "latency_p50_s": 0.2}]},
            {"target": "vm", "model_ram_bytes": 1u64 << 30, "chosen": "fp32", "evaluations": [
                {"variant": "fp32", "fits": true, "reasons": [], "notes": []}]}
        ]});
        std::fs::write(dir.path().join("det-build.json"), report.to_string()).unwrap();
        let s = BuildSummary::from_dir(dir.path()).unwrap().unwrap();
        assert_eq!(s.evaluated_variants(), vec!["fp32", "int8"]);
        assert_eq!(s.targets[0].chosen.as_deref(), Some("int8"));
        let fp32 = &s.targets[0].evaluations[0];
        assert!(!fp32.fits);
        assert_eq!(fp32.reasons.len(), 1);
        assert!(!s.targets[1].evaluations.iter().any(|e| e.variant == "int8"));
    }

    #[test]
    fn a_json_that_is_not_a_build_report_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(BuildSummary::from_dir(d.path()).unwrap(), None);
        let p = d.path().join("m-build.json");
        std::fs::write(&p, r#"{"targets": 3}"#).unwrap();
        let e = BuildSummary::from_dir(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("m-build.json") && e.contains("not a build report"),
            "{e}"
        );
        std::fs::write(&p, r#"{"schema": "edgepack.profile/1"}"#).unwrap();
        assert!(BuildSummary::from_dir(d.path()).is_err());
    }
}
