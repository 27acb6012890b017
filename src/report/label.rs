//! Configuration labels for people: a configuration is named by what varies across the
//! sweep, and what every configuration shares is said once.
//!
//! A configuration's id (`ep=cpu threads=1 batch=1 p2o.DynamicDimension.1=640
//! p2o.DynamicDimension.2=640`) names every setting, because it is the key the gate
//! matches profiles by and must not change. Printed as is, the dims a `--shape` fixed make
//! the detector's table about 200 characters wide while saying the same thing on every
//! row (issue 17). The display label keeps only the `key=value` parts whose value differs
//! between configurations; the rest is the `fixed` line. Ids are never rewritten: this is
//! display only, in the report layer.

use std::collections::BTreeMap;

/// The display label of each configuration id, and the settings they all share.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ConfigLabels {
    by_id: BTreeMap<String, String>,
    /// The `key=value` parts every configuration has with the same value, in id order.
    pub fixed: Vec<String>,
    /// The keys whose value differs between configurations, in id order (`batch`,
    /// `sequence`): what the sweep varies.
    pub varying: Vec<String>,
}

impl ConfigLabels {
    /// Labels for these ids (the configurations of one profile, in sweep order).
    ///
    /// A part varies when some configuration has another value for its key, or lacks it.
    /// When nothing varies (one configuration), the label is its execution provider and
    /// thread count, so that a row is never unnamed.
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a str>) -> ConfigLabels {
        let ids: Vec<&str> = ids.into_iter().collect();
        let parsed: Vec<Vec<(&str, &str)>> = ids.iter().map(|id| parts(id)).collect();
        let mut keys: Vec<&str> = vec![];
        for p in &parsed {
            for (k, _) in p {
                if !keys.contains(k) {
                    keys.push(k);
                }
            }
        }
        let varies: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| {
                let first = parsed.first().and_then(|p| value(p, k));
                parsed.iter().any(|p| value(p, k) != first)
            })
            .collect();
        let varying: Vec<String> = varies.iter().map(|k| k.to_string()).collect();
        let shown: Vec<&str> = if varies.is_empty() {
            keys.iter()
                .copied()
                .filter(|k| *k == "ep" || *k == "threads")
                .collect()
        } else {
            varies
        };
        let fixed = parsed
            .first()
            .map(|p| {
                p.iter()
                    .filter(|(k, _)| !shown.contains(k))
                    .map(|(k, v)| join(k, v))
                    .collect()
            })
            .unwrap_or_default();
        let by_id = ids
            .iter()
            .zip(&parsed)
            .map(|(id, p)| {
                let label: Vec<String> = p
                    .iter()
                    .filter(|(k, _)| shown.contains(k))
                    .map(|(k, v)| join(k, v))
                    .collect();
                let label = if label.is_empty() {
                    id.to_string()
                } else {
                    label.join(" ")
                };
                (id.to_string(), label)
            })
            .collect();
        ConfigLabels {
            by_id,
            fixed,
            varying,
        }
    }

    /// Labels for a profile's configurations.
    pub fn of(p: &crate::profile::schema::Profile) -> ConfigLabels {
        ConfigLabels::new(p.configs.iter().map(|c| c.id.as_str()))
    }

    /// The label of `id` (the id itself when it is not one of these configurations).
    pub fn label<'a>(&'a self, id: &'a str) -> &'a str {
        self.by_id.get(id).map(String::as_str).unwrap_or(id)
    }

    /// `every configuration: batch=1 H=640 W=640`, or `None` when nothing is shared
    /// beyond what the labels show.
    pub fn fixed_line(&self) -> Option<String> {
        (!self.fixed.is_empty()).then(|| self.fixed.join(" "))
    }
}

/// The value of `key` among an id's parts.
fn value<'a>(parts: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    parts.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The `key=value` parts of an id, split on spaces (a part without `=` is its own key).
fn parts(id: &str) -> Vec<(&str, &str)> {
    id.split_whitespace()
        .map(|t| t.split_once('=').unwrap_or((t, "")))
        .collect()
}

fn join(k: &str, v: &str) -> String {
    if v.is_empty() {
        k.to_string()
    } else {
        format!("{k}={v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detector's case (issue 17): dims fixed by `--shape` leave the label; the
    /// batch that varies stays, and the fixed dims are said once.
    #[test]
    fn labels_keep_what_varies_and_say_the_rest_once() {
        let ids = [
            "ep=cpu threads=1 batch=1 p2o.DynamicDimension.1=640 p2o.DynamicDimension.2=640",
            "ep=cpu threads=1 batch=2 p2o.DynamicDimension.1=640 p2o.DynamicDimension.2=640",
            "ep=cpu threads=2 batch=1 p2o.DynamicDimension.1=640 p2o.DynamicDimension.2=640",
        ];
        let l = ConfigLabels::new(ids);
        assert_eq!(l.label(ids[0]), "threads=1 batch=1");
        assert_eq!(l.label(ids[2]), "threads=2 batch=1");
        assert_eq!(
            l.fixed_line().as_deref(),
            Some("ep=cpu p2o.DynamicDimension.1=640 p2o.DynamicDimension.2=640")
        );
        // Unknown ids are shown as they are.
        assert_eq!(l.label("ep=cuda threads=1"), "ep=cuda threads=1");
    }

    /// A sequence sweep keeps the sequence dim; one configuration keeps ep and threads.
    #[test]
    fn a_swept_dim_stays_and_a_single_configuration_keeps_ep_and_threads() {
        let ids = [
            "ep=cpu threads=1 batch=1 sequence=16",
            "ep=cpu threads=1 batch=1 sequence=128",
        ];
        let l = ConfigLabels::new(ids);
        assert_eq!(l.label(ids[1]), "sequence=128");
        assert_eq!(l.fixed, vec!["ep=cpu", "threads=1", "batch=1"]);
        let one = ["ep=cpu threads=0 x=1x3x48x192"];
        let l = ConfigLabels::new(one);
        assert_eq!(l.label(one[0]), "ep=cpu threads=0");
        assert_eq!(l.fixed_line().as_deref(), Some("x=1x3x48x192"));
        // A key some configurations lack varies.
        let l = ConfigLabels::new(["ep=cpu threads=1", "ep=cpu threads=1 batch=4"]);
        assert_eq!(l.label("ep=cpu threads=1 batch=4"), "batch=4");
        assert_eq!(l.label("ep=cpu threads=1"), "ep=cpu threads=1");
        assert!(ConfigLabels::new([]).fixed_line().is_none());
    }
}
