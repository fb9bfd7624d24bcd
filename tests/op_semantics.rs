//! The op semantics table (`ebm::ir::op::SPECIAL_CASES`) against every
//! backend: each row is built into tiny graphs — operands as per-sample
//! scalars, inside longer batches, as feature vectors, as shared
//! (batch-invariant) inputs, as literals, mixed, and with the result
//! materialised for a second output — so the CPU backend's direct path, tile
//! program (vector lanes and scalar tails), fused program, array calls and
//! invariant program all see every special value. Each is run in f64 and f32
//! on `Interp` and `Cpu` and compared with the row's expectation (exact
//! results by bits). `docs/op-semantics.md` describes the table.

use ebm::backend::cpu::Cpu;
use ebm::backend::{Backend, DType, Interp};
use ebm::ir::op::{Expect, SPECIAL_CASES, SemOp, SpecialCase};
use ebm::ir::{Axes, BatchReduce, BinaryOp, Graph, InputKind, NodeId};

/// Where a row's operands come from and where the special values sit.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Per-sample operands of shape `[]`, batch 1.
    Scalar,
    /// Per-sample scalars in a batch of `batch`, the row's values at `at`,
    /// ordinary filler values elsewhere.
    Batch { batch: usize, at: &'static [usize] },
    /// Per-sample vectors of `n` features (batch 3), the row's values at
    /// feature positions `at`.
    Features { n: usize, at: &'static [usize] },
    /// Shared (batch-invariant) operands, batch 3.
    Shared,
    /// Literal operands (`Scalar` / `Const` nodes), batch 2.
    Literal,
    /// Operand 0 per-sample (batch 9, the row's value at rows 0, 4, 8),
    /// the others shared.
    Mixed,
}

const LAYOUTS: &[Layout] = &[
    Layout::Scalar,
    Layout::Batch {
        batch: 7,
        at: &[0, 3, 6],
    },
    Layout::Batch {
        batch: 33,
        at: &[0, 1, 5, 16, 31, 32],
    },
    Layout::Features {
        n: 7,
        at: &[0, 3, 6],
    },
    Layout::Features {
        n: 33,
        at: &[0, 2, 17, 32],
    },
    Layout::Shared,
    Layout::Literal,
    Layout::Mixed,
];

/// Ordinary values for the positions that do not hold the row's values.
fn filler(j: usize) -> f64 {
    [0.75, 1.25, -0.5, 2.0][j % 4]
}

/// A row's operands: `(values, is a vector)`. Elementwise rows have one
/// scalar operand per input; `ReduceMax` one vector; `DynIndex` the index
/// and the vector.
fn operands(row: &SpecialCase) -> Vec<Vec<f64>> {
    match row.op {
        SemOp::ReduceMax => vec![row.inputs.to_vec()],
        SemOp::DynIndex => vec![vec![row.inputs[0]], row.inputs[1..].to_vec()],
        _ => row.inputs.iter().map(|&x| vec![x]).collect(),
    }
}

/// Whether operand `j` of the row is a vector (its values are an axis).
fn is_vector(row: &SpecialCase, j: usize) -> bool {
    matches!(row.op, SemOp::ReduceMax) || (matches!(row.op, SemOp::DynIndex) && j == 1)
}

/// The row's op applied to operand nodes whose element shape is `elem`
/// (`[]`, or `[n]` for the feature layout of elementwise rows).
fn apply(g: &mut Graph, op: SemOp, args: &[NodeId], elem: &[usize]) -> NodeId {
    match op {
        SemOp::Unary(u) => g.unary(u, args[0]),
        SemOp::Binary(b) => g.binary(b, args[0], args[1]),
        SemOp::PowConst(c) => g.powc(args[0], c),
        SemOp::Select => g.select(args[0], args[1], args[2]),
        SemOp::ReduceMax => {
            // The vector is the last axis.
            let rank = g.shape(args[0]).len();
            g.reduce_max(args[0], Axes::of(&[rank - 1]))
        }
        SemOp::DynIndex => {
            // As `sema::check::dynamic_index` lowers `t[i]`.
            let (i, t) = (args[0], args[1]);
            let m = g.shape(t)[0];
            assert!(elem.is_empty());
            let iota = g.constant_tensor(vec![m], (0..m).map(|k| k as f64).collect::<Vec<f64>>());
            let ib = g.broadcast(i, &[m]);
            let ge = g.binary(BinaryOp::Ge, iota, ib);
            let le = g.binary(BinaryOp::Ge, ib, iota);
            let mask = g.binary(BinaryOp::Mul, ge, le);
            let picked = g.binary(BinaryOp::Mul, t, mask);
            g.reduce_sum(picked, Axes::of(&[0]))
        }
    }
}

/// A row built into a graph: its input data (f64), the batch, and the
/// positions of output 0 that must hold the row's result.
struct Built {
    g: Graph,
    data: Vec<Vec<f64>>,
    batch: usize,
    at: Vec<usize>,
}

/// One graph for `row` in `layout`. With
/// `materialise`, the result is also negated into a second output, so the
/// CPU backend gives it a buffer (tile program, array calls) instead of
/// running the direct path.
fn build(row: &SpecialCase, layout: Layout, materialise: bool, same: bool) -> Option<Built> {
    let mut ops = operands(row);
    let arity = ops.len();
    if same {
        // One operand node, read by every argument.
        ops.truncate(1);
    }
    let elementwise = !matches!(row.op, SemOp::ReduceMax | SemOp::DynIndex);
    let mut g = Graph::new("row");
    let mut args = vec![];
    let mut data = vec![];
    // The values of operand `j` at a "special" position and elsewhere.
    let value = |j: usize, special: bool| -> Vec<f64> {
        if special {
            ops[j].clone()
        } else if is_vector(row, j) && matches!(row.op, SemOp::DynIndex) {
            vec![filler(j); ops[j].len()]
        } else if is_vector(row, j) {
            (0..ops[j].len()).map(|k| filler(k) - 3.0).collect()
        } else {
            vec![filler(j)]
        }
    };
    let shape = |j: usize| -> Vec<usize> {
        if is_vector(row, j) {
            vec![ops[j].len()]
        } else {
            vec![]
        }
    };
    let (batch, check) = match layout {
        Layout::Scalar | Layout::Batch { .. } => {
            let (batch, at): (usize, &[usize]) = match layout {
                Layout::Batch { batch, at } => (batch, at),
                _ => (1, &[0]),
            };
            for j in 0..ops.len() {
                args.push(g.input_node(format!("x{j}"), shape(j), InputKind::Sample));
                data.push((0..batch).flat_map(|b| value(j, at.contains(&b))).collect());
            }
            (batch, at.to_vec())
        }
        Layout::Features { n, at } => {
            let batch = 3;
            if elementwise {
                for j in 0..ops.len() {
                    args.push(g.input_node(format!("x{j}"), vec![n], InputKind::Sample));
                    let one: Vec<f64> = (0..n).flat_map(|f| value(j, at.contains(&f))).collect();
                    data.push(one.repeat(batch));
                }
                let check = (0..batch)
                    .flat_map(|b| at.iter().map(move |&f| b * n + f))
                    .collect();
                (batch, check)
            } else if matches!(row.op, SemOp::ReduceMax) {
                // The row's elements spread over `n` slots padded with −inf
                // (the identity), in `[3, n]` reduced along axis 1.
                let k = ops[0].len();
                let mut v = vec![f64::NEG_INFINITY; n];
                for (i, &x) in ops[0].iter().enumerate() {
                    v[i * (n / k) + n / k / 2] = x;
                }
                args.push(g.input_node("x0", vec![3, n], InputKind::Sample));
                data.push(v.repeat(3 * batch));
                let check = (0..batch * 3).collect();
                (batch, check)
            } else {
                return None;
            }
        }
        Layout::Shared | Layout::Literal => {
            let batch = if matches!(layout, Layout::Shared) {
                3
            } else {
                2
            };
            for (j, v) in ops.iter().enumerate() {
                args.push(if matches!(layout, Layout::Shared) {
                    data.push(v.clone());
                    g.input_node(format!("x{j}"), shape(j), InputKind::Shared)
                } else {
                    g.constant_tensor(shape(j), v.clone())
                });
            }
            (batch, (0..batch).collect())
        }
        Layout::Mixed => {
            let (batch, at) = (9, [0, 4, 8]);
            for (j, v) in ops.iter().enumerate() {
                if j == 0 {
                    args.push(g.input_node("x0", shape(0), InputKind::Sample));
                    data.push((0..batch).flat_map(|b| value(0, at.contains(&b))).collect());
                } else {
                    args.push(g.input_node(format!("x{j}"), shape(j), InputKind::Shared));
                    data.push(v.clone());
                }
            }
            (batch, at.to_vec())
        }
    };
    let elem = if let (Layout::Features { n, .. }, true) = (layout, elementwise) {
        vec![n]
    } else {
        vec![]
    };
    let args = if same { vec![args[0]; arity] } else { args };
    let y = apply(&mut g, row.op, &args, &elem);
    g.add_output("y", y, BatchReduce::PerSample);
    if materialise {
        let z = g.neg(y);
        g.add_output("z", z, BatchReduce::PerSample);
    }
    Some(Built {
        g,
        data,
        batch,
        at: check,
    })
}

/// Whether `got` fulfils `expect` in the dtype (`f32` rounds the expectation).
fn meets(expect: Expect, got: f64, f32: bool) -> bool {
    let round = |v: f64| if f32 { v as f32 as f64 } else { v };
    match expect {
        Expect::Exact(v) => {
            if f32 {
                (got as f32).to_bits() == (v as f32).to_bits()
            } else {
                got.to_bits() == v.to_bits()
            }
        }
        Expect::Nan => got.is_nan(),
        Expect::Approx(v) => {
            let v = round(v);
            let tol = if f32 { 1e-6 } else { 1e-13 };
            (got - v).abs() <= tol * v.abs()
        }
    }
}

fn show(v: f64) -> String {
    if v == 0.0 && v.is_sign_negative() {
        "-0".into()
    } else {
        format!("{v:?}")
    }
}

/// Whether every operand of an elementwise `row` holds the same bits, so
/// that it can also run with one node as all its operands (`x - x` at
/// x = inf is NaN: a compiler that folds it to 0 breaks the table).
fn same_operands(row: &SpecialCase) -> bool {
    matches!(row.op, SemOp::Binary(_))
        && row
            .inputs
            .windows(2)
            .all(|w| w[0].to_bits() == w[1].to_bits())
}

/// Runs `row` in `layout` on `backend` in `dtype` (with `same`, one node as
/// every operand); returns a failure message.
fn check(
    row: &SpecialCase,
    backend: &dyn Backend,
    dtype: DType,
    (layout, materialise, same): (Layout, bool, bool),
) -> Option<String> {
    let Built { g, data, batch, at } = build(row, layout, materialise, same)?;
    let k = match backend.compile(&g, dtype) {
        Ok(k) => k,
        Err(e) => return Some(format!("compile failed: {e}")),
    };
    let numel: usize = ebm::ir::numel(g.shape(g.outputs[0].node));
    let f32 = dtype == DType::F32;
    let outs: Vec<f64> = if f32 {
        let ins: Vec<Vec<f32>> = data
            .iter()
            .map(|v| v.iter().map(|&x| x as f32).collect())
            .collect();
        let refs: Vec<&[f32]> = ins.iter().map(|v| &v[..]).collect();
        let mut o: Vec<Vec<f32>> = g
            .outputs
            .iter()
            .map(|_| vec![f32::NAN; batch * numel])
            .collect();
        let mut om: Vec<&mut [f32]> = o.iter_mut().map(|v| &mut v[..]).collect();
        if let Err(e) = k.run_f32(&refs, &mut om, batch) {
            return Some(format!("run failed: {e}"));
        }
        o[0].iter().map(|&x| x as f64).collect()
    } else {
        let refs: Vec<&[f64]> = data.iter().map(|v| &v[..]).collect();
        let mut o: Vec<Vec<f64>> = g
            .outputs
            .iter()
            .map(|_| vec![f64::NAN; batch * numel])
            .collect();
        let mut om: Vec<&mut [f64]> = o.iter_mut().map(|v| &mut v[..]).collect();
        if let Err(e) = k.run_f64(&refs, &mut om, batch) {
            return Some(format!("run failed: {e}"));
        }
        o.swap_remove(0)
    };
    let bad: Vec<String> = at
        .iter()
        .filter(|&&i| !meets(row.expect, outs[i], f32))
        .map(|&i| format!("[{i}] = {}", show(outs[i])))
        .collect();
    (!bad.is_empty()).then(|| {
        let ins: Vec<String> = row.inputs.iter().map(|&x| show(x)).collect();
        format!(
            "{} {:?}({}) expected {:?} ({}), {:?}{}{}: {}",
            backend.name(),
            row.op,
            ins.join(", "),
            row.expect,
            row.why,
            layout,
            if materialise { " materialised" } else { "" },
            if same { " one operand node" } else { "" },
            bad.join(", ")
        )
    })
}

fn check_backend(backend: &dyn Backend) {
    let dtypes = backend.dtypes();
    let mut failures = vec![];
    let mut runs = 0;
    for row in SPECIAL_CASES {
        for &dtype in dtypes {
            for &layout in LAYOUTS {
                for materialise in [false, true] {
                    for same in [false, true] {
                        if same && !same_operands(row) {
                            continue;
                        }
                        runs += 1;
                        if let Some(f) = check(row, backend, dtype, (layout, materialise, same)) {
                            failures.push(format!("{}: {f}", dtype.name()));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The table agrees with the reference functions it documents.
#[test]
fn table_matches_the_reference_functions() {
    let mut bad = vec![];
    for row in SPECIAL_CASES {
        let v64 = row.op.eval::<f64>(row.inputs);
        let ins32: Vec<f32> = row.inputs.iter().map(|&x| x as f32).collect();
        let v32 = row.op.eval::<f32>(&ins32);
        for (v, f32) in [(v64, false), (v32 as f64, true)] {
            if !meets(row.expect, v, f32) {
                bad.push(format!(
                    "{:?}{:?} = {} (f32: {f32}), table says {:?}",
                    row.op,
                    row.inputs,
                    show(v),
                    row.expect
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn interpreter_meets_the_table() {
    check_backend(&Interp);
}

#[test]
fn cpu_meets_the_table() {
    check_backend(&Cpu::with_threads(1));
}

/// The GPU backend (f32) on the table, when a device exists (in CI, where
/// Mesa's lavapipe is installed, it must).
#[test]
fn gpu_meets_the_table() {
    match ebm::backend::gpu::Gpu::new() {
        Ok(gpu) => check_backend(&gpu),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI must run the GPU tests: {e}")
        }
        Err(e) => eprintln!("gpu_meets_the_table skipped: {e}"),
    }
}

#[test]
fn cpu_meets_the_table_multithreaded() {
    // Chunks of the batch split over threads: each chunk has its own tail.
    let cpu = Cpu::with_threads(3);
    let mut failures = vec![];
    for row in SPECIAL_CASES {
        for dtype in [DType::F64, DType::F32] {
            let layout = Layout::Batch {
                batch: 33,
                at: &[0, 1, 5, 16, 31, 32],
            };
            if let Some(f) = check(row, &cpu, dtype, (layout, true, false)) {
                failures.push(f);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The layouts above reach every code path of the CPU backend: the
/// batch-major direct loop, the fused vector-outer tile program, the
/// group-by-group tile program, the AVX-512 array calls (where the CPU has
/// them) and the batch-invariant program.
#[test]
fn layouts_reach_every_cpu_code_path() {
    let mut seen = [false; 5];
    for row in SPECIAL_CASES {
        for dtype in [DType::F64, DType::F32] {
            for &layout in LAYOUTS {
                for materialise in [false, true] {
                    let Some(Built { g, .. }) = build(row, layout, materialise, false) else {
                        continue;
                    };
                    let text = ebm::backend::cpu::clif_text(&g, dtype).unwrap();
                    let direct = text.contains("runs batch-major");
                    let fused = text.contains("runs fused");
                    let tile_loops = text
                        .split("; tile program:")
                        .nth(1)
                        .is_some_and(|t| t.contains("loop"));
                    let inv_loops = text
                        .split("; invariant program:")
                        .nth(1)
                        .and_then(|t| t.split("; tile program:").next())
                        .is_some_and(|t| t.contains("loop"));
                    seen[0] |= direct;
                    seen[1] |= fused;
                    seen[2] |= !direct && !fused && tile_loops;
                    seen[3] |= text.contains("AVX-512");
                    seen[4] |= inv_loops;
                }
            }
        }
    }
    assert!(seen[0], "no layout runs the direct path");
    assert!(seen[1], "no layout runs the fused tile program");
    assert!(seen[2], "no layout runs the group-by-group tile program");
    assert!(
        seen[3] || !avx512(),
        "no layout calls the AVX-512 array functions"
    );
    assert!(seen[4], "no layout runs the invariant program");
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x + (−x)` is NaN at x = ±inf and NaN, and +0 at finite x, on every
/// backend: a shader compiler folds it to 0 as readily as `x − x` (lavapipe
/// did, before sums read their second operand through `opaque`). The table
/// cannot say this (its rows take operand values, not a node and its
/// negation), so it is checked here.
#[test]
fn a_value_plus_its_negation_is_not_folded() {
    let mut g = Graph::new("cancel");
    let x = g.input_node("x", vec![4], InputKind::Sample);
    let minus = g.neg(x);
    let y = g.binary(BinaryOp::Add, x, minus);
    g.add_output("y", y, BatchReduce::PerSample);
    let x = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.5];
    let data: Vec<f32> = x.repeat(3);
    let mut backends: Vec<Box<dyn Backend>> =
        vec![Box::new(Interp), Box::new(Cpu::with_threads(1))];
    match ebm::backend::gpu::Gpu::new() {
        Ok(gpu) => backends.push(Box::new(gpu)),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI must run the GPU tests: {e}")
        }
        Err(e) => eprintln!("a_value_plus_its_negation_is_not_folded skipped the GPU: {e}"),
    }
    for backend in &backends {
        let k = backend.compile(&g, DType::F32).unwrap();
        let mut out = vec![7.0f32; data.len()];
        k.run_f32(&[&data], &mut [&mut out], 3).unwrap();
        for (i, &v) in out.iter().enumerate() {
            let ok = match i % 4 {
                3 => v.to_bits() == 0.0f32.to_bits(),
                _ => v.is_nan(),
            };
            assert!(ok, "{}: x = {} gives {v}", backend.name(), x[i % 4]);
        }
    }
}
