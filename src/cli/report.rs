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
    /// A profile measured on a target itself (`edgepack profile` run on the device),
    /// TARGET=FILE (or FILE when the bundle folder holds one target): the bundles'
    /// predictions for that target are shown against it. Repeatable.
    #[arg(long = "device-profile", value_name = "TARGET=FILE")]
    pub device_profiles: Vec<String>,
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
    let device_profiles = device_profiles(&a.device_profiles, bundle_rows.as_ref())?;
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
        device_profiles,
    })?;
    write_atomic(&a.output, page.as_bytes())?;
    eprintln!("edgepack: wrote {}", a.output.display());
    Ok(Outcome::Success)
}

/// `--device-profile TARGET=FILE` (or FILE with a single bundle target): each a profile of
/// one of the bundle folder's targets.
fn device_profiles(
    specs: &[String],
    bundles: Option<&bundles::BundleDir>,
) -> Result<Vec<(String, edgepack::profile::schema::Profile)>, Error> {
    if specs.is_empty() {
        return Ok(vec![]);
    }
    let Some(dir) = bundles else {
        return Err(Error::usage(
            "--device-profile",
            "needs a bundle folder among the inputs (the predictions it is compared with)",
        ));
    };
    let mut names: Vec<&str> = dir.rows.iter().map(|r| r.target.as_str()).collect();
    names.sort();
    names.dedup();
    let mut out = vec![];
    for s in specs {
        let (target, file) = match s.split_once('=') {
            Some((t, f)) if !std::path::Path::new(s).exists() => (t.to_string(), f),
            _ if names.len() == 1 => (names[0].to_string(), s.as_str()),
            _ => {
                return Err(Error::usage(
                    "--device-profile",
                    format!("'{s}': name the target it was measured on (TARGET=FILE)"),
                ))
            }
        };
        if !names.contains(&target.as_str()) {
            return Err(Error::usage(
                "--device-profile",
                format!(
                    "no bundle in the folder is for target '{target}' (it has: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        }
        out.push((target, read_profile(std::path::Path::new(file))?));
    }
    Ok(out)
}
