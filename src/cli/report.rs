//! `edgepack report PROFILE.json [QUANTIZE.json] [BUNDLE-DIR] -o report.html`: one
//! self-contained HTML file with the profile's charts and tables.

use std::path::PathBuf;

use super::Outcome;
use edgepack::artifact::write_atomic;
use edgepack::gate::read_profile;
use edgepack::report::{build::BuildSummary, bundles, html, quantize::QuantizeSummary, targets};
use edgepack::Error;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A profile (`edgepack.profile/1` JSON), optionally a quantize report (JSON) and a
    /// bundle folder (`dist/`), in any order.
    #[arg(required = true, num_args = 1..=3, value_name = "PROFILE.json [QUANTIZE.json] [BUNDLE-DIR]")]
    pub inputs: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(short, long, value_name = "report.html")]
    pub output: PathBuf,
    /// Folder of target files (`hardware/*.toml`) for the memory lines and fit matrix.
    #[arg(long = "target", alias = "targets", value_name = "DIR")]
    pub targets: Option<PathBuf>,
}

pub fn run(a: ReportArgs) -> anyhow::Result<Outcome> {
    let mut profile = None;
    let mut quantize = None;
    let mut bundle_rows = None;
    let mut bundle_dir = None;
    for p in &a.inputs {
        if p.is_dir() {
            if bundle_rows.is_some() {
                return Err(Error::usage("report", "give at most one bundle folder").into());
            }
            bundle_rows = Some(bundles::read_bundle_dir(p)?);
            bundle_dir = Some(p.clone());
            continue;
        }
        let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::file(p, format!("not valid JSON: {e}")))?;
        let is_profile = v
            .get("schema")
            .and_then(|s| s.as_str())
            .is_some_and(|s| s.starts_with("edgepack.profile/"));
        if is_profile {
            if profile.is_some() {
                return Err(Error::usage("report", "give exactly one profile").into());
            }
            profile = Some(read_profile(p)?);
        } else {
            if quantize.is_some() {
                return Err(Error::usage("report", "give at most one quantize report").into());
            }
            quantize = Some(QuantizeSummary::from_json(&v, p)?);
        }
    }
    let profile = profile.ok_or_else(|| {
        Error::usage(
            "report",
            "no profile among the inputs (a JSON file with \"schema\": \"edgepack.profile/1\")",
        )
    })?;
    let targets = match &a.targets {
        Some(dir) => targets::read_dir(dir)?,
        None => vec![],
    };
    // A build's output folder: the page leads with what the build decided.
    let build = match &bundle_dir {
        Some(d) => BuildSummary::from_dir(d)?,
        None => None,
    };
    let page = html::render(&html::Inputs {
        profile,
        quantize,
        bundles: bundle_rows,
        targets,
        build,
    })?;
    write_atomic(&a.output, page.as_bytes())?;
    eprintln!("edgepack: wrote {}", a.output.display());
    Ok(Outcome::Success)
}
