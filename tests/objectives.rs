//! Training objectives beyond contrastive divergence: score matching
//! (exact, sliced, denoising) and NCE. Each loss against an independent
//! computation from the energy's compiled ∇ₓE (the Hessian's diagonal by
//! central differences of ∇ₓE), each θ-gradient against central finite
//! differences of the loss (f64), sliced SM's gradient unbiased for exact
//! SM's (its mean over independent projections within 3 standard errors),
//! and every method recovering a Gaussian's parameters.

use ebm::api::Program;
use ebm::backend::{DType, cpu::Cpu};
use ebm::runtime::CompiledEnergy;
use ebm::train::keyed::Keyed;
use ebm::train::nce::{LOG_Z, Noise};
use ebm::train::optim::Decay;
use ebm::train::score::{self, Projection};
use ebm::train::{Method, TrainConfig, Trainer};
use std::sync::Arc;

/// A small MLP energy with a quadratic floor: its Hessian varies with x,
/// so every second-order term matters.
const MLP: &str = "
energy e(x: [3]) = sum(mlp(x, [6, 1], act = tanh)) + 0.2 * sum(x^2) + 0.1 * x[0] * x[1]
";

/// A Gaussian with learnable mean and log-scale per coordinate.
const GAUSS: &str = "
param mu: [2] ~ zeros
param ls: [2] ~ zeros
energy g(x: [2]) = 0.5 * sum(((x - mu) / exp(ls))^2) + sum(ls)
";

fn energy(src: &str, name: &str) -> CompiledEnergy {
    let program = Program::from_source(src).unwrap();
    program
        .energy_with(name, Arc::new(Cpu::new()), DType::F64)
        .unwrap()
}

fn normal_rows(n: usize, d: usize, mean: &[f64], sd: &[f64], seed: u64) -> Vec<f64> {
    let z = ebm::data::rng::normal(seed, d * n);
    z.chunks_exact(d)
        .flat_map(|p| (0..d).map(|j| mean[j] + sd[j] * p[j]).collect::<Vec<_>>())
        .collect()
}

fn params_of(e: &CompiledEnergy) -> Vec<String> {
    let mut names = e.param_names();
    if e.store().get(LOG_Z).is_some() {
        names.push(LOG_Z.into());
    }
    names
}

fn param_vec(e: &CompiledEnergy) -> Vec<f64> {
    params_of(e)
        .iter()
        .flat_map(|n| e.store().get(n).unwrap())
        .collect()
}

fn set_param_vec(e: &CompiledEnergy, v: &[f64]) {
    let mut at = 0;
    for n in params_of(e) {
        let len = e.store().get(&n).unwrap().len();
        e.store().set(&n, &v[at..at + len]).unwrap();
        at += len;
    }
}

fn config(method: Method) -> TrainConfig {
    let mut cfg = TrainConfig::new(method);
    cfg.batch = 24;
    cfg.l2 = 0.0;
    cfg.seed = 5;
    cfg
}

/// The method's loss on `x` at iteration `it` and its θ-gradient, and the
/// worst relative error of that gradient against central differences.
fn gradient_error(e: &CompiledEnergy, t: &Trainer, x: &[f64], it: usize) -> f64 {
    let obj = t.method_objective::<f64>(x, it).unwrap();
    let analytic = obj.grads.concat();
    let theta0 = param_vec(e);
    assert_eq!(analytic.len(), theta0.len());
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    for i in 0..theta0.len() {
        let mut up = theta0.clone();
        up[i] += h;
        set_param_vec(e, &up);
        let lu = t.method_objective::<f64>(x, it).unwrap().total;
        let mut dn = theta0.clone();
        dn[i] -= h;
        set_param_vec(e, &dn);
        let ld = t.method_objective::<f64>(x, it).unwrap().total;
        set_param_vec(e, &theta0);
        let fd = (lu - ld) / (2.0 * h);
        let err = (analytic[i] - fd).abs() / (1.0 + fd.abs());
        worst = worst.max(err);
    }
    worst
}

/// ½‖∇ₓE‖² − tr ∇ₓ²E per row, the trace from central differences of the
/// compiled ∇ₓE (an oracle independent of the loss graph).
fn exact_sm_oracle(e: &CompiledEnergy, x: &[f64], d: usize) -> Vec<f64> {
    let n = x.len() / d;
    let g = e.grad_x(x, None, n).unwrap();
    let h = 1e-5;
    (0..n)
        .map(|r| {
            let row = &x[r * d..(r + 1) * d];
            let half: f64 = 0.5 * g[r * d..(r + 1) * d].iter().map(|v| v * v).sum::<f64>();
            let trace: f64 = (0..d)
                .map(|j| {
                    let mut up = row.to_vec();
                    up[j] += h;
                    let mut dn = row.to_vec();
                    dn[j] -= h;
                    let gu = e.grad_x(&up, None, 1).unwrap();
                    let gd = e.grad_x(&dn, None, 1).unwrap();
                    (gu[j] - gd[j]) / (2.0 * h)
                })
                .sum();
            half - trace
        })
        .collect()
}

#[test]
fn exact_sm_loss_matches_the_finite_difference_hessian() {
    let e = energy(MLP, "e");
    let x = normal_rows(24, 3, &[0.0; 3], &[1.5; 3], 1);
    let t = Trainer::new(&e, &x, config(Method::Sm)).unwrap();
    let obj = t.method_objective::<f64>(&x, 0).unwrap();
    let oracle = exact_sm_oracle(&e, &x, 3);
    let want = oracle.iter().sum::<f64>() / oracle.len() as f64;
    assert!((obj.total - want).abs() < 1e-6, "{} vs {want}", obj.total);
}

#[test]
fn exact_sm_gradient_matches_finite_differences() {
    let e = energy(MLP, "e");
    let x = normal_rows(24, 3, &[0.0; 3], &[1.5; 3], 2);
    let t = Trainer::new(&e, &x, config(Method::Sm)).unwrap();
    let err = gradient_error(&e, &t, &x, 0);
    assert!(err < 1e-6, "worst relative error {err:e}");
}

#[test]
fn sliced_and_denoising_gradients_match_finite_differences() {
    for (method, projection) in [
        (Method::Ssm, Projection::Gaussian),
        (Method::Ssm, Projection::Rademacher),
        (Method::Dsm, Projection::Rademacher),
    ] {
        let e = energy(MLP, "e");
        let x = normal_rows(24, 3, &[0.0; 3], &[1.5; 3], 3);
        let mut cfg = config(method);
        cfg.score.projections = 3;
        cfg.score.projection = projection;
        cfg.score.sigmas = vec![0.05, 0.3, 1.0];
        let t = Trainer::new(&e, &x, cfg).unwrap();
        let err = gradient_error(&e, &t, &x, 4);
        assert!(
            err < 1e-6,
            "{method:?}/{projection:?}: worst relative error {err:e}"
        );
    }
}

/// DSM's loss against ½‖σ·∇ₓE(x + σε) − ε‖² from the compiled gradient
/// at the same keyed noise.
#[test]
fn denoising_loss_matches_its_definition() {
    let e = energy(MLP, "e");
    let x = normal_rows(24, 3, &[0.0; 3], &[1.5; 3], 4);
    let mut cfg = config(Method::Dsm);
    cfg.score.sigmas = vec![0.1, 0.5];
    let t = Trainer::new(&e, &x, cfg.clone()).unwrap();
    let it = 7;
    let obj = t.method_objective::<f64>(&x, it).unwrap();
    // The stream the trainer keys iteration `it`'s noise by (tag 5).
    let key = Keyed::new(cfg.seed, 5, it as u64);
    let (noised, c) = score::denoising_inputs(&x, 3, &cfg.score.sigmas, &key);
    let g = e.grad_x(&noised, None, 24).unwrap();
    let mut want = 0.0;
    for r in 0..24 {
        let sigma = c[r * 4 + 3];
        assert!(sigma == 0.1 || sigma == 0.5);
        want += (0..3)
            .map(|j| (sigma * g[r * 3 + j] - c[r * 4 + j]).powi(2))
            .sum::<f64>()
            * 0.5
            / 24.0;
    }
    assert!((obj.total - want).abs() < 1e-10, "{} vs {want}", obj.total);
}

#[test]
fn nce_gradient_matches_finite_differences_including_log_z() {
    for noise in [
        Noise::Fitted { scale: 1.2 },
        Noise::Normal { sd: 2.0 },
        Noise::Uniform { lo: -5.0, hi: 5.0 },
    ] {
        let e = energy(MLP, "e");
        let x = normal_rows(200, 3, &[0.5, -0.5, 0.0], &[1.0, 0.7, 1.3], 5);
        let mut cfg = config(Method::Nce);
        cfg.nce.noise = noise;
        cfg.nce.ratio = 2;
        let t = Trainer::new(&e, &x, cfg).unwrap();
        e.store().set(LOG_Z, &[0.7]).unwrap();
        let err = gradient_error(&e, &t, &x[..24 * 3], 3);
        assert!(err < 1e-6, "{noise:?}: worst relative error {err:e}");
    }
}

/// The mean of sliced SM's loss and gradient over independent projections
/// is exact SM's: each of the loss and three random directions of the
/// gradient within 3 standard errors over 400 draws.
#[test]
fn sliced_sm_is_unbiased_for_exact_sm() {
    let e = energy(MLP, "e");
    let x = normal_rows(24, 3, &[0.0; 3], &[1.5; 3], 6);
    let exact = Trainer::new(&e, &x, config(Method::Sm)).unwrap();
    let want = exact.method_objective::<f64>(&x, 0).unwrap();
    let want_g = want.grads.concat();
    let p = want_g.len();
    let dirs: Vec<Vec<f64>> = (0..3).map(|k| ebm::data::rng::normal(100 + k, p)).collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
    for projection in [Projection::Gaussian, Projection::Rademacher] {
        let mut cfg = config(Method::Ssm);
        cfg.score.projection = projection;
        let sliced = Trainer::new(&e, &x, cfg).unwrap();
        let draws: Vec<Vec<f64>> = (0..400)
            .map(|it| {
                let o = sliced.method_objective::<f64>(&x, it).unwrap();
                let g = o.grads.concat();
                let mut v = vec![o.total];
                v.extend(dirs.iter().map(|u| dot(&g, u)));
                v
            })
            .collect();
        let mut targets = vec![want.total];
        targets.extend(dirs.iter().map(|u| dot(&want_g, u)));
        for (k, target) in targets.iter().enumerate() {
            let vals: Vec<f64> = draws.iter().map(|v| v[k]).collect();
            let n = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let se = (var / n).sqrt();
            let z = (mean - target) / se.max(1e-300);
            assert!(
                z.abs() < 3.0,
                "{projection:?} statistic {k}: mean {mean} vs exact {target} (se {se}, z {z:.2})"
            );
        }
    }
}

/// Every method recovers a Gaussian's mean and scale from 4000 draws
/// (denoising SM fits the data convolved with its noise: sd² + σ²).
#[test]
fn every_method_recovers_a_gaussian() {
    let data = normal_rows(4000, 2, &[1.0, -2.0], &[0.5, 2.0], 7);
    for method in [Method::Sm, Method::Ssm, Method::Dsm, Method::Nce] {
        let e = energy(GAUSS, "g");
        let mut cfg = TrainConfig::new(method);
        cfg.l2 = 0.0;
        cfg.iters = 1500;
        cfg.batch = 200;
        cfg.optim.lr = 0.02;
        cfg.optim.decay = Decay::Cosine { floor: 0.0 };
        cfg.score.projections = 2;
        cfg.score.sigmas = vec![0.1];
        cfg.nce.ratio = 2;
        cfg.seed = 3;
        let mut t = Trainer::new(&e, &data, cfg).unwrap();
        while !t.done() {
            let r = t.step().unwrap();
            assert!(r.rollback.is_none(), "{method:?}: {r:?}");
        }
        let mu = e.store().get("mu").unwrap();
        let s: Vec<f64> = e
            .store()
            .get("ls")
            .unwrap()
            .iter()
            .map(|v| v.exp())
            .collect();
        let widen = |sd: f64| {
            if method == Method::Dsm {
                (sd * sd + 0.01f64).sqrt()
            } else {
                sd
            }
        };
        assert!(
            (mu[0] - 1.0).abs() < 0.05 && (mu[1] + 2.0).abs() < 0.2,
            "{method:?}: mean {mu:?}"
        );
        assert!(
            (s[0] - widen(0.5)).abs() < 0.05 && (s[1] - widen(2.0)).abs() < 0.2,
            "{method:?}: sd {s:?}"
        );
    }
}

/// The compiled loss kernels (CPU JIT, where a parameter's gradient through
/// a gradient is a sum of per-sample outer products accumulated by GEMMs)
/// agree with the reference interpreter.
#[test]
fn compiled_losses_agree_with_the_interpreter() {
    use ebm::backend::Interp;
    let src = "energy e(x: [3]) = sum(mlp(x, [16, 16, 1], act = swish)) + 0.2 * sum(x^2)";
    let x = normal_rows(40, 3, &[0.0; 3], &[1.5; 3], 8);
    for method in [Method::Sm, Method::Ssm, Method::Dsm, Method::Nce] {
        let program = Program::from_source(src).unwrap();
        let reference = program
            .energy_with("e", Arc::new(Interp), DType::F64)
            .unwrap();
        let program = Program::from_source(src).unwrap();
        let jit = program
            .energy_with("e", Arc::new(Cpu::new()), DType::F64)
            .unwrap();
        let mut cfg = config(method);
        cfg.score.projections = 2;
        cfg.score.sigmas = vec![0.1, 0.4];
        let a = Trainer::new(&reference, &x, cfg.clone()).unwrap();
        let b = Trainer::new(&jit, &x, cfg).unwrap();
        let oa = a.method_objective::<f64>(&x, 2).unwrap();
        let ob = b.method_objective::<f64>(&x, 2).unwrap();
        let close = |u: f64, v: f64| (u - v).abs() <= 1e-11 * (1.0 + u.abs().max(v.abs()));
        assert!(
            close(oa.total, ob.total),
            "{method:?}: {} vs {}",
            oa.total,
            ob.total
        );
        for (ga, gb) in oa.grads.concat().iter().zip(ob.grads.concat()) {
            assert!(close(*ga, gb), "{method:?}: gradient {ga} vs {gb}");
        }
    }
}
