//! Derive a device profile for a target file of your own from the reference probe and the
//! target's `[cpu_figures]` (docs/derived-profiles.md): what the built-in targets carry.
//!
//! ```sh
//! cargo run --example derive_profile -- my-board.toml hardware/reference/xeon-2c.toml my-board.device.json \
//!     hardware/reference/aarch64-memory.toml hardware/reference/x86_64-memory.toml
//! ```
//! The memory references after the output (optional) give the memory lines of the
//! target's architecture in place of the reference probe's (the one whose `arch` is the
//! target's is used).
//! Then set `device_profile = "my-board.device.json"` in the target file.

use std::path::{Path, PathBuf};

use edgepack::hardware::derive::{derive, MemoryReference, Reference};
use edgepack::hardware::device::DeviceProfile;
use edgepack::hardware::{cpu_figures_from_toml, Target};

fn main() {
    if let Err(e) = run() {
        eprintln!("derive_profile: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [target_path, reference_path, out, memory_paths @ ..] = args.as_slice() else {
        return Err(
            "usage: derive_profile TARGET.toml REFERENCE.toml OUT.device.json [MEMORY.toml...]"
                .into(),
        );
    };
    let memory_refs = memory_paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            toml::from_str::<MemoryReference>(&text)
                .map_err(|e| format!("{}: {}", p.display(), e.message()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let text = std::fs::read_to_string(target_path)
        .map_err(|e| format!("{}: {e}", target_path.display()))?;
    // The target's own device_profile (if any) is what is being replaced: ignore it.
    let bare: String = text
        .lines()
        .filter(|l| !l.starts_with("device_profile"))
        .map(|l| format!("{l}\n"))
        .collect();
    let target = Target::from_toml(&bare, target_path).map_err(|e| e.to_string())?;
    let figures = cpu_figures_from_toml(&text, target_path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{}: no [cpu_figures] table", target_path.display()))?;
    let ref_text = std::fs::read_to_string(reference_path)
        .map_err(|e| format!("{}: {e}", reference_path.display()))?;
    let reference: Reference = toml::from_str(&ref_text)
        .map_err(|e| format!("{}: {}", reference_path.display(), e.message()))?;
    let probe_path = reference_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&reference.device_profile);
    let probe = DeviceProfile::load(&probe_path).map_err(|e| e.to_string())?;
    let mut derived = derive(&probe, &reference, &target, &figures, &memory_refs)
        .map_err(|e| format!("{}: {e}", target_path.display()))?;
    derived.write(out).map_err(|e| e.to_string())?;
    println!("wrote {} (derived, not measured)", out.display());
    Ok(())
}
