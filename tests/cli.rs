//! The one integration-test binary: drives the real `edgepack` CLI with assert_cmd in
//! temporary folders. One module per area.

#[path = "cli/common.rs"]
mod common;

#[path = "cli/gate.rs"]
mod gate;

#[path = "cli/run.rs"]
mod run;

#[path = "cli/inputs.rs"]
mod inputs;

#[path = "cli/profile.rs"]
mod profile;

#[path = "cli/report.rs"]
mod report;

#[path = "cli/package.rs"]
mod package;

#[path = "cli/inspect.rs"]
mod inspect;

#[path = "cli/backend.rs"]
mod backend;

#[path = "cli/roundtrip.rs"]
mod roundtrip;

#[path = "cli/quantize_transformer.rs"]
mod quantize_transformer;

#[path = "cli/families.rs"]
mod families;

#[path = "cli/shape_suite.rs"]
mod shape_suite;

#[path = "cli/corpus.rs"]
mod corpus;

#[path = "cli/crash.rs"]
mod crash;

#[path = "cli/quantize.rs"]
mod quantize;

#[path = "cli/fp16_suite.rs"]
mod fp16_suite;

#[path = "cli/sizing.rs"]
mod sizing;
#[path = "cli/trust.rs"]
mod trust;
