//! Turns pest's "positives" (the rules it tried at the failure point) into
//! one sentence: "expected `=` after the energy's signature, found `sum`".

use super::errors;
use super::parser::Rule;
use crate::diag::{Diagnostic, Span};

const KEYWORDS: [&str; 9] = [
    "and", "or", "not", "const", "param", "energy", "model", "data", "let",
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Want {
    Definition,
    Expression,
    Name,
    Shape,
    Token(&'static str),
    Operator,
    EndOfLine,
}

impl Want {
    fn words(self) -> String {
        match self {
            Want::Definition => "a definition".into(),
            Want::Expression => "an expression".into(),
            Want::Name => "a name".into(),
            Want::Shape => "a shape such as `[2]`".into(),
            Want::Token(t) => format!("`{t}`"),
            Want::Operator => "an operator".into(),
            Want::EndOfLine => "the end of the line".into(),
        }
    }
}

/// (what it stands for, whether it is a fallback that only matters when
/// nothing more specific was expected).
fn want(rule: Rule) -> Option<(Want, bool)> {
    use Rule::*;
    Some(match rule {
        kw_const | kw_param | kw_energy | kw_model | kw_data | kw_let | const_item | param_item
        | energy_item | model_item | data_item | let_item => (Want::Definition, false),
        number | bad_number | string | call | paren | tensor | neg | not_op | expr | expr_item
        | kwarg | key | let_expr | let_kw | lambda => (Want::Expression, false),
        name => (Want::Name, false),
        shape => (Want::Shape, false),
        arg => (Want::Name, false),
        signature | lparen => (Want::Token("("), false),
        lbracket => (Want::Token("["), false),
        index_item => (Want::Expression, false),
        assign => (Want::Token("="), false),
        colon => (Want::Token(":"), false),
        comma => (Want::Token(","), false),
        tilde => (Want::Token("~"), false),
        arrow => (Want::Token("->"), false),
        kw_in => (Want::Token("in"), false),
        fat_arrow => (Want::Token("=>"), false),
        rparen => (Want::Token(")"), false),
        rbracket => (Want::Token("]"), false),
        EOI => (Want::EndOfLine, false),
        bar => (Want::Token("|"), true),
        call_open => (Want::Token("("), true),
        index_open | index => (Want::Token("["), true),
        kw_assign => (Want::Token("="), true),
        or_op | and_op | le | lt | ge | gt | add | sub | mul | div | matmul | pow => {
            (Want::Operator, true)
        }
        _ => return None,
    })
}

/// A token of the source at `at`, for "found ...": (words, span, keyword?).
fn token_at(clean: &str, at: usize, end: usize) -> Option<(String, Span, Option<&str>)> {
    let rest = &clean[at..end];
    let skip = rest.len() - rest.trim_start().len();
    let at = at + skip;
    let rest = &clean[at..end];
    let c = rest.chars().next()?;
    let word_len = |s: &str| {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(s.len())
    };
    let (words, len, kw) = if c.is_ascii_digit() || (c == '.' && rest.len() > 1) {
        let n = word_len(rest).max(1);
        (format!("`{}`", &rest[..n]), n, None)
    } else if c.is_ascii_alphabetic() || c == '_' {
        let n = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let w = &rest[..n];
        match KEYWORDS.iter().find(|k| **k == w) {
            Some(k) => (format!("keyword `{w}`"), n, Some(*k)),
            None => (format!("`{w}`"), n, None),
        }
    } else if c == '"' {
        let mut n = rest.len();
        let mut escaped = false;
        for (i, d) in rest.char_indices().skip(1) {
            match d {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    n = i + 1;
                    break;
                }
                _ => escaped = false,
            }
        }
        ("a string".to_string(), n, None)
    } else if ["<=", ">=", "->"].iter().any(|t| rest.starts_with(t)) {
        (format!("`{}`", &rest[..2]), 2, None)
    } else {
        (format!("`{c}`"), c.len_utf8(), None)
    };
    Some((words, Span::new(at, at + len), kw))
}

/// The token just before `at` on the line (for "after `=`"), and where it ends.
fn token_before(clean: &str, start: usize, at: usize) -> Option<(&str, usize)> {
    let before = clean[start..at].trim_end();
    let end = start + before.len();
    let last = before.chars().next_back()?;
    let tok_start = if last.is_ascii_alphanumeric() || last == '_' || last == '.' {
        before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .map(|i| i + 1)
            .unwrap_or(0)
    } else if last == '"' {
        return Some(("a string", end));
    } else if before.ends_with("<=") || before.ends_with(">=") || before.ends_with("->") {
        before.len() - 2
    } else {
        before.len() - last.len_utf8()
    };
    Some((&before[tok_start..], end))
}

pub fn describe(
    source: &str,
    clean: &str,
    start: usize,
    end: usize,
    at: usize,
    positives: &[Rule],
) -> Diagnostic {
    let mut main: Vec<Want> = Vec::new();
    let mut fallback: Vec<Want> = Vec::new();
    for &r in positives {
        if let Some((w, weak)) = want(r) {
            let list = if weak { &mut fallback } else { &mut main };
            if !list.contains(&w) {
                list.push(w);
            }
        }
    }
    if main.contains(&Want::Expression) {
        // `(`, `[` and names are ways to start an expression.
        main.retain(|w| !matches!(w, Want::Name | Want::Token("(") | Want::Token("[")));
    }
    let mut wanted = if main.is_empty() {
        fallback
    } else if main == [Want::EndOfLine] && fallback.contains(&Want::Operator) {
        vec![Want::Operator, Want::EndOfLine]
    } else {
        main
    };
    if wanted.contains(&Want::Definition) {
        // Blank lines never reach pest, so a line cannot just end here.
        wanted.retain(|w| *w != Want::EndOfLine);
    }
    wanted.sort();
    let kind = clean[start..end].split_whitespace().next().unwrap_or("");
    let prev = token_before(clean, start, at);
    let found = token_at(clean, at, end);
    let (found_words, span, keyword) = match found {
        Some(f) => f,
        None => {
            let words = if end < source.len() {
                "the end of the line"
            } else {
                "the end of the file"
            };
            let p = prev.map(|(_, e)| e).unwrap_or(at);
            (words.to_string(), Span::new(p, p), None)
        }
    };

    let single = |w: Want| wanted == [w];
    let expected = if single(Want::Token("=")) {
        match kind {
            "energy" => "`=` after the energy's signature".to_string(),
            "model" => "`=` after the model's output shape".to_string(),
            "const" => "`=` after the constant's name".to_string(),
            "data" => "`=` after the data set's name".to_string(),
            "let" => "`=` after the variable's name".to_string(),
            _ => "`=`".to_string(),
        }
    } else if single(Want::Token("(")) && matches!(kind, "energy" | "model") {
        format!("`(` and the sample argument after the {kind}'s name")
    } else if single(Want::Token("->")) {
        "`->` and the output shape after the model's signature".to_string()
    } else if single(Want::Token(":")) && kind == "param" {
        "`:` and a shape after the parameter's name".to_string()
    } else if single(Want::Token(":")) {
        "`:` and a shape after the argument's name".to_string()
    } else if single(Want::Token("~")) {
        "`~` and an initialiser after the parameter's shape".to_string()
    } else if single(Want::Token("[")) || single(Want::Shape) {
        let after = prev
            .map(|(p, _)| format!(" after `{p}`"))
            .unwrap_or_default();
        format!("a shape such as `[2]`{after}")
    } else {
        let mut text = join(&wanted);
        if wanted == [Want::Definition, Want::Expression] {
            text = "a definition or an expression".to_string();
        } else if wanted
            .first()
            .is_some_and(|w| matches!(w, Want::Expression | Want::Name))
            && let Some((p, _)) = prev
        {
            text = format!("{text} after `{p}`");
        }
        text
    };

    let name_expected = wanted.contains(&Want::Name) || wanted.contains(&Want::Expression);
    let mut d = match keyword {
        Some(k)
            if name_expected
                && !(wanted.contains(&Want::Expression) && ["and", "or", "not"].contains(&k)) =>
        {
            errors::keyword_as_name(span, &expected, k)
        }
        _ => errors::unexpected(span, &expected, &found_words),
    };
    let found_text = &clean[span.start as usize..span.end as usize];
    let first_on_line = clean[start..span.start as usize].trim().is_empty();
    if first_on_line
        && [
            "+", "-", "*", "/", "^", "@", "<", ">", "<=", ">=", "=", "|", ",",
        ]
        .contains(&found_text)
    {
        d = d.with_help(format!(
            "a line cannot start with `{found_text}`; to continue an expression on the next line, wrap it in parentheses"
        ));
    } else if found_text == "|" && wanted == [Want::Token(")")] {
        d = d.with_help("a definition takes one sample argument and at most one conditioning argument after `|`");
    } else if found_text == "*" && prev.is_some_and(|(p, _)| p == "*") {
        d = d.with_help("powers are written `x ^ 2`");
    } else if wanted.contains(&Want::Token("in")) {
        d = d.with_help("a local binding is `let NAME = VALUE in BODY`");
    } else if wanted.contains(&Want::Token("=>")) {
        d = d.with_help("a step function is `(s, xt) => BODY`");
    } else if found_text == "=" && prev.is_some_and(|(p, _)| p == "=") {
        d = d.with_help("there is no `==`; comparisons are `<`, `<=`, `>`, `>=`");
    }
    d
}

fn join(wanted: &[Want]) -> String {
    let words: Vec<String> = wanted.iter().map(|w| w.words()).collect();
    match words.len() {
        0 => "something else".to_string(),
        1 => words[0].clone(),
        n => format!("{} or {}", words[..n - 1].join(", "), words[n - 1]),
    }
}
