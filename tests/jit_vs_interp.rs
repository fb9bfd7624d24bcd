//! Differential tests: the Cranelift backend against the reference interpreter.
//!
//! f64: |jit − ref| ≤ 1e-12·(|ref| + 1); f32: ≤ 2e-5·(|ref| + 1) against the
//! interpreter run in f64 on the same (f32-rounded) inputs. NaN must match NaN
//! and infinities must match exactly.

mod common;

use common::graphs::*;
use ebm::backend::cpu::Cpu;
use ebm::backend::{Backend, DType};
use ebm::ir::interp::eval;
use ebm::ir::{Axes, BatchReduce, Graph, InputKind, UnaryOp};

const F32_RTOL: f64 = 1e-4;

/// Runs `g` on the JIT (both dtypes) and the interpreter; panics on mismatch.
fn check(g: &Graph, batch: usize, threads: usize, seed: u64) {
    check_tol(g, batch, threads, seed, F32_RTOL)
}

fn check_tol(g: &Graph, batch: usize, threads: usize, seed: u64, f32_rtol: f64) {
    let ins = inputs_for(g, batch, seed);
    let refs: Vec<&[f64]> = ins.iter().map(|v| &v[..]).collect();
    let want = eval::<f64>(g, &refs, batch).unwrap();
    let cpu = Cpu::with_threads(threads);
    // f64
    let k = cpu.compile(g, DType::F64).unwrap_or_else(|e| panic!("{e}"));
    let mut outs: Vec<Vec<f64>> = want.iter().map(|w| vec![f64::NAN; w.len()]).collect();
    {
        let mut o: Vec<&mut [f64]> = outs.iter_mut().map(|v| &mut v[..]).collect();
        k.run_f64(&refs, &mut o, batch).unwrap();
    }
    compare(g, &want, &outs, 1e-12, "f64", batch, threads);
    // f32
    let ins32: Vec<Vec<f32>> = ins
        .iter()
        .map(|v| v.iter().map(|&x| x as f32).collect())
        .collect();
    let refs32: Vec<&[f32]> = ins32.iter().map(|v| &v[..]).collect();
    let k = cpu.compile(g, DType::F32).unwrap();
    let mut outs32: Vec<Vec<f32>> = want.iter().map(|w| vec![f32::NAN; w.len()]).collect();
    {
        let mut o: Vec<&mut [f32]> = outs32.iter_mut().map(|v| &mut v[..]).collect();
        k.run_f32(&refs32, &mut o, batch).unwrap();
    }
    let outs: Vec<Vec<f64>> = outs32
        .iter()
        .map(|v| v.iter().map(|&x| x as f64).collect())
        .collect();
    // The f32 oracle is the interpreter in f32 (same operation order), so only
    // the approximations' few-ulp differences remain, amplified by the
    // conditioning of the graph.
    let want32: Vec<Vec<f64>> = eval::<f32>(g, &refs32, batch)
        .unwrap()
        .iter()
        .map(|v| v.iter().map(|&x| x as f64).collect())
        .collect();
    // Per element, the interpreter's own f32 rounding error (vs f64) measures
    // the conditioning; the JIT may deviate by a few times that.
    let slack: Vec<Vec<f64>> = want32
        .iter()
        .zip(&want)
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| 8.0 * (x - y).abs()).collect())
        .collect();
    compare_with(
        g,
        &want32,
        &outs,
        f32_rtol,
        Some(&slack),
        "f32",
        batch,
        threads,
    );
}

fn compare(
    g: &Graph,
    want: &[Vec<f64>],
    got: &[Vec<f64>],
    rtol: f64,
    what: &str,
    batch: usize,
    threads: usize,
) {
    compare_with(g, want, got, rtol, None, what, batch, threads)
}

#[allow(clippy::too_many_arguments)]
fn compare_with(
    g: &Graph,
    want: &[Vec<f64>],
    got: &[Vec<f64>],
    rtol: f64,
    slack: Option<&[Vec<f64>]>,
    what: &str,
    batch: usize,
    threads: usize,
) {
    for (j, (w, o)) in want.iter().zip(got).enumerate() {
        let tol = match g.outputs[j].reduce {
            BatchReduce::PerSample => rtol,
            BatchReduce::Sum => rtol * (batch as f64).sqrt().max(1.0) * 4.0,
        };
        for (i, (&a, &b)) in o.iter().zip(w).enumerate() {
            let extra = slack.map_or(0.0, |s| s[j][i]);
            let ok = close(a, b, tol) || (a.is_finite() && (a - b).abs() <= extra);
            assert!(
                ok,
                "{what} batch {batch} threads {threads}: output {} [{i}] jit {a} vs interp {b}\n{}",
                g.outputs[j].name,
                ebm::ir::print::print(g)
            );
        }
    }
}

fn check_all(g: &Graph) {
    for &batch in &[1, 3, 64, 1000] {
        for &threads in &[1, 2] {
            check(g, batch, threads, batch as u64 * 7 + threads as u64);
        }
    }
}

#[test]
fn gmm_energy_and_gradient() {
    check_all(&gmm_graph());
}

#[test]
fn mlp_energy_and_gradients() {
    check_all(&mlp_graph(16));
}

#[test]
fn mlp_w3_shape() {
    check(&mlp_graph(128), 300, 2, 1);
}

#[test]
fn invariant_outputs_and_products() {
    check_all(&invariant_graph());
}

#[test]
fn every_unary_op() {
    for op in UNARY {
        check_all(&unary_graph(op));
    }
}

#[test]
fn every_binary_op() {
    for op in BINARY {
        check_all(&binary_graph(op));
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    proptest! {
        // A fixed seed: the same 48 graphs on every run (CI is never flaky).
        #![proptest_config(ProptestConfig { cases: 48, rng_seed: RngSeed::Fixed(0xEB3_0001), ..ProptestConfig::default() })]
        #[test]
        fn random_graphs_match_interpreter(seed in any::<u64>(), steps in 1usize..14) {
            let g = random_graph(seed, steps);
            for &batch in &[1, 3, 64, 1000] {
                for &threads in &[1, 2] {
                    check(&g, batch, threads, seed ^ batch as u64);
                }
            }
        }
    }
}

#[test]
fn example_energies_and_their_derivatives() {
    let graphs = example_derivative_graphs();
    for g in &graphs {
        let big = g.len() > 150;
        for &batch in &[1, 3, 64, 1000] {
            if big && batch == 1000 {
                continue;
            }
            for &threads in &[1, 2] {
                // With O(1) random parameters the 128-wide MLP's f32
                // HVP differs from the sequential interpreter by GEMM
                // summation order amplified by cancellation (~2e-4).
                check_tol(g, batch, threads, batch as u64 + 11, 1e-3);
            }
        }
    }
    assert!(
        graphs.len() >= 5,
        "only {} example energies found",
        graphs.len()
    );
}

mod derivative_props {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, rng_seed: RngSeed::Fixed(0xEB3_0002), ..ProptestConfig::default() })]
        #[test]
        fn random_energy_derivatives_match_interpreter(seed in any::<u64>(), steps in 1usize..10) {
            let g = all_derivatives(&random_energy(seed, steps));
            for &batch in &[1, 3, 64, 1000] {
                for &threads in &[1, 2] {
                    check(&g, batch, threads, seed ^ (batch as u64));
                }
            }
        }
    }
}

/// A Langevin-style elementwise step over `n` features (per-feature constant
/// vector, shared parameter vector, scalars, two sample inputs): the tile
/// program is one elementwise loop, run batch-major with lanes across
/// features and a scalar tail for `n % width`.
fn elementwise_step(n: usize) -> Graph {
    let mut g = Graph::new("ew");
    let x = g.input_node("x", vec![n], InputKind::Sample);
    let w = g.input_node("w", vec![n], InputKind::Shared);
    let xi = g.input_node("noise", vec![n], InputKind::Sample);
    let prec = g.constant_tensor(
        vec![n],
        (0..n).map(|i| 1.0 + i as f64 * 0.37).collect::<Vec<f64>>(),
    );
    let a = g.fill(0.0025, &[n]);
    let b = g.fill(0.07, &[n]);
    let grad = g.mul(prec, x);
    let gw = g.mul(grad, w);
    let t = g.unary(UnaryOp::Tanh, gw);
    let drift = g.mul(a, t);
    let kick = g.mul(b, xi);
    let moved = g.sub(x, drift);
    let next = g.add_(moved, kick);
    g.add_output("x_next", next, BatchReduce::PerSample);
    g
}

#[test]
fn batch_major_elementwise_steps() {
    for n in [1, 2, 3, 5, 8, 100] {
        let g = elementwise_step(n);
        for dt in [DType::F32, DType::F64] {
            let text = ebm::backend::cpu::clif_text(&g, dt).unwrap();
            assert!(text.contains("runs batch-major"), "n = {n}:\n{text}");
        }
        check_all(&g);
    }
    // A sample input read through a broadcast, or a second per-sample
    // output, keeps the tiled path (and must still agree).
    let mut g = Graph::new("ew_bcast");
    let x = g.input_node("x", vec![1], InputKind::Sample);
    let y = g.input_node("y", vec![3], InputKind::Sample);
    let xb = g.broadcast(x, &[3]);
    let s = g.mul(xb, y);
    g.add_output("s", s, BatchReduce::PerSample);
    check_all(&g);
    let mut g = elementwise_step(6);
    let xn = g.input_node("x", vec![6], InputKind::Sample);
    let sq = g.mul(xn, xn);
    g.add_output("sq", sq, BatchReduce::PerSample);
    check_all(&g);
}

/// A tile program of loops only (W1's energy and gradient: ten loops over a
/// few dozen features) runs as one vector-outer loop with every feature
/// unrolled and intermediates forwarded in registers.
#[test]
fn fused_vector_outer_tile_program() {
    let g = gmm_graph();
    for dt in [DType::F32, DType::F64] {
        let text = ebm::backend::cpu::clif_text(&g, dt).unwrap();
        assert!(text.contains("runs fused"), "{text}");
    }
    check_all(&g);
    // Reductions read-modify-written over a larger domain, a table-mapped
    // transpose, and a batch-summed output in the same fused program.
    let mut g = Graph::new("fused_mix");
    let x = g.input_node("x", vec![6, 5], InputKind::Sample);
    let t = g.transpose(x, &[1, 0]);
    let e = g.unary(UnaryOp::Exp, t);
    let s = g.reduce_sum(e, Axes::of(&[1]));
    let m = g.reduce_max(x, Axes::of(&[0]));
    let y = g.add_(s, m);
    let c = g.scalar(0.3);
    let cb = g.broadcast(c, &[5]);
    let yd = g.div(y, cb);
    g.add_output("y", yd, BatchReduce::PerSample);
    g.add_output("ysum", yd, BatchReduce::Sum);
    check_all(&g);
}

#[test]
fn fused_program_with_a_transposed_exp_output() {
    let mut g = Graph::new("fused_mix2");
    let x = g.input_node("x", vec![6, 5], InputKind::Sample);
    let t = g.transpose(x, &[1, 0]);
    let e = g.unary(UnaryOp::Exp, t);
    let s = g.reduce_sum(e, Axes::of(&[1]));
    g.add_output("s", s, BatchReduce::PerSample);
    g.add_output("e", e, BatchReduce::PerSample);
    let text = ebm::backend::cpu::clif_text(&g, DType::F64).unwrap();
    assert!(text.contains("runs fused"), "{text}");
    check_all(&g);
}

#[test]
fn image_primitives_on_the_jit() {
    use ebm::pipeline::{SourceFile, analyze};
    let src = "
energy conv(x: [2, 6, 6]) = sum(swish(conv2d(x, 3, 3, stride = 2, padding = 1)))
energy cnn(x: [8, 8]) = sum(mlp(flatten(avg_pool2d(swish(conv2d(x, 4, 3, padding = 1)), 2)), [8, 1]))
energy maxp(x: [1, 6, 6]) = sum(max_pool2d(x, 2)^2)
";
    let file = SourceFile {
        path: "image.ebm".into(),
        text: src.into(),
    };
    let module = analyze(&file).unwrap();
    for def in &module.defs {
        let energy = ebm::lower::lower(&module, &def.name).unwrap();
        let g = all_derivatives(&energy);
        for &batch in &[1, 3, 64, 300] {
            for &threads in &[1, 2] {
                check_tol(&g, batch, threads, batch as u64 + 5, 1e-3);
            }
        }
    }
}

/// ∇ₓE of a two-layer swish MLP, and E with it, as `ebm sample` compiles
/// them. On an AVX-512 machine the planner folds each layer's backward loop
/// (swish's derivative times the incoming gradient) into panel GEMM
/// epilogues: the top layer's into its forward epilogue (times the shared
/// readout weights), the first layer's into the backward product through
/// W2 (times the derivative its forward epilogue wrote). The kernels must
/// still match the interpreter at every batch size and thread count.
#[test]
fn swish_backward_folded_into_gemm_epilogues() {
    use ebm::autodiff::derived::{KernelSpec, derive};
    use ebm::pipeline::{SourceFile, analyze};
    let src = "param W1: [2, 40] ~ normal(0, 0.7)\nparam b1: [40] ~ normal(0, 0.5)\n\
               param W2: [40, 40] ~ normal(0, 0.3)\nparam b2: [40] ~ normal(0, 0.5)\n\
               param W3: [40, 1] ~ normal(0, 0.5)\nparam b3: [1] ~ normal(0, 0.1)\n\
               energy mlp(x: [2]) = (swish(swish(x @ W1 + b1) @ W2 + b2) @ W3 + b3)[0]\n";
    let file = SourceFile::from_reader("mlp.ebm", src.as_bytes()).unwrap();
    let module = analyze(&file).unwrap();
    let energy = ebm::lower::lower(&module, "mlp").unwrap();
    for spec in [KernelSpec::GRAD_X, KernelSpec::ENERGY_GRAD] {
        let g = ebm::opt::optimize(&derive(&energy, spec).unwrap(), Default::default());
        let text = ebm::backend::cpu::clif_text(&g, DType::F32).unwrap();
        if text.contains("panel kernel") && spec.value == KernelSpec::GRAD_X.value {
            let schedule: Vec<&str> = text.lines().take_while(|l| l.starts_with(';')).collect();
            let schedule = schedule.join("\n");
            assert!(
                schedule.contains("its derivative times Input") && schedule.contains("times Tile("),
                "the swish backward loops were not folded:\n{schedule}"
            );
            // Four products and nothing else: no elementwise loop is left.
            assert!(!schedule.contains(" loop"), "{schedule}");
        }
        check_all(&g);
    }
}
