//! [`Engine`] on the shared ONNX Runtime layer (`runtime::Session`): the quantizer never
//! touches `ort` itself.

use std::path::Path;

use super::runner::{Engine, ModelRunner, NamedTensor, SessionConfig};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::runtime::{ExecutionContext, GraphOptimizationLevel, Session};
use crate::tensor::Tensor;

/// ONNX Runtime on the CPU. Timing sessions use `threads` intra-op threads; calibration
/// and evaluation sessions use every core.
pub struct RuntimeEngine {
    timing: ExecutionContext,
    bulk: ExecutionContext,
}

impl RuntimeEngine {
    /// Load ONNX Runtime (once per process; `library` overrides the lookup).
    pub fn new(library: Option<&Path>, threads: usize) -> Result<Self> {
        crate::runtime::ensure(library)?;
        let timing = ExecutionContext {
            intra_op_threads: Some(threads.max(1)),
            inter_op_threads: Some(1),
            ..Default::default()
        };
        let bulk = ExecutionContext {
            intra_op_threads: std::thread::available_parallelism().ok().map(|n| n.get()),
            inter_op_threads: Some(1),
            ..Default::default()
        };
        Ok(RuntimeEngine { timing, bulk })
    }

    fn session(&self, bytes: &[u8], ctx: &ExecutionContext) -> Result<Box<dyn ModelRunner>> {
        let model = Model::from_bytes(bytes, Path::new("quantizer model"))?;
        Ok(Box::new(RuntimeRunner {
            session: Session::from_model(&model, ctx)?,
        }))
    }
}

impl Engine for RuntimeEngine {
    fn load(&self, model_bytes: &[u8]) -> Result<Box<dyn ModelRunner>> {
        self.session(model_bytes, &self.bulk)
    }

    fn load_for_timing(&self, model_bytes: &[u8]) -> Result<Box<dyn ModelRunner>> {
        self.session(model_bytes, &self.timing)
    }

    fn optimize_offline(&self, model_bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("temporary folder", e))?;
        let out = dir.path().join("optimized.onnx");
        let ctx = ExecutionContext {
            graph_optimization_level: GraphOptimizationLevel::Basic,
            optimized_model_path: Some(out.clone()),
            ..self.bulk.clone()
        };
        let model = Model::from_bytes(model_bytes, Path::new("quantizer model"))?;
        drop(Session::from_model(&model, &ctx)?);
        let bytes = std::fs::read(&out).map_err(|e| Error::io(&out, e))?;
        Ok(Some(bytes))
    }

    fn load_configured(
        &self,
        model_bytes: &[u8],
        config: &SessionConfig,
        timing: bool,
    ) -> Result<Box<dyn ModelRunner>> {
        let mut ctx = if timing {
            self.timing.clone()
        } else {
            self.bulk.clone()
        };
        ctx.session_config.extend(config.clone());
        self.session(model_bytes, &ctx)
    }

    fn load_for_calibration(&self, model_bytes: &[u8]) -> Result<Box<dyn ModelRunner>> {
        let ctx = ExecutionContext {
            graph_optimization_level: GraphOptimizationLevel::Basic,
            ..self.bulk.clone()
        };
        self.session(model_bytes, &ctx)
    }
}

struct RuntimeRunner {
    session: Session,
}

impl ModelRunner for RuntimeRunner {
    fn run(&mut self, inputs: &[NamedTensor], outputs: &[String]) -> Result<Vec<NamedTensor>> {
        let feed: Vec<(String, Tensor)> = inputs
            .iter()
            .map(|t| Ok((t.name.clone(), t.to_tensor()?)))
            .collect::<Result<_>>()?;
        let all = self.session.run(&feed)?;
        let pick = |(name, t): (String, Tensor)| -> Result<NamedTensor> {
            Ok(NamedTensor::from_tensor(&name, t))
        };
        if outputs.is_empty() {
            return all.into_iter().map(pick).collect();
        }
        let mut by_name: std::collections::HashMap<String, Tensor> = all.into_iter().collect();
        outputs
            .iter()
            .map(|n| {
                let t = by_name
                    .remove(n)
                    .ok_or_else(|| Error::Runtime(format!("output '{n}' was not produced")))?;
                pick((n.clone(), t))
            })
            .collect()
    }
}
