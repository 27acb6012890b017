//! The needs summary: what a model needs on this host, from a finished sweep.
//!
//! - **Threads for a latency budget**: for each query size and execution provider, the
//!   fewest intra-op threads whose median latency meets the budget (`None` when none did).
//!   Where a configuration's rounds were multi-modal, its slowest mode is the median that
//!   must meet the budget ([`super::schema::LatencyStats::pessimistic_p50_s`]).
//! - **Memory line**: peak RSS ≈ `fixed + per_item × batch`, fitted by ordinary least
//!   squares over every successful configuration (for each batch the largest peak over
//!   thread counts is used, the conservative choice; the session-creation peak counts when
//!   it is higher). The largest batch within a memory limit follows from the line.
//!   Extrapolating beyond the measured batches assumes activation memory grows linearly
//!   with the batch, which holds for the convolutional and matmul models we target but
//!   is only an estimate: the JSON keeps the measured points too.

use std::collections::BTreeMap;

use super::schema::{ConfigResult, Needs, Status};
use crate::stats;

/// The label of a configuration's query size and provider: its id without the
/// `threads=N` token (ids are `ep=cpu threads=2 batch=4 ...`).
pub fn size_key(c: &ConfigResult) -> String {
    c.id.split_whitespace()
        .filter(|t| !t.starts_with("threads="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fewest threads whose p50 meets `budget_s`, per [`size_key`].
pub fn min_threads_for_budget(
    configs: &[ConfigResult],
    budget_s: f64,
) -> BTreeMap<String, Option<usize>> {
    let mut out: BTreeMap<String, Option<usize>> = BTreeMap::new();
    for c in configs {
        let key = size_key(c);
        let entry = out.entry(key).or_insert(None);
        let meets = c.status == Status::Ok
            && c.latency
                .as_ref()
                .is_some_and(|l| l.pessimistic_p50_s() <= budget_s);
        if meets {
            *entry = Some(entry.map_or(c.threads, |t| t.min(c.threads)));
        }
    }
    out
}

/// Points `(batch, peak bytes)` for the memory fit: the largest peak per batch.
pub fn memory_points(configs: &[ConfigResult]) -> Vec<(f64, f64)> {
    let mut by_batch: BTreeMap<i64, u64> = BTreeMap::new();
    for c in configs {
        let (Some(b), Some(m), Status::Ok) = (c.batch, c.memory.as_ref(), c.status) else {
            continue;
        };
        let peak = m
            .peak_rss_bytes
            .max(m.peak_rss_session_create_bytes.unwrap_or(0));
        let e = by_batch.entry(b).or_insert(0);
        *e = (*e).max(peak);
    }
    by_batch
        .into_iter()
        .map(|(b, p)| (b as f64, p as f64))
        .collect()
}

/// The largest batch whose fitted memory fits `limit_bytes`; `None` when the fit has no
/// positive slope (memory does not grow with the batch) or not even batch 1 fits.
pub fn max_batch_within(fixed: f64, per_item: f64, limit_bytes: u64) -> Option<i64> {
    if per_item <= 0.0 {
        return None;
    }
    let b = ((limit_bytes as f64 - fixed) / per_item).floor();
    (b >= 1.0).then_some(b.min(i64::MAX as f64) as i64)
}

/// The whole needs summary.
pub fn summarize(
    configs: &[ConfigResult],
    latency_budget_s: Option<f64>,
    memory_limit_bytes: Option<u64>,
) -> Needs {
    let mut n = Needs {
        latency_budget_s,
        memory_limit_bytes,
        ..Needs::default()
    };
    if let Some(b) = latency_budget_s {
        n.min_threads_for_budget = min_threads_for_budget(configs, b);
    }
    if let Some((fixed, per_item)) = stats::fit_line(&memory_points(configs)) {
        n.memory_fixed_bytes = Some(fixed);
        n.memory_per_item_bytes = Some(per_item);
        if let Some(limit) = memory_limit_bytes {
            n.max_batch_within_memory_limit = max_batch_within(fixed, per_item, limit);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::schema::{LatencyStats, MemoryStats};

    fn cfg(threads: usize, batch: i64, p50_s: Option<f64>, peak: u64) -> ConfigResult {
        ConfigResult {
            id: format!("ep=cpu threads={threads} batch={batch}"),
            ep_requested: "cpu".into(),
            threads,
            batch: Some(batch),
            dims: Default::default(),
            input_shapes: Default::default(),
            status: if p50_s.is_some() {
                Status::Ok
            } else {
                Status::Failed
            },
            failure: None,
            reason: None,
            ep_used: None,
            session_create_s: None,
            first_run_s: None,
            latency: p50_s.map(|p| LatencyStats {
                iterations: 10,
                min_s: p,
                mean_s: p,
                p50_s: p,
                p90_s: p,
                p95_s: p,
                p99_s: p,
                max_s: p,
                stddev_s: None,
                p50_ci_low_s: p,
                p50_ci_high_s: p,
                p50_ci_rel: 0.0,
                outliers_mild: 0,
                outliers_severe: 0,
                stable: true,
                samples_s: vec![],
                rounds: vec![],
                modes: vec![],
            }),
            throughput_items_per_s: None,
            memory: p50_s.map(|_| MemoryStats {
                rss_before_load_bytes: 0,
                rss_after_session_bytes: 0,
                peak_rss_bytes: peak,
                peak_rss_session_create_bytes: None,
            }),
            cpu: None,
            gpu: None,
            per_op: vec![],
            warnings: vec![],
            uses_all_cores: false,
        }
    }

    #[test]
    fn threads_for_a_budget_use_the_slow_mode() {
        let mut c = cfg(2, 1, Some(0.010), 1);
        c.latency.as_mut().unwrap().modes = vec![
            crate::profile::schema::LatencyMode {
                p50_s: 0.010,
                rounds: vec![0, 2],
            },
            crate::profile::schema::LatencyMode {
                p50_s: 0.021,
                rounds: vec![1],
            },
        ];
        let m = min_threads_for_budget(&[c.clone()], 0.015);
        assert_eq!(m.values().next(), Some(&None), "{m:?}");
        assert_eq!(
            min_threads_for_budget(&[c], 0.025).values().next(),
            Some(&Some(2))
        );
    }

    #[test]
    fn picks_fewest_threads_meeting_the_budget_per_size() {
        let c = vec![
            cfg(1, 1, Some(0.030), 0),
            cfg(2, 1, Some(0.018), 0),
            cfg(4, 1, Some(0.012), 0),
            cfg(1, 8, Some(0.200), 0),
            cfg(2, 8, None, 0), // failed configs never meet a budget
        ];
        let m = min_threads_for_budget(&c, 0.020);
        assert_eq!(m["ep=cpu batch=1"], Some(2));
        assert_eq!(m["ep=cpu batch=8"], None);
    }

    #[test]
    fn fits_memory_line_and_largest_batch_within_limit() {
        let mb = 1_000_000;
        let c = vec![
            cfg(1, 1, Some(0.01), 110 * mb),
            cfg(2, 1, Some(0.01), 112 * mb), // the larger peak per batch is used
            cfg(1, 2, Some(0.01), 122 * mb),
            cfg(1, 4, Some(0.01), 142 * mb),
            cfg(1, 8, Some(0.01), 182 * mb),
        ];
        let n = summarize(&c, Some(0.02), Some(512 * mb));
        let fixed = n.memory_fixed_bytes.unwrap();
        let per = n.memory_per_item_bytes.unwrap();
        assert!((fixed - 102.0 * mb as f64).abs() < 1.0, "{fixed}");
        assert!((per - 10.0 * mb as f64).abs() < 1.0, "{per}");
        // (512 - 102) / 10 = 41
        assert_eq!(n.max_batch_within_memory_limit, Some(41));
    }

    #[test]
    fn no_fit_without_two_batches_and_no_batch_when_nothing_fits() {
        let c = vec![cfg(1, 1, Some(0.01), 100)];
        let n = summarize(&c, None, Some(1000));
        assert_eq!(n.memory_fixed_bytes, None);
        assert_eq!(n.max_batch_within_memory_limit, None);
        assert_eq!(max_batch_within(500.0, 100.0, 550), None);
        assert_eq!(max_batch_within(500.0, 0.0, 5000), None);
        assert_eq!(max_batch_within(500.0, 100.0, 700), Some(2));
    }
}
