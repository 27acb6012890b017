//! `edgepack keygen -o KEY`: an ed25519 key pair for signing packages and bundles.

use std::path::PathBuf;

use clap::Args;
use edgepack::package::sign;

use super::Outcome;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Secret key file to write (the public key goes to KEY.pub).
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<Outcome> {
    let (pub_path, public) = sign::keygen(&args.output)?;
    eprintln!(
        "wrote secret key {} (keep it private) and public key {}",
        args.output.display(),
        pub_path.display()
    );
    println!("{public}");
    Ok(Outcome::Success)
}
