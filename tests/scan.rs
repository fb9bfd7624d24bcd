//! `scan`/`fold` and local bindings end to end: values against closed
//! forms, every derivative kernel (∇ₓE, ∇_θE, the Hessian-vector product
//! and the mixed θ-x product) against central finite differences in f64,
//! the Cranelift backend against the interpreter (both dtypes, several
//! batch sizes and thread counts), the IR file round trip, and the
//! verifier's checks of scan bodies.

mod common;

use common::scans::{AR, GARCH, MIXED, SCAN_ENERGIES};
use std::collections::HashMap;
use std::path::Path;

use ebm::autodiff::derived::{KernelSpec, derive};
use ebm::backend::cpu::Cpu;
use ebm::backend::{Backend, DType};
use ebm::ir::{Graph, InputKind, Op, interp, numel, serial, verify::verify};
use ebm::opt::{self, Config};
use ebm::sema::Module;

fn module(src: &str) -> Module {
    let program = ebm::syntax::parse(src).unwrap_or_else(|d| panic!("parse: {d:?}"));
    ebm::sema::analyze(&program, Path::new("."), ebm::lower::eval_const)
        .unwrap_or_else(|d| panic!("sema: {d:?}"))
}

fn graph(src: &str, name: &str) -> (Module, Graph) {
    let m = module(src);
    let g = ebm::lower::lower(&m, name).unwrap();
    verify(&g).unwrap();
    (m, g)
}

/// Inputs of `g` for one sample: `x`, `v` (a direction), the parameters
/// at their initial values.
fn inputs(m: &Module, g: &Graph, x: &[f64]) -> Vec<Vec<f64>> {
    let params: HashMap<String, Vec<f64>> = m
        .params
        .iter()
        .map(|p| (p.name.clone(), p.initial_value()))
        .collect();
    g.inputs()
        .iter()
        .map(|d| match (d.kind, d.name.as_str()) {
            (InputKind::Sample, "x") => x.to_vec(),
            (InputKind::Sample, "v") => (0..x.len()).map(|i| 0.3 - 0.17 * i as f64).collect(),
            (InputKind::Sample, other) => panic!("unexpected input {other}"),
            (InputKind::Shared, name) => params[name].clone(),
        })
        .collect()
}

fn run(g: &Graph, ins: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let refs: Vec<&[f64]> = ins.iter().map(|v| v.as_slice()).collect();
    interp::eval::<f64>(g, &refs, 1).unwrap()
}

fn energy_at(m: &Module, g: &Graph, x: &[f64], params: &HashMap<String, Vec<f64>>) -> f64 {
    let ins: Vec<Vec<f64>> = g
        .inputs()
        .iter()
        .map(|d| match d.kind {
            InputKind::Sample => x.to_vec(),
            InputKind::Shared => params[&d.name].clone(),
        })
        .collect();
    let _ = m;
    run(g, &ins)[0][0]
}

const H: f64 = 1e-5;

fn close(what: &str, got: f64, want: f64, tol: f64) {
    let scale = got.abs().max(want.abs()).max(1.0);
    assert!(
        (got - want).abs() <= tol * scale,
        "{what}: symbolic {got} vs finite difference {want}"
    );
}

/// Every derivative of energy `name` at `x` against central differences.
fn check_derivatives(src: &str, name: &str, x: &[f64]) {
    let (m, g) = graph(src, name);
    let full = derive(&g, KernelSpec::ALL).unwrap();
    verify(&full).unwrap();
    let opt_g = opt::optimize(&full, Config::default());
    verify(&opt_g).unwrap();
    for d in [&full, &opt_g] {
        let outs = run(d, &inputs(&m, d, x));
        let out = |n: &str| &outs[d.outputs.iter().position(|o| o.name == n).unwrap()];
        let params: HashMap<String, Vec<f64>> = m
            .params
            .iter()
            .map(|p| (p.name.clone(), p.initial_value()))
            .collect();
        let e = |x: &[f64], p: &HashMap<String, Vec<f64>>| energy_at(&m, &g, x, p);
        // ∇ₓE
        for i in 0..x.len() {
            let (mut up, mut down) = (x.to_vec(), x.to_vec());
            up[i] += H;
            down[i] -= H;
            let fd = (e(&up, &params) - e(&down, &params)) / (2.0 * H);
            close(&format!("{name} dE/dx{i}"), out("grad_x")[i], fd, 1e-6);
        }
        // ∇_θE
        for p in &m.params {
            for k in 0..numel(&p.shape) {
                let shifted = |s: f64| {
                    let mut q = params.clone();
                    q.get_mut(&p.name).unwrap()[k] += s;
                    e(x, &q)
                };
                let fd = (shifted(H) - shifted(-H)) / (2.0 * H);
                let got = out(&format!("grad.{}", p.name))[k];
                close(&format!("{name} dE/d{}[{k}]", p.name), got, fd, 1e-6);
            }
        }
        // HVP = d/dh ∇ₓE(x + h v), mixed = d/dθ (∇ₓE · v).
        let v = inputs(&m, d, x)
            .into_iter()
            .zip(d.inputs())
            .find(|(_, i)| i.name == "v")
            .unwrap()
            .0;
        let grad_at = |x: &[f64], p: &HashMap<String, Vec<f64>>| {
            let mut ins = inputs(&m, d, x);
            for (slot, decl) in ins.iter_mut().zip(d.inputs()) {
                if decl.kind == InputKind::Shared {
                    *slot = p[&decl.name].clone();
                }
            }
            let o = run(d, &ins);
            o[d.outputs.iter().position(|o| o.name == "grad_x").unwrap()].clone()
        };
        let moved = |s: f64| -> Vec<f64> { x.iter().zip(&v).map(|(a, b)| a + s * b).collect() };
        let (gu, gd) = (grad_at(&moved(H), &params), grad_at(&moved(-H), &params));
        for i in 0..x.len() {
            let fd = (gu[i] - gd[i]) / (2.0 * H);
            close(&format!("{name} hvp[{i}]"), out("hvp")[i], fd, 1e-5);
        }
        for p in &m.params {
            for k in 0..numel(&p.shape) {
                let dot = |s: f64| {
                    let mut q = params.clone();
                    q.get_mut(&p.name).unwrap()[k] += s;
                    grad_at(x, &q)
                        .iter()
                        .zip(&v)
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
                };
                let fd = (dot(H) - dot(-H)) / (2.0 * H);
                let got = out(&format!("mixed.{}", p.name))[k];
                close(&format!("{name} mixed {}[{k}]", p.name), got, fd, 1e-5);
            }
        }
    }
}

#[test]
fn scan_derivatives_match_finite_differences() {
    check_derivatives(AR, "arma", &[0.3, -0.2, 0.1]);
}

#[test]
fn garch_derivatives_match_finite_differences() {
    check_derivatives(GARCH, "garch", &[-0.5, 0.3, 0.8]);
}

#[test]
fn scans_over_x_with_networks_and_nesting_match_finite_differences() {
    check_derivatives(MIXED, "e", &[0.3, -0.2, 0.5, 0.1, -0.4, 0.7, 0.2, -0.6]);
}

const STRIDED: &str = "
energy s(x: [7]) = sum(x[1:6:2]^3) + sum(x[::3] * x[:3]) + sum(reshape(x[:6], [2, 3])[:, ::2]^2)
";

#[test]
fn strided_slices_match_finite_differences_and_the_jit() {
    check_derivatives(STRIDED, "s", &[0.3, -0.2, 0.5, 0.1, -0.4, 0.7, 0.2]);
    let (_, g) = graph(STRIDED, "s");
    let all = derive(&g, KernelSpec::ALL).unwrap();
    jit_matches_interpreter(&opt::optimize(&all, Config::default()));
}

#[test]
fn values_match_closed_forms() {
    let m = module(
        "
const y = [1, 2, 3, 4]
energy cumsum(x: [1]) = sum(scan(x[0], y, (s, v) => s + v))
energy last(x: [1]) = fold(x[0], y, (s, v) => 2 * s + v)
energy loc(x: [2]) = let a = x[0] in let b = a * x[1] in let a = b + 1 in a * b
energy strided(x: [7]) = sum(x[1:7:3] * [1, 10])
",
    );
    let e = |name: &str, x: &[f64]| {
        let g = ebm::lower::lower(&m, name).unwrap();
        run(&g, &[x.to_vec()])[0][0]
    };
    // x=1: carries 2, 4, 7, 11.
    assert_eq!(e("cumsum", &[1.0]), 24.0);
    // Carries 3, 8, 19, 42.
    assert_eq!(e("last", &[1.0]), 42.0);
    // a = 2, b = 6, a' = 7: 42 (the inner `a` shadows the outer).
    assert_eq!(e("loc", &[2.0, 3.0]), 42.0);
    // x[1] + 10·x[4].
    assert_eq!(e("strided", &[0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0]), 21.0);
}

/// A `let` value is one IR node however often the body reads it.
#[test]
fn a_binding_is_computed_once() {
    let (_, g) = graph(
        "energy e(x: [3]) = let r = exp(x) * sin(x) in sum(r) + sum(r * r) + max(r)",
        "e",
    );
    let exps = g
        .nodes()
        .iter()
        .filter(|n| n.op == Op::Unary(ebm::ir::UnaryOp::Exp))
        .count();
    assert_eq!(exps, 1);
}

fn jit_matches_interpreter(g: &Graph) {
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // f32-representable values in [-1, 1).
        ((rng >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 as f64
    };
    for (batch, threads) in [(1, 1), (5, 1), (37, 2), (130, 2)] {
        let ins: Vec<Vec<f64>> = g
            .inputs()
            .iter()
            .map(|d| {
                let n = numel(&d.shape)
                    * match d.kind {
                        InputKind::Sample => batch,
                        InputKind::Shared => 1,
                    };
                (0..n).map(|_| next()).collect()
            })
            .collect();
        let refs: Vec<&[f64]> = ins.iter().map(|v| v.as_slice()).collect();
        let want = interp::eval::<f64>(g, &refs, batch).unwrap();
        let cpu = Cpu::with_threads(threads);
        let k = cpu.compile(g, DType::F64).unwrap();
        let mut outs: Vec<Vec<f64>> = want.iter().map(|w| vec![f64::NAN; w.len()]).collect();
        {
            let mut o: Vec<&mut [f64]> = outs.iter_mut().map(|v| &mut v[..]).collect();
            k.run_f64(&refs, &mut o, batch).unwrap();
        }
        for (j, (a, b)) in outs.iter().zip(&want).enumerate() {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-11 * (1.0 + y.abs()),
                    "f64 output {} [{i}], batch {batch}: jit {x} vs interpreter {y}",
                    g.outputs[j].name
                );
            }
        }
        let ins32: Vec<Vec<f32>> = ins
            .iter()
            .map(|v| v.iter().map(|&x| x as f32).collect())
            .collect();
        let refs32: Vec<&[f32]> = ins32.iter().map(|v| v.as_slice()).collect();
        let want32 = interp::eval::<f32>(g, &refs32, batch).unwrap();
        let k = cpu.compile(g, DType::F32).unwrap();
        let mut outs32: Vec<Vec<f32>> = want32.iter().map(|w| vec![f32::NAN; w.len()]).collect();
        {
            let mut o: Vec<&mut [f32]> = outs32.iter_mut().map(|v| &mut v[..]).collect();
            k.run_f32(&refs32, &mut o, batch).unwrap();
        }
        for (j, (a, b)) in outs32.iter().zip(&want32).enumerate() {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let (x, y) = (*x as f64, *y as f64);
                assert!(
                    (x - y).abs() <= 2e-4 * (1.0 + y.abs()),
                    "f32 output {} [{i}], batch {batch}: jit {x} vs interpreter {y}",
                    g.outputs[j].name
                );
            }
        }
    }
}

#[test]
fn the_jit_runs_scans_like_the_interpreter() {
    for (src, name) in SCAN_ENERGIES {
        let (_, g) = graph(src, name);
        jit_matches_interpreter(&g);
        let all = derive(&g, KernelSpec::ALL).unwrap();
        jit_matches_interpreter(&opt::optimize(&all, Config::default()));
        jit_matches_interpreter(&all);
    }
}

#[test]
fn scan_graphs_round_trip_through_ir_files() {
    for (src, name) in [(AR, "arma"), (MIXED, "e")] {
        let (_, g) = graph(src, name);
        let all = opt::optimize(&derive(&g, KernelSpec::ALL).unwrap(), Config::default());
        let bytes = serial::encode(&all);
        let back = serial::decode(&bytes).unwrap();
        assert_eq!(serial::encode(&back), bytes);
        assert_eq!(ebm::ir::print::print(&back), ebm::ir::print::print(&all));
    }
}

/// The compiled loop's code does not grow with the sequence: one body,
/// whatever T.
#[test]
fn a_longer_sequence_compiles_to_the_same_loops() {
    let text = |t: usize| {
        let y: Vec<String> = (0..t)
            .map(|i| format!("{}", (i as f64 * 0.7).sin()))
            .collect();
        let src = format!(
            "const y = [{}]\nenergy e(x: [2]) = sum(scan(0, y, (s, v) => x[0] * s + v - x[1])^2)",
            y.join(", ")
        );
        let (_, g) = graph(&src, "e");
        let d = opt::optimize(
            &derive(&g, KernelSpec::ENERGY_GRAD).unwrap(),
            Config::default(),
        );
        let clif = ebm::backend::cpu::clif_text(&d, DType::F64).unwrap();
        clif.lines().filter(|l| l.starts_with("; loop")).count()
    };
    assert_eq!(text(100), text(1000));
}

#[test]
fn the_verifier_checks_scan_bodies() {
    let (_, g) = graph(AR, "arma");
    let bytes = serial::encode(&g);
    // A body whose output shape differs from the carry's is refused.
    let mut body = Graph::new("step");
    let s = body.input_node("s", vec![], InputKind::Sample);
    let _ = body.input_node("x0", vec![], InputKind::Sample);
    let two = body.broadcast(s, &[2]);
    body.add_output("next", two, ebm::ir::BatchReduce::PerSample);
    let mut bad = Graph::new("bad");
    let init = bad.scalar(0.0);
    let seq = bad.constant_tensor(vec![3], vec![1.0, 2.0, 3.0]);
    let id = bad.add_body(body);
    bad.push_unchecked(ebm::ir::Node {
        op: Op::Scan {
            body: id,
            seqs: 1,
            reverse: false,
        },
        args: vec![init, seq],
        shape: vec![3],
    });
    assert!(
        verify(&bad).unwrap_err().contains("carry"),
        "{:?}",
        verify(&bad)
    );
    assert!(serial::decode(&serial::encode(&bad)).is_err());
    assert!(serial::decode(&bytes).is_ok());
}

/// Small elementwise steps run as one generated loop (the carry in
/// registers); a step with a matrix product runs its loops row by row.
/// `the_jit_runs_scans_like_the_interpreter` covers both paths.
#[test]
fn scans_compile_to_a_generated_loop_or_row_by_row() {
    let clif = |src: &str, name: &str| {
        let (_, g) = graph(src, name);
        let d = opt::optimize(
            &derive(&g, KernelSpec::ENERGY_GRAD).unwrap(),
            Config::default(),
        );
        ebm::backend::cpu::clif_text(&d, DType::F64).unwrap()
    };
    let arma = clif(AR, "arma");
    assert_eq!(arma.matches("one generated loop").count(), 2, "{arma}");
    let mixed = clif(MIXED, "e");
    assert!(mixed.contains("row by row"), "{mixed}");
}
