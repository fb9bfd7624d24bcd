//! Golden tests for the parser, through the printed AST: one `check(input,
//! expect)` helper, many one-line cases.

use super::{parse, print::print};

/// Parses `src` and compares the printed AST with `expect` (items joined by newlines).
#[track_caller]
fn check(src: &str, expect: &str) {
    match parse(src) {
        Ok(p) => assert_eq!(print(&p).trim_end(), expect, "source: {src}"),
        Err(d) => panic!("source {src:?} failed to parse: {d:#?}"),
    }
}

/// The error code and the caret's byte offset of the first diagnostic.
#[track_caller]
fn check_err(src: &str, code: &str, at: usize) {
    match parse(src) {
        Ok(p) => panic!("source {src:?} parsed: {}", print(&p)),
        Err(d) => {
            assert_eq!(
                (d[0].code, d[0].span.start as usize),
                (code, at),
                "{src:?}: {d:#?}"
            )
        }
    }
}

#[test]
fn scratch() {
    let src = std::fs::read_to_string("/tmp/fe/a.ebm").unwrap();
    println!("{}", print(&parse(&src).unwrap()));
}
