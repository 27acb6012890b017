//! Markdown summary for `$GITHUB_STEP_SUMMARY` or a pull-request comment: the decision,
//! then before / after / delta per check, then why each non-passing check did not pass.

use super::{change_cell, current_cell, decision_label, limit_cell, status_label, value, Exporter};
use crate::gate::{CheckStatus, Decision, Verdict};
use crate::setting::Setting;

/// GitHub-flavoured Markdown.
pub struct Markdown;

/// Keep table cells on one line and stop `|` from splitting them.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Exporter for Markdown {
    fn render(&self, v: &Verdict) -> String {
        let icon = match v.decision {
            Decision::Pass => "✅",
            Decision::Fail => "❌",
            Decision::Inconclusive => "⚠️",
        };
        let (passed, failed, inconclusive, warnings) = v.counts();
        let mut o = format!(
            "## {icon} edgepack gate: {}\n\n",
            decision_label(v.decision)
        );
        o.push_str(&format!(
            "`{}` (sha256 `{}`)",
            cell(&v.current_model.path),
            &v.current_model.sha256[..v.current_model.sha256.len().min(12)]
        ));
        if let Some(b) = &v.baseline_model {
            o.push_str(&format!(
                " against baseline `{}` (sha256 `{}`)",
                cell(&b.path),
                &b.sha256[..b.sha256.len().min(12)]
            ));
        }
        o.push_str(&format!(
            ": {passed} passed, {failed} failed, {inconclusive} inconclusive, {warnings} warnings.\n\n"
        ));
        o.push_str("| Status | Check | Before | After | Delta [95% CI] | Limit |\n");
        o.push_str("|---|---|---:|---:|---:|---:|\n");
        for c in &v.checks {
            o.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                status_label(c),
                cell(&c.name()),
                cell(&value(c.baseline, c.metric)),
                cell(&current_cell(c)),
                cell(&change_cell(c)),
                cell(&limit_cell(c))
            ));
        }
        let open: Vec<_> = v
            .checks
            .iter()
            .filter(|c| c.status != CheckStatus::Pass)
            .collect();
        if !open.is_empty() {
            o.push_str("\n**Why**\n\n");
            for c in open {
                o.push_str(&format!(
                    "- **{}** {}: {}\n",
                    status_label(c),
                    cell(&c.name()),
                    cell(&c.message)
                ));
            }
        }
        if !v.notes.is_empty() {
            o.push_str("\n**Notes**\n\n");
            for n in &v.notes {
                o.push_str(&format!("- {}\n", cell(n)));
            }
        }
        if v.decision == Decision::Inconclusive {
            o.push_str(&format!(
                "\nInconclusive means the measurements were too noisy to decide (exit status 3). \
                 Re-run with `edgepack gate {}` so old and new models are measured \
                 interleaved on the same runner.\n",
                Setting::Remeasure
            ));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_snapshot() {
        insta::assert_snapshot!(Markdown.render(&crate::report::fixtures::verdict()));
    }
}
