//! `edgepack report`: inputs recognised in any order, one self-contained HTML page out.
//! The profile, quantize report and bundle are the library's documented fixture
//! (`edgepack::report::fixture`), written to files the way the other commands write them.

use std::io::Write;
use std::path::{Path, PathBuf};

use edgepack::report::fixture::sample_profile;
use predicates::prelude::*;

use crate::common::{edgepack, profile_cmd, run_ok};

/// Write a profile, a quantize report, a `dist/` folder with one bundle and a `hardware/`
/// folder with two targets into `dir`.
fn write_inputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let profile = dir.join("profile.json");
    std::fs::write(
        &profile,
        serde_json::to_vec_pretty(&sample_profile()).unwrap(),
    )
    .unwrap();
    let quantize = dir.join("quantize.json");
    std::fs::write(
        &quantize,
        r#"{"mode": "int8", "size_ratio": 0.29, "latency_ratio": 0.78,
            "outputs": [{"output": "softmax_0.tmp_0", "sqnr_db": 31.4, "cosine": 0.99964,
                         "top1_agreement": 0.998, "max_abs_error": 0.0123}]}"#,
    )
    .unwrap();
    let dist = dir.join("dist");
    std::fs::create_dir(&dist).unwrap();
    let manifest = serde_json::json!({
        "schema": "edgepack.manifest/1", "kind": "bundle", "name": "cls",
        "target": {"name": "raspberry-pi-4-4gb", "arch": "aarch64", "variant": "int8",
            "prediction": {"threads": 4, "batch": 1, "latency_p50_s": 0.021,
                "peak_memory_bytes": 150000000u64, "bundle_size_bytes_max": 1000000u64,
                "basis": "scaled from host"}}
    });
    let mut z = zip::ZipWriter::new(std::fs::File::create(dist.join("cls-pi4.zip")).unwrap());
    z.start_file("manifest.json", zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(manifest.to_string().as_bytes()).unwrap();
    z.finish().unwrap();
    // `edgepack build`'s report (`edgepack.build/1`): every variant's fit per target.
    let eval = |variant: &str, fits: bool, reasons: &[&str], p50: f64, mem: Option<u64>| {
        serde_json::json!({"variant": variant, "fits": fits, "reasons": reasons, "notes": [],
            "threads": null, "batch": null, "latency_p50_s": p50, "peak_memory_bytes": mem,
            "basis": null})
    };
    // Both targets: 4 GiB with a 0.25 model share, as in hardware/.
    let target = |name: &str, chosen: &str, evaluations: Vec<serde_json::Value>| {
        serde_json::json!({"target": name, "bundle": null, "size_bytes": null,
            "model_ram_bytes": 1073741824u64, "chosen": chosen, "evaluations": evaluations})
    };
    std::fs::write(
        dist.join("cls-build.json"),
        serde_json::json!({"schema": "edgepack.build/1", "edgepack_version": "0.1.0",
            "model": "cls.onnx", "package": "cls.edgepkg", "variants": [], "skipped_variants": [],
            "profiles": [], "host_compute": null, "latency_budget_s": null, "prefer": "accuracy",
            "targets": [
                target("raspberry-pi-4-4gb", "int8", vec![
                    eval("fp32", false, &["p50 48.0 ms over the 30 ms budget"], 0.048, Some(160000000)),
                    eval("int8", true, &[], 0.021, Some(150000000))]),
                target("jetson-nano-4gb", "fp32", vec![eval("fp32", true, &[], 0.012, None)])
        ]})
        .to_string(),
    )
    .unwrap();
    // The repository's real target files.
    let hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware");
    (profile, quantize, dist, hw)
}

/// Also the generator of the page the headless-browser test loads: with
/// `EDGEPACK_REPORT_OUT=DIR` the inputs and `report.html` are kept in DIR.
#[test]
fn report_writes_one_self_contained_html_page() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = match std::env::var_os("EDGEPACK_REPORT_OUT") {
        Some(d) => PathBuf::from(d),
        None => tmp.path().to_path_buf(),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::remove_dir_all(dir.join("dist"));
    let (profile, quantize, dist, hw) = write_inputs(&dir);
    let out = dir.join("report.html");
    // Inputs in a different order than the usage line: they are recognised by content.
    edgepack()
        .arg("report")
        .arg(&dist)
        .arg(&quantize)
        .arg(&profile)
        .arg("-o")
        .arg(&out)
        .arg("--targets")
        .arg(&hw)
        .assert()
        .code(0);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // The build's decision (memory bars; no latency budget in this build report) and its
    // fit matrix picture come first, then the profile's three sweep charts and per-op bars.
    assert_eq!(html.matches("<svg").count(), 6);
    assert!(html.find("id=\"decision\"").unwrap() < html.find("id=\"summary\"").unwrap());
    assert!(html.contains("jetson-nano-4gb"));
    assert!(html.contains("raspberry-pi-4-4gb"));
    assert!(html.contains("31.4 dB"));
    assert!(
        html.contains("★ chosen"),
        "fit matrix from the build report"
    );
    assert!(html.contains("p50 48.0 ms over the 30 ms budget"));
    for bad in ["src=\"http", "href=\"http", "<script", "<link", "url("] {
        assert!(!html.contains(bad), "self-contained, found {bad}");
    }
}

#[test]
fn report_without_a_profile_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, quantize, _, _) = write_inputs(dir.path());
    let out = dir.path().join("report.html");
    edgepack()
        .arg("report")
        .arg(&quantize)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no profile among the inputs"));
    assert!(!out.exists());
}

#[test]
fn report_rejects_a_profile_of_another_schema() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.json");
    std::fs::write(&p, r#"{"schema": "edgepack.profile/9", "configs": []}"#).unwrap();
    edgepack()
        .arg("report")
        .arg(&p)
        .arg("-o")
        .arg(dir.path().join("r.html"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("edgepack.profile/9"));
}

/// A token model profiled over sequence lengths (`--dim sequence=16,64,128`, issue 11)
/// gets its charts against sequence length, each drawing at least two points, and its
/// table rows named by the sequence alone.
#[test]
fn a_sequence_sweep_is_charted_against_sequence_length() {
    if !crate::common::runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("tokens.onnx");
    edgepack::model::builder::token_model(30, 4)
        .save(&model)
        .unwrap();
    let plan = crate::common::quick_plan(d.path());
    let json = d.path().join("p.json");
    let out = run_ok(
        profile_cmd(&model, &plan)
            .args(["--batch", "1", "--dim", "sequence=16,64,128", "--json-out"])
            .arg(&json),
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("\nsequence=128 "), "{table}");
    let html = d.path().join("r.html");
    edgepack()
        .arg("report")
        .arg(&json)
        .arg("-o")
        .arg(&html)
        .assert()
        .success();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("id=\"chart-latency-sequence\" data-points=\"6\""),
        "{page}"
    );
    assert!(page.contains("id=\"chart-memory-sequence\""));
    assert!(page.contains("Latency against sequence length"));
    assert!(!page.contains("id=\"chart-latency\""));
}

/// A bundle's prediction against a profile measured on its target (issue 13): the
/// classifier's bundle for an x86 target is predicted from a host profile scaled by the
/// compute ratio; given that target's own measurement (here this host's profile, which is
/// what `profile` run on an x86 device writes), the page shows both and the error. A
/// device profile for a target no bundle is for is refused.
#[test]
fn report_shows_bundle_predictions_against_the_device_measurement() {
    if !crate::common::runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let pkg = d.path().join("cls.edgepkg");
    edgepack()
        .arg("package")
        .arg(crate::common::cls_model())
        .arg("-o")
        .arg(&pkg)
        .assert()
        .success();
    let plan = crate::common::quick_plan(d.path());
    let measured = d.path().join("measured.json");
    profile_cmd(&pkg, &plan)
        .args(["--shape", "x=1x3x48x192", "--batch", "1", "--json-out"])
        .arg(&measured)
        .assert()
        .success();
    let hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware/x86-industrial-pc.toml");
    let dist = d.path().join("dist");
    edgepack()
        .arg("bundle")
        .arg(&pkg)
        .arg("--target")
        .arg(&hw)
        .arg("--profile")
        .arg(&measured)
        .args(["--host-compute", "2"])
        .arg("-o")
        .arg(&dist)
        .assert()
        .success();
    let html = d.path().join("r.html");
    edgepack()
        .arg("report")
        .arg(&measured)
        .arg(&dist)
        .arg("--device-profile")
        .arg(format!("x86-industrial-pc={}", measured.display()))
        .arg("-o")
        .arg(&html)
        .assert()
        .success();
    let page = std::fs::read_to_string(&html).unwrap();
    let at = page
        .find("id=\"predicted-measured\"")
        .unwrap_or_else(|| panic!("no predicted-measured table: {page}"));
    let table = &page[at..at + page[at..].find("</table>").unwrap()];
    assert!(
        table.contains("<td>x86-industrial-pc</td><td>fp32</td>"),
        "{table}"
    );
    assert!(
        // Built-in targets predict from their derived device profiles (the cost model).
        table.contains("host p50 x") || table.contains("cost model"),
        "the prediction's basis: {table}"
    );
    assert!(table.contains('%'), "an error figure: {table}");
    let out = edgepack()
        .arg("report")
        .arg(&measured)
        .arg(&dist)
        .arg("--device-profile")
        .arg(format!("raspberry-pi-4-4gb={}", measured.display()))
        .arg("-o")
        .arg(d.path().join("r2.html"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::common::one_stderr_line(&out).contains("raspberry-pi-4-4gb"));
    assert!(!d.path().join("r2.html").exists());
}
