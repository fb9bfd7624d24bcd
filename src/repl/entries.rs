//! The session's program: the items typed so far, each with the names it
//! defines and the names it reads, and their assembly into one source text
//! that the ordinary front end checks. Items are kept in the order they were
//! entered (a redefinition takes its predecessor's place) and assembled in
//! dependency order, so a redefinition may read names entered after the
//! definition it replaces. The assembled text remembers where each item
//! landed, so a diagnostic anywhere in it is traced back to the item — and
//! rendered against the text the user typed.

use std::collections::{BTreeSet, HashMap};

use crate::diag::{Diagnostic, Span};
use crate::syntax::ast::{self, CallArg, Expr, ExprKind, IndexItem, ItemKind};

/// What an item is, for ordering and for `:save`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `const`, `param`, `energy`, `model`, `use`, a tensor `let`.
    Definition,
    /// A run-time binding that runs when entered: `data d = ..`,
    /// `let s = sample(..)`.
    Binding,
}

/// One item of the session.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The text as typed (one item).
    pub text: String,
    /// Where it was typed: the input's name and the line the item starts on.
    pub origin: Origin,
    pub kind: Kind,
    /// The names it defines (several for `use a, b from ..`).
    pub names: Vec<String>,
    /// Every name it mentions (a superset of what it reads: local names
    /// are included, which only ever adds an ordering constraint).
    pub reads: BTreeSet<String>,
    /// Set aside: it no longer checks (after a redefinition of something it
    /// reads); it returns when it checks again.
    pub broken: bool,
}

/// Where a piece of text was typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `<stdin>`, `<repl>` or a loaded file's path.
    pub path: String,
    /// 1-based line of the input stream the text starts on.
    pub line: usize,
}

impl Origin {
    /// The text laid out at its line (blank lines before it), so rendered
    /// diagnostics carry the line number of the input stream.
    pub fn placed(&self, text: &str) -> (String, u32) {
        let pad = self.line.saturating_sub(1);
        (format!("{}{text}", "\n".repeat(pad)), pad as u32)
    }
}

/// The names an item defines and whether it runs when entered (`None`: a
/// statement, which defines nothing).
pub fn classify(item: &ast::Item) -> Option<(Kind, Vec<String>)> {
    let one = |k, n: &ast::Ident| Some((k, vec![n.name.clone()]));
    match &item.kind {
        ItemKind::Const { name, .. } | ItemKind::Param { name, .. } => one(Kind::Definition, name),
        ItemKind::Energy(def) | ItemKind::Model { def, .. } => one(Kind::Definition, &def.name),
        ItemKind::Use { names, .. } => Some((
            Kind::Definition,
            names.iter().map(|u| u.local().name.clone()).collect(),
        )),
        ItemKind::Data { name, .. } => one(Kind::Binding, name),
        ItemKind::Let { name, value } => match &value.kind {
            ExprKind::Call { callee, .. }
                if crate::sema::builtins::STATEMENTS.contains(&callee.name.as_str()) =>
            {
                one(Kind::Binding, name)
            }
            _ => one(Kind::Definition, name),
        },
        ItemKind::Expr(_) => None,
    }
}

/// Every name an item's expressions mention.
pub fn reads(item: &ast::Item) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut visit = |e: &Expr| collect_names(e, &mut names);
    match &item.kind {
        ItemKind::Const { value, .. } | ItemKind::Data { value, .. } => visit(value),
        ItemKind::Let { value, .. } | ItemKind::Expr(value) => visit(value),
        ItemKind::Param { shape, init, .. } => {
            shape.dims.iter().for_each(&mut visit);
            visit(init);
        }
        ItemKind::Energy(def) => def_names(def, &mut visit),
        ItemKind::Model { def, output } => {
            def_names(def, &mut visit);
            output.dims.iter().for_each(&mut visit);
        }
        ItemKind::Use { .. } => {}
    }
    names
}

fn def_names(def: &ast::Def, visit: &mut impl FnMut(&Expr)) {
    def.input.shape.dims.iter().for_each(&mut *visit);
    if let Some(c) = &def.cond {
        c.shape.dims.iter().for_each(&mut *visit);
    }
    visit(&def.body);
}

fn collect_names(e: &Expr, out: &mut BTreeSet<String>) {
    // The parser bounds nesting (`syntax::scan`), and the REPL calls this
    // on the big-stack thread, so recursion depth is bounded.
    match &e.kind {
        ExprKind::Number(_) | ExprKind::Str(_) => {}
        ExprKind::Name(n) => {
            out.insert(n.clone());
        }
        ExprKind::Tensor(items) => items.iter().for_each(|i| collect_names(i, out)),
        ExprKind::Unary { operand, .. } => collect_names(operand, out),
        ExprKind::Binary { lhs, rhs, .. } => {
            collect_names(lhs, out);
            collect_names(rhs, out);
        }
        ExprKind::Call { callee, args, cond } => {
            out.insert(callee.name.clone());
            for a in args {
                match a {
                    CallArg::Positional(v) | CallArg::Keyword { value: v, .. } => {
                        collect_names(v, out)
                    }
                }
            }
            if let Some(c) = cond {
                collect_names(c, out);
            }
        }
        ExprKind::Index { base, indices } => {
            collect_names(base, out);
            for i in indices {
                match i {
                    IndexItem::At(v) => collect_names(v, out),
                    IndexItem::Range {
                        start, end, step, ..
                    } => [start, end, step]
                        .into_iter()
                        .flatten()
                        .for_each(|v| collect_names(v, out)),
                }
            }
        }
        ExprKind::Let { value, body, .. } => {
            collect_names(value, out);
            collect_names(body, out);
        }
        ExprKind::Lambda { body, .. } => collect_names(body, out),
    }
}

/// The entries' indices in an order where each comes after the entries
/// defining what it reads; among those free to go, entry order wins. A
/// cycle (only possible through local names that shadow session names)
/// falls back to entry order for what remains.
pub fn dependency_order(entries: &[&Entry]) -> Vec<usize> {
    let definer: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.names.iter().map(move |n| (n.as_str(), i)))
        .collect();
    let needs: Vec<Vec<usize>> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut d: Vec<usize> = e
                .reads
                .iter()
                .filter_map(|n| definer.get(n.as_str()).copied())
                .filter(|&j| j != i)
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    let mut placed = vec![false; entries.len()];
    let mut order = Vec::with_capacity(entries.len());
    while order.len() < entries.len() {
        let next = (0..entries.len())
            .find(|&i| !placed[i] && needs[i].iter().all(|&j| placed[j]))
            .or_else(|| (0..entries.len()).find(|&i| !placed[i]));
        let Some(i) = next else { break };
        placed[i] = true;
        order.push(i);
    }
    order
}

/// Where one piece of the assembled text came from.
#[derive(Clone, Debug)]
pub struct Piece {
    /// Byte range in the assembled text.
    pub start: u32,
    pub end: u32,
    /// Which piece of the caller's list this is.
    pub index: usize,
    /// Bytes of wrapping text before the user's text (`print(` around a
    /// bare expression).
    pub shift: u32,
}

/// Pieces of source joined by newlines, with a map back to each piece.
#[derive(Clone, Debug, Default)]
pub struct Assembly {
    pub text: String,
    pub pieces: Vec<Piece>,
}

impl Assembly {
    /// Appends `text` (wrapped: `prefix` + text + `suffix`) as piece `index`.
    pub fn push(&mut self, index: usize, prefix: &str, text: &str, suffix: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let start = self.text.len() as u32;
        self.text.push_str(prefix);
        self.text.push_str(text);
        self.text.push_str(suffix);
        self.pieces.push(Piece {
            start,
            end: self.text.len() as u32,
            index,
            shift: prefix.len() as u32,
        });
    }

    /// The piece a diagnostic points into, and the diagnostic moved to
    /// that piece's own text (clamped to it).
    pub fn locate(
        &self,
        d: &Diagnostic,
        len_of: impl Fn(usize) -> usize,
    ) -> Option<(usize, Diagnostic)> {
        let p = self
            .pieces
            .iter()
            .find(|p| d.span.start >= p.start && d.span.start <= p.end)?;
        let len = len_of(p.index) as u32;
        let local = |at: u32| at.saturating_sub(p.start + p.shift).min(len);
        let mut moved = d.clone();
        moved.span = Span::new(
            local(d.span.start) as usize,
            local(d.span.end.max(d.span.start)) as usize,
        );
        Some((p.index, moved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> Entry {
        let program = crate::syntax::parse(text).expect("parses");
        let item = &program.items[0];
        let (kind, names) = classify(item).expect("a definition");
        Entry {
            text: text.into(),
            origin: Origin {
                path: "<t>".into(),
                line: 1,
            },
            kind,
            names,
            reads: reads(item),
            broken: false,
        }
    }

    /// Entries in dependency order, by their first name.
    fn check(texts: &[&str], expect: &[&str]) {
        let entries: Vec<Entry> = texts.iter().map(|t| entry(t)).collect();
        let refs: Vec<&Entry> = entries.iter().collect();
        let order: Vec<&str> = dependency_order(&refs)
            .into_iter()
            .map(|i| entries[i].names[0].as_str())
            .collect();
        assert_eq!(order, expect, "{texts:?}");
    }

    #[test]
    fn orders_by_dependency_then_entry() {
        check(&["const a = 1", "const b = 2"], &["a", "b"]);
        // A redefinition of `a` that reads `b`, entered later, moves after it.
        check(&["const a = b + 1", "const b = 2"], &["b", "a"]);
        check(
            &[
                "energy e(x: [2]) = sum((x - mu)^2) / s",
                "param mu: [2] ~ zeros",
                "const s = 2",
            ],
            &["mu", "s", "e"],
        );
        // Local names that shadow session names only add constraints.
        check(&["const x = 1", "energy e(x: [2]) = sum(x)"], &["x", "e"]);
    }

    #[test]
    fn classifies_items() {
        assert_eq!(entry("let s = sample(e, chains = 2)").kind, Kind::Binding);
        assert_eq!(
            entry("data d = toy(\"two_moons\", n = 10)").kind,
            Kind::Binding
        );
        assert_eq!(entry("let t = [1, 2]").kind, Kind::Definition);
        assert_eq!(entry("use a, b as c from \"m.ebmc\"").names, ["a", "c"]);
        let program = crate::syntax::parse("print(1)").unwrap();
        assert!(classify(&program.items[0]).is_none());
    }

    #[test]
    fn locates_diagnostics_in_pieces() {
        let mut a = Assembly::default();
        a.push(0, "", "const a = 1", "");
        a.push(1, "print(", "a + q", ")");
        let at = a.text.find('q').unwrap();
        let d = Diagnostic::new("E0101", Span::new(at, at + 1), "unknown name");
        let (i, moved) = a.locate(&d, |i| [11, 5][i]).unwrap();
        assert_eq!((i, moved.span), (1, Span::new(4, 5)));
    }
}
