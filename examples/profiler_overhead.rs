//! The Rust side of `benches/profiler_vs_python.sh`: edgepack's per-call harness overhead on
//! a one-node model.
//!
//! Builds `Identity(x[1, 16])`, saves it to `OUT_DIR/identity.onnx` (the Python side times
//! the same file), binds its input once and alternates, `--rounds` times:
//! - a bare loop of `Session::run_bound` with no timing at all: ONNX Runtime's own cost
//!   per call with bound I/O;
//! - the profiler's measurement loop ([`edgepack::profile::measure`]) over the same
//!   session with a fixed iteration count, timed as a whole.
//!
//! Harness overhead per call = loop wall time per call - bare per call. Medians over rounds
//! are printed as one JSON object on stdout.
//!
//! ```text
//! cargo run --release --example profiler_overhead -- OUT_DIR [--calls 20000] [--rounds 7]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use edgepack::model::builder::{model_from_graph, node, value_info, DEFAULT_OPSET};
use edgepack::model::graph::Dim;
use edgepack::model::proto::GraphProto;
use edgepack::model::DataType;
use edgepack::profile::measure::{measure, Protocol, Runner};
use edgepack::profile::worker::BoundRunner;
use edgepack::runtime::{self, ExecutionContext, Session};
use edgepack::stats;
use edgepack::tensor::{DType, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out_dir = PathBuf::from(args.next().ok_or("usage: profiler_overhead OUT_DIR")?);
    let (mut calls, mut rounds) = (20_000u64, 7usize);
    while let Some(a) = args.next() {
        let v = args.next().ok_or("missing value")?;
        match a.as_str() {
            "--calls" => calls = v.parse()?,
            "--rounds" => rounds = v.parse()?,
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    std::fs::create_dir_all(&out_dir)?;
    let model_path = out_dir.join("identity.onnx");
    let dims = [Dim::Fixed(1), Dim::Fixed(16)];
    let graph = GraphProto {
        name: "identity".into(),
        node: vec![node("id", "Identity", &["x"], &["y"], vec![])],
        input: vec![value_info("x", DataType::Float, &dims)],
        output: vec![value_info("y", DataType::Float, &dims)],
        ..Default::default()
    };
    model_from_graph(graph, DEFAULT_OPSET).save(&model_path)?;

    let info = runtime::ensure(None)?;
    let mut session = Session::from_path(&model_path, &ExecutionContext::single_threaded())?;
    session.bind(&[("x".to_string(), Tensor::random(DType::F32, &[1, 16], 0))])?;
    let protocol = Protocol {
        warmup_iterations: 1000,
        min_iterations: calls,
        max_iterations: calls,
        min_time_s: 0.0,
        max_time_s: f64::MAX,
        target_ci_rel: 1e-9, // never converge early: a fixed number of calls
        ..Protocol::default()
    };
    let (mut bare, mut harness, mut timed, mut timer) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..calls {
            session.run_bound()?;
        }
        let bare_per_call = t.elapsed().as_secs_f64() / calls as f64;

        let mut runner = BoundRunner::new(&mut session);
        timer.push(runner.timer_overhead_s());
        let t = Instant::now();
        let m = measure(&mut runner, &protocol)?;
        let wall = t.elapsed().as_secs_f64();
        // cold + warm-up + probe + samples, all through the same loop machinery
        let total_calls = 1 + protocol.warmup_iterations + 1 + m.samples_s.len() as u64;
        let loop_per_call = wall / total_calls as f64;
        bare.push(bare_per_call);
        harness.push(loop_per_call - bare_per_call);
        timed.push(m.summary.p50);
    }
    let med = |v: &[f64]| stats::median(v).unwrap_or(f64::NAN);
    println!(
        "{{\"onnxruntime_version\": {:?}, \"calls_per_round\": {calls}, \"rounds\": {rounds}, \
         \"bare_run_bound_per_call_s\": {:e}, \"harness_overhead_per_call_s\": {:e}, \
         \"timed_run_p50_s\": {:e}, \"timer_overhead_s\": {:e}, \"model\": {:?}}}",
        info.version.unwrap_or_default(),
        med(&bare),
        med(&harness),
        med(&timed),
        med(&timer),
        model_path.display().to_string()
    );
    Ok(())
}
