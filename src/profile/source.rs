//! What is profiled: a bare ONNX file, or a model inside an edgepack package or bundle.
//!
//! A package or bundle (a zip with `manifest.json`) is opened and *verified* first (hashes,
//! signature if present; [`crate::package::open`]), the chosen variant is extracted into a
//! private temporary folder, and its execution context (threads, providers, graph
//! optimization level) becomes the sweep's settings, so a device profiles exactly what it
//! will run. The profile then names the variant's sha256, which is the same sha256 the
//! manifest records, so the profile can be matched back to the package it came from.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::package::manifest::ExecutionContext as PackageContext;
use crate::setting::Setting;

/// The model to profile, resolved.
#[derive(Debug)]
pub struct Source {
    /// The ONNX file to load (inside `_dir` for packages).
    pub model_path: PathBuf,
    /// What to call it in the profile (`pkg.edgepkg!models/model.onnx`, or the path).
    pub display: String,
    /// The package's execution context, for packages and bundles.
    pub context: Option<PackageContext>,
    /// The variant profiled, for packages and bundles.
    pub variant: Option<String>,
    /// The sample inputs a package carries (its self-test cases: input name -> extracted
    /// file), so a profile takes its shapes from them without `--shape`.
    pub sample_inputs: Vec<std::collections::BTreeMap<String, PathBuf>>,
    _dir: Option<tempfile::TempDir>,
}

/// Whether `path` is a zip archive (package or bundle) rather than an ONNX file.
pub fn is_archive(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04"
}

impl Source {
    /// Resolve `path`: an ONNX file as is, or a package/bundle's `variant` (default: the
    /// first variant of the first component, the original model).
    pub fn open(path: &Path, variant: Option<&str>) -> Result<Source> {
        if !is_archive(path) {
            if variant.is_some() {
                return Err(Error::usage(
                    Setting::Variant,
                    format!("{} is an ONNX file, not a package", path.display()),
                ));
            }
            return Ok(Source {
                model_path: path.to_path_buf(),
                display: path.display().to_string(),
                context: None,
                variant: None,
                sample_inputs: vec![],
                _dir: None,
            });
        }
        let opened = crate::package::open(path, None)?;
        let m = &opened.manifest;
        // A bundle made for another architecture cannot be measured here: its figures
        // would describe this machine, not the device, and be merged back as the device's.
        if let Some(t) = &m.target {
            let host = std::env::consts::ARCH;
            if t.arch != host {
                return Err(Error::file(
                    path,
                    format!(
                        "bundle is for target '{}' ({}), but this machine is {host}; profile it on the device",
                        t.name, t.arch
                    ),
                ));
            }
        }
        let all: Vec<_> = m
            .components
            .iter()
            .flat_map(|c| c.variants.iter())
            .collect();
        let chosen = match variant {
            Some(v) => all.iter().find(|x| x.name == v).ok_or_else(|| {
                Error::usage(
                    Setting::Variant,
                    format!(
                        "{} has no variant '{v}' (it has: {})",
                        path.display(),
                        all.iter()
                            .map(|x| x.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?,
            None => all
                .first()
                .ok_or_else(|| Error::file(path, "the manifest lists no model"))?,
        };
        let dir = tempfile::tempdir().map_err(|e| Error::io("temporary folder", e))?;
        crate::package::archive::extract(&opened.archive, dir.path())?;
        let model_path = dir.path().join(&chosen.path);
        if !model_path.is_file() {
            return Err(Error::file(
                path,
                format!(
                    "variant '{}' names {} which is not in the archive",
                    chosen.name, chosen.path
                ),
            ));
        }
        let sample_inputs = m
            .self_test
            .iter()
            .map(|c| {
                c.inputs
                    .iter()
                    .map(|(name, p)| (name.clone(), dir.path().join(p)))
                    .collect()
            })
            .collect();
        Ok(Source {
            sample_inputs,
            model_path,
            display: format!("{}!{}", path.display(), chosen.path),
            context: Some(m.execution_for(chosen)),
            variant: Some(chosen.name.clone()),
            _dir: Some(dir),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_files_pass_through_and_reject_a_variant() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.onnx");
        crate::model::builder::mlp(&[4, 2], 1).save(&p).unwrap();
        assert!(!is_archive(&p));
        let s = Source::open(&p, None).unwrap();
        assert_eq!(s.model_path, p);
        assert!(s.context.is_none());
        let e = Source::open(&p, Some("int8")).unwrap_err().to_string();
        assert!(e.contains("not a package"), "{e}");
    }

    #[test]
    fn a_damaged_archive_is_refused_before_anything_runs() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bad.edgepkg");
        std::fs::write(&p, b"PK\x03\x04 this is not a real zip").unwrap();
        assert!(is_archive(&p));
        let e = Source::open(&p, None).unwrap_err().to_string();
        assert!(e.contains("bad.edgepkg"), "{e}");
    }
}
