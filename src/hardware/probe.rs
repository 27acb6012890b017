//! `edgepack probe`: characterise the device edgepack runs on, for the cost model.
//!
//! The probe builds micro-models in Rust (one kernel each: convs of every class, MatMul,
//! element-wise, pooling, resize; fp32, int8 QDQ as ONNX Runtime fuses it, fp16 and int4
//! `MatMulNBits` made by the quantizer's own passes, so probed kernels are the ones a
//! variant gets) and times each through ONNX Runtime **with the profiler's isolation and
//! measurement protocol**: every (micro-model, threads) pair is measured in
//! `PROBE_ROUNDS` `__profile-worker` children ([`crate::profile::worker`]), one pass over
//! all pairs per round in alternating order, and keeps its median round
//! (`median_round`); each reply carries the p50 with its confidence interval and the
//! process memory. Nothing here times anything itself.
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
use crate::profile::sweep::{round_order, WorkerCommand};
use crate::profile::worker::{measure_in_child, WorkerRequest};
use crate::runtime::{ExecutionContext, GraphOptimizationLevel, Provider, ProviderFallback};
use crate::setting::Setting;

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
    /// `kernels` kernels of a class and dtype doing `work` in all, plus auxiliary
    /// element-wise nodes (`aux_kernels` of them moving `aux_bytes`).
    Kernel {
        class: KernelClass,
        dtype: KernelDtype,
        work: f64,
        kernels: usize,
        aux_kernels: usize,
        aux_bytes: f64,
    },
    /// A small net of every kernel class (int8 ones too with `int8`): the fixed memory of
    /// a real model's session.
    BaselineMemory { int8: bool },
    /// A chain of `n` tiny Adds (run and dispatch overhead).
    Chain(usize),
    /// A MatMul holding `weight_bytes` of weights (memory per weight byte).
    WeightMemory { weight_bytes: f64 },
    /// A chain of 3x3 convs holding `weight_bytes` of weights (memory per conv weight
    /// byte: ONNX Runtime keeps a reordered or pre-packed copy of conv weights beside
    /// the original, so a conv weight costs more resident bytes than a Gemm's).
    ConvWeightMemory { weight_bytes: f64 },
    /// `If`s whose branches hold `weight_bytes` of weights (the extra memory per byte of
    /// weights inside subgraphs).
    SubgraphWeightMemory { weight_bytes: f64 },
    /// The conv-weight stack with a BatchNormalization after every conv, which ONNX
    /// Runtime folds into the conv's weight when it creates the session (memory per byte
    /// of conv weights rewritten once).
    FoldedConvWeightMemory { weight_bytes: f64 },
    /// An Add with `activation_bytes` of inputs and outputs (memory per activation byte).
    ActivationMemory { activation_bytes: f64 },
    /// Weights added to the running value, loaded as they are (`folded: false`) or each
    /// behind a `Reshape` ONNX Runtime's constant folding evaluates (the memory one
    /// folding step leaves per byte, from the difference).
    FoldedWeightMemory { weight_bytes: f64, folded: bool },
}

impl Role {
    /// A memory model: its timing is not used.
    fn memory_only(&self) -> bool {
        match self {
            Role::Kernel { .. } | Role::Chain(_) => false,
            Role::BaselineMemory { .. }
            | Role::WeightMemory { .. }
            | Role::ConvWeightMemory { .. }
            | Role::SubgraphWeightMemory { .. }
            | Role::FoldedConvWeightMemory { .. }
            | Role::FoldedWeightMemory { .. }
            | Role::ActivationMemory { .. } => true,
        }
    }
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

/// Kernels per micro-model: each kernel micro-model is a chain of this many kernels of
/// one class (fewer where the chain shrinks or grows the tensor), and its time is divided
/// among them. A lone kernel would carry what ONNX Runtime adds at a graph's edges (the
/// NCHWc reorders of x86 fp32 convs, the casts of fp16, the Q/DQ of int8) at full weight;
/// in a real model those costs are paid once per run, not once per kernel, so a chain
/// measures the kernel as a model runs it (the edge cost is divided by the chain length).
const CHAIN: usize = 4;

/// How a micro-model's float kernels are turned into the variant's kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Fp32,
    /// int8 QDQ around every kernel (ONNX Runtime fuses each DQ -> op -> Q into its
    /// QLinear kernel; the Q of the input and the DQ of the output stay).
    Int8,
}

/// A micro-model with the total work of its kernels.
struct Built {
    model: Model,
    work: f64,
    kernels: usize,
}

/// A chain of `n` convs on `[1, c, hw, hw]` (c in = c out) in `group` groups (1: dense,
/// `c`: depthwise), `k`x`k`, stride `stride` (a strided chain halves the map at each step).
fn conv_chain(c: i64, hw: i64, k: i64, stride: i64, group: i64, form: Form, n: usize) -> Built {
    let mut b = GraphBuilder::new("probe_conv", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, &[1, c, hw, hw]);
    let wdims = [c, c / group, k, k];
    let mut cur = if form == Form::Int8 {
        qdq_u8(&mut b, &x, "x")
    } else {
        x
    };
    let mut work = 0.0;
    let mut side = hw;
    for i in 0..n {
        let attrs = vec![
            attr::ints("kernel_shape", &[k, k]),
            attr::ints("pads", &[k / 2, k / 2, k / 2, k / 2]),
            attr::ints("strides", &[stride, stride]),
            attr::int("group", group),
        ];
        let out_side = (side + stride - 1) / stride;
        let per = c / group * k * k;
        work += (c * out_side * out_side * per) as f64;
        side = out_side;
        cur = if form == Form::Int8 {
            let w = int8_weight(&mut b, &format!("w{i}"), &wdims);
            let y = b.op("Conv", &[&cur, &w], attrs);
            qdq_u8(&mut b, &y, &format!("y{i}"))
        } else {
            let s = 1.0 / ((c / group * k * k) as f32).sqrt();
            let w = b.weight(&format!("w{i}"), &wdims, -s, s);
            let bias = b.weight(&format!("b{i}"), &[c], -0.1, 0.1);
            b.op("Conv", &[&cur, &w, &bias], attrs)
        };
    }
    Built {
        model: finish(b, &cur),
        work,
        kernels: n,
    }
}

/// A chain of `n` `[m, k] x [k, k]` MatMuls with constant weights.
fn matmul_chain(m: i64, k: i64, form: Form, n: usize) -> Built {
    let mut b = GraphBuilder::new("probe_matmul", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, &[m, k]);
    let mut cur = if form == Form::Int8 {
        qdq_u8(&mut b, &x, "x")
    } else {
        x
    };
    for i in 0..n {
        cur = if form == Form::Int8 {
            let w = int8_weight(&mut b, &format!("w{i}"), &[k, k]);
            let y = b.op("MatMul", &[&cur, &w], vec![]);
            qdq_u8(&mut b, &y, &format!("y{i}"))
        } else {
            let s = 1.0 / (k as f32).sqrt();
            let w = b.weight(&format!("w{i}"), &[k, k], -s, s);
            b.op("MatMul", &[&cur, &w], vec![])
        };
    }
    Built {
        model: finish(b, &cur),
        work: (m * k * k) as f64 * n as f64,
        kernels: n,
    }
}

/// A Gemm (transposed weight, as exporters write fully-connected layers) and a MatMul,
/// each holding a `[k, k]` weight: resident bytes per weight byte after session creation,
/// and at its peak (the model's bytes and the session's copies live together for a while).
fn weights_net(k: i64) -> Model {
    let mut b = GraphBuilder::new("probe_weights", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, &[1, k]);
    let s = 1.0 / (k as f32).sqrt();
    let w = b.weight("w1", &[k, k], -s, s);
    let bias = b.weight("b1", &[k], -0.1, 0.1);
    let g = b.op("Gemm", &[&x, &w, &bias], vec![attr::int("transB", 1)]);
    let r = b.op("Relu", &[&g], vec![]);
    let w = b.weight("w2", &[k, k], -s, s);
    let y = b.op("MatMul", &[&r, &w], vec![]);
    finish(b, &y)
}

fn add(dims: &[i64]) -> Model {
    let mut b = GraphBuilder::new("probe_add", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, dims);
    let y = b.op("Add", &[&x, &x], vec![]);
    finish(b, &y)
}

/// A chain of `n` Adds of the running value and the input (each reads two tensors and
/// writes one); work in bytes of `elem_bytes` per element.
fn add_chain(dims: &[i64], form: Form, n: usize, elem_bytes: f64) -> Built {
    let mut b = GraphBuilder::new("probe_add", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, dims);
    let x = if form == Form::Int8 {
        qdq_u8(&mut b, &x, "x")
    } else {
        x
    };
    let mut cur = x.clone();
    for i in 0..n {
        let y = b.op("Add", &[&cur, &x], vec![]);
        cur = if form == Form::Int8 {
            qdq_u8(&mut b, &y, &format!("y{i}"))
        } else {
            y
        };
    }
    let numel = dims.iter().product::<i64>() as f64;
    Built {
        model: finish(b, &cur),
        work: 3.0 * numel * elem_bytes * n as f64,
        kernels: n,
    }
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

/// A chain of `n` 3x3 stride-2 MaxPools from `[1, c, hw, hw]`; work in bytes read and
/// written at `elem_bytes` per element.
fn pool_chain(c: i64, hw: i64, form: Form, n: usize, elem_bytes: f64) -> Built {
    let mut b = GraphBuilder::new("probe_pool", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, &[1, c, hw, hw]);
    let mut cur = if form == Form::Int8 {
        qdq_u8(&mut b, &x, "x")
    } else {
        x
    };
    let mut work = 0.0;
    let mut side = hw;
    for i in 0..n {
        let out = (side + 1) / 2;
        work += elem_bytes * (c * (side * side + out * out)) as f64;
        side = out;
        let y = b.op(
            "MaxPool",
            &[&cur],
            vec![
                attr::ints("kernel_shape", &[3, 3]),
                attr::ints("pads", &[1, 1, 1, 1]),
                attr::ints("strides", &[2, 2]),
            ],
        );
        cur = if form == Form::Int8 {
            qdq_u8(&mut b, &y, &format!("y{i}"))
        } else {
            y
        };
    }
    Built {
        model: finish(b, &cur),
        work,
        kernels: n,
    }
}

/// A chain of `n` nearest x2 Resizes from `[1, c, hw, hw]`.
fn resize_chain(c: i64, hw: i64, n: usize) -> Built {
    let mut b = GraphBuilder::new("probe_resize", 7, WeightStorage::Initializer);
    let mut cur = f32_input(&mut b, &[1, c, hw, hw]);
    let scales = b.constant(
        tensor_data::from_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0])
            .expect("a well-formed constant"),
    );
    let mut work = 0.0;
    let mut side = hw;
    for _ in 0..n {
        // Reads the map, writes four times it.
        work += f32_bytes(&[c, side, side]) * 5.0;
        side *= 2;
        cur = b.op(
            "Resize",
            &[&cur, "", &scales],
            vec![attr::string("mode", "nearest")],
        );
    }
    Built {
        model: finish(b, &cur),
        work,
        kernels: n,
    }
}

/// A chain of `n` LocalResponseNormalizations (size 5) on `[1, c, hw, hw]`.
fn lrn_chain(c: i64, hw: i64, n: usize) -> Built {
    let mut b = GraphBuilder::new("probe_lrn", 7, WeightStorage::Initializer);
    let mut cur = f32_input(&mut b, &[1, c, hw, hw]);
    for _ in 0..n {
        cur = b.op(
            "LRN",
            &[&cur],
            vec![
                attr::int("size", 5),
                attr::float("alpha", 1e-4),
                attr::float("beta", 0.75),
                attr::float("bias", 1.0),
            ],
        );
    }
    Built {
        model: finish(b, &cur),
        work: 2.0 * f32_bytes(&[c, hw, hw]) * n as f64,
        kernels: n,
    }
}

/// Conv weights in the size mix of a real conv net: bottleneck stages (1x1 reduce, 3x3,
/// 1x1 expand, with bias and Relu) at widths 64, 128, 256 and 512 with `blocks` blocks
/// each, on an 8x8 map (the compute stays short). Returns the model and its conv weight
/// bytes (biases excluded: the cost model counts them as plain weights).
///
/// Why a mix and not a chain of equal convs: what a conv weight costs resident is its
/// kept reordered copy plus the freed copies glibc's heap holds on to, and how many of
/// those a later allocation reuses depends on the sizes side by side. Measured here
/// (BENCHMARKS.md, "Sizing: conv weight memory in the size mix of real nets"), 4 equal
/// 512x512x3x3 convs cost 3.25 bytes per weight byte, while the conv nets of the
/// accuracy benchmark cost 1.8-2.9; this stack, at ResNet-50's widths and block counts,
/// 2.64. (ResNet-50 is one of that benchmark's cases, so its score is partly in sample;
/// the held-out YOLOv8n there is within 9%.)
///
/// With `fold`, a BatchNormalization follows every conv, as in a network exported for
/// training or without folding: ONNX Runtime folds it into the conv when it creates the
/// session, which makes a new weight and frees the loaded one. Measured on an emulated
/// Cortex-A72 (BENCHMARKS.md, "Sizing memory: conv weights rewritten at session
/// creation"), ResNet-50 with its weights in the file costs 2.1 resident bytes per conv
/// weight byte there, Inception v1 (no BatchNormalization) 1.0.
fn bottleneck_weights_net(blocks: [usize; 4], fold: bool) -> (Model, f64) {
    let name = if fold {
        "probe_folded_conv_weights"
    } else {
        "probe_conv_weights"
    };
    let mut b = GraphBuilder::new(name, 7, WeightStorage::Initializer);
    let mut cur = f32_input(&mut b, &[1, 64, 8, 8]);
    let mut cin = 64;
    let mut bytes = 0.0;
    let mut i = 0;
    for (width, n) in [64, 128, 256, 512].into_iter().zip(blocks) {
        for _ in 0..n {
            for (cout, k) in [(width, 1), (width, 3), (4 * width, 1)] {
                let s = 1.0 / ((cin * k * k) as f32).sqrt();
                let dims = [cout, cin, k, k];
                let w = b.weight(&format!("w{i}"), &dims, -s, s);
                let bias = b.weight(&format!("b{i}"), &[cout], -0.1, 0.1);
                bytes += f32_bytes(&dims);
                let mut y = b.op(
                    "Conv",
                    &[&cur, &w, &bias],
                    vec![
                        attr::ints("kernel_shape", &[k, k]),
                        attr::ints("pads", &[k / 2, k / 2, k / 2, k / 2]),
                    ],
                );
                if fold {
                    let bn: Vec<String> = [("scale", 0.5, 1.5), ("shift", -0.1, 0.1)]
                        .into_iter()
                        .chain([("mean", -0.1, 0.1), ("var", 0.5, 1.5)])
                        .map(|(tag, lo, hi)| b.weight(&format!("bn{i}_{tag}"), &[cout], lo, hi))
                        .collect();
                    let ins: Vec<&str> = std::iter::once(y.as_str())
                        .chain(bn.iter().map(String::as_str))
                        .collect();
                    y = b.op("BatchNormalization", &ins, vec![]);
                }
                cur = b.op("Relu", &[&y], vec![]);
                cin = cout;
                i += 1;
            }
        }
    }
    (finish(b, &cur), bytes)
}

/// A chain of `ifs` `If`s on a bool input, each branch adding its own weight of `elems`
/// floats (an initializer of the branch) to the running value: weights held inside
/// subgraphs, as Silero VAD's `If` branches hold its whole network. Returns the model and
/// its weight bytes (both branches of every `If`).
///
/// Why a line of its own: measured with `edgepack profile` on this project's x86-64 host
/// (BENCHMARKS.md, "Sizing: weights inside subgraphs"), 16 MiB of weights cost 1.03
/// resident bytes per byte as initializers of the main graph and 2.2-2.6 inside `If`
/// branches (a conv's weights: 3.3 and 4.6); the cost model adds the difference on top
/// of each weight's own kind.
fn subgraph_weights_net(ifs: usize, elems: i64) -> (Model, f64) {
    let mut b = GraphBuilder::new("probe_subgraph_weights", 7, WeightStorage::Initializer);
    let mut cur = f32_input(&mut b, &[1, elems]);
    b.input("cond", DataType::Bool, &[]);
    for i in 0..ifs {
        let branch = |tag: &str| {
            // Each branch its own seed: two equal weights could be merged by a deduplicating
            // optimizer.
            let seed = 2 * i as u64 + u64::from(tag == "else");
            let mut sub =
                GraphBuilder::new(&format!("if{i}_{tag}"), seed, WeightStorage::Initializer);
            let w = sub.weight(&format!("w{i}_{tag}"), &[1, elems], -0.1, 0.1);
            let y = format!("if{i}_{tag}_y");
            sub.push(crate::model::builder::node(
                &format!("if{i}_{tag}_add"),
                "Add",
                &[&cur, &w],
                &[&y],
                vec![],
            ));
            let mut g = sub.into_graph();
            g.output.push(value_info_unshaped(&y, DataType::Float));
            g
        };
        let then = branch("then");
        let other = branch("else");
        cur = b.op(
            "If",
            &["cond"],
            vec![
                attr::graph("then_branch", then),
                attr::graph("else_branch", other),
            ],
        );
    }
    let bytes = 2.0 * ifs as f64 * f32_bytes(&[1, elems]);
    (finish(b, &cur), bytes)
}

/// `k` weights of `n x n` floats added in turn to the running value: loaded as they are,
/// or (`folded`) each loaded as `[1, n, n]` behind a `Reshape` to `[n, n]`, which ONNX
/// Runtime's constant folding evaluates when it creates the session. Returns the model
/// and its weight bytes.
///
/// Why a line of its own: every folding step over a loaded weight allocates its output,
/// copies it into the graph and frees the intermediate copies, and the heap keeps them.
/// Measured on this project's host with 8 weights of 1 MiB: 10-12 MiB more resident
/// behind the `Reshape` (`benches/constant_folding_memory.sh`); Silero VAD's LSTM weights
/// pass three such steps (`Slice`, `Concat`, `Unsqueeze`) and its session is 6.3 MiB
/// larger with constant folding than without.
fn folded_weights_net(k: usize, n: i64, folded: bool) -> (Model, f64) {
    let name = if folded {
        "probe_folded_weights"
    } else {
        "probe_plain_weights"
    };
    let mut b = GraphBuilder::new(name, 7, WeightStorage::Initializer);
    let mut cur = f32_input(&mut b, &[n, n]);
    let shape = b.ints("shape", &[n, n]);
    for i in 0..k {
        let w = if folded {
            let w = b.weight(&format!("w{i}"), &[1, n, n], -0.1, 0.1);
            b.op("Reshape", &[&w, &shape], vec![])
        } else {
            b.weight(&format!("w{i}"), &[n, n], -0.1, 0.1)
        };
        cur = b.op("Add", &[&cur, &w], vec![]);
    }
    (finish(b, &cur), k as f64 * f32_bytes(&[n, n]))
}

/// A small net of every fp32 kernel class (and, with `int8`, QDQ convs and a MatMul):
/// its resident size is what a session of a real model costs besides its weights and
/// activations (the runtime, the session, the code pages of the kernels it touches, the
/// allocator's first chunks).
fn baseline_net(int8: bool) -> Model {
    let mut b = GraphBuilder::new("probe_baseline", 7, WeightStorage::Initializer);
    let x = f32_input(&mut b, &[1, 8, 16, 16]);
    let conv = |b: &mut GraphBuilder, x: &str, tag: &str, k: i64, s: i64, g: i64| {
        let w = b.weight(&format!("w{tag}"), &[8, 8 / g, k, k], -0.3, 0.3);
        let bias = b.weight(&format!("b{tag}"), &[8], -0.1, 0.1);
        b.op(
            "Conv",
            &[x, &w, &bias],
            vec![
                attr::ints("kernel_shape", &[k, k]),
                attr::ints("pads", &[k / 2, k / 2, k / 2, k / 2]),
                attr::ints("strides", &[s, s]),
                attr::int("group", g),
            ],
        )
    };
    let c1 = conv(&mut b, &x, "c", 3, 1, 1);
    let r = b.op("Relu", &[&c1], vec![]);
    let c2 = conv(&mut b, &r, "d", 3, 1, 8);
    let c3 = conv(&mut b, &c2, "p", 1, 1, 1);
    let c4 = conv(&mut b, &c3, "s", 3, 2, 1);
    let sig = b.op("Sigmoid", &[&c4], vec![]);
    let m = b.op("Mul", &[&c4, &sig], vec![]);
    let p = b.op(
        "MaxPool",
        &[&m],
        vec![
            attr::ints("kernel_shape", &[2, 2]),
            attr::ints("strides", &[2, 2]),
        ],
    );
    let scales = b.constant(
        tensor_data::from_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0])
            .expect("a well-formed constant"),
    );
    let up = b.op(
        "Resize",
        &[&p, "", &scales],
        vec![attr::string("mode", "nearest")],
    );
    let mut cur = b.op("GlobalAveragePool", &[&up], vec![]);
    let shape = b.ints("flat", &[1, 8]);
    cur = b.op("Reshape", &[&cur, &shape], vec![]);
    if int8 {
        let xq = qdq_u8(&mut b, &x, "bx");
        let w = int8_weight(&mut b, "qw", &[8, 8, 3, 3]);
        let y = b.op(
            "Conv",
            &[&xq, &w],
            vec![
                attr::ints("kernel_shape", &[3, 3]),
                attr::ints("pads", &[1, 1, 1, 1]),
            ],
        );
        let yq = qdq_u8(&mut b, &y, "by");
        let g = b.op("GlobalAveragePool", &[&yq], vec![]);
        let g = b.op("Reshape", &[&g, &shape], vec![]);
        let gq = qdq_u8(&mut b, &g, "bg");
        let w = int8_weight(&mut b, "qm", &[8, 8]);
        let mm = b.op("MatMul", &[&gq, &w], vec![]);
        let mq = qdq_u8(&mut b, &mm, "bm");
        cur = b.op("Add", &[&cur, &mq], vec![]);
    }
    let w = b.weight("fc", &[8, 4], -0.3, 0.3);
    let y = b.op("MatMul", &[&cur, &w], vec![]);
    let y = b.op("Softmax", &[&y], vec![attr::int("axis", -1)]);
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
    // A kernel micro-model; `aux_kernels` auxiliary element-wise kernels at the chain's
    // edges move `aux_bytes` (costed with the fp32 element-wise line and subtracted).
    let mut push = |name: String, class, dtype, built: Built, aux_kernels, aux_bytes| {
        out.push(Micro {
            name: format!("{name} x{}", built.kernels),
            model: built.model,
            role: Role::Kernel {
                class,
                dtype,
                work: built.work,
                kernels: built.kernels,
                aux_kernels,
                aux_bytes,
            },
        })
    };
    // Edges: Q of the input (reads 4 bytes, writes 1 per value) and DQ of the output
    // (the reverse); fp16 casts read 4 and write 2 (and back).
    let q_edges = |input: &[i64], output: &[i64]| 1.25 * (f32_bytes(input) + f32_bytes(output));
    let cast_edges = |input: &[i64], output: &[i64]| 1.5 * (f32_bytes(input) + f32_bytes(output));
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
        let name = format!("add {}x{}x{}", d[1], d[2], d[3]);
        push(
            name,
            K::Elementwise,
            D::Fp32,
            add_chain(d, Form::Fp32, CHAIN, 4.0),
            0,
            0.0,
        );
    }
    for &(c, hw) in &conv_sizes {
        let name = format!("conv3x3 {c}x{hw}x{hw}");
        let built = conv_chain(c, hw, 3, 1, 1, Form::Fp32, CHAIN);
        push(name, K::Conv, D::Fp32, built, 0, 0.0);
    }
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
    let big = f32_bytes(&[1, 64, 128, 128]);
    out.push(Micro {
        name: "memory: add 64x128x128".into(),
        model: add(&[1, 64, 128, 128]),
        role: Role::ActivationMemory {
            activation_bytes: 2.0 * big,
        },
    });
    out.push(Micro {
        name: "memory: gemm + matmul 2x 2048x2048 weights".into(),
        model: weights_net(2048),
        role: Role::WeightMemory {
            weight_bytes: 2.0 * f32_bytes(&[2048, 2048]),
        },
    });
    let blocks = [3, 4, 6, 3];
    let (model, weight_bytes) = bottleneck_weights_net(blocks, false);
    out.push(Micro {
        name: format!(
            "memory: conv weights, bottleneck stages {}x{}x{}x{}",
            blocks[0], blocks[1], blocks[2], blocks[3]
        ),
        model,
        role: Role::ConvWeightMemory { weight_bytes },
    });
    let (model, weight_bytes) = bottleneck_weights_net(blocks, true);
    out.push(Micro {
        name: "memory: conv weights with BatchNormalization folded at creation".into(),
        model,
        role: Role::FoldedConvWeightMemory { weight_bytes },
    });
    // 32 Ifs of two 256 KiB branch weights (16 MiB): sizes like Silero VAD's (its largest
    // is 264 KB) and below glibc's mmap ceiling, as most subgraph weights are.
    let (model, weight_bytes) = subgraph_weights_net(32, 65536);
    out.push(Micro {
        name: "memory: weights inside If branches, 64x 256 KiB".into(),
        model,
        role: Role::SubgraphWeightMemory { weight_bytes },
    });
    for folded in [false, true] {
        let (model, weight_bytes) = folded_weights_net(8, 512, folded);
        out.push(Micro {
            name: format!(
                "memory: 8x 1 MiB weights{}",
                if folded {
                    " behind a folded Reshape"
                } else {
                    ""
                }
            ),
            model,
            role: Role::FoldedWeightMemory {
                weight_bytes,
                folded,
            },
        });
    }
    for int8 in [false, true] {
        out.push(Micro {
            name: format!("memory: baseline net{}", if int8 { " int8" } else { "" }),
            model: baseline_net(int8),
            role: Role::BaselineMemory { int8 },
        });
    }
    if scope == Scope::Tiny {
        return Ok(out);
    }
    let mut push = |name: String, class, dtype, built: Built, aux_kernels, aux_bytes| {
        out.push(Micro {
            name: format!("{name} x{}", built.kernels),
            model: built.model,
            role: Role::Kernel {
                class,
                dtype,
                work: built.work,
                kernels: built.kernels,
                aux_kernels,
                aux_bytes,
            },
        })
    };
    // Convs: (class, c, hw, k, stride, groups, chain length), two sizes per class; a
    // strided chain stops before the map gets tiny. Grouped: 1x1 in 4 groups at
    // ShuffleNet's sizes: their per-group GEMMs are small, and a grouped conv's time per
    // MAC grows as they shrink (2.0e-11 s at 256 channels on 28x28 here, 2.6-3.0e-11 at
    // ShuffleNet's; ResNeXt's 3x3 grouped convs are costed by the same line).
    type ConvSize = (i64, i64, i64, i64, i64, usize);
    let convs: [(K, [ConvSize; 2]); 4] = [
        (
            K::ConvPointwise,
            [(32, 32, 1, 1, 1, CHAIN), (128, 56, 1, 1, 1, CHAIN)],
        ),
        (
            K::ConvDepthwise,
            [(32, 32, 3, 1, 32, CHAIN), (128, 112, 3, 1, 128, CHAIN)],
        ),
        (
            K::ConvStrided,
            [(32, 64, 3, 2, 1, 3), (128, 56, 3, 2, 1, 3)],
        ),
        (
            K::ConvGrouped,
            [(64, 28, 1, 1, 4, CHAIN), (272, 14, 1, 1, 4, CHAIN)],
        ),
    ];
    for (class, sizes) in convs {
        for (c, hw, k, s, g, n) in sizes {
            let name = format!("{} {c}x{hw}x{hw} k{k} s{s} g{g}", class.as_str());
            push(
                name,
                class,
                D::Fp32,
                conv_chain(c, hw, k, s, g, Form::Fp32, n),
                0,
                0.0,
            );
        }
    }
    // int8 QDQ: ORT fuses each DQ -> Conv/MatMul -> Q into QLinearConv / QLinearMatMul;
    // the QuantizeLinear of the input and the DequantizeLinear of the output stay.
    let q_convs: [(K, [ConvSize; 2]); 5] = [
        (
            K::Conv,
            [(16, 32, 3, 1, 1, CHAIN), (64, 56, 3, 1, 1, CHAIN)],
        ),
        (
            K::ConvPointwise,
            [(32, 32, 1, 1, 1, CHAIN), (128, 56, 1, 1, 1, CHAIN)],
        ),
        (
            K::ConvDepthwise,
            [(32, 32, 3, 1, 32, CHAIN), (128, 112, 3, 1, 128, CHAIN)],
        ),
        (
            K::ConvStrided,
            [(32, 64, 3, 2, 1, 3), (128, 56, 3, 2, 1, 3)],
        ),
        (
            K::ConvGrouped,
            [(64, 28, 1, 1, 4, CHAIN), (272, 14, 1, 1, 4, CHAIN)],
        ),
    ];
    for (class, sizes) in q_convs {
        for (c, hw, k, s, g, n) in sizes {
            let built = conv_chain(c, hw, k, s, g, Form::Int8, n);
            let last = hw >> if s > 1 { n } else { 0 };
            let aux = q_edges(&[c, hw, hw], &[c, last, last]);
            let name = format!("int8 {} {c}x{hw}x{hw} k{k} s{s} g{g}", class.as_str());
            push(name, class, D::Int8, built, 2, aux);
        }
    }
    for (m, k) in [(64, 256), (256, 512)] {
        let name = format!("matmul {m}x{k}x{k}");
        push(
            name.clone(),
            K::Matmul,
            D::Fp32,
            matmul_chain(m, k, Form::Fp32, CHAIN),
            0,
            0.0,
        );
        let aux = q_edges(&[m, k], &[m, k]);
        let built = matmul_chain(m, k, Form::Int8, CHAIN);
        push(format!("int8 {name}"), K::Matmul, D::Int8, built, 2, aux);
        let built = matmul_chain(m, k, Form::Fp32, CHAIN);
        let aux = cast_edges(&[m, k], &[m, k]);
        let fp16 = Built {
            model: fp16_of(&built.model)?,
            ..built
        };
        push(format!("fp16 {name}"), K::Matmul, D::Fp16, fp16, 2, aux);
        let built = matmul_chain(m, k, Form::Fp32, CHAIN);
        let int4 = Built {
            model: int4_of(&built.model)?,
            ..built
        };
        push(format!("int4 {name}"), K::Matmul, D::Int4, int4, 0, 0.0);
    }
    for &(c, hw) in &conv_sizes {
        let built = conv_chain(c, hw, 3, 1, 1, Form::Fp32, CHAIN);
        let fp16 = Built {
            model: fp16_of(&built.model)?,
            ..built
        };
        let aux = cast_edges(&[c, hw, hw], &[c, hw, hw]);
        push(
            format!("fp16 conv3x3 {c}x{hw}x{hw}"),
            K::Conv,
            D::Fp16,
            fp16,
            2,
            aux,
        );
    }
    // Element-wise and pooling in int8 (ONNX Runtime fuses QDQ Add to QLinearAdd and
    // runs MaxPool on uint8) and fp16.
    for d in &ew_sizes {
        let name = format!("add {}x{}x{}", d[1], d[2], d[3]);
        let built = add_chain(d, Form::Int8, CHAIN, 1.0);
        push(
            format!("int8 {name}"),
            K::Elementwise,
            D::Int8,
            built,
            2,
            q_edges(d, d),
        );
        let built = add_chain(d, Form::Fp32, CHAIN, 2.0);
        let fp16 = Built {
            model: fp16_of(&built.model)?,
            ..built
        };
        push(
            format!("fp16 {name}"),
            K::Elementwise,
            D::Fp16,
            fp16,
            2,
            cast_edges(d, d),
        );
    }
    for (c, hw) in [(32, 64), (64, 224)] {
        let name = format!("maxpool 3x3/2 {c}x{hw}x{hw}");
        let n = 2;
        let last = hw >> n;
        push(
            name.clone(),
            K::Pool,
            D::Fp32,
            pool_chain(c, hw, Form::Fp32, n, 4.0),
            0,
            0.0,
        );
        let aux = q_edges(&[c, hw, hw], &[c, last, last]);
        let built = pool_chain(c, hw, Form::Int8, n, 1.0);
        push(format!("int8 {name}"), K::Pool, D::Int8, built, 2, aux);
        let built = pool_chain(c, hw, Form::Fp32, n, 2.0);
        let fp16 = Built {
            model: fp16_of(&built.model)?,
            ..built
        };
        let aux = cast_edges(&[c, hw, hw], &[c, last, last]);
        push(format!("fp16 {name}"), K::Pool, D::Fp16, fp16, 2, aux);
    }
    for (c, hw) in [(32, 32), (64, 56)] {
        let name = format!("lrn {c}x{hw}x{hw}");
        push(name, K::Lrn, D::Fp32, lrn_chain(c, hw, 2), 0, 0.0);
    }
    // Batch-1 MatMuls with large weights: the time to stream weight bytes (the chain's
    // weights, 16 and 64 MiB, exceed the caches of small devices; work: weight bytes).
    for k in [1024, 2048] {
        let built = matmul_chain(1, k, Form::Fp32, CHAIN);
        let stream = Built {
            work: f32_bytes(&[k, k]) * CHAIN as f64,
            ..built
        };
        let name = format!("matmul 1x{k}x{k} weights");
        push(name, K::WeightStream, D::Fp32, stream, 0, 0.0);
    }
    for (c, hw) in [(16, 16), (32, 32)] {
        let name = format!("resize x2 {c}x{hw}x{hw}");
        push(name, K::Resize, D::Fp32, resize_chain(c, hw, 2), 0, 0.0);
    }
    Ok(out)
}

/// One measured micro-model at one thread count.
#[derive(Clone, Debug, PartialEq)]
struct Measured {
    p50_s: f64,
    ci_rel: f64,
    rss_after_session_bytes: u64,
    peak_rss_bytes: u64,
    /// The peak while the session was created.
    peak_rss_session_create_bytes: u64,
    /// The peak over session creation and runs (what `edgepack profile` reports as the
    /// peak, and what the cost model predicts).
    peak_rss_overall_bytes: u64,
}

/// The per-model limit of a memory model (its session and three runs): generous, as
/// creating a session of 79 MiB of conv weights is slow on a small or emulated board.
const MEMORY_MODEL_TIMEOUT_S: f64 = 600.0;

/// Child processes per (micro-model, threads) pair. Measured on this project's 2-vCPU VM:
/// two one-round probes a few minutes apart disagreed by 1.1-1.9x on 34 of their lines,
/// each line with an interval of about ±1%, scattered over classes (one process's
/// speed, not a drift of the machine), and the cost model built on the slower one put
/// 7 of 27 one-thread cases outside ±20% against 1 for the other (BENCHMARKS.md).
const PROBE_ROUNDS: usize = 3;

/// A memory model's figure from its rounds: the round with the median overall peak (its
/// times are not used, so they do not pick it).
fn median_memory_round(rounds: &[Measured]) -> Measured {
    let mut sorted: Vec<&Measured> = rounds.iter().collect();
    sorted.sort_by_key(|m| m.peak_rss_overall_bytes);
    sorted[sorted.len() / 2].clone()
}

/// A pair's figure from its rounds: the round with the median p50 (memory figures come
/// with it, from the same process), its interval widened to cover the spread of the
/// rounds' p50s around it.
fn median_round(rounds: &[Measured]) -> Measured {
    let mut sorted: Vec<&Measured> = rounds.iter().collect();
    sorted.sort_by(|a, b| a.p50_s.total_cmp(&b.p50_s));
    let mut m = sorted[sorted.len() / 2].clone();
    let (lo, hi) = (sorted[0].p50_s, sorted[sorted.len() - 1].p50_s);
    if m.p50_s > 0.0 {
        m.ci_rel = m.ci_rel.max((hi - lo) / 2.0 / m.p50_s);
    }
    m
}

fn measure_one(
    path: &Path,
    threads: usize,
    settings: &MeasureSettings,
    timeout_s: f64,
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
    let limits = ChildLimits {
        timeout_s: Some(timeout_s),
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
        peak_rss_session_create_bytes: mem
            .peak_rss_session_create_bytes
            .unwrap_or(mem.rss_after_session_bytes),
        peak_rss_overall_bytes: mem
            .peak_rss_bytes
            .max(mem.peak_rss_session_create_bytes.unwrap_or(0)),
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
            Setting::Threads,
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
            // One process per micro-model: the probe's budget is a minute in all.
            rounds: 1,
            warmup_iterations: 3,
            min_iterations: 10,
            max_iterations: 100_000,
            min_time_s: per_child * 0.5,
            max_time_s: per_child,
            target_ci_rel: 0.02,
            stability_tolerance: 0.05,
        }
    };
    let pairs: Vec<(usize, usize)> = (0..opts.threads.len())
        .flat_map(|t| (0..micros.len()).map(move |m| (t, m)))
        .collect();
    let total = pairs.len() * PROBE_ROUNDS;
    let mut rounds: Vec<Vec<Measured>> = vec![Vec::with_capacity(PROBE_ROUNDS); pairs.len()];
    for (index, (_, k)) in round_order(pairs.len(), PROBE_ROUNDS)
        .into_iter()
        .enumerate()
    {
        let (t, mi) = pairs[k];
        let (m, p, threads) = (&micros[mi], &paths[mi], opts.threads[t]);
        observer.measuring(index, total, &m.name, threads);
        guard.check()?;
        let mut settings = settings_for(
            opts.max_time_s - started.elapsed().as_secs_f64(),
            total - index,
        );
        // A hang, not a slow device: the per-model limit is the measurement time four
        // times over and a minute for the session.
        let mut timeout_s = 60.0 + 4.0 * settings.max_time_s;
        if m.role.memory_only() {
            // Only its resident sizes are read: the session's and the first runs' peak.
            // The fewest runs the protocol makes (a cold run, one warm-up, one sizing run
            // and three samples; their times are not used), and time to create its session
            // on a slow device (the conv-weight stack, 79 MiB, runs 1.3 G multiply-adds a
            // run: measured like a kernel it overran the limit on an emulated Cortex-A72).
            settings.warmup_iterations = 1;
            settings.min_iterations = 3;
            settings.max_iterations = 3;
            timeout_s = MEMORY_MODEL_TIMEOUT_S;
        }
        let r = measure_one(p, threads, &settings, timeout_s, opts);
        guard.check()?;
        rounds[k].push(r?);
    }
    let mut profiles = vec![];
    let mut fixed_bytes = u64::MAX;
    let mut baseline_bytes = [u64::MAX; 2];
    let mut weight_factors = vec![];
    let mut create_factors = vec![];
    let mut conv_factors = vec![];
    let mut conv_create_factors = vec![];
    let mut activation_factors = vec![];
    let mut subgraph_factors = vec![];
    let mut folded_factors = vec![];
    let mut folding_factors = vec![];
    for (t, &threads) in opts.threads.iter().enumerate() {
        let measured: Vec<Measured> = pairs
            .iter()
            .zip(&rounds)
            .filter(|((pt, _), _)| *pt == t)
            .map(|((_, mi), r)| {
                if micros[*mi].role.memory_only() {
                    median_memory_round(r)
                } else {
                    median_round(r)
                }
            })
            .collect();
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
                Role::WeightMemory { weight_bytes } | Role::ConvWeightMemory { weight_bytes } => {
                    let (after, create) = if matches!(m.role, Role::ConvWeightMemory { .. }) {
                        (&mut conv_factors, &mut conv_create_factors)
                    } else {
                        (&mut weight_factors, &mut create_factors)
                    };
                    after.push(
                        r.rss_after_session_bytes.saturating_sub(base_rss) as f64 / weight_bytes,
                    );
                    create.push(
                        r.peak_rss_session_create_bytes
                            .saturating_sub(one.peak_rss_session_create_bytes)
                            as f64
                            / weight_bytes,
                    );
                }
                Role::SubgraphWeightMemory { weight_bytes } => subgraph_factors
                    .push(r.rss_after_session_bytes.saturating_sub(base_rss) as f64 / weight_bytes),
                Role::FoldedConvWeightMemory { weight_bytes } => folded_factors
                    .push(r.rss_after_session_bytes.saturating_sub(base_rss) as f64 / weight_bytes),
                Role::FoldedWeightMemory {
                    weight_bytes,
                    folded: true,
                } => {
                    let plain = micros.iter().zip(&measured).find(|(p, _)| {
                        matches!(p.role, Role::FoldedWeightMemory { folded: false, .. })
                    });
                    if let Some((_, p)) = plain {
                        folding_factors.push(
                            (r.rss_after_session_bytes as f64 - p.rss_after_session_bytes as f64)
                                / weight_bytes,
                        );
                    }
                }
                Role::ActivationMemory { activation_bytes } => activation_factors.push(
                    r.peak_rss_bytes.saturating_sub(r.rss_after_session_bytes) as f64
                        / activation_bytes,
                ),
                Role::BaselineMemory { int8 } => {
                    let slot = &mut baseline_bytes[usize::from(int8)];
                    *slot = (*slot).min(r.peak_rss_overall_bytes);
                }
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
                kernels: chained,
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
            // One kernel of the chain: the mean work and time (exact for a line).
            let n = chained.max(1) as f64;
            let point = KernelPoint {
                name: micros[i].name.clone(),
                work: work / n,
                time_s: ((measured[i].p50_s - run_overhead - aux_s) / n).max(0.0),
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
            weight_factor_session_create: Some(median(create_factors).max(1.0)),
            conv_weight_factor: Some(median(conv_factors).max(1.0)),
            conv_weight_factor_session_create: Some(median(conv_create_factors).max(1.0)),
            subgraph_weight_factor: Some(median(subgraph_factors).max(1.0)),
            folded_conv_weight_factor: Some(median(folded_factors).max(1.0)),
            // A noisy reading below zero (nothing left) is clamped.
            constant_folding_factor: Some(median(folding_factors).max(0.0)),
            baseline_bytes: (baseline_bytes[0] != u64::MAX).then_some(baseline_bytes[0]),
            baseline_int8_bytes: (baseline_bytes[1] != u64::MAX).then_some(baseline_bytes[1]),
        },
        derivation: None,
        content_sha256: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(p50_s: f64, ci_rel: f64, rss: u64) -> Measured {
        Measured {
            p50_s,
            ci_rel,
            rss_after_session_bytes: rss,
            peak_rss_bytes: rss,
            peak_rss_session_create_bytes: rss,
            peak_rss_overall_bytes: rss,
        }
    }

    #[test]
    fn a_pair_keeps_its_median_round_with_an_interval_covering_the_rounds() {
        // One slow process (1.5x) among three: the median round wins, memory from the
        // same process, and the interval says the rounds spread ±25% around it.
        let r = [
            measured(1.5e-3, 0.01, 30),
            measured(1.0e-3, 0.01, 10),
            measured(1.0e-3, 0.02, 20),
        ];
        let m = median_round(&r);
        assert_eq!(m.p50_s, 1.0e-3);
        assert!([10, 20].contains(&m.rss_after_session_bytes));
        assert!((m.ci_rel - 0.25).abs() < 1e-12, "{}", m.ci_rel);
        // Rounds that agree keep the process's own interval; one round is itself.
        let same = [measured(2e-3, 0.03, 5), measured(2e-3, 0.01, 6)];
        assert!([0.01, 0.03].contains(&median_round(&same).ci_rel));
        assert_eq!(median_round(&r[..1]), r[0]);
    }

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
    fn conv_weight_memory_is_probed_on_a_mix_of_weight_sizes_and_counts_only_conv_weights() {
        let (m, bytes) = bottleneck_weights_net([3, 4, 6, 3], false);
        let g = m.graph();
        let convs: Vec<_> = g.node.iter().filter(|n| n.op_type == "Conv").collect();
        assert_eq!(convs.len(), 3 * (3 + 4 + 6 + 3));
        let size = |name: &str| {
            let t = g.initializer.iter().find(|t| t.name == name).unwrap();
            4.0 * t.dims.iter().product::<i64>() as f64
        };
        // The role's bytes are the conv weights' (input 1), not their biases.
        let weights: Vec<f64> = convs.iter().map(|n| size(&n.input[1])).collect();
        assert_eq!(weights.iter().sum::<f64>(), bytes);
        assert!((bytes / f64::from(1 << 20) - 79.0).abs() < 1.0, "{bytes}");
        // A mix like a real net's: many sizes, from tens of KiB to MiBs, not one.
        let mut distinct: Vec<u64> = weights.iter().map(|&w| w as u64).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() >= 8, "{distinct:?}");
        assert!(distinct[0] < 64 << 10 && *distinct.last().unwrap() > 2 << 20);
        let c = catalog(Scope::Tiny).unwrap();
        let probed = c
            .iter()
            .filter(|m| matches!(m.role, Role::ConvWeightMemory { .. }))
            .count();
        assert_eq!(probed, 1);
        // The folded variant: the same convs, each followed by a BatchNormalization of
        // its output channels, so ONNX Runtime rewrites every conv weight once.
        let (f, folded_bytes) = bottleneck_weights_net([3, 4, 6, 3], true);
        assert_eq!(folded_bytes, bytes);
        let fg = f.graph();
        let bns: Vec<_> = fg
            .node
            .iter()
            .filter(|n| n.op_type == "BatchNormalization")
            .collect();
        assert_eq!(bns.len(), convs.len());
        for bn in bns {
            let conv = fg.node.iter().find(|n| n.output[0] == bn.input[0]).unwrap();
            assert_eq!(conv.op_type, "Conv");
        }
        assert!(c
            .iter()
            .any(|m| matches!(m.role, Role::FoldedConvWeightMemory { .. })));
    }

    #[test]
    fn folded_weight_memory_differs_from_its_plain_twin_only_by_the_reshapes() {
        // What it protects: the constant-folding line is the difference of the two nets,
        // so they must hold the same weight bytes and the same kernels, and only the
        // folded one may give ONNX Runtime anything to fold (one Reshape per weight of a
        // loaded `[1, n, n]` weight).
        let (plain, a) = folded_weights_net(8, 512, false);
        let (folded, b) = folded_weights_net(8, 512, true);
        assert_eq!(a, b);
        assert_eq!(a, 8.0 * f64::from(1 << 20));
        let ops = |m: &Model, op: &str| m.graph().node.iter().filter(|n| n.op_type == op).count();
        assert_eq!(ops(&plain, "Add"), 8);
        assert_eq!(ops(&folded, "Add"), 8);
        assert_eq!(ops(&plain, "Reshape"), 0);
        assert_eq!(ops(&folded, "Reshape"), 8);
        for n in folded
            .graph()
            .node
            .iter()
            .filter(|n| n.op_type == "Reshape")
        {
            let w = folded
                .graph()
                .initializer
                .iter()
                .find(|t| t.name == n.input[0])
                .unwrap();
            assert_eq!(w.dims, [1, 512, 512]);
        }
        let c = catalog(Scope::Tiny).unwrap();
        let roles: Vec<bool> = c
            .iter()
            .filter_map(|m| match m.role {
                Role::FoldedWeightMemory { folded, .. } => Some(folded),
                _ => None,
            })
            .collect();
        assert_eq!(roles, [false, true]);
    }

    #[test]
    fn subgraph_weight_memory_holds_every_weight_inside_if_branches() {
        let (m, bytes) = subgraph_weights_net(32, 65536);
        let g = m.graph();
        assert!(g.initializer.is_empty(), "the main graph holds no weight");
        let ifs: Vec<_> = g.node.iter().filter(|n| n.op_type == "If").collect();
        assert_eq!(ifs.len(), 32);
        let held: f64 = ifs
            .iter()
            .flat_map(|n| n.attribute.iter().filter_map(|a| a.g.as_ref()))
            .flat_map(|b| &b.initializer)
            .map(|t| 4.0 * t.dims.iter().product::<i64>() as f64)
            .sum();
        assert_eq!(held, bytes);
        assert_eq!(bytes, 16.0 * f64::from(1 << 20));
        // Each branch reads the running value from the outer scope: the chain is one
        // path through every If, so every branch's kernel is created.
        for (i, n) in ifs.iter().enumerate().skip(1) {
            for b in n.attribute.iter().filter_map(|a| a.g.as_ref()) {
                assert_eq!(b.node[0].input[0], ifs[i - 1].output[0]);
            }
        }
        let c = catalog(Scope::Tiny).unwrap();
        let probed = c
            .iter()
            .filter(|m| matches!(m.role, Role::SubgraphWeightMemory { .. }))
            .count();
        assert_eq!(probed, 1);
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
        for dtype in [KernelDtype::Int8, KernelDtype::Fp16] {
            assert!(has(KernelClass::Elementwise, dtype), "{dtype:?}");
            assert!(has(KernelClass::Pool, dtype), "{dtype:?}");
        }
        // Kernels come in chains, so that edge costs (layout reorders, casts, Q/DQ) are
        // divided among them as in a real model.
        assert!(c.iter().all(|m| match m.role {
            Role::Kernel { kernels, .. } => kernels >= 2,
            _ => true,
        }));
        let convs = |name: &str| {
            let m = c.iter().find(|m| m.name.starts_with(name)).unwrap();
            m.model
                .graph()
                .node
                .iter()
                .filter(|n| n.op_type == "Conv")
                .count()
        };
        assert_eq!(convs("conv_depthwise"), CHAIN);
        assert!(c
            .iter()
            .any(|m| matches!(m.role, Role::BaselineMemory { int8: true })));
        let int4 = c.iter().find(|m| m.name.starts_with("int4")).unwrap();
        assert!(int4
            .model
            .graph()
            .node
            .iter()
            .any(|n| n.op_type == "MatMulNBits"));
    }
}
