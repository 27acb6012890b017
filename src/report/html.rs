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

use super::build::BuildSummary;
use super::bundles::{BundleDir, BundleRow};
use super::format;
use super::label::ConfigLabels;
use super::plot::{self, Axis, HLine, LineChart, Series};
use super::quantize::{QuantizeSummary, TaskRow};
use super::targets::TargetRam;
use crate::error::Result;
use crate::profile::schema::{ConfigResult, Profile, Status};
use crate::setting::Setting;

/// Everything the report shows.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub profile: Profile,
    pub quantize: Option<QuantizeSummary>,
    /// `None` when no bundle folder was given.
    pub bundles: Option<BundleDir>,
    pub targets: Vec<TargetRam>,
    /// What a build decided (from `edgepack build`'s output folder); when present the page
    /// leads with the decision.
    pub build: Option<BuildSummary>,
    /// Profiles measured on the targets themselves (`--device-profile TARGET=FILE`): the
    /// bundles' predictions are shown against them.
    pub device_profiles: Vec<(String, Profile)>,
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
    format::duration(v)
}

fn bytes(v: f64) -> String {
    format::bytes(v)
}

use format::opt;

/// A chart in its frame, with the number of data points it draws (the browser test checks
/// that no chart is drawn with fewer than two).
fn chart_div(id: &str, points: usize, svg: &str) -> String {
    format!("<div class=\"chart\" id=\"chart-{id}\" data-points=\"{points}\">{svg}</div>\n")
}

fn points_of(series: &[Series]) -> usize {
    series.iter().map(|s| s.points.len()).sum()
}

/// `2023-11-14 22:13:20 UTC` from Unix seconds (see [`crate::date::utc`]).
pub fn utc(unix_s: u64) -> String {
    crate::date::utc(unix_s)
}

/// A size the sweep varies, drawn as a chart's x axis: the batch, or a symbolic dim swept
/// with `--dim` (the sequence length of a token model, issue 11).
#[derive(Clone, Debug, PartialEq)]
struct SizeAxis {
    /// `batch`, or the dim's symbol as the configuration ids spell it.
    key: String,
}

impl SizeAxis {
    fn batch() -> SizeAxis {
        SizeAxis {
            key: "batch".into(),
        }
    }

    fn is_batch(&self) -> bool {
        self.key == "batch"
    }

    /// The configuration's value on this axis (batch 1 where the model has none).
    fn value(&self, c: &ConfigResult) -> Option<i64> {
        if self.is_batch() {
            Some(c.batch.unwrap_or(1))
        } else {
            c.dims.get(&self.key).copied()
        }
    }

    /// The axis as the chart's title and caption say it.
    fn desc(&self) -> String {
        match self.key.as_str() {
            "batch" => "batch size".into(),
            "sequence" | "seq" | "seq_len" | "sequence_length" => "sequence length".into(),
            k => format!("{k} (symbolic dim)"),
        }
    }

    /// The chart's id: `latency` against batch, `latency-sequence` against a dim.
    fn chart_id(&self, base: &str) -> String {
        if self.is_batch() {
            base.to_string()
        } else {
            let slug: String = self
                .key
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            format!("{base}-{slug}")
        }
    }
}

/// The sizes the sweep varies among the configurations that ran: the batch and every
/// swept symbolic dim, each a chart axis. Batch alone when nothing varies, so a profile of
/// one size still reads as one (and gets figures, not one-point charts).
fn size_axes(p: &Profile) -> Vec<SizeAxis> {
    let ok: Vec<&ConfigResult> = p
        .configs
        .iter()
        .filter(|c| c.status == Status::Ok)
        .collect();
    let labels = ConfigLabels::new(ok.iter().map(|c| c.id.as_str()));
    let axes: Vec<SizeAxis> = labels
        .varying
        .iter()
        .filter(|k| *k != "ep" && *k != "threads")
        .map(|k| SizeAxis { key: k.clone() })
        .filter(|a| ok.iter().all(|c| a.value(c).is_some()))
        .collect();
    if axes.is_empty() {
        vec![SizeAxis::batch()]
    } else {
        axes
    }
}

/// The configurations that ran, grouped by execution provider, threads and the values of
/// the other size axes (`sequence=64` on a batch chart), each group sorted along `axis`.
fn groups<'a>(
    p: &'a Profile,
    axis: &SizeAxis,
) -> BTreeMap<(String, usize, String), Vec<&'a ConfigResult>> {
    let others: Vec<SizeAxis> = size_axes(p).into_iter().filter(|a| a != axis).collect();
    let mut g: BTreeMap<(String, usize, String), Vec<&ConfigResult>> = BTreeMap::new();
    for c in p.configs.iter().filter(|c| c.status == Status::Ok) {
        if axis.value(c).is_none() {
            continue;
        }
        let rest: Vec<String> = others
            .iter()
            .filter_map(|a| a.value(c).map(|v| format!("{}={v}", a.key)))
            .collect();
        g.entry((c.ep_requested.clone(), c.threads, rest.join(" ")))
            .or_default()
            .push(c);
    }
    for v in g.values_mut() {
        v.sort_by_key(|c| axis.value(c).unwrap_or(1));
    }
    g
}

fn multi_ep(g: &BTreeMap<(String, usize, String), Vec<&ConfigResult>>) -> bool {
    g.keys()
        .map(|k| &k.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1
}

fn group_label(key: &(String, usize, String), multi_ep: bool) -> String {
    let (ep, threads, rest) = key;
    let mut l = if multi_ep {
        format!("{ep} threads={threads}")
    } else {
        format!("threads={threads}")
    };
    if !rest.is_empty() {
        l.push(' ');
        l.push_str(rest);
    }
    l
}

/// A log axis where the sizes span a factor of 4 or more, else linear.
fn x_axis(p: &Profile, axis: &SizeAxis) -> Axis {
    let xs: Vec<i64> = p
        .configs
        .iter()
        .filter(|c| c.status == Status::Ok)
        .filter_map(|c| axis.value(c))
        .collect();
    match (xs.iter().min(), xs.iter().max()) {
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

fn latency_chart(p: &Profile, axis: &SizeAxis) -> Result<Option<(usize, String)>> {
    let g = groups(p, axis);
    let multi = multi_ep(&g);
    let mut series = Vec::new();
    for (i, (key, cs)) in g.iter().enumerate() {
        let pts = |f: fn(&crate::profile::schema::LatencyStats) -> f64| -> Vec<(f64, f64)> {
            cs.iter()
                .filter_map(|c| Some((axis.value(c)? as f64, f(c.latency.as_ref()?))))
                .collect()
        };
        let label = group_label(key, multi);
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
    let n = points_of(&series);
    let title = format!("Latency against {} (p50 solid, p95 dashed)", axis.desc());
    Ok(plot::line_chart(
        &LineChart {
            title: &title,
            x_desc: &axis.desc(),
            y_desc: "latency",
            x_axis: x_axis(p, axis),
            y_axis: Axis::Linear,
            y_fmt: &ms,
            x_integer: true,
        },
        &series,
        &[],
    )?
    .map(|svg| (n, svg)))
}

fn throughput_chart(p: &Profile, axis: &SizeAxis) -> Result<Option<(usize, String)>> {
    let g = groups(p, axis);
    let multi = multi_ep(&g);
    let series: Vec<Series> = g
        .iter()
        .enumerate()
        .map(|(i, (key, cs))| Series {
            label: group_label(key, multi),
            points: cs
                .iter()
                .filter_map(|c| Some((axis.value(c)? as f64, c.throughput_items_per_s?)))
                .collect(),
            dashed: false,
            color: i,
        })
        .collect();
    let n = points_of(&series);
    let title = format!("Throughput against {}", axis.desc());
    Ok(plot::line_chart(
        &LineChart {
            title: &title,
            x_desc: &axis.desc(),
            y_desc: "items per second",
            x_axis: x_axis(p, axis),
            y_axis: Axis::Linear,
            y_fmt: &per_s,
            x_integer: true,
        },
        &series,
        &[],
    )?
    .map(|svg| (n, svg)))
}

fn memory_chart(
    p: &Profile,
    axis: &SizeAxis,
    targets: &[TargetRam],
) -> Result<Option<(usize, String)>> {
    let g = groups(p, axis);
    let multi = multi_ep(&g);
    let mut series: Vec<Series> = g
        .iter()
        .enumerate()
        .map(|(i, (key, cs))| Series {
            label: format!("peak RSS {}", group_label(key, multi)),
            points: cs
                .iter()
                .filter_map(|c| {
                    Some((
                        axis.value(c)? as f64,
                        c.memory.as_ref()?.peak_rss_bytes as f64,
                    ))
                })
                .collect(),
            dashed: false,
            color: i,
        })
        .collect();
    // The memory line of the needs summary is fitted against batch only.
    if let (true, Some(n)) = (axis.is_batch(), &p.needs) {
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
    let n = points_of(&series);
    let title = format!(
        "Peak memory against {}, with each target's model RAM",
        axis.desc()
    );
    let svg = plot::line_chart(
        &LineChart {
            title: &title,
            x_desc: &axis.desc(),
            y_desc: "peak resident memory",
            x_axis: x_axis(p, axis),
            y_axis: Axis::Linear,
            y_fmt: &mib,
            x_integer: true,
        },
        &series,
        &lines,
    )?;
    Ok(svg.map(|svg| {
        if off.is_empty() {
            (n, svg)
        } else {
            let names: Vec<String> = off.iter().map(|l| esc(&l.label)).collect();
            (
                n,
                format!(
                    "{svg}<p class=\"muted\">Off the chart (more than 3× the largest peak): {}.</p>",
                    names.join("; ")
                ),
            )
        }
    }))
}

/// The configuration whose per-op shares are shown: the first that has them, preferring
/// op-type rows over node rows.
fn ops_chart(p: &Profile) -> Result<Option<(usize, String)>> {
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
        ConfigLabels::of(p).label(&cfg.id)
    );
    if bars.len() < 2 {
        return Ok(None);
    }
    Ok(plot::share_bars(&title, &bars)?.map(|svg| (bars.len(), svg)))
}

const CSS: &str = "\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2430;\
margin:0;background:#f4f6f9}\
header{background:#1d2b3a;color:#fff;padding:18px 32px}\
header h1{margin:0 0 4px;font-size:22px}header p{margin:2px 0;color:#c8d3df}\
main{max-width:1100px;margin:0 auto;padding:8px 24px 40px}\
section{background:#fff;border:1px solid #dde3ea;border-radius:8px;margin:18px 0;padding:14px 20px}\
h2{font-size:18px;margin:4px 0 10px}\
.chart{max-width:920px;margin:8px auto}.chart svg{width:100%;height:auto;display:block}\
table{border-collapse:collapse;width:100%;font-size:13.5px}td.text{overflow-wrap:anywhere;min-width:12em}\
table.compact{width:auto;min-width:60%}\
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #dde3ea;border-radius:6px;padding:8px 12px;min-width:180px}\
.big{font-size:22px;font-weight:600}ul.reasons{margin:6px 0;padding-left:22px;font-size:13.5px}\
tr.detail td{border-bottom:1px solid #e6eaef;padding-top:0;color:#6b7684;font-size:12.5px}tr.has-detail td{border-bottom:0}\
th,td{border-bottom:1px solid #e6eaef;padding:5px 8px;text-align:left;vertical-align:top}\
th{background:#f0f3f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.ok{color:#0a7a3e;font-weight:600}.bad{color:#b3261e;font-weight:600}.muted{color:#6b7684}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}dt{color:#6b7684}dd{margin:0}\
code{font-size:12.5px;background:#f0f3f7;padding:1px 4px;border-radius:3px}\
header code{background:#2c3e52;color:#e8eef5}\
.badge{display:inline-block;font-size:11.5px;font-weight:600;padding:0 6px;margin-left:4px;\
border-radius:9px;white-space:nowrap;vertical-align:1px}\
.badge.in-sample{background:#fff1d6;color:#8a5300;border:1px solid #f0c36d}";

/// The badge on an accuracy figure judged on the calibration samples themselves (no
/// held-out data): such a figure is optimistic, and says so wherever it is shown.
fn in_sample_badge() -> String {
    format!(
        "<span class=\"badge in-sample\" title=\"measured on the calibration samples \
         themselves, no held-out data: optimistic (give {})\">in-sample</span>",
        Setting::Eval
    )
}

/// `figure` followed by the in-sample badge when `in_sample`.
fn with_badge(figure: String, in_sample: bool) -> String {
    if in_sample {
        format!("{figure}{}", in_sample_badge())
    } else {
        figure
    }
}

/// A task metric as the quantize terminal output and the bench spell it: `CER 0.89%,
/// 112/128 lines same`, `mask IoU@0.3 0.9811 mean, 0.9178 worst`.
fn task_metric(t: &TaskRow) -> String {
    match t {
        TaskRow::Ctc {
            cer,
            lines_identical,
            lines,
        } => format!(
            "CER {}, {lines_identical}/{lines} lines same",
            opt(*cer, |c| format!("{:.2}%", 100.0 * c))
        ),
        TaskRow::Mask {
            threshold,
            mean_iou,
            min_iou,
        } => format!(
            "mask IoU@{threshold} {} mean, {} worst",
            opt(*mean_iou, |m| format!("{m:.4}")),
            opt(*min_iou, |m| format!("{m:.4}"))
        ),
    }
}

/// Render the whole report.
pub fn render(inp: &Inputs) -> Result<String> {
    let p = &inp.profile;
    let mut h = String::new();
    // A build's page is named after the model the build started from.
    let model_path = inp
        .build
        .as_ref()
        .map(|b| b.model.as_str())
        .filter(|m| !m.is_empty())
        .unwrap_or(&p.model.path);
    let model_name = model_path.rsplit(['/', '\\']).next().unwrap_or(model_path);
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
    if let Some(b) = &inp.build {
        decision_section(&mut h, b)?;
        tradeoff_section(&mut h, b)?;
        grid_section(&mut h, b);
    }
    summary_section(&mut h, p);

    h.push_str("<section id=\"charts\"><h2>Latency, throughput and memory</h2>\n");
    // One set of charts per size the sweep varies: batch, and a swept symbolic dim such as
    // a token model's sequence length (`--dim sequence=16,64,128`).
    let mut drawn = 0;
    for axis in size_axes(p) {
        for (id, chart) in [
            ("latency", latency_chart(p, &axis)?),
            ("throughput", throughput_chart(p, &axis)?),
            ("memory", memory_chart(p, &axis, &inp.targets)?),
        ] {
            if let Some((n, svg)) = chart {
                drawn += 1;
                h.push_str(&chart_div(&axis.chart_id(id), n, &svg));
            }
        }
    }
    if drawn == 0 {
        single_batch_figures(&mut h, p);
    }
    h.push_str("</section>\n");

    h.push_str("<section id=\"ops\"><h2>Per-op time shares</h2>\n");
    match ops_chart(p)? {
        Some((n, svg)) => h.push_str(&chart_div("ops", n, &svg)),
        None => {
            let _ = writeln!(
                h,
                "<p class=\"muted\">No per-op data in this profile (run <code>edgepack profile {}</code>).</p>",
                Setting::PerOp
            );
        }
    }
    h.push_str("</section>\n");

    fit_section(&mut h, p, &inp.targets);
    if inp.build.is_none() {
        no_matrix_section(&mut h);
    }
    bundles_section(
        &mut h,
        inp.bundles.as_ref().map(|b| b.rows.as_slice()),
        &inp.targets,
        &inp.device_profiles,
    );
    match &inp.build {
        Some(b) => {
            build_quantize_section(&mut h, b);
            // A quantize report given besides the build folder keeps its own section.
            if inp.quantize.is_some() {
                let mut q = String::new();
                quantize_section(&mut q, inp.quantize.as_ref());
                h.push_str(&q.replacen(
                    "<section id=\"quantization\"><h2>Quantization: accuracy, size and speed",
                    "<section id=\"quantization-report\"><h2>Quantize report given",
                    1,
                ));
            }
        }
        None => quantize_section(&mut h, inp.quantize.as_ref()),
    }
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

/// The decision first: per target the chosen variant, its predicted p50 against the latency
/// budget and its peak memory against the target's model RAM, as shares of those limits.
fn decision_section(h: &mut String, b: &BuildSummary) -> Result<()> {
    h.push_str("<section id=\"decision\"><h2>Decision: which variant goes to which target</h2>\n");
    let budget = b.latency_budget_s;
    let rows: Vec<plot::LimitRow> = b
        .targets
        .iter()
        .map(|t| {
            let e = t.chosen_eval();
            let lat = e.and_then(|e| e.p50_s).and_then(|p| {
                budget.map(|bud| plot::LimitBar {
                    share: p / bud,
                    label: format!("p50 {} of {}", secs(p), secs(bud)),
                })
            });
            let mem = e
                .and_then(|e| e.peak_memory_bytes)
                .zip(t.model_ram_bytes)
                .map(|(pk, cap)| plot::LimitBar {
                    share: pk as f64 / cap as f64,
                    label: format!("{} of {}", bytes(pk as f64), bytes(cap as f64)),
                });
            let detail = match (&t.chosen, e) {
                (Some(c), Some(e)) => format!(
                    "{c}{}{}",
                    e.threads
                        .map(|th| format!(", {}", format::count(th, "thread")))
                        .unwrap_or_default(),
                    e.batch.map(|b| format!(", batch {b}")).unwrap_or_default()
                ),
                _ => "no variant fits".into(),
            };
            plot::LimitRow {
                name: t.name.clone(),
                detail,
                bars: [lat, mem],
                missing: if t.chosen.is_none() {
                    "no variant fits".into()
                } else {
                    "not predicted".into()
                },
            }
        })
        .collect();
    let names = ["predicted p50 / latency budget", "peak memory / model RAM"];
    match plot::limit_bars(names, &rows) {
        Some(svg) => {
            let n = rows.iter().flat_map(|r| r.bars.iter().flatten()).count();
            h.push_str(&chart_div("decision", n, &svg));
        }
        None => {
            h.push_str("<p class=\"muted\">No predictions to compare with the targets' limits.</p>")
        }
    }
    // Say where the drawn predictions come from: the cost model (a target's device
    // profile) or this host's profile scaled by relative compute.
    let from_cost_model = b
        .targets
        .iter()
        .filter_map(|t| t.chosen_eval()?.basis.as_deref())
        .map(|basis| basis.starts_with("cost model"))
        .collect::<Vec<_>>();
    let source = if !from_cost_model.is_empty() && from_cost_model.iter().all(|&c| c) {
        "Predictions of the cost model from each target's device profile"
    } else if from_cost_model.iter().any(|&c| c) {
        "Predictions per target (the cost model where a device profile exists, else this host's profile scaled)"
    } else {
        "Predictions from this host's profile scaled to each target"
    };
    let _ = write!(
        h,
        "<p class=\"muted\">{}{source}, for the threads and batch named under each target \
         (details and each prediction's basis in the bundles table); a variant fits when the \
         pessimistic end of its prediction's interval is within the limits. Among the variants that fit, the build prefers <b>{}</b>.</p>",
        match budget {
            Some(bud) => format!("Latency budget {}. ", secs(bud)),
            None => format!("No latency budget was given (<code>{}</code>): latency bars are not drawn. ", Setting::LatencyBudget),
        },
        esc(&b.prefer)
    );
    h.push_str(
        "<table class=\"compact\"><thead><tr><th>target</th><th>chosen</th><th>p50</th>\
                <th>peak memory</th><th>why</th></tr></thead><tbody>\n",
    );
    for t in &b.targets {
        let e = t.chosen_eval();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><b>{}</b></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&t.name),
            esc(t.chosen.as_deref().unwrap_or("none")),
            opt(e.and_then(|e| e.p50_s), secs),
            opt(e.and_then(|e| e.peak_memory_bytes), |b| bytes(b as f64)),
            esc(&b.why(t))
        );
    }
    h.push_str("</tbody></table></section>\n");
    Ok(())
}

/// Accuracy against latency, one point per variant, size as the marker's area.
fn tradeoff_section(h: &mut String, b: &BuildSummary) -> Result<()> {
    h.push_str("<section id=\"tradeoff\"><h2>Accuracy against latency, per variant</h2>\n");
    let pts: Vec<plot::VariantPoint> = b
        .variants
        .iter()
        .filter_map(|v| {
            Some(plot::VariantPoint {
                name: v.name.clone(),
                latency_s: v.host_p50_s?,
                sqnr_db: v.sqnr_db,
                size_bytes: v.size_bytes,
            })
        })
        .collect();
    match plot::pareto_scatter(&pts)? {
        Some(svg) => {
            h.push_str(&chart_div("tradeoff", pts.len(), &svg));
            let front: Vec<&str> = plot::pareto_front(&pts)
                .into_iter()
                .map(|i| pts[i].name.as_str())
                .collect();
            let _ = writeln!(
                h,
                "<p class=\"muted\">The dashed line joins the Pareto front (filled markers: no other variant is both faster and more \
                 accurate): {}. Up and to the left is better.</p>",
                esc(&front.join(", "))
            );
            let in_sample: Vec<&str> = b
                .variants
                .iter()
                .filter(|v| v.quantize.as_ref().is_some_and(|q| q.in_sample()))
                .map(|v| v.name.as_str())
                .collect();
            if !in_sample.is_empty() {
                let _ = writeln!(
                    h,
                    "<p class=\"muted\">{} The SQNR of {} was measured on the \
                     calibration samples themselves: the accuracy axis is optimistic for it.</p>",
                    in_sample_badge(),
                    esc(&in_sample.join(", "))
                );
            }
        }
        None => h.push_str(
            "<p class=\"muted\">Fewer than two variants were profiled: nothing to compare.</p>\n",
        ),
    }
    h.push_str("</section>\n");
    Ok(())
}

/// Every variant on every target as a picture, with why each misfit does not fit.
fn grid_section(h: &mut String, b: &BuildSummary) {
    h.push_str("<section id=\"matrix\"><h2>Fit matrix: every variant on every target</h2>\n");
    let cols: Vec<String> = b
        .evaluated_variants()
        .into_iter()
        .map(str::to_string)
        .collect();
    let rows: Vec<String> = b.targets.iter().map(|t| t.name.clone()).collect();
    let cells: Vec<Vec<Option<plot::GridCell>>> = b
        .targets
        .iter()
        .map(|t| {
            cols.iter()
                .map(|v| {
                    let e = t.evaluations.iter().find(|e| &e.variant == v)?;
                    Some(plot::GridCell {
                        fits: e.fits,
                        chosen: t.chosen.as_deref() == Some(v.as_str()),
                        lines: [
                            e.p50_s.map(|p| format!("p50 {}", secs(p))),
                            e.peak_memory_bytes.map(|m| bytes(m as f64)),
                        ]
                        .into_iter()
                        .flatten()
                        .collect(),
                        title: if e.reasons.is_empty() {
                            "fits".into()
                        } else {
                            e.reasons.join("; ")
                        },
                    })
                })
                .collect()
        })
        .collect();
    if let Some(svg) = plot::fit_grid(&rows, &cols, &cells) {
        let n = cells.iter().flatten().flatten().count();
        h.push_str(&chart_div("matrix", n, &svg));
    }
    let misfits: Vec<String> = b
        .targets
        .iter()
        .flat_map(|t| {
            t.evaluations.iter().filter(|e| !e.fits).map(move |e| {
                format!(
                    "<li><b>{} on {}</b>: {}</li>",
                    esc(&e.variant),
                    esc(&t.name),
                    esc(&e.reasons.join("; "))
                )
            })
        })
        .collect();
    if !misfits.is_empty() {
        let _ = write!(
            h,
            "<details><summary>Why the red cells do not fit ({})</summary><ul class=\"reasons\">{}</ul></details>",
            format::count(misfits.len() as u64, "cell"),
            misfits.join("")
        );
    }
    h.push_str("</section>\n");
}

/// One batch size only: the figures per thread count as numbers, not as one-point charts.
fn single_batch_figures(h: &mut String, p: &Profile) {
    let g = groups(p, &SizeAxis::batch());
    if g.is_empty() {
        h.push_str("<p class=\"muted\">No configuration ran successfully: nothing to plot.</p>");
        return;
    }
    h.push_str(
        "<p class=\"muted\">The profile measured one batch size, so there is no curve to draw; \
         the figures per configuration:</p><div class=\"cards\">",
    );
    for ((ep, threads, _), cs) in &g {
        for c in cs {
            let _ = write!(
                h,
                "<div class=\"card\"><div class=\"muted\">{} · {} · batch {}</div>\
                 <div class=\"big\">{}</div><div>p50 · p95 {}</div><div>{} · peak {}</div></div>",
                esc(ep),
                format::count(*threads as u64, "thread"),
                c.batch.unwrap_or(1),
                opt(c.latency.as_ref().map(|l| l.p50_s), secs),
                opt(c.latency.as_ref().map(|l| l.p95_s), secs),
                opt(c.throughput_items_per_s, format::per_second),
                opt(c.memory.as_ref().map(|m| m.peak_rss_bytes), |b| bytes(
                    b as f64
                )),
            );
        }
    }
    h.push_str("</div>\n");
}

/// Every variant the build made: accuracy, size, speed, and which targets chose it.
fn build_quantize_section(h: &mut String, b: &BuildSummary) {
    h.push_str(
        "<section id=\"quantization\"><h2>Quantization: every variant the build made</h2>\n",
    );
    let fp32 = b.variant("fp32");
    let held_out: Vec<String> = b
        .variants
        .iter()
        .filter_map(|v| v.quantize.as_ref())
        .filter_map(|q| {
            let ev = q.figure("eval_samples").filter(|n| *n > 0.0);
            let cal = q.figure("calibration_samples");
            Some(match (ev, cal, q.random_inputs) {
                (_, _, true) => "random inputs (accuracy says little)".to_string(),
                // The quantizer says what its figures were measured on; older reports
                // are judged by their sample counts.
                (_, Some(c), _) if q.in_sample() => format!(
                    "in-sample, {}",
                    format::count(c as u64, "calibration sample")
                ),
                (Some(e), _, _) => format!("held-out, {}", format::count(e as u64, "sample")),
                (None, Some(c), _) => format!(
                    "in-sample, {}",
                    format::count(c as u64, "calibration sample")
                ),
                _ => return None,
            })
        })
        .collect();
    let mut basis = held_out.clone();
    basis.dedup();
    let _ = write!(
        h,
        "<p class=\"muted\">Accuracy: worst-output SQNR against fp32{}. Speed: fastest p50 at batch 1 \
         on this host. Ratios against fp32.</p>",
        if basis.len() == 1 {
            format!(", {}", esc(&basis[0]))
        } else {
            String::new()
        }
    );
    h.push_str(
        "<table><thead><tr><th>variant</th><th>SQNR</th><th>size</th><th>size ratio</th>\
         <th>p50</th><th>latency ratio</th><th>chosen for</th></tr></thead><tbody>\n",
    );
    for v in &b.variants {
        let chosen_for: Vec<&str> = b
            .targets
            .iter()
            .filter(|t| t.chosen.as_deref() == Some(v.name.as_str()))
            .map(|t| t.name.as_str())
            .collect();
        let _ = writeln!(
            h,
            "<tr><td><b>{}</b></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&v.name),
            match v.sqnr_db {
                Some(d) => with_badge(
                    format::db(d),
                    v.quantize.as_ref().is_some_and(|q| q.in_sample())
                ),
                None if v.name == "fp32" => "reference".into(),
                None => "–".into(),
            },
            bytes(v.size_bytes as f64),
            opt(fp32.filter(|f| f.size_bytes > 0), |f| format::ratio(v.size_bytes as f64 / f.size_bytes as f64)),
            opt(v.host_p50_s, secs),
            opt(v.host_p50_s.zip(fp32.and_then(|f| f.host_p50_s)), |(a, f)| format::ratio(a / f)),
            if chosen_for.is_empty() {
                "<span class=\"muted\">–</span>".to_string()
            } else {
                esc(&chosen_for.join(", "))
            }
        );
    }
    h.push_str("</tbody></table>\n");
    for (v, why) in &b.skipped {
        let _ = writeln!(
            h,
            "<p class=\"muted\">Not made: <b>{}</b>: {}</p>",
            esc(v),
            esc(why)
        );
    }
    let warnings: Vec<String> = b
        .variants
        .iter()
        .filter_map(|v| v.quantize.as_ref().map(|q| (v, q)))
        .flat_map(|(v, q)| {
            q.warnings
                .iter()
                .map(move |w| format!("<li><b>{}</b>: {}</li>", esc(&v.name), esc(w)))
        })
        .collect();
    if !warnings.is_empty() {
        let _ = write!(h, "<details><summary>Quantizer warnings ({})</summary><ul class=\"reasons\">{}</ul></details>",
            format::count(warnings.len() as u64, "warning"), warnings.join(""));
    }
    h.push_str("<h3>Why each target's variant won</h3><ul>");
    for t in &b.targets {
        let _ = write!(
            h,
            "<li><b>{}</b> → {}: {}</li>",
            esc(&t.name),
            esc(t.chosen.as_deref().unwrap_or("none")),
            esc(&b.why(t))
        );
    }
    h.push_str("</ul></section>\n");
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
            esc(ConfigLabels::of(p).label(&c.id))
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
        let _ = writeln!(
            h,
            "<p class=\"muted\">No targets given (pass <code>{} hardware/</code>).</p></section>",
            Setting::Targets
        );
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

/// Without a build report there is no fit matrix ([`grid_section`] draws it from one):
/// say where it comes from.
fn no_matrix_section(h: &mut String) {
    h.push_str(
        "<section id=\"matrix\"><h2>Fit matrix: every variant on every target</h2>\n\
         <p class=\"muted\">No build report in the bundle folder (<code>edgepack build</code> \
         writes <code>NAME-build.json</code> next to the bundles).</p></section>\n",
    );
}

fn bundles_section(
    h: &mut String,
    bundles: Option<&[BundleRow]>,
    targets: &[TargetRam],
    device: &[(String, Profile)],
) {
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
    // The basis of each prediction is a sentence that mostly repeats from row to row
    // ("host p50 × 0.89 (host compute 2.67 / target 3.00; host relative_compute 2.67
    // estimated ...)"): the parts every row shares are said once above the table, the row
    // keeps what differs.
    let parts = |b: &str| -> Vec<String> {
        b.replace(" (", "; ")
            .split("; ")
            .map(|x| x.trim_end_matches(')').trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    };
    let all: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.basis.as_deref().map(parts).unwrap_or_default())
        .collect();
    let common: Vec<String> = all
        .first()
        .map(|f| {
            f.iter()
                .filter(|x| all.iter().all(|r| r.contains(x)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let own: Vec<String> = all
        .iter()
        .map(|r| {
            r.iter()
                .filter(|x| !common.contains(x))
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect();
    let one_basis = own.iter().all(|o| o.is_empty());
    if !common.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"muted\">Basis of every prediction: {}{}.</p>",
            esc(&common.join("; ")),
            if one_basis {
                ""
            } else {
                "; per row: what differs"
            }
        );
    }
    let _ = writeln!(
        h,
        "<table><thead><tr><th>target</th><th>variant</th><th>threads</th><th>batch</th>\
         <th>p50</th><th>p95</th><th>peak memory</th><th>memory fit</th><th>bundle size max</th>\
         <th>SQNR</th>{}</tr></thead><tbody>",
        if one_basis { "" } else { "<th>basis</th>" }
    );
    for (r, own) in rows.iter().zip(&own) {
        let cap = targets
            .iter()
            .find(|t| t.name == r.target)
            .map(|t| t.model_ram_bytes.unwrap_or(t.ram_bytes));
        let fit = match (r.peak_memory_bytes, cap) {
            (Some(pk), Some(cap)) if pk <= cap => format!(
                "<td class=\"ok\">fits ({} of {})</td>",
                format::percent(pk as f64 / cap as f64),
                bytes(cap as f64)
            ),
            (Some(_), Some(cap)) => format!("<td class=\"bad\">over {}</td>", bytes(cap as f64)),
            _ => "<td class=\"muted\">–</td>".into(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>{fit}\
             <td class=\"num\">{}</td><td class=\"num\">{}</td>{}</tr>",
            esc(&r.target),
            esc(&r.variant),
            opt(r.threads, |t| t.to_string()),
            opt(r.batch, |b| b.to_string()),
            opt(r.latency_p50_s, secs),
            opt(r.latency_p95_s, secs),
            opt(r.peak_memory_bytes, |b| bytes(b as f64)),
            opt(r.bundle_size_bytes_max, |b| bytes(b as f64)),
            opt(r.accuracy_sqnr_db, |d| with_badge(
                format::db(d),
                r.accuracy_in_sample
            )),
            if one_basis {
                String::new()
            } else {
                format!("<td class=\"text\">{}</td>", esc(own))
            }
        );
    }
    h.push_str("</tbody></table>\n");
    predicted_measured_table(h, &super::bundles::predicted_vs_measured(rows, device));
    h.push_str("</section>\n");
}

/// Each bundle's prediction against the profile measured on its target (issue 13), with
/// the error as (predicted - measured) / measured.
fn predicted_measured_table(h: &mut String, pm: &[super::bundles::PredictedMeasured]) {
    if pm.is_empty() {
        return;
    }
    let err = |e: Option<f64>| {
        opt(e, |e| {
            let class = if e.abs() <= 0.2 { "ok" } else { "bad" };
            format!("<span class=\"{class}\">{:+.1}%</span>", e * 100.0)
        })
    };
    let _ = writeln!(
        h,
        "<h3 id=\"predicted-measured\">Predicted against measured on the device</h3>\
         <p class=\"muted\">Each bundle's prediction beside the profile measured on its target \
         (<code>{dp}</code>) at the same threads and batch; error = (predicted − \
         measured) / measured, green within ±20%.</p>\
         <table><thead><tr><th>target</th><th>variant</th><th>threads</th><th>batch</th>\
         <th>p50 predicted</th><th>p50 measured</th><th>error</th><th>peak predicted</th>\
         <th>peak measured</th><th>error</th><th>basis</th></tr></thead><tbody>",
        dp = Setting::DeviceProfile
    );
    for r in pm {
        let basis = r.basis.as_deref().unwrap_or("–");
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"text\">{}{}</td></tr>",
            esc(&r.target),
            esc(&r.variant),
            opt(r.threads, |t| t.to_string()),
            opt(r.batch, |b| b.to_string()),
            opt(r.predicted_p50_s, secs),
            opt(r.measured_p50_s, secs),
            err(r.p50_error()),
            opt(r.predicted_peak_memory_bytes, |b| bytes(b as f64)),
            opt(r.measured_peak_memory_bytes, |b| bytes(b as f64)),
            err(r.peak_memory_error()),
            esc(basis.split(" (").next().unwrap_or(basis)),
            r.note
                .as_ref()
                .map(|n| format!("<br><span class=\"muted\">{}</span>", esc(n)))
                .unwrap_or_default()
        );
    }
    h.push_str("</tbody></table>\n");
}

fn quantize_section(h: &mut String, q: Option<&QuantizeSummary>) {
    h.push_str("<section id=\"quantization\"><h2>Quantization: accuracy, size and speed</h2>\n");
    let Some(q) = q else {
        let _ = writeln!(
            h,
            "<p class=\"muted\">No quantize report given (pass the file written by <code>edgepack quantize {}</code>).</p></section>",
            Setting::QuantizeReportOut
        );
        return;
    };
    if q.random_inputs {
        let _ = writeln!(
            h,
            "<p class=\"bad\">Accuracy was measured on random inputs: it says little about \
             real data (give the quantizer {} and {} folders).</p>",
            Setting::Calibration,
            Setting::Eval
        );
    }
    if q.in_sample() {
        let _ = writeln!(
            h,
            "<p>{} The accuracy figures were measured on the {} calibration \
             samples themselves (no held-out data): expect them to be optimistic. Give \
             <code>{}</code> held-out inputs for figures that say how the model does on \
             data it was not calibrated on.</p>",
            in_sample_badge(),
            q.figure("calibration_samples")
                .map(|c| (c as u64).to_string())
                .unwrap_or_default(),
            Setting::Eval
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
    let mut shown_keys: Vec<String> = vec![];
    for (k, v) in &q.figures {
        // `size.ratio` repeats the top-level `size_ratio`.
        let label = k.replace('_', " ");
        if shown_keys.contains(&label) {
            continue;
        }
        let _ = write!(
            h,
            "<dt>{}</dt><dd>{}</dd>",
            esc(&label),
            format::figure(k, *v)
        );
        shown_keys.push(label);
    }
    h.push_str("</dl>\n");
    if !q.outputs.is_empty() {
        // The task metric's column only when the quantizer computed one (CTC text, masks).
        let tasks = q.outputs.iter().any(|o| o.task.is_some());
        let _ = writeln!(
            h,
            "<table><thead><tr><th>output</th><th>SQNR</th><th>cosine</th>\
             <th>top-1 agreement</th><th>max abs error</th>{}</tr></thead><tbody>",
            if tasks {
                "<th>task metric vs fp32</th>"
            } else {
                ""
            }
        );
        let badge = |x: String| with_badge(x, q.in_sample());
        for o in &q.outputs {
            let task = match (&o.task, tasks) {
                (_, false) => String::new(),
                (None, true) => "<td>–</td>".to_string(),
                (Some(t), true) => format!("<td>{}</td>", badge(task_metric(t))),
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td>{task}</tr>",
                esc(&o.output),
                opt(o.sqnr_db, |d| badge(format::db(d))),
                opt(o.cosine, |c| badge(format::score(c))),
                opt(o.top1_agreement, format::percent),
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
                opt(a.min_sqnr_db, |d| with_badge(format::db(d), q.in_sample())),
                opt(a.latency_ratio, format::ratio),
                opt(a.size_ratio, format::ratio),
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
    // Warnings are long sentences: they get a row of their own under the figures, so the
    // table keeps to the page width.
    h.push_str(
        "<section id=\"configs\"><h2>Every configuration</h2><table><thead><tr>\
         <th>configuration</th><th>status</th><th>p50 [95% CI]</th><th>p95</th><th>throughput</th>\
         <th>peak RSS</th><th>session</th><th>first run</th><th>busy cores</th>\
         </tr></thead><tbody>\n",
    );
    // Rows are named by what varies across the sweep; the full id (the gate's matching
    // key) is the cell's tooltip, and what every row shares is said under the table.
    let labels = ConfigLabels::of(p);
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
        if let Some(l) = l.filter(|l| l.rounds.len() > 1) {
            let p50s: Vec<String> = l.rounds.iter().map(|r| secs(r.p50_s)).collect();
            notes.push(format!("p50 per process (round): {}", p50s.join(", ")));
        }
        if c.uses_all_cores {
            notes.push(format!(
                "uses every core of the machine ({}): its timings depend on everything else \
                 the machine runs",
                p.host.logical_cores
            ));
        }
        let _ =
            writeln!(
            h,
            "<tr{}><td title=\"{}\">{}</td><td>{status}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            if notes.is_empty() { "" } else { " class=\"has-detail\"" },
            esc(&c.id),
            esc(labels.label(&c.id)),
            opt(l, |l| format!(
                "{}<br><span class=\"muted\">[{}, {}]</span>",
                secs(l.p50_s),
                secs(l.p50_ci_low_s),
                secs(l.p50_ci_high_s)
            )),
            opt(l, |l| secs(l.p95_s)),
            opt(c.throughput_items_per_s, format::per_second),
            opt(c.memory.as_ref(), |m| bytes(m.peak_rss_bytes as f64)),
            opt(c.session_create_s, secs),
            opt(c.first_run_s, secs),
            opt(c.cpu.as_ref(), |u| format!("{:.2}", u.busy_cores)),
        );
        if !notes.is_empty() {
            let _ = writeln!(
                h,
                "<tr class=\"detail\"><td colspan=\"9\" class=\"text\">⚠ {}</td></tr>",
                esc(&notes.join("; "))
            );
        }
    }
    h.push_str("</tbody></table>");
    if let Some(fixed) = labels.fixed_line() {
        let _ = write!(
            h,
            "<p class=\"muted\" id=\"configs-fixed\">Every configuration: <code>{}</code></p>",
            esc(&fixed)
        );
    }
    h.push_str("</section>\n");
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
    fn a_build_report_leads_with_the_decision_and_draws_no_chart_under_two_points() {
        let mut inp = sample_inputs();
        inp.build = Some(crate::report::build::sample_summary());
        let html = render(&inp).unwrap();
        let at = |id: &str| {
            html.find(&format!("<section id=\"{id}\""))
                .unwrap_or_else(|| panic!("missing {id}"))
        };
        assert!(at("decision") < at("tradeoff"));
        assert!(at("tradeoff") < at("matrix"));
        assert!(at("matrix") < at("summary"));
        assert!(at("summary") < at("quantization"));
        for chart in ["decision", "tradeoff", "matrix", "latency"] {
            assert!(
                html.contains(&format!("id=\"chart-{chart}\"")),
                "no {chart} chart"
            );
        }
        for n in html.split("data-points=\"").skip(1) {
            let n: usize = n[..n.find('"').unwrap()].parse().unwrap();
            assert!(n >= 2, "a chart with {n} point(s)");
        }
        // Every variant is in the quantization section, with why each target's won.
        let q = &html[at("quantization")..];
        for v in ["fp32", "fp16", "int8", "62.0 dB", "21.5 dB", "int4-weight"] {
            assert!(q.contains(v), "quantization section lacks {v}");
        }
        assert!(q.contains("the only variant that fits"));
        assert!(q.contains("most accurate of the 3 that fit"));
        assert!(!html.contains("32.000×"));
    }

    #[test]
    fn a_profile_of_one_batch_shows_figures_not_one_point_charts() {
        let mut inp = sample_inputs();
        inp.profile.configs.retain(|c| c.batch == Some(1));
        let html = render(&inp).unwrap();
        assert!(!html.contains("id=\"chart-latency\""));
        assert!(html.contains("measured one batch size"));
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

    /// Accuracy judged on the calibration samples carries the in-sample badge wherever it
    /// is shown (issue 17 bug 5); held-out figures carry none.
    #[test]
    fn in_sample_accuracy_carries_a_badge_everywhere_it_is_shown() {
        let mut inp = sample_inputs();
        let held_out = render(&inp).unwrap();
        assert!(
            !held_out.contains("badge in-sample"),
            "the fixture is held-out"
        );
        let in_sample = QuantizeSummary {
            accuracy_basis: Some("in_sample".into()),
            ..inp.quantize.clone().unwrap()
        };
        inp.quantize = Some(in_sample.clone());
        if let Some(b) = inp.bundles.as_mut() {
            b.rows[0].accuracy_in_sample = true;
        }
        let html = render(&inp).unwrap();
        let q = &html[html.find("<section id=\"quantization\"").unwrap()..];
        let q = &q[..q.find("</section>").unwrap()];
        assert!(q.contains("calibration samples themselves"), "{q}");
        // The section's note, the SQNR and cosine cells, and both attempts' SQNR.
        assert_eq!(q.matches("badge in-sample").count(), 5, "{q}");
        let b = &html[html.find("<section id=\"bundles\"").unwrap()..];
        let b = &b[..b.find("</section>").unwrap()];
        assert!(b.contains("31.4 dB<span class=\"badge in-sample\""), "{b}");
        // A build's variant table and trade-off chart.
        inp.quantize = None;
        let mut build = crate::report::build::sample_summary();
        build.variants[2].quantize = Some(in_sample);
        inp.build = Some(build);
        let html = render(&inp).unwrap();
        let t = &html[html.find("<section id=\"tradeoff\"").unwrap()..];
        assert!(t[..t.find("</section>").unwrap()].contains("The SQNR of int8 was measured"));
        let q = &html[html.find("<section id=\"quantization\"").unwrap()..];
        assert!(q.contains("21.5 dB<span class=\"badge in-sample\""), "{q}");
        assert!(
            !q.contains("62.0 dB<span"),
            "fp16 has no quantize report: no badge"
        );
    }

    /// A quantize report's task metrics (CTC text, binarised masks) are in the table, with
    /// a dash for an output without one; without any, no column.
    #[test]
    fn quantization_table_shows_the_task_metrics() {
        let report = serde_json::json!({
            "mode": "int8", "accuracy_basis": "held_out",
            "outputs": [
                {"output": "text", "sqnr_db": 17.4,
                 "ctc": {"blank": 0, "cer": 0.0089, "edits": 17, "reference_chars": 1910,
                         "lines": 128, "lines_identical": 112}},
                {"output": "map", "sqnr_db": 19.9,
                 "mask": {"threshold": 0.3, "mean_iou": 0.98113, "min_iou": 0.91776, "samples": 32}},
                {"output": "logits", "sqnr_db": 30.0}
            ]
        });
        let q = QuantizeSummary::from_json(&report, "q.json".as_ref()).unwrap();
        let mut h = String::new();
        quantize_section(&mut h, Some(&q));
        assert!(h.contains("<th>task metric vs fp32</th>"), "{h}");
        assert!(h.contains("<td>CER 0.89%, 112/128 lines same</td>"), "{h}");
        assert!(
            h.contains("<td>mask IoU@0.3 0.9811 mean, 0.9178 worst</td>"),
            "{h}"
        );
        assert!(h.contains("<td>–</td></tr>"), "{h}");
        let plain = QuantizeSummary::from_json(
            &serde_json::json!({"outputs": [{"output": "y", "sqnr_db": 30.0}]}),
            "q.json".as_ref(),
        )
        .unwrap();
        let mut h = String::new();
        quantize_section(&mut h, Some(&plain));
        assert!(!h.contains("task metric"), "{h}");
    }

    /// The configurations table names rows by what varies, keeps the whole id (the gate's
    /// key) as the tooltip, and says what every row shares once (issue 17).
    #[test]
    fn configuration_rows_are_labelled_by_what_varies() {
        let mut inp = sample_inputs();
        for c in &mut inp.profile.configs {
            c.id.push_str(" H=640 W=640");
        }
        let html = render(&inp).unwrap();
        let c = &html[html.find("<section id=\"configs\"").unwrap()..];
        assert!(
            c.contains("<td title=\"ep=cpu threads=2 batch=4 H=640 W=640\">threads=2 batch=4</td>"),
            "{c}"
        );
        assert!(c.contains("Every configuration: <code>ep=cpu H=640 W=640</code>"));
        // The fastest configuration is named by its label too.
        assert!(html.contains("(threads=2 batch=1)</dd>"), "{html}");
    }

    /// A sweep of a symbolic dim (a token model's sequence length, issue 11) is drawn
    /// against that dim; with batch swept too, both get charts, each series naming the
    /// other size.
    #[test]
    fn a_sequence_sweep_is_charted_against_sequence_length() {
        let mut inp = sample_inputs();
        inp.profile.configs.retain(|c| c.batch == Some(1));
        for c in &mut inp.profile.configs {
            c.id.push_str(" sequence=16");
            c.dims.insert("sequence".into(), 16);
        }
        let base = inp.profile.configs.clone();
        for (seq, scale) in [(64, 3.0), (128, 7.0)] {
            for c in &base {
                let mut c = c.clone();
                c.id = c.id.replace("sequence=16", &format!("sequence={seq}"));
                c.dims.insert("sequence".into(), seq);
                if let Some(l) = c.latency.as_mut() {
                    l.p50_s *= scale;
                    l.p95_s *= scale;
                }
                inp.profile.configs.push(c);
            }
        }
        let html = render(&inp).unwrap();
        for id in ["latency-sequence", "throughput-sequence", "memory-sequence"] {
            assert!(
                html.contains(&format!("id=\"chart-{id}\"")),
                "no {id} chart"
            );
        }
        assert!(
            !html.contains("id=\"chart-latency\""),
            "batch does not vary"
        );
        assert!(html.contains("sequence length"));
        assert!(!html.contains("measured one batch size"));
        // Batch swept as well: charts against both, series naming the other size.
        let more: Vec<_> = inp
            .profile
            .configs
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.id = c.id.replace("batch=1", "batch=4");
                c.batch = Some(4);
                c
            })
            .collect();
        inp.profile.configs.extend(more);
        let html = render(&inp).unwrap();
        for id in ["latency", "latency-sequence", "memory", "memory-sequence"] {
            assert!(
                html.contains(&format!("id=\"chart-{id}\"")),
                "no {id} chart"
            );
        }
        assert!(
            html.contains("sequence=128"),
            "a batch series names its sequence"
        );
        for n in html.split("data-points=\"").skip(1) {
            let n: usize = n[..n.find('"').unwrap()].parse().unwrap();
            assert!(n >= 2, "a chart with {n} point(s)");
        }
    }

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
