//! JUnit XML: one test case per check, so CI systems list each budget and regression.
//! A hard failure is a `<failure>`, a hard inconclusive check an `<error>` (it could not
//! be decided), and a soft check that did not pass a passing test case with the warning
//! in `<system-out>`, so it is visible without failing the build.

use super::{status_label, Exporter};
use crate::gate::{CheckKind, CheckStatus, Severity, Verdict};

/// JUnit XML (the Ant schema that GitHub, GitLab and Jenkins read).
pub struct Junit;

/// Escape text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

impl Exporter for Junit {
    fn render(&self, v: &Verdict) -> String {
        let hard = |s| {
            v.checks
                .iter()
                .filter(|c| c.severity == Severity::Hard && c.status == s)
                .count()
        };
        let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let (failures, errors) = (hard(CheckStatus::Fail), hard(CheckStatus::Inconclusive));
        o.push_str(&format!(
            "<testsuites name=\"edgepack gate\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">\n",
            v.checks.len()
        ));
        o.push_str(&format!(
            "  <testsuite name=\"edgepack gate: {}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\">\n",
            esc(&v.current_model.path),
            v.checks.len()
        ));
        for c in &v.checks {
            let class = match c.kind {
                CheckKind::Run => "edgepack.gate.run".to_string(),
                _ => format!("edgepack.gate.{}", c.metric.name()),
            };
            o.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                esc(&class),
                esc(&c.name())
            ));
            match (c.status, c.severity) {
                (CheckStatus::Pass, _) => o.push_str(" />\n"),
                (_, Severity::Soft) => o.push_str(&format!(
                    ">\n      <system-out>{}: {}</system-out>\n    </testcase>\n",
                    status_label(c),
                    esc(&c.message)
                )),
                (CheckStatus::Fail, Severity::Hard) => o.push_str(&format!(
                    ">\n      <failure type=\"{}\" message=\"{}\" />\n    </testcase>\n",
                    match c.kind {
                        CheckKind::Budget => "budget",
                        CheckKind::Regression => "regression",
                        CheckKind::Run => "run",
                    },
                    esc(&c.message)
                )),
                (CheckStatus::Inconclusive, Severity::Hard) => o.push_str(&format!(
                    ">\n      <error type=\"inconclusive\" message=\"{}\" />\n    </testcase>\n",
                    esc(&c.message)
                )),
            }
        }
        if !v.notes.is_empty() {
            o.push_str("    <system-out>");
            o.push_str(&esc(&v.notes.join("\n")));
            o.push_str("</system-out>\n");
        }
        o.push_str("  </testsuite>\n</testsuites>\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_snapshot() {
        insta::assert_snapshot!(Junit.render(&crate::report::fixtures::verdict()));
    }

    #[test]
    fn escapes_markup_in_messages() {
        assert_eq!(esc("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;?");
    }
}
