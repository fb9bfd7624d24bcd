//! The interactive session behind `ebm repl`: a growing program, checked
//! whole after every input by the ordinary front end, and the run-time
//! state of the statements run so far (samples, data sets, parameters).
//!
//! An input is one or more items of the language, or a `:command`.
//! Definitions replace earlier ones of the same name; whatever reads a
//! redefined name is re-checked, and an item that no longer checks is set
//! aside (reported, kept, and restored once it checks again) rather than
//! blocking the redefinition. A mistake in the input itself is reported
//! against the text just typed and changes nothing. Statements run once,
//! when entered, against the definitions at that moment; a bare expression
//! is printed. Parameters keep their values (trained ones included) unless
//! the item that creates them changes.
//!
//! The session renders nothing and reads no terminal: it returns a
//! [`Reply`] (output text and diagnostics as data) for the binary to print.

pub mod commands;
pub mod complete;
pub mod entries;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Span};
use crate::pipeline::Diagnostics;
use crate::runtime::ParamStore;
use crate::script::{self, Action, Runner, Sampled};
use crate::sema::Module;
use crate::syntax::ast::{self, ExprKind, ItemKind};

use entries::{Assembly, Entry, Kind, Origin};

/// What one input produced.
#[derive(Debug, Default)]
pub struct Reply {
    /// Results for standard output: values, `print`, command output.
    pub out: String,
    /// Errors, warnings and notes for standard error.
    pub diagnostics: Vec<Diagnostics>,
    /// Short remarks for standard error (`redefined mu; re-checked e`).
    pub notes: Vec<String>,
    /// `:quit` was entered.
    pub quit: bool,
    /// The input was refused (or its statement failed): the session is as
    /// it was before it.
    pub rejected: bool,
}

impl Reply {
    fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
    fn absorb(&mut self, other: Reply) {
        self.out.push_str(&other.out);
        self.diagnostics.extend(other.diagnostics);
        self.notes.extend(other.notes);
        self.quit |= other.quit;
        self.rejected |= other.rejected;
    }
    /// Whether an error was reported.
    pub fn failed(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.diags.iter().any(Diagnostic::is_error))
    }
}

/// An interactive session (see the module docs).
pub struct Session {
    /// Definitions and bindings, in entry order.
    entries: Vec<Entry>,
    /// Statements and bindings that ran, in order (what `:save` replays).
    history: Vec<Entry>,
    params: Arc<ParamStore>,
    /// The text of the item that created each parameter: a parameter keeps
    /// its value while that text stays the same.
    param_origin: HashMap<String, String>,
    samples: HashMap<String, Sampled>,
    data: HashMap<String, crate::script::training::DataSpec>,
    scales: HashMap<String, crate::data::Scaler>,
    /// The draws of the last `:sample`, which `:plot` shows by default.
    last_sample: Option<Sampled>,
    /// Relative data paths resolve against this folder.
    base_dir: PathBuf,
    /// The program of the active entries, as last checked.
    module: Module,
    assembly: Assembly,
}

/// A checked program: the module, every statement's action, and where
/// each item landed in the text.
struct Built {
    module: Module,
    actions: Vec<Action>,
    assembly: Assembly,
}

/// Extra text checked after the session's items: a statement about to run
/// (`print(` + expression + `)` for a bare expression).
#[derive(Clone, Copy)]
struct Tail<'a> {
    prefix: &'a str,
    text: &'a str,
    suffix: &'a str,
}

impl<'a> Tail<'a> {
    fn plain(text: &'a str) -> Tail<'a> {
        Tail {
            prefix: "",
            text,
            suffix: "",
        }
    }
}

impl Session {
    /// An empty session; relative paths in data sources resolve against `base_dir`.
    pub fn new(base_dir: &Path) -> Session {
        Session {
            entries: Vec::new(),
            history: Vec::new(),
            params: Arc::new(ParamStore::new()),
            param_origin: HashMap::new(),
            samples: HashMap::new(),
            data: HashMap::new(),
            scales: HashMap::new(),
            last_sample: None,
            base_dir: base_dir.to_path_buf(),
            module: Module::default(),
            assembly: Assembly::default(),
        }
    }

    /// Handles one complete input (see [`complete::needs_more`] for when
    /// an input is complete): items of the language or one `:command`.
    pub fn input(&mut self, text: &str, origin: &Origin) -> Reply {
        // A Ctrl-C that stopped the previous input is spent.
        crate::interrupt::clear();
        if text.trim_start().starts_with(':') {
            return commands::run(self, text.trim(), origin);
        }
        crate::sema::with_big_stack(|| self.items(text, origin))
    }

    fn items(&mut self, text: &str, origin: &Origin) -> Reply {
        let program = match crate::syntax::parse(text) {
            Ok(p) => p,
            Err(diags) => {
                let mut reply = Reply::default();
                reply.diagnostics.push(against(text, origin, diags));
                reply.rejected = true;
                return reply;
            }
        };
        let mut reply = Reply::default();
        for item in &program.items {
            let (start, end) = (item.span.start as usize, item.span.end as usize);
            let item_text = &text[start..end];
            let item_origin = Origin {
                path: origin.path.clone(),
                line: origin.line + text[..start].matches('\n').count(),
            };
            let r = self.item(item_text, &item_origin);
            let stop = r.rejected;
            reply.absorb(r);
            if stop {
                break;
            }
        }
        reply
    }

    /// One item, its text re-parsed on its own so spans are local to it.
    fn item(&mut self, text: &str, origin: &Origin) -> Reply {
        let program = match crate::syntax::parse(text) {
            Ok(p) if p.items.len() == 1 => p,
            Ok(_) => return Reply::default(),
            Err(d) => {
                let mut r = Reply::default();
                r.diagnostics.push(against(text, origin, d));
                r.rejected = true;
                return r;
            }
        };
        let item = &program.items[0];
        match entries::classify(item) {
            Some((kind, names)) => {
                let entry = Entry {
                    text: text.to_string(),
                    origin: origin.clone(),
                    kind,
                    names,
                    reads: entries::reads(item),
                    broken: false,
                };
                self.define(entry)
            }
            None => {
                let bare = match &item.kind {
                    ItemKind::Expr(e) => !is_statement(e),
                    _ => false,
                };
                let tail = if bare {
                    Tail {
                        prefix: "print(",
                        text,
                        suffix: ")",
                    }
                } else {
                    Tail::plain(text)
                };
                self.statement(tail, origin, &entries::reads(item))
            }
        }
    }

    /// A definition or binding: checked with the session, then (a binding)
    /// run; kept when both succeed.
    fn define(&mut self, entry: Entry) -> Reply {
        let mut reply = Reply::default();
        let replaced: Vec<usize> = (0..self.entries.len())
            .filter(|&i| {
                self.entries[i]
                    .names
                    .iter()
                    .any(|n| entry.names.contains(n))
            })
            .collect();
        let mut candidates = self.entries.clone();
        let at = replaced.first().copied().unwrap_or(candidates.len());
        for &i in replaced.iter().rev() {
            candidates.remove(i);
        }
        let at = at.min(candidates.len());
        candidates.insert(at, entry.clone());
        let built = match self.settle(&mut candidates, Some(at), None, &mut reply) {
            Some(b) => b,
            None => return reply,
        };
        if entry.kind == Kind::Binding {
            let ran = self.run_new(&built, &entry.text, &entry.origin, at);
            let ok = !ran.rejected;
            reply.absorb(ran);
            if !ok {
                return reply;
            }
            self.forget_history_of(&entry.names);
            self.history.push(entry.clone());
        }
        if !replaced.is_empty() {
            let readers = dependants(&candidates, &entry.names);
            // Statements that ran on the old definitions would not give
            // their results again: `:save` replays only what still holds.
            let stale: Vec<String> = entry.names.iter().chain(&readers).cloned().collect();
            if entry.kind == Kind::Definition {
                self.forget_history_of(&stale);
            }
            let mut text = format!("redefined {}", quoted(&entry.names));
            if !readers.is_empty() {
                text.push_str(&format!("; re-checked {}", name_list(&readers)));
            }
            // Before what the change set aside, which it explains.
            reply.notes.insert(0, text);
        }
        self.commit(candidates, built);
        reply
    }

    /// A statement: checked after the session's items, then run.
    fn statement(
        &mut self,
        tail: Tail,
        origin: &Origin,
        reads: &std::collections::BTreeSet<String>,
    ) -> Reply {
        let mut reply = Reply::default();
        let mut candidates = self.entries.clone();
        let Some(built) = self.settle(&mut candidates, None, Some((tail, origin)), &mut reply)
        else {
            return reply;
        };
        // The tail's piece comes after every candidate's.
        let ran = self.run_new(&built, tail.text, origin, candidates.len());
        let ok = !ran.rejected;
        reply.absorb(ran);
        if ok {
            let text = format!("{}{}{}", tail.prefix, tail.text, tail.suffix);
            self.history.push(Entry {
                text,
                origin: origin.clone(),
                kind: Kind::Binding,
                names: Vec::new(),
                reads: reads.clone(),
                broken: false,
            });
        }
        reply
    }

    /// Checks `candidates` (plus `tail`), setting aside entries other than
    /// the new one (`new`) whose errors a redefinition caused, until the
    /// rest checks. `None` (with the errors in `reply`) when the new item
    /// or the tail itself is wrong; the session is then unchanged.
    fn settle(
        &self,
        candidates: &mut [Entry],
        new: Option<usize>,
        tail: Option<(Tail, &Origin)>,
        reply: &mut Reply,
    ) -> Option<Built> {
        let tail_text = tail.map(|(t, _)| t);
        let was_broken: Vec<bool> = candidates.iter().map(|e| e.broken).collect();
        candidates.iter_mut().for_each(|e| e.broken = false);
        let mut set_aside: Vec<(usize, Vec<Diagnostic>)> = Vec::new();
        loop {
            let active: Vec<usize> = (0..candidates.len())
                .filter(|&i| !candidates[i].broken)
                .collect();
            let built = self.build(candidates, &active, tail_text);
            let (assembly, diags) = match built {
                Ok(b) => {
                    self.report_changes(candidates, &was_broken, &set_aside, new, reply);
                    return Some(b);
                }
                Err(e) => e,
            };
            let mut by_entry: Vec<(usize, Vec<Diagnostic>)> = Vec::new();
            let mut own = Vec::new();
            for d in diags {
                let located = assembly.locate(&d, |p| piece_len(candidates, tail_text, p));
                match located {
                    Some((p, moved)) if p < candidates.len() && Some(p) != new => {
                        match by_entry.iter_mut().find(|(i, _)| *i == p) {
                            Some((_, v)) => v.push(moved),
                            None => by_entry.push((p, vec![moved])),
                        }
                    }
                    Some((_, moved)) => own.push(moved),
                    None => own.push(d),
                }
            }
            if !own.is_empty() || by_entry.is_empty() {
                let own = if own.is_empty() {
                    by_entry.into_iter().flat_map(|(_, d)| d).collect()
                } else {
                    own
                };
                // Spans were moved into the new item's (or the tail's) own text.
                let shown = match (new, tail) {
                    (Some(i), _) => against(&candidates[i].text, &candidates[i].origin, own),
                    (None, Some((t, origin))) => against(t.text, origin, own),
                    (None, None) => against("", origin_of_nothing(), own),
                };
                reply.diagnostics.push(shown);
                reply.rejected = true;
                return None;
            }
            for (i, d) in by_entry {
                candidates[i].broken = true;
                set_aside.push((i, d));
            }
        }
    }

    /// Notes for entries set aside by this change and entries restored.
    fn report_changes(
        &self,
        candidates: &[Entry],
        was_broken: &[bool],
        set_aside: &[(usize, Vec<Diagnostic>)],
        new: Option<usize>,
        reply: &mut Reply,
    ) {
        let before = |i: usize| Some(i) != new && was_broken[i];
        let aside: Vec<&String> = set_aside
            .iter()
            .flat_map(|(i, _)| &candidates[*i].names)
            .collect();
        for (i, diags) in set_aside {
            let e = &candidates[*i];
            if before(*i) {
                continue;
            }
            // Failing only for want of another set-aside item says nothing new.
            let through: Vec<String> = e
                .reads
                .iter()
                .filter(|r| aside.contains(r) && !e.names.contains(r))
                .cloned()
                .collect();
            if !through.is_empty() {
                reply.note(format!(
                    "{} is set aside too: it reads {}",
                    quoted(&e.names),
                    quoted(&through)
                ));
                continue;
            }
            let mut diags = diags.clone();
            if let Some(first) = diags.first_mut() {
                first.notes.push(format!(
                    "note: {} no longer checks after this change: it is set aside (kept, unusable) until it checks again",
                    quoted(&e.names)
                ));
            }
            reply.diagnostics.push(against(&e.text, &e.origin, diags));
        }
        for (i, e) in candidates.iter().enumerate() {
            if before(i) && !e.broken {
                reply.note(format!("{} checks again", quoted(&e.names)));
            }
        }
    }

    /// Assembles the active entries (in dependency order) and `tail`, and
    /// runs the front end on it.
    fn build(
        &self,
        candidates: &[Entry],
        active: &[usize],
        tail: Option<Tail>,
    ) -> Result<Built, (Assembly, Vec<Diagnostic>)> {
        let refs: Vec<&Entry> = active.iter().map(|&i| &candidates[i]).collect();
        let mut assembly = Assembly::default();
        // Pieces are numbered by candidate, the tail after them all.
        for k in entries::dependency_order(&refs) {
            assembly.push(active[k], "", &refs[k].text, "");
        }
        if let Some(t) = tail {
            assembly.push(candidates.len(), t.prefix, t.text, t.suffix);
        }
        match self.analyze(&assembly.text) {
            Ok((module, actions)) => Ok(Built {
                module,
                actions,
                assembly,
            }),
            Err(d) => Err((assembly, d)),
        }
    }

    /// `ebm check` on the assembled text: parse, analyse, lower every
    /// definition, check every statement's arguments.
    fn analyze(&self, text: &str) -> Result<(Module, Vec<Action>), Vec<Diagnostic>> {
        let program = crate::syntax::parse(text)?;
        let module = crate::sema::analyze(&program, &self.base_dir, crate::lower::eval_const)?;
        for def in &module.defs {
            crate::lower::lower(&module, &def.name).map_err(|d| vec![d])?;
        }
        let actions = script::check(&module)?;
        Ok((module, actions))
    }

    /// Runs the statement of assembly piece `piece` (a binding or the tail).
    fn run_new(&mut self, built: &Built, text: &str, origin: &Origin, piece: usize) -> Reply {
        let mut reply = Reply::default();
        let Some(p) = built.assembly.pieces.iter().find(|p| p.index == piece) else {
            return reply;
        };
        let Some(k) = built
            .module
            .statements
            .iter()
            .position(|s| s.span.start >= p.start && s.span.start < p.end)
        else {
            return reply;
        };
        let stmt = &built.module.statements[k];
        let action = built.actions[k].clone();
        let fail = |d: Diagnostic| {
            let local = Diagnostic {
                span: Span::new(
                    d.span.start.saturating_sub(p.start + p.shift) as usize,
                    d.span.end.saturating_sub(p.start + p.shift) as usize,
                ),
                ..d
            };
            against(text, origin, vec![local])
        };
        if let Err(d) = script::check_outputs_of(&built.module, &built.actions, k) {
            reply.diagnostics.extend(d.into_iter().map(fail));
            reply.rejected = true;
            return reply;
        }
        let (result, out) = self.with_runner(built, origin, |r| script::execute(r, stmt, action));
        reply.out = out;
        if let Err(d) = result {
            reply.diagnostics.push(fail(d));
            reply.rejected = true;
        }
        reply
    }

    /// Runs `f` with the session's run-time state over `built`'s program
    /// (parameters carried over into its store); returns what it wrote.
    fn with_runner<T>(
        &mut self,
        built: &Built,
        origin: &Origin,
        f: impl FnOnce(&mut Runner) -> T,
    ) -> (T, String) {
        let params = self.params_for(built);
        let mut out = Vec::new();
        let mut runner = Runner {
            module: &built.module,
            params: params.clone(),
            samples: std::mem::take(&mut self.samples),
            data: std::mem::take(&mut self.data),
            scales: std::mem::take(&mut self.scales),
            source: (&origin.path, &built.assembly.text),
            out: &mut out,
        };
        let result = f(&mut runner);
        self.samples = std::mem::take(&mut runner.samples);
        self.data = std::mem::take(&mut runner.data);
        self.scales = std::mem::take(&mut runner.scales);
        drop(runner);
        self.params = params;
        (result, String::from_utf8_lossy(&out).into_owned())
    }

    /// The store for a new program: every parameter keeps its value when
    /// the item creating it is unchanged (and its shape agrees), else it
    /// starts from its initialiser.
    fn params_for(&mut self, built: &Built) -> Arc<ParamStore> {
        let origins: HashMap<String, String> = built
            .module
            .params
            .iter()
            .map(|p| (p.name.clone(), piece_text(&built.assembly, p.span.start)))
            .collect();
        // Nothing that creates a parameter changed (a statement, an unrelated
        // definition): the same store, as one script run keeps one store.
        let same_shapes = (built.module.params.iter())
            .all(|p| self.params.shape(&p.name).as_ref() == Some(&p.shape));
        if origins == self.param_origin && same_shapes && self.params.len() == origins.len() {
            return self.params.clone();
        }
        let store = Arc::new(ParamStore::new());
        for p in &built.module.params {
            let kept = self
                .params
                .get(&p.name)
                .filter(|v| v.len() == p.shape.iter().product::<usize>())
                .filter(|_| self.param_origin.get(&p.name) == origins.get(&p.name));
            let value = kept.unwrap_or_else(|| p.initial_value());
            // Shapes were checked by `sema`; a conflict cannot arise here.
            let _ = store.insert(&p.name, &p.shape, value);
        }
        self.param_origin = origins;
        store
    }

    /// Keeps the checked candidates as the session's program.
    fn commit(&mut self, candidates: Vec<Entry>, built: Built) {
        self.params = self.params_for(&built);
        self.entries = candidates;
        self.module = built.module;
        self.assembly = built.assembly;
    }

    /// A new binding of `names` makes earlier statements about them stale.
    fn forget_history_of(&mut self, names: &[String]) {
        self.history.retain(|h| {
            !h.names.iter().any(|n| names.contains(n)) && !h.reads.iter().any(|n| names.contains(n))
        });
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        *self = Session::new(&self.base_dir.clone());
    }

    /// The names the session defines (for completion), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .entries
            .iter()
            .flat_map(|e| e.names.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The text of the assembly piece holding byte `at` (empty when none does).
fn piece_text(assembly: &Assembly, at: u32) -> String {
    assembly
        .pieces
        .iter()
        .find(|q| at >= q.start && at < q.end)
        .map(|q| assembly.text[q.start as usize..q.end as usize].to_string())
        .unwrap_or_default()
}

/// Diagnostics whose spans point into `text`, placed at the line it was typed on.
fn against(text: &str, origin: &Origin, diags: Vec<Diagnostic>) -> Diagnostics {
    let (placed, pad) = origin.placed(text);
    let diags = diags
        .into_iter()
        .map(|d| Diagnostic {
            span: Span::new((d.span.start + pad) as usize, (d.span.end + pad) as usize),
            ..d
        })
        .collect();
    Diagnostics {
        diags,
        path: origin.path.clone(),
        text: placed,
    }
}

fn piece_len(candidates: &[Entry], tail: Option<Tail>, piece: usize) -> usize {
    match candidates.get(piece) {
        Some(e) => e.text.len(),
        None => tail.map(|t| t.text.len()).unwrap_or(0),
    }
}

fn origin_of_nothing() -> &'static Origin {
    static NOWHERE: std::sync::OnceLock<Origin> = std::sync::OnceLock::new();
    NOWHERE.get_or_init(|| Origin {
        path: "<input>".into(),
        line: 1,
    })
}

/// Whether a bare expression is a statement call (`print(..)`, `plot(..)`).
fn is_statement(e: &ast::Expr) -> bool {
    matches!(&e.kind, ExprKind::Call { callee, .. }
        if crate::sema::builtins::STATEMENTS.contains(&callee.name.as_str()))
}

/// The entries that read any of `names`, directly or through others.
fn dependants(entries: &[Entry], names: &[String]) -> Vec<String> {
    let mut reached: Vec<String> = names.to_vec();
    let mut out = Vec::new();
    loop {
        let next: Vec<&Entry> = entries
            .iter()
            .filter(|e| !e.names.iter().any(|n| reached.contains(n)))
            .filter(|e| e.reads.iter().any(|r| reached.contains(r)))
            .collect();
        if next.is_empty() {
            return out;
        }
        for e in next {
            out.extend(e.names.iter().cloned());
            reached.extend(e.names.iter().cloned());
        }
    }
}

/// `a, b, c` — or the first eight and how many more.
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 8;
    match names.len() {
        n if n <= SHOWN => names.join(", "),
        n => format!("{} and {} more", names[..SHOWN].join(", "), n - SHOWN),
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
