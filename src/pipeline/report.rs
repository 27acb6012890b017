//! The build report, `<output>/<name>-build.json` (schema `edgepack.build/1`): the type is
//! [`crate::report::build_schema`]'s, so that the report readers below the pipeline read it
//! typed; this module fills it from the bundle step's outcomes.

use crate::bundle;
pub use crate::report::build_schema::{
    BuildReport, EvaluationRecord, HostCompute, ProfileRecord, ProfileSource, SkippedVariant,
    TargetRecord, VariantRecord, BUILD_SCHEMA,
};

impl TargetRecord {
    /// The record of one bundling outcome.
    pub fn from_outcome(o: &bundle::Outcome) -> Self {
        let sel = &o.selection;
        TargetRecord {
            target: o.target.name.clone(),
            bundle: o.path.as_ref().map(|p| p.display().to_string()),
            size_bytes: o.size_bytes,
            model_ram_bytes: o.target.model_ram_bytes(),
            chosen: sel.chosen.map(|i| sel.evaluations[i].variant.clone()),
            evaluations: sel
                .evaluations
                .iter()
                .map(|e| EvaluationRecord {
                    variant: e.variant.clone(),
                    fits: e.fits,
                    reasons: e.reasons.clone(),
                    notes: e.notes.clone(),
                    threads: e.choice.as_ref().map(|c| c.threads),
                    batch: e.choice.as_ref().map(|c| c.batch),
                    latency_p50_s: e.choice.as_ref().and_then(|c| c.p50_s),
                    peak_memory_bytes: e.choice.as_ref().and_then(|c| c.peak_memory_bytes),
                    latency_p50_low_s: e
                        .choice
                        .as_ref()
                        .and_then(|c| c.p50_interval_s.map(|i| i.0)),
                    latency_p50_high_s: e
                        .choice
                        .as_ref()
                        .and_then(|c| c.p50_interval_s.map(|i| i.1)),
                    peak_memory_high_bytes: e
                        .choice
                        .as_ref()
                        .and_then(|c| c.peak_memory_high_bytes),
                    basis: e.choice.as_ref().map(|c| c.basis.clone()),
                })
                .collect(),
        }
    }
}
