//! The quantizer on a transformer: the builder's BERT-style encoder (int64 token inputs,
//! attention mask, LayerNorm, GELU) through generated and typed sample data and every
//! mode, in ONNX Runtime.

use crate::inputs::{self, InputSources, ShapeOverrides};
use crate::model::builder::{bert_encoder, EncoderConfig};
use crate::quantize::runner::Engine;
use crate::quantize::runner::NamedTensor;

#[test]
fn encoder_runs_in_onnx_runtime_and_padding_does_not_change_the_embedding() {
    // What it protects: the encoder is a valid transformer (ORT runs it), the mask
    // really masks (padded tokens leave the pooled embedding unchanged), and the
    // quantizer reads the vocabulary from the token Gather, and the input model's
    // generated feed (ids in the vocabulary, mask ones) runs it.
    let m = bert_encoder(&EncoderConfig::default(), 7);
    let specs = inputs::model_inputs(&m);
    assert_eq!(specs[0].role, inputs::Role::Indices { vocab: 100 });
    if crate::runtime::ensure_for_tests().is_none() {
        return;
    }
    let engine = crate::quantize::engine::RuntimeEngine::new(None, 1).unwrap();
    let mut r = engine.load(&m.to_bytes()).unwrap();
    let shapes = ShapeOverrides::from_args(&[], &["batch=1".into(), "sequence=6".into()]).unwrap();
    let prepared = inputs::prepare(&m, &shapes, &InputSources::default()).unwrap();
    let feed: Vec<NamedTensor> = prepared
        .tensors
        .into_iter()
        .map(|(n, t)| NamedTensor::from_tensor(&n, t))
        .collect();
    let a = r.run(&feed, &[]).unwrap();
    assert_eq!(a[0].shape, vec![1, 32]);
    // The same 6 tokens padded to 9 with a zero mask on the padding.
    let ids = feed[0].to_tensor().unwrap().to_f64_vec();
    let mut padded = Vec::new();
    for (t, name) in feed.iter().enumerate() {
        let v: Vec<i64> = match t {
            0 => ids.iter().map(|&x| x as i64).chain([5, 6, 7]).collect(),
            1 => [1; 6].into_iter().chain([0; 3]).collect(),
            _ => vec![0; 9],
        };
        padded.push(crate::quantize::runner::NamedTensor {
            name: name.name.clone(),
            shape: vec![1, 9],
            data: crate::tensor::TensorData::I64(v),
        });
    }
    let b = r.run(&padded, &[]).unwrap();
    let (x, y) = (a[0].floats(), b[0].floats());
    let err = x
        .iter()
        .zip(y.iter())
        .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(err < 1e-4, "padding changed the embedding by {err}");
}
