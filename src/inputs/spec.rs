//! A model's declared inputs and outputs, and the role each input plays.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::attr::NodeExt;
use crate::model::graph::{self, GraphIndex};
use crate::model::proto::type_proto::Value as TypeValue;
use crate::model::{DataType, Dim, Model, ValueInfoProto};
use crate::setting::Setting;
use crate::tensor::{onnx_type_name, DType};

/// What an input means to the model, as far as the graph and the name tell. It decides
/// what [`super::generate`] puts into the input when the user gives no data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Role {
    /// Plain data: floats uniform in [0, 1), integers in 0..10, bools true.
    #[default]
    Data,
    /// Integer indices into a table of `vocab` rows (the input feeds a `Gather` as
    /// indices: token ids into an embedding). Generated uniformly in `0..vocab`; a sample
    /// holding an index outside `-vocab..vocab` is refused.
    Indices { vocab: u64 },
    /// An attention mask (named `*mask*`): all ones, every position attended.
    AttentionMask,
    /// Token type / segment ids (named `*token_type*` or `*segment*`): all zeros.
    TokenTypes,
    /// An integer scalar that is not an index (a sample rate, a step count, a flag): no
    /// generated value means anything, so the user gives it (`--input-range NAME=V..V`
    /// or `--input NAME=FILE`).
    Parameter,
}

/// A declared graph input or output: name, element type, (possibly symbolic) shape and,
/// for inputs, the [`Role`].
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// The graph value's name.
    pub name: String,
    /// The ONNX element type code (`TensorProto.data_type`); 0 when undeclared.
    pub elem_type: i32,
    /// Dims, or `None` when the model declares no shape (any rank).
    pub dims: Option<Vec<Dim>>,
    /// What the input means (read from the graph by [`model_inputs`]; [`Role::Data`]
    /// where only the signature is known).
    pub role: Role,
}

impl TensorSpec {
    /// From a `ValueInfoProto`, with the role its name and type suggest. Non-tensor values
    /// (sequences, maps) get `elem_type` 0.
    pub fn from_value_info(v: &ValueInfoProto) -> Self {
        let elem_type = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(TypeValue::TensorType(t)) => t.elem_type.unwrap_or(0),
            _ => 0,
        };
        let mut spec = TensorSpec {
            name: v.name.clone(),
            elem_type,
            dims: graph::shape(v),
            role: Role::Data,
        };
        spec.role = spec.role_from_signature();
        spec
    }

    /// The role the name, element type and rank alone suggest (no graph).
    pub fn role_from_signature(&self) -> Role {
        let lower = self.name.to_ascii_lowercase();
        let dtype = DType::from_onnx(self.elem_type);
        let numeric = dtype.is_some();
        if numeric && lower.contains("mask") {
            return Role::AttentionMask;
        }
        if numeric
            && dtype != Some(DType::Bool)
            && (lower.contains("token_type") || lower.contains("segment"))
        {
            return Role::TokenTypes;
        }
        let integer = dtype.is_some_and(|d| !d.is_float() && d != DType::Bool);
        if integer && self.dims.as_ref().is_some_and(|d| d.is_empty()) {
            return Role::Parameter;
        }
        Role::Data
    }

    /// The element type, or an error naming the input when edgepack cannot feed it
    /// (strings, complex numbers, 4- and 8-bit floats).
    pub fn dtype(&self) -> Result<DType> {
        DType::from_onnx(self.elem_type).ok_or_else(|| {
            let why = if self.elem_type == DataType::String as i32 {
                "is a string input; edgepack feeds numeric and bool tensors only (tokenize \
                 outside the model, or export the model from token ids)"
                    .to_string()
            } else {
                format!(
                    "element type {} is not supported",
                    onnx_type_name(self.elem_type)
                )
            };
            Error::input(&self.name, why)
        })
    }

    /// The shape as text: `[?, 3, 48, 192]`, `[batch, 3, h, w]`, or `any` when undeclared.
    pub fn shape_text(&self) -> String {
        match &self.dims {
            None => "any".into(),
            Some(d) => format!(
                "[{}]",
                d.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The element type's name, or the ONNX name when edgepack has no [`DType`] for it.
    pub fn dtype_text(&self) -> String {
        DType::from_onnx(self.elem_type)
            .map(|d| d.name().to_string())
            .unwrap_or_else(|| onnx_type_name(self.elem_type))
    }
}

/// The model's real inputs (graph inputs that are not initializers), in graph order, with
/// roles read from the graph: an integer input that a `Gather` uses as indices into a
/// constant table gets [`Role::Indices`] with the table's size along the gathered axis
/// (names win over this: a `token_type_ids` input is [`Role::TokenTypes`] although it
/// indexes a table of 2).
pub fn model_inputs(model: &Model) -> Vec<TensorSpec> {
    let g = model.graph();
    let index = GraphIndex::new(g);
    index
        .real_inputs()
        .into_iter()
        .map(|vi| {
            let mut spec = TensorSpec::from_value_info(vi);
            let integer = spec
                .dtype()
                .is_ok_and(|d| !d.is_float() && d != DType::Bool);
            if integer && matches!(spec.role, Role::Data | Role::Parameter) {
                if let Some(vocab) = gather_table_rows(&index, &spec.name) {
                    spec.role = Role::Indices { vocab };
                }
            }
            spec
        })
        .collect()
}

/// The smallest table size among the constant tables `name` indexes (as `Gather`
/// indices), looking through `Cast`/`Unsqueeze`/`Reshape`/`Flatten`/`Squeeze` on the way.
fn gather_table_rows(index: &GraphIndex, name: &str) -> Option<u64> {
    let g = index.graph();
    let mut best: Option<u64> = None;
    let mut frontier = vec![name.to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(v) = frontier.pop() {
        if !seen.insert(v.clone()) || seen.len() > 64 {
            continue;
        }
        for &i in index.consumers(&v) {
            let n = &g.node[i];
            if !graph::is_default_domain(&n.domain) {
                continue;
            }
            match n.op_type.as_str() {
                "Gather" if n.input.get(1) == Some(&v) => {
                    let Some(table) = n.input.first().and_then(|t| index.constant(t)) else {
                        continue;
                    };
                    let rank = table.dims.len() as i64;
                    let axis = n.attr_i_or("axis", 0).unwrap_or(0);
                    let axis = if axis < 0 { axis + rank } else { axis };
                    if let Some(&rows) = table.dims.get(axis.max(0) as usize) {
                        if rows > 0 {
                            best = Some(best.map_or(rows as u64, |b| b.min(rows as u64)));
                        }
                    }
                }
                "Cast" | "Unsqueeze" | "Reshape" | "Flatten" | "Squeeze"
                    if n.input.first() == Some(&v) =>
                {
                    frontier.extend(n.output.iter().cloned());
                }
                _ => {}
            }
        }
    }
    best
}

/// The model's graph outputs, in graph order.
pub fn model_outputs(model: &Model) -> Vec<TensorSpec> {
    model
        .graph()
        .output
        .iter()
        .map(TensorSpec::from_value_info)
        .collect()
}

/// An error for a setting that names no input of the model.
pub(crate) fn unknown_input(name: &str, specs: &[TensorSpec], setting: Setting) -> Error {
    Error::input(
        name,
        format!(
            "{setting} names no input of the model (its inputs: {})",
            input_names(specs)
        ),
    )
}

/// The input names, comma separated (`none` when there are none).
pub(crate) fn input_names(specs: &[TensorSpec]) -> String {
    if specs.is_empty() {
        "none".to_string()
    } else {
        specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
