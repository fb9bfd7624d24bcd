//! PNG plots of samples, with no system libraries: plotters' bitmap backend
//! and an embedded DejaVu Sans font (assets/fonts, Bitstream Vera licence)
//! registered through plotters' ab_glyph support.
//!
//! * [`scatter_density`]: 2-D samples over the energy's density exp(−E)
//!   (evaluated on a grid through [`BatchEnergy`]), with iso-density lines;
//! * [`histograms`]: 1-D marginals, with a true density overlaid when given;
//! * [`trace`]: trace plots per coordinate, one line per chain;
//! * [`image_grid`]: draws shown as grey-scale images when x has an image
//!   shape;
//! * [`density_with_points`]: a learned 2-D density with a plain point set
//!   (model samples, data) over it;
//! * [`plot_auto`]: picks one of the above from the dimension;
//! * [`curves`]: training curves ([`loss_curves`], [`loss_curves_log`]).
//!
//! Files are written to a temporary name and renamed into place. Axis
//! ranges are always finite and wide enough for plotters' tick computation
//! (which loops forever on an infinite or, at large magnitudes, a too
//! narrow range), whatever the values.

// Index loops over grid cells read best as they are.
#![allow(clippy::needless_range_loop)]

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::sample::{BatchEnergy, Draws};

pub mod curves;
pub mod text;

pub use curves::{loss_curves, loss_curves_log, reliability};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Register the embedded font as "sans-serif" (idempotent).
pub fn ensure_font() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The font is embedded and known to parse; a failure would only
            // mean text is missing, which the font test catches.
            let _ = plotters::style::register_font("sans-serif", style, FONT);
        }
    });
}

const W: u32 = 900;
const H: u32 = 760;

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

/// Draw through `f` into an image, then write it to `path` as a PNG
/// (through a temporary and a rename).
fn with_png(
    path: &Path,
    size: (u32, u32),
    f: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<(), String> {
    ensure_font();
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        f(&root)?;
        root.present().map_err(err)?;
    }
    // Encoded here rather than by the backend from a path: the temporary
    // is created (and removed on a signal) by `write_via_temp` alone.
    crate::data::atomic::write_via_temp(path, |file| {
        use image::ImageEncoder;
        let w = std::io::BufWriter::new(file);
        image::codecs::png::PngEncoder::new(w)
            .write_image(&rgb, size.0, size.1, image::ColorType::Rgb8)
            .map_err(err)
    })
}

/// Viridis, interpolated between 9 anchors.
pub fn viridis(t: f64) -> RGBColor {
    const A: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * 8.0;
    let i = (x.floor() as usize).min(7);
    let f = x - i as f64;
    let l = |a: u8, b: u8| (a as f64 + f * (b as f64 - a as f64)).round() as u8;
    let (a, b) = (A[i], A[i + 1]);
    RGBColor(l(a.0, b.0), l(a.1, b.1), l(a.2, b.2))
}

/// Distinct line colours for chains.
fn chain_color(c: usize) -> RGBColor {
    const P: [(u8, u8, u8); 8] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (23, 190, 207),
    ];
    let p = P[c % 8];
    RGBColor(p.0, p.1, p.2)
}

fn quantile(mut v: Vec<f64>, p: f64) -> f64 {
    v.retain(|x| x.is_finite());
    crate::stats::quantile(&v, p)
}

/// The largest magnitude an axis shows; larger finite values are drawn at
/// this bound (plotters' tick computation needs a finite span).
const AXIS_MAX: f64 = 1e300;

/// A range plotters can label without looping: finite, within ±[`AXIS_MAX`],
/// and wide enough against its magnitude for f64 ticks (a range narrower
/// than 1e-9 of its magnitude, or than 1e-200, becomes ±1% of the magnitude
/// around its centre, or ±1 for magnitudes up to 1e-198: either covers it).
fn safe_range(lo: f64, hi: f64) -> (f64, f64) {
    let c = |v: f64| {
        if v.is_nan() {
            0.0
        } else {
            v.clamp(-AXIS_MAX, AXIS_MAX)
        }
    };
    let (lo, hi) = (c(lo.min(hi)), c(hi.max(lo)));
    let mag = lo.abs().max(hi.abs());
    if hi - lo > (mag * 1e-9).max(1e-200) {
        return (lo, hi);
    }
    let mid = 0.5 * lo + 0.5 * hi;
    let half = if mag > 1e-198 { 0.01 * mag } else { 1.0 };
    (mid - half, mid + half)
}

/// `title`, with a note when some draws cannot be shown where they are:
/// non-finite values (left out) and values beyond ±[`AXIS_MAX`] (drawn at
/// the edge), so a plot never silently misrepresents the draws.
pub fn noted_title(title: &str, d: &Draws) -> String {
    let non_finite = d.x.iter().filter(|v| !v.is_finite()).count();
    let clamped =
        d.x.iter()
            .filter(|v| v.is_finite() && v.abs() > AXIS_MAX)
            .count();
    let mut notes = Vec::new();
    if non_finite > 0 {
        notes.push(format!("{non_finite} non-finite values left out"));
    }
    if clamped > 0 {
        notes.push(format!("{clamped} values beyond ±1e300 drawn at the edge"));
    }
    if d.stride() > 1 {
        notes.push(format!("plotted from every {} draw", ordinal(d.stride())));
    }
    match notes.is_empty() {
        true => title.to_string(),
        false => format!("{title} ({})", notes.join("; ")),
    }
}

/// The font size at which `title` fits `width` pixels: `max`, or smaller
/// for a long title (a sans-serif glyph is about 0.55 em wide on average),
/// never below 12.
pub(crate) fn title_font(title: &str, width: u32, max: u32) -> u32 {
    let chars = title.chars().count().max(1) as u32;
    (width * 17 / (10 * chars)).clamp(12, max.max(12))
}

/// "2nd", "13th", "101st".
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Plot range of a coordinate: central 99.5% of the draws, padded by 10%.
fn range_of(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| x.clamp(-AXIS_MAX, AXIS_MAX))
        .collect();
    let lo = quantile(v.clone(), 0.0025);
    let hi = quantile(v, 0.9975);
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 1.0, lo + 1.0)
    } else {
        (-1.0, 1.0)
    };
    let pad = 0.1 * (hi - lo);
    safe_range(lo - pad, hi + pad)
}

/// Finite minimum and maximum, padded by 5% (a unit interval when degenerate).
fn full_range(v: &[f64]) -> (f64, f64) {
    let finite = v
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| x.clamp(-AXIS_MAX, AXIS_MAX));
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if hi <= lo || !hi.is_finite() {
        let c = if lo.is_finite() { lo } else { 0.0 };
        return safe_range(c - 1.0, c + 1.0);
    }
    let pad = 0.05 * (hi - lo);
    safe_range(lo - pad, hi + pad)
}

/// Evaluate exp(−(E − min E)) of a 2-D energy on an `n × n` grid
/// (row `j` is y, column `i` is x).
pub fn density_grid(
    energy: &dyn BatchEnergy,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    n: usize,
) -> Vec<f64> {
    let mut pts = Vec::with_capacity(n * n * 2);
    for j in 0..n {
        let y = y0 + (y1 - y0) * (j as f64 + 0.5) / n as f64;
        for i in 0..n {
            let x = x0 + (x1 - x0) * (i as f64 + 0.5) / n as f64;
            pts.push(x);
            pts.push(y);
        }
    }
    let mut e = vec![0.0; n * n];
    energy.energy(&pts, n * n, &mut e);
    let min = e
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    e.iter()
        .map(|v| {
            if v.is_finite() {
                (-(v - min)).exp()
            } else {
                0.0
            }
        })
        .collect()
}

/// Samples of coordinates `cx`, `cy` over the density of a 2-D `energy`
/// (density shading and iso-density lines), or alone when `energy` is None.
pub fn scatter_density(
    path: &Path,
    d: &Draws,
    energy: Option<&dyn BatchEnergy>,
    (cx, cy): (usize, usize),
    title: &str,
) -> Result<(), String> {
    if cx >= d.dim || cy >= d.dim {
        return Err(format!(
            "plot: coordinates {cx}, {cy} out of range (dim {})",
            d.dim
        ));
    }
    let xs = d.coord(cx);
    let ys = d.coord(cy);
    let ranges = (range_of(&xs), range_of(&ys));
    let labels = (format!("x.{cx}"), format!("x.{cy}"));
    scatter_over(path, (&xs, &ys), energy, ranges, labels, title)
}

/// A learned 2-D density exp(−E) with a point set over it (model samples,
/// data), the points given as a plain `n × 2` batch-major slice. The plot
/// spans `bounds` (`(lo, hi)` per axis) when given, else the central 99.5%
/// of the points padded by 10% (as [`scatter_density`]). Non-finite points
/// are not drawn.
pub fn density_with_points(
    path: &Path,
    title: &str,
    energy: &dyn BatchEnergy,
    points: &[f64],
    bounds: Option<([f64; 2], [f64; 2])>,
) -> Result<(), String> {
    if energy.dim() != 2 {
        return Err(format!(
            "plot: the density plot needs a 2-D energy, this one has {} coordinates",
            energy.dim()
        ));
    }
    if !points.len().is_multiple_of(2) {
        return Err(format!(
            "plot: {} point coordinates do not make 2-D points",
            points.len()
        ));
    }
    let xs: Vec<f64> = points.iter().step_by(2).copied().collect();
    let ys: Vec<f64> = points.iter().skip(1).step_by(2).copied().collect();
    let ranges = match bounds {
        Some((lo, hi)) => {
            for c in 0..2 {
                let ok = lo[c].is_finite() && hi[c].is_finite() && lo[c] < hi[c];
                if !ok || !(hi[c] - lo[c]).is_finite() {
                    return Err(format!(
                        "plot: coordinate {c} spans [{}, {}] (need finite lo < hi)",
                        lo[c], hi[c]
                    ));
                }
            }
            ((lo[0], hi[0]), (lo[1], hi[1]))
        }
        None => (range_of(&xs), range_of(&ys)),
    };
    let labels = ("x.0".to_string(), "x.1".to_string());
    scatter_over(path, (&xs, &ys), Some(energy), ranges, labels, title)
}

/// The body of [`scatter_density`] and [`density_with_points`]: points
/// `(xs[k], ys[k])` on `[x0, x1] × [y0, y1]`, over the density of `energy`
/// when it is 2-D.
fn scatter_over(
    path: &Path,
    (xs, ys): (&[f64], &[f64]),
    energy: Option<&dyn BatchEnergy>,
    ((x0, x1), (y0, y1)): ((f64, f64), (f64, f64)),
    (xl, yl): (String, String),
    title: &str,
) -> Result<(), String> {
    with_png(path, (W, H), |root| {
        let style = PanelStyle {
            caption: 26,
            labels: 16,
            grid: 160,
        };
        draw_scatter(
            root,
            (xs, ys),
            energy,
            ((x0, x1), (y0, y1)),
            (xl, yl),
            title,
            style,
        )
    })
}

/// Common axes for 2-D points (`n × 2`, batch-major): each coordinate's
/// central range padded as single scatter plots pad it, widened to the
/// larger of the two so panels keep their aspect.
pub fn bounds_2d(points: &[f64]) -> ([f64; 2], [f64; 2]) {
    let xs: Vec<f64> = points.iter().step_by(2).copied().collect();
    let ys: Vec<f64> = points.iter().skip(1).step_by(2).copied().collect();
    let ((x0, x1), (y0, y1)) = (range_of(&xs), range_of(&ys));
    let half = 0.5 * (x1 - x0).max(y1 - y0);
    let (cx, cy) = (0.5 * (x0 + x1), 0.5 * (y0 + y1));
    ([cx - half, cy - half], [cx + half, cy + half])
}

/// One panel of [`scatter_panels`]: samples (`n × 2`, batch-major) over the
/// density of their 2-D energy.
pub struct Panel<'a> {
    pub title: String,
    pub points: Vec<f64>,
    pub energy: Option<&'a dyn BatchEnergy>,
}

/// Text sizes and density resolution of a scatter plot.
#[derive(Clone, Copy)]
struct PanelStyle {
    caption: u32,
    labels: u32,
    grid: usize,
}

/// Several 2-D sample sets side by side (`cols` panels a row), each over
/// its energy's density, on common axes `bounds` (`(lo, hi)` per axis), e.g.
/// every cell of a composition experiment in one image.
pub fn scatter_panels(
    path: &Path,
    title: &str,
    panels: &[Panel],
    cols: usize,
    bounds: ([f64; 2], [f64; 2]),
) -> Result<(), String> {
    if panels.is_empty() || cols == 0 {
        return Err("plot: no panels to draw".into());
    }
    if let Some(p) = panels.iter().find(|p| !p.points.len().is_multiple_of(2)) {
        return Err(format!(
            "plot: panel `{}` does not hold 2-D points",
            p.title
        ));
    }
    let cols = cols.min(panels.len());
    let rows = panels.len().div_ceil(cols);
    let side = 330u32;
    let size = (side * cols as u32, side * rows as u32 + 50);
    let ([x0, y0], [x1, y1]) = bounds;
    with_png(path, size, |root| {
        // The title shrinks to fit a narrow row of panels.
        let font = title_font(title, size.0, 28);
        let body = root.titled(title, ("sans-serif", font)).map_err(err)?;
        let style = PanelStyle {
            caption: 18,
            labels: 12,
            grid: 90,
        };
        for (area, p) in body.split_evenly((rows, cols)).iter().zip(panels) {
            let xs: Vec<f64> = p.points.iter().step_by(2).copied().collect();
            let ys: Vec<f64> = p.points.iter().skip(1).step_by(2).copied().collect();
            let labels = ("x.0".to_string(), "x.1".to_string());
            let ranges = ((x0, x1), (y0, y1));
            draw_scatter(area, (&xs, &ys), p.energy, ranges, labels, &p.title, style)?;
        }
        Ok(())
    })
}

/// Points over an optional 2-D density (shading and iso-density lines) in
/// one drawing area.
fn draw_scatter<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (xs, ys): (&[f64], &[f64]),
    energy: Option<&dyn BatchEnergy>,
    ((x0, x1), (y0, y1)): ((f64, f64), (f64, f64)),
    (xl, yl): (String, String),
    title: &str,
    style: PanelStyle,
) -> Result<(), String> {
    let ((x0, x1), (y0, y1)) = (safe_range(x0, x1), safe_range(y0, y1));
    let grid = style.grid;
    let dens = match energy {
        Some(e) if e.dim() == 2 => Some(density_grid(e, (x0, x1), (y0, y1), grid)),
        _ => None,
    };
    let root = match &dens {
        Some(_) => {
            let width = area.dim_in_pixel().0;
            let bar_width = (style.labels * 5).min(width / 4);
            let (main, bar) = area.split_horizontally(width - bar_width);
            colour_bar(&bar, style)?;
            main
        }
        None => area.clone(),
    };
    {
        let root = &root;
        let font = title_font(title, root.dim_in_pixel().0, style.caption);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", font))
            .margin(style.caption / 2 + 3)
            .x_label_area_size(style.labels * 3)
            .y_label_area_size(style.labels * 4)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let (xs_step, ys_step) = ((x1 - x0) / 10.0, (y1 - y0) / 10.0);
        chart
            .configure_mesh()
            .disable_mesh()
            .x_label_formatter(&|v| curves::tick(*v, xs_step))
            .y_label_formatter(&|v| curves::tick(*v, ys_step))
            .x_desc(xl)
            .y_desc(yl)
            .label_style(("sans-serif", style.labels))
            .axis_desc_style(("sans-serif", style.labels + 2))
            .draw()
            .map_err(err)?;
        if let Some(g) = &dens {
            let (dx, dy) = ((x1 - x0) / grid as f64, (y1 - y0) / grid as f64);
            chart
                .draw_series((0..grid * grid).map(|k| {
                    let (i, j) = (k % grid, k / grid);
                    let (a, b) = (x0 + i as f64 * dx, y0 + j as f64 * dy);
                    let c = viridis(shade(g[k]));
                    Rectangle::new([(a, b), (a + dx, b + dy)], c.filled())
                }))
                .map_err(err)?;
            // Iso-density lines at fractions of the peak (marching squares,
            // drawn as the segments crossing each cell).
            for level in [0.05, 0.2, 0.5, 0.8] {
                let segs = iso_segments(g, grid, level);
                chart
                    .draw_series(segs.into_iter().map(|((ax, ay), (bx, by))| {
                        PathElement::new(
                            vec![(x0 + ax * dx, y0 + ay * dy), (x0 + bx * dx, y0 + by * dy)],
                            WHITE.mix(0.55).stroke_width(1),
                        )
                    }))
                    .map_err(err)?;
            }
        }
        let n = xs.len();
        let stride = n.div_ceil(4000).max(1);
        let shown = n.div_ceil(stride);
        // Fewer, bolder dots for small samples; fainter ones for many.
        let (alpha, radius) = if shown > 1500 { (0.4, 1) } else { (0.6, 2) };
        let dot = if dens.is_some() {
            RGBColor(255, 255, 255).mix(alpha).filled()
        } else {
            RGBColor(31, 119, 180).mix(alpha).filled()
        };
        chart
            .draw_series(
                (0..n)
                    .step_by(stride)
                    .filter(|&k| (x0..=x1).contains(&xs[k]) && (y0..=y1).contains(&ys[k]))
                    .map(|k| Circle::new((xs[k], ys[k]), radius, dot)),
            )
            .map_err(err)?;
        Ok(())
    }
}

/// Decades of e the density shading spans: log density from the peak down
/// to e^−LOG_SPAN, so a mode 1000 times lighter than the peak still shows.
const LOG_SPAN: f64 = 10.0;

/// Colour position (0..1) of a density relative to its peak, on a log scale.
fn shade(rel: f64) -> f64 {
    let t = if rel > 0.0 {
        (rel.ln() + LOG_SPAN) / LOG_SPAN
    } else {
        0.0
    };
    t.clamp(0.0, 1.0) * 0.9 + 0.05
}

/// The key to the shading: log density relative to the peak, 0 to −LOG_SPAN.
fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    style: PanelStyle,
) -> Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(style.caption + style.caption / 2 + 3)
        .margin_bottom(style.labels * 3 + style.caption / 2 + 3)
        .margin_right(4)
        .y_label_area_size(style.labels * 2 + 4)
        .build_cartesian_2d(0.0..1.0, -LOG_SPAN..0.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&|v| curves::tick(*v, 2.0))
        .y_desc("log p − max")
        .label_style(("sans-serif", style.labels))
        .axis_desc_style(("sans-serif", style.labels))
        .draw()
        .map_err(err)?;
    let steps = 100;
    chart
        .draw_series((0..steps).map(|k| {
            let lo = -LOG_SPAN + LOG_SPAN * k as f64 / steps as f64;
            let hi = lo + LOG_SPAN / steps as f64;
            let c = viridis(shade((0.5 * (lo + hi)).exp()));
            Rectangle::new([(0.0, lo), (1.0, hi)], c.filled())
        }))
        .map_err(err)?;
    Ok(())
}

/// Marching-squares segments of the level set `v = level` of a grid
/// (cell-centre coordinates in grid units, + 0.5).
fn iso_segments(v: &[f64], n: usize, level: f64) -> Vec<((f64, f64), (f64, f64))> {
    let mut out = Vec::new();
    for j in 0..n - 1 {
        for i in 0..n - 1 {
            let c = [
                (i, j, v[j * n + i]),
                (i + 1, j, v[j * n + i + 1]),
                (i + 1, j + 1, v[(j + 1) * n + i + 1]),
                (i, j + 1, v[(j + 1) * n + i]),
            ];
            let mut pts = Vec::new();
            for e in 0..4 {
                let (a, b) = (c[e], c[(e + 1) % 4]);
                if (a.2 > level) != (b.2 > level) {
                    let t = (level - a.2) / (b.2 - a.2);
                    pts.push((
                        a.0 as f64 + t * (b.0 as f64 - a.0 as f64) + 0.5,
                        a.1 as f64 + t * (b.1 as f64 - a.1 as f64) + 0.5,
                    ));
                }
            }
            if pts.len() >= 2 {
                out.push((pts[0], pts[1]));
            }
            if pts.len() == 4 {
                out.push((pts[2], pts[3]));
            }
        }
    }
    out
}

/// Grid of `rows × cols` panels for `n` subplots.
fn layout(n: usize) -> (usize, usize) {
    let cols = (n as f64).sqrt().ceil() as usize;
    let cols = cols.clamp(1, 4);
    (n.div_ceil(cols), cols)
}

/// A true density of coordinate `i` at `x`, for overlays.
pub type Density<'a> = &'a dyn Fn(usize, f64) -> f64;

/// Histograms of the marginals of `coords` (normalised to densities), with
/// `density(i, x)` overlaid when given.
pub fn histograms(
    path: &Path,
    d: &Draws,
    coords: &[usize],
    density: Option<Density>,
    title: &str,
) -> Result<(), String> {
    if coords.is_empty() || coords.iter().any(|&c| c >= d.dim) {
        return Err("plot: no such coordinate".into());
    }
    let (rows, cols) = layout(coords.len());
    let size = ((cols as u32 * 420).max(W.min(620)), rows as u32 * 340 + 50);
    with_png(path, size, |root| {
        let root = root
            .titled(title, ("sans-serif", title_font(title, size.0, 26)))
            .map_err(err)?;
        let panels = root.split_evenly((rows, cols));
        for (k, &ci) in coords.iter().enumerate() {
            let v: Vec<f64> = d.coord(ci).into_iter().filter(|x| x.is_finite()).collect();
            let (lo, hi) = range_of(&v);
            let bins = 60usize;
            let w = (hi - lo) / bins as f64;
            let mut counts = vec![0.0; bins];
            for x in &v {
                let b = ((x - lo) / w).floor();
                if b >= 0.0 && (b as usize) < bins {
                    counts[b as usize] += 1.0;
                }
            }
            let norm = v.len().max(1) as f64 * w;
            let hist: Vec<f64> = counts.iter().map(|c| c / norm).collect();
            let curve: Vec<(f64, f64)> = match density {
                Some(f) => (0..=300)
                    .map(|i| {
                        let x = lo + (hi - lo) * i as f64 / 300.0;
                        (x, f(ci, x))
                    })
                    .collect(),
                None => Vec::new(),
            };
            let ymax = hist
                .iter()
                .chain(curve.iter().map(|p| &p.1))
                .copied()
                .filter(|y| y.is_finite())
                .fold(0.0, f64::max)
                * 1.1;
            let mut chart = ChartBuilder::on(&panels[k])
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(lo..hi, 0.0..ymax.max(1e-12))
                .map_err(err)?;
            let (x_step, y_step) = ((hi - lo) / 10.0, ymax / 10.0);
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .bold_line_style(RGBColor(230, 230, 230))
                .x_label_formatter(&|v| curves::tick(*v, x_step))
                .y_label_formatter(&|v| curves::tick(*v, y_step))
                .x_desc(format!("x.{ci}"))
                .y_desc("density")
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 15))
                .draw()
                .map_err(err)?;
            chart
                .draw_series(hist.iter().enumerate().map(|(b, h)| {
                    let a = lo + b as f64 * w;
                    Rectangle::new(
                        [(a, 0.0), (a + w, *h)],
                        RGBColor(31, 119, 180).mix(0.55).filled(),
                    )
                }))
                .map_err(err)?;
            if !curve.is_empty() {
                chart
                    .draw_series(LineSeries::new(
                        curve,
                        RGBColor(214, 39, 40).stroke_width(3),
                    ))
                    .map_err(err)?
                    .label("true density")
                    .legend(|(x, y)| {
                        PathElement::new(
                            vec![(x, y), (x + 20, y)],
                            RGBColor(214, 39, 40).stroke_width(3),
                        )
                    });
                chart
                    .configure_series_labels()
                    .label_font(("sans-serif", 14))
                    .background_style(WHITE.mix(0.8))
                    .border_style(RGBColor(200, 200, 200))
                    .draw()
                    .map_err(err)?;
            }
        }
        Ok(())
    })
}

/// Trace plots of `coords`, one line per chain (at most `max_chains`).
pub fn trace(
    path: &Path,
    d: &Draws,
    coords: &[usize],
    max_chains: usize,
    title: &str,
) -> Result<(), String> {
    if coords.is_empty() || coords.iter().any(|&c| c >= d.dim) {
        return Err("plot: no such coordinate".into());
    }
    let n = coords.len();
    let size = (1100, (n as u32 * 200 + 60).max(300));
    let chains = d.chains.min(max_chains.max(1));
    // Say when only some chains are drawn, rather than hide the others.
    let title = match chains < d.chains {
        true => format!("{title} (chains 0–{} of {})", chains - 1, d.chains),
        false => title.to_string(),
    };
    with_png(path, size, |root| {
        let root = root
            .titled(&title, ("sans-serif", title_font(&title, size.0, 24)))
            .map_err(err)?;
        let panels = root.split_evenly((n, 1));
        for (k, &ci) in coords.iter().enumerate() {
            let v = d.coord(ci);
            // Traces show every excursion, so the range is the full one.
            let (lo, hi) = full_range(&v[..chains * d.draws]);
            let last = k + 1 == n;
            let mut chart = ChartBuilder::on(&panels[k])
                .margin(8)
                // Room for the last x tick's label, centred on the edge.
                .margin_right(24)
                .x_label_area_size(if last { 48 } else { 30 })
                .y_label_area_size(60)
                .build_cartesian_2d(0..d.draws.max(1), lo..hi)
                .map_err(err)?;
            let y_step = (hi - lo) / 10.0;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .bold_line_style(RGBColor(235, 235, 235))
                .y_label_formatter(&|v| curves::tick(*v, y_step))
                .y_desc(format!("x.{ci}"))
                .x_desc(if last { "draw" } else { "" })
                .label_style(("sans-serif", 13))
                .axis_desc_style(("sans-serif", 15))
                .draw()
                .map_err(err)?;
            for c in 0..chains {
                let pts: Vec<(usize, f64)> = (0..d.draws)
                    .map(|t| (t, v[c * d.draws + t]))
                    .filter(|p| p.1.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(
                        pts,
                        chain_color(c).mix(0.8).stroke_width(1),
                    ))
                    .map_err(err)?;
            }
        }
        Ok(())
    })
}

/// The last draw of the first `n` chains shown as `h × w` grey-scale images
/// (or `c × h × w` / `h × w × c` with c = 3 as colour), each scaled to the
/// common range of the shown draws.
pub fn image_grid(
    path: &Path,
    d: &Draws,
    shape: &[usize],
    n: usize,
    title: &str,
) -> Result<(), String> {
    let cols = (n.min(d.chains).max(1) as f64).sqrt().ceil() as usize;
    images(path, d, shape, n, cols, title)
}

/// Every chain's last draw as images, `cols` to a row (e.g. one row per
/// class of class-conditional samples).
pub fn image_rows(
    path: &Path,
    d: &Draws,
    shape: &[usize],
    cols: usize,
    title: &str,
) -> Result<(), String> {
    images(path, d, shape, d.chains, cols.max(1), title)
}

fn images(
    path: &Path,
    d: &Draws,
    shape: &[usize],
    n: usize,
    cols: usize,
    title: &str,
) -> Result<(), String> {
    let (h, w, ch, chan_first) = match shape {
        [h, w] => (*h, *w, 1, false),
        [3, h, w] => (*h, *w, 3, true),
        [h, w, 3] => (*h, *w, 3, false),
        [1, h, w] | [h, w, 1] => (*h, *w, 1, false),
        _ => return Err(format!("plot: cannot show shape {shape:?} as an image")),
    };
    if h * w * ch != d.dim {
        return Err(format!(
            "plot: image shape {shape:?} holds {} values, draws have {}",
            h * w * ch,
            d.dim
        ));
    }
    let n = n.min(d.chains).max(1);
    if d.draws == 0 {
        return Err("plot: no draws".into());
    }
    let imgs: Vec<&[f64]> = (0..n).map(|c| d.point(c, d.draws - 1)).collect();
    let lo = imgs
        .iter()
        .flat_map(|v| v.iter())
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let hi = imgs
        .iter()
        .flat_map(|v| v.iter())
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let rows = n.div_ceil(cols);
    let cell = (720 / cols.max(1)).clamp(24, 160) as u32;
    let px = (cell - 6) as f64 / h.max(w) as f64;
    let size = (cols as u32 * cell + 20, rows as u32 * cell + 70);
    with_png(path, size, |root| {
        let root = root
            .titled(title, ("sans-serif", title_font(title, size.0, 22)))
            .map_err(err)?;
        for (k, img) in imgs.iter().enumerate() {
            let (gx, gy) = ((k % cols) as u32 * cell + 13, (k / cols) as u32 * cell + 3);
            for y in 0..h {
                for x in 0..w {
                    let val = |c: usize| {
                        let i = if ch == 1 {
                            y * w + x
                        } else if chan_first {
                            c * h * w + y * w + x
                        } else {
                            (y * w + x) * 3 + c
                        };
                        let t = ((img[i] - lo) / span).clamp(0.0, 1.0);
                        if t.is_finite() {
                            (t * 255.0).round() as u8
                        } else {
                            0
                        }
                    };
                    let color = if ch == 1 {
                        let g = val(0);
                        RGBColor(g, g, g)
                    } else {
                        RGBColor(val(0), val(1), val(2))
                    };
                    let (a, b) = (
                        gx as i32 + (x as f64 * px) as i32,
                        gy as i32 + (y as f64 * px) as i32,
                    );
                    let (c2, d2) = (
                        gx as i32 + ((x + 1) as f64 * px) as i32,
                        gy as i32 + ((y + 1) as f64 * px) as i32,
                    );
                    root.draw(&Rectangle::new([(a, b), (c2, d2)], color.filled()))
                        .map_err(err)?;
                }
            }
        }
        Ok(())
    })
}

/// The normalised density exp(−E)/Z of a 1-D energy on `[lo, hi]`
/// (trapezoid rule on 2001 points), as a function for [`histograms`].
pub fn density_1d(energy: &dyn BatchEnergy, lo: f64, hi: f64) -> impl Fn(usize, f64) -> f64 + '_ {
    let n = 2001;
    let xs: Vec<f64> = (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect();
    let mut e = vec![0.0; n];
    energy.energy(&xs, n, &mut e);
    let m = e
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let h = (hi - lo) / (n - 1) as f64;
    let p: Vec<f64> = e
        .iter()
        .map(|v| if v.is_finite() { (-(v - m)).exp() } else { 0.0 })
        .collect();
    let z = h * (p.iter().sum::<f64>() - 0.5 * (p[0] + p[n - 1]));
    move |_, x| {
        let mut v = [0.0];
        energy.energy(&[x], 1, &mut v);
        if v[0].is_finite() && z > 0.0 {
            (-(v[0] - m)).exp() / z
        } else {
            0.0
        }
    }
}

/// One sensible plot for `d`: an image grid when the draws have an image
/// shape, a scatter over the density for 2-D, a histogram with the
/// normalised density for 1-D, marginal histograms otherwise.
pub fn plot_auto(
    path: &Path,
    d: &Draws,
    energy: Option<&dyn BatchEnergy>,
    title: &str,
) -> Result<(), String> {
    if let Some(shape) = d
        .image_shape
        .clone()
        .or_else(|| energy.and_then(|e| e.image_shape()))
    {
        return image_grid(path, d, &shape, 64, title);
    }
    match d.dim {
        1 => match energy {
            Some(e) if e.dim() == 1 => {
                let v = d.coord(0);
                let (lo, hi) = range_of(&v);
                let (lo, hi) = (lo - (hi - lo), hi + (hi - lo));
                let f = density_1d(e, lo, hi);
                histograms(path, d, &[0], Some(&f), title)
            }
            _ => histograms(path, d, &[0], None, title),
        },
        2 => scatter_density(path, d, energy, (0, 1), title),
        n => {
            let coords: Vec<usize> = (0..n.min(16)).collect();
            histograms(path, d, &coords, None, title)
        }
    }
}

#[cfg(test)]
mod tests;
