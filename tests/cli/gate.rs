//! `edgepack gate` end to end: hand-built profiles written from the schema's Rust structs,
//! so each test controls exactly what the gate sees (no live timings).

use std::path::{Path, PathBuf};

use edgepack::profile::schema::*;
use predicates::prelude::*;
use rand::{Rng, SeedableRng};

use crate::common::{edgepack, hand_config, hand_profile};

/// Latency samples around `center_s` with relative spread `spread` (seeded).
fn samples(center_s: f64, spread: f64, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| center_s * (1.0 + spread * (rng.random::<f64>() - 0.5) * 2.0))
        .collect()
}

fn config(batch: i64, s: Vec<f64>, peak_rss_bytes: u64) -> ConfigResult {
    hand_config(batch, s, peak_rss_bytes)
}

fn profile(model: &str, sha_byte: &str, configs: Vec<ConfigResult>) -> Profile {
    hand_profile(
        &format!("models/{model}"),
        &sha_byte.repeat(32),
        4_500_000,
        configs,
    )
}

fn write(dir: &Path, name: &str, p: &Profile) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(p).unwrap()).unwrap();
    path
}

/// Baseline and current profiles of the same model; current median `factor` x baseline.
fn pair(dir: &Path, factor: f64, spread: f64, n: usize) -> (PathBuf, PathBuf) {
    let base = profile(
        "det.onnx",
        "aa",
        vec![config(1, samples(0.010, spread, n, 1), 200_000_000)],
    );
    let cur = profile(
        "det.onnx",
        "bb",
        vec![config(
            1,
            samples(0.010 * factor, spread, n, 2),
            210_000_000,
        )],
    );
    (write(dir, "base.json", &base), write(dir, "cur.json", &cur))
}

#[test]
fn gate_passes_within_budgets_and_without_regression() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cur) = pair(dir.path(), 1.0, 0.05, 400);
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .arg("--baseline")
        .arg(&base)
        .args([
            "--max-regression",
            "5%",
            "--max-p95",
            "20ms",
            "--max-peak-memory",
            "300MB",
        ])
        .args(["--max-size", "5MB"])
        .env_remove("GITHUB_ACTIONS")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("gate: PASS"))
        .stdout(predicate::str::contains("p50_latency regression"));
}

#[test]
fn gate_fails_on_a_broken_budget_and_writes_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cur) = pair(dir.path(), 1.0, 0.05, 400);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .args(["--max-peak-memory", "150MB", "--max-size", "5MB"])
        .arg("--json")
        .arg(out.join("gate.json"))
        .arg("--junit")
        .arg(out.join("junit.xml"))
        .arg("--markdown")
        .arg(out.join("summary.md"))
        .env_remove("GITHUB_ACTIONS")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("gate: FAIL"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("gate.json")).unwrap()).unwrap();
    assert_eq!(json["schema"], "edgepack.gate/1");
    assert_eq!(json["decision"], "fail");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure type=\"budget\""), "{junit}");
    assert!(junit.contains("tests=\"2\""), "{junit}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("| fail | peak_memory budget"), "{md}");
}

#[test]
fn gate_catches_a_fifteen_percent_regression() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cur) = pair(dir.path(), 1.15, 0.05, 300);
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .arg("--baseline")
        .arg(&base)
        .args(["--max-regression", "5%"])
        .env_remove("GITHUB_ACTIONS")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "regression beyond the tolerated +5.0%",
        ));
}

#[test]
fn gate_does_not_call_a_two_percent_change_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cur) = pair(dir.path(), 1.02, 0.02, 600);
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .arg("--baseline")
        .arg(&base)
        .args(["--max-regression", "5%"])
        .assert()
        .code(0);
}

#[test]
fn gate_is_inconclusive_with_exit_3_on_noisy_samples() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cur) = pair(dir.path(), 1.04, 0.8, 15);
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .arg("--baseline")
        .arg(&base)
        .args(["--max-regression", "5%"])
        .env("GITHUB_ACTIONS", "true")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("gate: INCONCLUSIVE"))
        .stdout(predicate::str::contains(
            "::warning title=edgepack gate inconclusive",
        ));
}

#[test]
fn gate_emits_github_error_annotations_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cur) = pair(dir.path(), 1.3, 0.05, 300);
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .arg("--baseline")
        .arg(&base)
        .env("GITHUB_ACTIONS", "true")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "::error title=edgepack gate fail%3A p50_latency",
        ));
}

#[test]
fn gate_rejects_a_baseline_of_another_model_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let base = profile(
        "rec.onnx",
        "aa",
        vec![config(1, samples(0.01, 0.05, 100, 1), 1)],
    );
    let cur = profile(
        "det.onnx",
        "bb",
        vec![config(1, samples(0.01, 0.05, 100, 2), 1)],
    );
    let (b, c) = (
        write(dir.path(), "b.json", &base),
        write(dir.path(), "c.json", &cur),
    );
    let json_out = dir.path().join("gate.json");
    edgepack()
        .args(["gate", "--current"])
        .arg(&c)
        .arg("--baseline")
        .arg(&b)
        .arg("--json")
        .arg(&json_out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("different model"));
    assert!(!json_out.exists(), "no output file on an input error");
}

#[test]
fn gate_rejects_another_schema_version_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cur) = pair(dir.path(), 1.0, 0.05, 50);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    v["schema"] = "edgepack.profile/2".into();
    std::fs::write(&base, serde_json::to_vec(&v).unwrap()).unwrap();
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .arg("--baseline")
        .arg(&base)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "profile schema 'edgepack.profile/2' is not supported",
        ))
        .stderr(predicate::str::contains("base.json"));
}

#[test]
fn gate_rejects_a_baseline_missing_configurations_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let base = profile(
        "det.onnx",
        "aa",
        vec![config(1, samples(0.01, 0.05, 100, 1), 1)],
    );
    let cur = profile(
        "det.onnx",
        "bb",
        vec![
            config(1, samples(0.01, 0.05, 100, 2), 1),
            config(4, samples(0.03, 0.05, 100, 3), 1),
        ],
    );
    let (b, c) = (
        write(dir.path(), "b.json", &base),
        write(dir.path(), "c.json", &cur),
    );
    edgepack()
        .args(["gate", "--current"])
        .arg(&c)
        .arg("--baseline")
        .arg(&b)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "lacks configuration(s) ep=cpu threads=1 batch=4",
        ));
}

#[test]
fn gate_rejects_a_policy_with_an_unknown_metric_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cur) = pair(dir.path(), 1.0, 0.05, 50);
    let policy = dir.path().join("gate.toml");
    std::fs::write(&policy, "[metrics.p99_latency]\nmax = \"20ms\"\n").unwrap();
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .arg("--policy")
        .arg(&policy)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown metric 'p99_latency'"))
        .stderr(predicate::str::contains("gate.toml"));
}

#[test]
fn gate_applies_the_example_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cur) = pair(dir.path(), 1.0, 0.05, 400);
    let q = dir.path().join("quantize.json");
    std::fs::write(
        &q,
        r#"{"mode":"int8","outputs":[{"output":"y","sqnr_db":21.0}]}"#,
    )
    .unwrap();
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gate.toml");
    // The SQNR floor is soft in the example: a warning, the gate still passes.
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .arg("--baseline")
        .arg(&base)
        .arg("--policy")
        .arg(&policy)
        .arg("--quantize")
        .arg(&q)
        .env_remove("GITHUB_ACTIONS")
        .assert()
        .code(0)
        .stdout(predicate::str::is_match(r"warn\s+sqnr budget").unwrap());
}

/// The README's example without `--quantize`: the soft SQNR check is skipped with a note,
/// not an exit 2 (issue 17).
#[test]
fn the_example_policy_without_a_quantize_report_skips_its_soft_sqnr_check() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cur) = pair(dir.path(), 1.0, 0.05, 400);
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gate.toml");
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .arg("--baseline")
        .arg(&base)
        .arg("--policy")
        .arg(&policy)
        .env_remove("GITHUB_ACTIONS")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("sqnr (a soft check) skipped"));
}

#[test]
fn gate_with_nothing_to_check_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cur) = pair(dir.path(), 1.0, 0.05, 50);
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nothing to check"));
    edgepack()
        .args(["gate", "--current"])
        .arg(&cur)
        .args(["--max-p95", "20 parsecs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--max-p95"));
}

#[test]
fn gate_remeasure_rejects_models_with_different_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("mlp.onnx");
    let b = dir.path().join("conv.onnx");
    edgepack::model::builder::mlp(&[8, 4], 1).save(&a).unwrap();
    let mut conv = edgepack::model::builder::conv_net(1);
    conv.graph_mut().input[0].name = "image".into();
    for n in conv.graph_mut().node.iter_mut() {
        for i in n.input.iter_mut() {
            if i == "x" {
                *i = "image".into();
            }
        }
    }
    conv.save(&b).unwrap();
    edgepack()
        .args(["gate", "--remeasure", "--baseline-model"])
        .arg(&a)
        .arg("--model")
        .arg(&b)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("different inputs"));
    edgepack()
        .args(["gate", "--remeasure", "--baseline-model"])
        .arg(&a)
        .arg("--model")
        .arg(&a)
        .args(["--rounds", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("at least 2 rounds"));
}
