//! Per-call overhead of edgepack's run paths on a model that does almost nothing
//! (`y = x + x` on 4 floats), so the figure is ONNX Runtime's `Run` plus our wrapper.
//!
//! ```text
//! ORT_DYLIB_PATH=... cargo run --release --example run_overhead [-- ITERATIONS] [MODEL_OUT]
//! ```
//! Prints mean and median nanoseconds per call for `Session::run` (checks, conversions,
//! output copies) and `Session::run_bound` (the profiler's timing loop). With MODEL_OUT it
//! also saves the model so the same loop can be timed in Python for comparison.

use std::time::Instant;

use edgepack::model::proto::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
use edgepack::model::proto::{
    type_proto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
};
use edgepack::model::{GraphProto, Model, ValueInfoProto};
use edgepack::runtime::{self, ExecutionContext, Session};
use edgepack::tensor::{DType, Tensor};

fn vi(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DType::F32.to_onnx() as i32),
                shape: Some(TensorShapeProto {
                    dim: vec![Dimension {
                        value: Some(DimValue::DimValue(4)),
                        denotation: String::new(),
                    }],
                }),
            })),
            denotation: String::new(),
        }),
        ..Default::default()
    }
}

fn summarize(label: &str, mut ns: Vec<f64>) {
    ns.sort_by(|a, b| a.total_cmp(b));
    let mean = ns.iter().sum::<f64>() / ns.len() as f64;
    let median = ns[ns.len() / 2];
    println!("{label:<12} mean {mean:>8.0} ns/call   median {median:>8.0} ns/call");
}

fn main() -> edgepack::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let iterations: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let model = Model::from_proto(ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            node: vec![NodeProto {
                op_type: "Add".into(),
                input: vec!["x".into(), "x".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    });
    if let Some(p) = args.get(2) {
        model.save(p.as_ref())?;
    }
    let info = runtime::ensure(None)?;
    eprintln!(
        "onnxruntime {:?} from {}",
        info.version,
        info.path.display()
    );
    let mut s = Session::from_model(&model, &ExecutionContext::single_threaded())?;
    let inputs = vec![("x".to_string(), Tensor::random(DType::F32, &[4], 1))];

    // Time in blocks of 1000 calls so the clock's own cost does not dominate.
    let block = 1000;
    let blocks = (iterations / block).max(1);
    for _ in 0..block {
        s.run(&inputs)?;
    }
    let mut plain = Vec::with_capacity(blocks);
    for _ in 0..blocks {
        let t = Instant::now();
        for _ in 0..block {
            s.run(&inputs)?;
        }
        plain.push(t.elapsed().as_nanos() as f64 / block as f64);
    }
    s.bind(&inputs)?;
    for _ in 0..block {
        s.run_bound()?;
    }
    let mut bound = Vec::with_capacity(blocks);
    for _ in 0..blocks {
        let t = Instant::now();
        for _ in 0..block {
            s.run_bound()?;
        }
        bound.push(t.elapsed().as_nanos() as f64 / block as f64);
    }
    println!("{} calls each, single intra-op thread", blocks * block);
    summarize("run", plain);
    summarize("run_bound", bound);
    Ok(())
}
