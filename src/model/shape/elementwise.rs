//! Elementwise ops: unary ops that keep their input's shape, and n-ary ops that broadcast
//! (numpy rules), with the small integer arithmetic of shape computations followed.

use super::{broadcast, one, Node, Outputs};

/// Ops whose first output has the shape of their first input (activations, casts,
/// normalisations, quantize/dequantize, scatters).
pub(super) const SAME_SHAPE: &[&str] = &[
    "Relu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Clip",
    "LeakyRelu",
    "Exp",
    "Log",
    "Sqrt",
    "Neg",
    "Abs",
    "Erf",
    "Identity",
    "Softmax",
    "LogSoftmax",
    "Not",
    "Floor",
    "Ceil",
    "Round",
    "Reciprocal",
    "Gelu",
    "Elu",
    "Selu",
    "Softplus",
    "Softsign",
    "Sign",
    "Sin",
    "Cos",
    "Mish",
    "IsNaN",
    "QuantizeLinear",
    "DequantizeLinear",
    "InstanceNormalization",
    "LRN",
    "LayerNormalization",
    "BatchNormalization",
    "Dropout",
    "Cast",
    "CastLike",
    "Hardmax",
    "Celu",
    "ThresholdedRelu",
    "Shrink",
    "Trilu",
    "CumSum",
    "ScatterElements",
    "ScatterND",
    "Scatter",
    "ReverseSequence",
    "BitwiseNot",
    "MeanVarianceNormalization",
    "GroupNormalization",
    "RMSNormalization",
];

/// Ops whose output is the broadcast of all their inputs.
pub(super) const BROADCASTING: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
    "Where",
    "PRelu",
    "Mod",
    "BitShift",
];

/// One of [`SAME_SHAPE`]. Identity and Cast pass known values through; Not negates
/// known booleans.
pub(super) fn same_shape(n: &mut Node) -> Outputs {
    let s = n.shape(0)?;
    if matches!(n.op(), "Identity" | "Cast") {
        if let Some(v) = n.value(0) {
            n.set_value(v);
        }
    }
    if n.op() == "Not" {
        if let Some(v) = n.value(0) {
            n.set_value(v.iter().map(|&x| i64::from(x == 0)).collect());
        }
    }
    // Extra outputs (Dropout mask, BatchNorm training stats) are left unsized.
    one(s)
}

/// One of [`BROADCASTING`]; Add/Sub/Mul/Div of known values are computed.
pub(super) fn broadcasting(n: &mut Node) -> Outputs {
    let shapes: Vec<Vec<i64>> = (0..n.n.input.len())
        .map(|i| n.shape(i))
        .collect::<Option<_>>()?;
    let refs: Vec<&[i64]> = shapes.iter().map(Vec::as_slice).collect();
    let s = broadcast(&refs)?;
    if let (Some(a), Some(b)) = (n.value(0), n.value(1)) {
        if let Some(v) = values(n.op(), &a, &b) {
            n.set_value(v);
        }
    }
    one(s)
}

/// `Expand`: the input broadcast against the requested shape.
pub(super) fn expand(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let s = n.value(1)?;
    one(broadcast(&[&x, &s])?)
}

fn values(op: &str, a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let n = a.len().max(b.len());
    if !(a.len() == n || a.len() == 1) || !(b.len() == n || b.len() == 1) {
        return None;
    }
    (0..n)
        .map(|i| {
            let x = a[if a.len() == 1 { 0 } else { i }];
            let y = b[if b.len() == 1 { 0 } else { i }];
            match op {
                "Add" => x.checked_add(y),
                "Sub" => x.checked_sub(y),
                "Mul" => x.checked_mul(y),
                "Div" => x.checked_div_euclid(y),
                // Comparisons give booleans (an `If` condition on a shape is then known).
                "Equal" => Some(i64::from(x == y)),
                "Less" => Some(i64::from(x < y)),
                "Greater" => Some(i64::from(x > y)),
                "LessOrEqual" => Some(i64::from(x <= y)),
                "GreaterOrEqual" => Some(i64::from(x >= y)),
                _ => None,
            }
        })
        .collect()
}
