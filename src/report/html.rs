//! The HTML report of a profile: one self-contained file (inline CSS and inline SVG charts
//! drawn by `plotters`; no script, no font, no image, nothing fetched), so it can be
//! attached to a CI run or mailed and still open years later. A Content-Security-Policy
//! forbids every network load, so a regression that added one would show as a console
//! error in the headless-browser test.
//!
//! Sections: summary, latency (p50 and p95) against batch per thread count, throughput
//! against batch, peak memory against batch with each target's RAM, per-op time shares,
//! memory fit per target, bundles (the per-target choice and predictions), quantization,
//! and every configuration in a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::bundles::{BundleDir, BundleRow, FitMatrix};
use super::plot::{self, Axis, HLine, LineChart, Series};
use super::quantize::QuantizeSummary;
use super::targets::TargetRam;
use crate::error::Result;
use crate::profile::schema::{ConfigResult, Profile, Status};
use crate::units::{Display, Unit};

/// Everything the report shows.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub profile: Profile,
    pub quantize: Option<QuantizeSummary>,
    /// `None` when no bundle folder was given.
    pub bundles: Option<BundleDir>,
    pub targets: Vec<TargetRam>,
}

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn secs(v: f64) -> String {
    Display(v, Unit::Seconds).to_string()
}

fn bytes(v: f64) -> String {
    Display(v, Unit::Bytes).to_string()
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

/// `2023-11-14 22:13:20 UTC` from Unix seconds (see [`crate::date::utc`]).
pub fn utc(unix_s: u64) -> String {
    crate::date::utc(unix_s)
}

/// The configurations that ran, grouped by (execution provider, threads), each group
/// sorted by batch (1 where the model has no batch dimension).
fn groups(p: &Profile) -> BTreeMap<(String, usize), Vec<&ConfigResult>> {
    let mut g: BTreeMap<(String, usize), Vec<&ConfigResult>> = BTreeMap::new();
    for c in p.configs.iter().filter(|c| c.status == Status::Ok) {
        g.entry((c.ep_requested.clone(), c.threads))
            .or_default()
            .push(c);
    }
    for v in g.values_mut() {
        v.sort_by_key(|c| c.batch.unwrap_or(1));
    }
    g
}

fn group_label(ep: &str, threads: usize, multi_ep: bool) -> String {
    if multi_ep {
        format!("{ep} threads={threads}")
    } else {
        format!("threads={threads}")
    }
}

fn batch_axis(p: &Profile) -> Axis {
    let bs: Vec<i64> = p
        .configs
        .iter()
        .filter(|c| c.status == Status::Ok)
        .map(|c| c.batch.unwrap_or(1))
        .collect();
    match (bs.iter().min(), bs.iter().max()) {
        (Some(&lo), Some(&hi)) if lo > 0 && hi >= 4 * lo => Axis::Log,
        _ => Axis::Linear,
    }
}

fn ms(y: f64) -> String {
    format!("{} ms", plot::trim_number(y * 1e3))
}

fn per_s(y: f64) -> String {
    format!("{}/s", plot::trim_number(y))
}

/// Axis ticks in binary units, as every table and report prints sizes (`crate::units`).
fn mib(y: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if y >= 1024.0 * MIB {
        format!("{} GiB", plot::trim_number(y / (1024.0 * MIB)))
    } else {
        format!("{} MiB", plot::trim_number(y / MIB))
    }
}

fn latency_chart(p: &Profile) -> Result<Option<String>> {
    let g = groups(p);
    let multi_ep = g
        .keys()
        .map(|k| &k.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let mut series = Vec::new();
    for (i, ((ep, threads), cs)) in g.iter().enumerate() {
        let pts = |f: fn(&crate::profile::schema::LatencyStats) -> f64| -> Vec<(f64, f64)> {
            cs.iter()
                .filter_map(|c| {
                    c.latency
                        .as_ref()
                        .map(|l| (c.batch.unwrap_or(1) as f64, f(l)))
                })
                .collect()
        };
        let label = group_label(ep, *threads, multi_ep);
        series.push(Series {
            label: format!("p50 {label}"),
            points: pts(|l| l.p50_s),
            dashed: false,
            color: i,
        });
        series.push(Series {
            label: format!("p95 {label}"),
            points: pts(|l| l.p95_s),
            dashed: true,
            color: i,
        });
    }
    plot::line_chart(
        &LineChart {
            title: "Latency against batch size (p50 solid, p95 dashed)",
            x_desc: "batch size",
            y_desc: "latency",
            x_axis: batch_axis(p),
            y_axis: Axis::Linear,
            y_fmt: &ms,
        },
        &series,
        &[],
    )
}

fn throughput_chart(p: &Profile) -> Result<Option<String>> {
    let g = groups(p);
    let multi_ep = g
        .keys()
        .map(|k| &k.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let series: Vec<Series> = g
        .iter()
        .enumerate()
        .map(|(i, ((ep, threads), cs))| Series {
            label: group_label(ep, *threads, multi_ep),
            points: cs
                .iter()
                .filter_map(|c| {
                    c.throughput_items_per_s
                        .map(|t| (c.batch.unwrap_or(1) as f64, t))
                })
                .collect(),
            dashed: false,
            color: i,
        })
        .collect();
    plot::line_chart(
        &LineChart {
            title: "Throughput against batch size",
            x_desc: "batch size",
            y_desc: "items per second",
            x_axis: batch_axis(p),
            y_axis: Axis::Linear,
            y_fmt: &per_s,
        },
        &series,
        &[],
    )
}

fn memory_chart(p: &Profile, targets: &[TargetRam]) -> Result<Option<String>> {
    let g = groups(p);
    let multi_ep = g
        .keys()
        .map(|k| &k.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let mut series: Vec<Series> = g
        .iter()
        .enumerate()
        .map(|(i, ((ep, threads), cs))| Series {
            label: format!("peak RSS {}", group_label(ep, *threads, multi_ep)),
            points: cs
                .iter()
                .filter_map(|c| {
                    c.memory
                        .as_ref()
                        .map(|m| (c.batch.unwrap_or(1) as f64, m.peak_rss_bytes as f64))
                })
                .collect(),
            dashed: false,
            color: i,
        })
        .collect();
    if let Some(n) = &p.needs {
        if let (Some(fixed), Some(per)) = (n.memory_fixed_bytes, n.memory_per_item_bytes) {
            let mut bs: Vec<i64> = p
                .configs
                .iter()
                .filter(|c| c.status == Status::Ok)
                .filter_map(|c| c.batch)
                .collect();
            bs.sort();
            bs.dedup();
            if bs.len() >= 2 {
                series.push(Series {
                    label: format!("fit: {} + {} × batch", bytes(fixed), bytes(per)),
                    points: bs
                        .iter()
                        .map(|&b| (b as f64, fixed + per * b as f64))
                        .collect(),
                    dashed: true,
                    color: 6,
                });
            }
        }
    }
    // A linear axis reads best; targets with far more RAM than the model needs would
    // squash the data, so lines above 3x the largest peak are listed under the chart.
    let data_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let all_lines: Vec<HLine> = targets
        .iter()
        .map(|t| match t.model_ram_bytes {
            Some(m) => HLine {
                label: format!("{}: {} for the model", t.name, bytes(m as f64)),
                y: m as f64,
            },
            None => HLine {
                label: format!("{}: {} RAM", t.name, bytes(t.ram_bytes as f64)),
                y: t.ram_bytes as f64,
            },
        })
        .collect();
    let (lines, off): (Vec<HLine>, Vec<HLine>) = all_lines
        .into_iter()
        .partition(|l| data_max <= 0.0 || l.y <= 3.0 * data_max);
    let svg = plot::line_chart(
        &LineChart {
            title: "Peak memory against batch size, with each target's model RAM",
            x_desc: "batch size",
            y_desc: "peak resident memory",
            x_axis: batch_axis(p),
            y_axis: Axis::Linear,
            y_fmt: &mib,
        },
        &series,
        &lines,
    )?;
    Ok(svg.map(|svg| {
        if off.is_empty() {
            svg
        } else {
            let names: Vec<String> = off.iter().map(|l| esc(&l.label)).collect();
            format!(
                "{svg}<p class=\"muted\">Off the chart (more than 3× the largest peak): {}.</p>",
                names.join("; ")
            )
        }
    }))
}

/// The configuration whose per-op shares are shown: the first that has them, preferring
/// op-type rows over node rows.
fn ops_chart(p: &Profile) -> Result<Option<(String, String)>> {
    let Some(cfg) = p.configs.iter().find(|c| !c.per_op.is_empty()) else {
        return Ok(None);
    };
    let kind = if cfg.per_op.iter().any(|o| o.kind == "op") {
        "op"
    } else {
        "node"
    };
    let mut bars: Vec<(String, f64)> = cfg
        .per_op
        .iter()
        .filter(|o| o.kind == kind)
        .map(|o| (o.name.clone(), o.share))
        .collect();
    bars.sort_by(|a, b| b.1.total_cmp(&a.1));
    bars.truncate(12);
    let title = format!(
        "Share of run time per {} ({})",
        if kind == "op" { "op type" } else { "node" },
        cfg.id
    );
    Ok(plot::share_bars(&title, &bars)?.map(|svg| (cfg.id.clone(), svg)))
}

const CSS: &str = "\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2430;\
margin:0;background:#f4f6f9}\
header{background:#1d2b3a;color:#fff;padding:18px 32px}\
header h1{margin:0 0 4px;font-size:22px}header p{margin:2px 0;color:#c8d3df}\
main{max-width:1100px;margin:0 auto;padding:8px 24px 40px}\
section{background:#fff;border:1px solid #dde3ea;border-radius:8px;margin:18px 0;padding:14px 20px;overflow-x:auto}\
h2{font-size:18px;margin:4px 0 10px}\
.chart{max-width:920px;margin:8px auto}.chart svg{width:100%;height:auto;display:block}\
table{border-collapse:collapse;width:100%;font-size:13.5px}\
th,td{border-bottom:1px solid #e6eaef;padding:5px 8px;text-align:left;vertical-align:top}\
th{background:#f0f3f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.ok{color:#0a7a3e;font-weight:600}.bad{color:#b3261e;font-weight:600}.muted{color:#6b7684}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}dt{color:#6b7684}dd{margin:0}\
code{font-size:12.5px;background:#f0f3f7;padding:1px 4px;border-radius:3px}\
header code{background:#2c3e52;color:#e8eef5}";

/// Render the whole report.
pub fn render(inp: &Inputs) -> Result<String> {
    let p = &inp.profile;
    let mut h = String::new();
    let model_name = p
        .model
        .path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(&p.model.path);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">\n\
         <title>edgepack report: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(model_name)
    );
    let _ = write!(
        h,
        "<header><h1>edgepack report: {}</h1><p>{} · sha256 <code>{}</code> · {}</p>\
         <p>{} · {} logical cores · {} RAM · {} {} · ONNX Runtime {} · plan <b>{}</b> · {}</p></header>\n<main>\n",
        esc(model_name),
        esc(&p.model.path),
        esc(&p.model.sha256[..p.model.sha256.len().min(16)]),
        bytes(p.model.size_bytes as f64),
        esc(&p.host.cpu_model),
        p.host.logical_cores,
        bytes(p.host.total_memory_bytes as f64),
        esc(&p.host.os),
        esc(&p.host.arch),
        esc(&p.onnxruntime_version),
        esc(&p.plan.name),
        utc(p.created_unix_s)
    );
    summary_section(&mut h, p);

    h.push_str("<section id=\"charts\"><h2>Latency, throughput and memory</h2>\n");
    let mut any = false;
    for (id, svg) in [
        ("latency", latency_chart(p)?),
        ("throughput", throughput_chart(p)?),
        ("memory", memory_chart(p, &inp.targets)?),
    ] {
        if let Some(svg) = svg {
            any = true;
            let _ = writeln!(h, "<div class=\"chart\" id=\"chart-{id}\">{svg}</div>");
        }
    }
    if !any {
        h.push_str("<p class=\"muted\">No configuration ran successfully: nothing to plot.</p>");
    }
    h.push_str("</section>\n");

    h.push_str("<section id=\"ops\"><h2>Per-op time shares</h2>\n");
    match ops_chart(p)? {
        Some((_, svg)) => {
            let _ = writeln!(h, "<div class=\"chart\">{svg}</div>");
        }
        None => h.push_str(
            "<p class=\"muted\">No per-op data in this profile (run <code>edgepack profile --per-op</code>).</p>\n",
        ),
    }
    h.push_str("</section>\n");

    fit_section(&mut h, p, &inp.targets);
    matrix_section(&mut h, inp.bundles.as_ref().and_then(|b| b.fit.as_ref()));
    bundles_section(
        &mut h,
        inp.bundles.as_ref().map(|b| b.rows.as_slice()),
        &inp.targets,
    );
    quantize_section(&mut h, inp.quantize.as_ref());
    configs_section(&mut h, p);
    let _ = write!(
        h,
        "</main>\n<footer class=\"muted\" style=\"text-align:center;padding:0 0 24px\">\
         Generated by edgepack {} from profile schema <code>{}</code>.</footer>\n</body>\n</html>\n",
        esc(env!("CARGO_PKG_VERSION")),
        esc(&p.schema)
    );
    Ok(h)
}

fn summary_section(h: &mut String, p: &Profile) {
    let ok = p.configs.iter().filter(|c| c.status == Status::Ok).count();
    let failed = p.configs.len() - ok;
    let best = p
        .configs
        .iter()
        .filter(|c| c.status == Status::Ok)
        .filter_map(|c| c.latency.as_ref().map(|l| (c, l.p50_s)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let _ = write!(
        h,
        "<section id=\"summary\"><h2>Summary</h2><dl>\
         <dt>Configurations</dt><dd>{} measured, <span class=\"{}\">{failed} failed</span></dd>",
        ok,
        if failed > 0 { "bad" } else { "muted" }
    );
    if let Some((c, p50)) = best {
        let _ = write!(
            h,
            "<dt>Fastest p50</dt><dd>{} ({})</dd>",
            secs(p50),
            esc(&c.id)
        );
    }
    if let Some(n) = &p.needs {
        if let Some(b) = n.latency_budget_s {
            let per: Vec<String> = n
                .min_threads_for_budget
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        esc(k),
                        v.map(|t| format!("{t} thread(s)"))
                            .unwrap_or("none meets it".into())
                    )
                })
                .collect();
            let _ = write!(
                h,
                "<dt>Fewest threads for p50 ≤ {}</dt><dd>{}</dd>",
                secs(b),
                if per.is_empty() {
                    "–".into()
                } else {
                    per.join("; ")
                }
            );
        }
        if let (Some(f), Some(per)) = (n.memory_fixed_bytes, n.memory_per_item_bytes) {
            let _ = write!(
                h,
                "<dt>Memory model</dt><dd>peak ≈ {} + {} × batch</dd>",
                bytes(f),
                bytes(per)
            );
        }
        if let Some(l) = n.memory_limit_bytes {
            let _ = write!(
                h,
                "<dt>Largest batch within {}</dt><dd>{}</dd>",
                bytes(l as f64),
                opt(n.max_batch_within_memory_limit, |b| b.to_string())
            );
        }
    }
    let _ = writeln!(
        h,
        "<dt>Measurement</dt><dd>{} warm-up, {}–{} iterations, {}–{} s, target CI ±{:.1}%, \
         graph optimization {}</dd></dl></section>",
        p.plan.warmup_iterations,
        p.plan.min_iterations,
        p.plan.max_iterations,
        plot::trim_number(p.plan.min_time_s),
        plot::trim_number(p.plan.max_time_s),
        p.plan.target_ci_rel * 100.0,
        esc(&p.plan.graph_optimization_level)
    );
}

/// Measured peak memory per batch (worst over thread counts) against each target's model RAM.
fn fit_section(h: &mut String, p: &Profile, targets: &[TargetRam]) {
    h.push_str("<section id=\"fit\"><h2>Memory fit per target</h2>\n");
    if targets.is_empty() {
        h.push_str("<p class=\"muted\">No targets given (pass <code>--targets hardware/</code>).</p></section>\n");
        return;
    }
    let mut peak: BTreeMap<i64, u64> = BTreeMap::new();
    let mut oom: BTreeMap<i64, bool> = BTreeMap::new();
    for c in &p.configs {
        let b = c.batch.unwrap_or(1);
        match (&c.status, &c.memory) {
            (Status::Ok, Some(m)) => {
                let e = peak.entry(b).or_insert(0);
                *e = (*e).max(m.peak_rss_bytes);
            }
            (Status::Failed, _) => {
                oom.insert(b, true);
            }
            _ => {}
        }
    }
    h.push_str(
        "<p class=\"muted\">Peak resident memory measured on this host (worst over thread \
         counts) against the RAM each target leaves for the model.</p>\
         <table><thead><tr><th>batch</th><th>peak RSS</th>",
    );
    for t in targets {
        let _ = write!(
            h,
            "<th>{}<br><span class=\"muted\">{}</span></th>",
            esc(&t.name),
            bytes(t.model_ram_bytes.unwrap_or(t.ram_bytes) as f64)
        );
    }
    h.push_str("</tr></thead><tbody>\n");
    let batches: std::collections::BTreeSet<i64> = peak.keys().chain(oom.keys()).copied().collect();
    for b in batches {
        let _ = write!(h, "<tr><td class=\"num\">{b}</td>");
        match peak.get(&b) {
            Some(&pk) => {
                let _ = write!(h, "<td class=\"num\">{}</td>", bytes(pk as f64));
                for t in targets {
                    let cap = t.model_ram_bytes.unwrap_or(t.ram_bytes);
                    if pk <= cap {
                        let _ = write!(
                            h,
                            "<td class=\"ok\">fits ({:.0}%)</td>",
                            pk as f64 / cap as f64 * 100.0
                        );
                    } else {
                        let _ = write!(
                            h,
                            "<td class=\"bad\">no: needs {}</td>",
                            bytes((pk - cap) as f64)
                        );
                    }
                }
            }
            None => {
                let _ = write!(
                    h,
                    "<td class=\"bad\">failed</td><td colspan=\"{}\" class=\"muted\">did not run on this host</td>",
                    targets.len()
                );
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></section>\n");
}

/// Every variant against every target, from `edgepack build`'s report.
fn matrix_section(h: &mut String, m: Option<&FitMatrix>) {
    h.push_str("<section id=\"matrix\"><h2>Fit matrix: every variant on every target</h2>\n");
    let Some(m) = m else {
        h.push_str(
            "<p class=\"muted\">No build report in the bundle folder (<code>edgepack build</code> \
             writes <code>NAME-build.json</code> next to the bundles).</p></section>\n",
        );
        return;
    };
    h.push_str("<table><thead><tr><th>target</th>");
    for v in &m.variants {
        let _ = write!(h, "<th>{}</th>", esc(v));
    }
    h.push_str("</tr></thead><tbody>\n");
    for (target, chosen, cells) in &m.targets {
        let _ = write!(h, "<tr><td>{}</td>", esc(target));
        for v in &m.variants {
            match cells.get(v) {
                None => h.push_str("<td class=\"muted\">not evaluated</td>"),
                Some(c) => {
                    let star = if chosen.as_deref() == Some(v.as_str()) {
                        " ★ chosen"
                    } else {
                        ""
                    };
                    let figures: Vec<String> = [
                        c.latency_p50_s.map(|p| format!("p50 {}", secs(p))),
                        c.peak_memory_bytes
                            .map(|b| format!("peak {}", bytes(b as f64))),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    let (class, word) = if c.fits {
                        ("ok", "fits")
                    } else {
                        ("bad", "no")
                    };
                    let _ = write!(
                        h,
                        "<td><span class=\"{class}\">{word}{star}</span>{}{}</td>",
                        if figures.is_empty() {
                            String::new()
                        } else {
                            format!("<br><span class=\"muted\">{}</span>", figures.join(", "))
                        },
                        if c.reasons.is_empty() {
                            String::new()
                        } else {
                            format!("<br>{}", esc(&c.reasons.join("; ")))
                        }
                    );
                }
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></section>\n");
}

fn bundles_section(h: &mut String, bundles: Option<&[BundleRow]>, targets: &[TargetRam]) {
    h.push_str(
        "<section id=\"bundles\"><h2>Bundles: chosen variant and predictions per target</h2>\n",
    );
    let Some(rows) = bundles else {
        h.push_str("<p class=\"muted\">No bundle folder given (pass the <code>dist/</code> folder written by <code>edgepack bundle</code>).</p></section>\n");
        return;
    };
    if rows.is_empty() {
        h.push_str("<p class=\"muted\">The bundle folder holds no bundles.</p></section>\n");
        return;
    }
    h.push_str(
        "<table><thead><tr><th>target</th><th>variant</th><th>threads</th><th>batch</th>\
         <th>p50</th><th>p95</th><th>peak memory</th><th>memory fit</th><th>bundle size max</th>\
         <th>SQNR</th><th>basis</th></tr></thead><tbody>\n",
    );
    for r in rows {
        let cap = targets
            .iter()
            .find(|t| t.name == r.target)
            .map(|t| t.model_ram_bytes.unwrap_or(t.ram_bytes));
        let fit = match (r.peak_memory_bytes, cap) {
            (Some(pk), Some(cap)) if pk <= cap => "<td class=\"ok\">fits</td>".to_string(),
            (Some(_), Some(cap)) => format!("<td class=\"bad\">over {}</td>", bytes(cap as f64)),
            _ => "<td class=\"muted\">–</td>".into(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>{fit}\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&r.target),
            esc(&r.variant),
            opt(r.threads, |t| t.to_string()),
            opt(r.batch, |b| b.to_string()),
            opt(r.latency_p50_s, secs),
            opt(r.latency_p95_s, secs),
            opt(r.peak_memory_bytes, |b| bytes(b as f64)),
            opt(r.bundle_size_bytes_max, |b| bytes(b as f64)),
            opt(r.accuracy_sqnr_db, |d| format!("{d:.1} dB")),
            esc(r.basis.as_deref().unwrap_or("–"))
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn quantize_section(h: &mut String, q: Option<&QuantizeSummary>) {
    h.push_str("<section id=\"quantization\"><h2>Quantization: accuracy, size and speed</h2>\n");
    let Some(q) = q else {
        h.push_str("<p class=\"muted\">No quantize report given (pass the file written by <code>edgepack quantize --report</code>).</p></section>\n");
        return;
    };
    if q.random_inputs {
        h.push_str(
            "<p class=\"bad\">Accuracy was measured on random inputs: it says little about \
             real data (give the quantizer --calibration and --eval folders).</p>\n",
        );
    }
    for w in &q.warnings {
        let _ = writeln!(h, "<p class=\"bad\">{}</p>", esc(w));
    }
    h.push_str("<dl>");
    if let Some(m) = &q.mode {
        let _ = write!(h, "<dt>mode</dt><dd>{}</dd>", esc(m));
    }
    if let Some(v) = &q.variant {
        let _ = write!(h, "<dt>chosen variant</dt><dd>{}</dd>", esc(v));
    }
    for (k, v) in &q.figures {
        let shown = if k.ends_with("_bytes") {
            bytes(*v)
        } else if k.ends_with("_s") {
            secs(*v)
        } else if k.contains("ratio") {
            format!("{v:.3}×")
        } else {
            plot::trim_number(*v)
        };
        let _ = write!(h, "<dt>{}</dt><dd>{shown}</dd>", esc(&k.replace('_', " ")));
    }
    h.push_str("</dl>\n");
    if !q.outputs.is_empty() {
        h.push_str(
            "<table><thead><tr><th>output</th><th>SQNR</th><th>cosine</th>\
             <th>top-1 agreement</th><th>max abs error</th></tr></thead><tbody>\n",
        );
        for o in &q.outputs {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&o.output),
                opt(o.sqnr_db, |d| if d.is_infinite() {
                    "∞ (identical)".into()
                } else {
                    format!("{d:.1} dB")
                }),
                opt(o.cosine, |c| format!("{c:.5}")),
                opt(o.top1_agreement, |t| format!("{:.2}%", t * 100.0)),
                opt(o.max_abs_error, |e| format!("{e:.3e}"))
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if q.attempts.len() > 1 {
        h.push_str(
            "<h3>Variants tried</h3><table><thead><tr><th>variant</th><th>worst SQNR</th>\
             <th>latency ratio</th><th>size ratio</th><th>meets target</th></tr></thead><tbody>\n",
        );
        for a in &q.attempts {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&a.variant),
                opt(a.min_sqnr_db, |d| format!("{d:.1} dB")),
                opt(a.latency_ratio, |r| format!("{r:.3}×")),
                opt(a.size_ratio, |r| format!("{r:.3}×")),
                match a.meets_target {
                    Some(true) => "<span class=\"ok\">yes</span>",
                    Some(false) => "<span class=\"bad\">no</span>",
                    None => "–",
                }
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if let Some(why) = &q.choice {
        let _ = writeln!(h, "<p>auto chose: {}</p>", esc(why));
    }
    h.push_str("</section>\n");
}

fn configs_section(h: &mut String, p: &Profile) {
    h.push_str(
        "<section id=\"configs\"><h2>Every configuration</h2><table><thead><tr>\
         <th>configuration</th><th>status</th><th>p50 [95% CI]</th><th>p95</th><th>throughput</th>\
         <th>peak RSS</th><th>session</th><th>first run</th><th>busy cores</th><th>notes</th>\
         </tr></thead><tbody>\n",
    );
    for c in &p.configs {
        let status = match c.status {
            Status::Ok => format!(
                "<span class=\"ok\">ok</span>{}",
                c.ep_used
                    .as_ref()
                    .map(|e| format!(" <span class=\"muted\">{}</span>", esc(e)))
                    .unwrap_or_default()
            ),
            Status::Failed => format!(
                "<span class=\"bad\">failed</span> {}",
                esc(&format!(
                    "{}{}",
                    c.failure.map(|f| format!("{f:?}")).unwrap_or_default(),
                    c.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ))
            ),
        };
        let l = c.latency.as_ref();
        let mut notes: Vec<String> = c.warnings.clone();
        if l.is_some_and(|l| !l.stable) {
            notes.push("unstable across windows".into());
        }
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{status}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&c.id),
            opt(l, |l| format!(
                "{} [{}, {}]",
                secs(l.p50_s),
                secs(l.p50_ci_low_s),
                secs(l.p50_ci_high_s)
            )),
            opt(l, |l| secs(l.p95_s)),
            opt(c.throughput_items_per_s, |t| format!("{t:.1}/s")),
            opt(c.memory.as_ref(), |m| bytes(m.peak_rss_bytes as f64)),
            opt(c.session_create_s, secs),
            opt(c.first_run_s, secs),
            opt(c.cpu.as_ref(), |u| format!("{:.2}", u.busy_cores)),
            esc(&notes.join("; "))
        );
    }
    h.push_str("</tbody></table></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::sample_inputs;

    #[test]
    fn report_is_self_contained_with_every_section() {
        let html = render(&sample_inputs()).unwrap();
        for id in [
            "summary",
            "charts",
            "ops",
            "fit",
            "bundles",
            "quantization",
            "configs",
        ] {
            assert!(
                html.contains(&format!("<section id=\"{id}\"")),
                "missing {id}"
            );
        }
        assert_eq!(
            html.matches("<svg").count(),
            4,
            "latency, throughput, memory, ops"
        );
        // Nothing is fetched: no URLs in src/href attributes, no scripts.
        for bad in [
            "src=\"http",
            "href=\"http",
            "<script",
            "<link",
            "@import",
            "url(",
        ] {
            assert!(!html.contains(bad), "found {bad}");
        }
        assert!(
            html.contains("exceeded the 1 GB memory limit &lt;&amp;&gt;"),
            "escaped"
        );
        assert!(html.contains("tiny-mcu-board"));
        assert!(html.contains("no: needs"), "a batch over the small target");
        assert!(html.contains("31.4 dB"));
    }

    #[test]
    fn report_without_optional_inputs_says_what_is_missing() {
        let mut inp = sample_inputs();
        inp.quantize = None;
        inp.bundles = None;
        inp.targets = vec![];
        let html = render(&inp).unwrap();
        assert!(html.contains("No quantize report given"));
        assert!(html.contains("No bundle folder given"));
        assert!(html.contains("No targets given"));
    }

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
