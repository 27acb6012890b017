//! Running a model with internal tensors exposed as outputs: the quantizer's calibration
//! reads activation ranges this way.
//!
//! [`expose`] is a plain proto edit (append untyped `ValueInfoProto`s to the main graph's
//! outputs; ONNX Runtime infers their types). [`IntermediateSession`] builds one session
//! over the edited model and returns only the requested tensors, and [`collect`] streams
//! batches through it, handing each batch's tensors to a callback so memory stays bounded
//! by one batch's activations, however many batches calibration uses.

use std::collections::HashSet;

use super::{ExecutionContext, Session};
use crate::error::{Error, Result};
use crate::model::{Model, ValueInfoProto};
use crate::tensor::Tensor;

/// A copy of `model` whose main graph also outputs `names` (in that order, after the
/// original outputs). Names must be produced by a node of the main graph or be a graph
/// input; names that already are outputs are not added twice.
pub fn expose(model: &Model, names: &[String]) -> Result<Model> {
    let g = model.graph();
    let produced: HashSet<&str> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .chain(g.input.iter().map(|i| i.name.as_str()))
        .filter(|n| !n.is_empty())
        .collect();
    let mut present: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let mut added = Vec::new();
    for name in names {
        if !produced.contains(name.as_str()) {
            return Err(Error::usage(
                "intermediate outputs",
                format!("no node of the main graph produces a tensor named '{name}'"),
            ));
        }
        if present.insert(name.clone()) {
            added.push(ValueInfoProto {
                name: name.clone(),
                ..Default::default()
            });
        }
    }
    let mut out = model.clone();
    out.graph_mut().output.extend(added);
    Ok(out)
}

/// A session that returns chosen intermediate tensors.
#[derive(Debug)]
pub struct IntermediateSession {
    session: Session,
    names: Vec<String>,
}

impl IntermediateSession {
    /// Build a session over `model` with `names` exposed as outputs.
    pub fn new(model: &Model, names: &[String], ctx: &ExecutionContext) -> Result<Self> {
        let exposed = expose(model, names)?;
        Ok(IntermediateSession {
            session: Session::from_model(&exposed, ctx)?,
            names: names.to_vec(),
        })
    }

    /// The underlying session (its inputs, providers).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Run one batch; returns the requested tensors in the order they were asked for.
    pub fn run(&mut self, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        self.session.run_selected(inputs, &self.names)
    }
}

/// Run every batch through `model` with `names` exposed, calling `each(batch_index,
/// tensors)` per batch. Only one batch's tensors are alive at a time.
pub fn collect<I, F>(
    model: &Model,
    names: &[String],
    ctx: &ExecutionContext,
    batches: I,
    mut each: F,
) -> Result<usize>
where
    I: IntoIterator<Item = Result<Vec<(String, Tensor)>>>,
    F: FnMut(usize, Vec<(String, Tensor)>) -> Result<()>,
{
    let mut s = IntermediateSession::new(model, names, ctx)?;
    let mut n = 0;
    for batch in batches {
        let tensors = s.run(&batch?)?;
        each(n, tensors)?;
        n += 1;
    }
    Ok(n)
}
