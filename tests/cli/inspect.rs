//! `edgepack inspect`: the real PP-OCRv4 detector (from the `rapidocr-onnxruntime` wheel,
//! cached by `edgepack::zoo`), builder models, and every kind of bad model file, which
//! must give exactly one error line naming the file and exit status 2.

use std::path::{Path, PathBuf};

use edgepack::model::proto::tensor_proto::DataLocation;
use edgepack::model::proto::StringStringEntryProto;
use edgepack::model::{builder, Model};
use edgepack::zoo::ZooModel;
use serde_json::Value;

use crate::common::edgepack;

fn inspect_json(model: &Path, extra: &[&str]) -> Value {
    let out = edgepack()
        .arg("inspect")
        .arg(model)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

/// Run inspect on a bad file and check the contract: exit 2, nothing on stdout, one line
/// on stderr naming the file. Returns that line.
fn expect_one_line_error(model: &Path, extra: &[&str]) -> String {
    let out = edgepack()
        .arg("inspect")
        .arg(model)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "no partial output on stdout");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn write_model(dir: &Path, name: &str, m: &Model) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, m.to_bytes()).unwrap();
    p
}

#[test]
fn json_on_ppocr_det_reports_symbolic_input_constant_weights_and_ops() {
    let path = ZooModel::PpOcrDet
        .path()
        .expect("PP-OCRv4 det model is available");
    let j = inspect_json(&path, &[]);
    let x = &j["inputs"][0];
    assert_eq!(x["name"], "x");
    assert_eq!(x["dtype"], "float");
    let shape = x["shape"].as_array().unwrap();
    assert_eq!(shape.len(), 4);
    assert!(shape[0].is_string(), "{shape:?}");
    assert_eq!(shape[1], 3);
    assert!(shape[2].is_string() && shape[3].is_string(), "{shape:?}");
    assert_eq!(j["inputs"].as_array().unwrap().len(), 1);
    assert_eq!(j["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(j["opsets"]["ai.onnx"], 12);
    // Counts cross-checked with the `onnx` Python package on the same file.
    assert_eq!(j["nodes"], 672);
    assert_eq!(j["ops"]["Constant"], 342);
    assert_eq!(j["ops"]["Conv"], 62);
    assert_eq!(j["ops"]["ConvTranspose"], 2);
    assert_eq!(j["weights"]["constant_nodes"]["tensors"], 342);
    assert_eq!(j["weights"]["initializers"]["tensors"], 0);
    assert_eq!(j["parameters"], 1_171_841);
    assert_eq!(j["weight_bytes"], 4 * 1_171_841);
    assert_eq!(j["parameters_by_dtype"]["float"], 1_171_841);
    // Without sizes for the symbolic dims, there is no MACs figure (not a made-up one).
    assert!(j["compute"]["macs"].is_null());
    assert_eq!(j["compute"]["unresolved_inputs"][0], "x");
    assert!(j.get("onnxruntime_loads").is_some());
    if edgepack::runtime::ensure_for_tests().is_some() {
        assert_eq!(j["onnxruntime_loads"], true, "{}", j["onnxruntime_message"]);
    }
}

#[test]
fn estimates_ppocr_det_macs_at_a_given_shape() {
    let path = ZooModel::PpOcrDet.path().unwrap();
    let j = inspect_json(&path, &["--shape", "x=1x3x640x640"]);
    // Reference: summed from the Conv/ConvTranspose shapes ONNX Runtime 1.31 actually
    // produced for a 1x3x640x640 input (every intermediate exposed as an output).
    assert_eq!(j["compute"]["macs"], 2_301_935_744u64);
    assert_eq!(j["compute"]["flops"], 2 * 2_301_935_744u64);
    assert_eq!(j["compute"]["unsized_nodes"].as_array().unwrap().len(), 0);
    // The same through symbol values.
    let syms: Vec<String> = j["symbolic_dims"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(syms.len(), 3);
    let args: Vec<String> = syms
        .iter()
        .zip(["1", "640", "640"])
        .flat_map(|(s, v)| ["--dim".to_string(), format!("{s}={v}")])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let j2 = inspect_json(&path, &args);
    assert_eq!(j2["compute"]["macs"], j["compute"]["macs"]);
}

#[test]
fn table_says_where_weights_live() {
    let path = ZooModel::PpOcrDet.path().unwrap();
    let out = edgepack().arg("inspect").arg(&path).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Constant nodes: 342 tensors"), "{text}");
    assert!(text.contains("opsets ai.onnx 12"), "{text}");
}

#[test]
fn builder_models_report_subgraphs_and_initializers() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_model(dir.path(), "if.onnx", &builder::if_model(1));
    let j = inspect_json(&p, &["--dim", "N=3"]);
    assert_eq!(j["nodes"], 2);
    assert_eq!(j["nodes_including_subgraphs"], 4);
    assert_eq!(j["ops_include_subgraphs"], true);
    assert_eq!(j["inputs"][1]["dtype"], "bool");
    assert_eq!(j["inputs"][1]["shape"], serde_json::json!([]));

    let p = write_model(dir.path(), "conv.onnx", &builder::conv_net(1));
    let j = inspect_json(&p, &[]);
    assert_eq!(j["weights"]["initializers"]["tensors"], 10);
    assert_eq!(j["compute"]["macs"], 8 * 256 * 27 + 16 * 16 * 72 + 10 * 256);
}

#[test]
fn bad_shape_and_dim_values_name_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_model(dir.path(), "m.onnx", &builder::symbolic_batch(1));
    let e = expect_one_line_error(&p, &["--shape", "x=1x4x16x16"]);
    assert!(
        e.contains("input 'x'") && e.contains("fixes it to 3"),
        "{e}"
    );
    let e = expect_one_line_error(&p, &["--shape", "y=1x10"]);
    assert!(e.contains("'y'"), "{e}");
    let e = expect_one_line_error(&p, &["--dim", "batch=2"]);
    assert!(e.contains("batch"), "{e}");
    let e = expect_one_line_error(&p, &["--shape", "x=1xax3"]);
    assert!(e.contains("--shape") && e.contains("x=1xax3"), "{e}");
}

#[test]
fn empty_random_and_truncated_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let e = expect_one_line_error(&empty, &[]);
    assert!(e.contains("empty.onnx") && e.contains("empty"), "{e}");

    // Seeded pseudo-random bytes (an LCG, so the case is reproducible).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect();
    let random = dir.path().join("random.onnx");
    std::fs::write(&random, &junk).unwrap();
    let e = expect_one_line_error(&random, &[]);
    assert!(e.contains("random.onnx"), "{e}");

    let bytes = builder::conv_net(1).to_bytes();
    for (name, len) in [
        ("half.onnx", bytes.len() / 2),
        ("cut.onnx", bytes.len() - 1),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes[..len]).unwrap();
        let e = expect_one_line_error(&p, &[]);
        assert!(e.contains(name), "{e}");
    }

    let missing = dir.path().join("missing.onnx");
    let e = expect_one_line_error(&missing, &[]);
    assert!(e.contains("missing.onnx"), "{e}");
    assert_eq!(e.matches("No such file").count(), 1, "said once: {e}");
}

/// An MLP whose first weight (3x2 float, 24 bytes) is stored externally at `location`.
fn external_model(location: &str, offset: u64) -> Model {
    let mut m = builder::mlp(&[2, 3], 1);
    let t = &mut m.graph_mut().initializer[0];
    assert_eq!(t.raw_data.as_ref().unwrap().len(), 24);
    t.raw_data = None;
    t.data_location = Some(DataLocation::External as i32);
    let kv = |k: &str, v: String| StringStringEntryProto {
        key: k.into(),
        value: v,
    };
    t.external_data = vec![
        kv("location", location.into()),
        kv("offset", offset.to_string()),
        kv("length", "24".into()),
    ];
    m
}

#[test]
fn external_data_inside_the_folder_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), [0u8; 24]).unwrap();
    let p = write_model(dir.path(), "ext.onnx", &external_model("w.bin", 0));
    let j = inspect_json(&p, &[]);
    assert_eq!(j["external_data"][0]["location"], "w.bin");
    assert_eq!(j["external_data"][0]["referenced_bytes"], 24);
    assert_eq!(j["parameters"], 6 + 3);
}

#[test]
fn external_data_escaping_the_folder_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    let outside = root.path().join("secret.bin");
    std::fs::write(&outside, [7u8; 64]).unwrap();

    let cases: Vec<(&str, String, u64, &str)> = vec![
        ("dotdot.onnx", "../secret.bin".into(), 0, ".."),
        ("nested.onnx", "sub/../../secret.bin".into(), 0, ".."),
        (
            "absolute.onnx",
            outside.display().to_string(),
            0,
            "absolute",
        ),
        ("symlink.onnx", "link.bin".into(), 0, "symlink"),
        ("hardlink.onnx", "hard.bin".into(), 0, "hardlink"),
        ("offset.onnx", "w.bin".into(), 100, "past the end"),
    ];
    std::os::unix::fs::symlink(&outside, dir.join("link.bin")).unwrap();
    std::fs::hard_link(&outside, dir.join("hard.bin")).unwrap();
    std::fs::write(dir.join("w.bin"), [0u8; 24]).unwrap();
    for (name, location, offset, why) in cases {
        let p = write_model(&dir, name, &external_model(&location, offset));
        let e = expect_one_line_error(&p, &[]);
        assert!(e.contains(name), "{name}: {e}");
        assert!(e.contains(why), "{name}: expected '{why}' in: {e}");
    }
}

#[test]
fn reports_whether_onnxruntime_loads_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_model(dir.path(), "good.onnx", &builder::conv_net(1));
    let j = inspect_json(&good, &["--no-ort-check"]);
    assert!(j["onnxruntime_loads"].is_null());
    assert!(j["onnxruntime_message"]
        .as_str()
        .unwrap()
        .contains("not checked"));
    if edgepack::runtime::ensure_for_tests().is_none() {
        return;
    }
    let j = inspect_json(&good, &[]);
    assert_eq!(j["onnxruntime_loads"], true, "{j}");
    // Well formed for the ONNX graph rules, but no runtime implements this op: inspect
    // still reports everything else and says ONNX Runtime refuses it (exit 0).
    let mut m = builder::mlp(&[2, 2], 1);
    m.graph_mut().node[0].op_type = "NoSuchOp".into();
    let bad = write_model(dir.path(), "unknown_op.onnx", &m);
    let j = inspect_json(&bad, &[]);
    assert_eq!(j["onnxruntime_loads"], false, "{j}");
    assert!(
        j["onnxruntime_message"]
            .as_str()
            .unwrap()
            .contains("NoSuchOp"),
        "{j}"
    );
    assert_eq!(j["ops"]["NoSuchOp"], 1);
}
