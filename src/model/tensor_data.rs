//! Decoding and building [`TensorProto`] values.
//!
//! A `TensorProto` can hold its values in any of several fields: `raw_data` (little-endian
//! bytes, what most exporters write), or a typed field whose choice depends on the dtype:
//! `float_data` (float), `double_data` (double), `int64_data` (int64), `uint64_data`
//! (uint32, uint64), and `int32_data` for everything narrower (int8/16/32, uint8/16, bool,
//! and the *bit patterns* of float16 and bfloat16). Callers should not care: [`to_vec`]
//! returns the values of an exactly-typed tensor, [`to_f32`] and [`to_i64`] convert any
//! numeric dtype.
//!
//! A model is untrusted input, so the element count is computed from `dims` with
//! overflow checks and compared against the bytes actually present *before* anything is
//! allocated: a 3-byte tensor claiming dims `[2^40]` is an error, not an out-of-memory.
//! Tensors stored as external data must be inlined first
//! ([`super::Model::load_external_data`]).
//!
//! ```
//! use edgepack::model::tensor_data;
//! let t = tensor_data::from_f32("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0])?;
//! assert_eq!(tensor_data::to_f32(&t)?, vec![1.0, 2.0, 3.0, 4.0]);
//! assert_eq!(tensor_data::element_count(&t)?, 4);
//! # Ok::<(), edgepack::Error>(())
//! ```

use half::{bf16, f16};

use super::external::is_external;
use super::proto::tensor_proto::DataType;
use super::proto::TensorProto;
use crate::error::{Error, Result};

/// The tensor's dtype, or an error naming it when the code is unknown.
pub fn data_type(t: &TensorProto) -> Result<DataType> {
    let code = t.data_type.unwrap_or(0);
    match DataType::try_from(code) {
        Ok(DataType::Undefined) => Err(Error::tensor(&t.name, "data_type is not set")),
        Ok(dt) => Ok(dt),
        Err(_) => Err(Error::tensor(
            &t.name,
            format!("unknown data_type code {code}"),
        )),
    }
}

/// The ONNX spelling of a dtype (`float`, `int8`, `float16`, ...), as ONNX Runtime prints it.
pub fn dtype_name(dt: DataType) -> &'static str {
    match dt {
        DataType::Undefined => "undefined",
        DataType::Float => "float",
        DataType::Uint8 => "uint8",
        DataType::Int8 => "int8",
        DataType::Uint16 => "uint16",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::String => "string",
        DataType::Bool => "bool",
        DataType::Float16 => "float16",
        DataType::Double => "double",
        DataType::Uint32 => "uint32",
        DataType::Uint64 => "uint64",
        DataType::Complex64 => "complex64",
        DataType::Complex128 => "complex128",
        DataType::Bfloat16 => "bfloat16",
        DataType::Float8e4m3fn => "float8e4m3fn",
        DataType::Float8e4m3fnuz => "float8e4m3fnuz",
        DataType::Float8e5m2 => "float8e5m2",
        DataType::Float8e5m2fnuz => "float8e5m2fnuz",
        DataType::Uint4 => "uint4",
        DataType::Int4 => "int4",
        DataType::Float4e2m1 => "float4e2m1",
        DataType::Float8e8m0 => "float8e8m0",
    }
}

/// The name of a dtype given as a raw code (`elem_type` fields), `unknown(N)` if unknown.
pub fn dtype_code_name(code: i32) -> String {
    match DataType::try_from(code) {
        Ok(dt) => dtype_name(dt).to_string(),
        Err(_) => format!("unknown({code})"),
    }
}

/// Bits per element of a fixed-size dtype (`None` for strings and undefined).
pub fn dtype_bits(dt: DataType) -> Option<u64> {
    Some(match dt {
        DataType::Undefined | DataType::String => return None,
        DataType::Uint4 | DataType::Int4 | DataType::Float4e2m1 => 4,
        DataType::Uint8
        | DataType::Int8
        | DataType::Bool
        | DataType::Float8e4m3fn
        | DataType::Float8e4m3fnuz
        | DataType::Float8e5m2
        | DataType::Float8e5m2fnuz
        | DataType::Float8e8m0 => 8,
        DataType::Uint16 | DataType::Int16 | DataType::Float16 | DataType::Bfloat16 => 16,
        DataType::Float | DataType::Int32 | DataType::Uint32 => 32,
        DataType::Double | DataType::Int64 | DataType::Uint64 | DataType::Complex64 => 64,
        DataType::Complex128 => 128,
    })
}

/// Number of elements given by `dims`: the product, checked for negative dims and
/// overflow. A tensor with no dims is a scalar (1 element).
pub fn dims_count(name: &str, dims: &[i64]) -> Result<usize> {
    let mut n: usize = 1;
    for &d in dims {
        let d = usize::try_from(d)
            .map_err(|_| Error::tensor(name, format!("negative dimension {d} in {dims:?}")))?;
        n = n
            .checked_mul(d)
            .ok_or_else(|| Error::tensor(name, format!("dims {dims:?} overflow")))?;
    }
    Ok(n)
}

/// Number of elements of the tensor, from its dims.
pub fn element_count(t: &TensorProto) -> Result<usize> {
    dims_count(&t.name, &t.dims)
}

/// Check, without decoding, that a tensor's stored data agrees with its dims and dtype:
/// the element count does not overflow and `raw_data` (or, without it, the typed field)
/// holds exactly the elements the dims declare. A file that lies here would make every
/// later reader (and ONNX Runtime) allocate by the dims and read by the data. External
/// and segmented tensors are checked for their dims only; sub-byte and 8-bit float types
/// in typed fields (whose packing varies by ONNX version) are left to their decoders.
pub fn check_size(t: &TensorProto) -> Result<()> {
    let n = element_count(t)?;
    if is_external(t) || t.segment.is_some() {
        return Ok(());
    }
    let Ok(dt) = data_type(t) else {
        return Ok(());
    };
    let (field, len, per) = match dt {
        DataType::Float => ("float_data", t.float_data.len(), 1),
        DataType::Complex64 => ("float_data", t.float_data.len(), 2),
        DataType::Double => ("double_data", t.double_data.len(), 1),
        DataType::Complex128 => ("double_data", t.double_data.len(), 2),
        DataType::Int64 => ("int64_data", t.int64_data.len(), 1),
        DataType::Uint32 | DataType::Uint64 => ("uint64_data", t.uint64_data.len(), 1),
        DataType::String => ("string_data", t.string_data.len(), 1),
        DataType::Int32
        | DataType::Int16
        | DataType::Int8
        | DataType::Uint8
        | DataType::Uint16
        | DataType::Bool
        | DataType::Float16
        | DataType::Bfloat16 => ("int32_data", t.int32_data.len(), 1),
        _ => ("", 0, 0),
    };
    match t.raw_data.as_deref() {
        Some(raw) if dt != DataType::String && (!raw.is_empty() || len == 0) => {
            let want = stored_bytes(t)?;
            if raw.len() as u64 != want {
                return Err(Error::tensor(
                    &t.name,
                    format!(
                        "raw_data has {} bytes, but dims {:?} of {} need {want}",
                        raw.len(),
                        t.dims,
                        dtype_name(dt)
                    ),
                ));
            }
        }
        _ if per > 0 && len != n.saturating_mul(per) => {
            return Err(Error::tensor(
                &t.name,
                format!(
                    "{field} has {len} values, but dims {:?} of {} need {}",
                    t.dims,
                    dtype_name(dt),
                    n.saturating_mul(per)
                ),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Bytes the tensor's values take when stored compactly (element count × element size,
/// sub-byte types rounded up; strings: total string bytes). Nothing is decoded.
pub fn stored_bytes(t: &TensorProto) -> Result<u64> {
    let dt = data_type(t)?;
    if dt == DataType::String {
        return Ok(t.string_data.iter().map(|s| s.len() as u64).sum());
    }
    let bits = dtype_bits(dt).unwrap_or(0);
    let n = element_count(t)? as u64;
    n.checked_mul(bits)
        .map(|b| b.div_ceil(8))
        .ok_or_else(|| Error::tensor(&t.name, "size overflows"))
}

/// An element type that a tensor can be decoded to and built from, exactly.
pub trait Element: Copy + Sized + 'static {
    /// The matching ONNX dtype.
    const DTYPE: DataType;
    /// Bytes per element in `raw_data`.
    const SIZE: usize;
    /// Decode one element from `SIZE` little-endian bytes.
    fn from_le(b: &[u8]) -> Self;
    /// Append the little-endian bytes of one element.
    fn put_le(self, out: &mut Vec<u8>);
    /// The values held in this dtype's typed field, converted (length is the field's).
    fn from_field(t: &TensorProto) -> Vec<Self>;
    /// The typed field's length, without converting it.
    fn field_len(t: &TensorProto) -> usize;
    /// As f64 (exact for every type but u64/i64 beyond 2^53).
    fn to_f64(self) -> f64;
}

macro_rules! element {
    ($ty:ty, $dt:ident, $field:ident, |$v:ident| $from_field:expr, |$x:ident| $to_f64:expr) => {
        impl Element for $ty {
            const DTYPE: DataType = DataType::$dt;
            const SIZE: usize = std::mem::size_of::<$ty>();
            fn from_le(b: &[u8]) -> Self {
                <$ty>::from_le_bytes(b.try_into().expect("slice of SIZE bytes"))
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn from_field(t: &TensorProto) -> Vec<Self> {
                t.$field.iter().map(|&$v| $from_field).collect()
            }
            fn field_len(t: &TensorProto) -> usize {
                t.$field.len()
            }
            fn to_f64(self) -> f64 {
                let $x = self;
                $to_f64
            }
        }
    };
}

element!(f32, Float, float_data, |v| v, |x| x as f64);
element!(f64, Double, double_data, |v| v, |x| x);
element!(i64, Int64, int64_data, |v| v, |x| x as f64);
element!(u64, Uint64, uint64_data, |v| v, |x| x as f64);
element!(u32, Uint32, uint64_data, |v| v as u32, |x| x as f64);
element!(i32, Int32, int32_data, |v| v, |x| x as f64);
element!(i16, Int16, int32_data, |v| v as i16, |x| x as f64);
element!(u16, Uint16, int32_data, |v| v as u16, |x| x as f64);
element!(i8, Int8, int32_data, |v| v as i8, |x| x as f64);
element!(u8, Uint8, int32_data, |v| v as u8, |x| x as f64);
element!(
    f16,
    Float16,
    int32_data,
    |v| f16::from_bits(v as u16),
    |x| x.to_f64()
);
element!(
    bf16,
    Bfloat16,
    int32_data,
    |v| bf16::from_bits(v as u16),
    |x| x.to_f64()
);

impl Element for bool {
    const DTYPE: DataType = DataType::Bool;
    const SIZE: usize = 1;
    fn from_le(b: &[u8]) -> Self {
        b[0] != 0
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn from_field(t: &TensorProto) -> Vec<Self> {
        t.int32_data.iter().map(|&v| v != 0).collect()
    }
    fn field_len(t: &TensorProto) -> usize {
        t.int32_data.len()
    }
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
}

/// The tensor's values as `T`, which must be exactly its dtype.
pub fn to_vec<T: Element>(t: &TensorProto) -> Result<Vec<T>> {
    let dt = data_type(t)?;
    if dt != T::DTYPE {
        return Err(Error::tensor(
            &t.name,
            format!(
                "holds {}, expected {}",
                dtype_name(dt),
                dtype_name(T::DTYPE)
            ),
        ));
    }
    decode_exact::<T>(t)
}

fn decode_exact<T: Element>(t: &TensorProto) -> Result<Vec<T>> {
    if is_external(t) {
        return Err(Error::tensor(
            &t.name,
            "data is stored externally; load the model's external data first",
        ));
    }
    let n = element_count(t)?;
    match t.raw_data.as_deref() {
        Some(raw) if !raw.is_empty() || T::field_len(t) == 0 => {
            let want = n
                .checked_mul(T::SIZE)
                .ok_or_else(|| Error::tensor(&t.name, "size overflows"))?;
            if raw.len() != want {
                return Err(Error::tensor(
                    &t.name,
                    format!(
                        "raw_data has {} bytes, dims {:?} of {} need {want}",
                        raw.len(),
                        t.dims,
                        dtype_name(T::DTYPE)
                    ),
                ));
            }
            Ok(raw.chunks_exact(T::SIZE).map(T::from_le).collect())
        }
        _ => {
            let have = T::field_len(t);
            if have != n {
                return Err(Error::tensor(
                    &t.name,
                    format!("holds {have} values, dims {:?} need {n}", t.dims),
                ));
            }
            Ok(T::from_field(t))
        }
    }
}

fn convert<T: Element, U>(t: &TensorProto, f: impl Fn(T) -> U) -> Result<Vec<U>> {
    Ok(decode_exact::<T>(t)?.into_iter().map(f).collect())
}

/// The tensor's values converted to f32, from any real numeric dtype (float, double,
/// float16, bfloat16, integers, bool).
pub fn to_f32(t: &TensorProto) -> Result<Vec<f32>> {
    match data_type(t)? {
        DataType::Float => decode_exact::<f32>(t),
        DataType::Double => convert(t, |v: f64| v as f32),
        DataType::Float16 => convert(t, |v: f16| v.to_f32()),
        DataType::Bfloat16 => convert(t, |v: bf16| v.to_f32()),
        DataType::Int8 => convert(t, |v: i8| v as f32),
        DataType::Uint8 => convert(t, |v: u8| v as f32),
        DataType::Int16 => convert(t, |v: i16| v as f32),
        DataType::Uint16 => convert(t, |v: u16| v as f32),
        DataType::Int32 => convert(t, |v: i32| v as f32),
        DataType::Uint32 => convert(t, |v: u32| v as f32),
        DataType::Int64 => convert(t, |v: i64| v as f32),
        DataType::Uint64 => convert(t, |v: u64| v as f32),
        DataType::Bool => convert(t, |v: bool| v as u8 as f32),
        other => Err(Error::tensor(
            &t.name,
            format!("cannot read {} values as float", dtype_name(other)),
        )),
    }
}

/// The tensor's values converted to i64, from any integer dtype or bool (shapes, axes,
/// indices, zero points). A uint64 above `i64::MAX` is an error.
pub fn to_i64(t: &TensorProto) -> Result<Vec<i64>> {
    match data_type(t)? {
        DataType::Int64 => decode_exact::<i64>(t),
        DataType::Int8 => convert(t, |v: i8| v as i64),
        DataType::Uint8 => convert(t, |v: u8| v as i64),
        DataType::Int16 => convert(t, |v: i16| v as i64),
        DataType::Uint16 => convert(t, |v: u16| v as i64),
        DataType::Int32 => convert(t, |v: i32| v as i64),
        DataType::Uint32 => convert(t, |v: u32| v as i64),
        DataType::Bool => convert(t, |v: bool| v as i64),
        DataType::Uint64 => decode_exact::<u64>(t)?
            .into_iter()
            .map(|v| {
                i64::try_from(v).map_err(|_| Error::tensor(&t.name, format!("{v} exceeds int64")))
            })
            .collect(),
        other => Err(Error::tensor(
            &t.name,
            format!("cannot read {} values as integers", dtype_name(other)),
        )),
    }
}

/// The tensor's values as f64 from any real numeric dtype.
pub fn to_f64(t: &TensorProto) -> Result<Vec<f64>> {
    match data_type(t)? {
        DataType::Double => decode_exact::<f64>(t),
        DataType::Int64 => convert(t, |v: i64| v as f64),
        DataType::Uint64 => convert(t, |v: u64| v as f64),
        _ => Ok(to_f32(t)?.into_iter().map(f64::from).collect()),
    }
}

/// Build a tensor of `T` values with `raw_data` (the compact form exporters write).
/// The value count must match the dims.
pub fn from_slice<T: Element>(name: &str, dims: &[i64], data: &[T]) -> Result<TensorProto> {
    let n = dims_count(name, dims)?;
    if n != data.len() {
        return Err(Error::tensor(
            name,
            format!("dims {dims:?} need {n} values, got {}", data.len()),
        ));
    }
    let mut raw = Vec::with_capacity(data.len() * T::SIZE);
    for &v in data {
        v.put_le(&mut raw);
    }
    Ok(TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: Some(T::DTYPE as i32),
        raw_data: Some(raw),
        ..Default::default()
    })
}

/// A float tensor.
pub fn from_f32(name: &str, dims: &[i64], data: &[f32]) -> Result<TensorProto> {
    from_slice(name, dims, data)
}
/// A float16 tensor.
pub fn from_f16(name: &str, dims: &[i64], data: &[f16]) -> Result<TensorProto> {
    from_slice(name, dims, data)
}
/// An int8 tensor.
pub fn from_i8(name: &str, dims: &[i64], data: &[i8]) -> Result<TensorProto> {
    from_slice(name, dims, data)
}
/// A uint8 tensor.
pub fn from_u8(name: &str, dims: &[i64], data: &[u8]) -> Result<TensorProto> {
    from_slice(name, dims, data)
}
/// An int32 tensor.
pub fn from_i32(name: &str, dims: &[i64], data: &[i32]) -> Result<TensorProto> {
    from_slice(name, dims, data)
}
/// An int64 tensor.
pub fn from_i64(name: &str, dims: &[i64], data: &[i64]) -> Result<TensorProto> {
    from_slice(name, dims, data)
}

/// A scalar (rank 0) tensor.
pub fn scalar<T: Element>(name: &str, v: T) -> TensorProto {
    from_slice(name, &[], &[v]).expect("one value fits a scalar")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(dt: DataType, dims: &[i64]) -> TensorProto {
        TensorProto {
            name: "t".into(),
            dims: dims.to_vec(),
            data_type: Some(dt as i32),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_each_constructor() {
        let t = from_i8("a", &[3], &[-1, 0, 127]).unwrap();
        assert_eq!(to_vec::<i8>(&t).unwrap(), vec![-1, 0, 127]);
        assert_eq!(to_i64(&t).unwrap(), vec![-1, 0, 127]);
        let t = from_u8("a", &[2], &[0, 255]).unwrap();
        assert_eq!(to_f32(&t).unwrap(), vec![0.0, 255.0]);
        let t = from_i32("a", &[1, 2], &[7, -7]).unwrap();
        assert_eq!(to_vec::<i32>(&t).unwrap(), vec![7, -7]);
        let t = from_i64("a", &[2], &[i64::MIN, 5]).unwrap();
        assert_eq!(to_i64(&t).unwrap(), vec![i64::MIN, 5]);
        let t = from_f16("a", &[2], &[f16::from_f32(1.5), f16::from_f32(-2.0)]).unwrap();
        assert_eq!(to_f32(&t).unwrap(), vec![1.5, -2.0]);
        assert_eq!(t.raw_data.as_ref().unwrap().len(), 4);
        let t = scalar("s", 2.5f32);
        assert!(t.dims.is_empty());
        assert_eq!(to_f32(&t).unwrap(), vec![2.5]);
    }

    #[test]
    fn raw_data_is_little_endian() {
        let t = from_f32("w", &[1], &[1.0]).unwrap();
        assert_eq!(t.raw_data.unwrap(), vec![0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn reads_typed_fields() {
        let mut t = typed(DataType::Float, &[2]);
        t.float_data = vec![1.0, 2.0];
        assert_eq!(to_f32(&t).unwrap(), vec![1.0, 2.0]);

        let mut t = typed(DataType::Double, &[1]);
        t.double_data = vec![0.25];
        assert_eq!(to_f32(&t).unwrap(), vec![0.25]);

        let mut t = typed(DataType::Int64, &[2]);
        t.int64_data = vec![3, -4];
        assert_eq!(to_i64(&t).unwrap(), vec![3, -4]);

        let mut t = typed(DataType::Uint32, &[1]);
        t.uint64_data = vec![4_000_000_000];
        assert_eq!(to_i64(&t).unwrap(), vec![4_000_000_000]);

        let mut t = typed(DataType::Int8, &[2]);
        t.int32_data = vec![-128, 127];
        assert_eq!(to_vec::<i8>(&t).unwrap(), vec![-128, 127]);

        let mut t = typed(DataType::Bool, &[2]);
        t.int32_data = vec![1, 0];
        assert_eq!(to_vec::<bool>(&t).unwrap(), vec![true, false]);
    }

    #[test]
    fn reads_half_precision_bit_patterns_from_int32_data() {
        let mut t = typed(DataType::Float16, &[2]);
        t.int32_data = vec![
            f16::from_f32(0.5).to_bits() as i32,
            f16::from_f32(-3.0).to_bits() as i32,
        ];
        assert_eq!(to_f32(&t).unwrap(), vec![0.5, -3.0]);
        let mut t = typed(DataType::Bfloat16, &[1]);
        t.int32_data = vec![bf16::from_f32(2.0).to_bits() as i32];
        assert_eq!(to_f32(&t).unwrap(), vec![2.0]);
    }

    #[test]
    fn rejects_count_mismatch_before_allocating() {
        let mut t = typed(DataType::Float, &[1 << 40]);
        t.raw_data = Some(vec![0; 3]);
        let e = to_f32(&t).unwrap_err().to_string();
        assert!(e.starts_with("tensor 't': raw_data has 3 bytes"), "{e}");

        let mut t = typed(DataType::Float, &[i64::MAX, 4]);
        t.raw_data = Some(vec![0; 4]);
        assert!(to_f32(&t).unwrap_err().to_string().contains("overflow"));

        let mut t = typed(DataType::Float, &[-1]);
        t.float_data = vec![1.0];
        assert!(to_f32(&t).unwrap_err().to_string().contains("negative"));

        let mut t = typed(DataType::Int64, &[3]);
        t.int64_data = vec![1];
        assert!(to_i64(&t)
            .unwrap_err()
            .to_string()
            .contains("holds 1 values"));
    }

    #[test]
    fn rejects_wrong_dtype_and_unknown_codes() {
        let t = from_f32("w", &[1], &[1.0]).unwrap();
        assert!(to_vec::<i8>(&t)
            .unwrap_err()
            .to_string()
            .contains("holds float, expected int8"));
        assert!(to_i64(&t).is_err());
        let mut t = typed(DataType::Float, &[1]);
        t.data_type = Some(999);
        assert!(to_f32(&t).unwrap_err().to_string().contains("999"));
        assert!(from_f32("w", &[2], &[1.0]).is_err());
    }

    #[test]
    fn empty_tensor_decodes_to_empty() {
        let t = typed(DataType::Float, &[0, 3]);
        assert_eq!(to_f32(&t).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn stored_bytes_counts_sub_byte_types() {
        assert_eq!(stored_bytes(&typed(DataType::Float, &[3, 3])).unwrap(), 36);
        assert_eq!(stored_bytes(&typed(DataType::Int4, &[3])).unwrap(), 2);
        assert_eq!(stored_bytes(&typed(DataType::Float16, &[])).unwrap(), 2);
    }
}
