//! The manifest (`manifest.json`, `"schema": "edgepack.manifest/1"`): what a package or a
//! bundle holds and how to run it. The JSON Schema is `schemas/manifest.schema.json`; a
//! test validates produced manifests against it, so the two cannot drift apart.
//!
//! One schema serves packages and bundles (`kind`). Layout inside the zip, after ONNX
//! Runtime's model-package idea of one manifest over components with per-device variants:
//!
//! ```text
//! manifest.json                       this document
//! manifest.sig                        optional ed25519 signature over manifest.json's bytes
//! components/model/<variant>/model.onnx
//! labels.txt                          optional, named by postprocessing.labels
//! self-test/<case>/inputs/<name>.npy  sample inputs
//! self-test/<case>/expected/<name>.npy expected outputs
//! runtime/<platform>/libonnxruntime.so.<version>   bundles built --with-runtime
//! ```
//!
//! Every file except `manifest.json` and `manifest.sig` is listed in `files` with its
//! sha256 and size; verification rejects missing, extra and changed files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema identifier written in every manifest.
pub const MANIFEST_SCHEMA: &str = "edgepack.manifest/1";
/// The manifest's name inside the archive.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The signature's name inside the archive.
pub const SIGNATURE_FILE: &str = "manifest.sig";

/// Package (model + context) or bundle (a package sized for one target).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Package,
    Bundle,
}

/// The whole manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: String,
    pub kind: Kind,
    pub name: String,
    pub edgepack_version: String,
    /// Creation time (seconds since 1970, UTC). Reproducible by default: see `created_from`.
    pub created_unix_s: u64,
    /// What the time is: `SOURCE_DATE_EPOCH`, `model mtime` or `package` (a bundle inherits
    /// its package's time), so the same inputs give the same bytes.
    pub created_from: String,
    /// The model components and their variants.
    pub components: Vec<Component>,
    pub contract: Contract,
    pub execution: ExecutionContext,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<Preprocessing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postprocessing: Option<Postprocessing>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_test: Vec<SelfTestCase>,
    pub lineage: Lineage,
    /// Bundles only: the target and what edgepack predicts there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetInfo>,
    /// Bundles only: the runtime library carried (`--with-runtime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeInfo>,
    /// Bundles only: the edgepack executable for the target (`--with-device-binary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_binary: Option<RuntimeInfo>,
    /// Every file in the archive except the manifest and its signature, sorted by path.
    pub files: Vec<FileEntry>,
}

/// A model component (ONNX Runtime model-package style): one logical model, many variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: String,
    pub variants: Vec<Variant>,
}

/// One variant of a component: a model file for a precision / execution provider / device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// `fp32`, `fp16`, `int8`, `int8-weight`, `int4-weight`.
    pub name: String,
    /// Path of the model inside the archive.
    pub path: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// Execution providers this variant is meant for, preferred first.
    pub execution_providers: Vec<String>,
    /// `cpu`, `gpu`, `npu`.
    pub device: String,
    #[serde(default)]
    pub opsets: BTreeMap<String, i64>,
    #[serde(default)]
    pub ir_version: i64,
    #[serde(default)]
    pub producer: String,
    /// Accuracy against the original (signal-to-quantization-noise ratio), quantized variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqnr_db: Option<f64>,
    /// ONNX Runtime session configuration entries this variant needs on top of the
    /// package's execution context (e.g. `session.disable_quant_qdq` = `1` for int8
    /// weight-only variants, so the weights are dequantized once at load).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub session_config: BTreeMap<String, String>,
    /// How this variant was derived from the original (empty for the original).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transformations: Vec<Transformation>,
}

/// A tensor in the I/O contract. Symbolic dims are strings, unknown dims `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: String,
    /// `None` when the model does not declare a rank.
    pub shape: Option<Vec<Dim>>,
}

/// One dimension: a number, a symbol, or unknown (`null`); the crate's one [`Dim`].
pub use crate::model::Dim;

/// Inputs and outputs the model promises.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// How to build the session: the runtime's own execution context (threads, optimisation
/// level, providers in order, memory flags), so a device builds the session the package
/// was tested with. Machine-local paths (profiling prefix, optimized model path) are
/// refused when packaging.
pub use crate::runtime::ExecutionContext;

/// Image-style preprocessing a caller must apply before feeding `input`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    pub input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<Resize>,
    /// `nchw` or `nhwc`.
    #[serde(default = "default_layout")]
    pub layout: String,
    /// `rgb` or `bgr`.
    #[serde(default = "default_channel_order")]
    pub channel_order: String,
    /// Multiply raw pixel values by this first (e.g. 1/255).
    #[serde(default = "one")]
    pub scale: f64,
    /// Then subtract `mean` and divide by `std`, per channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mean: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub std: Vec<f64>,
}

fn default_layout() -> String {
    "nchw".into()
}
fn default_channel_order() -> String {
    "rgb".into()
}
fn one() -> f64 {
    1.0
}

/// Resize before normalisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    pub height: u32,
    pub width: u32,
    /// `bilinear`, `nearest`, `bicubic`.
    #[serde(default = "default_interp")]
    pub interpolation: String,
    #[serde(default)]
    pub keep_aspect_ratio: bool,
}

fn default_interp() -> String {
    "bilinear".into()
}

/// How to turn `output` into an answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postprocessing {
    pub output: String,
    #[serde(default)]
    pub softmax: bool,
    #[serde(default)]
    pub argmax: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Path of the labels file inside the archive (one label per line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// What `output` is used for, i.e. the task metric that judges a variant against fp32:
    /// `ctc`, `mask@0.3`, `top1` or `embedding` ([`crate::quantize::task::Task`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// A self-test case any device can run: feed `inputs`, compare with `expected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfTestCase {
    pub name: String,
    /// Input name -> `.npy` path inside the archive.
    pub inputs: BTreeMap<String, String>,
    /// Output name -> `.npy` path inside the archive.
    pub expected: BTreeMap<String, String>,
    /// How the expected outputs were obtained (e.g. `onnxruntime 1.31.1 cpu`, `provided`).
    pub produced_by: String,
    pub tolerance: Tolerance,
}

/// |actual - expected| <= abs + rel * |expected|, element-wise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

/// Where the model came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    pub source_model: Option<Artifact>,
    #[serde(default)]
    pub datasets: Vec<Artifact>,
    #[serde(default)]
    pub code: Vec<CodeRef>,
    /// For derived models (variants, bundles): what they were derived from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Artifact>,
    /// Every transformation applied, in order.
    #[serde(default)]
    pub transformations: Vec<Transformation>,
}

/// A file or dataset identified by URI and (where known) sha256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Source code by repository and commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// One transformation (packaging, quantization, variant selection) and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transformation {
    pub name: String,
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    pub edgepack_version: String,
    /// sha256 of the model before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<String>,
}

/// Bundles: the target the bundle is sized for and the predictions there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetInfo {
    pub name: String,
    pub arch: String,
    /// sha256 of the target TOML the bundle was sized with.
    pub target_sha256: String,
    pub variant: String,
    pub prediction: Prediction,
}

/// What edgepack expects of the chosen variant on the target, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    pub threads: usize,
    pub batch: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p95_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    pub bundle_size_bytes_max: u64,
    /// `measured on target`, `scaled from host (...)`, `no profile`.
    pub basis: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_sqnr_db: Option<f64>,
}

/// The runtime library carried in a bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeInfo {
    pub name: String,
    pub version: String,
    pub platform: String,
    pub path: String,
}

/// One file of the archive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size_bytes: u64,
}

impl Manifest {
    /// The execution context a variant runs with: the package's, plus the variant's own
    /// session entries (e.g. `session.disable_quant_qdq` for int8 weight-only).
    pub fn execution_for(&self, variant: &Variant) -> ExecutionContext {
        let mut ctx = self.execution.clone();
        ctx.session_config.extend(variant.session_config.clone());
        ctx
    }

    /// The variant stored at `path` in the archive.
    pub fn variant_at(&self, path: &str) -> Option<&Variant> {
        self.components
            .iter()
            .flat_map(|c| c.variants.iter())
            .find(|v| v.path == path)
    }

    /// The manifest's canonical bytes: pretty JSON with a trailing newline. Field order is
    /// the struct's and maps are sorted, so the same manifest always gives the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    /// The variant with a given name, in the first component.
    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.components
            .iter()
            .flat_map(|c| c.variants.iter())
            .find(|v| v.name == name)
    }
}
