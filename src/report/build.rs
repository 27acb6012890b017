//! What a build decided, as plain data for the HTML build report and the terminal summary:
//! per target the chosen variant and every variant's fit, and per variant its accuracy,
//! size and speed on this host.
//!
//! [`BuildSummary`] is filled today from the files `edgepack build` leaves in its output
//! folder (`<name>-build.json`, and in `work/` the quantizer's reports and the profiles);
//! a typed build pipeline can fill it directly. Only the fields named here are read, so the
//! report does not break when those files grow.

use std::path::{Path, PathBuf};

use serde_json::Value;

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

    /// The variant's facts by name.
    pub fn variant(&self, name: &str) -> Option<&VariantFacts> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// Read a build's output folder: its `*-build.json` (the first by name), the quantizer
    /// reports and profiles it left in `work/`, and the targets' model RAM from `targets`
    /// when the build report does not carry it. `Ok(None)` when there is no build report.
    pub fn from_dir(dir: &Path, targets: &[TargetRam]) -> Result<Option<BuildSummary>> {
        let mut reports: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with("-build.json"))
            })
            .collect();
        reports.sort();
        let Some(path) = reports.first() else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::file(path, format!("not valid JSON: {e}")))?;
        let mut s = from_json(&v)
            .ok_or_else(|| Error::file(path, "a build report without targets[].evaluations[]"))?;
        for t in &mut s.targets {
            if t.model_ram_bytes.is_none() {
                t.model_ram_bytes = targets
                    .iter()
                    .find(|r| r.name == t.name)
                    .map(|r| r.model_ram_bytes.unwrap_or(r.ram_bytes));
            }
        }
        let work = dir.join("work");
        let stem = Path::new(&s.model)
            .file_stem()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_default();
        let shas: Vec<(String, String)> = v
            .get("variants")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        Some((
                            x.get("name")?.as_str()?.to_string(),
                            x.get("sha256")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for f in &mut s.variants {
            let q = work.join(format!("{stem}.{}.quantize.json", f.name));
            if q.is_file() {
                f.quantize = Some(QuantizeSummary::from_path(&q)?);
            }
            if let Some((_, sha)) = shas.iter().find(|(n, _)| *n == f.name) {
                let p = work.join(format!("{}.profile.json", &sha[..sha.len().min(16)]));
                if let Ok(profile) = crate::gate::read_profile(&p) {
                    if let Some((p50, threads)) = fastest_batch1(&profile) {
                        f.host_p50_s = Some(p50);
                        f.host_threads = Some(threads);
                    }
                }
            }
        }
        Ok(Some(s))
    }
}

/// The end of `build`: write the HTML build report, then print the summary table (target,
/// chosen variant, p50, memory, fits, why) and the report's path to `w`.
pub fn finish(dir: &Path, targets: &[TargetRam], w: &mut dyn std::io::Write) -> Result<()> {
    let html = write_report(dir, targets)?;
    let io = |e| Error::io("standard output", e);
    if let Some(s) = BuildSummary::from_dir(dir, targets)? {
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
    let Some(summary) = BuildSummary::from_dir(dir, targets)? else {
        return Ok(None);
    };
    let stem = Path::new(&summary.model)
        .file_stem()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let Some(profile) = fp32_profile(dir)? else {
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
fn fp32_profile(dir: &Path) -> Result<Option<Profile>> {
    let mut reports: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("-build.json"))
        })
        .collect();
    reports.sort();
    let Some(path) = reports.first() else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::file(path, format!("not valid JSON: {e}")))?;
    let sha = v
        .get("variants")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|x| x.get("name").and_then(Value::as_str) == Some("fp32"))
        })
        .and_then(|x| x.get("sha256"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if sha.is_empty() {
        return Ok(None);
    }
    let p = dir
        .join("work")
        .join(format!("{}.profile.json", &sha[..sha.len().min(16)]));
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

/// The summary of a build report (`edgepack build`'s `<name>-build.json`), without the
/// files it points to; `None` when the JSON is not a build report.
pub fn from_json(v: &Value) -> Option<BuildSummary> {
    let mut s = BuildSummary {
        model: v.get("model").and_then(Value::as_str).unwrap_or("").into(),
        latency_budget_s: v.get("latency_budget_s").and_then(Value::as_f64),
        prefer: v
            .get("prefer")
            .and_then(Value::as_str)
            .unwrap_or("accuracy")
            .into(),
        ..Default::default()
    };
    for x in v
        .get("variants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        s.variants.push(VariantFacts {
            name: x.get("name")?.as_str()?.into(),
            size_bytes: x.get("size_bytes").and_then(Value::as_u64).unwrap_or(0),
            sqnr_db: x.get("sqnr_db").and_then(Value::as_f64),
            ..Default::default()
        });
    }
    for x in v
        .get("skipped_variants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(n), Some(w)) = (
            x.get("variant").and_then(Value::as_str),
            x.get("why").and_then(Value::as_str),
        ) {
            s.skipped.push((n.into(), w.into()));
        }
    }
    for t in v.get("targets")?.as_array()? {
        let mut d = TargetDecision {
            name: t.get("target")?.as_str()?.into(),
            model_ram_bytes: t.get("model_ram_bytes").and_then(Value::as_u64),
            chosen: t.get("chosen").and_then(Value::as_str).map(str::to_string),
            evaluations: vec![],
        };
        for e in t.get("evaluations")?.as_array()? {
            d.evaluations.push(Evaluation {
                variant: e.get("variant")?.as_str()?.into(),
                fits: e.get("fits")?.as_bool()?,
                reasons: e
                    .get("reasons")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                threads: e.get("threads").and_then(Value::as_u64),
                batch: e.get("batch").and_then(Value::as_i64),
                p50_s: e.get("latency_p50_s").and_then(Value::as_f64),
                peak_memory_bytes: e.get("peak_memory_bytes").and_then(Value::as_u64),
                basis: e.get("basis").and_then(Value::as_str).map(str::to_string),
            });
        }
        s.targets.push(d);
    }
    (!s.targets.is_empty()).then_some(s)
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
    let mut s = from_json(&serde_json::json!({"model": "models/det.onnx",
        "latency_budget_s": 0.5, "prefer": "accuracy",
        "variants": [
            {"name": "fp32", "size_bytes": 4_700_000u64, "sqnr_db": null},
            {"name": "fp16", "size_bytes": 2_400_000u64, "sqnr_db": 62.0},
            {"name": "int8", "size_bytes": 1_300_000u64, "sqnr_db": 21.5}],
        "skipped_variants": [{"variant": "int4-weight", "why": "not offered"}],
        "targets": [
            {"target": "pi4", "model_ram_bytes": 2_000_000_000u64, "chosen": "int8", "evaluations": [
                {"variant": "fp32", "fits": false, "reasons": ["p50 900 ms > budget 500 ms"],
                 "threads": 4, "batch": 1, "latency_p50_s": 0.9, "peak_memory_bytes": 200_000_000u64},
                {"variant": "fp16", "fits": false, "reasons": ["p50 1.1 s > budget 500 ms"],
                 "threads": 4, "batch": 1, "latency_p50_s": 1.1, "peak_memory_bytes": 190_000_000u64},
                {"variant": "int8", "fits": true, "reasons": [], "threads": 4, "batch": 1,
                 "latency_p50_s": 0.4, "peak_memory_bytes": 150_000_000u64}]},
            {"target": "vm", "model_ram_bytes": 2_000_000_000u64, "chosen": "fp32", "evaluations": [
                {"variant": "fp32", "fits": true, "reasons": [], "threads": 2, "batch": 1,
                 "latency_p50_s": 0.1, "peak_memory_bytes": 200_000_000u64},
                {"variant": "fp16", "fits": true, "reasons": [], "threads": 2, "batch": 1,
                 "latency_p50_s": 0.12, "peak_memory_bytes": 190_000_000u64},
                {"variant": "int8", "fits": true, "reasons": [], "threads": 2, "batch": 1,
                 "latency_p50_s": 0.05, "peak_memory_bytes": 150_000_000u64}]}]}))
    .expect("a build report");
    for (v, p50) in s.variants.iter_mut().zip([0.2, 0.25, 0.09]) {
        v.host_p50_s = Some(p50);
        v.host_threads = Some(2);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({"model": "models/det.onnx", "latency_budget_s": 0.5, "prefer": "accuracy",
            "variants": [
                {"name": "fp32", "sha256": "aa", "size_bytes": 4_700_000u64, "sqnr_db": null},
                {"name": "int8", "sha256": "bb", "size_bytes": 1_300_000u64, "sqnr_db": 21.5}],
            "skipped_variants": [{"variant": "int4-weight", "why": "not offered"}],
            "targets": [
                {"target": "pi4", "model_ram_bytes": 2_000_000_000u64, "chosen": "int8", "evaluations": [
                    {"variant": "fp32", "fits": false, "reasons": ["p50 0.9 s > budget 0.5 s"],
                     "threads": 4, "batch": 1, "latency_p50_s": 0.9, "peak_memory_bytes": 200_000_000u64,
                     "basis": "host scaled"},
                    {"variant": "int8", "fits": true, "reasons": [], "threads": 4, "batch": 1,
                     "latency_p50_s": 0.4, "peak_memory_bytes": 150_000_000u64, "basis": "host scaled"}]}]})
    }

    #[test]
    fn reads_a_build_report_and_says_why_the_chosen_variant_won() {
        let s = from_json(&sample()).unwrap();
        assert_eq!(s.latency_budget_s, Some(0.5));
        assert_eq!(s.variants.len(), 2);
        assert_eq!(s.skipped[0].0, "int4-weight");
        let t = &s.targets[0];
        assert_eq!(t.chosen_eval().unwrap().p50_s, Some(0.4));
        assert_eq!(s.why(t), "the only variant that fits; fp32 does not");
        let table = terminal_summary(&s);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("target"));
        assert!(lines[1].contains("int8") && lines[1].contains("400.000 ms"));
        assert!(lines[1].contains("143.1 MiB") && lines[1].contains("yes"));
    }

    #[test]
    fn a_json_that_is_not_a_build_report_gives_none() {
        assert!(from_json(&json!({"targets": 3})).is_none());
        assert!(from_json(&json!({"schema": "edgepack.profile/1"})).is_none());
    }
}
