//! `ebm repl`: the terminal around `ebm::repl::Session`. On a terminal, a
//! line editor (rustyline) with persistent history, tab completion and
//! inputs that continue while a bracket is open; from a pipe or a file,
//! the same inputs without prompts. Results go to standard output,
//! diagnostics and notes to standard error; an error never ends the
//! session, and end of input ends it with status 0.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use ebm::repl::complete::{Inputs, MAX_INPUT_BYTES, completions, needs_more};
use ebm::repl::entries::Origin;
use ebm::repl::{Reply, Session};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use super::Result;

/// Runs a session: `file` is loaded first (as `:load FILE`).
pub fn repl(file: Option<&Path>) -> Result<String> {
    // An empty base: relative paths stay as typed (`run`, not `./run`).
    let mut session = Session::new(Path::new(""));
    if let Some(f) = file {
        let reply = session.input(&format!(":load {}", f.display()), &origin("<args>", 1));
        show(&reply);
    }
    if std::io::stdin().is_terminal() {
        interactive(&mut session)?;
    } else {
        piped(&mut session, std::io::stdin().lock(), "<stdin>")?;
    }
    Ok(String::new())
}

fn origin(path: &str, line: usize) -> Origin {
    Origin {
        path: path.into(),
        line,
    }
}

/// Prints a reply: results on stdout, the rest on stderr.
fn show(reply: &Reply) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(reply.out.as_bytes());
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    for note in &reply.notes {
        let _ = writeln!(err, "note: {note}");
    }
    for d in &reply.diagnostics {
        let _ = write!(err, "{d}");
    }
}

/// Inputs read line by line, each complete input (brackets closed) run at
/// once; diagnostics carry the line numbers of the stream. A line longer
/// than a program may be (endless bytes without a newline, `/dev/zero`)
/// ends the session with an error instead of filling memory.
fn piped(session: &mut Session, mut input: impl BufRead, name: &str) -> Result<()> {
    let mut inputs = Inputs::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let limit = MAX_INPUT_BYTES as u64 + 1;
        match input.by_ref().take(limit).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) if buf.len() > MAX_INPUT_BYTES => {
                return super::fail(format!(
                    "{name}: a line longer than {} MiB is not an input; the session ends here",
                    MAX_INPUT_BYTES >> 20
                ));
            }
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        let Some((first, text)) = inputs.line(line) else {
            continue;
        };
        let reply = session.input(&text, &origin(name, first));
        show(&reply);
        if reply.quit {
            return Ok(());
        }
    }
    if let Some((first, text)) = inputs.finish() {
        show(&session.input(&text, &origin(name, first)));
    }
    Ok(())
}

/// The line editor's view of the language.
struct EbmHelper {
    names: Vec<String>,
}

impl Completer for EbmHelper {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(completions(&self.names, line, pos))
    }
}

impl Validator for EbmHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if needs_more(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Hinter for EbmHelper {
    type Hint = String;
}
impl Highlighter for EbmHelper {}
impl Helper for EbmHelper {}

/// `$EBM_HISTORY`, else `~/.ebm_history`.
fn history_path() -> Option<PathBuf> {
    std::env::var_os("EBM_HISTORY")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ebm_history")))
}

fn interactive(session: &mut Session) -> Result<()> {
    let mut editor: Editor<EbmHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("note: no line editor ({e}); reading plain lines");
            return piped(session, std::io::stdin().lock(), "<repl>");
        }
    };
    editor.set_helper(Some(EbmHelper {
        names: session.names(),
    }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!(
        "ebm {} — definitions, statements and :commands (:help lists them, :quit or Ctrl-D leaves)",
        env!("CARGO_PKG_VERSION")
    );
    let mut line = 1;
    loop {
        let text = match editor.readline("ebm> ") {
            Ok(t) => t,
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => break,
        };
        if text.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(text.as_str());
        // Saved at once: a session ended by a signal keeps its history.
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        let reply = session.input(&text, &origin("<repl>", line));
        line += text.lines().count().max(1);
        show(&reply);
        if let Some(h) = editor.helper_mut() {
            h.names = session.names();
        }
        if reply.quit {
            break;
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}
