//! SVG plots (plotters' SVG backend, no fonts needed): grouped horizontal bars, one group
//! per workload, one bar per allocator, on a log axis of the ratio to mimalloc.

use std::path::Path;

use plotters::prelude::*;

/// The series colours of every plot the driver draws (the comparison and the replay).
pub const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of tiered's bars in the grouped bar plots.
const TIERED: RGBColor = RGBColor(176, 0, 32);

/// Tick values 1, 2, 5 x 10^k within `lo..hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    (-4..=6)
        .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)))
        .filter(|t| (lo..=hi).contains(t))
        .collect()
}

/// Draws `values[w][a]` (None: no bar) as grouped bars on a log axis.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    axis: &str,
    workloads: &[&str],
    allocators: &[String],
    values: &[Vec<Option<f64>>],
) -> Result<(), String> {
    let all: Vec<f64> = values.iter().flatten().flatten().copied().filter(|v| *v > 0.0).collect();
    let lo = all.iter().copied().fold(1.0f64, f64::min).min(1.0) / 1.5;
    // Room on the right for the legend.
    let hi = all.iter().copied().fold(1.0f64, f64::max).max(1.0) * 4.0;
    let nw = workloads.len();
    let na = allocators.len().max(1);
    // Sizes: the plot is 1000 px wide and the book shows it about 750 px wide (a phone far
    // less), so the text is set at 18 px (13 px on the page) and the bars are 10 px.
    let height = 140 + nw as u32 * (10 * na as u32 + 14);
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(10)
        .x_label_area_size(56)
        .y_label_area_size(170)
        .build_cartesian_2d((lo..hi).log_scale().with_key_points(ticks(lo, hi)), 0f64..nw as f64)
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = workloads.iter().map(|s| s.to_string()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|x| {
            let s = format!("{x:.2}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        })
        .y_labels(nw * 2 + 1)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y - i as f64 - 0.5).abs() < 0.01 && i < nw {
                names[nw - 1 - i].clone()
            } else {
                String::new()
            }
        })
        .x_desc(axis)
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(|e| e.to_string())?;
    let band = 0.8 / na as f64;
    // Tiered, the allocator the project is about, stands out: its bars are dark red, and a
    // series that would be red takes the colour tiered would have had.
    let tiered_at = allocators.iter().position(|n| n == "tiered");
    for (a, name) in allocators.iter().enumerate() {
        let mut color = COLORS[a % COLORS.len()];
        if Some(a) == tiered_at {
            color = TIERED;
        } else if let Some(t) = tiered_at.filter(|_| color == COLORS[3]) {
            color = COLORS[t % COLORS.len()];
        }
        let bars = values.iter().enumerate().filter_map(move |(w, row)| {
            let v = row.get(a).copied().flatten()?;
            let y0 = (nw - 1 - w) as f64 + 0.9 - band * (a + 1) as f64;
            Some(Rectangle::new([(lo, y0), (v, y0 + band * 0.9)], color.filled()))
        });
        chart
            .draw_series(bars)
            .map_err(|e| e.to_string())?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .draw_series(std::iter::once(PathElement::new(vec![(1.0, 0.0), (1.0, nw as f64)], BLACK)))
        .map_err(|e| e.to_string())?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
