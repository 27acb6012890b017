//! Small, deterministic test models built in Rust, so tests across the crate need no Python.
//!
//! [`GraphBuilder`] is the general tool (inputs, outputs, seeded weights, nodes with
//! auto-generated names); the functions below are the stock models every area's tests
//! use. Every model is a valid ONNX model (opset [`DEFAULT_OPSET`], IR version
//! [`DEFAULT_IR_VERSION`]) that ONNX Runtime loads and runs; weights come from a seeded
//! RNG, so the same seed gives byte-identical models.
//!
//! | function | what it isolates |
//! |---|---|
//! | [`mlp`] | Gemm, MatMul+Add, Relu; fixed shapes |
//! | [`conv_net`] | Conv, BatchNormalization, Relu, MaxPool, Flatten, Gemm |
//! | [`symbolic_batch`] | the conv net with batch dim `N` |
//! | [`if_model`] | an `If` whose branches read an outer-scope tensor |
//! | [`constant_weights`] | weights held in `Constant` nodes, as PP-OCR exports them |
//! | [`bert_encoder`] | a transformer: int64 token inputs, attention mask, LayerNorm, GELU |
//!
//! ```
//! use edgepack::model::builder;
//! let m = builder::conv_net(1);
//! assert_eq!(m.graph().input[0].name, "x");
//! assert_eq!(builder::conv_net(1).to_bytes(), m.to_bytes());
//! ```

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::attr;
use super::graph::Dim;
use super::proto::tensor_shape_proto::{self, dimension::Value as DimValue};
use super::proto::type_proto;
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use super::tensor_data;
use super::{DataType, Model};

mod encoder;
pub use encoder::{bert_encoder, EncoderConfig};

/// Opset of builder models.
pub const DEFAULT_OPSET: i64 = 13;
/// IR version of builder models.
pub const DEFAULT_IR_VERSION: i64 = 8;

/// Where the builder stores weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightStorage {
    /// `graph.initializer` (what PyTorch's exporter writes).
    Initializer,
    /// `Constant` nodes (what Paddle2ONNX writes, e.g. PP-OCR).
    ConstantNodes,
}

/// A typed value declaration (graph input, output or value_info).
pub fn value_info(name: &str, dtype: DataType, dims: &[Dim]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype as i32),
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

/// A value declaration with a dtype and no shape at all (rank unknown), e.g. an extra
/// graph output added to observe an intermediate tensor.
pub fn value_info_unshaped(name: &str, dtype: DataType) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype as i32),
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Fixed dims, for brevity.
pub fn fixed(dims: &[i64]) -> Vec<Dim> {
    dims.iter().map(|&d| Dim::Fixed(d)).collect()
}

/// A node with the given op, inputs, outputs and attributes.
pub fn node(
    name: &str,
    op_type: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: name.to_string(),
        op_type: op_type.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}

/// Builds one graph: declare inputs, add seeded weights and nodes, declare outputs.
#[derive(Debug)]
pub struct GraphBuilder {
    graph: GraphProto,
    rng: StdRng,
    storage: WeightStorage,
    counter: usize,
}

impl GraphBuilder {
    /// A builder whose weights come from `seed`, stored as `storage` says.
    pub fn new(name: &str, seed: u64, storage: WeightStorage) -> Self {
        GraphBuilder {
            graph: GraphProto {
                name: name.to_string(),
                ..Default::default()
            },
            rng: StdRng::seed_from_u64(seed),
            storage,
            counter: 0,
        }
    }

    /// Declare a graph input.
    pub fn input(&mut self, name: &str, dtype: DataType, dims: &[Dim]) -> String {
        self.graph.input.push(value_info(name, dtype, dims));
        name.to_string()
    }

    /// Declare a graph output.
    pub fn output(&mut self, name: &str, dtype: DataType, dims: &[Dim]) {
        self.graph.output.push(value_info(name, dtype, dims));
    }

    /// Store a constant tensor (named `t.name`) as this builder stores weights.
    pub fn constant(&mut self, mut t: TensorProto) -> String {
        let name = t.name.clone();
        match self.storage {
            WeightStorage::Initializer => self.graph.initializer.push(t),
            WeightStorage::ConstantNodes => {
                t.name.clear();
                let node_name = format!("{name}_const");
                self.graph.node.push(node(
                    &node_name,
                    "Constant",
                    &[],
                    &[&name],
                    vec![attr::tensor("value", t)],
                ));
            }
        }
        name
    }

    /// A float weight of `dims` with values uniform in `[lo, hi)`.
    pub fn weight(&mut self, name: &str, dims: &[i64], lo: f32, hi: f32) -> String {
        let n = tensor_data::dims_count(name, dims).expect("builder dims are valid");
        let data: Vec<f32> = (0..n).map(|_| self.rng.random_range(lo..hi)).collect();
        let t = tensor_data::from_f32(name, dims, &data).expect("count matches dims");
        self.constant(t)
    }

    /// An int64 constant (shapes, axes).
    pub fn ints(&mut self, name: &str, values: &[i64]) -> String {
        let t = tensor_data::from_i64(name, &[values.len() as i64], values)
            .expect("count matches dims");
        self.constant(t)
    }

    /// Add a node with one output named after the node; returns the output name.
    pub fn op(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> String {
        self.counter += 1;
        let name = format!("{}{}", op_type.to_ascii_lowercase(), self.counter);
        let out = format!("{name}_out");
        self.graph
            .node
            .push(node(&name, op_type, inputs, &[&out], attributes));
        out
    }

    /// Add a node as given.
    pub fn push(&mut self, n: NodeProto) {
        self.graph.node.push(n);
    }

    /// Rename the producer output `from` to `to` (to give the final node the output's name).
    pub fn rename_output(&mut self, from: &str, to: &str) {
        for n in &mut self.graph.node {
            for o in &mut n.output {
                if o == from {
                    *o = to.to_string();
                }
            }
            for i in &mut n.input {
                if i == from {
                    *i = to.to_string();
                }
            }
        }
    }

    /// The graph built so far.
    pub fn into_graph(self) -> GraphProto {
        self.graph
    }

    /// Wrap the graph in a model with the default opset and IR version.
    pub fn into_model(self) -> Model {
        model_from_graph(self.graph, DEFAULT_OPSET)
    }
}

/// A model around `graph` importing the default domain at `opset`.
pub fn model_from_graph(graph: GraphProto, opset: i64) -> Model {
    Model::from_proto(ModelProto {
        ir_version: Some(DEFAULT_IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: Some(opset),
        }],
        producer_name: "edgepack-builder".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    })
}

fn batch_dim(batch: Option<&str>) -> Dim {
    match batch {
        Some(s) => Dim::Symbol(s.to_string()),
        None => Dim::Fixed(1),
    }
}

/// A multi-layer perceptron `x[1, dims[0]] -> y[1, dims.last()]`: the first layer is a
/// `Gemm` (transB=1), later layers `MatMul`+`Add`, with `Relu` between layers.
pub fn mlp(dims: &[usize], seed: u64) -> Model {
    mlp_with(dims, seed, None, WeightStorage::Initializer)
}

/// [`mlp`] with a chosen batch dim (`Some("N")` for symbolic) and weight storage.
pub fn mlp_with(dims: &[usize], seed: u64, batch: Option<&str>, storage: WeightStorage) -> Model {
    assert!(
        dims.len() >= 2,
        "an MLP needs at least input and output sizes"
    );
    let mut b = GraphBuilder::new("mlp", seed, storage);
    let bd = batch_dim(batch);
    let mut x = b.input(
        "x",
        DataType::Float,
        &[bd.clone(), Dim::Fixed(dims[0] as i64)],
    );
    let layers = dims.len() - 1;
    for l in 0..layers {
        let (fan_in, fan_out) = (dims[l] as i64, dims[l + 1] as i64);
        let s = 1.0 / (fan_in as f32).sqrt();
        if l == 0 {
            let w = b.weight(&format!("fc{l}.weight"), &[fan_out, fan_in], -s, s);
            let bias = b.weight(&format!("fc{l}.bias"), &[fan_out], -s, s);
            x = b.op("Gemm", &[&x, &w, &bias], vec![attr::int("transB", 1)]);
        } else {
            let w = b.weight(&format!("fc{l}.weight"), &[fan_in, fan_out], -s, s);
            let bias = b.weight(&format!("fc{l}.bias"), &[fan_out], -s, s);
            let m = b.op("MatMul", &[&x, &w], vec![]);
            x = b.op("Add", &[&m, &bias], vec![]);
        }
        if l + 1 < layers {
            x = b.op("Relu", &[&x], vec![]);
        }
    }
    b.rename_output(&x, "y");
    b.output(
        "y",
        DataType::Float,
        &[bd, Dim::Fixed(dims.last().copied().unwrap_or(0) as i64)],
    );
    b.into_model()
}

/// A small conv net on `x[1,3,16,16]`: Conv(8, 3x3) + BatchNormalization + Relu +
/// MaxPool(2) + Conv(16, 3x3, stride 2) + Relu + Flatten + Gemm -> `y[1,10]`.
pub fn conv_net(seed: u64) -> Model {
    conv_net_with(seed, None, WeightStorage::Initializer)
}

/// [`conv_net`] with a chosen batch dim and weight storage.
pub fn conv_net_with(seed: u64, batch: Option<&str>, storage: WeightStorage) -> Model {
    let mut b = GraphBuilder::new("conv_net", seed, storage);
    let bd = batch_dim(batch);
    let x = b.input(
        "x",
        DataType::Float,
        &[bd.clone(), Dim::Fixed(3), Dim::Fixed(16), Dim::Fixed(16)],
    );
    let s1 = 1.0 / 27f32.sqrt();
    let w1 = b.weight("conv1.weight", &[8, 3, 3, 3], -s1, s1);
    let b1 = b.weight("conv1.bias", &[8], -0.1, 0.1);
    let c1 = b.op(
        "Conv",
        &[&x, &w1, &b1],
        vec![
            attr::ints("kernel_shape", &[3, 3]),
            attr::ints("pads", &[1, 1, 1, 1]),
            attr::ints("strides", &[1, 1]),
        ],
    );
    let scale = b.weight("bn1.scale", &[8], 0.5, 1.5);
    let bias = b.weight("bn1.bias", &[8], -0.1, 0.1);
    let mean = b.weight("bn1.mean", &[8], -0.1, 0.1);
    let var = b.weight("bn1.var", &[8], 0.5, 1.5);
    let bn = b.op(
        "BatchNormalization",
        &[&c1, &scale, &bias, &mean, &var],
        vec![attr::float("epsilon", 1e-5)],
    );
    let r1 = b.op("Relu", &[&bn], vec![]);
    let p1 = b.op(
        "MaxPool",
        &[&r1],
        vec![
            attr::ints("kernel_shape", &[2, 2]),
            attr::ints("strides", &[2, 2]),
        ],
    );
    let s2 = 1.0 / 72f32.sqrt();
    let w2 = b.weight("conv2.weight", &[16, 8, 3, 3], -s2, s2);
    let b2 = b.weight("conv2.bias", &[16], -0.1, 0.1);
    let c2 = b.op(
        "Conv",
        &[&p1, &w2, &b2],
        vec![
            attr::ints("kernel_shape", &[3, 3]),
            attr::ints("pads", &[1, 1, 1, 1]),
            attr::ints("strides", &[2, 2]),
        ],
    );
    let r2 = b.op("Relu", &[&c2], vec![]);
    let f = b.op("Flatten", &[&r2], vec![attr::int("axis", 1)]);
    let s3 = 1.0 / 256f32.sqrt();
    let w3 = b.weight("fc.weight", &[10, 256], -s3, s3);
    let b3 = b.weight("fc.bias", &[10], -s3, s3);
    let y = b.op("Gemm", &[&f, &w3, &b3], vec![attr::int("transB", 1)]);
    b.rename_output(&y, "y");
    b.output("y", DataType::Float, &[bd, Dim::Fixed(10)]);
    b.into_model()
}

/// The conv net with a symbolic batch dim `N`.
pub fn symbolic_batch(seed: u64) -> Model {
    conv_net_with(seed, Some("N"), WeightStorage::Initializer)
}

/// The conv net with symbolic batch `N` and every weight in a `Constant` node, the way
/// Paddle2ONNX exports PP-OCR.
pub fn constant_weights(seed: u64) -> Model {
    conv_net_with(seed, Some("N"), WeightStorage::ConstantNodes)
}

/// `y = If(cond, then: Relu(x * w), else: Neg(x * w))` on `x[N, 4]`: both branches read the
/// outer-scope tensor `xw`, so rewrites and topological order must see through the `If`.
pub fn if_model(seed: u64) -> Model {
    let mut b = GraphBuilder::new("if_model", seed, WeightStorage::Initializer);
    let n = Dim::Symbol("N".into());
    let x = b.input("x", DataType::Float, &[n.clone(), Dim::Fixed(4)]);
    b.input("cond", DataType::Bool, &[]);
    let w = b.weight("w", &[4], -1.0, 1.0);
    b.push(node("mul", "Mul", &[&x, &w], &["xw"], vec![]));
    let branch = |name: &str, op: &str| GraphProto {
        name: name.to_string(),
        node: vec![node(
            &format!("{name}_op"),
            op,
            &["xw"],
            &[&format!("{name}_y")],
            vec![],
        )],
        output: vec![value_info(
            &format!("{name}_y"),
            DataType::Float,
            &[n.clone(), Dim::Fixed(4)],
        )],
        ..Default::default()
    };
    b.push(node(
        "if",
        "If",
        &["cond"],
        &["y"],
        vec![
            attr::graph("then_branch", branch("then", "Relu")),
            attr::graph("else_branch", branch("else", "Neg")),
        ],
    ));
    b.output("y", DataType::Float, &[n.clone(), Dim::Fixed(4)]);
    b.into_model()
}

/// A token model: `input_ids[batch, sequence]` (int64) index an embedding table of
/// `vocab` rows through `Gather`; `attention_mask[batch, sequence]` (int64) zeroes padded
/// positions: `y[batch, sequence, hidden] = Gather(table, ids) * mask[..., None]`. The
/// smallest model with the inputs of a BERT-style encoder, for the input model's tests.
pub fn token_model(vocab: i64, hidden: i64) -> Model {
    let mut b = GraphBuilder::new("token_model", 11, WeightStorage::Initializer);
    let bs = [Dim::Symbol("batch".into()), Dim::Symbol("sequence".into())];
    let ids = b.input("input_ids", DataType::Int64, &bs);
    let mask = b.input("attention_mask", DataType::Int64, &bs);
    let table = b.weight("embedding", &[vocab, hidden], -1.0, 1.0);
    b.push(node("embed", "Gather", &[&table, &ids], &["emb"], vec![]));
    b.push(node(
        "mask_cast",
        "Cast",
        &[&mask],
        &["mask_f"],
        vec![attr::int("to", DataType::Float as i64)],
    ));
    let axes = b.ints("axes", &[2]);
    b.push(node(
        "mask_3d",
        "Unsqueeze",
        &["mask_f", &axes],
        &["mask3"],
        vec![],
    ));
    b.push(node("apply", "Mul", &["emb", "mask3"], &["y"], vec![]));
    let mut out = bs.to_vec();
    out.push(Dim::Fixed(hidden));
    b.output("y", DataType::Float, &out);
    b.into_model()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::model::graph::{self, GraphIndex};

    fn all() -> Vec<(&'static str, Model)> {
        vec![
            ("mlp", mlp(&[4, 8, 8, 2], 1)),
            ("conv_net", conv_net(1)),
            ("symbolic_batch", symbolic_batch(1)),
            ("constant_weights", constant_weights(1)),
            ("if_model", if_model(1)),
            (
                "mlp_const",
                mlp_with(&[3, 5, 2], 2, Some("B"), WeightStorage::ConstantNodes),
            ),
        ]
    }

    #[test]
    fn every_stock_model_is_well_formed() {
        for (name, m) in all() {
            let ix = GraphIndex::new(m.graph());
            ix.check(&HashSet::new())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let bytes = m.to_bytes();
            let back = Model::from_bytes(&bytes, std::path::Path::new(name)).unwrap();
            assert_eq!(back.proto, m.proto, "{name} round trip");
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_weights() {
        assert_eq!(conv_net(5).to_bytes(), conv_net(5).to_bytes());
        assert_ne!(conv_net(5).to_bytes(), conv_net(6).to_bytes());
    }

    #[test]
    fn constant_weights_live_in_constant_nodes() {
        let m = constant_weights(1);
        assert!(m.graph().initializer.is_empty());
        let s = graph::weight_stats(m.graph()).unwrap();
        let i = graph::weight_stats(symbolic_batch(1).graph()).unwrap();
        assert_eq!(s.constant_nodes.parameters, i.initializers.parameters);
        assert_eq!(s.parameters, 8 * 27 + 8 + 4 * 8 + 16 * 72 + 16 + 2560 + 10);
        assert_eq!(
            GraphIndex::new(m.graph()).symbolic_dims()["x"],
            vec!["N".to_string()]
        );
    }

    #[test]
    fn if_model_branches_read_outer_scope() {
        let m = if_model(1);
        let ix = GraphIndex::new(m.graph());
        let if_node = ix.producer("y").unwrap();
        assert!(ix.consumers("xw").contains(&if_node));
    }
}
