use std::collections::BTreeMap;

use super::*;
use crate::model::proto::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
use crate::model::proto::type_proto::{self, Value as TypeValue};
use crate::model::proto::{ModelProto, TensorShapeProto, TypeProto};
use crate::model::{builder, GraphProto, Model, TensorProto, ValueInfoProto};
use crate::tensor::{npy, pb, Tensor};

pub(crate) fn vi(name: &str, elem: i32, dims: &[&str]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d.parse::<i64>() {
                                Ok(n) => DimValue::DimValue(n),
                                Err(_) => DimValue::DimParam(d.to_string()),
                            }),
                            denotation: String::new(),
                        })
                        .collect(),
                }),
            })),
            denotation: String::new(),
        }),
        ..Default::default()
    }
}

fn model(inputs: Vec<ValueInfoProto>, inits: &[&str]) -> Model {
    Model::from_proto(ModelProto {
        ir_version: Some(8),
        graph: Some(GraphProto {
            input: inputs,
            initializer: inits
                .iter()
                .map(|n| TensorProto {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn ov(shapes: &[&str], dims: &[&str]) -> ShapeOverrides {
    ShapeOverrides::from_args(
        &shapes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &dims.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )
    .unwrap()
}

fn none() -> BTreeMap<String, Vec<usize>> {
    BTreeMap::new()
}

#[test]
fn real_inputs_exclude_initializers_and_read_dims() {
    let m = model(
        vec![vi("x", 1, &["batch", "3", "?", "-1"]), vi("w", 1, &["3"])],
        &["w"],
    );
    let specs = model_inputs(&m);
    assert_eq!(specs.len(), 1);
    assert_eq!(
        specs[0].dims.as_ref().unwrap(),
        &vec![
            Dim::Symbol("batch".into()),
            Dim::Fixed(3),
            Dim::Unknown,
            Dim::Unknown
        ]
    );
    assert_eq!(specs[0].shape_text(), "[batch, 3, ?, ?]");
}

#[test]
fn dim_binds_symbols_shared_across_inputs() {
    let m = model(
        vec![vi("a", 1, &["batch", "4"]), vi("b", 7, &["batch"])],
        &[],
    );
    let specs = model_inputs(&m);
    let shapes = resolve_shapes(&specs, &ov(&[], &["batch=2"]), &none()).unwrap();
    assert_eq!(shapes, vec![vec![2, 4], vec![2]]);
    // A --shape on one input resolves the symbol for the other.
    let shapes = resolve_shapes(&specs, &ov(&["a=5x4"], &[]), &none()).unwrap();
    assert_eq!(shapes, vec![vec![5, 4], vec![5]]);
}

#[test]
fn leading_batch_defaults_to_one_with_a_note() {
    let m = model(
        vec![vi("a", 1, &["batch", "4"]), vi("b", 7, &["batch", "2"])],
        &[],
    );
    let r = resolve(&model_inputs(&m), &ov(&[], &[]), &none()).unwrap();
    assert_eq!(r.shapes, vec![vec![1, 4], vec![1, 2]]);
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(r.notes[0].contains("symbolic dim batch=N"), "{:?}", r.notes);
    // An anonymous leading dim too.
    let m = model(vec![vi("x", 1, &["?", "3", "48", "192"])], &[]);
    let r = resolve(&model_inputs(&m), &ov(&[], &[]), &none()).unwrap();
    assert_eq!(r.shapes, vec![vec![1, 3, 48, 192]]);
    assert!(r.notes[0].contains("input shape x="), "{:?}", r.notes);
}

#[test]
fn unresolved_symbol_says_which_dim_to_pass() {
    let m = model(vec![vi("x", 1, &["batch", "seq"])], &[]);
    let e = resolve_shapes(&model_inputs(&m), &ov(&[], &[]), &none())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'seq'") && e.contains("pass symbolic dim seq=N"),
        "{e}"
    );
    assert!(e.starts_with("input 'x'"), "{e}");
}

#[test]
fn anonymous_dim_asks_for_a_shape() {
    let m = model(vec![vi("x", 1, &["-1", "3", "?", "?"])], &[]);
    let specs = model_inputs(&m);
    let e = resolve_shapes(&specs, &ov(&[], &[]), &none())
        .unwrap_err()
        .to_string();
    assert!(e.contains("pass input shape x=Nx3xNxN"), "{e}");
    let s = resolve_shapes(&specs, &ov(&["x=1x3x48x192"], &[]), &none()).unwrap();
    assert_eq!(s, vec![vec![1, 3, 48, 192]]);
}

#[test]
fn dim_wins_over_the_value_a_shape_gives() {
    // PP-OCR's recognizer: anonymous batch, named width. --shape pins the batch, --dim
    // varies the width.
    let m = model(
        vec![vi("x", 1, &["?", "3", "48", "p2o.DynamicDimension.1"])],
        &[],
    );
    let specs = model_inputs(&m);
    let s = resolve_shapes(
        &specs,
        &ov(&["x=1x3x48x320"], &["p2o.DynamicDimension.1=160"]),
        &none(),
    )
    .unwrap();
    assert_eq!(s, vec![vec![1, 3, 48, 160]]);
}

#[test]
fn rejects_fixed_dim_mismatch_and_wrong_rank() {
    let m = model(vec![vi("x", 1, &["batch", "3", "8"])], &[]);
    let specs = model_inputs(&m);
    let e = resolve_shapes(&specs, &ov(&["x=1x4x8"], &[]), &none())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has 4 at axis 1 but the model fixes it to 3"),
        "{e}"
    );
    let e = resolve_shapes(&specs, &ov(&["x=1x3"], &[]), &none())
        .unwrap_err()
        .to_string();
    assert!(e.contains("rank 2") && e.contains("expects rank 3"), "{e}");
}

#[test]
fn rejects_unknown_input_names() {
    let m = model(vec![vi("x", 1, &["2"])], &[]);
    let e = resolve_shapes(&model_inputs(&m), &ov(&["y=2"], &[]), &none())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "input 'y': input shape names no input of the model (its inputs: x)"
    );
}

#[test]
fn parses_flags_and_rejects_malformed_ones() {
    let o = ov(&["a:0=1x3x224x224", "s=scalar"], &["n=7"]);
    assert_eq!(o.shapes["a:0"], vec![1, 3, 224, 224]);
    assert_eq!(o.shapes["s"], Vec::<usize>::new());
    assert_eq!(o.dims["n"], 7);
    for bad in ["x", "x=", "=3", "x=1xa", "x=0x3x48x192"] {
        assert!(
            ShapeOverrides::default().add_shape_arg(bad).is_err(),
            "{bad}"
        );
    }
    for bad in ["n=-1", "n=0", "n=", "n=1,,2"] {
        assert!(ShapeOverrides::default().add_dim_arg(bad).is_err(), "{bad}");
    }
    assert_eq!(
        parse_dim_arg("sequence=16,64").unwrap(),
        ("sequence".to_string(), vec![16, 64])
    );
    let e = ShapeOverrides::default()
        .add_dim_arg("sequence=16,64")
        .unwrap_err()
        .to_string();
    assert!(e.contains("profile sweeps"), "{e}");
}

#[test]
fn input_ranges_are_checked_against_the_dtype() {
    let mut r = ValueRanges::default();
    r.add_arg("ids=0..999").unwrap();
    assert!(ValueRanges::default().add_arg("ids=5..1").is_err());
    assert!(ValueRanges::default().add_arg("ids=a..1").is_err());
    let e = ValueRange { lo: 0.0, hi: 300.0 }
        .check("x", DType::U8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside the type's range 0..255"), "{e}");
    assert!(ValueRange { lo: 0.5, hi: 1.0 }
        .check("x", DType::I32)
        .is_err());
    ValueRange { lo: -1.5, hi: 1.5 }
        .check("x", DType::F16)
        .unwrap();
}

#[test]
fn roles_come_from_the_graph_and_the_names() {
    let m = builder::token_model(50, 4);
    let specs = model_inputs(&m);
    assert_eq!(specs[0].role, Role::Indices { vocab: 50 });
    assert_eq!(specs[1].role, Role::AttentionMask);
    let m = model(
        vec![
            vi("token_type_ids", 7, &["b", "s"]),
            vi("sr", 7, &[]),
            vi("flag", 9, &["1"]),
            vi("x", 1, &["2"]),
        ],
        &[],
    );
    let roles: Vec<Role> = model_inputs(&m).into_iter().map(|s| s.role).collect();
    assert_eq!(
        roles,
        vec![Role::TokenTypes, Role::Parameter, Role::Data, Role::Data]
    );
}

#[test]
fn generated_inputs_follow_the_role() {
    let m = model(
        vec![
            vi("token_type_ids", 7, &["2", "3"]),
            vi("attention_mask", 7, &["2", "3"]),
            vi("flag", 9, &["2"]),
            vi("x", 1, &["4"]),
        ],
        &[],
    );
    let got = prepare(&m, &ov(&[], &[]), &InputSources::default()).unwrap();
    assert!(got.tensors[0].1.to_f64_vec().iter().all(|&v| v == 0.0));
    assert!(got.tensors[1].1.to_f64_vec().iter().all(|&v| v == 1.0));
    assert!(got.tensors[2].1.to_f64_vec().iter().all(|&v| v == 1.0));
    assert!(got.tensors[3]
        .1
        .to_f64_vec()
        .iter()
        .all(|v| (0.0..1.0).contains(v)));
}

#[test]
fn integer_scalar_parameters_are_asked_for() {
    let m = model(vec![vi("x", 1, &["1", "512"]), vi("sr", 7, &[])], &[]);
    let e = prepare(&m, &ov(&[], &[]), &InputSources::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("input 'sr'"), "{e}");
    assert!(e.contains("input range sr=V..V"), "{e}");
    let src = InputSources {
        ranges: ValueRanges::from_args(&["sr=16000..16000".into()]).unwrap(),
        ..Default::default()
    };
    let got = prepare(&m, &ov(&[], &[]), &src).unwrap();
    assert_eq!(got.tensors[1].1.to_f64_vec(), vec![16000.0]);
    // A range on an unknown input or outside the type is refused.
    for (arg, want) in [
        ("nope=1..2", "names no input"),
        ("sr=0..1e300", "outside the type's range"),
    ] {
        let src = InputSources {
            ranges: ValueRanges::from_args(&[arg.into()]).unwrap(),
            ..Default::default()
        };
        let e = prepare(&m, &ov(&[], &[]), &src).unwrap_err().to_string();
        assert!(e.contains(want), "{arg}: {e}");
    }
}

#[test]
fn string_inputs_are_refused_by_name() {
    let m = model(vec![vi("text", 8, &["1"])], &[]);
    let e = prepare(&m, &ov(&[], &[]), &InputSources::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("input 'text': is a string input"), "{e}");
}

#[test]
fn token_ids_are_drawn_inside_the_vocabulary_and_checked_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder::token_model(7, 2);
    let got = prepare(
        &m,
        &ov(&[], &["sequence=64", "batch=4"]),
        &InputSources::default(),
    )
    .unwrap();
    let ids = got.tensors[0].1.to_f64_vec();
    assert!(ids.iter().all(|&t| (0.0..7.0).contains(&t)));
    assert!(ids.iter().any(|&t| t >= 5.0), "uses the whole vocabulary");
    let p = dir.path().join("ids.npy");
    npy::write_npy(
        &p,
        &Tensor::from_f64_values(DType::I64, &[1, 3], vec![1.0, 7.0, 2.0]).unwrap(),
    )
    .unwrap();
    let mut src = InputSources::default();
    src.add_input_arg(&format!("input_ids={}", p.display()))
        .unwrap();
    let e = prepare(&m, &ov(&[], &[]), &src).unwrap_err().to_string();
    assert!(e.starts_with(&p.display().to_string()), "{e}");
    assert!(e.contains("input 'input_ids': index 7 is outside"), "{e}");
}

#[test]
fn prepare_generates_seeded_inputs_and_checks_files() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(
        vec![vi("x", 1, &["batch", "3"]), vi("ids", 7, &["batch"])],
        &[],
    );
    let src = InputSources {
        seed: 3,
        ..Default::default()
    };
    let a = prepare(&m, &ov(&[], &["batch=2"]), &src).unwrap();
    let b = prepare(&m, &ov(&[], &["batch=2"]), &src).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.tensors[0].1.shape(), &[2, 3]);
    assert_eq!(a.tensors[1].1.dtype(), DType::I64);

    // A file fixes the symbol for the generated input too.
    let p = dir.path().join("x.npy");
    npy::write_npy(&p, &Tensor::random(DType::F32, &[5, 3], 1)).unwrap();
    let mut src = InputSources::default();
    src.add_input_arg(&format!("x={}", p.display())).unwrap();
    let got = prepare(&m, &ov(&[], &[]), &src).unwrap();
    assert_eq!(got.tensors[1].1.shape(), &[5]);
    assert!(got.notes.is_empty());

    // Wrong dtype in a file names the file, the input, expected and found.
    npy::write_npy(&p, &Tensor::random(DType::F64, &[5, 3], 1)).unwrap();
    let e = prepare(&m, &ov(&[], &[]), &src).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: input 'x': element type is float64 but the model expects float32",
            p.display()
        )
    );
    // Wrong fixed dim in a file.
    npy::write_npy(&p, &Tensor::random(DType::F32, &[5, 4], 1)).unwrap();
    let e = prepare(&m, &ov(&[], &[]), &src).unwrap_err().to_string();
    assert!(e.contains("axis 1 but the model fixes it to 3"), "{e}");
}

#[test]
fn prepare_reads_inputs_folder_by_name_or_test_data_layout() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(vec![vi("in/0", 1, &["2"]), vi("b", 1, &["1"])], &[]);
    let a = Tensor::random(DType::F32, &[2], 1);
    let b = Tensor::random(DType::F32, &[1], 2);
    npy::write_npy(&dir.path().join("in_0.npy"), &a).unwrap();
    std::fs::write(
        dir.path().join("input_1.pb"),
        prost::Message::encode_to_vec(&pb::to_proto("b", &b)),
    )
    .unwrap();
    let src = InputSources {
        bundle: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let got = prepare(&m, &ShapeOverrides::default(), &src).unwrap();
    assert_eq!(got.tensors, vec![("in/0".into(), a), ("b".into(), b)]);
}

fn write_npz(path: &std::path::Path, members: &[(&str, &Tensor)]) {
    use std::io::Write;
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (n, t) in members {
        z.start_file(format!("{n}.npy"), zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(&npy::to_npy_bytes(t).unwrap()).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn npz_must_hold_every_input_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(vec![vi("x", 1, &["2"]), vi("y", 7, &["1"])], &[]);
    let x = Tensor::random(DType::F32, &[2], 1);
    let y = Tensor::random(DType::I64, &[1], 1);
    let p = dir.path().join("in.npz");
    write_npz(&p, &[("x", &x), ("y", &y)]);
    let src = InputSources {
        bundle: Some(p.clone()),
        ..Default::default()
    };
    let got = prepare(&m, &ShapeOverrides::default(), &src).unwrap();
    assert_eq!(got.tensors[0].1, x);
    write_npz(&p, &[("x", &x)]);
    let e = prepare(&m, &ShapeOverrides::default(), &src)
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no array for input 'y' (it has: x"), "{e}");
    write_npz(&p, &[("x", &x), ("y", &y), ("z", &x)]);
    let e = prepare(&m, &ShapeOverrides::default(), &src)
        .unwrap_err()
        .to_string();
    assert!(e.contains("array 'z' names no input"), "{e}");
}

#[test]
fn sample_folders_hold_samples_of_varying_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let m = builder::token_model(10, 2);
    let specs = model_inputs(&m);
    for (i, seq) in [4usize, 9].iter().enumerate() {
        let ids = Tensor::uniform(DType::I64, &[1, *seq], 0.0, 9.0, i as u64).unwrap();
        let mask = Tensor::filled(DType::I64, &[1, *seq], 1.0).unwrap();
        write_npz(
            &dir.path().join(format!("{i:03}.npz")),
            &[("input_ids", &ids), ("attention_mask", &mask)],
        );
    }
    std::fs::write(dir.path().join("README.txt"), "skipped").unwrap();
    let samples = read_samples(dir.path(), &specs).unwrap();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[1].shapes()[0].1, vec![1, 9]);
    // Within one sample, a symbol takes one value.
    let ids = Tensor::uniform(DType::I64, &[1, 4], 0.0, 9.0, 1).unwrap();
    let mask = Tensor::filled(DType::I64, &[1, 5], 1.0).unwrap();
    let p = dir.path().join("002.npz");
    write_npz(&p, &[("input_ids", &ids), ("attention_mask", &mask)]);
    let e = read_samples(dir.path(), &specs).unwrap_err().to_string();
    assert!(e.starts_with(&p.display().to_string()), "{e}");
    assert!(e.contains("'sequence' would be 5"), "{e}");
    // An .npy sample only fits a single-input model.
    let p = dir.path().join("a.npy");
    npy::write_npy(&p, &ids).unwrap();
    let e = read_sample(&p, &specs).unwrap_err().to_string();
    assert!(e.contains("use .npz keyed by input name"), "{e}");
}

#[test]
fn dims_round_trip_through_json() {
    let dims = vec![Dim::Fixed(1), Dim::Symbol("seq".into()), Dim::Unknown];
    let j = serde_json::to_string(&dims).unwrap();
    assert_eq!(j, r#"[1,"seq",null]"#);
    assert_eq!(serde_json::from_str::<Vec<Dim>>(&j).unwrap(), dims);
    assert_eq!(
        serde_json::from_str::<Vec<Dim>>(r#"["?"]"#).unwrap(),
        vec![Dim::Unknown]
    );
}

#[test]
fn sanitizes_tensor_names_to_safe_file_stems() {
    assert_eq!(
        sanitize_file_stem("save_infer_model/scale_0.tmp_1"),
        "save_infer_model_scale_0.tmp_1"
    );
    assert_eq!(sanitize_file_stem(".."), "_..");
    assert_eq!(sanitize_file_stem(""), "_");
    assert_eq!(sanitize_file_stem("a b:c\\d"), "a_b_c_d");
}
