//! Quantities with units: the one grammar for what people type (flags, policy files) and
//! the one convention for what edgepack prints (tables, reports, messages).
//!
//! Values are stored in SI base units — seconds as `f64`, bytes as `u64` (or `f64` in
//! generic code), decibels, items per second, and fractions (`0.05` for 5%) — so no code
//! below the parser ever sees a suffix.
//!
//! # Grammar (one for every flag and every policy budget)
//!
//! `NUMBER UNIT`, optional spaces between. **The unit is required**: a bare `20` is
//! refused with the expected form, because a budget meant as 20 ms must never silently
//! become 20 s (or 512 MB become 512 bytes). Numbers are finite and not negative.
//!
//! | quantity   | units |
//! |------------|-------|
//! | duration   | `ns`, `us` (`µs`), `ms`, `s`, `min` (`m`), `h` |
//! | size       | `B`; decimal `kB`/`KB`, `MB`, `GB`, `TB` (powers of 1000); binary `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024). Letter case is forgiven (`mb` = `MB`, `mib` = `MiB`); a `b` is always bytes, never bits |
//! | percentage | `%` (`5%` is the fraction 0.05) |
//! | ratio      | `x` (`1.5x`) |
//! | level      | `dB` |
//! | rate       | `/s` (items per second) |
//!
//! # Display (one convention)
//!
//! Durations pick `s`, `ms`, `µs` or `ns` so the number is at least 1 (`12.300 ms`).
//! Sizes are printed in **binary** units everywhere — tables, reports, messages —
//! (`12.3 MiB`, `1.50 GiB`), the units the kernel and `top` report memory in, so a
//! profile table and the HTML report of the same profile agree. Percentages print with
//! one decimal (`5.2%`), ratios with two (`0.72x`).

use std::fmt;

/// What a quantity measures: decides which suffixes parse and how it prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Seconds.
    Seconds,
    /// Bytes.
    Bytes,
    /// Decibels (a level such as SQNR).
    Decibels,
    /// Items per second.
    PerSecond,
    /// A fraction written as a percentage (`5%` is 0.05).
    Percent,
    /// A plain ratio written with `x` (`1.5x`).
    Ratio,
    /// A plain number between 0 and 1 with no unit (`0.99`): a similarity such as a
    /// cosine, which is not a share of anything and so not written as a percentage.
    Fraction,
}

impl Unit {
    /// The expected form, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            Unit::Seconds => "a duration with a unit, such as 20ms, 1.5s, 800us or 2min",
            Unit::Bytes => "a size with a unit, such as 512MiB, 300MB, 2GiB or 4096B",
            Unit::Decibels => "a level in decibels, such as 25dB",
            Unit::PerSecond => "a rate per second, such as 120/s",
            Unit::Percent => "a percentage, such as 5%",
            Unit::Ratio => "a ratio, such as 1.5x",
            Unit::Fraction => "a plain number between 0 and 1, such as 0.99",
        }
    }

    /// What the quantity is called in messages.
    fn noun(self) -> &'static str {
        match self {
            Unit::Seconds => "duration",
            Unit::Bytes => "size",
            Unit::Decibels => "level",
            Unit::PerSecond => "rate",
            Unit::Percent => "percentage",
            Unit::Ratio => "ratio",
            Unit::Fraction => "fraction",
        }
    }

    /// The scale of `suffix` to the SI base unit, `None` when the suffix is not a unit of
    /// this quantity.
    fn scale(self, suffix: &str) -> Option<f64> {
        let lower = suffix.to_ascii_lowercase();
        Some(match self {
            Unit::Seconds => match suffix {
                "ns" => 1e-9,
                "us" | "µs" | "μs" => 1e-6,
                "ms" => 1e-3,
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                _ => return None,
            },
            Unit::Bytes => match lower.as_str() {
                "b" => 1.0,
                "kb" => 1e3,
                "mb" => 1e6,
                "gb" => 1e9,
                "tb" => 1e12,
                "kib" => 1024.0,
                "mib" => 1024.0 * 1024.0,
                "gib" => 1024.0 * 1024.0 * 1024.0,
                "tib" => 1024.0f64.powi(4),
                _ => return None,
            },
            Unit::Decibels => match lower.as_str() {
                "db" => 1.0,
                _ => return None,
            },
            Unit::PerSecond => match suffix {
                "/s" | "items/s" => 1.0,
                _ => return None,
            },
            Unit::Percent => match suffix {
                "%" => 0.01,
                _ => return None,
            },
            Unit::Ratio => match lower.as_str() {
                "x" => 1.0,
                _ => return None,
            },
            Unit::Fraction => return None,
        })
    }
}

/// Why a quantity did not parse; the message names the text and the expected form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A number without a unit (`20`).
    #[error("'{text}' has no unit: write {}", .unit.expected())]
    MissingUnit { text: String, unit: Unit },
    /// A suffix that is not a unit of this quantity (`20 parsecs`, `300MB` as a duration).
    #[error("'{text}': '{suffix}' is not a unit of a {}; expected {}", .unit.noun(), .unit.expected())]
    UnknownUnit {
        text: String,
        suffix: String,
        unit: Unit,
    },
    /// Not a number at all, infinite, or negative.
    #[error("'{text}' is not {}", .unit.expected())]
    NotANumber { text: String, unit: Unit },
}

/// Parse `text` as a quantity of `unit` and return it in SI base units.
pub fn parse(text: &str, unit: Unit) -> Result<f64, ParseError> {
    let t = text.trim();
    let split = number_end(t);
    let (num, suffix) = t.split_at(split);
    let suffix = suffix.trim();
    let value: f64 = match num.trim().parse() {
        Ok(v) if f64::is_finite(v) && v >= 0.0 => v,
        _ => {
            return Err(ParseError::NotANumber {
                text: text.to_string(),
                unit,
            })
        }
    };
    if suffix.is_empty() && unit == Unit::Fraction {
        return from_bare_number(value, unit).map_err(|_| ParseError::NotANumber {
            text: text.to_string(),
            unit,
        });
    }
    if suffix.is_empty() {
        return Err(ParseError::MissingUnit {
            text: text.to_string(),
            unit,
        });
    }
    let scale = unit.scale(suffix).ok_or_else(|| ParseError::UnknownUnit {
        text: text.to_string(),
        suffix: suffix.to_string(),
        unit,
    })?;
    let v = value * scale;
    if !v.is_finite() {
        return Err(ParseError::NotANumber {
            text: text.to_string(),
            unit,
        });
    }
    Ok(v)
}

/// Parse a duration into seconds (`20ms` → 0.02).
pub fn parse_duration_s(text: &str) -> Result<f64, ParseError> {
    parse(text, Unit::Seconds)
}

/// Parse a size into bytes (`512MiB` → 536870912), rounded to a whole byte.
pub fn parse_size_bytes(text: &str) -> Result<u64, ParseError> {
    let b = parse(text, Unit::Bytes)?;
    if b > u64::MAX as f64 {
        return Err(ParseError::NotANumber {
            text: text.to_string(),
            unit: Unit::Bytes,
        });
    }
    Ok(b.round() as u64)
}

/// Parse a percentage into a fraction (`5%` → 0.05).
pub fn parse_percent(text: &str) -> Result<f64, ParseError> {
    parse(text, Unit::Percent)
}

/// A number that arrived without any text around it (a TOML number where a quantity was
/// expected): refused the same way as a bare number on the command line, because the
/// grammar requires a unit; only a [`Unit::Fraction`] is written bare (and must lie in 0..=1).
pub fn from_bare_number(value: f64, unit: Unit) -> Result<f64, ParseError> {
    if unit == Unit::Fraction {
        return if (0.0..=1.0).contains(&value) {
            Ok(value)
        } else {
            Err(ParseError::NotANumber {
                text: value.to_string(),
                unit,
            })
        };
    }
    Err(ParseError::MissingUnit {
        text: value.to_string(),
        unit,
    })
}

/// End of the leading number: digits, a point, a sign, and an exponent `e` only when a
/// digit or sign follows it (so the `e` of a unit is not swallowed).
fn number_end(t: &str) -> usize {
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let exponent = (c == b'e' || c == b'E')
            && i > 0
            && b.get(i + 1)
                .is_some_and(|n| n.is_ascii_digit() || *n == b'-' || *n == b'+');
        if c.is_ascii_digit() || c == b'.' || ((c == b'-' || c == b'+') && i == 0) || exponent {
            i += if exponent { 2 } else { 1 };
        } else {
            break;
        }
    }
    i
}

/// An SI value printed in the house convention (`12.300 ms`, `245.1 MiB`, `5.2%`).
#[derive(Clone, Copy, Debug)]
pub struct Display(pub f64, pub Unit);

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Display(v, unit) = *self;
        if !v.is_finite() {
            return f.write_str("-");
        }
        match unit {
            Unit::Seconds => {
                let a = v.abs();
                if a >= 1.0 {
                    write!(f, "{v:.3} s")
                } else if a >= 1e-3 {
                    write!(f, "{:.3} ms", v * 1e3)
                } else if a >= 1e-6 || a == 0.0 {
                    write!(f, "{:.1} µs", v * 1e6)
                } else {
                    write!(f, "{:.0} ns", v * 1e9)
                }
            }
            Unit::Bytes => {
                const KIB: f64 = 1024.0;
                let a = v.abs();
                if a >= KIB * KIB * KIB * KIB {
                    write!(f, "{:.2} TiB", v / (KIB * KIB * KIB * KIB))
                } else if a >= KIB * KIB * KIB {
                    write!(f, "{:.2} GiB", v / (KIB * KIB * KIB))
                } else if a >= KIB * KIB {
                    write!(f, "{:.1} MiB", v / (KIB * KIB))
                } else if a >= KIB {
                    write!(f, "{:.1} KiB", v / KIB)
                } else {
                    write!(f, "{v:.0} B")
                }
            }
            Unit::Decibels => write!(f, "{v:.1} dB"),
            Unit::PerSecond => write!(f, "{v:.1}/s"),
            Unit::Percent => write!(f, "{:.1}%", v * 100.0),
            Unit::Ratio => write!(f, "{v:.2}x"),
            Unit::Fraction => write!(f, "{v:.4}"),
        }
    }
}

/// Seconds in the house convention (`12.300 ms`); `-` for a non-finite value.
pub fn format_duration_s(s: f64) -> String {
    Display(s, Unit::Seconds).to_string()
}

/// Bytes in binary units (`12.3 MiB`).
pub fn format_bytes(b: u64) -> String {
    Display(b as f64, Unit::Bytes).to_string()
}

/// A fraction as a percentage (`0.052` → `5.2%`).
pub fn format_percent(fraction: f64) -> String {
    Display(fraction, Unit::Percent).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn parses_durations_with_every_unit() {
        assert!(close(parse_duration_s("20ms").unwrap(), 0.02));
        assert_eq!(parse_duration_s("1.5s").unwrap(), 1.5);
        assert!(close(parse_duration_s("500us").unwrap(), 5e-4));
        assert!(close(parse_duration_s("500µs").unwrap(), 5e-4));
        assert!(close(parse_duration_s("7ns").unwrap(), 7e-9));
        assert_eq!(parse_duration_s("2m").unwrap(), 120.0);
        assert_eq!(parse_duration_s("2min").unwrap(), 120.0);
        assert_eq!(parse_duration_s("1h").unwrap(), 3600.0);
        assert_eq!(parse_duration_s(" 60 s ").unwrap(), 60.0);
        assert!(close(parse_duration_s("1e-3s").unwrap(), 1e-3));
        assert_eq!(parse_duration_s("0s").unwrap(), 0.0);
    }

    #[test]
    fn parses_decimal_and_binary_sizes_case_forgiven() {
        assert_eq!(parse_size_bytes("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_size_bytes("512MiB").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_size_bytes("512mib").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_size_bytes("1.5GiB").unwrap(), 3 * 512 * 1024 * 1024);
        assert_eq!(parse_size_bytes("4096B").unwrap(), 4096);
        assert_eq!(parse_size_bytes("2kB").unwrap(), 2000);
        assert_eq!(parse_size_bytes("2KB").unwrap(), 2000);
        assert_eq!(parse_size_bytes("1gb").unwrap(), 1_000_000_000);
        assert_eq!(parse_size_bytes("1 TiB").unwrap(), 1 << 40);
    }

    #[test]
    fn parses_percent_ratio_level_and_rate() {
        assert!(close(parse_percent("5%").unwrap(), 0.05));
        assert!(close(parse_percent("2.5 %").unwrap(), 0.025));
        assert_eq!(parse("1.5x", Unit::Ratio).unwrap(), 1.5);
        assert_eq!(parse("0.99", Unit::Fraction).unwrap(), 0.99);
        assert_eq!(from_bare_number(0.95, Unit::Fraction).unwrap(), 0.95);
        assert_eq!(parse("25dB", Unit::Decibels).unwrap(), 25.0);
        assert_eq!(parse("25db", Unit::Decibels).unwrap(), 25.0);
        assert_eq!(parse("120/s", Unit::PerSecond).unwrap(), 120.0);
        assert_eq!(parse("120 items/s", Unit::PerSecond).unwrap(), 120.0);
    }

    #[test]
    fn refuses_bare_numbers_with_the_expected_form() {
        for (text, unit, hint) in [
            ("20", Unit::Seconds, "20ms"),
            ("0.05", Unit::Seconds, "20ms"),
            ("512", Unit::Bytes, "512MiB"),
            ("5", Unit::Percent, "5%"),
            ("0.01", Unit::Percent, "5%"),
            ("25", Unit::Decibels, "25dB"),
            ("120", Unit::PerSecond, "120/s"),
            ("2", Unit::Ratio, "1.5x"),
        ] {
            let e = parse(text, unit).unwrap_err();
            assert!(matches!(e, ParseError::MissingUnit { .. }), "{text}: {e}");
            let m = e.to_string();
            assert!(m.contains("has no unit") && m.contains(hint), "{m}");
            assert!(m.contains(&format!("'{text}'")), "{m}");
        }
        let e = from_bare_number(20.0, Unit::Seconds).unwrap_err();
        assert!(e.to_string().contains("'20' has no unit"), "{e}");
    }

    #[test]
    fn a_fraction_is_bare_and_between_zero_and_one() {
        for bad in ["1.5", "99%", "0.9x"] {
            let e = parse(bad, Unit::Fraction).unwrap_err().to_string();
            assert!(e.contains("between 0 and 1"), "{bad}: {e}");
        }
        assert_eq!(Display(0.99271, Unit::Fraction).to_string(), "0.9927");
    }

    #[test]
    fn refuses_wrong_units_and_non_numbers() {
        let e = parse_duration_s("20 parsecs").unwrap_err();
        assert!(
            e.to_string()
                .contains("'parsecs' is not a unit of a duration"),
            "{e}"
        );
        assert!(matches!(
            parse("300MB", Unit::Seconds),
            Err(ParseError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse("5ms", Unit::Bytes),
            Err(ParseError::UnknownUnit { .. })
        ));
        // A size never takes a bare prefix: `512M` could be either convention.
        assert!(parse_size_bytes("512M").is_err());
        for bad in ["", "fast", "-1s", "inf", "NaNs", "1e999s", "ms"] {
            assert!(parse_duration_s(bad).is_err(), "{bad}");
        }
        assert!(parse_size_bytes("-5MB").is_err());
        assert!(parse_percent("five%").is_err());
    }

    #[test]
    fn displays_in_the_house_convention() {
        assert_eq!(format_duration_s(0.0123), "12.300 ms");
        assert_eq!(format_duration_s(2.0), "2.000 s");
        assert_eq!(format_duration_s(5e-6), "5.0 µs");
        assert_eq!(format_duration_s(5e-9), "5 ns");
        assert_eq!(format_duration_s(f64::NAN), "-");
        assert_eq!(format_bytes(12), "12 B");
        assert_eq!(format_bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(format_bytes(4_687_364), "4.5 MiB");
        assert_eq!(format_bytes(3 << 29), "1.50 GiB");
        assert_eq!(Display(245.1e6, Unit::Bytes).to_string(), "233.7 MiB");
        assert_eq!(format_percent(0.052), "5.2%");
        assert_eq!(Display(0.72, Unit::Ratio).to_string(), "0.72x");
        assert_eq!(Display(31.24, Unit::Decibels).to_string(), "31.2 dB");
    }

    #[test]
    fn what_is_displayed_parses_back() {
        for s in [0.0123, 2.0, 5e-6] {
            let shown = format_duration_s(s).replace(' ', "");
            assert!(
                (parse_duration_s(&shown).unwrap() - s).abs() <= s * 1e-3,
                "{shown}"
            );
        }
        let shown = format_bytes(3 * 1024 * 1024).replace(' ', "");
        assert_eq!(parse_size_bytes(&shown).unwrap(), 3 * 1024 * 1024);
    }
}
