//! Pure quantization arithmetic: scales and zero points, per-channel symmetric weights,
//! bias requantization, int4 blocks and their packing. No graph, no runtime.
//!
//! Conventions follow the ONNX `QuantizeLinear` definition: `q = saturate(round(x / scale)
//! + zero_point)`, rounding half to even.

/// Affine parameters of one quantized tensor (or one channel of it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// Real value of one quantization step.
    pub scale: f32,
    /// The integer that represents real 0.
    pub zero_point: i32,
}

/// Smallest scale we emit: a constant-zero tensor still gets a valid (non-zero) scale.
const MIN_SCALE: f32 = 1e-8;

/// Asymmetric uint8 parameters covering `[min, max]` (widened to include 0, so that zero
/// padding is exact).
pub fn asymmetric_u8(min: f32, max: f32) -> QParams {
    let lo = min.min(0.0);
    let hi = max.max(0.0);
    let scale = ((hi - lo) / 255.0).max(MIN_SCALE);
    let zp = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as i32;
    QParams {
        scale,
        zero_point: zp,
    }
}

/// Symmetric int8 parameters for values in `[-absmax, absmax]`, using [-127, 127] so that
/// negation stays exact.
pub fn symmetric_i8(absmax: f32) -> QParams {
    symmetric(absmax, 127)
}

/// Largest weight magnitude for int8 weights that meet uint8 activations in ONNX Runtime's
/// integer kernels: the static QDQ ones (`QLinearConv`, `QLinearMatMul`, `QGemm`,
/// `MatMulIntegerToFloat`, fused from Q/DQ pairs) and the dynamic ones (`MatMulInteger`,
/// `DynamicQuantizeMatMul`, `DynamicQuantizeLSTM`).
///
/// Why not 127: on x86 CPUs without VNNI (AVX2, and AVX-512 before VNNI), MLAS's u8 x s8
/// GEMM multiplies with `vpmaddubsw`, which adds *pairs* of u8 x s8 products into a
/// saturating int16. Two products of 255 x 127 make 64770 and clip at 32767, so a weight
/// row that uses the full int8 range gives garbage wherever the activations are large. On
/// an AMD EPYC with AVX2 (ONNX Runtime 1.31), against exact integer references: a QDQ
/// MatMul was off by 9% of its output range at 127 and exact at 64; a QDQ 1x1 Conv by 19%
/// (0.4%, the output's own rounding, at 64); `MatMulInteger` by 6% (exact at 64); the
/// PP-OCR classifier fell to -1.5 dB SQNR and the LSTM test saw errors as large as the
/// outputs, per tensor as well as per channel. On a VNNI CPU the same models were fine, but
/// a bundle built on one may run on the other. With |w| <= 64, 2 x 255 x 64 = 32640 fits,
/// so the result is exact on every CPU, for one bit of weight precision. This is ONNX
/// Runtime's own `reduce_range` for int8 weights. Weight-only int8 (`int8-weight`, float
/// compute behind a `DequantizeLinear`) never reaches these kernels and keeps [-127, 127].
pub const NO_SATURATION_I8_MAX: i32 = 64;

/// Symmetric parameters for values in `[-absmax, absmax]` mapped onto `[-qmax, qmax]`.
pub fn symmetric(absmax: f32, qmax: i32) -> QParams {
    QParams {
        scale: (absmax / qmax as f32).max(MIN_SCALE),
        zero_point: 0,
    }
}

/// Quantize one value.
pub fn quantize(x: f32, q: QParams, qmin: i32, qmax: i32) -> i32 {
    ((x / q.scale).round_ties_even() as i64 + q.zero_point as i64).clamp(qmin as i64, qmax as i64)
        as i32
}

/// Per-channel symmetric int8 weights along `axis` of a tensor with `dims`.
/// Returns the int8 values (same layout) and one scale per channel.
pub fn quantize_per_channel_i8(w: &[f32], dims: &[usize], axis: usize) -> (Vec<i8>, Vec<f32>) {
    quantize_per_channel_sym(w, dims, axis, 127)
}

/// Per-channel symmetric weights in `[-qmax, qmax]` along `axis` of a tensor with `dims`.
pub fn quantize_per_channel_sym(
    w: &[f32],
    dims: &[usize],
    axis: usize,
    qmax: i32,
) -> (Vec<i8>, Vec<f32>) {
    let channels = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let mut absmax = vec![0.0f32; channels];
    for (i, &x) in w.iter().enumerate() {
        let c = (i / inner) % channels;
        absmax[c] = absmax[c].max(x.abs());
    }
    let params: Vec<QParams> = absmax.iter().map(|&a| symmetric(a, qmax)).collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &x)| quantize(x, params[(i / inner) % channels], -qmax, qmax) as i8)
        .collect();
    (q, params.iter().map(|p| p.scale).collect())
}

/// Per-tensor symmetric int8 weights.
pub fn quantize_per_tensor_i8(w: &[f32]) -> (Vec<i8>, f32) {
    quantize_per_tensor_sym(w, 127)
}

/// Per-tensor symmetric weights in `[-qmax, qmax]`.
pub fn quantize_per_tensor_sym(w: &[f32], qmax: i32) -> (Vec<i8>, f32) {
    let absmax = w.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let p = symmetric(absmax, qmax);
    (
        w.iter()
            .map(|&x| quantize(x, p, -qmax, qmax) as i8)
            .collect(),
        p.scale,
    )
}

/// Bias as int32 with scale `input_scale * weight_scale[c]` and zero point 0 (what
/// `QLinearConv` expects). `weight_scales` has one entry (per-tensor) or one per channel.
pub fn quantize_bias_i32(
    bias: &[f32],
    input_scale: f32,
    weight_scales: &[f32],
) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> = (0..bias.len())
        .map(|c| {
            (input_scale * weight_scales[if weight_scales.len() == 1 { 0 } else { c }])
                .max(MIN_SCALE)
        })
        .collect();
    let q = bias
        .iter()
        .zip(&scales)
        .map(|(&b, &s)| {
            (b as f64 / s as f64)
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect();
    (q, scales)
}

/// Symmetric int4 quantization of one block: returns values in [-8, 7] and the scale.
pub fn quantize_block_i4(block: &[f32]) -> (Vec<i8>, f32) {
    let absmax = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = (absmax / 7.0).max(MIN_SCALE);
    let q = block
        .iter()
        .map(|&x| (x / scale).round_ties_even().clamp(-8.0, 7.0) as i8)
        .collect();
    (q, scale)
}

/// Pack signed 4-bit values two per byte, low nibble first (the ONNX int4 layout).
pub fn pack_i4(values: &[i8]) -> Vec<u8> {
    values
        .chunks(2)
        .map(|pair| {
            let lo = (pair[0] as u8) & 0x0f;
            let hi = pair.get(1).map_or(0, |&v| (v as u8) & 0x0f);
            lo | (hi << 4)
        })
        .collect()
}

/// Inverse of [`pack_i4`] for `n` values.
pub fn unpack_i4(bytes: &[u8], n: usize) -> Vec<i8> {
    (0..n)
        .map(|i| {
            let nib = (bytes[i / 2] >> ((i % 2) * 4)) & 0x0f;
            ((nib << 4) as i8) >> 4
        })
        .collect()
}

/// How a block of weights maps to 4-bit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Int4Scheme {
    /// Codes 0..=15 with a per-block zero point: the block's `[min, max]` (widened to
    /// include 0, as an unsigned zero point must lie on the grid) is split into 15 steps.
    Asymmetric,
    /// Codes 0..=15 with the fixed zero point 8 (signed -8..=7 shifted by 8), scale
    /// `absmax / 7`: no zero point to store, but one side of the grid is unused when a
    /// block's values are not centred on 0.
    Symmetric,
}

/// The zero point of [`Int4Scheme::Symmetric`] blocks.
pub const U4_SYMMETRIC_ZERO_POINT: u8 = 8;

/// One block quantized to unsigned 4-bit codes: `real = (code - zero_point) * scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct U4Block {
    /// One code in `0..=15` per input value.
    pub codes: Vec<u8>,
    /// Real value of one step (positive).
    pub scale: f32,
    /// The code that represents real 0.
    pub zero_point: u8,
}

/// Quantize one block of weights to unsigned 4-bit codes with `scheme`. Rounding is half
/// to even, as in `QuantizeLinear`.
pub fn quantize_block_u4(block: &[f32], scheme: Int4Scheme) -> U4Block {
    let (scale, zero_point) = match scheme {
        Int4Scheme::Asymmetric => {
            let (lo, hi) = block
                .iter()
                .fold((0.0f32, 0.0f32), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            let scale = ((hi - lo) / 15.0).max(MIN_SCALE);
            let zp = (-lo / scale).round_ties_even().clamp(0.0, 15.0) as u8;
            (scale, zp)
        }
        Int4Scheme::Symmetric => {
            let absmax = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            ((absmax / 7.0).max(MIN_SCALE), U4_SYMMETRIC_ZERO_POINT)
        }
    };
    let codes = block
        .iter()
        .map(|&x| ((x / scale).round_ties_even() + zero_point as f32).clamp(0.0, 15.0) as u8)
        .collect();
    U4Block {
        codes,
        scale,
        zero_point,
    }
}

/// Pack unsigned 4-bit codes two per byte, low nibble first (an odd tail leaves the high
/// nibble of the last byte 0).
pub fn pack_u4(codes: &[u8]) -> Vec<u8> {
    codes
        .chunks(2)
        .map(|pair| (pair[0] & 0x0f) | (pair.get(1).map_or(0, |&v| v & 0x0f) << 4))
        .collect()
}

/// Inverse of [`pack_u4`] for `n` codes.
pub fn unpack_u4(bytes: &[u8], n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (bytes[i / 2] >> ((i % 2) * 4)) & 0x0f)
        .collect()
}

/// Cholesky factor `L` (lower, row-major `n x n`) of a symmetric positive definite `a`,
/// `a = L L^T`; `None` when `a` is not positive definite.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let dot: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            let v = a[i * n + j] - dot;
            if i == j {
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i * n + i] = v.sqrt();
            } else {
                l[i * n + j] = v / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Upper-triangular `U` with `U^T U = H^{-1}` (row-major), the factor GPTQ's column updates
/// read. `H` is damped first: `damp x mean(diag H)` is added to its diagonal, and inputs
/// that were never non-zero (`H_ii = 0`) get `H_ii = 1`, so their weights round to nearest.
pub fn inverse_cholesky_upper(h: &[f64], n: usize, damp: f64) -> Option<Vec<f64>> {
    let mut a = h.to_vec();
    let mean_diag = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n.max(1) as f64;
    for i in 0..n {
        if a[i * n + i] <= 0.0 {
            a[i * n + i] = 1.0;
        }
        a[i * n + i] += damp * mean_diag.max(f64::MIN_POSITIVE);
    }
    let l = cholesky(&a, n)?;
    // L^{-1} (lower), by forward substitution column by column.
    let mut li = vec![0.0f64; n * n];
    for c in 0..n {
        li[c * n + c] = 1.0 / l[c * n + c];
        for r in c + 1..n {
            let s: f64 = (c..r).map(|k| l[r * n + k] * li[k * n + c]).sum();
            li[r * n + c] = -s / l[r * n + r];
        }
    }
    // H^{-1} = L^{-T} L^{-1}.
    let mut inv = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (i..n).map(|k| li[k * n + i] * li[k * n + j]).sum();
            inv[i * n + j] = s;
            inv[j * n + i] = s;
        }
    }
    // Upper factor of H^{-1}: the transpose of its lower Cholesky factor.
    let lo = cholesky(&inv, n)?;
    let mut u = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            u[j * n + i] = lo[i * n + j];
        }
    }
    Some(u)
}

/// Error-compensating int8 rounding of the rows of `w` (`rows x cols`, row-major, one row
/// per output channel, columns in the order of the layer's input patch), given the
/// uncentred second moments `h = E[x x^T]` (`cols x cols`) of that input and each row's
/// scale. GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for
/// Generative Pre-trained Transformers", alg. 1, from Optimal Brain Quantization): columns
/// are rounded one at a time and the rounding error of each is pushed onto the columns not
/// yet rounded, in proportion to the inverse Hessian, so that `E[((W - Q) x)^2]` rather
/// than `|W - Q|^2` is kept small. Because `h` is not centred, this includes the mean of
/// the output error, which rounding to nearest leaves uncompensated and which the PP-OCR
/// models amplify (BENCHMARKS.md#quantizer). Values saturate at `+-qmax`. `None` when `h`
/// (damped by `damp x mean(diag h)`) is not positive definite.
pub fn gptq_round_i8(
    w: &[f32],
    rows: usize,
    cols: usize,
    h: &[f64],
    scales: &[f32],
    damp: f64,
    qmax: i32,
) -> Option<Vec<i8>> {
    if w.len() != rows * cols || h.len() != cols * cols || scales.len() != rows {
        return None;
    }
    let u = inverse_cholesky_upper(h, cols, damp)?;
    let mut q = vec![0i8; rows * cols];
    let mut row = vec![0.0f64; cols];
    for r in 0..rows {
        let s = scales[r].max(MIN_SCALE) as f64;
        for (x, &v) in row.iter_mut().zip(&w[r * cols..(r + 1) * cols]) {
            *x = v as f64;
        }
        for i in 0..cols {
            let qi = (row[i] / s)
                .round_ties_even()
                .clamp(-qmax as f64, qmax as f64);
            q[r * cols + i] = qi as i8;
            let err = (row[i] - qi * s) / u[i * cols + i];
            for j in i + 1..cols {
                row[j] -= err * u[i * cols + j];
            }
        }
    }
    Some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asymmetric_u8_maps_range_ends_and_zero_exactly() {
        let q = asymmetric_u8(-1.0, 3.0);
        assert!((q.scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(quantize(0.0, q, 0, 255), q.zero_point);
        assert_eq!(quantize(-1.0, q, 0, 255), 0);
        assert_eq!(quantize(3.0, q, 0, 255), 255);
    }

    #[test]
    fn asymmetric_u8_of_positive_range_has_zero_point_zero() {
        let q = asymmetric_u8(0.5, 6.0);
        assert_eq!(q.zero_point, 0);
        assert!((q.scale - 6.0 / 255.0).abs() < 1e-7);
    }

    #[test]
    fn constant_zero_tensor_gets_a_valid_scale() {
        let q = asymmetric_u8(0.0, 0.0);
        assert!(q.scale > 0.0);
        assert_eq!(quantize(0.0, q, 0, 255), 0);
    }

    #[test]
    fn per_channel_symmetric_uses_each_channels_absmax() {
        // Two output channels of 2 values each: channel 0 spans ±1, channel 1 spans ±10.
        let w = [1.0, -0.5, 10.0, -10.0];
        let (q, s) = quantize_per_channel_i8(&w, &[2, 2], 0);
        assert_eq!(q, vec![127, -64, 127, -127]);
        assert!((s[0] - 1.0 / 127.0).abs() < 1e-7);
        assert!((s[1] - 10.0 / 127.0).abs() < 1e-7);
    }

    #[test]
    fn per_channel_on_axis_1_of_a_matrix() {
        let w = [1.0, 100.0, -1.0, 50.0];
        let (q, s) = quantize_per_channel_i8(&w, &[2, 2], 1);
        assert_eq!(q, vec![127, 127, -127, 64]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn bias_scale_is_input_times_weight_scale() {
        let (q, s) = quantize_bias_i32(&[0.5, -1.0], 0.1, &[0.01, 0.02]);
        assert!((s[0] - 0.001).abs() < 1e-9 && (s[1] - 0.002).abs() < 1e-9);
        assert_eq!(q, vec![500, -500]);
    }

    #[test]
    fn int4_pack_round_trips_signed_values() {
        let v: Vec<i8> = vec![-8, 7, 0, -1, 3];
        let packed = pack_i4(&v);
        assert_eq!(packed.len(), 3);
        assert_eq!(packed[0], 0x78);
        assert_eq!(unpack_i4(&packed, 5), v);
    }

    #[test]
    fn int4_block_is_symmetric_with_scale_absmax_over_7() {
        let (q, s) = quantize_block_i4(&[0.7, -0.7, 0.1]);
        assert!((s - 0.1).abs() < 1e-7);
        assert_eq!(q, vec![7, -7, 1]);
    }

    #[test]
    fn u4_asymmetric_block_maps_min_and_max_to_the_grid_ends() {
        let b = quantize_block_u4(&[-1.0, 0.0, 2.0, 0.6], Int4Scheme::Asymmetric);
        assert!((b.scale - 0.2).abs() < 1e-7);
        assert_eq!(b.zero_point, 5);
        assert_eq!(b.codes, vec![0, 5, 15, 8]);
    }

    #[test]
    fn u4_asymmetric_block_of_positive_values_keeps_zero_on_the_grid() {
        // An unsigned zero point must be a code, so the range is widened to include 0.
        let b = quantize_block_u4(&[1.5, 3.0], Int4Scheme::Asymmetric);
        assert_eq!(b.zero_point, 0);
        assert!((b.scale - 0.2).abs() < 1e-7);
        assert_eq!(b.codes, vec![8, 15]);
    }

    #[test]
    fn u4_symmetric_block_is_signed_int4_shifted_by_8() {
        let b = quantize_block_u4(&[0.7, -0.7, 0.1, 0.0], Int4Scheme::Symmetric);
        assert_eq!(b.zero_point, 8);
        assert!((b.scale - 0.1).abs() < 1e-7);
        assert_eq!(b.codes, vec![15, 1, 9, 8]);
        let (signed, _) = quantize_block_i4(&[0.7, -0.7, 0.1, 0.0]);
        let shifted: Vec<u8> = signed.iter().map(|&v| (v + 8) as u8).collect();
        assert_eq!(b.codes, shifted);
    }

    #[test]
    fn u4_block_of_zeros_gets_a_valid_scale_and_exact_zeros() {
        for scheme in [Int4Scheme::Asymmetric, Int4Scheme::Symmetric] {
            let b = quantize_block_u4(&[0.0; 4], scheme);
            assert!(b.scale > 0.0);
            assert!(b.codes.iter().all(|&c| c == b.zero_point));
        }
    }

    #[test]
    fn u4_pack_is_low_nibble_first_and_round_trips() {
        let codes = vec![1, 15, 0, 9, 7];
        let packed = pack_u4(&codes);
        assert_eq!(packed, vec![0xf1, 0x90, 0x07]);
        assert_eq!(unpack_u4(&packed, 5), codes);
    }

    /// `E[((W - Q) x)^2]` for one row, `h = E[x x^T]`.
    fn output_mse(w: &[f32], q: &[i8], s: f32, h: &[f64]) -> f64 {
        let n = w.len();
        let e: Vec<f64> = (0..n)
            .map(|i| w[i] as f64 - q[i] as f64 * s as f64)
            .collect();
        (0..n)
            .map(|i| (0..n).map(|j| e[i] * h[i * n + j] * e[j]).sum::<f64>())
            .sum()
    }

    #[test]
    fn inverse_cholesky_upper_factors_the_inverse() {
        let h = [4.0, 2.0, 2.0, 3.0];
        let u = inverse_cholesky_upper(&h, 2, 0.0).unwrap();
        assert_eq!(u[2], 0.0, "upper triangular");
        // U^T U must equal H^{-1} = [[3, -2], [-2, 4]] / 8.
        let utu = |i: usize, j: usize| (0..2).map(|k| u[k * 2 + i] * u[k * 2 + j]).sum::<f64>();
        for (i, j, want) in [(0, 0, 0.375), (0, 1, -0.25), (1, 1, 0.5)] {
            assert!((utu(i, j) - want).abs() < 1e-12, "{i}{j}");
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none(), "indefinite");
    }

    #[test]
    fn gptq_with_uncorrelated_inputs_rounds_to_nearest() {
        // With a diagonal H no column can compensate another: plain rounding.
        let w = [0.26f32, -0.74, 0.5, 1.27];
        let h = [
            1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 4.0,
        ];
        let q = gptq_round_i8(&w, 1, 4, &h, &[0.01], 0.0, 127).unwrap();
        assert_eq!(q, vec![26, -74, 50, 127]);
    }

    #[test]
    fn gptq_cancels_the_mean_error_on_a_constant_input() {
        // Three taps that always read the same value (a flat background): only the sum of
        // the weight errors reaches the output. Rounding to nearest errs by +0.4 steps on
        // each tap (1.2 steps in the output); compensating rounding brings it under half a
        // step, and never does worse than nearest on the output MSE.
        let w = [0.014f32, 0.024, 0.034];
        let s = 0.01f32;
        let h: Vec<f64> = vec![1.0; 9];
        let nearest: Vec<i8> = w.iter().map(|&x| (x / s).round() as i8).collect();
        let q = gptq_round_i8(&w, 1, 3, &h, &[s], 0.01, 127).unwrap();
        let out_err = |q: &[i8]| {
            w.iter()
                .zip(q)
                .map(|(&x, &v)| x as f64 - v as f64 * s as f64)
                .sum::<f64>()
                .abs()
        };
        assert!((out_err(&nearest) - 0.012).abs() < 1e-6);
        assert!(out_err(&q) <= 0.005 + 1e-9, "{q:?}");
        assert!(output_mse(&w, &q, s, &h) < output_mse(&w, &nearest, s, &h));
    }

    #[test]
    fn gptq_rejects_mismatched_shapes() {
        assert!(gptq_round_i8(&[1.0], 1, 2, &[1.0; 4], &[1.0], 0.01, 127).is_none());
    }
}
