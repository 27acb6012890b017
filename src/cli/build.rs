//! `edgepack build MODEL --targets hardware/ -o dist/`: parse the flags into
//! [`edgepack::pipeline::Settings`], run [`edgepack::pipeline::Build`] (inspect, quantize,
//! package, profile, bundle, report), print its progress on stderr and the selection
//! tables on stdout. The steps themselves live in the library (`src/pipeline/`).

use std::path::{Path, PathBuf};

use clap::Args;
use edgepack::inputs::ShapeOverrides;
use edgepack::isolate::{self, ChildLimits};
use edgepack::pipeline::{Build, Observer, Settings, Step, VariantMode};
use edgepack::profile::plan::Plan;
use edgepack::Error;

use super::Outcome;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The fp32 ONNX model.
    pub model: PathBuf,
    /// Hardware targets: a folder of TOML files, a file, or `host`. Repeatable.
    #[arg(
        long = "target",
        alias = "targets",
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
    /// Value for a symbolic dim, e.g. sequence=128 (as for `run`); wins over a --shape for
    /// that dim. Repeatable.
    #[arg(long = "dim", value_name = "SYMBOL=N")]
    pub dims: Vec<String>,
    /// Range of generated values for an input, e.g. sr=16000..16000 (as for `run`): used
    /// wherever the build generates inputs (random calibration, profile, self-test).
    /// Repeatable.
    #[arg(long = "input-range", value_name = "NAME=LO..HI")]
    pub input_range: Vec<String>,
    /// Calibration samples for int8 (a folder the quantizer reads); without it the
    /// quantizer calibrates on random inputs and reports no usable accuracy.
    #[arg(long, value_name = "DIR")]
    pub calibration: Option<PathBuf>,
    /// Held-out evaluation inputs for the accuracy figures (as `quantize --eval`); without
    /// it the figures are in-sample (measured on calibration inputs) and labelled so.
    #[arg(long, value_name = "DIR")]
    pub eval: Option<PathBuf>,
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
    /// Largest acceptable p50 latency per request on a target, e.g. 50ms (as for `bundle`).
    #[arg(long, value_name = "DURATION")]
    pub latency_budget: Option<String>,
    /// Smallest acceptable accuracy of a quantized variant, e.g. sqnr=25dB (as for `bundle`).
    #[arg(long, value_name = "sqnr=DB")]
    pub accuracy_floor: Option<String>,
    /// Among variants that fit: accuracy, latency or size.
    #[arg(long, default_value = "accuracy")]
    pub prefer: String,
    /// Per-core compute of this host relative to a Cortex-A72 @ 1.8 GHz, for scaling
    /// latency to the targets (default: EDGEPACK_HOST_COMPUTE, a matching hardware file, or
    /// an estimate from this host's clock).
    #[arg(long, value_name = "X")]
    pub host_compute: Option<f64>,
    /// A profile measured on a target, TARGET=FILE; replaces the scaled estimate there.
    #[arg(long, value_name = "TARGET=FILE")]
    pub device_profile: Vec<String>,
    /// Carry the ONNX Runtime library for each target's platform in its bundle.
    #[arg(long)]
    pub with_runtime: bool,
    /// Also carry the edgepack executable for each target's platform (implies
    /// --with-runtime), so the board can verify, self-test and profile the bundle.
    #[arg(long)]
    pub with_device_binary: bool,
    /// No progress or step lines on stderr (errors and warnings still go there).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub package: super::package::PackageInputs,
}

/// Progress lines on stderr: `[n/6] what` per step, details indented under it, and a
/// redrawn elapsed-time line while a step runs (on a terminal only).
#[derive(Default)]
struct Progress {
    ticker: Option<super::progress::Ticker>,
}

impl Observer for Progress {
    fn started(&mut self, step: Step, what: &str) {
        // Stop the previous step's line before printing, so lines never interleave.
        self.ticker = None;
        if super::progress::quiet() {
            return;
        }
        eprintln!("[{}/{}] {what}", step.number(), Step::COUNT);
        self.ticker = Some(super::progress::Ticker::start(what.to_string()));
    }

    fn detail(&mut self, _step: Step, line: &str) {
        if super::progress::quiet() {
            return;
        }
        if self.ticker.is_some() && super::progress::enabled() {
            // Erase the elapsed-time line; the ticker redraws it below within a second.
            eprint!("\r\x1b[2K");
        }
        eprintln!("      {line}");
    }
}

/// The quantizer child's wall-clock limit (as `quantize --timeout`'s default).
const QUANTIZE_TIMEOUT_S: f64 = 600.0;

/// Resolve the flags into the pipeline's settings.
fn settings(ort_lib: Option<&Path>, args: BuildArgs) -> anyhow::Result<Settings> {
    let targets = super::bundle::resolve_targets(&args.targets)?;
    edgepack::hardware::check_device_profiles(targets.iter().map(|(t, _)| t), ort_lib)?;
    let mut variants = vec![];
    for v in &args.variants {
        variants.push(VariantMode::from_name(v).ok_or_else(|| {
            Error::usage(
                "--variants",
                format!(
                    "'{v}' is not one of {}",
                    VariantMode::ALL.map(|m| m.name()).join(", ")
                ),
            )
        })?);
    }
    // The build's order, whatever order the flag gave.
    let variants: Vec<VariantMode> = VariantMode::ALL
        .into_iter()
        .filter(|m| variants.is_empty() || variants.contains(m))
        .collect();
    let shapes = ShapeOverrides::from_args(&args.shapes, &args.dims)?;
    // Checked here so a bad range is a usage error before any step runs.
    edgepack::inputs::ValueRanges::from_args(&args.input_range)?;
    let hardware_dir = args
        .targets
        .iter()
        .map(Path::new)
        .find(|p| p.is_dir())
        .map(Path::to_path_buf);
    if args
        .host_compute
        .is_some_and(|v| !(v.is_finite() && v > 0.0))
    {
        return Err(Error::usage("--host-compute", "must be a positive number").into());
    }
    let bundle = super::bundle::options(
        ort_lib,
        &targets,
        args.latency_budget.as_deref(),
        args.accuracy_floor.as_deref(),
        None,
        &args.prefer,
        vec![],
        &args.device_profile,
        None,
        args.with_runtime,
        args.with_device_binary,
        edgepack::runtime::DEFAULT_VERSION,
        args.package.sign.as_deref(),
        hardware_dir.as_deref(),
    )?;
    let mut package = args.package.options(None, vec![], ort_lib)?;
    // Without --sample-inputs, a self-test case from generated inputs, so that `run BUNDLE`
    // on the device checks the model against the outputs it gave here.
    package.generated_self_test = Some(edgepack::package::selftest::GeneratedInputs {
        shapes: args.shapes.clone(),
        dims: args.dims.clone(),
        ranges: args.input_range.clone(),
        seed: 0,
    });
    Ok(Settings {
        model: args.model,
        output: args.output,
        targets,
        hardware_dir,
        shapes,
        input_ranges: args.input_range,
        calibration: args.calibration,
        eval: args.eval,
        variants,
        plan: Plan::resolve(&args.plan)?,
        reprofile: args.reprofile,
        profile: !args.no_profile,
        package,
        bundle,
        host_compute: args.host_compute,
        ort_lib: ort_lib.map(Path::to_path_buf),
        exe: std::env::current_exe().map_err(|e| Error::io("edgepack executable", e))?,
        quantize_limits: ChildLimits {
            timeout_s: Some(QUANTIZE_TIMEOUT_S),
            memory_limit_bytes: Some(isolate::default_memory_limit_bytes()),
        },
    })
}

pub fn run(ort_lib: Option<&Path>, args: BuildArgs) -> anyhow::Result<Outcome> {
    super::progress::set_quiet(args.quiet);
    let settings = settings(ort_lib, args)?;
    let output = settings.output.clone();
    let mut progress = Progress::default();
    let built = Build::new(settings)?.run(&mut progress)?;
    drop(progress);
    let outcome = super::bundle::report(&built.outcomes, false);
    // The HTML build report next to the bundles, then the short summary and its path.
    let targets: Vec<_> = built.outcomes.iter().map(|o| (&o.target).into()).collect();
    edgepack::report::build::finish(&output, &targets, &mut std::io::stdout())?;
    Ok(outcome)
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
