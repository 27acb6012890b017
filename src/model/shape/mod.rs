//! Best-effort static shape inference and a MACs/FLOPs estimate.
//!
//! Given concrete shapes for the real inputs (from `--shape NAME=1x3x224x224` and
//! `--dim SYMBOL=N`, parsed by `crate::inputs`), [`infer`] walks the main graph in topological order and sizes every
//! tensor it can. It covers the ops that dominate edge vision and OCR models (convolutions,
//! pools, elementwise ops with broadcasting, normalisation, Concat, Reshape, Flatten,
//! Transpose, MatMul, Gemm, Resize, Slice, reductions) and propagates small integer
//! values through `Shape -> Gather -> Concat -> Reshape` chains, which is how exported
//! models compute dynamic shapes. What it cannot size it says so ([`Inference::unsized_nodes`])
//! instead of guessing; downstream tensors of such a node stay unknown.
//!
//! Each op's rule is a short function in the file of its family (`values.rs`: the integer
//! tensors of shape arithmetic; `elementwise.rs`; `window.rs`: convolutions, pools,
//! resampling; `reduce.rs`: matrix products and reductions; `layout.rs`: reshaping,
//! slicing, joining, indexing), and one table (`rule`) maps an op type to its rule. A new
//! op is a rule in its family's file and a line in that table.
//!
//! [`cost`] then counts multiply-accumulates of Conv, ConvTranspose, MatMul and Gemm at
//! those shapes (FLOPs = 2 × MACs; bias adds, activations and pools are not counted,
//! as is customary), listing the compute nodes it could not size.
//!
//! ```
//! use std::collections::BTreeMap;
//! use edgepack::model::{builder, shape};
//! let m = builder::symbolic_batch(1);
//! let inputs = BTreeMap::from([("x".to_string(), vec![2, 3, 16, 16])]);
//! let inf = shape::infer(m.graph(), &inputs);
//! assert_eq!(inf.shapes["y"], vec![2, 10]);
//! let cost = shape::cost(m.graph(), &inf);
//! assert!(cost.macs > 0 && cost.unsized_nodes.is_empty());
//! # Ok::<(), edgepack::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};

use super::attr::{node_label, NodeExt};
use super::graph::{is_default_domain, GraphIndex};
use super::proto::{GraphProto, NodeProto};
use super::tensor_data;

mod cost;
mod elementwise;
mod layout;
mod reduce;
mod values;
mod window;

#[cfg(test)]
mod tests;

pub use cost::{cost, node_macs, Cost};

/// The result of shape inference.
#[derive(Clone, Debug, Default)]
pub struct Inference {
    /// Tensor name -> concrete shape, for every tensor that could be sized.
    pub shapes: HashMap<String, Vec<i64>>,
    /// Small integer tensors whose values are known (shape arithmetic).
    pub values: HashMap<String, Vec<i64>>,
    /// Nodes whose outputs could not be sized, as `label (OpType)`, in graph order.
    pub unsized_nodes: Vec<String>,
}

/// Largest integer tensor whose values are tracked (shape vectors are tiny).
const MAX_TRACKED_VALUES: usize = 64;

/// Infer shapes of the main graph from concrete input shapes.
pub fn infer(graph: &GraphProto, inputs: &BTreeMap<String, Vec<i64>>) -> Inference {
    infer_from(graph, inputs, Inference::default())
}

/// [`infer`] starting from what is known already: for a subgraph (an `If` branch, a
/// `Loop` body), the enclosing graph's shapes and values, which its nodes may use.
pub fn infer_from(
    graph: &GraphProto,
    inputs: &BTreeMap<String, Vec<i64>>,
    outer: Inference,
) -> Inference {
    let index = GraphIndex::new(graph);
    let mut inf = outer;
    inf.unsized_nodes.clear();
    for (k, v) in inputs {
        inf.shapes.insert(k.clone(), v.clone());
    }
    for t in &graph.initializer {
        inf.shapes.insert(t.name.clone(), t.dims.clone());
        track_value(&mut inf, &t.name, t);
    }
    let order = match index.topo_order() {
        Ok(o) => o,
        Err(_) => (0..graph.node.len()).collect(),
    };
    for i in order {
        let n = &graph.node[i];
        let sized = if is_default_domain(&n.domain) {
            infer_node(n, &index, &mut inf)
        } else {
            None
        };
        match sized {
            // A negative or overflowing size means the file lied somewhere: unsized.
            Some(outs) if outs.iter().all(|s| numel(s).is_some()) => {
                for (name, s) in n.output.iter().zip(outs) {
                    if !name.is_empty() {
                        inf.shapes.insert(name.clone(), s);
                    }
                }
            }
            _ => inf
                .unsized_nodes
                .push(format!("{} ({})", node_label(n), n.op_type)),
        }
    }
    inf
}

/// The shape rule of an op: the shapes of a node's outputs, or `None` when it cannot be
/// sized. A rule may also record the values of small integer outputs.
type Rule = fn(&mut Node) -> Outputs;

/// Output shapes of one node (`None`: unsized).
type Outputs = Option<Vec<Vec<i64>>>;

/// The one table from op type to shape rule, by op family. An op missing here is
/// reported unsized, never guessed.
fn rule(op: &str) -> Option<Rule> {
    let rule: Rule = match op {
        // Values of shape arithmetic (values.rs).
        "Constant" => values::constant,
        "Shape" => values::shape,
        "Size" => values::size,
        "ConstantOfShape" => values::constant_of_shape,
        "Range" => values::range,
        // Elementwise and broadcasting (elementwise.rs).
        op if elementwise::SAME_SHAPE.contains(&op) => elementwise::same_shape,
        op if elementwise::BROADCASTING.contains(&op) => elementwise::broadcasting,
        "Expand" => elementwise::expand,
        // Convolutions, pools, resampling (window.rs).
        "Conv" => window::conv,
        "ConvTranspose" => window::conv_transpose,
        "MaxPool" | "AveragePool" | "LpPool" => window::pool,
        "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => window::global_pool,
        "Resize" | "Upsample" => window::resize,
        "GridSample" => window::grid_sample,
        "DepthToSpace" | "SpaceToDepth" => window::depth_space,
        // Matrix products and reductions (reduce.rs).
        "MatMul" | "MatMulInteger" | "QLinearMatMul" => reduce::matmul,
        "Gemm" => reduce::gemm,
        "LSTM" | "GRU" | "RNN" => reduce::recurrent,
        // Control flow: the shapes an `If`'s branches agree on.
        "If" => if_outputs,
        op if reduce::REDUCTIONS.contains(&op) => reduce::reduction,
        "TopK" => reduce::top_k,
        // Shape and layout (layout.rs).
        "Concat" => layout::concat,
        "Reshape" => layout::reshape,
        "Flatten" => layout::flatten,
        "Transpose" => layout::transpose,
        "Unsqueeze" => layout::unsqueeze,
        "Squeeze" => layout::squeeze,
        "Slice" => layout::slice,
        "Pad" => layout::pad,
        "Tile" => layout::tile,
        "Split" => layout::split,
        "Gather" => layout::gather,
        "GatherElements" => layout::gather_elements,
        _ => return None,
    };
    Some(rule)
}

/// `If`: the branch the condition picks where its value is known, else the shapes both
/// branches agree on (only one runs, and which one is data): each branch inferred with
/// the enclosing graph's shapes, which its nodes may use.
fn if_outputs(node: &mut Node) -> Outputs {
    let branch = |name: &str| {
        node.n
            .attribute
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.g.as_ref())
    };
    let (then_g, else_g) = (branch("then_branch")?, branch("else_branch")?);
    let outer = &*node.inf;
    let outputs = |g: &GraphProto| -> Outputs {
        let inf = infer_from(g, &BTreeMap::new(), outer.clone());
        g.output
            .iter()
            .map(|o| inf.shapes.get(&o.name).cloned())
            .collect()
    };
    match known_branch(node.n, outer) {
        Some("then_branch") => outputs(then_g),
        Some(_) => outputs(else_g),
        None => {
            let a = outputs(then_g)?;
            (outputs(else_g)? == a).then_some(a)
        }
    }
}

/// The branch (`then_branch` / `else_branch`) an `If` node takes when shape inference
/// knows its condition's value (a test on a shape), else `None`: then which branch runs is
/// data.
pub fn known_branch(n: &NodeProto, inf: &Inference) -> Option<&'static str> {
    let c = n
        .input
        .first()
        .and_then(|c| inf.values.get(c))
        .and_then(|v| v.first().copied())?;
    Some(if c != 0 { "then_branch" } else { "else_branch" })
}

/// Shapes of a node's outputs by its op's rule, or `None` when it cannot be sized.
fn infer_node(n: &NodeProto, index: &GraphIndex, inf: &mut Inference) -> Outputs {
    rule(&n.op_type)?(&mut Node { n, index, inf })
}

/// What a shape rule sees: the node, the graph's constants, and what is known so far.
struct Node<'a, 'g> {
    n: &'a NodeProto,
    index: &'a GraphIndex<'g>,
    inf: &'a mut Inference,
}

impl Node<'_, '_> {
    fn op(&self) -> &str {
        &self.n.op_type
    }

    /// The name of the first output (empty when there is none).
    fn out0(&self) -> String {
        self.n.output.first().cloned().unwrap_or_default()
    }

    fn input(&self, i: usize) -> Option<&String> {
        self.n.input.get(i).filter(|s| !s.is_empty())
    }

    /// The shape of input `i`, if it is present and sized.
    fn shape(&self, i: usize) -> Option<Vec<i64>> {
        self.input(i).and_then(|s| self.inf.shapes.get(s).cloned())
    }

    /// The values of input `i`, if it is a small integer tensor whose values are known.
    fn value(&self, i: usize) -> Option<Vec<i64>> {
        self.input(i).and_then(|s| self.inf.values.get(s).cloned())
    }

    /// Record the values of the first output.
    fn set_value(&mut self, v: Vec<i64>) {
        self.inf.values.insert(self.out0(), v);
    }
}

fn one(s: Vec<i64>) -> Outputs {
    Some(vec![s])
}

/// Record a small constant's values. Integer tensors always; float ones only where every
/// value is a whole number (exported detectors build their anchor grids with a float
/// `Range(0.0, Cast(Shape(...)), 1.0)`, which can be sized only from those values). A
/// float with a fraction is not recorded: values are whole numbers.
fn track_value(inf: &mut Inference, name: &str, t: &super::proto::TensorProto) {
    let small = tensor_data::element_count(t).is_ok_and(|n| n <= MAX_TRACKED_VALUES);
    if !small {
        return;
    }
    let v = tensor_data::to_i64(t).ok().or_else(|| {
        tensor_data::to_f64(t)
            .ok()?
            .into_iter()
            .map(|x| (x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64))
            .collect()
    });
    if let Some(v) = v {
        inf.values.insert(name.to_string(), v);
    }
}

/// Element count, `None` on overflow or a negative dim.
fn numel(s: &[i64]) -> Option<i64> {
    s.iter().try_fold(
        1i64,
        |acc, &d| if d < 0 { None } else { acc.checked_mul(d) },
    )
}

/// Normalise a possibly negative axis for a rank.
fn axis(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

/// Numpy-style broadcast of several shapes.
pub fn broadcast(shapes: &[&[i64]]) -> Option<Vec<i64>> {
    let rank = shapes.iter().map(|s| s.len()).max()?;
    let mut out = vec![1i64; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// Axes from an attribute (older opsets) or an input (newer ones).
fn axes_of(n: &NodeProto, input: usize, inf: &Inference) -> Option<Option<Vec<i64>>> {
    if let Ok(Some(a)) = n.attr_opt_ints("axes") {
        return Some(Some(a));
    }
    match n.input.get(input).filter(|s| !s.is_empty()) {
        None => Some(None),
        Some(name) => inf.values.get(name).cloned().map(Some),
    }
}

/// Numpy matmul output shape.
pub fn matmul_shape(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let a2: Vec<i64> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<i64> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k1) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, nn) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k1 != k2 {
        return None;
    }
    let batch = broadcast(&[&a2[..a2.len() - 2], &b2[..b2.len() - 2]])?;
    let mut out = batch;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(nn);
    }
    Some(out)
}
