//! Spatial ops: convolutions and pools (the window arithmetic of the ONNX spec),
//! resampling (Resize, Upsample, GridSample) and the block rearrangements
//! DepthToSpace / SpaceToDepth.

use super::{one, Node, Outputs};
use crate::model::attr::NodeExt;
use crate::model::graph::GraphIndex;
use crate::model::proto::NodeProto;
use crate::model::tensor_data;

pub(super) fn conv(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let w = n.shape(1)?;
    let kernel = n.n.attr_ints_or("kernel_shape", w.get(2..)?).ok()?;
    let mut out = vec![*x.first()?, *w.first()?];
    out.extend(windowed(n.n, &x, &kernel)?);
    one(out)
}

pub(super) fn conv_transpose(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let w = n.shape(1)?;
    let node = n.n;
    let sp = x.len().checked_sub(2)?;
    let group = node.attr_i_or("group", 1).ok()?;
    let mut out = vec![x[0], w.get(1)?.checked_mul(group)?];
    if let Ok(Some(os)) = node.attr_opt_ints("output_shape") {
        let os = &os[os.len().checked_sub(sp)?..];
        out.extend_from_slice(os);
        return one(out);
    }
    let kernel = node.attr_ints_or("kernel_shape", w.get(2..)?).ok()?;
    let strides = node.attr_ints_or("strides", &vec![1; sp]).ok()?;
    let dil = node.attr_ints_or("dilations", &vec![1; sp]).ok()?;
    let pads = node.attr_ints_or("pads", &vec![0; 2 * sp]).ok()?;
    let opad = node.attr_ints_or("output_padding", &vec![0; sp]).ok()?;
    let auto_pad = node.attr_s_or("auto_pad", "NOTSET").ok()?;
    if kernel.len() != sp || strides.len() != sp || pads.len() != 2 * sp {
        return None;
    }
    let wide = |v: i64| v as i128;
    for i in 0..sp {
        let o = if auto_pad.starts_with("SAME") {
            wide(x[2 + i]) * wide(strides[i])
        } else {
            wide(strides[i]) * (wide(x[2 + i]) - 1)
                + wide(opad.get(i).copied().unwrap_or(0))
                + (wide(kernel[i]) - 1) * wide(dil.get(i).copied().unwrap_or(1))
                + 1
                - wide(pads[i])
                - wide(pads[sp + i])
        };
        out.push(i64::try_from(o).ok()?);
    }
    one(out)
}

/// MaxPool, AveragePool, LpPool.
pub(super) fn pool(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let kernel = n.n.attr_ints("kernel_shape").ok()?;
    let spatial = windowed(n.n, &x, &kernel)?;
    let mut out = vec![x[0], x[1]];
    out.extend(spatial);
    // MaxPool's optional Indices output has the same shape.
    Some(vec![out.clone(), out])
}

/// GlobalAveragePool, GlobalMaxPool, GlobalLpPool.
pub(super) fn global_pool(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let mut out = x.clone();
    for d in out.iter_mut().skip(2) {
        *d = 1;
    }
    one(out)
}

/// Resize and Upsample: from `sizes` when known, else from constant `scales`.
pub(super) fn resize(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let node = n.n;
    let scales_input = if n.op() == "Upsample" || node.input.len() == 2 {
        1
    } else {
        2
    };
    if let Some(sizes) = node.input.get(3).filter(|s| !s.is_empty()) {
        if let Some(v) = n.inf.values.get(sizes) {
            if v.len() == x.len() {
                return one(v.clone());
            }
        }
    }
    let scales = match node.input.get(scales_input).filter(|s| !s.is_empty()) {
        Some(name) => float_const(n.index, name)?,
        None => node.attr_opt_floats("scales").ok()??,
    };
    if scales.len() != x.len() {
        return None;
    }
    one(x
        .iter()
        .zip(&scales)
        .map(|(&d, &s)| (d as f64 * s as f64).floor() as i64)
        .collect())
}

pub(super) fn grid_sample(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let grid = n.shape(1)?;
    if x.len() < 3 || grid.len() != x.len() {
        return None;
    }
    let mut out = vec![x[0], x[1]];
    out.extend_from_slice(&grid[1..grid.len() - 1]);
    one(out)
}

/// DepthToSpace and SpaceToDepth.
pub(super) fn depth_space(n: &mut Node) -> Outputs {
    let x = n.shape(0)?;
    let b = n.n.attr_i("blocksize").ok()?;
    if x.len() != 4 || b <= 0 {
        return None;
    }
    let bb = b.checked_mul(b)?;
    if n.op() == "DepthToSpace" {
        if x[1] % bb != 0 {
            return None;
        }
        one(vec![
            x[0],
            x[1] / bb,
            x[2].checked_mul(b)?,
            x[3].checked_mul(b)?,
        ])
    } else {
        if x[2] % b != 0 || x[3] % b != 0 {
            return None;
        }
        one(vec![x[0], x[1].checked_mul(bb)?, x[2] / b, x[3] / b])
    }
}

fn float_const(index: &GraphIndex, name: &str) -> Option<Vec<f32>> {
    let t = index.constant(name)?;
    tensor_data::to_f32(t).ok()
}

/// Window output size for conv/pool along one axis.
#[allow(clippy::too_many_arguments)]
pub(super) fn window_out(
    input: i64,
    kernel: i64,
    stride: i64,
    dilation: i64,
    pad_begin: i64,
    pad_end: i64,
    auto_pad: &str,
    ceil_mode: bool,
) -> Option<i64> {
    if stride <= 0 || kernel <= 0 || dilation <= 0 {
        return None;
    }
    // Attributes come from an untrusted file: compute wide so nothing can overflow.
    let (input, kernel, stride, dilation, pad_begin, pad_end) = (
        input as i128,
        kernel as i128,
        stride as i128,
        dilation as i128,
        pad_begin as i128,
        pad_end as i128,
    );
    let eff = dilation * (kernel - 1) + 1;
    let out = match auto_pad {
        "SAME_UPPER" | "SAME_LOWER" => (input + stride - 1) / stride,
        "VALID" => (input - eff) / stride + 1,
        _ => {
            let span = input + pad_begin + pad_end - eff;
            if span < 0 {
                return None;
            }
            if ceil_mode {
                let o = (span + stride - 1) / stride + 1;
                // The last window must start inside the input or left padding.
                if (o - 1) * stride >= input + pad_begin {
                    o - 1
                } else {
                    o
                }
            } else {
                span / stride + 1
            }
        }
    };
    i64::try_from(out).ok().filter(|&o| o >= 0)
}

/// Output spatial dims of a conv or pool.
fn windowed(n: &NodeProto, x: &[i64], kernel: &[i64]) -> Option<Vec<i64>> {
    let sp = x.len().checked_sub(2)?;
    if kernel.len() != sp {
        return None;
    }
    let strides = n.attr_ints_or("strides", &vec![1; sp]).ok()?;
    let dil = n.attr_ints_or("dilations", &vec![1; sp]).ok()?;
    let pads = n.attr_ints_or("pads", &vec![0; 2 * sp]).ok()?;
    let auto_pad = n.attr_s_or("auto_pad", "NOTSET").ok()?;
    let ceil_mode = n.attr_i_or("ceil_mode", 0).ok()? != 0;
    if strides.len() != sp || dil.len() != sp || pads.len() != 2 * sp {
        return None;
    }
    (0..sp)
        .map(|i| {
            window_out(
                x[2 + i],
                kernel[i],
                strides[i],
                dil[i],
                pads[i],
                pads[sp + i],
                &auto_pad,
                ceil_mode,
            )
        })
        .collect()
}
