//! `edgepack compare A.onnx B.onnx --inputs DIR`: offline A/B comparison.

use std::path::PathBuf;

use clap::Args;

use super::quantize::{load_folder, PreprocessArgs};
use super::Outcome;
use edgepack::quantize::engine::RuntimeEngine;
use edgepack::quantize::task::Task;
use edgepack::quantize::{compare_models, Comparison};
use edgepack::setting::Setting;
use edgepack::{model::Model, Error, Result};

/// Compare model B against model A on the same inputs (accuracy and latency).
#[derive(Debug, Args, serde::Serialize, serde::Deserialize)]
pub struct CompareArgs {
    /// The reference model.
    pub a: PathBuf,
    /// The model to judge against A.
    pub b: PathBuf,
    /// Folder of input samples (images, .npy/.pb tensors, .npz by input name, or folders
    /// of input_K.pb), as for `quantize --calibration`.
    #[arg(long, value_name = "DIR")]
    pub inputs: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Skip the latency comparison.
    #[arg(long)]
    pub no_latency: bool,
    /// Measured time to spend on the interleaved latency comparison, e.g. 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub measure_time: String,
    /// Old spelling of --measure-time, in seconds (hidden; kept for existing scripts).
    #[arg(
        long,
        hide = true,
        value_name = "SECONDS",
        conflicts_with = "measure_time"
    )]
    pub latency_budget_s: Option<f64>,
    /// Intra-op threads for the timing sessions.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// An ONNX Runtime session entry model B runs with, KEY=VALUE (repeatable): e.g.
    /// session.disable_quant_qdq=1, as a quantizer report's `session_config` prescribes
    /// for int8-weight models.
    #[arg(long = "b-session-config", value_name = "KEY=VALUE")]
    pub b_session_config: Vec<String>,
    /// A task metric to compute on every output (repeatable): ctc (greedy CTC decoding,
    /// character error rate of B's text against A's), mask@T (IoU of the maps binarised at
    /// T, e.g. mask@0.3), top1, embedding.
    #[arg(long = "task", value_name = "TASK")]
    pub tasks: Vec<String>,
    #[command(flatten)]
    pub preprocess: PreprocessArgs,
    #[command(flatten)]
    pub isolation: super::isolation::IsolationArgs,
}

/// Calibration, evaluation and timing load and run the model: they happen in an isolated
/// child (memory limit, timeout, own process group), which re-runs this command line.
pub fn run(ort_lib: &Option<PathBuf>, args: CompareArgs) -> anyhow::Result<Outcome> {
    if !args.isolation.isolated_child {
        let model = args.b.clone();
        let command = super::isolation::Command::Compare(args);
        return super::isolation::run_isolated(&model, ort_lib.as_deref(), command);
    }
    Ok(run_in_process(ort_lib, args)?)
}

fn run_in_process(ort_lib: &Option<PathBuf>, args: CompareArgs) -> Result<Outcome> {
    let tasks = args
        .tasks
        .iter()
        .map(|t| Task::parse(Setting::Task, t))
        .collect::<Result<Vec<_>>>()?;
    let a = Model::load(&args.a)?;
    let b = Model::load(&args.b)?;
    let pre = args.preprocess.resolve()?;
    let feeds: Vec<_> = load_folder(&a, &args.inputs, &pre)?
        .into_iter()
        .map(|x| x.1)
        .collect();
    // B must accept the same inputs: check every file against B's signature too.
    load_folder(&b, &args.inputs, &pre)
        .map_err(|e| Error::usage(format!("model B ({})", args.b.display()), e.to_string()))?;
    let b_config = super::session_entries("--b-session-config", &args.b_session_config)?;
    for (path, m) in [(&args.a, &a), (&args.b, &b)] {
        let mut recorded = edgepack::model::metadata::session_entries(&m.proto);
        if std::ptr::eq(m, &b) {
            recorded.retain(|k, _| !b_config.contains_key(k));
        }
        super::report_model_entries(path, &recorded);
    }
    let engine = RuntimeEngine::new(ort_lib.as_deref(), args.threads)?;
    let mut c = compare_models(
        &a,
        &b,
        &feeds,
        &engine,
        (!args.no_latency).then_some(match args.latency_budget_s {
            Some(s) => s,
            None => super::quantity(
                "--measure-time",
                &args.measure_time,
                edgepack::units::Unit::Seconds,
            )?,
        }),
        &b_config,
        &tasks,
    )?;
    // The files' own sizes: re-encoding a model can differ from its file by a few bytes.
    for (path, bytes) in [(&args.a, &mut c.a_bytes), (&args.b, &mut c.b_bytes)] {
        *bytes = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c).expect("serializes"));
    } else {
        print_table(&c, &args);
    }
    Ok(Outcome::Success)
}

fn print_table(c: &Comparison, args: &CompareArgs) {
    println!("A: {} ({} bytes)", args.a.display(), c.a_bytes);
    println!(
        "B: {} ({} bytes, {:.3}x)",
        args.b.display(),
        c.b_bytes,
        c.b_bytes as f64 / c.a_bytes as f64
    );
    if let Some(l) = &c.latency {
        println!(
            "latency B/A: {:.3}x  (A p50 {:.3} ms, B p50 {:.3} ms, {} interleaved pairs)",
            l.ratio,
            l.a_p50_s * 1e3,
            l.b_p50_s * 1e3,
            l.pairs
        );
    }
    println!("accuracy of B against A on {} samples:", c.samples);
    super::quantize::print_accuracy_table(&c.outputs);
}
