//! `edgepack completions bash|zsh|fish`: a shell completion script on stdout, generated
//! from the same clap definition the binary parses with, so it never drifts from the flags.
//!
//! ```sh
//! edgepack completions bash > ~/.local/share/bash-completion/completions/edgepack
//! edgepack completions zsh  > ~/.zfunc/_edgepack      # with fpath+=~/.zfunc
//! edgepack completions fish > ~/.config/fish/completions/edgepack.fish
//! ```

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, Outcome};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells edgepack writes completions for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<Outcome> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "edgepack", &mut std::io::stdout().lock());
    Ok(Outcome::Success)
}
