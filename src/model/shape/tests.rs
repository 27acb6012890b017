//! Unit tests of shape inference and the MACs count, on tiny built models.

use super::window::window_out;
use super::*;
use crate::model::attr;
use crate::model::builder::{self, fixed, node, GraphBuilder, WeightStorage};
use crate::model::DataType;

fn run(g: &GraphProto, x: &[i64]) -> Inference {
    infer(g, &BTreeMap::from([("x".to_string(), x.to_vec())]))
}

#[test]
fn conv_net_shapes_and_macs_match_hand_counts() {
    let m = builder::conv_net(1);
    let inf = run(m.graph(), &[1, 3, 16, 16]);
    assert!(inf.unsized_nodes.is_empty(), "{:?}", inf.unsized_nodes);
    assert_eq!(inf.shapes["y"], vec![1, 10]);
    let c = cost(m.graph(), &inf);
    // conv1: 8x16x16 outputs x 27; conv2: 16x4x4 x 72; fc: 10 x 256.
    let want = 8 * 256 * 27 + 16 * 16 * 72 + 10 * 256;
    assert_eq!(c.macs, want);
    assert_eq!(c.flops, 2 * want);
    assert_eq!(c.macs_by_op["Gemm"], 2560);
}

#[test]
fn window_arithmetic_follows_the_spec() {
    // 7x7, k3 s2 p1 -> 4; ceil mode 6, k3 s2 no pad: floor 2, ceil 3.
    assert_eq!(window_out(7, 3, 2, 1, 1, 1, "NOTSET", false), Some(4));
    assert_eq!(window_out(6, 3, 2, 1, 0, 0, "NOTSET", false), Some(2));
    assert_eq!(window_out(6, 3, 2, 1, 0, 0, "NOTSET", true), Some(3));
    assert_eq!(window_out(7, 3, 2, 1, 0, 0, "SAME_UPPER", false), Some(4));
    assert_eq!(window_out(7, 3, 1, 2, 0, 0, "VALID", false), Some(3));
}

#[test]
fn shape_gather_concat_reshape_chain_is_followed() {
    // y = Reshape(x, Concat(Gather(Shape(x), 0), [-1])) : [N, C*H*W]
    let mut b = GraphBuilder::new("chain", 1, WeightStorage::ConstantNodes);
    b.input("x", DataType::Float, &fixed(&[2, 3, 4, 5]));
    let i0 = b.ints("i0", &[0]);
    let m1 = b.ints("m1", &[-1]);
    let s = b.op("Shape", &["x"], vec![]);
    let g = b.op("Gather", &[&s, &i0], vec![attr::int("axis", 0)]);
    let c = b.op("Concat", &[&g, &m1], vec![attr::int("axis", 0)]);
    let r = b.op("Reshape", &["x", &c], vec![]);
    let t = b.op("Transpose", &[&r], vec![]);
    let w = b.weight("w", &[2, 7], -1.0, 1.0);
    let y = b.op("MatMul", &[&t, &w], vec![]);
    let m = b.into_model();
    let inf = run(m.graph(), &[2, 3, 4, 5]);
    assert_eq!(inf.values[&c], vec![2, -1]);
    assert_eq!(inf.shapes[&r], vec![2, 60]);
    assert_eq!(inf.shapes[&t], vec![60, 2]);
    assert_eq!(inf.shapes[&y], vec![60, 7]);
    assert_eq!(cost(m.graph(), &inf).macs, 60 * 7 * 2);
}

#[test]
fn conv_transpose_resize_and_pools() {
    let mut b = GraphBuilder::new("up", 1, WeightStorage::Initializer);
    b.input("x", DataType::Float, &fixed(&[1, 4, 8, 8]));
    let w = b.weight("w", &[4, 2, 2, 2], -1.0, 1.0);
    let ct = b.op(
        "ConvTranspose",
        &["x", &w],
        vec![attr::ints("strides", &[2, 2])],
    );
    let scales = b.constant(tensor_data::from_f32("sc", &[4], &[1.0, 1.0, 2.0, 2.0]).unwrap());
    let rs = b.op("Resize", &[&ct, "", &scales], vec![]);
    let gp = b.op("GlobalAveragePool", &[&rs], vec![]);
    let mp = b.op(
        "MaxPool",
        &[&rs],
        vec![
            attr::ints("kernel_shape", &[3, 3]),
            attr::ints("strides", &[2, 2]),
        ],
    );
    let m = b.into_model();
    let inf = run(m.graph(), &[1, 4, 8, 8]);
    assert_eq!(inf.shapes[&ct], vec![1, 2, 16, 16]);
    assert_eq!(inf.shapes[&rs], vec![1, 2, 32, 32]);
    assert_eq!(inf.shapes[&gp], vec![1, 2, 1, 1]);
    assert_eq!(inf.shapes[&mp], vec![1, 2, 15, 15]);
    // Each of 4x8x8 inputs scatters into 2x2x2 outputs.
    assert_eq!(cost(m.graph(), &inf).macs, 4 * 64 * 8);
}

/// Compute inside `If` branches (Silero VAD keeps all of its there) is counted: the
/// larger branch, with a note saying so; a `Loop` with an unknown trip count makes the
/// total unknown rather than an undercount.
#[test]
fn compute_inside_if_branches_counts_the_larger_branch() {
    let mut m = builder::if_model(1);
    let w = |name: &str, dims: &[i64]| {
        let n: i64 = dims.iter().product();
        tensor_data::from_f32(name, dims, &vec![0.5; n as usize]).unwrap()
    };
    let g = m.graph_mut();
    g.initializer.push(w("wt", &[4, 8]));
    g.initializer.push(w("we", &[4, 2]));
    for a in &mut g.node[1].attribute {
        let wname = if a.name == "then_branch" { "wt" } else { "we" };
        let b = a.g.as_mut().unwrap();
        b.node[0].op_type = "MatMul".into();
        b.node[0].input.push(wname.into());
    }
    let inf = infer(
        m.graph(),
        &BTreeMap::from([("x".to_string(), vec![3, 4]), ("cond".to_string(), vec![])]),
    );
    let c = cost(m.graph(), &inf);
    assert_eq!(c.macs, 3 * 4 * 8, "{c:?}");
    assert!(c.unsized_nodes.is_empty(), "{c:?}");
    assert_eq!(c.subgraphs.len(), 1);
    assert!(c.subgraphs[0].contains("the larger branch (then_branch) counted"));
    assert!(
        c.subgraphs[0].contains("else_branch 24 MACs"),
        "{}",
        c.subgraphs[0]
    );

    // A condition whose value is known picks its branch, the smaller one here.
    let mut known = m.clone();
    let g = known.graph_mut();
    g.initializer
        .push(tensor_data::from_i64("zero", &[1], &[0]).unwrap());
    g.node[1].input[0] = "zero".into();
    let inf = infer(
        known.graph(),
        &BTreeMap::from([("x".to_string(), vec![3, 4])]),
    );
    let c = cost(known.graph(), &inf);
    assert_eq!(c.macs, 3 * 4 * 2, "{c:?}");
    assert!(c.subgraphs[0].contains("the branch its condition picks (else_branch)"));

    // The same body as a Loop with a trip count from an input: unknown, not 0.
    let g = m.graph_mut();
    let body = g.node[1].attribute[0].g.clone().unwrap();
    g.node[1] = node(
        "loop",
        "Loop",
        &["trips", ""],
        &[],
        vec![attr::graph("body", body)],
    );
    let inf = infer(m.graph(), &BTreeMap::from([("x".to_string(), vec![3, 4])]));
    let c = cost(m.graph(), &inf);
    assert_eq!(
        c.unsized_nodes,
        vec!["loop (Loop: trip count unknown)".to_string()]
    );
    assert!(c.subgraphs[0].contains("trip count unknown"));
}

#[test]
fn unknown_ops_are_reported_not_guessed() {
    let mut m = builder::mlp(&[4, 3], 1);
    m.graph_mut()
        .node
        .insert(0, node("mystery", "NonZero", &["x"], &["nz"], vec![]));
    let inf = run(m.graph(), &[1, 4]);
    assert_eq!(inf.unsized_nodes, vec!["mystery (NonZero)".to_string()]);
    // Gemm from unsized input is listed by cost.
    let g = m.graph_mut();
    g.node[1].input[0] = "nz".into();
    let inf = run(m.graph(), &[1, 4]);
    let c = cost(m.graph(), &inf);
    assert_eq!(c.macs, 0);
    assert_eq!(c.unsized_nodes.len(), 1);
}

/// Attributes and input sizes are untrusted: extreme values must give "unsized", never
/// an arithmetic overflow panic.
#[test]
fn extreme_attributes_and_sizes_never_panic() {
    use rand::{Rng, SeedableRng};
    let extremes = [
        i64::MIN,
        i64::MIN + 1,
        -1,
        0,
        1,
        2,
        1 << 40,
        i64::MAX - 1,
        i64::MAX,
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let base = builder::conv_net(1);
    let mut t = builder::GraphBuilder::new("ct", 1, WeightStorage::Initializer);
    t.input("x", DataType::Float, &fixed(&[1, 4, 8, 8]));
    let w = t.weight("w", &[4, 2, 2, 2], -1.0, 1.0);
    let ct = t.op(
        "ConvTranspose",
        &["x", &w],
        vec![
            attr::ints("strides", &[2, 2]),
            attr::ints("pads", &[0, 0, 0, 0]),
        ],
    );
    let sh = t.ints("shape", &[1, -1]);
    t.op("Reshape", &[&ct, &sh], vec![]);
    let models = [base, t.into_model()];
    for round in 0..4000 {
        let mut m = models[round % 2].clone();
        let g = m.graph_mut();
        let k = rng.random_range(0..g.node.len());
        let node = &mut g.node[k];
        if let Some(a) = node.attribute.iter_mut().find(|a| !a.ints.is_empty()) {
            let i = rng.random_range(0..a.ints.len());
            a.ints[i] = extremes[rng.random_range(0..extremes.len())];
        }
        let x: Vec<i64> = (0..4)
            .map(|i| {
                if rng.random_bool(0.3) {
                    extremes[rng.random_range(0..extremes.len())]
                } else {
                    [1, 3, 16, 16][i]
                }
            })
            .collect();
        let inf = run(m.graph(), &x);
        let _ = cost(m.graph(), &inf);
    }
}

#[test]
fn range_constant_of_shape_tile_and_depth_to_space() {
    let mut b = GraphBuilder::new("misc", 1, WeightStorage::Initializer);
    b.input("x", DataType::Float, &fixed(&[1, 8, 2, 3]));
    let start = b.ints("start", &[1]);
    let limit = b.ints("limit", &[10]);
    let delta = b.ints("delta", &[3]);
    let r = b.op("Range", &[&start, &limit, &delta], vec![]);
    let c = b.op("ConstantOfShape", &[&r], vec![]);
    let reps = b.ints("reps", &[1, 1, 2, 2]);
    let t = b.op("Tile", &["x", &reps], vec![]);
    let d = b.op("DepthToSpace", &["x"], vec![attr::int("blocksize", 2)]);
    let m = b.into_model();
    let inf = run(m.graph(), &[1, 8, 2, 3]);
    assert_eq!(inf.values[&r], vec![1, 4, 7]);
    assert_eq!(inf.shapes[&c], vec![1, 4, 7]);
    assert_eq!(inf.shapes[&t], vec![1, 8, 4, 6]);
    assert_eq!(inf.shapes[&d], vec![1, 2, 4, 6]);
}

#[test]
fn a_float_range_over_a_cast_shape_is_sized_from_whole_float_constants() {
    // YOLOv8's anchor grid: Range(0.0, Cast<float>(Gather(Shape(x), 3)), 1.0) + 0.5.
    let mut b = GraphBuilder::new("anchors", 1, WeightStorage::Initializer);
    b.input("x", DataType::Float, &fixed(&[1, 64, 40, 40]));
    let f = |b: &mut GraphBuilder, name: &str, v: f32| {
        b.constant(tensor_data::from_f32(name, &[], &[v]).unwrap())
    };
    let (start, delta, half) = (
        f(&mut b, "start", 0.0),
        f(&mut b, "delta", 1.0),
        f(&mut b, "half", 0.5),
    );
    let s = b.op("Shape", &["x"], vec![]);
    let i = b.ints("i", &[3]);
    let w = b.op("Gather", &[&s, &i], vec![]);
    let wf = b.op("Cast", &[&w], vec![attr::int("to", 1)]);
    let r = b.op("Range", &[&start, &wf, &delta], vec![]);
    let a = b.op("Add", &[&r, &half], vec![]);
    // A fractional step is not a whole number: not tracked, so not sized (never guessed).
    let r2 = b.op("Range", &[&start, &wf, &half], vec![]);
    let m = b.into_model();
    let inf = run(m.graph(), &[1, 64, 40, 40]);
    assert_eq!(inf.shapes[&r], vec![40]);
    assert_eq!(inf.shapes[&a], vec![40]);
    assert!(!inf.values.contains_key(&a));
    assert!(!inf.shapes.contains_key(&r2));
}

#[test]
fn broadcast_and_matmul_rules() {
    assert_eq!(broadcast(&[&[2, 1, 3], &[4, 1]]), Some(vec![2, 4, 3]));
    assert_eq!(broadcast(&[&[2], &[3]]), None);
    assert_eq!(matmul_shape(&[5, 2, 3], &[3, 4]), Some(vec![5, 2, 4]));
    assert_eq!(matmul_shape(&[3], &[3, 4]), Some(vec![4]));
    assert_eq!(matmul_shape(&[2, 3], &[4, 5]), None);
}

#[test]
fn if_outputs_take_the_known_branch_else_the_shape_both_agree_on() {
    // What it protects: Silero VAD's LSTM sits behind an `If` that squeezes a tensor or
    // passes it on depending on a test of its rank; unsized, the LSTM was costed as one
    // dispatch and the model predicted at half its time.
    let branch = |name: &str, op: &str, inputs: &[&str]| {
        let out = format!("{name}_out");
        GraphProto {
            name: name.into(),
            node: vec![node(name, op, inputs, &[&out], vec![])],
            output: vec![builder::value_info_unshaped(&out, DataType::Float)],
            ..Default::default()
        }
    };
    let build = |cond_from_shape: bool, else_op: &str| {
        let mut b = GraphBuilder::new("if", 1, WeightStorage::Initializer);
        b.input("x", DataType::Float, &fixed(&[1, 4, 1]));
        b.input("c", DataType::Bool, &fixed(&[]));
        let axes = b.ints("axes", &[2]);
        let cond = if cond_from_shape {
            let rank3 = b.ints("three", &[3]);
            let s = b.op("Shape", &["x"], vec![]);
            let n = b.op("Size", &[&s], vec![]);
            let eq = b.op("Equal", &[&n, &rank3], vec![]);
            b.op("Not", &[&eq], vec![])
        } else {
            "c".to_string()
        };
        let (then_g, else_g) = if else_op == "Squeeze" {
            (
                branch("t", "Identity", &["x"]),
                branch("e", "Squeeze", &["x", &axes]),
            )
        } else {
            (
                branch("t", "Identity", &["x"]),
                branch("e", else_op, &["x"]),
            )
        };
        b.push(node(
            "if",
            "If",
            &[&cond],
            &["y"],
            vec![
                attr::graph("then_branch", then_g),
                attr::graph("else_branch", else_g),
            ],
        ));
        b.into_model()
    };
    let inputs = BTreeMap::from([("x".to_string(), vec![1, 4, 1]), ("c".to_string(), vec![])]);
    // Not(rank == 3) is false: the else branch (Squeeze) runs.
    let m = build(true, "Squeeze");
    let inf = infer(m.graph(), &inputs);
    assert_eq!(inf.shapes["y"], vec![1, 4], "{:?}", inf.unsized_nodes);
    // The same branches behind an input's value: they disagree, so unsized.
    let m = build(false, "Squeeze");
    let inf = infer(m.graph(), &inputs);
    assert!(!inf.shapes.contains_key("y"));
    assert_eq!(inf.unsized_nodes, vec!["if (If)".to_string()]);
    // Branches that agree size the output whatever the condition.
    let m = build(false, "Relu");
    let inf = infer(m.graph(), &inputs);
    assert_eq!(inf.shapes["y"], vec![1, 4, 1]);
}

#[test]
fn recurrent_outputs_follow_the_layout() {
    let lstm = |layout: i64| {
        let mut b = GraphBuilder::new("lstm", 1, WeightStorage::Initializer);
        b.input("x", DataType::Float, &fixed(&[5, 2, 8]));
        let w = b.weight("w", &[1, 16, 8], -0.1, 0.1);
        let r = b.weight("r", &[1, 16, 4], -0.1, 0.1);
        b.push(node(
            "lstm",
            "LSTM",
            &["x", &w, &r],
            &["y", "y_h", "y_c"],
            vec![attr::int("hidden_size", 4), attr::int("layout", layout)],
        ));
        b.into_model()
    };
    let inf = run(lstm(0).graph(), &[5, 2, 8]);
    assert_eq!(inf.shapes["y"], vec![5, 1, 2, 4]);
    assert_eq!(inf.shapes["y_h"], vec![1, 2, 4]);
    assert_eq!(inf.shapes["y_c"], vec![1, 2, 4]);
    // layout 1: x is [batch 5, steps 2, input].
    let inf = run(lstm(1).graph(), &[5, 2, 8]);
    assert_eq!(inf.shapes["y"], vec![5, 2, 1, 4]);
    assert_eq!(inf.shapes["y_c"], vec![5, 1, 4]);
}
