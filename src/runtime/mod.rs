//! ONNX Runtime, behind plain edgepack types. This is the only module that touches `ort`;
//! no `ort` type appears in its public API.
//!
//! - [`ensure`] finds and loads the shared library once per process (see [`library`] for
//!   the search order); [`install`] and [`list`] manage the cache of official builds.
//! - [`ExecutionContext`] holds every session setting (threads, optimization level,
//!   providers in order, memory flags, profiling, offline optimization). It is serde-strict
//!   and stored in package manifests.
//! - [`Session`] builds from a [`Model`](crate::model::Model) or a path, checks inputs
//!   against the model before calling ONNX Runtime, and records the execution providers it
//!   actually got ([`ProviderReport`]): a requested CUDA that is unavailable is either an
//!   error ([`ProviderFallback::Fail`]) or recorded as `cpu (cuda unavailable: ...)`.
//! - The profiler's fast path: [`Session::bind`] once, then [`Session::run_bound`] in the
//!   timing loop (ONNX Runtime `Run` with bound, preallocated inputs and outputs).
//! - [`intermediate`] runs a model with chosen internal tensors exposed as outputs
//!   (quantizer calibration).
//!
//! ```no_run
//! use edgepack::runtime::{self, ExecutionContext, Session};
//! use edgepack::tensor::{DType, Tensor};
//! runtime::ensure(None)?;
//! let mut s = Session::from_path("model.onnx".as_ref(), &ExecutionContext::default())?;
//! let x = Tensor::random(DType::F32, &[1, 3, 48, 192], 0);
//! let outputs = s.run(&[("x".to_string(), x)])?;
//! println!("ran on {}: {} outputs", s.providers().summary(), outputs.len());
//! # Ok::<(), edgepack::Error>(())
//! ```

mod context;
mod convert;
pub mod intermediate;
pub mod library;
mod session;

pub use context::{
    ExecutionContext, ExecutionMode, GraphOptimizationLevel, Provider, ProviderFallback,
    ProviderReport, UnavailableProvider, DISABLE_QUANT_QDQ,
};
pub use library::{
    ensure, ensure_or_install, install, list, CachedRuntime, LibrarySource, Platform, RuntimeInfo,
    DEFAULT_VERSION,
};
pub use session::Session;

/// Load ONNX Runtime for a test, or say loudly why the test is skipped. With
/// `EDGEPACK_REQUIRE_ORT=1` (CI) a missing runtime fails the test instead. The one
/// runtime check of every test (unit and integration), so that setting turns every
/// silent skip into a failure.
#[cfg(any(test, feature = "test-support"))]
pub fn ensure_for_tests() -> Option<RuntimeInfo> {
    match ensure(None) {
        Ok(info) => Some(info),
        Err(e) if std::env::var_os("EDGEPACK_REQUIRE_ORT").is_some_and(|v| v == "1") => {
            panic!("EDGEPACK_REQUIRE_ORT=1 but {e}")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPED: needs ONNX Runtime: {e} ***\n");
            None
        }
    }
}

#[cfg(test)]
mod tests;
