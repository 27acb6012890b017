//! Verification of packages and bundles.
//!
//! Two kinds of "no": an archive that cannot be read safely (not a zip, hostile names,
//! symlinks, overlapping entries, limits) is an input error (`Err`, exit 2); a readable
//! archive whose content does not match its manifest or signature is a failed verification
//! ([`VerifyReport::problems`], exit 1). Every problem is reported, not just the first.

use std::collections::BTreeSet;
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use crate::error::{Error, Result};

use super::archive::{self, Archive, ArchiveProblem, Limits};
use super::manifest::{Manifest, MANIFEST_FILE, MANIFEST_SCHEMA, SIGNATURE_FILE};
use super::sha256_hex;
use super::sign::SignatureFile;

/// What verification found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Empty when the archive verified.
    pub problems: Vec<String>,
    /// Fingerprint of the key that signed the manifest, when signed and valid.
    pub signer: Option<String>,
    /// Whether the signer was checked against a pinned key (`--key`).
    pub key_pinned: bool,
    pub manifest: Option<Manifest>,
    pub files_checked: usize,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verify an archive held in memory.
pub fn verify_bytes(
    bytes: &[u8],
    pinned: Option<&VerifyingKey>,
    limits: &Limits,
) -> std::result::Result<(VerifyReport, Option<Archive>), String> {
    let mut r = VerifyReport {
        key_pinned: pinned.is_some(),
        ..Default::default()
    };
    let archive = match archive::read_zip(bytes, limits) {
        Ok(a) => a,
        Err(ArchiveProblem::Unsafe(m)) => return Err(m),
        Err(ArchiveProblem::Corrupt(m)) => {
            r.problems.push(m);
            return Ok((r, None));
        }
    };
    r.problems.extend(archive::canonical_problems(&archive));
    let Some(mbytes) = archive.entries.get(MANIFEST_FILE) else {
        r.problems.push(format!("{MANIFEST_FILE} is missing"));
        return Ok((r, Some(archive)));
    };
    let manifest: Manifest = match serde_json::from_slice(mbytes) {
        Ok(m) => m,
        Err(e) => {
            r.problems
                .push(format!("{MANIFEST_FILE} is not a valid manifest: {e}"));
            return Ok((r, Some(archive)));
        }
    };
    if manifest.schema != MANIFEST_SCHEMA {
        r.problems.push(format!(
            "manifest schema '{}' is not '{MANIFEST_SCHEMA}'",
            manifest.schema
        ));
    }
    // Signature first: it covers the manifest, which covers everything else.
    match archive.entries.get(SIGNATURE_FILE) {
        Some(sb) => match serde_json::from_slice::<SignatureFile>(sb) {
            Ok(sig) => match sig.verify(mbytes, pinned) {
                Ok(fp) => r.signer = Some(fp),
                Err(m) => r.problems.push(m.to_string()),
            },
            Err(e) => r
                .problems
                .push(format!("{SIGNATURE_FILE} is malformed: {e}")),
        },
        None if pinned.is_some() => r
            .problems
            .push("the archive is not signed but a key was given".into()),
        None => {}
    }
    // Files: every listed file present and unchanged, nothing unlisted.
    let mut listed = BTreeSet::new();
    for f in &manifest.files {
        if !listed.insert(f.path.as_str()) {
            r.problems.push(format!("'{}' is listed twice", f.path));
            continue;
        }
        if f.path == MANIFEST_FILE || f.path == SIGNATURE_FILE {
            r.problems
                .push(format!("'{}' must not list itself", f.path));
            continue;
        }
        match archive.entries.get(&f.path) {
            None => r
                .problems
                .push(format!("'{}' is listed but missing", f.path)),
            Some(b) => {
                r.files_checked += 1;
                if b.len() as u64 != f.size_bytes {
                    r.problems.push(format!(
                        "'{}' is {} bytes, the manifest says {}",
                        f.path,
                        b.len(),
                        f.size_bytes
                    ));
                } else if sha256_hex(b) != f.sha256 {
                    r.problems
                        .push(format!("'{}' has changed (sha256 mismatch)", f.path));
                }
            }
        }
    }
    for name in archive.entries.keys() {
        if name != MANIFEST_FILE && name != SIGNATURE_FILE && !listed.contains(name.as_str()) {
            r.problems.push(format!(
                "'{name}' is in the archive but not in the manifest"
            ));
        }
    }
    // Internal consistency: variants and self-test files point at listed files.
    for v in manifest.components.iter().flat_map(|c| c.variants.iter()) {
        match manifest.files.iter().find(|f| f.path == v.path) {
            None => r.problems.push(format!(
                "variant '{}' names '{}', which is not listed",
                v.name, v.path
            )),
            Some(f) if f.sha256 != v.sha256 => r.problems.push(format!(
                "variant '{}' sha256 differs from its file's",
                v.name
            )),
            _ => {}
        }
    }
    for case in &manifest.self_test {
        for p in case.inputs.values().chain(case.expected.values()) {
            if !listed.contains(p.as_str()) {
                r.problems.push(format!(
                    "self-test '{}' names unlisted file '{p}'",
                    case.name
                ));
            }
        }
    }
    r.manifest = Some(manifest);
    Ok((r, Some(archive)))
}

/// A verified archive, ready to use.
#[derive(Debug)]
pub struct Opened {
    pub manifest: Manifest,
    pub archive: Archive,
    pub report: VerifyReport,
}

/// Read and verify a package or bundle file; any failure is an error naming the file (for
/// commands that *use* an archive: they must not use one that fails verification).
pub fn open(path: &Path, pinned: Option<&VerifyingKey>) -> Result<Opened> {
    let limits = Limits::from_env()?;
    let bytes = archive::read_bounded(path, &limits)?;
    let (report, archive) =
        verify_bytes(&bytes, pinned, &limits).map_err(|m| Error::file(path, m))?;
    if !report.ok() {
        return Err(Error::file(
            path,
            format!("failed verification: {}", report.problems.join("; ")),
        ));
    }
    Ok(Opened {
        manifest: report.manifest.clone().expect("verified manifest"),
        archive: archive.expect("verified archive"),
        report,
    })
}

/// Refuse a bundle built for another CPU architecture (its runtime library and its
/// predictions are for that target). Packages run anywhere. For `run BUNDLE` and
/// `profile BUNDLE` before they load anything.
pub fn check_runs_here(manifest: &Manifest, origin: &Path) -> Result<()> {
    let here = if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        "x86_64"
    };
    match &manifest.target {
        Some(t) if t.arch != here => Err(Error::file(
            origin,
            format!(
                "bundle is for {} (target '{}'), this machine is {here}; bundle the package for this machine instead",
                t.arch, t.name
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::manifest::{Prediction, TargetInfo};

    #[test]
    fn refuses_bundles_for_another_architecture() {
        let d = tempfile::tempdir().unwrap();
        let (model, samples) = crate::package::tests::tiny_fixture(d.path());
        let opts = crate::package::PackageOptions {
            sample_inputs: Some(samples),
            created_unix_s: Some(0),
            ..Default::default()
        };
        let (mut m, _) = crate::package::build(&model, &opts).unwrap();
        assert!(check_runs_here(&m, Path::new("p")).is_ok());
        let other = if cfg!(target_arch = "aarch64") {
            "x86_64"
        } else {
            "aarch64"
        };
        m.target = Some(TargetInfo {
            name: "elsewhere".into(),
            arch: other.into(),
            target_sha256: "0".repeat(64),
            variant: "fp32".into(),
            prediction: Prediction {
                threads: 1,
                batch: 1,
                latency_p50_s: None,
                latency_p95_s: None,
                peak_memory_bytes: None,
                bundle_size_bytes_max: 1,
                basis: "no profile".into(),
                accuracy_sqnr_db: None,
            },
        });
        let e = check_runs_here(&m, Path::new("b.zip")).unwrap_err();
        assert!(
            e.to_string().contains(&format!("bundle is for {other}")),
            "{e}"
        );
    }
}
