//! `edgepack gate --remeasure`: profile the old and the new model interleaved on this
//! machine, so the comparison does not depend on a profile measured elsewhere or earlier.
//!
//! Why rounds: a shared CI runner drifts (neighbours come and go, clocks throttle) over
//! the minutes a job takes. Each configuration is measured in `R` rounds, old then new,
//! then new then old (A B, B A, A B, ...), each model in a fresh child process of the
//! profiler with `1/R` of the plan's time budget ([`split_plan`]). A linear drift then
//! costs both models the same, and the gate's hierarchical bootstrap draws whole rounds,
//! so the interval also carries the round-to-round variation that separate processes
//! bring.
//!
//! The protocol ([`interleave`]) is separate from what measures ([`Measurer`]): the real
//! one runs the profiler's sweep ([`SweepMeasurer`]); the tests drive the protocol with a
//! deterministic mock and check the order and the pairing without timing anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::rounds::{merge_rounds, pair_rounds, RoundPair};
use super::Scope;
use crate::error::{Error, Result};
use crate::inputs::{model_inputs, Generation, ShapeOverrides, TensorSpec};
use crate::profile::plan::Plan;
use crate::profile::schema::Profile;
use crate::profile::sweep::{self, ConfigSpec, Silent, SweepOptions, WorkerCommand};

/// Which of the two models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The old model (A).
    Baseline,
    /// The new model (B).
    Candidate,
}

/// Measures one model once: one round of the protocol.
pub trait Measurer {
    /// A profile of `side`'s model, as round `round` (0-based) of `rounds`.
    fn measure(&mut self, side: Side, round: usize, rounds: usize) -> Result<Profile>;
}

/// The merged baseline and candidate profiles and the per-round samples.
#[derive(Clone, Debug)]
pub struct Remeasured {
    pub baseline: Profile,
    pub current: Profile,
    pub rounds: BTreeMap<String, Vec<RoundPair>>,
}

/// The order of the measurements: A B, B A, A B, ... (a linear drift hits both models
/// equally over every two rounds).
pub fn order(rounds: usize) -> Vec<(usize, Side)> {
    (0..rounds)
        .flat_map(|round| {
            let (first, second) = if round % 2 == 0 {
                (Side::Baseline, Side::Candidate)
            } else {
                (Side::Candidate, Side::Baseline)
            };
            [(round, first), (round, second)]
        })
        .collect()
}

/// Run the protocol: `rounds` interleaved rounds (at least 2), then pool each side's
/// rounds and pair their samples round by round.
pub fn interleave(rounds: usize, measurer: &mut dyn Measurer) -> Result<Remeasured> {
    if rounds < 2 {
        return Err(Error::usage(
            "remeasure",
            format!("{rounds} round(s): at least 2 are needed to interleave"),
        ));
    }
    let (mut old_rounds, mut new_rounds) = (Vec::new(), Vec::new());
    for (round, side) in order(rounds) {
        let p = measurer.measure(side, round, rounds)?;
        match side {
            Side::Baseline => old_rounds.push(p),
            Side::Candidate => new_rounds.push(p),
        }
    }
    Ok(Remeasured {
        rounds: pair_rounds(&old_rounds, &new_rounds),
        baseline: merge_rounds(&old_rounds)?,
        current: merge_rounds(&new_rounds)?,
    })
}

/// The plan one round runs: narrowed to the policy's scope (there is no point measuring
/// what is not gated), with `1/rounds` of the time budget so the pooled rounds give the
/// plan's total ([`crate::profile::plan::MeasureSettings::per_round`]), and a single
/// process per configuration (the gate interleaves its rounds itself).
pub fn split_plan(mut plan: Plan, rounds: usize, scope: &Scope) -> Result<Plan> {
    if !scope.batch.is_empty() {
        plan.file.sizes.batch = scope.batch.clone();
    }
    if !scope.threads.is_empty() {
        plan.file.run.threads = scope.threads.clone();
    }
    if !scope.ep.is_empty() {
        plan.file.run.execution_providers = scope.ep.clone();
    }
    // The gate's own rounds replace the profiler's: each side's sweep is one process per
    // configuration per round, the rounds interleaved between the two models.
    plan.file.measure.rounds = rounds.max(1) as u64;
    plan.file.measure = plan.file.measure.per_round();
    plan.validate().map_err(|e| match e {
        Error::Usage { message, .. } => Error::usage(
            format!("plan '{}' split in {rounds} rounds", plan.name),
            message,
        ),
        e => e,
    })?;
    Ok(plan)
}

/// What the real measurer needs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub ort_lib: Option<PathBuf>,
    /// The old model (baseline).
    pub old: PathBuf,
    /// The new model (candidate).
    pub new: PathBuf,
    /// The plan of one round (see [`split_plan`]).
    pub plan: Plan,
    /// Whole input shapes, as for `profile`.
    pub shapes: ShapeOverrides,
    /// Seed of the generated inputs (the same for both models).
    pub seed: u64,
    /// How to start the profiler's worker.
    pub worker: WorkerCommand,
    /// Session entries for both models, on top of those each model records.
    pub session_config: BTreeMap<String, String>,
}

/// One side's sweep.
struct SideSweep {
    opts: SweepOptions,
    configs: Vec<ConfigSpec>,
}

/// The real [`Measurer`]: the profiler's sweep, every configuration in its own child.
pub struct SweepMeasurer {
    old: SideSweep,
    new: SideSweep,
    onnxruntime_version: String,
}

impl SweepMeasurer {
    /// Check both models take the same inputs and expand their sweeps.
    pub fn new(s: &Settings) -> Result<Self> {
        let specs_of = |p: &Path| -> Result<Vec<TensorSpec>> {
            Ok(model_inputs(&crate::model::Model::load(p)?))
        };
        let (old_specs, new_specs) = (specs_of(&s.old)?, specs_of(&s.new)?);
        let names = |v: &[TensorSpec]| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        if names(&old_specs) != names(&new_specs) {
            return Err(Error::usage(
                "remeasure",
                format!(
                    "{} and {} have different inputs ({:?} vs {:?}); remeasure compares the \
                     same query on both",
                    s.old.display(),
                    s.new.display(),
                    names(&old_specs),
                    names(&new_specs)
                ),
            ));
        }
        let side = |model: &Path, specs: &[TensorSpec]| -> Result<SideSweep> {
            let opts = SweepOptions {
                model_path: model.to_path_buf(),
                model_label: model.display().to_string(),
                base_context: crate::runtime::ExecutionContext {
                    session_config: s.session_config.clone(),
                    ..Default::default()
                },
                plan: s.plan.clone(),
                shapes: s.shapes.clone(),
                batch_from_cli: false,
                dims_from_cli: false,
                inputs_dir: None,
                samples: vec![],
                generation: Generation::new(specs, &Default::default()),
                per_op: false,
                seed: s.seed,
                ort_lib: s.ort_lib.clone(),
                json_path: None,
                worker: s.worker.clone(),
            };
            let configs = sweep::expand(specs, &opts)?;
            Ok(SideSweep { opts, configs })
        };
        let old = side(&s.old, &old_specs)?;
        let new = side(&s.new, &new_specs)?;
        let info = crate::runtime::ensure(s.ort_lib.as_deref())?;
        Ok(SweepMeasurer {
            old,
            new,
            onnxruntime_version: info.version.clone().unwrap_or_default(),
        })
    }
}

impl Measurer for SweepMeasurer {
    fn measure(&mut self, side: Side, round: usize, rounds: usize) -> Result<Profile> {
        let (s, label) = match side {
            Side::Baseline => (&self.old, "baseline"),
            Side::Candidate => (&self.new, "candidate"),
        };
        eprintln!(
            "remeasure: round {}/{rounds}: {label} {} ({} configuration(s))",
            round + 1,
            s.opts.model_path.display(),
            s.configs.len()
        );
        let p = sweep::run(&s.opts, &s.configs, &self.onnxruntime_version, &mut Silent)?;
        // An interrupted or partial round must not be pooled into a verdict.
        match p.incompleteness() {
            Some(why) => Err(Error::usage(
                "remeasure",
                format!("round {}: {why}", round + 1),
            )),
            None => Ok(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::sample_profile;

    /// A machine that drifts: every measurement is 1% slower than the one before, and the
    /// candidate is 10% slower than the baseline. Records the order it was asked in.
    struct DriftingMock {
        calls: Vec<(usize, Side)>,
    }

    impl Measurer for DriftingMock {
        fn measure(&mut self, side: Side, round: usize, _rounds: usize) -> Result<Profile> {
            let drift = 1.0 + 0.01 * self.calls.len() as f64;
            let model = if side == Side::Candidate { 1.1 } else { 1.0 };
            self.calls.push((round, side));
            let mut p = sample_profile();
            for c in &mut p.configs {
                if let Some(l) = c.latency.as_mut() {
                    for s in &mut l.samples_s {
                        *s *= drift * model;
                    }
                }
            }
            Ok(p)
        }
    }

    #[test]
    fn rounds_alternate_a_b_then_b_a_and_pair_round_by_round() {
        let mut mock = DriftingMock { calls: vec![] };
        let r = interleave(4, &mut mock).unwrap();
        use Side::{Baseline as A, Candidate as B};
        assert_eq!(
            mock.calls,
            vec![
                (0, A),
                (0, B),
                (1, B),
                (1, A),
                (2, A),
                (2, B),
                (3, B),
                (3, A)
            ]
        );
        // Every measured configuration has one pair per round, baseline first.
        let id = "ep=cpu threads=1 batch=1";
        let pairs = &r.rounds[id];
        assert_eq!(pairs.len(), 4);
        let first = sample_profile().configs[0]
            .latency
            .clone()
            .unwrap()
            .samples_s[0];
        // Round 0: A was call 0 (drift 1.00), B call 1 (1.01 x 1.1).
        assert!((pairs[0].0[0] - first).abs() < 1e-12);
        assert!((pairs[0].1[0] - first * 1.01 * 1.1).abs() < 1e-12);
        // Round 1: B came first (call 2), A second (call 3).
        assert!((pairs[1].1[0] - first * 1.02 * 1.1).abs() < 1e-12);
        assert!((pairs[1].0[0] - first * 1.03).abs() < 1e-12);
        // Over the A B B A blocks the drift cancels: the pooled medians' ratio is the
        // model's 10%, not 10% plus drift.
        let med = |p: &Profile| p.configs[0].latency.as_ref().unwrap().p50_s;
        let ratio = med(&r.current) / med(&r.baseline);
        assert!((ratio - 1.1).abs() < 0.011, "{ratio}");
    }

    #[test]
    fn fewer_than_two_rounds_is_an_error_before_measuring() {
        let mut mock = DriftingMock { calls: vec![] };
        assert!(interleave(1, &mut mock).is_err());
        assert!(mock.calls.is_empty());
    }

    #[test]
    fn a_split_plan_gives_each_round_its_share_of_the_budget() {
        let plan = Plan::builtin("ci").unwrap();
        let (min_t, min_i) = (
            plan.file.measure.min_time_s,
            plan.file.measure.min_iterations,
        );
        let scope = Scope {
            batch: vec![1],
            ..Default::default()
        };
        let p = split_plan(plan, 4, &scope).unwrap();
        assert_eq!(p.file.sizes.batch, vec![1]);
        assert!((p.file.measure.min_time_s - min_t / 4.0).abs() < 1e-12);
        assert!(p.file.measure.min_iterations >= (min_i as f64 / 4.0).ceil() as u64);
        assert!(p.file.measure.min_iterations >= 6);
        assert_eq!(
            p.file.measure.rounds, 1,
            "the gate interleaves its own rounds"
        );
    }
}
