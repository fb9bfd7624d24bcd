//! Diagnostics: every user mistake is a `Diagnostic` value with a byte span,
//! rendered like a compiler error (`file:line:col`, the source line, a caret
//! and one sentence). Stages build them through the named constructors in
//! their own `errors` modules; this module owns only the data and rendering.

use std::fmt::Write as _;

/// A half-open byte range `[start, end)` into one source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end.max(start) as u32,
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// Whether a diagnostic stops the program (an error) or only tells the user
/// something that is valid but probably wrong (a warning: the program still
/// checks and runs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Severity {
    #[default]
    Error,
    Warning,
}

impl Severity {
    /// The word the renderer prints before the code.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One user-facing error or warning.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Errors stop the program; warnings never do.
    pub severity: Severity,
    /// Stable machine-readable kind, e.g. `E0101` (errors) or `W0101`
    /// (warnings); listed in `docs/language.md` §10.
    pub code: &'static str,
    /// The headline: one sentence, lower-case start, no trailing period.
    pub message: String,
    pub span: Span,
    /// Short text printed next to the caret (e.g. "expected `)`").
    pub label: Option<String>,
    /// Extra lines: `help: did you mean ...`, `note: ...`.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn new(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            label: None,
            notes: Vec::new(),
        }
    }

    /// A warning: rendered as `warning[CODE]`, and it never stops a run.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::new(code, span, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.notes.push(format!("help: {}", help.into()));
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(format!("note: {}", note.into()));
        self
    }

    /// Render against the source it points into. `path` is printed as given.
    pub fn render(&self, path: &str, source: &str) -> String {
        let (line_no, col, line) = locate(source, self.span.start as usize);
        let gutter = line_no.to_string().len();
        let pad = " ".repeat(gutter);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            self.severity.word(),
            self.code,
            clip_code(&self.message)
        );
        let _ = writeln!(out, "{pad}--> {path}:{line_no}:{col}");
        let _ = writeln!(out, "{pad} |");
        let chars: Vec<char> = line.trim_end().chars().map(printable).collect();
        let caret_start = line[..col_byte(line, col)].chars().count();
        let span_len = self.span.end.saturating_sub(self.span.start) as usize;
        let rest = line.len().saturating_sub(col_byte(line, col));
        let width = line[col_byte(line, col)..col_byte(line, col) + span_len.min(rest)]
            .chars()
            .count()
            .max(1);
        let (shown, caret_at, width) = window(&chars, caret_start, width);
        let _ = writeln!(out, "{line_no} | {shown}");
        let _ = write!(out, "{pad} | {}{}", " ".repeat(caret_at), "^".repeat(width));
        match &self.label {
            Some(label) => {
                let _ = writeln!(out, " {}", clip_code(label));
            }
            None => out.push('\n'),
        }
        for note in &self.notes {
            let _ = writeln!(out, "{pad} = {}", clip_code(note));
        }
        out
    }
}

/// Longest piece of quoted source (between backquotes) a message shows
/// whole; a longer one (a generated name, a number of thousands of digits)
/// keeps its ends around a `…`.
pub const CODE_WINDOW: usize = 80;

/// `text` with every `quoted` piece longer than [`CODE_WINDOW`] characters cut.
fn clip_code(text: &str) -> std::borrow::Cow<'_, str> {
    let pieces: Vec<&str> = text.split('`').collect();
    // Odd pieces are inside backquotes (when they pair up).
    let long = pieces
        .iter()
        .skip(1)
        .step_by(2)
        .any(|p| p.chars().count() > CODE_WINDOW);
    if !long || pieces.len().is_multiple_of(2) {
        return text.into();
    }
    let half = CODE_WINDOW / 2;
    let mut out = String::new();
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            out.push('`');
        }
        let n = p.chars().count();
        if i % 2 == 1 && n > CODE_WINDOW {
            out.extend(p.chars().take(half));
            out.push('…');
            out.extend(p.chars().skip(n - half));
        } else {
            out.push_str(p);
        }
    }
    out.into()
}

/// Characters of a source line shown around a caret: a long line (a
/// generated file, minified data) shows a window of [`LINE_WINDOW`]
/// characters with `…` where it was cut, never the whole line.
pub const LINE_WINDOW: usize = 100;

/// The text to show, the caret's column in it and the caret's width.
fn window(chars: &[char], caret: usize, width: usize) -> (String, usize, usize) {
    if chars.len() <= LINE_WINDOW {
        return (chars.iter().collect(), caret, width);
    }
    let start = caret
        .saturating_sub(LINE_WINDOW / 3)
        .min(chars.len().saturating_sub(LINE_WINDOW));
    let end = (start + LINE_WINDOW).min(chars.len());
    let mut text = String::new();
    let mut at = caret - start;
    if start > 0 {
        text.push('…');
        at += 1;
    }
    text.extend(&chars[start..end]);
    if end < chars.len() {
        text.push('…');
    }
    let width = width.min(end.saturating_sub(caret)).max(1);
    (text, at, width)
}

/// Control characters and tabs would break caret alignment; show them as spaces.
fn printable(c: char) -> char {
    if c.is_control() { ' ' } else { c }
}

fn col_byte(line: &str, col: usize) -> usize {
    line.char_indices()
        .nth(col - 1)
        .map(|(i, _)| i)
        .unwrap_or(line.len())
}

/// 1-based line and column (in characters) of a byte offset, and the line's text.
pub fn locate(source: &str, offset: usize) -> (usize, usize, &str) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = source[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = source[offset..]
        .find('\n')
        .map(|i| offset + i)
        .unwrap_or(source.len());
    let line_no = source[..line_start].matches('\n').count() + 1;
    let col = source[line_start..offset].chars().count() + 1;
    (line_no, col, &source[line_start..line_end])
}

/// At most this many diagnostics are rendered: each render scans the source
/// for its line, so thousands of them on a large file would take seconds.
pub const MAX_RENDERED: usize = 50;

/// Render several diagnostics, separated by blank lines (the first
/// `MAX_RENDERED`, then a line counting the rest).
pub fn render_all(diags: &[Diagnostic], path: &str, source: &str) -> String {
    let mut out = diags
        .iter()
        .take(MAX_RENDERED)
        .map(|d| d.render(path, source))
        .collect::<Vec<_>>()
        .join("\n");
    if diags.len() > MAX_RENDERED {
        let rest = &diags[MAX_RENDERED..];
        let (word, what) = if rest.iter().any(Diagnostic::is_error) {
            ("error", "errors")
        } else {
            ("warning", "warnings")
        };
        out.push_str(&format!("\n{word}: {} more {what} not shown\n", rest.len()));
    }
    out
}

/// A number as people read it: the shortest decimal that reads back to the
/// same f64, in exponent form when it is very large or very small (`1e300`,
/// not 301 digits; `2.5e-9`), `inf`/`NaN` as Rust writes them.
pub fn shortest(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && a.is_finite() && !(1e-5..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// The closest candidate by edit distance, for "did you mean" hints.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// Edit distance with adjacent transpositions counted as one edit
/// (optimal string alignment: `sampel` is one edit from `sample`).
fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_span() {
        let src = "const a = 1\nenergy e(x: [2]) = sum(y)\n";
        let start = src.find("y)").unwrap();
        let d = Diagnostic::new("E0000", Span::new(start, start + 1), "unknown name `y`")
            .with_label("not defined")
            .with_help("did you mean `x`?");
        let text = d.render("m.ebm", src);
        let expect = "error[E0000]: unknown name `y`\n --> m.ebm:2:24\n  |\n2 | energy e(x: [2]) = sum(y)\n  |                        ^ not defined\n  = help: did you mean `x`?\n";
        assert_eq!(text, expect);
    }

    #[test]
    fn warnings_render_with_their_word() {
        let src = "energy e(x: [2]) = not sqnorm(x)\n";
        let start = src.find("not").unwrap();
        let d = Diagnostic::warning("W0101", Span::new(start, start + 13), "unbounded")
            .with_label("falls");
        assert!(!d.is_error());
        let text = d.render("m.ebm", src);
        assert!(text.starts_with("warning[W0101]: unbounded\n"), "{text}");
        assert!(text.contains("^^^^^^^^^^^^^ falls"), "{text}");
    }

    #[test]
    fn long_lines_show_a_window_around_the_caret() {
        let mut src = "x".repeat(5000);
        src.push_str(" bad ");
        src.push_str(&"y".repeat(5000));
        let at = 5001;
        let d = Diagnostic::new("E0000", Span::new(at, at + 3), "bad");
        let text = d.render("f.ebm", &src);
        let lines: Vec<&str> = text.lines().collect();
        let shown = lines[3].trim_start_matches("1 | ");
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(shown.chars().count() <= LINE_WINDOW + 2, "{}", shown.len());
        // The caret sits under `bad`.
        let caret = lines[4].find('^').unwrap() - lines[4].find('|').unwrap() - 2;
        let under: String = shown.chars().skip(caret).take(3).collect();
        assert_eq!(under, "bad", "{text}");
    }

    #[test]
    fn long_quoted_tokens_are_cut_in_messages() {
        let name = "a".repeat(5000);
        let src = format!("energy e(x: [1]) = {name}\n");
        let at = src.find('a').unwrap();
        let d = Diagnostic::new(
            "E0201",
            Span::new(at, at + 5000),
            format!("unknown name `{name}`"),
        )
        .with_help(format!("did you mean `{name}`?"));
        let text = d.render("f.ebm", &src);
        assert!(text.lines().all(|l| l.chars().count() < 120), "{text}");
        let half = "a".repeat(CODE_WINDOW / 2);
        assert!(text.contains(&format!("`{half}…{half}`")), "{text}");
    }

    #[test]
    fn numbers_print_short_and_round_trip() {
        for (v, want) in [
            (1e300, "1e300"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.5, "1.5"),
            (-2.5e-9, "-2.5e-9"),
            (123456.0, "123456"),
            (2f64.powi(70), "1.1805916207174113e21"),
            (0.0, "0"),
        ] {
            assert_eq!(shortest(v), want);
            assert_eq!(shortest(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("centres", ["centers", "x"]), Some("centers"));
        assert_eq!(suggest("zzz", ["centers", "x"]), None);
        // Transpositions are one edit, so short names still find theirs.
        for (typo, want) in [("sampel", "sample"), ("stpe", "step"), ("lable", "label")] {
            assert_eq!(
                suggest(typo, ["sample", "step", "label", "steps"]),
                Some(want)
            );
        }
    }
}
