//! `switchyard-bench chart`: draws `bench/results.png` from the raw TSVs of a `bench/run.sh`
//! run, so that the chart can be redrawn (or restyled) later without rerunning anything.
//!
//! Inputs (tab-separated, one line per run, an optional header line starting with `target`):
//! - `runs.tsv`: target, workload, mode, clients, round, tps, transactions,
//!   proxy CPU µs per transaction (`-` for direct), latency average ms, failed;
//! - `latency.tsv`: target, round, p50 µs, p99 µs, p99.9 µs, mean µs.
//!
//! The chart has three panels, all medians over rounds: throughput as a ratio to direct for
//! every pgbench cell and target (the 0.70x target line drawn); single-client latency
//! percentiles per target (log scale); and the proxy CPU per transaction per workload.
//! Text is rendered with DejaVu Sans compiled into the binary (`ab_glyph`), so no system
//! font library is needed.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Font family name the embedded font is registered under.
const FONT: &str = "sans-serif";

/// Targets drawn first, in this order (their colours stay the same from run to run); any
/// other target follows in the order it first appears in the data.
const ORDER: [&str; 6] = [
    "direct",
    "pgbouncer",
    "switchyard",
    "switchyard-mirror",
    "switchyard-shadow",
    "switchyard-canary",
];

/// Colours of the targets, in [`ORDER`].
const PALETTE: [RGBColor; 7] = [
    RGBColor(120, 120, 120),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One pgbench cell: workload, mode, clients.
type Cell = (String, String, u32);

/// Everything the chart shows, reduced to medians.
struct Data {
    /// Targets in [`ORDER`], then first-appearance order.
    targets: Vec<String>,
    /// Cells in first-appearance order.
    cells: Vec<Cell>,
    /// Median tps per (target, cell index).
    tps: BTreeMap<(String, usize), f64>,
    /// Median proxy CPU µs per transaction per (target, workload), over that workload's cells.
    cpu: BTreeMap<(String, String), f64>,
    /// Median p50 / p99 / p99.9 µs per target.
    latency: BTreeMap<String, [f64; 3]>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The data lines of a TSV file (header and blank lines skipped), split into fields.
fn rows(path: &Path) -> Result<Vec<Vec<String>>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("target\t"))
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}

fn num(field: Option<&String>) -> Option<f64> {
    field
        .and_then(|f| f.parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

fn push_unique<T: PartialEq + Clone>(list: &mut Vec<T>, item: &T) -> usize {
    match list.iter().position(|x| x == item) {
        Some(i) => i,
        None => {
            list.push(item.clone());
            list.len() - 1
        }
    }
}

fn load(runs: &Path, latency: &Path) -> Result<Data> {
    let mut targets: Vec<String> = Vec::new();
    let mut cells: Vec<Cell> = Vec::new();
    let mut tps_runs: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
    let mut cpu_runs: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for (line, r) in rows(runs)?.iter().enumerate() {
        if r.len() < 8 {
            bail!("{}:{}: expected 10 fields", runs.display(), line + 1);
        }
        let clients: u32 = r[3]
            .parse()
            .with_context(|| format!("{}:{}: clients", runs.display(), line + 1))?;
        push_unique(&mut targets, &r[0]);
        let cell = push_unique(&mut cells, &(r[1].clone(), r[2].clone(), clients));
        if let Some(tps) = num(r.get(5)).filter(|&t| t > 0.0) {
            tps_runs.entry((r[0].clone(), cell)).or_default().push(tps);
        }
        if let Some(cpu) = num(r.get(7)) {
            cpu_runs
                .entry((r[0].clone(), r[1].clone()))
                .or_default()
                .push(cpu);
        }
    }
    let mut lat_runs: BTreeMap<String, [Vec<f64>; 3]> = BTreeMap::new();
    for r in rows(latency)? {
        push_unique(&mut targets, &r[0]);
        let entry = lat_runs.entry(r[0].clone()).or_default();
        for (i, field) in [2, 3, 4].into_iter().enumerate() {
            if let Some(v) = num(r.get(field)) {
                entry[i].push(v);
            }
        }
    }
    // Stable: targets outside ORDER keep their first-appearance order.
    targets.sort_by_key(|t| ORDER.iter().position(|o| o == t).unwrap_or(ORDER.len()));
    let tps = tps_runs
        .into_iter()
        .filter_map(|(k, v)| median(v).map(|m| (k, m)))
        .collect();
    let cpu = cpu_runs
        .into_iter()
        .filter_map(|(k, v)| median(v).map(|m| (k, m)))
        .collect();
    let latency = lat_runs
        .into_iter()
        .filter_map(|(k, [a, b, c])| Some((k, [median(a)?, median(b)?, median(c)?])))
        .collect();
    Ok(Data {
        targets,
        cells,
        tps,
        cpu,
        latency,
    })
}

fn colour(data: &Data, target: &str) -> RGBColor {
    let i = data.targets.iter().position(|t| t == target).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

/// Draws the chart into `out` (PNG, `width` x `height` pixels).
pub fn draw(
    runs: &Path,
    latency: &Path,
    out: &Path,
    title: &str,
    (width, height): (u32, u32),
) -> Result<()> {
    let data = load(runs, latency)?;
    if data.tps.is_empty() && data.latency.is_empty() {
        bail!(
            "no measurements in {} or {}",
            runs.display(),
            latency.display()
        );
    }
    register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow::anyhow!("the embedded font does not load"))?;
    register_font(FONT, FontStyle::Bold, dejavu::sans::bold())
        .map_err(|_| anyhow::anyhow!("the embedded font does not load"))?;

    let root = BitMapBackend::new(out, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 24).into_font().style(FontStyle::Bold))?;
    let (top, bottom) = root.split_vertically((height as f64 * 0.55) as u32);
    let (left, right) = bottom.split_horizontally(width / 2);
    throughput(&top, &data)?;
    latency_panel(&left, &data)?;
    cpu_panel(&right, &data)?;
    root.present()
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Throughput of every target as a ratio to direct, one group of bars per pgbench cell.
fn throughput(area: &Area<'_>, data: &Data) -> Result<()> {
    let proxies: Vec<&String> = data.targets.iter().filter(|t| *t != "direct").collect();
    if data.cells.is_empty() || proxies.is_empty() {
        return Ok(());
    }
    let ratio = |t: &str, cell: usize| -> Option<f64> {
        let d = data.tps.get(&("direct".to_owned(), cell))?;
        let v = data.tps.get(&(t.to_owned(), cell))?;
        Some(v / d)
    };
    let top = data
        .cells
        .iter()
        .enumerate()
        .flat_map(|(i, _)| proxies.iter().filter_map(move |t| ratio(t, i)))
        .fold(1.2_f64, f64::max)
        * 1.08;
    let n = data.cells.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Throughput (pgbench tps, median) as a ratio to direct",
            (FONT, 18),
        )
        .margin(10)
        .margin_left(20)
        .x_label_area_size(48)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc("x direct")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    let width = 0.84 / proxies.len() as f64;
    for (k, t) in proxies.iter().enumerate() {
        let c = colour(data, t);
        let bars: Vec<_> = (0..data.cells.len())
            .filter_map(|i| {
                let r = ratio(t, i)?;
                let x0 = i as f64 + 0.08 + k as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.92, r)],
                    c.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(t.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    // The reference lines: direct (1.0) and the 0.70x target.
    for (y, style) in [
        (1.0, BLACK.stroke_width(1)),
        (0.70, RGBColor(200, 0, 0).stroke_width(2)),
    ] {
        chart.draw_series(LineSeries::new([(0.0, y), (n, y)], style))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()?;
    // Cell labels under each group, two lines: workload, then mode and clients.
    let style = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, (w, m, c)) in data.cells.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        let (ox, oy) = area.get_base_pixel();
        let (px, py) = (px - ox, py - oy);
        area.draw(&Text::new(w.clone(), (px, py + 6), style.clone()))?;
        area.draw(&Text::new(
            format!("{m}, {c} cl."),
            (px, py + 22),
            style.clone(),
        ))?;
    }
    Ok(())
}

/// Single-client latency percentiles per target, log scale.
fn latency_panel(area: &Area<'_>, data: &Data) -> Result<()> {
    let targets: Vec<&String> = data
        .targets
        .iter()
        .filter(|t| data.latency.contains_key(*t))
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let max = data
        .latency
        .values()
        .flat_map(|v| v.iter().copied())
        .fold(10.0_f64, f64::max);
    let min = data
        .latency
        .values()
        .flat_map(|v| v.iter().copied())
        .fold(f64::MAX, f64::min)
        .max(1.0);
    let labels = ["p50", "p99", "p99.9"];
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Latency, prepared SELECT 1, one client (µs, log)",
            (FONT, 18),
        )
        .margin(10)
        .margin_left(20)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..3.0, (min / 2.0..max * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("µs")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    let width = 0.84 / targets.len() as f64;
    for (k, t) in targets.iter().enumerate() {
        let c = colour(data, t);
        let Some(v) = data.latency.get(*t) else {
            continue;
        };
        let bars = (0..3).map(|i| {
            let x0 = i as f64 + 0.08 + k as f64 * width;
            Rectangle::new([(x0, min / 2.0), (x0 + width * 0.92, v[i])], c.filled())
        });
        chart
            .draw_series(bars)?
            .label(t.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, l) in labels.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, min / 2.0));
        let (ox, oy) = area.get_base_pixel();
        area.draw(&Text::new(*l, (px - ox, py - oy + 6), style.clone()))?;
    }
    Ok(())
}

/// Proxy CPU (user+sys) per transaction, per proxy and workload.
fn cpu_panel(area: &Area<'_>, data: &Data) -> Result<()> {
    let mut workloads: Vec<String> = Vec::new();
    for (w, _, _) in &data.cells {
        push_unique(&mut workloads, w);
    }
    let proxies: Vec<&String> = data
        .targets
        .iter()
        .filter(|t| {
            workloads
                .iter()
                .any(|w| data.cpu.contains_key(&((*t).clone(), w.clone())))
        })
        .collect();
    if proxies.is_empty() {
        return Ok(());
    }
    let max = data.cpu.values().copied().fold(10.0_f64, f64::max) * 3.0;
    let min = data.cpu.values().copied().fold(10.0_f64, f64::min) / 2.0;
    let n = workloads.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Proxy CPU per transaction (µs, median over cells, log)",
            (FONT, 18),
        )
        .margin(10)
        .margin_left(20)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n, (min..max).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("µs / transaction")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    let width = 0.84 / proxies.len() as f64;
    for (k, t) in proxies.iter().enumerate() {
        let c = colour(data, t);
        let bars: Vec<_> = workloads
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let v = *data.cpu.get(&((*t).clone(), w.clone()))?;
                let x0 = i as f64 + 0.08 + k as f64 * width;
                Some(Rectangle::new(
                    [(x0, min), (x0 + width * 0.92, v)],
                    c.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(t.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    // The 10 µs target (select-only).
    chart.draw_series(LineSeries::new(
        [(0.0, 10.0), (n, 10.0)],
        RGBColor(200, 0, 0).stroke_width(2),
    ))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, w) in workloads.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, min));
        let (ox, oy) = area.get_base_pixel();
        area.draw(&Text::new(w.clone(), (px - ox, py - oy + 6), style.clone()))?;
    }
    Ok(())
}
