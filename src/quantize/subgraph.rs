//! Rewrites inside subgraphs: the bodies of `If`, `Loop` and `Scan` nodes.
//!
//! Recurrent and streaming models keep their compute there (Silero VAD: every Conv and
//! LSTM sits inside `If` branches on the sample rate), so a mode that only looks at the main
//! graph finds "nothing to quantize" in them. [`nested`] runs a mode's own main-graph
//! rewrite on each subgraph, deepest first, as a model of its own:
//!
//! - the names the body reads from enclosing scopes are declared as extra inputs, typed from
//!   the enclosing graph where the type is known (so the rewrite's checks and typing see
//!   them), or, for the quantizing modes, copied in as initializers when they are
//!   initializers outside (a weight held by the main graph and read in a branch is
//!   quantized in the branch);
//! - its `Constant` nodes become initializers first (what preparation does for the main
//!   graph), so exported weights held in `Constant`s are found;
//! - afterwards the extra inputs and the copied initializers are dropped again (the body
//!   reads the outer names as before) and the rewritten body is set back on its node. The
//!   result is a list of patch operations for the main graph, one `SetAttribute` per
//!   rewritten body plus the opsets the bodies now need, which the caller puts in its own
//!   labelled patch.
//!
//! What a rewrite leaves in float inside subgraphs is counted by op ([`Nested::left`]) so
//! that no mode leaves a subgraph in float without saying so ([`Nested::float_warning`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::graph::node_key;
use crate::error::Result;
use crate::model::graph::{is_default_domain, outer_scope_reads};
use crate::model::patch::{NodeRef, Patch, PatchOp};
use crate::model::proto::{type_proto, GraphProto, ModelProto, TypeProto, ValueInfoProto};
use crate::model::Model;

/// Ops whose compute the quantizing modes target: what counts as "left in float" when a
/// subgraph still holds them unrewritten.
pub const COMPUTE_OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "LSTM",
    "GRU",
    "RNN",
];

/// What a mode's main-graph rewrite did to one (sub)graph, as [`nested`] needs it.
pub struct Rewritten {
    /// The rewritten model (its main graph is the subgraph).
    pub model: Model,
    /// Keys ([`node_key`]) of the compute nodes it rewrote.
    pub nodes: Vec<String>,
}

/// How the enclosing scope's names are made visible to a body being rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OuterNames {
    /// As typed graph inputs only (the rewrite reads them as it reads activations).
    Inputs,
    /// Initializers of the enclosing graph are copied in as initializers (so a weight held
    /// outside is quantized inside); everything else as typed inputs.
    CopyInitializers,
}

/// The patch operations for the main graph and what they did, over every level.
#[derive(Clone, Debug, Default)]
pub struct Nested {
    /// `SetAttribute` (rewritten bodies) and `SetOpset` operations for the main graph.
    pub ops: Vec<PatchOp>,
    /// Compute nodes rewritten inside subgraphs, all levels.
    pub nodes: usize,
    /// Subgraphs with at least one node rewritten.
    pub graphs: usize,
    /// Compute nodes left in float inside subgraphs, by op type.
    pub left: BTreeMap<String, usize>,
    /// Subgraphs still holding compute nodes left in float.
    pub left_graphs: usize,
    /// Subgraphs seen, all levels.
    pub seen: usize,
}

impl Nested {
    /// Whether anything was rewritten.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// `Conv x12, LSTM x4`.
    pub fn left_ops(&self) -> String {
        self.left
            .iter()
            .map(|(op, n)| format!("{op} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line when compute inside subgraphs stayed float: names the mode, how many
    /// subgraphs and which ops.
    pub fn float_warning(&self, mode: &str) -> Option<String> {
        if self.left.is_empty() {
            return None;
        }
        let n: usize = self.left.values().sum();
        Some(format!(
            "{mode}: {n} compute node(s) in {} of {} subgraph(s) left in float ({}): {mode} does not rewrite them there",
            self.left_graphs,
            self.seen,
            self.left_ops()
        ))
    }

    /// Add the operations to `p` (they must be applied to the model `nested` ran on).
    pub fn extend_patch(&self, mut p: Patch) -> Patch {
        for op in &self.ops {
            p.push(op.clone());
        }
        p
    }

    fn absorb(&mut self, inner: &Nested) {
        self.nodes += inner.nodes;
        self.graphs += inner.graphs;
        self.left_graphs += inner.left_graphs;
        self.seen += inner.seen;
        for (op, n) in &inner.left {
            *self.left.entry(op.clone()).or_default() += n;
        }
    }
}

/// A mode's rewrite of one graph (the main graph of the model it is given): `None` when it
/// has nothing to do there.
pub type GraphRewrite<'a> = dyn FnMut(&Model) -> Result<Option<Rewritten>> + 'a;

/// Run `rewrite` on every subgraph of `model`'s main graph, recursively, deepest first
/// (see the module docs). The main graph itself is not touched: the caller rewrites it
/// and applies the returned operations in the same patch or after it.
pub fn nested(model: &Model, outer: OuterNames, rewrite: &mut GraphRewrite<'_>) -> Result<Nested> {
    let mut shell = ModelProto {
        ir_version: model.proto.ir_version,
        opset_import: model.proto.opset_import.clone(),
        functions: model.proto.functions.clone(),
        ..Default::default()
    };
    shell.graph = None;
    // A body's new names must not clash with a name already in the model at any level (a
    // weight quantized both in the main graph and in a branch would otherwise be defined
    // twice in one scope chain, which ONNX Runtime refuses).
    let existing = all_names(model.graph());
    level(model.graph(), &shell, outer, &existing, rewrite)
}

fn level(
    g: &GraphProto,
    shell: &ModelProto,
    outer: OuterNames,
    existing: &HashSet<String>,
    rewrite: &mut GraphRewrite<'_>,
) -> Result<Nested> {
    let types = super::fp16::elem_types(g);
    let inits: HashMap<&str, &crate::model::TensorProto> =
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut out = Nested::default();
    let mut opsets: BTreeMap<String, i64> = BTreeMap::new();
    for n in &g.node {
        for a in &n.attribute {
            let Some(body) = &a.g else { continue };
            out.seen += 1;
            let (changed, done) = one_body(body, &types, &inits, shell, outer, existing, rewrite)?;
            out.absorb(&done);
            let Some((new_body, sub_opsets)) = changed else {
                continue;
            };
            for o in sub_opsets {
                opsets.insert(o.0, o.1);
            }
            out.ops.push(PatchOp::SetAttribute {
                node: NodeRef::of(n),
                attribute: Box::new(crate::model::attr::graph(&a.name, new_body)),
            });
        }
    }
    let have: HashSet<&str> = shell
        .opset_import
        .iter()
        .map(|o| o.domain.as_str())
        .collect();
    for (domain, version) in opsets {
        if !have.contains(domain.as_str()) {
            out.ops.push(PatchOp::SetOpset { domain, version });
        }
    }
    Ok(out)
}

/// A rewritten body and the opsets (domain, version) it needs.
type NewBody = (GraphProto, Vec<(String, i64)>);

/// Rewrite one body (its own subgraphs first). Returns the new body and the opsets it needs
/// that the enclosing model lacks (`None` when nothing changed in it), and the counts (this
/// body and its nested ones, left-in-float ones included).
fn one_body(
    body: &GraphProto,
    outer_types: &HashMap<String, i32>,
    outer_inits: &HashMap<&str, &crate::model::TensorProto>,
    shell: &ModelProto,
    outer: OuterNames,
    existing: &HashSet<String>,
    rewrite: &mut GraphRewrite<'_>,
) -> Result<(Option<NewBody>, Nested)> {
    let declared = body.input.len();
    let mut g = body.clone();
    let mut copied: HashSet<String> = HashSet::new();
    for name in outer_scope_reads(body) {
        if outer == OuterNames::CopyInitializers {
            if let Some(t) = outer_inits.get(name.as_str()) {
                g.initializer.push((*t).clone());
                copied.insert(name);
                continue;
            }
        }
        g.input
            .push(typed_input(&name, outer_types.get(&name).copied()));
    }
    let mut sub = Model::from_proto(ModelProto {
        graph: Some(g),
        ..shell.clone()
    });
    let mut counts = Nested::default();
    // Deeper bodies first: their rewrite is part of this body before this level's runs.
    let deeper = level(sub.graph(), shell, outer, existing, rewrite)?;
    counts.absorb(&deeper);
    let mut changed = false;
    if !deeper.is_empty() {
        let p = deeper.extend_patch(Patch::new(format!(
            "rewritten subgraphs: {} nodes",
            deeper.nodes
        )));
        sub.apply(p)?;
        changed = true;
    }
    let compute: Vec<(String, String)> = sub
        .graph()
        .node
        .iter()
        .filter(|n| is_default_domain(&n.domain) && COMPUTE_OPS.contains(&n.op_type.as_str()))
        .map(|n| (node_key(n), n.op_type.clone()))
        .collect();
    let mut prepared = sub.clone();
    let p = super::prepare::constants_to_initializers(&prepared)?;
    if !p.ops.is_empty() {
        prepared.apply(p)?;
    }
    let before = all_names(prepared.graph());
    let clashes = |m: &Model| {
        all_names(m.graph())
            .iter()
            .any(|n| !before.contains(n) && existing.contains(n))
    };
    let rewritten = rewrite(&prepared)?;
    let done: HashSet<String> = match rewritten {
        // A rewrite whose new names clash with the model's is dropped: that body stays as
        // it was, and what it holds counts as left in float.
        Some(r) if !r.nodes.is_empty() && !clashes(&r.model) => {
            sub = r.model;
            changed = true;
            counts.graphs += 1;
            counts.nodes += r.nodes.len();
            r.nodes.into_iter().collect()
        }
        _ => HashSet::new(),
    };
    let mut left_here = false;
    for (key, op) in &compute {
        if !done.contains(key) {
            *counts.left.entry(op.clone()).or_default() += 1;
            left_here = true;
        }
    }
    counts.left_graphs += usize::from(left_here);
    if !changed {
        // Only the counts of what stayed float travel up.
        return Ok((None, counts));
    }
    let opsets: Vec<(String, i64)> = sub
        .proto
        .opset_import
        .iter()
        .filter(|o| !shell.opset_import.iter().any(|s| s.domain == o.domain))
        .map(|o| (o.domain.clone(), o.version.unwrap_or(1)))
        .collect();
    let mut g = sub.proto.graph.take().unwrap_or_default();
    g.input.truncate(declared);
    g.initializer.retain(|t| !copied.contains(&t.name));
    Ok((Some((g, opsets)), counts))
}

/// Every name in `g` and its subgraphs: inputs, outputs, initializers, value_info, node
/// names and the tensors nodes read and write.
pub fn all_names(g: &GraphProto) -> HashSet<String> {
    let mut names = HashSet::new();
    crate::model::for_each_graph(g, &mut |sub| {
        names.extend(
            sub.input
                .iter()
                .chain(&sub.output)
                .chain(&sub.value_info)
                .map(|v| v.name.clone()),
        );
        names.extend(sub.initializer.iter().map(|t| t.name.clone()));
        for n in &sub.node {
            names.extend(
                n.input
                    .iter()
                    .chain(&n.output)
                    .filter(|s| !s.is_empty())
                    .cloned(),
            );
            if !n.name.is_empty() {
                names.insert(n.name.clone());
            }
        }
    });
    names
}

/// A graph input of the given element type (unknown type: no type at all).
fn typed_input(name: &str, elem_type: Option<i32>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: elem_type.map(|t| TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(t),
                shape: None,
            })),
            denotation: String::new(),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attr;
    use crate::model::builder::{model_from_graph, node, value_info};
    use crate::model::graph::Dim;
    use crate::model::{tensor_data, DataType};
    use crate::quantize::runner::{Feed, NamedTensor};
    use crate::quantize::{qdq, Mode, Options};

    /// Deterministic values in [-amp, amp).
    fn values(n: usize, seed: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0) * amp)
            .collect()
    }

    fn weight(name: &str, dims: &[i64], seed: usize, amp: f32) -> crate::model::TensorProto {
        let n = dims.iter().product::<i64>() as usize;
        tensor_data::from_f32(name, dims, &values(n, seed, amp)).unwrap()
    }

    /// `y = If(cond, then, else)` on `x[N, 64]`, all compute inside the branches, as Silero
    /// VAD keeps it: `then = MatMul(Relu(MatMul(x, w_outer)), wc)` where `w_outer` is an
    /// initializer of the main graph and `wc` a `Constant` node of the branch; `else =
    /// Gemm(x, w_else, transB) + Squeeze(LSTM(Unsqueeze(x)).Y_h)` with its weights as the
    /// branch's own initializers. Three nodes every quantizing mode can rewrite in the
    /// branches (two MatMuls, a Gemm), one it cannot (the LSTM: only int8-dynamic does).
    fn if_compute_model() -> Model {
        let n = Dim::Symbol("N".into());
        let xy = |name: &str| value_info(name, DataType::Float, &[n.clone(), Dim::Fixed(64)]);
        let then_branch = GraphProto {
            name: "then".into(),
            node: vec![
                node(
                    "wc_const",
                    "Constant",
                    &[],
                    &["wc"],
                    vec![attr::tensor("value", {
                        let mut t = weight("", &[64, 64], 2, 0.2);
                        t.name.clear();
                        t
                    })],
                ),
                node("then_mm1", "MatMul", &["x", "w_outer"], &["then_h"], vec![]),
                node("then_relu", "Relu", &["then_h"], &["then_r"], vec![]),
                node("then_mm2", "MatMul", &["then_r", "wc"], &["then_y"], vec![]),
            ],
            output: vec![xy("then_y")],
            ..Default::default()
        };
        let else_branch = GraphProto {
            name: "else".into(),
            node: vec![
                node(
                    "else_gemm",
                    "Gemm",
                    &["x", "w_else", "b_else"],
                    &["else_g"],
                    vec![attr::int("transB", 1)],
                ),
                node(
                    "else_unsq",
                    "Unsqueeze",
                    &["x", "axes0"],
                    &["else_x3"],
                    vec![],
                ),
                node(
                    "else_lstm",
                    "LSTM",
                    &["else_x3", "lstm_w", "lstm_r"],
                    &["", "else_h"],
                    vec![attr::int("hidden_size", 64)],
                ),
                node(
                    "else_sq",
                    "Squeeze",
                    &["else_h", "axes0"],
                    &["else_hs"],
                    vec![],
                ),
                node(
                    "else_add",
                    "Add",
                    &["else_g", "else_hs"],
                    &["else_y"],
                    vec![],
                ),
            ],
            initializer: vec![
                weight("w_else", &[64, 64], 3, 0.2),
                weight("b_else", &[64], 4, 0.1),
                weight("lstm_w", &[1, 256, 64], 5, 0.1),
                weight("lstm_r", &[1, 256, 64], 6, 0.1),
                tensor_data::from_i64("axes0", &[1], &[0]).unwrap(),
            ],
            output: vec![xy("else_y")],
            ..Default::default()
        };
        let graph = GraphProto {
            name: "if_compute".into(),
            node: vec![node(
                "if",
                "If",
                &["cond"],
                &["y"],
                vec![
                    attr::graph("then_branch", then_branch),
                    attr::graph("else_branch", else_branch),
                ],
            )],
            initializer: vec![weight("w_outer", &[64, 64], 1, 0.2)],
            input: vec![xy("x"), value_info("cond", DataType::Bool, &[])],
            output: vec![xy("y")],
            ..Default::default()
        };
        model_from_graph(graph, 13)
    }

    fn branch<'a>(m: &'a Model, name: &str) -> &'a GraphProto {
        let n = &m.graph().node.iter().find(|n| n.op_type == "If").unwrap();
        n.attribute
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.g.as_ref())
            .unwrap()
    }

    fn ops(g: &GraphProto) -> Vec<&str> {
        g.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    fn prepared() -> Model {
        let mut m = if_compute_model();
        crate::quantize::prepare::prepare(&mut m).unwrap();
        m
    }

    #[test]
    fn int8_plans_weights_inside_if_branches_and_counts_the_lstm_left_float() {
        let m = prepared();
        let sel = qdq::Selection {
            per_channel: true,
            ..Default::default()
        };
        let plan = qdq::plan(&m, &sel).unwrap();
        assert!(plan.nodes.is_empty(), "nothing in the main graph");
        let n = &plan.nested;
        assert_eq!((n.nodes, n.graphs, n.seen, n.left_graphs), (3, 2, 2, 1));
        assert_eq!(n.left_ops(), "LSTM x1");
        let w = qdq::nested_warnings(&plan, false);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("activations inside subgraphs are not calibrated")
                && w[0].contains("3 Conv/MatMul/Gemm in 2 subgraph(s)"),
            "{}",
            w[0]
        );
        assert!(
            w[1].contains("1 compute node(s) in 1 of 2 subgraph(s) left in float (LSTM x1)"),
            "{}",
            w[1]
        );
        // Weight-only needs no word about activations.
        assert_eq!(qdq::nested_warnings(&plan, true).len(), 1);

        let mut q = m.clone();
        let p = qdq::emit(
            &q,
            &plan,
            &Default::default(),
            &Default::default(),
            &Default::default(),
            true,
        )
        .unwrap();
        assert!(p.label.contains("3 nodes in 2 subgraphs"), "{}", p.label);
        q.apply(p).unwrap();
        crate::quantize::graph::prune_initializers(&mut q).unwrap();
        let then = branch(&q, "then_branch");
        assert_eq!(
            ops(then)
                .iter()
                .filter(|o| **o == "DequantizeLinear")
                .count(),
            2,
            "{:?}",
            ops(then)
        );
        // The main graph's weight is quantized where it is read, and dropped outside.
        let int8 = |g: &GraphProto, name: &str| {
            g.initializer
                .iter()
                .any(|t| t.name == name && t.data_type == Some(DataType::Int8 as i32))
        };
        assert!(int8(then, "w_outer_quantized") && int8(then, "wc_quantized"));
        assert!(
            q.graph().initializer.is_empty(),
            "w_outer is read nowhere now"
        );
        assert!(then.input.is_empty() && then.initializer.iter().all(|t| t.name != "w_outer"));
        let els = branch(&q, "else_branch");
        assert!(int8(els, "w_else_quantized"));
        assert!(ops(els).contains(&"LSTM"));
        assert!(els.initializer.iter().all(|t| t.name != "w_else"));
    }

    #[test]
    fn int4_and_fp16_rewrite_inside_if_branches() {
        let m = prepared();
        let r =
            crate::quantize::nbits::convert(&m, "m.onnx".as_ref(), &Default::default()).unwrap();
        assert_eq!(r.count, 3, "{}", r.variant);
        assert!(r.variant.contains("(3 in subgraphs)"), "{}", r.variant);
        assert!(
            r.warnings.iter().any(|w| w.contains("(LSTM x1)")),
            "{:?}",
            r.warnings
        );
        assert_eq!(
            ops(branch(&r.model, "then_branch")),
            ["MatMulNBits", "Relu", "MatMulNBits"]
        );
        assert!(ops(branch(&r.model, "else_branch")).contains(&"MatMulNBits"));
        assert!(r
            .model
            .proto
            .opset_import
            .iter()
            .any(|o| o.domain == crate::quantize::nbits::MS_DOMAIN));

        let r = crate::quantize::fp16::convert(&m, "m.onnx".as_ref(), &Default::default()).unwrap();
        assert!(r.variant.contains("in 2 subgraphs"), "{}", r.variant);
        let then = branch(&r.model, "then_branch");
        assert!(then
            .initializer
            .iter()
            .any(|t| t.data_type == Some(DataType::Float16 as i32)));
        // float32 at the boundary: the branch's output keeps its type.
        assert_eq!(
            crate::model::graph::elem_type(&then.output[0]),
            Some(DataType::Float as i32)
        );
    }

    #[test]
    fn a_body_rewrite_whose_new_names_clash_with_the_model_is_dropped() {
        // What it protects: `w_outer` quantized in the main graph and in a branch would
        // define `w_outer_quantized` twice along one scope chain (ONNX Runtime: "Graph
        // must be in single static assignment (SSA) form").
        let mut m = prepared();
        m.graph_mut()
            .initializer
            .push(weight("w_outer_quantized", &[1], 9, 1.0));
        let sel = qdq::Selection {
            per_channel: true,
            ..Default::default()
        };
        let n = qdq::nested_weights(&m, &sel).unwrap();
        assert_eq!((n.nodes, n.graphs), (1, 1), "only the else branch (Gemm)");
        assert_eq!(n.left_ops(), "LSTM x1, MatMul x2");
    }

    #[test]
    fn a_model_without_subgraph_compute_still_says_nothing_to_quantize() {
        let m = crate::model::builder::if_model(1);
        let e = crate::quantize::nbits::convert(&m, "m.onnx".as_ref(), &Default::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("If/Loop/Scan bodies"), "{e}");
    }

    fn feeds(n: usize, offset: usize) -> Vec<Feed> {
        (0..n)
            .map(|i| {
                vec![
                    NamedTensor::f32("x", vec![2, 64], values(128, i + offset, 1.0)),
                    NamedTensor {
                        name: "cond".into(),
                        shape: vec![],
                        data: crate::tensor::TensorData::Bool(vec![i % 2 == 0]),
                    },
                ]
            })
            .collect()
    }

    #[test]
    fn every_static_mode_quantizes_inside_if_branches_and_runs_in_onnx_runtime() {
        // What it protects (issue 11, Silero VAD): int8, int8-weight, int4-weight and fp16
        // used to stop at the main graph ("nothing to quantize" on a model whose compute
        // sits in If branches). Both branches are taken (cond alternates), the result must
        // load and stay close to fp32, and the LSTM they cannot rewrite is named.
        if crate::runtime::ensure_for_tests().is_none() {
            return;
        }
        let engine = crate::quantize::engine::RuntimeEngine::new(None, 1).unwrap();
        let model = if_compute_model();
        let (calib, eval) = (feeds(4, 0), feeds(4, 10));
        let options = Options::for_tests;
        for (mode, min_sqnr_db, lstm_warning) in [
            (Mode::Int8, 30.0, true),
            (Mode::Int8Weight, 30.0, true),
            (Mode::Int4Weight, 12.0, true),
            (Mode::Fp16, 45.0, false),
        ] {
            let opts = options(mode);
            let q = crate::quantize::quantize(&model, &calib, &eval, false, &opts, &engine)
                .unwrap_or_else(|e| panic!("{}: {e}", mode.name()));
            let r = &q.report;
            let sqnr = r.outputs[0].sqnr_db.unwrap();
            eprintln!(
                "{}: {} {sqnr:.1} dB {:?}",
                mode.name(),
                r.variant,
                r.warnings
            );
            assert!(sqnr > min_sqnr_db, "{}: {sqnr} dB", mode.name());
            assert!(r.size_ratio < 0.9, "{}: size {}", mode.name(), r.size_ratio);
            assert_eq!(
                r.warnings
                    .iter()
                    .any(|w| w.contains("left in float (LSTM x1)")),
                lstm_warning,
                "{}: {:?}",
                mode.name(),
                r.warnings
            );
        }
        // A target the weights in the branches cannot meet: the guard, which searches the
        // main graph's nodes only, says it has none instead of searching nothing.
        let opts = Options {
            targets: vec![crate::quantize::accuracy::AccuracyFloor::Sqnr(200.0)],
            accuracy_guard: true,
            ..options(Mode::Int8)
        };
        let q = crate::quantize::quantize(&model, &calib, &eval, false, &opts, &engine).unwrap();
        assert!(
            q.report
                .warnings
                .iter()
                .any(|w| w.contains("the guard has no node to keep in float")),
            "{:?}",
            q.report.warnings
        );
    }
}
