//! `edgepack build MODEL --targets hardware/ -o dist/`: the one-command pipeline.
//!
//! 1. inspect: the model's I/O contract;
//! 2. quantize: each variant mode the quantizer offers (`edgepack quantize`, in-process);
//!    modes it does not offer yet are reported and skipped;
//! 3. package: the original plus every variant, with their accuracy reports;
//! 4. profile: each variant on this host (`edgepack profile`, in-process, isolated child
//!    processes); a profile already in the work folder for the same model sha256 is reused
//!    (`--reprofile` to measure again), so two builds of the same inputs give the same bytes;
//! 5. bundle: every target, with the selection table;
//! 6. report: `dist/<name>-build.json`.
//!
//! Intermediate files live in `dist/work/`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;
use edgepack::bundle;
use edgepack::model::Model;
use edgepack::package::{self, manifest::Dim, VariantInput};
use edgepack::Error;

use super::Outcome;

/// Variant modes, in the quantizer's names, with the variant name used in packages.
const MODES: &[(&str, &str)] = &[
    ("fp16", "fp16"),
    ("int8", "int8"),
    ("int8-weight", "int8-weight"),
    ("int4-weight", "int4-weight"),
];

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The fp32 ONNX model.
    pub model: PathBuf,
    /// Hardware targets: a folder of TOML files, a file, or `host`. Repeatable.
    #[arg(
        long = "targets",
        default_value = "hardware",
        value_name = "DIR|FILE|host"
    )]
    pub targets: Vec<String>,
    /// Output folder (bundles, package, report; intermediates in work/).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Concrete shapes for dynamic inputs, NAME=DIMS (e.g. x=1x3x640x640), used to
    /// profile and to calibrate on random inputs. Repeatable.
    #[arg(long = "shape", value_name = "NAME=DIMS")]
    pub shapes: Vec<String>,
    /// Calibration samples for int8 (a folder the quantizer reads); without it the
    /// quantizer calibrates on random inputs and reports no usable accuracy.
    #[arg(long, value_name = "DIR")]
    pub calibration: Option<PathBuf>,
    /// Which variant modes to try (default: all the quantizer offers).
    #[arg(long, value_delimiter = ',', value_name = "MODE,...")]
    pub variants: Vec<String>,
    /// Profiling plan (profiles/<name>.toml or a file).
    #[arg(long, default_value = "quick")]
    pub plan: String,
    /// Measure again even if a profile of the same model is in the work folder.
    #[arg(long)]
    pub reprofile: bool,
    /// Skip profiling (bundles then carry no latency or memory predictions).
    #[arg(long)]
    pub no_profile: bool,
    #[arg(long, value_name = "DURATION")]
    pub latency_budget: Option<String>,
    #[arg(long, value_name = "sqnr=DB")]
    pub accuracy_floor: Option<String>,
    /// Among variants that fit: accuracy, latency or size.
    #[arg(long, default_value = "accuracy")]
    pub prefer: String,
    #[arg(long, value_name = "X")]
    pub host_compute: Option<f64>,
    #[arg(long, value_name = "TARGET=FILE")]
    pub device_profile: Vec<String>,
    #[arg(long)]
    pub with_runtime: bool,
    /// No progress lines (they are drawn only on a terminal anyway).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub package: super::package::PackageInputs,
}

/// Run another edgepack command as a child process of this executable. Children, not
/// calls: ONNX Runtime allows one environment per process and the quantizer and the
/// profiler each set up their own, and a crash in one step must not take the build down.
/// The child's stdout goes to our stderr (our stdout carries the build's result).
fn step(ort_lib: Option<&Path>, argv: Vec<OsString>) -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    let exe = std::env::current_exe().map_err(|e| Error::io("edgepack executable", e))?;
    let mut cmd = std::process::Command::new(exe);
    if let Some(l) = ort_lib {
        cmd.arg("--ort-lib").arg(l);
    }
    let to_stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    let _ticker = super::progress::Ticker::start(super::progress::label(&argv));
    let out = cmd
        .args(&argv)
        .stdout(std::process::Stdio::from(to_stderr))
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| Error::io("edgepack executable", e))?;
    let err = String::from_utf8_lossy(&out.stderr);
    // The step's own error line is reported once, by the caller (as "skipped: why").
    for line in err.lines().filter(|l| !l.starts_with("edgepack: error: ")) {
        eprintln!("{line}");
    }
    match out.status.code() {
        Some(0) | Some(1) => Ok(()),
        _ => {
            let why = err
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("edgepack: error: "))
                .map(str::to_string)
                .or_else(|| {
                    let lines: Vec<&str> = err.lines().collect();
                    let at = lines.iter().position(|l| l.contains("panicked at"))?;
                    Some(format!(
                        "crashed: {} {}",
                        lines[at].trim(),
                        lines.get(at + 1).map(|l| l.trim()).unwrap_or("")
                    ))
                })
                .unwrap_or_else(|| format!("exited with {}", out.status));
            Err(anyhow::anyhow!(why))
        }
    }
}

fn os(s: impl AsRef<std::ffi::OsStr>) -> OsString {
    s.as_ref().to_os_string()
}

/// The quantizer's `--dim` values (symbolic dims in order of appearance) from `--shape`.
fn symbolic_values(model: &Model, shapes: &[String]) -> Result<Vec<String>, Error> {
    let contract = package::contract::contract(&model.proto);
    let mut out = vec![];
    for i in &contract.inputs {
        let Some(dims) = &i.shape else { continue };
        let given = shapes
            .iter()
            .filter_map(|s| s.split_once('='))
            .find(|(n, _)| *n == i.name)
            .map(|(_, d)| d.split('x').map(str::to_string).collect::<Vec<_>>());
        for (k, d) in dims.iter().enumerate() {
            if matches!(d, Dim::Fixed(_)) {
                continue;
            }
            match given.as_ref().and_then(|g| g.get(k)) {
                Some(v) => out.push(v.clone()),
                None => {
                    return Err(Error::usage(
                        "--shape",
                        format!(
                            "input '{}' has dynamic dims; give --shape {}=...",
                            i.name, i.name
                        ),
                    ))
                }
            }
        }
    }
    Ok(out)
}

pub fn run(ort_lib: Option<&Path>, args: BuildArgs) -> anyhow::Result<Outcome> {
    super::progress::set_quiet(args.quiet);
    let out = &args.output;
    let work = out.join("work");
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;

    // 1. inspect
    let model = Model::load(&args.model)?;
    let contract = package::contract::contract(&model.proto);
    let name = args
        .model
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
    eprintln!("[1/6] inspect {}", args.model.display());
    for i in &contract.inputs {
        eprintln!(
            "      input  {} {} {}",
            i.name,
            i.dtype,
            serde_json::to_string(&i.shape)?
        );
    }
    for o in &contract.outputs {
        eprintln!(
            "      output {} {} {}",
            o.name,
            o.dtype,
            serde_json::to_string(&o.shape)?
        );
    }
    let targets = super::bundle::resolve_targets(&args.targets)?;
    let sym = symbolic_values(&model, &args.shapes)?;

    // 2. quantize
    let wanted: Vec<&(&str, &str)> = MODES
        .iter()
        .filter(|(m, _)| args.variants.is_empty() || args.variants.iter().any(|v| v == m))
        .collect();
    if let Some(v) = args
        .variants
        .iter()
        .find(|v| !MODES.iter().any(|(m, _)| m == v))
    {
        return Err(Error::usage(
            "--variants",
            format!("'{v}' is not one of fp16, int8, int8-weight, int4-weight"),
        )
        .into());
    }
    let mut variants: Vec<VariantInput> = vec![];
    let mut skipped: Vec<(String, String)> = vec![];
    for (mode, vname) in wanted {
        eprintln!("[2/6] quantize {mode}");
        let vpath = work.join(format!("{name}.{vname}.onnx"));
        let rpath = work.join(format!("{name}.{vname}.quantize.json"));
        let mut argv = vec![
            os("quantize"),
            os(&args.model),
            os("-o"),
            os(&vpath),
            os("--mode"),
            os(mode),
            os("--report"),
            os(&rpath),
            // Latency is the profiler's job; skipping it keeps the quantized bytes independent
            // of timing noise.
            os("--no-latency"),
        ];
        if let Some(c) = &args.calibration {
            argv.push(os("--calibration"));
            argv.push(os(c));
        }
        for v in &sym {
            argv.push(os("--dim"));
            argv.push(os(v));
        }
        match step(ort_lib, argv) {
            Ok(_) if vpath.is_file() => {
                variants.push(VariantInput::from_quantizer_report(vname, &vpath, &rpath)?)
            }
            Ok(_) => skipped.push((vname.to_string(), "the quantizer wrote no model".into())),
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("      skipped: {msg}");
                skipped.push((vname.to_string(), msg));
            }
        }
    }

    // 3. package
    eprintln!("[3/6] package");
    let pkg_path = out.join(format!("{name}.edgepkg"));
    let opts = args
        .package
        .options(Some(name.clone()), variants, ort_lib)?;
    let manifest = package::write(&args.model, &opts, &pkg_path)?;

    // 4. profile
    let mut profiles = vec![];
    if !args.no_profile {
        for v in manifest.components.iter().flat_map(|c| c.variants.iter()) {
            let ppath = work.join(format!("{}.profile.json", &v.sha256[..16]));
            let reusable = !args.reprofile
                && bundle::load_profile(&ppath).is_ok_and(|p| p.model.sha256 == v.sha256);
            if reusable {
                eprintln!("[4/6] profile {}: reusing {}", v.name, ppath.display());
            } else {
                eprintln!("[4/6] profile {} ({} plan)", v.name, args.plan);
                let vfile = work.join(format!("{name}.{}.profiled.onnx", v.name));
                let bytes = opened_variant(&pkg_path, &v.path)?;
                edgepack::artifact::write_atomic(&vfile, &bytes)?;
                let mut argv = vec![
                    os("profile"),
                    os(&vfile),
                    os("--plan"),
                    os(&args.plan),
                    os("--json"),
                    os(&ppath),
                ];
                for s in &args.shapes {
                    argv.push(os("--shape"));
                    argv.push(os(s));
                }
                // The session entries the variant runs with (as its bundle will).
                for (k, val) in &v.session_config {
                    argv.push(os("--session-config"));
                    argv.push(os(format!("{k}={val}")));
                }
                if let Err(e) = step(ort_lib, argv) {
                    eprintln!("      profiling {} failed: {e:#}", v.name);
                    continue;
                }
            }
            profiles.push(bundle::load_profile(&ppath)?);
        }
    }

    // 5. bundle
    eprintln!("[5/6] bundle for {} target(s)", targets.len());
    let hw_dir = args
        .targets
        .iter()
        .map(Path::new)
        .find(|p| p.is_dir())
        .map(Path::to_path_buf);
    let bopts = super::bundle::options(
        ort_lib,
        &targets,
        args.latency_budget.as_deref(),
        args.accuracy_floor.as_deref(),
        None,
        &args.prefer,
        profiles,
        &args.device_profile,
        args.host_compute,
        args.with_runtime,
        edgepack::runtime::DEFAULT_VERSION,
        args.package.sign.as_deref(),
        hw_dir.as_deref(),
    )?;
    let outcomes = bundle::bundle_all(&pkg_path, &targets, &bopts, out)?;
    let outcome = super::bundle::report(&outcomes, false);

    // 6. report
    let report_path = out.join(format!("{name}-build.json"));
    let report = serde_json::json!({
        "model": args.model.display().to_string(),
        "package": pkg_path.display().to_string(),
        "variants": manifest.components[0].variants.iter().map(|v| serde_json::json!({
            "name": v.name, "sha256": v.sha256, "size_bytes": v.size_bytes, "sqnr_db": v.sqnr_db,
        })).collect::<Vec<_>>(),
        "skipped_variants": skipped.iter().map(|(v, why)| serde_json::json!({"variant": v, "why": why})).collect::<Vec<_>>(),
        "host_compute": bopts.host_compute.as_ref().map(|(v, b)| serde_json::json!({"relative_compute": v, "basis": b})),
        "latency_budget_s": bopts.budgets.latency_budget_s, "prefer": args.prefer,
        "targets": outcomes.iter().map(|o| serde_json::json!({
            "target": o.target.name,
            "bundle": o.path.as_ref().map(|p| p.display().to_string()),
            "size_bytes": o.size_bytes, "model_ram_bytes": o.target.model_ram_bytes(),
            "chosen": o.selection.chosen.map(|i| o.selection.evaluations[i].variant.clone()),
            "evaluations": o.selection.evaluations.iter().map(|e| serde_json::json!({
                "variant": e.variant, "fits": e.fits, "reasons": e.reasons, "notes": e.notes,
                "threads": e.choice.as_ref().map(|c| c.threads),
                "batch": e.choice.as_ref().map(|c| c.batch),
                "latency_p50_s": e.choice.as_ref().and_then(|c| c.p50_s),
                "peak_memory_bytes": e.choice.as_ref().and_then(|c| c.peak_memory_bytes),
                "basis": e.choice.as_ref().map(|c| c.basis.clone()),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let mut bytes = serde_json::to_vec_pretty(&report)?;
    bytes.push(b'\n');
    edgepack::artifact::write_atomic(&report_path, &bytes)?;
    eprintln!("[6/6] report {}", report_path.display());
    for (v, why) in &skipped {
        eprintln!("      note: no {v} variant: {why}");
    }
    let trs: Vec<_> = targets.iter().map(|(t, _)| t.into()).collect();
    edgepack::report::build::finish(out, &trs, &mut std::io::stdout())?;
    Ok(outcome)
}

/// A variant's bytes from a (just written, verified) package.
fn opened_variant(pkg: &Path, path: &str) -> Result<Vec<u8>, Error> {
    let o = package::open(pkg, None)?;
    o.archive
        .entries
        .get(path)
        .cloned()
        .ok_or_else(|| Error::file(pkg, format!("'{path}' missing")))
}

#[cfg(test)]
mod tests {
    use super::super::Cli;
    use clap::Parser;

    #[test]
    fn build_args_parse() {
        let cli = Cli::try_parse_from([
            "edgepack",
            "build",
            "m.onnx",
            "-o",
            "dist",
            "--shape",
            "x=1x3x8x8",
        ])
        .unwrap();
        assert!(matches!(cli.command, super::super::Command::Build(_)));
    }
}
