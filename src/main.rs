//! The `edgepack` binary: parse, run, map the outcome to an exit status, print errors.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
