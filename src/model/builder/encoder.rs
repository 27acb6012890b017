//! A BERT-style sentence encoder, built like PyTorch's exporter writes one, so the
//! transformer paths (int64 token inputs, attention, LayerNorm, GELU, pooling) are tested
//! without a downloaded model.
//!
//! Inputs `input_ids`, `attention_mask`, `token_type_ids` (int64, `[batch, sequence]`);
//! output `sentence_embedding` (float, `[batch, hidden]`), the attention-masked mean of
//! the last hidden state (what sentence-transformers' MiniLM pools). Each of the `layers`
//! blocks is post-LayerNorm attention (Q/K/V `MatMul`+`Add`, heads split by `Reshape` and
//! `Transpose`, scaled `MatMul`, additive mask, `Softmax`) and a feed-forward block with
//! GELU written as `x * 0.5 * (1 + Erf(x / sqrt 2))`. Opset 17 (for `LayerNormalization`).

use super::{model_from_graph, GraphBuilder, WeightStorage};
use crate::model::attr;
use crate::model::graph::Dim;
use crate::model::{tensor_data, DataType, Model};

/// Sizes of [`bert_encoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Vocabulary (rows of the token embedding).
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Attention heads (divides `hidden`).
    pub heads: usize,
    /// Feed-forward inner size.
    pub ffn: usize,
    /// Encoder blocks.
    pub layers: usize,
    /// Longest sequence (rows of the position embedding).
    pub max_positions: usize,
}

impl Default for EncoderConfig {
    /// A tiny encoder: 2 layers, hidden 32, 4 heads, 100 tokens, sequences up to 128.
    fn default() -> Self {
        EncoderConfig {
            vocab: 100,
            hidden: 32,
            heads: 4,
            ffn: 64,
            layers: 2,
            max_positions: 128,
        }
    }
}

/// The encoder described in the module docs, weights from `seed`.
pub fn bert_encoder(cfg: &EncoderConfig, seed: u64) -> Model {
    assert!(cfg.heads > 0 && cfg.hidden.is_multiple_of(cfg.heads));
    let (h, nh) = (cfg.hidden as i64, cfg.heads as i64);
    let d = h / nh;
    let mut b = GraphBuilder::new("encoder", seed, WeightStorage::Initializer);
    let bs = [Dim::Symbol("batch".into()), Dim::Symbol("sequence".into())];
    let ids = b.input("input_ids", DataType::Int64, &bs);
    let mask = b.input("attention_mask", DataType::Int64, &bs);
    let types = b.input("token_type_ids", DataType::Int64, &bs);
    let s = 0.5f32;

    // Embeddings: token + position + token type, then LayerNorm.
    let word = b.weight("embeddings.word", &[cfg.vocab as i64, h], -s, s);
    let pos = b.weight("embeddings.position", &[cfg.max_positions as i64, h], -s, s);
    let tok = b.weight("embeddings.token_type", &[2, h], -s, s);
    let we = b.op("Gather", &[&word, &ids], vec![]);
    let shape = b.op("Shape", &[&ids], vec![]);
    let one = b.constant(tensor_data::scalar("one_i64", 1i64));
    let zero = b.constant(tensor_data::scalar("zero_i64", 0i64));
    let seq = b.op("Gather", &[&shape, &one], vec![attr::int("axis", 0)]);
    let positions = b.op("Range", &[&zero, &seq, &one], vec![]);
    let pe = b.op("Gather", &[&pos, &positions], vec![]);
    let te = b.op("Gather", &[&tok, &types], vec![]);
    let e = b.op("Add", &[&we, &pe], vec![]);
    let e = b.op("Add", &[&e, &te], vec![]);
    let mut x = layer_norm(&mut b, &e, h, "embeddings.ln");

    // Additive mask [batch, 1, 1, sequence]: 0 where attended, -10000 where padded.
    let maskf = b.op(
        "Cast",
        &[&mask],
        vec![attr::int("to", DataType::Float as i64)],
    );
    let onef = b.constant(tensor_data::scalar("one_f32", 1.0f32));
    let inv = b.op("Sub", &[&onef, &maskf], vec![]);
    let big = b.constant(tensor_data::scalar("mask_value", -10000.0f32));
    let add_mask = b.op("Mul", &[&inv, &big], vec![]);
    let axes12 = b.ints("axes_1_2", &[1, 2]);
    let add_mask = b.op("Unsqueeze", &[&add_mask, &axes12], vec![]);

    let split = b.ints("shape_heads", &[0, 0, nh, d]);
    let merge = b.ints("shape_hidden", &[0, 0, h]);
    let scale = b.constant(tensor_data::scalar(
        "attention_scale",
        1.0 / (d as f32).sqrt(),
    ));
    let half = b.constant(tensor_data::scalar("half", 0.5f32));
    let sqrt2 = b.constant(tensor_data::scalar("sqrt2", std::f32::consts::SQRT_2));
    for l in 0..cfg.layers {
        let p = format!("layer{l}");
        let proj = |b: &mut GraphBuilder, x: &str, name: &str, fan_in: i64, fan_out: i64| {
            let r = 1.0 / (fan_in as f32).sqrt();
            let w = b.weight(&format!("{p}.{name}.weight"), &[fan_in, fan_out], -r, r);
            let bias = b.weight(&format!("{p}.{name}.bias"), &[fan_out], -0.1, 0.1);
            let m = b.op("MatMul", &[x, &w], vec![]);
            b.op("Add", &[&m, &bias], vec![])
        };
        let heads = |b: &mut GraphBuilder, t: &str, perm: &[i64]| {
            let r = b.op("Reshape", &[t, &split], vec![]);
            b.op("Transpose", &[&r], vec![attr::ints("perm", perm)])
        };
        let q = proj(&mut b, &x, "query", h, h);
        let k = proj(&mut b, &x, "key", h, h);
        let v = proj(&mut b, &x, "value", h, h);
        let q = heads(&mut b, &q, &[0, 2, 1, 3]);
        let k = heads(&mut b, &k, &[0, 2, 3, 1]);
        let v = heads(&mut b, &v, &[0, 2, 1, 3]);
        let scores = b.op("MatMul", &[&q, &k], vec![]);
        let scores = b.op("Mul", &[&scores, &scale], vec![]);
        let scores = b.op("Add", &[&scores, &add_mask], vec![]);
        let probs = b.op("Softmax", &[&scores], vec![attr::int("axis", -1)]);
        let ctx = b.op("MatMul", &[&probs, &v], vec![]);
        let ctx = b.op(
            "Transpose",
            &[&ctx],
            vec![attr::ints("perm", &[0, 2, 1, 3])],
        );
        let ctx = b.op("Reshape", &[&ctx, &merge], vec![]);
        let o = proj(&mut b, &ctx, "attention_output", h, h);
        let r = b.op("Add", &[&o, &x], vec![]);
        x = layer_norm(&mut b, &r, h, &format!("{p}.attention_ln"));
        let f = proj(&mut b, &x, "intermediate", h, cfg.ffn as i64);
        let g = b.op("Div", &[&f, &sqrt2], vec![]);
        let g = b.op("Erf", &[&g], vec![]);
        let g = b.op("Add", &[&g, &onef], vec![]);
        let g = b.op("Mul", &[&f, &g], vec![]);
        let g = b.op("Mul", &[&g, &half], vec![]);
        let f = proj(&mut b, &g, "output", cfg.ffn as i64, h);
        let r = b.op("Add", &[&f, &x], vec![]);
        x = layer_norm(&mut b, &r, h, &format!("{p}.output_ln"));
    }

    // Masked mean pooling: sum(x * mask) / sum(mask) over the sequence.
    let axis2 = b.ints("axes_2", &[2]);
    let axis1 = b.ints("axes_1", &[1]);
    let m3 = b.op("Unsqueeze", &[&maskf, &axis2], vec![]);
    let xm = b.op("Mul", &[&x, &m3], vec![]);
    let total = b.op("ReduceSum", &[&xm, &axis1], vec![attr::int("keepdims", 0)]);
    let count = b.op(
        "ReduceSum",
        &[&maskf, &axis1],
        vec![attr::int("keepdims", 1)],
    );
    let floor = b.constant(tensor_data::scalar("min_count", 1e-9f32));
    let count = b.op("Max", &[&count, &floor], vec![]);
    let pooled = b.op("Div", &[&total, &count], vec![]);
    b.rename_output(&pooled, "sentence_embedding");
    b.output(
        "sentence_embedding",
        DataType::Float,
        &[Dim::Symbol("batch".into()), Dim::Fixed(h)],
    );
    model_from_graph(b.into_graph(), 17)
}

fn layer_norm(b: &mut GraphBuilder, x: &str, h: i64, name: &str) -> String {
    let gamma = b.weight(&format!("{name}.weight"), &[h], 0.8, 1.2);
    let beta = b.weight(&format!("{name}.bias"), &[h], -0.1, 0.1);
    b.op(
        "LayerNormalization",
        &[x, &gamma, &beta],
        vec![attr::int("axis", -1), attr::float("epsilon", 1e-12)],
    )
}
