//! edgepack: take an ONNX model from "trained on a big machine" to "running well on a
//! small device".
//!
//! The library does the work; the `edgepack` binary is a thin CLI over it.
//!
//! - [`model`]: lossless ONNX protobuf I/O, external data (confined), graph queries, patches.
//! - [`runtime`]: the only module that touches ONNX Runtime (through `ort`).
//! - [`tensor`]: tensors in and out (`.npy`, `.npz`, ONNX `TensorProto` `.pb`).
//!
//! ```no_run
//! let model = edgepack::model::Model::load(std::path::Path::new("model.onnx"))?;
//! println!("{} nodes", model.graph().node.len());
//! # Ok::<(), edgepack::Error>(())
//! ```

// Library code returns errors instead of panicking on a missing value (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod artifact;
pub mod bounds;
pub mod bundle;
pub mod date;
pub mod error;
pub mod gate;
pub mod hardware;
pub mod inputs;
pub mod isa;
pub mod isolate;
pub mod model;
pub mod package;
pub mod pipeline;
pub mod profile;
pub mod quantize;
pub mod report;
pub mod runtime;
pub mod setting;
pub mod stats;
pub mod table;
pub mod tensor;
pub mod units;
pub mod wheel;
pub mod zoo;

pub use error::{Error, Result};
