//! Resource bounds checked before ONNX Runtime sees a model: a tensor the graph would
//! allocate whose size is already known from constants and the input shapes.
//!
//! A 60-byte model can ask for petabytes: `ConstantOfShape` (or `Expand`, `Tile`, `Range`)
//! fed a constant shape such as `[2^20, 2^20, 2^10]` makes the runtime allocate at load or
//! first run. Such a model is refused here with the node's name, before any child process
//! is started. What cannot be sized statically (data-dependent shapes, `Loop` bodies) is
//! bounded at run time by the child's memory limit and timeout ([`crate::isolate`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::model::graph::is_default_domain;
use crate::model::{attr, shape, tensor_data, Model};
use crate::setting::Setting;

/// The largest tensor the main graph would hold whose size is known statically, as
/// (node label, op type, bytes). Element sizes come from the declared dtype where known,
/// else 1 byte (a lower bound).
pub fn largest_static_tensor(
    model: &Model,
    input_shapes: &BTreeMap<String, Vec<i64>>,
) -> Option<(String, String, u64)> {
    let g = model.graph();
    let inf = shape::infer(g, input_shapes);
    let mut best: Option<(String, String, u64)> = None;
    let mut consider = |label: String, op: &str, elems: u64, elem_bytes: u64| {
        let bytes = elems.saturating_mul(elem_bytes.max(1));
        if best.as_ref().is_none_or(|b| bytes > b.2) {
            best = Some((label, op.to_string(), bytes));
        }
    };
    for n in &g.node {
        if !is_default_domain(&n.domain) {
            continue;
        }
        // ConstantOfShape: the shape input's values, tracked by inference when constant.
        if n.op_type == "ConstantOfShape" {
            if let Some(dims) = n.input.first().and_then(|i| inf.values.get(i)) {
                let elem_bytes = n
                    .attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref())
                    .and_then(|t| tensor_data::data_type(t).ok())
                    .and_then(tensor_data::dtype_bits)
                    .map_or(4, |b| b.div_ceil(8));
                consider(attr::node_label(n), &n.op_type, product(dims), elem_bytes);
            }
        }
        for out in &n.output {
            if let Some(s) = inf.shapes.get(out) {
                consider(attr::node_label(n), &n.op_type, product(s), 1);
            }
        }
    }
    best
}

/// Saturating product of dims; negative (unknown) dims count as 1.
fn product(dims: &[i64]) -> u64 {
    dims.iter()
        .fold(1u64, |acc, &d| acc.saturating_mul(d.max(1) as u64))
}

/// Refuse a model that would statically allocate a tensor larger than `limit_bytes`.
/// `origin` names the model in the error; `setting` is what sets the limit.
pub fn check_static_allocations(
    model: &Model,
    input_shapes: &BTreeMap<String, Vec<i64>>,
    limit_bytes: u64,
    origin: &Path,
    setting: Setting,
) -> Result<()> {
    match largest_static_tensor(model, input_shapes) {
        Some((node, op, bytes)) if bytes > limit_bytes => Err(Error::file(
            origin,
            format!(
                "node '{node}' ({op}) would allocate {} ({bytes} bytes), over the memory limit of \
                 {} ({setting}); refused before running",
                crate::units::format_bytes(bytes),
                crate::units::format_bytes(limit_bytes),
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::{self, GraphBuilder, WeightStorage};
    use crate::model::DataType;

    fn bomb(dims: &[i64]) -> Model {
        let mut b = GraphBuilder::new("bomb", 0, WeightStorage::Initializer);
        let shape = b.ints("shape", dims);
        let y = b.op("ConstantOfShape", &[&shape], vec![]);
        b.rename_output(&y, "y");
        b.output("y", DataType::Float, &builder::fixed(dims));
        b.into_model()
    }

    #[test]
    fn refuses_constant_of_shape_bomb_naming_the_node() {
        let m = bomb(&[1 << 20, 1 << 20, 1 << 10]);
        let e = check_static_allocations(
            &m,
            &BTreeMap::new(),
            1 << 30,
            Path::new("b.onnx"),
            Setting::MemoryLimit,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("b.onnx: node '"), "{e}");
        assert!(
            e.contains("(ConstantOfShape)") && e.contains("(memory limit)"),
            "{e}"
        );
    }

    #[test]
    fn accepts_small_constant_of_shape_and_ordinary_models() {
        let m = bomb(&[2, 3]);
        assert_eq!(largest_static_tensor(&m, &BTreeMap::new()).unwrap().2, 24);
        check_static_allocations(
            &m,
            &BTreeMap::new(),
            1 << 20,
            Path::new("b.onnx"),
            Setting::MemoryLimit,
        )
        .unwrap();
        let mlp = builder::mlp(&[4, 8, 3], 1);
        let shapes = BTreeMap::from([("x".to_string(), vec![1, 4])]);
        check_static_allocations(
            &mlp,
            &shapes,
            1 << 20,
            Path::new("m.onnx"),
            Setting::MemoryLimit,
        )
        .unwrap();
    }

    #[test]
    fn product_saturates_instead_of_overflowing() {
        assert_eq!(product(&[i64::MAX, i64::MAX]), u64::MAX);
        assert_eq!(product(&[]), 1);
        assert_eq!(product(&[-1, 5]), 5);
    }
}
