//! Chain-parallel unadjusted Langevin on a fused step kernel.
//!
//! Because energies are per-sample, chains never interact: each worker thread
//! owns a fixed block of chains and runs *every* step on it, with no
//! synchronisation between steps, its chains staying in its cache. Noise comes
//! from `noise::fill_normal_f32` at counter positions fixed by (step, chain), so
//! the result is the same for any number of threads.

use std::sync::Arc;

use crate::backend::{Backend, DType, Kernel};
use crate::ir::{Graph, InputKind};
use crate::opt;

use super::fused::langevin_step;
use super::noise::fill_normal_f32;

pub struct Langevin {
    kernel: Arc<dyn Kernel>,
    /// Parameter values in the kernel's `Shared` input order.
    params: Vec<Vec<f32>>,
    dim: usize,
}

impl Langevin {
    /// ULA with step λ: x ← x − (λ/2)∇E + √λ·ξ. `backend` should run kernels
    /// on the calling thread (this type parallelises over chains itself).
    pub fn ula(
        energy: &Graph,
        lam: f64,
        param: impl Fn(&str) -> Option<Vec<f64>>,
        backend: &dyn Backend,
    ) -> Result<Langevin, String> {
        let step = opt::optimize(
            &langevin_step(energy, lam / 2.0, lam.sqrt(), false)?,
            opt::Config::default(),
        );
        let kernel = backend.compile(&step, DType::F32)?;
        let g = kernel.graph();
        let params = g
            .inputs()
            .iter()
            .filter(|d| d.kind == InputKind::Shared)
            .map(|d| {
                param(&d.name)
                    .map(|v| v.iter().map(|&p| p as f32).collect())
                    .ok_or_else(|| format!("no value for parameter `{}`", d.name))
            })
            .collect::<Result<_, String>>()?;
        let dim = g.input(g.find_input("x").unwrap()).shape.iter().product();
        Ok(Langevin {
            kernel,
            params,
            dim,
        })
    }

    /// Runs `steps` steps on `x` (chains × dim, in place) with `threads` workers.
    pub fn run(
        &self,
        x: &mut [f32],
        steps: usize,
        seed: u64,
        threads: usize,
    ) -> Result<(), String> {
        let chains = x.len() / self.dim;
        // Blocks hold an even number of values so noise pairs never straddle two.
        let per_block = chains.div_ceil(threads.max(1)).next_multiple_of(2);
        let stride = (chains * self.dim).next_multiple_of(2) as u64;
        std::thread::scope(|s| {
            let workers: Vec<_> = x
                .chunks_mut(per_block * self.dim)
                .enumerate()
                .map(|(b, block)| {
                    let first = (b * per_block * self.dim) as u64;
                    s.spawn(move || self.run_block(block, steps, seed, first, stride))
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .map_err(|_| "a sampler thread panicked".to_string())?
            })
        })
    }

    fn run_block(
        &self,
        x: &mut [f32],
        steps: usize,
        seed: u64,
        first: u64,
        stride: u64,
    ) -> Result<(), String> {
        let n = x.len() / self.dim;
        flush_subnormals();
        let mut noise = vec![0f32; x.len()];
        let mut other = vec![0f32; x.len()];
        // Ping-pong between the caller's block and one scratch block.
        for step in 0..steps {
            fill_normal_f32(seed, step as u64 * stride + first, &mut noise);
            let (from, to): (&[f32], &mut [f32]) = if step % 2 == 0 {
                (x, &mut other)
            } else {
                (&other, x)
            };
            self.step(from, &noise, to, n)?;
        }
        if !steps.is_multiple_of(2) {
            x.copy_from_slice(&other);
        }
        Ok(())
    }

    fn step(&self, x: &[f32], noise: &[f32], out: &mut [f32], n: usize) -> Result<(), String> {
        let mut inputs: Vec<&[f32]> = Vec::with_capacity(2 + self.params.len());
        let mut params = self.params.iter();
        for decl in self.kernel.graph().inputs() {
            inputs.push(match (decl.kind, decl.name.as_str()) {
                (InputKind::Shared, _) => params.next().unwrap(),
                (_, "x") => x,
                _ => noise,
            });
        }
        self.kernel.run_f32(&inputs, &mut [out], n)
    }
}

/// Sets flush-to-zero and denormals-are-zero on the calling thread (a worker
/// this sampler spawned and owns, so nothing else sees the mode). Subnormal
/// f32 values are below 1.2e-38 in absolute terms, far under the resolution of
/// a chain coordinate, yet every x86 operation producing or reading one takes
/// a microcode assist: mixture weights e^(−90…−104) made W1 ~30% slower.
/// `EBM_SUBNORMALS=1` keeps IEEE gradual underflow.
fn flush_subnormals() {
    #[cfg(target_arch = "x86_64")]
    if std::env::var_os("EBM_SUBNORMALS").is_none_or(|v| v != "1") {
        #[allow(deprecated)]
        // SAFETY: only MXCSR's FTZ (bit 15) and DAZ (bit 6) change; SSE2 is
        // part of the x86_64 baseline.
        unsafe {
            use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
            _mm_setcsr(_mm_getcsr() | 0x8040);
        }
    }
}
