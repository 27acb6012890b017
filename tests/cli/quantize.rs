//! `edgepack quantize` end to end on the real PP-OCR text-direction classifier.
//!
//! Needs the cached PP-OCR models (fetched from their PyPI wheel once) and an ONNX Runtime
//! library (ORT_DYLIB_PATH or `edgepack runtime install`). Without the runtime the tests
//! say so on stderr and pass vacuously, through the one check every test uses
//! ([`crate::common::runtime_available`]); with EDGEPACK_REQUIRE_ORT=1 they fail instead.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;

use crate::common::runtime_available as ort_available;

/// The PP-OCR classifier, when ONNX Runtime is there to run it.
fn cls_model() -> Option<PathBuf> {
    ort_available().then(crate::common::cls_model)
}

/// Text-like calibration images: dark strokes of varying width on a light background,
/// deterministic per index. What it isolates: realistic value ranges (not noise) for the
/// activation calibration of a text classifier.
fn write_images(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(192, 48, |x, y| {
            let stroke = (x / (3 + (i as u32 % 4))).is_multiple_of(3)
                && (10..38).contains(&y)
                && x < 150 + i as u32;
            if stroke {
                image::Rgb([30, 30, 40])
            } else {
                image::Rgb([230, 225, 215])
            }
        });
        img.save(dir.join(format!("{i:03}.png"))).unwrap();
    }
}

/// A temporary folder with `calib/` and held-out `eval/` text-line images.
fn calib_and_eval(calib: usize, eval: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_images(&tmp.path().join("calib"), calib);
    write_images(&tmp.path().join("eval"), eval);
    tmp
}

fn edgepack() -> Command {
    Command::cargo_bin("edgepack").unwrap()
}

/// `edgepack quantize MODEL -o OUT` on `DIR/calib` and held-out `DIR/eval` with the PP-OCR
/// line normalisation, the report in `DIR/report.json`, plus `extra` flags.
fn quantize_on(model: &Path, dir: &Path, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    edgepack()
        .arg("quantize")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(extra)
        .arg("--calibration")
        .arg(dir.join("calib"))
        .arg("--eval")
        .arg(dir.join("eval"))
        .args(["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"])
        .arg("--report")
        .arg(dir.join("report.json"))
        .assert()
}

fn read_report(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn quantizes_ppocr_classifier_to_a_loadable_accurate_smaller_int8_model() {
    let Some(model) = cls_model() else { return };
    let tmp = calib_and_eval(8, 3);
    let out = tmp.path().join("cls.int8.onnx");
    quantize_on(&model, tmp.path(), &out, &["--no-latency"]).success();
    let r = read_report(tmp.path());
    let sqnr = r["outputs"][0]["sqnr_db"].as_f64().unwrap();
    assert!(sqnr > 20.0, "SQNR {sqnr} dB");
    assert!(r["size"]["ratio"].as_f64().unwrap() < 0.7);
    // The written model really is int8 QDQ and loads again through the library.
    let m = edgepack::model::Model::load(&out).unwrap();
    assert!(edgepack::quantize::already_quantized(&m).is_some());
}

#[test]
fn refuses_an_already_quantized_model() {
    let Some(model) = cls_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let once = tmp.path().join("once.onnx");
    edgepack()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(&once)
        .args(["--shape", "x=1x3x48x192", "--no-latency"])
        .assert()
        .success();
    let twice = tmp.path().join("twice.onnx");
    edgepack()
        .arg("quantize")
        .arg(&once)
        .arg("-o")
        .arg(&twice)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("already quantized"));
    assert!(!twice.exists());
}

#[test]
fn empty_calibration_folder_is_an_input_error() {
    let Some(model) = cls_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let out = tmp.path().join("q.onnx");
    edgepack()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .arg("--calibration")
        .arg(tmp.path().join("empty"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no samples in this folder"));
    assert!(!out.exists());
}

#[test]
fn calibration_tensor_of_wrong_shape_names_file_and_input() {
    let Some(model) = cls_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("calib");
    std::fs::create_dir(&dir).unwrap();
    // A float32 .npy of shape (1, 3, 32, 32): the classifier wants height 48? It declares
    // only channels (3) as fixed, so use 4 channels to break it.
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4, 8, 8), }";
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, 4 * 4 * 8 * 8));
    std::fs::write(dir.join("bad.npy"), bytes).unwrap();
    let out = tmp.path().join("q.onnx");
    edgepack()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .arg("--calibration")
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bad.npy").and(predicates::str::contains("input 'x'")));
    assert!(!out.exists());
}

#[test]
fn unwritable_output_fails_before_any_work() {
    let Some(model) = cls_model() else { return };
    edgepack()
        .arg("quantize")
        .arg(&model)
        .args(["-o", "/nonexistent-edgepack-dir/q.onnx"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("does not exist"));
}

#[test]
fn compare_of_a_model_with_itself_agrees_fully() {
    let Some(model) = cls_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    write_images(&tmp.path().join("in"), 2);
    let out = edgepack()
        .arg("compare")
        .arg(&model)
        .arg(&model)
        .arg("--inputs")
        .arg(tmp.path().join("in"))
        .args(["--json", "--no-latency"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["samples"], 2);
    assert_eq!(v["outputs"][0]["max_abs_error"].as_f64(), Some(0.0));
    assert_eq!(v["outputs"][0]["top1_agreement"].as_f64(), Some(1.0));
}

#[test]
fn debug_layers_reports_an_error_per_quantized_tensor() {
    let Some(model) = cls_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("r.json");
    edgepack()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(tmp.path().join("q.onnx"))
        .args(["--shape", "x=1x3x48x192", "--no-latency", "--debug-layers"])
        .arg("--report")
        .arg(&report)
        .assert()
        .success()
        .stderr(predicates::str::contains("RANDOM inputs"));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let layers = r["layers"].as_array().unwrap();
    assert!(layers.len() > 20, "{}", layers.len());
    assert!(layers.iter().all(|l| l["tensor"].is_string()));
    assert_eq!(r["random_inputs"], true);
}

#[test]
fn int8_dynamic_rewrites_matmuls_without_calibration_data() {
    let Some(model) = cls_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("r.json");
    let out = tmp.path().join("q.onnx");
    edgepack()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args([
            "--mode",
            "int8-dynamic",
            "--shape",
            "x=1x3x48x192",
            "--no-latency",
        ])
        .arg("--report")
        .arg(&report)
        .assert()
        .success();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(r["variant"].as_str().unwrap().contains("dynamic"));
    let m = edgepack::model::Model::load(&out).unwrap();
    assert!(m.graph().node.iter().any(|n| n.op_type == "MatMulInteger"));
}

/// `y = MatMul(LSTM(x).Y, P)`: a forward LSTM (input 8, hidden 16, sequence 10, batch 1)
/// feeding a projection, built in Rust. What it isolates: both dynamic rewrites in one
/// graph, run end to end through ONNX Runtime.
fn lstm_projection_model(path: &Path) {
    use edgepack::model::builder::{model_from_graph, node, value_info};
    use edgepack::model::graph::Dim;
    use edgepack::model::{attr, tensor_data, DataType, GraphProto};
    let vals = |n: usize, seed: usize, amp: f32| -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0) * amp)
            .collect()
    };
    let (i, h) = (8, 16);
    let graph = GraphProto {
        node: vec![
            node(
                "lstm",
                "LSTM",
                &["x", "W", "R", "B"],
                &["y", "y_h"],
                vec![attr::int("hidden_size", h)],
            ),
            node("proj", "MatMul", &["y", "P"], &["out"], vec![]),
        ],
        initializer: vec![
            tensor_data::from_f32("W", &[1, 4 * h, i], &vals((4 * h * i) as usize, 1, 0.5))
                .unwrap(),
            tensor_data::from_f32("R", &[1, 4 * h, h], &vals((4 * h * h) as usize, 2, 0.4))
                .unwrap(),
            tensor_data::from_f32("B", &[1, 8 * h], &vals((8 * h) as usize, 3, 0.2)).unwrap(),
            tensor_data::from_f32("P", &[h, 4], &vals((h * 4) as usize, 4, 0.7)).unwrap(),
        ],
        input: vec![value_info(
            "x",
            DataType::Float,
            &[10, 1, i].map(Dim::Fixed),
        )],
        output: vec![
            value_info("out", DataType::Float, &[10, 1, 1, 4].map(Dim::Fixed)),
            value_info("y_h", DataType::Float, &[1, 1, h].map(Dim::Fixed)),
        ],
        ..Default::default()
    };
    std::fs::write(path, model_from_graph(graph, 17).to_bytes()).unwrap();
}

#[test]
fn int8_dynamic_rewrites_an_lstm_and_a_matmul_and_counts_both() {
    if !ort_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("lstm.onnx");
    lstm_projection_model(&model);
    let (out, report) = (tmp.path().join("q.onnx"), tmp.path().join("r.json"));
    edgepack()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args(["--mode", "int8-dynamic", "--no-latency", "--report"])
        .arg(&report)
        .assert()
        .success()
        .stdout(predicates::str::contains("int8 dynamic: 1 MatMul, 1 LSTM"));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["variant"], "int8 dynamic: 1 MatMul, 1 LSTM");
    // int8 weights with per-call activation scales: tens of dB, not the ~0 dB of a
    // misread weight layout.
    for o in r["outputs"].as_array().unwrap() {
        assert!(o["sqnr_db"].as_f64().unwrap() > 25.0, "{o}");
    }
    let m = edgepack::model::Model::load(&out).unwrap();
    let ops: Vec<&str> = m.graph().node.iter().map(|n| n.op_type.as_str()).collect();
    assert!(
        ops.contains(&"DynamicQuantizeLSTM") && ops.contains(&"MatMulInteger"),
        "{ops:?}"
    );
    assert!(
        !ops.contains(&"LSTM") && !ops.contains(&"MatMul"),
        "{ops:?}"
    );
}

#[test]
fn fp16_mode_halves_the_classifier_and_keeps_its_outputs() {
    let Some(model) = cls_model() else { return };
    let tmp = calib_and_eval(4, 3);
    let out = tmp.path().join("cls.fp16.onnx");
    quantize_on(
        &model,
        tmp.path(),
        &out,
        &["--mode", "fp16", "--no-latency"],
    )
    .success();
    // The report's accuracy comes from running the fp16 model in ONNX Runtime, so it loads.
    let r = read_report(tmp.path());
    let sqnr = r["outputs"][0]["sqnr_db"].as_f64().unwrap();
    assert!(sqnr >= 40.0, "SQNR {sqnr} dB");
    let ratio = r["size_ratio"].as_f64().unwrap();
    assert!(ratio < 0.6, "size ratio {ratio}");
    assert!(r["variant"].as_str().unwrap().starts_with("fp16: "));
    let m = edgepack::model::Model::load(&out).unwrap();
    let g = m.graph();
    // float32 in and out, float16 weights, casts only at the boundary.
    let float =
        |vi: &edgepack::model::ValueInfoProto| edgepack::model::graph::elem_type(vi) == Some(1);
    assert!(g.input.iter().all(float) && g.output.iter().all(float));
    assert!(!g.initializer.iter().any(|t| t.data_type == Some(1)));
    assert!(
        g.initializer
            .iter()
            .filter(|t| t.data_type == Some(10))
            .count()
            > 50
    );
    // Converting the fp16 model again is refused, nothing written.
    edgepack()
        .arg("quantize")
        .arg(&out)
        .arg("-o")
        .arg(tmp.path().join("again.onnx"))
        .args(["--mode", "fp16", "--no-latency"])
        .arg("--calibration")
        .arg(tmp.path().join("calib"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("already holds float16"));
    assert!(!tmp.path().join("again.onnx").exists());
}

#[test]
fn int8_weight_mode_quantizes_weights_with_corrected_biases() {
    // This mode used to panic in calibration (it observes no activation for Q/DQ).
    let Some(model) = cls_model() else { return };
    let tmp = calib_and_eval(4, 2);
    let out = tmp.path().join("cls.w8.onnx");
    quantize_on(
        &model,
        tmp.path(),
        &out,
        &["--mode", "int8-weight", "--no-latency"],
    )
    .success();
    let r = read_report(tmp.path());
    let sqnr = r["outputs"][0]["sqnr_db"].as_f64().unwrap();
    assert!(sqnr > 20.0, "SQNR {sqnr} dB");
    let m = edgepack::model::Model::load(&out).unwrap();
    let g = m.graph();
    // Int8 weights behind DequantizeLinear, and conv biases replaced by corrected floats.
    assert!(g.initializer.iter().any(|t| t.data_type == Some(3)));
    assert!(g.initializer.iter().any(|t| t.name.ends_with("_biascorr")));
    assert!(!g.node.iter().any(|n| n.op_type == "QuantizeLinear"));
    // It is meant to run with the weights dequantized once at load.
    assert_eq!(r["session_config"]["session.disable_quant_qdq"], "1");
    // `compare` run with that entry for B measures what the report measured.
    let cmp = edgepack()
        .arg("compare")
        .arg(&model)
        .arg(&out)
        .arg("--inputs")
        .arg(tmp.path().join("eval"))
        .args(["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--json"])
        .args(["--latency-budget-s", "0.5"])
        .args(["--b-session-config", "session.disable_quant_qdq=1"])
        .assert()
        .success();
    let c: serde_json::Value = serde_json::from_slice(&cmp.get_output().stdout).unwrap();
    let again = c["outputs"][0]["sqnr_db"].as_f64().unwrap();
    assert!(
        (again - sqnr).abs() < 1e-6,
        "compare {again} dB, report {sqnr} dB"
    );
    assert!(c["latency"]["ratio"].as_f64().is_some());
}

#[test]
fn auto_tries_every_applicable_mode_and_says_why_the_winner_won() {
    let Some(model) = cls_model() else { return };
    let tmp = calib_and_eval(6, 2);
    let out = tmp.path().join("cls.auto.onnx");
    let auto = ["--mode", "auto", "--latency-budget-s", "0.5"];
    let auto = [&auto[..], &["--accuracy-target", "sqnr=20dB"]].concat();
    quantize_on(&model, tmp.path(), &out, &auto)
        .success()
        .stdout(predicates::str::contains("auto chose:"));
    let r = read_report(tmp.path());
    assert_eq!(r["mode"], "auto");
    let tried: Vec<&str> = r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["variant"].as_str().unwrap())
        .collect();
    for mode in [
        "int8:",
        "int8 (ORT-optimized graph):",
        "int8-weight:",
        "int8 dynamic:",
        "fp16:",
    ] {
        assert!(
            tried.iter().any(|v| v.starts_with(mode)),
            "{mode} not in {tried:?}"
        );
    }
    // Every candidate was timed against fp32 (the accuracy guard's intermediate node sets,
    // named "int8, N most sensitive kept float" and, giving expensive ones back to int8,
    // "int8, N kept float (NODE back to int8 ...)", are search steps judged on accuracy;
    // the candidate each mode hands to `auto` is timed) and the winner meets the target.
    let attempts = r["attempts"].as_array().unwrap();
    for mode in [
        "int8",
        "int8 (ORT-optimized graph)",
        "int8-weight",
        "int8 dynamic",
        "fp16",
    ] {
        assert!(
            attempts.iter().any(|a| {
                let v = a["variant"].as_str().unwrap();
                (v.starts_with(&format!("{mode}:")) || v.starts_with(&format!("{mode},")))
                    && a["latency_ratio"].as_f64().is_some()
            }),
            "no timed {mode} candidate in {attempts:#?}"
        );
    }
    assert_eq!(r["meets_target"], true);
    assert!(r["choice"].as_str().unwrap().contains("meets the target"));
    // The file written is the winner and loads.
    let m = edgepack::model::Model::load(&out).unwrap();
    assert!(!m.graph().node.is_empty());
}

fn rec_model() -> Option<PathBuf> {
    if !ort_available() {
        return None;
    }
    Some(
        edgepack::zoo::ZooModel::PpOcrRec
            .path()
            .expect("the PP-OCR recognizer from its PyPI wheel"),
    )
}

#[test]
fn int4_weight_rewrites_the_recognizer_matmuls_to_matmulnbits() {
    let Some(model) = rec_model() else { return };
    let tmp = calib_and_eval(1, 3);
    let out = tmp.path().join("rec.int4.onnx");
    quantize_on(
        &model,
        tmp.path(),
        &out,
        &[
            "--mode",
            "int4-weight",
            "--block-size",
            "32",
            "--no-latency",
        ],
    )
    .success();
    let r = read_report(tmp.path());
    // 9 MatMuls read a constant weight (the 6625-class head among them); the two
    // attention MatMuls multiply activations and stay float.
    assert_eq!(r["variant"], "int4-weight: 9 MatMul, block 32, asymmetric");
    let sqnr = r["outputs"][0]["sqnr_db"].as_f64().unwrap();
    assert!(sqnr > 15.0, "SQNR {sqnr} dB");
    let ratio = r["size"]["ratio"].as_f64().unwrap();
    assert!(ratio < 0.72, "size ratio {ratio}");
    // The written file loads again and holds MatMulNBits under the com.microsoft opset
    // (the report's accuracy already came from ONNX Runtime running it).
    let m = edgepack::model::Model::load(&out).unwrap();
    let nbits = m
        .graph()
        .node
        .iter()
        .filter(|n| n.op_type == "MatMulNBits" && n.domain == "com.microsoft")
        .count();
    assert_eq!(nbits, 9);
    assert!(m
        .proto
        .opset_import
        .iter()
        .any(|o| o.domain == "com.microsoft"));
}

#[test]
fn int4_weight_refuses_a_conv_only_model_with_exit_2() {
    let Some(model) = cls_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    edgepack()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(tmp.path().join("q.onnx"))
        .args([
            "--mode",
            "int4-weight",
            "--no-latency",
            "--shape",
            "x=1x3x48x192",
        ])
        .assert()
        .code(2)
        .stderr(
            predicates::str::contains("nothing to quantize to int4")
                .and(predicates::str::contains("try --mode int8")),
        );
    assert!(!tmp.path().join("q.onnx").exists());
}

#[test]
fn an_unreachable_accuracy_target_keeps_the_most_accurate_set_and_exits_1() {
    let Some(model) = cls_model() else { return };
    let tmp = calib_and_eval(4, 2);
    let out = tmp.path().join("cls.int8.onnx");
    let flags = ["--no-latency", "--accuracy-target", "sqnr=200dB"];
    quantize_on(&model, tmp.path(), &out, &flags)
        .code(1)
        .stderr(predicates::str::contains("accuracy target was NOT met"));
    // The model is written anyway, and it is the most accurate of the sets tried.
    assert!(out.is_file());
    let r = read_report(tmp.path());
    assert_eq!(r["meets_target"], false);
    let attempts = r["attempts"].as_array().unwrap();
    assert!(attempts.len() > 1, "the guard tried float fallbacks");
    let best = attempts
        .iter()
        .filter_map(|a| a["min_sqnr_db"].as_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    let chosen = r["outputs"][0]["sqnr_db"].as_f64().unwrap();
    assert!(
        (chosen - best).abs() < 1e-9,
        "chosen {chosen} dB, best tried {best} dB"
    );
    let warned = r["warnings"].as_array().unwrap().iter();
    assert!(warned
        .filter_map(|w| w.as_str())
        .any(|w| w.contains("kept the most accurate set tried")));
    // A set that cannot reach 200 dB after its first sample is not judged on the second,
    // and its row shows no figures over that one sample; the largest set, the fallback,
    // is judged in full.
    let stopped: Vec<&serde_json::Value> = attempts
        .iter()
        .filter(|a| a["stopped_after_samples"].as_u64().is_some())
        .collect();
    assert!(!stopped.is_empty(), "{attempts:#?}");
    for a in &stopped {
        assert_eq!(a["stopped_after_samples"], 1);
        assert!(a["min_sqnr_db"].is_null() && a["meets_target"] == false);
        assert!(a["variant"]
            .as_str()
            .unwrap()
            .contains("stopped after 1 of 2 samples"));
    }
    assert!(attempts.last().unwrap()["min_sqnr_db"].is_f64());
}

#[test]
fn a_met_accuracy_target_gives_expensive_float_convs_back_to_int8_only_where_it_still_holds() {
    let Some(model) = cls_model() else { return };
    let tmp = calib_and_eval(6, 3);
    let out = tmp.path().join("cls.int8.onnx");
    // A target well above what plain int8 reaches (8 dB), so the guard keeps convs float,
    // among them ones with at least 1% of the MACs (on these images: `Conv@13`, 1.4%).
    quantize_on(&model, tmp.path(), &out, &["--no-latency"]).success();
    let plain = read_report(tmp.path())["outputs"][0]["sqnr_db"]
        .as_f64()
        .unwrap();
    let target = format!("sqnr>={:.2}dB", plain + 8.0);
    let flags = ["--no-latency", "--accuracy-target", target.as_str()];
    quantize_on(&model, tmp.path(), &out, &flags).success();
    let r = read_report(tmp.path());
    assert_eq!(r["meets_target"], true, "{target}: {:#?}", r["attempts"]);
    let attempts = r["attempts"].as_array().unwrap();
    let variants: Vec<&str> = attempts
        .iter()
        .map(|a| a["variant"].as_str().unwrap())
        .collect();
    // The forward search (sets of the 1, 2, 4, ... most sensitive, then bisection) ran
    // until it had the fewest that met the target, then offered float convs back to int8,
    // each judged on the target: the result is the last set that met it, and it meets it
    // on the report's own figures.
    let forward: Vec<usize> = (0..attempts.len())
        .filter(|&i| variants[i].contains("most sensitive kept float"))
        .collect();
    let counts: Vec<usize> = forward
        .iter()
        .map(|&i| variants[i].split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    // Galloping: 1, 2, 4, ... until one meets (or the cap), every count tried once.
    assert_eq!(counts[..2.min(counts.len())], [1, 2][..2.min(counts.len())]);
    let mut unique = counts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), counts.len(), "{variants:#?}");
    let met: Vec<usize> = forward
        .iter()
        .zip(&counts)
        .filter(|(&i, _)| attempts[i]["meets_target"] == true)
        .map(|(_, &k)| k)
        .collect();
    let fewest = *met.iter().min().expect("the guard met the target");
    // Bisection stops when the count just below the fewest that met was judged and
    // missed (or is 0: everything int8, which missed).
    assert!(
        fewest == 1 || (counts.contains(&(fewest - 1)) && !met.contains(&(fewest - 1))),
        "the count below {fewest} was not judged a miss: {counts:?}"
    );
    let last_forward = *forward.last().unwrap();
    let given: Vec<usize> = (last_forward + 1..attempts.len()).collect();
    assert!(
        given.iter().all(|&i| variants[i].contains("back to int8")),
        "{variants:#?}"
    );
    let chosen = r["variant"].as_str().unwrap();
    let last_met = attempts
        .iter()
        .rposition(|a| a["meets_target"] == true)
        .unwrap();
    assert_eq!(chosen, variants[last_met]);
    let sqnr = r["outputs"][0]["sqnr_db"].as_f64().unwrap();
    assert!(sqnr >= plain + 8.0 - 0.01, "{sqnr} dB against {target}");
    assert!(!given.is_empty(), "no give-back step: {variants:#?}");
}
