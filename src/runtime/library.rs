//! Finding, installing and loading the ONNX Runtime shared library.
//!
//! edgepack links ONNX Runtime dynamically (`ort`'s `load-dynamic`), so one binary works
//! with whichever official build the machine has, and bundles for other targets can carry
//! the matching library. The library is looked for in a fixed order, first hit wins:
//!
//! 1. an explicit path (`--ort-lib`);
//! 2. `ORT_DYLIB_PATH`;
//! 3. the edgepack cache, `cache_dir()/runtimes/<platform>/<version>/` (filled by
//!    `edgepack runtime install`), the default version first;
//! 4. next to the edgepack executable;
//! 5. an installed Python `onnxruntime` package (its `capi/` folder).
//!
//! Nothing is installed implicitly: [`ensure`] either loads a library or returns
//! [`Error::RuntimeMissing`] with the one-line fix. [`install`] obtains the official
//! library from the `onnxruntime` wheel on PyPI through pip and records its sha256.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::setting::Setting;
use crate::wheel::{self, WheelSpec};

/// The ONNX Runtime release edgepack is built and tested against (`ort` 2.0.0-rc.15, API 31).
pub const DEFAULT_VERSION: &str = "1.31.1";

/// The message for a missing runtime. [`Error::RuntimeMissing`] prefixes it with
/// "ONNX Runtime library: ", so the user sees one line:
/// `ONNX Runtime library: not found; run `edgepack runtime install` (or set ORT_DYLIB_PATH)`.
pub const MISSING_MESSAGE: &str =
    "not found; run `edgepack runtime install` (or set ORT_DYLIB_PATH)";

/// Where the loaded library came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LibrarySource {
    /// An explicit path ([`Setting::OrtLib`]).
    Explicit,
    /// `ORT_DYLIB_PATH`.
    Env,
    /// The edgepack cache.
    Cache,
    /// Next to the executable.
    Executable,
    /// An installed Python `onnxruntime` package.
    Python,
}

impl std::fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LibrarySource::Explicit => return write!(f, "{}", Setting::OrtLib),
            LibrarySource::Env => "ORT_DYLIB_PATH",
            LibrarySource::Cache => "edgepack cache",
            LibrarySource::Executable => "next to the executable",
            LibrarySource::Python => "Python onnxruntime package",
        })
    }
}

/// The loaded ONNX Runtime library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// Absolute path of the loaded library.
    pub path: PathBuf,
    /// How it was found.
    pub source: LibrarySource,
    /// Its release (`1.31.1`), from ONNX Runtime's build string or the file name.
    pub version: Option<String>,
}

/// A target platform for runtime libraries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Platform {
    #[serde(rename = "linux-x86_64")]
    LinuxX86_64,
    #[serde(rename = "linux-aarch64")]
    LinuxAarch64,
}

impl Platform {
    /// Every platform `runtime install` supports.
    pub const ALL: [Platform; 2] = [Platform::LinuxX86_64, Platform::LinuxAarch64];

    /// The platform's name (`linux-x86_64`).
    pub fn name(self) -> &'static str {
        match self {
            Platform::LinuxX86_64 => "linux-x86_64",
            Platform::LinuxAarch64 => "linux-aarch64",
        }
    }

    /// Parse a platform name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                Error::usage(
                    Setting::Platform,
                    format!("unknown platform '{name}' (known: linux-x86_64, linux-aarch64)"),
                )
            })
    }

    /// The platform this process runs on, if it is one we have wheels for.
    pub fn host() -> Option<Self> {
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            Some(Platform::LinuxX86_64)
        } else if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
            Some(Platform::LinuxAarch64)
        } else {
            None
        }
    }

    /// pip's `--platform` tag for the official wheels.
    pub fn wheel_tag(self) -> &'static str {
        match self {
            Platform::LinuxX86_64 => "manylinux_2_28_x86_64",
            Platform::LinuxAarch64 => "manylinux_2_28_aarch64",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The file name of the main library inside a wheel's `capi/` and in the cache.
pub fn library_file_name(version: &str) -> String {
    format!("libonnxruntime.so.{version}")
}

/// `cache_dir()/runtimes`.
pub fn runtimes_dir() -> PathBuf {
    wheel::cache_dir().join("runtimes")
}

/// The cache folder for one runtime.
pub fn cache_folder(platform: Platform, version: &str) -> PathBuf {
    runtimes_dir().join(platform.name()).join(version)
}

/// The record `runtime install` writes next to the library (`runtime.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachedRuntime {
    /// `linux-x86_64` or `linux-aarch64`.
    pub platform: Platform,
    /// ONNX Runtime release.
    pub version: String,
    /// Absolute path of the main library.
    pub path: PathBuf,
    /// sha256 of the main library, lowercase hex.
    pub sha256: String,
    /// The other files installed with it (providers_shared), with their sha256.
    #[serde(default)]
    pub extra_files: Vec<CachedFile>,
    /// The wheel it came from (file name).
    pub wheel: String,
}

/// A file installed next to the main library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachedFile {
    pub path: PathBuf,
    pub sha256: String,
}

const RECORD_FILE: &str = "runtime.json";

impl CachedRuntime {
    /// Whether the library on disk still has the recorded sha256 (reads the whole file).
    pub fn verify(&self) -> Result<bool> {
        Ok(sha256_file(&self.path)? == self.sha256)
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Obtain ONNX Runtime `version` for `platform` from the official `onnxruntime` wheel on
/// PyPI (through pip), extract `libonnxruntime.so.<version>` and
/// `libonnxruntime_providers_shared.so` into the cache and record their sha256.
/// Returns the main library's path. An already-installed runtime whose recorded sha256
/// still matches is reused.
pub fn install(version: &str, platform: Platform) -> Result<PathBuf> {
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.')
    {
        return Err(Error::usage(
            Setting::RuntimeVersion,
            format!("'{version}' is not a release number like {DEFAULT_VERSION}"),
        ));
    }
    let dest = cache_folder(platform, version);
    if let Some(rec) = read_record(&dest) {
        if rec.path.is_file() && sha256_file(&rec.path)? == rec.sha256 {
            return Ok(rec.path);
        }
    }
    // One wheel folder per (version, platform): pip's file-name lookup in `wheel::download`
    // would otherwise happily reuse another platform's wheel.
    let wheels = wheel::cache_dir()
        .join("wheels")
        .join(format!("onnxruntime-{version}-{}", platform.name()));
    let whl = wheel::download(
        &WheelSpec {
            requirement: format!("onnxruntime=={version}"),
            platform: Some(platform.wheel_tag().into()),
            python_version: Some("3.11".into()),
        },
        &wheels,
    )?;
    let staging = tempfile::Builder::new()
        .prefix(".edgepack-runtime-")
        .tempdir_in(wheel::cache_dir())
        .map_err(|e| Error::io(wheel::cache_dir(), e))?;
    wheel::extract_prefix(&whl, "onnxruntime/capi/", staging.path())?;
    let main_name = library_file_name(version);
    let wanted = [main_name.as_str(), "libonnxruntime_providers_shared.so"];
    if !staging.path().join(&main_name).is_file() {
        return Err(Error::file(
            &whl,
            format!("wheel has no onnxruntime/capi/{main_name}"),
        ));
    }
    std::fs::create_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
    let mut extra_files = Vec::new();
    let mut main = None;
    for name in wanted {
        let src = staging.path().join(name);
        if !src.is_file() {
            continue;
        }
        let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        let out = dest.join(name);
        crate::artifact::write_atomic(&out, &bytes)?;
        // Temporary files are created 0600; a shared library is meant to be read by anyone.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(&out, e))?;
        }
        let sha = sha256_file(&out)?;
        if name == main_name {
            main = Some((out, sha));
        } else {
            extra_files.push(CachedFile {
                path: out,
                sha256: sha,
            });
        }
    }
    let (path, sha256) = main.expect("main library checked above");
    let rec = CachedRuntime {
        platform,
        version: version.to_string(),
        path: path.clone(),
        sha256,
        extra_files,
        wheel: whl
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let json = serde_json::to_vec_pretty(&rec).expect("record serializes");
    crate::artifact::write_atomic(&dest.join(RECORD_FILE), &json)?;
    Ok(path)
}

fn read_record(dir: &Path) -> Option<CachedRuntime> {
    let bytes = std::fs::read(dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every runtime in the cache (platform, version, path, sha256), sorted.
pub fn list() -> Vec<CachedRuntime> {
    let mut out = Vec::new();
    for platform in Platform::ALL {
        let Ok(entries) = std::fs::read_dir(runtimes_dir().join(platform.name())) else {
            continue;
        };
        for e in entries.flatten() {
            if let Some(rec) = read_record(&e.path()) {
                if rec.path.is_file() {
                    out.push(rec);
                }
            }
        }
    }
    out.sort_by(|a, b| (a.platform, &a.version).cmp(&(b.platform, &b.version)));
    out
}

/// A cached runtime for this host: the default version first, else the newest.
fn find_in_cache() -> Option<PathBuf> {
    let host = Platform::host()?;
    let mut cached: Vec<CachedRuntime> =
        list().into_iter().filter(|r| r.platform == host).collect();
    if let Some(r) = cached.iter().find(|r| r.version == DEFAULT_VERSION) {
        return Some(r.path.clone());
    }
    cached.sort_by_key(|r| version_key(&r.version));
    cached.pop().map(|r| r.path)
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The newest `libonnxruntime.so*` in a folder (the versioned file, else the plain name).
fn library_in(dir: &Path) -> Option<PathBuf> {
    let exact = dir.join(library_file_name(DEFAULT_VERSION));
    if exact.is_file() {
        return Some(exact);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    found.sort_by_key(|p| {
        version_key(
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("libonnxruntime.so."))
                .unwrap_or(""),
        )
    });
    found.pop()
}

fn find_next_to_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    library_in(exe.parent()?)
}

fn find_in_python() -> Option<PathBuf> {
    let out = Command::new(wheel::python_command())
        .args([
            "-c",
            "import onnxruntime,os;print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    library_in(&dir.join("capi"))
}

/// Find the library without loading it, following the documented order.
pub fn locate(explicit: Option<&Path>) -> Result<(PathBuf, LibrarySource)> {
    if let Some(p) = explicit {
        if !p.is_file() {
            return Err(Error::RuntimeMissing(format!(
                "{} {}: no such file",
                Setting::OrtLib,
                p.display()
            )));
        }
        return Ok((p.to_path_buf(), LibrarySource::Explicit));
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(Error::RuntimeMissing(format!(
                "ORT_DYLIB_PATH={}: no such file",
                p.display()
            )));
        }
        return Ok((p, LibrarySource::Env));
    }
    if let Some(p) = find_in_cache() {
        return Ok((p, LibrarySource::Cache));
    }
    if let Some(p) = find_next_to_exe() {
        return Ok((p, LibrarySource::Executable));
    }
    if let Some(p) = find_in_python() {
        return Ok((p, LibrarySource::Python));
    }
    Err(Error::RuntimeMissing(MISSING_MESSAGE.into()))
}

/// The process-wide ONNX Runtime: the library can only be loaded once per process.
pub(crate) struct Loaded {
    pub(crate) info: RuntimeInfo,
    pub(crate) env: ort::environment::Environment,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// The loaded runtime, if [`ensure`] succeeded earlier.
pub(crate) fn loaded() -> Result<&'static Loaded> {
    LOADED.get().ok_or_else(|| {
        Error::RuntimeMissing("ONNX Runtime is not loaded; call runtime::ensure first".into())
    })
}

/// Find and load ONNX Runtime once per process (installs nothing). Later calls return the
/// same library; asking for a different explicit file after one is loaded is an error,
/// because a process cannot swap ONNX Runtime libraries.
pub fn ensure(explicit: Option<&Path>) -> Result<RuntimeInfo> {
    let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = LOADED.get() {
        if let Some(p) = explicit {
            let same = std::fs::canonicalize(p).ok() == std::fs::canonicalize(&l.info.path).ok();
            if !same {
                return Err(Error::RuntimeMissing(format!(
                    "{} was asked for, but this process already loaded {}",
                    p.display(),
                    l.info.path.display()
                )));
            }
        }
        return Ok(l.info.clone());
    }
    let (path, source) = locate(explicit)?;
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let builder = ort::init_from(&path)
        .map_err(|e| Error::RuntimeMissing(format!("{} ({source}): {e}", path.display())))?;
    let env = builder
        .with_name("edgepack")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::Runtime(format!("cannot create the environment: {e}")))?;
    let info = RuntimeInfo {
        version: version_from_build_info(ort::info()).or_else(|| version_from_file_name(&path)),
        path,
        source,
    };
    let _ = LOADED.set(Loaded {
        info: info.clone(),
        env,
    });
    Ok(info)
}

/// Like [`ensure`], but when no library is found anywhere (and none was named
/// explicitly), install the default version for this host first. For the demo and other
/// "just make it work" entry points; returns whether it installed.
pub fn ensure_or_install(explicit: Option<&Path>) -> Result<(RuntimeInfo, bool)> {
    match ensure(explicit) {
        Ok(info) => Ok((info, false)),
        Err(Error::RuntimeMissing(m)) if explicit.is_none() && m == MISSING_MESSAGE => {
            let host = Platform::host().ok_or_else(|| {
                Error::RuntimeMissing(
                    "no official ONNX Runtime wheel for this platform; set ORT_DYLIB_PATH".into(),
                )
            })?;
            install(DEFAULT_VERSION, host)?;
            // The cache is searched before the executable's folder and Python, so the
            // freshly installed library is the one `ensure` finds.
            Ok((ensure(None)?, true))
        }
        Err(e) => Err(e),
    }
}

fn version_from_build_info(info: &str) -> Option<String> {
    // "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=..., ..."
    let branch = info.split("git-branch=").nth(1)?;
    let v = branch.split([',', ' ']).next()?.strip_prefix("rel-")?;
    (!v.is_empty()).then(|| v.to_string())
}

fn version_from_file_name(path: &Path) -> Option<String> {
    path.file_name()?
        .to_str()?
        .strip_prefix("libonnxruntime.so.")
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_from_build_info_and_file_names() {
        assert_eq!(
            version_from_build_info("ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc"),
            Some("1.31.1".into())
        );
        assert_eq!(
            version_from_build_info("ORT Build Info: git-branch=main"),
            None
        );
        assert_eq!(
            version_from_file_name(Path::new("/x/libonnxruntime.so.1.31.1")),
            Some("1.31.1".into())
        );
    }

    #[test]
    fn platforms_round_trip_names_and_tags() {
        for p in Platform::ALL {
            assert_eq!(Platform::from_name(p.name()).unwrap(), p);
        }
        assert_eq!(Platform::LinuxAarch64.wheel_tag(), "manylinux_2_28_aarch64");
        let e = Platform::from_name("windows").unwrap_err().to_string();
        assert!(e.contains("unknown platform 'windows'"), "{e}");
    }

    #[test]
    fn explicit_missing_library_is_one_clear_line() {
        let e = locate(Some(Path::new("/nonexistent/libonnxruntime.so")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "ONNX Runtime library: ONNX Runtime library path /nonexistent/libonnxruntime.so: no such file"
        );
    }

    #[test]
    fn library_in_prefers_default_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libonnxruntime.so.1.29.0"), b"x").unwrap();
        std::fs::write(dir.path().join("libonnxruntime.so.1.30.2"), b"x").unwrap();
        assert!(library_in(dir.path())
            .unwrap()
            .ends_with("libonnxruntime.so.1.30.2"));
        std::fs::write(dir.path().join(library_file_name(DEFAULT_VERSION)), b"x").unwrap();
        assert!(library_in(dir.path())
            .unwrap()
            .ends_with(library_file_name(DEFAULT_VERSION)));
    }

    #[test]
    fn rejects_odd_version_strings_before_touching_pip() {
        let e = install("1.31.1; rm -rf /", Platform::LinuxX86_64)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("runtime version: "), "{e}");
    }
}
