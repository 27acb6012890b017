//! The command line: the only user of clap. Each subcommand lives in its own file and
//! turns parsed arguments into plain library settings (flag, then environment, then the
//! TOML file, then the default) before calling the library.

use clap::{Parser, Subcommand};

mod demo;
mod quantize;

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
    /// Quantize a model to int8 for ONNX Runtime's CPU kernels, with an accuracy report.
    Quantize(Box<quantize::QuantizeArgs>),
}

/// Parse arguments, run the command, print any error as one line, return the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&cli.ort_lib, args),
        Command::Quantize(args) => quantize::run(&cli.ort_lib, *args).map_err(Into::into),
    };
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("edgepack: error: {e:#}");
            2
        }
    }
}
