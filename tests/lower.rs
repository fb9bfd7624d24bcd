//! Lowering tests: golden IR text through one data-driven `check` helper,
//! composition semantics on closed-form energies, neural-primitive parameter
//! naming and sharing. Set `EBM_BLESS=1` to print the actual IR of a failing
//! golden case instead of asserting.

use std::collections::HashMap;
use std::path::Path;

use ebm::ir::{InputKind, interp, print::print, verify::verify};
use ebm::lower::lower;
use ebm::sema::{Module, analyze};

fn module(src: &str) -> Module {
    let program = ebm::syntax::parse(src).unwrap_or_else(|d| panic!("parse: {d:?}"));
    analyze(&program, Path::new("."), ebm::lower::eval_const)
        .unwrap_or_else(|d| panic!("sema: {d:?}"))
}

/// Lowers definition `name` of `src` and compares the printed IR with `expect`.
fn check(src: &str, name: &str, expect: &str) {
    let m = module(src);
    let g = lower(&m, name).unwrap();
    verify(&g).unwrap();
    let got = print(&g);
    if got != expect && std::env::var_os("EBM_BLESS").is_some() {
        println!("---- {name} ----\n{got}");
    }
    assert_eq!(got, expect, "IR of `{name}`:\n{got}");
}

/// Evaluates energy/model `name` at `x` (and `c`), parameters at their initial values.
fn eval(m: &Module, name: &str, x: &[f64], c: Option<&[f64]>) -> Vec<f64> {
    let g = lower(m, name).unwrap();
    verify(&g).unwrap();
    let params: HashMap<String, Vec<f64>> = m
        .params
        .iter()
        .map(|p| (p.name.clone(), p.initial_value()))
        .collect();
    let mut inputs: Vec<&[f64]> = Vec::new();
    for (i, decl) in g.inputs().iter().enumerate() {
        match (i, decl.kind) {
            (0, _) => inputs.push(x),
            (1, InputKind::Sample) => inputs.push(c.expect("conditioning")),
            _ => inputs.push(&params[&decl.name]),
        }
    }
    interp::eval::<f64>(&g, &inputs, 1).unwrap().remove(0)
}

fn energy(m: &Module, name: &str, x: &[f64]) -> f64 {
    eval(m, name, x, None)[0]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
}

const CLOSED: &str = "
energy a(x: [2]) = sqnorm(x) / 2
energy b(x: [2]) = sqnorm(x - [1, 0])
energy both(x: [2]) = a(x) and b(x)
energy either(x: [2]) = a(x) or b(x)
energy neg(x: [2]) = not a(x)
energy weighted(x: [2]) = a(x) and not 0.5 * b(x)
energy three(x: [2]) = a(x) or b(x) and 2 * a(x)
energy lse(x: [2]) = logsumexp(a(x), b(x), 0)
";

#[test]
fn composition_semantics() {
    let m = module(CLOSED);
    for x in [[0.0f64, 0.0], [1.0, -2.0], [3.5, 0.25], [-40.0, 7.0]] {
        let ea = (x[0] * x[0] + x[1] * x[1]) / 2.0;
        let eb = (x[0] - 1.0).powi(2) + x[1] * x[1];
        assert!(close(energy(&m, "a", &x), ea));
        assert!(close(energy(&m, "both", &x), ea + eb));
        let mix = -((-ea).exp() + (-eb).exp()).ln();
        let lo = ea.min(eb);
        let stable = lo - (1.0 + (-(ea - eb).abs()).exp()).ln();
        assert!(close(energy(&m, "either", &x), stable), "{x:?}");
        if mix.is_finite() {
            assert!(close(stable, mix));
        }
        assert!(close(energy(&m, "neg", &x), -ea));
        assert!(close(energy(&m, "weighted", &x), ea - 0.5 * eb));
        // `and` binds tighter than `or`.
        let e3 = -((-ea).exp() + (-(eb + 2.0 * ea)).exp()).ln();
        if e3.is_finite() {
            assert!(close(energy(&m, "three", &x), e3));
        }
        let l = ((ea).exp() + (eb).exp() + 1.0).ln();
        if l.is_finite() {
            assert!(close(energy(&m, "lse", &x), l));
        }
    }
}

#[test]
fn or_is_stable_for_large_energies() {
    let m = module(CLOSED);
    let e = energy(&m, "either", &[1000.0, 0.0]);
    // a = 500000, b = 998001: the mixture is a's energy up to exp(-498001).
    assert!(close(e, 500000.0), "{e}");
}

#[test]
fn ring_mixture_value() {
    let m = module(
        "const centers = ring(8, radius = 2.0)
energy gmm(x: [2]) = -logsumexp(-sqnorm(x - centers) / (2 * 0.1^2))",
    );
    let x = [0.3, -0.4];
    let want = {
        let terms: Vec<f64> = (0..8)
            .map(|k| {
                let t = 2.0 * std::f64::consts::PI * k as f64 / 8.0;
                let (cx, cy) = (2.0 * t.cos(), 2.0 * t.sin());
                -((x[0] - cx).powi(2) + (x[1] - cy).powi(2)) / (2.0 * 0.01)
            })
            .collect();
        let mx = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        -(mx + terms.iter().map(|t| (t - mx).exp()).sum::<f64>().ln())
    };
    assert!((energy(&m, "gmm", &x) - want).abs() < 1e-9);
}

#[test]
fn activations_match_closed_forms() {
    let m = module(
        "model acts(x: [1]) -> [8] = concat(relu(x), leaky_relu(x), leaky_relu(x, alpha = 0.2), elu(x), swish(x), gelu(x), softplus(x), sigmoid(x))",
    );
    for v in [-2.0f64, -0.5, 0.0, 0.7, 3.0] {
        let got = eval(&m, "acts", &[v], None);
        let sig = 1.0 / (1.0 + (-v).exp());
        let gelu = 0.5
            * v
            * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh());
        let want = [
            v.max(0.0),
            if v > 0.0 { v } else { 0.01 * v },
            if v > 0.0 { v } else { 0.2 * v },
            if v > 0.0 { v } else { v.exp() - 1.0 },
            v * sig,
            gelu,
            (1.0 + v.exp()).ln(),
            sig,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!(close(*g, w), "{v}: {got:?} vs {want:?}");
        }
    }
}

#[test]
fn reductions_indexing_and_where() {
    let m = module(
        "const M = [[1, 2, 3], [4, 5, 6]]
model r(x: [2, 3]) -> [9] = concat(sum(x, axis = 0), mean(x, axis = -1), max(x), min(x), logsumexp(x, axis = 1))
model i(x: [2, 3]) -> [4] = concat(x[1, 2], x[0, 1:], x[-1, :1])
model w(x: [3]) -> [3] = where(x >= 2, x, -x) + clamp(x, 1.5, 2.5) - stop_gradient(x)
energy t(x: [2, 3]) = sum(transpose(x) @ M) + dot(x[0], x[1]) + norm([3.0, 4.0]) + sum(reshape(x, [3, 2])[2])",
    );
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let lse = |r: &[f64]| r.iter().map(|v| v.exp()).sum::<f64>().ln();
    let want = [
        5.0,
        7.0,
        9.0,
        2.0,
        5.0,
        6.0,
        1.0,
        lse(&x[..3]),
        lse(&x[3..]),
    ];
    let got = eval(&m, "r", &x, None);
    for (g, w) in got.iter().zip(want) {
        assert!(close(*g, w), "{got:?}");
    }
    assert_eq!(eval(&m, "i", &x, None), vec![6.0, 2.0, 3.0, 4.0]);
    assert_eq!(eval(&m, "w", &[1.0, 2.0, 3.0], None), vec![-0.5, 2.0, 2.5]);
    // transpose(x) @ M = x^T M: sum = Σ_j Σ_k x[j,i] M[j,k] ...
    let xtm: f64 = (0..3)
        .map(|i| {
            (0..3)
                .map(|k| x[i] * [1.0, 2.0, 3.0][k] + x[3 + i] * [4.0, 5.0, 6.0][k])
                .sum::<f64>()
        })
        .sum();
    let want = xtm + (4.0 + 10.0 + 18.0) + 5.0 + (5.0 + 6.0);
    assert!(close(energy(&m, "t", &x), want));
}

#[test]
fn primitive_parameters_are_named_per_call_site_and_shared() {
    let m = module(
        "energy concept(x: [2] | c: [4]) = mlp(concat(x, c), [8, 8, 1])
energy both(x: [2]) = concept(x | onehot(0, 4)) and concept(x | onehot(1, 4))
energy two(x: [2]) = sum(linear(x, 3)) + sum(linear(x, 3)) + sum(mlp(x, [2]))",
    );
    let names: Vec<&str> = m.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "concept.mlp0.w1",
            "concept.mlp0.b1",
            "concept.mlp0.w2",
            "concept.mlp0.b2",
            "concept.mlp0.w3",
            "concept.mlp0.b3",
            "two.linear0.w",
            "two.linear0.b",
            "two.linear1.w",
            "two.linear1.b",
            "two.mlp0.w1",
            "two.mlp0.b1",
        ]
    );
    assert_eq!(m.param("concept.mlp0.w2").unwrap().shape, vec![8, 8]);
    let g = lower(&m, "both").unwrap();
    let inputs: Vec<&str> = g.inputs().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(inputs[0], "x");
    assert_eq!(inputs.len(), 7, "{inputs:?}");
    assert_eq!(m.def("both").unwrap().params.len(), 6);
    // `both` is the sum of the two inlined concepts.
    let x = [0.3, -1.2];
    let e0 = eval(&m, "concept", &x, Some(&[1.0, 0.0, 0.0, 0.0]))[0];
    let e1 = eval(&m, "concept", &x, Some(&[0.0, 1.0, 0.0, 0.0]))[0];
    assert!(close(energy(&m, "both", &x), e0 + e1));
}

#[test]
fn initialisation_is_deterministic_and_documented() {
    let m = module(
        "param W: [3, 4] ~ normal(1, 0.5)
param U: [2] ~ uniform(-1, 1)
param Z: [2] ~ zeros
param G: [10, 20] ~ glorot
energy e(x: [3]) = sum(linear(x, 4)) + sum(W) + sum(U) + sum(Z) + sum(G)",
    );
    let w = m.param("W").unwrap();
    let z = ebm::data::rng::normal(ebm::data::rng::fnv1a("W"), 12);
    let want: Vec<f64> = z.iter().map(|v| 1.0 + 0.5 * v).collect();
    assert_eq!(w.initial_value(), want);
    assert!(
        m.param("U")
            .unwrap()
            .initial_value()
            .iter()
            .all(|v| (-1.0..1.0).contains(v))
    );
    assert_eq!(m.param("Z").unwrap().initial_value(), vec![0.0, 0.0]);
    let l = (6.0f64 / 30.0).sqrt();
    assert!(
        m.param("G")
            .unwrap()
            .initial_value()
            .iter()
            .all(|v| v.abs() <= l)
    );
    let lw = m.param("e.linear0.w").unwrap().initial_value();
    let z = ebm::data::rng::normal(ebm::data::rng::fnv1a("e.linear0.w"), 12);
    let s = 1.0 / 3f64.sqrt();
    assert_eq!(lw, z.iter().map(|v| s * v).collect::<Vec<_>>());
    assert_eq!(
        m.param("e.linear0.b").unwrap().initial_value(),
        vec![0.0; 4]
    );
}

#[test]
fn golden_gaussian() {
    check(
        "energy g(x: [2]) = 0.5 * sqnorm(x)",
        "g",
        r#"graph g {
  in0 x: [2] sample
  %0 = input x : [2]
  %1 = scalar 0.5 : []
  %2 = powc 2 %0 : [2]
  %3 = sum[0] %2 : []
  %4 = mul %1, %3 : []
  out energy = %4
}
"#,
    );
}

#[test]
fn golden_ring_mixture() {
    check(
        "const centers = ring(4, radius = 2.0)
energy gmm(x: [2]) = -logsumexp(-sqnorm(x - centers) / (2 * 0.1^2))",
        "gmm",
        r#"graph gmm {
  in0 x: [2] sample
  %0 = input x : [2]
  %1 = const [2, 0, 0.00000000000000012246467991473532, 2, ...] : [4, 2]
  %2 = broadcast %0 : [4, 2]
  %3 = sub %2, %1 : [4, 2]
  %4 = powc 2 %3 : [4, 2]
  %5 = sum[1] %4 : [4]
  %6 = neg %5 : [4]
  %7 = scalar 0.020000000000000004 : []
  %8 = broadcast %7 : [4]
  %9 = div %6, %8 : [4]
  %10 = max[0] %9 : []
  %11 = stop_gradient %10 : []
  %12 = reshape %11 : [1]
  %13 = broadcast %12 : [4]
  %14 = sub %9, %13 : [4]
  %15 = exp %14 : [4]
  %16 = sum[0] %15 : []
  %17 = log %16 : []
  %18 = add %11, %17 : []
  %19 = neg %18 : []
  out energy = %19
}
"#,
    );
}

#[test]
fn golden_mlp() {
    check(
        "energy net(x: [2]) = mlp(x, [3, 1], act = relu)",
        "net",
        r#"graph net {
  in0 x: [2] sample
  in1 net.mlp0.w1: [2, 3] shared
  in2 net.mlp0.b1: [3] shared
  in3 net.mlp0.w2: [3, 1] shared
  in4 net.mlp0.b2: [1] shared
  %0 = input x : [2]
  %1 = input net.mlp0.w1 : [2, 3]
  %2 = matmul %0, %1 : [3]
  %3 = input net.mlp0.b1 : [3]
  %4 = add %2, %3 : [3]
  %5 = scalar 0 : []
  %6 = broadcast %5 : [3]
  %7 = max %4, %6 : [3]
  %8 = input net.mlp0.w2 : [3, 1]
  %9 = matmul %7, %8 : [1]
  %10 = input net.mlp0.b2 : [1]
  %11 = add %9, %10 : [1]
  %12 = reshape %11 : []
  out energy = %12
}
"#,
    );
}

#[test]
fn golden_composition() {
    check(
        "energy a(x: [2]) = sum(x)
energy b(x: [2] | c: [2]) = dot(x, c)
energy e(x: [2]) = a(x) or b(x | [1, 0]) and not 0.5 * a(x)",
        "e",
        r#"graph e {
  in0 x: [2] sample
  %0 = input x : [2]
  %1 = sum[0] %0 : []
  %2 = neg %1 : []
  %3 = reshape %2 : [1]
  %4 = const [1, 0] : [2]
  %5 = mul %0, %4 : [2]
  %6 = sum[0] %5 : []
  %7 = scalar 0.5 : []
  %8 = mul %7, %1 : []
  %9 = neg %8 : []
  %10 = add %6, %9 : []
  %11 = neg %10 : []
  %12 = reshape %11 : [1]
  %13 = concat axis=0 %3, %12 : [2]
  %14 = max[0] %13 : []
  %15 = stop_gradient %14 : []
  %16 = reshape %15 : [1]
  %17 = broadcast %16 : [2]
  %18 = sub %13, %17 : [2]
  %19 = exp %18 : [2]
  %20 = sum[0] %19 : []
  %21 = log %20 : []
  %22 = add %15, %21 : []
  %23 = neg %22 : []
  out energy = %23
}
"#,
    );
}

#[test]
fn golden_index_where_model() {
    check(
        "model f(x: [2, 3]) -> [2] = where(x[:, 1] > 0, x[0, :2], x[1, 0:2] ^ x[0, 1:])",
        "f",
        r#"graph f {
  in0 x: [2, 3] sample
  %0 = input x : [2, 3]
  %1 = slice axis=1 start=1 %0 : [2, 1]
  %2 = reshape %1 : [2]
  %3 = scalar 0 : []
  %4 = broadcast %3 : [2]
  %5 = gt %2, %4 : [2]
  %6 = slice axis=0 start=0 %0 : [1, 3]
  %7 = slice axis=1 start=0 %6 : [1, 2]
  %8 = reshape %7 : [2]
  %9 = slice axis=0 start=1 %0 : [1, 3]
  %10 = slice axis=1 start=0 %9 : [1, 2]
  %11 = reshape %10 : [2]
  %12 = slice axis=1 start=1 %6 : [1, 2]
  %13 = reshape %12 : [2]
  %14 = pow %11, %13 : [2]
  %15 = select %5, %8, %14 : [2]
  out out = %15
}
"#,
    );
}

#[test]
fn dynamic_index_by_conditioning_label() {
    let m = module(
        "model f(x: [3]) -> [3] = 2 * x
energy exy(x: [3] | y: []) = -f(x)[y]
energy row(x: [2, 2] | k: []) = sum(x[k])",
    );
    let x = [1.0, 2.0, 3.0];
    for y in 0..3 {
        assert_eq!(eval(&m, "exy", &x, Some(&[y as f64]))[0], -2.0 * x[y]);
    }
    assert_eq!(eval(&m, "exy", &x, Some(&[7.0]))[0], 0.0);
    assert_eq!(eval(&m, "row", &[1.0, 2.0, 3.0, 4.0], Some(&[1.0]))[0], 7.0);
}
