//! Fuzz the ONNX reader: arbitrary bytes must decode to a model or to a clear error,
//! never a panic, and a decoded model must re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = edgepack::model::Model::from_bytes(data, std::path::Path::new("fuzz.onnx")) {
        let bytes = model.to_bytes();
        let again = edgepack::model::Model::from_bytes(&bytes, std::path::Path::new("re.onnx"))
            .expect("re-encoded model decodes");
        assert_eq!(again.proto, model.proto);
    }
});
