//! `edgepack inspect MODEL [--json] [--shape NAME=DIMS]... [--dim SYMBOL=N]...`
//!
//! Everything about a model that can be known without running it (see
//! `edgepack::model::info`), as a table on stdout or, with `--json`, one JSON object.
//! A file that is not a loadable ONNX model is one error line naming it (exit 2).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use edgepack::inputs::{self, ShapeOverrides};
use edgepack::model::info::ModelInfo;
use edgepack::model::Model;
use edgepack::runtime::{self, ExecutionContext, Session};
use edgepack::Error;

use super::Outcome;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ONNX model file.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Concrete shape of an input for the MACs/FLOPs estimate, e.g. `x=1x3x640x640`.
    #[arg(long = "shape", value_name = "NAME=DIMS")]
    pub shapes: Vec<String>,
    /// Value of a symbolic dimension for the estimate, e.g. `N=1`.
    #[arg(long = "dim", value_name = "SYMBOL=N")]
    pub dims: Vec<String>,
    /// Do not ask ONNX Runtime whether it loads the model (`onnxruntime_loads` is null).
    #[arg(long)]
    pub no_ort_check: bool,
}

/// `--shape`/`--dim` in the one grammar of `edgepack::inputs`, resolved as far as they
/// go (no batch default: the estimate is at the shapes given), as the i64 shapes the
/// compute estimate takes.
fn input_shapes(
    model: &Model,
    shapes: &[String],
    dims: &[String],
) -> Result<BTreeMap<String, Vec<i64>>, Error> {
    let o = ShapeOverrides::from_args(shapes, dims)?;
    let specs = inputs::model_inputs(model);
    let resolved = inputs::resolve_partial(&specs, &o).map_err(|e| match e {
        e @ (Error::Input { .. } | Error::Usage { .. }) => e,
        other => Error::file(model_path(model), other.to_string()),
    })?;
    Ok(resolved
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().map(|d| d as i64).collect()))
        .collect())
}

fn model_path(model: &Model) -> PathBuf {
    model.path.clone().unwrap_or_default()
}

pub fn run(ort_lib: &Option<PathBuf>, args: InspectArgs) -> anyhow::Result<Outcome> {
    // Our errors already say everything in one line; as plain messages, `{:#}` printing
    // does not append their `source()` a second time (e.g. the OS error of a missing file).
    let one_line = |e: Error| anyhow::anyhow!(e.to_string());
    let model = Model::load(&args.model).map_err(one_line)?;
    let shapes = input_shapes(&model, &args.shapes, &args.dims).map_err(one_line)?;
    let mut info = ModelInfo::collect(&model, &shapes).map_err(one_line)?;
    // Whether ONNX Runtime loads the model is asked of ONNX Runtime itself (a session is
    // created, nothing is run). No runtime installed is not an inspect error: the report
    // says it was not checked and why.
    if args.no_ort_check {
        info.set_runtime_not_checked("not checked (--no-ort-check)");
    } else {
        match runtime::ensure(ort_lib.as_deref()) {
            Err(e) => info.set_runtime_not_checked(format!("not checked: {e}")),
            Ok(rt) => {
                let loaded = Session::from_model(&model, &ExecutionContext::single_threaded())
                    .map(drop)
                    .map_err(|e| e.to_string());
                info.set_runtime_check(loaded, rt.version);
            }
        }
    }
    let text = if args.json {
        serde_json::to_string_pretty(&info)? + "\n"
    } else {
        info.to_table()
    };
    // A closed pipe (`inspect ... | head`) is the reader's choice, not an error.
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(Outcome::Success),
    }
}
