//! The quantizer: prepare an fp32 ONNX model, calibrate its activations by running it,
//! rewrite it to int8 where ONNX Runtime's CPU kernels run int8, and measure what that
//! cost in accuracy and bought in size and latency.
//!
//! Pipeline for `--mode int8` (static):
//! 1. [`prepare`]: labelled patches (Constant -> initializer, BN folding, hard-swish
//!    simplification, opset 13, dead nodes).
//! 2. [`qdq::plan`]: which nodes to quantize and which activations need a range.
//! 3. [`calibrate`]: run the prepared model with those activations exposed, sample by
//!    sample, keeping only fixed-size statistics.
//! 4. [`qdq::emit`]: one labelled patch inserting Q/DQ pairs and int8 weights.
//! 5. [`accuracy`] on held-out inputs, file sizes, and an interleaved latency ratio.
//!
//! Runs go through the [`runner::Engine`] trait, so everything but the ONNX Runtime
//! binding is testable with a mock.

pub mod accuracy;
pub mod calibrate;
pub mod data;
pub mod graph;
pub mod math;
pub mod ort_engine;
pub mod prepare;
pub mod preprocess;
pub mod qdq;
pub mod runner;

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Model;
use accuracy::{Accumulator, OutputAccuracy, Target};
use calibrate::{Collector, Method};
use runner::{Engine, Feed, LatencyRatio};

/// What kind of quantization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Static int8 QDQ (calibrated activations, per-channel int8 weights).
    Int8,
    /// Try int8 variants and keep the best that meets the accuracy target.
    Auto,
}

/// Quantizer settings (resolved from the CLI).
#[derive(Clone, Debug)]
pub struct Options {
    /// Mode.
    pub mode: Mode,
    /// Calibration method.
    pub method: Method,
    /// What may be quantized.
    pub selection: qdq::Selection,
    /// Accuracy target for `auto` (and for the verdict of any mode).
    pub target: Option<Target>,
    /// Measure the latency ratio (interleaved runs) against the fp32 model.
    pub measure_latency: bool,
    /// Seconds to spend on the latency comparison (at least 5 pairs are always run).
    pub latency_budget_s: f64,
    /// Per-tensor error view.
    pub debug_layers: bool,
}

/// Sizes before and after.
#[derive(Clone, Debug, Serialize)]
pub struct SizeReport {
    /// Encoded fp32 model size.
    pub fp32_bytes: u64,
    /// Encoded quantized model size.
    pub quantized_bytes: u64,
    /// `quantized_bytes / fp32_bytes`.
    pub ratio: f64,
}

/// One tensor's error in the quantized model (with `--debug-layers`).
#[derive(Clone, Debug, Serialize)]
pub struct LayerError {
    /// Activation tensor name.
    pub tensor: String,
    /// SQNR of the quantized model's value of this tensor against the fp32 model's.
    pub sqnr_db: Option<f64>,
    /// Calibrated range.
    pub range: (f32, f32),
}

/// One candidate `auto` tried.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// What was tried.
    pub variant: String,
    /// Nodes quantized.
    pub quantized_nodes: usize,
    /// Worst SQNR over outputs.
    pub min_sqnr_db: Option<f64>,
    /// Latency ratio against fp32.
    pub latency_ratio: Option<f64>,
    /// Size ratio against fp32.
    pub size_ratio: f64,
    /// Whether it met the accuracy target.
    pub meets_target: bool,
}

/// Everything the quantizer reports (`--report FILE.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Schema tag.
    pub schema: &'static str,
    /// Mode asked for.
    pub mode: Mode,
    /// Winning variant.
    pub variant: String,
    /// Calibration method.
    pub method: Method,
    /// Preparation patches applied.
    pub preparation: Vec<String>,
    /// Rewrite patch labels.
    pub patches: Vec<String>,
    /// Nodes quantized.
    pub quantized_nodes: Vec<qdq::QuantNode>,
    /// Calibration samples used.
    pub calibration_samples: usize,
    /// Evaluation samples used (held out from calibration).
    pub eval_samples: usize,
    /// Whether inputs were random (accuracy then meaningless).
    pub random_inputs: bool,
    /// Accuracy per output on the evaluation samples.
    pub outputs: Vec<OutputAccuracy>,
    /// Sizes.
    pub size: SizeReport,
    /// Latency of the quantized model relative to the fp32 input model.
    pub latency: Option<LatencyRatio>,
    /// Wall time of preparation + calibration + rewrite, seconds.
    pub quantize_wall_s: f64,
    /// Accuracy target and whether it was met.
    pub target: Option<Target>,
    /// Whether the target (if any) was met.
    pub meets_target: Option<bool>,
    /// Candidates tried by `auto` (one entry otherwise).
    pub attempts: Vec<Attempt>,
    /// Per-tensor errors (`--debug-layers`).
    pub layers: Vec<LayerError>,
    /// Warnings for the user (random inputs, slower model, ...).
    pub warnings: Vec<String>,
}

/// Whether the model already contains quantization ops.
pub fn already_quantized(model: &Model) -> Option<String> {
    const Q_OPS: &[&str] = &[
        "QuantizeLinear",
        "DequantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
        "DynamicQuantizeLinear",
        "MatMulNBits",
        "QLinearAdd",
        "QGemm",
    ];
    let mut found = None;
    crate::model::for_each_graph(model.graph(), &mut |g| {
        if found.is_none() {
            found = g
                .node
                .iter()
                .find(|n| Q_OPS.contains(&n.op_type.as_str()))
                .map(|n| n.op_type.clone());
        }
    });
    found
}

/// A quantized model and its report.
pub struct Quantized {
    /// The quantized model.
    pub model: Model,
    /// The report.
    pub report: Report,
}

/// Quantize `model` with calibration samples `calib`, judged on held-out `eval` samples.
pub fn quantize(
    model: &Model,
    calib: &[Feed],
    eval: &[Feed],
    random_inputs: bool,
    opts: &Options,
    engine: &dyn Engine,
) -> Result<Quantized> {
    let origin = model.path.clone().unwrap_or_default();
    if let Some(op) = already_quantized(model) {
        return Err(Error::file(&origin, format!("the model is already quantized (it contains {op}); quantize the fp32 original instead")));
    }
    if calib.is_empty() {
        return Err(Error::usage("--calibration", "no calibration samples"));
    }
    let start = Instant::now();
    let mut prepared = model.clone();
    prepared.load_external_data()?;
    let preparation = prepare::prepare(&mut prepared)?;
    let full_plan = qdq::plan(&prepared, &opts.selection);
    if full_plan.nodes.is_empty() {
        return Err(Error::file(
            &origin,
            "nothing to quantize: no Conv, MatMul or Gemm with constant weights (after exclusions)",
        ));
    }
    let collectors = calibrate_model(
        &prepared,
        &full_plan.activations,
        calib,
        opts.method,
        engine,
    )?;
    let ranges: BTreeMap<String, (f32, f32)> = collectors
        .iter()
        .map(|(k, c)| (k.clone(), c.range(opts.method)))
        .collect();
    let calib_s = start.elapsed().as_secs_f64();

    let fp32_bytes = model.to_bytes();
    let mut reference = engine.load(&fp32_bytes)?;
    let class_outputs = class_axis_outputs(&prepared);
    let eval_set: &[Feed] = if eval.is_empty() { calib } else { eval };
    let mut ref_outputs: Vec<Vec<runner::NamedTensor>> = Vec::new();
    for f in eval_set {
        ref_outputs.push(reference.run(f, &[])?);
    }

    // Candidates: the full plan, then (auto) variants that keep more in float.
    let mut variants: Vec<(String, qdq::Plan)> =
        vec![("int8: every Conv/MatMul/Gemm".into(), full_plan.clone())];
    if opts.mode == Mode::Auto {
        let no_dw = {
            let mut sel = opts.selection.clone();
            sel.exclude_ops.insert("DepthwiseConv".into());
            qdq::plan(&prepared, &sel)
        };
        if !no_dw.nodes.is_empty() && no_dw.nodes.len() != full_plan.nodes.len() {
            variants.push(("int8: depthwise convs kept float".into(), no_dw));
        }
    }
    let mut attempts = Vec::new();
    let mut best: Option<(
        usize,
        Model,
        Vec<OutputAccuracy>,
        Option<LatencyRatio>,
        u64,
        Vec<String>,
    )> = None;
    let mut warnings = Vec::new();
    for (vi, (name, plan)) in variants.iter().enumerate() {
        let mut q = prepared.clone();
        let patch = qdq::emit(&q, plan, &ranges, opts.selection.per_channel)?;
        let label = patch.label.clone();
        patch.apply(q.graph_mut())?;
        graph::prune_initializers(q.graph_mut());
        let bytes = q.to_bytes();
        let mut cand = engine
            .load(&bytes)
            .map_err(|e| Error::Runtime(format!("the quantized model does not load: {e}")))?;
        let outs = compare(&mut *cand, eval_set, &ref_outputs, &class_outputs)?;
        let latency = if opts.measure_latency {
            Some(runner::latency_ratio(
                &mut *reference,
                &mut *cand,
                &eval_set[0],
                5,
                200,
                opts.latency_budget_s,
            )?)
        } else {
            None
        };
        let meets = opts.target.is_none_or(|t| t.met_by(&outs));
        let min_sqnr = outs.iter().filter_map(|o| o.sqnr_db).reduce(f64::min);
        attempts.push(Attempt {
            variant: name.clone(),
            quantized_nodes: plan.nodes.len(),
            min_sqnr_db: min_sqnr,
            latency_ratio: latency.map(|l| l.ratio),
            size_ratio: bytes.len() as f64 / fp32_bytes.len() as f64,
            meets_target: meets,
        });
        let better = match &best {
            None => true,
            Some((bi, _, bouts, blat, _, _)) => {
                let bmeets = opts.target.is_none_or(|t| t.met_by(bouts));
                let (lr, blr) = (
                    latency.map_or(1.0, |l| l.ratio),
                    blat.map_or(1.0, |l| l.ratio),
                );
                (meets && !bmeets) || (meets == bmeets && lr < blr * 0.97) || (*bi == usize::MAX)
            }
        };
        if better {
            best = Some((vi, q, outs, latency, bytes.len() as u64, vec![label]));
        }
    }
    let (vi, qmodel, outputs, latency, qbytes, patches) = best.expect("at least one variant");
    if let Some(l) = latency {
        if l.ratio >= 1.0 {
            warnings.push(format!(
                "the int8 model is SLOWER than fp32 on this machine (latency ratio {:.2}); int8 does not pay off for this model here",
                l.ratio
            ));
        }
    }
    if random_inputs {
        warnings.push("calibration and evaluation used RANDOM inputs: the accuracy figures are meaningless; pass --calibration DIR with real inputs".into());
    }
    if eval.is_empty() {
        warnings.push(
            "no held-out evaluation inputs: accuracy measured on the calibration inputs".into(),
        );
    }
    let layers = if opts.debug_layers {
        debug_layers(
            &prepared,
            &qmodel,
            &variants[vi].1,
            &ranges,
            eval_set,
            engine,
        )?
    } else {
        Vec::new()
    };
    let meets_target = opts.target.map(|t| t.met_by(&outputs));
    let report = Report {
        schema: "edgepack.quantize/1",
        mode: opts.mode,
        variant: variants[vi].0.clone(),
        method: opts.method,
        preparation,
        patches,
        quantized_nodes: variants[vi].1.nodes.clone(),
        calibration_samples: calib.len(),
        eval_samples: eval_set.len(),
        random_inputs,
        outputs,
        size: SizeReport {
            fp32_bytes: fp32_bytes.len() as u64,
            quantized_bytes: qbytes,
            ratio: qbytes as f64 / fp32_bytes.len() as f64,
        },
        latency,
        quantize_wall_s: calib_s,
        target: opts.target,
        meets_target,
        attempts,
        layers,
        warnings,
    };
    Ok(Quantized {
        model: qmodel,
        report,
    })
}

/// Run the calibration: expose `tensors` as outputs and stream every sample through.
pub fn calibrate_model(
    prepared: &Model,
    tensors: &[String],
    calib: &[Feed],
    method: Method,
    engine: &dyn Engine,
) -> Result<BTreeMap<String, Collector>> {
    let mut m = prepared.clone();
    let existing: HashSet<String> = m.graph().output.iter().map(|o| o.name.clone()).collect();
    // Graph inputs are observed from the feed itself: ONNX Runtime does not echo an input
    // back as an output.
    let graph_inputs: HashSet<String> = m.graph().input.iter().map(|i| i.name.clone()).collect();
    let run_tensors: Vec<String> = tensors
        .iter()
        .filter(|t| !graph_inputs.contains(*t))
        .cloned()
        .collect();
    for t in &run_tensors {
        if !existing.contains(t) {
            m.graph_mut().output.push(graph::float_value_info(t));
        }
    }
    let mut runner = engine.load_for_calibration(&m.to_bytes())?;
    let mut collectors: BTreeMap<String, Collector> = tensors
        .iter()
        .map(|t| (t.clone(), Collector::default()))
        .collect();
    let passes = if method.needs_histogram() { 2 } else { 1 };
    for pass in 0..passes {
        for feed in calib {
            let mut outs = runner.run(feed, &run_tensors)?;
            outs.extend(
                feed.iter()
                    .filter(|t| collectors.contains_key(&t.name))
                    .cloned(),
            );
            for o in outs {
                let c = collectors.get_mut(&o.name).expect("asked for");
                if pass == 0 {
                    c.observe_range(&o.data);
                } else {
                    c.observe_histogram(&o.data);
                }
            }
        }
    }
    Ok(collectors)
}

/// Outputs whose last axis is a class axis: produced by Softmax/LogSoftmax over the last
/// axis, possibly through Identity nodes.
fn class_axis_outputs(prepared: &Model) -> HashSet<String> {
    let g = prepared.graph();
    let ranks = graph::infer_ranks(g);
    let mut set: HashSet<String> = HashSet::new();
    for n in &g.node {
        let axis = graph::attr_i(n, "axis", -1);
        let last = axis == -1
            || ranks
                .get(&n.output[0])
                .is_some_and(|&r| axis == r as i64 - 1);
        if matches!(n.op_type.as_str(), "Softmax" | "LogSoftmax") && last {
            set.insert(n.output[0].clone());
        }
        if n.op_type == "Identity" && set.contains(&n.input[0]) {
            set.insert(n.output[0].clone());
        }
    }
    set
}

fn compare(
    cand: &mut dyn runner::ModelRunner,
    feeds: &[Feed],
    reference: &[Vec<runner::NamedTensor>],
    class_outputs: &HashSet<String>,
) -> Result<Vec<OutputAccuracy>> {
    let mut accs: Vec<Accumulator> = Vec::new();
    let mut names = Vec::new();
    for (f, r) in feeds.iter().zip(reference) {
        let names_wanted: Vec<String> = r.iter().map(|t| t.name.clone()).collect();
        let outs = cand.run(f, &names_wanted)?;
        if accs.is_empty() {
            accs = vec![Accumulator::default(); outs.len()];
            names = names_wanted.clone();
        }
        for ((acc, a), b) in accs.iter_mut().zip(r).zip(&outs) {
            if a.shape != b.shape {
                return Err(Error::Runtime(format!(
                    "output '{}' has shape {:?} in the quantized model, {:?} in fp32",
                    a.name, b.shape, a.shape
                )));
            }
            let classes = class_outputs
                .contains(&a.name)
                .then(|| *a.shape.last().unwrap_or(&1));
            acc.add(&a.data, &b.data, classes);
        }
    }
    Ok(accs.iter().zip(&names).map(|(a, n)| a.finish(n)).collect())
}

/// Error at every quantized activation: the fp32 value vs the quantized model's value of
/// the same tensor (its DequantizeLinear output), on the evaluation inputs.
fn debug_layers(
    prepared: &Model,
    quantized: &Model,
    plan: &qdq::Plan,
    ranges: &BTreeMap<String, (f32, f32)>,
    feeds: &[Feed],
    engine: &dyn Engine,
) -> Result<Vec<LayerError>> {
    let mut fm = prepared.clone();
    let mut qm = quantized.clone();
    let graph_inputs: HashSet<String> = prepared
        .graph()
        .input
        .iter()
        .map(|i| i.name.clone())
        .collect();
    let acts: Vec<String> = plan
        .activations
        .iter()
        .filter(|t| !graph_inputs.contains(*t))
        .cloned()
        .collect();
    let dq_names: Vec<String> = acts.iter().map(|t| format!("{t}_dequantized")).collect();
    for (t, d) in acts.iter().zip(&dq_names) {
        fm.graph_mut().output.push(graph::float_value_info(t));
        qm.graph_mut().output.push(graph::float_value_info(d));
    }
    let mut fr = engine.load_for_calibration(&fm.to_bytes())?;
    let mut qr = engine.load_for_calibration(&qm.to_bytes())?;
    let mut accs = vec![Accumulator::default(); acts.len()];
    for f in feeds {
        let a = fr.run(f, &acts)?;
        let b = qr.run(f, &dq_names)?;
        for ((acc, x), y) in accs.iter_mut().zip(&a).zip(&b) {
            acc.add(&x.data, &y.data, None);
        }
    }
    Ok(acts
        .iter()
        .zip(&accs)
        .map(|(t, a)| LayerError {
            tensor: t.clone(),
            sqnr_db: a.finish(t).sqnr_db,
            range: ranges.get(t).copied().unwrap_or((0.0, 0.0)),
        })
        .collect())
}
