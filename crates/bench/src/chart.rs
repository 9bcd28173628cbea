//! The scale chart: decision latency and memory against store size, drawn
//! as SVG (plotters, no font files needed) from measured [`ScalePoint`]s.

use std::path::Path;

use plotters::prelude::*;

use super::scale::ScalePoint;

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

/// Draws `points` (sorted by size) into an SVG file at `path`.
pub fn draw_scale_chart(points: &[ScalePoint], path: &Path) -> Result<(), ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError(e.to_string());
    if points.is_empty() {
        return Err(ChartError("no measurements".to_string()));
    }
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 2));
    let min_size = points.iter().map(|p| p.entities).min().unwrap_or(1) as f64;
    let max_size = points.iter().map(|p| p.entities).max().unwrap_or(1) as f64;
    let x_range = (min_size / 2.0)..(max_size * 2.0);

    // Medians only: p99 on a shared machine is scheduler noise (it is in
    // the table of BENCHMARKS.md) and would flatten the line that matters.
    let latency_max = points
        .iter()
        .map(|p| p.decide_p50_us)
        .fold(1.0_f64, f64::max)
        * 2.0;
    if let Some(left) = panels.first() {
        let mut chart = ChartBuilder::on(left)
            .caption(
                "One decision (slice + Cedar), median us",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x_range.clone().log_scale(), 0.0..latency_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("stored entities")
            .x_label_formatter(&|x| human(*x))
            .draw()
            .map_err(|e| err(&e))?;
        let p50 = |p: &ScalePoint| p.decide_p50_us;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.entities as f64, p50(p))),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label("p50")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.entities as f64, p50(p)), 4, BLUE.filled())),
            )
            .map_err(|e| err(&e))?;
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| err(&e))?;
    }

    let mib = |kib: u64| kib as f64 / 1024.0;
    let memory_max = points
        .iter()
        .map(|p| mib(p.peak_kib))
        .fold(1.0_f64, f64::max)
        * 1.2;
    if let Some(right) = panels.get(1) {
        let mut chart = ChartBuilder::on(right)
            .caption("Memory after loading from file, MiB", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.log_scale(), 0.0..memory_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("stored entities")
            .x_label_formatter(&|x| human(*x))
            .draw()
            .map_err(|e| err(&e))?;
        for (name, color, pick) in [
            (
                "resident",
                BLUE,
                (|p: &ScalePoint| p.rss_after_kib) as fn(&ScalePoint) -> u64,
            ),
            ("peak during load", RED, |p: &ScalePoint| p.peak_kib),
        ] {
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.entities as f64, mib(pick(p)))),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| Circle::new((p.entities as f64, mib(pick(p))), 4, color.filled())),
                )
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.0}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg_with_both_panels() {
        let point = |entities, p50, rss| ScalePoint {
            entities,
            file_bytes: 0,
            load_seconds: 0.0,
            load_cpu_seconds: 0.0,
            rss_before_kib: 0,
            rss_after_kib: rss,
            peak_kib: rss * 2,
            bytes_per_entity: 0.0,
            decide_p50_us: p50,
            decide_p99_us: p50 * 2.0,
            decide_p50_runs_us: Vec::new(),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chart.svg");
        draw_scale_chart(
            &[point(10_000, 20.0, 50_000), point(1_000_000, 22.0, 900_000)],
            &path,
        )
        .expect("draw");
        let svg = std::fs::read_to_string(&path).expect("read");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("One decision"));
        assert!(svg.contains("Memory after loading"));
        assert!(draw_scale_chart(&[], &path).is_err());
    }
}
