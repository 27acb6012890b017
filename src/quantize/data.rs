//! Calibration and evaluation samples: from a folder of images (through a declared
//! [`Preprocess`]) or of tensors, or generated. One sample is one of:
//! - an image (`.png`, `.jpg`, `.jpeg`): single-input models;
//! - an `.npz` archive with one array per input, keyed by input name, or a `.npy` array
//!   (single-input models): read by the input model ([`inputs::read_sample`]);
//! - a `.pb` ONNX `TensorProto`: single-input models (its name, if set, must be the input's);
//! - a sub-folder holding one `.pb` or `.npy` per input (ONNX's `test_data_set_N/input_K.pb`
//!   layout): matched by the TensorProto's name or the file stem, else `input_K` by position.
//!
//! What a model's inputs are and whether a tensor fits one is the input model's business
//! ([`crate::inputs`]: [`TensorSpec`], [`inputs::check_tensor`]), so samples hold any
//! element type (int64 token ids, int32 bytes, bool masks, float16...) and are checked
//! as every other command checks them (element type, rank, fixed dims, token ids inside
//! the vocabulary); an error names the file and the input. Shapes may differ between
//! samples (sequence lengths vary).

use std::path::{Path, PathBuf};

use super::preprocess::Preprocess;
use super::runner::{Feed, NamedTensor};
use crate::error::{Error, Result};
use crate::inputs::{self, TensorSpec};
use crate::model::Model;

/// Refuse, before any work, a model with an input the quantizer cannot feed (a string
/// input, say): one error naming the input.
pub fn check_model_inputs(model: &Model) -> Result<()> {
    for s in inputs::model_inputs(model) {
        s.dtype()?;
    }
    Ok(())
}

/// Check one tensor against its input with the input model's rules; `origin` names the
/// file in the error.
fn check(spec: &TensorSpec, t: &NamedTensor, origin: &Path) -> Result<()> {
    inputs::check_tensor(spec, &t.to_tensor()?).map_err(|e| Error::file(origin, e.to_string()))
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

/// Match named tensors to the model's inputs: by name; a single-input model also takes a
/// single tensor of any name; otherwise `input_K` (or an empty name) means input K.
fn match_inputs(
    tensors: Vec<(String, crate::tensor::Tensor)>,
    specs: &[TensorSpec],
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
pub fn load_sample(path: &Path, specs: &[TensorSpec], pre: &Preprocess) -> Result<Feed> {
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
        "npz" | "npy" => {
            let sample = inputs::read_sample(path, specs)?;
            return Ok(sample
                .tensors
                .into_iter()
                .map(|(name, t)| NamedTensor::from_tensor(&name, t))
                .collect());
        }
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
    let (shape, data) = {
        let mut pre = pre.clone();
        // Resize to the model's fixed height/width when no size was declared.
        let dims: Vec<Option<usize>> = spec
            .dims
            .iter()
            .flatten()
            .map(crate::model::Dim::fixed)
            .collect();
        if pre.resize.is_none() && dims.len() == 4 {
            let (h, w) = match pre.layout {
                super::preprocess::Layout::Nchw => (dims[2], dims[3]),
                super::preprocess::Layout::Nhwc => (dims[1], dims[2]),
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

    fn spec(name: &str, dims: &[usize]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            elem_type: crate::model::DataType::Float as i32,
            dims: Some(
                dims.iter()
                    .map(|&d| crate::model::Dim::Fixed(d as i64))
                    .collect(),
            ),
            role: inputs::Role::Data,
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
            e.contains("s.npz") && e.contains("has no array for input 'b'"),
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
            e.contains("a.pb") && e.contains("element type is int64 but the model expects float32"),
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
