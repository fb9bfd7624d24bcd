use super::math;
use crate::autodiff::derived::KernelSpec;
use crate::ir::{Axes, BatchReduce, BinaryOp, Graph, InputKind, NodeId, UnaryOp, interp, numel};
use crate::pipeline::{self, SourceFile};

fn file(source: &str) -> SourceFile {
    SourceFile {
        path: "test.ebm".into(),
        text: source.into(),
    }
}

/// The optimised energy-and-gradient kernel of `energy`, as `:grad` sees it.
fn grad_graph(source: &str, energy: &str) -> Graph {
    let file = file(source);
    let module = pipeline::analyze(&file).unwrap_or_else(|d| panic!("{d}"));
    pipeline::optimized_kernel_graph(&file, &module, energy, KernelSpec::ENERGY_GRAD)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `math` of `energy`'s optimised gradient kernel is `expect`.
fn check(source: &str, energy: &str, outputs: &[(&str, &str)], expect: &str) {
    let g = grad_graph(source, energy);
    crate::ir::verify::verify(&g).unwrap();
    let got = math(&g, outputs);
    assert_eq!(
        got,
        expect,
        "{energy}:\n{got}\nfrom\n{}",
        crate::ir::print::print(&g)
    );
}

const BOTH: &[(&str, &str)] = &[("energy", "energy"), ("grad_x", "grad_x")];

#[test]
fn example_energies_and_their_gradients() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "param mu: [2] ~ zeros
             const s = 0.5
             energy gauss(x: [2]) = sum((x - mu)^2) / (2 * s^2)",
            "gauss",
            "t1 = x - mu
energy = sum(t1^2) / 0.5
grad_x = 4 * t1
",
        ),
        (
            "energy banana(x: [2]) = (1 - x[0])^2 / 2 + 5 * (x[1] - x[0]^2)^2",
            "banana",
            "t1 = 1 - x[0]
t2 = x[1] - x[0]^2
t3 = 10 * t2
energy = t1^2 / 2 + 5 * t2^2
grad_x = [0, t3] + [-t3 * 2 * x[0] - t1, 0]
",
        ),
        (
            "energy soft(x: [2]) = -logsumexp(-sum((x - ring(4, radius=2.0))^2, axis = 1) / 0.5)",
            "soft",
            "t1 = x - <const [4, 2]>
t2 = -sum(t1^2, axis = 1) / 0.5
t3 = max(t2)
t4 = exp(t2 - t3)
t5 = sum(t4)
energy = -(t3 + log(t5))
grad_x = sum(1 / t5 * t4 / 0.5 * 2 * t1, axis = 0)
",
        ),
        (
            "param W: [2, 3] ~ normal(0, 1)
             energy layer(x: [2]) = sum(tanh(x @ W))",
            "layer",
            "t1 = tanh(x @ W)
energy = sum(t1)
grad_x = W @ (1 - t1 * t1)
",
        ),
        (
            "energy net(x: [2]) = sum(mlp(x, [4, 1], act = tanh))",
            "net",
            "t1 = tanh(x @ net.mlp0.w1 + net.mlp0.b1)
energy = sum(t1 @ net.mlp0.w2 + net.mlp0.b2)
grad_x = net.mlp0.w1 @ (net.mlp0.w2 * (1 - t1 * t1))
",
        ),
        (
            "energy sel(x: [2]) = sum(where(x > 0, x, 0.1 * x)) + max(x) + sum(maximum(x, 0))",
            "sel",
            "t1 = x > 0
t2 = max(x)
t3 = x >= t2
energy = sum(where(t1, x, 0.1 * x)) + t2 + sum(maximum(x, 0))
grad_x = (x >= 0) + 1 / sum(t3) * t3 + where(t1, 1, 0) + where(t1, 0, 1) * 0.1
",
        ),
        (
            // Pieces of a gradient and constant fills make one vector literal.
            "energy r(x: [3]) = abs(x[0]) + sqrt(x[1]^2 + 1) / x[2]^3 + log1p(x[0]^2)",
            "r",
            "t1 = sqrt(x[1]^2 + 1)
t2 = x[2]^3
t3 = t1 / t2
t4 = x[0]^2
energy = abs(x[0]) + t3 + log1p(t4)
grad_x = [0, 0, -t3 / t2 * 3 * x[2]^2] + [0, 1 / t2 * 0.5 / t1 * 2 * x[1], 0] + [1 / (1 + t4) * 2 * x[0] + sign(x[0]), 0, 0]
",
        ),
        (
            // A spread constant keeps its shape where the shape matters.
            "energy q(x: [2, 3]) = sum(transpose(x) @ x)",
            "q",
            "t1 = transpose(x)
energy = sum(t1 @ x)
grad_x = x @ ones([3, 3]) + transpose(ones([3, 3]) @ t1)
",
        ),
    ];
    for (source, energy, expect) in cases {
        check(source, energy, BOTH, expect);
    }
}

#[test]
fn only_the_requested_outputs_count_for_sharing() {
    let gauss = "param mu: [2] ~ zeros
                 energy gauss(x: [2]) = sum((x - mu)^2) / (2 * 0.5^2)";
    check(gauss, "gauss", &[("grad_x", "∇E")], "∇E = 4 * (x - mu)\n");
    check(
        gauss,
        "gauss",
        &[("grad_x", "g"), ("nope", "h")],
        "g = 4 * (x - mu)\nh = <no output nope>\n",
    );
    check(gauss, "gauss", &[], "");
}

#[test]
fn indexing_prints_numpy_style() {
    check(
        "energy idx(x: [2, 3]) = x[0, 1] + sum(x[:, 1]) + sum(x[1, 0:2]) + sum(x[:, ::2]) + max(x, axis = 1)[1]",
        "idx",
        &[("energy", "E")],
        "E = x[0, 1] + sum(x[:, 1]) + sum(x[1, :2]) + sum(x[:, ::2]) + max(x, axis = 1)[1]\n",
    );
}

// ----- Hand-built graphs: precedence and the rewrites -----

type Build = fn(&mut Graph, NodeId, NodeId, NodeId) -> NodeId;

/// A graph of scalar inputs `a`, `b`, `c` with `build`'s node as output `y`.
fn hand_graph(build: Build) -> Graph {
    let mut g = Graph::new("hand");
    let [a, b, c] = ["a", "b", "c"].map(|n| g.input_node(n, vec![], InputKind::Sample));
    let y = build(&mut g, a, b, c);
    g.add_output("y", y, BatchReduce::PerSample);
    g
}

fn show(g: &Graph) -> String {
    let text = math(g, &[("y", "y")]);
    text.strip_prefix("y = ")
        .and_then(|t| t.strip_suffix('\n'))
        .unwrap_or(&text)
        .to_string()
}

/// (printed, whether the language reads it back, graph).
fn precedence_cases() -> Vec<(&'static str, bool, Build)> {
    vec![
        ("a - (b - c)", true, |g, a, b, c| {
            let d = g.sub(b, c);
            g.sub(a, d)
        }),
        ("a - b - c", true, |g, a, b, c| {
            let d = g.sub(a, b);
            g.sub(d, c)
        }),
        ("a - b + c", true, |g, a, b, c| {
            let d = g.sub(a, b);
            g.add_(d, c)
        }),
        ("a + (b + c)", true, |g, a, b, c| {
            let d = g.add_(b, c);
            g.add_(a, d)
        }),
        ("(a + b) * c", true, |g, a, b, c| {
            let d = g.add_(a, b);
            g.mul(d, c)
        }),
        ("a * b / c", true, |g, a, b, c| {
            let d = g.mul(a, b);
            g.div(d, c)
        }),
        ("a / (b * c)", true, |g, a, b, c| {
            let d = g.mul(b, c);
            g.div(a, d)
        }),
        ("a / (b / c)", true, |g, a, b, c| {
            let d = g.div(b, c);
            g.div(a, d)
        }),
        ("-a^2", true, |g, a, _, _| {
            let d = g.powc(a, 2.0);
            g.neg(d)
        }),
        ("(-a)^2", true, |g, a, _, _| {
            let d = g.neg(a);
            g.powc(d, 2.0)
        }),
        ("(a^2)^3", true, |g, a, _, _| {
            let d = g.powc(a, 2.0);
            g.powc(d, 3.0)
        }),
        ("2^(a^2)", true, |g, a, _, _| {
            let two = g.scalar(2.0);
            let d = g.powc(a, 2.0);
            g.binary(BinaryOp::Pow, two, d)
        }),
        ("(a + b)^c", true, |g, a, b, c| {
            let d = g.add_(a, b);
            g.binary(BinaryOp::Pow, d, c)
        }),
        ("a^(-2)", true, |g, a, _, _| g.powc(a, -2.0)),
        ("a^1.5", true, |g, a, _, _| g.powc(a, 1.5)),
        ("-(a + b)", true, |g, a, b, _| {
            let d = g.add_(a, b);
            g.neg(d)
        }),
        // Negation is exact, so it moves to the first factor ...
        ("-a * b / c", true, |g, a, b, c| {
            let d = g.mul(a, b);
            let d = g.div(d, c);
            g.neg(d)
        }),
        ("-2 * a", true, |g, a, _, _| {
            let k = g.scalar(2.0);
            let d = g.mul(k, a);
            g.neg(d)
        }),
        // ... and from there into a sum.
        ("c - a * b", true, |g, a, b, c| {
            let n = g.neg(a);
            let d = g.mul(n, b);
            g.add_(c, d)
        }),
        ("c + a * b", true, |g, a, b, c| {
            let n = g.neg(a);
            let d = g.mul(n, b);
            g.sub(c, d)
        }),
        ("-a * b", true, |g, a, b, _| {
            let d = g.neg(a);
            g.mul(d, b)
        }),
        ("a * (-b)", true, |g, a, b, _| {
            let d = g.neg(b);
            g.mul(a, d)
        }),
        ("a * (-3)", true, |g, a, _, _| {
            let k = g.scalar(-3.0);
            g.mul(a, k)
        }),
        ("-3 * a", true, |g, a, _, _| {
            let k = g.scalar(-3.0);
            g.mul(k, a)
        }),
        ("a - b", true, |g, a, b, _| {
            let d = g.neg(b);
            g.add_(a, d)
        }),
        ("a + b", true, |g, a, b, _| {
            let d = g.neg(b);
            g.sub(a, d)
        }),
        ("a + 3", true, |g, a, _, _| {
            let k = g.scalar(-3.0);
            g.sub(a, k)
        }),
        ("-a", true, |g, a, _, _| {
            let k = g.scalar(-1.0);
            g.mul(k, a)
        }),
        ("a", true, |g, a, _, _| {
            let d = g.neg(a);
            g.neg(d)
        }),
        ("a / b", true, |g, a, b, _| {
            let d = g.powc(b, -1.0);
            g.mul(a, d)
        }),
        ("1 / a", true, |g, a, _, _| g.powc(a, -1.0)),
        ("sqrt(a + b)", true, |g, a, b, _| {
            let d = g.add_(a, b);
            g.powc(d, 0.5)
        }),
        ("c / sqrt(a)", true, |g, a, _, c| {
            let d = g.powc(a, -0.5);
            g.mul(c, d)
        }),
        ("exp(-a) * 1e-7", true, |g, a, _, _| {
            let d = g.neg(a);
            let e = g.unary(UnaryOp::Exp, d);
            let k = g.scalar(1e-7);
            g.mul(e, k)
        }),
        (
            "log1p(sigmoid(a)) + softplus(tanh(b))",
            true,
            |g, a, b, _| {
                let s = g.unary(UnaryOp::Sigmoid, a);
                let l = g.unary(UnaryOp::Log1p, s);
                let t = g.unary(UnaryOp::Tanh, b);
                let p = g.unary(UnaryOp::Softplus, t);
                g.add_(l, p)
            },
        ),
        ("where(a > b, a, minimum(b, c))", true, |g, a, b, c| {
            let cond = g.binary(BinaryOp::Gt, a, b);
            let m = g.binary(BinaryOp::Min, b, c);
            g.select(cond, a, m)
        }),
        ("where(a - b > 0, 1, 0) * c", true, |g, a, b, c| {
            let d = g.sub(a, b);
            let s = g.unary(UnaryOp::Step, d);
            g.mul(s, c)
        }),
        // Comparisons are values in the IR, but only `where` conditions in
        // the language: readable, not re-parseable.
        ("(a >= b + c) * c", false, |g, a, b, c| {
            let d = g.add_(b, c);
            let ge = g.binary(BinaryOp::Ge, a, d);
            g.mul(ge, c)
        }),
        ("sign(a) * abs(b)", false, |g, a, b, _| {
            let s = g.unary(UnaryOp::Sign, a);
            let m = g.unary(UnaryOp::Abs, b);
            g.mul(s, m)
        }),
        // `stop_gradient` and broadcasts are transparent.
        ("sum(exp(a) * [1, 2])", true, |g, a, _, _| {
            let e = g.unary(UnaryOp::Exp, a);
            let s = g.stop_gradient(e);
            let k = g.constant_tensor(vec![2], vec![1.0, 2.0]);
            let p = g.mul(s, k);
            g.sum_all(p)
        }),
        ("sum([[1, 2], [3, 4]] @ [a, b])", true, |g, a, b, _| {
            let m = g.constant_tensor(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]);
            let a1 = g.reshape(a, &[1]);
            let b1 = g.reshape(b, &[1]);
            let v = g.concat(vec![a1, b1], 0);
            let p = g.matmul(m, v);
            g.sum_all(p)
        }),
    ]
}

#[test]
fn precedence_and_rewrites() {
    for (expect, _, build) in precedence_cases() {
        let g = hand_graph(build);
        assert_eq!(show(&g), expect, "\n{}", crate::ir::print::print(&g));
    }
}

#[test]
fn precedence_cases_mean_what_they_compute() {
    for (_, reparses, build) in precedence_cases() {
        if reparses {
            roundtrip(&hand_graph(build), "y");
        }
    }
}

// ----- Tensors -----

/// `build`'s node over inputs `x: [3]`, `W: [2, 3]`, `T: [2, 3, 6]`.
fn show_tensor(build: fn(&mut Graph, NodeId, NodeId, NodeId) -> NodeId) -> String {
    let mut g = Graph::new("tensors");
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let w = g.input_node("W", vec![2, 3], InputKind::Shared);
    let t = g.input_node("T", vec![2, 3, 6], InputKind::Shared);
    let y = build(&mut g, x, w, t);
    g.add_output("y", y, BatchReduce::PerSample);
    show(&g)
}

#[test]
fn tensor_operations() {
    let cases: Vec<(&str, Build)> = vec![
        ("x[1:]", |g, x, _, _| g.slice(x, 0, 1, 2)),
        ("x[:2]", |g, x, _, _| g.slice(x, 0, 0, 2)),
        ("x[1:2]", |g, x, _, _| g.slice(x, 0, 1, 1)),
        ("x[::2]", |g, x, _, _| g.slice_step(x, 0, 0, 2, 2)),
        ("T[:, :, 1:4:2]", |g, _, _, t| g.slice_step(t, 2, 1, 2, 2)),
        ("T[:, :, 1::2]", |g, _, _, t| g.slice_step(t, 2, 1, 3, 2)),
        ("T[:, :, 1:2]", |g, _, _, t| g.slice_step(t, 2, 1, 1, 2)),
        ("W[:, 1]", |g, _, w, _| {
            let s = g.slice(w, 1, 1, 1);
            g.reshape(s, &[2])
        }),
        ("W[1, 2]", |g, _, w, _| {
            let s = g.slice(w, 0, 1, 1);
            let s = g.slice(s, 1, 2, 1);
            g.reshape(s, &[])
        }),
        ("T[:, :, 1:][:, :, ::2]", |g, _, _, t| {
            let s = g.slice(t, 2, 1, 5);
            g.slice_step(s, 2, 0, 3, 2)
        }),
        ("W[1, 1:]", |g, _, w, _| {
            let s = g.slice(w, 0, 1, 1);
            let r = g.reshape(s, &[3]);
            g.slice(r, 0, 1, 2)
        }),
        ("exp(x)[0]", |g, x, _, _| {
            let e = g.unary(UnaryOp::Exp, x);
            let s = g.slice(e, 0, 0, 1);
            g.reshape(s, &[])
        }),
        ("sum(W, axis = 1)", |g, _, w, _| {
            g.reduce_sum(w, Axes::of(&[1]))
        }),
        ("sum(sum(T, axis = 2), axis = 0)", |g, _, _, t| {
            g.reduce_sum(t, Axes::of(&[0, 2]))
        }),
        ("max(T)", |g, _, _, t| g.reduce_max(t, Axes::all(3))),
        ("transpose(W)", |g, _, w, _| g.transpose(w, &[1, 0])),
        ("transpose(T, perm = [1, 0, 2])", |g, _, _, t| {
            g.transpose(t, &[1, 0, 2])
        }),
        ("transpose(T)", |g, _, _, t| g.transpose(t, &[2, 1, 0])),
        ("W @ x", |g, x, w, _| g.matmul(w, x)),
        ("(W + 1) @ (x * 2)", |g, x, w, _| {
            let one = g.scalar(1.0);
            let a = g.add_(w, one);
            let two = g.scalar(2.0);
            let b = g.mul(x, two);
            g.matmul(a, b)
        }),
        ("concat(W, W, axis = 1)", |g, _, w, _| {
            g.concat(vec![w, w], 1)
        }),
        ("concat(x, zeros([2]))", |g, x, _, _| {
            let z = g.fill(0.0, &[2]);
            g.concat(vec![x, z], 0)
        }),
        ("[x[0], 0, 0, 0.5]", |g, x, _, _| {
            let s = g.slice(x, 0, 0, 1);
            let s = g.reshape(s, &[]);
            let s = g.reshape(s, &[1]);
            let z = g.fill(0.0, &[2]);
            let h = g.fill(0.5, &[1]);
            g.concat(vec![s, z, h], 0)
        }),
        ("concat(x[:1], 0.5 * ones([1]))", |g, x, _, _| {
            let s = g.slice(x, 0, 0, 1);
            let h = g.fill(0.5, &[1]);
            g.concat(vec![s, h], 0)
        }),
        ("W @ (2 * ones([3]))", |g, _, w, _| {
            let k = g.fill(2.0, &[3]);
            g.matmul(w, k)
        }),
        ("<const [4, 2]>", |g, _, _, _| {
            g.constant_tensor(vec![4, 2], (0..8).map(f64::from).collect::<Vec<f64>>())
        }),
        ("[[1.5, -2], [0, 1e20]]", |g, _, _, _| {
            g.constant_tensor(vec![2, 2], vec![1.5, -2.0, 0.0, 1e20])
        }),
    ];
    for (expect, build) in cases {
        assert_eq!(show_tensor(build), expect);
    }
}

#[test]
fn scans_are_opaque_calls() {
    let mut body = Graph::new("step");
    let s = body.input_node("s", vec![], InputKind::Sample);
    let v = body.input_node("v", vec![], InputKind::Sample);
    let next = body.add_(s, v);
    body.add_output("next", next, BatchReduce::PerSample);
    let mut g = Graph::new("scan");
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let zero = g.scalar(0.0);
    let e = g.unary(UnaryOp::Exp, x);
    let forward = g.scan(body.clone(), zero, &[e], &[], false);
    let backward = g.scan(body, zero, &[x], &[], true);
    let y = g.add_(forward, backward);
    g.add_output("y", y, BatchReduce::PerSample);
    assert_eq!(show(&g), "scan(0, exp(x)) + scan(0, x, reverse = true)");
}

// ----- Sharing -----

#[test]
fn an_output_used_by_another_gets_a_line() {
    let mut g = Graph::new("shared");
    let a = g.input_node("a", vec![], InputKind::Sample);
    let b = g.input_node("b", vec![], InputKind::Sample);
    let e = g.unary(UnaryOp::Exp, a);
    let y = g.mul(e, b);
    g.add_output("e", e, BatchReduce::PerSample);
    g.add_output("y", y, BatchReduce::PerSample);
    assert_eq!(
        math(&g, &[("e", "E"), ("y", "Y")]),
        "t1 = exp(a)\nE = t1\nY = t1 * b\n"
    );
    assert_eq!(math(&g, &[("y", "Y")]), "Y = exp(a) * b\n");
    // The same output twice is one value, named once.
    assert_eq!(
        math(&g, &[("y", "Y"), ("y", "Z")]),
        "t1 = exp(a) * b\nY = t1\nZ = t1\n"
    );
}

#[test]
fn sharing_looks_through_broadcasts_and_leaves_atoms_inline() {
    let mut g = Graph::new("bcast");
    let x = g.input_node("x", vec![2], InputKind::Sample);
    let a = g.input_node("a", vec![], InputKind::Sample);
    let e = g.unary(UnaryOp::Exp, a);
    let s = g.stop_gradient(e);
    let wide = g.broadcast(s, &[2]);
    let p = g.mul(x, wide);
    let x0 = g.slice(x, 0, 0, 1);
    let x0 = g.reshape(x0, &[]);
    let q = g.mul(e, x0);
    let r = g.mul(x0, x0);
    let q = g.add_(q, r);
    let y = g.sum_all(p);
    let y = g.add_(y, q);
    g.add_output("y", y, BatchReduce::PerSample);
    assert_eq!(
        math(&g, &[("y", "y")]),
        "t1 = exp(a)\ny = sum(x * t1) + (t1 * x[0] + x[0] * x[0])\n"
    );

    // Indexing is repeated; what it indexes is shared.
    let mut g = Graph::new("index");
    let x = g.input_node("x", vec![2], InputKind::Sample);
    let e = g.unary(UnaryOp::Exp, x);
    let e0 = g.slice(e, 0, 0, 1);
    let e0 = g.reshape(e0, &[]);
    let e1 = g.slice(e, 0, 1, 1);
    let y = g.mul(e0, e0);
    let y = g.broadcast(y, &[1]);
    let y = g.add_(y, e1);
    g.add_output("y", y, BatchReduce::PerSample);
    assert_eq!(
        math(&g, &[("y", "y")]),
        "t1 = exp(x)\ny = t1[0] * t1[0] + t1[1:]\n"
    );
}

#[test]
fn line_names_avoid_input_names() {
    let mut g = Graph::new("clash");
    let t1 = g.input_node("t1", vec![], InputKind::Sample);
    let e = g.unary(UnaryOp::Exp, t1);
    let y = g.mul(e, e);
    g.add_output("y", y, BatchReduce::PerSample);
    assert_eq!(math(&g, &[("y", "y")]), "t_1 = exp(t1)\ny = t_1 * t_1\n");
}

#[test]
fn deep_expressions_are_cut_into_lines() {
    let mut g = Graph::new("deep");
    let x = g.input_node("x", vec![], InputKind::Sample);
    let mut y = x;
    for k in 0..20_000 {
        y = if k % 2 == 0 {
            g.unary(UnaryOp::Sin, y)
        } else {
            let one = g.scalar(1.0);
            g.add_(y, one)
        };
    }
    g.add_output("y", y, BatchReduce::PerSample);
    // On a test thread's small stack: building and printing never recurse deeply.
    let text = math(&g, &[("y", "y")]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() > 20_000 / super::MAX_INLINE_DEPTH,
        "{}",
        lines.len()
    );
    assert!(lines.iter().all(|l| l.len() < 20 * super::MAX_INLINE_DEPTH));
    assert!(lines[0].starts_with("t1 = ") && lines.last().unwrap().starts_with("y = "));

    // Indexing an input reads as an atom, but not 3000 levels of it.
    let mut g = Graph::new("slices");
    let n = 3000;
    let mut y = g.input_node("x", vec![n + 1], InputKind::Sample);
    for k in 0..n {
        y = g.slice(y, 0, 1, n - k);
    }
    g.add_output("y", y, BatchReduce::PerSample);
    let text = math(&g, &[("y", "y")]);
    assert!(text.lines().count() > n / (super::MAX_INLINE_DEPTH + 1));
    assert!(text.starts_with("t1 = x[1:][1:]"), "{}", &text[..40]);
}

// ----- Printed energies read back -----

/// The value an input gets in the round trip (positive, so logs and
/// roots are defined): `a`, `b`, `c` are the hand graphs' `x[0..3]`.
fn input_value(name: &str, n: usize) -> Vec<f64> {
    let x = |i: usize| 0.7 + 0.6 * i as f64;
    match name {
        "a" => vec![x(0)],
        "b" => vec![x(1)],
        "c" => vec![x(2)],
        "x" => (0..n).map(x).collect(),
        _ => (0..n)
            .map(|i| 0.3 + 0.1 * ((i + name.len()) % 7) as f64)
            .collect(),
    }
}

/// Output `output` of `g` (summed if not a scalar) at `input_value`.
fn value_at(g: &Graph, output: &str) -> f64 {
    let values: Vec<Vec<f64>> = g
        .inputs()
        .iter()
        .map(|i| input_value(&i.name, numel(&i.shape)))
        .collect();
    let data: Vec<&[f64]> = values.iter().map(|v| v.as_slice()).collect();
    let k = g.outputs.iter().position(|o| o.name == output).unwrap();
    interp::eval::<f64>(g, &data, 1).unwrap()[k].iter().sum()
}

/// The printed `output` of `g`, its lines as `let`s, read back by the
/// language as an energy body (summed if not a scalar), has `g`'s value.
fn roundtrip(g: &Graph, output: &str) {
    let text = math(g, &[(output, "value")]);
    let mut lines: Vec<&str> = text.lines().collect();
    let last = lines.pop().unwrap().strip_prefix("value = ").unwrap();
    let mut source = String::new();
    let mut body = String::new();
    for i in g.inputs() {
        match (i.name.as_str(), i.kind) {
            ("a" | "b" | "c", _) => {
                let k = i.name.as_bytes()[0] - b'a';
                body.push_str(&format!("let {} = x[{k}] in\n", i.name));
            }
            (_, InputKind::Shared) => {
                source.push_str(&format!("param {}: {:?} ~ zeros\n", i.name, i.shape))
            }
            _ => {}
        }
    }
    for line in lines {
        let (name, value) = line.split_once(" = ").unwrap();
        body.push_str(&format!("let {name} = {value} in\n"));
    }
    let x_shape = g
        .find_input("x")
        .map_or(vec![3], |i| g.input(i).shape.clone());
    source.push_str(&format!(
        "energy f(x: {x_shape:?}) = (\n{body}sum({last})\n)\n"
    ));
    let file = file(&source);
    let module = pipeline::analyze(&file).unwrap_or_else(|d| panic!("{source}\n{d}"));
    let back = pipeline::energy_graph(&file, &module, "f").unwrap();
    let (want, got) = (value_at(g, output), value_at(&back, "energy"));
    assert!(
        (want - got).abs() <= 1e-9 * (1.0 + want.abs()),
        "{source}: {got}, graph {want}"
    );
}

#[test]
fn printed_energies_and_gradients_read_back() {
    let source = "param mu: [2] ~ zeros
param W: [2, 3] ~ normal(0, 1)
energy gauss(x: [2]) = sum((x - mu)^2) / (2 * 0.5^2)
energy banana(x: [2]) = (1 - x[0])^2 / 2 + 5 * (x[1] - x[0]^2)^2
energy layer(x: [2]) = sum(tanh(x @ W))
energy sel(x: [2]) = sum(where(x > 1, x, 0.1 * x)) + max(x) + sum(maximum(x, 0))
energy r(x: [3]) = abs(x[0]) + sqrt(x[1]^2 + 1) / x[2]^3 + log1p(x[0]^2)
energy idx(x: [2, 3]) = x[0, 1] + sum(x[:, 1]) + sum(x[1, 0:2]) + sum(x[:, ::2]) + max(x, axis = 1)[1]
";
    for energy in ["gauss", "banana", "layer", "sel", "r", "idx"] {
        roundtrip(&grad_graph(source, energy), "energy");
    }
    // Gradients without comparisons, `sign` or dropped reshapes.
    for energy in ["gauss", "banana", "layer"] {
        roundtrip(&grad_graph(source, energy), "grad_x");
    }
}

#[test]
fn every_example_kernel_prints() {
    let mut files = Vec::new();
    for dir in ["examples", "tests/golden"] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "ebm") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut printed = 0;
    for path in files {
        let file = SourceFile::read(&path).unwrap();
        let Ok(module) = pipeline::analyze(&file) else {
            continue; // examples that load data files
        };
        for def in &module.defs {
            if def.kind != crate::sema::DefKind::Energy {
                continue;
            }
            let g = pipeline::optimized_kernel_graph(&file, &module, &def.name, KernelSpec::ALL)
                .unwrap();
            let outputs: Vec<(&str, &str)> = g
                .outputs
                .iter()
                .map(|o| (o.name.as_str(), o.name.as_str()))
                .collect();
            let text = math(&g, &outputs);
            let labels: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with('t'))
                .map(|l| l.split(" = ").next().unwrap())
                .collect();
            let names: Vec<&str> = outputs.iter().map(|o| o.0).collect();
            assert_eq!(labels, names, "{}: {}\n{text}", path.display(), def.name);
            assert!(
                !text.contains('?'),
                "{}: {}\n{text}",
                path.display(),
                def.name
            );
            printed += 1;
        }
    }
    assert!(printed >= 10, "{printed}");
}
