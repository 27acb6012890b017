//! [`Session`]: an ONNX Runtime session built from an [`ExecutionContext`], with inputs
//! checked against the model before anything reaches ONNX Runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ort::session::builder::SessionBuilder;
use ort::session::{IoBinding, Session as OrtSession, SessionInputValue};
use ort::value::{DynTensor, DynValue};

use super::context::{
    ExecutionContext, ExecutionMode, GraphOptimizationLevel, Provider, ProviderFallback,
    ProviderReport, UnavailableProvider,
};
use super::convert;
use super::library;
use crate::error::{Error, Result};
use crate::inputs::{check_tensor, Dim, Role, TensorSpec};
use crate::model::Model;
use crate::tensor::Tensor;

/// ORT session option naming the folder external initializers resolve against when the
/// model comes from memory (ONNX Runtime >= 1.17).
const EXTERNAL_FOLDER_KEY: &str = "session.model_external_initializers_file_folder_path";

/// An ONNX Runtime session: RAII over `ort`'s session, plus the model's signature and the
/// providers it actually got.
pub struct Session {
    inner: OrtSession,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    providers: ProviderReport,
    profiling: bool,
    bound: Option<Bound>,
    /// Session entries taken from the model's own metadata.
    model_entries: BTreeMap<String, String>,
}

/// Inputs and outputs bound once for repeated runs (the profiler's timing loop).
struct Bound {
    binding: IoBinding,
    output_names: Vec<String>,
    /// Preallocated output tensors ORT writes into on every run.
    outputs: Vec<DynTensor>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("providers", &self.providers)
            .field("profiling", &self.profiling)
            .finish()
    }
}

/// ONNX Runtime messages sometimes span lines; errors are printed as one line.
pub(crate) fn one_line(msg: impl std::fmt::Display) -> String {
    msg.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn ort_err(what: &str) -> impl Fn(ort::Error) -> Error + '_ {
    move |e| Error::Runtime(format!("{what}: {}", one_line(e)))
}

fn builder_err(what: &str) -> impl Fn(ort::Error<SessionBuilder>) -> Error + '_ {
    move |e| Error::Runtime(format!("{what}: {}", one_line(e)))
}

/// The session entries a model records (`model::metadata`) joined with the context's:
/// an entry the caller set explicitly (`--session-config`, a manifest) wins. Returns the
/// context to build with and the entries that came from the model.
fn with_model_entries(
    ctx: &ExecutionContext,
    recorded: BTreeMap<String, String>,
) -> (ExecutionContext, BTreeMap<String, String>) {
    let from_model: BTreeMap<String, String> = recorded
        .into_iter()
        .filter(|(k, _)| !ctx.session_config.contains_key(k))
        .collect();
    let mut ctx = ctx.clone();
    ctx.session_config.extend(from_model.clone());
    (ctx, from_model)
}

/// Build a session builder from the context; registers providers and reports which ones.
fn configure(ctx: &ExecutionContext) -> Result<(SessionBuilder, ProviderReport)> {
    ctx.validate()?;
    let loaded = library::loaded()?;
    let mut b = OrtSession::builder(&loaded.env).map_err(ort_err("session builder"))?;
    if let Some(n) = ctx.intra_op_threads {
        b = b
            .with_intra_threads(n)
            .map_err(builder_err("intra_op_threads"))?;
    }
    if let Some(n) = ctx.inter_op_threads {
        b = b
            .with_inter_threads(n)
            .map_err(builder_err("inter_op_threads"))?;
    }
    b = b
        .with_parallel_execution(ctx.execution_mode == ExecutionMode::Parallel)
        .map_err(builder_err("execution_mode"))?;
    let level = match ctx.graph_optimization_level {
        GraphOptimizationLevel::Disable => ort::session::builder::GraphOptimizationLevel::Disable,
        GraphOptimizationLevel::Basic => ort::session::builder::GraphOptimizationLevel::Level1,
        GraphOptimizationLevel::Extended => ort::session::builder::GraphOptimizationLevel::Level2,
        GraphOptimizationLevel::All => ort::session::builder::GraphOptimizationLevel::All,
    };
    b = b
        .with_optimization_level(level)
        .map_err(builder_err("graph_optimization_level"))?;
    b = b
        .with_memory_pattern(ctx.enable_mem_pattern)
        .map_err(builder_err("enable_mem_pattern"))?;
    if let Some(p) = &ctx.profiling_prefix {
        b = b.with_profiling(p).map_err(builder_err("profiling"))?;
    }
    if let Some(p) = &ctx.optimized_model_path {
        b = b
            .with_optimized_model_path(p)
            .map_err(builder_err("optimized_model_path"))?;
    }
    for (k, v) in &ctx.session_config {
        b = b
            .with_config_entry(k.as_str(), v.as_str())
            .map_err(builder_err("session_config"))?;
    }

    let mut report = ProviderReport {
        requested: ctx.execution_providers.clone(),
        registered: Vec::new(),
        unavailable: Vec::new(),
    };
    for &p in &ctx.execution_providers {
        match p {
            Provider::Cpu => {}
            Provider::Cuda => match register_cuda(&mut b) {
                Ok(()) => report.registered.push(Provider::Cuda),
                Err(reason) => {
                    if ctx.provider_fallback == ProviderFallback::Fail {
                        return Err(Error::Runtime(format!(
                            "execution provider cuda is unavailable: {reason}"
                        )));
                    }
                    report.unavailable.push(UnavailableProvider {
                        provider: Provider::Cuda,
                        reason,
                    });
                }
            },
        }
    }
    // The CPU provider is always there as ONNX Runtime's last resort; registering it
    // explicitly applies the arena setting.
    use ort::ep::ExecutionProvider;
    ort::ep::CPU::default()
        .with_arena_allocator(ctx.enable_mem_arena)
        .register(&mut b)
        .map_err(ort_err("cpu execution provider"))?;
    report.registered.push(Provider::Cpu);
    Ok((b, report))
}

#[cfg(feature = "cuda")]
fn register_cuda(b: &mut SessionBuilder) -> std::result::Result<(), String> {
    use ort::ep::ExecutionProvider;
    match ort::ep::CUDA::is_available() {
        Ok(true) => {}
        Ok(false) => {
            return Err("this ONNX Runtime build has no CUDA provider (install a GPU build)".into())
        }
        Err(e) => return Err(e.to_string()),
    }
    ort::ep::CUDA::default()
        .register(b)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn register_cuda(_b: &mut SessionBuilder) -> std::result::Result<(), String> {
    Err("edgepack was built without the `cuda` feature".into())
}

fn spec_from_outlet(o: &ort::value::Outlet) -> TensorSpec {
    let dtype = o.dtype();
    let elem_type = dtype
        .tensor_type()
        .and_then(convert::dtype_of)
        .map(|d| d.to_onnx() as i32)
        .unwrap_or(0);
    let dims = match dtype {
        ort::value::ValueType::Tensor {
            shape,
            dimension_symbols,
            ..
        } => Some(
            shape
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    let sym = dimension_symbols.get(i).map(String::as_str).unwrap_or("");
                    if d >= 0 {
                        Dim::Fixed(d)
                    } else if !sym.is_empty() && sym != "?" {
                        Dim::Symbol(sym.to_string())
                    } else {
                        Dim::Unknown
                    }
                })
                .collect(),
        ),
        _ => None,
    };
    let mut spec = TensorSpec {
        name: o.name().to_string(),
        elem_type,
        dims,
        role: Role::Data,
    };
    // Without the graph only the signature tells: the profile worker passes the roles the
    // parent read from the graph (`inputs::model_inputs`).
    spec.role = spec.role_from_signature();
    spec
}

impl Session {
    /// Build a session from an in-memory model. External data resolves against the model's
    /// own folder (set explicitly, never the current directory); a model with external
    /// data and no folder is refused.
    pub fn from_model(model: &Model, ctx: &ExecutionContext) -> Result<Self> {
        Self::from_cow(std::borrow::Cow::Borrowed(model), ctx)
    }

    /// [`Session::from_model`] for a model the caller no longer needs: its decoded form is
    /// dropped once encoded, before ONNX Runtime parses its own copy, so a large model is
    /// held twice at most, not three times.
    pub fn from_owned_model(model: Model, ctx: &ExecutionContext) -> Result<Self> {
        Self::from_cow(std::borrow::Cow::Owned(model), ctx)
    }

    fn from_cow(model: std::borrow::Cow<'_, Model>, ctx: &ExecutionContext) -> Result<Self> {
        let (ctx, from_model) =
            with_model_entries(ctx, crate::model::metadata::session_entries(&model.proto));
        let ctx = &ctx;
        let (mut b, report) = configure(ctx)?;
        let has_external = crate::model::external::has_external(&model.proto);
        if let Some(dir) = model.base_dir() {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            b = b
                .with_config_entry(EXTERNAL_FOLDER_KEY, dir.to_string_lossy())
                .map_err(builder_err("external data folder"))?;
        } else if has_external {
            return Err(Error::usage(
                "model",
                "the model references external data but has no folder to resolve it against; \
                 load it from a file or inline the data first",
            ));
        }
        let bytes = model.to_bytes();
        let origin = model
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "in-memory model".into());
        drop(model);
        let inner = b.commit_from_memory(&bytes).map_err(|e| {
            Error::Runtime(format!(
                "{origin}: cannot create a session: {}",
                one_line(e)
            ))
        })?;
        Ok(Self::wrap(inner, report, ctx, from_model))
    }

    /// Build a session from a model file. The path is made absolute first so ONNX Runtime
    /// resolves external data against the model's folder, whatever the current directory.
    pub fn from_path(path: &Path, ctx: &ExecutionContext) -> Result<Self> {
        let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        let (ctx, from_model) =
            with_model_entries(ctx, crate::model::metadata::read_session_entries(&abs)?);
        let ctx = &ctx;
        let (mut b, report) = configure(ctx)?;
        let inner = b.commit_from_file(&abs).map_err(|e| {
            Error::file(
                path,
                format!("ONNX Runtime cannot load the model: {}", one_line(e)),
            )
        })?;
        Ok(Self::wrap(inner, report, ctx, from_model))
    }

    /// [`Session::from_path`] with the context exactly as given: the model's recorded
    /// session entries are not read. For the profiler's worker, whose parent already
    /// merged them into the context (`profile::sweep`), so that session creation time
    /// measures ONNX Runtime alone.
    pub fn from_path_as_given(path: &Path, ctx: &ExecutionContext) -> Result<Self> {
        let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        let (mut b, report) = configure(ctx)?;
        let inner = b.commit_from_file(&abs).map_err(|e| {
            Error::file(
                path,
                format!("ONNX Runtime cannot load the model: {}", one_line(e)),
            )
        })?;
        Ok(Self::wrap(inner, report, ctx, BTreeMap::new()))
    }

    fn wrap(
        inner: OrtSession,
        providers: ProviderReport,
        ctx: &ExecutionContext,
        model_entries: BTreeMap<String, String>,
    ) -> Self {
        let inputs = inner.inputs().iter().map(spec_from_outlet).collect();
        let outputs = inner.outputs().iter().map(spec_from_outlet).collect();
        Session {
            inner,
            inputs,
            outputs,
            providers,
            profiling: ctx.profiling_prefix.is_some(),
            bound: None,
            model_entries,
        }
    }

    /// The session entries this session applied because the model records them in its
    /// metadata (those the context did not set itself). Commands report them.
    pub fn model_entries(&self) -> &BTreeMap<String, String> {
        &self.model_entries
    }

    /// The inputs ONNX Runtime expects (names, element types, dims).
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// The outputs the session produces.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// Which providers were asked for, registered, and unavailable.
    pub fn providers(&self) -> &ProviderReport {
        &self.providers
    }

    /// Check inputs against the signature: every input given once, none unknown, exact
    /// element types, ranks and fixed dims. Errors name the input.
    pub fn check_inputs(&self, inputs: &[(String, Tensor)]) -> Result<()> {
        for (name, _) in inputs {
            if !self.inputs.iter().any(|s| &s.name == name) {
                return Err(Error::input(
                    name,
                    format!(
                        "the model has no such input (its inputs: {})",
                        self.input_names().join(", ")
                    ),
                ));
            }
            if inputs.iter().filter(|(n, _)| n == name).count() > 1 {
                return Err(Error::input(name, "given more than once"));
            }
        }
        for spec in &self.inputs {
            let Some((_, t)) = inputs.iter().find(|(n, _)| n == &spec.name) else {
                return Err(Error::input(
                    &spec.name,
                    "missing: the model needs this input",
                ));
            };
            check_tensor(spec, t)?;
        }
        Ok(())
    }

    fn input_names(&self) -> Vec<&str> {
        self.inputs.iter().map(|s| s.name.as_str()).collect()
    }

    /// Run once: check the inputs, run, copy every output out (in the model's output order).
    pub fn run(&mut self, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        self.check_inputs(inputs)?;
        let mut values: Vec<(String, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            values.push((name.clone(), convert::input_view(name, t)?));
        }
        let outputs = self.inner.run(values).map_err(ort_err("run"))?;
        let mut out = Vec::with_capacity(self.outputs.len());
        for spec in &self.outputs {
            let v = outputs.get(&spec.name).ok_or_else(|| {
                Error::Runtime(format!("output '{}' was not produced", spec.name))
            })?;
            out.push((spec.name.clone(), convert::from_value(&spec.name, v)?));
        }
        Ok(out)
    }

    /// Run once and copy out only the outputs named in `outputs` (in that order). ONNX
    /// Runtime then skips the work only the other outputs need. Unknown names are refused
    /// before running.
    pub fn run_selected(
        &mut self,
        inputs: &[(String, Tensor)],
        outputs: &[String],
    ) -> Result<Vec<(String, Tensor)>> {
        if outputs.is_empty() {
            return self.run(inputs);
        }
        for name in outputs {
            if !self.outputs.iter().any(|s| &s.name == name) {
                return Err(Error::usage(
                    "outputs",
                    format!(
                        "the model has no output '{name}' (its outputs: {})",
                        self.outputs
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        self.check_inputs(inputs)?;
        let mut values: Vec<(String, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            values.push((name.clone(), convert::input_view(name, t)?));
        }
        let selector = outputs
            .iter()
            .fold(ort::session::OutputSelector::no_default(), |sel, n| {
                sel.with(n.as_str())
            });
        let options = ort::session::RunOptions::new()
            .map_err(ort_err("run options"))?
            .with_outputs(selector);
        let produced = self
            .inner
            .run_with_options(values, &options)
            .map_err(ort_err("run"))?;
        let mut out = Vec::with_capacity(outputs.len());
        for name in outputs {
            let v = produced
                .get(name)
                .ok_or_else(|| Error::Runtime(format!("output '{name}' was not produced")))?;
            out.push((name.clone(), convert::from_value(name, v)?));
        }
        Ok(out)
    }

    /// Prepare the fast path: check and copy the inputs into ONNX Runtime once, learn the
    /// output shapes with one ordinary run, and preallocate the outputs so
    /// [`Session::run_bound`] does nothing but ONNX Runtime's `Run`. Replaces any earlier
    /// binding. Returns the outputs of that first run.
    pub fn bind(&mut self, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        self.bound = None;
        let first = self.run(inputs)?;
        let mut binding = self.inner.create_binding().map_err(ort_err("binding"))?;
        for (name, t) in inputs {
            let v: DynValue = convert::to_value(name, t)?;
            binding
                .bind_input(name.as_str(), &v)
                .map_err(ort_err("bind input"))?;
        }
        let mut outputs = Vec::with_capacity(first.len());
        let mut output_names = Vec::with_capacity(first.len());
        for (name, t) in &first {
            let mut value = DynTensor::new(
                self.inner.allocator(),
                convert::element_type(t.dtype()),
                t.shape().to_vec(),
            )
            .map_err(ort_err("allocate output"))?;
            binding
                .bind_output(name.as_str(), &mut value)
                .map_err(ort_err("bind output"))?;
            outputs.push(value);
            output_names.push(name.clone());
        }
        self.bound = Some(Bound {
            binding,
            output_names,
            outputs,
        });
        // One bound run up front so a failure shows here, not inside a timing loop.
        self.run_bound()?;
        Ok(first)
    }

    /// Run with the inputs and outputs bound by [`Session::bind`]: only ONNX Runtime's
    /// `RunWithBinding`. Outputs land in the preallocated tensors (read them with
    /// [`Session::bound_outputs`]).
    ///
    /// Why the raw C call: `ort`'s `run_binding` also fetches and wraps every bound output
    /// after each run (an allocation plus reference counting per output), work a timing
    /// loop must not include. Measured with `examples/run_overhead.rs`.
    #[inline]
    pub fn run_bound(&mut self) -> Result<()> {
        use ort::AsPointer;
        let bound = self
            .bound
            .as_ref()
            .ok_or_else(|| Error::usage("run_bound", "call bind() first"))?;
        let api = ort::api();
        // SAFETY: the session and the binding are alive (owned by `self`); the binding keeps
        // its input values alive and `bound.outputs` keeps the output tensors alive; `&mut
        // self` guarantees no concurrent run on this session (RunWithBinding is not
        // thread-safe). A non-null status is read once and released once.
        let status = unsafe {
            (api.RunWithBinding)(
                self.inner.ptr().cast_mut(),
                std::ptr::null(),
                bound.binding.ptr(),
            )
        };
        if status.0.is_null() {
            return Ok(());
        }
        let message = unsafe {
            let text = std::ffi::CStr::from_ptr((api.GetErrorMessage)(status.0))
                .to_string_lossy()
                .into_owned();
            (api.ReleaseStatus)(status.0);
            text
        };
        Err(Error::Runtime(format!("run: {}", one_line(message))))
    }

    /// The outputs of the last bound run, copied out.
    pub fn bound_outputs(&self) -> Result<Vec<(String, Tensor)>> {
        let bound = self
            .bound
            .as_ref()
            .ok_or_else(|| Error::usage("bound_outputs", "call bind() first"))?;
        bound
            .output_names
            .iter()
            .zip(&bound.outputs)
            .map(|(n, v)| Ok((n.clone(), convert::from_value(n, v)?)))
            .collect()
    }

    /// Finish ONNX Runtime's profiling and return the profile JSON's path, or `None` when
    /// the context did not enable profiling. Profiling stops for the rest of the session.
    pub fn end_profiling(&mut self) -> Result<Option<PathBuf>> {
        if !self.profiling {
            return Ok(None);
        }
        self.profiling = false;
        let name = self
            .inner
            .end_profiling()
            .map_err(ort_err("end profiling"))?;
        Ok(Some(PathBuf::from(name)))
    }
}
