//! Pure statistics over plain sample vectors: quantiles, the median's confidence interval
//! the measurement protocol documents, outliers, stability, and the seeded bootstrap the
//! gate judges regressions with. Profile, gate, bundle and report all call this one module,
//! so the same samples always get the same interval.
//!
//! Everything here is a function of its arguments: no clock, no I/O. Values that are
//! undefined for too few samples are `Option`s instead of NaN or a made-up number.
//!
//! Definitions (each function says which one it uses):
//! - **Quantiles** use linear interpolation between closest ranks (Hyndman & Fan 1996,
//!   "Sample quantiles in statistical packages", definition 7; NumPy's and R's default):
//!   for sorted `x[0..n]` and `p` in `[0, 1]`, `h = (n - 1) p`,
//!   `Q(p) = x[⌊h⌋] + (h - ⌊h⌋)(x[⌊h⌋ + 1] - x[⌊h⌋])`.
//! - **Standard deviation** is the sample (Bessel-corrected, `n - 1`) one.
//! - **Confidence interval of a quantile** (the median's included) is distribution-free,
//!   from order statistics: the number of samples below the true `q` quantile is
//!   Binomial(n, q), so `[x(j), x(k)]` (1-based order statistics) covers it with
//!   probability `P(j ≤ B ≤ k - 1)`. The ranks are chosen from the **exact** binomial
//!   distribution, equal-tailed (Conover, "Practical Nonparametric Statistics", 3rd ed.,
//!   1999, §3.2, confidence interval for a quantile; Hollander & Wolfe, "Nonparametric
//!   Statistical Methods", §3.6). No normality assumption: latency distributions are
//!   skewed and heavy-tailed. For the median this is the symmetric `[x(k), x(n-k+1)]`.
//! - **Outliers** use Tukey's fences on the interquartile range (Tukey 1977, "Exploratory
//!   Data Analysis"; the same mild/severe split criterion.rs reports): mild outside
//!   `[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`, severe outside `[Q1 - 3 IQR, Q3 + 3 IQR]`.
//! - **Stability** follows Triton perf_analyzer's idea of "the last 3 measurement windows
//!   within N%": the medians of the last three consecutive windows must each lie within
//!   ±N% of their mean.
//! - **Regression ratios** come from a seeded percentile bootstrap of the ratio of
//!   candidate to baseline quantiles. Why the *ratio of medians*: timings on shared
//!   machines are skewed and carry outliers, so means and t-intervals mislead; the median
//!   is robust, and a ratio makes the threshold ("5% slower") independent of the model's
//!   absolute speed. The percentile bootstrap assumes no shape of the distribution, and
//!   the seed makes the same two profiles always give the same verdict.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
/// Smallest value; `None` for no samples.
pub fn min(samples: &[f64]) -> Option<f64> {
    samples.iter().copied().reduce(f64::min)
}

/// Largest value; `None` for no samples.
pub fn max(samples: &[f64]) -> Option<f64> {
    samples.iter().copied().reduce(f64::max)
}

/// Arithmetic mean; `None` for no samples.
pub fn mean(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    Some(samples.iter().sum::<f64>() / samples.len() as f64)
}

/// Sample standard deviation (divisor `n - 1`); `None` for fewer than 2 samples.
pub fn stddev(samples: &[f64]) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let m = mean(samples)?;
    let ss: f64 = samples.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (samples.len() - 1) as f64).sqrt())
}

/// A sorted copy (total order; NaN sorts last and should never occur in timings).
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The `p`-quantile (`p` in `[0, 1]`) of already **sorted** samples, by linear
/// interpolation (Hyndman & Fan definition 7, see the module docs); `None` when empty.
pub fn quantile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 1.0);
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// The `p`-quantile of unsorted samples (see [`quantile_sorted`]).
pub fn quantile(samples: &[f64], p: f64) -> Option<f64> {
    quantile_sorted(&sorted(samples), p)
}

/// The median (the 0.5 quantile).
pub fn median(samples: &[f64]) -> Option<f64> {
    quantile(samples, 0.5)
}

/// A confidence interval for the median.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MedianCi {
    pub low: f64,
    pub high: f64,
    /// The actual coverage of the chosen order statistics (≥ the requested confidence).
    pub coverage: f64,
}

impl MedianCi {
    /// Relative half-width `(high - low) / 2 / median`; `None` when the median is not
    /// positive (the ratio is meaningless there).
    pub fn rel_half_width(&self, median: f64) -> Option<f64> {
        rel_half_width(self.low, self.high, median)
    }
}

/// Relative half-width `(high - low) / 2 / center`; `None` for a non-positive center.
pub fn rel_half_width(low: f64, high: f64, center: f64) -> Option<f64> {
    if center > 0.0 && center.is_finite() {
        Some((high - low) / 2.0 / center)
    } else {
        None
    }
}

/// The 1-based order-statistic index `k` of the distribution-free median interval
/// `[x(k), x(n-k+1)]` with coverage at least `confidence`, and that coverage; `None` when
/// even `[x(1), x(n)]` covers less (n < 6 for 95%).
///
/// Coverage of `[x(k), x(n-k+1)]` is `1 - 2 P(B ≤ k - 1)`, `B ~ Binomial(n, 1/2)` (Conover
/// 1999, §3.2); this is [`quantile_ci_ranks`] at `q = 1/2`.
pub fn median_ci_rank(n: usize, confidence: f64) -> Option<(usize, f64)> {
    // The median's interval is the quantile interval at q = 1/2, symmetric by construction.
    quantile_ci_ranks(n, 0.5, confidence).map(|(j, _, coverage)| (j, coverage))
}

/// Distribution-free confidence interval of the median at `confidence` (e.g. 0.95), from
/// order statistics (see [`median_ci_rank`]); `None` when there are too few samples for
/// that confidence.
pub fn median_ci(samples: &[f64], confidence: f64) -> Option<MedianCi> {
    let s = sorted(samples);
    let (j, k, coverage) = quantile_ci_ranks(s.len(), 0.5, confidence)?;
    Some(MedianCi {
        low: s[j - 1],
        high: s[k - 1],
        coverage,
    })
}

/// Outlier counts by Tukey's fences (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outliers {
    pub low_severe: usize,
    pub low_mild: usize,
    pub high_mild: usize,
    pub high_severe: usize,
}

impl Outliers {
    /// Mild outliers on either side (severe ones not included).
    pub fn mild(&self) -> usize {
        self.low_mild + self.high_mild
    }
    /// Severe outliers on either side.
    pub fn severe(&self) -> usize {
        self.low_severe + self.high_severe
    }
    /// All outliers.
    pub fn total(&self) -> usize {
        self.mild() + self.severe()
    }
}

/// Tukey fences `(low_severe, low_mild, high_mild, high_severe)` of the samples; `None`
/// when empty.
pub fn tukey_fences(samples: &[f64]) -> Option<[f64; 4]> {
    let s = sorted(samples);
    let q1 = quantile_sorted(&s, 0.25)?;
    let q3 = quantile_sorted(&s, 0.75)?;
    let iqr = q3 - q1;
    Some([
        q1 - 3.0 * iqr,
        q1 - 1.5 * iqr,
        q3 + 1.5 * iqr,
        q3 + 3.0 * iqr,
    ])
}

/// Classify samples as mild or severe outliers by Tukey's fences. All-equal samples have
/// IQR 0 and therefore no outliers.
pub fn classify_outliers(samples: &[f64]) -> Outliers {
    let Some([ls, lm, hm, hs]) = tukey_fences(samples) else {
        return Outliers::default();
    };
    let mut o = Outliers::default();
    for &x in samples {
        if x < ls {
            o.low_severe += 1;
        } else if x < lm {
            o.low_mild += 1;
        } else if x > hs {
            o.high_severe += 1;
        } else if x > hm {
            o.high_mild += 1;
        }
    }
    o
}

/// The window length used for stability over `n` samples: the second half of the samples
/// split into three windows (at least 3 samples each). `None` when `n < 9`.
pub fn stability_window_len(n: usize) -> Option<usize> {
    if n < 9 {
        return None;
    }
    Some((n / 6).max(3))
}

/// Whether the medians of the last three consecutive windows of `window` samples (in
/// measurement order) each lie within `±tolerance` (relative) of their mean. `None` when
/// there are fewer than three whole windows.
pub fn last_windows_stable(samples: &[f64], window: usize, tolerance: f64) -> Option<bool> {
    let spread = last_windows_spread(samples, window)?;
    Some(spread <= tolerance)
}

/// The largest relative deviation of the last three window medians from their mean.
/// `None` when there are fewer than three whole windows or the mean is not positive.
pub fn last_windows_spread(samples: &[f64], window: usize) -> Option<f64> {
    if window == 0 || samples.len() < 3 * window {
        return None;
    }
    let tail = &samples[samples.len() - 3 * window..];
    let medians: Vec<f64> = tail.chunks(window).filter_map(median).collect();
    let m = mean(&medians)?;
    if m <= 0.0 {
        return None;
    }
    Some(
        medians
            .iter()
            .map(|x| (x - m).abs() / m)
            .fold(0.0, f64::max),
    )
}

/// Whether the first (cold) run was markedly slower than the steady state: it lies above
/// the steady-state samples' upper severe fence (`Q3 + 3 IQR`) **and** above
/// `min_ratio × median` (so a zero IQR from a perfectly steady mock does not flag a first
/// run that is 0.1% slower). Returns the ratio `first / median` when slow.
pub fn slow_first_run(first_s: f64, steady: &[f64], min_ratio: f64) -> Option<f64> {
    let fences = tukey_fences(steady)?;
    let med = median(steady)?;
    if med <= 0.0 {
        return None;
    }
    let ratio = first_s / med;
    (first_s > fences[3] && ratio >= min_ratio).then_some(ratio)
}

/// Least-squares line `y = a + b x` through the points; `None` with fewer than two
/// distinct x values. Returns `(a, b)`. (Ordinary least squares, closed form.)
pub fn fit_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

/// Summary of a set of latency samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub stddev: Option<f64>,
    pub median_ci: Option<MedianCi>,
    pub outliers: Outliers,
}

impl Summary {
    /// Summarise samples (`None` when empty); the median interval is at `confidence`.
    pub fn of(samples: &[f64], confidence: f64) -> Option<Summary> {
        let s = sorted(samples);
        Some(Summary {
            n: s.len(),
            min: *s.first()?,
            mean: mean(&s)?,
            p50: quantile_sorted(&s, 0.5)?,
            p90: quantile_sorted(&s, 0.9)?,
            p95: quantile_sorted(&s, 0.95)?,
            p99: quantile_sorted(&s, 0.99)?,
            max: *s.last()?,
            stddev: stddev(&s),
            median_ci: median_ci(&s, confidence),
            outliers: classify_outliers(&s),
        })
    }

    /// Relative half-width of the median interval, when it exists.
    pub fn ci_rel(&self) -> Option<f64> {
        self.median_ci.and_then(|ci| ci.rel_half_width(self.p50))
    }
}

/// A point estimate with a two-sided confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub point: f64,
    pub low: f64,
    pub high: f64,
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

/// Cumulative distribution `P(B ≤ i)` for `i = 0..=n` of `B ~ Binomial(n, q)`, the terms
/// summed in log space so large `n` does not underflow.
fn binomial_cdf(n: usize, q: f64) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n + 1);
    if q <= 0.0 || q >= 1.0 {
        // Degenerate: B is always 0 (q = 0) or always n (q = 1).
        for i in 0..=n {
            cdf.push(if q <= 0.0 || i == n { 1.0 } else { 0.0 });
        }
        return cdf;
    }
    let (lq, lp) = (q.ln(), (1.0 - q).ln());
    // ln P(B = 0) = n ln(1 - q); then ln P(B = i + 1) = ln P(B = i) + ln((n - i)/(i + 1)) + ln(q/(1 - q)).
    let mut ln_term = n as f64 * lp;
    let mut acc = 0.0f64;
    for i in 0..=n {
        acc += ln_term.exp();
        cdf.push(acc.min(1.0));
        if i < n {
            ln_term += ((n - i) as f64).ln() - ((i + 1) as f64).ln() + lq - lp;
        }
    }
    cdf
}

/// The 1-based order-statistic ranks `(j, k)` of the distribution-free, equal-tailed
/// interval `[x(j), x(k)]` of the `q` quantile over `n` samples, and its exact coverage
/// `P(j ≤ B ≤ k - 1)`, `B ~ Binomial(n, q)` (Conover 1999, §3.2). `j` is the largest rank
/// with `P(B ≤ j - 1) ≤ α/2`, `k` the smallest with `P(B ≥ k) ≤ α/2`. `None` when a
/// tail cannot be kept under `α/2` inside the sample (too few samples for that
/// confidence: n < 6 for the median at 95%, n < 72 for p95), rather than pretending.
pub fn quantile_ci_ranks(n: usize, q: f64, confidence: f64) -> Option<(usize, usize, f64)> {
    if n == 0 || !(0.0..1.0).contains(&confidence) {
        return None;
    }
    let tail = (1.0 - confidence) / 2.0;
    let cdf = binomial_cdf(n, q.clamp(0.0, 1.0));
    // Tolerance for summation error, so symmetric cases stay symmetric.
    const EPS: f64 = 1e-12;
    // j: largest with cdf[j - 1] <= tail, j >= 1.
    let j = (1..=n).take_while(|&j| cdf[j - 1] <= tail + EPS).last()?;
    // k: smallest with 1 - cdf[k - 1] <= tail, k <= n.
    let k = (1..=n).find(|&k| 1.0 - cdf[k - 1] <= tail + EPS)?;
    if k < j {
        return None;
    }
    let coverage = cdf[k - 1] - cdf[j - 1];
    Some((j, k, coverage))
}

/// Distribution-free confidence interval of the `q` quantile from **sorted**, finite
/// samples (see [`quantile_ci_ranks`]); the point is [`quantile_sorted`]. `None` when
/// there are too few samples for the requested confidence.
pub fn quantile_ci(sorted: &[f64], q: f64, confidence: f64) -> Option<Interval> {
    let point = quantile_sorted(sorted, q)?;
    let (j, k, _) = quantile_ci_ranks(sorted.len(), q, confidence)?;
    Some(Interval {
        point,
        low: sorted[j - 1],
        high: sorted[k - 1],
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
/// of the hierarchical bootstrap to multi-level data in neuroscience", 2020.) The
/// percentiles are read at [`expanded_alpha`] of the number of rounds: with the 4 rounds a
/// gate makes, the plain percentiles cover far less than `confidence`.
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
    let mut picks = Vec::with_capacity(rounds.len());
    for _ in 0..resamples {
        pick_rounds(rounds.len(), &mut rng, &mut picks);
        draw_within(&picks, |i| &rounds[i].0, &mut rng, &mut pb);
        draw_within(&picks, |i| &rounds[i].1, &mut rng, &mut pc);
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
    let alpha = expanded_alpha(rounds.len(), confidence);
    Some(Interval {
        point: c / b,
        low: quantile_sorted(&ratios, alpha / 2.0)?,
        high: quantile_sorted(&ratios, 1.0 - alpha / 2.0)?,
    })
}

/// The two-sided error rate at which to read a bootstrap's percentiles when what varies is
/// `n` independent units (rounds): Hesterberg's *expanded percentile interval* (T.
/// Hesterberg, "What Teachers Should Know About the Bootstrap", The American Statistician
/// 69(4), 2015). A percentile interval of `n` units is too narrow for small `n`, as if the
/// spread between units were known (a normal quantile, not Student's t) and estimated with
/// divisor `n`, not `n - 1`. Reading it at `alpha' = 2 Φ(-sqrt(n / (n - 1)) t(n-1, 1 -
/// alpha / 2))` corrects both: for 4 rounds at 95% that is the 0.012th and 99.988th
/// percentiles, near the resamples' extremes. Measured on this project's host over 100
/// gates of a model against its own copy (4 rounds of 50 ms), "no change" fell outside
/// the plain 95% interval in 8 and outside the expanded one in 5 (BENCHMARKS.md, "Gate
/// reliability"). `n < 2` returns the plain `1 - confidence`.
pub fn expanded_alpha(n: usize, confidence: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
    let alpha = 1.0 - confidence;
    if n < 2 || !(0.0..1.0).contains(&alpha) || alpha == 0.0 {
        return alpha;
    }
    let df = (n - 1) as f64;
    let (Ok(t), Ok(z)) = (StudentsT::new(0.0, 1.0, df), Normal::new(0.0, 1.0)) else {
        return alpha;
    };
    let widened = (n as f64 / df).sqrt() * t.inverse_cdf(1.0 - alpha / 2.0);
    2.0 * z.cdf(-widened)
}

/// Seeded two-level (hierarchical) bootstrap interval of one quantile of measurements made
/// in *rounds* (independent processes): each resample draws rounds with replacement, then
/// samples with replacement inside each chosen round, and takes the quantile of the pooled
/// draw. The point is the quantile of all samples pooled. Drawing whole rounds carries the
/// between-process spread into the interval: two rounds at 12 ms and one at 26 ms give an
/// interval that reaches both, where the pooled samples' order-statistic interval would
/// claim ±1% (the same method as [`bootstrap_ratio_rounds`], for one side; Davison &
/// Hinkley 1997, §3.8). `None` when fewer than 2 rounds have samples.
pub fn bootstrap_quantile_rounds(
    rounds: &[Vec<f64>],
    q: f64,
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    let rounds: Vec<Vec<f64>> = rounds
        .iter()
        .map(|r| sorted_finite(r))
        .filter(|r| !r.is_empty())
        .collect();
    if rounds.len() < 2 || resamples == 0 {
        return None;
    }
    let mut pooled: Vec<f64> = rounds.iter().flatten().copied().collect();
    let point = quantile_select(&mut pooled, q)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut estimates = Vec::with_capacity(resamples);
    let (mut draw, mut picks) = (Vec::new(), Vec::with_capacity(rounds.len()));
    for _ in 0..resamples {
        pick_rounds(rounds.len(), &mut rng, &mut picks);
        draw_within(&picks, |i| &rounds[i], &mut rng, &mut draw);
        if let Some(x) = quantile_select(&mut draw, q) {
            estimates.push(x);
        }
    }
    estimates.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Some(Interval {
        point,
        low: quantile_sorted(&estimates, alpha / 2.0)?,
        high: quantile_sorted(&estimates, 1.0 - alpha / 2.0)?,
    })
}

/// Draw `n` round indices with replacement into `picks`.
fn pick_rounds(n: usize, rng: &mut StdRng, picks: &mut Vec<usize>) {
    picks.clear();
    picks.extend((0..n).map(|_| rng.random_range(0..n)));
}

/// Fill `out` with, for each picked round, as many samples drawn with replacement from
/// that round as it holds.
fn draw_within<'a>(
    picks: &[usize],
    round: impl Fn(usize) -> &'a [f64],
    rng: &mut StdRng,
    out: &mut Vec<f64>,
) {
    out.clear();
    for &i in picks {
        let r = round(i);
        out.extend((0..r.len()).map(|_| r[rng.random_range(0..r.len())]));
    }
}

/// One round's median and its own (within-process) confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundMedian {
    pub p50: f64,
    pub low: f64,
    pub high: f64,
}

/// Group rounds into *modes*: rounds sorted by median, a new mode starting where the next
/// round's interval lies wholly above the previous round's (they disagree beyond their
/// own uncertainty) **and** its median is at least `min_gap_rel` higher (a gap a user would
/// care about, not a 1% drift between processes). Single linkage: rounds that drift up in
/// small steps stay one mode. Returns the modes fastest first, each the indices of its
/// rounds (in input order); one mode (or none, for no rounds) means the rounds agree.
pub fn modes(rounds: &[RoundMedian], min_gap_rel: f64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..rounds.len())
        .filter(|&i| rounds[i].p50.is_finite())
        .collect();
    order.sort_by(|&a, &b| rounds[a].p50.total_cmp(&rounds[b].p50));
    let mut out: Vec<Vec<usize>> = Vec::new();
    for w in 0..order.len() {
        let i = order[w];
        let split = w > 0 && {
            let prev = &rounds[order[w - 1]];
            let cur = &rounds[i];
            cur.low > prev.high && cur.p50 >= prev.p50 * (1.0 + min_gap_rel)
        };
        match out.last_mut() {
            Some(m) if !split => m.push(i),
            _ => out.push(vec![i]),
        }
    }
    for m in out.iter_mut() {
        m.sort_unstable();
    }
    out
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

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn rounds_bootstrap_covers_the_between_round_spread() {
        // Two processes at ~12 ms, one at ~26 ms, each tight within itself.
        let round = |c: f64| {
            (0..60)
                .map(|i| c * (1.0 + 0.001 * (i % 7) as f64))
                .collect()
        };
        let rounds: Vec<Vec<f64>> = vec![round(0.012), round(0.0125), round(0.026)];
        let i = bootstrap_quantile_rounds(&rounds, 0.5, 0.95, 2000, 7).unwrap();
        assert!(i.low < 0.0126 && i.high > 0.025, "{i:?}");
        // The pooled samples alone claim a narrow interval.
        let pooled: Vec<f64> = rounds.iter().flatten().copied().collect();
        let flat = median_ci(&pooled, 0.95).unwrap();
        assert!(flat.high - flat.low < 0.001, "{flat:?}");
        // Rounds that agree give a narrow interval around the pooled median.
        let same = vec![round(0.012), round(0.012), round(0.012)];
        let j = bootstrap_quantile_rounds(&same, 0.5, 0.95, 2000, 7).unwrap();
        assert!(j.high / j.low < 1.01, "{j:?}");
        assert!(bootstrap_quantile_rounds(&same[..1], 0.5, 0.95, 100, 7).is_none());
    }

    #[test]
    fn modes_split_only_on_disjoint_intervals_and_a_material_gap() {
        let r = |p50: f64| RoundMedian {
            p50,
            low: p50 * 0.99,
            high: p50 * 1.01,
        };
        // The six runs: 12.4, 12.5, 12.1, 13.3, 25.6, 25.6 ms.
        let rounds = [r(12.4), r(12.5), r(12.1), r(13.3), r(25.6), r(25.6)];
        assert_eq!(modes(&rounds, 0.15), vec![vec![0, 1, 2, 3], vec![4, 5]]);
        // 12.1 vs 13.3 disagree beyond ±1% but by less than 15%: one mode.
        assert_eq!(modes(&[r(12.1), r(13.3)], 0.15).len(), 1);
        // Wide intervals that overlap: one mode even at 2x.
        let wide = |p50: f64| RoundMedian {
            p50,
            low: p50 * 0.5,
            high: p50 * 1.5,
        };
        assert_eq!(modes(&[wide(10.0), wide(20.0)], 0.15).len(), 1);
        assert!(modes(&[], 0.15).is_empty());
    }

    #[test]
    fn empty_samples_have_no_statistics() {
        assert_eq!(min(&[]), None);
        assert_eq!(max(&[]), None);
        assert_eq!(mean(&[]), None);
        assert_eq!(stddev(&[]), None);
        assert_eq!(median(&[]), None);
        assert_eq!(median_ci(&[], 0.95), None);
        assert_eq!(classify_outliers(&[]), Outliers::default());
        assert!(Summary::of(&[], 0.95).is_none());
        assert_eq!(slow_first_run(1.0, &[], 2.0), None);
    }

    #[test]
    fn one_sample_has_no_stddev_and_no_ci() {
        let s = Summary::of(&[0.5], 0.95).unwrap();
        assert_eq!(
            (s.min, s.p50, s.p99, s.max, s.mean),
            (0.5, 0.5, 0.5, 0.5, 0.5)
        );
        assert_eq!(s.stddev, None);
        assert_eq!(s.median_ci, None);
        assert_eq!(s.outliers.total(), 0);
    }

    #[test]
    fn two_samples_interpolate_and_have_stddev() {
        let x = [1.0, 3.0];
        assert!(close(median(&x).unwrap(), 2.0));
        assert!(close(quantile(&x, 0.9).unwrap(), 2.8));
        assert!(close(stddev(&x).unwrap(), 2f64.sqrt()));
        assert_eq!(median_ci(&x, 0.95), None);
    }

    #[test]
    fn all_equal_samples_have_zero_spread_and_no_outliers() {
        let x = [2.0; 50];
        let s = Summary::of(&x, 0.95).unwrap();
        assert_eq!(s.stddev, Some(0.0));
        assert_eq!(s.ci_rel(), Some(0.0));
        assert_eq!(s.outliers.total(), 0);
        assert_eq!(last_windows_stable(&x, 5, 0.0), Some(true));
        assert_eq!(slow_first_run(2.0, &x, 1.2), None);
    }

    #[test]
    fn percentiles_match_numpy_linear_definition() {
        // numpy.percentile([1..10], [50, 90, 95, 99]) = 5.5, 9.1, 9.55, 9.91
        let x: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert!(close(quantile(&x, 0.5).unwrap(), 5.5));
        assert!(close(quantile(&x, 0.9).unwrap(), 9.1));
        assert!(close(quantile(&x, 0.95).unwrap(), 9.55));
        assert!(close(quantile(&x, 0.99).unwrap(), 9.91));
        assert_eq!(quantile(&x, 0.0), Some(1.0));
        assert_eq!(quantile(&x, 1.0), Some(10.0));
    }

    #[test]
    fn median_ci_ranks_match_binomial_tables() {
        // Smallest n with a 95% distribution-free interval is 6: [x(1), x(6)], 96.875%.
        assert_eq!(median_ci_rank(5, 0.95), None);
        let (k, cov) = median_ci_rank(6, 0.95).unwrap();
        assert_eq!(k, 1);
        assert!(close(cov, 1.0 - 2.0 / 64.0));
        // Conover Table A3 / standard tables: n=10 -> k=2 (97.9%), n=20 -> k=6 (95.9%),
        // n=100 -> k=40 (96.5%).
        assert_eq!(median_ci_rank(10, 0.95).unwrap().0, 2);
        assert_eq!(median_ci_rank(20, 0.95).unwrap().0, 6);
        assert_eq!(median_ci_rank(100, 0.95).unwrap().0, 40);
        let (_, cov100) = median_ci_rank(100, 0.95).unwrap();
        assert!((0.95..0.97).contains(&cov100), "{cov100}");
    }

    #[test]
    fn median_ci_rank_is_stable_for_large_n() {
        // Normal approximation: k ≈ n/2 - 1.96 sqrt(n)/2.
        let n = 200_000;
        let (k, cov) = median_ci_rank(n, 0.95).unwrap();
        let approx = n as f64 / 2.0 - 1.96 * (n as f64).sqrt() / 2.0;
        assert!((k as f64 - approx).abs() < 3.0, "k={k} approx={approx}");
        assert!(cov >= 0.95);
    }

    #[test]
    fn median_ci_brackets_the_median_and_narrows_with_more_samples() {
        let small: Vec<f64> = (0..20).map(|i| 1.0 + (i as f64) * 0.01).collect();
        let big: Vec<f64> = (0..2000).map(|i| 1.0 + ((i % 20) as f64) * 0.01).collect();
        let a = median_ci(&small, 0.95).unwrap();
        let b = median_ci(&big, 0.95).unwrap();
        let m = median(&small).unwrap();
        assert!(a.low <= m && m <= a.high);
        assert!(b.high - b.low < a.high - a.low);
        assert!(close(rel_half_width(0.9, 1.1, 1.0).unwrap(), 0.1));
        assert_eq!(rel_half_width(0.0, 1.0, 0.0), None);
    }

    #[test]
    fn outliers_are_split_into_mild_and_severe() {
        // Q1 = 1.0 .. Q3 = 1.0 + small spread; put one mild and one severe on each side.
        let mut x: Vec<f64> = (0..100).map(|i| 10.0 + (i % 10) as f64 * 0.1).collect();
        // Q1 ≈ 10.2, Q3 ≈ 10.7, IQR ≈ 0.5: mild high in (11.45, 12.2], severe > 12.2
        x.push(11.8);
        x.push(20.0);
        x.push(8.9); // mild low: below 9.45, above 8.7
        x.push(1.0); // severe low
        let o = classify_outliers(&x);
        assert_eq!(
            o,
            Outliers {
                low_severe: 1,
                low_mild: 1,
                high_mild: 1,
                high_severe: 1
            }
        );
        assert_eq!((o.mild(), o.severe(), o.total()), (2, 2, 4));
    }

    #[test]
    fn stability_compares_last_three_windows() {
        let mut x = vec![5.0; 10]; // early noise is ignored
        x.extend([1.0; 10]);
        x.extend([1.02; 10]);
        x.extend([0.99; 10]);
        assert_eq!(last_windows_stable(&x, 10, 0.05), Some(true));
        assert_eq!(last_windows_stable(&x, 10, 0.01), Some(false));
        assert_eq!(last_windows_stable(&x[..20], 10, 0.05), None);
        assert_eq!(stability_window_len(8), None);
        assert_eq!(stability_window_len(9), Some(3));
        assert_eq!(stability_window_len(600), Some(100));
    }

    #[test]
    fn slow_first_run_is_flagged_only_when_far_out() {
        let steady: Vec<f64> = (0..30).map(|i| 1.0 + (i % 3) as f64 * 0.01).collect();
        let r = slow_first_run(5.0, &steady, 1.5).unwrap();
        assert!(close(r, 5.0 / 1.01));
        assert_eq!(slow_first_run(1.02, &steady, 1.5), None);
        // beyond the fence but below the ratio floor
        assert_eq!(slow_first_run(1.2, &steady, 1.5), None);
    }

    #[test]
    fn fits_memory_line_by_least_squares() {
        let pts = [(1.0, 110.0), (2.0, 120.0), (4.0, 140.0), (8.0, 180.0)];
        let (a, b) = fit_line(&pts).unwrap();
        assert!(close(a, 100.0) && close(b, 10.0), "{a} {b}");
        assert_eq!(fit_line(&[(1.0, 2.0)]), None);
        assert_eq!(fit_line(&[(1.0, 2.0), (1.0, 3.0)]), None);
    }

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
    fn expanded_alpha_is_small_for_few_rounds_and_tends_to_the_nominal_rate() {
        // 4 rounds at 95%: sqrt(4/3) * t(3, 0.975) = 1.1547 * 3.1824 = 3.675 -> 2.4e-4.
        let a4 = expanded_alpha(4, 0.95);
        assert!((a4 - 2.38e-4).abs() < 0.1e-4, "{a4}");
        let a1000 = expanded_alpha(1000, 0.95);
        assert!((a1000 - 0.05).abs() < 0.001, "{a1000}");
        assert!(expanded_alpha(8, 0.95) < expanded_alpha(16, 0.95));
        assert_eq!(expanded_alpha(1, 0.95), 1.0 - 0.95);
    }

    #[test]
    fn one_disturbed_round_of_four_does_not_exclude_no_change() {
        // A model against its own copy: three rounds agree, and in one a neighbour slowed
        // the candidate's process by 80%. The plain percentile interval of 4 rounds
        // excludes 1 (a false regression); the expanded one must not.
        let rounds: Vec<(Vec<f64>, Vec<f64>)> = (0..4)
            .map(|r| {
                let b: Vec<f64> = (0..60).map(|k| 1.0 + (k % 9) as f64 * 0.01).collect();
                let slow = if r == 2 { 1.8 } else { 1.0 };
                let c = b.iter().map(|x| x * slow).collect();
                (b, c)
            })
            .collect();
        let i = bootstrap_ratio_rounds(&rounds, 0.5, 0.95, 2000, 11).unwrap();
        assert!(i.low <= 1.01, "{i:?}");
        assert!(i.high > 1.3, "{i:?}");
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

    #[test]
    fn quantile_ci_ranks_of_degenerate_sizes() {
        for n in 0..=2 {
            assert_eq!(quantile_ci_ranks(n, 0.5, 0.95), None, "n = {n}");
            assert_eq!(quantile_ci(&vec![1.0; n], 0.5, 0.95), None, "n = {n}");
        }
        // The median needs 6 samples at 95%: [x(1), x(6)] covers 1 - 2/64 = 96.9%.
        assert_eq!(quantile_ci_ranks(5, 0.5, 0.95), None);
        let (j, k, cov) = quantile_ci_ranks(6, 0.5, 0.95).unwrap();
        assert_eq!((j, k), (1, 6));
        assert!(close(cov, 1.0 - 2.0 / 64.0), "{cov}");
        // p95 needs 72: the upper tail P(B = n) = 0.95^n must fall under 2.5%.
        assert_eq!(quantile_ci_ranks(71, 0.95, 0.95), None);
        assert_eq!(quantile_ci_ranks(72, 0.95, 0.95).map(|r| r.1), Some(72));
        // Confidence outside [0, 1) is refused, not clamped.
        assert_eq!(quantile_ci_ranks(100, 0.5, 1.0), None);
    }

    #[test]
    fn one_interval_for_the_median_whichever_door() {
        // The profile's median CI and the gate's quantile CI at q = 1/2 are one computation.
        for n in [6usize, 7, 20, 101, 1000] {
            let s: Vec<f64> = (0..n).map(|i| (i * 7 % n) as f64).collect();
            let m = median_ci(&s, 0.95).unwrap();
            let q = quantile_ci(&sorted(&s), 0.5, 0.95).unwrap();
            assert_eq!((m.low, m.high), (q.low, q.high), "n = {n}");
        }
        let equal = vec![3.0; 50];
        let m = median_ci(&equal, 0.95).unwrap();
        assert_eq!((m.low, m.high), (3.0, 3.0));
        let p95 = quantile_ci(&vec![3.0; 100], 0.95, 0.95).unwrap();
        assert_eq!((p95.low, p95.point, p95.high), (3.0, 3.0, 3.0));
    }
}
