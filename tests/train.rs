//! The training runner: improved CD's gradient against central finite
//! differences of the whole loss through the last step, maximum-likelihood
//! recovery of a Gaussian's parameters by PCD, resume from a saved state
//! bit for bit, and the divergence guard under a huge learning rate.

use ebm::api::Program;
use ebm::backend::{DType, cpu::Cpu};
use ebm::runtime::CompiledEnergy;
use ebm::sample::SamplerConfig;
use ebm::train::buffer::Fresh;
use ebm::train::loss::LossKind;
use ebm::train::optim::Decay;
use ebm::train::{LastStep, Method, TrainConfig, Trainer};
use std::sync::Arc;

#[path = "support/train_fd.rs"]
mod train_fd;
use train_fd::{assert_gradient, dist2, nearest, param_vec, set_param_vec};

/// A small MLP energy with a quadratic floor (f64).
const MLP: &str = "
energy e(x: [2]) = sum(mlp(x, [8, 1], act = swish)) + 0.1 * sum(x^2)
";

/// A Gaussian with learnable mean and log-scale per coordinate.
const GAUSS: &str = "
param mu: [2] ~ zeros
param ls: [2] ~ zeros
energy g(x: [2]) = 0.5 * sum(((x - mu) / exp(ls))^2) + sum(ls)
";

fn energy(src: &str, name: &str, dtype: DType) -> CompiledEnergy {
    let program = Program::from_source(src).unwrap();
    program
        .energy_with(name, Arc::new(Cpu::new()), dtype)
        .unwrap()
}

/// n points of N(mean, sd²) per coordinate, from the portable generator.
fn gaussian_data(n: usize, mean: [f64; 2], sd: [f64; 2], seed: u64) -> Vec<f64> {
    let z = ebm::data::rng::normal(seed, 2 * n);
    z.chunks_exact(2)
        .flat_map(|p| [mean[0] + sd[0] * p[0], mean[1] + sd[1] * p[1]])
        .collect()
}

/// The whole improved-CD loss through the last step, as a function of θ:
/// CD on fixed x⁺ and fixed negatives x_K(θ₀), plus the KL term
/// mean E_θ₀(x_K(θ)) and the entropy −mean log‖x_K(θ) − n_b‖ with the
/// nearest neighbours n_b chosen at θ₀, where
/// x_K(θ) = x_{K−1} − d·∇ₓE_θ(x_{K−1}) + σξ.
#[test]
fn improved_cd_gradient_matches_finite_differences() {
    let e = energy(MLP, "e", DType::F64);
    let data = gaussian_data(64, [0.5, -0.5], [1.0, 1.0], 3);
    let mut cfg = TrainConfig::new(Method::Icd);
    cfg.batch = 16;
    cfg.l2 = 0.3;
    cfg.kl = 1.0;
    cfg.entropy = 0.7;
    let trainer = Trainer::new(&e, &data, cfg).unwrap();
    let (b, d, drift, sigma) = (16, 2, 0.05, 0.1);
    let xp = data[..b * d].to_vec();
    let prev = gaussian_data(b, [0.0, 0.0], [1.5, 1.5], 9);
    let xi = gaussian_data(b, [0.0, 0.0], [1.0, 1.0], 10);
    let reference = gaussian_data(40, [0.0, 0.0], [1.5, 1.5], 11);
    let step = |e: &CompiledEnergy| -> Vec<f64> {
        let g = e.grad_x(&prev, None, b).unwrap();
        (0..b * d)
            .map(|i| prev[i] - drift * g[i] + sigma * xi[i])
            .collect()
    };
    let theta0 = param_vec(&e);
    let x_k0 = step(&e);
    let mut x = xp.clone();
    x.extend_from_slice(&x_k0);
    let last = LastStep {
        prev: prev.clone(),
        drift,
    };
    let obj = trainer
        .objective::<f64>(&x, b, Some(&last), &reference)
        .unwrap();
    let analytic: Vec<f64> = obj.grads.concat();

    // Nearest neighbours at θ₀, held fixed.
    let nn = nearest(&x_k0, &reference, d);
    let loss_at = |theta: &[f64]| -> f64 {
        set_param_vec(&e, theta);
        let x_k = step(&e);
        let mut both = xp.clone();
        both.extend_from_slice(&x_k0);
        let en = e.energy(&both, None, 2 * b).unwrap();
        let cd = ebm::train::loss::value(LossKind::Cd, 0.3, b, &en).loss;
        set_param_vec(&e, &theta0);
        let kl = e.energy(&x_k, None, b).unwrap().iter().sum::<f64>() / b as f64;
        let ent = -x_k
            .chunks_exact(d)
            .zip(&nn)
            .map(|(p, &r)| 0.5 * dist2(p, &reference[r * d..(r + 1) * d]).ln())
            .sum::<f64>()
            / b as f64;
        cd + 1.0 * kl + 0.7 * ent
    };
    assert!((loss_at(&theta0) - obj.total).abs() < 1e-10);
    assert_gradient(&theta0, &analytic, loss_at);
}

/// PCD (persistent chains, no restarts) on a Gaussian energy recovers the
/// data's mean and scale (the maximum-likelihood fixed point).
#[test]
fn pcd_recovers_a_gaussian() {
    let e = energy(GAUSS, "g", DType::F64);
    let data = gaussian_data(4000, [1.0, -2.0], [0.5, 2.0], 5);
    let mut cfg = TrainConfig::new(Method::Pcd);
    cfg.iters = 600;
    cfg.batch = 200;
    cfg.l2 = 0.0;
    cfg.sampler = SamplerConfig::ula(0.05);
    cfg.sampler_steps = 10;
    cfg.buffer.size = 1000;
    cfg.buffer.fresh = Fresh::around(&data);
    // Pure persistent chains: fresh restarts that have not mixed in K steps
    // would widen the negatives and bias the fitted scale down.
    cfg.buffer.reinit = 0.0;
    cfg.optim.lr = 0.02;
    cfg.optim.decay = Decay::Constant;
    cfg.threads = 2;
    let mut t = Trainer::new(&e, &data, cfg).unwrap();
    while !t.done() {
        let r = t.step().unwrap();
        assert!(r.rollback.is_none(), "{r:?}");
    }
    let mu = e.store().get("mu").unwrap();
    let s: Vec<f64> = e
        .store()
        .get("ls")
        .unwrap()
        .iter()
        .map(|v| v.exp())
        .collect();
    assert!(
        (mu[0] - 1.0).abs() < 0.1 && (mu[1] + 2.0).abs() < 0.3,
        "{mu:?}"
    );
    assert!(
        (s[0] - 0.5).abs() < 0.1 && (s[1] - 2.0).abs() < 0.3,
        "{s:?}"
    );
}

fn small_run(method: Method, iters: usize) -> TrainConfig {
    let mut cfg = TrainConfig::new(method);
    cfg.iters = iters;
    cfg.batch = 32;
    cfg.sampler_steps = 5;
    cfg.buffer.size = 200;
    cfg.threads = 2;
    cfg.seed = 17;
    cfg
}

/// Stopping after 7 iterations and continuing from the saved state (a fresh
/// trainer, parameters and state restored) gives the same bytes as 15
/// iterations straight through, for every method and both dtypes.
#[test]
fn resumed_runs_are_bit_identical() {
    let data = gaussian_data(300, [0.5, -0.5], [1.0, 1.0], 3);
    for dtype in [DType::F32, DType::F64] {
        for method in [Method::Cd, Method::Pcd, Method::Icd] {
            let straight = energy(MLP, "e", dtype);
            let mut t = Trainer::new(&straight, &data, small_run(method, 15)).unwrap();
            while !t.done() {
                t.step().unwrap();
            }
            let end_state = t.state.clone();

            let first = energy(MLP, "e", dtype);
            let mut t1 = Trainer::new(&first, &data, small_run(method, 15)).unwrap();
            for _ in 0..7 {
                t1.step().unwrap();
            }
            let saved = (param_vec(&first), t1.state.clone());
            let second = energy(MLP, "e", dtype);
            set_param_vec(&second, &saved.0);
            let mut t2 = Trainer::new(&second, &data, small_run(method, 15))
                .unwrap()
                .with_state(saved.1)
                .unwrap();
            while !t2.done() {
                t2.step().unwrap();
            }
            let a: Vec<u64> = param_vec(&straight).iter().map(|v| v.to_bits()).collect();
            let b: Vec<u64> = param_vec(&second).iter().map(|v| v.to_bits()).collect();
            assert_eq!(a, b, "{method:?} {dtype:?}: parameters differ");
            assert_eq!(end_state, t2.state, "{method:?} {dtype:?}: state differs");
        }
    }
}

/// A learning rate of 1e6 blows the energy up; every blow-up is rolled
/// back, the learning rate falls, and the run ends with finite parameters.
#[test]
fn huge_learning_rate_rolls_back_and_ends_finite() {
    let data = gaussian_data(300, [0.5, -0.5], [1.0, 1.0], 3);
    let e = energy(MLP, "e", DType::F32);
    let mut cfg = small_run(Method::Pcd, 60);
    cfg.optim.lr = 1e6;
    let mut t = Trainer::new(&e, &data, cfg).unwrap();
    let mut rollbacks = Vec::new();
    while !t.done() {
        let r = t.step().unwrap();
        if let Some(c) = r.rollback {
            rollbacks.push((r.it, c));
        }
    }
    assert!(!rollbacks.is_empty());
    assert_eq!(rollbacks.len() as u64, t.state.rollbacks);
    assert!(param_vec(&e).iter().all(|v| v.is_finite()));
    assert!(t.state.lr_scale < 1.0);
}

/// `spectral_norm` projects every weight matrix after each update: with a
/// bound of 0.5 every rank-2 parameter's largest singular value ends at or
/// below it, where the same run without the bound ends above it.
#[test]
fn spectral_norm_bounds_every_weight_matrix() {
    let data = gaussian_data(300, [0.5, -0.5], [1.0, 1.0], 3);
    let largest = |bound: Option<f64>| -> f64 {
        let e = energy(MLP, "e", DType::F64);
        let mut cfg = small_run(Method::Pcd, 5);
        cfg.spectral_norm = bound;
        let mut t = Trainer::new(&e, &data, cfg).unwrap();
        while !t.done() {
            assert!(t.step().unwrap().rollback.is_none());
        }
        let store = e.store();
        (e.param_names().iter())
            .filter_map(|n| match store.shape(n).as_deref() {
                Some(&[rows, cols]) => {
                    let mut w = store.get(n).unwrap();
                    Some(ebm::train::optim::spectral_project(
                        &mut w,
                        rows,
                        cols,
                        f64::INFINITY,
                    ))
                }
                _ => None,
            })
            .fold(0.0, f64::max)
    };
    let free = largest(None);
    let bounded = largest(Some(0.5));
    assert!(free > 0.5, "unbounded run: σ = {free}");
    assert!(bounded <= 0.5 * (1.0 + 1e-9), "bounded run: σ = {bounded}");
}
