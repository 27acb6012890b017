//! `--mode fp16`: float16 weights and compute, float32 at the model's inputs and outputs.

use std::collections::HashSet;
use std::path::Path;

use super::Rewrite;
use crate::error::{Error, Result};
use crate::model::Model;

/// fp16 settings.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Op types kept in float32 on top of the built-in block list.
    pub block_ops: HashSet<String>,
    /// Node names kept in float32.
    pub block_nodes: HashSet<String>,
}

/// Convert the prepared model to fp16.
pub fn convert(_prepared: &Model, _origin: &Path, _opts: &Options) -> Result<Rewrite> {
    Err(Error::usage("--mode", "fp16 is not implemented yet"))
}
