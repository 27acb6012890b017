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
    if args.self_test && report.ok() {
        let (Some(m), Some(a)) = (&report.manifest, &archive) else {
            unreachable!("a verified archive has a manifest")
        };
        if m.self_test.is_empty() {
            report
                .problems
                .push("--self-test: the archive has no self-test cases".into());
        }
        let runner = package::selftest::OrtRunner {
            library: ort_lib.map(|p| p.to_path_buf()),
        };
        for v in m.components.iter().flat_map(|c| c.variants.iter()) {
            // The package's expected outputs belong to the original; a bundle's to its variant.
            if m.kind == package::manifest::Kind::Package && v.name != "fp32" {
                continue;
            }
            for r in package::selftest::run_cases(m, a, &v.path, &runner)? {
                for p in &r.problems {
                    report
                        .problems
                        .push(format!("self-test {} on {}: {p}", r.name, v.name));
                }
                self_test.push((v.name.clone(), r));
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
            "self_test": self_test.iter().map(|(v, r)| serde_json::json!({
                "variant": v, "case": r.name, "max_abs_diff": r.max_abs_diff, "ok": r.problems.is_empty(),
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
        for (v, r) in &self_test {
            println!(
                "  self-test {} on {v}: ok (max |diff| {:.3e})",
                r.name, r.max_abs_diff
            );
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
