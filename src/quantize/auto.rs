//! `--mode auto`: try every mode that applies to the model, measure each against the fp32
//! model on the evaluation inputs (accuracy) and side by side (latency), and keep the
//! winner by a stated rule ([`choose`]).
//!
//! Candidates, in order: `int8` (static QDQ with its own search: the accuracy guard keeps
//! the most sensitive layers in float until the target is met, and a variant with
//! depthwise/squeeze-excitation convs in float is kept when faster), `int8-dynamic` and
//! `int4-weight` (only when the model has MatMuls with constant weights), `int8-weight`,
//! `fp16`. A mode that does not apply (nothing to quantize) is recorded with its reason.
//!
//! Rule: among the candidates that meet every accuracy target, those not slower than fp32
//! come first; among them the winner has the smallest `size ratio x latency ratio` (a model
//! half the size counts as much as one twice as fast; size alone when latency was not
//! measured). When none meets the target, the most accurate candidate (highest worst-output
//! SQNR) wins, with a warning. When the winner is slower than fp32, a warning says so.

use std::time::Instant;

use super::runner::{Engine, Feed};
use super::{Attempt, Mode, Options, Quantized};
use crate::error::Result;
use crate::model::Model;

/// The accuracy target `auto` uses when none is given.
pub const DEFAULT_TARGET: &str = "sqnr=30dB";

/// What [`choose`] needs of one candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Mode and variant, for the report.
    pub name: String,
    /// Met every accuracy target.
    pub meets_target: bool,
    /// Latency ratio against fp32 (`None`: not measured).
    pub latency_ratio: Option<f64>,
    /// Size ratio against fp32.
    pub size_ratio: f64,
    /// Worst-output SQNR.
    pub min_sqnr_db: Option<f64>,
}

/// Index of the winner and why it won. Pure; see the module docs for the rule.
pub fn choose(cands: &[Candidate]) -> Option<(usize, String)> {
    if cands.is_empty() {
        return None;
    }
    let not_slower = |c: &Candidate| c.latency_ratio.is_none_or(|l| l < 1.0);
    let cost = |c: &Candidate| c.size_ratio * c.latency_ratio.unwrap_or(1.0);
    let meeting: Vec<usize> = (0..cands.len())
        .filter(|&i| cands[i].meets_target)
        .collect();
    if meeting.is_empty() {
        let best = (0..cands.len())
            .max_by(|&a, &b| {
                let s = |i: usize| cands[i].min_sqnr_db.unwrap_or(f64::INFINITY);
                s(a).total_cmp(&s(b))
            })
            .expect("not empty");
        return Some((
            best,
            format!(
                "no candidate met the accuracy target; '{}' is the most accurate (worst-output SQNR {})",
                cands[best].name,
                cands[best]
                    .min_sqnr_db
                    .map_or("-".into(), |s| format!("{s:.1} dB"))
            ),
        ));
    }
    let fast: Vec<usize> = meeting
        .iter()
        .copied()
        .filter(|&i| not_slower(&cands[i]))
        .collect();
    let pool = if fast.is_empty() { &meeting } else { &fast };
    let best = pool
        .iter()
        .copied()
        .min_by(|&a, &b| cost(&cands[a]).total_cmp(&cost(&cands[b])))
        .expect("not empty");
    let c = &cands[best];
    let why = format!(
        "'{}' meets the target{} with the smallest size x latency ({:.3}x size, {} latency) of the {} candidate(s) that {}",
        c.name,
        if not_slower(c) { "" } else { " but is SLOWER than fp32" },
        c.size_ratio,
        c.latency_ratio
            .map_or("unmeasured".into(), |l| format!("{l:.3}x")),
        pool.len(),
        if fast.is_empty() {
            "meet it (all slower than fp32)"
        } else {
            "meet it and are not slower than fp32"
        }
    );
    Some((best, why))
}

/// Run every applicable mode and keep the winner (see the module docs).
pub fn search(
    model: &Model,
    calib: &[Feed],
    eval: &[Feed],
    random_inputs: bool,
    opts: &Options,
    engine: &dyn Engine,
) -> Result<Quantized> {
    let start = Instant::now();
    let mut opts = opts.clone();
    let mut notes = Vec::new();
    if opts.targets.is_empty() {
        opts.targets
            .push(super::accuracy::AccuracyFloor::parse(DEFAULT_TARGET).expect("valid default"));
        notes.push(format!(
            "no --accuracy-floor given: auto used {DEFAULT_TARGET}"
        ));
    }
    // (mode, prepare from ONNX Runtime's offline-optimized graph): int8 is tried from both
    // preparations, since which gives the faster int8 model depends on the model (measured:
    // the classifier favours ORT's, the recognizer and detector edgepack's own).
    let modes = [
        (Mode::Auto, false), // the int8 search
        (Mode::Auto, true),
        (Mode::Int8Dynamic, false),
        (Mode::Int4Weight, false),
        (Mode::Int8Weight, false),
        (Mode::Fp16, false),
    ];
    let mut results: Vec<Quantized> = Vec::new();
    let mut attempts: Vec<Attempt> = Vec::new();
    for (mode, ort_first) in modes {
        let mut o = opts.clone();
        o.mode = mode;
        o.ort_offline_first = ort_first;
        // The per-node float fallback is a long search: run it on one int8 candidate.
        o.accuracy_guard = !ort_first;
        o.selection.weights_only = mode == Mode::Int8Weight;
        let name = match (mode, ort_first) {
            (Mode::Auto, false) => "int8",
            (Mode::Auto, true) => "int8 (ORT-optimized graph)",
            _ => mode.name(),
        };
        // Variants name their mode ("int8-weight: every Conv/...", "fp16: ...").
        match super::quantize_mode(model, calib, eval, random_inputs, &o, engine) {
            Ok(q) => {
                attempts.extend(q.report.attempts.iter().cloned());
                results.push(q);
            }
            // Inputs are already validated; an error here means the mode does not apply.
            Err(e) => notes.push(format!("{name} not tried: {e}")),
        }
    }
    let cands: Vec<Candidate> = results
        .iter()
        .map(|q| Candidate {
            name: q.report.variant.clone(),
            meets_target: q.report.meets_target.unwrap_or(true),
            latency_ratio: q.report.latency_ratio,
            size_ratio: q.report.size_ratio,
            min_sqnr_db: q
                .report
                .outputs
                .iter()
                .filter_map(|o| o.sqnr_db)
                .reduce(f64::min),
        })
        .collect();
    let Some((best, why)) = choose(&cands) else {
        return Err(crate::error::Error::usage(
            "--mode auto",
            format!("no mode applies to this model: {}", notes.join("; ")),
        ));
    };
    let mut q = results.swap_remove(best);
    let winner = &cands[best];
    q.report.mode = Mode::Auto;
    q.report.variant = winner.name.clone();
    q.report.attempts = attempts;
    q.report.targets = opts.targets.clone();
    q.report.quantize_wall_s = start.elapsed().as_secs_f64();
    q.report.choice = Some(why);
    q.report.warnings.extend(notes);
    if !winner.meets_target {
        q.report
            .warnings
            .push("no mode met the accuracy target; the most accurate was kept".into());
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, meets: bool, lat: Option<f64>, size: f64, sqnr: f64) -> Candidate {
        Candidate {
            name: name.into(),
            meets_target: meets,
            latency_ratio: lat,
            size_ratio: size,
            min_sqnr_db: Some(sqnr),
        }
    }

    #[test]
    fn a_faster_model_that_meets_the_target_beats_a_smaller_slower_one() {
        let cands = [
            c("int8", false, Some(0.6), 0.27, 12.0),
            c("int8-weight", true, Some(1.3), 0.27, 26.0),
            c("int8-dynamic", true, Some(0.88), 0.72, 33.0),
            c("fp16", true, Some(1.5), 0.5, 60.0),
        ];
        let (i, why) = choose(&cands).unwrap();
        assert_eq!(cands[i].name, "int8-dynamic");
        assert!(why.contains("not slower than fp32"), "{why}");
    }

    #[test]
    fn among_fast_models_size_times_latency_decides() {
        let cands = [
            c("a", true, Some(0.9), 0.3, 30.0),  // 0.27
            c("b", true, Some(0.5), 0.5, 30.0),  // 0.25
            c("c", true, Some(0.95), 0.2, 30.0), // 0.19
        ];
        assert_eq!(choose(&cands).unwrap().0, 2);
    }

    #[test]
    fn when_only_slow_models_meet_the_target_the_winner_says_so() {
        let cands = [
            c("int8", false, Some(0.6), 0.27, 12.0),
            c("int8-weight", true, Some(1.3), 0.27, 26.0),
            c("fp16", true, Some(1.5), 0.5, 60.0),
        ];
        let (i, why) = choose(&cands).unwrap();
        assert_eq!(cands[i].name, "int8-weight");
        assert!(why.contains("SLOWER"), "{why}");
    }

    #[test]
    fn when_nothing_meets_the_target_the_most_accurate_wins() {
        let cands = [
            c("int8", false, Some(0.6), 0.27, 12.0),
            c("int8-weight", false, Some(1.3), 0.27, 19.6),
        ];
        let (i, why) = choose(&cands).unwrap();
        assert_eq!(i, 1);
        assert!(why.contains("no candidate met"), "{why}");
        assert!(choose(&[]).is_none());
    }
}
