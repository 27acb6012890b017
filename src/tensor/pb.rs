//! ONNX `TensorProto` tensors: `.pb` files (the ONNX backend test-data format:
//! `test_data_set_0/input_0.pb`) and conversion to and from initializers.
//!
//! A `TensorProto` holds its elements either in `raw_data` (little-endian bytes) or in the
//! typed repeated field the ONNX IR assigns to its type: `float_data` for float;
//! `int32_data` for int32, int16, int8, uint16, uint8, bool and the *bit patterns* of
//! float16/bfloat16; `int64_data` for int64; `double_data` for double; `uint64_data` for
//! uint32 and uint64. Both forms are read (the typed fields through the model layer's
//! [`Element`] table, so the packing rules live in one place); [`to_proto`] writes
//! `raw_data`, which is what
//! exporters and ONNX Runtime prefer. The declared dims are checked against the element
//! count before anything is decoded. Segmented and external tensors are refused here (the
//! model layer handles external initializers, confined to the model's folder).

use std::path::Path;

use prost::Message;

use super::{element_count, format_shape, onnx_type_name, DType, Tensor, TensorData};
use crate::error::{Error, Result};
use crate::model::proto::tensor_proto::DataLocation;
use crate::model::tensor_data::Element;
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

    // Which typed field holds each dtype, and how the narrow types and the float16/bfloat16
    // bit patterns are packed into `int32_data`, is the model layer's to know (its
    // `Element` table); the count check stays here so the error names the file.
    let mismatch = |have: usize| {
        err(format!(
            "{dtype} shape {} holds {n} elements but the tensor has {have}",
            format_shape(&shape)
        ))
    };
    let data = match dtype {
        DType::F32 => TensorData::F32(typed(p, n).map_err(&mismatch)?),
        DType::F64 => TensorData::F64(typed(p, n).map_err(&mismatch)?),
        DType::I64 => TensorData::I64(typed(p, n).map_err(&mismatch)?),
        DType::U64 => TensorData::U64(typed(p, n).map_err(&mismatch)?),
        DType::U32 => TensorData::U32(typed(p, n).map_err(&mismatch)?),
        DType::I32 => TensorData::I32(typed(p, n).map_err(&mismatch)?),
        DType::I16 => TensorData::I16(typed(p, n).map_err(&mismatch)?),
        DType::U16 => TensorData::U16(typed(p, n).map_err(&mismatch)?),
        DType::I8 => TensorData::I8(typed(p, n).map_err(&mismatch)?),
        DType::U8 => TensorData::U8(typed(p, n).map_err(&mismatch)?),
        DType::Bool => TensorData::Bool(typed(p, n).map_err(&mismatch)?),
        DType::F16 => TensorData::F16(typed(p, n).map_err(&mismatch)?),
        DType::BF16 => TensorData::BF16(typed(p, n).map_err(&mismatch)?),
    };
    Tensor::new(shape, data)
}

/// The values of `T`'s typed field, or the field's length when it is not the `n` elements
/// the dims declare (checked before anything is converted).
fn typed<T: Element>(p: &TensorProto, n: usize) -> std::result::Result<Vec<T>, usize> {
    match T::field_len(p) {
        have if have == n => Ok(T::from_field(p)),
        have => Err(have),
    }
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
    use half::{bf16, f16};

    use super::*;

    /// The tensor with its elements in the typed field the ONNX IR assigns to its dtype,
    /// packed the way exporters write them (narrow types and half-float bit patterns
    /// widened into `int32_data`, uint32 into `uint64_data`).
    fn to_typed_proto(t: &Tensor) -> TensorProto {
        let mut p = to_proto("t", t);
        p.raw_data = None;
        fn widen<T: Copy, U>(v: &[T], f: impl Fn(T) -> U) -> Vec<U> {
            v.iter().map(|&x| f(x)).collect()
        }
        match t.data() {
            TensorData::F32(v) => p.float_data = v.clone(),
            TensorData::F64(v) => p.double_data = v.clone(),
            TensorData::I64(v) => p.int64_data = v.clone(),
            TensorData::U64(v) => p.uint64_data = v.clone(),
            TensorData::U32(v) => p.uint64_data = widen(v, u64::from),
            TensorData::I32(v) => p.int32_data = v.clone(),
            TensorData::I16(v) => p.int32_data = widen(v, i32::from),
            TensorData::U16(v) => p.int32_data = widen(v, i32::from),
            TensorData::I8(v) => p.int32_data = widen(v, i32::from),
            TensorData::U8(v) => p.int32_data = widen(v, i32::from),
            TensorData::Bool(v) => p.int32_data = widen(v, i32::from),
            TensorData::F16(v) => p.int32_data = widen(v, |x: f16| i32::from(x.to_bits())),
            TensorData::BF16(v) => p.int32_data = widen(v, |x: bf16| i32::from(x.to_bits())),
        }
        p
    }

    #[test]
    fn typed_fields_round_trip_every_dtype() {
        // The typed-field decoding is model::tensor_data's; this pins that every dtype a
        // `.pb` file can carry comes back exactly through it, extremes included.
        for d in DType::ALL {
            let t = Tensor::random(d, &[2, 3], 7);
            let back = from_proto(&to_typed_proto(&t), Path::new("t.pb")).unwrap();
            assert_eq!(back, t, "{d}");
        }
        let extremes = [
            TensorData::U16(vec![0, u16::MAX]),
            TensorData::I16(vec![i16::MIN, i16::MAX]),
            TensorData::U8(vec![0, u8::MAX]),
            TensorData::I32(vec![i32::MIN, i32::MAX]),
            TensorData::U32(vec![0, u32::MAX]),
            TensorData::U64(vec![0, u64::MAX]),
            TensorData::Bool(vec![true, false]),
            TensorData::BF16(vec![bf16::MIN, bf16::MAX]),
        ];
        for data in extremes {
            let t = Tensor::new(vec![2], data).unwrap();
            let back = from_proto(&to_typed_proto(&t), Path::new("t.pb")).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn typed_field_count_mismatch_names_the_file_for_packed_dtypes() {
        let t = Tensor::new(vec![3], TensorData::U16(vec![1, 2, 3])).unwrap();
        let mut p = to_typed_proto(&t);
        p.int32_data.pop();
        let e = from_proto(&p, Path::new("in.pb")).unwrap_err().to_string();
        assert!(
            e.starts_with("in.pb")
                && e.contains("uint16 shape 3 holds 3 elements but the tensor has 2"),
            "{e}"
        );
    }

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
