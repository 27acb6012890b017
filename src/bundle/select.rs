//! Variant selection for one target: a pure function over plain numbers, so every rule is
//! unit-tested on hand-built inputs.
//!
//! For each variant and each measured (threads, batch) configuration that the target can
//! run (threads <= cores), a configuration *fits* when:
//! - **storage**: the bundle (variant + runtime + self-test + manifest) fits the target's
//!   storage budget;
//! - **accuracy**: the variant's SQNR against the original is at least the floor (the
//!   original fp32 is the reference and always passes; a variant of unknown accuracy fails
//!   a floor, it is never assumed good);
//! - **memory**: the predicted peak RSS at that batch fits the model's share of RAM
//!   (measured at that batch, else the profile's linear model `fixed + per_item * batch`);
//! - **latency**: the predicted p50 for the whole batch is within the budget (measured on
//!   the target; else predicted by the cost model from the target's device profile; else
//!   the host p50 scaled by `host_compute / target_compute`).
//!
//! Every prediction carries its basis and an interval, and fit decisions use the
//! **pessimistic end** of the interval (the high p50, the high peak memory): a device
//! measurement is its own interval; the cost model's comes from its measured error
//! ([`crate::hardware::cost::LATENCY_ERROR_Q05_Q95`]); the scalar's is the ±30% its
//! figures were stated with ([`SCALAR_INTERVAL`]), which no measurement has checked.
//!
//! - **task**: when the package declares its task (`[postprocessing] task`: `ctc`,
//!   `mask@0.3`, `top1`, `embedding`) and the variant carries a figure for that task's
//!   metric (from its quantize report), the figure is within the task's limit
//!   ([`crate::quantize::task::Task::default_limit`]: CER <= 0.5% of fp32's text, mean
//!   mask IoU >= 0.98, top-1 agreement >= 99%, min cosine >= 0.99). SQNR does not say
//!   whether a user notices (a recognizer at 19 dB changed 3.6% of the characters); where
//!   no figure exists the variant is judged by SQNR alone, and a note says so.
//!
//! Among a variant's fitting configurations we take the highest throughput when a latency
//! budget is given (the budget is what matters, use the rest for items/s), else the lowest
//! latency at the smallest batch. Among fitting variants, the **most accurate** wins (fp32,
//! then by the declared task's figure where variants have one, then by SQNR), ties going
//! to the lower predicted latency, then the smaller file: the budgets say what is good
//! enough, and within them nobody wants to give up accuracy.

use crate::quantize::task::{Figure, Task};
use crate::setting::Setting;

/// How the latency and memory of a configuration are known.
#[derive(Clone, Debug, PartialEq)]
pub enum Basis {
    /// Measured on the target itself (a device profile).
    Device,
    /// Measured on the build host; latency is scaled by the compute ratio.
    Host { host_compute: f64, note: String },
    /// Predicted for the target by the cost model from its device profile: the points
    /// are already target figures with their intervals.
    CostModel { note: String },
}

/// The interval of a latency scaled by `relative_compute`: the ±30% the public figures
/// behind it were stated with (not a measured error distribution).
pub const SCALAR_INTERVAL: (f64, f64) = (0.7, 1.3);

/// One measured configuration of a variant.
#[derive(Clone, Debug, PartialEq)]
pub struct PerfPoint {
    pub threads: usize,
    pub batch: i64,
    pub p50_s: f64,
    pub p95_s: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    /// Interval of a predicted p50 (`None`: the p50 is a measurement or scaled).
    pub p50_interval_s: Option<(f64, f64)>,
    /// Pessimistic end of a predicted peak RSS.
    pub peak_rss_high_bytes: Option<u64>,
}

/// What a profile says about one variant.
#[derive(Clone, Debug, PartialEq)]
pub struct Perf {
    pub basis: Basis,
    pub points: Vec<PerfPoint>,
    pub memory_fixed_bytes: Option<f64>,
    pub memory_per_item_bytes: Option<f64>,
}

/// A variant offered to the selection.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub variant: String,
    /// Bytes of the bundle that would carry this variant (everything but the manifest).
    pub bundle_bytes: u64,
    /// `None` for the original (the reference), else the measured SQNR if known.
    pub sqnr_db: Option<f64>,
    /// `sqnr_db` was measured on the calibration inputs (no held-out set): optimistic.
    pub sqnr_in_sample: bool,
    pub is_original: bool,
    pub perf: Option<Perf>,
    /// The cost model's prediction where `perf` is a device measurement and the target
    /// also has a device profile: shown beside the measurement, never used for the fit.
    pub predicted: Option<Perf>,
    /// The package's declared task and this variant's figure on it (`None`: no task).
    pub task: Option<TaskScore>,
}

/// A variant's figure on the package's declared task metric, and the limit it is held to.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskScore {
    /// The declared task as the package spells it (`ctc`, `mask@0.3`).
    pub task: String,
    /// Which figure judges it, and which way is better.
    pub figure: Figure,
    /// The variant's worst-output figure (`None`: its report has none).
    pub value: Option<f64>,
    /// The limit the figure must be within.
    pub limit: f64,
}

impl TaskScore {
    /// The score of a variant whose quantize report gave `figures`
    /// ([`crate::quantize::task::worst_figures`]) on the declared `task`.
    pub fn of(task: &Task, figures: &std::collections::BTreeMap<String, f64>) -> TaskScore {
        let figure = task.figure();
        TaskScore {
            task: task.name(),
            figure,
            value: figures.get(figure.key).copied(),
            limit: task.default_limit(),
        }
    }
}

/// The target, reduced to what selection needs.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetBudget {
    pub name: String,
    pub cores: usize,
    pub model_ram_bytes: u64,
    pub storage_budget_bytes: u64,
    pub relative_compute: f64,
}

/// The user's budgets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Budgets {
    pub latency_budget_s: Option<f64>,
    pub accuracy_floor_sqnr_db: Option<f64>,
    /// Only consider this batch size.
    pub batch: Option<i64>,
    /// What decides between variants that all fit.
    pub prefer: Preference,
}

/// What decides between variants that all fit the budgets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Preference {
    /// The most accurate (the original, then by SQNR); ties to the faster, then smaller.
    #[default]
    Accuracy,
    /// The lowest predicted p50; ties to the more accurate.
    Latency,
    /// The smallest bundle; ties to the more accurate.
    Size,
}

impl Preference {
    /// Parse `accuracy`, `latency` or `size`.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "accuracy" => Some(Preference::Accuracy),
            "latency" => Some(Preference::Latency),
            "size" => Some(Preference::Size),
            _ => None,
        }
    }
}

/// The configuration chosen for a variant, with its predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub threads: usize,
    pub batch: i64,
    pub p50_s: Option<f64>,
    pub p95_s: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    /// The p50's interval; fit decisions use its high end.
    pub p50_interval_s: Option<(f64, f64)>,
    /// The pessimistic end of the peak memory; fit decisions use it.
    pub peak_memory_high_bytes: Option<u64>,
    pub basis: String,
}

impl Choice {
    /// The basis with the intervals written out (for manifests and tables that have one
    /// text field for it).
    pub fn basis_with_interval(&self) -> String {
        let mut b = self.basis.clone();
        if let Some((lo, hi)) = self.p50_interval_s {
            b.push_str(&format!(
                "; p50 interval {}..{}",
                crate::units::format_duration_s(lo),
                crate::units::format_duration_s(hi)
            ));
        }
        if let Some(h) = self.peak_memory_high_bytes {
            b.push_str(&format!(
                "; peak memory up to {}",
                crate::units::format_bytes(h)
            ));
        }
        b
    }
}

/// The verdict on one variant for the target.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub variant: String,
    pub fits: bool,
    /// Why it does not fit (empty when it fits), or notes on what could not be predicted.
    pub reasons: Vec<String>,
    pub notes: Vec<String>,
    /// The best fitting configuration, or the closest miss (for the table).
    pub choice: Option<Choice>,
    pub bundle_bytes: u64,
    pub sqnr_db: Option<f64>,
    /// The cost model's p50 and peak memory at the chosen configuration, where the choice
    /// is a device measurement and a prediction exists too (predicted against measured).
    pub predicted_p50_s: Option<f64>,
    pub predicted_peak_memory_bytes: Option<u64>,
}

/// Every variant's verdict and the chosen one (index into `evaluations`).
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub target: String,
    pub evaluations: Vec<Evaluation>,
    pub chosen: Option<usize>,
}

/// Manifest and header overhead added to the entries' sizes (a manifest is a few KiB).
pub const MANIFEST_ALLOWANCE_BYTES: u64 = 64 * 1024;

fn predicted_memory_high(perf: &Perf, batch: i64) -> Option<u64> {
    let high = perf
        .points
        .iter()
        .filter(|p| p.batch == batch)
        .filter_map(|p| p.peak_rss_high_bytes)
        .max();
    high.or_else(|| predicted_memory(perf, batch))
}

fn predicted_memory(perf: &Perf, batch: i64) -> Option<u64> {
    let measured = perf
        .points
        .iter()
        .filter(|p| p.batch == batch)
        .filter_map(|p| p.peak_rss_bytes)
        .max();
    measured.or_else(
        || match (perf.memory_fixed_bytes, perf.memory_per_item_bytes) {
            (Some(f), Some(i)) => Some((f + i * batch as f64).max(0.0).round() as u64),
            _ => None,
        },
    )
}

/// Evaluate one variant on the target.
pub fn evaluate(target: &TargetBudget, c: &Candidate, budgets: &Budgets) -> Evaluation {
    let mut reasons = vec![];
    let mut notes = vec![];
    let bundle = c.bundle_bytes + MANIFEST_ALLOWANCE_BYTES;
    if bundle > target.storage_budget_bytes {
        reasons.push(format!(
            "bundle {} > storage budget {}",
            crate::units::format_bytes(bundle),
            crate::units::format_bytes(target.storage_budget_bytes)
        ));
    }
    if let Some(floor) = budgets.accuracy_floor_sqnr_db {
        if !c.is_original {
            match c.sqnr_db {
                Some(s) if s >= floor && c.sqnr_in_sample => notes.push(format!(
                    "SQNR {s:.1} dB >= floor {floor:.1} dB is in-sample (measured on the \
                     calibration inputs, optimistic): build with {} DIR for a held-out figure",
                    Setting::Eval
                )),
                Some(s) if s >= floor => {}
                Some(s) => reasons.push(format!(
                    "SQNR {s:.1} dB{} < floor {floor:.1} dB",
                    if c.sqnr_in_sample { " (in-sample)" } else { "" }
                )),
                None => reasons.push(format!("accuracy unknown (floor {floor:.1} dB)")),
            }
        }
    }
    if let (Some(t), false) = (&c.task, c.is_original) {
        match t.value {
            Some(v) if t.figure.meets(v, t.limit) => {}
            Some(v) => reasons.push(format!(
                "declared task {}: {} beyond the limit {}",
                t.task,
                t.figure.show(v),
                t.figure.show(t.limit)
            )),
            None => notes.push(format!(
                "declared task {}: no {} figure for this variant (judged by SQNR only)",
                t.task, t.figure.label
            )),
        }
    }
    let mut eval = Evaluation {
        variant: c.variant.clone(),
        fits: false,
        reasons: vec![],
        notes: vec![],
        choice: None,
        bundle_bytes: bundle,
        sqnr_db: c.sqnr_db,
        predicted_p50_s: None,
        predicted_peak_memory_bytes: None,
    };
    let Some(perf) = &c.perf else {
        notes.push("no profile: latency and memory not predicted".into());
        if budgets.latency_budget_s.is_some() {
            reasons.push("latency unknown (no profile) and a latency budget is set".into());
        }
        eval.choice = Some(Choice {
            threads: target.cores,
            batch: budgets.batch.unwrap_or(1),
            p50_s: None,
            p95_s: None,
            peak_memory_bytes: None,
            p50_interval_s: None,
            peak_memory_high_bytes: None,
            basis: "no profile".into(),
        });
        eval.fits = reasons.is_empty();
        eval.reasons = reasons;
        eval.notes = notes;
        return eval;
    };
    let (scale, basis, scalar) = match &perf.basis {
        Basis::Device => (1.0, "measured on target".to_string(), false),
        Basis::CostModel { note } => (1.0, format!("cost model ({note})"), false),
        Basis::Host { host_compute, note } => (
            host_compute / target.relative_compute,
            format!(
                "host p50 x {:.2} (host compute {host_compute:.2} / target {:.2}; {note}; interval: the stated ±30% of relative_compute, not measured)",
                host_compute / target.relative_compute,
                target.relative_compute
            ),
            true,
        ),
    };
    // Every runnable configuration with its predictions and its own misses.
    let mut configs: Vec<(Choice, Vec<String>)> = vec![];
    for p in &perf.points {
        if p.threads > target.cores || budgets.batch.is_some_and(|b| b != p.batch) {
            continue;
        }
        let mut miss = vec![];
        let p50 = p.p50_s * scale;
        let interval = match p.p50_interval_s {
            Some(i) => Some(i),
            None if scalar => Some((p50 * SCALAR_INTERVAL.0, p50 * SCALAR_INTERVAL.1)),
            None => None,
        };
        let p50_high = interval.map_or(p50, |i| i.1);
        let mem = predicted_memory(perf, p.batch);
        let mem_high = predicted_memory_high(perf, p.batch);
        match (mem, mem_high) {
            (Some(m), Some(h)) if h > target.model_ram_bytes => miss.push(if h > m {
                format!(
                    "memory up to {} (predicted {}) > {} allowed",
                    crate::units::format_bytes(h),
                    crate::units::format_bytes(m),
                    crate::units::format_bytes(target.model_ram_bytes)
                )
            } else {
                format!(
                    "memory {} > {} allowed",
                    crate::units::format_bytes(m),
                    crate::units::format_bytes(target.model_ram_bytes)
                )
            }),
            _ => {}
        }
        if let Some(b) = budgets.latency_budget_s {
            if p50_high > b {
                miss.push(if p50_high > p50 {
                    format!(
                        "p50 up to {} (predicted {}) > budget {}",
                        crate::units::format_duration_s(p50_high),
                        crate::units::format_duration_s(p50),
                        crate::units::format_duration_s(b)
                    )
                } else {
                    format!(
                        "p50 {} > budget {}",
                        crate::units::format_duration_s(p50),
                        crate::units::format_duration_s(b)
                    )
                });
            }
        }
        configs.push((
            Choice {
                threads: p.threads,
                batch: p.batch,
                p50_s: Some(p50),
                p95_s: p.p95_s.map(|v| v * scale),
                peak_memory_bytes: mem,
                p50_interval_s: interval,
                peak_memory_high_bytes: mem_high.filter(|&h| Some(h) != mem),
                basis: basis.clone(),
            },
            miss,
        ));
    }
    if configs.is_empty() {
        reasons.push(format!(
            "no measured configuration runs here (threads <= {}{})",
            target.cores,
            budgets
                .batch
                .map(|b| format!(", batch {b}"))
                .unwrap_or_default()
        ));
        eval.reasons = reasons;
        return eval;
    }
    if configs.iter().all(|(c, _)| c.peak_memory_bytes.is_none()) {
        notes.push("memory not predicted (profile has no memory figures)".into());
    }
    let throughput = |c: &Choice| c.batch as f64 / c.p50_s.unwrap_or(f64::INFINITY);
    let better = |a: &Choice, b: &Choice| -> bool {
        // Is `a` a better pick than `b`?
        if budgets.latency_budget_s.is_some() {
            let (ta, tb) = (throughput(a), throughput(b));
            if ta != tb {
                return ta > tb;
            }
        } else if a.batch != b.batch {
            return a.batch < b.batch;
        } else if a.p50_s != b.p50_s {
            return a.p50_s < b.p50_s;
        }
        a.threads < b.threads
    };
    let fitting: Vec<&Choice> = configs
        .iter()
        .filter(|(_, m)| m.is_empty())
        .map(|(c, _)| c)
        .collect();
    if let Some(best) = fitting
        .iter()
        .copied()
        .reduce(|a, b| if better(b, a) { b } else { a })
    {
        eval.choice = Some(best.clone());
    } else {
        // Closest miss: fewest problems, then lowest latency; its problems are the reasons.
        let (c, m) = configs
            .iter()
            .min_by(|(a, ma), (b, mb)| {
                ma.len().cmp(&mb.len()).then(
                    a.p50_s
                        .partial_cmp(&b.p50_s)
                        .unwrap_or(std::cmp::Ordering::Equal),
                )
            })
            .expect("configs is not empty");
        eval.choice = Some(c.clone());
        for r in m {
            reasons.push(format!(
                "{r} (best config: {} threads, batch {})",
                c.threads, c.batch
            ));
        }
    }
    if let (Some(pred), Some(ch)) = (&c.predicted, &eval.choice) {
        if let Some(p) = pred
            .points
            .iter()
            .find(|p| p.threads == ch.threads && p.batch == ch.batch)
        {
            eval.predicted_p50_s = Some(p.p50_s);
            eval.predicted_peak_memory_bytes = p.peak_rss_bytes;
        }
    }
    eval.fits = reasons.is_empty();
    eval.reasons = reasons;
    eval.notes = notes;
    eval
}

/// Evaluate every variant and choose the best fitting one.
pub fn select(target: &TargetBudget, candidates: &[Candidate], budgets: &Budgets) -> Selection {
    let evaluations: Vec<Evaluation> = candidates
        .iter()
        .map(|c| evaluate(target, c, budgets))
        .collect();
    // (original, has a task figure, the task figure oriented larger-is-better, SQNR):
    // compared left to right, larger is more accurate.
    let accuracy = |i: usize| -> (bool, bool, f64, f64) {
        let c = &candidates[i];
        let task = c
            .task
            .as_ref()
            .and_then(|t| Some(t.figure.goodness(t.value?)));
        (
            c.is_original,
            task.is_some(),
            task.unwrap_or(f64::NEG_INFINITY),
            c.sqnr_db.unwrap_or(f64::NEG_INFINITY),
        )
    };
    let latency = |i: usize| -> f64 {
        evaluations[i]
            .choice
            .as_ref()
            .and_then(|c| c.p50_s)
            .unwrap_or(f64::INFINITY)
    };
    use std::cmp::Ordering;
    let by_accuracy = |a: usize, b: usize| {
        let (x, y) = (accuracy(a), accuracy(b));
        (y.0, y.1)
            .cmp(&(x.0, x.1))
            .then(y.2.partial_cmp(&x.2).unwrap_or(Ordering::Equal))
            .then(y.3.partial_cmp(&x.3).unwrap_or(Ordering::Equal))
    };
    let by_latency = |a: usize, b: usize| {
        latency(a)
            .partial_cmp(&latency(b))
            .unwrap_or(Ordering::Equal)
    };
    let by_size = |a: usize, b: usize| {
        evaluations[a]
            .bundle_bytes
            .cmp(&evaluations[b].bundle_bytes)
    };
    let chosen = (0..evaluations.len())
        .filter(|&i| evaluations[i].fits)
        .min_by(|&a, &b| match budgets.prefer {
            Preference::Accuracy => by_accuracy(a, b).then(by_latency(a, b)).then(by_size(a, b)),
            Preference::Latency => by_latency(a, b).then(by_accuracy(a, b)).then(by_size(a, b)),
            Preference::Size => by_size(a, b).then(by_accuracy(a, b)).then(by_latency(a, b)),
        });
    Selection {
        target: target.name.clone(),
        evaluations,
        chosen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn target(cores: usize, ram_mib: u64, storage_mib: u64, compute: f64) -> TargetBudget {
        TargetBudget {
            name: "t".into(),
            cores,
            model_ram_bytes: ram_mib * MIB,
            storage_budget_bytes: storage_mib * MIB,
            relative_compute: compute,
        }
    }

    fn point(threads: usize, batch: i64, p50_ms: f64, rss_mib: u64) -> PerfPoint {
        PerfPoint {
            threads,
            batch,
            p50_s: p50_ms / 1e3,
            p95_s: Some(p50_ms * 1.1 / 1e3),
            peak_rss_bytes: Some(rss_mib * MIB),
            p50_interval_s: None,
            peak_rss_high_bytes: None,
        }
    }

    fn host(points: Vec<PerfPoint>) -> Option<Perf> {
        Some(Perf {
            basis: Basis::Host {
                host_compute: 4.0,
                note: "test".into(),
            },
            points,
            memory_fixed_bytes: None,
            memory_per_item_bytes: None,
        })
    }

    fn cand(name: &str, mib: u64, sqnr: Option<f64>, perf: Option<Perf>) -> Candidate {
        Candidate {
            variant: name.into(),
            bundle_bytes: mib * MIB,
            sqnr_db: sqnr,
            sqnr_in_sample: false,
            is_original: name == "fp32",
            perf,
            predicted: None,
            task: None,
        }
    }

    fn with_task(mut c: Candidate, task: &str, figures: &[(&str, f64)]) -> Candidate {
        let t = Task::parse("task", task).unwrap();
        let f = figures.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        c.task = Some(TaskScore::of(&t, &f));
        c
    }

    #[test]
    fn a_declared_ctc_task_rejects_a_variant_over_its_cer_limit_and_ranks_by_cer() {
        // What it protects (issue 16): the recognizer's int8 (19 dB, CER 3.6%) is not
        // shippable text although a 15 dB SQNR floor passes it; int8-weight (CER 0.3%) is.
        // Among variants within the limit the lower CER wins even at a lower SQNR.
        let t = target(4, 512, 512, 1.0);
        let fast = || host(vec![point(1, 1, 10.0, 50)]);
        let cands = vec![
            with_task(
                cand("int8", 2, Some(19.0), fast()),
                "ctc",
                &[("cer", 0.036)],
            ),
            with_task(
                cand("int8-weight", 3, Some(40.6), fast()),
                "ctc",
                &[("cer", 0.003)],
            ),
            with_task(
                cand("fp16", 4, Some(60.0), fast()),
                "ctc",
                &[("cer", 0.001)],
            ),
        ];
        let budgets = Budgets {
            accuracy_floor_sqnr_db: Some(15.0),
            prefer: Preference::Size,
            ..Budgets::default()
        };
        let s = select(&t, &cands, &budgets);
        assert!(!s.evaluations[0].fits);
        assert!(
            s.evaluations[0].reasons[0]
                .contains("declared task ctc: CER 3.60% beyond the limit CER 0.50%"),
            "{:?}",
            s.evaluations[0].reasons
        );
        assert_eq!(s.chosen, Some(1), "the smallest within the CER limit");
        let s = select(
            &t,
            &cands,
            &Budgets {
                prefer: Preference::Accuracy,
                ..budgets.clone()
            },
        );
        assert_eq!(s.chosen, Some(2), "the lowest CER");
        // By the task, not by SQNR: a lower-SQNR variant with the better CER wins.
        let cands = vec![
            with_task(cand("a", 2, Some(40.0), fast()), "ctc", &[("cer", 0.004)]),
            with_task(cand("b", 2, Some(20.0), fast()), "ctc", &[("cer", 0.001)]),
        ];
        let s = select(&t, &cands, &Budgets::default());
        assert_eq!(s.chosen, Some(1));
    }

    #[test]
    fn a_variant_without_the_task_figure_is_judged_by_sqnr_with_a_note() {
        let t = target(4, 512, 512, 1.0);
        let fast = || host(vec![point(1, 1, 10.0, 50)]);
        let cands = vec![
            with_task(
                cand("int8", 2, Some(30.0), fast()),
                "mask@0.3",
                &[("cer", 0.1)],
            ),
            with_task(
                cand("fp16", 4, Some(60.0), fast()),
                "mask@0.3",
                &[("mask_iou", 0.99)],
            ),
            with_task(cand("fp32", 8, None, fast()), "mask@0.3", &[]),
        ];
        let s = select(&t, &cands, &Budgets::default());
        assert!(s.evaluations[0].fits);
        assert!(
            s.evaluations[0].notes[0].contains("no mask IoU figure"),
            "{:?}",
            s.evaluations[0].notes
        );
        assert!(s.evaluations[2].notes.iter().all(|n| !n.contains("task")));
        assert_eq!(s.chosen, Some(2), "the original first");
        // Without the original: the variant with a figure ranks above one without.
        let s = select(&t, &cands[..2], &Budgets::default());
        assert_eq!(s.chosen, Some(1));
    }

    #[test]
    fn most_accurate_fitting_variant_wins() {
        let t = target(4, 1024, 1024, 4.0);
        let c = vec![
            cand("int8", 5, Some(30.0), host(vec![point(1, 1, 5.0, 100)])),
            cand("fp32", 20, None, host(vec![point(1, 1, 10.0, 200)])),
        ];
        let s = select(&t, &c, &Budgets::default());
        assert_eq!(s.evaluations[s.chosen.unwrap()].variant, "fp32");
    }

    #[test]
    fn preference_can_pick_the_fastest_or_smallest_fitting_variant() {
        let t = target(4, 1024, 1024, 4.0);
        let c = vec![
            cand("fp32", 20, None, host(vec![point(1, 1, 10.0, 200)])),
            cand("int8", 5, Some(30.0), host(vec![point(1, 1, 5.0, 100)])),
            cand("fp16", 10, Some(60.0), host(vec![point(1, 1, 12.0, 150)])),
        ];
        let pick = |prefer| {
            let s = select(
                &t,
                &c,
                &Budgets {
                    prefer,
                    ..Default::default()
                },
            );
            s.evaluations[s.chosen.unwrap()].variant.clone()
        };
        assert_eq!(pick(Preference::Accuracy), "fp32");
        assert_eq!(pick(Preference::Latency), "int8");
        assert_eq!(pick(Preference::Size), "int8");
    }

    #[test]
    fn storage_budget_pushes_to_smaller_variant() {
        let t = target(4, 1024, 10, 4.0);
        let c = vec![
            cand("fp32", 20, None, host(vec![point(1, 1, 10.0, 200)])),
            cand("int8", 5, Some(30.0), host(vec![point(1, 1, 5.0, 100)])),
        ];
        let s = select(&t, &c, &Budgets::default());
        assert_eq!(s.evaluations[s.chosen.unwrap()].variant, "int8");
        assert!(
            s.evaluations[0].reasons[0].contains("storage budget"),
            "{:?}",
            s.evaluations[0].reasons
        );
    }

    #[test]
    fn latency_is_scaled_by_compute_ratio() {
        // Host compute 4.0, target 1.0: 10 ms on the host is 40 ms on the target.
        let t = target(4, 1024, 1024, 1.0);
        let c = vec![cand("fp32", 20, None, host(vec![point(2, 1, 10.0, 200)]))];
        let e = &select(
            &t,
            &c,
            &Budgets {
                latency_budget_s: Some(0.030),
                ..Default::default()
            },
        )
        .evaluations[0];
        assert!(!e.fits);
        assert!(
            e.reasons[0].contains("p50 up to 52.000 ms (predicted 40.000 ms) > budget 30.000 ms"),
            "{:?}",
            e.reasons
        );
        // The fit uses the pessimistic end (40 ms + 30%): 50 ms is not enough, 55 ms is.
        let with_budget = |b: f64| {
            select(
                &t,
                &c,
                &Budgets {
                    latency_budget_s: Some(b),
                    ..Default::default()
                },
            )
            .evaluations[0]
                .clone()
        };
        assert!(!with_budget(0.050).fits);
        let e = with_budget(0.055);
        assert!(e.fits);
        let ch = e.choice.unwrap();
        assert!((ch.p50_s.unwrap() - 0.040).abs() < 1e-12);
        let (lo, hi) = ch.p50_interval_s.unwrap();
        assert!((lo - 0.028).abs() < 1e-12 && (hi - 0.052).abs() < 1e-12);
        assert!(ch.basis.contains("not measured"), "{}", ch.basis);
    }

    #[test]
    fn cost_model_predictions_fit_by_their_pessimistic_end() {
        // Predicted 40 ms (interval 30..60 ms), 100 MiB (up to 130 MiB) on a 120 MiB share.
        let t = target(4, 120, 1024, 1.0);
        let mut p = point(1, 1, 40.0, 100);
        p.p50_interval_s = Some((0.030, 0.060));
        p.peak_rss_high_bytes = Some(130 * MIB);
        let perf = Perf {
            basis: Basis::CostModel {
                note: "probe".into(),
            },
            points: vec![p],
            memory_fixed_bytes: None,
            memory_per_item_bytes: None,
        };
        let e = evaluate(
            &t,
            &cand("fp32", 1, None, Some(perf)),
            &Budgets {
                latency_budget_s: Some(0.050),
                ..Default::default()
            },
        );
        assert!(!e.fits);
        assert_eq!(e.reasons.len(), 2, "{:?}", e.reasons);
        assert!(e.reasons[0].contains("memory up to 130.0 MiB (predicted 100.0 MiB)"));
        assert!(e.reasons[1].contains("p50 up to 60.000 ms (predicted 40.000 ms)"));
        let ch = e.choice.unwrap();
        assert_eq!(ch.p50_s, Some(0.040), "not scaled");
        assert!(ch.basis.starts_with("cost model"));
    }

    #[test]
    fn device_measurements_are_not_scaled() {
        let t = target(4, 1024, 1024, 1.0);
        let mut p = host(vec![point(1, 1, 10.0, 200)]).unwrap();
        p.basis = Basis::Device;
        let e = evaluate(&t, &cand("fp32", 1, None, Some(p)), &Budgets::default());
        assert_eq!(e.choice.unwrap().p50_s, Some(0.010));
    }

    #[test]
    fn device_measurement_wins_and_the_prediction_is_shown_beside_it() {
        let t = target(4, 1024, 1024, 1.0);
        let mut measured = host(vec![point(1, 1, 10.0, 200)]).unwrap();
        measured.basis = Basis::Device;
        let mut c = cand("fp32", 1, None, Some(measured));
        c.predicted = Some(Perf {
            basis: Basis::CostModel { note: "p".into() },
            points: vec![point(1, 1, 12.0, 210)],
            memory_fixed_bytes: None,
            memory_per_item_bytes: None,
        });
        let e = evaluate(&t, &c, &Budgets::default());
        assert_eq!(e.choice.unwrap().p50_s, Some(0.010));
        assert_eq!(e.predicted_p50_s, Some(0.012));
        assert_eq!(e.predicted_peak_memory_bytes, Some(210 * MIB));
    }

    #[test]
    fn memory_share_and_thread_count_limit_configurations() {
        // Only 2 cores: the 4-thread point is not runnable. RAM 150 MiB: batch 4 (300 MiB)
        // does not fit, batch 1 (120 MiB) does.
        let t = target(2, 150, 1024, 4.0);
        let c = cand(
            "fp32",
            1,
            None,
            host(vec![
                point(4, 1, 2.0, 120),
                point(2, 1, 4.0, 120),
                point(2, 4, 12.0, 300),
            ]),
        );
        let e = evaluate(
            &t,
            &c,
            &Budgets {
                latency_budget_s: Some(1.0),
                ..Default::default()
            },
        );
        let ch = e.choice.unwrap();
        assert_eq!((ch.threads, ch.batch), (2, 1));
        assert!(e.fits);
    }

    #[test]
    fn latency_budget_prefers_throughput_within_budget() {
        let t = target(4, 1024, 1024, 4.0);
        let c = cand(
            "fp32",
            1,
            None,
            host(vec![point(4, 1, 5.0, 100), point(4, 8, 20.0, 200)]),
        );
        let e = evaluate(
            &t,
            &c,
            &Budgets {
                // 20 ms, up to 26 ms with the scalar's ±30%.
                latency_budget_s: Some(0.027),
                ..Default::default()
            },
        );
        assert_eq!(e.choice.unwrap().batch, 8);
        let e = evaluate(&t, &c, &Budgets::default());
        assert_eq!(
            e.choice.unwrap().batch,
            1,
            "without a budget: lowest latency at batch 1"
        );
    }

    #[test]
    fn linear_memory_model_predicts_unmeasured_batches() {
        let t = target(4, 100, 1024, 4.0);
        let mut p = host(vec![PerfPoint {
            threads: 1,
            batch: 2,
            p50_s: 0.01,
            p95_s: None,
            peak_rss_bytes: None,
            p50_interval_s: None,
            peak_rss_high_bytes: None,
        }])
        .unwrap();
        p.memory_fixed_bytes = Some(50.0 * MIB as f64);
        p.memory_per_item_bytes = Some(30.0 * MIB as f64);
        let e = evaluate(&t, &cand("fp32", 1, None, Some(p)), &Budgets::default());
        assert!(!e.fits);
        assert_eq!(e.choice.unwrap().peak_memory_bytes, Some(110 * MIB));
    }

    #[test]
    fn accuracy_floor_rejects_low_and_unknown_sqnr() {
        let t = target(4, 1024, 1024, 4.0);
        let c = vec![
            cand("int4-weight", 1, Some(18.0), None),
            cand("int8", 1, None, None),
            cand("fp16", 1, Some(60.0), None),
        ];
        let s = select(
            &t,
            &c,
            &Budgets {
                accuracy_floor_sqnr_db: Some(25.0),
                ..Default::default()
            },
        );
        assert!(s.evaluations[0].reasons[0].contains("SQNR 18.0 dB < floor 25.0 dB"));
        assert!(s.evaluations[1].reasons[0].contains("accuracy unknown"));
        assert_eq!(s.evaluations[s.chosen.unwrap()].variant, "fp16");
    }

    #[test]
    fn an_in_sample_accuracy_figure_is_labelled_where_it_is_judged() {
        let t = target(4, 1024, 1024, 4.0);
        let mut c = cand("int8", 1, Some(30.0), None);
        c.sqnr_in_sample = true;
        let b = Budgets {
            accuracy_floor_sqnr_db: Some(25.0),
            ..Default::default()
        };
        let e = evaluate(&t, &c, &b);
        assert!(
            e.notes.iter().any(|n| n.contains("in-sample")),
            "{:?}",
            e.notes
        );
        c.sqnr_db = Some(20.0);
        let e = evaluate(&t, &c, &b);
        assert!(e.reasons[0].contains("SQNR 20.0 dB (in-sample) < floor"));
    }

    #[test]
    fn nothing_fits_gives_no_choice_and_reasons_for_all() {
        let t = target(1, 10, 1, 1.0);
        let c = vec![cand("fp32", 20, None, host(vec![point(1, 1, 10.0, 200)]))];
        let s = select(&t, &c, &Budgets::default());
        assert_eq!(s.chosen, None);
        assert_eq!(
            s.evaluations[0].reasons.len(),
            2,
            "{:?}",
            s.evaluations[0].reasons
        );
    }

    #[test]
    fn latency_budget_without_profile_does_not_fit() {
        let t = target(4, 1024, 1024, 1.0);
        let e = evaluate(
            &t,
            &cand("fp32", 1, None, None),
            &Budgets {
                latency_budget_s: Some(0.05),
                ..Default::default()
            },
        );
        assert!(!e.fits);
        assert!(e.reasons[0].contains("latency unknown"));
    }
}
