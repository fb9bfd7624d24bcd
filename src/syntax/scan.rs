//! The pre-scan: one linear pass over the raw text before pest sees it.
//!
//! It checks what a grammar reports badly or too late — stray characters,
//! unterminated strings, unbalanced brackets, nesting depth — and produces a
//! cleaned copy of the text *with the same byte offsets*: comments become
//! spaces and newlines inside `(..)` / `[..]` become spaces. The cleaned text
//! splits into logical lines at the remaining newlines, one item per line.
//! Because nesting is bounded here, pest's recursion is bounded too: the
//! depth counts open brackets and the open bodies of `let .. in` and
//! `(..) =>`, which nest like brackets (each body runs to the end of the
//! enclosing bracket or line).

use super::errors::{self, MAX_NESTING, MAX_SOURCE_BYTES};
use crate::diag::Diagnostic;

pub struct Scanned {
    /// Same length and offsets as the source; comments and bracketed newlines blanked.
    pub clean: String,
    /// Non-blank logical lines as byte ranges `[start, end)` (newline excluded).
    pub lines: Vec<(usize, usize)>,
}

const ITEM_KEYWORDS: [&str; 6] = ["const", "param", "energy", "model", "data", "let"];

pub fn scan(source: &str) -> Result<Scanned, Diagnostic> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(errors::file_too_large(source.len()));
    }
    let bytes = source.as_bytes();
    let mut clean = bytes.to_vec();
    let mut lines = Vec::new();
    let mut line_start = 0;
    let mut stack: Vec<(usize, char)> = Vec::new();
    let mut bodies = Bodies::default();
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => {
                // Blank the comment up to (not including) the newline.
                let mut end = source.len();
                for (j, d) in chars.by_ref() {
                    if d == '\n' {
                        end = j;
                        // Re-handle the newline below.
                        handle_newline(source, &mut clean, j, &stack, &mut lines, &mut line_start)?;
                        break;
                    }
                }
                clean[i..end].fill(b' ');
            }
            '"' => {
                let mut closed = false;
                while let Some((j, d)) = chars.next() {
                    match d {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => {
                            if let Some(&(_, '\n')) = chars.peek() {
                                return Err(errors::unterminated_string(i, j + 1));
                            }
                            chars.next();
                        }
                        '\n' => return Err(errors::unterminated_string(i, j)),
                        _ => {}
                    }
                }
                if !closed {
                    return Err(errors::unterminated_string(i, line_end(source, i)));
                }
            }
            '(' | '[' => {
                stack.push((i, c));
                bodies.open.push(0);
                bodies.check(stack.len(), i, 1)?;
            }
            ')' | ']' => match stack.pop() {
                None => return Err(errors::unmatched_close(i, c)),
                Some((open_at, open)) => {
                    if (open == '(') != (c == ')') {
                        return Err(errors::mismatched_close(i, c, open_at, open, source));
                    }
                    bodies.close();
                }
            },
            '\n' => {
                handle_newline(source, &mut clean, i, &stack, &mut lines, &mut line_start)?;
                if stack.is_empty() {
                    bodies = Bodies::default();
                }
            }
            '=' if source[i + 1..].starts_with('>') => bodies.begin(stack.len(), i, 2)?,
            c if (c.is_ascii_alphabetic() || c == '_') && word_start(bytes, i) => {
                if word_at(source, i) == "let" && !first_word(bytes, line_start, i) {
                    bodies.begin(stack.len(), i, 3)?;
                }
            }
            c if c.is_ascii_alphanumeric() => {}
            ' ' | '\t' | '\r' | '_' | '+' | '-' | '*' | '/' | '^' | '@' | '<' | '>' | '=' | ','
            | ':' | '|' | '~' | '.' => {}
            c => return Err(errors::stray_char(i, c)),
        }
    }
    if let Some(&(open_at, open)) = stack.last() {
        return Err(errors::unclosed(open_at, open, "the end of the file"));
    }
    push_line(&clean, line_start, source.len(), &mut lines);
    // Only ASCII bytes were written over whole characters, so this cannot fail.
    let clean = String::from_utf8(clean)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Ok(Scanned { clean, lines })
}

/// Open `let`/`=>` bodies: how many per bracket level (the last entry is
/// the innermost level; the first is outside every bracket).
struct Bodies {
    open: Vec<usize>,
    total: usize,
}

impl Default for Bodies {
    fn default() -> Bodies {
        Bodies {
            open: vec![0],
            total: 0,
        }
    }
}

impl Bodies {
    /// A `let` or `=>` at `at` opens a body inside `brackets` brackets.
    fn begin(&mut self, brackets: usize, at: usize, len: usize) -> Result<(), Diagnostic> {
        if let Some(n) = self.open.last_mut() {
            *n += 1;
        }
        self.total += 1;
        self.check(brackets, at, len)
    }
    /// A closing bracket ends the bodies opened inside it.
    fn close(&mut self) {
        let n = self.open.pop().unwrap_or(0);
        self.total -= n.min(self.total);
    }
    fn check(&self, brackets: usize, at: usize, len: usize) -> Result<(), Diagnostic> {
        if brackets + self.total > MAX_NESTING {
            return Err(errors::too_deep(crate::diag::Span::new(at, at + len)));
        }
        Ok(())
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether a name starts at `i` (not in the middle of a word or a number).
fn word_start(bytes: &[u8], i: usize) -> bool {
    i == 0 || !(is_word_byte(bytes[i - 1]) || bytes[i - 1] == b'.')
}

fn word_at(source: &str, i: usize) -> &str {
    let rest = &source[i..];
    let n = rest
        .bytes()
        .position(|b| !is_word_byte(b))
        .unwrap_or(rest.len());
    &rest[..n]
}

/// Whether only blanks precede `i` on its logical line (an item's keyword).
fn first_word(bytes: &[u8], line_start: usize, i: usize) -> bool {
    bytes[line_start..i].iter().all(|b| b.is_ascii_whitespace())
}

fn handle_newline(
    source: &str,
    clean: &mut [u8],
    at: usize,
    stack: &[(usize, char)],
    lines: &mut Vec<(usize, usize)>,
    line_start: &mut usize,
) -> Result<(), Diagnostic> {
    match stack.last() {
        None => {
            push_line(clean, *line_start, at, lines);
            *line_start = at + 1;
        }
        Some(&(open_at, open)) => {
            // Inside brackets a newline is just a space — unless the next line
            // starts a new item, which means a closing bracket is missing.
            clean[at] = b' ';
            let next = source[at + 1..].trim_start_matches([' ', '\t', '\r']);
            let word_len = next
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(next.len());
            let word = &next[..word_len];
            // `let .. in` continues an expression; a `let` item has no `in`.
            let let_expr = word == "let" && {
                let line = &next[..next.find('\n').unwrap_or(next.len())];
                line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|w| w == "in")
            };
            if ITEM_KEYWORDS.contains(&word) && !let_expr {
                let (line, _, _) = crate::diag::locate(source, at + 1);
                return Err(errors::unclosed(
                    open_at,
                    open,
                    &format!("a new `{word}` item on line {line}"),
                ));
            }
        }
    }
    Ok(())
}

fn push_line(clean: &[u8], start: usize, end: usize, lines: &mut Vec<(usize, usize)>) {
    if clean[start..end].iter().any(|b| !b.is_ascii_whitespace()) {
        lines.push((start, end));
    }
}

fn line_end(source: &str, from: usize) -> usize {
    source[from..]
        .find('\n')
        .map(|i| from + i)
        .unwrap_or(source.len())
}
