//! The profiler: latency, memory and CPU/GPU needs across query sizes, threads and
//! execution providers.

pub mod isolate;
pub mod measure;
pub mod plan;
pub mod process;
pub mod schema;
pub mod stats;
pub mod units;
