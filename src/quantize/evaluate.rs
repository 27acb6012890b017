//! The steps every mode ends with: judge the quantized model against the fp32 one on the
//! evaluation samples (accuracy per output, an interleaved latency ratio), then assemble
//! the [`Report`].
//!
//! The evaluation samples are the held-out ones when there are any, else the calibration
//! samples themselves; every figure carries which ([`AccuracyBasis`]).

use super::accuracy::OutputAccuracy;
use super::report::{measurement_warnings, AccuracyBasis, Attempt, LayerError, Report, SizeReport};
use super::runner::{self, Engine, Feed, LatencyRatio, ModelRunner, NamedTensor, SessionConfig};
use super::{qdq, Options};
use crate::error::Result;
use crate::model::Model;

/// Interleaved pairs the latency comparison always runs, and at most runs.
const LATENCY_MIN_PAIRS: usize = 5;
const LATENCY_MAX_PAIRS: usize = 200;

/// The samples a mode calibrates on and is judged on.
#[derive(Clone, Copy)]
pub(super) struct Samples<'a> {
    pub calib: &'a [Feed],
    /// Held-out samples; empty when there are none.
    pub eval: &'a [Feed],
    /// The samples were generated, not real data.
    pub random_inputs: bool,
}

impl<'a> Samples<'a> {
    /// What accuracy is judged on: the held-out samples, else the calibration samples.
    pub fn eval_set(&self) -> &'a [Feed] {
        if self.eval.is_empty() {
            self.calib
        } else {
            self.eval
        }
    }

    /// What the accuracy figures are measured on.
    pub fn basis(&self) -> AccuracyBasis {
        AccuracyBasis::of(self.random_inputs, self.eval.is_empty())
    }

    /// The warnings about how a `what` result with this `latency` was measured.
    pub fn warnings(&self, what: &str, latency: Option<LatencyRatio>) -> Vec<String> {
        measurement_warnings(what, latency, self.random_inputs, self.eval.is_empty())
    }
}

/// The fp32 model every candidate is judged against: its encoding, and its outputs on the
/// evaluation samples.
pub(super) struct Reference<'a> {
    /// The encoded fp32 model (its length is the report's `fp32_bytes`).
    pub bytes: Vec<u8>,
    /// The evaluation samples ([`Samples::eval_set`]).
    pub feeds: &'a [Feed],
    /// The fp32 model's outputs, one list per sample of `feeds`.
    pub outputs: Vec<Vec<NamedTensor>>,
}

impl<'a> Reference<'a> {
    /// Run the fp32 `model` on the evaluation samples.
    pub fn run(model: &Model, samples: &Samples<'a>, engine: &dyn Engine) -> Result<Self> {
        let bytes = model.to_bytes();
        let feeds = samples.eval_set();
        let mut fp32 = engine.load(&bytes)?;
        let outputs = feeds
            .iter()
            .map(|f| fp32.run(f, &[]))
            .collect::<Result<Vec<_>>>()?;
        Ok(Reference {
            bytes,
            feeds,
            outputs,
        })
    }

    /// Latency of `candidate` relative to `fp32` (a timing session of [`Self::bytes`]),
    /// interleaved on the first evaluation sample within `opts.latency_budget_s`.
    pub fn latency_ratio(
        &self,
        fp32: &mut dyn ModelRunner,
        candidate: &mut dyn ModelRunner,
        opts: &Options,
    ) -> Result<LatencyRatio> {
        runner::latency_ratio(
            fp32,
            candidate,
            &self.feeds[0],
            LATENCY_MIN_PAIRS,
            LATENCY_MAX_PAIRS,
            opts.latency_budget_s,
        )
    }
}

/// What a mode made and measured, before it becomes a [`Report`].
pub(super) struct Outcome {
    /// What the result is, e.g. `int8: every Conv/MatMul/Gemm`.
    pub variant: String,
    /// Preparation patches applied.
    pub preparation: Vec<String>,
    /// Rewrite patch labels.
    pub patches: Vec<String>,
    /// The nodes quantized (calibrated modes; empty for rewrites).
    pub quantized_nodes: Vec<qdq::QuantNode>,
    /// Calibration samples used (0 for modes without calibration).
    pub calibration_samples: usize,
    /// Accuracy per output on the evaluation samples.
    pub outputs: Vec<OutputAccuracy>,
    /// The encoded quantized model's size.
    pub quantized_bytes: u64,
    pub latency: Option<LatencyRatio>,
    /// Wall time of preparation, calibration and rewrite.
    pub wall_s: f64,
    /// Wall time of the accuracy guard's search, when one ran.
    pub search_wall_s: Option<f64>,
    pub attempts: Vec<Attempt>,
    pub layers: Vec<LayerError>,
    pub warnings: Vec<String>,
    /// Session entries the model runs with (and was measured with).
    pub session_config: SessionConfig,
}

impl Outcome {
    /// The report of this outcome of `opts` on `samples`, against an fp32 model of
    /// `fp32_bytes`.
    pub fn report(self, samples: &Samples<'_>, opts: &Options, fp32_bytes: u64) -> Report {
        let size = SizeReport::of(fp32_bytes, self.quantized_bytes);
        let meets = opts.targets.iter().all(|t| t.met_by(&self.outputs));
        Report {
            schema: "edgepack.quantize/1",
            mode: opts.mode,
            variant: self.variant,
            method: opts.method,
            preparation: self.preparation,
            patches: self.patches,
            quantized_nodes: self.quantized_nodes,
            calibration_samples: self.calibration_samples,
            eval_samples: samples.eval_set().len(),
            random_inputs: samples.random_inputs,
            accuracy_basis: samples.basis(),
            outputs: self.outputs,
            size_ratio: size.ratio,
            size,
            latency_ratio: self.latency.map(|l| l.ratio),
            latency: self.latency,
            quantize_wall_s: self.wall_s,
            search_wall_s: self.search_wall_s,
            targets: opts.targets.clone(),
            meets_target: (!opts.targets.is_empty()).then_some(meets),
            attempts: self.attempts,
            layers: self.layers,
            warnings: self.warnings,
            choice: None,
            session_config: self.session_config,
        }
    }
}
