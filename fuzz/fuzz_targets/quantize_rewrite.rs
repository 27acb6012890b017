//! Fuzz the quantizer's graph rewrites on arbitrary models (no ONNX Runtime): preparation,
//! the int8 QDQ plan and patch (with made-up activation ranges), int8-dynamic, fp16 and
//! int4-weight. Each must produce a model or a clear error, never panic; a produced patch
//! must apply to its model or be refused by the patch checker.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use edgepack::model::Model;
use edgepack::quantize::{dynamic, fp16, nbits, prepare, qdq};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut model) = Model::from_bytes(data, Path::new("fuzz.onnx")) else {
        return;
    };
    if prepare::prepare(&mut model).is_err() {
        return;
    }
    let origin = Path::new("fuzz.onnx");
    let _ = fp16::convert(&model, origin, &fp16::Options::default());
    let _ = nbits::convert(&model, origin, &nbits::Options::default());
    if let Ok((patch, _)) = dynamic::emit(&model, true, &Default::default()) {
        let _ = model.clone().apply(patch);
    }
    let sel = qdq::Selection {
        per_channel: true,
        ..Default::default()
    };
    if let Ok(plan) = qdq::plan(&model, &sel) {
        let ranges: BTreeMap<String, (f32, f32)> = plan
            .activations
            .iter()
            .map(|a| (a.clone(), (-1.0, 1.0)))
            .collect();
        if let Ok(patch) = qdq::emit(
            &model,
            &plan,
            &ranges,
            &BTreeMap::new(),
            &BTreeMap::new(),
            true,
        ) {
            let _ = model.clone().apply(patch);
        }
    }
});
