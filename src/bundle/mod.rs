//! Bundles: a package sized for one hardware target.
//!
//! `bundle` reads a verified package, evaluates every variant it carries on each target
//! ([`select`]), and writes `dist/<name>-<target>.zip` holding the chosen variant, its
//! self-test (recomputed for that variant), the manifest with the predictions and their
//! basis, and optionally the ONNX Runtime library for the target's platform. A bundle is a
//! package in the same schema (`kind: bundle`), so `verify` and `lineage` read both.

pub mod device;
mod host;
pub mod select;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::hardware::{Arch, Target};
use crate::package::manifest::{self, Kind, Manifest, Prediction, TargetInfo, Transformation};
use crate::package::{self, archive, selftest, sha256_hex, Opened, EDGEPACK_VERSION};
use crate::profile::schema::{Profile, Status, PROFILE_SCHEMA};
use crate::setting::Setting;

pub use host::host_compute;
pub use select::{Basis, Budgets, Candidate, Perf, PerfPoint, Preference, Selection, TargetBudget};

/// Parse `sqnr>=25dB` (or `sqnr=25dB`): the quantizer's one target grammar
/// ([`crate::quantize::accuracy::AccuracyFloor`]), of which bundles use SQNR, the only
/// accuracy figure every variant carries.
pub fn parse_accuracy_floor(s: &str) -> Result<f64> {
    use crate::quantize::accuracy::AccuracyFloor;
    match AccuracyFloor::parse_for(Setting::AccuracyFloor, s)? {
        AccuracyFloor::Sqnr(db) => Ok(db),
        other => Err(Error::usage(
            Setting::AccuracyFloor,
            format!(
                "'{s}': bundles choose variants by SQNR (e.g. sqnr>=25dB); {other} is checked by `quantize {}` and `gate`",
                Setting::AccuracyTarget
            ),
        )),
    }
}

/// Read a profile JSON (`edgepack.profile/1`).
pub fn load_profile(path: &Path) -> Result<Profile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    // A device profile (what `edgepack probe` writes) is not a measured profile: say
    // where it goes instead of naming the first field serde does not know.
    let schema = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("schema")?.as_str().map(str::to_string));
    if schema.as_deref() == Some(crate::hardware::device::DEVICE_SCHEMA) {
        return Err(Error::file(
            path,
            "a device profile (edgepack probe), not a profile measured by edgepack profile: \
             name it in a target's device_profile instead",
        ));
    }
    let p: Profile = serde_json::from_slice(&bytes)
        .map_err(|e| Error::file(path, format!("not a valid profile: {e}")))?;
    if p.schema != PROFILE_SCHEMA {
        return Err(Error::file(
            path,
            format!("profile schema '{}' is not '{PROFILE_SCHEMA}'", p.schema),
        ));
    }
    Ok(p)
}

/// The CPU measurements of a profile as selection input.
pub fn perf_from_profile(p: &Profile, basis: Basis) -> Perf {
    // `threads = 0` is ONNX Runtime's default: one intra-op thread per physical core of
    // the machine that measured it. A prediction must use the count that was measured,
    // never 1 (issue 17 bug 4).
    let default_threads = p.host.physical_cores.unwrap_or(p.host.logical_cores).max(1);
    let points = p
        .configs
        .iter()
        .filter(|c| c.status == Status::Ok && c.ep_requested == "cpu")
        .filter_map(|c| {
            let lat = c.latency.as_ref()?;
            Some(PerfPoint {
                threads: if c.threads == 0 {
                    default_threads
                } else {
                    c.threads
                },
                batch: c.batch.unwrap_or(1).max(1),
                // Rounds that disagreed (a 2x swing between processes): predict from the
                // slow regime, never the lucky one.
                p50_s: lat.pessimistic_p50_s(),
                p95_s: Some(lat.p95_s),
                // Session creation (graph optimization) can peak above inference: the
                // device must survive both.
                peak_rss_bytes: c.memory.as_ref().map(|m| {
                    m.peak_rss_bytes
                        .max(m.peak_rss_session_create_bytes.unwrap_or(0))
                }),
                p50_interval_s: None,
                peak_rss_high_bytes: None,
            })
        })
        .collect();
    Perf {
        basis,
        points,
        memory_fixed_bytes: p.needs.as_ref().and_then(|n| n.memory_fixed_bytes),
        memory_per_item_bytes: p.needs.as_ref().and_then(|n| n.memory_per_item_bytes),
    }
}

/// The runtime library to carry (`--with-runtime`).
#[derive(Clone, Debug)]
pub struct RuntimeLib {
    pub version: String,
    pub platform: String,
    pub path: PathBuf,
}

/// Everything `bundle` needs besides the package and the targets.
#[derive(Default)]
pub struct BundleOptions {
    pub budgets: Budgets,
    /// Host profiles, matched to variants by model sha256.
    pub profiles: Vec<Profile>,
    /// Device profiles: (target name, profile), matched to variants by model sha256.
    pub device_profiles: Vec<(String, Profile)>,
    /// Host compute figure and its basis (see `hardware::host_relative_compute`).
    pub host_compute: Option<(f64, String)>,
    /// Runtime library per platform name (`linux-aarch64`), when bundling it.
    pub runtimes: BTreeMap<String, RuntimeLib>,
    /// edgepack executable per platform name, when bundling it (`--with-device-binary`).
    pub device_binaries: BTreeMap<String, device::DeviceBinary>,
    /// Only this variant is a candidate (`--variant`): to ship, or test, one variant on
    /// every target whatever the selection would prefer. It must still fit.
    pub variant: Option<String>,
    pub sign: Option<ed25519_dalek::SigningKey>,
    /// Recomputes self-test outputs for quantized variants.
    pub runner: Option<Box<dyn selftest::Runner>>,
}

/// The package's entries that every bundle carries (labels, self-test inputs).
fn shared_entries(pkg: &Opened) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Some(l) = pkg
        .manifest
        .postprocessing
        .as_ref()
        .and_then(|p| p.labels.as_ref())
    {
        if let Some(b) = pkg.archive.entries.get(l) {
            out.insert(l.clone(), b.clone());
        }
    }
    for case in &pkg.manifest.self_test {
        for p in case.inputs.values().chain(case.expected.values()) {
            if let Some(b) = pkg.archive.entries.get(p) {
                out.insert(p.clone(), b.clone());
            }
        }
    }
    out
}

/// The selection candidates for one target.
pub fn candidates(pkg: &Opened, target: &Target, opts: &BundleOptions) -> Result<Vec<Candidate>> {
    let shared: u64 = shared_entries(pkg).values().map(|b| b.len() as u64).sum();
    let runtime_bytes = match opts.runtimes.get(target.arch.platform()) {
        Some(r) => std::fs::metadata(&r.path)
            .map_err(|e| Error::io(&r.path, e))?
            .len(),
        None => 0,
    };
    // The device binary counts against the storage budget like every other byte.
    let binary_bytes = match opts.device_binaries.get(target.arch.platform()) {
        Some(d) => std::fs::metadata(&d.path)
            .map_err(|e| Error::io(&d.path, e))?
            .len(),
        None => 0,
    };
    let all: Vec<_> = pkg
        .manifest
        .components
        .iter()
        .flat_map(|c| c.variants.iter())
        .collect();
    if let Some(want) = &opts.variant {
        if !all.iter().any(|v| &v.name == want) {
            return Err(Error::usage(
                Setting::Variant,
                format!(
                    "the package has no variant '{want}' (it has: {})",
                    all.iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    // The package's declared task (checked when it was packaged).
    let declared_task = pkg
        .manifest
        .postprocessing
        .as_ref()
        .and_then(|p| p.task.as_deref())
        .map(|t| crate::quantize::task::Task::parse("postprocessing.task", t))
        .transpose()?;
    let mut out = vec![];
    for v in all
        .into_iter()
        .filter(|v| opts.variant.as_ref().is_none_or(|w| w == &v.name))
    {
        let device = opts
            .device_profiles
            .iter()
            .find(|(t, p)| t == &target.name && p.model.sha256 == v.sha256)
            .map(|(_, p)| perf_from_profile(p, Basis::Device));
        let host_profile = opts.profiles.iter().find(|p| p.model.sha256 == v.sha256);
        // A measurement on the device is the ground truth; with a device profile too, the
        // cost model's prediction is kept beside it (predicted against measured).
        let predicted = match (&device, &target.device_profile) {
            (Some(_), Some(dp)) => {
                let measured = opts
                    .device_profiles
                    .iter()
                    .find(|(t, p)| t == &target.name && p.model.sha256 == v.sha256)
                    .map(|(_, p)| p);
                cost_model_perf(pkg, v, target, dp, measured)?
            }
            _ => None,
        };
        let perf = match (device, &target.device_profile) {
            (Some(d), _) => Some(d),
            (None, Some(dp)) => cost_model_perf(pkg, v, target, dp, host_profile)?,
            (None, None) => match host_profile {
                Some(p) => {
                    let (hc, note) = opts.host_compute.clone().ok_or_else(|| {
                        Error::usage(
                            Setting::HostCompute,
                            "needed to scale host profiles to targets",
                        )
                    })?;
                    Some(perf_from_profile(
                        p,
                        Basis::Host {
                            host_compute: hc,
                            note,
                        },
                    ))
                }
                None => None,
            },
        };
        out.push(Candidate {
            variant: v.name.clone(),
            bundle_bytes: v.size_bytes + shared + runtime_bytes + binary_bytes,
            sqnr_db: v.sqnr_db,
            sqnr_in_sample: v.transformations.iter().any(|t| {
                t.params.get("accuracy_basis").and_then(|b| b.as_str()) == Some("in_sample")
            }),
            is_original: v.name == "fp32" && v.transformations.is_empty(),
            perf,
            predicted,
            task: declared_task.as_ref().map(|t| {
                let figures = v
                    .transformations
                    .iter()
                    .rev()
                    .find_map(|t| {
                        serde_json::from_value(t.params.get("task_figures")?.clone()).ok()
                    })
                    .unwrap_or_default();
                select::TaskScore::of(t, &figures)
            }),
        });
    }
    Ok(out)
}

/// Predictions of one variant on a target with a device profile (the cost model): at the
/// configurations a host profile measured (threads capped at the target's cores), else at
/// batch 1 with 1..=cores threads and the model's declared input shapes. `None` when
/// neither gives concrete shapes (dynamic unnamed dims and no host profile): nothing is
/// predicted, as without any profile.
fn cost_model_perf(
    pkg: &Opened,
    v: &crate::package::manifest::Variant,
    target: &Target,
    device_path: &std::path::Path,
    host_profile: Option<&Profile>,
) -> Result<Option<Perf>> {
    use crate::hardware::cost::{self, Config};
    use crate::hardware::device::DeviceProfile;
    let device = DeviceProfile::load(device_path)?;
    let bytes = pkg
        .archive
        .entries
        .get(&v.path)
        .ok_or_else(|| Error::file(&v.path, "variant missing from the package"))?;
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary folder", e))?;
    let model_path = dir.path().join("variant.onnx");
    std::fs::write(&model_path, bytes).map_err(|e| Error::io(&model_path, e))?;
    let mut configs: Vec<Config> = vec![];
    if let Some(p) = host_profile {
        for c in p.configs.iter().filter(|c| c.status == Status::Ok) {
            let cfg = Config {
                threads: c.threads.clamp(1, target.cores),
                batch: c.batch.unwrap_or(1).max(1),
                inputs: c.input_shapes.clone(),
            };
            if !configs.contains(&cfg) {
                configs.push(cfg);
            }
        }
    }
    if configs.is_empty() {
        let model = crate::model::Model::load(&model_path)?;
        let specs = crate::inputs::model_inputs(&model);
        let Ok(inputs) = cost::resolve_inputs(
            &model_path,
            &specs,
            None,
            Default::default(),
            &Default::default(),
        ) else {
            return Ok(None);
        };
        for threads in 1..=target.cores {
            configs.push(Config {
                threads,
                batch: 1,
                inputs: inputs.clone(),
            });
        }
    }
    let session_config = pkg.manifest.execution_for(v).session_config;
    let predictions =
        cost::predict_file(&model_path, &session_config, &device, device_path, &configs)?;
    let points = configs
        .iter()
        .zip(&predictions)
        .map(|(c, p)| PerfPoint {
            threads: c.threads,
            batch: c.batch,
            p50_s: p.p50_s,
            p95_s: None,
            peak_rss_bytes: Some(p.peak_rss_bytes),
            p50_interval_s: Some((p.p50_low_s, p.p50_high_s)),
            peak_rss_high_bytes: Some(p.peak_rss_high_bytes),
        })
        .collect();
    let fallbacks: Vec<String> = predictions
        .iter()
        .flat_map(|p| p.fallbacks.iter().chain(&p.warnings).cloned())
        .fold(vec![], |mut acc, f| {
            if !acc.contains(&f) {
                acc.push(f);
            }
            acc
        });
    Ok(Some(Perf {
        basis: Basis::CostModel {
            note: format!(
                "{} device profile {}{}",
                if device.is_derived() {
                    "derived (not measured)"
                } else {
                    "measured"
                },
                device_path.display(),
                if fallbacks.is_empty() {
                    String::new()
                } else {
                    format!("; {}", fallbacks.join("; "))
                }
            ),
        },
        points,
        memory_fixed_bytes: None,
        memory_per_item_bytes: None,
    }))
}

/// Evaluate every variant on a target.
pub fn plan(pkg: &Opened, target: &Target, opts: &BundleOptions) -> Result<Selection> {
    let tb = TargetBudget {
        name: target.name.clone(),
        cores: target.cores,
        model_ram_bytes: target.model_ram_bytes(),
        storage_budget_bytes: target.storage_budget_bytes,
        relative_compute: target.relative_compute,
    };
    let mut sel = select::select(&tb, &candidates(pkg, target, opts)?, &opts.budgets);
    // Host profiles measure the CPU provider; say so where the target prefers another one.
    if let Some(ep) = target.execution_providers.first().filter(|e| *e != "cpu") {
        for e in &mut sel.evaluations {
            if e.choice
                .as_ref()
                .is_some_and(|c| c.basis.starts_with("host"))
            {
                e.notes.push(format!(
                    "CPU-provider estimate; {ep} on the target is not predicted (give {})",
                    Setting::DeviceProfile
                ));
            }
        }
    }
    Ok(sel)
}

/// The file name of a bundle: `<name>-<target>.zip`.
pub fn bundle_file_name(pkg_name: &str, target: &str) -> String {
    format!("{pkg_name}-{target}.zip")
}

/// Build the bundle for `target` from its selection; returns the manifest and entries.
pub fn build(
    pkg: &Opened,
    package_sha256: &str,
    package_uri: &str,
    target: &Target,
    target_sha256: &str,
    sel: &Selection,
    opts: &BundleOptions,
) -> Result<(Manifest, BTreeMap<String, Vec<u8>>)> {
    let i = sel.chosen.ok_or_else(|| {
        Error::usage(
            "bundle",
            format!("no variant fits target '{}'", target.name),
        )
    })?;
    let eval = &sel.evaluations[i];
    let choice = eval
        .choice
        .clone()
        .expect("a fitting variant has a configuration");
    let m = &pkg.manifest;
    let variant = m
        .variant(&eval.variant)
        .expect("selected from the manifest")
        .clone();
    let model = pkg
        .archive
        .entries
        .get(&variant.path)
        .expect("verified package")
        .clone();
    let mut entries = shared_entries(pkg);
    entries.insert(variant.path.clone(), model.clone());

    // Self-test: the package's expected outputs belong to the original; a quantized variant
    // gets its own, recomputed here, so the device checks the model it actually runs.
    let mut self_test = m.self_test.clone();
    let mut execution = m.execution_for(&variant);
    execution.intra_op_threads = Some(choice.threads);
    if variant.name != "fp32" && !self_test.is_empty() {
        let runner = opts.runner.as_ref().ok_or_else(|| {
            Error::usage(
                "bundle",
                "recomputing the self-test for a quantized variant needs ONNX Runtime",
            )
        })?;
        for case in &mut self_test {
            let mut inputs = BTreeMap::new();
            for (n, p) in &case.inputs {
                inputs.insert(n.clone(), entries[p].clone());
            }
            let (outs, by) = runner.run(&model, &execution, &inputs)?;
            for p in case.expected.values() {
                entries.remove(p);
            }
            case.expected.clear();
            let mut taken = std::collections::BTreeSet::new();
            for (n, b) in outs {
                let p = format!(
                    "self-test/{}/expected-{}/{}",
                    case.name,
                    variant.name,
                    selftest::tensor_file_name(&n, &mut taken)
                );
                case.expected.insert(n, p.clone());
                entries.insert(p, b);
            }
            case.produced_by = by;
            case.tolerance = selftest::variant_tolerance(&variant.name, &case.tolerance);
        }
    }

    let runtime = match opts.runtimes.get(target.arch.platform()) {
        Some(r) => {
            let bytes = std::fs::read(&r.path).map_err(|e| Error::io(&r.path, e))?;
            let name = r
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let path = format!("runtime/{}/{name}", r.platform);
            entries.insert(path.clone(), bytes);
            Some(manifest::RuntimeInfo {
                name: "onnxruntime".into(),
                version: r.version.clone(),
                platform: r.platform.clone(),
                path,
            })
        }
        None => None,
    };
    let device_binary = match opts.device_binaries.get(target.arch.platform()) {
        Some(d) => {
            let bytes = std::fs::read(&d.path).map_err(|e| Error::io(&d.path, e))?;
            let path = device::entry_path(&d.platform);
            entries.insert(path.clone(), bytes);
            Some(manifest::RuntimeInfo {
                name: device::BINARY_NAME.into(),
                version: EDGEPACK_VERSION.into(),
                platform: d.platform.clone(),
                path,
            })
        }
        None => None,
    };

    let mut lineage = m.lineage.clone();
    let mut params = BTreeMap::new();
    params.insert("target".into(), serde_json::json!(target.name));
    params.insert("variant".into(), serde_json::json!(variant.name));
    params.insert("threads".into(), serde_json::json!(choice.threads));
    params.insert("batch".into(), serde_json::json!(choice.batch));
    params.insert(
        "latency_budget_s".into(),
        serde_json::json!(opts.budgets.latency_budget_s),
    );
    params.insert(
        "accuracy_floor_sqnr_db".into(),
        serde_json::json!(opts.budgets.accuracy_floor_sqnr_db),
    );
    params.insert("with_runtime".into(), serde_json::json!(runtime.is_some()));
    params.insert(
        "with_device_binary".into(),
        serde_json::json!(device_binary.is_some()),
    );
    // In the order they happened: the variant's quantization came before packaging.
    let at = lineage
        .transformations
        .iter()
        .position(|t| t.name == "package")
        .unwrap_or(lineage.transformations.len());
    lineage
        .transformations
        .splice(at..at, variant.transformations.iter().cloned());
    lineage.transformations.push(Transformation {
        name: "bundle".into(),
        params,
        edgepack_version: EDGEPACK_VERSION.into(),
        input_sha256: Some(variant.sha256.clone()),
        output_sha256: Some(variant.sha256.clone()),
    });
    lineage.parent = Some(manifest::Artifact {
        name: Some(format!("package {}", m.name)),
        uri: package_uri.to_string(),
        sha256: Some(package_sha256.to_string()),
    });
    let mut bundle_variant = variant.clone();
    bundle_variant.execution_providers = target.execution_providers.clone();
    bundle_variant.device = "cpu".into();
    let out = Manifest {
        schema: package::MANIFEST_SCHEMA.into(),
        kind: Kind::Bundle,
        name: m.name.clone(),
        edgepack_version: EDGEPACK_VERSION.into(),
        created_unix_s: m.created_unix_s,
        created_from: "package".into(),
        components: vec![manifest::Component {
            name: "model".into(),
            variants: vec![bundle_variant],
        }],
        contract: m.contract.clone(),
        execution,
        preprocessing: m.preprocessing.clone(),
        postprocessing: m.postprocessing.clone(),
        self_test,
        lineage,
        target: Some(TargetInfo {
            name: target.name.clone(),
            arch: target.arch.as_str().into(),
            target_sha256: target_sha256.into(),
            variant: variant.name.clone(),
            prediction: Prediction {
                threads: choice.threads,
                batch: choice.batch,
                latency_p50_s: choice.p50_s,
                latency_p95_s: choice.p95_s,
                peak_memory_bytes: choice.peak_memory_bytes,
                bundle_size_bytes_max: target.storage_budget_bytes,
                basis: choice.basis_with_interval(),
                accuracy_sqnr_db: variant.sqnr_db,
            },
        }),
        runtime,
        device_binary,
        files: vec![],
    };
    Ok(package::seal(out, entries, opts.sign.as_ref()))
}

/// What bundling one target produced.
#[derive(Debug)]
pub struct Outcome {
    pub target: Target,
    pub selection: Selection,
    /// The bundle written, when a variant fit.
    pub path: Option<PathBuf>,
    pub size_bytes: Option<u64>,
}

/// Bundle a package for every target into `out_dir`. A target nothing fits gets no file
/// (and is reported); the others are written atomically.
pub fn bundle_all(
    package_path: &Path,
    targets: &[(Target, String)],
    opts: &BundleOptions,
    out_dir: &Path,
) -> Result<Vec<Outcome>> {
    let pkg = package::open(package_path, None)?;
    let pkg_bytes = std::fs::read(package_path).map_err(|e| Error::io(package_path, e))?;
    let pkg_sha = sha256_hex(&pkg_bytes);
    let uri = package_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !out_dir.is_dir() {
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    }
    let mut out = vec![];
    for (t, t_sha) in targets {
        let mut sel = plan(&pkg, t, opts)?;
        let (path, size) = if let Some(i) = sel.chosen {
            let (_, entries) = build(&pkg, &pkg_sha, &uri, t, t_sha, &sel, opts)?;
            let bytes = archive::write_zip(&entries)?;
            if bytes.len() as u64 > t.storage_budget_bytes {
                return Err(Error::usage(
                    "bundle",
                    format!(
                        "bundle for '{}' is {} bytes, over its storage budget",
                        t.name,
                        bytes.len()
                    ),
                ));
            }
            let p = out_dir.join(bundle_file_name(&pkg.manifest.name, &t.name));
            crate::artifact::write_atomic(&p, &bytes)?;
            // The selection sized the bundle before writing it, as the entries plus an
            // allowance for the manifest and zip headers (an upper bound, used for the
            // storage budget). The chosen variant's figure becomes the file's real length,
            // so every size shown for a written bundle is the file's (issue 17).
            sel.evaluations[i].bundle_bytes = bytes.len() as u64;
            (Some(p), Some(bytes.len() as u64))
        } else {
            (None, None)
        };
        out.push(Outcome {
            target: t.clone(),
            selection: sel,
            path,
            size_bytes: size,
        });
    }
    Ok(out)
}

/// The platform name a target's runtime library is installed for.
pub fn platform_of(arch: Arch) -> &'static str {
    arch.platform()
}

#[cfg(test)]
mod tests;
