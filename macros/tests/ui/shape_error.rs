// A shape error in an inline energy is a compile error of the host crate,
// with ebm's diagnostic (line:col inside the literal, caret).
fn main() {
    let _e = ebm_macros::energy!("energy e(x: [2]) = sum(x @ [1.0, 2.0, 3.0])");
}
