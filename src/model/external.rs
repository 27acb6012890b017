//! External data: tensors whose bytes live in files next to the model.
//!
//! A model file is untrusted input, and the ONNX ecosystem's history shows the attacks:
//! `../` and `sub/../..` traversal, absolute paths, symlinks and hardlinks pointing at
//! other files, offsets and lengths past the end of the file. Every reference is checked
//! against all of these *before any external byte is read*: a model either loads whole
//! from inside its own folder, or not at all.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use super::proto::tensor_proto::DataLocation;
use super::proto::{GraphProto, ModelProto, TensorProto};
use super::{for_each_graph, for_each_graph_mut, Model};
use crate::error::{Error, Result};

/// A validated reference to a byte range of a file inside the model's folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalRef {
    /// The `location` as written in the model.
    pub location: String,
    /// The resolved file path.
    pub path: PathBuf,
    pub offset: u64,
    pub length: u64,
}

/// Whether any tensor in the model stores its data externally.
pub fn has_external(proto: &ModelProto) -> bool {
    let mut found = false;
    if let Some(g) = proto.graph.as_ref() {
        for_each_graph(g, &mut |g| {
            found |= graph_tensors(g).any(is_external);
        });
    }
    found
}

/// Whether a tensor's data is stored externally.
pub fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(DataLocation::External as i32)
}

fn graph_tensors(g: &GraphProto) -> impl Iterator<Item = &TensorProto> {
    g.initializer
        .iter()
        .chain(
            g.sparse_initializer
                .iter()
                .flat_map(|s| s.values.iter().chain(s.indices.iter())),
        )
        .chain(g.node.iter().flat_map(|n| {
            n.attribute
                .iter()
                .flat_map(|a| a.t.iter().chain(a.tensors.iter()))
        }))
}

/// The names of external data files the model refers to (as written), sorted.
pub fn files(proto: &ModelProto) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    if let Some(g) = proto.graph.as_ref() {
        for_each_graph(g, &mut |g| {
            for t in graph_tensors(g).filter(|t| is_external(t)) {
                if let Some(loc) = t.external_data.iter().find(|e| e.key == "location") {
                    out.insert(loc.value.clone());
                }
            }
        });
    }
    out.into_iter().collect()
}

/// Check every external reference of a loaded model; read nothing.
pub fn validate(model: &Model) -> Result<Vec<ExternalRef>> {
    let mut refs = Vec::new();
    let mut err = None;
    let origin = model
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("<memory>"));
    if let Some(g) = model.proto.graph.as_ref() {
        for_each_graph(g, &mut |g| {
            for t in graph_tensors(g).filter(|t| is_external(t)) {
                if err.is_some() {
                    return;
                }
                match resolve(model, &origin, t) {
                    Ok(r) => refs.push(r),
                    Err(e) => err = Some(e),
                }
            }
        });
    }
    match err {
        Some(e) => Err(e),
        None => Ok(refs),
    }
}

/// Resolve and check one tensor's external reference.
fn resolve(model: &Model, origin: &Path, t: &TensorProto) -> Result<ExternalRef> {
    let fail = |msg: String| Error::file(origin, format!("tensor '{}': {msg}", t.name));
    let mut kv = BTreeMap::new();
    for e in &t.external_data {
        kv.insert(e.key.as_str(), e.value.as_str());
    }
    let location = *kv
        .get("location")
        .ok_or_else(|| fail("external data without a 'location'".into()))?;
    let parse = |key: &str| -> Result<Option<u64>> {
        kv.get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| fail(format!("external data {key} '{v}' is not a byte count")))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?;
    let rel = Path::new(location);
    if location.is_empty()
        || rel.is_absolute()
        || location.starts_with('/')
        || location.starts_with('\\')
    {
        return Err(fail(format!(
            "external data location '{location}' is absolute; it must be a file inside the model's folder"
        )));
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => {
                return Err(fail(format!(
                    "external data location '{location}' leaves the model's folder ('..' or a root); refused"
                )))
            }
        }
    }
    if location.split(['/', '\\']).any(|p| p == "..") {
        return Err(fail(format!(
            "external data location '{location}' contains '..'; refused"
        )));
    }
    let base = model.base_dir().ok_or_else(|| {
        fail("external data needs the model's folder: load the model from a file".into())
    })?;
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    // Walk component by component so that a symlinked folder is caught too.
    let mut path = base.to_path_buf();
    for c in rel.components() {
        if let Component::Normal(part) = c {
            path.push(part);
            let meta = fs::symlink_metadata(&path).map_err(|e| {
                fail(format!(
                    "external data file '{location}' cannot be opened: {e}"
                ))
            })?;
            if meta.file_type().is_symlink() {
                return Err(fail(format!(
                    "external data location '{location}' goes through a symlink; refused"
                )));
            }
        }
    }
    let meta = fs::symlink_metadata(&path)
        .map_err(|e| fail(format!("external data file '{location}': {e}")))?;
    if !meta.is_file() {
        return Err(fail(format!(
            "external data '{location}' is not a regular file"
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(fail(format!(
                "external data file '{location}' is a hardlink ({} links); refused",
                meta.nlink()
            )));
        }
    }
    let file_len = meta.len();
    let length = match length {
        Some(l) => l,
        None => file_len.checked_sub(offset).ok_or_else(|| {
            fail(format!(
                "external data offset {offset} is past the end of '{location}' ({file_len} bytes)"
            ))
        })?,
    };
    let end = offset
        .checked_add(length)
        .ok_or_else(|| fail("external data offset + length overflows".into()))?;
    if end > file_len {
        return Err(fail(format!(
            "external data range {offset}..{end} is past the end of '{location}' ({file_len} bytes)"
        )));
    }
    Ok(ExternalRef {
        location: location.to_string(),
        path,
        offset,
        length,
    })
}

/// Validate every reference, then read them all into `raw_data`.
pub fn inline_all(model: &mut Model) -> Result<()> {
    validate(model)?;
    let origin = model
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("<memory>"));
    let snapshot = model.clone();
    let mut err = None;
    if let Some(g) = model.proto.graph.as_mut() {
        for_each_graph_mut(g, &mut |g| {
            let tensors = g
                .initializer
                .iter_mut()
                .chain(
                    g.sparse_initializer
                        .iter_mut()
                        .flat_map(|s| s.values.iter_mut().chain(s.indices.iter_mut())),
                )
                .chain(g.node.iter_mut().flat_map(|n| {
                    n.attribute
                        .iter_mut()
                        .flat_map(|a| a.t.iter_mut().chain(a.tensors.iter_mut()))
                }));
            for t in tensors {
                if err.is_some() || !is_external(t) {
                    continue;
                }
                match resolve(&snapshot, &origin, t).and_then(|r| read_range(&r, &origin)) {
                    Ok(bytes) => {
                        t.raw_data = Some(bytes);
                        t.external_data.clear();
                        t.data_location = None;
                    }
                    Err(e) => err = Some(e),
                }
            }
        });
    }
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn read_range(r: &ExternalRef, origin: &Path) -> Result<Vec<u8>> {
    let mut f = fs::File::open(&r.path).map_err(|e| Error::io(&r.path, e))?;
    f.seek(SeekFrom::Start(r.offset))
        .map_err(|e| Error::io(&r.path, e))?;
    let len = usize::try_from(r.length).map_err(|_| {
        Error::file(
            origin,
            format!("external data '{}' is too large", r.location),
        )
    })?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).map_err(|e| Error::io(&r.path, e))?;
    Ok(buf)
}
