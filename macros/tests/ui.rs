//! Sources checked at the host crate's compile time: each `tests/ui/*.rs`
//! that must not compile shows ebm's diagnostic as a compile error on the
//! string literal (`.stderr` beside it); `pass.rs` compiles and runs.
//!
//! trybuild builds a scratch crate depending on ebm in
//! `target/tests/trybuild` (the first run compiles ebm there, a few
//! minutes; later runs reuse it). `TRYBUILD=overwrite` rewrites the
//! `.stderr` files.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/shape_error.rs");
    t.compile_fail("tests/ui/unknown_name.rs");
    t.compile_fail("tests/ui/not_one_energy.rs");
    t.pass("tests/ui/pass.rs");
}
