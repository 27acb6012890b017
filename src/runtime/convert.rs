//! Conversions between edgepack [`Tensor`]s and `ort` values. Private to `runtime`: no
//! `ort` type leaves this module tree.

use ort::session::SessionInputValue;
use ort::value::{
    DynValue, Tensor as OrtTensor, TensorElementType, TensorRef, TensorValueTypeMarker, Value,
};

use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor, TensorData};

pub(crate) fn element_type(d: DType) -> TensorElementType {
    match d {
        DType::F32 => TensorElementType::Float32,
        DType::F16 => TensorElementType::Float16,
        DType::BF16 => TensorElementType::Bfloat16,
        DType::F64 => TensorElementType::Float64,
        DType::I8 => TensorElementType::Int8,
        DType::U8 => TensorElementType::Uint8,
        DType::I16 => TensorElementType::Int16,
        DType::U16 => TensorElementType::Uint16,
        DType::I32 => TensorElementType::Int32,
        DType::U32 => TensorElementType::Uint32,
        DType::I64 => TensorElementType::Int64,
        DType::U64 => TensorElementType::Uint64,
        DType::Bool => TensorElementType::Bool,
    }
}

pub(crate) fn dtype_of(t: TensorElementType) -> Option<DType> {
    Some(match t {
        TensorElementType::Float32 => DType::F32,
        TensorElementType::Float16 => DType::F16,
        TensorElementType::Bfloat16 => DType::BF16,
        TensorElementType::Float64 => DType::F64,
        TensorElementType::Int8 => DType::I8,
        TensorElementType::Uint8 => DType::U8,
        TensorElementType::Int16 => DType::I16,
        TensorElementType::Uint16 => DType::U16,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Uint32 => DType::U32,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Uint64 => DType::U64,
        TensorElementType::Bool => DType::Bool,
        _ => return None,
    })
}

fn ort_err(name: &str) -> impl Fn(ort::Error) -> Error + '_ {
    move |e| Error::input(name, format!("ONNX Runtime refused the tensor: {e}"))
}

/// A borrowed view of `t` as a session input (no copy).
pub(crate) fn input_view<'a>(name: &str, t: &'a Tensor) -> Result<SessionInputValue<'a>> {
    let shape = t.shape().to_vec();
    macro_rules! view {
        ($v:expr) => {
            TensorRef::from_array_view((shape, $v.as_slice()))
                .map(SessionInputValue::from)
                .map_err(ort_err(name))
        };
    }
    match t.data() {
        TensorData::F32(v) => view!(v),
        TensorData::F16(v) => view!(v),
        TensorData::BF16(v) => view!(v),
        TensorData::F64(v) => view!(v),
        TensorData::I8(v) => view!(v),
        TensorData::U8(v) => view!(v),
        TensorData::I16(v) => view!(v),
        TensorData::U16(v) => view!(v),
        TensorData::I32(v) => view!(v),
        TensorData::U32(v) => view!(v),
        TensorData::I64(v) => view!(v),
        TensorData::U64(v) => view!(v),
        TensorData::Bool(v) => view!(v),
    }
}

/// An owned ORT value holding a copy of `t` (for bindings that outlive the caller's data).
pub(crate) fn to_value(name: &str, t: &Tensor) -> Result<DynValue> {
    let shape = t.shape().to_vec();
    macro_rules! own {
        ($v:expr) => {
            OrtTensor::from_array((shape, $v.clone()))
                .map(|x| x.into_dyn())
                .map_err(ort_err(name))
        };
    }
    match t.data() {
        TensorData::F32(v) => own!(v),
        TensorData::F16(v) => own!(v),
        TensorData::BF16(v) => own!(v),
        TensorData::F64(v) => own!(v),
        TensorData::I8(v) => own!(v),
        TensorData::U8(v) => own!(v),
        TensorData::I16(v) => own!(v),
        TensorData::U16(v) => own!(v),
        TensorData::I32(v) => own!(v),
        TensorData::U32(v) => own!(v),
        TensorData::I64(v) => own!(v),
        TensorData::U64(v) => own!(v),
        TensorData::Bool(v) => own!(v),
    }
}

/// Copy an ORT output value into a [`Tensor`]; `name` names the output in errors.
pub(crate) fn from_value<T: TensorValueTypeMarker + ?Sized>(
    name: &str,
    v: &Value<T>,
) -> Result<Tensor> {
    let err = |m: String| Error::Runtime(format!("output '{name}': {m}"));
    let ty = v
        .dtype()
        .tensor_type()
        .ok_or_else(|| err("is not a tensor (sequences and maps are not supported)".into()))?;
    let dtype = dtype_of(ty).ok_or_else(|| err(format!("element type {ty} is not supported")))?;
    macro_rules! take {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = v
                .try_extract_tensor::<$t>()
                .map_err(|e| err(e.to_string()))?;
            let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            Tensor::new(shape, TensorData::$variant(data.to_vec()))
        }};
    }
    match dtype {
        DType::F32 => take!(f32, F32),
        DType::F16 => take!(half::f16, F16),
        DType::BF16 => take!(half::bf16, BF16),
        DType::F64 => take!(f64, F64),
        DType::I8 => take!(i8, I8),
        DType::U8 => take!(u8, U8),
        DType::I16 => take!(i16, I16),
        DType::U16 => take!(u16, U16),
        DType::I32 => take!(i32, I32),
        DType::U32 => take!(u32, U32),
        DType::I64 => take!(i64, I64),
        DType::U64 => take!(u64, U64),
        DType::Bool => take!(bool, Bool),
    }
}
