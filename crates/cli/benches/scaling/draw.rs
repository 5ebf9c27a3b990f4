//! The scaling curve as an SVG: four panels, time and peak RSS against rows
//! and against trainers, ours beside scikit-learn's.

use std::path::Path;

use plotters::prelude::*;

use super::{Point, ROLES};

/// 1, 2 and 5 times the powers of ten within `range`: labels for a log axis
/// that spans less than a decade too.
fn key_points(range: &std::ops::Range<f64>) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(range.start.log10().floor());
    while decade <= range.end {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if range.contains(&v) {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

pub type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Four panels: time and peak RSS against rows, and against trainers.
pub fn draw(path: &Path, by_rows: &[Point], by_trainers: &[Point], transfer: &str) -> DrawResult {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let root = SVGBackend::new(path, (1100, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((2, 2));
    let colours = [BLUE, RED, GREEN, MAGENTA, BLACK];
    let series = |points: &[Point], x: fn(&Point) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        let mut out = vec![
            (
                "stacking (SayHello)".to_string(),
                points
                    .iter()
                    .filter_map(|p| Some((x(p), p.seconds?)))
                    .collect(),
            ),
            (
                "scikit-learn (same stack)".to_string(),
                points
                    .iter()
                    .filter_map(|p| Some((x(p), p.sklearn_s?)))
                    .collect::<Vec<_>>(),
            ),
        ];
        out.retain(|(_, v)| !v.is_empty());
        out
    };
    let rss = |points: &[Point], x: fn(&Point) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        ROLES
            .iter()
            .map(|role| {
                (
                    role.to_string(),
                    points
                        .iter()
                        .filter(|p| p.seconds.is_some())
                        .filter_map(|p| {
                            let v = p.peak.iter().find(|(r, _)| r == role)?.1;
                            v.is_finite().then_some((x(p), v))
                        })
                        .collect(),
                )
            })
            .collect()
    };
    let rows_x: fn(&Point) -> f64 = |p| p.rows as f64;
    let trainers_x: fn(&Point) -> f64 = |p| p.trainers as f64;
    let plots = [
        (
            format!("time, 4 trainers sequential, {transfer}"),
            "rows (x 1024 features)",
            "seconds",
            series(by_rows, rows_x),
        ),
        (
            format!("peak RSS per function, {transfer}"),
            "rows (x 1024 features)",
            "MiB",
            rss(by_rows, rows_x),
        ),
        (
            format!("time, 300 x 1024, trainers concurrent, {transfer}"),
            "trainers",
            "seconds",
            series(by_trainers, trainers_x),
        ),
        (
            format!("peak RSS per function, {transfer}"),
            "trainers",
            "MiB",
            rss(by_trainers, trainers_x),
        ),
    ];
    for (panel, (title, x_desc, y_desc, lines)) in panels.iter().zip(plots) {
        let all: Vec<(f64, f64)> = lines.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        if all.is_empty() {
            continue;
        }
        let bounds = |f: fn(&(f64, f64)) -> f64| {
            let lo = all.iter().map(f).fold(f64::INFINITY, f64::min);
            let hi = all.iter().map(f).fold(0.0, f64::max);
            (lo * 0.7).max(1e-3)..(hi * 1.4).max(lo * 2.0)
        };
        let (x_range, y_range) = (bounds(|p| p.0), bounds(|p| p.1));
        let (x_keys, y_keys) = (key_points(&x_range), key_points(&y_range));
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(
                x_range.log_scale().with_key_points(x_keys),
                y_range.log_scale().with_key_points(y_keys),
            )?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y >= 1.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.2}")
                }
            })
            .light_line_style(WHITE)
            .draw()?;
        for ((name, points), colour) in lines.into_iter().zip(colours) {
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, colour.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
