// Valid sources expand to handles built at run time.
fn main() {
    let e: ebm::api::Energy = ebm_macros::energy!(r#"
        const mu = [1.0, -1.0]
        energy e(x: [2]) = 0.5 * sqnorm(x - mu)
    "#);
    let p: ebm::api::Program = ebm_macros::program!("energy f(x: [2]) = sum(x)\nprint(f([1, 2]))");
    let both = &e & &p.energy_handle("f").unwrap();
    let v = both.compiled().unwrap().energy(&[1.0, -1.0], None, 1).unwrap();
    assert_eq!(v, vec![0.0]);
}
