//! Annealed importance sampling (Neal 2001): log Z of p ∝ exp(−E) with its
//! standard error.
//!
//! This module owns the annealing schedule, the base distribution, the
//! importance weights and the estimate; every transition is a run of the
//! sampling engine (`run_chains` on the tempered energy, so MALA and HMC
//! moves, divergence handling and the counter-based noise are the ones every
//! sampler uses), and every evaluation of E is the compiled kernel (through
//! [`DensityOf`] for a [`CompiledEnergy`]).
//!
//! The base q is a Gaussian N(μ, LLᵀ) (a standard normal, or fitted to
//! data). The annealing runs in whitened coordinates z = L⁻¹(x − μ), where q
//! is N(0, I) and E′(z) = E(μ + Lz): the samplers' isotropic steps then see
//! the data's scale, and log Z = log Z′ + log |det L|. The path is geometric,
//! E_β(z) = (1 − β)·½‖z‖² + β·E′(z), over a schedule 0 = β₀ < … < β_N = 1
//! (sigmoidal by default, or geometric). One run draws M chains from q and
//! carries each through the schedule: before the transition at β_k its
//! log-weight gains (β_k − β_{k−1})·(E_q − E′) at the current point; the
//! run's estimate is log Ẑ_r = log Z_q + logmeanexp(log w) + log |det L|.
//! R runs with independent keyed seeds give log Z = mean ± sd/√R. Each
//! log Ẑ_r is biased low (Jensen: E[Ẑ_r] = Z), so the mean is a stochastic
//! lower bound; the pooled estimate (logmeanexp over all R·M weights) is
//! reported too.
//!
//! Reverse AIS ([`ais_reverse`]; Grosse, Ghahramani & Adams 2015) starts
//! the chains at given rows — exact draws of p, or held-out data of a model
//! that fits — and anneals from β = 1 down to 0; its weights estimate
//! Z_q/Z_p, so log Ẑ_r = log Z_q − logmeanexp(log w) + log |det L| is biased
//! *high*: with forward AIS it brackets log Z (exactly so only when the
//! rows are draws of p).
//!
//! Step size: at each temperature the step is nudged towards the sampler's
//! target acceptance by the mean acceptance of the whole population at the
//! previous temperature (a Robbins–Monro update on log h). Each transition
//! still leaves its own π_k invariant, so the weights stay valid importance
//! weights; the step's dependence on the population's past adds an O(1/M)
//! correlation between chains, far below the standard error at M ≥ 64.
//!
//! Deterministic: initial points come from the chains' own streams under the
//! run's seed, and each temperature's transition is an engine run with a
//! seed keyed by (run seed, k), so results are bitwise the same for any
//! thread count.

use std::time::Instant;

use super::run::{MAX_EVALUATIONS, RunConfig, run_chains};
use super::{BatchEnergy, ChainRngs, DensityOf, Init, SamplerConfig};
use crate::runtime::{CompiledEnergy, RuntimeError};

type R<T> = Result<T, RuntimeError>;

/// The annealing schedule β₀ = 0 < β₁ < … < β_N = 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// β̃_k = σ(δ(2k/N − 1)), rescaled to [0, 1] (Grosse, Maddison &
    /// Salakhutdinov 2013): dense at both ends.
    Sigmoid { delta: f64 },
    /// β_k = β_min^((N − k)/(N − 1)) for k ≥ 1: dense near 0.
    Geometric { beta_min: f64 },
}

impl Schedule {
    /// The N + 1 inverse temperatures.
    pub fn betas(&self, n: usize) -> Vec<f64> {
        let n = n.max(1);
        let mut b: Vec<f64> = match *self {
            Schedule::Sigmoid { delta } => {
                let s = |k: usize| 1.0 / (1.0 + (-delta * (2.0 * k as f64 / n as f64 - 1.0)).exp());
                let (lo, hi) = (s(0), s(n));
                (0..=n).map(|k| (s(k) - lo) / (hi - lo)).collect()
            }
            Schedule::Geometric { beta_min } => (0..=n)
                .map(|k| match k {
                    0 => 0.0,
                    _ if n == 1 => 1.0,
                    _ => beta_min.powf((n - k) as f64 / (n - 1) as f64),
                })
                .collect(),
        };
        b[0] = 0.0;
        b[n] = 1.0;
        b
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Sigmoid { delta } => format!("sigmoid(delta = {delta})"),
            Schedule::Geometric { beta_min } => format!("geometric(beta_min = {beta_min})"),
        }
    }
}

/// The transition at each temperature.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transition {
    Mala,
    Hmc { leapfrog: usize },
}

/// The base q = N(mean, L Lᵀ), L lower triangular (row-major `dim × dim`).
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    pub dim: usize,
    pub mean: Vec<f64>,
    pub chol: Vec<f64>,
}

impl Gaussian {
    pub fn standard(dim: usize) -> Gaussian {
        let mut chol = vec![0.0; dim * dim];
        (0..dim).for_each(|i| chol[i * dim + i] = 1.0);
        Gaussian {
            dim,
            mean: vec![0.0; dim],
            chol,
        }
    }

    /// The Gaussian with the mean and covariance of `rows × dim` data (full
    /// covariance, its diagonal lifted by 10⁻⁶ of its mean so that a
    /// degenerate set still factors). Needs at least 2 rows of finite values.
    pub fn fit(data: &[f64], dim: usize) -> R<Gaussian> {
        let n = data.len().checked_div(dim).unwrap_or(0);
        if dim == 0 || n < 2 || data.len() != n * dim {
            return Err(RuntimeError::Config(format!(
                "fitting the AIS base needs at least 2 rows of {dim} values, found {} values",
                data.len()
            )));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(RuntimeError::Config(
                "fitting the AIS base: the data hold a non-finite value".into(),
            ));
        }
        let mut mean = vec![0.0; dim];
        for r in data.chunks_exact(dim) {
            mean.iter_mut().zip(r).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0; dim * dim];
        for r in data.chunks_exact(dim) {
            for i in 0..dim {
                let di = r[i] - mean[i];
                for j in 0..=i {
                    cov[i * dim + j] += di * (r[j] - mean[j]);
                }
            }
        }
        let trace: f64 = (0..dim).map(|i| cov[i * dim + i]).sum::<f64>() / (n - 1) as f64;
        let jitter = 1e-6 * (trace / dim as f64).max(1e-300);
        for i in 0..dim {
            for j in 0..=i {
                cov[i * dim + j] /= (n - 1) as f64;
                cov[j * dim + i] = cov[i * dim + j];
            }
            cov[i * dim + i] += jitter;
        }
        let chol = cholesky(&cov, dim).ok_or_else(|| {
            RuntimeError::Config("fitting the AIS base: the data's covariance is singular".into())
        })?;
        Ok(Gaussian { dim, mean, chol })
    }

    /// log |det L| = ½ log det Σ.
    pub fn log_det_chol(&self) -> f64 {
        (0..self.dim)
            .map(|i| self.chol[i * self.dim + i].ln())
            .sum()
    }

    /// N(0, sd²·I).
    pub fn isotropic(dim: usize, sd: f64) -> Gaussian {
        let mut g = Gaussian::standard(dim);
        g.chol.iter_mut().for_each(|v| *v *= sd);
        g
    }

    /// The same mean with every standard deviation multiplied by `scale`.
    pub fn widened(mut self, scale: f64) -> Gaussian {
        self.chol.iter_mut().for_each(|v| *v *= scale);
        self
    }

    /// log q(x).
    pub fn log_density(&self, x: &[f64]) -> f64 {
        let mut z = vec![0.0; self.dim];
        self.to_z(x, &mut z);
        -0.5 * z.iter().map(|v| v * v).sum::<f64>() - self.log_norm()
    }

    /// x = μ + L z.
    pub fn to_x(&self, z: &[f64], x: &mut [f64]) {
        let d = self.dim;
        for i in 0..d {
            let row = &self.chol[i * d..i * d + i + 1];
            x[i] = self.mean[i] + row.iter().zip(z).map(|(l, v)| l * v).sum::<f64>();
        }
    }

    /// z = L⁻¹(x − μ) (forward substitution).
    pub fn to_z(&self, x: &[f64], z: &mut [f64]) {
        let d = self.dim;
        for i in 0..d {
            let s: f64 = (0..i).map(|k| self.chol[i * d + k] * z[k]).sum();
            z[i] = (x[i] - self.mean[i] - s) / self.chol[i * d + i];
        }
    }

    /// log Z of N(0, I) in d coordinates plus log |det L|: what turns the
    /// whitened estimate into log Z.
    fn log_norm(&self) -> f64 {
        0.5 * self.dim as f64 * (2.0 * std::f64::consts::PI).ln() + self.log_det_chol()
    }

    /// gz = Lᵀ gx (the chain rule for E(μ + Lz)).
    fn grad_to_z(&self, gx: &[f64], gz: &mut [f64]) {
        let d = self.dim;
        for (j, out) in gz.iter_mut().enumerate() {
            *out = (j..d).map(|i| self.chol[i * d + j] * gx[i]).sum();
        }
    }
}

/// The lower Cholesky factor of a symmetric positive-definite `d × d`
/// matrix, or `None` when it is not (numerically) positive definite.
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

/// The held-out NLL mean E(x) + log Z of rows with energies `e`, and its
/// standard error (log Z's and the rows' own sampling error of the mean
/// energy, combined); `None` for fewer than 2 rows or a non-finite energy.
pub fn heldout_nll(e: &[f64], est: &AisEstimate) -> Option<(f64, f64)> {
    let n = e.len();
    if n < 2 || e.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mean = e.iter().sum::<f64>() / n as f64;
    let var = e.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    Some((mean + est.log_z, (est.se * est.se + var / n as f64).sqrt()))
}

/// AIS settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AisConfig {
    /// Intermediate temperatures N (transitions happen at β₁ … β_{N−1}).
    pub steps: usize,
    /// Independent runs R (at least 2, for the standard error).
    pub runs: usize,
    /// Chains M per run.
    pub chains: usize,
    /// Sampler transitions at each temperature.
    pub moves: usize,
    pub transition: Transition,
    pub schedule: Schedule,
    /// Initial step size (MALA's λ or HMC's ε) in whitened coordinates.
    pub step: f64,
    pub seed: u64,
    pub threads: usize,
}

impl AisConfig {
    pub fn new(steps: usize, runs: usize, chains: usize, seed: u64) -> AisConfig {
        AisConfig {
            steps,
            runs,
            chains,
            moves: 1,
            transition: Transition::Mala,
            schedule: Schedule::Sigmoid { delta: 4.0 },
            step: 0.5,
            seed,
            threads: 1,
        }
    }

    /// Gradient evaluations the whole estimate asks for.
    pub fn evaluations(&self) -> f64 {
        let per = match self.transition {
            Transition::Mala => 1.0,
            Transition::Hmc { leapfrog } => leapfrog as f64,
        };
        // Each engine run also evaluates E and ∇E at its start.
        self.runs as f64 * self.chains as f64 * self.steps as f64 * (self.moves as f64 * per + 1.0)
    }

    fn sampler(&self, step: f64) -> SamplerConfig {
        let mut s = match self.transition {
            Transition::Mala => SamplerConfig::mala(step),
            Transition::Hmc { leapfrog } => SamplerConfig::hmc(step, leapfrog),
        };
        s.adapt_step = false;
        s.metric = super::config::MetricKind::Unit;
        s
    }

    /// Refuses settings that are malformed or larger than any run should be
    /// (the engine's limits: [`MAX_EVALUATIONS`], `budget::max_memory`), before
    /// any work starts.
    pub fn validate(&self, dim: usize) -> R<()> {
        let bad = |m: String| Err(RuntimeError::Config(m));
        if dim == 0 {
            return bad("the energy has no coordinates".into());
        }
        if self.steps < 2 {
            return bad(format!("steps must be at least 2, found {}", self.steps));
        }
        if self.runs < 2 {
            return bad(format!(
                "runs must be at least 2 (the standard error needs two), found {}",
                self.runs
            ));
        }
        if self.chains == 0 || self.moves == 0 {
            return bad("chains and moves per temperature must be at least 1".into());
        }
        if let Transition::Hmc { leapfrog: 0 } = self.transition {
            return bad("HMC needs at least 1 leapfrog step".into());
        }
        if !(self.step > 0.0 && self.step.is_finite()) {
            return bad(format!(
                "step must be a positive number, found {}",
                self.step
            ));
        }
        match self.schedule {
            Schedule::Sigmoid { delta } if !(delta > 0.0 && delta.is_finite()) => {
                return bad(format!(
                    "the sigmoid schedule's delta must be > 0, found {delta}"
                ));
            }
            Schedule::Geometric { beta_min } if !(beta_min > 0.0 && beta_min < 1.0) => {
                return bad(format!(
                    "the geometric schedule's beta_min must be in (0, 1), found {beta_min}"
                ));
            }
            _ => {}
        }
        // The engine's bound on evaluations, counted for the whole estimate.
        let work = self.evaluations();
        if work > MAX_EVALUATIONS {
            return bad(format!(
                "this AIS estimate asks for about {work:.1e} evaluations; the limit is {MAX_EVALUATIONS:.0e}: use fewer runs, chains or steps"
            ));
        }
        let bytes = (self.chains as f64) * (dim as f64 + 4.0) * 8.0 * (self.moves as f64 + 20.0);
        if bytes > crate::budget::max_memory() as f64 {
            return bad(format!(
                "this AIS estimate needs about {} for its chains; {}: use fewer chains",
                crate::budget::bytes_text(bytes),
                crate::budget::limit_text()
            ));
        }
        Ok(())
    }
}

/// One AIS run: its estimate and the health of its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct AisRun {
    pub seed: u64,
    pub log_z: f64,
    /// Effective sample size of the normalised weights, (Σw)²/Σw², out of M.
    pub ess: f64,
    /// Mean acceptance over all transitions.
    pub accept: f64,
    /// The final step size (whitened coordinates).
    pub step: f64,
    /// Chains whose weight is zero (a non-finite energy on the way).
    pub dead: usize,
    /// The M log-weights. Forward: including log Z_q and log |det L|, so
    /// log Ẑ_r is their logmeanexp. Reverse: the raw weights of Z_q/Z_p.
    pub log_w: Vec<f64>,
}

/// The estimate over R runs.
#[derive(Clone, Debug, PartialEq)]
pub struct AisEstimate {
    /// Mean of the runs' log Ẑ_r (a stochastic lower bound).
    pub log_z: f64,
    /// Its standard error, sd(log Ẑ_r)/√R.
    pub se: f64,
    /// The estimate from all R·M weights pooled.
    pub log_z_pooled: f64,
    /// Reverse AIS (from rows, β from 1 to 0): an upper bound.
    pub reverse: bool,
    /// ESS of all R·M weights together.
    pub ess: f64,
    pub runs: Vec<AisRun>,
    pub base_log_det: f64,
    pub elapsed_s: f64,
}

impl AisEstimate {
    /// `{"logz", "se", "runs", ...}` on one line.
    pub fn to_json(&self) -> String {
        let num = |v: f64| {
            if v.is_finite() {
                format!("{v}")
            } else {
                "null".to_string()
            }
        };
        let list = |f: &dyn Fn(&AisRun) -> f64| {
            let v: Vec<String> = self.runs.iter().map(|r| num(f(r))).collect();
            format!("[{}]", v.join(", "))
        };
        format!(
            "{{\"logz\": {}, \"se\": {}, \"runs\": {}, \"reverse\": {}, \"logz_pooled\": {}, \"ess\": {}, \"chains\": {}, \"run_logz\": {}, \"run_ess\": {}, \"run_accept\": {}, \"elapsed_s\": {}}}",
            num(self.log_z),
            num(self.se),
            self.runs.len(),
            self.reverse,
            num(self.log_z_pooled),
            num(self.ess),
            self.runs.first().map_or(0, |r| r.log_w.len()),
            list(&|r| r.log_z),
            list(&|r| r.ess),
            list(&|r| r.accept),
            num(self.elapsed_s)
        )
    }
}

/// logmeanexp of `v` (−∞ when every entry is −∞ or NaN; NaN entries count
/// as zero weight).
pub fn log_mean_exp(v: &[f64]) -> f64 {
    let max = v
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() || v.is_empty() {
        return if max == f64::INFINITY {
            max
        } else {
            f64::NEG_INFINITY
        };
    }
    let s: f64 = v
        .iter()
        .filter(|x| !x.is_nan())
        .map(|x| (x - max).exp())
        .sum();
    max + (s / v.len() as f64).ln()
}

/// (Σw)²/Σw² of the weights exp(log_w).
pub fn weight_ess(log_w: &[f64]) -> f64 {
    let max = log_w
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return 0.0;
    }
    let (mut s1, mut s2) = (0.0, 0.0);
    for x in log_w.iter().filter(|x| !x.is_nan()) {
        let w = (x - max).exp();
        s1 += w;
        s2 += w * w;
    }
    s1 * s1 / s2
}

/// E′_β(z) = (1 − β)·½‖z‖² + β·E(μ + Lz) and its gradient in z.
struct Tempered<'a, E: ?Sized> {
    energy: &'a E,
    base: &'a Gaussian,
    beta: f64,
}

impl<E: BatchEnergy + ?Sized> Tempered<'_, E> {
    /// E at `n` whitened points (and Lᵀ∇E into `gz`).
    fn target(&self, z: &[f64], n: usize, e: &mut [f64], gz: Option<&mut [f64]>) {
        let d = self.base.dim;
        let mut x = vec![0.0; n * d];
        for (zr, xr) in z.chunks_exact(d).zip(x.chunks_exact_mut(d)) {
            self.base.to_x(zr, xr);
        }
        match gz {
            None => self.energy.energy(&x, n, e),
            Some(gz) => {
                let mut gx = vec![0.0; n * d];
                self.energy.energy_grad(&x, n, e, &mut gx);
                for (g, o) in gx.chunks_exact(d).zip(gz.chunks_exact_mut(d)) {
                    self.base.grad_to_z(g, o);
                }
            }
        }
    }
}

fn half_sq(z: &[f64]) -> f64 {
    0.5 * z.iter().map(|v| v * v).sum::<f64>()
}

impl<E: BatchEnergy + ?Sized> BatchEnergy for Tempered<'_, E> {
    fn dim(&self) -> usize {
        self.base.dim
    }
    fn energy(&self, z: &[f64], n: usize, e: &mut [f64]) {
        self.target(z, n, e, None);
        let d = self.base.dim;
        for (c, v) in e.iter_mut().enumerate().take(n) {
            *v = (1.0 - self.beta) * half_sq(&z[c * d..(c + 1) * d]) + self.beta * *v;
        }
    }
    fn energy_grad(&self, z: &[f64], n: usize, e: &mut [f64], g: &mut [f64]) {
        self.target(z, n, e, Some(g));
        let (d, b) = (self.base.dim, self.beta);
        for c in 0..n {
            let zr = &z[c * d..(c + 1) * d];
            e[c] = (1.0 - b) * half_sq(zr) + b * e[c];
            for (gi, zi) in g[c * d..(c + 1) * d].iter_mut().zip(zr) {
                *gi = (1.0 - b) * zi + b * *gi;
            }
        }
    }
}

/// The seed of run `r` under `seed`.
fn run_seed(seed: u64, r: usize) -> u64 {
    super::rng::mix64(seed ^ super::rng::mix64((r as u64).wrapping_add(0xA15)))
}

/// log Z of a compiled energy (its kernels in their dtype, read as f64).
pub fn ais_compiled(energy: &CompiledEnergy, base: &Gaussian, cfg: &AisConfig) -> R<AisEstimate> {
    let density = DensityOf::new(energy, None)?;
    ais(&density, base, cfg)
}

/// Reverse AIS of a compiled energy from `rows` (`n × dim`).
pub fn ais_reverse_compiled(
    energy: &CompiledEnergy,
    base: &Gaussian,
    rows: &[f64],
    cfg: &AisConfig,
) -> R<AisEstimate> {
    let density = DensityOf::new(energy, None)?;
    ais_reverse(&density, base, rows, cfg)
}

/// log Z of `energy` by `cfg.runs` AIS runs from `base`.
pub fn ais<E: BatchEnergy + ?Sized>(
    energy: &E,
    base: &Gaussian,
    cfg: &AisConfig,
) -> R<AisEstimate> {
    estimate(energy, base, cfg, None)
}

/// An upper estimate of log Z by reverse AIS: `cfg.runs` runs whose chains
/// start at `rows` (`n × dim`, in the energy's coordinates; run r's chain c
/// at row (r·M + c) mod n) and anneal from p to `base`.
pub fn ais_reverse<E: BatchEnergy + ?Sized>(
    energy: &E,
    base: &Gaussian,
    rows: &[f64],
    cfg: &AisConfig,
) -> R<AisEstimate> {
    let d = energy.dim();
    if d == 0
        || rows.is_empty()
        || !rows.len().is_multiple_of(d)
        || rows.iter().any(|v| !v.is_finite())
    {
        return Err(RuntimeError::Config(format!(
            "reverse AIS needs at least one row of {d} finite values, found {} values",
            rows.len()
        )));
    }
    estimate(energy, base, cfg, Some(rows))
}

/// Forward AIS (`rows` None) or reverse AIS from `rows`.
fn estimate<E: BatchEnergy + ?Sized>(
    energy: &E,
    base: &Gaussian,
    cfg: &AisConfig,
    rows: Option<&[f64]>,
) -> R<AisEstimate> {
    let d = energy.dim();
    cfg.validate(d)?;
    if base.dim != d || base.mean.len() != d || base.chol.len() != d * d {
        return Err(RuntimeError::Config(format!(
            "the AIS base has {} coordinates, the energy {d}",
            base.dim
        )));
    }
    let start = Instant::now();
    let mut betas = cfg.schedule.betas(cfg.steps);
    if rows.is_some() {
        betas.reverse();
    }
    let runs = (0..cfg.runs)
        .map(|r| {
            let from = rows.map(|x| (x, r * cfg.chains));
            one_run(energy, base, cfg, &betas, run_seed(cfg.seed, r), from)
        })
        .collect::<R<Vec<AisRun>>>()?;
    let vals: Vec<f64> = runs.iter().map(|r| r.log_z).collect();
    let n = vals.len() as f64;
    let mean = vals.iter().sum::<f64>() / n;
    let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    let all: Vec<f64> = runs.iter().flat_map(|r| r.log_w.iter().copied()).collect();
    let pooled = match rows {
        None => log_mean_exp(&all),
        Some(_) => base.log_norm() - log_mean_exp(&all),
    };
    Ok(AisEstimate {
        log_z: mean,
        se: (var / n).sqrt(),
        log_z_pooled: pooled,
        reverse: rows.is_some(),
        ess: weight_ess(&all),
        runs,
        base_log_det: base.log_det_chol(),
        elapsed_s: start.elapsed().as_secs_f64(),
    })
}

/// The chains' starts in whitened coordinates: draws of N(0, I), or (for
/// reverse AIS) rows `first, first + 1, …` (mod their count) of `from`.
fn starts(base: &Gaussian, m: usize, seed: u64, from: Option<(&[f64], usize)>) -> Vec<f64> {
    let d = base.dim;
    let mut z = vec![0.0; m * d];
    match from {
        None => {
            let mut rngs = ChainRngs::range(seed, 0, m);
            for (c, row) in z.chunks_exact_mut(d).enumerate() {
                row.iter_mut().for_each(|v| *v = rngs.rngs[c].normal());
            }
        }
        Some((x, first)) => {
            let n = x.len() / d;
            for (c, row) in z.chunks_exact_mut(d).enumerate() {
                let r = (first + c) % n;
                base.to_z(&x[r * d..(r + 1) * d], row);
            }
        }
    }
    z
}

/// One run of M chains through the schedule (`betas` from 0 to 1, or from
/// 1 to 0 for reverse AIS, whose chains start at rows of `from`).
fn one_run<E: BatchEnergy + ?Sized>(
    energy: &E,
    base: &Gaussian,
    cfg: &AisConfig,
    betas: &[f64],
    seed: u64,
    from: Option<(&[f64], usize)>,
) -> R<AisRun> {
    let (d, m) = (base.dim, cfg.chains);
    let mut z = starts(base, m, seed, from);
    // E′ at the current points: evaluated once at the start, then read off
    // each transition's energy column.
    let mut e = vec![0.0; m];
    Tempered {
        energy,
        base,
        beta: 1.0,
    }
    .energy(&z, m, &mut e);
    let mut log_w = vec![0.0; m];
    let mut step = cfg.step;
    let target = cfg.sampler(step).target_accept;
    let (mut acc_sum, mut acc_n) = (0.0, 0usize);
    for k in 1..betas.len() {
        let db = betas[k] - betas[k - 1];
        for c in 0..m {
            log_w[c] += db * (half_sq(&z[c * d..(c + 1) * d]) - e[c]);
        }
        if k + 1 == betas.len() {
            break;
        }
        // In either direction log π_k/π_{k−1} = (β_k − β_{k−1})(E_q − E′) at
        // the current point, and every β a transition runs at is in (0, 1).
        let beta = betas[k];
        let tempered = Tempered { energy, base, beta };
        let mut run = RunConfig::new(m, 0, cfg.moves, super::rng::mix64(seed ^ k as u64));
        run.init = Init::Array {
            values: std::mem::take(&mut z),
            rows: m,
        };
        run.threads = cfg.threads;
        let draws = run_chains(&tempered, &cfg.sampler(step), &run)?;
        let last = cfg.moves - 1;
        z = (0..m).flat_map(|c| draws.point(c, last).to_vec()).collect();
        for c in 0..m {
            // E_β = (1 − β)E_q + βE′ ⇒ E′ = (E_β − (1 − β)E_q)/β; the
            // rounding this divides by β is multiplied back by the next Δβ.
            let eb = draws.energy[c * cfg.moves + last];
            e[c] = (eb - (1.0 - beta) * half_sq(&z[c * d..(c + 1) * d])) / beta;
        }
        let acc = draws.mean_accept();
        acc_sum += acc;
        acc_n += 1;
        if acc.is_finite() {
            step = (step * ((acc - target) * 0.5).exp()).clamp(1e-8, 100.0);
        }
    }
    let reverse = from.is_some();
    let shift = if reverse { 0.0 } else { base.log_norm() };
    let log_w: Vec<f64> = log_w
        .iter()
        .map(|w| {
            if w.is_finite() {
                w + shift
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let dead = log_w.iter().filter(|w| !w.is_finite()).count();
    if dead == m {
        return Err(RuntimeError::Config(format!(
            "every AIS weight of run seed {seed} is zero: the energy was not finite along every chain's path"
        )));
    }
    Ok(AisRun {
        seed,
        log_z: if reverse {
            base.log_norm() - log_mean_exp(&log_w)
        } else {
            log_mean_exp(&log_w)
        },
        ess: weight_ess(&log_w),
        accept: acc_sum / acc_n.max(1) as f64,
        step,
        dead,
        log_w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::FnEnergy;

    #[test]
    fn schedules_run_from_zero_to_one_increasing() {
        for s in [
            Schedule::Sigmoid { delta: 4.0 },
            Schedule::Geometric { beta_min: 1e-4 },
        ] {
            let b = s.betas(50);
            assert_eq!(b.len(), 51);
            assert_eq!((b[0], b[50]), (0.0, 1.0));
            assert!(b.windows(2).all(|w| w[1] > w[0]), "{s:?}: {b:?}");
        }
    }

    #[test]
    fn fitted_base_recovers_mean_and_covariance() {
        // Rows of a known 2-D Gaussian through its Cholesky factor.
        let l = [1.5, 0.0, 0.6, 0.4];
        let mut rng = crate::sample::ChainRng::new(3, 0);
        let data: Vec<f64> = (0..20000)
            .flat_map(|_| {
                let (a, b) = (rng.normal(), rng.normal());
                [1.0 + l[0] * a, -2.0 + l[2] * a + l[3] * b]
            })
            .collect();
        let g = Gaussian::fit(&data, 2).unwrap();
        assert!((g.mean[0] - 1.0).abs() < 0.05 && (g.mean[1] + 2.0).abs() < 0.05);
        for (a, b) in g.chol.iter().zip(l) {
            assert!((a - b).abs() < 0.03, "{:?}", g.chol);
        }
    }

    /// E = ½ xᵀΣ⁻¹x with Σ = diag(4, 0.25).
    fn diagonal_gaussian() -> impl BatchEnergy {
        FnEnergy::new(
            2,
            |x: &[f64]| 0.5 * (x[0] * x[0] / 4.0 + x[1] * x[1] / 0.25),
            |x: &[f64], g: &mut [f64]| {
                g[0] = x[0] / 4.0;
                g[1] = x[1] / 0.25;
                0.5 * (x[0] * x[0] / 4.0 + x[1] * x[1] / 0.25)
            },
        )
    }

    #[test]
    fn correlated_gaussian_log_z_within_three_standard_errors() {
        // E = ½ xᵀΣ⁻¹x with Σ = diag(4, 0.25): log Z = ½ log det(2πΣ).
        let e = diagonal_gaussian();
        let truth = (2.0 * std::f64::consts::PI).ln();
        let est = ais(&e, &Gaussian::standard(2), &AisConfig::new(200, 10, 64, 1)).unwrap();
        assert!(
            (est.log_z - truth).abs() < 3.0 * est.se + 1e-9,
            "{} ± {} vs {truth}",
            est.log_z,
            est.se
        );
        assert!(est.se < 0.05, "se {}", est.se);
    }

    #[test]
    fn reverse_ais_from_exact_draws_matches_log_z() {
        // The same Gaussian as above; exact draws x = (2ξ₀, ξ₁/2).
        let e = diagonal_gaussian();
        let mut rng = crate::sample::ChainRng::new(5, 0);
        let rows: Vec<f64> = (0..640)
            .flat_map(|_| [2.0 * rng.normal(), 0.5 * rng.normal()])
            .collect();
        let truth = (2.0 * std::f64::consts::PI).ln();
        let cfg = AisConfig::new(200, 10, 64, 1);
        let est = ais_reverse(&e, &Gaussian::standard(2), &rows, &cfg).unwrap();
        assert!(est.reverse);
        assert!(
            (est.log_z - truth).abs() < 3.0 * est.se + 1e-9,
            "{} ± {} vs {truth}",
            est.log_z,
            est.se
        );
        assert!(ais_reverse(&e, &Gaussian::standard(2), &[1.0], &cfg).is_err());
    }

    #[test]
    fn whitening_round_trips() {
        let g = Gaussian {
            dim: 2,
            mean: vec![1.0, -1.0],
            chol: vec![2.0, 0.0, 0.5, 0.3],
        };
        let (mut x, mut z) = ([0.0; 2], [0.0; 2]);
        g.to_x(&[0.7, -1.2], &mut x);
        g.to_z(&x, &mut z);
        assert!(
            (z[0] - 0.7).abs() < 1e-12 && (z[1] + 1.2).abs() < 1e-12,
            "{z:?}"
        );
    }

    #[test]
    fn same_seed_same_bits_for_any_thread_count() {
        let e = FnEnergy::new(
            2,
            |x: &[f64]| (x[0] * x[0] - 1.0).powi(2) + 0.5 * x[1] * x[1],
            |x: &[f64], g: &mut [f64]| {
                g[0] = 4.0 * x[0] * (x[0] * x[0] - 1.0);
                g[1] = x[1];
                (x[0] * x[0] - 1.0).powi(2) + 0.5 * x[1] * x[1]
            },
        );
        let mut cfg = AisConfig::new(30, 3, 33, 9);
        let one = ais(&e, &Gaussian::standard(2), &cfg).unwrap();
        cfg.threads = 3;
        let three = ais(&e, &Gaussian::standard(2), &cfg).unwrap();
        assert_eq!(one.runs, three.runs);
        assert_eq!(one.log_z.to_bits(), three.log_z.to_bits());
    }

    #[test]
    fn oversized_and_malformed_settings_are_refused_before_work() {
        let cfg = AisConfig::new(1_000_000, 1000, 1_000_000, 0);
        let err = cfg.validate(2).unwrap_err().to_string();
        assert!(err.contains("limit"), "{err}");
        assert!(AisConfig::new(10, 1, 4, 0).validate(2).is_err());
        assert!(AisConfig::new(1, 2, 4, 0).validate(2).is_err());
    }

    #[test]
    fn log_mean_exp_and_ess_of_equal_weights() {
        assert!((log_mean_exp(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-15);
        assert_eq!(log_mean_exp(&[f64::NEG_INFINITY; 2]), f64::NEG_INFINITY);
        assert!((weight_ess(&[0.3; 8]) - 8.0).abs() < 1e-12);
        assert!((weight_ess(&[0.0, f64::NEG_INFINITY]) - 1.0).abs() < 1e-12);
    }
}
