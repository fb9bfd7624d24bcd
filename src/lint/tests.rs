//! One `check(source, expect)` helper: the warnings of every energy of a
//! program, one line each (`name: CODE headline`), or nothing.

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
            format!(
                "{}: {} @{}",
                d.code,
                d.message,
                &src[d.span.start as usize..d.span.end as usize]
            )
        })
        .collect();
    let got = got.join("\n");
    assert_eq!(got.trim(), expect.trim(), "\n--- got\n{got}\n");
}

#[test]
fn smoke() {
    check("energy bad(x: [2]) = not sqnorm(x)", "");
}
