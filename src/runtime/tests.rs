//! Session tests on tiny hand-built models (they need the ONNX Runtime library; see
//! [`super::ensure_for_tests`]).

use super::*;
use crate::model::proto::{ModelProto, NodeProto, OperatorSetIdProto};
use crate::model::{GraphProto, Model, ValueInfoProto};
use crate::tensor::{DType, Tensor};

/// The one test helper for a typed input signature (`inputs::tests::vi`), by dtype.
fn vi(name: &str, elem: DType, dims: &[&str]) -> ValueInfoProto {
    crate::inputs::tests::vi(name, elem.to_onnx() as i32, dims)
}

fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: format!("{op}_{}", outputs[0]),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// y = relu(a + b), with the sum `s` as an intermediate; `a`, `b`: float [batch, 3].
pub(crate) fn add_relu_model() -> Model {
    Model::from_proto(ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: "add_relu".into(),
            node: vec![
                node("Add", &["a", "b"], &["s"]),
                node("Relu", &["s"], &["y"]),
            ],
            input: vec![
                vi("a", DType::F32, &["batch", "3"]),
                vi("b", DType::F32, &["batch", "3"]),
            ],
            output: vec![vi("y", DType::F32, &["batch", "3"])],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn inputs(batch: usize) -> Vec<(String, Tensor)> {
    let n = batch * 3;
    vec![
        (
            "a".into(),
            Tensor::from_f32(vec![batch, 3], (0..n).map(|i| i as f32 - 2.0).collect()).unwrap(),
        ),
        (
            "b".into(),
            Tensor::from_f32(vec![batch, 3], vec![0.5; n]).unwrap(),
        ),
    ]
}

#[test]
fn runs_a_model_and_reports_the_cpu_provider() {
    let Some(_) = ensure_for_tests() else { return };
    let ctx = ExecutionContext::single_threaded();
    let mut s = Session::from_model(&add_relu_model(), &ctx).unwrap();
    assert_eq!(s.providers().summary(), "cpu");
    assert_eq!(s.inputs()[0].shape_text(), "[batch, 3]");
    let out = s.run(&inputs(2)).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "y");
    assert_eq!(out[0].1.shape(), &[2, 3]);
    assert_eq!(out[0].1.to_f32_vec(), vec![0.0, 0.0, 0.5, 1.5, 2.5, 3.5]);
}

#[test]
fn checks_inputs_before_calling_onnx_runtime() {
    let Some(_) = ensure_for_tests() else { return };
    let mut s =
        Session::from_model(&add_relu_model(), &ExecutionContext::single_threaded()).unwrap();
    let mut bad = inputs(1);
    bad[1].1 = Tensor::random(DType::F64, &[1, 3], 0);
    assert_eq!(
        s.run(&bad).unwrap_err().to_string(),
        "input 'b': element type is float64 but the model expects float32"
    );
    let mut bad = inputs(1);
    bad[0].1 = Tensor::random(DType::F32, &[1, 4], 0);
    let e = s.run(&bad).unwrap_err().to_string();
    assert!(
        e.starts_with("input 'a'") && e.contains("fixes it to 3"),
        "{e}"
    );
    let mut bad = inputs(1);
    bad.push(("c".into(), Tensor::random(DType::F32, &[1], 0)));
    let e = s.run(&bad).unwrap_err().to_string();
    assert!(
        e.starts_with("input 'c': the model has no such input"),
        "{e}"
    );
    let e = s.run(&inputs(1)[..1]).unwrap_err().to_string();
    assert_eq!(e, "input 'b': missing: the model needs this input");
}

#[test]
fn bound_runs_repeat_the_plain_run() {
    let Some(_) = ensure_for_tests() else { return };
    let mut s =
        Session::from_model(&add_relu_model(), &ExecutionContext::single_threaded()).unwrap();
    let first = s.bind(&inputs(4)).unwrap();
    for _ in 0..10 {
        s.run_bound().unwrap();
    }
    assert_eq!(s.bound_outputs().unwrap(), first);
}

#[test]
fn run_bound_without_bind_is_an_error() {
    let Some(_) = ensure_for_tests() else { return };
    let mut s =
        Session::from_model(&add_relu_model(), &ExecutionContext::single_threaded()).unwrap();
    assert!(s.run_bound().is_err());
}

#[test]
fn requested_cuda_is_recorded_or_refused_never_hidden() {
    let Some(_) = ensure_for_tests() else { return };
    let ctx = ExecutionContext {
        execution_providers: vec![Provider::Cuda, Provider::Cpu],
        ..ExecutionContext::single_threaded()
    };
    let s = Session::from_model(&add_relu_model(), &ctx).unwrap();
    let summary = s.providers().summary();
    if s.providers().registered.first() == Some(&Provider::Cuda) {
        assert_eq!(summary, "cuda");
    } else {
        assert!(summary.starts_with("cpu (cuda unavailable: "), "{summary}");
        let strict = ExecutionContext {
            provider_fallback: ProviderFallback::Fail,
            ..ctx
        };
        let e = Session::from_model(&add_relu_model(), &strict).unwrap_err();
        assert!(e.to_string().contains("cuda is unavailable"), "{e}");
    }
}

#[test]
fn profiling_writes_a_json_profile() {
    let Some(_) = ensure_for_tests() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ctx = ExecutionContext {
        profiling_prefix: Some(dir.path().join("prof")),
        ..ExecutionContext::single_threaded()
    };
    let mut s = Session::from_model(&add_relu_model(), &ctx).unwrap();
    s.run(&inputs(1)).unwrap();
    let p = s.end_profiling().unwrap().expect("profiling was on");
    let text = std::fs::read_to_string(&p).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v.as_array().is_some_and(|a| !a.is_empty()));
    assert_eq!(s.end_profiling().unwrap(), None);
}

#[test]
fn optimized_model_path_writes_the_optimized_graph() {
    let Some(_) = ensure_for_tests() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("opt.onnx");
    let ctx = ExecutionContext {
        optimized_model_path: Some(out.clone()),
        graph_optimization_level: GraphOptimizationLevel::Basic,
        ..ExecutionContext::single_threaded()
    };
    Session::from_model(&add_relu_model(), &ctx).unwrap();
    let m = Model::load(&out).unwrap();
    assert!(!m.graph().node.is_empty());
}

#[test]
fn intermediate_outputs_return_requested_tensors_per_batch() {
    let Some(_) = ensure_for_tests() else { return };
    let names = vec!["s".to_string(), "y".to_string()];
    let mut seen = Vec::new();
    let n = intermediate::collect(
        &add_relu_model(),
        &names,
        &ExecutionContext::single_threaded(),
        [Ok(inputs(1)), Ok(inputs(2))],
        |i, t| {
            seen.push((i, t));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(seen[0].1[0].0, "s");
    assert_eq!(seen[0].1[0].1.to_f32_vec(), vec![-1.5, -0.5, 0.5]);
    assert_eq!(seen[1].1[1].1.shape(), &[2, 3]);
    let e = intermediate::expose(&add_relu_model(), &["nope".to_string()]).unwrap_err();
    assert!(e.to_string().contains("'nope'"), "{e}");
}

#[test]
fn every_dtype_round_trips_through_identity() {
    let Some(_) = ensure_for_tests() else { return };
    for d in DType::ALL {
        let m = Model::from_proto(ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: Some(14),
            }],
            graph: Some(GraphProto {
                node: vec![node("Identity", &["x"], &["y"])],
                input: vec![vi("x", d, &["2", "2"])],
                output: vec![vi("y", d, &["2", "2"])],
                ..Default::default()
            }),
            ..Default::default()
        });
        let mut s = Session::from_model(&m, &ExecutionContext::single_threaded()).unwrap();
        let x = Tensor::random(d, &[2, 2], 5);
        let out = s.run(&[("x".into(), x.clone())]).unwrap();
        assert_eq!(out[0].1, x, "{d}");
    }
}

#[test]
fn run_selected_returns_only_the_named_outputs() {
    let Some(_) = ensure_for_tests() else { return };
    let m = intermediate::expose(&add_relu_model(), &["s".to_string()]).unwrap();
    let mut s = Session::from_model(&m, &ExecutionContext::single_threaded()).unwrap();
    let out = s.run_selected(&inputs(1), &["s".to_string()]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.to_f32_vec(), vec![-1.5, -0.5, 0.5]);
    let e = s.run_selected(&inputs(1), &["zz".to_string()]).unwrap_err();
    assert!(e.to_string().contains("no output 'zz'"), "{e}");
}

/// y = relu(a + w) with `w` stored in `weights.bin` next to the model.
fn external_model(dir: &std::path::Path) -> std::path::PathBuf {
    use crate::model::proto::tensor_proto::DataLocation;
    use crate::model::proto::StringStringEntryProto;
    let w: Vec<u8> = [1.0f32, 2.0, 3.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::write(dir.join("weights.bin"), &w).unwrap();
    let mut m = add_relu_model();
    let g = m.graph_mut();
    g.input.truncate(1);
    g.node[0].input[1] = "w".into();
    let entry = |k: &str, v: &str| StringStringEntryProto {
        key: k.into(),
        value: v.into(),
    };
    g.initializer.push(crate::model::TensorProto {
        name: "w".into(),
        dims: vec![3],
        data_type: Some(DType::F32.to_onnx() as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: vec![
            entry("location", "weights.bin"),
            entry("offset", "0"),
            entry("length", "12"),
        ],
        ..Default::default()
    });
    let path = dir.join("model.onnx");
    std::fs::write(&path, prost::Message::encode_to_vec(&m.proto)).unwrap();
    path
}

#[test]
fn external_data_resolves_against_the_model_folder_not_the_cwd() {
    let Some(_) = ensure_for_tests() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = external_model(dir.path());
    let x = vec![(
        "a".to_string(),
        Tensor::from_f32(vec![1, 3], vec![0.0, -5.0, 1.0]).unwrap(),
    )];
    let ctx = ExecutionContext::single_threaded();
    // From a loaded Model (bytes handed to ORT, folder set explicitly) ...
    let model = Model::load(&path).unwrap();
    let mut s = Session::from_model(&model, &ctx).unwrap();
    assert_eq!(s.run(&x).unwrap()[0].1.to_f32_vec(), vec![1.0, 0.0, 4.0]);
    // ... and from the path.
    let mut s = Session::from_path(&path, &ctx).unwrap();
    assert_eq!(s.run(&x).unwrap()[0].1.to_f32_vec(), vec![1.0, 0.0, 4.0]);
    // A model with external data but no folder is refused, not resolved against the cwd.
    let detached = Model::from_proto(model.proto.clone());
    let e = Session::from_model(&detached, &ctx).unwrap_err();
    assert!(e.to_string().contains("external data"), "{e}");
}

#[test]
fn sessions_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Session>();
    assert_send::<intermediate::IntermediateSession>();
}
