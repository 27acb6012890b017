//! Preparation: rewrite an exported fp32 graph into the form the int8 pass (and ONNX
//! Runtime's QDQ fusions) want, each step a labelled [`Patch`]:
//!
//! 1. `Constant` nodes become initializers (exporters such as paddle2onnx store every
//!    weight in a `Constant`; quantizers need weights they can rewrite).
//! 2. Inference no-ops (`Dropout`, `Identity`) are removed.
//! 3. `BatchNormalization` after a `Conv` is folded into the conv's weights and bias, so
//!    the int8 conv sees the real weight range and no float op sits between conv and Q.
//! 4. The decomposed hard-swish `x * Clip(x + 3, 0, 6) / 6` becomes `x * HardSigmoid(x)`
//!    (alpha 1/6, beta 0.5): the same function in 2 ops instead of 4, which matters because
//!    in a QDQ model these elementwise ops run in float between int8 convs.
//! 5. The default-domain opset is raised to 13 where it is lower, because per-channel
//!    `DequantizeLinear` (the `axis` attribute) needs it. Only ops whose signature changed
//!    between 11 and 13 are rewritten; an op this pass does not know is refused.
//! 6. Dead nodes (outputs nobody reads) are removed.

use std::collections::HashSet;

use super::graph::{node_key, prune_initializers};
use crate::error::{Error, Result};
use crate::model::attr::{self, node_error, NodeExt};
use crate::model::builder::node;
use crate::model::graph::GraphIndex;
use crate::model::patch::{constant_tensor, NodeRef, Patch, Position};
use crate::model::{tensor_data, Model, NodeProto, TensorProto};

/// The opset per-channel QDQ needs.
pub const QDQ_OPSET: i64 = 13;

/// Run every preparation pass; returns the labels of the patches applied.
pub fn prepare(model: &mut Model) -> Result<Vec<String>> {
    let mut log = Vec::new();
    for pass in [
        constants_to_initializers as fn(&Model) -> Result<Patch>,
        remove_noops,
        fold_batchnorm,
        hardswish_to_hardsigmoid,
    ] {
        let p = pass(model)?;
        if !p.ops.is_empty() {
            log.push(model.apply(p)?.label);
        }
    }
    if let Some(label) = upgrade_opset(model, QDQ_OPSET)? {
        log.push(label);
    }
    let p = remove_dead_nodes(model)?;
    if !p.ops.is_empty() {
        log.push(model.apply(p)?.label);
    }
    prune_initializers(model)?;
    Ok(log)
}

/// The model's default-domain opset version.
pub fn default_opset(model: &Model) -> i64 {
    model
        .proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .and_then(|o| o.version)
        .unwrap_or(1)
}

/// `Constant` nodes holding a tensor become initializers of the same name.
pub fn constants_to_initializers(model: &Model) -> Result<Patch> {
    let g = model.graph();
    let mut outputs = Vec::new();
    for n in &g.node {
        if n.op_type != "Constant" || !n.domain.is_empty() || n.output.len() != 1 {
            continue;
        }
        // A constant that is itself a graph output (an `If` branch returning a constant)
        // stays a node: an initializer cannot stand in for a subgraph's output everywhere.
        if g.output.iter().any(|o| o.name == n.output[0]) {
            continue;
        }
        // Sparse and string constants stay as they are.
        if constant_tensor(n).is_ok() {
            outputs.push(n.output[0].clone());
        }
    }
    let mut p = Patch::new(format!("{} Constant nodes -> initializers", outputs.len()));
    for o in &outputs {
        p = p.constant_to_initializer(o);
    }
    Ok(p)
}

/// `Identity` and inference `Dropout` (mask unused) are removed; readers are rewired.
pub fn remove_noops(model: &Model) -> Result<Patch> {
    let g = model.graph();
    let ix = GraphIndex::new(g);
    let mut removed = Vec::new();
    let mut rewires = Vec::new();
    let mut renamed: HashSet<String> = HashSet::new();
    for n in &g.node {
        let is_noop = n.domain.is_empty()
            && (n.op_type == "Identity"
                || (n.op_type == "Dropout"
                    && n.output
                        .get(1)
                        .is_none_or(|m| m.is_empty() || ix.consumers(m).is_empty())));
        if !is_noop || n.input.is_empty() || n.output.is_empty() {
            continue;
        }
        let (from, to) = (&n.output[0], &n.input[0]);
        // A graph output keeps its name: leave that node in place.
        if ix.is_output(from) || renamed.contains(to) {
            continue;
        }
        renamed.insert(from.clone());
        removed.push(NodeRef::of(n));
        // An unread no-op is just removed (a rewire must move at least one reader).
        if !ix.consumers(from).is_empty() {
            rewires.push((from.clone(), to.clone()));
        }
    }
    let mut p = Patch::new(format!("{} Identity/Dropout nodes removed", removed.len()));
    for r in removed {
        p = p.remove_node(r);
    }
    for (from, to) in &rewires {
        p = p.rewire(from, to, &[]);
    }
    Ok(p)
}

/// Fold `BatchNormalization(Conv(x, W, b))` into `Conv(x, W', b')` when the conv output
/// has no other reader and every parameter is an initializer.
pub fn fold_batchnorm(model: &Model) -> Result<Patch> {
    let g = model.graph();
    let ix = GraphIndex::new(g);
    let mut removed = Vec::new();
    let mut added = Vec::new();
    let mut weights = Vec::new();
    for bn in &g.node {
        if bn.op_type != "BatchNormalization" || bn.input.len() < 5 || bn.output.len() != 1 {
            continue;
        }
        let Some(conv) = ix.producer_node(&bn.input[0]) else {
            continue;
        };
        if conv.op_type != "Conv" || !ix.single_use(&conv.output[0]) {
            continue;
        }
        let Some(w) = ix.initializer(&conv.input[1]) else {
            continue;
        };
        let params: Option<Vec<Vec<f32>>> = bn.input[1..5]
            .iter()
            .map(|n| {
                ix.initializer(n)
                    .and_then(|t| tensor_data::to_vec::<f32>(t).ok())
            })
            .collect();
        let Some(params) = params else { continue };
        let (scale, bias, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
        let eps = bn.attr_f_or("epsilon", 1e-5)?;
        let mut wv = tensor_data::to_vec::<f32>(w)?;
        let cout = w.dims[0] as usize;
        if [scale, bias, mean, var].iter().any(|v| v.len() != cout) || cout == 0 {
            continue;
        }
        // Weights shared with another node cannot be rewritten in place.
        if ix.consumers(&conv.input[1]).len() != 1 {
            continue;
        }
        let old_b = match conv.input.get(2).filter(|s| !s.is_empty()) {
            Some(b) => match ix.initializer(b) {
                Some(t) => tensor_data::to_vec::<f32>(t)?,
                None => continue,
            },
            None => vec![0.0; cout],
        };
        let per = wv.len() / cout;
        let mut new_b = vec![0.0f32; cout];
        for c in 0..cout {
            let k = scale[c] / (var[c] + eps).sqrt();
            for x in &mut wv[c * per..(c + 1) * per] {
                *x *= k;
            }
            new_b[c] = (old_b[c] - mean[c]) * k + bias[c];
        }
        let wname = format!("{}_bnfold_w", conv.input[1]);
        let bname = format!("{}_bnfold_b", bn.output[0]);
        weights.push(tensor_data::from_f32(&wname, &w.dims, &wv)?);
        weights.push(tensor_data::from_f32(&bname, &[cout as i64], &new_b)?);
        let mut nc = conv.clone();
        nc.input.truncate(2);
        nc.input[1] = wname;
        nc.input.push(bname);
        nc.output[0] = bn.output[0].clone();
        removed.extend([NodeRef::of(conv), NodeRef::of(bn)]);
        added.push(nc);
    }
    let mut p = Patch::new(format!(
        "{} BatchNormalization folded into Conv",
        added.len()
    ));
    Ok(if added.is_empty() {
        p
    } else {
        for r in removed {
            p = p.remove_node(r);
        }
        p = p.add_nodes(added, Position::Topological);
        for t in weights {
            p = p.set_initializer(t);
        }
        p
    })
}

/// `Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)` (or `Mul(x, Div(Clip(..), 6))`) becomes
/// `Mul(x, HardSigmoid(x, alpha=1/6, beta=0.5))`.
pub fn hardswish_to_hardsigmoid(model: &Model) -> Result<Patch> {
    let g = model.graph();
    let ix = GraphIndex::new(g);
    // Whether `name` is a float initializer holding the one value `v`.
    let is = |name: &str, v: f32| {
        ix.initializer(name)
            .and_then(|t| tensor_data::to_vec::<f32>(t).ok())
            .is_some_and(|x| x == [v])
    };
    let node_of = |name: &str, op: &str| {
        ix.producer(name)
            .filter(|&i| g.node[i].op_type == op && g.node[i].domain.is_empty())
    };
    // Returns (add index, clip index) when `t` is Clip(Add(x, 3), 0, 6) with single-use links.
    let clip_of = |t: &str, x: &str| -> Option<(usize, usize)> {
        let ci = node_of(t, "Clip")?;
        let c = &g.node[ci];
        if c.input.len() != 3 || !is(&c.input[1], 0.0) || !is(&c.input[2], 6.0) {
            return None;
        }
        let ai = node_of(&c.input[0], "Add")?;
        let a = &g.node[ai];
        let x_first = a.input[0] == x && is(&a.input[1], 3.0);
        let x_second = a.input[1] == x && is(&a.input[0], 3.0);
        ((x_first || x_second) && ix.single_use(&a.output[0]) && ix.single_use(&c.output[0]))
            .then_some((ai, ci))
    };
    let mut removed: Vec<NodeRef> = Vec::new();
    let mut added: Vec<NodeProto> = Vec::new();
    let mut used: HashSet<usize> = HashSet::new();
    let mut count = 0;
    for (di, d) in g.node.iter().enumerate() {
        if d.op_type != "Div" || d.input.len() != 2 || !is(&d.input[1], 6.0) {
            continue;
        }
        // Form A: Div(Mul(x, clip), 6).
        let mut found: Option<(String, Vec<usize>)> = None;
        if let Some(mi) = node_of(&d.input[0], "Mul").filter(|_| ix.single_use(&d.input[0])) {
            let m = &g.node[mi];
            for (a, b) in [(0, 1), (1, 0)] {
                if let Some((ai, ci)) = clip_of(&m.input[b], &m.input[a]) {
                    found = Some((m.input[a].clone(), vec![ai, ci, mi, di]));
                    break;
                }
            }
        }
        // Form B: Mul(x, Div(clip, 6)) — the Div output feeds exactly one Mul.
        if found.is_none() && ix.single_use(&d.output[0]) {
            if let Some(&mi) = ix.consumers(&d.output[0]).first() {
                let m = &g.node[mi];
                if m.op_type == "Mul" && m.input.len() == 2 {
                    let slot = if m.input[0] == d.output[0] { 1 } else { 0 };
                    let x = m.input[slot].clone();
                    if let Some((ai, ci)) = clip_of(&d.input[0], &x) {
                        if ix.producer(&d.input[0]) == Some(ci) {
                            found = Some((x, vec![ai, ci, di, mi]));
                        }
                    }
                }
            }
        }
        let Some((x, nodes)) = found else { continue };
        if nodes.iter().any(|i| used.contains(i)) {
            continue;
        }
        used.extend(nodes.iter().copied());
        let last = &g.node[nodes[3]];
        let out = last.output[0].clone();
        let hs = format!("{out}_hardsigmoid");
        let base = if last.name.is_empty() {
            out.clone()
        } else {
            last.name.clone()
        };
        added.push(node(
            &format!("{base}_hardsigmoid"),
            "HardSigmoid",
            &[&x],
            &[&hs],
            vec![attr::float("alpha", 1.0 / 6.0), attr::float("beta", 0.5)],
        ));
        added.push(node(
            &format!("{base}_hardswish"),
            "Mul",
            &[&x, &hs],
            &[&out],
            vec![],
        ));
        removed.extend(nodes.iter().map(|&i| NodeRef::of(&g.node[i])));
        count += 1;
    }
    let mut p = Patch::new(format!(
        "{count} decomposed hard-swish (Add/Clip/Mul/Div) -> Mul(x, HardSigmoid(x))"
    ));
    if count > 0 {
        for r in removed {
            p = p.remove_node(r);
        }
        p = p.add_nodes(added, Position::Topological);
    }
    Ok(p)
}

/// Ops whose inputs, attributes and semantics are the same in opsets 11, 12 and 13 for
/// the float inference use the quantizer sees (13 only widened their type lists).
const SAME_IN_11_TO_13: &[&str] = &[
    "Abs",
    "Add",
    "And",
    "ArgMax",
    "ArgMin",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "CumSum",
    "DepthToSpace",
    "Div",
    "Einsum",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "HardSigmoid",
    "InstanceNormalization",
    "LRN",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "Min",
    "Mod",
    "Mul",
    "Neg",
    "NonZero",
    "Not",
    "Or",
    "PRelu",
    "Pad",
    "Pow",
    "Range",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "Round",
    "ScatterElements",
    "ScatterND",
    "Selu",
    "Shape",
    "Sigmoid",
    "Sign",
    "Sin",
    "Cos",
    "Size",
    "Slice",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Sqrt",
    "Sub",
    "Sum",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "TopK",
    "Transpose",
    "Where",
    "Xor",
    "Identity",
    "GlobalLpPool",
    "LpNormalization",
    "MatMulInteger",
    "ConvInteger",
    "QuantizeLinear",
    "DequantizeLinear",
    "OneHot",
    "NonMaxSuppression",
    "RoiAlign",
    "Compress",
    "EyeLike",
    "IsNaN",
    "IsInf",
    "Shrink",
    "Hardmax_placeholder",
];

/// Raise the default-domain opset to `target`, rewriting the ops whose signature changed.
/// Returns the patch label, or `None` if the model already has `target` or later.
pub fn upgrade_opset(model: &mut Model, target: i64) -> Result<Option<String>> {
    let from = default_opset(model);
    if from >= target {
        return Ok(None);
    }
    if from < 11 {
        return Err(Error::usage(
            "opset",
            format!("the model uses opset {from}; edgepack converts opsets 11 and 12 to {target}, older models need converting first"),
        ));
    }
    let g = model.graph();
    let ix = GraphIndex::new(g);
    let ranks = super::graph::infer_ranks(g);
    // Ops in the order the rewrite needs: attribute edits and removals on the original
    // nodes, then the rewritten nodes and their new initializers.
    let mut set_axis: Vec<NodeRef> = Vec::new();
    let mut removed: Vec<NodeRef> = Vec::new();
    let mut added: Vec<NodeProto> = Vec::new();
    let mut inits: Vec<TensorProto> = Vec::new();
    let mut rewritten = 0;
    for n in &g.node {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            continue;
        }
        let op = n.op_type.as_str();
        match op {
            // 13 moved `axes` (and Split's `split`) from an attribute to an input.
            "Squeeze" | "Unsqueeze" | "ReduceSum" | "Split" => {
                let key = if op == "Split" { "split" } else { "axes" };
                if let Some(values) = n.attr_opt_ints(key)? {
                    let name = format!("{}_{key}_opset13", node_key(n));
                    let mut nn = n.clone();
                    attr::remove(&mut nn, key);
                    // Split's `split` goes to input 1; the others' `axes` too.
                    if nn.input.len() < 2 {
                        nn.input.push(name.clone());
                    } else {
                        return Err(node_error(
                            n,
                            "has both an attribute and an input for the same value",
                        ));
                    }
                    inits.push(tensor_data::from_i64(
                        &name,
                        &[values.len() as i64],
                        &values,
                    )?);
                    removed.push(NodeRef::of(n));
                    added.push(nn);
                    rewritten += 1;
                }
            }
            // Before 13 these flatten the input to 2-D at `axis` (default 1); from 13 they act
            // on one axis (default -1). The two agree only when the axis is the last one.
            "Softmax" | "LogSoftmax" | "Hardmax" => {
                let has_axis = n.attr_opt_i("axis")?.is_some();
                let axis = n.attr_i_or("axis", 1)?;
                let rank = ranks
                    .get(&n.input[0])
                    .copied()
                    .or_else(|| ix.declared_rank(&n.output[0]));
                let last = axis == -1 || rank.is_some_and(|r| axis == r as i64 - 1);
                if !last {
                    return Err(node_error(
                        n,
                        format!("axis {axis} is not the last axis (input rank {}); converting it to opset {target} needs a Reshape edgepack does not insert", rank.map_or("unknown".into(), |r| r.to_string())),
                    ));
                }
                if !has_axis || axis != -1 {
                    set_axis.push(NodeRef::of(n));
                    rewritten += 1;
                }
            }
            "Dropout" | "If" | "Loop" | "Scan" | "Upsample" => {
                return Err(node_error(
                    n,
                    format!("converting this op from opset {from} to {target} is not implemented"),
                ));
            }
            _ if SAME_IN_11_TO_13.contains(&op) => {}
            _ => {
                return Err(node_error(
                    n,
                    format!("unknown to edgepack's opset {from} -> {target} conversion; convert the model to opset {target} first"),
                ));
            }
        }
    }
    let mut p = Patch::new(format!(
        "opset {from} -> {target} ({rewritten} nodes rewritten)"
    ));
    for r in set_axis {
        p = p.set_attribute(r, attr::int("axis", -1));
    }
    for r in removed {
        p = p.remove_node(r);
    }
    if !added.is_empty() {
        p = p.add_nodes(added, Position::Topological);
    }
    for t in inits {
        p = p.set_initializer(t);
    }
    let label = model.apply(p.set_opset("", target))?.label;
    // IR 7 is the first that allows opset 13.
    if model.proto.ir_version.unwrap_or(0) < 7 {
        model.proto.ir_version = Some(7);
    }
    Ok(Some(label))
}

/// Remove nodes none of whose outputs are read (iterated to a fixed point).
pub fn remove_dead_nodes(model: &Model) -> Result<Patch> {
    let g = model.graph();
    let mut live: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let mut keep = vec![false; g.node.len()];
    for (i, n) in g.node.iter().enumerate().rev() {
        if n.output.iter().any(|o| live.contains(o)) {
            keep[i] = true;
            live.extend(n.input.iter().cloned());
            for a in &n.attribute {
                for sg in a.g.iter().chain(&a.graphs) {
                    live.extend(sg.node.iter().flat_map(|x| x.input.iter().cloned()));
                }
            }
        }
    }
    let dead: Vec<NodeRef> = g
        .node
        .iter()
        .zip(keep)
        .filter(|(_, k)| !k)
        .map(|(n, _)| NodeRef::of(n))
        .collect();
    let mut p = Patch::new(format!("{} dead nodes removed", dead.len()));
    for r in dead {
        p = p.remove_node(r);
    }
    Ok(p)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::patch::PatchOp;
    use crate::model::proto::{
        tensor_shape_proto, type_proto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    };
    use crate::model::{GraphProto, ModelProto, ValueInfoProto};

    fn vi(name: &str, dims: &[i64]) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(1),
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| tensor_shape_proto::Dimension {
                                value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                                denotation: String::new(),
                            })
                            .collect(),
                    }),
                })),
                denotation: String::new(),
            }),
            ..Default::default()
        }
    }

    fn constant(name: &str, t: TensorProto) -> crate::model::NodeProto {
        let mut n = node(name, "Constant", &[], &[name], vec![]);
        n.attribute.push(crate::model::proto::AttributeProto {
            name: "value".into(),
            r#type: Some(4),
            t: Some(t),
            ..Default::default()
        });
        n
    }

    /// x[1,2,4,4] -> Conv(W: Constant, 2 out channels, 1x1) -> BatchNormalization ->
    /// hard-swish as Add/Clip/Mul/Div -> Conv(W2) -> Relu -> y. Opset 11, like paddle2onnx.
    pub(crate) fn conv_bn_hardswish_model() -> Model {
        let s = |n: &str, v: f32| tensor_data::scalar(n, v);
        let nodes = vec![
            constant(
                "w",
                tensor_data::from_f32("", &[2, 2, 1, 1], &[1.0, 0.5, -1.0, 2.0]).unwrap(),
            ),
            node("conv0", "Conv", &["x", "w"], &["c0"], vec![]),
            node(
                "bn0",
                "BatchNormalization",
                &["c0", "g", "b", "m", "v"],
                &["bn"],
                vec![],
            ),
            constant("three", s("", 3.0)),
            constant("zero", s("", 0.0)),
            constant("six", s("", 6.0)),
            node("hs_add", "Add", &["bn", "three"], &["a"], vec![]),
            node("hs_clip", "Clip", &["a", "zero", "six"], &["c"], vec![]),
            node("hs_mul", "Mul", &["bn", "c"], &["mm"], vec![]),
            node("hs_div", "Div", &["mm", "six"], &["hs"], vec![]),
            constant(
                "w2",
                tensor_data::from_f32("", &[2, 2, 1, 1], &[0.3, -0.2, 0.1, 0.4]).unwrap(),
            ),
            node("conv1", "Conv", &["hs", "w2"], &["c1"], vec![]),
            node("relu", "Relu", &["c1"], &["y"], vec![]),
        ];
        let graph = GraphProto {
            name: "g".into(),
            node: nodes,
            initializer: vec![
                tensor_data::from_f32("g", &[2], &[2.0, 1.0]).unwrap(),
                tensor_data::from_f32("b", &[2], &[0.5, -0.5]).unwrap(),
                tensor_data::from_f32("m", &[2], &[1.0, 0.0]).unwrap(),
                tensor_data::from_f32("v", &[2], &[3.0, 0.0]).unwrap(),
            ],
            input: vec![vi("x", &[1, 2, 4, 4])],
            output: vec![vi("y", &[1, 2, 4, 4])],
            ..Default::default()
        };
        Model::from_proto(ModelProto {
            ir_version: Some(6),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: Some(11),
            }],
            graph: Some(graph),
            ..Default::default()
        })
    }

    #[test]
    fn prepare_moves_constants_folds_bn_rewrites_hardswish_and_upgrades_opset() {
        let mut m = conv_bn_hardswish_model();
        let log = prepare(&mut m).unwrap();
        assert_eq!(log.len(), 4, "{log:?}");
        let ops: Vec<&str> = m.graph().node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Conv", "HardSigmoid", "Mul", "Conv", "Relu"]);
        assert_eq!(default_opset(&m), 13);
        let hs = &m.graph().node[1];
        assert!((hs.attr_f("alpha").unwrap() - 1.0 / 6.0).abs() < 1e-7);
        assert_eq!(hs.attr_f("beta").unwrap(), 0.5);
        // Folded weights: channel 0 scaled by 2/sqrt(3 + 1e-5), channel 1 by 1/sqrt(1e-5).
        let conv = &m.graph().node[0];
        let ix = GraphIndex::new(m.graph());
        let w = tensor_data::to_vec::<f32>(ix.initializer(&conv.input[1]).unwrap()).unwrap();
        let k0 = 2.0 / (3.0f32 + 1e-5).sqrt();
        assert!((w[0] - k0).abs() < 1e-5 && (w[1] - 0.5 * k0).abs() < 1e-5);
        let b = tensor_data::to_vec::<f32>(ix.initializer(&conv.input[2]).unwrap()).unwrap();
        assert!((b[0] - (-k0 + 0.5)).abs() < 1e-5, "{b:?}");
        assert!((b[1] + 0.5).abs() < 1e-5);
        // No initializer is left unused: folded W and b, and the second conv's W.
        assert_eq!(m.graph().initializer.len(), 3);
    }

    #[test]
    fn opset_upgrade_moves_squeeze_axes_to_an_input() {
        let mut m = conv_bn_hardswish_model();
        let g = m.graph_mut();
        let mut sq = node("sq", "Squeeze", &["y"], &["z"], vec![]);
        sq.attribute.push(crate::model::proto::AttributeProto {
            name: "axes".into(),
            r#type: Some(7),
            ints: vec![0],
            ..Default::default()
        });
        g.node.push(sq);
        g.output[0].name = "z".into();
        let label = upgrade_opset(&mut m, 13).unwrap().unwrap();
        assert!(label.contains("1 nodes rewritten"), "{label}");
        let sq = m
            .graph()
            .node
            .iter()
            .find(|n| n.op_type == "Squeeze")
            .unwrap();
        assert_eq!(sq.input.len(), 2);
        assert!(sq.attribute.is_empty());
    }

    #[test]
    fn opset_upgrade_refuses_softmax_over_a_middle_axis() {
        let mut m = conv_bn_hardswish_model();
        let g = m.graph_mut();
        g.node.push(node(
            "sm",
            "Softmax",
            &["y"],
            &["z"],
            vec![attr::int("axis", 1)],
        ));
        g.output[0].name = "z".into();
        let e = upgrade_opset(&mut m, 13).unwrap_err().to_string();
        assert!(
            e.contains("'sm' (Softmax)") && e.contains("not the last axis"),
            "{e}"
        );
    }

    #[test]
    fn opset_upgrade_refuses_unknown_ops() {
        let mut m = conv_bn_hardswish_model();
        m.graph_mut()
            .node
            .push(node("mo", "MysteryOp", &["y"], &["q"], vec![]));
        let e = upgrade_opset(&mut m, 13).unwrap_err().to_string();
        assert!(e.contains("MysteryOp"), "{e}");
    }

    #[test]
    fn dead_nodes_are_removed() {
        let mut m = conv_bn_hardswish_model();
        m.graph_mut()
            .node
            .push(node("unused", "Relu", &["y"], &["dead"], vec![]));
        let p = remove_dead_nodes(&m).unwrap();
        assert_eq!(p.label, "1 dead nodes removed");
        assert_eq!(p.ops, [PatchOp::RemoveNode(NodeRef::Output("dead".into()))]);
    }
}
