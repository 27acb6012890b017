//! Per-op time shares from ONNX Runtime's own profiler.
//!
//! ONNX Runtime writes a Chrome-trace JSON array when profiling is on. Node execution
//! events have `"cat": "Node"`, a `name` of `<node name>_kernel_time`, a duration `dur` in
//! microseconds and `args.op_name` / `args.provider`. Other node events (`_fence_before`,
//! `_fence_after`) and session events are skipped. Shares are each entry's kernel time
//! over the total kernel time of all nodes, so they add up to 1 per kind.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::schema::OpShare;
use crate::error::{Error, Result};

const KERNEL_SUFFIX: &str = "_kernel_time";

/// Parse an ONNX Runtime profile and return the top `top` op types (`kind = "op"`), the top
/// `top` nodes (`kind = "node"`) and the time share of every execution provider
/// (`kind = "provider"`), each sorted by time, largest first. `path` names the profile
/// file in errors.
pub fn top_shares(path: &Path, json: &str, top: usize) -> Result<Vec<OpShare>> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| Error::file(path, format!("not an ONNX Runtime profile: {e}")))?;
    let events = v.as_array().ok_or_else(|| {
        Error::file(
            path,
            "not an ONNX Runtime profile: expected a JSON array of events",
        )
    })?;
    // (total µs, calls, op type)
    let mut by_op: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    let mut by_node: BTreeMap<String, (f64, u64, String)> = BTreeMap::new();
    let mut by_provider: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    let mut total_us = 0.0;
    for e in events {
        if e.get("cat").and_then(Value::as_str) != Some("Node") {
            continue;
        }
        let Some(node) = e
            .get("name")
            .and_then(Value::as_str)
            .and_then(|n| n.strip_suffix(KERNEL_SUFFIX))
        else {
            continue;
        };
        let dur = e.get("dur").and_then(Value::as_f64).unwrap_or(0.0);
        let args = e.get("args");
        let op = args
            .and_then(|a| a.get("op_name"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let provider = args
            .and_then(|a| a.get("provider"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        total_us += dur;
        let o = by_op.entry(op.clone()).or_default();
        o.0 += dur;
        o.1 += 1;
        let n = by_node
            .entry(node.to_string())
            .or_insert((0.0, 0, op.clone()));
        n.0 += dur;
        n.1 += 1;
        let p = by_provider.entry(provider).or_default();
        p.0 += dur;
        p.1 += 1;
    }
    if total_us <= 0.0 {
        return Err(Error::file(path, "the profile has no node kernel timings"));
    }
    let share = |kind: &str, name: String, op_type: Option<String>, us: f64, calls: u64| OpShare {
        kind: kind.into(),
        name,
        op_type,
        total_s: us * 1e-6,
        share: us / total_us,
        calls,
    };
    let mut ops: Vec<OpShare> = by_op
        .into_iter()
        .map(|(k, (us, c))| share("op", k, None, us, c))
        .collect();
    let mut nodes: Vec<OpShare> = by_node
        .into_iter()
        .map(|(k, (us, c, op))| share("node", k, Some(op), us, c))
        .collect();
    let mut providers: Vec<OpShare> = by_provider
        .into_iter()
        .map(|(k, (us, c))| share("provider", k, None, us, c))
        .collect();
    for v in [&mut ops, &mut nodes, &mut providers] {
        v.sort_by(|a, b| b.total_s.total_cmp(&a.total_s).then(a.name.cmp(&b.name)));
    }
    ops.truncate(top);
    nodes.truncate(top);
    ops.extend(nodes);
    ops.extend(providers);
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shape of ONNX Runtime 1.31's profile events (hand-written, trimmed args).
    const PROFILE: &str = r#"[
      {"cat":"Session","name":"session_initialization","dur":200000,"args":{}},
      {"cat":"Node","name":"conv1_fence_before","dur":1,"args":{"op_name":"Conv"}},
      {"cat":"Node","name":"conv1_kernel_time","dur":600,"args":{"op_name":"Conv","provider":"CPUExecutionProvider"}},
      {"cat":"Node","name":"conv2_kernel_time","dur":200,"args":{"op_name":"Conv","provider":"CPUExecutionProvider"}},
      {"cat":"Node","name":"relu_kernel_time","dur":100,"args":{"op_name":"Relu","provider":"CPUExecutionProvider"}},
      {"cat":"Node","name":"conv1_kernel_time","dur":100,"args":{"op_name":"Conv","provider":"CPUExecutionProvider"}},
      {"cat":"Session","name":"model_run","dur":1000,"args":{}}
    ]"#;

    #[test]
    fn aggregates_kernel_time_by_op_node_and_provider() {
        let s = top_shares(Path::new("p.json"), PROFILE, 10).unwrap();
        let get = |kind: &str, name: &str| {
            s.iter()
                .find(|x| x.kind == kind && x.name == name)
                .unwrap()
                .clone()
        };
        let conv = get("op", "Conv");
        assert_eq!(conv.calls, 3);
        assert!((conv.total_s - 900e-6).abs() < 1e-12);
        assert!((conv.share - 0.9).abs() < 1e-12);
        let n = get("node", "conv1");
        assert_eq!((n.calls, n.op_type.as_deref()), (2, Some("Conv")));
        assert!((n.share - 0.7).abs() < 1e-12);
        assert!((get("provider", "CPUExecutionProvider").share - 1.0).abs() < 1e-12);
        // largest first
        assert_eq!(s[0].name, "Conv");
    }

    #[test]
    fn keeps_only_the_top_entries() {
        let s = top_shares(Path::new("p.json"), PROFILE, 1).unwrap();
        assert_eq!(s.iter().filter(|x| x.kind == "op").count(), 1);
        assert_eq!(s.iter().filter(|x| x.kind == "node").count(), 1);
    }

    #[test]
    fn rejects_what_is_not_a_profile() {
        assert!(top_shares(Path::new("p.json"), "{}", 5)
            .unwrap_err()
            .to_string()
            .contains("JSON array"));
        assert!(top_shares(Path::new("p.json"), "[]", 5)
            .unwrap_err()
            .to_string()
            .contains("no node kernel"));
        assert!(top_shares(Path::new("p.json"), "nope", 5).is_err());
    }
}
