//! Energies with scans that the backends are tested on: an AR-type
//! recurrence with a parameter, a GARCH variance recurrence, and a scan
//! over x itself with a vector carry, a network in the step, a fold and a
//! fold nested in a step.

#![allow(dead_code)]

pub const AR: &str = "
const y = [0.3, -1.2, 0.8, 2.0, -0.4, 0.1, 1.5]
param mu: [] ~ normal(0.1, 0.2)
energy arma(x: [3]) = (
  let phi = tanh(x[0]) in
  let theta = tanh(x[1]) in
  let eps = scan(0, y, (e, yt) => yt - mu - phi * e - theta * e^2 / 4) in
  0.5 * sqnorm(eps) * exp(-2 * x[2]) + 7 * x[2] + 0.5 * sqnorm(x)
)
";

pub const GARCH: &str = "
const r = [0.5, -1.1, 0.2, 1.7, -0.3, 0.9]
const r2 = r^2
energy garch(x: [3]) = (
  let omega = exp(x[0]) in
  let alpha = sigmoid(x[1]) in
  let beta = sigmoid(x[2]) * (1 - alpha) in
  let s2 = scan(omega, r2, (s, rt2) => omega + alpha * rt2 + beta * s) in
  0.5 * sum(log(s2) + r2 / s2) + 0.5 * sqnorm(x)
)
";

/// A scan over x itself (the sequence is differentiated), a vector carry,
/// a network inside the step (its parameters captured), a fold and a
/// scan nested in a step.
pub const MIXED: &str = "
energy e(x: [4, 2]) = (
  let h = scan([0.1, -0.2], x, (s, xt) => tanh(s + mlp(concat(s, xt), [3, 2], act = tanh))) in
  let inner = fold(0, x, (a, row) => a + fold(0, row, (b, v) => b + v^2 * a / 10)) in
  sum(h^2) + 0.1 * inner + 0.5 * sum(x^2)
)
";

/// The three sources with the energy each defines.
pub const SCAN_ENERGIES: [(&str, &str); 3] = [(AR, "arma"), (GARCH, "garch"), (MIXED, "e")];

/// Every derivative kernel (`graphs::all_derivatives`) of the energies
/// above and of the time-series examples (recurrences over 199 and 200
/// observations read from CSV).
pub fn scan_derivative_graphs() -> Vec<ebm::ir::Graph> {
    use ebm::pipeline::{SourceFile, analyze};
    let mut graphs = vec![];
    for (src, name) in SCAN_ENERGIES {
        let program = ebm::syntax::parse(src).unwrap_or_else(|d| panic!("parse: {d:?}"));
        let m = ebm::sema::analyze(&program, std::path::Path::new("."), ebm::lower::eval_const)
            .unwrap_or_else(|d| panic!("sema: {d:?}"));
        graphs.push(super::graphs::all_derivatives(
            &ebm::lower::lower(&m, name).unwrap(),
        ));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/timeseries");
    for name in ["arma", "garch"] {
        let file = SourceFile::read(&dir.join(format!("{name}.ebm"))).unwrap();
        let m = analyze(&file).unwrap();
        graphs.push(super::graphs::all_derivatives(
            &ebm::lower::lower(&m, name).unwrap(),
        ));
    }
    graphs
}
