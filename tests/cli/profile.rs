//! `edgepack profile`: real sweeps on tiny builder models (and the PP-OCR classifier for
//! per-op shares), the JSON schema, failure isolation, and the bad-input contract. Timings
//! are live, so tests check structure and invariants, never values.

use std::path::{Path, PathBuf};

use edgepack::model::builder::{mlp_with, WeightStorage};
use edgepack::profile::schema::{FailureKind, Status, PROFILE_SCHEMA};

use crate::common::{
    edgepack, mlp_model, one_stderr_line, profile_cmd, read_profile, run_ok, runtime_available,
};

/// A plan that keeps each configuration well under a second.
const TINY_PLAN: &str = r#"
description = "integration tests: tiny and fast"
[run]
threads = [1]
[measure]
warmup_iterations = 1
min_iterations = 10
max_iterations = 200
min_time_s = 0.02
max_time_s = 0.3
target_ci_rel = 0.05
stability_tolerance = 0.5
"#;

fn tiny_plan(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.toml");
    std::fs::write(&p, TINY_PLAN).unwrap();
    p
}

#[test]
fn profile_sweeps_batches_and_writes_schema_json() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path(), &[16, 32, 4]);
    let json = d.path().join("profile.json");
    let out = run_ok(
        profile_cmd(&model, tiny_plan(d.path()))
            .args(["--batch", "1,4", "--latency-budget", "10s"])
            // A session entry reaches every configuration's session (ONNX Runtime accepts it).
            .args(["--session-config", "session.disable_quant_qdq=1", "--json"])
            .arg(&json),
    );
    let table = String::from_utf8_lossy(&out.stdout);
    // Rows are labelled by what varies (batch); what every row shares is said once
    // (issue 17), while the JSON keeps the whole id (the gate's matching key).
    assert!(
        table.starts_with("every configuration: ep=cpu threads=1\nconfig"),
        "{table}"
    );
    assert!(table.contains("\nbatch=4 "), "{table}");
    assert!(!table.contains("ep=cpu threads=1 batch=4"), "{table}");

    let p = read_profile(&json);
    assert_eq!(p.schema, PROFILE_SCHEMA);
    assert_eq!(p.model.sha256.len(), 64);
    assert!(!p.onnxruntime_version.is_empty());
    assert!(p.host.logical_cores >= 1 && p.host.total_memory_bytes > 0);
    assert_eq!(p.plan.name, "tiny");
    assert_eq!(p.configs.len(), 2);
    for (c, batch) in p.configs.iter().zip([1, 4]) {
        assert_eq!(c.id, format!("ep=cpu threads=1 batch={batch}"));
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert_eq!(c.batch, Some(batch));
        assert_eq!(c.dims["N"], batch);
        assert_eq!(c.input_shapes["x"], vec![batch, 16]);
        assert_eq!(c.ep_used.as_deref(), Some("cpu"));
        let l = c.latency.as_ref().unwrap();
        assert!(l.iterations >= 10 && l.samples_s.len() as u64 == l.iterations);
        assert!(l.min_s <= l.p50_s && l.p50_s <= l.p90_s && l.p99_s <= l.max_s);
        assert!(l.p50_ci_low_s <= l.p50_s && l.p50_s <= l.p50_ci_high_s);
        let m = c.memory.as_ref().unwrap();
        assert!(m.rss_before_load_bytes > 0);
        assert!(m.rss_after_session_bytes >= m.rss_before_load_bytes / 2);
        assert!(m.peak_rss_bytes >= m.rss_after_session_bytes);
        let cpu = c.cpu.as_ref().unwrap();
        assert!(cpu.wall_time_s > 0.0 && cpu.busy_cores >= 0.0);
        assert!(c.session_create_s.unwrap() > 0.0 && c.first_run_s.unwrap() > 0.0);
        let tput = c.throughput_items_per_s.unwrap();
        assert!((tput - batch as f64 / l.p50_s).abs() < 1e-6 * tput);
    }
    let needs = p.needs.unwrap();
    assert_eq!(needs.min_threads_for_budget["ep=cpu batch=1"], Some(1));
    assert!(needs.memory_fixed_bytes.is_some() && needs.memory_per_item_bytes.is_some());
}

#[test]
fn memory_limit_fails_the_large_batch_and_the_sweep_goes_on() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // batch 200000 x 4096 floats = 3.3 GB of activations: far over a 600 MB limit, while
    // batch 1 needs a few MB.
    let model = mlp_model(d.path(), &[64, 4096, 8]);
    let json = d.path().join("p.json");
    run_ok(
        profile_cmd(&model, tiny_plan(d.path()))
            .args(["--batch", "200000,1", "--memory-limit", "600MB", "--json"])
            .arg(&json),
    );
    let p = read_profile(&json);
    assert_eq!(p.configs.len(), 2);
    let (big, small) = (&p.configs[0], &p.configs[1]);
    assert_eq!(big.status, Status::Failed);
    assert_eq!(big.failure, Some(FailureKind::Oom), "{big:?}");
    assert!(big.reason.as_ref().unwrap().contains("out of memory"));
    assert!(!big.reason.as_ref().unwrap().contains('\n'));
    assert_eq!(small.status, Status::Ok, "{small:?}");
    assert_eq!(p.needs.unwrap().memory_limit_bytes, Some(600_000_000));
}

#[test]
fn timeout_stops_a_configuration_and_nothing_run_exits_2() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path(), &[8, 4]);
    let json = d.path().join("p.json");
    let out = profile_cmd(&model, tiny_plan(d.path()))
        .args(["--timeout", "1ms", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let p = read_profile(&json);
    assert_eq!(p.configs[0].failure, Some(FailureKind::Timeout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no configuration could run"), "{err}");
}

#[test]
fn unavailable_provider_is_a_clear_failed_configuration() {
    if !runtime_available() {
        return;
    }
    if cfg!(feature = "cuda") {
        return; // a CUDA build may really have it
    }
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path(), &[8, 4]);
    let json = d.path().join("p.json");
    run_ok(
        profile_cmd(&model, tiny_plan(d.path()))
            .args(["--ep", "cuda,cpu", "--json"])
            .arg(&json),
    );
    let p = read_profile(&json);
    let cuda = p.configs.iter().find(|c| c.ep_requested == "cuda").unwrap();
    assert_eq!(cuda.failure, Some(FailureKind::ProviderUnavailable));
    assert!(cuda.reason.as_ref().unwrap().contains("cuda"), "{cuda:?}");
    let cpu = p.configs.iter().find(|c| c.ep_requested == "cpu").unwrap();
    assert_eq!(cpu.status, Status::Ok);
}

#[test]
fn plan_typo_exits_2_naming_the_key_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path(), &[8, 4]);
    let plan = d.path().join("typo.toml");
    std::fs::write(&plan, "[measure]\nmin_iteration = 10\n").unwrap();
    let json = d.path().join("p.json");
    let out = profile_cmd(&model, &plan)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let line = one_stderr_line(&out);
    assert!(
        line.contains("typo.toml") && line.contains("min_iteration"),
        "{line}"
    );
    assert!(!json.exists());
}

#[test]
fn bad_sizes_exit_2_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let fixed = d.path().join("fixed.onnx");
    mlp_with(&[8, 4], 1, None, WeightStorage::Initializer)
        .save(&fixed)
        .unwrap();
    let json = d.path().join("p.json");
    let mlp = mlp_model(d.path(), &[8, 4]);
    let on_mlp = |args: &[&'static str], needle: &'static str| (mlp.clone(), args.to_vec(), needle);
    let cases: Vec<(PathBuf, Vec<&str>, &str)> = vec![
        (fixed.clone(), vec!["--batch", "2"], "fixed batch dim"),
        on_mlp(&["--shape", "x=1x9"], "input 'x'"),
        on_mlp(&["--dim", "seq=4"], "no symbolic dim 'seq'"),
        on_mlp(&["--latency-budget", "fast"], "--latency-budget"),
        on_mlp(&["--plan", "quikc"], "no plan named 'quikc'"),
        on_mlp(&["--ep", "tpu"], "unknown provider 'tpu'"),
        on_mlp(
            &["--session-config", "session.disable_quant_qdq"],
            "is not KEY=VALUE",
        ),
        on_mlp(&["--session-config", "=1"], "session_config key"),
    ];
    for (model, args, needle) in cases {
        let out = edgepack()
            .arg("profile")
            .arg(&model)
            .args(&args)
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let line = one_stderr_line(&out);
        assert!(line.contains(needle), "{args:?}: {line}");
        assert!(!json.exists(), "{args:?}");
    }
}

#[test]
fn per_op_shares_come_from_onnxruntime_profiler_on_ppocr_classifier() {
    if !runtime_available() {
        return;
    }
    let cls = edgepack::zoo::ZooModel::PpOcrCls
        .path()
        .expect("PP-OCR classifier from PyPI");
    let d = tempfile::tempdir().unwrap();
    let json = d.path().join("p.json");
    let out = run_ok(
        profile_cmd(&cls, tiny_plan(d.path()))
            .args(["--shape", "x=1x3x48x192", "--per-op", "--json"])
            .arg(&json),
    );
    let p = read_profile(&json);
    let ops = &p.configs[0].per_op;
    let op_share: f64 = ops
        .iter()
        .filter(|o| o.kind == "provider")
        .map(|o| o.share)
        .sum();
    assert!((op_share - 1.0).abs() < 1e-9, "{ops:?}");
    assert!(
        ops.iter()
            .any(|o| o.kind == "op" && o.name.contains("Conv")),
        "{ops:?}"
    );
    assert!(ops.iter().any(|o| o.kind == "node" && o.op_type.is_some()));
    assert!(String::from_utf8_lossy(&out.stdout).contains("top ops"));
}

#[test]
fn profiling_a_package_uses_its_execution_context_and_variant_hash() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path(), &[16, 8]);
    let ctx = d.path().join("context.toml");
    std::fs::write(
        &ctx,
        "[execution]\nintra_op_threads = 2\ngraph_optimization_level = \"basic\"\nexecution_providers = [\"cpu\"]\n",
    )
    .unwrap();
    let pkg = d.path().join("mlp.edgepkg");
    run_ok(
        edgepack()
            .arg("package")
            .arg(&model)
            .arg("-o")
            .arg(&pkg)
            .arg("--context")
            .arg(&ctx),
    );
    let json = d.path().join("p.json");
    run_ok(
        profile_cmd(&pkg, tiny_plan(d.path()))
            .arg("--json")
            .arg(&json),
    );
    let p = read_profile(&json);
    assert_eq!(p.plan.graph_optimization_level, "basic");
    // The plan's thread counts, plus the count the package pins (issue 17 bug 4).
    let threads: Vec<usize> = p.configs.iter().map(|c| c.threads).collect();
    assert_eq!(threads, vec![1, 2]);
    assert!(p.configs.iter().all(|c| c.status == Status::Ok));
    assert!(p.model.path.contains("mlp.edgepkg!"), "{}", p.model.path);
    // The profile names the packaged model by the sha256 the manifest records for it.
    let (sha, _) = edgepack::profile::sweep::file_sha256(&model).unwrap();
    assert_eq!(p.model.sha256, sha);
    let out = edgepack()
        .arg("profile")
        .arg(&pkg)
        .args(["--variant", "int3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_stderr_line(&out).contains("no variant 'int3'"));
}

#[test]
fn inputs_folder_fixes_the_shapes_and_cannot_be_mixed_with_a_batch_sweep() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = mlp_model(d.path(), &[16, 4]);
    let inputs = d.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let x = edgepack::tensor::Tensor::random(edgepack::tensor::DType::F32, &[3, 16], 5);
    edgepack::tensor::npy::write_npy(&inputs.join("x.npy"), &x).unwrap();
    let json = d.path().join("p.json");
    run_ok(
        profile_cmd(&model, tiny_plan(d.path()))
            .arg("--inputs")
            .arg(&inputs)
            .arg("--json")
            .arg(&json),
    );
    let p = read_profile(&json);
    assert_eq!(p.configs[0].batch, Some(3));
    assert_eq!(p.configs[0].input_shapes["x"], vec![3, 16]);
    assert_eq!(p.configs[0].status, Status::Ok);

    let out = edgepack()
        .arg("profile")
        .arg(&model)
        .arg("--inputs")
        .arg(&inputs)
        .args(["--batch", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_stderr_line(&out).contains("--inputs"));
}
