//! How the reports print a number: by what it is (a count, a size, a duration, a ratio, a
//! level in dB, a share). Every figure the HTML report and the build summary show goes
//! through here, so "32 samples" is never printed as "32.000×" and one change of style
//! changes every page. Sizes, durations, levels and rates delegate to [`crate::units`].

use crate::units::{Display, Unit};

/// `32 samples`, `1 sample`: a count with its noun, pluralised with an `s`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `4.5 MiB`: a size in bytes, in binary units (the house convention of [`crate::units`]).
pub fn bytes(b: f64) -> String {
    Display(b, Unit::Bytes).to_string()
}

/// `12.345 ms`: a duration in seconds.
pub fn duration(s: f64) -> String {
    Display(s, Unit::Seconds).to_string()
}

/// `0.31×`: a ratio of two like quantities (size or latency against fp32), two decimals.
pub fn ratio(r: f64) -> String {
    format!("{r:.2}×")
}

/// `31.4 dB`; `∞ dB (identical)` when the outputs match exactly.
pub fn db(d: f64) -> String {
    if d.is_infinite() && d > 0.0 {
        "∞ (identical)".into()
    } else {
        Display(d, Unit::Decibels).to_string()
    }
}

/// `62%`: a fraction (0.62) as a whole percentage; `0.4%` below 10%.
pub fn percent(f: f64) -> String {
    let p = f * 100.0;
    if p.abs() < 10.0 && p != 0.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

/// `12.5/s`: items per second.
pub fn per_second(v: f64) -> String {
    Display(v, Unit::PerSecond).to_string()
}

/// `0.99951`: a dimensionless score in [0, 1] such as a cosine similarity.
pub fn score(v: f64) -> String {
    format!("{v:.5}")
}

/// A figure of a quantize report, formatted by its key: `*_bytes` sizes, `*_s` durations,
/// `*ratio*` ratios, `*samples*`/`*nodes*`/`*count*` counts, `*_db` levels; other numbers
/// as plain numbers.
pub fn figure(key: &str, v: f64) -> String {
    let whole = v.fract() == 0.0 && v >= 0.0;
    // By words, not substrings: "calibration_samples" contains "ratio".
    let words: Vec<&str> = key.split(['_', ' ', '.']).collect();
    let has = |w: &str| words.contains(&w);
    if has("bytes") {
        bytes(v)
    } else if has("samples") || has("nodes") || has("count") {
        if whole {
            let noun = if has("samples") {
                "sample"
            } else if has("nodes") {
                "node"
            } else {
                ""
            };
            if noun.is_empty() {
                format!("{v:.0}")
            } else {
                count(v as u64, noun)
            }
        } else {
            super::plot::trim_number(v)
        }
    } else if has("s") {
        duration(v)
    } else if has("ratio") {
        ratio(v)
    } else if has("db") {
        db(v)
    } else if whole {
        format!("{v:.0}")
    } else {
        super::plot::trim_number(v)
    }
}

/// `–` for a value that is not there.
pub fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_each_kind_of_number_by_what_it_is() {
        assert_eq!(count(32, "sample"), "32 samples");
        assert_eq!(count(1, "sample"), "1 sample");
        assert_eq!(bytes(4_700_000.0), "4.5 MiB");
        assert_eq!(duration(0.012345), "12.345 ms");
        assert_eq!(ratio(0.3123), "0.31×");
        assert_eq!(db(31.44), "31.4 dB");
        assert_eq!(db(f64::INFINITY), "∞ (identical)");
        assert_eq!(percent(0.62), "62%");
        assert_eq!(percent(0.004), "0.4%");
        assert_eq!(figure("calibration_samples", 32.0), "32 samples");
        assert_eq!(figure("size_ratio", 0.3), "0.30×");
        assert_eq!(figure("quantize_wall_s", 3.5), "3.500 s");
        assert_eq!(figure("size quantized_bytes", 3e6), "2.9 MiB");
        assert_eq!(figure("size ratio", 0.29), "0.29×");
        assert_eq!(figure("eval_samples", 8.0), "8 samples");
    }
}
