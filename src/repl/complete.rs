//! What the line editor needs from the language: whether an input is
//! complete (brackets balanced, outside strings and `#` comments), and the
//! completions of the word under the cursor — the session's names,
//! builtins, activations, statements, keyword arguments and commands.

use super::commands::COMMANDS;

/// The longest input (a program's size limit): an input still open beyond
/// it is handed on as it is, and the parser reports the open bracket.
pub const MAX_INPUT_BYTES: usize = crate::pipeline::MAX_SOURCE_BYTES as usize;

/// Brackets still open in the text scanned so far (outside strings and
/// `#` comments); fed line by line, so each line is scanned once.
#[derive(Clone, Copy, Default)]
struct Brackets {
    depth: i64,
    in_string: bool,
}

impl Brackets {
    fn feed(&mut self, text: &str) {
        let mut in_comment = false;
        for ch in text.chars() {
            match ch {
                '\n' => in_comment = false,
                _ if in_comment => {}
                '"' => self.in_string = !self.in_string,
                _ if self.in_string => {}
                '#' => in_comment = true,
                '(' | '[' | '{' => self.depth += 1,
                // Closing brackets beyond those opened are the parser's to report.
                ')' | ']' | '}' => self.depth = (self.depth - 1).max(0),
                _ => {}
            }
        }
    }
}

/// Whether `text` still has a bracket open (the input continues on the
/// next line). A `:command` is always one line.
pub fn needs_more(text: &str) -> bool {
    let mut b = Brackets::default();
    b.feed(text);
    b.depth > 0 && !text.trim_start().starts_with(':')
}

/// Groups lines into complete inputs (see [`needs_more`]), as piped input
/// and session files are read: blank lines between inputs are skipped;
/// each input comes with the 1-based line it starts on.
#[derive(Default)]
pub struct Inputs {
    pending: String,
    brackets: Brackets,
    first: usize,
    seen: usize,
}

impl Inputs {
    /// Adds the next line; returns an input when this line completes one.
    pub fn line(&mut self, line: &str) -> Option<(usize, String)> {
        self.seen += 1;
        if self.pending.is_empty() {
            if line.trim().is_empty() {
                return None;
            }
            self.first = self.seen;
        } else {
            self.pending.push('\n');
        }
        self.pending.push_str(line);
        self.brackets.feed(line);
        let open = self.brackets.depth > 0 && !self.pending.trim_start().starts_with(':');
        if open && self.pending.len() <= MAX_INPUT_BYTES {
            return None;
        }
        self.brackets = Brackets::default();
        Some((self.first, std::mem::take(&mut self.pending)))
    }

    /// What is left at the end of the input (an unclosed bracket).
    pub fn finish(&mut self) -> Option<(usize, String)> {
        self.brackets = Brackets::default();
        (!self.pending.is_empty()).then(|| (self.first, std::mem::take(&mut self.pending)))
    }

    /// Every input of a whole text.
    pub fn split(text: &str) -> Vec<(usize, String)> {
        let mut g = Inputs::default();
        let mut out: Vec<(usize, String)> = text.lines().filter_map(|l| g.line(l)).collect();
        out.extend(g.finish());
        out
    }
}

/// The start of the word ending at `pos`, and the candidates for it
/// (`names`: the session's, from [`super::Session::names`]).
pub fn completions(names: &[String], line: &str, pos: usize) -> (usize, Vec<String>) {
    let pos = pos.min(line.len());
    let head = &line[..pos];
    let start = head
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let word = &head[start..];
    if word.is_empty() {
        return (start, Vec::new());
    }
    let mut pool: Vec<String> = if word.starts_with(':') {
        COMMANDS.iter().map(|c| format!(":{}", c.name)).collect()
    } else {
        let mut v = names.to_vec();
        v.extend(vocabulary().map(String::from));
        v
    };
    pool.retain(|c| c.starts_with(word) && c != word);
    pool.sort();
    pool.dedup();
    (start, pool)
}

/// Builtins, activations, statements, samplers and keyword arguments.
fn vocabulary() -> impl Iterator<Item = &'static str> {
    use crate::script::{args, estimate, runners, training};
    use crate::sema::builtins::{ACTIVATIONS, BUILTINS, STATEMENTS};
    let keywords = BUILTINS
        .iter()
        .flat_map(|s| s.params.iter().map(|p| p.name));
    BUILTINS
        .iter()
        .map(|s| s.name)
        .chain(keywords)
        .chain(ACTIVATIONS.iter().copied())
        .chain(STATEMENTS.iter().copied())
        .chain(args::SAMPLERS.iter().copied())
        .chain(args::INITS.iter().copied())
        .chain(runners::SAMPLE_ARGS.iter().copied())
        .chain(training::TRAIN_ARGS.iter().copied())
        .chain(training::JEM_ARGS.iter().copied())
        .chain(estimate::AIS_ARGS.iter().copied())
        .chain([
            "const", "param", "energy", "model", "data", "let", "use", "from", "and", "or", "not",
            "in",
        ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_continue_while_brackets_are_open() {
        for (text, more) in [
            ("energy e(x: [2]) = sum(x)", false),
            ("energy e(x: [2]) = sum(", true),
            ("let s = sample(e,\n  chains = 4", true),
            ("let s = sample(e,\n  chains = 4)", false),
            ("print(\"(\")", false),
            ("print(1) # (", false),
            ("print(1))", false),
            (":help (", false),
        ] {
            assert_eq!(needs_more(text), more, "{text:?}");
        }
    }

    #[test]
    fn groups_lines_into_inputs() {
        let text = "a\n\nprint(1,\n  2)\n\n  \nsample(e,\n";
        assert_eq!(
            Inputs::split(text),
            [
                (1, "a".to_string()),
                (3, "print(1,\n  2)".to_string()),
                (7, "sample(e,".to_string())
            ]
        );
    }

    #[test]
    fn an_input_never_outgrows_the_limit() {
        let mut g = Inputs::default();
        let line = "(".repeat(1 << 20);
        let flushed = (0..80).find_map(|_| g.line(&line));
        let (first, text) = flushed.expect("handed on once past the limit");
        assert_eq!(first, 1);
        assert!(text.len() > MAX_INPUT_BYTES && text.len() <= MAX_INPUT_BYTES + (2 << 20));
        assert_eq!(g.line("1"), Some((65, "1".to_string())));
    }

    #[test]
    fn completes_names_builtins_keywords_and_commands() {
        let mut s = super::super::Session::new(std::path::Path::new("."));
        let origin = super::super::entries::Origin {
            path: "<t>".into(),
            line: 1,
        };
        s.input("energy gauss(x: [2]) = sum(x^2)", &origin);
        let names = s.names();
        let words = |line: &str| completions(&names, line, line.len()).1;
        assert!(words("print(gau").contains(&"gauss".to_string()));
        assert!(words("let y = soft").contains(&"softplus".to_string()));
        assert!(words(":sa").contains(&":sample".to_string()));
        assert!(words("sample(gauss, cha").contains(&"chains".to_string()));
        assert!(words("x = ").is_empty());
        assert_eq!(completions(&names, "print(gau", 9).0, 6);
    }
}
