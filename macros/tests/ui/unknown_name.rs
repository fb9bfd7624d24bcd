// An unknown name in a multi-line raw-string program: the caret is on the
// second line of the literal, with ebm's did-you-mean hint.
fn main() {
    let _p = ebm_macros::program!(r#"
        energy gauss(x: [2]) = 0.5 * sqnorm(x)
        energy both(x: [2]) = gaus(x) and gauss(x)
    "#);
}
