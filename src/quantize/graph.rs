//! The quantizer's own graph helpers, for what `model/` deliberately does not decide:
//! how a node is keyed in `--exclude-node` and in reports ([`node_key`]), the rank
//! heuristics the Softmax-axis checks rely on ([`infer_ranks`]), and dropping the
//! initializers a rewrite left unread ([`prune_initializers`]), and the part of a rewritten
//! model that computes differently from the original ([`Downstream`]). Graph indexing,
//! patches, tensor decoding and attributes come from `crate::model`.

use std::collections::{HashMap, HashSet};

use prost::Message;

use crate::error::Result;
use crate::model::attr::NodeExt;
use crate::model::graph::{self, GraphIndex};
use crate::model::patch::Patch;
use crate::model::{tensor_data, GraphProto, Model, NodeProto, TensorProto, ValueInfoProto};

/// The name `--exclude-node` matches and reports show: the node's name, else (for the
/// many exported graphs with unnamed nodes) its first output. Also the stem of the names
/// the quantizer gives the tensors it adds for a node, so it must stay stable.
pub fn node_key(node: &NodeProto) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else {
        node.output.first().cloned().unwrap_or_default()
    }
}

/// Drop the initializers no node reads any more (the float weights a quantizing rewrite
/// replaced), as one patch. Not listed among a run's rewrites: it changes no computation.
pub fn prune_initializers(model: &mut Model) -> Result<()> {
    let unused = graph::unused_initializers(model.graph());
    if unused.is_empty() {
        return Ok(());
    }
    let mut p = Patch::new(format!("drop {} unused initializers", unused.len()));
    for name in &unused {
        p = p.remove_initializer(name);
    }
    model.apply(p)?;
    Ok(())
}

/// The nodes of a rewritten model that compute differently from the original, and every
/// node they feed: what must run again to see a rewrite's effect on the outputs. Everything
/// upstream computes as in the original, so its values can be taken from one run of the
/// original and fed in ([`Downstream::inputs`]).
///
/// Why: the accuracy guard ranks nodes by the error each adds quantized alone, one model
/// per node. On the PP-OCR detector that was 35 runs of the whole model on 640x640 pages,
/// 16 of the search's 22 s, while a conv halfway down the backbone changes nothing above
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downstream {
    /// Indices of the nodes to run (of the rewritten model), in graph order: the changed
    /// nodes, their consumers' closure and the `Constant` nodes these read.
    nodes: Vec<usize>,
    /// Tensors the nodes read from outside: computed upstream exactly as in the original,
    /// or graph inputs. Initializers are not among them.
    pub inputs: Vec<String>,
    /// The rewritten model's graph outputs these nodes produce (the others equal the
    /// original's).
    pub outputs: Vec<String>,
}

impl Downstream {
    /// What of `changed` differs from `base`: a node that is not, field for field, one of
    /// `base`'s nodes has changed (a node the rewrite added, or one whose inputs it
    /// rewired), and so has every node reading an initializer whose contents differ from
    /// `base`'s of the same name, and every node reading what a changed node writes,
    /// transitively (subgraph outer reads included).
    pub fn of(base: &Model, changed: &Model) -> Self {
        let same: HashSet<Vec<u8>> = base
            .graph()
            .node
            .iter()
            .map(Message::encode_to_vec)
            .collect();
        let g = changed.graph();
        let index = GraphIndex::new(g);
        let mut keep = vec![false; g.node.len()];
        let mut stack: Vec<usize> = (0..g.node.len())
            .filter(|&i| !same.contains(&g.node[i].encode_to_vec()))
            .collect();
        // An initializer the rewrite replaced under its old name changes its readers.
        let base_inits: HashMap<&str, &TensorProto> = base
            .graph()
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        for t in &g.initializer {
            if base_inits.get(t.name.as_str()).is_some_and(|b| *b != t) {
                stack.extend(index.consumers(&t.name));
            }
        }
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut keep[i], true) {
                continue;
            }
            for o in g.node[i].output.iter().filter(|o| !o.is_empty()) {
                stack.extend(index.consumers(o).iter().filter(|&&c| !keep[c]));
            }
        }
        let produced: HashSet<&str> = (0..g.node.len())
            .filter(|&i| keep[i])
            .flat_map(|i| g.node[i].output.iter().map(String::as_str))
            .collect();
        let mut inputs: Vec<String> = Vec::new();
        let mut constants: Vec<usize> = Vec::new();
        for i in (0..g.node.len()).filter(|&i| keep[i]) {
            for name in index.uses(i) {
                if produced.contains(name.as_str()) || index.is_initializer(name) {
                    continue;
                }
                match index.producer(name) {
                    Some(p) if g.node[p].op_type == "Constant" && g.node[p].input.is_empty() => {
                        constants.push(p)
                    }
                    _ if !inputs.contains(name) => inputs.push(name.clone()),
                    _ => {}
                }
            }
        }
        for p in constants {
            keep[p] = true;
        }
        let outputs = g
            .output
            .iter()
            .filter(|o| produced.contains(o.name.as_str()))
            .map(|o| o.name.clone())
            .collect();
        Downstream {
            nodes: (0..g.node.len()).filter(|&i| keep[i]).collect(),
            inputs,
            outputs,
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The part of `changed` to run, as a model of its own: the nodes, reading
    /// [`Downstream::inputs`] as graph inputs (declared as `changed` declares them where
    /// they are its graph inputs, else as in `declared`: the values that will be fed), and
    /// writing [`Downstream::outputs`].
    pub fn model(
        &self,
        changed: &Model,
        declared: &HashMap<String, ValueInfoProto>,
    ) -> Result<Model> {
        let mut m = changed.clone();
        let g = m.graph_mut();
        let nodes = std::mem::take(&mut g.node);
        g.node = self.nodes.iter().map(|&i| nodes[i].clone()).collect();
        g.output.retain(|o| self.outputs.contains(&o.name));
        let stored: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
        // Old-IR models list initializers among the inputs: those stay, while stored.
        let mut inputs: Vec<ValueInfoProto> = g
            .input
            .iter()
            .filter(|i| stored.contains(&i.name) || self.inputs.contains(&i.name))
            .cloned()
            .collect();
        for name in &self.inputs {
            if inputs.iter().any(|i| &i.name == name) {
                continue;
            }
            let vi = declared.get(name).cloned().ok_or_else(|| {
                crate::error::Error::Runtime(format!(
                    "no value of '{name}' to feed the rewritten part of the model"
                ))
            })?;
            inputs.push(vi);
        }
        g.input = inputs;
        prune_initializers(&mut m)?;
        let g = m.graph_mut();
        let stored: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
        let inputs = std::mem::take(&mut g.input);
        g.input = inputs
            .into_iter()
            .filter(|i| stored.contains(&i.name) || self.inputs.contains(&i.name))
            .collect();
        Ok(m)
    }
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
    let ix = GraphIndex::new(graph);
    for v in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        if let Some(k) = ix.declared_rank(&v.name) {
            r.insert(v.name.clone(), k);
        }
    }
    for t in &graph.initializer {
        r.insert(t.name.clone(), t.dims.len());
    }
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
            "Transpose" if !ints(n, "perm").is_empty() => Some(ints(n, "perm").len()),
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
                if n.attr_i_or("keepdims", 1).unwrap_or(1) == 1 {
                    first
                } else {
                    let axes = ints(n, "axes");
                    first.and_then(|k| (!axes.is_empty()).then(|| k - axes.len()))
                }
            }
            "Squeeze" => first.and_then(|k| {
                let a = axes(n, &ix);
                (!a.is_empty()).then(|| k - a.len())
            }),
            "Unsqueeze" => first.and_then(|k| {
                let a = axes(n, &ix);
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

/// An ints attribute, empty when absent or malformed: rank inference is best effort and
/// gives up on a node rather than failing the run.
fn ints(n: &NodeProto, name: &str) -> Vec<i64> {
    n.attr_opt_ints(name).ok().flatten().unwrap_or_default()
}

/// Squeeze/Unsqueeze axes: the attribute (opset < 13) or the constant int64 input.
fn axes(n: &NodeProto, ix: &GraphIndex) -> Vec<i64> {
    let a = ints(n, "axes");
    if !a.is_empty() {
        return a;
    }
    n.input
        .get(1)
        .and_then(|s| ix.initializer(s))
        .and_then(|t| tensor_data::to_vec::<i64>(t).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::{fixed, value_info, GraphBuilder, WeightStorage};
    use crate::model::DataType;
    use crate::quantize::engine::RuntimeEngine;
    use crate::quantize::runner::{Engine, NamedTensor};

    /// `x -> Relu a`; `a -> Shape s` (int64); `a -> Sigmoid b`; `Add(b, a) c` (a skip);
    /// `Add(c, k) e` with `k` a Constant node; `Reshape(e, s) -> Neg y`; `a -> Abs z`.
    /// With `changed`, the Sigmoid is a Tanh: what a rewrite of one node looks like.
    fn net(changed: bool) -> Model {
        let mut g = GraphBuilder::new("net", 1, WeightStorage::ConstantNodes);
        let x = g.input("x", DataType::Float, &fixed(&[2, 4]));
        let a = g.op("Relu", &[&x], vec![]);
        let s = g.op("Shape", &[&a], vec![]);
        let b = g.op(if changed { "Tanh" } else { "Sigmoid" }, &[&a], vec![]);
        let c = g.op("Add", &[&b, &a], vec![]);
        let k = g.weight("k", &[4], -1.0, 1.0);
        let e = g.op("Add", &[&c, &k], vec![]);
        let r = g.op("Reshape", &[&e, &s], vec![]);
        let y = g.op("Neg", &[&r], vec![]);
        let z = g.op("Abs", &[&a], vec![]);
        g.rename_output(&y, "y");
        g.rename_output(&z, "z");
        g.output("y", DataType::Float, &fixed(&[2, 4]));
        g.output("z", DataType::Float, &fixed(&[2, 4]));
        g.into_model()
    }

    #[test]
    fn an_initializer_replaced_under_its_name_changes_its_readers() {
        // `SetInitializer` replaces a tensor in place: the nodes reading it are unchanged
        // field for field, but compute differently.
        let build = |k_first: f32| {
            let mut g = GraphBuilder::new("init", 1, WeightStorage::Initializer);
            let x = g.input("x", DataType::Float, &fixed(&[2, 4]));
            let k = g.weight("k", &[4], -1.0, 1.0);
            let a = g.op("Add", &[&x, &k], vec![]);
            let y = g.op("Relu", &[&a], vec![]);
            let z = g.op("Abs", &[&x], vec![]);
            g.rename_output(&y, "y");
            g.rename_output(&z, "z");
            g.output("y", DataType::Float, &fixed(&[2, 4]));
            g.output("z", DataType::Float, &fixed(&[2, 4]));
            let mut m = g.into_model();
            let t = &mut m.graph_mut().initializer[0];
            let mut values = tensor_data::to_f32(t).unwrap();
            values[0] = k_first;
            t.raw_data = None;
            t.float_data = values;
            m
        };
        let changed = build(0.5);
        let d = Downstream::of(&build(0.25), &changed);
        let ops: Vec<&str> = d
            .nodes
            .iter()
            .map(|&i| changed.graph().node[i].op_type.as_str())
            .collect();
        assert_eq!(ops, ["Add", "Relu"]);
        assert_eq!(d.inputs, ["x"]);
        assert_eq!(d.outputs, ["y"]);
        assert!(Downstream::of(&build(0.25), &build(0.25)).is_empty());
    }

    #[test]
    fn downstream_is_the_changed_node_and_what_it_feeds_read_from_upstream_values() {
        let (base, changed) = (net(false), net(true));
        let d = Downstream::of(&base, &changed);
        // The Tanh, the two Adds, the Reshape and the Neg, plus the Constant node `k`; not
        // the Relu, the Shape or the Abs, which compute as before.
        let ops: Vec<&str> = d
            .nodes
            .iter()
            .map(|&i| changed.graph().node[i].op_type.as_str())
            .collect();
        assert_eq!(ops, ["Tanh", "Add", "Constant", "Add", "Reshape", "Neg"]);
        assert_eq!(d.inputs, ["relu1_out", "shape2_out"]);
        assert_eq!(d.outputs, ["y"]);
        assert!(Downstream::of(&base, &base).is_empty());

        // Declared from the values fed; a value nobody gathered is an error, not a guess.
        let mut declared = HashMap::new();
        declared.insert(
            "relu1_out".to_string(),
            value_info("relu1_out", DataType::Float, &fixed(&[2, 4])),
        );
        assert!(d.model(&changed, &declared).is_err());
        declared.insert(
            "shape2_out".to_string(),
            value_info("shape2_out", DataType::Int64, &fixed(&[2])),
        );
        let part = d.model(&changed, &declared).unwrap();
        let inputs: Vec<&str> = part.graph().input.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(inputs, ["relu1_out", "shape2_out"]);
        let outputs: Vec<&str> = part
            .graph()
            .output
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(outputs, ["y"]);

        // Fed the upstream values of a run of the whole model, the part computes its output.
        if crate::runtime::ensure_for_tests().is_none() {
            return;
        }
        let engine = RuntimeEngine::new(None, 1).unwrap();
        let x = NamedTensor::f32(
            "x",
            vec![2, 4],
            vec![-1.0, 0.5, 2.0, -3.0, 0.0, 1.5, -0.5, 4.0],
        );
        let wanted: Vec<String> = ["y", "relu1_out", "shape2_out"].map(String::from).to_vec();
        let mut exposing = changed.clone();
        for name in &wanted[1..] {
            exposing.graph_mut().output.push(ValueInfoProto {
                name: name.clone(),
                ..Default::default()
            });
        }
        let whole = engine
            .load_for_calibration(&exposing.to_bytes())
            .unwrap()
            .run(&[x], &wanted)
            .unwrap();
        let got = engine
            .load(&part.to_bytes())
            .unwrap()
            .run(&whole[1..], &["y".to_string()])
            .unwrap();
        assert_eq!(got[0].floats(), whole[0].floats());
    }
}
