//! `edgepack verify ARCHIVE [--key PUB]`: check a package or bundle. Exit 0 when it
//! verifies, 1 when a file is missing, extra or changed or the signature is bad, 2 when the
//! archive cannot be read safely.

use std::path::PathBuf;

use clap::Args;
use edgepack::package::{self, archive, sign};
use edgepack::Error;

use super::Outcome;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The package (.edgepkg) or bundle (.zip).
    pub archive: PathBuf,
    /// Require a signature by this public key (from `edgepack keygen`).
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// After verification succeeds, extract the archive into this folder (regular files
    /// only, never outside it, never through a symlink).
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,
    /// After the integrity checks, run the archive's self-test cases with ONNX Runtime on
    /// every variant it carries (what a device does on arrival).
    #[arg(long)]
    pub self_test: bool,
    /// Set by `edgepack run ARCHIVE`: an archive without self-test cases is then run on
    /// generated inputs instead of failing a flag the user never passed.
    #[arg(skip)]
    pub from_run: bool,
}

pub fn run(ort_lib: Option<&std::path::Path>, args: VerifyArgs) -> anyhow::Result<Outcome> {
    let key = args
        .key
        .as_deref()
        .map(sign::load_verifying_key)
        .transpose()?;
    let limits = archive::Limits::from_env()?;
    let bytes = archive::read_bounded(&args.archive, &limits)?;
    let (mut report, archive) = package::verify_bytes(&bytes, key.as_ref(), &limits)
        .map_err(|m| Error::file(&args.archive, m))?;
    let mut self_test = vec![];
    let mut generated: Vec<String> = vec![];
    if args.self_test && report.ok() {
        let (Some(m), Some(a)) = (&report.manifest, &archive) else {
            unreachable!("a verified archive has a manifest")
        };
        let runner = package::selftest::OrtRunner {
            library: ort_lib.map(|p| p.to_path_buf()),
        };
        if m.self_test.is_empty() && args.from_run {
            eprintln!(
                "edgepack: {} carries no self-test cases (it was packaged without sample inputs), \
                 so there are no expected outputs to compare with: running each variant once \
                 on generated inputs instead",
                args.archive.display()
            );
            for v in m.components.iter().flat_map(|c| c.variants.iter()) {
                match run_generated(m, a, v, &runner) {
                    Ok(()) => generated.push(v.name.clone()),
                    Err(e) => report
                        .problems
                        .push(format!("{} on generated inputs: {e}", v.name)),
                }
            }
        } else if m.self_test.is_empty() {
            report.problems.push(
                "--self-test: the archive carries no self-test cases, so there is nothing to \
                 compare (package with --sample-inputs, or use `edgepack build`, which makes one)"
                    .into(),
            );
        }
        // Every variant, each with its own session entries (`run_cases`); a package's
        // quantized variants are judged against the original's outputs by SQNR.
        for v in m.components.iter().flat_map(|c| c.variants.iter()) {
            for r in package::selftest::run_cases(m, a, &v.path, &runner)? {
                for p in &r.problems {
                    report
                        .problems
                        .push(format!("self-test {} on {}: {p}", r.name, v.name));
                }
                let entries = m.execution_for(v).session_config;
                self_test.push((v.name.clone(), entries, r));
            }
        }
    }
    let name = args.archive.display();
    if args.json {
        let v = serde_json::json!({
            "archive": name.to_string(),
            "ok": report.ok(),
            "problems": report.problems,
            "signer": report.signer,
            "key_pinned": report.key_pinned,
            "files_checked": report.files_checked,
            "self_test": self_test.iter().map(|(v, e, r)| serde_json::json!({
                "variant": v, "session_config": e, "case": r.name, "max_abs_diff": r.max_abs_diff, "ok": r.problems.is_empty(),
                "sqnr_db_vs_original": r.sqnr_db,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if report.ok() {
        let signed = match (&report.signer, report.key_pinned) {
            (Some(fp), true) => format!("signed by the given key {fp}"),
            (Some(fp), false) => {
                format!("signed by key {fp} (not pinned: pass --key to require it)")
            }
            (None, _) => "unsigned".to_string(),
        };
        println!("{name}: OK ({} files, {signed})", report.files_checked);
        for v in &generated {
            println!("  {v}: ran on generated inputs (nothing to compare against)");
        }
        for (v, e, r) in &self_test {
            let v = if e.is_empty() {
                v.clone()
            } else {
                format!(
                    "{v} (session entries {})",
                    edgepack::model::metadata::describe(e)
                )
            };
            match r.sqnr_db {
                Some(db) => println!(
                    "  self-test {} on {v}: ran (against the original's outputs: SQNR {db:.1} dB, max |diff| {:.3e})",
                    r.name, r.max_abs_diff
                ),
                None => println!(
                    "  self-test {} on {v}: ok (max |diff| {:.3e})",
                    r.name, r.max_abs_diff
                ),
            }
        }
    } else {
        println!("{name}: FAILED");
        for p in &report.problems {
            println!("  - {p}");
        }
    }
    if let (true, Some(dir), Some(a)) = (report.ok(), &args.extract, &archive) {
        let written = archive::extract(a, dir)?;
        eprintln!("extracted {} files into {}", written.len(), dir.display());
    }
    Ok(if report.ok() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// Run variant `v` of a verified archive once on inputs generated from its signature,
/// with its session entries.
fn run_generated(
    m: &package::manifest::Manifest,
    a: &archive::Archive,
    v: &package::manifest::Variant,
    runner: &dyn package::selftest::Runner,
) -> edgepack::Result<()> {
    let bytes = a
        .entries
        .get(&v.path)
        .ok_or_else(|| Error::usage("self-test", format!("'{}' is not in the archive", v.path)))?;
    let model = edgepack::model::Model::from_bytes(bytes, std::path::Path::new(&v.path))?;
    let case = package::selftest::generated_case(&model, &Default::default())?;
    runner.run(bytes, &m.execution_for(v), &case.inputs)?;
    Ok(())
}
