//! The profiler: latency, memory and CPU/GPU needs across query sizes, threads and
//! execution providers.

pub mod measure;
pub mod schema;
pub mod stats;
