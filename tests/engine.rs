//! The sampling engine on compiled energies: fused step kernels against the
//! engine's reference moves, conditional energies whose `c` is as wide as
//! `x` (once fed the noise by a name convention), determinism across thread
//! counts, and the shared parameter store.

use std::sync::Arc;

use ebm::api::Program;
use ebm::backend::cpu::Cpu;
use ebm::backend::{DType, Interp};
use ebm::sample::{
    AdaptScope, DensityOf, Draws, Init, RunConfig, SamplerConfig, run_chains, run_compiled,
};

fn samplers() -> Vec<SamplerConfig> {
    vec![
        SamplerConfig::ula(0.05),
        SamplerConfig::mala(0.2),
        SamplerConfig::rwmh(0.5),
        SamplerConfig::hmc(0.2, 5),
    ]
}

const BANANA: &str = "
energy banana(x: [2]) = 0.5 * x[0]^2 + 0.5 * (x[1] - x[0]^2)^2 / 0.5^2
";

/// The fused kernels compute the same moves as the engine's reference
/// definitions (written on the host around separate E/∇E calls): in f64, a
/// short run agrees to rounding, accept decisions included.
#[test]
fn fused_moves_match_the_reference_moves() {
    let program = Program::from_source(BANANA).unwrap();
    let energy = program.energy("banana").unwrap();
    let reference = DensityOf::new(&energy, None).unwrap();
    for cfg in samplers() {
        let mut run = RunConfig::new(64, 20, 30, 5);
        run.threads = 2;
        let fused = run_compiled(&energy, None, &cfg, &run).unwrap();
        let host = run_chains(&reference, &cfg, &run).unwrap();
        let name = cfg.method.name();
        assert_eq!(fused.accept.len(), host.accept.len());
        let flips = fused
            .accept
            .iter()
            .zip(&host.accept)
            .filter(|(a, b)| (*a - *b).abs() > 1e-6)
            .count();
        assert_eq!(flips, 0, "{name}: acceptance differs");
        for (a, b) in fused.x.iter().zip(&host.x) {
            assert!(
                (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                "{name}: fused {a} vs reference {b}"
            );
        }
        for (a, b) in fused.energy.iter().zip(&host.energy) {
            assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{name}: energy");
        }
    }
}

/// A conditional energy with dim(c) = dim(x): every input is bound by its
/// role, so `c` is the conditioning vector for every sampler and dtype, and
/// the chains sample N(c, I).
#[test]
fn conditional_energy_as_wide_as_x_samples_its_condition() {
    let program =
        Program::from_source("energy shifted(x: [3] | c: [3]) = 0.5 * sqnorm(x - c)").unwrap();
    let cond = [2.0, -1.0, 0.5];
    for dtype in [DType::F64, DType::F32] {
        let energy = program
            .energy_with("shifted", Arc::new(Cpu::new()), dtype)
            .unwrap();
        for cfg in samplers() {
            let mut run = RunConfig::new(64, 200, 400, 3);
            run.threads = 2;
            let d = run_compiled(&energy, Some(&cond), &cfg, &run).unwrap();
            let name = format!("{} {}", cfg.method.name(), dtype.name());
            for (i, want) in cond.iter().enumerate() {
                let x = d.coord(i);
                let m = x.iter().sum::<f64>() / x.len() as f64;
                let se = ebm::stats::mcse_mean(&x, d.chains);
                // ULA's bias at λ = 0.05 is in the variance, not the mean.
                assert!(
                    (m - want).abs() < 5.0 * se,
                    "{name} x.{i}: mean {m} vs {want} ± {se}"
                );
            }
        }
    }
}

fn draws(energy: &ebm::runtime::CompiledEnergy, cfg: &SamplerConfig, threads: usize) -> Draws {
    let mut run = RunConfig::new(37, 30, 20, 11);
    run.threads = threads;
    run.init = Init::Uniform { a: -2.0, b: 2.0 };
    run_compiled(energy, None, cfg, &run).unwrap()
}

/// Same seed and backend, any thread count → the same bits; a chain's path
/// does not depend on how many chains run (per-chain adaptation).
#[test]
fn same_bits_for_any_thread_count_and_chain_count() {
    let program = Program::from_source(BANANA).unwrap();
    for dtype in [DType::F32, DType::F64] {
        let energy = program
            .energy_with("banana", Arc::new(Cpu::new()), dtype)
            .unwrap();
        for cfg in samplers() {
            let one = draws(&energy, &cfg, 1);
            for t in [2, 3, 8] {
                let other = draws(&energy, &cfg, t);
                assert_eq!(one.x, other.x, "{} with {t} threads", cfg.method.name());
                assert_eq!(one.energy, other.energy);
                assert_eq!(one.accept, other.accept);
            }
            let mut run = RunConfig::new(5, 30, 20, 11);
            run.init = Init::Uniform { a: -2.0, b: 2.0 };
            let few = run_compiled(&energy, None, &cfg, &run).unwrap();
            for k in 0..few.draws {
                assert_eq!(few.point(4, k), one.point(4, k), "{}", cfg.method.name());
            }
        }
    }
}

/// Shared adaptation pools all chains into one block: one step size.
#[test]
fn shared_adaptation_runs_as_one_block() {
    let program = Program::from_source(BANANA).unwrap();
    let energy = program.energy("banana").unwrap();
    let mut cfg = SamplerConfig::mala(0.1);
    cfg.adapt_scope = AdaptScope::Shared;
    let d = draws(&energy, &cfg, 4);
    let s = d.summary.unwrap();
    assert_eq!(s.step_min, s.step_max);
}

/// The interpreter is the oracle for the engine's compiled path too.
#[test]
fn interpreter_and_jit_give_the_same_chains() {
    let program = Program::from_source(BANANA).unwrap();
    let jit = program.energy("banana").unwrap();
    let interp = program
        .energy_with("banana", Arc::new(Interp), DType::F64)
        .unwrap();
    for cfg in samplers() {
        let a = draws(&jit, &cfg, 2);
        let b = draws(&interp, &cfg, 2);
        for (x, y) in a.x.iter().zip(&b.x) {
            assert!(
                (x - y).abs() <= 1e-9 * (1.0 + y.abs()),
                "{}: {x} vs {y}",
                cfg.method.name()
            );
        }
    }
}

const SHARED: &str = "
param mu: [2] ~ zeros
energy near(x: [2]) = 0.5 * sqnorm(x - mu)
energy far(x: [2]) = 0.5 * sqnorm(x + mu)
";

/// Two energies of one program read one parameter store: an update through
/// the store is seen by both, and reaches their compiled kernels without
/// compiling anything again.
#[test]
fn energies_share_one_parameter_store() {
    let program = Program::from_source(SHARED).unwrap();
    let near = program.energy("near").unwrap();
    let far = program.energy("far").unwrap();
    assert!(Arc::ptr_eq(near.store(), far.store()));
    let x = [1.0, 1.0];
    assert_eq!(near.energy(&x, None, 1).unwrap(), vec![1.0]);
    assert_eq!(far.energy(&x, None, 1).unwrap(), vec![1.0]);
    let compiled = (near.compiled_kernels(), far.compiled_kernels());
    let version = program.params().version();
    program.params().set("mu", &[1.0, 1.0]).unwrap();
    assert!(program.params().version() > version);
    assert_eq!(near.energy(&x, None, 1).unwrap(), vec![0.0]);
    assert_eq!(far.energy(&x, None, 1).unwrap(), vec![4.0]);
    assert_eq!(
        (near.compiled_kernels(), far.compiled_kernels()),
        compiled,
        "an update recompiled a kernel"
    );
    // Through one energy, seen by the other; f32 views refresh too.
    near.set_param("mu", &[0.0, 2.0]).unwrap();
    assert_eq!(far.energy(&x, None, 1).unwrap(), vec![5.0]);
    let far32 = program
        .energy_with("far", Arc::new(Cpu::new()), DType::F32)
        .unwrap();
    assert_eq!(far32.energy(&[1.0f32, 1.0], None, 1).unwrap(), vec![5.0]);
    near.set_param("mu", &[0.0, 0.0]).unwrap();
    assert_eq!(far32.energy(&[1.0f32, 1.0], None, 1).unwrap(), vec![1.0]);
    // The sampler reads the store too: chains move to the new mode.
    program.params().set("mu", &[3.0, -3.0]).unwrap();
    let mut run = RunConfig::new(16, 200, 200, 1);
    run.threads = 2;
    let d = run_compiled(&near, None, &SamplerConfig::mala(0.5), &run).unwrap();
    let m0 = d.coord(0).iter().sum::<f64>() / d.coord(0).len() as f64;
    assert!((m0 - 3.0).abs() < 0.3, "{m0}");
    // Wrong sizes and unknown names are errors, not panics.
    assert!(program.params().set("mu", &[1.0]).is_err());
    assert!(program.params().set("nu", &[1.0, 1.0]).is_err());
}

/// A per-sample seed pulls back the output: ∇_θ Σ_b w_b E(x_b).
#[test]
fn weighted_parameter_gradients() {
    let program = Program::from_source(SHARED).unwrap();
    let near = program.energy("near").unwrap();
    program.params().set("mu", &[1.0, -1.0]).unwrap();
    let x = [2.0, 0.0, 0.0, 0.0];
    let w = [0.5, -2.0];
    let (values, grads) = near.weighted_grad_params(&x, &w, None, 2).unwrap();
    assert_eq!(values, vec![1.0, 1.0]);
    // ∂E/∂μ = −(x − μ): rows (−1, −1) and (1, −1); weighted sum.
    assert_eq!(grads, vec![vec![-0.5 - 2.0, -0.5 + 2.0]]);
}
