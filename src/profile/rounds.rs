//! Rounds: every configuration is measured in several independent processes, and the
//! figures reported are those of all rounds together.
//!
//! # Why
//!
//! One process's samples tell how stable *that process* was, not how stable the figure
//! is. Measured on this project's 2-vCPU CI machine (issue 18), PP-OCRv4 det at 2 threads
//! gave p50s of 12.4, 12.5, 12.1, 13.3, 25.6 and 25.6 ms in six processes in a row, each
//! with a median interval of about ±1%; ONNX Runtime's own Python loop shows the same two
//! regimes, so the cause is how the machine schedules a process that uses every core, not
//! the profiler. Reporting ±1% for a figure that doubles from one run to the next is the
//! kind of lie a gate or a bundle prediction then builds on.
//!
//! # What
//!
//! - The sweep runs `rounds` passes over its configurations, one child process per
//!   configuration per pass, alternating the order (A B C, then C B A, ...) so a drift of
//!   the machine over the minutes of a sweep touches every configuration alike. The
//!   plan's time budget is shared by the rounds ([`super::plan::MeasureSettings::per_round`]).
//! - [`merge`] pools a configuration's rounds: the statistics are those of the pooled
//!   samples, and the median's interval is a hierarchical bootstrap (rounds, then samples
//!   within rounds; [`crate::stats::bootstrap_quantile_rounds`]), so it covers the spread
//!   between processes. Each round's own median and interval are kept (`rounds`).
//! - Modes: where rounds disagree beyond their own intervals by at least
//!   [`MODE_GAP_REL`] ([`crate::stats::modes`]), the configuration carries the modes and a
//!   warning naming them; decisions (needs summary, bundle predictions, the gate) use the
//!   slowest mode or refuse to decide, never the lucky one.

use super::schema::{ConfigResult, LatencyMode, LatencyStats, RoundLatency, Status};
use crate::stats::{self, RoundMedian, Summary};

/// Rounds whose medians differ by less than this (relative) are one mode even when their
/// own intervals are disjoint: 10% drift between processes is ordinary on a shared
/// machine and is carried by the interval; a 2x swing is a different regime.
pub const MODE_GAP_REL: f64 = 0.15;

/// Confidence of the reported intervals.
const CONFIDENCE: f64 = 0.95;

/// Resamples of the rounds bootstrap (seeded: the same rounds give the same interval).
const RESAMPLES: usize = 2000;
const SEED: u64 = 0x5eed_0018;

/// One configuration's figures from all its rounds (at least one, in the order they ran).
/// A configuration that failed in any round is failed, with that round's reason. A single
/// round is returned as it is. `target_ci_rel` is the plan's target for the pooled
/// interval: given, the rounds' own "wider than the (per-round) target" warnings give way
/// to one about the pooled interval.
pub fn merge(rounds: &[ConfigResult], target_ci_rel: Option<f64>) -> Option<ConfigResult> {
    let first = rounds.first()?;
    if let Some(f) = rounds.iter().position(|r| r.status == Status::Failed) {
        let mut failed = rounds[f].clone();
        if rounds.len() > 1 {
            failed.reason = Some(format!(
                "failed in round {} of {}: {}",
                f + 1,
                rounds.len(),
                failed.reason.unwrap_or_default()
            ));
        }
        return Some(failed);
    }
    if rounds.len() == 1 {
        return Some(first.clone());
    }
    let mut out = first.clone();
    let lats: Vec<&LatencyStats> = rounds.iter().filter_map(|r| r.latency.as_ref()).collect();
    out.latency = merge_latency(&lats);
    if let Some(l) = &out.latency {
        let items = first.batch.unwrap_or(1).max(1) as f64;
        out.throughput_items_per_s = (l.p50_s > 0.0).then(|| items / l.p50_s);
    }
    out.memory = rounds
        .iter()
        .filter_map(|r| r.memory.clone())
        .max_by_key(|m| m.peak_rss_bytes)
        .map(|mut m| {
            m.peak_rss_session_create_bytes = rounds
                .iter()
                .filter_map(|r| r.memory.as_ref()?.peak_rss_session_create_bytes)
                .max();
            m
        });
    out.cpu = merge_cpu(rounds);
    out.session_create_s = stats::median(
        &rounds
            .iter()
            .filter_map(|r| r.session_create_s)
            .collect::<Vec<_>>(),
    );
    out.first_run_s = stats::median(
        &rounds
            .iter()
            .filter_map(|r| r.first_run_s)
            .collect::<Vec<_>>(),
    );
    if out.per_op.is_empty() {
        out.per_op = rounds
            .iter()
            .find(|r| !r.per_op.is_empty())
            .map(|r| r.per_op.clone())
            .unwrap_or_default();
    }
    let mut warnings = merge_warnings(rounds, target_ci_rel.is_some());
    if let (Some(l), Some(t)) = (&out.latency, target_ci_rel) {
        if l.p50_ci_rel > t {
            warnings.push(format!(
                "median CI ±{:.2}% over {} rounds is wider than the target ±{:.2}%",
                l.p50_ci_rel * 100.0,
                rounds.len(),
                t * 100.0
            ));
        }
    }
    if let Some(l) = out.latency.as_ref().filter(|l| l.is_multimodal()) {
        warnings.push(format!(
            "rounds disagree: p50 {} across {} processes; decisions use the slowest{}",
            l.modes_line(),
            l.rounds.len(),
            if out.uses_all_cores {
                " (this configuration uses every core: fewer threads are steadier)"
            } else {
                ""
            }
        ));
    }
    out.warnings = warnings;
    Some(out)
}

/// The kind of a warning: its text up to the first number (`unstable: the last`,
/// `outliers:`, `median CI`), so the same warning from several rounds is said once.
fn warning_kind(w: &str) -> &str {
    let end = w
        .find(|c: char| c.is_ascii_digit() || c == '±')
        .unwrap_or(w.len());
    w[..end].trim_end()
}

/// The rounds' warnings, one per kind (the first round's wording, with how many rounds
/// said it). `pooled_ci` drops the per-round interval and window-check warnings: the
/// pooled interval is judged against the plan's target instead, and drift between rounds.
fn merge_warnings(rounds: &[ConfigResult], pooled_ci: bool) -> Vec<String> {
    let mut kinds: Vec<(&str, &str, usize)> = Vec::new();
    for r in rounds {
        let mut seen: Vec<&str> = Vec::new();
        for w in &r.warnings {
            let k = warning_kind(w);
            // With several rounds, drift is judged between them (the pooled interval,
            // modes): a round too short for its own window check says nothing more.
            let judged_by_rounds = k == "median CI" || k == "stability not checked";
            if (pooled_ci && judged_by_rounds) || seen.contains(&k) {
                continue;
            }
            seen.push(k);
            match kinds.iter_mut().find(|(kind, _, _)| *kind == k) {
                Some(e) => e.2 += 1,
                None => kinds.push((k, w, 1)),
            }
        }
    }
    kinds
        .into_iter()
        .map(|(_, w, n)| format!("{w} (in {n} of {} rounds)", rounds.len()))
        .collect()
}

/// Pooled statistics, the rounds bootstrap interval, per-round figures and modes.
fn merge_latency(lats: &[&LatencyStats]) -> Option<LatencyStats> {
    let per_round: Vec<Vec<f64>> = lats.iter().map(|l| l.samples_s.clone()).collect();
    let pooled: Vec<f64> = per_round.iter().flatten().copied().collect();
    let summary = Summary::of(&pooled, CONFIDENCE)?;
    let stable = lats.iter().all(|l| l.stable);
    let mut merged = LatencyStats::from_summary(&summary, None, stable, pooled);
    if let Some(i) = stats::bootstrap_quantile_rounds(&per_round, 0.5, CONFIDENCE, RESAMPLES, SEED)
    {
        // Never narrower than the pooled samples' own interval.
        merged.p50_ci_low_s = i.low.min(merged.p50_ci_low_s);
        merged.p50_ci_high_s = i.high.max(merged.p50_ci_high_s);
        merged.p50_ci_rel =
            stats::rel_half_width(merged.p50_ci_low_s, merged.p50_ci_high_s, merged.p50_s)
                .unwrap_or(f64::INFINITY);
    }
    merged.rounds = lats
        .iter()
        .map(|l| RoundLatency {
            p50_s: l.p50_s,
            p50_ci_low_s: l.p50_ci_low_s,
            p50_ci_high_s: l.p50_ci_high_s,
            iterations: l.samples_s.len() as u64,
        })
        .collect();
    let medians: Vec<RoundMedian> = merged
        .rounds
        .iter()
        .map(|r| RoundMedian {
            p50: r.p50_s,
            low: r.p50_ci_low_s,
            high: r.p50_ci_high_s,
        })
        .collect();
    let groups = stats::modes(&medians, MODE_GAP_REL);
    if groups.len() > 1 {
        merged.modes = groups
            .into_iter()
            .map(|g| {
                let samples: Vec<f64> = g
                    .iter()
                    .flat_map(|&i| per_round[i].iter().copied())
                    .collect();
                LatencyMode {
                    p50_s: stats::median(&samples).unwrap_or(f64::NAN),
                    rounds: g,
                }
            })
            .collect();
    }
    Some(merged)
}

/// CPU time and wall time add up over rounds; busy cores is their ratio.
fn merge_cpu(rounds: &[ConfigResult]) -> Option<super::schema::CpuStats> {
    let cpus: Vec<&super::schema::CpuStats> =
        rounds.iter().filter_map(|r| r.cpu.as_ref()).collect();
    if cpus.is_empty() {
        return None;
    }
    let cpu_time_s: f64 = cpus.iter().map(|c| c.cpu_time_s).sum();
    let wall_time_s: f64 = cpus.iter().map(|c| c.wall_time_s).sum();
    Some(super::schema::CpuStats {
        cpu_time_s,
        wall_time_s,
        busy_cores: if wall_time_s > 0.0 {
            cpu_time_s / wall_time_s
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::sample_profile;

    /// The fixture's first configuration with its samples scaled by `k`.
    fn round(k: f64) -> ConfigResult {
        let mut c = sample_profile().configs[0].clone();
        let l = c.latency.as_mut().unwrap();
        let samples: Vec<f64> = l.samples_s.iter().map(|s| s * k).collect();
        let s = Summary::of(&samples, CONFIDENCE).unwrap();
        *l = LatencyStats::from_summary(&s, None, true, samples);
        c.warnings.clear();
        c
    }

    #[test]
    fn agreeing_rounds_pool_their_samples_and_keep_each_round() {
        let rs = [round(1.0), round(1.01), round(0.99)];
        let m = merge(&rs, Some(0.02)).unwrap();
        let l = m.latency.as_ref().unwrap();
        let n: usize = rs
            .iter()
            .map(|r| r.latency.as_ref().unwrap().samples_s.len())
            .sum();
        assert_eq!(l.samples_s.len(), n);
        assert_eq!(l.iterations as usize, n);
        assert_eq!(l.rounds.len(), 3);
        assert!(l.modes.is_empty(), "{:?}", l.modes);
        assert_eq!(l.pessimistic_p50_s(), l.p50_s);
        // The interval reaches at least across the rounds' medians.
        let p50s: Vec<f64> = l.rounds.iter().map(|r| r.p50_s).collect();
        let (lo, hi) = (stats::min(&p50s).unwrap(), stats::max(&p50s).unwrap());
        assert!(l.p50_ci_low_s <= lo * 1.0001 && l.p50_ci_high_s >= hi * 0.9999);
        assert!(m.warnings.iter().all(|w| !w.contains("rounds disagree")));
    }

    #[test]
    fn a_slow_regime_is_a_mode_and_decisions_use_it() {
        let rs = [round(1.0), round(2.07), round(1.01)];
        let m = merge(&rs, Some(0.02)).unwrap();
        let l = m.latency.as_ref().unwrap();
        assert_eq!(l.modes.len(), 2, "{:?}", l.modes);
        assert_eq!(l.modes[0].rounds, vec![0, 2]);
        assert_eq!(l.modes[1].rounds, vec![1]);
        assert!(l.pessimistic_p50_s() > 1.9 * l.modes[0].p50_s);
        // The interval covers both regimes.
        assert!(l.p50_ci_high_s >= l.modes[1].p50_s * 0.99, "{l:?}");
        assert!(l.p50_ci_rel > 0.2, "{}", l.p50_ci_rel);
        let w = m
            .warnings
            .iter()
            .find(|w| w.contains("rounds disagree"))
            .unwrap();
        assert!(w.contains("2 rounds") && w.contains("1 round"), "{w}");
        // The pooled interval is judged against the plan's target.
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("over 3 rounds is wider")),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn the_same_warning_from_several_rounds_is_said_once() {
        let mut rs = [round(1.0), round(1.0), round(1.0)];
        rs[0].warnings = vec![
            "unstable: the last 3 windows differ by up to 13.2% (tolerance 10.0%)".into(),
            "median CI ±17.34% is wider than the target ±3.46% after 10 iterations".into(),
        ];
        rs[2].warnings =
            vec!["unstable: the last 3 windows differ by up to 17.4% (tolerance 10.0%)".into()];
        let m = merge(&rs, Some(0.5)).unwrap();
        assert_eq!(
            m.warnings,
            vec![
                "unstable: the last 3 windows differ by up to 13.2% (tolerance 10.0%) \
                 (in 2 of 3 rounds)"
                    .to_string()
            ]
        );
        // Without a target for the pooled interval, the rounds' own ones stay.
        let m = merge(&rs, None).unwrap();
        assert_eq!(m.warnings.len(), 2);
    }

    #[test]
    fn a_round_that_failed_fails_the_configuration() {
        let mut bad = round(1.0);
        bad.status = Status::Failed;
        bad.latency = None;
        bad.reason = Some("out of memory".into());
        let m = merge(&[round(1.0), bad], None).unwrap();
        assert_eq!(m.status, Status::Failed);
        assert_eq!(
            m.reason.as_deref(),
            Some("failed in round 2 of 2: out of memory")
        );
        assert!(merge(&[], None).is_none());
        assert_eq!(merge(&[round(1.0)], None).unwrap(), round(1.0));
    }
}
