//! The pre-scan: one linear pass over the raw text before pest sees it.
//!
//! It checks what a grammar reports badly or too late — stray characters,
//! unterminated strings, unbalanced brackets, nesting depth — and produces a
//! cleaned copy of the text *with the same byte offsets*: comments become
//! spaces and newlines inside `(..)` / `[..]` become spaces. The cleaned text
//! splits into logical lines at the remaining newlines, one item per line.
//! Because nesting is bounded here, pest's recursion is bounded too.

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
                if stack.len() > MAX_NESTING {
                    return Err(errors::too_deep(crate::diag::Span::new(i, i + 1)));
                }
            }
            ')' | ']' => match stack.pop() {
                None => return Err(errors::unmatched_close(i, c)),
                Some((open_at, open)) => {
                    if (open == '(') != (c == ')') {
                        return Err(errors::mismatched_close(i, c, open_at, open, source));
                    }
                }
            },
            '\n' => handle_newline(source, &mut clean, i, &stack, &mut lines, &mut line_start)?,
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
            if ITEM_KEYWORDS.contains(&word) {
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
