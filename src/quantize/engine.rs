//! [`Engine`] on the shared ONNX Runtime layer (`runtime::Session`): the quantizer never
//! touches `ort` itself.
//!
//! Evaluation and calibration run one single-threaded session per core
//! ([`Engine::load_workers`], [`Engine::load_calibration_workers`]), each on its own samples: one sample of a small net does not keep two threads busy (ONNX
//! Runtime's intra-op threads wait on each other between small kernels), so sessions side
//! by side judge a candidate sooner. Measured on the PP-OCR recognizer, int8, 2 cores:
//! 0.42-0.83x the time of one 2-thread session per sample (BENCHMARKS.md).

use std::path::Path;

use super::runner::{map_on_threads, Engine, ModelRunner, NamedTensor, SessionConfig};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::runtime::{ExecutionContext, GraphOptimizationLevel, Session};
use crate::tensor::Tensor;

/// ONNX Runtime on the CPU. Timing sessions use `threads` intra-op threads; calibration
/// and evaluation sessions use every core.
pub struct RuntimeEngine {
    timing: ExecutionContext,
    bulk: ExecutionContext,
    cores: usize,
}

/// Most evaluation sessions side by side.
const MAX_WORKERS: usize = 4;
/// Models above this size are evaluated in one session: each worker holds its own copy.
const MAX_WORKER_MODEL_BYTES: usize = 256 << 20;
/// Fewest samples per extra session: loading one (0.2 s for the recognizer) costs more
/// than it saves on a handful of samples (the accuracy guard's 4-sample sensitivity
/// probes).
const MIN_SAMPLES_PER_WORKER: usize = 16;

impl RuntimeEngine {
    /// Load ONNX Runtime (once per process; `library` overrides the lookup).
    pub fn new(library: Option<&Path>, threads: usize) -> Result<Self> {
        crate::runtime::ensure(library)?;
        let timing = ExecutionContext {
            intra_op_threads: Some(threads.max(1)),
            inter_op_threads: Some(1),
            ..Default::default()
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let bulk = ExecutionContext {
            intra_op_threads: Some(cores),
            inter_op_threads: Some(1),
            ..Default::default()
        };
        Ok(RuntimeEngine {
            timing,
            bulk,
            cores,
        })
    }

    /// Sessions of `ctx` side by side for `samples` samples, splitting the cores between
    /// them.
    fn workers(
        &self,
        bytes: &[u8],
        mut ctx: ExecutionContext,
        samples: usize,
    ) -> Result<Vec<Box<dyn ModelRunner>>> {
        let workers = self
            .side_by_side(bytes.len())
            .min(samples / MIN_SAMPLES_PER_WORKER)
            .max(1);
        ctx.intra_op_threads = Some((self.cores / workers).max(1));
        // Loaded side by side too: a session's load (graph optimizations, prepacking) runs on
        // one thread.
        map_on_threads(vec![(); workers], workers, |()| self.session(bytes, &ctx))
            .into_iter()
            .collect()
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

    fn load_workers(
        &self,
        model_bytes: &[u8],
        config: &SessionConfig,
        samples: usize,
    ) -> Result<Vec<Box<dyn ModelRunner>>> {
        let mut ctx = self.bulk.clone();
        ctx.session_config.extend(config.clone());
        self.workers(model_bytes, ctx, samples)
    }

    fn side_by_side(&self, model_bytes: usize) -> usize {
        if model_bytes > MAX_WORKER_MODEL_BYTES {
            1
        } else {
            self.cores.min(MAX_WORKERS)
        }
    }

    fn load_single_thread(
        &self,
        model_bytes: &[u8],
        config: &SessionConfig,
    ) -> Result<Box<dyn ModelRunner>> {
        let mut ctx = self.bulk.clone();
        ctx.intra_op_threads = Some(1);
        ctx.session_config.extend(config.clone());
        self.session(model_bytes, &ctx)
    }

    fn load_calibration_workers(
        &self,
        model_bytes: &[u8],
        samples: usize,
    ) -> Result<Vec<Box<dyn ModelRunner>>> {
        let ctx = ExecutionContext {
            graph_optimization_level: GraphOptimizationLevel::Basic,
            ..self.bulk.clone()
        };
        self.workers(model_bytes, ctx, samples)
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
