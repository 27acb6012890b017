//! Activation range calibration, streaming and memory bounded.
//!
//! The calibration model exposes every tensor to be quantized as an extra graph output.
//! Samples run one at a time, in one pass; each output updates a fixed-size collector and
//! is dropped. MinMax keeps the extremes. Percentile, entropy and MSE also fill a
//! [`Histogram`] whose bins are anchored at 0 and whose width doubles (merging pairs of
//! bins, exactly) when a sample reaches outside it, so no first pass is needed to find the
//! range: the histogram ends with 2048 to 4096 bins over the range the u8 grid covers.
//! Memory is O(tensors x bins), independent of the number of samples and of tensor sizes.
//! (ORT's Python percentile calibrator keeps every activation of every sample in memory,
//! which is what makes it need hundreds of GB on large models. Its histogram collector
//! re-bins on growth too, by interpolation; the power-of-two widths here make it exact.)

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
    /// The u8 range whose quantize-dequantize round trip has the smallest mean squared
    /// error over the observed distribution: clipping error of the tails plus rounding
    /// error inside ([`mse_range`]).
    Mse,
}

impl Method {
    /// Parse `minmax`, `percentile` (99.999), `percentile:99.9`, `entropy`, `mse`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minmax" => Some(Method::MinMax),
            "entropy" => Some(Method::Entropy),
            "mse" => Some(Method::Mse),
            "percentile" => Some(Method::Percentile(99.999)),
            _ => s
                .strip_prefix("percentile:")
                .and_then(|p| p.parse().ok())
                .filter(|p: &f64| *p > 50.0 && *p <= 100.0)
                .map(Method::Percentile),
        }
    }

    /// Whether the method needs a histogram.
    pub fn needs_histogram(self) -> bool {
        !matches!(self, Method::MinMax)
    }
}

/// Fewest bins a histogram spreads the range `[min(lo, 0), max(hi, 0)]` over (it uses up
/// to twice as many).
pub const BINS: usize = 2048;

/// A histogram of the values seen, with bins of a power-of-two `width` anchored at 0 (bin
/// `k` holds `[k width, (k + 1) width)`), holding at most `2 * BINS` bins. It always spans
/// 0, as the u8 grid does. When a sample reaches outside it and the span would exceed
/// `2 * BINS` bins, the width doubles: bins `2j` and `2j + 1` merge into bin `j`, which is
/// exactly the histogram the doubled width would have counted.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    /// Bin width; 0 before anything was seen.
    width: f32,
    /// Index of the bin `counts[0]` holds.
    first: i64,
    /// Counts of bins `first..first + counts.len()`.
    counts: Vec<u64>,
}

/// Most bins a [`Histogram`] holds.
const WINDOW: usize = 2 * BINS;

/// Smallest and largest finite value of `data`, if any.
fn finite_extremes(data: &[f32]) -> Option<(f32, f32)> {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &x in data {
        if x.is_finite() {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    (lo <= hi).then_some((lo, hi))
}

impl Histogram {
    /// Bin width (0 when empty).
    pub fn width(&self) -> f32 {
        self.width
    }

    /// The bins from the first to the last non-empty one, and the lower edge of the first.
    pub fn occupied(&self) -> (&[u64], f64) {
        let a = self.counts.iter().position(|&c| c > 0);
        let b = self.counts.iter().rposition(|&c| c > 0);
        match (a, b) {
            (Some(a), Some(b)) => (
                &self.counts[a..=b],
                (self.first + a as i64) as f64 * self.width as f64,
            ),
            _ => (&[], 0.0),
        }
    }

    /// Counts of |x| in bins of the same width from 0: bin `k >= 0` holds bin `k` and
    /// bin `-k - 1` of the signed histogram.
    pub fn absolute(&self) -> Vec<u64> {
        let last = self.first + self.counts.len() as i64;
        let n = (-self.first).max(last).max(0) as usize;
        let mut abs = vec![0u64; n];
        for (i, &c) in self.counts.iter().enumerate() {
            let k = self.first + i as i64;
            abs[if k >= 0 { k } else { -k - 1 } as usize] += c;
        }
        while abs.last() == Some(&0) {
            abs.pop();
        }
        abs
    }

    /// Make room for values in `[lo, hi]` (finite, `lo <= hi`), doubling the width as
    /// often as needed.
    fn cover(&mut self, lo: f32, hi: f32) {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        if self.counts.is_empty() {
            // The smallest power of two putting the span in at most WINDOW bins (at least
            // 2^-126, so a constant zero tensor still gets a usable width).
            let span = (hi as f64 - lo as f64) / WINDOW as f64;
            let exp = span.log2().ceil().clamp(-126.0, 127.0);
            self.width = (2.0f64).powi(exp as i32) as f32;
            self.first = (lo as f64 / self.width as f64).floor() as i64;
            self.counts = vec![0; 1];
        }
        loop {
            let w = self.width as f64;
            let a = ((lo as f64 / w).floor() as i64).min(self.first);
            let b = ((hi as f64 / w).floor() as i64).max(self.first + self.counts.len() as i64 - 1);
            if b - a < WINDOW as i64 {
                if a < self.first {
                    let mut grown = vec![0u64; (self.first - a) as usize];
                    grown.append(&mut self.counts);
                    self.counts = grown;
                    self.first = a;
                }
                self.counts.resize((b - a + 1) as usize, 0);
                return;
            }
            self.double();
        }
    }

    /// Double the width, merging bin pairs.
    fn double(&mut self) {
        let first = self.first.div_euclid(2);
        let last = (self.first + self.counts.len() as i64 - 1).div_euclid(2);
        let mut merged = vec![0u64; (last - first + 1) as usize];
        for (i, &c) in self.counts.iter().enumerate() {
            merged[((self.first + i as i64).div_euclid(2) - first) as usize] += c;
        }
        self.counts = merged;
        self.first = first;
        self.width *= 2.0;
    }

    /// Count `data` (non-finite values ignored), given its finite extremes.
    fn add(&mut self, data: &[f32], (lo, hi): (f32, f32)) {
        self.cover(lo, hi);
        // x / width is exact (a power of two) and so is subtracting `first` in f64, so
        // truncating the non-negative difference is the bin: floor(x / width) - first.
        let inv = 1.0 / self.width as f64;
        let first = self.first as f64;
        let last = self.counts.len() - 1;
        for &x in data {
            if x.is_finite() {
                let t = (x as f64 * inv - first).max(0.0);
                self.counts[(t as usize).min(last)] += 1;
            }
        }
    }
}

/// Running statistics for one tensor.
#[derive(Clone, Debug)]
pub struct Collector {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
    /// Histogram of the values seen, when the method needs one.
    pub hist: Histogram,
    /// Per-channel (axis 1) sums of the values seen, for bias correction.
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
            hist: Histogram::default(),
            channel_sum: Vec::new(),
            channel_count: 0,
            spatial: Vec::new(),
        }
    }
}

impl Collector {
    /// Widen the range with `data` (non-finite values ignored) and, when `histogram`, add
    /// it to the histogram.
    pub fn observe(&mut self, data: &[f32], histogram: bool) {
        let Some((lo, hi)) = finite_extremes(data) else {
            return;
        };
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        if histogram {
            self.hist.add(data, (lo, hi));
        }
    }

    /// Add `data` (C order, `shape` with channels on axis 1, as conv inputs are)
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

    /// The calibrated `(min, max)` range under `method`, inside the observed one.
    pub fn range(&self, method: Method) -> (f32, f32) {
        if !self.seen() {
            return (0.0, 0.0);
        }
        let (hist, lo_edge) = self.hist.occupied();
        if method == Method::MinMax || hist.is_empty() {
            return (self.min, self.max);
        }
        let w = self.hist.width() as f64;
        let inside = |(lo, hi): (f64, f64)| ((lo as f32).max(self.min), (hi as f32).min(self.max));
        match method {
            Method::MinMax => (self.min, self.max),
            Method::Percentile(p) => {
                let (lo_b, hi_b) = percentile_bins(hist, p);
                inside((lo_edge + lo_b as f64 * w, lo_edge + (hi_b + 1) as f64 * w))
            }
            Method::Entropy => {
                let t = entropy_threshold_bins(&self.hist.absolute(), 128) as f64 * w;
                inside((-t, t))
            }
            Method::Mse => {
                let (lo, hi) = mse_range(
                    hist,
                    lo_edge as f32,
                    (lo_edge + hist.len() as f64 * w) as f32,
                );
                inside((lo as f64, hi as f64))
            }
        }
    }
}

/// Candidate range ends tried per side by [`mse_range`] (every `BINS / MSE_STEPS` bins).
const MSE_STEPS: usize = 256;

/// The `(lo, hi)` minimizing the expected squared error of u8 asymmetric quantization
/// ([`super::math::asymmetric_u8`], so 0 stays on the grid) of the values in `hist`, a
/// histogram over `[min, max]`. Each bin's values sit at its centre. A candidate's error is
/// the clipping error of the values outside the grid, `sum c (x - edge)^2`, plus
/// `step^2 / 12` for every value inside (uniform rounding noise): both in O(1) per
/// candidate from prefix sums of `c`, `c x`, `c x^2`, so the `MSE_STEPS^2` candidates cost
/// no more than one pass over a tensor. The clipping threshold trades the rare large errors
/// of the tails against the resolution every other value gains: on a heavy-tailed
/// activation it clips far inside min/max (Banner et al. 2019, "Post-training 4-bit
/// quantization of convolutional networks for rapid deployment", sec. 3; here the
/// distribution is the observed one instead of a fitted Laplace).
pub fn mse_range(hist: &[u64], min: f32, max: f32) -> (f32, f32) {
    let n = hist.len();
    let total: u64 = hist.iter().sum();
    if n == 0 || total == 0 || max <= min {
        return (min, max);
    }
    let (min, max) = (min as f64, max as f64);
    let w = (max - min) / n as f64;
    // Prefix sums over bins [0, b): count, sum x, sum x^2.
    let mut c0 = vec![0.0f64; n + 1];
    let mut c1 = vec![0.0f64; n + 1];
    let mut c2 = vec![0.0f64; n + 1];
    for (b, &c) in hist.iter().enumerate() {
        let (c, x) = (c as f64, min + (b as f64 + 0.5) * w);
        c0[b + 1] = c0[b] + c;
        c1[b + 1] = c1[b] + c * x;
        c2[b + 1] = c2[b] + c * x * x;
    }
    // Sum of c (x - e)^2 over bins [a, b).
    let clip = |a: usize, b: usize, e: f64| {
        let (k, s1, s2) = (c0[b] - c0[a], c1[b] - c1[a], c2[b] - c2[a]);
        (s2 - 2.0 * e * s1 + e * e * k).max(0.0)
    };
    // The first bin whose centre lies at or above `v`.
    let bin_of = |v: f64| (((v - min) / w - 0.5).ceil().max(0.0) as usize).min(n);
    let error = |lo: f64, hi: f64| {
        let q = super::math::asymmetric_u8(lo as f32, hi as f32);
        let s = q.scale as f64;
        let (g_lo, g_hi) = (-(q.zero_point as f64) * s, (255 - q.zero_point) as f64 * s);
        let (a, b) = (bin_of(g_lo), bin_of(g_hi).max(bin_of(g_lo)));
        clip(0, a, g_lo) + clip(b, n, g_hi) + (c0[b] - c0[a]) * s * s / 12.0
    };
    let step = (n / MSE_STEPS).max(1);
    // Range ends on bin edges: lo from the bottom up to 0, hi from the top down to 0 (a
    // side that never crosses 0 keeps its observed end, as the grid includes 0 anyway).
    let zero_edge = ((-min / w).round().clamp(0.0, n as f64)) as usize;
    let los: Vec<usize> = if min < 0.0 {
        (0..=zero_edge).step_by(step).collect()
    } else {
        vec![0]
    };
    let his: Vec<usize> = if max > 0.0 {
        let mut v: Vec<usize> = (zero_edge.max(1)..=n).rev().step_by(step).collect();
        v.retain(|&j| j > 0);
        v
    } else {
        vec![n]
    };
    let mut best = (error(min, max), min, max);
    for &i in &los {
        for &j in &his {
            let (lo, hi) = (min + i as f64 * w, min + j as f64 * w);
            if hi <= lo {
                continue;
            }
            let e = error(lo, hi);
            if e < best.0 {
                best = (e, lo, hi);
            }
        }
    }
    (best.1 as f32, best.2 as f32)
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

/// How a layer reads its input, i.e. which vectors `x` the second moments `E[x x^T]` of
/// [`Moments`] are taken over.
#[derive(Clone, Debug, PartialEq)]
pub enum PatchSpec {
    /// A 2-D convolution on NCHW input: one im2col patch per output position and group,
    /// `cin_g x kernel[0] x kernel[1]` values in the weight's C order (zero where the
    /// kernel reads padding).
    Conv2d {
        /// Kernel height and width.
        kernel: [usize; 2],
        /// Strides.
        strides: [usize; 2],
        /// Dilations.
        dilations: [usize; 2],
        /// Padding at the start of each spatial axis.
        pads_begin: [usize; 2],
        /// Padding at the end of each spatial axis.
        pads_end: [usize; 2],
        /// Groups.
        groups: usize,
        /// Input channels per group.
        cin_g: usize,
    },
    /// A MatMul: the vectors along the last axis.
    Rows {
        /// Length of the last axis.
        k: usize,
    },
}

impl PatchSpec {
    /// Independent blocks (groups) and the length of each block's vectors.
    pub fn blocks_and_dim(&self) -> (usize, usize) {
        match self {
            PatchSpec::Conv2d {
                kernel,
                groups,
                cin_g,
                ..
            } => (*groups, cin_g * kernel[0] * kernel[1]),
            PatchSpec::Rows { k } => (1, *k),
        }
    }
}

/// Multiply-adds one sample may spend on one layer's [`Moments`]: output positions are
/// subsampled evenly to stay under it (a 3x3 conv on 96 channels at 160x160 would
/// otherwise cost 2 x 10^10 per sample), but never fewer than [`MIN_POSITIONS`].
pub const MOMENT_BUDGET: usize = 1 << 23;
/// Fewest output positions per sample [`Moments`] looks at.
pub const MIN_POSITIONS: usize = 64;

/// Running uncentred second moments `sum x x^T` of the patches a layer reads, per group,
/// for error-compensating weight rounding ([`super::math::gptq_round_i8`]). Memory is
/// `groups x dim^2` values, independent of the samples.
#[derive(Clone, Debug)]
pub struct Moments {
    /// Patch geometry.
    pub spec: PatchSpec,
    /// Lower triangles (row-major full matrices, upper half unused), one per block.
    pub sum: Vec<f64>,
    /// Vectors summed (per block).
    pub count: u64,
    /// Set when a tensor did not fit the spec: no moments then.
    pub poisoned: bool,
}

impl Moments {
    /// Empty moments for `spec`.
    pub fn new(spec: PatchSpec) -> Self {
        let (b, d) = spec.blocks_and_dim();
        Moments {
            spec,
            sum: vec![0.0; b * d * d],
            count: 0,
            poisoned: false,
        }
    }

    /// Add the patches of one input tensor (C order, `shape`).
    pub fn observe(&mut self, shape: &[usize], data: &[f32]) {
        if self.poisoned || data.len() != shape.iter().product::<usize>() {
            self.poisoned = true;
            return;
        }
        let (blocks, dim) = self.spec.blocks_and_dim();
        let per_position = (blocks * dim * dim / 2).max(1);
        let max_positions = (MOMENT_BUDGET / per_position).max(MIN_POSITIONS);
        match self.spec.clone() {
            PatchSpec::Rows { k } => {
                if shape.last() != Some(&k) || k == 0 {
                    self.poisoned = true;
                    return;
                }
                let rows = data.len() / k;
                let step = rows.div_ceil(max_positions).max(1);
                let mut x = Vec::with_capacity(rows.div_ceil(step) * k);
                for r in (0..rows).step_by(step) {
                    x.extend(data[r * k..(r + 1) * k].iter().map(|&d| d as f64));
                }
                self.count += (x.len() / k) as u64;
                accumulate(&mut self.sum[..dim * dim], &x, dim);
            }
            PatchSpec::Conv2d {
                kernel,
                strides,
                dilations,
                pads_begin,
                pads_end,
                groups,
                cin_g,
            } => {
                let [n, c, h, w] = match shape {
                    &[n, c, h, w] => [n, c, h, w],
                    _ => {
                        self.poisoned = true;
                        return;
                    }
                };
                if c != groups * cin_g {
                    self.poisoned = true;
                    return;
                }
                let out = |size: usize, a: usize| -> usize {
                    let span = dilations[a] * (kernel[a] - 1) + 1;
                    let padded = size + pads_begin[a] + pads_end[a];
                    if padded < span {
                        0
                    } else {
                        (padded - span) / strides[a].max(1) + 1
                    }
                };
                let (oh, ow) = (out(h, 0), out(w, 1));
                let total = n * oh * ow;
                if total == 0 {
                    return;
                }
                let step = total.div_ceil(max_positions).max(1);
                let [kh, kw] = kernel;
                let positions: Vec<usize> = (0..total).step_by(step).collect();
                // One block's patches at every sampled position, one row each.
                let mut x = vec![0.0f64; positions.len() * dim];
                for g in 0..groups {
                    for (row, &p) in x.chunks_exact_mut(dim).zip(&positions) {
                        let (b, oy, ox) = (p / (oh * ow), (p / ow) % oh, p % ow);
                        for ci in 0..cin_g {
                            let plane = &data[((b * c) + g * cin_g + ci) * h * w..][..h * w];
                            for ky in 0..kh {
                                let y = (oy * strides[0] + ky * dilations[0]) as isize
                                    - pads_begin[0] as isize;
                                for kx in 0..kw {
                                    let xx = (ox * strides[1] + kx * dilations[1]) as isize
                                        - pads_begin[1] as isize;
                                    let inside = (0..h as isize).contains(&y)
                                        && (0..w as isize).contains(&xx);
                                    row[(ci * kh + ky) * kw + kx] = if inside {
                                        plane[y as usize * w + xx as usize] as f64
                                    } else {
                                        0.0
                                    };
                                }
                            }
                        }
                    }
                    accumulate(&mut self.sum[g * dim * dim..(g + 1) * dim * dim], &x, dim);
                }
                self.count += positions.len() as u64;
            }
        }
    }

    /// `E[x x^T]` of block `b` (full symmetric, row-major), if anything was observed.
    pub fn second_moment(&self, b: usize) -> Option<Vec<f64>> {
        let (blocks, dim) = self.spec.blocks_and_dim();
        if self.poisoned || self.count == 0 || b >= blocks {
            return None;
        }
        let src = &self.sum[b * dim * dim..(b + 1) * dim * dim];
        let n = self.count as f64;
        let mut m = vec![0.0; dim * dim];
        for i in 0..dim {
            for j in 0..=i {
                let v = src[i * dim + j] / n;
                m[i * dim + j] = v;
                m[j * dim + i] = v;
            }
        }
        Some(m)
    }
}

/// Patch length from which [`accumulate`] multiplies matrices instead of adding rank-1
/// updates: a `dim x dim` sum stops fitting in cache around here, and a blocked product
/// streams it once per call instead of once per row.
const GEMM_MIN_DIM: usize = 32;

/// `sum += X^T X` for the rows `x` (row-major, `dim` columns), on the lower triangle at
/// least (the upper one is filled too when multiplied as matrices, and never read).
fn accumulate(sum: &mut [f64], x: &[f64], dim: usize) {
    if dim >= GEMM_MIN_DIM {
        let rows = x.len() / dim;
        let x = ndarray::ArrayView2::from_shape((rows, dim), &x[..rows * dim]).expect("rows x dim");
        let mut s = ndarray::ArrayViewMut2::from_shape((dim, dim), sum).expect("dim x dim");
        ndarray::linalg::general_mat_mul(1.0, &x.t(), &x, 1.0, &mut s);
        return;
    }
    // Rank-1 updates, skipping zeros (post-ReLU inputs are sparse).
    for v in x.chunks_exact(dim) {
        for (i, &vi) in v.iter().enumerate() {
            if vi == 0.0 {
                continue;
            }
            let row = &mut sum[i * dim..i * dim + i + 1];
            for (s, &vj) in row.iter_mut().zip(&v[..=i]) {
                *s += vi * vj;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_tracks_extremes_and_ignores_nan() {
        let mut c = Collector::default();
        c.observe(&[1.0, f32::NAN, -2.0], false);
        c.observe(&[5.0], false);
        assert_eq!(c.range(Method::MinMax), (-2.0, 5.0));
    }

    /// The histogram `data` gives when its width is `width` and it spans `[first, last]`.
    fn counted(data: &[f32], width: f32, first: i64, last: i64) -> Vec<u64> {
        let mut want = vec![0u64; (last - first + 1) as usize];
        for &x in data {
            want[((x / width).floor() as i64 - first) as usize] += 1;
        }
        want
    }

    #[test]
    fn histogram_growth_merges_bins_into_exactly_the_wider_histogram() {
        // First sample in [-1, 1]; later ones reach 37 and -300: the width doubles several
        // times, and the merged counts equal counting everything at the final width.
        let samples: Vec<Vec<f32>> = vec![
            (0..5000).map(|i| (i as f32 / 2500.0) - 1.0).collect(),
            (0..3000).map(|i| i as f32 * 0.0123).collect(),
            vec![-300.0, 0.0, 5.5, f32::NAN, f32::INFINITY],
        ];
        let mut c = Collector::default();
        for s in &samples {
            c.observe(s, true);
        }
        let h = &c.hist;
        let all: Vec<f32> = samples
            .concat()
            .into_iter()
            .filter(|x| x.is_finite())
            .collect();
        let last = h.first + h.counts.len() as i64 - 1;
        assert!(
            h.counts == counted(&all, h.width, h.first, last),
            "counts differ"
        );
        assert!(h.counts.len() <= WINDOW, "{}", h.counts.len());
        // At least BINS bins over the span the u8 grid covers.
        assert!((c.max - c.min) / h.width >= BINS as f32, "{}", h.width);
        assert_eq!((c.min, c.max), (-300.0, 36.8877));
        assert_eq!(h.counts.iter().sum::<u64>(), all.len() as u64);
    }

    #[test]
    fn histogram_always_spans_zero_and_folds_to_absolute_values() {
        let mut h = Histogram::default();
        let data = [3.0f32, 3.5, 4.0];
        h.add(&data, (3.0, 4.0));
        assert!(h.first <= 0, "0 is inside: {}", h.first);
        let (occ, lo) = h.occupied();
        assert_eq!(occ.iter().sum::<u64>(), 3);
        assert!((lo - 3.0).abs() <= h.width as f64, "{lo}");
        let mut h = Histogram::default();
        h.add(&[-1.0, -0.3, 0.3, 0.5], (-1.0, 0.5));
        let w = h.width;
        let abs = h.absolute();
        assert_eq!(abs.iter().sum::<u64>(), 4);
        // |-0.3| and 0.3 land in the same |x| bin.
        assert_eq!(abs[(0.3 / w) as usize], 2);
        // -1.0 sits on the lower edge of its bin, which folds to |x| bin 1 / w - 1.
        assert_eq!(abs.len(), (1.0 / w) as usize);
    }

    #[test]
    fn a_constant_tensor_gets_a_usable_histogram() {
        let mut c = Collector::default();
        c.observe(&[0.0; 64], true);
        c.observe(&[0.0; 64], true);
        assert!(c.hist.width() > 0.0);
        assert_eq!(c.range(Method::Mse), (0.0, 0.0));
        assert_eq!(c.range(Method::Entropy), (0.0, 0.0));
        assert_eq!(c.range(Method::Percentile(99.9)), (0.0, 0.0));
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
        c.observe(&data, true);
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

    /// Mean squared error of the u8 quantize-dequantize round trip of `data` in `range`.
    fn roundtrip_mse(data: &[f32], (lo, hi): (f32, f32)) -> f64 {
        let q = crate::quantize::math::asymmetric_u8(lo, hi);
        data.iter()
            .map(|&x| {
                let v = crate::quantize::math::quantize(x, q, 0, 255);
                let d = (v - q.zero_point) as f64 * q.scale as f64 - x as f64;
                d * d
            })
            .sum::<f64>()
            / data.len() as f64
    }

    /// A deterministic heavy-tailed sample: a Laplace bulk (scale 1) and one value in 500 000
    /// at +-60, five times the bulk's own extremes. (Clipping a lone outlier pays in u8 only
    /// when it is that rare: its squared error is spread over the elements that gain
    /// resolution, `range^2 / 780 000` each.)
    fn heavy_tailed(n: usize) -> Vec<f32> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|i| {
                let u = uniform() - 0.5;
                let x = -u.signum() * (1.0 - 2.0 * u.abs()).ln();
                if i % 500_000 == 0 {
                    (60.0 * if i % 1_000_000 == 0 { 1.0 } else { -1.0 }) as f32
                } else {
                    x as f32
                }
            })
            .collect()
    }

    #[test]
    fn mse_range_beats_minmax_on_a_heavy_tailed_activation() {
        let data = heavy_tailed(2_000_000);
        let mut c = Collector::default();
        c.observe(&data, true);
        let (mm, mse) = (c.range(Method::MinMax), c.range(Method::Mse));
        assert!(
            mse.1 < mm.1 / 2.0 && mse.0 > mm.0 / 2.0,
            "{mse:?} inside {mm:?}"
        );
        let (e_mm, e_mse) = (roundtrip_mse(&data, mm), roundtrip_mse(&data, mse));
        assert!(e_mse < 0.5 * e_mm, "mse {e_mse} vs minmax {e_mm}");
        // And no worse than the percentile method's default on the same data.
        let e_pct = roundtrip_mse(&data, c.range(Method::Percentile(99.999)));
        assert!(e_mse <= e_pct * 1.02, "mse {e_mse} vs percentile {e_pct}");
    }

    #[test]
    fn mse_range_keeps_a_uniform_distribution_whole() {
        // Nothing to gain from clipping values that are all equally likely.
        let data: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 100.0).collect();
        let mut c = Collector::default();
        c.observe(&data, true);
        let (lo, hi) = c.range(Method::Mse);
        assert_eq!(lo, 0.0);
        assert!(hi > 9.9 * 0.97, "{hi}");
    }

    #[test]
    fn mse_range_of_degenerate_histograms() {
        assert_eq!(mse_range(&[], 0.0, 1.0), (0.0, 1.0));
        assert_eq!(mse_range(&[0; 8], -1.0, 1.0), (-1.0, 1.0));
        assert_eq!(mse_range(&[5; 8], 2.0, 2.0), (2.0, 2.0));
    }

    #[test]
    fn parses_methods() {
        assert_eq!(Method::parse("mse"), Some(Method::Mse));
        assert_eq!(Method::parse("minmax"), Some(Method::MinMax));
        assert_eq!(
            Method::parse("percentile:99.9"),
            Some(Method::Percentile(99.9))
        );
        assert_eq!(Method::parse("percentile:10"), None);
        assert_eq!(Method::parse("kl"), None);
    }

    #[test]
    fn conv_moments_read_padding_as_zero() {
        // One 1x2 map [1, 2], 1x2 kernel with one column of padding on each side: patches
        // (0, 1), (1, 2), (2, 0).
        let spec = PatchSpec::Conv2d {
            kernel: [1, 2],
            strides: [1, 1],
            dilations: [1, 1],
            pads_begin: [0, 1],
            pads_end: [0, 1],
            groups: 1,
            cin_g: 1,
        };
        let mut m = Moments::new(spec);
        m.observe(&[1, 1, 1, 2], &[1.0, 2.0]);
        assert_eq!(m.count, 3);
        let h = m.second_moment(0).unwrap();
        // E[x0^2] = (0 + 1 + 4)/3, E[x0 x1] = (0 + 2 + 0)/3, E[x1^2] = (1 + 4 + 0)/3.
        let want = [5.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 5.0 / 3.0];
        for (a, b) in h.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{h:?}");
        }
    }

    #[test]
    fn depthwise_moments_keep_channels_apart() {
        let spec = PatchSpec::Conv2d {
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pads_begin: [0, 0],
            pads_end: [0, 0],
            groups: 2,
            cin_g: 1,
        };
        let mut m = Moments::new(spec);
        m.observe(&[1, 2, 1, 2], &[1.0, 3.0, -2.0, 2.0]);
        assert_eq!(m.second_moment(0).unwrap(), vec![5.0]);
        assert_eq!(m.second_moment(1).unwrap(), vec![4.0]);
        assert!(m.second_moment(2).is_none());
    }

    #[test]
    fn long_patches_are_multiplied_as_matrices_to_the_same_moments() {
        // 40-long rows take the matrix-product path; compare with the sum of outer products.
        let (k, rows) = (40, 300);
        let data: Vec<f32> = (0..k * rows)
            .map(|i| ((i * 7919) % 113) as f32 / 50.0 - 1.0)
            .collect();
        let mut m = Moments::new(PatchSpec::Rows { k });
        m.observe(&[rows, k], &data);
        assert_eq!(m.count, rows as u64);
        let got = m.second_moment(0).unwrap();
        for i in 0..k {
            for j in 0..k {
                let want: f64 = (0..rows)
                    .map(|r| data[r * k + i] as f64 * data[r * k + j] as f64)
                    .sum::<f64>()
                    / rows as f64;
                assert!((got[i * k + j] - want).abs() < 1e-9, "{i} {j}");
            }
        }
    }

    #[test]
    fn row_moments_and_shape_mismatch() {
        let mut m = Moments::new(PatchSpec::Rows { k: 2 });
        m.observe(&[2, 2], &[1.0, 0.0, 1.0, 2.0]);
        assert_eq!(m.second_moment(0).unwrap(), vec![1.0, 1.0, 1.0, 2.0]);
        m.observe(&[1, 3], &[1.0, 2.0, 3.0]);
        assert!(m.second_moment(0).is_none(), "a mismatched tensor poisons");
    }
}
