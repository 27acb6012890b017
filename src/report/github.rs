//! GitHub Actions workflow commands: `::error` for hard failures, `::warning` for
//! inconclusive and soft checks, so they show on the pull request's checks page.
//! (Syntax: <https://docs.github.com/actions/reference/workflow-commands-for-github-actions>.)

use super::{status_label, Exporter};
use crate::gate::{CheckStatus, Severity, Verdict};

/// One workflow command per non-passing check; nothing for passing ones.
pub struct Annotations;

/// Escape a workflow command's message (`%`, CR and LF) ...
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// ... and a property value (additionally `:` and `,`).
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

impl Exporter for Annotations {
    fn render(&self, v: &Verdict) -> String {
        let mut o = String::new();
        for c in v.checks.iter().filter(|c| c.status != CheckStatus::Pass) {
            let level = if c.severity == Severity::Hard && c.status == CheckStatus::Fail {
                "error"
            } else {
                "warning"
            };
            o.push_str(&format!(
                "::{level} title={}::{}\n",
                property(&format!("edgepack gate {}: {}", status_label(c), c.name())),
                data(&c.message)
            ));
        }
        for n in &v.notes {
            o.push_str(&format!("::notice title=edgepack gate::{}\n", data(n)));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_snapshot() {
        insta::assert_snapshot!(Annotations.render(&crate::report::fixtures::verdict()));
    }

    #[test]
    fn escapes_workflow_command_syntax() {
        assert_eq!(property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }
}
