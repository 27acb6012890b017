//! `package`, `keygen`, `verify`, `bundle`, `lineage`, `targets` and `build` through the
//! real CLI: packages and bundles of the PP-OCR classifier verify, any tampering fails
//! verification (exit 1), hostile or unreadable archives are refused (exit 2, one line,
//! nothing written), and the same inputs give byte-identical archives.

use std::path::{Path, PathBuf};

use crate::common::{
    self, cls_model, edgepack, one_stderr_line, profile_cmd, run_ok, runtime_available,
};

fn hardware() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware")
}

fn package(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    edgepack()
        .arg("package")
        .arg(cls_model())
        .arg("-o")
        .arg(&out)
        .args([
            "--lineage",
            "source=https://pypi.org/project/rapidocr-onnxruntime/1.4.4/",
        ])
        .args([
            "--lineage",
            "code=https://github.com/RapidAI/RapidOCR#0123abcd",
        ])
        .args(extra)
        .assert()
        .success();
    out
}

/// The classifier packaged as `dir/cls.edgepkg` with one random sample input `x` of this
/// shape (seed 7) as its self-test case.
fn package_with_sample(dir: &Path, shape: &[usize]) -> PathBuf {
    let samples = dir.join("samples");
    std::fs::create_dir(&samples).unwrap();
    let x = edgepack::tensor::Tensor::random(edgepack::tensor::DType::F32, shape, 7);
    edgepack::tensor::npy::write_npy(&samples.join("x.npy"), &x).unwrap();
    package(
        dir,
        "cls.edgepkg",
        &["--sample-inputs", samples.to_str().unwrap()],
    )
}

/// A zip built by hand from stored entries, so tests can write what no honest tool writes.
/// `mode` is a unix mode for the entry (0 = none recorded).
fn craft_zip(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let entries: Vec<common::Entry> = entries
        .iter()
        .map(|&(name, data, mode)| common::Entry {
            unix_mode: (mode != 0).then_some(mode),
            ..common::entry(name, data)
        })
        .collect();
    common::craft_zip(&entries, false)
}

#[test]
fn package_verifies_and_a_flipped_byte_fails_verification() {
    let d = tempfile::tempdir().unwrap();
    let pkg = package(d.path(), "cls.edgepkg", &[]);
    edgepack()
        .arg("verify")
        .arg(&pkg)
        .assert()
        .success()
        .stdout(predicates::str::contains("OK"));
    // Flip one byte in the middle (inside the stored model) and one near the end (the
    // central directory): both must fail, with exit 1 (integrity) or 2 (unreadable).
    let bytes = std::fs::read(&pkg).unwrap();
    for at in [bytes.len() / 2, bytes.len() - 40] {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        let t = d.path().join("tampered.edgepkg");
        std::fs::write(&t, &b).unwrap();
        let out = edgepack().arg("verify").arg(&t).output().unwrap();
        assert!(
            matches!(out.status.code(), Some(1) | Some(2)),
            "byte {at}: {out:?}"
        );
    }
    let mut b = bytes.clone();
    b[bytes.len() / 2] ^= 0x01;
    let t = d.path().join("tampered.edgepkg");
    std::fs::write(&t, &b).unwrap();
    edgepack()
        .arg("verify")
        .arg(&t)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("FAILED"));
}

#[test]
fn signed_package_needs_the_right_key() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    let other = d.path().join("other");
    edgepack()
        .arg("keygen")
        .arg("-o")
        .arg(&key)
        .assert()
        .success();
    edgepack()
        .arg("keygen")
        .arg("-o")
        .arg(&other)
        .assert()
        .success();
    let pkg = package(d.path(), "cls.edgepkg", &["--sign", key.to_str().unwrap()]);
    edgepack()
        .arg("verify")
        .arg(&pkg)
        .arg("--key")
        .arg(d.path().join("key.pub"))
        .assert()
        .success()
        .stdout(predicates::str::contains("signed by the given key"));
    edgepack()
        .arg("verify")
        .arg(&pkg)
        .arg("--key")
        .arg(d.path().join("other.pub"))
        .assert()
        .code(1)
        .stdout(predicates::str::contains("expected key"));
    let unsigned = package(d.path(), "plain.edgepkg", &[]);
    edgepack()
        .arg("verify")
        .arg(&unsigned)
        .arg("--key")
        .arg(d.path().join("key.pub"))
        .assert()
        .code(1)
        .stdout(predicates::str::contains("not signed"));
}

#[test]
fn packaging_twice_gives_identical_bytes() {
    let d = tempfile::tempdir().unwrap();
    let a = package(d.path(), "a.edgepkg", &[]);
    let b = package(d.path(), "b.edgepkg", &[]);
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn hostile_and_unreadable_archives_exit_2_with_one_line() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage",
            b"this is not a zip archive at all".to_vec(),
            "not a zip",
        ),
        ("slip", craft_zip(&[("../evil.txt", b"x", 0)]), "escapes"),
        ("absolute", craft_zip(&[("/etc/evil", b"x", 0)]), "absolute"),
        (
            "symlink",
            craft_zip(&[("link", b"/etc/passwd", 0o120_777)]),
            "symbolic link",
        ),
        (
            "duplicate",
            craft_zip(&[("a", b"1", 0), ("a", b"2", 0)]),
            "duplicate",
        ),
        (
            "case",
            craft_zip(&[("Model.onnx", b"1", 0), ("model.onnx", b"2", 0)]),
            "case-insensitive",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = d.path().join(format!("{name}.zip"));
        std::fs::write(&p, &bytes).unwrap();
        let out = edgepack().arg("verify").arg(&p).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        let line = one_stderr_line(&out);
        assert!(
            line.contains(want) && line.contains(&format!("{name}.zip")),
            "{name}: {line}"
        );
        // Bundling from such an archive is refused the same way, and writes nothing.
        let dist = d.path().join(format!("dist-{name}"));
        let out = edgepack()
            .arg("bundle")
            .arg(&p)
            .arg("--target")
            .arg(hardware().join("raspberry-pi-4-4gb.toml"))
            .arg("-o")
            .arg(&dist)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        assert!(!dist.exists() || std::fs::read_dir(&dist).unwrap().count() == 0);
    }
    let out = edgepack()
        .arg("verify")
        .arg(d.path().join("missing.zip"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    one_stderr_line(&out);
    assert!(!d.path().join("evil.txt").exists() && !Path::new("/etc/evil").exists());
}

#[test]
fn bundles_for_every_target_verify_and_are_reproducible() {
    let d = tempfile::tempdir().unwrap();
    let pkg = package(d.path(), "cls.edgepkg", &[]);
    for out in ["dist-a", "dist-b"] {
        edgepack()
            .arg("bundle")
            .arg(&pkg)
            .arg("--target")
            .arg(hardware())
            .arg("-o")
            .arg(d.path().join(out))
            .assert()
            .success()
            .stdout(predicates::str::contains("raspberry-pi-4-4gb"));
    }
    let mut names: Vec<_> = std::fs::read_dir(d.path().join("dist-a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    for n in &names {
        let a = std::fs::read(d.path().join("dist-a").join(n)).unwrap();
        let b = std::fs::read(d.path().join("dist-b").join(n)).unwrap();
        assert_eq!(a, b, "{n} differs between two bundle runs");
        edgepack()
            .arg("verify")
            .arg(d.path().join("dist-a").join(n))
            .assert()
            .success();
    }
    edgepack()
        .arg("lineage")
        .arg(
            d.path()
                .join("dist-a")
                .join("ch_ppocr_mobile_v2.0_cls_infer-raspberry-pi-4-4gb.zip"),
        )
        .assert()
        .success()
        .stdout(predicates::str::contains("for target raspberry-pi-4-4gb"))
        .stdout(predicates::str::contains("<- from cls.edgepkg"))
        .stdout(predicates::str::contains(
            "code https://github.com/RapidAI/RapidOCR @ 0123abcd",
        ));
}

#[test]
fn a_budget_nothing_can_meet_exits_1_without_a_bundle() {
    let d = tempfile::tempdir().unwrap();
    let pkg = package(d.path(), "cls.edgepkg", &[]);
    let dist = d.path().join("dist");
    edgepack()
        .arg("bundle")
        .arg(&pkg)
        .arg("--target")
        .arg(hardware().join("raspberry-pi-4-4gb.toml"))
        .args(["--latency-budget", "5ms", "-o"])
        .arg(&dist)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("latency unknown"));
    assert_eq!(std::fs::read_dir(&dist).unwrap().count(), 0);
}

#[test]
fn targets_lists_hardware_and_bad_target_files_exit_2() {
    edgepack()
        .arg("targets")
        .arg(hardware())
        .assert()
        .success()
        .stdout(predicates::str::contains("jetson-orin-nano-8gb"))
        .stdout(predicates::str::contains("host"));
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("typo.toml");
    let text = std::fs::read_to_string(hardware().join("raspberry-pi-4-4gb.toml")).unwrap();
    std::fs::write(&bad, text.replace("model_ram_share", "model_ram_shar")).unwrap();
    let out = edgepack().arg("targets").arg(d.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_stderr_line(&out).contains("typo.toml"));
}

#[test]
fn build_pipeline_gives_verified_bundles_and_identical_bytes_twice() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dist = d.path().join("dist");
    let run = || {
        edgepack()
            .arg("build")
            .arg(cls_model())
            .arg("--targets")
            .arg(hardware().join("raspberry-pi-4-4gb.toml"))
            .arg("--targets")
            .arg(hardware().join("x86-industrial-pc.toml"))
            .args(["--variants", "int8", "--shape", "x=1x3x48x192", "-o"])
            .arg(&dist)
            .assert()
            .success();
        let mut out = vec![];
        for t in ["raspberry-pi-4-4gb", "x86-industrial-pc"] {
            out.push(
                std::fs::read(dist.join(format!("ch_ppocr_mobile_v2.0_cls_infer-{t}.zip")))
                    .unwrap(),
            );
        }
        out
    };
    let first = run();
    let second = run();
    assert_eq!(first, second, "two builds of the same inputs differ");
    for t in ["raspberry-pi-4-4gb", "x86-industrial-pc"] {
        edgepack()
            .arg("verify")
            .arg(dist.join(format!("ch_ppocr_mobile_v2.0_cls_infer-{t}.zip")))
            .assert()
            .success();
    }
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dist.join("ch_ppocr_mobile_v2.0_cls_infer-build.json")).unwrap(),
    )
    .unwrap();
    // The report is the typed `edgepack.build/1` its JSON Schema describes.
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/build.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let errors: Vec<String> = jsonschema::validator_for(&schema)
        .unwrap()
        .iter_errors(&report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(report["profiles"][1]["source"], "reused", "{report}");
    let variants: Vec<&str> = report["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variants, vec!["fp32", "int8"]);
    // A profile measured on the device replaces the scaled estimate for that target, and a
    // profile from another architecture is refused for it.
    let fp32_sha = report["variants"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let measured = dist
        .join("work")
        .join(format!("{}.profile.json", &fp32_sha[..16]));
    let pkg = dist.join("ch_ppocr_mobile_v2.0_cls_infer.edgepkg");
    edgepack()
        .arg("bundle")
        .arg(&pkg)
        .arg("--target")
        .arg(hardware().join("x86-industrial-pc.toml"))
        .arg("--device-profile")
        .arg(format!("x86-industrial-pc={}", measured.display()))
        .arg("-o")
        .arg(d.path().join("dp"))
        .assert()
        .success()
        .stdout(predicates::str::contains("measured on target"));
    let out = edgepack()
        .arg("bundle")
        .arg(&pkg)
        .arg("--target")
        .arg(hardware().join("raspberry-pi-4-4gb.toml"))
        .arg("--device-profile")
        .arg(&measured)
        .arg("-o")
        .arg(d.path().join("dp2"))
        .output()
        .unwrap();
    if cfg!(target_arch = "x86_64") {
        assert_eq!(out.status.code(), Some(2));
        assert!(one_stderr_line(&out).contains("not a profile of that device"));
    }
    // Every target's table entry says where its latency figure came from.
    for t in report["targets"].as_array().unwrap() {
        for e in t["evaluations"].as_array().unwrap() {
            // Built-in targets predict from their derived device profiles.
            let basis = e["basis"].as_str().unwrap();
            assert!(
                basis.starts_with("host p50 x") || basis.starts_with("cost model (derived"),
                "{e}"
            );
        }
    }
}

#[test]
fn self_test_inputs_travel_with_the_bundle_and_pass_on_arrival() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let pkg = package_with_sample(d.path(), &[2, 3, 48, 192]);
    edgepack()
        .arg("verify")
        .arg(&pkg)
        .arg("--self-test")
        .assert()
        .success()
        .stdout(predicates::str::contains("self-test case0 on fp32: ok"));
    let dist = d.path().join("dist");
    edgepack()
        .arg("bundle")
        .arg(&pkg)
        .arg("--target")
        .arg(hardware().join("jetson-nano-4gb.toml"))
        .arg("-o")
        .arg(&dist)
        .assert()
        .success();
    edgepack()
        .arg("verify")
        .arg(dist.join("ch_ppocr_mobile_v2.0_cls_infer-jetson-nano-4gb.zip"))
        .arg("--self-test")
        .assert()
        .success()
        .stdout(predicates::str::contains("self-test case0 on fp32: ok"));
}

#[test]
fn verify_extracts_only_verified_archives_and_limits_are_configurable() {
    let d = tempfile::tempdir().unwrap();
    let pkg = package(d.path(), "cls.edgepkg", &[]);
    let out = d.path().join("unpacked");
    edgepack()
        .arg("verify")
        .arg(&pkg)
        .arg("--extract")
        .arg(&out)
        .assert()
        .success();
    assert!(out.join("manifest.json").is_file());
    assert!(out.join("components/model/fp32/model.onnx").is_file());
    // A tampered archive is never extracted.
    let mut b = std::fs::read(&pkg).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    let t = d.path().join("t.edgepkg");
    std::fs::write(&t, &b).unwrap();
    let out2 = d.path().join("unpacked2");
    edgepack()
        .arg("verify")
        .arg(&t)
        .arg("--extract")
        .arg(&out2)
        .assert()
        .code(1);
    assert!(!out2.exists());
    // Limits come from the environment, with a message naming the variable.
    let o = edgepack()
        .env("EDGEPACK_MAX_ARCHIVE_ENTRIES", "1")
        .arg("verify")
        .arg(&pkg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(one_stderr_line(&o).contains("EDGEPACK_MAX_ARCHIVE_ENTRIES"));
    let o = edgepack()
        .env("EDGEPACK_MAX_EXTRACTED_BYTES", "lots")
        .arg("verify")
        .arg(&pkg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(one_stderr_line(&o).contains("EDGEPACK_MAX_EXTRACTED_BYTES"));
}

#[test]
fn context_and_labels_land_in_the_manifest_and_wrong_names_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let ctx = examples.join("ppocr-cls.context.toml");
    let labels = examples.join("ppocr-cls.labels.txt");
    let pkg = package(
        d.path(),
        "cls.edgepkg",
        &[
            "--context",
            ctx.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
        ],
    );
    let out = d.path().join("x");
    edgepack()
        .arg("verify")
        .arg(&pkg)
        .arg("--extract")
        .arg(&out)
        .assert()
        .success();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["preprocessing"]["channel_order"], "bgr");
    assert_eq!(m["preprocessing"]["resize"]["width"], 192);
    assert_eq!(m["postprocessing"]["labels"], "labels.txt");
    assert_eq!(m["execution"]["intra_op_threads"], 1);
    assert_eq!(m["contract"]["inputs"][0]["name"], "x");
    assert_eq!(
        std::fs::read_to_string(out.join("labels.txt")).unwrap(),
        "0\n180\n"
    );
    // A context naming an input the model does not have: one line, exit 2, no package.
    let bad = d.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&ctx)
            .unwrap()
            .replace("input = \"x\"", "input = \"image\""),
    )
    .unwrap();
    let o = edgepack()
        .arg("package")
        .arg(cls_model())
        .arg("-o")
        .arg(d.path().join("bad.edgepkg"))
        .arg("--context")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(one_stderr_line(&o).contains("'image' is not an input of the model"));
    assert!(!d.path().join("bad.edgepkg").exists());
}

/// The bundle-size figures are the written file's length, not the selection's estimate
/// (issue 17: the column was ~58 KiB larger than the zip): in the table's column, in the
/// line naming the file and in `--json`.
#[test]
fn bundle_size_figures_equal_the_written_file() {
    let d = tempfile::tempdir().unwrap();
    let pkg = package(d.path(), "cls.edgepkg", &[]);
    let dist = d.path().join("dist");
    let out = run_ok(
        edgepack()
            .arg("bundle")
            .arg(&pkg)
            .arg("--target")
            .arg(hardware().join("jetson-nano-4gb.toml"))
            .arg("-o")
            .arg(&dist),
    );
    let file = dist.join("ch_ppocr_mobile_v2.0_cls_infer-jetson-nano-4gb.zip");
    let len = std::fs::metadata(&file).unwrap().len();
    let shown = edgepack::units::format_bytes(len);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("* fp32"))
        .unwrap_or_else(|| panic!("no chosen row: {stdout}"));
    assert!(row.contains(&format!("  {shown}  ")), "{row} vs {shown}");
    assert!(!row.contains("<="), "{row}");
    assert!(stdout.contains(&format!("({shown})")), "{stdout}");
    let out = edgepack()
        .arg("bundle")
        .arg(&pkg)
        .arg("--target")
        .arg(hardware().join("jetson-nano-4gb.toml"))
        .arg("-o")
        .arg(d.path().join("dist2"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["size_bytes"], len);
    assert_eq!(v[0]["variants"][0]["bundle_bytes"], len);
    assert_eq!(v[0]["variants"][0]["bundle_bytes_is_upper_bound"], false);
}

/// `profile PACKAGE --batch 1,2` takes the other dims from the sample inputs the package
/// carries, as it does without `--batch` (issue 17: it demanded `--shape`).
#[test]
fn profile_of_a_package_sweeps_batches_with_shapes_from_its_samples() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let pkg = package_with_sample(d.path(), &[1, 3, 48, 160]);
    let plan = crate::common::quick_plan(d.path());
    let json = d.path().join("p.json");
    run_ok(
        profile_cmd(&pkg, &plan)
            .args(["--batch", "1,2", "--json-out"])
            .arg(&json),
    );
    let p: edgepack::profile::schema::Profile =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let shapes: Vec<Vec<i64>> = p
        .configs
        .iter()
        .map(|c| c.input_shapes["x"].clone())
        .collect();
    assert_eq!(shapes, vec![vec![1, 3, 48, 160], vec![2, 3, 48, 160]]);
}
