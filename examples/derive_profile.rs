//! Derive a device profile for a target file of your own from the reference probe and the
//! target's `[cpu_figures]` (docs/derived-profiles.md): what the built-in targets carry.
//!
//! ```sh
//! cargo run --example derive_profile -- my-board.toml hardware/reference/xeon-2c.toml my-board.device.json
//! ```
//! Then set `device_profile = "my-board.device.json"` in the target file.

use std::path::{Path, PathBuf};

use edgepack::hardware::derive::{derive, Reference};
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
    let [target_path, reference_path, out] = args.as_slice() else {
        return Err("usage: derive_profile TARGET.toml REFERENCE.toml OUT.device.json".into());
    };
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
    let reference: Reference =
        toml::from_str(&ref_text).map_err(|e| format!("{}: {e}", reference_path.display()))?;
    let probe_path = reference_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&reference.device_profile);
    let probe = DeviceProfile::load(&probe_path).map_err(|e| e.to_string())?;
    let mut derived = derive(&probe, &reference, &target, &figures)
        .map_err(|e| format!("{}: {e}", target_path.display()))?;
    derived.write(out).map_err(|e| e.to_string())?;
    println!("wrote {} (derived, not measured)", out.display());
    Ok(())
}
