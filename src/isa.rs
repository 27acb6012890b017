//! CPU instruction-set features: the one naming edgepack uses for them (in `hardware/*.toml`
//! target files, in the `host` target, and in a profile's `host.isa_features`), and the one
//! detection of the running CPU's.
//!
//! The source of the host's features is the kernel's `/proc/cpuinfo` where there is one
//! (Linux): its `flags` (x86) or `Features` (Arm) line names everything the CPU offers and the
//! kernel enabled, AMX included, which the standard library cannot detect on stable Rust.
//! Elsewhere the standard library's runtime detection (`is_x86_feature_detected!`,
//! `is_aarch64_feature_detected!`) is used. Both are mapped to the names in [`KNOWN`].
//!
//! This module depends on nothing else in the crate, so `profile/` (which describes the
//! host in every profile) and `hardware/` (the `host` target) can both use it without one
//! depending on the other.
//!
//! Names changed once: profiles written before this module named features as the standard
//! library does (`avx512vnni`); they now use the target files' names (`avx512-vnni`), and
//! list a few more (`avx512vl`, `avx512-bf16`, `avx-vnni`, `amx`). A profile's
//! `isa_features` is a free list of strings, so old profiles still read as they are.

/// ISA features we know. Anything else in a target file is refused as a probable typo.
pub const KNOWN: &[&str] = &[
    // Arm
    "neon",
    "fp16",
    "dotprod",
    "i8mm",
    "bf16",
    "sve",
    "sve2",
    // x86
    "sse4.2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512-vnni",
    "avx512-bf16",
    "avx-vnni",
    "amx",
];

/// The running CPU's features, in our names ([`KNOWN`]), sorted.
pub fn host_features() -> Vec<String> {
    match std::fs::read_to_string("/proc/cpuinfo") {
        Ok(text) => from_cpuinfo(&text),
        Err(_) => std_detected(),
    }
}

/// Map the kernel's `flags` (x86) or `Features` (Arm) line of `/proc/cpuinfo` to our names,
/// sorted.
pub fn from_cpuinfo(cpuinfo: &str) -> Vec<String> {
    // kernel flag -> our name
    const MAP: &[(&str, &str)] = &[
        ("asimd", "neon"),
        ("asimdhp", "fp16"),
        ("asimddp", "dotprod"),
        ("i8mm", "i8mm"),
        ("bf16", "bf16"),
        ("sve", "sve"),
        ("sve2", "sve2"),
        ("sse4_2", "sse4.2"),
        ("avx", "avx"),
        ("avx2", "avx2"),
        ("fma", "fma"),
        ("f16c", "f16c"),
        ("avx512f", "avx512f"),
        ("avx512bw", "avx512bw"),
        ("avx512vl", "avx512vl"),
        ("avx512_vnni", "avx512-vnni"),
        ("avx512_bf16", "avx512-bf16"),
        ("avx_vnni", "avx-vnni"),
        ("amx_int8", "amx"),
    ];
    let line = cpuinfo.lines().find(|l| {
        let key = l.split(':').next().unwrap_or("").trim();
        key == "flags" || key == "Features"
    });
    let Some(line) = line else {
        return Vec::new();
    };
    let flags: Vec<&str> = line
        .split(':')
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    sorted(
        MAP.iter()
            .filter(|(k, _)| flags.contains(k))
            .map(|(_, v)| *v),
    )
}

/// The standard library's runtime detection, in our names (no AMX: not detectable on
/// stable Rust).
pub fn std_detected() -> Vec<String> {
    #[allow(unused_mut)]
    let mut found: Vec<&str> = Vec::new();
    // `$detect!` is the architecture's detection macro; each pair is (its name, ours).
    #[allow(unused_macros)]
    macro_rules! detect {
        ($detect:ident: $(($std:tt, $ours:expr)),*) => {$(
            if std::arch::$detect!($std) { found.push($ours); }
        )*};
    }
    #[cfg(target_arch = "x86_64")]
    detect!(is_x86_feature_detected:
        ("sse4.2", "sse4.2"),
        ("avx", "avx"),
        ("avx2", "avx2"),
        ("fma", "fma"),
        ("f16c", "f16c"),
        ("avx512f", "avx512f"),
        ("avx512bw", "avx512bw"),
        ("avx512vl", "avx512vl"),
        ("avx512vnni", "avx512-vnni"),
        ("avx512bf16", "avx512-bf16"),
        ("avxvnni", "avx-vnni")
    );
    #[cfg(target_arch = "aarch64")]
    detect!(is_aarch64_feature_detected:
        ("neon", "neon"),
        ("fp16", "fp16"),
        ("dotprod", "dotprod"),
        ("i8mm", "i8mm"),
        ("bf16", "bf16"),
        ("sve", "sve"),
        ("sve2", "sve2")
    );
    sorted(found.into_iter())
}

fn sorted<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = names.map(str::to_string).collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_x86_and_arm_cpuinfo_flags() {
        let x86 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni\n";
        assert_eq!(
            from_cpuinfo(x86),
            vec!["avx", "avx2", "avx512-vnni", "avx512f", "fma", "sse4.2"]
        );
        let arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimdhp asimddp\n";
        assert_eq!(from_cpuinfo(arm), vec!["dotprod", "fp16", "neon"]);
        assert!(from_cpuinfo("nothing").is_empty());
    }

    /// Both sources speak the one naming: whatever the host reports is a known name.
    #[test]
    fn every_detected_feature_has_a_known_name() {
        for f in host_features().iter().chain(&std_detected()) {
            assert!(KNOWN.contains(&f.as_str()), "{f} is not in KNOWN");
        }
    }

    /// On Linux the two sources agree on this machine: everything the standard library
    /// detects, the kernel's flags name too, under the same name (a mapping that drifted
    /// would show here).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_flags_name_what_the_standard_library_detects() {
        let kernel = host_features();
        for f in std_detected() {
            assert!(kernel.contains(&f), "{f} detected, not in {kernel:?}");
        }
    }
}
