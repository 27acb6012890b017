//! Hardware targets: what a device offers a model (cores, ISA, RAM share, storage budget,
//! accelerator, execution providers) and how fast its CPU is relative to a reference core.
//!
//! Targets are TOML files (`hardware/*.toml`, users add their own) parsed strictly: an
//! unknown key, an unknown ISA feature or execution provider is an error, because a typo in
//! a target silently changes which variant a device gets. The special target `host` is the
//! machine edgepack runs on, detected at run time ([`host()`]).
//!
//! ## Relative compute
//! `relative_compute` is the speed of **one CPU core** of the target relative to the
//! reference core, one Cortex-A72 at 1.8 GHz (Raspberry Pi 4 Model B, = 1.0). A latency
//! measured on the host with `t` threads is scaled to the target as
//! `p50_target = p50_host * host_compute / target_compute` for the same `t` (threads are
//! capped at the target's cores). This is a coarse, first-order estimate (memory bandwidth,
//! cache sizes and kernel quality differ between ISAs): every prediction records its basis,
//! and a profile measured on the device (`bundle --device-profile`) replaces it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub mod cost;
pub mod derive;
pub mod device;
pub mod host;
pub mod planner;
pub mod probe;

pub use host::{host, host_relative_compute, HostCompute};

/// CPU architectures a target can have (the ONNX Runtime builds we can bundle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The `edgepack runtime install --platform` name of this architecture (Linux only).
    pub fn platform(self) -> &'static str {
        match self {
            Arch::X86_64 => "linux-x86_64",
            Arch::Aarch64 => "linux-aarch64",
        }
    }

    /// The name used in TOML files and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// Execution providers we know (ONNX Runtime names, lower case, without `ExecutionProvider`).
pub const KNOWN_EXECUTION_PROVIDERS: &[&str] = &[
    "cpu", "cuda", "tensorrt", "openvino", "xnnpack", "acl", "armnn", "qnn", "rocm", "migraphx",
    "dml", "coreml", "nnapi",
];

/// An accelerator on the target (GPU, NPU).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accelerator {
    pub name: String,
    /// Memory the accelerator can use. On SoCs with unified memory this is the system RAM
    /// (`shared_memory = true`) and is not additional to `ram_bytes`.
    pub memory_bytes: u64,
    #[serde(default)]
    pub shared_memory: bool,
    /// CUDA compute capability (e.g. "8.7"), where it applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<String>,
}

/// The file form of a target: `ram_bytes` or `ram_gb`, one of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    arch: Arch,
    cores: usize,
    cpu_model: String,
    #[serde(default)]
    isa_features: Vec<String>,
    #[serde(default)]
    ram_bytes: Option<u64>,
    #[serde(default)]
    ram_gb: Option<f64>,
    model_ram_share: f64,
    storage_budget_bytes: u64,
    #[serde(default)]
    accelerator: Option<Accelerator>,
    execution_providers: Vec<String>,
    relative_compute: f64,
    source: Vec<String>,
    #[serde(default)]
    device_profile: Option<PathBuf>,
    /// Public figures of the CPU, for a derived device profile (`derive`): read by the
    /// derivation only, so not kept in [`Target`].
    #[serde(default)]
    cpu_figures: Option<derive::CpuFigures>,
}

/// A hardware target, validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Slug used in bundle file names (`dist/<model>-<name>.zip`).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub arch: Arch,
    pub cores: usize,
    pub cpu_model: String,
    pub isa_features: Vec<String>,
    pub ram_bytes: u64,
    /// Fraction of RAM the model may use (the rest belongs to the OS and the application).
    pub model_ram_share: f64,
    /// Largest bundle (zip) the device may receive.
    pub storage_budget_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<Accelerator>,
    /// Execution providers available on the device, preferred first.
    pub execution_providers: Vec<String>,
    /// Per-core CPU speed relative to one Cortex-A72 @ 1.8 GHz (see the module docs).
    pub relative_compute: f64,
    /// Public documents the figures come from.
    pub source: Vec<String>,
    /// A device profile (`edgepack probe` run on the device, [`device`], or derived from
    /// public figures, [`derive`]): bundles predict latency and memory from it with the
    /// cost model instead of scaling by `relative_compute`. Relative paths in a file
    /// resolve against the file's folder; `builtin:<file>` names a profile compiled into
    /// the binary ([`BUILTIN_DEVICE_PROFILES`]); the profile must exist and parse when the
    /// target is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_profile: Option<PathBuf>,
}

impl Target {
    /// Memory the model may use on this target.
    pub fn model_ram_bytes(&self) -> u64 {
        (self.ram_bytes as f64 * self.model_ram_share).floor() as u64
    }

    /// Whether the target lists an ISA feature.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.isa_features.iter().any(|f| f == feature)
    }

    /// Parse and validate a target from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let file: TargetFile = toml::from_str(text).map_err(|e| {
            Error::file(
                origin,
                format!("not a valid hardware target: {}", e.message()),
            )
        })?;
        Self::validate(file, origin)
    }

    /// Read a target file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, path)
    }

    fn validate(f: TargetFile, origin: &Path) -> Result<Self> {
        let bad = |m: String| Err(Error::file(origin, m));
        if f.name.is_empty()
            || !f.name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.'
            })
            || f.name.starts_with('.')
        {
            return bad(format!(
                "name '{}' must be a non-empty slug of a-z, 0-9, '-', '_', '.' (it is used in file names)",
                f.name
            ));
        }
        if f.cores == 0 {
            return bad("cores must be at least 1".into());
        }
        let ram_bytes = match (f.ram_bytes, f.ram_gb) {
            (Some(b), None) => b,
            (None, Some(gb)) if gb.is_finite() && gb > 0.0 => {
                (gb * 1024.0 * 1024.0 * 1024.0).round() as u64
            }
            (None, Some(gb)) => return bad(format!("ram_gb must be positive, got {gb}")),
            (Some(_), Some(_)) => return bad("give ram_bytes or ram_gb, not both".into()),
            (None, None) => return bad("missing ram_bytes (or ram_gb)".into()),
        };
        if ram_bytes == 0 {
            return bad("ram_bytes must be positive".into());
        }
        if !(f.model_ram_share > 0.0 && f.model_ram_share <= 1.0) {
            return bad(format!(
                "model_ram_share must be in (0, 1], got {}",
                f.model_ram_share
            ));
        }
        if f.storage_budget_bytes == 0 {
            return bad("storage_budget_bytes must be positive".into());
        }
        if !(f.relative_compute.is_finite() && f.relative_compute > 0.0) {
            return bad(format!(
                "relative_compute must be positive, got {}",
                f.relative_compute
            ));
        }
        for feat in &f.isa_features {
            if !crate::isa::KNOWN.contains(&feat.as_str()) {
                return bad(format!(
                    "unknown ISA feature '{feat}' (known: {})",
                    crate::isa::KNOWN.join(", ")
                ));
            }
        }
        if f.execution_providers.is_empty() {
            return bad(
                "execution_providers must list at least one provider (e.g. \"cpu\")".into(),
            );
        }
        for ep in &f.execution_providers {
            if !KNOWN_EXECUTION_PROVIDERS.contains(&ep.as_str()) {
                return bad(format!(
                    "unknown execution provider '{ep}' (known: {})",
                    KNOWN_EXECUTION_PROVIDERS.join(", ")
                ));
            }
        }
        if f.source.is_empty() || f.source.iter().any(|s| s.trim().is_empty()) {
            return bad("source must name the public documents the figures come from".into());
        }
        if let Some(acc) = &f.accelerator {
            if acc.memory_bytes == 0 {
                return bad("accelerator.memory_bytes must be positive".into());
            }
        }
        if let Some(fig) = &f.cpu_figures {
            fig.validate()
                .map_err(|e| Error::file(origin, e.to_string()))?;
        }
        let device_profile = match &f.device_profile {
            None => None,
            Some(p) if p.to_string_lossy().starts_with("builtin:") => {
                if builtin_device_profile(p).is_none() {
                    return bad(format!(
                        "device_profile {} is not a built-in profile (built in: {})",
                        p.display(),
                        BUILTIN_DEVICE_PROFILES
                            .iter()
                            .map(|(f, _)| format!("builtin:{f}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                device::DeviceProfile::load(p)
                    .map_err(|e| Error::file(origin, format!("device_profile: {e}")))?;
                Some(p.clone())
            }
            Some(p) => {
                let full = if p.is_absolute() {
                    p.clone()
                } else {
                    origin.parent().unwrap_or(Path::new(".")).join(p)
                };
                if !full.is_file() {
                    return bad(format!(
                        "device_profile {} does not exist (run edgepack probe on the device)",
                        full.display()
                    ));
                }
                device::DeviceProfile::load(&full)
                    .map_err(|e| Error::file(origin, format!("device_profile: {e}")))?;
                Some(full)
            }
        };
        Ok(Target {
            device_profile,
            name: f.name,
            description: f.description,
            arch: f.arch,
            cores: f.cores,
            cpu_model: f.cpu_model,
            isa_features: f.isa_features,
            ram_bytes,
            model_ram_share: f.model_ram_share,
            storage_budget_bytes: f.storage_budget_bytes,
            accelerator: f.accelerator,
            execution_providers: f.execution_providers,
            relative_compute: f.relative_compute,
            source: f.source,
        })
    }
}

/// The targets in the repository's `hardware/` folder, compiled into the binary (as the
/// profile plans are), so `edgepack targets` and `--targets builtin` work anywhere.
pub const BUILTIN_TARGETS: [(&str, &str); 7] = [
    (
        "cloud-vm-2vcpu-4gb.toml",
        include_str!("../../hardware/cloud-vm-2vcpu-4gb.toml"),
    ),
    ("gpu-vm.toml", include_str!("../../hardware/gpu-vm.toml")),
    (
        "jetson-nano-4gb.toml",
        include_str!("../../hardware/jetson-nano-4gb.toml"),
    ),
    (
        "jetson-orin-nano-8gb.toml",
        include_str!("../../hardware/jetson-orin-nano-8gb.toml"),
    ),
    (
        "raspberry-pi-4-4gb.toml",
        include_str!("../../hardware/raspberry-pi-4-4gb.toml"),
    ),
    (
        "raspberry-pi-5-8gb.toml",
        include_str!("../../hardware/raspberry-pi-5-8gb.toml"),
    ),
    (
        "x86-industrial-pc.toml",
        include_str!("../../hardware/x86-industrial-pc.toml"),
    ),
];

/// Device profiles derived from public figures for the built-in targets
/// (`docs/derived-profiles.md`), compiled into the binary; targets name them
/// `builtin:<file>`. A unit test checks each equals its derivation from the committed
/// reference probe and figures.
pub const BUILTIN_DEVICE_PROFILES: [(&str, &str); 7] = [
    (
        "cloud-vm-2vcpu-4gb.device.json",
        include_str!("../../hardware/cloud-vm-2vcpu-4gb.device.json"),
    ),
    (
        "gpu-vm.device.json",
        include_str!("../../hardware/gpu-vm.device.json"),
    ),
    (
        "jetson-nano-4gb.device.json",
        include_str!("../../hardware/jetson-nano-4gb.device.json"),
    ),
    (
        "jetson-orin-nano-8gb.device.json",
        include_str!("../../hardware/jetson-orin-nano-8gb.device.json"),
    ),
    (
        "raspberry-pi-4-4gb.device.json",
        include_str!("../../hardware/raspberry-pi-4-4gb.device.json"),
    ),
    (
        "raspberry-pi-5-8gb.device.json",
        include_str!("../../hardware/raspberry-pi-5-8gb.device.json"),
    ),
    (
        "x86-industrial-pc.device.json",
        include_str!("../../hardware/x86-industrial-pc.device.json"),
    ),
];

/// Refuse, before anything is built or written, a target whose probed device profile
/// comes from another ONNX Runtime version than the one `ort_lib` (or the default) loads:
/// its kernel lines do not describe this runtime. A derived profile is an estimate
/// already: its predictions carry a note instead ([`cost::predict_file`]). Loads the
/// runtime only when some target carries a probed profile.
pub fn check_device_profiles<'a>(
    targets: impl IntoIterator<Item = &'a Target>,
    ort_lib: Option<&Path>,
) -> Result<()> {
    let mut probed = vec![];
    for t in targets {
        if let Some(p) = &t.device_profile {
            let d = device::DeviceProfile::load(p)?;
            if !d.is_derived() {
                probed.push((t, p, d));
            }
        }
    }
    if probed.is_empty() {
        return Ok(());
    }
    let info = crate::runtime::ensure(ort_lib)?;
    let running = info.version.as_deref().unwrap_or("?");
    for (t, p, d) in probed {
        d.check_runtime(running, p).map_err(|e| match e {
            Error::File { path, message } => Error::File {
                path,
                message: format!("device profile of target '{}': {message}", t.name),
            },
            e => e,
        })?;
    }
    Ok(())
}

/// The text of a built-in device profile named `builtin:<file>`.
pub fn builtin_device_profile(path: &Path) -> Option<&'static str> {
    let name = path.to_str()?.strip_prefix("builtin:")?;
    BUILTIN_DEVICE_PROFILES
        .iter()
        .find(|(f, _)| *f == name)
        .map(|(_, t)| *t)
}

/// The public CPU figures a target file carries for its derived profile (`None` when it
/// has none).
pub fn cpu_figures_from_toml(text: &str, origin: &Path) -> Result<Option<derive::CpuFigures>> {
    let file: TargetFile = toml::from_str(text).map_err(|e| {
        Error::file(
            origin,
            format!("not a valid hardware target: {}", e.message()),
        )
    })?;
    Ok(file.cpu_figures)
}

/// The built-in targets, by file name order; their origin reads `builtin:<file>`.
pub fn builtin() -> Result<Vec<(PathBuf, Target)>> {
    BUILTIN_TARGETS
        .iter()
        .map(|(file, text)| {
            let origin = PathBuf::from(format!("builtin:{file}"));
            let t = Target::from_toml(text, &origin)?;
            Ok((origin, t))
        })
        .collect()
}

/// The built-in targets plus those in `dir` (a folder adds to them; a file there with a
/// built-in target's name replaces it).
pub fn builtin_and(dir: Option<&Path>) -> Result<Vec<(PathBuf, Target)>> {
    let mut out = builtin()?;
    if let Some(d) = dir {
        for (p, t) in load_dir(d)? {
            out.retain(|(_, o)| o.name != t.name);
            out.push((p, t));
        }
    }
    Ok(out)
}

/// Read every `*.toml` in a folder, sorted by file name. Any bad file is an error.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Target)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
            paths.push(p);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(Error::file(
            dir,
            "no hardware target files (*.toml) in this folder",
        ));
    }
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let t = Target::load(&p)?;
        if let Some((other, _)) = out
            .iter()
            .find(|(_, o): &&(PathBuf, Target)| o.name == t.name)
        {
            return Err(Error::file(
                &p,
                format!(
                    "target name '{}' is also used by {}",
                    t.name,
                    other.display()
                ),
            ));
        }
        out.push((p, t));
    }
    Ok(out)
}

/// Resolve a `--target` value: `host`, a path to a TOML file, or a folder of them.
pub fn resolve(spec: &str) -> Result<Vec<Target>> {
    if spec == "host" {
        return Ok(vec![host()]);
    }
    let p = Path::new(spec);
    if p.is_dir() {
        return Ok(load_dir(p)?.into_iter().map(|(_, t)| t).collect());
    }
    Ok(vec![Target::load(p)?])
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtin_targets_are_every_file_of_the_hardware_folder_and_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware");
        let on_disk: Vec<String> = super::load_dir(&dir)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let compiled: Vec<String> = super::BUILTIN_TARGETS
            .iter()
            .map(|(f, _)| f.to_string())
            .collect();
        assert_eq!(
            compiled, on_disk,
            "add new hardware/*.toml files to BUILTIN_TARGETS"
        );
        assert_eq!(super::builtin().unwrap().len(), on_disk.len());
    }
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
arch = "aarch64"
cores = 4
cpu_model = "Cortex-A72"
isa_features = ["neon"]
ram_gb = 4
model_ram_share = 0.5
storage_budget_bytes = 1000
execution_providers = ["cpu"]
relative_compute = 1.0
source = ["https://example.invalid/spec"]
"#;

    fn parse(text: &str) -> Result<Target> {
        Target::from_toml(text, Path::new("t.toml"))
    }

    #[test]
    fn parses_every_file_in_hardware_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware");
        let targets = load_dir(&dir).unwrap();
        assert!(targets.len() >= 7, "{} targets", targets.len());
        for (path, t) in &targets {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            assert_eq!(stem, t.name, "{} names itself '{}'", path.display(), t.name);
            assert!(
                t.source.iter().any(|s| s.starts_with("https://")),
                "{} cites no URL",
                t.name
            );
            assert!(t.model_ram_bytes() > 0);
        }
    }

    #[test]
    fn ram_gb_is_converted_to_bytes() {
        let t = parse(MINIMAL).unwrap();
        assert_eq!(t.ram_bytes, 4 * 1024 * 1024 * 1024);
        assert_eq!(t.model_ram_bytes(), 2 * 1024 * 1024 * 1024);
        assert_eq!(t.arch.platform(), "linux-aarch64");
    }

    #[test]
    fn rejects_unknown_keys() {
        let e = parse(&format!("{MINIMAL}\nram_size = 3\n")).unwrap_err();
        assert!(e.to_string().contains("ram_size"), "{e}");
    }

    #[test]
    fn rejects_unknown_isa_feature_and_provider() {
        let e = parse(&MINIMAL.replace("[\"neon\"]", "[\"nein\"]")).unwrap_err();
        assert!(e.to_string().contains("unknown ISA feature 'nein'"), "{e}");
        let e = parse(&MINIMAL.replace("[\"cpu\"]", "[\"cuda-ep\"]")).unwrap_err();
        assert!(e.to_string().contains("unknown execution provider"), "{e}");
    }

    #[test]
    fn rejects_both_or_neither_ram_field_and_bad_share() {
        let e = parse(&MINIMAL.replace("ram_gb = 4", "ram_gb = 4\nram_bytes = 5")).unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = parse(&MINIMAL.replace("ram_gb = 4", "")).unwrap_err();
        assert!(e.to_string().contains("missing ram_bytes"), "{e}");
        let e =
            parse(&MINIMAL.replace("model_ram_share = 0.5", "model_ram_share = 1.5")).unwrap_err();
        assert!(e.to_string().contains("model_ram_share"), "{e}");
    }

    #[test]
    fn rejects_names_unusable_in_file_names() {
        let e = parse(&MINIMAL.replace("name = \"t\"", "name = \"../x\"")).unwrap_err();
        assert!(e.to_string().contains("slug"), "{e}");
    }
}
