//! Accuracy of a model against a reference on the same inputs: pure functions over
//! plain float slices, accumulated across samples.
//!
//! SQNR is the signal-to-quantization-noise ratio in dB, `10 log10(sum ref^2 / sum
//! (ref - q)^2)` over all samples (the standard definition, e.g. Gray & Neuhoff,
//! "Quantization", IEEE Trans. IT 1998). Cosine is over the flattened outputs of all
//! samples; the minimum cosine is the worst single sample's (one [`Accumulator::add`]),
//! which is what a sentence-embedding or retrieval user sees. Top-1 agreement compares
//! the argmax along the last axis, per row. Integer and bool outputs (token ids, argmax
//! indices, masks) have no noise to speak of: they are compared exactly
//! ([`Accumulator::add_exact`]) and report the fraction of equal elements.
//!
//! Task metrics ([`super::task`]: CTC character error rate, binarised-map IoU) are
//! accumulated per output when a target or a declared task asks for them
//! ([`Accumulator::for_tasks`]).
//!
//! [`AccuracyFloor`] is THE accuracy-target grammar (`--accuracy-target` of `quantize`,
//! the targets `auto` and the accuracy guard search against).

use std::fmt;

use serde::Serialize;

use super::task::{CtcAccumulator, CtcAgreement, MaskAccumulator, MaskOverlap, Task};
use crate::error::{Error, Result};
use crate::setting::Setting;

/// Running sums for one output compared across samples.
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    signal: f64,
    noise: f64,
    dot: f64,
    norm_b: f64,
    max_abs: f64,
    sum_abs: f64,
    count: u64,
    rows: u64,
    rows_agree: u64,
    min_cosine: Option<f64>,
    exact_equal: u64,
    exact_total: u64,
    ctc: Option<CtcAccumulator>,
    mask: Option<MaskAccumulator>,
}

/// The accuracy of one output.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OutputAccuracy {
    /// Output name.
    pub output: String,
    /// SQNR in dB (`None` when the reference is all zeros; infinite when identical).
    pub sqnr_db: Option<f64>,
    /// Cosine similarity of the flattened outputs (`None` when either is all zeros).
    pub cosine: Option<f64>,
    /// Smallest per-sample cosine similarity (`None` when no sample had both sides
    /// non-zero).
    pub min_cosine: Option<f64>,
    /// For integer and bool outputs: the fraction of elements exactly equal (`None` for
    /// float outputs).
    pub exact_match: Option<f64>,
    /// Largest absolute difference.
    pub max_abs_error: f64,
    /// Mean absolute difference.
    pub mean_abs_error: f64,
    /// Fraction of rows whose argmax along the last axis agrees, when that axis is a
    /// class axis.
    pub top1_agreement: Option<f64>,
    /// Number of elements compared.
    pub elements: u64,
    /// CTC text agreement (greedy decoding of both models), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctc: Option<CtcAgreement>,
    /// Overlap of the binarised maps, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<MaskOverlap>,
}

impl Accumulator {
    /// An accumulator that also computes the task metrics of `tasks` (CTC and mask; top-1
    /// and cosine are always computed).
    pub fn for_tasks(tasks: &[Task]) -> Self {
        let mut a = Accumulator::default();
        for t in tasks {
            match *t {
                Task::Ctc { blank } => a.ctc = Some(CtcAccumulator::new(blank)),
                Task::Mask { threshold } => a.mask = Some(MaskAccumulator::new(threshold)),
                Task::Top1 | Task::Embedding => {}
            }
        }
        a
    }

    /// Add one sample to the task metrics: `shape` is the output's shape (checked by
    /// [`Task::check_output`] first).
    pub fn add_task(&mut self, shape: &[usize], reference: &[f32], candidate: &[f32]) {
        if let Some(c) = self.ctc.as_mut() {
            c.add(shape, reference, candidate);
        }
        if let Some(m) = self.mask.as_mut() {
            m.add(reference, candidate);
        }
    }

    /// Add one sample: `reference` and `candidate` of the same length; `classes` is the
    /// size of the last axis when it is a class axis.
    pub fn add(&mut self, reference: &[f32], candidate: &[f32], classes: Option<usize>) {
        let (mut ss, mut dot, mut nb) = (0.0f64, 0.0f64, 0.0f64);
        for (&a, &b) in reference.iter().zip(candidate) {
            let (a, b) = (a as f64, b as f64);
            let d = (a - b).abs();
            ss += a * a;
            self.noise += d * d;
            dot += a * b;
            nb += b * b;
            self.max_abs = self.max_abs.max(d);
            self.sum_abs += d;
            self.count += 1;
        }
        self.signal += ss;
        self.dot += dot;
        self.norm_b += nb;
        if let Some(c) = cosine(ss, dot, nb) {
            // A NaN cosine (the candidate overflowed on this sample) is the worst there is
            // and stays so: `f64::min` would drop it.
            self.min_cosine = Some(self.min_cosine.map_or(c, |m| {
                if m.is_nan() || c.is_nan() {
                    f64::NAN
                } else {
                    m.min(c)
                }
            }));
        }
        if let Some(k) = classes.filter(|&k| k > 1) {
            for (ra, rb) in reference.chunks_exact(k).zip(candidate.chunks_exact(k)) {
                self.rows += 1;
                if argmax(ra) == argmax(rb) {
                    self.rows_agree += 1;
                }
            }
        }
    }

    /// Add one sample of an integer or bool output: elements compared for equality
    /// (the values as `f64`, exact for every integer below 2^53).
    pub fn add_exact(&mut self, reference: &[f64], candidate: &[f64]) {
        for (a, b) in reference.iter().zip(candidate) {
            let d = (a - b).abs();
            self.max_abs = self.max_abs.max(d);
            self.sum_abs += d;
            self.count += 1;
            self.exact_total += 1;
            self.exact_equal += u64::from(a == b);
        }
    }

    /// The figures so far.
    pub fn finish(&self, output: &str) -> OutputAccuracy {
        let exact = self.exact_total > 0;
        OutputAccuracy {
            output: output.to_string(),
            sqnr_db: if exact {
                None
            } else {
                sqnr_db(self.signal, self.noise)
            },
            cosine: cosine(self.signal, self.dot, self.norm_b),
            min_cosine: self.min_cosine,
            exact_match: exact.then(|| self.exact_equal as f64 / self.exact_total as f64),
            max_abs_error: self.max_abs,
            mean_abs_error: if self.count == 0 {
                0.0
            } else {
                self.sum_abs / self.count as f64
            },
            top1_agreement: (self.rows > 0).then(|| self.rows_agree as f64 / self.rows as f64),
            elements: self.count,
            ctc: self.ctc.as_ref().map(CtcAccumulator::finish),
            mask: self.mask.as_ref().map(MaskAccumulator::finish),
        }
    }

    /// The best figures this output can still end with, once the rest of the evaluation set
    /// is added: `whole` is the reference compared with itself over every sample (its
    /// signal, rows, elements, reference characters and samples are the totals). Every
    /// sample still to come is taken as perfect, so each figure is a bound the final one
    /// cannot beat: SQNR's noise only grows against a known signal, the worst sample's cosine
    /// only falls, a CER's edits only grow against a known number of reference characters,
    /// and a mean IoU or an agreement can at best gain 1 per remaining sample or row. The
    /// pooled cosine is not bounded (`None`: a target reads it only when no sample has a
    /// cosine, and `None` never makes a target miss).
    pub fn best_case(&self, whole: &Accumulator, output: &str) -> OutputAccuracy {
        let mut b = self.clone();
        b.signal = whole.signal;
        b.rows_agree = self.rows_agree + whole.rows.saturating_sub(self.rows);
        b.rows = whole.rows.max(self.rows);
        b.exact_equal = self.exact_equal + whole.exact_total.saturating_sub(self.exact_total);
        b.exact_total = whole.exact_total.max(self.exact_total);
        b.count = whole.count.max(self.count);
        if let (Some(c), Some(w)) = (self.ctc.as_ref(), whole.ctc.as_ref()) {
            b.ctc = Some(c.best_case(w));
        }
        if let (Some(m), Some(w)) = (self.mask.as_ref(), whole.mask.as_ref()) {
            b.mask = Some(m.best_case(w));
        }
        let mut out = b.finish(output);
        out.cosine = None;
        out
    }
}

/// Cosine similarity from `sum a^2`, `sum a b`, `sum b^2`; `None` when either side is
/// all zeros.
pub fn cosine(norm_a: f64, dot: f64, norm_b: f64) -> Option<f64> {
    (norm_a > 0.0 && norm_b > 0.0).then(|| dot / (norm_a.sqrt() * norm_b.sqrt()))
}

/// SQNR in dB from signal and noise energies.
pub fn sqnr_db(signal: f64, noise: f64) -> Option<f64> {
    if signal <= 0.0 {
        return None;
    }
    if noise <= 0.0 {
        return Some(f64::INFINITY);
    }
    Some(10.0 * (signal / noise).log10())
}

/// Index of the largest value (first one on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// An accuracy target the quantized model must reach (named apart from hardware targets;
/// `--accuracy-target` on the command line, `--accuracy-floor` its older spelling).
///
/// Grammar, `METRIC OP VALUE[@THRESHOLD]`:
/// - `sqnr>=25dB`: worst output's SQNR (the unit is required, as for every quantity:
///   [`crate::units`]);
/// - `cosine>=0.99`: worst sample's cosine similarity, a plain fraction;
/// - `top1>=99%` (or `top1>=0.99`): top-1 agreement on class-axis outputs;
/// - `cer<=0.5%`: character error rate of greedy CTC decoding against the fp32 text (a
///   percentage: a bare `0.5` would be ambiguous);
/// - `mask-iou>=0.98@0.3`: mean IoU over samples of the maps binarised at 0.3 (`>= 98%`
///   also reads).
///
/// `=` is the older spelling of `>=` (`sqnr=30dB`, `cosine=0.999`, `top1=0.99`). A
/// ceiling written as a floor (`cer>=1%`) or the reverse is refused, not flipped.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "metric", content = "value", rename_all = "kebab-case")]
pub enum AccuracyFloor {
    /// Minimum SQNR in dB over all outputs.
    Sqnr(f64),
    /// Minimum cosine similarity over all outputs, per sample: the worst sample's cosine
    /// must reach it (a mean over samples would hide the one sentence that broke).
    Cosine(f64),
    /// Minimum top-1 agreement over outputs with a class axis (and exact agreement of
    /// integer outputs).
    Top1(f64),
    /// Maximum character error rate (a fraction) of greedy CTC decoding against the fp32
    /// model's text, pooled over lines.
    Cer(f64),
    /// Minimum mean IoU over samples of the maps binarised at `threshold`.
    MaskIou {
        /// Minimum mean IoU.
        min: f64,
        /// Binarisation threshold.
        threshold: f64,
    },
}

/// The forms, for error messages.
const TARGET_FORMS: &str = "sqnr>=25dB, cosine>=0.99, top1>=99%, cer<=0.5% or mask-iou>=0.98@0.3";

impl AccuracyFloor {
    /// Parse one target (see the type's docs for the grammar); errors name the setting
    /// ([`Setting::AccuracyTarget`]) and say what was expected.
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_for(Setting::AccuracyTarget, s)
    }

    /// [`AccuracyFloor::parse`] for another setting (a bundle's
    /// [`Setting::AccuracyFloor`]), named in errors.
    pub fn parse_for(setting: Setting, s: &str) -> Result<Self> {
        let bad = |m: String| Error::usage(setting, format!("'{s}': {m}"));
        let t = s.trim();
        let Some(at) = t.find(['<', '>', '=']) else {
            return Err(bad(format!("not a target; write {TARGET_FORMS}")));
        };
        let metric = t[..at].trim();
        let rest = &t[at..];
        let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
            (">=", v)
        } else if let Some(v) = rest.strip_prefix("<=") {
            ("<=", v)
        } else if let Some(v) = rest.strip_prefix('=') {
            ("=", v)
        } else {
            return Err(bad(format!(
                "the comparison must be >= or <= (e.g. {TARGET_FORMS})"
            )));
        };
        let floor = |what: &str| -> Result<()> {
            match op {
                "<=" => Err(bad(format!("{what} is a floor: write {metric}>=VALUE"))),
                _ => Ok(()),
            }
        };
        // A plain fraction in [0, 1], or a percentage when `percent_ok`.
        let fraction = |v: &str, percent_ok: bool| -> Result<f64> {
            let v = v.trim();
            let x = if v.ends_with('%') && percent_ok {
                crate::units::parse_percent(v).map_err(|e| bad(e.to_string()))?
            } else {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| {
                        bad(format!(
                            "'{v}' is not {}",
                            if percent_ok {
                                "a fraction or a percentage (0.99 or 99%)"
                            } else {
                                "a fraction such as 0.99"
                            }
                        ))
                    })?
            };
            if !(0.0..=1.0).contains(&x) {
                return Err(bad(format!("{v} is not between 0 and 1 (0% and 100%)")));
            }
            Ok(x)
        };
        match metric {
            "sqnr" => {
                floor("sqnr")?;
                crate::units::parse(value, crate::units::Unit::Decibels)
                    .map(AccuracyFloor::Sqnr)
                    .map_err(|e| bad(e.to_string()))
            }
            "cosine" => {
                floor("cosine")?;
                fraction(value, false).map(AccuracyFloor::Cosine)
            }
            "top1" => {
                floor("top1")?;
                fraction(value, true).map(AccuracyFloor::Top1)
            }
            "cer" => {
                if op != "<=" {
                    return Err(bad("cer is a ceiling: write cer<=0.5%".into()));
                }
                if !value.trim().ends_with('%') {
                    return Err(bad(format!(
                        "'{}' needs its unit: a percentage such as 0.5%",
                        value.trim()
                    )));
                }
                fraction(value, true).map(AccuracyFloor::Cer)
            }
            "mask-iou" => {
                if op != ">=" {
                    return Err(bad("mask-iou is a floor: write mask-iou>=0.98@0.3".into()));
                }
                let Some((v, th)) = value.split_once('@') else {
                    return Err(bad(
                        "mask-iou needs its binarisation threshold: mask-iou>=0.98@0.3".into(),
                    ));
                };
                let threshold = match Task::parse(setting, &format!("mask@{th}"))? {
                    Task::Mask { threshold } => threshold,
                    _ => unreachable!("mask@ parses as a mask"),
                };
                Ok(AccuracyFloor::MaskIou {
                    min: fraction(v, true)?,
                    threshold,
                })
            }
            "" => Err(bad(format!("no metric; write {TARGET_FORMS}"))),
            m => Err(bad(format!(
                "unknown metric '{m}' (known: sqnr, cosine, top1, cer, mask-iou)"
            ))),
        }
    }

    /// The task metric this target needs computed, if any (SQNR, cosine and top-1 are
    /// computed for every output).
    pub fn task(&self) -> Option<Task> {
        match *self {
            AccuracyFloor::Cer(_) => Some(Task::Ctc {
                blank: super::task::CTC_BLANK,
            }),
            AccuracyFloor::MaskIou { threshold, .. } => Some(Task::Mask { threshold }),
            _ => None,
        }
    }

    /// This target's value on the outputs: the worst over the outputs where it is defined
    /// (`None` when defined on none).
    pub fn value(&self, outputs: &[OutputAccuracy]) -> Option<f64> {
        let vals = outputs.iter().filter_map(|o| match self {
            AccuracyFloor::Sqnr(_) => o.sqnr_db,
            AccuracyFloor::Cosine(_) => o.min_cosine.or(o.cosine),
            AccuracyFloor::Top1(_) => o.top1_agreement.or(o.exact_match),
            // Undefined CER (the fp32 model decoded nothing): any edit is all error.
            AccuracyFloor::Cer(_) => o
                .ctc
                .as_ref()
                .map(|c| c.cer.unwrap_or(if c.edits == 0 { 0.0 } else { 1.0 })),
            AccuracyFloor::MaskIou { threshold, .. } => o
                .mask
                .as_ref()
                .filter(|m| m.threshold == *threshold)
                .and_then(|m| m.mean_iou),
        });
        match self {
            AccuracyFloor::Cer(_) => vals.reduce(f64::max),
            _ => vals.reduce(f64::min),
        }
    }

    /// Whether the outputs meet the target (outputs where the metric is undefined are
    /// skipped). Integer outputs have no SQNR or cosine; they count for `top1` through
    /// their exact agreement.
    pub fn met_by(&self, outputs: &[OutputAccuracy]) -> bool {
        self.margin(outputs) >= 0.0
    }

    /// How far the outputs are past the target, scaled so that targets of different
    /// metrics compare: positive when met, negative when missed, 0 at the target. SQNR
    /// counts in units of 10 dB; fractions in units of the distance from the
    /// target to perfect (`cosine>=0.99` at 0.98 is -1, at 0.995 is +0.5); CER in units of
    /// the target (`cer<=1%` at 2% is -1). Infinite when nothing is measured.
    pub fn margin(&self, outputs: &[OutputAccuracy]) -> f64 {
        let Some(v) = self.value(outputs) else {
            return f64::INFINITY;
        };
        let above = |v: f64, t: f64| {
            if v >= t {
                if t >= 1.0 {
                    f64::INFINITY
                } else {
                    (v - t) / (1.0 - t)
                }
            } else {
                (v - t) / (1.0 - t).max(1e-9)
            }
        };
        match *self {
            AccuracyFloor::Sqnr(t) => (v - t) / 10.0,
            AccuracyFloor::Cosine(t) | AccuracyFloor::Top1(t) => above(v, t),
            AccuracyFloor::MaskIou { min, .. } => above(v, min),
            AccuracyFloor::Cer(t) => (t - v) / t.max(1e-9),
        }
    }
}

/// The least margin over `targets` ([`AccuracyFloor::margin`]): what a search ranks
/// candidates by when several targets are given.
pub fn worst_margin(targets: &[AccuracyFloor], outputs: &[OutputAccuracy]) -> f64 {
    targets
        .iter()
        .map(|t| t.margin(outputs))
        .fold(f64::INFINITY, f64::min)
}

/// The task metrics to compute: those the targets need plus the declared ones, each once.
/// Two mask thresholds are refused (one map, one threshold).
pub fn tasks_of(targets: &[AccuracyFloor], declared: &[Task]) -> Result<Vec<Task>> {
    let mut tasks: Vec<Task> = Vec::new();
    for t in targets
        .iter()
        .filter_map(AccuracyFloor::task)
        .chain(declared.iter().copied())
    {
        if let (Task::Mask { threshold: a }, Some(Task::Mask { threshold: b })) =
            (t, tasks.iter().find(|x| matches!(x, Task::Mask { .. })))
        {
            if a != *b {
                return Err(Error::usage(
                    Setting::AccuracyTarget,
                    format!("two mask thresholds ({b} and {a}); binarise at one"),
                ));
            }
        }
        if !tasks.contains(&t) {
            tasks.push(t);
        }
    }
    Ok(tasks)
}

/// A fraction as a percentage without float noise (0.995 -> 99.5).
fn percent(x: f64) -> f64 {
    (x * 100.0 * 1e9).round() / 1e9
}

impl fmt::Display for AccuracyFloor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AccuracyFloor::Sqnr(t) => write!(f, "sqnr>={t}dB"),
            AccuracyFloor::Cosine(t) => write!(f, "cosine>={t}"),
            AccuracyFloor::Top1(t) => write!(f, "top1>={}%", percent(t)),
            AccuracyFloor::Cer(t) => write!(f, "cer<={}%", percent(t)),
            AccuracyFloor::MaskIou { min, threshold } => {
                write!(f, "mask-iou>={min}@{threshold}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// No prefix of the samples gives a best case worse than the final figures: for every
    /// target, the value over the best case is at least as good as the value at the end,
    /// so a stop on the best case never drops a set that would have met the target.
    #[test]
    fn best_case_over_a_prefix_bounds_the_final_figures() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (time, classes) = (6usize, 4usize);
        let tasks = [Task::Ctc { blank: 0 }, Task::Mask { threshold: 0.3 }];
        let targets = [
            AccuracyFloor::Sqnr(0.0),
            AccuracyFloor::Cosine(0.0),
            AccuracyFloor::Top1(0.0),
            AccuracyFloor::Cer(0.5),
            AccuracyFloor::MaskIou {
                min: 0.0,
                threshold: 0.3,
            },
        ];
        for noise in [0.0f32, 0.05, 0.3, 1.0] {
            let samples: Vec<(Vec<f32>, Vec<f32>)> = (0..12)
                .map(|i| {
                    // Some samples all zero in the reference, as a silent frame would be.
                    let r: Vec<f32> = (0..time * classes)
                        .map(|_| if i % 5 == 4 { 0.0 } else { rng.random::<f32>() })
                        .collect();
                    let c = r.iter().map(|v| v + noise * rng.random::<f32>()).collect();
                    (r, c)
                })
                .collect();
            let shape = [1, time, classes];
            let add = |acc: &mut Accumulator, r: &[f32], c: &[f32]| {
                acc.add(r, c, Some(classes));
                acc.add_task(&shape, r, c);
            };
            let mut whole = Accumulator::for_tasks(&tasks);
            let mut fin = Accumulator::for_tasks(&tasks);
            for (r, c) in &samples {
                add(&mut whole, r, r);
                add(&mut fin, r, c);
            }
            let fin = [fin.finish("y")];
            let mut prefix = Accumulator::for_tasks(&tasks);
            for (k, (r, c)) in samples.iter().enumerate() {
                add(&mut prefix, r, c);
                let best = [prefix.best_case(&whole, "y")];
                for t in &targets {
                    let (b, f) = (t.value(&best), t.value(&fin));
                    let Some(f) = f else { continue };
                    let b = b.unwrap_or(if t.task().is_some() { f } else { f64::INFINITY });
                    let bound_holds = match t {
                        AccuracyFloor::Cer(_) => b <= f + 1e-12,
                        _ => b >= f - 1e-12,
                    };
                    assert!(
                        bound_holds,
                        "{t} after {} samples, noise {noise}: best {b}, final {f}",
                        k + 1
                    );
                }
            }
            // After the last sample the best case is the final figure.
            let best = [prefix.best_case(&whole, "y")];
            assert_eq!(best[0].sqnr_db, fin[0].sqnr_db);
            assert_eq!(best[0].ctc, fin[0].ctc);
            assert_eq!(best[0].mask, fin[0].mask);
        }
    }

    #[test]
    fn identical_outputs_have_infinite_sqnr_and_full_agreement() {
        let mut a = Accumulator::default();
        a.add(&[1.0, 2.0, 3.0, 0.5], &[1.0, 2.0, 3.0, 0.5], Some(2));
        let r = a.finish("y");
        assert_eq!(r.sqnr_db, Some(f64::INFINITY));
        assert!((r.cosine.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(r.top1_agreement, Some(1.0));
        assert_eq!(r.max_abs_error, 0.0);
    }

    #[test]
    fn sqnr_of_ten_percent_noise_is_20_db() {
        let mut a = Accumulator::default();
        a.add(&[10.0, -10.0], &[11.0, -11.0], None);
        let r = a.finish("y");
        assert!((r.sqnr_db.unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(r.max_abs_error, 1.0);
        assert_eq!(r.mean_abs_error, 1.0);
        assert_eq!(r.top1_agreement, None);
    }

    #[test]
    fn all_zero_reference_has_undefined_sqnr() {
        let mut a = Accumulator::default();
        a.add(&[0.0, 0.0], &[0.1, 0.0], None);
        assert_eq!(a.finish("y").sqnr_db, None);
        assert_eq!(Accumulator::default().finish("y").elements, 0);
    }

    #[test]
    fn top1_counts_rows_that_flip() {
        let mut a = Accumulator::default();
        a.add(&[0.9, 0.1, 0.2, 0.8], &[0.8, 0.2, 0.6, 0.4], Some(2));
        assert_eq!(a.finish("y").top1_agreement, Some(0.5));
    }

    #[test]
    fn parses_and_checks_targets() {
        assert_eq!(
            AccuracyFloor::parse("sqnr=30dB").unwrap(),
            AccuracyFloor::Sqnr(30.0)
        );
        assert_eq!(
            AccuracyFloor::parse("top1=0.99").unwrap(),
            AccuracyFloor::Top1(0.99)
        );
        assert!(AccuracyFloor::parse("cosine=2").is_err());
        let e = AccuracyFloor::parse("sqnr=30").unwrap_err().to_string();
        assert!(e.contains("unit"), "a level needs its unit: {e}");
        let o = OutputAccuracy {
            output: "y".into(),
            sqnr_db: Some(28.0),
            cosine: Some(0.999),
            min_cosine: Some(0.999),
            exact_match: None,
            max_abs_error: 0.0,
            mean_abs_error: 0.0,
            top1_agreement: None,
            elements: 1,
            ctc: None,
            mask: None,
        };
        assert!(!AccuracyFloor::Sqnr(30.0).met_by(std::slice::from_ref(&o)));
        assert!(AccuracyFloor::Top1(0.99).met_by(&[o]));
    }

    #[test]
    fn min_cosine_is_the_worst_sample_not_the_pooled_one() {
        // What it protects: one sample whose output points elsewhere must show, even when
        // a large sample dominates the pooled cosine.
        let mut a = Accumulator::default();
        a.add(&[10.0, 0.0], &[10.0, 0.0], None);
        a.add(&[1.0, 0.0], &[0.0, 1.0], None);
        let r = a.finish("y");
        assert_eq!(r.min_cosine, Some(0.0));
        assert!(r.cosine.unwrap() > 0.99);
        assert!(!AccuracyFloor::Cosine(0.99).met_by(std::slice::from_ref(&r)));
        // One sample, all zeros on one side: undefined, not counted.
        let mut z = Accumulator::default();
        z.add(&[0.0, 0.0], &[1.0, 0.0], None);
        assert_eq!(z.finish("y").min_cosine, None);
        // A sample the candidate overflowed on (cosine NaN) is the worst, in any position:
        // judging stopped early and judging in full must agree.
        for bad in 0..3 {
            let mut o = Accumulator::default();
            for i in 0..3 {
                let c = if i == bad { f32::INFINITY } else { 1.0 };
                o.add(&[1.0, 2.0], &[c, 2.0], None);
            }
            let r = o.finish("y");
            assert!(r.min_cosine.is_some_and(f64::is_nan), "overflow at {bad}");
            assert!(!AccuracyFloor::Cosine(0.5).met_by(&[r]));
        }
    }

    #[test]
    fn integer_outputs_are_compared_exactly() {
        let mut a = Accumulator::default();
        a.add_exact(&[3.0, 7.0, 1.0, 9.0], &[3.0, 7.0, 2.0, 9.0]);
        let r = a.finish("ids");
        assert_eq!(r.exact_match, Some(0.75));
        assert_eq!(
            (r.sqnr_db, r.min_cosine, r.max_abs_error),
            (None, None, 1.0)
        );
        assert!(!AccuracyFloor::Top1(0.9).met_by(std::slice::from_ref(&r)));
        assert!(AccuracyFloor::Top1(0.75).met_by(std::slice::from_ref(&r)));
        // SQNR and cosine targets skip an output that has neither.
        assert!(AccuracyFloor::Sqnr(30.0).met_by(std::slice::from_ref(&r)));
        assert!(AccuracyFloor::Cosine(0.99).met_by(&[r]));
    }

    #[test]
    fn parses_the_target_grammar() {
        let p = |s: &str| AccuracyFloor::parse(s).unwrap();
        assert_eq!(p("cer<=0.5%"), AccuracyFloor::Cer(0.005));
        assert_eq!(
            p("mask-iou>=0.98@0.3"),
            AccuracyFloor::MaskIou {
                min: 0.98,
                threshold: 0.3
            }
        );
        assert_eq!(
            p("mask-iou>=98%@0.3"),
            AccuracyFloor::MaskIou {
                min: 0.98,
                threshold: 0.3
            }
        );
        assert_eq!(p("top1>=99%"), AccuracyFloor::Top1(0.99));
        assert_eq!(p("top1>=0.99"), AccuracyFloor::Top1(0.99));
        assert_eq!(p("cosine>=0.99"), AccuracyFloor::Cosine(0.99));
        assert_eq!(p(" sqnr>=25dB "), AccuracyFloor::Sqnr(25.0));
        // The older spellings still read.
        assert_eq!(p("cosine=0.99"), AccuracyFloor::Cosine(0.99));
        // Display is the grammar's own spelling, and reads back.
        for s in [
            "cer<=0.5%",
            "mask-iou>=0.98@0.3",
            "top1>=99%",
            "cosine>=0.99",
            "sqnr>=25dB",
        ] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(p(&p(s).to_string()), p(s));
        }
    }

    #[test]
    fn refuses_bad_targets_with_a_reason() {
        for (bad, why) in [
            ("cer<=0.5", "percentage"),
            ("cer>=0.5%", "ceiling"),
            ("cer<=150%", "between 0 and 1"),
            ("sqnr<=25dB", "floor"),
            ("sqnr>=25", "unit"),
            ("mask-iou>=0.98", "threshold"),
            ("mask-iou>=0.98@x", "threshold"),
            ("mask-iou<=0.98@0.3", "floor"),
            ("cosine>=99%", "fraction"),
            ("cosine>=1.5", "between 0 and 1"),
            ("wer<=1%", "unknown metric 'wer'"),
            ("top1", "not a target"),
            ("top1>99%", ">= or <="),
            (">=0.9", "no metric"),
        ] {
            let e = AccuracyFloor::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("accuracy target: "), "{bad}: {e}");
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    fn task_output(cer: Option<f64>, edits: u64, mean_iou: Option<f64>) -> OutputAccuracy {
        let mut a = Accumulator::default().finish("y");
        a.ctc = Some(CtcAgreement {
            blank: 0,
            cer,
            edits,
            reference_chars: 100,
            lines: 4,
            lines_identical: 3,
        });
        a.mask = mean_iou.map(|m| MaskOverlap {
            threshold: 0.3,
            mean_iou: Some(m),
            min_iou: Some(m),
            samples: 2,
        });
        a
    }

    #[test]
    fn task_targets_judge_the_task_metrics() {
        let cer = AccuracyFloor::parse("cer<=0.5%").unwrap();
        assert!(cer.met_by(&[task_output(Some(0.004), 1, None)]));
        assert!(!cer.met_by(&[task_output(Some(0.036), 9, None)]));
        // No reference text: met only when nothing was decoded differently.
        assert!(cer.met_by(&[task_output(None, 0, None)]));
        assert!(!cer.met_by(&[task_output(None, 2, None)]));
        let iou = AccuracyFloor::parse("mask-iou>=0.98@0.3").unwrap();
        assert!(iou.met_by(&[task_output(None, 0, Some(0.99))]));
        assert!(!iou.met_by(&[task_output(None, 0, Some(0.957))]));
        // Another threshold was measured: this target is not judged by it.
        let other = AccuracyFloor::parse("mask-iou>=0.98@0.5").unwrap();
        assert_eq!(other.value(&[task_output(None, 0, Some(0.5))]), None);
        // Margins rank across metrics: 3.6% CER is further off 0.5% than 0.6% is.
        assert!(
            cer.margin(&[task_output(Some(0.036), 9, None)])
                < cer.margin(&[task_output(Some(0.006), 9, None)])
        );
        let both = [cer, iou];
        assert!(worst_margin(&both, &[task_output(Some(0.004), 1, Some(0.95))]) < 0.0);
    }

    #[test]
    fn tasks_come_from_targets_and_declarations_once() {
        let t = |s: &str| AccuracyFloor::parse(s).unwrap();
        let tasks = tasks_of(
            &[t("cer<=1%"), t("sqnr>=20dB"), t("mask-iou>=0.9@0.3")],
            &[Task::Ctc { blank: 0 }],
        )
        .unwrap();
        assert_eq!(
            tasks,
            [Task::Ctc { blank: 0 }, Task::Mask { threshold: 0.3 }]
        );
        let e = tasks_of(&[t("mask-iou>=0.9@0.3"), t("mask-iou>=0.9@0.5")], &[]).unwrap_err();
        assert!(e.to_string().contains("two mask thresholds"), "{e}");
    }

    #[test]
    fn accumulates_task_metrics_when_asked() {
        let mut a =
            Accumulator::for_tasks(&[Task::Ctc { blank: 0 }, Task::Mask { threshold: 0.5 }]);
        // One line, 3 timesteps, 2 classes: fp32 decodes [1, 1], the candidate [1].
        let r = [0.1, 0.9, 0.8, 0.2, 0.3, 0.7];
        let c = [0.2, 0.8, 0.7, 0.3, 0.6, 0.4];
        a.add(&r, &c, None);
        a.add_task(&[1, 3, 2], &r, &c);
        let o = a.finish("y");
        let ctc = o.ctc.unwrap();
        assert_eq!((ctc.lines, ctc.lines_identical, ctc.edits), (1, 0, 1));
        assert_eq!(ctc.reference_chars, 2);
        assert!(o.mask.unwrap().mean_iou.unwrap() < 1.0);
        assert_eq!(Accumulator::default().finish("y").ctc, None);
    }
}
