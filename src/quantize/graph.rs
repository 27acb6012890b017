//! The small slice of graph plumbing the quantizer needs: typed tensor and attribute
//! access, a producer/consumer index, topological ordering and labelled patches.
//!
//! Why here and not in `model/`: the shared graph index and patch API (issue 2) were not
//! merged when the quantizer was written. Everything in this file is deliberately small
//! and self-contained so it can be swapped for `model::graph` / `model::patch` with no
//! change to the passes that use it: passes only ever build a [`Patch`] and hand it to
//! [`Patch::apply`], which validates it and applies it as one step.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::model::proto::attribute_proto::AttributeType;
use crate::model::proto::{type_proto, AttributeProto, TypeProto};
use crate::model::{DataType, GraphProto, NodeProto, TensorProto, ValueInfoProto};

/// A human name for a node in error messages: its name, else its first output.
pub fn node_label(node: &NodeProto) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else {
        node.output.first().cloned().unwrap_or_default()
    }
}

/// The error for a malformed node.
pub fn node_error(node: &NodeProto, message: impl Into<String>) -> Error {
    Error::node(node_label(node), node.op_type.clone(), message)
}

/// Attribute `name` of `node`, if present.
pub fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// Integer attribute, with a default.
pub fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).and_then(|a| a.i).unwrap_or(default)
}

/// Float attribute, with a default.
pub fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).and_then(|a| a.f).unwrap_or(default)
}

/// Integer-list attribute (empty when absent).
pub fn attr_ints(node: &NodeProto, name: &str) -> Vec<i64> {
    attr(node, name).map(|a| a.ints.clone()).unwrap_or_default()
}

/// Build an integer attribute.
pub fn make_attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

/// Build a float attribute.
pub fn make_attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

/// Build a node in the default domain.
pub fn make_node(
    op_type: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op_type.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

/// A float tensor value-info with unknown shape (used for extra calibration outputs).
pub fn float_value_info(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: None,
            })),
            denotation: String::new(),
        }),
        ..Default::default()
    }
}

/// The rank declared for `name` in the graph's inputs, outputs or value_info.
pub fn declared_rank(graph: &GraphProto, name: &str) -> Option<usize> {
    graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
        .find(|v| v.name == name)
        .and_then(|v| match v.r#type.as_ref()?.value.as_ref()? {
            type_proto::Value::TensorType(t) => t.shape.as_ref().map(|s| s.dim.len()),
            _ => None,
        })
}

/// Number of elements from `dims`.
fn element_count(t: &TensorProto) -> Result<usize> {
    t.dims.iter().try_fold(1usize, |acc, &d| {
        usize::try_from(d)
            .ok()
            .and_then(|d| acc.checked_mul(d))
            .ok_or_else(|| {
                Error::input(t.name.clone(), format!("invalid tensor dims {:?}", t.dims))
            })
    })
}

/// A float32 tensor's elements (raw_data or float_data).
pub fn tensor_f32(t: &TensorProto) -> Result<Vec<f32>> {
    if t.data_type != Some(DataType::Float as i32) {
        return Err(Error::input(
            t.name.clone(),
            format!(
                "expected a float32 tensor, found data type {}",
                t.data_type.unwrap_or(0)
            ),
        ));
    }
    let n = element_count(t)?;
    let v: Vec<f32> = match &t.raw_data {
        Some(raw) => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        None => t.float_data.clone(),
    };
    if !t.external_data.is_empty() {
        return Err(Error::input(
            t.name.clone(),
            "tensor data is external and was not loaded",
        ));
    }
    if v.len() != n {
        return Err(Error::input(
            t.name.clone(),
            format!("holds {} values, its dims {:?} need {n}", v.len(), t.dims),
        ));
    }
    Ok(v)
}

/// An int64 tensor's elements (raw_data or int64_data).
pub fn tensor_i64(t: &TensorProto) -> Result<Vec<i64>> {
    if t.data_type != Some(DataType::Int64 as i32) {
        return Err(Error::input(t.name.clone(), "expected an int64 tensor"));
    }
    let v: Vec<i64> = match &t.raw_data {
        Some(raw) => raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        None => t.int64_data.clone(),
    };
    Ok(v)
}

/// A tensor from raw little-endian bytes.
pub fn tensor_raw(name: &str, data_type: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: Some(data_type as i32),
        dims: dims.to_vec(),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// A float32 tensor.
pub fn tensor_from_f32(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    tensor_raw(
        name,
        DataType::Float,
        dims,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

/// An int64 tensor.
pub fn tensor_from_i64(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    tensor_raw(
        name,
        DataType::Int64,
        dims,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

/// The value of a scalar (or one-element) float initializer.
pub fn scalar_f32(inits: &HashMap<String, &TensorProto>, name: &str) -> Option<f32> {
    let t = inits.get(name)?;
    let v = tensor_f32(t).ok()?;
    (v.len() == 1).then(|| v[0])
}

/// Who produces and who consumes each tensor of one graph.
#[derive(Debug, Default)]
pub struct GraphIndex {
    /// Tensor name -> index of the node producing it.
    pub producer: HashMap<String, usize>,
    /// Tensor name -> indices of the nodes reading it (once per node).
    pub consumers: HashMap<String, Vec<usize>>,
    /// Names of the graph outputs.
    pub graph_outputs: HashSet<String>,
}

impl GraphIndex {
    /// Index `graph`.
    pub fn new(graph: &GraphProto) -> Self {
        let mut ix = GraphIndex::default();
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                if !o.is_empty() {
                    ix.producer.insert(o.clone(), i);
                }
            }
            let mut seen = HashSet::new();
            for inp in &n.input {
                if !inp.is_empty() && seen.insert(inp.as_str()) {
                    ix.consumers.entry(inp.clone()).or_default().push(i);
                }
            }
            // Subgraph inputs from the outer scope count as consumers too.
            for a in &n.attribute {
                for g in a.g.iter().chain(&a.graphs) {
                    for name in outer_scope_reads(g) {
                        ix.consumers.entry(name).or_default().push(i);
                    }
                }
            }
        }
        ix.graph_outputs = graph.output.iter().map(|o| o.name.clone()).collect();
        ix
    }

    /// Nodes reading `name`.
    pub fn consumers_of(&self, name: &str) -> &[usize] {
        self.consumers.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether `name` is read by exactly one node and is not a graph output.
    pub fn single_use(&self, name: &str) -> bool {
        self.consumers_of(name).len() == 1 && !self.graph_outputs.contains(name)
    }
}

/// Every tensor name a subgraph reads (conservatively: all its node inputs).
fn outer_scope_reads(g: &GraphProto) -> Vec<String> {
    let mut v = Vec::new();
    for n in &g.node {
        v.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
        for a in &n.attribute {
            for sg in a.g.iter().chain(&a.graphs) {
                v.extend(outer_scope_reads(sg));
            }
        }
    }
    v
}

/// Order nodes so every node comes after the producers of its inputs (Kahn's algorithm,
/// stable: among ready nodes the original order wins). Errors on a cycle.
pub fn topo_sort(graph: &mut GraphProto) -> Result<()> {
    let n = graph.node.len();
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for o in &node.output {
            if !o.is_empty() {
                producer.insert(o, i);
            }
        }
    }
    let mut indeg = vec![0usize; n];
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in graph.node.iter().enumerate() {
        let mut deps: HashSet<usize> = HashSet::new();
        let mut reads: Vec<String> = node.input.clone();
        for a in &node.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                reads.extend(outer_scope_reads(g));
            }
        }
        for inp in &reads {
            if let Some(&p) = producer.get(inp.as_str()) {
                if p != i && deps.insert(p) {
                    succ[p].push(i);
                    indeg[i] += 1;
                }
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &s in &succ[i] {
            indeg[s] -= 1;
            if indeg[s] == 0 {
                ready.insert(s);
            }
        }
    }
    if order.len() != n {
        return Err(Error::usage(
            "graph",
            "the graph has a cycle; cannot order its nodes",
        ));
    }
    let mut old: Vec<Option<NodeProto>> = std::mem::take(&mut graph.node)
        .into_iter()
        .map(Some)
        .collect();
    graph.node = order
        .into_iter()
        .map(|i| old[i].take().expect("each node once"))
        .collect();
    Ok(())
}

/// One graph rewrite with a label saying what and why, validated and applied as one step:
/// either every edit applies or the graph is left untouched.
#[derive(Debug, Default, Clone)]
pub struct Patch {
    /// What this rewrite does (shown in the quantization report).
    pub label: String,
    /// Nodes to delete, by index in the graph at the time the patch was built.
    pub remove_nodes: Vec<usize>,
    /// Nodes to add (the graph is re-sorted topologically afterwards).
    pub add_nodes: Vec<NodeProto>,
    /// Initializers to add or replace (matched by name).
    pub set_initializers: Vec<TensorProto>,
    /// Tensor renames applied to every remaining node input and graph output: `(from, to)`.
    pub rename_inputs: Vec<(String, String)>,
    /// Replace the input at `(node index, input slot)` with a tensor name.
    pub set_inputs: Vec<(usize, usize, String)>,
    /// Replace or add an attribute on a node (by index).
    pub set_attributes: Vec<(usize, AttributeProto)>,
}

impl Patch {
    /// An empty patch with a label.
    pub fn new(label: impl Into<String>) -> Self {
        Patch {
            label: label.into(),
            ..Default::default()
        }
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.remove_nodes.is_empty()
            && self.add_nodes.is_empty()
            && self.set_initializers.is_empty()
            && self.rename_inputs.is_empty()
            && self.set_inputs.is_empty()
            && self.set_attributes.is_empty()
    }

    /// Validate every edit against `graph`, then apply them all and re-sort the graph.
    pub fn apply(self, graph: &mut GraphProto) -> Result<()> {
        let n = graph.node.len();
        let bad = |what: String| Error::usage(format!("patch '{}'", self.label), what);
        for &i in &self.remove_nodes {
            if i >= n {
                return Err(bad(format!("removes node #{i}, the graph has {n}")));
            }
        }
        for (i, slot, _) in &self.set_inputs {
            if *i >= n || *slot >= graph.node[*i].input.len() {
                return Err(bad(format!("rewires missing input {slot} of node #{i}")));
            }
        }
        for (i, _) in &self.set_attributes {
            if *i >= n {
                return Err(bad(format!("sets an attribute on missing node #{i}")));
            }
        }
        let mut work = graph.clone();
        for (i, slot, name) in &self.set_inputs {
            work.node[*i].input[*slot] = name.clone();
        }
        for (i, a) in &self.set_attributes {
            let node = &mut work.node[*i];
            node.attribute.retain(|x| x.name != a.name);
            node.attribute.push(a.clone());
        }
        let remove: HashSet<usize> = self.remove_nodes.iter().copied().collect();
        work.node = work
            .node
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !remove.contains(i))
            .map(|(_, n)| n)
            .collect();
        if !self.rename_inputs.is_empty() {
            let map: HashMap<&str, &str> = self
                .rename_inputs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            for node in &mut work.node {
                for inp in &mut node.input {
                    if let Some(to) = map.get(inp.as_str()) {
                        *inp = to.to_string();
                    }
                }
            }
        }
        work.node.extend(self.add_nodes);
        for t in self.set_initializers {
            match work.initializer.iter_mut().find(|x| x.name == t.name) {
                Some(slot) => *slot = t,
                None => work.initializer.push(t),
            }
        }
        topo_sort(&mut work)?;
        // Every node input must still resolve to something.
        let mut known: HashSet<&str> = work.input.iter().map(|v| v.name.as_str()).collect();
        known.extend(work.initializer.iter().map(|t| t.name.as_str()));
        for node in &work.node {
            for i in &node.input {
                if !i.is_empty() && !known.contains(i.as_str()) {
                    return Err(bad(format!(
                        "leaves node '{}' reading '{i}', which nothing produces",
                        node_label(node)
                    )));
                }
            }
            known.extend(node.output.iter().map(String::as_str));
        }
        *graph = work;
        Ok(())
    }
}

/// Drop initializers no node (or subgraph) reads and that are not graph outputs.
pub fn prune_initializers(graph: &mut GraphProto) {
    let ix = GraphIndex::new(graph);
    graph
        .initializer
        .retain(|t| ix.consumers.contains_key(&t.name) || ix.graph_outputs.contains(&t.name));
}

/// An initializer map by name.
pub fn initializers(graph: &GraphProto) -> HashMap<String, &TensorProto> {
    graph
        .initializer
        .iter()
        .map(|t| (t.name.clone(), t))
        .collect()
}

/// Ranks of the graph's tensors where they follow from declared inputs, initializers and
/// simple per-op rules (no shape values). Enough to decide whether an axis is the last one.
pub fn infer_ranks(graph: &GraphProto) -> HashMap<String, usize> {
    let mut r = infer_ranks_forward(graph, HashMap::new());
    // Backward through rank-preserving unary ops (e.g. Softmax -> Identity -> declared
    // graph output), then forward again.
    for n in graph.node.iter().rev() {
        if matches!(
            n.op_type.as_str(),
            "Identity" | "Softmax" | "LogSoftmax" | "Relu" | "Sigmoid" | "Cast"
        ) {
            if let (Some(o), Some(i)) = (n.output.first(), n.input.first()) {
                if let Some(&k) = r.get(o) {
                    r.entry(i.clone()).or_insert(k);
                }
            }
        }
    }
    infer_ranks_forward(graph, r)
}

fn infer_ranks_forward(
    graph: &GraphProto,
    mut r: HashMap<String, usize>,
) -> HashMap<String, usize> {
    for v in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        if let Some(k) = declared_rank(graph, &v.name) {
            r.insert(v.name.clone(), k);
        }
    }
    for t in &graph.initializer {
        r.insert(t.name.clone(), t.dims.len());
    }
    let inits = initializers(graph);
    // Lengths of 1-D integer tensors (shape vectors), to give Reshape with a computed shape
    // a rank.
    let mut len1d: HashMap<String, usize> = HashMap::new();
    for t in &graph.initializer {
        if t.dims.len() == 1 {
            len1d.insert(t.name.clone(), t.dims[0] as usize);
        }
    }
    for n in &graph.node {
        let ins: Vec<Option<usize>> = n.input.iter().map(|i| r.get(i).copied()).collect();
        let l = match n.op_type.as_str() {
            "Shape" => ins.first().copied().flatten(),
            "Cast" | "Identity" => n.input.first().and_then(|i| len1d.get(i).copied()),
            "Unsqueeze" if ins.first() == Some(&Some(0)) => Some(1),
            "Concat" => n
                .input
                .iter()
                .map(|i| len1d.get(i).copied())
                .sum::<Option<usize>>(),
            _ => None,
        };
        if let (Some(l), Some(o)) = (l, n.output.first()) {
            len1d.insert(o.clone(), l);
        }
        let first = ins.first().copied().flatten();
        let out = match n.op_type.as_str() {
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Where" | "Max" | "Min" | "Sum" | "Equal"
            | "Less" | "Greater" | "And" | "Or" => ins
                .iter()
                .copied()
                .collect::<Option<Vec<_>>>()
                .and_then(|v| v.into_iter().max()),
            "Transpose" if !attr_ints(n, "perm").is_empty() => Some(attr_ints(n, "perm").len()),
            "Relu"
            | "Clip"
            | "Sigmoid"
            | "HardSigmoid"
            | "Tanh"
            | "Softmax"
            | "LogSoftmax"
            | "Conv"
            | "ConvTranspose"
            | "MaxPool"
            | "AveragePool"
            | "GlobalAveragePool"
            | "GlobalMaxPool"
            | "BatchNormalization"
            | "Transpose"
            | "Concat"
            | "Cast"
            | "Sqrt"
            | "Exp"
            | "Log"
            | "Neg"
            | "Abs"
            | "Erf"
            | "Identity"
            | "Dropout"
            | "LeakyRelu"
            | "Resize"
            | "Pad"
            | "Slice"
            | "LayerNormalization"
            | "InstanceNormalization" => first,
            "Flatten" | "Gemm" => Some(2),
            "Shape" => Some(1),
            "MatMul" => match (
                ins.first().copied().flatten(),
                ins.get(1).copied().flatten(),
            ) {
                (Some(a), Some(b)) if a >= 2 && b >= 2 => Some(a.max(b)),
                _ => None,
            },
            "Reshape" => n.input.get(1).and_then(|s| len1d.get(s).copied()),
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" => {
                if attr_i(n, "keepdims", 1) == 1 {
                    first
                } else {
                    let axes = attr_ints(n, "axes");
                    first.and_then(|k| (!axes.is_empty()).then(|| k - axes.len()))
                }
            }
            "Squeeze" => first.and_then(|k| {
                let a = attr_ints(n, "axes");
                let a = if a.is_empty() {
                    n.input
                        .get(1)
                        .and_then(|s| inits.get(s))
                        .and_then(|t| tensor_i64(t).ok())
                        .unwrap_or_default()
                } else {
                    a
                };
                (!a.is_empty()).then(|| k - a.len())
            }),
            "Unsqueeze" => first.and_then(|k| {
                let a = attr_ints(n, "axes");
                let a = if a.is_empty() {
                    n.input
                        .get(1)
                        .and_then(|s| inits.get(s))
                        .and_then(|t| tensor_i64(t).ok())
                        .unwrap_or_default()
                } else {
                    a
                };
                (!a.is_empty()).then(|| k + a.len())
            }),
            _ => None,
        };
        if let (Some(k), Some(o)) = (out, n.output.first()) {
            r.entry(o.clone()).or_insert(k);
        }
    }
    r
}
