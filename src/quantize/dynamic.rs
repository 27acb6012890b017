//! Dynamic int8 for MatMul-heavy models (transformers, RNN projections): weights are int8
//! offline, activations are quantized per call by `DynamicQuantizeLinear`, so there is no
//! calibration. Emitted as `DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(scales)`,
//! the pattern ONNX Runtime's CPU provider fuses into one `DynamicQuantizeMatMul` kernel.
//! Convs stay float: ONNX Runtime's `ConvInteger` is slower than its fp32 convs on x86.

use super::graph::node_key;
use super::math::{quantize_per_channel_i8, quantize_per_tensor_i8};
use crate::error::Result;
use crate::model::attr;
use crate::model::builder::node;
use crate::model::graph::GraphIndex;
use crate::model::patch::{NodeRef, Patch, Position};
use crate::model::{tensor_data, DataType, Model};

/// Build the patch; returns it and the number of MatMuls rewritten.
pub fn emit(
    model: &Model,
    per_channel: bool,
    exclude_nodes: &std::collections::HashSet<String>,
) -> Result<(Patch, usize)> {
    let g = model.graph();
    let ix = GraphIndex::new(g);
    let mut removed = Vec::new();
    let mut nodes = Vec::new();
    let mut tensors = Vec::new();
    for n in &g.node {
        if n.op_type != "MatMul" || !n.domain.is_empty() || exclude_nodes.contains(&node_key(n)) {
            continue;
        }
        let Some(w) = n.input.get(1).and_then(|w| ix.initializer(w)) else {
            continue;
        };
        if w.dims.len() != 2
            || w.data_type != Some(DataType::Float as i32)
            || ix.is_initializer(&n.input[0])
        {
            continue;
        }
        let wv = tensor_data::to_vec::<f32>(w)?;
        let dims: Vec<usize> = w.dims.iter().map(|&d| d as usize).collect();
        let (q, scales) = if per_channel {
            quantize_per_channel_i8(&wv, &dims, 1)
        } else {
            let (q, s) = quantize_per_tensor_i8(&wv);
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
        tensors.push(tensor_data::from_i8(&wq, &w.dims, &q)?);
        tensors.push(tensor_data::from_i8(&wz, &[], &[0])?);
        let sdims: Vec<i64> = if per_channel {
            vec![scales.len() as i64]
        } else {
            vec![]
        };
        tensors.push(tensor_data::from_f32(&ws, &sdims, &scales)?);
        nodes.push(node(
            &names("DynamicQuantizeLinear"),
            "DynamicQuantizeLinear",
            &[x],
            &[&xq, &xs, &xz],
            vec![],
        ));
        nodes.push(node(
            &names("MatMulInteger"),
            "MatMulInteger",
            &[&xq, &wq, &xz, &wz],
            &[&yi],
            vec![],
        ));
        nodes.push(node(
            &names("Cast"),
            "Cast",
            &[&yi],
            &[&yf],
            vec![attr::int("to", DataType::Float as i64)],
        ));
        nodes.push(node(
            &names("scale_product"),
            "Mul",
            &[&xs, &ws],
            &[&ys],
            vec![],
        ));
        nodes.push(node(
            &names("rescale"),
            "Mul",
            &[&yf, &ys],
            &[&n.output[0]],
            vec![],
        ));
        removed.push(NodeRef::of(n));
    }
    let count = removed.len();
    let mut p = Patch::new(format!(
        "int8 dynamic: {count} MatMul -> DynamicQuantizeLinear + MatMulInteger"
    ));
    if count > 0 {
        for r in removed {
            p = p.remove_node(r);
        }
        p = p.add_nodes(nodes, Position::Topological);
        for t in tensors {
            p = p.set_initializer(t);
        }
    }
    Ok((p, count))
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
        assert_eq!(n, 1);
        m.apply(p).unwrap();
        let ops: Vec<&str> = m.graph().node.iter().map(|n| n.op_type.as_str()).collect();
        assert!(
            ops.contains(&"MatMulInteger") && !ops.contains(&"MatMul"),
            "{ops:?}"
        );
        assert_eq!(m.graph().node.last().unwrap().output[0], "y");
    }
}
