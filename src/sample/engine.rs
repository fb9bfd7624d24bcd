//! The stepping engine every sampler runs on (ULA, MALA, RWMH, HMC, PT,
//! ULD), for
//! every caller (`ebm sample`, `sample(...)` in scripts, the embedding API,
//! `ebm bench`).
//!
//! Chains never interact (energies are per sample), so the chains are cut
//! once into contiguous blocks, one per worker thread, and each worker runs
//! *every* iteration of its block: no synchronisation between steps, the
//! block's state stays in the worker's cache, in the kernel's dtype `T`.
//! A step is one fused kernel call ([`Target`]: a Langevin move, a MALA or
//! random-walk proposal with E and ∇E at the proposal, or a leapfrog step)
//! plus a little per-chain host logic (accept/reject, divergence, adaptation).
//!
//! Randomness is counter-based: the normals of iteration `t` come from the
//! stream keyed by (seed, t) at position `chain × dim`, and the uniforms from
//! a hash of (seed, t, chain). So a chain's path depends only on the seed, its
//! index and the configuration — never on the number of threads, the block
//! split or (with per-chain adaptation) the number of chains. Initial points
//! come from each chain's own stream (`rng::ChainRng`).
//!
//! Divergence: MH kernels reject a proposal whose energy, gradient or
//! position is not finite (flagged divergent; the chain stays put). ULA has no
//! rejection: a chain whose next position is not finite (or whose energy at a
//! kept draw is not) is frozen at its last finite position and flagged on
//! every later iteration. ULD freezes a chain the same way. Chains never
//! read each other's values. After the run, a chain that diverged is told
//! apart as *escaped to infinity* when it ended far out (‖x‖ more than
//! [`ESCAPE_NORM`] times its start) with its energy far below its start
//! (by [`ESCAPE_DROP`] times |E₀|, at least that much): the signature of
//! an energy unbounded below (`run::Escape`), not of a step size too large
//! for a confining energy (where E blows up instead).
//!
//! Parallel tempering runs each user chain as K engine chains (its
//! replicas, one per temperature, adjacent in the block): a block of n user
//! chains holds n·K engine chains, so noise and uniforms are keyed by the
//! engine chain index and blocks start at even user chains. Replicas are
//! the only chains that interact, and only within one user chain (swaps);
//! step sizes belong to a temperature slot, states move between slots.

use indicatif::ProgressBar;

use super::adapt::{AdaptScope, DualAveraging, Welford, mass_windows};
use super::config::{Method, PtMove, PtOptions, SamplerConfig, UlaOptions};
use super::metric::{Covariance, Metrics};
use super::nuts::{Ctx, Nuts};
use super::rng::ChainRngs;
use super::run::{Divergence, Draws, Escape, Init, RunConfig};
use super::spill::{BlockSpill, BlockWriter, Columns};
use crate::backend::noise::{self, step_key};
use crate::runtime::steps::{HmcMove, MhKind, UlaMove, UldMove};
use crate::runtime::{RuntimeError, Scalar};

type R<T> = Result<T, RuntimeError>;

/// An energy as the engine sees it, in dtype `T`, on `n` chains at a time
/// (batch-major buffers). Only `eval` is required: the provided step methods
/// are the reference definitions of each move, written on the host; compiled
/// targets override them with fused kernels that compute the same formulas.
pub trait Target<T: Scalar>: Sync {
    fn dim(&self) -> usize;

    /// E at `n` points, and ∇ₓE when `g` is given.
    fn eval(&self, x: &[T], n: usize, e: &mut [T], g: Option<&mut [T]>) -> R<()>;

    /// y = clamp(x − drift·clip(∇E(x)) + noise·ξ); NaN propagates.
    fn ula(&self, m: &UlaMove, x: &[T], xi: &[T], n: usize, y: &mut [T]) -> R<()> {
        let mut e = vec![T::zero(); n];
        let mut g = vec![T::zero(); x.len()];
        self.eval(x, n, &mut e, Some(&mut g))?;
        for i in 0..x.len() {
            let mut gi = g[i].to_f64();
            if let Some(c) = m.clip {
                gi = clamp_nan(gi, -c, c);
            }
            let mut v = x[i].to_f64() - m.drift * gi + m.noise * xi[i].to_f64();
            if let Some((lo, hi)) = m.clamp {
                v = clamp_nan(v, lo, hi);
            }
            y[i] = T::from_f64(v);
        }
        Ok(())
    }

    /// `w.steps` ULA moves of `w.n` chains, the state carried in `x`
    /// (`noise` and `y` are scratch of the same length). Step `t` draws its
    /// noise from `step_key(seed, w.t0 + t)` at position `w.offset`. A chain
    /// whose next position is not finite keeps its last finite position and
    /// is marked in `frozen` with that step; frozen chains never move again.
    /// Compiled targets run the whole window as one `Kernel::run_steps` call
    /// on resident buffers.
    fn ula_steps(
        &self,
        m: &UlaMove,
        w: Window,
        x: &mut Vec<T>,
        noise: &mut Vec<T>,
        y: &mut Vec<T>,
        frozen: &mut [Option<u64>],
    ) -> R<()> {
        let d = self.dim();
        let mut tmp = vec![0f32; x.len()];
        for t in 0..w.steps {
            T::fill_normal(step_key(w.seed, w.t0 + t), w.offset, noise, &mut tmp);
            self.ula(m, x, noise, w.n, y)?;
            for (c, f) in frozen.iter_mut().enumerate() {
                let r = c * d..(c + 1) * d;
                if f.is_none() && !T::all_finite(&y[r.clone()]) {
                    *f = Some(w.t0 + t);
                }
                if f.is_some() {
                    y[r.clone()].copy_from_slice(&x[r]);
                }
            }
            std::mem::swap(x, y);
        }
        Ok(())
    }

    /// `w.steps` BAOAB steps of `w.n` chains from the state in `st`, step
    /// `t`'s noise from `step_key(w.seed, w.t0 + t)` at `w.offset`. A chain
    /// whose next position, velocity, gradient or energy is not finite keeps
    /// its whole last state and is marked in `frozen` with that step.
    /// Compiled targets run the window as one `Kernel::run_steps` call.
    fn uld_steps(
        &self,
        m: &UldMove,
        w: Window,
        st: UldState<'_, T>,
        frozen: &mut [Option<u64>],
    ) -> R<()> {
        let (n, d) = (w.n, self.dim());
        let zeros = |len: usize| vec![T::zero(); len];
        let (mut noise, mut tmp) = (zeros(n * d), vec![0f32; n * d]);
        let (mut y, mut p, mut gy, mut ey) = (zeros(n * d), zeros(n * d), zeros(n * d), zeros(n));
        for t in 0..w.steps {
            T::fill_normal(step_key(w.seed, w.t0 + t), w.offset, &mut noise, &mut tmp);
            let prop = Proposal {
                n,
                x: st.x,
                grad: st.g,
                noise: &noise,
                step: &[],
                inv_mass: &[],
                beta: &[],
            };
            let out = Phase {
                x: &mut y,
                p: &mut p,
                g: &mut gy,
                e: &mut ey,
            };
            self.uld(m, prop, st.v, out)?;
            for (c, f) in frozen.iter_mut().enumerate() {
                let r = c * d..(c + 1) * d;
                let ok = ey[c].to_f64().is_finite()
                    && finite(&y[r.clone()])
                    && finite(&p[r.clone()])
                    && finite(&gy[r.clone()]);
                if f.is_none() && !ok {
                    *f = Some(w.t0 + t);
                }
                if f.is_some() {
                    continue;
                }
                st.x[r.clone()].copy_from_slice(&y[r.clone()]);
                st.v[r.clone()].copy_from_slice(&p[r.clone()]);
                st.g[r.clone()].copy_from_slice(&gy[r]);
                st.e[c] = ey[c];
            }
        }
        Ok(())
    }

    /// `w.steps` Metropolis transitions (`req.kind`'s proposal, then the
    /// decision) of `w.n` chains on resident buffers, the chain state carried
    /// in `st`: step `t`'s normals are those of `step_key(w.seed, w.t0 + t)`
    /// at `w.offset`, its uniforms those of stream `req.stream` at chain
    /// `req.first + c`. Returns every step's state and statistics, or `None`
    /// when this target runs transitions one call at a time (the default:
    /// the engine then books each proposal itself).
    fn mh_window(&self, req: MhRequest, w: Window, st: MhState<'_, T>) -> R<Option<History<T>>> {
        let _ = (req, w, st);
        Ok(None)
    }

    /// The MALA proposal: `y`, E(y), ∇E(y) and log q(x|y) − log q(y|x).
    #[allow(clippy::too_many_arguments)]
    fn mala(
        &self,
        s: Proposal<'_, T>,
        y: &mut [T],
        ey: &mut [T],
        gy: &mut [T],
        log_q: &mut [T],
    ) -> R<()> {
        let d = self.dim();
        // A tempered proposal (PT) scales both gradients by β; β = 1 is
        // exact, so untempered moves are unchanged.
        let beta = |c: usize| s.beta.get(c).map_or(1.0, |b| b.to_f64());
        for c in 0..s.n {
            let (h, b) = (s.step[c].to_f64(), beta(c));
            for i in c * d..(c + 1) * d {
                let hm = h * s.inv_mass[i].to_f64();
                y[i] = T::from_f64(
                    s.x[i].to_f64() - 0.5 * hm * (b * s.grad[i].to_f64())
                        + hm.sqrt() * s.noise[i].to_f64(),
                );
            }
        }
        self.eval(y, s.n, ey, Some(gy))?;
        // Both proposal densities from the points as stored (y − x, not ξ):
        // a y that rounded to x gets the ratio of the move made.
        for c in 0..s.n {
            let (h, b) = (s.step[c].to_f64(), beta(c));
            let (mut fwd, mut bwd) = (0.0, 0.0);
            for i in c * d..(c + 1) * d {
                let hm = h * s.inv_mass[i].to_f64();
                let (xv, yv) = (s.x[i].to_f64(), y[i].to_f64());
                let w = yv - xv + 0.5 * hm * (b * s.grad[i].to_f64());
                fwd += w * w / hm;
                let z = xv - yv + 0.5 * hm * (b * gy[i].to_f64());
                bwd += z * z / hm;
            }
            log_q[c] = T::from_f64(0.5 * (fwd - bwd));
        }
        Ok(())
    }

    /// The random-walk proposal y = x + h·√m⊙ξ and E(y).
    fn rwmh(&self, s: Proposal<'_, T>, y: &mut [T], ey: &mut [T]) -> R<()> {
        let d = self.dim();
        for c in 0..s.n {
            let h = s.step[c].to_f64();
            for i in c * d..(c + 1) * d {
                y[i] = T::from_f64(
                    s.x[i].to_f64() + h * s.inv_mass[i].to_f64().sqrt() * s.noise[i].to_f64(),
                );
            }
        }
        self.eval(y, s.n, ey, None)
    }

    /// One leapfrog step (half kicks on both sides) from (x, p, ∇E(x)).
    fn leapfrog(&self, s: Proposal<'_, T>, p: &[T], out: Phase<'_, T>) -> R<()> {
        let d = self.dim();
        for c in 0..s.n {
            let eps = s.step[c].to_f64();
            for i in c * d..(c + 1) * d {
                let ph = p[i].to_f64() - 0.5 * eps * s.grad[i].to_f64();
                out.x[i] = T::from_f64(s.x[i].to_f64() + eps * s.inv_mass[i].to_f64() * ph);
                out.p[i] = T::from_f64(ph);
            }
        }
        self.eval(out.x, s.n, out.e, Some(out.g))?;
        for c in 0..s.n {
            let eps = s.step[c].to_f64();
            for i in c * d..(c + 1) * d {
                out.p[i] = T::from_f64(out.p[i].to_f64() - 0.5 * eps * out.g[i].to_f64());
            }
        }
        Ok(())
    }

    /// One BAOAB step of underdamped Langevin from (x, v = `p`, ∇E(x)) with
    /// noise `s.noise` (see `config` for the convention).
    fn uld(&self, m: &UldMove, s: Proposal<'_, T>, p: &[T], out: Phase<'_, T>) -> R<()> {
        let (hh, c, sd) = (0.5 * m.h, m.c, m.noise());
        for i in 0..s.n * self.dim() {
            let v1 = p[i].to_f64() - hh * s.grad[i].to_f64();
            let x1 = s.x[i].to_f64() + hh * v1;
            let v2 = c * v1 + sd * s.noise[i].to_f64();
            out.x[i] = T::from_f64(x1 + hh * v2);
            out.p[i] = T::from_f64(v2);
        }
        self.eval(out.x, s.n, out.e, Some(out.g))?;
        for i in 0..s.n * self.dim() {
            out.p[i] = T::from_f64(out.p[i].to_f64() - hh * out.g[i].to_f64());
        }
        Ok(())
    }
}

/// v clamped to [lo, hi], NaN kept (unlike `f64::max`/`min`).
fn clamp_nan(v: f64, lo: f64, hi: f64) -> f64 {
    if v > hi {
        hi
    } else if lo > v {
        lo
    } else {
        v
    }
}

/// The inputs of a proposal or leapfrog step for `n` chains. `noise` is
/// empty for a leapfrog step; `grad` is empty for a random walk; `beta`
/// (per-chain inverse temperatures) is empty except for PT's MALA moves.
#[derive(Clone, Copy)]
pub struct Proposal<'a, T> {
    pub n: usize,
    pub x: &'a [T],
    pub grad: &'a [T],
    pub noise: &'a [T],
    pub step: &'a [T],
    pub inv_mass: &'a [T],
    pub beta: &'a [T],
}

/// A run of ULA steps: chains, seed, the first step, how many, and the
/// noise stream position of the first chain (`first × dim`).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub n: usize,
    pub seed: u64,
    pub t0: u64,
    pub steps: u64,
    pub offset: u64,
}

/// What a window of Metropolis transitions proposes, and where its
/// uniforms come from.
#[derive(Clone, Copy, Debug)]
pub struct MhRequest {
    pub kind: MhKind,
    /// The decision's uniforms' stream ...
    pub stream: u64,
    /// ... and (HMC) the step jitter's.
    pub jitter_stream: u64,
    /// The block's first chain (the uniforms' chain numbering).
    pub first: u64,
}

/// A window's chain state: positions, energies and (MALA) gradients,
/// carried; per-chain step sizes, inverse masses and live flags (1, or 0
/// for a frozen chain), fixed — but in warm-up (`adapt`) the step sizes
/// are carried too, each step's dual-averaging update choosing the next.
pub struct MhState<'a, T> {
    pub x: &'a mut Vec<T>,
    pub e: &'a mut Vec<T>,
    pub g: &'a mut Vec<T>,
    pub step: &'a [T],
    pub inv_mass: &'a [T],
    pub live: &'a [T],
    pub adapt: Option<StepAdaptation<'a, T>>,
}

/// Each chain's dual averaging as a warm-up window starts
/// ([`DualAveraging::carried`] and the target acceptance).
pub struct StepAdaptation<'a, T> {
    pub mu: &'a [T],
    pub target: &'a [T],
    pub error: &'a [T],
    pub count: &'a [T],
}

/// The chain state underdamped Langevin carries from step to step.
pub struct UldState<'a, T> {
    pub x: &'a mut Vec<T>,
    pub v: &'a mut Vec<T>,
    pub g: &'a mut Vec<T>,
    pub e: &'a mut Vec<T>,
}

/// Every step of a window, step-major: the chains' positions, energies,
/// acceptances and divergence flags (1 or 0) after it, and for HMC each
/// transition's initial Hamiltonian and the step it used (its jittered ε).
pub struct History<T> {
    pub x: Vec<T>,
    pub e: Vec<T>,
    pub accept: Vec<T>,
    pub divergent: Vec<T>,
    pub hamiltonian: Vec<T>,
    pub used: Vec<T>,
}

/// The most memory a window's history may take; windows are shorter for
/// many chains of many dimensions (a single step's history is at most a
/// chain-sized buffer, which the run's memory estimate already counts).
pub(crate) const WINDOW_BYTES: usize = 32 << 20;
/// The most transitions a window holds (progress and interrupts are
/// checked between windows).
const WINDOW_STEPS: usize = 500;

/// Where a leapfrog step writes the new phase-space point.
pub struct Phase<'a, T> {
    pub x: &'a mut [T],
    pub p: &'a mut [T],
    pub g: &'a mut [T],
    pub e: &'a mut [T],
}

/// Counter-based uniforms in (0, 1]: 53 bits of sm64(seed', t) mixed with
/// the chain index, safe under `ln`.
pub(super) fn uniform(seed: u64, stream: u64, t: u64, chain: u64) -> f64 {
    noise::uniform_f64(noise::uniform_key(seed, stream, t), chain)
}

const STREAM_ACCEPT: u64 = 1;
const STREAM_JITTER: u64 = 2;
const STREAM_SWAP: u64 = 3;
/// ULD's initial velocities: the normal stream of a step index no run
/// reaches (runs are bounded far below 2⁶⁴ steps by `run::too_long`).
const VELOCITY_STEP: u64 = u64::MAX;

/// Normals of `n` chains starting at chain `first`, iteration `t`.
pub(super) fn fill_noise<T: Scalar>(
    seed: u64,
    t: u64,
    first: usize,
    dim: usize,
    out: &mut [T],
    tmp: &mut [f32],
) {
    let start = (first * dim) as u64;
    T::fill_normal(step_key(seed, t), start, out, tmp);
}

/// A diverged chain escaped when its final ‖x‖ exceeds this many times
/// 1 + its initial ‖x‖ ...
pub const ESCAPE_NORM: f64 = 1e2;
/// ... and its final energy lies below E₀ − this × max(1, |E₀|) (or is −∞).
pub const ESCAPE_DROP: f64 = 1e4;

/// What one block of chains reports back.
pub(crate) struct Block {
    pub draws: Draws,
    pub step: Vec<f64>,
    /// Per user chain (its T = 1 replica for PT): the summed acceptance
    /// over sampling iterations, and whether it ended frozen.
    pub chain_accept: Vec<f64>,
    pub chain_frozen: Vec<bool>,
    pub divergences: usize,
    pub warmup_divergences: usize,
    pub first_div: Vec<Divergence>,
    /// Chains that escaped to infinity (not in `first_div`).
    pub escaped: Vec<Escape>,
    pub frozen: usize,
    /// PT: per engine chain (user chain × temperature), the summed
    /// acceptance over sampling iterations and the final step size; per user
    /// chain and adjacent pair (`u * (k − 1) + j`), summed swap acceptance
    /// probabilities; per adjacent pair, swap proposals (sampling phase).
    /// Sums over chains are taken when blocks merge, in chain order, so the
    /// run's statistics are the same bytes for any number of blocks.
    pub temp_accept: Vec<f64>,
    pub temp_step: Vec<f64>,
    pub swap_accept: Vec<f64>,
    pub swap_tries: Vec<u64>,
    /// NUTS: leapfrog steps over the whole run (warm-up included), and
    /// sampling-phase transitions that stopped at the maximum tree depth.
    pub leapfrogs: u64,
    pub max_depth_hits: usize,
    /// Each user chain's metric at the end of warm-up
    /// ([`Metrics::report`]).
    pub metric: Vec<Vec<f64>>,
    /// A streamed run: the block's spill file and each user chain's count of
    /// distinct kept draws (the subsample in `draws` cannot tell).
    pub spill: Option<(BlockSpill, Vec<usize>)>,
}

/// Per-chain adaptation state of a block.
struct Adapter {
    on: bool,
    shared: bool,
    da: Vec<DualAveraging>,
    wf: Vec<Welford>,
    /// Dense metrics: the windows' covariances (instead of `wf`).
    cov: Vec<Covariance>,
    win_start: usize,
    win_ends: Vec<usize>,
    win: usize,
}

impl Adapter {
    fn new(cfg: &SamplerConfig, run: &RunConfig, n: usize, dim: usize) -> Adapter {
        let on = cfg.method.is_mh() && run.warmup > 0;
        let shared = cfg.adapt_scope == AdaptScope::Shared;
        let nda = if shared { 1 } else { n };
        let (win_start, win_ends) = if on && cfg.metric.adapted() {
            mass_windows(run.warmup)
        } else {
            (usize::MAX, Vec::new())
        };
        Adapter {
            on,
            shared,
            da: (0..nda)
                .map(|_| DualAveraging::new(cfg.step, cfg.target_accept))
                .collect(),
            wf: (0..nda).map(|_| Welford::new(dim)).collect(),
            cov: if cfg.metric == super::MetricKind::Dense {
                (0..nda).map(|_| Covariance::new(dim)).collect()
            } else {
                Vec::new()
            },
            win_start,
            win_ends,
            win: 0,
        }
    }

    /// Whether warm-up iteration `it`'s draws go into a metric window.
    fn collects(&self, it: usize) -> bool {
        self.win < self.win_ends.len() && it >= self.win_start
    }

    /// Whether warm-up can run in windows of whole transitions: each chain's
    /// step adapts from its own acceptance alone (a shared step averages
    /// over chains after every iteration) and the metric is diagonal.
    fn windowed(&self, cfg: &SamplerConfig, metrics: &Metrics) -> bool {
        self.on && !(cfg.adapt_step && self.shared) && !metrics.dense()
    }

    /// The first iteration after `it` at which more than the step sizes
    /// change, or draws start to be collected: the first metric window's
    /// start, a metric window's end, or warm-up's end.
    fn next_boundary(&self, it: usize, run: &RunConfig) -> usize {
        let window_end = self.win_ends.get(self.win).copied();
        [Some(self.win_start), window_end]
            .into_iter()
            .flatten()
            .filter(|&b| b > it)
            .fold(run.warmup, usize::min)
    }

    /// Each chain's dual averaging as [`StepAdaptation`]'s columns (μ,
    /// target, h̄, count), in the kernel's dtype.
    fn carried<T: Scalar>(&self, target: f64) -> [Vec<T>; 4] {
        let mut cols: [Vec<T>; 4] = Default::default();
        for da in &self.da {
            let (mu, error, count) = da.carried();
            for (col, v) in cols.iter_mut().zip([mu, target, error, count]) {
                col.push(T::from_f64(v));
            }
        }
        cols
    }

    /// After warm-up iteration `it`: updates step sizes and, at the end of a
    /// window, the metrics. Returns whether the metrics changed.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        cfg: &SamplerConfig,
        run: &RunConfig,
        it: usize,
        accept: &[f64],
        frozen: &[Option<u64>],
        x: &[f64],
        step: &mut [f64],
        metrics: &mut Metrics,
        used: Option<&[f64]>,
    ) -> bool {
        let n = step.len();
        let dim = metrics.dim;
        if cfg.adapt_step {
            if self.shared {
                let live: Vec<f64> = (0..n)
                    .filter(|&c| frozen[c].is_none())
                    .map(|c| accept[c])
                    .collect();
                let mean = if live.is_empty() {
                    0.0
                } else {
                    live.iter().sum::<f64>() / live.len() as f64
                };
                let s = self.da[0].update(mean);
                step.iter_mut().for_each(|v| *v = s);
            } else {
                for c in 0..n {
                    step[c] = self.da[c].update_used(accept[c], used.map(|u| u[c]));
                }
            }
        }
        let mut mass_changed = false;
        if self.win < self.win_ends.len() && it >= self.win_start {
            for c in 0..n {
                if frozen[c].is_none() {
                    let w = if self.shared { 0 } else { c };
                    let row = &x[c * dim..(c + 1) * dim];
                    match self.cov.get_mut(w) {
                        Some(cov) => cov.add(row),
                        None => self.wf[w].add(row),
                    }
                }
            }
            if it + 1 == self.win_ends[self.win] {
                self.win += 1;
                self.end_window(n, metrics);
                for (w, d) in self.da.iter_mut().enumerate() {
                    d.restart(step[if self.shared { 0 } else { w }]);
                }
                mass_changed = true;
            }
        }
        if it + 1 == run.warmup && cfg.adapt_step {
            for c in 0..n {
                step[c] = self.da[if self.shared { 0 } else { c }].final_step();
            }
        }
        mass_changed
    }

    /// Sets each chain's metric from its window's (or the pooled) draws
    /// and restarts the windows' accumulators.
    fn end_window(&mut self, n: usize, metrics: &mut Metrics) {
        let targets = |w: usize| -> Vec<usize> {
            if self.shared {
                (0..n).collect()
            } else {
                vec![w]
            }
        };
        if metrics.dense() {
            for (w, acc) in self.cov.iter_mut().enumerate() {
                let cov = acc.regularized(&metrics.diagonal(w));
                for c in targets(w) {
                    metrics.set_dense(c, &cov);
                }
                acc.reset();
            }
        } else {
            for (w, acc) in self.wf.iter_mut().enumerate() {
                let var = acc.variance_or(&metrics.diagonal(w));
                for c in targets(w) {
                    metrics.set_diag(c, &var);
                }
                acc.reset();
            }
        }
    }
}

/// The largest dimension whose warm-up starts from a curvature estimate
/// (2d gradient evaluations per chain).
pub const MAX_CURVATURE_DIM: usize = 256;
/// The most Hessian entries one block estimates at once (chains × d²,
/// 256 MiB): beyond it warm-up starts from the identity instead of
/// allocating without bound for very many chains.
pub const MAX_CURVATURE_VALUES: usize = 1 << 25;

/// Sets each chain's starting metric from the curvature at its starting
/// point: the inverse of the Hessian (central differences of ∇E), or its
/// diagonal ([`start_metric`]).
///
/// Why: the windows estimate variances from the draws, and a chain only
/// spreads as far as its steps let it. Started at M = I on a target with
/// scales 1 and 10⁻³, the step shrinks to the small scale and the large
/// coordinate's window variance comes out tiny; each window then grows it by
/// about its length, so MALA needed three times the default warm-up to get
/// the metric right. For a Gaussian the curvature is exact; elsewhere it is
/// a starting guess the windows replace.
fn curvature_metric<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    ch: &Chains<T>,
    metrics: &mut Metrics,
) -> R<()> {
    let (n, d) = (ch.n, ch.dim);
    let rel = if T::DTYPE == crate::backend::DType::F32 {
        1e-2
    } else {
        1e-5
    };
    let mut hess = vec![0.0; n * d * d];
    let (mut xp, mut e, mut gp, mut gm) = (
        ch.x.clone(),
        vec![T::zero(); n],
        vec![T::zero(); n * d],
        vec![T::zero(); n * d],
    );
    for i in 0..d {
        let mut h = vec![0.0; n];
        for sign in [1.0, -1.0] {
            xp.copy_from_slice(&ch.x);
            for c in 0..n {
                let x = ch.x[c * d + i].to_f64();
                let v = T::from_f64(x + sign * rel * x.abs().max(1.0));
                // The step as stored (after rounding), so the difference
                // quotient divides by the move actually made.
                h[c] += sign * (v.to_f64() - x);
                xp[c * d + i] = v;
            }
            let g = if sign > 0.0 { &mut gp } else { &mut gm };
            target.eval(&xp, n, &mut e, Some(g))?;
        }
        for c in 0..n {
            for j in 0..d {
                let k = c * d + j;
                hess[(c * d + j) * d + i] = (gp[k].to_f64() - gm[k].to_f64()) / h[c];
            }
        }
    }
    for c in 0..n {
        if ch.frozen(c) {
            continue;
        }
        let hc = &mut hess[c * d * d..(c + 1) * d * d];
        for i in 0..d {
            for j in 0..i {
                let m = 0.5 * (hc[i * d + j] + hc[j * d + i]);
                hc[i * d + j] = m;
                hc[j * d + i] = m;
            }
        }
        start_metric(metrics, c, hc);
    }
    Ok(())
}

/// Chain `c`'s metric from its Hessian `h` (d×d, symmetric): H⁻¹, or its
/// diagonal (the marginal variances of the Gaussian with that curvature,
/// not the conditional 1/Hᵢᵢ, which on correlated targets is far smaller
/// and would leave the windows to grow it back); 1/Hᵢᵢ where H is not
/// positive definite.
fn start_metric(metrics: &mut Metrics, c: usize, h: &[f64]) {
    let d = metrics.dim;
    if let Some(cov) = super::metric::inverse_spd(h, d) {
        if metrics.dense() {
            if metrics.set_dense(c, &cov) {
                return;
            }
        } else {
            let diag: Vec<f64> = (0..d).map(|i| cov[i * d + i]).collect();
            if diag.iter().all(|v| *v > 0.0) {
                metrics.set_diag(c, &diag);
                return;
            }
        }
    }
    let diag: Vec<f64> = (0..d)
        .map(|i| {
            let hi = h[i * d + i];
            if hi > 0.0 && hi.is_finite() && (1.0 / hi).is_finite() {
                1.0 / hi
            } else {
                1.0
            }
        })
        .collect();
    if metrics.dense() {
        let mut m = vec![0.0; d * d];
        for i in 0..d {
            m[i * d + i] = diag[i];
        }
        metrics.set_dense(c, &m);
    } else {
        metrics.set_diag(c, &diag);
    }
}

/// A block's chains: positions, energies, gradients, in the kernel's dtype.
pub(super) struct Chains<T> {
    pub n: usize,
    pub dim: usize,
    pub x: Vec<T>,
    pub e: Vec<T>,
    pub g: Vec<T>,
    /// ULD's velocities (empty for the other samplers).
    pub v: Vec<T>,
    /// The iteration at which each frozen chain froze (`None`: live).
    pub freeze: Vec<Option<u64>>,
}

impl<T> Chains<T> {
    pub fn frozen(&self, c: usize) -> bool {
        self.freeze[c].is_some()
    }
}

pub(super) fn finite<T: Scalar>(v: &[T]) -> bool {
    T::all_finite(v)
}

/// Whether two points are bitwise the same (a proposal that rounded to no
/// move).
pub(crate) fn same_point<T: Scalar>(a: &[T], b: &[T]) -> bool {
    a.iter()
        .zip(b)
        .all(|(p, q)| p.to_f64().to_bits() == q.to_f64().to_bits())
}

/// Scratch buffers of one block, allocated once.
pub(super) struct Scratch<T> {
    pub noise: Vec<T>,
    pub tmp: Vec<f32>,
    y: Vec<T>,
    ey: Vec<T>,
    gy: Vec<T>,
    log_q: Vec<T>,
    p: Vec<T>,
    pub step_t: Vec<T>,
    pub mass_t: Vec<T>,
    pub accept: Vec<f64>,
    pub divergent: Vec<bool>,
    /// Hamiltonian kernels: each chain's E + K at the start of the last
    /// transition and its leapfrog steps and tree depth.
    pub hamiltonian: Vec<f64>,
    pub leaps: Vec<u32>,
    pub depth: Vec<u32>,
    /// HMC: the jittered step each chain's last transition ran with.
    used_step: Vec<f64>,
    x64: Vec<f64>,
    /// PT: each engine chain's β, in the dtype and in f64 (empty otherwise).
    beta_t: Vec<T>,
    beta: Vec<f64>,
    /// HMC: the trajectory's current point, per-chain ε and initial energy.
    traj: Trajectory<T>,
}

struct Trajectory<T> {
    x: Vec<T>,
    g: Vec<T>,
    e: Vec<T>,
    p: Vec<T>,
    eps: Vec<T>,
    h0: Vec<f64>,
    alive: Vec<bool>,
}

impl<T: Scalar> Scratch<T> {
    fn new(n: usize, dim: usize) -> Self {
        let z = |len: usize| vec![T::zero(); len];
        Scratch {
            noise: z(n * dim),
            tmp: vec![0.0; n * dim],
            y: z(n * dim),
            ey: z(n),
            gy: z(n * dim),
            log_q: z(n),
            p: z(n * dim),
            step_t: z(n),
            mass_t: z(n * dim),
            accept: vec![0.0; n],
            divergent: vec![false; n],
            hamiltonian: vec![0.0; n],
            leaps: vec![0; n],
            depth: vec![0; n],
            used_step: Vec::new(),
            x64: Vec::new(),
            beta_t: Vec::new(),
            beta: Vec::new(),
            traj: Trajectory {
                x: z(n * dim),
                g: z(n * dim),
                e: z(n),
                p: z(n * dim),
                eps: z(n),
                h0: vec![0.0; n],
                alive: vec![false; n],
            },
        }
    }
}

/// Runs chains `first .. first + n` for the whole run.
pub(crate) fn run_block<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    cfg: &SamplerConfig,
    run: &RunConfig,
    first: usize,
    n: usize,
    pb: &ProgressBar,
) -> R<Block> {
    let dim = target.dim();
    let (users, k) = (n, cfg.method.replicas());
    let mut rngs = ChainRngs::range(run.seed, first, users);
    let x0 = init_positions(&run.init, &mut rngs, first, dim);
    // PT: every replica of a user chain starts at that chain's point; the
    // block holds n·K engine chains from engine chain first·K on.
    let (first, n) = (first * k, users * k);
    let uld = matches!(cfg.method, Method::Uld(_));
    let mut ch = Chains {
        n,
        dim,
        x: x0
            .chunks(dim)
            .flat_map(|row| std::iter::repeat_n(row, k).flatten())
            .map(|&v| T::from_f64(v))
            .collect(),
        e: vec![T::zero(); n],
        // ULA's fused step computes its own gradient: the chains keep
        // gradients only for the MH kernels and ULD (which carries ∇E).
        g: if cfg.method.needs_grad() && (cfg.method.is_mh() || uld) {
            vec![T::zero(); n * dim]
        } else {
            Vec::new()
        },
        v: Vec::new(),
        freeze: vec![None; n],
    };
    let grad = (!ch.g.is_empty()).then_some(&mut ch.g[..]);
    let stride = run.stride(dim);
    let in_memory = run.kept().div_ceil(stride);
    let writer = match &run.stream {
        Some(out) => Some(BlockWriter::create(
            out,
            first,
            users,
            run.kept(),
            dim,
            cfg.method.is_hamiltonian(),
        )?),
        None => None,
    };
    let mut draws = Draws::empty(users, in_memory, dim);
    if cfg.method.is_hamiltonian() {
        let cells = users * in_memory;
        draws.hamiltonian = vec![0.0; cells];
        draws.n_leapfrog = vec![0; cells];
        draws.tree_depth = vec![0; cells];
    }
    let energies = run.energies || cfg.method.is_mh() || uld;
    if energies {
        target.eval(&ch.x, n, &mut ch.e, grad)?;
    }
    let mut book = Book {
        b: Block {
            draws,
            step: Vec::new(),
            chain_accept: vec![0.0; users],
            chain_frozen: Vec::new(),
            divergences: 0,
            warmup_divergences: 0,
            first_div: Vec::new(),
            escaped: Vec::new(),
            frozen: 0,
            temp_accept: vec![0.0; users * k],
            temp_step: vec![0.0; users * k],
            swap_accept: vec![0.0; users * (k - 1)],
            swap_tries: vec![0; k - 1],
            leapfrogs: 0,
            max_depth_hits: 0,
            metric: Vec::new(),
            spill: None,
        },
        seen_div: vec![false; users],
        first,
        replicas: k,
        stride,
        writer,
    };
    // A chain that starts at a non-finite point is frozen from iteration 0.
    for c in 0..n {
        let r = c * dim..(c + 1) * dim;
        let bad = (energies && !ch.e[c].to_f64().is_finite())
            || !finite(&ch.x[r.clone()])
            || (!ch.g.is_empty() && !finite(&ch.g[r]));
        if bad {
            ch.freeze[c] = Some(0);
            first_divergence(&mut book, c, 0);
        }
    }
    if !energies {
        ch.e.fill(T::from_f64(f64::NAN));
    }
    let mut step = vec![cfg.step; n];
    let mut metrics = Metrics::identity(cfg.metric, n, dim);
    let curvature_start = cfg.metric.adapted()
        && run.warmup > 0
        && matches!(
            cfg.method,
            Method::Mala | Method::Hmc { .. } | Method::Nuts { .. }
        )
        && dim <= MAX_CURVATURE_DIM
        && n * dim * dim <= MAX_CURVATURE_VALUES;
    if curvature_start {
        curvature_metric(target, &ch, &mut metrics)?;
    }
    let mut s = Scratch::<T>::new(n, dim);
    refresh(&mut s.step_t, &step);
    refresh(&mut s.mass_t, &metrics.diag);
    if let Method::Pt(o) = &cfg.method {
        s.beta = (0..n).map(|c| 1.0 / o.ladder[c % k]).collect();
        s.beta_t = s.beta.iter().map(|&b| T::from_f64(b)).collect();
    }
    match &cfg.method {
        Method::Uld(o) => uld_loop(
            target,
            &UldMove::new(cfg.step, o.friction),
            run,
            &mut ch,
            &mut s,
            &mut book,
            pb,
        )?,
        Method::Ula(o) => ula_loop(
            target,
            &ula_move(cfg.step, o),
            run,
            &mut ch,
            &mut s,
            &mut book,
            pb,
        )?,
        _ => mh_loop(
            target,
            cfg,
            run,
            &mut ch,
            &mut s,
            &mut book,
            pb,
            &mut step,
            &mut metrics,
        )?,
    }
    let x_start: Vec<T> = x0
        .chunks(dim)
        .flat_map(|row| std::iter::repeat_n(row, k).flatten())
        .map(|&v| T::from_f64(v))
        .collect();
    escapes(target, &mut book, &ch, &x_start);
    if let Some(w) = book.writer.take() {
        book.b.spill = Some(w.finish()?);
    }
    let mut b = book.b;
    // A user chain is frozen when its kept (T = 1) replica is.
    b.chain_frozen = ch.freeze.iter().step_by(k).map(|f| f.is_some()).collect();
    b.frozen = b.chain_frozen.iter().filter(|f| **f).count();
    for (c, st) in step.iter().enumerate() {
        b.temp_step[c] = *st;
    }
    b.step = step.into_iter().step_by(k).collect();
    if cfg.method.is_mh() && cfg.metric.adapted() {
        b.metric = (0..n).step_by(k).map(|c| metrics.report(c)).collect();
    }
    Ok(b)
}

/// Moves the diverged chains that escaped to infinity (see the module doc)
/// from `first_div` to `escaped`, and lists the chains that are still
/// running away at the end without having diverged. Positions are checked
/// on the host first; only when some chain diverged or ended far out is E
/// evaluated at every chain's start and final position (two calls), so an
/// ordinary run (a training iteration's negatives) pays nothing. A failed
/// evaluation leaves the divergences as they are.
fn escapes<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    book: &mut Book,
    ch: &Chains<T>,
    x_start: &[T],
) {
    let (n, d, k) = (ch.n, ch.dim, book.replicas);
    // ‖x‖ without overflow for coordinates near the largest float.
    let norm = |x: &[T], c: usize| {
        let row = &x[c * d..(c + 1) * d];
        let m = row.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
        if m == 0.0 || !m.is_finite() {
            return m;
        }
        m * row
            .iter()
            .map(|v| (v.to_f64() / m).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let far: Vec<bool> = (0..n)
        .map(|c| {
            let (r0, r1) = (norm(x_start, c), norm(&ch.x, c));
            r1 > ESCAPE_NORM * (1.0 + r0) || (r1.is_infinite() && r0.is_finite())
        })
        .collect();
    if book.b.first_div.is_empty() && !far.contains(&true) {
        return;
    }
    let mut e0 = vec![T::zero(); n];
    let mut e1 = vec![T::zero(); n];
    if target.eval(x_start, n, &mut e0, None).is_err()
        || target.eval(&ch.x, n, &mut e1, None).is_err()
    {
        return;
    }
    let escaped = |c: usize| {
        let (a, b) = (e0[c].to_f64(), e1[c].to_f64());
        let fell =
            a.is_finite() && (b == f64::NEG_INFINITY || b < a - ESCAPE_DROP * a.abs().max(1.0));
        (far[c] && fell).then(|| (norm(&ch.x, c), b))
    };
    // A user chain's replicas, as engine chains of this block.
    let replicas = |chain: usize| {
        let base = chain * k - book.first;
        base..base + k
    };
    let mut kept = Vec::new();
    let mut listed = vec![false; n / k.max(1)];
    for div in std::mem::take(&mut book.b.first_div) {
        listed[replicas(div.chain).start / k] = true;
        match replicas(div.chain).find_map(escaped) {
            Some((norm, energy)) => book.b.escaped.push(Escape {
                chain: div.chain,
                iteration: Some(div.iteration),
                norm,
                energy,
            }),
            None => kept.push(div),
        }
    }
    book.b.first_div = kept;
    for (u, seen) in listed.iter().enumerate() {
        let chain = (book.first + u * k) / k;
        if !seen && let Some((norm, energy)) = replicas(chain).find_map(escaped) {
            book.b.escaped.push(Escape {
                chain,
                iteration: None,
                norm,
                energy,
            });
        }
    }
    book.b.escaped.sort_by_key(|e| e.chain);
}

/// A block's divergence and acceptance bookkeeping.
struct Book {
    b: Block,
    /// Whether each chain's first divergence is already listed.
    seen_div: Vec<bool>,
    /// The block's first engine chain.
    first: usize,
    /// Engine chains per user chain (PT's replicas; 1 otherwise).
    replicas: usize,
    /// Every how many kept draws `b.draws` keeps one (1 unless streamed).
    stride: usize,
    /// A streamed run's spill file.
    writer: Option<BlockWriter>,
}

/// Lists a user chain's first divergence (once, whichever replica it
/// was); `c` is the engine chain's index in the block.
fn first_divergence(book: &mut Book, c: usize, it: usize) {
    let k = book.replicas;
    if !book.seen_div[c / k] {
        book.seen_div[c / k] = true;
        book.b.first_div.push(Divergence {
            chain: (book.first + c) / k,
            iteration: it,
        });
    }
}

/// ULA: each window up to and including the next kept iteration is one
/// `ula_steps` call; the divergences are booked from the freeze steps.
fn ula_loop<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    m: &UlaMove,
    run: &RunConfig,
    ch: &mut Chains<T>,
    s: &mut Scratch<T>,
    book: &mut Book,
    pb: &ProgressBar,
) -> R<()> {
    let (n, total, thin) = (ch.n, run.warmup + run.steps, run.thin.max(1));
    let mut it = 0;
    while it < total {
        stop_requested()?;
        let end = window_end(it, run);
        let w = Window {
            n,
            seed: run.seed,
            t0: it as u64,
            steps: (end - it) as u64,
            offset: (book.first * ch.dim) as u64,
        };
        target.ula_steps(m, w, &mut ch.x, &mut s.noise, &mut s.y, &mut ch.freeze)?;
        account_unadjusted(book, ch, s, run, it, end);
        let last = end - 1;
        if last >= run.warmup && (last - run.warmup).is_multiple_of(thin) {
            if run.energies {
                ula_energies(target, ch, s, book, last)?;
            }
            record(book, ch, s, (last - run.warmup) / thin)?;
        }
        pb.inc((n * (end - it)) as u64);
        it = end;
    }
    Ok(())
}

/// MALA, RWMH and HMC: one proposal (or trajectory) per iteration, then
/// accept/reject, divergence bookkeeping and warm-up adaptation.
#[allow(clippy::too_many_arguments)]
fn mh_loop<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    cfg: &SamplerConfig,
    run: &RunConfig,
    ch: &mut Chains<T>,
    s: &mut Scratch<T>,
    book: &mut Book,
    pb: &ProgressBar,
    step: &mut [f64],
    metrics: &mut Metrics,
) -> R<()> {
    let (n, first, thin) = (ch.n, book.first, run.thin.max(1));
    let mut adapter = Adapter::new(cfg, run, n, ch.dim);
    let mut nuts: Option<Nuts<T>> = None;
    let total = run.warmup + run.steps;
    let mut windows = mh_kind(cfg, metrics);
    let mut it = 0;
    while it < total {
        stop_requested()?;
        if let Some(kind) = windows.filter(|_| it >= run.warmup || adapter.windowed(cfg, metrics)) {
            let end = if it >= run.warmup {
                mh_window(target, kind, run, ch, s, book, it)?
            } else {
                let w = WarmWindow { kind, cfg, run, it };
                warm_window(target, w, ch, s, book, &mut adapter, step, metrics)?
            };
            match end {
                Some(end) => {
                    pb.inc((n * (end - it)) as u64);
                    it = end;
                    continue;
                }
                None => windows = None,
            }
        }
        let t = it as u64;
        match &cfg.method {
            Method::Mala => mala_step(target, run.seed, t, first, ch, s, metrics)?,
            Method::Rwmh => rwmh_step(target, run.seed, t, first, ch, s)?,
            Method::Pt(o) => match o.moves {
                PtMove::Mala => mala_step(target, run.seed, t, first, ch, s, metrics)?,
                PtMove::Rwmh => rwmh_step(target, run.seed, t, first, ch, s)?,
            },
            Method::Hmc { leapfrog } => {
                hmc_step(target, cfg, *leapfrog, run.seed, t, first, ch, s, metrics)?
            }
            Method::Nuts { max_depth } => {
                let ctx = Ctx {
                    cfg,
                    seed: run.seed,
                    t,
                    first,
                    metrics,
                };
                let tree = nuts.get_or_insert_with(|| Nuts::new(n, ch.dim, *max_depth));
                tree.step(target, &ctx, ch, s)?;
                s.hamiltonian.copy_from_slice(tree.hamiltonian());
                s.leaps.copy_from_slice(&tree.leaps);
                s.depth.copy_from_slice(&tree.depth);
                book.b.leapfrogs += tree.leaps.iter().map(|&l| l as u64).sum::<u64>();
                if it >= run.warmup {
                    book.b.max_depth_hits += tree
                        .depth
                        .iter()
                        .filter(|&&d| d as usize == *max_depth)
                        .count();
                }
            }
            Method::Ula(_) | Method::Uld(_) => {
                return Err(RuntimeError::Internal(
                    "an unadjusted kernel in the MH loop".into(),
                ));
            }
        }
        let warm = it < run.warmup;
        if let Method::Pt(o) = &cfg.method
            && (it + 1).is_multiple_of(o.swap_every)
        {
            let round = (it + 1) / o.swap_every - 1;
            swap_replicas(o, run.seed, t, first, round % 2, ch, &mut book.b, !warm);
        }
        book_divergences(book, s, &ch.freeze, warm, it);
        if warm && adapter.on {
            s.x64.clear();
            if adapter.collects(it) {
                s.x64.extend(ch.x.iter().map(|v| v.to_f64()));
            }
            let used = matches!(cfg.method, Method::Hmc { .. }).then(|| {
                s.used_step.clear();
                s.used_step.extend(s.traj.eps.iter().map(|e| e.to_f64()));
                &s.used_step[..]
            });
            let mass_changed = adapter.update(
                cfg, run, it, &s.accept, &ch.freeze, &s.x64, step, metrics, used,
            );
            refresh(&mut s.step_t, step);
            if mass_changed {
                refresh(&mut s.mass_t, &metrics.diag);
            }
        }
        if !warm {
            let i = it - run.warmup;
            book_acceptance(book, s);
            if i.is_multiple_of(thin) {
                record(book, ch, s, i / thin)?;
            }
        }
        pb.inc((n / book.replicas) as u64);
        it += 1;
    }
    Ok(())
}

/// The proposal of a sampler whose sampling-phase transitions can run in
/// windows ([`Target::mh_window`]): MALA with a diagonal metric and the
/// random walk, not as PT replicas (which swap between steps).
fn mh_kind(cfg: &SamplerConfig, metrics: &Metrics) -> Option<MhKind> {
    match cfg.method {
        Method::Mala if !metrics.dense() => Some(MhKind::Mala),
        Method::Rwmh => Some(MhKind::RandomWalk),
        Method::Hmc { leapfrog } if !metrics.dense() => Some(MhKind::Hmc(HmcMove {
            leapfrog,
            jitter: cfg.step_jitter,
            max_error: cfg.max_energy_error,
        })),
        _ => None,
    }
}

/// Sampling iterations `it..` as one window of transitions on the target's
/// resident buffers, booked iteration by iteration from its history as
/// [`mh_loop`] books them; the end of the window, or `None` when the target
/// has no windows.
fn mh_window<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    kind: MhKind,
    run: &RunConfig,
    ch: &mut Chains<T>,
    s: &mut Scratch<T>,
    book: &mut Book,
    it: usize,
) -> R<Option<usize>> {
    let limit = run.warmup + run.steps - it;
    let Some((steps, h)) = run_window(target, kind, run.seed, it, limit, ch, s, book, None)? else {
        return Ok(None);
    };
    let (n, d) = (ch.n, ch.dim);
    let thin = run.thin.max(1);
    for k in 0..steps {
        let rows = k * n..(k + 1) * n;
        statistics_of_step(s, &h, k, n);
        if let MhKind::Hmc(m) = kind {
            refresh_from(&mut s.hamiltonian, &h.hamiltonian[rows.clone()]);
            s.leaps.fill(m.leapfrog as u32);
        }
        let i = it + k;
        book_divergences(book, s, &ch.freeze, false, i);
        book_acceptance(book, s);
        let drawn = i - run.warmup;
        if drawn.is_multiple_of(thin) {
            let x = &h.x[k * n * d..(k + 1) * n * d];
            record_from(book, x, &h.e[rows], d, s, drawn / thin)?;
        }
    }
    Ok(Some(it + steps))
}

/// Up to `limit` iterations from `it` as one window of transitions on the
/// target's resident buffers (fewer where the history would pass
/// [`WINDOW_BYTES`] or [`WINDOW_STEPS`]), adapting the steps where `adapt`
/// says: the iterations run and their history, or `None` when the target
/// has no windows.
#[allow(clippy::too_many_arguments)]
fn run_window<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    kind: MhKind,
    seed: u64,
    it: usize,
    limit: usize,
    ch: &mut Chains<T>,
    s: &Scratch<T>,
    book: &Book,
    adapt: Option<StepAdaptation<'_, T>>,
) -> R<Option<(usize, History<T>)>> {
    let (n, d) = (ch.n, ch.dim);
    let per_step = n * (d + 5) * std::mem::size_of::<T>();
    let room = (WINDOW_BYTES / per_step.max(1)).clamp(1, WINDOW_STEPS);
    let steps = room.min(limit);
    let live: Vec<T> = ch
        .freeze
        .iter()
        .map(|f| T::from_f64(if f.is_some() { 0.0 } else { 1.0 }))
        .collect();
    let req = MhRequest {
        kind,
        stream: STREAM_ACCEPT,
        jitter_stream: STREAM_JITTER,
        first: book.first as u64,
    };
    let w = Window {
        n,
        seed,
        t0: it as u64,
        steps: steps as u64,
        offset: (book.first * d) as u64,
    };
    let st = MhState {
        x: &mut ch.x,
        e: &mut ch.e,
        g: &mut ch.g,
        step: &s.step_t,
        inv_mass: &s.mass_t,
        live: &live,
        adapt,
    };
    Ok(target.mh_window(req, w, st)?.map(|h| (steps, h)))
}

/// Step `k`'s acceptances and divergence flags of a window's `n` chains,
/// into the scratch the bookkeeping reads.
fn statistics_of_step<T: Scalar>(s: &mut Scratch<T>, h: &History<T>, k: usize, n: usize) {
    let rows = k * n..(k + 1) * n;
    for (c, (a, v)) in s.accept.iter_mut().zip(&h.accept[rows]).enumerate() {
        *a = v.to_f64();
        s.divergent[c] = h.divergent[k * n + c].to_f64() != 0.0;
    }
}

/// Where a warm-up window starts, and what it samples with.
#[derive(Clone, Copy)]
struct WarmWindow<'a> {
    kind: MhKind,
    cfg: &'a SamplerConfig,
    run: &'a RunConfig,
    it: usize,
}

/// Warm-up iterations `w.it..` as one window of transitions on the target's
/// resident buffers, each chain's step adapted there after every transition
/// by the engine's dual averaging (`runtime::steps::mh_transition` repeats
/// its update as ops). The window ends where more than the steps change or
/// positions start to be collected ([`Adapter::next_boundary`]), and is
/// then booked and adapted iteration by iteration from its history as
/// [`mh_loop`] does: the adapter's state (f64) replays the target's
/// updates, and takes over at the window's end. On f64 kernels the two agree bit for bit, so warm-up
/// in windows is warm-up one iteration at a time. Returns the window's end,
/// or `None` when the target has no windows.
#[allow(clippy::too_many_arguments)]
fn warm_window<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    w: WarmWindow<'_>,
    ch: &mut Chains<T>,
    s: &mut Scratch<T>,
    book: &mut Book,
    adapter: &mut Adapter,
    step: &mut [f64],
    metrics: &mut Metrics,
) -> R<Option<usize>> {
    let it = w.it;
    let adapting = w.cfg.adapt_step;
    let [mu, goal, error, count] = adapter.carried::<T>(w.cfg.target_accept);
    let adapt = adapting.then_some(StepAdaptation {
        mu: &mu,
        target: &goal,
        error: &error,
        count: &count,
    });
    let limit = adapter.next_boundary(it, w.run) - it;
    let Some((steps, h)) = run_window(target, w.kind, w.run.seed, it, limit, ch, s, book, adapt)?
    else {
        return Ok(None);
    };
    let (n, d) = (ch.n, ch.dim);
    let hmc = matches!(w.kind, MhKind::Hmc(_));
    for k in 0..steps {
        statistics_of_step(s, &h, k, n);
        let i = it + k;
        book_divergences(book, s, &ch.freeze, true, i);
        s.x64.clear();
        if adapter.collects(i) {
            s.x64
                .extend(h.x[k * n * d..(k + 1) * n * d].iter().map(|v| v.to_f64()));
        }
        s.used_step.clear();
        if hmc && adapting {
            s.used_step
                .extend(h.used[k * n..(k + 1) * n].iter().map(|v| v.to_f64()));
        }
        let used = (!s.used_step.is_empty()).then_some(&s.used_step[..]);
        let (accept, x64) = (&s.accept, &s.x64);
        if adapter.update(
            w.cfg, w.run, i, accept, &ch.freeze, x64, step, metrics, used,
        ) {
            refresh(&mut s.mass_t, &metrics.diag);
        }
    }
    refresh(&mut s.step_t, step);
    Ok(Some(it + steps))
}

/// Counts an iteration's divergent chains, and lists each chain's first.
fn book_divergences<T: Scalar>(
    book: &mut Book,
    s: &Scratch<T>,
    freeze: &[Option<u64>],
    warm: bool,
    it: usize,
) {
    for (c, f) in freeze.iter().enumerate() {
        if s.divergent[c] {
            if warm {
                book.b.warmup_divergences += 1;
            } else {
                book.b.divergences += 1;
            }
            // Warm-up divergences of MH kernels are expected while the
            // step size is searched for: they are counted, but a chain is
            // listed only for a sampling-phase divergence or a freeze.
            if !warm || f.is_some() {
                first_divergence(book, c, it);
            }
        }
    }
}

/// Adds a sampling iteration's acceptances to each chain's and temperature
/// slot's sums.
fn book_acceptance<T: Scalar>(book: &mut Book, s: &Scratch<T>) {
    let k = book.replicas;
    for (c, a) in s.accept.iter().enumerate() {
        book.b.temp_accept[c] += a;
    }
    for (u, a) in s.accept.iter().step_by(k).enumerate() {
        book.b.chain_accept[u] += a;
    }
}

/// `dst` from the kernel's values `src`, in f64.
fn refresh_from<T: Scalar>(dst: &mut [f64], src: &[T]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f64();
    }
}

fn refresh<T: Scalar>(dst: &mut [T], src: &[f64]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = T::from_f64(*s);
    }
}

pub(crate) fn ula_move(step: f64, o: &UlaOptions) -> UlaMove {
    let (drift, noise) = match o.noise {
        Some(sigma) => (step, sigma),
        None => (0.5 * step, step.sqrt()),
    };
    UlaMove {
        drift,
        noise,
        clip: o.clip_grad,
        clamp: o.clamp,
    }
}

/// Writes kept draw `k` of every user chain: its first engine chain (PT's
/// T = 1 replica, which is why `d.chains` may be fewer than `ch.n`).
fn record<T: Scalar>(book: &mut Book, ch: &Chains<T>, s: &Scratch<T>, k: usize) -> R<()> {
    record_from(book, &ch.x, &ch.e, ch.dim, s, k)
}

/// [`record`] from positions `x` and energies `e` of the block's chains.
fn record_from<T: Scalar>(
    book: &mut Book,
    x: &[T],
    e: &[T],
    dim: usize,
    s: &Scratch<T>,
    k: usize,
) -> R<()> {
    let d = &mut book.b.draws;
    let every = e.len() / d.chains.max(1);
    // Hamiltonian samplers' draws carry the extra columns (set up with them).
    let hamiltonian = !d.hamiltonian.is_empty();
    let columns = |c: usize| Columns {
        energy: e[c].to_f64(),
        accept: s.accept[c],
        divergent: s.divergent[c],
        hamiltonian: hamiltonian.then(|| s.hamiltonian[c]),
        n_leapfrog: hamiltonian.then(|| s.leaps[c]),
        tree_depth: hamiltonian.then(|| s.depth[c]),
    };
    if k.is_multiple_of(book.stride) {
        let kept = d.draws;
        for u in 0..d.chains {
            let c = u * every;
            let o = u * kept + k / book.stride;
            for (dst, src) in d.x[o * dim..(o + 1) * dim]
                .iter_mut()
                .zip(&x[c * dim..(c + 1) * dim])
            {
                *dst = src.to_f64();
            }
            let cols = columns(c);
            d.energy[o] = cols.energy;
            d.accept[o] = cols.accept;
            d.divergent[o] = cols.divergent;
            if hamiltonian {
                d.hamiltonian[o] = s.hamiltonian[c];
                d.n_leapfrog[o] = s.leaps[c];
                d.tree_depth[o] = s.depth[c];
            }
        }
    }
    if let Some(w) = &mut book.writer {
        for u in 0..d.chains {
            let c = u * every;
            let row = x[c * dim..(c + 1) * dim].iter().map(|v| v.to_f64());
            w.put(u, row, columns(c));
        }
        w.end_draw()?;
    }
    Ok(())
}

/// Ends the run when the user asked it to stop (`crate::interrupt`).
fn stop_requested() -> R<()> {
    match crate::interrupt::requested() {
        true => Err(RuntimeError::Interrupted),
        false => Ok(()),
    }
}

/// The end of an unadjusted window from `it`: just past the next kept
/// iteration, and at most `WINDOW_STEPS` on, so that interrupts and the
/// progress bar are seen during a long warm-up or a heavily thinned run
/// (the noise is keyed by step, so where windows end changes no draw).
pub(super) fn window_end(it: usize, run: &RunConfig) -> usize {
    let total = run.warmup + run.steps;
    let kept = next_kept(it, run).map_or(total, |k| k + 1);
    kept.min(it + WINDOW_STEPS)
}

/// The first kept iteration at or after `it`.
fn next_kept(it: usize, run: &RunConfig) -> Option<usize> {
    let thin = run.thin.max(1);
    let k = if it <= run.warmup {
        run.warmup
    } else {
        run.warmup + (it - run.warmup).div_ceil(thin) * thin
    };
    (k < run.warmup + run.steps).then_some(k)
}

/// Books the divergences of ULA's or ULD's iterations `a..e` from the chains' freeze
/// steps (a frozen chain is divergent on every iteration from its freeze on)
/// and sets the last iteration's acceptance and divergence flags.
fn account_unadjusted<T: Scalar>(
    book: &mut Book,
    ch: &Chains<T>,
    s: &mut Scratch<T>,
    run: &RunConfig,
    a: usize,
    e: usize,
) {
    let sampling = |lo: usize| e.saturating_sub(lo.max(run.warmup));
    for c in 0..ch.n {
        let from = ch.freeze[c].map(|f| (f as usize).max(a));
        // Acceptance 1 on each sampling iteration before the freeze.
        let moved = (sampling(a) - sampling(from.unwrap_or(e))) as f64;
        book.b.chain_accept[c] += moved;
        if let Some(f) = from {
            let div_sampling = sampling(f);
            book.b.divergences += div_sampling;
            book.b.warmup_divergences += e - f - div_sampling;
            first_divergence(book, c, f);
        }
        s.divergent[c] = ch.frozen(c);
        s.accept[c] = if ch.frozen(c) { 0.0 } else { 1.0 };
    }
}

/// ULA's energies at a kept draw (the step kernel does not compute them);
/// a non-finite energy freezes the chain there.
fn ula_energies<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    ch: &mut Chains<T>,
    s: &mut Scratch<T>,
    book: &mut Book,
    it: usize,
) -> R<()> {
    target.eval(&ch.x, ch.n, &mut ch.e, None)?;
    for c in 0..ch.n {
        if !ch.frozen(c) && !ch.e[c].to_f64().is_finite() {
            ch.freeze[c] = Some(it as u64);
            s.divergent[c] = true;
            s.accept[c] = 0.0;
            // A kept draw is a sampling iteration `account_unadjusted` booked as
            // accepted; it is a divergence instead.
            book.b.chain_accept[c] -= 1.0;
            book.b.divergences += 1;
            first_divergence(book, c, it);
        }
    }
    Ok(())
}

/// The Metropolis decision for chain `c`: accept with probability
/// min(1, exp(log_a)), one uniform per chain per iteration whatever happens.
fn decide(seed: u64, t: u64, chain: usize, log_a: f64) -> (f64, bool) {
    decide_in(STREAM_ACCEPT, seed, t, chain, log_a)
}

/// [`decide`] with the uniform from stream `stream`.
fn decide_in(stream: u64, seed: u64, t: u64, chain: usize, log_a: f64) -> (f64, bool) {
    let u = uniform(seed, stream, t, chain as u64);
    let a = if log_a >= 0.0 { 1.0 } else { log_a.exp() };
    (if a.is_nan() { 0.0 } else { a }, u.ln() < log_a)
}

fn mala_step<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    seed: u64,
    t: u64,
    first: usize,
    ch: &mut Chains<T>,
    s: &mut Scratch<T>,
    metrics: &Metrics,
) -> R<()> {
    fill_noise(seed, t, first, ch.dim, &mut s.noise, &mut s.tmp);
    let prop = Proposal {
        n: ch.n,
        x: &ch.x,
        grad: &ch.g,
        noise: &s.noise,
        step: &s.step_t,
        inv_mass: &s.mass_t,
        beta: &s.beta_t,
    };
    if metrics.dense() {
        dense_mala(
            target,
            metrics,
            prop,
            &mut s.y,
            &mut s.ey,
            &mut s.gy,
            &mut s.log_q,
        )?;
    } else {
        target.mala(prop, &mut s.y, &mut s.ey, &mut s.gy, &mut s.log_q)?;
    }
    metropolis(ch, s, seed, t, first, true);
    Ok(())
}

fn rwmh_step<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    seed: u64,
    t: u64,
    first: usize,
    ch: &mut Chains<T>,
    s: &mut Scratch<T>,
) -> R<()> {
    fill_noise(seed, t, first, ch.dim, &mut s.noise, &mut s.tmp);
    let prop = Proposal {
        n: ch.n,
        x: &ch.x,
        grad: &[],
        noise: &s.noise,
        step: &s.step_t,
        inv_mass: &s.mass_t,
        beta: &[],
    };
    target.rwmh(prop, &mut s.y, &mut s.ey)?;
    s.log_q.fill(T::zero());
    metropolis(ch, s, seed, t, first, false);
    Ok(())
}

/// Accepts or rejects each chain's proposal (`s.y`, `s.ey`, and `s.gy`
/// when `with_grad`) with log acceptance E(x) − E(y) + `s.log_q`; a
/// non-finite proposal is rejected and flagged divergent.
fn metropolis<T: Scalar>(
    ch: &mut Chains<T>,
    s: &mut Scratch<T>,
    seed: u64,
    t: u64,
    first: usize,
    with_grad: bool,
) {
    let d = ch.dim;
    for c in 0..ch.n {
        let r = c * d..(c + 1) * d;
        s.accept[c] = 0.0;
        s.divergent[c] = false;
        if ch.frozen(c) {
            s.divergent[c] = true;
            continue;
        }
        let ey = s.ey[c].to_f64();
        let grad_ok = !with_grad || finite(&s.gy[r.clone()]);
        if !(ey.is_finite() && finite(&s.y[r.clone()]) && grad_ok) {
            s.divergent[c] = true;
            continue;
        }
        let de = ch.e[c].to_f64() - ey;
        // PT replicas target exp(−βE).
        let de = if s.beta.is_empty() {
            de
        } else {
            s.beta[c] * de
        };
        // A proposal that rounded to the current point is no move: it
        // counts as not moving (acceptance 0) for adaptation and the
        // acceptance rate, whatever its ratio says.
        if same_point(&s.y[r.clone()], &ch.x[r.clone()]) {
            continue;
        }
        let log_a = de + s.log_q[c].to_f64();
        let (a, yes) = decide(seed, t, first + c, log_a);
        s.accept[c] = a;
        if yes {
            ch.x[r.clone()].copy_from_slice(&s.y[r.clone()]);
            if with_grad {
                ch.g[r.clone()].copy_from_slice(&s.gy[r]);
            }
            ch.e[c] = s.ey[c];
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn hmc_step<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    cfg: &SamplerConfig,
    leapfrog: usize,
    seed: u64,
    t: u64,
    first: usize,
    ch: &mut Chains<T>,
    s: &mut Scratch<T>,
    metrics: &Metrics,
) -> R<()> {
    let (n, d) = (ch.n, ch.dim);
    // Momenta p = L⁻ᵀξ ~ N(0, M); a jittered ε per chain.
    fill_noise(seed, t, first, d, &mut s.noise, &mut s.tmp);
    let tr = &mut s.traj;
    let (mut xi, mut p, mut v) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    for c in 0..n {
        let uj = uniform(seed, STREAM_JITTER, t, (first + c) as u64);
        let e = s.step_t[c].to_f64() * (1.0 + cfg.step_jitter * (2.0 * uj - 1.0));
        tr.eps[c] = T::from_f64(e);
        let r = c * d..(c + 1) * d;
        for (a, b) in xi.iter_mut().zip(&s.noise[r.clone()]) {
            *a = b.to_f64();
        }
        metrics.momentum(c, &xi, &mut p);
        for (i, pi) in r.zip(p.iter_mut()) {
            tr.p[i] = T::from_f64(*pi);
            *pi = tr.p[i].to_f64();
        }
        tr.h0[c] = ch.e[c].to_f64() + kinetic(metrics, c, &p, &mut v);
        tr.alive[c] = !ch.frozen(c);
    }
    s.hamiltonian.copy_from_slice(&tr.h0);
    s.leaps.fill(leapfrog as u32);
    // The trajectory ping-pongs between `tr` and (y, p, gy, ey).
    tr.x.copy_from_slice(&ch.x);
    tr.g.copy_from_slice(&ch.g);
    tr.e.copy_from_slice(&ch.e);
    let rows: Vec<usize> = (0..n).collect();
    for _ in 0..leapfrog {
        let out = Phase {
            x: &mut s.y,
            p: &mut s.p,
            g: &mut s.gy,
            e: &mut s.ey,
        };
        leapfrog_rows(
            target, metrics, &rows, &s.mass_t, &tr.x, &tr.g, &tr.p, &tr.eps, out,
        )?;
        std::mem::swap(&mut tr.x, &mut s.y);
        std::mem::swap(&mut tr.g, &mut s.gy);
        std::mem::swap(&mut tr.e, &mut s.ey);
        std::mem::swap(&mut tr.p, &mut s.p);
        if T::all_finite(&tr.e) && T::all_finite(&tr.x) && T::all_finite(&tr.g) {
            continue;
        }
        for c in 0..n {
            let r = c * d..(c + 1) * d;
            if tr.alive[c]
                && !(tr.e[c].to_f64().is_finite() && finite(&tr.x[r.clone()]) && finite(&tr.g[r]))
            {
                tr.alive[c] = false;
            }
        }
    }
    for c in 0..n {
        let r = c * d..(c + 1) * d;
        s.accept[c] = 0.0;
        s.divergent[c] = false;
        if ch.frozen(c) {
            s.divergent[c] = true;
            continue;
        }
        for (a, b) in p.iter_mut().zip(&tr.p[r.clone()]) {
            *a = b.to_f64();
        }
        let k = kinetic(metrics, c, &p, &mut v);
        let dh = tr.e[c].to_f64() + k - tr.h0[c];
        if !tr.alive[c] || !dh.is_finite() || dh > cfg.max_energy_error {
            s.divergent[c] = true;
            continue;
        }
        if same_point(&tr.x[r.clone()], &ch.x[r.clone()]) {
            continue;
        }
        let (a, yes) = decide(seed, t, first + c, -dh);
        s.accept[c] = a;
        if yes {
            ch.x[r.clone()].copy_from_slice(&tr.x[r.clone()]);
            ch.g[r.clone()].copy_from_slice(&tr.g[r]);
            ch.e[c] = tr.e[c];
        }
    }
    Ok(())
}

/// K = ½pᵀM⁻¹p (`v` is scratch).
fn kinetic(metrics: &Metrics, c: usize, p: &[f64], v: &mut [f64]) -> f64 {
    metrics.velocity(c, p, v);
    0.5 * p.iter().zip(v.iter()).map(|(a, b)| a * b).sum::<f64>()
}

/// One leapfrog step of the chains `rows` (block indices; their states
/// gathered row by row in `x`, `g`, `p`, with per-row signed ε and, for a
/// diagonal metric, inverse masses `mass`). Diagonal metrics run the
/// target's (fused) leapfrog; a dense one moves x by εM⁻¹p on the host.
#[allow(clippy::too_many_arguments)]
pub(super) fn leapfrog_rows<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    metrics: &Metrics,
    rows: &[usize],
    mass: &[T],
    x: &[T],
    g: &[T],
    p: &[T],
    eps: &[T],
    out: Phase<'_, T>,
) -> R<()> {
    let n = rows.len();
    if !metrics.dense() {
        let prop = Proposal {
            n,
            x,
            grad: g,
            noise: &[],
            step: eps,
            inv_mass: mass,
            beta: &[],
        };
        return target.leapfrog(prop, p, out);
    }
    let d = target.dim();
    let (mut ph, mut v) = (vec![0.0; d], vec![0.0; d]);
    for (r, &c) in rows.iter().enumerate() {
        let h = eps[r].to_f64();
        let row = r * d..(r + 1) * d;
        for ((a, pi), gi) in ph.iter_mut().zip(&p[row.clone()]).zip(&g[row.clone()]) {
            *a = pi.to_f64() - 0.5 * h * gi.to_f64();
        }
        metrics.velocity(c, &ph, &mut v);
        for (i, k) in row.enumerate() {
            out.x[k] = T::from_f64(x[k].to_f64() + h * v[i]);
            out.p[k] = T::from_f64(ph[i]);
        }
    }
    target.eval(out.x, n, out.e, Some(out.g))?;
    for (r, _) in rows.iter().enumerate() {
        let h = eps[r].to_f64();
        for k in r * d..(r + 1) * d {
            out.p[k] = T::from_f64(out.p[k].to_f64() - 0.5 * h * out.g[k].to_f64());
        }
    }
    Ok(())
}

/// MALA preconditioned by a dense metric: y = x − (λ/2)M⁻¹∇E(x) + √λ·Lξ,
/// and the ratio from the stored points, ‖L⁻¹(y − x + (λ/2)M⁻¹∇E(x))‖²
/// against the reverse move's.
fn dense_mala<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    metrics: &Metrics,
    s: Proposal<'_, T>,
    y: &mut [T],
    ey: &mut [T],
    gy: &mut [T],
    log_q: &mut [T],
) -> R<()> {
    let d = target.dim();
    let (mut a, mut b, mut w) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    let row64 = |v: &[T], c: usize, out: &mut [f64]| {
        for (o, x) in out.iter_mut().zip(&v[c * d..(c + 1) * d]) {
            *o = x.to_f64();
        }
    };
    for c in 0..s.n {
        let h = s.step[c].to_f64();
        row64(s.grad, c, &mut a);
        metrics.velocity(c, &a, &mut b);
        row64(s.noise, c, &mut a);
        metrics.noise(c, &a, &mut w);
        for i in 0..d {
            let k = c * d + i;
            y[k] = T::from_f64(s.x[k].to_f64() - 0.5 * h * b[i] + h.sqrt() * w[i]);
        }
    }
    target.eval(y, s.n, ey, Some(gy))?;
    for c in 0..s.n {
        let h = s.step[c].to_f64();
        let mut half_drift = |g: &[T], from: &[T], to: &[T], out: &mut [f64]| {
            row64(g, c, &mut a);
            metrics.velocity(c, &a, &mut b);
            for i in 0..d {
                let k = c * d + i;
                out[i] = to[k].to_f64() - from[k].to_f64() + 0.5 * h * b[i];
            }
        };
        let mut fwd_w = vec![0.0; d];
        half_drift(s.grad, s.x, y, &mut fwd_w);
        let mut bwd_w = vec![0.0; d];
        half_drift(gy, y, s.x, &mut bwd_w);
        let fwd = metrics.inv_norm2(c, &fwd_w, &mut w) / h;
        let bwd = metrics.inv_norm2(c, &bwd_w, &mut w) / h;
        log_q[c] = T::from_f64(0.5 * (fwd - bwd));
    }
    Ok(())
}

/// PT's replica exchange after transition `t`: in each user chain, the
/// pairs (k, k+1) with k ≡ `parity` (mod 2) swap states with probability
/// min(1, exp((β_k − β_{k+1})(E_k − E_{k+1}))), one keyed uniform per pair
/// (keyed by the lower engine chain). A pair with a frozen replica never
/// swaps. Sampling-phase proposals are booked in `b` when `book` is set.
#[allow(clippy::too_many_arguments)]
fn swap_replicas<T: Scalar>(
    o: &PtOptions,
    seed: u64,
    t: u64,
    first: usize,
    parity: usize,
    ch: &mut Chains<T>,
    b: &mut Block,
    book: bool,
) {
    let (k, d) = (o.replicas(), ch.dim);
    for u in 0..ch.n / k {
        for j in (parity..k.saturating_sub(1)).step_by(2) {
            let (lo, hi) = (u * k + j, u * k + j + 1);
            if ch.frozen(lo) || ch.frozen(hi) {
                continue;
            }
            let db = 1.0 / o.ladder[j] - 1.0 / o.ladder[j + 1];
            let log_a = db * (ch.e[lo].to_f64() - ch.e[hi].to_f64());
            let (a, yes) = decide_in(STREAM_SWAP, seed, t, first + lo, log_a);
            if book {
                b.swap_accept[u * (k - 1) + j] += a;
                b.swap_tries[j] += 1;
            }
            if yes {
                for i in 0..d {
                    ch.x.swap(lo * d + i, hi * d + i);
                }
                if !ch.g.is_empty() {
                    for i in 0..d {
                        ch.g.swap(lo * d + i, hi * d + i);
                    }
                }
                ch.e.swap(lo, hi);
            }
        }
    }
}

/// Underdamped Langevin: like ULA, each window up to and including the next
/// kept iteration is one `uld_steps` call, the divergences booked from the
/// freeze steps.
fn uld_loop<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    m: &UldMove,
    run: &RunConfig,
    ch: &mut Chains<T>,
    s: &mut Scratch<T>,
    book: &mut Book,
    pb: &ProgressBar,
) -> R<()> {
    let (n, d, first, thin) = (ch.n, ch.dim, book.first, run.thin.max(1));
    let total = run.warmup + run.steps;
    ch.v = vec![T::zero(); n * d];
    fill_noise(run.seed, VELOCITY_STEP, first, d, &mut ch.v, &mut s.tmp);
    let mut it = 0;
    while it < total {
        stop_requested()?;
        let end = window_end(it, run);
        let w = Window {
            n,
            seed: run.seed,
            t0: it as u64,
            steps: (end - it) as u64,
            offset: (first * d) as u64,
        };
        let st = UldState {
            x: &mut ch.x,
            v: &mut ch.v,
            g: &mut ch.g,
            e: &mut ch.e,
        };
        target.uld_steps(m, w, st, &mut ch.freeze)?;
        account_unadjusted(book, ch, s, run, it, end);
        let last = end - 1;
        if last >= run.warmup && (last - run.warmup).is_multiple_of(thin) {
            record(book, ch, s, (last - run.warmup) / thin)?;
        }
        pb.inc((n * (end - it)) as u64);
        it = end;
    }
    Ok(())
}

fn init_positions(init: &Init, rngs: &mut ChainRngs, first: usize, dim: usize) -> Vec<f64> {
    let n = rngs.len();
    let mut x = vec![0.0; n * dim];
    for c in 0..n {
        let rng = &mut rngs.rngs[c];
        let row = &mut x[c * dim..(c + 1) * dim];
        match init {
            Init::Normal { mean, sd } => {
                for v in row {
                    *v = mean + sd * rng.normal();
                }
            }
            Init::Uniform { a, b } => {
                for v in row {
                    *v = a + (b - a) * rng.uniform();
                }
            }
            Init::Array { values, rows } => {
                let r = (first + c) % rows;
                row.copy_from_slice(&values[r * dim..(r + 1) * dim]);
            }
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E(x) = ½|x|² on the host (the reference moves).
    struct Quad(usize);

    impl Target<f64> for Quad {
        fn dim(&self) -> usize {
            self.0
        }
        fn eval(&self, x: &[f64], n: usize, e: &mut [f64], g: Option<&mut [f64]>) -> R<()> {
            let d = self.0;
            for c in 0..n {
                e[c] = 0.5 * x[c * d..(c + 1) * d].iter().map(|v| v * v).sum::<f64>();
            }
            if let Some(g) = g {
                g.copy_from_slice(x);
            }
            Ok(())
        }
    }

    fn chains(x: Vec<f64>, dim: usize) -> Chains<f64> {
        let n = x.len() / dim;
        let mut ch = Chains {
            n,
            dim,
            x,
            e: vec![0.0; n],
            g: vec![0.0; n * dim],
            v: Vec::new(),
            freeze: vec![None; n],
        };
        Quad(dim)
            .eval(&ch.x, n, &mut ch.e, Some(&mut ch.g))
            .unwrap();
        ch
    }

    /// A MALA proposal that rounds to the current point (x = 1e10, so the
    /// move of about 1e-15 is far below its last place) has log q = 0
    /// exactly (both terms are the same rounded difference) and counts as no
    /// move: acceptance 0, not divergent, the chain where it was. The
    /// other chain, at 0.5 with the same step, moves by ~1e-15 and is a
    /// real (accepted) move.
    #[test]
    fn a_proposal_that_rounds_to_no_move_is_not_a_move() {
        let mut ch = chains(vec![1e10, 0.5], 1);
        let mut s = Scratch::<f64>::new(2, 1);
        refresh(&mut s.step_t, &[1e-30, 1e-30]);
        refresh(&mut s.mass_t, &[1.0, 1.0]);
        for t in 0..20 {
            let before = ch.x.clone();
            mala_step(
                &Quad(1),
                7,
                t,
                0,
                &mut ch,
                &mut s,
                &Metrics::identity(crate::sample::MetricKind::Unit, 2, 1),
            )
            .unwrap();
            assert_eq!(ch.x[0].to_bits(), before[0].to_bits());
            assert_eq!(s.y[0].to_bits(), before[0].to_bits(), "y rounds to x");
            assert_eq!(s.log_q[0], 0.0, "ratio of the move made");
            assert_eq!(s.accept[0], 0.0, "a no-op is no move");
            assert!(!s.divergent[0]);
            if s.y[1] != before[1] {
                assert!(s.accept[1] > 0.99, "a real tiny move is accepted");
            }
        }
        assert_ne!(ch.x[1], 0.5, "chain 1 moved");
    }

    /// The forward proposal density uses y − x + drift from the stored
    /// points: for a move that does not round away, log q matches the
    /// textbook formula with ξ to rounding.
    #[test]
    fn mala_ratio_matches_the_noise_form_when_nothing_rounds() {
        let ch = chains(vec![0.3, -1.2, 2.0, 0.7], 2);
        let noise = [0.4, -1.1, 0.9, 0.2];
        let (step, mass) = ([0.5, 0.25], [1.0; 4]);
        let p = Proposal {
            n: 2,
            x: &ch.x,
            grad: &ch.g,
            noise: &noise,
            step: &step,
            inv_mass: &mass,
            beta: &[],
        };
        let (mut y, mut ey, mut gy, mut lq) =
            (vec![0.0; 4], vec![0.0; 2], vec![0.0; 4], vec![0.0; 2]);
        Quad(2).mala(p, &mut y, &mut ey, &mut gy, &mut lq).unwrap();
        for c in 0..2 {
            let h = step[c];
            let (mut fwd, mut bwd) = (0.0, 0.0);
            for i in c * 2..c * 2 + 2 {
                fwd += noise[i] * noise[i];
                let z = ch.x[i] - y[i] + 0.5 * h * gy[i];
                bwd += z * z / h;
            }
            let want = 0.5 * (fwd - bwd);
            assert!((lq[c] - want).abs() < 1e-12, "{} vs {want}", lq[c]);
        }
    }
}
