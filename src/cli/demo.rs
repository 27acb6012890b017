//! `edgepack demo`: the README's main job, on a real model.

use std::path::PathBuf;

use clap::Args;

use super::Outcome;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which PP-OCR model to use (ppocr-det, ppocr-cls, ppocr-rec).
    #[arg(long, default_value = "ppocr-det")]
    pub model: String,
}

pub fn run(_ort_lib: &Option<PathBuf>, args: DemoArgs) -> anyhow::Result<Outcome> {
    let model = edgepack::zoo::ZooModel::from_name(&args.model)?;
    let path = model.path()?;
    eprintln!("model: {}", path.display());
    Ok(Outcome::Success)
}
