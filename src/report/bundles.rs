//! What a `dist/` folder says about each target: the chosen variant and the predictions
//! written in each bundle's `manifest.json` (`target.prediction`). Only those fields are
//! read, so the report does not break when the manifests grow. Every variant's fit per
//! target (the fit matrix), when `edgepack build` left its `<name>-build.json` there, is
//! the build's decision: [`super::build::BuildSummary`].

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::setting::Setting;

/// Largest manifest we are willing to read from an archive.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// One bundle: its target, chosen variant and predictions there.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BundleRow {
    pub file: String,
    pub target: String,
    pub variant: String,
    pub threads: Option<u64>,
    pub batch: Option<i64>,
    pub latency_p50_s: Option<f64>,
    pub latency_p95_s: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    pub bundle_size_bytes_max: Option<u64>,
    pub accuracy_sqnr_db: Option<f64>,
    /// The SQNR was judged on the calibration samples (the variant's quantize step in the
    /// manifest says `accuracy_basis: in_sample`).
    pub accuracy_in_sample: bool,
    pub basis: Option<String>,
    /// The bundled variant's model sha256 (what a profile of it names).
    pub model_sha256: Option<String>,
}

/// Everything read from a bundle folder.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BundleDir {
    pub rows: Vec<BundleRow>,
}

/// Read a bundle folder: every bundle (`*.zip` or a folder with `manifest.json`), sorted by
/// name. Other files are skipped (a build's `*-build.json`, with every variant's fit per
/// target, is read as a [`super::build::BuildSummary`]); a bundle whose manifest is
/// unreadable is an error naming it.
pub fn read_bundle_dir(dir: &Path) -> Result<BundleDir> {
    Ok(BundleDir {
        rows: read_dir(dir)?,
    })
}

/// Read every bundle (`*.zip` or a folder with `manifest.json`) in `dir`, sorted by name.
/// Files that are not bundles are skipped; a bundle whose manifest is unreadable is an error.
pub fn read_dir(dir: &Path) -> Result<Vec<BundleRow>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut rows = Vec::new();
    for p in entries {
        let manifest = if p.is_dir() && p.join("manifest.json").is_file() {
            let m = p.join("manifest.json");
            std::fs::read(&m).map_err(|e| Error::io(&m, e))?
        } else if p.extension().is_some_and(|x| x == "zip") {
            read_zip_manifest(&p)?
        } else {
            continue;
        };
        let v: Value = serde_json::from_slice(&manifest)
            .map_err(|e| Error::file(&p, format!("manifest.json is not valid JSON: {e}")))?;
        if let Some(row) = row_from_manifest(&v, &p) {
            rows.push(row);
        }
    }
    Ok(rows)
}

fn read_zip_manifest(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut z = zip::ZipArchive::new(f)
        .map_err(|e| Error::file(path, format!("not a readable zip: {e}")))?;
    let entry = z
        .by_name("manifest.json")
        .map_err(|_| Error::file(path, "bundle has no manifest.json"))?;
    let mut buf = Vec::new();
    entry
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    if buf.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(Error::file(path, "manifest.json is larger than 16 MiB"));
    }
    Ok(buf)
}

/// The bundle's target row, or `None` for a package (no `target`).
pub fn row_from_manifest(v: &Value, path: &Path) -> Option<BundleRow> {
    let t = v.get("target")?;
    let p = t.get("prediction");
    let f = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_f64);
    let u = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_u64);
    Some(BundleRow {
        file: path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        target: t.get("name").and_then(Value::as_str).unwrap_or("?").into(),
        variant: t
            .get("variant")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .into(),
        threads: u("threads"),
        batch: p.and_then(|p| p.get("batch")).and_then(Value::as_i64),
        latency_p50_s: f("latency_p50_s"),
        latency_p95_s: f("latency_p95_s"),
        peak_memory_bytes: u("peak_memory_bytes"),
        bundle_size_bytes_max: u("bundle_size_bytes_max"),
        accuracy_sqnr_db: f("accuracy_sqnr_db"),
        accuracy_in_sample: variant_of(v).is_some_and(|var| {
            var.get("transformations")
                .and_then(Value::as_array)
                .is_some_and(|ts| {
                    ts.iter().any(|t| {
                        t.pointer("/params/accuracy_basis").and_then(Value::as_str)
                            == Some("in_sample")
                    })
                })
        }),
        model_sha256: variant_of(v)
            .and_then(|var| var.get("sha256"))
            .and_then(Value::as_str)
            .map(str::to_string),
        basis: p
            .and_then(|p| p.get("basis"))
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// A bundle's prediction beside what a profile measured on the target itself, at the
/// same thread count and batch (issue 13: the report shows predicted against measured
/// wherever both exist).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PredictedMeasured {
    pub target: String,
    pub variant: String,
    pub threads: Option<u64>,
    pub batch: Option<i64>,
    pub predicted_p50_s: Option<f64>,
    pub measured_p50_s: Option<f64>,
    pub predicted_peak_memory_bytes: Option<u64>,
    pub measured_peak_memory_bytes: Option<u64>,
    /// How the bundle's figures were made (the manifest's `basis`).
    pub basis: Option<String>,
    /// Why a figure is missing, or that the prediction already was this measurement.
    pub note: Option<String>,
}

impl PredictedMeasured {
    /// (predicted - measured) / measured of the p50.
    pub fn p50_error(&self) -> Option<f64> {
        relative_error(self.predicted_p50_s?, self.measured_p50_s?)
    }

    /// (predicted - measured) / measured of the peak memory.
    pub fn peak_memory_error(&self) -> Option<f64> {
        relative_error(
            self.predicted_peak_memory_bytes? as f64,
            self.measured_peak_memory_bytes? as f64,
        )
    }
}

fn relative_error(predicted: f64, measured: f64) -> Option<f64> {
    (measured > 0.0).then(|| (predicted - measured) / measured)
}

/// Each bundle whose target has a device profile (`(target name, profile measured on
/// it)`), its prediction beside the measurement at the bundle's threads and batch. A
/// profile is matched to a bundle by target name and, where both name one, by the model's
/// sha256 (a profile of another model measures something else). Thread count 0 in a
/// profile is ONNX Runtime's default, one per physical core of the device, as the
/// bundler reads it.
pub fn predicted_vs_measured(
    rows: &[BundleRow],
    device: &[(String, crate::profile::schema::Profile)],
) -> Vec<PredictedMeasured> {
    use crate::profile::schema::Status;
    let mut out = vec![];
    for r in rows {
        let Some((_, p)) = device.iter().find(|(t, p)| {
            t == &r.target
                && r.model_sha256
                    .as_ref()
                    .is_none_or(|sha| sha == &p.model.sha256)
        }) else {
            continue;
        };
        let default_threads = p.host.physical_cores.unwrap_or(p.host.logical_cores).max(1) as u64;
        let measured = p.configs.iter().find(|c| {
            c.status == Status::Ok
                && c.ep_requested == "cpu"
                && Some(if c.threads == 0 {
                    default_threads
                } else {
                    c.threads as u64
                }) == r.threads
                && Some(c.batch.unwrap_or(1).max(1)) == r.batch
        });
        let already = r
            .basis
            .as_deref()
            .is_some_and(|b| b.starts_with("measured"));
        let note = match (measured, already) {
            (_, true) => Some(format!(
                "the bundle's figures are this device's measurement (given to bundle with {}), not a prediction",
                Setting::DeviceProfile
            )),
            (None, _) => Some(format!(
                "the device profile has no configuration at {} thread(s), batch {}",
                r.threads.map_or("?".into(), |t| t.to_string()),
                r.batch.map_or("?".into(), |b| b.to_string())
            )),
            _ => None,
        };
        out.push(PredictedMeasured {
            target: r.target.clone(),
            variant: r.variant.clone(),
            threads: r.threads,
            batch: r.batch,
            predicted_p50_s: r.latency_p50_s,
            measured_p50_s: measured.and_then(|c| c.latency.as_ref().map(|l| l.p50_s)),
            predicted_peak_memory_bytes: r.peak_memory_bytes,
            measured_peak_memory_bytes: measured.and_then(|c| {
                c.memory.as_ref().map(|m| {
                    // As the bundler counts a measured peak: session creation included.
                    m.peak_rss_bytes
                        .max(m.peak_rss_session_create_bytes.unwrap_or(0))
                })
            }),
            basis: r.basis.clone(),
            note,
        });
    }
    out
}

/// The bundle's one variant (`components[0].variants[0]`).
fn variant_of(v: &Value) -> Option<&Value> {
    v.pointer("/components/0/variants/0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    #[test]
    fn reads_target_and_prediction_from_zip_and_folder_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = json!({
            "schema": "edgepack.manifest/1", "kind": "bundle",
            "target": {"name": "raspberry-pi-4-4gb", "arch": "aarch64", "variant": "int8",
                "prediction": {"threads": 4, "batch": 1, "latency_p50_s": 0.12,
                    "peak_memory_bytes": 180000000u64, "bundle_size_bytes_max": 3000000u64,
                    "basis": "scaled from host"}}
        });
        let zpath = dir.path().join("det-pi.zip");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
        z.start_file("manifest.json", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(manifest.to_string().as_bytes()).unwrap();
        z.finish().unwrap();
        let folder = dir.path().join("det-vm");
        std::fs::create_dir(&folder).unwrap();
        let mut m2 = manifest.clone();
        m2["target"]["name"] = "cloud-vm".into();
        std::fs::write(folder.join("manifest.json"), m2.to_string()).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a bundle").unwrap();

        let rows = read_dir(dir.path()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].target, "raspberry-pi-4-4gb");
        assert_eq!(rows[0].variant, "int8");
        assert_eq!(rows[0].threads, Some(4));
        assert_eq!(rows[0].peak_memory_bytes, Some(180_000_000));
        assert_eq!(rows[1].target, "cloud-vm");
    }

    /// A device profile at the bundle's threads and batch gives the measured figures
    /// beside the prediction; another model's profile, or one without that
    /// configuration, says so instead of comparing unlike things.
    #[test]
    fn pairs_each_prediction_with_the_device_measurement_at_its_configuration() {
        let mut device = crate::report::fixture::sample_profile();
        device.model.sha256 = "ab".repeat(32);
        let row = BundleRow {
            target: "pi4".into(),
            variant: "int8".into(),
            threads: Some(2),
            batch: Some(4),
            latency_p50_s: Some(0.0150),
            peak_memory_bytes: Some(300_000_000),
            basis: Some("device profile pi4.json (cost model)".into()),
            model_sha256: Some("ab".repeat(32)),
            ..Default::default()
        };
        let pm = predicted_vs_measured(
            std::slice::from_ref(&row),
            &[("pi4".into(), device.clone())],
        );
        assert_eq!(pm.len(), 1);
        // The fixture measures threads 2, batch 4 at 0.004 + 0.0062*4/2*0.8 s.
        let measured = 0.004 + 0.0062 * 4.0 / 2.0 * 0.8;
        assert_eq!(pm[0].measured_p50_s, Some(measured));
        assert!((pm[0].p50_error().unwrap() - (0.015 - measured) / measured).abs() < 1e-12);
        assert_eq!(
            pm[0].measured_peak_memory_bytes,
            Some(110_000_000 + 45_000_000 * 4)
        );
        assert!(pm[0].note.is_none());
        // Another target, another model: nothing to compare.
        assert!(predicted_vs_measured(
            std::slice::from_ref(&row),
            &[("vm".into(), device.clone())]
        )
        .is_empty());
        let other = BundleRow {
            model_sha256: Some("cd".repeat(32)),
            ..row.clone()
        };
        assert!(predicted_vs_measured(&[other], &[("pi4".into(), device.clone())]).is_empty());
        // A configuration the device profile lacks, and a bundle already measured there.
        let b16 = BundleRow {
            batch: Some(16),
            ..row.clone()
        };
        let pm = predicted_vs_measured(&[b16], &[("pi4".into(), device.clone())]);
        assert!(pm[0].measured_p50_s.is_none());
        assert!(pm[0].note.as_deref().unwrap().contains("batch 16"));
        let measured_row = BundleRow {
            basis: Some("measured on target".into()),
            ..row
        };
        let pm = predicted_vs_measured(&[measured_row], &[("pi4".into(), device)]);
        assert!(pm[0].note.as_deref().unwrap().contains("not a prediction"));
    }

    #[test]
    fn a_zip_without_manifest_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let zpath = dir.path().join("bad.zip");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
        z.start_file("model.onnx", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.finish().unwrap();
        let e = read_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("bad.zip"), "{e}");
        assert!(e.to_string().contains("manifest.json"), "{e}");
    }
}
