//! The quantizer's own graph helpers, for what `model/` deliberately does not decide:
//! how a node is keyed in `--exclude-node` and in reports ([`node_key`]), the rank
//! heuristics the Softmax-axis checks rely on ([`infer_ranks`]), and dropping the
//! initializers a rewrite left unread ([`prune_initializers`]). Graph indexing, patches,
//! tensor decoding and attributes come from `crate::model`.

use std::collections::HashMap;

use crate::error::Result;
use crate::model::attr::NodeExt;
use crate::model::graph::{self, GraphIndex};
use crate::model::patch::Patch;
use crate::model::{tensor_data, GraphProto, Model, NodeProto};

/// The name `--exclude-node` matches and reports show: the node's name, else (for the
/// many exported graphs with unnamed nodes) its first output. Also the stem of the names
/// the quantizer gives the tensors it adds for a node, so it must stay stable.
pub fn node_key(node: &NodeProto) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else {
        node.output.first().cloned().unwrap_or_default()
    }
}

/// Drop the initializers no node reads any more (the float weights a quantizing rewrite
/// replaced), as one patch. Not listed among a run's rewrites: it changes no computation.
pub fn prune_initializers(model: &mut Model) -> Result<()> {
    let unused = graph::unused_initializers(model.graph());
    if unused.is_empty() {
        return Ok(());
    }
    let mut p = Patch::new(format!("drop {} unused initializers", unused.len()));
    for name in &unused {
        p = p.remove_initializer(name);
    }
    model.apply(p)?;
    Ok(())
}

/// Ranks of the graph's tensors where they follow from declared inputs, initializers and
/// simple per-op rules (no shape values). Enough to decide whether an axis is the last one.
pub fn infer_ranks(graph: &GraphProto) -> HashMap<String, usize> {
    let mut r = infer_ranks_forward(graph, HashMap::new());
    // Backward through rank-preserving unary ops (e.g. Softmax -> Identity -> declared
    // graph output), then forward again.
    for n in graph.node.iter().rev() {
        if matches!(
            n.op_type.as_str(),
            "Identity" | "Softmax" | "LogSoftmax" | "Relu" | "Sigmoid" | "Cast"
        ) {
            if let (Some(o), Some(i)) = (n.output.first(), n.input.first()) {
                if let Some(&k) = r.get(o) {
                    r.entry(i.clone()).or_insert(k);
                }
            }
        }
    }
    infer_ranks_forward(graph, r)
}

fn infer_ranks_forward(
    graph: &GraphProto,
    mut r: HashMap<String, usize>,
) -> HashMap<String, usize> {
    let ix = GraphIndex::new(graph);
    for v in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        if let Some(k) = ix.declared_rank(&v.name) {
            r.insert(v.name.clone(), k);
        }
    }
    for t in &graph.initializer {
        r.insert(t.name.clone(), t.dims.len());
    }
    // Lengths of 1-D integer tensors (shape vectors), to give Reshape with a computed shape
    // a rank.
    let mut len1d: HashMap<String, usize> = HashMap::new();
    for t in &graph.initializer {
        if t.dims.len() == 1 {
            len1d.insert(t.name.clone(), t.dims[0] as usize);
        }
    }
    for n in &graph.node {
        let ins: Vec<Option<usize>> = n.input.iter().map(|i| r.get(i).copied()).collect();
        let l = match n.op_type.as_str() {
            "Shape" => ins.first().copied().flatten(),
            "Cast" | "Identity" => n.input.first().and_then(|i| len1d.get(i).copied()),
            "Unsqueeze" if ins.first() == Some(&Some(0)) => Some(1),
            "Concat" => n
                .input
                .iter()
                .map(|i| len1d.get(i).copied())
                .sum::<Option<usize>>(),
            _ => None,
        };
        if let (Some(l), Some(o)) = (l, n.output.first()) {
            len1d.insert(o.clone(), l);
        }
        let first = ins.first().copied().flatten();
        let out = match n.op_type.as_str() {
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Where" | "Max" | "Min" | "Sum" | "Equal"
            | "Less" | "Greater" | "And" | "Or" => ins
                .iter()
                .copied()
                .collect::<Option<Vec<_>>>()
                .and_then(|v| v.into_iter().max()),
            "Transpose" if !ints(n, "perm").is_empty() => Some(ints(n, "perm").len()),
            "Relu"
            | "Clip"
            | "Sigmoid"
            | "HardSigmoid"
            | "Tanh"
            | "Softmax"
            | "LogSoftmax"
            | "Conv"
            | "ConvTranspose"
            | "MaxPool"
            | "AveragePool"
            | "GlobalAveragePool"
            | "GlobalMaxPool"
            | "BatchNormalization"
            | "Transpose"
            | "Concat"
            | "Cast"
            | "Sqrt"
            | "Exp"
            | "Log"
            | "Neg"
            | "Abs"
            | "Erf"
            | "Identity"
            | "Dropout"
            | "LeakyRelu"
            | "Resize"
            | "Pad"
            | "Slice"
            | "LayerNormalization"
            | "InstanceNormalization" => first,
            "Flatten" | "Gemm" => Some(2),
            "Shape" => Some(1),
            "MatMul" => match (
                ins.first().copied().flatten(),
                ins.get(1).copied().flatten(),
            ) {
                (Some(a), Some(b)) if a >= 2 && b >= 2 => Some(a.max(b)),
                _ => None,
            },
            "Reshape" => n.input.get(1).and_then(|s| len1d.get(s).copied()),
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" => {
                if n.attr_i_or("keepdims", 1).unwrap_or(1) == 1 {
                    first
                } else {
                    let axes = ints(n, "axes");
                    first.and_then(|k| (!axes.is_empty()).then(|| k - axes.len()))
                }
            }
            "Squeeze" => first.and_then(|k| {
                let a = axes(n, &ix);
                (!a.is_empty()).then(|| k - a.len())
            }),
            "Unsqueeze" => first.and_then(|k| {
                let a = axes(n, &ix);
                (!a.is_empty()).then(|| k + a.len())
            }),
            _ => None,
        };
        if let (Some(k), Some(o)) = (out, n.output.first()) {
            r.entry(o.clone()).or_insert(k);
        }
    }
    r
}

/// An ints attribute, empty when absent or malformed: rank inference is best effort and
/// gives up on a node rather than failing the run.
fn ints(n: &NodeProto, name: &str) -> Vec<i64> {
    n.attr_opt_ints(name).ok().flatten().unwrap_or_default()
}

/// Squeeze/Unsqueeze axes: the attribute (opset < 13) or the constant int64 input.
fn axes(n: &NodeProto, ix: &GraphIndex) -> Vec<i64> {
    let a = ints(n, "axes");
    if !a.is_empty() {
        return a;
    }
    n.input
        .get(1)
        .and_then(|s| ix.initializer(s))
        .and_then(|t| tensor_data::to_vec::<i64>(t).ok())
        .unwrap_or_default()
}
