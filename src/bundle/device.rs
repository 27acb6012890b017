//! The device side of a bundle: the edgepack executable for the target's architecture.
//!
//! A board that receives a bundle has to check it (`verify`), run its self-test (`run
//! BUNDLE`) and measure it (`profile BUNDLE --json device.json`, merged back with `bundle
//! --device-profile`), with nothing installed. So `bundle --with-device-binary` carries the
//! edgepack executable for the target's platform at `runtime/<platform>/edgepack`, next to
//! the ONNX Runtime library it implies (`--with-runtime`): extracted together
//! (`unzip -j BUNDLE.zip 'runtime/*'`), the executable finds the library beside itself.
//!
//! Where the executable comes from: for the architecture edgepack is running on, the running
//! executable itself; for the other one, the folder [`binaries_dir`] that
//! `scripts/cross-aarch64.sh` fills (a cross-compiled release build). The file is checked to
//! be an ELF executable for the right machine before it goes in, because a wrong one would
//! only be found on the board.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::hardware::Arch;
use crate::package::EDGEPACK_VERSION;
use crate::setting::Setting;

/// The entry's file name inside `runtime/<platform>/`.
pub const BINARY_NAME: &str = "edgepack";

/// The script that builds the executables for both architectures.
pub const CROSS_SCRIPT: &str = "scripts/cross-aarch64.sh";

/// Overrides [`binaries_dir`].
pub const DIR_ENV: &str = "EDGEPACK_DEVICE_BINARIES";

/// An edgepack executable to carry in a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceBinary {
    /// `linux-aarch64` or `linux-x86_64`.
    pub platform: String,
    pub path: PathBuf,
    /// Where it was found, for messages: "this executable" or the folder.
    pub source: String,
}

/// The folder holding `<platform>/edgepack` for this edgepack version:
/// `$EDGEPACK_DEVICE_BINARIES`, else `<edgepack cache>/device-binaries/<version>/`.
pub fn binaries_dir() -> PathBuf {
    match std::env::var_os(DIR_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::wheel::cache_dir()
            .join("device-binaries")
            .join(EDGEPACK_VERSION),
    }
}

/// The archive entry of the executable for `platform`.
pub fn entry_path(platform: &str) -> String {
    format!("runtime/{platform}/{BINARY_NAME}")
}

/// The architecture of the running executable.
pub fn running_arch() -> &'static str {
    std::env::consts::ARCH
}

/// The ELF machine of an executable (`aarch64`, `x86_64`), from its header.
pub fn elf_arch(bytes: &[u8]) -> Option<&'static str> {
    // ELF header: magic, class (2 = 64-bit), data (1 = little endian), ..., e_machine at 18.
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" || bytes[5] != 1 {
        return None;
    }
    match u16::from_le_bytes([bytes[18], bytes[19]]) {
        0x3e => Some("x86_64"),
        0xb7 => Some("aarch64"),
        _ => None,
    }
}

/// Find the executable for `arch`; a missing or wrong file is a usage error (exit 2)
/// naming the script that builds it.
pub fn locate(arch: Arch) -> Result<DeviceBinary> {
    let platform = arch.platform().to_string();
    let (path, source) = if arch.as_str() == running_arch() {
        let p = std::env::current_exe().map_err(|e| Error::io("the running edgepack", e))?;
        (p, "this executable".to_string())
    } else {
        let dir = binaries_dir();
        (
            dir.join(&platform).join(BINARY_NAME),
            dir.display().to_string(),
        )
    };
    if !path.is_file() {
        return Err(Error::usage(
            Setting::WithDeviceBinary,
            format!(
                "no edgepack {EDGEPACK_VERSION} for {platform} at {}; build it with `bash {CROSS_SCRIPT}` (or set {DIR_ENV})",
                path.display()
            ),
        ));
    }
    let head = read_head(&path)?;
    if elf_arch(&head) != Some(arch.as_str()) {
        return Err(Error::file(
            &path,
            format!(
                "not an {} ELF executable; rebuild it with `bash {CROSS_SCRIPT}`",
                arch.as_str()
            ),
        ));
    }
    Ok(DeviceBinary {
        platform,
        path,
        source,
    })
}

fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = vec![0u8; 64];
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
    head.truncate(n);
    Ok(head)
}

/// Refuse to run a bundle made for another architecture (exit 2, one line): `run BUNDLE` on
/// the device must not pass off this machine's results as the target's. Integrity is
/// architecture-free, so anything that keeps the manifest from being read is left to
/// verification, which reports it (a tampered bundle fails the same way everywhere).
pub fn check_archive_runs_here(path: &Path) -> Result<()> {
    let Ok(limits) = crate::package::archive::Limits::from_env() else {
        return Ok(());
    };
    let Ok(a) = crate::package::archive::read_zip_file(path, &limits) else {
        return Ok(());
    };
    match a
        .entries
        .get(crate::package::MANIFEST_FILE)
        .and_then(|b| serde_json::from_slice::<crate::package::Manifest>(b).ok())
    {
        Some(m) => crate::package::check_runs_here(&m, path),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_arch_reads_the_machine_field() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 0xb7;
        assert_eq!(elf_arch(&h), Some("aarch64"));
        h[18] = 0x3e;
        assert_eq!(elf_arch(&h), Some("x86_64"));
        h[18] = 0x28; // 32-bit ARM
        assert_eq!(elf_arch(&h), None);
        assert_eq!(elf_arch(b"#!/bin/sh\n"), None);
        assert_eq!(elf_arch(&h[..10]), None);
    }

    #[test]
    fn the_running_executable_is_found_for_the_host_arch() {
        let arch = if running_arch() == "aarch64" {
            Arch::Aarch64
        } else {
            Arch::X86_64
        };
        let d = locate(arch).expect("the test binary is an ELF of this arch");
        assert_eq!(d.source, "this executable");
        assert_eq!(d.platform, arch.platform());
    }
}
