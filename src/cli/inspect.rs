//! `edgepack inspect MODEL [--json] [--shape NAME=DIMS]... [--dim SYMBOL=N]...`
//!
//! Everything about a model that can be known without running it (see
//! `edgepack::model::info`), as a table on stdout or, with `--json`, one JSON object.
//! A file that is not a loadable ONNX model is one error line naming it (exit 2).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use edgepack::model::info::ModelInfo;
use edgepack::model::{shape, Model};
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
}

/// Parse `--shape NAME=DIMS` values (the name may itself contain `=`; the dims may not).
pub fn parse_shapes(values: &[String]) -> Result<BTreeMap<String, Vec<i64>>, Error> {
    let mut out = BTreeMap::new();
    for v in values {
        let (name, dims) = v.rsplit_once('=').ok_or_else(|| {
            Error::usage(
                format!("--shape {v}"),
                "expected NAME=DIMS, e.g. x=1x3x224x224",
            )
        })?;
        let parsed = shape::parse_dims(dims).ok_or_else(|| {
            Error::usage(
                format!("--shape {v}"),
                "dims must be non-negative integers separated by 'x', e.g. 1x3x224x224",
            )
        })?;
        if out.insert(name.to_string(), parsed).is_some() {
            return Err(Error::usage(
                format!("--shape {v}"),
                format!("input '{name}' given twice"),
            ));
        }
    }
    Ok(out)
}

/// Parse `--dim SYMBOL=N` values.
pub fn parse_dims(values: &[String]) -> Result<BTreeMap<String, i64>, Error> {
    let mut out = BTreeMap::new();
    for v in values {
        let (sym, n) = v
            .rsplit_once('=')
            .ok_or_else(|| Error::usage(format!("--dim {v}"), "expected SYMBOL=N, e.g. batch=1"))?;
        let n: i64 =
            n.trim().parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                Error::usage(format!("--dim {v}"), "N must be a positive integer")
            })?;
        if out.insert(sym.to_string(), n).is_some() {
            return Err(Error::usage(
                format!("--dim {v}"),
                format!("symbol '{sym}' given twice"),
            ));
        }
    }
    Ok(out)
}

pub fn run(_ort_lib: &Option<PathBuf>, args: InspectArgs) -> anyhow::Result<Outcome> {
    let shapes = parse_shapes(&args.shapes)?;
    let dims = parse_dims(&args.dims)?;
    let model = Model::load(&args.model)?;
    let mut info = ModelInfo::collect(&model, &shapes, &dims)?;
    // The runtime layer answers whether ONNX Runtime loads the model; until it is wired
    // in here, say plainly that this was not checked rather than guess.
    info.set_runtime_not_checked("not checked (ONNX Runtime check not available in this build)");
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
