//! Pure statistics for the gate: quantiles, their distribution-free confidence intervals,
//! and a seeded two-sample bootstrap of the ratio of candidate to baseline quantiles.
//!
//! Why a bootstrap of the *ratio of medians*: timings on shared machines are skewed and
//! carry outliers, so means and t-intervals mislead; the median is robust, and a ratio
//! makes the threshold ("5% slower") independent of the model's absolute speed. The
//! percentile bootstrap makes no assumption about the shape of the distribution.
//! The resampling is seeded so the same two profiles always give the same verdict.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A point estimate with a two-sided confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub point: f64,
    pub low: f64,
    pub high: f64,
}

/// The `q` quantile of sorted, finite samples by linear interpolation between order
/// statistics (Hyndman & Fan 1996, definition 7, the default of R and NumPy).
/// `None` for no samples.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// [`quantile_sorted`] of unsorted samples in O(n), reordering `buf` (selection instead of
/// a full sort: the bootstrap computes thousands of these).
pub fn quantile_select(buf: &mut [f64], q: f64) -> Option<f64> {
    let n = buf.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let (_, &mut x_lo, right) = buf.select_nth_unstable_by(lo, f64::total_cmp);
    let x_hi = if lo + 1 < n {
        right.iter().copied().fold(f64::INFINITY, f64::min)
    } else {
        x_lo
    };
    Some(x_lo + (h - lo as f64) * (x_hi - x_lo))
}

/// Sorted copy of the finite samples (NaN and infinities are dropped: they are not timings).
pub fn sorted_finite(samples: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The standard normal quantile function (Acklam's rational approximation, relative
/// error below 1.2e-9; P. J. Acklam, "An algorithm for computing the inverse normal
/// cumulative distribution function", 2003).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let p_low = 0.02425;
    if p < p_low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - p_low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// Distribution-free confidence interval of the `q` quantile from sorted samples: the
/// order statistics whose ranks bracket `n q` by `z sqrt(n q (1-q))` (the normal
/// approximation to the binomial; Conover, *Practical Nonparametric Statistics*, 3rd ed.,
/// §3.2). `None` when there are too few samples for the interval to reach the requested
/// confidence (a bracketing rank would fall outside the sample), rather than pretending.
pub fn quantile_ci(sorted: &[f64], q: f64, confidence: f64) -> Option<Interval> {
    let n = sorted.len();
    let point = quantile_sorted(sorted, q)?;
    let z = normal_quantile(0.5 + confidence / 2.0);
    let nf = n as f64;
    let half = z * (nf * q * (1.0 - q)).sqrt();
    // 1-based ranks j < k with P(X_(j) <= x_q <= X_(k)) >= confidence (approximately).
    let j = (nf * q - half).floor();
    let k = (nf * q + half).ceil() + 1.0;
    if j < 1.0 || k > nf {
        return None;
    }
    Some(Interval {
        point,
        low: sorted[j as usize - 1],
        high: sorted[k as usize - 1],
    })
}

/// Seeded two-sample percentile bootstrap (Efron & Tibshirani, *An Introduction to the
/// Bootstrap*, 1993, ch. 8 and 13) of `quantile_q(candidate) / quantile_q(baseline)`.
/// Each resample draws both samples with replacement at their own sizes. `None` when a
/// sample is empty or the baseline quantile is not positive.
pub fn bootstrap_ratio(
    baseline: &[f64],
    candidate: &[f64],
    q: f64,
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    let base = sorted_finite(baseline);
    let cand = sorted_finite(candidate);
    let b = quantile_sorted(&base, q)?;
    let c = quantile_sorted(&cand, q)?;
    if b <= 0.0 || resamples == 0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ratios = Vec::with_capacity(resamples);
    let mut buf_b = vec![0.0; base.len()];
    let mut buf_c = vec![0.0; cand.len()];
    for _ in 0..resamples {
        let qb = resampled_quantile(&base, &mut buf_b, q, &mut rng);
        let qc = resampled_quantile(&cand, &mut buf_c, q, &mut rng);
        if qb > 0.0 {
            ratios.push(qc / qb);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Some(Interval {
        point: c / b,
        low: quantile_sorted(&ratios, alpha / 2.0)?,
        high: quantile_sorted(&ratios, 1.0 - alpha / 2.0)?,
    })
}

/// Seeded two-level (hierarchical) bootstrap of the same ratio for measurements made in
/// interleaved *rounds*: `rounds[i]` holds the baseline's and the candidate's samples of
/// round `i`, measured back to back (A B, then B A, ...). Each resample draws rounds with
/// replacement, keeping a round's two sides together so drift between rounds cancels in
/// the pair, then draws samples with replacement inside each chosen round, and compares
/// the quantiles of the pooled draws. Drawing rounds as well as samples carries the
/// round-to-round variation (a process's placement in memory, a noisy neighbour) into the
/// interval, which a flat bootstrap of pooled samples would hide. (Davison & Hinkley,
/// *Bootstrap Methods and their Application*, 1997, §3.8; Saravanan et al., "Application
/// of the hierarchical bootstrap to multi-level data in neuroscience", 2020.)
/// `None` when any side is empty or fewer than 2 rounds have samples.
pub fn bootstrap_ratio_rounds(
    rounds: &[(Vec<f64>, Vec<f64>)],
    q: f64,
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    let rounds: Vec<(Vec<f64>, Vec<f64>)> = rounds
        .iter()
        .map(|(b, c)| (sorted_finite(b), sorted_finite(c)))
        .filter(|(b, c)| !b.is_empty() && !c.is_empty())
        .collect();
    if rounds.len() < 2 || resamples == 0 {
        return None;
    }
    let mut pooled_b: Vec<f64> = rounds.iter().flat_map(|r| r.0.iter().copied()).collect();
    let mut pooled_c: Vec<f64> = rounds.iter().flat_map(|r| r.1.iter().copied()).collect();
    let b = quantile_select(&mut pooled_b, q)?;
    let c = quantile_select(&mut pooled_c, q)?;
    if b <= 0.0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ratios = Vec::with_capacity(resamples);
    let (mut pb, mut pc) = (Vec::new(), Vec::new());
    for _ in 0..resamples {
        pb.clear();
        pc.clear();
        for _ in 0..rounds.len() {
            let (rb, rc) = &rounds[rng.random_range(0..rounds.len())];
            for _ in 0..rb.len() {
                pb.push(rb[rng.random_range(0..rb.len())]);
            }
            for _ in 0..rc.len() {
                pc.push(rc[rng.random_range(0..rc.len())]);
            }
        }
        if let (Some(qb), Some(qc)) = (quantile_select(&mut pb, q), quantile_select(&mut pc, q)) {
            if qb > 0.0 {
                ratios.push(qc / qb);
            }
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Some(Interval {
        point: c / b,
        low: quantile_sorted(&ratios, alpha / 2.0)?,
        high: quantile_sorted(&ratios, 1.0 - alpha / 2.0)?,
    })
}

fn resampled_quantile(sample: &[f64], buf: &mut [f64], q: f64, rng: &mut StdRng) -> f64 {
    for slot in buf.iter_mut() {
        *slot = sample[rng.random_range(0..sample.len())];
    }
    quantile_select(buf, q).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_of_degenerate_samples() {
        assert_eq!(quantile_sorted(&[], 0.5), None);
        assert_eq!(quantile_sorted(&[3.0], 0.5), Some(3.0));
        assert_eq!(quantile_sorted(&[1.0, 3.0], 0.5), Some(2.0));
        assert_eq!(quantile_sorted(&[2.0, 2.0, 2.0], 0.95), Some(2.0));
        assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), Some(3.0));
        assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0, 5.0], 1.0), Some(5.0));
    }

    #[test]
    fn selection_quantile_matches_the_sorted_one() {
        let mut rng = StdRng::seed_from_u64(5);
        for n in [1usize, 2, 3, 10, 101] {
            let v: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            let sorted = sorted_finite(&v);
            for q in [0.0, 0.05, 0.5, 0.95, 1.0] {
                let mut buf = v.clone();
                assert_eq!(quantile_select(&mut buf, q), quantile_sorted(&sorted, q));
            }
        }
        assert_eq!(quantile_select(&mut [], 0.5), None);
    }

    #[test]
    fn normal_quantile_matches_tables() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.005) + 2.575_829).abs() < 1e-5);
    }

    #[test]
    fn quantile_ci_refuses_too_few_samples() {
        assert_eq!(quantile_ci(&[], 0.5, 0.95), None);
        assert_eq!(quantile_ci(&[1.0], 0.5, 0.95), None);
        assert_eq!(quantile_ci(&[1.0, 2.0], 0.5, 0.95), None);
        // p95 needs far more samples than the median.
        let s: Vec<f64> = (1..=20).map(f64::from).collect();
        assert!(quantile_ci(&s, 0.5, 0.95).is_some());
        assert_eq!(quantile_ci(&s, 0.95, 0.95), None);
    }

    #[test]
    fn quantile_ci_brackets_the_quantile() {
        let s: Vec<f64> = (1..=1000).map(f64::from).collect();
        let ci = quantile_ci(&s, 0.95, 0.95).unwrap();
        assert!(ci.low < ci.point && ci.point < ci.high, "{ci:?}");
        assert!(ci.low > 930.0 && ci.high < 970.0, "{ci:?}");
        let eq = vec![5.0; 100];
        let ci = quantile_ci(&eq, 0.5, 0.95).unwrap();
        assert_eq!((ci.low, ci.point, ci.high), (5.0, 5.0, 5.0));
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_true_ratio() {
        let base: Vec<f64> = (0..200).map(|i| 1.0 + (i % 17) as f64 * 0.01).collect();
        let cand: Vec<f64> = base.iter().map(|x| x * 1.15).collect();
        let a = bootstrap_ratio(&base, &cand, 0.5, 0.95, 2000, 7).unwrap();
        let b = bootstrap_ratio(&base, &cand, 0.5, 0.95, 2000, 7).unwrap();
        assert_eq!(a, b, "same seed, same interval");
        assert!((a.point - 1.15).abs() < 1e-9);
        assert!(a.low <= 1.15 && a.high >= 1.15, "{a:?}");
        assert!(a.low > 1.05, "{a:?}");
    }

    #[test]
    fn bootstrap_of_identical_constant_samples_is_exactly_one() {
        let s = vec![0.01; 50];
        let i = bootstrap_ratio(&s, &s, 0.5, 0.95, 500, 1).unwrap();
        assert_eq!((i.low, i.point, i.high), (1.0, 1.0, 1.0));
    }

    #[test]
    fn bootstrap_needs_samples_on_both_sides() {
        assert_eq!(bootstrap_ratio(&[], &[1.0], 0.5, 0.95, 100, 1), None);
        assert_eq!(bootstrap_ratio(&[1.0], &[], 0.5, 0.95, 100, 1), None);
        assert_eq!(bootstrap_ratio(&[0.0], &[1.0], 0.5, 0.95, 100, 1), None);
        assert_eq!(
            bootstrap_ratio(&[f64::NAN], &[1.0], 0.5, 0.95, 100, 1),
            None
        );
    }

    #[test]
    fn round_bootstrap_widens_with_round_to_round_offsets() {
        // Every round is internally precise, but rounds disagree by a few percent: the
        // flat bootstrap is overconfident, the round bootstrap is not.
        let offsets = [1.00, 1.04, 0.97, 1.03, 0.98, 1.02];
        let rounds: Vec<(Vec<f64>, Vec<f64>)> = offsets
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let b: Vec<f64> = (0..100)
                    .map(|k| o * (1.0 + (k % 5) as f64 * 1e-4))
                    .collect();
                let o2 = offsets[(i + 1) % offsets.len()];
                let c: Vec<f64> = (0..100)
                    .map(|k| o2 * (1.0 + (k % 5) as f64 * 1e-4))
                    .collect();
                (b, c)
            })
            .collect();
        let flat_b: Vec<f64> = rounds.iter().flat_map(|r| r.0.clone()).collect();
        let flat_c: Vec<f64> = rounds.iter().flat_map(|r| r.1.clone()).collect();
        let flat = bootstrap_ratio(&flat_b, &flat_c, 0.5, 0.95, 1000, 3).unwrap();
        let hier = bootstrap_ratio_rounds(&rounds, 0.5, 0.95, 1000, 3).unwrap();
        assert!(
            hier.high - hier.low > 2.0 * (flat.high - flat.low),
            "flat {flat:?} hierarchical {hier:?}"
        );
        assert!(hier.low < 1.0 && hier.high > 1.0, "{hier:?}");
    }

    #[test]
    fn round_bootstrap_detects_a_consistent_slowdown_and_needs_two_rounds() {
        let rounds: Vec<(Vec<f64>, Vec<f64>)> = (0..4)
            .map(|r| {
                let drift = 1.0 + r as f64 * 0.05;
                let b: Vec<f64> = (0..50)
                    .map(|k| drift * (1.0 + (k % 7) as f64 * 0.002))
                    .collect();
                let c = b.iter().map(|x| x * 1.15).collect();
                (b, c)
            })
            .collect();
        let i = bootstrap_ratio_rounds(&rounds, 0.5, 0.95, 1000, 9).unwrap();
        assert!(i.low > 1.05, "{i:?}");
        assert_eq!(
            bootstrap_ratio_rounds(&rounds[..1], 0.5, 0.95, 100, 1),
            None
        );
    }
}
