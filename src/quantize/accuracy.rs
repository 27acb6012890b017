//! Accuracy of a model against a reference on the same inputs: pure functions over
//! plain float slices, accumulated across samples.
//!
//! SQNR is the signal-to-quantization-noise ratio in dB, `10 log10(sum ref^2 / sum
//! (ref - q)^2)` over all samples (the standard definition, e.g. Gray & Neuhoff,
//! "Quantization", IEEE Trans. IT 1998). Cosine is over the flattened outputs of all
//! samples. Top-1 agreement compares the argmax along the last axis, per row.

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
        for (&a, &b) in reference.iter().zip(candidate) {
            let (a, b) = (a as f64, b as f64);
            let d = (a - b).abs();
            self.signal += a * a;
            self.noise += d * d;
            self.dot += a * b;
            self.norm_b += b * b;
            self.max_abs = self.max_abs.max(d);
            self.sum_abs += d;
            self.count += 1;
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

    /// The figures so far.
    pub fn finish(&self, output: &str) -> OutputAccuracy {
        OutputAccuracy {
            output: output.to_string(),
            sqnr_db: sqnr_db(self.signal, self.noise),
            cosine: (self.signal > 0.0 && self.norm_b > 0.0)
                .then(|| self.dot / (self.signal.sqrt() * self.norm_b.sqrt())),
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
    /// Minimum cosine similarity over all outputs.
    Cosine(f64),
    /// Minimum top-1 agreement over outputs with a class axis.
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

    /// Whether the outputs meet the target (outputs where the metric is undefined are skipped).
    pub fn met_by(&self, outputs: &[OutputAccuracy]) -> bool {
        outputs.iter().all(|o| match self {
            AccuracyFloor::Sqnr(t) => o.sqnr_db.is_none_or(|v| v >= *t),
            AccuracyFloor::Cosine(t) => o.cosine.is_none_or(|v| v >= *t),
            AccuracyFloor::Top1(t) => o.top1_agreement.is_none_or(|v| v >= *t),
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
            max_abs_error: 0.0,
            mean_abs_error: 0.0,
            top1_agreement: None,
            elements: 1,
        };
        assert!(!AccuracyFloor::Sqnr(30.0).met_by(std::slice::from_ref(&o)));
        assert!(AccuracyFloor::Top1(0.99).met_by(&[o]));
    }
}
