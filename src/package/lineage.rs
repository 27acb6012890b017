//! `--lineage KEY=URI[#FRAGMENT]`: where a model came from.
//!
//! Keys: `source` (the source model), `dataset` or `dataset:NAME`, `code` or `code:NAME`
//! (the fragment is the commit), `parent` (the model this one was derived from). For every
//! key but `code` the fragment is a sha256 (64 hex digits); a `file:` URI or a plain path
//! to an existing file without a fragment is hashed for you.

use crate::error::{Error, Result};
use crate::setting::Setting;

use super::manifest::{Artifact, CodeRef, Lineage};

/// One parsed `--lineage` value.
#[derive(Clone, Debug, PartialEq)]
pub struct LineageSpec {
    pub key: String,
    pub name: Option<String>,
    pub uri: String,
    pub fragment: Option<String>,
}

impl LineageSpec {
    /// Parse `KEY[:NAME]=URI[#FRAGMENT]`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |m: &str| Error::usage(Setting::Lineage, format!("'{s}': {m}"));
        let (k, rest) = s
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=URI[#sha256]"))?;
        let (key, name) = match k.split_once(':') {
            Some((k, n)) if !n.is_empty() => (k, Some(n.to_string())),
            Some(_) => return Err(bad("empty name after ':'")),
            None => (k, None),
        };
        if !["source", "dataset", "code", "parent"].contains(&key) {
            return Err(bad(
                "KEY must be source, dataset[:NAME], code[:NAME] or parent",
            ));
        }
        let (uri, fragment) = match rest.rsplit_once('#') {
            Some((u, f)) => (u.to_string(), Some(f.to_string())),
            None => (rest.to_string(), None),
        };
        if uri.is_empty() {
            return Err(bad("empty URI"));
        }
        if let Some(f) = &fragment {
            let hex = !f.is_empty() && f.chars().all(|c| c.is_ascii_hexdigit());
            if key == "code" {
                if !(hex && (7..=64).contains(&f.len())) {
                    return Err(bad(
                        "a code fragment must be a commit id (7 to 64 hex digits)",
                    ));
                }
            } else if !(hex && f.len() == 64) {
                return Err(bad("the fragment must be a sha256 (64 hex digits)"));
            }
        }
        Ok(LineageSpec {
            key: key.into(),
            name,
            uri,
            fragment: fragment.map(|f| f.to_ascii_lowercase()),
        })
    }

    /// The sha256: the fragment, or the hash of a local file the URI names.
    fn sha256(&self) -> Result<Option<String>> {
        if self.fragment.is_some() {
            return Ok(self.fragment.clone());
        }
        let path = self.uri.strip_prefix("file:").unwrap_or(&self.uri);
        let p = std::path::Path::new(path);
        if !self.uri.contains("://") && p.is_file() {
            let b = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            return Ok(Some(super::sha256_hex(&b)));
        }
        Ok(None)
    }
}

/// Build the lineage record from `--lineage` values.
pub fn build(specs: &[LineageSpec]) -> Result<Lineage> {
    let mut l = Lineage::default();
    for s in specs {
        match s.key.as_str() {
            "code" => l.code.push(CodeRef {
                name: s.name.clone(),
                repository: s.uri.clone(),
                commit: s.fragment.clone(),
            }),
            key => {
                let a = Artifact {
                    name: s.name.clone(),
                    uri: s.uri.clone(),
                    sha256: s.sha256()?,
                };
                match key {
                    "source" if l.source_model.is_some() => {
                        return Err(Error::usage(Setting::Lineage, "source given twice"))
                    }
                    "source" => l.source_model = Some(a),
                    "parent" if l.parent.is_some() => {
                        return Err(Error::usage(Setting::Lineage, "parent given twice"))
                    }
                    "parent" => l.parent = Some(a),
                    _ => l.datasets.push(a),
                }
            }
        }
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_names_and_fragments() {
        let h = "a".repeat(64);
        let s = LineageSpec::parse(&format!("dataset:train=s3://b/train.tar#{h}")).unwrap();
        assert_eq!(s.name.as_deref(), Some("train"));
        assert_eq!(s.uri, "s3://b/train.tar");
        assert_eq!(s.fragment.as_deref(), Some(h.as_str()));
        let c = LineageSpec::parse("code=https://github.com/o/r#0123abc").unwrap();
        let l = build(&[s, c]).unwrap();
        assert_eq!(l.datasets.len(), 1);
        assert_eq!(l.code[0].commit.as_deref(), Some("0123abc"));
    }

    #[test]
    fn rejects_bad_keys_and_hashes() {
        assert!(LineageSpec::parse("weights=x").is_err());
        assert!(LineageSpec::parse("source").is_err());
        assert!(LineageSpec::parse("source=x#abc")
            .unwrap_err()
            .to_string()
            .contains("sha256"));
        assert!(LineageSpec::parse("code=r#zz").is_err());
    }

    #[test]
    fn hashes_local_files_without_fragment() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("data.bin");
        std::fs::write(&p, b"abc").unwrap();
        let s = LineageSpec::parse(&format!("dataset={}", p.display())).unwrap();
        let l = build(&[s]).unwrap();
        assert_eq!(
            l.datasets[0].sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }
}
