//! Machine-readable verdict (`"schema": "edgepack.gate/1"`), values in SI units.

use super::Exporter;
use crate::gate::Verdict;

/// Pretty-printed JSON of the whole verdict.
pub struct Json;

impl Exporter for Json {
    fn render(&self, v: &Verdict) -> String {
        // Serializing plain structs of strings and finite floats cannot fail.
        let mut s = serde_json::to_string_pretty(v).expect("verdict serializes");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_snapshot() {
        insta::assert_snapshot!(Json.render(&crate::report::fixtures::verdict()));
    }
}
