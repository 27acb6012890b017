//! Package tests on a hand-built model (y = Relu(x), x: float32 [N, 3]).

use super::*;
use crate::model::proto::*;
use crate::model::DataType;
use selftest::tests::npy_f32;

/// A tiny model: y = Relu(x), x float32 [N, 3] with a symbolic batch dim.
pub fn tiny_model_bytes() -> Vec<u8> {
    use prost::Message;
    let vi = |name: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: vec![
                        tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimParam("N".into())),
                            denotation: String::new(),
                        },
                        tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(3)),
                            denotation: String::new(),
                        },
                    ],
                }),
            })),
            denotation: String::new(),
        }),
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        producer_name: "edgepack-test".into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: "tiny".into(),
            node: vec![NodeProto {
                op_type: "Relu".into(),
                name: "relu".into(),
                input: vec!["x".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Write the tiny model (and sample inputs with expected outputs) into `dir`.
pub fn tiny_fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("tiny.onnx");
    std::fs::write(&model, tiny_model_bytes()).unwrap();
    let samples = dir.join("samples");
    std::fs::create_dir_all(samples.join("expected")).unwrap();
    let x = [-1.0f32, 0.5, 2.0, 3.0, -4.0, 0.0];
    std::fs::write(samples.join("x.npy"), npy_f32(&[2, 3], &x)).unwrap();
    let y: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
    std::fs::write(samples.join("expected/y.npy"), npy_f32(&[2, 3], &y)).unwrap();
    (model, samples)
}

fn opts(samples: &Path) -> PackageOptions {
    PackageOptions {
        sample_inputs: Some(samples.to_path_buf()),
        lineage: vec![
            LineageSpec::parse("code=https://github.com/example/train#0123abcd").unwrap(),
            LineageSpec::parse(&format!(
                "dataset:val=https://example.org/val.tar#{}",
                "b".repeat(64)
            ))
            .unwrap(),
        ],
        created_unix_s: Some(1_700_000_000),
        ..Default::default()
    }
}

#[test]
fn package_lists_every_file_and_verifies() {
    let d = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_fixture(d.path());
    let (m, entries) = build(&model, &opts(&samples)).unwrap();
    assert_eq!(m.contract.inputs[0].name, "x");
    assert_eq!(m.self_test.len(), 1);
    assert_eq!(
        m.self_test[0].produced_by,
        "provided with the sample inputs"
    );
    let names: Vec<_> = entries.keys().cloned().collect();
    assert_eq!(
        names,
        vec![
            "components/model/fp32/model.onnx",
            "manifest.json",
            "self-test/case0/expected/y.npy",
            "self-test/case0/inputs/x.npy",
        ]
    );
    assert_eq!(m.files.len(), 3);
    let bytes = archive::write_zip(&entries).unwrap();
    let (r, _) = verify_bytes(&bytes, None, &archive::Limits::default()).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.files_checked, 3);
}

#[test]
fn same_inputs_give_byte_identical_packages() {
    let d = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_fixture(d.path());
    let a = d.path().join("a.edgepkg");
    let b = d.path().join("b.edgepkg");
    write(&model, &opts(&samples), &a).unwrap();
    write(&model, &opts(&samples), &b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn produced_manifest_validates_against_json_schema() {
    let d = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_fixture(d.path());
    let labels = d.path().join("labels.txt");
    std::fs::write(&labels, "neg\npos\n").unwrap();
    let mut o = opts(&samples);
    o.labels = Some(labels);
    o.context = Some(ContextFile {
        preprocessing: Some(manifest::Preprocessing {
            input: "x".into(),
            resize: None,
            layout: "nchw".into(),
            channel_order: "bgr".into(),
            scale: 1.0 / 255.0,
            mean: vec![0.5; 3],
            std: vec![0.5; 3],
        }),
        ..Default::default()
    });
    let (m, _) = build(&model, &o).unwrap();
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/manifest.schema.json");
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let instance: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // And the schema is not vacuous: an unknown key and a bad hash are caught.
    let mut bad = instance.clone();
    bad["surprise"] = serde_json::json!(1);
    bad["files"][0]["sha256"] = serde_json::json!("xyz");
    assert!(validator.iter_errors(&bad).count() >= 2);
    let mut slip = instance;
    slip["files"][0]["path"] = serde_json::json!("../escape");
    assert!(!validator.is_valid(&slip));
}

fn tamper(
    entries: &BTreeMap<String, Vec<u8>>,
    f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>),
) -> Vec<u8> {
    let mut e = entries.clone();
    f(&mut e);
    archive::write_zip(&e).unwrap()
}

#[test]
fn verification_rejects_missing_extra_and_changed_files() {
    let d = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_fixture(d.path());
    let (_, entries) = build(&model, &opts(&samples)).unwrap();
    let l = archive::Limits::default();
    let check = |bytes: Vec<u8>, want: &str| {
        let (r, _) = verify_bytes(&bytes, None, &l).unwrap();
        assert!(
            r.problems.iter().any(|p| p.contains(want)),
            "{want}: {:?}",
            r.problems
        );
    };
    check(
        tamper(&entries, |e| {
            e.remove("self-test/case0/inputs/x.npy");
        }),
        "listed but missing",
    );
    check(
        tamper(&entries, |e| {
            e.insert("extra.bin".into(), vec![1]);
        }),
        "not in the manifest",
    );
    check(
        tamper(&entries, |e| {
            e.get_mut("components/model/fp32/model.onnx").unwrap()[5] ^= 1;
        }),
        "has changed",
    );
    check(
        tamper(&entries, |e| {
            e.remove(MANIFEST_FILE);
        }),
        "missing",
    );
}

#[test]
fn signed_package_rejects_changed_manifest_and_wrong_key() {
    let d = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_fixture(d.path());
    let key = d.path().join("k");
    let (pubp, _) = sign::keygen(&key).unwrap();
    let other = d.path().join("o");
    let (other_pub, _) = sign::keygen(&other).unwrap();
    let mut o = opts(&samples);
    o.sign = Some(sign::load_signing_key(&key).unwrap());
    let (_, entries) = build(&model, &o).unwrap();
    let l = archive::Limits::default();
    let pk = sign::load_verifying_key(&pubp).unwrap();
    let good = archive::write_zip(&entries).unwrap();
    let (r, _) = verify_bytes(&good, Some(&pk), &l).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert!(r.signer.is_some());
    // A re-written manifest (e.g. to hide a swapped model) breaks the signature.
    let edited = tamper(&entries, |e| {
        let m = e.get_mut(MANIFEST_FILE).unwrap();
        let s = String::from_utf8(m.clone())
            .unwrap()
            .replace("tiny", "tinY");
        *m = s.into_bytes();
    });
    let (r, _) = verify_bytes(&edited, Some(&pk), &l).unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("signature does not match")),
        "{:?}",
        r.problems
    );
    let ok = sign::load_verifying_key(&other_pub).unwrap();
    let (r, _) = verify_bytes(&good, Some(&ok), &l).unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("expected key")),
        "{:?}",
        r.problems
    );
    // Stripping the signature is caught when a key is pinned.
    let stripped = tamper(&entries, |e| {
        e.remove(SIGNATURE_FILE);
    });
    let (r, _) = verify_bytes(&stripped, Some(&pk), &l).unwrap();
    assert!(r.problems.iter().any(|p| p.contains("not signed")));
}

#[test]
fn every_single_byte_flip_fails_verification() {
    // Tampering any byte must never verify: each flip is either refused as unreadable or
    // reported as a failed check. (Every byte of a small package, both outcomes allowed.)
    // Signed too: the signature file's bytes are covered as well.
    let d = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_fixture(d.path());
    let key = d.path().join("k");
    sign::keygen(&key).unwrap();
    for signed in [false, true] {
        let mut o = opts(&samples);
        if signed {
            o.sign = Some(sign::load_signing_key(&key).unwrap());
        }
        let (_, entries) = build(&model, &o).unwrap();
        let good = archive::write_zip(&entries).unwrap();
        let l = archive::Limits::default();
        assert!(verify_bytes(&good, None, &l).unwrap().0.ok());
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x01;
            if let Ok((r, _)) = verify_bytes(&b, None, &l) {
                assert!(
                    !r.ok(),
                    "flipping byte {i} of {} still verifies (signed: {signed})",
                    good.len()
                );
            }
        }
    }
}

#[test]
fn sample_inputs_are_checked_against_the_contract() {
    let d = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_fixture(d.path());
    std::fs::write(samples.join("x.npy"), npy_f32(&[2, 4], &[0.0; 8])).unwrap();
    let e = build(&model, &opts(&samples)).unwrap_err();
    assert!(e.to_string().contains("input 'x'"), "{e}");
    std::fs::remove_dir_all(samples.join("expected")).unwrap();
    std::fs::write(samples.join("x.npy"), npy_f32(&[2, 3], &[0.0; 6])).unwrap();
    let e = build(&model, &opts(&samples)).unwrap_err();
    assert!(e.to_string().contains("no runtime"), "{e}");
}

#[test]
fn expected_outputs_computed_with_onnx_runtime_pass_their_self_test() {
    let Some(_) = crate::runtime::ensure_for_tests() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_fixture(d.path());
    std::fs::remove_dir_all(samples.join("expected")).unwrap();
    let mut o = opts(&samples);
    o.runner = Some(Box::new(selftest::OrtRunner { library: None }));
    let (m, entries) = build(&model, &o).unwrap();
    assert!(
        m.self_test[0].produced_by.starts_with("onnxruntime"),
        "{}",
        m.self_test[0].produced_by
    );
    let archive = archive::Archive {
        entries,
        ..Default::default()
    };
    let runner = selftest::OrtRunner { library: None };
    let r = selftest::run_cases(&m, &archive, &variant_path("fp32"), &runner).unwrap();
    assert_eq!(r.len(), 1);
    assert!(r[0].problems.is_empty(), "{:?}", r[0].problems);
    // Relu of the sample: the expected output really is max(x, 0).
    let y = crate::tensor::npy::parse_npy(
        &archive.entries["self-test/case0/expected/y.npy"],
        Path::new("y"),
    )
    .unwrap();
    assert_eq!(y.to_f64_vec(), vec![0.0, 0.5, 2.0, 3.0, 0.0, 0.0]);
}

#[test]
fn external_data_is_inlined_into_the_package() {
    use prost::Message;
    let d = tempfile::tempdir().unwrap();
    let mut proto = ModelProto::decode(tiny_model_bytes().as_slice()).unwrap();
    let weights: Vec<u8> = [1.0f32, 2.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(d.path().join("w.bin"), &weights).unwrap();
    let kv = |k: &str, v: &str| StringStringEntryProto {
        key: k.into(),
        value: v.into(),
    };
    proto.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: "w".into(),
        dims: vec![3],
        data_type: Some(DataType::Float as i32),
        data_location: Some(tensor_proto::DataLocation::External as i32),
        external_data: vec![
            kv("location", "w.bin"),
            kv("offset", "0"),
            kv("length", "12"),
        ],
        ..Default::default()
    });
    let path = d.path().join("ext.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    let (m, entries) = build(&path, &PackageOptions::default()).unwrap();
    let packaged = ModelProto::decode(entries[&variant_path("fp32")].as_slice()).unwrap();
    let w = &packaged.graph.unwrap().initializer[0];
    assert_eq!(w.raw_data.as_deref(), Some(weights.as_slice()));
    assert!(w.external_data.is_empty());
    let t = &m.lineage.transformations[0];
    assert_eq!(t.params["inlined_external_data"], serde_json::json!(true));
    assert_ne!(t.input_sha256, t.output_sha256);
}

#[test]
fn opened_package_gives_its_original_model_to_run() {
    let d = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_fixture(d.path());
    let out = d.path().join("p.edgepkg");
    write(&model, &opts(&samples), &out).unwrap();
    let o = open(&out, None).unwrap();
    let (v, bytes) = o.runnable().unwrap();
    assert_eq!(v.name, "fp32");
    assert_eq!(bytes, std::fs::read(&model).unwrap().as_slice());
}
