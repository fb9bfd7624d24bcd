//! What `program!` and `energy!` expand to, run: handles that compose with
//! the language's meaning (bitwise the same as the composition written in
//! source), raw strings, and `load(..)` paths resolved against this crate's
//! manifest folder both when checked and at run time.

use ebm::api::{Energy, Program};

const BATCH: [f64; 6] = [0.0, 0.0, 1.0, -2.0, 0.3, 0.7];

fn values(e: &Energy) -> (Vec<u64>, Vec<u64>) {
    let eg = e
        .compiled()
        .unwrap()
        .energy_and_grad_x(&BATCH, None, 3)
        .unwrap();
    let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect();
    (bits(eg.energy), bits(eg.grad_x))
}

#[test]
fn inline_energies_compose_as_in_source() {
    let ring = ebm_macros::energy!(
        r#"
        energy ring(x: [2]) = (norm(x) - 2.0)^2 / (2 * 0.2^2)
    "#
    );
    let blob = ebm_macros::energy!("energy blob(x: [2]) = 0.5 * sqnorm(x - [1.0, 0.0])");
    assert_eq!(ring.name(), "ring");
    let composed = (&ring & &blob) | !(0.5 * &blob);

    let p = ebm_macros::program!(
        r#"
        energy ring(x: [2]) = (norm(x) - 2.0)^2 / (2 * 0.2^2)
        energy blob(x: [2]) = 0.5 * sqnorm(x - [1.0, 0.0])
        energy c(x: [2]) = (ring(x) and blob(x)) or not 0.5 * blob(x)
    "#
    );
    assert_eq!(values(&composed), values(&p.energy_handle("c").unwrap()));
}

#[test]
fn program_handles_share_one_store() {
    let p: Program = ebm_macros::program!(
        "param mu: [2] ~ zeros\nenergy a(x: [2]) = 0.5 * sqnorm(x - mu)\nenergy b(x: [2]) = sum(x * mu)"
    );
    let ab = &p.energy_handle("a").unwrap() & &p.energy_handle("b").unwrap();
    let e = ab.compiled().unwrap();
    assert_eq!(e.energy(&[2.0, 0.0], None, 1).unwrap(), vec![2.0]);
    p.params().set("mu", &[1.0, 0.0]).unwrap();
    assert_eq!(e.energy(&[2.0, 0.0], None, 1).unwrap(), vec![0.5 + 2.0]);
}

#[test]
fn data_paths_resolve_against_the_manifest_folder() {
    // Checked at compile time against macros/tests/data/mu.json, read
    // again here at run time from the same folder, whatever the current one.
    let e = ebm_macros::energy!(
        r#"
        const mu = load("tests/data/mu.json", "mu")
        energy e(x: [2]) = sqnorm(x - mu)
    "#
    );
    let v = e.compiled().unwrap().energy(&[0.5, -1.5], None, 1).unwrap();
    assert_eq!(v, vec![0.0]);
}
