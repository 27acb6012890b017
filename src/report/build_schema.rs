//! The build report's type, `<output>/<name>-build.json`: schema `edgepack.build/1`,
//! described by `schemas/build.schema.json` (a test validates a report against it). Sizes
//! are bytes, times seconds.
//!
//! The type lives here, below the pipeline that writes it (`crate::pipeline`), so that the
//! readers of a build's output folder ([`super::build`], the HTML build report) read it
//! typed; the pipeline fills it from its steps' outcomes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The schema name every build report carries.
pub const BUILD_SCHEMA: &str = "edgepack.build/1";

/// What one build did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildReport {
    /// Always [`BUILD_SCHEMA`].
    pub schema: String,
    pub edgepack_version: String,
    /// The fp32 model built from.
    pub model: String,
    /// The package written (original plus every variant).
    pub package: String,
    /// The package's variants, the original first.
    pub variants: Vec<VariantRecord>,
    /// Modes asked for that produced no variant, and why.
    pub skipped_variants: Vec<SkippedVariant>,
    /// One entry per packaged variant: its host profile, or why there is none.
    pub profiles: Vec<ProfileRecord>,
    /// The figure host latencies were scaled by (absent without profiles).
    pub host_compute: Option<HostCompute>,
    /// The p50 budget every target was judged against (absent without one).
    pub latency_budget_s: Option<f64>,
    /// What decided between variants that fit: `accuracy`, `latency` or `size`.
    pub prefer: String,
    /// One entry per hardware target.
    pub targets: Vec<TargetRecord>,
}

/// A packaged variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantRecord {
    pub name: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// Worst output SQNR against the original, dB (absent for the original and for
    /// variants evaluated on random inputs).
    pub sqnr_db: Option<f64>,
}

/// A variant mode that produced nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedVariant {
    pub variant: String,
    pub why: String,
}

/// Where a variant's host profile came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileSource {
    /// Measured by this build.
    Measured,
    /// A profile of the same model bytes already in the work folder.
    Reused,
    /// Profiling was asked for and failed (see `why`).
    Failed,
    /// Profiling was turned off.
    Skipped,
}

/// A variant's host profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRecord {
    pub variant: String,
    pub source: ProfileSource,
    /// The profile JSON (absent when there is none).
    pub profile: Option<String>,
    /// Why there is no profile.
    pub why: Option<String>,
}

/// The host's compute figure and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostCompute {
    pub relative_compute: f64,
    pub basis: String,
}

/// One target's bundle and the selection behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRecord {
    pub target: String,
    /// The bundle written (absent when no variant fits).
    pub bundle: Option<String>,
    pub size_bytes: Option<u64>,
    /// The RAM share a model may use on the target.
    pub model_ram_bytes: u64,
    /// The chosen variant.
    pub chosen: Option<String>,
    pub evaluations: Vec<EvaluationRecord>,
}

/// One variant judged for one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationRecord {
    pub variant: String,
    pub fits: bool,
    pub reasons: Vec<String>,
    pub notes: Vec<String>,
    pub threads: Option<usize>,
    pub batch: Option<i64>,
    pub latency_p50_s: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    /// The p50's interval, where the figure carries one (fit decisions use its high end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_low_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_high_s: Option<f64>,
    /// The pessimistic end of the peak memory (fit decisions use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_high_bytes: Option<u64>,
    /// Where the latency figure came from (`host p50 x ...`, `measured on target`).
    pub basis: Option<String>,
}

impl BuildReport {
    /// Pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Write the report atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::artifact::write_atomic(path, &self.to_bytes())
    }

    /// The build report of a build's output folder: its `*-build.json`, the first by
    /// name (`Ok(None)` when there is none).
    pub fn find_in(dir: &Path) -> Result<Option<Self>> {
        let mut reports: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with("-build.json"))
            })
            .collect();
        reports.sort();
        reports.first().map(|p| Self::load(p)).transpose()
    }

    /// Read a report back, checking its schema name.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let r: BuildReport = serde_json::from_slice(&bytes)
            .map_err(|e| Error::file(path, format!("not a build report: {e}")))?;
        if r.schema != BUILD_SCHEMA {
            return Err(Error::file(
                path,
                format!("build report schema '{}' is not '{BUILD_SCHEMA}'", r.schema),
            ));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as a real build of a two-variant package for two targets writes it.
    fn sample() -> BuildReport {
        BuildReport {
            schema: BUILD_SCHEMA.into(),
            edgepack_version: env!("CARGO_PKG_VERSION").into(),
            model: "models/cls.onnx".into(),
            package: "dist/cls.edgepkg".into(),
            variants: vec![
                VariantRecord {
                    name: "fp32".into(),
                    sha256: "a".repeat(64),
                    size_bytes: 585_000,
                    sqnr_db: None,
                },
                VariantRecord {
                    name: "int8".into(),
                    sha256: "b".repeat(64),
                    size_bytes: 180_000,
                    sqnr_db: Some(31.5),
                },
            ],
            skipped_variants: vec![SkippedVariant {
                variant: "int4-weight".into(),
                why: "models/cls.onnx: no MatMul with a constant weight to quantize".into(),
            }],
            profiles: vec![
                ProfileRecord {
                    variant: "fp32".into(),
                    source: ProfileSource::Measured,
                    profile: Some("dist/work/aaaa.profile.json".into()),
                    why: None,
                },
                ProfileRecord {
                    variant: "int8".into(),
                    source: ProfileSource::Failed,
                    profile: None,
                    why: Some("no configuration could run (1 failed)".into()),
                },
            ],
            host_compute: Some(HostCompute {
                relative_compute: 4.0,
                basis: "hardware/x86-industrial-pc.toml".into(),
            }),
            latency_budget_s: Some(0.05),
            prefer: "accuracy".into(),
            targets: vec![
                TargetRecord {
                    target: "raspberry-pi-4-4gb".into(),
                    bundle: Some("dist/cls-raspberry-pi-4-4gb.zip".into()),
                    size_bytes: Some(250_000),
                    model_ram_bytes: 2 << 30,
                    chosen: Some("fp32".into()),
                    evaluations: vec![EvaluationRecord {
                        variant: "fp32".into(),
                        fits: true,
                        reasons: vec![],
                        notes: vec![],
                        threads: Some(4),
                        batch: Some(1),
                        latency_p50_s: Some(0.004),
                        peak_memory_bytes: Some(40 << 20),
                        latency_p50_low_s: Some(0.0028),
                        latency_p50_high_s: Some(0.0052),
                        peak_memory_high_bytes: Some(52 << 20),
                        basis: Some("host p50 x 4.00".into()),
                    }],
                },
                TargetRecord {
                    target: "tiny-mcu".into(),
                    bundle: None,
                    size_bytes: None,
                    model_ram_bytes: 64 << 20,
                    chosen: None,
                    evaluations: vec![],
                },
            ],
        }
    }

    #[test]
    fn build_report_matches_its_json_schema() {
        let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/build.schema.json");
        let schema: serde_json::Value =
            serde_json::from_slice(&std::fs::read(schema_path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let instance: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        // Not vacuous: an unknown key, a bad hash and an unknown profile source are caught.
        let mut bad = instance;
        bad["surprise"] = serde_json::json!(1);
        bad["variants"][0]["sha256"] = serde_json::json!("xyz");
        bad["profiles"][0]["source"] = serde_json::json!("guessed");
        assert!(validator.iter_errors(&bad).count() >= 3);
    }

    #[test]
    fn build_report_round_trips_and_checks_its_schema_name() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cls-build.json");
        let r = sample();
        r.write(&p).unwrap();
        assert_eq!(BuildReport::load(&p).unwrap(), r);
        let mut other = r;
        other.schema = "edgepack.build/0".into();
        other.write(&p).unwrap();
        let e = BuildReport::load(&p).unwrap_err().to_string();
        assert!(e.contains("is not 'edgepack.build/1'"), "{e}");
    }
}
