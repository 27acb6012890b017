//! `--mode auto`: try every mode that applies to the model, measure each against the fp32
//! model on the evaluation inputs (accuracy) and side by side (latency), and keep the
//! winner by a stated rule ([`choose`]).
//!
//! Candidates, in order: `int8` (static QDQ with its own search: the accuracy guard keeps
//! the most sensitive layers in float until the target is met, and a variant with
//! depthwise/squeeze-excitation convs in float is kept when faster), `int8-dynamic` (with
//! the same guard, [`dynamic_guard`]: the most sensitive MatMuls back to float until the
//! target holds) and `int4-weight` (only when the model has MatMuls with constant
//! weights), `int8-weight`, `fp16`. A mode that does not apply (nothing to quantize) is
//! recorded with its reason.
//!
//! The targets are whatever `--accuracy-target`s are given (SQNR, cosine, top-1, CTC
//! character error rate, mask IoU; all must hold). Before anything runs, the task metrics
//! they need are checked against the fp32 model's outputs: a CER target on a model without
//! a `[lines, time, classes]` output is a usage error naming the output, not a mode that
//! silently "does not apply".
//!
//! Rule: among the candidates that meet every accuracy target, those not slower than fp32
//! come first; among them the winner has the smallest `size ratio x latency ratio` (a model
//! half the size counts as much as one twice as fast; size alone when latency was not
//! measured). When none meets the target, the most accurate candidate (highest worst-output
//! SQNR) wins, with a warning. When the winner is slower than fp32, a warning says so.

use std::collections::HashSet;
use std::time::Instant;

use super::accuracy::{worst_margin, AccuracyFloor, OutputAccuracy};
use super::runner::{Engine, Feed, NamedTensor};
use super::{Attempt, Metrics, Mode, Options, Quantized};
use crate::error::Result;
use crate::model::Model;
use crate::setting::Setting;

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

/// The warning when the choice was made without latency (`--no-latency`): the rule then
/// falls back to size alone, which favours `fp16` and weight-only variants, on a CPU
/// usually slower than fp32 (issue 11: on all-MiniLM-L6-v2 with `cosine>=0.99`, auto with
/// `--no-latency` chose fp16 at 0.50x size, 1.16x fp32 latency, over an int8-dynamic
/// variant that met the target at 0.67x size). `None` when latency was measured or the
/// winner computes in int8.
pub fn unmeasured_latency_warning(cands: &[Candidate], winner: usize) -> Option<String> {
    let w = cands.get(winner)?;
    if cands.iter().any(|c| c.latency_ratio.is_some()) {
        return None;
    }
    let int8_compute = |name: &str| {
        (name.starts_with("int8") && !name.starts_with("int8-weight")) || name.starts_with("int4")
    };
    if int8_compute(&w.name) {
        return None;
    }
    let faster: Vec<&str> = cands
        .iter()
        .filter(|c| c.meets_target && int8_compute(&c.name))
        .map(|c| c.name.as_str())
        .collect();
    Some(format!(
        "auto chose '{}' by size alone: latency was not measured ({nl}), and float16 or weight-only models are usually slower than fp32 on a CPU{}; run without {nl} to choose by size x latency",
        w.name,
        if faster.is_empty() {
            String::new()
        } else {
            format!(" (also meeting the target with int8 compute: {})", faster.join("; "))
        },
        nl = Setting::NoLatency,
    ))
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
            .push(AccuracyFloor::parse(DEFAULT_TARGET).expect("valid default"));
        notes.push(format!(
            "no {} given: auto used {DEFAULT_TARGET}",
            Setting::AccuracyTarget
        ));
    }
    check_task_metrics(model, calib, eval, &opts.targets, &opts.tasks, engine)?;
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
        let tried = super::quantize_mode(model, calib, eval, random_inputs, &o, engine);
        let tried = match tried {
            Ok(q) if mode == Mode::Int8Dynamic && q.report.meets_target == Some(false) => {
                dynamic_guard(model, calib, eval, random_inputs, &o, engine, q)
            }
            other => other,
        };
        match tried {
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
            format!("{} auto", Setting::Mode),
            format!("no mode applies to this model: {}", notes.join("; ")),
        ));
    };
    notes.extend(unmeasured_latency_warning(&cands, best));
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

/// Run the fp32 model once and check that the task metrics the targets need fit its
/// outputs (a usage error naming the output otherwise).
pub fn check_task_metrics(
    model: &Model,
    calib: &[Feed],
    eval: &[Feed],
    targets: &[AccuracyFloor],
    declared: &[super::task::Task],
    engine: &dyn Engine,
) -> Result<()> {
    let metrics = Metrics::of(model, targets, declared)?;
    if metrics.tasks.is_empty() {
        return Ok(());
    }
    let Some(feed) = eval.first().or(calib.first()) else {
        return Ok(());
    };
    let outs = engine.load(&model.to_bytes())?.run(feed, &[])?;
    metrics.check(&outs)
}

/// Most nodes the dynamic guard keeps in float, as a share of the quantized ones: past
/// half, the model is mostly float and `int8-weight` or `fp16` serve better.
const GUARD_MAX_FLOAT_SHARE: usize = 2;

/// Sets tried in a row without beating the best before the guard gives up: errors do not
/// add up node by node, so one more float node can be worse (as in the static guard).
const GUARD_STALE: usize = 6;

/// The accuracy guard for `int8-dynamic` (issue 11: on a BERT-style encoder the dynamic
/// candidate reached cosine 0.9895 against a 0.99 target and `auto` fell back to fp16):
/// rank the dynamically quantized nodes by how far each alone takes the outputs from the
/// targets ([`worst_margin`] on up to 4 evaluation samples), then keep the most
/// sensitive in float, one more at a time, until every target holds. The winning set is
/// re-quantized through the ordinary path (so its report, size and latency are measured
/// as for any mode); when no set meets the targets the most accurate one is kept, as the
/// static guard does. `first` is the plain dynamic result that missed.
pub fn dynamic_guard(
    model: &Model,
    calib: &[Feed],
    eval: &[Feed],
    random_inputs: bool,
    opts: &Options,
    engine: &dyn Engine,
    first: Quantized,
) -> Result<Quantized> {
    let mut prepared = model.clone();
    prepared.load_external_data()?;
    super::prepare::prepare(&mut prepared)?;
    let per_channel = opts.selection.per_channel;
    let user_excluded = &opts.selection.exclude_nodes;
    // The nodes the rewrite quantizes, each found alone: everything else excluded.
    let keys: Vec<String> = prepared
        .graph()
        .node
        .iter()
        .filter(|n| matches!(n.op_type.as_str(), "MatMul" | "LSTM"))
        .map(super::graph::node_key)
        .filter(|k| !user_excluded.contains(k))
        .collect();
    let all: HashSet<String> = keys.iter().cloned().collect();
    let eval_set: &[Feed] = if eval.is_empty() { calib } else { eval };
    let metrics = Metrics::of(&prepared, &opts.targets, &opts.tasks)?;
    let mut reference = engine.load(&model.to_bytes())?;
    let refs = eval_set
        .iter()
        .map(|f| reference.run(f, &[]))
        .collect::<Result<Vec<Vec<NamedTensor>>>>()?;
    // Accuracy of the dynamic rewrite with `float` (and the user's exclusions) kept float.
    let evaluate = |float: &HashSet<String>, n: usize| -> Result<Option<Vec<OutputAccuracy>>> {
        let exclude: HashSet<String> = float.union(user_excluded).cloned().collect();
        let (patch, counts) = super::dynamic::emit(&prepared, per_channel, &exclude)?;
        if counts.total() == 0 {
            return Ok(None);
        }
        let mut q = prepared.clone();
        q.apply(patch)?;
        super::graph::prune_initializers(&mut q)?;
        let mut workers = engine.load_workers(&q.to_bytes(), &Default::default(), n)?;
        super::compare(&mut workers, &eval_set[..n], &refs[..n], &metrics).map(Some)
    };
    let probe = eval_set.len().min(4);
    // (margin, worst SQNR, node): a task metric on a few probe samples often ties (no
    // character changes for any node alone), so the SQNR breaks ties.
    let mut sens: Vec<(f64, f64, String)> = Vec::new();
    for k in &keys {
        let mut others = all.clone();
        others.remove(k);
        if let Some(outs) = evaluate(&others, probe)? {
            let sqnr = outs
                .iter()
                .filter_map(|o| o.sqnr_db)
                .reduce(f64::min)
                .unwrap_or(f64::INFINITY);
            sens.push((worst_margin(&opts.targets, &outs), sqnr, k.clone()));
        }
    }
    sens.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let max_float = (sens.len() / GUARD_MAX_FLOAT_SHARE).max(1);
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut best: Option<(f64, Vec<String>, bool)> = None;
    let mut best_margin = worst_margin(&opts.targets, &first.report.outputs);
    let mut since_best = 0;
    let mut kept: Vec<String> = Vec::new();
    for (alone, sqnr_alone, node) in sens.iter().take(max_float) {
        kept.push(node.clone());
        let set: HashSet<String> = kept.iter().cloned().collect();
        let Some(outs) = evaluate(&set, eval_set.len())? else {
            break;
        };
        let margin = worst_margin(&opts.targets, &outs);
        let ok = opts.targets.iter().all(|t| t.met_by(&outs));
        attempts.push(Attempt {
            variant: format!(
                "int8-dynamic, {} most sensitive kept float (last: {node}, alone: margin {alone:.2}, {sqnr_alone:.1} dB)",
                kept.len()
            ),
            quantized_nodes: sens.len() - kept.len(),
            min_sqnr_db: outs.iter().filter_map(|o| o.sqnr_db).reduce(f64::min),
            latency_ratio: None,
            size_ratio: f64::NAN,
            meets_target: ok,
            stopped_after_samples: None,
        });
        if ok || margin > best_margin {
            best_margin = margin;
            best = Some((margin, kept.clone(), ok));
            since_best = 0;
        } else {
            since_best += 1;
        }
        if ok || since_best >= GUARD_STALE {
            break;
        }
    }
    let Some((_, float, ok)) = best else {
        let mut first = first;
        first.report.attempts.extend(attempts);
        first.report.warnings.push(
            "the accuracy target was not met by int8-dynamic, and keeping its most sensitive nodes in float did not help".into(),
        );
        return Ok(first);
    };
    let mut o = opts.clone();
    o.selection.exclude_nodes.extend(float.iter().cloned());
    let mut q = super::quantize_mode(model, calib, eval, random_inputs, &o, engine)?;
    let variant = format!(
        "{}; {} most sensitive kept float ({})",
        q.report.variant,
        float.len(),
        float.join(", ")
    );
    q.report.variant = variant.clone();
    // The search rows are not written out: their size is about the winner's (within the
    // few float MatMuls), so they carry its size rather than none.
    for a in &mut attempts {
        a.size_ratio = q.report.size_ratio;
    }
    let mut all_attempts = first.report.attempts;
    all_attempts.extend(attempts);
    if let Some(last) = q.report.attempts.last_mut() {
        last.variant = variant;
    }
    all_attempts.extend(q.report.attempts);
    q.report.attempts = all_attempts;
    if !ok {
        q.report.warnings.push(format!(
            "the accuracy target was not met by int8-dynamic with up to {} of its most sensitive nodes kept in float; kept the most accurate set tried",
            float.len()
        ));
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

    #[test]
    fn choosing_without_latency_warns_when_the_winner_computes_in_float() {
        // What it protects (issue 11): the MiniLM bench ran auto with --no-latency and got
        // fp16 (smallest, slower than fp32) without a word about the int8 candidate.
        let cands = [
            c(
                "int8 dynamic: 35 MatMul; 1 most sensitive kept float",
                true,
                None,
                0.67,
                19.5,
            ),
            c(
                "int8-weight: every Conv/MatMul/Gemm",
                true,
                None,
                0.65,
                32.2,
            ),
            c("fp16: 220 of 223 nodes in float16", true, None, 0.50, 60.7),
        ];
        let (i, _) = choose(&cands).unwrap();
        assert_eq!(i, 2);
        let w = unmeasured_latency_warning(&cands, i).unwrap();
        assert!(
            w.contains("by size alone") && w.contains("skipping latency"),
            "{w}"
        );
        assert!(
            w.contains("with int8 compute: int8 dynamic: 35 MatMul") && !w.contains("int8-weight:"),
            "{w}"
        );
        assert!(unmeasured_latency_warning(&cands, 0).is_none());
        let timed = [c("fp16", true, Some(1.2), 0.5, 60.0)];
        assert!(unmeasured_latency_warning(&timed, 0).is_none());
    }

    /// Token batches as the transformer CLI test writes them: one sentence of 8 + 5k
    /// tokens, ids in the vocabulary, the last two tokens padding. Seeded by index.
    fn token_feeds(n: usize, offset: usize) -> Vec<Feed> {
        (0..n)
            .map(|i| {
                let len = 8 + 5 * ((i + offset) % 4);
                let ids: Vec<i64> = (0..len)
                    .map(|t| ((t * 31 + (i + offset) * 17) % 97) as i64 + 1)
                    .collect();
                let mask: Vec<i64> = (0..len).map(|t| i64::from(t + 2 < len)).collect();
                let types: Vec<i64> = (0..len).map(|t| i64::from(t >= len / 2)).collect();
                [
                    ("input_ids", ids),
                    ("attention_mask", mask),
                    ("token_type_ids", types),
                ]
                .into_iter()
                .map(|(name, v)| NamedTensor {
                    name: name.into(),
                    shape: vec![1, len],
                    data: crate::tensor::TensorData::I64(v),
                })
                .collect()
            })
            .collect()
    }

    #[test]
    fn the_dynamic_candidate_keeps_its_most_sensitive_matmuls_float_to_meet_the_target() {
        // What it protects (issue 11): on all-MiniLM-L6-v2, plain int8-dynamic missed
        // cosine>=0.99 (worst sentence 0.9895) and auto fell back to fp16 at 1.14x fp32
        // latency. The built encoder is easier (plain dynamic reaches 0.99997 here), so
        // the same situation is set up with a target just above what plain dynamic
        // reaches: the guard must keep the most sensitive MatMuls in float until the
        // worst sample's cosine reaches it, with at least half the MatMuls still int8.
        use crate::model::builder::{bert_encoder, EncoderConfig};
        if crate::runtime::ensure_for_tests().is_none() {
            return;
        }
        let cfg = EncoderConfig {
            hidden: 64,
            ffn: 128,
            ..EncoderConfig::default()
        };
        let model = bert_encoder(&cfg, 11);
        let (calib, eval) = (token_feeds(8, 0), token_feeds(4, 100));
        let engine = crate::quantize::engine::RuntimeEngine::new(None, 1).unwrap();
        let target = AccuracyFloor::parse("cosine>=0.99999").unwrap();
        let opts = Options {
            targets: vec![target],
            accuracy_guard: true,
            ..Options::for_tests(Mode::Int8Dynamic)
        };
        let plain =
            super::super::quantize_mode(&model, &calib, &eval, false, &opts, &engine).unwrap();
        assert_eq!(
            plain.report.meets_target,
            Some(false),
            "plain int8-dynamic now meets the target; the guard is untested: {:?}",
            plain.report.outputs
        );
        let plain_nodes = plain.report.attempts[0].quantized_nodes;
        let q = dynamic_guard(&model, &calib, &eval, false, &opts, &engine, plain).unwrap();
        eprintln!(
            "guard: {} ({:?})",
            q.report.variant, q.report.outputs[0].min_cosine
        );
        assert_eq!(q.report.meets_target, Some(true), "{:?}", q.report);
        assert!(target.met_by(&q.report.outputs));
        assert!(
            q.report.variant.contains("most sensitive kept float"),
            "{}",
            q.report.variant
        );
        let kept = q.report.attempts.last().unwrap().quantized_nodes;
        assert!(
            kept > 0 && kept * 2 >= plain_nodes,
            "{kept} of {plain_nodes} MatMuls still int8"
        );
        // The search's rows are in the report: the plain miss, then the guard's sets.
        assert!(q.report.attempts.len() >= 3, "{:?}", q.report.attempts);
        assert!(!q.report.attempts[0].meets_target);
    }
}
