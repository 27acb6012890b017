//! `edgepack bundle PACKAGE --target hardware/X.toml ... -o dist/`: one bundle per target
//! with the variant that fits it, and a table saying why.

use std::path::{Path, PathBuf};

use clap::Args;
use edgepack::bundle::{self, Budgets, BundleOptions, RuntimeLib, Selection};
use edgepack::hardware::{self, Target};
use edgepack::package::{self, sign};
use edgepack::runtime::{self, Platform};
use edgepack::units::format_bytes as human_bytes;
use edgepack::Error;

use super::Outcome;

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The package (.edgepkg).
    pub package: PathBuf,
    /// A hardware target: a TOML file, a folder of them, or `host`. Repeatable.
    #[arg(long = "target", required = true, value_name = "FILE|DIR|host")]
    pub targets: Vec<String>,
    /// Output folder.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Largest acceptable p50 latency per request (e.g. 50ms).
    #[arg(long, value_name = "DURATION")]
    pub latency_budget: Option<String>,
    /// Smallest acceptable accuracy of a quantized variant (e.g. sqnr=25dB).
    #[arg(long, value_name = "sqnr=DB")]
    pub accuracy_floor: Option<String>,
    /// Only this variant of the package (e.g. int8): bundled for every target where it
    /// fits, whatever the selection would prefer.
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// Only consider this batch size.
    #[arg(long)]
    pub batch: Option<i64>,
    /// Among variants that fit: the most accurate, the fastest or the smallest.
    #[arg(long, default_value = "accuracy", value_name = "accuracy|latency|size")]
    pub prefer: String,
    /// Host profiles (`edgepack profile` JSON), matched to variants by model sha256.
    #[arg(long = "profile", value_name = "FILE")]
    pub profiles: Vec<PathBuf>,
    /// A profile measured on a target, TARGET=FILE (or FILE with a single --target);
    /// replaces the scaled estimate there.
    #[arg(long = "device-profile", value_name = "TARGET=FILE")]
    pub device_profiles: Vec<String>,
    /// Per-core compute of the host the profiles were measured on, relative to a
    /// Cortex-A72 @ 1.8 GHz (default: EDGEPACK_HOST_COMPUTE, a matching hardware file, or
    /// an estimate from this host's clock when the profile was measured here).
    #[arg(long, value_name = "X")]
    pub host_compute: Option<f64>,
    /// Carry the ONNX Runtime library for each target's platform (installed with pip).
    #[arg(long)]
    pub with_runtime: bool,
    /// Also carry the edgepack executable for each target's platform (implies
    /// --with-runtime), so the device can verify, self-test and profile the bundle with
    /// nothing installed. The other architecture's comes from `scripts/cross-aarch64.sh`.
    #[arg(long)]
    pub with_device_binary: bool,
    /// ONNX Runtime version for --with-runtime.
    #[arg(long, default_value = runtime::DEFAULT_VERSION)]
    pub runtime_version: String,
    /// Sign each bundle with this ed25519 key.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// Print the selection as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Targets with the sha256 of the file they came from.
pub fn resolve_targets(specs: &[String]) -> Result<Vec<(Target, String)>, Error> {
    let mut out: Vec<(Target, String)> = vec![];
    for s in specs {
        // `builtin` (or the default `hardware` outside the repository): the targets
        // compiled into the binary.
        if s == "builtin" || (s == "hardware" && !Path::new(s).exists()) {
            for (p, t) in hardware::builtin()? {
                let file = p
                    .to_string_lossy()
                    .trim_start_matches("builtin:")
                    .to_string();
                let text = hardware::BUILTIN_TARGETS
                    .iter()
                    .find(|(f, _)| *f == file)
                    .map_or("", |(_, t)| *t);
                out.push((t, package::sha256_hex(text.as_bytes())));
            }
            continue;
        }
        let files: Vec<PathBuf> = if s == "host" {
            vec![]
        } else if Path::new(s).is_dir() {
            hardware::load_dir(Path::new(s))?
                .into_iter()
                .map(|(p, _)| p)
                .collect()
        } else {
            vec![PathBuf::from(s)]
        };
        if s == "host" {
            let h = hardware::host();
            let sha = package::sha256_hex(serde_json::to_string(&h).unwrap_or_default().as_bytes());
            out.push((h, sha));
        }
        for f in files {
            let bytes = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
            let t = Target::load(&f)?;
            out.push((t, package::sha256_hex(&bytes)));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (t, _) in &out {
        if !names.insert(t.name.clone()) {
            return Err(Error::usage(
                "--target",
                format!("target '{}' given twice", t.name),
            ));
        }
    }
    Ok(out)
}

/// One target's table. The chosen variant's bundle size is the written file's length;
/// the other variants' are the selection's upper bound (entries plus the manifest
/// allowance), marked `<=`.
pub fn print_table(sel: &Selection, target: &Target, written: bool) {
    println!(
        "\n{} ({}, {} cores, {} for the model, storage {}, compute {:.2})",
        target.name,
        target.arch.as_str(),
        target.cores,
        human_bytes(target.model_ram_bytes()),
        if target.storage_budget_bytes == u64::MAX {
            "-".into()
        } else {
            human_bytes(target.storage_budget_bytes)
        },
        target.relative_compute
    );
    let ms = |v: Option<f64>| {
        v.map(|s| format!("{:.1} ms", s * 1e3))
            .unwrap_or_else(|| "?".into())
    };
    let rows: Vec<[String; 9]> = sel
        .evaluations
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let c = e.choice.as_ref();
            let mark = if sel.chosen == Some(i) { "* " } else { "  " };
            [
                format!("{mark}{}", e.variant),
                if e.fits { "fits".into() } else { "no".into() },
                c.map(|c| c.threads.to_string()).unwrap_or_default(),
                c.map(|c| c.batch.to_string()).unwrap_or_default(),
                // The figure, and the pessimistic end fit decisions use where there is one.
                match (c.and_then(|c| c.p50_s), c.and_then(|c| c.p50_interval_s)) {
                    (Some(p), Some((_, hi))) => format!("{} (..{:.1})", ms(Some(p)), hi * 1e3),
                    (p, _) => ms(p),
                },
                match (
                    c.and_then(|c| c.peak_memory_bytes),
                    c.and_then(|c| c.peak_memory_high_bytes),
                ) {
                    (Some(m), Some(hi)) => format!("{} (..{})", human_bytes(m), human_bytes(hi)),
                    (m, _) => m.map(human_bytes).unwrap_or_else(|| "?".into()),
                },
                if written && sel.chosen == Some(i) {
                    human_bytes(e.bundle_bytes)
                } else {
                    format!("<= {}", human_bytes(e.bundle_bytes))
                },
                e.sqnr_db
                    .map(|s| format!("{s:.1} dB"))
                    .unwrap_or_else(|| "-".into()),
                if e.fits {
                    // The full basis is printed once above the tables, and is in the
                    // manifest and --json; the table keeps its head.
                    let mut w = c
                        .map(|c| {
                            let head = c.basis.split(" (").next().unwrap_or("").to_string();
                            if c.basis.contains("derived") {
                                format!("{head}, derived")
                            } else {
                                head
                            }
                        })
                        .filter(|b| b != "no profile")
                        .unwrap_or_default();
                    for n in &e.notes {
                        if !w.is_empty() {
                            w.push_str("; ");
                        }
                        w.push_str(n);
                    }
                    w
                } else {
                    e.reasons.join("; ")
                },
            ]
        })
        .collect();
    let mut table = edgepack::table::Table::new([
        "variant", "fits", "threads", "batch", "p50", "memory", "bundle", "sqnr", "why",
    ]);
    for r in rows {
        table.row(r);
    }
    print!("{table}");
}

/// Resolve options shared by `bundle` and `build`.
#[allow(clippy::too_many_arguments)]
pub fn options(
    ort_lib: Option<&Path>,
    targets: &[(Target, String)],
    latency_budget: Option<&str>,
    accuracy_floor: Option<&str>,
    batch: Option<i64>,
    prefer: &str,
    profiles: Vec<edgepack::profile::schema::Profile>,
    device_profiles: &[String],
    host_compute_flag: Option<f64>,
    with_runtime: bool,
    with_device_binary: bool,
    runtime_version: &str,
    sign_key: Option<&Path>,
    hardware_dir: Option<&Path>,
) -> Result<BundleOptions, Error> {
    let mut dps = vec![];
    for s in device_profiles {
        // TARGET=FILE, or just FILE when there is a single target.
        let (t, f) = match s.split_once('=') {
            Some((t, f)) if !Path::new(s).exists() => (t, f),
            _ if targets.len() == 1 => (targets[0].0.name.as_str(), s.as_str()),
            _ => {
                return Err(Error::usage(
                    "--device-profile",
                    format!("'{s}': name the target it was measured on (TARGET=FILE)"),
                ))
            }
        };
        if !targets.iter().any(|(x, _)| x.name == t) {
            return Err(Error::usage(
                "--device-profile",
                format!("'{t}' is not one of the targets"),
            ));
        }
        let p = bundle::load_profile(Path::new(f))?;
        let arch = targets
            .iter()
            .find(|(x, _)| x.name == t)
            .map(|(x, _)| x.arch.as_str());
        if !p.host.arch.is_empty() && Some(p.host.arch.as_str()) != arch {
            return Err(Error::file(
                f,
                format!(
                    "measured on {} ({}), but target '{t}' is {}: not a profile of that device",
                    p.host.arch,
                    p.host.cpu_model,
                    arch.unwrap_or("?")
                ),
            ));
        }
        dps.push((t.to_string(), p));
    }
    let mut device_binaries = std::collections::BTreeMap::new();
    if with_device_binary {
        for (t, _) in targets {
            let d = bundle::device::locate(t.arch)?;
            device_binaries.insert(d.platform.clone(), d);
        }
    }
    let mut runtimes = std::collections::BTreeMap::new();
    if with_runtime || with_device_binary {
        for (t, _) in targets {
            let platform = t.arch.platform();
            if runtimes.contains_key(platform) {
                continue;
            }
            eprintln!(
                "ONNX Runtime {runtime_version} for {platform} (pip download from PyPI, cached)"
            );
            let path = runtime::install(runtime_version, Platform::from_name(platform)?)?;
            runtimes.insert(
                platform.to_string(),
                RuntimeLib {
                    version: runtime_version.to_string(),
                    platform: platform.to_string(),
                    path,
                },
            );
        }
    }
    if host_compute_flag.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
        return Err(Error::usage("--host-compute", "must be a positive number"));
    }
    let host_compute = bundle::host_compute(host_compute_flag, &profiles, hardware_dir)?;
    Ok(BundleOptions {
        budgets: Budgets {
            latency_budget_s: match super::optional_quantity(
                "--latency-budget",
                latency_budget,
                edgepack::units::Unit::Seconds,
            )? {
                Some(b) if b <= 0.0 => {
                    return Err(Error::usage(
                        "--latency-budget",
                        "the budget must be positive",
                    ))
                }
                b => b,
            },
            accuracy_floor_sqnr_db: accuracy_floor
                .map(bundle::parse_accuracy_floor)
                .transpose()?,
            batch,
            prefer: bundle::Preference::from_name(prefer).ok_or_else(|| {
                Error::usage(
                    "--prefer",
                    format!("'{prefer}' is not accuracy, latency or size"),
                )
            })?,
        },
        profiles,
        device_profiles: dps,
        host_compute,
        runtimes,
        device_binaries,
        variant: None,
        sign: sign_key.map(sign::load_signing_key).transpose()?,
        runner: super::runner::self_test_runner(ort_lib),
    })
}

/// Print the outcomes; the command fails (exit 1) when a target got no bundle.
pub fn report(outcomes: &[bundle::Outcome], json: bool) -> Outcome {
    if json {
        let v: Vec<_> = outcomes
            .iter()
            .map(|o| {
                serde_json::json!({
                    "target": o.target.name,
                    "bundle": o.path.as_ref().map(|p| p.display().to_string()),
                    "size_bytes": o.size_bytes,
                    "chosen": o.selection.chosen.map(|i| o.selection.evaluations[i].variant.clone()),
                    "variants": o.selection.evaluations.iter().enumerate().map(|(i, e)| serde_json::json!({
                        "variant": e.variant,
                        "fits": e.fits,
                        "reasons": e.reasons,
                        "notes": e.notes,
                        "threads": e.choice.as_ref().map(|c| c.threads),
                        "batch": e.choice.as_ref().map(|c| c.batch),
                        "latency_p50_s": e.choice.as_ref().and_then(|c| c.p50_s),
                        "latency_p95_s": e.choice.as_ref().and_then(|c| c.p95_s),
                        "peak_memory_bytes": e.choice.as_ref().and_then(|c| c.peak_memory_bytes),
                        "latency_p50_interval_s": e.choice.as_ref().and_then(|c| c.p50_interval_s).map(|(lo, hi)| [lo, hi]),
                        "peak_memory_high_bytes": e.choice.as_ref().and_then(|c| c.peak_memory_high_bytes),
                        "predicted_latency_p50_s": e.predicted_p50_s,
                        "predicted_peak_memory_bytes": e.predicted_peak_memory_bytes,
                        "basis": e.choice.as_ref().map(|c| c.basis.clone()),
                        "bundle_bytes": e.bundle_bytes,
                        // The written bundle's real length, or the selection's upper bound.
                        "bundle_bytes_is_upper_bound": o.path.is_none() || o.selection.chosen != Some(i),
                        "sqnr_db": e.sqnr_db,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        if let Some(basis) = outcomes.iter().find_map(|o| {
            o.selection
                .evaluations
                .iter()
                .find_map(|e| e.choice.as_ref().map(|c| c.basis.clone()))
        }) {
            if basis.starts_with("host") {
                println!("latency basis: {basis}");
            }
        }
        for o in outcomes {
            print_table(&o.selection, &o.target, o.path.is_some());
            match &o.path {
                Some(p) => println!(
                    "-> {} ({})",
                    p.display(),
                    human_bytes(o.size_bytes.unwrap_or(0))
                ),
                None => println!("-> no bundle: no variant fits"),
            }
        }
    }
    if outcomes.iter().all(|o| o.path.is_some()) {
        Outcome::Success
    } else {
        Outcome::Failed
    }
}

pub fn run(ort_lib: Option<&Path>, args: BundleArgs) -> anyhow::Result<Outcome> {
    let targets = resolve_targets(&args.targets)?;
    hardware::check_device_profiles(targets.iter().map(|(t, _)| t), ort_lib)?;
    let profiles = args
        .profiles
        .iter()
        .map(|p| bundle::load_profile(p))
        .collect::<Result<Vec<_>, _>>()?;
    let hw_dir = args
        .targets
        .iter()
        .map(Path::new)
        .find(|p| p.is_dir())
        .map(Path::to_path_buf)
        .or_else(|| Some(PathBuf::from("hardware")).filter(|p| p.is_dir()));
    let opts = options(
        ort_lib,
        &targets,
        args.latency_budget.as_deref(),
        args.accuracy_floor.as_deref(),
        args.batch,
        &args.prefer,
        profiles,
        &args.device_profiles,
        args.host_compute,
        args.with_runtime,
        args.with_device_binary,
        &args.runtime_version,
        args.sign.as_deref(),
        hw_dir.as_deref(),
    )?;
    // Targets with a device profile are predicted by the cost model; the others need a
    // profile measured here (scaled by relative compute) or on the device.
    let unpredicted: Vec<&str> = targets
        .iter()
        .filter(|(t, _)| t.device_profile.is_none())
        .map(|(t, _)| t.name.as_str())
        .collect();
    if opts.profiles.is_empty() && opts.device_profiles.is_empty() && !unpredicted.is_empty() {
        eprintln!(
            "note: no --profile given and no device profile for {}: their latency and \
             memory are not predicted",
            unpredicted.join(", ")
        );
    }
    // A profile is matched to a variant by the model's sha256: say when one matches none
    // rather than ignore it silently.
    if !args.profiles.is_empty() {
        let m = package::open(&args.package, None)?.manifest;
        let variants: Vec<&edgepack::package::manifest::Variant> = m
            .components
            .iter()
            .flat_map(|c| c.variants.iter())
            .collect();
        for (path, p) in args.profiles.iter().zip(&opts.profiles) {
            if !variants.iter().any(|v| v.sha256 == p.model.sha256) {
                eprintln!(
                    "edgepack: WARNING: {} profiles {} (sha256 {}), which is no variant of {} \
                     ({}): it is not used",
                    path.display(),
                    p.model.path,
                    &p.model.sha256[..p.model.sha256.len().min(12)],
                    args.package.display(),
                    variants
                        .iter()
                        .map(|v| format!("{} {}", v.name, &v.sha256[..v.sha256.len().min(12)]))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    let opts = BundleOptions {
        variant: args.variant,
        ..opts
    };
    let outcomes = bundle::bundle_all(&args.package, &targets, &opts, &args.output)?;
    Ok(report(&outcomes, args.json))
}
