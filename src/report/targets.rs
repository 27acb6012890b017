//! The memory figures of hardware targets (`hardware/*.toml`, read strictly by
//! [`crate::hardware`]) that the report draws: a name, the RAM and the share a model may use.

use std::path::Path;

use crate::error::Result;
use crate::hardware::{self, Target};

/// A target's memory figures.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetRam {
    pub name: String,
    pub ram_bytes: u64,
    /// RAM a model may use on the target (`ram * model_ram_share`).
    pub model_ram_bytes: Option<u64>,
}

impl From<&Target> for TargetRam {
    fn from(t: &Target) -> Self {
        TargetRam {
            name: t.name.clone(),
            ram_bytes: t.ram_bytes,
            model_ram_bytes: Some(t.model_ram_bytes()),
        }
    }
}

/// Every target file in `dir`, sorted by file name; a bad file is an error naming it.
pub fn read_dir(dir: &Path) -> Result<Vec<TargetRam>> {
    Ok(hardware::load_dir(dir)?
        .iter()
        .map(|(_, t)| TargetRam::from(t))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_targets() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware");
        let ts = read_dir(&dir).unwrap();
        assert!(ts.len() >= 2);
        assert!(ts.iter().all(|t| t.model_ram_bytes.unwrap() <= t.ram_bytes));
    }

    #[test]
    fn a_bad_target_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.toml"), "name = \"x\"\n").unwrap();
        let e = read_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("x.toml"), "{e}");
    }
}
