//! Fuzz the tensor readers: `.npy` bytes, ONNX `TensorProto` `.pb` bytes and `.npz`
//! archives. The first byte picks the format. A reader must give a tensor whose element
//! count matches its shape, or an error, never a panic or an allocation the input did not
//! pay for.
#![no_main]

use std::path::Path;

use edgepack::model::TensorProto;
use edgepack::tensor::{npy, pb};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(t) = npy::parse_npy(rest, Path::new("fuzz.npy")) {
                assert_eq!(Some(t.len()), edgepack::tensor::element_count(t.shape()));
                // What we read, we can write back.
                let _ = npy::to_npy_bytes(&t);
            }
        }
        1 => {
            if let Ok(p) = TensorProto::decode(rest) {
                if let Ok(t) = pb::from_proto(&p, Path::new("fuzz.pb")) {
                    assert_eq!(Some(t.len()), edgepack::tensor::element_count(t.shape()));
                    let _ = pb::to_proto("t", &t);
                }
            }
        }
        _ => {
            // The .npz reader works on a path (it streams from the file).
            let dir = std::env::temp_dir().join(format!("edgepack-fuzz-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join("fuzz.npz");
            std::fs::write(&path, rest).expect("write temp npz");
            let _ = npy::read_npz(&path);
        }
    }
});
