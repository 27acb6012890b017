//! Generated inputs that mean something for each dtype and role.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::args::{ValueRange, ValueRanges};
use super::spec::{unknown_input, Role, TensorSpec};
use crate::error::{Error, Result};
use crate::setting::Setting;
use crate::tensor::{DType, Tensor};

/// One generated tensor for `spec` at `shape`, seeded.
///
/// The rules, first match wins:
/// 1. `--input-range NAME=LO..HI` given: uniform in the range (checked against the dtype).
/// 2. [`Role::Indices`] (feeds a `Gather` as indices): uniform in `0..vocab`.
/// 3. [`Role::AttentionMask`]: ones. [`Role::TokenTypes`]: zeros.
/// 4. [`Role::Parameter`] (an integer scalar that indexes nothing, like Silero VAD's
///    sample rate `sr`): refused with the flag that gives it a value; a random 2 there
///    only moves the failure into the model.
/// 5. By dtype: bool `true`; floats uniform in [0, 1); other integers uniform in 0..10.
pub fn generate(
    spec: &TensorSpec,
    shape: &[usize],
    range: Option<&ValueRange>,
    seed: u64,
) -> Result<Tensor> {
    let dtype = spec.dtype()?;
    if let Some(r) = range {
        r.check(&spec.name, dtype)?;
        return Tensor::uniform(dtype, shape, r.lo, r.hi, seed);
    }
    match spec.role {
        Role::Indices { vocab } => Tensor::uniform(dtype, shape, 0.0, vocab as f64 - 1.0, seed),
        Role::AttentionMask => Tensor::filled(dtype, shape, 1.0),
        Role::TokenTypes => Tensor::filled(dtype, shape, 0.0),
        Role::Parameter => Err(Error::input(
            &spec.name,
            format!(
                "is an {dtype} scalar that indexes nothing (a parameter such as a sample \
                 rate): edgepack cannot make up its value; give it with {1} {0}=V..V \
                 or {2} {0}=FILE",
                spec.name,
                Setting::InputRange,
                Setting::Input
            ),
        )),
        Role::Data if dtype == DType::Bool => Tensor::filled(dtype, shape, 1.0),
        Role::Data => Ok(Tensor::random(dtype, shape, seed)),
    }
}

/// What a child process needs to generate inputs exactly as its parent would: the roles
/// the parent read from the graph (a child that only has an ONNX Runtime session sees the
/// signature, not the `Gather` behind an input) and the `--input-range` values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    #[serde(default)]
    pub ranges: BTreeMap<String, ValueRange>,
}

impl Generation {
    /// From the parent's specs (roles read from the graph) and the user's ranges.
    pub fn new(specs: &[TensorSpec], ranges: &ValueRanges) -> Self {
        Generation {
            roles: specs
                .iter()
                .map(|s| (s.name.clone(), s.role.clone()))
                .collect(),
            ranges: ranges.0.clone(),
        }
    }

    /// Put the recorded roles into `specs` (by name) and return the ranges to use.
    pub fn apply(&self, specs: &mut [TensorSpec]) -> ValueRanges {
        for s in specs.iter_mut() {
            if let Some(r) = self.roles.get(&s.name) {
                s.role = r.clone();
            }
        }
        ValueRanges(self.ranges.clone())
    }
}

/// Check, before anything is allocated or run, that every input `sources` does not give
/// can be generated: each `--input-range` names an input and fits its dtype, no input is a
/// string, and every [`Role::Parameter`] has a range or a file. `from_files` names the
/// inputs files provide (a folder or `.npz` given with `--inputs` counts for all).
pub fn check_generation(
    specs: &[TensorSpec],
    ranges: &ValueRanges,
    from_files: &dyn Fn(&str) -> bool,
) -> Result<()> {
    for (name, r) in &ranges.0 {
        let spec = specs
            .iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| unknown_input(name, specs, Setting::InputRange))?;
        r.check(name, spec.dtype()?)?;
    }
    for s in specs {
        if from_files(&s.name) || ranges.get(&s.name).is_some() {
            continue;
        }
        s.dtype()?;
        if s.role == Role::Parameter {
            generate(s, &[], None, 0)?;
        }
    }
    Ok(())
}
