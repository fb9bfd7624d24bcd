//! The runtime layer on the reference backend: derivative kernels by name,
//! dtype checks, and the fused Langevin step graph.

use std::sync::Arc;

use ebm::backend::{DType, Interp};
use ebm::ir::interp::eval;
use ebm::ir::{BatchReduce, Graph, InputKind};
use ebm::runtime::CompiledEnergy;
use ebm::runtime::fused::langevin_step;

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
    let step = langevin_step(&gaussian(), 0.05, 0.3, true).unwrap();
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
    assert_eq!(outs[1], vec![2.5]);
}

/// The chain-parallel ULA runner: bitwise-identical for any thread count, and
/// its stationary variance on a standard Gaussian is ULA's closed form
/// 1/(1 − λ/4) (within 5 standard errors of the sample variance).
#[test]
fn langevin_runner_is_deterministic_and_has_the_ula_variance() {
    use ebm::backend::cpu::Cpu;
    use ebm::runtime::langevin::Langevin;
    let mut g = Graph::new("std_normal");
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let sq = g.mul(x, x);
    let s = g.sum_all(sq);
    let half = g.scalar(0.5);
    let e = g.mul(half, s);
    g.add_output("energy", e, BatchReduce::PerSample);
    let lam = 0.4;
    let ula = Langevin::ula(&g, lam, |_| None, &Cpu::with_threads(1)).unwrap();
    let chains = 2000;
    let run = |threads| {
        let mut xs = vec![0f32; chains * 3];
        ula.run(&mut xs, 300, 7, threads).unwrap();
        xs
    };
    let one = run(1);
    assert_eq!(one, run(2), "thread count changed the result");
    assert_eq!(one, run(3));
    let n = one.len() as f64;
    let var = one.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
    let want = 1.0 / (1.0 - lam / 4.0);
    let se = want * (2.0 / n).sqrt();
    assert!(
        (var - want).abs() < 5.0 * se,
        "variance {var}, closed form {want} ± {se}"
    );
}
