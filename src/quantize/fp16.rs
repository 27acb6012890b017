//! `--mode fp16`: float16 weights and compute, float32 at the model's inputs and outputs.
//!
//! The conversion is one labelled [`Patch`] on the prepared model:
//!
//! - Every node of the main graph that computes on float32 tensors and is not on the block
//!   list is *converted*: its float32 data inputs and outputs become float16. Float32
//!   initializers read by converted nodes are stored as float16 (`raw_data`, little endian),
//!   values beyond ±65504 clamped and values too small for float16 flushed to zero, both
//!   counted in the warnings. A `Cast` to float inside a converted region becomes a `Cast`
//!   to float16; a `ConstantOfShape` or `Constant` with a float value gets a float16 value.
//! - Blocked nodes keep float32. Where a float16 tensor flows into a blocked node (or a
//!   float32 one into a converted node) a `Cast` is inserted, one per tensor and direction,
//!   shared by all its readers. The graph's inputs and outputs keep their names and float32
//!   type: a `Cast` to float16 follows each input, and a graph output produced in float16 is
//!   renamed `NAME_fp16` and cast back to `NAME`. Callers keep feeding and reading float32.
//!   A float32 initializer read by both kinds of node is kept and gets a float16 copy.
//! - Some inputs are not the op's data type and stay as they are: Resize `roi`/`scales`,
//!   Upsample `scales`, Dropout `ratio`, OneHot `indices`/`depth`. Index and shape inputs
//!   are integers and never touched. `Shape`, `Size`, `Cast` and `CastLike`'s first input
//!   accept any type and read whichever precision the tensor already has.
//! - `value_info` entries of tensors that became float16 are retyped, so ONNX Runtime does
//!   not reject the model for a stale float32 declaration.
//!
//! Which tensors are float is worked out from the graph's declared types and each op's
//! typing rule (`Cast` gives its `to`, `Shape` gives int64, comparisons give bool, most ops
//! give their first input's type). A node reading a tensor whose type cannot be worked out
//! is kept in float32: guessing wrong would make a model that does not load.
//!
//! The block list ([`DEFAULT_BLOCK_LIST`]) holds ops that overflow or lose too much in
//! float16, ops whose ONNX type constraints leave out float16 (the quantization ops' scales
//! among them), ops ONNX Runtime cannot run in float16 (MeanVarianceNormalization), and ops
//! whose output type is set by an attribute (nothing to gain). On top of it: ops outside the default ONNX domain
//! (their typing is unknown here), nodes with subgraphs (`If`, `Loop`, `Scan`: the node and
//! the outer tensors its bodies read stay float32; each body is converted on its own, by
//! the same rules, with float32 at its inputs and outputs: [`super::subgraph`]), and
//! `--exclude-ops` / `--exclude-nodes`.
//!
//! Trade-off: float16 halves the file and, on GPUs and NPUs with float16 units, the memory
//! traffic and compute time. ONNX Runtime's CPU provider has few float16 kernels; it wraps
//! the others in casts, so on a CPU an fp16 model is usually slower than fp32.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use half::f16;

use super::Rewrite;
use crate::error::{Error, Result};
use crate::model::attr::{self, NodeExt};
use crate::model::graph::{self, is_default_domain, GraphIndex};
use crate::model::patch::{constant_tensor, NodeRef, Patch, PatchOp, Position};
use crate::model::proto::{GraphProto, NodeProto, TensorProto};
use crate::model::{tensor_data, DataType, Model};
use crate::setting::Setting;

const FLOAT: i32 = DataType::Float as i32;
const FLOAT16: i32 = DataType::Float16 as i32;
const INT64: i32 = DataType::Int64 as i32;
const INT32: i32 = DataType::Int32 as i32;
const UINT8: i32 = DataType::Uint8 as i32;
const BOOL: i32 = DataType::Bool as i32;

/// Largest finite float16 value.
const F16_MAX: f32 = 65504.0;

/// Op types kept in float32 by default, with the reason.
pub const DEFAULT_BLOCK_LIST: &[(&str, &str)] = &[
    // Overflow or precision loss.
    (
        "Range",
        "counts in float; float16 holds integers exactly only up to 2048",
    ),
    (
        "CumSum",
        "a running sum overflows float16 or loses its low bits",
    ),
    (
        "ReduceSumSquare",
        "squares of activations overflow float16 before the sum",
    ),
    (
        "ReduceL2",
        "squares of activations overflow float16 before the root",
    ),
    ("ReduceProd", "products overflow float16"),
    ("ReduceLogSumExp", "exponentials overflow float16"),
    ("LpNormalization", "the norm's squares overflow float16"),
    (
        "TopK",
        "values that round to the same float16 reorder, changing the indices",
    ),
    (
        "RoiAlign",
        "box coordinates lose sub-pixel precision in float16 on large images",
    ),
    (
        "DFT",
        "sums over the whole signal lose precision in float16",
    ),
    (
        "STFT",
        "sums over the whole signal lose precision in float16",
    ),
    // Type constraints without float16.
    (
        "NonMaxSuppression",
        "boxes and scores must be float32 (ONNX type constraint)",
    ),
    ("Celu", "defined for float32 only (ONNX type constraint)"),
    // Quantization ops: their scales are float32 up to opset 18 (the backend tests
    // `dynamicquantizelinear*` and `qlinearconv` did not load once converted), and a
    // float16 scale would only lose precision in the step that sets the integer grid.
    (
        "QuantizeLinear",
        "its scale is float32 (float16 only from opset 19, and no gain)",
    ),
    (
        "DequantizeLinear",
        "its scale is float32 (float16 only from opset 19, and no gain)",
    ),
    (
        "DynamicQuantizeLinear",
        "defined for float32 only (ONNX type constraint)",
    ),
    (
        "QLinearConv",
        "its scales are float32 only (ONNX type constraint)",
    ),
    (
        "QLinearMatMul",
        "its scales are float32 before opset 21 (ONNX type constraint)",
    ),
    // ONNX Runtime has no kernel for it and expands its ONNX function, whose body adds a
    // float32 epsilon constant: the float16 graph fails to load (backend test `mvn`).
    (
        "MeanVarianceNormalization",
        "ONNX Runtime's expansion of it has a float32 constant",
    ),
    (
        "TfIdfVectorizer",
        "its output is float32 only (ONNX type constraint)",
    ),
    // Output type set by an attribute: nothing to gain.
    ("RandomNormal", "output type set by an attribute"),
    ("RandomUniform", "output type set by an attribute"),
    ("RandomNormalLike", "output type set by an attribute"),
    ("RandomUniformLike", "output type set by an attribute"),
    ("Bernoulli", "output type set by an attribute"),
    ("Multinomial", "output type set by an attribute"),
    ("EyeLike", "output type set by an attribute"),
    ("HannWindow", "output type set by an attribute"),
    ("HammingWindow", "output type set by an attribute"),
    ("BlackmanWindow", "output type set by an attribute"),
    ("MelWeightMatrix", "output type set by an attribute"),
    // Values that are not tensors: their element types are not tracked here.
    (
        "SequenceConstruct",
        "sequence values are not typed by this pass",
    ),
    (
        "SequenceInsert",
        "sequence values are not typed by this pass",
    ),
    ("SequenceAt", "sequence values are not typed by this pass"),
    (
        "SequenceEmpty",
        "sequence values are not typed by this pass",
    ),
    (
        "SequenceErase",
        "sequence values are not typed by this pass",
    ),
    (
        "SequenceLength",
        "sequence values are not typed by this pass",
    ),
    (
        "SplitToSequence",
        "sequence values are not typed by this pass",
    ),
    (
        "ConcatFromSequence",
        "sequence values are not typed by this pass",
    ),
    ("Optional", "optional values are not typed by this pass"),
    (
        "OptionalGetElement",
        "optional values are not typed by this pass",
    ),
    (
        "OptionalHasElement",
        "optional values are not typed by this pass",
    ),
];

/// fp16 settings.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Op types kept in float32 on top of the built-in block list.
    pub block_ops: HashSet<String>,
    /// Node names kept in float32.
    pub block_nodes: HashSet<String>,
}

/// How a node input relates to the op's float data type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// The op's data type: float16 in a converted node.
    Data,
    /// A float input that is not the data type: stays float32.
    Keep,
    /// Any type is accepted: read the tensor in whatever precision it has.
    Any,
}

fn input_slot(op: &str, i: usize) -> Slot {
    match (op, i) {
        ("Cast" | "CastLike" | "Shape" | "Size", 0) => Slot::Any,
        ("Resize", 1 | 2) | ("Upsample", 1) | ("Dropout", 1) | ("OneHot", 0 | 1) => Slot::Keep,
        _ => Slot::Data,
    }
}

fn output_slot(op: &str, i: usize) -> Slot {
    match (op, i) {
        // Mean and inverse standard deviation are typed by `stash_type` (float32).
        ("LayerNormalization", 1 | 2) => Slot::Keep,
        _ => Slot::Data,
    }
}

/// What happens to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fate {
    /// Computes in float16.
    Converted,
    /// Reads or writes float32 tensors and stays float32, for this reason.
    Blocked(String),
    /// Touches no float32 data (integer shape arithmetic, ...).
    Untouched,
}

/// Precision a reader wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    F16,
    F32,
    Any,
}

/// The precision a node wants for its input `i`.
fn want(f: &Fate, op: &str, i: usize) -> Want {
    match (f, input_slot(op, i)) {
        (Fate::Converted | Fate::Untouched, Slot::Any) => Want::Any,
        (Fate::Converted, Slot::Data) => Want::F16,
        _ => Want::F32,
    }
}

/// Convert the prepared model to fp16: its main graph, then the bodies of its `If`, `Loop`
/// and `Scan` nodes ([`super::subgraph`]), each with float32 at its boundary (the node
/// holding it stays float32 in the enclosing graph).
pub fn convert(prepared: &Model, origin: &Path, opts: &Options) -> Result<Rewrite> {
    let g = prepared.graph();
    if let Some(name) = float16_tensor(g) {
        return Err(Error::file(
            origin,
            format!("the model already holds float16 tensors ('{name}'); {} fp16 converts a float32 model", Setting::Mode),
        ));
    }
    // Every name anywhere in the model, and those each rewritten body adds: a body's new
    // tensors must not reuse a name of an enclosing or nested scope (ONNX Runtime refuses
    // the model: "Graph must be in single static assignment (SSA) form").
    let mut reserved = super::subgraph::all_names(g);
    let top = convert_graph(prepared, opts, &reserved)?;
    let mut model = top.model.clone().unwrap_or_else(|| prepared.clone());
    reserved.extend(super::subgraph::all_names(model.graph()));
    let nested = super::subgraph::nested(
        &model,
        super::subgraph::OuterNames::Inputs,
        &mut |sub: &Model| {
            let c = convert_graph(sub, opts, &reserved)?;
            if let Some(m) = &c.model {
                reserved.extend(super::subgraph::all_names(m.graph()));
            }
            Ok(c.model.map(|m| super::subgraph::Rewritten {
                model: m,
                nodes: c.converted,
            }))
        },
    )?;
    if top.converted.is_empty() && nested.is_empty() {
        let why = if top.blocked.is_empty() {
            "no node computes on float32 tensors".to_string()
        } else {
            format!(
                "every node computing on float32 is kept in float32 ({})",
                op_counts(top.blocked.iter().map(String::as_str))
            )
        };
        return Err(Error::file(
            origin,
            format!("nothing to convert to fp16: {why}"),
        ));
    }
    let mut labels: Vec<String> = top.label.into_iter().collect();
    if !nested.is_empty() {
        let p = nested.extend_patch(Patch::new(format!(
            "fp16 in subgraphs: {} nodes in {} subgraphs, float32 at their boundaries",
            nested.nodes, nested.graphs
        )));
        labels.push(model.apply(p)?.label);
    }
    let mut warnings = top.warnings;
    warnings.extend(nested.float_warning("fp16"));
    let total = g.node.len();
    let mut variant = format!("fp16: {} of {total} nodes in float16", top.converted.len());
    if !nested.is_empty() {
        variant.push_str(&format!(
            ", {} in {} subgraphs",
            nested.nodes, nested.graphs
        ));
    }
    Ok(Rewrite {
        model,
        labels,
        variant,
        count: top.converted.len() + nested.nodes,
        warnings,
    })
}

/// What [`convert_graph`] did to one graph.
struct GraphFp16 {
    /// The converted model (`None`: nothing converted).
    model: Option<Model>,
    /// The patch label.
    label: Option<String>,
    /// Keys of the converted nodes.
    converted: Vec<String>,
    /// Op types of the blocked nodes.
    blocked: Vec<String>,
    /// Kept-in-float32 reasons, clamped and flushed values.
    warnings: Vec<String>,
}

/// The fp16 conversion of `prepared`'s main graph alone (its subgraphs untouched).
fn convert_graph(
    prepared: &Model,
    opts: &Options,
    reserved: &HashSet<String>,
) -> Result<GraphFp16> {
    let g = prepared.graph();
    let types = elem_types(g);
    let huge = out_of_range_initializers(g);
    let fates: Vec<Fate> = g
        .node
        .iter()
        .map(|n| fate(n, &types, &huge, opts))
        .collect();
    let converted: Vec<String> = g
        .node
        .iter()
        .zip(&fates)
        .filter(|(_, f)| **f == Fate::Converted)
        .map(|(n, _)| super::graph::node_key(n))
        .collect();
    let blocked: Vec<String> = g
        .node
        .iter()
        .zip(&fates)
        .filter(|(_, f)| matches!(f, Fate::Blocked(_)))
        .map(|(n, _)| n.op_type.clone())
        .collect();
    if converted.is_empty() {
        return Ok(GraphFp16 {
            model: None,
            label: None,
            converted,
            blocked,
            warnings: Vec::new(),
        });
    }
    let emitted = emit(g, &types, &fates, reserved)?;
    let mut model = prepared.clone();
    model.apply(emitted.patch)?;
    // value_info is a declaration, not part of the graph's structure: a stale float32
    // declaration of a tensor now computed in float16 makes ONNX Runtime refuse the model.
    for vi in &mut model.graph_mut().value_info {
        if emitted.now_f16.contains(&vi.name) {
            set_elem_type(vi, FLOAT16);
        }
    }
    let mut warnings = Vec::new();
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (n, f) in g.node.iter().zip(&fates) {
        if let Fate::Blocked(why) = f {
            by_reason.entry(why).or_default().push(&n.op_type);
        }
    }
    for (why, ops) in &by_reason {
        warnings.push(format!(
            "kept in float32 ({why}): {}",
            op_counts(ops.iter().copied())
        ));
    }
    if emitted.clamped > 0 {
        warnings.push(format!(
            "{} weight values beyond the float16 range were clamped to ±65504",
            emitted.clamped
        ));
    }
    if emitted.flushed > 0 {
        warnings.push(format!(
            "{} nonzero weight values below 3e-8 (too small for float16) became zero",
            emitted.flushed
        ));
    }
    Ok(GraphFp16 {
        model: Some(model),
        label: Some(emitted.label),
        converted,
        blocked,
        warnings,
    })
}

/// `Conv x3, Add x2`, in first-seen order.
fn op_counts<'a>(ops: impl Iterator<Item = &'a str>) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for op in ops {
        let c = counts.entry(op).or_insert(0);
        if *c == 0 {
            order.push(op);
        }
        *c += 1;
    }
    order
        .iter()
        .map(|op| format!("{op} x{}", counts[op]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name of a float16 tensor anywhere in the model (declared or stored), if any.
fn float16_tensor(g: &GraphProto) -> Option<String> {
    let mut found = None;
    crate::model::for_each_graph(g, &mut |sub| {
        if found.is_some() {
            return;
        }
        let declared = sub
            .input
            .iter()
            .chain(&sub.output)
            .chain(&sub.value_info)
            .find(|vi| graph::elem_type(vi) == Some(FLOAT16))
            .map(|vi| vi.name.clone());
        let stored = sub
            .initializer
            .iter()
            .find(|t| t.data_type == Some(FLOAT16))
            .map(|t| t.name.clone());
        let cast = sub
            .node
            .iter()
            .find(|n| {
                n.op_type == "Cast" && n.attr_opt_i("to").ok().flatten() == Some(FLOAT16 as i64)
            })
            .map(|n| n.output.first().cloned().unwrap_or_default());
        found = declared.or(stored).or(cast);
    });
    found
}

/// Element type of every tensor of the main graph that can be worked out: declared types,
/// initializer types, then each node's typing rule in topological order.
pub(crate) fn elem_types(g: &GraphProto) -> HashMap<String, i32> {
    elem_types_in(g, &HashMap::new())
}

/// [`elem_types`] of a graph that may read names of an enclosing scope (`outer`).
fn elem_types_in(g: &GraphProto, outer: &HashMap<String, i32>) -> HashMap<String, i32> {
    let mut ty: HashMap<String, i32> = outer.clone();
    let declared: HashMap<&str, i32> = g
        .value_info
        .iter()
        .chain(&g.output)
        .filter_map(|vi| Some((vi.name.as_str(), graph::elem_type(vi)?)))
        .collect();
    for vi in &g.input {
        if let Some(t) = graph::elem_type(vi) {
            ty.insert(vi.name.clone(), t);
        }
    }
    for t in &g.initializer {
        if let Some(dt) = t.data_type {
            ty.insert(t.name.clone(), dt);
        }
    }
    let order = GraphIndex::new(g)
        .topo_order()
        .unwrap_or_else(|_| (0..g.node.len()).collect());
    for i in order {
        let n = &g.node[i];
        let outs = output_types(n, &ty);
        for (k, o) in n.output.iter().enumerate() {
            if o.is_empty() {
                continue;
            }
            let t = outs
                .get(k)
                .copied()
                .flatten()
                .or_else(|| declared.get(o.as_str()).copied());
            if let Some(t) = t {
                ty.insert(o.clone(), t);
            }
        }
    }
    ty
}

/// The element types of a node's outputs by the op's typing rule (`None`: unknown).
fn output_types(n: &NodeProto, ty: &HashMap<String, i32>) -> Vec<Option<i32>> {
    let input = |i: usize| {
        n.input
            .get(i)
            .filter(|s| !s.is_empty())
            .and_then(|s| ty.get(s).copied())
    };
    let dtype_attr = |name: &str| n.attr_opt_i(name).ok().flatten().map(|v| v as i32);
    // A body's outputs are often declared without a type (the expanded AffineGrid backend
    // tests: three Adds after an `If` stayed float32 as "type unknown"): then the body's
    // own nodes say, typed with the enclosing scope's names.
    let subgraph = |name: &str, skip: usize| -> Vec<Option<i32>> {
        let Some(body) = n.attr_opt_g(name).ok().flatten() else {
            return Vec::new();
        };
        let declared: Vec<Option<i32>> = body
            .output
            .iter()
            .skip(skip)
            .map(|o| graph::elem_type(o).filter(|&t| t != 0))
            .collect();
        if declared.iter().all(Option::is_some) {
            return declared;
        }
        let inner = elem_types_in(body, ty);
        body.output
            .iter()
            .skip(skip)
            .zip(declared)
            .map(|(o, d)| d.or_else(|| inner.get(&o.name).copied()))
            .collect()
    };
    if !is_default_domain(&n.domain) {
        return Vec::new();
    }
    let all = |t: Option<i32>| vec![t; n.output.len()];
    match n.op_type.as_str() {
        "Cast" => all(dtype_attr("to")),
        "CastLike" => all(input(1)),
        "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" | "NonMaxSuppression" => {
            all(Some(INT64))
        }
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or"
        | "Xor" | "IsNaN" | "IsInf" => all(Some(BOOL)),
        "Constant" => all(constant_tensor(n).ok().and_then(|t| t.data_type)),
        "ConstantOfShape" => all(Some(
            n.attr_opt_t("value")
                .ok()
                .flatten()
                .and_then(|t| t.data_type)
                .unwrap_or(FLOAT),
        )),
        "RandomNormal" | "RandomUniform" => all(dtype_attr("dtype").or(Some(FLOAT))),
        "RandomNormalLike" | "RandomUniformLike" | "EyeLike" | "Bernoulli" => {
            all(dtype_attr("dtype").or(input(0)))
        }
        "Multinomial" => all(dtype_attr("dtype").or(Some(INT32))),
        "HannWindow" | "HammingWindow" | "BlackmanWindow" | "MelWeightMatrix" => {
            all(dtype_attr("output_datatype").or(Some(FLOAT)))
        }
        "TfIdfVectorizer" => all(Some(FLOAT)),
        "TopK" | "MaxPool" => vec![input(0), Some(INT64)],
        "Unique" => vec![input(0), Some(INT64), Some(INT64), Some(INT64)],
        "Dropout" => vec![input(0), Some(BOOL)],
        "LayerNormalization" => vec![input(0), Some(FLOAT), Some(FLOAT)],
        "Where" => all(input(1)),
        "OneHot" => all(input(2)),
        "QuantizeLinear" => all(input(2).or(Some(UINT8))),
        "DequantizeLinear" => all(input(1)),
        "DynamicQuantizeLinear" => vec![Some(UINT8), Some(FLOAT), Some(UINT8)],
        "MatMulInteger" | "ConvInteger" => all(Some(INT32)),
        "If" => subgraph("then_branch", 0),
        "Loop" => subgraph("body", 1),
        "Scan" => subgraph("body", 0),
        op if op.starts_with("Sequence") || op.starts_with("Optional") => Vec::new(),
        "SplitToSequence" | "ConcatFromSequence" => Vec::new(),
        _ => all(n
            .input
            .iter()
            .filter(|s| !s.is_empty())
            .find_map(|s| ty.get(s).copied())),
    }
}

fn has_subgraph(n: &NodeProto) -> bool {
    n.attribute
        .iter()
        .any(|a| a.g.is_some() || !a.graphs.is_empty())
}

/// Names a node's subgraphs read from the enclosing graph.
fn outer_reads(n: &NodeProto) -> Vec<String> {
    graph::node_uses(n)
        .into_iter()
        .filter(|u| !n.input.contains(u))
        .collect()
}

/// Float32 initializers holding finite values beyond the float16 range.
fn out_of_range_initializers(g: &GraphProto) -> HashSet<String> {
    g.initializer
        .iter()
        .filter(|t| t.data_type == Some(FLOAT))
        .filter(|t| {
            tensor_data::to_f32(t)
                .is_ok_and(|v| v.iter().any(|x| x.is_finite() && x.abs() > F16_MAX))
        })
        .map(|t| t.name.clone())
        .collect()
}

fn fate(
    n: &NodeProto,
    types: &HashMap<String, i32>,
    huge: &HashSet<String>,
    opts: &Options,
) -> Fate {
    let is_float = |t: &String| types.get(t) == Some(&FLOAT);
    let data_inputs = n
        .input
        .iter()
        .enumerate()
        .filter(|(i, t)| !t.is_empty() && input_slot(&n.op_type, *i) == Slot::Data);
    let float_in = data_inputs.clone().any(|(_, t)| is_float(t));
    let float_out = n.output.iter().any(is_float);
    let float_outer = outer_reads(n).iter().any(is_float);
    if !(float_in || float_out || float_outer) {
        return Fate::Untouched;
    }
    let blocked = |why: &str| Fate::Blocked(why.to_string());
    if !is_default_domain(&n.domain) {
        return blocked("not a default-domain ONNX op");
    }
    if has_subgraph(n) {
        return blocked("has a subgraph, converted on its own with float32 at its boundary");
    }
    if !n.name.is_empty() && opts.block_nodes.contains(&n.name) {
        return blocked(&Setting::ExcludeNodes.to_string());
    }
    if opts.block_ops.contains(&n.op_type) {
        return blocked(&Setting::ExcludeOps.to_string());
    }
    if let Some((_, why)) = DEFAULT_BLOCK_LIST.iter().find(|(op, _)| *op == n.op_type) {
        return Fate::Blocked(format!("block list: {why}"));
    }
    // Clamping a large mask value (-1e9) to -65504 keeps its meaning; clamping a running
    // variance does not. PP-OCRv4 det has a variance of 4.8e7: preparation folds that one
    // into its Conv, an unfolded one stays float32.
    if n.op_type == "BatchNormalization" && n.input.iter().skip(1).any(|t| huge.contains(t)) {
        return blocked("statistics beyond the float16 range");
    }
    let unknown_in = data_inputs.clone().any(|(_, t)| !types.contains_key(t));
    let unknown_out = n
        .output
        .iter()
        .any(|o| !o.is_empty() && !types.contains_key(o));
    if unknown_in || unknown_out {
        return blocked("element type unknown");
    }
    Fate::Converted
}

/// The patch and what it did.
struct Emitted {
    patch: Patch,
    label: String,
    /// Tensors that keep their name and become float16 (for value_info).
    now_f16: HashSet<String>,
    clamped: usize,
    flushed: usize,
}

/// The two names of a float tensor: its float16 and float32 versions.
#[derive(Clone, Debug, Default)]
struct Names {
    f16: Option<String>,
    f32: Option<String>,
}

/// Float16 values of float32 data, clamped to the float16 range; counts clamped and
/// flushed-to-zero values.
fn to_f16(data: &[f32], clamped: &mut usize, flushed: &mut usize) -> Vec<f16> {
    data.iter()
        .map(|&v| {
            let c = if v.is_finite() && v.abs() > F16_MAX {
                *clamped += 1;
                v.clamp(-F16_MAX, F16_MAX)
            } else {
                v
            };
            let h = f16::from_f32(c);
            if c != 0.0 && c.is_finite() && h.to_f32() == 0.0 {
                *flushed += 1;
            }
            h
        })
        .collect()
}

fn tensor_to_f16(
    t: &TensorProto,
    name: &str,
    clamped: &mut usize,
    flushed: &mut usize,
) -> Result<TensorProto> {
    let v = tensor_data::to_f32(t)?;
    tensor_data::from_f16(name, &t.dims, &to_f16(&v, clamped, flushed))
}

fn set_elem_type(vi: &mut crate::model::ValueInfoProto, elem: i32) {
    use crate::model::proto::type_proto::Value;
    if let Some(Value::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.elem_type = Some(elem);
    }
}

/// `reserved`: names the new tensors must not take (those of enclosing and nested graphs:
/// a subgraph may not reuse a name of its scope).
fn emit(
    g: &GraphProto,
    types: &HashMap<String, i32>,
    fates: &[Fate],
    reserved: &HashSet<String>,
) -> Result<Emitted> {
    let is_float = |t: &str| types.get(t) == Some(&FLOAT);
    let graph_inputs: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
    let inits: HashMap<&str, &TensorProto> = g
        .initializer
        .iter()
        .filter(|t| !graph_inputs.contains(t.name.as_str()))
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut taken: HashSet<String> = reserved.clone();
    taken.extend(g.input.iter().map(|v| v.name.clone()));
    taken.extend(g.output.iter().map(|v| v.name.clone()));
    taken.extend(g.initializer.iter().map(|t| t.name.clone()));
    taken.extend(g.value_info.iter().map(|v| v.name.clone()));
    for n in &g.node {
        taken.extend(n.output.iter().cloned());
        taken.extend(graph::node_uses(n));
        if !n.name.is_empty() {
            taken.insert(n.name.clone());
        }
    }
    let mut fresh = |base: &str| -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while taken.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        taken.insert(name.clone());
        name
    };

    // Which precision each float tensor is produced in (`true`: float16).
    let mut produced_f16: HashMap<&str, bool> = HashMap::new();
    for (n, f) in g.node.iter().zip(fates) {
        for (k, o) in n.output.iter().enumerate() {
            if !o.is_empty() && is_float(o) {
                let f16 = *f == Fate::Converted && output_slot(&n.op_type, k) == Slot::Data;
                produced_f16.insert(o, f16);
            }
        }
    }
    // What every reader wants.
    let mut wants: HashMap<&str, Vec<Want>> = HashMap::new();
    // Tensors whose float32 version must keep the original name.
    let mut pinned: HashSet<&str> = HashSet::new();
    for (n, f) in g.node.iter().zip(fates) {
        for (i, t) in n.input.iter().enumerate() {
            if t.is_empty() || !is_float(t) {
                continue;
            }
            wants.entry(t).or_default().push(want(f, &n.op_type, i));
        }
    }
    for n in &g.node {
        for t in outer_reads(n) {
            if let Some((k, _)) = types.get_key_value(&t) {
                if is_float(k) {
                    wants.entry(k.as_str()).or_default().push(Want::F32);
                    pinned.insert(k.as_str());
                }
            }
        }
    }
    for o in &g.output {
        if is_float(&o.name) {
            wants.entry(o.name.as_str()).or_default().push(Want::F32);
            pinned.insert(o.name.as_str());
        }
    }

    let mut patch_ops: Vec<PatchOp> = Vec::new();
    let mut casts: Vec<NodeProto> = Vec::new();
    let mut names: HashMap<&str, Names> = HashMap::new();
    let mut now_f16: HashSet<String> = HashSet::new();
    let mut renamed_outputs: HashMap<&str, String> = HashMap::new();
    let (mut clamped, mut flushed) = (0usize, 0usize);
    let mut inits_converted = 0usize;
    // Deterministic order: tensors by first appearance.
    let mut order: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for n in &g.node {
        for t in n.input.iter().chain(&n.output) {
            if wants.contains_key(t.as_str()) && seen.insert(t.as_str()) {
                order.push(t.as_str());
            }
        }
    }
    for o in &g.output {
        if wants.contains_key(o.name.as_str()) && seen.insert(o.name.as_str()) {
            order.push(o.name.as_str());
        }
    }
    let mut rest: Vec<&str> = wants
        .keys()
        .copied()
        .filter(|t| !seen.contains(t))
        .collect();
    rest.sort();
    order.extend(rest);

    for t in order {
        let w = &wants[t];
        let need16 = w.contains(&Want::F16);
        let need32 = w.contains(&Want::F32);
        let mut nm = Names::default();
        if let Some(init) = inits.get(t) {
            if need16 && !need32 {
                patch_ops.push(PatchOp::ReplaceInitializer(Box::new(tensor_to_f16(
                    init,
                    t,
                    &mut clamped,
                    &mut flushed,
                )?)));
                inits_converted += 1;
                now_f16.insert(t.to_string());
                nm.f16 = Some(t.to_string());
            } else {
                nm.f32 = Some(t.to_string());
                if need16 {
                    let copy = fresh(&format!("{t}_fp16"));
                    patch_ops.push(PatchOp::AddInitializer(Box::new(tensor_to_f16(
                        init,
                        &copy,
                        &mut clamped,
                        &mut flushed,
                    )?)));
                    inits_converted += 1;
                    nm.f16 = Some(copy);
                }
            }
        } else if produced_f16.get(t) == Some(&true) {
            if pinned.contains(t) {
                let n16 = fresh(&format!("{t}_fp16"));
                renamed_outputs.insert(t, n16.clone());
                casts.push(cast(fresh(&format!("{t}_cast")), &n16, t, FLOAT));
                nm.f16 = Some(n16);
                nm.f32 = Some(t.to_string());
            } else {
                now_f16.insert(t.to_string());
                nm.f16 = Some(t.to_string());
                if need32 {
                    let n32 = fresh(&format!("{t}_fp32"));
                    casts.push(cast(fresh(&format!("{n32}_cast")), t, &n32, FLOAT));
                    nm.f32 = Some(n32);
                }
            }
        } else {
            // Graph inputs and outputs of float32 nodes.
            nm.f32 = Some(t.to_string());
            if need16 {
                let n16 = fresh(&format!("{t}_fp16"));
                casts.push(cast(fresh(&format!("{n16}_cast")), t, &n16, FLOAT16));
                nm.f16 = Some(n16);
            }
        }
        names.insert(t, nm);
    }

    // Rewire readers, retype converted Cast/Constant/ConstantOfShape, rename outputs.
    let name_counts: HashMap<&str, usize> = g.node.iter().fold(HashMap::new(), |mut m, n| {
        *m.entry(n.name.as_str()).or_insert(0) += 1;
        m
    });
    let mut output_renames: Vec<PatchOp> = Vec::new();
    for (n, f) in g.node.iter().zip(fates) {
        let first_out = n.output.iter().find(|o| !o.is_empty());
        let node_ref = if !n.name.is_empty() && name_counts[n.name.as_str()] == 1 {
            NodeRef::Name(n.name.clone())
        } else if let Some(o) = first_out {
            NodeRef::Output(o.clone())
        } else {
            continue;
        };
        for (i, t) in n.input.iter().enumerate() {
            let Some(nm) = names.get(t.as_str()) else {
                continue;
            };
            // `t` itself always exists afterwards (float32, or float16 in place), so a reader
            // taking any type keeps it.
            let want_name = match want(f, &n.op_type, i) {
                Want::F16 => nm.f16.as_ref(),
                Want::F32 => nm.f32.as_ref(),
                Want::Any => None,
            };
            if let Some(want_name) = want_name.filter(|w| *w != t) {
                patch_ops.push(PatchOp::SetNodeInput {
                    node: node_ref.clone(),
                    index: i,
                    name: want_name.clone(),
                });
            }
        }
        if *f == Fate::Converted {
            retype_attributes(n, &node_ref, &mut patch_ops, &mut clamped, &mut flushed)?;
        }
        // Rename the node's outputs, the one identifying it last.
        let mut renames: Vec<(usize, &String)> = n
            .output
            .iter()
            .enumerate()
            .filter_map(|(k, o)| renamed_outputs.get(o.as_str()).map(|r| (k, r)))
            .collect();
        renames.sort_by_key(|(k, _)| matches!(&node_ref, NodeRef::Output(o) if *o == n.output[*k]));
        for (k, r) in renames {
            output_renames.push(PatchOp::SetNodeOutput {
                node: node_ref.clone(),
                index: k,
                name: r.clone(),
            });
        }
    }
    patch_ops.extend(output_renames);
    let cast_count = casts.len();
    if !casts.is_empty() {
        patch_ops.push(PatchOp::AddNodes {
            nodes: casts,
            position: Position::Topological,
        });
    }

    let converted = fates.iter().filter(|f| **f == Fate::Converted).count();
    let kept: Vec<&str> = g
        .node
        .iter()
        .zip(fates)
        .filter(|(_, f)| matches!(f, Fate::Blocked(_)))
        .map(|(n, _)| n.op_type.as_str())
        .collect();
    let mut kept_ops: Vec<&str> = kept.clone();
    kept_ops.sort();
    kept_ops.dedup();
    let label = format!(
        "fp16: {converted} nodes to float16, {} kept float32{}, {inits_converted} initializers to float16, {cast_count} casts",
        kept.len(),
        if kept_ops.is_empty() {
            String::new()
        } else {
            format!(" ({})", kept_ops.join(", "))
        }
    );
    let mut patch = Patch::new(label.clone());
    patch.ops = patch_ops;
    Ok(Emitted {
        patch,
        label,
        now_f16,
        clamped,
        flushed,
    })
}

fn cast(name: String, from: &str, to: &str, elem: i32) -> NodeProto {
    NodeProto {
        name,
        op_type: "Cast".into(),
        input: vec![from.to_string()],
        output: vec![to.to_string()],
        attribute: vec![attr::int("to", elem as i64)],
        ..Default::default()
    }
}

/// A converted node whose output type comes from an attribute gets a float16 one.
fn retype_attributes(
    n: &NodeProto,
    node_ref: &NodeRef,
    ops: &mut Vec<PatchOp>,
    clamped: &mut usize,
    flushed: &mut usize,
) -> Result<()> {
    let set = |ops: &mut Vec<PatchOp>, a| {
        ops.push(PatchOp::SetAttribute {
            node: node_ref.clone(),
            attribute: Box::new(a),
        })
    };
    match n.op_type.as_str() {
        "Cast" if n.attr_opt_i("to")? == Some(FLOAT as i64) => {
            set(ops, attr::int("to", FLOAT16 as i64));
        }
        "ConstantOfShape" => {
            let t = match n.attr_opt_t("value")? {
                Some(t) => t.clone(),
                None => tensor_data::from_f32("", &[1], &[0.0])?,
            };
            if t.data_type == Some(FLOAT) {
                set(
                    ops,
                    attr::tensor("value", tensor_to_f16(&t, &t.name, clamped, flushed)?),
                );
            }
        }
        "Constant" => {
            let t = constant_tensor(n)?;
            if t.data_type == Some(FLOAT) {
                for old in ["value_float", "value_floats"] {
                    if n.attr(old).is_some() {
                        ops.push(PatchOp::RemoveAttribute {
                            node: node_ref.clone(),
                            name: old.into(),
                        });
                    }
                }
                set(
                    ops,
                    attr::tensor("value", tensor_to_f16(&t, &t.name, clamped, flushed)?),
                );
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::{self, fixed, GraphBuilder, WeightStorage};

    fn convert_ok(m: &Model, opts: &Options) -> Rewrite {
        let r = convert(m, Path::new("m.onnx"), opts).unwrap();
        assert_consistent(r.model.graph());
        r
    }

    fn refusal(m: &Model, opts: &Options) -> Error {
        match convert(m, Path::new("m.onnx"), opts) {
            Ok(r) => panic!("converted: {}", r.variant),
            Err(e) => e,
        }
    }

    fn block_ops(ops: &[&str]) -> Options {
        Options {
            block_ops: ops.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// Every node's data inputs agree on their float type: what ONNX Runtime checks when
    /// it loads the model (a float16 tensor into a float32 slot is a load error).
    fn assert_consistent(g: &GraphProto) {
        let ty = elem_types(g);
        for n in &g.node {
            let floats: Vec<(String, i32)> = n
                .input
                .iter()
                .enumerate()
                .filter(|(i, t)| !t.is_empty() && input_slot(&n.op_type, *i) == Slot::Data)
                .filter_map(|(_, t)| Some((t.clone(), *ty.get(t)?)))
                .filter(|(_, t)| *t == FLOAT || *t == FLOAT16)
                .collect();
            assert!(
                floats.windows(2).all(|w| w[0].1 == w[1].1),
                "{} ({}) mixes float types: {floats:?}",
                n.name,
                n.op_type
            );
        }
        for o in &g.output {
            assert_eq!(ty.get(&o.name), Some(&FLOAT), "output {}", o.name);
        }
    }

    fn casts(g: &GraphProto) -> Vec<(&str, &str, i64)> {
        g.node
            .iter()
            .filter(|n| n.op_type == "Cast")
            .map(|n| {
                (
                    n.input[0].as_str(),
                    n.output[0].as_str(),
                    n.attr_i("to").unwrap(),
                )
            })
            .collect()
    }

    fn node<'a>(g: &'a GraphProto, op: &str) -> &'a NodeProto {
        g.node.iter().find(|n| n.op_type == op).unwrap()
    }

    fn init_type(g: &GraphProto, name: &str) -> Option<i32> {
        g.initializer
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.data_type)
    }

    #[test]
    fn converts_weights_and_compute_with_casts_only_at_the_boundary() {
        let m = builder::conv_net(1);
        let r = convert_ok(&m, &Options::default());
        let g = r.model.graph();
        assert!(g.initializer.iter().all(|t| t.data_type == Some(FLOAT16)));
        assert_eq!(graph::elem_type(&g.input[0]), Some(FLOAT));
        assert_eq!(graph::elem_type(&g.output[0]), Some(FLOAT));
        assert_eq!(casts(g), vec![("x", "x_fp16", 10), ("y_fp16", "y", 1)]);
        assert_eq!(r.variant, "fp16: 8 of 8 nodes in float16");
        assert_eq!(r.count, 8);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert!(r.labels[0].starts_with("fp16: 8 nodes to float16, 0 kept float32"));
        let w = g
            .initializer
            .iter()
            .find(|t| t.name == "conv1.weight")
            .unwrap();
        let orig = m
            .graph()
            .initializer
            .iter()
            .find(|t| t.name == "conv1.weight")
            .unwrap();
        let (a, b) = (
            tensor_data::to_f32(w).unwrap(),
            tensor_data::to_f32(orig).unwrap(),
        );
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| (x - y).abs() <= y.abs() / 1024.0));
    }

    #[test]
    fn blocked_op_keeps_float32_with_one_cast_each_way() {
        let r = convert_ok(&builder::conv_net(1), &block_ops(&["MaxPool"]));
        let g = r.model.graph();
        let pool = node(g, "MaxPool");
        let relu = pool.input[0].trim_end_matches("_fp32");
        assert_eq!(pool.input[0], format!("{relu}_fp32"));
        let c = casts(g);
        assert!(c.contains(&(relu, pool.input[0].as_str(), 1)));
        let pooled = pool.output[0].as_str();
        let back = c.iter().find(|(from, _, _)| *from == pooled).unwrap();
        assert_eq!(back.2, 10);
        let conv2 = g.node.iter().find(|n| n.name == "conv5").unwrap();
        assert_eq!(conv2.input[0], back.1);
        assert_eq!(c.len(), 4);
        assert_eq!(r.variant, "fp16: 7 of 8 nodes in float16");
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("excluded op types") && w.contains("MaxPool x1")));
    }

    #[test]
    fn resize_scales_stay_float32() {
        let mut b = GraphBuilder::new("resize", 1, WeightStorage::Initializer);
        let x = b.input("x", DataType::Float, &fixed(&[1, 2, 4, 4]));
        let w = b.weight("w", &[2, 2, 1, 1], -1.0, 1.0);
        let c = b.op("Conv", &[&x, &w], vec![]);
        let scales =
            b.constant(tensor_data::from_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0]).unwrap());
        let y = b.op(
            "Resize",
            &[&c, "", &scales],
            vec![attr::string("mode", "nearest")],
        );
        b.rename_output(&y, "y");
        b.output("y", DataType::Float, &fixed(&[1, 2, 8, 8]));
        let r = convert_ok(&b.into_model(), &Options::default());
        let g = r.model.graph();
        assert_eq!(init_type(g, "scales"), Some(FLOAT));
        assert_eq!(init_type(g, "w"), Some(FLOAT16));
        let resize = node(g, "Resize");
        assert_eq!(
            resize.input,
            vec![c.clone(), String::new(), "scales".into()]
        );
        assert_eq!(casts(g).len(), 2);
    }

    #[test]
    fn cast_to_float_becomes_cast_to_float16_and_shape_reads_either() {
        let mut b = GraphBuilder::new("cast", 1, WeightStorage::Initializer);
        let x = b.input("x", DataType::Float, &fixed(&[4]));
        let r = b.op("Relu", &[&x], vec![]);
        let s = b.op("Shape", &[&r], vec![]);
        let c = b.op("Cast", &[&s], vec![attr::int("to", 1)]);
        let y = b.op("Add", &[&r, &c], vec![]);
        b.rename_output(&y, "y");
        b.output("y", DataType::Float, &fixed(&[4]));
        let out = convert_ok(&b.into_model(), &Options::default());
        let g = out.model.graph();
        let cast = g.node.iter().find(|n| n.name == "cast3").unwrap();
        assert_eq!(cast.attr_i("to").unwrap(), 10);
        assert_eq!(node(g, "Shape").input[0], r);
        assert_eq!(node(g, "Add").input, vec![r.clone(), c.clone()]);
        assert_eq!(casts(g).len(), 3, "x in, y out, and the model's own Cast");
        assert_eq!(out.variant, "fp16: 3 of 4 nodes in float16");
    }

    #[test]
    fn subgraph_reads_get_the_float32_tensor_under_its_own_name() {
        let r = convert_ok(&builder::if_model(1), &Options::default());
        let g = r.model.graph();
        let mul = node(g, "Mul");
        assert_eq!(mul.output[0], "xw_fp16");
        assert!(casts(g).contains(&("xw_fp16", "xw", 1)));
        assert_eq!(node(g, "If").input[0], "cond");
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("has a subgraph") && w.contains("If x1")));
    }

    /// The expanded AffineGrid backend tests declare their `If` branches' outputs without a
    /// type; the branch bodies' nodes type them, so the nodes after the `If` convert.
    #[test]
    fn untyped_subgraph_outputs_are_typed_from_the_body() {
        let mut m = builder::if_model(1);
        let g = m.graph_mut();
        let if_node = g.node.iter_mut().find(|n| n.op_type == "If").unwrap();
        if_node.output[0] = "t".into();
        for a in &mut if_node.attribute {
            for o in &mut a.g.as_mut().unwrap().output {
                o.r#type = None;
            }
        }
        g.node
            .push(builder::node("add", "Add", &["t", "xw"], &["y"], vec![]));
        assert_eq!(elem_types(m.graph()).get("t"), Some(&FLOAT));
        let r = convert_ok(&m, &Options::default());
        // The branches (Relu, Neg) convert on their own, float32 at their boundary.
        assert_eq!(r.variant, "fp16: 2 of 3 nodes in float16, 2 in 2 subgraphs");
        assert_eq!(
            node(r.model.graph(), "Add").input,
            vec!["t_fp16", "xw_fp16"]
        );
    }

    #[test]
    fn initializer_shared_with_a_blocked_node_gets_a_float16_copy() {
        let mut b = GraphBuilder::new("shared", 1, WeightStorage::Initializer);
        let x = b.input("x", DataType::Float, &fixed(&[4]));
        let w = b.weight("w", &[4], -1.0, 1.0);
        b.push(builder::node("mul", "Mul", &[&x, &w], &["a"], vec![]));
        b.push(builder::node("add", "Add", &["a", &w], &["y"], vec![]));
        b.output("y", DataType::Float, &fixed(&[4]));
        let opts = Options {
            block_nodes: ["add".to_string()].into(),
            ..Default::default()
        };
        let r = convert_ok(&b.into_model(), &opts);
        let g = r.model.graph();
        assert_eq!(init_type(g, "w"), Some(FLOAT));
        assert_eq!(init_type(g, "w_fp16"), Some(FLOAT16));
        assert_eq!(node(g, "Mul").input, vec!["x_fp16", "w_fp16"]);
        assert_eq!(node(g, "Add").input, vec!["a_fp32", "w"]);
        assert!(r.warnings.iter().any(|w| w.contains("excluded nodes")));
    }

    #[test]
    fn out_of_range_weights_are_clamped_and_tiny_ones_flushed_with_warnings() {
        let mut b = GraphBuilder::new("range", 1, WeightStorage::Initializer);
        let x = b.input("x", DataType::Float, &fixed(&[4]));
        let w = b.constant(tensor_data::from_f32("w", &[4], &[1e6, -1e9, 1e-9, 0.5]).unwrap());
        let y = b.op("Mul", &[&x, &w], vec![]);
        b.rename_output(&y, "y");
        b.output("y", DataType::Float, &fixed(&[4]));
        let r = convert_ok(&b.into_model(), &Options::default());
        let t = r
            .model
            .graph()
            .initializer
            .iter()
            .find(|t| t.name == "w")
            .unwrap();
        assert_eq!(
            tensor_data::to_f32(t).unwrap(),
            vec![65504.0, -65504.0, 0.0, 0.5]
        );
        assert!(r
            .warnings
            .iter()
            .any(|w| w.starts_with("2 weight values beyond")));
        assert!(r
            .warnings
            .iter()
            .any(|w| w.starts_with("1 nonzero weight values below")));
    }

    #[test]
    fn batchnorm_with_statistics_beyond_float16_stays_float32() {
        let mut m = builder::conv_net(1);
        let var = m
            .graph_mut()
            .initializer
            .iter_mut()
            .find(|t| t.name == "bn1.var")
            .unwrap();
        *var = tensor_data::from_f32("bn1.var", &[8], &[4.8e7; 8]).unwrap();
        let r = convert_ok(&m, &Options::default());
        let g = r.model.graph();
        assert_eq!(init_type(g, "bn1.var"), Some(FLOAT));
        assert!(node(g, "BatchNormalization").input[0].ends_with("_fp32"));
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("statistics beyond") && w.contains("BatchNormalization x1")));
        assert!(!r.warnings.iter().any(|w| w.contains("clamped")));
    }

    #[test]
    fn constant_nodes_get_float16_values() {
        let r = convert_ok(&builder::constant_weights(1), &Options::default());
        let g = r.model.graph();
        for n in g.node.iter().filter(|n| n.op_type == "Constant") {
            assert_eq!(
                n.attr_t("value").unwrap().data_type,
                Some(FLOAT16),
                "{}",
                n.name
            );
        }
        assert_eq!(casts(g).len(), 2);
    }

    #[test]
    fn value_info_of_converted_tensors_is_retyped() {
        let mut m = builder::conv_net(1);
        let relu = node(m.graph(), "Relu").output[0].clone();
        m.graph_mut().value_info.push(builder::value_info(
            &relu,
            DataType::Float,
            &fixed(&[1, 8, 16, 16]),
        ));
        let r = convert_ok(&m, &Options::default());
        let vi = &r.model.graph().value_info[0];
        assert_eq!(
            (vi.name.as_str(), graph::elem_type(vi)),
            (relu.as_str(), Some(FLOAT16))
        );
    }

    #[test]
    fn float16_model_is_refused() {
        let mut m = builder::conv_net(1);
        let w = &mut m.graph_mut().initializer[0];
        *w = tensor_to_f16(w, &w.name.clone(), &mut 0, &mut 0).unwrap();
        let e = refusal(&m, &Options::default());
        assert!(
            e.to_string()
                .contains("already holds float16 tensors ('conv1.weight')"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
    }

    /// Backend tests `dynamicquantizelinear*`, `qlinearconv` and `mvn` did not load in ONNX
    /// Runtime once these ops were fed float16: they must stay float32 behind a cast.
    #[test]
    fn quantization_ops_and_mean_variance_normalization_keep_float32() {
        let mut b = GraphBuilder::new("q", 1, WeightStorage::Initializer);
        let x = b.input("x", DataType::Float, &fixed(&[1, 2, 2, 2]));
        let r = b.op("Relu", &[&x], vec![]);
        let m = b.op("MeanVarianceNormalization", &[&r], vec![]);
        let scale = b.constant(tensor_data::from_f32("scale", &[], &[0.1]).unwrap());
        let q = b.op("QuantizeLinear", &[&m, &scale], vec![]);
        let y = b.op("DequantizeLinear", &[&q, &scale], vec![]);
        b.rename_output(&y, "y");
        b.output("y", DataType::Float, &fixed(&[1, 2, 2, 2]));
        let out = convert_ok(&b.into_model(), &Options::default());
        let g = out.model.graph();
        assert_eq!(out.variant, "fp16: 1 of 4 nodes in float16");
        assert_eq!(init_type(g, "scale"), Some(FLOAT));
        assert_eq!(
            node(g, "MeanVarianceNormalization").input[0],
            format!("{r}_fp32")
        );
        assert_eq!(
            node(g, "QuantizeLinear").input,
            vec![m.clone(), "scale".into()]
        );
        assert!(out
            .warnings
            .iter()
            .any(|w| w.contains("block list") && w.contains("QuantizeLinear x1")));
    }

    #[test]
    fn model_without_float_compute_is_refused() {
        let mut b = GraphBuilder::new("ints", 1, WeightStorage::Initializer);
        let x = b.input("x", DataType::Int64, &fixed(&[3]));
        let k = b.ints("k", &[1, 2, 3]);
        let y = b.op("Add", &[&x, &k], vec![]);
        b.rename_output(&y, "y");
        b.output("y", DataType::Int64, &fixed(&[3]));
        let e = refusal(&b.into_model(), &Options::default());
        assert!(
            e.to_string()
                .contains("nothing to convert to fp16: no node computes on float32"),
            "{e}"
        );
        let all_blocked = refusal(
            &builder::conv_net(1),
            &block_ops(&[
                "Conv",
                "BatchNormalization",
                "Relu",
                "MaxPool",
                "Flatten",
                "Gemm",
            ]),
        );
        assert!(
            all_blocked
                .to_string()
                .contains("every node computing on float32 is kept in float32"),
            "{all_blocked}"
        );
    }
}
