//! Samplers for unnormalised densities p(x) ∝ exp(−E(x)).
//!
//! One engine ([`engine`]) runs every sampler: chains are cut into blocks,
//! one per worker thread, and each block advances through one fused kernel
//! call per step (a Langevin move, a MALA or random-walk proposal, a
//! leapfrog step) plus per-chain accept/reject and warm-up adaptation
//! (step size by dual averaging, windowed diagonal mass). [`run_compiled`]
//! drives a compiled energy in its dtype (what every caller uses);
//! [`run_chains`] drives a closure energy ([`BatchEnergy`]) through the same
//! engine with the moves' reference definitions. Both return [`Draws`],
//! which [`io`] writes as Stan-style CSV (ebm's single file or [`cmdstan`]'s
//! one file per chain) or NPY. [`ais`] estimates log Z by
//! annealed importance sampling, its transitions run on the same engine.
//!
//! Invariants (see `engine` for details):
//! * every random number is a function of (seed, iteration, chain) — noise
//!   and uniforms are counter-based, initial points come from a stream
//!   keyed by (seed, chain) — so results do not depend on threads or block
//!   splits; with per-chain adaptation (the default) they do not depend on
//!   the number of chains either;
//! * a chain that meets a non-finite energy, gradient or position is
//!   flagged `divergent` and never contaminates the other chains.

// Index loops over chains and coordinates read best as they are.
#![allow(clippy::needless_range_loop)]

pub mod adapt;
pub mod ais;
pub mod cmdstan;
pub mod compiled;
pub mod config;
pub mod engine;
pub mod io;
pub mod metric;
mod nuts;
pub mod rng;
pub mod run;
pub mod spill;
pub mod targets;

pub use adapt::AdaptScope;
pub use compiled::{CompiledTarget, DensityOf};
pub use config::{Method, MetricKind, PtMove, PtOptions, SamplerConfig, UlaOptions, UldOptions};
pub use engine::Target;
pub use rng::{ChainRng, ChainRngs};
pub use run::{Draws, Init, RunConfig, RunSummary, Sampler, run_chains, run_compiled};

/// A batched energy E(x) over `dim` coordinates.
///
/// `x` holds `batch` points, batch-major (`batch × dim`). Implementations
/// write `batch` energies into `e` and, for `energy_grad`, `batch × dim`
/// gradient entries ∇ₓE into `g`. Each point must be evaluated independently
/// of the others (a NaN in one row must not change another row).
pub trait BatchEnergy: Sync {
    fn dim(&self) -> usize;
    fn energy(&self, x: &[f64], batch: usize, e: &mut [f64]);
    fn energy_grad(&self, x: &[f64], batch: usize, e: &mut [f64], g: &mut [f64]);
    /// The shape of one point when it is an image (e.g. `[8, 8]`), for plots
    /// and NPY output.
    fn image_shape(&self) -> Option<Vec<usize>> {
        None
    }
}

impl<T: BatchEnergy + ?Sized> BatchEnergy for &T {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn energy(&self, x: &[f64], batch: usize, e: &mut [f64]) {
        (**self).energy(x, batch, e)
    }
    fn energy_grad(&self, x: &[f64], batch: usize, e: &mut [f64], g: &mut [f64]) {
        (**self).energy_grad(x, batch, e, g)
    }
    fn image_shape(&self) -> Option<Vec<usize>> {
        (**self).image_shape()
    }
}

/// A per-point energy given as closures (handy for tests and the REPL):
/// `f(x) -> E` and `fg(x, g) -> E` writing ∇E into `g`.
pub struct FnEnergy<F, G> {
    pub dim: usize,
    pub f: F,
    pub fg: G,
    pub image_shape: Option<Vec<usize>>,
}

impl<F, G> FnEnergy<F, G>
where
    F: Fn(&[f64]) -> f64 + Sync,
    G: Fn(&[f64], &mut [f64]) -> f64 + Sync,
{
    pub fn new(dim: usize, f: F, fg: G) -> Self {
        FnEnergy {
            dim,
            f,
            fg,
            image_shape: None,
        }
    }
}

impl<F, G> BatchEnergy for FnEnergy<F, G>
where
    F: Fn(&[f64]) -> f64 + Sync,
    G: Fn(&[f64], &mut [f64]) -> f64 + Sync,
{
    fn dim(&self) -> usize {
        self.dim
    }
    fn energy(&self, x: &[f64], batch: usize, e: &mut [f64]) {
        let d = self.dim;
        for b in 0..batch {
            e[b] = (self.f)(&x[b * d..(b + 1) * d]);
        }
    }
    fn energy_grad(&self, x: &[f64], batch: usize, e: &mut [f64], g: &mut [f64]) {
        let d = self.dim;
        for b in 0..batch {
            e[b] = (self.fg)(&x[b * d..(b + 1) * d], &mut g[b * d..(b + 1) * d]);
        }
    }
    fn image_shape(&self) -> Option<Vec<usize>> {
        self.image_shape.clone()
    }
}

#[cfg(test)]
mod tests;
