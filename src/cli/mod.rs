//! The command line: the only user of clap. Each subcommand lives in its own file and
//! turns parsed arguments into plain library settings (flag, then environment, then the
//! TOML file, then the default) before calling the library.

use clap::{Parser, Subcommand};

mod build;
mod bundle;
mod compare;
mod completions;
mod demo;
mod flag;
mod gate;
mod inspect;
mod isolation;
mod keygen;
mod lineage;
mod package;
mod predict;
mod probe;
mod profile;
mod progress;
mod quantize;
mod remeasure;
mod report;
mod run;
mod runner;
mod runtime;
mod targets;
mod verify;

/// What a command concluded. Errors are separate (exit status 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything asked for was done and every check passed (exit 0).
    Success,
    /// A gate, budget or verification said no (exit 1).
    Failed,
    /// Measurements too noisy to decide (exit 3, documented in the README).
    Inconclusive,
    /// Stopped by SIGINT/SIGTERM after writing what it had (exit 130, as the shell's
    /// 128 + SIGINT).
    Interrupted,
}

impl Outcome {
    /// The combined outcome of two steps: the worse one.
    pub fn and(self, other: Outcome) -> Outcome {
        match (self, other) {
            (Outcome::Interrupted, _) | (_, Outcome::Interrupted) => Outcome::Interrupted,
            (Outcome::Failed, _) | (_, Outcome::Failed) => Outcome::Failed,
            (Outcome::Inconclusive, _) | (_, Outcome::Inconclusive) => Outcome::Inconclusive,
            _ => Outcome::Success,
        }
    }

    fn exit_code(self) -> i32 {
        match self {
            Outcome::Success => 0,
            Outcome::Failed => 1,
            Outcome::Inconclusive => 3,
            Outcome::Interrupted => 130,
        }
    }
}

/// edgepack: package, profile, quantize and bundle ONNX models for edge devices.
#[derive(Debug, Parser)]
#[command(name = "edgepack", version, about, long_about = None)]
pub struct Cli {
    /// Path to libonnxruntime (overrides ORT_DYLIB_PATH and the cache).
    #[arg(long, global = true, value_name = "FILE")]
    pub ort_lib: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the end-to-end demo on a real model (PP-OCR from PyPI).
    Demo(demo::DemoArgs),
    /// List hardware targets (hardware/*.toml and the detected host).
    Targets(targets::TargetsArgs),
    /// Package a model with its manifest (contract, context, self-test, lineage).
    Package(package::PackageArgs),
    /// Generate an ed25519 key pair for signing packages and bundles.
    Keygen(keygen::KeygenArgs),
    /// Verify a package or bundle (files, hashes, signature).
    Verify(verify::VerifyArgs),
    /// Bundle a package for hardware targets (variant selection, predictions).
    Bundle(bundle::BundleArgs),
    /// Show where a bundle or package came from.
    Lineage(lineage::LineageArgs),
    /// The whole pipeline: inspect, quantize, package, profile, bundle for every target.
    Build(build::BuildArgs),
    /// Run a model once on given or generated inputs; write outputs as .npy.
    Run(run::RunArgs),
    /// Install, list or locate the ONNX Runtime library.
    Runtime(runtime::RuntimeArgs),
    /// Check a profile against budgets and a baseline (exit 0 pass, 1 fail, 2 error, 3 inconclusive).
    Gate(Box<gate::GateArgs>),
    /// Write one self-contained HTML report of a profile (charts, fit, quantization).
    Report(report::ReportArgs),
    /// Describe a model: signature, opsets, ops, weights, MACs/FLOPs estimate.
    Inspect(inspect::InspectArgs),
    /// Profile latency, memory and CPU needs across query sizes, threads and providers.
    Profile(Box<profile::ProfileArgs>),
    /// Measure this device's kernels once, for `predict` (writes an edgepack.device/1 profile).
    Probe(probe::ProbeArgs),
    /// Predict a model's latency and peak memory on a probed device without running it there.
    Predict(Box<predict::PredictArgs>),
    /// Quantize a model (int8, int8 weights, int4 weights, fp16, or the best that meets an
    /// accuracy target), with an accuracy, size and latency report.
    Quantize(Box<quantize::QuantizeArgs>),
    /// Compare model B against model A on the same inputs: accuracy and latency side by side.
    Compare(compare::CompareArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    Completions(completions::CompletionsArgs),
}

/// Parse arguments, run the command, print any error as one line, return the exit status.
pub fn main() -> i32 {
    // Before anything else: every message the library writes from here on names flags.
    flag::install();
    // The profiler's child process (`sweep::WorkerCommand`) is not a subcommand: a hidden
    // clap subcommand still shows up in "did you mean" suggestions for typos.
    let outcome = match std::env::args_os().nth(1).and_then(|a| worker(&a)) {
        Some(outcome) => outcome,
        None => dispatch(Cli::parse()),
    };
    match outcome {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("edgepack: error: {e:#}");
            2
        }
    }
}

/// Hidden entry points: the first argument that makes this executable a worker child.
/// They are not clap subcommands, because a hidden subcommand still shows up in clap's
/// "did you mean" suggestions for typos.
const WORKERS: [&str; 3] = ["__profile-worker", "__pipeline-worker", "__command-worker"];

/// Run the worker named by the first argument, if it names one.
fn worker(arg: &std::ffi::OsStr) -> Option<anyhow::Result<Outcome>> {
    let which = WORKERS.iter().position(|w| arg == *w)?;
    Some(match which {
        0 => profile::worker(),
        1 => edgepack::pipeline::worker::serve()
            .map(|()| Outcome::Success)
            .map_err(Into::into),
        _ => isolation::serve(),
    })
}

/// Parse and run a command line in this process, as if it had been typed (the demo runs
/// its steps through here).
pub fn dispatch_args(argv: &[String]) -> anyhow::Result<Outcome> {
    dispatch(Cli::try_parse_from(argv)?)
}

/// Run one parsed command line (the demo runs several through here, as a user would).
fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Demo(args) => demo::run(&cli.ort_lib, args),
        Command::Targets(args) => targets::run(args),
        Command::Package(args) => package::run(cli.ort_lib.as_deref(), args),
        Command::Keygen(args) => keygen::run(args),
        Command::Verify(args) => verify::run(cli.ort_lib.as_deref(), args),
        Command::Bundle(args) => bundle::run(cli.ort_lib.as_deref(), args),
        Command::Lineage(args) => lineage::run(args),
        Command::Build(args) => build::run(cli.ort_lib.as_deref(), args),
        Command::Run(args) => run::run(cli.ort_lib.as_deref(), args),
        Command::Runtime(args) => runtime::run(cli.ort_lib.as_deref(), args),
        Command::Gate(args) => gate::run(&cli.ort_lib, *args),
        Command::Report(args) => report::run(args),
        Command::Inspect(args) => inspect::run(&cli.ort_lib, args),
        Command::Profile(args) => profile::run(&cli.ort_lib, *args),
        Command::Probe(args) => probe::run(&cli.ort_lib, args),
        Command::Predict(args) => predict::run(&cli.ort_lib, *args),
        Command::Quantize(args) => quantize::run(&cli.ort_lib, *args),
        Command::Compare(args) => compare::run(&cli.ort_lib, args),
        Command::Completions(args) => completions::run(args),
    }
}

/// ONNX Runtime session entries from repeated `KEY=VALUE` flags (keys and values trimmed;
/// the runtime's context validation judges the keys).
pub fn session_entries(
    flag: &str,
    entries: &[String],
) -> edgepack::Result<std::collections::BTreeMap<String, String>> {
    entries
        .iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| edgepack::Error::usage(flag, format!("'{kv}' is not KEY=VALUE")))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// A quantity typed on the command line (`20ms`, `512MiB`, `5%`) in SI base units, by the
/// one grammar of [`edgepack::units`]: a unit is required, so a bare number is a usage
/// error (exit 2) that names the flag and the expected form.
pub fn quantity(flag: &str, text: &str, unit: edgepack::units::Unit) -> edgepack::Result<f64> {
    edgepack::units::parse(text, unit).map_err(|e| edgepack::Error::usage(flag, e.to_string()))
}

/// [`quantity`] for an optional flag.
pub fn optional_quantity(
    flag: &str,
    text: Option<&str>,
    unit: edgepack::units::Unit,
) -> edgepack::Result<Option<f64>> {
    text.map(|t| quantity(flag, t, unit)).transpose()
}

/// Say on stderr which session entries a model's own metadata made a session apply
/// (`model::metadata`): a variant is judged the way it runs, and the user sees why.
pub fn report_model_entries(
    model: &std::path::Path,
    entries: &std::collections::BTreeMap<String, String>,
) {
    if !entries.is_empty() {
        eprintln!(
            "edgepack: {}: applying the session entries the model records: {}",
            model.display(),
            edgepack::model::metadata::describe(entries)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap's own consistency checks (conflicting names, bad `requires`, defaults that do
    /// not parse): a mistake here would otherwise show only when a user hits that flag.
    #[test]
    fn clap_command_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--help` is where reference detail lives, so every visible flag and argument of
    /// every command has help text.
    #[test]
    fn every_flag_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if !a.is_hide_set() && !builtin && a.get_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if !sub.is_hide_set() {
                    walk(sub, &format!("{path} {}", sub.get_name()), missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "edgepack", &mut missing);
        assert!(missing.is_empty(), "flags without help text: {missing:#?}");
    }

    /// Renamed flags keep their old spelling as a hidden alias for scripts written before.
    #[test]
    fn old_flag_spellings_still_parse() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("edgepack").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        };
        let Command::Profile(p) =
            parse(&["profile", "m.onnx", "--target-ci", "1%", "--json", "p.json"]).command
        else {
            panic!("not profile");
        };
        assert_eq!(p.ci_half_width.as_deref(), Some("1%"));
        assert_eq!(p.json.as_deref(), Some(std::path::Path::new("p.json")));
        let Command::Run(r) = parse(&["run", "m.onnx", "--providers", "cuda,cpu"]).command else {
            panic!("not run");
        };
        assert_eq!(r.providers, "cuda,cpu");
        let Command::Build(b) = parse(&["build", "m.onnx", "--targets", "hw/", "-o", "d"]).command
        else {
            panic!("not build");
        };
        assert_eq!(b.targets, ["hw/"]);
        let Command::Quantize(q) = parse(&[
            "quantize",
            "m.onnx",
            "-o",
            "q.onnx",
            "--mode",
            "int8",
            "--accuracy-target",
            "sqnr=30dB",
            "--latency-budget-s",
            "2",
        ])
        .command
        else {
            panic!("not quantize");
        };
        assert_eq!(q.accuracy_target, ["sqnr=30dB"]);
        assert_eq!(q.latency_budget_s, Some(2.0));
        let Command::Gate(g) = parse(&["gate", "--current", "c.json", "--json", "v.json"]).command
        else {
            panic!("not gate");
        };
        assert_eq!(g.json.as_deref(), Some(std::path::Path::new("v.json")));
    }

    /// The old hidden flag and its new spelling together are a conflict, not a silent pick.
    #[test]
    fn old_and_new_measure_time_conflict() {
        let r = Cli::try_parse_from([
            "edgepack",
            "compare",
            "a.onnx",
            "b.onnx",
            "--inputs",
            "d",
            "--measure-time",
            "2s",
            "--latency-budget-s",
            "2",
        ]);
        assert!(r.is_err());
    }
}
