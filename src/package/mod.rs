//! Packages: a model plus everything needed to run it and to trust it.
//!
//! A package (`NAME.edgepkg`, a zip) holds the model (and optionally quantized variants of
//! it), `manifest.json` (I/O contract, execution context, pre/postprocessing, self-test
//! cases, lineage, the sha256 of every file) and optionally an ed25519 signature. See
//! [`manifest`] for the layout and `schemas/manifest.schema.json` for the schema.
//!
//! Packages are reproducible: the creation time is `SOURCE_DATE_EPOCH` or the source
//! model's modification time (never "now"), and [`archive`] writes the same bytes for the
//! same entries, so packaging the same inputs twice gives identical files.

pub mod archive;
pub mod context;
pub mod contract;
pub mod lineage;
pub mod manifest;
pub mod selftest;
pub mod sign;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::setting::Setting;

pub use context::ContextFile;
pub use lineage::LineageSpec;
pub use manifest::{Manifest, MANIFEST_FILE, MANIFEST_SCHEMA, SIGNATURE_FILE};
pub use verify::{check_runs_here, open, verify_bytes, Opened, VerifyReport};

/// The edgepack version written into manifests and transformations.
pub const EDGEPACK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A model variant to put in the package besides the original (`fp32`).
#[derive(Clone, Debug)]
pub struct VariantInput {
    /// `fp16`, `int8`, `int8-weight`, `int4-weight` ...
    pub name: String,
    pub path: PathBuf,
    /// Accuracy against the original (signal-to-quantization-noise ratio, dB).
    pub sqnr_db: Option<f64>,
    /// Parameters of the transformation that produced it.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Session configuration entries the variant needs (from the quantizer's report).
    pub session_config: BTreeMap<String, String>,
}

impl VariantInput {
    /// A variant described by the quantizer's JSON report (`edgepack quantize --report`).
    /// Its accuracy is the worst output SQNR; a report made on random inputs gives no
    /// accuracy at all (the quantizer itself calls those figures meaningless), so an
    /// accuracy floor will not pass such a variant.
    pub fn from_quantizer_report(name: &str, model: &Path, report: &Path) -> Result<Self> {
        let bytes = std::fs::read(report).map_err(|e| Error::io(report, e))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::file(report, format!("not a quantizer report: {e}")))?;
        let outputs = v
            .get("outputs")
            .and_then(|o| o.as_array())
            .ok_or_else(|| Error::file(report, "not a quantizer report (no 'outputs')"))?;
        let random = v
            .get("random_inputs")
            .and_then(|r| r.as_bool())
            .unwrap_or(true);
        let sqnrs: Vec<Option<f64>> = outputs
            .iter()
            .map(|o| o.get("sqnr_db").and_then(|s| s.as_f64()))
            .collect();
        let sqnr_db = if random || sqnrs.is_empty() || sqnrs.iter().any(Option::is_none) {
            None
        } else {
            sqnrs.into_iter().flatten().reduce(f64::min)
        };
        let mut params = BTreeMap::new();
        for key in [
            "mode",
            "variant",
            "method",
            "calibration_samples",
            "eval_samples",
            "random_inputs",
            "accuracy_basis",
        ] {
            if let Some(x) = v.get(key) {
                params.insert(key.to_string(), x.clone());
            }
        }
        if let Some(n) = v.get("quantized_nodes").and_then(|q| q.as_array()) {
            params.insert("quantized_nodes".into(), serde_json::json!(n.len()));
        }
        if let Some(p) = v.get("preparation") {
            params.insert("preparation".into(), p.clone());
        }
        // The worst figure of each task metric (CER, mask IoU, top-1, min cosine), which
        // bundle selection judges a package's declared task by; none from random inputs.
        let figures = crate::quantize::task::worst_figures(outputs);
        if !random && !figures.is_empty() {
            params.insert("task_figures".into(), serde_json::json!(figures));
        }
        let session_config = match v.get("session_config") {
            None => BTreeMap::new(),
            Some(c) => serde_json::from_value(c.clone()).map_err(|e| {
                Error::file(
                    report,
                    format!("'session_config' is not a map of strings: {e}"),
                )
            })?,
        };
        Ok(VariantInput {
            name: name.to_string(),
            path: model.to_path_buf(),
            sqnr_db,
            params,
            session_config,
        })
    }
}

/// Everything `edgepack package` needs besides the model.
#[derive(Default)]
pub struct PackageOptions {
    /// Package name (default: the model's file stem).
    pub name: Option<String>,
    pub context: Option<ContextFile>,
    /// Labels file (one label per line).
    pub labels: Option<PathBuf>,
    pub sample_inputs: Option<PathBuf>,
    pub lineage: Vec<LineageSpec>,
    pub variants: Vec<VariantInput>,
    pub sign: Option<ed25519_dalek::SigningKey>,
    /// Computes expected outputs for sample inputs that come without them.
    pub runner: Option<Box<dyn selftest::Runner>>,
    /// Without `sample_inputs`: make one self-test case from inputs generated from the
    /// model's signature (what `build` does, so its packages and bundles always carry one).
    pub generated_self_test: Option<selftest::GeneratedInputs>,
    /// Creation time override (seconds since 1970).
    pub created_unix_s: Option<u64>,
}

/// Where a package's creation time comes from: `SOURCE_DATE_EPOCH`, else the model's mtime.
pub fn creation_time(model_path: &Path, explicit: Option<u64>) -> Result<(u64, String)> {
    if let Some(t) = explicit {
        return Ok((t, "explicit".into()));
    }
    if let Some(t) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        return Ok((t, "SOURCE_DATE_EPOCH".into()));
    }
    let meta = std::fs::metadata(model_path).map_err(|e| Error::io(model_path, e))?;
    let t = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok((t, "model mtime".into()))
}

/// The archive path of a variant's model.
pub fn variant_path(variant: &str) -> String {
    format!("components/model/{variant}/model.onnx")
}

fn variant_entry(
    name: &str,
    bytes: &[u8],
    model: &Model,
    ctx: &manifest::ExecutionContext,
) -> manifest::Variant {
    manifest::Variant {
        name: name.to_string(),
        path: variant_path(name),
        sha256: sha256_hex(bytes),
        size_bytes: bytes.len() as u64,
        execution_providers: ctx
            .execution_providers
            .iter()
            .map(|p| p.name().to_string())
            .collect(),
        device: "cpu".into(),
        opsets: contract::opsets(&model.proto),
        ir_version: model.proto.ir_version.unwrap_or(0),
        producer: model.proto.producer_name.clone(),
        sqnr_db: None,
        session_config: BTreeMap::new(),
        transformations: vec![],
    }
}

/// Fill `files` from the entries (everything except the manifest and its signature).
pub fn file_list(entries: &BTreeMap<String, Vec<u8>>) -> Vec<manifest::FileEntry> {
    entries
        .iter()
        .filter(|(n, _)| n.as_str() != MANIFEST_FILE && n.as_str() != SIGNATURE_FILE)
        .map(|(n, b)| manifest::FileEntry {
            path: n.clone(),
            sha256: sha256_hex(b),
            size_bytes: b.len() as u64,
        })
        .collect()
}

/// Finish an archive: list the files, add the manifest (and signature), return the entries.
pub fn seal(
    mut manifest: Manifest,
    mut entries: BTreeMap<String, Vec<u8>>,
    key: Option<&ed25519_dalek::SigningKey>,
) -> (Manifest, BTreeMap<String, Vec<u8>>) {
    entries.remove(MANIFEST_FILE);
    entries.remove(SIGNATURE_FILE);
    manifest.files = file_list(&entries);
    let bytes = manifest.to_bytes();
    if let Some(k) = key {
        entries.insert(SIGNATURE_FILE.into(), sign::sign(k, &bytes).to_bytes());
    }
    entries.insert(MANIFEST_FILE.into(), bytes);
    (manifest, entries)
}

/// Build a package in memory: the manifest and the archive entries.
pub fn build(
    model_path: &Path,
    opts: &PackageOptions,
) -> Result<(Manifest, BTreeMap<String, Vec<u8>>)> {
    let model = Model::load(model_path)?;
    // External data (confined to the model's folder by the loader) is inlined: a package
    // is one self-contained model file, and no attacker-chosen `location` survives into it.
    let file_bytes = std::fs::read(model_path).map_err(|e| Error::io(model_path, e))?;
    let source_sha = sha256_hex(&file_bytes);
    let inlined = crate::model::external::has_external(&model.proto);
    let model_bytes = if inlined {
        let mut m = model.clone();
        m.load_external_data()?;
        let b = m.to_bytes();
        if b.len() as u64 >= crate::model::MAX_MODEL_BYTES {
            return Err(Error::file(
                model_path,
                "with its external data inlined the model is over the 2 GiB protobuf limit; it cannot be packaged as one file",
            ));
        }
        b
    } else {
        file_bytes
    };
    let contract = contract::contract(&model.proto);
    if contract.inputs.is_empty() {
        return Err(Error::file(model_path, "the model declares no inputs"));
    }
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => model_path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "model".into()),
    };
    let ctxf = opts.context.clone().unwrap_or_default();
    let (execution, preprocessing, mut postprocessing) = ctxf.resolve(&contract)?;
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();

    // Labels.
    if let Some(lp) = &opts.labels {
        let text = std::fs::read_to_string(lp).map_err(|e| Error::io(lp, e))?;
        if text.lines().all(|l| l.trim().is_empty()) {
            return Err(Error::file(lp, "labels file is empty"));
        }
        let post = match postprocessing.take() {
            Some(p) => p,
            None if contract.outputs.len() == 1 => manifest::Postprocessing {
                output: contract.outputs[0].name.clone(),
                softmax: false,
                argmax: true,
                top_k: None,
                labels: None,
                task: None,
            },
            None => {
                return Err(Error::usage(
                    Setting::Labels,
                    "the model has several outputs; name the one the labels apply to in the context file's [postprocessing] output",
                ))
            }
        };
        postprocessing = Some(manifest::Postprocessing {
            labels: Some("labels.txt".into()),
            ..post
        });
        entries.insert("labels.txt".into(), text.into_bytes());
    }

    // The original model and its variants.
    let mut variants = vec![variant_entry("fp32", &model_bytes, &model, &execution)];
    entries.insert(variant_path("fp32"), model_bytes.clone());
    let fp32_sha = variants[0].sha256.clone();
    for v in &opts.variants {
        if !v
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || v.name.is_empty()
        {
            return Err(Error::usage(
                Setting::Variant,
                format!("'{}': names are a-z, 0-9, '-', '_'", v.name),
            ));
        }
        if entries.contains_key(&variant_path(&v.name)) {
            return Err(Error::usage(
                Setting::Variant,
                format!("variant '{}' given twice", v.name),
            ));
        }
        let vm = Model::load(&v.path)?;
        let vc = contract::contract(&vm.proto);
        if vc
            .inputs
            .iter()
            .map(|i| &i.name)
            .ne(contract.inputs.iter().map(|i| &i.name))
            || vc
                .outputs
                .iter()
                .map(|i| &i.name)
                .ne(contract.outputs.iter().map(|i| &i.name))
        {
            return Err(Error::file(
                &v.path,
                "variant's inputs/outputs differ from the model's",
            ));
        }
        let vb = std::fs::read(&v.path).map_err(|e| Error::io(&v.path, e))?;
        let mut entry = variant_entry(&v.name, &vb, &vm, &execution);
        entry.sqnr_db = v.sqnr_db;
        entry.session_config = v.session_config.clone();
        // What the variant records about itself counts too (`model::metadata`).
        for (k, val) in crate::model::metadata::session_entries(&vm.proto) {
            entry.session_config.entry(k).or_insert(val);
        }
        entry.transformations.push(manifest::Transformation {
            name: format!("quantize:{}", v.name),
            params: v.params.clone(),
            edgepack_version: EDGEPACK_VERSION.into(),
            input_sha256: Some(fp32_sha.clone()),
            output_sha256: Some(entry.sha256.clone()),
        });
        entries.insert(variant_path(&v.name), vb);
        variants.push(entry);
    }

    // Self-test cases.
    let mut self_test = vec![];
    let (samples, origin) = match (&opts.sample_inputs, &opts.generated_self_test) {
        (Some(dir), _) => (
            selftest::read_samples(dir, &contract)?,
            dir.display().to_string(),
        ),
        (None, Some(gen)) => (
            vec![selftest::generated_case(&model, gen)?],
            format!("inputs generated from the signature (seed {})", gen.seed),
        ),
        (None, None) => (Vec::new(), String::new()),
    };
    {
        for case in samples {
            let (expected, produced_by) = match case.expected {
                Some(e) => (e, "provided with the sample inputs".to_string()),
                None => match &opts.runner {
                    Some(r) => {
                        let (e, by) = r.run(&model_bytes, &execution, &case.inputs)?;
                        if opts.sample_inputs.is_none() {
                            (e, format!("{by}, on {origin}"))
                        } else {
                            (e, by)
                        }
                    }
                    None => {
                        return Err(Error::usage(
                            Setting::SampleInputs,
                            format!(
                                "{origin}: no expected outputs given (put them in an 'expected/' folder) and no runtime to compute them"
                            ),
                        ))
                    }
                },
            };
            let mut inputs = BTreeMap::new();
            let mut taken = std::collections::BTreeSet::new();
            for (n, b) in case.inputs {
                let p = format!(
                    "self-test/{}/inputs/{}",
                    case.name,
                    selftest::tensor_file_name(&n, &mut taken)
                );
                inputs.insert(n, p.clone());
                entries.insert(p, b);
            }
            let mut exp = BTreeMap::new();
            let mut taken = std::collections::BTreeSet::new();
            for (n, b) in expected {
                let p = format!(
                    "self-test/{}/expected/{}",
                    case.name,
                    selftest::tensor_file_name(&n, &mut taken)
                );
                exp.insert(n, p.clone());
                entries.insert(p, b);
            }
            self_test.push(manifest::SelfTestCase {
                name: case.name,
                inputs,
                expected: exp,
                produced_by,
                // fp32 re-runs on another CPU differ by kernel choice and summation order;
                // 1e-4 absolute + 1e-3 relative covers that, not a real change.
                tolerance: manifest::Tolerance {
                    abs: 1e-4,
                    rel: 1e-3,
                },
            });
        }
    }

    // Lineage: the source model defaults to the file packaged.
    let mut lin = lineage::build(&opts.lineage)?;
    if lin.source_model.is_none() {
        lin.source_model = Some(manifest::Artifact {
            name: model_path
                .file_name()
                .map(|n| n.to_string_lossy().to_string()),
            uri: format!("file:{}", model_path.display()),
            sha256: Some(source_sha.clone()),
        });
    }
    let mut params = BTreeMap::new();
    params.insert("inlined_external_data".into(), serde_json::json!(inlined));
    params.insert(
        "variants".into(),
        serde_json::json!(variants.iter().map(|v| v.name.clone()).collect::<Vec<_>>()),
    );
    params.insert("self_test_cases".into(), serde_json::json!(self_test.len()));
    lin.transformations.push(manifest::Transformation {
        name: "package".into(),
        params,
        edgepack_version: EDGEPACK_VERSION.into(),
        input_sha256: Some(source_sha),
        output_sha256: Some(fp32_sha),
    });

    let (created, created_from) = creation_time(model_path, opts.created_unix_s)?;
    let m = Manifest {
        schema: MANIFEST_SCHEMA.into(),
        kind: manifest::Kind::Package,
        name,
        edgepack_version: EDGEPACK_VERSION.into(),
        created_unix_s: created,
        created_from,
        components: vec![manifest::Component {
            name: "model".into(),
            variants,
        }],
        contract,
        execution,
        preprocessing,
        postprocessing,
        self_test,
        lineage: lin,
        target: None,
        runtime: None,
        device_binary: None,
        files: vec![],
    };
    Ok(seal(m, entries, opts.sign.as_ref()))
}

/// Build a package and write it atomically to `out`.
pub fn write(model_path: &Path, opts: &PackageOptions, out: &Path) -> Result<Manifest> {
    let (m, entries) = build(model_path, opts)?;
    archive::write_zip_file(out, &entries)?;
    Ok(m)
}

#[cfg(test)]
pub(crate) mod tests;

impl Opened {
    /// The model to run from a verified archive: a bundle's single (chosen) variant, or a
    /// package's original (`fp32`). For `run BUNDLE` and `profile BUNDLE`, which should
    /// also call [`check_runs_here`] and may run [`selftest::run_cases`] first.
    pub fn runnable(&self) -> Result<(&manifest::Variant, &[u8])> {
        let m = &self.manifest;
        let v = match m.kind {
            manifest::Kind::Bundle => m.components.first().and_then(|c| c.variants.first()),
            manifest::Kind::Package => m.variant("fp32"),
        }
        .ok_or_else(|| Error::usage("archive", format!("'{}' has no runnable variant", m.name)))?;
        let bytes = self
            .archive
            .entries
            .get(&v.path)
            .ok_or_else(|| Error::usage("archive", format!("'{}' is missing", v.path)))?;
        Ok((v, bytes.as_slice()))
    }
}
