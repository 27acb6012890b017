//! The input model end to end: a multi-input int64 token model built in Rust (ids ->
//! Gather(embedding) and an attention mask), run and profiled with generated inputs and
//! with `.npz` samples of varying sequence length. What it protects: every command feeds
//! non-float, multi-input models through the one input model (roles, shapes from
//! samples, `--dim` sweeps), not only float images.

use std::io::Write;
use std::path::{Path, PathBuf};

use edgepack::model::builder;
use edgepack::profile::schema::Status;
use edgepack::tensor::{npy, DType, Tensor};

use crate::common::{
    edgepack, one_stderr_line, profile_cmd, quick_plan, read_profile, run_ok, runtime_available,
};

const VOCAB: i64 = 30;
const HIDDEN: i64 = 4;

fn token_model(dir: &Path) -> PathBuf {
    let p = dir.join("tokens.onnx");
    builder::token_model(VOCAB, HIDDEN).save(&p).unwrap();
    p
}

fn i64s(shape: &[usize], v: Vec<i64>) -> Tensor {
    Tensor::from_f64_values(DType::I64, shape, v.into_iter().map(|x| x as f64).collect()).unwrap()
}

/// An `.npz` of `(name, tensor)` members, as `numpy.savez` writes them.
pub(crate) fn write_npz(path: &Path, members: &[(&str, &Tensor)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (n, t) in members {
        z.start_file(format!("{n}.npy"), zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(&npy::to_npy_bytes(t).unwrap()).unwrap();
    }
    z.finish().unwrap();
}

/// A token sample: ids `1..=seq` (inside the vocabulary) and a mask with the last
/// position padded.
fn sample(path: &Path, batch: usize, seq: usize) {
    let n = batch * seq;
    let ids = i64s(
        &[batch, seq],
        (0..n as i64).map(|i| 1 + i % (VOCAB - 1)).collect(),
    );
    let mask = i64s(
        &[batch, seq],
        (0..n).map(|i| i64::from(i % seq != seq - 1)).collect(),
    );
    write_npz(path, &[("input_ids", &ids), ("attention_mask", &mask)]);
}

#[test]
fn run_generates_token_ids_inside_the_vocabulary_and_a_mask_of_ones() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let m = token_model(d.path());
    let saved = d.path().join("in");
    let out = d.path().join("out");
    let o = edgepack()
        .arg("run")
        .arg(&m)
        .args(["--dim", "sequence=8", "--seed", "3"])
        .arg("--save-inputs")
        .arg(&saved)
        .arg("--output-dir")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // The batch was not given: 1, and said so.
    assert!(
        stderr.contains("batch dim 'batch'") && stderr.contains("set to 1"),
        "{stderr}"
    );
    let ids = npy::read_npy(&saved.join("input_ids.npy")).unwrap();
    assert_eq!(ids.shape(), &[1, 8]);
    assert!(ids
        .to_f64_vec()
        .iter()
        .all(|&t| (0.0..VOCAB as f64).contains(&t)));
    let mask = npy::read_npy(&saved.join("attention_mask.npy")).unwrap();
    assert!(mask.to_f64_vec().iter().all(|&v| v == 1.0));
    let y = npy::read_npy(&out.join("y.npy")).unwrap();
    assert_eq!(y.shape(), &[1, 8, HIDDEN as usize]);
}

#[test]
fn run_reads_npz_samples_and_applies_the_mask() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let m = token_model(d.path());
    let s = d.path().join("s.npz");
    sample(&s, 2, 5);
    let out = d.path().join("out");
    run_ok(
        edgepack()
            .arg("run")
            .arg(&m)
            .arg("--inputs")
            .arg(&s)
            .arg("--output-dir")
            .arg(&out),
    );
    let y = npy::read_npy(&out.join("y.npy")).unwrap().to_f64_vec();
    assert_eq!(y.len(), 2 * 5 * HIDDEN as usize);
    // Padded positions (mask 0) are zero, the others are embedding rows (nonzero).
    for (pos, row) in y.chunks(HIDDEN as usize).enumerate() {
        let padded = pos % 5 == 4;
        assert_eq!(
            row.iter().all(|&v| v == 0.0),
            padded,
            "position {pos}: {row:?}"
        );
    }
}

#[test]
fn save_inputs_are_written_when_the_run_fails() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let m = token_model(d.path());
    let saved = d.path().join("in");
    // A range the user chose outside the table: ONNX Runtime's Gather refuses it.
    let o = edgepack()
        .arg("run")
        .arg(&m)
        .args(["--dim", "sequence=4", "--input-range", "input_ids=40..40"])
        .arg("--save-inputs")
        .arg(&saved)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let ids = npy::read_npy(&saved.join("input_ids.npy")).unwrap();
    assert_eq!(ids.to_f64_vec(), vec![40.0; 4]);
    assert!(saved.join("attention_mask.npy").is_file());
}

#[test]
fn profile_sweeps_a_symbolic_sequence_dim() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let m = token_model(d.path());
    let json = d.path().join("p.json");
    profile_cmd(&m, quick_plan(d.path()))
        .args(["--batch", "1", "--dim", "sequence=16,64"])
        .arg("--json")
        .arg(&json)
        .assert()
        .success();
    let p = read_profile(&json);
    let seqs: Vec<i64> = p.configs.iter().map(|c| c.dims["sequence"]).collect();
    assert_eq!(seqs, vec![16, 64]);
    assert!(p.configs.iter().all(|c| c.status == Status::Ok), "{p:?}");
    assert_eq!(p.configs[1].input_shapes["input_ids"], vec![1, 64]);
}

#[test]
fn profile_sweeps_the_sizes_a_sample_folder_shows() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let m = token_model(d.path());
    let samples = d.path().join("samples");
    std::fs::create_dir(&samples).unwrap();
    for (i, seq) in [4, 9, 4].iter().enumerate() {
        sample(&samples.join(format!("{i:03}.npz")), 1, *seq);
    }
    let json = d.path().join("p.json");
    profile_cmd(&m, quick_plan(d.path()))
        .arg("--inputs")
        .arg(&samples)
        .arg("--json")
        .arg(&json)
        .assert()
        .success();
    let p = read_profile(&json);
    let seqs: Vec<i64> = p.configs.iter().map(|c| c.dims["sequence"]).collect();
    assert_eq!(seqs, vec![4, 9], "one configuration per distinct shape");
    assert!(p.configs.iter().all(|c| c.status == Status::Ok), "{p:?}");
}

#[test]
fn integer_scalar_parameters_need_a_value() {
    // Silero VAD's `sr`: an int64 scalar sample rate. A made-up value only fails inside
    // the model; the user is asked for one instead.
    let d = tempfile::tempdir().unwrap();
    let mut b = builder::GraphBuilder::new("vad", 1, builder::WeightStorage::Initializer);
    let x = b.input(
        "x",
        edgepack::model::DataType::Float,
        &builder::fixed(&[1, 4]),
    );
    b.input("sr", edgepack::model::DataType::Int64, &[]);
    b.push(builder::node("id", "Identity", &[&x], &["y"], vec![]));
    b.output(
        "y",
        edgepack::model::DataType::Float,
        &builder::fixed(&[1, 4]),
    );
    let m = d.path().join("vad.onnx");
    b.into_model().save(&m).unwrap();
    let o = edgepack().arg("run").arg(&m).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let line = one_stderr_line(&o);
    assert!(
        line.contains("input 'sr'") && line.contains("--input-range sr=V..V"),
        "{line}"
    );
    if !runtime_available() {
        return;
    }
    edgepack()
        .arg("run")
        .arg(&m)
        .args(["--input-range", "sr=16000..16000"])
        .assert()
        .success()
        .stdout(predicates::str::contains("16000"));
}

#[test]
fn profile_of_a_package_takes_shapes_from_its_sample_inputs() {
    if !runtime_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let m = token_model(d.path());
    let samples = d.path().join("samples");
    std::fs::create_dir(&samples).unwrap();
    npy::write_npy(
        &samples.join("input_ids.npy"),
        &i64s(&[1, 6], vec![1, 2, 3, 4, 5, 6]),
    )
    .unwrap();
    npy::write_npy(
        &samples.join("attention_mask.npy"),
        &i64s(&[1, 6], vec![1; 6]),
    )
    .unwrap();
    let pkg = d.path().join("tokens.edgepkg");
    edgepack()
        .arg("package")
        .arg(&m)
        .arg("-o")
        .arg(&pkg)
        .arg("--sample-inputs")
        .arg(&samples)
        .assert()
        .success();
    let json = d.path().join("p.json");
    let o = profile_cmd(&pkg, quick_plan(d.path()))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("sample input set"), "{stderr}");
    let p = read_profile(&json);
    assert_eq!(p.configs.len(), 1);
    assert_eq!(p.configs[0].dims["sequence"], 6);
    assert_eq!(p.configs[0].status, Status::Ok);
}
