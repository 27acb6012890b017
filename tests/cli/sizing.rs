//! `edgepack probe` and `edgepack predict` end to end, with the tiny probe configuration
//! (a full probe takes a minute; these take seconds).

use std::path::Path;
use std::process::Stdio;

use edgepack::hardware::device::DeviceProfile;
use edgepack::model::proto::tensor_proto::DataLocation;
use edgepack::model::proto::StringStringEntryProto;
use edgepack::model::{builder, Model};

use crate::common::{edgepack, runtime_available};

/// `m` with every initializer's data moved to `file` in `dir` (external data, one file).
fn externalized(mut m: Model, dir: &Path, file: &str) -> Model {
    let mut data: Vec<u8> = vec![];
    for t in &mut m.graph_mut().initializer {
        let raw = t.raw_data.take().expect("builder weights are raw data");
        let kv = |k: &str, v: String| StringStringEntryProto {
            key: k.into(),
            value: v,
        };
        t.data_location = Some(DataLocation::External as i32);
        t.external_data = vec![
            kv("location", file.into()),
            kv("offset", data.len().to_string()),
            kv("length", raw.len().to_string()),
        ];
        data.extend_from_slice(&raw);
    }
    std::fs::write(dir.join(file), data).unwrap();
    m
}

/// `edgepack predict MODEL --device DEV --batch N --json`, which must succeed.
fn predict_json(model: &Path, dev: &Path, batch: u64) -> serde_json::Value {
    let r = edgepack()
        .args(["predict"])
        .arg(model)
        .arg("--device")
        .arg(dev)
        .args(["--batch", &batch.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    serde_json::from_slice(&r.stdout).unwrap()
}

fn tiny_probe(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("dev.json");
    let r = edgepack()
        .args([
            "probe",
            "--tiny",
            "--threads",
            "1",
            "--max-time",
            "3s",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    out
}

/// Protects the whole chain: probe writes a sealed profile that loads strictly, and predict
/// costs a model's kernels from it with an interval and a basis.
#[test]
fn tiny_probe_then_predict_gives_p50_and_memory_with_intervals() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dev = tiny_probe(d.path());
    let p = DeviceProfile::load(&dev).unwrap();
    assert_eq!(p.threads.len(), 1);
    assert!(p.memory.fixed_bytes > 1 << 20);
    // Every memory line, measured: weights inside If branches cost more than 1 byte per
    // byte (2.2 on x86-64 and on an emulated Cortex-A72).
    let m = &p.memory;
    assert!(m.conv_weight_factor.is_some_and(|f| f >= 1.0));
    assert!(m.subgraph_weight_factor.is_some_and(|f| f > 1.0), "{m:?}");
    assert!(
        m.folded_conv_weight_factor.is_some_and(|f| f >= 1.0),
        "{m:?}"
    );
    assert!(m.constant_folding_factor.is_some_and(|f| f >= 0.0), "{m:?}");
    assert!(m.baseline_bytes.is_some_and(|b| b > m.fixed_bytes / 2));
    assert!(p.threads[0]
        .kernels
        .iter()
        .any(|k| k.class.as_str() == "conv" && k.s_per_work > 0.0));

    let model = d.path().join("net.onnx");
    builder::symbolic_batch(1).save(&model).unwrap();
    let v = predict_json(&model, &dev, 4);
    let p50 = v["p50_s"].as_f64().unwrap();
    assert!(p50 > 0.0 && v["p50_low_s"].as_f64().unwrap() < p50);
    assert!(v["p50_high_s"].as_f64().unwrap() > p50);
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > p.memory.fixed_bytes);
    assert!(v["basis"].as_str().unwrap().contains("cost model"));
    // The tiny probe has no pooling line: the fallback is said.
    assert!(
        v["fallbacks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().starts_with("pool/fp32 not probed")),
        "{v}"
    );
    // Batch 4 costs more than batch 1.
    let v1 = predict_json(&model, &dev, 1);
    assert!(v1["p50_s"].as_f64().unwrap() < p50);
    // The running peak's parts add up to it, and the activations are ONNX Runtime's
    // arena as planned, which grows with the batch.
    let parts: u64 = v["memory_parts_bytes"]
        .as_object()
        .unwrap()
        .values()
        .map(|b| b.as_u64().unwrap())
        .sum();
    let peak = v["peak_rss_bytes"].as_u64().unwrap();
    assert!(parts.abs_diff(peak) <= 8, "{v}");
    let arena = |v: &serde_json::Value| {
        v["activation_plan"]["arena_touched_bytes"]
            .as_f64()
            .unwrap()
    };
    assert!(arena(&v) > arena(&v1) && arena(&v1) > 0.0, "{v}");
    // Its batch dim is a name and the rest numbers, so ONNX Runtime knows the shapes
    // before the run and reuses buffers: fewer buffers than tensors.
    let plan = &v["activation_plan"];
    let (buffers, tensors) = (
        plan["buffers"].as_u64().unwrap(),
        plan["tensors"].as_u64().unwrap(),
    );
    assert!(buffers > 0 && buffers < tensors, "{plan}");
    // The same model with its weights in a file beside it: ONNX Runtime's optimized copy
    // keeps the references to that file, and the prediction is the same.
    let ext_dir = d.path().join("ext");
    std::fs::create_dir(&ext_dir).unwrap();
    let ext = ext_dir.join("model.onnx");
    let m = externalized(builder::symbolic_batch(1), &ext_dir, "weights.bin");
    std::fs::write(&ext, m.to_bytes()).unwrap();
    let e = predict_json(&ext, &dev, 4);
    assert_eq!(e["peak_rss_bytes"], v["peak_rss_bytes"], "{e}");
    assert_eq!(e["p50_s"], v["p50_s"], "{e}");
    // A mistyped batch: the figures are what the lines say, and two warnings say what
    // they are worth (far beyond the probed sizes, above the device's memory).
    let r = edgepack()
        .args(["predict"])
        .arg(&model)
        .arg("--device")
        .arg(&dev)
        .args(["--batch", "1000000000"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let out = String::from_utf8_lossy(&r.stdout);
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 2, "{out}");
    assert!(warnings[0].contains("extrapolated along the line"), "{out}");
    assert!(warnings[1].contains("exceeds the device's memory"), "{out}");
}

/// An interrupted probe says so in one line, exits 2 and leaves no file.
#[test]
fn interrupted_probe_leaves_no_file() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("dev.json");
    let bin = assert_cmd::cargo::cargo_bin("edgepack");
    let child = std::process::Command::new(bin)
        .args(["probe", "--tiny", "--max-time", "20s", "-o"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it start measuring, then Ctrl-C it.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let r = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.contains("interrupted (SIGINT)"), "{err}");
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A target that carries a device profile gets cost-model predictions in `bundle`, with
/// an interval, and the fit uses its pessimistic end.
#[test]
fn bundle_predicts_from_a_targets_device_profile() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let hw = d.path().join("hw");
    std::fs::create_dir(&hw).unwrap();
    let dev = tiny_probe(&hw);
    // The built-in Pi carries a derived profile: this test's probe replaces it.
    let target: String = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware/raspberry-pi-4-4gb.toml"),
    )
    .unwrap()
    .lines()
    .filter(|l| !l.starts_with("device_profile"))
    .map(|l| format!("{l}\n"))
    .collect();
    std::fs::write(
        hw.join("pi.toml"),
        format!(
            "device_profile = \"{}\"\n{target}",
            dev.file_name().unwrap().to_str().unwrap()
        ),
    )
    .unwrap();
    let model = d.path().join("net.onnx");
    builder::conv_net(1).save(&model).unwrap();
    let pkg = d.path().join("net.edgepkg");
    let r = edgepack()
        .arg("package")
        .arg(&model)
        .arg("-o")
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = edgepack()
        .arg("bundle")
        .arg(&pkg)
        .arg("--target")
        .arg(hw.join("pi.toml"))
        .arg("-o")
        .arg(d.path().join("dist"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let e = &v[0]["variants"][0];
    assert!(
        e["basis"].as_str().unwrap().starts_with("cost model"),
        "{e}"
    );
    let p50 = e["latency_p50_s"].as_f64().unwrap();
    let iv = e["latency_p50_interval_s"].as_array().unwrap();
    assert!(iv[0].as_f64().unwrap() < p50 && p50 < iv[1].as_f64().unwrap());
    assert!(
        e["peak_memory_high_bytes"].as_u64().unwrap() > e["peak_memory_bytes"].as_u64().unwrap()
    );
}

/// A built-in target's bundle predictions come from its derived device profile: the basis
/// says "derived", and the interval is wider than the measured error's (5th-95th
/// percentile 0.56-3.19 of the predicted p50).
#[test]
fn builtin_target_bundles_predict_from_its_derived_profile() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("net.onnx");
    builder::conv_net(1).save(&model).unwrap();
    let pkg = d.path().join("net.edgepkg");
    let r = edgepack()
        .arg("package")
        .arg(&model)
        .arg("-o")
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = edgepack()
        .arg("bundle")
        .arg(&pkg)
        .arg("--target")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware/raspberry-pi-4-4gb.toml"))
        .arg("-o")
        .arg(d.path().join("dist"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let e = &v[0]["variants"][0];
    let basis = e["basis"].as_str().unwrap();
    assert!(
        basis.starts_with("cost model (derived (not measured) device profile builtin:"),
        "{e}"
    );
    let p50 = e["latency_p50_s"].as_f64().unwrap();
    let iv = e["latency_p50_interval_s"].as_array().unwrap();
    // Wider than a probed profile's interval (the measured error), on both sides.
    let (low, high) = edgepack::hardware::cost::LATENCY_ERROR_Q05_Q95;
    assert!(iv[1].as_f64().unwrap() / p50 > high * 1.5, "{e}");
    assert!(iv[0].as_f64().unwrap() / p50 < low / 1.5, "{e}");
}

/// Silero VAD keeps all of its compute inside `If` branches (one per sample rate): the
/// cost model must cost the slower branch's kernels, sized, not one dispatch for the `If`.
/// Uses the model cached by `benches/silero_vad.sh` or the Silero test; skipped without it.
#[test]
fn silero_vad_is_costed_inside_its_if_branches() {
    let model = edgepack::wheel::cache_dir().join("models/silero-vad/silero_vad.onnx");
    if !runtime_available() || !model.is_file() {
        eprintln!("skipped: no runtime or no cached {}", model.display());
        return;
    }
    let r = edgepack()
        .arg("predict")
        .arg(&model)
        .args([
            "--device",
            "builtin:raspberry-pi-4-4gb.device.json",
            "--shape",
            "input=1x512",
            "--shape",
            "state=2x1x128",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let p: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(p["profile_basis"], "derived");
    let notes: Vec<&str> = p["subgraphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("If If_0: the slower branch")),
        "{notes:?}"
    );
    // The encoder's convs inside the branch are sized and costed.
    let convs: Vec<&serde_json::Value> = p["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| {
            k["node"].as_str().unwrap().contains("encoder") && k["work"].as_f64() > Some(0.0)
        })
        .collect();
    assert!(convs.len() >= 4, "{:#?}", p["kernels"]);
    assert!(p["weights_bytes"].as_u64().unwrap() > 1 << 20);
}
