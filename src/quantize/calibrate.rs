//! Activation range calibration, streaming and memory bounded.
//!
//! The calibration model exposes every tensor to be quantized as an extra graph output.
//! Samples run one at a time; each output updates a fixed-size collector and is dropped.
//! MinMax needs one pass. Percentile and entropy need histograms over a known range, so
//! they take two passes: the first finds each tensor's min/max, the second fills a
//! 2048-bin histogram over that range (plus one of |x| for entropy). Memory is
//! O(tensors x bins), independent of the number of samples and of tensor sizes. (ORT's
//! Python percentile calibrator keeps every activation of every sample in memory, which is
//! what makes it need hundreds of GB on large models.)

use serde::Serialize;

/// How to turn observed activations into a quantization range.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The observed minimum and maximum.
    MinMax,
    /// Drop the `100 - p` percent most extreme values on each side (p like 99.99).
    Percentile(f64),
    /// The clipping threshold minimizing the KL divergence between the observed
    /// distribution and its quantized version (TensorRT-style entropy calibration).
    Entropy,
}

impl Method {
    /// Parse `minmax`, `percentile` (99.999), `percentile:99.9`, `entropy`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minmax" => Some(Method::MinMax),
            "entropy" => Some(Method::Entropy),
            "percentile" => Some(Method::Percentile(99.999)),
            _ => s
                .strip_prefix("percentile:")
                .and_then(|p| p.parse().ok())
                .filter(|p: &f64| *p > 50.0 && *p <= 100.0)
                .map(Method::Percentile),
        }
    }

    /// Whether the method needs a histogram pass.
    pub fn needs_histogram(self) -> bool {
        !matches!(self, Method::MinMax)
    }
}

/// Bins per histogram.
pub const BINS: usize = 2048;

/// Running statistics for one tensor.
#[derive(Clone, Debug)]
pub struct Collector {
    /// Smallest value seen (pass 1).
    pub min: f32,
    /// Largest value seen (pass 1).
    pub max: f32,
    /// Signed histogram over `[min, max]` (pass 2).
    pub hist: Vec<u64>,
    /// Histogram of |x| over `[0, max(|min|, |max|)]` (pass 2).
    pub abs_hist: Vec<u64>,
    /// Per-channel (axis 1) sums of the values seen (pass 1), for bias correction.
    pub channel_sum: Vec<f64>,
    /// Values summed into each `channel_sum` entry.
    pub channel_count: u64,
    /// Spatial dimensions (axes 2..) of the last tensor seen.
    pub spatial: Vec<usize>,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            hist: Vec::new(),
            abs_hist: Vec::new(),
            channel_sum: Vec::new(),
            channel_count: 0,
            spatial: Vec::new(),
        }
    }
}

impl Collector {
    /// Pass 1: widen the range with `data` (non-finite values ignored).
    pub fn observe_range(&mut self, data: &[f32]) {
        for &x in data {
            if x.is_finite() {
                self.min = self.min.min(x);
                self.max = self.max.max(x);
            }
        }
    }

    /// Pass 1: add `data` (C order, `shape` with channels on axis 1, as conv inputs are)
    /// to the per-channel sums. A tensor whose channel count changes between samples, or
    /// of rank < 2, gets no means.
    pub fn observe_channel_mean(&mut self, shape: &[usize], data: &[f32]) {
        let Some(&channels) = shape.get(1) else {
            return;
        };
        if channels == 0 || data.is_empty() {
            return;
        }
        if self.channel_count > 0 && self.channel_sum.len() != channels {
            self.channel_sum.clear();
            self.channel_count = u64::MAX; // poisoned: inconsistent shapes
            return;
        }
        if self.channel_count == u64::MAX {
            return;
        }
        if self.channel_sum.is_empty() {
            self.channel_sum = vec![0.0; channels];
        }
        self.spatial = shape[2..].to_vec();
        let inner: usize = shape[2..].iter().product();
        for (i, &x) in data.iter().enumerate() {
            if x.is_finite() {
                self.channel_sum[(i / inner.max(1)) % channels] += x as f64;
            }
        }
        self.channel_count += (data.len() / channels) as u64;
    }

    /// Mean of each channel (axis 1) over everything observed, if consistent.
    pub fn channel_means(&self) -> Option<Vec<f32>> {
        if self.channel_count == 0 || self.channel_count == u64::MAX {
            return None;
        }
        let n = self.channel_count as f64;
        Some(self.channel_sum.iter().map(|s| (s / n) as f32).collect())
    }

    /// Whether any finite value was seen.
    pub fn seen(&self) -> bool {
        self.min <= self.max
    }

    /// Pass 2: add `data` to the histograms over the pass-1 range.
    pub fn observe_histogram(&mut self, data: &[f32]) {
        if !self.seen() {
            return;
        }
        if self.hist.is_empty() {
            self.hist = vec![0; BINS];
            self.abs_hist = vec![0; BINS];
        }
        let width = (self.max - self.min).max(f32::MIN_POSITIVE);
        let amax = self.min.abs().max(self.max.abs()).max(f32::MIN_POSITIVE);
        for &x in data {
            if !x.is_finite() {
                continue;
            }
            let b = (((x - self.min) / width) * BINS as f32) as usize;
            self.hist[b.min(BINS - 1)] += 1;
            let a = ((x.abs() / amax) * BINS as f32) as usize;
            self.abs_hist[a.min(BINS - 1)] += 1;
        }
    }

    /// The calibrated `(min, max)` range under `method`.
    pub fn range(&self, method: Method) -> (f32, f32) {
        if !self.seen() {
            return (0.0, 0.0);
        }
        match method {
            Method::MinMax => (self.min, self.max),
            _ if self.hist.is_empty() => (self.min, self.max),
            Method::Percentile(p) => {
                let (lo_b, hi_b) = percentile_bins(&self.hist, p);
                let w = (self.max - self.min) / BINS as f32;
                let lo = self.min + lo_b as f32 * w;
                let hi = self.min + (hi_b + 1) as f32 * w;
                (lo.max(self.min), hi.min(self.max))
            }
            Method::Entropy => {
                let amax = self.min.abs().max(self.max.abs());
                let t = entropy_threshold_bins(&self.abs_hist, 128) as f32 / BINS as f32 * amax;
                (self.min.max(-t), self.max.min(t))
            }
        }
    }
}

/// First and last bin index that keep `p` percent of the mass, trimming `(100-p)/2` from
/// each tail.
pub fn percentile_bins(hist: &[u64], p: f64) -> (usize, usize) {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return (0, hist.len().saturating_sub(1));
    }
    let tail = ((100.0 - p) / 200.0 * total as f64).floor() as u64;
    let mut acc = 0u64;
    let mut lo = 0;
    for (i, &c) in hist.iter().enumerate() {
        acc += c;
        if acc > tail {
            lo = i;
            break;
        }
    }
    acc = 0;
    let mut hi = hist.len() - 1;
    for (i, &c) in hist.iter().enumerate().rev() {
        acc += c;
        if acc > tail {
            hi = i;
            break;
        }
    }
    (lo, hi.max(lo))
}

/// Number of bins (from 0) to keep for |x|: the threshold minimizing KL(P || Q), where P is
/// the histogram clipped at the threshold (outliers folded into the last kept bin) and Q
/// is P requantized to `levels` levels. Method: S. Migacz, "8-bit Inference with TensorRT"
/// (GTC 2017).
pub fn entropy_threshold_bins(hist: &[u64], levels: usize) -> usize {
    let n = hist.len();
    if n <= levels || hist.iter().all(|&c| c == 0) {
        return n;
    }
    let mut best = (f64::INFINITY, n);
    // Step of 8 bins keeps this at ~240 candidates per tensor; finer steps change the
    // threshold by < 0.4% of the range.
    let mut i = levels;
    while i <= n {
        let mut p: Vec<f64> = hist[..i].iter().map(|&c| c as f64).collect();
        let outliers: u64 = hist[i..].iter().sum();
        p[i - 1] += outliers as f64;
        // Q: merge the i bins into `levels` groups, spread each group's mass evenly over
        // the group's non-empty bins.
        let mut q = vec![0.0f64; i];
        for g in 0..levels {
            let start = g * i / levels;
            let end = ((g + 1) * i / levels).max(start + 1);
            let sum: f64 = hist[start..end].iter().map(|&c| c as f64).sum();
            let nz = hist[start..end].iter().filter(|&&c| c > 0).count();
            if nz > 0 {
                for j in start..end {
                    if hist[j] > 0 {
                        q[j] = sum / nz as f64;
                    }
                }
            }
        }
        let ps: f64 = p.iter().sum();
        let qs: f64 = q.iter().sum();
        let mut kl = 0.0;
        for j in 0..i {
            if p[j] > 0.0 {
                let pj = p[j] / ps;
                // A bin with mass in P but none in Q (only the outlier bin can be one):
                // smooth instead of an infinite divergence.
                let qj = if q[j] > 0.0 { q[j] / qs } else { 1e-12 };
                kl += pj * (pj / qj).ln();
            }
        }
        if kl < best.0 {
            best = (kl, i);
        }
        i += 8;
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_tracks_extremes_and_ignores_nan() {
        let mut c = Collector::default();
        c.observe_range(&[1.0, f32::NAN, -2.0]);
        c.observe_range(&[5.0]);
        assert_eq!(c.range(Method::MinMax), (-2.0, 5.0));
    }

    #[test]
    fn unseen_tensor_has_zero_range() {
        assert_eq!(Collector::default().range(Method::Entropy), (0.0, 0.0));
    }

    #[test]
    fn percentile_clips_a_single_outlier() {
        let mut c = Collector::default();
        let mut data: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        data.push(1000.0);
        c.observe_range(&data);
        c.observe_histogram(&data);
        let (lo, hi) = c.range(Method::Percentile(99.99));
        assert!(lo >= 0.0 && hi < 2.0, "{lo} {hi}");
    }

    #[test]
    fn entropy_keeps_full_range_of_a_uniform_distribution() {
        let hist = vec![100u64; BINS];
        let t = entropy_threshold_bins(&hist, 128);
        assert!(t >= BINS - 8, "{t}");
    }

    #[test]
    fn entropy_clips_a_long_sparse_tail() {
        // A decaying (Laplace-like) bulk in the first 256 bins, one outlier at the far end.
        let mut hist = vec![0u64; BINS];
        for (j, h) in hist.iter_mut().take(256).enumerate() {
            *h = (100_000.0 * (-(j as f64) / 40.0).exp()) as u64 + 1;
        }
        hist[BINS - 1] = 1;
        let t = entropy_threshold_bins(&hist, 128);
        assert!(t < BINS / 2, "{t}");
    }

    #[test]
    fn parses_methods() {
        assert_eq!(Method::parse("minmax"), Some(Method::MinMax));
        assert_eq!(
            Method::parse("percentile:99.9"),
            Some(Method::Percentile(99.9))
        );
        assert_eq!(Method::parse("percentile:10"), None);
        assert_eq!(Method::parse("kl"), None);
    }
}
