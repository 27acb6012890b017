//! Ops that produce the small integer tensors of shape arithmetic: constants, `Shape`,
//! `Size`, `ConstantOfShape`, `Range`. Their values are recorded (up to
//! [`MAX_TRACKED_VALUES`] elements) so that a later Reshape or Expand can be sized.

use super::{numel, one, track_value, Node, Outputs, MAX_TRACKED_VALUES};
use crate::model::attr::NodeExt;
use crate::model::{patch, tensor_data};

pub(super) fn constant(n: &mut Node) -> Outputs {
    let t = patch::constant_tensor(n.n).ok()?;
    track_value(n.inf, &n.out0(), &t);
    one(t.dims)
}

pub(super) fn shape(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let r = x.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(n.n.attr_i_or("start", 0).ok()?);
    let end = clamp(n.n.attr_i_or("end", r).ok()?);
    let v = x.get(start..end.max(start)).unwrap_or(&[]).to_vec();
    let len = v.len() as i64;
    n.set_value(v);
    one(vec![len])
}

pub(super) fn size(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    n.set_value(vec![numel(&x)?]);
    one(vec![])
}

pub(super) fn constant_of_shape(n: &mut Node) -> Outputs {
    let v = n.value(0)?;
    if let Ok(Some(t)) = n.n.attr_opt_t("value") {
        if numel(&v)? as usize <= MAX_TRACKED_VALUES {
            if let Ok(x) = tensor_data::to_i64(t) {
                if let Some(&x) = x.first() {
                    n.set_value(vec![x; numel(&v)? as usize]);
                }
            }
        }
    }
    one(v)
}

pub(super) fn range(n: &mut Node) -> Outputs {
    let (start, limit, delta) = (n.value(0)?, n.value(1)?, n.value(2)?);
    let (start, limit, delta) = (*start.first()?, *limit.first()?, *delta.first()?);
    if delta == 0 {
        return None;
    }
    let (span, d) = ((limit as i128) - (start as i128), delta as i128);
    let len = i64::try_from(((span + d - d.signum()) / d).max(0)).ok()?;
    if len as usize <= MAX_TRACKED_VALUES {
        let v = (0..len).map(|k| start + k * delta).collect();
        n.set_value(v);
    }
    one(vec![len])
}
