//! Calibration and evaluation samples: from a folder of images (through a declared
//! [`Preprocess`]) or of tensors, or random with a loud warning. One sample is one of:
//! - an image (`.png`, `.jpg`, `.jpeg`) or a `.npy` array: single-input models;
//! - a `.pb` ONNX `TensorProto`: single-input models (its name, if set, must be the input's);
//! - an `.npz` archive with one array per input, keyed by input name (a single-input model
//!   also takes an archive holding one array under any name);
//! - a sub-folder holding one `.pb` or `.npy` per input (ONNX's `test_data_set_N/input_K.pb`
//!   layout): matched by the TensorProto's name or the file stem, else `input_K` by position.
//!
//! Samples hold any element type (int64 token ids, int32 bytes, bool masks, float16...):
//! every sample is checked against the model's inputs (name, element type, rank, fixed
//! dimensions, token ids inside the vocabulary) and an error names the file and the input.
//! Shapes may differ between samples (sequence lengths vary).

use std::path::{Path, PathBuf};

use super::preprocess::Preprocess;
use super::runner::{Feed, NamedTensor};
use crate::error::{Error, Result};
use crate::model::proto::tensor_shape_proto::dimension;
use crate::model::proto::type_proto;
use crate::model::Model;
use crate::tensor::DType;

/// One model input's signature.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// Input name.
    pub name: String,
    /// ONNX element type code.
    pub elem_type: i32,
    /// Dimensions; `None` where symbolic or unknown.
    pub dims: Vec<Option<usize>>,
    /// The symbol of each dim (`batch`, `sequence`), `None` where fixed or unnamed: inputs
    /// that share a symbol get the same generated size.
    pub symbols: Vec<Option<String>>,
    /// For integer inputs that index a constant table through `Gather` (token ids): the
    /// table's size along the gathered axis, so generated ids are valid and sample ids
    /// are checked.
    pub vocab: Option<usize>,
}

impl InputSpec {
    /// The element type, or an error naming the input for types the quantizer cannot
    /// feed (strings, complex, unknown).
    pub fn dtype(&self) -> Result<DType> {
        DType::from_onnx(self.elem_type).ok_or_else(|| {
            Error::input(
                &self.name,
                format!(
                    "is a {} tensor; the quantizer feeds numeric and bool inputs only",
                    crate::tensor::onnx_type_name(self.elem_type).to_ascii_lowercase()
                ),
            )
        })
    }
}

/// Refuse, before any work, a model with an input the quantizer cannot feed (a string
/// input, say): one error naming the input.
pub fn check_model_inputs(model: &Model) -> Result<()> {
    for s in input_specs(model) {
        s.dtype()?;
    }
    Ok(())
}

/// The table size behind each input that feeds `Gather` indices (axis 0 by default).
fn gather_vocab(model: &Model) -> std::collections::HashMap<String, usize> {
    let g = model.graph();
    let mut out = std::collections::HashMap::new();
    for n in g.node.iter().filter(|n| n.op_type == "Gather") {
        let (Some(table), Some(idx)) = (n.input.first(), n.input.get(1)) else {
            continue;
        };
        let Some(t) = g.initializer.iter().find(|t| &t.name == table) else {
            continue;
        };
        let axis = n
            .attribute
            .iter()
            .find(|a| a.name == "axis")
            .and_then(|a| a.i)
            .unwrap_or(0);
        let axis = if axis < 0 {
            axis + t.dims.len() as i64
        } else {
            axis
        };
        if let Some(&d) = t.dims.get(axis as usize) {
            let e = out.entry(idx.clone()).or_insert(d as usize);
            *e = (*e).min(d as usize);
        }
    }
    out
}

/// The model's real inputs (graph inputs that are not initializers).
pub fn input_specs(model: &Model) -> Vec<InputSpec> {
    let vocab = gather_vocab(model);
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
                        .map(|s| s.dim.iter().map(|d| d.value.clone()).collect())
                        .unwrap_or_default(),
                ),
                _ => (0, Vec::new()),
            };
            let dims: Vec<Option<dimension::Value>> = dims;
            InputSpec {
                name: v.name.clone(),
                elem_type,
                symbols: dims
                    .iter()
                    .map(|d| match d {
                        // Placeholders such as Paddle's `?` name no size: unnamed.
                        Some(dimension::Value::DimParam(p))
                            if p.chars().any(|c| c.is_ascii_alphanumeric()) =>
                        {
                            Some(p.clone())
                        }
                        _ => None,
                    })
                    .collect(),
                dims: dims
                    .iter()
                    .map(|d| match d {
                        Some(dimension::Value::DimValue(n)) if *n > 0 => Some(*n as usize),
                        _ => None,
                    })
                    .collect(),
                vocab: vocab.get(&v.name).copied(),
            }
        })
        .collect()
}

/// Check one tensor against its input; `origin` names the file in the error.
pub fn check(spec: &InputSpec, t: &NamedTensor, origin: &Path) -> Result<()> {
    let bad = |m: String| Error::file(origin, format!("input '{}': {m}", spec.name));
    let want = spec.dtype()?;
    if t.dtype() != want {
        return Err(bad(format!(
            "dtype is {}, the model expects {}",
            t.dtype().name(),
            want.name()
        )));
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
    if let Some(vocab) = spec.vocab {
        let ids = t.to_tensor()?.to_f64_vec();
        if let Some(bad_id) = ids.iter().find(|&&v| v < 0.0 || v >= vocab as f64) {
            return Err(bad(format!(
                "token id {bad_id} is outside the vocabulary [0, {vocab})"
            )));
        }
    }
    Ok(())
}

const SAMPLE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "npy", "npz", "pb"];

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Samples of a data folder, sorted by name: image, `.npy`, `.npz` and `.pb` files, and
/// sub-folders holding one tensor file per input.
pub fn list_folder(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            (p.is_file() && SAMPLE_EXTENSIONS.contains(&extension(p).as_str()))
                || (p.is_dir() && tensor_files(p).is_ok_and(|f| !f.is_empty()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::file(
            dir,
            "no samples in this folder (.png, .jpg, .npy, .npz, .pb files, or folders of input_K.pb)",
        ));
    }
    Ok(files)
}

/// The `.pb` and `.npy` files of a one-sample folder, sorted.
fn tensor_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && matches!(extension(p).as_str(), "pb" | "npy"))
        .collect();
    files.sort();
    Ok(files)
}

/// A float32 tensor for the quantizer, or an error naming the file.
fn as_f32(t: crate::tensor::Tensor, origin: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    if t.dtype() != crate::tensor::DType::F32 {
        return Err(Error::file(
            origin,
            format!(
                "dtype is {}, not float32; the quantizer reads float32 inputs",
                t.dtype().name()
            ),
        ));
    }
    Ok((t.shape().to_vec(), t.to_f32_vec()))
}

/// Match named tensors to the model's inputs: by name; a single-input model also takes a
/// single tensor of any name; otherwise `input_K` (or an empty name) means input K.
fn match_inputs(
    tensors: Vec<(String, crate::tensor::Tensor)>,
    specs: &[InputSpec],
    origin: &Path,
) -> Result<Feed> {
    let mut slots: Vec<Option<crate::tensor::Tensor>> = vec![None; specs.len()];
    let single = specs.len() == 1 && tensors.len() == 1;
    for (k, (name, t)) in tensors.into_iter().enumerate() {
        let by_name = specs.iter().position(|s| s.name == name);
        let by_position = name
            .strip_prefix("input_")
            .and_then(|i| i.parse::<usize>().ok())
            .or((name.is_empty()).then_some(k));
        let Some(i) = by_name
            .or(single.then_some(0))
            .or(by_position.filter(|&i| i < specs.len()))
        else {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::file(
                origin,
                format!("holds a tensor named '{name}', which is not an input of the model (inputs: {})", names.join(", ")),
            ));
        };
        if slots[i].is_some() {
            return Err(Error::file(
                origin,
                format!("holds two tensors for input '{}'", specs[i].name),
            ));
        }
        slots[i] = Some(t);
    }
    specs
        .iter()
        .zip(slots)
        .map(|(spec, t)| {
            let t = t.ok_or_else(|| {
                Error::file(origin, format!("has no tensor for input '{}'", spec.name))
            })?;
            let t = NamedTensor::from_tensor(&spec.name, t);
            check(spec, &t, origin)?;
            Ok(t)
        })
        .collect()
}

/// Read one sample (a file or a one-sample folder; see the module docs).
pub fn load_sample(path: &Path, specs: &[InputSpec], pre: &Preprocess) -> Result<Feed> {
    if path.is_dir() {
        let tensors = tensor_files(path)?
            .into_iter()
            .map(|f| {
                if extension(&f) == "pb" {
                    let (name, t) = crate::tensor::pb::read_pb(&f)?;
                    let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                    Ok((
                        if name.is_empty() {
                            stem.to_string()
                        } else {
                            name
                        },
                        t,
                    ))
                } else {
                    let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                    Ok((stem.to_string(), crate::tensor::npy::read_npy(&f)?))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        return match_inputs(tensors, specs, path);
    }
    let ext = extension(path);
    match ext.as_str() {
        "npz" => return match_inputs(crate::tensor::npy::read_npz(path)?, specs, path),
        "pb" => {
            let (name, t) = crate::tensor::pb::read_pb(path)?;
            if specs.len() == 1 && !name.is_empty() && name != specs[0].name {
                return Err(Error::file(
                    path,
                    format!(
                        "holds tensor '{name}', but the model's input is '{}'",
                        specs[0].name
                    ),
                ));
            }
            if specs.len() != 1 {
                return Err(Error::file(
                    path,
                    format!("the model has {} inputs; a single .pb feeds only one (use an .npz keyed by input name, or a folder per sample)", specs.len()),
                ));
            }
            return match_inputs(vec![(String::new(), t)], specs, path);
        }
        _ => {}
    }
    if specs.len() != 1 {
        return Err(Error::file(
            path,
            format!(
                "the model has {} inputs; a single file can feed only one (use an .npz keyed by input name, or a folder per sample)",
                specs.len()
            ),
        ));
    }
    let spec = &specs[0];
    if ext == "npy" {
        let t = NamedTensor::from_tensor(&spec.name, crate::tensor::npy::read_npy(path)?);
        check(spec, &t, path)?;
        return Ok(vec![t]);
    }
    let (shape, data) = {
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
    let t = NamedTensor::f32(&spec.name, shape, data);
    check(spec, &t, path)?;
    Ok(vec![t])
}

/// A float32 `.npy` sample, read by the crate's one `.npy` parser (`tensor::npy`: header,
/// dtype, byte order and size checked before allocating). Other dtypes are refused with the
/// file named.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    as_f32(crate::tensor::npy::read_npy(path)?, path)
}

/// One generated input set through the input model ([`crate::inputs`]: shapes from the
/// overrides, values by dtype and role, `ranges` overriding), seeded; with the notes on
/// what was defaulted (a batch of 1, say). Used when there is no calibration folder.
pub fn generated_feed(
    model: &Model,
    overrides: &crate::inputs::ShapeOverrides,
    ranges: &crate::inputs::ValueRanges,
    seed: u64,
) -> Result<(Feed, Vec<String>)> {
    let sources = crate::inputs::InputSources {
        seed,
        ranges: ranges.clone(),
        ..Default::default()
    };
    let prepared = crate::inputs::prepare(model, overrides, &sources)?;
    let feed = prepared
        .tensors
        .into_iter()
        .map(|(name, t)| NamedTensor::from_tensor(&name, t))
        .collect();
    Ok((feed, prepared.notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Tensor, TensorData};
    use prost::Message;
    use std::io::Write;

    fn spec(name: &str, dims: &[usize]) -> InputSpec {
        InputSpec {
            name: name.into(),
            elem_type: crate::model::DataType::Float as i32,
            dims: dims.iter().map(|&d| Some(d)).collect(),
            symbols: vec![None; dims.len()],
            vocab: None,
        }
    }

    fn write_pb(path: &Path, name: &str, t: &Tensor) {
        let proto = crate::tensor::pb::to_proto(name, t);
        std::fs::write(path, proto.encode_to_vec()).unwrap();
    }

    fn write_npz(path: &Path, members: &[(&str, &Tensor)]) {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, t) in members {
            zip.start_file(
                format!("{name}.npy"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            zip.write_all(&crate::tensor::npy::to_npy_bytes(t).unwrap())
                .unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn npz_feeds_every_input_by_name_in_model_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = Tensor::from_f32(vec![1, 2], vec![1.0, 2.0]).unwrap();
        let b = Tensor::from_f32(vec![3], vec![3.0, 4.0, 5.0]).unwrap();
        let p = dir.path().join("s.npz");
        write_npz(&p, &[("b", &b), ("a", &a)]);
        let specs = [spec("a", &[1, 2]), spec("b", &[3])];
        let feed = load_sample(&p, &specs, &Preprocess::default()).unwrap();
        assert_eq!(feed[0].name, "a");
        assert_eq!(feed[0].floats().to_vec(), vec![1.0, 2.0]);
        assert_eq!(feed[1].floats().to_vec(), vec![3.0, 4.0, 5.0]);
        // A missing input is named.
        write_npz(&p, &[("a", &a)]);
        let e = load_sample(&p, &specs, &Preprocess::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.npz") && e.contains("no tensor for input 'b'"),
            "{e}"
        );
    }

    #[test]
    fn onnx_test_data_folder_matches_pb_files_by_name_or_position() {
        let dir = tempfile::tempdir().unwrap();
        let sample = dir.path().join("test_data_set_0");
        std::fs::create_dir(&sample).unwrap();
        let x = Tensor::from_f32(vec![2], vec![0.5, -0.5]).unwrap();
        let y = Tensor::from_f32(vec![1], vec![7.0]).unwrap();
        write_pb(&sample.join("input_0.pb"), "", &x);
        write_pb(&sample.join("input_1.pb"), "y", &y);
        // Expected outputs of the ONNX layout are not tensor files we read.
        std::fs::write(sample.join("README"), "x").unwrap();
        let specs = [spec("x", &[2]), spec("y", &[1])];
        let listed = list_folder(dir.path()).unwrap();
        assert_eq!(listed, vec![sample.clone()]);
        let feed = load_sample(&sample, &specs, &Preprocess::default()).unwrap();
        assert_eq!((feed[0].name.as_str(), feed[0].floats()[0]), ("x", 0.5));
        assert_eq!((feed[1].name.as_str(), feed[1].floats()[0]), ("y", 7.0));
    }

    #[test]
    fn pb_with_another_name_or_dtype_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.pb");
        let x = Tensor::from_f32(vec![2], vec![0.5, -0.5]).unwrap();
        write_pb(&p, "other", &x);
        let e = load_sample(&p, &[spec("x", &[2])], &Preprocess::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.pb") && e.contains("'other'"), "{e}");
        let i = Tensor::new(vec![2], TensorData::I64(vec![1, 2])).unwrap();
        write_pb(&p, "x", &i);
        let e = load_sample(&p, &[spec("x", &[2])], &Preprocess::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.pb") && e.contains("dtype is int64, the model expects float32"),
            "{e}"
        );
        // Wrong shape: names the file and the input.
        write_pb(&p, "x", &Tensor::from_f32(vec![3], vec![0.0; 3]).unwrap());
        let e = load_sample(&p, &[spec("x", &[2])], &Preprocess::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.pb") && e.contains("input 'x'"), "{e}");
    }
}
