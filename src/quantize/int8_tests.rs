//! The int8 accuracy methods end to end on tiny built models in ONNX Runtime: MSE
//! activation ranges (`--method mse`) and learned rounding (`--weight-rounding adaround`).

use super::calibrate::Method;
use super::engine::RuntimeEngine;
use super::qdq::WeightRounding;
use super::runner::{Feed, NamedTensor};
use super::{quantize, Mode, Options};
use crate::model::builder::{mlp_with, WeightStorage};

fn options(method: Method, rounding: WeightRounding) -> Options {
    let mut o = Options::for_tests(Mode::Int8);
    o.method = method;
    o.selection.rounding = rounding;
    o
}

/// `rows x 32` Laplace-distributed inputs (scale 1), deterministic per `seed`; with
/// `outlier`, one value of the whole batch is +60.
fn laplace_feed(rows: usize, seed: u64, outlier: bool) -> Feed {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut data: Vec<f32> = (0..rows * 32)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64 - 0.5;
            (-u.signum() * (1.0 - 2.0 * u.abs()).ln()) as f32
        })
        .collect();
    if outlier {
        data[7] = 60.0;
    }
    vec![NamedTensor {
        name: "x".into(),
        shape: vec![rows, 32],
        data: crate::tensor::TensorData::F32(data),
    }]
}

fn sqnr(method: Method, rounding: WeightRounding) -> Option<f64> {
    crate::runtime::ensure_for_tests()?;
    let model = mlp_with(&[32, 48, 8], 5, Some("N"), WeightStorage::Initializer);
    // A rare outlier in calibration (one value in 1M), none in the held-out inputs: what
    // min/max spends its whole range on.
    let calib: Vec<Feed> = (0..8).map(|i| laplace_feed(4096, i + 1, i == 0)).collect();
    let eval: Vec<Feed> = (0..3).map(|i| laplace_feed(512, 100 + i, false)).collect();
    let engine = RuntimeEngine::new(None, 1).expect("engine");
    let q = quantize(
        &model,
        &calib,
        &eval,
        false,
        &options(method, rounding),
        &engine,
    )
    .expect("quantizes");
    q.report.outputs[0].sqnr_db
}

#[test]
fn mse_ranges_beat_minmax_on_a_heavy_tailed_input() {
    // What it protects: `--method mse` clips the rare outlier min/max keeps, and the
    // quantized model's held-out output error is lower for it.
    let (Some(minmax), Some(mse)) = (
        sqnr(Method::MinMax, WeightRounding::Gptq),
        sqnr(Method::Mse, WeightRounding::Gptq),
    ) else {
        return;
    };
    assert!(
        mse > minmax + 1.0,
        "mse {mse:.2} dB vs minmax {minmax:.2} dB"
    );
}

#[test]
fn adaround_runs_end_to_end_and_stays_close_to_gptq() {
    // What it protects: learned rounding goes through the whole pipeline (moments,
    // emit, a model ONNX Runtime loads); per layer it is never worse than GPTQ on the
    // layer's own error (qdq's unit test), so the model's output may move only slightly.
    let (Some(gptq), Some(ada)) = (
        sqnr(Method::MinMax, WeightRounding::Gptq),
        sqnr(Method::MinMax, WeightRounding::AdaRound),
    ) else {
        return;
    };
    assert!(
        ada > gptq - 1.0,
        "adaround {ada:.2} dB vs gptq {gptq:.2} dB"
    );
}
