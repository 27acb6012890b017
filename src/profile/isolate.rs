//! Child-process isolation moved to [`crate::isolate`] so `run`, calibration and compare
//! share it; this re-export keeps the profiler's paths working.

pub use crate::isolate::*;
