//! Running a command's model work in an isolated child: `--memory-limit`, `--timeout`, and
//! the re-run of the same command line as a child process (own process group, parent-death
//! signal, `RLIMIT_DATA`, wall-clock timeout; see [`edgepack::isolate`]).
//!
//! Any subcommand that loads and runs a model for the user can use it in three lines:
//! flatten [`IsolationArgs`] into its arguments, check its inputs as usual, then
//! `if !args.isolation.isolated_child { return isolation::rerun_isolated(&model, limits) }`
//! before touching ONNX Runtime. The child does the real work and writes the outputs (each
//! atomically); the parent reports a model that exhausts memory, hangs or crashes as one
//! line naming the model, exit status 2.

use std::path::Path;

use clap::Args;
use edgepack::error::Error;
use edgepack::isolate::{self, ChildEnd, ChildLimits};
use edgepack::units::Unit;

use super::Outcome;

/// `--memory-limit`, `--timeout` and the hidden child marker.
#[derive(Debug, Args, Clone)]
pub struct IsolationArgs {
    /// Memory limit for the process that runs the model, e.g. 2GiB (default: 3/4 of RAM).
    /// A model whose constant shapes already need more is refused before it runs.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Wall-clock limit for the process that runs the model, e.g. 30s; it is killed after.
    #[arg(long, value_name = "DURATION", default_value = "600s")]
    pub timeout: String,
    /// Internal: this process is the isolated child that runs the model.
    #[arg(long, hide = true)]
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

/// Run this same command line again as an isolated child and relay what it says. `model`
/// names the subject in the one-line report of an abnormal end.
pub fn rerun_isolated(model: &Path, limits: ChildLimits) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().map_err(|e| Error::io("edgepack executable", e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(super::command_line().into_iter().skip(1))
        .arg("--isolated-child");
    let out = isolate::run_isolated(cmd, b"", limits)?;
    {
        use std::io::Write;
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(&out.stdout);
        let _ = so.flush();
    }
    // One line on failure: an abnormal end is ours to describe (the child's own stderr is
    // then ONNX Runtime's noise); an error exit relays the child's one error line;
    // otherwise the child's progress lines pass through.
    if let Some(why) = isolate::abnormal_end(&out, &limits) {
        return Err(Error::file(model, format!("running the model {why}")).into());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error_line = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("edgepack: error: "))
        .map(str::to_string);
    if !matches!(out.end, ChildEnd::Exited(2)) {
        eprint!("{stderr}");
    }
    match out.end {
        ChildEnd::Exited(0) => Ok(Outcome::Success),
        ChildEnd::Exited(1) => Ok(Outcome::Failed),
        ChildEnd::Exited(3) => Ok(Outcome::Inconclusive),
        other => Err(anyhow::anyhow!(error_line.unwrap_or_else(|| format!(
            "{}: the process running the model ended with {other:?}",
            model.display()
        )))),
    }
}
