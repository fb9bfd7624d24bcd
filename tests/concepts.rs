//! Concept-conditioned training, E(x | c): improved CD's gradient with a
//! different code on every row against central finite differences;
//! maximum-likelihood recovery of one mean per concept by PCD; bit-identical
//! results across thread counts and across a resume (the replay buffer keeps
//! each sample's code); and the refusals.

use ebm::api::Program;
use ebm::backend::{DType, cpu::Cpu};
use ebm::runtime::CompiledEnergy;
use ebm::sample::SamplerConfig;
use ebm::train::buffer::Fresh;
use ebm::train::loss::LossKind;
use ebm::train::optim::Decay;
use ebm::train::{Concepts, LastStep, Method, TrainConfig, Trainer};
use std::sync::Arc;

#[path = "support/train_fd.rs"]
mod train_fd;
use train_fd::{assert_gradient, dist2, nearest, param_vec, set_param_vec};

/// A conditional MLP energy with a quadratic floor.
const MLP: &str = "
energy e(x: [2] | c: [3]) = sum(mlp(concat(x, c), [8, 1], act = swish)) + 0.1 * sum(x^2)
";

/// One learnable mean per concept: E(x | c) = ½|x − c·μ|².
const MEANS: &str = "
param mu: [3, 2] ~ zeros
energy g(x: [2] | c: [3]) = 0.5 * sum((x - c @ mu)^2)
";

fn energy(src: &str, name: &str, dtype: DType) -> CompiledEnergy {
    let program = Program::from_source(src).unwrap();
    program
        .energy_with(name, Arc::new(Cpu::new()), dtype)
        .unwrap()
}

fn normals(n: usize, seed: u64) -> Vec<f64> {
    ebm::data::rng::normal(seed, n)
}

/// `n` rows of concept `k mod 3` around that concept's mean, and their
/// one-hot codes.
fn concept_data(n: usize, means: [[f64; 2]; 3], sd: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let z = normals(2 * n, seed);
    let mut x = Vec::with_capacity(2 * n);
    let mut c = vec![0.0; 3 * n];
    for i in 0..n {
        let k = i % 3;
        x.push(means[k][0] + sd * z[2 * i]);
        x.push(means[k][1] + sd * z[2 * i + 1]);
        c[3 * i + k] = 1.0;
    }
    (x, c)
}

/// The whole improved-CD loss of a conditional energy as a function of θ,
/// every positive and negative row with its own code: CD on
/// E(x⁺ | c⁺) and E(x_K(θ₀) | c⁻), plus mean E_θ₀(x_K(θ) | c⁻) and the
/// entropy with neighbours fixed at θ₀, where
/// x_K(θ) = x_{K−1} − d·∇ₓE_θ(x_{K−1} | c⁻) + σξ.
#[test]
fn conditional_improved_cd_gradient_matches_finite_differences() {
    let e = energy(MLP, "e", DType::F64);
    let (data, codes) = concept_data(60, [[1.0, 0.0], [-1.0, 0.5], [0.0, -1.0]], 0.5, 3);
    let mut cfg = TrainConfig::new(Method::Icd);
    cfg.batch = 12;
    cfg.l2 = 0.3;
    cfg.kl = 1.0;
    cfg.entropy = 0.7;
    let concepts = Concepts {
        of_row: &codes,
        width: 3,
    };
    let mut trainer = Trainer::conditional(&e, &data, concepts, cfg).unwrap();
    let (b, d, drift, sigma) = (12, 2, 0.05, 0.1);
    let xp = data[..b * d].to_vec();
    let cp = codes[..b * 3].to_vec();
    // Negative codes in another order than the positives'.
    let cn: Vec<f64> = (0..b)
        .flat_map(|i| {
            let mut c = [0.0; 3];
            c[(i * 2 + 1) % 3] = 1.0;
            c
        })
        .collect();
    let prev: Vec<f64> = normals(b * d, 9).iter().map(|v| 1.5 * v).collect();
    let xi = normals(b * d, 10);
    let reference: Vec<f64> = normals(80, 11).iter().map(|v| 1.5 * v).collect();
    let step = |e: &CompiledEnergy| -> Vec<f64> {
        let g = e.grad_x(&prev, Some(&cn), b).unwrap();
        (0..b * d)
            .map(|i| prev[i] - drift * g[i] + sigma * xi[i])
            .collect()
    };
    let theta0 = param_vec(&e);
    let x_k0 = step(&e);
    let x: Vec<f64> = xp.iter().chain(&x_k0).copied().collect();
    let cond: Vec<f64> = cp.iter().chain(&cn).copied().collect();
    let last = LastStep {
        prev: prev.clone(),
        drift,
    };
    let obj = trainer
        .conditional_objective::<f64>(&x, &cond, b, Some(&last), &reference)
        .unwrap();
    let analytic: Vec<f64> = obj.grads.concat();
    let nn = nearest(&x_k0, &reference, d);
    let loss_at = |theta: &[f64]| -> f64 {
        set_param_vec(&e, theta);
        let x_k = step(&e);
        let en = e.energy(&x, Some(&cond), 2 * b).unwrap();
        let cd = ebm::train::loss::value(LossKind::Cd, 0.3, b, &en).loss;
        set_param_vec(&e, &theta0);
        let kl = e.energy(&x_k, Some(&cn), b).unwrap().iter().sum::<f64>() / b as f64;
        let ent = -x_k
            .chunks_exact(d)
            .zip(&nn)
            .map(|(p, &r)| 0.5 * dist2(p, &reference[r * d..(r + 1) * d]).ln())
            .sum::<f64>()
            / b as f64;
        cd + kl + 0.7 * ent
    };
    assert!((loss_at(&theta0) - obj.total).abs() < 1e-10);
    assert_gradient(&theta0, &analytic, loss_at);
}

fn means_config(iters: usize, threads: usize) -> TrainConfig {
    let mut cfg = TrainConfig::new(Method::Pcd);
    cfg.iters = iters;
    cfg.batch = 150;
    cfg.l2 = 0.0;
    cfg.sampler = SamplerConfig::ula(0.05);
    cfg.sampler_steps = 10;
    cfg.buffer.size = 900;
    cfg.buffer.fresh = Fresh::Uniform { lo: -4.0, hi: 4.0 };
    cfg.buffer.reinit = 0.0;
    cfg.optim.lr = 0.02;
    cfg.optim.decay = Decay::Constant;
    cfg.threads = threads;
    cfg.seed = 5;
    cfg
}

const MEANS_TRUE: [[f64; 2]; 3] = [[2.0, 0.0], [-1.0, 1.5], [0.5, -2.0]];

/// PCD on E(x | c) = ½|x − c·μ|² recovers each concept's mean: the
/// negatives of a concept are sampled under its own code (a sampler that
/// mixed codes up would pull every μ_k towards the overall mean), and the
/// persistent chains keep their codes in the buffer.
#[test]
fn conditional_pcd_recovers_one_mean_per_concept() {
    let e = energy(MEANS, "g", DType::F64);
    let (data, codes) = concept_data(3000, MEANS_TRUE, 1.0, 7);
    let concepts = Concepts {
        of_row: &codes,
        width: 3,
    };
    let mut t = Trainer::conditional(&e, &data, concepts, means_config(500, 2)).unwrap();
    while !t.done() {
        let r = t.step().unwrap();
        assert!(r.rollback.is_none(), "{r:?}");
    }
    let mu = e.store().get("mu").unwrap();
    for k in 0..3 {
        for j in 0..2 {
            // Sampling noise of a 1000-row mean (sd 0.03) plus the
            // optimiser's jitter at lr 0.02.
            assert!(
                (mu[2 * k + j] - MEANS_TRUE[k][j]).abs() < 0.15,
                "μ[{k}] = {:?}, want {:?}",
                &mu[2 * k..2 * k + 2],
                MEANS_TRUE[k]
            );
        }
    }
}

/// One thread or two, straight through or stopped and resumed from the
/// saved state: the same bytes.
#[test]
fn conditional_runs_are_bit_identical_across_threads_and_resume() {
    let (data, codes) = concept_data(600, MEANS_TRUE, 1.0, 7);
    let concepts = Concepts {
        of_row: &codes,
        width: 3,
    };
    let run = |threads: usize, stop: Option<usize>| -> (Vec<u64>, ebm::train::TrainState) {
        let e = energy(MLP, "e", DType::F32);
        let mut cfg = means_config(12, threads);
        cfg.method = Method::Icd;
        cfg.buffer.reinit = 0.2;
        let mut t = Trainer::conditional(&e, &data, concepts, cfg.clone()).unwrap();
        if let Some(k) = stop {
            for _ in 0..k {
                t.step().unwrap();
            }
            let saved = (param_vec(&e), t.state.clone());
            let e2 = energy(MLP, "e", DType::F32);
            set_param_vec(&e2, &saved.0);
            let mut t2 = Trainer::conditional(&e2, &data, concepts, cfg)
                .unwrap()
                .with_state(saved.1)
                .unwrap();
            while !t2.done() {
                t2.step().unwrap();
            }
            let p = param_vec(&e2).iter().map(|v| v.to_bits()).collect();
            return (p, t2.state.clone());
        }
        while !t.done() {
            t.step().unwrap();
        }
        (
            param_vec(&e).iter().map(|v| v.to_bits()).collect(),
            t.state.clone(),
        )
    };
    let one = run(1, None);
    let two = run(2, None);
    let resumed = run(2, Some(5));
    assert_eq!(one.0, two.0, "threads change the parameters");
    assert_eq!(one.1, two.1, "threads change the state");
    assert_eq!(one.0, resumed.0, "a resume changes the parameters");
    assert_eq!(one.1, resumed.1, "a resume changes the state");
    // The buffer keeps a code beside every point.
    assert_eq!(one.1.buffer.dim, 2 + 3);
}

#[test]
fn conditional_training_refuses_what_it_cannot_do() {
    let e = energy(MLP, "e", DType::F64);
    let (data, codes) = concept_data(30, MEANS_TRUE, 1.0, 7);
    let cfg = TrainConfig::new(Method::Pcd);
    let err = Trainer::new(&e, &data, cfg.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("conditional") && err.contains("labelled"),
        "{err}"
    );
    let short = Concepts {
        of_row: &codes[..30],
        width: 3,
    };
    let err = Trainer::conditional(&e, &data, short, cfg.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("30 conditioning values for 30 rows"), "{err}");
    let all = Concepts {
        of_row: &codes,
        width: 3,
    };
    let err = Trainer::conditional(&e, &data, all, TrainConfig::new(Method::Dsm))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cd, pcd or icd"), "{err}");
    let plain = energy("energy p(x: [2]) = sum(x^2)", "p", DType::F64);
    let err = Trainer::conditional(&plain, &data, all, cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("`c` has 0 values"), "{err}");
}
