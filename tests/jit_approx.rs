//! Maximum error of the inline vector approximations against Rust's libm,
//! measured over ~100k points per function and dtype. Run with
//! `--nocapture` to see the table; the bounds asserted here are the ones
//! documented in `docs/backend-cpu.md`.

use ebm::backend::cpu::Cpu;
use ebm::backend::{Backend, DType, Kernel};
use ebm::ir::{BatchReduce, Graph, InputKind, UnaryOp};

fn points(op: UnaryOp, f64: bool) -> Vec<f64> {
    let lin =
        |a: f64, b: f64, n: usize| (0..n).map(move |i| a + (b - a) * i as f64 / (n - 1) as f64);
    let logs = |a: f64, b: f64, n: usize| {
        (0..n).map(move |i| (a.ln() + (b.ln() - a.ln()) * i as f64 / (n - 1) as f64).exp())
    };
    let mut v: Vec<f64> = match op {
        UnaryOp::Exp => {
            let (lo, hi) = if f64 { (-740.0, 709.0) } else { (-103.0, 88.5) };
            lin(lo, hi, 100_000).chain(lin(-1.0, 1.0, 20_000)).collect()
        }
        UnaryOp::Log => {
            let (lo, hi) = if f64 { (1e-310, 1e300) } else { (1e-44, 1e38) };
            logs(lo, hi, 100_000).chain(lin(0.5, 2.0, 20_000)).collect()
        }
        UnaryOp::Log1p => lin(-0.999, 10.0, 60_000)
            .chain(logs(1e-12, 1e30, 40_000))
            .chain(logs(1e-12, 0.5, 10_000).map(|x| -x))
            .collect(),
        UnaryOp::Tanh => lin(-20.0, 20.0, 60_000)
            .chain(logs(1e-10, 1.0, 30_000))
            .chain(logs(1e-10, 1.0, 10_000).map(|x| -x))
            .collect(),
        _ => lin(-90.0, 90.0, 80_000)
            .chain(lin(-2.0, 2.0, 20_000))
            .collect(),
    };
    if !f64 {
        for x in &mut v {
            *x = *x as f32 as f64;
        }
    }
    v
}

fn reference(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Log1p => x.ln_1p(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => {
            if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                x.exp() / (1.0 + x.exp())
            }
        }
        UnaryOp::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
        _ => unreachable!(),
    }
}

/// Max error in units of the f32 ulp of the (f64-accurate) reference, or the
/// max relative error for f64. Subnormal f32 results are measured in absolute
/// units of the smallest normal ulp.
fn max_error(op: UnaryOp, f64: bool) -> (f64, f64) {
    let xs = points(op, f64);
    let mut g = Graph::new("u");
    let x = g.input_node("x", vec![1], InputKind::Sample);
    let y = g.unary(op, x);
    g.add_output("y", y, BatchReduce::PerSample);
    let cpu = Cpu::with_threads(1);
    let mut worst = (0.0, 0.0);
    if f64 {
        let k = cpu.compile(&g, DType::F64).unwrap();
        let mut out = vec![0.0; xs.len()];
        k.run_f64(&[&xs], &mut [&mut out], xs.len()).unwrap();
        for (&x, &y) in xs.iter().zip(&out) {
            let r = reference(op, x);
            let e = if r.is_infinite() {
                if y == r { 0.0 } else { f64::INFINITY }
            } else {
                (y - r).abs() / r.abs().max(f64::MIN_POSITIVE)
            };
            if e > worst.0 {
                worst = (e, x);
            }
        }
    } else {
        let xs32: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
        let k = cpu.compile(&g, DType::F32).unwrap();
        let mut out = vec![0.0f32; xs.len()];
        k.run_f32(&[&xs32], &mut [&mut out], xs.len()).unwrap();
        for (&x, &y) in xs.iter().zip(&out) {
            let r = reference(op, x);
            let r32 = r as f32;
            let e = if r32 == 0.0 || r32.is_infinite() {
                if y == r32 {
                    0.0
                } else {
                    ((y as f64 - r) / 1e-45).abs()
                }
            } else {
                let ulp = (r32.abs().max(f32::MIN_POSITIVE) as f64) * f32::EPSILON as f64;
                (y as f64 - r).abs() / ulp
            };
            if e > worst.0 {
                worst = (e, x);
            }
        }
    }
    worst
}

#[test]
fn approximation_error_bounds() {
    use UnaryOp::*;
    for op in [Exp, Log, Log1p, Tanh, Sigmoid, Softplus] {
        let (e32, x32) = max_error(op, false);
        let (e64, x64) = max_error(op, true);
        eprintln!("{op:?}: f32 max {e32:.2} ulp (at {x32:e}); f64 max rel {e64:.2e} (at {x64:e})");
        assert!(e32 <= 4.0, "{op:?} f32 error {e32} ulp at {x32}");
        assert!(e64 <= 1e-15, "{op:?} f64 error {e64} at {x64}");
    }
}

/// `EBM_DISASM=1 cargo test --test jit_approx disasm -- --nocapture` prints
/// the machine code of an inline f32x4 exp loop.
#[test]
fn disasm_inline_exp() {
    let mut g = Graph::new("u");
    let x = g.input_node("x", vec![1], InputKind::Sample);
    let n = g.neg(x);
    let y = g.unary(UnaryOp::Exp, n);
    g.add_output("y", y, BatchReduce::PerSample);
    let k = Cpu::with_threads(1)
        .compile_uncached(&g, DType::F32)
        .unwrap();
    let mut out = [0.0f32; 4];
    k.run_f32(&[&[0.0, 1.0, -1.0, 2.0]], &mut [&mut out], 4)
        .unwrap();
    assert!((out[1] - (-1.0f32).exp()).abs() < 1e-6);
}
