//! Charts of a profile, drawn with `plotters` into SVG strings that the HTML report
//! inlines (no images to fetch, no script to run). Each function takes plain series and
//! returns one `<svg>` element.

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Chart size in pixels (the SVG scales with the page).
pub const SIZE: (u32, u32) = (720, 380);

/// One line of a chart: a label and its (x, y) points, sorted by x.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (e.g. p95 next to a solid p50 of the same colour).
    pub dashed: bool,
    /// Index into the palette, so related series share a colour.
    pub color: usize,
}

/// A horizontal reference line (e.g. a target's RAM).
#[derive(Clone, Debug, PartialEq)]
pub struct HLine {
    pub label: String,
    pub y: f64,
}

/// How an axis maps values and prints ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Axis {
    Linear,
    Log,
}

/// Axis titles, tick formatting and scale of a line chart.
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x_axis: Axis,
    pub y_axis: Axis,
    /// Prints a y value (in the series' units) as a tick label.
    pub y_fmt: &'a dyn Fn(f64) -> String,
    /// The x axis counts things (batch, threads, sequence length): ticks only at integers.
    pub x_integer: bool,
}

/// Colour-blind-safe palette (Okabe & Ito, "Color Universal Design", 2008).
pub fn color(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(120, 120, 120),
        RGBColor(240, 228, 66),
    ];
    P[i % P.len()]
}

/// Colours of reference lines, distinct from the series palette.
pub fn line_color(i: usize) -> RGBColor {
    const P: [RGBColor; 5] = [
        RGBColor(170, 51, 119),
        RGBColor(34, 136, 51),
        RGBColor(102, 37, 6),
        RGBColor(68, 119, 170),
        RGBColor(187, 187, 0),
    ];
    P[i % P.len()]
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::usage("report plot", e.to_string())
}

/// Value range over all series and lines, padded; `None` when there is nothing to plot.
fn extent(values: impl Iterator<Item = f64>, axis: Axis) -> Option<Range<f64>> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (axis == Axis::Linear || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return None;
    }
    Some(match axis {
        Axis::Log => {
            let (lo, hi) = if hi / lo < 1.5 {
                (lo / 1.3, hi * 1.3)
            } else {
                (lo, hi)
            };
            lo / 1.15..hi * 1.15
        }
        Axis::Linear => {
            let pad = if hi > lo {
                (hi - lo) * 0.08
            } else {
                hi.abs().max(1.0) * 0.1
            };
            (lo - pad).min(if lo >= 0.0 { 0.0 } else { lo - pad })..hi + pad
        }
    })
}

/// A line chart with markers, optional dashed series and horizontal reference lines.
///
/// `None` when there is nothing to plot or the series hold fewer than two x positions in
/// all: one configuration is a number, not a chart.
pub fn line_chart(spec: &LineChart, series: &[Series], lines: &[HLine]) -> Result<Option<String>> {
    if distinct_x(series) < 2 {
        return Ok(None);
    }
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(lines.iter().map(|l| l.y));
    let (Some(mut xr), Some(mut yr)) = (extent(xs, spec.x_axis), extent(ys, spec.y_axis)) else {
        return Ok(None);
    };
    if spec.x_axis == Axis::Linear && xr.start < 0.0 {
        xr.start = 0.0;
    }
    // Headroom for the legend (upper left), so it does not cover the data: about one
    // legend row per 9% of the height.
    let entries = series.len() + lines.len();
    let room = (1.0 + 0.09 * entries as f64).min(2.0);
    yr.end = match spec.y_axis {
        Axis::Linear => yr.start + (yr.end - yr.start) * room,
        Axis::Log => yr.start * (yr.end / yr.start).powf(room),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        match (spec.x_axis, spec.y_axis) {
            (Axis::Linear, Axis::Linear) => draw_lines(&root, spec, xr, yr, series, lines)?,
            (Axis::Log, Axis::Linear) => {
                draw_lines(&root, spec, xr.log_scale(), yr, series, lines)?
            }
            (Axis::Linear, Axis::Log) => {
                draw_lines(&root, spec, xr, yr.log_scale(), series, lines)?
            }
            (Axis::Log, Axis::Log) => {
                draw_lines(&root, spec, xr.log_scale(), yr.log_scale(), series, lines)?
            }
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Some(svg))
}

fn draw_lines<X, Y>(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    spec: &LineChart,
    xr: X,
    yr: Y,
    series: &[Series],
    lines: &[HLine],
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(spec.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(76)
        .build_cartesian_2d(xr, yr)
        .map_err(plot_err)?;
    let y_fmt = spec.y_fmt;
    chart
        .configure_mesh()
        .x_desc(spec.x_desc)
        .y_desc(spec.y_desc)
        .x_label_formatter(&|x: &f64| {
            if spec.x_integer && (x - x.round()).abs() > 1e-9 {
                String::new()
            } else {
                trim_number(*x)
            }
        })
        .y_label_formatter(&|y: &f64| y_fmt(*y))
        .light_line_style(RGBColor(240, 240, 240))
        .max_light_lines(2)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    let x_range = chart.x_range();
    for (i, l) in lines.iter().enumerate() {
        let c = line_color(i);
        let style = ShapeStyle::from(c).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                [(x_range.start, l.y), (x_range.end, l.y)],
                8,
                5,
                style,
            ))
            .map_err(plot_err)?
            .label(l.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    for s in series {
        let c = color(s.color);
        let style = ShapeStyle::from(c).stroke_width(2);
        if s.dashed {
            chart
                .draw_series(DashedLineSeries::new(s.points.iter().copied(), 6, 4, style))
                .map_err(plot_err)?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&p| TriangleMarker::new(p, 4, ShapeStyle::from(c).filled())),
                )
                .map_err(plot_err)?;
        } else {
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(plot_err)?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&p| Circle::new(p, 3, ShapeStyle::from(c).filled())),
                )
                .map_err(plot_err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// A horizontal bar chart of shares (0..1) with a label per bar, largest first.
pub fn share_bars(title: &str, bars: &[(String, f64)]) -> Result<Option<String>> {
    if bars.is_empty() {
        return Ok(None);
    }
    let n = bars.len();
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(0.01) * 1.1;
    let height = (60 + 26 * n as u32).max(200);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart: ChartContext<'_, _, Cartesian2d<RangedCoordf64, RangedCoordf64>> =
            ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(170)
                .build_cartesian_2d(0.0..max, 0.0..n as f64)
                .map_err(plot_err)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&|y: &f64| {
                // Labels sit at bar centres (k + 0.5), counted from the top.
                let k = y - 0.5;
                if (k - k.round()).abs() < 1e-6 && k >= 0.0 && (k.round() as usize) < names.len() {
                    let name = &names[names.len() - 1 - k.round() as usize];
                    if name.chars().count() > 24 {
                        format!("{}…", name.chars().take(23).collect::<String>())
                    } else {
                        name.clone()
                    }
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&|x: &f64| format!("{:.0}%", x * 100.0))
            .x_desc("share of run time")
            .light_line_style(RGBColor(235, 235, 235))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, share))| {
                let y = (n - 1 - i) as f64;
                Rectangle::new([(0.0, y + 0.15), (*share, y + 0.85)], color(0).filled())
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, share))| {
                let y = (n - 1 - i) as f64;
                Text::new(
                    format!("{:.1}%", share * 100.0),
                    (*share + max * 0.01, y + 0.5),
                    ("sans-serif", 12).into_font().color(&BLACK),
                )
            }))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(Some(svg))
}

/// Escape text for SVG (XML) content and attributes.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One bar of a [`limit_bars`] chart: a value as a share of its limit, with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitBar {
    /// value / limit (1.0 is at the limit).
    pub share: f64,
    /// Printed at the bar's end (e.g. "412 ms of 500 ms").
    pub label: String,
}

/// One row of a [`limit_bars`] chart: a name and up to two bars (latency, memory).
#[derive(Clone, Debug, PartialEq)]
pub struct LimitRow {
    pub name: String,
    pub detail: String,
    pub bars: [Option<LimitBar>; 2],
    /// Said in place of a bar that is not there (e.g. "no variant fits").
    pub missing: String,
}

/// Horizontal bars of each row's figures as a share of their limits, with the limit (100%)
/// marked: what is within budget reads at a glance, whatever the units. The axis is
/// logarithmic when the shares span more than a factor of 20.
pub fn limit_bars(names: [&str; 2], rows: &[LimitRow]) -> Option<String> {
    let shares: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.bars.iter().flatten().map(|b| b.share))
        .filter(|s| s.is_finite() && *s > 0.0)
        .collect();
    if shares.is_empty() {
        return None;
    }
    let lo = shares
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(1.0);
    let hi = shares.iter().copied().fold(0.0, f64::max).max(1.0);
    let log = hi / lo > 20.0;
    let (x0, x1) = if log {
        (
            10f64.powf((lo.log10() - 0.1).floor()),
            10f64.powf((hi.log10() + 0.1).ceil()),
        )
    } else {
        (0.0, (hi * 1.15).max(1.2))
    };
    let (w, left, right) = (1000.0, 230.0, 250.0);
    let plot_w = w - left - right;
    let pos = |s: f64| -> f64 {
        let s = s.clamp(x0, x1);
        let f = if log {
            (s.log10() - x0.log10()) / (x1.log10() - x0.log10())
        } else {
            (s - x0) / (x1 - x0)
        };
        left + f * plot_w
    };
    let row_h = 56.0;
    let top = 34.0;
    let h = top + row_h * rows.len() as f64 + 40.0;
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         font-family=\"sans-serif\" font-size=\"13\">"
    );
    // Legend.
    for (i, n) in names.iter().enumerate() {
        let c = color(if i == 0 { 0 } else { 2 });
        let x = left + i as f64 * 220.0;
        o.push_str(&format!(
            "<rect x=\"{x}\" y=\"8\" width=\"14\" height=\"12\" fill=\"rgb({},{},{})\"/>\
             <text x=\"{}\" y=\"19\">{}</text>",
            c.0,
            c.1,
            c.2,
            x + 20.0,
            xml(n)
        ));
    }
    // Ticks.
    let ticks: Vec<f64> = if log {
        let mut t = vec![];
        let mut v = x0;
        while v <= x1 * 1.0001 {
            t.push(v);
            v *= 10.0;
        }
        t
    } else {
        let step = if x1 > 3.0 { 1.0 } else { 0.25 };
        (0..)
            .map(|k| k as f64 * step)
            .take_while(|v| *v <= x1 + 1e-9)
            .collect()
    };
    let base = top + row_h * rows.len() as f64;
    for t in ticks {
        let x = pos(t);
        o.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{base}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            base + 16.0,
            super::format::percent(t)
        ));
    }
    let lx = pos(1.0);
    o.push_str(&format!(
        "<line x1=\"{lx:.1}\" y1=\"{}\" x2=\"{lx:.1}\" y2=\"{base}\" stroke=\"#b3261e\" \
         stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\
         <text x=\"{lx:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#b3261e\">limit</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">share of the target's limit{}</text>",
        top - 4.0,
        base + 34.0,
        left + plot_w / 2.0 + 60.0,
        base + 34.0,
        if log { " (log scale)" } else { "" }
    ));
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        o.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-weight=\"600\">{}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            left - 10.0,
            y + 24.0,
            xml(&r.name),
            left - 10.0,
            y + 41.0,
            xml(&r.detail)
        ));
        for (k, b) in r.bars.iter().enumerate() {
            let by = y + 6.0 + k as f64 * 22.0;
            let Some(b) = b else {
                o.push_str(&format!(
                    "<text x=\"{}\" y=\"{}\" fill=\"#b3261e\">{}: {}</text>",
                    left + 4.0,
                    by + 14.0,
                    xml(names[k]),
                    xml(&r.missing)
                ));
                continue;
            };
            let c = if b.share > 1.0 {
                RGBColor(179, 38, 30)
            } else {
                color(if k == 0 { 0 } else { 2 })
            };
            let x_end = pos(b.share.max(x0));
            o.push_str(&format!(
                "<rect x=\"{left}\" y=\"{by}\" width=\"{:.1}\" height=\"18\" rx=\"2\" \
                 fill=\"rgb({},{},{})\" data-share=\"{:.4}\"/>\
                 <text x=\"{:.1}\" y=\"{}\">{}</text>",
                (x_end - left).max(1.0),
                c.0,
                c.1,
                c.2,
                b.share,
                x_end + 6.0,
                by + 14.0,
                xml(&b.label)
            ));
        }
    }
    o.push_str("</svg>");
    Some(o)
}

/// One cell of a [`fit_grid`].
#[derive(Clone, Debug, PartialEq)]
pub struct GridCell {
    pub fits: bool,
    pub chosen: bool,
    /// Up to two short lines (e.g. "p50 412 ms", "150 MB").
    pub lines: Vec<String>,
    /// Shown on hover: why it does not fit.
    pub title: String,
}

/// Every variant (columns) on every target (rows) as coloured cells: green fits, red does
/// not, the chosen one outlined; `None` cells were not evaluated.
pub fn fit_grid(
    rows: &[String],
    cols: &[String],
    cells: &[Vec<Option<GridCell>>],
) -> Option<String> {
    if rows.is_empty() || cols.is_empty() {
        return None;
    }
    let left = 210.0;
    let cw = ((1000.0 - left) / cols.len() as f64).min(190.0);
    let ch = 52.0;
    let top = 30.0;
    let w = left + cw * cols.len() as f64 + 10.0;
    let h = top + ch * rows.len() as f64 + 8.0;
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         font-family=\"sans-serif\" font-size=\"13\">"
    );
    for (j, c) in cols.iter().enumerate() {
        o.push_str(&format!(
            "<text x=\"{:.1}\" y=\"20\" text-anchor=\"middle\" font-weight=\"600\">{}</text>",
            left + cw * (j as f64 + 0.5),
            xml(c)
        ));
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + ch * i as f64;
        o.push_str(&format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 10.0,
            y + ch / 2.0 + 4.0,
            xml(r)
        ));
        for (j, cell) in cells.get(i).into_iter().flatten().enumerate() {
            let x = left + cw * j as f64;
            match cell {
                None => o.push_str(&format!(
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f0f3f7\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#6b7684\">not evaluated</text>",
                    x + 2.0, y + 2.0, cw - 4.0, ch - 4.0, x + cw / 2.0, y + ch / 2.0 + 4.0
                )),
                Some(c) => {
                    let (fill, ink) = if c.fits { ("#d7f0e0", "#0a5c2f") } else { ("#f8dcd9", "#8c1d16") };
                    let stroke = if c.chosen {
                        " stroke=\"#1d2430\" stroke-width=\"3\""
                    } else {
                        ""
                    };
                    let mark = match (c.chosen, c.fits) {
                        (true, _) => "★ chosen",
                        (false, true) => "✓ fits",
                        (false, false) => "✗ no",
                    };
                    o.push_str(&format!(
                        "<g class=\"cell\"><title>{}</title><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                         height=\"{:.1}\" rx=\"4\" fill=\"{fill}\"{stroke}/>\
                         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{ink}\" font-weight=\"600\">{mark}</text>\
                         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\" font-size=\"12\">{}</text></g>",
                        xml(&c.title),
                        x + 2.0, y + 2.0, cw - 4.0, ch - 4.0,
                        x + cw / 2.0, y + 20.0,
                        x + cw / 2.0, y + 38.0,
                        xml(&c.lines.join(" · "))
                    ));
                }
            }
        }
    }
    o.push_str("</svg>");
    Some(o)
}

/// One point of [`pareto_scatter`]: a variant's latency, accuracy and size.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantPoint {
    pub name: String,
    pub latency_s: f64,
    /// SQNR against fp32; `None` is the reference itself (drawn at the top).
    pub sqnr_db: Option<f64>,
    pub size_bytes: u64,
}

/// The variants on the Pareto front: none other is both faster and more accurate.
pub fn pareto_front(points: &[VariantPoint]) -> Vec<usize> {
    let acc = |p: &VariantPoint| p.sqnr_db.unwrap_or(f64::INFINITY);
    (0..points.len())
        .filter(|&i| {
            !points.iter().enumerate().any(|(j, q)| {
                j != i
                    && q.latency_s <= points[i].latency_s
                    && acc(q) >= acc(&points[i])
                    && (q.latency_s < points[i].latency_s || acc(q) > acc(&points[i]))
            })
        })
        .collect()
}

/// Accuracy against latency, one point per variant, marker area by size, the Pareto front
/// joined by a dashed line and drawn filled (others hollow). `None` with fewer than two
/// points.
pub fn pareto_scatter(points: &[VariantPoint]) -> Result<Option<String>> {
    if points.len() < 2 {
        return Ok(None);
    }
    let finite: Vec<f64> = points
        .iter()
        .filter_map(|p| p.sqnr_db)
        .filter(|d| d.is_finite())
        .collect();
    let (ylo, yhi) = if finite.is_empty() {
        (0.0, 40.0)
    } else {
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        ((lo - 5.0).max(0.0).floor(), hi + 5.0)
    };
    // The reference (fp32, exact) sits in a band above the measured ones.
    let y_ref = yhi + (yhi - ylo) * 0.12 + 2.0;
    let y_of = |p: &VariantPoint| match p.sqnr_db {
        Some(d) if d.is_finite() => d,
        _ => y_ref,
    };
    let xs: Vec<f64> = points.iter().map(|p| p.latency_s).collect();
    let xlo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let xhi = xs.iter().copied().fold(0.0, f64::max);
    let log_x = xlo > 0.0 && xhi / xlo > 8.0;
    let (x0, x1) = if log_x {
        (xlo / 1.4, xhi * 1.4)
    } else {
        let pad = ((xhi - xlo) * 0.15).max(xhi * 0.05);
        ((xlo - pad).max(0.0), xhi + pad * 2.0)
    };
    let max_size = points
        .iter()
        .map(|p| p.size_bytes)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let radius = |p: &VariantPoint| 5.0 + 17.0 * (p.size_bytes as f64 / max_size).sqrt();
    let front = pareto_front(points);
    let mut front_pts: Vec<(f64, f64)> = front
        .iter()
        .map(|&i| (points[i].latency_s, y_of(&points[i])))
        .collect();
    front_pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let ms = |x: &f64| format!("{} ms", trim_number(x * 1e3));
        let db = |y: &f64| {
            if *y > yhi + 0.5 {
                String::new()
            } else {
                format!("{} dB", trim_number(*y))
            }
        };
        macro_rules! draw {
            ($xr:expr) => {{
                let mut chart = ChartBuilder::on(&root)
                    .caption(
                        "Accuracy against latency on this host (marker area: size)",
                        ("sans-serif", 20),
                    )
                    .margin(14)
                    .x_label_area_size(44)
                    .y_label_area_size(70)
                    .build_cartesian_2d($xr, ylo..y_ref + (y_ref - ylo) * 0.08)
                    .map_err(plot_err)?;
                chart
                    .configure_mesh()
                    .x_desc("p50 latency at batch 1 (this host, fastest thread count)")
                    .y_desc("worst-output SQNR vs fp32")
                    .x_label_formatter(&ms)
                    .y_label_formatter(&db)
                    .light_line_style(RGBColor(240, 240, 240))
                    .max_light_lines(2)
                    .label_style(("sans-serif", 13))
                    .axis_desc_style(("sans-serif", 14))
                    .draw()
                    .map_err(plot_err)?;
                let style = ShapeStyle::from(color(6)).stroke_width(2);
                chart
                    .draw_series(DashedLineSeries::new(
                        front_pts.iter().copied(),
                        7,
                        5,
                        style,
                    ))
                    .map_err(plot_err)?
                    .label("Pareto front (nothing else is both faster and more accurate)")
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                for (i, p) in points.iter().enumerate() {
                    let c = color(i);
                    let on_front = front.contains(&i);
                    let st = if on_front {
                        ShapeStyle::from(c.mix(0.75)).filled()
                    } else {
                        ShapeStyle::from(c).stroke_width(3)
                    };
                    let at = (p.latency_s, y_of(p));
                    let r = radius(p) as i32;
                    chart
                        .draw_series(std::iter::once(Circle::new(at, r, st)))
                        .map_err(plot_err)?;
                    let label = if p.sqnr_db.is_some_and(f64::is_finite) {
                        p.name.clone()
                    } else {
                        format!("{} (reference)", p.name)
                    };
                    chart
                        .draw_series(std::iter::once(
                            EmptyElement::at(at)
                                + Text::new(
                                    label,
                                    (r + 4, -6),
                                    ("sans-serif", 14).into_font().color(&BLACK),
                                ),
                        ))
                        .map_err(plot_err)?;
                }
            }};
        }
        if log_x {
            draw!((x0..x1).log_scale());
        } else {
            draw!(x0..x1);
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Some(svg))
}

/// How many different x values the series hold together.
pub fn distinct_x(series: &[Series]) -> usize {
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|x| x.is_finite())
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs.len()
}

/// `4`, `2.5`, `0.125`: a tick value without trailing zeros.
pub fn trim_number(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: f64) -> String {
        format!("{:.1} ms", y * 1e3)
    }

    #[test]
    fn line_chart_draws_series_labels_and_reference_lines_as_svg() {
        let spec = LineChart {
            title: "latency",
            x_desc: "batch",
            y_desc: "latency",
            x_axis: Axis::Log,
            y_axis: Axis::Linear,
            y_fmt: &ms,
            x_integer: true,
        };
        let s = vec![
            Series {
                label: "p50 threads=1".into(),
                points: vec![(1.0, 0.010), (2.0, 0.019), (4.0, 0.037)],
                dashed: false,
                color: 0,
            },
            Series {
                label: "p95 threads=1".into(),
                points: vec![(1.0, 0.012), (2.0, 0.021), (4.0, 0.041)],
                dashed: true,
                color: 0,
            },
        ];
        let svg = line_chart(
            &spec,
            &s,
            &[HLine {
                label: "budget".into(),
                y: 0.03,
            }],
        )
        .unwrap()
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        for needle in [
            "p50 threads=1",
            "p95 threads=1",
            "budget",
            "batch",
            "<polyline",
        ] {
            assert!(svg.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn nothing_to_plot_gives_no_chart() {
        let spec = LineChart {
            title: "t",
            x_desc: "x",
            y_desc: "y",
            x_axis: Axis::Linear,
            y_axis: Axis::Log,
            y_fmt: &ms,
            x_integer: true,
        };
        assert_eq!(line_chart(&spec, &[], &[]).unwrap(), None);
        assert_eq!(share_bars("ops", &[]).unwrap(), None);
    }

    #[test]
    fn a_single_x_position_is_not_a_chart() {
        let spec = LineChart {
            title: "t",
            x_desc: "x",
            y_desc: "y",
            x_axis: Axis::Log,
            y_axis: Axis::Log,
            y_fmt: &ms,
            x_integer: true,
        };
        let s = [
            Series {
                label: "one".into(),
                points: vec![(1.0, 0.01)],
                dashed: false,
                color: 1,
            },
            Series {
                label: "two".into(),
                points: vec![(1.0, 0.02)],
                dashed: false,
                color: 2,
            },
        ];
        assert!(line_chart(&spec, &s, &[]).unwrap().is_none());
    }

    #[test]
    fn share_bars_label_every_bar() {
        let svg = share_bars(
            "ops",
            &[
                ("Conv".into(), 0.62),
                ("Relu".into(), 0.2),
                ("Add".into(), 0.05),
            ],
        )
        .unwrap()
        .unwrap();
        for needle in ["Conv", "Relu", "Add", "62.0%"] {
            assert!(svg.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn trims_tick_numbers() {
        assert_eq!(trim_number(4.0), "4");
        assert_eq!(trim_number(2.5), "2.5");
        assert_eq!(trim_number(-0.0001), "0");
    }
}
