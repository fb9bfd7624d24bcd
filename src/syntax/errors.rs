//! Syntax errors as data: one constructor per kind, each a `Diagnostic` with
//! a stable code (E01xx), a span for the caret and one sentence.
//!
//! | code  | kind |
//! |-------|------|
//! | E0100 | a character that cannot start any token |
//! | E0101 | unterminated string |
//! | E0102 | unknown escape sequence in a string |
//! | E0103 | closing bracket with nothing to close |
//! | E0104 | closing bracket of the wrong kind |
//! | E0105 | bracket never closed |
//! | E0106 | brackets / prefix operators nested too deeply |
//! | E0107 | expression tree too deep (e.g. a sum of thousands of terms) |
//! | E0108 | unexpected token: "expected X, found Y" |
//! | E0109 | keyword used as a name |
//! | E0110 | malformed number (`.5`, `1.`, `2x`, `1e`) |
//! | E0111 | number out of range (`1e999`, `1e-999`) |
//! | E0112 | chained comparison (`a < b < c`) |
//! | E0113 | `not` after an operator that binds tighter |
//! | E0114 | source file too large |

use crate::diag::{Diagnostic, Span};

/// How deeply brackets, `let` and step-function bodies, prefix operators
/// and `^` chains may nest.
pub const MAX_NESTING: usize = 2000;
/// How deep an expression's syntax tree may be (long operator chains:
/// a sum of this many terms).
pub const MAX_EXPR_DEPTH: u32 = 10_000;
/// The largest source file the front end accepts.
pub const MAX_SOURCE_BYTES: usize = 2 * 1024 * 1024;

fn show_char(c: char) -> String {
    if c == '\u{FFFD}' {
        "a byte that is not valid UTF-8".to_string()
    } else if c.is_control() || c.is_whitespace() {
        format!("character U+{:04X}", c as u32)
    } else {
        format!("`{c}`")
    }
}

pub fn stray_char(at: usize, c: char) -> Diagnostic {
    let d = Diagnostic::new(
        "E0100",
        Span::new(at, at + c.len_utf8()),
        format!("expected a token, found {}", show_char(c)),
    )
    .with_label("not part of the language");
    match c {
        ';' => d.with_help("items are separated by newlines, not `;`"),
        '\'' | '`' => d.with_help("strings use double quotes: \"...\""),
        '{' | '}' => d.with_help("use `(` and `)` to group expressions"),
        '!' => d.with_help("use `not` for composition; comparisons are `<`, `<=`, `>`, `>=`"),
        '%' => d.with_help("there is no `%` operator"),
        '\u{FFFD}' => d.with_note("the file must be UTF-8 text"),
        c if !c.is_ascii() && c.is_alphabetic() => {
            d.with_help("names use ASCII letters, digits and `_`")
        }
        _ => d,
    }
}

pub fn unterminated_string(start: usize, line_end: usize) -> Diagnostic {
    Diagnostic::new(
        "E0101",
        Span::new(start, line_end),
        "expected a closing `\"` before the end of the line, found an unterminated string",
    )
    .with_label("this string is never closed")
    .with_help("strings cannot span several lines")
}

pub fn bad_escape(span: Span, text: &str) -> Diagnostic {
    Diagnostic::new(
        "E0102",
        span,
        format!("expected one of the escapes `\\\\`, `\\\"`, `\\n`, `\\t`, found `{text}`"),
    )
    .with_label("unknown escape")
}

pub fn unmatched_close(at: usize, c: char) -> Diagnostic {
    Diagnostic::new(
        "E0103",
        Span::new(at, at + 1),
        format!("found `{c}` with no opening `{}` to match it", opener_of(c)),
    )
    .with_label("unmatched")
}

pub fn mismatched_close(
    at: usize,
    c: char,
    open_at: usize,
    open: char,
    source: &str,
) -> Diagnostic {
    let (line, col, _) = crate::diag::locate(source, open_at);
    Diagnostic::new(
        "E0104",
        Span::new(at, at + 1),
        format!("expected `{}`, found `{c}`", closer_of(open)),
    )
    .with_label(format!("expected `{}`", closer_of(open)))
    .with_note(format!(
        "the `{open}` to close was opened at line {line}, column {col}"
    ))
}

/// `found` describes what came instead: "end of file", "`energy` on line 3".
pub fn unclosed(open_at: usize, open: char, found: &str) -> Diagnostic {
    Diagnostic::new(
        "E0105",
        Span::new(open_at, open_at + 1),
        format!(
            "expected `{}` to close this `{open}`, found {found}",
            closer_of(open)
        ),
    )
    .with_label("this bracket is never closed")
}

pub fn too_deep(at: Span) -> Diagnostic {
    Diagnostic::new(
        "E0106",
        at,
        format!(
            "expected at most {MAX_NESTING} levels of nested brackets, `let`s and prefix operators, found more"
        ),
    )
    .with_label("nested too deeply")
    .with_help("bind parts with `let NAME = .. in ..` at one level, or split the expression into several definitions")
}

pub fn tree_too_deep(at: Span) -> Diagnostic {
    Diagnostic::new(
        "E0107",
        at,
        format!(
            "expected an expression at most {MAX_EXPR_DEPTH} operators deep, found a deeper one"
        ),
    )
    .with_label("the expression is too long here")
    .with_help("sum a tensor (`sum(..)`) or use `fold` instead of a long chain, or split the expression into several definitions")
}

/// The generic parse error: `expected` and `found` are already in words.
pub fn unexpected(at: Span, expected: &str, found: &str) -> Diagnostic {
    Diagnostic::new("E0108", at, format!("expected {expected}, found {found}"))
}

pub fn keyword_as_name(at: Span, expected: &str, keyword: &str) -> Diagnostic {
    Diagnostic::new(
        "E0109",
        at,
        format!("expected {expected}, found keyword `{keyword}`"),
    )
    .with_label("a keyword")
    .with_help(format!(
        "`{keyword}` is reserved and cannot be used as a name; try `{keyword}_`"
    ))
}

pub fn bad_number(at: Span, text: &str) -> Diagnostic {
    let d = Diagnostic::new(
        "E0110",
        at,
        format!("expected a number such as `0.5` or `1e-3`, found `{text}`"),
    )
    .with_label("malformed number");
    let bytes = text.as_bytes();
    if text.starts_with('.') {
        d.with_help(format!("write a digit before the point: `0{text}`"))
    } else if let Some(p) = text
        .find('.')
        .filter(|p| !bytes.get(p + 1).is_some_and(u8::is_ascii_digit))
    {
        d.with_help(format!("write a digit after the point: `{}0`", &text[..=p]))
    } else if let Some(p) = text.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        let c = bytes[p];
        if (c == b'e' || c == b'E') && !bytes.get(p + 1).is_some_and(u8::is_ascii_digit) {
            d.with_help("an exponent needs digits, e.g. `1e-3`")
        } else {
            d.with_help(format!(
                "to multiply, write `{} * {}`",
                &text[..p],
                &text[p..]
            ))
        }
    } else {
        d
    }
}

pub fn number_out_of_range(at: Span, text: &str, too_small: bool) -> Diagnostic {
    let (what, note) = if too_small {
        (
            "a number that is not rounded to 0",
            "the smallest positive f64 is about 4.9e-324",
        )
    } else {
        (
            "a number no larger than about 1.8e308",
            "the largest f64 is about 1.8e308",
        )
    };
    Diagnostic::new("E0111", at, format!("expected {what}, found `{text}`"))
        .with_label("out of range")
        .with_note(note)
}

pub fn chained_comparison(at: Span, op: &str) -> Diagnostic {
    Diagnostic::new(
        "E0112",
        at,
        format!("expected `and` or parentheses between two comparisons, found `{op}`"),
    )
    .with_label("second comparison")
    .with_help("comparisons do not chain: write `(a < b) < c` or `a < b and b < c`")
}

pub fn not_after_operator(at: Span, op: &str) -> Diagnostic {
    Diagnostic::new(
        "E0113",
        at,
        format!("expected an expression after `{op}`, found keyword `not`"),
    )
    .with_label("`not` binds more loosely than this operator")
    .with_help(format!("add parentheses: `{op} (not ...)`"))
}

pub fn file_too_large(len: usize) -> Diagnostic {
    Diagnostic::new(
        "E0114",
        Span::new(0, 0),
        format!(
            "expected a source file of at most {} MiB, found {len} bytes",
            MAX_SOURCE_BYTES / (1024 * 1024)
        ),
    )
}

fn closer_of(open: char) -> char {
    if open == '(' { ')' } else { ']' }
}

fn opener_of(close: char) -> char {
    if close == ')' { '(' } else { '[' }
}
