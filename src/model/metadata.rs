//! What a model records about how it must run, in its own ONNX `metadata_props`.
//!
//! Why in the model: an int8 weight-only model is only as fast as measured when ONNX
//! Runtime folds its DequantizeLinear nodes at load (`session.disable_quant_qdq=1`).
//! A report or a manifest can get separated from the `.onnx` (copied alone, handed to
//! `compare`, `gate --remeasure`, `run`); the model's own metadata travels with it. Every
//! session edgepack builds reads these entries (see `runtime::Session`), so the variant
//! is judged the way it runs.
//!
//! Each entry is one `metadata_props` pair whose key is [`SESSION_ENTRY_PREFIX`] followed
//! by the ONNX Runtime session-config key, e.g.
//! `edgepack.session_config.session.disable_quant_qdq` = `1`. Other tools ignore them.

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;

use super::proto::{ModelProto, StringStringEntryProto};
use crate::error::{Error, Result};

/// Prefix of the `metadata_props` keys that carry ONNX Runtime session entries.
pub const SESSION_ENTRY_PREFIX: &str = "edgepack.session_config.";

/// The session entries `proto` records (prefix stripped), in key order.
pub fn session_entries(proto: &ModelProto) -> BTreeMap<String, String> {
    entries_of(&proto.metadata_props)
}

fn entries_of(props: &[StringStringEntryProto]) -> BTreeMap<String, String> {
    props
        .iter()
        .filter_map(|p| {
            p.key
                .strip_prefix(SESSION_ENTRY_PREFIX)
                .filter(|k| !k.is_empty())
                .map(|k| (k.to_string(), p.value.clone()))
        })
        .collect()
}

/// Record `entries` in `proto`, replacing any session entries it recorded before; other
/// metadata is kept as it is.
pub fn set_session_entries(proto: &mut ModelProto, entries: &BTreeMap<String, String>) {
    proto
        .metadata_props
        .retain(|p| !p.key.starts_with(SESSION_ENTRY_PREFIX));
    proto
        .metadata_props
        .extend(entries.iter().map(|(k, v)| StringStringEntryProto {
            key: format!("{SESSION_ENTRY_PREFIX}{k}"),
            value: v.clone(),
        }));
}

/// Only `ModelProto.metadata_props` (field 14): decoding skips the graph's bytes without
/// building it, so reading a large model's entries costs one file read, not a full decode.
#[derive(Clone, PartialEq, Message)]
struct MetadataOnly {
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntryProto>,
}

/// The session entries recorded in the model file at `path`.
pub fn read_session_entries(path: &Path) -> Result<BTreeMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let m = MetadataOnly::decode(bytes.as_slice()).map_err(|e| {
        Error::file(
            path,
            format!("not a valid ONNX model (protobuf decoding failed: {e})"),
        )
    })?;
    Ok(entries_of(&m.metadata_props))
}

/// `k=v, k=v` for messages.
pub fn describe(entries: &BTreeMap<String, String>) -> String {
    entries
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder;

    #[test]
    fn session_entries_round_trip_through_the_file_and_replace_old_ones() {
        let mut m = builder::mlp(&[4, 3], 1);
        m.proto.metadata_props.push(StringStringEntryProto {
            key: "author".into(),
            value: "me".into(),
        });
        let mut e = BTreeMap::new();
        e.insert("session.disable_quant_qdq".to_string(), "1".to_string());
        e.insert("session.old".to_string(), "x".to_string());
        set_session_entries(&mut m.proto, &e);
        e.remove("session.old");
        set_session_entries(&mut m.proto, &e);
        assert_eq!(session_entries(&m.proto), e);
        assert!(m.proto.metadata_props.iter().any(|p| p.key == "author"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        m.save(&path).unwrap();
        assert_eq!(read_session_entries(&path).unwrap(), e);
        assert_eq!(describe(&e), "session.disable_quant_qdq=1");
    }

    #[test]
    fn a_model_without_entries_has_none() {
        let m = builder::mlp(&[4, 3], 1);
        assert!(session_entries(&m.proto).is_empty());
    }
}
