//! Input data from files (`--input`, `--inputs`, sample folders) and the one entry point
//! that turns a model plus flags into tensors ([`prepare`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::args::{ShapeOverrides, ValueRanges};
use super::generate::{check_generation, generate};
use super::resolve::{check_tensor, fit_shape, resolve, Bindings};
use super::spec::{input_names, model_inputs, unknown_input, TensorSpec};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::setting::Setting;
use crate::tensor::{self, npy, pb, Tensor};

/// Where input data comes from.
#[derive(Clone, Debug, Default)]
pub struct InputSources {
    /// `--input NAME=FILE` (`.npy`, `.pb`, or `.npz` holding NAME or a single array).
    pub files: BTreeMap<String, PathBuf>,
    /// `--inputs PATH`: a folder (`<name>.npy` by sanitized input name, or the ONNX test-data
    /// layout `input_<i>.pb`), or an `.npz` archive keyed by input name (which must then
    /// hold every input no `--input` gives).
    pub bundle: Option<PathBuf>,
    /// Seed for the inputs generated from the signature (input `i` uses `seed + i`).
    pub seed: u64,
    /// `--input-range` values for generated inputs.
    pub ranges: ValueRanges,
}

impl InputSources {
    /// Add an `--input NAME=FILE` argument.
    pub fn add_input_arg(&mut self, arg: &str) -> Result<()> {
        // Split at the first '=': file paths may contain '=', input names rarely do.
        let (name, file) = match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => (k, v),
            _ => {
                return Err(Error::usage(
                    Setting::Input,
                    format!("expected NAME=FILE, got '{arg}'"),
                ))
            }
        };
        if self
            .files
            .insert(name.to_string(), PathBuf::from(file))
            .is_some()
        {
            return Err(Error::usage(
                Setting::Input,
                format!("input '{name}' given twice"),
            ));
        }
        Ok(())
    }

    /// Whether any file is given (then shapes come from the files).
    pub fn has_files(&self) -> bool {
        !self.files.is_empty() || self.bundle.is_some()
    }
}

/// A file name for a tensor name: characters other than ASCII letters, digits, `.`, `-`
/// and `_` become `_`; names that would be hidden or special (`.`, `..`, empty) get a
/// leading `_`. Distinct names can collide after sanitizing; callers check.
pub fn sanitize_file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

fn is_ext(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn read_named(path: &Path, name: &str) -> Result<Tensor> {
    if !is_ext(path, "npz") {
        return tensor::read_file(path);
    }
    let mut all = npy::read_npz(path)?;
    if let Some(i) = all.iter().position(|(n, _)| n == name) {
        return Ok(all.swap_remove(i).1);
    }
    if all.len() == 1 {
        return Ok(all.pop().expect("one member").1);
    }
    Err(Error::file(
        path,
        format!(
            "archive has no array named '{name}' (it has: {})",
            all.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// The arrays of an `.npz` sample by input name: every name must be an input; every input
/// not in `optional` must be there. A single array in a single-input model's archive is
/// that input whatever its name.
fn npz_by_input(
    path: &Path,
    specs: &[TensorSpec],
    optional: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, Tensor>> {
    let mut all = npy::read_npz(path)?;
    if specs.len() == 1 && all.len() == 1 && all[0].0 != specs[0].name {
        all[0].0 = specs[0].name.clone();
    }
    let mut out = BTreeMap::new();
    for (name, t) in all {
        if !specs.iter().any(|s| s.name == name) {
            return Err(Error::file(
                path,
                format!(
                    "array '{name}' names no input of the model (its inputs: {})",
                    input_names(specs)
                ),
            ));
        }
        out.insert(name, t);
    }
    for s in specs {
        if !out.contains_key(&s.name) && !optional(&s.name) {
            return Err(Error::file(
                path,
                format!(
                    "has no array for input '{}' (it has: {}; the model's inputs: {})",
                    s.name,
                    if out.is_empty() {
                        "none".to_string()
                    } else {
                        out.keys().cloned().collect::<Vec<_>>().join(", ")
                    },
                    input_names(specs)
                ),
            ));
        }
    }
    Ok(out)
}

/// Tensors for inputs from the sources' files (not generated ones), by input name, each
/// with the file it came from.
fn load_files(
    specs: &[TensorSpec],
    src: &InputSources,
) -> Result<BTreeMap<String, (Tensor, PathBuf)>> {
    let mut out = BTreeMap::new();
    for (name, path) in &src.files {
        if !specs.iter().any(|s| &s.name == name) {
            return Err(unknown_input(name, specs, Setting::Input));
        }
        out.insert(name.clone(), (read_named(path, name)?, path.clone()));
    }
    let Some(bundle) = &src.bundle else {
        return Ok(out);
    };
    if bundle.is_file() {
        let given = |n: &str| src.files.contains_key(n);
        for (name, t) in npz_by_input(bundle, specs, &given)? {
            out.entry(name).or_insert((t, bundle.clone()));
        }
        return Ok(out);
    }
    if !bundle.is_dir() {
        return Err(Error::file(
            bundle,
            format!("{} must be a folder or an .npz file", Setting::Inputs),
        ));
    }
    for (i, spec) in specs.iter().enumerate() {
        if out.contains_key(&spec.name) {
            continue;
        }
        let npy_path = bundle.join(format!("{}.npy", sanitize_file_stem(&spec.name)));
        let pb_path = bundle.join(format!("input_{i}.pb"));
        if npy_path.is_file() {
            out.insert(spec.name.clone(), (npy::read_npy(&npy_path)?, npy_path));
        } else if pb_path.is_file() {
            out.insert(spec.name.clone(), (pb::read_pb(&pb_path)?.1, pb_path));
        }
    }
    Ok(out)
}

/// Check a tensor read from `path` against its input; errors name the file too.
fn check_file_tensor(spec: &TensorSpec, t: &Tensor, path: &Path) -> Result<()> {
    check_tensor(spec, t).map_err(|e| Error::file(path, e.to_string()))
}

/// Tensors for every input, and notes for stderr (defaults taken while resolving).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prepared {
    /// One tensor per real input, in graph order.
    pub tensors: Vec<(String, Tensor)>,
    /// What was decided for the user (e.g. a batch dim set to 1); commands print these.
    pub notes: Vec<String>,
}

/// Prepare one tensor per real input of `model`, in graph order: read from the sources'
/// files where given (checked against the model), otherwise generated (see
/// [`super::generate`]) with the seed (input `i` uses seed `seed + i`, so inputs differ
/// but runs repeat).
pub fn prepare(
    model: &Model,
    overrides: &ShapeOverrides,
    sources: &InputSources,
) -> Result<Prepared> {
    let specs = model_inputs(model);
    prepare_for(&specs, overrides, sources)
}

/// Largest input [`prepare_for`] generates (all inputs together); see [`prepare_bounded`].
pub const MAX_GENERATED_INPUT_BYTES: u64 = 8 << 30;

/// [`prepare`] over explicit specs.
pub fn prepare_for(
    specs: &[TensorSpec],
    overrides: &ShapeOverrides,
    sources: &InputSources,
) -> Result<Prepared> {
    prepare_bounded(specs, overrides, sources, MAX_GENERATED_INPUT_BYTES)
}

/// [`prepare_for`], refusing before any allocation inputs whose shapes would need more
/// than `max_bytes` in all (a `--dim N=4000000000000` or a huge declared dim), with a
/// message naming the input, its shape and the limit.
pub fn prepare_bounded(
    specs: &[TensorSpec],
    overrides: &ShapeOverrides,
    sources: &InputSources,
    max_bytes: u64,
) -> Result<Prepared> {
    let mut files = load_files(specs, sources)?;
    check_generation(specs, &sources.ranges, &|n| files.contains_key(n))?;
    for spec in specs {
        if let Some((t, path)) = files.get(&spec.name) {
            check_file_tensor(spec, t, path)?;
        }
    }
    let known: BTreeMap<String, Vec<usize>> = files
        .iter()
        .map(|(k, (t, _))| (k.clone(), t.shape().to_vec()))
        .collect();
    let resolved = resolve(specs, overrides, &known)?;
    let mut total: u64 = 0;
    for (spec, shape) in specs.iter().zip(&resolved.shapes) {
        if files.contains_key(&spec.name) {
            continue;
        }
        let bytes = tensor::element_count(shape)
            .and_then(|n| n.checked_mul(spec.dtype().map_or(1, |d| d.size_bytes())))
            .map(|b| b as u64);
        total = match bytes.and_then(|b| total.checked_add(b)) {
            Some(t) if t <= max_bytes => t,
            _ => {
                return Err(Error::input(
                    &spec.name,
                    format!(
                        "shape {} needs {}, over the input limit of {max_bytes} bytes",
                        tensor::format_shape(shape),
                        bytes.map_or("more bytes than fit in memory".to_string(), |b| format!(
                            "{b} bytes"
                        ))
                    ),
                ))
            }
        };
    }
    let mut out = Vec::with_capacity(specs.len());
    for (i, (spec, shape)) in specs.iter().zip(&resolved.shapes).enumerate() {
        let t = match files.remove(&spec.name) {
            Some((t, _)) => t,
            None => generate(
                spec,
                shape,
                sources.ranges.get(&spec.name),
                sources.seed.wrapping_add(i as u64),
            )?,
        };
        out.push((spec.name.clone(), t));
    }
    Ok(Prepared {
        tensors: out,
        notes: resolved.notes,
    })
}

/// One sample from a folder of samples: a tensor per input, in graph order.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The file (or `test_data_set_*` folder) it came from.
    pub origin: PathBuf,
    pub tensors: Vec<(String, Tensor)>,
}

impl Sample {
    /// The shape of every input, in graph order.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.shape().to_vec()))
            .collect()
    }
}

/// Read samples for `specs` from `path`: an `.npz` file (one sample), or a folder whose
/// entries, in name order, are samples: `*.npz` (one array per input, keyed by input
/// name, any dtype), `*.npy` (single-input models), or ONNX test-data folders holding
/// `input_<i>.pb`. Other files are skipped (images are the quantizer's business). Each
/// sample is checked against the model (dtype, rank, fixed dims, indices inside the
/// vocabulary, one value per symbol within the sample); shapes may differ between
/// samples (sequence lengths vary). Errors name the file, the input, expected and found.
pub fn read_samples(path: &Path, specs: &[TensorSpec]) -> Result<Vec<Sample>> {
    if path.is_file() {
        return Ok(vec![read_sample(path, specs)?]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            is_ext(p, "npz") || is_ext(p, "npy") || (p.is_dir() && p.join("input_0.pb").is_file())
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::file(
            path,
            "holds no samples (.npz, .npy, or test-data folders with input_0.pb)",
        ));
    }
    paths.iter().map(|p| read_sample(p, specs)).collect()
}

/// One sample file or test-data folder (see [`read_samples`]).
pub fn read_sample(path: &Path, specs: &[TensorSpec]) -> Result<Sample> {
    let mut by_name: BTreeMap<String, Tensor> = if path.is_dir() {
        let mut m = BTreeMap::new();
        for (i, s) in specs.iter().enumerate() {
            let p = path.join(format!("input_{i}.pb"));
            if !p.is_file() {
                return Err(Error::file(
                    path,
                    format!("has no input_{i}.pb for input '{}'", s.name),
                ));
            }
            m.insert(s.name.clone(), pb::read_pb(&p)?.1);
        }
        m
    } else if is_ext(path, "npz") {
        npz_by_input(path, specs, &|_| false)?
    } else {
        if specs.len() != 1 {
            return Err(Error::file(
                path,
                format!(
                    "an .npy sample holds one array but the model has {} inputs ({}); use .npz keyed by input name",
                    specs.len(),
                    input_names(specs)
                ),
            ));
        }
        BTreeMap::from([(specs[0].name.clone(), npy::read_npy(path)?)])
    };
    let mut b = Bindings::default();
    let mut tensors = Vec::with_capacity(specs.len());
    for s in specs {
        let t = by_name
            .remove(&s.name)
            .expect("every input checked present");
        check_file_tensor(s, &t, path)?;
        fit_shape(s, t.shape(), "the sample", &mut b, false)
            .map_err(|e| Error::file(path, e.to_string()))?;
        tensors.push((s.name.clone(), t));
    }
    Ok(Sample {
        origin: path.to_path_buf(),
        tensors,
    })
}

/// The sample entries of `path` (see [`read_samples`]) as per-input files: for each
/// sample, input name -> the file holding it (an `.npz` holds every input; a test-data
/// folder has one `.pb` per input). Every sample is read and checked first, so a bad one
/// is an error before anything runs. `None` when `path` is not a folder of samples (a
/// single `.npz`, or a folder of `<input name>.npy` files: one input set, as `--inputs`
/// always read it).
pub fn sample_files(
    path: &Path,
    specs: &[TensorSpec],
) -> Result<Option<Vec<BTreeMap<String, PathBuf>>>> {
    if !path.is_dir() {
        return Ok(None);
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_ext(p, "npz") || (p.is_dir() && p.join("input_0.pb").is_file()))
        .collect();
    if paths.is_empty() {
        return Ok(None);
    }
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        read_sample(&p, specs)?;
        let p = std::fs::canonicalize(&p).map_err(|e| Error::io(&p, e))?;
        out.push(
            specs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let f = if p.is_dir() {
                        p.join(format!("input_{i}.pb"))
                    } else {
                        p.clone()
                    };
                    (s.name.clone(), f)
                })
                .collect(),
        );
    }
    Ok(Some(out))
}
