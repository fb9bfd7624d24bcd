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
fn precedence() {
    check("-x^2", "(neg (^ x 2))");
    check("2*x^3", "(* 2 (^ x 3))");
    check("x^-1", "(^ x (neg 1))");
    check("x^-y^2", "(^ x (neg (^ y 2)))");
    check("a^b^c", "(^ a (^ b c))");
    check("-a*b", "(* (neg a) b)");
    check("--a", "(neg (neg a))");
    check("a - -b", "(- a (neg b))");
    check("a - b - c", "(- (- a b) c)");
    check("a / b * c", "(* (/ a b) c)");
    check("a + b * c", "(+ a (* b c))");
    check("(a + b) * c", "(* (+ a b) c)");
    check("W @ x + b", "(+ (@ W x) b)");
    check("a @ b @ c", "(@ (@ a b) c)");
    check("a or b and not c", "(or a (and b (not c)))");
    check("a and b or c and d", "(or (and a b) (and c d))");
    check("A and not 0.5 * B", "(and A (not (* 0.5 B)))");
    check("not not a", "(not (not a))");
    check("not a < b", "(not (< a b))");
    check("a < b + 1", "(< a (+ b 1))");
    check("a <= b and c >= d", "(and (<= a b) (>= c d))");
    check("(a < b) < c", "(< (< a b) c)");
    check("a > b", "(> a b)");
    check("-x[0]", "(neg (index x 0))");
    check("-f(x)^2", "(neg (^ (call f x) 2))");
}

#[test]
fn postfix_and_calls() {
    check("f(x)[y]", "(index (call f x) y)");
    check("x[1:3]", "(index x (: 1 3))");
    check("x[:, 0]", "(index W (: _ _) 0)".replace('W', "x").as_str());
    check("x[2:]", "(index x (: 2 _))");
    check("x[:n-1]", "(index x (: _ (- n 1)))");
    check("x[0][1]", "(index (index x 0) 1)");
    check("(a + b)[0]", "(index (+ a b) 0)");
    check("[1, 2][0]", "(index (tensor 1 2) 0)");
    check("E(x | c)", "(call E x (| c))");
    check("E(x | onehot(0, 4))", "(call E x (| (call onehot 0 4)))");
    check("f()", "(call f)");
    check("f(a, b, key = v)", "(call f a b (= key v))");
    check("f(a,)", "(call f a)");
    check(
        "mlp(x, [128, 128, 1], act = swish)",
        "(call mlp x (tensor 128 128 1) (= act swish))",
    );
    check("train(net, model = f)", "(call train net (= model f))");
}

#[test]
fn literals() {
    check("1e-3", "0.001");
    check("2.5E+4", "25000");
    check("1.5", "1.5");
    check("0", "0");
    check("1e-30", "1e-30");
    check("123456789012345678", "1.2345678901234568e17");
    check("1e-320", "1e-320");
    check(r#""f.png""#, r#""f.png""#);
    check(r#""a\"b\\c\n""#, r#""a\"b\\c\n""#);
    check(r##""# not a comment""##, r##""# not a comment""##);
    check("[a, b, 2*c]", "(tensor a b (* 2 c))");
    check("[[1, 2], [3, 4]]", "(tensor (tensor 1 2) (tensor 3 4))");
    check("[]", "(tensor)");
    check("[1, 2,]", "(tensor 1 2)");
    check(
        "[[1,\n  2],\n [3, 4]]",
        "(tensor (tensor 1 2) (tensor 3 4))",
    );
}

#[test]
fn items() {
    check("const n = 8", "(const n 8)");
    check(
        "param w: [2, 3] ~ normal(0, 1)",
        "(param w [2 3] ~ (call normal 0 1))",
    );
    check("param b: [] ~ zeros", "(param b [] ~ zeros)");
    check(
        "energy e(x: [2]) = sqnorm(x)",
        "(energy e (x [2]) (call sqnorm x))",
    );
    check(
        "energy e(x: [2] | c: [4]) = 0",
        "(energy e (x [2]) (| c [4]) 0)",
    );
    check("energy e(x: [N, 2*N]) = 0", "(energy e (x [N (* 2 N)]) 0)");
    check(
        "model f(x: [64]) -> [10] = linear(x, 10)",
        "(model f (x [64]) -> [10] (call linear x 10))",
    );
    check(
        "data moons = toy(\"two_moons\")",
        "(data moons (call toy \"two_moons\"))",
    );
    check("let s = sample(e)", "(let s (call sample e))");
    check("print(1)", "(call print 1)");
    check("plot(s, \"f.png\")", "(call plot s \"f.png\")");
}

#[test]
fn lines_comments_and_brackets() {
    check("", "");
    check("# only a comment\n\n   \n", "");
    check(
        "const a = 1 # trailing\nconst b = 2",
        "(const a 1)\n(const b 2)",
    );
    check("const a = 1\r\nconst b = 2\r\n", "(const a 1)\n(const b 2)");
    check(
        "train(net,\n  # a comment (inside\n  moons)",
        "(call train net moons)",
    );
    check(
        "energy e(x: [2]) = (x[0]\n  + x[1])",
        "(energy e (x [2]) (+ (index x 0) (index x 1)))",
    );
    check("const a = f(\n)", "(const a (call f))");
}

#[test]
fn spans_are_byte_accurate() {
    let src = "const a = 1\nenergy e(x: [2]) = -x^2 + f(x | c)[0]";
    let p = parse(src).unwrap();
    let super::ast::ItemKind::Energy(def) = &p.items[1].kind else {
        panic!()
    };
    let text = |s: crate::diag::Span| &src[s.start as usize..s.end as usize];
    assert_eq!(
        text(p.items[1].span),
        "energy e(x: [2]) = -x^2 + f(x | c)[0]"
    );
    assert_eq!(text(def.body.span), "-x^2 + f(x | c)[0]");
    assert_eq!(text(def.name.span), "e");
    assert_eq!(text(def.input.shape.span), "[2]");
    let super::ast::ExprKind::Binary { lhs, rhs, .. } = &def.body.kind else {
        panic!()
    };
    assert_eq!(text(lhs.span), "-x^2");
    assert_eq!(text(rhs.span), "f(x | c)[0]");
    let super::ast::ExprKind::Index { base, .. } = &rhs.kind else {
        panic!()
    };
    assert_eq!(text(base.span), "f(x | c)");
    let p = parse("let y = 2 * (a + b)").unwrap();
    let super::ast::ItemKind::Let { value, .. } = &p.items[0].kind else {
        panic!()
    };
    let super::ast::ExprKind::Binary { rhs, .. } = &value.kind else {
        panic!()
    };
    assert_eq!(rhs.span, crate::diag::Span::new(12, 19));
}

#[test]
fn errors() {
    check_err("const a = 1 $", "E0100", 12);
    check_err("const a = \"abc", "E0101", 10);
    check_err(r#"const a = "\q""#, "E0102", 11);
    check_err("const a = 1)", "E0103", 11);
    check_err("const a = f(x]", "E0104", 13);
    check_err("const a = f(x\nconst b = 2", "E0105", 11);
    check_err("const a = (1", "E0105", 10);
    check_err("energy e(x: [2]) sum(x)", "E0108", 17);
    check_err("let and = 1", "E0109", 4);
    check_err("const a = .5", "E0110", 10);
    check_err("const a = 2x", "E0110", 10);
    check_err("const a = 1e999", "E0111", 10);
    check_err("const a = 1e-999", "E0111", 10);
    check_err("const a = x < y < z", "E0112", 16);
    check_err("const a = 2 * not b", "E0113", 14);
    check_err("const a = f(, x)", "E0108", 12);
    check_err("const a = ", "E0108", 9);
    check_err("model f(x: [2]) = x", "E0108", 16);
}

#[test]
fn several_errors_are_reported() {
    let d = parse("const a = \nconst b = 1\nconst c = )2").unwrap_err();
    assert_eq!(d.len(), 1, "bracket errors stop the scan: {d:#?}");
    let d = parse("const a = \nconst b = 1\nconst c = +").unwrap_err();
    assert_eq!(d.len(), 2);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for (open, close) in [("(", ")"), ("[", "]"), ("f(", ")"), ("x[", "]")] {
        let ok = format!("const a = {}1{}", open.repeat(150), close.repeat(150));
        assert!(parse(&ok).is_ok(), "{open}");
        let bad = format!(
            "const a = {}1{}",
            open.repeat(100_000),
            close.repeat(100_000)
        );
        assert_eq!(parse(&bad).unwrap_err()[0].code, "E0106");
    }
    assert!(parse(&format!("const a = {}1", "-".repeat(150))).is_ok());
    for prefix in ["-", "not ", "- not ", "1^", "1^-"] {
        let bad = format!("const a = {}1", prefix.repeat(100_000));
        assert!(
            matches!(parse(&bad).unwrap_err()[0].code, "E0106" | "E0113"),
            "{prefix}"
        );
    }
    // Brackets and prefix operators share one budget.
    let bad = format!("const a = {}1{}", "-(".repeat(1500), ")".repeat(1500));
    assert_eq!(parse(&bad).unwrap_err()[0].code, "E0106");
    // So do `let` bodies, which nest like brackets.
    let bad = format!("const a = {}1", "let b = 1 in ".repeat(100_000));
    assert_eq!(parse(&bad).unwrap_err()[0].code, "E0106");
    let bad = format!(
        "const a = {}1{}",
        "(let b = 1 in ".repeat(1500),
        ")".repeat(1500)
    );
    assert_eq!(parse(&bad).unwrap_err()[0].code, "E0106");
    // Long flat chains make deep trees: accepted up to a limit, then an error.
    assert!(parse(&format!("const a = 1{}", "+1".repeat(400))).is_ok());
    let bad = format!("const a = 1{}", "+1".repeat(100_000));
    assert_eq!(parse(&bad).unwrap_err()[0].code, "E0107");
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        "\0\0\0",
        "\u{FFFD}\u{FFFD}",
        "energy",
        "energy e(",
        "model f(x: [2]) ->",
        "param w: [2] ~",
        "const a = [1, 2",
        "\"",
        "x[",
        "f(x | )",
        "1e",
        "...",
        "a b c d e",
        "energy e(x: [2] | c: [3] | d: [4]) = 1",
    ];
    for src in inputs {
        let _ = parse(src);
    }
    let big = "const a = 1\n".repeat(20_000);
    assert_eq!(parse(&big).unwrap().items.len(), 20_000);
    assert_eq!(parse(&"x".repeat(3 << 20)).unwrap_err()[0].code, "E0114");
}

/// The design brief's sketch parses as a whole.
#[test]
fn design_sketch() {
    let src = r#"
# closed-form energy: mixture of 8 Gaussians on a ring
const centers = ring(8, radius = 2.0)          # [8, 2]
energy gmm(x: [2]) = -logsumexp(-sqnorm(x - centers) / (2 * 0.1^2))
energy concept(x: [2] | c: [4]) = mlp(concat(x, c), [64, 64, 1])
energy only(x: [2])   = concept(x | onehot(1, 4)) and not 0.5 * concept(x | onehot(0, 4))
model f(x: [64]) -> [10] = mlp(x, [256, 256, 10], act = swish)
data digits = csv("digits.csv", label = "label", scale = 1 / 16)
train(net, moons, loss = cd(l2 = 1.0, kl = 1.0),
      sampler = langevin(step = 0.01, steps = 20),
      optimizer = adam(lr = 1e-3), seed = 0)
let s = sample(gmm, mala(step = 0.05), chains = 4096)
plot(s, "gmm.png")
"#;
    let expect = r#"(const centers (call ring 8 (= radius 2)))
(energy gmm (x [2]) (neg (call logsumexp (/ (neg (call sqnorm (- x centers))) (* 2 (^ 0.1 2))))))
(energy concept (x [2]) (| c [4]) (call mlp (call concat x c) (tensor 64 64 1)))
(energy only (x [2]) (and (call concept x (| (call onehot 1 4))) (not (* 0.5 (call concept x (| (call onehot 0 4)))))))
(model f (x [64]) -> [10] (call mlp x (tensor 256 256 10) (= act swish)))
(data digits (call csv "digits.csv" (= label "label") (= scale (/ 1 16))))
(call train net moons (= loss (call cd (= l2 1) (= kl 1))) (= sampler (call langevin (= step 0.01) (= steps 20))) (= optimizer (call adam (= lr 0.001))) (= seed 0))
(let s (call sample gmm (call mala (= step 0.05)) (= chains 4096)))
(call plot s "gmm.png")"#;
    check(src, expect);
}
