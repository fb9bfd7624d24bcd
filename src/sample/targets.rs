//! Closed-form energies with known moments, for tests, examples and
//! benchmarks. Each is a [`BatchEnergy`].

use super::BatchEnergy;

fn per_point(
    dim: usize,
    x: &[f64],
    batch: usize,
    e: &mut [f64],
    mut g: Option<&mut [f64]>,
    f: impl Fn(&[f64], Option<&mut [f64]>) -> f64,
) {
    for b in 0..batch {
        let xb = &x[b * dim..(b + 1) * dim];
        e[b] = match g.as_deref_mut() {
            Some(g) => f(xb, Some(&mut g[b * dim..(b + 1) * dim])),
            None => f(xb, None),
        };
    }
}

/// Gaussian E(x) = ½(x−μ)ᵀQ(x−μ) with precision Q (row-major `dim × dim`).
#[derive(Clone, Debug)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    pub prec: Vec<f64>,
    pub cov: Vec<f64>,
}

impl Gaussian {
    /// Covariance `cov` (`dim × dim`, symmetric positive definite).
    pub fn from_cov(mean: Vec<f64>, cov: Vec<f64>) -> Self {
        let prec = invert(&cov, mean.len());
        Gaussian { mean, prec, cov }
    }
    /// Independent coordinates with standard deviation `sd`.
    pub fn iid(dim: usize, sd: f64) -> Self {
        let mut cov = vec![0.0; dim * dim];
        for i in 0..dim {
            cov[i * dim + i] = sd * sd;
        }
        Self::from_cov(vec![0.0; dim], cov)
    }
    /// Zero mean, Σᵢⱼ = ρ^|i−j| (stationary AR(1), unit marginal variance).
    pub fn ar1(dim: usize, rho: f64) -> Self {
        let mut cov = vec![0.0; dim * dim];
        for i in 0..dim {
            for j in 0..dim {
                cov[i * dim + j] = rho.powi((i as i32 - j as i32).abs());
            }
        }
        Self::from_cov(vec![0.0; dim], cov)
    }
    /// 2-D with standard deviations `s1`, `s2` and correlation `rho`.
    pub fn correlated_2d(mean: [f64; 2], s1: f64, s2: f64, rho: f64) -> Self {
        let c = rho * s1 * s2;
        Self::from_cov(mean.to_vec(), vec![s1 * s1, c, c, s2 * s2])
    }
    fn eval(&self, x: &[f64], g: Option<&mut [f64]>) -> f64 {
        let d = self.mean.len();
        let r: Vec<f64> = x.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        let mut e = 0.0;
        let mut qr = vec![0.0; d];
        for i in 0..d {
            let row = &self.prec[i * d..(i + 1) * d];
            qr[i] = row.iter().zip(&r).map(|(q, v)| q * v).sum();
            e += 0.5 * r[i] * qr[i];
        }
        if let Some(g) = g {
            g.copy_from_slice(&qr);
        }
        e
    }
}

/// Gauss–Jordan inverse with partial pivoting (small matrices only).
fn invert(a: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| m[i * n + col].abs().total_cmp(&m[j * n + col].abs()))
            .unwrap_or(col);
        for k in 0..n {
            m.swap(col * n + k, piv * n + k);
            inv.swap(col * n + k, piv * n + k);
        }
        let p = m[col * n + col];
        for k in 0..n {
            m[col * n + k] /= p;
            inv[col * n + k] /= p;
        }
        for r in 0..n {
            if r != col {
                let f = m[r * n + col];
                if f != 0.0 {
                    for k in 0..n {
                        m[r * n + k] -= f * m[col * n + k];
                        inv[r * n + k] -= f * inv[col * n + k];
                    }
                }
            }
        }
    }
    inv
}

impl BatchEnergy for Gaussian {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn energy(&self, x: &[f64], batch: usize, e: &mut [f64]) {
        per_point(self.dim(), x, batch, e, None, |x, g| self.eval(x, g))
    }
    fn energy_grad(&self, x: &[f64], batch: usize, e: &mut [f64], g: &mut [f64]) {
        per_point(self.dim(), x, batch, e, Some(g), |x, g| self.eval(x, g))
    }
}

/// 1-D Gaussian mixture Σₖ wₖ N(μₖ, sₖ²).
#[derive(Clone, Debug)]
pub struct Mixture1d {
    pub weights: Vec<f64>,
    pub means: Vec<f64>,
    pub sds: Vec<f64>,
}

impl Mixture1d {
    pub fn density(&self, x: f64) -> f64 {
        let mut p = 0.0;
        for k in 0..self.weights.len() {
            let z = (x - self.means[k]) / self.sds[k];
            p += self.weights[k] * (-0.5 * z * z).exp()
                / (self.sds[k] * (2.0 * std::f64::consts::PI).sqrt());
        }
        p
    }
    pub fn mean(&self) -> f64 {
        self.weights
            .iter()
            .zip(&self.means)
            .map(|(w, m)| w * m)
            .sum()
    }
    pub fn variance(&self) -> f64 {
        let m = self.mean();
        let m2: f64 = (0..self.weights.len())
            .map(|k| self.weights[k] * (self.sds[k].powi(2) + self.means[k].powi(2)))
            .sum();
        m2 - m * m
    }
    fn eval(&self, x: &[f64], g: Option<&mut [f64]>) -> f64 {
        // −log Σ wₖ N(x; μₖ, sₖ) via a stable log-sum-exp.
        let v = x[0];
        let n = self.weights.len();
        let mut l = vec![0.0; n];
        let mut mx = f64::NEG_INFINITY;
        for k in 0..n {
            let z = (v - self.means[k]) / self.sds[k];
            l[k] = self.weights[k].ln() - self.sds[k].ln() - 0.5 * z * z;
            mx = mx.max(l[k]);
        }
        let s: f64 = l.iter().map(|a| (a - mx).exp()).sum();
        if let Some(g) = g {
            let mut d = 0.0;
            for k in 0..n {
                let r = (l[k] - mx).exp() / s;
                d += r * (v - self.means[k]) / self.sds[k].powi(2);
            }
            g[0] = d;
        }
        -(mx + s.ln()) + 0.5 * (2.0 * std::f64::consts::PI).ln()
    }
}

impl BatchEnergy for Mixture1d {
    fn dim(&self) -> usize {
        1
    }
    fn energy(&self, x: &[f64], batch: usize, e: &mut [f64]) {
        per_point(1, x, batch, e, None, |x, g| self.eval(x, g))
    }
    fn energy_grad(&self, x: &[f64], batch: usize, e: &mut [f64], g: &mut [f64]) {
        per_point(1, x, batch, e, Some(g), |x, g| self.eval(x, g))
    }
}

/// Rosenbrock-type banana: x ~ N(a, s²), y | x ~ N(x², t²), i.e.
/// E = (x−a)²/(2s²) + (y−x²)²/(2t²). Moments: E[y] = a² + s²,
/// Var[y] = t² + 4a²s² + 2s⁴.
#[derive(Clone, Debug)]
pub struct Banana {
    pub a: f64,
    pub s: f64,
    pub t: f64,
}

impl Banana {
    pub fn mean(&self) -> [f64; 2] {
        [self.a, self.a * self.a + self.s * self.s]
    }
    pub fn variance(&self) -> [f64; 2] {
        let (a, s, t) = (self.a, self.s, self.t);
        [s * s, t * t + 4.0 * a * a * s * s + 2.0 * s.powi(4)]
    }
    fn eval(&self, p: &[f64], g: Option<&mut [f64]>) -> f64 {
        let (x, y) = (p[0], p[1]);
        let u = (x - self.a) / (self.s * self.s);
        let r = y - x * x;
        let t2 = self.t * self.t;
        if let Some(g) = g {
            g[0] = u - 2.0 * x * r / t2;
            g[1] = r / t2;
        }
        0.5 * (x - self.a).powi(2) / (self.s * self.s) + 0.5 * r * r / t2
    }
}

impl BatchEnergy for Banana {
    fn dim(&self) -> usize {
        2
    }
    fn energy(&self, x: &[f64], batch: usize, e: &mut [f64]) {
        per_point(2, x, batch, e, None, |x, g| self.eval(x, g))
    }
    fn energy_grad(&self, x: &[f64], batch: usize, e: &mut [f64], g: &mut [f64]) {
        per_point(2, x, batch, e, Some(g), |x, g| self.eval(x, g))
    }
}

/// Independent Laplace coordinates: E = Σ |xᵢ − loc| / scale
/// (mean loc, variance 2·scale²). The gradient at the kink is 0.
#[derive(Clone, Debug)]
pub struct Laplace {
    pub dim: usize,
    pub loc: f64,
    pub scale: f64,
}

impl BatchEnergy for Laplace {
    fn dim(&self) -> usize {
        self.dim
    }
    fn energy(&self, x: &[f64], batch: usize, e: &mut [f64]) {
        per_point(self.dim, x, batch, e, None, |x, _| {
            x.iter().map(|v| (v - self.loc).abs()).sum::<f64>() / self.scale
        })
    }
    fn energy_grad(&self, x: &[f64], batch: usize, e: &mut [f64], g: &mut [f64]) {
        per_point(self.dim, x, batch, e, Some(g), |x, g| {
            if let Some(g) = g {
                for (gi, v) in g.iter_mut().zip(x) {
                    let d = v - self.loc;
                    *gi = if d > 0.0 {
                        1.0 / self.scale
                    } else if d < 0.0 {
                        -1.0 / self.scale
                    } else {
                        0.0
                    };
                }
            }
            x.iter().map(|v| (v - self.loc).abs()).sum::<f64>() / self.scale
        })
    }
}

/// Equal-weight mixture of `k` isotropic 2-D Gaussians (sd `sd`) on a circle
/// of radius `radius`: E = −log Σₖ exp(−|x − cₖ|²/(2sd²)).
#[derive(Clone, Debug)]
pub struct Ring {
    pub k: usize,
    pub radius: f64,
    pub sd: f64,
}

impl Ring {
    pub fn centers(&self) -> Vec<[f64; 2]> {
        (0..self.k)
            .map(|i| {
                let a = 2.0 * std::f64::consts::PI * i as f64 / self.k as f64;
                [self.radius * a.cos(), self.radius * a.sin()]
            })
            .collect()
    }
    fn eval(&self, p: &[f64], g: Option<&mut [f64]>) -> f64 {
        let cs = self.centers();
        let s2 = self.sd * self.sd;
        let l: Vec<f64> = cs
            .iter()
            .map(|c| -((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)) / (2.0 * s2))
            .collect();
        let mx = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = l.iter().map(|a| (a - mx).exp()).sum();
        if let Some(g) = g {
            g[0] = 0.0;
            g[1] = 0.0;
            for (c, lk) in cs.iter().zip(&l) {
                let r = (lk - mx).exp() / s;
                g[0] += r * (p[0] - c[0]) / s2;
                g[1] += r * (p[1] - c[1]) / s2;
            }
        }
        -(mx + s.ln())
    }
}

impl BatchEnergy for Ring {
    fn dim(&self) -> usize {
        2
    }
    fn energy(&self, x: &[f64], batch: usize, e: &mut [f64]) {
        per_point(2, x, batch, e, None, |x, g| self.eval(x, g))
    }
    fn energy_grad(&self, x: &[f64], batch: usize, e: &mut [f64], g: &mut [f64]) {
        per_point(2, x, batch, e, Some(g), |x, g| self.eval(x, g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_grad<E: BatchEnergy>(e: &E, x: &[f64]) {
        let d = e.dim();
        let mut en = [0.0];
        let mut g = vec![0.0; d];
        e.energy_grad(x, 1, &mut en, &mut g);
        for i in 0..d {
            let h = 1e-6;
            let mut xp = x.to_vec();
            xp[i] += h;
            let mut xm = x.to_vec();
            xm[i] -= h;
            let (mut ep, mut em) = ([0.0], [0.0]);
            e.energy(&xp, 1, &mut ep);
            e.energy(&xm, 1, &mut em);
            let fd = (ep[0] - em[0]) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-6 * (1.0 + fd.abs()),
                "coord {i}: {fd} vs {}",
                g[i]
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_grad(&Gaussian::ar1(4, 0.7), &[0.3, -1.0, 0.5, 2.0]);
        check_grad(
            &Gaussian::correlated_2d([1.0, -1.0], 1.0, 2.0, 0.8),
            &[0.3, -0.2],
        );
        check_grad(
            &Mixture1d {
                weights: vec![0.3, 0.7],
                means: vec![-1.5, 1.5],
                sds: vec![1.0, 0.8],
            },
            &[0.4],
        );
        check_grad(
            &Banana {
                a: 1.0,
                s: 1.0,
                t: 0.5,
            },
            &[0.7, 0.2],
        );
        check_grad(
            &Laplace {
                dim: 2,
                loc: 0.5,
                scale: 2.0,
            },
            &[1.0, -0.3],
        );
        check_grad(
            &Ring {
                k: 8,
                radius: 2.0,
                sd: 0.3,
            },
            &[1.2, 0.9],
        );
    }

    #[test]
    fn ar1_precision_is_tridiagonal() {
        let g = Gaussian::ar1(5, 0.6);
        let q = &g.prec;
        assert!(q[2].abs() < 1e-12 && q[5 + 3].abs() < 1e-12);
        assert!((q[0] - 1.0 / (1.0 - 0.36)).abs() < 1e-12);
        assert!((q[6] - 1.36 / 0.64).abs() < 1e-12);
    }
}
