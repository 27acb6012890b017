//! Labelled graph rewrites, validated and applied as one step.
//!
//! Every rewrite of a model (folding a BatchNorm into a Conv, inserting Quantize/Dequantize
//! pairs, turning `Constant` nodes into initializers) is a [`Patch`]: a human label saying
//! what and where, plus a list of [`PatchOp`]s run in order. [`Model::apply`] runs them on
//! a working copy of the graph, checks the result (see below) and only then swaps it in, so
//! a patch lands whole or not at all and a failure names the patch and the node:
//! `patch 'fold BatchNorm into Conv conv1': node 'relu1' (Relu): reads tensor 'bn1_out', which no node produces ...`.
//!
//! After the operations run, the graph must still be well formed:
//! - every name a node reads (inputs, and outer-scope names its subgraphs read) is produced
//!   by a node, is a graph input or initializer, or comes from an enclosing graph;
//! - no tensor has two producers, and no initializer is also a node output;
//! - every graph output is produced; there is no cycle.
//!
//! Nodes added with [`Position::Topological`] are appended and the node list is then
//! stably re-sorted (an already sorted graph keeps its order), so callers need not work
//! out where a new node belongs.
//!
//! Cost: `apply` clones the main graph (weights included) once per call; apply many
//! rewrites with [`Model::apply_all`] to pay for one clone.
//!
//! ```
//! use edgepack::model::{builder, patch::{Patch, Position}};
//! let mut model = builder::mlp(&[4, 8, 2], 1);
//! // Put an Identity after the first Gemm and move its consumers onto it.
//! let gemm_out = model.graph().node[0].output[0].clone();
//! let patch = Patch::new("insert Identity after gemm1")
//!     .add_node(
//!         builder::node("id", "Identity", &[&gemm_out], &["gemm_id"], vec![]),
//!         Position::Topological,
//!     )
//!     .rewire(&gemm_out, "gemm_id", &["id"]);
//! let record = model.apply(patch)?;
//! assert_eq!(record.label, "insert Identity after gemm1");
//! assert_eq!(model.graph().node[1].op_type, "Identity");
//! # Ok::<(), edgepack::Error>(())
//! ```

use std::collections::HashSet;

use super::attr::{self, NodeExt};
use super::graph::GraphIndex;
use super::proto::{
    AttributeProto, GraphProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto,
};
use super::{tensor_data, Model};
use crate::error::{Error, Result};

/// Which node an operation targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeRef {
    /// The node with this (non-empty, unique) name.
    Name(String),
    /// The node producing this tensor (for unnamed nodes).
    Output(String),
}

impl NodeRef {
    /// A reference to `node` that stays unique whatever its name: the first tensor it
    /// produces (a checked graph has one producer per tensor), or its name for a node
    /// without outputs.
    pub fn of(node: &NodeProto) -> NodeRef {
        match node.output.iter().find(|o| !o.is_empty()) {
            Some(o) => NodeRef::Output(o.clone()),
            None => NodeRef::Name(node.name.clone()),
        }
    }
}

impl From<&str> for NodeRef {
    fn from(s: &str) -> Self {
        NodeRef::Name(s.to_string())
    }
}

impl From<String> for NodeRef {
    fn from(s: String) -> Self {
        NodeRef::Name(s)
    }
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeRef::Name(n) => write!(f, "node '{n}'"),
            NodeRef::Output(o) => write!(f, "the node producing '{o}'"),
        }
    }
}

/// Where added nodes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// Append, then stably re-sort the graph topologically.
    Topological,
    /// At this index of `graph.node` (clamped to the end).
    Index(usize),
    /// Just before a node.
    Before(NodeRef),
    /// Just after a node.
    After(NodeRef),
}

/// One step of a patch.
#[derive(Clone, Debug, PartialEq)]
pub enum PatchOp {
    /// Insert nodes (in the given order) at a position.
    AddNodes {
        nodes: Vec<NodeProto>,
        position: Position,
    },
    /// Remove a node. Its outputs must no longer be read once the patch is done.
    RemoveNode(NodeRef),
    /// Every node reading `from` (inputs, and outer-scope reads inside subgraphs) reads
    /// `to` instead, except the nodes named in `except`. Graph outputs are not renamed.
    Rewire {
        from: String,
        to: String,
        except: Vec<String>,
    },
    /// Set input `index` of a node (an index one past the end appends).
    SetNodeInput {
        node: NodeRef,
        index: usize,
        name: String,
    },
    /// Set output `index` of a node.
    SetNodeOutput {
        node: NodeRef,
        index: usize,
        name: String,
    },
    /// Add an initializer; its name must be new.
    AddInitializer(Box<TensorProto>),
    /// Remove an initializer (and its graph-input entry, for IR < 4 models listing one).
    RemoveInitializer(String),
    /// Replace the initializer with the same name.
    ReplaceInitializer(Box<TensorProto>),
    /// Add the initializer, or replace the one with the same name.
    SetInitializer(Box<TensorProto>),
    /// Turn the `Constant` node producing this tensor into an initializer of that name.
    ConstantToInitializer(String),
    /// Add a graph output.
    AddOutput(Box<ValueInfoProto>),
    /// Remove a graph output.
    RemoveOutput(String),
    /// Set (add or change) the version of an opset import.
    SetOpset { domain: String, version: i64 },
    /// Set (add or replace) an attribute on a node.
    SetAttribute {
        node: NodeRef,
        attribute: Box<AttributeProto>,
    },
    /// Remove an attribute from a node (it must be present).
    RemoveAttribute { node: NodeRef, name: String },
}

/// A labelled list of operations, applied together or not at all.
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    /// What the patch does and where, e.g. `fold BatchNorm into Conv conv1`.
    pub label: String,
    /// The operations, run in order.
    pub ops: Vec<PatchOp>,
}

/// What was applied, for lineage records.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatchRecord {
    /// The patch label.
    pub label: String,
    /// Number of operations it ran.
    pub ops: usize,
}

impl Patch {
    /// An empty patch with a label.
    pub fn new(label: impl Into<String>) -> Self {
        Patch {
            label: label.into(),
            ops: Vec::new(),
        }
    }

    /// Append an operation.
    pub fn op(mut self, op: PatchOp) -> Self {
        self.ops.push(op);
        self
    }

    /// Append an operation in place (for loops).
    pub fn push(&mut self, op: PatchOp) {
        self.ops.push(op);
    }

    /// Add one node.
    pub fn add_node(self, node: NodeProto, position: Position) -> Self {
        self.add_nodes(vec![node], position)
    }

    /// Add nodes, in order, at one position.
    pub fn add_nodes(self, nodes: Vec<NodeProto>, position: Position) -> Self {
        self.op(PatchOp::AddNodes { nodes, position })
    }

    /// Remove a node.
    pub fn remove_node(self, node: impl Into<NodeRef>) -> Self {
        self.op(PatchOp::RemoveNode(node.into()))
    }

    /// Move the readers of `from` onto `to`, except the named nodes.
    pub fn rewire(self, from: &str, to: &str, except: &[&str]) -> Self {
        self.op(PatchOp::Rewire {
            from: from.into(),
            to: to.into(),
            except: except.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Add an initializer.
    pub fn add_initializer(self, t: TensorProto) -> Self {
        self.op(PatchOp::AddInitializer(Box::new(t)))
    }

    /// Remove an initializer.
    pub fn remove_initializer(self, name: &str) -> Self {
        self.op(PatchOp::RemoveInitializer(name.into()))
    }

    /// Replace an initializer.
    pub fn replace_initializer(self, t: TensorProto) -> Self {
        self.op(PatchOp::ReplaceInitializer(Box::new(t)))
    }

    /// Add or replace an initializer.
    pub fn set_initializer(self, t: TensorProto) -> Self {
        self.op(PatchOp::SetInitializer(Box::new(t)))
    }

    /// Turn a `Constant` node into an initializer.
    pub fn constant_to_initializer(self, output: &str) -> Self {
        self.op(PatchOp::ConstantToInitializer(output.into()))
    }

    /// Add a graph output.
    pub fn add_output(self, vi: ValueInfoProto) -> Self {
        self.op(PatchOp::AddOutput(Box::new(vi)))
    }

    /// Remove a graph output.
    pub fn remove_output(self, name: &str) -> Self {
        self.op(PatchOp::RemoveOutput(name.into()))
    }

    /// Set an opset import.
    pub fn set_opset(self, domain: &str, version: i64) -> Self {
        self.op(PatchOp::SetOpset {
            domain: domain.into(),
            version,
        })
    }

    /// Set an attribute on a node.
    pub fn set_attribute(self, node: impl Into<NodeRef>, attribute: AttributeProto) -> Self {
        self.op(PatchOp::SetAttribute {
            node: node.into(),
            attribute: Box::new(attribute),
        })
    }

    /// Check the patch against a model without changing it.
    pub fn validate(&self, model: &Model) -> Result<()> {
        let mut work = Working::of(model);
        work.run(self)?;
        work.check().map_err(|e| self.wrap(e))
    }

    fn wrap(&self, e: Error) -> Error {
        Error::Patch {
            label: self.label.clone(),
            inner: Box::new(e),
        }
    }
}

/// The parts of a model a patch changes: the main graph and the opset imports.
struct Working {
    graph: GraphProto,
    opsets: Vec<OperatorSetIdProto>,
    resort: bool,
}

impl Working {
    fn of(model: &Model) -> Self {
        Working {
            graph: model.proto.graph.clone().unwrap_or_default(),
            opsets: model.proto.opset_import.clone(),
            resort: false,
        }
    }

    fn run(&mut self, patch: &Patch) -> Result<()> {
        if patch.label.trim().is_empty() {
            return Err(Error::usage("patch", "a patch needs a non-empty label"));
        }
        if patch.ops.is_empty() {
            return Err(patch.wrap(Error::usage("patch", "it has no operations")));
        }
        for (i, op) in patch.ops.iter().enumerate() {
            self.op(op).map_err(|e| {
                patch.wrap(match e {
                    Error::Usage { message, .. } => {
                        Error::usage(format!("operation {}", i + 1), message)
                    }
                    other => other,
                })
            })?;
        }
        Ok(())
    }

    fn find(&self, node: &NodeRef) -> Result<usize> {
        let mut hits = self
            .graph
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| match node {
                NodeRef::Name(name) => !name.is_empty() && &n.name == name,
                NodeRef::Output(o) => n.output.iter().any(|x| x == o),
            });
        let first = hits.next();
        if hits.next().is_some() {
            return Err(Error::usage(
                "patch",
                format!("{node} is ambiguous: several nodes match"),
            ));
        }
        first
            .map(|(i, _)| i)
            .ok_or_else(|| Error::usage("patch", format!("{node} does not exist")))
    }

    fn op(&mut self, op: &PatchOp) -> Result<()> {
        let g = &mut self.graph;
        match op {
            PatchOp::AddNodes { nodes, position } => {
                if nodes.is_empty() {
                    return Err(Error::usage("patch", "AddNodes with no nodes"));
                }
                let at = match position {
                    Position::Topological => {
                        self.resort = true;
                        g.node.len()
                    }
                    Position::Index(i) => (*i).min(g.node.len()),
                    Position::Before(r) => self.find(r)?,
                    Position::After(r) => self.find(r)? + 1,
                };
                let g = &mut self.graph;
                g.node.splice(at..at, nodes.iter().cloned());
            }
            PatchOp::RemoveNode(r) => {
                let i = self.find(r)?;
                self.graph.node.remove(i);
            }
            PatchOp::Rewire { from, to, except } => {
                if from == to {
                    return Err(Error::usage(
                        "patch",
                        format!("rewire '{from}' onto itself"),
                    ));
                }
                let mut changed = 0;
                for n in &mut g.node {
                    if except.iter().any(|e| e == &n.name) {
                        continue;
                    }
                    changed += rename_uses(n, from, to);
                }
                if changed == 0 {
                    return Err(Error::usage(
                        "patch",
                        format!("rewire: no node (outside the exceptions) reads '{from}'"),
                    ));
                }
            }
            PatchOp::SetNodeInput { node, index, name } => {
                let i = self.find(node)?;
                let n = &mut self.graph.node[i];
                match (*index).cmp(&n.input.len()) {
                    std::cmp::Ordering::Less => n.input[*index] = name.clone(),
                    std::cmp::Ordering::Equal => n.input.push(name.clone()),
                    std::cmp::Ordering::Greater => {
                        return Err(attr::node_error(
                            n,
                            format!("has {} inputs; cannot set input {index}", n.input.len()),
                        ))
                    }
                }
            }
            PatchOp::SetNodeOutput { node, index, name } => {
                let i = self.find(node)?;
                let n = &mut self.graph.node[i];
                match n.output.get_mut(*index) {
                    Some(slot) => *slot = name.clone(),
                    None => {
                        return Err(attr::node_error(
                            n,
                            format!("has {} outputs; cannot set output {index}", n.output.len()),
                        ))
                    }
                }
            }
            PatchOp::AddInitializer(t) => {
                if t.name.is_empty() {
                    return Err(Error::usage("patch", "an initializer needs a name"));
                }
                if g.initializer.iter().any(|x| x.name == t.name) {
                    return Err(Error::usage(
                        "patch",
                        format!("initializer '{}' already exists", t.name),
                    ));
                }
                check_tensor(t)?;
                g.initializer.push((**t).clone());
            }
            PatchOp::RemoveInitializer(name) => {
                let i = initializer_index(g, name)?;
                g.initializer.remove(i);
                g.input.retain(|vi| &vi.name != name);
            }
            PatchOp::ReplaceInitializer(t) => {
                let i = initializer_index(g, &t.name)?;
                check_tensor(t)?;
                g.initializer[i] = (**t).clone();
            }
            PatchOp::SetInitializer(t) => {
                if t.name.is_empty() {
                    return Err(Error::usage("patch", "an initializer needs a name"));
                }
                check_tensor(t)?;
                match g.initializer.iter_mut().find(|x| x.name == t.name) {
                    Some(slot) => *slot = (**t).clone(),
                    None => g.initializer.push((**t).clone()),
                }
            }
            PatchOp::ConstantToInitializer(output) => {
                let i = self.find(&NodeRef::Output(output.clone()))?;
                let n = &self.graph.node[i];
                if n.op_type != "Constant" {
                    return Err(attr::node_error(n, "is not a Constant node"));
                }
                let mut t = constant_tensor(n)?;
                t.name = output.clone();
                let g = &mut self.graph;
                g.node.remove(i);
                g.initializer.push(t);
            }
            PatchOp::AddOutput(vi) => {
                if g.output.iter().any(|o| o.name == vi.name) {
                    return Err(Error::usage(
                        "patch",
                        format!("'{}' is already a graph output", vi.name),
                    ));
                }
                g.output.push((**vi).clone());
            }
            PatchOp::RemoveOutput(name) => {
                let before = g.output.len();
                g.output.retain(|o| &o.name != name);
                if g.output.len() == before {
                    return Err(Error::usage(
                        "patch",
                        format!("'{name}' is not a graph output"),
                    ));
                }
                if g.output.is_empty() {
                    return Err(Error::usage(
                        "patch",
                        format!("removing '{name}' would leave the graph without outputs"),
                    ));
                }
            }
            PatchOp::SetOpset { domain, version } => {
                let same = |d: &str| {
                    d == domain
                        || (super::graph::is_default_domain(d)
                            && super::graph::is_default_domain(domain))
                };
                match self.opsets.iter_mut().find(|o| same(&o.domain)) {
                    Some(o) => o.version = Some(*version),
                    None => self.opsets.push(OperatorSetIdProto {
                        domain: domain.clone(),
                        version: Some(*version),
                    }),
                }
            }
            PatchOp::SetAttribute { node, attribute } => {
                if attribute.name.is_empty() {
                    return Err(Error::usage("patch", "an attribute needs a name"));
                }
                let i = self.find(node)?;
                attr::set(&mut self.graph.node[i], (**attribute).clone());
            }
            PatchOp::RemoveAttribute { node, name } => {
                let i = self.find(node)?;
                let n = &mut self.graph.node[i];
                if attr::remove(n, name).is_none() {
                    return Err(n.attr_error(name, "cannot remove: not present"));
                }
            }
        }
        Ok(())
    }

    fn check(&mut self) -> Result<()> {
        if self.resort {
            let order = GraphIndex::new(&self.graph).topo_order()?;
            let mut old: Vec<Option<NodeProto>> = std::mem::take(&mut self.graph.node)
                .into_iter()
                .map(Some)
                .collect();
            self.graph.node = order
                .into_iter()
                .map(|i| old[i].take().expect("each index once"))
                .collect();
        }
        check_graph(&self.graph, &HashSet::new())
    }
}

fn initializer_index(g: &GraphProto, name: &str) -> Result<usize> {
    g.initializer
        .iter()
        .position(|t| t.name == name)
        .ok_or_else(|| Error::usage("patch", format!("initializer '{name}' does not exist")))
}

/// A new tensor must at least have a dtype and data matching its dims (external data is
/// not checked here: it is validated when the model is loaded).
fn check_tensor(t: &TensorProto) -> Result<()> {
    tensor_data::data_type(t)?;
    tensor_data::element_count(t)?;
    Ok(())
}

/// The tensor a `Constant` node holds, in any of its attribute forms.
pub fn constant_tensor(n: &NodeProto) -> Result<TensorProto> {
    if let Some(t) = n.attr_opt_t("value")? {
        return Ok(t.clone());
    }
    let name = n.output.first().cloned().unwrap_or_default();
    if let Some(v) = n.attr_opt_f("value_float")? {
        return Ok(tensor_data::scalar(&name, v));
    }
    if let Some(v) = n.attr_opt_i("value_int")? {
        return Ok(tensor_data::scalar(&name, v));
    }
    if let Some(v) = n.attr_opt_floats("value_floats")? {
        return tensor_data::from_f32(&name, &[v.len() as i64], &v);
    }
    if let Some(v) = n.attr_opt_ints("value_ints")? {
        return tensor_data::from_i64(&name, &[v.len() as i64], &v);
    }
    Err(attr::node_error(
        n,
        "Constant holds no dense tensor value (sparse and string forms are not converted)",
    ))
}

/// Rename reads of `from` to `to` in a node's inputs and, where not shadowed, inside its
/// subgraphs. Returns how many places changed.
fn rename_uses(n: &mut NodeProto, from: &str, to: &str) -> usize {
    let mut changed = 0;
    for i in &mut n.input {
        if i == from {
            *i = to.to_string();
            changed += 1;
        }
    }
    for a in &mut n.attribute {
        for g in a.g.iter_mut().chain(a.graphs.iter_mut()) {
            changed += rename_in_subgraph(g, from, to);
        }
    }
    changed
}

fn rename_in_subgraph(g: &mut GraphProto, from: &str, to: &str) -> usize {
    let shadowed = g.input.iter().any(|v| v.name == from)
        || g.initializer.iter().any(|t| t.name == from)
        || g.node.iter().any(|n| n.output.iter().any(|o| o == from));
    if shadowed {
        return 0;
    }
    let mut changed = 0;
    for n in &mut g.node {
        changed += rename_uses(n, from, to);
    }
    for o in &mut g.output {
        if o.name == from {
            o.name = to.to_string();
            changed += 1;
        }
    }
    changed
}

/// Check a graph and its subgraphs (names from `outer` are visible).
pub fn check_graph(g: &GraphProto, outer: &HashSet<String>) -> Result<()> {
    let index = GraphIndex::new(g);
    index.check(outer)?;
    let mut seen = HashSet::new();
    for t in &g.initializer {
        if !seen.insert(t.name.as_str()) {
            return Err(Error::tensor(&t.name, "two initializers have this name"));
        }
    }
    let has_subgraphs = g.node.iter().any(|n| {
        n.attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty())
    });
    if has_subgraphs {
        let mut visible = outer.clone();
        visible.extend(g.input.iter().map(|v| v.name.clone()));
        visible.extend(g.initializer.iter().map(|t| t.name.clone()));
        visible.extend(g.node.iter().flat_map(|n| n.output.iter().cloned()));
        for n in &g.node {
            for a in &n.attribute {
                for sub in a.g.iter().chain(a.graphs.iter()) {
                    check_graph(sub, &visible)?;
                }
            }
        }
    }
    Ok(())
}

impl Model {
    /// Apply a patch all-or-nothing; on error the model is unchanged.
    pub fn apply(&mut self, patch: Patch) -> Result<PatchRecord> {
        Ok(self
            .apply_all(vec![patch])?
            .pop()
            .expect("one record per patch"))
    }

    /// Apply patches in order, all-or-nothing as a group (one working copy for all).
    pub fn apply_all(&mut self, patches: Vec<Patch>) -> Result<Vec<PatchRecord>> {
        let mut work = Working::of(self);
        let mut records = Vec::with_capacity(patches.len());
        for p in &patches {
            work.run(p)?;
            // Check after each patch so an error names the patch that broke the graph.
            work.check().map_err(|e| p.wrap(e))?;
            work.resort = false;
            records.push(PatchRecord {
                label: p.label.clone(),
                ops: p.ops.len(),
            });
        }
        self.proto.graph = Some(work.graph);
        self.proto.opset_import = work.opsets;
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::{self, node};

    fn bn_names(m: &Model) -> (String, String) {
        let bn = m
            .graph()
            .node
            .iter()
            .find(|n| n.op_type == "BatchNormalization")
            .unwrap();
        (bn.input[0].clone(), bn.output[0].clone())
    }

    #[test]
    fn removes_a_node_after_rewiring_its_readers() {
        let mut m = builder::conv_net(1);
        let (conv_out, bn_out) = bn_names(&m);
        let n_before = m.graph().node.len();
        let rec = m
            .apply(
                Patch::new("drop BatchNormalization bn")
                    .rewire(&bn_out, &conv_out, &[])
                    .remove_node(NodeRef::Output(bn_out.clone())),
            )
            .unwrap();
        assert_eq!(
            rec,
            PatchRecord {
                label: "drop BatchNormalization bn".into(),
                ops: 2
            }
        );
        assert_eq!(m.graph().node.len(), n_before - 1);
        check_graph(m.graph(), &HashSet::new()).unwrap();
    }

    #[test]
    fn failing_patch_leaves_model_unchanged_and_names_label_and_node() {
        let mut m = builder::conv_net(1);
        let before = m.proto.clone();
        let (_, bn_out) = bn_names(&m);
        // Removing BN without rewiring leaves Relu reading a tensor nobody produces.
        let e = m
            .apply(Patch::new("bad removal").remove_node(NodeRef::Output(bn_out.clone())))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("patch 'bad removal': node 'relu"), "{e}");
        assert!(e.contains(&bn_out), "{e}");
        assert_eq!(m.proto, before);
    }

    #[test]
    fn rejects_empty_label_no_ops_and_missing_targets() {
        let m = builder::mlp(&[2, 2], 1);
        let e = Patch::new("  ").remove_node("x").validate(&m).unwrap_err();
        assert!(e.to_string().contains("non-empty label"), "{e}");
        assert!(Patch::new("nothing").validate(&m).is_err());
        let e = Patch::new("ghost")
            .remove_node("ghost")
            .validate(&m)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "patch 'ghost': operation 1: node 'ghost' does not exist"
        );
    }

    #[test]
    fn topological_insertion_and_cycle_detection() {
        let mut m = builder::mlp(&[4, 8, 2], 1);
        let first_out = m.graph().node[0].output[0].clone();
        m.apply(
            Patch::new("insert identity")
                .add_node(
                    node("id", "Identity", &[&first_out], &["id_out"], vec![]),
                    Position::Topological,
                )
                .rewire(&first_out, "id_out", &["id"]),
        )
        .unwrap();
        assert_eq!(m.graph().node[1].name, "id");
        // Feeding the identity from its own consumer closes a loop.
        let consumer = m.graph().node[2].output[0].clone();
        let e = m
            .apply(Patch::new("loop").op(PatchOp::SetNodeInput {
                node: "id".into(),
                index: 0,
                name: consumer,
            }))
            .unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
    }

    #[test]
    fn duplicate_producers_are_refused() {
        let mut m = builder::mlp(&[4, 2], 1);
        let e = m
            .apply(Patch::new("dup").add_node(
                node("d", "Relu", &["x"], &["y"], vec![]),
                Position::Index(0),
            ))
            .unwrap_err();
        assert!(e.to_string().contains("already produced"), "{e}");
    }

    #[test]
    fn initializer_operations() {
        let mut m = builder::mlp(&[2, 3], 1);
        let w = m.graph().initializer[0].clone();
        let mut w2 = tensor_data::from_f32(&w.name, &w.dims, &[0.5; 6]).unwrap();
        m.apply(Patch::new("zero w").replace_initializer(w2.clone()))
            .unwrap();
        assert_eq!(
            tensor_data::to_f32(&m.graph().initializer[0]).unwrap(),
            vec![0.5; 6]
        );
        w2.name = "extra".into();
        m.apply(Patch::new("add extra").add_initializer(w2.clone()))
            .unwrap();
        assert!(m.apply(Patch::new("again").add_initializer(w2)).is_err());
        m.apply(Patch::new("remove extra").remove_initializer("extra"))
            .unwrap();
        // set_initializer adds, then replaces.
        let t = tensor_data::from_f32("s", &[1], &[1.0]).unwrap();
        m.apply(Patch::new("set s").set_initializer(t)).unwrap();
        let t = tensor_data::from_f32("s", &[1], &[2.0]).unwrap();
        m.apply(Patch::new("reset s").set_initializer(t)).unwrap();
        let s = m.graph().initializer.iter().filter(|t| t.name == "s");
        assert_eq!(s.count(), 1);
        // Removing a used initializer breaks its reader.
        assert!(m
            .apply(Patch::new("remove used").remove_initializer(&w.name))
            .is_err());
    }

    #[test]
    fn constant_nodes_become_initializers() {
        let mut m = builder::constant_weights(1);
        let consts: Vec<String> = m
            .graph()
            .node
            .iter()
            .filter(|n| n.op_type == "Constant")
            .map(|n| n.output[0].clone())
            .collect();
        let mut p = Patch::new("constants to initializers");
        for c in &consts {
            p.push(PatchOp::ConstantToInitializer(c.clone()));
        }
        m.apply(p).unwrap();
        assert!(m.graph().node.iter().all(|n| n.op_type != "Constant"));
        assert_eq!(m.graph().initializer.len(), consts.len());
        assert_eq!(m.graph().initializer[0].name, consts[0]);
    }

    #[test]
    fn outputs_opsets_and_attributes() {
        let mut m = builder::conv_net(1);
        let (conv_out, _) = bn_names(&m);
        m.apply(
            Patch::new("expose conv1 and bump opset")
                .add_output(builder::value_info(
                    &conv_out,
                    crate::model::DataType::Float,
                    &[],
                ))
                .set_opset("", 17)
                .set_opset("com.microsoft", 1)
                .set_attribute(NodeRef::Output(conv_out.clone()), attr::int("group", 1)),
        )
        .unwrap();
        assert_eq!(m.graph().output.len(), 2);
        assert_eq!(m.proto.opset_import.len(), 2);
        assert_eq!(m.proto.opset_import[0].version, Some(17));
        m.apply(Patch::new("hide conv1").remove_output(&conv_out))
            .unwrap();
        assert!(m.apply(Patch::new("hide y").remove_output("y")).is_err());
        assert!(m
            .apply(Patch::new("nope").remove_output("not-an-output"))
            .is_err());
    }

    #[test]
    fn rewire_reaches_into_if_branches() {
        let mut m = builder::if_model(1);
        m.apply(
            Patch::new("scale again before If")
                .add_node(
                    node("mul2", "Mul", &["xw", "w"], &["xw2"], vec![]),
                    Position::Topological,
                )
                .rewire("xw", "xw2", &["mul2"]),
        )
        .unwrap();
        let index = GraphIndex::new(m.graph());
        let if_node = index.producer("y").unwrap();
        assert_eq!(
            index.uses(if_node),
            &["cond".to_string(), "xw2".to_string()]
        );
        // apply_all is all-or-nothing across patches.
        let before = m.proto.clone();
        let e = m.apply_all(vec![
            Patch::new("fine").set_opset("", 14),
            Patch::new("broken").remove_node("mul"),
        ]);
        assert!(e.unwrap_err().to_string().starts_with("patch 'broken'"));
        assert_eq!(m.proto, before);
    }

    #[test]
    fn node_ref_of_prefers_the_first_output_which_stays_unique() {
        let n = node("same", "Relu", &["x"], &["", "r"], vec![]);
        assert_eq!(NodeRef::of(&n), NodeRef::Output("r".into()));
        let sink = node("sink", "Print", &["x"], &[], vec![]);
        assert_eq!(NodeRef::of(&sink), NodeRef::Name("sink".into()));
    }
}
