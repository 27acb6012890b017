//! The one integration-test binary: drives the real `edgepack` CLI with assert_cmd in
//! temporary folders. One module per area.

#[path = "cli/common.rs"]
mod common;

#[path = "cli/run.rs"]
mod run;
#[path = "cli/gate.rs"]
mod gate;

#[path = "cli/report.rs"]
mod report;
#[path = "cli/package.rs"]
mod package;
