//! `edgepack run MODEL`: run a model once on given or generated inputs and write its outputs
//! as `.npy` files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use edgepack::bounds;
use edgepack::error::Error;
use edgepack::inputs::{self, InputSources, ShapeOverrides, ValueRanges};
use edgepack::model::Model;
use edgepack::runtime::{self, ExecutionContext, Provider, Session};
use edgepack::tensor::{format_shape, npy, DType, Tensor};

use super::isolation::{self, IsolationArgs};
use super::Outcome;

#[derive(Debug, Args, serde::Serialize, serde::Deserialize)]
pub struct RunArgs {
    /// The ONNX model, or a package/bundle (verified first, then its self-test is run).
    pub model: PathBuf,
    /// With a package or bundle: require a signature by this public key.
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    /// Input data: NAME=FILE (.npy, .pb TensorProto, or .npz holding NAME). Repeatable.
    #[arg(long = "input", value_name = "NAME=FILE")]
    pub input: Vec<String>,
    /// A folder of <input name>.npy files (or ONNX test-data input_<i>.pb), or one .npz.
    #[arg(long, value_name = "PATH")]
    pub inputs: Option<PathBuf>,
    /// Concrete shape for an input, e.g. x=1x3x224x224. Repeatable.
    #[arg(long, value_name = "NAME=SHAPE")]
    pub shape: Vec<String>,
    /// Value for a symbolic dim, e.g. batch=4; wins over a --shape for that dim.
    /// Repeatable.
    #[arg(long, value_name = "SYMBOL=N")]
    pub dim: Vec<String>,
    /// Range of generated values for an input, e.g. input_ids=0..999 or sr=16000..16000.
    /// Repeatable.
    #[arg(long = "input-range", value_name = "NAME=LO..HI")]
    pub input_range: Vec<String>,
    /// Seed for generated inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write each output as DIR/<output name>.npy (created if missing).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Also write the inputs actually used as DIR/<input name>.npy (even when the run
    /// fails: that is when they are needed).
    #[arg(long, value_name = "DIR")]
    pub save_inputs: Option<PathBuf>,
    /// Also write the graph ONNX Runtime runs here, after its optimizations (level `all`,
    /// layout transforms included): what this machine's ONNX Runtime makes of the model.
    #[arg(long, value_name = "FILE")]
    pub save_optimized: Option<PathBuf>,
    /// Intra-op threads (default: ONNX Runtime's choice).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Execution providers in order of preference, comma separated (cpu, cuda).
    #[arg(
        long = "ep",
        alias = "providers",
        value_name = "EP,...",
        default_value = "cpu"
    )]
    pub providers: String,
    /// ONNX Runtime session entry KEY=VALUE, on top of those the model records in its
    /// metadata (e.g. session.disable_quant_qdq=1). Repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub session_config: Vec<String>,
    #[command(flatten)]
    pub isolation: IsolationArgs,
}

/// Encoded `.npy` files, all prepared before any is written.
fn encode_all(
    tensors: &[(String, Tensor)],
    dir: &Path,
    what: &str,
) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::with_capacity(tensors.len());
    let mut owners: Vec<(PathBuf, &str)> = Vec::new();
    for (name, t) in tensors {
        // NumPy has no bfloat16; float32 holds every bfloat16 value exactly.
        let widened;
        let t = if t.dtype() == DType::BF16 {
            eprintln!(
                "note: {what} '{name}' is bfloat16; written as float32 (NumPy has no bfloat16)"
            );
            widened = Tensor::from_f32(t.shape().to_vec(), t.to_f32_vec())?;
            &widened
        } else {
            t
        };
        let path = dir.join(format!("{}.npy", inputs::sanitize_file_stem(name)));
        if let Some((_, other)) = owners.iter().find(|(p, _)| p == &path) {
            return Err(Error::usage(
                what,
                format!(
                    "'{other}' and '{name}' would both be written to {}",
                    path.display()
                ),
            )
            .into());
        }
        let bytes = npy::to_npy_bytes(t)
            .map_err(|e| Error::usage(format!("{what} '{name}'"), e.to_string()))?;
        owners.push((path.clone(), name));
        files.push((path, bytes));
    }
    Ok(files)
}

/// Write every file atomically; if one fails, remove the ones this call wrote.
fn write_all(dir: &Path, files: &[(PathBuf, Vec<u8>)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (i, (path, bytes)) in files.iter().enumerate() {
        if let Err(e) = edgepack::artifact::write_atomic(path, bytes) {
            for (p, _) in &files[..i] {
                let _ = std::fs::remove_file(p);
            }
            return Err(e.into());
        }
    }
    Ok(())
}

fn stats(t: &Tensor) -> (String, String, String) {
    let v = t.to_f64_vec();
    if v.is_empty() {
        return ("-".into(), "-".into(), "-".into());
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (
        format!("{min:.6}"),
        format!("{max:.6}"),
        format!("{mean:.6}"),
    )
}

pub fn run(ort_lib: Option<&Path>, args: RunArgs) -> anyhow::Result<Outcome> {
    if is_archive(&args.model) {
        return run_archive(ort_lib, args);
    }
    // Stage 1: everything about the user's files and flags, before loading ONNX Runtime.
    let model = Model::load(&args.model)?;
    let overrides = ShapeOverrides::from_args(&args.shape, &args.dim)?;
    let mut sources = InputSources {
        bundle: args.inputs.clone(),
        seed: args.seed,
        ranges: ValueRanges::from_args(&args.input_range)?,
        ..Default::default()
    };
    for a in &args.input {
        sources.add_input_arg(a)?;
    }
    let limits = args.isolation.limits()?;
    let mem = limits.memory_limit_bytes.unwrap_or(u64::MAX);
    let prepared =
        inputs::prepare_bounded(&inputs::model_inputs(&model), &overrides, &sources, mem)?;
    if !args.isolation.isolated_child {
        for n in &prepared.notes {
            eprintln!("note: {n}");
        }
    }
    let feeds = prepared.tensors;
    let shapes: BTreeMap<String, Vec<i64>> = feeds
        .iter()
        .map(|(n, t)| (n.clone(), t.shape().iter().map(|&d| d as i64).collect()))
        .collect();
    bounds::check_static_allocations(
        &model,
        &shapes,
        mem,
        &args.model,
        edgepack::setting::Setting::MemoryLimit,
    )?;
    let providers = args
        .providers
        .split(',')
        .map(|p| Provider::from_name(p.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(f) = &args.save_optimized {
        edgepack::artifact::check_writable(f)?;
    }
    // ONNX Runtime writes the optimized graph itself: into a private folder, then copied
    // to its place atomically once the session is built.
    let optimized_dir = match &args.save_optimized {
        Some(_) if args.isolation.isolated_child => {
            Some(tempfile::tempdir().map_err(|e| edgepack::Error::io("temporary folder", e))?)
        }
        _ => None,
    };
    let ctx = ExecutionContext {
        intra_op_threads: args.threads,
        execution_providers: providers,
        session_config: super::session_entries("--session-config", &args.session_config)?,
        optimized_model_path: optimized_dir
            .as_ref()
            .map(|d| d.path().join("optimized.onnx")),
        ..Default::default()
    };
    ctx.validate()?;

    // Stage 2: ONNX Runtime, in a child process the parent watches.
    if !args.isolation.isolated_child {
        let model = args.model.clone();
        return isolation::run_isolated(&model, ort_lib, isolation::Command::Run(args));
    }
    let info = runtime::ensure(ort_lib)?;
    let mut session = Session::from_path(&args.model, &ctx)?;
    if let (Some(file), Some(written)) = (&args.save_optimized, &ctx.optimized_model_path) {
        let bytes = std::fs::read(written).map_err(|e| edgepack::Error::io(written, e))?;
        edgepack::artifact::write_atomic(file, &bytes)?;
        eprintln!("optimized graph: {}", file.display());
    }
    eprintln!(
        "onnxruntime {} ({}, {}); provider: {}",
        info.version.as_deref().unwrap_or("?"),
        info.path.display(),
        info.source,
        session.providers().summary()
    );
    super::report_model_entries(&args.model, session.model_entries());
    let in_files = match &args.save_inputs {
        Some(dir) => encode_all(&feeds, dir, "input")?,
        None => Vec::new(),
    };
    let outputs = match session.run(&feeds) {
        Ok(o) => o,
        Err(e) => {
            // The inputs of a failed run are what a bug report needs.
            if let Some(dir) = &args.save_inputs {
                write_all(dir, &in_files)?;
                eprintln!("saved the inputs of the failed run in {}", dir.display());
            }
            return Err(e.into());
        }
    };

    // Stage 3: files, all encoded first so a bad output leaves nothing half-written.
    let out_files = match &args.output_dir {
        Some(dir) => encode_all(&outputs, dir, "output")?,
        None => Vec::new(),
    };
    if let Some(dir) = &args.save_inputs {
        write_all(dir, &in_files)?;
    }
    if let Some(dir) = &args.output_dir {
        write_all(dir, &out_files)?;
    }

    println!(
        "{:<6} {:<32} {:<9} {:<18} {:>14} {:>14} {:>14}",
        "kind", "name", "dtype", "shape", "min", "max", "mean"
    );
    for (kind, list) in [("input", &feeds), ("output", &outputs)] {
        for (name, t) in list {
            let (min, max, mean) = stats(t);
            println!(
                "{kind:<6} {name:<32} {:<9} {:<18} {min:>14} {max:>14} {mean:>14}",
                t.dtype().name(),
                format_shape(t.shape()),
            );
        }
    }
    for (p, _) in &out_files {
        eprintln!("wrote {}", p.display());
    }
    Ok(Outcome::Success)
}

/// Whether the file is a zip (a package or bundle) rather than an ONNX protobuf.
fn is_archive(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04"
}

/// `run BUNDLE`: what a device does on arrival. Verify the archive (files, hashes,
/// signature), then run its own self-test inputs with ONNX Runtime and compare against the
/// expected outputs it carries, through the same code as `verify --self-test`.
fn run_archive(ort_lib: Option<&Path>, args: RunArgs) -> anyhow::Result<Outcome> {
    if !args.input.is_empty() || args.inputs.is_some() || args.output_dir.is_some() {
        return Err(edgepack::Error::usage(
            args.model.display().to_string(),
            "a package or bundle runs its own self-test inputs; to run other inputs, \
             extract it with `edgepack verify --extract DIR` and run the model inside",
        )
        .into());
    }
    edgepack::bundle::device::check_archive_runs_here(&args.model)?;
    super::verify::run(
        ort_lib,
        super::verify::VerifyArgs {
            archive: args.model,
            key: args.key,
            json: false,
            extract: None,
            self_test: true,
            from_run: true,
        },
    )
}
