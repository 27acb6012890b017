//! Running a command's model work in an isolated child: `--memory-limit`, `--timeout`, and
//! the typed request that carries the command to the child (own process group,
//! parent-death signal, `RLIMIT_DATA`, wall-clock timeout; see [`edgepack::isolate`]).
//!
//! Any subcommand that loads and runs a model for the user can use it in three lines:
//! flatten [`IsolationArgs`] into its (serde-derived) arguments, add a [`Command`] variant,
//! check its inputs as usual, then
//! `if !args.isolation.isolated_child { return isolation::run_isolated(&model, ort_lib, Command::X(args)) }`
//! before touching ONNX Runtime. The parsed arguments travel to the child as JSON on its
//! stdin (`edgepack __command-worker`), never as an argv string; the child runs the same
//! function with `isolated_child` set, writes the outputs (each atomically) and answers
//! with a typed [`edgepack::isolate::Reply`]. The parent reports a model that exhausts
//! memory, hangs or crashes as one line naming the model, exit status 2.

use std::path::{Path, PathBuf};

use clap::Args;
use edgepack::error::Error;
use edgepack::isolate::{self, ChildLimits, Failure};
use edgepack::units::Unit;
use serde::{Deserialize, Serialize};

use super::Outcome;

/// `--memory-limit`, `--timeout`, and whether this process is already the isolated child.
#[derive(Debug, Args, Clone, Serialize, Deserialize)]
pub struct IsolationArgs {
    /// Memory limit for the process that runs the model, e.g. 2GiB (default: 3/4 of RAM).
    /// A model whose constant shapes already need more is refused before it runs.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Wall-clock limit for the process that runs the model, e.g. 30s; it is killed after.
    #[arg(long, value_name = "DURATION", default_value = "600s")]
    pub timeout: String,
    /// Set in the isolated child (by [`serve`]), never from the command line.
    #[arg(skip)]
    #[serde(default)]
    pub isolated_child: bool,
}

impl IsolationArgs {
    /// Resolve the flags into limits.
    pub fn limits(&self) -> anyhow::Result<ChildLimits> {
        let memory = match &self.memory_limit {
            Some(t) => {
                let b = super::quantity("--memory-limit", t, Unit::Bytes)?;
                if b < 1.0 {
                    return Err(
                        Error::usage("--memory-limit", format!("'{t}' must be positive")).into(),
                    );
                }
                b as u64
            }
            None => isolate::default_memory_limit_bytes(),
        };
        let timeout = super::quantity("--timeout", &self.timeout, Unit::Seconds)?;
        if !(timeout > 0.0 && timeout.is_finite()) {
            return Err(
                Error::usage("--timeout", format!("'{}' must be positive", self.timeout)).into(),
            );
        }
        Ok(ChildLimits {
            timeout_s: Some(timeout),
            memory_limit_bytes: Some(memory),
        })
    }
}

/// A command whose model work runs in an isolated child, with its parsed arguments.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Run(super::run::RunArgs),
    Quantize(Box<super::quantize::QuantizeArgs>),
    Compare(super::compare::CompareArgs),
}

impl Command {
    fn isolation(&self) -> &IsolationArgs {
        match self {
            Command::Run(a) => &a.isolation,
            Command::Quantize(a) => &a.isolation,
            Command::Compare(a) => &a.isolation,
        }
    }

    fn isolation_mut(&mut self) -> &mut IsolationArgs {
        match self {
            Command::Run(a) => &mut a.isolation,
            Command::Quantize(a) => &mut a.isolation,
            Command::Compare(a) => &mut a.isolation,
        }
    }
}

/// What the parent sends the child.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    ort_lib: Option<PathBuf>,
    command: Command,
}

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "__command-worker";

/// Run `command` in an isolated child within its `--memory-limit` and `--timeout`, relay
/// what it prints, and return its outcome. `model` names the subject in the one-line
/// report of an abnormal end.
pub fn run_isolated(
    model: &Path,
    ort_lib: Option<&Path>,
    command: Command,
) -> anyhow::Result<Outcome> {
    let limits = command.isolation().limits()?;
    let exe = std::env::current_exe().map_err(|e| Error::io("edgepack executable", e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg(SUBCOMMAND);
    let request = Request {
        ort_lib: ort_lib.map(Path::to_path_buf),
        command,
    };
    let called = isolate::call::<_, Outcome>(cmd, &request, limits)?;
    {
        use std::io::Write;
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(&called.stdout);
        let _ = so.flush();
    }
    match called.result {
        // The child's own error is printed once, by our caller; its other stderr lines
        // (ONNX Runtime's noise before the error) are dropped with it.
        Err(Failure::Reported(line)) => Err(anyhow::anyhow!(line)),
        // An abnormal end is ours to describe in one line.
        Err(Failure::Ended(why)) => {
            Err(Error::file(model, format!("running the model {why}")).into())
        }
        Ok(outcome) => {
            eprint!("{}", String::from_utf8_lossy(&called.log));
            Ok(outcome)
        }
    }
}

/// The child's side: run the command the parent sent, as the isolated child.
pub fn serve() -> anyhow::Result<Outcome> {
    isolate::serve(|mut req: Request| {
        req.command.isolation_mut().isolated_child = true;
        let ort_lib = req.ort_lib;
        let result = match req.command {
            Command::Run(args) => super::run::run(ort_lib.as_deref(), args),
            Command::Quantize(args) => super::quantize::run(&ort_lib, *args),
            Command::Compare(args) => super::compare::run(&ort_lib, args),
        };
        result
    })?;
    Ok(Outcome::Success)
}
