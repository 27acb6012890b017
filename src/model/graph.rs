//! Read-only questions about a graph: who produces a tensor, who consumes it, which
//! inputs are real, where the weights live, what order the nodes run in.
//!
//! [`GraphIndex`] is built once over a borrowed [`GraphProto`] (cheap: a few hash maps of
//! `&str`) and answers in O(1). It does not validate on construction, so it can describe
//! broken graphs too; [`GraphIndex::topo_order`] and [`GraphIndex::check`] report what is
//! wrong, naming the node.
//!
//! Two ONNX subtleties the index handles so callers do not have to:
//! - A node with a subgraph (`If`, `Loop`, `Scan`) may read outer-scope tensors *from inside
//!   its subgraph* without listing them as inputs. Those names count as the node's uses
//!   ([`node_uses`]): rewiring a tensor must reach them, and topological order must respect them.
//! - Weights live either in initializers or, in many exported models (PP-OCR among them),
//!   in `Constant` nodes' `value` attribute. [`GraphIndex::weights`] returns both, tagged.
//!
//! ```
//! use edgepack::model::{builder, graph::GraphIndex};
//! let model = builder::mlp(&[4, 8, 2], 7);
//! let index = GraphIndex::new(model.graph());
//! assert_eq!(index.real_inputs().len(), 1);
//! let order = index.topo_order()?;
//! assert_eq!(order.len(), model.graph().node.len());
//! # Ok::<(), edgepack::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::attr::{node_error, NodeExt};
use super::proto::tensor_shape_proto::dimension::Value as DimValue;
use super::proto::type_proto::Value as TypeValue;
use super::proto::{
    GraphProto, ModelProto, NodeProto, TensorProto, TensorShapeProto, ValueInfoProto,
};
use super::tensor_data::{self, dtype_name};
use super::{for_each_graph, DataType};
use crate::error::{Error, Result};

/// One dimension of a declared shape: the one `Dim` of the crate.
///
/// `model/` is the lowest layer, so the type lives here; the input model
/// (`crate::inputs`), package manifests and `inspect` all use it. In JSON it is a number,
/// the symbol's name, or `null` for an anonymous dim (`"?"` is read as `null` too).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A named symbolic size (`dim_param`), e.g. `batch`.
    Symbol(String),
    /// Neither value nor name (an anonymous dynamic dim: `-1`, `?`, empty).
    Unknown,
}

impl Dim {
    /// The fixed size, if this dim has one (negative sizes, which some exporters write
    /// for "dynamic", are not sizes).
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(n) if *n >= 0 => Some(*n as usize),
            _ => None,
        }
    }

    /// The symbol's name, if this dim is named.
    pub fn symbol(&self) -> Option<&str> {
        match self {
            Dim::Symbol(s) => Some(s),
            _ => None,
        }
    }
}

impl serde::Serialize for Dim {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Dim::Fixed(n) => s.serialize_i64(*n),
            Dim::Symbol(name) => s.serialize_str(name),
            Dim::Unknown => s.serialize_none(),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Dim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Fixed(i64),
            Symbol(String),
            Unknown(#[allow(dead_code)] Option<()>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Fixed(n) => Dim::Fixed(n),
            Raw::Symbol(s) if s.is_empty() || s == "?" => Dim::Unknown,
            Raw::Symbol(s) => Dim::Symbol(s),
            Raw::Unknown(_) => Dim::Unknown,
        })
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// The declared tensor element type code of a value, if it is a tensor.
pub fn elem_type(vi: &ValueInfoProto) -> Option<i32> {
    match vi.r#type.as_ref()?.value.as_ref()? {
        TypeValue::TensorType(t) => t.elem_type,
        TypeValue::SparseTensorType(t) => t.elem_type,
        _ => None,
    }
}

/// The declared element type's ONNX name (`float`, `int64`, ...), or `?` when not a tensor.
pub fn elem_type_name(vi: &ValueInfoProto) -> String {
    elem_type(vi)
        .map(tensor_data::dtype_code_name)
        .unwrap_or_else(|| "?".into())
}

/// The declared shape of a value as stored, dims unnormalised; `None` when the rank itself
/// is unknown.
pub fn shape_proto(vi: &ValueInfoProto) -> Option<&TensorShapeProto> {
    match vi.r#type.as_ref()?.value.as_ref()? {
        TypeValue::TensorType(t) => t.shape.as_ref(),
        TypeValue::SparseTensorType(t) => t.shape.as_ref(),
        _ => None,
    }
}

/// The declared shape of a value; `None` when the rank itself is unknown.
pub fn shape(vi: &ValueInfoProto) -> Option<Vec<Dim>> {
    Some(
        shape_proto(vi)?
            .dim
            .iter()
            .map(|d| match &d.value {
                // Some exporters write -1 for "dynamic": ONNX Runtime treats it as unknown.
                Some(DimValue::DimValue(n)) if *n >= 0 => Dim::Fixed(*n),
                // `?` is how some exporters spell "no name": it cannot be set by name.
                Some(DimValue::DimParam(s)) if !s.is_empty() && s != "?" => Dim::Symbol(s.clone()),
                _ => Dim::Unknown,
            })
            .collect(),
    )
}

/// Names a subgraph reads from its enclosing scopes: consumed (by its nodes or nested
/// subgraphs) or output, but neither produced, an input nor an initializer inside it.
pub fn outer_scope_reads(g: &GraphProto) -> BTreeSet<String> {
    let mut local: HashSet<&str> = HashSet::new();
    local.extend(g.input.iter().map(|v| v.name.as_str()));
    local.extend(g.initializer.iter().map(|t| t.name.as_str()));
    local.extend(
        g.sparse_initializer
            .iter()
            .filter_map(|s| s.values.as_ref().map(|v| v.name.as_str())),
    );
    for n in &g.node {
        local.extend(n.output.iter().map(String::as_str));
    }
    let mut reads = BTreeSet::new();
    for n in &g.node {
        for name in node_uses(n) {
            if !local.contains(name.as_str()) {
                reads.insert(name);
            }
        }
    }
    for o in &g.output {
        if !local.contains(o.name.as_str()) {
            reads.insert(o.name.clone());
        }
    }
    reads
}

/// Every tensor name a node reads: its (non-empty) inputs, then the outer-scope names its
/// subgraphs read, deduplicated, in order.
pub fn node_uses(node: &NodeProto) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for i in node.input.iter().filter(|i| !i.is_empty()) {
        if seen.insert(i.clone()) {
            out.push(i.clone());
        }
    }
    for a in &node.attribute {
        for g in a.g.iter().chain(a.graphs.iter()) {
            for name in outer_scope_reads(g) {
                if seen.insert(name.clone()) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Where a weight tensor is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WeightLocation {
    /// `graph.initializer`.
    Initializer,
    /// The `value` attribute of a `Constant` node (index into `graph.node`).
    ConstantNode(usize),
    /// `graph.sparse_initializer` (the tensor is its `values`).
    SparseInitializer,
}

/// A weight tensor and where it lives.
#[derive(Clone, Copy, Debug)]
pub struct Weight<'a> {
    /// The tensor name the graph knows it by (the Constant node's output for Constants).
    pub name: &'a str,
    /// The stored tensor (for sparse initializers, its values).
    pub tensor: &'a TensorProto,
    /// Where it lives.
    pub location: WeightLocation,
}

/// An index over one graph (not its subgraphs).
#[derive(Debug)]
pub struct GraphIndex<'a> {
    graph: &'a GraphProto,
    producer: HashMap<&'a str, usize>,
    duplicate_producers: Vec<(String, usize)>,
    consumers: HashMap<String, Vec<usize>>,
    initializers: HashMap<&'a str, &'a TensorProto>,
    values: HashMap<&'a str, &'a ValueInfoProto>,
    uses: Vec<Vec<String>>,
}

const NO_CONSUMERS: &[usize] = &[];

impl<'a> GraphIndex<'a> {
    /// Index a graph.
    pub fn new(graph: &'a GraphProto) -> Self {
        let mut producer = HashMap::new();
        let mut duplicate_producers = Vec::new();
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        let mut uses = Vec::with_capacity(graph.node.len());
        for (i, n) in graph.node.iter().enumerate() {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                if producer.insert(o.as_str(), i).is_some() {
                    duplicate_producers.push((o.clone(), i));
                }
            }
            let u = node_uses(n);
            for name in &u {
                consumers.entry(name.clone()).or_default().push(i);
            }
            uses.push(u);
        }
        let initializers = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let mut values = HashMap::new();
        // Later entries do not overwrite: graph inputs and outputs are authoritative.
        for vi in graph
            .input
            .iter()
            .chain(graph.output.iter())
            .chain(graph.value_info.iter())
        {
            values.entry(vi.name.as_str()).or_insert(vi);
        }
        GraphIndex {
            graph,
            producer,
            duplicate_producers,
            consumers,
            initializers,
            values,
            uses,
        }
    }

    /// The indexed graph.
    pub fn graph(&self) -> &'a GraphProto {
        self.graph
    }

    /// Graph inputs that are not initializers: what a caller must feed.
    pub fn real_inputs(&self) -> Vec<&'a ValueInfoProto> {
        self.graph
            .input
            .iter()
            .filter(|vi| !self.initializers.contains_key(vi.name.as_str()))
            .collect()
    }

    /// Graph outputs.
    pub fn outputs(&self) -> &'a [ValueInfoProto] {
        &self.graph.output
    }

    /// The initializer with this name.
    pub fn initializer(&self, name: &str) -> Option<&'a TensorProto> {
        self.initializers.get(name).copied()
    }

    /// Whether `name` is an initializer.
    pub fn is_initializer(&self, name: &str) -> bool {
        self.initializers.contains_key(name)
    }

    /// The index of the node producing `name`.
    pub fn producer(&self, name: &str) -> Option<usize> {
        self.producer.get(name).copied()
    }

    /// The node producing `name`.
    pub fn producer_node(&self, name: &str) -> Option<&'a NodeProto> {
        self.producer(name).map(|i| &self.graph.node[i])
    }

    /// Indices of the nodes reading `name` (inputs and subgraph outer-scope reads), in
    /// graph order; a node reading it twice appears once.
    pub fn consumers(&self, name: &str) -> &[usize] {
        self.consumers
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(NO_CONSUMERS)
    }

    /// Names node `i` reads (see [`node_uses`]).
    pub fn uses(&self, i: usize) -> &[String] {
        &self.uses[i]
    }

    /// The constant value of `name`: an initializer, or the `value` of the `Constant` node
    /// producing it. `None` if computed at run time (or a Constant of another form).
    pub fn constant(&self, name: &str) -> Option<&'a TensorProto> {
        if let Some(t) = self.initializer(name) {
            return Some(t);
        }
        let n = self.producer_node(name)?;
        if n.op_type == "Constant" && is_default_domain(&n.domain) {
            n.attr_opt_t("value").ok().flatten()
        } else {
            None
        }
    }

    /// The declared type/shape of `name` from graph inputs, outputs or `value_info`.
    pub fn value_info(&self, name: &str) -> Option<&'a ValueInfoProto> {
        self.values.get(name).copied()
    }

    /// Whether `name` is a graph output.
    pub fn is_output(&self, name: &str) -> bool {
        self.graph.output.iter().any(|o| o.name == name)
    }

    /// Whether `name` is read by exactly one node and is not a graph output: its producer
    /// and that reader can then be rewritten together without anyone else noticing.
    pub fn single_use(&self, name: &str) -> bool {
        self.consumers(name).len() == 1 && !self.is_output(name)
    }

    /// The rank declared for `name` by a graph input, output or `value_info` entry.
    pub fn declared_rank(&self, name: &str) -> Option<usize> {
        self.value_info(name).and_then(shape).map(|s| s.len())
    }

    /// Whether `name` is available without running a node: a graph input or initializer.
    pub fn is_source(&self, name: &str) -> bool {
        self.initializers.contains_key(name) || self.graph.input.iter().any(|i| i.name == name)
    }

    /// Every weight of this graph (not its subgraphs): initializers, `Constant` node values,
    /// sparse initializers' values.
    pub fn weights(&self) -> Vec<Weight<'a>> {
        let mut out: Vec<Weight<'a>> = self
            .graph
            .initializer
            .iter()
            .map(|t| Weight {
                name: &t.name,
                tensor: t,
                location: WeightLocation::Initializer,
            })
            .collect();
        for (i, n) in self.graph.node.iter().enumerate() {
            if n.op_type != "Constant" || !is_default_domain(&n.domain) {
                continue;
            }
            if let (Ok(Some(t)), Some(o)) = (n.attr_opt_t("value"), n.output.first()) {
                out.push(Weight {
                    name: o,
                    tensor: t,
                    location: WeightLocation::ConstantNode(i),
                });
            }
        }
        for s in &self.graph.sparse_initializer {
            if let Some(v) = s.values.as_ref() {
                out.push(Weight {
                    name: &v.name,
                    tensor: v,
                    location: WeightLocation::SparseInitializer,
                });
            }
        }
        out
    }

    /// Node indices in an order where every node runs after the producers of what it reads.
    /// Stable: among ready nodes, graph order is kept. A cycle is an error naming a node
    /// on it.
    pub fn topo_order(&self) -> Result<Vec<usize>> {
        let n = self.graph.node.len();
        let mut indegree = vec![0usize; n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, uses) in self.uses.iter().enumerate() {
            let mut deps: Vec<usize> = uses.iter().filter_map(|u| self.producer(u)).collect();
            deps.sort_unstable();
            deps.dedup();
            for p in deps {
                indegree[i] += 1;
                dependents[p].push(i);
            }
        }
        // A min-heap over indices keeps graph order among ready nodes.
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
            .filter(|&i| indegree[i] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &d in &dependents[i] {
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    ready.push(std::cmp::Reverse(d));
                }
            }
        }
        if order.len() < n {
            let stuck = (0..n)
                .find(|&i| indegree[i] > 0)
                .expect("some node is left");
            let node = &self.graph.node[stuck];
            let waits: Vec<&str> = self.uses[stuck]
                .iter()
                .filter(|u| {
                    self.producer(u)
                        .is_some_and(|p| indegree[p] > 0 || p == stuck)
                })
                .map(String::as_str)
                .collect();
            return Err(node_error(
                node,
                format!("the graph has a cycle: this node waits on {waits:?}, which depend on it"),
            ));
        }
        Ok(order)
    }

    /// Structural problems: tensors produced twice, names read but never produced (and not
    /// inputs or initializers), cycles. `outer` are names visible from enclosing scopes
    /// (empty for the main graph).
    pub fn check(&self, outer: &HashSet<String>) -> Result<()> {
        if let Some((name, i)) = self.duplicate_producers.first() {
            return Err(node_error(
                &self.graph.node[*i],
                format!("tensor '{name}' is already produced by another node"),
            ));
        }
        let inputs: HashSet<&str> = self.graph.input.iter().map(|v| v.name.as_str()).collect();
        for t in &self.graph.initializer {
            if self.producer.contains_key(t.name.as_str()) {
                let i = self.producer[t.name.as_str()];
                return Err(node_error(
                    &self.graph.node[i],
                    format!(
                        "tensor '{}' is both an initializer and a node output",
                        t.name
                    ),
                ));
            }
        }
        for (i, uses) in self.uses.iter().enumerate() {
            for u in uses {
                if !(self.producer.contains_key(u.as_str())
                    || self.initializers.contains_key(u.as_str())
                    || inputs.contains(u.as_str())
                    || outer.contains(u))
                {
                    return Err(node_error(
                        &self.graph.node[i],
                        format!(
                            "reads tensor '{u}', which no node produces and is neither a graph input nor an initializer"
                        ),
                    ));
                }
            }
        }
        for o in &self.graph.output {
            if !(self.producer.contains_key(o.name.as_str())
                || self.initializers.contains_key(o.name.as_str())
                || inputs.contains(o.name.as_str())
                || outer.contains(&o.name))
            {
                return Err(Error::node(
                    format!("graph '{}'", self.graph.name),
                    "output",
                    format!("graph output '{}' is produced by no node", o.name),
                ));
            }
        }
        self.topo_order()?;
        Ok(())
    }

    /// Symbolic dims of each real input: input name -> the `dim_param` names in its shape.
    /// Inputs without symbolic dims are left out.
    pub fn symbolic_dims(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for vi in self.real_inputs() {
            let syms: Vec<String> = shape(vi)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| match d {
                    Dim::Symbol(s) => Some(s),
                    _ => None,
                })
                .collect();
            if !syms.is_empty() {
                out.insert(vi.name.clone(), syms);
            }
        }
        out
    }
}

/// Initializers that no node (nor subgraph) reads and that are not graph outputs, in
/// graph order: what is left behind once a rewrite moved every reader elsewhere.
pub fn unused_initializers(graph: &GraphProto) -> Vec<String> {
    let ix = GraphIndex::new(graph);
    graph
        .initializer
        .iter()
        .filter(|t| ix.consumers(&t.name).is_empty() && !ix.is_output(&t.name))
        .map(|t| t.name.clone())
        .collect()
}

/// Whether a node domain is the default ONNX one.
pub fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// The histogram key of a node's op: `Conv`, or `com.microsoft.QuickGelu` outside the
/// default domain.
pub fn op_key(node: &NodeProto) -> String {
    if is_default_domain(&node.domain) {
        node.op_type.clone()
    } else {
        format!("{}.{}", node.domain, node.op_type)
    }
}

/// Op type -> node count. With `include_subgraphs`, nodes inside `If`/`Loop`/`Scan`
/// bodies are counted too (the `If` itself is counted once).
pub fn op_histogram(graph: &GraphProto, include_subgraphs: bool) -> BTreeMap<String, u64> {
    let mut hist = BTreeMap::new();
    let mut count = |g: &GraphProto| {
        for n in &g.node {
            *hist.entry(op_key(n)).or_insert(0) += 1;
        }
    };
    if include_subgraphs {
        for_each_graph(graph, &mut count);
    } else {
        count(graph);
    }
    hist
}

/// Total node count, optionally with subgraph nodes.
pub fn node_count(graph: &GraphProto, include_subgraphs: bool) -> u64 {
    if !include_subgraphs {
        return graph.node.len() as u64;
    }
    let mut n = 0;
    for_each_graph(graph, &mut |g| n += g.node.len() as u64);
    n
}

/// Imported opsets: domain (`ai.onnx` for the default) -> version.
pub fn opsets(model: &ModelProto) -> BTreeMap<String, i64> {
    model
        .opset_import
        .iter()
        .map(|o| {
            let d = if o.domain.is_empty() {
                "ai.onnx".to_string()
            } else {
                o.domain.clone()
            };
            (d, o.version.unwrap_or(0))
        })
        .collect()
}

/// Count and bytes of weights in one place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WeightPlace {
    /// Number of tensors.
    pub tensors: u64,
    /// Number of elements.
    pub parameters: u64,
    /// Bytes of their values when stored compactly.
    pub bytes: u64,
}

impl WeightPlace {
    fn add(&mut self, params: u64, bytes: u64) {
        self.tensors += 1;
        self.parameters += params;
        self.bytes += bytes;
    }
}

/// Parameter and byte counts of all weights in a graph and its subgraphs.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WeightStats {
    /// Total elements across all weights (sparse: stored values).
    pub parameters: u64,
    /// Total bytes across all weights.
    pub weight_bytes: u64,
    /// Elements by dtype name.
    pub parameters_by_dtype: BTreeMap<String, u64>,
    /// Bytes by dtype name.
    pub weight_bytes_by_dtype: BTreeMap<String, u64>,
    /// Weights in initializers.
    pub initializers: WeightPlace,
    /// Weights held in `Constant` nodes.
    pub constant_nodes: WeightPlace,
    /// Sparse initializers (bytes include their indices).
    pub sparse_initializers: WeightPlace,
}

/// Count every weight (initializers, `Constant` values, sparse initializers) in the graph
/// and its subgraphs. Counts come from dims, so external data need not be loaded. A tensor
/// with malformed dims is an error naming it.
pub fn weight_stats(graph: &GraphProto) -> Result<WeightStats> {
    let mut stats = WeightStats::default();
    let mut err = None;
    for_each_graph(graph, &mut |g| {
        if err.is_some() {
            return;
        }
        let index = GraphIndex::new(g);
        for w in index.weights() {
            let counted = (|| -> Result<(u64, u64, DataType)> {
                let dt = tensor_data::data_type(w.tensor)?;
                let n = tensor_data::element_count(w.tensor)? as u64;
                let mut bytes = tensor_data::stored_bytes(w.tensor)?;
                if w.location == WeightLocation::SparseInitializer {
                    if let Some(ix) = g
                        .sparse_initializer
                        .iter()
                        .find(|s| s.values.as_ref().is_some_and(|v| v.name == w.name))
                        .and_then(|s| s.indices.as_ref())
                    {
                        bytes += tensor_data::stored_bytes(ix)?;
                    }
                }
                Ok((n, bytes, dt))
            })();
            match counted {
                Ok((n, bytes, dt)) => {
                    stats.parameters += n;
                    stats.weight_bytes += bytes;
                    let name = dtype_name(dt).to_string();
                    *stats.parameters_by_dtype.entry(name.clone()).or_insert(0) += n;
                    *stats.weight_bytes_by_dtype.entry(name).or_insert(0) += bytes;
                    match w.location {
                        WeightLocation::Initializer => stats.initializers.add(n, bytes),
                        WeightLocation::ConstantNode(_) => stats.constant_nodes.add(n, bytes),
                        WeightLocation::SparseInitializer => {
                            stats.sparse_initializers.add(n, bytes)
                        }
                    }
                }
                Err(e) => {
                    err = Some(e);
                    return;
                }
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attr;
    use crate::model::proto::type_proto;
    use crate::model::proto::{tensor_shape_proto, TensorShapeProto, TypeProto};

    pub(crate) fn vi(name: &str, dims: &[Dim]) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(TypeValue::TensorType(type_proto::Tensor {
                    elem_type: Some(DataType::Float as i32),
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|d| tensor_shape_proto::Dimension {
                                value: match d {
                                    Dim::Fixed(n) => Some(DimValue::DimValue(*n)),
                                    Dim::Symbol(s) => Some(DimValue::DimParam(s.clone())),
                                    Dim::Unknown => None,
                                },
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            name: name.into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn sample() -> GraphProto {
        let w = tensor_data::from_f32("w", &[2, 2], &[1.0; 4]).unwrap();
        let mut c = node("c", "Constant", &[], &["b"]);
        c.attribute.push(attr::tensor(
            "value",
            tensor_data::from_f32("", &[2], &[0.0; 2]).unwrap(),
        ));
        GraphProto {
            name: "g".into(),
            // Deliberately out of order: `add` comes before the `mm` it reads from.
            node: vec![
                node("add", "Add", &["y0", "b"], &["y"]),
                node("mm", "MatMul", &["x", "w"], &["y0"]),
                c,
            ],
            initializer: vec![w],
            input: vec![
                vi("x", &[Dim::Symbol("N".into()), Dim::Fixed(2)]),
                vi("w", &[Dim::Fixed(2), Dim::Fixed(2)]),
            ],
            output: vec![vi("y", &[Dim::Unknown, Dim::Fixed(2)])],
            ..Default::default()
        }
    }

    #[test]
    fn answers_producer_consumer_and_inputs() {
        let g = sample();
        let ix = GraphIndex::new(&g);
        let real: Vec<&str> = ix.real_inputs().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(real, vec!["x"]);
        assert_eq!(ix.producer("y0"), Some(1));
        assert_eq!(ix.consumers("y0"), &[0]);
        assert_eq!(ix.consumers("nothing"), NO_CONSUMERS);
        assert!(ix.constant("b").is_some());
        assert!(ix.constant("w").is_some());
        assert!(ix.constant("y0").is_none());
        assert_eq!(ix.symbolic_dims()["x"], vec!["N".to_string()]);
        assert_eq!(
            shape(ix.value_info("y").unwrap()).unwrap(),
            vec![Dim::Unknown, Dim::Fixed(2)]
        );
        assert_eq!(elem_type_name(ix.value_info("x").unwrap()), "float");
    }

    #[test]
    fn topo_order_puts_producers_first_and_keeps_graph_order() {
        let g = sample();
        assert_eq!(GraphIndex::new(&g).topo_order().unwrap(), vec![1, 2, 0]);
        GraphIndex::new(&g).check(&HashSet::new()).unwrap();
    }

    #[test]
    fn cycle_is_an_error_naming_a_node() {
        let mut g = sample();
        g.node.push(node("loop", "Relu", &["y"], &["x2"]));
        g.node[1].input[0] = "x2".into();
        let e = GraphIndex::new(&g).topo_order().unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
        assert!(e.starts_with("node '"), "{e}");
    }

    #[test]
    fn check_finds_dangling_and_duplicate_names() {
        let mut g = sample();
        g.node[0].input[1] = "ghost".into();
        let e = GraphIndex::new(&g).check(&HashSet::new()).unwrap_err();
        assert!(e.to_string().contains("'ghost'"), "{e}");
        let mut g = sample();
        g.node.push(node("dup", "Relu", &["x"], &["y0"]));
        let e = GraphIndex::new(&g).check(&HashSet::new()).unwrap_err();
        assert!(e.to_string().contains("already produced"), "{e}");
    }

    #[test]
    fn subgraph_outer_reads_count_as_uses() {
        let mut g = sample();
        let then = GraphProto {
            node: vec![node("inner", "Identity", &["y0"], &["t"])],
            output: vec![vi("t", &[])],
            ..Default::default()
        };
        let mut iff = node("if", "If", &["cond"], &["z"]);
        iff.attribute.push(attr::graph("then_branch", then.clone()));
        iff.attribute.push(attr::graph("else_branch", then));
        g.node.insert(0, iff);
        g.input.push(vi("cond", &[]));
        let ix = GraphIndex::new(&g);
        assert_eq!(ix.uses(0), &["cond".to_string(), "y0".to_string()]);
        assert!(ix.consumers("y0").contains(&0));
        let order = ix.topo_order().unwrap();
        let pos = |i| order.iter().position(|&x| x == i).unwrap();
        assert!(pos(2) < pos(0), "the If must run after mm: {order:?}");
        let hist = op_histogram(&g, true);
        assert_eq!(hist["Identity"], 2);
        assert_eq!(op_histogram(&g, false).get("Identity"), None);
        assert_eq!(node_count(&g, true), 6);
    }

    #[test]
    fn weight_stats_split_by_location_and_dtype() {
        let g = sample();
        let s = weight_stats(&g).unwrap();
        assert_eq!(s.parameters, 6);
        assert_eq!(s.weight_bytes, 24);
        assert_eq!(s.initializers.parameters, 4);
        assert_eq!(s.constant_nodes.tensors, 1);
        assert_eq!(s.constant_nodes.bytes, 8);
        assert_eq!(s.weight_bytes_by_dtype["float"], 24);
    }

    #[test]
    fn unused_initializers_are_the_ones_no_node_reads_and_single_use_excludes_outputs() {
        let mut m = crate::model::builder::mlp(&[4, 8, 2], 1);
        assert!(unused_initializers(m.graph()).is_empty());
        let g = m.graph_mut();
        let mut spare = g.initializer[0].clone();
        spare.name = "spare".into();
        g.initializer.push(spare);
        assert_eq!(unused_initializers(m.graph()), ["spare"]);
        let ix = GraphIndex::new(m.graph());
        let first = &m.graph().node[0];
        assert!(ix.single_use(&first.output[0]));
        // The graph output has no reader and is an output: never single-use.
        assert!(ix.is_output("y") && !ix.single_use("y"));
    }
}
