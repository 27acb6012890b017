//! `edgepack gate --remeasure`: profile the old and the new model interleaved on this
//! machine, so the comparison does not depend on a profile measured elsewhere or earlier.
//!
//! Why rounds: a shared CI runner drifts (neighbours come and go, clocks throttle) over
//! the minutes a job takes. Each configuration is measured in `R` rounds, old then new,
//! then new then old (A B, B A, A B, ...), each model in a fresh child process of the
//! profiler with `1/R` of the plan's time budget. A linear drift then costs both models
//! the same, and the gate's hierarchical bootstrap draws whole rounds, so the interval
//! also carries the round-to-round variation that separate processes bring.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgepack::gate::rounds::{merge_rounds, pair_rounds, RoundPair};
use edgepack::gate::Policy;
use edgepack::profile::plan::Plan;
use edgepack::profile::schema::Profile;
use edgepack::profile::sweep::{self, Silent, SweepOptions, WorkerCommand};
use edgepack::tensor::inputs::{model_inputs, ShapeOverrides};
use edgepack::Error;

/// How to remeasure.
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

/// The merged baseline and candidate profiles and the per-round samples.
pub struct Remeasured {
    pub baseline: Profile,
    pub current: Profile,
    pub rounds: BTreeMap<String, Vec<RoundPair>>,
}

/// Profile `old` and `new` in interleaved rounds (see the module docs).
pub fn interleaved(s: &Settings, policy: &Policy) -> anyhow::Result<Remeasured> {
    if s.rounds < 2 {
        return Err(Error::usage("--rounds", "at least 2 rounds are needed to interleave").into());
    }
    let mut plan = Plan::resolve(s.plan)?;
    // Scope narrows the sweep itself: there is no point measuring what is not gated.
    if !policy.scope.batch.is_empty() {
        plan.file.sizes.batch = policy.scope.batch.clone();
    }
    if !policy.scope.threads.is_empty() {
        plan.file.run.threads = policy.scope.threads.clone();
    }
    if !policy.scope.ep.is_empty() {
        plan.file.run.execution_providers = policy.scope.ep.clone();
    }
    // Each round gets 1/R of the time budget; the pooled rounds give the plan's total.
    let r = s.rounds as f64;
    let m = &mut plan.file.measure;
    m.min_time_s /= r;
    m.max_time_s /= r;
    m.min_iterations = (m.min_iterations as f64 / r).ceil().max(10.0) as u64;
    m.max_iterations = m.max_iterations.max(m.min_iterations);
    plan.validate().map_err(|e| {
        Error::usage(
            format!("plan '{}' split in {} rounds", plan.name, s.rounds),
            e,
        )
    })?;

    let specs_of = |p: &Path| -> anyhow::Result<_> {
        let model = edgepack::model::Model::load(p)?;
        Ok(model_inputs(&model))
    };
    let (old_specs, new_specs) = (specs_of(s.old)?, specs_of(s.new)?);
    let names = |v: &[edgepack::tensor::inputs::TensorSpec]| {
        v.iter().map(|t| t.name.clone()).collect::<Vec<_>>()
    };
    if names(&old_specs) != names(&new_specs) {
        return Err(Error::usage(
            "--model",
            format!(
                "{} and {} have different inputs ({:?} vs {:?}); remeasure compares the \
                 same query on both",
                s.old.display(),
                s.new.display(),
                names(&old_specs),
                names(&new_specs)
            ),
        )
        .into());
    }
    let shapes = ShapeOverrides::from_args(s.shapes, &[])?;
    let opts_for = |model: &Path| -> anyhow::Result<SweepOptions> {
        Ok(SweepOptions {
            model_path: model.to_path_buf(),
            model_label: model.display().to_string(),
            base_context: edgepack::runtime::ExecutionContext {
                session_config: s.session_config.clone(),
                ..Default::default()
            },
            plan: plan.clone(),
            shapes: shapes.clone(),
            batch_from_cli: false,
            dims_from_cli: false,
            inputs_dir: None,
            per_op: false,
            seed: s.seed,
            ort_lib: s.ort_lib.clone(),
            json_path: None,
            worker: WorkerCommand::current_exe()?,
        })
    };
    let (old_opts, new_opts) = (opts_for(s.old)?, opts_for(s.new)?);
    let old_configs = sweep::expand(&old_specs, &old_opts)?;
    let new_configs = sweep::expand(&new_specs, &new_opts)?;
    let info = edgepack::runtime::ensure(s.ort_lib.as_deref())?;
    let version = info.version.clone().unwrap_or_default();

    let (mut old_rounds, mut new_rounds) = (Vec::new(), Vec::new());
    for round in 0..s.rounds {
        // A B, B A, A B, ...: a linear drift hits both models equally over two rounds.
        let old_first = round % 2 == 0;
        for which_old in [old_first, !old_first] {
            let (opts, configs, label) = if which_old {
                (&old_opts, &old_configs, "baseline")
            } else {
                (&new_opts, &new_configs, "candidate")
            };
            eprintln!(
                "remeasure: round {}/{}: {} {} ({} configuration(s))",
                round + 1,
                s.rounds,
                label,
                opts.model_path.display(),
                configs.len()
            );
            let p = sweep::run(opts, configs, &version, &mut Silent)?;
            if let Some(why) = p.incompleteness() {
                return Err(
                    Error::usage("--remeasure", format!("round {}: {why}", round + 1)).into(),
                );
            }
            if which_old {
                old_rounds.push(p);
            } else {
                new_rounds.push(p);
            }
        }
    }
    Ok(Remeasured {
        rounds: pair_rounds(&old_rounds, &new_rounds),
        baseline: merge_rounds(&old_rounds)?,
        current: merge_rounds(&new_rounds)?,
    })
}
