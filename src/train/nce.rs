//! Noise-contrastive estimation (Gutmann & Hyvärinen 2010): the energy
//! learns by telling data from samples of a known noise density q, with
//! the model log p(u) = −E(u) − log Z and log Z a learned scalar (the
//! parameter [`LOG_Z`], added to the store and saved with the others).
//!
//! With ν noise samples per data row and h(u) = −E(u) − log Z − log q(u)
//! − log ν, the loss over B data rows x and νB noise rows y is
//! −(1/B)[Σ log σ(h(x)) + Σ log(1 − σ(h(y)))]. Its derivative in h is
//! −(1 − σ(h)) / B for a data row and σ(h) / B for a noise row, and h
//! depends on θ only through −E, so the θ-gradient is one pullback of the
//! energies seeded by w = −∂L/∂h ([`seeds`]), and ∂L/∂log Z = Σ w.
//!
//! The noise is a Gaussian fitted to the data by default (mean and full
//! covariance, optionally widened), or an isotropic normal or a uniform
//! box the user picks ([`Noise`]).

use super::keyed::Keyed;

/// The store's name of the learned log-normaliser.
pub const LOG_Z: &str = "nce.log_z";

/// The noise distribution, as the user picks it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Noise {
    /// N(mean, scale²·cov) with the data's mean and covariance.
    Fitted { scale: f64 },
    /// N(0, sd²·I).
    Normal { sd: f64 },
    /// U(lo, hi) in every coordinate.
    Uniform { lo: f64, hi: f64 },
}

impl Noise {
    /// `fitted`, `fitted:SCALE`, `normal:SD` or `uniform:A,B` (SCALE, SD
    /// > 0, A < B, all finite), the form [`Noise::describe`] writes.
    pub fn parse(text: &str) -> Option<Noise> {
        let (kind, args) = text.split_once(':').unwrap_or((text, ""));
        let nums: Vec<f64> = if args.is_empty() {
            Vec::new()
        } else {
            args.split(',')
                .map(|v| v.trim().parse::<f64>().ok())
                .collect::<Option<Vec<f64>>>()?
        };
        let ok = |v: f64| v > 0.0 && v.is_finite();
        match (kind, nums.as_slice()) {
            ("fitted", []) => Some(Noise::Fitted { scale: 1.0 }),
            ("fitted", [s]) if ok(*s) => Some(Noise::Fitted { scale: *s }),
            ("normal", [sd]) if ok(*sd) => Some(Noise::Normal { sd: *sd }),
            ("uniform", [a, b]) if a < b && a.is_finite() && b.is_finite() => {
                Some(Noise::Uniform { lo: *a, hi: *b })
            }
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Noise::Fitted { scale } if *scale == 1.0 => "fitted".into(),
            Noise::Fitted { scale } => format!("fitted:{scale}"),
            Noise::Normal { sd } => format!("normal:{sd}"),
            Noise::Uniform { lo, hi } => format!("uniform:{lo},{hi}"),
        }
    }
}

/// The settings of `nce`.
#[derive(Clone, Debug, PartialEq)]
pub struct NceConfig {
    pub noise: Noise,
    /// Noise rows per data row (ν).
    pub ratio: usize,
}

impl Default for NceConfig {
    fn default() -> Self {
        NceConfig {
            noise: Noise::Fitted { scale: 1.0 },
            ratio: 1,
        }
    }
}

/// A noise density ready to sample and score.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseDensity {
    dim: usize,
    kind: Density,
}

#[derive(Clone, Debug, PartialEq)]
enum Density {
    /// Mean, lower Cholesky factor L (row-major d × d) of the covariance,
    /// and log of the normaliser: −Σ log Lᵢᵢ − (d/2) log 2π.
    Gaussian {
        mean: Vec<f64>,
        chol: Vec<f64>,
        log_norm: f64,
    },
    Uniform {
        lo: f64,
        hi: f64,
    },
}

impl NoiseDensity {
    /// The density `noise` names, fitted to `data` (rows × `dim`) where it
    /// is fitted.
    pub fn new(noise: Noise, data: &[f64], dim: usize) -> Result<NoiseDensity, String> {
        let kind = match noise {
            Noise::Fitted { scale } => {
                if !(scale > 0.0 && scale.is_finite()) {
                    return Err(format!("the noise scale must be > 0, found {scale}"));
                }
                let (mean, cov) = mean_cov(data, dim);
                let cov: Vec<f64> = cov.iter().map(|c| c * scale * scale).collect();
                gaussian(mean, &cov, dim)?
            }
            Noise::Normal { sd } => {
                if !(sd > 0.0 && sd.is_finite()) {
                    return Err(format!("the noise sd must be > 0, found {sd}"));
                }
                let mut cov = vec![0.0; dim * dim];
                (0..dim).for_each(|i| cov[i * dim + i] = sd * sd);
                gaussian(vec![0.0; dim], &cov, dim)?
            }
            Noise::Uniform { lo, hi } => {
                if !(lo < hi && lo.is_finite() && hi.is_finite()) {
                    return Err(format!("the noise box needs lo < hi, found {lo}, {hi}"));
                }
                Density::Uniform { lo, hi }
            }
        };
        Ok(NoiseDensity { dim, kind })
    }

    /// `rows` noise rows, coordinate i of the stream `key` at `at + i`.
    pub fn sample(&self, key: &Keyed, rows: usize) -> Vec<f64> {
        let d = self.dim;
        let mut out = vec![0.0; rows * d];
        match &self.kind {
            Density::Gaussian { mean, chol, .. } => {
                let mut z = vec![0.0; d];
                for (r, row) in out.chunks_exact_mut(d.max(1)).enumerate() {
                    for (j, zj) in z.iter_mut().enumerate() {
                        *zj = key.normal((r * d + j) as u64);
                    }
                    for i in 0..d {
                        let lz: f64 = (0..=i).map(|j| chol[i * d + j] * z[j]).sum();
                        row[i] = mean[i] + lz;
                    }
                }
            }
            Density::Uniform { lo, hi } => {
                for (i, v) in out.iter_mut().enumerate() {
                    *v = lo + (hi - lo) * key.uniform(i as u64);
                }
            }
        }
        out
    }

    /// log q of each row of `x`.
    pub fn log_density(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim.max(1);
        x.chunks_exact(d).map(|row| self.log_q(row)).collect()
    }

    fn log_q(&self, row: &[f64]) -> f64 {
        let d = self.dim;
        match &self.kind {
            Density::Gaussian {
                mean,
                chol,
                log_norm,
            } => {
                // Forward substitution: z = L⁻¹(x − μ).
                let mut z = vec![0.0; d];
                for i in 0..d {
                    let s: f64 = (0..i).map(|j| chol[i * d + j] * z[j]).sum();
                    z[i] = (row[i] - mean[i] - s) / chol[i * d + i];
                }
                log_norm - 0.5 * z.iter().map(|v| v * v).sum::<f64>()
            }
            Density::Uniform { lo, hi } => {
                if row.iter().all(|v| (*lo..=*hi).contains(v)) {
                    -(d as f64) * (hi - lo).ln()
                } else {
                    f64::NEG_INFINITY
                }
            }
        }
    }
}

/// The sample mean and covariance (row-major d × d) of `data`.
fn mean_cov(data: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = data.len() / d.max(1);
    let n = rows.max(1) as f64;
    let mut mean = vec![0.0; d];
    for row in data.chunks_exact(d.max(1)) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v / n);
    }
    let mut cov = vec![0.0; d * d];
    for row in data.chunks_exact(d.max(1)) {
        for i in 0..d {
            let a = row[i] - mean[i];
            for j in 0..=i {
                cov[i * d + j] += a * (row[j] - mean[j]) / n;
            }
        }
    }
    for i in 0..d {
        for j in 0..i {
            cov[j * d + i] = cov[i * d + j];
        }
    }
    (mean, cov)
}

/// A Gaussian density from its covariance; a singular covariance (e.g.
/// constant pixels) gets a ridge of 1e-6 of its mean variance (or 1e-6).
fn gaussian(mean: Vec<f64>, cov: &[f64], d: usize) -> Result<Density, String> {
    let avg = (0..d).map(|i| cov[i * d + i]).sum::<f64>() / d.max(1) as f64;
    let ridge = if avg > 0.0 && avg.is_finite() {
        1e-6 * avg
    } else {
        1e-6
    };
    let mut a = cov.to_vec();
    (0..d).for_each(|i| a[i * d + i] += ridge);
    let chol = cholesky(&a, d).ok_or("the noise covariance is not positive definite")?;
    let log_det_half: f64 = (0..d).map(|i| chol[i * d + i].ln()).sum();
    let log_norm = -log_det_half - 0.5 * d as f64 * (std::f64::consts::TAU).ln();
    Ok(Density::Gaussian {
        mean,
        chol,
        log_norm,
    })
}

/// The lower Cholesky factor of a symmetric positive-definite matrix.
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if !(v > 0.0 && v.is_finite()) {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// One batch's NCE terms.
#[derive(Clone, Debug, PartialEq)]
pub struct NceValue {
    pub loss: f64,
    /// The (w, 0) seeds of the (E, E²) loss kernel, data rows first.
    pub seed: Vec<f64>,
    /// ∂L/∂log Z.
    pub grad_log_z: f64,
    /// Fraction of rows classified right (h > 0 for data, < 0 for noise).
    pub accuracy: f64,
}

/// The loss and its seeds for energies `e` (the `pos` data rows first,
/// then the noise rows), log q at the same rows, and the current log Z.
pub fn value(e: &[f64], log_q: &[f64], pos: usize, ratio: usize, log_z: f64) -> NceValue {
    let b = pos.max(1) as f64;
    let log_ratio = (ratio.max(1) as f64).ln();
    let mut loss = 0.0;
    let mut seed = Vec::with_capacity(2 * e.len());
    let mut grad_log_z = 0.0;
    let mut right = 0usize;
    for (i, (&ei, &qi)) in e.iter().zip(log_q).enumerate() {
        let h = -ei - log_z - qi - log_ratio;
        let data = i < pos;
        // −log σ(h) = softplus(−h); −log(1 − σ(h)) = softplus(h).
        let (term, w) = if data {
            (softplus(-h), (1.0 - sigmoid(h)) / b)
        } else {
            (softplus(h), -sigmoid(h) / b)
        };
        loss += term / b;
        seed.extend([w, 0.0]);
        grad_log_z += w;
        right += usize::from((h > 0.0) == data);
    }
    NceValue {
        loss,
        seed,
        grad_log_z,
        accuracy: right as f64 / e.len().max(1) as f64,
    }
}

fn sigmoid(h: f64) -> f64 {
    if h >= 0.0 {
        1.0 / (1.0 + (-h).exp())
    } else {
        let z = h.exp();
        z / (1.0 + z)
    }
}

fn softplus(h: f64) -> f64 {
    if h > 0.0 {
        h + (-h).exp().ln_1p()
    } else {
        h.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_gaussian_density_integrates_its_samples() {
        // A correlated 2-D Gaussian: the fitted density's log q at the data
        // mean is −log(2π√det Σ).
        let data = [0.0, 0.0, 2.0, 2.0, 1.0, -1.0, 1.0, 3.0];
        let q = NoiseDensity::new(Noise::Fitted { scale: 1.0 }, &data, 2).unwrap();
        let (mean, cov) = mean_cov(&data, 2);
        let det = cov[0] * cov[3] - cov[1] * cov[2];
        let want = -(std::f64::consts::TAU * det.sqrt()).ln();
        let got = q.log_density(&mean)[0];
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let k = Keyed::new(1, 2, 3);
        let s = q.sample(&k, 20000);
        let (m2, c2) = mean_cov(&s, 2);
        for i in 0..2 {
            assert!((m2[i] - mean[i]).abs() < 0.05, "{m2:?} vs {mean:?}");
        }
        for i in 0..4 {
            assert!((c2[i] - cov[i]).abs() < 0.1, "{c2:?} vs {cov:?}");
        }
    }

    #[test]
    fn nce_seeds_are_minus_the_loss_derivative_in_the_energy() {
        let e = [0.3, -1.2, 2.0, 0.1];
        let q = [-1.0, -2.0, -0.5, -3.0];
        let v = value(&e, &q, 2, 1, 0.4);
        let h = 1e-6;
        for i in 0..e.len() {
            let mut up = e;
            up[i] += h;
            let mut dn = e;
            dn[i] -= h;
            let fd = (value(&up, &q, 2, 1, 0.4).loss - value(&dn, &q, 2, 1, 0.4).loss) / (2.0 * h);
            assert!(
                (v.seed[2 * i] - fd).abs() < 1e-7,
                "{i}: {} vs {fd}",
                v.seed[2 * i]
            );
        }
        let fd =
            (value(&e, &q, 2, 1, 0.4 + h).loss - value(&e, &q, 2, 1, 0.4 - h).loss) / (2.0 * h);
        assert!((v.grad_log_z - fd).abs() < 1e-7);
    }
}
