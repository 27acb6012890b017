//! Fuzz the strict config parsers: profile plans (`profiles/*.toml`), hardware targets
//! (`hardware/*.toml`), gate policies and profile JSON. The first byte picks the parser.
//! Each must accept or give one error line, never panic.
#![no_main]

use std::path::Path;

use edgepack::gate::policy::Policy;
use edgepack::profile::plan::Plan;
use edgepack::hardware::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(plan) = Plan::from_toml_str("fuzz", text, Path::new("fuzz.toml")) {
                let _ = plan.validate();
                let _ = plan.protocol();
                let _ = plan.summary();
            }
        }
        1 => {
            if let Ok(t) = Target::from_toml(text, Path::new("fuzz.toml")) {
                let _ = t.model_ram_bytes();
            }
        }
        2 => {
            let _ = Policy::from_toml(text);
        }
        _ => {
            // The reader works on a path; keep one temp file per fuzzing process.
            let dir = std::env::temp_dir().join(format!("edgepack-fuzz-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join("profile.json");
            std::fs::write(&path, text).expect("write temp profile");
            let _ = edgepack::gate::verdict::read_profile(&path);
        }
    }
});
