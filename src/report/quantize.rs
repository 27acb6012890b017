//! Reading a quantize report (`edgepack quantize --report FILE.json`) for the gate's SQNR
//! floor and the HTML report's quantization table.
//!
//! The quantizer's report is still evolving, so this reader depends on the few field names
//! that carry the figures rather than on the whole schema: per-output objects with an
//! `output` name and `sqnr_db` (plus `cosine`, `top1_agreement`, `max_abs_error` when
//! present), and top-level scalars whose names say what they are (`mode`, `*size_ratio*`,
//! `*latency_ratio*`, `*_bytes`). When the report has a top-level `outputs` array (the
//! chosen model), only that is used; otherwise every per-output object found.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// Accuracy of one output of the quantized model against the float one.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputRow {
    pub output: String,
    pub sqnr_db: Option<f64>,
    pub cosine: Option<f64>,
    pub top1_agreement: Option<f64>,
    pub max_abs_error: Option<f64>,
    /// The output's task metric, when the quantizer computed one.
    pub task: Option<TaskRow>,
}

/// A task metric of one output, as the quantize report carries it (`ctc`, `mask`).
#[derive(Clone, Debug, PartialEq)]
pub enum TaskRow {
    /// Greedy CTC text against fp32's: character error rate and lines decoded identically.
    Ctc {
        cer: Option<f64>,
        lines_identical: u64,
        lines: u64,
    },
    /// Overlap of the maps binarised at `threshold`: mean and worst IoU over samples.
    Mask {
        threshold: f64,
        mean_iou: Option<f64>,
        min_iou: Option<f64>,
    },
}

impl TaskRow {
    /// Read an output object's `ctc` or `mask` object.
    fn of(o: &serde_json::Map<String, Value>) -> Option<TaskRow> {
        let count = |m: &serde_json::Map<String, Value>, k: &str| m.get(k).and_then(Value::as_u64);
        if let Some(Value::Object(c)) = o.get("ctc") {
            return Some(TaskRow::Ctc {
                cer: num(c, "cer"),
                lines_identical: count(c, "lines_identical")?,
                lines: count(c, "lines")?,
            });
        }
        let Some(Value::Object(m)) = o.get("mask") else {
            return None;
        };
        Some(TaskRow::Mask {
            threshold: num(m, "threshold")?,
            mean_iou: num(m, "mean_iou"),
            min_iou: num(m, "min_iou"),
        })
    }
}

/// One candidate an `auto` quantization tried.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRow {
    pub variant: String,
    pub min_sqnr_db: Option<f64>,
    pub latency_ratio: Option<f64>,
    pub size_ratio: Option<f64>,
    pub meets_target: Option<bool>,
}

/// The figures of a quantize report the gate and the HTML report use.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct QuantizeSummary {
    /// The quantization mode, if the report names it.
    pub mode: Option<String>,
    /// The winning variant, if the report names it.
    pub variant: Option<String>,
    /// Accuracy was measured on random inputs (then it says little).
    pub random_inputs: bool,
    /// What the accuracy figures were measured on, as the quantizer's report spells it
    /// (`held_out`, `in_sample`, `random`); `None` in reports older than the field.
    pub accuracy_basis: Option<String>,
    pub outputs: Vec<OutputRow>,
    /// Other top-level numbers (ratios, sizes, timings) and those of a `size` object, in
    /// report order.
    pub figures: Vec<(String, f64)>,
    /// What `auto` tried (`attempts`), when there is more than the winner.
    pub attempts: Vec<AttemptRow>,
    /// `auto`: why the winner won.
    pub choice: Option<String>,
    pub warnings: Vec<String>,
}

impl QuantizeSummary {
    /// Read a quantize report file.
    pub fn from_path(path: &Path) -> Result<QuantizeSummary> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::file(path, format!("not valid JSON: {e}")))?;
        QuantizeSummary::from_json(&v, path)
    }

    /// Extract the figures from a parsed report read from `origin`; an error names it.
    pub fn from_json(v: &Value, origin: &Path) -> Result<QuantizeSummary> {
        QuantizeSummary::parse(v).map_err(|m| Error::file(origin, m))
    }

    /// [`QuantizeSummary::from_json`], the error being the bare message.
    fn parse(v: &Value) -> std::result::Result<QuantizeSummary, String> {
        let obj = v
            .as_object()
            .ok_or("a quantize report must be a JSON object")?;
        if let Some(schema) = obj.get("schema").and_then(Value::as_str) {
            if schema.starts_with("edgepack.profile/") || schema.starts_with("edgepack.gate/") {
                return Err(format!("this is a '{schema}' file, not a quantize report"));
            }
        }
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let mut s = QuantizeSummary {
            mode: text("mode"),
            variant: text("variant"),
            choice: text("choice"),
            accuracy_basis: text("accuracy_basis"),
            random_inputs: obj.get("random_inputs").and_then(Value::as_bool) == Some(true),
            warnings: obj
                .get("warnings")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|w| w.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            ..Default::default()
        };
        if let Some(Value::Array(items)) = obj.get("attempts") {
            s.attempts = items
                .iter()
                .filter_map(|a| {
                    let a = a.as_object()?;
                    Some(AttemptRow {
                        variant: a.get("variant")?.as_str()?.to_string(),
                        min_sqnr_db: num(a, "min_sqnr_db"),
                        latency_ratio: num(a, "latency_ratio"),
                        size_ratio: num(a, "size_ratio"),
                        meets_target: a.get("meets_target").and_then(Value::as_bool),
                    })
                })
                .collect();
        }
        match obj.get("outputs") {
            Some(Value::Array(items)) => items.iter().for_each(|i| collect_rows(i, &mut s.outputs)),
            _ => collect_rows(v, &mut s.outputs),
        }
        for (k, val) in obj {
            if let Some(x) = val.as_f64() {
                s.figures.push((k.clone(), x));
            }
        }
        if let Some(Value::Object(size)) = obj.get("size") {
            for (k, val) in size {
                if let Some(x) = val.as_f64() {
                    s.figures.push((format!("size {k}"), x));
                }
            }
        }
        if s.outputs.is_empty() && s.figures.is_empty() {
            return Err(
                "no per-output accuracy (sqnr_db) and no figures found; is this a \
                        quantize report?"
                    .into(),
            );
        }
        Ok(s)
    }

    /// The accuracy figures were judged on the calibration samples themselves (no
    /// held-out data), so they are optimistic and every view says so.
    pub fn in_sample(&self) -> bool {
        self.accuracy_basis.as_deref() == Some("in_sample")
    }

    /// The worst (lowest) finite SQNR over the outputs.
    pub fn worst_sqnr_db(&self) -> Option<f64> {
        self.outputs
            .iter()
            .filter_map(|o| o.sqnr_db)
            .filter(|x| !x.is_nan())
            .reduce(f64::min)
    }

    /// A named top-level figure whose key contains `needle` (e.g. `size_ratio`).
    pub fn figure(&self, needle: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|(k, _)| k.contains(needle))
            .map(|(_, v)| *v)
    }
}

fn num(o: &serde_json::Map<String, Value>, k: &str) -> Option<f64> {
    // serde_json writes infinities as null; a string "inf" is accepted too.
    match o.get(k)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn collect_rows(v: &Value, out: &mut Vec<OutputRow>) {
    match v {
        Value::Object(o) => {
            if o.contains_key("sqnr_db") {
                out.push(OutputRow {
                    output: o
                        .get("output")
                        .or_else(|| o.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    sqnr_db: num(o, "sqnr_db"),
                    cosine: num(o, "cosine"),
                    top1_agreement: num(o, "top1_agreement"),
                    max_abs_error: num(o, "max_abs_error"),
                    task: TaskRow::of(o),
                });
            } else {
                o.values().for_each(|c| collect_rows(c, out));
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_rows(c, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_outputs_and_figures() {
        let v = json!({
            "mode": "int8",
            "size_ratio": 0.31,
            "latency_ratio": 0.72,
            "outputs": [
                {"output": "logits", "sqnr_db": 31.5, "cosine": 0.9995, "top1_agreement": 0.995},
                {"output": "boxes", "sqnr_db": 27.0, "cosine": 0.999}
            ],
            "tried": [{"mode": "int4", "outputs": [{"output": "logits", "sqnr_db": 12.0}]}]
        });
        let s = QuantizeSummary::parse(&v).unwrap();
        assert_eq!(s.mode.as_deref(), Some("int8"));
        assert_eq!(s.outputs.len(), 2, "only the chosen model's outputs");
        assert_eq!(s.worst_sqnr_db(), Some(27.0));
        assert_eq!(s.figure("size_ratio"), Some(0.31));
    }

    #[test]
    fn reads_the_quantizer_report_layout() {
        let v = json!({
            "schema": "edgepack.quantize/1", "mode": "auto", "variant": "int8 (2 nodes in float)",
            "random_inputs": false, "calibration_samples": 32, "quantize_wall_s": 3.5,
            "accuracy_basis": "in_sample",
            "outputs": [{"output": "y", "sqnr_db": 30.0, "cosine": 0.9993,
                         "max_abs_error": 0.01, "mean_abs_error": 0.001, "top1_agreement": null,
                         "elements": 100}],
            "size": {"fp32_bytes": 1000, "quantized_bytes": 300, "ratio": 0.3},
            "size_ratio": 0.3, "latency_ratio": 0.8,
            "attempts": [
                {"variant": "int8", "quantized_nodes": 9, "min_sqnr_db": 21.0,
                 "latency_ratio": 0.7, "size_ratio": 0.28, "meets_target": false},
                {"variant": "int8 (2 nodes in float)", "quantized_nodes": 7, "min_sqnr_db": 30.0,
                 "latency_ratio": 0.8, "size_ratio": 0.3, "meets_target": true}
            ],
            "warnings": ["slower than fp32 on batch 8"],
            "choice": "'int8 (2 nodes in float)' meets the target",
            "session_config": {"session.disable_quant_qdq": "1"}
        });
        let s = QuantizeSummary::parse(&v).unwrap();
        assert_eq!(s.variant.as_deref(), Some("int8 (2 nodes in float)"));
        assert!(s.choice.as_deref().unwrap().contains("meets the target"));
        assert_eq!(s.attempts.len(), 2);
        assert_eq!(s.attempts[0].meets_target, Some(false));
        assert_eq!(s.figure("size quantized_bytes"), Some(300.0));
        assert_eq!(s.figure("latency_ratio"), Some(0.8));
        assert_eq!(s.warnings.len(), 1);
        assert_eq!(s.worst_sqnr_db(), Some(30.0));
        assert!(s.in_sample());
    }

    #[test]
    fn finds_nested_outputs_without_a_top_level_array() {
        let v = json!({"accuracy": {"per_output": [{"name": "y", "sqnr_db": 20.5}]}});
        let s = QuantizeSummary::parse(&v).unwrap();
        assert_eq!(s.worst_sqnr_db(), Some(20.5));
    }

    #[test]
    fn rejects_other_files() {
        assert!(QuantizeSummary::parse(&json!([1, 2])).is_err());
        assert!(QuantizeSummary::parse(&json!({"schema": "edgepack.profile/1"})).is_err());
        assert!(QuantizeSummary::parse(&json!({"name": "x"})).is_err());
    }
}
