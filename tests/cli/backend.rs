//! Walking the ONNX backend test data (from the pinned `onnx` wheel, cached by
//! `edgepack::zoo`): the cases, their `input_*.pb` feeds and `output_*.pb` expectations,
//! and ONNX Runtime's reason for refusing a model. Shared by the suites that run every
//! backend model (`roundtrip`, `fp16_suite`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use edgepack::runtime::Session;
use edgepack::tensor::{pb, Tensor};

/// One backend test case: its model and its `test_data_set_*` folders.
pub struct Case {
    pub name: String,
    pub model: PathBuf,
    pub data_sets: Vec<PathBuf>,
}

/// Every case of the backend test data under `root`, by kind then name.
pub fn cases(root: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    for kind in [
        "node",
        "simple",
        "pytorch-converted",
        "pytorch-operator",
        "light",
    ] {
        let Ok(rd) = std::fs::read_dir(root.join(kind)) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            let (model, data_sets) = if p.is_dir() {
                let mut sets: Vec<PathBuf> = std::fs::read_dir(&p)
                    .unwrap()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|d| d.is_dir())
                    .collect();
                sets.sort();
                (p.join("model.onnx"), sets)
            } else if p.extension().is_some_and(|e| e == "onnx") {
                (p.clone(), Vec::new())
            } else {
                continue;
            };
            if model.is_file() {
                out.push(Case {
                    name: format!("{kind}/{}", p.file_name().unwrap().to_string_lossy()),
                    model,
                    data_sets,
                });
            }
        }
    }
    out
}

/// The `PREFIX_N.pb` files of a data set in index order (`_10` after `_9`).
fn numbered(set: &Path, prefix: &str) -> Option<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(set)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".pb"))
        })
        .collect();
    files.sort_by_key(|p| {
        p.file_stem().unwrap().to_string_lossy()[prefix.len()..]
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    Some(files)
}

/// The data set's inputs, named after the session's inputs where the file has no name;
/// `None` when they do not line up (optional inputs left out, non-tensor inputs).
pub fn read_inputs(set: &Path, session: &Session) -> Option<Vec<(String, Tensor)>> {
    let files = numbered(set, "input_")?;
    let specs = session.inputs();
    if files.len() != specs.len() {
        return None;
    }
    let mut out = Vec::new();
    for (f, spec) in files.iter().zip(specs) {
        let (name, t) = pb::read_pb(f).ok()?;
        let name = if name.is_empty() {
            spec.name.clone()
        } else {
            name
        };
        out.push((name, t));
    }
    Some(out)
}

/// The data set's expected outputs in graph order; `None` when one is not a plain tensor.
pub fn read_outputs(set: &Path) -> Option<Vec<Tensor>> {
    numbered(set, "output_")?
        .iter()
        .map(|f| pb::read_pb(f).ok().map(|(_, t)| t))
        .collect()
}

/// ONNX Runtime's reason for refusing a model, from a session error: its first line, short.
pub fn ort_reason(e: &edgepack::Error) -> String {
    let reason = e.to_string();
    let reason = reason
        .rsplit("cannot create a session: ")
        .next()
        .unwrap_or("");
    reason
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(140)
        .collect()
}
