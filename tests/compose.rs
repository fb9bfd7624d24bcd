//! Energies composed in Rust (`ebm::api::Energy`: `&`, `|`, `!`, `w *`,
//! `/ t`) against the same compositions written in the language: the same
//! graph node for node, bitwise-equal energies and gradients in f64, the
//! same MALA draws from the same seed; mistakes (shapes, clashing
//! parameters, bad numbers) come back as errors, never panics.

use std::sync::Arc;

use ebm::api::{Artifact, Energy, EnergyError, Program};
use ebm::ir::print::print;
use ebm::runtime::CompiledEnergy;
use ebm::sample::{RunConfig, SamplerConfig, run_compiled};

const SOURCE: &str = "
param mu: [2] ~ normal(0, 1)
energy a(x: [2]) = 0.5 * sqnorm(x - mu)
energy b(x: [2]) = mlp(x, [8, 1], act = swish)
energy k(x: [2] | c: [3]) = sqnorm(x) * softplus(sum(c)) + x[0] * c[1]

energy and_ab(x: [2]) = a(x) and b(x)
energy or_ab(x: [2]) = a(x) or b(x)
energy not_a(x: [2]) = not a(x)
energy w_a(x: [2]) = 0.5 * a(x)
energy a_w(x: [2]) = a(x) * 3.0
energy a_t(x: [2]) = a(x) / 2.0
energy mix(x: [2]) = (0.5 * a(x) and not b(x)) or a(x)
energy nested(x: [2]) = not (a(x) or 2.0 * b(x)) and (b(x) or a(x))
energy cond_and(x: [2] | c: [3]) = a(x) and k(x | c)
energy cond_or(x: [2] | c: [3]) = k(x | c) or not b(x)
";

fn program() -> Program {
    Program::from_source(SOURCE).unwrap()
}

/// A batch of 5 points in 2-D (and conditioning rows of 3).
fn batch() -> (Vec<f64>, Vec<f64>) {
    let x = vec![0.0, 0.0, 1.0, -2.0, 0.3, 0.7, -1.5, 2.5, 4.0, -3.0];
    let c = vec![
        0.1, 0.2, 0.3, -1.0, 0.5, 2.0, 0.0, 0.0, 0.0, 3.0, -2.0, 1.0, 0.7, 0.7, -0.7,
    ];
    (x, c)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Energies, ∇ₓE and ∇θE bitwise equal on the batch.
fn assert_same_values(rust: &CompiledEnergy, src: &CompiledEnergy, what: &str) {
    let (x, c) = batch();
    let c = (src.cond_dim() > 0).then_some(&c[..]);
    let r = rust.energy_and_grad_x(&x, c, 5).unwrap();
    let s = src.energy_and_grad_x(&x, c, 5).unwrap();
    assert_eq!(bits(&r.energy), bits(&s.energy), "{what}: energies");
    assert_eq!(bits(&r.grad_x), bits(&s.grad_x), "{what}: gradients");
    assert!(r.energy.iter().all(|e| e.is_finite()), "{what}: {r:?}");
    let mut rp: Vec<(String, Vec<u64>)> = rust
        .param_names()
        .into_iter()
        .zip(rust.grad_params(&x, c, 5).unwrap())
        .map(|(n, g)| (n, bits(&g)))
        .collect();
    let mut sp: Vec<(String, Vec<u64>)> = src
        .param_names()
        .into_iter()
        .zip(src.grad_params(&x, c, 5).unwrap())
        .map(|(n, g)| (n, bits(&g)))
        .collect();
    rp.sort();
    sp.sort();
    assert_eq!(rp, sp, "{what}: parameter gradients");
}

/// The compositions in Rust, with the source definition each mirrors.
fn cases(a: &Energy, b: &Energy, k: &Energy) -> Vec<(&'static str, Energy)> {
    vec![
        ("and_ab", a & b),
        ("or_ab", a | b),
        ("not_a", !a),
        ("w_a", 0.5 * a),
        ("a_w", a * 3.0),
        ("a_t", a.temperature(2.0)),
        ("mix", ((0.5 * a) & !b) | a),
        ("nested", !(a | (2.0 * b)) & (b | a)),
        ("cond_and", a & k),
        ("cond_or", k | !b),
    ]
}

#[test]
fn compositions_are_the_languages_graphs_and_values() {
    let p = program();
    let (a, b, k) = (
        p.energy_handle("a").unwrap(),
        p.energy_handle("b").unwrap(),
        p.energy_handle("k").unwrap(),
    );
    for (name, composed) in cases(&a, &b, &k) {
        // One program: the composition reads the program's own store.
        assert!(
            Arc::ptr_eq(composed.params().unwrap(), p.params()),
            "{name}"
        );
        let src = p.energy_handle(name).unwrap();
        assert_eq!(
            print(composed.named(name).graph().unwrap()),
            print(src.graph().unwrap()),
            "{name}: graphs differ"
        );
        assert_same_values(
            &composed.compiled().unwrap(),
            &p.energy(name).unwrap(),
            name,
        );
    }
}

#[test]
fn names_read_as_the_language() {
    let p = program();
    let (a, b) = (p.energy_handle("a").unwrap(), p.energy_handle("b").unwrap());
    assert_eq!((&a & &b).name(), "a and b");
    assert_eq!((((0.5 * &a) & !&b) | &a).name(), "0.5 * a and not b or a");
    assert_eq!((&a & (&b | &a)).name(), "a and (b or a)");
    assert_eq!(((&a | &b) | (&b | &a)).name(), "a or b or (b or a)");
    assert_eq!((!(&a | &b)).name(), "not (a or b)");
    assert_eq!((-0.5 * (&a & &b)).name(), "-0.5 * (a and b)");
    assert_eq!((&a & &b).temperature(2.0).name(), "(a and b) / 2");
    assert_eq!(a.temperature(2.0).name(), "a / 2");
    assert_eq!((&a | &b).named("mixture").name(), "mixture");
}

/// Operands from two stores (a model file and a program) get a merged
/// store of copies; the values stay bitwise those of the source composition.
#[test]
fn operands_from_a_model_file_and_a_program() {
    let p = program();
    // Trained-like values for `a` and `b`, then a model file of both.
    p.params().set("mu", &[0.25, -0.75]).unwrap();
    let names = p.params().names();
    for n in names.iter().filter(|n| n.starts_with("b.")) {
        let v: Vec<f64> = p
            .params()
            .get(n)
            .unwrap()
            .iter()
            .map(|v| v * 1.5 + 0.01)
            .collect();
        p.params().set(n, &v).unwrap();
    }
    let file = Artifact::from_bytes(&p.build(&["a", "b"]).unwrap().to_bytes()).unwrap();
    let loaded_a = file.energy_handle("a").unwrap();
    let loaded_b = file.energy_handle("b").unwrap();
    // `k` from a fresh program of the same source: its own store, whose
    // `mu` (initial value) differs from the file's, but `k` reads no `mu`.
    let fresh = program();
    let k = fresh.energy_handle("k").unwrap();
    for (name, composed) in cases(&loaded_a, &loaded_b, &k) {
        let store = composed.params().unwrap();
        let reads_k = name.starts_with("cond");
        assert_eq!(
            Arc::ptr_eq(store, file.params()),
            !reads_k,
            "{name}: the file's store is kept only without `k`"
        );
        assert_same_values(
            &composed.compiled().unwrap(),
            &p.energy(name).unwrap(),
            name,
        );
    }
}

#[test]
fn shared_store_sees_updates_merged_store_is_a_snapshot() {
    let p = program();
    let (a, b) = (p.energy_handle("a").unwrap(), p.energy_handle("b").unwrap());
    let shared = (&a & &b).compiled().unwrap();
    let before = shared.energy(&[1.0, 1.0], None, 1).unwrap();
    p.params().set("mu", &[3.0, 3.0]).unwrap();
    let after = shared.energy(&[1.0, 1.0], None, 1).unwrap();
    assert_ne!(
        before, after,
        "one store: the update reaches the composition"
    );

    let other = program();
    let merged = &a & &other.energy_handle("b").unwrap();
    assert!(!Arc::ptr_eq(merged.params().unwrap(), p.params()));
    let m = merged.compiled().unwrap();
    let v0 = m.energy(&[1.0, 1.0], None, 1).unwrap();
    p.params().set("mu", &[-3.0, 0.0]).unwrap();
    assert_eq!(v0, m.energy(&[1.0, 1.0], None, 1).unwrap(), "a snapshot");
}

#[test]
fn same_named_parameters_with_equal_values_are_one_parameter() {
    let (p, q) = (program(), program());
    let e = &p.energy_handle("a").unwrap() & &q.energy_handle("and_ab").unwrap();
    assert_eq!(e.error(), None);
    let names = e.param_names().unwrap();
    assert_eq!(names.iter().filter(|n| *n == "mu").count(), 1, "{names:?}");
}

#[test]
fn clashing_parameters_are_refused_until_renamed() {
    let (p, q) = (program(), program());
    q.params().set("mu", &[9.0, 9.0]).unwrap();
    let (a, qa) = (p.energy_handle("a").unwrap(), q.energy_handle("a").unwrap());
    let bad = &a & &qa;
    let err = bad.compiled().err().unwrap();
    assert!(
        matches!(&err, EnergyError::ParamClash { param, .. } if param == "mu"),
        "{err}"
    );
    assert!(err.to_string().contains("with_param_prefix"), "{err}");
    assert_eq!(a.try_or(&qa).unwrap_err(), err.clone().with_op("or"));

    let ok = &a & &qa.with_param_prefix("q.");
    let names = ok.param_names().unwrap();
    assert_eq!(names, vec!["mu".to_string(), "q.mu".to_string()]);
    let e = ok.compiled().unwrap();
    // E = 0.5|x − mu_p|² + 0.5|x − (9, 9)|² at x = mu_p.
    let mu = p.params().get("mu").unwrap();
    let want = 0.5 * ((mu[0] - 9.0).powi(2) + (mu[1] - 9.0).powi(2));
    assert_eq!(e.energy(&mu, None, 1).unwrap(), vec![want]);
}

trait WithOp {
    fn with_op(self, op: &'static str) -> Self;
}

impl WithOp for EnergyError {
    fn with_op(mut self, new: &'static str) -> Self {
        if let EnergyError::ParamClash { op, .. } = &mut self {
            *op = new;
        }
        self
    }
}

#[test]
fn shape_mistakes_are_deferred_errors() {
    let p = Program::from_source(
        "energy a(x: [2]) = sqnorm(x)\nenergy t(x: [3]) = sum(x)\n\
         energy k(x: [2] | c: [3]) = sum(x) * sum(c)\nenergy m(x: [2] | c: [4]) = sum(x) * sum(c)",
    )
    .unwrap();
    let h = |n| p.energy_handle(n).unwrap();
    let bad = &h("a") | &h("t");
    assert!(matches!(
        bad.error(),
        Some(EnergyError::XShape { op: "or", .. })
    ));
    assert_eq!(
        bad.error().unwrap().to_string(),
        "cannot compose `a` or `t`: `a` takes x of shape [2], `t` takes x of shape [3]"
    );
    // Further composition keeps the first error; compiling reports it.
    let worse = !((0.5 * &bad) & &h("a"));
    assert_eq!(worse.compiled().err(), bad.error().cloned());
    assert!(worse.graph().is_err() && worse.check().is_err());
    assert!(h("a").try_and(&h("t")).is_err());

    let cond = &h("k") & &h("m");
    assert!(matches!(cond.error(), Some(EnergyError::CondShape { .. })));
    // A conditional and an unconditional operand: conditional result.
    let mixed = &h("a") & &h("k");
    assert_eq!(mixed.cond_shape().unwrap(), Some(&[3usize][..]));
    assert_eq!(
        mixed
            .compiled()
            .unwrap()
            .energy(&[1.0, 2.0], Some(&[1.0, 1.0, 1.0]), 1)
            .unwrap(),
        vec![5.0 + 9.0]
    );

    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            h("a").temperature(t).error(),
            Some(EnergyError::BadNumber { .. })
        ));
        assert!(h("a").try_temperature(t).is_err());
    }
    assert!(h("a").try_scale(f64::NAN).is_err());
    assert!(h("a").try_scale(-2.0).is_ok());
}

#[test]
fn models_and_unknown_names_are_not_energies() {
    let p =
        Program::from_source("model f(x: [2]) -> [3] = mlp(x, [3])\nenergy e(x: [2]) = sum(f(x))")
            .unwrap();
    let err = p.energy_handle("f").unwrap_err();
    assert!(err.contains("is a model, not an energy"), "{err}");
    let err = p.energy_handle("ee").unwrap_err();
    assert!(err.contains("did you mean `e`"), "{err}");
    let model = p.model("f").unwrap();
    let err = Energy::from_compiled(&model).unwrap_err();
    assert!(matches!(err, EnergyError::NotAnEnergy { .. }), "{err}");
    let e = Energy::from_compiled(&p.energy("e").unwrap()).unwrap();
    assert_eq!(e.x_shape().unwrap(), &[2]);
}

/// MALA from Rust on a composition and on the source definition: the same
/// draws, bit for bit.
#[test]
fn samples_equal_the_source_composition() {
    let p = program();
    let (a, b) = (p.energy_handle("a").unwrap(), p.energy_handle("b").unwrap());
    let run = RunConfig::new(6, 50, 100, 11);
    let cfg = SamplerConfig::mala(0.2);
    for (name, composed) in [("mix", ((0.5 * &a) & !&b) | &a), ("or_ab", &a | &b)] {
        let rust = run_compiled(&composed.compiled().unwrap(), None, &cfg, &run).unwrap();
        let src = run_compiled(&p.energy(name).unwrap(), None, &cfg, &run).unwrap();
        assert_eq!(bits(&rust.x), bits(&src.x), "{name}: draws");
        assert_eq!(bits(&rust.energy), bits(&src.energy), "{name}: energies");
        assert!(rust.x.iter().all(|v| v.is_finite()));
    }
}

/// An inline `energy!` composed with a program's energy, sampled from Rust,
/// against the script that writes the composition and samples it itself
/// (`ebm::pipeline::run`): the same draws, bit for bit.
#[test]
fn inline_energy_matches_the_script_sample() {
    let ring = ebm_macros::energy!("energy ring(x: [2]) = (norm(x) - 2.0)^2 / (2 * 0.3^2)");
    let p = program();
    let composed = &p.energy_handle("a").unwrap() | &(0.5 * &ring);
    let run = RunConfig::new(4, 100, 200, 5);
    let rust = run_compiled(
        &composed.compiled().unwrap(),
        None,
        &SamplerConfig::mala(0.3),
        &run,
    )
    .unwrap();

    let dir = std::env::temp_dir().join(format!("ebm-compose-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = format!(
        "{SOURCE}
energy ring(x: [2]) = (norm(x) - 2.0)^2 / (2 * 0.3^2)
energy mixed(x: [2]) = a(x) or 0.5 * ring(x)
let s = sample(mixed, mala(step = 0.3), chains = 4, warmup = 100, steps = 200, seed = 5)
save(s, \"mixed.csv\")
"
    );
    let path = dir.join("compose.ebm");
    std::fs::write(&path, &script).unwrap();
    let file = ebm::pipeline::SourceFile::read(&path).unwrap();
    let mut log = Vec::new();
    ebm::pipeline::run(&file, &mut log).unwrap();
    let scripted = ebm::sample::io::read_csv(&dir.join("mixed.csv")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(bits(&rust.x), bits(&scripted.x), "draws");
    assert_eq!(bits(&rust.energy), bits(&scripted.energy), "energies");
    assert_eq!(bits(&rust.accept), bits(&scripted.accept), "acceptance");
}
