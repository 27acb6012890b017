//! `edgepack predict MODEL --device DEVICE.json [--batch N] [--threads N] [--shape NAME=DIMS]
//! [--dim SYMBOL=N] [--session-config KEY=VALUE] [--json]`: p50 latency and peak RSS of a
//! model on a probed device, with intervals and basis, without running the model there
//! (see `edgepack::hardware::cost`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use edgepack::hardware::cost;
use edgepack::hardware::device::DeviceProfile;
use edgepack::inputs::{model_inputs, ShapeOverrides};
use edgepack::model::Model;
use edgepack::units::{format_bytes, format_duration_s};
use edgepack::Error;

use super::Outcome;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The ONNX model.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The device profile written by `edgepack probe` on the device.
    #[arg(long, value_name = "DEVICE.json")]
    pub device: PathBuf,
    /// Batch: the leading dim of inputs whose leading dim is symbolic.
    #[arg(long, value_name = "N")]
    pub batch: Option<i64>,
    /// Intra-op threads the model will run with.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// A whole input shape, e.g. x=1x3x640x640 (its leading dim is replaced by --batch).
    #[arg(long = "shape", value_name = "NAME=DIMS")]
    pub shapes: Vec<String>,
    /// The value of a symbolic dim, e.g. seq=128: it wins over --shape for that dim, and
    /// naming the batch symbol sets the batch (it must agree with --batch).
    #[arg(long = "dim", value_name = "SYMBOL=N")]
    pub dims: Vec<String>,
    /// An ONNX Runtime session entry the model will run with, KEY=VALUE (repeatable).
    #[arg(long = "session-config", value_name = "KEY=VALUE")]
    pub session_config: Vec<String>,
    /// Print one JSON object (the prediction with every kernel) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ort_lib: &Option<PathBuf>, args: PredictArgs) -> anyhow::Result<Outcome> {
    let one_line = |e: Error| anyhow::anyhow!(e.to_string());
    if args.threads == 0 {
        return Err(Error::usage("--threads", "must be at least 1").into());
    }
    if args.batch.is_some_and(|b| b < 1) {
        return Err(Error::usage("--batch", "must be at least 1").into());
    }
    let device = DeviceProfile::load(&args.device).map_err(one_line)?;
    let info = edgepack::runtime::ensure(ort_lib.as_deref())?;
    device
        .check_runtime(info.version.as_deref().unwrap_or("?"), &args.device)
        .map_err(one_line)?;
    let session_config = super::session_entries("--session-config", &args.session_config)?;
    let mut dims = BTreeMap::new();
    let overrides = ShapeOverrides::from_args(&args.shapes, &[]).map_err(one_line)?;
    for d in &args.dims {
        let mut o = ShapeOverrides::default();
        o.add_dim_arg(d).map_err(one_line)?;
        dims.extend(o.dims.into_iter().map(|(k, v)| (k, v as i64)));
    }
    let model = Model::load(&args.model).map_err(one_line)?;
    let specs = model_inputs(&model);
    let inputs = cost::resolve_inputs(&args.model, &specs, args.batch, overrides, &dims)
        .map_err(one_line)?;
    let optimized = cost::optimized_graph(&args.model, &session_config).map_err(one_line)?;
    let p = cost::predict(&model, &optimized, &inputs, &device, args.threads);
    let shown: Vec<String> = inputs
        .iter()
        .map(|(n, s)| {
            let dims: Vec<usize> = s.iter().map(|&d| d.max(0) as usize).collect();
            format!("{n}={}", edgepack::tensor::format_shape(&dims))
        })
        .collect();
    let text = if args.json {
        // The prediction, and the input shapes it is for (what --batch, --shape and --dim
        // resolved to).
        let mut v = serde_json::to_value(&p)?;
        v["input_shapes"] = serde_json::to_value(&inputs)?;
        serde_json::to_string_pretty(&v)? + "\n"
    } else {
        let mut t = format!("inputs     {}\n", shown.join(" "));
        t += &format!(
            "p50        {} ({} .. {})\npeak RSS   {} ({} .. {})\nweights    {}, activations {} live at peak, {} in ONNX Runtime's arena ({} buffers for {} tensors)\nbasis      {}\n",
            format_duration_s(p.p50_s),
            format_duration_s(p.p50_low_s),
            format_duration_s(p.p50_high_s),
            format_bytes(p.peak_rss_bytes),
            format_bytes(p.peak_rss_low_bytes),
            format_bytes(p.peak_rss_high_bytes),
            format_bytes(p.weights_bytes),
            format_bytes(p.activation_peak_bytes),
            format_bytes(p.activation_plan.arena_touched_bytes.round() as u64),
            p.activation_plan.buffers,
            p.activation_plan.tensors,
            p.basis
        );
        let mut by: Vec<_> = p.time_by_kernel_s.iter().collect();
        by.sort_by(|a, b| b.1.total_cmp(a.1));
        t.push_str("time by kernel:\n");
        for (k, s) in by {
            t.push_str(&format!(
                "  {k:<24} {:>10} {:>5.1}%\n",
                format_duration_s(*s),
                100.0 * s / p.p50_s
            ));
        }
        let mut parts: Vec<_> = p.memory_parts_bytes.iter().collect();
        parts.sort_by(|a, b| b.1.cmp(a.1));
        t.push_str("memory while running:\n");
        for (k, b) in parts {
            t.push_str(&format!("  {k:<32} {:>10}\n", format_bytes(*b)));
        }
        for f in &p.fallbacks {
            t.push_str(&format!("fallback: {f}\n"));
        }
        for w in &p.warnings {
            t.push_str(&format!("warning: {w}\n"));
        }
        if !p.unsized_nodes.is_empty() {
            t.push_str(&format!(
                "unsized (one dispatch each): {}\n",
                p.unsized_nodes.join(", ")
            ));
        }
        t
    };
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(Outcome::Success),
    }
}
