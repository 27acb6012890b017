//! `edgepack completions bash|zsh|fish`: a shell completion script on stdout, generated
//! from the same clap definition the binary parses with, so it never drifts from the flags.
//!
//! ```sh
//! edgepack completions bash > ~/.local/share/bash-completion/completions/edgepack
//! edgepack completions zsh  > ~/.zfunc/_edgepack      # with fpath+=~/.zfunc
//! edgepack completions fish > ~/.config/fish/completions/edgepack.fish
//! ```

use std::io::Write;

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

/// The completion script for `shell`.
fn script(shell: CompletionShell) -> Vec<u8> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "edgepack", &mut out);
    out
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<Outcome> {
    // Generated into memory first: clap_complete panics on a failed write, and a reader
    // that stops early (`| head`) is not an error worth a backtrace.
    match std::io::stdout().lock().write_all(&script(args.shell)) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(edgepack::Error::io("stdout", e).into())
        }
        _ => Ok(Outcome::Success),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_every_command_and_the_new_flag_names() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let text = String::from_utf8(script(shell)).expect("utf-8");
            for word in [
                "profile",
                "gate",
                "completions",
                "ci-half-width",
                "json-out",
            ] {
                assert!(text.contains(word), "{shell:?} lacks {word}");
            }
        }
    }
}
