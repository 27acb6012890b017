//! Dynamic int8 for MatMul-heavy models (transformers, RNN projections): weights are int8
//! offline, activations are quantized per call, so there is no calibration.
//!
//! - `MatMul` with a constant 2-D weight becomes `DynamicQuantizeLinear -> MatMulInteger ->
//!   Cast -> Mul(scales)`, the pattern ONNX Runtime's CPU provider fuses into one
//!   `DynamicQuantizeMatMul` kernel. Its weights are in [-64, 64] too (below).
//! - `LSTM` with constant float `W` and `R` becomes ONNX Runtime's contrib op
//!   `com.microsoft.DynamicQuantizeLSTM` (version 1), which quantizes `X` and the hidden
//!   state per step and runs both gate GEMMs in int8. Its contract (ONNX Runtime's
//!   `docs/ContribOperators.md`, checked on 1.31 by the test below): `W` and `R` are int8
//!   and *transposed* against ONNX `LSTM`, `[num_directions, input_size, 4*hidden_size]` and
//!   `[num_directions, hidden_size, 4*hidden_size]`; `B`, `sequence_lens`, `initial_h`,
//!   `initial_c`, `P` pass through; then `W_scale`, `W_zero_point`, `R_scale`,
//!   `R_zero_point`, shaped `[num_directions]` (per tensor, one per direction) or
//!   `[num_directions, 4*hidden_size]` (per channel: one per gate row of the ONNX weight,
//!   a column of the transposed one). Zero points are 0: weights are symmetric, and in
//!   [-64, 64] rather than [-127, 127] because the u8 x s8 kernel of CPUs without VNNI
//!   saturates on full-range weights (`math::NO_SATURATION_I8_MAX`).
//!   The op has no `layout` attribute, so batch-first LSTMs (`layout = 1`) stay float.
//!
//! Convs stay float: ONNX Runtime's `ConvInteger` is slower than its fp32 convs on x86.

use super::graph::node_key;
use super::math::{quantize_per_channel_sym, quantize_per_tensor_sym, NO_SATURATION_I8_MAX};
use super::nbits::MS_DOMAIN;
use crate::error::Result;
use crate::model::attr::{self, NodeExt};
use crate::model::builder::node;
use crate::model::graph::GraphIndex;
use crate::model::patch::{NodeRef, Patch, Position};
use crate::model::proto::{NodeProto, TensorProto};
use crate::model::{tensor_data, DataType, Model};

/// How many nodes of each kind a dynamic rewrite replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// `MatMul`s turned into `DynamicQuantizeLinear + MatMulInteger`.
    pub matmul: usize,
    /// `LSTM`s turned into `DynamicQuantizeLSTM`.
    pub lstm: usize,
}

impl Counts {
    /// Nodes rewritten in all.
    pub fn total(&self) -> usize {
        self.matmul + self.lstm
    }
}

impl std::fmt::Display for Counts {
    /// `9 MatMul, 1 LSTM`; a kind with none is left out (`13 MatMul`), and `0 MatMul`
    /// when there is nothing at all.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.matmul > 0 || self.lstm == 0 {
            parts.push(format!("{} MatMul", self.matmul));
        }
        if self.lstm > 0 {
            parts.push(format!("{} LSTM", self.lstm));
        }
        f.write_str(&parts.join(", "))
    }
}

/// What the rewrite adds and removes, collected over the graph.
#[derive(Default)]
struct Edits {
    removed: Vec<NodeRef>,
    nodes: Vec<NodeProto>,
    tensors: Vec<TensorProto>,
}

/// Build the patch; returns it and how many nodes of each kind it rewrites.
pub fn emit(
    model: &Model,
    per_channel: bool,
    exclude_nodes: &std::collections::HashSet<String>,
) -> Result<(Patch, Counts)> {
    let g = model.graph();
    let ix = GraphIndex::new(g);
    let mut edits = Edits::default();
    let mut counts = Counts::default();
    for n in &g.node {
        if !n.domain.is_empty() || exclude_nodes.contains(&node_key(n)) {
            continue;
        }
        match n.op_type.as_str() {
            "MatMul" => counts.matmul += usize::from(matmul(n, &ix, per_channel, &mut edits)?),
            "LSTM" => counts.lstm += usize::from(lstm(n, &ix, per_channel, &mut edits)?),
            _ => {}
        }
    }
    let mut p = Patch::new(format!("int8 dynamic: {counts}"));
    if counts.total() > 0 {
        for r in edits.removed {
            p = p.remove_node(r);
        }
        if counts.lstm > 0 {
            p = p.set_opset(MS_DOMAIN, 1);
        }
        p = p.add_nodes(edits.nodes, Position::Topological);
        for t in edits.tensors {
            p = p.set_initializer(t);
        }
    }
    Ok((p, counts))
}

/// Rewrite one MatMul if its weight is a constant 2-D float; returns whether it did.
fn matmul(n: &NodeProto, ix: &GraphIndex, per_channel: bool, edits: &mut Edits) -> Result<bool> {
    let Some(w) = n.input.get(1).and_then(|w| ix.initializer(w)) else {
        return Ok(false);
    };
    if w.dims.len() != 2
        || w.data_type != Some(DataType::Float as i32)
        || ix.is_initializer(&n.input[0])
    {
        return Ok(false);
    }
    let wv = tensor_data::to_vec::<f32>(w)?;
    let dims: Vec<usize> = w.dims.iter().map(|&d| d as usize).collect();
    // [-64, 64], like the LSTM weights: MatMulInteger is ONNX Runtime's u8 x s8 kernel.
    let (q, scales) = if per_channel {
        quantize_per_channel_sym(&wv, &dims, 1, NO_SATURATION_I8_MAX)
    } else {
        let (q, s) = quantize_per_tensor_sym(&wv, NO_SATURATION_I8_MAX);
        (q, vec![s])
    };
    let base = node_key(n);
    let x = &n.input[0];
    let names = |s: &str| format!("{base}_dyn_{s}");
    let (xq, xs, xz, wq, wz, ws, yi, yf, ys) = (
        names("xq"),
        names("xs"),
        names("xz"),
        names("wq"),
        names("wz"),
        names("ws"),
        names("yi"),
        names("yf"),
        names("ys"),
    );
    edits.tensors.push(tensor_data::from_i8(&wq, &w.dims, &q)?);
    edits.tensors.push(tensor_data::from_i8(&wz, &[], &[0])?);
    let sdims: Vec<i64> = if per_channel {
        vec![scales.len() as i64]
    } else {
        vec![]
    };
    edits
        .tensors
        .push(tensor_data::from_f32(&ws, &sdims, &scales)?);
    edits.nodes.push(node(
        &names("DynamicQuantizeLinear"),
        "DynamicQuantizeLinear",
        &[x],
        &[&xq, &xs, &xz],
        vec![],
    ));
    edits.nodes.push(node(
        &names("MatMulInteger"),
        "MatMulInteger",
        &[&xq, &wq, &xz, &wz],
        &[&yi],
        vec![],
    ));
    edits.nodes.push(node(
        &names("Cast"),
        "Cast",
        &[&yi],
        &[&yf],
        vec![attr::int("to", DataType::Float as i64)],
    ));
    edits.nodes.push(node(
        &names("scale_product"),
        "Mul",
        &[&xs, &ws],
        &[&ys],
        vec![],
    ));
    edits.nodes.push(node(
        &names("rescale"),
        "Mul",
        &[&yf, &ys],
        &[&n.output[0]],
        vec![],
    ));
    edits.removed.push(NodeRef::of(n));
    Ok(true)
}

/// The attributes `DynamicQuantizeLSTM` shares with ONNX `LSTM` (all but `layout`).
const LSTM_ATTRIBUTES: &[&str] = &[
    "activation_alpha",
    "activation_beta",
    "activations",
    "clip",
    "direction",
    "hidden_size",
    "input_forget",
];

/// Rewrite one LSTM into `DynamicQuantizeLSTM` if `W` and `R` are constant 3-D floats and
/// its attributes carry over; returns whether it did.
fn lstm(n: &NodeProto, ix: &GraphIndex, per_channel: bool, edits: &mut Edits) -> Result<bool> {
    let float3 = |i: usize| {
        n.input
            .get(i)
            .and_then(|name| ix.initializer(name))
            .filter(|t| t.dims.len() == 3 && t.data_type == Some(DataType::Float as i32))
    };
    let (Some(w), Some(r)) = (float3(1), float3(2)) else {
        return Ok(false);
    };
    // Batch-first (layout = 1) has no equivalent; an attribute we do not know might change
    // the maths, so such nodes stay float rather than be silently reinterpreted.
    if n.attr_i_or("layout", 0)? != 0
        || n.attribute
            .iter()
            .any(|a| a.name != "layout" && !LSTM_ATTRIBUTES.contains(&a.name.as_str()))
    {
        return Ok(false);
    }
    // ONNX LSTM: W [D, 4H, I], R [D, 4H, H]; the two must agree on D and 4H.
    if w.dims[0] != r.dims[0] || w.dims[1] != r.dims[1] || w.dims[1] != 4 * r.dims[2] {
        return Ok(false);
    }
    let base = node_key(n);
    let names = |s: &str| format!("{base}_dyn_{s}");
    // Adds the int8 weight, its scales and zero points; returns their names.
    let mut quantize = |t: &TensorProto, tag: &str| -> Result<[String; 3]> {
        let (q, scales, sdims) = quantize_lstm_weight(t, per_channel)?;
        let (d, rows, cols) = (t.dims[0], t.dims[1], t.dims[2]);
        let made = [
            names(tag),
            names(&format!("{tag}_scale")),
            names(&format!("{tag}_zero_point")),
        ];
        edits
            .tensors
            .push(tensor_data::from_i8(&made[0], &[d, cols, rows], &q)?);
        edits
            .tensors
            .push(tensor_data::from_f32(&made[1], &sdims, &scales)?);
        edits.tensors.push(tensor_data::from_i8(
            &made[2],
            &sdims,
            &vec![0; scales.len()],
        )?);
        Ok(made)
    };
    let [wq, ws, wz] = quantize(w, "W")?;
    let [rq, rs, rz] = quantize(r, "R")?;
    // X, W, R, then B, sequence_lens, initial_h, initial_c, P as they were (absent ones
    // as ""), then W_scale, W_zero_point, R_scale, R_zero_point.
    let optional = |i: usize| n.input.get(i).cloned().unwrap_or_default();
    let mut inputs = vec![n.input[0].clone(), wq, rq];
    inputs.extend((3..8).map(optional));
    inputs.extend([ws, wz, rs, rz]);
    let mut q = NodeProto {
        name: names("DynamicQuantizeLSTM"),
        op_type: "DynamicQuantizeLSTM".into(),
        domain: MS_DOMAIN.into(),
        input: inputs,
        output: n.output.clone(),
        ..Default::default()
    };
    q.attribute = n
        .attribute
        .iter()
        .filter(|a| a.name != "layout")
        .cloned()
        .collect();
    edits.nodes.push(q);
    edits.removed.push(NodeRef::of(n));
    Ok(true)
}

/// Quantize an ONNX LSTM weight `[D, 4H, K]` to symmetric int8 in `[-64, 64]` (see
/// [`NO_SATURATION_I8_MAX`]: full-range weights saturate the AVX2 kernel) and transpose each direction
/// to `[K, 4H]`. Returns the values, the scales and their dims: `[D]` per tensor (one per
/// direction), `[D, 4H]` per channel (one per gate row).
fn quantize_lstm_weight(
    t: &TensorProto,
    per_channel: bool,
) -> Result<(Vec<i8>, Vec<f32>, Vec<i64>)> {
    let v = tensor_data::to_vec::<f32>(t)?;
    let (d, rows, cols) = (t.dims[0] as usize, t.dims[1] as usize, t.dims[2] as usize);
    let (q, scales, sdims) = if per_channel {
        let (q, s) = quantize_per_channel_sym(&v, &[d * rows, cols], 0, NO_SATURATION_I8_MAX);
        (q, s, vec![d as i64, rows as i64])
    } else {
        let mut q = Vec::with_capacity(v.len());
        let mut s = Vec::with_capacity(d);
        for dir in v.chunks(rows * cols) {
            let (qd, sd) = quantize_per_tensor_sym(dir, NO_SATURATION_I8_MAX);
            q.extend(qd);
            s.push(sd);
        }
        (q, s, vec![d as i64])
    };
    let mut out = vec![0i8; q.len()];
    for (k, dir) in q.chunks(rows * cols).enumerate() {
        let o = &mut out[k * rows * cols..(k + 1) * rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                o[c * rows + r] = dir[r * cols + c];
            }
        }
    }
    Ok((out, scales, sdims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::value_info_unshaped;
    use crate::model::{GraphProto, ModelProto};

    #[test]
    fn rewrites_a_constant_weight_matmul_and_keeps_its_output_name() {
        let graph = GraphProto {
            node: vec![node("mm", "MatMul", &["x", "w"], &["y"], vec![])],
            initializer: vec![tensor_data::from_f32(
                "w",
                &[2, 3],
                &[1.0, -2.0, 0.5, 0.25, 4.0, -1.0],
            )
            .unwrap()],
            input: vec![value_info_unshaped("x", DataType::Float)],
            output: vec![value_info_unshaped("y", DataType::Float)],
            ..Default::default()
        };
        let mut m = Model::from_proto(ModelProto {
            ir_version: Some(8),
            graph: Some(graph),
            ..Default::default()
        });
        let (p, n) = emit(&m, true, &Default::default()).unwrap();
        assert_eq!(n, Counts { matmul: 1, lstm: 0 });
        m.apply(p).unwrap();
        let ops: Vec<&str> = m.graph().node.iter().map(|n| n.op_type.as_str()).collect();
        assert!(
            ops.contains(&"MatMulInteger") && !ops.contains(&"MatMul"),
            "{ops:?}"
        );
        assert_eq!(m.graph().node.last().unwrap().output[0], "y");
    }
}

#[cfg(test)]
mod lstm_tests {
    use super::*;
    use crate::model::builder::{model_from_graph, value_info, value_info_unshaped};
    use crate::model::graph::Dim;
    use crate::model::GraphProto;
    use crate::quantize::runner::{Engine, NamedTensor};

    /// Deterministic values in [-amp, amp): enough structure to tell a transposed weight
    /// from a scrambled one.
    fn values(n: usize, seed: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0) * amp)
            .collect()
    }

    /// `y, y_h, y_c = LSTM(x, W, R, B, "", h0, c0)` with `input_size = 3`, `hidden = 5`
    /// (so a W left untransposed cannot pass ONNX Runtime's shape checks either).
    fn lstm_model(direction: &str, layout: Option<i64>) -> Model {
        let (d, h, i) = (if direction == "bidirectional" { 2 } else { 1 }, 5, 3);
        let mut attrs = vec![
            attr::int("hidden_size", h),
            attr::string("direction", direction),
        ];
        if let Some(l) = layout {
            attrs.push(attr::int("layout", l));
        }
        let graph = GraphProto {
            node: vec![node(
                "lstm",
                "LSTM",
                &["x", "W", "R", "B", "", "h0", "c0"],
                &["y", "y_h", "y_c"],
                attrs,
            )],
            initializer: vec![
                tensor_data::from_f32(
                    "W",
                    &[d, 4 * h, i],
                    &values((d * 4 * h * i) as usize, 1, 0.8),
                )
                .unwrap(),
                tensor_data::from_f32(
                    "R",
                    &[d, 4 * h, h],
                    &values((d * 4 * h * h) as usize, 2, 0.6),
                )
                .unwrap(),
                tensor_data::from_f32("B", &[d, 8 * h], &values((d * 8 * h) as usize, 3, 0.3))
                    .unwrap(),
            ],
            input: ["x", "h0", "c0"]
                .iter()
                .map(|n| {
                    value_info(
                        n,
                        DataType::Float,
                        &[Dim::Unknown, Dim::Unknown, Dim::Unknown],
                    )
                })
                .collect(),
            output: ["y", "y_h", "y_c"]
                .iter()
                .map(|n| value_info_unshaped(n, DataType::Float))
                .collect(),
            ..Default::default()
        };
        model_from_graph(graph, 17)
    }

    fn rewritten(m: &Model, per_channel: bool) -> (Model, Counts) {
        let (p, counts) = emit(m, per_channel, &Default::default()).unwrap();
        let mut q = m.clone();
        q.apply(p).unwrap();
        crate::quantize::graph::prune_initializers(&mut q).unwrap();
        (q, counts)
    }

    fn init<'a>(m: &'a Model, name: &str) -> &'a TensorProto {
        m.graph()
            .initializer
            .iter()
            .find(|t| t.name == name)
            .unwrap()
    }

    #[test]
    fn counts_name_both_kinds_and_leave_out_an_absent_one() {
        let c = |matmul, lstm| Counts { matmul, lstm }.to_string();
        assert_eq!(c(9, 1), "9 MatMul, 1 LSTM");
        assert_eq!(c(13, 0), "13 MatMul");
        assert_eq!(c(0, 2), "2 LSTM");
        assert_eq!(c(0, 0), "0 MatMul");
    }

    #[test]
    fn lstm_becomes_dynamic_quantize_lstm_with_transposed_int8_weights() {
        let m = lstm_model("bidirectional", None);
        for (per_channel, scale_dims) in [(true, vec![2, 20]), (false, vec![2])] {
            let (q, counts) = rewritten(&m, per_channel);
            assert_eq!(counts, Counts { matmul: 0, lstm: 1 });
            let g = q.graph();
            assert_eq!(g.node.len(), 1);
            let n = &g.node[0];
            assert_eq!(
                (n.op_type.as_str(), n.domain.as_str()),
                ("DynamicQuantizeLSTM", MS_DOMAIN)
            );
            assert_eq!(n.output, ["y", "y_h", "y_c"]);
            assert_eq!(n.input.len(), 12);
            assert_eq!(&n.input[3..8], ["B", "", "h0", "c0", ""]);
            assert_eq!(init(&q, &n.input[1]).dims, [2, 3, 20]);
            assert_eq!(init(&q, &n.input[2]).dims, [2, 5, 20]);
            for i in 8..12 {
                assert_eq!(init(&q, &n.input[i]).dims, scale_dims, "input {i}");
            }
            // The float W and R are gone; B stays float.
            assert!(g.initializer.iter().all(|t| t.name != "W" && t.name != "R"));
            assert!(q
                .proto
                .opset_import
                .iter()
                .any(|o| o.domain == MS_DOMAIN && o.version == Some(1)));
        }
    }

    #[test]
    fn transposes_each_direction_and_keeps_gate_rows_as_columns() {
        // D = 2, 4H = 4 (H = 1), K = 2: row r of direction d must become column r.
        let w: Vec<f32> = (0..16).map(|v| v as f32 - 8.0).collect();
        let t = tensor_data::from_f32("w", &[2, 4, 2], &w).unwrap();
        let (q, scales, dims) = quantize_lstm_weight(&t, false).unwrap();
        assert_eq!(dims, [2]);
        let deq = |d: usize, k: usize, r: usize| q[d * 8 + k * 4 + r] as f32 * scales[d];
        for d in 0..2 {
            for r in 0..4 {
                for k in 0..2 {
                    let orig = w[d * 8 + r * 2 + k];
                    assert!((deq(d, k, r) - orig).abs() <= scales[d] / 2.0 + 1e-6);
                }
            }
        }
    }

    #[test]
    fn lstm_weights_stay_inside_the_range_the_avx2_kernel_cannot_saturate() {
        // What it protects: full-range int8 weights (|q| up to 127) make ONNX Runtime's
        // u8 x s8 LSTM GEMM saturate on CPUs without VNNI, whatever the scale layout.
        let w: Vec<f32> = (0..40).map(|v| (v as f32 - 20.0) * 0.37).collect();
        let t = tensor_data::from_f32("w", &[2, 4, 5], &w).unwrap();
        for per_channel in [true, false] {
            let (q, _, _) = quantize_lstm_weight(&t, per_channel).unwrap();
            let peak = q.iter().map(|v| i32::from(*v).abs()).max().unwrap();
            assert_eq!(peak, NO_SATURATION_I8_MAX, "per_channel={per_channel}");
        }
    }

    #[test]
    fn batch_first_lstm_stays_float() {
        // What it protects: DynamicQuantizeLSTM has no `layout`; dropping it would read a
        // batch-first X as sequence-first.
        let (p, counts) = emit(&lstm_model("forward", Some(1)), true, &Default::default()).unwrap();
        assert_eq!(counts.total(), 0);
        assert!(p.ops.is_empty());
        let (_, counts) = rewritten(&lstm_model("forward", Some(0)), true);
        assert_eq!(counts.lstm, 1);
    }

    #[test]
    fn excluded_lstm_stays_float() {
        let m = lstm_model("forward", None);
        let exclude = ["lstm".to_string()].into_iter().collect();
        let (p, counts) = emit(&m, true, &exclude).unwrap();
        assert_eq!(counts.total(), 0);
        assert!(p.ops.is_empty());
    }

    #[test]
    fn dynamic_quantize_lstm_matches_the_float_lstm_in_onnx_runtime() {
        // What it protects: the contract ONNX Runtime 1.31 reads (transposed W/R, scale and
        // zero-point shapes, input order). A wrong transpose or a scale on the wrong axis
        // gives errors of the order of the outputs themselves (|y| ~ 0.1 to 0.9), not the
        // ~1e-2 of int8 weights. So do full-range weights on a CPU without VNNI (AVX2): the
        // kernel's 16-bit pair sums saturate (0.39 on 0.41 here, per tensor and per channel),
        // which is why the weights are 7-bit; x spans [-1.5, 1.5] so that u8 activations
        // reach 0 and 255 and would expose it again.
        if crate::runtime::ensure_for_tests().is_none() {
            return;
        }
        let engine = crate::quantize::engine::RuntimeEngine::new(None, 1).unwrap();
        let (seq, batch) = (6, 2);
        for direction in ["forward", "reverse", "bidirectional"] {
            let d = if direction == "bidirectional" { 2 } else { 1 };
            let m = lstm_model(direction, None);
            let feed = vec![
                NamedTensor::f32("x", vec![seq, batch, 3], values(seq * batch * 3, 4, 1.5)),
                NamedTensor::f32("h0", vec![d, batch, 5], values(d * batch * 5, 5, 0.5)),
                NamedTensor::f32("c0", vec![d, batch, 5], values(d * batch * 5, 6, 0.5)),
            ];
            let want = engine.load(&m.to_bytes()).unwrap().run(&feed, &[]).unwrap();
            for per_channel in [true, false] {
                let (q, _) = rewritten(&m, per_channel);
                let got = engine.load(&q.to_bytes()).unwrap().run(&feed, &[]).unwrap();
                for (a, b) in want.iter().zip(&got) {
                    assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
                    let (a_data, b_data) = (a.floats(), b.floats());
                    let err = a_data
                        .iter()
                        .zip(b_data.iter())
                        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
                    let peak = a_data.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                    assert!(
                        err < 0.02 && peak > 0.1,
                        "{direction} per_channel={per_channel} {}: max error {err} (peak {peak})",
                        a.name
                    );
                }
            }
        }
    }
}
