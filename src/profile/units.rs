//! Parsing of human-written durations (`20ms`) and sizes (`512MB`) into SI base units.
//!
//! Durations: a number followed by `ns`, `us` (or `µs`), `ms`, `s`, `m` (minutes) or `h`;
//! a bare number is seconds. Sizes: a number followed by `B`, decimal `kB`/`KB`, `MB`,
//! `GB`, `TB` (powers of 1000) or binary `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024); a
//! bare number is bytes. Case of the prefix letter is forgiven (`mb` = `MB`), the `i` of
//! binary units is not, so `512MiB` and `512MB` stay distinct.

/// Parse a duration into seconds; the error says what was expected.
pub fn parse_duration_s(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, unit) = split_number(t);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (e.g. 20ms, 1.5s, 500us)"))?;
    let scale = match unit {
        "" | "s" | "sec" => 1.0,
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "'{text}': unknown duration unit '{unit}' (use ns, us, ms, s, m or h)"
            ))
        }
    };
    let s = value * scale;
    if !s.is_finite() || s < 0.0 {
        return Err(format!(
            "'{text}': a duration must be finite and not negative"
        ));
    }
    Ok(s)
}

/// Parse a size into bytes; the error says what was expected.
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = split_number(t);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a size (e.g. 512MB, 2GiB, 1048576)"))?;
    let scale: f64 = match unit {
        "" | "B" | "b" => 1.0,
        "kB" | "KB" | "kb" | "k" | "K" => 1e3,
        "MB" | "mb" | "Mb" | "M" => 1e6,
        "GB" | "gb" | "Gb" | "G" => 1e9,
        "TB" | "tb" | "T" => 1e12,
        "KiB" | "kiB" | "kib" => 1024.0,
        "MiB" | "mib" => 1024.0 * 1024.0,
        "GiB" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "TiB" | "tib" => 1024.0f64.powi(4),
        _ => {
            return Err(format!(
                "'{text}': unknown size unit '{unit}' (use B, kB, MB, GB, KiB, MiB or GiB)"
            ))
        }
    };
    let b = value * scale;
    if !b.is_finite() || b < 0.0 || b > u64::MAX as f64 {
        return Err(format!("'{text}': a size must be finite and not negative"));
    }
    Ok(b.round() as u64)
}

/// Format seconds with a readable unit (`1.234 ms`).
pub fn format_duration_s(s: f64) -> String {
    if !s.is_finite() {
        return "-".into();
    }
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Format bytes in binary units (`12.3 MiB`).
pub fn format_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn split_number(t: &str) -> (&str, &str) {
    let end = t
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '-' || *c == '+'))
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    let (n, u) = t.split_at(end);
    (n.trim(), u.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_with_units() {
        assert_eq!(parse_duration_s("20ms").unwrap(), 0.02);
        assert_eq!(parse_duration_s("1.5s").unwrap(), 1.5);
        assert_eq!(parse_duration_s("2").unwrap(), 2.0);
        assert!((parse_duration_s("500us").unwrap() - 5e-4).abs() < 1e-15);
        assert_eq!(parse_duration_s("2m").unwrap(), 120.0);
        assert_eq!(parse_duration_s(" 60 s ").unwrap(), 60.0);
        assert_eq!(parse_duration_s("1e-3s").unwrap(), 1e-3);
    }

    #[test]
    fn rejects_bad_durations() {
        assert!(parse_duration_s("fast")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration_s("20 parsecs")
            .unwrap_err()
            .contains("unknown duration unit"));
        assert!(parse_duration_s("-1s").is_err());
        assert!(parse_duration_s("").is_err());
    }

    #[test]
    fn parses_decimal_and_binary_sizes() {
        assert_eq!(parse_size_bytes("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_size_bytes("512MiB").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_size_bytes("1.5GiB").unwrap(), 3 * 512 * 1024 * 1024);
        assert_eq!(parse_size_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_size_bytes("2kB").unwrap(), 2000);
        assert_eq!(parse_size_bytes("1gb").unwrap(), 1_000_000_000);
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(parse_size_bytes("lots").is_err());
        assert!(parse_size_bytes("12 furlongs")
            .unwrap_err()
            .contains("unknown size unit"));
        assert!(parse_size_bytes("-5MB").is_err());
    }

    #[test]
    fn formats_for_tables() {
        assert_eq!(format_duration_s(0.0123), "12.300 ms");
        assert_eq!(format_duration_s(2.0), "2.000 s");
        assert_eq!(format_duration_s(5e-6), "5.0 µs");
        assert_eq!(format_bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(format_bytes(12), "12 B");
    }
}
