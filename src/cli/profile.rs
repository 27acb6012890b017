//! `edgepack profile`: latency, memory and CPU needs of a model across query sizes, thread
//! counts and execution providers. Settings resolve flag > plan file > built-in default;
//! the library gets a plain [`SweepOptions`].
//!
//! Also the hidden `edgepack __profile-worker`: the child process of one configuration
//! (request JSON on stdin, reply JSON on stdout).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use edgepack::package::manifest::ExecutionContext as PackageContext;
use edgepack::profile::plan::{Overrides, Plan};
use edgepack::profile::schema::{ConfigResult, Status};
use edgepack::profile::source::Source;
use edgepack::profile::sweep::{
    self, ConfigSpec, Step, SweepObserver, SweepOptions, WorkerCommand,
};
use edgepack::report::label::ConfigLabels;
use edgepack::units::Unit;
use edgepack::Error;

use super::Outcome;

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The ONNX model, package or bundle to profile (a package's execution context sets
    /// threads, providers and optimization level unless flags say otherwise).
    pub model: PathBuf,
    /// Which variant of a package or bundle to profile (default: the first, the original).
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// Profile plan: a built-in name (quick, default, ci, edge) or a TOML file.
    #[arg(long, value_name = "NAME|FILE", default_value = "default")]
    pub plan: String,
    /// Batch sizes to sweep (the leading dim of inputs whose leading dim is symbolic).
    #[arg(long, value_delimiter = ',', value_name = "N,M,...")]
    pub batch: Vec<i64>,
    /// A whole input shape, e.g. x=1x3x640x640 (its leading dim is replaced by --batch).
    #[arg(long = "shape", value_name = "NAME=DIMS")]
    pub shapes: Vec<String>,
    /// Values of a symbolic dim to sweep, e.g. sequence=16,64 (wins over the value a
    /// --shape gives for that dim).
    #[arg(long = "dim", value_name = "SYMBOL=N,M,...")]
    pub dims: Vec<String>,
    /// Range of generated values for an input, e.g. input_ids=0..999 or sr=16000..16000.
    #[arg(long = "input-range", value_name = "NAME=LO..HI")]
    pub input_range: Vec<String>,
    /// Intra-op thread counts to sweep (0 = ONNX Runtime's default).
    #[arg(long, value_delimiter = ',', value_name = "N,M,...")]
    pub threads: Vec<usize>,
    /// Execution providers to sweep (cpu, cuda).
    #[arg(long, value_delimiter = ',', value_name = "EP,...")]
    pub ep: Vec<String>,
    /// Read inputs from a folder (<name>.npy or input_<i>.pb) or an .npz instead of random data.
    #[arg(long, value_name = "PATH")]
    pub inputs: Option<PathBuf>,
    /// Write the profile JSON (schema edgepack.profile/1) to FILE, rewritten after every
    /// configuration. (`--json` prints JSON on stdout in other commands; `--json-out` writes
    /// a file everywhere.)
    #[arg(long = "json-out", alias = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also report per-op time shares from ONNX Runtime's profiler.
    #[arg(long)]
    pub per_op: bool,
    /// Latency budget for the needs summary, e.g. 20ms (exit 1 when a query size misses it).
    #[arg(long, value_name = "DURATION")]
    pub latency_budget: Option<String>,
    /// Memory limit per configuration, e.g. 512MB (RLIMIT_DATA in the child).
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Wall-clock timeout per configuration and round (each child process), e.g. 60s.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Graph optimization level (disable, basic, extended, all).
    #[arg(long, value_name = "LEVEL")]
    pub graph_optimization_level: Option<String>,
    /// Independent processes (rounds) each configuration is measured in, interleaved
    /// across configurations; the time and iteration budgets are shared by the rounds, and
    /// the reported interval covers the spread between processes (default: the plan's, 3).
    #[arg(long, value_name = "N")]
    pub rounds: Option<u64>,
    /// Warm-up runs per configuration (in each round).
    #[arg(long, value_name = "N")]
    pub warmup: Option<u64>,
    /// Minimum measured runs per configuration (shared by its rounds).
    #[arg(long, value_name = "N")]
    pub min_iterations: Option<u64>,
    /// Maximum measured runs per configuration (shared by its rounds).
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u64>,
    /// Minimum measured time per configuration, e.g. 1s (shared by its rounds).
    #[arg(long, value_name = "DURATION")]
    pub min_time: Option<String>,
    /// Maximum measured time per configuration, e.g. 10s (shared by its rounds).
    #[arg(long, value_name = "DURATION")]
    pub max_time: Option<String>,
    /// Stop measuring a configuration once the half-width of its median's 95% confidence
    /// interval is within this percentage of the median, e.g. 1% (a unit is required).
    #[arg(long = "ci-half-width", alias = "target-ci", value_name = "PERCENT")]
    pub ci_half_width: Option<String>,
    /// Seed for generated inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// An ONNX Runtime session configuration entry for every configuration, KEY=VALUE
    /// (e.g. session.disable_quant_qdq=1, which int8 weight-only variants run with).
    /// Repeatable; added to a package's own entries.
    #[arg(long = "session-config", value_name = "KEY=VALUE")]
    pub session_config: Vec<String>,
}

fn duration(flag: &str, s: &Option<String>) -> anyhow::Result<Option<f64>> {
    Ok(super::optional_quantity(flag, s.as_deref(), Unit::Seconds)?)
}

/// `--dim SYMBOL=N,M,...` in the one grammar of `edgepack::inputs` (sizes >= 1).
fn parse_dims(args: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, Vec<i64>>> {
    let mut out = std::collections::BTreeMap::new();
    for a in args {
        let (k, values) = edgepack::inputs::parse_dim_arg(a)?;
        let values = values.into_iter().map(|v| v as i64).collect();
        if out.insert(k.clone(), values).is_some() {
            return Err(Error::usage("--dim", format!("symbol '{k}' given twice")).into());
        }
    }
    Ok(out)
}

/// Resolve flags over the plan.
fn resolve_plan(args: &ProfileArgs, package: Option<&PackageContext>) -> anyhow::Result<Plan> {
    use edgepack::profile::plan::GraphOptimizationLevel;
    let plan = Plan::resolve(&args.plan)?;
    // Precedence: flag, then the package's execution context, then the plan.
    let mut threads = args.threads.clone();
    let mut eps: Vec<String> = args
        .ep
        .iter()
        .map(|e| e.trim().to_ascii_lowercase())
        .collect();
    let mut level = args
        .graph_optimization_level
        .as_deref()
        .map(GraphOptimizationLevel::from_name)
        .transpose()?;
    if let Some(ctx) = package {
        // A package is swept over the plan's thread counts like any model (a bundle then
        // picks from measured counts), plus the count its context pins, if any.
        if threads.is_empty() {
            if let Some(n) = ctx.intra_op_threads {
                threads = plan.file.run.threads.clone();
                if !threads.contains(&n) {
                    threads.push(n);
                }
            }
        }
        if eps.is_empty() {
            // The package lists providers in preference order with cpu as the fallback;
            // each is a configuration of its own here, so an unavailable one shows.
            eps = ctx
                .execution_providers
                .iter()
                .map(|p| p.name().to_string())
                .collect();
        }
        if level.is_none() {
            use edgepack::runtime::GraphOptimizationLevel as Stored;
            level = Some(match ctx.graph_optimization_level {
                Stored::Disable => GraphOptimizationLevel::Disable,
                Stored::Basic => GraphOptimizationLevel::Basic,
                Stored::Extended => GraphOptimizationLevel::Extended,
                Stored::All => GraphOptimizationLevel::All,
            });
        }
    }
    let o = Overrides {
        batch: args.batch.clone(),
        dims: parse_dims(&args.dims)?,
        threads,
        execution_providers: eps,
        graph_optimization_level: level,
        rounds: args.rounds,
        warmup_iterations: args.warmup,
        min_iterations: args.min_iterations,
        max_iterations: args.max_iterations,
        min_time_s: duration("--min-time", &args.min_time)?,
        max_time_s: duration("--max-time", &args.max_time)?,
        target_ci_rel: super::optional_quantity(
            "--ci-half-width",
            args.ci_half_width.as_deref(),
            Unit::Percent,
        )?,
        timeout_s: duration("--timeout", &args.timeout)?,
        memory_limit_bytes: super::optional_quantity(
            "--memory-limit",
            args.memory_limit.as_deref(),
            Unit::Bytes,
        )?
        .map(|b| b.round() as u64),
        latency_budget_s: duration("--latency-budget", &args.latency_budget)?,
    };
    Ok(plan.with_overrides(&o)?)
}

struct Progress {
    bar: Option<ProgressBar>,
    /// The configurations named by what varies, as the table names them.
    labels: ConfigLabels,
}

impl SweepObserver for Progress {
    fn started(&mut self, step: Step, config: &ConfigSpec) {
        if let Some(b) = &self.bar {
            b.set_message(format!(
                "{}{}",
                step.round_prefix(),
                self.labels.label(&config.id)
            ));
        }
    }

    fn finished(&mut self, step: Step, r: &ConfigResult, _merged: &ConfigResult) {
        let line = format!(
            "{}{}",
            step.round_prefix(),
            r.progress_line_as(self.labels.label(&r.id))
        );
        match &self.bar {
            Some(b) => {
                b.println(line);
                b.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }
}

/// `edgepack profile`.
pub fn run(ort_lib: &Option<PathBuf>, args: ProfileArgs) -> anyhow::Result<Outcome> {
    let source = Source::open(&args.model, args.variant.as_deref())?;
    let plan = resolve_plan(&args, source.context.as_ref())?;
    if let Some(p) = &args.json {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir {
            if !d.is_dir() {
                return Err(Error::file(
                    p,
                    format!("cannot write: folder {} does not exist", d.display()),
                )
                .into());
            }
        }
    }
    let model = edgepack::model::Model::load(&source.model_path)?;
    let specs = edgepack::inputs::model_inputs(&model);
    drop(model);
    let mut shapes = edgepack::inputs::ShapeOverrides::default();
    for s in &args.shapes {
        shapes.add_shape_arg(s)?;
    }
    let ranges = edgepack::inputs::ValueRanges::from_args(&args.input_range)?;
    // Samples fix the shapes: a folder of samples (each distinct shape set is a query
    // size), or the self-test inputs a package carries when no flag says otherwise.
    let told_shapes = !args.batch.is_empty() || !args.dims.is_empty() || !args.shapes.is_empty();
    // `--batch` or `--dim` on a package or bundle that carries sample inputs: the samples
    // give the shapes the flags then change, so no `--shape` is needed (issue 17: `profile
    // BUNDLE --batch 1,2` demanded one).
    if told_shapes && args.shapes.is_empty() && args.inputs.is_none() {
        if let Some(files) = source.sample_inputs.first() {
            let sources = edgepack::inputs::InputSources {
                files: files.clone(),
                seed: args.seed,
                ..Default::default()
            };
            let prepared = edgepack::inputs::prepare_for(&specs, &Default::default(), &sources)?;
            for (name, t) in &prepared.tensors {
                shapes
                    .shapes
                    .entry(name.clone())
                    .or_insert_with(|| t.shape().to_vec());
            }
            eprintln!("note: shapes from the package's sample inputs, with --batch/--dim applied");
        }
    }
    let mut inputs_dir = args.inputs.clone();
    let samples = match &args.inputs {
        Some(p) => match edgepack::inputs::sample_files(p, &specs)? {
            Some(s) => {
                inputs_dir = None;
                s
            }
            None => vec![],
        },
        None if !told_shapes && !source.sample_inputs.is_empty() => {
            eprintln!(
                "note: shapes from the {} sample input set(s) the package carries (--shape, --dim or --batch to choose others)",
                source.sample_inputs.len()
            );
            source.sample_inputs.clone()
        }
        None => vec![],
    };
    let from_files = inputs_dir.is_some() || !samples.is_empty();
    edgepack::inputs::check_generation(&specs, &ranges, &|_| from_files)?;
    let generation = edgepack::inputs::Generation::new(&specs, &ranges);
    let mut base_context = source.context.clone().unwrap_or_default();
    base_context.session_config.extend(super::session_entries(
        "--session-config",
        &args.session_config,
    )?);
    base_context.validate()?;
    let opts = SweepOptions {
        model_path: source.model_path.clone(),
        model_label: source.display.clone(),
        base_context,
        plan,
        shapes,
        batch_from_cli: !args.batch.is_empty(),
        dims_from_cli: !args.dims.is_empty(),
        inputs_dir,
        samples,
        generation,
        per_op: args.per_op,
        seed: args.seed,
        ort_lib: ort_lib.clone(),
        json_path: args.json.clone(),
        worker: WorkerCommand::current_exe()?,
    };
    let configs = sweep::expand(&specs, &opts)?;
    let info = edgepack::runtime::ensure(ort_lib.as_deref())?;
    let version = info.version.clone().unwrap_or_default();

    let rounds = opts.plan.file.measure.rounds.max(1);
    let children = configs.len() as u64 * rounds;
    let bar = if children > 1 && console_is_term() {
        let b = ProgressBar::new(children);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
            )
            .expect("valid template"),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        Some(b)
    } else {
        None
    };
    let labels = ConfigLabels::new(configs.iter().map(|c| c.id.as_str()));
    eprintln!(
        "profiling {} ({} configurations x {rounds} round{} (processes), plan '{}', ONNX Runtime {}{})",
        source.display,
        configs.len(),
        if rounds == 1 { "" } else { "s" },
        opts.plan.name,
        if version.is_empty() { "?" } else { &version },
        labels
            .fixed_line()
            .map(|f| format!("; every configuration: {f}"))
            .unwrap_or_default()
    );
    let mut progress = Progress { bar, labels };
    let profile = sweep::run(&opts, &configs, &version, &mut progress)?;
    if let Some(b) = &progress.bar {
        b.finish_and_clear();
    }
    super::report_model_entries(&source.model_path, &profile.model_session_config);
    if profile.interrupted {
        eprintln!(
            "edgepack: profile interrupted after {} of {} configurations; never run: {}{}",
            profile.configs.len(),
            configs.len(),
            profile.not_run.join("; "),
            args.json.as_ref().map_or(String::new(), |p| format!(
                " ({} records the profile as interrupted, with these configurations)",
                p.display()
            ))
        );
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(edgepack::report::profile_table::render(&profile).as_bytes())
            .context("writing the table")?;
        return Ok(Outcome::Interrupted);
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(edgepack::report::profile_table::render(&profile).as_bytes())
        .context("writing the table")?;
    if let Some(p) = &args.json {
        eprintln!("wrote {}", p.display());
    }
    if !profile.configs.iter().any(|c| c.status == Status::Ok) {
        return Err(Error::usage(
            "profile",
            format!(
                "no configuration could run ({} failed; see the reasons above)",
                profile.configs.len()
            ),
        )
        .into());
    }
    let missed: Vec<&String> = profile
        .needs
        .iter()
        .flat_map(|n| n.min_threads_for_budget.iter())
        .filter(|(_, t)| t.is_none())
        .map(|(k, _)| k)
        .collect();
    if !missed.is_empty() {
        eprintln!(
            "latency budget missed by every thread count for: {}",
            missed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Success)
}

fn console_is_term() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// `edgepack __profile-worker`: one configuration, request on stdin, reply on stdout.
pub fn worker() -> anyhow::Result<Outcome> {
    edgepack::profile::worker::serve()?;
    Ok(Outcome::Success)
}
