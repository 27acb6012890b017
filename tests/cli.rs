//! The one integration-test binary: drives the real `edgepack` CLI. Each area adds a
//! module under tests/cli/.

#[path = "cli/quantize.rs"]
mod quantize;
