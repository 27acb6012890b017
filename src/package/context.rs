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
//! task = "top1"        # or "ctc", "mask@0.3", "embedding": the task metric of `output`
//! ```
//!
//! Parsed strictly: unknown keys, unknown providers, layouts or channel orders, names
//! that are not inputs/outputs of the model, and a task that is not one of
//! [`Task::parse`]'s or does not fit the output (`ctc` on a 2-D output) are errors naming
//! the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::Dim;
use crate::quantize::task::Task;
use crate::setting::Setting;

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
                return Err(bad(format!(
                    "labels are given with {} FILE, not in the context file",
                    Setting::Labels
                )));
            }
            if let Some(t) = &p.task {
                let task = Task::parse("postprocessing.task", t).map_err(|e| bad(e.to_string()))?;
                if let Some(o) = contract.outputs.iter().find(|o| o.name == p.output) {
                    // Unknown sizes count as large: only what the model declares can fail.
                    let shape: Option<Vec<usize>> = o.shape.as_ref().map(|dims| {
                        dims.iter()
                            .map(|d| match d {
                                Dim::Fixed(n) if *n >= 0 => *n as usize,
                                _ => usize::MAX,
                            })
                            .collect()
                    });
                    if let Some(shape) = shape {
                        let float = o.dtype.starts_with("float") || o.dtype == "bfloat16";
                        task.check_output(&o.name, &shape, float)
                            .map_err(|e| bad(format!("postprocessing.task '{t}': {e}")))?;
                    }
                }
            }
        }
        Ok((
            exec,
            self.preprocessing.clone(),
            self.postprocessing.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::manifest::TensorSpec;

    fn contract(shape: &[i64]) -> Contract {
        let spec = |name: &str, shape: &[i64]| TensorSpec {
            name: name.into(),
            dtype: "float32".into(),
            shape: Some(shape.iter().map(|&n| Dim::Fixed(n)).collect()),
        };
        Contract {
            inputs: vec![spec("x", &[1, 3, 48, 320])],
            outputs: vec![spec("y", shape)],
        }
    }

    fn context(task: &str) -> ContextFile {
        let mut c: ContextFile = toml::from_str(&format!(
            "[postprocessing]\noutput = \"y\"\ntask = \"{task}\"\n"
        ))
        .unwrap();
        c.origin = "ctx.toml".into();
        c
    }

    #[test]
    fn a_package_declares_its_task_metric() {
        let (_, _, post) = context("ctc").resolve(&contract(&[1, 40, 6625])).unwrap();
        assert_eq!(post.unwrap().task.as_deref(), Some("ctc"));
        assert!(context("mask@0.3")
            .resolve(&contract(&[1, 1, 640, 640]))
            .is_ok());
    }

    #[test]
    fn a_task_that_is_unknown_or_does_not_fit_the_output_names_the_file() {
        let e = context("ocr")
            .resolve(&contract(&[1, 40, 6625]))
            .unwrap_err();
        assert!(e.to_string().starts_with("ctx.toml: "), "{e}");
        assert!(e.to_string().contains("'ocr' is not a task"), "{e}");
        let e = context("ctc").resolve(&contract(&[1, 6625])).unwrap_err();
        assert!(e.to_string().contains("output 'y'"), "{e}");
        assert!(e.to_string().contains("[lines, time, classes]"), "{e}");
    }
}
