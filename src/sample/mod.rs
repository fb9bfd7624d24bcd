//! Samplers for unnormalised densities p(x) ∝ exp(−E(x)).
//!
//! The API follows BlackJAX: a [`Kernel`] has `init(x) -> State` and
//! `step(rngs, &State) -> (State, Info)`, over a batch of chains that all
//! advance together through one batched energy call. [`run_chains`] drives a
//! kernel through warm-up (step-size and mass-matrix adaptation), sampling and
//! thinning, and returns [`Draws`], which [`io`] writes as Stan-style CSV or
//! NPY.
//!
//! Invariants (see each module for details):
//! * chain `c` draws every random number from its own stream seeded by
//!   `(seed, c)` ([`rng::ChainRngs`]), so results do not depend on threads or
//!   batch splits; with per-chain adaptation (the default) they do not depend
//!   on the number of chains either;
//! * a chain that meets a non-finite energy or gradient is flagged
//!   `divergent` and never contaminates the other chains (see [`kernel`]).

// Index loops over chains and coordinates read best as they are.
#![allow(clippy::needless_range_loop)]

pub mod adapt;
pub mod io;
pub mod kernel;
pub mod rng;
pub mod run;
pub mod targets;

pub use adapt::AdaptScope;
pub use kernel::{Info, Kernel, Method, Params, SamplerConfig, State, UlaOptions};
pub use rng::{ChainRng, ChainRngs};
pub use run::{Draws, Init, RunConfig, RunSummary, run_chains};

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
