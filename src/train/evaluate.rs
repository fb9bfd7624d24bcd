//! Evaluation of a trained energy against held-out data, as `ebm evaluate`
//! and a script's `evaluate(..)` run it:
//!
//! * **long-run samples**: MALA chains from uniform starts over the data's
//!   range (padded by 25%), the step size adapted up to the last step, whose
//!   draw is kept — never the training chains, so a short-run-trained energy
//!   whose density is wrong far from the data shows it;
//! * **MMD²** (RBF kernel, median bandwidth) between those samples and the
//!   held-out rows, next to the noise floor: the MMD² between the two halves
//!   of the held-out rows (samples of half the size are compared with the
//!   first half, so both figures are of like sizes);
//! * **support**: the share of samples whose nearest held-out row is no
//!   farther than the 99th percentile of the held-out rows' own
//!   nearest-neighbour distances;
//! * for 2-D energies, **log Z** by midpoint quadrature on a grid, hence the
//!   exact held-out negative log-likelihood, and **KL(data‖model)** where
//!   the data's density is known (`eight_gaussians`, `checkerboard`);
//! * **KSD²**: the kernel Stein discrepancy (IMQ kernel, c = 1) of the
//!   held-out rows against the energy's score −∇ₓE — a goodness-of-fit
//!   figure that needs neither log Z nor model samples (at most
//!   [`KSD_ROWS`] rows, the first ones).
//!
//! Energies are evaluated where they were trained: rows are mapped through
//! the training run's scaling before anything is computed.

use crate::backend::DType;
use crate::runtime::{CompiledEnergy, Scalar};
use crate::sample::{Init, RunConfig, SamplerConfig, run_compiled};
use crate::stats::eval::{self as ev, Grid};

use super::TrainError;

#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    pub chains: usize,
    pub warmup: usize,
    pub steps: usize,
    pub step: f64,
    pub seed: u64,
    pub threads: usize,
    /// A known data density for KL: (toy name, noise).
    pub known: Option<(String, f64)>,
    /// The quadrature grid for 2-D energies (default: the data's range
    /// padded by 50%, 200 × 200 cells).
    pub grid: Option<Grid>,
    /// The sampler of the model samples (default: MALA from `step`, its
    /// step adapted during the first half). A ULA sampler runs as given,
    /// e.g. with the decoupled noise and clamp of an image model's training,
    /// to score the samples the model is used with.
    pub sampler: Option<SamplerConfig>,
    /// The chains' starting points (default: uniform over the data's range
    /// padded by 25%).
    pub init: Option<Init>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            chains: 2000,
            warmup: 500,
            steps: 500,
            step: 0.01,
            seed: 0,
            threads: 1,
            known: None,
            grid: None,
            sampler: None,
            init: None,
        }
    }
}

impl EvalConfig {
    /// `steps` MALA steps (half of them adapting the step size before the
    /// rest) on every available core, with a known data density for KL.
    pub fn long_run(
        chains: usize,
        steps: usize,
        step: f64,
        seed: u64,
        known: Option<(String, f64)>,
    ) -> EvalConfig {
        EvalConfig {
            chains,
            warmup: steps / 2,
            steps: steps - steps / 2,
            step,
            seed,
            threads: crate::backend::cpu::default_threads(),
            known,
            grid: None,
            sampler: None,
            init: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub rows: usize,
    pub e_data_mean: f64,
    pub e_data_sq_mean: f64,
    pub mmd2: f64,
    pub mmd2_floor: f64,
    pub bandwidth: f64,
    pub support: f64,
    pub accept: f64,
    pub log_z: Option<f64>,
    pub nll: Option<f64>,
    pub kl: Option<f64>,
    /// The share of long-run samples outside the quadrature grid: mass the
    /// grid's log Z misses (the NLL is then a lower bound).
    pub outside_grid: Option<f64>,
    /// KSD² (IMQ, c = 1) of the held-out rows against the energy; NaN when
    /// a score is not finite.
    pub ksd: f64,
    /// The long-run samples (`chains × dim`).
    pub samples: Vec<f64>,
}

impl Evaluation {
    pub fn to_json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_string(), num);
        format!(
            "{{\"rows\": {}, \"e_data_mean\": {}, \"e_data_sq_mean\": {}, \"mmd2\": {}, \"mmd2_noise_floor\": {}, \"bandwidth\": {}, \"support\": {}, \"accept\": {}, \"log_z\": {}, \"heldout_nll\": {}, \"kl_data_model\": {}, \"outside_grid\": {}, \"ksd\": {}}}",
            self.rows,
            num(self.e_data_mean),
            num(self.e_data_sq_mean),
            num(self.mmd2),
            num(self.mmd2_floor),
            num(self.bandwidth),
            num(self.support),
            num(self.accept),
            opt(self.log_z),
            opt(self.nll),
            opt(self.kl),
            opt(self.outside_grid),
            num(self.ksd)
        )
    }

    pub fn to_text(&self) -> String {
        let mut t = format!(
            "held-out rows {}\nmean E(data) {:.5} (mean E² {:.5})\nMMD² {:.3e} (noise floor {:.3e}, bandwidth {:.4})\nsamples near the data {:.1}% (MALA acceptance {:.2})\n",
            self.rows,
            self.e_data_mean,
            self.e_data_sq_mean,
            self.mmd2,
            self.mmd2_floor,
            self.bandwidth,
            100.0 * self.support,
            self.accept
        );
        if let (Some(z), Some(n)) = (self.log_z, self.nll) {
            t.push_str(&format!("log Z {z:.5}; held-out NLL {n:.5} nats\n"));
        }
        if let Some(o) = self.outside_grid.filter(|o| *o > 0.0) {
            t.push_str(&format!(
                "warning: {:.1}% of the samples lie outside the quadrature grid: log Z misses that mass (the NLL is a lower bound)\n",
                100.0 * o
            ));
        }
        if let Some(k) = self.kl {
            t.push_str(&format!("KL(data || model) {k:.5} nats\n"));
        }
        t.push_str(&format!(
            "KSD² of the held-out rows (IMQ kernel, c = 1) {:.4e}\n",
            self.ksd
        ));
        t
    }
}

/// JSON has no NaN or infinity: those are written as null.
fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// Evaluates `energy` on `heldout` (`rows × dim`, in the trained scale).
pub fn evaluate(
    energy: &CompiledEnergy,
    heldout: &[f64],
    cfg: &EvalConfig,
) -> Result<Evaluation, TrainError> {
    let d = energy.dim();
    let rows = heldout.len() / d.max(1);
    if rows < 4 || heldout.len() != rows * d {
        return Err(TrainError::Config(format!(
            "evaluation needs at least 4 held-out rows of {d} values, found {} values",
            heldout.len()
        )));
    }
    let e = energies(energy, heldout, rows)?;
    let (lo, hi) = range(heldout);
    let pad = 0.25 * (hi - lo).max(1e-6);
    let mut run = RunConfig::new(cfg.chains, cfg.warmup, cfg.steps, cfg.seed);
    run.init = cfg.init.clone().unwrap_or(Init::Uniform {
        a: lo - pad,
        b: hi + pad,
    });
    run.threads = cfg.threads;
    // One kept draw per chain: the last one.
    run.warmup = cfg.warmup + cfg.steps.saturating_sub(1);
    run.steps = 1;
    run.thin = 1;
    let sampler = cfg
        .sampler
        .clone()
        .unwrap_or_else(|| SamplerConfig::mala(cfg.step));
    let draws = run_compiled(energy, None, &sampler, &run)?;
    let samples: Vec<f64> = draws
        .x
        .chunks_exact(d)
        .filter(|r| r.iter().all(|v| v.is_finite()))
        .flatten()
        .copied()
        .collect();
    let half = rows / 2;
    let first = &heldout[..half * d];
    let m = ev::mmd2(&samples, heldout, d, None);
    let floor = ev::mmd_noise_floor(heldout, d, m.bandwidth);
    let mmd2_half = ev::mmd2(
        &samples[..(half * d).min(samples.len())],
        first,
        d,
        Some(m.bandwidth),
    );
    let mut out = Evaluation {
        rows,
        e_data_mean: mean(&e),
        e_data_sq_mean: mean(&e.iter().map(|v| v * v).collect::<Vec<_>>()),
        mmd2: mmd2_half.mmd2,
        mmd2_floor: floor,
        bandwidth: m.bandwidth,
        support: support(&samples, heldout, d),
        accept: draws.mean_accept(),
        log_z: None,
        nll: None,
        kl: None,
        outside_grid: None,
        ksd: ksd_of(energy, heldout, rows)?,
        samples,
    };
    if d == 2 {
        quadrature(energy, heldout, &e, cfg, &mut out)?;
    }
    Ok(out)
}

fn quadrature(
    energy: &CompiledEnergy,
    heldout: &[f64],
    e: &[f64],
    cfg: &EvalConfig,
    out: &mut Evaluation,
) -> Result<(), TrainError> {
    let grid = cfg.grid.unwrap_or_else(|| grid_around(heldout, 200));
    let dens = density_on(energy, &grid)?;
    out.log_z = Some(dens.log_z);
    let n = out.samples.len() / 2;
    let outside = out
        .samples
        .chunks_exact(2)
        .filter(|p| (0..2).any(|k| p[k] < grid.lo[k] || p[k] > grid.hi[k]))
        .count();
    out.outside_grid = Some(outside as f64 / n.max(1) as f64);
    out.nll = Some(ev::heldout_nll(dens.log_z, e));
    if let Some((name, noise)) = &cfg.known
        && let Some(p) = ev::known_log_density(name, *noise)
    {
        out.kl = Some(ev::kl_data_model(&dens, &*p));
    }
    Ok(())
}

/// [`Evaluation::ksd`] uses at most this many held-out rows.
pub const KSD_ROWS: usize = 2000;

/// KSD² (IMQ, c = 1) of the first [`KSD_ROWS`] rows of `x` against `energy`.
fn ksd_of(energy: &CompiledEnergy, x: &[f64], rows: usize) -> Result<f64, TrainError> {
    let n = rows.min(KSD_ROWS);
    let d = energy.dim();
    let x = &x[..n * d];
    let score: Vec<f64> = grads(energy, x, n)?.iter().map(|g| -g).collect();
    Ok(crate::stats::ksd2_imq(x, &score, d, 1.0))
}

/// ∇ₓE at `n` rows of `x`, in f64, through the energy's own dtype.
pub fn grads(energy: &CompiledEnergy, x: &[f64], n: usize) -> Result<Vec<f64>, TrainError> {
    fn run<T: Scalar>(e: &CompiledEnergy, x: &[f64], n: usize) -> Result<Vec<f64>, TrainError> {
        let xs: Vec<T> = x.iter().map(|&v| T::from_f64(v)).collect();
        Ok(e.grad_x(&xs, None, n)?.iter().map(|v| v.to_f64()).collect())
    }
    match energy.dtype() {
        DType::F32 => run::<f32>(energy, x, n),
        DType::F64 => run::<f64>(energy, x, n),
    }
}

/// E at `n` rows of `x`, in f64, through the energy's own dtype.
pub fn energies(energy: &CompiledEnergy, x: &[f64], n: usize) -> Result<Vec<f64>, TrainError> {
    energies_given(energy, x, None, n)
}

/// E(x | c) of `n` rows, with one conditioning vector per row (`cond`:
/// `n × width`) for a conditional energy.
pub fn energies_given(
    energy: &CompiledEnergy,
    x: &[f64],
    cond: Option<&[f64]>,
    n: usize,
) -> Result<Vec<f64>, TrainError> {
    fn run<T: Scalar>(
        e: &CompiledEnergy,
        x: &[f64],
        cond: Option<&[f64]>,
        n: usize,
    ) -> Result<Vec<f64>, TrainError> {
        let to_t = |v: &[f64]| v.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
        let (xs, cs) = (to_t(x), cond.map(to_t));
        Ok(e.energy(&xs, cs.as_deref(), n)?
            .iter()
            .map(|v| v.to_f64())
            .collect())
    }
    match energy.dtype() {
        DType::F32 => run::<f32>(energy, x, cond, n),
        DType::F64 => run::<f64>(energy, x, cond, n),
    }
}

/// The quadrature grid over the held-out rows' range (both coordinates),
/// padded by 50% each side, `n × n` cells.
pub fn grid_around(heldout: &[f64], n: usize) -> Grid {
    let (lo, hi) = range(heldout);
    let pad = 0.5 * (hi - lo).max(1e-6);
    Grid {
        lo: [lo - pad; 2],
        hi: [hi + pad; 2],
        n,
    }
}

/// A 2-D energy's normalised density on `grid` (log Z by quadrature).
pub fn density_on(energy: &CompiledEnergy, grid: &Grid) -> Result<ev::GridDensity, TrainError> {
    density_given(energy, grid, None)
}

/// The density of E(x | c) on `grid` for one conditioning vector `cond`.
pub fn density_given(
    energy: &CompiledEnergy,
    grid: &Grid,
    cond: Option<&[f64]>,
) -> Result<ev::GridDensity, TrainError> {
    let mut f = |x: &[f64], n: usize, out: &mut [f64]| -> Result<(), String> {
        let c: Option<Vec<f64>> = cond.map(|c| c.repeat(n));
        let e = energies_given(energy, x, c.as_deref(), n).map_err(|e| e.to_string())?;
        out.copy_from_slice(&e);
        Ok(())
    };
    ev::grid_density(grid, &mut f).map_err(TrainError::Config)
}

fn range(x: &[f64]) -> (f64, f64) {
    x.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn nn_dist2(p: &[f64], set: &[f64], d: usize, skip: Option<usize>) -> f64 {
    set.chunks_exact(d)
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(_, r)| r.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
        .fold(f64::INFINITY, f64::min)
}

/// The share of `samples` within the held-out rows' own 99th-percentile
/// nearest-neighbour distance of some held-out row (at most 2000 rows of
/// each are compared).
fn support(samples: &[f64], heldout: &[f64], d: usize) -> f64 {
    let h = &heldout[..heldout.len().min(2000 * d)];
    let s = &samples[..samples.len().min(2000 * d)];
    let mut own: Vec<f64> = (0..h.len() / d)
        .map(|i| nn_dist2(&h[i * d..(i + 1) * d], h, d, Some(i)))
        .collect();
    own.sort_by(f64::total_cmp);
    let q = own[((own.len() as f64 * 0.99) as usize).min(own.len() - 1)];
    let n = s.len() / d;
    if n == 0 {
        return 0.0;
    }
    let near = s
        .chunks_exact(d)
        .filter(|p| nn_dist2(p, h, d, None) <= q)
        .count();
    near as f64 / n as f64
}
