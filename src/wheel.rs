//! Files from Python wheels on PyPI, obtained with `pip download` and cached.
//!
//! The only network edgepack uses is the package registry, through pip, the ordinary
//! client. ONNX Runtime's shared library, the demo models (PP-OCR in `rapidocr-onnxruntime`)
//! and the ONNX backend test data (`onnx`) all ship inside wheels, so one mechanism serves
//! all of them: download the wheel (no dependencies, binary only), then extract the members
//! we need into `~/.cache/edgepack/` (or `$EDGEPACK_CACHE`).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The edgepack cache folder: `$EDGEPACK_CACHE`, else `$XDG_CACHE_HOME/edgepack`, else
/// `~/.cache/edgepack`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGEPACK_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("edgepack");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("edgepack")
}

/// A wheel to fetch: `pip download` requirement plus the platform tag when it is binary.
#[derive(Clone, Debug)]
pub struct WheelSpec {
    /// A pip requirement, e.g. `onnxruntime==1.31.1`.
    pub requirement: String,
    /// pip `--platform` tag (e.g. `manylinux_2_28_aarch64`); `None` for the host.
    pub platform: Option<String>,
    /// pip `--python-version` (needed with `--platform` for binary wheels).
    pub python_version: Option<String>,
}

/// Download a wheel with pip into `dest` (reusing one already there) and return its path.
pub fn download(spec: &WheelSpec, dest: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let stem = spec
        .requirement
        .split(['=', '<', '>', '~', '!'])
        .next()
        .unwrap_or(&spec.requirement)
        .trim()
        .replace('-', "_")
        .to_lowercase();
    if let Some(found) = find_wheel(dest, &stem) {
        return Ok(found);
    }
    let python = python_command();
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
    ])
    .arg(dest)
    .arg(&spec.requirement);
    if let Some(p) = &spec.platform {
        cmd.args(["--platform", p]);
    }
    if let Some(v) = &spec.python_version {
        cmd.args(["--python-version", v]);
    }
    let out = cmd.output().map_err(|e| Error::Tool {
        tool: python.clone(),
        message: format!("cannot run pip ({e}); install Python 3 with pip"),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        return Err(Error::Tool {
            tool: "pip download".into(),
            message: format!("{} failed: {last}", spec.requirement),
        });
    }
    find_wheel(dest, &stem).ok_or_else(|| Error::Tool {
        tool: "pip download".into(),
        message: format!(
            "{} downloaded no wheel into {}",
            spec.requirement,
            dest.display()
        ),
    })
}

fn find_wheel(dir: &Path, stem: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_lowercase();
            name.ends_with(".whl") && name.starts_with(&format!("{stem}-"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// The Python interpreter to run pip with: `$EDGEPACK_PYTHON`, else `python3`.
pub fn python_command() -> String {
    std::env::var("EDGEPACK_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Extract the wheel members whose path starts with `prefix` into `dest`, keeping their
/// path below `prefix`. Members are written atomically; names that would leave `dest`
/// are refused. Returns the files written.
pub fn extract_prefix(wheel: &Path, prefix: &str, dest: &Path) -> Result<Vec<PathBuf>> {
    let file = fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| Error::file(wheel, format!("not a readable wheel: {e}")))?;
    let mut written = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| Error::file(wheel, format!("bad entry {i}: {e}")))?;
        let name = entry.name().to_string();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        if entry.is_dir() || rest.is_empty() {
            continue;
        }
        let Some(rel) = entry.enclosed_name() else {
            return Err(Error::file(
                wheel,
                format!("entry '{name}' escapes the destination"),
            ));
        };
        let rel = rel
            .strip_prefix(prefix.trim_end_matches('/'))
            .unwrap_or(&rel)
            .to_path_buf();
        let out = dest.join(rel);
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(wheel, e))?;
        crate::artifact::write_atomic(&out, &bytes)?;
        written.push(out);
    }
    if written.is_empty() {
        return Err(Error::file(
            wheel,
            format!("wheel has no files under '{prefix}'"),
        ));
    }
    Ok(written)
}
