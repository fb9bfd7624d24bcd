//! The metric of the gradient samplers: each chain's inverse mass matrix
//! M⁻¹ (the covariance the sampler expects the target to have), and the
//! three operations the moves need from it: the velocity M⁻¹p, momenta
//! p = L⁻ᵀξ ~ N(0, M) and noise Lξ ~ N(0, M⁻¹) with LLᵀ = M⁻¹, and the
//! proposal norm ‖L⁻¹w‖² of MALA's ratio.
//!
//! A unit or diagonal metric is a vector per chain, which the fused kernels
//! take as their `inv_mass` input. A dense metric is a d×d matrix and its
//! Cholesky factor per chain; the moves then apply it on the host around
//! the kernel's E and ∇E (`engine`), at d² work per chain and gradient,
//! which is why its dimension is bounded ([`MAX_DENSE_DIM`]).
//!
//! Warm-up estimates (`Covariance`) get Stan's ridge made relative,
//! Σ + 10⁻³·(5/(n+5))·diag(Σ), so a window of a few draws still gives a
//! positive-definite matrix while a coordinate of scale 10⁻³ keeps its size.

pub use super::config::{MAX_DENSE_DIM, MetricKind};

/// Every chain's metric in one block (`n` chains of dimension `dim`).
#[derive(Clone, Debug)]
pub struct Metrics {
    pub kind: MetricKind,
    pub n: usize,
    pub dim: usize,
    /// Unit and diagonal: M⁻¹'s diagonal, `n × dim` (ones for dense).
    pub diag: Vec<f64>,
    /// Dense: M⁻¹ and its lower Cholesky factor, `n × dim × dim` row-major.
    pub sigma: Vec<f64>,
    pub chol: Vec<f64>,
}

impl Metrics {
    /// The identity metric for every chain.
    pub fn identity(kind: MetricKind, n: usize, dim: usize) -> Metrics {
        let (sigma, chol) = if kind == MetricKind::Dense {
            let mut eye = vec![0.0; n * dim * dim];
            for c in 0..n {
                for i in 0..dim {
                    eye[(c * dim + i) * dim + i] = 1.0;
                }
            }
            (eye.clone(), eye)
        } else {
            (Vec::new(), Vec::new())
        };
        Metrics {
            kind,
            n,
            dim,
            diag: vec![1.0; n * dim],
            sigma,
            chol,
        }
    }

    pub fn dense(&self) -> bool {
        self.kind == MetricKind::Dense
    }

    fn mat<'a>(&self, m: &'a [f64], c: usize) -> &'a [f64] {
        let dd = self.dim * self.dim;
        &m[c * dd..(c + 1) * dd]
    }

    /// Sets chain `c`'s diagonal metric.
    pub fn set_diag(&mut self, c: usize, var: &[f64]) {
        self.diag[c * self.dim..(c + 1) * self.dim].copy_from_slice(var);
    }

    /// Sets chain `c`'s dense metric; keeps the old one (and returns false)
    /// when `cov` is not positive definite.
    pub fn set_dense(&mut self, c: usize, cov: &[f64]) -> bool {
        let Some(l) = cholesky(cov, self.dim) else {
            return false;
        };
        let dd = self.dim * self.dim;
        self.sigma[c * dd..(c + 1) * dd].copy_from_slice(cov);
        self.chol[c * dd..(c + 1) * dd].copy_from_slice(&l);
        true
    }

    /// v = M⁻¹p for chain `c`.
    pub fn velocity(&self, c: usize, p: &[f64], v: &mut [f64]) {
        let d = self.dim;
        if self.dense() {
            mat_vec(self.mat(&self.sigma, c), d, p, v);
        } else {
            for i in 0..d {
                v[i] = self.diag[c * d + i] * p[i];
            }
        }
    }

    /// p = L⁻ᵀξ, distributed N(0, M) for standard normal ξ.
    pub fn momentum(&self, c: usize, xi: &[f64], p: &mut [f64]) {
        let d = self.dim;
        if self.dense() {
            solve_upper_t(self.mat(&self.chol, c), d, xi, p);
        } else {
            for i in 0..d {
                p[i] = xi[i] / self.diag[c * d + i].sqrt();
            }
        }
    }

    /// Lξ, distributed N(0, M⁻¹) for standard normal ξ.
    pub fn noise(&self, c: usize, xi: &[f64], out: &mut [f64]) {
        let d = self.dim;
        if self.dense() {
            lower_vec(self.mat(&self.chol, c), d, xi, out);
        } else {
            for i in 0..d {
                out[i] = self.diag[c * d + i].sqrt() * xi[i];
            }
        }
    }

    /// wᵀMw = ‖L⁻¹w‖².
    pub fn inv_norm2(&self, c: usize, w: &[f64], tmp: &mut [f64]) -> f64 {
        let d = self.dim;
        if self.dense() {
            solve_lower(self.mat(&self.chol, c), d, w, tmp);
            tmp.iter().map(|z| z * z).sum()
        } else {
            (0..d).map(|i| w[i] * w[i] / self.diag[c * d + i]).sum()
        }
    }

    /// The diagonal of chain `c`'s M⁻¹.
    pub fn diagonal(&self, c: usize) -> Vec<f64> {
        let d = self.dim;
        if self.dense() {
            (0..d)
                .map(|i| self.mat(&self.sigma, c)[i * d + i])
                .collect()
        } else {
            self.diag[c * d..(c + 1) * d].to_vec()
        }
    }

    /// Chain `c`'s M⁻¹ as the run summary and CmdStan's adaptation block
    /// report it: the diagonal, or the full matrix row-major.
    pub fn report(&self, c: usize) -> Vec<f64> {
        if self.dense() {
            self.mat(&self.sigma, c).to_vec()
        } else {
            self.diag[c * self.dim..(c + 1) * self.dim].to_vec()
        }
    }
}

/// out = A·v for a d×d row-major A.
fn mat_vec(a: &[f64], d: usize, v: &[f64], out: &mut [f64]) {
    for i in 0..d {
        out[i] = a[i * d..(i + 1) * d]
            .iter()
            .zip(v)
            .map(|(x, y)| x * y)
            .sum();
    }
}

/// out = L·v for a lower-triangular L.
fn lower_vec(l: &[f64], d: usize, v: &[f64], out: &mut [f64]) {
    for i in 0..d {
        out[i] = l[i * d..i * d + i + 1]
            .iter()
            .zip(v)
            .map(|(x, y)| x * y)
            .sum();
    }
}

/// Solves L·z = w (forward substitution).
fn solve_lower(l: &[f64], d: usize, w: &[f64], z: &mut [f64]) {
    for i in 0..d {
        let s: f64 = (0..i).map(|j| l[i * d + j] * z[j]).sum();
        z[i] = (w[i] - s) / l[i * d + i];
    }
}

/// Solves Lᵀ·z = w (back substitution on the transpose).
fn solve_upper_t(l: &[f64], d: usize, w: &[f64], z: &mut [f64]) {
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|j| l[j * d + i] * z[j]).sum();
        z[i] = (w[i] - s) / l[i * d + i];
    }
}

/// The lower Cholesky factor of a symmetric positive-definite d×d matrix,
/// or `None` when it is not (or holds a non-finite value).
pub fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            let v = a[i * d + j] - s;
            if i == j {
                if !(v > 0.0 && v.is_finite()) {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = v / l[j * d + j];
                if !l[i * d + j].is_finite() {
                    return None;
                }
            }
        }
    }
    Some(l)
}

/// The inverse of a symmetric positive-definite d×d matrix (through its
/// Cholesky factor), or `None` when it is not positive definite.
pub fn inverse_spd(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let l = cholesky(a, d)?;
    let mut inv = vec![0.0; d * d];
    let (mut e, mut z, mut col) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    for j in 0..d {
        e.fill(0.0);
        e[j] = 1.0;
        solve_lower(&l, d, &e, &mut z);
        solve_upper_t(&l, d, &z, &mut col);
        for i in 0..d {
            inv[i * d + j] = col[i];
        }
    }
    inv.iter().all(|v| v.is_finite()).then_some(inv)
}

/// Running mean and covariance of a warm-up window (Welford's update,
/// the full matrix).
#[derive(Clone, Debug, PartialEq)]
pub struct Covariance {
    pub n: f64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Covariance {
    pub fn new(dim: usize) -> Self {
        Covariance {
            n: 0.0,
            mean: vec![0.0; dim],
            m2: vec![0.0; dim * dim],
        }
    }
    pub fn add(&mut self, x: &[f64]) {
        let d = self.mean.len();
        self.n += 1.0;
        let before: Vec<f64> = x.iter().zip(&self.mean).map(|(v, m)| v - m).collect();
        for i in 0..d {
            self.mean[i] += before[i] / self.n;
        }
        for i in 0..d {
            let after = x[i] - self.mean[i];
            for j in 0..d {
                self.m2[i * d + j] += after * before[j];
            }
        }
    }
    /// The window's covariance with a ridge of 10⁻³·5/(n+5) times each
    /// variance on the diagonal (Stan's ridge, made relative so that small
    /// scales keep their size; the correlations stay as measured: shrinking
    /// them would undo a −0.99 correlation); a coordinate without a usable
    /// variance falls back to `prev_diag` (the metric in use) and loses its
    /// correlations.
    pub fn regularized(&self, prev_diag: &[f64]) -> Vec<f64> {
        let (n, d) = (self.n, self.mean.len());
        let ridge = 1.0 + 1e-3 * 5.0 / (n + 5.0);
        let cov = |i: usize, j: usize| 0.5 * (self.m2[i * d + j] + self.m2[j * d + i]) / (n - 1.0);
        let usable: Vec<bool> = (0..d)
            .map(|i| n > 1.0 && cov(i, i) > 0.0 && cov(i, i).is_finite())
            .collect();
        let mut out = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                out[i * d + j] = if i == j {
                    if usable[i] {
                        ridge * cov(i, i)
                    } else {
                        prev_diag[i]
                    }
                } else if usable[i] && usable[j] {
                    cov(i, j)
                } else {
                    0.0
                };
            }
        }
        out
    }
    pub fn reset(&mut self) {
        *self = Covariance::new(self.mean.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense_of(cov: &[f64]) -> Metrics {
        let mut m = Metrics::identity(MetricKind::Dense, 1, 2);
        assert!(m.set_dense(0, cov));
        m
    }

    #[test]
    fn cholesky_reconstructs_and_refuses_indefinite() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let l = cholesky(&a, 2).unwrap();
        let back = [
            l[0] * l[0],
            l[0] * l[2],
            l[2] * l[0],
            l[2] * l[2] + l[3] * l[3],
        ];
        for (x, y) in back.iter().zip(&a) {
            assert!((x - y).abs() < 1e-12);
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
        assert!(cholesky(&[f64::NAN, 0.0, 0.0, 1.0], 2).is_none());
    }

    #[test]
    fn momentum_noise_and_norm_agree_with_the_matrix() {
        let cov = [2.0, -1.2, -1.2, 1.0];
        let m = dense_of(&cov);
        let xi = [0.3, -1.7];
        // p = L⁻ᵀξ has pᵀM⁻¹p = ξᵀξ.
        let mut p = [0.0; 2];
        m.momentum(0, &xi, &mut p);
        let mut v = [0.0; 2];
        m.velocity(0, &p, &mut v);
        let k: f64 = p.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert!((k - (0.09 + 2.89)).abs() < 1e-12, "{k}");
        // w = Lξ has ‖L⁻¹w‖² = ξᵀξ.
        let mut w = [0.0; 2];
        m.noise(0, &xi, &mut w);
        let mut tmp = [0.0; 2];
        assert!((m.inv_norm2(0, &w, &mut tmp) - 2.98).abs() < 1e-12);
        // A matrix that is not positive definite leaves the metric alone.
        let mut m2 = m.clone();
        assert!(!m2.set_dense(0, &[1.0, 3.0, 3.0, 1.0]));
        assert_eq!(m2.sigma, m.sigma);
    }

    #[test]
    fn inverse_spd_inverts() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let inv = inverse_spd(&a, 2).unwrap();
        let det = 8.0;
        let want = [3.0 / det, -2.0 / det, -2.0 / det, 4.0 / det];
        for (x, y) in inv.iter().zip(&want) {
            assert!((x - y).abs() < 1e-12);
        }
        assert!(inverse_spd(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    #[test]
    fn covariance_matches_the_two_pass_estimate() {
        let pts = [[1.0, 2.0], [2.0, 1.0], [4.0, 5.0], [0.5, -1.0]];
        let mut c = Covariance::new(2);
        pts.iter().for_each(|p| c.add(p));
        let mean = [1.875, 1.75];
        let mut cov = [0.0; 4];
        for p in &pts {
            for i in 0..2 {
                for j in 0..2 {
                    cov[i * 2 + j] += (p[i] - mean[i]) * (p[j] - mean[j]) / 3.0;
                }
            }
        }
        let r = c.regularized(&[1.0, 1.0]);
        for i in 0..4 {
            let ridge = if i % 3 == 0 {
                1.0 + 1e-3 * 5.0 / 9.0
            } else {
                1.0
            };
            assert!((r[i] - ridge * cov[i]).abs() < 1e-12);
        }
        // A coordinate that never moved keeps its previous scale and no
        // correlation.
        let mut still = Covariance::new(2);
        still.add(&[1.0, 3.0]);
        still.add(&[2.0, 3.0]);
        let r = still.regularized(&[1.0, 0.25]);
        assert_eq!(r[1..], [0.0, 0.0, 0.25]);
        assert!((r[0] - 0.5 * (1.0 + 1e-3 * 5.0 / 7.0)).abs() < 1e-15);
    }
}
