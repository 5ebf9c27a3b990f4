//! `stacking run --timeline FILE.svg`: a Gantt picture of one
//! invocation, drawn from the same spans that tracing exports. One row for
//! the driver, one per trainer (named with its model), one for the reducer
//! and one for the metatrainer; RPCs, fits and storage operations in
//! different colours, with a legend.
//!
//! SVG only: any browser shows it, and `rsvg-convert t.svg -o t.png` makes a
//! PNG. Drawing PNG here took its own glyph renderer and two crates.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use stacking_service::trace::ZipkinSpan;

/// Checks a `--timeline` path before the run: a `.svg` name and a
/// directory that exists and takes the file.
pub fn check_path(path: &Path) -> Result<()> {
    check_name(path)?;
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("--timeline {} cannot be written", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn check_name(path: &Path) -> Result<()> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok(()),
        Some("png") => bail!(
            "--timeline {}: the picture is SVG only (convert it with `rsvg-convert t.svg -o t.png`); \
             the name must end in .svg",
            path.display()
        ),
        _ => bail!(
            "--timeline {}: the name must end in .svg",
            path.display()
        ),
    }
}

/// What each colour means, in legend order.
const KINDS: [(&str, RGBColor); 3] = [
    ("RPCs and steps", RGBColor(52, 101, 164)),
    ("fits", RGBColor(39, 174, 96)),
    ("storage", RGBColor(230, 126, 34)),
];

fn colour(span: &ZipkinSpan) -> RGBColor {
    if span.name.starts_with("storage") {
        KINDS[2].1
    } else if span.name.starts_with("fit") || span.name.starts_with("stack") {
        KINDS[1].1
    } else {
        KINDS[0].1
    }
}

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

/// The spans of one trace, their rows in display order, and each row's label.
struct Layout<'a> {
    trace: Vec<&'a ZipkinSpan>,
    by_id: HashMap<&'a str, &'a ZipkinSpan>,
    rows: Vec<String>,
    labels: Vec<String>,
    t0: u64,
    total_ms: f64,
}

impl<'a> Layout<'a> {
    fn new(spans: &'a [ZipkinSpan]) -> Result<Self> {
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
            let n = r.split(' ').nth(1).and_then(|n| n.parse::<u32>().ok());
            (rank, n.unwrap_or(0))
        });
        rows.dedup();
        // A trainer's row carries its model's name, from its "fit <model>" span.
        let labels = rows
            .iter()
            .map(|row| {
                let model = trace
                    .iter()
                    .filter(|s| row_of(s, &by_id) == *row)
                    .find_map(|s| s.name.strip_prefix("fit "));
                match model {
                    Some(m) if row.starts_with("trainer") => format!("{row} - {m}"),
                    _ => row.clone(),
                }
            })
            .collect();
        Ok(Self {
            t0: root.timestamp,
            total_ms: root.duration as f64 / 1e3,
            trace,
            by_id,
            rows,
            labels,
        })
    }

    /// Nesting depth within the span's own row: deeper spans draw thinner.
    fn depth(&self, s: &ZipkinSpan) -> usize {
        let mut d = 0;
        let mut cur = s.parent_id.as_deref();
        while let Some(p) = cur.and_then(|p| self.by_id.get(p)) {
            if row_of(p, &self.by_id) != row_of(s, &self.by_id) {
                break;
            }
            d += 1;
            cur = p.parent_id.as_deref();
        }
        d
    }

    fn size(&self) -> (u32, u32) {
        (1100, 150 + 60 * self.rows.len() as u32)
    }
}

/// Draws the spans of the trace rooted at the first `SayHello` span to
/// `path` as SVG.
pub fn write(path: &Path, spans: &[ZipkinSpan], title: &str) -> Result<()> {
    check_name(path)?;
    let layout = Layout::new(spans)?;
    let size = layout.size();
    draw(
        &SVGBackend::new(path, size).into_drawing_area(),
        &layout,
        title,
    )
    .map_err(|e| anyhow!("{e}"))
    .with_context(|| format!("drawing {}", path.display()))
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    layout: &Layout<'_>,
    title: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let rows = &layout.rows;
    let height = layout.size().1;
    let widest = layout.labels.iter().map(|l| l.len()).max().unwrap_or(8) as u32;
    area.fill(&WHITE)?;
    let (plot, legend) = area.split_vertically(height.saturating_sub(34));
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(20 + 8 * widest)
        .build_cartesian_2d(0.0..layout.total_ms * 1.02, 0.0..rows.len() as f64)?;
    chart
        .configure_mesh()
        .x_desc("ms since SayHello started")
        .y_labels(rows.len() * 2 + 1)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y - i as f64 - 0.5).abs() < 0.26 {
                layout
                    .labels
                    .get(rows.len().saturating_sub(i + 1))
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .disable_y_mesh()
        .draw()?;
    // Sub-millisecond spans (storage with the in-memory store) still get a
    // visible sliver.
    let min_width = layout.total_ms * 0.004;
    let mut ordered = layout.trace.clone();
    ordered.sort_by_key(|s| layout.depth(s));
    for s in ordered {
        let row_name = row_of(s, &layout.by_id);
        let row = rows.iter().position(|r| *r == row_name).unwrap_or(0);
        let y = (rows.len() - row - 1) as f64;
        let d = layout.depth(s).min(3);
        let shrink = 0.12 * d as f64;
        let x0 = s.timestamp.saturating_sub(layout.t0) as f64 / 1e3;
        let x1 = x0 + (s.duration as f64 / 1e3).max(min_width);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x0, y + 0.1 + shrink), (x1, y + 0.9 - shrink)],
            colour(s).mix(0.3 + 0.2 * d as f64).filled(),
        )))?;
    }
    // The legend: a swatch of each colour and what it means.
    let mut x = 30 + 8 * widest as i32;
    for (name, c) in KINDS {
        legend.draw(&Rectangle::new([(x, 8), (x + 14, 22)], c.mix(0.7).filled()))?;
        legend.draw(&Text::new(name, (x + 20, 10), ("sans-serif", 14)))?;
        x += 40 + 8 * name.len() as i32;
    }
    area.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        check_path(&dir.path().join("t.svg")).unwrap();
        check_path(&dir.path().join("t.SVG")).unwrap();
        let e = check_path(&dir.path().join("t.PNG")).unwrap_err();
        assert!(e.to_string().contains("SVG only"), "{e}");
        assert!(
            !dir.path().join("t.svg").exists(),
            "the probe leaves nothing"
        );
        let e = check_path(&dir.path().join("t.jpg")).unwrap_err();
        assert!(e.to_string().contains("must end in .svg"), "{e}");
        let e = check_path(&dir.path().join("missing/t.svg")).unwrap_err();
        assert!(e.to_string().contains("cannot be written"), "{e}");
    }
}
