//! The pictures of a training run: snapshots of the negatives (2-D: over
//! the learned density; images: a grid) and the loss curves from
//! `metrics.csv`. A picture that cannot be drawn is skipped, never a
//! failed run: training results matter more than their plots.

use std::path::{Path, PathBuf};

use super::Trainer;
use crate::plot;
use crate::sample::{DensityOf, Draws};

/// `samples_ITER.png`: the latest negatives.
pub fn snapshot(t: &Trainer, dir: &Path, it: usize) -> Option<PathBuf> {
    let x = t.negatives().ok()?;
    let dim = t.energy().dim();
    let n = x.len() / dim.max(1);
    if n == 0 {
        return None;
    }
    let mut d = Draws::empty(n, 1, dim);
    d.x.copy_from_slice(&x);
    let shape = t.energy().x_shape();
    d.image_shape = (shape.len() >= 2).then_some(shape);
    let density = DensityOf::new(t.energy(), None).ok()?;
    let path = dir.join(format!("samples_{it:06}.png"));
    let title = format!("negatives at iteration {it}");
    plot::plot_auto(&path, &d, Some(&density), &title).ok()?;
    Some(path)
}

/// `loss.png`: loss, a classifier's cross-entropy, E(x⁺) and E(x⁻) per iteration, read back from
/// `metrics.csv` (so a resumed run draws its whole history).
pub fn loss_curve(metrics: &Path, png: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(metrics).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let wanted = [
        ("loss", "loss"),
        ("ce", "cross-entropy"),
        ("e_pos", "E(x+)"),
        ("e_neg", "E(x-)"),
    ];
    let cols: Vec<(usize, &str)> = wanted
        .iter()
        .filter_map(|(c, label)| col(c).map(|i| (i, *label)))
        .collect();
    let mut series: Vec<plot::curves::Series> =
        cols.iter().map(|(_, l)| (*l, Vec::new())).collect();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let Some(it) = f.first().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        for (s, (i, _)) in series.iter_mut().zip(&cols) {
            if let Some(v) = f.get(*i).and_then(|v| v.parse::<f64>().ok()) {
                s.1.push((it, v));
            }
        }
    }
    // Columns a run does not fill (a classifier's CE in a CD run) stay out.
    series.retain(|s| !s.1.is_empty());
    plot::loss_curves(png, "training", "iteration", &series).ok()?;
    Some(png.to_path_buf())
}
