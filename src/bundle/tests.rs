//! Bundle tests on the tiny Relu package, with hand-built profiles and targets.

use super::*;
use crate::package::tests::{tiny_fixture, tiny_model_bytes};
use crate::package::{LineageSpec, PackageOptions, VariantInput};
use crate::profile::schema::*;

/// Computes Relu in Rust: the tiny model's exact semantics, for self-test recomputation.
struct ReluRunner;

impl selftest::Runner for ReluRunner {
    fn run(
        &self,
        _model: &[u8],
        _ctx: &manifest::ExecutionContext,
        inputs: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(BTreeMap<String, Vec<u8>>, String)> {
        let x = crate::tensor::npy::parse_npy(&inputs["x"], Path::new("x"))?;
        let y: Vec<f32> = x.to_f64_vec().iter().map(|v| v.max(0.0) as f32).collect();
        let t = crate::tensor::Tensor::from_f32(x.shape().to_vec(), y)?;
        Ok((
            BTreeMap::from([("y".to_string(), crate::tensor::npy::to_npy_bytes(&t)?)]),
            "relu reference".into(),
        ))
    }
}

fn profile(sha: &str, points: &[(usize, i64, f64, u64)]) -> Profile {
    Profile {
        schema: PROFILE_SCHEMA.into(),
        edgepack_version: "test".into(),
        created_unix_s: 0,
        model: ModelRef {
            path: "m.onnx".into(),
            sha256: sha.into(),
            size_bytes: 1,
        },
        host: Host::default(),
        onnxruntime_version: "1.31.1".into(),
        plan: PlanSummary {
            name: "quick".into(),
            rounds: 1,
            warmup_iterations: 1,
            min_iterations: 1,
            max_iterations: 1,
            min_time_s: 0.0,
            max_time_s: 1.0,
            target_ci_rel: 0.01,
            graph_optimization_level: "all".into(),
        },
        configs: points
            .iter()
            .map(|&(threads, batch, p50, rss)| ConfigResult {
                id: format!("threads={threads} batch={batch}"),
                ep_requested: "cpu".into(),
                threads,
                batch: Some(batch),
                dims: Default::default(),
                input_shapes: Default::default(),
                status: Status::Ok,
                failure: None,
                reason: None,
                ep_used: Some("cpu".into()),
                session_create_s: None,
                first_run_s: None,
                latency: Some(LatencyStats {
                    iterations: 10,
                    min_s: p50,
                    mean_s: p50,
                    p50_s: p50,
                    p90_s: p50,
                    p95_s: p50 * 1.2,
                    p99_s: p50,
                    max_s: p50,
                    stddev_s: None,
                    p50_ci_low_s: p50,
                    p50_ci_high_s: p50,
                    p50_ci_rel: 0.0,
                    outliers_mild: 0,
                    outliers_severe: 0,
                    stable: true,
                    samples_s: vec![],
                    rounds: vec![],
                    modes: vec![],
                }),
                throughput_items_per_s: None,
                memory: Some(MemoryStats {
                    rss_before_load_bytes: 0,
                    rss_after_session_bytes: 0,
                    peak_rss_bytes: rss,
                    peak_rss_session_create_bytes: None,
                }),
                cpu: None,
                gpu: None,
                per_op: vec![],
                warnings: vec![],
                uses_all_cores: false,
            })
            .collect(),
        needs: None,
        model_session_config: Default::default(),
        not_run: Vec::new(),
        interrupted: false,
    }
}

fn target(name: &str, ram_mib: u64, compute: f64) -> Target {
    Target {
        name: name.into(),
        description: None,
        arch: Arch::Aarch64,
        cores: 4,
        cpu_model: "test".into(),
        isa_features: vec![],
        ram_bytes: ram_mib * 1024 * 1024,
        model_ram_share: 1.0,
        storage_budget_bytes: 1 << 30,
        accelerator: None,
        execution_providers: vec!["cpu".into()],
        relative_compute: compute,
        source: vec!["test".into()],
        device_profile: None,
    }
}

/// A package with fp32 and an "int8" variant (a re-encoded copy with another producer, so it
/// has its own sha256), plus profiles for both.
fn fixture(dir: &Path) -> (PathBuf, Vec<Profile>) {
    let (model, samples) = tiny_fixture(dir);
    let variant = dir.join("tiny.int8.onnx");
    let mut bytes = tiny_model_bytes();
    // Change the producer name ("edgepack-test" -> "edgepack-tesq"): a distinct file.
    let at = bytes
        .windows(13)
        .position(|w| w == b"edgepack-test")
        .unwrap();
    bytes[at + 12] = b'q';
    std::fs::write(&variant, &bytes).unwrap();
    let pkg = dir.join("tiny.edgepkg");
    let opts = PackageOptions {
        sample_inputs: Some(samples),
        variants: vec![VariantInput {
            name: "int8".into(),
            path: variant,
            sqnr_db: Some(32.0),
            params: BTreeMap::new(),
            session_config: [("session.disable_quant_qdq".to_string(), "1".to_string())].into(),
        }],
        lineage: vec![LineageSpec::parse("code=https://github.com/example/r#abcdef0").unwrap()],
        created_unix_s: Some(1_700_000_000),
        ..Default::default()
    };
    let m = package::write(&model, &opts, &pkg).unwrap();
    let fp32 = &m.components[0].variants[0];
    let int8 = &m.components[0].variants[1];
    // fp32: 10 ms, 400 MiB; int8: 4 ms, 150 MiB (host measurements).
    let profiles = vec![
        profile(
            &fp32.sha256,
            &[(1, 1, 0.010, 400 << 20), (4, 1, 0.004, 400 << 20)],
        ),
        profile(
            &int8.sha256,
            &[(1, 1, 0.004, 150 << 20), (4, 1, 0.0015, 150 << 20)],
        ),
    ];
    (pkg, profiles)
}

fn opts(profiles: Vec<Profile>) -> BundleOptions {
    BundleOptions {
        profiles,
        host_compute: Some((2.0, "test host".into())),
        runner: Some(Box::new(ReluRunner)),
        ..Default::default()
    }
}

#[test]
fn each_target_gets_the_variant_that_fits_and_bundles_verify() {
    let d = tempfile::tempdir().unwrap();
    let (pkg, profiles) = fixture(d.path());
    let out = d.path().join("dist");
    let targets = vec![
        (target("big", 1024, 2.0), "a".repeat(64)),
        (target("small", 200, 2.0), "b".repeat(64)),
        (target("tiny", 100, 2.0), "c".repeat(64)),
    ];
    let res = bundle_all(&pkg, &targets, &opts(profiles), &out).unwrap();
    let chosen: Vec<_> = res
        .iter()
        .map(|r| {
            r.selection
                .chosen
                .map(|i| r.selection.evaluations[i].variant.clone())
        })
        .collect();
    assert_eq!(chosen, vec![Some("fp32".into()), Some("int8".into()), None]);
    assert!(res[2].path.is_none());
    assert!(!out.join("tiny-tiny.zip").exists());
    for r in &res[..2] {
        let p = r.path.as_ref().unwrap();
        let opened = package::open(p, None).unwrap();
        assert_eq!(opened.manifest.kind, Kind::Bundle);
        let t = opened.manifest.target.as_ref().unwrap();
        assert_eq!(t.prediction.basis.split(' ').next(), Some("host"));
        assert_eq!(opened.manifest.components[0].variants.len(), 1);
        // The self-test in the bundle passes against its own variant.
        let v = &opened.manifest.components[0].variants[0];
        let cases =
            selftest::run_cases(&opened.manifest, &opened.archive, &v.path, &ReluRunner).unwrap();
        assert!(cases.iter().all(|c| c.problems.is_empty()));
    }
    let small = package::open(res[1].path.as_ref().unwrap(), None).unwrap();
    let lin = &small.manifest.lineage;
    assert!(lin.parent.as_ref().unwrap().uri.ends_with("tiny.edgepkg"));
    let names: Vec<_> = lin
        .transformations
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    // In the order it happened: quantized, then packaged, then bundled (issue 17).
    assert_eq!(names, vec!["quantize:int8", "package", "bundle"]);
    // The variant's session entries travel into the bundle's execution context; the fp32
    // bundle gets none.
    let entry = small
        .manifest
        .execution
        .session_config
        .get("session.disable_quant_qdq");
    assert_eq!(entry.map(String::as_str), Some("1"));
    let big = package::open(res[0].path.as_ref().unwrap(), None).unwrap();
    assert!(big.manifest.execution.session_config.is_empty());
}

#[test]
fn bundling_twice_gives_identical_bytes() {
    let d = tempfile::tempdir().unwrap();
    let (pkg, profiles) = fixture(d.path());
    let targets = vec![(target("small", 200, 2.0), "b".repeat(64))];
    let a = bundle_all(&pkg, &targets, &opts(profiles.clone()), &d.path().join("a")).unwrap();
    let b = bundle_all(&pkg, &targets, &opts(profiles), &d.path().join("b")).unwrap();
    let read = |r: &Outcome| std::fs::read(r.path.as_ref().unwrap()).unwrap();
    assert_eq!(read(&a[0]), read(&b[0]));
}

#[test]
fn device_profile_replaces_the_scaled_estimate() {
    let d = tempfile::tempdir().unwrap();
    let (pkg, profiles) = fixture(d.path());
    let opened = package::open(&pkg, None).unwrap();
    let t = target("dev", 1024, 0.5);
    let mut o = opts(profiles.clone());
    // Scaled from the host: 10 ms x (2.0 / 0.5) = 40 ms at 1 thread, 16 ms at 4.
    let sel = plan(&opened, &t, &o).unwrap();
    let fp32 = &sel.evaluations[0];
    assert!((fp32.choice.as_ref().unwrap().p50_s.unwrap() - 0.016).abs() < 1e-9);
    // Measured on the device: 30 ms at 4 threads, used as is.
    let dev = profile(&profiles[0].model.sha256, &[(4, 1, 0.030, 300 << 20)]);
    o.device_profiles.push(("dev".into(), dev));
    let sel = plan(&opened, &t, &o).unwrap();
    let c = sel.evaluations[0].choice.as_ref().unwrap();
    assert_eq!(c.p50_s, Some(0.030));
    assert_eq!(c.basis, "measured on target");
}

#[test]
fn bundle_manifest_validates_against_json_schema() {
    let d = tempfile::tempdir().unwrap();
    let (pkg, profiles) = fixture(d.path());
    let targets = vec![(target("small", 200, 2.0), "b".repeat(64))];
    let res = bundle_all(&pkg, &targets, &opts(profiles), &d.path().join("dist")).unwrap();
    let opened = package::open(res[0].path.as_ref().unwrap(), None).unwrap();
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/manifest.schema.json");
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let instance: serde_json::Value = serde_json::from_slice(&opened.manifest.to_bytes()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// Bundle for a roomy target (2 MiB of storage) and a cramped one (200 kB: the model and
/// manifest fit, not with the 300 kB file the options carry besides); asserts that the
/// cramped one is refused for its storage budget and returns the roomy one's bundle.
fn bundle_roomy_and_cramped(pkg: &Path, o: &BundleOptions, dist: &Path) -> package::Opened {
    let mut roomy = target("roomy", 1024, 2.0);
    roomy.storage_budget_bytes = 2 << 20;
    let mut cramped = target("cramped", 1024, 2.0);
    cramped.storage_budget_bytes = 200_000;
    let res = bundle_all(
        pkg,
        &[(roomy, "a".repeat(64)), (cramped, "b".repeat(64))],
        o,
        dist,
    )
    .unwrap();
    assert!(res[1].path.is_none());
    assert!(res[1].selection.evaluations[0].reasons[0].contains("storage budget"));
    package::open(res[0].path.as_ref().unwrap(), None).unwrap()
}

#[test]
fn runtime_library_is_carried_listed_and_counted_against_storage() {
    let d = tempfile::tempdir().unwrap();
    let (pkg, profiles) = fixture(d.path());
    // Stands in for libonnxruntime.so (its bytes do not matter to bundling).
    let lib = d.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&lib, vec![7u8; 300_000]).unwrap();
    let mut o = opts(profiles);
    o.runtimes.insert(
        "linux-aarch64".into(),
        RuntimeLib {
            version: "1.31.1".into(),
            platform: "linux-aarch64".into(),
            path: lib,
        },
    );
    let opened = bundle_roomy_and_cramped(&pkg, &o, &d.path().join("dist"));
    let rt = opened.manifest.runtime.as_ref().unwrap();
    assert_eq!(rt.path, "runtime/linux-aarch64/libonnxruntime.so.1.31.1");
    assert!(opened
        .manifest
        .files
        .iter()
        .any(|f| f.path == rt.path && f.size_bytes == 300_000));
}

#[test]
fn a_forced_variant_is_the_only_candidate_and_an_unknown_one_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (pkg, profiles) = fixture(d.path());
    let mut o = opts(profiles);
    o.variant = Some("int8".into());
    // The big target would take fp32; forced, it gets int8.
    let res = bundle_all(
        &pkg,
        &[(target("big", 1024, 2.0), "a".repeat(64))],
        &o,
        &d.path().join("dist"),
    )
    .unwrap();
    let e = &res[0].selection.evaluations;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].variant, "int8");
    assert!(res[0].path.is_some());
    o.variant = Some("int3".into());
    let err = bundle_all(
        &pkg,
        &[(target("big", 1024, 2.0), "a".repeat(64))],
        &o,
        &d.path().join("dist2"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no variant 'int3'"), "{err}");
}

#[test]
fn device_binary_is_carried_executable_listed_and_counted_against_storage() {
    let d = tempfile::tempdir().unwrap();
    let (pkg, profiles) = fixture(d.path());
    // Stands in for the aarch64 edgepack (its bytes do not matter to bundling).
    let bin = d.path().join("edgepack");
    std::fs::write(&bin, vec![9u8; 300_000]).unwrap();
    let mut o = opts(profiles);
    o.device_binaries.insert(
        "linux-aarch64".into(),
        device::DeviceBinary {
            platform: "linux-aarch64".into(),
            path: bin,
            source: "test".into(),
        },
    );
    let opened = bundle_roomy_and_cramped(&pkg, &o, &d.path().join("dist"));
    let db = opened.manifest.device_binary.as_ref().unwrap();
    assert_eq!(db.path, "runtime/linux-aarch64/edgepack");
    assert_eq!(db.version, package::EDGEPACK_VERSION);
    assert!(opened
        .manifest
        .files
        .iter()
        .any(|f| f.path == db.path && f.size_bytes == 300_000));
    // Executable once extracted (unzip restores the mode); everything else stays 0644.
    for h in &opened.archive.headers {
        let mode = (h.external_attr >> 16) & 0o777;
        let want = if h.name == db.path { 0o755 } else { 0o644 };
        assert_eq!(mode, want, "{}", h.name);
    }
}

/// Records the session entries each self-test run was given, then computes Relu.
struct EntriesRunner(std::cell::RefCell<Vec<BTreeMap<String, String>>>);

impl selftest::Runner for EntriesRunner {
    fn run(
        &self,
        model: &[u8],
        ctx: &manifest::ExecutionContext,
        inputs: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(BTreeMap<String, Vec<u8>>, String)> {
        self.0.borrow_mut().push(ctx.session_config.clone());
        ReluRunner.run(model, ctx, inputs)
    }
}

#[test]
fn a_package_variant_self_test_runs_with_the_variant_session_entries() {
    let d = tempfile::tempdir().unwrap();
    let (pkg, _) = fixture(d.path());
    let opened = package::open(&pkg, None).unwrap();
    let variants = &opened.manifest.components[0].variants;
    let runner = EntriesRunner(Default::default());
    for v in variants {
        let cases =
            selftest::run_cases(&opened.manifest, &opened.archive, &v.path, &runner).unwrap();
        assert!(!cases.is_empty());
    }
    let seen = runner.0.borrow();
    // fp32 runs with the package's context as is; the int8 variant adds its entry.
    assert!(seen.first().unwrap().is_empty());
    assert_eq!(
        seen.last()
            .unwrap()
            .get("session.disable_quant_qdq")
            .map(String::as_str),
        Some("1")
    );
}

#[test]
fn parses_accuracy_floors() {
    assert_eq!(parse_accuracy_floor("sqnr=25dB").unwrap(), 25.0);
    assert!(parse_accuracy_floor("sqnr=30")
        .unwrap_err()
        .to_string()
        .contains("has no unit"));
    assert!(parse_accuracy_floor("psnr=30dB").is_err());
}

#[test]
fn a_default_thread_count_is_predicted_as_the_cores_that_measured_it() {
    // threads = 0 is ONNX Runtime's default, one thread per physical core of the host
    // that measured it; predicting from it as if it were 1 thread claims the wrong count.
    let mut p = profile("abc", &[(0, 1, 0.010, 1 << 20), (1, 1, 0.018, 1 << 20)]);
    p.host.physical_cores = Some(2);
    p.host.logical_cores = 4;
    let perf = perf_from_profile(&p, Basis::Device);
    let threads: Vec<usize> = perf.points.iter().map(|x| x.threads).collect();
    assert_eq!(threads, vec![2, 1]);
}
