//! The few fields of `hardware/*.toml` target files the report needs: a name and how much
//! RAM the target has (and how much of it a model may use), for the memory chart's lines
//! and the memory-fit matrix. The full, strict target schema belongs to `target/`; this
//! reader only picks these fields so the report works with any target file.

use std::path::Path;

use crate::error::{Error, Result};

/// A target's memory figures.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetRam {
    pub name: String,
    pub ram_bytes: u64,
    /// RAM a model may use on the target (`ram * model_ram_share`), when the file says.
    pub model_ram_bytes: Option<u64>,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Parse one target file's name and RAM (`ram_bytes` or `ram_gb` in GiB).
pub fn parse_target(text: &str, path: &Path) -> Result<TargetRam> {
    let t: toml::Table = toml::from_str(text)
        .map_err(|e| Error::file(path, format!("not valid TOML: {}", e.message())))?;
    let num = |k: &str| {
        t.get(k)
            .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
    };
    let name = t
        .get("name")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let ram_bytes = match (num("ram_bytes"), num("ram_gb")) {
        (Some(b), _) if b > 0.0 => b as u64,
        (_, Some(g)) if g > 0.0 => (g * GIB) as u64,
        _ => {
            return Err(Error::file(
                path,
                "target has no positive ram_bytes or ram_gb",
            ))
        }
    };
    let model_ram_bytes = num("model_ram_share")
        .filter(|s| *s > 0.0 && *s <= 1.0)
        .map(|s| (ram_bytes as f64 * s) as u64);
    Ok(TargetRam {
        name,
        ram_bytes,
        model_ram_bytes,
    })
}

/// Every `*.toml` in `dir`, sorted by file name.
pub fn read_dir(dir: &Path) -> Result<Vec<TargetRam>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            parse_target(&text, p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_ram_and_model_share() {
        let t = parse_target(
            "name = \"pi\"\nram_gb = 4\nmodel_ram_share = 0.5\ncores = 4\n",
            Path::new("pi.toml"),
        )
        .unwrap();
        assert_eq!(t.name, "pi");
        assert_eq!(t.ram_bytes, 4 << 30);
        assert_eq!(t.model_ram_bytes, Some(2 << 30));
    }

    #[test]
    fn missing_ram_is_a_clear_error() {
        let e = parse_target("name = \"x\"\n", Path::new("hw/x.toml")).unwrap_err();
        assert!(e.to_string().contains("hw/x.toml"), "{e}");
        assert!(e.to_string().contains("ram"), "{e}");
    }
}
