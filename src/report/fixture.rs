//! A deterministic, hand-built profile with everything the HTML report can show (two
//! thread counts x four batch sizes, per-op shares, one out-of-memory configuration, a
//! quantize summary, one bundle and two targets). Used by the report's unit tests, the CLI
//! integration tests and the headless-browser test (`tests/report_chromium.sh`), so that
//! the page's layout can be checked without a live profiling run. Not a measurement.

use std::collections::BTreeMap;

use super::bundles::{BundleDir, BundleRow};
use super::html::Inputs;
use super::quantize::QuantizeSummary;
use super::targets::TargetRam;
use crate::profile::schema::*;

/// A hand-built profile: 2 thread counts x 4 batches, per-op shares, one OOM config.
pub fn sample_profile() -> Profile {
    let mut configs = Vec::new();
    for threads in [1usize, 2] {
        for batch in [1i64, 2, 4, 8] {
            let p50 = 0.004 + 0.0062 * batch as f64 / threads as f64 * 0.8;
            let samples: Vec<f64> = (0..40)
                .map(|i| p50 * (1.0 + (i % 7) as f64 * 0.004))
                .collect();
            configs.push(ConfigResult {
                id: format!("ep=cpu threads={threads} batch={batch}"),
                ep_requested: "cpu".into(),
                threads,
                batch: Some(batch),
                dims: BTreeMap::new(),
                input_shapes: BTreeMap::from([("x".into(), vec![batch, 3, 48, 192])]),
                status: Status::Ok,
                failure: None,
                reason: None,
                ep_used: Some("CPUExecutionProvider".into()),
                session_create_s: Some(0.12),
                first_run_s: Some(p50 * 3.0),
                latency: Some(LatencyStats {
                    iterations: 40,
                    min_s: p50 * 0.98,
                    mean_s: p50 * 1.01,
                    p50_s: p50,
                    p90_s: p50 * 1.05,
                    p95_s: p50 * 1.08,
                    p99_s: p50 * 1.15,
                    max_s: p50 * 1.2,
                    stddev_s: Some(p50 * 0.03),
                    p50_ci_low_s: p50 * 0.99,
                    p50_ci_high_s: p50 * 1.01,
                    p50_ci_rel: 0.01,
                    outliers_mild: 1,
                    outliers_severe: 0,
                    stable: !(threads == 2 && batch == 8),
                    samples_s: samples,
                    rounds: vec![],
                    modes: vec![],
                }),
                throughput_items_per_s: Some(batch as f64 / p50),
                memory: Some(MemoryStats {
                    rss_before_load_bytes: 30_000_000,
                    rss_after_session_bytes: 90_000_000,
                    peak_rss_bytes: 110_000_000 + 45_000_000 * batch as u64,
                    peak_rss_session_create_bytes: None,
                }),
                cpu: Some(CpuStats {
                    cpu_time_s: 1.0,
                    wall_time_s: 1.0,
                    busy_cores: threads as f64 * 0.95,
                }),
                gpu: None,
                per_op: if threads == 1 && batch == 1 {
                    vec![
                        ("Conv", 0.61),
                        ("HardSwish", 0.12),
                        ("Add", 0.09),
                        ("BatchNormalization", 0.07),
                        ("Resize", 0.06),
                        ("Sigmoid", 0.05),
                    ]
                    .into_iter()
                    .map(|(n, s)| OpShare {
                        kind: "op".into(),
                        name: n.into(),
                        op_type: Some(n.into()),
                        total_s: s * 0.01,
                        share: s,
                        calls: 10,
                    })
                    .collect()
                } else {
                    vec![]
                },
                warnings: vec![],
                // The fixture's host has 2 logical cores.
                uses_all_cores: threads == 2,
            });
        }
    }
    configs.push(ConfigResult {
        id: "ep=cpu threads=2 batch=64".into(),
        ep_requested: "cpu".into(),
        threads: 2,
        batch: Some(64),
        dims: BTreeMap::new(),
        input_shapes: BTreeMap::new(),
        status: Status::Failed,
        failure: Some(FailureKind::Oom),
        reason: Some("exceeded the 1 GB memory limit <&>".into()),
        ep_used: None,
        session_create_s: None,
        first_run_s: None,
        latency: None,
        throughput_items_per_s: None,
        memory: None,
        cpu: None,
        gpu: None,
        per_op: vec![],
        warnings: vec![],
        uses_all_cores: false,
    });
    Profile {
        schema: PROFILE_SCHEMA.into(),
        edgepack_version: "0.1.0".into(),
        created_unix_s: 1_700_000_000,
        model: ModelRef {
            path: "models/ch_ppocr_mobile_v2.0_cls_infer.onnx".into(),
            sha256: "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c".into(),
            size_bytes: 585_532,
        },
        host: Host {
            os: "linux".into(),
            arch: "x86_64".into(),
            cpu_model: "Intel(R) Xeon(R) Platinum".into(),
            logical_cores: 2,
            physical_cores: Some(1),
            total_memory_bytes: 8_300_000_000,
            isa_features: vec!["avx2".into()],
        },
        onnxruntime_version: "1.31.1".into(),
        plan: PlanSummary {
            name: "quick".into(),
            rounds: 1,
            warmup_iterations: 5,
            min_iterations: 20,
            max_iterations: 500,
            min_time_s: 0.5,
            max_time_s: 5.0,
            target_ci_rel: 0.02,
            graph_optimization_level: "all".into(),
        },
        configs,
        needs: Some(Needs {
            latency_budget_s: Some(0.02),
            min_threads_for_budget: BTreeMap::from([
                ("batch=1".into(), Some(1)),
                ("batch=8".into(), None),
            ]),
            memory_fixed_bytes: Some(110_000_000.0),
            memory_per_item_bytes: Some(45_000_000.0),
            memory_limit_bytes: Some(1_000_000_000),
            max_batch_within_memory_limit: Some(19),
        }),
        model_session_config: Default::default(),
        not_run: Vec::new(),
        interrupted: false,
    }
}

pub fn sample_inputs() -> Inputs {
    Inputs {
        profile: sample_profile(),
        quantize: Some(
            QuantizeSummary::from_json(
                &serde_json::json!({
                    "schema": "edgepack.quantize/1", "mode": "auto",
                    "variant": "int8 (2 nodes kept in float)", "random_inputs": false,
                    "calibration_samples": 64, "eval_samples": 32, "quantize_wall_s": 4.2,
                    "accuracy_basis": "held_out",
                    "size": {"fp32_bytes": 585532, "quantized_bytes": 170000, "ratio": 0.29},
                    "size_ratio": 0.29, "latency_ratio": 0.78,
                    "outputs": [{"output": "softmax_0.tmp_0", "sqnr_db": 31.4, "cosine": 0.99964,
                                 "top1_agreement": 0.998, "max_abs_error": 0.0123}],
                    "attempts": [
                        {"variant": "int8", "min_sqnr_db": 19.5, "latency_ratio": 0.71,
                         "size_ratio": 0.27, "meets_target": false},
                        {"variant": "int8 (2 nodes kept in float)", "min_sqnr_db": 31.4,
                         "latency_ratio": 0.78, "size_ratio": 0.29, "meets_target": true}
                    ]
                }),
                std::path::Path::new("quantize.json"),
            )
            .expect("the fixture is a valid quantize report"),
        ),
        bundles: Some(BundleDir {
            rows: vec![BundleRow {
                file: "cls-raspberry-pi-4-4gb.zip".into(),
                target: "raspberry-pi-4-4gb".into(),
                variant: "int8".into(),
                threads: Some(4),
                batch: Some(1),
                latency_p50_s: Some(0.021),
                latency_p95_s: Some(0.025),
                peak_memory_bytes: Some(150_000_000),
                bundle_size_bytes_max: Some(1_000_000),
                accuracy_sqnr_db: Some(31.4),
                accuracy_in_sample: false,
                basis: Some("scaled from host (relative_compute 1.0 vs 3.0)".into()),
                model_sha256: None,
            }],
        }),
        targets: vec![
            TargetRam {
                name: "raspberry-pi-4-4gb".into(),
                ram_bytes: 4 << 30,
                model_ram_bytes: Some(1 << 30),
            },
            TargetRam {
                name: "tiny-mcu-board".into(),
                ram_bytes: 512 << 20,
                model_ram_bytes: Some(256 << 20),
            },
        ],
        build: None,
        device_profiles: vec![],
    }
}
