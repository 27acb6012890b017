//! `edgepack runtime install|list|which`: the ONNX Runtime shared libraries edgepack uses.

use std::path::Path;

use clap::{Args, Subcommand};

use edgepack::runtime::{self, Platform};

use super::Outcome;

#[derive(Debug, Args)]
pub struct RuntimeArgs {
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Download the official ONNX Runtime library from PyPI (via pip) into the cache.
    Install {
        /// ONNX Runtime release.
        #[arg(long, default_value = runtime::DEFAULT_VERSION)]
        version: String,
        /// Target platform: linux-x86_64 or linux-aarch64 (default: this machine).
        #[arg(long)]
        platform: Option<String>,
    },
    /// Show the cached runtimes (platform, version, path, sha256).
    List,
    /// Show which library edgepack would load, and load it.
    Which,
}

pub fn run(ort_lib: Option<&Path>, args: RuntimeArgs) -> anyhow::Result<Outcome> {
    match args.command {
        RuntimeCommand::Install { version, platform } => {
            let platform = match platform {
                Some(p) => Platform::from_name(&p)?,
                None => Platform::host().ok_or_else(|| {
                    edgepack::Error::usage(
                        "--platform",
                        "this machine is not linux-x86_64 or linux-aarch64; pass --platform",
                    )
                })?,
            };
            eprintln!("installing ONNX Runtime {version} for {platform} (pip download from PyPI)");
            let path = runtime::install(&version, platform)?;
            let rec = runtime::list()
                .into_iter()
                .find(|r| r.path == path)
                .map(|r| r.sha256)
                .unwrap_or_default();
            println!("{platform} {version} {} sha256:{rec}", path.display());
        }
        RuntimeCommand::List => {
            let all = runtime::list();
            if all.is_empty() {
                eprintln!(
                    "no runtimes in {}; run `edgepack runtime install`",
                    runtime::library::runtimes_dir().display()
                );
            }
            println!(
                "{:<14} {:<9} {:<8} {:<64} path",
                "platform", "version", "status", "sha256"
            );
            for r in all {
                // A library that no longer matches its recorded hash was changed after
                // install; bundles must not carry it.
                let status = match r.verify() {
                    Ok(true) => "ok",
                    Ok(false) => "MODIFIED",
                    Err(_) => "UNREADABLE",
                };
                println!(
                    "{:<14} {:<9} {:<8} {:<64} {}",
                    r.platform.name(),
                    r.version,
                    status,
                    r.sha256,
                    r.path.display()
                );
            }
        }
        RuntimeCommand::Which => {
            let info = runtime::ensure(ort_lib)?;
            println!(
                "{} (version {}, found via {})",
                info.path.display(),
                info.version.as_deref().unwrap_or("unknown"),
                info.source
            );
        }
    }
    Ok(Outcome::Success)
}
