//! Fuzz the ONNX reader and everything `inspect` does with a decoded model: arbitrary
//! bytes must decode to a model or to a clear error, never a panic; a decoded model must
//! re-encode, and the graph index, topological order, graph check, weight statistics,
//! shape inference and the inspect summary must answer or refuse, never panic.
#![no_main]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use edgepack::model::{graph, info::ModelInfo, shape, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = Model::from_bytes(data, Path::new("fuzz.onnx")) else {
        return;
    };
    // Bit-exact, not `==` on the protos: a weight may be NaN, and NaN != NaN.
    let bytes = model.to_bytes();
    let again = Model::from_bytes(&bytes, Path::new("re.onnx")).expect("re-encoded model decodes");
    assert_eq!(again.to_bytes(), bytes, "re-encoding is not stable");

    let g = model.graph();
    let index = graph::GraphIndex::new(g);
    let _ = index.topo_order();
    let _ = index.check(&HashSet::new());
    let _ = index.symbolic_dims();
    let _ = graph::weight_stats(g);
    let _ = graph::op_histogram(g, true);
    // Every symbolic dim set to 2, so inference gets concrete shapes to work with.
    let mut dims = BTreeMap::new();
    for syms in index.symbolic_dims().values() {
        for s in syms {
            dims.insert(s.clone(), 2i64);
        }
    }
    if let Ok(inputs) = shape::resolve_inputs(g, &BTreeMap::new(), &dims) {
        let inf = shape::infer(g, &inputs);
        let _ = shape::cost(g, &inf);
    }
    if let Ok(info) = ModelInfo::collect(&model, &BTreeMap::new(), &dims) {
        let _ = info.to_table();
        let _ = serde_json::to_string(&info);
    }
});
