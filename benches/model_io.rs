//! Parse and write a ~10 MB model.
//!
//! Two models of about the same size but opposite structure:
//! - `mlp-10mb`: a builder MLP (1024-1024-1024-512), a handful of large initializers;
//!   measures raw byte throughput of the protobuf layer.
//! - `ppocr-rec`: the real PP-OCRv4 recognizer (10.8 MB, 860 nodes, 420 `Constant`
//!   nodes holding the weights); measures per-message overhead on an exported model.
//!   Skipped (with a note on stderr) when the model cannot be obtained.
//!
//! `decode`/`encode` are in memory; `load`/`save` include the file system (`save` is the
//! atomic write: temp file, fsync, rename, fsync of the folder).
//!
//! Run: `cargo bench --bench model_io`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgepack::model::{builder, Model};

fn models() -> Vec<(&'static str, Model)> {
    let mut out = vec![("mlp-10mb", builder::mlp(&[1024, 1024, 1024, 512], 42))];
    match edgepack::zoo::ZooModel::PpOcrRec
        .path()
        .and_then(|p| Model::load(&p))
    {
        Ok(m) => out.push(("ppocr-rec", m)),
        Err(e) => eprintln!("model_io: skipping ppocr-rec: {e}"),
    }
    out
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("model_io");
    group.sample_size(20);
    for (name, model) in models() {
        let bytes = model.to_bytes();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        let path = dir.path().join(format!("{name}.onnx"));
        model.save(&path).expect("save");

        group.bench_with_input(BenchmarkId::new("decode", name), &bytes, |b, bytes| {
            b.iter(|| Model::from_bytes(bytes, Path::new(name)).expect("decodes"))
        });
        group.bench_with_input(BenchmarkId::new("encode", name), &model, |b, m| {
            b.iter(|| m.to_bytes())
        });
        group.bench_with_input(BenchmarkId::new("load", name), &path, |b, p| {
            b.iter(|| Model::load(p).expect("loads"))
        });
        let out = dir.path().join(format!("{name}-out.onnx"));
        group.bench_with_input(BenchmarkId::new("save", name), &model, |b, m| {
            b.iter(|| m.save(&out).expect("saves"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
