//! `edgepack probe`: characterise the device edgepack runs on, for the cost model.
//!
//! The probe builds micro-models in Rust (one kernel each: convs of every class, MatMul,
//! element-wise, pooling, resize; fp32, int8 QDQ as ONNX Runtime fuses it, fp16 and int4
//! `MatMulNBits` made by the quantizer's own passes, so probed kernels are the ones a
//! variant gets) and times each through ONNX Runtime **with the profiler's isolation and
//! measurement protocol**: every (micro-model, threads) pair is one `__profile-worker`
//! child ([`crate::profile::worker`]), whose reply carries the p50 with its confidence
//! interval and the process memory. Nothing here times anything itself.
//!
//! From the replies:
//! - `run_overhead_s`: a session run of one tiny Add, less one dispatch;
//! - `dispatch_overhead_s`: (chain of 33 tiny Adds - one tiny Add) / 32;
//! - per class and dtype, kernel time = p50 - run overhead - the predicted cost of the
//!   micro-model's auxiliary nodes (casts, Quantize/DequantizeLinear at its edges), fitted
//!   over two sizes as `fixed_s + s_per_work * work` ([`crate::stats::fit_line`]);
//! - memory: the tiny session's resident size, and resident bytes per weight byte (a large
//!   MatMul) and per activation byte (a large Add) above it.
//!
//! The profile is written once, atomically, at the end: an interrupted probe (Ctrl-C, kill)
//! leaves no file behind.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::isolate::ChildLimits;
use crate::model::builder::{value_info_unshaped, GraphBuilder, WeightStorage};
use crate::model::{attr, tensor_data, DataType, Model};
use crate::profile::plan::MeasureSettings;
use crate::profile::sweep::WorkerCommand;
use crate::profile::worker::{measure_in_child, WorkerRequest};
use crate::runtime::{ExecutionContext, GraphOptimizationLevel, Provider, ProviderFallback};

use super::device::{
    DeviceProfile, KernelClass, KernelDtype, KernelFit, KernelPoint, MemoryCost, ThreadProfile,
    DEVICE_SCHEMA,
};

/// How much of the catalog to probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every class in every dtype, two sizes each (about a minute on a small CPU).
    Full,
    /// The overhead models, fp32 element-wise and 3x3 conv at two small sizes, and the
    /// memory models: for tests and smoke checks, seconds.
    Tiny,
}

/// Probe settings, resolved by the CLI.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    pub threads: Vec<usize>,
    /// Wall-time budget of the whole probe; the per-model measurement time is sized from it.
    pub max_time_s: f64,
    pub scope: Scope,
    pub ort_lib: Option<PathBuf>,
    pub worker: WorkerCommand,
    pub onnxruntime_version: String,
}

/// What a micro-model isolates.
#[derive(Clone, Debug)]
enum Role {
    /// A kernel of a class and dtype doing `work`, plus auxiliary element-wise nodes
    /// (`aux_kernels` of them moving `aux_bytes`).
    Kernel {
        class: KernelClass,
        dtype: KernelDtype,
        work: f64,
        aux_kernels: usize,
        aux_bytes: f64,
    },
    /// A chain of `n` tiny Adds (run and dispatch overhead).
    Chain(usize),
    /// A MatMul holding `weight_bytes` of weights (memory per weight byte).
    WeightMemory { weight_bytes: f64 },
    /// An Add with `activation_bytes` of inputs and outputs (memory per activation byte).
    ActivationMemory { activation_bytes: f64 },
}

struct Micro {
    name: String,
    model: Model,
    role: Role,
}

fn f32_input(b: &mut GraphBuilder, dims: &[i64]) -> String {
    b.input("x", DataType::Float, &crate::model::builder::fixed(dims))
}

fn finish(mut b: GraphBuilder, out: &str) -> Model {
    b.rename_output(out, "y");
    let mut g = b.into_graph();
    g.output.push(value_info_unshaped("y", DataType::Float));
    crate::model::builder::model_from_graph(g, 13)
}

fn with_ms_domain(mut m: Model) -> Model {
    use crate::model::proto::OperatorSetIdProto;
    let p = &mut m.proto;
    if !p.opset_import.iter().any(|o| o.domain == "com.microsoft") {
        p.opset_import.push(OperatorSetIdProto {
            domain: "com.microsoft".into(),
            version: Some(1),
        });
    }
    m
}

/// Quantize `x` to uint8 and back (scale fixed: the values are what they are, the kernels
/// ORT picks are what matters here).
fn qdq_u8(b: &mut GraphBuilder, x: &str, tag: &str) -> String {
    let s = b.constant(
        tensor_data::from_f32(&format!("{tag}_s"), &[], &[0.02]).expect("a well-formed constant"),
    );
    let z = b.constant(
        tensor_data::from_slice::<u8>(&format!("{tag}_z"), &[], &[128])
            .expect("a well-formed constant"),
    );
    let q = b.op("QuantizeLinear", &[x, &s, &z], vec![]);
    b.op("DequantizeLinear", &[&q, &s, &z], vec![])
}

/// An int8 weight behind a DequantizeLinear (per tensor, zero point 0).
fn int8_weight(b: &mut GraphBuilder, name: &str, dims: &[i64]) -> String {
    let n = tensor_data::dims_count(name, dims).expect("small probe dims");
    let data: Vec<i8> = (0..n)
        .map(|i| ((i * 37 % 255) as i32 - 127) as i8)
        .collect();
    let w = b.constant(
        tensor_data::from_slice::<i8>(name, dims, &data).expect("a well-formed constant"),
    );
    let s = b.constant(
        tensor_data::from_f32(&format!("{name}_s"), &[], &[0.01]).expect("a well-formed constant"),
    );
    let z = b.constant(
        tensor_data::from_slice::<i8>(&format!("{name}_z"), &[], &[0])
            .expect("a well-formed constant"),
    );
    b.op("DequantizeLinear", &[&w, &s, &z], vec![])
}

/// A conv micro-model: `[1, c_in, hw, hw]` through a `k`x`k` conv with `c_out` outputs.
fn conv(c_in: i64, c_out: i64, hw: i64, k: i64, stride: i64, depthwise: bool, q: bool) -> Model {
    let mut b = GraphBuilder::new("probe_conv", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, &[1, c_in, hw, hw]);
    let group = if depthwise { c_in } else { 1 };
    let wdims = [c_out, c_in / group, k, k];
    let attrs = vec![
        attr::ints("kernel_shape", &[k, k]),
        attr::ints("pads", &[k / 2, k / 2, k / 2, k / 2]),
        attr::ints("strides", &[stride, stride]),
        attr::int("group", group),
    ];
    let y = if q {
        let xq = qdq_u8(&mut b, &x, "x");
        let w = int8_weight(&mut b, "w", &wdims);
        let c = b.op("Conv", &[&xq, &w], attrs);
        qdq_u8(&mut b, &c, "y")
    } else {
        let s = 1.0 / ((c_in / group * k * k) as f32).sqrt();
        let w = b.weight("w", &wdims, -s, s);
        let bias = b.weight("b", &[c_out], -0.1, 0.1);
        b.op("Conv", &[&x, &w, &bias], attrs)
    };
    finish(b, &y)
}

/// `[m, k] x [k, n]` with a constant weight.
fn matmul(m: i64, k: i64, n: i64, q: bool) -> Model {
    let mut b = GraphBuilder::new("probe_matmul", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, &[m, k]);
    let y = if q {
        let xq = qdq_u8(&mut b, &x, "x");
        let w = int8_weight(&mut b, "w", &[k, n]);
        let c = b.op("MatMul", &[&xq, &w], vec![]);
        qdq_u8(&mut b, &c, "y")
    } else {
        let s = 1.0 / (k as f32).sqrt();
        let w = b.weight("w", &[k, n], -s, s);
        b.op("MatMul", &[&x, &w], vec![])
    };
    finish(b, &y)
}

fn add(dims: &[i64]) -> Model {
    let mut b = GraphBuilder::new("probe_add", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, dims);
    let y = b.op("Add", &[&x, &x], vec![]);
    finish(b, &y)
}

fn chain(n: usize) -> Model {
    let mut b = GraphBuilder::new("probe_chain", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, &[1, 16]);
    let mut cur = x.clone();
    for _ in 0..n {
        cur = b.op("Add", &[&cur, &x], vec![]);
    }
    finish(b, &cur)
}

fn pool(c: i64, hw: i64) -> Model {
    let mut b = GraphBuilder::new("probe_pool", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, &[1, c, hw, hw]);
    let y = b.op(
        "MaxPool",
        &[&x],
        vec![
            attr::ints("kernel_shape", &[3, 3]),
            attr::ints("pads", &[1, 1, 1, 1]),
            attr::ints("strides", &[2, 2]),
        ],
    );
    finish(b, &y)
}

fn resize(c: i64, hw: i64) -> Model {
    let mut b = GraphBuilder::new("probe_resize", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, &[1, c, hw, hw]);
    let scales = b.constant(
        tensor_data::from_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0])
            .expect("a well-formed constant"),
    );
    let y = b.op(
        "Resize",
        &[&x, "", &scales],
        vec![attr::string("mode", "nearest")],
    );
    finish(b, &y)
}

fn fp16_of(m: &Model) -> Result<Model> {
    let opts = crate::quantize::fp16::Options::default();
    Ok(crate::quantize::fp16::convert(m, Path::new("probe"), &opts)?.model)
}

fn int4_of(m: &Model) -> Result<Model> {
    let opts = crate::quantize::nbits::Options::default();
    Ok(with_ms_domain(
        crate::quantize::nbits::convert(m, Path::new("probe"), &opts)?.model,
    ))
}

/// A conv micro-model's size: (c_in, c_out, hw, k, stride, depthwise).
type ConvSize = (i64, i64, i64, i64, i64, bool);

/// Bytes of a float32 tensor of `dims`.
fn f32_bytes(dims: &[i64]) -> f64 {
    4.0 * dims.iter().product::<i64>() as f64
}

/// The micro-models of a scope. Sizes span the kernels of small vision and sequence
/// models (PP-OCR-like convs at 32..112 px, MatMuls of a few hundred columns).
fn catalog(scope: Scope) -> Result<Vec<Micro>> {
    use KernelClass as K;
    use KernelDtype as D;
    let mut out = vec![];
    let kernel = |class, dtype, work: f64, aux_kernels, aux_bytes| Role::Kernel {
        class,
        dtype,
        work,
        aux_kernels,
        aux_bytes,
    };
    out.push(Micro {
        name: "chain 1 add 1x16".into(),
        model: chain(1),
        role: Role::Chain(1),
    });
    out.push(Micro {
        name: "chain 33 add 1x16".into(),
        model: chain(33),
        role: Role::Chain(33),
    });
    let (ew_sizes, conv_sizes): (Vec<[i64; 4]>, Vec<(i64, i64)>) = match scope {
        Scope::Tiny => (
            vec![[1, 8, 16, 16], [1, 16, 32, 32]],
            vec![(8, 16), (16, 16)],
        ),
        Scope::Full => (
            vec![[1, 32, 32, 32], [1, 64, 112, 112]],
            vec![(16, 32), (64, 56)],
        ),
    };
    for d in &ew_sizes {
        out.push(Micro {
            name: format!("add {}x{}x{}", d[1], d[2], d[3]),
            model: add(d),
            role: kernel(K::Elementwise, D::Fp32, 3.0 * f32_bytes(d), 0, 0.0),
        });
    }
    let conv_macs = |c_in: i64, c_out: i64, hw_out: i64, k: i64, dw: bool| -> f64 {
        let per = if dw { k * k } else { c_in * k * k };
        (c_out * hw_out * hw_out * per) as f64
    };
    for &(c, hw) in &conv_sizes {
        out.push(Micro {
            name: format!("conv3x3 {c}x{hw}x{hw}"),
            model: conv(c, c, hw, 3, 1, false, false),
            role: kernel(K::Conv, D::Fp32, conv_macs(c, c, hw, 3, false), 0, 0.0),
        });
    }
    let big = f32_bytes(&[1, 64, 128, 128]);
    out.push(Micro {
        name: "memory: add 64x128x128".into(),
        model: add(&[1, 64, 128, 128]),
        role: Role::ActivationMemory {
            activation_bytes: 2.0 * big,
        },
    });
    out.push(Micro {
        name: "memory: matmul 1024x1024 weights".into(),
        model: matmul(1, 1024, 1024, false),
        role: Role::WeightMemory {
            weight_bytes: f32_bytes(&[1024, 1024]),
        },
    });
    if scope == Scope::Tiny {
        return Ok(out);
    }
    // Convs: (c_in, c_out, hw, k, stride, depthwise), two sizes per class.
    let convs: [(K, [ConvSize; 2]); 3] = [
        (
            K::ConvPointwise,
            [(32, 32, 32, 1, 1, false), (128, 128, 56, 1, 1, false)],
        ),
        (
            K::ConvDepthwise,
            [(32, 32, 32, 3, 1, true), (128, 128, 112, 3, 1, true)],
        ),
        (
            K::ConvStrided,
            [(16, 32, 64, 3, 2, false), (64, 128, 56, 3, 2, false)],
        ),
    ];
    for (class, sizes) in convs {
        for (ci, co, hw, k, s, dw) in sizes {
            let ho = (hw + s - 1) / s;
            let m = conv(ci, co, hw, k, s, dw, false);
            out.push(Micro {
                name: format!("{} {ci}->{co} {hw}x{hw} k{k} s{s}", class.as_str()),
                model: m,
                role: kernel(class, D::Fp32, conv_macs(ci, co, ho, k, dw), 0, 0.0),
            });
        }
    }
    // int8 QDQ: ORT fuses DQ -> Conv/MatMul -> Q into QLinearConv / QLinearMatMul; the
    // QuantizeLinear of the input and the DequantizeLinear of the output stay (auxiliary).
    let q_convs: [(K, ConvSize, ConvSize); 3] = [
        (
            K::Conv,
            (16, 16, 32, 3, 1, false),
            (64, 64, 56, 3, 1, false),
        ),
        (
            K::ConvPointwise,
            (32, 32, 32, 1, 1, false),
            (128, 128, 56, 1, 1, false),
        ),
        (
            K::ConvDepthwise,
            (32, 32, 32, 3, 1, true),
            (128, 128, 112, 3, 1, true),
        ),
    ];
    for (class, a, bsz) in q_convs {
        for (ci, co, hw, k, s, dw) in [a, bsz] {
            let ho = (hw + s - 1) / s;
            // Q of the input writes 1 byte per 4 read; DQ of the output the reverse.
            let aux = 1.25 * (f32_bytes(&[ci, hw, hw]) + f32_bytes(&[co, ho, ho]));
            out.push(Micro {
                name: format!("int8 {} {ci}->{co} {hw}x{hw} k{k}", class.as_str()),
                model: conv(ci, co, hw, k, s, dw, true),
                role: kernel(class, D::Int8, conv_macs(ci, co, ho, k, dw), 2, aux),
            });
        }
    }
    for (m, k, n) in [(64, 256, 256), (256, 512, 512)] {
        let macs = (m * k * n) as f64;
        out.push(Micro {
            name: format!("matmul {m}x{k}x{n}"),
            model: matmul(m, k, n, false),
            role: kernel(K::Matmul, D::Fp32, macs, 0, 0.0),
        });
        let aux = 1.25 * (f32_bytes(&[m, k]) + f32_bytes(&[m, n]));
        out.push(Micro {
            name: format!("int8 matmul {m}x{k}x{n}"),
            model: matmul(m, k, n, true),
            role: kernel(K::Matmul, D::Int8, macs, 2, aux),
        });
        // Casts at the edges: 4 bytes read, 2 written per value (and back).
        let aux = 1.5 * (f32_bytes(&[m, k]) + f32_bytes(&[m, n]));
        out.push(Micro {
            name: format!("fp16 matmul {m}x{k}x{n}"),
            model: fp16_of(&matmul(m, k, n, false))?,
            role: kernel(K::Matmul, D::Fp16, macs, 2, aux),
        });
        out.push(Micro {
            name: format!("int4 matmul {m}x{k}x{n}"),
            model: int4_of(&matmul(m, k, n, false))?,
            role: kernel(K::Matmul, D::Int4, macs, 0, 0.0),
        });
    }
    for (c, hw) in [(16, 32), (64, 56)] {
        let aux = 1.5 * 2.0 * f32_bytes(&[c, hw, hw]);
        out.push(Micro {
            name: format!("fp16 conv3x3 {c}x{hw}x{hw}"),
            model: fp16_of(&conv(c, c, hw, 3, 1, false, false))?,
            role: kernel(K::Conv, D::Fp16, conv_macs(c, c, hw, 3, false), 2, aux),
        });
    }
    for (c, hw) in [(32, 32), (64, 112)] {
        let ho = hw / 2;
        out.push(Micro {
            name: format!("maxpool 3x3/2 {c}x{hw}x{hw}"),
            model: pool(c, hw),
            role: kernel(
                K::Pool,
                D::Fp32,
                f32_bytes(&[c, hw, hw]) + f32_bytes(&[c, ho, ho]),
                0,
                0.0,
            ),
        });
    }
    for (c, hw) in [(16, 32), (64, 64)] {
        out.push(Micro {
            name: format!("resize x2 {c}x{hw}x{hw}"),
            model: resize(c, hw),
            role: kernel(K::Resize, D::Fp32, f32_bytes(&[c, hw, hw]) * 5.0, 0, 0.0),
        });
    }
    Ok(out)
}

/// One measured micro-model at one thread count.
struct Measured {
    p50_s: f64,
    ci_rel: f64,
    rss_after_session_bytes: u64,
    peak_rss_bytes: u64,
}

fn measure_one(
    path: &Path,
    threads: usize,
    settings: &MeasureSettings,
    opts: &ProbeOptions,
) -> Result<Measured> {
    let req = WorkerRequest {
        model_path: path.to_path_buf(),
        ort_lib: opts.ort_lib.clone(),
        context: ExecutionContext {
            intra_op_threads: Some(threads),
            inter_op_threads: Some(1),
            graph_optimization_level: GraphOptimizationLevel::All,
            execution_providers: vec![Provider::Cpu],
            provider_fallback: ProviderFallback::Record,
            ..ExecutionContext::default()
        },
        input_shapes: vec![],
        inputs_dir: None,
        input_files: Default::default(),
        generation: Default::default(),
        seed: 0,
        measure: settings.clone(),
        memory_limited: false,
        per_op_dir: None,
        per_op_runs: 1,
    };
    let timeout = Some(60.0 + 4.0 * settings.max_time_s);
    let limits = ChildLimits {
        timeout_s: timeout,
        memory_limit_bytes: None,
    };
    let reply = measure_in_child(&opts.worker, &req, limits)?.reply;
    let fail = |why: String| Error::Runtime(format!("probe model {}: {why}", path.display()));
    if let Some(kind) = reply.failure {
        return Err(fail(format!(
            "{kind:?}: {}",
            reply.reason.unwrap_or_default()
        )));
    }
    let (Some(lat), Some(mem)) = (reply.latency, reply.memory) else {
        return Err(fail("the worker returned no latency or memory".into()));
    };
    Ok(Measured {
        p50_s: lat.p50_s,
        ci_rel: lat.p50_ci_rel,
        rss_after_session_bytes: mem.rss_after_session_bytes,
        peak_rss_bytes: mem.peak_rss_bytes,
    })
}

/// Fit `time = fixed + slope * work` over the points; a negative intercept or slope (noise
/// at the small size) falls back to a line through the origin and the largest point.
fn fit(points: &[KernelPoint]) -> (f64, f64) {
    let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.work, p.time_s)).collect();
    let largest = points
        .iter()
        .max_by(|a, b| a.work.total_cmp(&b.work))
        .expect("at least one point");
    let through_origin = (0.0, (largest.time_s / largest.work.max(1.0)).max(0.0));
    match crate::stats::fit_line(&xy) {
        Some((a, b)) if a >= 0.0 && b >= 0.0 => (a, b),
        Some((a, _)) if a < 0.0 => through_origin,
        Some((a, _)) => {
            // Negative slope: the times are flat; the mean is the best constant.
            let mean = xy.iter().map(|p| p.1).sum::<f64>() / xy.len() as f64;
            (mean.max(a.min(mean)), 0.0)
        }
        None => through_origin,
    }
}

static INTERRUPTED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(sig, std::sync::atomic::Ordering::SeqCst);
}

/// SIGINT and SIGTERM handlers for the duration of a probe: the probe stops between two
/// micro-models and returns an error (exit status 2, one line) instead of dying mid-way;
/// the children run in process groups of their own, so a Ctrl-C does not kill them
/// half-way through a reply. The previous handlers come back on drop.
struct InterruptGuard {
    old: [(libc::c_int, libc::sighandler_t); 2],
}

impl InterruptGuard {
    fn install() -> Self {
        INTERRUPTED.store(0, std::sync::atomic::Ordering::SeqCst);
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only stores into an atomic (async-signal-safe).
        let old = [libc::SIGINT, libc::SIGTERM].map(|s| (s, unsafe { libc::signal(s, handler) }));
        InterruptGuard { old }
    }

    fn check(&self) -> Result<()> {
        match INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            0 => Ok(()),
            sig => Err(Error::usage(
                "probe",
                format!(
                    "interrupted ({}): no device profile written",
                    crate::isolate::signal_name(sig)
                ),
            )),
        }
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        for (s, h) in self.old {
            // SAFETY: restoring the handler that was installed before.
            unsafe { libc::signal(s, h) };
        }
    }
}

/// Progress hooks.
pub trait ProbeObserver {
    fn measuring(&mut self, _index: usize, _total: usize, _name: &str, _threads: usize) {}
}

/// Run the probe and return the (unsealed) device profile.
pub fn probe(opts: &ProbeOptions, observer: &mut dyn ProbeObserver) -> Result<DeviceProfile> {
    let started = Instant::now();
    if opts.threads.is_empty() || opts.threads.contains(&0) {
        return Err(Error::usage(
            "--threads",
            "thread counts must be at least 1",
        ));
    }
    let guard = InterruptGuard::install();
    let micros = catalog(opts.scope)?;
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary folder", e))?;
    let mut paths = vec![];
    for (i, m) in micros.iter().enumerate() {
        let p = dir.path().join(format!("probe-{i}.onnx"));
        m.model.save(&p)?;
        paths.push(p);
    }
    // Size each child's measurement from what is left of the budget, re-planned before
    // every child: about half of it measures, the rest is process start, session creation
    // and warm-up (whose cost depends on the machine and its load). Each child still
    // measures at least its minimum iterations, so a tiny budget overruns.
    let settings_for = |left_s: f64, children_left: usize| {
        let per_child = (left_s.max(0.0) * 0.5 / children_left.max(1) as f64).clamp(0.02, 5.0);
        MeasureSettings {
            warmup_iterations: 3,
            min_iterations: 10,
            max_iterations: 100_000,
            min_time_s: per_child * 0.5,
            max_time_s: per_child,
            target_ci_rel: 0.02,
            stability_tolerance: 0.05,
        }
    };
    let total = micros.len() * opts.threads.len();
    let mut profiles = vec![];
    let mut fixed_bytes = u64::MAX;
    let mut weight_factors = vec![];
    let mut activation_factors = vec![];
    let mut index = 0;
    for &threads in &opts.threads {
        let mut measured = vec![];
        for (m, p) in micros.iter().zip(&paths) {
            observer.measuring(index, total, &m.name, threads);
            index += 1;
            guard.check()?;
            let settings = settings_for(
                opts.max_time_s - started.elapsed().as_secs_f64(),
                total - index + 1,
            );
            let m = measure_one(p, threads, &settings, opts);
            guard.check()?;
            measured.push(m?);
        }
        let find_chain = |n: usize| {
            micros
                .iter()
                .position(|m| matches!(m.role, Role::Chain(k) if k == n))
                .map(|i| &measured[i])
                .expect("the catalog has both chains")
        };
        let (one, many) = (find_chain(1), find_chain(33));
        let dispatch = ((many.p50_s - one.p50_s) / 32.0).max(0.0);
        let run_overhead = (one.p50_s - dispatch).max(0.0);
        let base_rss = one.rss_after_session_bytes;
        fixed_bytes = fixed_bytes.min(base_rss);
        for (m, r) in micros.iter().zip(&measured) {
            match m.role {
                Role::WeightMemory { weight_bytes } => weight_factors
                    .push(r.rss_after_session_bytes.saturating_sub(base_rss) as f64 / weight_bytes),
                Role::ActivationMemory { activation_bytes } => activation_factors.push(
                    r.peak_rss_bytes.saturating_sub(r.rss_after_session_bytes) as f64
                        / activation_bytes,
                ),
                _ => {}
            }
        }
        // Element-wise fp32 first: the auxiliary nodes of the other micro-models are
        // costed with it.
        let mut kernels: Vec<KernelFit> = vec![];
        let mut order: Vec<usize> = (0..micros.len()).collect();
        order.sort_by_key(|&i| match micros[i].role {
            Role::Kernel {
                class: KernelClass::Elementwise,
                dtype: KernelDtype::Fp32,
                ..
            } => 0,
            _ => 1,
        });
        for i in order {
            let Role::Kernel {
                class,
                dtype,
                work,
                aux_kernels,
                aux_bytes,
            } = micros[i].role
            else {
                continue;
            };
            let aux_s = if aux_kernels == 0 {
                0.0
            } else {
                kernels
                    .iter()
                    .find(|k| k.class == KernelClass::Elementwise && k.dtype == KernelDtype::Fp32)
                    .map(|k| aux_kernels as f64 * k.fixed_s + k.s_per_work * aux_bytes)
                    .unwrap_or(0.0)
            };
            let point = KernelPoint {
                name: micros[i].name.clone(),
                work,
                time_s: (measured[i].p50_s - run_overhead - aux_s).max(0.0),
                p50_ci_rel: measured[i].ci_rel,
            };
            match kernels
                .iter_mut()
                .find(|k| k.class == class && k.dtype == dtype)
            {
                Some(k) => k.points.push(point),
                None => kernels.push(KernelFit {
                    class,
                    dtype,
                    unit: class.unit(),
                    points: vec![point],
                    fixed_s: 0.0,
                    s_per_work: 0.0,
                }),
            }
            let k = kernels
                .iter_mut()
                .find(|k| k.class == class && k.dtype == dtype)
                .expect("just inserted");
            (k.fixed_s, k.s_per_work) = fit(&k.points);
        }
        kernels.sort_by_key(|k| (k.class, k.dtype));
        profiles.push(ThreadProfile {
            threads,
            run_overhead_s: run_overhead,
            dispatch_overhead_s: dispatch,
            kernels,
        });
    }
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(1.0)
    };
    Ok(DeviceProfile {
        schema: DEVICE_SCHEMA.into(),
        edgepack_version: env!("CARGO_PKG_VERSION").into(),
        created_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        onnxruntime_version: opts.onnxruntime_version.clone(),
        host: crate::profile::sweep::host(),
        probe_wall_s: started.elapsed().as_secs_f64(),
        threads: profiles,
        memory: MemoryCost {
            fixed_bytes: fixed_bytes.max(1),
            // Pre-packing makes this at least 1; a noisy reading below it is clamped.
            weight_factor: median(weight_factors).max(1.0),
            activation_factor: median(activation_factors).max(0.0),
        },
        content_sha256: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_is_exact_on_two_points_and_never_negative() {
        let p = |work: f64, time_s: f64| KernelPoint {
            name: String::new(),
            work,
            time_s,
            p50_ci_rel: 0.0,
        };
        let (a, b) = fit(&[p(1e6, 2e-4), p(1e7, 1.1e-3)]);
        assert!((a - 1e-4).abs() < 1e-12 && (b - 1e-10).abs() < 1e-18);
        // Noise gives a negative intercept: the line goes through the origin instead.
        let (a, b) = fit(&[p(1e6, 1e-6), p(1e7, 1.1e-3)]);
        assert_eq!(a, 0.0);
        assert!((b - 1.1e-10).abs() < 1e-18);
    }

    #[test]
    fn full_catalog_builds_and_covers_every_class_and_dtype() {
        let c = catalog(Scope::Full).unwrap();
        let has = |class, dtype| {
            c.iter().any(|m| {
                matches!(m.role, Role::Kernel { class: k, dtype: d, .. } if k == class && d == dtype)
            })
        };
        for class in KernelClass::ALL {
            assert!(has(class, KernelDtype::Fp32), "{class:?}");
        }
        assert!(has(KernelClass::Conv, KernelDtype::Int8));
        assert!(has(KernelClass::Matmul, KernelDtype::Int4));
        assert!(has(KernelClass::Matmul, KernelDtype::Fp16));
        let int4 = c.iter().find(|m| m.name.starts_with("int4")).unwrap();
        assert!(int4
            .model
            .graph()
            .node
            .iter()
            .any(|n| n.op_type == "MatMulNBits"));
    }
}
