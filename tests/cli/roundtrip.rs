//! The lossless-model-layer suite: every model in the ONNX backend test data (from the
//! pinned `onnx` wheel on PyPI, see `edgepack::zoo`) is read and written back by
//! `edgepack::model`, and the written model must
//!   1. decode to exactly the same message (encode/decode is a fixed point);
//!   2. load in ONNX Runtime whenever the original does;
//!   3. compute bit-identical outputs to the original on the suite's own `input_*.pb` files.
//!
//! Skipped: only what ONNX Runtime 1.31 itself cannot load (the original fails too), listed
//! with ORT's reason, and cases whose inputs are not plain tensors (sequences, optionals,
//! strings), which are load-checked only. A second check, when the test Python has `onnx`,
//! compares the protobufs field by field with ONNX's own Python classes.

use std::path::Path;

use edgepack::model::Model;
use edgepack::runtime::{self, ExecutionContext, Session};
use edgepack::tensor::Tensor;

use crate::backend::{cases, ort_reason, read_inputs};

fn same_bits(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((na, ta), (nb, tb))| {
            na == nb && ta.shape() == tb.shape() && ta.to_le_bytes() == tb.to_le_bytes()
        })
}

#[test]
fn backend_suite_round_trips_losslessly_through_onnx_runtime() {
    let Some(_) = runtime::ensure_for_tests() else {
        return;
    };
    let root = edgepack::zoo::onnx_backend_test_data().expect("ONNX backend test data");
    let all = cases(&root);
    assert!(
        all.len() > 1000,
        "expected the full suite, found {} models",
        all.len()
    );
    let ctx = ExecutionContext::single_threaded();
    let out_dir = tempfile::tempdir().unwrap();
    let (mut ran, mut load_only) = (0usize, 0usize);
    let mut ort_cannot_load = Vec::new();
    let mut failures = Vec::new();
    let mut pairs = Vec::new();
    for case in &all {
        let original = match Model::load(&case.model) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: edgepack cannot read it: {e}", case.name));
                continue;
            }
        };
        let bytes = original.to_bytes();
        let mut written = Model::from_bytes(&bytes, &case.model).expect("re-read");
        // Compared as bytes, not with PartialEq: NaN weights (tree ensembles) are != themselves.
        if written.to_bytes() != bytes {
            failures.push(format!("{}: re-encoding is not a fixed point", case.name));
            continue;
        }
        let dest = out_dir.path().join(case.name.replace('/', "__"));
        std::fs::write(&dest, &bytes).unwrap();
        pairs.push((case.model.clone(), dest));
        written.path = original.path.clone(); // same folder for any external data
        let mut a = match Session::from_model(&original, &ctx) {
            Ok(s) => s,
            Err(e) => {
                let reason = ort_reason(&e);
                ort_cannot_load.push(format!("{}: {reason}", case.name));
                continue;
            }
        };
        let mut b = match Session::from_model(&written, &ctx) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!(
                    "{}: original loads but written model does not: {e}",
                    case.name
                ));
                continue;
            }
        };
        let mut ran_any = false;
        for set in &case.data_sets {
            let Some(inputs) = read_inputs(set, &a) else {
                continue;
            };
            match (a.run(&inputs), b.run(&inputs)) {
                (Ok(oa), Ok(ob)) => {
                    ran_any = true;
                    if !same_bits(&oa, &ob) {
                        failures.push(format!(
                            "{}: outputs differ on {}",
                            case.name,
                            set.display()
                        ));
                    }
                }
                (Err(_), Err(_)) => {} // both refuse the same input (e.g. unsupported output type)
                (ra, rb) => failures.push(format!(
                    "{}: one model ran and the other failed: {:?} / {:?}",
                    case.name,
                    ra.err().map(|e| e.to_string()),
                    rb.err().map(|e| e.to_string())
                )),
            }
        }
        if ran_any {
            ran += 1;
        } else {
            load_only += 1;
        }
    }
    eprintln!(
        "backend suite: {} models; {ran} ran with identical outputs, {load_only} load-checked only \
         (non-tensor or optional inputs), {} skipped because ONNX Runtime 1.31 cannot load the original:",
        all.len(),
        ort_cannot_load.len()
    );
    for s in &ort_cannot_load {
        eprintln!("  skip {s}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran > 1000, "only {ran} models ran");

    if let Some(py) = std::env::var_os("EDGEPACK_TEST_PYTHON") {
        let list = out_dir.path().join("pairs.txt");
        let text: String = pairs
            .iter()
            .map(|(a, b)| format!("{}\t{}\n", a.display(), b.display()))
            .collect();
        std::fs::write(&list, text).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/compare_protos.py");
        let out = std::process::Command::new(py)
            .arg(&script)
            .arg(&list)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "protobuf field comparison failed");
    }
}
