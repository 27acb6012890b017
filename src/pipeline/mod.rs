//! `build` as a library: one model in, a package and one bundle per hardware target out,
//! with a typed report ([`report::BuildReport`], schema `edgepack.build/1`).
//!
//! A [`Build`] owns its resolved [`Settings`] and runs six steps, one method each, every
//! step taking the typed result of the steps before it:
//!
//! 1. [`Build::inspect`]: the model's I/O contract;
//! 2. [`Build::quantize`]: each variant mode asked for, each in an isolated child
//!    ([`quantize::QuantizeJob`] through [`crate::isolate::call`]); a mode that fails is
//!    recorded as skipped with the child's one-line reason, and the build goes on;
//! 3. [`Build::package`]: the original plus every variant, with their accuracy reports;
//! 4. [`Build::profile`]: each packaged variant on this host through the profiler's sweep
//!    (every configuration in its own child); a profile already in the work folder for the
//!    same model sha256 is reused unless `reprofile`, so two builds of the same inputs
//!    give the same bytes;
//! 5. [`Build::bundle`]: every target, with its selection;
//! 6. [`Build::report`]: the [`report::BuildReport`], written to `<output>/<name>-build.json`.
//!
//! [`Build::run`] calls them in that order. Intermediate files live in `<output>/work/`.
//! Progress goes to an [`Observer`]; nothing here prints.

pub mod quantize;
pub mod report;
pub mod worker;

use std::path::{Path, PathBuf};

use crate::bundle::{self, BundleOptions};
use crate::error::{Error, Result};
use crate::hardware::Target;
use crate::inputs::ShapeOverrides;
use crate::isolate::{self, ChildLimits};
use crate::model::Model;
use crate::package::{self, Manifest, PackageOptions, VariantInput};
use crate::profile::plan::Plan;
use crate::profile::schema::{ConfigResult, Profile, Status};
use crate::profile::sweep::{self, SweepObserver, SweepOptions, WorkerCommand};

pub use quantize::VariantMode;
pub use report::{BuildReport, BUILD_SCHEMA};

/// Everything a build needs, resolved (flags, files and defaults already applied).
pub struct Settings {
    /// The fp32 ONNX model.
    pub model: PathBuf,
    /// Output folder (bundles, package, report; intermediates in `work/`).
    pub output: PathBuf,
    /// Hardware targets with the sha256 of the file each came from.
    pub targets: Vec<(Target, String)>,
    /// The folder of hardware files, used to place the host among known devices.
    pub hardware_dir: Option<PathBuf>,
    /// Concrete shapes for dynamic inputs (profiling and random calibration).
    pub shapes: ShapeOverrides,
    /// `--input-range NAME=LO..HI` values for generated inputs (random calibration,
    /// profiling), as the other commands take them.
    pub input_ranges: Vec<String>,
    /// Calibration samples for int8 (a folder the quantizer reads).
    pub calibration: Option<PathBuf>,
    /// Held-out evaluation samples for the quantizer's accuracy figures.
    pub eval: Option<PathBuf>,
    /// Variant modes to try, in order.
    pub variants: Vec<VariantMode>,
    /// The profiling plan.
    pub plan: Plan,
    /// Measure again even when a profile of the same model is in the work folder.
    pub reprofile: bool,
    /// Profile the variants (without it, bundles carry no latency or memory predictions).
    pub profile: bool,
    /// Package settings; the build adds the variants it made.
    pub package: PackageOptions,
    /// Bundle settings; the build adds the profiles it measured and the host compute.
    pub bundle: BundleOptions,
    /// An explicit host compute figure (else estimated from the hardware files).
    pub host_compute: Option<f64>,
    pub ort_lib: Option<PathBuf>,
    /// The edgepack executable that serves isolated steps (`__pipeline-worker`,
    /// `__profile-worker`).
    pub exe: PathBuf,
    /// Limits of the child that quantizes one variant.
    pub quantize_limits: ChildLimits,
}

/// The six steps, for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Inspect,
    Quantize,
    Package,
    Profile,
    Bundle,
    Report,
}

impl Step {
    /// 1-based position among the [`Step::COUNT`] steps.
    pub fn number(self) -> usize {
        self as usize + 1
    }

    /// How many steps a build has.
    pub const COUNT: usize = 6;
}

/// Where a build says what it is doing.
pub trait Observer {
    /// A step (or a part of one, such as one variant) begins.
    fn started(&mut self, step: Step, what: &str);
    /// A detail of the step under way (a child's log line, a skipped variant).
    fn detail(&mut self, step: Step, line: &str);
}

/// An observer that drops everything.
pub struct Quiet;

impl Observer for Quiet {
    fn started(&mut self, _: Step, _: &str) {}
    fn detail(&mut self, _: Step, _: &str) {}
}

/// The result of [`Build::inspect`].
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The build's name (the model's file stem): files are `<name>.edgepkg`,
    /// `<name>-<target>.zip`, `<name>-build.json`.
    pub name: String,
    pub contract: package::manifest::Contract,
}

/// The result of [`Build::quantize`].
#[derive(Clone, Debug, Default)]
pub struct Quantized {
    pub variants: Vec<VariantInput>,
    pub skipped: Vec<report::SkippedVariant>,
}

/// The result of [`Build::package`].
#[derive(Clone, Debug)]
pub struct Packaged {
    pub path: PathBuf,
    pub manifest: Manifest,
}

/// The result of [`Build::profile`].
#[derive(Clone, Debug, Default)]
pub struct Profiled {
    pub profiles: Vec<Profile>,
    pub records: Vec<report::ProfileRecord>,
}

/// The result of [`Build::bundle`].
#[derive(Debug)]
pub struct Bundled {
    pub outcomes: Vec<bundle::Outcome>,
    pub host_compute: Option<(f64, String)>,
}

/// What [`Build::run`] produced.
#[derive(Debug)]
pub struct Built {
    pub report: BuildReport,
    pub report_path: PathBuf,
    /// Every target's bundling outcome (a target nothing fits has no bundle).
    pub outcomes: Vec<bundle::Outcome>,
}

/// One build.
pub struct Build {
    pub settings: Settings,
    /// `<output>/work`.
    pub work_dir: PathBuf,
    /// What this build created and must remove when it fails: the output folder itself when
    /// it did not exist, else `work/` when that did not exist (no partial output is left).
    created: Option<PathBuf>,
}

impl Build {
    /// A build with its work folder created.
    pub fn new(settings: Settings) -> Result<Self> {
        let work_dir = settings.output.join("work");
        let created = if !settings.output.exists() {
            Some(settings.output.clone())
        } else if !work_dir.exists() {
            Some(work_dir.clone())
        } else {
            None
        };
        std::fs::create_dir_all(&work_dir).map_err(|e| Error::io(&work_dir, e))?;
        Ok(Build {
            settings,
            work_dir,
            created,
        })
    }

    /// All six steps in order; on failure, what the build created is removed.
    pub fn run(self, obs: &mut dyn Observer) -> Result<Built> {
        let created = self.created.clone();
        let result = self.steps(obs);
        if let (Err(_), Some(dir)) = (&result, created) {
            // Best effort: the error that stopped the build is what the user must see.
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }

    fn steps(mut self, obs: &mut dyn Observer) -> Result<Built> {
        let inspection = self.inspect(obs)?;
        let quantized = self.quantize(&inspection, obs)?;
        let packaged = self.package(&inspection, &quantized, obs)?;
        let profiled = self.profile(&inspection, &packaged, obs)?;
        let bundled = self.bundle(&packaged, &profiled, obs)?;
        let (report, report_path) =
            self.report(&inspection, &quantized, &packaged, &profiled, &bundled, obs)?;
        Ok(Built {
            report,
            report_path,
            outcomes: bundled.outcomes,
        })
    }

    /// Step 1: the model's contract.
    pub fn inspect(&self, obs: &mut dyn Observer) -> Result<Inspection> {
        let s = &self.settings;
        obs.started(Step::Inspect, &format!("inspect {}", s.model.display()));
        let model = Model::load(&s.model)?;
        let contract = package::contract::contract(&model.proto);
        for (kind, list) in [("input ", &contract.inputs), ("output", &contract.outputs)] {
            for t in list {
                let shape = serde_json::to_string(&t.shape).unwrap_or_default();
                obs.detail(
                    Step::Inspect,
                    &format!("{kind} {} {} {shape}", t.name, t.dtype),
                );
            }
        }
        let name = s
            .model
            .file_stem()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "model".into());
        Ok(Inspection { name, contract })
    }

    /// Step 2: every variant mode asked for, each quantized in an isolated child.
    pub fn quantize(&self, inspection: &Inspection, obs: &mut dyn Observer) -> Result<Quantized> {
        let s = &self.settings;
        let mut out = Quantized::default();
        for &mode in &s.variants {
            let vname = mode.name();
            obs.started(Step::Quantize, &format!("quantize {vname}"));
            let job = quantize::QuantizeJob {
                model: s.model.clone(),
                mode,
                output: self
                    .work_dir
                    .join(format!("{}.{vname}.onnx", inspection.name)),
                report: self
                    .work_dir
                    .join(format!("{}.{vname}.quantize.json", inspection.name)),
                calibration: s.calibration.clone(),
                eval: s.eval.clone(),
                shapes: s.shapes.shapes.clone(),
                dims: s.shapes.dims.clone(),
                input_ranges: s.input_ranges.clone(),
                ort_lib: s.ort_lib.clone(),
                task: s
                    .package
                    .context
                    .as_ref()
                    .and_then(|c| c.postprocessing.as_ref())
                    .and_then(|p| p.task.clone()),
            };
            let called = isolate::call::<_, worker::Response>(
                worker::command(&s.exe),
                &worker::Request::Quantize(job),
                s.quantize_limits,
            )?;
            for line in String::from_utf8_lossy(&called.log).lines() {
                obs.detail(Step::Quantize, line);
            }
            match called.result {
                Ok(worker::Response::Quantize(done)) => out.variants.push(
                    VariantInput::from_quantizer_report(vname, &done.output, &done.report)?,
                ),
                Err(why) => {
                    let why = why.to_string();
                    obs.detail(Step::Quantize, &format!("skipped: {why}"));
                    out.skipped.push(report::SkippedVariant {
                        variant: vname.to_string(),
                        why,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Step 3: the package: the original plus every variant.
    pub fn package(
        &mut self,
        inspection: &Inspection,
        quantized: &Quantized,
        obs: &mut dyn Observer,
    ) -> Result<Packaged> {
        obs.started(Step::Package, "package");
        let s = &mut self.settings;
        let path = s.output.join(format!("{}.edgepkg", inspection.name));
        s.package.name = Some(inspection.name.clone());
        s.package.variants = quantized.variants.clone();
        let manifest = package::write(&s.model, &s.package, &path)?;
        Ok(Packaged { path, manifest })
    }

    /// Step 4: every packaged variant profiled on this host (or its earlier profile
    /// reused). A variant whose profiling fails is recorded and left without predictions.
    pub fn profile(
        &self,
        inspection: &Inspection,
        packaged: &Packaged,
        obs: &mut dyn Observer,
    ) -> Result<Profiled> {
        let s = &self.settings;
        let mut out = Profiled::default();
        let variants = packaged
            .manifest
            .components
            .iter()
            .flat_map(|c| c.variants.iter());
        for v in variants {
            let record =
                |source, profile: Option<&Path>, why: Option<String>| report::ProfileRecord {
                    variant: v.name.clone(),
                    source,
                    profile: profile.map(|p| p.display().to_string()),
                    why,
                };
            if !s.profile {
                out.records
                    .push(record(report::ProfileSource::Skipped, None, None));
                continue;
            }
            let ppath = self
                .work_dir
                .join(format!("{}.profile.json", &v.sha256[..16]));
            if !s.reprofile {
                if let Ok(p) = bundle::load_profile(&ppath) {
                    if p.model.sha256 == v.sha256 {
                        obs.started(
                            Step::Profile,
                            &format!("profile {}: reusing {}", v.name, ppath.display()),
                        );
                        out.profiles.push(p);
                        out.records
                            .push(record(report::ProfileSource::Reused, Some(&ppath), None));
                        continue;
                    }
                }
            }
            obs.started(
                Step::Profile,
                &format!("profile {} ({} plan)", v.name, s.plan.name),
            );
            let vfile = self
                .work_dir
                .join(format!("{}.{}.profiled.onnx", inspection.name, v.name));
            let measured = variant_bytes(&packaged.path, &v.path)
                .and_then(|bytes| crate::artifact::write_atomic(&vfile, &bytes))
                .and_then(|_| self.profile_file(&vfile, &v.session_config, &ppath, obs));
            match measured {
                Ok(p) => {
                    out.profiles.push(p);
                    out.records
                        .push(record(report::ProfileSource::Measured, Some(&ppath), None));
                }
                Err(e) => {
                    obs.detail(Step::Profile, &format!("profiling {} failed: {e}", v.name));
                    out.records.push(record(
                        report::ProfileSource::Failed,
                        None,
                        Some(e.to_string()),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// One model file through the profiler's sweep, with the session entries its
    /// variant runs with (as its bundle will); the profile is written to `json`.
    fn profile_file(
        &self,
        model_path: &Path,
        session_config: &std::collections::BTreeMap<String, String>,
        json: &Path,
        obs: &mut dyn Observer,
    ) -> Result<Profile> {
        let s = &self.settings;
        let model = Model::load(model_path)?;
        let specs = crate::inputs::model_inputs(&model);
        drop(model);
        let mut base_context = crate::runtime::ExecutionContext::default();
        base_context
            .session_config
            .extend(session_config.iter().map(|(k, v)| (k.clone(), v.clone())));
        base_context.validate()?;
        let opts = SweepOptions {
            model_path: model_path.to_path_buf(),
            model_label: model_path.display().to_string(),
            base_context,
            plan: s.plan.clone(),
            shapes: s.shapes.clone(),
            batch_from_cli: false,
            dims_from_cli: false,
            inputs_dir: None,
            samples: vec![],
            generation: crate::inputs::Generation::new(
                &specs,
                &crate::inputs::ValueRanges::from_args(&s.input_ranges)?,
            ),
            per_op: false,
            seed: 0,
            ort_lib: s.ort_lib.clone(),
            json_path: Some(json.to_path_buf()),
            worker: WorkerCommand {
                program: s.exe.clone(),
                args: vec!["__profile-worker".into()],
            },
        };
        let configs = sweep::expand(&specs, &opts)?;
        let info = crate::runtime::ensure(s.ort_lib.as_deref())?;
        let version = info.version.clone().unwrap_or_default();
        let mut relay = SweepRelay { obs };
        let profile = sweep::run(&opts, &configs, &version, &mut relay)?;
        if !profile.configs.iter().any(|c| c.status == Status::Ok) {
            return Err(Error::file(
                model_path,
                format!(
                    "no configuration could run ({} failed)",
                    profile.configs.len()
                ),
            ));
        }
        Ok(profile)
    }

    /// Step 5: a bundle for every target, predictions scaled from this host's profiles.
    pub fn bundle(
        &mut self,
        packaged: &Packaged,
        profiled: &Profiled,
        obs: &mut dyn Observer,
    ) -> Result<Bundled> {
        let s = &mut self.settings;
        obs.started(
            Step::Bundle,
            &format!("bundle for {} target(s)", s.targets.len()),
        );
        let host_compute = bundle::host_compute(
            s.host_compute,
            &profiled.profiles,
            s.hardware_dir.as_deref(),
        )?;
        s.bundle.profiles = profiled.profiles.clone();
        s.bundle.host_compute = host_compute.clone();
        let outcomes = bundle::bundle_all(&packaged.path, &s.targets, &s.bundle, &s.output)?;
        Ok(Bundled {
            outcomes,
            host_compute,
        })
    }

    /// Step 6: the typed report, written to `<output>/<name>-build.json`.
    pub fn report(
        &self,
        inspection: &Inspection,
        quantized: &Quantized,
        packaged: &Packaged,
        profiled: &Profiled,
        bundled: &Bundled,
        obs: &mut dyn Observer,
    ) -> Result<(BuildReport, PathBuf)> {
        let s = &self.settings;
        let path = s.output.join(format!("{}-build.json", inspection.name));
        let report = BuildReport {
            schema: BUILD_SCHEMA.into(),
            edgepack_version: env!("CARGO_PKG_VERSION").into(),
            model: s.model.display().to_string(),
            package: packaged.path.display().to_string(),
            variants: packaged
                .manifest
                .components
                .first()
                .map(|c| {
                    c.variants
                        .iter()
                        .map(|v| report::VariantRecord {
                            name: v.name.clone(),
                            sha256: v.sha256.clone(),
                            size_bytes: v.size_bytes,
                            sqnr_db: v.sqnr_db,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            skipped_variants: quantized.skipped.clone(),
            profiles: profiled.records.clone(),
            host_compute: bundled
                .host_compute
                .as_ref()
                .map(|(v, b)| report::HostCompute {
                    relative_compute: *v,
                    basis: b.clone(),
                }),
            latency_budget_s: s.bundle.budgets.latency_budget_s,
            prefer: format!("{:?}", s.bundle.budgets.prefer).to_lowercase(),
            targets: bundled
                .outcomes
                .iter()
                .map(report::TargetRecord::from_outcome)
                .collect(),
        };
        report.write(&path)?;
        obs.started(Step::Report, &format!("report {}", path.display()));
        for v in &quantized.skipped {
            obs.detail(
                Step::Report,
                &format!("note: no {} variant: {}", v.variant, v.why),
            );
        }
        Ok((report, path))
    }
}

/// Relays the sweep's per-configuration results as details of the profile step.
struct SweepRelay<'a> {
    obs: &'a mut dyn Observer,
}

impl SweepObserver for SweepRelay<'_> {
    fn finished(&mut self, step: sweep::Step, r: &ConfigResult, _merged: &ConfigResult) {
        let line = format!("{}{}", step.round_prefix(), r.progress_line());
        self.obs.detail(Step::Profile, &line);
    }
}

/// A variant's bytes from a (just written, verified) package.
fn variant_bytes(pkg: &Path, path: &str) -> Result<Vec<u8>> {
    let o = package::open(pkg, None)?;
    o.archive
        .entries
        .get(path)
        .cloned()
        .ok_or_else(|| Error::file(pkg, format!("'{path}' missing")))
}
