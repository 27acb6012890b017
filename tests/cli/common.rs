//! Shared helpers for the integration tests.
#![allow(dead_code)]

use assert_cmd::Command;

/// The `edgepack` binary under test.
pub fn edgepack() -> Command {
    Command::cargo_bin("edgepack").expect("edgepack binary is built")
}
