//! Deep but legal expressions must check and lower without exhausting the
//! stack of a test thread (2 MiB), let alone the main thread.

#[test]
fn long_sums_and_nested_calls_check() {
    let terms = vec!["x[0]"; 500].join(" + ");
    let nested = format!("{}x{}", "exp(".repeat(150), ")".repeat(150));
    let src =
        format!("energy e(x: [2]) = {terms}\nenergy f(x: [2]) = sum({nested})\nprint(e([1, 2]))\n");
    let file = ebm::pipeline::SourceFile {
        path: "deep.ebm".into(),
        text: src,
    };
    ebm::pipeline::check(&file).unwrap();
    let mut out = Vec::new();
    ebm::pipeline::run(&file, &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "500\n");
}
