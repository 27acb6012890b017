//! `--context context.toml`: the execution context and pre/postprocessing a package records.
//!
//! ```toml
//! [execution]
//! intra_op_threads = 2
//! graph_optimization_level = "all"
//! execution_providers = ["cpu"]
//!
//! [preprocessing]
//! input = "x"
//! resize = { height = 48, width = 192 }
//! layout = "nchw"
//! channel_order = "bgr"
//! scale = 0.00392156862745098
//! mean = [0.5, 0.5, 0.5]
//! std = [0.5, 0.5, 0.5]
//!
//! [postprocessing]
//! output = "softmax_0.tmp_0"
//! argmax = true
//! ```
//!
//! Parsed strictly: unknown keys, unknown providers, layouts or channel orders, and names
//! that are not inputs/outputs of the model are errors naming the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

use super::manifest::{Contract, ExecutionContext, Postprocessing, Preprocessing};

/// The context file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContextFile {
    #[serde(default)]
    pub execution: Option<ExecutionContext>,
    #[serde(default)]
    pub preprocessing: Option<Preprocessing>,
    #[serde(default)]
    pub postprocessing: Option<Postprocessing>,
    #[serde(skip)]
    pub origin: PathBuf,
}

impl ContextFile {
    /// Read a context file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut c: ContextFile = toml::from_str(&text)
            .map_err(|e| Error::file(path, format!("not a valid context file: {}", e.message())))?;
        c.origin = path.to_path_buf();
        Ok(c)
    }

    /// Check against the model's contract and fill defaults.
    pub fn resolve(
        &self,
        contract: &Contract,
    ) -> Result<(
        ExecutionContext,
        Option<Preprocessing>,
        Option<Postprocessing>,
    )> {
        let bad = |m: String| Error::file(&self.origin, m);
        let exec = self.execution.clone().unwrap_or_default();
        exec.validate().map_err(|e| bad(e.to_string()))?;
        if exec.profiling_prefix.is_some() || exec.optimized_model_path.is_some() {
            return Err(bad(
                "profiling_prefix and optimized_model_path are paths on this machine; leave them out of a package".into(),
            ));
        }
        if let Some(p) = &self.preprocessing {
            if !contract.inputs.iter().any(|i| i.name == p.input) {
                return Err(bad(format!(
                    "preprocessing input '{}' is not an input of the model",
                    p.input
                )));
            }
            if !["nchw", "nhwc"].contains(&p.layout.as_str()) {
                return Err(bad(format!("layout '{}' is not nchw or nhwc", p.layout)));
            }
            if !["rgb", "bgr", "gray"].contains(&p.channel_order.as_str()) {
                return Err(bad(format!(
                    "channel_order '{}' is not rgb, bgr or gray",
                    p.channel_order
                )));
            }
            if !(p.scale.is_finite() && p.scale != 0.0) {
                return Err(bad("scale must be a non-zero number".into()));
            }
            if !p.std.is_empty() && p.std.len() != p.mean.len() {
                return Err(bad(format!(
                    "mean has {} values but std has {}",
                    p.mean.len(),
                    p.std.len()
                )));
            }
            if p.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
                return Err(bad("std values must be non-zero".into()));
            }
            if let Some(r) = &p.resize {
                if r.height == 0 || r.width == 0 {
                    return Err(bad("resize height and width must be positive".into()));
                }
                if !["bilinear", "nearest", "bicubic"].contains(&r.interpolation.as_str()) {
                    return Err(bad(format!(
                        "interpolation '{}' is not bilinear, nearest or bicubic",
                        r.interpolation
                    )));
                }
            }
        }
        if let Some(p) = &self.postprocessing {
            if !contract.outputs.iter().any(|o| o.name == p.output) {
                return Err(bad(format!(
                    "postprocessing output '{}' is not an output of the model",
                    p.output
                )));
            }
            if p.labels.is_some() {
                return Err(bad(
                    "labels are given with --labels FILE, not in the context file".into(),
                ));
            }
        }
        Ok((
            exec,
            self.preprocessing.clone(),
            self.postprocessing.clone(),
        ))
    }
}
