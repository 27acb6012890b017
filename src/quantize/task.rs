//! Task metrics: accuracy in the terms of what the model's output is used for, computed
//! from the fp32 model's outputs and a candidate's on the same inputs. SQNR says how much
//! noise quantization added; these say whether a user would notice it.
//!
//! - **CTC text** ([`Task::Ctc`]): each line is decoded greedily (argmax per timestep,
//!   repeats merged, the blank class dropped: Graves et al. 2006, "Connectionist Temporal
//!   Classification", best-path decoding) from both models. The character error rate is the
//!   Levenshtein distance between the candidate's and the fp32 model's index sequences,
//!   summed over all lines and divided by the fp32 text's total length (pooled, as speech
//!   and OCR evaluations report it: a short line does not weigh more than a long one).
//!   The class axis is the last one, time the one before it, every axis before those
//!   counts lines (an output `[N, T, C]` holds N lines).
//! - **Binarised maps** ([`Task::Mask`]): the intersection over union of `fp32 > t` and
//!   `candidate > t`, per sample; mean and worst over samples. Two empty masks agree
//!   (IoU 1): nothing was detected by either.
//! - **Top-1** ([`Task::Top1`]) and **embeddings** ([`Task::Embedding`], minimum cosine
//!   over samples) are computed by [`super::accuracy::Accumulator`] for every output; a
//!   task only declares that they are the figures that matter.
//!
//! Everything here is a pure function over plain slices.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::setting::Subject;

/// The blank class of CTC outputs when none is given (PP-OCR, PaddleOCR and most CTC
/// recognizers put it first).
pub const CTC_BLANK: usize = 0;

/// What a model's outputs are used for, i.e. which task metric judges them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "task", rename_all = "kebab-case")]
pub enum Task {
    /// CTC text recognition: greedy decoding, character error rate against fp32's text.
    Ctc {
        /// Index of the blank class.
        blank: usize,
    },
    /// A probability/score map binarised at `threshold` (text detection, segmentation).
    Mask {
        /// Binarisation threshold (`value > threshold` is foreground).
        threshold: f64,
    },
    /// Classification: argmax agreement.
    Top1,
    /// Embeddings: the worst sample's cosine similarity.
    Embedding,
}

impl Task {
    /// Parse `ctc`, `mask@0.3`, `top1`, `embedding` (the spelling of a package context's
    /// `task` and of the compare task setting). `what` names the setting or file field
    /// for the error.
    pub fn parse(what: impl Into<Subject>, s: &str) -> Result<Self> {
        let s = s.trim();
        let what: Subject = what.into();
        let bad = |m: String| Error::usage(what.clone(), m);
        if let Some(t) = s.strip_prefix("mask@") {
            return Ok(Task::Mask {
                threshold: parse_threshold(t).map_err(bad)?,
            });
        }
        match s {
            "ctc" => Ok(Task::Ctc { blank: CTC_BLANK }),
            "top1" => Ok(Task::Top1),
            "embedding" => Ok(Task::Embedding),
            "mask" => Err(bad(
                "mask needs its binarisation threshold, e.g. mask@0.3".into()
            )),
            _ => Err(bad(format!(
                "'{s}' is not a task: ctc, mask@THRESHOLD (e.g. mask@0.3), top1 or embedding"
            ))),
        }
    }

    /// The spelling [`Task::parse`] reads.
    pub fn name(&self) -> String {
        match self {
            Task::Ctc { .. } => "ctc".into(),
            Task::Mask { threshold } => format!("mask@{threshold}"),
            Task::Top1 => "top1".into(),
            Task::Embedding => "embedding".into(),
        }
    }

    /// Whether the metric can be computed on an output of this shape and kind; the error
    /// names the output and says why not.
    pub fn check_output(&self, output: &str, shape: &[usize], is_float: bool) -> Result<()> {
        let bad = |m: String| Error::usage(format!("output '{output}'"), m);
        match self {
            Task::Ctc { blank } => {
                if !is_float {
                    return Err(bad(format!(
                        "the ctc metric needs per-class scores, this output is not float (shape {shape:?})"
                    )));
                }
                if shape.len() < 3 {
                    return Err(bad(format!(
                        "the ctc metric needs a [lines, time, classes] output, this one has shape {shape:?} ({} axes)",
                        shape.len()
                    )));
                }
                let classes = *shape.last().unwrap_or(&0);
                if *blank >= classes {
                    return Err(bad(format!(
                        "the ctc blank index {blank} is not one of its {classes} classes"
                    )));
                }
                Ok(())
            }
            Task::Mask { .. } if !is_float => Err(bad(format!(
                "the mask metric binarises a float map, this output is not float (shape {shape:?})"
            ))),
            Task::Mask { .. } | Task::Embedding => Ok(()),
            Task::Top1 => {
                if is_float && shape.last().copied().unwrap_or(0) < 2 {
                    return Err(bad(format!(
                        "top-1 needs a class axis (last axis of at least 2), this output has shape {shape:?}"
                    )));
                }
                Ok(())
            }
        }
    }
}

/// How a task's figure reads: its key in [`worst_figures`], which way is better, and the
/// limit a variant is held to when nobody gave one ([`Task::default_limit`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    /// Key in [`worst_figures`]: `cer`, `mask_iou`, `top1`, `min_cosine`.
    pub key: &'static str,
    /// What a person reads: `CER`, `mask IoU`, `top-1 agreement`, `min cosine`.
    pub label: &'static str,
    /// Higher is better (all but the character error rate).
    pub higher_is_better: bool,
}

impl Figure {
    /// Whether `value` is within `limit` (a ceiling for CER, a floor for the others).
    pub fn meets(&self, value: f64, limit: f64) -> bool {
        if self.higher_is_better {
            value >= limit
        } else {
            value <= limit
        }
    }

    /// `value` oriented so that larger is better (for ranking).
    pub fn goodness(&self, value: f64) -> f64 {
        if self.higher_is_better {
            value
        } else {
            -value
        }
    }

    /// `CER 0.40%`, `mask IoU 0.9570`.
    pub fn show(&self, value: f64) -> String {
        match self.key {
            "cer" | "top1" => format!("{} {:.2}%", self.label, value * 100.0),
            _ => format!("{} {value:.4}", self.label),
        }
    }
}

impl Task {
    /// The figure that judges this task.
    pub fn figure(&self) -> Figure {
        let (key, label, higher_is_better) = match self {
            Task::Ctc { .. } => ("cer", "CER", false),
            Task::Mask { .. } => ("mask_iou", "mask IoU", true),
            Task::Top1 => ("top1", "top-1 agreement", true),
            Task::Embedding => ("min_cosine", "min cosine", true),
        };
        Figure {
            key,
            label,
            higher_is_better,
        }
    }

    /// The limit a variant is held to on this task when no other is given: what issue 16
    /// set as "a user would not notice" (CER <= 0.5% of fp32's text, mean mask IoU >= 0.98)
    /// and the quantizer's own embedding/classifier targets (min cosine >= 0.99, top-1
    /// agreement >= 99%).
    pub fn default_limit(&self) -> f64 {
        match self {
            Task::Ctc { .. } => 0.005,
            Task::Mask { .. } => 0.98,
            Task::Top1 => 0.99,
            Task::Embedding => 0.99,
        }
    }
}

/// The worst figure of each task metric over the `outputs` of a quantize report (or
/// `compare --json`): the highest `ctc.cer`, the lowest `mask.mean_iou`, `top1_agreement`
/// and `min_cosine`. A metric no output carries is absent. Keys as [`Figure::key`].
pub fn worst_figures(outputs: &[serde_json::Value]) -> std::collections::BTreeMap<String, f64> {
    let read = |path: &'static str| {
        outputs
            .iter()
            .filter_map(move |o| o.pointer(path)?.as_f64())
    };
    let mut out = std::collections::BTreeMap::new();
    for (key, v) in [
        ("cer", read("/ctc/cer").reduce(f64::max)),
        ("mask_iou", read("/mask/mean_iou").reduce(f64::min)),
        ("top1", read("/top1_agreement").reduce(f64::min)),
        ("min_cosine", read("/min_cosine").reduce(f64::min)),
    ] {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            out.insert(key.to_string(), v);
        }
    }
    out
}

/// `0.3`: a plain finite number.
fn parse_threshold(t: &str) -> std::result::Result<f64, String> {
    t.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("'{t}' is not a threshold (a number such as 0.3)"))
}

/// Greedy (best-path) CTC decoding of one line: `scores` is `[time, classes]` row-major.
/// Argmax per timestep (first index on ties), consecutive repeats merged, blanks dropped.
pub fn ctc_greedy_decode(scores: &[f32], classes: usize, blank: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut prev = None;
    if classes == 0 {
        return out;
    }
    for row in scores.chunks_exact(classes) {
        let k = super::accuracy::argmax(row);
        if Some(k) != prev && k != blank {
            out.push(k);
        }
        prev = Some(k);
    }
    out
}

/// Levenshtein edit distance (insertions, deletions, substitutions, each cost 1;
/// Wagner & Fischer 1974), in O(len(a) * len(b)) time and O(len(b)) memory.
pub fn levenshtein(a: &[usize], b: &[usize]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (up + 1).min(row[j] + 1).min(diag + usize::from(x != y));
            diag = up;
        }
    }
    row[b.len()]
}

/// How the candidate's decoded text compares with the fp32 model's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CtcAgreement {
    /// Blank class dropped by the decoder.
    pub blank: usize,
    /// Character error rate: edits / reference characters, pooled over all lines (`None`
    /// when the fp32 model decoded no character at all).
    pub cer: Option<f64>,
    /// Total edit distance over all lines.
    pub edits: u64,
    /// Characters the fp32 model decoded over all lines.
    pub reference_chars: u64,
    /// Lines compared.
    pub lines: u64,
    /// Lines the candidate decoded exactly as the fp32 model did.
    pub lines_identical: u64,
}

/// Running CTC comparison over samples.
#[derive(Clone, Debug, PartialEq)]
pub struct CtcAccumulator {
    blank: usize,
    edits: u64,
    reference_chars: u64,
    lines: u64,
    lines_identical: u64,
}

impl CtcAccumulator {
    /// An empty comparison dropping class `blank`.
    pub fn new(blank: usize) -> Self {
        CtcAccumulator {
            blank,
            edits: 0,
            reference_chars: 0,
            lines: 0,
            lines_identical: 0,
        }
    }

    /// Add one sample of shape `shape` (`[..., time, classes]`, checked by
    /// [`Task::check_output`]).
    pub fn add(&mut self, shape: &[usize], reference: &[f32], candidate: &[f32]) {
        let classes = shape.last().copied().unwrap_or(0);
        let time = shape.len().checked_sub(2).map_or(0, |i| shape[i]);
        let line = classes * time;
        if line == 0 {
            return;
        }
        for (ra, rb) in reference
            .chunks_exact(line)
            .zip(candidate.chunks_exact(line))
        {
            let a = ctc_greedy_decode(ra, classes, self.blank);
            let b = ctc_greedy_decode(rb, classes, self.blank);
            let d = levenshtein(&a, &b) as u64;
            self.edits += d;
            self.reference_chars += a.len() as u64;
            self.lines += 1;
            self.lines_identical += u64::from(a == b);
        }
    }

    /// The best this comparison can end with once every line of `whole` (the reference
    /// decoded against itself) is added, the remaining lines decoded identically: the
    /// edits so far over all the reference characters.
    pub fn best_case(&self, whole: &CtcAccumulator) -> CtcAccumulator {
        let remaining = whole.lines.saturating_sub(self.lines);
        CtcAccumulator {
            blank: self.blank,
            edits: self.edits,
            reference_chars: whole.reference_chars.max(self.reference_chars),
            lines: self.lines + remaining,
            lines_identical: self.lines_identical + remaining,
        }
    }

    /// The figures so far.
    pub fn finish(&self) -> CtcAgreement {
        CtcAgreement {
            blank: self.blank,
            cer: (self.reference_chars > 0)
                .then(|| self.edits as f64 / self.reference_chars as f64),
            edits: self.edits,
            reference_chars: self.reference_chars,
            lines: self.lines,
            lines_identical: self.lines_identical,
        }
    }
}

/// Intersection over union of `reference > threshold` and `candidate > threshold`; two
/// empty masks agree (1.0). The comparison is in f32, the outputs' own precision (so an
/// output of exactly `0.3f32` is background at threshold 0.3, as in the model's own
/// post-processing).
pub fn mask_iou(reference: &[f32], candidate: &[f32], threshold: f64) -> f64 {
    let t = threshold as f32;
    let (mut inter, mut union) = (0u64, 0u64);
    for (&a, &b) in reference.iter().zip(candidate) {
        let (a, b) = (a > t, b > t);
        inter += u64::from(a && b);
        union += u64::from(a || b);
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// How the candidate's binarised map overlaps the fp32 model's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaskOverlap {
    /// Binarisation threshold.
    pub threshold: f64,
    /// Mean IoU over samples (`None` without samples).
    pub mean_iou: Option<f64>,
    /// Worst sample's IoU.
    pub min_iou: Option<f64>,
    /// Samples compared.
    pub samples: u64,
}

/// Running mask comparison over samples.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskAccumulator {
    threshold: f64,
    sum: f64,
    min: Option<f64>,
    samples: u64,
}

impl MaskAccumulator {
    /// An empty comparison binarising at `threshold`.
    pub fn new(threshold: f64) -> Self {
        MaskAccumulator {
            threshold,
            sum: 0.0,
            min: None,
            samples: 0,
        }
    }

    /// Add one sample.
    pub fn add(&mut self, reference: &[f32], candidate: &[f32]) {
        let iou = mask_iou(reference, candidate, self.threshold);
        self.sum += iou;
        self.min = Some(self.min.map_or(iou, |m: f64| m.min(iou)));
        self.samples += 1;
    }

    /// The best this comparison can end with once the samples of `whole` are all added,
    /// the remaining ones overlapping perfectly (IoU 1).
    pub fn best_case(&self, whole: &MaskAccumulator) -> MaskAccumulator {
        let remaining = whole.samples.saturating_sub(self.samples);
        // One at a time, as the final mean will add them: rounding is monotone, so adding
        // real IoUs (at most 1) in the same order cannot end higher.
        let sum = (0..remaining).fold(self.sum, |s, _| s + 1.0);
        MaskAccumulator {
            threshold: self.threshold,
            sum,
            min: self.min.or((remaining > 0).then_some(1.0)),
            samples: self.samples + remaining,
        }
    }

    /// The figures so far.
    pub fn finish(&self) -> MaskOverlap {
        MaskOverlap {
            threshold: self.threshold,
            mean_iou: (self.samples > 0).then(|| self.sum / self.samples as f64),
            min_iou: self.min,
            samples: self.samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_figures_take_the_worst_output_of_each_metric() {
        let outs: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"output": "a", "min_cosine": 0.999, "top1_agreement": 1.0,
                 "ctc": {"cer": 0.004}, "mask": {"mean_iou": 0.97}},
                {"output": "b", "min_cosine": 0.95, "top1_agreement": null,
                 "ctc": {"cer": 0.036}}]"#,
        )
        .unwrap();
        let f = worst_figures(&outs);
        assert_eq!(f["cer"], 0.036);
        assert_eq!(f["mask_iou"], 0.97);
        assert_eq!(f["top1"], 1.0);
        assert_eq!(f["min_cosine"], 0.95);
        assert!(worst_figures(&[]).is_empty());
        let ctc = Task::Ctc { blank: 0 }.figure();
        assert!(ctc.meets(0.004, 0.005) && !ctc.meets(0.036, 0.005));
        assert!(ctc.goodness(0.004) > ctc.goodness(0.036));
        assert_eq!(ctc.show(0.004), "CER 0.40%");
        let iou = Task::Mask { threshold: 0.3 }.figure();
        assert!(iou.meets(0.99, 0.98) && !iou.meets(0.957, 0.98));
    }

    /// One-hot rows for a sequence of class indices over `classes` classes.
    fn onehot(seq: &[usize], classes: usize) -> Vec<f32> {
        let mut v = vec![0.0; seq.len() * classes];
        for (t, &k) in seq.iter().enumerate() {
            v[t * classes + k] = 1.0;
        }
        v
    }

    #[test]
    fn greedy_decoding_merges_repeats_and_drops_blanks() {
        // "a a _ a b b _ _ c" with blank 0 -> a a b c (the blank separates the two a's).
        let s = onehot(&[1, 1, 0, 1, 2, 2, 0, 0, 3], 4);
        assert_eq!(ctc_greedy_decode(&s, 4, 0), vec![1, 1, 2, 3]);
        assert_eq!(
            ctc_greedy_decode(&onehot(&[0, 0], 4), 4, 0),
            Vec::<usize>::new()
        );
        assert_eq!(ctc_greedy_decode(&[], 4, 0), Vec::<usize>::new());
        // Another blank index: class 0 is then a character.
        assert_eq!(ctc_greedy_decode(&onehot(&[0, 3, 0], 4), 4, 3), vec![0, 0]);
    }

    #[test]
    fn levenshtein_counts_insertions_deletions_substitutions() {
        assert_eq!(levenshtein(&[], &[]), 0);
        assert_eq!(levenshtein(&[1, 2, 3], &[]), 3);
        assert_eq!(levenshtein(&[], &[1]), 1);
        assert_eq!(levenshtein(&[1, 2, 3], &[1, 2, 3]), 0);
        assert_eq!(levenshtein(&[1, 2, 3], &[1, 4, 3]), 1);
        // kitten -> sitting: 3.
        let k = [10, 8, 19, 19, 4, 13];
        let s = [18, 8, 19, 19, 8, 13, 6];
        assert_eq!(levenshtein(&k, &s), 3);
    }

    #[test]
    fn cer_is_pooled_over_lines_not_averaged() {
        // What it protects: a CER that averages per-line rates would weigh a 1-char line
        // like a 10-char one. Two lines in one [2, T, C] sample: the first decodes
        // identically (4 chars), the second loses 1 of its 1 char.
        let c = 3;
        let mut reference = onehot(&[1, 0, 2, 0, 1, 0, 2], c);
        reference.extend(onehot(&[0, 0, 0, 1, 0, 0, 0], c));
        let mut candidate = onehot(&[1, 1, 2, 0, 1, 2, 2], c); // 1 2 1 2: same text
        candidate.extend(onehot(&[0, 0, 0, 0, 0, 0, 0], c)); // nothing
        let mut acc = CtcAccumulator::new(0);
        acc.add(&[2, 7, c], &reference, &candidate);
        let r = acc.finish();
        assert_eq!((r.edits, r.reference_chars), (1, 5));
        assert_eq!((r.lines, r.lines_identical), (2, 1));
        assert!((r.cer.unwrap() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn cer_without_reference_text_is_undefined() {
        let mut acc = CtcAccumulator::new(0);
        acc.add(&[1, 2, 2], &onehot(&[0, 0], 2), &onehot(&[1, 0], 2));
        let r = acc.finish();
        assert_eq!((r.cer, r.edits, r.lines_identical), (None, 1, 0));
        assert_eq!(CtcAccumulator::new(0).finish().lines, 0);
    }

    #[test]
    fn mask_iou_of_hand_made_maps() {
        let a = [0.9, 0.8, 0.1, 0.0];
        assert_eq!(mask_iou(&a, &a, 0.3), 1.0);
        // a: {0, 1}; b: {1, 2}: intersection 1, union 3.
        let b = [0.2, 0.5, 0.4, 0.0];
        assert!((mask_iou(&a, &b, 0.3) - 1.0 / 3.0).abs() < 1e-12);
        // Strictly greater than the threshold: 0.3 itself is background.
        assert_eq!(mask_iou(&[0.3], &[0.31], 0.3), 0.0);
        // Both empty: they agree.
        assert_eq!(mask_iou(&[0.0, 0.1], &[0.2, 0.0], 0.3), 1.0);
    }

    #[test]
    fn mask_overlap_reports_mean_and_worst_sample() {
        let mut m = MaskAccumulator::new(0.5);
        assert_eq!(m.finish().mean_iou, None);
        m.add(&[1.0, 1.0], &[1.0, 1.0]);
        m.add(&[1.0, 1.0], &[1.0, 0.0]);
        let r = m.finish();
        assert_eq!(
            (r.mean_iou, r.min_iou, r.samples),
            (Some(0.75), Some(0.5), 2)
        );
    }

    #[test]
    fn parses_tasks_strictly() {
        assert_eq!(Task::parse("t", "ctc").unwrap(), Task::Ctc { blank: 0 });
        assert_eq!(
            Task::parse("t", "mask@0.3").unwrap(),
            Task::Mask { threshold: 0.3 }
        );
        assert_eq!(Task::parse("t", "top1").unwrap(), Task::Top1);
        assert_eq!(Task::parse("t", "embedding").unwrap(), Task::Embedding);
        for bad in ["mask", "mask@", "mask@x", "CTC", "cer", ""] {
            let e = Task::parse(crate::setting::Setting::Task, bad)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("task: "), "{bad}: {e}");
        }
        assert_eq!(Task::Mask { threshold: 0.3 }.name(), "mask@0.3");
    }

    #[test]
    fn a_metric_that_does_not_fit_the_output_names_it() {
        let ctc = Task::Ctc { blank: 0 };
        assert!(ctc.check_output("y", &[1, 40, 97], true).is_ok());
        let e = ctc.check_output("probs", &[1, 97], true).unwrap_err();
        assert!(e.to_string().contains("output 'probs'"), "{e}");
        assert!(e.to_string().contains("[lines, time, classes]"), "{e}");
        assert!(ctc.check_output("ids", &[1, 40, 2], false).is_err());
        assert!(Task::Ctc { blank: 5 }
            .check_output("y", &[1, 4, 5], true)
            .is_err());
        assert!(Task::Mask { threshold: 0.3 }
            .check_output("m", &[1, 1, 8, 8], false)
            .is_err());
        assert!(Task::Top1.check_output("y", &[1, 1], true).is_err());
        assert!(Task::Embedding.check_output("e", &[1, 384], true).is_ok());
    }
}
