//! Dynamic int8 for MatMul-heavy models (transformers, RNN projections): weights are int8
//! offline, activations are quantized per call by `DynamicQuantizeLinear`, so there is no
//! calibration. Emitted as `DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(scales)`,
//! the pattern ONNX Runtime's CPU provider fuses into one `DynamicQuantizeMatMul` kernel.
//! Convs stay float: ONNX Runtime's `ConvInteger` is slower than its fp32 convs on x86.

use super::graph::{
    initializers, make_attr_i, make_node, node_label, tensor_f32, tensor_from_f32, tensor_raw,
    Patch,
};
use super::math::{quantize_per_channel_i8, quantize_per_tensor_i8};
use crate::error::Result;
use crate::model::{DataType, Model};

/// Build the patch; returns it and the number of MatMuls rewritten.
pub fn emit(
    model: &Model,
    per_channel: bool,
    exclude_nodes: &std::collections::HashSet<String>,
) -> Result<(Patch, usize)> {
    let g = model.graph();
    let inits = initializers(g);
    let mut p = Patch::new("");
    let mut count = 0;
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type != "MatMul" || !n.domain.is_empty() || exclude_nodes.contains(&node_label(n)) {
            continue;
        }
        let Some(w) = n.input.get(1).and_then(|w| inits.get(w)) else {
            continue;
        };
        if w.dims.len() != 2
            || w.data_type != Some(DataType::Float as i32)
            || inits.contains_key(&n.input[0])
        {
            continue;
        }
        let wv = tensor_f32(w)?;
        let dims: Vec<usize> = w.dims.iter().map(|&d| d as usize).collect();
        let (q, scales) = if per_channel {
            quantize_per_channel_i8(&wv, &dims, 1)
        } else {
            let (q, s) = quantize_per_tensor_i8(&wv);
            (q, vec![s])
        };
        let base = node_label(n);
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
        p.set_initializers.push(tensor_raw(
            &wq,
            DataType::Int8,
            &w.dims,
            q.iter().map(|&v| v as u8).collect(),
        ));
        p.set_initializers
            .push(tensor_raw(&wz, DataType::Int8, &[], vec![0]));
        let sdims: Vec<i64> = if per_channel {
            vec![scales.len() as i64]
        } else {
            vec![]
        };
        p.set_initializers
            .push(tensor_from_f32(&ws, &sdims, &scales));
        p.add_nodes.push(make_node(
            "DynamicQuantizeLinear",
            &names("DynamicQuantizeLinear"),
            &[x],
            &[&xq, &xs, &xz],
            vec![],
        ));
        p.add_nodes.push(make_node(
            "MatMulInteger",
            &names("MatMulInteger"),
            &[&xq, &wq, &xz, &wz],
            &[&yi],
            vec![],
        ));
        p.add_nodes.push(make_node(
            "Cast",
            &names("Cast"),
            &[&yi],
            &[&yf],
            vec![make_attr_i("to", DataType::Float as i64)],
        ));
        p.add_nodes.push(make_node(
            "Mul",
            &names("scale_product"),
            &[&xs, &ws],
            &[&ys],
            vec![],
        ));
        p.add_nodes.push(make_node(
            "Mul",
            &names("rescale"),
            &[&yf, &ys],
            &[&n.output[0]],
            vec![],
        ));
        p.remove_nodes.push(i);
        count += 1;
    }
    p.label = format!("int8 dynamic: {count} MatMul -> DynamicQuantizeLinear + MatMulInteger");
    Ok((p, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GraphProto, ModelProto};
    use crate::quantize::graph::tensor_from_f32;

    #[test]
    fn rewrites_a_constant_weight_matmul_and_keeps_its_output_name() {
        let graph = GraphProto {
            node: vec![make_node("MatMul", "mm", &["x", "w"], &["y"], vec![])],
            initializer: vec![tensor_from_f32(
                "w",
                &[2, 3],
                &[1.0, -2.0, 0.5, 0.25, 4.0, -1.0],
            )],
            input: vec![crate::quantize::graph::float_value_info("x")],
            output: vec![crate::quantize::graph::float_value_info("y")],
            ..Default::default()
        };
        let mut m = Model::from_proto(ModelProto {
            ir_version: Some(8),
            graph: Some(graph),
            ..Default::default()
        });
        let (p, n) = emit(&m, true, &Default::default()).unwrap();
        assert_eq!(n, 1);
        p.apply(m.graph_mut()).unwrap();
        let ops: Vec<&str> = m.graph().node.iter().map(|n| n.op_type.as_str()).collect();
        assert!(
            ops.contains(&"MatMulInteger") && !ops.contains(&"MatMul"),
            "{ops:?}"
        );
        assert_eq!(m.graph().node.last().unwrap().output[0], "y");
    }
}
