//! The build's quantize step as a typed job: the parent sends a [`QuantizeJob`] to an
//! isolated child (`edgepack __pipeline-worker`, see [`super::worker`]) and gets a
//! [`QuantizeDone`] back through [`crate::isolate::call`].
//!
//! Why a child and not a call: ONNX Runtime allows one environment per process, the
//! quantizer sets up its own sessions (calibration, evaluation), and a model that crashes
//! or exhausts memory while being quantized must cost the build one variant, not the build.
//!
//! The job is the quantizer with its defaults (min-max calibration, per-channel weights,
//! the first 32 calibration files with up to 16 of the rest held out, 8 random calibration
//! and 4 random evaluation feeds without a folder) and without the latency comparison:
//! latency is the profiler's job, and skipping it keeps the quantized bytes independent of
//! timing noise (two builds of the same inputs give the same bytes).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::artifact;
use crate::error::{Error, Result};
use crate::inputs::{ShapeOverrides, ValueRanges};
use crate::model::Model;
use crate::quantize::data::{generated_feed, list_folder, load_sample};
use crate::quantize::engine::RuntimeEngine;
use crate::quantize::preprocess::Preprocess;
use crate::quantize::qdq::{Selection, WeightRounding};
use crate::quantize::{self, calibrate::Method, Mode, Options};

/// A variant mode the build offers, named as packages name their variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VariantMode {
    Fp16,
    Int8,
    Int8Dynamic,
    Int8Weight,
    Int4Weight,
}

impl VariantMode {
    /// Every mode, in the order the build tries them.
    pub const ALL: [VariantMode; 5] = [
        VariantMode::Fp16,
        VariantMode::Int8,
        VariantMode::Int8Dynamic,
        VariantMode::Int8Weight,
        VariantMode::Int4Weight,
    ];

    /// The variant's name in packages and reports (the quantizer's mode name).
    pub fn name(self) -> &'static str {
        match self {
            VariantMode::Fp16 => "fp16",
            VariantMode::Int8 => "int8",
            VariantMode::Int8Dynamic => "int8-dynamic",
            VariantMode::Int8Weight => "int8-weight",
            VariantMode::Int4Weight => "int4-weight",
        }
    }

    /// The mode called `name`, if the build offers it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The quantizer's mode.
    pub fn quantizer_mode(self) -> Mode {
        match self {
            VariantMode::Fp16 => Mode::Fp16,
            VariantMode::Int8 => Mode::Int8,
            VariantMode::Int8Dynamic => Mode::Int8Dynamic,
            VariantMode::Int8Weight => Mode::Int8Weight,
            VariantMode::Int4Weight => Mode::Int4Weight,
        }
    }
}

/// What the parent asks the child to quantize.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizeJob {
    /// The fp32 model.
    pub model: PathBuf,
    pub mode: VariantMode,
    /// Where the quantized model goes (written atomically).
    pub output: PathBuf,
    /// Where the quantizer's JSON report goes (written atomically).
    pub report: PathBuf,
    /// Calibration samples (a folder the quantizer reads); random inputs without it.
    pub calibration: Option<PathBuf>,
    /// Held-out evaluation samples; without them, up to 16 calibration files beyond the
    /// first 32 are held out (and with none left, accuracy is in-sample, said so).
    #[serde(default)]
    pub eval: Option<PathBuf>,
    /// Whole input shapes (`NAME` -> dims) for generated inputs, as `--shape` gives them.
    #[serde(default)]
    pub shapes: std::collections::BTreeMap<String, Vec<usize>>,
    /// Symbolic dim values for generated inputs, as `--dim` gives them.
    #[serde(default)]
    pub dims: std::collections::BTreeMap<String, usize>,
    /// `--input-range NAME=LO..HI` values for generated inputs.
    #[serde(default)]
    pub input_ranges: Vec<String>,
    pub ort_lib: Option<PathBuf>,
    /// The package's declared task (`[postprocessing] task`, e.g. `ctc`): its metric is
    /// reported for every output, so the bundle can judge the variant by it.
    #[serde(default)]
    pub task: Option<String>,
}

/// What the child did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizeDone {
    pub output: PathBuf,
    pub report: PathBuf,
    /// Whether the accuracy figures came from random inputs (then they mean nothing).
    pub random_inputs: bool,
}

/// Calibration files used (the first N of the folder).
const CALIBRATION_SAMPLES: usize = 32;
/// Held-out files taken from the rest of the folder.
const HELD_OUT_SAMPLES: usize = 16;
/// Random feeds when there is no folder.
const RANDOM_CALIBRATION_FEEDS: usize = 8;
const RANDOM_EVALUATION_FEEDS: u64 = 4;

fn load_folder(model: &Model, dir: &Path) -> Result<Vec<quantize::runner::Feed>> {
    let specs = crate::inputs::model_inputs(model);
    let pre = Preprocess::default();
    list_folder(dir)?
        .into_iter()
        .map(|p| load_sample(&p, &specs, &pre))
        .collect()
}

/// Quantize one variant, in this process (the child's side of the job).
pub fn run(job: &QuantizeJob) -> Result<QuantizeDone> {
    let mut model = Model::load(&job.model)?;
    // The quantizer hands models to ONNX Runtime as bytes, where external data would
    // resolve against the current directory: inline it (validated, confined) first.
    model.load_external_data()?;
    if let Some(op) = quantize::already_quantized(&model) {
        return Err(Error::file(
            &job.model,
            format!("the model is already quantized (it contains {op}); quantize the fp32 original instead"),
        ));
    }
    let (calib, eval, random) = match &job.calibration {
        Some(dir) => {
            let mut all = load_folder(&model, dir)?;
            let held = all.split_off(CALIBRATION_SAMPLES.min(all.len()));
            let eval = match &job.eval {
                Some(e) => load_folder(&model, e)?,
                None => held.into_iter().take(HELD_OUT_SAMPLES).collect(),
            };
            (all, eval, false)
        }
        None => {
            eprintln!("edgepack: WARNING: no calibration folder: calibrating and evaluating on RANDOM inputs. Accuracy figures are MEANINGLESS and activation ranges will not fit real data.");
            let overrides = ShapeOverrides {
                shapes: job.shapes.clone(),
                dims: job.dims.clone(),
            };
            let ranges = ValueRanges::from_args(&job.input_ranges)?;
            let feed = |seed: u64| -> Result<_> {
                let (f, notes) = generated_feed(&model, &overrides, &ranges, seed)?;
                if seed == 0 {
                    for n in notes {
                        eprintln!("note: {n}");
                    }
                }
                Ok(f)
            };
            let calib = (0..RANDOM_CALIBRATION_FEEDS as u64)
                .map(feed)
                .collect::<Result<Vec<_>>>()?;
            let eval = (0..RANDOM_EVALUATION_FEEDS)
                .map(|i| feed(1000 + i))
                .collect::<Result<Vec<_>>>()?;
            (calib, eval, true)
        }
    };
    let engine = RuntimeEngine::new(job.ort_lib.as_deref(), 1)?;
    let mode = job.mode.quantizer_mode();
    let tasks = job
        .task
        .iter()
        .map(|t| quantize::task::Task::parse("postprocessing.task", t))
        .collect::<Result<Vec<_>>>()?;
    let opts = Options {
        mode,
        method: Method::MinMax,
        selection: Selection {
            exclude_nodes: HashSet::new(),
            exclude_ops: HashSet::new(),
            per_channel: true,
            float_pooled: false,
            weights_only: job.mode == VariantMode::Int8Weight,
            rounding: WeightRounding::Auto,
        },
        targets: vec![],
        tasks,
        measure_latency: false,
        latency_budget_s: 10.0,
        debug_layers: false,
        fp16: quantize::fp16::Options::default(),
        ort_offline_first: false,
        accuracy_guard: true,
        int4: quantize::nbits::Options::default(),
    };
    eprintln!(
        "edgepack: quantizing {} to {} ({} calibration, {} evaluation samples)",
        job.model.display(),
        job.mode.name(),
        calib.len(),
        eval.len()
    );
    let q = quantize::quantize(&model, &calib, &eval, random, &opts, &engine)?;
    q.model.save(&job.output)?;
    let json = serde_json::to_vec_pretty(&q.report).map_err(|e| Error::Tool {
        tool: "quantizer".into(),
        message: format!("cannot encode the report: {e}"),
    })?;
    artifact::write_atomic(&job.report, &json)?;
    for w in &q.report.warnings {
        eprintln!("edgepack: WARNING: {w}");
    }
    Ok(QuantizeDone {
        output: job.output.clone(),
        report: job.report.clone(),
        random_inputs: random,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_modes_round_trip_through_their_names() {
        for m in VariantMode::ALL {
            assert_eq!(VariantMode::from_name(m.name()), Some(m));
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
        }
        assert_eq!(VariantMode::from_name("int8-static"), None);
    }
}
