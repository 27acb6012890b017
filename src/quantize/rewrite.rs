//! The modes that rewrite the prepared model without calibration (`int8-dynamic`, `fp16`,
//! `int4-weight`): the rewrite step, and their evaluation against the fp32 model.

use std::path::Path;
use std::time::Instant;

use super::compare::{compare, Metrics};
use super::evaluate::{Outcome, Reference, Samples};
use super::report::{min_sqnr_db, Attempt};
use super::runner::Engine;
use super::{dynamic, fp16, graph, nbits, prepare, Mode, Options, Prepared, Quantized};
use crate::error::{Error, Result};
use crate::model::Model;

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

/// The rewrite `opts.mode` asks for, or `None` for the calibrated modes (`int8`,
/// `int8-weight`, `auto`'s int8 candidate). `int8-dynamic` may replace `prepared` with its
/// constant-folded form ([`dynamic_with_folding`]).
pub(super) fn rewrite(
    prepared: &mut Prepared,
    opts: &Options,
    engine: &dyn Engine,
) -> Result<Option<Rewrite>> {
    Ok(match opts.mode {
        Mode::Int8Dynamic => Some(dynamic_with_folding(prepared, opts, engine)?),
        Mode::Fp16 => Some(fp16::convert(
            &prepared.model,
            &prepared.origin,
            &opts.fp16,
        )?),
        Mode::Int4Weight => Some(nbits::convert(
            &prepared.model,
            &prepared.origin,
            &opts.int4,
        )?),
        Mode::Int8 | Mode::Auto | Mode::Int8Weight => None,
    })
}

/// The dynamic rewrite of the prepared model, or of its constant-folded form when the plain
/// graph has nothing to rewrite.
///
/// Weights an exporter computes from constants (Silero VAD's LSTM weights are
/// Slice/Concat/Unsqueeze of Constants, inside If branches) are initializers only after
/// constant folding: ONNX Runtime's basic offline optimization does that, in subgraphs too.
/// Tried only when the plain graph has nothing (and not twice with `--prepare ort`).
fn dynamic_with_folding(
    prepared: &mut Prepared,
    opts: &Options,
    engine: &dyn Engine,
) -> Result<Rewrite> {
    let plain_error = match rewrite_dynamic(&prepared.model, &prepared.origin, opts) {
        Ok(r) => return Ok(r),
        Err(e) if !opts.ort_offline_first => e,
        Err(e) => return Err(e),
    };
    let Some(bytes) = engine.optimize_offline(&prepared.model.to_bytes())? else {
        return Err(plain_error);
    };
    let mut folded = Model::from_bytes(&bytes, &prepared.origin)?;
    let steps = prepare::prepare(&mut folded)?;
    let Ok(r) = rewrite_dynamic(&folded, &prepared.origin, opts) else {
        return Err(plain_error);
    };
    prepared.model = folded;
    prepared.steps.push(
        "ONNX Runtime basic-level offline graph optimization (constant folding: \
         the weights are computed from constants)"
            .to_string(),
    );
    prepared.steps.extend(steps);
    Ok(r)
}

fn rewrite_dynamic(prepared: &Model, origin: &Path, opts: &Options) -> Result<Rewrite> {
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
    let mut labels = Vec::new();
    let sub_counts = dynamic_in_subgraphs(model, opts, &mut labels)?;
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

/// The subgraph half of [`dynamic_everywhere`]: rewrite every node's graph attribute and
/// set the rewritten ones back with one labelled patch (its label pushed on `labels`).
fn dynamic_in_subgraphs(
    model: &mut Model,
    opts: &Options,
    labels: &mut Vec<String>,
) -> Result<dynamic::Counts> {
    use crate::model::patch::{NodeRef, Patch};
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
    Ok(sub_counts)
}

/// Measure a rewritten model against the fp32 original `model`: accuracy on the evaluation
/// samples (the calibration samples when none are held out), size, interleaved latency.
pub(super) fn evaluate(
    model: &Model,
    prepared: Prepared,
    rewrite: Rewrite,
    samples: &Samples<'_>,
    opts: &Options,
    engine: &dyn Engine,
    start: Instant,
) -> Result<Quantized> {
    let wall_s = start.elapsed().as_secs_f64();
    let Rewrite {
        model: q,
        labels,
        variant,
        count,
        mut warnings,
    } = rewrite;
    let qbytes = q.to_bytes();
    let reference = Reference::run(model, samples, engine)?;
    let mut cand = engine
        .load(&qbytes)
        .map_err(|e| Error::Runtime(format!("the {variant} model does not load: {e}")))?;
    let metrics = Metrics::of(&prepared.model, &opts.targets, &opts.tasks)?;
    let outputs = compare(
        std::slice::from_mut(&mut cand),
        reference.feeds,
        &reference.outputs,
        &metrics,
    )?;
    let latency = if opts.measure_latency {
        let mut fp32 = engine.load_for_timing(&reference.bytes)?;
        let mut timed = engine.load_for_timing(&qbytes)?;
        Some(reference.latency_ratio(&mut *fp32, &mut *timed, opts)?)
    } else {
        None
    };
    warnings.extend(samples.warnings(opts.mode.name(), latency));
    let fp32_bytes = reference.bytes.len() as u64;
    let attempt = Attempt {
        variant: variant.clone(),
        quantized_nodes: count,
        min_sqnr_db: min_sqnr_db(&outputs),
        latency_ratio: latency.map(|l| l.ratio),
        size_ratio: qbytes.len() as f64 / fp32_bytes as f64,
        meets_target: opts.targets.iter().all(|t| t.met_by(&outputs)),
        stopped_after_samples: None,
    };
    let outcome = Outcome {
        variant,
        preparation: prepared.steps,
        patches: labels,
        quantized_nodes: Vec::new(),
        calibration_samples: 0,
        outputs,
        quantized_bytes: qbytes.len() as u64,
        latency,
        wall_s,
        search_wall_s: None,
        attempts: vec![attempt],
        layers: Vec::new(),
        warnings,
        session_config: Default::default(),
    };
    Ok(Quantized {
        model: q,
        report: outcome.report(samples, opts, fp32_bytes),
    })
}
