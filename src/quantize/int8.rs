//! The calibrated modes (`int8`, `int8-weight`, and `auto`'s int8 candidate) as steps:
//! plan the nodes, calibrate their activations, build and judge Q/DQ candidates, keep the
//! most sensitive nodes in float while a target is missed (the accuracy guard), time the
//! result, and for `auto` also try depthwise and squeeze-excitation convs in float.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use super::accuracy::OutputAccuracy;
use super::calibrate::{self, Collector, Method};
use super::compare::{compare, compare_until, debug_layers, EarlyStop, Metrics};
use super::evaluate::{Outcome, Reference, Samples};
use super::report::{min_sqnr_db, Attempt};
use super::runner::{
    map_on_threads, run_side_by_side, Engine, Feed, LatencyRatio, ModelRunner, NamedTensor,
    SessionConfig,
};
use super::{graph, qdq, session_config, Mode, Options, Prepared, Quantized};
use crate::error::{Error, Result};
use crate::model::builder::{value_info, value_info_unshaped};
use crate::model::graph::Dim;
use crate::model::{DataType, Model};

/// Quantize the prepared model with Q/DQ pairs, judged against the fp32 `model`.
pub(super) fn quantize(
    model: &Model,
    prepared: Prepared,
    samples: &Samples<'_>,
    opts: &Options,
    engine: &dyn Engine,
    start: Instant,
) -> Result<Quantized> {
    let full_plan = plan(&prepared, opts)?;
    let calibration = Calibration::run(&prepared.model, &full_plan, samples.calib, opts, engine)?;
    let wall_s = start.elapsed().as_secs_f64();
    let reference = Reference::run(model, samples, engine)?;
    let metrics = Metrics::of(&prepared.model, &opts.targets, &opts.tasks)?;
    let stop = EarlyStop::new(&opts.targets, &reference.outputs, &metrics)?;
    let cands = Candidates {
        prepared: &prepared.model,
        calibration: &calibration,
        reference: &reference,
        opts,
        engine,
        // Weight-only models run with DequantizeLinear folded at load (see `session_config`).
        qconfig: session_config(opts),
        metrics,
        stop,
        weights: qdq::WeightCache::default(),
    };
    let kind = kind(opts);
    let mut attempts = Vec::new();
    let mut warnings = qdq::nested_warnings(&full_plan, opts.selection.weights_only);
    // 1. Everything the kernels support.
    let every = format!("{kind}: every Conv/MatMul/Gemm");
    let mut best = cands.judge(full_plan.clone(), every, Judging::Whole)?;
    attempts.push(cands.attempt(&best));
    // 2. The accuracy guard.
    let mut search_wall_s = None;
    if opts.accuracy_guard && !opts.targets.is_empty() && !cands.meets(&best.outputs) {
        let search = Instant::now();
        best = accuracy_guard(&cands, &full_plan, best, kind, &mut attempts, &mut warnings)?;
        search_wall_s = Some(search.elapsed().as_secs_f64());
    }
    // 3. Latency, and `auto`'s depthwise-in-float variant.
    let best = timed(&cands, best, &mut attempts)?;
    warnings.extend(samples.warnings(kind, best.latency));
    let layers = if opts.debug_layers {
        let ranges = &calibration.ranges;
        debug_layers(
            &prepared.model,
            &best.model,
            &best.plan,
            ranges,
            reference.feeds,
            engine,
        )?
    } else {
        Vec::new()
    };
    let outcome = Outcome {
        variant: best.variant,
        preparation: prepared.steps,
        patches: vec![best.label],
        quantized_nodes: best.plan.nodes,
        calibration_samples: samples.calib.len(),
        outputs: best.outputs,
        quantized_bytes: best.bytes.len() as u64,
        latency: best.latency,
        wall_s,
        search_wall_s,
        attempts,
        layers,
        warnings,
        session_config: cands.qconfig.clone(),
    };
    let report = outcome.report(samples, opts, reference.bytes.len() as u64);
    Ok(Quantized {
        model: best.model,
        report,
    })
}

/// How the variants of this run are named.
fn kind(opts: &Options) -> &'static str {
    match (opts.selection.weights_only, opts.ort_offline_first) {
        (true, false) => "int8-weight",
        (true, true) => "int8-weight (ORT-optimized graph)",
        (false, false) => "int8",
        (false, true) => "int8 (ORT-optimized graph)",
    }
}

/// Which nodes to quantize and which activations need a range; an error when there is
/// nothing to quantize.
fn plan(prepared: &Prepared, opts: &Options) -> Result<qdq::Plan> {
    let plan = qdq::plan(&prepared.model, &opts.selection)?;
    if plan.nodes.is_empty() && plan.nested.is_empty() {
        return Err(Error::file(
            &prepared.origin,
            "nothing to quantize: no Conv, MatMul or Gemm with constant weights (after exclusions), in the graph or its If/Loop/Scan bodies",
        ));
    }
    Ok(plan)
}

/// What calibration observes: the tensors to expose, and what is gathered beyond ranges.
struct Observation {
    /// Tensors to observe (sorted, unique).
    tensors: Vec<String>,
    /// Tensors whose per-channel means are gathered (inputs of weight-only convs).
    mean_inputs: HashSet<String>,
    /// Input second moments, per observed tensor, for error-compensating rounding.
    moment_slots: Vec<(String, calibrate::Moments)>,
    /// The node each moment slot belongs to (same order).
    moment_nodes: Vec<String>,
}

impl Observation {
    fn of(prepared: &Model, plan: &qdq::Plan, opts: &Options) -> Self {
        // Weight-only convs get bias correction, which needs the per-channel means of their
        // inputs (not otherwise observed: weight-only plans no activation ranges).
        let mut tensors: Vec<String> = plan.activations.clone();
        let mean_inputs: HashSet<String> = plan
            .nodes
            .iter()
            .filter(|n| n.op_type == "Conv" && n.weight_only)
            .map(|n| n.input.clone())
            .collect();
        tensors.extend(mean_inputs.iter().cloned());
        // Input second moments for error-compensating weight rounding (per-channel only).
        let mut moment_slots = Vec::new();
        let mut moment_nodes = Vec::new();
        if opts.selection.rounding.compensates(&opts.selection) {
            for qn in &plan.nodes {
                let Some(spec) = qdq::patch_spec(prepared, qn) else {
                    continue;
                };
                if spec.blocks_and_dim().1 <= qdq::GPTQ_MAX_DIM {
                    tensors.push(qn.input.clone());
                    moment_slots.push((qn.input.clone(), calibrate::Moments::new(spec)));
                    moment_nodes.push(qn.node.clone());
                }
            }
        }
        tensors.sort();
        tensors.dedup();
        Observation {
            tensors,
            mean_inputs,
            moment_slots,
            moment_nodes,
        }
    }
}

/// What the Q/DQ emitter needs from calibration.
struct Calibration {
    /// Calibrated range per activation.
    ranges: BTreeMap<String, (f32, f32)>,
    /// Per-channel means (and the spatial dims they were averaged over) per conv input.
    means: BTreeMap<String, (Vec<f32>, Vec<usize>)>,
    /// Input second moments per node, for error-compensating rounding.
    moments: BTreeMap<String, calibrate::Moments>,
}

impl Calibration {
    /// Observe what `plan` needs while running the prepared model on the calibration samples.
    fn run(
        prepared: &Model,
        plan: &qdq::Plan,
        calib: &[Feed],
        opts: &Options,
        engine: &dyn Engine,
    ) -> Result<Self> {
        let mut obs = Observation::of(prepared, plan, opts);
        let collectors = calibrate_model(
            prepared,
            &obs.tensors,
            calib,
            opts.method,
            engine,
            &mut obs.moment_slots,
            &obs.mean_inputs,
        )?;
        let moments = obs
            .moment_nodes
            .into_iter()
            .zip(obs.moment_slots.into_iter().map(|(_, m)| m))
            .collect();
        let ranges = collectors
            .iter()
            .map(|(k, c)| (k.clone(), c.range(opts.method)))
            .collect();
        let means = collectors
            .iter()
            .filter_map(|(k, c)| Some((k.clone(), (c.channel_means()?, c.spatial.clone()))))
            .collect();
        Ok(Calibration {
            ranges,
            means,
            moments,
        })
    }
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
    // Graph inputs are observed from the feed itself: ONNX Runtime does not echo an input
    // back as an output.
    let graph_inputs: HashSet<&str> = prepared
        .graph()
        .input
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let run_tensors: Vec<String> = tensors
        .iter()
        .filter(|t| !graph_inputs.contains(t.as_str()))
        .cloned()
        .collect();
    // An empty request means "every graph output" to a runner; with nothing to observe
    // inside the graph (`int8-weight` plans no activations) nothing runs.
    let mut runners = if run_tensors.is_empty() {
        Vec::new()
    } else {
        let exposed = exposing(prepared, &run_tensors).to_bytes();
        engine.load_calibration_workers(&exposed, calib.len())?
    };
    let mut collectors: BTreeMap<String, Collector> = tensors
        .iter()
        .map(|t| (t.clone(), Collector::default()))
        .collect();
    let histogram = method.needs_histogram();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut done = 0;
    while done < calib.len() {
        // Samples run side by side, one per runner, and are observed in sample order, so
        // the statistics do not depend on how many runners there are.
        let group = &calib[done..(done + runners.len().max(1)).min(calib.len())];
        done += group.len();
        let asked = vec![run_tensors.as_slice(); group.len()];
        let results = if runners.is_empty() {
            vec![Vec::new(); group.len()]
        } else {
            run_side_by_side(&mut runners, group, &asked)?
        };
        for (feed, mut outs) in group.iter().zip(results) {
            if outs.iter().map(|o| o.data.len()).sum::<usize>() * 4 > MAX_SIDE_BY_SIDE_BYTES {
                // Every runner holds a sample's exposed tensors at once: one is enough.
                runners.truncate(1);
            }
            outs.extend(
                feed.iter()
                    .filter(|t| collectors.contains_key(&t.name))
                    .cloned(),
            );
            observe_sample(
                &mut collectors,
                moments,
                &outs,
                histogram,
                channel_means_of,
                threads,
            );
        }
    }
    Ok(collectors)
}

/// Exposed tensors of one sample above which calibration runs one sample at a time.
const MAX_SIDE_BY_SIDE_BYTES: usize = 512 << 20;

/// Update every collector and moment slot with one sample's tensors `outs`, on `threads`
/// threads. A runner may return more than was asked (e.g. graph outputs): that is ignored.
fn observe_sample(
    collectors: &mut BTreeMap<String, Collector>,
    moments: &mut [(String, calibrate::Moments)],
    outs: &[NamedTensor],
    histogram: bool,
    channel_means_of: &HashSet<String>,
    threads: usize,
) {
    let by_name: HashMap<&str, &NamedTensor> = outs.iter().map(|o| (o.name.as_str(), o)).collect();
    let mut work: Vec<Observe<'_>> = Vec::new();
    for (name, c) in collectors.iter_mut() {
        if let Some(&o) = by_name.get(name.as_str()) {
            let mean = channel_means_of.contains(name);
            work.push(Observe::Range(c, o, histogram, mean));
        }
    }
    for (name, m) in moments.iter_mut() {
        if let Some(&o) = by_name.get(name.as_str()) {
            work.push(Observe::Moments(m, o));
        }
    }
    Observe::all(work, threads);
}

/// One collector's update from one sample's tensor. Calibration spends about as long in
/// these as in ONNX Runtime, which is idle meanwhile, so they run on every core.
enum Observe<'a> {
    /// Range, histogram (when asked) and channel means (when asked).
    Range(&'a mut Collector, &'a NamedTensor, bool, bool),
    /// Input second moments.
    Moments(&'a mut calibrate::Moments, &'a NamedTensor),
}

impl Observe<'_> {
    fn run(self) {
        match self {
            Observe::Range(c, o, histogram, mean) => {
                let data = o.floats();
                c.observe(&data, histogram);
                if mean {
                    c.observe_channel_mean(&o.shape, &data);
                }
            }
            Observe::Moments(m, o) => m.observe(&o.shape, &o.floats()),
        }
    }

    /// Run every update on `threads` threads, each taking the next one (largest first).
    fn all(mut work: Vec<Self>, threads: usize) {
        // Work per update, roughly: moments cost several times a range per value.
        let size = |w: &Observe<'_>| match w {
            Observe::Range(_, o, ..) => o.data.len(),
            Observe::Moments(_, o) => 4 * o.data.len(),
        };
        work.sort_by_key(|w| std::cmp::Reverse(size(w)));
        map_on_threads(work, threads, Observe::run);
    }
}

/// `prepared` with `tensors` added as graph outputs (those that are not outputs already).
fn exposing(prepared: &Model, tensors: &[String]) -> Model {
    let mut m = prepared.clone();
    let existing: HashSet<String> = m.graph().output.iter().map(|o| o.name.clone()).collect();
    for t in tensors {
        if !existing.contains(t) {
            m.graph_mut()
                .output
                .push(value_info_unshaped(t, DataType::Float));
        }
    }
    m
}

/// One quantized model built from a plan, with its accuracy on the evaluation samples.
struct Candidate {
    model: Model,
    bytes: Vec<u8>,
    /// The Q/DQ patch's label.
    label: String,
    outputs: Vec<OutputAccuracy>,
    plan: qdq::Plan,
    variant: String,
    /// Latency against fp32, once measured.
    latency: Option<LatencyRatio>,
    /// The samples judged when judging stopped because a target could no longer be met
    /// (then `outputs` cover only those, and the candidate misses).
    stopped_after: Option<usize>,
}

/// How much of the evaluation set a candidate is judged on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Judging {
    /// Every sample: the figures are reported or compared with another candidate's.
    Whole,
    /// Until a target can no longer be met ([`EarlyStop`]): only the verdict is used.
    UntilMissed,
}

/// Builds and judges candidates from one calibration against one reference.
struct Candidates<'a> {
    prepared: &'a Model,
    calibration: &'a Calibration,
    reference: &'a Reference<'a>,
    opts: &'a Options,
    engine: &'a dyn Engine,
    /// Session entries every candidate runs with.
    qconfig: SessionConfig,
    metrics: Metrics,
    /// When a candidate judged [`Judging::UntilMissed`] has missed.
    stop: EarlyStop<'a>,
    /// Rounded weights, shared by every candidate's build.
    weights: qdq::WeightCache,
}

impl Candidates<'_> {
    /// The prepared model with `plan`'s Q/DQ patch applied: the model, its encoding and the
    /// patch's label.
    fn build(&self, plan: &qdq::Plan) -> Result<(Model, Vec<u8>, String)> {
        let (q, label) = self.patched(plan)?;
        let bytes = q.to_bytes();
        Ok((q, bytes, label))
    }

    /// [`Candidates::build`] without the encoding: the model and the patch's label.
    fn patched(&self, plan: &qdq::Plan) -> Result<(Model, String)> {
        let mut q = self.prepared.clone();
        let c = self.calibration;
        let patch = qdq::emit_cached(
            &q,
            plan,
            &c.ranges,
            &c.means,
            &c.moments,
            self.opts.selection.per_channel,
            &self.weights,
        )?;
        let label = patch.label.clone();
        if !patch.ops.is_empty() {
            q.apply(patch)?;
        }
        graph::prune_initializers(&mut q)?;
        Ok((q, label))
    }

    /// Build `plan` and judge it on the evaluation samples, all of them or
    /// [`Judging::UntilMissed`].
    fn judge(&self, plan: qdq::Plan, variant: String, judging: Judging) -> Result<Candidate> {
        let (model, bytes, label) = self.build(&plan)?;
        let r = self.reference;
        let mut workers = self
            .engine
            .load_workers(&bytes, &self.qconfig, r.feeds.len())
            .map_err(|e| Error::Runtime(format!("the quantized model does not load: {e}")))?;
        let stop = (judging == Judging::UntilMissed).then_some(&self.stop);
        let judged = compare_until(&mut workers, r.feeds, &r.outputs, &self.metrics, stop)?;
        Ok(Candidate {
            model,
            bytes,
            label,
            outputs: judged.outputs,
            plan,
            variant,
            latency: None,
            stopped_after: judged.missed_early.then_some(judged.samples),
        })
    }

    /// Whether `outputs` meet every accuracy target.
    fn meets(&self, outputs: &[OutputAccuracy]) -> bool {
        self.opts.targets.iter().all(|t| t.met_by(outputs))
    }

    /// Whether candidate `c` meets every accuracy target (one stopped early misses).
    fn holds(&self, c: &Candidate) -> bool {
        c.stopped_after.is_none() && self.meets(&c.outputs)
    }

    /// The report's row for `c`. A candidate stopped early has no figures to show (they
    /// cover only the first samples); its row says how far it was judged.
    fn attempt(&self, c: &Candidate) -> Attempt {
        let variant = match c.stopped_after {
            Some(n) => format!(
                "{} [missed: stopped after {n} of {} samples]",
                c.variant,
                self.reference.feeds.len()
            ),
            None => c.variant.clone(),
        };
        Attempt {
            variant,
            quantized_nodes: c.plan.nodes.len() + c.plan.nested.nodes,
            min_sqnr_db: min_sqnr_db(&c.outputs).filter(|_| c.stopped_after.is_none()),
            latency_ratio: c.latency.map(|l| l.ratio),
            size_ratio: c.bytes.len() as f64 / self.reference.bytes.len() as f64,
            meets_target: self.holds(c),
            stopped_after_samples: c.stopped_after,
        }
    }
}

/// The worst SQNR over outputs, +inf when none has one (nothing to lose).
fn worst_sqnr(outputs: &[OutputAccuracy]) -> f64 {
    min_sqnr_db(outputs).unwrap_or(f64::INFINITY)
}

/// One planned node as the accuracy guard sees it.
#[derive(Clone, Debug, PartialEq)]
struct Sensitivity {
    node: String,
    /// The worst output SQNR with only this node quantized.
    sqnr_db: f64,
    /// Its share of the planned nodes' multiply-accumulates; `None` when its shapes could
    /// not be inferred.
    macs_share: Option<f64>,
}

/// Float nodes with at least this share of the model's MACs are offered back to int8 after
/// the guard meets its targets; below it, int8 buys too little time to spend an evaluation.
const GIVE_BACK_MIN_SHARE: f64 = 0.01;

/// The float nodes worth returning to int8 once the targets hold, largest MACs share first:
/// those of `float` with a known share of at least [`GIVE_BACK_MIN_SHARE`].
fn give_back_order<'s>(sens: &'s [Sensitivity], float: &[String]) -> Vec<&'s Sensitivity> {
    let mut v: Vec<&Sensitivity> = sens
        .iter()
        .filter(|s| float.contains(&s.node))
        .filter(|s| s.macs_share.is_some_and(|m| m >= GIVE_BACK_MIN_SHARE))
        .collect();
    let share = |s: &Sensitivity| s.macs_share.unwrap_or(0.0);
    v.sort_by(|a, b| share(b).total_cmp(&share(a)));
    v
}

/// Each planned node's sensitivity (the worst output SQNR with it alone quantized, on the
/// first few evaluation samples) and MACs share; most sensitive first.
///
/// With one node quantized, everything upstream of it computes as in fp32, so only the
/// part of the model it changes is run ([`graph::Downstream`]), fed with the fp32 values
/// of the tensors it reads ([`Upstream`]). The figures are those of the whole model up to
/// the fusions ONNX Runtime makes across the cut (float rounding); the ranking is the same.
fn sensitivity(c: &Candidates<'_>, full: &qdq::Plan) -> Result<Vec<Sensitivity>> {
    let feeds = c.reference.feeds;
    let probe = &feeds[..probe_count(feeds)];
    let probe_refs = &c.reference.outputs[..probe.len()];
    let shapes: BTreeMap<String, Vec<i64>> = feeds
        .first()
        .into_iter()
        .flatten()
        .map(|t| (t.name.clone(), t.shape.iter().map(|&d| d as i64).collect()))
        .collect();
    let macs = qdq::node_macs(c.prepared, full, &shapes);
    let total: u64 = macs.iter().flatten().sum();
    let single = |qn: &qdq::QuantNode| qdq::restrict(full, |n| n.node == qn.node);
    let upstream = Upstream::gather(c, full.nodes.iter().map(single), probe);
    // Nodes are judged side by side, one single-thread session each: a few samples do not
    // keep two threads busy, and loading a session is itself single-threaded.
    let threads = c.engine.side_by_side(c.reference.bytes.len());
    let alone = map_on_threads(full.nodes.iter().collect(), threads, |qn| {
        let (model, _) = c.patched(&single(qn))?;
        let judge = |bytes: &[u8], feeds: &[Feed], refs: &[Vec<NamedTensor>]| -> Result<f64> {
            let mut runner = c
                .engine
                .load_single_thread(bytes, &c.qconfig)
                .map_err(|e| Error::Runtime(format!("the quantized model does not load: {e}")))?;
            let outs = compare(std::slice::from_mut(&mut runner), feeds, refs, &c.metrics)?;
            Ok(worst_sqnr(&outs))
        };
        // The cut part when it can be built and run; otherwise (a value ONNX Runtime will
        // not take as an input) the whole model, which gives the same figure.
        if let Some(Ok(p)) = upstream
            .as_ref()
            .map(|u| u.part(c.prepared, &model, probe_refs))
        {
            if p.refs.iter().all(Vec::is_empty) {
                return Ok(f64::INFINITY);
            }
            if let Ok(sqnr_db) = judge(&p.bytes, &p.feeds, &p.refs) {
                return Ok(sqnr_db);
            }
        }
        judge(&model.to_bytes(), probe, probe_refs)
    });
    let mut sens = Vec::new();
    for ((qn, m), sqnr_db) in full.nodes.iter().zip(macs).zip(alone) {
        sens.push(Sensitivity {
            node: qn.node.clone(),
            sqnr_db: sqnr_db?,
            macs_share: m.filter(|_| total > 0).map(|m| m as f64 / total as f64),
        });
    }
    sens.sort_by(|a, b| a.sqnr_db.total_cmp(&b.sqnr_db));
    Ok(sens)
}

/// Most samples the sensitivity ranking judges each node on.
const PROBE_SAMPLES_MAX: usize = 4;

/// Input values after which the ranking takes no more samples. A node's cost is ranked, not
/// reported, and one large sample already spreads its error over many values: on the PP-OCR
/// detector (1.2M input values a page) 2 pages rank the nodes so that the guard keeps the
/// same 7 convs float as with 4, in 5.4 s instead of 8.5 s; 1 page changed the ranking and
/// kept 8 (BENCHMARKS.md). Text lines, tokens and audio chunks stay at 4 samples.
const PROBE_INPUT_VALUES: usize = 2_000_000;

/// How many of the first evaluation samples the ranking judges on: [`PROBE_SAMPLES_MAX`], or
/// fewer once they hold [`PROBE_INPUT_VALUES`]; at least one when there is one.
fn probe_count(feeds: &[Feed]) -> usize {
    let mut values = 0;
    for (i, feed) in feeds.iter().take(PROBE_SAMPLES_MAX).enumerate() {
        if values >= PROBE_INPUT_VALUES {
            return i;
        }
        values += feed.iter().map(|t| t.data.len()).sum::<usize>();
    }
    feeds.len().min(PROBE_SAMPLES_MAX)
}

/// The fp32 values, on the probe samples, of every tensor some single-node model reads from
/// upstream of what it changes ([`graph::Downstream::inputs`]): one run of the prepared
/// model exposing them all. Graph inputs come from the samples themselves.
struct Upstream {
    /// Per probe sample, the values by name.
    values: Vec<HashMap<String, NamedTensor>>,
    /// How the parts declare the values as graph inputs: their element type, and each
    /// dim fixed where every probe sample has the same size.
    declared: HashMap<String, crate::model::ValueInfoProto>,
}

/// Most bytes of values (and the probe samples' own inputs) [`Upstream`] holds; past it, the
/// ranking runs whole models, no less exact (the gathering run already made is lost). The
/// PP-OCR detector's 640x640 pages take 147 MB each, 295 MB for its 2 probe samples
/// ([`probe_count`]).
const MAX_UPSTREAM_BYTES: usize = 1 << 30;

/// A single-node model's changed part with its feeds and the reference outputs it writes.
struct Part {
    bytes: Vec<u8>,
    feeds: Vec<Feed>,
    refs: Vec<Vec<NamedTensor>>,
}

impl Upstream {
    /// Gather the values the `plans`' parts read; `None` (run whole models instead) when
    /// they would take more than [`MAX_UPSTREAM_BYTES`] or cannot be gathered.
    fn gather(
        c: &Candidates<'_>,
        plans: impl Iterator<Item = qdq::Plan>,
        probe: &[Feed],
    ) -> Option<Self> {
        // The values are a shortcut, not a requirement: when they cannot be gathered (an
        // exposed value that is a sequence, a type ONNX Runtime cannot infer), the ranking
        // runs whole models, which give the same figures.
        Self::try_gather(c, plans, probe).unwrap_or(None)
    }

    fn try_gather(
        c: &Candidates<'_>,
        plans: impl Iterator<Item = qdq::Plan>,
        probe: &[Feed],
    ) -> Result<Option<Self>> {
        let graph_inputs: HashSet<&str> = c
            .prepared
            .graph()
            .input
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        let mut wanted: Vec<String> = Vec::new();
        for plan in plans {
            let (model, _) = c.patched(&plan)?;
            for name in graph::Downstream::of(c.prepared, &model).inputs {
                if !graph_inputs.contains(name.as_str()) && !wanted.contains(&name) {
                    wanted.push(name);
                }
            }
        }
        let mut exposing = c.prepared.clone();
        let outputs = &mut exposing.graph_mut().output;
        for name in &wanted {
            if !outputs.iter().any(|o| &o.name == name) {
                // Untyped: ONNX Runtime infers the type (some are shapes, not floats).
                outputs.push(crate::model::ValueInfoProto {
                    name: name.clone(),
                    ..Default::default()
                });
            }
        }
        let mut runner = c.engine.load_for_calibration(&exposing.to_bytes())?;
        let (mut values, mut bytes) = (Vec::new(), 0usize);
        for feed in probe {
            let outs = if wanted.is_empty() {
                Vec::new()
            } else {
                runner.run(feed, &wanted)?
            };
            bytes += outs
                .iter()
                .chain(feed)
                .map(|t| t.data.len() * t.dtype().size_bytes())
                .sum::<usize>();
            if bytes > MAX_UPSTREAM_BYTES {
                return Ok(None);
            }
            let sample: HashMap<String, NamedTensor> = outs
                .into_iter()
                .chain(feed.iter().cloned())
                .map(|t| (t.name.clone(), t))
                .collect();
            values.push(sample);
        }
        let mut declared = HashMap::new();
        for (name, t) in values.first().into_iter().flatten() {
            let dims: Vec<Dim> = (0..t.shape.len())
                .map(|i| {
                    let size = t.shape[i];
                    let same = values
                        .iter()
                        .all(|v| v.get(name).is_some_and(|u| u.shape.get(i) == Some(&size)));
                    if same {
                        Dim::Fixed(size as i64)
                    } else {
                        Dim::Unknown
                    }
                })
                .collect();
            declared.insert(name.clone(), value_info(name, t.dtype().to_onnx(), &dims));
        }
        Ok(Some(Upstream { values, declared }))
    }

    /// The part of `model` (the prepared model with one node quantized) that computes
    /// differently, fed from these values; its `refs` are `probe_refs` restricted to the
    /// outputs the part writes (empty lists when it writes none).
    fn part(
        &self,
        prepared: &Model,
        model: &Model,
        probe_refs: &[Vec<NamedTensor>],
    ) -> Result<Part> {
        let d = graph::Downstream::of(prepared, model);
        let bytes = d.model(model, &self.declared)?.to_bytes();
        let feeds = self
            .values
            .iter()
            .map(|v| {
                d.inputs
                    .iter()
                    .map(|n| {
                        v.get(n).cloned().ok_or_else(|| {
                            Error::Runtime(format!("no fp32 value of '{n}' was gathered"))
                        })
                    })
                    .collect::<Result<Feed>>()
            })
            .collect::<Result<Vec<Feed>>>()?;
        let refs = probe_refs
            .iter()
            .map(|r| {
                r.iter()
                    .filter(|t| d.outputs.contains(&t.name))
                    .cloned()
                    .collect()
            })
            .collect();
        Ok(Part { bytes, feeds, refs })
    }
}

/// The plan with the nodes of `float` kept in float.
fn without(full: &qdq::Plan, float: &[String]) -> qdq::Plan {
    let set: HashSet<&str> = float.iter().map(String::as_str).collect();
    qdq::restrict(full, |n| !set.contains(n.node.as_str()))
}

/// The accuracy guard: a target is set and `first` misses it, so rank nodes by the error
/// each adds when quantized alone and find the fewest most-sensitive nodes to keep in float
/// (up to half the nodes) that meet the target; then [`give_back`] what it can.
///
/// The fewest is searched by galloping, then bisecting: sets of the 1, 2, 4, ... most
/// sensitive (and the largest allowed) until one meets the target, then halving the gap
/// below it. That judges about 2 log2(n) sets where trying one more node at a time judged
/// up to n: on the PP-OCR recognizer, 9 candidates instead of 20 (each a model load and the
/// whole evaluation set). Errors do not add up layer by layer, so meeting the target is not
/// strictly monotone in the count, and the search can stop at a different count than the
/// one-at-a-time scan would have; whatever it returns was judged and met the target. When
/// no set meets it, the most accurate set judged in full is kept, with a warning.
///
/// A set is judged only until its targets can no longer be met ([`EarlyStop`], an exact
/// bound): only its verdict is used. The exception is the largest set, judged in full: it
/// is the fallback when nothing meets, and the most accurate is chosen among sets with
/// figures over the whole evaluation set.
fn accuracy_guard(
    c: &Candidates<'_>,
    full: &qdq::Plan,
    first: Candidate,
    kind: &str,
    attempts: &mut Vec<Attempt>,
    warnings: &mut Vec<String>,
) -> Result<Candidate> {
    let sens = sensitivity(c, full)?;
    let max_float = (full.nodes.len() / 2).max(1).min(sens.len());
    let top = |k: usize| -> Vec<String> { sens[..k].iter().map(|s| s.node.clone()).collect() };
    // Float sets judged to miss: the give-back pass can arrive at one again. The empty set
    // is `first`, which missed (or there would be no search).
    let mut missed: HashSet<BTreeSet<String>> = HashSet::from([BTreeSet::new()]);
    let mut judge = |k: usize| -> Result<Candidate> {
        let last = &sens[k - 1];
        let v = format!(
            "{kind}, {k} most sensitive kept float (last: {}, {:.1} dB alone)",
            last.node, last.sqnr_db
        );
        let judging = if k == max_float {
            Judging::Whole
        } else {
            Judging::UntilMissed
        };
        let cand = c.judge(without(full, &top(k)), v, judging)?;
        attempts.push(c.attempt(&cand));
        if !c.holds(&cand) {
            missed.insert(top(k).into_iter().collect());
        }
        Ok(cand)
    };
    // Gallop: `below` fails (0: everything int8, `first`); stop at the first count that meets.
    let mut most_accurate = first;
    let mut below = 0;
    let mut met: Option<(usize, Candidate)> = None;
    let mut k = 1;
    while k <= max_float && max_float > 0 {
        let cand = judge(k)?;
        if c.holds(&cand) {
            met = Some((k, cand));
            break;
        }
        if cand.stopped_after.is_none()
            && worst_sqnr(&cand.outputs) > worst_sqnr(&most_accurate.outputs)
        {
            most_accurate = cand;
        }
        below = k;
        if k == max_float {
            break;
        }
        k = (2 * k).min(max_float);
    }
    let Some((mut above, mut best)) = met else {
        let kept = &most_accurate.variant;
        warnings.push(if max_float == 0 {
            format!("the accuracy target was not met, and the guard has no node to keep in float: every quantized node is inside a subgraph (If/Loop/Scan branches), which it does not search; kept {kept}")
        } else {
            format!("the accuracy target was not met with up to {max_float} of the most sensitive nodes kept in float; kept the most accurate set tried and judged in full ({kept})")
        });
        return Ok(most_accurate);
    };
    // Bisect between the last count that missed and the first that met.
    while above - below > 1 {
        let mid = below + (above - below) / 2;
        let cand = judge(mid)?;
        if c.holds(&cand) {
            (above, best) = (mid, cand);
        } else {
            below = mid;
        }
    }
    give_back(c, full, best, top(above), &sens, &missed, kind, attempts)
}

/// The guard's second pass. Sensitivity alone ignores cost: on the PP-OCR recognizer it
/// kept in float a conv with 17% of the MACs that was barely more sensitive than the
/// float set's cheapest members, leaving int8 at 0.67x fp32 latency where the same set
/// without it read 0.65x at no worse CER on unseen lines (BENCHMARKS.md). So, once `best`
/// (with `float` kept float) meets the targets, offer each expensive float node
/// ([`give_back_order`]) back to int8 and keep the change when the targets still hold.
/// Every step is measured on the evaluation inputs, not predicted; like the forward pass,
/// it can only be as right as those inputs are (a set that just meets a CER target on 128
/// lines may miss it on others: search with a margin). A set the forward search judged
/// and found missing (`missed`) is not judged again.
#[allow(clippy::too_many_arguments)]
fn give_back(
    c: &Candidates<'_>,
    full: &qdq::Plan,
    mut best: Candidate,
    mut float: Vec<String>,
    sens: &[Sensitivity],
    missed: &HashSet<BTreeSet<String>>,
    kind: &str,
    attempts: &mut Vec<Attempt>,
) -> Result<Candidate> {
    for s in give_back_order(sens, &float) {
        let trial: Vec<String> = float.iter().filter(|n| **n != s.node).cloned().collect();
        // Judged already, by the forward search, and missed: the models would be identical.
        if missed.contains(&trial.iter().cloned().collect::<BTreeSet<_>>()) {
            continue;
        }
        let v = format!(
            "{kind}, {} kept float ({} back to int8: {:.1}% of MACs, {:.1} dB alone)",
            trial.len(),
            s.node,
            100.0 * s.macs_share.unwrap_or(0.0),
            s.sqnr_db
        );
        let cand = c.judge(without(full, &trial), v, Judging::UntilMissed)?;
        attempts.push(c.attempt(&cand));
        if c.holds(&cand) {
            best = cand;
            float = trial;
        }
    }
    Ok(best)
}

/// Time `best` against fp32 (when asked to), writing its ratio on the last attempt; for
/// `auto`, then try [`float_depthwise`].
fn timed(
    c: &Candidates<'_>,
    mut best: Candidate,
    attempts: &mut Vec<Attempt>,
) -> Result<Candidate> {
    if !c.opts.measure_latency {
        return Ok(best);
    }
    let mut fp32 = c.engine.load_for_timing(&c.reference.bytes)?;
    {
        let mut cand = c.engine.load_configured(&best.bytes, &c.qconfig, true)?;
        best.latency = Some(c.reference.latency_ratio(&mut *fp32, &mut *cand, c.opts)?);
    }
    if let Some(a) = attempts.last_mut() {
        a.latency_ratio = best.latency.map(|l| l.ratio);
    }
    if c.opts.mode == Mode::Auto {
        return float_depthwise(c, best, &mut *fp32, attempts);
    }
    Ok(best)
}

/// `auto` also tries keeping depthwise and squeeze-excitation convs in float: on x86, ONNX
/// Runtime's fp32 NCHWc convs fuse the activation, and small int8 convs do not win back the
/// cost of their Q/DQ pairs (measured on the PP-OCR classifier). Kept when at least as
/// accurate and 3% faster.
fn float_depthwise(
    c: &Candidates<'_>,
    best: Candidate,
    fp32: &mut dyn ModelRunner,
    attempts: &mut Vec<Attempt>,
) -> Result<Candidate> {
    let no_dw = {
        let mut sel = c.opts.selection.clone();
        sel.exclude_ops.insert("DepthwiseConv".into());
        sel.float_pooled = true;
        let dw = qdq::plan(c.prepared, &sel)?;
        let current: HashSet<&str> = best.plan.nodes.iter().map(|n| n.node.as_str()).collect();
        qdq::restrict(&dw, |n| current.contains(n.node.as_str()))
    };
    if no_dw.nodes.is_empty() || no_dw.nodes.len() == best.plan.nodes.len() {
        return Ok(best);
    }
    let v = format!(
        "{}; depthwise and squeeze-excitation convs kept float",
        best.variant
    );
    let mut cand = c.judge(no_dw, v, Judging::Whole)?;
    let lat = {
        let mut timed = c.engine.load_configured(&cand.bytes, &c.qconfig, true)?;
        c.reference.latency_ratio(fp32, &mut *timed, c.opts)?
    };
    cand.latency = Some(lat);
    attempts.push(c.attempt(&cand));
    let current = best.latency.map_or(f64::INFINITY, |l| l.ratio);
    if c.holds(&cand) >= c.holds(&best) && lat.ratio < current * 0.97 {
        Ok(cand)
    } else {
        Ok(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn feed() -> Vec<Feed> {
        vec![vec![NamedTensor {
            name: "x".into(),
            shape: vec![2],
            data: crate::tensor::TensorData::F32(vec![0.5, 2.0]),
        }]]
    }

    #[test]
    fn the_ranking_probes_four_small_samples_and_fewer_large_ones() {
        let samples = |n: usize, values: usize| -> Vec<Feed> {
            (0..n)
                .map(|_| vec![NamedTensor::f32("x", vec![1, values], vec![0.0; values])])
                .collect()
        };
        // Text lines (3x48x320): four.
        assert_eq!(probe_count(&samples(128, 46_080)), 4);
        assert_eq!(probe_count(&samples(3, 46_080)), 3);
        assert_eq!(probe_count(&[]), 0);
        // Detector pages (3x640x640): two reach the budget.
        assert_eq!(probe_count(&samples(16, 1_228_800)), 2);
        // A sample at the budget on its own: one.
        assert_eq!(probe_count(&samples(16, PROBE_INPUT_VALUES)), 1);
        // Several inputs count together (ids, mask, types of 512 tokens): four.
        let tokens: Vec<Feed> = (0..8)
            .map(|_| {
                ["ids", "mask", "types"]
                    .map(|n| NamedTensor::f32(n, vec![1, 512], vec![0.0; 512]))
                    .to_vec()
            })
            .collect();
        assert_eq!(probe_count(&tokens), 4);
    }

    /// Each requested tensor is the feed's `x` scaled by a factor of its own; runs side by
    /// side on `workers` runners.
    struct ScalingEngine {
        workers: usize,
    }
    struct ScalingRunner;
    impl ModelRunner for ScalingRunner {
        fn run(&mut self, inputs: &[NamedTensor], outputs: &[String]) -> Result<Vec<NamedTensor>> {
            let x = inputs[0].floats();
            Ok(outputs
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let k = 1.0 + i as f32 * 0.75;
                    NamedTensor::f32(name, vec![x.len()], x.iter().map(|v| v * k).collect())
                })
                .collect())
        }
    }
    impl Engine for ScalingEngine {
        fn load(&self, _: &[u8]) -> Result<Box<dyn ModelRunner>> {
            Ok(Box::new(ScalingRunner))
        }
        fn load_for_timing(&self, _: &[u8]) -> Result<Box<dyn ModelRunner>> {
            Ok(Box::new(ScalingRunner))
        }
        fn load_for_calibration(&self, _: &[u8]) -> Result<Box<dyn ModelRunner>> {
            Ok(Box::new(ScalingRunner))
        }
        fn load_calibration_workers(
            &self,
            _: &[u8],
            _: usize,
        ) -> Result<Vec<Box<dyn ModelRunner>>> {
            Ok((0..self.workers)
                .map(|_| Box::new(ScalingRunner) as _)
                .collect())
        }
    }

    #[test]
    fn calibration_side_by_side_observes_what_one_runner_does() {
        // Seven samples whose ranges grow and shrink, so the histograms re-bin on the way:
        // the result must not depend on how samples were grouped across runners.
        let m = crate::quantize::prepare::tests::conv_bn_hardswish_model();
        let calib: Vec<Feed> = (0..7)
            .map(|i| {
                let s = [1.0, 40.0, 0.01, 3.0, 900.0, 0.5, 7.0][i];
                let x: Vec<f32> = (0..50).map(|j| s * ((j * 31 % 17) as f32 - 6.0)).collect();
                vec![NamedTensor::f32("x", vec![50], x)]
            })
            .collect();
        let want = ["x".to_string(), "c0".to_string(), "y".to_string()];
        let run = |workers| {
            let c = calibrate_model(
                &m,
                &want,
                &calib,
                Method::Mse,
                &ScalingEngine { workers },
                &mut [],
                &HashSet::new(),
            )
            .unwrap();
            c.iter()
                .map(|(k, c)| (k.clone(), c.range(Method::Mse), c.range(Method::Entropy)))
                .collect::<Vec<_>>()
        };
        let one = run(1);
        assert_eq!(one.len(), 3);
        assert_eq!(run(3), one);
        assert_eq!(run(2), one);
    }

    fn sens(node: &str, sqnr_db: f64, macs_share: Option<f64>) -> Sensitivity {
        Sensitivity {
            node: node.into(),
            sqnr_db,
            macs_share,
        }
    }

    #[test]
    fn give_back_offers_expensive_float_nodes_largest_first() {
        // The recognizer's case: its largest conv was kept float by sensitivity alone.
        let sens = vec![
            sens("stem", 12.6, Some(0.002)),
            sens("mid", 29.5, Some(0.048)),
            sens("big", 36.0, Some(0.17)),
            sens("unsized", 36.3, None),
            sens("int8", 40.0, Some(0.3)),
        ];
        let float: Vec<String> = ["stem", "mid", "big", "unsized"].map(String::from).into();
        let got: Vec<&str> = give_back_order(&sens, &float)
            .iter()
            .map(|s| s.node.as_str())
            .collect();
        // Largest first; a node below 1% of the MACs, one of unknown size, and one not
        // kept float are not offered.
        assert_eq!(got, ["big", "mid"]);
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
