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

use super::graph::{
    attr, attr_f, attr_i, declared_rank, initializers, make_attr_f, make_attr_i, make_node,
    node_error, prune_initializers, scalar_f32, tensor_f32, tensor_from_f32, tensor_from_i64,
    GraphIndex, Patch,
};
use crate::error::{Error, Result};
use crate::model::{Model, TensorProto};

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
        if !p.is_empty() {
            log.push(p.label.clone());
            p.apply(model.graph_mut())?;
        }
    }
    if let Some(label) = upgrade_opset(model, QDQ_OPSET)? {
        log.push(label);
    }
    let p = remove_dead_nodes(model)?;
    if !p.is_empty() {
        log.push(p.label.clone());
        p.apply(model.graph_mut())?;
    }
    prune_initializers(model.graph_mut());
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
    let mut p = Patch::new("");
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type != "Constant" || !n.domain.is_empty() || n.output.len() != 1 {
            continue;
        }
        let mut t: TensorProto = if let Some(t) = attr(n, "value").and_then(|a| a.t.clone()) {
            t
        } else if let Some(f) = attr(n, "value_float").and_then(|a| a.f) {
            tensor_from_f32("", &[], &[f])
        } else if let Some(a) = attr(n, "value_floats") {
            tensor_from_f32("", &[a.floats.len() as i64], &a.floats)
        } else if let Some(v) = attr(n, "value_int").and_then(|a| a.i) {
            tensor_from_i64("", &[], &[v])
        } else if let Some(a) = attr(n, "value_ints") {
            tensor_from_i64("", &[a.ints.len() as i64], &a.ints)
        } else {
            continue; // sparse or string constants stay as they are
        };
        t.name = n.output[0].clone();
        p.remove_nodes.push(i);
        p.set_initializers.push(t);
    }
    p.label = format!("{} Constant nodes -> initializers", p.remove_nodes.len());
    Ok(p)
}

/// `Identity` and inference `Dropout` (mask unused) are removed; readers are rewired.
pub fn remove_noops(model: &Model) -> Result<Patch> {
    let g = model.graph();
    let ix = GraphIndex::new(g);
    let mut p = Patch::new("");
    let mut renamed: HashSet<String> = HashSet::new();
    for (i, n) in g.node.iter().enumerate() {
        let is_noop = n.domain.is_empty()
            && (n.op_type == "Identity"
                || (n.op_type == "Dropout"
                    && n.output
                        .get(1)
                        .is_none_or(|m| m.is_empty() || ix.consumers_of(m).is_empty())));
        if !is_noop || n.input.is_empty() || n.output.is_empty() {
            continue;
        }
        let (from, to) = (&n.output[0], &n.input[0]);
        // A graph output keeps its name: leave that node in place.
        if ix.graph_outputs.contains(from) || renamed.contains(to) {
            continue;
        }
        renamed.insert(from.clone());
        p.remove_nodes.push(i);
        p.rename_inputs.push((from.clone(), to.clone()));
    }
    p.label = format!("{} Identity/Dropout nodes removed", p.remove_nodes.len());
    Ok(p)
}

/// Fold `BatchNormalization(Conv(x, W, b))` into `Conv(x, W', b')` when the conv output
/// has no other reader and every parameter is an initializer.
pub fn fold_batchnorm(model: &Model) -> Result<Patch> {
    let g = model.graph();
    let ix = GraphIndex::new(g);
    let inits = initializers(g);
    let mut p = Patch::new("");
    let mut count = 0;
    for (bi, bn) in g.node.iter().enumerate() {
        if bn.op_type != "BatchNormalization" || bn.input.len() < 5 || bn.output.len() != 1 {
            continue;
        }
        let Some(&ci) = ix.producer.get(&bn.input[0]) else {
            continue;
        };
        let conv = &g.node[ci];
        if conv.op_type != "Conv" || !ix.single_use(&conv.output[0]) {
            continue;
        }
        let Some(w) = inits.get(&conv.input[1]) else {
            continue;
        };
        let params: Option<Vec<Vec<f32>>> = bn.input[1..5]
            .iter()
            .map(|n| inits.get(n).and_then(|t| tensor_f32(t).ok()))
            .collect();
        let Some(params) = params else { continue };
        let (scale, bias, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
        let eps = attr_f(bn, "epsilon", 1e-5);
        let mut wv = tensor_f32(w)?;
        let cout = w.dims[0] as usize;
        if [scale, bias, mean, var].iter().any(|v| v.len() != cout) || cout == 0 {
            continue;
        }
        // Weights shared with another node cannot be rewritten in place.
        if ix.consumers_of(&conv.input[1]).len() != 1 {
            continue;
        }
        let old_b = match conv.input.get(2).filter(|s| !s.is_empty()) {
            Some(b) => match inits.get(b) {
                Some(t) => tensor_f32(t)?,
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
        p.set_initializers
            .push(tensor_from_f32(&wname, &w.dims, &wv));
        p.set_initializers
            .push(tensor_from_f32(&bname, &[cout as i64], &new_b));
        let mut nc = conv.clone();
        nc.input.truncate(2);
        nc.input[1] = wname;
        nc.input.push(bname);
        nc.output[0] = bn.output[0].clone();
        p.remove_nodes.extend([ci, bi]);
        p.add_nodes.push(nc);
        count += 1;
    }
    p.label = format!("{count} BatchNormalization folded into Conv");
    Ok(p)
}

/// `Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)` (or `Mul(x, Div(Clip(..), 6))`) becomes
/// `Mul(x, HardSigmoid(x, alpha=1/6, beta=0.5))`.
pub fn hardswish_to_hardsigmoid(model: &Model) -> Result<Patch> {
    let g = model.graph();
    let ix = GraphIndex::new(g);
    let inits = initializers(g);
    let is = |name: &str, v: f32| scalar_f32(&inits, name) == Some(v);
    let node_of = |name: &str, op: &str| {
        ix.producer
            .get(name)
            .copied()
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
    let mut p = Patch::new("");
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
            if let Some(&mi) = ix.consumers_of(&d.output[0]).first() {
                let m = &g.node[mi];
                if m.op_type == "Mul" && m.input.len() == 2 {
                    let slot = if m.input[0] == d.output[0] { 1 } else { 0 };
                    let x = m.input[slot].clone();
                    if let Some((ai, ci)) = clip_of(&d.input[0], &x) {
                        if ci == *ix.producer.get(&d.input[0]).unwrap_or(&usize::MAX) {
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
        p.add_nodes.push(make_node(
            "HardSigmoid",
            &format!("{base}_hardsigmoid"),
            &[&x],
            &[&hs],
            vec![make_attr_f("alpha", 1.0 / 6.0), make_attr_f("beta", 0.5)],
        ));
        p.add_nodes.push(make_node(
            "Mul",
            &format!("{base}_hardswish"),
            &[&x, &hs],
            &[&out],
            vec![],
        ));
        p.remove_nodes.extend(nodes);
        count += 1;
    }
    p.label = format!("{count} decomposed hard-swish (Add/Clip/Mul/Div) -> Mul(x, HardSigmoid(x))");
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
    let ranks = super::graph::infer_ranks(g);
    let mut p = Patch::new("");
    let mut rewritten = 0;
    for (i, n) in g.node.iter().enumerate() {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            continue;
        }
        let op = n.op_type.as_str();
        match op {
            // 13 moved `axes` (and Split's `split`) from an attribute to an input.
            "Squeeze" | "Unsqueeze" | "ReduceSum" | "Split" => {
                let key = if op == "Split" { "split" } else { "axes" };
                if let Some(a) = attr(n, key) {
                    let name = format!("{}_{key}_opset13", super::graph::node_label(n));
                    let mut nn = n.clone();
                    nn.attribute.retain(|x| x.name != key);
                    // Split's `split` goes to input 1; the others' `axes` too.
                    if nn.input.len() < 2 {
                        nn.input.push(name.clone());
                    } else {
                        return Err(node_error(
                            n,
                            "has both an attribute and an input for the same value",
                        ));
                    }
                    p.set_initializers.push(tensor_from_i64(
                        &name,
                        &[a.ints.len() as i64],
                        &a.ints,
                    ));
                    p.remove_nodes.push(i);
                    p.add_nodes.push(nn);
                    rewritten += 1;
                }
            }
            // Before 13 these flatten the input to 2-D at `axis` (default 1); from 13 they act
            // on one axis (default -1). The two agree only when the axis is the last one.
            "Softmax" | "LogSoftmax" | "Hardmax" => {
                let has_axis = attr(n, "axis").is_some();
                let axis = attr_i(n, "axis", 1);
                let rank = ranks
                    .get(&n.input[0])
                    .copied()
                    .or_else(|| declared_rank(g, &n.output[0]));
                let last = axis == -1 || rank.is_some_and(|r| axis == r as i64 - 1);
                if !last {
                    return Err(node_error(
                        n,
                        format!("axis {axis} is not the last axis (input rank {}); converting it to opset {target} needs a Reshape edgepack does not insert", rank.map_or("unknown".into(), |r| r.to_string())),
                    ));
                }
                if !has_axis || axis != -1 {
                    p.set_attributes.push((i, make_attr_i("axis", -1)));
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
    p.label = format!("opset {from} -> {target} ({rewritten} nodes rewritten)");
    let label = p.label.clone();
    p.apply(model.graph_mut())?;
    for o in &mut model.proto.opset_import {
        if o.domain.is_empty() || o.domain == "ai.onnx" {
            o.version = Some(target);
        }
    }
    // IR 7 is the first that allows opset 13.
    if model.proto.ir_version.unwrap_or(0) < 7 {
        model.proto.ir_version = Some(7);
    }
    Ok(Some(label))
}

/// Remove nodes none of whose outputs are read (iterated to a fixed point).
pub fn remove_dead_nodes(model: &Model) -> Result<Patch> {
    let g = model.graph();
    let ix = GraphIndex::new(g);
    let mut live: HashSet<String> = ix.graph_outputs.clone();
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
    let mut p = Patch::new("");
    p.remove_nodes = (0..g.node.len()).filter(|&i| !keep[i]).collect();
    p.label = format!("{} dead nodes removed", p.remove_nodes.len());
    Ok(p)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::proto::{
        tensor_shape_proto, type_proto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    };
    use crate::model::{GraphProto, ModelProto, ValueInfoProto};
    use crate::quantize::graph::{make_node, tensor_f32};

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
        let mut n = make_node("Constant", name, &[], &[name], vec![]);
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
        let s = |n: &str, v: f32| tensor_from_f32(n, &[], &[v]);
        let nodes = vec![
            constant(
                "w",
                tensor_from_f32("", &[2, 2, 1, 1], &[1.0, 0.5, -1.0, 2.0]),
            ),
            make_node("Conv", "conv0", &["x", "w"], &["c0"], vec![]),
            make_node(
                "BatchNormalization",
                "bn0",
                &["c0", "g", "b", "m", "v"],
                &["bn"],
                vec![],
            ),
            constant("three", s("", 3.0)),
            constant("zero", s("", 0.0)),
            constant("six", s("", 6.0)),
            make_node("Add", "hs_add", &["bn", "three"], &["a"], vec![]),
            make_node("Clip", "hs_clip", &["a", "zero", "six"], &["c"], vec![]),
            make_node("Mul", "hs_mul", &["bn", "c"], &["mm"], vec![]),
            make_node("Div", "hs_div", &["mm", "six"], &["hs"], vec![]),
            constant(
                "w2",
                tensor_from_f32("", &[2, 2, 1, 1], &[0.3, -0.2, 0.1, 0.4]),
            ),
            make_node("Conv", "conv1", &["hs", "w2"], &["c1"], vec![]),
            make_node("Relu", "relu", &["c1"], &["y"], vec![]),
        ];
        let graph = GraphProto {
            name: "g".into(),
            node: nodes,
            initializer: vec![
                tensor_from_f32("g", &[2], &[2.0, 1.0]),
                tensor_from_f32("b", &[2], &[0.5, -0.5]),
                tensor_from_f32("m", &[2], &[1.0, 0.0]),
                tensor_from_f32("v", &[2], &[3.0, 0.0]),
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
        assert!((attr_f(hs, "alpha", 0.0) - 1.0 / 6.0).abs() < 1e-7);
        assert_eq!(attr_f(hs, "beta", 0.0), 0.5);
        // Folded weights: channel 0 scaled by 2/sqrt(3 + 1e-5), channel 1 by 1/sqrt(1e-5).
        let conv = &m.graph().node[0];
        let inits = initializers(m.graph());
        let w = tensor_f32(inits[&conv.input[1]]).unwrap();
        let k0 = 2.0 / (3.0f32 + 1e-5).sqrt();
        assert!((w[0] - k0).abs() < 1e-5 && (w[1] - 0.5 * k0).abs() < 1e-5);
        let b = tensor_f32(inits[&conv.input[2]]).unwrap();
        assert!((b[0] - (-k0 + 0.5)).abs() < 1e-5, "{b:?}");
        assert!((b[1] + 0.5).abs() < 1e-5);
        // No initializer is left unused: folded W and b, and the second conv's W.
        assert_eq!(m.graph().initializer.len(), 3);
    }

    #[test]
    fn opset_upgrade_moves_squeeze_axes_to_an_input() {
        let mut m = conv_bn_hardswish_model();
        let g = m.graph_mut();
        let mut sq = make_node("Squeeze", "sq", &["y"], &["z"], vec![]);
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
        g.node.push(make_node(
            "Softmax",
            "sm",
            &["y"],
            &["z"],
            vec![make_attr_i("axis", 1)],
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
            .push(make_node("MysteryOp", "mo", &["y"], &["q"], vec![]));
        let e = upgrade_opset(&mut m, 13).unwrap_err().to_string();
        assert!(e.contains("MysteryOp"), "{e}");
    }

    #[test]
    fn dead_nodes_are_removed() {
        let mut m = conv_bn_hardswish_model();
        m.graph_mut()
            .node
            .push(make_node("Relu", "unused", &["y"], &["dead"], vec![]));
        let p = remove_dead_nodes(&m).unwrap();
        assert_eq!(p.remove_nodes.len(), 1);
    }
}
