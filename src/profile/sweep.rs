//! A sweep: the cross product of query sizes, thread counts and execution providers, each
//! configuration measured in child processes of its own ([`crate::isolate`],
//! [`super::worker`]), one per round ([`super::rounds`]: the plan's `measure.rounds`
//! passes, alternating direction), collected into one [`Profile`].
//!
//! Query sizes. The batch is the leading dim of every input whose leading dim is not fixed.
//! Its values come from `--batch`, else from the leading value of a `--shape` given for
//! such an input, else from the plan's `sizes.batch`. A `--batch` on a model whose leading
//! dims are all fixed is an error (a plan's batch list is then ignored, since the plan was
//! not written for this model). Other symbolic dims sweep over `sizes.dims` / `--dim`;
//! every combination is resolved against the model's signature *before* anything runs, so
//! a `--shape` that conflicts with the model fails the whole command with exit status 2
//! instead of failing N children.
//!
//! Robustness. The profile JSON is rewritten atomically after every configuration, so a
//! crash (of the machine, or of the parent) late in a sweep loses nothing measured. Each
//! rewrite lists the configurations not measured yet (`not_run`), so a file left by a
//! killed sweep reads as incomplete. SIGINT/SIGTERM during a sweep stop it after the
//! current child: the profile is written with `interrupted` and its never-run
//! configurations, and the caller says so (the configuration whose child the signal
//! killed counts as never run, not as failed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use super::needs;
use super::plan::Plan;
use super::schema::{ConfigResult, Host, ModelRef, Profile, Status, PROFILE_SCHEMA};
use super::worker::{measure_in_child, WorkerReply, WorkerRequest};
use crate::error::{Error, Result};
use crate::inputs::{
    prepare_for, resolve_shapes, Dim, Generation, InputSources, ShapeOverrides, TensorSpec,
};
use crate::isolate::{ChildEnd, ChildLimits};
use crate::runtime::{ExecutionContext, GraphOptimizationLevel, Provider, ProviderFallback};
use crate::setting::Setting;

/// How to start a worker: the program (normally the current `edgepack` executable) and
/// the arguments that select the hidden worker subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerCommand {
    /// The running executable with `__profile-worker`.
    pub fn current_exe() -> Result<Self> {
        let program = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
        Ok(WorkerCommand {
            program,
            args: vec!["__profile-worker".into()],
        })
    }
}

/// Everything a sweep needs, resolved from flags and the plan.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub model_path: PathBuf,
    /// How the profile names the model (the path, or `package!inner/path`).
    pub model_label: String,
    /// Session settings the sweep does not vary (memory flags, inter-op threads, execution
    /// mode): a package's stored context, or the default for a bare model. Threads,
    /// providers and the optimization level come from the plan.
    pub base_context: ExecutionContext,
    pub plan: Plan,
    /// `--shape` values (whole shapes by input name).
    pub shapes: ShapeOverrides,
    /// Whether the batch list came from `--batch` (then a fixed-batch model is an error).
    pub batch_from_cli: bool,
    /// Whether the dims sweep came from `--dim`.
    pub dims_from_cli: bool,
    pub inputs_dir: Option<PathBuf>,
    /// Sample input sets (input name -> file, see `inputs::sample_files`): each distinct
    /// set of shapes they show is one query size, measured on the first sample showing it.
    pub samples: Vec<BTreeMap<String, PathBuf>>,
    /// Roles read from the graph and `--input-range` values, for the workers.
    pub generation: Generation,
    pub per_op: bool,
    pub seed: u64,
    pub ort_lib: Option<PathBuf>,
    pub json_path: Option<PathBuf>,
    pub worker: WorkerCommand,
}

/// One configuration to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSpec {
    pub id: String,
    pub ep: String,
    pub threads: usize,
    pub batch: Option<i64>,
    pub dims: BTreeMap<String, i64>,
    pub input_shapes: Vec<(String, Vec<usize>)>,
    /// The sample files this configuration reads (input name -> file); empty when its
    /// inputs are generated or come from `inputs_dir`.
    pub input_files: BTreeMap<String, PathBuf>,
}

/// Where a sweep is: child `index` of `total` (0-based), in round `round` of `rounds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub index: usize,
    pub total: usize,
    pub round: usize,
    pub rounds: usize,
}

impl Step {
    /// `round 2/3 · ` when there are several rounds, else nothing (for progress lines).
    pub fn round_prefix(&self) -> String {
        if self.rounds > 1 {
            format!("round {}/{} · ", self.round + 1, self.rounds)
        } else {
            String::new()
        }
    }
}

/// Hooks for progress and tables while a sweep runs.
pub trait SweepObserver {
    /// One round of a configuration is about to start in its own child.
    fn started(&mut self, _step: Step, _config: &ConfigSpec) {}
    /// One round of a configuration finished (ok or failed): `round` is that process's
    /// result, `merged` the configuration's figures over its rounds so far.
    fn finished(&mut self, _step: Step, _round: &ConfigResult, _merged: &ConfigResult) {}
}

/// The order children run in: `rounds` passes over `n` configurations, forward then
/// backward (A B C, C B A, A B C, ...), so a drift of the machine over the sweep's minutes
/// lands on every configuration alike and the same configuration never runs twice in a
/// row across a pass boundary by accident of order alone. Pairs are (round, config).
pub fn round_order(n: usize, rounds: usize) -> Vec<(usize, usize)> {
    (0..rounds)
        .flat_map(|r| (0..n).map(move |i| (r, if r % 2 == 0 { i } else { n - 1 - i })))
        .collect()
}

/// An observer that does nothing.
pub struct Silent;
impl SweepObserver for Silent {}

/// One query size: the batch value, the symbolic dims and the concrete input shapes.
type QuerySize = (
    Option<i64>,
    BTreeMap<String, i64>,
    Vec<(String, Vec<usize>)>,
);

fn batch_specs(specs: &[TensorSpec]) -> Vec<&TensorSpec> {
    specs
        .iter()
        .filter(|s| {
            s.dims
                .as_ref()
                .and_then(|d| d.first())
                .is_some_and(|d| !matches!(d, Dim::Fixed(_)))
        })
        .collect()
}

/// The symbols naming the leading (batch) dim of `batchers`.
fn leading_symbols<'a>(batchers: &[&'a TensorSpec]) -> Vec<&'a str> {
    batchers
        .iter()
        .filter_map(|s| match s.dims.as_ref()?.first()? {
            Dim::Symbol(x) => Some(x.as_str()),
            _ => None,
        })
        .collect()
}

fn cross<T: Clone>(axes: &[(String, Vec<T>)]) -> Vec<Vec<(String, T)>> {
    let mut out: Vec<Vec<(String, T)>> = vec![vec![]];
    for (k, vs) in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                vs.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((k.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    out
}

/// Expand the plan into configurations, resolving every input shape against the model's
/// signature `specs`. Errors (exit status 2) name the flag, input or symbol at fault.
pub fn expand(specs: &[TensorSpec], opts: &SweepOptions) -> Result<Vec<ConfigSpec>> {
    let plan = &opts.plan.file;
    let model = opts.model_path.display().to_string();
    let batchers = batch_specs(specs);
    let batch_symbols = leading_symbols(&batchers);
    // (batch value, dims, shapes) per query size.
    let mut sizes: Vec<QuerySize> = Vec::new();
    // The sample files of each size (parallel to `sizes`).
    let mut size_files: Vec<BTreeMap<String, PathBuf>> = Vec::new();

    if !opts.samples.is_empty() {
        if opts.batch_from_cli || opts.dims_from_cli || !opts.shapes.shapes.is_empty() {
            return Err(Error::usage(
                Setting::Inputs,
                format!(
                    "the samples fix the shapes; drop {}, {} and {}",
                    Setting::Batch,
                    Setting::Dim,
                    Setting::Shape
                ),
            ));
        }
        for files in &opts.samples {
            let sources = InputSources {
                files: files.clone(),
                seed: opts.seed,
                ..Default::default()
            };
            let shapes = shapes_from(specs, &sources)?;
            if sizes.iter().any(|(_, _, s)| s == &shapes) {
                continue;
            }
            let (batch, dims) = describe(specs, &shapes);
            sizes.push((batch, dims, shapes));
            size_files.push(files.clone());
        }
    } else if let Some(dir) = &opts.inputs_dir {
        if opts.batch_from_cli || opts.dims_from_cli || !opts.shapes.shapes.is_empty() {
            return Err(Error::usage(
                Setting::Inputs,
                format!(
                    "the input files fix the shapes; drop {}, {} and {}",
                    Setting::Batch,
                    Setting::Dim,
                    Setting::Shape
                ),
            ));
        }
        let sources = InputSources {
            bundle: Some(dir.clone()),
            seed: opts.seed,
            ..Default::default()
        };
        let shapes = shapes_from(specs, &sources)?;
        let (batch, dims) = describe(specs, &shapes);
        sizes.push((batch, dims, shapes));
    } else {
        let shape_gives_batch = batchers
            .iter()
            .any(|s| opts.shapes.shapes.contains_key(&s.name));
        // A dim that names the batch symbol (`--dim batch=8`, or a plan's `[sizes.dims]`)
        // is the batch: it sets the batch where nothing else does, and must agree with
        // `--batch` where both are given.
        let dim_batch = plan
            .sizes
            .dims
            .iter()
            .find(|(sym, _)| batch_symbols.contains(&sym.as_str()));
        if let (Some((sym, values)), true) = (dim_batch, opts.batch_from_cli) {
            if values != &plan.sizes.batch {
                return Err(Error::usage(
                    Setting::Dim,
                    format!(
                        "'{sym}' is {model}'s batch dim: {} {sym}={} and {} {} disagree; give one",
                        Setting::Dim,
                        join_values(values),
                        Setting::Batch,
                        join_values(&plan.sizes.batch)
                    ),
                ));
            }
        }
        let batches: Vec<i64> = if let (Some((_, values)), false) = (dim_batch, shape_gives_batch) {
            values.clone()
        } else if opts.batch_from_cli {
            if batchers.is_empty() {
                let first = specs
                    .first()
                    .map(|s| format!(": input '{}' is {}", s.name, s.shape_text()))
                    .unwrap_or_default();
                return Err(Error::usage(
                    Setting::Batch,
                    format!(
                        "{model} has a fixed batch dim{first}; drop {}",
                        Setting::Batch
                    ),
                ));
            }
            plan.sizes.batch.clone()
        } else if shape_gives_batch || batchers.is_empty() {
            vec![]
        } else if plan.sizes.batch.is_empty() {
            vec![1]
        } else {
            plan.sizes.batch.clone()
        };
        let mut known_symbols: Vec<String> = Vec::new();
        for d in specs.iter().flat_map(|s| s.dims.iter().flatten()) {
            if let Dim::Symbol(s) = d {
                if !known_symbols.contains(s) {
                    known_symbols.push(s.clone());
                }
            }
        }
        let mut dim_axes: Vec<(String, Vec<i64>)> = Vec::new();
        for (sym, values) in &plan.sizes.dims {
            if !batches.is_empty() && batch_symbols.contains(&sym.as_str()) {
                continue; // the batch axis, above
            }
            if !known_symbols.contains(sym) {
                if !opts.dims_from_cli {
                    continue; // a plan's dims for another model
                }
                return Err(Error::usage(
                    Setting::Dim,
                    format!(
                        "{model} has no symbolic dim '{sym}' (its symbols: {})",
                        if known_symbols.is_empty() {
                            "none".to_string()
                        } else {
                            known_symbols.join(", ")
                        }
                    ),
                ));
            }
            dim_axes.push((sym.clone(), values.clone()));
        }
        let batch_axis: Vec<Option<i64>> = if batches.is_empty() {
            vec![None]
        } else {
            batches.iter().copied().map(Some).collect()
        };
        for b in batch_axis {
            for combo in cross(&dim_axes) {
                let mut ov = opts.shapes.clone();
                for (sym, v) in &combo {
                    ov.dims.insert(sym.clone(), *v as usize);
                }
                if let Some(b) = b {
                    apply_batch(&batchers, &mut ov, b as usize);
                }
                let shapes = resolve_shapes(specs, &ov, &BTreeMap::new())?;
                let named: Vec<(String, Vec<usize>)> =
                    specs.iter().map(|s| s.name.clone()).zip(shapes).collect();
                let (batch, dims) = describe(specs, &named);
                sizes.push((batch, dims, named));
            }
        }
    }

    size_files.resize(sizes.len(), BTreeMap::new());
    let mut out = Vec::new();
    for ep in &plan.run.execution_providers {
        for ((batch, dims, shapes), files) in sizes.iter().zip(&size_files) {
            for &t in &plan.run.threads {
                let mut id = format!("ep={ep} threads={t}");
                if let Some(b) = batch {
                    id.push_str(&format!(" batch={b}"));
                }
                for (k, v) in dims {
                    if !batch_symbols.contains(&k.as_str()) {
                        id.push_str(&format!(" {k}={v}"));
                    }
                }
                if batch.is_none() && dims.is_empty() {
                    let s: Vec<String> = shapes
                        .iter()
                        .map(|(n, s)| format!("{n}={}", crate::tensor::format_shape(s)))
                        .collect();
                    if !s.is_empty() {
                        id.push(' ');
                        id.push_str(&s.join(" "));
                    }
                }
                out.push(ConfigSpec {
                    id,
                    ep: ep.clone(),
                    threads: t,
                    batch: *batch,
                    dims: dims.clone(),
                    input_shapes: shapes.clone(),
                    input_files: files.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The input shapes that sample files give (read once, as the worker will read them).
fn shapes_from(specs: &[TensorSpec], sources: &InputSources) -> Result<Vec<(String, Vec<usize>)>> {
    let tensors = prepare_for(specs, &ShapeOverrides::default(), sources)?.tensors;
    Ok(tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.shape().to_vec()))
        .collect())
}

fn join_values(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

fn apply_batch(batchers: &[&TensorSpec], ov: &mut ShapeOverrides, b: usize) {
    for s in batchers {
        if let Some(shape) = ov.shapes.get_mut(&s.name) {
            if let Some(first) = shape.first_mut() {
                *first = b;
            }
            continue;
        }
        let dims = s.dims.as_ref().expect("batch specs have dims");
        match &dims[0] {
            Dim::Symbol(sym) => {
                ov.dims.insert(sym.clone(), b);
            }
            _ => {
                // An anonymous leading dim cannot be named; when every other dim is fixed
                // the whole shape is known. Otherwise resolution reports what to pass.
                let rest: Option<Vec<usize>> = dims[1..].iter().map(Dim::fixed).collect();
                if let Some(rest) = rest {
                    let mut shape = vec![b];
                    shape.extend(rest);
                    ov.shapes.insert(s.name.clone(), shape);
                }
            }
        }
    }
}

/// The batch (leading dim of the first batch-carrying input) and the value of every
/// symbolic dim in concrete `shapes`.
fn describe(
    specs: &[TensorSpec],
    shapes: &[(String, Vec<usize>)],
) -> (Option<i64>, BTreeMap<String, i64>) {
    let mut dims = BTreeMap::new();
    let mut batch = None;
    for spec in specs {
        let Some(shape) = shapes.iter().find(|(n, _)| n == &spec.name).map(|x| &x.1) else {
            continue;
        };
        let Some(ds) = &spec.dims else { continue };
        for (i, d) in ds.iter().enumerate() {
            if let (Dim::Symbol(s), Some(v)) = (d, shape.get(i)) {
                dims.insert(s.clone(), *v as i64);
            }
            if i == 0 && !matches!(d, Dim::Fixed(_)) && batch.is_none() {
                batch = shape.first().map(|v| *v as i64);
            }
        }
    }
    (batch, dims)
}

/// The sha256 (hex) and size of a file.
pub fn file_sha256(path: &Path) -> Result<(String, u64)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok((hex::encode(Sha256::digest(&bytes)), bytes.len() as u64))
}

/// A description of this machine.
pub fn host() -> Host {
    use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let cpu_model = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .unwrap_or_default();
    Host {
        os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_string()),
        arch: std::env::consts::ARCH.into(),
        cpu_model,
        logical_cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(sys.cpus().len()),
        physical_cores: System::physical_core_count(),
        total_memory_bytes: sys.total_memory(),
        isa_features: crate::isa::host_features(),
    }
}

fn context_for(
    base: &ExecutionContext,
    plan: &Plan,
    ep: &str,
    threads: usize,
) -> Result<ExecutionContext> {
    let provider = Provider::from_name(ep)?;
    let mut providers = vec![provider];
    if provider != Provider::Cpu {
        providers.push(Provider::Cpu);
    }
    Ok(ExecutionContext {
        intra_op_threads: (threads > 0).then_some(threads),
        graph_optimization_level: GraphOptimizationLevel::from_name(
            plan.file.run.graph_optimization_level.as_str(),
        )?,
        execution_providers: providers,
        // Record, then fail the configuration ourselves with the reason: a clear failed
        // config instead of a silent CPU fallback.
        provider_fallback: ProviderFallback::Record,
        profiling_prefix: None,
        optimized_model_path: None,
        ..base.clone()
    })
}

/// One child's reply as a configuration result. `cores` is what the machine offers this
/// process: a configuration with that many threads (or ONNX Runtime's default, one per
/// core) is marked as using every core.
fn result_of(c: &ConfigSpec, reply: WorkerReply, cores: usize) -> ConfigResult {
    let status = if reply.failure.is_some() {
        Status::Failed
    } else {
        Status::Ok
    };
    let throughput = reply
        .latency
        .as_ref()
        .and_then(|l| (l.p50_s > 0.0).then(|| c.batch.unwrap_or(1).max(1) as f64 / l.p50_s));
    ConfigResult {
        id: c.id.clone(),
        ep_requested: c.ep.clone(),
        threads: c.threads,
        batch: c.batch,
        dims: c.dims.clone(),
        input_shapes: c
            .input_shapes
            .iter()
            .map(|(n, s)| (n.clone(), s.iter().map(|&d| d as i64).collect()))
            .collect(),
        status,
        failure: reply.failure,
        // One line per reason: tables and logs print it after the config id.
        reason: reply
            .reason
            .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" ")),
        ep_used: reply.ep_used,
        session_create_s: reply.session_create_s,
        first_run_s: reply.first_run_s,
        latency: reply.latency,
        throughput_items_per_s: throughput,
        memory: reply.memory,
        cpu: reply.cpu,
        gpu: reply.gpu,
        per_op: reply.per_op,
        warnings: reply.warnings,
        uses_all_cores: c.threads == 0 || c.threads >= cores,
    }
}

/// Write the profile JSON atomically.
pub fn write_profile(path: &Path, profile: &Profile) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(profile)
        .map_err(|e| Error::file(path, format!("cannot serialize the profile: {e}")))?;
    bytes.push(b'\n');
    crate::artifact::write_atomic(path, &bytes)
}

/// Set by the signal handler [`InterruptGuard`] installs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM for the duration of a sweep and restores the previous
/// handlers when dropped, so a command that runs a sweep and then does other work gets
/// the default behaviour back.
struct InterruptGuard {
    previous: [(libc::c_int, libc::sighandler_t); 2],
}

impl InterruptGuard {
    fn install() -> Self {
        INTERRUPTED.store(false, Ordering::SeqCst);
        let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `on_interrupt` only stores to an atomic, which is async-signal-safe.
        let previous =
            [libc::SIGINT, libc::SIGTERM].map(|sig| (sig, unsafe { libc::signal(sig, handler) }));
        InterruptGuard { previous }
    }

    fn interrupted() -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        for (sig, h) in self.previous {
            // SAFETY: restores the handler that was installed before (a valid value).
            unsafe { libc::signal(sig, h) };
        }
    }
}

/// Run every configuration in its own child and return the profile. `onnxruntime_version`
/// is the version the parent loaded (children report theirs; a mismatch is a warning).
pub fn run(
    opts: &SweepOptions,
    configs: &[ConfigSpec],
    onnxruntime_version: &str,
    observer: &mut dyn SweepObserver,
) -> Result<Profile> {
    let model_path =
        std::fs::canonicalize(&opts.model_path).map_err(|e| Error::io(&opts.model_path, e))?;
    let (sha256, size_bytes) = file_sha256(&model_path)?;
    let limits = &opts.plan.file.limits;
    let per_op_dir = if opts.per_op {
        Some(tempfile::tempdir().map_err(|e| Error::io("temporary folder", e))?)
    } else {
        None
    };
    let inputs_dir = match &opts.inputs_dir {
        Some(d) => Some(std::fs::canonicalize(d).map_err(|e| Error::io(d, e))?),
        None => None,
    };
    let mut profile = Profile {
        schema: PROFILE_SCHEMA.into(),
        edgepack_version: env!("CARGO_PKG_VERSION").into(),
        created_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        model: ModelRef {
            path: opts.model_label.clone(),
            sha256,
            size_bytes,
        },
        host: host(),
        onnxruntime_version: onnxruntime_version.into(),
        plan: opts.plan.summary(),
        configs: Vec::with_capacity(configs.len()),
        needs: None,
        model_session_config: crate::model::metadata::read_session_entries(&model_path)?
            .into_iter()
            .filter(|(k, _)| !opts.base_context.session_config.contains_key(k))
            .collect(),
        not_run: configs.iter().map(|c| c.id.clone()).collect(),
        interrupted: false,
    };
    let guard = InterruptGuard::install();
    let child_limits = ChildLimits {
        timeout_s: limits.timeout_s,
        memory_limit_bytes: limits.memory_limit_bytes,
    };
    let rounds = opts.plan.file.measure.rounds.max(1) as usize;
    let measure = opts.plan.file.measure.per_round();
    let cores = profile.host.logical_cores.max(1);
    let mut done: Vec<Vec<ConfigResult>> = vec![Vec::new(); configs.len()];
    let order = round_order(configs.len(), rounds);
    for (index, &(round, i)) in order.iter().enumerate() {
        let c = &configs[i];
        // A configuration that failed is not run again: its failure stands (an
        // out-of-memory or a load error does not go away in the next process).
        if done[i].iter().any(|r| r.status == Status::Failed) {
            continue;
        }
        let step = Step {
            index,
            total: order.len(),
            round,
            rounds,
        };
        observer.started(step, c);
        let req = WorkerRequest {
            model_path: model_path.clone(),
            ort_lib: opts.ort_lib.clone(),
            context: {
                // The model's recorded entries join here, once, so the worker builds its
                // session from the context as given (see `Session::from_path_as_given`).
                let mut ctx = context_for(&opts.base_context, &opts.plan, &c.ep, c.threads)?;
                ctx.session_config
                    .extend(profile.model_session_config.clone());
                ctx
            },
            input_shapes: c.input_shapes.clone(),
            inputs_dir: if c.input_files.is_empty() {
                inputs_dir.clone()
            } else {
                None
            },
            input_files: c.input_files.clone(),
            generation: opts.generation.clone(),
            seed: opts.seed,
            measure: measure.clone(),
            memory_limited: limits.memory_limit_bytes.is_some(),
            // ONNX Runtime's per-node profile once, in the first round.
            per_op_dir: per_op_dir
                .as_ref()
                .filter(|_| round == 0)
                .map(|d| d.path().to_path_buf()),
            per_op_runs: 10,
        };
        let child = measure_in_child(&opts.worker, &req, child_limits)?;
        if InterruptGuard::interrupted() && matches!(child.end, ChildEnd::Signaled(_)) {
            // The signal reached the child too (Ctrl-C signals the whole group): this
            // round was not measured, it did not fail.
            break;
        }
        let mut reply = child.reply;
        if let Some(v) = &reply.onnxruntime_version {
            if v != onnxruntime_version && !onnxruntime_version.is_empty() {
                reply.warnings.push(format!(
                    "the worker loaded ONNX Runtime {v}, the parent {onnxruntime_version}"
                ));
            }
        }
        let result = result_of(c, reply, cores);
        done[i].push(result.clone());
        let Some(merged) =
            super::rounds::merge(&done[i], Some(opts.plan.file.measure.target_ci_rel))
        else {
            continue;
        };
        observer.finished(step, &result, &merged);
        if i < profile.configs.len() {
            profile.configs[i] = merged;
        } else {
            // The first round runs forward: configuration `i` is the next one.
            profile.configs.push(merged);
            profile.not_run.remove(0);
        }
        profile.needs = Some(needs::summarize(
            &profile.configs,
            limits.latency_budget_s,
            limits.memory_limit_bytes,
        ));
        if let Some(p) = &opts.json_path {
            write_profile(p, &profile)?;
        }
        if InterruptGuard::interrupted() {
            break;
        }
    }
    if InterruptGuard::interrupted() {
        profile.interrupted = true;
        if let Some(p) = &opts.json_path {
            write_profile(p, &profile)?;
        }
    }
    drop(guard);
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, dims: Vec<Dim>) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            elem_type: 1,
            dims: Some(dims),
            role: Default::default(),
        }
    }

    fn det() -> Vec<TensorSpec> {
        vec![spec(
            "x",
            vec![
                Dim::Symbol("N".into()),
                Dim::Fixed(3),
                Dim::Symbol("H".into()),
                Dim::Symbol("W".into()),
            ],
        )]
    }

    fn opts(plan: &str) -> SweepOptions {
        SweepOptions {
            model_path: "det.onnx".into(),
            model_label: "det.onnx".into(),
            base_context: ExecutionContext::default(),
            plan: Plan::builtin(plan).unwrap(),
            shapes: ShapeOverrides::default(),
            batch_from_cli: false,
            dims_from_cli: false,
            inputs_dir: None,
            samples: vec![],
            generation: Default::default(),
            per_op: false,
            seed: 0,
            ort_lib: None,
            json_path: None,
            worker: WorkerCommand {
                program: "edgepack".into(),
                args: vec![],
            },
        }
    }

    #[test]
    fn rounds_alternate_direction_over_the_configurations() {
        assert_eq!(
            round_order(3, 3),
            vec![
                (0, 0),
                (0, 1),
                (0, 2),
                (1, 2),
                (1, 1),
                (1, 0),
                (2, 0),
                (2, 1),
                (2, 2)
            ]
        );
        assert_eq!(round_order(2, 1), vec![(0, 0), (0, 1)]);
        assert!(round_order(0, 3).is_empty());
    }

    #[test]
    fn sweep_is_the_cross_product_of_sizes_threads_and_providers() {
        let mut o = opts("quick");
        o.plan.file.sizes.batch = vec![1, 2, 4, 8];
        o.batch_from_cli = true;
        o.plan.file.run.threads = vec![1, 2];
        o.shapes.add_shape_arg("x=1x3x64x64").unwrap();
        let c = expand(&det(), &o).unwrap();
        assert_eq!(c.len(), 8);
        assert_eq!(c[0].id, "ep=cpu threads=1 batch=1 H=64 W=64");
        assert_eq!(
            c[7].input_shapes,
            vec![("x".to_string(), vec![8, 3, 64, 64])]
        );
        assert_eq!(c[7].batch, Some(8));
        assert_eq!(c[7].dims["N"], 8);
    }

    #[test]
    fn dims_sweep_binds_symbols_and_unknown_symbols_are_errors() {
        let mut o = opts("quick");
        o.plan.file.run.threads = vec![1];
        o.plan.file.sizes.dims =
            [("H".to_string(), vec![32, 64]), ("W".to_string(), vec![32])].into();
        o.dims_from_cli = true;
        let c = expand(&det(), &o).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].input_shapes[0].1, vec![1, 3, 64, 32]);
        o.plan.file.sizes.dims.insert("seq".into(), vec![8]);
        let e = expand(&det(), &o).unwrap_err().to_string();
        assert!(
            e.contains("no symbolic dim 'seq'") && e.contains("N, H, W"),
            "{e}"
        );
    }

    #[test]
    fn a_dim_naming_the_batch_symbol_is_the_batch_and_must_agree_with_batch() {
        let mut o = opts("quick");
        o.plan.file.run.threads = vec![1];
        o.plan.file.sizes.dims = [
            ("N".to_string(), vec![8]),
            ("H".to_string(), vec![32]),
            ("W".to_string(), vec![32]),
        ]
        .into();
        o.dims_from_cli = true;
        let c = expand(&det(), &o).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].batch, Some(8));
        assert_eq!(c[0].input_shapes[0].1, vec![8, 3, 32, 32]);
        assert_eq!(c[0].id, "ep=cpu threads=1 batch=8 H=32 W=32");
        o.batch_from_cli = true;
        o.plan.file.sizes.batch = vec![8];
        assert_eq!(expand(&det(), &o).unwrap()[0].batch, Some(8));
        o.plan.file.sizes.batch = vec![2];
        let e = expand(&det(), &o).unwrap_err().to_string();
        assert!(e.contains("N=8") && e.contains("disagree"), "{e}");
    }

    #[test]
    fn batch_on_a_fixed_batch_model_is_an_error_from_flags_only() {
        let fixed = vec![spec("x", vec![Dim::Fixed(1), Dim::Fixed(4)])];
        let mut o = opts("edge"); // plan batch [1, 2, 4] is ignored for this model
        o.plan.file.run.threads = vec![1];
        let c = expand(&fixed, &o).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].batch, None);
        o.batch_from_cli = true;
        let e = expand(&fixed, &o).unwrap_err().to_string();
        assert!(
            e.contains("fixed batch dim") && e.contains("drop batch size"),
            "{e}"
        );
    }

    #[test]
    fn shape_conflicting_with_the_model_is_an_error_before_anything_runs() {
        let mut o = opts("quick");
        o.shapes.add_shape_arg("x=1x4x64x64").unwrap();
        let e = expand(&det(), &o).unwrap_err().to_string();
        assert!(
            e.contains("input 'x'") && e.contains("fixes it to 3"),
            "{e}"
        );
        let mut o = opts("quick");
        let e = expand(&det(), &o).unwrap_err().to_string();
        assert!(e.contains("H") || e.contains("input shape"), "{e}");
        o.shapes.add_shape_arg("y=1x3x64x64").unwrap();
        assert!(expand(&det(), &o).is_err());
    }

    #[test]
    fn anonymous_batch_dim_takes_the_batch_when_the_rest_is_fixed() {
        let cls = vec![spec(
            "x",
            vec![Dim::Unknown, Dim::Fixed(3), Dim::Fixed(48), Dim::Fixed(192)],
        )];
        let mut o = opts("quick");
        o.plan.file.sizes.batch = vec![1, 4];
        o.batch_from_cli = true;
        o.plan.file.run.threads = vec![1];
        let c = expand(&cls, &o).unwrap();
        assert_eq!(c[1].input_shapes[0].1, vec![4, 3, 48, 192]);
        assert_eq!(c[1].id, "ep=cpu threads=1 batch=4");
    }
}
