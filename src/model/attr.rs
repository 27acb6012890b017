//! Typed attribute access on [`NodeProto`].
//!
//! ONNX attributes are a tagged union (`AttributeProto.type` plus one populated field).
//! Reading them by hand invites two bugs: silently taking a default when the attribute is
//! present with the wrong type, and error messages that do not say *which* node was wrong.
//! Every getter here checks the declared type (or, for old exporters that leave `type`
//! unset, which field is populated) and every error names the node, its op type and the
//! attribute: `node 'conv1' (Conv): attribute 'strides': expected ints, found int`.
//!
//! Three flavours per type:
//! - `attr_i("axis")`: required; missing is an error.
//! - `attr_opt_i("axis")`: `Ok(None)` when absent, an error when present with another type.
//! - `attr_i_or("axis", 1)`: the spec default when absent.
//!
//! ```
//! use edgepack::model::attr::{self, NodeExt};
//! use edgepack::model::NodeProto;
//! let node = NodeProto {
//!     name: "flat".into(),
//!     op_type: "Flatten".into(),
//!     attribute: vec![attr::int("axis", 1)],
//!     ..Default::default()
//! };
//! assert_eq!(node.attr_i("axis")?, 1);
//! assert_eq!(node.attr_i_or("missing", 7)?, 7);
//! assert!(node.attr_f("axis").unwrap_err().to_string().contains("'axis'"));
//! # Ok::<(), edgepack::Error>(())
//! ```
//!
//! The free functions ([`int`], [`float`], [`ints`], ...) build attributes with their
//! `type` set, for the builder and for patches.

use super::proto::attribute_proto::AttributeType;
use super::proto::{AttributeProto, GraphProto, NodeProto, TensorProto};
use crate::error::{Error, Result};

/// A human name for a node in error messages: its name, or (for the many exported graphs
/// with unnamed nodes) the tensor it produces.
pub fn node_label(node: &NodeProto) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else if let Some(out) = node.output.first() {
        format!("<unnamed, output '{out}'>")
    } else {
        "<unnamed>".to_string()
    }
}

/// The error for a node: names the node and its op type.
pub fn node_error(node: &NodeProto, message: impl Into<String>) -> Error {
    Error::node(node_label(node), node.op_type.clone(), message)
}

/// The declared type of an attribute, inferring it from the populated field when an old
/// exporter left `type` unset.
pub fn attr_type(a: &AttributeProto) -> AttributeType {
    if let Some(t) = a.r#type.and_then(|t| AttributeType::try_from(t).ok()) {
        if t != AttributeType::Undefined {
            return t;
        }
    }
    if a.f.is_some() {
        AttributeType::Float
    } else if a.i.is_some() {
        AttributeType::Int
    } else if a.s.is_some() {
        AttributeType::String
    } else if a.t.is_some() {
        AttributeType::Tensor
    } else if a.g.is_some() {
        AttributeType::Graph
    } else if a.sparse_tensor.is_some() {
        AttributeType::SparseTensor
    } else if a.tp.is_some() {
        AttributeType::TypeProto
    } else if !a.floats.is_empty() {
        AttributeType::Floats
    } else if !a.ints.is_empty() {
        AttributeType::Ints
    } else if !a.strings.is_empty() {
        AttributeType::Strings
    } else if !a.tensors.is_empty() {
        AttributeType::Tensors
    } else if !a.graphs.is_empty() {
        AttributeType::Graphs
    } else if !a.sparse_tensors.is_empty() {
        AttributeType::SparseTensors
    } else if !a.type_protos.is_empty() {
        AttributeType::TypeProtos
    } else {
        AttributeType::Undefined
    }
}

fn type_word(t: AttributeType) -> &'static str {
    match t {
        AttributeType::Undefined => "no value",
        AttributeType::Float => "float",
        AttributeType::Int => "int",
        AttributeType::String => "string",
        AttributeType::Tensor => "tensor",
        AttributeType::Graph => "graph",
        AttributeType::Floats => "floats",
        AttributeType::Ints => "ints",
        AttributeType::Strings => "strings",
        AttributeType::Tensors => "tensors",
        AttributeType::Graphs => "graphs",
        AttributeType::SparseTensor => "sparse tensor",
        AttributeType::SparseTensors => "sparse tensors",
        AttributeType::TypeProto => "type",
        AttributeType::TypeProtos => "types",
    }
}

/// Typed attribute getters on a node. Errors name the node, its op type and the attribute.
pub trait NodeExt {
    /// The raw attribute, if present.
    fn attr(&self, name: &str) -> Option<&AttributeProto>;

    /// The attribute if present, checked to have type `want` (an empty list attribute
    /// with `type` unset is accepted as any list type).
    fn attr_typed(&self, name: &str, want: AttributeType) -> Result<Option<&AttributeProto>>;

    /// An error about attribute `name` of this node.
    fn attr_error(&self, name: &str, message: &str) -> Error;

    /// Required int attribute.
    fn attr_i(&self, name: &str) -> Result<i64> {
        self.attr_opt_i(name)?
            .ok_or_else(|| self.attr_error(name, "required attribute is missing"))
    }
    /// Optional int attribute.
    fn attr_opt_i(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .attr_typed(name, AttributeType::Int)?
            .map(|a| a.i.unwrap_or(0)))
    }
    /// Int attribute with the spec default.
    fn attr_i_or(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.attr_opt_i(name)?.unwrap_or(default))
    }

    /// Required float attribute.
    fn attr_f(&self, name: &str) -> Result<f32> {
        self.attr_opt_f(name)?
            .ok_or_else(|| self.attr_error(name, "required attribute is missing"))
    }
    /// Optional float attribute.
    fn attr_opt_f(&self, name: &str) -> Result<Option<f32>> {
        Ok(self
            .attr_typed(name, AttributeType::Float)?
            .map(|a| a.f.unwrap_or(0.0)))
    }
    /// Float attribute with the spec default.
    fn attr_f_or(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.attr_opt_f(name)?.unwrap_or(default))
    }

    /// Required string attribute (UTF-8 checked).
    fn attr_s(&self, name: &str) -> Result<String> {
        self.attr_opt_s(name)?
            .ok_or_else(|| self.attr_error(name, "required attribute is missing"))
    }
    /// Optional string attribute.
    fn attr_opt_s(&self, name: &str) -> Result<Option<String>> {
        match self.attr_typed(name, AttributeType::String)? {
            None => Ok(None),
            Some(a) => {
                let bytes = a.s.as_deref().unwrap_or_default();
                String::from_utf8(bytes.to_vec())
                    .map(Some)
                    .map_err(|_| self.attr_error(name, "string is not valid UTF-8"))
            }
        }
    }
    /// String attribute with the spec default.
    fn attr_s_or(&self, name: &str, default: &str) -> Result<String> {
        Ok(self
            .attr_opt_s(name)?
            .unwrap_or_else(|| default.to_string()))
    }

    /// Required ints attribute.
    fn attr_ints(&self, name: &str) -> Result<Vec<i64>> {
        self.attr_opt_ints(name)?
            .ok_or_else(|| self.attr_error(name, "required attribute is missing"))
    }
    /// Optional ints attribute.
    fn attr_opt_ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self
            .attr_typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }
    /// Ints attribute with a default.
    fn attr_ints_or(&self, name: &str, default: &[i64]) -> Result<Vec<i64>> {
        Ok(self
            .attr_opt_ints(name)?
            .unwrap_or_else(|| default.to_vec()))
    }

    /// Required floats attribute.
    fn attr_floats(&self, name: &str) -> Result<Vec<f32>> {
        self.attr_opt_floats(name)?
            .ok_or_else(|| self.attr_error(name, "required attribute is missing"))
    }
    /// Optional floats attribute.
    fn attr_opt_floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self
            .attr_typed(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    /// Optional strings attribute (UTF-8 checked).
    fn attr_opt_strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.attr_typed(name, AttributeType::Strings)? {
            None => Ok(None),
            Some(a) => a
                .strings
                .iter()
                .map(|s| {
                    String::from_utf8(s.clone())
                        .map_err(|_| self.attr_error(name, "string is not valid UTF-8"))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
        }
    }

    /// Required tensor attribute.
    fn attr_t(&self, name: &str) -> Result<&TensorProto> {
        self.attr_opt_t(name)?
            .ok_or_else(|| self.attr_error(name, "required attribute is missing"))
    }
    /// Optional tensor attribute.
    fn attr_opt_t(&self, name: &str) -> Result<Option<&TensorProto>> {
        match self.attr_typed(name, AttributeType::Tensor)? {
            None => Ok(None),
            Some(a) => {
                a.t.as_ref()
                    .map(Some)
                    .ok_or_else(|| self.attr_error(name, "tensor attribute holds no tensor"))
            }
        }
    }

    /// Required graph attribute (`If` branches, `Loop`/`Scan` bodies).
    fn attr_g(&self, name: &str) -> Result<&GraphProto> {
        self.attr_opt_g(name)?
            .ok_or_else(|| self.attr_error(name, "required attribute is missing"))
    }
    /// Optional graph attribute.
    fn attr_opt_g(&self, name: &str) -> Result<Option<&GraphProto>> {
        match self.attr_typed(name, AttributeType::Graph)? {
            None => Ok(None),
            Some(a) => {
                a.g.as_ref()
                    .map(Some)
                    .ok_or_else(|| self.attr_error(name, "graph attribute holds no graph"))
            }
        }
    }
}

fn is_list(t: AttributeType) -> bool {
    matches!(
        t,
        AttributeType::Floats
            | AttributeType::Ints
            | AttributeType::Strings
            | AttributeType::Tensors
            | AttributeType::Graphs
            | AttributeType::SparseTensors
            | AttributeType::TypeProtos
    )
}

impl NodeExt for NodeProto {
    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attribute.iter().find(|a| a.name == name)
    }

    fn attr_typed(&self, name: &str, want: AttributeType) -> Result<Option<&AttributeProto>> {
        let Some(a) = self.attr(name) else {
            return Ok(None);
        };
        if !a.ref_attr_name.is_empty() {
            return Err(self.attr_error(
                name,
                &format!(
                    "refers to function attribute '{}'; only resolved inside a function body",
                    a.ref_attr_name
                ),
            ));
        }
        let found = attr_type(a);
        // An empty list written without `type` is indistinguishable between list kinds.
        if found == want || (found == AttributeType::Undefined && is_list(want)) {
            Ok(Some(a))
        } else {
            Err(self.attr_error(
                name,
                &format!("expected {}, found {}", type_word(want), type_word(found)),
            ))
        }
    }

    fn attr_error(&self, name: &str, message: &str) -> Error {
        node_error(self, format!("attribute '{name}': {message}"))
    }
}

/// Set (replace or add) an attribute on a node.
pub fn set(node: &mut NodeProto, attr: AttributeProto) {
    match node.attribute.iter_mut().find(|a| a.name == attr.name) {
        Some(slot) => *slot = attr,
        None => node.attribute.push(attr),
    }
}

/// Remove an attribute from a node; returns it if it was there.
pub fn remove(node: &mut NodeProto, name: &str) -> Option<AttributeProto> {
    let i = node.attribute.iter().position(|a| a.name == name)?;
    Some(node.attribute.remove(i))
}

fn base(name: &str, t: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(t as i32),
        ..Default::default()
    }
}

/// An int attribute.
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: Some(v),
        ..base(name, AttributeType::Int)
    }
}

/// A float attribute.
pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: Some(v),
        ..base(name, AttributeType::Float)
    }
}

/// A string attribute.
pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: Some(v.as_bytes().to_vec()),
        ..base(name, AttributeType::String)
    }
}

/// An ints attribute.
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..base(name, AttributeType::Ints)
    }
}

/// A floats attribute.
pub fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        floats: v.to_vec(),
        ..base(name, AttributeType::Floats)
    }
}

/// A strings attribute.
pub fn strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..base(name, AttributeType::Strings)
    }
}

/// A tensor attribute (e.g. `Constant`'s `value`).
pub fn tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(t),
        ..base(name, AttributeType::Tensor)
    }
}

/// A graph attribute (e.g. `If`'s `then_branch`).
pub fn graph(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        g: Some(g),
        ..base(name, AttributeType::Graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> NodeProto {
        NodeProto {
            name: "conv1".into(),
            op_type: "Conv".into(),
            output: vec!["y".into()],
            attribute: vec![
                ints("strides", &[2, 2]),
                int("group", 1),
                float("alpha", 0.5),
                string("auto_pad", "NOTSET"),
                tensor("value", TensorProto::default()),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn reads_each_type() {
        let n = conv();
        assert_eq!(n.attr_ints("strides").unwrap(), vec![2, 2]);
        assert_eq!(n.attr_i("group").unwrap(), 1);
        assert_eq!(n.attr_f("alpha").unwrap(), 0.5);
        assert_eq!(n.attr_s("auto_pad").unwrap(), "NOTSET");
        assert!(n.attr_t("value").is_ok());
        assert_eq!(n.attr_ints_or("pads", &[0, 0, 0, 0]).unwrap(), vec![0; 4]);
        assert_eq!(n.attr_opt_i("missing").unwrap(), None);
        assert_eq!(n.attr_s_or("mode", "constant").unwrap(), "constant");
    }

    #[test]
    fn missing_required_names_node_op_and_attribute() {
        let e = conv().attr_i("axis").unwrap_err().to_string();
        assert_eq!(
            e,
            "node 'conv1' (Conv): attribute 'axis': required attribute is missing"
        );
    }

    #[test]
    fn wrong_type_is_an_error_not_a_default() {
        let n = conv();
        let e = n.attr_i_or("strides", 1).unwrap_err().to_string();
        assert!(e.contains("expected int, found ints"), "{e}");
        assert!(n.attr_g("group").is_err());
    }

    #[test]
    fn infers_type_when_exporter_left_it_unset() {
        let mut n = conv();
        n.attribute.push(AttributeProto {
            name: "axis".into(),
            i: Some(3),
            ..Default::default()
        });
        assert_eq!(n.attr_i("axis").unwrap(), 3);
    }

    #[test]
    fn unnamed_node_is_labelled_by_output() {
        let mut n = conv();
        n.name.clear();
        let e = n.attr_i("axis").unwrap_err().to_string();
        assert!(e.contains("<unnamed, output 'y'>"), "{e}");
    }

    #[test]
    fn set_replaces_and_remove_removes() {
        let mut n = conv();
        set(&mut n, int("group", 4));
        assert_eq!(n.attr_i("group").unwrap(), 4);
        assert_eq!(n.attribute.len(), 5);
        assert!(remove(&mut n, "group").is_some());
        assert_eq!(n.attr_opt_i("group").unwrap(), None);
    }
}
