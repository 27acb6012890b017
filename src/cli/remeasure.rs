//! `edgepack gate --remeasure`: profile the old and the new model interleaved.

use std::path::{Path, PathBuf};

use edgepack::gate::Policy;
use edgepack::profile::schema::Profile;
use edgepack::Error;

/// Profile `old` and `new` interleaved (A B A B ...) and return (baseline, current).
pub fn interleaved(
    _ort_lib: &Option<PathBuf>,
    _old: &Path,
    _new: &Path,
    _policy: &Policy,
) -> anyhow::Result<(Profile, Profile)> {
    Err(Error::usage(
        "--remeasure",
        "needs the profiler, which is not merged on this branch yet",
    )
    .into())
}
