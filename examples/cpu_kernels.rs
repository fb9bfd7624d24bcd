//! One-off throughput and compile-latency measurement of the CPU backend on
//! the benchmark shapes (W1 gmm2d 4096×2, W2 gauss100 1024×100, W3 MLP
//! 1024×2-128-128-1): one kernel call = E and ∇ₓE for the whole batch.
//!
//! `cargo run --release --example cpu_kernels`

use std::time::Instant;

use ebm::backend::cpu::Cpu;
use ebm::backend::{DType, Kernel};
use ebm::ir::{Axes, BatchReduce, Graph, InputKind, NodeId, UnaryOp};

fn gmm() -> Graph {
    let mut g = Graph::new("gmm2d");
    let x = g.input_node("x", vec![2], InputKind::Sample);
    let mus: Vec<f64> = (0..8)
        .flat_map(|k| {
            let a = 2.0 * std::f64::consts::PI * k as f64 / 8.0;
            [2.0 * a.cos(), 2.0 * a.sin()]
        })
        .collect();
    let mu = g.constant_tensor(vec![8, 2], mus);
    let d = g.sub(x, mu);
    let d2 = g.mul(d, d);
    let sq = g.reduce_sum(d2, Axes::of(&[1]));
    let c = g.scalar(-1.0 / (2.0 * 0.01));
    let logits = g.mul(sq, c);
    let lse = g.logsumexp(logits, Axes::of(&[0]));
    let e = g.neg(lse);
    let lse_b = g.broadcast(lse, &[8]);
    let sh = g.sub(logits, lse_b);
    let w = g.unary(UnaryOp::Exp, sh);
    let w2 = g.reshape(w, &[8, 1]);
    let wd = g.mul(w2, d);
    let s = g.reduce_sum(wd, Axes::of(&[0]));
    let inv = g.scalar(100.0);
    let grad = g.mul(s, inv);
    g.add_output("E", e, BatchReduce::PerSample);
    g.add_output("grad", grad, BatchReduce::PerSample);
    g
}

fn gauss100() -> Graph {
    let mut g = Graph::new("gauss100");
    let x = g.input_node("x", vec![100], InputKind::Sample);
    let p: Vec<f64> = (0..100)
        .map(|i| {
            let s = 0.1 + 0.9 * i as f64 / 99.0;
            1.0 / (s * s)
        })
        .collect();
    let prec = g.constant_tensor(vec![100], p);
    let grad = g.mul(x, prec);
    let xg = g.mul(x, grad);
    let e = g.sum_all(xg);
    let half = g.scalar(0.5);
    let e = g.mul(e, half);
    g.add_output("E", e, BatchReduce::PerSample);
    g.add_output("grad", grad, BatchReduce::PerSample);
    g
}

fn mlp(h: usize) -> Graph {
    let mut g = Graph::new("mlp");
    let x = g.input_node("x", vec![2], InputKind::Sample);
    let w1 = g.input_node("W1", vec![2, h], InputKind::Shared);
    let b1 = g.input_node("b1", vec![h], InputKind::Shared);
    let w2 = g.input_node("W2", vec![h, h], InputKind::Shared);
    let b2 = g.input_node("b2", vec![h], InputKind::Shared);
    let w3 = g.input_node("W3", vec![h, 1], InputKind::Shared);
    let b3 = g.input_node("b3", vec![1], InputKind::Shared);
    let z1 = g.matmul(x, w1);
    let z1 = g.add_(z1, b1);
    let s1 = g.unary(UnaryOp::Sigmoid, z1);
    let h1 = g.mul(z1, s1);
    let z2 = g.matmul(h1, w2);
    let z2 = g.add_(z2, b2);
    let s2 = g.unary(UnaryOp::Sigmoid, z2);
    let h2 = g.mul(z2, s2);
    let e = g.matmul(h2, w3);
    let e = g.add_(e, b3);
    let e = g.reshape(e, &[]);
    let silu_d = |g: &mut Graph, z: NodeId, s: NodeId| {
        let one = g.fill(1.0, &[h]);
        let oms = g.sub(one, s);
        let zo = g.mul(z, oms);
        let t = g.add_(one, zo);
        g.mul(s, t)
    };
    let w3v = g.reshape(w3, &[h]);
    let d2 = silu_d(&mut g, z2, s2);
    let g2 = g.mul(w3v, d2);
    let w2t = g.transpose(w2, &[1, 0]);
    let gh1 = g.matmul(g2, w2t);
    let d1 = silu_d(&mut g, z1, s1);
    let g1 = g.mul(gh1, d1);
    let w1t = g.transpose(w1, &[1, 0]);
    let gx = g.matmul(g1, w1t);
    g.add_output("E", e, BatchReduce::PerSample);
    g.add_output("grad", gx, BatchReduce::PerSample);
    g
}

/// CPU time of the calling thread, in seconds (precise, from schedstat).
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns * 1e-9)
}

fn time_calls(k: &dyn Kernel, inputs: &[Vec<f32>], outs: &mut [Vec<f32>], batch: usize) -> f64 {
    let ins: Vec<&[f32]> = inputs.iter().map(|v| &v[..]).collect();
    let mut run = |n: usize| {
        let t = Instant::now();
        for _ in 0..n {
            let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| &mut v[..]).collect();
            k.run_f32(&ins, &mut o, batch).unwrap();
        }
        t.elapsed().as_secs_f64() / n as f64
    };
    run(20);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        best = best.min(run(100));
    }
    let c0 = thread_cpu();
    run(200);
    CPU_PER_CALL.with(|c| c.set((thread_cpu() - c0) / 200.0));
    best
}

thread_local! {
    static CPU_PER_CALL: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

/// Source text → optimised energy + ∇ₓE graph, through the real pipeline
/// (parse, sema, lower, symbolic AD, simplifier).
fn from_source(text: &str, name: &str) -> Graph {
    use ebm::autodiff::derived::{KernelSpec, derive};
    let file = ebm::pipeline::SourceFile {
        path: "bench.ebm".into(),
        text: text.into(),
    };
    let module = ebm::pipeline::analyze(&file).unwrap();
    let energy = ebm::lower::lower(&module, name).unwrap();
    let g = derive(&energy, KernelSpec::ENERGY_GRAD).unwrap();
    ebm::opt::optimize(&g, ebm::opt::Config::default())
}

const GMM_SRC: &str = "const centers = ring(8, radius = 2.0)\nconst sigma = 0.1\n\
    energy gmm(x: [2]) = -logsumexp(-sum((x - centers)^2, axis = 1) / (2 * sigma^2))\n";
const MLP_SRC: &str = "energy net(x: [2]) = sum(mlp(x, [128, 128, 1], act = swish))\n";

/// Raw single-threaded sgemm throughput of the `gemm` crate in this run, and
/// of the shape W3's big layers use per tile ([128×128]·[128×rows]).
fn sgemm_reference() {
    for (m, n, k) in [(1024, 1024, 1024), (128, 1024, 128)] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let run = |c: &mut [f32]| unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        };
        run(&mut c);
        let mut best = f64::INFINITY;
        for _ in 0..10 {
            let t = Instant::now();
            run(&mut c);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "sgemm {m}x{n}x{k} (1 thread): {:.0} GFLOP/s",
            2.0 * (m * n * k) as f64 / best / 1e9
        );
    }
}

fn main() {
    sgemm_reference();
    // Compile latency, source text to runnable energy + gradient kernel (W3).
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let g = from_source(MLP_SRC, "net");
        let k = Cpu::with_threads(2)
            .compile_uncached(&g, DType::F32)
            .unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        drop(k);
    }
    println!(
        "W3 MLP source → energy+gradient kernel: {:.2} ms (best of 5)",
        best * 1e3
    );
    let cases: Vec<(&str, Graph, usize, f64)> = vec![
        ("W1 gmm2d", from_source(GMM_SRC, "gmm"), 4096, 0.0),
        ("W1 hand", gmm(), 4096, 0.0),
        ("W2 gauss100", gauss100(), 1024, 0.0),
        // The peers count 4·P·batch FLOP per Langevin step (forward + input gradient).
        (
            "W3 mlp",
            from_source(MLP_SRC, "net"),
            1024,
            4.0 * 16768.0 * 1024.0,
        ),
        ("W3 hand", mlp(128), 1024, 4.0 * 16768.0 * 1024.0),
    ];
    let only = std::env::args().nth(1);
    for (name, g, batch, flops) in cases {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        for threads in [1, 2] {
            let cpu = Cpu::with_threads(threads);
            let t = Instant::now();
            let k = cpu.compile_uncached(&g, DType::F32).unwrap();
            let compile = t.elapsed().as_secs_f64();
            let inputs: Vec<Vec<f32>> = g
                .inputs()
                .iter()
                .map(|d| {
                    let n: usize = d.shape.iter().product::<usize>()
                        * if d.kind == InputKind::Sample {
                            batch
                        } else {
                            1
                        };
                    (0..n)
                        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.5)
                        .collect()
                })
                .collect();
            let mut outs: Vec<Vec<f32>> = g
                .outputs
                .iter()
                .map(|o| vec![0.0; g.shape(o.node).iter().product::<usize>() * batch])
                .collect();
            let s = time_calls(&*k, &inputs, &mut outs, batch);
            let gf = if flops > 0.0 {
                format!(", {:.0} GFLOP/s", flops / s / 1e9)
            } else {
                String::new()
            };
            let cpu = CPU_PER_CALL.with(|c| c.get());
            println!(
                "{name:12} batch {batch:5} threads {threads}: {:8.1} µs/call (caller CPU {:6.1} µs), {:7.1} M chain-steps/s{gf}; compile {:.2} ms",
                s * 1e6,
                cpu * 1e6,
                batch as f64 / s / 1e6,
                compile * 1e3
            );
        }
    }
}
