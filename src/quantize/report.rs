//! What the quantizer reports (`--report FILE.json`): sizes, accuracy per output,
//! latency, the candidates `auto` tried, per-tensor errors, and the warnings about how the
//! figures were measured.

use serde::Serialize;

use super::accuracy::{AccuracyFloor, OutputAccuracy};
use super::calibrate::Method;
use super::runner::{self, LatencyRatio};
use super::{qdq, Mode};
use crate::setting::Setting;

/// Sizes before and after.
#[derive(Clone, Debug, Serialize)]
pub struct SizeReport {
    /// Encoded fp32 model size.
    pub fp32_bytes: u64,
    /// Encoded quantized model size.
    pub quantized_bytes: u64,
    /// `quantized_bytes / fp32_bytes`.
    pub ratio: f64,
}

impl SizeReport {
    /// The sizes of two encoded models and their ratio.
    pub fn of(fp32_bytes: u64, quantized_bytes: u64) -> Self {
        SizeReport {
            fp32_bytes,
            quantized_bytes,
            ratio: quantized_bytes as f64 / fp32_bytes as f64,
        }
    }
}

/// One tensor's error in the quantized model (with `--debug-layers`).
#[derive(Clone, Debug, Serialize)]
pub struct LayerError {
    /// Activation tensor name.
    pub tensor: String,
    /// SQNR of the quantized model's value of this tensor against the fp32 model's.
    pub sqnr_db: Option<f64>,
    /// Calibrated range.
    pub range: (f32, f32),
}

/// One candidate `auto` tried.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// What was tried.
    pub variant: String,
    /// Nodes quantized.
    pub quantized_nodes: usize,
    /// Worst SQNR over outputs.
    pub min_sqnr_db: Option<f64>,
    /// Latency ratio against fp32.
    pub latency_ratio: Option<f64>,
    /// Size ratio against fp32.
    pub size_ratio: f64,
    /// Whether it met the accuracy target.
    pub meets_target: bool,
    /// When judging stopped early because the target could no longer be met: the samples
    /// judged (then `min_sqnr_db` is absent, since figures over the first samples alone would
    /// not compare with the others').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_after_samples: Option<usize>,
}

/// The worst SQNR over `outputs` (an [`Attempt`]'s `min_sqnr_db`); `None` when no output
/// has one.
pub fn min_sqnr_db(outputs: &[OutputAccuracy]) -> Option<f64> {
    outputs.iter().filter_map(|o| o.sqnr_db).reduce(f64::min)
}

/// What the accuracy figures were measured on (issue 17 bug 5: a figure measured on the
/// calibration inputs is optimistic, and must say so wherever it is shown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccuracyBasis {
    /// Samples not used for calibration (`--eval`, or spare calibration files).
    HeldOut,
    /// The calibration samples themselves: no held-out samples were available.
    InSample,
    /// Random inputs: the figures say nothing about real data.
    Random,
}

impl AccuracyBasis {
    /// The basis of figures measured on `eval` (empty: on the calibration samples).
    pub fn of(random_inputs: bool, eval_is_empty: bool) -> Self {
        if random_inputs {
            AccuracyBasis::Random
        } else if eval_is_empty {
            AccuracyBasis::InSample
        } else {
            AccuracyBasis::HeldOut
        }
    }

    /// The words shown next to a figure: `held-out`, `in-sample`, `random`.
    pub fn label(self) -> &'static str {
        match self {
            AccuracyBasis::HeldOut => "held-out",
            AccuracyBasis::InSample => "in-sample (calibration)",
            AccuracyBasis::Random => "random",
        }
    }
}

/// Everything the quantizer reports (`--report FILE.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Schema tag.
    pub schema: &'static str,
    /// Mode asked for.
    pub mode: Mode,
    /// Winning variant.
    pub variant: String,
    /// Calibration method.
    pub method: Method,
    /// Preparation patches applied.
    pub preparation: Vec<String>,
    /// Rewrite patch labels.
    pub patches: Vec<String>,
    /// Nodes quantized.
    pub quantized_nodes: Vec<qdq::QuantNode>,
    /// Calibration samples used.
    pub calibration_samples: usize,
    /// Evaluation samples used (held out from calibration unless `accuracy_basis` says
    /// `in_sample`).
    pub eval_samples: usize,
    /// What the accuracy figures were measured on.
    pub accuracy_basis: AccuracyBasis,
    /// Whether inputs were random (accuracy then meaningless).
    pub random_inputs: bool,
    /// Accuracy per output on the evaluation samples.
    pub outputs: Vec<OutputAccuracy>,
    /// Sizes.
    pub size: SizeReport,
    /// `size.ratio`, at top level for readers of the headline figures.
    pub size_ratio: f64,
    /// `latency.ratio` (quantized / fp32), at top level; `None` when not measured.
    pub latency_ratio: Option<f64>,
    /// Latency of the quantized model relative to the fp32 input model.
    pub latency: Option<LatencyRatio>,
    /// Wall time of preparation + calibration + rewrite, seconds.
    pub quantize_wall_s: f64,
    /// Wall time of the accuracy guard's search (sensitivity ranking and every candidate
    /// built and judged), seconds; `None` when no search ran.
    pub search_wall_s: Option<f64>,
    /// Accuracy targets.
    pub targets: Vec<AccuracyFloor>,
    /// Whether the target (if any) was met.
    pub meets_target: Option<bool>,
    /// Candidates tried by `auto` (one entry otherwise).
    pub attempts: Vec<Attempt>,
    /// Per-tensor errors (`--debug-layers`).
    pub layers: Vec<LayerError>,
    /// Warnings for the user (random inputs, slower model, ...).
    pub warnings: Vec<String>,
    /// `auto`: why the winner won.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice: Option<String>,
    /// ONNX Runtime session configuration entries the quantized model is meant to run
    /// with (and was measured with); packages carry them with the variant.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub session_config: runner::SessionConfig,
}

impl Report {
    /// Set the quantized size to `bytes`, the model as written: the session entries it
    /// carries in its metadata are added after it was measured, and the size line must be
    /// the file's length to the byte.
    pub fn set_quantized_bytes(&mut self, bytes: u64) {
        self.size = SizeReport::of(self.size.fp32_bytes, bytes);
        self.size_ratio = self.size.ratio;
    }
}

/// What the user must know about how a result was measured: a model slower than fp32,
/// random inputs, no held-out evaluation set.
pub(crate) fn measurement_warnings(
    what: &str,
    latency: Option<LatencyRatio>,
    random_inputs: bool,
    no_eval: bool,
) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(l) = latency.filter(|l| l.ratio >= 1.0) {
        w.push(format!(
            "the {what} model is SLOWER than fp32 on this machine (latency ratio {:.2}); it does not pay off for this model here",
            l.ratio
        ));
    }
    if random_inputs {
        w.push(format!("calibration and evaluation used RANDOM inputs: the accuracy figures are meaningless; pass {} DIR with real inputs", Setting::Calibration));
    }
    if no_eval {
        w.push("no held-out evaluation inputs: accuracy measured on the calibration inputs".into());
    }
    w
}
