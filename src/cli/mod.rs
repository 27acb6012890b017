//! The command line: the only user of clap. Each subcommand lives in its own file and
//! turns parsed arguments into plain library settings (flag, then environment, then the
//! TOML file, then the default) before calling the library.

use clap::{Parser, Subcommand};

mod build;
mod bundle;
mod compare;
mod demo;
mod gate;
mod inspect;
mod isolation;
mod keygen;
mod lineage;
mod package;
mod profile;
mod progress;
mod quantize;
mod remeasure;
mod report;
mod run;
mod runner;
mod runtime;
mod table;
mod targets;
mod verify;

/// What a command concluded. Errors are separate (exit status 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done and every check passed (exit 0).
    Success,
    /// A gate, budget or verification said no (exit 1).
    Failed,
    /// Measurements too noisy to decide (exit 3, documented in the README).
    Inconclusive,
}

impl Outcome {
    /// The combined outcome of two steps: the worse one.
    pub fn and(self, other: Outcome) -> Outcome {
        match (self, other) {
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
    /// Internal: one profiling configuration in a child process.
    #[command(name = "__profile-worker", hide = true)]
    ProfileWorker,
    /// Quantize a model (int8, int8 weights, int4 weights, fp16, or the best that meets an
    /// accuracy target), with an accuracy, size and latency report.
    Quantize(Box<quantize::QuantizeArgs>),
    /// Compare model B against model A on the same inputs: accuracy and latency side by side.
    Compare(compare::CompareArgs),
}

/// Parse arguments, run the command, print any error as one line, return the exit status.
pub fn main() -> i32 {
    match dispatch(Cli::parse()) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("edgepack: error: {e:#}");
            2
        }
    }
}

/// The command line being run: the process's own, or the one the demo is running in
/// process (an isolated child re-runs exactly that command).
static COMMAND_LINE: std::sync::Mutex<Option<Vec<std::ffi::OsString>>> =
    std::sync::Mutex::new(None);

/// The command line of the command being run, program name first.
pub fn command_line() -> Vec<std::ffi::OsString> {
    let set = COMMAND_LINE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    set.unwrap_or_else(|| std::env::args_os().collect())
}

/// Parse and run a command line in this process, as if it had been typed.
pub fn dispatch_args(argv: &[String]) -> anyhow::Result<Outcome> {
    let cli = Cli::try_parse_from(argv)?;
    *COMMAND_LINE.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(argv.iter().map(Into::into).collect());
    let outcome = dispatch(cli);
    *COMMAND_LINE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    outcome
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
        Command::ProfileWorker => profile::worker(),
        Command::Quantize(args) => quantize::run(&cli.ort_lib, *args),
        Command::Compare(args) => compare::run(&cli.ort_lib, args),
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
