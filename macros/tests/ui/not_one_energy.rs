// energy! builds one handle: a source with two energies (or none), or with
// a script statement, is refused with a hint to use program!.
fn main() {
    let _two = ebm_macros::energy!("energy a(x: [2]) = sqnorm(x)\nenergy b(x: [2]) = sum(x)");
    let _none = ebm_macros::energy!("const k = 2.0");
    let _statement = ebm_macros::energy!("energy a(x: [2]) = sqnorm(x)\nprint(a([1, 2]))");
    let _not_a_literal = ebm_macros::energy!(concat!("energy a(x: [2]) = ", "sqnorm(x)"));
}
