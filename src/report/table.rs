//! The human table printed on stdout: one row per check, then a one-line summary.

use super::{change_cell, current_cell, decision_label, limit_cell, status_label, value, Exporter};
use crate::gate::Verdict;

/// Plain-text table with aligned columns ([`crate::table`]).
pub struct Table;

impl Exporter for Table {
    fn render(&self, v: &Verdict) -> String {
        let header = [
            "STATUS",
            "CHECK",
            "CURRENT",
            "BASELINE",
            "CHANGE [CI]",
            "LIMIT",
        ];
        let mut table = crate::table::Table::new(header);
        for c in &v.checks {
            table.row([
                status_label(c).to_string(),
                c.name(),
                current_cell(c),
                value(c.baseline, c.metric),
                change_cell(c),
                limit_cell(c),
            ]);
        }
        let mut out = table.render();
        for c in v
            .checks
            .iter()
            .filter(|c| c.status != crate::gate::CheckStatus::Pass)
        {
            out.push_str(&format!(
                "{}: {}: {}\n",
                status_label(c),
                c.name(),
                c.message
            ));
        }
        for n in &v.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        let (passed, failed, inconclusive, warnings) = v.counts();
        out.push_str(&format!(
            "gate: {} ({passed} passed, {failed} failed, {inconclusive} inconclusive, \
             {warnings} warnings)\n",
            decision_label(v.decision).to_uppercase()
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_snapshot() {
        insta::assert_snapshot!(Table.render(&crate::report::fixtures::verdict()));
    }
}
