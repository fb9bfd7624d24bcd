//! Derivatives against central finite differences (f64) on random graphs:
//! gradients w.r.t. x and parameters, Hessian-vector products, and the mixed
//! θ-x product; plus structural checks (verifier, no `0*x`) and optimiser
//! soundness (optimised and unoptimised graphs agree).

mod common;

use common::randgraph::{random_energy, random_inputs};
use ebm::autodiff::derived::{KernelSpec, derive, is_zero};
use ebm::ir::interp::eval;
use ebm::ir::{BinaryOp, Graph, Op, verify::verify};
use ebm::opt::{self, Config};

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

fn run(g: &Graph, inputs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let refs: Vec<&[f64]> = inputs.iter().map(|v| v.as_slice()).collect();
    eval(g, &refs, 1).unwrap()
}

fn output<'a>(g: &Graph, outs: &'a [Vec<f64>], name: &str) -> &'a [f64] {
    let i = g.outputs.iter().position(|o| o.name == name).unwrap();
    &outs[i]
}

/// Central difference of `f` along `dir` on input `which`, at two step sizes;
/// `None` when they disagree (a kink of abs/max/select lies within reach).
fn central(
    f: &dyn Fn(&[Vec<f64>]) -> Vec<f64>,
    at: &[Vec<f64>],
    which: usize,
    dir: &[f64],
) -> Option<Vec<f64>> {
    let diff = |h: f64| {
        let shifted = |s: f64| {
            let mut p = at.to_vec();
            for (v, d) in p[which].iter_mut().zip(dir) {
                *v += s * h * d;
            }
            f(&p)
        };
        let (up, down) = (shifted(1.0), shifted(-1.0));
        up.iter()
            .zip(down)
            .map(|(u, d)| (u - d) / (2.0 * h))
            .collect::<Vec<f64>>()
    };
    let (a, b) = (diff(H), diff(H / 2.0));
    let consistent = a
        .iter()
        .zip(&b)
        .all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + x.abs()));
    consistent.then_some(b)
}

fn close(what: &str, got: f64, want: f64) {
    let scale = got.abs().max(want.abs()).max(1.0);
    assert!(
        (got - want).abs() <= TOL * scale,
        "{what}: symbolic {got} vs finite difference {want}"
    );
}

fn unit(n: usize, i: usize) -> Vec<f64> {
    (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect()
}

struct Checked {
    compared: usize,
    skipped: usize,
}

fn check_graph(energy: &Graph, seed: u64, stats: &mut Checked) {
    let want = KernelSpec::ALL;
    let full = derive(energy, want).unwrap();
    verify(&full).unwrap();
    let g = opt::optimize(&full, Config::default());
    verify(&g).unwrap();
    let inputs = random_inputs(&g, seed, 1);
    let outs = run(&g, &inputs);
    // The unoptimised graph is a second opinion on every output.
    let plain = run(&full, &inputs);
    for (o, (a, b)) in g.outputs.iter().zip(outs.iter().zip(&plain)) {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
                "optimiser changed {}: {x} vs {y}",
                o.name
            );
        }
    }
    let x_in = g.find_input("x").unwrap().index();
    let v_in = g.find_input("v").unwrap().index();
    let energy_of = |p: &[Vec<f64>]| output(&g, &run(&g, p), "energy").to_vec();
    let grad_x_of = |p: &[Vec<f64>]| output(&g, &run(&g, p), "grad_x").to_vec();
    let mut tally = |what: &str, got: &[f64], fd: Option<Vec<f64>>| match fd {
        Some(fd) => {
            for (a, b) in got.iter().zip(fd) {
                close(what, *a, b);
                stats.compared += 1;
            }
        }
        None => stats.skipped += 1,
    };
    // ∇ₓE, coordinate by coordinate.
    let gx = output(&g, &outs, "grad_x").to_vec();
    for i in 0..gx.len() {
        let fd = central(&energy_of, &inputs, x_in, &unit(gx.len(), i));
        tally("grad_x", &gx[i..=i], fd);
    }
    // ∇_θE for each parameter.
    for (k, decl) in g.inputs().iter().enumerate() {
        if decl.kind != ebm::ir::InputKind::Shared {
            continue;
        }
        let gp = output(&g, &outs, &format!("grad.{}", decl.name)).to_vec();
        for i in 0..gp.len() {
            let fd = central(&energy_of, &inputs, k, &unit(gp.len(), i));
            tally("grad_param", &gp[i..=i], fd);
        }
        // Mixed: ∇_θ(∇ₓE·v) = d/dh ∇_θE(x + h v).
        let grad_p_of =
            |p: &[Vec<f64>]| output(&g, &run(&g, p), &format!("grad.{}", decl.name)).to_vec();
        let v = inputs[v_in].clone();
        let fd = central(&grad_p_of, &inputs, x_in, &v);
        tally(
            "mixed",
            output(&g, &outs, &format!("mixed.{}", decl.name)),
            fd,
        );
    }
    // HVP: ∇ₓ(∇ₓE·v) = d/dh ∇ₓE(x + h v).
    let v = inputs[v_in].clone();
    let fd = central(&grad_x_of, &inputs, x_in, &v);
    tally("hvp", output(&g, &outs, "hvp"), fd);
}

#[test]
fn derivatives_match_finite_differences_on_random_graphs() {
    let mut stats = Checked {
        compared: 0,
        skipped: 0,
    };
    for seed in 0..300 {
        let g = random_energy(seed, 1 + (seed as usize % 6));
        check_graph(&g, seed, &mut stats);
    }
    eprintln!(
        "{} derivative entries compared, {} skipped near kinks",
        stats.compared, stats.skipped
    );
    assert!(stats.compared > 5000, "only {} comparisons", stats.compared);
    assert!(
        stats.skipped * 20 < stats.compared,
        "too many kinks: {} skipped",
        stats.skipped
    );
}

/// No derivative graph multiplies by a literal zero, and hash-consing leaves no
/// two structurally equal nodes.
#[test]
fn derivative_graphs_have_no_zero_products_or_duplicates() {
    for seed in 0..100 {
        let energy = random_energy(seed, 4);
        let all = KernelSpec::ALL;
        let g = opt::optimize(&derive(&energy, all).unwrap(), Config::default());
        let live = g.live(&[]);
        let mut seen = std::collections::HashSet::new();
        for id in g.ids().filter(|id| live[id.index()]) {
            let node = g.node(id);
            if node.op == Op::Binary(BinaryOp::Mul) {
                assert!(
                    !node.args.iter().any(|&a| is_zero(&g, a)),
                    "0*x at {id} in seed {seed}"
                );
            }
            assert!(
                seen.insert(node.clone()),
                "duplicate node {id} in seed {seed}"
            );
        }
    }
}

#[test]
fn every_optimiser_switch_preserves_values() {
    let configs = [
        Config::NONE,
        Config {
            fold: true,
            ..Config::NONE
        },
        Config {
            identities: true,
            ..Config::NONE
        },
        Config {
            cse: true,
            ..Config::NONE
        },
        Config {
            dce: true,
            ..Config::NONE
        },
        Config {
            factor: true,
            ..Config::NONE
        },
        Config::default(),
    ];
    for seed in 0..60 {
        let energy = random_energy(seed, 5);
        let full = derive(
            &energy,
            KernelSpec {
                mixed: false,
                ..KernelSpec::ALL
            },
        )
        .unwrap();
        let inputs = random_inputs(&full, seed, 1);
        let want = run(&full, &inputs);
        for cfg in configs {
            let g = opt::optimize(&full, cfg);
            verify(&g).unwrap();
            let got = run(&g, &inputs);
            for (a, b) in got.iter().flatten().zip(want.iter().flatten()) {
                assert!(
                    (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                    "{cfg:?} changed a value"
                );
            }
        }
    }
}

/// `s·a + (s·b)·c` becomes `s·(a + b·c)` (three operations instead of
/// four) when its products serve nothing else, in any operand order, and
/// stays as written when one of them is also an output.
#[test]
fn a_common_multiplicand_is_factored_out_of_a_sum() {
    use ebm::ir::{BatchReduce, BinaryOp, InputKind, Op};
    let build = |swap: bool, expose: bool| {
        let mut g = Graph::new("f");
        let [s, a, b, c] =
            ["s", "a", "b", "c"].map(|n| g.input_node(n, vec![3], InputKind::Sample));
        let sa = if swap { g.mul(a, s) } else { g.mul(s, a) };
        let sb = if swap { g.mul(b, s) } else { g.mul(s, b) };
        let sbc = if swap { g.mul(c, sb) } else { g.mul(sb, c) };
        let e = if swap {
            g.add_(sbc, sa)
        } else {
            g.add_(sa, sbc)
        };
        g.add_output("e", e, BatchReduce::PerSample);
        if expose {
            g.add_output("sa", sa, BatchReduce::PerSample);
        }
        g
    };
    let count = |g: &Graph, op: BinaryOp| {
        let live = g.live(&[]);
        g.ids()
            .filter(|id| live[id.index()] && g.node(*id).op == Op::Binary(op))
            .count()
    };
    for swap in [false, true] {
        for expose in [false, true] {
            let g = build(swap, expose);
            let opt = opt::optimize(&g, Config::default());
            verify(&opt).unwrap();
            let muls = if expose { 3 } else { 2 };
            assert_eq!(
                count(&opt, BinaryOp::Mul),
                muls,
                "swap {swap} expose {expose}"
            );
            assert_eq!(count(&opt, BinaryOp::Add), 1);
            let inputs = random_inputs(&g, 7, 1);
            for (x, y) in run(&opt, &inputs)
                .iter()
                .flatten()
                .zip(run(&g, &inputs).iter().flatten())
            {
                assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()));
            }
        }
    }
    let plain = opt::optimize(
        &build(false, false),
        Config {
            factor: false,
            ..Config::default()
        },
    );
    assert_eq!(count(&plain, BinaryOp::Mul), 3);
}

/// d/dx [stop_gradient(x) · x] = stop_gradient(x): only the second factor counts.
#[test]
fn stop_gradient_blocks_its_operand() {
    use ebm::ir::{BatchReduce, InputKind};
    let mut g = Graph::new("sg");
    let x = g.input_node("x", vec![], InputKind::Sample);
    let s = g.stop_gradient(x);
    let e = g.mul(s, x);
    g.add_output("energy", e, BatchReduce::PerSample);
    let d = derive(&g, KernelSpec::ENERGY_GRAD).unwrap();
    let outs = run(&d, &[vec![3.0]]);
    assert_eq!(outs, vec![vec![9.0], vec![3.0]]);
}

/// Energies built from the image primitives (expanded by `sema` into
/// slices, reshapes, one matrix product and reductions).
const IMAGE_ENERGIES: &str = "
energy conv(x: [1, 5, 5]) = sum(conv2d(x, 2, 3)^2)
energy strided(x: [2, 6, 6]) = sum(swish(conv2d(x, 3, 3, stride = 2, padding = 1)))
energy avg(x: [2, 4, 4]) = sum(avg_pool2d(swish(x), 2)^2)
energy maxp(x: [1, 6, 6]) = sum(max_pool2d(x, 3, stride = 2)^2)
energy cnn(x: [6, 6]) = sum(mlp(flatten(max_pool2d(swish(conv2d(x, 3, 3, padding = 1)), 2)), [4, 1]))
";

/// Every definition of `source` against finite differences, three or
/// more seeds each; at least `min` comparisons, under 10% skipped.
fn check_source(name: &str, source: &str, seed: u64, seeds: u64, min: usize) {
    let file = ebm::pipeline::SourceFile {
        path: name.into(),
        text: source.into(),
    };
    let module = ebm::pipeline::analyze(&file).unwrap();
    let mut stats = Checked {
        compared: 0,
        skipped: 0,
    };
    for (i, def) in module.defs.iter().enumerate() {
        let g = ebm::lower::lower(&module, &def.name).unwrap();
        for k in 0..seeds {
            check_graph(&g, seed + 10 * i as u64 + k, &mut stats);
        }
    }
    assert!(stats.compared > min, "only {} comparisons", stats.compared);
    assert!(
        stats.skipped * 10 < stats.compared,
        "{} skipped",
        stats.skipped
    );
}

#[test]
fn image_primitives_match_finite_differences() {
    check_source("image.ebm", IMAGE_ENERGIES, 100, 3, 1000);
}

/// The elementwise builtins `maximum`, `minimum`, `logaddexp` and the
/// mixture `mix`, with `pi`.
const ELEMENTWISE_ENERGIES: &str = "
energy mx(x: [3]) = sum(maximum(x, [0.1, -0.2, 0.3]) * x) + sum(minimum(x^2, 0.5))
energy lae(x: [3]) = -sum(logaddexp(-x^2, -(x - 1)^2 + log(0.3), x / pi))
energy mixed(x: [2]) = mix(sqnorm(x), sqnorm(x - [1, 2]) / 2, weights = [0.2, 0.8], logz = [0.5, -1])
";

#[test]
fn elementwise_builtins_match_finite_differences() {
    check_source("elementwise.ebm", ELEMENTWISE_ENERGIES, 200, 4, 50);
}
