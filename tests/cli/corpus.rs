//! The bad-input corpus: hostile and broken files, generated here (no opaque blobs), each
//! driven through the real CLI. Every case must give exit status 2 and exactly one line on
//! stderr that names the file or input (no panic, no backtrace), must leave every file
//! outside the output folder untouched and must leave no partial output.
//!
//! The cases come from where the ONNX ecosystem has broken before: external-data path
//! traversal in all its forms, allocation bombs, deep subgraph nesting, initializers whose
//! data disagrees with their shape; from zip history: zip slip, symlinks, duplicate and
//! case-colliding names, lying sizes, the overlapping-entry bomb; and from our own inputs:
//! `.npy` files, shapes, TOML typos and profiles from another model.
//!
//! A readable archive whose *content* does not match its manifest or signature is a failed
//! verification, which by the project's exit-code convention is status 1, not 2; those
//! cases are in [`verification_failures_are_one_clear_line_and_status_1`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use edgepack::model::builder::{self, node, GraphBuilder, WeightStorage};
use edgepack::model::proto::{tensor_proto::DataLocation, StringStringEntryProto};
use edgepack::model::{attr, DataType, GraphProto, Model, TensorProto};
use edgepack::tensor::{npy, DType, Tensor};

use crate::common::{craft_zip, edgepack, entry, runtime_available, Entry};

/// One bad input: the folder it lives in, the command line, and what the error must name.
struct Case {
    name: String,
    dir: tempfile::TempDir,
    args: Vec<OsString>,
    /// Substrings the error line must contain (the file or input it names, the problem).
    expect: Vec<String>,
    /// Exit status: 2 for bad input; 1 for a failed verification.
    status: i32,
    /// Extra environment (the configurable limits).
    env: Vec<(String, String)>,
}

impl Case {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("m")).unwrap();
        // A file outside the model's folder that traversal attempts aim at.
        std::fs::write(dir.path().join("victim.bin"), vec![7u8; 4096]).unwrap();
        Case {
            name: name.into(),
            dir,
            args: Vec::new(),
            expect: Vec::new(),
            status: 2,
            env: Vec::new(),
        }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn m(&self) -> PathBuf {
        self.root().join("m")
    }
    fn out(&self) -> PathBuf {
        self.root().join("out")
    }
    fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, a: I) -> Self {
        self.args = a.into_iter().map(Into::into).collect();
        self
    }
    fn expect(mut self, s: &str) -> Self {
        self.expect.push(s.to_string());
        self
    }
    fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    fn status(mut self, s: i32) -> Self {
        self.status = s;
        self
    }
    /// `edgepack run MODEL --output-dir out` with extra arguments.
    fn run_model(self, model: &Path, extra: &[&str]) -> Self {
        let mut a: Vec<OsString> = vec!["run".into(), model.into()];
        a.extend(extra.iter().map(OsString::from));
        a.push("--output-dir".into());
        a.push(self.out().into());
        self.args(a)
    }
}

/// Every file below `root` (not following symlinks): path -> (kind, length, content hash).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (char, u64, u64)> {
    fn walk(root: &Path, dir: &Path, acc: &mut BTreeMap<PathBuf, (char, u64, u64)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if meta.file_type().is_symlink() {
                acc.insert(rel, ('l', 0, 0));
            } else if meta.is_dir() {
                acc.insert(rel, ('d', 0, 0));
                walk(root, &p, acc);
            } else {
                // Big (sparse) files: length only; reading them would defeat sparseness.
                let hash = if meta.len() < (64 << 20) {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    std::fs::read(&p).unwrap().hash(&mut h);
                    h.finish()
                } else {
                    0
                };
                acc.insert(rel, ('f', meta.len(), hash));
            }
        }
    }
    let mut acc = BTreeMap::new();
    walk(root, root, &mut acc);
    acc
}

/// Run one case and return what is wrong with the result (empty when it behaved).
fn check(case: &Case) -> Vec<String> {
    let before = snapshot(case.root());
    let out = edgepack()
        .args(&case.args)
        .envs(case.env.iter().map(|(k, v)| (k, v)))
        .current_dir(case.root())
        .env("RUST_BACKTRACE", "1")
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let after = snapshot(case.root());
    let mut problems = Vec::new();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if out.status.code() != Some(case.status) {
        problems.push(format!(
            "exit status {:?}, expected {}",
            out.status.code(),
            case.status
        ));
    }
    // A failed verification (status 1) is a result: it goes to stdout, stderr stays quiet.
    let shown = if case.status == 1 {
        if !lines.is_empty() {
            problems.push(format!("{} lines on stderr, expected none", lines.len()));
        }
        String::from_utf8_lossy(&out.stdout).to_string()
    } else {
        if lines.len() != 1 {
            problems.push(format!("{} lines on stderr, expected 1", lines.len()));
        }
        stderr.to_string()
    };
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        if stderr.contains(bad) {
            problems.push(format!("stderr mentions '{bad}'"));
        }
    }
    for e in &case.expect {
        if !shown.contains(e.as_str()) {
            problems.push(format!("the message does not name '{e}'"));
        }
    }
    // Nothing outside out/ changed; out/ holds nothing (no partial output).
    let outside = |m: &BTreeMap<PathBuf, (char, u64, u64)>| -> BTreeMap<PathBuf, (char, u64, u64)> {
        m.iter()
            .filter(|(p, _)| !p.starts_with("out"))
            .map(|(p, v)| (p.clone(), *v))
            .collect()
    };
    if outside(&before) != outside(&after) {
        let changed: Vec<String> = after
            .keys()
            .chain(before.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .map(|p| p.display().to_string())
            .collect();
        problems.push(format!("files outside out/ changed: {changed:?}"));
    }
    let in_out: Vec<String> = after
        .keys()
        .filter(|p| p.starts_with("out") && p.as_path() != Path::new("out"))
        .filter(|p| !before.contains_key(*p))
        .map(|p| p.display().to_string())
        .collect();
    if !in_out.is_empty() {
        problems.push(format!("partial output left: {in_out:?}"));
    }
    if problems.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "case '{}': {}\n    args: {:?}\n    stderr: {}\n    stdout: {}",
            case.name,
            problems.join("; "),
            case.args,
            stderr.trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )]
    }
}

/// Run every case (all of them, so one report lists every failure).
fn check_all(cases: Vec<Case>) {
    let n = cases.len();
    let failures: Vec<String> = cases.iter().flat_map(check).collect();
    assert!(
        failures.is_empty(),
        "{} of {n} cases misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Generators

fn save(model: &Model, path: &Path) {
    std::fs::write(path, model.to_bytes()).unwrap();
}

/// The MLP with its first initializer moved to external data at `location`, with the given
/// extra keys (offset, length). The data file itself is the caller's business.
fn external_model(location: &str, extra: &[(&str, &str)]) -> Model {
    let mut m = builder::mlp(&[4, 8, 3], 1);
    let t = &mut m.graph_mut().initializer[0];
    t.raw_data = None;
    t.float_data.clear();
    t.data_location = Some(DataLocation::External as i32);
    t.external_data = std::iter::once(("location", location))
        .chain(extra.iter().copied())
        .map(|(k, v)| StringStringEntryProto {
            key: k.into(),
            value: v.into(),
        })
        .collect();
    m
}

/// An external-data case: the model in m/, `location` as given.
fn ext_case(name: &str, location: &str, extra: &[(&str, &str)], expect: &str) -> Case {
    let c = Case::new(name);
    let model = c.m().join("model.onnx");
    save(&external_model(location, extra), &model);
    std::fs::write(c.m().join("w.bin"), vec![0u8; 128]).unwrap();
    c.run_model(&model, &[]).expect("model.onnx").expect(expect)
}

/// A model whose first initializer is replaced by `t`.
fn with_initializer(t: TensorProto) -> Model {
    let mut m = builder::mlp(&[4, 8, 3], 1);
    let name = m.graph().initializer[0].name.clone();
    m.graph_mut().initializer[0] = TensorProto { name, ..t };
    m
}

/// `y = ConstantOfShape([2^20, 2^20, 2^10])`: a 60-byte model that asks for 4 PiB.
fn constant_of_shape_bomb() -> Model {
    let mut b = GraphBuilder::new("bomb", 0, WeightStorage::Initializer);
    let shape = b.ints("shape", &[1 << 20, 1 << 20, 1 << 10]);
    let y = b.op("ConstantOfShape", &[&shape], vec![]);
    b.rename_output(&y, "y");
    b.output(
        "y",
        DataType::Float,
        &builder::fixed(&[1 << 20, 1 << 20, 1 << 10]),
    );
    b.into_model()
}

/// `depth` nested `If` nodes, each branch holding the next level.
fn nested_if(depth: usize) -> Model {
    fn level(d: usize) -> GraphProto {
        let out = format!("y{d}");
        let n = if d == 0 {
            node("id0", "Identity", &["x"], &[&out], vec![])
        } else {
            node(
                &format!("if{d}"),
                "If",
                &["cond"],
                &[&out],
                vec![
                    attr::graph("then_branch", level(d - 1)),
                    attr::graph("else_branch", level(d - 1)),
                ],
            )
        };
        GraphProto {
            name: format!("g{d}"),
            node: vec![n],
            output: vec![builder::value_info(
                &out,
                DataType::Float,
                &builder::fixed(&[1]),
            )],
            ..Default::default()
        }
    }
    // Only one branch nests further, so the file stays small (2 * depth nodes).
    fn chain(d: usize) -> GraphProto {
        let mut g = level(0);
        for i in 1..=d {
            let out = format!("y{i}");
            g = GraphProto {
                name: format!("g{i}"),
                node: vec![node(
                    &format!("if{i}"),
                    "If",
                    &["cond"],
                    &[&out],
                    vec![
                        attr::graph("then_branch", g),
                        attr::graph("else_branch", level(0)),
                    ],
                )],
                output: vec![builder::value_info(
                    &out,
                    DataType::Float,
                    &builder::fixed(&[1]),
                )],
                ..Default::default()
            };
        }
        g
    }
    let mut g = chain(depth);
    g.input = vec![
        builder::value_info("x", DataType::Float, &builder::fixed(&[1])),
        builder::value_info("cond", DataType::Bool, &[]),
    ];
    builder::model_from_graph(g, 17)
}

fn npy_with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

/// A case running the MLP (`x: float[1, 4]`) with `--input x=<file>` holding `bytes`.
fn input_case(name: &str, file: &str, bytes: &[u8], expect: &str) -> Case {
    let c = Case::new(name);
    let model = c.m().join("model.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &model);
    std::fs::write(c.m().join(file), bytes).unwrap();
    let arg = format!("x={}", c.m().join(file).display());
    c.run_model(&model, &["--input", &arg]).expect(expect)
}

/// `edgepack verify` on a hand-made archive.
fn zip_case(name: &str, bytes: &[u8], expect: &str) -> Case {
    let c = Case::new(name);
    let p = c.m().join("bad.edgepkg");
    std::fs::write(&p, bytes).unwrap();
    c.args([OsString::from("verify"), p.into()])
        .expect("bad.edgepkg")
        .expect(expect)
}

// ---------------------------------------------------------------------------------------
// Cases

/// External data may only name a regular file inside the model's own folder, within its
/// bounds; every form of escape the ONNX ecosystem has seen is refused before any read.
#[test]
fn external_data_traversal_forms_are_refused() {
    let mut cases = vec![
        ext_case("dotdot", "../victim.bin", &[], "'../victim.bin'"),
        ext_case(
            "sub-dotdot",
            "sub/../../victim.bin",
            &[],
            "sub/../../victim.bin",
        ),
        ext_case("dot-then-dotdot", "./../victim.bin", &[], "victim.bin"),
        ext_case("backslash-dotdot", "..\\victim.bin", &[], "victim.bin"),
        ext_case("empty-location", "", &[], "location"),
        ext_case("missing-file", "nope.bin", &[], "nope.bin"),
        ext_case(
            "offset-past-end",
            "w.bin",
            &[("offset", "4096")],
            "past the end",
        ),
        ext_case(
            "length-past-end",
            "w.bin",
            &[("offset", "64"), ("length", "128")],
            "past the end",
        ),
        ext_case(
            "length-overflow",
            "w.bin",
            &[("offset", "18446744073709551615"), ("length", "16")],
            "overflows",
        ),
        ext_case(
            "offset-not-a-number",
            "w.bin",
            &[("offset", "-1")],
            "offset",
        ),
        ext_case("folder-not-file", ".", &[], "regular file"),
    ];
    // Absolute path straight at the victim.
    let c = Case::new("absolute");
    let victim = c.root().join("victim.bin").display().to_string();
    let model = c.m().join("model.onnx");
    save(&external_model(&victim, &[]), &model);
    cases.push(c.run_model(&model, &[]).expect("absolute"));
    // A symlinked file inside the folder, pointing out.
    let c = ext_case("symlink-file", "link.bin", &[], "symlink");
    std::os::unix::fs::symlink(c.root().join("victim.bin"), c.m().join("link.bin")).unwrap();
    cases.push(c);
    // A symlinked folder inside the folder, pointing out.
    let c = ext_case("symlink-folder", "up/victim.bin", &[], "symlink");
    std::os::unix::fs::symlink(c.root(), c.m().join("up")).unwrap();
    cases.push(c);
    // A hardlink to a file outside (same filesystem: the tempdir).
    let c = ext_case("hardlink", "hard.bin", &[], "hardlink");
    std::fs::hard_link(c.root().join("victim.bin"), c.m().join("hard.bin")).unwrap();
    cases.push(c);
    check_all(cases);
}

/// Models that are not models, or that lie about their tensors, or that would take the
/// machine down: refused with one line before anything big is allocated.
#[test]
fn broken_and_hostile_models_are_refused() {
    let mut cases = Vec::new();
    let mk = |name: &str, bytes: &[u8], expect: &str| {
        let c = Case::new(name);
        let model = c.m().join("model.onnx");
        std::fs::write(&model, bytes).unwrap();
        c.run_model(&model, &[]).expect("model.onnx").expect(expect)
    };
    cases.push(mk("empty", b"", "empty"));
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    cases.push(mk("random-bytes", &random, "ONNX"));
    let good = builder::conv_net(3).to_bytes();
    cases.push(mk(
        "truncated-protobuf",
        &good[..good.len() / 2],
        "model.onnx",
    ));
    cases.push(mk(
        "truncated-after-graph",
        &good[..good.len() - 3],
        "model.onnx",
    ));
    // A valid protobuf that is no model: only an ir_version.
    cases.push(mk("no-graph", &[0x08, 0x07], "graph"));
    let mut m = builder::mlp(&[4, 8, 3], 1);
    m.graph_mut().initializer[0].dims = vec![1 << 40, 1 << 40, 1 << 40];
    let c = Case::new("dims-product-overflows");
    save(&m, &c.m().join("model.onnx"));
    let p = c.m().join("model.onnx");
    cases.push(
        c.run_model(&p, &[])
            .expect("model.onnx")
            .expect("fc0.weight"),
    );
    let mut m = builder::mlp(&[4, 8, 3], 1);
    m.graph_mut().initializer[0].dims = vec![8, -4];
    let c = Case::new("negative-dim");
    let p = c.m().join("model.onnx");
    save(&m, &p);
    cases.push(c.run_model(&p, &[]).expect("fc0.weight"));
    let t = TensorProto {
        dims: vec![8, 4],
        data_type: Some(DataType::Float as i32),
        raw_data: Some(vec![0u8; 100]),
        ..Default::default()
    };
    let c = Case::new("raw-data-size-mismatch");
    let p = c.m().join("model.onnx");
    save(&with_initializer(t), &p);
    cases.push(c.run_model(&p, &[]).expect("fc0.weight").expect("bytes"));
    let t = TensorProto {
        dims: vec![8, 4],
        data_type: Some(DataType::Float as i32),
        float_data: vec![1.0; 5],
        ..Default::default()
    };
    let c = Case::new("typed-data-count-mismatch");
    let p = c.m().join("model.onnx");
    save(&with_initializer(t), &p);
    cases.push(c.run_model(&p, &[]).expect("fc0.weight"));
    let c = Case::new("constant-of-shape-bomb");
    let p = c.m().join("model.onnx");
    save(&constant_of_shape_bomb(), &p);
    cases.push(
        c.run_model(&p, &[])
            .expect("ConstantOfShape")
            .expect("memory limit"),
    );
    let c = Case::new("nested-if-50");
    let p = c.m().join("model.onnx");
    save(&nested_if(50), &p);
    cases.push(c.run_model(&p, &[]).expect("model.onnx").expect("nest"));
    // Over 2 GiB: a sparse file, so the test needs no disk.
    let c = Case::new("over-2-gib");
    let p = c.m().join("model.onnx");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(2 * 1024 * 1024 * 1024 + 1).unwrap();
    cases.push(c.run_model(&p, &[]).expect("model.onnx").expect("2 GiB"));
    let c = Case::new("model-over-configured-limit");
    let p = c.m().join("model.onnx");
    save(&builder::conv_net(1), &p);
    cases.push(
        c.run_model(&p, &[])
            .env("EDGEPACK_MAX_MODEL_BYTES", "1000")
            .expect("model.onnx")
            .expect("EDGEPACK_MAX_MODEL_BYTES"),
    );
    let c = Case::new("malformed-limit-setting");
    let p = c.m().join("model.onnx");
    save(&builder::conv_net(1), &p);
    cases.push(
        c.run_model(&p, &[])
            .env("EDGEPACK_MAX_MODEL_BYTES", "many")
            .expect("EDGEPACK_MAX_MODEL_BYTES")
            .expect("'many'"),
    );
    let c = Case::new("model-is-a-folder");
    let p = c.m();
    cases.push(c.run_model(&p, &[]).expect("m"));
    let c = Case::new("model-missing");
    let p = c.m().join("nope.onnx");
    cases.push(c.run_model(&p, &[]).expect("nope.onnx"));
    // `package` reads models too, and must not leave a package behind.
    let c = Case::new("package-traversal");
    let p = c.m().join("model.onnx");
    save(&external_model("../victim.bin", &[]), &p);
    let o = c.out().join("x.edgepkg");
    std::fs::create_dir(c.out()).unwrap();
    cases.push(
        c.args([OsString::from("package"), p.into(), "-o".into(), o.into()])
            .expect("model.onnx"),
    );
    // `inspect` reads models too (without running them).
    for (name, bytes, expect) in [
        ("inspect-empty", Vec::new(), "empty"),
        (
            "inspect-truncated",
            good[..good.len() / 2].to_vec(),
            "model.onnx",
        ),
        ("inspect-nested-if", nested_if(50).to_bytes(), "nest"),
        (
            "inspect-dims-overflow",
            {
                let mut m = builder::mlp(&[4, 8, 3], 1);
                m.graph_mut().initializer[0].dims = vec![1 << 40, 1 << 40, 1 << 40];
                m.to_bytes()
            },
            "fc0.weight",
        ),
    ] {
        let c = Case::new(name);
        let p = c.m().join("model.onnx");
        std::fs::write(&p, bytes).unwrap();
        cases.push(
            c.args([OsString::from("inspect"), p.into(), "--json".into()])
                .expect("model.onnx")
                .expect(expect),
        );
    }
    let c = Case::new("inspect-traversal");
    let p = c.m().join("model.onnx");
    save(&external_model("../victim.bin", &[]), &p);
    cases.push(
        c.args([OsString::from("inspect"), p.into()])
            .expect("victim.bin"),
    );
    let c = Case::new("package-truncated");
    let p = c.m().join("model.onnx");
    std::fs::write(&p, &good[..good.len() / 3]).unwrap();
    let o = c.out().join("x.edgepkg");
    std::fs::create_dir(c.out()).unwrap();
    cases.push(
        c.args([OsString::from("package"), p.into(), "-o".into(), o.into()])
            .expect("model.onnx"),
    );
    check_all(cases);
}

/// Input tensors are checked against the file format and the model's declared shape and
/// dtype before anything is allocated for them.
#[test]
fn bad_input_tensors_are_refused() {
    let f32x4 = npy::to_npy_bytes(&Tensor::random(DType::F32, &[1, 4], 1)).unwrap();
    let i64x4 = npy::to_npy_bytes(&Tensor::random(DType::I64, &[1, 4], 1)).unwrap();
    let f32x5 = npy::to_npy_bytes(&Tensor::random(DType::F32, &[1, 5], 1)).unwrap();
    let mut cases =
        vec![
        input_case(
            "npy-unknown-dtype",
            "x.npy",
            &npy_with_header(
                "{'descr': '<c8', 'fortran_order': False, 'shape': (1, 4), }",
                &[0u8; 32],
            ),
            "x.npy",
        )
        .expect("<c8"),
        input_case(
            "npy-fortran-order",
            "x.npy",
            &npy_with_header(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 4), }",
                &[0u8; 16],
            ),
            "x.npy",
        )
        .expect("Fortran"),
        input_case("npy-truncated-data", "x.npy", &f32x4[..f32x4.len() - 3], "x.npy"),
        input_case("npy-truncated-header", "x.npy", &f32x4[..20], "x.npy"),
        input_case("npy-bad-magic", "x.npy", b"PK\x03\x04 not numpy at all", "x.npy"),
        input_case(
            "npy-shape-lies",
            "x.npy",
            &npy_with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 100000000000), }",
                &[0u8; 16],
            ),
            "x.npy",
        ),
        input_case("wrong-shape", "x.npy", &f32x5, "'x'").expect("axis 1"),
        input_case("wrong-dtype", "x.npy", &i64x4, "'x'").expect("int64"),
        input_case("pb-garbage", "x.pb", b"\xff\xff\xff\xff garbage", "x.pb"),
        input_case("npz-not-a-zip", "x.npz", b"not a zip", "x.npz"),
        input_case("unknown-extension", "x.txt", b"1 2 3 4", "x.txt"),
    ];
    let c = Case::new("unknown-input-name");
    let p = c.m().join("model.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &p);
    std::fs::write(c.m().join("x.npy"), &f32x4).unwrap();
    let arg = format!("nope={}", c.m().join("x.npy").display());
    cases.push(c.run_model(&p, &["--input", &arg]).expect("nope"));
    // A generated input whose shape would need an absurd allocation.
    let c = Case::new("shape-too-large");
    let p = c.m().join("model.onnx");
    save(&builder::symbolic_batch(1), &p);
    cases.push(
        c.run_model(&p, &["--dim", "N=4000000000000"])
            .expect("'x'")
            .expect("input limit"),
    );
    let c = Case::new("shape-contradicts-model");
    let p = c.m().join("model.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &p);
    cases.push(c.run_model(&p, &["--shape", "x=1x5"]).expect("'x'"));
    check_all(cases);
}

/// Archives from strangers: every classic zip attack is refused before anything is
/// extracted or trusted.
#[test]
fn hostile_archives_are_refused() {
    let mut symlink = entry("model.onnx", b"/etc/passwd");
    symlink.unix_mode = Some(0o120777);
    let mut lying = entry("model.onnx", &[1u8; 1000]);
    lying.declared_size = Some(10);
    let bomb: Vec<Entry> = (0..50)
        .map(|i| entry(&format!("f{i}.bin"), &[0u8; 4096]))
        .collect();
    let many: Vec<Entry> = (0..10_001).map(|i| entry(&format!("{i}"), b"")).collect();
    let few: Vec<Entry> = (0..20)
        .map(|i| entry(&format!("{i}"), &[0u8; 100]))
        .collect();
    let cases = vec![
        zip_case(
            "zip-slip",
            &craft_zip(&[entry("../evil.onnx", b"x")], false),
            "../evil.onnx",
        ),
        zip_case(
            "zip-slip-nested",
            &craft_zip(&[entry("a/../../evil", b"x")], false),
            "a/../../evil",
        ),
        zip_case(
            "absolute-entry",
            &craft_zip(&[entry("/tmp/evil", b"x")], false),
            "/tmp/evil",
        ),
        zip_case(
            "backslash-entry",
            &craft_zip(&[entry("..\\evil", b"x")], false),
            "evil",
        ),
        zip_case("symlink-entry", &craft_zip(&[symlink], false), "model.onnx"),
        zip_case(
            "duplicate-names",
            &craft_zip(&[entry("a.onnx", b"1"), entry("a.onnx", b"2")], false),
            "a.onnx",
        ),
        zip_case(
            "case-colliding-names",
            &craft_zip(
                &[entry("Model.onnx", b"1"), entry("model.ONNX", b"2")],
                false,
            ),
            "odel.",
        ),
        zip_case("lying-size", &craft_zip(&[lying], false), "model.onnx"),
        zip_case("overlapping-entries", &craft_zip(&bomb, true), "f1.bin"),
        zip_case("too-many-entries", &craft_zip(&many, false), "entries"),
        zip_case("not-a-zip", b"this is not a zip file at all", "zip"),
        zip_case("empty-archive-file", b"", "bad.edgepkg"),
        zip_case(
            "entries-over-configured-limit",
            &craft_zip(&few, false),
            "entries",
        )
        .env("EDGEPACK_MAX_ARCHIVE_ENTRIES", "10")
        .expect("EDGEPACK_MAX_ARCHIVE_ENTRIES"),
        zip_case(
            "size-over-configured-limit",
            &craft_zip(&few, false),
            "limit",
        )
        .env("EDGEPACK_MAX_EXTRACTED_BYTES", "1000")
        .expect("EDGEPACK_MAX_EXTRACTED_BYTES"),
    ];
    check_all(cases);
}

/// Gate and config inputs: a typo must never slip past a gate, and a baseline from another
/// model must not be compared silently.
#[test]
fn bad_config_and_profiles_are_refused() {
    let profile = edgepack::report::fixture::sample_profile();
    let write_profile = |dir: &Path, name: &str, p: &edgepack::profile::schema::Profile| {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(p).unwrap()).unwrap();
        path
    };
    let mut cases = Vec::new();
    // Policy with a typo'd key.
    let c = Case::new("policy-typo");
    let cur = write_profile(&c.m(), "cur.json", &profile);
    let pol = c.m().join("gate.toml");
    std::fs::write(&pol, "[defaults]\nmax_regresion = \"5%\"\n").unwrap();
    cases.push(
        c.args([
            OsString::from("gate"),
            "--current".into(),
            cur.into(),
            "--policy".into(),
            pol.into(),
        ])
        .expect("gate.toml")
        .expect("max_regresion"),
    );
    // Hardware target with a typo'd key.
    let c = Case::new("hardware-typo");
    let hw = c.m().join("hw");
    std::fs::create_dir(&hw).unwrap();
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware/raspberry-pi-4-4gb.toml"),
    )
    .unwrap();
    std::fs::write(hw.join("pi.toml"), good.replacen("cores", "coers", 1)).unwrap();
    cases.push(
        c.args([OsString::from("targets"), hw.into()])
            .expect("pi.toml")
            .expect("coers"),
    );
    // Baseline profile of another model.
    let c = Case::new("baseline-other-model");
    let cur = write_profile(&c.m(), "cur.json", &profile);
    let mut other = profile.clone();
    other.model.path = "other-model.onnx".into();
    other.model.sha256 = "0".repeat(64);
    let base = write_profile(&c.m(), "base.json", &other);
    cases.push(
        c.args([
            OsString::from("gate"),
            "--current".into(),
            cur.into(),
            "--baseline".into(),
            base.into(),
        ])
        .expect("other-model.onnx"),
    );
    // Profiles that are not profiles.
    let c = Case::new("profile-not-json");
    let p = c.m().join("cur.json");
    std::fs::write(&p, "{ truncated").unwrap();
    cases.push(
        c.args([OsString::from("gate"), "--current".into(), p.into()])
            .expect("cur.json"),
    );
    let c = Case::new("profile-other-schema");
    let p = c.m().join("cur.json");
    std::fs::write(&p, r#"{"schema": "edgepack.profile/99"}"#).unwrap();
    cases.push(
        c.args([OsString::from("gate"), "--current".into(), p.into()])
            .expect("cur.json")
            .expect("edgepack.profile/99"),
    );
    let c = Case::new("profile-unknown-field");
    let mut v = serde_json::to_value(&profile).unwrap();
    v["configs"][0]["p50_ms"] = serde_json::json!(3.0);
    let p = c.m().join("cur.json");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    cases.push(
        c.args([OsString::from("gate"), "--current".into(), p.into()])
            .expect("cur.json")
            .expect("p50_ms"),
    );
    // A device profile for a target no bundle in the folder is for (report).
    let c = Case::new("report-device-profile-unknown-target");
    let cur = write_profile(&c.m(), "cur.json", &profile);
    let dist = c.m().join("dist");
    std::fs::create_dir(&dist).unwrap();
    let manifest = serde_json::json!({"kind": "bundle", "target": {"name": "pi4",
        "variant": "fp32", "prediction": {"threads": 1, "batch": 1, "basis": "host p50 x 1"}}});
    std::fs::write(
        dist.join("cls-pi4.zip"),
        craft_zip(
            &[entry("manifest.json", manifest.to_string().as_bytes())],
            false,
        ),
    )
    .unwrap();
    let out = c.root().join("out").join("r.html");
    cases.push(
        c.args([
            OsString::from("report"),
            cur.clone().into(),
            dist.into(),
            "--device-profile".into(),
            format!("jetson={}", cur.display()).into(),
            "-o".into(),
            out.into(),
        ])
        .expect("--device-profile")
        .expect("jetson")
        .expect("pi4"),
    );
    check_all(cases);
}

/// Budgets typed without a unit (issue 17, bug 1): a bare `20` was 20 s (or 512 bytes), so
/// a budget meant as 20 ms always passed. Every duration, size and percentage flag, and
/// every budget in a policy file, needs its unit; a bare number is refused with the form.
#[test]
fn bare_numbers_in_budgets_are_refused() {
    let profile = edgepack::report::fixture::sample_profile();
    let mut cases = Vec::new();
    for (flag, value) in [
        ("--max-p95", "20"),
        ("--max-p50", "0.015"),
        ("--max-peak-memory", "512"),
        ("--max-size", "5"),
        ("--max-regression", "5"),
        ("--min-effect", "1"),
        ("--min-sqnr", "25"),
    ] {
        let c = Case::new(&format!("gate{flag}-bare"));
        let cur = c.m().join("cur.json");
        std::fs::write(&cur, serde_json::to_vec_pretty(&profile).unwrap()).unwrap();
        cases.push(
            c.args([
                OsString::from("gate"),
                "--current".into(),
                cur.into(),
                flag.into(),
                value.into(),
            ])
            .expect(flag)
            .expect("has no unit"),
        );
    }
    for (key, value) in [
        ("[metrics.p95_latency]\nmax", "20"),
        ("[metrics.peak_memory]\nmax", "512"),
        ("[metrics.p50_latency]\nmax_regression", "5"),
    ] {
        let c = Case::new("policy-bare-number");
        let cur = c.m().join("cur.json");
        std::fs::write(&cur, serde_json::to_vec_pretty(&profile).unwrap()).unwrap();
        let pol = c.m().join("gate.toml");
        std::fs::write(&pol, format!("{key} = {value}\n")).unwrap();
        cases.push(
            c.args([
                OsString::from("gate"),
                "--current".into(),
                cur.into(),
                "--policy".into(),
                pol.into(),
            ])
            .expect("gate.toml")
            .expect("has no unit"),
        );
    }
    for (flag, value) in [
        ("--latency-budget", "20"),
        ("--memory-limit", "512"),
        ("--timeout", "60"),
        ("--min-time", "1"),
        ("--max-time", "10"),
        ("--ci-half-width", "5"),
    ] {
        let c = Case::new(&format!("profile{flag}-bare"));
        let model = c.m().join("model.onnx");
        save(&builder::mlp(&[4, 8, 3], 1), &model);
        cases.push(
            c.args([
                OsString::from("profile"),
                model.into(),
                flag.into(),
                value.into(),
            ])
            .expect(flag)
            .expect("has no unit"),
        );
    }
    for (flag, value) in [("--timeout", "60"), ("--memory-limit", "512")] {
        let c = Case::new(&format!("run{flag}-bare"));
        let model = c.m().join("model.onnx");
        save(&builder::mlp(&[4, 8, 3], 1), &model);
        cases.push(
            c.run_model(&model, &[flag, value])
                .expect(flag)
                .expect("has no unit"),
        );
    }
    check_all(cases);
}

/// A package made by `edgepack package` from the MLP, with its self-test given (so no
/// runtime is needed), optionally signed with `key`.
fn make_package(dir: &Path, name: &str, seed: u64, key: Option<&Path>) -> PathBuf {
    let model_dir = dir.join(format!("src-{name}"));
    std::fs::create_dir_all(model_dir.join("samples/expected")).unwrap();
    let model = model_dir.join("model.onnx");
    save(&builder::mlp(&[4, 8, 3], seed), &model);
    npy::write_npy(
        &model_dir.join("samples/x.npy"),
        &Tensor::random(DType::F32, &[1, 4], 1),
    )
    .unwrap();
    npy::write_npy(
        &model_dir.join("samples/expected/y.npy"),
        &Tensor::random(DType::F32, &[1, 3], 2),
    )
    .unwrap();
    let out = dir.join(format!("{name}.edgepkg"));
    let mut cmd = edgepack();
    cmd.arg("package")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .arg("--sample-inputs")
        .arg(model_dir.join("samples"));
    if let Some(k) = key {
        cmd.arg("--sign").arg(k);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Readable archives whose content does not match what they declare: a failed
/// verification (status 1), reported on stdout naming the archive and every problem.
#[test]
fn verification_failures_are_one_clear_line_and_status_1() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("key");
    let o = edgepack()
        .arg("keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut cases = Vec::new();
    // A manifest whose file list does not match the archive: an extra file added.
    let c = Case::new("manifest-list-mismatch");
    let pkg = make_package(&c.m(), "a", 1, None);
    let mut a =
        edgepack::package::archive::read_zip(&std::fs::read(&pkg).unwrap(), &Default::default())
            .unwrap();
    a.entries.insert("extra.bin".into(), b"smuggled".to_vec());
    let bad = c.m().join("bad.edgepkg");
    std::fs::write(
        &bad,
        edgepack::package::archive::write_zip(&a.entries).unwrap(),
    )
    .unwrap();
    cases.push(
        c.args([OsString::from("verify"), bad.into()])
            .status(1)
            .expect("bad.edgepkg")
            .expect("extra.bin"),
    );
    // A valid signature over an older bundle, carried into a newer one.
    let c = Case::new("old-signature-new-bundle");
    let old = make_package(&c.m(), "old", 1, Some(&key));
    let new = make_package(&c.m(), "new", 2, Some(&key));
    let read = |p: &Path| {
        edgepack::package::archive::read_zip(&std::fs::read(p).unwrap(), &Default::default())
            .unwrap()
    };
    let old_a = read(&old);
    let mut new_a = read(&new);
    let sig = edgepack::package::manifest::SIGNATURE_FILE;
    new_a.entries.insert(sig.into(), old_a.entries[sig].clone());
    let bad = c.m().join("replayed.edgepkg");
    std::fs::write(
        &bad,
        edgepack::package::archive::write_zip(&new_a.entries).unwrap(),
    )
    .unwrap();
    let pubkey = edgepack::package::sign::public_key_path(&key);
    cases.push(
        c.args([
            OsString::from("verify"),
            bad.into(),
            "--key".into(),
            pubkey.into(),
        ])
        .status(1)
        .expect("replayed.edgepkg")
        .expect("signature"),
    );
    // One flipped byte in the model.
    let c = Case::new("tampered-model");
    let pkg = make_package(&c.m(), "t", 1, None);
    let mut a = read(&pkg);
    let model_entry = a
        .entries
        .keys()
        .find(|k| k.ends_with(".onnx"))
        .unwrap()
        .clone();
    let last = a.entries[&model_entry].len() - 1;
    a.entries.get_mut(&model_entry).unwrap()[last] ^= 1;
    let bad = c.m().join("tampered.edgepkg");
    std::fs::write(
        &bad,
        edgepack::package::archive::write_zip(&a.entries).unwrap(),
    )
    .unwrap();
    cases.push(
        c.args([OsString::from("verify"), bad.into()])
            .status(1)
            .expect("tampered.edgepkg")
            .expect(&model_entry),
    );
    check_all(cases);
}

/// `y = ConstantOfShape(s)` with the shape an *input*: nothing can size it statically, so
/// only the child's memory limit stops it.
fn runtime_bomb() -> Model {
    let mut b = GraphBuilder::new("runtime_bomb", 0, WeightStorage::Initializer);
    let s = b.input("s", DataType::Int64, &builder::fixed(&[3]));
    let y = b.op("ConstantOfShape", &[&s], vec![]);
    b.rename_output(&y, "y");
    b.output("y", DataType::Float, &[]);
    b.into_model()
}

/// A `Loop` with a trip count of 2^62 and no condition: it never ends in practice.
fn endless_loop() -> Model {
    let body = GraphProto {
        name: "body".into(),
        node: vec![
            node("c", "Identity", &["cond_in"], &["cond_out"], vec![]),
            node("v", "Identity", &["v_in"], &["v_out"], vec![]),
        ],
        input: vec![
            builder::value_info("i", DataType::Int64, &[]),
            builder::value_info("cond_in", DataType::Bool, &[]),
            builder::value_info("v_in", DataType::Float, &builder::fixed(&[1])),
        ],
        output: vec![
            builder::value_info("cond_out", DataType::Bool, &[]),
            builder::value_info("v_out", DataType::Float, &builder::fixed(&[1])),
        ],
        ..Default::default()
    };
    let g = GraphProto {
        name: "endless".into(),
        node: vec![node(
            "loop",
            "Loop",
            &["M", "", "x"],
            &["y"],
            vec![attr::graph("body", body)],
        )],
        initializer: vec![edgepack::model::tensor_data::scalar("M", 1i64 << 62)],
        input: vec![builder::value_info(
            "x",
            DataType::Float,
            &builder::fixed(&[1]),
        )],
        output: vec![builder::value_info(
            "y",
            DataType::Float,
            &builder::fixed(&[1]),
        )],
        ..Default::default()
    };
    builder::model_from_graph(g, 17)
}

/// What only the runtime can reveal: a model that exhausts memory or hangs inside ONNX
/// Runtime is stopped by the isolated child's limits and reported as one line; quantizing
/// an already quantized model is refused.
#[test]
fn runtime_hostile_models_are_stopped_by_the_child_limits() {
    if !runtime_available() {
        return;
    }
    let mut cases = Vec::new();
    let c = Case::new("runtime-memory-bomb");
    let p = c.m().join("model.onnx");
    save(&runtime_bomb(), &p);
    let s = c.m().join("s.npy");
    npy::write_npy(
        &s,
        &Tensor::new(
            vec![3],
            edgepack::tensor::TensorData::I64(vec![1 << 15, 1 << 15, 1 << 4]),
        )
        .unwrap(),
    )
    .unwrap();
    let arg = format!("s={}", s.display());
    cases.push(
        c.run_model(&p, &["--input", &arg, "--memory-limit", "512MiB"])
            .expect("model.onnx")
            .expect("memory limit"),
    );
    let c = Case::new("endless-loop");
    let p = c.m().join("model.onnx");
    save(&endless_loop(), &p);
    cases.push(
        c.run_model(&p, &["--timeout", "2s"])
            .expect("model.onnx")
            .expect("2 s timeout"),
    );
    // Quantizing an already quantized model: make an int8 model first.
    let c = Case::new("quantize-quantized");
    let src = c.m().join("mlp.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &src);
    let q = c.m().join("q.onnx");
    let o = edgepack()
        .args([
            OsString::from("quantize"),
            src.into(),
            "-o".into(),
            q.clone().into(),
            "--no-latency".into(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::create_dir(c.out()).unwrap();
    let out = c.out().join("qq.onnx");
    cases.push(
        c.args([
            OsString::from("quantize"),
            q.into(),
            "-o".into(),
            out.into(),
            "--no-latency".into(),
        ])
        .expect("q.onnx")
        .expect("already quantized"),
    );
    check_all(cases);
}

/// Re-saving a model whose external data `location` names a file next to the output:
/// our writer inlines the data, so `quantize` writes only its own output and never the
/// name the model chose.
#[test]
fn resaving_never_writes_to_the_external_data_location() {
    if !runtime_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir_all(&m).unwrap();
    let model = external_model("weights.bin", &[]);
    let w = builder::mlp(&[4, 8, 3], 1).graph().initializer[0].clone();
    std::fs::write(
        m.join("weights.bin"),
        w.raw_data.clone().unwrap_or_default(),
    )
    .unwrap();
    save(&model, &m.join("model.onnx"));
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("weights.bin"), b"precious").unwrap();
    let o = edgepack()
        .arg("quantize")
        .arg(m.join("model.onnx"))
        .arg("-o")
        .arg(out.join("q.onnx"))
        .arg("--no-latency")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(std::fs::read(out.join("weights.bin")).unwrap(), b"precious");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["q.onnx", "weights.bin"]);
    let q = Model::load(&out.join("q.onnx")).unwrap();
    assert!(!edgepack::model::external::has_external(&q.proto));
}

/// A bundle sized for another architecture cannot be profiled here: its figures would be
/// this machine's, merged back as the device's.
#[test]
fn bundle_for_another_architecture_is_refused() {
    let c = Case::new("bundle-wrong-arch");
    let pkg = make_package(&c.m(), "p", 1, None);
    let foreign = if cfg!(target_arch = "aarch64") {
        "x86-industrial-pc.toml"
    } else {
        "raspberry-pi-4-4gb.toml"
    };
    let dist = c.m().join("dist");
    let o = edgepack()
        .arg("bundle")
        .arg(&pkg)
        .arg("--target")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("hardware")
                .join(foreign),
        )
        .arg("-o")
        .arg(&dist)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let zip = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "zip"))
        .expect("a bundle zip");
    // Integrity is the same on every architecture: a foreign bundle verifies here.
    let v = edgepack().arg("verify").arg(&zip).output().unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let run = Case::new("bundle-wrong-arch-run")
        .args([OsString::from("run"), zip.clone().into()])
        .expect(".zip")
        .expect("this machine is");
    // The foreign architecture's executable is built by the cross script; without it,
    // --with-device-binary names the script instead of writing a bundle without it.
    let no_binary = Case::new("device-binary-missing");
    let no_binary_dir = no_binary.root().join("no-binaries");
    let no_binary = no_binary
        .args([
            OsString::from("bundle"),
            pkg.clone().into(),
            "--target".into(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("hardware")
                .join(foreign)
                .into(),
            "--with-device-binary".into(),
            "-o".into(),
            c.out().into(),
        ])
        .env("EDGEPACK_DEVICE_BINARIES", no_binary_dir.to_str().unwrap())
        .expect("--with-device-binary")
        .expect("scripts/cross-aarch64.sh");
    let case = c
        .args([OsString::from("profile"), zip.into()])
        .expect(".zip")
        .expect("this machine is");
    check_all(vec![case, run, no_binary]);
}

/// Quantizer and profiler settings that cannot work are refused before any work: one line
/// naming the flag or file, exit 2, nothing written.
#[test]
fn bad_quantizer_settings_and_samples_are_refused() {
    let mut cases = Vec::new();
    let quantize = |c: &Case, model: &Path, extra: &[&str]| -> Vec<OsString> {
        std::fs::create_dir_all(c.out()).unwrap();
        let mut a: Vec<OsString> = vec![
            "quantize".into(),
            model.into(),
            "-o".into(),
            c.out().join("q.onnx").into(),
            "--no-latency".into(),
        ];
        a.extend(extra.iter().map(OsString::from));
        a
    };
    let c = Case::new("int4-block-size");
    let m = c.m().join("mlp.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &m);
    let a = quantize(&c, &m, &["--mode", "int4-weight", "--block-size", "24"]);
    cases.push(c.args(a).expect("--block-size").expect("24"));
    let c = Case::new("weight-rounding");
    let m = c.m().join("mlp.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &m);
    let a = quantize(&c, &m, &["--weight-rounding", "brecq"]);
    cases.push(c.args(a).expect("--weight-rounding").expect("brecq"));
    // An .npz sample whose array is named after no input of the model.
    let c = Case::new("npz-wrong-input");
    let m = c.m().join("mlp.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &m);
    let calib = c.m().join("calib");
    std::fs::create_dir(&calib).unwrap();
    {
        let t = Tensor::from_f32(vec![1, 4], vec![0.5; 4]).unwrap();
        let f = std::fs::File::create(calib.join("s0.npz")).unwrap();
        let mut z = zip::ZipWriter::new(f);
        for name in ["x", "y"] {
            z.start_file(
                format!("{name}.npy"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            std::io::Write::write_all(&mut z, &npy::to_npy_bytes(&t).unwrap()).unwrap();
        }
        z.finish().unwrap();
    }
    let a = quantize(&c, &m, &["--calibration", calib.to_str().unwrap()]);
    cases.push(
        c.args(a)
            .expect("s0.npz")
            .expect("array 'y' names no input"),
    );
    // A model whose input is a string tensor: nothing to feed it.
    let c = Case::new("string-input");
    let m = c.m().join("strings.onnx");
    {
        let mut b = GraphBuilder::new("strings", 1, WeightStorage::Initializer);
        let x = b.input("text", DataType::String, &builder::fixed(&[1]));
        let y = b.op("Identity", &[&x], vec![]);
        b.rename_output(&y, "y");
        b.output("y", DataType::String, &builder::fixed(&[1]));
        save(&b.into_model(), &m);
    }
    let a = quantize(&c, &m, &["--mode", "int8-dynamic"]);
    cases.push(c.args(a).expect("'text'").expect("string"));
    // Transformer token batches (.npz, int64): one missing an input, one holding a token
    // id outside the vocabulary, one with float ids.
    let encoder = builder::bert_encoder(&builder::EncoderConfig::default(), 3);
    let token_npz = |path: &Path, members: &[(&str, Tensor)]| {
        let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, t) in members {
            z.start_file(
                format!("{name}.npy"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            std::io::Write::write_all(&mut z, &npy::to_npy_bytes(t).unwrap()).unwrap();
        }
        z.finish().unwrap();
    };
    let ids =
        |v: Vec<i64>| Tensor::new(vec![1, v.len()], edgepack::tensor::TensorData::I64(v)).unwrap();
    for (name, members, expect) in [
        (
            "npz-missing-input",
            vec![
                ("input_ids", ids(vec![1, 2, 3])),
                ("attention_mask", ids(vec![1, 1, 1])),
            ],
            "has no array for input 'token_type_ids'",
        ),
        (
            "token-outside-vocabulary",
            vec![
                ("input_ids", ids(vec![1, 100, 3])),
                ("attention_mask", ids(vec![1, 1, 1])),
                ("token_type_ids", ids(vec![0, 0, 0])),
            ],
            "index 100 is outside the table it indexes",
        ),
        (
            "token-ids-as-float",
            vec![
                (
                    "input_ids",
                    Tensor::from_f32(vec![1, 3], vec![1.0, 2.0, 3.0]).unwrap(),
                ),
                ("attention_mask", ids(vec![1, 1, 1])),
                ("token_type_ids", ids(vec![0, 0, 0])),
            ],
            "element type is float32 but the model expects int64",
        ),
    ] {
        let c = Case::new(name);
        let m = c.m().join("encoder.onnx");
        save(&encoder, &m);
        let calib = c.m().join("calib");
        std::fs::create_dir(&calib).unwrap();
        token_npz(&calib.join("000.npz"), &members);
        let a = quantize(
            &c,
            &m,
            &[
                "--mode",
                "int8-dynamic",
                "--calibration",
                calib.to_str().unwrap(),
            ],
        );
        cases.push(c.args(a).expect("000.npz").expect(expect));
    }
    // A profile session entry that is not KEY=VALUE.
    cases.push(bad_session_config_case("session-config", "profile"));
    check_all(cases);
}

/// Token inputs that contradict the model: each is refused before ONNX Runtime sees it,
/// naming the file, the input, what the model expects and what was found.
#[test]
fn bad_token_inputs_are_refused() {
    use crate::inputs::write_npz;
    let i64s = |shape: &[usize], v: &[f64]| {
        Tensor::from_f64_values(DType::I64, shape, v.to_vec()).unwrap()
    };
    let ids = i64s(&[1, 4], &[1.0, 2.0, 3.0, 4.0]);
    let mask = i64s(&[1, 4], &[1.0; 4]);
    let f_ids = Tensor::random(DType::F32, &[1, 4], 1);
    let rank1 = i64s(&[4], &[1.0, 2.0, 3.0, 4.0]);
    let oov = i64s(&[1, 4], &[1.0, 2.0, 30.0, 4.0]);
    let token_case = |name: &str, members: &[(&str, &Tensor)], flags: &[&str]| {
        let c = Case::new(name);
        let p = c.m().join("model.onnx");
        save(&builder::token_model(30, 4), &p);
        let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        if !members.is_empty() {
            let s = c.m().join("s.npz");
            write_npz(&s, members);
            args.push("--inputs".into());
            args.push(s.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        c.run_model(&p, &args)
    };
    let mut cases = vec![
        token_case(
            "sample-dtype-contradicts-model",
            &[("input_ids", &f_ids), ("attention_mask", &mask)],
            &[],
        )
        .expect("s.npz")
        .expect("'input_ids'")
        .expect("float32")
        .expect("int64"),
        token_case(
            "sample-shape-contradicts-model",
            &[("input_ids", &rank1), ("attention_mask", &mask)],
            &[],
        )
        .expect("s.npz")
        .expect("'input_ids'")
        .expect("rank 1")
        .expect("rank 2"),
        token_case("npz-missing-an-input", &[("input_ids", &ids)], &[])
            .expect("s.npz")
            .expect("'attention_mask'"),
        token_case(
            "npz-unknown-array",
            &[
                ("input_ids", &ids),
                ("attention_mask", &mask),
                ("extra", &ids),
            ],
            &[],
        )
        .expect("s.npz")
        .expect("'extra'"),
        token_case(
            "token-ids-outside-the-vocabulary",
            &[("input_ids", &oov), ("attention_mask", &mask)],
            &[],
        )
        .expect("s.npz")
        .expect("'input_ids'")
        .expect("index 30")
        .expect("0..30"),
        token_case(
            "input-range-outside-the-dtype",
            &[],
            &[
                "--dim",
                "sequence=4",
                "--input-range",
                "attention_mask=0..1e30",
            ],
        )
        .expect("'attention_mask'")
        .expect("outside the type's range"),
        token_case(
            "input-range-lo-above-hi",
            &[],
            &["--dim", "sequence=4", "--input-range", "input_ids=5..1"],
        )
        .expect("--input-range")
        .expect("above"),
        token_case("zero-sized-shape", &[], &["--shape", "input_ids=0x4"])
            .expect("--shape")
            .expect(">= 1"),
        token_case("unresolved-sequence-dim", &[], &[])
            .expect("'sequence'")
            .expect("--dim sequence=N"),
    ];
    // A string input cannot be generated or quantized.
    let c = Case::new("string-input-to-quantize");
    let p = c.m().join("model.onnx");
    let mut b = GraphBuilder::new("text", 1, WeightStorage::Initializer);
    let t = b.input("text", DataType::String, &builder::fixed(&[1]));
    let x = b.input("x", DataType::Float, &builder::fixed(&[1, 4]));
    let w = b.weight("w", &[4, 4], -1.0, 1.0);
    b.push(node("mm", "MatMul", &[&x, &w], &["y"], vec![]));
    b.push(node("id", "Identity", &[&t], &["t2"], vec![]));
    b.output("y", DataType::Float, &builder::fixed(&[1, 4]));
    b.output("t2", DataType::String, &builder::fixed(&[1]));
    save(&b.into_model(), &p);
    std::fs::create_dir(c.out()).unwrap();
    let q = c.out().join("q.onnx");
    cases.push(
        c.args([
            OsString::from("quantize"),
            p.into(),
            "-o".into(),
            q.into(),
            "--mode".into(),
            "int8-dynamic".into(),
        ])
        .expect("'text'")
        .expect("string"),
    );
    check_all(cases);
}

/// Issue 17: outputs checked before measuring, partial profiles, a quantizer told to
/// overwrite its own input, malformed session entries.
#[test]
fn issue_17_inputs_are_refused_before_any_work() {
    let mut cases = Vec::new();
    // An interrupted profile can never pass a gate.
    let c = Case::new("interrupted-profile");
    let mut p = edgepack::report::fixture::sample_profile();
    p.interrupted = true;
    p.not_run = vec!["ep=cpu threads=2 batch=8".into()];
    let cur = c.m().join("cur.json");
    std::fs::write(&cur, serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    cases.push(
        c.args([
            OsString::from("gate"),
            "--current".into(),
            cur.into(),
            "--max-p95".into(),
            "1s".into(),
        ])
        .expect("incomplete: the profile was interrupted")
        .expect("ep=cpu threads=2 batch=8"),
    );
    // gate --remeasure --save-profiles into a missing folder fails before measuring.
    let c = Case::new("remeasure-save-profiles");
    let m = c.m().join("mlp.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &m);
    let missing = c.root().join("no-such-folder");
    cases.push(
        c.args([
            OsString::from("gate"),
            "--remeasure".into(),
            "--baseline-model".into(),
            m.clone().into(),
            "--model".into(),
            m.into(),
            "--save-profiles".into(),
            missing.into(),
        ])
        .expect("no-such-folder")
        .expect("does not exist"),
    );
    // quantize M -o M would overwrite its own input.
    let c = Case::new("quantize-onto-input");
    let m = c.m().join("mlp.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &m);
    cases.push(
        c.args([
            OsString::from("quantize"),
            m.clone().into(),
            "-o".into(),
            m.into(),
        ])
        .expect("mlp.onnx")
        .expect("is the input model"),
    );
    // run --session-config that is not KEY=VALUE.
    cases.push(bad_session_config_case("run-session-config", "run"));
    check_all(cases);
}

/// `edgepack COMMAND MLP --session-config session.disable_quant_qdq` (no `=VALUE`): refused
/// naming the flag and the form it wants.
fn bad_session_config_case(name: &str, command: &str) -> Case {
    let c = Case::new(name);
    let m = c.m().join("mlp.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &m);
    c.args([
        OsString::from(command),
        m.into(),
        "--session-config".into(),
        "session.disable_quant_qdq".into(),
    ])
    .expect("--session-config")
    .expect("KEY=VALUE")
}

/// A sealed device profile (as `edgepack probe` writes it) claiming ONNX Runtime `ort`.
fn device_profile_text(ort: &str) -> String {
    use edgepack::hardware::device::*;
    let mut p = DeviceProfile {
        schema: DEVICE_SCHEMA.into(),
        edgepack_version: "0".into(),
        created_unix_s: 0,
        onnxruntime_version: ort.into(),
        host: Default::default(),
        probe_wall_s: 1.0,
        threads: vec![ThreadProfile {
            threads: 1,
            run_overhead_s: 1e-6,
            dispatch_overhead_s: 1e-7,
            kernels: vec![KernelFit {
                class: KernelClass::Elementwise,
                dtype: KernelDtype::Fp32,
                unit: WorkUnit::Bytes,
                points: vec![KernelPoint {
                    name: "add".into(),
                    work: 1e6,
                    time_s: 1e-4,
                    p50_ci_rel: 0.01,
                }],
                fixed_s: 0.0,
                s_per_work: 1e-10,
            }],
        }],
        memory: MemoryCost {
            fixed_bytes: 1 << 20,
            weight_factor: 1.0,
            activation_factor: 1.0,
            weight_factor_session_create: None,
            conv_weight_factor: None,
            conv_weight_factor_session_create: None,
            subgraph_weight_factor: None,
            folded_conv_weight_factor: None,
            constant_folding_factor: None,
            baseline_bytes: None,
            baseline_int8_bytes: None,
        },
        derivation: None,
        content_sha256: String::new(),
    };
    String::from_utf8(p.to_json_bytes()).unwrap()
}

#[test]
fn bad_device_profiles_are_refused() {
    let good = device_profile_text("0.0.1");
    let predict_case = |name: &str, text: &str| {
        let c = Case::new(name);
        let model = c.m().join("net.onnx");
        save(&builder::conv_net(1), &model);
        let dev = c.m().join("dev.json");
        std::fs::write(&dev, text).unwrap();
        let args: Vec<OsString> = vec![
            "predict".into(),
            model.into(),
            "--device".into(),
            dev.into(),
        ];
        c.args(args).expect("dev.json")
    };
    let mut cases = vec![
        predict_case("device-truncated", &good[..good.len() / 2]).expect("truncated"),
        predict_case(
            "device-other-schema",
            &good.replace("edgepack.device/1", "edgepack.device/2"),
        )
        .expect("edgepack.device/2"),
        predict_case(
            "device-hand-edited",
            &good.replace("\"probe_wall_s\": 1.0", "\"probe_wall_s\": 2.0"),
        )
        .expect("edited"),
        predict_case(
            "device-unknown-field",
            &good.replace("\"probe_wall_s\"", "\"probe_wall\""),
        )
        .expect("probe_wall"),
        predict_case(
            "device-not-a-profile",
            r#"{"schema": "edgepack.profile/1"}"#,
        )
        .expect("edgepack.profile/1"),
    ];
    if runtime_available() {
        cases.push(
            predict_case("device-other-runtime", &good).expect("probed with ONNX Runtime 0.0.1"),
        );
    }
    // A target naming a device profile that does not exist, or one that was edited.
    let target_case = |name: &str, profile: Option<&str>| {
        let c = Case::new(name);
        let hw = c.m().join("hw");
        std::fs::create_dir(&hw).unwrap();
        let good = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware/raspberry-pi-4-4gb.toml"),
        )
        .unwrap();
        if let Some(text) = profile {
            std::fs::write(hw.join("pi4.json"), text).unwrap();
        }
        std::fs::write(
            hw.join("pi.toml"),
            // In place of the built-in Pi's own (derived) profile.
            good.replace(
                "device_profile = \"builtin:raspberry-pi-4-4gb.device.json\"",
                "device_profile = \"pi4.json\"",
            ),
        )
        .unwrap();
        c.args([OsString::from("targets"), hw.into()])
            .expect("pi.toml")
            .expect("pi4.json")
    };
    cases.push(target_case("target-device-profile-missing", None).expect("does not exist"));
    // A device profile passed where a measured profile goes.
    let c = Case::new("device-profile-as-measured-profile");
    let pkg = make_package(&c.m(), "p", 1, None);
    let dev = c.m().join("dev.json");
    std::fs::write(&dev, &good).unwrap();
    let mut arg = OsString::from("raspberry-pi-4-4gb=");
    arg.push(&dev);
    let out = c.out();
    cases.push(
        c.args([
            OsString::from("bundle"),
            pkg.into(),
            "--target".into(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("hardware/raspberry-pi-4-4gb.toml")
                .into(),
            "--device-profile".into(),
            arg,
            "-o".into(),
            out.into(),
        ])
        .expect("dev.json")
        .expect("device_profile instead"),
    );
    // Probe settings refused before a minute of measuring.
    for (name, args, expect) in [
        ("probe-threads-zero", vec!["--threads", "0"], "--threads"),
        ("probe-threads-twice", vec!["--threads", "1,1"], "twice"),
    ] {
        let c = Case::new(name);
        let mut a: Vec<OsString> = vec!["probe".into(), "--tiny".into(), "-o".into()];
        a.push(c.out().join("d.json").into());
        a.extend(args.into_iter().map(OsString::from));
        cases.push(c.args(a).expect(expect));
    }
    let c = Case::new("probe-output-is-a-folder");
    let folder = c.m().join("profiles");
    std::fs::create_dir_all(&folder).unwrap();
    cases.push(
        c.args([
            OsString::from("probe"),
            "--tiny".into(),
            "-o".into(),
            folder.into(),
        ])
        .expect("it is a folder"),
    );
    if runtime_available() {
        // A target whose probed profile is from another runtime, beside a good target:
        // refused before either is bundled (no zip of the good one is left behind).
        let c = Case::new("bundle-target-other-runtime");
        let pkg = make_package(&c.m(), "p", 1, None);
        let hw = c.m().join("hw");
        std::fs::create_dir(&hw).unwrap();
        std::fs::write(hw.join("old.json"), &good).unwrap();
        let pi = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware/raspberry-pi-4-4gb.toml"),
        )
        .unwrap();
        std::fs::write(hw.join("pi.toml"), &pi).unwrap();
        std::fs::write(
            hw.join("old.toml"),
            pi.replace("name = \"raspberry-pi-4-4gb\"", "name = \"old-probe\"")
                .replace(
                    "device_profile = \"builtin:raspberry-pi-4-4gb.device.json\"",
                    "device_profile = \"old.json\"",
                ),
        )
        .unwrap();
        let args: Vec<OsString> = vec![
            "bundle".into(),
            pkg.into(),
            "--target".into(),
            hw.join("pi.toml").into(),
            "--target".into(),
            hw.join("old.toml").into(),
            "-o".into(),
            c.out().into(),
        ];
        cases.push(
            c.args(args)
                .expect("old.json")
                .expect("target 'old-probe'")
                .expect("probed with ONNX Runtime 0.0.1"),
        );
    }
    cases.push(
        target_case(
            "target-device-profile-edited",
            Some(&good.replace("\"edgepack_version\": \"0\"", "\"edgepack_version\": \"9\"")),
        )
        .expect("edited"),
    );
    check_all(cases);
}

/// Accuracy targets and task metrics (issue 16): a target outside the grammar, and a task
/// metric that does not fit the model's outputs, are refused with one line naming the flag
/// or the output, exit 2, and no model written.
#[test]
fn bad_accuracy_targets_and_task_metrics_are_refused() {
    let mut cases = Vec::new();
    let quantize = |c: &Case, model: &Path, extra: &[&str]| -> Vec<OsString> {
        std::fs::create_dir_all(c.out()).unwrap();
        let mut a: Vec<OsString> = vec![
            "quantize".into(),
            model.into(),
            "-o".into(),
            c.out().join("q.onnx").into(),
            "--no-latency".into(),
        ];
        a.extend(extra.iter().map(OsString::from));
        a
    };
    for (name, target, expect) in [
        (
            "target-cer-no-percent",
            "cer<=0.5",
            "a percentage such as 0.5%",
        ),
        ("target-cer-floor", "cer>=0.5%", "cer is a ceiling"),
        (
            "target-mask-no-threshold",
            "mask-iou>=0.98",
            "binarisation threshold",
        ),
        (
            "target-mask-bad-threshold",
            "mask-iou>=0.98@high",
            "'high' is not a threshold",
        ),
        ("target-unknown-metric", "wer<=1%", "unknown metric 'wer'"),
        ("target-sqnr-no-unit", "sqnr>=25", "unit"),
        ("target-top1-over-100", "top1>=101%", "between 0 and 1"),
    ] {
        let c = Case::new(name);
        let m = c.m().join("mlp.onnx");
        save(&builder::mlp(&[4, 8, 3], 1), &m);
        let a = quantize(&c, &m, &["--accuracy-target", target]);
        cases.push(c.args(a).expect("--accuracy-target").expect(expect));
    }
    let c = Case::new("target-two-mask-thresholds");
    let m = c.m().join("mlp.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &m);
    let a = quantize(
        &c,
        &m,
        &[
            "--accuracy-target",
            "mask-iou>=0.9@0.3",
            "--accuracy-target",
            "mask-iou>=0.9@0.5",
        ],
    );
    cases.push(c.args(a).expect("two mask thresholds"));
    // compare --task outside its grammar.
    let c = Case::new("compare-task-mask-no-threshold");
    let m = c.m().join("mlp.onnx");
    save(&builder::mlp(&[4, 8, 3], 1), &m);
    let inputs = c.m().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let a: Vec<OsString> = vec![
        "compare".into(),
        m.clone().into(),
        m.into(),
        "--inputs".into(),
        inputs.into(),
        "--task".into(),
        "mask".into(),
    ];
    cases.push(c.args(a).expect("--task").expect("mask@0.3"));
    if runtime_available() {
        // CTC on a 2-D output: the metric does not apply, and the error names the output,
        // for a plain mode, for auto (checked before any candidate runs) and for compare.
        for (name, mode) in [("ctc-on-2d-int8", "int8"), ("ctc-on-2d-auto", "auto")] {
            let c = Case::new(name);
            let m = c.m().join("mlp.onnx");
            save(&builder::mlp(&[4, 8, 3], 1), &m);
            let a = quantize(&c, &m, &["--mode", mode, "--accuracy-target", "cer<=1%"]);
            cases.push(
                c.args(a)
                    .expect("output 'y'")
                    .expect("[lines, time, classes]"),
            );
        }
        let c = Case::new("compare-ctc-on-2d");
        let m = c.m().join("mlp.onnx");
        save(&builder::mlp(&[4, 8, 3], 1), &m);
        let inputs = c.m().join("inputs");
        std::fs::create_dir(&inputs).unwrap();
        let x = Tensor::from_f32(vec![1, 4], vec![0.5, -1.0, 2.0, 0.25]).unwrap();
        std::fs::write(inputs.join("0.npy"), npy::to_npy_bytes(&x).unwrap()).unwrap();
        let a: Vec<OsString> = vec![
            "compare".into(),
            m.clone().into(),
            m.into(),
            "--inputs".into(),
            inputs.into(),
            "--no-latency".into(),
            "--task".into(),
            "ctc".into(),
        ];
        cases.push(c.args(a).expect("output 'y'").expect("ctc"));
    }
    check_all(cases);
}

/// Flags of `build` that the input model reads (`--dim`, `--input-range`), a variant the
/// build does not offer, and an int8-dynamic request on a model with nothing dynamic to
/// quantize (not in the graph, not in a subgraph, not after constant folding): one line,
/// exit 2, nothing written.
#[test]
fn bad_build_input_flags_and_dynamic_requests_are_refused() {
    let mut cases = Vec::new();
    let build = |c: &Case, extra: &[&str]| -> Vec<OsString> {
        let m = c.m().join("mlp.onnx");
        save(&builder::mlp(&[4, 8, 3], 1), &m);
        std::fs::create_dir_all(c.out()).unwrap();
        let mut a: Vec<OsString> = vec![
            "build".into(),
            m.into(),
            "-o".into(),
            c.out().join("b").into(),
            "--target".into(),
            "host".into(),
        ];
        a.extend(extra.iter().map(OsString::from));
        a
    };
    let c = Case::new("build-input-range-reversed");
    let a = build(&c, &["--input-range", "x=5..1"]);
    cases.push(c.args(a).expect("--input-range").expect("x=5..1"));
    let c = Case::new("build-dim-not-a-number");
    let a = build(&c, &["--dim", "batch=two"]);
    cases.push(c.args(a).expect("--dim").expect("two"));
    let c = Case::new("build-unknown-variant");
    let a = build(&c, &["--variants", "int8-static"]);
    cases.push(
        c.args(a)
            .expect("--variants")
            .expect("int8-static")
            .expect("int8-dynamic"),
    );
    if runtime_available() {
        // Relu only: no MatMul, no LSTM, nothing ORT's constant folding could reveal.
        let c = Case::new("dynamic-nothing-to-quantize");
        let m = c.m().join("relu.onnx");
        let mut b = GraphBuilder::new("relu", 0, WeightStorage::Initializer);
        let x = b.input("x", DataType::Float, &builder::fixed(&[1, 4]));
        let y = b.op("Relu", &[&x], vec![]);
        b.rename_output(&y, "y");
        b.output("y", DataType::Float, &builder::fixed(&[1, 4]));
        save(&b.into_model(), &m);
        std::fs::create_dir_all(c.out()).unwrap();
        let a: Vec<OsString> = vec![
            "quantize".into(),
            m.clone().into(),
            "-o".into(),
            c.out().join("q.onnx").into(),
            "--mode".into(),
            "int8-dynamic".into(),
            "--no-latency".into(),
        ];
        cases.push(
            c.args(a)
                .expect("relu.onnx")
                .expect("nothing to quantize dynamically"),
        );
    }
    check_all(cases);
}
