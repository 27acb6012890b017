//! `edgepack quantize`: arguments -> library settings -> report table.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::Outcome;
use edgepack::inputs::{ShapeOverrides, ValueRanges};
use edgepack::quantize::accuracy::AccuracyFloor;
use edgepack::quantize::calibrate::Method;
use edgepack::quantize::data::{list_folder, load_sample};
use edgepack::quantize::engine::RuntimeEngine;
use edgepack::quantize::preprocess::{ChannelOrder, Layout, Preprocess};
use edgepack::quantize::qdq::{Selection, WeightRounding};
use edgepack::quantize::runner::Feed;
use edgepack::quantize::{self, Mode, Options, Report};
use edgepack::{artifact, model::Model, Error, Result};

#[derive(Debug, Clone, Copy, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum ModeArg {
    Int8,
    Int8Dynamic,
    Fp16,
    Int4Weight,
    Int8Weight,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum PrepareArg {
    Own,
    Ort,
}

#[derive(Debug, Clone, Copy, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum LayoutArg {
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum ChannelArg {
    Rgb,
    Bgr,
}

/// Image preprocessing flags (shared with `compare`).
#[derive(Debug, Args, Clone, serde::Serialize, serde::Deserialize)]
pub struct PreprocessArgs {
    /// Resize images to HEIGHTxWIDTH (default: the model's fixed input size, else as is).
    #[arg(long, value_name = "HxW")]
    pub resize: Option<String>,
    /// Tensor layout of image inputs.
    #[arg(long, value_enum, default_value = "nchw")]
    pub layout: LayoutArg,
    /// Channel order of image inputs.
    #[arg(long, value_enum, default_value = "rgb")]
    pub channel_order: ChannelArg,
    /// Pixel multiplier applied first (e.g. 0.00392156862745098 for 1/255).
    #[arg(long, default_value_t = 1.0 / 255.0)]
    pub pixel_scale: f32,
    /// Per-channel mean subtracted after scaling, `a,b,c` (in tensor channel order).
    #[arg(long, default_value = "0,0,0")]
    pub mean: String,
    /// Per-channel std divided last, `a,b,c`.
    #[arg(long, default_value = "1,1,1")]
    pub std: String,
    /// Value for a symbolic dim of generated inputs, e.g. sequence=128 (wins over a
    /// --shape for that dim). Repeatable.
    #[arg(long = "dim", value_name = "SYMBOL=N")]
    pub dims: Vec<String>,
    /// Concrete shape of a generated input, e.g. x=1x3x48x192. Repeatable.
    #[arg(long = "shape", value_name = "NAME=DIMS")]
    pub shapes: Vec<String>,
    /// Range of generated values for an input, e.g. input_ids=0..999. Repeatable.
    #[arg(long = "input-range", value_name = "NAME=LO..HI")]
    pub input_ranges: Vec<String>,
}

impl PreprocessArgs {
    /// One generated input set through the input model (`--shape`, `--dim`,
    /// `--input-range`, roles), seeded; `notes` prints what was defaulted.
    pub fn generated_feed(&self, model: &Model, seed: u64, notes: bool) -> Result<Feed> {
        let overrides = ShapeOverrides::from_args(&self.shapes, &self.dims)?;
        let ranges = ValueRanges::from_args(&self.input_ranges)?;
        let (feed, prepared_notes) =
            edgepack::quantize::data::generated_feed(model, &overrides, &ranges, seed)?;
        if notes {
            for n in &prepared_notes {
                eprintln!("note: {n}");
            }
        }
        Ok(feed)
    }

    pub fn resolve(&self) -> Result<Preprocess> {
        let three = |flag: &str, s: &str| -> Result<[f32; 3]> {
            let v: Vec<f32> = s
                .split(',')
                .map(|x| x.trim().parse::<f32>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| {
                    Error::usage(flag, format!("'{s}' is not three comma-separated numbers"))
                })?;
            v.try_into().map_err(|_| {
                Error::usage(flag, format!("'{s}' is not three comma-separated numbers"))
            })
        };
        let resize = match &self.resize {
            None => None,
            Some(s) => {
                let (h, w) = s
                    .split_once('x')
                    .and_then(|(h, w)| Some((h.parse().ok()?, w.parse().ok()?)))
                    .ok_or_else(|| {
                        Error::usage("--resize", format!("'{s}' is not HEIGHTxWIDTH"))
                    })?;
                Some([h, w])
            }
        };
        let p = Preprocess {
            resize,
            layout: match self.layout {
                LayoutArg::Nchw => Layout::Nchw,
                LayoutArg::Nhwc => Layout::Nhwc,
            },
            channel_order: match self.channel_order {
                ChannelArg::Rgb => ChannelOrder::Rgb,
                ChannelArg::Bgr => ChannelOrder::Bgr,
            },
            scale: self.pixel_scale,
            mean: three("--mean", &self.mean)?,
            std: three("--std", &self.std)?,
        };
        p.validate()?;
        Ok(p)
    }
}

/// Quantize a model (int8 static QDQ for ONNX Runtime CPU, or `auto`).
#[derive(Debug, Args, serde::Serialize, serde::Deserialize)]
pub struct QuantizeArgs {
    /// The fp32 ONNX model.
    pub model: PathBuf,
    /// Where to write the quantized model.
    #[arg(short, long, value_name = "OUT.onnx")]
    pub output: PathBuf,
    /// Quantization mode: int8 (static QDQ), int8-dynamic (int8 weights, activations
    /// quantized per call), int8-weight (int8 weights dequantized once at load, float
    /// compute: smaller file, fp32 speed), int4-weight (4-bit block-quantized MatMul weights,
    /// `MatMulNBits`), fp16 (float16 weights and compute, float32 inputs/outputs), auto
    /// (tries every mode that applies; keeps the smallest and fastest that meets
    /// --accuracy-floor, default sqnr=30dB).
    #[arg(long, value_enum, default_value = "int8")]
    pub mode: ModeArg,
    /// Folder of calibration samples: .png/.jpg images, .npy/.pb tensors (single-input
    /// models), .npz archives keyed by input name, or folders of input_K.pb.
    #[arg(long, value_name = "DIR")]
    pub calibration: Option<PathBuf>,
    /// Calibration samples to use (the first N files).
    #[arg(long, default_value_t = 32)]
    pub calibration_samples: usize,
    /// Folder of evaluation inputs (held out). Without it, the calibration folder's last
    /// files beyond --calibration-samples (up to 16) are held out.
    #[arg(long, value_name = "DIR")]
    pub eval: Option<PathBuf>,
    /// Calibration method: minmax, percentile, percentile:P, entropy, mse (the u8 range with
    /// the smallest round-trip error over the observed distribution).
    #[arg(long, default_value = "minmax")]
    pub method: String,
    /// How int8 weights are rounded: auto (error-compensating GPTQ, per-channel only), nearest,
    /// gptq (against calibrated input moments; per-channel only), adaround (learned rounding
    /// against each layer's output error, GPTQ where a layer is too large; per-channel only).
    #[arg(long, default_value = "auto")]
    pub weight_rounding: String,
    /// Per-channel weight scales (the default).
    #[arg(long, conflicts_with = "per_tensor")]
    pub per_channel: bool,
    /// One scale per weight tensor instead of per channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Node names to keep in float (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub exclude_nodes: Vec<String>,
    /// Op types to keep in float: Conv, MatMul, Gemm, DepthwiseConv (with --mode fp16: any
    /// op type, kept in float32 on top of the built-in block list).
    #[arg(long, value_delimiter = ',')]
    pub exclude_ops: Vec<String>,
    /// Graph the quantizer prepares from: `own` (the original, with edgepack's labelled
    /// preparation) or `ort` (ONNX Runtime's basic-level offline optimization first, then
    /// the same preparation). `auto` tries both for int8 and keeps the faster model.
    #[arg(long, value_enum, default_value = "own")]
    pub prepare: PrepareArg,
    /// int4-weight: weights per quantization block along K (a power of two, >= 16).
    #[arg(long, default_value_t = 32)]
    pub block_size: usize,
    /// Keep convs on globally pooled tensors (squeeze-and-excitation blocks) in float.
    #[arg(long)]
    pub float_pooled: bool,
    /// Accuracy the result must reach (repeatable; all must hold): sqnr>=25dB,
    /// cosine>=0.99 (worst sample), top1>=99%, cer<=0.5% (greedy CTC decoding against the
    /// fp32 text), mask-iou>=0.98@0.3 (maps binarised at 0.3). When missed, the most
    /// sensitive layers are kept in float until it is met.
    #[arg(
        long = "accuracy-target",
        alias = "accuracy-floor",
        value_name = "TARGET"
    )]
    pub accuracy_target: Vec<String>,
    /// Write the full report as JSON.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Also report the error at every quantized tensor.
    #[arg(long)]
    pub debug_layers: bool,
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
    /// Intra-op threads of the two sessions timed against each other (calibration and
    /// evaluation use every core).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[command(flatten)]
    pub preprocess: PreprocessArgs,
    #[command(flatten)]
    pub isolation: super::isolation::IsolationArgs,
}

/// Whether two paths name the same existing file (symlinks and `./` resolved).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn check_writable(path: &Path) -> Result<()> {
    artifact::check_writable(path)
}

/// Load samples for a model from a folder.
pub fn load_folder(model: &Model, dir: &Path, pre: &Preprocess) -> Result<Vec<(PathBuf, Feed)>> {
    let specs = edgepack::inputs::model_inputs(model);
    list_folder(dir)?
        .into_iter()
        .map(|p| load_sample(&p, &specs, pre).map(|f| (p, f)))
        .collect()
}

/// Calibration, evaluation and timing load and run the model: they happen in an isolated
/// child (memory limit, timeout, own process group), which re-runs this command line.
pub fn run(ort_lib: &Option<PathBuf>, args: QuantizeArgs) -> anyhow::Result<Outcome> {
    if !args.isolation.isolated_child {
        let model = args.model.clone();
        let command = super::isolation::Command::Quantize(Box::new(args));
        return super::isolation::run_isolated(&model, ort_lib.as_deref(), command);
    }
    Ok(run_in_process(ort_lib, args)?)
}

fn run_in_process(ort_lib: &Option<PathBuf>, args: QuantizeArgs) -> Result<Outcome> {
    let mode = match args.mode {
        ModeArg::Int8 => Mode::Int8,
        ModeArg::Auto => Mode::Auto,
        ModeArg::Int8Weight => Mode::Int8Weight,
        ModeArg::Int8Dynamic => Mode::Int8Dynamic,
        ModeArg::Fp16 => Mode::Fp16,
        ModeArg::Int4Weight => Mode::Int4Weight,
    };
    if !args.block_size.is_power_of_two() || args.block_size < 16 {
        return Err(Error::usage(
            "--block-size",
            format!("{} is not a power of two of at least 16", args.block_size),
        ));
    }
    let method = Method::parse(&args.method).ok_or_else(|| {
        Error::usage(
            "--method",
            format!(
                "'{}' is not minmax, percentile[:P], entropy or mse",
                args.method
            ),
        )
    })?;
    let rounding = WeightRounding::parse(&args.weight_rounding).ok_or_else(|| {
        Error::usage(
            "--weight-rounding",
            format!(
                "'{}' is not auto, nearest, gptq or adaround",
                args.weight_rounding
            ),
        )
    })?;
    let targets = args
        .accuracy_target
        .iter()
        .map(|s| AccuracyFloor::parse(s))
        .collect::<Result<Vec<_>>>()?;
    // Two mask thresholds and the like are refused before anything runs.
    edgepack::quantize::accuracy::tasks_of(&targets, &[])?;
    if args.calibration_samples == 0 {
        return Err(Error::usage("--calibration-samples", "must be at least 1"));
    }
    let pre = args.preprocess.resolve()?;
    check_writable(&args.output)?;
    if same_file(&args.model, &args.output) {
        return Err(Error::usage(
            "-o",
            format!(
                "{} is the input model; write the quantized model to another file",
                args.output.display()
            ),
        ));
    }
    if let Some(r) = &args.report {
        check_writable(r)?;
    }
    let mut model = Model::load(&args.model)?;
    // The quantizer hands models to ONNX Runtime as bytes, where external data would
    // resolve against the current directory: inline it (validated, confined) first.
    model.load_external_data()?;
    if let Some(op) = quantize::already_quantized(&model) {
        return Err(Error::file(&args.model, format!("the model is already quantized (it contains {op}); quantize the fp32 original instead")));
    }
    edgepack::quantize::data::check_model_inputs(&model)?;
    let (calib, eval, random) = match &args.calibration {
        Some(dir) => {
            let mut all = load_folder(&model, dir, &pre)?;
            let eval = match &args.eval {
                Some(e) => load_folder(&model, e, &pre)?,
                None => {
                    let held = all.split_off(args.calibration_samples.min(all.len()));
                    held.into_iter().take(16).collect()
                }
            };
            all.truncate(args.calibration_samples);
            (
                all.into_iter().map(|x| x.1).collect::<Vec<_>>(),
                eval.into_iter().map(|x| x.1).collect::<Vec<_>>(),
                false,
            )
        }
        None => {
            eprintln!("edgepack: WARNING: no --calibration folder: calibrating and evaluating on RANDOM inputs. Accuracy figures are MEANINGLESS and activation ranges will not fit real data.");
            let n = args.calibration_samples.min(8);
            let calib = (0..n)
                .map(|i| args.preprocess.generated_feed(&model, i as u64, i == 0))
                .collect::<Result<Vec<_>>>()?;
            let eval = (0..4)
                .map(|i| args.preprocess.generated_feed(&model, 1000 + i, false))
                .collect::<Result<Vec<_>>>()?;
            (calib, eval, true)
        }
    };
    let engine = RuntimeEngine::new(ort_lib.as_deref(), args.threads)?;
    let opts = Options {
        mode,
        method,
        selection: Selection {
            exclude_nodes: args.exclude_nodes.iter().cloned().collect::<HashSet<_>>(),
            exclude_ops: args.exclude_ops.iter().cloned().collect::<HashSet<_>>(),
            per_channel: !args.per_tensor,
            float_pooled: args.float_pooled,
            weights_only: matches!(args.mode, ModeArg::Int8Weight),
            rounding,
        },
        targets,
        tasks: Vec::new(),
        measure_latency: !args.no_latency,
        latency_budget_s: match args.latency_budget_s {
            Some(s) => s,
            None => super::quantity(
                "--measure-time",
                &args.measure_time,
                edgepack::units::Unit::Seconds,
            )?,
        },
        debug_layers: args.debug_layers,
        fp16: quantize::fp16::Options {
            block_ops: args.exclude_ops.iter().cloned().collect(),
            block_nodes: args.exclude_nodes.iter().cloned().collect(),
        },
        ort_offline_first: args.prepare == PrepareArg::Ort,
        accuracy_guard: true,
        int4: quantize::nbits::Options {
            block_size: args.block_size,
            exclude_nodes: args.exclude_nodes.iter().cloned().collect(),
            ..Default::default()
        },
    };
    eprintln!(
        "edgepack: quantizing {} ({} calibration, {} evaluation samples)",
        args.model.display(),
        calib.len(),
        eval.len()
    );
    let q = quantize::quantize(&model, &calib, &eval, random, &opts, &engine)?;
    q.model.save(&args.output)?;
    if let Some(r) = &args.report {
        let json = serde_json::to_vec_pretty(&q.report).expect("report serializes");
        artifact::write_atomic(r, &json)?;
    }
    print_report(&q.report, &args.output);
    for w in &q.report.warnings {
        eprintln!("edgepack: WARNING: {w}");
    }
    Ok(match q.report.meets_target {
        Some(false) => {
            eprintln!("edgepack: the accuracy target was NOT met (model written anyway)");
            Outcome::Failed
        }
        _ => Outcome::Success,
    })
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.prec$}"))
}

/// Per-output accuracy of a quantized (or any B) model against its reference, as a table,
/// then the task metrics computed (CTC text, binarised maps).
pub fn print_accuracy_table(outputs: &[edgepack::quantize::accuracy::OutputAccuracy]) {
    println!(
        "  {:<28} {:>9} {:>10} {:>12} {:>12} {:>8}",
        "output", "SQNR dB", "cosine", "max |err|", "mean |err|", "top-1 %"
    );
    for o in outputs {
        println!(
            "  {:<28} {:>9} {:>10} {:>12.5} {:>12.6} {:>8}",
            o.output,
            fmt_opt(o.sqnr_db, 2),
            fmt_opt(o.cosine, 6),
            o.max_abs_error,
            o.mean_abs_error,
            fmt_opt(o.top1_agreement.map(|x| x * 100.0), 2)
        );
    }
    for o in outputs {
        if let Some(c) = &o.ctc {
            println!(
                "  {:<28} CTC text (greedy, blank {}): CER {}%  ({} edits / {} characters), lines decoded identically {} / {}",
                o.output,
                c.blank,
                fmt_opt(c.cer.map(|x| x * 100.0), 2),
                c.edits,
                c.reference_chars,
                c.lines_identical,
                c.lines
            );
        }
        if let Some(m) = &o.mask {
            println!(
                "  {:<28} mask IoU @{}: mean {}, worst {} over {} samples",
                o.output,
                m.threshold,
                fmt_opt(m.mean_iou, 4),
                fmt_opt(m.min_iou, 4),
                m.samples
            );
        }
    }
}

/// The human table on stdout.
pub fn print_report(r: &Report, out: &Path) {
    println!("quantized model: {}  ({})", out.display(), r.variant);
    println!("preparation: {}", r.preparation.join("; "));
    let rewritten = if r.quantized_nodes.is_empty() {
        // auto's attempts end with the last candidate tried, not the winner.
        r.attempts
            .iter()
            .rev()
            .find(|a| a.variant == r.variant)
            .or(r.attempts.last())
            .map_or(0, |a| a.quantized_nodes)
    } else {
        r.quantized_nodes.len()
    };
    if r.calibration_samples > 0 {
        println!(
            "nodes rewritten: {}   calibration: {} samples, {:?}   quantize wall time: {:.2} s",
            rewritten, r.calibration_samples, r.method, r.quantize_wall_s
        );
    } else {
        println!(
            "nodes rewritten: {}   (no calibration)   quantize wall time: {:.2} s",
            rewritten, r.quantize_wall_s
        );
    }
    if let Some(s) = r.search_wall_s {
        println!("accuracy search (sensitivity ranking, node sets judged): {s:.2} s");
    }
    println!(
        "size: {} -> {} bytes ({:.3}x)",
        r.size.fp32_bytes, r.size.quantized_bytes, r.size.ratio
    );
    if !r.session_config.is_empty() {
        println!(
            "runs with session entries: {}  (recorded in the model's metadata; edgepack applies them wherever it loads the model)",
            edgepack::model::metadata::describe(&r.session_config)
        );
    }
    if let Some(l) = &r.latency {
        println!(
            "latency vs fp32: {:.3}x  (fp32 p50 {:.3} ms, {} p50 {:.3} ms, {} interleaved pairs)",
            l.ratio,
            l.a_p50_s * 1e3,
            r.mode.name(),
            l.b_p50_s * 1e3,
            l.pairs
        );
    }
    println!(
        "accuracy on {} {} samples:",
        r.eval_samples,
        r.accuracy_basis.label()
    );
    print_accuracy_table(&r.outputs);
    if r.attempts.len() > 1 {
        println!("{} tried:", r.mode.name());
        for a in &r.attempts {
            println!(
                "  {:<60} nodes {:>3}  min SQNR {:>7} dB  latency {:>6}x  size {:.3}x  meets target: {}",
                a.variant,
                a.quantized_nodes,
                fmt_opt(a.min_sqnr_db, 2),
                fmt_opt(a.latency_ratio, 3),
                a.size_ratio,
                a.meets_target
            );
        }
    }
    if !r.targets.is_empty() {
        let t: Vec<String> = r.targets.iter().map(|t| t.to_string()).collect();
        println!(
            "accuracy target {}: {}",
            t.join(", "),
            match r.meets_target {
                Some(true) => "met",
                _ => "NOT met",
            }
        );
    }
    if let Some(why) = &r.choice {
        println!("auto chose: {why}");
    }
    if !r.layers.is_empty() {
        println!("per-tensor error (quantized model vs fp32):");
        for l in &r.layers {
            println!(
                "  {:<48} SQNR {:>7} dB  range [{:.4}, {:.4}]",
                l.tensor,
                fmt_opt(l.sqnr_db, 2),
                l.range.0,
                l.range.1
            );
        }
    }
}
