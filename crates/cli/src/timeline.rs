//! `stacking run --timeline FILE.svg`: a Gantt picture of one invocation,
//! drawn from the same spans that tracing exports. One row for the driver,
//! one per trainer, one for the reducer and one for the metatrainer; RPCs,
//! fits and storage operations in different colours.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use plotters::prelude::*;
use stacking_service::trace::ZipkinSpan;

/// Which row a span belongs to: its service, and for trainer spans the
/// trainer id tagged on the enclosing Train span.
fn row_of(span: &ZipkinSpan, by_id: &HashMap<&str, &ZipkinSpan>) -> String {
    let service = span.local_endpoint.service_name.as_str();
    if service != "trainer" {
        return service.to_string();
    }
    let mut cur = Some(span);
    while let Some(s) = cur {
        if let Some(id) = s.tags.get("trainer_id") {
            return format!("trainer {id}");
        }
        cur = s.parent_id.as_deref().and_then(|p| by_id.get(p).copied());
    }
    "trainer".into()
}

fn colour(span: &ZipkinSpan) -> RGBColor {
    if span.name.starts_with("storage") {
        RGBColor(230, 126, 34) // storage: orange
    } else if span.name.starts_with("fit") || span.name.starts_with("stack") {
        RGBColor(39, 174, 96) // compute: green
    } else {
        RGBColor(52, 101, 164) // RPCs and steps: blue
    }
}

/// Draws the spans of the (first) trace rooted at a `SayHello` span.
pub fn write_svg(path: &Path, spans: &[ZipkinSpan], title: &str) -> Result<()> {
    let root = spans
        .iter()
        .find(|s| s.name == "SayHello" && s.parent_id.is_none())
        .ok_or_else(|| anyhow!("no SayHello span recorded"))?;
    let trace: Vec<&ZipkinSpan> = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .collect();
    let by_id: HashMap<&str, &ZipkinSpan> = trace.iter().map(|s| (s.id.as_str(), *s)).collect();
    let mut rows: Vec<String> = trace.iter().map(|s| row_of(s, &by_id)).collect();
    rows.sort_by_key(|r| {
        let rank = match r.split(' ').next() {
            Some("driver") => 0,
            Some("trainer") => 1,
            Some("reducer") => 2,
            _ => 3,
        };
        (
            rank,
            r.split(' ')
                .nth(1)
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    rows.dedup();
    let t0 = root.timestamp;
    let total_ms = root.duration as f64 / 1e3;
    let height = 120 + 60 * rows.len() as u32;
    let area = SVGBackend::new(path, (1100, height)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        area.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..total_ms * 1.02, 0.0..rows.len() as f64)?;
        chart
            .configure_mesh()
            .x_desc("ms since SayHello started")
            .y_labels(rows.len() * 2 + 1)
            .y_label_formatter(&|y| {
                let i = y.floor() as usize;
                if (y - i as f64 - 0.5).abs() < 0.26 {
                    rows.get(rows.len().saturating_sub(i + 1))
                        .cloned()
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .disable_y_mesh()
            .draw()?;
        // Deeper spans are drawn thinner, on top of their parents.
        let depth = |s: &ZipkinSpan| {
            let mut d = 0;
            let mut cur = s.parent_id.as_deref();
            while let Some(p) = cur.and_then(|p| by_id.get(p)) {
                if row_of(p, &by_id) != row_of(s, &by_id) {
                    break;
                }
                d += 1;
                cur = p.parent_id.as_deref();
            }
            d
        };
        let mut ordered = trace.clone();
        ordered.sort_by_key(|s| depth(s));
        for s in ordered {
            let row = rows
                .iter()
                .position(|r| *r == row_of(s, &by_id))
                .unwrap_or(0);
            let y = (rows.len() - row - 1) as f64;
            let d = depth(s).min(3);
            let shrink = 0.12 * d as f64;
            let x0 = s.timestamp.saturating_sub(t0) as f64 / 1e3;
            let x1 = x0 + s.duration as f64 / 1e3;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, y + 0.1 + shrink), (x1, y + 0.9 - shrink)],
                colour(s).mix(0.3 + 0.2 * d as f64).filled(),
            )))?;
        }
        area.draw(&Text::new(
            "blue: RPCs and steps   green: fits   orange: storage",
            (130, height as i32 - 18),
            ("sans-serif", 14),
        ))?;
        area.present()?;
        Ok(())
    };
    draw()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("drawing {}", path.display()))
}
