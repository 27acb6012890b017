//! Multiply-accumulates of Conv, ConvTranspose, MatMul and Gemm at inferred shapes,
//! including the compute inside `If`/`Loop` subgraphs.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{infer_from, Inference};
use crate::model::attr::{node_label, NodeExt};
use crate::model::graph::is_default_domain;
use crate::model::proto::{GraphProto, NodeProto};

/// Multiply-accumulate estimate at inferred shapes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Total multiply-accumulates of the sized compute nodes.
    pub macs: u64,
    /// 2 × `macs`.
    pub flops: u64,
    /// MACs by op type.
    pub macs_by_op: BTreeMap<String, u64>,
    /// Conv/ConvTranspose/MatMul/Gemm nodes that could not be sized, as `label (OpType)`.
    pub unsized_nodes: Vec<String>,
    /// How compute inside `If`/`Loop`/`Scan` subgraphs was counted (which branch, how
    /// many iterations), one line per such node that holds any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subgraphs: Vec<String>,
}

const COMPUTE_OPS: [&str; 4] = ["Conv", "ConvTranspose", "MatMul", "Gemm"];

/// Whether `g` (or a subgraph of it) holds a counted compute node.
fn has_compute(g: &GraphProto) -> bool {
    g.node.iter().any(|n| {
        COMPUTE_OPS.contains(&n.op_type.as_str())
            || n.attribute
                .iter()
                .filter_map(|a| a.g.as_ref())
                .any(has_compute)
    })
}

fn subgraph<'a>(n: &'a NodeProto, name: &str) -> Option<&'a GraphProto> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.g.as_ref())
}

/// Add `sub` (the cost of one subgraph) to `c`, `times` times, its unsized nodes prefixed.
fn add_cost(c: &mut Cost, sub: &Cost, times: u64, prefix: &str) {
    c.macs = c.macs.saturating_add(sub.macs.saturating_mul(times));
    for (op, m) in &sub.macs_by_op {
        let e = c.macs_by_op.entry(op.clone()).or_insert(0);
        *e = e.saturating_add(m.saturating_mul(times));
    }
    c.unsized_nodes
        .extend(sub.unsized_nodes.iter().map(|u| format!("{prefix}/{u}")));
    c.subgraphs.extend(sub.subgraphs.iter().cloned());
}

/// The compute of an `If`, `Loop` or `Scan` node's subgraphs (issue 17 bug 6: Silero VAD
/// keeps all of its compute inside `If` branches, where a main-graph count sees 0).
/// `If`: the branch a condition known from the shapes picks, else the larger branch (only
/// one runs), and the note says which. `Loop`:
/// the body times the trip count when it is a known constant; otherwise the body's nodes
/// are reported unsized, so the total is "unknown", never an undercount. `Scan`: not
/// sized (its body sees slices), reported unsized.
fn subgraph_cost(n: &NodeProto, inf: &Inference, c: &mut Cost) {
    let label = node_label(n);
    let sub_inf =
        |g: &GraphProto, extra: BTreeMap<String, Vec<i64>>| infer_from(g, &extra, inf.clone());
    match n.op_type.as_str() {
        "If" => {
            let branches: Vec<(&str, Cost)> = ["then_branch", "else_branch"]
                .iter()
                .filter_map(|b| subgraph(n, b).map(|g| (*b, g)))
                .filter(|(_, g)| has_compute(g))
                .map(|(b, g)| (b, cost(g, &sub_inf(g, BTreeMap::new()))))
                .collect();
            // A condition known from the shapes picks its branch; else the larger one.
            let known = super::known_branch(n, inf);
            let pick = match known {
                Some(k) => branches.iter().find(|(b, _)| *b == k),
                None => branches.iter().max_by_key(|(_, k)| k.macs),
            };
            let Some((name, big)) = pick else {
                return;
            };
            let all: Vec<String> = branches
                .iter()
                .map(|(b, k)| format!("{b} {} MACs", k.macs))
                .collect();
            let why = if known.is_some() {
                format!("the branch its condition picks ({name}) counted, the condition known from the shapes")
            } else {
                format!("the larger branch ({name}) counted, as only one runs")
            };
            c.subgraphs
                .push(format!("If {label}: {why} ({})", all.join(", ")));
            add_cost(c, big, 1, &format!("{label}/{name}"));
        }
        "Loop" => {
            let Some(body) = subgraph(n, "body").filter(|g| has_compute(g)) else {
                return;
            };
            // Body inputs: iteration number, condition, then the loop-carried values.
            let mut extra = BTreeMap::new();
            for (i, vi) in body.input.iter().enumerate() {
                let shape = match i {
                    0 | 1 => Some(vec![]),
                    _ => n.input.get(i).and_then(|x| inf.shapes.get(x)).cloned(),
                };
                if let Some(s) = shape {
                    extra.insert(vi.name.clone(), s);
                }
            }
            let per = cost(body, &sub_inf(body, extra));
            let trips = n
                .input
                .first()
                .filter(|m| !m.is_empty())
                .and_then(|m| inf.values.get(m))
                .and_then(|v| v.first().copied())
                .and_then(|t| u64::try_from(t).ok());
            match trips {
                Some(t) => {
                    c.subgraphs.push(format!(
                        "Loop {label}: body counted {t} times ({} MACs per iteration)",
                        per.macs
                    ));
                    add_cost(c, &per, t, &format!("{label}/body"));
                }
                None => {
                    c.subgraphs.push(format!(
                        "Loop {label}: trip count unknown ({} MACs per iteration), total unknown",
                        per.macs
                    ));
                    c.unsized_nodes
                        .push(format!("{label} (Loop: trip count unknown)"));
                }
            }
        }
        _ => {
            if n.attribute
                .iter()
                .filter_map(|a| a.g.as_ref())
                .any(has_compute)
            {
                c.subgraphs.push(format!(
                    "{} {label}: subgraph compute not counted",
                    n.op_type
                ));
                c.unsized_nodes
                    .push(format!("{label} ({}: subgraph not sized)", n.op_type));
            }
        }
    }
}

/// MACs of one node at the inferred shapes (`None` if not a counted op or not sized).
pub fn node_macs(n: &NodeProto, inf: &Inference) -> Option<u64> {
    let s = |i: usize| n.input.get(i).and_then(|name| inf.shapes.get(name));
    let out = n.output.first().and_then(|o| inf.shapes.get(o))?;
    let prod = |v: &[i64]| -> Option<u64> {
        v.iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
    };
    match n.op_type.as_str() {
        "Conv" => {
            // Every output element sums C/group × kernel products: that is W's dims 1..
            let w = s(1)?;
            prod(out)?.checked_mul(prod(w.get(1..)?)?)
        }
        "ConvTranspose" => {
            // Every input element scatters into (M/group) × kernel outputs: W's dims 1..
            let x = s(0)?;
            let w = s(1)?;
            prod(x)?.checked_mul(prod(w.get(1..)?)?)
        }
        "MatMul" => {
            let a = s(0)?;
            let k = *a.last()?;
            prod(out)?.checked_mul(u64::try_from(k).ok()?)
        }
        "Gemm" => {
            let a = s(0)?;
            let k = if n.attr_i_or("transA", 0).ok()? != 0 {
                a.first()?
            } else {
                a.last()?
            };
            prod(out)?.checked_mul(u64::try_from(*k).ok()?)
        }
        _ => None,
    }
}

/// Count MACs/FLOPs of Conv, ConvTranspose, MatMul and Gemm in the main graph.
pub fn cost(graph: &GraphProto, inf: &Inference) -> Cost {
    let mut c = Cost::default();
    for n in &graph.node {
        if is_default_domain(&n.domain) && n.attribute.iter().any(|a| a.g.is_some()) {
            subgraph_cost(n, inf, &mut c);
            continue;
        }
        if !is_default_domain(&n.domain)
            || !matches!(
                n.op_type.as_str(),
                "Conv" | "ConvTranspose" | "MatMul" | "Gemm"
            )
        {
            continue;
        }
        match node_macs(n, inf) {
            Some(m) => {
                c.macs = c.macs.saturating_add(m);
                let by_op = c.macs_by_op.entry(n.op_type.clone()).or_insert(0);
                *by_op = by_op.saturating_add(m);
            }
            None => c
                .unsized_nodes
                .push(format!("{} ({})", node_label(n), n.op_type)),
        }
    }
    c.flops = c.macs.saturating_mul(2);
    c
}
