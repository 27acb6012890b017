//! Shape inference and tensor decoding against the ONNX backend test data (from the
//! pinned `onnx` wheel, cached by `edgepack::zoo`): for every test case, the shapes
//! `edgepack::model::shape` infers for the graph outputs must equal the shapes of the
//! case's own expected-output `.pb` files, and every `.pb` tensor must decode with the
//! element count its dims say.

use std::collections::BTreeMap;
use std::path::Path;

use edgepack::model::proto::TensorProto;
use edgepack::model::{graph::GraphIndex, shape, tensor_data, DataType, Model};
use prost::Message;

fn read_pb(path: &Path) -> TensorProto {
    let bytes = std::fs::read(path).unwrap();
    TensorProto::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn inferred_output_shapes_match_backend_test_data() {
    let root = edgepack::zoo::onnx_backend_test_data().expect("ONNX backend test data");
    let mut cases = 0;
    let mut checked = 0;
    let mut decoded = 0;
    let mut mismatches = Vec::new();
    for suite in ["node", "simple", "pytorch-converted", "pytorch-operator"] {
        let Ok(entries) = std::fs::read_dir(root.join(suite)) else {
            continue;
        };
        let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let Ok(model) = Model::load(&dir.join("model.onnx")) else {
                continue;
            };
            let data = dir.join("test_data_set_0");
            if !data.is_dir() {
                continue;
            }
            cases += 1;
            let index = GraphIndex::new(model.graph());
            let real: Vec<String> = index.real_inputs().iter().map(|v| v.name.clone()).collect();
            let mut inputs = BTreeMap::new();
            for (i, name) in real.iter().enumerate() {
                let p = data.join(format!("input_{i}.pb"));
                let is_tensor = index.value_info(name).is_some_and(|v| {
                    matches!(
                        v.r#type.as_ref().and_then(|t| t.value.as_ref()),
                        Some(edgepack::model::proto::type_proto::Value::TensorType(_))
                    )
                });
                if p.is_file() && is_tensor {
                    let t = read_pb(&p);
                    inputs.insert(name.clone(), t.dims.clone());
                }
            }
            let inf = shape::infer(model.graph(), &inputs);
            for (j, out) in model.graph().output.iter().enumerate() {
                let p = data.join(format!("output_{j}.pb"));
                // Sequence/optional/map outputs are stored as other messages.
                let is_tensor = matches!(
                    out.r#type.as_ref().and_then(|t| t.value.as_ref()),
                    Some(edgepack::model::proto::type_proto::Value::TensorType(_))
                );
                if !p.is_file() || !is_tensor {
                    continue;
                }
                let t = read_pb(&p);
                let dt = tensor_data::data_type(&t).unwrap();
                if !matches!(
                    dt,
                    DataType::String | DataType::Complex64 | DataType::Complex128
                ) && tensor_data::dtype_bits(dt).is_some_and(|b| b >= 8)
                    && !matches!(
                        dt,
                        DataType::Float8e4m3fn
                            | DataType::Float8e4m3fnuz
                            | DataType::Float8e5m2
                            | DataType::Float8e5m2fnuz
                            | DataType::Float8e8m0
                    )
                {
                    let n = tensor_data::element_count(&t).unwrap();
                    let values =
                        tensor_data::to_f64(&t).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    assert_eq!(values.len(), n, "{}", p.display());
                    decoded += 1;
                }
                if let Some(s) = inf.shapes.get(&out.name) {
                    checked += 1;
                    if s != &t.dims {
                        mismatches.push(format!(
                            "{}: output '{}' inferred {:?}, expected {:?}",
                            dir.display(),
                            out.name,
                            s,
                            t.dims
                        ));
                    }
                }
            }
        }
    }
    eprintln!("{cases} cases, {checked} outputs sized and compared, {decoded} tensors decoded");
    assert!(cases > 1000, "{cases}");
    assert!(checked > 500, "{checked}");
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
