//! Profiles measured in interleaved rounds (`edgepack gate --remeasure`): merging one
//! model's rounds into a single profile, and pairing the two models' samples round by
//! round for the hierarchical bootstrap ([`crate::stats::bootstrap_ratio_rounds`]).
//!
//! Rounds run A B, B A, A B, ... so a linear drift of the machine adds the same amount to
//! both models over every two rounds, and each round's pair was measured minutes apart at
//! most. Merged statistics are recomputed from the pooled raw samples, never averaged.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::profile::schema::{ConfigResult, Profile};

/// Baseline and candidate samples of one round of one configuration.
pub type RoundPair = (Vec<f64>, Vec<f64>);

/// Merge one model's round profiles into one profile, configuration by configuration
/// with the profiler's own rounds merge ([`crate::profile::rounds::merge`]): pooled
/// samples with statistics recomputed and an interval over rounds, the largest peak
/// memory, median session and first-run times, modes where rounds disagree. A
/// configuration that failed in any round is failed (with that round's reason).
pub fn merge_rounds(rounds: &[Profile]) -> Result<Profile> {
    let first = rounds.first().ok_or_else(|| {
        Error::usage(
            "rounds",
            "at least one round of profiles is needed to merge",
        )
    })?;
    let mut merged = first.clone();
    for c in merged.configs.iter_mut() {
        let same: Vec<ConfigResult> = rounds
            .iter()
            .filter_map(|p| p.configs.iter().find(|x| x.id == c.id).cloned())
            .collect();
        if let Some(m) = crate::profile::rounds::merge(&same, None) {
            *c = m;
        }
    }
    merged.plan.name = format!("{} ({} interleaved rounds)", first.plan.name, rounds.len());
    merged.plan.rounds = rounds.len() as u64;
    Ok(merged)
}

/// Pair the baseline's and the candidate's raw samples round by round, per configuration.
/// `baseline[i]` and `candidate[i]` must be the same round.
pub fn pair_rounds(
    baseline: &[Profile],
    candidate: &[Profile],
) -> BTreeMap<String, Vec<RoundPair>> {
    let mut out: BTreeMap<String, Vec<RoundPair>> = BTreeMap::new();
    for (b, c) in baseline.iter().zip(candidate) {
        for bc in &b.configs {
            let Some(cc) = c.configs.iter().find(|x| x.id == bc.id) else {
                continue;
            };
            if let (Some(bl), Some(cl)) = (&bc.latency, &cc.latency) {
                out.entry(bc.id.clone())
                    .or_default()
                    .push((bl.samples_s.clone(), cl.samples_s.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::schema::Status;
    use crate::report::fixture::sample_profile;

    #[test]
    fn merging_pools_samples_and_recomputes_statistics() {
        let a = sample_profile();
        let mut b = sample_profile();
        for c in b.configs.iter_mut() {
            if let Some(l) = c.latency.as_mut() {
                for s in l.samples_s.iter_mut() {
                    *s *= 2.0;
                }
            }
            if let Some(m) = c.memory.as_mut() {
                m.peak_rss_bytes += 1;
            }
        }
        let m = merge_rounds(&[a.clone(), b.clone()]).unwrap();
        let (c0, a0) = (&m.configs[0], &a.configs[0]);
        let l = c0.latency.as_ref().unwrap();
        assert_eq!(
            l.samples_s.len(),
            2 * a0.latency.as_ref().unwrap().samples_s.len()
        );
        assert!(l.p50_s > a0.latency.as_ref().unwrap().p50_s);
        assert_eq!(
            c0.memory.as_ref().unwrap().peak_rss_bytes,
            a0.memory.as_ref().unwrap().peak_rss_bytes + 1
        );
        assert!(m.plan.name.contains("2 interleaved rounds"));
        // The out-of-memory configuration stays failed.
        assert_eq!(m.configs.last().unwrap().status, Status::Failed);

        let pairs = pair_rounds(&[a.clone(), a], &[b.clone(), b]);
        assert_eq!(pairs[&c0.id].len(), 2);
        assert!(!pairs.contains_key("ep=cpu threads=2 batch=64"));
    }

    #[test]
    fn no_rounds_is_an_error() {
        assert!(merge_rounds(&[]).is_err());
    }
}
