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
//! covariance, optionally widened: the AIS base's [`Gaussian`]), or an
//! isotropic normal or a uniform box the user picks ([`Noise`]).

use super::keyed::Keyed;
use crate::sample::ais::Gaussian;

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
    /// The AIS base's Gaussian (mean, Cholesky factor, log density).
    Gaussian(Gaussian),
    Uniform {
        lo: f64,
        hi: f64,
    },
}

impl NoiseDensity {
    /// The density `noise` names, fitted to `data` (rows × `dim`) where it
    /// is fitted.
    pub fn new(noise: Noise, data: &[f64], dim: usize) -> Result<NoiseDensity, String> {
        let positive = |v: f64, what: &str| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("the noise {what} must be > 0, found {v}"))
            }
        };
        let kind = match noise {
            Noise::Fitted { scale } => {
                positive(scale, "scale")?;
                let g = Gaussian::fit(data, dim).map_err(|e| format!("the NCE noise: {e}"))?;
                Density::Gaussian(g.widened(scale))
            }
            Noise::Normal { sd } => {
                positive(sd, "sd")?;
                Density::Gaussian(Gaussian::isotropic(dim, sd))
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

    /// `rows` noise rows, element i from position i of the stream `key`.
    pub fn sample(&self, key: &Keyed, rows: usize) -> Vec<f64> {
        let d = self.dim;
        let mut out = vec![0.0; rows * d];
        match &self.kind {
            Density::Gaussian(g) => {
                let mut z = vec![0.0; d];
                for (r, row) in out.chunks_exact_mut(d.max(1)).enumerate() {
                    for (j, zj) in z.iter_mut().enumerate() {
                        *zj = key.normal((r * d + j) as u64);
                    }
                    g.to_x(&z, row);
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
        match &self.kind {
            Density::Gaussian(g) => g.log_density(row),
            Density::Uniform { lo, hi } => {
                if row.iter().all(|v| (*lo..=*hi).contains(v)) {
                    -(self.dim as f64) * (hi - lo).ln()
                } else {
                    f64::NEG_INFINITY
                }
            }
        }
    }
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

    /// The sample mean and covariance (n − 1) of 2-D rows.
    fn moments(data: &[f64]) -> ([f64; 2], [f64; 3]) {
        let n = (data.len() / 2) as f64;
        let m = [0, 1].map(|j| data.iter().skip(j).step_by(2).sum::<f64>() / n);
        let c = |a: usize, b: usize| {
            data.chunks_exact(2)
                .map(|r| (r[a] - m[a]) * (r[b] - m[b]))
                .sum::<f64>()
                / (n - 1.0)
        };
        (m, [c(0, 0), c(0, 1), c(1, 1)])
    }

    #[test]
    fn fitted_noise_has_the_datas_moments_and_density() {
        // A correlated 2-D set: log q at its mean is −log(2π√det Σ), and
        // 20000 noise rows have the data's mean and covariance.
        let data = [0.0, 0.0, 2.0, 2.0, 1.0, -1.0, 1.0, 3.0];
        let q = NoiseDensity::new(Noise::Fitted { scale: 1.0 }, &data, 2).unwrap();
        let (mean, cov) = moments(&data);
        let det = cov[0] * cov[2] - cov[1] * cov[1];
        let want = -(std::f64::consts::TAU * det.sqrt()).ln();
        let got = q.log_density(&mean)[0];
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let s = q.sample(&Keyed::new(1, 2, 3), 20000);
        let (m2, c2) = moments(&s);
        for i in 0..2 {
            assert!((m2[i] - mean[i]).abs() < 0.05, "{m2:?} vs {mean:?}");
        }
        for i in 0..3 {
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
