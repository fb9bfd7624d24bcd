//! Data-driven: one `check(source, expect)` helper. `expect` holds one line
//! per warning, `CODE headline @ text under the caret`, or nothing.

use super::*;

fn check(src: &str, expect: &str) {
    let file = crate::pipeline::SourceFile {
        path: "t.ebm".into(),
        text: src.into(),
    };
    let module = crate::pipeline::analyze(&file).unwrap_or_else(|d| panic!("{d}"));
    let got: Vec<String> = module_warnings(&module, src)
        .iter()
        .map(|d| {
            let under = &src[d.span.start as usize..d.span.end as usize];
            format!("{} {} @ {under}", d.code, d.message)
        })
        .collect();
    let got = got.join("\n");
    let want: Vec<&str> = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got, want.join("\n"), "\n--- got\n{got}\n");
}

const DEFS: &str = "
energy sq(x: [2]) = sqnorm(x)
energy quad(x: [2]) = sqnorm(x)^2
energy ring(x: [2]) = (norm(x) - 2.0)^2 / (2 * 0.2^2)
energy net(x: [2]) = mlp(x, [16, 1])
";

fn with_defs(body: &str) -> String {
    format!("{DEFS}{body}\n")
}

#[test]
fn negating_a_coercive_energy_is_proven() {
    check(
        "energy bad(x: [2]) = not sqnorm(x)",
        "W0101 energy `bad` is unbounded below: it falls like −|x|^2 as |x| → ∞ @ not sqnorm(x)",
    );
}

#[test]
fn not_over_a_faster_term_blames_that_term() {
    check(
        &with_defs("energy bad(x: [2]) = ring(x) and not 2 * quad(x)"),
        "W0101 energy `bad` is unbounded below: `not 2 * quad(x)` falls like −|x|^4, the rest grows at most like |x|^2 @ not 2 * quad(x)",
    );
}

#[test]
fn negative_weights_and_subtraction() {
    check(
        &with_defs(
            "energy w1(x: [2]) = -2 * ring(x)
             energy w2(x: [2]) = (-1) * ring(x)
             energy w3(x: [2]) = ring(x) / -4
             energy s(x: [2]) = ring(x) - quad(x)",
        ),
        "W0101 energy `w1` is unbounded below: it falls like −|x|^2 as |x| → ∞ @ -2 * ring(x)
         W0101 energy `w2` is unbounded below: it falls like −|x|^2 as |x| → ∞ @ (-1) * ring(x)
         W0101 energy `w3` is unbounded below: it falls like −|x|^2 as |x| → ∞ @ ring(x) / -4
         W0101 energy `s` is unbounded below: the subtracted `quad(x)` falls like −|x|^4, the rest grows at most like |x|^2 @ quad(x)",
    );
}

#[test]
fn bounded_compositions_do_not_warn() {
    // examples/composed.ebm: softplus grows like |x| under a quadratic ring.
    check(
        "const centers = ring(8, radius = 2.0)
         energy ring(x: [2]) = (norm(x) - 2.0)^2 / (2 * 0.2^2)
         energy blob(x: [2] | c: [8]) = sqnorm(x - c @ centers) / (2 * 0.5^2)
         energy left(x: [2]) = softplus(-4 * x[0])
         energy composed(x: [2]) = ring(x) and (blob(x | onehot(0, 8)) or blob(x | onehot(4, 8))) and not 0.5 * left(x)",
        "",
    );
    check(
        &with_defs(
            "energy a(x: [2]) = quad(x) and not 3 * ring(x)
             energy b(x: [2]) = ring(x) and not 0.5 * sq(x)
             energy c(x: [2]) = sq(x) and not net(x)
             energy d(x: [2]) = ring(x) or quad(x)
             energy e(x: [2]) = ring(x) and not 3 * (0.5 * x @ [[2, 0], [0, 1]] @ x)",
        ),
        "",
    );
}

#[test]
fn a_mixture_falls_when_one_component_falls() {
    check(
        &with_defs("energy m(x: [2]) = (not quad(x)) or ring(x)"),
        "W0101 energy `m` is unbounded below: it falls like −|x|^4 as |x| → ∞ @ (not quad(x)) or ring(x)",
    );
}

#[test]
fn signed_squares_and_mixtures_of_falling_terms() {
    check(
        "energy k(x: [2]) = -x @ x
         energy l(x: [2]) = logsumexp([-sqnorm(x), -sqnorm(x - [3, 0])])
         energy m(x: [3]) = -sqnorm([[1, 0, 0], [0, 1, 0]] @ x)",
        "W0101 energy `k` is unbounded below: it falls like −|x|^2 as |x| → ∞ @ -x @ x
         W0101 energy `l` is unbounded below: it falls like −|x|^2 as |x| → ∞ @ logsumexp([-sqnorm(x), -sqnorm(x - [3, 0])])",
    );
}

#[test]
fn the_rest_may_grow_logarithmically_or_linearly() {
    check(
        &with_defs(
            "energy l(x: [2]) = log(1 + sqnorm(x))
             energy e(x: [2]) = l(x) and not 0.001 * norm(x)
             energy f(x: [2]) = net(x) and not 0.1 * sq(x)",
        ),
        "W0101 energy `e` is unbounded below: `not 0.001 * norm(x)` falls like −|x|, the rest grows at most like log|x| @ not 0.001 * norm(x)
         W0101 energy `f` is unbounded below: `not 0.1 * sq(x)` falls like −|x|^2, the rest grows at most like |x| @ not 0.1 * sq(x)",
    );
}

#[test]
fn equal_degrees_are_left_to_the_probe() {
    check(
        &with_defs(
            "energy p(x: [2]) = sq(x) and not 2 * sq(x - [1, 0])
             energy ok(x: [2]) = sq(x) and not 0.5 * sq(x - [1, 0])",
        ),
        "W0102 energy `p` appears to be unbounded below: along the direction (-1.00, 0.00) it falls from E = -1e10 at |x| = 1e5 to E = -1e12 at |x| = 1e6 @ sq(x) and not 2 * sq(x - [1, 0])",
    );
}

#[test]
fn the_probe_skips_plain_and_conditional_energies() {
    // Unbounded, but neither provable (a slice loses coercivity) nor a
    // composition: no warning, no probe.
    check("energy e(x: [2]) = x[0]^2 - 2 * x[0]^2", "");
    // A free conditioning input: not probed.
    check(
        &with_defs("energy c(x: [2] | c: [2]) = sq(x) and not 2 * sq(x - c)"),
        "",
    );
}

#[test]
fn unknown_growth_is_never_a_proof() {
    // exp grows faster than any power: no proof either way; as a
    // composition the probe still finds the ray where exp vanishes.
    check("energy e(x: [2]) = exp(sum(x)) - sqnorm(x)", "");
    check(
        &with_defs("energy e(x: [2]) = exp(sum(x)) - sq(x)"),
        "W0102 energy `e` appears to be unbounded below: along the direction (-1.00, 0.00) it falls from E = -1e10 at |x| = 1e5 to E = -1e12 at |x| = 1e6 @ exp(sum(x)) - sq(x)",
    );
    // Positive rest of unknown growth: nothing.
    check(
        &with_defs("energy e(x: [2]) = exp(sq(x)) and not quad(x)"),
        "",
    );
}

/// The growth analysis's claims against numbers: along every probe ray, a
/// `rise` (fall) of degree k means E(r)/r^k stays above (below) a positive
/// (negative) constant as r grows, and `up` = d bounds E(r)/r^d above.
#[test]
fn growth_claims_hold_numerically() {
    let src = with_defs(
        "energy a(x: [2]) = ring(x) and not 2 * quad(x)
         energy b(x: [2]) = 0.5 * x @ [[2, 1], [1, 3]] @ x - 10 * norm(x)
         energy c(x: [2]) = sqnorm([[1, 2], [3, 4]] @ x) / 100 - 5 * sum(abs(x))
         energy d(x: [2]) = -logsumexp([-sqnorm(x), -sqnorm(x - [3, 0])])
         energy e(x: [2]) = softplus(sum(x)) + sqrt(1 + sqnorm(x))
         energy f(x: [2]) = not (ring(x) or quad(x))
         energy g(x: [2]) = max(x) - 0.1 * sqnorm(x)^0.75
         energy h(x: [2]) = net(x) + tanh(sum(x)) * sqnorm(x) / 100
         energy i(x: [2]) = logsumexp([-sqnorm(x), -sqnorm(x - [3, 0])])
         energy j(x: [2]) = -x @ x + 0.5 * x @ [[2, 0], [0, 2]] @ x - sum(x)",
    );
    let file = crate::pipeline::SourceFile {
        path: "t.ebm".into(),
        text: src.clone(),
    };
    let module = crate::pipeline::analyze(&file).unwrap();
    let mut claims = 0;
    for name in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
        let g = crate::lower::lower(&module, name).unwrap();
        let (gr, root) = growth::of_output(&g).unwrap();
        let t = gr[root.index()];
        let params: Vec<Vec<f64>> = g
            .inputs()
            .iter()
            .skip(1)
            .map(|i| module.param(&i.name).unwrap().initial_value())
            .collect();
        for u in directions(2) {
            let at = |r: f64| {
                let x = [r * u[0], r * u[1]];
                let mut inputs: Vec<&[f64]> = vec![&x];
                inputs.extend(params.iter().map(|p| p.as_slice()));
                interp::eval::<f64>(&g, &inputs, 1).unwrap()[0][0]
            };
            let (e3, e5) = (at(1e3), at(1e5));
            if let Some(k) = t.rise {
                claims += 1;
                assert!(
                    e5 > 0.0 && e5 / 1e5f64.powf(k) > 0.1 * e3 / 1e3f64.powf(k).max(1e-300),
                    "{name} rise {k}: {e3} {e5}"
                );
            }
            if let Some(k) = t.fall {
                claims += 1;
                assert!(
                    e5 < 0.0 && e5 / 1e5f64.powf(k) < 0.1 * e3 / 1e3f64.powf(k),
                    "{name} fall {k}: {e3} {e5}"
                );
            }
            if t.up.is_finite() && t.up >= 0.0 {
                claims += 1;
                let d = t.up;
                assert!(
                    e5 <= 10.0 * 1e2f64.powf(d) * e3.abs().max(1.0),
                    "{name} up {d}: {e3} {e5}"
                );
            }
        }
    }
    assert!(claims > 100, "{claims}");
}
