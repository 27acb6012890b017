//! The ONNX model layer: protobuf I/O, external data, graph queries and rewrites.
//!
//! This module knows nothing of ONNX Runtime: it reads and writes `ModelProto` losslessly,
//! answers questions about the graph, and applies labelled patches. Everything above it
//! (runtime, profiler, quantizer, packages) goes through [`Model`].

pub mod attr;
pub mod builder;
pub mod external;
pub mod graph;
pub mod info;
pub mod patch;
pub mod proto;
pub mod shape;
pub mod tensor_data;

use std::path::{Path, PathBuf};

use prost::Message;

use crate::artifact;
use crate::error::{Error, Result};
pub use proto::tensor_proto::DataType;
pub use proto::{GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};

/// Largest model file we read by default (protobuf itself cannot exceed 2 GiB).
pub const MAX_MODEL_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// An ONNX model and the folder its external data is confined to.
#[derive(Clone, Debug)]
pub struct Model {
    /// The decoded protobuf.
    pub proto: ModelProto,
    /// Where the model was read from: external data resolves against its folder only.
    pub path: Option<PathBuf>,
}

impl Model {
    /// Wrap an in-memory proto (e.g. from the builder).
    pub fn from_proto(proto: ModelProto) -> Self {
        Model { proto, path: None }
    }

    /// Read a model file. External data references are validated (confined to the
    /// model's folder, within the files' bounds) but not read; see [`Model::load_external_data`].
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::file(path, "not a regular file"));
        }
        if meta.len() > MAX_MODEL_BYTES {
            return Err(Error::file(
                path,
                format!(
                    "model file is {} bytes, over the 2 GiB protobuf limit; store weights as external data",
                    meta.len()
                ),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut model = Self::from_bytes(&bytes, path)?;
        model.path = Some(path.to_path_buf());
        external::validate(&model)?;
        Ok(model)
    }

    /// Decode a model from bytes; `origin` names the source in error messages.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self> {
        if bytes.is_empty() {
            return Err(Error::file(origin, "empty file, not an ONNX model"));
        }
        let proto = ModelProto::decode(bytes).map_err(|e| {
            Error::file(
                origin,
                format!("not a valid ONNX model (protobuf decoding failed: {e})"),
            )
        })?;
        if proto.graph.is_none() {
            return Err(Error::file(origin, "not an ONNX model: it has no graph"));
        }
        if proto.ir_version.is_none() {
            return Err(Error::file(
                origin,
                "not an ONNX model: it has no ir_version",
            ));
        }
        // ONNX requires opset imports from IR version 3 on, and ONNX Runtime refuses a
        // model without them. A file cut off after its graph still decodes (protobuf has
        // no end marker), so this is also what catches most truncated models.
        if proto.opset_import.is_empty() && proto.ir_version.is_some_and(|v| v >= 3) {
            return Err(Error::file(
                origin,
                "not a complete ONNX model: it has no opset_import (truncated file?)",
            ));
        }
        Ok(Model { proto, path: None })
    }

    /// Encode to protobuf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// The model's main graph.
    pub fn graph(&self) -> &GraphProto {
        // `from_bytes` refuses models without a graph; builder models always have one.
        self.proto.graph.as_ref().expect("model has a graph")
    }

    /// The model's main graph, mutably.
    pub fn graph_mut(&mut self) -> &mut GraphProto {
        self.proto.graph.get_or_insert_with(Default::default)
    }

    /// The folder external data is resolved against, if the model came from a file.
    pub fn base_dir(&self) -> Option<&Path> {
        self.path.as_deref().and_then(Path::parent)
    }

    /// Read every external tensor into `raw_data`, so the model is self-contained.
    /// All references are validated before any data is read.
    pub fn load_external_data(&mut self) -> Result<()> {
        external::inline_all(self)
    }

    /// Write the model atomically. External data is inlined first, so the written file is
    /// self-contained and no attacker-chosen `location` is ever used as an output path.
    pub fn save(&self, path: &Path) -> Result<()> {
        if external::has_external(&self.proto) {
            let mut owned = self.clone();
            owned.load_external_data()?;
            return artifact::write_atomic(path, &owned.to_bytes());
        }
        artifact::write_atomic(path, &self.to_bytes())
    }

    /// sha256 of the encoded model, lowercase hex.
    pub fn sha256_hex(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.to_bytes()))
    }
}

/// Visit every graph in the model (main graph, then subgraphs of `If`/`Loop`/`Scan`
/// attributes, depth first), mutably.
pub fn for_each_graph_mut(graph: &mut GraphProto, f: &mut dyn FnMut(&mut GraphProto)) {
    f(graph);
    for node in &mut graph.node {
        for attr in &mut node.attribute {
            if let Some(g) = attr.g.as_mut() {
                for_each_graph_mut(g, f);
            }
            for g in &mut attr.graphs {
                for_each_graph_mut(g, f);
            }
        }
    }
}

/// Visit every graph in the model (main graph, then subgraphs), depth first.
pub fn for_each_graph<'a>(graph: &'a GraphProto, f: &mut dyn FnMut(&'a GraphProto)) {
    f(graph);
    for node in &graph.node {
        for attr in &node.attribute {
            if let Some(g) = attr.g.as_ref() {
                for_each_graph(g, f);
            }
            for g in &attr.graphs {
                for_each_graph(g, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_file() {
        let e = Model::from_bytes(&[], Path::new("m.onnx")).unwrap_err();
        assert!(e.to_string().contains("empty file"), "{e}");
    }

    #[test]
    fn rejects_random_bytes() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let e = Model::from_bytes(&bytes, Path::new("junk.onnx")).unwrap_err();
        assert!(e.to_string().starts_with("junk.onnx: "), "{e}");
    }
}
