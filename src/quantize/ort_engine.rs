//! [`Engine`] on ONNX Runtime through `ort`.
//!
//! Interim: the house rule puts every `ort` type under `runtime/`. The shared
//! `runtime::Session` was not merged when the quantizer was written, so this file is the
//! one place outside `runtime/` that touches `ort`, behind the [`Engine`] trait; moving it
//! is a file move with no change to callers.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

use super::runner::{Engine, ModelRunner, NamedTensor};
use crate::error::{Error, Result};

static ENV: OnceLock<std::result::Result<ort::environment::Environment, String>> = OnceLock::new();

/// ONNX Runtime on the CPU with a fixed intra-op thread count.
pub struct OrtEngine {
    threads: usize,
    bulk_threads: usize,
}

/// Where to look for `libonnxruntime`: explicit path, `ORT_DYLIB_PATH`, the edgepack cache.
pub fn locate_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(PathBuf::from(p));
    }
    let cache = crate::wheel::cache_dir().join("runtimes");
    if let Ok(platforms) = std::fs::read_dir(&cache) {
        for plat in platforms.flatten() {
            if let Ok(versions) = std::fs::read_dir(plat.path()) {
                for v in versions.flatten() {
                    if let Ok(files) = std::fs::read_dir(v.path()) {
                        for f in files.flatten() {
                            let name = f.file_name().to_string_lossy().to_string();
                            if name.starts_with("libonnxruntime.so") {
                                return Ok(f.path());
                            }
                        }
                    }
                }
            }
        }
    }
    Err(Error::RuntimeMissing(
        "not found: pass --ort-lib FILE, set ORT_DYLIB_PATH, or run `edgepack runtime install`"
            .into(),
    ))
}

impl OrtEngine {
    /// Load ONNX Runtime (once per process) and use `threads` intra-op threads per session.
    pub fn new(library: &Path, threads: usize) -> Result<Self> {
        let env = ENV.get_or_init(|| {
            ort::init_from(library)
                .map_err(|e| format!("{}: {e}", library.display()))?
                .with_name("edgepack-quantize")
                .build()
                .map_err(|e| e.to_string())
        });
        env.as_ref().map_err(|e| Error::RuntimeMissing(e.clone()))?;
        let bulk_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(OrtEngine {
            threads,
            bulk_threads,
        })
    }

    fn session(
        &self,
        bytes: &[u8],
        level: GraphOptimizationLevel,
        threads: usize,
    ) -> Result<Box<dyn ModelRunner>> {
        let env = ENV
            .get()
            .and_then(|e| e.as_ref().ok())
            .expect("initialized in new");
        let rt = |e: ort::Error| Error::Runtime(e.to_string());
        let session = Session::builder(env)
            .map_err(rt)?
            .with_optimization_level(level)
            .map_err(|e| Error::Runtime(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| Error::Runtime(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| Error::Runtime(e.to_string()))?
            .commit_from_memory(bytes)
            .map_err(rt)?;
        let outputs = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        Ok(Box::new(OrtRunner { session, outputs }))
    }
}

impl Engine for OrtEngine {
    fn load(&self, model_bytes: &[u8]) -> Result<Box<dyn ModelRunner>> {
        self.session(model_bytes, GraphOptimizationLevel::All, self.bulk_threads)
    }

    fn load_for_timing(&self, model_bytes: &[u8]) -> Result<Box<dyn ModelRunner>> {
        self.session(model_bytes, GraphOptimizationLevel::All, self.threads)
    }

    fn load_for_calibration(&self, model_bytes: &[u8]) -> Result<Box<dyn ModelRunner>> {
        self.session(
            model_bytes,
            GraphOptimizationLevel::Level1,
            self.bulk_threads,
        )
    }
}

struct OrtRunner {
    session: Session,
    outputs: Vec<String>,
}

impl ModelRunner for OrtRunner {
    fn run(&mut self, inputs: &[NamedTensor], outputs: &[String]) -> Result<Vec<NamedTensor>> {
        let rt = |e: ort::Error| Error::Runtime(e.to_string());
        let mut feed: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        for t in inputs {
            let v = Tensor::from_array((t.shape.clone(), t.data.clone())).map_err(rt)?;
            feed.push((t.name.clone(), v.into()));
        }
        let wanted: Vec<String> = if outputs.is_empty() {
            self.outputs.clone()
        } else {
            outputs.to_vec()
        };
        let result = self.session.run(feed).map_err(rt)?;
        let mut out = Vec::with_capacity(wanted.len());
        for name in &wanted {
            let v = result
                .get(name)
                .ok_or_else(|| Error::Runtime(format!("output '{name}' was not produced")))?;
            let (shape, data) = v.try_extract_tensor::<f32>().map_err(|e| {
                Error::Runtime(format!("output '{name}' is not a float32 tensor: {e}"))
            })?;
            out.push(NamedTensor {
                name: name.clone(),
                shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
                data: data.to_vec(),
            });
        }
        Ok(out)
    }
}
