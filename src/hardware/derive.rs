//! Device profiles **derived** from public figures, for targets nobody has probed.
//!
//! A derived profile is a real probe of a reference machine (`hardware/reference/`, made
//! with `edgepack probe` on the build host) whose single-thread kernel lines are scaled,
//! per kernel class and dtype, by the ratio of the reference CPU's and the target CPU's
//! public figures ([`CpuFigures`]: clock, multiply-accumulates per cycle in fp32 / fp16 /
//! int8, vector width, memory bandwidth, physical cores). The rules, each figure's source
//! and what the derivation cannot see are written down in `docs/derived-profiles.md`; in
//! short:
//!
//! - **compute-bound classes** (dense, pointwise and strided convs, MatMul) in fp32 scale
//!   by `clock x fp32 MACs/cycle`;
//! - **streaming classes** (depthwise conv, element-wise, pooling, resize, LRN, weight
//!   streaming) scale by `min(clock x vector bytes, memory bandwidth)`;
//! - **other dtypes** (int8, fp16, int4) keep the speed-up over fp32 that the reference
//!   *measured*, carried to the target in proportion (in log space) to how the two CPUs'
//!   peak ratios compare: `s_t = s_ref ^ (ln r_t / ln r_ref)`, capped at `r_t` (a peak
//!   ratio is the most a faster dtype can gain). A dtype without a faster path on the
//!   target (`r_t = 1`) gains nothing, and keeps any loss (casts) the reference measured;
//! - **overheads** (run, dispatch, a kernel's fixed part) scale by the targets'
//!   `relative_compute` (per-core scalar speed);
//! - **threads**: Amdahl's law with an assumed parallel fraction
//!   ([`PARALLEL_FRACTION`]), hyperthreads counting [`SMT_GAIN`] of a core, streaming
//!   classes capped by the memory bandwidth. The reference's own 2-thread lines are not
//!   used: on the shared 2-core build host they are mostly contention.
//!
//! Every derived profile records its [`Derivation`]; predictions from it say "derived"
//! and carry a wider interval ([`super::cost::DERIVED_SPREAD`]).

use serde::{Deserialize, Serialize};

use super::device::{DeviceProfile, KernelClass, KernelDtype, KernelFit, KernelPoint, MemoryCost};
use super::device::{ThreadProfile, DEVICE_SCHEMA};
use super::Target;
use crate::error::{Error, Result};
use crate::profile::schema::Host;
use crate::setting::Setting;

/// Assumed parallel fraction of a kernel for the derived thread scaling (Amdahl's law).
/// Not measured on any target: ONNX Runtime's MLAS kernels split large convs and GEMMs
/// well, and the probe's micro-models are small enough that synchronisation shows.
pub const PARALLEL_FRACTION: f64 = 0.9;

/// What one extra hyperthread on a busy core adds, as a share of a core (assumed).
pub const SMT_GAIN: f64 = 0.2;

/// Public figures of one CPU core and its memory: what a derivation scales by. Every
/// figure comes from a document named in `source`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuFigures {
    /// Sustained clock of a core under load, Hz.
    pub clock_hz: f64,
    /// fp32 multiply-accumulates per cycle per core (SIMD lanes x FMA pipes).
    pub fp32_macs_per_cycle: f64,
    /// fp16 multiply-accumulates per cycle per core in the kernels ONNX Runtime's CPU
    /// provider runs (the fp32 figure where it computes fp16 in fp32).
    pub fp16_macs_per_cycle: f64,
    /// int8 multiply-accumulates per cycle per core in ONNX Runtime's int8 kernels.
    pub int8_macs_per_cycle: f64,
    /// Width of the widest SIMD register the kernels use, bytes.
    pub vector_bytes: f64,
    /// Peak DRAM bandwidth of the whole chip, bytes per second.
    pub memory_bandwidth_bytes_per_s: f64,
    /// Physical cores the target's `cores` threads run on (fewer when they are
    /// hyperthreads of shared cores).
    pub physical_cores: usize,
    /// Public documents the figures come from.
    pub source: Vec<String>,
}

impl CpuFigures {
    /// Check the figures are usable; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        for (name, v) in [
            ("clock_hz", self.clock_hz),
            ("fp32_macs_per_cycle", self.fp32_macs_per_cycle),
            ("fp16_macs_per_cycle", self.fp16_macs_per_cycle),
            ("int8_macs_per_cycle", self.int8_macs_per_cycle),
            ("vector_bytes", self.vector_bytes),
            (
                "memory_bandwidth_bytes_per_s",
                self.memory_bandwidth_bytes_per_s,
            ),
        ] {
            if !pos(v) {
                return Err(Error::usage(
                    format!("cpu_figures.{name}"),
                    format!("must be positive, got {v}"),
                ));
            }
        }
        if self.physical_cores == 0 {
            return Err(Error::usage(
                "cpu_figures.physical_cores",
                "must be at least 1",
            ));
        }
        if self.source.is_empty() || self.source.iter().any(|s| s.trim().is_empty()) {
            return Err(Error::usage(
                "cpu_figures.source",
                "must name the documents the figures come from",
            ));
        }
        Ok(())
    }

    /// Peak multiply-accumulates per second of one core in `dtype` (int4 `MatMulNBits`
    /// computes in fp32).
    fn macs_per_s(&self, dtype: KernelDtype) -> f64 {
        self.clock_hz
            * match dtype {
                KernelDtype::Fp32 | KernelDtype::Int4 => self.fp32_macs_per_cycle,
                KernelDtype::Fp16 => self.fp16_macs_per_cycle,
                KernelDtype::Int8 => self.int8_macs_per_cycle,
            }
    }

    /// Bytes per second one core streams: its vector loads, at most the chip's DRAM.
    fn stream_bytes_per_s(&self) -> f64 {
        (self.clock_hz * self.vector_bytes).min(self.memory_bandwidth_bytes_per_s)
    }

    /// How much faster than fp32 `dtype` can be at peak (1 for streaming classes).
    fn peak_ratio(&self, class: KernelClass, dtype: KernelDtype) -> f64 {
        if is_streaming(class) {
            1.0
        } else {
            self.macs_per_s(dtype) / self.macs_per_s(KernelDtype::Fp32)
        }
    }

    /// The rate a class's fp32 work runs at on one core.
    fn fp32_rate(&self, class: KernelClass) -> f64 {
        if is_streaming(class) {
            self.stream_bytes_per_s()
        } else {
            self.macs_per_s(KernelDtype::Fp32)
        }
    }

    /// Speed-up of `threads` threads over one for a class.
    fn thread_speedup(&self, class: KernelClass, threads: usize) -> f64 {
        let phys = self.physical_cores.min(threads) as f64;
        let units = phys + SMT_GAIN * threads.saturating_sub(self.physical_cores) as f64;
        let p = PARALLEL_FRACTION;
        let amdahl = 1.0 / ((1.0 - p) + p / units);
        if is_streaming(class) {
            // All cores together cannot stream faster than the DRAM.
            let cap = (self.memory_bandwidth_bytes_per_s / self.stream_bytes_per_s()).max(1.0);
            amdahl.min(cap)
        } else {
            amdahl
        }
    }
}

/// Classes whose time follows bytes moved rather than multiply-accumulates (depthwise
/// convs do a handful of MACs per byte: the probe measures them bandwidth-bound).
fn is_streaming(class: KernelClass) -> bool {
    !matches!(
        class,
        KernelClass::Conv
            | KernelClass::ConvPointwise
            | KernelClass::ConvStrided
            | KernelClass::ConvGrouped
            | KernelClass::Matmul
    )
}

/// The reference machine of a derivation: its probe and its public figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The CPU as the probe saw it, and what it is.
    pub cpu_model: String,
    pub description: String,
    /// Per-core scalar speed relative to one Cortex-A72 at 1.8 GHz (as targets have it).
    pub relative_compute: f64,
    /// The probe (relative to the reference file's folder).
    pub device_profile: String,
    pub cpu_figures: CpuFigures,
}

/// Memory lines probed on a machine of one architecture, for the targets of that
/// architecture, in place of the reference probe's (`hardware/reference/aarch64-memory.toml`,
/// `x86_64-memory.toml`). Only memory: where it was measured (an emulated board, a build
/// host) timings say nothing about the targets, so none are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryReference {
    /// The architecture whose targets take these lines (`aarch64`).
    pub arch: String,
    /// The CPU the probe ran on, as `derivation.memory_source` names it.
    pub cpu_model: String,
    /// ONNX Runtime's memory is its own code's: only the same version's lines carry.
    pub onnxruntime_version: String,
    /// How the lines were measured.
    pub command: String,
    pub memory: MemoryCost,
}

/// One class and dtype's derived line against the reference's, at one thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedFactor {
    pub class: KernelClass,
    pub dtype: KernelDtype,
    /// Target seconds per work / reference seconds per work (above 1: slower).
    pub factor: f64,
    /// The dtype's speed-up over fp32 the reference measured, and the one carried to the
    /// target (1 for fp32).
    pub reference_speedup: f64,
    pub target_speedup: f64,
}

/// How a derived profile was made. Its presence marks the profile "derived" (not
/// measured on the device).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derivation {
    /// The target the profile was derived for.
    pub target: String,
    /// The reference probe's CPU and content digest.
    pub reference_cpu_model: String,
    pub reference_profile_sha256: String,
    pub reference_figures: CpuFigures,
    pub target_figures: CpuFigures,
    /// Reference relative_compute / target relative_compute: the overheads' factor.
    pub overhead_factor: f64,
    pub factors: Vec<DerivedFactor>,
    /// Where the memory lines come from when not from the reference probe (a
    /// [`MemoryReference`] of the target's architecture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_source: Option<String>,
    /// Where the rules and the figures' sources are written down.
    pub document: String,
}

/// Carry a dtype's measured speed-up over fp32 from the reference (peak ratio `r_ref`)
/// to the target (peak ratio `r_t`): see the module docs.
fn carry_speedup(s_ref: f64, r_ref: f64, r_t: f64) -> f64 {
    const ONE: f64 = 1.0 + 1e-9;
    let s = if r_t <= ONE {
        // No faster path on the target: no gain; a loss (casts, requantization) stays.
        s_ref.min(1.0)
    } else if r_ref <= ONE {
        // The reference shows no faster path to carry: assume none (the pessimistic end).
        s_ref.min(1.0)
    } else {
        s_ref.powf(r_t.ln() / r_ref.ln())
    };
    s.min(r_t.max(1.0))
}

/// Derive `target`'s device profile from the reference probe and both CPUs' figures.
/// Only the reference's single-thread lines are used. Memory is the reference's, or the
/// lines of `memory_refs` probed on the target's architecture where there are some for
/// the reference's ONNX Runtime version.
pub fn derive(
    reference: &DeviceProfile,
    ref_info: &Reference,
    target: &Target,
    figures: &CpuFigures,
    memory_refs: &[MemoryReference],
) -> Result<DeviceProfile> {
    ref_info.cpu_figures.validate()?;
    figures.validate()?;
    if reference.derivation.is_some() {
        return Err(Error::usage(
            "reference profile",
            "it is itself derived: derive from a probe",
        ));
    }
    let one = reference
        .threads
        .iter()
        .find(|t| t.threads == 1)
        .ok_or_else(|| {
            Error::usage(
                "reference profile",
                format!(
                    "the probe has no single-thread lines (probe with {} 1)",
                    Setting::Threads
                ),
            )
        })?;
    let arch_memory = memory_refs.iter().find(|m| {
        m.arch == target.arch.as_str() && m.onnxruntime_version == reference.onnxruntime_version
    });
    let rf = &ref_info.cpu_figures;
    let overhead = ref_info.relative_compute / target.relative_compute;
    let fp32_of = |class: KernelClass| {
        one.kernels
            .iter()
            .find(|k| k.class == class && k.dtype == KernelDtype::Fp32)
    };
    let mut factors = vec![];
    let mut lines: Vec<KernelFit> = vec![];
    for k in &one.kernels {
        let base = rf.fp32_rate(k.class) / figures.fp32_rate(k.class);
        let (s_ref, s_t, factor) = match (k.dtype, fp32_of(k.class)) {
            (KernelDtype::Fp32, _) => (1.0, 1.0, base),
            (_, Some(f)) if k.s_per_work > 0.0 && f.s_per_work > 0.0 => {
                let s_ref = f.s_per_work / k.s_per_work;
                let s_t = carry_speedup(
                    s_ref,
                    rf.peak_ratio(k.class, k.dtype),
                    figures.peak_ratio(k.class, k.dtype),
                );
                (s_ref, s_t, base * s_ref / s_t)
            }
            // No fp32 line to measure a speed-up against: scale by the peak rates.
            _ => {
                let r_ref = rf.peak_ratio(k.class, k.dtype);
                let r_t = figures.peak_ratio(k.class, k.dtype);
                (r_ref, r_t, base * r_ref / r_t)
            }
        };
        factors.push(DerivedFactor {
            class: k.class,
            dtype: k.dtype,
            factor,
            reference_speedup: s_ref,
            target_speedup: s_t,
        });
        lines.push(KernelFit {
            class: k.class,
            dtype: k.dtype,
            unit: k.unit,
            points: k
                .points
                .iter()
                .map(|p| KernelPoint {
                    name: format!("derived from {}", p.name),
                    work: p.work,
                    time_s: k.fixed_s.max(0.0) * overhead + k.s_per_work * factor * p.work,
                    p50_ci_rel: p.p50_ci_rel,
                })
                .collect(),
            fixed_s: k.fixed_s * overhead,
            s_per_work: k.s_per_work * factor,
        });
    }
    let threads = (1..=target.cores)
        .map(|t| ThreadProfile {
            threads: t,
            run_overhead_s: one.run_overhead_s * overhead,
            dispatch_overhead_s: one.dispatch_overhead_s * overhead,
            kernels: lines
                .iter()
                .map(|k| {
                    let s = figures.thread_speedup(k.class, t);
                    KernelFit {
                        points: k
                            .points
                            .iter()
                            .map(|p| KernelPoint {
                                time_s: k.fixed_s.max(0.0) + k.s_per_work / s * p.work,
                                ..p.clone()
                            })
                            .collect(),
                        s_per_work: k.s_per_work / s,
                        ..k.clone()
                    }
                })
                .collect(),
        })
        .collect();
    Ok(DeviceProfile {
        schema: DEVICE_SCHEMA.into(),
        edgepack_version: reference.edgepack_version.clone(),
        created_unix_s: reference.created_unix_s,
        onnxruntime_version: reference.onnxruntime_version.clone(),
        host: Host {
            os: "derived (not probed)".into(),
            arch: target.arch.as_str().into(),
            cpu_model: target.cpu_model.clone(),
            logical_cores: target.cores,
            physical_cores: Some(figures.physical_cores),
            total_memory_bytes: target.ram_bytes,
            isa_features: target.isa_features.clone(),
        },
        probe_wall_s: 0.0,
        threads,
        // Memory is not scaled: the same ONNX Runtime allocates the same on every CPU of
        // an architecture, but not across architectures (on aarch64 no NCHWc copies of
        // conv weights): a target takes its architecture's probed lines where there are.
        memory: arch_memory.map_or_else(|| reference.memory.clone(), |m| m.memory.clone()),
        derivation: Some(Derivation {
            target: target.name.clone(),
            reference_cpu_model: ref_info.cpu_model.clone(),
            reference_profile_sha256: reference.content_sha256.clone(),
            reference_figures: rf.clone(),
            target_figures: figures.clone(),
            overhead_factor: overhead,
            factors,
            memory_source: arch_memory.map(|m| format!("{} ({})", m.cpu_model, m.command)),
            document: "docs/derived-profiles.md".into(),
        }),
        content_sha256: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(clock_ghz: f64, fp32: f64, int8: f64, vector: f64, bw: f64) -> CpuFigures {
        CpuFigures {
            clock_hz: clock_ghz * 1e9,
            fp32_macs_per_cycle: fp32,
            fp16_macs_per_cycle: fp32,
            int8_macs_per_cycle: int8,
            vector_bytes: vector,
            memory_bandwidth_bytes_per_s: bw,
            physical_cores: 4,
            source: vec!["https://example.invalid/datasheet".into()],
        }
    }

    #[test]
    fn speedups_carry_in_log_proportion_capped_by_the_peak_ratio() {
        // Same peak ratio: the measured speed-up carries unchanged.
        assert!((carry_speedup(3.0, 4.0, 4.0) - 3.0).abs() < 1e-12);
        // Half the log of the peak ratio: the square root of the speed-up.
        assert!((carry_speedup(4.0, 16.0, 4.0) - 2.0).abs() < 1e-12);
        // No faster path on the target: no gain, losses stay.
        assert_eq!(carry_speedup(3.0, 4.0, 1.0), 1.0);
        assert_eq!(carry_speedup(0.5, 1.0, 1.0), 0.5);
        // Never above the target's peak ratio.
        assert_eq!(carry_speedup(20.0, 4.0, 4.0), 4.0);
    }

    #[test]
    fn threads_follow_amdahl_with_hyperthreads_and_bandwidth_caps() {
        let mut f = figures(2.0, 8.0, 32.0, 16.0, 16e9);
        assert_eq!(f.thread_speedup(KernelClass::Conv, 1), 1.0);
        let four = f.thread_speedup(KernelClass::Conv, 4);
        assert!((four - 1.0 / (0.1 + 0.9 / 4.0)).abs() < 1e-12);
        // A core streams 32 GB/s of vector loads, the chip's DRAM 16: no gain from threads.
        assert_eq!(f.thread_speedup(KernelClass::Elementwise, 4), 1.0);
        // Two threads on one physical core: 1.2 units.
        f.physical_cores = 1;
        let two = f.thread_speedup(KernelClass::Matmul, 2);
        assert!((two - 1.0 / (0.1 + 0.9 / 1.2)).abs() < 1e-12);
    }

    #[test]
    fn derived_lines_scale_by_rates_and_record_their_derivation() {
        let mut reference = super::super::device::tests::sample();
        reference.content_sha256 = "abc".into();
        let ref_info = Reference {
            cpu_model: "ref".into(),
            description: "reference".into(),
            relative_compute: 3.0,
            device_profile: "ref.json".into(),
            cpu_figures: figures(3.0, 32.0, 128.0, 64.0, 400e9),
        };
        let target = Target::from_toml(
            r#"
name = "t"
arch = "aarch64"
cores = 2
cpu_model = "Cortex-A72"
ram_gb = 4
model_ram_share = 0.5
storage_budget_bytes = 1000
execution_providers = ["cpu"]
relative_compute = 1.0
source = ["https://example.invalid/spec"]
"#,
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let f = figures(1.5, 4.0, 8.0, 16.0, 12e9);
        let d = derive(&reference, &ref_info, &target, &f, &[]).unwrap();
        assert_eq!(d.threads.len(), 2);
        let one = &d.threads[0];
        let conv = one
            .kernels
            .iter()
            .find(|k| k.class == KernelClass::Conv)
            .unwrap();
        // 3 GHz x 32 against 1.5 GHz x 4: 16 times slower per MAC.
        assert!((conv.s_per_work / 1e-10 - 16.0).abs() < 1e-9);
        // Overheads by relative_compute: 3x.
        assert!((conv.fixed_s - 3e-6).abs() < 1e-15);
        assert!((one.run_overhead_s - 15e-6).abs() < 1e-15);
        // Element-wise: 3 GHz x 64 B = 192 GB/s against min(24, 12) GB/s = 16x.
        let add = one
            .kernels
            .iter()
            .find(|k| k.class == KernelClass::Elementwise)
            .unwrap();
        assert!((add.s_per_work / 1e-10 - 16.0).abs() < 1e-9);
        let dv = d.derivation.as_ref().unwrap();
        assert_eq!(dv.reference_profile_sha256, "abc");
        assert_eq!(dv.factors.len(), 2);
        assert_eq!(d.host.cpu_model, "Cortex-A72");
        // A derived profile cannot be the reference of another.
        assert!(derive(&d, &ref_info, &target, &f, &[]).is_err());
        assert_eq!(d.memory, reference.memory);
        assert_eq!(dv.memory_source, None);

        // Memory lines probed on the target's architecture replace the reference's, for
        // the reference's ONNX Runtime version only; the kernel lines do not change.
        let mut lines = MemoryReference {
            arch: "aarch64".into(),
            cpu_model: "Cortex-A72 (emulated)".into(),
            onnxruntime_version: reference.onnxruntime_version.clone(),
            command: "probe --tiny".into(),
            memory: MemoryCost {
                conv_weight_factor: Some(1.03),
                ..reference.memory.clone()
            },
        };
        let a = derive(&reference, &ref_info, &target, &f, &[lines.clone()]).unwrap();
        assert_eq!(a.memory.conv_weight_factor, Some(1.03));
        assert_eq!(a.threads, d.threads);
        let source = a.derivation.unwrap().memory_source.unwrap();
        assert!(source.contains("Cortex-A72 (emulated)"), "{source}");
        lines.onnxruntime_version = "0.0.1".into();
        let other = derive(&reference, &ref_info, &target, &f, &[lines.clone()]).unwrap();
        assert_eq!(other.memory, reference.memory);
        lines.onnxruntime_version = reference.onnxruntime_version.clone();
        lines.arch = "x86_64".into();
        let other = derive(&reference, &ref_info, &target, &f, &[lines]).unwrap();
        assert_eq!(other.memory, reference.memory);
    }

    /// The reference the built-in derived profiles come from.
    const REFERENCE: &str = "hardware/reference/xeon-2c.toml";
    /// Memory lines of other architectures the built-in derived profiles take.
    const MEMORY_REFERENCES: &[&str] = &[
        "hardware/reference/aarch64-memory.toml",
        "hardware/reference/x86_64-memory.toml",
    ];

    /// Protects the built-in derived profiles from drifting away from their derivation:
    /// each must be, byte for byte, what `derive` makes of the committed reference probe
    /// and the target file's `[cpu_figures]`. After changing either, regenerate with
    /// `EDGEPACK_WRITE_DERIVED_PROFILES=1 cargo test --lib hardware::derive`.
    #[test]
    fn builtin_derived_profiles_are_their_derivation() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let ref_path = root.join(REFERENCE);
        let ref_info: Reference =
            toml::from_str(&std::fs::read_to_string(&ref_path).unwrap()).unwrap();
        let reference =
            DeviceProfile::load(&ref_path.parent().unwrap().join(&ref_info.device_profile))
                .unwrap();
        let memory_refs: Vec<MemoryReference> = MEMORY_REFERENCES
            .iter()
            .map(|p| toml::from_str(&std::fs::read_to_string(root.join(p)).unwrap()).unwrap())
            .collect();
        let write = std::env::var_os("EDGEPACK_WRITE_DERIVED_PROFILES").is_some();
        for (file, text) in super::super::BUILTIN_TARGETS {
            let origin = std::path::PathBuf::from(format!("builtin:{file}"));
            // Without its device_profile line: the profile is what is being made.
            let bare: String = text
                .lines()
                .filter(|l| !l.starts_with("device_profile"))
                .map(|l| format!("{l}\n"))
                .collect();
            let target = Target::from_toml(&bare, &origin).unwrap();
            let Some(figures) = super::super::cpu_figures_from_toml(text, &origin).unwrap() else {
                continue;
            };
            let mut derived =
                derive(&reference, &ref_info, &target, &figures, &memory_refs).unwrap();
            let bytes = derived.to_json_bytes();
            let name = format!("{}.device.json", target.name);
            if write {
                std::fs::write(root.join("hardware").join(&name), &bytes).unwrap();
                continue;
            }
            let built_in = super::super::builtin_device_profile(std::path::Path::new(&format!(
                "builtin:{name}"
            )))
            .unwrap_or_else(|| panic!("{name} is not in BUILTIN_DEVICE_PROFILES"));
            assert!(
                built_in.as_bytes() == bytes.as_slice(),
                "{name} differs from its derivation: regenerate it (see this test's docs)"
            );
            let full = Target::from_toml(text, &origin).unwrap();
            assert_eq!(
                full.device_profile.as_deref(),
                Some(std::path::Path::new(&format!("builtin:{name}")))
            );
        }
    }
}
