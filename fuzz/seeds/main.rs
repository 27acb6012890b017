//! Writes the synthetic part of the fuzzing seed corpus: models from the crate's builder,
//! `.npy`/`.npz`/`.pb` tensors of every dtype, and a full profile JSON. The real files
//! (PP-OCR, ONNX backend test models, profiles/, hardware/, a package) are added by
//! `scripts/fuzz.sh`. Usage: `seed_corpus CORPUS_ROOT` (writes CORPUS_ROOT/<target>/...).
//!
//! Seeds for targets whose first byte picks a format carry that byte as a prefix.

use std::collections::BTreeMap;
use std::path::Path;

use edgepack::model::builder;
use edgepack::tensor::{npy, pb, DType, Tensor};
use prost::Message;

fn put(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("create corpus folder");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn prefixed(p: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![p];
    v.extend_from_slice(bytes);
    v
}

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .expect("usage: seed_corpus CORPUS_ROOT");
    let root = Path::new(&root);

    let models = [
        ("mlp", builder::mlp(&[4, 8, 3], 1)),
        ("conv_net", builder::conv_net(2)),
        ("symbolic_batch", builder::symbolic_batch(3)),
        ("constant_weights", builder::constant_weights(4)),
        ("if_model", builder::if_model(5)),
    ];
    for (name, m) in &models {
        put(
            root,
            "model_read",
            &format!("builder_{name}.onnx"),
            &m.to_bytes(),
        );
    }

    let dtypes = [
        DType::F32,
        DType::F16,
        DType::F64,
        DType::I8,
        DType::U8,
        DType::I32,
        DType::I64,
        DType::Bool,
    ];
    let mut npz = BTreeMap::new();
    for (i, dt) in dtypes.iter().enumerate() {
        for (j, shape) in [vec![], vec![3], vec![2, 3, 1]].iter().enumerate() {
            let t = Tensor::random(*dt, shape, (i * 10 + j) as u64);
            if let Ok(b) = npy::to_npy_bytes(&t) {
                put(
                    root,
                    "tensor_read",
                    &format!("{}_{j}.npy", dt.name()),
                    &prefixed(0, &b),
                );
                npz.insert(format!("{}_{j}.npy", dt.name()), b);
            }
            let p = pb::to_proto("t", &t);
            put(
                root,
                "tensor_read",
                &format!("{}_{j}.pb", dt.name()),
                &prefixed(1, &p.encode_to_vec()),
            );
        }
    }
    let zip = edgepack::package::archive::write_zip(&npz).expect("npz");
    put(root, "tensor_read", "all.npz", &prefixed(2, &zip));

    let profile = edgepack::report::fixture::sample_profile();
    let json = serde_json::to_vec_pretty(&profile).expect("profile json");
    put(
        root,
        "config_parse",
        "sample_profile.json",
        &prefixed(3, &json),
    );
}
