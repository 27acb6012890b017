//! From declared dims, files and flags to one concrete shape per input.
//!
//! Order: shapes of files (samples) fix what they cover and bind their symbols; `--dim`
//! binds symbols and wins over a `--shape` for the same symbol (so `profile` can sweep a
//! dim that a `--shape` had to pin, e.g. PP-OCR's width); `--shape` gives whole shapes;
//! then every other dim comes from the model (fixed) or a binding. A leading dim still
//! open on an input of rank >= 2 is the batch: 1, with a note. Anything else open is an
//! error naming the dim, the input and the flag that sets it.

use std::collections::BTreeMap;

use super::spec::{unknown_input, Role, TensorSpec};
use crate::error::{Error, Result};
use crate::model::Dim;
use crate::setting::Setting;
use crate::tensor::{format_shape, Tensor};

/// Concrete shapes, one per spec in order, and notes for stderr (defaults taken).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub shapes: Vec<Vec<usize>>,
    pub notes: Vec<String>,
}

/// Symbol bindings collected while resolving: where each value came from, for errors.
#[derive(Default)]
pub(crate) struct Bindings {
    values: BTreeMap<String, (usize, String)>,
    /// Symbols set by `--dim`: they win over `--shape` values.
    from_flag: BTreeMap<String, usize>,
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

/// Check that `shape` fits the declared dims of `spec` (rank and fixed dims), binding
/// symbols as it goes. With `flag_wins`, a symbol bound by `--dim` is not checked (the
/// caller substitutes it). `source` says where the shape came from (for errors).
pub(crate) fn fit_shape(
    spec: &TensorSpec,
    shape: &[usize],
    source: &str,
    b: &mut Bindings,
    flag_wins: bool,
) -> Result<()> {
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
            Dim::Fixed(f) if *f >= 0 && *f as usize != n => {
                return Err(Error::input(
                    &spec.name,
                    format!(
                        "{source} has {n} at axis {axis} but the model fixes it to {f} (shape {})",
                        spec.shape_text()
                    ),
                ))
            }
            Dim::Symbol(s) if flag_wins && b.from_flag.contains_key(s) => {}
            Dim::Symbol(s) => b.bind(&spec.name, s, n, format!("{source}, axis {axis}"))?,
            _ => {}
        }
    }
    Ok(())
}

/// [`resolve`] without the notes.
pub fn resolve_shapes(
    specs: &[TensorSpec],
    overrides: &ShapeOverrides,
    known: &BTreeMap<String, Vec<usize>>,
) -> Result<Vec<Vec<usize>>> {
    resolve(specs, overrides, known).map(|r| r.shapes)
}

use super::args::ShapeOverrides;

/// Resolve a concrete shape for each spec. `known` holds shapes already fixed by files
/// (input name -> shape); a `--shape` for the same input must agree with the file.
pub fn resolve(
    specs: &[TensorSpec],
    overrides: &ShapeOverrides,
    known: &BTreeMap<String, Vec<usize>>,
) -> Result<Resolved> {
    let (shapes, notes) = resolve_inner(specs, overrides, known, false)?;
    Ok(Resolved {
        shapes: shapes.into_iter().map(|s| s.expect("complete")).collect(),
        notes,
    })
}

/// What the flags resolve without defaults and without insisting: the shape of every
/// input they fully determine (for estimates such as `inspect`'s MACs at the given
/// shapes). Contradictions are still errors: an unknown input or symbol, a rank or fixed
/// dim the model does not have.
pub fn resolve_partial(
    specs: &[TensorSpec],
    overrides: &ShapeOverrides,
) -> Result<BTreeMap<String, Vec<usize>>> {
    let (shapes, _) = resolve_inner(specs, overrides, &BTreeMap::new(), true)?;
    Ok(specs
        .iter()
        .zip(shapes)
        .filter_map(|(s, shape)| Some((s.name.clone(), shape?)))
        .collect())
}

/// A shape per spec (`None`: left open, partial mode only) and the notes.
type Partial = (Vec<Option<Vec<usize>>>, Vec<String>);

fn resolve_inner(
    specs: &[TensorSpec],
    overrides: &ShapeOverrides,
    known: &BTreeMap<String, Vec<usize>>,
    partial: bool,
) -> Result<Partial> {
    for name in overrides.shapes.keys() {
        if !specs.iter().any(|s| &s.name == name) {
            return Err(unknown_input(name, specs, Setting::Shape));
        }
    }
    let symbols: Vec<&str> = specs
        .iter()
        .flat_map(|s| s.dims.iter().flatten())
        .filter_map(Dim::symbol)
        .collect();
    for sym in overrides.dims.keys() {
        if !symbols.contains(&sym.as_str()) {
            let mut all: Vec<&str> = symbols.clone();
            all.sort();
            all.dedup();
            return Err(Error::usage(
                Setting::Dim,
                format!(
                    "no input has a dim named '{sym}' (symbols: {})",
                    if all.is_empty() {
                        "none".to_string()
                    } else {
                        all.join(", ")
                    }
                ),
            ));
        }
    }
    let mut b = Bindings::default();
    let mut notes = Vec::new();
    for (sym, &n) in &overrides.dims {
        b.bind("", sym, n, format!("{} {sym}={n}", Setting::Dim))?;
        b.from_flag.insert(sym.clone(), n);
    }
    // Pass 1: files bind symbols (and must agree with --dim), then --shape (where --dim
    // wins).
    for spec in specs {
        if let Some(shape) = known.get(&spec.name) {
            fit_shape(spec, shape, "the input file", &mut b, false)?;
        }
    }
    for spec in specs {
        if let Some(shape) = overrides.shapes.get(&spec.name) {
            if let Some(file_shape) = known.get(&spec.name) {
                if file_shape != shape {
                    return Err(Error::input(
                        &spec.name,
                        format!(
                            "{} {} disagrees with the input file's shape {}",
                            Setting::Shape,
                            format_shape(shape),
                            format_shape(file_shape)
                        ),
                    ));
                }
            }
            fit_shape(spec, shape, &Setting::Shape.to_string(), &mut b, true)?;
        }
    }
    // Pass 2: everything else from the model's dims and the bindings.
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        if let Some(shape) = known.get(&spec.name) {
            out.push(Some(shape.clone()));
            continue;
        }
        if let Some(shape) = overrides.shapes.get(&spec.name) {
            let mut shape = shape.clone();
            for (axis, d) in spec.dims.iter().flatten().enumerate() {
                if let Some(&n) = d.symbol().and_then(|s| b.from_flag.get(s)) {
                    shape[axis] = n;
                }
            }
            out.push(Some(shape));
            continue;
        }
        if partial && spec.dims.is_none() {
            out.push(None);
            continue;
        }
        let dims = spec.dims.as_ref().ok_or_else(|| {
            Error::input(
                &spec.name,
                format!(
                    "the model declares no shape for this input; pass {} {}=DxDx...",
                    Setting::Shape,
                    spec.name
                ),
            )
        })?;
        let mut shape = Vec::with_capacity(dims.len());
        let mut open = false;
        for (axis, d) in dims.iter().enumerate() {
            let bound = match d {
                Dim::Fixed(n) if *n >= 0 => Some(*n as usize),
                Dim::Symbol(s) => b.values.get(s).map(|(n, _)| *n),
                _ => None,
            };
            if let Some(n) = bound {
                shape.push(n);
                continue;
            }
            if partial {
                open = true;
                break;
            }
            if axis == 0 && dims.len() >= 2 {
                // The leading dim of a batched input: one query is what a user runs
                // when they say nothing. Bound, so inputs sharing the symbol agree.
                let how = match d {
                    Dim::Symbol(s) => {
                        b.bind(&spec.name, s, 1, "the default batch".into())?;
                        format!("{} {s}=N", Setting::Dim)
                    }
                    _ => format!("{} {}=...", Setting::Shape, spec.name),
                };
                notes.push(format!(
                    "input '{}': batch dim '{d}' (axis 0 of {}) set to 1; {how} sets it",
                    spec.name,
                    spec.shape_text()
                ));
                shape.push(1);
                continue;
            }
            return Err(match d {
                Dim::Symbol(s) => Error::input(
                    &spec.name,
                    format!(
                        "symbolic dim '{s}' (axis {axis} of {}) is unresolved; pass {} {s}=N or {} {}=...",
                        spec.shape_text(),
                        Setting::Dim,
                        Setting::Shape,
                        spec.name
                    ),
                ),
                _ => Error::input(
                    &spec.name,
                    format!(
                        "axis {axis} of {} is dynamic and unnamed; pass {} {}={}",
                        spec.shape_text(),
                        Setting::Shape,
                        spec.name,
                        example_shape(dims)
                    ),
                ),
            });
        }
        out.push((!open).then_some(shape));
    }
    // A batch note for a symbol shared by several inputs is said once.
    notes.dedup_by(|a, b| a.split_once(": ").map(|x| x.1) == b.split_once(": ").map(|x| x.1));
    Ok((out, notes))
}

/// An example `--shape` value for error messages: fixed dims kept, dynamic ones as `N`.
fn example_shape(dims: &[Dim]) -> String {
    dims.iter()
        .map(|d| match d.fixed() {
            Some(n) => n.to_string(),
            None => "N".into(),
        })
        .collect::<Vec<_>>()
        .join("x")
}

/// Check a tensor against a declared input: exact element type, rank, fixed dims, and,
/// for [`Role::Indices`], every index inside the table (`-vocab..vocab`, as `Gather`
/// takes them). Errors name the input, what the model expects and what was found.
pub fn check_tensor(spec: &TensorSpec, t: &Tensor) -> Result<()> {
    let want = spec.dtype()?;
    if t.dtype() != want {
        return Err(Error::input(
            &spec.name,
            format!("element type is {} but the model expects {want}", t.dtype()),
        ));
    }
    fit_shape(
        spec,
        t.shape(),
        "the tensor",
        &mut Bindings::default(),
        false,
    )?;
    if let Role::Indices { vocab } = spec.role {
        let v = vocab as f64;
        if let Some(bad) = t.to_f64_vec().into_iter().find(|&x| x < -v || x >= v) {
            return Err(Error::input(
                &spec.name,
                format!(
                    "index {bad} is outside the table it indexes (the model expects 0..{vocab}, \
                     the vocabulary size)"
                ),
            ));
        }
    }
    Ok(())
}
