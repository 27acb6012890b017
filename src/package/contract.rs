//! The I/O contract of a model, read from its graph: real inputs (not initializers) and
//! outputs, with dtypes and shapes; symbolic dims stay symbols.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::proto::tensor_shape_proto::dimension::Value as DimValue;
use crate::model::proto::type_proto::Value as TypeValue;
use crate::model::{DataType, ModelProto, ValueInfoProto};

use super::manifest::{Contract, Dim, TensorSpec};

/// ONNX element type -> the dtype name used in manifests (numpy-style names).
pub fn dtype_name(elem_type: i32) -> String {
    match DataType::try_from(elem_type) {
        Ok(DataType::Float) => "float32".into(),
        Ok(DataType::Uint8) => "uint8".into(),
        Ok(DataType::Int8) => "int8".into(),
        Ok(DataType::Uint16) => "uint16".into(),
        Ok(DataType::Int16) => "int16".into(),
        Ok(DataType::Int32) => "int32".into(),
        Ok(DataType::Int64) => "int64".into(),
        Ok(DataType::String) => "string".into(),
        Ok(DataType::Bool) => "bool".into(),
        Ok(DataType::Float16) => "float16".into(),
        Ok(DataType::Double) => "float64".into(),
        Ok(DataType::Uint32) => "uint32".into(),
        Ok(DataType::Uint64) => "uint64".into(),
        Ok(DataType::Bfloat16) => "bfloat16".into(),
        Ok(other) => format!("{other:?}").to_lowercase(),
        Err(_) => format!("unknown({elem_type})"),
    }
}

fn spec(v: &ValueInfoProto) -> TensorSpec {
    let (dtype, shape) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(TypeValue::TensorType(t)) => (
            dtype_name(t.elem_type.unwrap_or(0)),
            t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(DimValue::DimValue(n)) => Dim::Fixed(*n),
                        Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::Symbol(p.clone()),
                        _ => Dim::Unknown,
                    })
                    .collect()
            }),
        ),
        Some(TypeValue::SequenceType(_)) => ("sequence".into(), None),
        Some(TypeValue::MapType(_)) => ("map".into(), None),
        Some(TypeValue::OptionalType(_)) => ("optional".into(), None),
        Some(TypeValue::SparseTensorType(_)) => ("sparse_tensor".into(), None),
        _ => ("unknown".into(), None),
    };
    TensorSpec {
        name: v.name.clone(),
        dtype,
        shape,
    }
}

/// The contract of the main graph.
pub fn contract(model: &ModelProto) -> Contract {
    let Some(g) = model.graph.as_ref() else {
        return Contract {
            inputs: vec![],
            outputs: vec![],
        };
    };
    let inits: BTreeSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    Contract {
        inputs: g
            .input
            .iter()
            .filter(|i| !inits.contains(i.name.as_str()))
            .map(spec)
            .collect(),
        outputs: g.output.iter().map(spec).collect(),
    }
}

/// Opset imports, domain -> version (the default domain as `ai.onnx`).
pub fn opsets(model: &ModelProto) -> BTreeMap<String, i64> {
    model
        .opset_import
        .iter()
        .map(|o| {
            let d = if o.domain.is_empty() {
                "ai.onnx".to_string()
            } else {
                o.domain.clone()
            };
            (d, o.version.unwrap_or(1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proto::*;

    fn vi(name: &str, elem: DataType, dims: &[Result<i64, &str>]) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(elem as i32),
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|d| tensor_shape_proto::Dimension {
                                value: Some(match d {
                                    Ok(n) => DimValue::DimValue(*n),
                                    Err(s) => DimValue::DimParam(s.to_string()),
                                }),
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

    #[test]
    fn contract_skips_initializers_and_keeps_symbols() {
        let m = ModelProto {
            graph: Some(GraphProto {
                input: vec![
                    vi("x", DataType::Float, &[Err("N"), Ok(3), Err("H"), Err("W")]),
                    vi("w", DataType::Float, &[Ok(3)]),
                ],
                output: vec![vi("y", DataType::Int64, &[Err("N")])],
                initializer: vec![TensorProto {
                    name: "w".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = contract(&m);
        assert_eq!(c.inputs.len(), 1);
        assert_eq!(c.inputs[0].dtype, "float32");
        assert_eq!(
            serde_json::to_string(&c.inputs[0].shape).unwrap(),
            r#"["N",3,"H","W"]"#
        );
        assert_eq!(c.outputs[0].dtype, "int64");
    }
}
