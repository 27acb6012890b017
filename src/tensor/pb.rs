//! ONNX `TensorProto` tensors: `.pb` files (the ONNX backend test-data format:
//! `test_data_set_0/input_0.pb`) and conversion to and from initializers.
//!
//! A `TensorProto` holds its elements either in `raw_data` (little-endian bytes) or in the
//! typed repeated field the ONNX IR assigns to its type: `float_data` for float;
//! `int32_data` for int32, int16, int8, uint16, uint8, bool and the *bit patterns* of
//! float16/bfloat16; `int64_data` for int64; `double_data` for double; `uint64_data` for
//! uint32 and uint64. Both forms are read; [`to_proto`] writes `raw_data`, which is what
//! exporters and ONNX Runtime prefer. The declared dims are checked against the element
//! count before anything is decoded. Segmented and external tensors are refused here (the
//! model layer handles external initializers, confined to the model's folder).

use std::path::Path;

use half::{bf16, f16};
use prost::Message;

use super::{element_count, format_shape, onnx_type_name, DType, Tensor, TensorData};
use crate::error::{Error, Result};
use crate::model::proto::tensor_proto::DataLocation;
use crate::model::TensorProto;

/// Read a `.pb` file holding one `TensorProto`; returns its name (may be empty) and tensor.
pub fn read_pb(path: &Path) -> Result<(String, Tensor)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() {
        return Err(Error::file(path, "empty file, not an ONNX TensorProto"));
    }
    let proto = TensorProto::decode(bytes.as_slice()).map_err(|e| {
        Error::file(
            path,
            format!("not an ONNX TensorProto (protobuf decoding failed: {e})"),
        )
    })?;
    let t = from_proto(&proto, path)?;
    Ok((proto.name, t))
}

/// Decode a `TensorProto`; `origin` names its source (a file, or `model.onnx[weight]`).
pub fn from_proto(p: &TensorProto, origin: &Path) -> Result<Tensor> {
    let err = |m: String| Error::file(origin, m);
    let code = p
        .data_type
        .ok_or_else(|| err("TensorProto has no data_type".into()))?;
    let dtype = DType::from_onnx(code).ok_or_else(|| {
        err(format!(
            "unsupported tensor element type {}",
            onnx_type_name(code)
        ))
    })?;
    if p.segment.is_some() {
        return Err(err("segmented TensorProto is not supported".into()));
    }
    if p.data_location == Some(DataLocation::External as i32) || !p.external_data.is_empty() {
        return Err(err(
            "tensor data is stored externally; load it through the model it belongs to".into(),
        ));
    }
    let shape = p
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| err(format!("negative dimension {d} in {:?}", p.dims)))
        })
        .collect::<Result<Vec<_>>>()?;
    let n = element_count(&shape)
        .ok_or_else(|| err(format!("shape {} is too large", format_shape(&shape))))?;

    if let Some(raw) = &p.raw_data {
        return Tensor::from_le_bytes(dtype, shape, raw, origin);
    }

    let typed_len = match dtype {
        DType::F32 => p.float_data.len(),
        DType::F64 => p.double_data.len(),
        DType::I64 => p.int64_data.len(),
        DType::U32 | DType::U64 => p.uint64_data.len(),
        _ => p.int32_data.len(),
    };
    if typed_len != n {
        return Err(err(format!(
            "{dtype} shape {} holds {n} elements but the tensor has {typed_len}",
            format_shape(&shape)
        )));
    }
    let i32s = &p.int32_data;
    // Narrowing `as` casts below are what the IR specifies: the int32 field carries the
    // smaller types' values (or float16/bfloat16 bit patterns) in its low bits.
    let data = match dtype {
        DType::F32 => TensorData::F32(p.float_data.clone()),
        DType::F64 => TensorData::F64(p.double_data.clone()),
        DType::I64 => TensorData::I64(p.int64_data.clone()),
        DType::U64 => TensorData::U64(p.uint64_data.clone()),
        DType::U32 => TensorData::U32(p.uint64_data.iter().map(|&x| x as u32).collect()),
        DType::I32 => TensorData::I32(i32s.clone()),
        DType::I16 => TensorData::I16(i32s.iter().map(|&x| x as i16).collect()),
        DType::U16 => TensorData::U16(i32s.iter().map(|&x| x as u16).collect()),
        DType::I8 => TensorData::I8(i32s.iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(i32s.iter().map(|&x| x as u8).collect()),
        DType::Bool => TensorData::Bool(i32s.iter().map(|&x| x != 0).collect()),
        DType::F16 => TensorData::F16(i32s.iter().map(|&x| f16::from_bits(x as u16)).collect()),
        DType::BF16 => TensorData::BF16(i32s.iter().map(|&x| bf16::from_bits(x as u16)).collect()),
    };
    Tensor::new(shape, data)
}

/// Encode a tensor as a `TensorProto` named `name`, with its elements in `raw_data`.
pub fn to_proto(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(t.dtype().to_onnx() as i32),
        name: name.to_string(),
        raw_data: Some(t.to_le_bytes()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_data_round_trips_every_dtype() {
        for d in DType::ALL {
            let t = Tensor::random(d, &[2, 3], 5);
            let p = to_proto("w", &t);
            assert_eq!(from_proto(&p, Path::new("x.pb")).unwrap(), t, "{d}");
        }
    }

    #[test]
    fn reads_typed_fields() {
        let p = TensorProto {
            dims: vec![2],
            data_type: Some(DType::F32.to_onnx() as i32),
            float_data: vec![1.5, -2.0],
            ..Default::default()
        };
        assert_eq!(
            from_proto(&p, Path::new("a.pb")).unwrap().to_f32_vec(),
            vec![1.5, -2.0]
        );
        let p = TensorProto {
            dims: vec![3],
            data_type: Some(DType::F16.to_onnx() as i32),
            int32_data: [1.0f32, 0.5, -3.0]
                .iter()
                .map(|&x| f16::from_f32(x).to_bits() as i32)
                .collect(),
            ..Default::default()
        };
        let t = from_proto(&p, Path::new("h.pb")).unwrap();
        assert_eq!(t.dtype(), DType::F16);
        assert_eq!(t.to_f32_vec(), vec![1.0, 0.5, -3.0]);
        let p = TensorProto {
            dims: vec![2],
            data_type: Some(DType::U32.to_onnx() as i32),
            uint64_data: vec![7, 4_000_000_000],
            ..Default::default()
        };
        let t = from_proto(&p, Path::new("u.pb")).unwrap();
        assert_eq!(t.data(), &TensorData::U32(vec![7, 4_000_000_000]));
        let p = TensorProto {
            dims: vec![3],
            data_type: Some(DType::I8.to_onnx() as i32),
            int32_data: vec![-1, 127, -128],
            ..Default::default()
        };
        let t = from_proto(&p, Path::new("i.pb")).unwrap();
        assert_eq!(t.data(), &TensorData::I8(vec![-1, 127, -128]));
        // A scalar: no dims, one element.
        let p = TensorProto {
            data_type: Some(DType::I64.to_onnx() as i32),
            int64_data: vec![42],
            ..Default::default()
        };
        let t = from_proto(&p, Path::new("s.pb")).unwrap();
        assert_eq!(t.shape(), &[] as &[usize]);
        assert_eq!(t.data(), &TensorData::I64(vec![42]));
    }

    #[test]
    fn rejects_malformed_protos_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(TensorProto, &str)> = vec![
            (
                TensorProto {
                    dims: vec![4],
                    data_type: Some(1),
                    float_data: vec![1.0],
                    ..Default::default()
                },
                "holds 4 elements but the tensor has 1",
            ),
            (
                TensorProto {
                    dims: vec![2],
                    data_type: Some(1),
                    raw_data: Some(vec![0; 7]),
                    ..Default::default()
                },
                "needs 8 bytes of data but there are 7",
            ),
            (
                TensorProto {
                    dims: vec![1],
                    data_type: Some(8),
                    ..Default::default()
                },
                "unsupported tensor element type STRING",
            ),
            (
                TensorProto {
                    dims: vec![-1],
                    data_type: Some(1),
                    ..Default::default()
                },
                "negative dimension",
            ),
            (
                TensorProto {
                    dims: vec![1],
                    ..Default::default()
                },
                "no data_type",
            ),
        ];
        for (i, (proto, want)) in cases.into_iter().enumerate() {
            let p = dir.path().join(format!("case{i}.pb"));
            std::fs::write(&p, proto.encode_to_vec()).unwrap();
            let e = read_pb(&p).unwrap_err().to_string();
            assert!(
                e.starts_with(&p.display().to_string()) && e.contains(want),
                "{e}"
            );
        }
        let p = dir.path().join("junk.pb");
        std::fs::write(&p, [0xff, 0xff, 0xff, 0xff]).unwrap();
        let e = read_pb(&p).unwrap_err().to_string();
        assert!(e.contains("not an ONNX TensorProto"), "{e}");
        std::fs::write(&p, []).unwrap();
        let e = read_pb(&p).unwrap_err().to_string();
        assert!(e.contains("empty file"), "{e}");
    }

    #[test]
    fn reads_backend_test_data_pb_file() {
        // Written the way the ONNX backend suite writes its input_0.pb files.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("input_0.pb");
        let t = Tensor::random(DType::F32, &[1, 3, 4], 9);
        std::fs::write(&p, to_proto("x", &t).encode_to_vec()).unwrap();
        let (name, back) = read_pb(&p).unwrap();
        assert_eq!(name, "x");
        assert_eq!(back, t);
        assert_eq!(crate::tensor::read_file(&p).unwrap(), t);
    }
}
