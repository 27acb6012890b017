//! Static int8 in QDQ form, placed for ONNX Runtime's CPU kernels.
//!
//! Placement rule: only ops with an int8 kernel get quantized (Conv -> `QLinearConv`,
//! MatMul/Gemm with a constant weight -> `QLinearMatMul`/`QGemm`). Each gets
//! `DequantizeLinear` on its activation input, its weight (per-channel symmetric int8) and
//! its bias (int32, scale = input scale x weight scale), and a `QuantizeLinear` ->
//! `DequantizeLinear` pair on its output, because ORT fuses `DQ -> Conv -> Q` into one
//! int8 kernel only when the output is quantized too. A `Relu` or constant `Clip` right
//! after the op is absorbed: the pair goes after it and its range starts at 0, so ORT's
//! `ReluQuantFusion`/`ClipQuantFusion` drop it.
//!
//! Each activation tensor gets exactly one Q -> DQ pair, shared by all its readers, so an
//! int8 op feeding another int8 op passes int8 data through (`QLinearConv -> QLinearConv`)
//! and no tensor is ever requantized (no Q/DQ ping-pong). Ops with no int8 kernel
//! (HardSigmoid, Mul, Sigmoid, ReduceMean, Softmax, ...) read the DQ output in float.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::adaround;
use super::calibrate::{Moments, PatchSpec};
use super::graph::node_key;
use super::math::{
    asymmetric_u8, gptq_round_i8, quantize_bias_i32, quantize_per_channel_sym,
    quantize_per_tensor_sym, NO_SATURATION_I8_MAX,
};
use crate::error::Result;
use crate::model::attr::{self, NodeExt};
use crate::model::builder::node;
use crate::model::graph::GraphIndex;
use crate::model::patch::{NodeRef, Patch, PatchOp, Position};
use crate::model::{tensor_data, DataType, GraphProto, Model, NodeProto, TensorProto};

/// What the planner may quantize.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Node names never to quantize.
    pub exclude_nodes: HashSet<String>,
    /// Op types never to quantize (`Conv`, `MatMul`, `Gemm`, or `DepthwiseConv` for convs
    /// with `group == input channels`).
    pub exclude_ops: HashSet<String>,
    /// Per-channel weight scales (true: per output channel; false: one scale per tensor).
    pub per_channel: bool,
    /// Int8 weights only, float compute, for every node (`--mode int8-weight`).
    pub weights_only: bool,
    /// Keep convs on globally pooled (1x1 spatial) tensors, e.g. squeeze-and-excitation
    /// blocks, in float. They are a rounding error of the compute and in int8 each costs a
    /// Q/DQ pair, but they hold a good share of the weights: on the PP-OCR benchmark,
    /// keeping them float grew det from 0.29x to 0.35x of fp32 with no measurable speed-up,
    /// so the default quantizes them and `auto` tries both.
    pub float_pooled: bool,
    /// How per-channel int8 weights are rounded.
    pub rounding: WeightRounding,
}

/// How per-channel int8 weights are rounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightRounding {
    /// Error-compensating ([`gptq_weights`]) whenever weights are per channel. On the
    /// PP-OCR benchmark compensation took `int8-weight` from 19.6 to 26.7 dB (rec) and 25.9
    /// to 32.2 dB (det). With u8 activations (`int8`) and full-range weights only rec
    /// gained (11.2 -> 12.6 dB; det 13.6 -> 13.5, cls 31.0 -> 30.0, within noise), so `int8`
    /// used to round to nearest; but its weights are now 7-bit (`math::NO_SATURATION_I8_MAX`),
    /// and rounding those to nearest took the classifier's CLI test from 28.7 to 10.3 dB;
    /// compensation gives the bit back (28.8 dB).
    #[default]
    Auto,
    /// Round to nearest.
    Nearest,
    /// Error-compensating rounding (GPTQ) against calibrated input moments.
    Gptq,
    /// Learned rounding against each layer's output error (AdaRound, [`super::adaround`])
    /// where its iteration budget allows, GPTQ elsewhere, both polished by coordinate
    /// descent on the same error; per block of weights the lower layer error is kept, so
    /// it is never worse than GPTQ on that objective.
    AdaRound,
}

impl WeightRounding {
    /// Parse `auto`, `nearest`, `gptq`, `adaround`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(WeightRounding::Auto),
            "nearest" => Some(WeightRounding::Nearest),
            "gptq" => Some(WeightRounding::Gptq),
            "adaround" => Some(WeightRounding::AdaRound),
            _ => None,
        }
    }

    /// Whether weights get error-compensating rounding under this selection.
    pub fn compensates(self, sel: &Selection) -> bool {
        sel.per_channel
            && match self {
                WeightRounding::Auto | WeightRounding::Gptq | WeightRounding::AdaRound => true,
                WeightRounding::Nearest => false,
            }
    }
}

/// One node to quantize.
#[derive(Clone, Debug, Serialize)]
pub struct QuantNode {
    /// Node name (or first output).
    pub node: String,
    /// Op type (`Conv`, `MatMul`, `Gemm`).
    pub op_type: String,
    /// Activation input tensor.
    pub input: String,
    /// Output tensor that gets the Q/DQ pair (after an absorbed Relu/Clip, if any).
    pub output: String,
    /// Weight initializer name.
    pub weight: String,
    /// Axis of the weight's output channels.
    pub weight_axis: usize,
    /// Only the weight is int8 (dequantized to float); the op computes in float.
    pub weight_only: bool,
    #[serde(skip)]
    index: usize,
}

/// The plan: nodes to quantize and activation tensors that need calibrated ranges.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    /// Nodes in graph order.
    pub nodes: Vec<QuantNode>,
    /// Activation tensors to calibrate, sorted.
    pub activations: Vec<String>,
    /// How per-channel weights with calibrated input moments are rounded.
    pub rounding: WeightRounding,
    /// Int8 weights (weight-only, rounded to nearest) inside `If`/`Loop`/`Scan` bodies,
    /// ready to add to the patch ([`nested_weights`]): activations inside a body are not
    /// calibrated, so its compute stays float whatever the mode.
    #[serde(skip)]
    pub nested: super::subgraph::Nested,
}

/// Find the nodes to quantize in a prepared (opset >= 13, weights as initializers) graph,
/// and the int8 weights of its subgraphs ([`nested_weights`]).
pub fn plan(model: &Model, sel: &Selection) -> Result<Plan> {
    let mut p = plan_graph(model, sel)?;
    p.nested = nested_weights(model, sel)?;
    Ok(p)
}

/// [`plan`] for the main graph alone.
fn plan_graph(model: &Model, sel: &Selection) -> Result<Plan> {
    let g = model.graph();
    let ix = GraphIndex::new(g);
    // Tensors with 1x1 spatial extent: outputs of global pooling and everything computed
    // elementwise or by convs from them alone.
    let mut pooled: HashSet<&str> = HashSet::new();
    for n in &g.node {
        let from_pooled = n
            .input
            .iter()
            .filter(|i| !ix.is_initializer(i) && !i.is_empty())
            .all(|i| pooled.contains(i.as_str()));
        let is_pool = matches!(n.op_type.as_str(), "GlobalAveragePool" | "GlobalMaxPool");
        let passes = matches!(
            n.op_type.as_str(),
            "Conv"
                | "Relu"
                | "Clip"
                | "HardSigmoid"
                | "Sigmoid"
                | "Add"
                | "Mul"
                | "Sub"
                | "Div"
                | "HardSwish"
        );
        if is_pool || (passes && from_pooled && !n.input.is_empty()) {
            pooled.extend(n.output.iter().map(String::as_str));
        }
    }
    let mut nodes = Vec::new();
    let mut acts: HashSet<String> = HashSet::new();
    for (i, n) in g.node.iter().enumerate() {
        // Convs where int8 compute does not pay stay float entirely. (Int8 weights with float
        // compute would keep the file small, but a DequantizeLinear in front of a conv's
        // weight stops ONNX Runtime's NCHWc layout transform and is recomputed every run:
        // measured 1.3-1.5x slower than fp32 on the PP-OCR classifier.)
        if sel.float_pooled
            && n.op_type == "Conv"
            && n.input.first().is_some_and(|x| pooled.contains(x.as_str()))
        {
            continue;
        }
        let weight_only = sel.weights_only;
        if !n.domain.is_empty() || sel.exclude_nodes.contains(&node_key(n)) {
            continue;
        }
        let weight = match n.input.get(1).and_then(|w| ix.initializer(w)) {
            Some(w) if w.data_type == Some(DataType::Float as i32) => w,
            _ => continue,
        };
        let axis = match n.op_type.as_str() {
            "Conv" if weight.dims.len() >= 3 => {
                let group = n.attr_i_or("group", 1)?;
                let depthwise = group > 1 && weight.dims.get(1) == Some(&1);
                if depthwise && sel.exclude_ops.contains("DepthwiseConv") {
                    continue;
                }
                0
            }
            "MatMul" if weight.dims.len() == 2 => 1,
            "Gemm"
                if weight.dims.len() == 2
                    && n.attr_i_or("transA", 0)? == 0
                    && (n
                        .attribute
                        .iter()
                        .all(|a| (a.name != "alpha" && a.name != "beta") || a.f == Some(1.0))) =>
            {
                if n.attr_i_or("transB", 0)? == 1 {
                    0
                } else {
                    1
                }
            }
            _ => continue,
        };
        if sel.exclude_ops.contains(&n.op_type) {
            continue;
        }
        // Bias must be a constant too (it becomes int32).
        if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()) {
            if !ix.is_initializer(b) {
                continue;
            }
        }
        let input = n.input[0].clone();
        if ix.is_initializer(&input) {
            continue;
        }
        if weight_only {
            nodes.push(QuantNode {
                node: node_key(n),
                op_type: n.op_type.clone(),
                input: input.clone(),
                output: n.output[0].clone(),
                weight: n.input[1].clone(),
                weight_axis: axis,
                weight_only,
                index: i,
            });
            continue;
        }
        let mut output = n.output[0].clone();
        if ix.single_use(&output) {
            let c = &g.node[ix.consumers(&output)[0]];
            let absorbable = c.domain.is_empty()
                && (c.op_type == "Relu"
                    || (c.op_type == "Clip"
                        && c.input.len() == 3
                        && c.input[1..].iter().all(|x| ix.is_initializer(x))));
            if absorbable {
                output = c.output[0].clone();
            }
        }
        acts.insert(input.clone());
        acts.insert(output.clone());
        nodes.push(QuantNode {
            node: node_key(n),
            op_type: n.op_type.clone(),
            input,
            output,
            weight: n.input[1].clone(),
            weight_axis: axis,
            weight_only,
            index: i,
        });
    }
    let mut activations: Vec<String> = acts.into_iter().collect();
    activations.sort();
    Ok(Plan {
        nodes,
        activations,
        rounding: sel.rounding,
        nested: Default::default(),
    })
}

/// Int8 weights for the Conv/MatMul/Gemm nodes inside the model's `If`, `Loop` and `Scan`
/// bodies (their `Constant` weights, their own initializers and the enclosing graphs'
/// initializers they read), weight-only: per-channel (when `sel.per_channel`) symmetric
/// int8 in [-127, 127] behind a `DequantizeLinear`, rounded to nearest, no bias
/// correction. Why weight-only even for `--mode int8`: calibrating an activation inside a
/// body means exposing it through the `If`/`Loop` outputs of every enclosing level, which
/// this quantizer does not do; the mode says so in a warning ([`nested_warnings`]).
pub fn nested_weights(model: &Model, sel: &Selection) -> Result<super::subgraph::Nested> {
    let mut inner = sel.clone();
    inner.weights_only = true;
    super::subgraph::nested(
        model,
        super::subgraph::OuterNames::CopyInitializers,
        &mut |sub: &Model| {
            let mut p = plan_graph(sub, &inner)?;
            if p.nodes.is_empty() {
                return Ok(None);
            }
            p.activations.clear();
            let (ranges, means) = (BTreeMap::new(), BTreeMap::new());
            let patch = emit(
                sub,
                &p,
                &ranges,
                &means,
                &BTreeMap::new(),
                inner.per_channel,
            )?;
            let mut q = sub.clone();
            q.apply(patch)?;
            super::graph::prune_initializers(&mut q)?;
            Ok(Some(super::subgraph::Rewritten {
                model: q,
                nodes: p.nodes.iter().map(|n| n.node.clone()).collect(),
            }))
        },
    )
}

/// The warnings a plan's subgraph part needs (`int8`, or `int8-weight` if weight-only): compute
/// left in float inside bodies, and for `int8` that bodies get int8 weights only.
pub fn nested_warnings(plan: &Plan, weights_only: bool) -> Vec<String> {
    let mode = if weights_only { "int8-weight" } else { "int8" };
    let n = &plan.nested;
    let mut w = Vec::new();
    if !weights_only && n.nodes > 0 {
        w.push(format!(
            "{mode}: activations inside subgraphs are not calibrated: {} Conv/MatMul/Gemm in {} subgraph(s) got int8 weights with float compute (as int8-weight)",
            n.nodes, n.graphs
        ));
    }
    w.extend(n.float_warning(mode));
    w
}

/// The geometry of the input patches a planned node reads, for [`Moments`]: 2-D convs with
/// explicit (or no) padding and MatMuls. `None` for anything else (its weights then round
/// to nearest).
pub fn patch_spec(model: &Model, qn: &QuantNode) -> Option<PatchSpec> {
    let g = model.graph();
    let n = g.node.get(qn.index)?;
    let w = g.initializer.iter().find(|t| t.name == qn.weight)?;
    match qn.op_type.as_str() {
        "MatMul" => Some(PatchSpec::Rows {
            k: *w.dims.first()? as usize,
        }),
        "Conv" if w.dims.len() == 4 => {
            if n.attr_s_or("auto_pad", "NOTSET").ok()? != "NOTSET" {
                return None;
            }
            let two = |name: &str, default: usize| -> Option<Vec<usize>> {
                let v = n.attr_ints_or(name, &[]).ok()?;
                if v.is_empty() {
                    return Some(vec![default; 2]);
                }
                v.iter().map(|&x| usize::try_from(x).ok()).collect()
            };
            let (strides, dil) = (two("strides", 1)?, two("dilations", 1)?);
            let pads = {
                let v = n.attr_ints_or("pads", &[]).ok()?;
                if v.is_empty() {
                    vec![0; 4]
                } else {
                    v.iter()
                        .map(|&x| usize::try_from(x).ok())
                        .collect::<Option<Vec<_>>>()?
                }
            };
            if strides.len() != 2 || dil.len() != 2 || pads.len() != 4 {
                return None;
            }
            let groups = usize::try_from(n.attr_i_or("group", 1).ok()?).ok()?.max(1);
            let d = |i: usize| usize::try_from(w.dims[i]).ok();
            let (cout, cin_g) = (d(0)?, d(1)?);
            if cout % groups != 0 {
                return None;
            }
            Some(PatchSpec::Conv2d {
                kernel: [d(2)?, d(3)?],
                strides: [strides[0], strides[1]],
                dilations: [dil[0], dil[1]],
                pads_begin: [pads[0], pads[1]],
                pads_end: [pads[2], pads[3]],
                groups,
                cin_g,
            })
        }
        _ => None,
    }
}

/// Largest patch length error-compensating rounding is used for: its inverse Hessian
/// costs `dim^3` and its moments `dim^2` per output position.
pub const GPTQ_MAX_DIM: usize = 1152;
/// Relative damping of the Hessian's diagonal (GPTQ's default).
pub const GPTQ_DAMP: f64 = 0.01;

/// Per-channel int8 weights rounded with error compensation ([`gptq_round_i8`]) against the
/// layer's input moments; `None` when the moments do not fit the weight (the caller then
/// rounds to nearest). `scales` are the round-to-nearest ones (absmax / `qmax`), and the
/// weights stay in `[-qmax, qmax]`.
pub fn gptq_weights(
    w: &[f32],
    dims: &[usize],
    axis: usize,
    scales: &[f32],
    moments: &Moments,
    qmax: i32,
) -> Option<Vec<i8>> {
    compensated_weights(w, dims, axis, scales, moments, qmax, WeightRounding::Gptq).map(|(q, _)| q)
}

/// Coordinate-descent passes that polish AdaRound's and GPTQ's weights.
pub const REFINE_SWEEPS: usize = 4;

/// Round one block (`rows x cols`, rows = output channels) against its input moments `h`
/// under `rounding`; the flag says whether AdaRound's result was kept.
fn round_block(
    w: &[f32],
    rows: usize,
    cols: usize,
    h: &[f64],
    scales: &[f32],
    qmax: i32,
    rounding: WeightRounding,
) -> Option<(Vec<i8>, bool)> {
    let gptq = gptq_round_i8(w, rows, cols, h, scales, GPTQ_DAMP, qmax);
    if rounding != WeightRounding::AdaRound {
        return gptq.map(|q| (q, false));
    }
    // The same damping as GPTQ's: moments from a few calibration images are nearly
    // singular (neighbouring taps of flat backgrounds), and an undamped objective lets
    // weights drift along directions the calibration never excited (measured on the PP-OCR
    // classifier: 32.2 dB with GPTQ, 18.0 dB with undamped AdaRound + refinement).
    let h = &adaround::damped(h, cols, GPTQ_DAMP);
    let polish = |mut q: Vec<i8>| {
        adaround::refine_rows(w, &mut q, rows, cols, h, scales, qmax, REFINE_SWEEPS);
        (adaround::layer_error(w, &q, rows, cols, h, scales), q)
    };
    let from_gptq = gptq.map(polish);
    let iterations = adaround::adaround_iterations(rows, cols);
    let learned = if iterations > 0 || from_gptq.is_none() {
        adaround::adaround_rows(w, rows, cols, h, scales, qmax, iterations).map(polish)
    } else {
        None
    };
    match (from_gptq, learned) {
        (Some(g), Some(a)) if a.0 < g.0 => Some((a.1, true)),
        (Some(g), _) => Some((g.1, false)),
        (None, Some(a)) => Some((a.1, true)),
        (None, None) => None,
    }
}

/// Per-channel int8 weights rounded against the layer's input moments under `rounding`
/// (GPTQ, or AdaRound: [`round_block`]), with the number of blocks (conv groups) that kept
/// AdaRound's result; `None` when the moments do not fit the weight.
pub fn compensated_weights(
    w: &[f32],
    dims: &[usize],
    axis: usize,
    scales: &[f32],
    moments: &Moments,
    qmax: i32,
    rounding: WeightRounding,
) -> Option<(Vec<i8>, usize)> {
    let (blocks, dim) = moments.spec.blocks_and_dim();
    if dim > GPTQ_MAX_DIM || dim == 0 {
        return None;
    }
    match (&moments.spec, axis, dims) {
        (PatchSpec::Rows { k }, 1, &[rows_k, n]) if rows_k == *k => {
            // [K, N]: rows of the GPTQ matrix are the N output columns.
            let h = moments.second_moment(0)?;
            let t: Vec<f32> = (0..n)
                .flat_map(|c| (0..rows_k).map(move |r| (r, c)))
                .map(|(r, c)| w[r * n + c])
                .collect();
            let (q, ada) = round_block(&t, n, rows_k, &h, scales, qmax, rounding)?;
            let mut out = vec![0i8; w.len()];
            for c in 0..n {
                for r in 0..rows_k {
                    out[r * n + c] = q[c * rows_k + r];
                }
            }
            Some((out, usize::from(ada)))
        }
        (PatchSpec::Conv2d { .. }, 0, &[cout, ..]) => {
            if w.len() != cout * dim || cout % blocks != 0 || scales.len() != cout {
                return None;
            }
            let per_block = cout / blocks;
            let mut out = Vec::with_capacity(w.len());
            let mut learned = 0;
            for b in 0..blocks {
                let h = moments.second_moment(b)?;
                let rows = b * per_block..(b + 1) * per_block;
                let (q, ada) = round_block(
                    &w[rows.start * dim..rows.end * dim],
                    per_block,
                    dim,
                    &h,
                    &scales[rows],
                    qmax,
                    rounding,
                )?;
                learned += usize::from(ada);
                out.extend(q);
            }
            Some((out, learned))
        }
        _ => None,
    }
}

/// Build the patch that turns the plan into QDQ, given calibrated `(min, max)` per
/// activation tensor and, for bias correction, the calibrated per-channel means of conv
/// inputs (`means`; a conv whose input has none keeps its bias as is). Per-channel weights
/// of nodes with input `moments` (keyed by node label) are rounded with error compensation
/// ([`gptq_weights`]); the others, and shared weights, round to nearest.
pub fn emit(
    model: &Model,
    plan: &Plan,
    ranges: &BTreeMap<String, (f32, f32)>,
    means: &BTreeMap<String, (Vec<f32>, Vec<usize>)>,
    moments: &BTreeMap<String, Moments>,
    per_channel: bool,
) -> Result<Patch> {
    let cache = WeightCache::default();
    emit_cached(model, plan, ranges, means, moments, per_channel, &cache)
}

/// Rounded int8 weights kept across the emits of one calibration. A node's rounded weights
/// depend only on the weight, the node's input moments, the integer range and whether
/// another planned node shares the weight, never on which other nodes are quantized; the
/// accuracy guard emits the same nodes for dozens of candidates, and error-compensating
/// rounding (a Cholesky factorisation per weight) was most of each emit (0.5 s of 1.7 s per
/// candidate on the PP-OCR recognizer).
#[derive(Default)]
pub struct WeightCache(std::sync::Mutex<HashMap<RoundingKey, Rounded>>);

/// Weight, node, integer maximum, shared, per channel.
type RoundingKey = (String, String, i32, bool, bool);

/// One weight's rounding: values, scales, and whether (and in how many blocks by
/// AdaRound) it was error-compensated.
#[derive(Clone)]
struct Rounded {
    q: Vec<i8>,
    scales: Vec<f32>,
    compensated: bool,
    learned: usize,
}

impl WeightCache {
    fn get_or(&self, key: RoundingKey, round: impl FnOnce() -> Rounded) -> Rounded {
        let lock = || self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = lock().get(&key) {
            return r.clone();
        }
        let r = round();
        lock().insert(key, r.clone());
        r
    }
}

/// [`emit`], taking rounded weights from `cache` and adding those it rounds.
pub fn emit_cached(
    model: &Model,
    plan: &Plan,
    ranges: &BTreeMap<String, (f32, f32)>,
    means: &BTreeMap<String, (Vec<f32>, Vec<usize>)>,
    moments: &BTreeMap<String, Moments>,
    per_channel: bool,
    cache: &WeightCache,
) -> Result<Patch> {
    let g: &GraphProto = model.graph();
    let ix = GraphIndex::new(g);
    let init = |name: &str| {
        ix.initializer(name)
            .expect("planned tensors are initializers")
    };
    let f32s = tensor_data::to_vec::<f32>;
    // Collected in the order the patch runs them: rewired inputs of existing nodes, the new
    // Q/DQ nodes, their initializers.
    let mut inputs: Vec<(NodeRef, usize, String)> = Vec::new();
    let mut nodes: Vec<NodeProto> = Vec::new();
    let mut tensors: Vec<TensorProto> = Vec::new();
    let mut label = format!(
        "int8 QDQ: {} nodes with int8 compute, {} with int8 weights only, {} activation tensors",
        plan.nodes.iter().filter(|n| !n.weight_only).count(),
        plan.nodes.iter().filter(|n| n.weight_only).count(),
        plan.activations.len()
    );
    // Activation Q/DQ pairs, one per tensor; every reader is rewired to the DQ output.
    let mut act_scale: HashMap<&str, f32> = HashMap::new();
    for t in &plan.activations {
        let (lo, hi) = ranges.get(t).copied().unwrap_or((0.0, 0.0));
        let q = asymmetric_u8(lo, hi);
        act_scale.insert(t, q.scale);
        let s = format!("{t}_scale");
        let z = format!("{t}_zero_point");
        let tq = format!("{t}_quantized");
        let tdq = format!("{t}_dequantized");
        tensors.push(tensor_data::from_f32(&s, &[], &[q.scale])?);
        tensors.push(tensor_data::from_u8(&z, &[], &[q.zero_point as u8])?);
        nodes.push(node(
            &format!("{t}_QuantizeLinear"),
            "QuantizeLinear",
            &[t, &s, &z],
            &[&tq],
            vec![],
        ));
        nodes.push(node(
            &format!("{t}_DequantizeLinear"),
            "DequantizeLinear",
            &[&tq, &s, &z],
            &[&tdq],
            vec![],
        ));
        for &c in ix.consumers(t) {
            for (slot, inp) in g.node[c].input.iter().enumerate() {
                if inp == t {
                    inputs.push((NodeRef::of(&g.node[c]), slot, tdq.clone()));
                }
            }
        }
    }
    // Weights and biases: int8 / int32 initializers behind a DequantizeLinear.
    // Per weight: DQ output name, scales, and the rounding error (dequantized - fp32).
    type Done = (String, Vec<f32>, Vec<f32>);
    let mut gptq_count = 0usize;
    let mut adaround_blocks = 0usize;
    let mut done_weights: HashMap<String, Done> = HashMap::new();
    for qn in &plan.nodes {
        let n = &g.node[qn.index];
        let w = init(&qn.weight);
        let (wdq, wscales, werr) = match done_weights.get(&qn.weight) {
            Some(x) => x.clone(),
            None => {
                let wv = f32s(w)?;
                let dims: Vec<usize> = w.dims.iter().map(|&d| d as usize).collect();
                let readers = || plan.nodes.iter().filter(|o| o.weight == qn.weight);
                let shared = readers().count() > 1;
                // Weights that meet u8 activations in an integer kernel stay in [-64, 64]
                // (see NO_SATURATION_I8_MAX); float compute (weight-only) keeps full range.
                let qmax = if readers().all(|o| o.weight_only) {
                    127
                } else {
                    NO_SATURATION_I8_MAX
                };
                let key = (
                    qn.weight.clone(),
                    qn.node.clone(),
                    qmax,
                    shared,
                    per_channel,
                );
                let Rounded {
                    q,
                    scales,
                    compensated,
                    learned,
                } = cache.get_or(key, || {
                    if per_channel {
                        let (rtn, scales) =
                            quantize_per_channel_sym(&wv, &dims, qn.weight_axis, qmax);
                        let compensated = moments.get(&qn.node).filter(|_| !shared).and_then(|m| {
                            compensated_weights(
                                &wv,
                                &dims,
                                qn.weight_axis,
                                &scales,
                                m,
                                qmax,
                                plan.rounding,
                            )
                        });
                        Rounded {
                            compensated: compensated.is_some(),
                            learned: compensated.as_ref().map_or(0, |(_, l)| *l),
                            q: compensated.map_or(rtn, |(q, _)| q),
                            scales,
                        }
                    } else {
                        let (q, s) = quantize_per_tensor_sym(&wv, qmax);
                        Rounded {
                            q,
                            scales: vec![s],
                            compensated: false,
                            learned: 0,
                        }
                    }
                });
                gptq_count += usize::from(compensated);
                adaround_blocks += learned;
                let base = &qn.weight;
                let (wq, ws, wz, wdq) = (
                    format!("{base}_quantized"),
                    format!("{base}_scale"),
                    format!("{base}_zero_point"),
                    format!("{base}_dequantized"),
                );
                let sdims: Vec<i64> = if per_channel {
                    vec![scales.len() as i64]
                } else {
                    vec![]
                };
                tensors.push(tensor_data::from_i8(&wq, &w.dims, &q)?);
                tensors.push(tensor_data::from_f32(&ws, &sdims, &scales)?);
                tensors.push(tensor_data::from_i8(&wz, &sdims, &vec![0; scales.len()])?);
                let attrs = if per_channel {
                    vec![attr::int("axis", qn.weight_axis as i64)]
                } else {
                    vec![]
                };
                nodes.push(node(
                    &format!("{base}_DequantizeLinear"),
                    "DequantizeLinear",
                    &[&wq, &ws, &wz],
                    &[&wdq],
                    attrs,
                ));
                let inner: usize = dims[qn.weight_axis + 1..].iter().product();
                let werr: Vec<f32> = wv
                    .iter()
                    .zip(&q)
                    .enumerate()
                    .map(|(i, (&x, &qv))| {
                        let s = scales[if scales.len() == 1 {
                            0
                        } else {
                            (i / inner) % scales.len()
                        }];
                        qv as f32 * s - x
                    })
                    .collect();
                done_weights.insert(
                    qn.weight.clone(),
                    (wdq.clone(), scales.clone(), werr.clone()),
                );
                (wdq, scales, werr)
            }
        };
        inputs.push((NodeRef::of(n), 1, wdq));
        if qn.weight_only {
            // Float compute: the bias stays float, corrected for the weights' rounding.
            let b = n.input.get(2).filter(|b| !b.is_empty());
            if let (Some(b), Some((mu, spatial)), true) =
                (b, means.get(&qn.input), qn.op_type == "Conv")
            {
                let mut bv = f32s(init(b))?;
                let taps = tap_fractions(n, &w.dims, spatial);
                bias_correct(&mut bv, &werr, &w.dims, mu, &taps);
                let name = format!("{}_{}_biascorr", b, qn.node);
                tensors.push(tensor_data::from_f32(&name, &[bv.len() as i64], &bv)?);
                inputs.push((NodeRef::of(n), 2, name));
            }
            continue;
        }
        if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()) {
            // No bias correction here: with int8 activations too it measured within noise on
            // the PP-OCR benchmark (rec 11.2 -> 11.5 dB, det 13.6 -> 13.5 dB; the u8
            // activation error dominates) and cost the classifier 3+ dB on small eval sets.
            let bv = f32s(init(b))?;
            let sx = act_scale.get(qn.input.as_str()).copied().unwrap_or(1.0);
            let channel_scales: Vec<f32> = if wscales.len() == 1 {
                vec![wscales[0]; bv.len()]
            } else {
                wscales.clone()
            };
            if channel_scales.len() != bv.len() {
                continue; // broadcast bias (Gemm): keep it float
            }
            let (bq, bs) = quantize_bias_i32(&bv, sx, &channel_scales);
            let base = format!("{}_{}", b, qn.node);
            // No zero point: it is optional for int32 and 0 by definition, and omitting it
            // saves 4 bytes per channel.
            let (bqn, bsn, bdq) = (
                format!("{base}_quantized"),
                format!("{base}_scale"),
                format!("{base}_dequantized"),
            );
            let d = [bv.len() as i64];
            tensors.push(tensor_data::from_i32(&bqn, &d, &bq)?);
            tensors.push(tensor_data::from_f32(&bsn, &d, &bs)?);
            nodes.push(node(
                &format!("{base}_DequantizeLinear"),
                "DequantizeLinear",
                &[&bqn, &bsn],
                &[&bdq],
                vec![attr::int("axis", 0)],
            ));
            inputs.push((NodeRef::of(n), 2, bdq));
        }
    }
    if gptq_count > 0 && plan.rounding == WeightRounding::AdaRound {
        label.push_str(&format!(
            "; {gptq_count} weights rounded against their layer's output error (AdaRound kept on {adaround_blocks} blocks, refined GPTQ on the others)"
        ));
    } else if gptq_count > 0 {
        label.push_str(&format!(
            "; {gptq_count} weights rounded with error compensation (GPTQ)"
        ));
    }
    if !plan.nested.is_empty() {
        label.push_str(&format!(
            "; int8 weights only in subgraphs: {} nodes in {} subgraphs",
            plan.nested.nodes, plan.nested.graphs
        ));
    }
    let mut p = plan.nested.extend_patch(Patch::new(label));
    for (node, index, name) in inputs {
        p.push(PatchOp::SetNodeInput { node, index, name });
    }
    if !nodes.is_empty() {
        p = p.add_nodes(nodes, Position::Topological);
    }
    for t in tensors {
        p = p.set_initializer(t);
    }
    Ok(p)
}

/// Bias correction (Nagel et al. 2019, "Data-Free Quantization", sec. 4.2): rounding the
/// weights of a conv shifts the mean of each output channel by
/// `sum_{ci,k} dW[c,ci,k] * E[x_ci]`, a systematic error that the following layers amplify.
/// On the benchmark's rendered text images, int8 conv weights alone (float activations) give
/// the PP-OCR recognizer 12.4 dB without and 19.8 dB with it, the detector 21.4 / 26.0 dB:
/// these models amplify small weight errors (0.1% random weight noise costs det 23 dB).
/// Subtracting the shift from the float bias (before it is quantized) removes it. `mu` is
/// the calibrated mean of each input channel; `dw` the rounding error of the weight
/// `[Cout, Cin/group, k...]`; `taps[k]` the share of output positions at which kernel tap
/// `k` reads inside the input rather than zero padding ([`tap_fractions`]).
pub fn bias_correct(bias: &mut [f32], dw: &[f32], wdims: &[i64], mu: &[f32], taps: &[f64]) {
    let cout = bias.len();
    let Some(&cin_g) = wdims.get(1) else { return };
    let cin_g = cin_g as usize;
    if cout == 0 || cin_g == 0 || wdims.first() != Some(&(cout as i64)) {
        return;
    }
    let per_out = dw.len() / cout; // cin_g * kernel elements
    let kernel = per_out / cin_g;
    // Groups: mu.len() = group * cin_g input channels, cout / group outputs per group.
    if !mu.len().is_multiple_of(cin_g) {
        return;
    }
    let group = mu.len() / cin_g;
    if group == 0 || !cout.is_multiple_of(group) {
        return;
    }
    let out_per_group = cout / group;
    for (c, b) in bias.iter_mut().enumerate() {
        let first_in = (c / out_per_group) * cin_g;
        let shift: f64 = (0..cin_g)
            .map(|ci| {
                let row = &dw[c * per_out + ci * kernel..c * per_out + (ci + 1) * kernel];
                row.iter()
                    .zip(taps.iter().chain(std::iter::repeat(&1.0)))
                    .map(|(&e, &t)| e as f64 * t)
                    .sum::<f64>()
                    * mu[first_in + ci] as f64
            })
            .sum();
        *b -= shift as f32;
    }
}

/// For a Conv node with weight dims `[Cout, Cin/g, k...]` on an input of `spatial` size,
/// the share of output positions at which each kernel tap (C order) reads inside the input:
/// on small feature maps a 3x3 or 5x5 kernel reads padding zeros at a large share of
/// positions, and ignoring that over-corrects the bias. All ones when the size is unknown.
pub fn tap_fractions(n: &NodeProto, wdims: &[i64], spatial: &[usize]) -> Vec<f64> {
    let kdims: Vec<usize> = wdims.iter().skip(2).map(|&d| d.max(1) as usize).collect();
    let total: usize = kdims.iter().product::<usize>().max(1);
    let r = kdims.len();
    if spatial.len() != r || r == 0 {
        return vec![1.0; total];
    }
    // Malformed attributes read as absent: this only weighs a correction.
    let get = |name: &str, default: i64| -> Vec<i64> {
        let v = n.attr_ints_or(name, &[]).unwrap_or_default();
        if v.is_empty() {
            vec![default; r]
        } else {
            v
        }
    };
    let (strides, dil, pads) = (get("strides", 1), get("dilations", 1), get("pads", 0));
    let auto_pad = n.attr_s_or("auto_pad", "").unwrap_or_default();
    // Per spatial axis: the fraction for each tap index along that axis.
    let mut per_axis: Vec<Vec<f64>> = Vec::with_capacity(r);
    for a in 0..r {
        let (i, k) = (spatial[a] as i64, kdims[a] as i64);
        let s = strides.get(a).copied().unwrap_or(1).max(1);
        let d = dil.get(a).copied().unwrap_or(1).max(1);
        let span = d * (k - 1) + 1;
        let (pb, pe) = match auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => {
                let out = (i + s - 1) / s;
                let t = ((out - 1) * s + span - i).max(0);
                if auto_pad == "SAME_UPPER" {
                    (t / 2, t - t / 2)
                } else {
                    (t - t / 2, t / 2)
                }
            }
            "VALID" => (0, 0),
            _ => (
                pads.get(a).copied().unwrap_or(0),
                pads.get(a + r).copied().unwrap_or(0),
            ),
        };
        let out = (i + pb + pe - span) / s + 1;
        if out <= 0 || i <= 0 {
            return vec![1.0; total];
        }
        per_axis.push(
            (0..k)
                .map(|t| {
                    let inside = (0..out)
                        .filter(|o| (0..i).contains(&(o * s - pb + t * d)))
                        .count();
                    inside as f64 / out as f64
                })
                .collect(),
        );
    }
    (0..total)
        .map(|flat| {
            let mut rem = flat;
            let mut f = 1.0;
            for a in (0..r).rev() {
                f *= per_axis[a][rem % kdims[a]];
                rem /= kdims[a];
            }
            f
        })
        .collect()
}

/// Each planned node's multiply-accumulates at the input shapes `inputs` (from
/// [`crate::model::shape`]), in plan order; `None` where its shapes could not be inferred.
pub fn node_macs(
    model: &Model,
    plan: &Plan,
    inputs: &BTreeMap<String, Vec<i64>>,
) -> Vec<Option<u64>> {
    let g = model.graph();
    let inf = crate::model::shape::infer(g, inputs);
    plan.nodes
        .iter()
        .map(|qn| {
            g.node
                .get(qn.index)
                .and_then(|n| crate::model::shape::node_macs(n, &inf))
        })
        .collect()
}

/// The sub-plan of nodes for which `keep` holds (activations recomputed from them).
pub fn restrict(plan: &Plan, keep: impl Fn(&QuantNode) -> bool) -> Plan {
    let nodes: Vec<QuantNode> = plan.nodes.iter().filter(|n| keep(n)).cloned().collect();
    let mut acts: Vec<String> = nodes
        .iter()
        .filter(|n| !n.weight_only)
        .flat_map(|n| [n.input.clone(), n.output.clone()])
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    acts.sort();
    Plan {
        nodes,
        activations: acts,
        rounding: plan.rounding,
        nested: plan.nested.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::prepare::{prepare, tests::conv_bn_hardswish_model};

    fn prepared() -> Model {
        let mut m = conv_bn_hardswish_model();
        prepare(&mut m).unwrap();
        m
    }

    /// Everything quantizable, per-channel.
    fn plan_all(m: &Model) -> Plan {
        let sel = Selection {
            per_channel: true,
            ..Default::default()
        };
        plan(m, &sel).unwrap()
    }

    /// Every planned activation calibrated to [-1, 4].
    fn wide_ranges(p: &Plan) -> BTreeMap<String, (f32, f32)> {
        p.activations
            .iter()
            .map(|t| (t.clone(), (-1.0, 4.0)))
            .collect()
    }

    #[test]
    fn node_macs_counts_each_planned_conv_at_the_input_shape() {
        let m = prepared();
        let p = plan_all(&m);
        // 1x1 convs, 2 -> 2 channels: 2 MACs per output element, 2x2x4x4 outputs.
        let shapes = BTreeMap::from([("x".to_string(), vec![2, 2, 4, 4])]);
        let macs = node_macs(&m, &p, &shapes);
        assert_eq!(macs.len(), p.nodes.len());
        assert!(
            macs.iter().all(|&m| m == Some(2 * 2 * 2 * 4 * 4)),
            "{macs:?}"
        );
        // Without shapes nothing is sized, and nothing is guessed.
        let none = node_macs(&m, &p, &BTreeMap::new());
        assert!(none.iter().all(Option::is_none), "{none:?}");
    }

    #[test]
    fn plan_quantizes_convs_and_absorbs_a_following_relu() {
        let m = prepared();
        let p = plan_all(&m);
        assert_eq!(p.nodes.len(), 2);
        // The second conv's output pair goes after its Relu.
        assert_eq!(p.nodes[1].output, "y");
        assert!(p.activations.contains(&"x".to_string()));
    }

    #[test]
    fn excluded_ops_and_nodes_stay_float() {
        let m = prepared();
        let sel = Selection {
            exclude_nodes: ["conv1".to_string()].into(),
            per_channel: true,
            ..Default::default()
        };
        assert_eq!(plan(&m, &sel).unwrap().nodes.len(), 1);
        let sel = Selection {
            exclude_ops: ["Conv".to_string()].into(),
            ..Default::default()
        };
        assert!(plan(&m, &sel).unwrap().nodes.is_empty());
    }

    #[test]
    fn emit_shares_one_qdq_pair_per_tensor_and_stores_int8_weights() {
        let m = prepared();
        let p = plan_all(&m);
        let ranges = wide_ranges(&p);
        let patch = emit(&m, &p, &ranges, &BTreeMap::new(), &BTreeMap::new(), true).unwrap();
        let mut q = m.clone();
        q.apply(patch).unwrap();
        let count = |op: &str| q.graph().node.iter().filter(|n| n.op_type == op).count();
        assert_eq!(count("QuantizeLinear"), p.activations.len());
        // One DQ per activation, per weight and per bias.
        assert_eq!(count("DequantizeLinear"), p.activations.len() + 2 + 1);
        let w = q
            .graph()
            .initializer
            .iter()
            .find(|t| t.name.ends_with("_bnfold_w_quantized"))
            .unwrap();
        assert_eq!(w.data_type, Some(DataType::Int8 as i32));
        assert!(crate::quantize::already_quantized(&q).is_some());
    }

    #[test]
    fn cached_weights_are_the_ones_a_fresh_emit_rounds() {
        // Both convs get input moments (error-compensated rounding); the guard's way of
        // working: emit everything, then a plan with one node, from the same cache.
        let m = prepared();
        let p = plan_all(&m);
        let ranges = wide_ranges(&p);
        let x: Vec<f32> = (0..64).map(|i| ((i * 13 % 7) as f32) / 3.0 - 1.0).collect();
        let moments: BTreeMap<String, Moments> = p
            .nodes
            .iter()
            .filter_map(|qn| {
                let mut mo = Moments::new(patch_spec(&m, qn)?);
                mo.observe(&[2, 2, 4, 4], &x);
                Some((qn.node.clone(), mo))
            })
            .collect();
        assert_eq!(moments.len(), 2);
        let int8 = |patch: Patch| {
            let mut q = m.clone();
            q.apply(patch).unwrap();
            let w: BTreeMap<String, TensorProto> = q
                .graph()
                .initializer
                .iter()
                .filter(|t| t.data_type == Some(DataType::Int8 as i32))
                .map(|t| (t.name.clone(), t.clone()))
                .collect();
            w
        };
        let none = BTreeMap::new();
        let cache = WeightCache::default();
        emit_cached(&m, &p, &ranges, &none, &moments, true, &cache).unwrap();
        assert_eq!(cache.0.lock().unwrap().len(), 2);
        let second = restrict(&p, |n| n.node == p.nodes[1].node);
        let cached =
            int8(emit_cached(&m, &second, &ranges, &none, &moments, true, &cache).unwrap());
        let fresh = int8(emit(&m, &second, &ranges, &none, &moments, true).unwrap());
        assert!(!cached.is_empty());
        assert_eq!(cached, fresh);
        assert_eq!(cache.0.lock().unwrap().len(), 2, "nothing rounded twice");
    }

    #[test]
    fn bias_correction_removes_the_mean_shift_of_rounded_weights() {
        // Depthwise (group 2) 1x2 kernels: channel 0 errs by +0.01 and -0.03 (sum -0.02),
        // channel 1 by +0.05 on one tap. Input channel means 2 and -1.
        let mut b = [1.0, 0.5];
        bias_correct(
            &mut b,
            &[0.01, -0.03, 0.05, 0.0],
            &[2, 1, 1, 2],
            &[2.0, -1.0],
            &[1.0, 1.0],
        );
        assert!((b[0] - (1.0 + 0.04)).abs() < 1e-6, "{b:?}");
        assert!((b[1] - (0.5 + 0.05)).abs() < 1e-6, "{b:?}");
        // Dense conv (group 1), 2 inputs: output 0 reads both input channels.
        let mut b = [0.0];
        bias_correct(&mut b, &[0.1, 0.2], &[1, 2, 1, 1], &[1.0, 3.0], &[1.0]);
        assert!((b[0] + 0.7).abs() < 1e-6, "{b:?}");
        // A tap that reads padding half the time counts half.
        let mut b = [0.0];
        bias_correct(&mut b, &[0.2, 0.2], &[1, 1, 1, 2], &[1.0], &[1.0, 0.5]);
        assert!((b[0] + 0.3).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn tap_fractions_count_positions_reading_padding() {
        // 1x3 kernel, pads 1/1 on the width, stride 1, on a 5x4 map: 4 outputs per row;
        // the left tap reads padding at output 0, the right one at output 3.
        let mut n = node("c", "Conv", &["x", "w"], &["y"], vec![]);
        n.attribute.push(crate::model::proto::AttributeProto {
            name: "pads".into(),
            r#type: Some(7),
            ints: vec![0, 1, 0, 1],
            ..Default::default()
        });
        let f = tap_fractions(&n, &[1, 1, 1, 3], &[5, 4]);
        assert_eq!(f, vec![0.75, 1.0, 0.75]);
        // Unknown size: no adjustment.
        assert_eq!(tap_fractions(&n, &[1, 1, 1, 3], &[]), vec![1.0; 3]);
    }

    #[test]
    fn weight_only_conv_bias_is_corrected_when_input_means_are_known() {
        let m = prepared();
        let p = plan(
            &m,
            &Selection {
                per_channel: true,
                weights_only: true,
                ..Default::default()
            },
        )
        .unwrap();
        let corrected = |means: &BTreeMap<String, (Vec<f32>, Vec<usize>)>| {
            let patch = emit(&m, &p, &BTreeMap::new(), means, &BTreeMap::new(), true).unwrap();
            patch.ops.iter().find_map(|op| match op {
                PatchOp::SetInitializer(t) if t.name.ends_with("_biascorr") => {
                    Some(tensor_data::to_vec::<f32>(t).unwrap())
                }
                _ => None,
            })
        };
        assert!(corrected(&BTreeMap::new()).is_none());
        let means: BTreeMap<String, (Vec<f32>, Vec<usize>)> =
            [(p.nodes[0].input.clone(), (vec![3.0, -2.0], vec![4, 4]))].into();
        // The first conv's BN-folded weights are not all exact in int8, so known input
        // means must move its float bias, by the mean shift of the rounded weights.
        let b = corrected(&means).expect("a corrected bias");
        let g = m.graph();
        let conv = &g.node[p.nodes[0].index];
        let ix = GraphIndex::new(g);
        let f32s = |name: &str| tensor_data::to_vec::<f32>(ix.initializer(name).unwrap()).unwrap();
        let (orig, w) = (f32s(&conv.input[2]), f32s(&conv.input[1]));
        let (q, s) = quantize_per_channel_sym(&w, &[2, 2, 1, 1], 0, 127);
        for c in 0..2 {
            let shift: f32 = (0..2)
                .map(|i| (q[c * 2 + i] as f32 * s[c] - w[c * 2 + i]) * [3.0, -2.0][i])
                .sum();
            assert!((b[c] - (orig[c] - shift)).abs() < 1e-6, "{b:?} {orig:?}");
        }
        assert_ne!(b, orig);
    }

    #[test]
    fn adaround_weights_have_no_more_layer_error_than_gptq() {
        // A 3x3 conv on a smooth (correlated) input: rows of 9 taps, 4 output channels.
        let spec = PatchSpec::Conv2d {
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads_begin: [1, 1],
            pads_end: [1, 1],
            groups: 1,
            cin_g: 1,
        };
        let mut m = Moments::new(spec);
        let x: Vec<f32> = (0..64)
            .map(|i| 1.0 + ((i % 8) as f32 * 0.7).sin() + (i / 8) as f32 * 0.1)
            .collect();
        m.observe(&[1, 1, 8, 8], &x);
        let w: Vec<f32> = (0..36)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 40.0)
            .collect();
        let (_, s) = quantize_per_channel_sym(&w, &[4, 1, 3, 3], 0, NO_SATURATION_I8_MAX);
        let g = gptq_weights(&w, &[4, 1, 3, 3], 0, &s, &m, NO_SATURATION_I8_MAX).unwrap();
        let (a, _) = compensated_weights(
            &w,
            &[4, 1, 3, 3],
            0,
            &s,
            &m,
            NO_SATURATION_I8_MAX,
            WeightRounding::AdaRound,
        )
        .unwrap();
        let h = adaround::damped(&m.second_moment(0).unwrap(), 9, GPTQ_DAMP);
        let err = |q: &[i8]| adaround::layer_error(&w, q, 4, 9, &h, &s);
        assert!(err(&a) <= err(&g) + 1e-15, "{} vs {}", err(&a), err(&g));
        assert_eq!(
            WeightRounding::parse("adaround"),
            Some(WeightRounding::AdaRound)
        );
    }

    #[test]
    fn gptq_weights_follow_conv_and_matmul_layouts() {
        // A 1x1 conv with 2 outputs over 2 inputs that are always equal: compensation moves
        // each row's error so the row sum is kept, and never worsens it.
        let w = [0.014f32, 0.014, -0.026, 0.016];
        let spec = PatchSpec::Conv2d {
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pads_begin: [0, 0],
            pads_end: [0, 0],
            groups: 1,
            cin_g: 2,
        };
        let mut m = Moments::new(spec);
        m.observe(&[1, 2, 1, 3], &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        let s = [0.01f32, 0.01];
        let q = gptq_weights(&w, &[2, 2, 1, 1], 0, &s, &m, 127).unwrap();
        let row_err = |q: &[i8], r: usize| {
            (0..2)
                .map(|i| w[r * 2 + i] as f64 - q[r * 2 + i] as f64 * 0.01)
                .sum::<f64>()
                .abs()
        };
        let nearest: Vec<i8> = w.iter().map(|&x| (x / 0.01).round() as i8).collect();
        assert!((row_err(&nearest, 0) - 0.008).abs() < 1e-6);
        assert!(row_err(&q, 0) < 0.005 && row_err(&q, 1) <= row_err(&nearest, 1) + 1e-9);
        // The same weights as a MatMul [K=2, N=2] (output channels on axis 1): transposed
        // in, transposed back out.
        let wt = [w[0], w[2], w[1], w[3]];
        let mut mm = Moments::new(PatchSpec::Rows { k: 2 });
        mm.observe(&[3, 2], &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
        let qt = gptq_weights(&wt, &[2, 2], 1, &s, &mm, 127).unwrap();
        assert_eq!(qt, vec![q[0], q[2], q[1], q[3]]);
        // Moments of another shape: no compensation.
        assert!(gptq_weights(&w, &[4, 1, 1, 1], 0, &[0.01; 4], &m, 127).is_none());
    }

    #[test]
    fn patch_spec_reads_conv_geometry() {
        let m = prepared();
        let p = plan_all(&m);
        match patch_spec(&m, &p.nodes[0]) {
            Some(PatchSpec::Conv2d { groups, cin_g, .. }) => assert_eq!((groups, cin_g), (1, 2)),
            other => panic!("{other:?}"),
        }
        for weights_only in [false, true] {
            assert!(WeightRounding::Auto.compensates(&Selection {
                per_channel: true,
                weights_only,
                ..Default::default()
            }));
        }
        assert!(!WeightRounding::Gptq.compensates(&Selection::default()));
    }
}
