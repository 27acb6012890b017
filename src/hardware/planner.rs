//! The activation memory ONNX Runtime's CPU session holds for a run, from the graph and
//! its shapes: its allocation planner and the memory pattern laid out from it.
//!
//! Why not the peak of live tensors: ONNX Runtime does not allocate tensors one by one at
//! their sizes. Its allocation planner (`allocation_planner.cc`) gives each node output a
//! buffer: the input's where the kernel may run in place (the unary activations) or where
//! the output is a view of it (Reshape, Squeeze...), else a freed buffer of the same shape
//! and element size, else a new one. A buffer is held from its first producer to the last
//! use of the last tensor that reuses it. After the first run the session lays every
//! buffer out at a fixed offset in one block (the memory pattern, `mem_pattern_planner.h`:
//! each at the best-fitting gap between the buffers held at its allocation, else at the
//! end), and later runs allocate that block whole. A graph whose tensors keep changing
//! size (DenseNet's growing concats) leaves gaps that no later tensor fits, and the block
//! is larger than the live peak: light DenseNet-121's block is 1.4x its live peak.
//! Graph inputs (the caller's) and outputs (allocated on their own, handed back) are
//! outside the block; they are counted apart ([`Planned::io_bytes`]).
//!
//! Which buffers are reused is decided before the run, on the shapes ONNX Runtime's own
//! shape inference gave the graph when it loaded it, not on the shapes of the run
//! (`SameShape`: the same rank, each dim the same value or the same non-empty name; a
//! dim inference left blank matches nothing). Those shapes are the value_info of the
//! optimized graph ([`super::cost::optimized_graph`] has the session write them). So a
//! graph whose spatial dims are symbolic reuses almost nothing: a Conv's output height is
//! blank when its input's is a name, and PP-OCR det's 307 node outputs at level
//! `extended` hold 285 with a blank dim. A tensor the optimized graph gives no shape is
//! not reused either. Measured with ONNX Runtime's `enable_mem_reuse` off, PP-OCR det's
//! and MiniLM's run memory does not change, where YOLOv8n's (its exporter named every
//! dim) and DenseNet's (fixed shapes) grow by a third (BENCHMARKS.md, "Sizing memory:
//! buffer reuse decided on the shapes known before the run").
//!
//! What is resident is what ONNX Runtime's arena has written ([`Arena`]): the first run
//! allocates each buffer on its own, in regions that double; the block of later runs is
//! served by a freed chunk where one is large enough, else by a new region. Measured on
//! 60 profiled cases on two CPUs (run memory: peak RSS less the RSS after session
//! creation), this arena plus the graph's inputs and outputs at the probed factor is within
//! 5 MiB of the run's memory in 49 cases and within 3 MiB in 39, against 44 and 38 for
//! the live peak times the probed factor; the misses are runs served from heap memory the
//! session freed at creation (ResNet-50: 20 MiB less than the arena) and batch-4 runs of
//! PP-OCR rec and YOLOv8n (5-15 MiB more) (BENCHMARKS.md, "Sizing memory: the planner's
//! arena" and "... buffer reuse decided on the shapes known before the run").

use std::collections::{HashMap, HashSet};

use super::cost::{elem_bytes, numel};

use crate::model::graph::shape_proto;
use crate::model::proto::tensor_shape_proto::dimension::Value as DimValue;
use crate::model::proto::{GraphProto, TensorShapeProto};

/// Bytes ONNX Runtime aligns each planned buffer to (`kAllocAlignment`).
const ALIGN_BYTES: f64 = 64.0;

/// Ops whose output is a view of their first input: the planner gives it the input's
/// buffer (the kernels' `Alias(0, 0)`), or whose output is too small to matter.
pub(crate) const VIEW_OPS: &[&str] = &[
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Shape",
    "Size",
    "Identity",
    "Constant",
    "Dropout",
];

/// Ops whose CPU kernel may write its output over its first input (`MayInplace(0, 0)`:
/// the unary activations). ONNX Runtime's element-wise arithmetic (Add, Mul...) does not
/// declare it; its outputs reuse freed buffers of the same shape instead.
const IN_PLACE_OPS: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "Tanh",
    "Elu",
    "Selu",
    "Softplus",
    "Softsign",
    "ThresholdedRelu",
];

/// A run's activation memory as ONNX Runtime plans it.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Planned {
    /// The largest sum of tensors live at once (a tensor from its producer to its last
    /// consumer, graph inputs and outputs included): the floor of any plan.
    pub live_peak_bytes: f64,
    /// The memory pattern's block: the planner's buffers (graph inputs and outputs not
    /// among them) at the offsets its best-fit layout gives them.
    pub pattern_bytes: f64,
    /// Graph inputs and outputs, held outside the block for the whole run.
    pub io_bytes: f64,
    /// Bytes of ONNX Runtime's arena ever written over three runs ([`Arena`]).
    #[serde(default)]
    pub arena_touched_bytes: f64,
    /// Of those, the first run's (each buffer allocated on its own, no pattern yet).
    #[serde(default)]
    pub arena_first_run_bytes: f64,
    /// Node outputs the planner placed (graph outputs apart), and the buffers they share:
    /// as many buffers as tensors means nothing was reused or run in place (shapes ONNX
    /// Runtime did not know before the run).
    #[serde(default)]
    pub tensors: usize,
    #[serde(default)]
    pub buffers: usize,
}

/// A tensor as the run has it: its shape, element type and bytes.
struct RunTensor {
    shape: Vec<i64>,
    elem: i32,
    bytes: f64,
}

/// A planned buffer: its size, the node that first allocates it and the node after which
/// it is released.
struct Buffer<'g> {
    bytes: f64,
    shape: Vec<i64>,
    /// The shape known before the run of the tensor that allocated it.
    known: Option<&'g TensorShapeProto>,
    elem: i32,
    first: usize,
    last: usize,
    /// Uses still to come of every tensor that shares it.
    uses_left: usize,
}

/// ONNX Runtime's `SameShape`: the same rank, and each dim the same value or the same
/// non-empty name. A blank dim (inference knew neither) is equal to nothing.
fn same_shape(a: &TensorShapeProto, b: &TensorShapeProto) -> bool {
    a.dim.len() == b.dim.len()
        && a.dim
            .iter()
            .zip(&b.dim)
            .all(|(x, y)| match (&x.value, &y.value) {
                (Some(DimValue::DimValue(x)), Some(DimValue::DimValue(y))) => x == y,
                (Some(DimValue::DimParam(x)), Some(DimValue::DimParam(y))) => {
                    !x.is_empty() && x == y
                }
                _ => false,
            })
}

/// Whether ONNX Runtime's planner may put a tensor known before the run as `(b, b_elem)`
/// in the buffer of one known as `(a, a_elem)` (`SameSize`): both shapes known and the
/// same ([`same_shape`]), elements of the same size, neither a string.
fn reusable(
    a: Option<&TensorShapeProto>,
    a_elem: i32,
    b: Option<&TensorShapeProto>,
    b_elem: i32,
) -> bool {
    const STRING: i32 = 8;
    match (a, b) {
        (Some(a), Some(b)) => {
            a_elem != STRING
                && b_elem != STRING
                && elem_bytes(a_elem) == elem_bytes(b_elem)
                && same_shape(a, b)
        }
        _ => false,
    }
}

/// What [`allocation_plan`] returns.
struct Allocation<'g> {
    buffers: Vec<Buffer<'g>>,
    /// Graph outputs: the node that makes each, and its bytes.
    outputs: Vec<(usize, f64)>,
    /// Node outputs placed in the buffers.
    tensors: usize,
}

/// The allocation plan: a buffer per node output, shared where the planner reuses one
/// (see the module doc), and the graph outputs, allocated apart (the node that makes
/// each, and its bytes). `known` gives a tensor's run shape, element type and bytes.
fn allocation_plan<'g>(
    g: &'g GraphProto,
    known: &dyn Fn(&str) -> Option<RunTensor>,
    types: &HashMap<String, i32>,
) -> Allocation<'g> {
    let declared: HashMap<&str, &TensorShapeProto> = g
        .input
        .iter()
        .chain(&g.value_info)
        .chain(&g.output)
        .filter_map(|v| Some((v.name.as_str(), shape_proto(v)?)))
        .collect();
    let graph_outputs: HashSet<&str> = g.output.iter().map(|v| v.name.as_str()).collect();
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for n in &g.node {
        for x in n.input.iter().filter(|x| !x.is_empty()) {
            *uses.entry(x.as_str()).or_default() += 1;
        }
    }
    let mut buffers: Vec<Buffer> = vec![];
    let mut buffer_of: HashMap<&str, usize> = HashMap::new();
    // Buffers whose tensors are all used, most recently freed first.
    let mut freelist: Vec<usize> = vec![];
    // Graph outputs: the node that makes each, and its bytes.
    let mut outputs: Vec<(usize, f64)> = vec![];
    for (i, n) in g.node.iter().enumerate() {
        let op = n.op_type.as_str();
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            let Some(RunTensor { shape, elem, bytes }) = known(o) else {
                continue;
            };
            if graph_outputs.contains(o.as_str()) {
                outputs.push((i, bytes));
                continue;
            }
            let o_uses = uses.get(o.as_str()).copied().unwrap_or(0);
            let o_known = declared.get(o.as_str()).copied();
            let input0 = n
                .input
                .first()
                .and_then(|x| buffer_of.get(x.as_str()).copied());
            if VIEW_OPS.contains(&op) && input0.is_none() {
                // A view of a graph input or a weight: no buffer of its own.
                continue;
            }
            let shared = if VIEW_OPS.contains(&op) {
                input0
            } else if IN_PLACE_OPS.contains(&op) {
                // The input's buffer, where this node is its last use and the input is
                // known to have the output's size.
                let x = n.input[0].as_str();
                let x_known = declared.get(x).copied();
                let x_elem = types.get(x).copied().unwrap_or(1);
                input0.filter(|&b| {
                    let here = n.input.iter().filter(|y| y.as_str() == x).count();
                    buffers[b].uses_left == here
                        && reusable(x_known, x_elem, o_known, elem)
                        && buffers[b].shape == shape
                })
            } else {
                None
            }
            .or_else(|| {
                // A freed buffer whose tensor was known to have this one's size (never
                // for a scalar).
                if o_known.is_none_or(|k| k.dim.is_empty()) {
                    return None;
                }
                let at = freelist.iter().rposition(|&b| {
                    reusable(buffers[b].known, buffers[b].elem, o_known, elem)
                        && buffers[b].shape == shape
                })?;
                Some(freelist.remove(at))
            });
            match shared {
                Some(b) => {
                    buffers[b].uses_left += o_uses;
                    buffers[b].last = i;
                    buffer_of.insert(o.as_str(), b);
                }
                None => {
                    buffers.push(Buffer {
                        bytes: (bytes / ALIGN_BYTES).ceil() * ALIGN_BYTES,
                        shape,
                        known: o_known,
                        elem,
                        first: i,
                        last: i,
                        uses_left: o_uses,
                    });
                    buffer_of.insert(o.as_str(), buffers.len() - 1);
                }
            }
        }
        for x in n.input.iter().filter(|x| !x.is_empty()) {
            if let Some(&b) = buffer_of.get(x.as_str()) {
                let buf = &mut buffers[b];
                buf.uses_left = buf.uses_left.saturating_sub(1);
                buf.last = buf.last.max(i);
            }
        }
        // Buffers this node leaves unused go to the free list (an output nothing reads
        // included), once.
        let mut touched: Vec<usize> = n
            .input
            .iter()
            .chain(n.output.iter())
            .filter_map(|x| buffer_of.get(x.as_str()).copied())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        for b in touched {
            if buffers[b].uses_left == 0 && !freelist.contains(&b) {
                freelist.push(b);
            }
        }
    }

    Allocation {
        tensors: buffer_of.len(),
        buffers,
        outputs,
    }
}

/// Plans the graph's node outputs as ONNX Runtime's CPU session does (see the module
/// doc) and returns its activation memory. `shapes` and `types` give a tensor's shape and
/// element type where known; tensors of unknown shape count nothing. Reuse is decided on
/// the shapes `g` declares (its inputs, outputs and value_info), as ONNX Runtime knew them
/// before the run.
pub fn plan(
    g: &GraphProto,
    shapes: &HashMap<String, Vec<i64>>,
    types: &HashMap<String, i32>,
) -> Planned {
    let known = |x: &str| -> Option<RunTensor> {
        let shape = shapes.get(x)?.clone();
        let elem = types.get(x).copied().unwrap_or(1);
        let bytes = numel(&shape)? * elem_bytes(elem);
        Some(RunTensor { shape, elem, bytes })
    };
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let graph_inputs: HashSet<&str> = g
        .input
        .iter()
        .map(|v| v.name.as_str())
        .filter(|x| !inits.contains(x))
        .collect();
    let graph_outputs: HashSet<&str> = g.output.iter().map(|v| v.name.as_str()).collect();
    let io_bytes: f64 = graph_inputs
        .iter()
        .chain(graph_outputs.iter())
        .filter_map(|x| known(x).map(|k| k.bytes))
        .sum();
    let Allocation {
        buffers,
        outputs,
        tensors,
    } = allocation_plan(g, &known, types);

    // The memory pattern: each buffer at the best-fitting gap among those held when it
    // is allocated, else after the last; the block is the highest end.
    let mut held: Vec<(f64, f64, usize)> = vec![]; // (offset, bytes, release node), by offset
    let mut pattern_bytes: f64 = 0.0;
    // Buffers are made in node order (a buffer's first producer only grows).
    let mut next = (0..buffers.len()).peekable();
    for i in 0..g.node.len() {
        while let Some(&b) = next.peek() {
            if buffers[b].first != i {
                break;
            }
            next.next();
            let bytes = buffers[b].bytes;
            let mut best: Option<(f64, f64)> = None; // (waste, offset)
            let mut end: f64 = 0.0;
            for &(offset, size, _) in &held {
                let gap = offset - end;
                if gap >= bytes && best.is_none_or(|(waste, _)| gap - bytes < waste) {
                    best = Some((gap - bytes, end));
                }
                end = end.max(offset + size);
            }
            let offset = best.map_or(end, |(_, o)| o);
            pattern_bytes = pattern_bytes.max(offset + bytes);
            let at = held.partition_point(|h| h.0 <= offset);
            held.insert(at, (offset, bytes, buffers[b].last));
        }
        held.retain(|h| h.2 > i);
    }

    // Three runs through the arena: the first allocates each buffer on its own, the
    // later ones the pattern's block; graph outputs on their own, dropped after the run.
    let mut made_at: Vec<Vec<(f64, usize)>> = vec![vec![]; g.node.len()];
    for b in &buffers {
        made_at[b.first].push((b.bytes, b.last));
    }
    let mut outputs_at: Vec<Vec<f64>> = vec![vec![]; g.node.len()];
    for &(i, bytes) in &outputs {
        outputs_at[i].push(bytes);
    }
    let mut arena = Arena::default();
    let mut held_run1: Vec<((usize, f64), usize)> = vec![];
    let mut arena_first_run_bytes = 0.0;
    for run in 0..3 {
        let block = (run > 0 && pattern_bytes > 0.0).then(|| arena.alloc(pattern_bytes));
        let mut out_chunks = vec![];
        for i in 0..g.node.len() {
            if run == 0 {
                for &(bytes, last) in &made_at[i] {
                    held_run1.push((arena.alloc(bytes), last));
                }
            }
            for &bytes in &outputs_at[i] {
                out_chunks.push(arena.alloc(bytes));
            }
            held_run1.retain(|&(chunk, last)| {
                if last <= i {
                    arena.free(chunk);
                    false
                } else {
                    true
                }
            });
        }
        for c in out_chunks {
            arena.free(c);
        }
        if let Some(c) = block {
            arena.free(c);
        }
        if run == 0 {
            arena_first_run_bytes = arena.touched_bytes();
        }
    }

    Planned {
        live_peak_bytes: live_peak(g, &|x| known(x).map_or(0.0, |k| k.bytes), &inits),
        pattern_bytes,
        io_bytes,
        arena_touched_bytes: arena.touched_bytes(),
        arena_first_run_bytes,
        tensors,
        buffers: buffers.len(),
    }
}

/// ONNX Runtime's CPU arena (`bfc_arena.cc`, default settings): regions of 1 MiB doubling
/// (`kNextPowerOfTwo`), a request rounded to 256 bytes and served by the smallest free
/// chunk that fits (split when the chunk is at least twice the request), freed chunks
/// merged with free neighbours. What counts is the pages ever written: a region's memory
/// is resident only where a chunk was used.
struct Arena {
    next_region_bytes: f64,
    regions: Vec<Region>,
}

struct Region {
    /// (offset, bytes, in use), by offset, covering the region.
    chunks: Vec<(f64, f64, bool)>,
    /// Written pages.
    touched: Vec<bool>,
}

const PAGE_BYTES: f64 = 4096.0;

impl Default for Arena {
    fn default() -> Self {
        Arena {
            next_region_bytes: 1024.0 * 1024.0,
            regions: vec![],
        }
    }
}

impl Arena {
    /// Allocates `bytes`; returns (region, offset).
    fn alloc(&mut self, bytes: f64) -> (usize, f64) {
        let rounded = ((bytes.max(1.0)) / 256.0).ceil() * 256.0;
        let mut best: Option<(f64, usize, usize)> = None; // (size, region, chunk)
        for (r, region) in self.regions.iter().enumerate() {
            for (c, &(_, size, used)) in region.chunks.iter().enumerate() {
                if !used && size >= rounded && best.is_none_or(|b| size < b.0) {
                    best = Some((size, r, c));
                }
            }
        }
        let (r, c) = match best {
            Some((_, r, c)) => (r, c),
            None => {
                let mut grew = false;
                while rounded > self.next_region_bytes {
                    self.next_region_bytes *= 2.0;
                    grew = true;
                }
                let size = self.next_region_bytes;
                if !grew {
                    self.next_region_bytes *= 2.0;
                }
                self.regions.push(Region {
                    chunks: vec![(0.0, size, false)],
                    touched: vec![false; (size / PAGE_BYTES).ceil() as usize],
                });
                (self.regions.len() - 1, 0)
            }
        };
        let region = &mut self.regions[r];
        let (offset, size, _) = region.chunks[c];
        if size >= 2.0 * rounded {
            region.chunks[c] = (offset, rounded, true);
            region
                .chunks
                .insert(c + 1, (offset + rounded, size - rounded, false));
        } else {
            region.chunks[c].2 = true;
        }
        let first = (offset / PAGE_BYTES) as usize;
        let last = ((offset + bytes) / PAGE_BYTES).ceil() as usize;
        for p in region.touched.iter_mut().take(last).skip(first) {
            *p = true;
        }
        (r, offset)
    }

    fn free(&mut self, (r, offset): (usize, f64)) {
        let chunks = &mut self.regions[r].chunks;
        let Some(c) = chunks.iter().position(|ch| ch.0 == offset && ch.2) else {
            return;
        };
        chunks[c].2 = false;
        if c + 1 < chunks.len() && !chunks[c + 1].2 {
            chunks[c].1 += chunks[c + 1].1;
            chunks.remove(c + 1);
        }
        if c > 0 && !chunks[c - 1].2 {
            chunks[c - 1].1 += chunks[c].1;
            chunks.remove(c);
        }
    }

    fn touched_bytes(&self) -> f64 {
        self.regions
            .iter()
            .map(|r| r.touched.iter().filter(|&&t| t).count() as f64 * PAGE_BYTES)
            .sum()
    }
}

/// Peak bytes of live tensors when the graph runs in its order: a tensor lives from its
/// producer (graph inputs: from the start) to its last consumer (graph outputs: the end);
/// views hold nothing of their own.
fn live_peak(g: &GraphProto, size: &dyn Fn(&str) -> f64, inits: &HashSet<&str>) -> f64 {
    let mut last_use: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for x in &n.input {
            last_use.insert(x.as_str(), i);
        }
    }
    let end = g.node.len();
    for o in &g.output {
        last_use.insert(o.name.as_str(), end);
    }
    let views: HashSet<&str> = g
        .node
        .iter()
        .filter(|p| VIEW_OPS.contains(&p.op_type.as_str()))
        .flat_map(|p| p.output.iter().map(|o| o.as_str()))
        .collect();
    let is_input = |x: &str| g.input.iter().any(|v| v.name == x);
    let mut live: f64 = g
        .input
        .iter()
        .filter(|v| !inits.contains(v.name.as_str()))
        .map(|v| size(&v.name))
        .sum();
    let mut peak = live;
    for (i, n) in g.node.iter().enumerate() {
        let is_view = VIEW_OPS.contains(&n.op_type.as_str());
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if !is_view {
                live += size(o);
            }
        }
        peak = peak.max(live);
        for x in n.input.iter().filter(|x| !x.is_empty()) {
            if !inits.contains(x.as_str())
                && last_use.get(x.as_str()) == Some(&i)
                && !is_input(x)
                && !views.contains(x.as_str())
            {
                live -= size(x);
            }
        }
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if !is_view && !last_use.contains_key(o.as_str()) {
                live -= size(o);
            }
        }
    }
    peak.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::value_info;
    use crate::model::proto::NodeProto;
    use crate::model::{DataType, Dim};

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    /// The graph of `nodes` from `x` to `output`, each tensor of `shapes` declared with
    /// the dims `declare` gives its shape (as ONNX Runtime's inference would have them).
    fn planned_as(
        nodes: Vec<NodeProto>,
        shapes: &[(&str, &[i64])],
        output: &str,
        declare: &dyn Fn(&[i64]) -> Vec<Dim>,
    ) -> Planned {
        let declared = |name: &str| {
            let s = shapes
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&[][..], |s| s.1);
            value_info(name, DataType::Float, &declare(s))
        };
        let g = GraphProto {
            node: nodes,
            input: vec![declared("x")],
            output: vec![declared(output)],
            value_info: shapes
                .iter()
                .filter(|(n, _)| *n != "x" && *n != output)
                .map(|(n, _)| declared(n))
                .collect(),
            ..Default::default()
        };
        let shapes: HashMap<String, Vec<i64>> = shapes
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect();
        plan(&g, &shapes, &HashMap::new())
    }

    /// [`planned_as`] with every shape known before the run.
    fn planned(nodes: Vec<NodeProto>, shapes: &[(&str, &[i64])], output: &str) -> Planned {
        planned_as(nodes, shapes, output, &|s| {
            s.iter().map(|&d| Dim::Fixed(d)).collect()
        })
    }

    #[test]
    fn in_place_activations_and_views_share_their_inputs_buffer() {
        // What it protects: ONNX Runtime writes a Relu over its input and a Reshape is a
        // view; counting each as a tensor of its own doubles a conv net's activations.
        let p = planned(
            vec![
                node("Exp", &["x"], "a"),
                node("Relu", &["a"], "b"),
                node("Reshape", &["b", "shape"], "c"),
                node("Exp", &["c"], "y"),
            ],
            &[
                ("x", &[1, 256]),
                ("a", &[1, 256]),
                ("b", &[1, 256]),
                ("c", &[256]),
                ("y", &[256]),
            ],
            "y",
        );
        assert_eq!(p.pattern_bytes, 1024.0);
        assert_eq!(p.io_bytes, 2048.0);
    }

    /// x -> Exp a -> Exp b -> Exp c -> Exp y, each of the given number of floats.
    fn exp_chain(floats: [i64; 5]) -> Planned {
        let names = ["x", "a", "b", "c", "y"];
        let nodes = (1..5)
            .map(|i| node("Exp", &[names[i - 1]], names[i]))
            .collect();
        let shapes: Vec<(&str, &[i64])> = names
            .iter()
            .zip(floats.iter())
            .map(|(n, f)| (*n, std::slice::from_ref(f)))
            .collect();
        planned(nodes, &shapes, "y")
    }

    #[test]
    fn a_freed_buffer_of_the_same_shape_is_reused() {
        // a and b, then c in a's buffer: two buffers.
        assert_eq!(exp_chain([64; 5]).pattern_bytes, 512.0);
    }

    #[test]
    fn reuse_is_decided_on_the_shapes_known_before_the_run() {
        // What it protects: ONNX Runtime reuses a freed buffer only for a tensor its
        // inference gave the same shape, dim by dim, by value or by name. A Conv's output
        // height is blank when its input's is a name, and PP-OCR det, whose spatial dims
        // are names, reuses nothing; planned on the run's shapes, MiniLM's run memory was
        // simulated at twice the measured.
        // x -> Exp a -> Exp b -> Exp c -> Exp y, 16 floats each.
        let names = ["x", "a", "b", "c", "y"];
        let g = |declare: &dyn Fn(&str) -> Vec<Dim>| GraphProto {
            node: names
                .windows(2)
                .map(|w| node("Exp", &[w[0]], w[1]))
                .collect(),
            input: vec![value_info("x", DataType::Float, &declare("x"))],
            output: vec![value_info("y", DataType::Float, &declare("y"))],
            value_info: ["a", "b", "c"]
                .iter()
                .map(|n| value_info(n, DataType::Float, &declare(n)))
                .collect(),
            ..Default::default()
        };
        let known = |_: &str| {
            Some(RunTensor {
                shape: vec![16],
                elem: 1,
                bytes: 64.0,
            })
        };
        let buffers = |g: &GraphProto| allocation_plan(g, &known, &HashMap::new()).buffers.len();
        // By value or by name, the same dim: c goes in a's freed buffer.
        assert_eq!(buffers(&g(&|_| vec![Dim::Fixed(16)])), 2);
        assert_eq!(buffers(&g(&|_| vec![Dim::Symbol("n".into())])), 2);
        // Names that differ, a blank dim, or no shape at all: c gets a buffer of its own.
        assert_eq!(buffers(&g(&|n| vec![Dim::Symbol(n.into())])), 3);
        assert_eq!(buffers(&g(&|_| vec![Dim::Unknown])), 3);
        let unshaped = GraphProto {
            value_info: vec![],
            ..g(&|_| vec![Dim::Fixed(16)])
        };
        assert_eq!(buffers(&unshaped), 3);
        // An activation runs in place only where its input is known to be its size.
        let relu = |declare_b: Dim| GraphProto {
            node: vec![node("Exp", &["x"], "a"), node("Relu", &["a"], "b")],
            value_info: vec![
                value_info("a", DataType::Float, &[Dim::Symbol("n".into())]),
                value_info("b", DataType::Float, &[declare_b]),
            ],
            output: vec![value_info("y", DataType::Float, &[])],
            ..Default::default()
        };
        let in_place = |g: &GraphProto| allocation_plan(g, &known, &HashMap::new()).buffers.len();
        assert_eq!(in_place(&relu(Dim::Symbol("n".into()))), 1);
        assert_eq!(in_place(&relu(Dim::Unknown)), 2);
    }

    #[test]
    fn a_gap_no_later_tensor_fits_makes_the_block_larger_than_the_live_peak() {
        // What it protects: DenseNet's concats grow, each freed tensor leaves a gap too
        // small for the next, and the memory pattern's block outgrows the live peak
        // (light DenseNet-121: 1.4x); costed at the live peak it was -24% on a Cortex-A72.
        let p = exp_chain([16, 16, 32, 32, 32]);
        // a at 0, b at 64, a freed: c (128 bytes) does not fit a's 64 and goes at 192.
        assert_eq!(p.pattern_bytes, 320.0);
        // Live at most: x, b and c.
        assert_eq!(p.live_peak_bytes, 64.0 + 128.0 + 128.0);
        // The intermediates live at once are b and c, 256 bytes.
        assert!(p.pattern_bytes > 256.0);
    }

    #[test]
    fn arena_regions_double_and_only_written_pages_count() {
        // What it protects: ONNX Runtime's arena grows by doubling regions and a chunk
        // freed in one region does not serve a request larger than it.
        const MIB: f64 = 1024.0 * 1024.0;
        let mut arena = Arena::default();
        let a = arena.alloc(3.0 * MIB);
        let b = arena.alloc(3.0 * MIB);
        assert_eq!(arena.touched_bytes(), 6.0 * MIB);
        arena.free(a);
        arena.free(b);
        let c = arena.alloc(2.5 * MIB);
        // Served by the freed first region: nothing new is written beyond its 3 MiB.
        assert_eq!(c.0, 0);
        arena.free(c);
        arena.alloc(6.0 * MIB);
        let sizes: Vec<f64> = arena
            .regions
            .iter()
            .map(|r| r.chunks.iter().map(|c| c.1).sum())
            .collect();
        assert_eq!(sizes, [4.0 * MIB, 4.0 * MIB, 8.0 * MIB]);
        assert_eq!(arena.touched_bytes(), 12.0 * MIB);
    }
}
