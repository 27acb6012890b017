//! `edgepack package MODEL -o NAME.edgepkg`: the model plus its manifest, as one archive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use edgepack::package::{self, ContextFile, LineageSpec, PackageOptions, VariantInput};
use edgepack::Error;

use super::Outcome;

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Output package (NAME.edgepkg).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Package name (default: the model's file stem).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub inputs: PackageInputs,
    /// An extra variant of the model, NAME=PATH (e.g. int8=model.int8.onnx). Repeatable.
    #[arg(long, value_name = "NAME=PATH")]
    pub variant: Vec<String>,
    /// The quantizer's report for a variant, NAME=REPORT.json (`edgepack quantize
    /// --report`): its SQNR and parameters go into the manifest. Repeatable.
    #[arg(long, value_name = "NAME=FILE")]
    pub variant_report: Vec<String>,
    /// Accuracy of a variant against the original, NAME=DB (SQNR). Repeatable.
    #[arg(long, value_name = "NAME=DB")]
    pub sqnr: Vec<String>,
}

/// What goes into a package besides the model and its variants (shared by `package` and
/// `build`).
#[derive(Debug, Args)]
pub struct PackageInputs {
    /// Execution context and pre/postprocessing (TOML).
    #[arg(long, value_name = "FILE")]
    pub context: Option<PathBuf>,
    /// Labels, one per line.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Folder of sample inputs (`<input>.npy`, or `<case>/<input>.npy`), with optional
    /// `expected/<output>.npy`; without them the outputs are computed with ONNX Runtime.
    #[arg(long, value_name = "DIR")]
    pub sample_inputs: Option<PathBuf>,
    /// Lineage: source=URI[#sha256], dataset[:NAME]=URI[#sha256], code[:NAME]=REPO[#commit],
    /// parent=URI[#sha256]. Repeatable.
    #[arg(long, value_name = "KEY=URI[#HASH]")]
    pub lineage: Vec<String>,
    /// Sign the manifest with this ed25519 key (from `edgepack keygen`).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
}

impl PackageInputs {
    /// The package options for these inputs.
    pub fn options(
        &self,
        name: Option<String>,
        variants: Vec<VariantInput>,
        ort_lib: Option<&Path>,
    ) -> anyhow::Result<PackageOptions> {
        Ok(PackageOptions {
            name,
            context: self.context.as_deref().map(ContextFile::load).transpose()?,
            labels: self.labels.clone(),
            sample_inputs: self.sample_inputs.clone(),
            lineage: self
                .lineage
                .iter()
                .map(|s| LineageSpec::parse(s))
                .collect::<Result<_, _>>()?,
            variants,
            sign: self
                .sign
                .as_deref()
                .map(package::sign::load_signing_key)
                .transpose()?,
            runner: super::runner::self_test_runner(ort_lib),
            created_unix_s: None,
            generated_self_test: None,
        })
    }
}

/// Parse `NAME=VALUE`.
pub fn split_kv<'a>(flag: &str, s: &'a str) -> Result<(&'a str, &'a str), Error> {
    s.split_once('=')
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| Error::usage(flag, format!("'{s}': expected NAME=VALUE")))
}

/// Resolve `--variant` and `--sqnr` into variant inputs.
pub fn variants(
    variant: &[String],
    sqnr: &[String],
    reports: &[String],
) -> Result<Vec<VariantInput>, Error> {
    let mut rep = BTreeMap::new();
    for s in reports {
        let (k, v) = split_kv("--variant-report", s)?;
        rep.insert(k.to_string(), PathBuf::from(v));
    }
    let mut acc = BTreeMap::new();
    for s in sqnr {
        let (k, v) = split_kv("--sqnr", s)?;
        let db = super::quantity("--sqnr", v, edgepack::units::Unit::Decibels)?;
        acc.insert(k.to_string(), db);
    }
    let mut out = vec![];
    for s in variant {
        let (k, v) = split_kv("--variant", s)?;
        let mut vi = match rep.remove(k) {
            Some(r) => VariantInput::from_quantizer_report(k, Path::new(v), &r)?,
            None => VariantInput {
                name: k.into(),
                path: v.into(),
                sqnr_db: None,
                params: BTreeMap::new(),
                session_config: BTreeMap::new(),
            },
        };
        if let Some(db) = acc.remove(k) {
            vi.sqnr_db = Some(db);
        }
        out.push(vi);
    }
    if let Some(k) = rep.keys().next() {
        return Err(Error::usage(
            "--variant-report",
            format!("'{k}' is not a --variant"),
        ));
    }
    if let Some(k) = acc.keys().next() {
        return Err(Error::usage("--sqnr", format!("'{k}' is not a --variant")));
    }
    Ok(out)
}

pub fn run(ort_lib: Option<&std::path::Path>, args: PackageArgs) -> anyhow::Result<Outcome> {
    let variants = variants(&args.variant, &args.sqnr, &args.variant_report)?;
    let opts = args.inputs.options(args.name, variants, ort_lib)?;
    let m = package::write(&args.model, &opts, &args.output)?;
    let variants: Vec<_> = m.components[0]
        .variants
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    eprintln!(
        "packaged {} ({} files, variants {}, {} self-test case(s){})",
        args.output.display(),
        m.files.len(),
        variants.join(", "),
        m.self_test.len(),
        if opts.sign.is_some() { ", signed" } else { "" }
    );
    println!("{}", args.output.display());
    Ok(Outcome::Success)
}
