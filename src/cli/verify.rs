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
}

pub fn run(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let key = args
        .key
        .as_deref()
        .map(sign::load_verifying_key)
        .transpose()?;
    let limits = archive::Limits::default();
    let bytes = archive::read_bounded(&args.archive, &limits)?;
    let (report, _) = package::verify_bytes(&bytes, key.as_ref(), &limits)
        .map_err(|m| Error::file(&args.archive, m))?;
    let name = args.archive.display();
    if args.json {
        let v = serde_json::json!({
            "archive": name.to_string(),
            "ok": report.ok(),
            "problems": report.problems,
            "signer": report.signer,
            "key_pinned": report.key_pinned,
            "files_checked": report.files_checked,
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
    } else {
        println!("{name}: FAILED");
        for p in &report.problems {
            println!("  - {p}");
        }
    }
    Ok(if report.ok() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}
