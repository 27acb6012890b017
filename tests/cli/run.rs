//! `edgepack run` and `edgepack runtime`: real runs on the PP-OCR classifier, cross-checked
//! against ONNX Runtime's Python package, and the bad-input contract (one line, exit 2,
//! no partial output).

use std::path::Path;
use std::process::Command as StdCommand;

use edgepack::tensor::{npy, DType, Tensor};

use crate::common::{cls_model, edgepack, one_stderr_line, runtime_available};

fn read(p: &Path) -> Tensor {
    npy::read_npy(p).unwrap()
}

/// The acceptance check: same input, same outputs (within 1e-5) as ONNX Runtime's
/// Python package. The Python side runs in the interpreter EDGEPACK_TEST_PYTHON names (a
/// venv with onnxruntime==1.31.1 and numpy).
#[test]
fn run_matches_onnxruntime_python_on_ppocr_classifier() {
    let Some(python) = std::env::var_os("EDGEPACK_TEST_PYTHON") else {
        eprintln!(
            "\n*** SKIPPED run_matches_onnxruntime_python_on_ppocr_classifier: set EDGEPACK_TEST_PYTHON \
             to a Python with onnxruntime==1.31.1 and numpy ***\n"
        );
        return;
    };
    if !runtime_available() {
        return;
    }
    let model = cls_model();
    let dir = tempfile::tempdir().unwrap();
    let x_path = dir.path().join("x.npy");
    // Fixed seed, two images: the batch dim is dynamic in this model.
    npy::write_npy(&x_path, &Tensor::random(DType::F32, &[2, 3, 48, 192], 1234)).unwrap();
    let out_dir = dir.path().join("out");
    let out = edgepack()
        .arg("run")
        .arg(&model)
        .arg("--input")
        .arg(format!("x={}", x_path.display()))
        .arg("--output-dir")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("save_infer_model/scale_0.tmp_1"),
        "{stdout}"
    );
    let ours = read(&out_dir.join("save_infer_model_scale_0.tmp_1.npy"));
    assert_eq!(ours.shape(), &[2, 2]);

    let reference = dir.path().join("ref.npy");
    let script = "import sys, numpy as np, onnxruntime as ort\n\
                  s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n\
                  y = s.run(None, {'x': np.load(sys.argv[2])})[0]\n\
                  np.save(sys.argv[3], y)\n\
                  print(ort.__version__)\n";
    let py = StdCommand::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&model)
        .arg(&x_path)
        .arg(&reference)
        .output()
        .expect("EDGEPACK_TEST_PYTHON runs");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let theirs = read(&reference);
    assert_eq!(theirs.shape(), ours.shape());
    let max_diff = ours
        .to_f32_vec()
        .iter()
        .zip(theirs.to_f32_vec())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff <= 1e-5,
        "max |edgepack - onnxruntime python| = {max_diff}"
    );
}

#[test]
fn run_generates_seeded_inputs_and_writes_every_output() {
    if !runtime_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |sub: &str| {
        let o = dir.path().join(sub);
        edgepack()
            .arg("run")
            .arg(cls_model())
            .args(["--shape", "x=1x3x48x192", "--seed", "5"])
            .arg("--output-dir")
            .arg(&o)
            .arg("--save-inputs")
            .arg(o.join("inputs"))
            .assert()
            .success();
        o
    };
    let (a, b) = (run("a"), run("b"));
    let name = "save_infer_model_scale_0.tmp_1.npy";
    assert_eq!(read(&a.join(name)), read(&b.join(name)));
    assert_eq!(read(&a.join("inputs/x.npy")), read(&b.join("inputs/x.npy")));
    // Softmax over two classes: each row sums to 1.
    let y = read(&a.join(name)).to_f32_vec();
    assert!((y[0] + y[1] - 1.0).abs() < 1e-5, "{y:?}");
}

#[test]
fn run_saves_the_graph_onnx_runtime_runs() {
    // What it protects: `run --save-optimized` is how a board's own ONNX Runtime shows
    // what it makes of a model (its fusions and layouts differ by CPU): the file is the
    // session's optimized graph, and a bad path is refused before anything runs.
    if !runtime_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("cls.optimized.onnx");
    edgepack()
        .arg("run")
        .arg(cls_model())
        .args(["--shape", "x=1x3x48x192"])
        .arg("--save-optimized")
        .arg(&saved)
        .assert()
        .success();
    let m = edgepack::model::Model::load(&saved).unwrap();
    let original = edgepack::model::Model::load(&cls_model()).unwrap();
    // Fused: fewer nodes than the original (Conv+BatchNorm+activation and the like).
    assert!(!m.graph().node.is_empty());
    assert!(m.graph().node.len() < original.graph().node.len());

    let out = edgepack()
        .arg("run")
        .arg(cls_model())
        .args(["--shape", "x=1x3x48x192"])
        .arg("--save-optimized")
        .arg(dir.path().join("missing/cls.onnx"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_stderr_line(&out).contains("missing"), "{out:?}");
}

#[test]
fn run_rejects_unknown_input_name_without_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    npy::write_npy(&x, &Tensor::random(DType::F32, &[1, 3, 48, 192], 0)).unwrap();
    let out_dir = dir.path().join("out");
    let out = edgepack()
        .arg("run")
        .arg(cls_model())
        .arg("--input")
        .arg(format!("image={}", x.display()))
        .arg("--output-dir")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        one_stderr_line(&out),
        "edgepack: error: input 'image': --input names no input of the model (its inputs: x)"
    );
    assert!(!out_dir.exists());
}

#[test]
fn run_rejects_wrong_dtype_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    npy::write_npy(&x, &Tensor::random(DType::F64, &[1, 3, 48, 192], 0)).unwrap();
    let out = edgepack()
        .arg("run")
        .arg(cls_model())
        .arg("--input")
        .arg(format!("x={}", x.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // The file, the input, what the model expects and what was found.
    assert_eq!(
        one_stderr_line(&out),
        format!(
            "edgepack: error: {}: input 'x': element type is float64 but the model expects float32",
            x.display()
        )
    );
    let out = edgepack()
        .arg("run")
        .arg(cls_model())
        .args(["--shape", "x=1x1x48x192"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_stderr_line(&out).contains("fixes it to 3"));
    let out = edgepack().arg("run").arg(cls_model()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_stderr_line(&out).contains("pass --shape x=Nx3xNxN"));
}

#[test]
fn run_rejects_npy_with_unknown_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("complex.npy");
    let header = "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 8]);
    std::fs::write(&x, bytes).unwrap();
    let out = edgepack()
        .arg("run")
        .arg(cls_model())
        .arg("--input")
        .arg(format!("x={}", x.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let line = one_stderr_line(&out);
    assert!(
        line.contains("complex.npy: unsupported .npy element type '<c8'"),
        "{line}"
    );
}

#[test]
fn run_without_runtime_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = edgepack()
        .env_remove("ORT_DYLIB_PATH")
        .env("EDGEPACK_CACHE", dir.path().join("empty-cache"))
        .env("EDGEPACK_PYTHON", dir.path().join("no-python"))
        .arg("run")
        .arg(cls_model())
        .args(["--shape", "x=1x3x48x192"])
        .arg("--output-dir")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        one_stderr_line(&out),
        "edgepack: error: ONNX Runtime library: not found; run `edgepack runtime install` (or set ORT_DYLIB_PATH)"
    );
    assert!(!out_dir.exists());
}

#[test]
fn run_rejects_a_bad_ort_lib_path() {
    let out = edgepack()
        .args([
            "--ort-lib",
            "/nonexistent/libonnxruntime.so",
            "runtime",
            "which",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        one_stderr_line(&out).contains("--ort-lib /nonexistent/libonnxruntime.so: no such file")
    );
}

/// ONNX backend test cases run through `edgepack run --inputs <test_data_set_0>` (the
/// `input_<i>.pb` layout) must reproduce the suite's own `output_<i>.pb`. The cases cover
/// raw and typed `TensorProto` fields and every element type family: float16, double,
/// bfloat16 (written as float32), int64 indices, bool.
#[test]
fn run_reproduces_onnx_backend_test_outputs_from_pb_inputs() {
    if !runtime_available() {
        return;
    }
    let data = edgepack::zoo::onnx_backend_test_data().expect("onnx backend test data");
    let cases = [
        "test_add",
        "test_relu",
        "test_matmul_2d",
        "test_conv_with_strides_padding",
        "test_cast_FLOAT_to_FLOAT16",
        "test_cast_FLOAT16_to_DOUBLE",
        "test_cast_FLOAT_to_BFLOAT16",
        "test_argmax_default_axis_example",
        "test_and2d",
        "test_equal",
        "test_gather_0",
        "test_where_example",
    ];
    let dir = tempfile::tempdir().unwrap();
    for case in cases {
        let case_dir = data.join("node").join(case);
        let model_path = case_dir.join("model.onnx");
        let set = case_dir.join("test_data_set_0");
        let out_dir = dir.path().join(case);
        let out = edgepack()
            .arg("run")
            .arg(&model_path)
            .arg("--inputs")
            .arg(&set)
            .arg("--output-dir")
            .arg(&out_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let model = edgepack::model::Model::load(&model_path).unwrap();
        for (i, spec) in edgepack::inputs::model_outputs(&model).iter().enumerate() {
            let (_, mut expected) =
                edgepack::tensor::pb::read_pb(&set.join(format!("output_{i}.pb"))).unwrap();
            // onnx 1.17 stores the expected bfloat16 output as its uint16 bit patterns.
            if case.ends_with("BFLOAT16") && expected.dtype() == DType::U16 {
                let bits: Vec<f32> = match expected.data() {
                    edgepack::tensor::TensorData::U16(v) => v
                        .iter()
                        .map(|&b| half::bf16::from_bits(b).to_f32())
                        .collect(),
                    _ => unreachable!(),
                };
                expected = Tensor::from_f32(expected.shape().to_vec(), bits).unwrap();
            }
            let got = read(&out_dir.join(format!(
                "{}.npy",
                edgepack::inputs::sanitize_file_stem(&spec.name)
            )));
            assert_eq!(got.shape(), expected.shape(), "{case} output {i}");
            assert_eq!(got.dtype(), expected.dtype(), "{case} output {i}");
            // The suite's bfloat16 reference truncates while ONNX Runtime rounds to nearest:
            // allow one bfloat16 step (2^-7 relative) there, 1e-5 everywhere else.
            let rel = if case.ends_with("BFLOAT16") {
                2f64.powi(-7)
            } else {
                1e-5
            };
            for (a, b) in got.to_f64_vec().iter().zip(expected.to_f64_vec()) {
                assert!(
                    (a.is_nan() && b.is_nan()) || a == &b || (a - b).abs() <= 1e-5 + rel * b.abs(),
                    "{case} output {i}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn runtime_list_shows_cached_runtimes_and_a_broken_library_is_one_line() {
    let cache = tempfile::tempdir().unwrap();
    let out = edgepack()
        .env("EDGEPACK_CACHE", cache.path())
        .args(["runtime", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("runtime install"));

    // A cached entry as `runtime install` records it (the library here is not a real one).
    let host = edgepack::runtime::Platform::host().expect("linux host");
    let dir = cache
        .path()
        .join("runtimes")
        .join(host.name())
        .join("1.31.1");
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join("libonnxruntime.so.1.31.1");
    std::fs::write(&lib, b"not an ELF file").unwrap();
    let record = edgepack::runtime::CachedRuntime {
        platform: host,
        version: "1.31.1".into(),
        path: lib.clone(),
        sha256: "ab".repeat(32),
        extra_files: vec![],
        wheel: "onnxruntime-1.31.1.whl".into(),
    };
    std::fs::write(
        dir.join("runtime.json"),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    let out = edgepack()
        .env("EDGEPACK_CACHE", cache.path())
        .args(["runtime", "list"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(host.name())
            && stdout.contains(&"ab".repeat(32))
            && stdout.contains("MODIFIED"),
        "{stdout}"
    );

    // The cache comes before the Python package in the search; a broken file there is
    // reported on one line naming it, exit 2.
    let out = edgepack()
        .env_remove("ORT_DYLIB_PATH")
        .env("EDGEPACK_CACHE", cache.path())
        .args(["runtime", "which"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let line = one_stderr_line(&out);
    assert!(
        line.contains("libonnxruntime.so.1.31.1") && line.contains("edgepack cache"),
        "{line}"
    );
}

/// `run BUNDLE` is what a device does on arrival: verify, then run the bundle's own
/// self-test inputs; a tampered bundle is refused before anything runs.
#[test]
fn run_on_a_bundle_verifies_it_and_runs_its_self_test() {
    if !runtime_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    std::fs::create_dir(&samples).unwrap();
    npy::write_npy(
        &samples.join("x.npy"),
        &Tensor::random(DType::F32, &[1, 3, 48, 192], 3),
    )
    .unwrap();
    let pkg = dir.path().join("cls.edgepkg");
    edgepack()
        .arg("package")
        .arg(cls_model())
        .arg("-o")
        .arg(&pkg)
        .arg("--sample-inputs")
        .arg(&samples)
        .assert()
        .success();
    let out = edgepack().arg("run").arg(&pkg).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("OK") && stdout.contains("self-test case0"),
        "{stdout}"
    );

    let mut bytes = std::fs::read(&pkg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let bad = dir.path().join("tampered.edgepkg");
    std::fs::write(&bad, &bytes).unwrap();
    let out = edgepack().arg("run").arg(&bad).output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "a tampered package must not run"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("self-test case0 on fp32: ok"));
}
