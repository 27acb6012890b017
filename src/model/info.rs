//! What `edgepack inspect` reports about a model, as one serializable struct.
//!
//! [`ModelInfo::collect`] gathers everything that can be known without running the model:
//! signature (symbolic dims kept as their names), opsets, producer, node and op counts,
//! parameters and weight bytes by dtype and by where they live (initializers vs `Constant`
//! nodes), external data files, and a MACs/FLOPs estimate at the input shapes the caller
//! resolved. Whether ONNX Runtime loads the model is a separate question that only the
//! runtime layer can answer; [`ModelInfo::onnxruntime_loads`] stays `None` ("not checked")
//! until the caller records an answer with [`ModelInfo::set_runtime_check`].
//!
//! JSON field names carry their unit (`weight_bytes`, `file_bytes`); counts are plain.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::graph::{self, Dim, GraphIndex, WeightStats};
use super::proto::ValueInfoProto;
use super::shape::{self, Cost};
use super::{external, for_each_graph, Model};
use crate::error::{Error, Result};
use crate::setting::Setting;

/// `inspect` writes an anonymous dim as `"?"` (its JSON predates the one [`Dim`], whose
/// own JSON form writes `null`); scripts read these files, so the form stays.
fn dims_with_question_marks<S: serde::Serializer>(
    dims: &Option<Vec<Dim>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    match dims {
        None => s.serialize_none(),
        Some(dims) => {
            let mut seq = s.serialize_seq(Some(dims.len()))?;
            for d in dims {
                match d {
                    Dim::Unknown => seq.serialize_element("?")?,
                    d => seq.serialize_element(d)?,
                }
            }
            seq.end()
        }
    }
}

/// A graph input or output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TensorSignature {
    /// The tensor name.
    pub name: String,
    /// ONNX element type name (`float`, `int64`, ...), `?` when not a tensor.
    pub dtype: String,
    /// Dims, symbolic ones as strings (`"?"` when anonymous); `null` when the rank is
    /// unknown.
    #[serde(serialize_with = "dims_with_question_marks")]
    pub shape: Option<Vec<Dim>>,
}

impl TensorSignature {
    fn of(vi: &ValueInfoProto) -> Self {
        TensorSignature {
            name: vi.name.clone(),
            dtype: graph::elem_type_name(vi),
            shape: graph::shape(vi),
        }
    }

    /// The shape as `[1, 3, N, ?]` (symbolic names can contain `x`, so no `1x3xN`).
    pub fn shape_text(&self) -> String {
        match &self.shape {
            None => "unknown rank".into(),
            Some(d) if d.is_empty() => "scalar".into(),
            Some(d) => format!(
                "[{}]",
                d.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Where the weights live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WeightPlaces {
    /// In `graph.initializer`.
    pub initializers: graph::WeightPlace,
    /// In `Constant` nodes.
    pub constant_nodes: graph::WeightPlace,
    /// In `graph.sparse_initializer`.
    pub sparse_initializers: graph::WeightPlace,
}

/// An external data file the model refers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExternalFile {
    /// The location as written in the model.
    pub location: String,
    /// Bytes referenced in it (sum over tensors).
    pub referenced_bytes: u64,
    /// Number of tensors stored in it.
    pub tensors: u64,
}

/// The compute estimate at given input shapes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Compute {
    /// The input shapes used.
    pub input_shapes: BTreeMap<String, Vec<i64>>,
    /// Real inputs whose shape is unknown (pass `--shape` or `--dim`).
    pub unresolved_inputs: Vec<String>,
    /// Total MACs of Conv/ConvTranspose/MatMul/Gemm; `null` unless every one was sized.
    pub macs: Option<u64>,
    /// 2 × `macs`; `null` when `macs` is.
    pub flops: Option<u64>,
    /// MACs of the nodes that could be sized (equals `macs` when complete).
    pub macs_sized: u64,
    /// MACs by op type (sized nodes).
    pub macs_by_op: BTreeMap<String, u64>,
    /// Compute nodes that could not be sized.
    pub unsized_nodes: Vec<String>,
    /// Nodes of any type shape inference could not size.
    pub shape_unknown_nodes: usize,
    /// How compute inside `If`/`Loop` subgraphs was counted (which branch, iterations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subgraphs: Vec<String>,
}

/// The schema identifier of the `inspect --json` object.
pub const SCHEMA: &str = "edgepack.inspect/1";

/// Everything `inspect` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The model file, if read from one.
    pub path: Option<String>,
    /// Size of the model file.
    pub file_bytes: Option<u64>,
    /// ONNX IR version.
    pub ir_version: i64,
    /// Exporter name.
    pub producer_name: String,
    /// Exporter version.
    pub producer_version: String,
    /// Model domain.
    pub domain: String,
    /// Model version.
    pub model_version: Option<i64>,
    /// Opset imports: domain (`ai.onnx` for the default) -> version.
    pub opsets: BTreeMap<String, i64>,
    /// Real inputs (graph inputs that are not initializers).
    pub inputs: Vec<TensorSignature>,
    /// Graph outputs.
    pub outputs: Vec<TensorSignature>,
    /// Symbol name -> the inputs using it.
    pub symbolic_dims: BTreeMap<String, Vec<String>>,
    /// Nodes in the main graph.
    pub nodes: u64,
    /// Nodes including those inside `If`/`Loop`/`Scan` bodies.
    pub nodes_including_subgraphs: u64,
    /// Number of subgraphs (`If` branches, loop bodies).
    pub subgraphs: u64,
    /// Op type -> count, subgraph nodes included (see `ops_include_subgraphs`).
    pub ops: BTreeMap<String, u64>,
    /// Always true: `ops` counts subgraph nodes too.
    pub ops_include_subgraphs: bool,
    /// Elements of all weights.
    pub parameters: u64,
    /// Bytes of all weights.
    pub weight_bytes: u64,
    /// Elements by dtype.
    pub parameters_by_dtype: BTreeMap<String, u64>,
    /// Bytes by dtype.
    pub weight_bytes_by_dtype: BTreeMap<String, u64>,
    /// Where the weights live.
    pub weights: WeightPlaces,
    /// External data files.
    pub external_data: Vec<ExternalFile>,
    /// MACs/FLOPs estimate.
    pub compute: Compute,
    /// Structural problems found (dangling names, cycles): empty for a well-formed graph.
    pub problems: Vec<String>,
    /// Whether ONNX Runtime loads the model; `null` when not checked.
    pub onnxruntime_loads: Option<bool>,
    /// ONNX Runtime's error when it does not load, or why it was not checked.
    pub onnxruntime_message: Option<String>,
    /// The ONNX Runtime version that was asked, when one was.
    pub onnxruntime_version: Option<String>,
}

impl ModelInfo {
    /// Gather the report. `input_shapes` (input -> concrete dims, already resolved and
    /// checked against the model by the input model, `crate::inputs::resolve_partial`)
    /// size the inputs for the compute estimate; inputs without one are unresolved.
    pub fn collect(model: &Model, input_shapes: &BTreeMap<String, Vec<i64>>) -> Result<Self> {
        let origin = model
            .path
            .clone()
            .unwrap_or_else(|| Path::new("<memory>").to_path_buf());
        let in_file = |e: Error| match e {
            e @ (Error::File { .. } | Error::Input { .. } | Error::Usage { .. }) => e,
            other => Error::file(&origin, other.to_string()),
        };
        let g = model.graph();
        let index = GraphIndex::new(g);
        let stats: WeightStats = graph::weight_stats(g).map_err(in_file)?;

        let mut symbolic_dims: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (input, syms) in index.symbolic_dims() {
            for s in syms {
                let users = symbolic_dims.entry(s).or_default();
                if !users.contains(&input) {
                    users.push(input.clone());
                }
            }
        }

        let mut subgraphs = 0u64;
        for_each_graph(g, &mut |_| subgraphs += 1);

        let mut external_data: BTreeMap<String, ExternalFile> = BTreeMap::new();
        if model.path.is_some() {
            for r in external::validate(model)? {
                let e = external_data
                    .entry(r.location.clone())
                    .or_insert(ExternalFile {
                        location: r.location.clone(),
                        referenced_bytes: 0,
                        tensors: 0,
                    });
                e.referenced_bytes += r.length;
                e.tensors += 1;
            }
        } else {
            for loc in external::files(&model.proto) {
                external_data.insert(
                    loc.clone(),
                    ExternalFile {
                        location: loc,
                        referenced_bytes: 0,
                        tensors: 0,
                    },
                );
            }
        }

        let input_shapes = input_shapes.clone();
        let unresolved_inputs: Vec<String> = index
            .real_inputs()
            .iter()
            .filter(|vi| !input_shapes.contains_key(&vi.name))
            .map(|vi| vi.name.clone())
            .collect();
        let inference = shape::infer(g, &input_shapes);
        let cost: Cost = shape::cost(g, &inference);
        let complete = cost.unsized_nodes.is_empty();
        let compute = Compute {
            input_shapes,
            unresolved_inputs,
            macs: complete.then_some(cost.macs),
            flops: complete.then_some(cost.flops),
            macs_sized: cost.macs,
            macs_by_op: cost.macs_by_op,
            unsized_nodes: cost.unsized_nodes,
            shape_unknown_nodes: inference.unsized_nodes.len(),
            subgraphs: cost.subgraphs,
        };

        let problems = match super::patch::check_graph(g, &Default::default()) {
            Ok(()) => Vec::new(),
            Err(e) => vec![e.to_string()],
        };

        let file_bytes = model
            .path
            .as_deref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len());

        Ok(ModelInfo {
            schema: SCHEMA.to_string(),
            path: model.path.as_ref().map(|p| p.display().to_string()),
            file_bytes,
            ir_version: model.proto.ir_version.unwrap_or(0),
            producer_name: model.proto.producer_name.clone(),
            producer_version: model.proto.producer_version.clone(),
            domain: model.proto.domain.clone(),
            model_version: model.proto.model_version,
            opsets: graph::opsets(&model.proto),
            inputs: index
                .real_inputs()
                .into_iter()
                .map(TensorSignature::of)
                .collect(),
            outputs: index.outputs().iter().map(TensorSignature::of).collect(),
            symbolic_dims,
            nodes: graph::node_count(g, false),
            nodes_including_subgraphs: graph::node_count(g, true),
            subgraphs: subgraphs - 1,
            ops: graph::op_histogram(g, true),
            ops_include_subgraphs: true,
            parameters: stats.parameters,
            weight_bytes: stats.weight_bytes,
            parameters_by_dtype: stats.parameters_by_dtype,
            weight_bytes_by_dtype: stats.weight_bytes_by_dtype,
            weights: WeightPlaces {
                initializers: stats.initializers,
                constant_nodes: stats.constant_nodes,
                sparse_initializers: stats.sparse_initializers,
            },
            external_data: external_data.into_values().collect(),
            compute,
            problems,
            onnxruntime_loads: None,
            onnxruntime_message: Some("not checked".into()),
            onnxruntime_version: None,
        })
    }

    /// Record the runtime's answer: `Ok(())` if it loaded the model, else its error;
    /// `version` names the ONNX Runtime that answered.
    pub fn set_runtime_check(
        &mut self,
        result: std::result::Result<(), String>,
        version: Option<String>,
    ) {
        self.onnxruntime_version = version;
        match result {
            Ok(()) => {
                self.onnxruntime_loads = Some(true);
                self.onnxruntime_message = None;
            }
            Err(e) => {
                self.onnxruntime_loads = Some(false);
                self.onnxruntime_message = Some(e);
            }
        }
    }

    /// Record why the runtime check was not made.
    pub fn set_runtime_not_checked(&mut self, why: impl Into<String>) {
        self.onnxruntime_loads = None;
        self.onnxruntime_message = Some(why.into());
    }

    /// The human-readable report.
    pub fn to_table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(
            w,
            "model       {}",
            self.path.as_deref().unwrap_or("<memory>")
        );
        if let Some(b) = self.file_bytes {
            let _ = writeln!(w, "file        {}", crate::units::format_bytes(b));
        }
        let producer = format!("{} {}", self.producer_name, self.producer_version);
        let producer = if producer.trim().is_empty() {
            "(not recorded)"
        } else {
            producer.trim()
        };
        let _ = writeln!(w, "producer    {producer}");
        let opsets: Vec<String> = self
            .opsets
            .iter()
            .map(|(d, v)| format!("{d} {v}"))
            .collect();
        let _ = writeln!(
            w,
            "format      IR {}, opsets {}",
            self.ir_version,
            opsets.join(", ")
        );
        let _ = writeln!(w);
        let width = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .map(|t| t.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        for (title, list) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            let _ = writeln!(w, "{title}");
            for t in list {
                let _ = writeln!(
                    w,
                    "  {:<width$}  {:<8}  {}",
                    t.name,
                    t.dtype,
                    t.shape_text()
                );
            }
        }
        if !self.symbolic_dims.is_empty() {
            let syms: Vec<String> = self
                .symbolic_dims
                .iter()
                .map(|(s, users)| format!("{s} ({})", users.join(", ")))
                .collect();
            let _ = writeln!(w, "symbolic dims: {}", syms.join(", "));
        }
        let _ = writeln!(w);
        let _ = write!(w, "nodes       {}", self.nodes);
        if self.nodes_including_subgraphs != self.nodes {
            let _ = write!(
                w,
                " ({} with {} subgraphs)",
                self.nodes_including_subgraphs, self.subgraphs
            );
        }
        let _ = writeln!(w);
        let mut ops: Vec<(&String, &u64)> = self.ops.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let ops: Vec<String> = ops.iter().map(|(o, n)| format!("{o} {n}")).collect();
        let _ = writeln!(w, "ops         {}", ops.join(", "));
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "parameters  {} ({})",
            human_count(self.parameters),
            crate::units::format_bytes(self.weight_bytes)
        );
        for (dt, n) in &self.parameters_by_dtype {
            let b = self.weight_bytes_by_dtype.get(dt).copied().unwrap_or(0);
            let _ = writeln!(
                w,
                "  {:<10}{} ({})",
                dt,
                human_count(*n),
                crate::units::format_bytes(b)
            );
        }
        let places = [
            ("initializers", &self.weights.initializers),
            ("Constant nodes", &self.weights.constant_nodes),
            ("sparse", &self.weights.sparse_initializers),
        ];
        let _ = write!(w, "weights in ");
        let parts: Vec<String> = places
            .iter()
            .filter(|(_, p)| p.tensors > 0)
            .map(|(n, p)| {
                format!(
                    "{n}: {} tensors, {}",
                    p.tensors,
                    crate::units::format_bytes(p.bytes)
                )
            })
            .collect();
        let _ = writeln!(
            w,
            "{}",
            if parts.is_empty() {
                "nothing (no weights)".to_string()
            } else {
                parts.join("; ")
            }
        );
        if !self.external_data.is_empty() {
            for f in &self.external_data {
                let _ = writeln!(
                    w,
                    "external    {} ({} tensors, {})",
                    f.location,
                    f.tensors,
                    crate::units::format_bytes(f.referenced_bytes)
                );
            }
        }
        let _ = writeln!(w);
        let c = &self.compute;
        let at: Vec<String> = c
            .input_shapes
            .iter()
            .map(|(n, d)| {
                if d.is_empty() {
                    format!("{n}=scalar")
                } else {
                    let dims: Vec<String> = d.iter().map(|x| x.to_string()).collect();
                    format!("{n}={}", dims.join("x"))
                }
            })
            .collect();
        let counted = self
            .ops
            .keys()
            .any(|o| matches!(o.as_str(), "Conv" | "ConvTranspose" | "MatMul" | "Gemm"));
        match c.macs {
            Some(0) if !counted => {
                let _ = writeln!(
                    w,
                    "compute     no Conv, ConvTranspose, MatMul or Gemm nodes to count"
                );
            }
            Some(m) => {
                let _ = writeln!(
                    w,
                    "compute     {} MACs, {} FLOPs at {}",
                    human_count(m),
                    human_count(2 * m),
                    if at.is_empty() {
                        "fixed shapes".to_string()
                    } else {
                        at.join(", ")
                    }
                );
            }
            None => {
                let mut why = Vec::new();
                if !c.unresolved_inputs.is_empty() {
                    why.push(format!(
                        "input {} not sized: pass {} NAME=DIMS or {} SYMBOL=N",
                        c.unresolved_inputs.join(", "),
                        Setting::Shape,
                        Setting::Dim
                    ));
                }
                why.push(format!(
                    "{} compute nodes unsized, {} MACs counted",
                    c.unsized_nodes.len(),
                    human_count(c.macs_sized)
                ));
                let _ = writeln!(w, "compute     unknown ({})", why.join("; "));
            }
        }
        for s in &c.subgraphs {
            let _ = writeln!(w, "            {s}");
        }
        for p in &self.problems {
            let _ = writeln!(w, "problem     {p}");
        }
        let by = self
            .onnxruntime_version
            .as_ref()
            .map(|v| format!(" (ONNX Runtime {v})"))
            .unwrap_or_default();
        let ort = match (self.onnxruntime_loads, &self.onnxruntime_message) {
            (Some(true), _) => format!("loads{by}"),
            (Some(false), Some(m)) => format!("does NOT load{by}: {m}"),
            (Some(false), None) => format!("does NOT load{by}"),
            (None, Some(m)) => m.clone(),
            (None, None) => "not checked".to_string(),
        };
        let _ = writeln!(w, "onnxruntime {ort}");
        s
    }
}

/// `1.2 M`-style counts (SI, 3 significant digits).
pub fn human_count(n: u64) -> String {
    let units = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, unit) in units {
        if n as f64 >= scale {
            return format!("{:.3} {unit}", n as f64 / scale);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder;

    #[test]
    fn reports_constant_weights_and_symbols() {
        let m = builder::constant_weights(1);
        let info = ModelInfo::collect(&m, &BTreeMap::new()).unwrap();
        assert_eq!(info.inputs.len(), 1);
        assert_eq!(
            info.inputs[0].shape,
            Some(vec![
                Dim::Symbol("N".into()),
                Dim::Fixed(3),
                Dim::Fixed(16),
                Dim::Fixed(16)
            ])
        );
        assert_eq!(info.weights.initializers.tensors, 0);
        assert_eq!(info.weights.constant_nodes.tensors, 10);
        assert_eq!(info.parameters, info.weights.constant_nodes.parameters);
        assert_eq!(info.weight_bytes, 4 * info.parameters);
        assert_eq!(info.compute.macs, None);
        assert_eq!(info.compute.unresolved_inputs, vec!["x".to_string()]);
        assert_eq!(info.symbolic_dims["N"], vec!["x".to_string()]);
        assert!(info.problems.is_empty());
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(
            json["inputs"][0]["shape"],
            serde_json::json!(["N", 3, 16, 16])
        );
        assert_eq!(json["ops"]["Constant"], 10);
        assert!(json["onnxruntime_loads"].is_null());
        assert_eq!(json["schema"], "edgepack.inspect/1");
    }

    #[test]
    fn computes_macs_when_symbols_are_given() {
        let m = builder::symbolic_batch(1);
        let shapes = BTreeMap::from([("x".to_string(), vec![2, 3, 16, 16])]);
        let info = ModelInfo::collect(&m, &shapes).unwrap();
        let per_image = 8 * 256 * 27 + 16 * 16 * 72 + 10 * 256;
        assert_eq!(info.compute.macs, Some(2 * per_image));
        assert_eq!(info.compute.flops, Some(4 * per_image));
        let table = info.to_table();
        assert!(table.contains("x=2x3x16x16"), "{table}");
        assert!(table.contains("onnxruntime not checked"), "{table}");
    }

    #[test]
    fn counts_subgraph_ops_and_reports_them_as_such() {
        let info = ModelInfo::collect(&builder::if_model(1), &BTreeMap::new()).unwrap();
        assert_eq!(info.nodes, 2);
        assert_eq!(info.nodes_including_subgraphs, 4);
        assert_eq!(info.subgraphs, 2);
        assert_eq!(info.ops["Relu"], 1);
        assert!(info.ops_include_subgraphs);
    }

    #[test]
    fn runtime_answer_is_recorded() {
        let shapes = BTreeMap::from([("x".to_string(), vec![1, 2])]);
        let mut info = ModelInfo::collect(&builder::mlp(&[2, 2], 1), &shapes).unwrap();
        assert_eq!(info.compute.macs, Some(4));
        info.set_runtime_check(Err("bad op".into()), Some("1.31.1".into()));
        assert_eq!(info.onnxruntime_loads, Some(false));
        assert!(info
            .to_table()
            .contains("does NOT load (ONNX Runtime 1.31.1): bad op"));
    }

    /// A model file is untrusted: whatever still decodes after random corruption must be
    /// described (or refused with an error), never panic. Seeded, so failures reproduce.
    #[test]
    fn corrupted_models_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
        let originals = [
            builder::conv_net(1).to_bytes(),
            builder::constant_weights(2).to_bytes(),
            builder::if_model(3).to_bytes(),
        ];
        let shapes = BTreeMap::from([("x".to_string(), vec![2, 3, 16, 16])]);
        let mut described = 0;
        for round in 0..3000 {
            let mut bytes = originals[round % originals.len()].clone();
            let flips = rng.random_range(1..8);
            for _ in 0..flips {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            let Ok(m) = Model::from_bytes(&bytes, Path::new("fuzz.onnx")) else {
                continue;
            };
            let one = BTreeMap::from([("x".to_string(), vec![1, 3, 16, 16])]);
            for sh in [&shapes, &one, &BTreeMap::new()] {
                if let Ok(info) = ModelInfo::collect(&m, sh) {
                    let _ = info.to_table();
                    let _ = serde_json::to_string(&info).unwrap();
                    described += 1;
                }
            }
        }
        assert!(described > 100, "only {described} corrupted models decoded");
    }

    /// The table and JSON layouts are interfaces (people read one, scripts parse the
    /// other): changes must show up in review as snapshot diffs.
    #[test]
    fn table_and_json_snapshots() {
        let m = builder::symbolic_batch(1);
        let shapes = BTreeMap::from([("x".to_string(), vec![2, 3, 16, 16])]);
        let mut info = ModelInfo::collect(&m, &shapes).unwrap();
        info.set_runtime_check(Ok(()), Some("1.31.1".into()));
        insta::assert_snapshot!("inspect_table", info.to_table());
        insta::assert_json_snapshot!("inspect_json", info);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(2_301_935_744), "2.302 G");
    }
}
