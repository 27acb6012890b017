//! The profile as a table for people (what `edgepack profile` prints on stdout): one row per
//! configuration, then failure reasons and warnings, the needs summary and the top ops.
//! Durations and sizes follow the house display convention of [`crate::units`]; the
//! layout is the one table renderer, [`crate::table`].

use std::fmt::Write as _;

use super::label::ConfigLabels;
use crate::profile::schema::{ConfigResult, Profile, Status};
use crate::setting::Setting;
use crate::table::Table;
use crate::units::{format_bytes, format_duration_s};

/// The failure kind as the profile JSON spells it (`provider_unavailable`), so the table
/// and the file use one word.
fn failure_name(kind: crate::profile::schema::FailureKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Render the profile's table and summary.
pub fn render(p: &Profile) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_to(&mut out, p);
    out
}

fn write_to(w: &mut String, p: &Profile) -> std::fmt::Result {
    let header = [
        "config", "status", "p50", "p90", "p99", "±ci", "runs", "items/s", "session", "first",
        "rss sess", "peak rss", "cores", "ep used",
    ];
    // Rows are named by what varies; what every configuration shares is said once, above
    // the table (the ids, the gate's matching keys, stay whole in the JSON).
    let labels = ConfigLabels::of(p);
    if let Some(fixed) = labels.fixed_line() {
        writeln!(w, "every configuration: {fixed}")?;
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in &p.configs {
        let mark = if c.uses_all_cores { " *" } else { "" };
        let mut r = vec![format!("{}{mark}", labels.label(&c.id))];
        match (&c.status, &c.latency) {
            (Status::Ok, Some(l)) => {
                r.push("ok".into());
                r.push(format_duration_s(l.p50_s));
                r.push(format_duration_s(l.p90_s));
                r.push(format_duration_s(l.p99_s));
                r.push(format!("{:.1}%", l.p50_ci_rel * 100.0));
                r.push(l.iterations.to_string());
            }
            _ => {
                r.push(format!(
                    "FAILED ({})",
                    c.failure.map(failure_name).unwrap_or_default()
                ));
                r.extend(std::iter::repeat_n(String::from("-"), 5));
            }
        }
        r.push(
            c.throughput_items_per_s
                .map(|t| format!("{t:.1}"))
                .unwrap_or("-".into()),
        );
        r.push(
            c.session_create_s
                .map(format_duration_s)
                .unwrap_or("-".into()),
        );
        r.push(c.first_run_s.map(format_duration_s).unwrap_or("-".into()));
        match &c.memory {
            Some(m) => {
                r.push(format_bytes(m.rss_after_session_bytes));
                r.push(format_bytes(m.peak_rss_bytes));
            }
            None => r.extend(["-".to_string(), "-".to_string()]),
        }
        r.push(
            c.cpu
                .as_ref()
                .map(|c| format!("{:.2}", c.busy_cores))
                .unwrap_or("-".into()),
        );
        r.push(c.ep_used.clone().unwrap_or("-".into()));
        rows.push(r);
    }
    let mut table = Table::new(header).right_aligned(2..header.len() - 1);
    for r in rows {
        table.row(r);
    }
    w.push_str(&table.render());
    if p.configs.iter().any(|c| c.uses_all_cores) {
        writeln!(
            w,
            "* uses every core this machine offers ({}): its timings depend on everything else \
             the machine runs",
            p.host.logical_cores
        )?;
    }
    if p.plan.rounds > 1 {
        writeln!(
            w,
            "each configuration measured in {} processes (rounds); ±ci covers the spread between them",
            p.plan.rounds
        )?;
    }
    // A warning every configuration gets (a slow first run, normal for ONNX Runtime) tells
    // the user nothing per configuration: it is said once.
    let ok: Vec<&ConfigResult> = p
        .configs
        .iter()
        .filter(|c| c.status == Status::Ok)
        .collect();
    let slow_first = |c: &ConfigResult| c.warnings.iter().any(|x| x.starts_with("slow first run"));
    let all_slow_first = ok.len() > 1 && ok.iter().all(|c| slow_first(c));
    if all_slow_first {
        writeln!(
            w,
            "! every configuration: slow first run (cold caches, lazy allocation; first_run_s in the JSON)"
        )?;
    }
    for c in &p.configs {
        if let Some(reason) = &c.reason {
            writeln!(w, "! {}: {reason}", labels.label(&c.id))?;
        }
        for warn in &c.warnings {
            if all_slow_first && warn.starts_with("slow first run") {
                continue;
            }
            writeln!(w, "! {}: {warn}", labels.label(&c.id))?;
        }
    }
    if let Some(n) = &p.needs {
        if let Some(b) = n.latency_budget_s {
            writeln!(w, "\nthreads needed for p50 <= {}:", format_duration_s(b))?;
            for (k, t) in &n.min_threads_for_budget {
                match t {
                    Some(t) => writeln!(w, "  {k}: {t}")?,
                    None => writeln!(w, "  {k}: not met by any thread count measured")?,
                }
            }
        }
        if let (Some(f), Some(per)) = (n.memory_fixed_bytes, n.memory_per_item_bytes) {
            writeln!(
                w,
                "\nmemory: peak rss ≈ {} + {} × batch",
                format_bytes(f.max(0.0) as u64),
                if per >= 0.0 {
                    format_bytes(per as u64)
                } else {
                    format!("-{}", format_bytes((-per) as u64))
                }
            )?;
            if let Some(limit) = n.memory_limit_bytes {
                // The limit caps private writable memory (RLIMIT_DATA), which is less than
                // peak RSS (mapped model file, shared libraries): say which is which.
                writeln!(
                    w,
                    "  {} {} caps each configuration's private writable memory \
                     (heap, arena), not its RSS; the line below compares peak RSS with it",
                    Setting::MemoryLimit,
                    format_bytes(limit)
                )?;
                let measured = p
                    .configs
                    .iter()
                    .filter(|c| c.memory.is_some())
                    .filter_map(|c| c.batch)
                    .max()
                    .unwrap_or(1)
                    .max(1);
                match n.max_batch_within_memory_limit {
                    Some(b) if b > measured => writeln!(
                        w,
                        "  largest batch with peak rss within {}: {b} (extrapolated {:.0}x beyond \
                         the largest measured batch {measured}: an estimate, measure it)",
                        format_bytes(limit),
                        b as f64 / measured as f64
                    )?,
                    Some(b) => writeln!(
                        w,
                        "  largest batch with peak rss within {}: {b}",
                        format_bytes(limit)
                    )?,
                    None => writeln!(
                        w,
                        "  no batch has peak rss within {} by this line",
                        format_bytes(limit)
                    )?,
                }
            }
        }
    }
    for c in &p.configs {
        let ops: Vec<_> = c.per_op.iter().filter(|o| o.kind == "op").take(5).collect();
        if ops.is_empty() {
            continue;
        }
        let s: Vec<String> = ops
            .iter()
            .map(|o| format!("{} {:.0}%", o.name, o.share * 100.0))
            .collect();
        writeln!(w, "top ops {}: {}", labels.label(&c.id), s.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protects the profile table's layout and units (hand-built values, not timings).
    #[test]
    fn profile_table_snapshot() {
        insta::assert_snapshot!(render(&crate::report::fixture::sample_profile()));
    }

    /// A warning every configuration gets is said once; a memory line that reaches beyond
    /// the measured batches says so, and the limit says what it limits (issue 17).
    #[test]
    fn table_says_common_warnings_once_and_flags_extrapolation() {
        let mut p = crate::report::fixture::sample_profile();
        for c in &mut p.configs {
            c.warnings = vec!["slow first run: 9.000 ms, 5.0x the steady median".into()];
        }
        let text = render(&p);
        assert_eq!(text.matches("slow first run").count(), 1, "{text}");
        assert!(
            text.contains("every configuration: slow first run"),
            "{text}"
        );
        assert!(text.contains("private writable memory"), "{text}");
        assert!(text.contains("extrapolated"), "{text}");
    }
}
