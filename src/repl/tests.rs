//! Sessions driven input by input: what each input prints, reports and keeps.

use super::*;

fn origin(line: usize) -> Origin {
    Origin {
        path: "<t>".into(),
        line,
    }
}

/// Feeds `inputs` to a fresh session and returns (stdout, stderr) of the last.
fn session(inputs: &[&str]) -> (Session, String, String) {
    let mut s = Session::new(Path::new("."));
    let mut last = Reply::default();
    for (i, text) in inputs.iter().enumerate() {
        last = s.input(text, &origin(i + 1));
    }
    let err: Vec<String> = last
        .notes
        .iter()
        .cloned()
        .chain(last.diagnostics.iter().map(|d| d.to_string()))
        .collect();
    (s, last.out, err.join("\n"))
}

/// The last input's (stdout, stderr) contain the expected fragments.
fn check(inputs: &[&str], out: &[&str], err: &[&str]) {
    let (_, o, e) = session(inputs);
    for f in out {
        assert!(o.contains(f), "stdout lacks {f:?}:\n{o}\n(stderr: {e})");
    }
    for f in err {
        assert!(e.contains(f), "stderr lacks {f:?}:\n{e}\n(stdout: {o})");
    }
    if err.is_empty() {
        assert!(e.is_empty(), "unexpected stderr:\n{e}");
    }
}

#[test]
fn definitions_print_nothing_and_expressions_print_values() {
    check(&["const a = 2"], &[], &[]);
    check(&["const a = 2", "a * 3"], &["6\n"], &[]);
    check(&["const a = 2", "print(a, [a, 1])"], &["2 [2, 1]\n"], &[]);
}

#[test]
fn redefinition_rechecks_dependants() {
    check(
        &[
            "const s = 1",
            "energy e(x: [1]) = sum(x^2) / s",
            "const s = 2",
            ":eval e at [2]",
        ],
        &["2\n"],
        &[],
    );
    let (_, _, err) = session(&[
        "const s = 1",
        "energy e(x: [1]) = sum(x^2) / s",
        "const s = 2",
    ]);
    assert!(err.contains("redefined `s`; re-checked e"), "{err}");
}

#[test]
fn a_dependant_that_breaks_is_set_aside_and_returns() {
    let steps = [
        "const w = [1, 2]",
        "energy e(x: [2]) = sum(x * w)",
        "const w = [1, 2, 3]",
    ];
    let (mut s, _, err) = session(&steps);
    assert!(err.contains("`e` no longer checks"), "{err}");
    assert!(err.contains("<t>:2:"), "{err}");
    let r = s.input(":eval e at [1, 1]", &origin(4));
    assert!(r.failed());
    let r = s.input("const w = [3, 4]", &origin(5));
    assert!(
        r.notes.iter().any(|n| n.contains("`e` checks again")),
        "{:?}",
        r.notes
    );
    let r = s.input(":eval e at [1, 1]", &origin(6));
    assert_eq!(r.out, "7\n");
}

#[test]
fn an_error_changes_nothing_and_points_at_the_input() {
    let (mut s, _, err) = session(&["const a = 1", "const a = b + 1"]);
    assert!(err.contains("unknown name `b`"), "{err}");
    assert!(err.contains("<t>:2:11"), "{err}");
    assert_eq!(s.input("a", &origin(3)).out, "1\n");
    let r = s.input("print(a +)", &origin(4));
    assert!(r.failed() && r.out.is_empty());
    assert_eq!(s.input("a + 1", &origin(5)).out, "2\n");
}

#[test]
fn redefinition_may_read_names_defined_after_the_original() {
    check(
        &["const a = 1", "const b = 2", "const a = b * 10", "a"],
        &["20\n"],
        &[],
    );
}

#[test]
fn sampling_and_statements_run_once_and_are_saved() {
    let dir = std::env::temp_dir().join(format!("ebm-repl-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("session.ebm");
    let (mut s, out, err) = session(&[
        "energy g(x: [2]) = sum(x^2) / 2",
        "let s = sample(g, chains = 2, steps = 200, warmup = 100, seed = 3)",
    ]);
    assert!(out.contains("s = sample(g) with"), "{out}{err}");
    let r = s.input("print(summary(s))", &origin(3));
    assert!(r.out.contains("x.0"), "{}", r.out);
    let r = s.input(&format!(":save {}", script.display()), &origin(4));
    assert!(r.out.contains("1 definitions, 2 statements"), "{}", r.out);
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(
        text.contains("energy g(x: [2])") && text.contains("print(summary(s))"),
        "{text}"
    );
    crate::pipeline::check_source("session.ebm", &text).expect("the saved script checks");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn commands_report_unknown_names_and_commands() {
    check(&[":frobnicate"], &[], &["unknown command `:frobnicate`"]);
    check(
        &["energy gauss(x: [1]) = x[0]^2", ":grad gaus"],
        &[],
        &["did you mean `gauss`?"],
    );
    check(&[":s"], &[], &["could be :sample, :save"]);
    check(&[":type [[1, 2], [3, 4]]"], &["[2, 2]\n"], &[]);
    check(
        &["energy g(x: [3]) = sum(x^2)", ":type g"],
        &["energy g(x: [3])"],
        &[],
    );
}

#[test]
fn parameters_keep_values_across_unrelated_redefinitions() {
    let mut s = Session::new(Path::new("."));
    s.input("param mu: [2] ~ normal(0, 1)", &origin(1));
    s.input("energy e(x: [2]) = sum((x - mu)^2)", &origin(2));
    s.params.set("mu", &[5.0, 6.0]).unwrap();
    s.input("const unrelated = 3", &origin(3));
    assert_eq!(s.input("mu", &origin(4)).out, "[5, 6]\n");
    s.input("energy e(x: [2]) = sum((x - mu)^2) / 2", &origin(5));
    assert_eq!(s.input("mu", &origin(6)).out, "[5, 6]\n");
    s.input("param mu: [2] ~ zeros", &origin(7));
    assert_eq!(s.input("mu", &origin(8)).out, "[0, 0]\n");
}

#[test]
fn odd_inputs_are_answered_never_fatal() {
    let mut s = Session::new(Path::new(""));
    s.input("energy g(x: [2]) = sum(x^2)", &origin(1));
    let long = format!("print({})", "1 + ".repeat(5000) + "1");
    let odd = [
        ":",
        "::",
        ": eval",
        ":eval",
        ":eval g",
        ":eval g at",
        ":eval g at [1, 2, 3]",
        ":eval g at [1, 2] | [3]",
        ":eval nothing at [1]",
        ":sample",
        ":sample g >",
        ":sample g, chains = 0",
        ":sample g, steps = 10 > /nonexistent-dir/x.png",
        ":plot",
        ":plot nothing",
        ":plot g",
        ":plot g /nonexistent-dir/x.png",
        ":type",
        ":type )",
        ":type g(",
        ":grad",
        ":grad g wrt",
        ":opt g nokernel",
        ":clif g",
        ":ir nothing",
        ":load",
        ":load /nonexistent",
        ":load /dev/null",
        ":load /",
        ":save",
        ":save /",
        ":help nothing",
        ":help exp",
        ":help sample",
        "let",
        "energy",
        ")",
        "é∂ƒ",
        "\u{0}",
        "let g = 1",
        "const g = [1, 2]",
        long.as_str(),
    ];
    for (i, text) in odd.iter().enumerate() {
        let r = s.input(text, &origin(i + 2));
        let rendered: String = r.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(!rendered.contains("panicked"), "{text}: {rendered}");
    }
    // The session still works.
    assert_eq!(s.input("1 + 1", &origin(99)).out, "2\n");
}

#[test]
fn a_binding_runs_while_an_item_is_set_aside() {
    let (_, out, err) = session(&[
        "energy g(x: [2]) = sum(x^2) / 2",
        "const w = [1, 2]",
        "energy e(x: [2]) = sum(x * w)",
        "const w = [1, 2, 3]",
        "let s = sample(g, chains = 2, steps = 50, warmup = 50)",
    ]);
    assert!(out.contains("s = sample(g) with"), "{out}\n{err}");
}
