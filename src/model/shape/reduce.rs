//! Ops that contract axes: matrix products (MatMul, Gemm) and reductions (Reduce*,
//! ArgMax/ArgMin, TopK).

use super::{axes_of, axis, matmul_shape, one, Node, Outputs};
use crate::model::attr::NodeExt;

/// MatMul, MatMulInteger, QLinearMatMul (whose B is input 3).
pub(super) fn matmul(n: &mut Node) -> Outputs {
    let ib = if n.op() == "QLinearMatMul" { 3 } else { 1 };
    let a = n.shape(0)?;
    let b = n.shape(ib)?;
    one(matmul_shape(&a, &b)?)
}

pub(super) fn gemm(n: &mut Node) -> Outputs {
    let a = n.shape(0)?;
    let b = n.shape(1)?;
    if a.len() != 2 || b.len() != 2 {
        return None;
    }
    let m = if n.n.attr_i_or("transA", 0).ok()? != 0 {
        a[1]
    } else {
        a[0]
    };
    let cols = if n.n.attr_i_or("transB", 0).ok()? != 0 {
        b[0]
    } else {
        b[1]
    };
    one(vec![m, cols])
}

/// LSTM, GRU and RNN: `Y` is `[steps, directions, batch, hidden]` and `Y_h` (and an
/// LSTM's `Y_c`) `[directions, batch, hidden]` at layout 0 (the default); at layout 1
/// the batch comes first in each, and `X` is `[batch, steps, input]`.
pub(super) fn recurrent(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let w = n.shape(1)?;
    let (&dirs, hidden) = (w.first()?, n.n.attr_i("hidden_size").ok()?);
    if x.len() != 3 {
        return None;
    }
    let batch_first = n.n.attr_i_or("layout", 0).ok()? != 0;
    let (steps, batch) = if batch_first {
        (x[1], x[0])
    } else {
        (x[0], x[1])
    };
    let (y, state) = if batch_first {
        (vec![batch, steps, dirs, hidden], vec![batch, dirs, hidden])
    } else {
        (vec![steps, dirs, batch, hidden], vec![dirs, batch, hidden])
    };
    let states = if n.op() == "LSTM" { 2 } else { 1 };
    Some(
        std::iter::once(y)
            .chain(std::iter::repeat_n(state, states))
            .collect(),
    )
}

/// Ops that reduce over axes, [`reduction`]'s rule.
pub(super) const REDUCTIONS: &[&str] = &[
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL2",
    "ReduceL1",
    "ReduceLogSumExp",
    "ReduceSumSquare",
    "ArgMax",
    "ArgMin",
];

/// One of [`REDUCTIONS`]: axes from `axis` (Arg*), the `axes` attribute or input; all axes
/// when none are given unless `noop_with_empty_axes`.
pub(super) fn reduction(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let keep = n.n.attr_i_or("keepdims", 1).ok()? != 0;
    let axes: Vec<usize> = if n.op().starts_with("Arg") {
        vec![axis(n.n.attr_i_or("axis", 0).ok()?, x.len())?]
    } else {
        match axes_of(n.n, 1, n.inf)? {
            Some(a) if !a.is_empty() => {
                a.iter().map(|&a| axis(a, x.len())).collect::<Option<_>>()?
            }
            _ => {
                if n.n.attr_i_or("noop_with_empty_axes", 0).ok()? != 0 {
                    return one(x);
                }
                (0..x.len()).collect()
            }
        }
    };
    let mut out = Vec::new();
    for (i, &d) in x.iter().enumerate() {
        if axes.contains(&i) {
            if keep {
                out.push(1);
            }
        } else {
            out.push(d);
        }
    }
    one(out)
}

/// TopK: values and indices, both with `k` along the axis.
pub(super) fn top_k(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let a = axis(n.n.attr_i_or("axis", -1).ok()?, x.len())?;
    let k = match n.n.attr_opt_i("k").ok()? {
        Some(k) => k,
        None => *n.value(1)?.first()?,
    };
    let mut out = x;
    out[a] = k;
    Some(vec![out.clone(), out])
}
