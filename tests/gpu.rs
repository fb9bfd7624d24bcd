//! Differential tests: the GPU backend (WGSL through wgpu, f32) against the
//! reference interpreter, on the graphs the CPU JIT is tested on, at batch
//! sizes 1, 3, 64 and 1000. Tolerance as for the CPU JIT's f32:
//! |gpu − ref| ≤ rtol·(|ref| + 1) against the interpreter in f64 on the same
//! f32-rounded inputs (batch sums scaled by √batch).
//!
//! Without a GPU adapter every test prints why and passes — except in CI
//! (`CI=true`), where Mesa's lavapipe is installed and a GPU suite that
//! could not run fails the run.

mod common;

use common::graphs::*;
use ebm::backend::gpu::Gpu;
use ebm::backend::gpu::wgsl::MIN_TILED;
use ebm::backend::{Backend, BackendError, DType};
use ebm::ir::interp::eval;
use ebm::ir::{BatchReduce, Graph, InputKind, UnaryOp};
use std::sync::Arc;

const F32_RTOL: f64 = 1e-4;
const BATCHES: [usize; 4] = [1, 3, 64, 1000];

/// The device, or `None` (with the reason printed) outside CI.
fn gpu(test: &str) -> Option<Gpu> {
    match Gpu::new() {
        Ok(g) => Some(g),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI must run the GPU tests, but {test} found no device: {e}")
        }
        Err(e) => {
            eprintln!("{test} skipped: {e}");
            None
        }
    }
}

/// Both forms of the GPU's programs: a small graph as one pass (the
/// default), and every graph a pass per stored node.
fn both(gpu: &Gpu) -> [(Gpu, &'static str); 2] {
    [
        (gpu.clone(), "default"),
        (gpu.clone().pass_per_node(), "pass per node"),
    ]
}

/// Runs `g` on the GPU (both forms) and the interpreter over `batch`
/// samples; panics on a mismatch beyond `rtol`.
fn check(gpu: &Gpu, g: &Graph, batch: usize, seed: u64, rtol: f64) {
    for (gpu, form) in both(gpu) {
        check_form(&gpu, form, g, batch, seed, rtol);
    }
}

fn check_form(gpu: &Gpu, form: &str, g: &Graph, batch: usize, seed: u64, rtol: f64) {
    let ins = inputs_for(g, batch, seed);
    let refs: Vec<&[f64]> = ins.iter().map(|v| &v[..]).collect();
    let want = eval::<f64>(g, &refs, batch).unwrap();
    let k = gpu.compile(g, DType::F32).unwrap_or_else(|e| panic!("{e}"));
    let ins32: Vec<Vec<f32>> = ins
        .iter()
        .map(|v| v.iter().map(|&x| x as f32).collect())
        .collect();
    let refs32: Vec<&[f32]> = ins32.iter().map(|v| &v[..]).collect();
    let mut outs: Vec<Vec<f32>> = want.iter().map(|w| vec![f32::NAN; w.len()]).collect();
    {
        let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| &mut v[..]).collect();
        k.run_f32(&refs32, &mut o, batch)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for (j, (w, o)) in want.iter().zip(&outs).enumerate() {
        let tol = match g.outputs[j].reduce {
            BatchReduce::PerSample => rtol,
            BatchReduce::Sum => rtol * (batch as f64).sqrt().max(1.0) * 4.0,
        };
        for (i, (&a, &b)) in o.iter().zip(w).enumerate() {
            assert!(
                close(a as f64, b, tol),
                "{form}, batch {batch}: output {} [{i}] gpu {a} vs interp {b}\n{}",
                g.outputs[j].name,
                ebm::ir::print::print(g)
            );
        }
    }
}

fn check_all(gpu: &Gpu, g: &Graph, rtol: f64) {
    for batch in BATCHES {
        check(gpu, g, batch, batch as u64 * 7 + 1, rtol);
    }
}

#[test]
fn every_unary_op() {
    let Some(gpu) = gpu("every_unary_op") else {
        return;
    };
    for op in UNARY {
        check_all(&gpu, &unary_graph(op), F32_RTOL);
    }
}

#[test]
fn every_binary_op() {
    let Some(gpu) = gpu("every_binary_op") else {
        return;
    };
    for op in BINARY {
        check_all(&gpu, &binary_graph(op), F32_RTOL);
    }
}

#[test]
fn energies_gradients_and_batch_sums() {
    let Some(gpu) = gpu("energies_gradients_and_batch_sums") else {
        return;
    };
    check_all(&gpu, &gmm_graph(), F32_RTOL);
    check_all(&gpu, &mlp_graph(16), F32_RTOL);
    check_all(&gpu, &invariant_graph(), F32_RTOL);
    check(&gpu, &mlp_graph(128), 300, 1, F32_RTOL);
}

/// Seeded random graphs over every structural op (broadcasts, transposes,
/// slices with steps, concatenations, reductions over axis sets, matrix
/// products of rank 1 and 2), as the CPU JIT's property test.
#[test]
fn random_graphs_match_interpreter() {
    let Some(gpu) = gpu("random_graphs_match_interpreter") else {
        return;
    };
    for seed in 0..24u64 {
        let g = random_graph(seed * 0x9E37_79B9 + 5, 1 + (seed as usize % 13));
        for batch in BATCHES {
            check(&gpu, &g, batch, seed ^ batch as u64, F32_RTOL);
        }
    }
}

/// ∇ₓE, ∇_θE (batch-summed), the HVP and the mixed product of every example
/// energy, and of random energies.
#[test]
fn derivative_kernels_match_interpreter() {
    let Some(gpu) = gpu("derivative_kernels_match_interpreter") else {
        return;
    };
    let graphs = example_derivative_graphs();
    assert!(graphs.len() >= 5, "only {} example energies", graphs.len());
    for g in &graphs {
        for batch in BATCHES {
            // As on the CPU: the 128-wide MLP's f32 HVP cancels (~2e-4).
            check(&gpu, g, batch, batch as u64 + 11, 1e-3);
        }
    }
    for seed in 0..12u64 {
        let g = all_derivatives(&random_energy(seed * 31 + 7, 1 + seed as usize % 9));
        for batch in BATCHES {
            check(&gpu, &g, batch, seed ^ batch as u64, F32_RTOL);
        }
    }
}

/// Scans (forward and reverse, nested, a network in the step, captured
/// parameters, the time-series examples' 199- and 200-step recurrences)
/// and every derivative kernel through them, against the f32 interpreter
/// as the CPU JIT's scans are (`tests/scan.rs`): inputs in [−1, 1), each
/// output within 2·10⁻⁴ of its largest value. (Against f64, an HVP through
/// 199 steps of a recurrence near |θ| = 1 loses more than f32's digits on
/// either backend.)
#[test]
fn scans_match_the_interpreter() {
    let Some(gpu) = gpu("scans_match_the_interpreter") else {
        return;
    };
    let graphs = common::scans::scan_derivative_graphs();
    for (gpu, form) in both(&gpu) {
        for g in &graphs {
            let k = gpu.compile(g, DType::F32).unwrap_or_else(|e| panic!("{e}"));
            for batch in BATCHES {
                let ins: Vec<Vec<f32>> = inputs_for(g, batch, batch as u64 + 5)
                    .iter()
                    .map(|v| v.iter().map(|&x| 0.5 * x as f32).collect())
                    .collect();
                let refs: Vec<&[f32]> = ins.iter().map(|v| &v[..]).collect();
                let want = eval::<f32>(g, &refs, batch).unwrap();
                let mut got: Vec<Vec<f32>> = want.iter().map(|w| vec![f32::NAN; w.len()]).collect();
                let mut outs: Vec<&mut [f32]> = got.iter_mut().map(|v| &mut v[..]).collect();
                k.run_f32(&refs, &mut outs, batch).unwrap();
                for (j, (o, w)) in got.iter().zip(&want).enumerate() {
                    let scale = 1.0 + w.iter().fold(0f32, |m, v| m.max(v.abs()));
                    for (i, (a, b)) in o.iter().zip(w).enumerate() {
                        assert!(
                            (a - b).abs() <= 2e-4 * scale,
                            "{} ({form}), batch {batch}: output {} [{i}] gpu {a} vs interp {b}",
                            g.name,
                            g.outputs[j].name
                        );
                    }
                }
            }
        }
    }
}

/// A graph compiled again reuses its shaders (the process-wide cache, by
/// the graph and its constants' bits), and kernels sharing them still
/// compute apart (each has its own arena).
#[test]
fn a_graph_compiled_again_reuses_its_shaders() {
    let Some(gpu) = gpu("a_graph_compiled_again_reuses_its_shaders") else {
        return;
    };
    // A constant no other test uses, so that no other test fills the entry.
    let with = |c: f64| {
        let mut g = Graph::new("cached");
        let x = g.input_node("x", vec![3], InputKind::Sample);
        let k = g.constant_tensor(vec![3], vec![c, 2.0, -1.0]);
        let y = g.mul(x, k);
        g.add_output("y", y, BatchReduce::PerSample);
        g
    };
    let (a, b) = (with(0.123_456_7), with(0.123_456_8));
    assert!(!ebm::backend::gpu::is_cached(&a));
    let k1 = gpu.compile(&a, DType::F32).unwrap();
    assert!(ebm::backend::gpu::is_cached(&a));
    assert!(
        !ebm::backend::gpu::is_cached(&b),
        "keyed by the constants' bits"
    );
    let k2 = gpu.compile(&a, DType::F32).unwrap();
    let kb = gpu.compile(&b, DType::F32).unwrap();
    let run = |k: &std::sync::Arc<dyn ebm::backend::Kernel>, x: &[f32]| {
        let mut y = vec![0f32; x.len()];
        k.run_f32(&[x], &mut [&mut y[..]], x.len() / 3).unwrap();
        y
    };
    assert_eq!(run(&k1, &[1.0, 1.0, 1.0]), [0.123_456_7, 2.0, -1.0]);
    assert_eq!(
        run(&k2, &[2.0, 0.5, 3.0, 1.0, 1.0, 1.0]),
        [0.246_913_4, 1.0, -3.0, 0.123_456_7, 2.0, -1.0]
    );
    assert_eq!(run(&kb, &[1.0, 1.0, 1.0]), [0.123_456_8, 2.0, -1.0]);
    assert_eq!(run(&k1, &[1.0, 2.0, 3.0]), [0.123_456_7, 4.0, -3.0]);
}

/// A call larger than one arena runs in chunks: per-sample rows land in
/// place and batch sums carry across chunks. The arena is capped so that
/// the call needs many chunks on any device (lavapipe's own 128 MiB binding
/// is exercised by `wide` below too).
#[test]
fn a_batch_larger_than_the_device_binding_runs_in_chunks() {
    let Some(gpu) = gpu("a_batch_larger_than_the_device_binding_runs_in_chunks") else {
        return;
    };
    let wide = |n: usize| {
        let mut g = Graph::new("wide");
        let x = g.input_node("x", vec![n], InputKind::Sample);
        let y = g.unary(UnaryOp::Sin, x);
        let s = g.sum_all(y);
        g.add_output("s", s, BatchReduce::PerSample);
        g.add_output("y_sum", y, BatchReduce::Sum);
        g
    };
    // 4096 × 2 values a sample: 9000 samples need 295 MB.
    check(&gpu, &wide(4096), 9000, 3, F32_RTOL);
    // 8·2 + 1 values a sample in arenas of 1000 values: 58 samples a chunk,
    // 18 chunks, the last one short.
    let small = Gpu::with_arena_limit(1000).unwrap();
    check(&small, &wide(8), 1000, 5, F32_RTOL);
}

/// Products of per-sample rows and a shared matrix run as tiled passes
/// (64×64 output blocks staged through workgroup memory, 16-deep slices of
/// the contraction) when they have at least `MIN_TILED` columns and
/// contraction. Shapes straddle every tile edge: rows, columns and
/// contraction lengths below, at and past a tile, a vector on the left, the
/// matrix an input or a constant, calls whose sample count splits the rows
/// across workgroups unevenly, and narrow products that keep the plain pass. Each value accumulates in the
/// interpreter's order, so the f32 interpreter is matched to the bit.
#[test]
fn tiled_matrix_products_match_the_interpreter_bit_for_bit() {
    let Some(gpu) = gpu("tiled_matrix_products_match_the_interpreter_bit_for_bit") else {
        return;
    };
    let shapes: [(Option<usize>, usize, usize); 8] = [
        (None, 2, 128),
        (None, 128, 128),
        (None, 37, 70),
        (Some(3), 16, 64),
        (Some(5), 17, 65),
        (Some(2), 130, 129),
        (Some(4), 40, 16),
        (Some(70), 1, 3),
    ];
    for &(m, k, n) in &shapes {
        for constant in [false, true] {
            let mut g = Graph::new("product");
            let a_shape = m.map_or(vec![k], |m| vec![m, k]);
            let a = g.input_node("a", a_shape, InputKind::Sample);
            let b = if constant {
                let data: Vec<f64> = (0..k * n)
                    .map(|j| ((j * 7919 % 1000) as f64 / 250.0 - 2.0) as f32 as f64)
                    .collect();
                g.constant_tensor(vec![k, n], data)
            } else {
                g.input_node("b", vec![k, n], InputKind::Shared)
            };
            let y = g.matmul(a, b);
            g.add_output("y", y, BatchReduce::PerSample);
            let text = ebm::backend::gpu::wgsl_text(&g).unwrap();
            let tiled = n >= MIN_TILED && k >= MIN_TILED;
            assert_eq!(text.contains(", tiled: "), tiled, "{text}");
            let what = format!("{m:?}×{k}·{k}×{n}, constant {constant}");
            bitwise(&gpu, &g, &BATCHES, &what);
        }
    }
}

/// Runs `g` on `gpu` and the f32 interpreter over each batch; the outputs
/// must agree to the bit.
fn bitwise(gpu: &Gpu, g: &Graph, batches: &[usize], what: &str) {
    for (gpu, form) in both(gpu) {
        bitwise_form(&gpu, g, batches, &format!("{what} ({form})"));
    }
}

fn bitwise_form(gpu: &Gpu, g: &Graph, batches: &[usize], what: &str) {
    let k32 = gpu.compile(g, DType::F32).unwrap();
    for &batch in batches {
        let ins = inputs_for(g, batch, batch as u64 + 17);
        let ins32: Vec<Vec<f32>> = ins
            .iter()
            .map(|v| v.iter().map(|&x| x as f32).collect())
            .collect();
        let refs: Vec<&[f32]> = ins32.iter().map(|v| &v[..]).collect();
        let want = eval::<f32>(g, &refs, batch).unwrap();
        let mut got: Vec<Vec<f32>> = want.iter().map(|w| vec![f32::NAN; w.len()]).collect();
        let mut outs: Vec<&mut [f32]> = got.iter_mut().map(|v| &mut v[..]).collect();
        k32.run_f32(&refs, &mut outs, batch).unwrap();
        for (j, (o, w)) in got.iter().zip(&want).enumerate() {
            let differ = o
                .iter()
                .zip(w)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(differ, None, "{what}, batch {batch}, output {j}");
        }
    }
}

/// Buffers held on the device (`Gpu::upload`/`alloc`) are bound where
/// they are: a call whose inputs and outputs are held — all of them, or
/// every other one, the rest host slices — computes what the same call on
/// host slices computes, to the bit, read back with `download`. Over both
/// program forms, arenas small enough to cut a call into chunks (held rows
/// copied at each chunk's offset, batch sums carried across chunks), and
/// outputs of batch-invariant nodes (repeated or summed on the host, then
/// written to their buffer).
#[test]
fn held_buffers_are_bound_where_they_are() {
    let Some(gpu) = gpu("held_buffers_are_bound_where_they_are") else {
        return;
    };
    let graphs = [all_derivatives(&mlp_graph(16)), invariant_graph()];
    // 2633 values a sample for the network's kernel: 7 samples a chunk.
    let small = Gpu::with_arena_limit(20_000).unwrap();
    let mut forms: Vec<(Gpu, &str)> = both(&gpu).into_iter().collect();
    forms.push((small, "chunked"));
    for g in &graphs {
        for (gpu, form) in &forms {
            let k = gpu.compile(g, DType::F32).unwrap();
            for batch in BATCHES {
                let ins: Vec<Vec<f32>> = inputs_for(g, batch, batch as u64 + 3)
                    .iter()
                    .map(|v| v.iter().map(|&x| x as f32).collect())
                    .collect();
                let host = run_host(k.as_ref(), &ins, batch);
                for every in [1, 2] {
                    let held = run_held(gpu, k.as_ref(), &ins, batch, every);
                    for (j, (a, b)) in held.iter().zip(&host).enumerate() {
                        let same = a.len() == b.len()
                            && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(
                            same,
                            "{} ({form}), batch {batch}, every {every}: output {j}",
                            g.name
                        );
                    }
                }
            }
        }
    }
}

fn run_host(k: &dyn ebm::backend::Kernel, ins: &[Vec<f32>], batch: usize) -> Vec<Vec<f32>> {
    let refs: Vec<&[f32]> = ins.iter().map(|v| &v[..]).collect();
    let mut outs = output_buffers(k.graph(), batch);
    let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| &mut v[..]).collect();
    k.run_f32(&refs, &mut o, batch).unwrap();
    outs
}

fn output_buffers(g: &Graph, batch: usize) -> Vec<Vec<f32>> {
    g.outputs
        .iter()
        .map(|o| {
            let n = ebm::ir::numel(g.shape(o.node));
            match o.reduce {
                BatchReduce::PerSample => vec![f32::NAN; n * batch],
                BatchReduce::Sum => vec![f32::NAN; n],
            }
        })
        .collect()
}

/// The call with every `every`-th input and output held on the device.
fn run_held(
    gpu: &Gpu,
    k: &dyn ebm::backend::Kernel,
    ins: &[Vec<f32>],
    batch: usize,
    every: usize,
) -> Vec<Vec<f32>> {
    use ebm::backend::{Arg, Buffer, Dest, HostData};
    let held_in: Vec<Option<Buffer>> = (ins.iter().enumerate())
        .map(|(i, v)| (i % every == 0).then(|| gpu.upload(HostData::F32(v)).unwrap()))
        .collect();
    let args: Vec<Arg<'_>> = ins
        .iter()
        .zip(&held_in)
        .map(|(v, h)| h.as_ref().map_or(Arg::F32(v), Arg::Buffer))
        .collect();
    let mut host = output_buffers(k.graph(), batch);
    let mut held_out: Vec<Option<Buffer>> = (host.iter().enumerate())
        .map(|(j, v)| (j % every == 0).then(|| gpu.alloc(v.len(), DType::F32).unwrap()))
        .collect();
    {
        let mut dests: Vec<Dest<'_>> = host
            .iter_mut()
            .zip(held_out.iter_mut())
            .map(|(v, h)| match h {
                Some(b) => Dest::Buffer(b),
                None => Dest::F32(v),
            })
            .collect();
        k.run_args(&args, &mut dests, batch).unwrap();
    }
    for (v, h) in host.iter_mut().zip(&held_out) {
        if let Some(b) = h {
            assert!(matches!(b, Buffer::Held(_)));
            *v = gpu.download(b).unwrap().iter().map(|&x| x as f32).collect();
        }
    }
    host
}

/// A shared matrix times a per-sample vector (`W·x`, the backward product
/// through a layer) is the tiled product transposed.
#[test]
fn shared_matrix_times_vector_is_tiled_too() {
    let Some(gpu) = gpu("shared_matrix_times_vector_is_tiled_too") else {
        return;
    };
    for (m, k) in [(128, 128), (70, 37), (16, 16), (129, 130), (8, 64)] {
        let mut g = Graph::new("product");
        let w = g.input_node("W", vec![m, k], InputKind::Shared);
        let x = g.input_node("x", vec![k], InputKind::Sample);
        let y = g.matmul(w, x);
        g.add_output("y", y, BatchReduce::PerSample);
        let text = ebm::backend::gpu::wgsl_text(&g).unwrap();
        let tiled = m >= MIN_TILED && k >= MIN_TILED;
        assert_eq!(text.contains(", tiled: "), tiled, "{m}×{k}: {text}");
        bitwise(&gpu, &g, &BATCHES, &format!("{m}×{k} · {k}"));
    }
}

/// A product of two per-sample operands summed over the batch (a weight's
/// gradient) is computed straight into the sum's accumulators — never
/// stored per sample — in the interpreter's order: each sample's product
/// from 0 in contraction order, then the samples in order, carried across
/// chunks.
#[test]
fn batch_summed_products_match_the_interpreter_bit_for_bit() {
    let Some(gpu) = gpu("batch_summed_products_match_the_interpreter_bit_for_bit") else {
        return;
    };
    for (m, k, n) in [(128, 1, 128), (2, 1, 128), (3, 5, 4), (1, 7, 1)] {
        let mut g = Graph::new("outer");
        let a = g.input_node("a", vec![m, k], InputKind::Sample);
        let b = g.input_node("b", vec![k, n], InputKind::Sample);
        let y = g.matmul(a, b);
        g.add_output("sum", y, BatchReduce::Sum);
        let text = ebm::backend::gpu::wgsl_text(&g).unwrap();
        assert!(text.contains("batch-summed matmul"), "{text}");
        assert!(
            !text.contains("batch sum ->"),
            "no per-sample products to sum: {text}"
        );
        let per_sample = format!("{} values per sample", m * k + k * n);
        assert!(
            text.contains(&per_sample),
            "only the inputs per sample: {text}"
        );
        let what = format!("Σ_b [{m},{k}]·[{k},{n}]");
        bitwise(&gpu, &g, &BATCHES, &what);
        // Chunks of a few samples: the sums carry from chunk to chunk.
        let small = Gpu::with_arena_limit(m * n + 4 * (m * k + k * n)).unwrap();
        bitwise(&small, &g, &[3, 64], &format!("{what} in chunks"));
    }
}

/// Long chains of elementwise ops and nested views compile to bounded
/// shaders (inlined expressions nest at most a few levels; re-indexing is
/// bound to `let`s, not copied) and still match the interpreter.
#[test]
fn long_chains_of_elementwise_ops_and_views() {
    let Some(gpu) = gpu("long_chains_of_elementwise_ops_and_views") else {
        return;
    };
    let mut g = Graph::new("chain");
    let mut y = g.input_node("x", vec![4, 3], InputKind::Sample);
    for k in 0..400 {
        y = g.transpose(y, &[1, 0]);
        y = g.unary(
            if k % 2 == 0 {
                UnaryOp::Tanh
            } else {
                UnaryOp::Sin
            },
            y,
        );
    }
    g.add_output("y", y, BatchReduce::PerSample);
    let text = ebm::backend::gpu::wgsl_text(&g).unwrap();
    assert!(text.len() < 1 << 20, "{} bytes of WGSL", text.len());
    check_all(&gpu, &g, F32_RTOL);
}

#[test]
fn f64_is_refused_with_a_message_naming_f32() {
    let Some(gpu) = gpu("f64_is_refused_with_a_message_naming_f32") else {
        return;
    };
    let err = match gpu.compile(&unary_graph(UnaryOp::Exp), DType::F64) {
        Err(e) => e,
        Ok(_) => panic!("f64 compiled on the GPU"),
    };
    assert!(matches!(err, BackendError::UnsupportedDType { .. }));
    assert!(err.to_string().contains("f32"), "{err}");
}

/// A malformed graph is refused by the verifier before code generation.
#[test]
fn the_verifier_runs_before_code_generation() {
    let Some(gpu) = gpu("the_verifier_runs_before_code_generation") else {
        return;
    };
    let mut g = unary_graph(UnaryOp::Exp);
    g.outputs[0].node = ebm::ir::NodeId(999);
    assert!(matches!(
        gpu.compile(&g, DType::F32),
        Err(BackendError::InvalidIr(_))
    ));
}

fn ebm(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args(args)
        .output()
        .unwrap()
}

fn json_numbers(text: &str) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let mut out = vec![];
    for key in ["energy", "grad", "hvp"] {
        match &v[key] {
            serde_json::Value::Number(n) => out.push(n.as_f64().unwrap()),
            serde_json::Value::Array(a) => out.extend(a.iter().map(|n| n.as_f64().unwrap())),
            other => panic!("{key}: {other}"),
        }
    }
    out
}

/// `ebm eval --backend gpu --dtype f32 --json` prints the fields the CPU
/// backend prints, agreeing to f32 accuracy.
#[test]
fn eval_on_the_gpu_matches_the_cpu() {
    if gpu("eval_on_the_gpu_matches_the_cpu").is_none() {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    for (file, energy, at, v) in [
        ("examples/banana.ebm", "banana", "0.5,1.0", "1,0"),
        ("examples/gmm8.ebm", "gmm", "0.3,-1.2", "0.5,2"),
        ("examples/mlp.ebm", "net", "0.1,0.2", "1,1"),
    ] {
        let path = format!("{root}/{file}");
        let run = |backend: &str| {
            let o = ebm(&[
                "eval",
                &path,
                "--energy",
                energy,
                "--at",
                at,
                "--grad",
                "--hvp",
                v,
                "--dtype",
                "f32",
                "--json",
                "--backend",
                backend,
            ]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{file} on {backend}: {err}");
            json_numbers(&String::from_utf8_lossy(&o.stdout))
        };
        let (cpu, gpu) = (run("cpu"), run("gpu"));
        assert_eq!(cpu.len(), gpu.len());
        for (c, g) in cpu.iter().zip(&gpu) {
            assert!(close(*g, *c, 1e-4), "{file}: gpu {g} vs cpu {c}");
        }
    }
}

/// The default dtype (f64) on the GPU is a clear error naming f32.
#[test]
fn f64_on_the_gpu_names_f32() {
    if gpu("f64_on_the_gpu_names_f32").is_none() {
        return;
    }
    let path = format!("{}/examples/banana.ebm", env!("CARGO_MANIFEST_DIR"));
    let o = ebm(&[
        "eval",
        &path,
        "--energy",
        "banana",
        "--at",
        "0,0",
        "--backend",
        "gpu",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--dtype f32"), "{err}");
}

/// A run whose optimiser state held on the device (with the host's) would
/// pass the memory limit is refused before its first iteration, naming
/// the device; the same run on the CPU is not refused for its optimiser.
#[test]
fn resident_training_state_is_counted_before_the_run() {
    if gpu("resident_training_state_is_counted_before_the_run").is_none() {
        return;
    }
    let (dir, file) = scratch(
        "state-size",
        "g.ebm",
        "energy e(x: [2]) = sum(mlp(x, [200, 128, 1]))\n",
    );
    let file = file.to_string_lossy();
    let train = |backend: &str, out: &str| {
        let out = dir.join(out);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_ebm"))
            .env("EBM_MAX_MEMORY", "2M")
            .env("EBM_THREADS", "1")
            .args([
                "train", &file, "--energy", "e", "--iters", "2", "--batch", "8",
            ])
            .args(["--data", "toy:two_moons:1000", "--dtype", "f32"])
            .args(["--backend", backend, "--out", &out.to_string_lossy()])
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            out,
        )
    };
    let (ok, err, out) = train("gpu", "gpu");
    assert!(!ok && err.contains("on the host and the device"), "{err}");
    assert!(!out.exists(), "a refused run wrote {}", out.display());
    let (ok, err, _) = train("cpu", "cpu");
    assert!(ok, "{err}");
}

/// Every sampler (all seven) runs on the GPU backend, names the device,
/// and samples a standard 2-d Gaussian: mean and variance within five
/// Monte-Carlo standard errors (from the run's ESS) of the target's.
#[test]
fn every_sampler_runs_on_the_gpu() {
    if gpu("every_sampler_runs_on_the_gpu").is_none() {
        return;
    }
    let (dir, file) = scratch(
        "samplers",
        "g.ebm",
        "energy g(x: [2]) = (x[0]^2 + x[1]^2) / 2\n",
    );
    // Short trajectories: each leapfrog step is a kernel call. ULA with
    // step h = 0.1 on N(0, 1) is stationary at variance 1/(1 − h/4);
    // BAOAB's positions are exact for a Gaussian.
    let ula_var = 1.0 / (1.0 - 0.1 / 4.0);
    for (sampler, extra, want_var) in [
        ("ula", vec![], ula_var),
        ("mala", vec![], 1.0),
        ("rwmh", vec![], 1.0),
        ("hmc", vec!["--leapfrog", "4"], 1.0),
        ("nuts", vec!["--max-depth", "3"], 1.0),
        ("pt", vec!["--ladder", "1,2"], 1.0),
        ("uld", vec!["--friction", "2"], 1.0),
    ] {
        let out = dir.join(format!("{sampler}.csv"));
        let mut args = vec![
            "sample",
            file.to_str().unwrap(),
            "--energy",
            "g",
            "--sampler",
            sampler,
            "--backend",
            "gpu",
            "--dtype",
            "f32",
            "--chains",
            "64",
            "--warmup",
            "150",
            "--steps",
            "150",
            "--step",
            "0.1",
            "--seed",
            "3",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let o = ebm(&args);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{sampler}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout.contains("device: "), "{sampler}: {stdout}");
        // Within 5 Monte-Carlo standard errors (from each sample's ESS) of
        // the target's moments.
        let d = ebm::sample::io::read_csv(&out).unwrap();
        for k in 0..2 {
            let x = d.coord(k);
            let m = x.iter().sum::<f64>() / x.len() as f64;
            let se = ebm::stats::mcse_mean(&x, d.chains);
            assert!(m.abs() < 5.0 * se, "{sampler} x.{k}: mean {m} ± {se}");
            let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64;
            let sv = ebm::stats::mcse_variance(&x, d.chains);
            assert!(
                (var - want_var).abs() < 5.0 * sv,
                "{sampler} x.{k}: variance {var} ± {sv}, want {want_var}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A fresh folder for one test, `ebm-gpu-NAME-PID` in the temporary
/// directory, holding `file` with `text`: the folder and the file's path.
fn scratch(name: &str, file: &str, text: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("ebm-gpu-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// The values columns (`x.*`) of a sample CSV, row by row.
fn draws_of(path: &std::path::Path) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let cols: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].starts_with("x."))
        .collect();
    rows.flat_map(|r| {
        let f: Vec<&str> = r.split(',').collect();
        cols.iter()
            .map(|&c| f[c].parse::<f64>().unwrap())
            .collect::<Vec<_>>()
    })
    .collect()
}

/// ULA and ULD keep their chains on the device for a whole window (noise
/// drawn there from the host generator's formula), through `ebm sample`
/// and (ULA) a script's `sample(.., backend = "gpu")`: the draws agree with
/// the CPU's f32 run of the same seed value for value (to f32 rounding of
/// fused products; on lavapipe they are identical), including a chain that
/// escapes and is frozen at the same iteration. ULD carries four buffers
/// (position, velocity, gradient, energy); its escaping chain's energy
/// overflows while its position is still finite, so a guard that moved
/// some of them and kept others would leave a different last point.
#[test]
fn unadjusted_langevin_on_the_gpu_draws_what_the_cpu_draws() {
    if gpu("unadjusted_langevin_on_the_gpu_draws_what_the_cpu_draws").is_none() {
        return;
    }
    let (dir, file) = scratch(
        "ula",
        "g.ebm",
        "energy cliff(x: [3]) = sum(where(x > 5, -x^4, 0.5 * x^2))\n",
    );
    let init = dir.join("init.npy");
    let x0: Vec<f64> = (0..24)
        .map(|i| if i == 7 { 4.99 } else { (i as f64 * 0.7).sin() })
        .collect();
    ebm::data::npy::write_f64(&init, &[8, 3], &x0).unwrap();
    let run = |sampler: &str, backend: &str| {
        let out = dir.join(format!("{sampler}-{backend}.csv"));
        let o = ebm(&[
            "sample",
            file.to_str().unwrap(),
            "--energy",
            "cliff",
            "--sampler",
            sampler,
            "--step",
            "0.05",
            "--chains",
            "8",
            "--warmup",
            "300",
            "--steps",
            "40",
            "--seed",
            "11",
            "--init",
            init.to_str().unwrap(),
            "--backend",
            backend,
            "--dtype",
            "f32",
            "--out",
            out.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (draws_of(&out), stdout)
    };
    for sampler in ["ula", "uld"] {
        let (cpu, cpu_out) = run(sampler, "cpu");
        let (gpu, gpu_out) = run(sampler, "gpu");
        assert!(cpu_out.contains("frozen chains 1"), "{sampler}: {cpu_out}");
        let frozen = |s: &str| s.lines().find(|l| l.contains("escaped")).map(str::to_owned);
        assert_eq!(frozen(&cpu_out), frozen(&gpu_out), "{sampler}: {gpu_out}");
        assert_eq!(cpu.len(), gpu.len());
        for (i, (a, b)) in gpu.iter().zip(&cpu).enumerate() {
            let close = (a - b).abs() <= 1e-4 * (b.abs() + 1.0) || a.is_nan() && b.is_nan();
            assert!(close, "{sampler} value {i}: gpu {a}, cpu {b}");
        }
    }
    // The same run as a script statement.
    let script = |backend: &str| {
        let csv = dir.join(format!("script-{backend}.csv"));
        let src = dir.join(format!("script-{backend}.ebm"));
        std::fs::write(
            &src,
            format!(
                "energy g(x: [2]) = 0.5 * sqnorm(x)\n\
                 let s = sample(g, sampler = ula(step = 0.1), chains = 16, warmup = 100, steps = 20, seed = 5, backend = \"{backend}\", dtype = \"f32\")\n\
                 save(s, \"{}\")\n",
                csv.display()
            ),
        )
        .unwrap();
        let o = ebm(&["run", src.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(stdout.contains("device: "), backend == "gpu", "{stdout}");
        draws_of(&csv)
    };
    let (c, g) = (script("cpu"), script("gpu"));
    assert_eq!(c.len(), 16 * 20 * 2);
    for (a, b) in g.iter().zip(&c) {
        assert!((a - b).abs() <= 1e-4 * (b.abs() + 1.0), "gpu {a}, cpu {b}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The value of `# key = value` in a draws file's header.
fn header_value(path: &std::path::Path, key: &str) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# ")?.strip_prefix(key)?.strip_prefix(" = "))
        .unwrap_or_else(|| panic!("no {key} in the header"));
    line.trim().parse().unwrap()
}

/// MALA, the random walk and static HMC run as windows of whole
/// transitions on the device (proposal or trajectory, decision and
/// bookkeeping outputs; the uniforms, HMC's step jitter's too, drawn there
/// from the host's generator).
///
/// Sampling, with a fixed step: the draws and the acceptance rate agree
/// with the CPU's f32 run of the same seed, over more iterations than one
/// window holds. (The device decides in f32 where the host decides in f64,
/// so a chain may part from the CPU's at a decision on the edge; with this
/// seed none does.)
///
/// Warm-up: each chain's step adapts on the device, the dual averaging in
/// f32 where the CPU's runs in f64, so the chains part by rounding and the
/// runs agree in distribution: the median adapted step within 3% and the
/// acceptance rate within 0.02 (observed: 0.2% and 0.005, 256 chains).
#[test]
fn metropolis_windows_on_the_gpu_draw_what_the_cpu_draws() {
    if gpu("metropolis_windows_on_the_gpu_draw_what_the_cpu_draws").is_none() {
        return;
    }
    let (dir, file) = scratch(
        "mh",
        "b.ebm",
        "energy banana(x: [2]) = 0.5 * x[0]^2 + 2 * (x[1] - x[0]^2)^2\n\
         energy tilted(x: [2]) = 0.5 * x[0]^2 + 0.5 * (x[1] - 0.5 * x[0])^2\n",
    );
    // HMC on a Gaussian: on the banana its adapted step makes trajectories
    // in the tails unstable, and whether ΔH passes the divergence bound
    // there turns on the last bit of the jittered step, which the device
    // computes in f32 from a 24-bit uniform where the host computes it in
    // f64 from a 53-bit one (on the Gaussian the chains agree to 5e-6).
    for (sampler, energy, step, extra) in [
        ("mala", "banana", "0.5", vec![]),
        ("rwmh", "banana", "1.0", vec![]),
        ("hmc", "tilted", "1.0", vec!["--leapfrog", "5"]),
    ] {
        let run = |backend: &str, chains: &str, warmup: &str, steps: &str| {
            let out = dir.join(format!("{sampler}-{backend}-{warmup}.csv"));
            let mut args = vec![
                "sample",
                file.to_str().unwrap(),
                "--energy",
                energy,
                "--sampler",
                sampler,
                "--chains",
                chains,
                "--warmup",
                warmup,
                "--steps",
                steps,
                "--seed",
                "3",
                "--backend",
                backend,
                "--dtype",
                "f32",
                "--out",
                out.to_str().unwrap(),
            ];
            if warmup == "0" {
                args.extend(["--step", step]);
            }
            args.extend(&extra);
            let o = ebm(&args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            out
        };
        let (cpu, gpu) = (run("cpu", "16", "0", "700"), run("gpu", "16", "0", "700"));
        let (cpu_rate, gpu_rate) = (
            header_value(&cpu, "accept_rate"),
            header_value(&gpu, "accept_rate"),
        );
        let (cpu, gpu) = (draws_of(&cpu), draws_of(&gpu));
        assert_eq!(cpu.len(), 16 * 700 * 2);
        assert_eq!(cpu.len(), gpu.len());
        for (i, (a, b)) in gpu.iter().zip(&cpu).enumerate() {
            let close = (a - b).abs() <= 1e-4 * (b.abs() + 1.0);
            assert!(close, "{sampler} value {i}: gpu {a}, cpu {b}");
        }
        assert!(
            (gpu_rate - cpu_rate).abs() <= 1e-5,
            "{sampler}: acceptance {gpu_rate} on the GPU, {cpu_rate} on the CPU"
        );
        assert!(cpu_rate > 0.2 && cpu_rate < 0.95, "{sampler}: {cpu_rate}");
        let (cpu, gpu) = (
            run("cpu", "256", "150", "200"),
            run("gpu", "256", "150", "200"),
        );
        let median = |p: &std::path::Path| header_value(p, "step_size_median");
        let rate = |p: &std::path::Path| header_value(p, "accept_rate");
        let (a, b) = (median(&gpu), median(&cpu));
        assert!(
            (a / b - 1.0).abs() <= 0.03,
            "{sampler}: median adapted step {a} on the GPU, {b} on the CPU"
        );
        let (a, b) = (rate(&gpu), rate(&cpu));
        assert!(
            (a - b).abs() <= 0.02,
            "{sampler}: acceptance after warm-up {a} on the GPU, {b} on the CPU"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The `loss`, `e_pos`, `e_neg`, `grad_norm` and `ce` columns of a
/// training run's metrics.csv, iteration by iteration (NaN where empty).
fn training_metrics(dir: &std::path::Path) -> Vec<[f64; 5]> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let cols = ["loss", "e_pos", "e_neg", "grad_norm", "ce"].map(col);
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            cols.map(|c| f[c].parse().unwrap_or(f64::NAN))
        })
        .collect()
}

/// Every training method and JEM through `ebm train`/`ebm jem --backend
/// gpu` follows the CPU's f32 run of the same seed: the same noise, the
/// same replay buffer and the same (f64) optimiser, so each iteration's
/// loss, energies, gradient norm and cross-entropy agree to f32 rounding.
#[test]
fn training_on_the_gpu_follows_the_cpu() {
    if gpu("training_on_the_gpu_follows_the_cpu").is_none() {
        return;
    }
    let (dir, file) = scratch(
        "train",
        "m.ebm",
        "param W1: [2, 16] ~ normal(0, 0.3)\n\
         param b1: [16] ~ normal(0, 0.1)\n\
         param W2: [16, 1] ~ normal(0, 0.3)\n\
         energy e(x: [2]) = (swish(x @ W1 + b1) @ W2)[0] + 0.05 * sum(x^2)\n",
    );
    let file = file.to_str().unwrap();
    let jem_model = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/jem/digits.ebm");
    let digits = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/digits_train.csv"
    );
    let common = [
        "--iters",
        "5",
        "--batch",
        "32",
        "--seed",
        "1",
        "--heldout",
        "0",
        "--checkpoint-every",
        "0",
        "--eval-every",
        "0",
        "--dtype",
        "f32",
    ];
    let train = |method: &[&'static str]| {
        let mut a = vec![
            "train",
            file,
            "--energy",
            "e",
            "--data",
            "toy:two_moons:400",
        ];
        a.extend(["--sampler-steps", "5", "--step", "0.01", "--method"]);
        a.extend(method);
        a
    };
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("pcd", train(&["pcd"])),
        ("cd", train(&["cd"])),
        ("icd", train(&["icd"])),
        ("pcd-mala", train(&["pcd", "--sampler", "mala"])),
        (
            "pcd-hmc",
            train(&["pcd", "--sampler", "hmc", "--leapfrog", "3"]),
        ),
        ("sm", train(&["sm"])),
        ("ssm", train(&["ssm"])),
        ("dsm", train(&["dsm"])),
        ("nce", train(&["nce"])),
        (
            "jem",
            vec![
                "jem",
                jem_model,
                "--model",
                "f",
                "--data",
                digits,
                "--label",
                "label",
                "--scale",
                "range:-1,1",
                "--sgld-steps",
                "3",
            ],
        ),
    ];
    for (name, args) in runs {
        let mut metrics = vec![];
        for backend in ["cpu", "gpu"] {
            let out = dir.join(format!("{name}-{backend}"));
            let mut a = args.clone();
            a.extend(common);
            a.extend(["--backend", backend, "--out", out.to_str().unwrap()]);
            let o = ebm(&a);
            assert!(
                o.status.success(),
                "{name} on {backend}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let stdout = String::from_utf8_lossy(&o.stdout);
            assert_eq!(stdout.contains("device: "), backend == "gpu", "{stdout}");
            metrics.push(training_metrics(&out));
        }
        let (cpu, gpu) = (&metrics[0], &metrics[1]);
        assert_eq!(cpu.len(), 5, "{name}");
        assert_eq!(cpu.len(), gpu.len(), "{name}");
        for (it, (c, g)) in cpu.iter().zip(gpu).enumerate() {
            for (k, (c, g)) in c.iter().zip(g).enumerate() {
                let agree = (c.is_nan() && g.is_nan()) || (c - g).abs() <= 1e-4 * (c.abs() + 1.0);
                assert!(agree, "{name} iteration {it} column {k}: cpu {c}, gpu {g}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `WGPU_ADAPTER_NAME` chooses the adapter by (part of) its name, in any
/// case; a name no adapter has is an error that lists the adapters.
#[test]
fn an_adapter_is_chosen_by_name() {
    if gpu("an_adapter_is_chosen_by_name").is_none() {
        return;
    }
    let (dir, file) = scratch(
        "adapter",
        "g.ebm",
        "energy g(x: [2]) = (x[0]^2 + x[1]^2) / 2\n",
    );
    let run = |name: &str| {
        let out = dir.join("draws.csv");
        let args = [
            "sample",
            file.to_str().unwrap(),
            "--energy",
            "g",
            "--backend",
            "gpu",
            "--dtype",
            "f32",
            "--chains",
            "4",
            "--warmup",
            "10",
            "--steps",
            "10",
            "--out",
            out.to_str().unwrap(),
        ];
        std::process::Command::new(env!("CARGO_BIN_EXE_ebm"))
            .args(args)
            .env("WGPU_ADAPTER_NAME", name)
            .output()
            .unwrap()
    };
    // The device the tests run on, by the first word of its name.
    let found = String::from_utf8_lossy(&run("").stdout).to_string();
    let device = found
        .lines()
        .find_map(|l| l.trim().strip_prefix("device: "))
        .unwrap_or_else(|| panic!("{found}"))
        .to_string();
    let first = device.split_whitespace().next().unwrap();
    let o = run(&first.to_uppercase());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(&format!("device: {device}")), "{stdout}");
    let o = run("no such adapter");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("`no such adapter` (WGPU_ADAPTER_NAME)") && stderr.contains(first),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The optimiser's update graph (`train::optim::update_graph`) runs on the
/// device with its state held there: three Adam updates (clipped, with
/// weight decay and an EMA), each reading the held buffers the one before
/// wrote and writing new ones — every output held, so no call waits for the
/// device, and only the norm and `bad` are downloaded after each — agree
/// with the f32 interpreter (the device's `sqrt` and division may round otherwise).
#[test]
fn an_optimiser_update_runs_on_held_state() {
    use ebm::backend::{Arg, Buffer, Dest, HostData};
    use ebm::train::optim::{OptimConfig, Rule, Slot, UpdateLayout, update_graph, update_scalars};
    let Some(gpu) = gpu("an_optimiser_update_runs_on_held_state") else {
        return;
    };
    let cfg = OptimConfig {
        rule: Rule::ADAM,
        clip_norm: Some(0.5),
        weight_decay: 0.01,
        ema: Some(0.9),
        ..OptimConfig::default()
    };
    let shapes = vec![vec![16, 8], vec![8], vec![]];
    let g = update_graph(&cfg, &shapes);
    let layout = UpdateLayout::new(&cfg);
    let k = gpu.compile(&g, DType::F32).unwrap();
    let values = |i: usize, salt: f32| -> Vec<f32> {
        let n = ebm::ir::numel(&shapes[i]);
        (0..n).map(|j| ((j as f32 + salt) * 0.37).sin()).collect()
    };
    // Per parameter, the state the graph carries (p, m, v, ema), on the
    // host for the interpreter and held on the device.
    let carried = layout.outputs();
    let mut host: Vec<Vec<Vec<f32>>> = (0..shapes.len())
        .map(|i| {
            let p = values(i, 1.0);
            let zeros = vec![0.0; p.len()];
            vec![p.clone(), zeros.clone(), zeros, p]
        })
        .collect();
    let mut held: Vec<Vec<Buffer>> = (host.iter())
        .map(|s| {
            s.iter()
                .map(|v| gpu.upload(HostData::F32(v)).unwrap())
                .collect()
        })
        .collect();
    for t in 1..=3u64 {
        let scalars: Vec<f32> = (update_scalars(&cfg, t, 0.01).iter())
            .map(|&v| v as f32)
            .collect();
        let grads: Vec<Vec<f32>> = (0..shapes.len())
            .map(|i| values(i, t as f32 * 5.0))
            .collect();
        let held_grads: Vec<Buffer> = (grads.iter())
            .map(|v| gpu.upload(HostData::F32(v)).unwrap())
            .collect();
        let mut host_in: Vec<&[f32]> = scalars.chunks(1).collect();
        let mut args: Vec<Arg<'_>> = scalars.chunks(1).map(Arg::F32).collect();
        for i in 0..shapes.len() {
            for slot in layout.inputs() {
                let (h, d) = match slot {
                    Slot::G => (&grads[i], &held_grads[i]),
                    s => {
                        let at = carried.iter().position(|&c| c == s).unwrap();
                        (&host[i][at], &held[i][at])
                    }
                };
                host_in.push(h);
                args.push(Arg::Buffer(d));
            }
        }
        let want = eval::<f32>(&g, &host_in, 1).unwrap();
        let mut outs: Vec<Buffer> = (want.iter())
            .map(|w| gpu.alloc(w.len(), DType::F32).unwrap())
            .collect();
        {
            let mut dests: Vec<Dest<'_>> = outs.iter_mut().map(Dest::Buffer).collect();
            k.run_args(&args, &mut dests, 1).unwrap();
        }
        let mut outs = outs.into_iter();
        for i in 0..shapes.len() {
            let at = carried.len() * i;
            host[i] = want[at..at + carried.len()].to_vec();
            held[i] = outs.by_ref().take(carried.len()).collect();
        }
        let stats: Vec<f64> = outs.map(|b| gpu.download(&b).unwrap()[0]).collect();
        let norm = want[layout.norm_index(shapes.len())][0] as f64;
        assert!(
            close(stats[0], norm, 1e-5),
            "step {t}: norm {} vs {norm}",
            stats[0]
        );
        assert_eq!(stats[1], 0.0, "step {t}: every parameter finite");
        assert!(norm > 0.5, "the clip is active");
    }
    for (i, (h, d)) in host.iter().zip(&held).enumerate() {
        for (slot, (want, buf)) in carried.iter().zip(h.iter().zip(d)) {
            let got = gpu.download(buf).unwrap();
            let top = want.iter().fold(1e-3f64, |m, v| m.max(v.abs() as f64));
            for (a, b) in got.iter().zip(want) {
                assert!(
                    (a - *b as f64).abs() <= 1e-5 * top,
                    "{slot:?}{i}: {a} vs {b}"
                );
            }
        }
    }
}

/// Training on the GPU keeps θ, Adam's moments and the EMA on the device
/// (`train::resident`): a run stopped after 7 iterations, its state brought
/// home (`Trainer::sync`) and continued by a fresh trainer on a fresh
/// store, ends with the same bits as 15 iterations straight through — for
/// cd and pcd (their gradient left on the device; pcd's replay buffer
/// too, brought home by `sync`) and icd (its gradient assembled on the
/// host).
#[test]
fn training_state_held_on_the_gpu_resumes_bit_for_bit() {
    use ebm::train::{Method, TrainConfig, Trainer};
    let Some(gpu) = gpu("training_state_held_on_the_gpu_resumes_bit_for_bit") else {
        return;
    };
    let gpu: Arc<dyn Backend> = Arc::new(gpu);
    let data = ebm::data::rng::normal(3, 600);
    let run = |method| {
        let mut cfg = TrainConfig::new(method);
        (cfg.iters, cfg.batch, cfg.sampler_steps, cfg.seed) = (15, 32, 5, 17);
        cfg.buffer.size = 200;
        cfg.optim.ema = Some(0.9);
        cfg
    };
    for method in [Method::Cd, Method::Pcd, Method::Icd] {
        let straight = train_energy(&gpu);
        let mut t = Trainer::new(&straight, &data, run(method)).unwrap();
        assert!(t.on_device());
        while !t.done() {
            t.step().unwrap();
        }
        t.sync().unwrap();
        let end_state = t.state.clone();

        let first = train_energy(&gpu);
        let mut t1 = Trainer::new(&first, &data, run(method)).unwrap();
        for _ in 0..7 {
            t1.step().unwrap();
        }
        t1.sync().unwrap();
        let saved = (train_params(&first), t1.state.clone());
        let second = train_energy(&gpu);
        for (name, v) in second.param_names().iter().zip(&saved.0) {
            second.set_param(name, v).unwrap();
        }
        let mut t2 = Trainer::new(&second, &data, run(method))
            .unwrap()
            .with_state(saved.1)
            .unwrap();
        while !t2.done() {
            t2.step().unwrap();
        }
        t2.sync().unwrap();
        let bits = |e| -> Vec<u64> {
            train_params(e)
                .iter()
                .flatten()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(
            bits(&straight),
            bits(&second),
            "{method:?}: parameters differ"
        );
        assert_ne!(
            bits(&straight),
            bits(&first),
            "{method:?}: training moved nothing"
        );
        assert_eq!(end_state, t2.state, "{method:?}: state differs");
        assert!(
            end_state.optim.ema.as_ref().unwrap()[0]
                .iter()
                .any(|&v| v != 0.0)
        );
    }
}

/// On the device the guard rejects an update by dropping its buffers: at
/// a learning rate of 1e6 every rolled-back iteration leaves the
/// parameters' bits as they were, the others move them, and the run ends
/// finite.
#[test]
fn a_rejected_update_on_the_gpu_leaves_the_parameters() {
    use ebm::train::{Method, TrainConfig, Trainer};
    let Some(gpu) = gpu("a_rejected_update_on_the_gpu_leaves_the_parameters") else {
        return;
    };
    let gpu: Arc<dyn Backend> = Arc::new(gpu);
    let data = ebm::data::rng::normal(3, 600);
    let e = train_energy(&gpu);
    let mut cfg = TrainConfig::new(Method::Pcd);
    (cfg.iters, cfg.batch, cfg.sampler_steps, cfg.seed) = (40, 32, 5, 17);
    cfg.optim.lr = 1e6;
    let mut t = Trainer::new(&e, &data, cfg).unwrap();
    let (mut kept, mut moved) = (0, 0);
    while !t.done() {
        let before = train_params(&e);
        let r = t.step().unwrap();
        let after = train_params(&e);
        match r.rollback {
            Some(_) => {
                assert_eq!(before, after, "iteration {}", r.it);
                kept += 1;
            }
            None => {
                assert_ne!(before, after, "iteration {}", r.it);
                moved += 1;
            }
        }
    }
    assert!(kept > 0 && moved > 0, "{kept} rolled back, {moved} applied");
    assert_eq!(kept as u64, t.state.rollbacks);
    assert!(train_params(&e).iter().flatten().all(|v| v.is_finite()));
}

/// A small MLP energy on `gpu`, in f32 (the trainer tests' energy).
fn train_energy(gpu: &Arc<dyn Backend>) -> ebm::runtime::CompiledEnergy {
    let src = "energy e(x: [2]) = sum(mlp(x, [8, 1], act = swish)) + 0.1 * sum(x^2)\n";
    let program = ebm::api::Program::from_source(src).unwrap();
    program.energy_with("e", gpu.clone(), DType::F32).unwrap()
}

fn train_params(e: &ebm::runtime::CompiledEnergy) -> Vec<Vec<f64>> {
    (e.param_names().iter())
        .map(|n| e.store().get(n).unwrap())
        .collect()
}

/// `Backend::copy_rows` on held buffers copies what the host's copies do:
/// runs of consecutive rows, a row moved to twice (the later move wins),
/// rows left alone; a move out of either buffer, or within one buffer, is
/// refused and copies nothing. A buffer larger than the device binds is
/// refused when it is made.
#[test]
fn rows_are_copied_on_the_device_as_on_the_host() {
    use ebm::backend::{Buffer, HostData, Interp};
    let Some(gpu) = gpu("rows_are_copied_on_the_device_as_on_the_host") else {
        return;
    };
    let width = 3;
    let src: Vec<f32> = (0..7 * width).map(|v| v as f32 + 0.5).collect();
    let dst: Vec<f32> = (0..5 * width).map(|v| -(v as f32)).collect();
    let moves = [(0, 0), (1, 1), (2, 2), (6, 1), (3, 4), (4, 4), (5, 3)];
    let mut host = Buffer::F32(dst.clone());
    Interp
        .copy_rows(&Buffer::F32(src.clone()), &mut host, width, &moves)
        .unwrap();
    let held_src = gpu.upload(HostData::F32(&src)).unwrap();
    let mut held = gpu.upload(HostData::F32(&dst)).unwrap();
    gpu.copy_rows(&held_src, &mut held, width, &moves).unwrap();
    let expect: Vec<f64> = host.f32s().unwrap().iter().map(|&v| v as f64).collect();
    assert_eq!(gpu.download(&held).unwrap(), expect);
    assert_eq!(
        &expect[width..2 * width],
        &[18.5, 19.5, 20.5],
        "the later move"
    );
    for bad in [[(7, 0)], [(0, 5)], [(usize::MAX, 0)]] {
        let err = gpu
            .copy_rows(&held_src, &mut held, width, &bad)
            .unwrap_err();
        assert!(matches!(err, BackendError::Buffers(_)), "{bad:?}: {err}");
    }
    let mut same = held.clone();
    assert!(gpu.copy_rows(&held, &mut same, width, &[(0, 1)]).is_err());
    assert_eq!(
        gpu.download(&held).unwrap(),
        expect,
        "refusals copy nothing"
    );
    let too_large = gpu.max_buffer_values() + 1;
    let err = gpu.alloc(too_large, DType::F32).unwrap_err();
    assert!(
        err.to_string().contains("larger than the GPU binds"),
        "{err}"
    );
}

/// With PCD (either replacement policy) and JEM on the GPU the replay
/// buffer lives on the device (gathered, moved and scattered there), and CD's negatives stay there
/// too; the same run with them kept on the host (`EBM_DEVICE_REPLAY=0`)
/// is the oracle: the same metrics,
/// parameters and checkpointed buffer, bit for bit, through checkpoints,
/// held-out evaluations and snapshots (which read the device's samples).
#[test]
fn the_replay_buffer_on_the_gpu_trains_as_on_the_host() {
    if gpu("the_replay_buffer_on_the_gpu_trains_as_on_the_host").is_none() {
        return;
    }
    let base = std::env::temp_dir().join(format!("ebm-gpu-replay-{}", std::process::id()));
    let pcd = [
        "train",
        "bench/workloads/mlp.ebm",
        "--energy",
        "mlp",
        "--data",
        "toy:eight_gaussians:2000",
        "--method",
        "pcd",
        "--sampler-steps",
        "5",
        "--reinit",
        "0.2",
    ];
    let jem = [
        "jem",
        "examples/jem/digits.ebm",
        "--model",
        "f",
        "--data",
        "examples/data/digits_train.csv",
        "--label",
        "label",
        "--scale",
        "range:-1,1",
        "--sgld-steps",
        "3",
        "--reinit",
        "0.2",
    ];
    let common = [
        "--iters",
        "12",
        "--batch",
        "64",
        "--buffer",
        "100",
        "--checkpoint-every",
        "5",
        "--eval-every",
        "4",
        "--snapshot-every",
        "6",
        "--dtype",
        "f32",
        "--backend",
        "gpu",
        "--out",
    ];
    let mut cd = pcd;
    cd[7] = "cd";
    let reservoir: Vec<&str> = pcd
        .iter()
        .copied()
        .chain(["--replace", "reservoir"])
        .collect();
    let runs = [
        ("pcd", &pcd[..]),
        ("pcd-reservoir", &reservoir[..]),
        ("cd", &cd[..]),
        ("jem", &jem[..]),
    ];
    for (name, args) in runs {
        let run = |host: bool| {
            let out = base.join(format!("{name}-{}", if host { "host" } else { "device" }));
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ebm"));
            cmd.args(args).args(common).arg(&out);
            if host {
                cmd.env("EBM_DEVICE_REPLAY", "0");
            }
            let o = cmd.output().unwrap();
            assert!(
                o.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            out
        };
        let (device, host) = (run(false), run(true));
        let bits =
            |m: Vec<[f64; 5]>| -> Vec<u64> { m.iter().flatten().map(|v| v.to_bits()).collect() };
        assert_eq!(
            bits(training_metrics(&device)),
            bits(training_metrics(&host)),
            "{name}: metrics"
        );
        let read = |dir: &std::path::Path, file: &str| std::fs::read(dir.join(file)).unwrap();
        assert_eq!(
            read(&device, "params.safetensors"),
            read(&host, "params.safetensors"),
            "{name}: parameters"
        );
        let (a, b) = (
            read(&device, "checkpoint.safetensors"),
            read(&host, "checkpoint.safetensors"),
        );
        let (a, b) = (
            safetensors::SafeTensors::deserialize(&a).unwrap(),
            safetensors::SafeTensors::deserialize(&b).unwrap(),
        );
        let mut names = a.names();
        names.sort();
        assert!(
            names.iter().any(|n| n.contains("buffer")),
            "{name}: {names:?}"
        );
        for tensor in names {
            assert_eq!(
                a.tensor(tensor).unwrap().data(),
                b.tensor(tensor).unwrap().data(),
                "{name}: {tensor}"
            );
        }
        let snapshot = device.join("samples_000006.png");
        assert!(snapshot.exists(), "{name}: {}", snapshot.display());
    }
    std::fs::remove_dir_all(&base).ok();
}
