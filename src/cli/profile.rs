//! `edgepack profile`: latency, memory and CPU needs of a model across query sizes, thread
//! counts and execution providers. Settings resolve flag > plan file > built-in default;
//! the library gets a plain [`SweepOptions`].
//!
//! Also the hidden `edgepack __profile-worker`: the child process of one configuration
//! (request JSON on stdin, reply JSON on stdout).

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use edgepack::package::manifest::ExecutionContext as PackageContext;
use edgepack::profile::plan::{Overrides, Plan};
use edgepack::profile::schema::{ConfigResult, Profile, Status};
use edgepack::profile::source::Source;
use edgepack::profile::sweep::{self, ConfigSpec, SweepObserver, SweepOptions, WorkerCommand};
use edgepack::profile::units::{
    format_bytes, format_duration_s, parse_duration_s, parse_size_bytes,
};
use edgepack::profile::worker::{run_request, WorkerRequest};
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
    /// Values of a symbolic dim to sweep, e.g. seq=128,512.
    #[arg(long = "dim", value_name = "SYMBOL=N,M,...")]
    pub dims: Vec<String>,
    /// Intra-op thread counts to sweep (0 = ONNX Runtime's default).
    #[arg(long, value_delimiter = ',', value_name = "N,M,...")]
    pub threads: Vec<usize>,
    /// Execution providers to sweep (cpu, cuda).
    #[arg(long, value_delimiter = ',', value_name = "EP,...")]
    pub ep: Vec<String>,
    /// Read inputs from a folder (<name>.npy or input_<i>.pb) or an .npz instead of random data.
    #[arg(long, value_name = "PATH")]
    pub inputs: Option<PathBuf>,
    /// Write the profile JSON (schema edgepack.profile/1), rewritten after every configuration.
    #[arg(long, value_name = "FILE")]
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
    /// Wall-clock timeout per configuration, e.g. 60s.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Graph optimization level (disable, basic, extended, all).
    #[arg(long, value_name = "LEVEL")]
    pub graph_optimization_level: Option<String>,
    /// Warm-up runs per configuration.
    #[arg(long, value_name = "N")]
    pub warmup: Option<u64>,
    /// Minimum measured runs per configuration.
    #[arg(long, value_name = "N")]
    pub min_iterations: Option<u64>,
    /// Maximum measured runs per configuration.
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u64>,
    /// Minimum measured time per configuration, e.g. 1s.
    #[arg(long, value_name = "DURATION")]
    pub min_time: Option<String>,
    /// Maximum measured time per configuration, e.g. 10s.
    #[arg(long, value_name = "DURATION")]
    pub max_time: Option<String>,
    /// Target relative half-width of the median's 95% CI, e.g. 1% or 0.01.
    #[arg(long, value_name = "FRACTION")]
    pub target_ci: Option<String>,
    /// Seed for generated inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// An ONNX Runtime session configuration entry for every configuration, KEY=VALUE
    /// (e.g. session.disable_quant_qdq=1, which int8 weight-only variants run with).
    /// Repeatable; added to a package's own entries.
    #[arg(long = "session-config", value_name = "KEY=VALUE")]
    pub session_config: Vec<String>,
}

fn parse_fraction(s: &str) -> anyhow::Result<f64> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => t.parse::<f64>(),
    };
    v.map_err(|_| {
        Error::usage(
            "--target-ci",
            format!("'{s}' is not a fraction like 1% or 0.01"),
        )
        .into()
    })
}

fn duration(flag: &str, s: &Option<String>) -> anyhow::Result<Option<f64>> {
    s.as_deref()
        .map(|v| parse_duration_s(v).map_err(|m| Error::usage(flag, m).into()))
        .transpose()
}

fn parse_dims(args: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, Vec<i64>>> {
    let mut out = std::collections::BTreeMap::new();
    for a in args {
        let (k, v) = a
            .rsplit_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| Error::usage("--dim", format!("expected SYMBOL=N[,M...], got '{a}'")))?;
        let values: Result<Vec<i64>, _> = v.split(',').map(|x| x.trim().parse::<i64>()).collect();
        let values = values.map_err(|_| {
            Error::usage(
                "--dim",
                format!("'{v}' is not a list of sizes like 128,512 (in '{a}')"),
            )
        })?;
        if out.insert(k.to_string(), values).is_some() {
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
        warmup_iterations: args.warmup,
        min_iterations: args.min_iterations,
        max_iterations: args.max_iterations,
        min_time_s: duration("--min-time", &args.min_time)?,
        max_time_s: duration("--max-time", &args.max_time)?,
        target_ci_rel: args.target_ci.as_deref().map(parse_fraction).transpose()?,
        timeout_s: duration("--timeout", &args.timeout)?,
        memory_limit_bytes: args
            .memory_limit
            .as_deref()
            .map(|v| parse_size_bytes(v).map_err(|m| Error::usage("--memory-limit", m)))
            .transpose()?,
        latency_budget_s: duration("--latency-budget", &args.latency_budget)?,
    };
    Ok(plan.with_overrides(&o)?)
}

struct Progress {
    bar: Option<ProgressBar>,
}

impl SweepObserver for Progress {
    fn started(&mut self, _index: usize, _total: usize, config: &ConfigSpec) {
        if let Some(b) = &self.bar {
            b.set_message(config.id.clone());
        }
    }

    fn finished(&mut self, _index: usize, _total: usize, r: &ConfigResult) {
        let line = match (&r.status, &r.latency) {
            (Status::Ok, Some(l)) => format!(
                "{}: p50 {} ±{:.1}% ({} runs)",
                r.id,
                format_duration_s(l.p50_s),
                l.p50_ci_rel * 100.0,
                l.iterations
            ),
            _ => format!(
                "{}: FAILED ({})",
                r.id,
                r.reason.as_deref().unwrap_or("unknown reason")
            ),
        };
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
    let specs = edgepack::tensor::inputs::model_inputs(&model);
    drop(model);
    let mut shapes = edgepack::tensor::inputs::ShapeOverrides::default();
    for s in &args.shapes {
        shapes.add_shape_arg(s)?;
    }
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
        inputs_dir: args.inputs.clone(),
        per_op: args.per_op,
        seed: args.seed,
        ort_lib: ort_lib.clone(),
        json_path: args.json.clone(),
        worker: WorkerCommand::current_exe()?,
    };
    let configs = sweep::expand(&specs, &opts)?;
    let info = edgepack::runtime::ensure(ort_lib.as_deref())?;
    let version = info.version.clone().unwrap_or_default();

    let bar = if configs.len() > 1 && console_is_term() {
        let b = ProgressBar::new(configs.len() as u64);
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
    let mut progress = Progress { bar };
    eprintln!(
        "profiling {} ({} configurations, plan '{}', ONNX Runtime {})",
        source.display,
        configs.len(),
        opts.plan.name,
        if version.is_empty() { "?" } else { &version }
    );
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
        print_table(&mut stdout, &profile).context("writing the table")?;
        return Ok(Outcome::Interrupted);
    }
    let mut stdout = std::io::stdout().lock();
    print_table(&mut stdout, &profile).context("writing the table")?;
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

fn print_table(w: &mut dyn Write, p: &Profile) -> std::io::Result<()> {
    let header = [
        "config", "status", "p50", "p90", "p99", "±ci", "runs", "items/s", "session", "first",
        "rss sess", "peak rss", "cores", "ep used",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in &p.configs {
        let mut r = vec![c.id.clone()];
        match (&c.status, &c.latency) {
            (Status::Ok, Some(l)) => {
                r.push("ok".into());
                r.push(format_duration_s(l.p50_s));
                r.push(format_duration_s(l.p90_s));
                r.push(format_duration_s(l.p99_s));
                r.push(format!("{:.1}%", l.p50_ci_rel * 100.0));
                r.push(l.iterations.to_string());
            }
            _ => {
                r.push(format!(
                    "FAILED ({})",
                    c.failure
                        .map(|f| format!("{f:?}").to_lowercase())
                        .unwrap_or_default()
                ));
                r.extend(std::iter::repeat_n(String::from("-"), 5));
            }
        }
        r.push(
            c.throughput_items_per_s
                .map(|t| format!("{t:.1}"))
                .unwrap_or("-".into()),
        );
        r.push(
            c.session_create_s
                .map(format_duration_s)
                .unwrap_or("-".into()),
        );
        r.push(c.first_run_s.map(format_duration_s).unwrap_or("-".into()));
        match &c.memory {
            Some(m) => {
                r.push(format_bytes(m.rss_after_session_bytes));
                r.push(format_bytes(m.peak_rss_bytes));
            }
            None => r.extend(["-".to_string(), "-".to_string()]),
        }
        r.push(
            c.cpu
                .as_ref()
                .map(|c| format!("{:.2}", c.busy_cores))
                .unwrap_or("-".into()),
        );
        r.push(c.ep_used.clone().unwrap_or("-".into()));
        rows.push(r);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |w: &mut dyn Write, cells: &[String]| -> std::io::Result<()> {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 || i == 1 || i == cells.len() - 1 {
                    format!("{c:<width$}", width = widths[i])
                } else {
                    format!("{c:>width$}", width = widths[i])
                }
            })
            .collect();
        writeln!(w, "{}", s.join("  ").trim_end())
    };
    line(w, &header.map(String::from))?;
    for r in &rows {
        line(w, r)?;
    }
    // A warning every configuration gets (a slow first run, normal for ONNX Runtime) tells
    // the user nothing per configuration: it is said once.
    let ok: Vec<&ConfigResult> = p
        .configs
        .iter()
        .filter(|c| c.status == Status::Ok)
        .collect();
    let slow_first = |c: &ConfigResult| c.warnings.iter().any(|x| x.starts_with("slow first run"));
    let all_slow_first = ok.len() > 1 && ok.iter().all(|c| slow_first(c));
    if all_slow_first {
        writeln!(
            w,
            "! every configuration: slow first run (cold caches, lazy allocation; first_run_s in the JSON)"
        )?;
    }
    for c in &p.configs {
        if let Some(reason) = &c.reason {
            writeln!(w, "! {}: {reason}", c.id)?;
        }
        for warn in &c.warnings {
            if all_slow_first && warn.starts_with("slow first run") {
                continue;
            }
            writeln!(w, "! {}: {warn}", c.id)?;
        }
    }
    if let Some(n) = &p.needs {
        if let Some(b) = n.latency_budget_s {
            writeln!(w, "\nthreads needed for p50 <= {}:", format_duration_s(b))?;
            for (k, t) in &n.min_threads_for_budget {
                match t {
                    Some(t) => writeln!(w, "  {k}: {t}")?,
                    None => writeln!(w, "  {k}: not met by any thread count measured")?,
                }
            }
        }
        if let (Some(f), Some(per)) = (n.memory_fixed_bytes, n.memory_per_item_bytes) {
            writeln!(
                w,
                "\nmemory: peak rss ≈ {} + {} × batch",
                format_bytes(f.max(0.0) as u64),
                if per >= 0.0 {
                    format_bytes(per as u64)
                } else {
                    format!("-{}", format_bytes((-per) as u64))
                }
            )?;
            if let Some(limit) = n.memory_limit_bytes {
                // The limit caps private writable memory (RLIMIT_DATA), which is less than
                // peak RSS (mapped model file, shared libraries): say which is which.
                writeln!(
                    w,
                    "  --memory-limit {} caps each configuration's private writable memory \
                     (heap, arena), not its RSS; the line below compares peak RSS with it",
                    format_bytes(limit)
                )?;
                let measured = p
                    .configs
                    .iter()
                    .filter(|c| c.memory.is_some())
                    .filter_map(|c| c.batch)
                    .max()
                    .unwrap_or(1)
                    .max(1);
                match n.max_batch_within_memory_limit {
                    Some(b) if b > measured => writeln!(
                        w,
                        "  largest batch with peak rss within {}: {b} (extrapolated {:.0}x beyond \
                         the largest measured batch {measured}: an estimate, measure it)",
                        format_bytes(limit),
                        b as f64 / measured as f64
                    )?,
                    Some(b) => writeln!(
                        w,
                        "  largest batch with peak rss within {}: {b}",
                        format_bytes(limit)
                    )?,
                    None => writeln!(
                        w,
                        "  no batch has peak rss within {} by this line",
                        format_bytes(limit)
                    )?,
                }
            }
        }
    }
    for c in &p.configs {
        let ops: Vec<_> = c.per_op.iter().filter(|o| o.kind == "op").take(5).collect();
        if ops.is_empty() {
            continue;
        }
        let s: Vec<String> = ops
            .iter()
            .map(|o| format!("{} {:.0}%", o.name, o.share * 100.0))
            .collect();
        writeln!(w, "top ops {}: {}", c.id, s.join(", "))?;
    }
    Ok(())
}

/// `edgepack __profile-worker`: one configuration, request on stdin, reply on stdout.
pub fn worker() -> anyhow::Result<Outcome> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the worker request")?;
    let req: WorkerRequest = serde_json::from_str(&text)
        .map_err(|e| Error::usage("__profile-worker", format!("invalid request: {e}")))?;
    let reply = run_request(&req);
    let line = serde_json::to_string(&reply).context("serializing the worker reply")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing the worker reply")?;
    out.flush().ok();
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A warning every configuration gets is said once; a memory line that reaches beyond
    /// the measured batches says so, and the limit says what it limits (issue 17).
    #[test]
    fn table_says_common_warnings_once_and_flags_extrapolation() {
        let mut p = edgepack::report::fixture::sample_profile();
        for c in &mut p.configs {
            c.warnings = vec!["slow first run: 9.000 ms, 5.0x the steady median".into()];
        }
        let mut out = Vec::new();
        print_table(&mut out, &p).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("slow first run").count(), 1, "{text}");
        assert!(
            text.contains("every configuration: slow first run"),
            "{text}"
        );
        assert!(text.contains("private writable memory"), "{text}");
        assert!(text.contains("extrapolated"), "{text}");
    }
}
