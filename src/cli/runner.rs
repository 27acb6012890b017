//! The ONNX Runtime hook for package self-tests.

use std::path::Path;

use edgepack::package::selftest::{OrtRunner, Runner};

/// The self-test runner backed by ONNX Runtime (found with `--ort-lib` or the usual search
/// when first used).
pub fn self_test_runner(ort_lib: Option<&Path>) -> Option<Box<dyn Runner>> {
    Some(Box::new(OrtRunner {
        library: ort_lib.map(Path::to_path_buf),
    }))
}
