//! `--mode int4-weight`: 4-bit block-quantized MatMul weights (`MatMulNBits`).

use std::path::Path;

use super::Rewrite;
use crate::error::{Error, Result};
use crate::model::Model;

/// int4 weight-only settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Weights per quantization block along K (a power of two, at least 16).
    pub block_size: usize,
    /// Node names kept in float.
    pub exclude_nodes: std::collections::HashSet<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            block_size: 32,
            exclude_nodes: Default::default(),
        }
    }
}

/// Rewrite large constant-weight MatMuls of the prepared model to `MatMulNBits`.
pub fn convert(_prepared: &Model, _origin: &Path, _opts: &Options) -> Result<Rewrite> {
    Err(Error::usage("--mode", "int4-weight is not implemented yet"))
}
