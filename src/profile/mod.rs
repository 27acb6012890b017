//! The profiler: latency, memory and CPU/GPU needs across query sizes, threads and
//! execution providers.
//!
//! Statistics come from [`crate::stats`] and units from [`crate::units`], shared with the gate.
//! - [`measure`]: the measurement protocol, generic over a [`measure::Runner`].
//! - [`plan`]: strict TOML plans from `profiles/`, with command-line overrides.
//! - [`worker`]: one child process per configuration (through [`crate::isolate`]).
//! - [`rounds`]: several processes per configuration, pooled, with modes.
//! - [`sweep`]: the cross product of query sizes, threads and providers, and the profile.
//! - [`needs`]: the needs summary (threads for a latency budget, memory line).
//! - [`schema`]: the `edgepack.profile/1` JSON.

pub mod gpu;
pub mod measure;
pub mod needs;
pub mod per_op;
pub mod plan;
pub mod process;
pub mod rounds;
pub mod schema;
pub mod source;
pub mod sweep;
pub mod worker;
