//! The `edgepack` binary: parse, run, map the outcome to an exit status, print errors.

// The CLI reports errors as one line and exit status 2 instead of panicking.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod cli;

fn main() {
    std::process::exit(cli::main());
}
