//! Quantities with units, as people write them in policies and on the command line:
//! `20ms`, `300MB`, `5MiB`, `25dB`, `5%`. Everything is stored in SI base units (seconds,
//! bytes, decibels, fractions) so the verdict logic never sees a unit suffix.

use std::fmt;

/// What a quantity measures; decides which suffixes are accepted and how it is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Seconds (`s`, `ms`, `us`/`µs`, `ns`).
    Seconds,
    /// Bytes (`B`, `KB`/`MB`/`GB` in powers of 1000, `KiB`/`MiB`/`GiB` in powers of 1024).
    Bytes,
    /// Decibels (`dB`).
    Decibels,
    /// Items per second (`/s`, `items/s` or a bare number).
    PerSecond,
    /// A fraction written as a percentage (`5%` is 0.05).
    Percent,
}

impl Unit {
    fn expected(self) -> &'static str {
        match self {
            Unit::Seconds => "a duration such as 20ms, 1.5s or 800us",
            Unit::Bytes => "a size such as 300MB, 5MiB or 1048576",
            Unit::Decibels => "a level in decibels such as 25dB",
            Unit::PerSecond => "a rate such as 120/s or 120",
            Unit::Percent => "a percentage such as 5%",
        }
    }
}

/// Parse `text` as a quantity in `unit`, returning the SI value. A bare number is taken in
/// the base unit (seconds, bytes, dB, items/s), except for percentages where `5` means 5%.
pub fn parse(text: &str, unit: Unit) -> Result<f64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(t.len());
    // `e` is only part of the number when followed by a digit or sign (1e-3), not in `dB`.
    let (num, suffix) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not {}", unit.expected()))?;
    if !value.is_finite() {
        return Err(format!("'{text}' is not a finite number"));
    }
    let suffix = suffix.trim();
    let scale = match unit {
        Unit::Seconds => match suffix {
            "" | "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(format!("'{text}' is not {}", unit.expected())),
        },
        Unit::Bytes => match suffix {
            "" | "B" => 1.0,
            "KB" | "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            _ => return Err(format!("'{text}' is not {}", unit.expected())),
        },
        Unit::Decibels => match suffix {
            "" | "dB" | "db" => 1.0,
            _ => return Err(format!("'{text}' is not {}", unit.expected())),
        },
        Unit::PerSecond => match suffix {
            "" | "/s" | "items/s" => 1.0,
            _ => return Err(format!("'{text}' is not {}", unit.expected())),
        },
        Unit::Percent => match suffix {
            "" | "%" => 0.01,
            _ => return Err(format!("'{text}' is not {}", unit.expected())),
        },
    };
    Ok(value * scale)
}

/// An SI value printed in a readable unit (`12.3 ms`, `245.1 MB`, `31.2 dB`).
pub struct Display(pub f64, pub Unit);

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Display(v, unit) = *self;
        match unit {
            Unit::Seconds => {
                let a = v.abs();
                if a >= 1.0 {
                    write!(f, "{v:.3} s")
                } else if a >= 1e-3 {
                    write!(f, "{:.3} ms", v * 1e3)
                } else if a >= 1e-6 {
                    write!(f, "{:.2} µs", v * 1e6)
                } else {
                    write!(f, "{:.0} ns", v * 1e9)
                }
            }
            Unit::Bytes => {
                let a = v.abs();
                if a >= 1e9 {
                    write!(f, "{:.2} GB", v / 1e9)
                } else if a >= 1e6 {
                    write!(f, "{:.1} MB", v / 1e6)
                } else if a >= 1e3 {
                    write!(f, "{:.1} kB", v / 1e3)
                } else {
                    write!(f, "{v:.0} B")
                }
            }
            Unit::Decibels => write!(f, "{v:.1} dB"),
            Unit::PerSecond => write!(f, "{v:.1}/s"),
            Unit::Percent => write!(f, "{:.1}%", v * 100.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_sizes_levels_and_percentages() {
        assert!((parse("20ms", Unit::Seconds).unwrap() - 0.020).abs() < 1e-12);
        assert!((parse("800us", Unit::Seconds).unwrap() - 0.0008).abs() < 1e-12);
        assert_eq!(parse("1.5s", Unit::Seconds).unwrap(), 1.5);
        assert_eq!(parse("300MB", Unit::Bytes).unwrap(), 300e6);
        assert_eq!(parse("5MiB", Unit::Bytes).unwrap(), 5.0 * 1048576.0);
        assert_eq!(parse("1024", Unit::Bytes).unwrap(), 1024.0);
        assert_eq!(parse("25dB", Unit::Decibels).unwrap(), 25.0);
        assert!((parse("5%", Unit::Percent).unwrap() - 0.05).abs() < 1e-12);
        assert!((parse("2.5", Unit::Percent).unwrap() - 0.025).abs() < 1e-12);
        assert_eq!(parse("120/s", Unit::PerSecond).unwrap(), 120.0);
    }

    #[test]
    fn rejects_wrong_or_missing_units_with_a_hint() {
        let e = parse("20 parsecs", Unit::Seconds).unwrap_err();
        assert!(e.contains("duration"), "{e}");
        assert!(parse("300MB", Unit::Seconds).is_err());
        assert!(parse("fast", Unit::Seconds).is_err());
        assert!(parse("", Unit::Bytes).is_err());
        assert!(parse("inf", Unit::Bytes).is_err());
    }

    #[test]
    fn displays_in_readable_units() {
        assert_eq!(Display(0.0123, Unit::Seconds).to_string(), "12.300 ms");
        assert_eq!(Display(245.1e6, Unit::Bytes).to_string(), "245.1 MB");
        assert_eq!(Display(0.052, Unit::Percent).to_string(), "5.2%");
    }
}
