//! Issue 17 ("trust in the first hour"): each test protects one fix a new user depends on.
//! Tiny builder models, real ONNX Runtime; they skip (loudly) without it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{
    edgepack, package_model, profile_cmd, read_profile, run_ok, runtime_available, stderr_of,
    stdout_of,
};

/// The MLP every test here starts from (symbolic batch dim `N`), saved in `dir`.
fn mlp_model(dir: &Path) -> PathBuf {
    crate::common::mlp_model(dir, &[16, 32, 4])
}

/// [`mlp_model`] packaged (no sample inputs) as `dir/mlp.edgepkg`.
fn mlp_package(dir: &Path) -> PathBuf {
    package_model(&mlp_model(dir), &dir.join("mlp.edgepkg"), &[])
}

const PLAN: &str = r#"
[run]
threads = [1]
[measure]
warmup_iterations = 1
min_iterations = 10
max_iterations = 100
min_time_s = 0.02
max_time_s = 0.2
target_ci_rel = 0.05
stability_tolerance = 0.5
"#;

/// An int8 weight-only model runs as measured only with `session.disable_quant_qdq=1`:
/// the quantizer records it in the model's own metadata and prints it, and `run` and
/// `profile` apply it and say so (bug 3).
#[test]
fn an_int8_weight_model_carries_and_applies_its_session_entries() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path());
    let q = d.path().join("mlp.w8.onnx");
    let out = run_ok(
        edgepack()
            .arg("quantize")
            .arg(&model)
            .arg("-o")
            .arg(&q)
            .args(["--mode", "int8-weight", "--no-latency"]),
    );
    // The size line is the written file's length, the recorded session entries included.
    let written = std::fs::metadata(&q).unwrap().len();
    assert!(
        stdout_of(&out).contains(&format!(" -> {written} bytes")),
        "{written} bytes written: {}",
        stdout_of(&out)
    );
    assert!(
        stdout_of(&out).contains("runs with session entries: session.disable_quant_qdq=1"),
        "{}",
        stdout_of(&out)
    );
    let recorded = edgepack::model::metadata::read_session_entries(&q).unwrap();
    assert_eq!(
        recorded
            .get("session.disable_quant_qdq")
            .map(String::as_str),
        Some("1")
    );

    let run = run_ok(edgepack().arg("run").arg(&q).args(["--dim", "N=2"]));
    assert!(
        stderr_of(&run).contains(
            "applying the session entries the model records: session.disable_quant_qdq=1"
        ),
        "{}",
        stderr_of(&run)
    );
    // An explicit entry wins over the recorded one, and is then not reported as the model's.
    let run = run_ok(edgepack().arg("run").arg(&q).args([
        "--dim",
        "N=2",
        "--session-config",
        "session.disable_quant_qdq=0",
    ]));
    assert!(!stderr_of(&run).contains("applying the session entries"));

    let plan = d.path().join("plan.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let json = d.path().join("p.json");
    let prof = run_ok(
        profile_cmd(&q, &plan)
            .args(["--batch", "1"])
            .arg("--json")
            .arg(&json),
    );
    assert!(stderr_of(&prof).contains("session.disable_quant_qdq=1"));
    let p = read_profile(&json);
    assert_eq!(
        p.model_session_config
            .get("session.disable_quant_qdq")
            .map(String::as_str),
        Some("1")
    );
}

/// SIGINT during a sweep: exit 130, stderr says which configurations never ran, the JSON
/// records it, and no gate passes that profile (bug 2).
#[test]
fn an_interrupted_profile_says_so_and_cannot_pass_a_gate() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path());
    let plan = d.path().join("plan.toml");
    std::fs::write(&plan, PLAN.replace("0.02", "0.3").replace("0.2\n", "0.4\n")).unwrap();
    let json = d.path().join("p.json");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("edgepack"))
        .arg("profile")
        .arg(&model)
        .arg("--plan")
        .arg(&plan)
        .args(["--batch", "1,2,3,4,5,6,7,8"])
        .arg("--json")
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first configuration to be written, then interrupt the parent only.
    let start = Instant::now();
    while !json.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        json.exists(),
        "the profile never wrote its first configuration"
    );
    let mid = read_profile(&json);
    assert!(
        !mid.not_run.is_empty(),
        "a mid-sweep file lists what is still to run"
    );
    // SAFETY: sending a signal to our own child by its pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("profile interrupted after"),
        "{}",
        stderr_of(&out)
    );
    let p = read_profile(&json);
    assert!(p.interrupted);
    assert!(!p.not_run.is_empty());
    assert_eq!(p.configs.len() + p.not_run.len(), 8);

    let gate = edgepack()
        .arg("gate")
        .arg("--current")
        .arg(&json)
        .args(["--max-p95", "10s"])
        .output()
        .unwrap();
    assert_eq!(gate.status.code(), Some(2), "{}", stderr_of(&gate));
    assert!(
        stderr_of(&gate).contains("incomplete: the profile was interrupted"),
        "{}",
        stderr_of(&gate)
    );
}

/// `build` makes a self-test case from generated inputs, so its bundles pass `run` on
/// arrival (bug 9); `verify --self-test` runs every variant of the package, each with its
/// session entries (bug 8).
#[test]
fn build_packages_carry_a_self_test_that_every_variant_runs() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path());
    let out = d.path().join("out");
    run_ok(
        edgepack()
            .arg("build")
            .arg(&model)
            .args([
                "--targets",
                "host",
                "--variants",
                "int8-weight",
                "--no-profile",
            ])
            .args(["--shape", "x=1x16"])
            .arg("-o")
            .arg(&out),
    );
    let pkg = out.join("mlp.edgepkg");
    let v = edgepack()
        .arg("verify")
        .arg(&pkg)
        .arg("--self-test")
        .output()
        .unwrap();
    assert!(v.status.success(), "{}{}", stdout_of(&v), stderr_of(&v));
    let text = stdout_of(&v);
    assert!(text.contains("self-test generated on fp32: ok"), "{text}");
    assert!(
        text.contains(
            "self-test generated on int8-weight (session entries session.disable_quant_qdq=1): ran"
        ),
        "{text}"
    );
    assert!(text.contains("SQNR"), "{text}");
    let bundle = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "zip"))
        .expect("a bundle");
    let r = run_ok(edgepack().arg("run").arg(&bundle));
    assert!(
        stdout_of(&r).contains("self-test generated"),
        "{}",
        stdout_of(&r)
    );
}

/// A package made without sample inputs: `run` says so in plain words and still runs it
/// (bug 9), while `verify --self-test` says there is nothing to compare.
#[test]
fn run_on_a_package_without_self_test_cases_says_so_and_runs() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let pkg = mlp_package(d.path());
    let r = run_ok(edgepack().arg("run").arg(&pkg));
    assert!(
        stderr_of(&r).contains("carries no self-test cases"),
        "{}",
        stderr_of(&r)
    );
    assert!(!stderr_of(&r).contains("--self-test"), "{}", stderr_of(&r));
    assert!(
        stdout_of(&r).contains("fp32: ran on generated inputs"),
        "{}",
        stdout_of(&r)
    );
    let v = edgepack()
        .arg("verify")
        .arg(&pkg)
        .arg("--self-test")
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1));
    assert!(
        stdout_of(&v).contains("nothing to compare"),
        "{}",
        stdout_of(&v)
    );
}

/// A package is profiled over the plan's thread counts, not one `threads=0` configuration
/// that a bundle would then mislabel (bug 4).
#[test]
fn a_package_profile_sweeps_the_plan_threads() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let pkg = mlp_package(d.path());
    let plan = d.path().join("plan.toml");
    std::fs::write(&plan, PLAN.replace("threads = [1]", "threads = [1, 2]")).unwrap();
    let json = d.path().join("p.json");
    run_ok(
        profile_cmd(&pkg, &plan)
            .args(["--batch", "1"])
            .arg("--json")
            .arg(&json),
    );
    let threads: Vec<usize> = read_profile(&json)
        .configs
        .iter()
        .map(|c| c.threads)
        .collect();
    assert_eq!(threads, vec![1, 2]);
}

/// Accuracy measured on the calibration inputs is labelled in-sample, never "held-out"
/// (bug 5), on stdout and in the JSON report.
#[test]
fn in_sample_accuracy_is_labelled_in_sample() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path());
    let calib = d.path().join("calib");
    std::fs::create_dir(&calib).unwrap();
    for i in 0..4 {
        let data: Vec<f32> = (0..16)
            .map(|k| ((i * 16 + k) as f32 * 0.37).sin())
            .collect();
        let t = edgepack::tensor::Tensor::from_f32(vec![1, 16], data).unwrap();
        std::fs::write(
            calib.join(format!("s{i}.npy")),
            edgepack::tensor::npy::to_npy_bytes(&t).unwrap(),
        )
        .unwrap();
    }
    let q = d.path().join("q.onnx");
    let report = d.path().join("q.json");
    let out = run_ok(
        edgepack()
            .arg("quantize")
            .arg(&model)
            .arg("-o")
            .arg(&q)
            .arg("--calibration")
            .arg(&calib)
            .args(["--calibration-samples", "4", "--no-latency"])
            .arg("--report")
            .arg(&report),
    );
    let text = stdout_of(&out);
    assert!(
        text.contains("accuracy on 4 in-sample (calibration) samples"),
        "{text}"
    );
    assert!(!text.contains("held-out"), "{text}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["accuracy_basis"], "in_sample");
}

/// A mistyped subcommand never suggests the profiler's internal worker.
#[test]
fn a_typo_never_suggests_the_internal_worker() {
    for typo in ["__profile-worke", "__pipeline-worke", "__command-worke"] {
        let out = edgepack().arg(typo).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(!stderr_of(&out).contains("-worker"), "{}", stderr_of(&out));
    }
    let out = edgepack().arg("--help").output().unwrap();
    assert!(!stdout_of(&out).contains("profile-worker"));
}

/// `compare` prints the model files' exact sizes, not their re-encoded sizes.
#[test]
fn compare_reports_the_files_exact_sizes() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path());
    let inputs = d.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let t = edgepack::tensor::Tensor::from_f32(vec![1, 16], vec![0.25; 16]).unwrap();
    std::fs::write(
        inputs.join("s0.npy"),
        edgepack::tensor::npy::to_npy_bytes(&t).unwrap(),
    )
    .unwrap();
    // Append an empty field-less tail the decoder accepts (an unknown field), so the file
    // and its re-encoding differ in size.
    let mut bytes = std::fs::read(&model).unwrap();
    bytes.extend_from_slice(&[0xF8, 0x07, 0x00]); // field 127, varint 0
    let b = d.path().join("b.onnx");
    std::fs::write(&b, &bytes).unwrap();
    let out = run_ok(
        edgepack()
            .arg("compare")
            .arg(&model)
            .arg(&b)
            .arg("--inputs")
            .arg(&inputs)
            .args(["--no-latency", "--json"]),
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["b_bytes"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(
        c["a_bytes"].as_u64(),
        Some(std::fs::metadata(&model).unwrap().len())
    );
}

/// `edgepack targets` works outside the repository (built-in targets), and a folder adds
/// to them.
#[test]
fn targets_are_built_in_and_a_folder_adds_to_them() {
    let d = tempfile::tempdir().unwrap();
    let out = run_ok(edgepack().arg("targets").current_dir(d.path()));
    assert!(
        stdout_of(&out).contains("raspberry-pi-4-4gb"),
        "{}",
        stdout_of(&out)
    );
    let extra = d.path().join("mine");
    std::fs::create_dir(&extra).unwrap();
    let pi = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware/raspberry-pi-4-4gb.toml"),
    )
    .unwrap();
    std::fs::write(
        extra.join("board.toml"),
        pi.replacen("raspberry-pi-4-4gb", "my-board", 1),
    )
    .unwrap();
    let out = run_ok(edgepack().arg("targets").arg(&extra).current_dir(d.path()));
    let text = stdout_of(&out);
    assert!(
        text.contains("my-board") && text.contains("raspberry-pi-4-4gb"),
        "{text}"
    );
}

/// `bundle --profile P.json` whose profile is of no variant of the package says so.
#[test]
fn a_bundle_profile_that_matches_no_variant_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path());
    let samples = d.path().join("samples");
    std::fs::create_dir_all(samples.join("expected")).unwrap();
    let t = edgepack::tensor::Tensor::from_f32(vec![1, 16], vec![0.5; 16]).unwrap();
    std::fs::write(
        samples.join("x.npy"),
        edgepack::tensor::npy::to_npy_bytes(&t).unwrap(),
    )
    .unwrap();
    let y = edgepack::tensor::Tensor::from_f32(vec![1, 4], vec![0.0; 4]).unwrap();
    std::fs::write(
        samples.join("expected").join("y.npy"),
        edgepack::tensor::npy::to_npy_bytes(&y).unwrap(),
    )
    .unwrap();
    let pkg = package_model(
        &model,
        &d.path().join("mlp.edgepkg"),
        &["--sample-inputs", samples.to_str().unwrap()],
    );
    let prof = d.path().join("other.json");
    std::fs::write(
        &prof,
        serde_json::to_vec(&edgepack::report::fixture::sample_profile()).unwrap(),
    )
    .unwrap();
    let out = edgepack()
        .arg("bundle")
        .arg(&pkg)
        .args(["--target", "host", "--host-compute", "1"])
        .arg("--profile")
        .arg(&prof)
        .arg("-o")
        .arg(d.path().join("dist"))
        .output()
        .unwrap();
    assert!(
        stderr_of(&out).contains("which is no variant of"),
        "{}",
        stderr_of(&out)
    );
}

/// A build that fails after it created its output folder removes what it created: the
/// README promises no partial output (issue 17: `build -o DIR` left `DIR/work` behind).
#[test]
fn a_failed_build_leaves_no_output_folder() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("broken.onnx");
    std::fs::write(&model, b"not a protobuf at all").unwrap();
    let out_dir = d.path().join("dist");
    let out = edgepack()
        .args(["build", model.to_str().unwrap(), "--no-profile", "-o"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("broken.onnx"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !out_dir.exists(),
        "the failed build left {}",
        out_dir.display()
    );
    // An output folder the user made stays, and gains no work/ folder.
    std::fs::create_dir(&out_dir).unwrap();
    let out = edgepack()
        .args(["build", model.to_str().unwrap(), "--no-profile", "-o"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out_dir.is_dir() && !out_dir.join("work").exists());
}
