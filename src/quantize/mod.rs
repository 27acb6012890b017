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
//! Other modes: `auto` ([`auto`]: every applicable mode, measured, winner by a stated rule;
//! its int8 candidate also tries depthwise and squeeze-excitation convs in float and keeps
//! the faster), `int8-weight` (int8 weights rounded with error compensation and bias
//! correction, float compute, run with [`session_config`]'s load-time dequantization),
//! `int8-dynamic` ([`dynamic`]). An `--accuracy-floor` that is missed triggers a per-node
//! sensitivity ranking (error each node adds when quantized alone) and keeps the worst
//! nodes in float until it is met.
//! `fp16` ([`fp16`]): float16 weights and compute, float32 at the inputs and outputs, casts
//! around a block list of ops kept in float32. `int4-weight` ([`nbits`]): 4-bit blockwise
//! weights of large constant-weight MatMuls/Gemms as ONNX Runtime's `MatMulNBits`.
//!
//! Runs go through the [`runner::Engine`] trait ([`engine::RuntimeEngine`] on
//! `runtime::Session`), so the passes never touch ONNX Runtime directly.

pub mod accuracy;
pub mod adaround;
pub mod auto;
pub mod calibrate;
pub mod data;
pub mod dynamic;
pub mod engine;
pub mod fp16;
pub mod graph;
#[cfg(test)]
mod int8_tests;
pub mod math;
pub mod nbits;
pub mod prepare;
pub mod preprocess;
pub mod qdq;
pub mod runner;
pub mod subgraph;
pub mod task;
#[cfg(test)]
mod transformer_tests;

mod compare;
mod report;

use compare::debug_layers;
pub use compare::{class_axis_outputs, compare, compare_models, Comparison, Metrics};
use report::measurement_warnings;
pub use report::{AccuracyBasis, Attempt, LayerError, Report, SizeReport};

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::builder::value_info_unshaped;
use crate::model::{DataType, Model};
use accuracy::{AccuracyFloor, OutputAccuracy};
use calibrate::{Collector, Method};
use runner::{Engine, Feed};

/// What kind of quantization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Static int8 QDQ (calibrated activations, per-channel int8 weights).
    Int8,
    /// Try int8 variants and keep the best that meets the accuracy target.
    Auto,
    /// Int8 weights (DequantizeLinear on initializers), float compute: smaller file only.
    Int8Weight,
    /// Int8 MatMul with activations quantized per call (no calibration).
    Int8Dynamic,
    /// Float16 weights and compute, float32 at the model's inputs and outputs.
    Fp16,
    /// 4-bit block-quantized weights of large MatMuls (`MatMulNBits`), float activations.
    Int4Weight,
}

impl Mode {
    /// The name the CLI uses (`int8-dynamic`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Int8 => "int8",
            Mode::Auto => "auto",
            Mode::Int8Weight => "int8-weight",
            Mode::Int8Dynamic => "int8-dynamic",
            Mode::Fp16 => "fp16",
            Mode::Int4Weight => "int4-weight",
        }
    }
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
    /// Accuracy targets: when set and missed, the most sensitive nodes are kept in float
    /// until they are met (both modes); they also decide the verdict.
    pub targets: Vec<AccuracyFloor>,
    /// Task metrics reported for every output without being targets (a package's
    /// declared `[postprocessing] task`, which the build passes on).
    pub tasks: Vec<task::Task>,
    /// Measure the latency ratio (interleaved runs) against the fp32 model.
    pub measure_latency: bool,
    /// Seconds to spend on the latency comparison (at least 5 pairs are always run).
    pub latency_budget_s: f64,
    /// Per-tensor error view.
    pub debug_layers: bool,
    /// `--mode fp16` settings.
    pub fp16: fp16::Options,
    /// `--mode int4-weight` settings.
    pub int4: nbits::Options,
    /// Prepare from ONNX Runtime's basic-level offline optimization of the model instead
    /// of the original (`--prepare ort`); `auto` tries both for int8 and keeps the faster.
    pub ort_offline_first: bool,
    /// When a target is missed, keep the most sensitive nodes in float until it is met
    /// (on by default; `auto` runs it once, on its own-preparation int8 candidate).
    pub accuracy_guard: bool,
}

/// Session entries a quantized model runs with. Weight-only int8 (DequantizeLinear on
/// initializers only, no quantized activations) sets `session.disable_quant_qdq`: ONNX
/// Runtime then constant-folds the DequantizeLinear nodes at load and runs float kernels,
/// instead of dequantizing every weight on every call (measured on PP-OCR rec/det: 1.27x
/// fp32 latency without it, 0.90x with it). Nothing is lost: there are no activation
/// Q/DQ groups to fuse.
pub fn session_config(opts: &Options) -> runner::SessionConfig {
    let mut c = runner::SessionConfig::new();
    if opts.selection.weights_only {
        c.insert(
            crate::runtime::DISABLE_QUANT_QDQ.to_string(),
            "1".to_string(),
        );
    }
    c
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
        "DynamicQuantizeLSTM",
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
/// `Mode::Auto` tries every applicable mode ([`auto`]).
pub fn quantize(
    model: &Model,
    calib: &[Feed],
    eval: &[Feed],
    random_inputs: bool,
    opts: &Options,
    engine: &dyn Engine,
) -> Result<Quantized> {
    let mut q = if opts.mode == Mode::Auto {
        auto::search(model, calib, eval, random_inputs, opts, engine)?
    } else {
        let q = quantize_mode(model, calib, eval, random_inputs, opts, engine)?;
        // int8-dynamic gets the accuracy guard too (its MatMuls back to float: `auto`).
        if opts.mode == Mode::Int8Dynamic
            && opts.accuracy_guard
            && q.report.meets_target == Some(false)
        {
            auto::dynamic_guard(model, calib, eval, random_inputs, opts, engine, q)?
        } else {
            q
        }
    };
    // The model carries the session entries it was measured with (issue 17 bug 3).
    crate::model::metadata::set_session_entries(&mut q.model.proto, &q.report.session_config);
    if opts.targets.is_empty() {
        let r = &q.report;
        let w = below_default_target(r.random_inputs, &r.outputs, r.accuracy_basis);
        q.report.warnings.extend(w);
    }
    Ok(q)
}

/// Without an explicit target, a result under the default one ([`auto::DEFAULT_TARGET`])
/// still gets an accuracy warning, as a slower result gets a speed warning (an int8
/// model at 11 dB / cosine 0.96 used to pass without a word).
fn below_default_target(
    random_inputs: bool,
    outputs: &[OutputAccuracy],
    basis: AccuracyBasis,
) -> Option<String> {
    if random_inputs {
        return None;
    }
    let target = accuracy::AccuracyFloor::parse(auto::DEFAULT_TARGET).expect("valid default");
    if target.met_by(outputs) {
        return None;
    }
    let worst = outputs
        .iter()
        .filter_map(|o| o.sqnr_db.map(|s| (s, o)))
        .min_by(|a, b| a.0.total_cmp(&b.0))?;
    Some(format!(
        "accuracy below the default target {}: output '{}' SQNR {:.1} dB{} ({}); check it on your task, or set --accuracy-target",
        auto::DEFAULT_TARGET,
        worst.1.output,
        worst.0,
        worst.1.cosine.map_or(String::new(), |c| format!(", cosine {c:.4}")),
        basis.label()
    ))
}

/// One mode. `Mode::Auto` here is the int8 search (accuracy guard and the
/// depthwise-in-float variant), which [`auto::search`] runs as its int8 candidate.
fn quantize_mode(
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
    let mut preparation = Vec::new();
    if opts.ort_offline_first {
        let Some(bytes) = engine.optimize_offline(&prepared.to_bytes())? else {
            return Err(Error::usage(
                "--prepare ort",
                "this engine cannot run ONNX Runtime's offline optimization",
            ));
        };
        prepared = Model::from_bytes(&bytes, &origin)?;
        preparation.push("ONNX Runtime basic-level offline graph optimization".to_string());
    }
    preparation.extend(prepare::prepare(&mut prepared)?);
    // Modes that rewrite the prepared model without calibration.
    let rewrite = match opts.mode {
        Mode::Int8Dynamic => Some(match rewrite_dynamic(&prepared, &origin, opts) {
            Ok(r) => r,
            // Weights an exporter computes from constants (Silero VAD's LSTM weights are
            // Slice/Concat/Unsqueeze of Constants, inside If branches) are initializers
            // only after constant folding: ONNX Runtime's basic offline optimization does
            // that, in subgraphs too. Tried only when the plain graph has nothing.
            Err(e) if !opts.ort_offline_first => {
                let Some(bytes) = engine.optimize_offline(&prepared.to_bytes())? else {
                    return Err(e);
                };
                let mut folded = Model::from_bytes(&bytes, &origin)?;
                let steps = prepare::prepare(&mut folded)?;
                let Ok(r) = rewrite_dynamic(&folded, &origin, opts) else {
                    return Err(e);
                };
                prepared = folded;
                preparation.push(
                    "ONNX Runtime basic-level offline graph optimization (constant folding: \
                     the weights are computed from constants)"
                        .to_string(),
                );
                preparation.extend(steps);
                r
            }
            Err(e) => return Err(e),
        }),
        Mode::Fp16 => Some(fp16::convert(&prepared, &origin, &opts.fp16)?),
        Mode::Int4Weight => Some(nbits::convert(&prepared, &origin, &opts.int4)?),
        Mode::Int8 | Mode::Auto | Mode::Int8Weight => None,
    };
    if let Some(rewrite) = rewrite {
        let ctx = Finish {
            model,
            prepared: &prepared,
            preparation,
            calib,
            eval,
            random_inputs,
            opts,
            engine,
            start,
        };
        return finish_rewrite(ctx, rewrite);
    }
    let full_plan = qdq::plan(&prepared, &opts.selection)?;
    if full_plan.nodes.is_empty() && full_plan.nested.is_empty() {
        return Err(Error::file(
            &origin,
            "nothing to quantize: no Conv, MatMul or Gemm with constant weights (after exclusions), in the graph or its If/Loop/Scan bodies",
        ));
    }
    // Weight-only convs get bias correction, which needs the per-channel means of their
    // inputs (not otherwise observed: weight-only plans no activation ranges).
    let mut observed: Vec<String> = full_plan.activations.clone();
    let mean_inputs: HashSet<String> = full_plan
        .nodes
        .iter()
        .filter(|n| n.op_type == "Conv" && n.weight_only)
        .map(|n| n.input.clone())
        .collect();
    observed.extend(mean_inputs.iter().cloned());
    observed.sort();
    observed.dedup();
    // Input second moments for error-compensating weight rounding (per-channel only).
    let gptq = opts.selection.rounding.compensates(&opts.selection);
    let mut moment_slots: Vec<(String, calibrate::Moments)> = Vec::new();
    let mut moment_nodes: Vec<String> = Vec::new();
    if gptq {
        for qn in &full_plan.nodes {
            if let Some(spec) = qdq::patch_spec(&prepared, qn) {
                if spec.blocks_and_dim().1 <= qdq::GPTQ_MAX_DIM {
                    observed.push(qn.input.clone());
                    moment_slots.push((qn.input.clone(), calibrate::Moments::new(spec)));
                    moment_nodes.push(qn.node.clone());
                }
            }
        }
        observed.sort();
        observed.dedup();
    }
    let collectors = calibrate_model(
        &prepared,
        &observed,
        calib,
        opts.method,
        engine,
        &mut moment_slots,
        &mean_inputs,
    )?;
    let moments: BTreeMap<String, calibrate::Moments> = moment_nodes
        .into_iter()
        .zip(moment_slots.into_iter().map(|(_, m)| m))
        .collect();
    let ranges: BTreeMap<String, (f32, f32)> = collectors
        .iter()
        .map(|(k, c)| (k.clone(), c.range(opts.method)))
        .collect();
    let means: BTreeMap<String, (Vec<f32>, Vec<usize>)> = collectors
        .iter()
        .filter_map(|(k, c)| Some((k.clone(), (c.channel_means()?, c.spatial.clone()))))
        .collect();
    let calib_s = start.elapsed().as_secs_f64();

    let fp32_bytes = model.to_bytes();
    let mut reference = engine.load(&fp32_bytes)?;
    let class_outputs = Metrics::of(&prepared, &opts.targets, &opts.tasks)?;
    let eval_set: &[Feed] = if eval.is_empty() { calib } else { eval };
    let mut ref_outputs: Vec<Vec<runner::NamedTensor>> = Vec::new();
    for f in eval_set {
        ref_outputs.push(reference.run(f, &[])?);
    }

    let meets = |outs: &[OutputAccuracy]| opts.targets.iter().all(|t| t.met_by(outs));
    // Weight-only models run with DequantizeLinear folded at load (see `session_config`).
    let qconfig = session_config(opts);
    let build = |plan: &qdq::Plan| -> Result<(Model, Vec<u8>, String)> {
        let mut q = prepared.clone();
        let patch = qdq::emit(
            &q,
            plan,
            &ranges,
            &means,
            &moments,
            opts.selection.per_channel,
        )?;
        let label = patch.label.clone();
        if !patch.ops.is_empty() {
            q.apply(patch)?;
        }
        graph::prune_initializers(&mut q)?;
        let bytes = q.to_bytes();
        Ok((q, bytes, label))
    };
    let evaluate = |plan: &qdq::Plan,
                    feeds: &[Feed],
                    refs: &[Vec<runner::NamedTensor>]|
     -> Result<(Model, Vec<u8>, String, Vec<OutputAccuracy>)> {
        let (q, bytes, label) = build(plan)?;
        let mut cand = engine
            .load_configured(&bytes, &qconfig, false)
            .map_err(|e| Error::Runtime(format!("the quantized model does not load: {e}")))?;
        let outs = compare(&mut *cand, feeds, refs, &class_outputs)?;
        Ok((q, bytes, label, outs))
    };
    let mut attempts = Vec::new();
    let mut warnings = qdq::nested_warnings(&full_plan, opts.selection.weights_only);
    let attempt = |variant: String,
                   plan: &qdq::Plan,
                   bytes: usize,
                   outs: &[OutputAccuracy],
                   latency: Option<f64>| Attempt {
        variant,
        quantized_nodes: plan.nodes.len() + plan.nested.nodes,
        min_sqnr_db: outs.iter().filter_map(|o| o.sqnr_db).reduce(f64::min),
        latency_ratio: latency,
        size_ratio: bytes as f64 / fp32_bytes.len() as f64,
        meets_target: meets(outs),
    };

    // 1. Everything the kernels support.
    let kind = match (opts.selection.weights_only, opts.ort_offline_first) {
        (true, false) => "int8-weight",
        (true, true) => "int8-weight (ORT-optimized graph)",
        (false, false) => "int8",
        (false, true) => "int8 (ORT-optimized graph)",
    };
    let mut variant = format!("{kind}: every Conv/MatMul/Gemm");
    let mut plan = full_plan.clone();
    let (mut qmodel, mut qbytes, mut label, mut outputs) = evaluate(&plan, eval_set, &ref_outputs)?;
    attempts.push(attempt(
        variant.clone(),
        &plan,
        qbytes.len(),
        &outputs,
        None,
    ));

    // 2. Accuracy guard: when a target is set and missed, rank nodes by the error each adds
    //    when quantized alone, and keep the most sensitive ones in float, one more at a
    //    time, until the target is met.
    if opts.accuracy_guard && !opts.targets.is_empty() && !meets(&outputs) {
        let probe = &eval_set[..eval_set.len().min(4)];
        let probe_refs = &ref_outputs[..probe.len()];
        let mut sens: Vec<(f64, String)> = Vec::new();
        for qn in &full_plan.nodes {
            let single = qdq::restrict(&full_plan, |n| n.node == qn.node);
            let (_, _, _, outs) = evaluate(&single, probe, probe_refs)?;
            let s = outs
                .iter()
                .filter_map(|o| o.sqnr_db)
                .reduce(f64::min)
                .unwrap_or(f64::INFINITY);
            sens.push((s, qn.node.clone()));
        }
        sens.sort_by(|a, b| a.0.total_cmp(&b.0));
        let max_float = (full_plan.nodes.len() / 2).max(1);
        let worst = |o: &[OutputAccuracy]| {
            o.iter()
                .filter_map(|x| x.sqnr_db)
                .reduce(f64::min)
                .unwrap_or(f64::INFINITY)
        };
        // Errors do not add up layer by layer, so more float nodes can be worse: keep the
        // best set tried, and stop after STALE sets in a row that do not beat it.
        const STALE: usize = 6;
        let mut best_sqnr = worst(&outputs);
        let mut since_best = 0;
        let mut kept_float: Vec<String> = Vec::new();
        for (s, node) in sens.iter().take(max_float) {
            kept_float.push(node.clone());
            let set: HashSet<&str> = kept_float.iter().map(String::as_str).collect();
            let p = qdq::restrict(&full_plan, |n| !set.contains(n.node.as_str()));
            let (m, b, l, outs) = evaluate(&p, eval_set, &ref_outputs)?;
            let v = format!(
                "{kind}, {} most sensitive kept float (last: {node}, {s:.1} dB alone)",
                kept_float.len()
            );
            attempts.push(attempt(v.clone(), &p, b.len(), &outs, None));
            let ok = meets(&outs);
            if ok || worst(&outs) > best_sqnr {
                best_sqnr = worst(&outs);
                since_best = 0;
                (qmodel, qbytes, label, outputs, plan, variant) = (m, b, l, outs, p, v);
            } else {
                since_best += 1;
            }
            if ok || since_best >= STALE {
                break;
            }
        }
        if !meets(&outputs) {
            warnings.push(format!(
                "the accuracy target was not met with up to {} of the most sensitive nodes kept in float; kept the most accurate set tried ({variant})",
                kept_float.len()
            ));
        }
    }

    // 3. auto: also try keeping depthwise and squeeze-excitation convs in float: on x86,
    //    ONNX Runtime's fp32 NCHWc convs fuse the activation, and small int8 convs do not win
    //    back the cost of their Q/DQ pairs (measured on the PP-OCR classifier).
    let mut latency = None;
    let mut timing_ref = if opts.measure_latency {
        Some(engine.load_for_timing(&fp32_bytes)?)
    } else {
        None
    };
    if let Some(reference) = timing_ref.as_mut() {
        let mut cand = engine.load_configured(&qbytes, &qconfig, true)?;
        latency = Some(runner::latency_ratio(
            &mut **reference,
            &mut *cand,
            &eval_set[0],
            5,
            200,
            opts.latency_budget_s,
        )?);
        if let Some(a) = attempts.last_mut() {
            a.latency_ratio = latency.map(|l| l.ratio);
        }
    }
    if let (Mode::Auto, Some(reference)) = (opts.mode, timing_ref.as_mut()) {
        let no_dw = {
            let mut sel = opts.selection.clone();
            sel.exclude_ops.insert("DepthwiseConv".into());
            sel.float_pooled = true;
            let dw = qdq::plan(&prepared, &sel)?;
            let current: HashSet<&str> = plan.nodes.iter().map(|n| n.node.as_str()).collect();
            qdq::restrict(&dw, |n| current.contains(n.node.as_str()))
        };
        if !no_dw.nodes.is_empty() && no_dw.nodes.len() != plan.nodes.len() {
            let (m, b, l, outs) = evaluate(&no_dw, eval_set, &ref_outputs)?;
            let mut cand = engine.load_configured(&b, &qconfig, true)?;
            let lat = runner::latency_ratio(
                &mut **reference,
                &mut *cand,
                &eval_set[0],
                5,
                200,
                opts.latency_budget_s,
            )?;
            let v = format!("{variant}; depthwise and squeeze-excitation convs kept float");
            attempts.push(attempt(v.clone(), &no_dw, b.len(), &outs, Some(lat.ratio)));
            let cur = latency.map_or(f64::INFINITY, |l| l.ratio);
            if meets(&outs) >= meets(&outputs) && lat.ratio < cur * 0.97 {
                (qmodel, qbytes, label, outputs, plan, variant, latency) =
                    (m, b, l, outs, no_dw, v, Some(lat));
            }
        }
    }
    let patches = vec![label];
    let qbytes = qbytes.len() as u64;
    warnings.extend(measurement_warnings(
        kind,
        latency,
        random_inputs,
        eval.is_empty(),
    ));
    let layers = if opts.debug_layers {
        debug_layers(&prepared, &qmodel, &plan, &ranges, eval_set, engine)?
    } else {
        Vec::new()
    };
    let meets_target = (!opts.targets.is_empty()).then(|| meets(&outputs));
    let report = Report {
        schema: "edgepack.quantize/1",
        mode: opts.mode,
        variant,
        method: opts.method,
        preparation,
        patches,
        quantized_nodes: plan.nodes.clone(),
        calibration_samples: calib.len(),
        eval_samples: eval_set.len(),
        random_inputs,
        accuracy_basis: AccuracyBasis::of(random_inputs, eval.is_empty()),
        outputs,
        size: SizeReport {
            fp32_bytes: fp32_bytes.len() as u64,
            quantized_bytes: qbytes,
            ratio: qbytes as f64 / fp32_bytes.len() as f64,
        },
        size_ratio: qbytes as f64 / fp32_bytes.len() as f64,
        latency_ratio: latency.map(|l| l.ratio),
        latency,
        quantize_wall_s: calib_s,
        targets: opts.targets.clone(),
        meets_target,
        attempts,
        layers,
        warnings,
        choice: None,
        session_config: qconfig,
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
    moments: &mut [(String, calibrate::Moments)],
    channel_means_of: &HashSet<String>,
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
            m.graph_mut()
                .output
                .push(value_info_unshaped(t, DataType::Float));
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
            // An empty request means "every graph output" to a runner; with nothing to
            // observe inside the graph (`int8-weight` plans no activations) skip the run.
            let mut outs = if run_tensors.is_empty() {
                Vec::new()
            } else {
                runner.run(feed, &run_tensors)?
            };
            outs.extend(
                feed.iter()
                    .filter(|t| collectors.contains_key(&t.name))
                    .cloned(),
            );
            for o in outs {
                // A runner may return more than was asked (e.g. graph outputs): ignore it.
                let Some(c) = collectors.get_mut(&o.name) else {
                    continue;
                };
                let data = o.floats();
                if pass == 0 {
                    c.observe_range(&data);
                    if channel_means_of.contains(&o.name) {
                        c.observe_channel_mean(&o.shape, &data);
                    }
                    for (_, m) in moments.iter_mut().filter(|(t, _)| *t == o.name) {
                        m.observe(&o.shape, &data);
                    }
                } else {
                    c.observe_histogram(&data);
                }
            }
        }
    }
    Ok(collectors)
}

/// A model rewritten by a mode that needs no calibration (int8-dynamic, fp16, int4-weight).
pub struct Rewrite {
    /// The rewritten model.
    pub model: Model,
    /// Labels of the patches applied, in order.
    pub labels: Vec<String>,
    /// What the variant is, e.g. `int8 dynamic: 13 MatMul`.
    pub variant: String,
    /// Nodes rewritten.
    pub count: usize,
    /// Things the user should know (ops kept in float, ...).
    pub warnings: Vec<String>,
}

/// What [`finish_rewrite`] measures against.
struct Finish<'a> {
    model: &'a Model,
    prepared: &'a Model,
    preparation: Vec<String>,
    calib: &'a [Feed],
    eval: &'a [Feed],
    random_inputs: bool,
    opts: &'a Options,
    engine: &'a dyn Engine,
    start: Instant,
}

fn rewrite_dynamic(prepared: &Model, origin: &std::path::Path, opts: &Options) -> Result<Rewrite> {
    let mut q = prepared.clone();
    let (labels, counts) = dynamic_everywhere(&mut q, opts)?;
    if counts.total() == 0 {
        return Err(Error::file(
            origin,
            "nothing to quantize dynamically: no MatMul with a constant 2-D weight and no LSTM with constant W and R (in the graph or its If/Loop/Scan bodies)",
        ));
    }
    Ok(Rewrite {
        model: q,
        labels,
        variant: format!("int8 dynamic: {counts}"),
        count: counts.total(),
        warnings: Vec::new(),
    })
}

/// The dynamic rewrite ([`dynamic::emit`]) on `model`'s graph and, recursively, on every
/// subgraph (`If` branches, `Loop`/`Scan` bodies): recurrent models such as Silero VAD
/// keep their LSTM inside an `If` on the sample rate. Each subgraph is rewritten as a
/// model of its own (the outer-scope names it reads declared as extra inputs, so the patch
/// checks pass, and dropped again) and set back on its node by one labelled patch per
/// graph level. Returns the labels of the patches applied and the counts over all levels.
fn dynamic_everywhere(model: &mut Model, opts: &Options) -> Result<(Vec<String>, dynamic::Counts)> {
    use crate::model::patch::{NodeRef, Patch};
    let mut labels = Vec::new();
    let mut sub_counts = dynamic::Counts::default();
    let mut sets = Vec::new();
    for n in &model.graph().node {
        for a in &n.attribute {
            let Some(g) = &a.g else { continue };
            let mut sub_graph = g.clone();
            let declared = sub_graph.input.len();
            for name in crate::model::graph::outer_scope_reads(g) {
                sub_graph.input.push(crate::model::ValueInfoProto {
                    name,
                    ..Default::default()
                });
            }
            let mut sub = Model::from_proto(crate::model::proto::ModelProto {
                graph: Some(sub_graph),
                ..model.proto.clone()
            });
            let (_, c) = dynamic_everywhere(&mut sub, opts)?;
            if c.total() == 0 {
                continue;
            }
            let mut rewritten = sub.proto.graph.unwrap_or_default();
            rewritten.input.truncate(declared);
            sets.push((
                NodeRef::of(n),
                crate::model::attr::graph(&a.name, rewritten),
            ));
            sub_counts.matmul += c.matmul;
            sub_counts.lstm += c.lstm;
        }
    }
    if !sets.is_empty() {
        let mut p = Patch::new(format!("int8 dynamic in subgraphs: {sub_counts}"));
        if sub_counts.lstm > 0 {
            // DynamicQuantizeLSTM (com.microsoft, version 1), as `dynamic::emit` declares it.
            p = p.set_opset(nbits::MS_DOMAIN, 1);
        }
        for (node, attribute) in sets {
            p = p.set_attribute(node, attribute);
        }
        labels.push(model.apply(p)?.label);
    }
    let (patch, counts) = dynamic::emit(
        model,
        opts.selection.per_channel,
        &opts.selection.exclude_nodes,
    )?;
    if counts.total() > 0 {
        labels.push(model.apply(patch)?.label);
        graph::prune_initializers(model)?;
    }
    Ok((
        labels,
        dynamic::Counts {
            matmul: counts.matmul + sub_counts.matmul,
            lstm: counts.lstm + sub_counts.lstm,
        },
    ))
}

/// Measure a rewritten model against the fp32 original: accuracy on the evaluation
/// samples (the calibration samples when none are held out), size, interleaved latency.
fn finish_rewrite(ctx: Finish<'_>, rewrite: Rewrite) -> Result<Quantized> {
    let Finish {
        model,
        prepared,
        preparation,
        calib,
        eval,
        random_inputs,
        opts,
        engine,
        start,
    } = ctx;
    let Rewrite {
        model: q,
        labels,
        variant,
        count,
        mut warnings,
    } = rewrite;
    let wall_s = start.elapsed().as_secs_f64();
    let fp32_bytes = model.to_bytes();
    let qbytes = q.to_bytes();
    let eval_set: &[Feed] = if eval.is_empty() { calib } else { eval };
    let mut reference = engine.load(&fp32_bytes)?;
    let refs = eval_set
        .iter()
        .map(|f| reference.run(f, &[]))
        .collect::<Result<Vec<_>>>()?;
    let mut cand = engine
        .load(&qbytes)
        .map_err(|e| Error::Runtime(format!("the {variant} model does not load: {e}")))?;
    let metrics = Metrics::of(prepared, &opts.targets, &opts.tasks)?;
    let outputs = compare(&mut *cand, eval_set, &refs, &metrics)?;
    let latency = if opts.measure_latency {
        let mut ta = engine.load_for_timing(&fp32_bytes)?;
        let mut tb = engine.load_for_timing(&qbytes)?;
        Some(runner::latency_ratio(
            &mut *ta,
            &mut *tb,
            &eval_set[0],
            5,
            200,
            opts.latency_budget_s,
        )?)
    } else {
        None
    };
    warnings.extend(measurement_warnings(
        opts.mode.name(),
        latency,
        random_inputs,
        eval.is_empty(),
    ));
    let meets = opts.targets.iter().all(|t| t.met_by(&outputs));
    let size_ratio = qbytes.len() as f64 / fp32_bytes.len() as f64;
    let report = Report {
        schema: "edgepack.quantize/1",
        mode: opts.mode,
        variant: variant.clone(),
        method: opts.method,
        preparation,
        patches: labels,
        quantized_nodes: Vec::new(),
        calibration_samples: 0,
        eval_samples: eval_set.len(),
        random_inputs,
        accuracy_basis: AccuracyBasis::of(random_inputs, eval.is_empty()),
        attempts: vec![Attempt {
            variant,
            quantized_nodes: count,
            min_sqnr_db: outputs.iter().filter_map(|o| o.sqnr_db).reduce(f64::min),
            latency_ratio: latency.map(|l| l.ratio),
            size_ratio,
            meets_target: meets,
        }],
        outputs,
        size: SizeReport {
            fp32_bytes: fp32_bytes.len() as u64,
            quantized_bytes: qbytes.len() as u64,
            ratio: size_ratio,
        },
        size_ratio,
        latency_ratio: latency.map(|l| l.ratio),
        latency,
        quantize_wall_s: wall_s,
        targets: opts.targets.clone(),
        meets_target: (!opts.targets.is_empty()).then_some(meets),
        layers: Vec::new(),
        warnings,
        choice: None,
        session_config: runner::SessionConfig::new(),
    };
    Ok(Quantized { model: q, report })
}

#[cfg(test)]
mod tests {
    use super::runner::{Engine, ModelRunner, NamedTensor};
    use super::*;

    #[test]
    fn a_result_below_the_default_target_gets_an_accuracy_warning() {
        let out = |sqnr: f64, cos: f64| OutputAccuracy {
            output: "y".into(),
            sqnr_db: Some(sqnr),
            cosine: Some(cos),
            min_cosine: Some(cos),
            exact_match: None,
            max_abs_error: 0.0,
            mean_abs_error: 0.0,
            top1_agreement: None,
            elements: 1,
            ctc: None,
            mask: None,
        };
        let w = below_default_target(false, &[out(11.0, 0.96)], AccuracyBasis::HeldOut)
            .expect("a warning");
        assert!(w.contains("below the default target sqnr=30dB"), "{w}");
        assert!(w.contains("SQNR 11.0 dB, cosine 0.9600 (held-out)"), "{w}");
        assert!(
            below_default_target(false, &[out(35.0, 0.9999)], AccuracyBasis::HeldOut).is_none()
        );
        // Random inputs already get their own warning.
        assert!(below_default_target(true, &[out(11.0, 0.96)], AccuracyBasis::Random).is_none());
    }

    /// Follows the [`ModelRunner`] contract like ONNX Runtime does: an empty output list
    /// returns every graph output (here one tensor named `y`).
    struct AllOutputsEngine;
    struct AllOutputsRunner;
    impl ModelRunner for AllOutputsRunner {
        fn run(&mut self, _: &[NamedTensor], outputs: &[String]) -> Result<Vec<NamedTensor>> {
            let names: Vec<String> = if outputs.is_empty() {
                vec!["y".into()]
            } else {
                outputs.to_vec()
            };
            Ok(names
                .into_iter()
                .map(|name| NamedTensor {
                    name,
                    shape: vec![2],
                    data: crate::tensor::TensorData::F32(vec![-1.0, 3.0]),
                })
                .collect())
        }
    }
    impl Engine for AllOutputsEngine {
        fn load(&self, _: &[u8]) -> Result<Box<dyn ModelRunner>> {
            Ok(Box::new(AllOutputsRunner))
        }
        fn load_for_timing(&self, _: &[u8]) -> Result<Box<dyn ModelRunner>> {
            Ok(Box::new(AllOutputsRunner))
        }
        fn load_for_calibration(&self, _: &[u8]) -> Result<Box<dyn ModelRunner>> {
            Ok(Box::new(AllOutputsRunner))
        }
    }

    fn feed() -> Vec<runner::Feed> {
        vec![vec![NamedTensor {
            name: "x".into(),
            shape: vec![2],
            data: crate::tensor::TensorData::F32(vec![0.5, 2.0]),
        }]]
    }

    #[test]
    fn calibration_with_nothing_to_observe_does_not_panic() {
        // `--mode int8-weight` plans no activation tensors; this used to panic on the
        // graph outputs the runner returns for an empty request.
        let m = crate::quantize::prepare::tests::conv_bn_hardswish_model();
        let c = calibrate_model(
            &m,
            &[],
            &feed(),
            Method::MinMax,
            &AllOutputsEngine,
            &mut [],
            &HashSet::new(),
        )
        .unwrap();
        assert!(c.is_empty());
    }

    #[test]
    fn calibration_observes_graph_inputs_and_requested_tensors() {
        let m = crate::quantize::prepare::tests::conv_bn_hardswish_model();
        let want = ["x".to_string(), "c0".to_string()];
        let c = calibrate_model(
            &m,
            &want,
            &feed(),
            Method::MinMax,
            &AllOutputsEngine,
            &mut [],
            &["c0".to_string()].into(),
        )
        .unwrap();
        assert_eq!((c["x"].min, c["x"].max), (0.5, 2.0));
        assert_eq!((c["c0"].min, c["c0"].max), (-1.0, 3.0));
    }
}
