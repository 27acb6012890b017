//! Crash-safe output files.
//!
//! Every file edgepack writes (models, packages, bundles, profiles, reports) goes through
//! [`write_atomic`]: the bytes go to a temporary file in the destination folder, are
//! fsynced, renamed over the destination and the folder is fsynced. An interrupted run
//! leaves either the old file or the new one, never half of one, and a failed write
//! (disk full, permission) leaves no partial file behind.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Check, before any work, that `path` can be written: its folder exists and accepts a
/// new file. Commands call it on every output before measuring or converting, so a typo
/// in an output path costs nothing (a long measurement is not lost at the end).
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::file(
            path,
            format!("cannot write: folder {} does not exist", dir.display()),
        ));
    }
    let md = fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if md.permissions().readonly() {
        return Err(Error::file(path, "cannot write: the folder is read-only"));
    }
    // Probe with a temp file: permission bits alone miss ACLs and read-only mounts.
    tempfile::Builder::new()
        .prefix(".edgepack-probe-")
        .tempfile_in(dir)
        .map_err(|e| Error::file(path, format!("cannot write: {e}")))?;
    Ok(())
}

/// Write `bytes` to `path` atomically (temp file in the same folder, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], with the content produced by a writer callback.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    if !dir.is_dir() {
        return Err(Error::file(
            path,
            format!(
                "cannot write: folder {} does not exist (create it first)",
                dir.display()
            ),
        ));
    }
    remove_stale_temp_files(&dir);
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .tempfile_in(&dir)
        .map_err(|e| Error::io(path, e))?;
    // tempfile creates 0600 files; outputs are ordinary files (0644 less the umask), or
    // keep the mode of the file they replace.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or_else(|_| 0o666 & !current_umask());
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(path, e))?;
    }
    fill(tmp.as_file_mut()).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    if let Ok(d) = fs::File::open(&dir) {
        // Directory fsync makes the rename itself durable; not all filesystems support it.
        let _ = d.sync_all();
    }
    Ok(())
}

/// The process umask (read by setting and restoring it; single-threaded use at startup
/// would be ideal, but the race only affects the mode of files created at the same moment).
#[cfg(unix)]
fn current_umask() -> u32 {
    // SAFETY: umask has no memory-safety preconditions.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old as u32
    }
}

/// Temporary files are named `.edgepack-tmp-<pid>-<random>` in the destination folder.
pub const TEMP_PREFIX: &str = ".edgepack-tmp-";

/// Remove temporary files left in `dir` by edgepack processes that no longer exist (a
/// run killed with SIGKILL or by a power cut cannot clean up after itself). A file whose
/// writer is still alive, or whose name carries no pid, is left alone.
pub fn remove_stale_temp_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest
            .split('-')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
            .filter(|&p| p > 0)
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && e.file_type().is_ok_and(|t| t.is_file()) && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_existing_file_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_fill_leaves_old_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        write_atomic(&p, b"old").unwrap();
        let r = write_atomic_with(&p, |_| Err(std::io::Error::other("disk full")));
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn new_files_are_readable_by_others_like_any_output() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        write_atomic(&p, b"x").unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !current_umask(), "mode {mode:o}");
    }

    #[test]
    fn removes_temp_files_of_dead_writers_only() {
        let dir = tempfile::tempdir().unwrap();
        // A pid that cannot exist (above the kernel's pid_max of 2^22).
        let dead = dir.path().join(format!("{TEMP_PREFIX}99999999-abc"));
        let alive = dir
            .path()
            .join(format!("{TEMP_PREFIX}{}-abc", std::process::id()));
        let other = dir.path().join(format!("{TEMP_PREFIX}nopid"));
        for p in [&dead, &alive, &other] {
            fs::write(p, b"partial").unwrap();
        }
        write_atomic(&dir.path().join("out.bin"), b"new").unwrap();
        assert!(!dead.exists());
        assert!(alive.exists() && other.exists());
    }

    #[test]
    fn missing_folder_is_a_clear_error() {
        let e = write_atomic(Path::new("/nonexistent-edgepack/x.onnx"), b"x").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
