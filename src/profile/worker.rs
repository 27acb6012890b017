//! One configuration of a sweep, measured in a process of its own: the child (what it
//! measures, [`run_request`]) and the parent's side of the exchange ([`measure_in_child`]).
//!
//! The parent re-executes the `edgepack` binary with a hidden subcommand
//! (`edgepack __profile-worker`) and talks to it through [`crate::isolate`]'s one protocol:
//! a [`WorkerRequest`] as JSON on its stdin, a [`crate::isolate::Reply`] holding a
//! [`WorkerReply`] as the last line of its stdout ([`measure_in_child`] on the parent's
//! side, [`serve`] on the child's). A configuration that fails inside the child (the model
//! does not load, a run fails, an allocation fails under the limit) is still a *done*
//! reply: the failure is a measured result with a [`FailureKind`]. A child that ends
//! without a reply (timeout, signal, a crash) is classified by [`classify`].
//!
//! Inside the child, in this order:
//!
//! 0. settle glibc's allocator ([`process::settle_allocator`]), so what the model's
//!    weights cost resident does not depend on the worker's own allocation history;
//! 1. load ONNX Runtime, then read RSS: `rss_before_load_bytes` (library mapped, no model);
//! 2. create the session (timed: `session_create_s`), read RSS again
//!    (`rss_after_session_bytes`) and the peak so far (`peak_rss_session_create_bytes`),
//!    then reset the peak (see [`super::process`]);
//! 3. prepare the inputs once (seeded random from the signature, or files from `--inputs`);
//! 4. the cold first run through the ordinary checked path (timed: `first_run_s`);
//! 5. bind inputs and outputs once ([`Session::bind`]), then the measurement loop
//!    ([`super::measure`]) over [`Session::run_bound`] only: ONNX Runtime's `Run`, no input
//!    copies, no output allocation;
//! 6. CPU time over wall time of the loop gives `busy_cores`; the peak RSS since step 2 is
//!    `peak_rss_bytes` (activation memory = peak - after session);
//! 7. with `--per-op`, a *second* session with ONNX Runtime's profiler on runs a few more
//!    times and its JSON is parsed ([`super::per_op`]); profiling slows every run, so it
//!    never shares a session with the timed loop.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::measure::{self, Runner};
use super::plan::MeasureSettings;
use super::process;
use super::schema::{CpuStats, FailureKind, GpuStats, LatencyStats, MemoryStats, OpShare};
use super::sweep::WorkerCommand;
use crate::error::{Error, Result};
use crate::inputs::{prepare_for, Generation, InputSources, ShapeOverrides};
use crate::isolate::{self, is_allocation_failure, signal_name, ChildEnd, ChildLimits, Reply};
use crate::runtime::{self, ExecutionContext, Provider, Session};

/// What the parent asks one child to measure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerRequest {
    pub model_path: PathBuf,
    #[serde(default)]
    pub ort_lib: Option<PathBuf>,
    pub context: ExecutionContext,
    /// Concrete input shapes by name (ignored for inputs read from `inputs_dir`).
    pub input_shapes: Vec<(String, Vec<usize>)>,
    #[serde(default)]
    pub inputs_dir: Option<PathBuf>,
    /// Sample files by input name (a sample set's member); shapes come from them.
    #[serde(default)]
    pub input_files: std::collections::BTreeMap<String, PathBuf>,
    /// Roles and `--input-range` values for generated inputs (see `inputs::Generation`).
    #[serde(default)]
    pub generation: Generation,
    pub seed: u64,
    pub measure: MeasureSettings,
    /// Whether a memory limit is in force (allocation failures then count as OOM).
    #[serde(default)]
    pub memory_limited: bool,
    /// Folder for ONNX Runtime's profiling JSON, when per-op shares are wanted.
    #[serde(default)]
    pub per_op_dir: Option<PathBuf>,
    /// Runs made with the profiler on.
    #[serde(default = "default_per_op_runs")]
    pub per_op_runs: u64,
}

fn default_per_op_runs() -> u64 {
    10
}

/// What one child measured (or why it failed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerReply {
    #[serde(default)]
    pub failure: Option<FailureKind>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub ep_used: Option<String>,
    #[serde(default)]
    pub onnxruntime_version: Option<String>,
    #[serde(default)]
    pub session_create_s: Option<f64>,
    #[serde(default)]
    pub first_run_s: Option<f64>,
    #[serde(default)]
    pub latency: Option<LatencyStats>,
    #[serde(default)]
    pub memory: Option<MemoryStats>,
    #[serde(default)]
    pub cpu: Option<CpuStats>,
    #[serde(default)]
    pub gpu: Option<GpuStats>,
    #[serde(default)]
    pub per_op: Vec<OpShare>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl WorkerReply {
    fn fail(mut self, kind: FailureKind, reason: impl Into<String>) -> Self {
        self.failure = Some(kind);
        self.reason = Some(reason.into());
        self
    }
}

/// The bound fast path as a [`Runner`]: times `Session::run_bound` and nothing else.
pub struct BoundRunner<'a> {
    session: &'a mut Session,
}

impl<'a> BoundRunner<'a> {
    /// Wrap a session whose inputs are already bound.
    pub fn new(session: &'a mut Session) -> Self {
        BoundRunner { session }
    }
}

impl Runner for BoundRunner<'_> {
    #[inline]
    fn run_once(&mut self) -> Result<f64> {
        let t = Instant::now();
        self.session.run_bound()?;
        Ok(t.elapsed().as_secs_f64())
    }

    /// The cost of an empty timed region (two `Instant::now` calls), median of 1001.
    fn timer_overhead_s(&mut self) -> f64 {
        let v: Vec<f64> = (0..1001)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(());
                t.elapsed().as_secs_f64()
            })
            .collect();
        crate::stats::median(&v).unwrap_or(0.0)
    }
}

/// Measure one configuration in this process (the child). Never returns an error: every
/// failure becomes a reply with a [`FailureKind`] and a reason.
pub fn run_request(req: &WorkerRequest) -> WorkerReply {
    process::settle_allocator();
    let mut reply = WorkerReply::default();
    let info = match runtime::ensure(req.ort_lib.as_deref()) {
        Ok(i) => i,
        Err(e) => return reply.fail(FailureKind::LoadError, e.to_string()),
    };
    reply.onnxruntime_version = info.version.clone();
    let oom_or = |kind: FailureKind, msg: String| -> (FailureKind, String) {
        if req.memory_limited && is_allocation_failure(&msg) {
            (
                FailureKind::Oom,
                format!("out of memory under the limit: {msg}"),
            )
        } else {
            (kind, msg)
        }
    };

    let before = process::rss().unwrap_or_default();
    let t = Instant::now();
    // The parent merged the model's recorded session entries into the context.
    let mut session = match Session::from_path_as_given(&req.model_path, &req.context) {
        Ok(s) => s,
        Err(e) => {
            let (k, m) = oom_or(FailureKind::LoadError, e.to_string());
            return reply.fail(k, m);
        }
    };
    reply.session_create_s = Some(t.elapsed().as_secs_f64());
    let after_session = process::rss().unwrap_or_default();
    let peak_reset = process::reset_peak_rss();
    if !peak_reset {
        reply.warnings.push(
            "peak RSS could not be reset after session creation (no /proc/self/clear_refs): \
             peak_rss_bytes includes session creation"
                .into(),
        );
    }

    let report = session.providers().clone();
    reply.ep_used = Some(report.summary());
    let requested = req.context.execution_providers.first().copied();
    if let Some(u) = report
        .unavailable
        .iter()
        .find(|u| Some(u.provider) == requested)
    {
        return reply.fail(
            FailureKind::ProviderUnavailable,
            format!(
                "execution provider {} is not available: {}",
                u.provider, u.reason
            ),
        );
    }

    let overrides = ShapeOverrides {
        shapes: if req.inputs_dir.is_some() || !req.input_files.is_empty() {
            Default::default()
        } else {
            req.input_shapes.iter().cloned().collect()
        },
        dims: Default::default(),
    };
    let mut specs = session.inputs().to_vec();
    let sources = InputSources {
        bundle: req.inputs_dir.clone(),
        files: req.input_files.clone(),
        seed: req.seed,
        ranges: req.generation.apply(&mut specs),
    };
    let inputs = match prepare_for(&specs, &overrides, &sources) {
        Ok(i) => i.tensors,
        Err(e) => return reply.fail(FailureKind::LoadError, e.to_string()),
    };

    let t = Instant::now();
    if let Err(e) = session.run(&inputs) {
        let (k, m) = oom_or(FailureKind::RunError, e.to_string());
        return reply.fail(k, m);
    }
    reply.first_run_s = Some(t.elapsed().as_secs_f64());
    if let Err(e) = session.bind(&inputs) {
        let (k, m) = oom_or(FailureKind::RunError, e.to_string());
        return reply.fail(k, m);
    }

    let cpu0 = process::cpu_time();
    let wall0 = Instant::now();
    let m = {
        let mut runner = BoundRunner::new(&mut session);
        measure::measure_after_cold(
            &mut runner,
            &req.measure.protocol(),
            reply.first_run_s.unwrap_or(0.0),
        )
    };
    let wall_s = wall0.elapsed().as_secs_f64();
    let cpu_s = (process::cpu_time() - cpu0).as_secs_f64();
    let m = match m {
        Ok(m) => m,
        Err(e) => {
            let (k, msg) = oom_or(FailureKind::RunError, e.to_string());
            return reply.fail(k, msg);
        }
    };
    let peak = process::rss().unwrap_or_default();
    reply.memory = Some(MemoryStats {
        rss_before_load_bytes: before.current_bytes,
        rss_after_session_bytes: after_session.current_bytes,
        peak_rss_bytes: peak.peak_bytes.max(after_session.current_bytes),
        peak_rss_session_create_bytes: Some(after_session.peak_bytes),
    });
    reply.cpu = Some(CpuStats {
        cpu_time_s: cpu_s,
        wall_time_s: wall_s,
        busy_cores: if wall_s > 0.0 { cpu_s / wall_s } else { 0.0 },
    });
    reply
        .warnings
        .extend(m.warnings.iter().map(|w| w.to_string()));
    reply.latency = Some(m.to_latency_stats());
    if requested == Some(Provider::Cuda) {
        reply.gpu = super::gpu::query();
    }
    drop(session);

    if let Some(dir) = &req.per_op_dir {
        match per_op_shares(req, &inputs, dir) {
            Ok(ops) => reply.per_op = ops,
            Err(e) => reply
                .warnings
                .push(format!("per-op profile unavailable: {e}")),
        }
    }
    reply
}

/// The child side: read one [`WorkerRequest`] from stdin, measure it, answer with the
/// [`WorkerReply`] (`edgepack __profile-worker`).
pub fn serve() -> Result<()> {
    isolate::serve(|req: WorkerRequest| Ok::<_, std::convert::Infallible>(run_request(&req)))
}

/// What [`measure_in_child`] got back: the reply (the child's own, or a failure classified
/// from how it ended) and how the child ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildMeasurement {
    pub reply: WorkerReply,
    pub end: ChildEnd,
}

/// Measure one configuration in a child process of its own, started by `worker`, within
/// `limits`. An error means the child could not be started at all; every way the child
/// itself fails is a [`WorkerReply`] with a [`FailureKind`].
pub fn measure_in_child(
    worker: &WorkerCommand,
    req: &WorkerRequest,
    limits: ChildLimits,
) -> Result<ChildMeasurement> {
    let mut cmd = Command::new(&worker.program);
    cmd.args(&worker.args);
    let exchange = isolate::exchange::<_, WorkerReply>(cmd, req, limits)?;
    Ok(ChildMeasurement {
        reply: classify(&exchange, req.memory_limited, limits.timeout_s),
        end: exchange.output.end,
    })
}

/// Turn what a child produced into a reply: its own reply when it exited cleanly,
/// otherwise a failure classified as timeout, OOM, signal or run error.
pub fn classify(
    exchange: &isolate::Exchange<WorkerReply>,
    memory_limited: bool,
    timeout_s: Option<f64>,
) -> WorkerReply {
    let out = &exchange.output;
    let tail = out.stderr_tail(400);
    let with_tail = |msg: String| {
        if tail.is_empty() {
            msg
        } else {
            format!("{msg}: {tail}")
        }
    };
    let fail = |kind: FailureKind, reason: String| WorkerReply::default().fail(kind, reason);
    let oom_text = is_allocation_failure(&tail);
    match out.end {
        ChildEnd::TimedOut => fail(
            FailureKind::Timeout,
            format!(
                "no result within the {} timeout; its process group was killed",
                crate::units::format_duration_s(timeout_s.unwrap_or(0.0))
            ),
        ),
        ChildEnd::Exited(0) => match &exchange.reply {
            Some(Ok(Reply::Done(r))) => r.clone(),
            Some(Ok(Reply::Error(e))) => fail(FailureKind::RunError, with_tail(e.clone())),
            Some(Err(e)) => fail(
                FailureKind::RunError,
                with_tail(format!("the worker's reply is not valid JSON ({e})")),
            ),
            None => fail(
                FailureKind::RunError,
                with_tail("the worker exited without a reply".into()),
            ),
        },
        ChildEnd::Exited(code) => {
            if memory_limited && oom_text {
                fail(
                    FailureKind::Oom,
                    with_tail(format!(
                        "out of memory under the limit (exit status {code})"
                    )),
                )
            } else {
                fail(
                    FailureKind::RunError,
                    with_tail(format!("the worker exited with status {code}")),
                )
            }
        }
        ChildEnd::Signaled(sig) => {
            // Under a memory limit, an allocation failure surfaces as an abort (Rust's
            // allocator, C++ terminate) or the kernel's OOM killer (SIGKILL).
            let oom = memory_limited && (oom_text || sig == libc::SIGKILL || sig == libc::SIGABRT);
            if oom {
                fail(
                    FailureKind::Oom,
                    with_tail(format!(
                        "out of memory under the limit (killed by {})",
                        signal_name(sig)
                    )),
                )
            } else {
                fail(
                    FailureKind::Signal,
                    with_tail(format!("the worker was killed by {}", signal_name(sig))),
                )
            }
        }
    }
}

fn per_op_shares(
    req: &WorkerRequest,
    inputs: &[(String, crate::tensor::Tensor)],
    dir: &std::path::Path,
) -> Result<Vec<OpShare>> {
    let ctx = ExecutionContext {
        profiling_prefix: Some(dir.join(format!("ort-profile-{}", std::process::id()))),
        ..req.context.clone()
    };
    let mut s = Session::from_path_as_given(&req.model_path, &ctx)?;
    s.bind(inputs)?;
    for _ in 0..req.per_op_runs.max(1) {
        s.run_bound()?;
    }
    let path = s
        .end_profiling()?
        .ok_or_else(|| Error::Runtime("profiling was not enabled".into()))?;
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let _ = std::fs::remove_file(&path);
    super::per_op::top_shares(&path, &text, 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::isolate::ChildOutput;

    #[test]
    fn recognises_allocation_failures() {
        assert!(is_allocation_failure(
            "memory allocation of 1048576 bytes failed"
        ));
        assert!(is_allocation_failure("ONNX Runtime: run: std::bad_alloc"));
        assert!(is_allocation_failure(
            "Failed to allocate memory for requested buffer of size 123"
        ));
        assert!(!is_allocation_failure("input 'x': shape mismatch"));
    }

    /// A child's ending as `isolate::exchange` hands it over: `stdout` holds the lines
    /// before the reply, which is parsed from the last line.
    fn exchanged(end: ChildEnd, stdout: &str, stderr: &str) -> isolate::Exchange<WorkerReply> {
        let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
        isolate::Exchange {
            output: ChildOutput {
                end,
                stdout: vec![],
                stderr: stderr.as_bytes().to_vec(),
                wall_s: 0.1,
            },
            reply: last.map(|l| serde_json::from_str(l).map_err(|e| e.to_string())),
        }
    }

    #[test]
    fn classifies_child_endings() {
        let r = classify(&exchanged(ChildEnd::TimedOut, "", ""), false, Some(5.0));
        assert_eq!(r.failure, Some(FailureKind::Timeout));
        assert!(r.reason.unwrap().contains("5.000 s timeout"));

        let r = classify(
            &exchanged(ChildEnd::Signaled(libc::SIGSEGV), "", "boom"),
            false,
            None,
        );
        assert_eq!(r.failure, Some(FailureKind::Signal));
        assert!(r.reason.unwrap().contains("SIGSEGV: boom"));

        let r = classify(
            &exchanged(
                ChildEnd::Signaled(libc::SIGABRT),
                "",
                "memory allocation of 4096 bytes failed",
            ),
            true,
            None,
        );
        assert_eq!(r.failure, Some(FailureKind::Oom));

        let r = classify(
            &exchanged(ChildEnd::Exited(101), "", "panicked"),
            true,
            None,
        );
        assert_eq!(r.failure, Some(FailureKind::RunError));

        let reply = WorkerReply {
            first_run_s: Some(0.5),
            ..Default::default()
        };
        let line = serde_json::to_string(&Reply::Done(reply.clone())).unwrap();
        let r = classify(
            &exchanged(ChildEnd::Exited(0), &format!("noise\n{line}\n"), ""),
            false,
            None,
        );
        assert_eq!(r, reply);
        let r = classify(&exchanged(ChildEnd::Exited(0), "not json", ""), false, None);
        assert_eq!(r.failure, Some(FailureKind::RunError));
        let r = classify(&exchanged(ChildEnd::Exited(0), "", ""), false, None);
        assert_eq!(r.failure, Some(FailureKind::RunError));
        let bad =
            serde_json::to_string(&Reply::<WorkerReply>::Error("bad request".into())).unwrap();
        let r = classify(&exchanged(ChildEnd::Exited(0), &bad, ""), false, None);
        assert_eq!(r.reason.as_deref(), Some("bad request"));
    }

    #[test]
    fn request_round_trips_as_strict_json() {
        let req = WorkerRequest {
            model_path: "m.onnx".into(),
            ort_lib: None,
            context: ExecutionContext::single_threaded(),
            input_shapes: vec![("x".into(), vec![1, 3, 8, 8])],
            inputs_dir: None,
            input_files: Default::default(),
            generation: Default::default(),
            seed: 7,
            measure: MeasureSettings::default(),
            memory_limited: false,
            per_op_dir: None,
            per_op_runs: 10,
        };
        let j = serde_json::to_string(&req).unwrap();
        assert_eq!(serde_json::from_str::<WorkerRequest>(&j).unwrap(), req);
        let bad = j.replace("\"seed\"", "\"sede\"");
        assert!(serde_json::from_str::<WorkerRequest>(&bad).is_err());
    }
}
