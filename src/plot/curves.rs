//! Training curves: line charts of named series of `(x, y)` points (losses,
//! metrics against the step), one coloured line per series with a legend,
//! on a linear ([`loss_curves`]) or a logarithmic ([`loss_curves_log`]) y
//! axis.
//!
//! A curve plot never fails on its values: non-finite points (and, on the
//! log axis, points with y ≤ 0) are skipped, an empty series only shows in
//! the legend, and the axes span the finite points, clamped to ±1e300 and
//! widened when degenerate, so huge, tiny or constant
//! values still draw. Series with few points also get a marker per point,
//! so a single evaluation shows.

use std::path::Path;

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{AXIS_MAX, chain_color, err, full_range, with_png};

/// The size of a curve plot, in pixels.
pub const CURVES_SIZE: (u32, u32) = (900, 560);

/// The y values a log axis shows: their ratio stays finite.
const LOG_MIN: f64 = 1e-150;
const LOG_MAX: f64 = 1e150;

/// Series with at most this many points get a marker at each.
const MARKED: usize = 30;

/// One named series of `(x, y)` points, in drawing order.
pub type Series<'a> = (&'a str, Vec<(f64, f64)>);

/// Line chart of `series` against `x_label` on a linear y axis.
pub fn loss_curves(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[Series],
) -> Result<(), String> {
    curves(path, title, x_label, series, false)
}

/// As [`loss_curves`], on a log₁₀ y axis (points with y ≤ 0 are skipped;
/// values are clamped to [1e-150, 1e150], so that the axis spans at most
/// 300 decades: plotters loops forever on a wider one).
pub fn loss_curves_log(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[Series],
) -> Result<(), String> {
    curves(path, title, x_label, series, true)
}

fn curves(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<(), String> {
    let (ymin, ymax) = if log_y {
        (LOG_MIN, LOG_MAX)
    } else {
        (-AXIS_MAX, AXIS_MAX)
    };
    let shown: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(_, pts)| {
            pts.iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
                .map(|&(x, y)| (x.clamp(-AXIS_MAX, AXIS_MAX), y.clamp(ymin, ymax)))
                .collect()
        })
        .collect();
    let xs: Vec<f64> = shown.iter().flatten().map(|p| p.0).collect();
    let ys: Vec<f64> = shown.iter().flatten().map(|p| p.1).collect();
    let (x0, x1) = full_range(&xs);
    let names: Vec<&str> = series.iter().map(|s| s.0).collect();
    with_png(path, CURVES_SIZE, |root| {
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(
                title,
                ("sans-serif", super::title_font(title, CURVES_SIZE.0, 24)),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(78);
        if log_y {
            let (y0, y1) = log_range(&ys);
            let chart = builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(err)?;
            draw_lines(chart, x_label, (x1 - x0) / 10.0, None, &names, &shown)
        } else {
            let (y0, y1) = full_range(&ys);
            let chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
            let y_step = (y1 - y0) / 10.0;
            draw_lines(
                chart,
                x_label,
                (x1 - x0) / 10.0,
                Some(y_step),
                &names,
                &shown,
            )
        }
    })
}

/// The y range of a log axis: the positive values' extremes, widened by 5%
/// of the decades spanned (at least a factor 1.5 each way), within
/// [`LOG_MIN`, `LOG_MAX`]; 0.1 to 10 without values.
fn log_range(ys: &[f64]) -> (f64, f64) {
    let (lo, hi) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    if !(lo > 0.0 && hi.is_finite()) {
        return (0.1, 10.0);
    }
    let f = (hi / lo).powf(0.05).max(1.5);
    ((lo / f).max(LOG_MIN), (hi * f).min(LOG_MAX))
}

/// A tick label for `v` on an axis whose ticks are about `step` apart: plain
/// for moderate magnitudes, scientific beyond, with just enough digits to
/// tell neighbouring ticks apart (trailing zeros trimmed).
pub(crate) fn tick(v: f64, step: f64) -> String {
    let a = v.abs();
    if a == 0.0 || !v.is_finite() {
        return if a == 0.0 { "0".into() } else { format!("{v}") };
    }
    let step_exp = if step > 0.0 && step.is_finite() {
        step.log10().floor()
    } else {
        a.log10().floor()
    };
    let trim = |m: &str| -> String {
        if m.contains('.') {
            m.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            m.to_string()
        }
    };
    if (1e-3..1e5).contains(&a) {
        let decimals = (1.0 - step_exp).clamp(0.0, 15.0) as usize;
        trim(&format!("{v:.decimals$}"))
    } else {
        let digits = (a.log10().floor() - step_exp + 1.0).clamp(1.0, 15.0) as usize;
        let s = format!("{v:.digits$e}");
        match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", trim(m)),
            None => s,
        }
    }
}

/// Mesh, one line (and markers for short series) per series, and the
/// legend. `x_step`, `y_step`: the tick spacing the labels must resolve
/// (`None` for a log axis).
fn draw_lines<'a, Y>(
    mut chart: ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    x_label: &str,
    x_step: f64,
    y_step: Option<f64>,
    names: &[&str],
    shown: &[Vec<(f64, f64)>],
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(230, 230, 230))
        .x_desc(x_label)
        .x_label_formatter(&|v| tick(*v, x_step))
        // A log axis steps by its own magnitude.
        .y_label_formatter(&|v| tick(*v, y_step.unwrap_or(v.abs())))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    for (k, (name, pts)) in names.iter().zip(shown).enumerate() {
        let color = chain_color(k);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        if pts.len() <= MARKED {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
    }
    if !names.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// A reliability diagram: for each confidence bin with predictions, a bar
/// up to the bin's accuracy and a marker at its mean confidence, against
/// the diagonal of perfect calibration; the title gives the ECE.
pub fn reliability(
    path: &Path,
    cal: &crate::stats::classify::Calibration,
    title: &str,
) -> Result<(), String> {
    let caption = format!("{title} (ECE {:.4}, accuracy {:.4})", cal.ece, cal.accuracy);
    with_png(path, (640, 640), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                &caption,
                ("sans-serif", super::title_font(&caption, 640, 20)),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("confidence (largest probability)")
            .y_desc("accuracy")
            .light_line_style(WHITE)
            .draw()
            .map_err(err)?;
        let bars = cal
            .bins
            .iter()
            .filter(|b| b.count > 0 && b.accuracy.is_finite());
        chart
            .draw_series(bars.clone().map(|b| {
                Rectangle::new(
                    [
                        (b.lo + 0.004, 0.0),
                        (b.hi - 0.004, b.accuracy.clamp(0.0, 1.0)),
                    ],
                    chain_color(0).mix(0.7).filled(),
                )
            }))
            .map_err(err)?
            .label("accuracy per bin")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], chain_color(0).filled())
            });
        chart
            .draw_series(bars.map(|b| {
                Circle::new(
                    ((b.lo + b.hi) / 2.0, b.confidence.clamp(0.0, 1.0)),
                    4,
                    chain_color(3).filled(),
                )
            }))
            .map_err(err)?
            .label("mean confidence per bin")
            .legend(|(x, y)| Circle::new((x + 6, y), 4, chain_color(3).filled()));
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                BLACK.stroke_width(1),
            ))
            .map_err(err)?
            .label("perfect calibration")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}
