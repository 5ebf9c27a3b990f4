//! The invoker's latency histogram as an SVG picture.

use std::path::Path;

use anyhow::{Context as _, Result};
use plotters::prelude::*;

/// Bars of completed-request latencies (milliseconds), 30 bins.
pub fn write_svg(path: &Path, sorted_us: &[u64]) -> Result<()> {
    let ms: Vec<f64> = sorted_us.iter().map(|&u| u as f64 / 1e3).collect();
    let (lo, hi) = match (ms.first(), ms.last()) {
        (Some(&lo), Some(&hi)) => (lo, hi.max(lo + 1e-3)),
        _ => (0.0, 1.0),
    };
    const BINS: usize = 30;
    let width = (hi - lo) / BINS as f64;
    let mut counts = [0u32; BINS];
    for v in &ms {
        counts[(((v - lo) / width) as usize).min(BINS - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("SayHello latency, {} requests", ms.len()),
                ("sans-serif", 22),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0u32..top + top / 10 + 1)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms)")
            .y_desc("requests")
            .disable_x_mesh()
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x0 = lo + i as f64 * width;
            Rectangle::new([(x0, 0), (x0 + width, c)], BLUE.mix(0.6).filled())
        }))?;
        root.present()?;
        Ok(())
    };
    draw()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("drawing {}", path.display()))
}
