//! The human table printed on stdout: one row per check, then a one-line summary.

use super::{change_cell, current_cell, decision_label, limit_cell, status_label, value, Exporter};
use crate::gate::Verdict;

/// Plain-text table with aligned columns.
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
        let rows: Vec<[String; 6]> = v
            .checks
            .iter()
            .map(|c| {
                [
                    status_label(c).to_string(),
                    c.name(),
                    current_cell(c),
                    value(c.baseline, c.metric),
                    change_cell(c),
                    limit_cell(c),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    s.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&header.map(String::from));
        for r in &rows {
            line(r);
        }
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
