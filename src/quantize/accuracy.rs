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

use serde::Serialize;

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
}

impl Accumulator {
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
            self.min_cosine = Some(self.min_cosine.map_or(c, |m| m.min(c)));
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
        }
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

/// An accuracy floor the quantized model must reach: `sqnr=30dB`, `cosine=0.999`,
/// `top1=0.99` (named apart from hardware targets; `--accuracy-floor` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "metric", content = "value", rename_all = "lowercase")]
pub enum AccuracyFloor {
    /// Minimum SQNR in dB over all outputs.
    Sqnr(f64),
    /// Minimum cosine similarity over all outputs, per sample: the worst sample's cosine
    /// must reach it (a mean over samples would hide the one sentence that broke).
    Cosine(f64),
    /// Minimum top-1 agreement over outputs with a class axis (and exact agreement of
    /// integer outputs).
    Top1(f64),
}

impl AccuracyFloor {
    /// Parse `sqnr=30dB` (the unit is required, as for every quantity: [`crate::units`]),
    /// `cosine=0.999`, `top1=0.99` (plain fractions).
    pub fn parse(s: &str) -> Option<Self> {
        let (k, v) = s.split_once('=')?;
        if k.trim() == "sqnr" {
            return crate::units::parse(v, crate::units::Unit::Decibels)
                .ok()
                .map(AccuracyFloor::Sqnr);
        }
        let v: f64 = v.trim().parse().ok().filter(|x: &f64| x.is_finite())?;
        match k.trim() {
            "cosine" if (0.0..=1.0).contains(&v) => Some(AccuracyFloor::Cosine(v)),
            "top1" if (0.0..=1.0).contains(&v) => Some(AccuracyFloor::Top1(v)),
            _ => None,
        }
    }

    /// Whether the outputs meet the target (outputs where the metric is undefined are
    /// skipped). Integer outputs have no SQNR or cosine; they count for `top1` through
    /// their exact agreement.
    pub fn met_by(&self, outputs: &[OutputAccuracy]) -> bool {
        outputs.iter().all(|o| match self {
            AccuracyFloor::Sqnr(t) => o.sqnr_db.is_none_or(|v| v >= *t),
            AccuracyFloor::Cosine(t) => o.min_cosine.or(o.cosine).is_none_or(|v| v >= *t),
            AccuracyFloor::Top1(t) => o.top1_agreement.or(o.exact_match).is_none_or(|v| v >= *t),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            AccuracyFloor::parse("sqnr=30dB"),
            Some(AccuracyFloor::Sqnr(30.0))
        );
        assert_eq!(
            AccuracyFloor::parse("top1=0.99"),
            Some(AccuracyFloor::Top1(0.99))
        );
        assert_eq!(AccuracyFloor::parse("cosine=2"), None);
        assert_eq!(
            AccuracyFloor::parse("sqnr=30"),
            None,
            "a level needs its unit"
        );
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
}
