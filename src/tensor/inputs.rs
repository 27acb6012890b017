//! Model inputs: from a model's signature and the user's `--shape`/`--dim` values to
//! concrete shapes, then to tensors (seeded random data, or data read from files).
//!
//! Resolution rules, in order, for each real input (a graph input that is not an
//! initializer):
//! 1. `--shape NAME=1x3x224x224` gives the whole shape. Its rank must match the model's,
//!    and every fixed dim in the model must agree; symbolic dims it covers are bound to the
//!    values it gives (so `--shape` on one input can resolve the same symbol on another).
//! 2. Otherwise each dim is taken from the model: a fixed value, or a named symbol bound by
//!    `--dim SYMBOL=N` (or by a `--shape` on another input). Anonymous dynamic dims
//!    (`-1`, `?`, empty) cannot be named, so they need `--shape`.
//! 3. Anything left unresolved is an error that says exactly which `--dim` or `--shape` to
//!    pass.
//!
//! Tensors read from files are checked the same way: element type must match exactly,
//! fixed dims must match, a symbol must take the same value everywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{format_shape, npy, onnx_type_name, DType, Tensor};
use crate::error::{Error, Result};
use crate::model::proto::tensor_shape_proto::dimension::Value as DimValue;
use crate::model::proto::type_proto::Value as TypeValue;
use crate::model::{Model, ValueInfoProto};

/// One dimension of a declared input or output shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named symbolic dim (`batch`, `p2o.DynamicDimension.0`), settable with `--dim`.
    Symbol(String),
    /// A dynamic dim without a usable name (`-1`, `?`, no value).
    Anonymous,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
            Dim::Anonymous => f.write_str("?"),
        }
    }
}

/// A declared graph input or output: name, element type and (possibly symbolic) shape.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// The graph value's name.
    pub name: String,
    /// The ONNX element type code (`TensorProto.data_type`); 0 when undeclared.
    pub elem_type: i32,
    /// Dims, or `None` when the model declares no shape (any rank).
    pub dims: Option<Vec<Dim>>,
}

impl TensorSpec {
    /// From a `ValueInfoProto`. Non-tensor values (sequences, maps) get `elem_type` 0.
    pub fn from_value_info(v: &ValueInfoProto) -> Self {
        let tt = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(TypeValue::TensorType(t)) => Some(t),
            _ => None,
        };
        let dims = tt.and_then(|t| t.shape.as_ref()).map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
                    Some(DimValue::DimParam(p)) if !p.is_empty() && p != "?" => {
                        Dim::Symbol(p.clone())
                    }
                    _ => Dim::Anonymous,
                })
                .collect()
        });
        TensorSpec {
            name: v.name.clone(),
            elem_type: tt.and_then(|t| t.elem_type).unwrap_or(0),
            dims,
        }
    }

    /// The element type, or an error naming the input when edgepack cannot feed it.
    pub fn dtype(&self) -> Result<DType> {
        DType::from_onnx(self.elem_type).ok_or_else(|| {
            Error::input(
                &self.name,
                format!(
                    "element type {} is not supported",
                    onnx_type_name(self.elem_type)
                ),
            )
        })
    }

    /// The shape as text: `[?, 3, 48, 192]`, `[batch, 3, h, w]`, or `any` when undeclared.
    pub fn shape_text(&self) -> String {
        match &self.dims {
            None => "any".into(),
            Some(d) => format!(
                "[{}]",
                d.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The element type's name, or the ONNX name when edgepack has no [`DType`] for it.
    pub fn dtype_text(&self) -> String {
        DType::from_onnx(self.elem_type)
            .map(|d| d.name().to_string())
            .unwrap_or_else(|| onnx_type_name(self.elem_type))
    }
}

/// The model's real inputs (graph inputs that are not initializers), in graph order.
pub fn model_inputs(model: &Model) -> Vec<TensorSpec> {
    let g = model.graph();
    let inits: std::collections::HashSet<&str> =
        g.initializer.iter().map(|t| t.name.as_str()).collect();
    g.input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .map(TensorSpec::from_value_info)
        .collect()
}

/// The model's graph outputs, in graph order.
pub fn model_outputs(model: &Model) -> Vec<TensorSpec> {
    model
        .graph()
        .output
        .iter()
        .map(TensorSpec::from_value_info)
        .collect()
}

/// `--shape` and `--dim` values, already parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShapeOverrides {
    /// Whole shapes by input name.
    pub shapes: BTreeMap<String, Vec<usize>>,
    /// Symbolic dim values by symbol.
    pub dims: BTreeMap<String, usize>,
}

/// Split `NAME=VALUE` at the *last* `=` (input names may contain `=`, values never do).
fn split_assignment<'a>(flag: &str, arg: &'a str) -> Result<(&'a str, &'a str)> {
    match arg.rsplit_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k, v)),
        _ => Err(Error::usage(
            flag,
            format!("expected NAME=VALUE, got '{arg}'"),
        )),
    }
}

/// Parse a shape like `1x3x224x224` (`scalar` or an empty string for rank 0).
pub fn parse_shape(text: &str) -> Option<Vec<usize>> {
    if text == "scalar" {
        return Some(vec![]);
    }
    text.split(['x', 'X', ','])
        .map(|d| d.trim().parse().ok())
        .collect()
}

impl ShapeOverrides {
    /// Add a `--shape NAME=1x3x224x224` argument.
    pub fn add_shape_arg(&mut self, arg: &str) -> Result<()> {
        let (name, value) = split_assignment("--shape", arg)?;
        let shape = parse_shape(value).ok_or_else(|| {
            Error::usage(
                "--shape",
                format!("'{value}' is not a shape like 1x3x224x224 (in '{arg}')"),
            )
        })?;
        if let Some(old) = self.shapes.insert(name.to_string(), shape.clone()) {
            if old != shape {
                return Err(Error::usage(
                    "--shape",
                    format!(
                        "input '{name}' given twice ({} and {})",
                        format_shape(&old),
                        format_shape(&shape)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Add a `--dim SYMBOL=N` argument.
    pub fn add_dim_arg(&mut self, arg: &str) -> Result<()> {
        let (name, value) = split_assignment("--dim", arg)?;
        let n: usize = value.trim().parse().map_err(|_| {
            Error::usage(
                "--dim",
                format!("'{value}' is not a non-negative integer (in '{arg}')"),
            )
        })?;
        if let Some(old) = self.dims.insert(name.to_string(), n) {
            if old != n {
                return Err(Error::usage(
                    "--dim",
                    format!("symbol '{name}' given twice ({old} and {n})"),
                ));
            }
        }
        Ok(())
    }

    /// Parse lists of `--shape` and `--dim` arguments.
    pub fn from_args(shapes: &[String], dims: &[String]) -> Result<Self> {
        let mut o = ShapeOverrides::default();
        for s in shapes {
            o.add_shape_arg(s)?;
        }
        for d in dims {
            o.add_dim_arg(d)?;
        }
        Ok(o)
    }
}

/// Symbol bindings collected while resolving: where each value came from, for errors.
#[derive(Default)]
struct Bindings {
    values: BTreeMap<String, (usize, String)>,
}

impl Bindings {
    fn bind(&mut self, input: &str, symbol: &str, value: usize, source: String) -> Result<()> {
        match self.values.get(symbol) {
            Some((old, old_source)) if *old != value => Err(Error::input(
                input,
                format!(
                    "symbolic dim '{symbol}' would be {value} ({source}) but is {old} ({old_source})"
                ),
            )),
            Some(_) => Ok(()),
            None => {
                self.values.insert(symbol.to_string(), (value, source));
                Ok(())
            }
        }
    }
}

/// Check that `shape` fits the declared `dims` of `spec` (rank and fixed dims), binding
/// symbols as it goes. `source` says where the shape came from (for errors).
fn fit_shape(spec: &TensorSpec, shape: &[usize], source: &str, b: &mut Bindings) -> Result<()> {
    let Some(dims) = &spec.dims else {
        return Ok(());
    };
    if dims.len() != shape.len() {
        return Err(Error::input(
            &spec.name,
            format!(
                "{source} has rank {} ({}) but the model expects rank {} {}",
                shape.len(),
                format_shape(shape),
                dims.len(),
                spec.shape_text()
            ),
        ));
    }
    for (axis, (d, &n)) in dims.iter().zip(shape).enumerate() {
        match d {
            Dim::Fixed(f) if *f != n => {
                return Err(Error::input(
                    &spec.name,
                    format!(
                        "{source} has {n} at axis {axis} but the model fixes it to {f} (shape {})",
                        spec.shape_text()
                    ),
                ))
            }
            Dim::Symbol(s) => b.bind(&spec.name, s, n, format!("{source}, axis {axis}"))?,
            _ => {}
        }
    }
    Ok(())
}

/// Resolve a concrete shape for each spec. `known` holds shapes already fixed by files
/// (input name -> shape); `--shape` overrides and files for the same input must agree.
pub fn resolve_shapes(
    specs: &[TensorSpec],
    overrides: &ShapeOverrides,
    known: &BTreeMap<String, Vec<usize>>,
) -> Result<Vec<Vec<usize>>> {
    for name in overrides.shapes.keys() {
        if !specs.iter().any(|s| &s.name == name) {
            return Err(unknown_input(name, specs, "--shape"));
        }
    }
    let mut b = Bindings::default();
    for (sym, &n) in &overrides.dims {
        b.bind("", sym, n, format!("--dim {sym}={n}"))?;
    }
    // Pass 1: whole shapes (files first, then --shape) bind symbols.
    for spec in specs {
        if let Some(shape) = known.get(&spec.name) {
            fit_shape(spec, shape, "the input file", &mut b)?;
        }
        if let Some(shape) = overrides.shapes.get(&spec.name) {
            if let Some(file_shape) = known.get(&spec.name) {
                if file_shape != shape {
                    return Err(Error::input(
                        &spec.name,
                        format!(
                            "--shape {} disagrees with the input file's shape {}",
                            format_shape(shape),
                            format_shape(file_shape)
                        ),
                    ));
                }
            }
            fit_shape(spec, shape, "--shape", &mut b)?;
        }
    }
    // Pass 2: everything else from the model's dims and the bindings.
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        if let Some(shape) = known.get(&spec.name).or(overrides.shapes.get(&spec.name)) {
            out.push(shape.clone());
            continue;
        }
        let dims = spec.dims.as_ref().ok_or_else(|| {
            Error::input(
                &spec.name,
                format!(
                    "the model declares no shape for this input; pass --shape {}=DxDx...",
                    spec.name
                ),
            )
        })?;
        let mut shape = Vec::with_capacity(dims.len());
        for (axis, d) in dims.iter().enumerate() {
            shape.push(match d {
                Dim::Fixed(n) => *n,
                Dim::Symbol(s) => match b.values.get(s) {
                    Some((n, _)) => *n,
                    None => {
                        return Err(Error::input(
                            &spec.name,
                            format!(
                                "symbolic dim '{s}' (axis {axis} of {}) is unresolved; pass --dim {s}=N or --shape {}=...",
                                spec.shape_text(),
                                spec.name
                            ),
                        ))
                    }
                },
                Dim::Anonymous => {
                    return Err(Error::input(
                        &spec.name,
                        format!(
                            "axis {axis} of {} is dynamic and unnamed; pass --shape {}={}",
                            spec.shape_text(),
                            spec.name,
                            example_shape(dims)
                        ),
                    ))
                }
            });
        }
        out.push(shape);
    }
    Ok(out)
}

/// An example `--shape` value for error messages: fixed dims kept, dynamic ones as `N`.
fn example_shape(dims: &[Dim]) -> String {
    dims.iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            _ => "N".into(),
        })
        .collect::<Vec<_>>()
        .join("x")
}

fn unknown_input(name: &str, specs: &[TensorSpec], flag: &str) -> Error {
    let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    Error::input(
        name,
        format!(
            "{flag} names no input of the model (its inputs: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ),
    )
}

/// Check a tensor against a declared input: exact element type, rank, fixed dims.
pub fn check_tensor(spec: &TensorSpec, t: &Tensor) -> Result<()> {
    let want = spec.dtype()?;
    if t.dtype() != want {
        return Err(Error::input(
            &spec.name,
            format!("element type is {} but the model expects {want}", t.dtype()),
        ));
    }
    fit_shape(spec, t.shape(), "the tensor", &mut Bindings::default())
}

/// Where input data comes from.
#[derive(Clone, Debug, Default)]
pub struct InputSources {
    /// `--input NAME=FILE` (`.npy`, `.pb`, or `.npz` holding NAME or a single array).
    pub files: BTreeMap<String, PathBuf>,
    /// `--inputs PATH`: a folder (`<name>.npy` by sanitized input name, or the ONNX test-data
    /// layout `input_<i>.pb`), or an `.npz` archive keyed by input name.
    pub bundle: Option<PathBuf>,
    /// Seed for the inputs generated from the signature.
    pub seed: u64,
}

impl InputSources {
    /// Add an `--input NAME=FILE` argument.
    pub fn add_input_arg(&mut self, arg: &str) -> Result<()> {
        // Split at the first '=': file paths may contain '=', input names rarely do.
        let (name, file) = match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => (k, v),
            _ => {
                return Err(Error::usage(
                    "--input",
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
                "--input",
                format!("input '{name}' given twice"),
            ));
        }
        Ok(())
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

fn read_named(path: &Path, name: &str) -> Result<Tensor> {
    let is_npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if !is_npz {
        return super::read_file(path);
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

/// Load tensors for inputs from the sources' files (not generated ones), by input name.
fn load_files(specs: &[TensorSpec], src: &InputSources) -> Result<BTreeMap<String, Tensor>> {
    let mut out = BTreeMap::new();
    for (name, path) in &src.files {
        if !specs.iter().any(|s| &s.name == name) {
            return Err(unknown_input(name, specs, "--input"));
        }
        out.insert(name.clone(), read_named(path, name)?);
    }
    let Some(bundle) = &src.bundle else {
        return Ok(out);
    };
    if bundle.is_file() {
        let all = npy::read_npz(bundle)?;
        for (name, t) in all {
            if !specs.iter().any(|s| s.name == name) {
                return Err(Error::file(
                    bundle,
                    format!(
                        "array '{name}' names no input of the model (its inputs: {})",
                        specs
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            out.entry(name).or_insert(t);
        }
        return Ok(out);
    }
    if !bundle.is_dir() {
        return Err(Error::file(
            bundle,
            "--inputs must be a folder or an .npz file",
        ));
    }
    for (i, spec) in specs.iter().enumerate() {
        if out.contains_key(&spec.name) {
            continue;
        }
        let npy_path = bundle.join(format!("{}.npy", sanitize_file_stem(&spec.name)));
        let pb_path = bundle.join(format!("input_{i}.pb"));
        if npy_path.is_file() {
            out.insert(spec.name.clone(), npy::read_npy(&npy_path)?);
        } else if pb_path.is_file() {
            out.insert(spec.name.clone(), super::pb::read_pb(&pb_path)?.1);
        }
    }
    Ok(out)
}

/// Prepare one tensor per real input of `model`, in graph order: read from the sources'
/// files where given (checked against the model), otherwise generated with the seed
/// (input `i` uses seed `seed + i`, so inputs differ but runs repeat).
pub fn prepare(
    model: &Model,
    overrides: &ShapeOverrides,
    sources: &InputSources,
) -> Result<Vec<(String, Tensor)>> {
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
) -> Result<Vec<(String, Tensor)>> {
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
) -> Result<Vec<(String, Tensor)>> {
    let mut files = load_files(specs, sources)?;
    for spec in specs {
        if let Some(t) = files.get(&spec.name) {
            check_tensor(spec, t)?;
        }
    }
    let known: BTreeMap<String, Vec<usize>> = files
        .iter()
        .map(|(k, t)| (k.clone(), t.shape().to_vec()))
        .collect();
    let shapes = resolve_shapes(specs, overrides, &known)?;
    let mut total: u64 = 0;
    for (spec, shape) in specs.iter().zip(&shapes) {
        if files.contains_key(&spec.name) {
            continue;
        }
        let bytes = crate::tensor::element_count(shape)
            .and_then(|n| n.checked_mul(spec.dtype().map_or(1, |d| d.size_bytes())))
            .map(|b| b as u64);
        total = match bytes.and_then(|b| total.checked_add(b)) {
            Some(t) if t <= max_bytes => t,
            _ => {
                return Err(Error::input(
                    &spec.name,
                    format!(
                        "shape {} needs {}, over the input limit of {max_bytes} bytes",
                        crate::tensor::format_shape(shape),
                        bytes.map_or("more bytes than fit in memory".to_string(), |b| format!(
                            "{b} bytes"
                        ))
                    ),
                ))
            }
        };
    }
    let mut out = Vec::with_capacity(specs.len());
    for (i, (spec, shape)) in specs.iter().zip(shapes).enumerate() {
        let t = match files.remove(&spec.name) {
            Some(t) => t,
            None => Tensor::random(spec.dtype()?, &shape, sources.seed.wrapping_add(i as u64)),
        };
        out.push((spec.name.clone(), t));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proto::{
        tensor_shape_proto::Dimension, type_proto, ModelProto, TensorShapeProto, TypeProto,
    };
    use crate::model::{GraphProto, TensorProto};

    pub(crate) fn vi(name: &str, elem: i32, dims: &[&str]) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(TypeValue::TensorType(type_proto::Tensor {
                    elem_type: Some(elem),
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|d| Dimension {
                                value: Some(match d.parse::<i64>() {
                                    Ok(n) => DimValue::DimValue(n),
                                    Err(_) => DimValue::DimParam(d.to_string()),
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

    fn model(inputs: Vec<ValueInfoProto>, inits: &[&str]) -> Model {
        Model::from_proto(ModelProto {
            ir_version: Some(8),
            graph: Some(GraphProto {
                input: inputs,
                initializer: inits
                    .iter()
                    .map(|n| TensorProto {
                        name: n.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn ov(shapes: &[&str], dims: &[&str]) -> ShapeOverrides {
        ShapeOverrides::from_args(
            &shapes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &dims.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn real_inputs_exclude_initializers_and_read_dims() {
        let m = model(
            vec![vi("x", 1, &["batch", "3", "?", "-1"]), vi("w", 1, &["3"])],
            &["w"],
        );
        let specs = model_inputs(&m);
        assert_eq!(specs.len(), 1);
        assert_eq!(
            specs[0].dims.as_ref().unwrap(),
            &vec![
                Dim::Symbol("batch".into()),
                Dim::Fixed(3),
                Dim::Anonymous,
                Dim::Anonymous
            ]
        );
        assert_eq!(specs[0].shape_text(), "[batch, 3, ?, ?]");
    }

    #[test]
    fn dim_binds_symbols_shared_across_inputs() {
        let m = model(
            vec![vi("a", 1, &["batch", "4"]), vi("b", 7, &["batch"])],
            &[],
        );
        let specs = model_inputs(&m);
        let shapes = resolve_shapes(&specs, &ov(&[], &["batch=2"]), &BTreeMap::new()).unwrap();
        assert_eq!(shapes, vec![vec![2, 4], vec![2]]);
        // A --shape on one input resolves the symbol for the other.
        let shapes = resolve_shapes(&specs, &ov(&["a=5x4"], &[]), &BTreeMap::new()).unwrap();
        assert_eq!(shapes, vec![vec![5, 4], vec![5]]);
    }

    #[test]
    fn unresolved_symbol_says_which_dim_to_pass() {
        let m = model(vec![vi("x", 1, &["batch", "3"])], &[]);
        let e = resolve_shapes(&model_inputs(&m), &ov(&[], &[]), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("pass --dim batch=N"), "{e}");
        assert!(e.starts_with("input 'x'"), "{e}");
    }

    #[test]
    fn anonymous_dim_asks_for_a_shape() {
        let m = model(vec![vi("x", 1, &["-1", "3", "?", "?"])], &[]);
        let specs = model_inputs(&m);
        let e = resolve_shapes(&specs, &ov(&[], &[]), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("pass --shape x=Nx3xNxN"), "{e}");
        let s = resolve_shapes(&specs, &ov(&["x=1x3x48x192"], &[]), &BTreeMap::new()).unwrap();
        assert_eq!(s, vec![vec![1, 3, 48, 192]]);
    }

    #[test]
    fn rejects_fixed_dim_mismatch_and_wrong_rank() {
        let m = model(vec![vi("x", 1, &["batch", "3", "8"])], &[]);
        let specs = model_inputs(&m);
        let e = resolve_shapes(&specs, &ov(&["x=1x4x8"], &[]), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has 4 at axis 1 but the model fixes it to 3"),
            "{e}"
        );
        let e = resolve_shapes(&specs, &ov(&["x=1x3"], &[]), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 2") && e.contains("expects rank 3"), "{e}");
    }

    #[test]
    fn rejects_conflicting_symbol_values() {
        let m = model(vec![vi("x", 1, &["batch", "3"])], &[]);
        let e = resolve_shapes(
            &model_inputs(&m),
            &ov(&["x=2x3"], &["batch=4"]),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("'batch' would be 2") && e.contains("--dim batch=4"),
            "{e}"
        );
    }

    #[test]
    fn rejects_unknown_input_names() {
        let m = model(vec![vi("x", 1, &["2"])], &[]);
        let e = resolve_shapes(&model_inputs(&m), &ov(&["y=2"], &[]), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "input 'y': --shape names no input of the model (its inputs: x)"
        );
    }

    #[test]
    fn parses_flags_and_rejects_malformed_ones() {
        let o = ov(&["a:0=1x3x224x224", "s=scalar"], &["n=7"]);
        assert_eq!(o.shapes["a:0"], vec![1, 3, 224, 224]);
        assert_eq!(o.shapes["s"], Vec::<usize>::new());
        assert_eq!(o.dims["n"], 7);
        for bad in ["x", "x=", "=3", "x=1xa"] {
            assert!(
                ShapeOverrides::default().add_shape_arg(bad).is_err(),
                "{bad}"
            );
        }
        assert!(ShapeOverrides::default().add_dim_arg("n=-1").is_err());
    }

    #[test]
    fn prepare_generates_seeded_inputs_and_checks_files() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(
            vec![vi("x", 1, &["batch", "3"]), vi("ids", 7, &["batch"])],
            &[],
        );
        let src = InputSources {
            seed: 3,
            ..Default::default()
        };
        let a = prepare(&m, &ov(&[], &["batch=2"]), &src).unwrap();
        let b = prepare(&m, &ov(&[], &["batch=2"]), &src).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].1.shape(), &[2, 3]);
        assert_eq!(a[1].1.dtype(), DType::I64);

        // A file fixes the symbol for the generated input too.
        let p = dir.path().join("x.npy");
        npy::write_npy(&p, &Tensor::random(DType::F32, &[5, 3], 1)).unwrap();
        let mut src = InputSources::default();
        src.add_input_arg(&format!("x={}", p.display())).unwrap();
        let got = prepare(&m, &ov(&[], &[]), &src).unwrap();
        assert_eq!(got[1].1.shape(), &[5]);

        // Wrong dtype in a file names the input.
        npy::write_npy(&p, &Tensor::random(DType::F64, &[5, 3], 1)).unwrap();
        let e = prepare(&m, &ov(&[], &[]), &src).unwrap_err().to_string();
        assert_eq!(
            e,
            "input 'x': element type is float64 but the model expects float32"
        );
        // Wrong fixed dim in a file.
        npy::write_npy(&p, &Tensor::random(DType::F32, &[5, 4], 1)).unwrap();
        let e = prepare(&m, &ov(&[], &[]), &src).unwrap_err().to_string();
        assert!(e.contains("axis 1 but the model fixes it to 3"), "{e}");
    }

    #[test]
    fn prepare_reads_inputs_folder_by_name_or_test_data_layout() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(vec![vi("in/0", 1, &["2"]), vi("b", 1, &["1"])], &[]);
        let a = Tensor::random(DType::F32, &[2], 1);
        let b = Tensor::random(DType::F32, &[1], 2);
        npy::write_npy(&dir.path().join("in_0.npy"), &a).unwrap();
        std::fs::write(
            dir.path().join("input_1.pb"),
            prost::Message::encode_to_vec(&super::super::pb::to_proto("b", &b)),
        )
        .unwrap();
        let src = InputSources {
            bundle: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let got = prepare(&m, &ShapeOverrides::default(), &src).unwrap();
        assert_eq!(got, vec![("in/0".into(), a), ("b".into(), b)]);
    }

    #[test]
    fn prepare_reads_an_npz_bundle_and_rejects_unknown_members() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let m = model(vec![vi("x", 1, &["2"]), vi("y", 7, &["1"])], &[]);
        let x = Tensor::random(DType::F32, &[2], 1);
        let write = |members: &[(&str, &Tensor)]| {
            let p = dir.path().join("in.npz");
            let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
            for (n, t) in members {
                z.start_file(format!("{n}.npy"), zip::write::SimpleFileOptions::default())
                    .unwrap();
                z.write_all(&npy::to_npy_bytes(t).unwrap()).unwrap();
            }
            z.finish().unwrap();
            p
        };
        let p = write(&[("x", &x)]);
        let src = InputSources {
            bundle: Some(p),
            seed: 9,
            ..Default::default()
        };
        let got = prepare(&m, &ShapeOverrides::default(), &src).unwrap();
        assert_eq!(got[0].1, x);
        assert_eq!(got[1].1.dtype(), DType::I64);
        let p = write(&[("x", &x), ("z", &x)]);
        let src = InputSources {
            bundle: Some(p),
            ..Default::default()
        };
        let e = prepare(&m, &ShapeOverrides::default(), &src)
            .unwrap_err()
            .to_string();
        assert!(e.contains("array 'z' names no input"), "{e}");
    }

    #[test]
    fn sanitizes_tensor_names_to_safe_file_stems() {
        assert_eq!(
            sanitize_file_stem("save_infer_model/scale_0.tmp_1"),
            "save_infer_model_scale_0.tmp_1"
        );
        assert_eq!(sanitize_file_stem(".."), "_..");
        assert_eq!(sanitize_file_stem(""), "_");
        assert_eq!(sanitize_file_stem("a b:c\\d"), "a_b_c_d");
    }
}
