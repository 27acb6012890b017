//! The one grammar for `--shape NAME=DIMS`, `--dim SYMBOL=N[,M...]` and
//! `--input-range NAME=LO..HI`, in every command.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::setting::Setting;
use crate::tensor::{format_shape, DType};

/// Split `NAME=VALUE` at the *last* `=` (input names may contain `=`, values never do).
fn split_assignment<'a>(setting: Setting, arg: &'a str, form: &str) -> Result<(&'a str, &'a str)> {
    match arg.rsplit_once('=') {
        Some((k, v)) if !k.is_empty() && !v.trim().is_empty() => Ok((k, v.trim())),
        _ => Err(Error::usage(
            setting,
            format!("expected {form}, got '{arg}'"),
        )),
    }
}

/// Parse a shape like `1x3x224x224` (also `1,3,224,224`; `scalar` for rank 0). Every dim
/// must be at least 1: a zero-sized input is never what a user means, and ONNX Runtime
/// would answer with a raw kernel error far from the flag.
pub fn parse_shape(text: &str) -> Option<Vec<usize>> {
    let text = text.trim();
    if text == "scalar" {
        return Some(vec![]);
    }
    text.split(['x', 'X', ','])
        .map(|d| d.trim().parse::<usize>().ok().filter(|&n| n >= 1))
        .collect()
}

/// Parse one `--shape NAME=1x3x224x224` argument.
pub fn parse_shape_arg(arg: &str) -> Result<(String, Vec<usize>)> {
    let (name, value) = split_assignment(Setting::Shape, arg, "NAME=DIMS like x=1x3x224x224")?;
    let shape = parse_shape(value).ok_or_else(|| {
        Error::usage(
            Setting::Shape,
            format!("'{value}' is not a shape like 1x3x224x224 with every dim >= 1 (in '{arg}')"),
        )
    })?;
    Ok((name.to_string(), shape))
}

/// Parse one `--dim SYMBOL=N[,M...]` argument (a list sweeps, in `profile`; one value
/// everywhere else). Every size must be at least 1.
pub fn parse_dim_arg(arg: &str) -> Result<(String, Vec<usize>)> {
    let (name, value) = split_assignment(Setting::Dim, arg, "SYMBOL=N[,M...] like sequence=128")?;
    let values: Option<Vec<usize>> = value
        .split(',')
        .map(|x| x.trim().parse::<usize>().ok().filter(|&n| n >= 1))
        .collect();
    let values = values.filter(|v| !v.is_empty()).ok_or_else(|| {
        Error::usage(
            Setting::Dim,
            format!("'{value}' is not a size >= 1 or a list like 16,64 (in '{arg}')"),
        )
    })?;
    Ok((name.to_string(), values))
}

/// `--shape` and `--dim` values for one concrete configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShapeOverrides {
    /// Whole shapes by input name.
    pub shapes: BTreeMap<String, Vec<usize>>,
    /// Symbolic dim values by symbol.
    pub dims: BTreeMap<String, usize>,
}

impl ShapeOverrides {
    /// Add a `--shape NAME=1x3x224x224` argument.
    pub fn add_shape_arg(&mut self, arg: &str) -> Result<()> {
        let (name, shape) = parse_shape_arg(arg)?;
        if let Some(old) = self.shapes.insert(name.clone(), shape.clone()) {
            if old != shape {
                return Err(Error::usage(
                    Setting::Shape,
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

    /// Add a `--dim SYMBOL=N` argument (one value: this is one configuration).
    pub fn add_dim_arg(&mut self, arg: &str) -> Result<()> {
        let (name, values) = parse_dim_arg(arg)?;
        let [n] = values[..] else {
            return Err(Error::usage(
                Setting::Dim,
                format!("'{arg}' gives several sizes; this command runs one (profile sweeps)"),
            ));
        };
        if let Some(old) = self.dims.insert(name.clone(), n) {
            if old != n {
                return Err(Error::usage(
                    Setting::Dim,
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

/// `--input-range NAME=LO..HI`: generated values for an input drawn uniformly from
/// `LO..=HI` (integers) or `[LO, HI)` (floats; all `LO` when equal).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValueRange {
    pub lo: f64,
    pub hi: f64,
}

impl ValueRange {
    /// Check the range against the input's element type: both ends representable
    /// (integers for integer types, 0 or 1 for bool, finite and in range for floats).
    pub fn check(&self, input: &str, dtype: DType) -> Result<()> {
        let (min, max): (f64, f64) = match dtype {
            DType::Bool => (0.0, 1.0),
            DType::I8 => (i8::MIN as f64, i8::MAX as f64),
            DType::U8 => (0.0, u8::MAX as f64),
            DType::I16 => (i16::MIN as f64, i16::MAX as f64),
            DType::U16 => (0.0, u16::MAX as f64),
            DType::I32 => (i32::MIN as f64, i32::MAX as f64),
            DType::U32 => (0.0, u32::MAX as f64),
            // 2^53: beyond it f64 cannot name every integer.
            DType::I64 => (-9_007_199_254_740_992.0, 9_007_199_254_740_992.0),
            DType::U64 => (0.0, 9_007_199_254_740_992.0),
            DType::F16 => (-65504.0, 65504.0),
            DType::BF16 | DType::F32 => (f32::MIN as f64, f32::MAX as f64),
            DType::F64 => (f64::MIN, f64::MAX),
        };
        let text = format!("{}..{}", self.lo, self.hi);
        let bad = |why: String| {
            Err(Error::usage(
                Setting::InputRange,
                format!("input '{input}' ({dtype}): {text} {why}"),
            ))
        };
        if !dtype.is_float() && (self.lo.fract() != 0.0 || self.hi.fract() != 0.0) {
            return bad("is not a range of integers".into());
        }
        if self.lo < min || self.hi > max {
            return bad(format!("is outside the type's range {min}..{max}"));
        }
        Ok(())
    }
}

/// `--input-range` values by input name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueRanges(pub BTreeMap<String, ValueRange>);

impl ValueRanges {
    /// Add one `--input-range NAME=LO..HI` argument (`LO <= HI`, both finite).
    pub fn add_arg(&mut self, arg: &str) -> Result<()> {
        let (name, value) =
            split_assignment(Setting::InputRange, arg, "NAME=LO..HI like ids=0..999")?;
        let (lo, hi) = value
            .split_once("..")
            .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)))
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .ok_or_else(|| {
                Error::usage(
                    Setting::InputRange,
                    format!("'{value}' is not a range like 0..999 or -1.5..1.5 (in '{arg}')"),
                )
            })?;
        if lo > hi {
            return Err(Error::usage(
                Setting::InputRange,
                format!("'{arg}': LO {lo} is above HI {hi}"),
            ));
        }
        if self
            .0
            .insert(name.to_string(), ValueRange { lo, hi })
            .is_some()
        {
            return Err(Error::usage(
                Setting::InputRange,
                format!("input '{name}' given twice"),
            ));
        }
        Ok(())
    }

    /// Parse a list of `--input-range` arguments.
    pub fn from_args(args: &[String]) -> Result<Self> {
        let mut r = ValueRanges::default();
        for a in args {
            r.add_arg(a)?;
        }
        Ok(r)
    }

    /// The range for `input`, if given.
    pub fn get(&self, input: &str) -> Option<&ValueRange> {
        self.0.get(input)
    }

    /// Whether no range was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
