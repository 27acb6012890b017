//! Tensors in and out, independent of any model or runtime.
//!
//! A [`Tensor`] is an element type ([`DType`]), a shape and its elements in C order, held
//! as a typed vector ([`TensorData`]). Typed storage (rather than raw bytes) keeps elements
//! aligned, so handing a tensor to ONNX Runtime or reading it as `&[f32]` costs no copy.
//!
//! File formats, each with a reader that checks the declared shape and element type against
//! the data length *before* allocating, and names the file in every error:
//! - [`npy`]: NumPy `.npy` (read + atomic write) and `.npz` archives of them (read).
//! - [`pb`]: ONNX `TensorProto` `.pb` files, the ONNX backend test-data format (read +
//!   conversion to a `TensorProto`, e.g. for a new initializer).
//! - [`read_file`] picks the reader from the extension.
//!
//! [`crate::inputs`] turns a model's signature plus `--shape`/`--dim` values into concrete
//! input shapes and fills them with generated data or data from files.
//!
//! ```
//! use edgepack::tensor::{DType, Tensor};
//! let t = Tensor::from_f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])?;
//! assert_eq!(t.dtype(), DType::F32);
//! assert_eq!(t.shape(), &[2, 2]);
//! assert_eq!(t.to_f32_vec(), vec![1.0, 2.0, 3.0, 4.0]);
//! let r = Tensor::random(DType::I64, &[3], 42);
//! assert_eq!(r.len(), 3);
//! # Ok::<(), edgepack::Error>(())
//! ```

pub mod npy;
pub mod pb;

use std::fmt;
use std::path::Path;

use half::{bf16, f16};
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::model::DataType;

/// The element types edgepack reads, writes and feeds to ONNX Runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
}

impl DType {
    /// Every supported element type.
    pub const ALL: [DType; 13] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F64,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
        DType::Bool,
    ];

    /// NumPy-style name (`float32`, `int64`, `bool`, `bfloat16`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::U16 => "uint16",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::I64 => "int64",
            DType::U64 => "uint64",
            DType::Bool => "bool",
        }
    }

    /// Parse a NumPy-style name (as printed by [`DType::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }

    /// The ONNX element type.
    pub fn to_onnx(self) -> DataType {
        match self {
            DType::F32 => DataType::Float,
            DType::F16 => DataType::Float16,
            DType::BF16 => DataType::Bfloat16,
            DType::F64 => DataType::Double,
            DType::I8 => DataType::Int8,
            DType::U8 => DataType::Uint8,
            DType::I16 => DataType::Int16,
            DType::U16 => DataType::Uint16,
            DType::I32 => DataType::Int32,
            DType::U32 => DataType::Uint32,
            DType::I64 => DataType::Int64,
            DType::U64 => DataType::Uint64,
            DType::Bool => DataType::Bool,
        }
    }

    /// From an ONNX element type (`TensorProto.data_type`); `None` for types edgepack does
    /// not handle as tensors (string, complex, 4- and 8-bit floats).
    pub fn from_onnx(data_type: i32) -> Option<Self> {
        let dt = DataType::try_from(data_type).ok()?;
        Some(match dt {
            DataType::Float => DType::F32,
            DataType::Float16 => DType::F16,
            DataType::Bfloat16 => DType::BF16,
            DataType::Double => DType::F64,
            DataType::Int8 => DType::I8,
            DataType::Uint8 => DType::U8,
            DataType::Int16 => DType::I16,
            DataType::Uint16 => DType::U16,
            DataType::Int32 => DType::I32,
            DataType::Uint32 => DType::U32,
            DataType::Int64 => DType::I64,
            DataType::Uint64 => DType::U64,
            DataType::Bool => DType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of an ONNX element type code, for error messages (`FLOAT8E4M3FN`, `code 99`).
pub fn onnx_type_name(data_type: i32) -> String {
    match DataType::try_from(data_type) {
        Ok(dt) => format!("{dt:?}").to_uppercase(),
        Err(_) => format!("unknown ONNX type code {data_type}"),
    }
}

/// A tensor's elements in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F64(Vec<f64>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::BF16(_) => DType::BF16,
            TensorData::F64(_) => DType::F64,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::I16(_) => DType::I16,
            TensorData::U16(_) => DType::U16,
            TensorData::I32(_) => DType::I32,
            TensorData::U32(_) => DType::U32,
            TensorData::I64(_) => DType::I64,
            TensorData::U64(_) => DType::U64,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::BF16(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I16(v) => v.len(),
            TensorData::U16(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::U32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::U64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decode little-endian element bytes. `bytes.len()` must be a multiple of the element
    /// size (callers check the declared shape first and name the file).
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Self {
        fn chunks<const N: usize, T>(b: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            b.chunks_exact(N)
                .map(|c| f(c.try_into().expect("chunk of N bytes")))
                .collect()
        }
        match dtype {
            DType::F32 => TensorData::F32(chunks(bytes, f32::from_le_bytes)),
            DType::F16 => TensorData::F16(chunks(bytes, f16::from_le_bytes)),
            DType::BF16 => TensorData::BF16(chunks(bytes, bf16::from_le_bytes)),
            DType::F64 => TensorData::F64(chunks(bytes, f64::from_le_bytes)),
            DType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
            DType::U8 => TensorData::U8(bytes.to_vec()),
            DType::I16 => TensorData::I16(chunks(bytes, i16::from_le_bytes)),
            DType::U16 => TensorData::U16(chunks(bytes, u16::from_le_bytes)),
            DType::I32 => TensorData::I32(chunks(bytes, i32::from_le_bytes)),
            DType::U32 => TensorData::U32(chunks(bytes, u32::from_le_bytes)),
            DType::I64 => TensorData::I64(chunks(bytes, i64::from_le_bytes)),
            DType::U64 => TensorData::U64(chunks(bytes, u64::from_le_bytes)),
            DType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        }
    }

    /// Encode the elements as little-endian bytes.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        fn flat<const N: usize, T: Copy>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
            let mut out = Vec::with_capacity(v.len() * N);
            for &x in v {
                out.extend_from_slice(&f(x));
            }
            out
        }
        match self {
            TensorData::F32(v) => flat(v, f32::to_le_bytes),
            TensorData::F16(v) => flat(v, f16::to_le_bytes),
            TensorData::BF16(v) => flat(v, bf16::to_le_bytes),
            TensorData::F64(v) => flat(v, f64::to_le_bytes),
            TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
            TensorData::U8(v) => v.clone(),
            TensorData::I16(v) => flat(v, i16::to_le_bytes),
            TensorData::U16(v) => flat(v, u16::to_le_bytes),
            TensorData::I32(v) => flat(v, i32::to_le_bytes),
            TensorData::U32(v) => flat(v, u32::to_le_bytes),
            TensorData::I64(v) => flat(v, i64::to_le_bytes),
            TensorData::U64(v) => flat(v, u64::to_le_bytes),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8).collect(),
        }
    }
}

/// An n-dimensional tensor: element type, shape, elements in C order.
///
/// The invariant `shape.iter().product() == data.len()` holds for every value built through
/// the public constructors.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

/// The element count of `shape`, or `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Format a shape as `1x3x224x224` (`scalar` for rank 0).
pub fn format_shape(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "scalar".into();
    }
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

impl Tensor {
    /// A tensor from a shape and matching data.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Self> {
        let n = element_count(&shape).ok_or_else(|| {
            Error::usage(
                "tensor",
                format!("shape {} overflows", format_shape(&shape)),
            )
        })?;
        if n != data.len() {
            return Err(Error::usage(
                "tensor",
                format!(
                    "shape {} holds {n} elements but {} were given",
                    format_shape(&shape),
                    data.len()
                ),
            ));
        }
        Ok(Tensor { shape, data })
    }

    /// An `f32` tensor.
    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        Self::new(shape, TensorData::F32(data))
    }

    /// A tensor from little-endian element bytes; `origin` names the source in errors.
    /// The byte length is checked against the shape before any element is decoded.
    pub fn from_le_bytes(
        dtype: DType,
        shape: Vec<usize>,
        bytes: &[u8],
        origin: &Path,
    ) -> Result<Self> {
        let expected = element_count(&shape)
            .and_then(|n| n.checked_mul(dtype.size_bytes()))
            .ok_or_else(|| {
                Error::file(
                    origin,
                    format!("shape {} is too large", format_shape(&shape)),
                )
            })?;
        if expected != bytes.len() {
            return Err(Error::file(
                origin,
                format!(
                    "{dtype} shape {} needs {expected} bytes of data but there are {}",
                    format_shape(&shape),
                    bytes.len()
                ),
            ));
        }
        Ok(Tensor {
            data: TensorData::from_le_bytes(dtype, bytes),
            shape,
        })
    }

    /// Zeros of the given type and shape.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Self> {
        let n = element_count(shape).ok_or_else(|| {
            Error::usage("tensor", format!("shape {} overflows", format_shape(shape)))
        })?;
        let data = match dtype {
            DType::F32 => TensorData::F32(vec![0.0; n]),
            DType::F16 => TensorData::F16(vec![f16::ZERO; n]),
            DType::BF16 => TensorData::BF16(vec![bf16::ZERO; n]),
            DType::F64 => TensorData::F64(vec![0.0; n]),
            DType::I8 => TensorData::I8(vec![0; n]),
            DType::U8 => TensorData::U8(vec![0; n]),
            DType::I16 => TensorData::I16(vec![0; n]),
            DType::U16 => TensorData::U16(vec![0; n]),
            DType::I32 => TensorData::I32(vec![0; n]),
            DType::U32 => TensorData::U32(vec![0; n]),
            DType::I64 => TensorData::I64(vec![0; n]),
            DType::U64 => TensorData::U64(vec![0; n]),
            DType::Bool => TensorData::Bool(vec![false; n]),
        };
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// A tensor from `f64` values, each cast to `dtype` (Rust `as` semantics: saturating
    /// for integers, nonzero is `true` for bool). For generated inputs, whose values the
    /// caller has already put in the type's range.
    pub fn from_f64_values(dtype: DType, shape: &[usize], v: Vec<f64>) -> Result<Self> {
        let data = match dtype {
            DType::F32 => TensorData::F32(v.into_iter().map(|x| x as f32).collect()),
            DType::F16 => TensorData::F16(v.into_iter().map(f16::from_f64).collect()),
            DType::BF16 => TensorData::BF16(v.into_iter().map(bf16::from_f64).collect()),
            DType::F64 => TensorData::F64(v),
            DType::I8 => TensorData::I8(v.into_iter().map(|x| x as i8).collect()),
            DType::U8 => TensorData::U8(v.into_iter().map(|x| x as u8).collect()),
            DType::I16 => TensorData::I16(v.into_iter().map(|x| x as i16).collect()),
            DType::U16 => TensorData::U16(v.into_iter().map(|x| x as u16).collect()),
            DType::I32 => TensorData::I32(v.into_iter().map(|x| x as i32).collect()),
            DType::U32 => TensorData::U32(v.into_iter().map(|x| x as u32).collect()),
            DType::I64 => TensorData::I64(v.into_iter().map(|x| x as i64).collect()),
            DType::U64 => TensorData::U64(v.into_iter().map(|x| x as u64).collect()),
            DType::Bool => TensorData::Bool(v.into_iter().map(|x| x != 0.0).collect()),
        };
        Tensor::new(shape.to_vec(), data)
    }

    /// `value` everywhere (see [`Tensor::from_f64_values`] for the cast).
    pub fn filled(dtype: DType, shape: &[usize], value: f64) -> Result<Self> {
        let n = element_count(shape).ok_or_else(|| {
            Error::usage("tensor", format!("shape {} overflows", format_shape(shape)))
        })?;
        Tensor::from_f64_values(dtype, shape, vec![value; n])
    }

    /// Seeded values uniform in `lo..=hi` (integer and bool types: whole numbers, both
    /// ends included) or `[lo, hi)` (floats; `lo` everywhere when `lo == hi`).
    pub fn uniform(dtype: DType, shape: &[usize], lo: f64, hi: f64, seed: u64) -> Result<Self> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = element_count(shape).ok_or_else(|| {
            Error::usage("tensor", format!("shape {} overflows", format_shape(shape)))
        })?;
        let v: Vec<f64> = if dtype.is_float() {
            (0..n)
                .map(|_| lo + (hi - lo) * rng.random::<f64>())
                .collect()
        } else {
            let (lo, hi) = (lo.ceil() as i128, hi.floor() as i128);
            (0..n)
                .map(|_| {
                    if hi <= lo {
                        lo as f64
                    } else {
                        rng.random_range(lo..=hi) as f64
                    }
                })
                .collect()
        };
        Tensor::from_f64_values(dtype, shape, v)
    }

    /// Seeded random data of the given type and shape (the same seed gives the same tensor
    /// on every platform: `StdRng` is a fixed algorithm).
    ///
    /// Floats are uniform in [0, 1) (the range of normalized images); integers are uniform
    /// in [0, 10), small enough to be valid indices or token ids for most models; booleans
    /// are fair coin flips.
    pub fn random(dtype: DType, shape: &[usize], seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = element_count(shape).expect("shape fits in memory");
        let data = match dtype {
            DType::F32 => TensorData::F32((0..n).map(|_| rng.random::<f32>()).collect()),
            DType::F16 => TensorData::F16((0..n).map(|_| f16::from_f32(rng.random())).collect()),
            DType::BF16 => TensorData::BF16((0..n).map(|_| bf16::from_f32(rng.random())).collect()),
            DType::F64 => TensorData::F64((0..n).map(|_| rng.random::<f64>()).collect()),
            DType::I8 => TensorData::I8((0..n).map(|_| rng.random_range(0..10)).collect()),
            DType::U8 => TensorData::U8((0..n).map(|_| rng.random_range(0..10)).collect()),
            DType::I16 => TensorData::I16((0..n).map(|_| rng.random_range(0..10)).collect()),
            DType::U16 => TensorData::U16((0..n).map(|_| rng.random_range(0..10)).collect()),
            DType::I32 => TensorData::I32((0..n).map(|_| rng.random_range(0..10)).collect()),
            DType::U32 => TensorData::U32((0..n).map(|_| rng.random_range(0..10)).collect()),
            DType::I64 => TensorData::I64((0..n).map(|_| rng.random_range(0..10)).collect()),
            DType::U64 => TensorData::U64((0..n).map(|_| rng.random_range(0..10)).collect()),
            DType::Bool => TensorData::Bool((0..n).map(|_| rng.random::<bool>()).collect()),
        };
        Tensor {
            shape: shape.to_vec(),
            data,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Take the elements.
    pub fn into_data(self) -> TensorData {
        self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Size of the elements in bytes.
    pub fn size_bytes(&self) -> usize {
        self.len() * self.dtype().size_bytes()
    }

    /// The elements as `f32`, if the tensor is `f32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Every element converted to `f32` (booleans as 0/1; 64-bit values may round).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            TensorData::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I16(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::U16(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::U32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::U64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f32).collect(),
        }
    }

    /// Every element converted to `f64` (booleans as 0/1).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F64(v) => v.clone(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::U64(v) => v.iter().map(|&x| x as f64).collect(),
            _ => self.to_f32_vec().into_iter().map(f64::from).collect(),
        }
    }

    /// Little-endian element bytes.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.data.to_le_bytes()
    }

    /// The same elements with another shape of equal element count.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self> {
        Self::new(shape, self.data)
    }
}

/// Read one tensor from a file, picking the format from the extension: `.npy` or `.pb`
/// (ONNX `TensorProto`). Use [`npy::read_npz`] for `.npz` archives (several tensors).
pub fn read_file(path: &Path) -> Result<Tensor> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("npy") => npy::read_npy(path),
        Some("pb") => pb::read_pb(path).map(|(_, t)| t),
        _ => Err(Error::file(
            path,
            "unknown tensor file type (expected .npy or .pb; .npz holds several tensors)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_reproducible_per_seed() {
        let a = Tensor::random(DType::F32, &[4, 5], 7);
        let b = Tensor::random(DType::F32, &[4, 5], 7);
        let c = Tensor::random(DType::F32, &[4, 5], 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.to_f32_vec().iter().all(|x| (0.0..1.0).contains(x)));
    }

    #[test]
    fn random_covers_every_dtype() {
        for d in DType::ALL {
            let t = Tensor::random(d, &[2, 3], 1);
            assert_eq!(t.dtype(), d);
            assert_eq!(t.len(), 6);
            assert_eq!(t.to_le_bytes().len(), 6 * d.size_bytes());
        }
    }

    #[test]
    fn rejects_shape_data_mismatch() {
        let e = Tensor::from_f32(vec![2, 3], vec![0.0; 5]).unwrap_err();
        assert!(e.to_string().contains("holds 6 elements but 5"), "{e}");
    }

    #[test]
    fn le_bytes_round_trip_every_dtype() {
        for d in DType::ALL {
            let t = Tensor::random(d, &[3, 2], 3);
            let back =
                Tensor::from_le_bytes(d, vec![3, 2], &t.to_le_bytes(), Path::new("x")).unwrap();
            assert_eq!(t, back);
        }
    }

    #[test]
    fn from_le_bytes_checks_length_before_decoding() {
        let e = Tensor::from_le_bytes(DType::F32, vec![2, 2], &[0u8; 15], Path::new("in.bin"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "in.bin: float32 shape 2x2 needs 16 bytes of data but there are 15"
        );
        let e = Tensor::from_le_bytes(
            DType::F64,
            vec![usize::MAX, 4],
            &[0u8; 8],
            Path::new("in.bin"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn onnx_type_codes_map_both_ways() {
        for d in DType::ALL {
            assert_eq!(DType::from_onnx(d.to_onnx() as i32), Some(d));
        }
        assert_eq!(DType::from_onnx(DataType::String as i32), None);
        assert_eq!(DType::from_onnx(999), None);
        assert_eq!(onnx_type_name(17), "FLOAT8E4M3FN");
    }
}
