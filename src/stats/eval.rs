//! Evaluation of trained energies against data: the sample-based MMD² (any
//! dimension) and, for 2-D energies, grid quadrature of the partition
//! function, held-out negative log-likelihood and KL(data ‖ model) against
//! the closed-form densities of the bundled toy data sets.
//!
//! Everything here is a pure, deterministic f64 function of its inputs (no
//! threads, no randomness: subsamples are strided, caps take the first
//! rows). Points are batch-major (`rows × dim`), as everywhere in the tool.
//! Degenerate inputs (too few rows, a zero dimension, a bad bandwidth, no
//! data mass on the grid) give NaN rather than an error, so a training loop
//! can log them and go on; a grid or an energy that cannot be integrated is
//! an error.

use std::f64::consts::PI;

/// [`mmd2`] uses at most this many rows of each side (the first ones:
/// callers shuffle, or pass draws from independent chains).
pub const MMD_MAX_ROWS: usize = 4000;

/// The median heuristic looks at most this many rows of each side (strided
/// through the rows [`mmd2`] uses).
pub const MEDIAN_MAX_ROWS: usize = 1000;

/// [`grid_density`] hands the energy at most this many points per call.
pub const GRID_BATCH: usize = 65536;

/// The largest grid side [`grid_density`] accepts (4096² cells).
pub const GRID_MAX_N: usize = 4096;

/// An MMD² estimate and the RBF bandwidth it used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mmd {
    pub mmd2: f64,
    pub bandwidth: f64,
}

fn rows(x: &[f64], dim: usize) -> usize {
    x.len().checked_div(dim).unwrap_or(0)
}

/// The first [`MMD_MAX_ROWS`] whole rows of `x`.
fn capped(x: &[f64], dim: usize) -> &[f64] {
    &x[..rows(x, dim).min(MMD_MAX_ROWS) * dim]
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The median-heuristic bandwidth: the median Euclidean distance between
/// distinct points of the pooled sample `a ∪ b` (each `rows × dim`), on at
/// most [`MEDIAN_MAX_ROWS`] rows of each side, evenly strided. Non-finite
/// distances are left out; when no distance remains or the median is 0 (all
/// points equal) the bandwidth is 1.
pub fn median_bandwidth(a: &[f64], b: &[f64], dim: usize) -> f64 {
    let pick = |x: &[f64]| -> Vec<usize> {
        let n = rows(x, dim);
        let s = n.min(MEDIAN_MAX_ROWS);
        (0..s).map(|k| k * n / s).collect()
    };
    let pts: Vec<&[f64]> = pick(a)
        .into_iter()
        .map(|r| &a[r * dim..(r + 1) * dim])
        .chain(pick(b).into_iter().map(|r| &b[r * dim..(r + 1) * dim]))
        .collect();
    let mut d = Vec::with_capacity(pts.len() * pts.len().saturating_sub(1) / 2);
    for i in 0..pts.len() {
        for j in i + 1..pts.len() {
            let v = sq_dist(pts[i], pts[j]).sqrt();
            if v.is_finite() {
                d.push(v);
            }
        }
    }
    let med = median(&mut d);
    if med > 0.0 && med.is_finite() {
        med
    } else {
        1.0
    }
}

/// Median (mean of the two middle values for an even count; NaN when empty).
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let (len, k) = (v.len(), (v.len() - 1) / 2);
    let (_, mid, upper) = v.select_nth_unstable_by(k, f64::total_cmp);
    let lo = *mid;
    if len % 2 == 1 {
        lo
    } else {
        let hi = upper.iter().copied().fold(f64::INFINITY, f64::min);
        0.5 * (lo + hi)
    }
}

/// The unbiased estimate of MMD² between the samples `a` and `b` (each
/// `rows × dim`, batch-major) with the RBF kernel
/// k(x, y) = exp(−‖x − y‖² / (2h²)):
///
/// MMD²_u = Σ_{i≠j} k(aᵢ, aⱼ)/(n(n−1)) + Σ_{i≠j} k(bᵢ, bⱼ)/(m(m−1))
///          − 2 Σ_{i,j} k(aᵢ, bⱼ)/(nm).
///
/// `h` is `bandwidth`, or by the median heuristic ([`median_bandwidth`])
/// when `None`. Only the first [`MMD_MAX_ROWS`] rows of each side count
/// (the cost is quadratic), so callers pass shuffled or independent rows.
/// The estimate is unbiased, so it can be slightly negative when the two
/// distributions agree. NaN when `dim` is 0, a side has fewer than 2 rows,
/// the given bandwidth is not a positive finite number, or a coordinate of
/// the rows used is not finite (drop divergent draws first).
pub fn mmd2(a: &[f64], b: &[f64], dim: usize, bandwidth: Option<f64>) -> Mmd {
    let (a, b) = (capped(a, dim), capped(b, dim));
    let h = bandwidth.unwrap_or_else(|| median_bandwidth(a, b, dim));
    let (n, m) = (rows(a, dim), rows(b, dim));
    let finite = a.iter().chain(b).all(|v| v.is_finite());
    if n < 2 || m < 2 || !(h > 0.0 && h.is_finite()) || !finite {
        return Mmd {
            mmd2: f64::NAN,
            bandwidth: h,
        };
    }
    let gamma = 1.0 / (2.0 * h * h);
    let k = |x: &[f64], y: &[f64]| (-gamma * sq_dist(x, y)).exp();
    let within = |x: &[f64], n: usize| {
        let mut s = 0.0;
        for i in 0..n {
            let xi = &x[i * dim..(i + 1) * dim];
            for j in i + 1..n {
                s += k(xi, &x[j * dim..(j + 1) * dim]);
            }
        }
        2.0 * s / (n as f64 * (n as f64 - 1.0))
    };
    let mut cross = 0.0;
    for i in 0..n {
        let ai = &a[i * dim..(i + 1) * dim];
        for j in 0..m {
            cross += k(ai, &b[j * dim..(j + 1) * dim]);
        }
    }
    let cross = cross / (n as f64 * m as f64);
    Mmd {
        mmd2: within(a, n) + within(b, m) - 2.0 * cross,
        bandwidth: h,
    }
}

/// MMD² between the first and the second half of `held_out` (`rows × dim`;
/// with an odd count the second half has the extra row) at `bandwidth`: the
/// level a perfect model reaches, i.e. the estimator's own noise. Its
/// expectation is 0, so what it measures is the spread; it is computed on
/// half-size samples, so a model compared on samples of the same size as
/// each half is compared like with like. NaN as for [`mmd2`].
pub fn mmd_noise_floor(held_out: &[f64], dim: usize, bandwidth: f64) -> f64 {
    let n = rows(held_out, dim);
    let half = n / 2;
    let (first, second) = held_out[..n * dim].split_at(half * dim);
    mmd2(first, second, dim, Some(bandwidth)).mmd2
}

/// A 2-D grid of `n × n` equal cells over `[lo₀, hi₀] × [lo₁, hi₁]`,
/// integrated by the midpoint rule (each cell by its centre). Cell `k` is
/// column `i = k % n` (along x₀) of row `j = k / n` (along x₁), the layout of
/// `plot::density_grid`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub lo: [f64; 2],
    pub hi: [f64; 2],
    pub n: usize,
}

impl Grid {
    /// The number of cells, n².
    pub fn cells(&self) -> usize {
        self.n * self.n
    }

    /// The area of one cell.
    pub fn cell_area(&self) -> f64 {
        let n = self.n as f64;
        (self.hi[0] - self.lo[0]) / n * ((self.hi[1] - self.lo[1]) / n)
    }

    /// The centre of cell `k`.
    pub fn centre(&self, k: usize) -> [f64; 2] {
        let (i, j) = (k % self.n.max(1), k / self.n.max(1));
        let n = self.n as f64;
        [
            self.lo[0] + (self.hi[0] - self.lo[0]) * (i as f64 + 0.5) / n,
            self.lo[1] + (self.hi[1] - self.lo[1]) * (j as f64 + 0.5) / n,
        ]
    }

    fn check(&self) -> Result<(), String> {
        if self.n == 0 || self.n > GRID_MAX_N {
            return Err(format!(
                "grid: {} cells per side (1 to {GRID_MAX_N})",
                self.n
            ));
        }
        for c in 0..2 {
            let (lo, hi) = (self.lo[c], self.hi[c]);
            if !(lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite()) {
                return Err(format!(
                    "grid: coordinate {c} spans [{lo}, {hi}] (need finite lo < hi)"
                ));
            }
        }
        // Finite, ordered bounds make the area finite; it can still underflow.
        if self.cell_area() <= 0.0 {
            return Err("grid: the cells have no area (the ranges are too small)".into());
        }
        Ok(())
    }
}

/// A 2-D energy integrated on a [`Grid`]: log Z and the normalised log
/// density at every cell centre (cell order as in [`Grid`]).
#[derive(Clone, Debug, PartialEq)]
pub struct GridDensity {
    pub grid: Grid,
    /// log Z = log Σ_cells exp(−E(centre)) · area.
    pub log_z: f64,
    /// log p(centre) = −E(centre) − log Z, one per cell.
    pub log_p: Vec<f64>,
}

/// A batched energy for [`grid_density`]: `(points, batch, out)`, points
/// `batch × 2` batch-major, `batch` energies written into `out`.
pub type GridEnergy<'a> = dyn FnMut(&[f64], usize, &mut [f64]) -> Result<(), String> + 'a;

/// Evaluates `energy` at every cell centre of `grid` and integrates
/// exp(−E) by the midpoint rule. `energy(points, batch, out)` receives at
/// most [`GRID_BATCH`] points (`batch × 2`, batch-major) per call and writes
/// `batch` energies into `out`. log Z is computed as a shifted logsumexp, so
/// it is exact to rounding however large or small the energies are. An
/// error from `energy` is passed on; a non-finite energy at any centre
/// (including one `energy` did not write) is an error naming that point.
pub fn grid_density(grid: &Grid, energy: &mut GridEnergy<'_>) -> Result<GridDensity, String> {
    grid.check()?;
    let cells = grid.cells();
    let mut e = vec![f64::NAN; cells];
    let mut pts = Vec::with_capacity(2 * cells.min(GRID_BATCH));
    let mut start = 0;
    while start < cells {
        let end = (start + GRID_BATCH).min(cells);
        pts.clear();
        pts.extend((start..end).flat_map(|k| grid.centre(k)));
        energy(&pts, end - start, &mut e[start..end])?;
        start = end;
    }
    if let Some(k) = e.iter().position(|v| !v.is_finite()) {
        let [x0, x1] = grid.centre(k);
        return Err(format!(
            "the energy is {} at ({x0}, {x1}) (grid cell {}, {}); the density cannot be integrated",
            e[k],
            k % grid.n,
            k / grid.n
        ));
    }
    let min = e.iter().copied().fold(f64::INFINITY, f64::min);
    let sum: f64 = e.iter().map(|v| (min - v).exp()).sum();
    let log_z = -min + sum.ln() + grid.cell_area().ln();
    let log_p = e.iter().map(|v| -v - log_z).collect();
    Ok(GridDensity {
        grid: *grid,
        log_z,
        log_p,
    })
}

/// Held-out negative log-likelihood per point: mean E(x) + log Z, given the
/// energies at the data points and log Z (from [`grid_density`]). NaN for no
/// points.
pub fn heldout_nll(log_z: f64, energies_at_data: &[f64]) -> f64 {
    if energies_at_data.is_empty() {
        return f64::NAN;
    }
    energies_at_data.iter().sum::<f64>() / energies_at_data.len() as f64 + log_z
}

/// The closed-form log density of a bundled 2-D toy data set, or `None` for
/// a name without one (or a noise level it does not have):
///
/// * `eight_gaussians`: the equal-weight mixture of 8 isotropic Gaussians
///   with means 2·(cos 2πk/8, sin 2πk/8) and standard deviation `noise`
///   (the generator's default is 0.1); `noise` must be positive and finite.
/// * `checkerboard` (only with `noise` 0): density 1/8 on the eight unit
///   squares [a, a+1) × [b, b+1) of [−2, 2)² with a + b even, 0 elsewhere
///   (log density −∞). These are the squares the generator
///   x₀ ~ U(−2, 2), x₁ = U(0, 1) − 2B + rem_euclid(⌊x₀⌋, 2), B ~ Bernoulli(½)
///   fills: ⌊x₀⌋ ∈ {−2, 0} gives ⌊x₁⌋ ∈ {0, −2}, ⌊x₀⌋ ∈ {−1, 1} gives
///   ⌊x₁⌋ ∈ {1, −1}, each square with probability 1/8.
pub fn known_log_density(name: &str, noise: f64) -> Option<Box<dyn Fn([f64; 2]) -> f64>> {
    match name {
        "eight_gaussians" if noise > 0.0 && noise.is_finite() => {
            let means: Vec<[f64; 2]> = (0..8)
                .map(|k| {
                    let t = 2.0 * PI * k as f64 / 8.0;
                    [2.0 * t.cos(), 2.0 * t.sin()]
                })
                .collect();
            let inv = 1.0 / (2.0 * noise * noise);
            let norm = -(8.0f64).ln() - (2.0 * PI * noise * noise).ln();
            Some(Box::new(move |x: [f64; 2]| {
                let q: Vec<f64> = means.iter().map(|m| -inv * sq_dist(&x, m)).collect();
                let top = q.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if !top.is_finite() {
                    return if x.iter().any(|v| v.is_nan()) {
                        f64::NAN
                    } else {
                        f64::NEG_INFINITY
                    };
                }
                norm + top + q.iter().map(|v| (v - top).exp()).sum::<f64>().ln()
            }))
        }
        "checkerboard" if noise == 0.0 => Some(Box::new(|x: [f64; 2]| {
            if x.iter().any(|v| v.is_nan()) {
                return f64::NAN;
            }
            let inside = x.iter().all(|v| (-2.0..2.0).contains(v));
            if inside && (x[0].floor() + x[1].floor()).rem_euclid(2.0) == 0.0 {
                -(8.0f64).ln()
            } else {
                f64::NEG_INFINITY
            }
        })),
        _ => None,
    }
}

/// KL(data ‖ model) on the grid of `model`: Σ p_d · (log p_d − log p_m) · area
/// over the cells where p_d > 0, with p_m the model's grid-normalised
/// density and p_d the data density `log_p_data` renormalised on the same
/// grid, so that data mass outside the grid (truncation) or midpoint error
/// does not bias the divergence: it is the exact KL between the two
/// distributions of cell masses, ≥ 0 up to rounding. For an unbiased value
/// the grid must cover the data's support and resolve it (for the toy sets,
/// lo = −4, hi = 4, n = 200: cells of 0.04, aligned with the checkerboard's
/// squares). NaN when `log_p_data` is NaN or +∞ at some centre or the data
/// has no mass on the grid.
pub fn kl_data_model(grid: &GridDensity, log_p_data: &dyn Fn([f64; 2]) -> f64) -> f64 {
    let g = &grid.grid;
    if grid.log_p.len() != g.cells() {
        return f64::NAN;
    }
    let lp: Vec<f64> = (0..g.cells()).map(|k| log_p_data(g.centre(k))).collect();
    if lp.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
        return f64::NAN;
    }
    let top = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return f64::NAN;
    }
    let area = g.cell_area();
    let log_zd = top + lp.iter().map(|v| (v - top).exp()).sum::<f64>().ln() + area.ln();
    lp.iter()
        .zip(&grid.log_p)
        .filter(|(d, _)| d.is_finite())
        .map(|(d, m)| {
            let d = d - log_zd;
            d.exp() * (d - m) * area
        })
        .sum()
}

#[cfg(test)]
mod tests;
