//! The device profile (`"schema": "edgepack.device/1"`, JSON Schema in
//! `schemas/device.schema.json`): what `edgepack probe` measured about one device, and what
//! the cost model ([`super::cost`]) predicts from.
//!
//! A profile holds, per intra-op thread count, the probed time of each *kernel class*
//! (3x3 conv, pointwise conv, depthwise conv, strided conv, MatMul/Gemm, element-wise,
//! pooling, resize) in each data type (fp32, int8 QDQ as ONNX Runtime fuses it, fp16,
//! int4 `MatMulNBits`) at two or more sizes, fitted as `time = fixed_s + s_per_work * work`
//! (work is multiply-accumulates for convs and MatMuls, bytes moved for the rest); the
//! run overhead of an empty session run and the dispatch overhead of one more kernel; and
//! the runtime's memory: the resident size of a loaded session with no weights, and how
//! many resident bytes a weight byte and a planned activation byte cost.
//!
//! Profiles are parsed strictly: an unknown field, another schema, a value out of range, or
//! a content digest that does not match (a hand-edited file) is an error naming the file,
//! because a prediction from a silently wrong profile would pass a fit check it should fail.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::profile::schema::Host;

/// The schema identifier written in every device profile.
pub const DEVICE_SCHEMA: &str = "edgepack.device/1";

/// What a kernel class's `work` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkUnit {
    /// Multiply-accumulates.
    Macs,
    /// Bytes read and written.
    Bytes,
}

/// Kernel classes: groups of ONNX Runtime kernels whose time scales with the same work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelClass {
    /// A dense convolution with a kernel larger than 1x1, stride 1.
    Conv,
    /// A 1x1 convolution (pointwise), stride 1.
    ConvPointwise,
    /// A depthwise convolution (group = channels).
    ConvDepthwise,
    /// A dense convolution with a stride above 1.
    ConvStrided,
    /// A grouped convolution that is neither dense nor depthwise (ShuffleNet's grouped 1x1
    /// convs, ResNeXt): ONNX Runtime runs it in NCHW, one GEMM per group, outside the
    /// NCHWc layout its dense convs get on x86-64. Measured on this project's host, a 1x1
    /// conv of 272 channels in 4 groups took 1.6x the time per multiply-accumulate of the
    /// dense pointwise line (BENCHMARKS.md, "Sizing: grouped convs").
    ConvGrouped,
    /// MatMul, Gemm and their fused and quantized forms.
    Matmul,
    /// Element-wise and other memory-bound ops (activations, adds, norms, copies).
    Elementwise,
    /// MaxPool, AveragePool and their global forms.
    Pool,
    /// Resize / Upsample.
    Resize,
    /// LocalResponseNormalization: a window sum and a power per element, far slower per
    /// byte than element-wise ops (AlexNet, GoogLeNet, ZFNet).
    Lrn,
    /// Streaming a MatMul's or Gemm's weights from memory (work: weight bytes): at batch 1
    /// a large fully-connected layer is bound by this, not by its multiply-accumulates.
    /// The cost model takes the larger of this and the kernel's own line.
    WeightStream,
}

impl KernelClass {
    /// Every class.
    pub const ALL: [KernelClass; 11] = [
        KernelClass::Conv,
        KernelClass::ConvPointwise,
        KernelClass::ConvDepthwise,
        KernelClass::ConvStrided,
        KernelClass::ConvGrouped,
        KernelClass::Matmul,
        KernelClass::Elementwise,
        KernelClass::Pool,
        KernelClass::Resize,
        KernelClass::Lrn,
        KernelClass::WeightStream,
    ];

    /// The name used in files and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            KernelClass::Conv => "conv",
            KernelClass::ConvPointwise => "conv_pointwise",
            KernelClass::ConvDepthwise => "conv_depthwise",
            KernelClass::ConvStrided => "conv_strided",
            KernelClass::ConvGrouped => "conv_grouped",
            KernelClass::Matmul => "matmul",
            KernelClass::Elementwise => "elementwise",
            KernelClass::Pool => "pool",
            KernelClass::Resize => "resize",
            KernelClass::Lrn => "lrn",
            KernelClass::WeightStream => "weight_stream",
        }
    }

    /// A conv of any kind (ConvTranspose and the integer convs included).
    pub fn is_conv(self) -> bool {
        matches!(
            self,
            KernelClass::Conv
                | KernelClass::ConvPointwise
                | KernelClass::ConvDepthwise
                | KernelClass::ConvStrided
                | KernelClass::ConvGrouped
        )
    }

    /// What this class's work counts.
    pub fn unit(self) -> WorkUnit {
        match self {
            KernelClass::Conv
            | KernelClass::ConvPointwise
            | KernelClass::ConvDepthwise
            | KernelClass::ConvStrided
            | KernelClass::ConvGrouped
            | KernelClass::Matmul => WorkUnit::Macs,
            KernelClass::Elementwise
            | KernelClass::Pool
            | KernelClass::Resize
            | KernelClass::Lrn
            | KernelClass::WeightStream => WorkUnit::Bytes,
        }
    }
}

/// Data types a kernel computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelDtype {
    Fp32,
    Fp16,
    /// int8 activations and weights (QLinearConv, QLinearMatMul, MatMulInteger...).
    Int8,
    /// 4-bit block-quantized weights, float activations (`MatMulNBits`).
    Int4,
}

impl KernelDtype {
    /// The name used in files and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            KernelDtype::Fp32 => "fp32",
            KernelDtype::Fp16 => "fp16",
            KernelDtype::Int8 => "int8",
            KernelDtype::Int4 => "int4",
        }
    }
}

/// One probed micro-model: its work and its measured kernel time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelPoint {
    /// What the micro-model was (`conv 64x56x56 k3`).
    pub name: String,
    /// Work of the kernel, in the class's unit.
    pub work: f64,
    /// Measured p50 of the run less the run overhead of an empty session run.
    pub time_s: f64,
    /// Relative half-width of the p50's 95% confidence interval.
    pub p50_ci_rel: f64,
}

/// A kernel class in one dtype at one thread count: points and the fitted line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelFit {
    pub class: KernelClass,
    pub dtype: KernelDtype,
    pub unit: WorkUnit,
    pub points: Vec<KernelPoint>,
    /// Time of the kernel at zero work (its dispatch and set-up), seconds.
    pub fixed_s: f64,
    /// Seconds per unit of work.
    pub s_per_work: f64,
}

impl KernelFit {
    /// Predicted time of one kernel of this class doing `work`: through the probed points.
    ///
    /// Between two points, the straight line between them. Below the smallest, that
    /// segment's line, but never less than the smallest point's time per unit of work
    /// (where the segment's intercept is negative: a memory-bound kernel whose small point
    /// ran in cache and whose large point ran from DRAM). Above the largest, the last
    /// segment's line. With one point, points of no work, or a segment along which more
    /// work measured faster (noise), the fitted line.
    ///
    /// Why not the fitted line alone: for memory-bound classes the fit, whose intercept
    /// cannot be negative, goes through the origin at the large point's rate, and so costs
    /// every cache-resident kernel at DRAM speed (a small net's depthwise convs and pools by
    /// 1.4-3x; BENCHMARKS.md, "Sizing: kernels between the probed sizes").
    pub fn time_s(&self, work: f64) -> f64 {
        let fitted = || (self.fixed_s + self.s_per_work * work).max(0.0);
        let mut pts: Vec<(f64, f64)> = self
            .points
            .iter()
            .filter(|p| p.work > 0.0 && p.time_s.is_finite() && p.time_s >= 0.0)
            .map(|p| (p.work, p.time_s))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts.dedup_by(|a, b| a.0 == b.0);
        if pts.len() < 2 {
            return fitted();
        }
        // The segment that holds `work`, or the nearest one at either end.
        let i = pts
            .windows(2)
            .position(|s| work <= s[1].0)
            .unwrap_or(pts.len() - 2);
        let ((x0, y0), (x1, y1)) = (pts[i], pts[i + 1]);
        if y1 <= y0 {
            // More work measured no slower: noise on a flat class; the fit knows that.
            return fitted();
        }
        let on_segment = y0 + (y1 - y0) / (x1 - x0) * (work - x0);
        if work < x0 {
            on_segment.max(y0 / x0 * work)
        } else {
            on_segment.max(0.0)
        }
    }
}

/// Everything probed at one intra-op thread count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadProfile {
    pub threads: usize,
    /// p50 of a session run of one tiny kernel: what every run costs besides its kernels.
    pub run_overhead_s: f64,
    /// Time one more tiny kernel adds to a run (from a chain of them).
    pub dispatch_overhead_s: f64,
    pub kernels: Vec<KernelFit>,
}

/// The runtime's memory on this device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryCost {
    /// Resident bytes of a process with ONNX Runtime loaded and a tiny session created.
    pub fixed_bytes: u64,
    /// Resident bytes per byte of weights (ONNX Runtime pre-packs some weights: above 1).
    pub weight_factor: f64,
    /// Resident bytes per byte of the activation memory the planner holds at its peak.
    pub activation_factor: f64,
    /// Resident bytes per weight byte at the peak of session creation, above a tiny
    /// session's (the model's bytes and the session's copies of its weights live together
    /// for a while: for a large-weight model this, not the run, is the peak). Profiles of
    /// earlier probes lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_factor_session_create: Option<f64>,
    /// Resident bytes per byte of conv weights after session creation, and at its peak
    /// (ONNX Runtime keeps a reordered or pre-packed copy of a conv's weights beside the
    /// original, and glibc's heap keeps some freed copies: measured 1.8-2.9 on conv nets
    /// against about 1.0 on Gemm-heavy ones; the probe measures it on a stack of
    /// bottleneck stages, a mix of weight sizes like a real net's).
    /// Profiles of earlier probes lack them: conv weights then cost `weight_factor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv_weight_factor: Option<f64>,
    /// See [`MemoryCost::conv_weight_factor`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv_weight_factor_session_create: Option<f64>,
    /// Resident bytes per byte of weights held inside subgraphs after session creation,
    /// measured on plain weights (an Add's) in `If` branches (`Loop` and `Scan` bodies are
    /// assumed alike): about 1 for the main graph's, 2.2-2.6 inside `If` branches on
    /// x86-64. The cost model adds
    /// `factor - 1` per byte of a subgraph's weights on top of their kind's factor.
    /// Profiles of earlier probes lack it: such weights then cost as the main graph's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subgraph_weight_factor: Option<f64>,
    /// Resident bytes per byte of conv weights that ONNX Runtime rewrites when it creates
    /// the session (a BatchNormalization folded into the conv before it makes a new
    /// weight), after creation. Measured on an emulated Cortex-A72, such weights cost
    /// about 2.1 where a conv weight loaded as is costs 1.0: the freed original stays in
    /// the heap. The cost model adds `factor - conv_weight_factor` per byte for each
    /// rewrite of a weight loaded from the model. Profiles of earlier probes lack it:
    /// rewritten weights then cost as the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded_conv_weight_factor: Option<f64>,
    /// Resident bytes one constant-folding step leaves per byte of the weight it makes
    /// from a loaded one (a `Reshape` of a loaded weight, the `Slice`/`Concat`/`Unsqueeze`
    /// a PyTorch LSTM export puts on its weights), on top of what that weight costs as
    /// the model's own: measured as eight 1 MiB weights behind a `Reshape` against the
    /// same weights loaded as they are. Profiles of earlier probes lack it: such weights
    /// then cost as the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constant_folding_factor: Option<f64>,
    /// Peak resident bytes (session creation and runs) of a small net of every fp32
    /// kernel class: what a real model's session costs besides its weights and
    /// activations (the session, the code pages of the kernels it runs, the allocator's
    /// first chunks). The cost model's fixed memory where present (profiles of earlier
    /// probes lack it: `fixed_bytes` then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_bytes: Option<u64>,
    /// The same with int8 QDQ kernels in the net (for models with int8 kernels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_int8_bytes: Option<u64>,
}

/// A whole device profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    pub schema: String,
    pub edgepack_version: String,
    pub created_unix_s: u64,
    /// The ONNX Runtime version the probe ran (kernels differ between versions).
    pub onnxruntime_version: String,
    /// CPU identity of the probed device.
    pub host: Host,
    /// Wall time the probe took.
    pub probe_wall_s: f64,
    pub threads: Vec<ThreadProfile>,
    pub memory: MemoryCost,
    /// Present when the profile was derived from public figures (`super::derive`), not
    /// measured on the device: predictions from it say so and carry a wider interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derivation: Option<super::derive::Derivation>,
    /// sha256 (hex) of this profile serialized with this field empty: a hand-edited
    /// profile no longer matches, and is refused.
    #[serde(default)]
    pub content_sha256: String,
}

impl DeviceProfile {
    /// The pretty JSON of the profile with an empty `content_sha256`, and its digest.
    fn unsealed_text(&self) -> Vec<u8> {
        let mut copy = self.clone();
        copy.content_sha256.clear();
        let mut b = serde_json::to_vec_pretty(&copy).expect("device profiles serialize");
        b.push(b'\n');
        b
    }

    /// Seal the profile (set its digest) and serialize it. The digest is over the exact
    /// text written with the digest's value empty, so checking it needs no float
    /// round-trip.
    pub fn to_json_bytes(&mut self) -> Vec<u8> {
        let unsealed = self.unsealed_text();
        self.content_sha256 = hex::encode(Sha256::digest(&unsealed));
        let mut b = serde_json::to_vec_pretty(self).expect("device profiles serialize");
        b.push(b'\n');
        b
    }

    /// Write the sealed profile atomically: an interrupted write leaves no file.
    pub fn write(&mut self, path: &Path) -> Result<()> {
        let bytes = self.to_json_bytes();
        crate::artifact::write_atomic(path, &bytes)
    }

    /// Parse and check a profile; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &Path) -> Result<Self> {
        let bad = |m: String| Error::file(origin, m);
        // The schema first, so a file of another kind says so instead of naming a field.
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "not a device profile: invalid JSON ({e}); truncated? re-run edgepack probe"
            ))
        })?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(DEVICE_SCHEMA) => {}
            Some(other) => {
                return Err(bad(format!(
                    "schema '{other}' is not {DEVICE_SCHEMA} (re-run edgepack probe with this edgepack)"
                )))
            }
            None => {
                return Err(bad(format!(
                    "not a device profile: no \"schema\": \"{DEVICE_SCHEMA}\" field"
                )))
            }
        }
        let p: DeviceProfile = serde_json::from_value(value)
            .map_err(|e| bad(format!("not a valid {DEVICE_SCHEMA} profile: {e}")))?;
        let field = format!("\"content_sha256\": \"{}\"", p.content_sha256);
        let unsealed = text.replacen(&field, "\"content_sha256\": \"\"", 1);
        if p.content_sha256.is_empty()
            || unsealed.len() == text.len()
            || hex::encode(Sha256::digest(unsealed.as_bytes())) != p.content_sha256
        {
            return Err(bad(
                "content does not match its content_sha256: the profile was edited after \
                 edgepack probe wrote it (re-run edgepack probe)"
                    .into(),
            ));
        }
        p.validate().map_err(bad)?;
        Ok(p)
    }

    /// Read a profile file, or a built-in derived profile (`builtin:<file>`, compiled into
    /// the binary with the built-in targets).
    pub fn load(path: &Path) -> Result<Self> {
        if let Some(text) = super::builtin_device_profile(path) {
            return Self::from_json(text, path);
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Whether the profile was derived from public figures rather than probed.
    pub fn is_derived(&self) -> bool {
        self.derivation.is_some()
    }

    /// Refuse a profile probed with another ONNX Runtime version than `running`.
    pub fn check_runtime(&self, running: &str, origin: &Path) -> Result<()> {
        if self.onnxruntime_version != running {
            return Err(Error::file(
                origin,
                format!(
                    "probed with ONNX Runtime {} but {running} is loaded (kernels differ between \
                     versions: re-run edgepack probe with this runtime)",
                    self.onnxruntime_version
                ),
            ));
        }
        Ok(())
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let pos = |v: f64| v.is_finite() && v >= 0.0;
        if self.threads.is_empty() {
            return Err("no thread counts were probed".into());
        }
        for t in &self.threads {
            if t.threads == 0 {
                return Err("threads must be at least 1".into());
            }
            if !pos(t.run_overhead_s) || !pos(t.dispatch_overhead_s) {
                return Err(format!("threads {}: overheads must be >= 0", t.threads));
            }
            for k in &t.kernels {
                if k.unit != k.class.unit() {
                    return Err(format!(
                        "kernel {} counts work in the wrong unit",
                        k.class.as_str()
                    ));
                }
                if !k.fixed_s.is_finite() || !pos(k.s_per_work) || k.points.is_empty() {
                    return Err(format!(
                        "threads {}: kernel {} {} has an invalid fit",
                        t.threads,
                        k.class.as_str(),
                        k.dtype.as_str()
                    ));
                }
            }
        }
        if self.memory.fixed_bytes == 0
            || !(self.memory.weight_factor.is_finite() && self.memory.weight_factor > 0.0)
            || !(self.memory.activation_factor.is_finite() && self.memory.activation_factor >= 0.0)
        {
            return Err("memory figures must be positive".into());
        }
        Ok(())
    }

    /// The channel block of ONNX Runtime's NCHWc layout on this device, where its CPU
    /// provider uses one: MLAS's `MlasNchwcGetBlockSize()`, 16 floats with AVX-512F and 8
    /// on other x86-64 CPUs. `None` elsewhere (aarch64: MLAS has no NCHWc kernels, so the
    /// layout transformer does not run).
    pub fn nchwc_block(&self) -> Option<i64> {
        if self.host.arch != "x86_64" {
            return None;
        }
        if self.host.isa_features.iter().any(|f| f == "avx512f") {
            Some(16)
        } else {
            Some(8)
        }
    }

    /// The probed thread count closest to `threads` (ties: the lower).
    pub fn nearest_threads(&self, threads: usize) -> &ThreadProfile {
        self.threads
            .iter()
            .min_by_key(|t| (t.threads.abs_diff(threads), t.threads))
            .expect("validated: at least one thread count")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small hand-built profile (one thread count, two kernel fits).
    pub fn sample() -> DeviceProfile {
        let fit = |class: KernelClass, s_per_work: f64| KernelFit {
            class,
            dtype: KernelDtype::Fp32,
            unit: class.unit(),
            points: vec![KernelPoint {
                name: "p".into(),
                work: 1e6,
                time_s: 1e-6 + s_per_work * 1e6,
                p50_ci_rel: 0.01,
            }],
            fixed_s: 1e-6,
            s_per_work,
        };
        DeviceProfile {
            schema: DEVICE_SCHEMA.into(),
            edgepack_version: "0".into(),
            created_unix_s: 0,
            onnxruntime_version: "1.20.0".into(),
            host: Host {
                logical_cores: 2,
                ..Host::default()
            },
            probe_wall_s: 1.0,
            threads: vec![ThreadProfile {
                threads: 1,
                run_overhead_s: 5e-6,
                dispatch_overhead_s: 1e-6,
                kernels: vec![
                    fit(KernelClass::Conv, 1e-10),
                    fit(KernelClass::Elementwise, 1e-10),
                ],
            }],
            memory: MemoryCost {
                fixed_bytes: 10 << 20,
                weight_factor: 1.0,
                activation_factor: 1.0,
                weight_factor_session_create: None,
                conv_weight_factor: None,
                conv_weight_factor_session_create: None,
                subgraph_weight_factor: None,
                folded_conv_weight_factor: None,
                constant_folding_factor: None,
                baseline_bytes: None,
                baseline_int8_bytes: None,
            },
            derivation: None,
            content_sha256: String::new(),
        }
    }

    fn parse(text: &str) -> Result<DeviceProfile> {
        DeviceProfile::from_json(text, Path::new("dev.json"))
    }

    #[test]
    fn sealed_profile_round_trips() {
        let mut p = sample();
        let bytes = p.to_json_bytes();
        let back = parse(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn rejects_hand_edits_truncation_other_schemas_and_unknown_fields() {
        let mut p = sample();
        let text = String::from_utf8(p.to_json_bytes()).unwrap();
        let e = parse(&text.replace("\"edgepack_version\": \"0\"", "\"edgepack_version\": \"1\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("edited"), "{e}");
        let e = parse(&text[..text.len() / 2]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = parse(&text.replace(DEVICE_SCHEMA, "edgepack.device/9"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("schema 'edgepack.device/9'"), "{e}");
        let e = parse(&text.replace("\"probe_wall_s\"", "\"probe_wall\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("probe_wall"), "{e}");
    }

    #[test]
    fn sealed_profile_validates_against_json_schema() {
        let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/device.schema.json");
        let schema: serde_json::Value =
            serde_json::from_slice(&std::fs::read(schema_path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        // With every optional memory line too.
        let mut full = sample();
        full.memory.weight_factor_session_create = Some(2.0);
        full.memory.conv_weight_factor = Some(2.6);
        full.memory.conv_weight_factor_session_create = Some(2.7);
        full.memory.subgraph_weight_factor = Some(2.2);
        full.memory.folded_conv_weight_factor = Some(2.1);
        full.memory.baseline_bytes = Some(36 << 20);
        full.memory.baseline_int8_bytes = Some(37 << 20);
        for mut p in [sample(), full] {
            let instance: serde_json::Value = serde_json::from_slice(&p.to_json_bytes()).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&instance)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{errors:#?}");
        }
    }

    #[test]
    fn builtin_derived_profiles_validate_against_json_schema() {
        let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/device.schema.json");
        let schema: serde_json::Value =
            serde_json::from_slice(&std::fs::read(schema_path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for (file, text) in crate::hardware::BUILTIN_DEVICE_PROFILES {
            let instance: serde_json::Value = serde_json::from_str(text).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&instance)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{file}: {errors:#?}");
            let p = DeviceProfile::load(Path::new(&format!("builtin:{file}"))).unwrap();
            assert!(p.is_derived(), "{file}");
        }
    }

    #[test]
    fn runtime_version_must_match() {
        let p = sample();
        assert!(p.check_runtime("1.20.0", Path::new("d")).is_ok());
        let e = p.check_runtime("1.19.2", Path::new("d")).unwrap_err();
        assert!(e.to_string().contains("probed with ONNX Runtime 1.20.0"));
    }

    fn fit_through(points: &[(f64, f64)], fixed_s: f64, s_per_work: f64) -> KernelFit {
        KernelFit {
            class: KernelClass::Pool,
            dtype: KernelDtype::Fp32,
            unit: WorkUnit::Bytes,
            points: points
                .iter()
                .map(|&(work, time_s)| KernelPoint {
                    name: String::new(),
                    work,
                    time_s,
                    p50_ci_rel: 0.0,
                })
                .collect(),
            fixed_s,
            s_per_work,
        }
    }

    #[test]
    fn a_kernel_between_the_probed_sizes_costs_what_they_measured_not_the_large_ones_rate() {
        // A memory-bound class: 1e5 bytes in 10 us (in cache), 1e7 in 3000 us (DRAM). The
        // stored fit goes through the origin at the large point's rate, 3e-10 s/byte.
        let f = fit_through(&[(1e7, 3e-3), (1e5, 1e-5)], 0.0, 3e-10);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 + 1e-9 * b.abs();
        // At the points, exactly what they measured (the fit said 30 us at 1e5).
        assert!(close(f.time_s(1e5), 1e-5) && close(f.time_s(1e7), 3e-3));
        // Below the smallest: its rate (the segment's line would go negative).
        assert!(close(f.time_s(5e4), 5e-6));
        // Between: on the segment.
        let slope = (3e-3 - 1e-5) / (1e7 - 1e5);
        assert!(close(f.time_s(2e6), 1e-5 + slope * (2e6 - 1e5)));
        // Above the largest: the segment's line.
        assert!(close(f.time_s(2e7), 3e-3 + slope * 1e7));
        // A class with a positive intercept keeps it below the smallest point.
        let g = fit_through(&[(1e6, 2e-4), (1e7, 1.1e-3)], 1e-4, 1e-10);
        assert!(close(g.time_s(0.0), 1e-4) && close(g.time_s(5e5), 1.5e-4));
        // One point, or a segment that measured more work as faster: the fitted line.
        let h = fit_through(&[(1e6, 2e-4)], 1e-4, 1e-10);
        assert!(close(h.time_s(2e6), 3e-4));
        let flat = fit_through(&[(1e6, 2e-4), (1e7, 1.9e-4)], 1.95e-4, 0.0);
        assert!(close(flat.time_s(1e8), 1.95e-4));
    }
}
