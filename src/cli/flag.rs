//! The one mapping from the library's [`Setting`]s to this CLI's flag names.
//!
//! The library names settings typed and never spells a flag (`edgepack::setting`);
//! [`install`] makes every message it writes in this process (errors, warnings stored in
//! reports, report hints) say the flag a user types instead of the concept name.

use edgepack::setting::Setting;

/// The flag that sets `setting`, as a user types it. The match has no wildcard arm: a new
/// setting does not build until it has its flag.
pub fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Shape => "--shape",
        Setting::Dim => "--dim",
        Setting::Batch => "--batch",
        Setting::Inputs => "--inputs",
        Setting::Input => "--input",
        Setting::InputRange => "--input-range",
        Setting::SampleInputs => "--sample-inputs",
        Setting::Mode => "--mode",
        Setting::Calibration => "--calibration",
        Setting::Eval => "--eval",
        Setting::AccuracyTarget => "--accuracy-target",
        Setting::Prepare => "--prepare",
        Setting::ExcludeNodes => "--exclude-nodes",
        Setting::ExcludeOps => "--exclude-ops",
        Setting::NoLatency => "--no-latency",
        Setting::Std => "--std",
        Setting::Resize => "--resize",
        Setting::Task => "--task",
        Setting::QuantizeReportOut => "--report",
        Setting::Plan => "--plan",
        Setting::PerOp => "--per-op",
        Setting::LatencyBudget => "--latency-budget",
        Setting::MemoryLimit => "--memory-limit",
        Setting::Threads => "--threads",
        Setting::Policy => "--policy",
        Setting::MaxP95 => "--max-p95",
        Setting::MaxPeakMemory => "--max-peak-memory",
        Setting::MaxSize => "--max-size",
        Setting::MinSqnr => "--min-sqnr",
        Setting::Baseline => "--baseline",
        Setting::Current => "--current",
        Setting::MaxRegression => "--max-regression",
        Setting::QuantizeReport => "--quantize",
        Setting::AllowModelRename => "--allow-model-rename",
        Setting::Remeasure => "--remeasure",
        Setting::Variant => "--variant",
        Setting::AccuracyFloor => "--accuracy-floor",
        Setting::HostCompute => "--host-compute",
        Setting::DeviceProfile => "--device-profile",
        Setting::WithDeviceBinary => "--with-device-binary",
        Setting::Targets => "--targets",
        Setting::Labels => "--labels",
        Setting::Lineage => "--lineage",
        Setting::OrtLib => "--ort-lib",
        Setting::Platform => "--platform",
        Setting::RuntimeVersion => "--version",
    }
}

/// Make the library spell settings as flags from now on (called first thing in `main`,
/// before any library work, worker children included).
pub fn install() {
    edgepack::setting::spell_with(flag);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    /// Every long flag (and visible alias) of every command, as typed: `--shape`.
    fn cli_flags() -> BTreeSet<String> {
        fn walk(cmd: &clap::Command, out: &mut BTreeSet<String>) {
            for a in cmd.get_arguments() {
                for long in a.get_long_and_visible_aliases().into_iter().flatten() {
                    out.insert(format!("--{long}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, out);
            }
        }
        let mut out = BTreeSet::new();
        walk(&super::super::Cli::command(), &mut out);
        out
    }

    /// Protects the mapping from naming a flag that no command has.
    #[test]
    fn every_setting_maps_to_a_real_flag() {
        let flags = cli_flags();
        for s in Setting::ALL {
            assert!(
                flags.contains(flag(s)),
                "{s:?} maps to {}, no such flag",
                flag(s)
            );
        }
    }

    /// Library sources that pass flags to *other* programs (pip, nvidia-smi): their argv
    /// is not edgepack's.
    const EXTERNAL_ARGV: [&str; 2] = ["src/wheel.rs", "src/profile/gpu.rs"];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The code lines of a source file: comment lines and a trailing `#[cfg(test)] mod`
    /// left out (tests may spell what they assert), a trailing `// comment` cut.
    fn code_lines(text: &str) -> Vec<(usize, &str)> {
        let lines: Vec<&str> = text.lines().collect();
        let mut out = vec![];
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            if t == "#[cfg(test)]" {
                let next = lines[i + 1..]
                    .iter()
                    .map(|l| l.trim())
                    .find(|l| !l.is_empty());
                if next.is_some_and(|l| l.starts_with("mod ")) {
                    break;
                }
            }
            if t.starts_with("//") {
                continue;
            }
            // A `//` outside a string literal (an even number of quotes before it).
            let cut = line
                .match_indices("//")
                .map(|(at, _)| at)
                .find(|&at| line[..at].matches('"').count() % 2 == 0)
                .unwrap_or(line.len());
            out.push((i + 1, &line[..cut]));
        }
        out
    }

    /// The `--word` tokens of a line (a token starts after a character that is not part of
    /// a word or a dash).
    fn dash_words(line: &str) -> Vec<String> {
        let b = line.as_bytes();
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        let mut out = vec![];
        let mut i = 0;
        while i + 2 < b.len() {
            let starts = b[i] == b'-'
                && b[i + 1] == b'-'
                && b[i + 2].is_ascii_lowercase()
                && (i == 0 || !word(b[i - 1]));
            if starts {
                let end = (i + 2..b.len()).find(|&j| !word(b[j])).unwrap_or(b.len());
                out.push(line[i..end].to_string());
                i = end;
            } else {
                i += 1;
            }
        }
        out
    }

    #[test]
    fn dash_words_finds_flags_not_dashes() {
        assert_eq!(
            dash_words("pass --shape x=1 or --dim n=2"),
            ["--shape", "--dim"]
        );
        assert!(dash_words("a -- b, x--y, ---, 1-2").is_empty());
        let text = "a\n// pass --shape\nb(\"--dim\") // --mode\n#[cfg(test)]\nmod tests { --x }\n";
        let lines: Vec<_> = code_lines(text).into_iter().map(|(_, l)| l).collect();
        assert_eq!(lines, ["a", "b(\"--dim\") "]);
    }

    /// Protects the convention that flag names live only in `cli/`: no code line of the
    /// library spells one of this CLI's flags (the library names a `Setting` instead).
    #[test]
    fn library_code_names_no_flag() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let flags = cli_flags();
        let mut files = vec![];
        rust_files(&root.join("src"), &mut files);
        let mut found = vec![];
        for path in files {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let exempt = rel.starts_with("src/cli/")
                || rel == "src/main.rs"
                || rel.ends_with("/tests.rs")
                || EXTERNAL_ARGV.contains(&rel.as_str());
            if exempt {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in code_lines(&text) {
                for w in dash_words(line) {
                    if flags.contains(&w) {
                        found.push(format!("{rel}:{n}: {w}"));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "the library spells CLI flags (name a Setting instead): {found:#?}"
        );
    }
}
