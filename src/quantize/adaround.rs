//! Weight rounding learned against the layer's own output error.
//!
//! Rounding each weight to nearest minimises `|W - Q|^2`, but what a layer passes on is
//! `(W - Q) x`. With `h = E[x x^T]` of the layer's calibration inputs (the same moments
//! GPTQ reads, [`super::calibrate::Moments`]), the output error of one row of weights is
//! exactly `e^T h e` with `e = Q - W`, so the rounding can be chosen for the output.
//!
//! Two methods, both on that objective:
//! - [`adaround_rows`]: AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for
//!   Post-Training Quantization"). Each weight rounds down (`floor(w/s)`) plus a learned
//!   `h(V)` in [0, 1], a rectified sigmoid; Adam minimises the output error plus a
//!   regulariser `1 - |2h - 1|^beta` whose `beta` is annealed from 20 to 2, which drives
//!   every `h` to 0 or 1 (eq. 21-24 of the paper; zeta = 1.1, gamma = -0.1, the first 20% of
//!   the iterations without the regulariser). The paper's loss is the layer output MSE over
//!   the calibration batch; `e^T h e` is the same quantity without storing the batch.
//! - [`refine_rows`]: greedy coordinate descent on the same quadratic: one weight at a time
//!   moves by one step when that lowers `e^T h e`. Every accepted move lowers the error, so
//!   the result is never worse than where it started (a local minimum of the discrete
//!   problem: no single-step move helps). It polishes AdaRound's and GPTQ's results.
//!
//! Cost: AdaRound's iterations each cost `rows x cols^2` multiply-adds (`h e` per row), so
//! [`adaround_iterations`] spends a fixed budget per layer; refinement costs one `h e`
//! product plus `cols` per accepted move.

/// Rectified sigmoid stretch (AdaRound's zeta and gamma).
const ZETA: f64 = 1.1;
const GAMMA: f64 = -0.1;
/// Regulariser weight (the paper's lambda).
const LAMBDA: f64 = 0.01;
/// Share of the iterations before the regulariser starts.
const WARMUP: f64 = 0.2;
/// Adam's step size on V, and its moment decays.
const LR: f64 = 0.05;
const B1: f64 = 0.9;
const B2: f64 = 0.999;

/// Multiply-adds AdaRound may spend on one block of weights (`rows x cols^2` per
/// iteration): small and depthwise layers get [`MAX_ITERATIONS`], the largest few get none
/// (they keep the refined GPTQ result), which keeps a PP-OCR model's quantization time
/// within a few times ONNX Runtime's.
pub const MACS_PER_BLOCK: usize = 1 << 28;
/// Most iterations per block.
pub const MAX_ITERATIONS: usize = 400;
/// Fewest iterations that are worth running (fewer: skip AdaRound for that block).
pub const MIN_ITERATIONS: usize = 40;

/// Iterations AdaRound gets for a block of `rows x cols` weights; 0 means skip.
pub fn adaround_iterations(rows: usize, cols: usize) -> usize {
    let per = (rows * cols * cols).max(1);
    let n = (MACS_PER_BLOCK / per).min(MAX_ITERATIONS);
    if n < MIN_ITERATIONS {
        0
    } else {
        n
    }
}

fn rect_sigmoid(v: f64) -> (f64, f64) {
    let s = 1.0 / (1.0 + (-v).exp());
    let h = s * (ZETA - GAMMA) + GAMMA;
    // Gradient dh/dV, zero where the rectification clips.
    let grad = if (0.0..=1.0).contains(&h) {
        (ZETA - GAMMA) * s * (1.0 - s)
    } else {
        0.0
    };
    (h.clamp(0.0, 1.0), grad)
}

/// `h` with `damp x mean(diag h)` added to its diagonal and never-excited inputs
/// (`h_ii = 0`) given `h_ii = 1`, as [`super::math::inverse_cholesky_upper`] damps GPTQ's.
pub fn damped(h: &[f64], n: usize, damp: f64) -> Vec<f64> {
    let mut a = h.to_vec();
    let mean_diag = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n.max(1) as f64;
    for i in 0..n {
        if a[i * n + i] <= 0.0 {
            a[i * n + i] = 1.0;
        }
        a[i * n + i] += damp * mean_diag.max(f64::MIN_POSITIVE);
    }
    a
}

/// `y = h x` for symmetric `h` (`n x n`, row-major).
fn mat_vec(h: &[f64], x: &[f64], y: &mut [f64]) {
    let n = x.len();
    y.iter_mut().for_each(|v| *v = 0.0);
    for (j, &xj) in x.iter().enumerate() {
        if xj == 0.0 {
            continue;
        }
        for (yi, &hij) in y.iter_mut().zip(&h[j * n..(j + 1) * n]) {
            *yi += hij * xj;
        }
    }
}

/// The layer output error `sum_r e_r^T h e_r` of integer weights `q` (`rows x cols`,
/// row-major, `e = q x scale_r - w`) given the input moments `h` (`cols x cols`).
pub fn layer_error(
    w: &[f32],
    q: &[i8],
    rows: usize,
    cols: usize,
    h: &[f64],
    scales: &[f32],
) -> f64 {
    let mut e = vec![0.0f64; cols];
    let mut g = vec![0.0f64; cols];
    let mut total = 0.0;
    for r in 0..rows {
        let s = scales[r] as f64;
        for i in 0..cols {
            e[i] = q[r * cols + i] as f64 * s - w[r * cols + i] as f64;
        }
        mat_vec(h, &e, &mut g);
        total += e.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>();
    }
    total
}

/// AdaRound the rows of `w` (`rows x cols`, row-major, one row per output channel, columns
/// in the layer's input patch order) against input moments `h` over `iterations` Adam
/// steps. Each weight ends at `floor(w/s)` or one above, clamped to `[-qmax, qmax]`.
/// `None` when the shapes do not match.
pub fn adaround_rows(
    w: &[f32],
    rows: usize,
    cols: usize,
    h: &[f64],
    scales: &[f32],
    qmax: i32,
    iterations: usize,
) -> Option<Vec<i8>> {
    if w.len() != rows * cols || h.len() != cols * cols || scales.len() != rows {
        return None;
    }
    let qmax_f = qmax as f64;
    // Normalise the loss of each row to units of one step on an average input, so that one
    // learning rate and one lambda fit every layer.
    let mean_diag = ((0..cols).map(|i| h[i * cols + i]).sum::<f64>() / cols.max(1) as f64)
        .max(f64::MIN_POSITIVE);
    let mut out = vec![0i8; rows * cols];
    let (mut e, mut g) = (vec![0.0f64; cols], vec![0.0f64; cols]);
    let (mut v, mut m1, mut m2) = (vec![0.0f64; cols], vec![0.0f64; cols], vec![0.0f64; cols]);
    let mut base = vec![0.0f64; cols];
    let mut fixed = vec![false; cols];
    let mut hs = vec![(0.0f64, 0.0f64); cols];
    for r in 0..rows {
        let s = (scales[r] as f64).max(1e-12);
        let row = &w[r * cols..(r + 1) * cols];
        for i in 0..cols {
            let x = row[i] as f64 / s;
            let fl = x.floor().clamp(-qmax_f, qmax_f);
            base[i] = fl;
            // A weight already at the top of the grid cannot round up.
            fixed[i] = fl >= qmax_f;
            // Start where h(V) equals the fractional part: the relaxed weight is exact.
            let rest = (x - fl).clamp(1e-4, 1.0 - 1e-4);
            let sg = (rest - GAMMA) / (ZETA - GAMMA);
            v[i] = (sg / (1.0 - sg)).ln();
            m1[i] = 0.0;
            m2[i] = 0.0;
        }
        let norm = 1.0 / (s * s * mean_diag * cols as f64);
        let warm = (iterations as f64 * WARMUP) as usize;
        for t in 0..iterations {
            for i in 0..cols {
                hs[i] = if fixed[i] {
                    (0.0, 0.0)
                } else {
                    rect_sigmoid(v[i])
                };
                e[i] = (base[i] + hs[i].0) * s - row[i] as f64;
            }
            mat_vec(h, &e, &mut g);
            // beta anneals linearly from 20 to 2 after the warm-up.
            let reg = t >= warm;
            let frac = if iterations > warm {
                (t.saturating_sub(warm)) as f64 / (iterations - warm) as f64
            } else {
                1.0
            };
            let beta = 20.0 - 18.0 * frac;
            let step = (t + 1) as i32;
            for i in 0..cols {
                if fixed[i] {
                    continue;
                }
                let (hv, dh) = hs[i];
                // d(e^T h e)/dh_i = 2 s (h e)_i.
                let mut grad_h = 2.0 * s * g[i] * norm;
                if reg {
                    let u = 2.0 * hv - 1.0;
                    grad_h += LAMBDA * -beta * u.abs().powf(beta - 1.0) * u.signum() * 2.0;
                }
                let grad = grad_h * dh;
                m1[i] = B1 * m1[i] + (1.0 - B1) * grad;
                m2[i] = B2 * m2[i] + (1.0 - B2) * grad * grad;
                let mh = m1[i] / (1.0 - B1.powi(step));
                let vh = m2[i] / (1.0 - B2.powi(step));
                v[i] -= LR * mh / (vh.sqrt() + 1e-8);
            }
        }
        for i in 0..cols {
            let up = !fixed[i] && rect_sigmoid(v[i]).0 >= 0.5;
            let q = if iterations == 0 {
                (row[i] as f64 / s).round_ties_even()
            } else {
                base[i] + f64::from(u8::from(up))
            };
            out[r * cols + i] = q.clamp(-qmax_f, qmax_f) as i8;
        }
    }
    Some(out)
}

/// Greedy coordinate descent on `e^T h e` from the integer weights `q`: each weight in turn
/// moves one step up or down when that lowers its row's output error, for at most `sweeps`
/// passes (or until a pass moves nothing). Never raises [`layer_error`].
#[allow(clippy::too_many_arguments)]
pub fn refine_rows(
    w: &[f32],
    q: &mut [i8],
    rows: usize,
    cols: usize,
    h: &[f64],
    scales: &[f32],
    qmax: i32,
    sweeps: usize,
) -> usize {
    if w.len() != rows * cols || q.len() != w.len() || h.len() != cols * cols {
        return 0;
    }
    let mut moved = 0;
    let (mut e, mut g) = (vec![0.0f64; cols], vec![0.0f64; cols]);
    for r in 0..rows {
        let s = scales[r] as f64;
        for i in 0..cols {
            e[i] = q[r * cols + i] as f64 * s - w[r * cols + i] as f64;
        }
        mat_vec(h, &e, &mut g);
        for _ in 0..sweeps {
            let mut any = false;
            for i in 0..cols {
                let hii = h[i * cols + i];
                if hii <= 0.0 {
                    continue;
                }
                let qi = q[r * cols + i] as i32;
                // Change of e^T h e when e_i moves by d: 2 d g_i + d^2 h_ii.
                let up = 2.0 * s * g[i] + s * s * hii;
                let down = -2.0 * s * g[i] + s * s * hii;
                let (d, gain) = if up < down { (1, up) } else { (-1, down) };
                // A relative margin keeps rounding noise in g from flipping a weight back
                // and forth.
                if gain >= -1e-12 * s * s * hii || !(-qmax..=qmax).contains(&(qi + d)) {
                    continue;
                }
                q[r * cols + i] = (qi + d) as i8;
                let ds = d as f64 * s;
                e[i] += ds;
                for (gj, &hij) in g.iter_mut().zip(&h[i * cols..(i + 1) * cols]) {
                    *gj += ds * hij;
                }
                moved += 1;
                any = true;
            }
            if !any {
                break;
            }
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A correlated positive definite `h` (`n x n`): a shared component plus a diagonal,
    /// like the inputs of a conv whose taps read neighbouring pixels of a smooth image.
    fn correlated_h(n: usize, shared: f64) -> Vec<f64> {
        let mut h = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let d = i.abs_diff(j) as f64;
                h[i * n + j] = shared * (-d / 4.0).exp() + if i == j { 0.05 } else { 0.0 };
            }
        }
        h
    }

    fn weights(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..rows * cols)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f64 / (1u64 << 31) as f64 * 2.0 - 1.0) as f32 * 0.3
            })
            .collect()
    }

    fn nearest(w: &[f32], cols: usize, scales: &[f32], qmax: i32) -> Vec<i8> {
        w.iter()
            .enumerate()
            .map(|(i, &x)| {
                (x / scales[i / cols])
                    .round_ties_even()
                    .clamp(-qmax as f32, qmax as f32) as i8
            })
            .collect()
    }

    fn scales_of(w: &[f32], rows: usize, cols: usize, qmax: i32) -> Vec<f32> {
        (0..rows)
            .map(|r| {
                w[r * cols..(r + 1) * cols]
                    .iter()
                    .fold(0.0f32, |m, x| m.max(x.abs()))
                    / qmax as f32
            })
            .collect()
    }

    #[test]
    fn adaround_lowers_the_layer_error_below_nearest_rounding() {
        let (rows, cols, qmax) = (6, 27, 64);
        let w = weights(rows, cols, 3);
        let s = scales_of(&w, rows, cols, qmax);
        let h = correlated_h(cols, 1.0);
        let rtn = nearest(&w, cols, &s, qmax);
        let ada = adaround_rows(&w, rows, cols, &h, &s, qmax, 300).unwrap();
        let (e_rtn, e_ada) = (
            layer_error(&w, &rtn, rows, cols, &h, &s),
            layer_error(&w, &ada, rows, cols, &h, &s),
        );
        assert!(e_ada < 0.7 * e_rtn, "adaround {e_ada} vs nearest {e_rtn}");
        // Every weight rounded up or down, within the grid.
        for (i, (&x, &q)) in w.iter().zip(&ada).enumerate() {
            let f = (x / s[i / cols]).floor();
            assert!(q as f32 == f || q as f32 == f + 1.0, "{x} -> {q}");
            assert!((q as i32).abs() <= qmax);
        }
    }

    #[test]
    fn adaround_with_uncorrelated_inputs_rounds_to_nearest() {
        // A diagonal h: each weight's error reaches the output alone, nearest is optimal.
        let (rows, cols, qmax) = (3, 8, 127);
        let w = weights(rows, cols, 11);
        let s = scales_of(&w, rows, cols, qmax);
        let mut h = vec![0.0; cols * cols];
        for i in 0..cols {
            h[i * cols + i] = 1.0 + i as f64;
        }
        let ada = adaround_rows(&w, rows, cols, &h, &s, qmax, 200).unwrap();
        assert_eq!(ada, nearest(&w, cols, &s, qmax));
    }

    #[test]
    fn refinement_never_raises_the_layer_error() {
        let (rows, cols, qmax) = (4, 18, 64);
        let w = weights(rows, cols, 5);
        let s = scales_of(&w, rows, cols, qmax);
        let h = correlated_h(cols, 2.0);
        let mut q = nearest(&w, cols, &s, qmax);
        let before = layer_error(&w, &q, rows, cols, &h, &s);
        let moved = refine_rows(&w, &mut q, rows, cols, &h, &s, qmax, 8);
        let after = layer_error(&w, &q, rows, cols, &h, &s);
        assert!(
            moved > 0 && after < before,
            "{before} -> {after} ({moved} moves)"
        );
        assert!(q.iter().all(|&v| (v as i32).abs() <= qmax));
        // A local minimum: a second run moves nothing.
        assert_eq!(refine_rows(&w, &mut q, rows, cols, &h, &s, qmax, 8), 0);
    }

    #[test]
    fn iteration_budget_skips_only_the_largest_blocks() {
        assert_eq!(adaround_iterations(1, 9), MAX_ITERATIONS);
        assert!(adaround_iterations(64, 288) >= MIN_ITERATIONS);
        assert_eq!(adaround_iterations(480, 1152), 0);
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        assert!(adaround_rows(&[1.0], 1, 2, &[1.0; 4], &[1.0], 64, 10).is_none());
        assert_eq!(
            refine_rows(&[1.0], &mut [1], 1, 2, &[1.0; 4], &[1.0], 64, 1),
            0
        );
    }
}
