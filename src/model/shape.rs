//! Best-effort static shape inference and a MACs/FLOPs estimate.
//!
//! Given concrete shapes for the real inputs (from `--shape NAME=1x3x224x224` and
//! `--dim SYMBOL=N`, parsed by `crate::inputs`), [`infer`] walks the main graph in topological order and sizes every
//! tensor it can. It covers the ops that dominate edge vision and OCR models (convolutions,
//! pools, elementwise ops with broadcasting, normalisation, Concat, Reshape, Flatten,
//! Transpose, MatMul, Gemm, Resize, Slice, reductions) and propagates small integer
//! values through `Shape -> Gather -> Concat -> Reshape` chains, which is how exported
//! models compute dynamic shapes. What it cannot size it says so ([`Inference::unsized_nodes`])
//! instead of guessing; downstream tensors of such a node stay unknown.
//!
//! [`cost`] then counts multiply-accumulates of Conv, ConvTranspose, MatMul and Gemm at
//! those shapes (FLOPs = 2 × MACs; bias adds, activations and pools are not counted,
//! as is customary), listing the compute nodes it could not size.
//!
//! ```
//! use std::collections::BTreeMap;
//! use edgepack::model::{builder, shape};
//! let m = builder::symbolic_batch(1);
//! let inputs = BTreeMap::from([("x".to_string(), vec![2, 3, 16, 16])]);
//! let inf = shape::infer(m.graph(), &inputs);
//! assert_eq!(inf.shapes["y"], vec![2, 10]);
//! let cost = shape::cost(m.graph(), &inf);
//! assert!(cost.macs > 0 && cost.unsized_nodes.is_empty());
//! # Ok::<(), edgepack::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::attr::{node_label, NodeExt};
use super::graph::{is_default_domain, GraphIndex};
use super::proto::{GraphProto, NodeProto};
use super::tensor_data;

/// The result of shape inference.
#[derive(Clone, Debug, Default)]
pub struct Inference {
    /// Tensor name -> concrete shape, for every tensor that could be sized.
    pub shapes: HashMap<String, Vec<i64>>,
    /// Small integer tensors whose values are known (shape arithmetic).
    pub values: HashMap<String, Vec<i64>>,
    /// Nodes whose outputs could not be sized, as `label (OpType)`, in graph order.
    pub unsized_nodes: Vec<String>,
}

/// Largest integer tensor whose values are tracked (shape vectors are tiny).
const MAX_TRACKED_VALUES: usize = 64;

/// Infer shapes of the main graph from concrete input shapes.
pub fn infer(graph: &GraphProto, inputs: &BTreeMap<String, Vec<i64>>) -> Inference {
    infer_from(graph, inputs, Inference::default())
}

/// [`infer`] starting from what is known already: for a subgraph (an `If` branch, a
/// `Loop` body), the enclosing graph's shapes and values, which its nodes may use.
fn infer_from(
    graph: &GraphProto,
    inputs: &BTreeMap<String, Vec<i64>>,
    outer: Inference,
) -> Inference {
    let index = GraphIndex::new(graph);
    let mut inf = outer;
    inf.unsized_nodes.clear();
    for (k, v) in inputs {
        inf.shapes.insert(k.clone(), v.clone());
    }
    for t in &graph.initializer {
        inf.shapes.insert(t.name.clone(), t.dims.clone());
        track_value(&mut inf, &t.name, t);
    }
    let order = match index.topo_order() {
        Ok(o) => o,
        Err(_) => (0..graph.node.len()).collect(),
    };
    for i in order {
        let n = &graph.node[i];
        let sized = if is_default_domain(&n.domain) {
            infer_node(n, &index, &mut inf)
        } else {
            None
        };
        match sized {
            // A negative or overflowing size means the file lied somewhere: unsized.
            Some(outs) if outs.iter().all(|s| numel(s).is_some()) => {
                for (name, s) in n.output.iter().zip(outs) {
                    if !name.is_empty() {
                        inf.shapes.insert(name.clone(), s);
                    }
                }
            }
            _ => inf
                .unsized_nodes
                .push(format!("{} ({})", node_label(n), n.op_type)),
        }
    }
    inf
}

fn track_value(inf: &mut Inference, name: &str, t: &super::proto::TensorProto) {
    let small = tensor_data::element_count(t).is_ok_and(|n| n <= MAX_TRACKED_VALUES);
    if small {
        if let Ok(v) = tensor_data::to_i64(t) {
            inf.values.insert(name.to_string(), v);
        }
    }
}

/// Element count, `None` on overflow or a negative dim.
fn numel(s: &[i64]) -> Option<i64> {
    s.iter().try_fold(
        1i64,
        |acc, &d| if d < 0 { None } else { acc.checked_mul(d) },
    )
}

/// Normalise a possibly negative axis for a rank.
fn axis(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

/// Numpy-style broadcast of several shapes.
pub fn broadcast(shapes: &[&[i64]]) -> Option<Vec<i64>> {
    let rank = shapes.iter().map(|s| s.len()).max()?;
    let mut out = vec![1i64; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

fn elementwise_values(op: &str, a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let n = a.len().max(b.len());
    if !(a.len() == n || a.len() == 1) || !(b.len() == n || b.len() == 1) {
        return None;
    }
    (0..n)
        .map(|i| {
            let x = a[if a.len() == 1 { 0 } else { i }];
            let y = b[if b.len() == 1 { 0 } else { i }];
            match op {
                "Add" => x.checked_add(y),
                "Sub" => x.checked_sub(y),
                "Mul" => x.checked_mul(y),
                "Div" => x.checked_div_euclid(y),
                _ => None,
            }
        })
        .collect()
}

/// Window output size for conv/pool along one axis.
#[allow(clippy::too_many_arguments)]
fn window_out(
    input: i64,
    kernel: i64,
    stride: i64,
    dilation: i64,
    pad_begin: i64,
    pad_end: i64,
    auto_pad: &str,
    ceil_mode: bool,
) -> Option<i64> {
    if stride <= 0 || kernel <= 0 || dilation <= 0 {
        return None;
    }
    // Attributes come from an untrusted file: compute wide so nothing can overflow.
    let (input, kernel, stride, dilation, pad_begin, pad_end) = (
        input as i128,
        kernel as i128,
        stride as i128,
        dilation as i128,
        pad_begin as i128,
        pad_end as i128,
    );
    let eff = dilation * (kernel - 1) + 1;
    let out = match auto_pad {
        "SAME_UPPER" | "SAME_LOWER" => (input + stride - 1) / stride,
        "VALID" => (input - eff) / stride + 1,
        _ => {
            let span = input + pad_begin + pad_end - eff;
            if span < 0 {
                return None;
            }
            if ceil_mode {
                let o = (span + stride - 1) / stride + 1;
                // The last window must start inside the input or left padding.
                if (o - 1) * stride >= input + pad_begin {
                    o - 1
                } else {
                    o
                }
            } else {
                span / stride + 1
            }
        }
    };
    i64::try_from(out).ok().filter(|&o| o >= 0)
}

/// Output spatial dims of a conv or pool.
fn windowed(n: &NodeProto, x: &[i64], kernel: &[i64]) -> Option<Vec<i64>> {
    let sp = x.len().checked_sub(2)?;
    if kernel.len() != sp {
        return None;
    }
    let strides = n.attr_ints_or("strides", &vec![1; sp]).ok()?;
    let dil = n.attr_ints_or("dilations", &vec![1; sp]).ok()?;
    let pads = n.attr_ints_or("pads", &vec![0; 2 * sp]).ok()?;
    let auto_pad = n.attr_s_or("auto_pad", "NOTSET").ok()?;
    let ceil_mode = n.attr_i_or("ceil_mode", 0).ok()? != 0;
    if strides.len() != sp || dil.len() != sp || pads.len() != 2 * sp {
        return None;
    }
    (0..sp)
        .map(|i| {
            window_out(
                x[2 + i],
                kernel[i],
                strides[i],
                dil[i],
                pads[i],
                pads[sp + i],
                &auto_pad,
                ceil_mode,
            )
        })
        .collect()
}

/// Axes from an attribute (older opsets) or an input (newer ones).
fn axes_of(n: &NodeProto, input: usize, inf: &Inference) -> Option<Option<Vec<i64>>> {
    if let Ok(Some(a)) = n.attr_opt_ints("axes") {
        return Some(Some(a));
    }
    match n.input.get(input).filter(|s| !s.is_empty()) {
        None => Some(None),
        Some(name) => inf.values.get(name).cloned().map(Some),
    }
}

fn float_const(index: &GraphIndex, name: &str) -> Option<Vec<f32>> {
    let t = index.constant(name)?;
    tensor_data::to_f32(t).ok()
}

/// Shapes of a node's outputs, or `None` when it cannot be sized. Also records values of
/// small integer outputs where they can be computed.
fn infer_node(n: &NodeProto, index: &GraphIndex, inf: &mut Inference) -> Option<Vec<Vec<i64>>> {
    let shape_of = |i: usize| -> Option<Vec<i64>> {
        n.input
            .get(i)
            .filter(|s| !s.is_empty())
            .and_then(|s| inf.shapes.get(s).cloned())
    };
    let value_of = |i: usize| -> Option<Vec<i64>> {
        n.input
            .get(i)
            .filter(|s| !s.is_empty())
            .and_then(|s| inf.values.get(s).cloned())
    };
    let out0 = n.output.first().cloned().unwrap_or_default();
    let op = n.op_type.as_str();
    let one = |s: Vec<i64>| Some(vec![s]);
    match op {
        "Constant" => {
            let t = super::patch::constant_tensor(n).ok()?;
            track_value(inf, &out0, &t);
            one(t.dims)
        }
        "Relu"
        | "Sigmoid"
        | "HardSigmoid"
        | "HardSwish"
        | "Tanh"
        | "Clip"
        | "LeakyRelu"
        | "Exp"
        | "Log"
        | "Sqrt"
        | "Neg"
        | "Abs"
        | "Erf"
        | "Identity"
        | "Softmax"
        | "LogSoftmax"
        | "Not"
        | "Floor"
        | "Ceil"
        | "Round"
        | "Reciprocal"
        | "Gelu"
        | "Elu"
        | "Selu"
        | "Softplus"
        | "Softsign"
        | "Sign"
        | "Sin"
        | "Cos"
        | "Mish"
        | "IsNaN"
        | "QuantizeLinear"
        | "DequantizeLinear"
        | "InstanceNormalization"
        | "LRN"
        | "LayerNormalization"
        | "BatchNormalization"
        | "Dropout"
        | "Cast"
        | "CastLike"
        | "Hardmax"
        | "Celu"
        | "ThresholdedRelu"
        | "Shrink"
        | "Trilu"
        | "CumSum"
        | "ScatterElements"
        | "ScatterND"
        | "Scatter"
        | "ReverseSequence"
        | "BitwiseNot"
        | "MeanVarianceNormalization"
        | "GroupNormalization"
        | "RMSNormalization" => {
            let s = shape_of(0)?;
            if matches!(op, "Identity" | "Cast") {
                if let Some(v) = value_of(0) {
                    inf.values.insert(out0.clone(), v);
                }
            }
            // Extra outputs (Dropout mask, BatchNorm training stats) are left unsized.
            one(s)
        }
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Sum" | "Mean" | "Equal"
        | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" | "Xor"
        | "Where" | "PRelu" | "Mod" | "BitShift" => {
            let shapes: Vec<Vec<i64>> = (0..n.input.len()).map(shape_of).collect::<Option<_>>()?;
            let refs: Vec<&[i64]> = shapes.iter().map(Vec::as_slice).collect();
            let s = broadcast(&refs)?;
            if let (Some(a), Some(b)) = (value_of(0), value_of(1)) {
                if let Some(v) = elementwise_values(op, &a, &b) {
                    inf.values.insert(out0.clone(), v);
                }
            }
            one(s)
        }
        "Conv" => {
            let x = shape_of(0)?;
            let w = shape_of(1)?;
            let kernel = n.attr_ints_or("kernel_shape", w.get(2..)?).ok()?;
            let mut out = vec![*x.first()?, *w.first()?];
            out.extend(windowed(n, &x, &kernel)?);
            one(out)
        }
        "ConvTranspose" => {
            let x = shape_of(0)?;
            let w = shape_of(1)?;
            let sp = x.len().checked_sub(2)?;
            let group = n.attr_i_or("group", 1).ok()?;
            let mut out = vec![x[0], w.get(1)?.checked_mul(group)?];
            if let Ok(Some(os)) = n.attr_opt_ints("output_shape") {
                let os = &os[os.len().checked_sub(sp)?..];
                out.extend_from_slice(os);
                return one(out);
            }
            let kernel = n.attr_ints_or("kernel_shape", w.get(2..)?).ok()?;
            let strides = n.attr_ints_or("strides", &vec![1; sp]).ok()?;
            let dil = n.attr_ints_or("dilations", &vec![1; sp]).ok()?;
            let pads = n.attr_ints_or("pads", &vec![0; 2 * sp]).ok()?;
            let opad = n.attr_ints_or("output_padding", &vec![0; sp]).ok()?;
            let auto_pad = n.attr_s_or("auto_pad", "NOTSET").ok()?;
            if kernel.len() != sp || strides.len() != sp || pads.len() != 2 * sp {
                return None;
            }
            let wide = |v: i64| v as i128;
            for i in 0..sp {
                let o = if auto_pad.starts_with("SAME") {
                    wide(x[2 + i]) * wide(strides[i])
                } else {
                    wide(strides[i]) * (wide(x[2 + i]) - 1)
                        + wide(opad.get(i).copied().unwrap_or(0))
                        + (wide(kernel[i]) - 1) * wide(dil.get(i).copied().unwrap_or(1))
                        + 1
                        - wide(pads[i])
                        - wide(pads[sp + i])
                };
                out.push(i64::try_from(o).ok()?);
            }
            one(out)
        }
        "MaxPool" | "AveragePool" | "LpPool" => {
            let x = shape_of(0)?;
            let kernel = n.attr_ints("kernel_shape").ok()?;
            let spatial = windowed(n, &x, &kernel)?;
            let mut out = vec![x[0], x[1]];
            out.extend(spatial);
            // MaxPool's optional Indices output has the same shape.
            Some(vec![out.clone(), out])
        }
        "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => {
            let x = shape_of(0)?;
            let mut out = x.clone();
            for d in out.iter_mut().skip(2) {
                *d = 1;
            }
            one(out)
        }
        "Concat" => {
            let shapes: Vec<Vec<i64>> = (0..n.input.len()).map(shape_of).collect::<Option<_>>()?;
            let first = shapes.first()?.clone();
            let a = axis(n.attr_i("axis").ok()?, first.len())?;
            let mut out = first;
            out[a] = shapes
                .iter()
                .try_fold(0i64, |acc, s| acc.checked_add(*s.get(a)?))?;
            let values: Option<Vec<Vec<i64>>> = (0..n.input.len()).map(value_of).collect();
            if let Some(vs) = values {
                if out.len() == 1 {
                    inf.values.insert(out0.clone(), vs.concat());
                }
            }
            one(out)
        }
        "Reshape" => {
            let x = shape_of(0)?;
            let target = match value_of(1) {
                Some(v) => v,
                None => n.attr_opt_ints("shape").ok()??,
            };
            let allow_zero = n.attr_i_or("allowzero", 0).ok()? != 0;
            let mut out: Vec<i64> = target
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if d == 0 && !allow_zero {
                        x.get(i).copied().unwrap_or(0)
                    } else {
                        d
                    }
                })
                .collect();
            let unknown: Vec<usize> = (0..out.len()).filter(|&i| out[i] == -1).collect();
            match unknown.as_slice() {
                [] => {}
                [i] => {
                    let known =
                        numel(&out.iter().copied().filter(|&d| d != -1).collect::<Vec<_>>())?;
                    if known == 0 {
                        return None;
                    }
                    out[*i] = numel(&x)? / known;
                }
                _ => return None,
            }
            if out.iter().any(|&d| d < 0) || numel(&out)? != numel(&x)? {
                return None;
            }
            if let Some(v) = value_of(0) {
                inf.values.insert(out0.clone(), v);
            }
            one(out)
        }
        "Flatten" => {
            let x = shape_of(0)?;
            let a = n.attr_i_or("axis", 1).ok()?;
            let a = if a < 0 { a + x.len() as i64 } else { a };
            if a < 0 || a > x.len() as i64 {
                return None;
            }
            let (l, r) = x.split_at(a as usize);
            one(vec![numel(l)?, numel(r)?])
        }
        "Transpose" => {
            let x = shape_of(0)?;
            let perm = n
                .attr_ints_or("perm", &(0..x.len() as i64).rev().collect::<Vec<_>>())
                .ok()?;
            let out = perm
                .iter()
                .map(|&p| axis(p, x.len()).map(|a| x[a]))
                .collect::<Option<Vec<_>>>()?;
            one(out)
        }
        "MatMul" | "MatMulInteger" | "QLinearMatMul" => {
            let (ia, ib) = if op == "QLinearMatMul" {
                (0, 3)
            } else {
                (0, 1)
            };
            let a = shape_of(ia)?;
            let b = shape_of(ib)?;
            one(matmul_shape(&a, &b)?)
        }
        "Gemm" => {
            let a = shape_of(0)?;
            let b = shape_of(1)?;
            if a.len() != 2 || b.len() != 2 {
                return None;
            }
            let m = if n.attr_i_or("transA", 0).ok()? != 0 {
                a[1]
            } else {
                a[0]
            };
            let nn = if n.attr_i_or("transB", 0).ok()? != 0 {
                b[0]
            } else {
                b[1]
            };
            one(vec![m, nn])
        }
        "Resize" | "Upsample" => {
            let x = shape_of(0)?;
            let scales_input = if op == "Upsample" || n.input.len() == 2 {
                1
            } else {
                2
            };
            if let Some(sizes) = n.input.get(3).filter(|s| !s.is_empty()) {
                if let Some(v) = inf.values.get(sizes) {
                    if v.len() == x.len() {
                        return one(v.clone());
                    }
                }
            }
            let scales = match n.input.get(scales_input).filter(|s| !s.is_empty()) {
                Some(name) => float_const(index, name)?,
                None => n.attr_opt_floats("scales").ok()??,
            };
            if scales.len() != x.len() {
                return None;
            }
            one(x
                .iter()
                .zip(&scales)
                .map(|(&d, &s)| (d as f64 * s as f64).floor() as i64)
                .collect())
        }
        "Shape" => {
            let x = shape_of(0)?;
            let r = x.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let start = clamp(n.attr_i_or("start", 0).ok()?);
            let end = clamp(n.attr_i_or("end", r).ok()?);
            let v = x.get(start..end.max(start)).unwrap_or(&[]).to_vec();
            let len = v.len() as i64;
            inf.values.insert(out0.clone(), v);
            one(vec![len])
        }
        "Size" => {
            let x = shape_of(0)?;
            inf.values.insert(out0.clone(), vec![numel(&x)?]);
            one(vec![])
        }
        "Gather" => {
            let data = shape_of(0)?;
            let idx = shape_of(1)?;
            let a = axis(n.attr_i_or("axis", 0).ok()?, data.len())?;
            let mut out = data[..a].to_vec();
            out.extend_from_slice(&idx);
            out.extend_from_slice(&data[a + 1..]);
            if let (Some(v), Some(i), 1) = (value_of(0), value_of(1), data.len()) {
                let picked: Option<Vec<i64>> = i
                    .iter()
                    .map(|&k| {
                        let k = if k < 0 { k + v.len() as i64 } else { k };
                        v.get(usize::try_from(k).ok()?).copied()
                    })
                    .collect();
                if let Some(p) = picked {
                    inf.values.insert(out0.clone(), p);
                }
            }
            one(out)
        }
        "Unsqueeze" => {
            let x = shape_of(0)?;
            let axes = axes_of(n, 1, inf)??;
            let rank = x.len() + axes.len();
            let mut norm: Vec<usize> =
                axes.iter().map(|&a| axis(a, rank)).collect::<Option<_>>()?;
            norm.sort_unstable();
            let mut out = x.clone();
            for a in norm {
                if a > out.len() {
                    return None;
                }
                out.insert(a, 1);
            }
            if let Some(v) = value_of(0) {
                inf.values.insert(out0.clone(), v);
            }
            one(out)
        }
        "Squeeze" => {
            let x = shape_of(0)?;
            let out: Vec<i64> = match axes_of(n, 1, inf)? {
                None => x.iter().copied().filter(|&d| d != 1).collect(),
                Some(axes) => {
                    let norm: Vec<usize> = axes
                        .iter()
                        .map(|&a| axis(a, x.len()))
                        .collect::<Option<_>>()?;
                    x.iter()
                        .enumerate()
                        .filter(|(i, _)| !norm.contains(i))
                        .map(|(_, &d)| d)
                        .collect()
                }
            };
            if let Some(v) = value_of(0) {
                inf.values.insert(out0.clone(), v);
            }
            one(out)
        }
        "Slice" => {
            let x = shape_of(0)?;
            let (starts, ends, axes, steps) = if n.input.len() >= 3 {
                (
                    value_of(1)?,
                    value_of(2)?,
                    match n.input.get(3).filter(|s| !s.is_empty()) {
                        Some(_) => Some(value_of(3)?),
                        None => None,
                    },
                    match n.input.get(4).filter(|s| !s.is_empty()) {
                        Some(_) => Some(value_of(4)?),
                        None => None,
                    },
                )
            } else {
                (
                    n.attr_ints("starts").ok()?,
                    n.attr_ints("ends").ok()?,
                    n.attr_opt_ints("axes").ok()?,
                    None,
                )
            };
            let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
            if ends.len() != starts.len()
                || axes.len() != starts.len()
                || steps.len() != starts.len()
            {
                return None;
            }
            let mut out = x.clone();
            let mut ranges = Vec::new();
            for i in 0..starts.len() {
                let a = axis(axes[i], x.len())?;
                let (s, e, st) = slice_range(x[a], starts[i], ends[i], steps[i])?;
                let (s, e, st) = (s as i128, e as i128, st as i128);
                let len = if st > 0 {
                    ((e - s).max(0) + st - 1) / st
                } else {
                    ((s - e).max(0) - st - 1) / (-st)
                };
                out[a] = i64::try_from(len).ok()?;
                ranges.push((a, s, st, out[a] as i128));
            }
            if let (Some(v), 1) = (value_of(0), x.len()) {
                if let Some(&(_, s, st, len)) = ranges.first() {
                    let picked: Vec<i64> = (0..len.min(MAX_TRACKED_VALUES as i128))
                        .filter_map(|k| v.get(usize::try_from(s + k * st).ok()?).copied())
                        .collect();
                    inf.values.insert(out0.clone(), picked);
                }
            }
            one(out)
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2"
        | "ReduceL1" | "ReduceLogSumExp" | "ReduceSumSquare" | "ArgMax" | "ArgMin" => {
            let x = shape_of(0)?;
            let keep = n.attr_i_or("keepdims", 1).ok()? != 0;
            let axes: Vec<usize> = if op.starts_with("Arg") {
                vec![axis(n.attr_i_or("axis", 0).ok()?, x.len())?]
            } else {
                match axes_of(n, 1, inf)? {
                    Some(a) if !a.is_empty() => {
                        a.iter().map(|&a| axis(a, x.len())).collect::<Option<_>>()?
                    }
                    _ => {
                        if n.attr_i_or("noop_with_empty_axes", 0).ok()? != 0 {
                            return one(x);
                        }
                        (0..x.len()).collect()
                    }
                }
            };
            let mut out = Vec::new();
            for (i, &d) in x.iter().enumerate() {
                if axes.contains(&i) {
                    if keep {
                        out.push(1);
                    }
                } else {
                    out.push(d);
                }
            }
            one(out)
        }
        "Pad" => {
            let x = shape_of(0)?;
            let pads = match n.attr_opt_ints("pads").ok()? {
                Some(p) => p,
                None => value_of(1)?,
            };
            let axes: Vec<usize> = match n.input.get(3).filter(|s| !s.is_empty()) {
                Some(_) => value_of(3)?
                    .iter()
                    .map(|&a| axis(a, x.len()))
                    .collect::<Option<_>>()?,
                None => (0..x.len()).collect(),
            };
            if pads.len() != 2 * axes.len() {
                return None;
            }
            let mut out = x.clone();
            for (k, &a) in axes.iter().enumerate() {
                out[a] = out[a]
                    .checked_add(pads[k])?
                    .checked_add(pads[axes.len() + k])?;
            }
            one(out)
        }
        "Expand" => {
            let x = shape_of(0)?;
            let s = value_of(1)?;
            one(broadcast(&[&x, &s])?)
        }
        "ConstantOfShape" => {
            let v = value_of(0)?;
            if let Ok(Some(t)) = n.attr_opt_t("value") {
                if numel(&v)? as usize <= MAX_TRACKED_VALUES {
                    if let Ok(x) = tensor_data::to_i64(t) {
                        if let Some(&x) = x.first() {
                            inf.values
                                .insert(out0.clone(), vec![x; numel(&v)? as usize]);
                        }
                    }
                }
            }
            one(v)
        }
        "Range" => {
            let (start, limit, delta) = (value_of(0)?, value_of(1)?, value_of(2)?);
            let (start, limit, delta) = (*start.first()?, *limit.first()?, *delta.first()?);
            if delta == 0 {
                return None;
            }
            let (span, d) = ((limit as i128) - (start as i128), delta as i128);
            let len = i64::try_from(((span + d - d.signum()) / d).max(0)).ok()?;
            if len as usize <= MAX_TRACKED_VALUES {
                let v = (0..len).map(|k| start + k * delta).collect();
                inf.values.insert(out0.clone(), v);
            }
            one(vec![len])
        }
        "Tile" => {
            let x = shape_of(0)?;
            let reps = value_of(1)?;
            if reps.len() != x.len() {
                return None;
            }
            one(x
                .iter()
                .zip(&reps)
                .map(|(&d, &r)| d.checked_mul(r))
                .collect::<Option<_>>()?)
        }
        "GatherElements" => one(shape_of(1)?),
        "TopK" => {
            let x = shape_of(0)?;
            let a = axis(n.attr_i_or("axis", -1).ok()?, x.len())?;
            let k = match n.attr_opt_i("k").ok()? {
                Some(k) => k,
                None => *value_of(1)?.first()?,
            };
            let mut out = x;
            out[a] = k;
            Some(vec![out.clone(), out])
        }
        "DepthToSpace" | "SpaceToDepth" => {
            let x = shape_of(0)?;
            let b = n.attr_i("blocksize").ok()?;
            if x.len() != 4 || b <= 0 {
                return None;
            }
            let bb = b.checked_mul(b)?;
            if op == "DepthToSpace" {
                if x[1] % bb != 0 {
                    return None;
                }
                one(vec![
                    x[0],
                    x[1] / bb,
                    x[2].checked_mul(b)?,
                    x[3].checked_mul(b)?,
                ])
            } else {
                if x[2] % b != 0 || x[3] % b != 0 {
                    return None;
                }
                one(vec![x[0], x[1].checked_mul(bb)?, x[2] / b, x[3] / b])
            }
        }
        "GridSample" => {
            let x = shape_of(0)?;
            let grid = shape_of(1)?;
            if x.len() < 3 || grid.len() != x.len() {
                return None;
            }
            let mut out = vec![x[0], x[1]];
            out.extend_from_slice(&grid[1..grid.len() - 1]);
            one(out)
        }
        "Split" => {
            let x = shape_of(0)?;
            let a = axis(n.attr_i_or("axis", 0).ok()?, x.len())?;
            let parts = n.output.len() as i64;
            let split = match n.attr_opt_ints("split").ok()? {
                Some(s) => s,
                None => match n.input.get(1).filter(|s| !s.is_empty()) {
                    Some(_) => value_of(1)?,
                    None => {
                        if parts == 0 || x[a] % parts != 0 {
                            return None;
                        }
                        vec![x[a] / parts; parts as usize]
                    }
                },
            };
            Some(
                split
                    .iter()
                    .map(|&s| {
                        let mut o = x.clone();
                        o[a] = s;
                        o
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// Clamp Slice bounds the way the ONNX spec does.
fn slice_range(dim: i64, start: i64, end: i64, step: i64) -> Option<(i64, i64, i64)> {
    if step == 0 {
        return None;
    }
    let fix = |v: i64, lo: i64, hi: i64| {
        let v = if v < 0 { v.saturating_add(dim) } else { v };
        v.clamp(lo, hi)
    };
    if step > 0 {
        Some((fix(start, 0, dim), fix(end, 0, dim), step))
    } else {
        Some((fix(start, 0, dim - 1), fix(end, -1, dim - 1), step))
    }
}

/// Numpy matmul output shape.
pub fn matmul_shape(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let a2: Vec<i64> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<i64> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k1) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, nn) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k1 != k2 {
        return None;
    }
    let batch = broadcast(&[&a2[..a2.len() - 2], &b2[..b2.len() - 2]])?;
    let mut out = batch;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(nn);
    }
    Some(out)
}

/// Multiply-accumulate estimate at inferred shapes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Total multiply-accumulates of the sized compute nodes.
    pub macs: u64,
    /// 2 × `macs`.
    pub flops: u64,
    /// MACs by op type.
    pub macs_by_op: BTreeMap<String, u64>,
    /// Conv/ConvTranspose/MatMul/Gemm nodes that could not be sized, as `label (OpType)`.
    pub unsized_nodes: Vec<String>,
    /// How compute inside `If`/`Loop`/`Scan` subgraphs was counted (which branch, how
    /// many iterations), one line per such node that holds any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subgraphs: Vec<String>,
}

const COMPUTE_OPS: [&str; 4] = ["Conv", "ConvTranspose", "MatMul", "Gemm"];

/// Whether `g` (or a subgraph of it) holds a counted compute node.
fn has_compute(g: &GraphProto) -> bool {
    g.node.iter().any(|n| {
        COMPUTE_OPS.contains(&n.op_type.as_str())
            || n.attribute
                .iter()
                .filter_map(|a| a.g.as_ref())
                .any(has_compute)
    })
}

fn subgraph<'a>(n: &'a NodeProto, name: &str) -> Option<&'a GraphProto> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.g.as_ref())
}

/// Add `sub` (the cost of one subgraph) to `c`, `times` times, its unsized nodes prefixed.
fn add_cost(c: &mut Cost, sub: &Cost, times: u64, prefix: &str) {
    c.macs = c.macs.saturating_add(sub.macs.saturating_mul(times));
    for (op, m) in &sub.macs_by_op {
        let e = c.macs_by_op.entry(op.clone()).or_insert(0);
        *e = e.saturating_add(m.saturating_mul(times));
    }
    c.unsized_nodes
        .extend(sub.unsized_nodes.iter().map(|u| format!("{prefix}/{u}")));
    c.subgraphs.extend(sub.subgraphs.iter().cloned());
}

/// The compute of an `If`, `Loop` or `Scan` node's subgraphs (issue 17 bug 6: Silero VAD
/// keeps all of its compute inside `If` branches, where a main-graph count sees 0).
/// `If`: the larger branch is counted (only one runs), and the note says which. `Loop`:
/// the body times the trip count when it is a known constant; otherwise the body's nodes
/// are reported unsized, so the total is "unknown", never an undercount. `Scan`: not
/// sized (its body sees slices), reported unsized.
fn subgraph_cost(n: &NodeProto, inf: &Inference, c: &mut Cost) {
    let label = node_label(n);
    let sub_inf =
        |g: &GraphProto, extra: BTreeMap<String, Vec<i64>>| infer_from(g, &extra, inf.clone());
    match n.op_type.as_str() {
        "If" => {
            let branches: Vec<(&str, Cost)> = ["then_branch", "else_branch"]
                .iter()
                .filter_map(|b| subgraph(n, b).map(|g| (*b, g)))
                .filter(|(_, g)| has_compute(g))
                .map(|(b, g)| (b, cost(g, &sub_inf(g, BTreeMap::new()))))
                .collect();
            let Some((name, big)) = branches.iter().max_by_key(|(_, k)| k.macs) else {
                return;
            };
            let all: Vec<String> = branches
                .iter()
                .map(|(b, k)| format!("{b} {} MACs", k.macs))
                .collect();
            c.subgraphs.push(format!(
                "If {label}: the larger branch ({name}) counted, as only one runs ({})",
                all.join(", ")
            ));
            add_cost(c, big, 1, &format!("{label}/{name}"));
        }
        "Loop" => {
            let Some(body) = subgraph(n, "body").filter(|g| has_compute(g)) else {
                return;
            };
            // Body inputs: iteration number, condition, then the loop-carried values.
            let mut extra = BTreeMap::new();
            for (i, vi) in body.input.iter().enumerate() {
                let shape = match i {
                    0 | 1 => Some(vec![]),
                    _ => n.input.get(i).and_then(|x| inf.shapes.get(x)).cloned(),
                };
                if let Some(s) = shape {
                    extra.insert(vi.name.clone(), s);
                }
            }
            let per = cost(body, &sub_inf(body, extra));
            let trips = n
                .input
                .first()
                .filter(|m| !m.is_empty())
                .and_then(|m| inf.values.get(m))
                .and_then(|v| v.first().copied())
                .and_then(|t| u64::try_from(t).ok());
            match trips {
                Some(t) => {
                    c.subgraphs.push(format!(
                        "Loop {label}: body counted {t} times ({} MACs per iteration)",
                        per.macs
                    ));
                    add_cost(c, &per, t, &format!("{label}/body"));
                }
                None => {
                    c.subgraphs.push(format!(
                        "Loop {label}: trip count unknown ({} MACs per iteration), total unknown",
                        per.macs
                    ));
                    c.unsized_nodes
                        .push(format!("{label} (Loop: trip count unknown)"));
                }
            }
        }
        _ => {
            if n.attribute
                .iter()
                .filter_map(|a| a.g.as_ref())
                .any(has_compute)
            {
                c.subgraphs.push(format!(
                    "{} {label}: subgraph compute not counted",
                    n.op_type
                ));
                c.unsized_nodes
                    .push(format!("{label} ({}: subgraph not sized)", n.op_type));
            }
        }
    }
}

/// MACs of one node at the inferred shapes (`None` if not a counted op or not sized).
pub fn node_macs(n: &NodeProto, inf: &Inference) -> Option<u64> {
    let s = |i: usize| n.input.get(i).and_then(|name| inf.shapes.get(name));
    let out = n.output.first().and_then(|o| inf.shapes.get(o))?;
    let prod = |v: &[i64]| -> Option<u64> {
        v.iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
    };
    match n.op_type.as_str() {
        "Conv" => {
            // Every output element sums C/group × kernel products: that is W's dims 1..
            let w = s(1)?;
            prod(out)?.checked_mul(prod(w.get(1..)?)?)
        }
        "ConvTranspose" => {
            // Every input element scatters into (M/group) × kernel outputs: W's dims 1..
            let x = s(0)?;
            let w = s(1)?;
            prod(x)?.checked_mul(prod(w.get(1..)?)?)
        }
        "MatMul" => {
            let a = s(0)?;
            let k = *a.last()?;
            prod(out)?.checked_mul(u64::try_from(k).ok()?)
        }
        "Gemm" => {
            let a = s(0)?;
            let k = if n.attr_i_or("transA", 0).ok()? != 0 {
                a.first()?
            } else {
                a.last()?
            };
            prod(out)?.checked_mul(u64::try_from(*k).ok()?)
        }
        _ => None,
    }
}

/// Count MACs/FLOPs of Conv, ConvTranspose, MatMul and Gemm in the main graph.
pub fn cost(graph: &GraphProto, inf: &Inference) -> Cost {
    let mut c = Cost::default();
    for n in &graph.node {
        if is_default_domain(&n.domain) && n.attribute.iter().any(|a| a.g.is_some()) {
            subgraph_cost(n, inf, &mut c);
            continue;
        }
        if !is_default_domain(&n.domain)
            || !matches!(
                n.op_type.as_str(),
                "Conv" | "ConvTranspose" | "MatMul" | "Gemm"
            )
        {
            continue;
        }
        match node_macs(n, inf) {
            Some(m) => {
                c.macs = c.macs.saturating_add(m);
                let by_op = c.macs_by_op.entry(n.op_type.clone()).or_insert(0);
                *by_op = by_op.saturating_add(m);
            }
            None => c
                .unsized_nodes
                .push(format!("{} ({})", node_label(n), n.op_type)),
        }
    }
    c.flops = c.macs.saturating_mul(2);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attr;
    use crate::model::builder::{self, fixed, node, GraphBuilder, WeightStorage};
    use crate::model::DataType;

    fn run(g: &GraphProto, x: &[i64]) -> Inference {
        infer(g, &BTreeMap::from([("x".to_string(), x.to_vec())]))
    }

    #[test]
    fn conv_net_shapes_and_macs_match_hand_counts() {
        let m = builder::conv_net(1);
        let inf = run(m.graph(), &[1, 3, 16, 16]);
        assert!(inf.unsized_nodes.is_empty(), "{:?}", inf.unsized_nodes);
        assert_eq!(inf.shapes["y"], vec![1, 10]);
        let c = cost(m.graph(), &inf);
        // conv1: 8x16x16 outputs x 27; conv2: 16x4x4 x 72; fc: 10 x 256.
        let want = 8 * 256 * 27 + 16 * 16 * 72 + 10 * 256;
        assert_eq!(c.macs, want);
        assert_eq!(c.flops, 2 * want);
        assert_eq!(c.macs_by_op["Gemm"], 2560);
    }

    #[test]
    fn window_arithmetic_follows_the_spec() {
        // 7x7, k3 s2 p1 -> 4; ceil mode 6, k3 s2 no pad: floor 2, ceil 3.
        assert_eq!(window_out(7, 3, 2, 1, 1, 1, "NOTSET", false), Some(4));
        assert_eq!(window_out(6, 3, 2, 1, 0, 0, "NOTSET", false), Some(2));
        assert_eq!(window_out(6, 3, 2, 1, 0, 0, "NOTSET", true), Some(3));
        assert_eq!(window_out(7, 3, 2, 1, 0, 0, "SAME_UPPER", false), Some(4));
        assert_eq!(window_out(7, 3, 1, 2, 0, 0, "VALID", false), Some(3));
    }

    #[test]
    fn shape_gather_concat_reshape_chain_is_followed() {
        // y = Reshape(x, Concat(Gather(Shape(x), 0), [-1])) : [N, C*H*W]
        let mut b = GraphBuilder::new("chain", 1, WeightStorage::ConstantNodes);
        b.input("x", DataType::Float, &fixed(&[2, 3, 4, 5]));
        let i0 = b.ints("i0", &[0]);
        let m1 = b.ints("m1", &[-1]);
        let s = b.op("Shape", &["x"], vec![]);
        let g = b.op("Gather", &[&s, &i0], vec![attr::int("axis", 0)]);
        let c = b.op("Concat", &[&g, &m1], vec![attr::int("axis", 0)]);
        let r = b.op("Reshape", &["x", &c], vec![]);
        let t = b.op("Transpose", &[&r], vec![]);
        let w = b.weight("w", &[2, 7], -1.0, 1.0);
        let y = b.op("MatMul", &[&t, &w], vec![]);
        let m = b.into_model();
        let inf = run(m.graph(), &[2, 3, 4, 5]);
        assert_eq!(inf.values[&c], vec![2, -1]);
        assert_eq!(inf.shapes[&r], vec![2, 60]);
        assert_eq!(inf.shapes[&t], vec![60, 2]);
        assert_eq!(inf.shapes[&y], vec![60, 7]);
        assert_eq!(cost(m.graph(), &inf).macs, 60 * 7 * 2);
    }

    #[test]
    fn conv_transpose_resize_and_pools() {
        let mut b = GraphBuilder::new("up", 1, WeightStorage::Initializer);
        b.input("x", DataType::Float, &fixed(&[1, 4, 8, 8]));
        let w = b.weight("w", &[4, 2, 2, 2], -1.0, 1.0);
        let ct = b.op(
            "ConvTranspose",
            &["x", &w],
            vec![attr::ints("strides", &[2, 2])],
        );
        let scales = b.constant(tensor_data::from_f32("sc", &[4], &[1.0, 1.0, 2.0, 2.0]).unwrap());
        let rs = b.op("Resize", &[&ct, "", &scales], vec![]);
        let gp = b.op("GlobalAveragePool", &[&rs], vec![]);
        let mp = b.op(
            "MaxPool",
            &[&rs],
            vec![
                attr::ints("kernel_shape", &[3, 3]),
                attr::ints("strides", &[2, 2]),
            ],
        );
        let m = b.into_model();
        let inf = run(m.graph(), &[1, 4, 8, 8]);
        assert_eq!(inf.shapes[&ct], vec![1, 2, 16, 16]);
        assert_eq!(inf.shapes[&rs], vec![1, 2, 32, 32]);
        assert_eq!(inf.shapes[&gp], vec![1, 2, 1, 1]);
        assert_eq!(inf.shapes[&mp], vec![1, 2, 15, 15]);
        // Each of 4x8x8 inputs scatters into 2x2x2 outputs.
        assert_eq!(cost(m.graph(), &inf).macs, 4 * 64 * 8);
    }

    /// Compute inside `If` branches (Silero VAD keeps all of its there) is counted: the
    /// larger branch, with a note saying so; a `Loop` with an unknown trip count makes the
    /// total unknown rather than an undercount.
    #[test]
    fn compute_inside_if_branches_counts_the_larger_branch() {
        let mut m = builder::if_model(1);
        let w = |name: &str, dims: &[i64]| {
            let n: i64 = dims.iter().product();
            tensor_data::from_f32(name, dims, &vec![0.5; n as usize]).unwrap()
        };
        let g = m.graph_mut();
        g.initializer.push(w("wt", &[4, 8]));
        g.initializer.push(w("we", &[4, 2]));
        for a in &mut g.node[1].attribute {
            let wname = if a.name == "then_branch" { "wt" } else { "we" };
            let b = a.g.as_mut().unwrap();
            b.node[0].op_type = "MatMul".into();
            b.node[0].input.push(wname.into());
        }
        let inf = infer(
            m.graph(),
            &BTreeMap::from([("x".to_string(), vec![3, 4]), ("cond".to_string(), vec![])]),
        );
        let c = cost(m.graph(), &inf);
        assert_eq!(c.macs, 3 * 4 * 8, "{c:?}");
        assert!(c.unsized_nodes.is_empty(), "{c:?}");
        assert_eq!(c.subgraphs.len(), 1);
        assert!(c.subgraphs[0].contains("the larger branch (then_branch) counted"));
        assert!(
            c.subgraphs[0].contains("else_branch 24 MACs"),
            "{}",
            c.subgraphs[0]
        );

        // The same body as a Loop with a trip count from an input: unknown, not 0.
        let g = m.graph_mut();
        let body = g.node[1].attribute[0].g.clone().unwrap();
        g.node[1] = node(
            "loop",
            "Loop",
            &["trips", ""],
            &[],
            vec![attr::graph("body", body)],
        );
        let inf = infer(m.graph(), &BTreeMap::from([("x".to_string(), vec![3, 4])]));
        let c = cost(m.graph(), &inf);
        assert_eq!(
            c.unsized_nodes,
            vec!["loop (Loop: trip count unknown)".to_string()]
        );
        assert!(c.subgraphs[0].contains("trip count unknown"));
    }

    #[test]
    fn unknown_ops_are_reported_not_guessed() {
        let mut m = builder::mlp(&[4, 3], 1);
        m.graph_mut()
            .node
            .insert(0, node("mystery", "NonZero", &["x"], &["nz"], vec![]));
        let inf = run(m.graph(), &[1, 4]);
        assert_eq!(inf.unsized_nodes, vec!["mystery (NonZero)".to_string()]);
        // Gemm from unsized input is listed by cost.
        let g = m.graph_mut();
        g.node[1].input[0] = "nz".into();
        let inf = run(m.graph(), &[1, 4]);
        let c = cost(m.graph(), &inf);
        assert_eq!(c.macs, 0);
        assert_eq!(c.unsized_nodes.len(), 1);
    }

    /// Attributes and input sizes are untrusted: extreme values must give "unsized", never
    /// an arithmetic overflow panic.
    #[test]
    fn extreme_attributes_and_sizes_never_panic() {
        use rand::{Rng, SeedableRng};
        let extremes = [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            2,
            1 << 40,
            i64::MAX - 1,
            i64::MAX,
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = builder::conv_net(1);
        let mut t = builder::GraphBuilder::new("ct", 1, WeightStorage::Initializer);
        t.input("x", DataType::Float, &fixed(&[1, 4, 8, 8]));
        let w = t.weight("w", &[4, 2, 2, 2], -1.0, 1.0);
        let ct = t.op(
            "ConvTranspose",
            &["x", &w],
            vec![
                attr::ints("strides", &[2, 2]),
                attr::ints("pads", &[0, 0, 0, 0]),
            ],
        );
        let sh = t.ints("shape", &[1, -1]);
        t.op("Reshape", &[&ct, &sh], vec![]);
        let models = [base, t.into_model()];
        for round in 0..4000 {
            let mut m = models[round % 2].clone();
            let g = m.graph_mut();
            let k = rng.random_range(0..g.node.len());
            let node = &mut g.node[k];
            if let Some(a) = node.attribute.iter_mut().find(|a| !a.ints.is_empty()) {
                let i = rng.random_range(0..a.ints.len());
                a.ints[i] = extremes[rng.random_range(0..extremes.len())];
            }
            let x: Vec<i64> = (0..4)
                .map(|i| {
                    if rng.random_bool(0.3) {
                        extremes[rng.random_range(0..extremes.len())]
                    } else {
                        [1, 3, 16, 16][i]
                    }
                })
                .collect();
            let inf = run(m.graph(), &x);
            let _ = cost(m.graph(), &inf);
        }
    }

    #[test]
    fn range_constant_of_shape_tile_and_depth_to_space() {
        let mut b = GraphBuilder::new("misc", 1, WeightStorage::Initializer);
        b.input("x", DataType::Float, &fixed(&[1, 8, 2, 3]));
        let start = b.ints("start", &[1]);
        let limit = b.ints("limit", &[10]);
        let delta = b.ints("delta", &[3]);
        let r = b.op("Range", &[&start, &limit, &delta], vec![]);
        let c = b.op("ConstantOfShape", &[&r], vec![]);
        let reps = b.ints("reps", &[1, 1, 2, 2]);
        let t = b.op("Tile", &["x", &reps], vec![]);
        let d = b.op("DepthToSpace", &["x"], vec![attr::int("blocksize", 2)]);
        let m = b.into_model();
        let inf = run(m.graph(), &[1, 8, 2, 3]);
        assert_eq!(inf.values[&r], vec![1, 4, 7]);
        assert_eq!(inf.shapes[&c], vec![1, 4, 7]);
        assert_eq!(inf.shapes[&t], vec![1, 8, 4, 6]);
        assert_eq!(inf.shapes[&d], vec![1, 2, 4, 6]);
    }

    #[test]
    fn broadcast_and_matmul_rules() {
        assert_eq!(broadcast(&[&[2, 1, 3], &[4, 1]]), Some(vec![2, 4, 3]));
        assert_eq!(broadcast(&[&[2], &[3]]), None);
        assert_eq!(matmul_shape(&[5, 2, 3], &[3, 4]), Some(vec![5, 2, 4]));
        assert_eq!(matmul_shape(&[3], &[3, 4]), Some(vec![4]));
        assert_eq!(matmul_shape(&[2, 3], &[4, 5]), None);
    }
}
