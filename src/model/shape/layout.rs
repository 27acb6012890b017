//! Shape and layout ops: joining, splitting, reshaping, permuting, slicing, padding and
//! indexing. Several of them carry small integer values through (a shape vector sliced,
//! gathered, concatenated), which is how exported models compute dynamic shapes.

use super::{axes_of, axis, numel, one, Node, Outputs, MAX_TRACKED_VALUES};
use crate::model::attr::NodeExt;

pub(super) fn concat(n: &mut Node) -> Outputs {
    let count = n.n.input.len();
    let shapes: Vec<Vec<i64>> = (0..count).map(|i| n.shape(i)).collect::<Option<_>>()?;
    let first = shapes.first()?.clone();
    let a = axis(n.n.attr_i("axis").ok()?, first.len())?;
    let mut out = first;
    out[a] = shapes
        .iter()
        .try_fold(0i64, |acc, s| acc.checked_add(*s.get(a)?))?;
    let values: Option<Vec<Vec<i64>>> = (0..count).map(|i| n.value(i)).collect();
    if let Some(vs) = values {
        if out.len() == 1 {
            n.set_value(vs.concat());
        }
    }
    one(out)
}

pub(super) fn reshape(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let target = match n.value(1) {
        Some(v) => v,
        None => n.n.attr_opt_ints("shape").ok()??,
    };
    let allow_zero = n.n.attr_i_or("allowzero", 0).ok()? != 0;
    let mut out: Vec<i64> = target
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if d == 0 && !allow_zero {
                x.get(i).copied().unwrap_or(0)
            } else {
                d
            }
        })
        .collect();
    let unknown: Vec<usize> = (0..out.len()).filter(|&i| out[i] == -1).collect();
    match unknown.as_slice() {
        [] => {}
        [i] => {
            let known = numel(&out.iter().copied().filter(|&d| d != -1).collect::<Vec<_>>())?;
            if known == 0 {
                return None;
            }
            out[*i] = numel(&x)? / known;
        }
        _ => return None,
    }
    if out.iter().any(|&d| d < 0) || numel(&out)? != numel(&x)? {
        return None;
    }
    pass_value(n);
    one(out)
}

pub(super) fn flatten(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let a = n.n.attr_i_or("axis", 1).ok()?;
    let a = if a < 0 { a + x.len() as i64 } else { a };
    if a < 0 || a > x.len() as i64 {
        return None;
    }
    let (l, r) = x.split_at(a as usize);
    one(vec![numel(l)?, numel(r)?])
}

pub(super) fn transpose(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let perm =
        n.n.attr_ints_or("perm", &(0..x.len() as i64).rev().collect::<Vec<_>>())
            .ok()?;
    let out = perm
        .iter()
        .map(|&p| axis(p, x.len()).map(|a| x[a]))
        .collect::<Option<Vec<_>>>()?;
    one(out)
}

pub(super) fn unsqueeze(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let axes = axes_of(n.n, 1, n.inf)??;
    let rank = x.len() + axes.len();
    let mut norm: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Option<_>>()?;
    norm.sort_unstable();
    let mut out = x.clone();
    for a in norm {
        if a > out.len() {
            return None;
        }
        out.insert(a, 1);
    }
    pass_value(n);
    one(out)
}

pub(super) fn squeeze(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let out: Vec<i64> = match axes_of(n.n, 1, n.inf)? {
        None => x.iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let norm: Vec<usize> = axes
                .iter()
                .map(|&a| axis(a, x.len()))
                .collect::<Option<_>>()?;
            x.iter()
                .enumerate()
                .filter(|(i, _)| !norm.contains(i))
                .map(|(_, &d)| d)
                .collect()
        }
    };
    pass_value(n);
    one(out)
}

pub(super) fn slice(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let (starts, ends, axes, steps) = slice_params(n)?;
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return None;
    }
    let mut out = x.clone();
    let mut ranges = Vec::new();
    for i in 0..starts.len() {
        let a = axis(axes[i], x.len())?;
        let (s, e, st) = slice_range(x[a], starts[i], ends[i], steps[i])?;
        let (s, e, st) = (s as i128, e as i128, st as i128);
        let len = if st > 0 {
            ((e - s).max(0) + st - 1) / st
        } else {
            ((s - e).max(0) - st - 1) / (-st)
        };
        out[a] = i64::try_from(len).ok()?;
        ranges.push((a, s, st, out[a] as i128));
    }
    if let (Some(v), 1) = (n.value(0), x.len()) {
        if let Some(&(_, s, st, len)) = ranges.first() {
            let picked: Vec<i64> = (0..len.min(MAX_TRACKED_VALUES as i128))
                .filter_map(|k| v.get(usize::try_from(s + k * st).ok()?).copied())
                .collect();
            n.set_value(picked);
        }
    }
    one(out)
}

type SliceParams = (Vec<i64>, Vec<i64>, Option<Vec<i64>>, Option<Vec<i64>>);

/// Starts, ends, axes and steps: inputs since opset 10, attributes before.
fn slice_params(n: &Node) -> Option<SliceParams> {
    let optional = |i: usize| match n.n.input.get(i).filter(|s| !s.is_empty()) {
        Some(_) => n.value(i).map(Some),
        None => Some(None),
    };
    if n.n.input.len() >= 3 {
        Some((n.value(1)?, n.value(2)?, optional(3)?, optional(4)?))
    } else {
        Some((
            n.n.attr_ints("starts").ok()?,
            n.n.attr_ints("ends").ok()?,
            n.n.attr_opt_ints("axes").ok()?,
            None,
        ))
    }
}

/// Clamp Slice bounds the way the ONNX spec does.
fn slice_range(dim: i64, start: i64, end: i64, step: i64) -> Option<(i64, i64, i64)> {
    if step == 0 {
        return None;
    }
    let fix = |v: i64, lo: i64, hi: i64| {
        let v = if v < 0 { v.saturating_add(dim) } else { v };
        v.clamp(lo, hi)
    };
    if step > 0 {
        Some((fix(start, 0, dim), fix(end, 0, dim), step))
    } else {
        Some((fix(start, 0, dim - 1), fix(end, -1, dim - 1), step))
    }
}

pub(super) fn pad(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let pads = match n.n.attr_opt_ints("pads").ok()? {
        Some(p) => p,
        None => n.value(1)?,
    };
    let axes: Vec<usize> = match n.n.input.get(3).filter(|s| !s.is_empty()) {
        Some(_) => n
            .value(3)?
            .iter()
            .map(|&a| axis(a, x.len()))
            .collect::<Option<_>>()?,
        None => (0..x.len()).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return None;
    }
    let mut out = x.clone();
    for (k, &a) in axes.iter().enumerate() {
        out[a] = out[a]
            .checked_add(pads[k])?
            .checked_add(pads[axes.len() + k])?;
    }
    one(out)
}

pub(super) fn tile(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let reps = n.value(1)?;
    if reps.len() != x.len() {
        return None;
    }
    one(x
        .iter()
        .zip(&reps)
        .map(|(&d, &r)| d.checked_mul(r))
        .collect::<Option<_>>()?)
}

pub(super) fn split(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let a = axis(n.n.attr_i_or("axis", 0).ok()?, x.len())?;
    let parts = n.n.output.len() as i64;
    let split = match n.n.attr_opt_ints("split").ok()? {
        Some(s) => s,
        None => match n.n.input.get(1).filter(|s| !s.is_empty()) {
            Some(_) => n.value(1)?,
            None => {
                if parts == 0 || x[a] % parts != 0 {
                    return None;
                }
                vec![x[a] / parts; parts as usize]
            }
        },
    };
    Some(
        split
            .iter()
            .map(|&s| {
                let mut o = x.clone();
                o[a] = s;
                o
            })
            .collect(),
    )
}

pub(super) fn gather(n: &mut Node) -> Outputs {
    let data = n.shape(0)?;
    let idx = n.shape(1)?;
    let a = axis(n.n.attr_i_or("axis", 0).ok()?, data.len())?;
    let mut out = data[..a].to_vec();
    out.extend_from_slice(&idx);
    out.extend_from_slice(&data[a + 1..]);
    if let (Some(v), Some(i), 1) = (n.value(0), n.value(1), data.len()) {
        let picked: Option<Vec<i64>> = i
            .iter()
            .map(|&k| {
                let k = if k < 0 { k + v.len() as i64 } else { k };
                v.get(usize::try_from(k).ok()?).copied()
            })
            .collect();
        if let Some(p) = picked {
            n.set_value(p);
        }
    }
    one(out)
}

pub(super) fn gather_elements(n: &mut Node) -> Outputs {
    one(n.shape(1)?)
}

/// Ops that only rearrange dims keep their input's values.
fn pass_value(n: &mut Node) {
    if let Some(v) = n.value(0) {
        n.set_value(v);
    }
}
