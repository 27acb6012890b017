//! The child side of the build's isolated steps: `edgepack __pipeline-worker` reads one
//! [`Request`] as JSON on stdin and answers one [`crate::isolate::Reply`] on stdout
//! ([`crate::isolate::serve`]). The parent starts it with [`crate::isolate::call`].

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::quantize::{self, QuantizeDone, QuantizeJob};
use crate::error::Result;

/// The hidden subcommand that runs a [`Request`].
pub const SUBCOMMAND: &str = "__pipeline-worker";

/// Work the build runs in a child process of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Quantize(QuantizeJob),
}

/// What a [`Request`] produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    Quantize(QuantizeDone),
}

/// The command that starts a worker: `exe __pipeline-worker`.
pub fn command(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg(SUBCOMMAND);
    cmd
}

/// Serve one request from stdin (the hidden subcommand's body).
pub fn serve() -> Result<()> {
    crate::isolate::serve(|req: Request| match req {
        Request::Quantize(job) => quantize::run(&job).map(Response::Quantize),
    })
}
