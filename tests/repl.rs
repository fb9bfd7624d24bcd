//! `ebm repl` as a user drives it. Golden sessions: every
//! `tests/repl/*.txt` is piped into `ebm repl` and its stdout and stderr
//! must be exactly `NAME.stdout` and `NAME.stderr` (timings blanked);
//! `EBM_BLESS=1` rewrites them. Then `:save` round trips, and the same
//! session through a pseudo-terminal (line editor, prompts, completion).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli::{ebm_in, ebm_stdin_in};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `ebm repl` in `dir` with `input` on stdin: (stdout, stderr, exit code).
fn repl(input: &str, dir: &Path) -> (String, String, Option<i32>) {
    let (code, out, err) = ebm_stdin_in(dir, &["repl"], input);
    (out, err, Some(code))
}

/// `ebm ARGS` in `dir` succeeds; its stdout.
fn ebm_ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = ebm_in(dir, args);
    assert_eq!(code, 0, "ebm {args:?}: {err}");
    out
}

/// Run times vary; everything else in a session's output is deterministic.
fn blank_timings(text: &str) -> String {
    text.lines()
        .map(|l| match l.find(" s, ") {
            Some(_) if l.contains("chain-steps/s") => "  <timing>",
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-repl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn golden_sessions() {
    let bless = std::env::var("EBM_BLESS").is_ok_and(|v| v == "1");
    let dir = root().join("tests/repl");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 3);
    let mut failures = Vec::new();
    for case in &cases {
        let input = std::fs::read_to_string(case).unwrap();
        let (out, err, code) = repl(&input, root());
        if code != Some(0) {
            failures.push(format!("{}: exit {code:?}\n{err}", case.display()));
            continue;
        }
        for (text, ext) in [
            (blank_timings(&out), "stdout"),
            (blank_timings(&err), "stderr"),
        ] {
            let golden = case.with_extension(ext);
            if bless {
                std::fs::write(&golden, &text).unwrap();
                continue;
            }
            let expect = std::fs::read_to_string(&golden).unwrap_or_default();
            if expect != text {
                failures.push(format!(
                    "{}: {ext} differs\n--- expected\n{expect}--- actual\n{text}",
                    case.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn saved_session_checks_and_reproduces_its_results() {
    let dir = scratch("save");
    let session = "\
const a = 1
energy banana(x: [2]) = (a - x[0])^2 / 2 + 5 * (x[1] - x[0]^2)^2
print(banana([0, 1]))
const a = 2
print(banana([0, 1]))
let s = sample(banana, mala(), chains = 4, steps = 200, warmup = 100, seed = 5)
print(summary(s))
:save session.ebm
";
    let (out, err, code) = repl(session, &dir);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("wrote session.ebm"), "{out}");
    let saved = std::fs::read_to_string(dir.join("session.ebm")).unwrap();
    // The statement that ran on the old `a` is not replayed.
    assert_eq!(saved.matches("print(banana([0, 1]))").count(), 1, "{saved}");
    ebm_ok(&dir, &["check", "session.ebm"]);
    let replayed = blank_timings(&ebm_ok(&dir, &["run", "session.ebm"]));
    // The session printed 5.5 for the old `a` first, then what the script prints.
    let session_out = blank_timings(&out);
    let tail = session_out
        .strip_prefix("5.5\n")
        .and_then(|t| {
            t.strip_suffix(
                "wrote session.ebm (2 definitions, 3 statements)
",
            )
        })
        .unwrap_or_else(|| panic!("unexpected session output:\n{session_out}"));
    assert_eq!(tail, replayed);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn end_of_input_inside_brackets_is_an_error_not_a_hang() {
    let (out, err, code) = repl("print(1,\n", root());
    assert_eq!(code, Some(0));
    assert!(out.is_empty() && err.contains("error"), "{out}{err}");
}

/// `ebm repl` on a pseudo-terminal in `dir`, its history kept there.
#[cfg(unix)]
fn pty_session(
    dir: &Path,
    timeout_ms: u64,
) -> Result<rexpect::session::PtySession, rexpect::error::Error> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ebm"));
    cmd.arg("repl")
        .current_dir(dir)
        .env("EBM_HISTORY", dir.join("history"))
        .env("TERM", "xterm");
    rexpect::session::spawn_command(cmd, Some(timeout_ms))
}

/// The same kind of session on a pseudo-terminal: prompts, the line
/// editor's multi-line input, tab completion and history.
#[cfg(unix)]
#[test]
fn terminal_session() -> Result<(), rexpect::error::Error> {
    let dir = scratch("pty");
    let mut p = pty_session(&dir, 30_000)?;
    p.exp_string("ebm> ")?;
    p.send_line("const s = 0.5")?;
    p.exp_string("ebm> ")?;
    p.send_line("energy gauss(x: [2]) = sum(x^2) / (2 * s^2)")?;
    p.exp_string("ebm> ")?;
    p.send_line(":eval gauss at [1, 2]")?;
    p.exp_string("10")?;
    p.exp_string("ebm> ")?;
    // Redefinition: the dependant is re-checked and says so.
    p.send_line("const s = 1.0")?;
    p.exp_string("re-checked gauss")?;
    p.exp_string("ebm> ")?;
    // An error, then a correct line.
    p.send_line("energy bad(x: [2]) = sum(x) + nope")?;
    p.exp_string("unknown name `nope`")?;
    p.exp_string("ebm> ")?;
    p.send_line(":eval gauss at [1, 2]")?;
    p.exp_string("2.5")?;
    p.exp_string("ebm> ")?;
    // Tab completes a definition's name.
    p.send(":grad gau")?;
    p.send("\t")?;
    p.send_line("")?;
    // rexpect reads bytes as Latin-1: match the ASCII part of `∇ₓgauss = x`.
    p.exp_string("gauss = x")?;
    p.exp_string("ebm> ")?;
    // Multi-line input: the editor waits for the closing bracket.
    p.send_line("print(gauss([0,")?;
    p.send_line("  0]))")?;
    // The result on its own line: a bare "0" would match the editor's
    // escape sequences (`ESC[?2004h`) first, and the next line would be
    // sent while `print` still runs.
    p.exp_string("\r\n0\r\n")?;
    p.exp_string("ebm> ")?;
    p.send_line(":sample gauss, steps = 200, seed = 1")?;
    // (The braille plot is checked by the piped goldens: rexpect reads Latin-1.)
    p.exp_string("acceptance")?;
    p.exp_string("ess_bulk")?;
    p.exp_string("ebm> ")?;
    p.send_line(":save s.ebm")?;
    p.exp_string("wrote s.ebm")?;
    p.exp_string("ebm> ")?;
    p.send_line(":quit")?;
    p.exp_eof()?;
    let history = std::fs::read_to_string(dir.join("history")).unwrap_or_default();
    assert!(history.contains(":eval gauss at [1, 2]"), "{history}");
    ebm_ok(&dir, &["check", "s.ebm"]);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Ctrl-C during a long run stops the run, not the session: the prompt
/// comes back with every definition.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_run_and_the_session_goes_on() -> Result<(), rexpect::error::Error> {
    let dir = scratch("ctrl-c");
    let mut p = pty_session(&dir, 60_000)?;
    p.exp_string("ebm> ")?;
    p.send_line("energy g(x: [2]) = sum(x^2) / 2")?;
    p.exp_string("ebm> ")?;
    // Minutes of MALA, a hundred draws kept.
    p.send_line("let s = sample(g, mala(step = 0.5), chains = 4, steps = 1000000000, warmup = 0, thin = 10000000)")?;
    std::thread::sleep(std::time::Duration::from_millis(1500));
    p.send_control('c')?;
    p.exp_string("interrupted")?;
    p.exp_string("ebm> ")?;
    p.send_line(":eval g at [1, 2]")?;
    p.exp_string("2.5")?;
    p.exp_string("ebm> ")?;
    p.send_line(":quit")?;
    p.exp_eof()?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// A session as a terminal shows it: each input after the prompt, then
/// its results, notes and diagnostics.
fn transcript(session_file: &str) -> String {
    let mut s = ebm::repl::Session::new(Path::new(""));
    let mut text = String::new();
    let mut line = 1;
    for (_, input) in ebm::repl::complete::Inputs::split(session_file) {
        for (k, l) in input.lines().enumerate() {
            let prompt = if k == 0 { "ebm> " } else { "     " };
            text.push_str(&format!("{prompt}{l}\n"));
        }
        let origin = ebm::repl::entries::Origin {
            path: "<repl>".into(),
            line,
        };
        line += input.lines().count();
        let r = s.input(&input, &origin);
        text.push_str(&r.out);
        for n in &r.notes {
            text.push_str(&format!("note: {n}\n"));
        }
        for d in &r.diagnostics {
            text.push_str(&d.to_string());
        }
    }
    blank_timings(&text)
}

#[test]
fn recorded_session_in_the_docs_is_current() {
    let doc_path = root().join("docs/repl.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let marker = "<!-- transcript: tour -->\n```text\n";
    let start = doc
        .find(marker)
        .expect("docs/repl.md has the tour transcript")
        + marker.len();
    let end = start
        + doc[start..]
            .find("```\n")
            .expect("the transcript block ends");
    let session = std::fs::read_to_string(root().join("tests/repl/tour.txt")).unwrap();
    let now = transcript(&session);
    if std::env::var("EBM_BLESS").is_ok_and(|v| v == "1") {
        let updated = format!("{}{now}{}", &doc[..start], &doc[end..]);
        std::fs::write(&doc_path, updated).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..end],
        now,
        "docs/repl.md's transcript is stale: rerun with EBM_BLESS=1 and read the diff"
    );
}
