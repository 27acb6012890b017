//! `edgepack gate --remeasure`: resolve the flags into [`edgepack::gate::remeasure`]'s
//! settings and run its interleaved protocol with the profiler's sweep.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgepack::gate::remeasure::{self, SweepMeasurer};
use edgepack::gate::Policy;
use edgepack::inputs::ShapeOverrides;
use edgepack::profile::plan::Plan;
use edgepack::profile::sweep::WorkerCommand;
use edgepack::setting::Subject;
use edgepack::Error;

pub use edgepack::gate::remeasure::Remeasured;

/// How to remeasure, as the flags give it.
pub struct Settings<'a> {
    pub ort_lib: &'a Option<PathBuf>,
    pub old: &'a Path,
    pub new: &'a Path,
    /// Plan name or file (default `ci`).
    pub plan: &'a str,
    /// Number of interleaved rounds per model (at least 2).
    pub rounds: usize,
    /// `--shape NAME=DIMS` values, as for `edgepack profile`.
    pub shapes: &'a [String],
    /// Seed of the generated inputs (the same for both models).
    pub seed: u64,
    /// `--session-config` entries for both models, on top of those each model records.
    pub session_config: BTreeMap<String, String>,
}

/// Profile `old` and `new` in interleaved rounds (see [`edgepack::gate::remeasure`]).
pub fn interleaved(s: &Settings, policy: &Policy) -> anyhow::Result<Remeasured> {
    if s.rounds < 2 {
        return Err(Error::usage("--rounds", "at least 2 rounds are needed to interleave").into());
    }
    let plan = remeasure::split_plan(Plan::resolve(s.plan)?, s.rounds, &policy.scope)?;
    let settings = remeasure::Settings {
        ort_lib: s.ort_lib.clone(),
        old: s.old.to_path_buf(),
        new: s.new.to_path_buf(),
        plan,
        shapes: ShapeOverrides::from_args(s.shapes, &[])?,
        seed: s.seed,
        worker: WorkerCommand::current_exe()?,
        session_config: s.session_config.clone(),
    };
    let mut measurer = SweepMeasurer::new(&settings).map_err(|e| match e {
        Error::Usage {
            what: Subject::Named(what),
            message,
        } if what == "remeasure" => Error::usage("--model", message),
        e => e,
    })?;
    Ok(remeasure::interleave(s.rounds, &mut measurer)?)
}
