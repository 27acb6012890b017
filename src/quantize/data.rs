//! Calibration and evaluation samples: from a folder of images (through a declared
//! [`Preprocess`]) or of `.npy` tensors, or random with a loud warning. Every sample is
//! checked against the model's inputs (name, rank, fixed dimensions) and an error names
//! the file and the input.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};

use super::preprocess::Preprocess;
use super::runner::{Feed, NamedTensor};
use crate::error::{Error, Result};
use crate::model::proto::tensor_shape_proto::dimension;
use crate::model::proto::type_proto;
use crate::model::{DataType, Model};

/// One model input's signature.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// Input name.
    pub name: String,
    /// ONNX element type code.
    pub elem_type: i32,
    /// Dimensions; `None` where symbolic or unknown.
    pub dims: Vec<Option<usize>>,
}

/// The model's real inputs (graph inputs that are not initializers).
pub fn input_specs(model: &Model) -> Vec<InputSpec> {
    let g = model.graph();
    let inits: std::collections::HashSet<&str> =
        g.initializer.iter().map(|t| t.name.as_str()).collect();
    g.input
        .iter()
        .filter(|v| !inits.contains(v.name.as_str()))
        .map(|v| {
            let (elem_type, dims) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::TensorType(t)) => (
                    t.elem_type.unwrap_or(0),
                    t.shape
                        .as_ref()
                        .map(|s| {
                            s.dim
                                .iter()
                                .map(|d| match d.value {
                                    Some(dimension::Value::DimValue(n)) if n > 0 => {
                                        Some(n as usize)
                                    }
                                    _ => None,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                _ => (0, Vec::new()),
            };
            InputSpec {
                name: v.name.clone(),
                elem_type,
                dims,
            }
        })
        .collect()
}

/// Check one tensor against its input; `origin` names the file in the error.
pub fn check(spec: &InputSpec, t: &NamedTensor, origin: &Path) -> Result<()> {
    let bad = |m: String| Error::file(origin, format!("input '{}': {m}", spec.name));
    if spec.elem_type != DataType::Float as i32 {
        return Err(bad("the model expects a non-float32 input; only float32 inputs are supported by the quantizer".into()));
    }
    if !spec.dims.is_empty() && spec.dims.len() != t.shape.len() {
        return Err(bad(format!(
            "shape {:?} has rank {}, the model expects rank {}",
            t.shape,
            t.shape.len(),
            spec.dims.len()
        )));
    }
    for (i, (d, &n)) in spec.dims.iter().zip(&t.shape).enumerate() {
        if let Some(d) = d {
            if *d != n {
                return Err(bad(format!(
                    "shape {:?} has {n} at axis {i}, the model expects {d}",
                    t.shape
                )));
            }
        }
    }
    Ok(())
}

/// Files of a data folder, sorted by name: images (`.png`, `.jpg`, `.jpeg`) and `.npy`.
pub fn list_folder(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(
                        e.to_ascii_lowercase().as_str(),
                        "png" | "jpg" | "jpeg" | "npy"
                    )
                })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::file(
            dir,
            "no .png, .jpg or .npy files in this folder",
        ));
    }
    Ok(files)
}

/// Read one sample file for a single-input model.
pub fn load_sample(path: &Path, specs: &[InputSpec], pre: &Preprocess) -> Result<Feed> {
    if specs.len() != 1 {
        return Err(Error::file(
            path,
            format!(
                "the model has {} inputs; a single file can feed only one",
                specs.len()
            ),
        ));
    }
    let spec = &specs[0];
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (shape, data) = if ext == "npy" {
        read_npy_f32(path)?
    } else {
        let mut pre = pre.clone();
        // Resize to the model's fixed height/width when no size was declared.
        if pre.resize.is_none() && spec.dims.len() == 4 {
            let (h, w) = match pre.layout {
                super::preprocess::Layout::Nchw => (spec.dims[2], spec.dims[3]),
                super::preprocess::Layout::Nhwc => (spec.dims[1], spec.dims[2]),
            };
            if let (Some(h), Some(w)) = (h, w) {
                pre.resize = Some([h as u32, w as u32]);
            }
        }
        pre.load(path)?
    };
    let t = NamedTensor {
        name: spec.name.clone(),
        shape,
        data,
    };
    check(spec, &t, path)?;
    Ok(vec![t])
}

/// Random inputs in [-1, 1] (seeded), symbolic dims set from `symbolic` in order of
/// appearance; past its end, a leading (batch) dim is 1 and any other is 64 (a spatial
/// size every stride-32 backbone accepts). Accuracy figures on these are meaningless;
/// callers must say so.
pub fn random_feed(specs: &[InputSpec], symbolic: &[usize], seed: u64) -> Result<Feed> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut k = 0;
    specs
        .iter()
        .map(|s| {
            if s.elem_type != DataType::Float as i32 {
                return Err(Error::input(
                    &s.name,
                    "only float32 inputs can be generated",
                ));
            }
            let shape: Vec<usize> = s
                .dims
                .iter()
                .enumerate()
                .map(|(axis, d)| {
                    d.unwrap_or_else(|| {
                        let v = symbolic
                            .get(k)
                            .copied()
                            .unwrap_or(if axis == 0 { 1 } else { 64 });
                        k += 1;
                        v
                    })
                })
                .collect();
            let n: usize = shape.iter().product();
            Ok(NamedTensor {
                name: s.name.clone(),
                shape,
                data: (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
            })
        })
        .collect()
}

/// A float32 `.npy` sample, read by the crate's one `.npy` parser (`tensor::npy`: header,
/// dtype, byte order and size checked before allocating). Other dtypes are refused with the
/// file named.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let t = crate::tensor::npy::read_npy(path)?;
    if t.dtype() != crate::tensor::DType::F32 {
        return Err(Error::file(
            path,
            format!(
                "dtype is {}, not float32; the quantizer reads float32 inputs",
                t.dtype().name()
            ),
        ));
    }
    Ok((t.shape().to_vec(), t.to_f32_vec()))
}
