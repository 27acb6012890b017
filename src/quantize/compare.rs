//! Accuracy of one model against another on the same inputs: the quantizer's judge of
//! its own results and `edgepack compare`'s A/B comparison. Float outputs get SQNR and
//! cosine (pooled and worst sample) and top-1 on class axes; integer and bool outputs
//! are compared exactly. Task metrics (CTC character error rate, mask IoU: [`super::task`])
//! are computed on every output when asked for ([`Metrics`]); an output they do not fit
//! is an error naming it.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::accuracy::{self, Accumulator, AccuracyFloor, OutputAccuracy};
use super::runner::{self, Engine, Feed, LatencyRatio};
use super::task::Task;
use super::{graph, qdq, LayerError};
use crate::error::{Error, Result};
use crate::model::attr::NodeExt;
use crate::model::builder::value_info_unshaped;
use crate::model::{DataType, Model};
use crate::setting::Setting;

/// Outputs whose last axis is a class axis: produced by Softmax/LogSoftmax over the last
/// axis, possibly through Identity nodes.
pub fn class_axis_outputs(prepared: &Model) -> HashSet<String> {
    let g = prepared.graph();
    let ranks = graph::infer_ranks(g);
    let mut set: HashSet<String> = HashSet::new();
    for n in &g.node {
        let axis = n.attr_i_or("axis", -1).unwrap_or(-1);
        let last = axis == -1
            || ranks
                .get(&n.output[0])
                .is_some_and(|&r| axis == r as i64 - 1);
        if matches!(n.op_type.as_str(), "Softmax" | "LogSoftmax") && last {
            set.insert(n.output[0].clone());
        }
        if n.op_type == "Identity" && set.contains(&n.input[0]) {
            set.insert(n.output[0].clone());
        }
    }
    set
}

/// What to measure on a model's outputs: which have a class axis (top-1), and which task
/// metrics to compute on every output.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Outputs whose last axis is a class axis ([`class_axis_outputs`]).
    pub class_outputs: HashSet<String>,
    /// Task metrics computed on every output.
    pub tasks: Vec<Task>,
}

impl Metrics {
    /// The metrics for `model`'s outputs under `targets` (the task metrics they need) plus
    /// the `declared` tasks (a package's, `compare --task`).
    pub fn of(model: &Model, targets: &[AccuracyFloor], declared: &[Task]) -> Result<Self> {
        Ok(Metrics {
            class_outputs: class_axis_outputs(model),
            tasks: accuracy::tasks_of(targets, declared)?,
        })
    }

    /// Check that every task metric fits every output (run before anything is written, so a
    /// metric that does not apply is a usage error naming the output).
    pub fn check(&self, outputs: &[runner::NamedTensor]) -> Result<()> {
        for o in outputs {
            for t in &self.tasks {
                t.check_output(&o.name, &o.shape, o.is_float())?;
            }
        }
        Ok(())
    }
}

/// Run the candidate on `feeds` and compare with the reference outputs, output by output.
/// `workers` are runners of the same candidate: each takes one sample of every group of
/// `workers.len()` on its own thread, and the outputs are compared in sample order, so the
/// figures do not depend on how many there are. (Under [`compare_until`]'s early stop,
/// where it stops does: it checks after each group. Its verdict does not.)
pub fn compare(
    workers: &mut [Box<dyn runner::ModelRunner>],
    feeds: &[Feed],
    reference: &[Vec<runner::NamedTensor>],
    metrics: &Metrics,
) -> Result<Vec<OutputAccuracy>> {
    compare_until(workers, feeds, reference, metrics, None).map(|j| j.outputs)
}

/// A comparison that may have stopped before the last sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// The figures over the samples judged.
    pub outputs: Vec<OutputAccuracy>,
    /// Samples judged.
    pub samples: usize,
    /// Whether judging stopped early because a target could no longer be met (then
    /// `outputs` cover only the first `samples`, and the candidate misses).
    pub missed_early: bool,
}

/// When to stop judging a candidate: as soon as one of `targets` can no longer be met on
/// the whole evaluation set. A search (the accuracy guard) needs only the verdict of a set
/// that misses; on the PP-OCR detector 8 of the 11 sets it judged missed.
///
/// The bound is exact, not statistical: [`Accumulator::best_case`] takes every sample
/// still to come as perfect against the totals of the reference (its signal energy,
/// decoded characters, rows and samples, known before any candidate runs), so a stop
/// never turns a set that would have met the target into a miss.
#[derive(Clone, Debug)]
pub struct EarlyStop<'a> {
    targets: &'a [AccuracyFloor],
    /// The reference compared with itself over every sample, per output.
    whole: Vec<Accumulator>,
}

impl<'a> EarlyStop<'a> {
    /// The stop for `targets` on the evaluation set whose fp32 outputs are `reference`.
    pub fn new(
        targets: &'a [AccuracyFloor],
        reference: &[Vec<runner::NamedTensor>],
        metrics: &Metrics,
    ) -> Result<Self> {
        let mut whole: Vec<Accumulator> = Vec::new();
        for r in reference {
            if whole.is_empty() {
                whole = vec![Accumulator::for_tasks(&metrics.tasks); r.len()];
            }
            add_sample(&mut whole, r, r, metrics)?;
        }
        Ok(EarlyStop { targets, whole })
    }

    /// Whether the figures so far (`accs`, over the first samples) can no longer meet
    /// every target.
    fn missed(&self, accs: &[Accumulator], names: &[String]) -> bool {
        if accs.len() != self.whole.len() {
            return false;
        }
        let best: Vec<OutputAccuracy> = accs
            .iter()
            .zip(&self.whole)
            .zip(names)
            .map(|((a, w), n)| a.best_case(w, n))
            .collect();
        self.targets.iter().any(|t| !t.met_by(&best))
    }
}

/// [`compare`], stopping after the first group of samples past which `stop`'s targets can
/// no longer be met.
pub fn compare_until(
    workers: &mut [Box<dyn runner::ModelRunner>],
    feeds: &[Feed],
    reference: &[Vec<runner::NamedTensor>],
    metrics: &Metrics,
    stop: Option<&EarlyStop<'_>>,
) -> Result<Judged> {
    let mut accs: Vec<Accumulator> = Vec::new();
    let mut names = Vec::new();
    let mut samples = 0;
    let mut missed_early = false;
    let group = workers.len().max(1);
    for (fs, rs) in feeds.chunks(group).zip(reference.chunks(group)) {
        let wanted: Vec<Vec<String>> = rs
            .iter()
            .map(|r| r.iter().map(|t| t.name.clone()).collect())
            .collect();
        for r in rs {
            metrics.check(r)?;
        }
        let asked: Vec<&[String]> = wanted.iter().map(Vec::as_slice).collect();
        let results = runner::run_side_by_side(workers, fs, &asked)?;
        for ((r, names_wanted), outs) in rs.iter().zip(wanted).zip(results) {
            if accs.is_empty() {
                accs = vec![Accumulator::for_tasks(&metrics.tasks); outs.len()];
                names = names_wanted;
            }
            add_sample(&mut accs, r, &outs, metrics)?;
        }
        samples += fs.len();
        if samples < feeds.len() && stop.is_some_and(|s| s.missed(&accs, &names)) {
            missed_early = true;
            break;
        }
    }
    Ok(Judged {
        outputs: accs.iter().zip(&names).map(|(a, n)| a.finish(n)).collect(),
        samples,
        missed_early,
    })
}

/// Add one sample's candidate outputs `outs` against the reference `r` to `accs`.
fn add_sample(
    accs: &mut [Accumulator],
    r: &[runner::NamedTensor],
    outs: &[runner::NamedTensor],
    metrics: &Metrics,
) -> Result<()> {
    for ((acc, a), b) in accs.iter_mut().zip(r).zip(outs) {
        if a.shape != b.shape {
            return Err(Error::Runtime(format!(
                "output '{}' has shape {:?} in the quantized model, {:?} in fp32",
                a.name, b.shape, a.shape
            )));
        }
        if !a.is_float() {
            let exact = |t: &runner::NamedTensor| t.to_tensor().map(|t| t.to_f64_vec());
            acc.add_exact(&exact(a)?, &exact(b)?);
            continue;
        }
        let classes = metrics
            .class_outputs
            .contains(&a.name)
            .then(|| *a.shape.last().unwrap_or(&1));
        let (fa, fb) = (a.floats(), b.floats());
        acc.add(&fa, &fb, classes);
        acc.add_task(&a.shape, &fa, &fb);
    }
    Ok(())
}

/// Error at every quantized activation: the fp32 value vs the quantized model's value of
/// the same tensor (its DequantizeLinear output), on the evaluation inputs.
pub(crate) fn debug_layers(
    prepared: &Model,
    quantized: &Model,
    plan: &qdq::Plan,
    ranges: &BTreeMap<String, (f32, f32)>,
    feeds: &[Feed],
    engine: &dyn Engine,
) -> Result<Vec<LayerError>> {
    let mut fm = prepared.clone();
    let mut qm = quantized.clone();
    let graph_inputs: HashSet<String> = prepared
        .graph()
        .input
        .iter()
        .map(|i| i.name.clone())
        .collect();
    let acts: Vec<String> = plan
        .activations
        .iter()
        .filter(|t| !graph_inputs.contains(*t))
        .cloned()
        .collect();
    let dq_names: Vec<String> = acts.iter().map(|t| format!("{t}_dequantized")).collect();
    for (t, d) in acts.iter().zip(&dq_names) {
        fm.graph_mut()
            .output
            .push(value_info_unshaped(t, DataType::Float));
        qm.graph_mut()
            .output
            .push(value_info_unshaped(d, DataType::Float));
    }
    let mut fr = engine.load_for_calibration(&fm.to_bytes())?;
    let mut qr = engine.load_for_calibration(&qm.to_bytes())?;
    let mut accs = vec![Accumulator::default(); acts.len()];
    for f in feeds {
        let a = fr.run(f, &acts)?;
        let b = qr.run(f, &dq_names)?;
        for ((acc, x), y) in accs.iter_mut().zip(&a).zip(&b) {
            acc.add(&x.floats(), &y.floats(), None);
        }
    }
    Ok(acts
        .iter()
        .zip(&accs)
        .map(|(t, a)| LayerError {
            tensor: t.clone(),
            sqnr_db: a.finish(t).sqnr_db,
            range: ranges.get(t).copied().unwrap_or((0.0, 0.0)),
        })
        .collect())
}

/// An offline A/B comparison of two models on the same inputs (`edgepack compare`).
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Schema tag.
    pub schema: &'static str,
    /// Samples compared.
    pub samples: usize,
    /// Accuracy of B against A, per output.
    pub outputs: Vec<OutputAccuracy>,
    /// Latency of B relative to A (interleaved), when measured.
    pub latency: Option<LatencyRatio>,
    /// Encoded sizes.
    pub a_bytes: u64,
    /// Encoded sizes.
    pub b_bytes: u64,
    /// Task metrics computed (`--task`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<Task>,
}

/// Compare model `b` against reference `a` on `feeds`: the quantizer's accuracy metrics
/// plus an interleaved latency ratio (`latency_budget_s: None` skips timing).
pub fn compare_models(
    a: &Model,
    b: &Model,
    feeds: &[Feed],
    engine: &dyn Engine,
    latency_budget_s: Option<f64>,
    b_config: &runner::SessionConfig,
    tasks: &[Task],
) -> Result<Comparison> {
    if feeds.is_empty() {
        return Err(Error::usage(Setting::Inputs, "no input samples"));
    }
    let (ab, bb) = (a.to_bytes(), b.to_bytes());
    let mut ra = engine.load(&ab)?;
    let mut rb = engine.load_configured(&bb, b_config, false)?;
    let refs = feeds
        .iter()
        .map(|f| ra.run(f, &[]))
        .collect::<Result<Vec<_>>>()?;
    let names_a: HashSet<String> = refs[0].iter().map(|t| t.name.clone()).collect();
    let names_b: HashSet<String> = b.graph().output.iter().map(|o| o.name.clone()).collect();
    if let Some(missing) = names_a.iter().find(|n| !names_b.contains(*n)) {
        return Err(Error::usage(
            "compare",
            format!("output '{missing}' of model A is not an output of model B"),
        ));
    }
    let metrics = Metrics::of(a, &[], tasks)?;
    metrics.check(&refs[0])?;
    let outputs = compare(std::slice::from_mut(&mut rb), feeds, &refs, &metrics)?;
    let latency = match latency_budget_s {
        Some(budget) => {
            let mut ta = engine.load_for_timing(&ab)?;
            let mut tb = engine.load_configured(&bb, b_config, true)?;
            Some(runner::latency_ratio(
                &mut *ta, &mut *tb, &feeds[0], 5, 200, budget,
            )?)
        }
        None => None,
    };
    Ok(Comparison {
        schema: "edgepack.compare/1",
        samples: feeds.len(),
        outputs,
        latency,
        a_bytes: ab.len() as u64,
        b_bytes: bb.len() as u64,
        tasks: metrics.tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::runner::{ModelRunner, NamedTensor};

    /// Doubles its input `x` into output `y`, plus a bias that makes it differ from the
    /// reference on some samples.
    struct Doubler(f32);
    impl ModelRunner for Doubler {
        fn run(&mut self, inputs: &[NamedTensor], _: &[String]) -> Result<Vec<NamedTensor>> {
            let x = inputs[0].floats();
            let y = x.iter().map(|v| 2.0 * v + self.0 * v.sin()).collect();
            Ok(vec![NamedTensor::f32("y", vec![x.len()], y)])
        }
    }

    /// The exact model's outputs: what each candidate is compared with.
    fn references(feeds: &[Feed]) -> Vec<Vec<NamedTensor>> {
        feeds
            .iter()
            .map(|f| Doubler(0.0).run(f, &[]).unwrap())
            .collect()
    }

    #[test]
    fn workers_side_by_side_give_the_figures_of_one() {
        let feeds: Vec<Feed> = (0..7)
            .map(|i| {
                vec![NamedTensor::f32(
                    "x",
                    vec![3],
                    vec![i as f32, 1.0, -0.5 * i as f32],
                )]
            })
            .collect();
        let refs = references(&feeds);
        let metrics = Metrics::default();
        let one = compare(&mut [Box::new(Doubler(0.01)) as _], &feeds, &refs, &metrics).unwrap();
        let mut three: Vec<Box<dyn ModelRunner>> = (0..3)
            .map(|_| Box::new(Doubler(0.01)) as Box<dyn ModelRunner>)
            .collect();
        let got = compare(&mut three, &feeds, &refs, &metrics).unwrap();
        assert_eq!(got, one);
        assert!(one[0].sqnr_db.is_some_and(|s| s.is_finite()), "{one:?}");
    }

    #[test]
    fn judging_stops_once_the_target_cannot_be_met_and_never_before() {
        let feeds: Vec<Feed> = (0..40)
            .map(|i| vec![NamedTensor::f32("x", vec![4], vec![i as f32 + 1.0; 4])])
            .collect();
        let refs = references(&feeds);
        let metrics = Metrics::default();
        for bias in [0.0f32, 0.01, 0.1, 1.0, 4.0] {
            for target_db in [10.0, 20.0, 30.0, 40.0] {
                let targets = [AccuracyFloor::Sqnr(target_db)];
                let stop = EarlyStop::new(&targets, &refs, &metrics).unwrap();
                let whole =
                    compare(&mut [Box::new(Doubler(bias)) as _], &feeds, &refs, &metrics).unwrap();
                let mut two: Vec<Box<dyn ModelRunner>> = (0..2)
                    .map(|_| Box::new(Doubler(bias)) as Box<dyn ModelRunner>)
                    .collect();
                let judged = compare_until(&mut two, &feeds, &refs, &metrics, Some(&stop)).unwrap();
                let meets = targets[0].met_by(&whole);
                if meets {
                    assert!(
                        !judged.missed_early,
                        "bias {bias}, {target_db} dB stopped a set that meets"
                    );
                    assert_eq!(judged.outputs, whole);
                    assert_eq!(judged.samples, feeds.len());
                } else if judged.missed_early {
                    assert!(judged.samples < feeds.len() && judged.samples.is_multiple_of(2));
                } else {
                    assert_eq!(judged.outputs, whole);
                }
            }
        }
        // A set far from its target is stopped after the first group.
        let targets = [AccuracyFloor::Sqnr(60.0)];
        let stop = EarlyStop::new(&targets, &refs, &metrics).unwrap();
        let judged = compare_until(
            &mut [Box::new(Doubler(4.0)) as _],
            &feeds,
            &refs,
            &metrics,
            Some(&stop),
        )
        .unwrap();
        assert!(judged.missed_early && judged.samples == 1, "{judged:?}");
    }
}
