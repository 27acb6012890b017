//! A package's declared task (`[postprocessing] task` in the context file) through build,
//! bundle and gate (issue 16): the build's quantize jobs report the task's metric, the
//! package keeps each variant's figure, bundle selection judges variants by it, and
//! `gate --package` checks it by default.

use std::path::Path;

use edgepack::model::builder;
use edgepack::tensor::Tensor;

use crate::common::{edgepack, hand_config, hand_profile, runtime_available};

/// `n` samples `x[1, 16]` in .npy, seeded by index.
fn write_samples(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let v: Vec<f32> = (0..16)
            .map(|k| (((k * 7 + i * 13) % 17) as f32 / 8.5 - 1.0) * 2.0)
            .collect();
        let t = Tensor::from_f32(vec![1, 16], v).unwrap();
        std::fs::write(
            dir.join(format!("{i:03}.npy")),
            edgepack::tensor::npy::to_npy_bytes(&t).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn a_declared_task_judges_bundle_variants_and_gates_by_default() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("mlp.onnx");
    builder::mlp(&[16, 32, 32, 8], 3).save(&model).unwrap();
    let calib = d.path().join("calib");
    write_samples(&calib, 12);
    let ctx = d.path().join("ctx.toml");
    std::fs::write(
        &ctx,
        "[postprocessing]\noutput = \"y\"\ntask = \"mask@0.0\"\n",
    )
    .unwrap();
    let plan = crate::common::quick_plan(d.path());
    let dist = d.path().join("dist");
    let out = edgepack()
        .arg("build")
        .arg(&model)
        .args([
            "--target",
            "host",
            "--variants",
            "int8,fp16",
            "-q",
            "--plan",
        ])
        .arg(&plan)
        .arg("--calibration")
        .arg(&calib)
        .arg("--context")
        .arg(&ctx)
        .arg("-o")
        .arg(&dist)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // -q: no step lines.
    assert!(!stderr.contains("[1/6]"), "{stderr}");
    // The package records each variant's mask IoU: the build computed it for the task.
    let x = d.path().join("x");
    edgepack()
        .arg("verify")
        .arg(dist.join("mlp.edgepkg"))
        .arg("--extract")
        .arg(&x)
        .assert()
        .success();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(x.join("manifest.json")).unwrap()).unwrap();
    for v in m["components"][0]["variants"].as_array().unwrap() {
        if v["name"] != "fp32" {
            let iou = &v["transformations"][0]["params"]["task_figures"]["mask_iou"];
            assert!(iou.as_f64().is_some_and(|x| x > 0.9), "{}: {v}", v["name"]);
        }
    }

    // The same variants with their reports' mask IoU set by hand (int8 0.95, fp16 0.99),
    // so the verdicts below do not hang on how a tiny model rounds.
    let work = dist.join("work");
    let mut args: Vec<std::ffi::OsString> = vec![];
    for (name, iou) in [("int8", 0.95), ("fp16", 0.99)] {
        let path = work.join(format!("mlp.{name}.quantize.json"));
        let mut r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for o in r["outputs"].as_array_mut().unwrap() {
            o["mask"]["mean_iou"] = serde_json::json!(iou);
        }
        let edited = d.path().join(format!("{name}.json"));
        std::fs::write(&edited, serde_json::to_vec(&r).unwrap()).unwrap();
        let onnx = work.join(format!("mlp.{name}.onnx"));
        args.extend([
            "--variant".into(),
            format!("{name}={}", onnx.display()).into(),
            "--variant-report".into(),
            format!("{name}={}", edited.display()).into(),
        ]);
    }
    let pkg = d.path().join("mlp.edgepkg");
    edgepack()
        .arg("package")
        .arg(&model)
        .arg("-o")
        .arg(&pkg)
        .arg("--context")
        .arg(&ctx)
        .args(&args)
        .assert()
        .success();
    // Bundle selection: the smallest variant (int8) is over the task's limit, so the
    // size preference gets fp16, and the reason names the task and the figure.
    let out = edgepack()
        .arg("bundle")
        .arg(&pkg)
        .args(["--target", "host", "--prefer", "size", "--json", "-o"])
        .arg(d.path().join("bundles"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sel: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sel[0]["chosen"], "fp16", "{sel}");
    let int8 = sel[0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["variant"] == "int8")
        .unwrap();
    assert_eq!(int8["fits"], false);
    assert!(
        int8["reasons"][0]
            .as_str()
            .unwrap()
            .contains("declared task mask@0: mask IoU 0.9500 beyond the limit mask IoU 0.9800"),
        "{int8}"
    );

    // The gate on that package checks mask IoU by default, with the figure the package
    // records for the profiled model's variant.
    let manifest = edgepack::package::open(&pkg, None).unwrap().manifest;
    let sha = |name: &str| {
        manifest.components[0]
            .variants
            .iter()
            .find(|v| v.name == name)
            .unwrap()
            .sha256
            .clone()
    };
    for (name, code) in [("int8", 1), ("fp16", 0)] {
        let p = d.path().join(format!("{name}.profile.json"));
        std::fs::write(&p, profile_json(&sha(name))).unwrap();
        let out = edgepack()
            .arg("gate")
            .arg("--current")
            .arg(&p)
            .arg("--package")
            .arg(&pkg)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert!(
            stderr.contains("declares task mask@0: checking mask_iou at least 98.0%"),
            "{stderr}"
        );
    }
}

/// A minimal profile (one configuration) of the model whose file has `sha256`.
fn profile_json(sha256: &str) -> String {
    let samples: Vec<f64> = (0..20).map(|i| 0.001 + i as f64 * 1e-6).collect();
    let p = hand_profile("mlp.onnx", sha256, 5000, vec![hand_config(1, samples, 1)]);
    serde_json::to_string(&p).unwrap()
}
