//! The ONNX model layer: protobuf I/O, external data, graph queries and rewrites.
//!
//! This module knows nothing of ONNX Runtime: it reads and writes `ModelProto` losslessly,
//! answers questions about the graph, and applies labelled patches. Everything above it
//! (runtime, profiler, quantizer, packages) goes through [`Model`].
//!
//! | module | what it does |
//! |---|---|
//! | [`proto`] | every ONNX message, declared from the wire format's field numbers |
//! | [`external`] | external data, confined to the model's folder |
//! | [`attr`] | typed attribute getters whose errors name node, op and attribute |
//! | [`tensor_data`] | decode/build `TensorProto` values (any storage field, checked sizes) |
//! | [`graph`] | [`graph::GraphIndex`]: real inputs, producers, consumers, topological order, weights, stats |
//! | [`patch`] | labelled rewrites, validated and applied all-or-nothing |
//! | [`shape`] | best-effort static shapes at given input sizes; MACs/FLOPs |
//! | [`info`] | the `inspect` report |
//! | [`metadata`] | session entries a model records in its `metadata_props` |
//! | [`builder`] | small deterministic test models (MLP, conv net, `If`, `Constant` weights) |

pub mod attr;
pub mod builder;
pub mod external;
pub mod graph;
pub mod info;
pub mod metadata;
pub mod patch;
pub mod proto;
pub mod shape;
pub mod tensor_data;

use std::path::{Path, PathBuf};

use prost::Message;

use crate::artifact;
use crate::error::{Error, Result};
pub use graph::Dim;
pub use proto::tensor_proto::DataType;
pub use proto::{GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};

/// Largest model file we read by default (protobuf itself cannot exceed 2 GiB).
pub const MAX_MODEL_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Environment variable that lowers the largest model file edgepack reads.
pub const MAX_MODEL_BYTES_ENV: &str = "EDGEPACK_MAX_MODEL_BYTES";

/// The largest model file to read: [`MAX_MODEL_BYTES`], or less where
/// `EDGEPACK_MAX_MODEL_BYTES` says so (a byte count; a malformed value is an error).
pub fn max_model_bytes() -> Result<u64> {
    match std::env::var(MAX_MODEL_BYTES_ENV) {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .map(|n| n.min(MAX_MODEL_BYTES))
            .ok_or_else(|| {
                Error::usage(
                    MAX_MODEL_BYTES_ENV,
                    format!("'{v}' is not a positive whole number"),
                )
            }),
        Err(_) => Ok(MAX_MODEL_BYTES),
    }
}

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
        let max = max_model_bytes()?;
        if meta.len() > MAX_MODEL_BYTES {
            return Err(Error::file(
                path,
                format!(
                    "model file is {} bytes, over the 2 GiB protobuf limit; store weights as external data",
                    meta.len()
                ),
            ));
        }
        if meta.len() > max {
            return Err(Error::file(
                path,
                format!(
                    "model file is {} bytes, over the limit of {max} ({MAX_MODEL_BYTES_ENV})",
                    meta.len()
                ),
            ));
        }
        let model = Self::load_unvalidated(path)?;
        external::validate(&model)?;
        Ok(model)
    }

    /// [`Model::load`] without validating its external data references.
    fn load_unvalidated(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut model = Self::from_bytes(&bytes, path)?;
        model.path = Some(path.to_path_buf());
        Ok(model)
    }

    /// Read a model file whose external data lives beside another model, `data_of`: ONNX
    /// Runtime's optimized copy of a model, written elsewhere, keeps the original's
    /// external references. They are validated against `data_of`'s folder.
    pub fn load_with_data_of(path: &Path, data_of: &Path) -> Result<Self> {
        let mut model = Self::load_unvalidated(path)?;
        model.path = Some(data_of.to_path_buf());
        external::validate(&model)?;
        Ok(model)
    }

    /// Decode a model from bytes; `origin` names the source in error messages.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self> {
        if bytes.is_empty() {
            return Err(Error::file(origin, "empty file, not an ONNX model"));
        }
        let proto = ModelProto::decode(bytes).map_err(|e| {
            let e = e.to_string();
            // prost's message lists every enclosing field, which for a deep nesting is
            // hundreds of characters of "GraphProto.node: NodeProto.attribute: ...".
            if e.ends_with("recursion limit reached") {
                return Error::file(
                    origin,
                    "not a usable ONNX model: messages nest deeper than protobuf's limit of \
                     100 levels (deeply nested If/Loop/Scan subgraphs?)",
                );
            }
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
        check_tensor_sizes(&proto, origin)?;
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

/// Refuse a model whose stored tensors (initializers, tensor attributes such as `Constant`
/// values, in every subgraph) disagree with their own dims: see
/// [`tensor_data::check_size`]. Nothing is decoded.
fn check_tensor_sizes(proto: &ModelProto, origin: &Path) -> Result<()> {
    let Some(g) = proto.graph.as_ref() else {
        return Ok(());
    };
    let mut err = None;
    for_each_graph(g, &mut |g| {
        let attr_tensors = g
            .node
            .iter()
            .flat_map(|n| n.attribute.iter())
            .flat_map(|a| a.t.iter().chain(a.tensors.iter()));
        for t in g.initializer.iter().chain(attr_tensors) {
            if err.is_none() {
                if let Err(e) = tensor_data::check_size(t) {
                    err = Some(Error::file(origin, e.to_string()));
                }
            }
        }
    });
    err.map_or(Ok(()), Err)
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
    use crate::model::{attr, builder};

    #[test]
    fn rejects_empty_file() {
        let e = Model::from_bytes(&[], Path::new("m.onnx")).unwrap_err();
        assert!(e.to_string().contains("empty file"), "{e}");
    }

    fn mlp_with_first_initializer(edit: impl FnOnce(&mut TensorProto)) -> Vec<u8> {
        let mut m = builder::mlp(&[4, 8, 3], 1);
        edit(&mut m.graph_mut().initializer[0]);
        m.to_bytes()
    }

    #[test]
    fn rejects_initializer_whose_raw_data_disagrees_with_dims() {
        let bytes = mlp_with_first_initializer(|t| t.raw_data = Some(vec![0; 100]));
        let e = Model::from_bytes(&bytes, Path::new("m.onnx")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("m.onnx: tensor 'fc0.weight': raw_data has 100 bytes"),
            "{e}"
        );
    }

    #[test]
    fn rejects_initializer_dims_that_overflow_or_are_negative() {
        let bytes = mlp_with_first_initializer(|t| t.dims = vec![1 << 40, 1 << 40, 1 << 40]);
        let e = Model::from_bytes(&bytes, Path::new("m.onnx")).unwrap_err();
        assert!(e.to_string().contains("overflow"), "{e}");
        let bytes = mlp_with_first_initializer(|t| t.dims = vec![8, -4]);
        let e = Model::from_bytes(&bytes, Path::new("m.onnx")).unwrap_err();
        assert!(e.to_string().contains("negative dimension"), "{e}");
    }

    #[test]
    fn rejects_typed_data_count_that_disagrees_with_dims() {
        let bytes = mlp_with_first_initializer(|t| {
            t.raw_data = None;
            t.float_data = vec![1.0; 5];
        });
        let e = Model::from_bytes(&bytes, Path::new("m.onnx")).unwrap_err();
        assert!(e.to_string().contains("float_data has 5 values"), "{e}");
    }

    #[test]
    fn deep_nesting_is_one_short_line() {
        let mut g = GraphProto::default();
        for i in 0..50 {
            let mut n = NodeProto {
                op_type: "If".into(),
                name: format!("if{i}"),
                ..Default::default()
            };
            n.attribute.push(attr::graph("then_branch", g));
            g = GraphProto {
                node: vec![n],
                ..Default::default()
            };
        }
        let bytes = builder::model_from_graph(g, 17).to_bytes();
        let e = Model::from_bytes(&bytes, Path::new("deep.onnx"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nest deeper"), "{e}");
        assert!(e.len() < 200, "{e}");
    }

    /// Every model of the ONNX backend test data passes the size checks (they must never
    /// refuse a valid model). Skipped when the data is not cached.
    #[test]
    fn size_checks_accept_every_backend_test_model() {
        let root = crate::wheel::cache_dir()
            .join("onnx-backend-test-data")
            .join("1.17.0");
        if !root.join(".complete").is_file() {
            eprintln!("SKIPPED: ONNX backend test data not cached");
            return;
        }
        let mut n = 0;
        for kind in std::fs::read_dir(&root).unwrap() {
            let kind = kind.unwrap().path();
            if !kind.is_dir() {
                continue;
            }
            for case in std::fs::read_dir(kind).unwrap() {
                let p = case.unwrap().path().join("model.onnx");
                if let Ok(bytes) = std::fs::read(&p) {
                    let r = Model::from_bytes(&bytes, &p);
                    assert!(
                        r.is_ok() || !r.as_ref().unwrap_err().to_string().contains("tensor '"),
                        "{}",
                        r.unwrap_err()
                    );
                    n += 1;
                }
            }
        }
        assert!(n > 1000, "{n} models");
    }

    /// Found by fuzzing (model_read, a PP-OCR weight mutated to NaN): the harness compared
    /// protos with `==`, which NaN fails; the model layer itself is bit-exact.
    #[test]
    fn nan_weights_round_trip_bit_exactly() {
        let bytes = mlp_with_first_initializer(|t| {
            let mut v = vec![0u8; 128];
            v[..4].copy_from_slice(&f32::NAN.to_le_bytes());
            t.raw_data = Some(v);
        });
        let m = Model::from_bytes(&bytes, Path::new("nan.onnx")).unwrap();
        let again = Model::from_bytes(&m.to_bytes(), Path::new("re.onnx")).unwrap();
        assert_eq!(again.to_bytes(), m.to_bytes());
    }

    #[test]
    fn rejects_random_bytes() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let e = Model::from_bytes(&bytes, Path::new("junk.onnx")).unwrap_err();
        assert!(e.to_string().starts_with("junk.onnx: "), "{e}");
    }
}
