//! The runtime layer: derivative kernels by spec, dtype checks, the fused
//! step graphs, and ULA through the sampling engine.

use std::sync::Arc;

use ebm::backend::{DType, Interp};
use ebm::ir::interp::eval;
use ebm::ir::{BatchReduce, Graph, InputKind};
use ebm::runtime::CompiledEnergy;
use ebm::runtime::steps::{self, UlaMove};
use ebm::sample::{RunConfig, SamplerConfig, run_compiled};

/// E(x) = ½ Σ (x − μ)² / s², with μ a parameter.
fn gaussian() -> Graph {
    let mut g = Graph::new("gauss");
    let x = g.input_node("x", vec![2], InputKind::Sample);
    let mu = g.input_node("mu", vec![2], InputKind::Shared);
    let d = g.sub(x, mu);
    let sq = g.mul(d, d);
    let s2 = g.constant_tensor(vec![2], vec![1.0, 4.0]);
    let r = g.div(sq, s2);
    let half = g.scalar(0.5);
    let sum = g.sum_all(r);
    let e = g.mul(half, sum);
    g.add_output("energy", e, BatchReduce::PerSample);
    g
}

fn compiled(dtype: DType) -> CompiledEnergy {
    CompiledEnergy::new(
        gaussian(),
        |_| Some(vec![1.0, -1.0]),
        Arc::new(Interp),
        dtype,
    )
    .unwrap()
}

#[test]
fn energy_gradients_and_second_order_products() {
    let e = compiled(DType::F64);
    let x = [1.0, -1.0, 3.0, 1.0];
    let eg = e.energy_and_grad_x(&x, None, 2).unwrap();
    assert_eq!(eg.energy, vec![0.0, 2.0 + 0.5]);
    assert_eq!(eg.grad_x, vec![0.0, 0.0, 2.0, 0.5]);
    // ∇_μ E summed over the batch = −Σ (x − μ)/s².
    assert_eq!(e.grad_params(&x, None, 2).unwrap(), vec![vec![-2.0, -0.5]]);
    // The Hessian is diag(1, 1/4); the mixed product ∇_μ(∇ₓE·v) = −Σ v/s².
    let v = [1.0, 1.0, 2.0, 4.0];
    assert_eq!(e.hvp(&x, &v, None, 2).unwrap(), vec![1.0, 0.25, 2.0, 1.0]);
    assert_eq!(e.mixed(&x, &v, None, 2).unwrap(), vec![vec![-3.0, -1.25]]);
}

#[test]
fn calls_in_the_wrong_dtype_or_size_are_errors() {
    let e = compiled(DType::F32);
    assert!(e.energy(&[0.0f64, 0.0], None, 1).is_err());
    assert!(e.energy(&[0.0f32, 0.0, 1.0], None, 1).is_err());
    assert_eq!(e.energy(&[1.0f32, -1.0], None, 1).unwrap(), vec![0.0]);
}

#[test]
fn fused_langevin_step_is_the_update_rule() {
    let m = UlaMove {
        drift: 0.05,
        noise: 0.3,
        clip: None,
        clamp: None,
    };
    let step = steps::ula(&gaussian(), m).unwrap().graph;
    let x = [3.0, 1.0];
    let noise = [0.5, -1.0];
    let inputs: Vec<&[f64]> = step
        .inputs()
        .iter()
        .map(|d| match d.name.as_str() {
            "x" => &x[..],
            "noise" => &noise[..],
            _ => &[1.0, -1.0][..],
        })
        .collect();
    let outs = eval(&step, &inputs, 1).unwrap();
    let want = [3.0 - 0.05 * 2.0 + 0.3 * 0.5, 1.0 - 0.05 * 0.5 - 0.3];
    for (a, b) in outs[0].iter().zip(want) {
        assert!((a - b).abs() < 1e-15);
    }
}

/// A NaN gradient stays NaN through clipping and clamping, so the engine
/// sees the divergence (max/min-based clipping would hide it).
#[test]
fn clipping_and_clamping_keep_nan() {
    let m = UlaMove {
        drift: 0.5,
        noise: 0.0,
        clip: Some(1.0),
        clamp: Some((-2.0, 2.0)),
    };
    let mut g = Graph::new("sqrt");
    let x = g.input_node("x", vec![1], InputKind::Sample);
    let r = g.unary(ebm::ir::UnaryOp::Sqrt, x);
    let e = g.sum_all(r);
    g.add_output("energy", e, BatchReduce::PerSample);
    let step = steps::ula(&g, m).unwrap().graph;
    let xs = [-1.0, 100.0, 0.04];
    let noise = [0.0; 3];
    let inputs: Vec<&[f64]> = step
        .inputs()
        .iter()
        .map(|d| if d.name == "x" { &xs[..] } else { &noise[..] })
        .collect();
    let out = eval(&step, &inputs, 3).unwrap().remove(0);
    assert!(out[0].is_nan(), "{out:?}");
    assert_eq!(out[1], 2.0, "clamped to the box");
    // ∇√x = 1/(2√x) = 2.5 at 0.04, clipped to 1: 0.04 − 0.5.
    assert_eq!(out[2], 0.04 - 0.5);
}

/// E(x) = ½|x|² in 3-d, as IR.
fn std_normal3() -> Graph {
    let mut g = Graph::new("std_normal");
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let sq = g.mul(x, x);
    let s = g.sum_all(sq);
    let half = g.scalar(0.5);
    let e = g.mul(half, s);
    g.add_output("energy", e, BatchReduce::PerSample);
    g
}

/// ULA through the engine: bitwise-identical for any thread count, and its
/// stationary variance on a standard Gaussian is ULA's closed form
/// 1/(1 − λ/4) (within 5 standard errors of the sample variance).
#[test]
fn engine_ula_is_deterministic_and_has_the_ula_variance() {
    use ebm::backend::cpu::Cpu;
    let energy =
        CompiledEnergy::new(std_normal3(), |_| None, Arc::new(Cpu::new()), DType::F32).unwrap();
    let lam = 0.4;
    let chains = 2000;
    let run = |threads| {
        let mut run = RunConfig::new(chains, 299, 1, 7);
        run.threads = threads;
        run_compiled(&energy, None, &SamplerConfig::ula(lam), &run).unwrap()
    };
    let one = run(1);
    assert_eq!(one.x, run(2).x, "thread count changed the result");
    assert_eq!(one.x, run(3).x);
    let n = one.x.len() as f64;
    let var = one.x.iter().map(|&v| v.powi(2)).sum::<f64>() / n;
    let want = 1.0 / (1.0 - lam / 4.0);
    let se = want * (2.0f64 / n).sqrt();
    assert!(
        (var - want).abs() < 5.0 * se,
        "variance {var}, closed form {want} ± {se}"
    );
}
