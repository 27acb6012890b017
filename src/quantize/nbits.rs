//! `--mode int4-weight`: 4-bit block-quantized weights for large MatMuls, run by ONNX
//! Runtime's contrib op `MatMulNBits` (domain `com.microsoft`, version 1). Activations stay
//! float; the kernel dequantizes the weight block by block inside the matmul, so the file
//! shrinks to about 1/6 of fp32 for these weights and the matmul reads ~7x fewer weight bytes.
//!
//! What is rewritten: a `MatMul` (or `Gemm`, see below) whose B is a 2-D float
//! initializer, whose A is computed (not constant), and whose weight is large enough to
//! matter (see [`MIN_K`], [`MIN_N`], [`MIN_WEIGHTS`]). Nodes named in `--exclude-nodes`
//! stay float. A `Gemm` qualifies when `transA = 0`, `alpha = 1`, and its `C` is absent or
//! a constant vector of N values with `beta = 1`; `C` becomes `MatMulNBits`' `bias` input
//! and `transB` only changes how B is read. Other Gemms stay float and are named in a
//! warning. Convs are never touched: `MatMulNBits` is a matmul kernel, and conv-only models
//! (PP-OCR det and cls) are refused with a pointer to `--mode int8`.
//!
//! Layout (ONNX Runtime's `docs/ContribOperators.md` for `com.microsoft.MatMulNBits`,
//! checked against ORT 1.31 on a K not divisible by the block size; see the tests):
//! - The weight `W[K, N]` is cut along K into `k_blocks = ceil(K / block_size)` blocks per
//!   output column n; each block has its own scale and zero point, and
//!   `W[k, n] ~ (code - zero_point) * scale`.
//! - `B`: uint8 `[N, k_blocks, block_size / 2]`, column n's codes in K order, two per byte,
//!   low nibble first. The last block of a K that is not a multiple of the block size is
//!   padded with the block's zero point, so the padding dequantizes to exactly 0 and adds
//!   nothing whatever the kernel does with it.
//! - `scales`: float `[N, k_blocks]` (ORT 1.31 also accepts the older flat `[N * k_blocks]`).
//! - `zero_points`: uint8 `[N, ceil(k_blocks / 2)]`, packed like B, each column starting on
//!   a new byte; omitted for [`Int4Scheme::Symmetric`], whose zero point is ORT's default 8.
//! - Attributes `K`, `N`, `bits = 4`, `block_size`, `accuracy_level` ([`ACCURACY_LEVEL`]).
//!
//! The default scheme is [`Int4Scheme::Asymmetric`] (min/max per block). On the PP-OCR
//! recognizer (16 held-out text lines) it gave 19.8 dB SQNR against 18.4 dB for symmetric
//! at block 32, and 17.9 against 11.3 dB at block 128, for 1 byte per 2 blocks per column.
//!
//! Not rewritten, and why: MatMuls whose B is computed (attention's `Q x K^T`, `P x V`):
//! `MatMulNBits` needs a constant weight; `Gather` embeddings (ORT has a separate op for
//! those, `GatherBlockQuantized`, not emitted here); convs (see above); weights below the
//! size thresholds, which save little and are named in a warning.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use super::graph::infer_ranks;
use super::math::{pack_u4, quantize_block_u4, unpack_u4, Int4Scheme, U4_SYMMETRIC_ZERO_POINT};
use super::Rewrite;
use crate::error::{Error, Result};
use crate::model::attr::{self, node_label, NodeExt};
use crate::model::graph::{is_default_domain, GraphIndex};
use crate::model::patch::{NodeRef, Patch, Position};
use crate::model::{tensor_data, DataType, Model, NodeProto, TensorProto};
use crate::setting::Setting;

/// The domain and version of the `MatMulNBits` contrib op.
pub const MS_DOMAIN: &str = "com.microsoft";

/// Smallest K (rows of the weight) rewritten: 16 is the smallest block ORT accepts, and a
/// shorter K would be mostly padding at any block size.
pub const MIN_K: usize = 16;

/// Smallest N (columns of the weight) rewritten: narrow outputs (a 2-class head) are
/// usually the layer whose error reaches the result most directly, and save little.
pub const MIN_N: usize = 16;

/// Smallest weight (in values) rewritten: 4096 floats are 16 KiB; below that a node saves
/// under 14 KiB of file while its kernel still pays per-call dispatch and block overhead.
pub const MIN_WEIGHTS: usize = 4096;

/// `accuracy_level` attribute. 4 lets the CPU kernel quantize A to int8 per block and use
/// its int8 dot-product path; 0 keeps A float. Measured with ORT 1.31 on one thread: on a
/// 1024-4096-1024 MLP (block 32) level 4 ran in 0.22 ms
/// against 0.53 ms for level 0 (fp32: 0.92 ms) at the same SQNR to 0.01 dB, because the int8
/// rounding of A is far below the int4 error of the weights; on the PP-OCR recognizer the
/// two ran at the same speed. Where MLAS has no int8 kernel for the block size, ORT
/// computes in fp32 (level 1) instead.
pub const ACCURACY_LEVEL: i64 = 4;

/// int4 weight-only settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Weights per quantization block along K (a power of two, at least 16).
    pub block_size: usize,
    /// Node names kept in float.
    pub exclude_nodes: HashSet<String>,
    /// How a block maps to codes.
    pub scheme: Int4Scheme,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            block_size: 32,
            exclude_nodes: Default::default(),
            scheme: Int4Scheme::Asymmetric,
        }
    }
}

/// How a float weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[K, N]`, as MatMul's B (and Gemm's with `transB = 0`).
    KByN,
    /// `[N, K]`, as Gemm's B with `transB = 1`.
    NByK,
}

/// A `[K, N]` weight quantized blockwise along K, in `MatMulNBits` layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Blockwise {
    /// Rows of the weight (input features).
    pub k: usize,
    /// Columns of the weight (output features).
    pub n: usize,
    /// Values per block along K.
    pub block_size: usize,
    /// `B`: `[N, k_blocks, block_size / 2]` bytes.
    pub packed: Vec<u8>,
    /// `[N, k_blocks]`.
    pub scales: Vec<f32>,
    /// `[N, ceil(k_blocks / 2)]` packed zero points; `None` means the default 8.
    pub zero_points: Option<Vec<u8>>,
}

impl Blockwise {
    /// Quantize `w` (`k * n` values stored as `layout` says). `block_size` must be even.
    pub fn quantize(
        w: &[f32],
        k: usize,
        n: usize,
        layout: WeightLayout,
        block_size: usize,
        scheme: Int4Scheme,
    ) -> Self {
        debug_assert_eq!(w.len(), k * n);
        debug_assert!(block_size >= 2 && block_size.is_multiple_of(2));
        let k_blocks = k.div_ceil(block_size);
        let blob = block_size / 2;
        let zp_row = k_blocks.div_ceil(2);
        let mut packed = Vec::with_capacity(n * k_blocks * blob);
        let mut scales = Vec::with_capacity(n * k_blocks);
        let mut zps = Vec::with_capacity(n * zp_row);
        let mut column = vec![0.0f32; k];
        let mut codes = Vec::with_capacity(k_blocks * block_size);
        let mut col_zps = Vec::with_capacity(k_blocks);
        for c in 0..n {
            for (r, v) in column.iter_mut().enumerate() {
                *v = match layout {
                    WeightLayout::KByN => w[r * n + c],
                    WeightLayout::NByK => w[c * k + r],
                };
            }
            codes.clear();
            col_zps.clear();
            for block in column.chunks(block_size) {
                let q = quantize_block_u4(block, scheme);
                codes.extend_from_slice(&q.codes);
                // Pad a short last block with its zero point: it dequantizes to 0.
                codes.resize(codes.len() + block_size - block.len(), q.zero_point);
                scales.push(q.scale);
                col_zps.push(q.zero_point);
            }
            packed.extend(pack_u4(&codes));
            zps.extend(pack_u4(&col_zps));
        }
        Blockwise {
            k,
            n,
            block_size,
            packed,
            scales,
            zero_points: (scheme == Int4Scheme::Asymmetric).then_some(zps),
        }
    }

    /// Blocks per column.
    pub fn k_blocks(&self) -> usize {
        self.k.div_ceil(self.block_size)
    }

    /// The weight the kernel multiplies by, `[K, N]` row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let kb = self.k_blocks();
        let mut w = vec![0.0f32; self.k * self.n];
        for c in 0..self.n {
            let bytes = &self.packed[c * kb * self.block_size / 2..][..kb * self.block_size / 2];
            let codes = unpack_u4(bytes, self.k);
            let zps = match &self.zero_points {
                Some(z) => unpack_u4(&z[c * kb.div_ceil(2)..], kb),
                None => vec![U4_SYMMETRIC_ZERO_POINT; kb],
            };
            for (r, &code) in codes.iter().enumerate() {
                let b = r / self.block_size;
                w[r * self.n + c] = (code as f32 - zps[b] as f32) * self.scales[c * kb + b];
            }
        }
        w
    }

    /// The `B`, `scales` and (if any) `zero_points` initializers, named `{base}.q4`, ...
    fn tensors(&self, base: &str) -> Result<Vec<TensorProto>> {
        let (n, kb) = (self.n as i64, self.k_blocks() as i64);
        let mut t = vec![
            tensor_data::from_u8(
                &format!("{base}.q4"),
                &[n, kb, self.block_size as i64 / 2],
                &self.packed,
            )?,
            tensor_data::from_f32(&format!("{base}.q4_scales"), &[n, kb], &self.scales)?,
        ];
        if let Some(z) = &self.zero_points {
            t.push(tensor_data::from_u8(
                &format!("{base}.q4_zero_points"),
                &[n, (kb + 1) / 2],
                z,
            )?);
        }
        Ok(t)
    }
}

/// A node that will become `MatMulNBits`.
struct Candidate<'a> {
    /// Index in the prepared graph.
    index: usize,
    weight: &'a TensorProto,
    layout: WeightLayout,
    k: usize,
    n: usize,
    /// Gemm's C, and whether it must be reshaped from `[1, N]` to `[N]`.
    bias: Option<(&'a TensorProto, bool)>,
}

/// Why a MatMul/Gemm with a constant weight is left in float.
enum Kept {
    TooSmall,
    Unsupported(String),
}

/// Decide for one node. `None`: not a MatMul/Gemm with a constant 2-D float weight.
fn classify<'a>(
    node: &NodeProto,
    index_in_graph: usize,
    ix: &GraphIndex<'a>,
    ranks: &HashMap<String, usize>,
) -> Result<Option<std::result::Result<Candidate<'a>, Kept>>> {
    let gemm = match node.op_type.as_str() {
        "MatMul" => false,
        "Gemm" => true,
        _ => return Ok(None),
    };
    if !is_default_domain(&node.domain) || node.input.len() < 2 {
        return Ok(None);
    }
    let Some(w) = ix.initializer(&node.input[1]) else {
        return Ok(None);
    };
    if w.dims.len() != 2 || w.data_type != Some(DataType::Float as i32) {
        return Ok(None);
    }
    if ix.graph().input.iter().any(|i| i.name == w.name) {
        // An initializer that is also a graph input is only a default: callers may feed
        // another weight, so it is not ours to bake into int4.
        return Ok(None);
    }
    if ix.constant(&node.input[0]).is_some() {
        // Constant x constant: the optimizer folds it; nothing to gain at run time.
        return Ok(None);
    }
    let trans_b = gemm && node.attr_i_or("transB", 0)? != 0;
    let (layout, k, n) = if trans_b {
        (WeightLayout::NByK, w.dims[1] as usize, w.dims[0] as usize)
    } else {
        (WeightLayout::KByN, w.dims[0] as usize, w.dims[1] as usize)
    };
    let mut bias = None;
    if gemm {
        let unsupported = |why: String| Ok(Some(Err(Kept::Unsupported(why))));
        if node.attr_i_or("transA", 0)? != 0 {
            return unsupported("transA = 1".into());
        }
        let alpha = node.attr_f_or("alpha", 1.0)?;
        if alpha != 1.0 {
            return unsupported(format!("alpha = {alpha}"));
        }
        if let Some(c) = node.input.get(2).filter(|c| !c.is_empty()) {
            let beta = node.attr_f_or("beta", 1.0)?;
            let Some(ct) = ix.initializer(c) else {
                return unsupported("its C is computed, not constant".into());
            };
            let dims: Vec<i64> = ct.dims.clone();
            let vector = dims == [n as i64] || dims == [1, n as i64];
            if beta != 1.0 || ct.data_type != Some(DataType::Float as i32) || !vector {
                return unsupported(format!(
                    "its C (dims {dims:?}, beta {beta}) is not a float vector of N = {n} values with beta = 1"
                ));
            }
            bias = Some((ct, dims.len() == 2));
        }
    } else if ranks.get(&node.input[0]).is_some_and(|&r| r < 2) {
        return Ok(Some(Err(Kept::Unsupported(
            "its A is 1-D (MatMulNBits needs a matrix)".into(),
        ))));
    }
    if k < MIN_K || n < MIN_N || k * n < MIN_WEIGHTS {
        return Ok(Some(Err(Kept::TooSmall)));
    }
    Ok(Some(Ok(Candidate {
        index: index_in_graph,
        weight: w,
        layout,
        k,
        n,
        bias,
    })))
}

/// Rewrite large constant-weight MatMuls (and simple Gemms) of the prepared model to
/// `MatMulNBits`: one labelled patch for the opset import, one per node, and one dropping
/// the float weights no node reads any more; then the same inside the bodies of `If`,
/// `Loop` and `Scan` nodes ([`super::subgraph`]; weights held by an enclosing graph are
/// quantized where they are read), as one more labelled patch.
pub fn convert(prepared: &Model, origin: &Path, opts: &Options) -> Result<Rewrite> {
    let top = convert_graph(prepared, opts)?;
    let mut model = top.model.clone().unwrap_or_else(|| prepared.clone());
    let (mut matmuls, mut gemms) = (top.matmuls, top.gemms);
    let mut too_small = top.too_small;
    let mut unsupported = top.unsupported;
    let nested = super::subgraph::nested(
        &model,
        super::subgraph::OuterNames::CopyInitializers,
        &mut |sub: &Model| {
            let c = convert_graph(sub, opts)?;
            matmuls += c.matmuls;
            gemms += c.gemms;
            too_small.extend(c.too_small);
            unsupported.extend(c.unsupported);
            Ok(c.model.map(|model| super::subgraph::Rewritten {
                model,
                nodes: c.rewritten,
            }))
        },
    )?;
    if top.model.is_none() && nested.is_empty() {
        return Err(Error::file(
            origin,
            format!(
                "nothing to quantize to int4: no MatMul with a constant 2-D weight of at least \
                 {MIN_K}x{MIN_N} and {MIN_WEIGHTS} values (after exclusions), in the graph or \
                 its If/Loop/Scan bodies (int4-weight applies to MatMul-heavy models; try {} int8)",
                Setting::Mode
            ),
        ));
    }
    let mut labels = top.labels;
    if !nested.is_empty() {
        let p = nested.extend_patch(Patch::new(format!(
            "int4 MatMulNBits in subgraphs: {} nodes in {} subgraphs",
            nested.nodes, nested.graphs
        )));
        labels.push(model.apply(p)?.label);
        super::graph::prune_initializers(&mut model)?;
    }
    let count = matmuls + gemms;
    let mut ops = vec![];
    if matmuls > 0 {
        ops.push(format!("{matmuls} MatMul"));
    }
    if gemms > 0 {
        ops.push(format!("{gemms} Gemm"));
    }
    let scheme = match opts.scheme {
        Int4Scheme::Asymmetric => "asymmetric",
        Int4Scheme::Symmetric => "symmetric",
    };
    let bs = opts.block_size;
    let mut variant = format!("int4-weight: {}, block {bs}, {scheme}", ops.join(" + "));
    if !nested.is_empty() {
        variant.push_str(&format!(" ({} in subgraphs)", nested.nodes));
    }
    let mut warnings = Vec::new();
    if !too_small.is_empty() {
        warnings.push(format!(
            "kept {} MatMul/Gemm in float: weights under {MIN_K}x{MIN_N} or {MIN_WEIGHTS} values ({})",
            too_small.len(),
            name_list(&too_small)
        ));
    }
    for u in unsupported {
        warnings.push(format!("kept {u}"));
    }
    warnings.extend(nested.float_warning("int4-weight"));
    Ok(Rewrite {
        model,
        labels,
        variant,
        count,
        warnings,
    })
}

/// What [`convert_graph`] did to one graph.
struct Int4Graph {
    /// The rewritten model (`None`: nothing to rewrite).
    model: Option<Model>,
    labels: Vec<String>,
    /// Keys of the rewritten nodes.
    rewritten: Vec<String>,
    matmuls: usize,
    gemms: usize,
    too_small: Vec<String>,
    unsupported: Vec<String>,
}

/// [`convert`] on `prepared`'s main graph alone (its subgraphs untouched).
fn convert_graph(prepared: &Model, opts: &Options) -> Result<Int4Graph> {
    let g = prepared.graph();
    let ix = GraphIndex::new(g);
    let ranks = infer_ranks(g);
    let mut candidates = Vec::new();
    let mut too_small = Vec::new();
    let mut unsupported = Vec::new();
    for (i, node) in g.node.iter().enumerate() {
        if opts.exclude_nodes.contains(&node_label(node)) {
            continue;
        }
        match classify(node, i, &ix, &ranks)? {
            None => {}
            Some(Ok(c)) => candidates.push(c),
            Some(Err(Kept::TooSmall)) => too_small.push(node_label(node)),
            Some(Err(Kept::Unsupported(why))) => {
                unsupported.push(format!("{} '{}': {why}", node.op_type, node_label(node)))
            }
        }
    }
    if candidates.is_empty() {
        return Ok(Int4Graph {
            model: None,
            labels: Vec::new(),
            rewritten: Vec::new(),
            matmuls: 0,
            gemms: 0,
            too_small,
            unsupported,
        });
    }

    let mut patches = vec![
        Patch::new(format!("import {MS_DOMAIN} opset 1 for MatMulNBits")).set_opset(MS_DOMAIN, 1),
    ];
    let bs = opts.block_size;
    let mut quantized: HashMap<String, Blockwise> = HashMap::new();
    let mut rewritten: HashSet<usize> = HashSet::new();
    let (mut matmuls, mut gemms) = (0, 0);
    for c in &candidates {
        let node = &g.node[c.index];
        let label = node_label(node);
        let mut p = Patch::new(format!(
            "int4 MatMulNBits {label} ({} K={} N={}, block {bs})",
            node.op_type, c.k, c.n
        ));
        // A weight shared by several nodes is quantized once (same layout: a MatMul and a
        // transB Gemm sharing one tensor would read it differently, so key by both).
        let base = match c.layout {
            WeightLayout::KByN => c.weight.name.clone(),
            WeightLayout::NByK => format!("{}.t", c.weight.name),
        };
        if !quantized.contains_key(&base) {
            let w = tensor_data::to_f32(c.weight)?;
            let q = Blockwise::quantize(&w, c.k, c.n, c.layout, bs, opts.scheme);
            for t in q.tensors(&base)? {
                p = p.add_initializer(t);
            }
            quantized.insert(base.clone(), q);
        }
        let has_zp = quantized[&base].zero_points.is_some();
        let b_name = format!("{base}.q4");
        let s_name = format!("{base}.q4_scales");
        let z_name = if has_zp {
            format!("{base}.q4_zero_points")
        } else {
            String::new()
        };
        let mut inputs: Vec<String> = vec![node.input[0].clone(), b_name, s_name, z_name];
        if let Some((ct, reshape)) = c.bias {
            let bias_name = if reshape {
                let flat = format!("{}.bias", ct.name);
                if ix.initializer(&flat).is_none() && !patches_add(&patches, &flat) {
                    let mut t = ct.clone();
                    t.name = flat.clone();
                    t.dims = vec![c.n as i64];
                    p = p.add_initializer(t);
                }
                flat
            } else {
                ct.name.clone()
            };
            inputs.push(String::new()); // g_idx (deprecated)
            inputs.push(bias_name);
        }
        while inputs.last().is_some_and(String::is_empty) {
            inputs.pop();
        }
        let nb = NodeProto {
            name: node.name.clone(),
            op_type: "MatMulNBits".into(),
            domain: MS_DOMAIN.into(),
            input: inputs,
            output: vec![node.output[0].clone()],
            attribute: vec![
                attr::int("K", c.k as i64),
                attr::int("N", c.n as i64),
                attr::int("bits", 4),
                attr::int("block_size", bs as i64),
                attr::int("accuracy_level", ACCURACY_LEVEL),
            ],
            ..Default::default()
        };
        // One node in, one node out at the same index: later indices do not shift.
        p = p
            .remove_node(NodeRef::Output(node.output[0].clone()))
            .add_node(nb, Position::Index(c.index));
        patches.push(p);
        rewritten.insert(c.index);
        if node.op_type == "Gemm" {
            gemms += 1;
        } else {
            matmuls += 1;
        }
    }

    // Drop the float weights (and reshaped biases) that only rewritten nodes read.
    let replaced: BTreeSet<&str> = candidates
        .iter()
        .flat_map(|c| {
            std::iter::once(c.weight.name.as_str()).chain(
                c.bias
                    .iter()
                    .filter(|(_, reshape)| *reshape)
                    .map(|(t, _)| t.name.as_str()),
            )
        })
        .collect();
    let mut drop = Patch::new("remove the float weights replaced by int4");
    for name in replaced {
        if ix.consumers(name).iter().all(|i| rewritten.contains(i)) {
            drop = drop.remove_initializer(name);
        }
    }
    if !drop.ops.is_empty() {
        patches.push(drop);
    }

    let mut model = prepared.clone();
    let labels = model
        .apply_all(patches)?
        .into_iter()
        .map(|r| r.label)
        .collect();

    Ok(Int4Graph {
        model: Some(model),
        labels,
        rewritten: candidates
            .iter()
            .map(|c| super::graph::node_key(&g.node[c.index]))
            .collect(),
        matmuls,
        gemms,
        too_small,
        unsupported,
    })
}

/// Whether an earlier patch already adds an initializer of this name.
fn patches_add(patches: &[Patch], name: &str) -> bool {
    patches
        .iter()
        .flat_map(|p| &p.ops)
        .any(|op| matches!(op, crate::model::patch::PatchOp::AddInitializer(t) if t.name == name))
}

/// The first few names, then a count.
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::{fixed, GraphBuilder, WeightStorage};
    use crate::quantize::runner::{Engine, NamedTensor};

    /// `x[3, k] -> MatMul(w[k, n]) -> Gemm(w2[128, n], c2[128], transB) -> MatMul(w3[128, 4])`.
    /// What it isolates: a MatMul whose K need not be a multiple of the block size, a
    /// transB Gemm with a bias, and a MatMul too small to rewrite.
    fn model(k: usize, n: usize) -> Model {
        let mut b = GraphBuilder::new("nbits", 7, WeightStorage::Initializer);
        let x = b.input("x", DataType::Float, &fixed(&[3, k as i64]));
        let w = b.weight("w", &[k as i64, n as i64], -1.0, 1.0);
        let h = b.op("MatMul", &[&x, &w], vec![]);
        let w2 = b.weight("w2", &[128, n as i64], -0.5, 0.5);
        let c2 = b.weight("c2", &[128], -0.5, 0.5);
        let g = b.op("Gemm", &[&h, &w2, &c2], vec![attr::int("transB", 1)]);
        let w3 = b.weight("w3", &[128, 4], -0.5, 0.5);
        let y = b.op("MatMul", &[&g, &w3], vec![]);
        b.rename_output(&y, "y");
        b.output("y", DataType::Float, &fixed(&[3, 4]));
        b.into_model()
    }

    fn opts(block_size: usize) -> Options {
        Options {
            block_size,
            ..Default::default()
        }
    }

    fn refusal(m: &Model, origin: &str, o: &Options) -> String {
        match convert(m, Path::new(origin), o) {
            Ok(r) => panic!("expected a refusal, got {}", r.variant),
            Err(e) => e.to_string(),
        }
    }

    fn node<'a>(m: &'a Model, name: &str) -> &'a NodeProto {
        m.graph().node.iter().find(|n| n.name == name).unwrap()
    }

    fn init<'a>(m: &'a Model, name: &str) -> &'a TensorProto {
        m.graph()
            .initializer
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no initializer {name}"))
    }

    #[test]
    fn packs_each_column_along_k_low_nibble_first_and_pads_the_last_block() {
        // W[6, 2], block 4: column 0 is 0..5 (two blocks, the second padded by 2),
        // column 1 is all zeros.
        let w: Vec<f32> = (0..6).flat_map(|r| [r as f32, 0.0]).collect();
        let q = Blockwise::quantize(&w, 6, 2, WeightLayout::KByN, 4, Int4Scheme::Asymmetric);
        assert_eq!(q.k_blocks(), 2);
        assert_eq!(q.packed.len(), 2 * 2 * 2);
        assert_eq!(q.scales.len(), 2 * 2);
        // One zero-point byte per column (2 blocks -> 2 nibbles).
        assert_eq!(q.zero_points.as_ref().unwrap().len(), 2);
        // Block 0 of column 0 is [0, 1, 2, 3]: scale 3/15 -> codes 0, 5, 10, 15.
        assert!((q.scales[0] - 0.2).abs() < 1e-6);
        assert_eq!(&q.packed[0..2], &[0x50, 0xfa]);
        // Block 1 is [4, 5] + padding: scale 5/15, codes 12, 15, then the zero point 0.
        assert_eq!(&q.packed[2..4], &[0xfc, 0x00]);
        assert_eq!(q.zero_points.as_ref().unwrap()[0], 0x00);
        // Column 1 (zeros) has its own blocks.
        assert!(q.packed[4..].iter().all(|&b| b == 0));
        let d = q.dequantize();
        for (a, b) in w.iter().zip(&d) {
            assert!((a - b).abs() < 1e-5, "{w:?} vs {d:?}");
        }
    }

    #[test]
    fn dequantized_weight_is_within_half_a_step_for_both_schemes() {
        let (k, n) = (70, 5);
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * (1.0 + (i % 3) as f32))
            .collect();
        for scheme in [Int4Scheme::Asymmetric, Int4Scheme::Symmetric] {
            let q = Blockwise::quantize(&w, k, n, WeightLayout::KByN, 32, scheme);
            assert_eq!(q.zero_points.is_some(), scheme == Int4Scheme::Asymmetric);
            let d = q.dequantize();
            for r in 0..k {
                for c in 0..n {
                    let step = q.scales[c * q.k_blocks() + r / 32];
                    let err = (w[r * n + c] - d[r * n + c]).abs();
                    assert!(
                        err <= step / 2.0 + 1e-6,
                        "{scheme:?} ({r},{c}): {err} > {step}/2"
                    );
                }
            }
        }
    }

    #[test]
    fn transposed_weight_quantizes_like_its_transpose() {
        let (k, n) = (40, 3);
        let w: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.37).sin()).collect();
        let wt: Vec<f32> = (0..n)
            .flat_map(|c| (0..k).map(move |r| (r, c)))
            .map(|(r, c)| w[r * n + c])
            .collect();
        let a = Blockwise::quantize(&w, k, n, WeightLayout::KByN, 16, Int4Scheme::Asymmetric);
        let b = Blockwise::quantize(&wt, k, n, WeightLayout::NByK, 16, Int4Scheme::Asymmetric);
        assert_eq!(a, b);
    }

    #[test]
    fn rewrites_matmul_and_gemm_with_contrib_op_attributes_and_opset() {
        let m = model(100, 48);
        let r = convert(&m, Path::new("m.onnx"), &opts(32)).unwrap();
        let q = &r.model;
        assert_eq!(r.count, 2);
        assert_eq!(
            r.variant,
            "int4-weight: 1 MatMul + 1 Gemm, block 32, asymmetric"
        );
        assert!(q
            .proto
            .opset_import
            .iter()
            .any(|o| o.domain == MS_DOMAIN && o.version == Some(1)));
        let mm = node(q, "matmul1");
        assert_eq!(
            (mm.op_type.as_str(), mm.domain.as_str()),
            ("MatMulNBits", MS_DOMAIN)
        );
        assert_eq!(mm.attr_i("K").unwrap(), 100);
        assert_eq!(mm.attr_i("N").unwrap(), 48);
        assert_eq!(mm.attr_i("bits").unwrap(), 4);
        assert_eq!(mm.attr_i("block_size").unwrap(), 32);
        assert_eq!(mm.input, ["x", "w.q4", "w.q4_scales", "w.q4_zero_points"]);
        assert_eq!(mm.output, ["matmul1_out"]);
        // K = 100 -> 4 blocks of 32 (the last padded), 16 bytes each.
        assert_eq!(init(q, "w.q4").dims, [48, 4, 16]);
        assert_eq!(init(q, "w.q4").data_type, Some(DataType::Uint8 as i32));
        assert_eq!(init(q, "w.q4_scales").dims, [48, 4]);
        assert_eq!(init(q, "w.q4_zero_points").dims, [48, 2]);
        // Gemm(transB): W2 is [N=128, K=48]; its C becomes the bias input (index 5).
        let gm = node(q, "gemm2");
        assert_eq!(gm.op_type, "MatMulNBits");
        assert_eq!(
            (gm.attr_i("K").unwrap(), gm.attr_i("N").unwrap()),
            (48, 128)
        );
        assert_eq!(gm.input[4], "");
        assert_eq!(gm.input[5], "c2");
        assert_eq!(init(q, "w2.t.q4").dims, [128, 2, 16]);
        // The float weights are gone, the small MatMul stays and is named in a warning.
        let names: Vec<&str> = q
            .graph()
            .initializer
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert!(!names.contains(&"w") && !names.contains(&"w2"), "{names:?}");
        assert_eq!(node(q, "matmul3").op_type, "MatMul");
        assert!(r.warnings[0].contains("'matmul3'"), "{:?}", r.warnings);
        assert_eq!(r.labels.len(), 4, "{:?}", r.labels);
        assert!(r.labels[1].starts_with("int4 MatMulNBits matmul1 (MatMul K=100 N=48"));
    }

    #[test]
    fn symmetric_scheme_omits_zero_points() {
        let m = model(64, 64);
        let o = Options {
            scheme: Int4Scheme::Symmetric,
            ..opts(16)
        };
        let r = convert(&m, Path::new("m.onnx"), &o).unwrap();
        let mm = node(&r.model, "matmul1");
        assert_eq!(mm.input, ["x", "w.q4", "w.q4_scales"]);
        assert_eq!(init(&r.model, "w.q4").dims, [64, 4, 8]);
    }

    #[test]
    fn excluded_nodes_stay_float() {
        let m = model(100, 48);
        let mut o = opts(32);
        o.exclude_nodes.insert("gemm2".into());
        let r = convert(&m, Path::new("m.onnx"), &o).unwrap();
        assert_eq!(r.count, 1);
        assert_eq!(node(&r.model, "gemm2").op_type, "Gemm");
        assert!(r.model.graph().initializer.iter().any(|t| t.name == "w2"));
        o.exclude_nodes.insert("matmul1".into());
        let e = refusal(&m, "m.onnx", &o);
        assert!(e.contains("nothing to quantize to int4"), "{e}");
    }

    #[test]
    fn gemm_with_alpha_is_kept_with_a_reason() {
        let mut m = model(100, 48);
        let g = m
            .graph_mut()
            .node
            .iter_mut()
            .find(|n| n.name == "gemm2")
            .unwrap();
        g.attribute.push(attr::float("alpha", 0.5));
        let r = convert(&m, Path::new("m.onnx"), &opts(32)).unwrap();
        assert_eq!(r.count, 1);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("Gemm 'gemm2': alpha = 0.5")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn conv_only_model_is_refused_with_a_pointer_to_int8() {
        // conv_net ends in a 10-class Gemm: too narrow for int4.
        let m = crate::model::builder::conv_net(1);
        let s = refusal(&m, "cls.onnx", &opts(32));
        assert!(
            s.contains("cls.onnx") && s.contains("nothing to quantize to int4"),
            "{s}"
        );
        assert!(s.contains("try quantization mode int8"), "{s}");
    }

    #[test]
    fn gemm_row_bias_is_flattened_and_an_overridable_weight_is_left_alone() {
        let mut m = model(100, 48);
        let g = m.graph_mut();
        g.initializer
            .iter_mut()
            .find(|t| t.name == "c2")
            .unwrap()
            .dims = vec![1, 128];
        let r = convert(&m, Path::new("m.onnx"), &opts(32)).unwrap();
        assert_eq!(node(&r.model, "gemm2").input[5], "c2.bias");
        assert_eq!(init(&r.model, "c2.bias").dims, [128]);
        assert!(!r.model.graph().initializer.iter().any(|t| t.name == "c2"));
        // A weight also listed as a graph input may be fed at run time: not constant.
        let w = m
            .graph()
            .initializer
            .iter()
            .find(|t| t.name == "w")
            .unwrap();
        let vi = crate::model::builder::value_info("w", DataType::Float, &fixed(&w.dims));
        m.graph_mut().input.push(vi);
        let r = convert(&m, Path::new("m.onnx"), &opts(32)).unwrap();
        assert_eq!(node(&r.model, "matmul1").op_type, "MatMul");
        assert_eq!(r.count, 1);
    }

    #[test]
    fn onnx_runtime_output_matches_the_dequantized_weight_matmul() {
        // What it protects: the byte layout of B, scales and zero points, and the bias
        // input, as ONNX Runtime reads them (K = 100 is not a multiple of the block size).
        if crate::runtime::ensure_for_tests().is_none() {
            return;
        }
        let engine = crate::quantize::engine::RuntimeEngine::new(None, 1).unwrap();
        let (k, n) = (100, 48);
        let m = model(k, n);
        let x: Vec<f32> = (0..3 * k)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
            .collect();
        let feed = vec![NamedTensor {
            name: "x".into(),
            shape: vec![3, k],
            data: crate::tensor::TensorData::F32(x.clone()),
        }];
        for scheme in [Int4Scheme::Asymmetric, Int4Scheme::Symmetric] {
            for bs in [16, 32, 128] {
                let o = Options { scheme, ..opts(bs) };
                let r = convert(&m, Path::new("m.onnx"), &o).unwrap();
                // Reference: the same graph with every rewritten weight replaced by its
                // dequantized value, run as plain MatMul/Gemm.
                let mut reference = m.clone();
                let g = reference.graph_mut();
                let w = tensor_data::to_f32(g.initializer.iter().find(|t| t.name == "w").unwrap())
                    .unwrap();
                let dq = Blockwise::quantize(&w, k, n, WeightLayout::KByN, bs, scheme).dequantize();
                let w2 =
                    tensor_data::to_f32(g.initializer.iter().find(|t| t.name == "w2").unwrap())
                        .unwrap();
                let dq2 =
                    Blockwise::quantize(&w2, n, 128, WeightLayout::NByK, bs, scheme).dequantize();
                // dq2 is [K=48, N=128]; Gemm has transB = 1, so store its transpose.
                let dq2t: Vec<f32> = (0..128)
                    .flat_map(|c| (0..n).map(move |r| (r, c)))
                    .map(|(r, c)| dq2[r * 128 + c])
                    .collect();
                for t in &mut g.initializer {
                    if t.name == "w" {
                        *t = tensor_data::from_f32("w", &t.dims, &dq).unwrap();
                    } else if t.name == "w2" {
                        *t = tensor_data::from_f32("w2", &t.dims, &dq2t).unwrap();
                    }
                }
                let want = engine
                    .load(&reference.to_bytes())
                    .unwrap()
                    .run(&feed, &[])
                    .unwrap();
                // Level 0 keeps A float: the kernel must reproduce the reference exactly.
                let mut exact = r.model.clone();
                for n in &mut exact.graph_mut().node {
                    if n.op_type == "MatMulNBits" {
                        attr::set(n, attr::int("accuracy_level", 0));
                    }
                }
                let got = engine
                    .load(&exact.to_bytes())
                    .unwrap()
                    .run(&feed, &[])
                    .unwrap();
                let scale = want[0].floats().iter().fold(0.0f32, |a, v| a.max(v.abs()));
                for (a, b) in want[0].floats().iter().zip(got[0].floats().iter()) {
                    assert!(
                        (a - b).abs() <= 1e-5 * scale.max(1.0),
                        "{scheme:?} block {bs}: {a} vs {b}"
                    );
                }
                // The emitted level (int8 A inside the kernel) stays close to that.
                let fast = engine
                    .load(&r.model.to_bytes())
                    .unwrap()
                    .run(&feed, &[])
                    .unwrap();
                let drift = got[0]
                    .floats()
                    .iter()
                    .zip(fast[0].floats().iter())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(
                    drift <= 0.05 * scale,
                    "{scheme:?} block {bs}: level {ACCURACY_LEVEL} drifts {drift} of {scale}"
                );
                // And it is an approximation of the float model, not something else.
                let fp = engine.load(&m.to_bytes()).unwrap().run(&feed, &[]).unwrap();
                let err = fp[0]
                    .floats()
                    .iter()
                    .zip(got[0].floats().iter())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(
                    err > 0.0 && err < 0.5 * scale,
                    "{scheme:?} block {bs}: error {err} of {scale}"
                );
            }
        }
    }
}
