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
pub fn line_chart(spec: &LineChart, series: &[Series], lines: &[HLine]) -> Result<Option<String>> {
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
        .x_label_formatter(&|x: &f64| trim_number(*x))
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
        };
        assert_eq!(line_chart(&spec, &[], &[]).unwrap(), None);
        assert_eq!(share_bars("ops", &[]).unwrap(), None);
    }

    #[test]
    fn single_point_still_plots() {
        let spec = LineChart {
            title: "t",
            x_desc: "x",
            y_desc: "y",
            x_axis: Axis::Log,
            y_axis: Axis::Log,
            y_fmt: &ms,
        };
        let s = [Series {
            label: "one".into(),
            points: vec![(1.0, 0.01)],
            dashed: false,
            color: 1,
        }];
        assert!(line_chart(&spec, &s, &[]).unwrap().is_some());
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
