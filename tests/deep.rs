//! Deep but legal expressions must check, lower and differentiate without
//! exhausting the stack of a test thread (2 MiB), let alone the main
//! thread; one level past each limit is a diagnostic, not a crash. The
//! inputs sit at the limits of `syntax::errors` (nesting, tree depth) and
//! `sema` (calls inlined): what the front end's stack (`ebm::stack`) must
//! hold. Measured in a release build: the deepest of them needs 16 MiB of
//! the 256 MiB reserved.

use ebm::pipeline::{SourceFile, Stage};
use ebm::syntax::errors::{MAX_EXPR_DEPTH, MAX_NESTING};

fn file(text: String) -> SourceFile {
    SourceFile {
        path: "deep.ebm".into(),
        text,
    }
}

/// Checks, lowers, differentiates and prints every stage of `src`.
fn compiles(src: String) {
    let f = file(src);
    ebm::pipeline::check(&f)
        .unwrap_or_else(|d| panic!("{}", d.to_string().chars().take(600).collect::<String>()));
    for stage in [Stage::Ast, Stage::Opt] {
        let kernel = ebm::pipeline::dump_kernel_named("all").unwrap();
        ebm::pipeline::dump(&f, stage, None, kernel, ebm::backend::DType::F64).unwrap();
    }
}

fn fails_with(src: String, code: &str) {
    let err = ebm::pipeline::check(&file(src)).unwrap_err().to_string();
    assert!(
        err.contains(code),
        "{}",
        err.chars().take(600).collect::<String>()
    );
    // The message shows a window of the (long) line, never all of it.
    assert!(
        err.lines().all(|l| l.chars().count() < 300),
        "a long line in {err:.600}"
    );
}

#[test]
fn long_sums_and_nested_calls_check() {
    let terms = vec!["x[0]"; 500].join(" + ");
    let nested = format!("{}x{}", "exp(".repeat(150), ")".repeat(150));
    let src =
        format!("energy e(x: [2]) = {terms}\nenergy f(x: [2]) = sum({nested})\nprint(e([1, 2]))\n");
    let file = file(src);
    ebm::pipeline::check(&file).unwrap();
    let mut out = Vec::new();
    ebm::pipeline::run(&file, &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "500\n");
}

#[test]
fn brackets_and_lets_at_the_nesting_limit() {
    let n = MAX_NESTING - 10;
    compiles(format!(
        "energy e(x: [1]) = sum({}x{})",
        "(".repeat(n),
        ")".repeat(n)
    ));
    compiles(format!(
        "energy e(x: [1]) = sum({}x{})",
        "exp(".repeat(n),
        ")".repeat(n)
    ));
    let lets: String = (1..n)
        .map(|i| format!("let a{i} = a{} * 1.5 in ", i - 1))
        .collect();
    compiles(format!(
        "energy e(x: [1]) = sum(let a0 = x in {lets}a{})",
        n - 1
    ));
    compiles(format!("energy e(x: [1]) = sum({}x)", "-".repeat(n)));
    compiles(format!(
        "energy e(x: [1]) = sum({})",
        vec!["x"; n].join("^")
    ));
    fails_with(
        format!(
            "const a = {}1{}",
            "(".repeat(MAX_NESTING + 1),
            ")".repeat(MAX_NESTING + 1)
        ),
        "E0106",
    );
    let lets: String = (0..=MAX_NESTING)
        .map(|i| format!("let a{i} = 1 in "))
        .collect();
    fails_with(format!("const a = {lets}1"), "E0106");
}

#[test]
fn operator_chains_at_the_depth_limit() {
    let n = MAX_EXPR_DEPTH as usize - 10;
    compiles(format!(
        "energy e(x: [1]) = sum({})",
        vec!["x"; n].join(" + ")
    ));
    fails_with(
        format!(
            "const a = {}",
            vec!["1"; MAX_EXPR_DEPTH as usize + 2].join(" + ")
        ),
        "E0107",
    );
}

#[test]
fn long_chains_of_definitions_inline() {
    let mut src = String::from("energy d0(x: [1]) = x * 2\n");
    for k in 1..1000 {
        src.push_str(&format!("energy d{k}(x: [1]) = d{}(x) + 1\n", k - 1));
    }
    src.push_str("energy e(x: [1]) = sum(d999(x))\n");
    compiles(src);
}

/// Calls add their callee's depth: a body deep enough once its calls are
/// inlined lowers (at the limit), one deeper is E0214.
#[test]
fn inlined_depth_is_bounded() {
    let chain = |head: &str| {
        let mut t = vec!["x"; 9_985];
        t[0] = head;
        t.join(" + ")
    };
    let two = format!(
        "energy d0(x: [1]) = {}\nenergy d1(x: [1]) = {}\nenergy e(x: [1]) = sum(d1(x))\n",
        chain("x"),
        chain("d0(x)")
    );
    compiles(two.clone());
    fails_with(
        format!("{two}energy d2(x: [1]) = {}\n", chain("d1(x)")),
        "E0214",
    );
}
