//! The checker: walks items in source order, resolving names against what is
//! defined above, computing static shapes, folding constants and expanding
//! neural primitives. Errors are pushed to `diags` and the offending
//! sub-expression becomes `None`, so checking continues and later, unrelated
//! errors are reported too (without cascades).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::data::{self, Array};
use crate::diag::{Diagnostic, Span, suggest};
use crate::ir::{Axes, BinaryOp, MAX_RANK, op::broadcast_shapes, op::matmul_shape};
use crate::syntax::ast::{self, CallArg, Expr, ExprKind, IndexItem, ItemKind};

use super::builtins::{self, Class, STATEMENTS, Sig};
use super::errors as err;
use super::{
    ArgInfo, ConstDef, ConstEval, DefInfo, DefKind, Elem, ImportedGraph, Init, MAX_CONST_ELEMS,
    MAX_ELEMS, Module, Param, Reduce, ScanExpr, Shape, Statement, Symbol, TExpr, TKind, Tensor,
};

mod image;

/// Deeper expressions are rejected rather than risking the stack (the
/// parser's bound, plus room for what desugaring adds).
const MAX_DEPTH: usize = crate::syntax::errors::MAX_EXPR_DEPTH as usize + 100;

/// The most work (≈ element operations) one constant fold may cost.
const MAX_FOLD_COST: usize = 1 << 26;

/// Definitions may inline each other at most this deep.
const MAX_CALL_DEPTH: usize = 1024;

/// How deep a body may be with every call inlined: lowering recurses once
/// per level (`tests/deep.rs` lowers one at this limit).
const MAX_INLINED_DEPTH: usize = 20_000;

/// The most operations a definition may expand to once its calls are
/// inlined (a body is lowered into one graph per definition, and compile
/// time grows with it: 2^17 operations compile in about half a minute).
const MAX_INLINED_SIZE: usize = 1 << 17;

/// The most values a scan may store per sample: T × (carry + element +
/// captured values), what its gradient keeps (each step's carry and its
/// adjoints); it bounds a compiled kernel's scratch memory.
const MAX_SCAN_VALUES: usize = 1 << 20;

/// The most nodes a `let` value may hold once earlier `let`s are inlined.
const MAX_LET_NODES: usize = 10_000;

/// Rough cost of evaluating one node at compile time (a scan: its
/// step's whole tree, once per element).
fn fold_cost(e: &TExpr) -> usize {
    if let TKind::Scan(s) = &e.kind {
        return s.seq.shape[0].saturating_mul(tree_cost(&s.body));
    }
    let out = numel(&e.shape).max(1);
    let ins: usize = e.children().iter().map(|c| numel(&c.shape)).sum();
    let base = out.saturating_add(ins);
    match &e.kind {
        TKind::MatMul(a, _) => {
            let k = a.shape.last().copied().unwrap_or(1);
            base.saturating_add(out.saturating_mul(k))
        }
        _ => base,
    }
}

/// `fold_cost` summed over a tree.
fn tree_cost(e: &TExpr) -> usize {
    e.children()
        .iter()
        .fold(fold_cost(e), |acc, c| acc.saturating_add(tree_cost(c)))
}

fn tree_size(e: &TExpr, limit: usize) -> usize {
    let mut n = 1;
    for c in e.children() {
        if n > limit {
            break;
        }
        n += tree_size(c, limit);
    }
    n
}

/// What names and builtins an expression may use.
#[derive(Clone, Debug)]
enum Ctx {
    /// `const` values, shape dimensions, init arguments: compile-time only.
    Const,
    /// An `energy`/`model` body.
    Def {
        name: String,
        input: ArgInfo,
        cond: Option<ArgInfo>,
    },
    /// Script statements (`print`, `let`): constants, parameters (at their
    /// initial values) and calls of definitions on constant arguments.
    Script,
}

#[derive(Clone, Debug)]
enum Sym {
    Known(Symbol),
    /// Defined, but its definition had errors: uses stay silent.
    Poison,
}

struct Analyzer<'a> {
    module: Module,
    symbols: HashMap<String, Sym>,
    /// Every top-level name and where it is (first) defined.
    all_names: HashMap<String, Span>,
    /// The item being checked.
    current: Option<String>,
    ctx: Ctx,
    /// Neural-primitive call-site counters of the current definition.
    counters: HashMap<&'static str, usize>,
    diags: Vec<Diagnostic>,
    /// (item, name) pairs already reported as used before their definition.
    reported_early: std::collections::HashSet<(Option<String>, String)>,
    depth: usize,
    base_dir: &'a Path,
    /// Folds a closed constant expression (`lower::eval_const` in practice).
    eval_const: ConstEval,
    /// Local names in scope, innermost last (`let` bindings, step
    /// function parameters).
    locals: Vec<Local>,
    /// Every local name the current item binds anywhere, with what binds
    /// it: a use outside its scope is E0221, not "unknown name".
    binders: Vec<(String, Binder)>,
    /// The next free slot for a `let` value or a step parameter.
    next_slot: usize,
    /// Bytes of every parameter declared and every constant built so far
    /// (constructors and `load`), against `budget::max_memory` (E0328,
    /// reported once).
    memory: u64,
    memory_reported: bool,
}

/// A local name in scope: what a use of it becomes (a folded constant is
/// substituted; anything else reads its slot).
#[derive(Clone, Debug)]
struct Local {
    name: String,
    /// `None` when the bound value had errors: uses stay silent.
    value: Option<TExpr>,
}

/// What binds a local name (for the out-of-scope diagnostic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binder {
    Let,
    Step,
}

pub(super) fn analyze(
    program: &ast::Program,
    base_dir: &Path,
    eval_const: ConstEval,
) -> Result<Module, Vec<Diagnostic>> {
    let mut a = Analyzer {
        module: Module {
            base_dir: base_dir.to_path_buf(),
            ..Module::default()
        },
        symbols: HashMap::new(),
        all_names: HashMap::new(),
        current: None,
        ctx: Ctx::Const,
        counters: HashMap::new(),
        diags: Vec::new(),
        reported_early: Default::default(),
        depth: 0,
        base_dir,
        eval_const,
        locals: Vec::new(),
        binders: Vec::new(),
        next_slot: 0,
        memory: 0,
        memory_reported: false,
    };
    let mut duplicate = vec![false; program.items.len()];
    for (i, item) in program.items.iter().enumerate() {
        for name in item_names(item) {
            if let Some(first) = a.all_names.get(&name.name) {
                a.diags.push(err::duplicate_definition(name, *first));
                duplicate[i] = true;
            } else if STATEMENTS.contains(&&*name.name) {
                // Builtin functions may be shadowed (`energy ring(..)`); statement
                // names may not, or `print(..)` would be ambiguous.
                a.diags.push(err::shadows_builtin(name));
                duplicate[i] = true;
            } else {
                a.all_names.insert(name.name.clone(), name.span);
            }
        }
    }
    for (i, item) in program.items.iter().enumerate() {
        if !duplicate[i] {
            a.item(item);
        }
    }
    if a.diags.is_empty() {
        Ok(a.module)
    } else {
        a.diags.sort_by_key(|d| d.span.start);
        Err(a.diags)
    }
}

fn item_name(item: &ast::Item) -> Option<&ast::Ident> {
    match &item.kind {
        ItemKind::Use { .. } => None,
        ItemKind::Const { name, .. }
        | ItemKind::Param { name, .. }
        | ItemKind::Data { name, .. }
        | ItemKind::Let { name, .. } => Some(name),
        ItemKind::Energy(def) | ItemKind::Model { def, .. } => Some(&def.name),
        ItemKind::Expr(_) => None,
    }
}

/// Every name an item defines (`use` may define several).
fn item_names(item: &ast::Item) -> Vec<&ast::Ident> {
    match &item.kind {
        ItemKind::Use { names, .. } => names.iter().map(|n| n.local()).collect(),
        _ => item_name(item).into_iter().collect(),
    }
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Analyzer<'_> {
    fn define(&mut self, name: &ast::Ident, sym: Option<Symbol>) {
        let s = match sym {
            Some(s) => Sym::Known(s),
            None => Sym::Poison,
        };
        self.symbols.insert(name.name.clone(), s);
    }

    fn item(&mut self, item: &ast::Item) {
        self.current = item_name(item).map(|n| n.name.clone());
        self.ctx = Ctx::Const;
        self.locals.clear();
        self.binders.clear();
        item_binders(item, &mut self.binders);
        match &item.kind {
            ItemKind::Use {
                names,
                path,
                path_span,
            } => self.use_item(names, path, *path_span),
            ItemKind::Const { name, value } if self.string_value(value).is_some() => {
                let text = self.string_value(value).unwrap_or_default();
                self.module.strings.push(super::StrConst {
                    name: name.name.clone(),
                    value: text,
                    span: item.span,
                });
                let sym = Symbol::Str(self.module.strings.len() - 1);
                self.define(name, Some(sym));
            }
            ItemKind::Const { name, value } => {
                let v = self.expr(value).and_then(|e| self.need_const(&e));
                let sym = v.map(|value| {
                    self.module.consts.push(ConstDef {
                        name: name.name.clone(),
                        value,
                        span: item.span,
                    });
                    Symbol::Const(self.module.consts.len() - 1)
                });
                self.define(name, sym);
            }
            ItemKind::Param { name, shape, init } => {
                if matches!(name.name.as_str(), "x" | "c") {
                    // Compiled kernels bind the sample inputs by these names.
                    self.diags.push(err::reserved_param_name(name));
                }
                if self.module.param(&name.name).is_some() {
                    self.diags.push(err::param_already_imported(name));
                }
                let shape = self.shape_ann(shape);
                let init = self.init(init);
                let sym = match (shape, init) {
                    (Some(shape), Some(init))
                        if self.spend(&shape, "the parameter", &name.name, item.span) =>
                    {
                        self.module.params.push(Param {
                            name: name.name.clone(),
                            shape,
                            init,
                            span: item.span,
                        });
                        Some(Symbol::Param(self.module.params.len() - 1))
                    }
                    _ => None,
                };
                self.define(name, sym);
            }
            ItemKind::Energy(def) => {
                let sym = self.def(def, None, item.span);
                self.define(&def.name, sym);
            }
            ItemKind::Model { def, output } => {
                let sym = self.def(def, Some(output), item.span);
                self.define(&def.name, sym);
            }
            ItemKind::Data { name, value } => {
                self.module.statements.push(Statement {
                    name: callee_name(value).unwrap_or("data").to_string(),
                    binding: Some(name.name.clone()),
                    args: None,
                    call: value.clone(),
                    span: item.span,
                });
                self.define(name, Some(Symbol::RunValue(None)));
            }
            ItemKind::Let { name, value } => {
                let runner = callee_name(value).filter(|n| STATEMENTS.contains(n));
                let sym = match runner {
                    Some(stmt) => {
                        self.module.statements.push(Statement {
                            name: stmt.to_string(),
                            binding: Some(name.name.clone()),
                            args: None,
                            call: value.clone(),
                            span: item.span,
                        });
                        Some(Symbol::RunValue(None))
                    }
                    None => {
                        self.ctx = Ctx::Script;
                        let checked = self.expr(value);
                        let checked = match checked {
                            Some(e) if tree_size(&e, MAX_LET_NODES) > MAX_LET_NODES => {
                                self.diags.push(err::too_costly(value.span));
                                None
                            }
                            other => other,
                        };
                        checked.map(|e| {
                            self.module.statements.push(Statement {
                                name: "let".into(),
                                binding: Some(name.name.clone()),
                                args: Some(vec![e]),
                                call: value.clone(),
                                span: item.span,
                            });
                            Symbol::RunValue(Some(self.module.statements.len() - 1))
                        })
                    }
                };
                self.define(name, sym);
            }
            ItemKind::Expr(e) => self.statement(e, item.span),
        }
    }

    fn statement(&mut self, e: &Expr, span: Span) {
        let ExprKind::Call { callee, args, cond } = &e.kind else {
            self.diags.push(err::not_a_statement(e.span));
            return;
        };
        if !STATEMENTS.contains(&&*callee.name) {
            let known = self.lookup_kind(&callee.name);
            self.diags
                .push(err::unknown_statement(callee, known.as_deref()));
            return;
        }
        if let Some(c) = cond {
            self.diags.push(err::unexpected_cond(&callee.name, c.span));
            return;
        }
        let mut checked = None;
        if callee.name == "print" {
            self.ctx = Ctx::Script;
            let mut out = Vec::new();
            let mut ok = true;
            for a in args {
                match a {
                    // Strings print as text; `script` reads them from the call.
                    CallArg::Positional(Expr {
                        kind: ExprKind::Str(_),
                        ..
                    }) => {}
                    // A string constant prints as its text, like a literal.
                    CallArg::Positional(x) if self.string_value(x).is_some() => {}
                    // `print(summary(s))`: the script checks and prints it.
                    CallArg::Positional(Expr {
                        kind: ExprKind::Call { callee, .. },
                        ..
                    }) if callee.name == "summary" => {}
                    CallArg::Positional(x) => match self.expr(x) {
                        Some(t) => out.push(t),
                        None => ok = false,
                    },
                    CallArg::Keyword { name, .. } => {
                        self.diags.push(err::print_keyword(name));
                        ok = false;
                    }
                }
            }
            if !ok {
                return;
            }
            checked = Some(out);
        }
        self.module.statements.push(Statement {
            name: callee.name.clone(),
            binding: None,
            args: checked,
            call: e.clone(),
            span,
        });
    }

    fn lookup_kind(&self, name: &str) -> Option<String> {
        match self.symbols.get(name) {
            Some(Sym::Known(Symbol::Def(i))) => Some(match self.module.defs[*i].kind {
                DefKind::Energy => "an energy".into(),
                DefKind::Model => "a model".into(),
            }),
            Some(Sym::Known(Symbol::Const(_))) => Some("a constant".into()),
            Some(Sym::Known(Symbol::Str(_))) => Some("a string constant".into()),
            Some(Sym::Known(Symbol::Param(_))) => Some("a parameter".into()),
            _ => builtins::lookup(name).map(|_| "a builtin function".into()),
        }
    }

    // ----- definitions -----

    fn def(&mut self, d: &ast::Def, output: Option<&ast::ShapeAnn>, span: Span) -> Option<Symbol> {
        let input = self.shape_ann(&d.input.shape);
        let cond = d.cond.as_ref().map(|c| self.shape_ann(&c.shape));
        let out = output.map(|o| self.shape_ann(o));
        if let Some(c) = &d.cond
            && c.name.name == d.input.name.name
        {
            self.diags.push(err::duplicate_argument(&c.name));
            return None;
        }
        let input = input?;
        let cond = match cond {
            Some(None) => return None,
            Some(Some(s)) => Some(s),
            None => None,
        };
        let out = match out {
            Some(None) => return None,
            Some(Some(s)) => Some(s),
            None => None,
        };
        let input = ArgInfo {
            name: d.input.name.name.clone(),
            shape: input,
        };
        let cond = d.cond.as_ref().zip(cond).map(|(a, s)| ArgInfo {
            name: a.name.name.clone(),
            shape: s,
        });
        self.ctx = Ctx::Def {
            name: d.name.name.clone(),
            input: input.clone(),
            cond: cond.clone(),
        };
        self.counters.clear();
        let body = self.expr(&d.body)?;
        let (kind, output, body) = match out {
            None => {
                if body.shape.is_empty() {
                    (DefKind::Energy, vec![], body)
                } else if numel(&body.shape) == 1 {
                    let span = body.span;
                    let b = self.mk(TKind::Reshape(Box::new(body)), vec![], span)?;
                    (DefKind::Energy, vec![], b)
                } else {
                    self.diags
                        .push(err::non_scalar_energy(&d.name.name, &body.shape, body.span));
                    return None;
                }
            }
            Some(out) => {
                if body.shape != out {
                    self.diags.push(err::model_output_mismatch(
                        &d.name.name,
                        &out,
                        &body.shape,
                        body.span,
                    ));
                    return None;
                }
                (DefKind::Model, out, body)
            }
        };
        let call_depth = 1 + self.max_call_depth(&body);
        if call_depth > MAX_CALL_DEPTH {
            self.diags.push(err::calls_too_deep(
                &d.name.name,
                MAX_CALL_DEPTH,
                d.name.span,
            ));
            return None;
        }
        let inlined_depth = self.inlined_depth(&body);
        if inlined_depth > MAX_INLINED_DEPTH {
            self.diags.push(err::inlined_too_deep(
                &d.name.name,
                inlined_depth,
                MAX_INLINED_DEPTH,
                d.name.span,
            ));
            return None;
        }
        let inlined_size = self.inlined_size(&body);
        if inlined_size > MAX_INLINED_SIZE {
            self.diags.push(err::inlines_too_much(
                &d.name.name,
                inlined_size,
                MAX_INLINED_SIZE,
                d.name.span,
            ));
            return None;
        }
        let mut params = Vec::new();
        self.collect_params(&body, &mut params);
        self.module.defs.push(DefInfo {
            name: d.name.name.clone(),
            kind,
            input,
            cond,
            output,
            body,
            params,
            call_depth,
            inlined_depth,
            inlined_size,
            span,
        });
        Some(Symbol::Def(self.module.defs.len() - 1))
    }

    /// The body's depth with every call expanded (a call is as deep as its
    /// callee's body, plus its arguments'); saturating.
    fn inlined_depth(&self, e: &TExpr) -> usize {
        let own = match &e.kind {
            TKind::Call { def, .. } => self.module.defs[*def].inlined_depth,
            _ => 0,
        };
        let below = e
            .children()
            .iter()
            .map(|c| self.inlined_depth(c))
            .fold(own, usize::max);
        below.saturating_add(1)
    }

    /// `use a, b as c from "file"`: each named definition of the model file
    /// becomes a definition of this module whose body is its graph, and
    /// each parameter it reads a parameter holding the file's values
    /// (under `c.` + its name after `as c`, so two copies can coexist).
    fn use_item(&mut self, names: &[ast::UseName], path: &str, path_span: Span) {
        let full = self.base_dir.join(path);
        self.module.inputs.push(full.clone());
        let file = match crate::artifact::Artifact::read(&full) {
            Ok(f) => f,
            Err(e) => {
                self.diags
                    .push(err::bad_model_file(path, &e.to_string(), path_span));
                for n in names {
                    self.define(n.local(), None);
                }
                return;
            }
        };
        for n in names {
            let sym = self.import(&file, n);
            self.define(n.local(), sym);
        }
    }

    fn import(&mut self, file: &crate::artifact::Artifact, n: &ast::UseName) -> Option<Symbol> {
        let (sig, graph) = match file.def(&n.name.name) {
            Ok(found) => found,
            Err(e) => {
                self.diags
                    .push(err::not_in_model_file(&e.to_string(), n.name.span));
                return None;
            }
        };
        if graph.len() > MAX_INLINED_SIZE {
            self.diags.push(err::inlines_too_much(
                &n.name.name,
                graph.len(),
                MAX_INLINED_SIZE,
                n.name.span,
            ));
            return None;
        }
        let local = n.local();
        let mut renamed = Vec::with_capacity(sig.params.len());
        for p in &sig.params {
            let name = match &n.alias {
                Some(a) => format!("{}.{p}", a.name),
                None => p.clone(),
            };
            if self.module.param(&name).is_some() {
                self.diags
                    .push(err::imported_param_clash(&name, local, n.name.span));
                return None;
            }
            renamed.push((p.clone(), name));
        }
        for (from, to) in &renamed {
            let value = file.params().iter().find(|v| &v.name == from)?;
            if !self.spend(&value.shape, "the parameter", to, n.name.span) {
                return None;
            }
            self.module.params.push(Param {
                name: to.clone(),
                shape: value.shape.clone(),
                init: Init::Loaded(value.data.clone().into()),
                span: n.name.span,
            });
        }
        let kind = match sig.kind {
            crate::artifact::Kind::Energy => DefKind::Energy,
            crate::artifact::Kind::Model => DefKind::Model,
        };
        let arg = |name: &str, shape: &[usize]| ArgInfo {
            name: name.to_string(),
            shape: shape.to_vec(),
        };
        let body = TExpr {
            kind: TKind::Imported(Arc::new(ImportedGraph {
                graph: graph.clone(),
                params: renamed.clone(),
            })),
            shape: sig.output.clone(),
            span: n.name.span,
        };
        self.module.defs.push(DefInfo {
            name: local.name.clone(),
            kind,
            input: arg("x", &sig.x),
            cond: sig.c.as_deref().map(|c| arg("c", c)),
            output: sig.output.clone(),
            body,
            params: renamed.into_iter().map(|(_, to)| to).collect(),
            call_depth: 1,
            inlined_depth: 1,
            inlined_size: graph.len(),
            span: local.span,
        });
        Some(Symbol::Def(self.module.defs.len() - 1))
    }

    /// The body's node count with each call counted at its callee's
    /// expanded size (saturating).
    fn inlined_size(&self, e: &TExpr) -> usize {
        let own = match &e.kind {
            TKind::Call { def, .. } => self.module.defs[*def].inlined_size,
            _ => 1,
        };
        e.children()
            .iter()
            .fold(own, |acc, c| acc.saturating_add(self.inlined_size(c)))
    }

    fn max_call_depth(&self, e: &TExpr) -> usize {
        let own = match &e.kind {
            TKind::Call { def, .. } => self.module.defs[*def].call_depth,
            _ => 0,
        };
        e.children()
            .iter()
            .map(|c| self.max_call_depth(c))
            .fold(own, usize::max)
    }

    fn collect_params(&self, e: &TExpr, out: &mut Vec<String>) {
        match &e.kind {
            TKind::Param(n) if !out.contains(n) => out.push(n.clone()),
            TKind::Call { def, .. } => {
                for n in &self.module.defs[*def].params {
                    if !out.contains(n) {
                        out.push(n.clone());
                    }
                }
            }
            _ => {}
        }
        for c in e.children() {
            self.collect_params(c, out);
        }
    }

    // ----- shapes and static values -----

    /// A shape annotation: every dimension a positive integer constant.
    fn shape_ann(&mut self, s: &ast::ShapeAnn) -> Option<Shape> {
        let saved = std::mem::replace(&mut self.ctx, Ctx::Const);
        let mut dims = Vec::new();
        let mut ok = true;
        for d in &s.dims {
            match self.static_num(d, "a dimension") {
                Some(v) if v >= 1.0 && v.fract() == 0.0 && v <= MAX_ELEMS as f64 => {
                    dims.push(v as usize)
                }
                Some(v) => {
                    self.diags.push(err::bad_dimension(v, d.span));
                    ok = false;
                }
                None => ok = false,
            }
        }
        self.ctx = saved;
        if !ok {
            return None;
        }
        self.check_size(&dims, s.span)?;
        Some(dims)
    }

    fn check_size(&mut self, shape: &[usize], span: Span) -> Option<()> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= MAX_ELEMS);
        if shape.len() > MAX_RANK || n.is_none() {
            self.diags.push(err::too_large(shape, span));
            return None;
        }
        Some(())
    }

    fn need_const(&mut self, e: &TExpr) -> Option<Arc<Tensor>> {
        match &e.kind {
            TKind::Const(t) => Some(t.clone()),
            _ if fold_cost(e) > MAX_FOLD_COST => {
                self.diags.push(err::too_costly(e.span));
                None
            }
            _ => {
                self.diags.push(err::not_constant("a constant", e.span));
                None
            }
        }
    }

    /// A compile-time number (a scalar or one-element constant).
    fn static_num(&mut self, e: &Expr, what: &str) -> Option<f64> {
        let t = self.expr(e)?;
        match t.as_const() {
            Some(c) if c.data.len() == 1 => Some(c.data[0]),
            Some(c) => {
                self.diags
                    .push(err::expected_number(what, &c.shape, e.span));
                None
            }
            None => {
                self.diags.push(err::not_constant(what, e.span));
                None
            }
        }
    }

    fn static_int(&mut self, e: &Expr, what: &str) -> Option<i64> {
        let v = self.static_num(e, what)?;
        if v.fract() != 0.0 || v.abs() > 1e15 {
            self.diags.push(err::expected_integer(what, v, e.span));
            return None;
        }
        Some(v as i64)
    }

    fn static_positive(&mut self, e: &Expr, what: &str) -> Option<usize> {
        let v = self.static_int(e, what)?;
        if v < 1 || v as usize > MAX_ELEMS {
            self.diags.push(err::expected_positive(what, v, e.span));
            return None;
        }
        Some(v as usize)
    }

    /// A list of integers: `[2, 3]`, a constant vector, or one integer.
    fn static_ints(&mut self, e: &Expr, what: &str) -> Option<Vec<i64>> {
        if matches!(&e.kind, ExprKind::Tensor(items) if items.is_empty()) {
            return Some(Vec::new()); // `[]`: the scalar shape
        }
        let t = self.expr(e)?;
        let Some(c) = t.as_const() else {
            self.diags.push(err::not_constant(what, e.span));
            return None;
        };
        if c.shape.len() > 1 {
            self.diags
                .push(err::expected_int_list(what, &c.shape, e.span));
            return None;
        }
        let mut out = Vec::new();
        for &v in &c.data {
            if v.fract() != 0.0 || v.abs() > 1e15 {
                self.diags.push(err::expected_integer(what, v, e.span));
                return None;
            }
            out.push(v as i64);
        }
        Some(out)
    }

    fn static_shape(&mut self, e: &Expr, what: &str) -> Option<Shape> {
        let ints = self.static_ints(e, what)?;
        let mut shape = Vec::new();
        for v in ints {
            if v < 1 || v as usize > MAX_ELEMS {
                self.diags.push(err::bad_dimension(v as f64, e.span));
                return None;
            }
            shape.push(v as usize);
        }
        self.check_size(&shape, e.span)?;
        Some(shape)
    }

    fn static_str(&mut self, e: &Expr, what: &str) -> Option<String> {
        let s = self.string_value(e);
        match &e.kind {
            // A misspelt string constant: "unknown name", with did-you-mean.
            ExprKind::Name(n) if s.is_none() && !self.symbols.contains_key(n) => {
                self.unresolved(n, e.span, false)
            }
            _ if s.is_none() => self.diags.push(err::expected_string(what, e.span)),
            _ => {}
        }
        s
    }

    /// The text of a string literal, or of a string constant's name (one a
    /// local binding does not hide); `None` for anything else.
    fn string_value(&self, e: &Expr) -> Option<String> {
        match &e.kind {
            ExprKind::Str(s) => Some(s.clone()),
            ExprKind::Name(n) if !self.locals.iter().any(|l| l.name == *n) => {
                match self.symbols.get(n) {
                    Some(Sym::Known(Symbol::Str(i))) => Some(self.module.strings[*i].value.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Normalises a possibly negative axis.
    fn axis(&mut self, e: &Expr, rank: usize) -> Option<usize> {
        let a = self.static_int(e, "`axis`")?;
        let r = rank as i64;
        if a < -r || a >= r {
            self.diags.push(err::axis_out_of_range(a, rank, e.span));
            return None;
        }
        Some(if a < 0 { (a + r) as usize } else { a as usize })
    }

    // ----- building typed nodes (with constant folding) -----

    fn mk(&mut self, kind: TKind, shape: Shape, span: Span) -> Option<TExpr> {
        self.check_size(&shape, span)?;
        let e = TExpr { kind, shape, span };
        let foldable = match &e.kind {
            TKind::Const(_)
            | TKind::Input
            | TKind::Cond
            | TKind::Param(_)
            | TKind::Call { .. }
            | TKind::Local(_)
            | TKind::Let(..) => false,
            // A step reads its own slots; it folds when it reads nothing else.
            TKind::Scan(s) => {
                s.init.as_const().is_some()
                    && s.seq.as_const().is_some()
                    && closed(&s.body, &[s.carry, s.elem])
            }
            _ => e.children().iter().all(|c| c.as_const().is_some()),
        };
        if foldable && fold_cost(&e) <= MAX_FOLD_COST {
            let t = (self.eval_const)(&e);
            return Some(TExpr {
                kind: TKind::Const(Arc::new(t)),
                shape: e.shape,
                span,
            });
        }
        Some(e)
    }

    fn constant(&mut self, t: Tensor, span: Span) -> Option<TExpr> {
        let shape = t.shape.clone();
        self.check_size(&shape, span)?;
        Some(TExpr {
            kind: TKind::Const(Arc::new(t)),
            shape,
            span,
        })
    }

    fn unary(&mut self, op: Elem, a: TExpr, span: Span) -> Option<TExpr> {
        let shape = a.shape.clone();
        self.mk(TKind::Unary(op, Box::new(a)), shape, span)
    }

    fn bcast(&mut self, op: BinaryOp, sym: &str, a: TExpr, b: TExpr, span: Span) -> Option<TExpr> {
        match broadcast_shapes(&a.shape, &b.shape) {
            Some(shape) => self.mk(TKind::Binary(op, Box::new(a), Box::new(b)), shape, span),
            None => {
                self.diags
                    .push(err::broadcast_mismatch(sym, &a.shape, &b.shape, span));
                None
            }
        }
    }

    fn reduce(&mut self, op: Reduce, a: TExpr, axes: Axes, span: Span) -> Option<TExpr> {
        if axes.is_empty() {
            return Some(a);
        }
        let shape = crate::ir::kept_dims(&a.shape, axes);
        self.mk(TKind::Reduce(op, Box::new(a), axes), shape, span)
    }

    fn reshape(&mut self, a: TExpr, shape: Shape, span: Span) -> Option<TExpr> {
        if a.shape == shape {
            return Some(a);
        }
        self.mk(TKind::Reshape(Box::new(a)), shape, span)
    }

    // ----- expressions -----

    fn expr(&mut self, e: &Expr) -> Option<TExpr> {
        self.expr_in(e, false)
    }

    fn expr_in(&mut self, e: &Expr, allow_compare: bool) -> Option<TExpr> {
        if self.depth >= MAX_DEPTH {
            self.diags.push(err::too_deep(e.span));
            return None;
        }
        self.depth += 1;
        let r = self.expr_inner(e, allow_compare);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, e: &Expr, allow_compare: bool) -> Option<TExpr> {
        let span = e.span;
        match &e.kind {
            ExprKind::Number(v) => self.constant(Array::new(vec![], vec![*v]), span),
            ExprKind::Str(_) => {
                self.diags.push(err::string_not_tensor(span));
                None
            }
            ExprKind::Name(n) => self.name(n, span),
            ExprKind::Tensor(items) => self.tensor_literal(items, span),
            ExprKind::Unary { op, operand } => {
                let a = self.expr(operand)?;
                if *op == ast::UnaryOp::Not && !a.shape.is_empty() {
                    self.diags
                        .push(err::compose_non_scalar("not", "", &a.shape, a.span));
                    return None;
                }
                self.unary(Elem::Neg, a, span)
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, span, allow_compare),
            ExprKind::Call { callee, args, cond } => self.call(callee, args, cond.as_deref(), span),
            ExprKind::Index { base, indices } => self.index(base, indices, span),
            ExprKind::Let { name, value, body } => self.let_in(name, value, body, span),
            ExprKind::Lambda { .. } => {
                self.diags.push(err::step_outside_scan(span));
                None
            }
        }
    }

    /// `let name = value in body`: `value` is checked where the `let`
    /// stands (so `let r = r + 1 in ..` reads an outer `r`), `body` with
    /// `name` bound. A constant value is substituted (so folding goes on);
    /// any other is computed once, read through a slot.
    fn let_in(
        &mut self,
        name: &ast::Ident,
        value: &Expr,
        body: &Expr,
        span: Span,
    ) -> Option<TExpr> {
        let v = self.expr(value);
        let slot = self.next_slot;
        self.next_slot += 1;
        let template = v.as_ref().map(|v| match v.as_const() {
            Some(_) => v.clone(),
            None => TExpr {
                kind: TKind::Local(slot),
                shape: v.shape.clone(),
                span: name.span,
            },
        });
        self.locals.push(Local {
            name: name.name.clone(),
            value: template,
        });
        let b = self.expr(body);
        self.locals.pop();
        let (v, b) = (v?, b?);
        if v.as_const().is_some() || b.as_const().is_some() || !reads_slot(&b, slot) {
            return Some(b);
        }
        let shape = b.shape.clone();
        self.mk(TKind::Let(slot, Box::new(v), Box::new(b)), shape, span)
    }

    /// Elements of the values a step body reads from outside itself (each
    /// distinct one once): `x`, `c`, parameters (those of called
    /// definitions too) and outer locals.
    fn captured(&self, body: &TExpr, params: [usize; 2]) -> usize {
        let mut seen: Vec<String> = Vec::new();
        let mut bound: Vec<usize> = params.to_vec();
        self.captured_in(body, &mut bound, &mut seen)
    }

    fn captured_in(&self, e: &TExpr, bound: &mut Vec<usize>, seen: &mut Vec<String>) -> usize {
        let mut fresh = |key: String, n: usize| {
            if seen.contains(&key) {
                0
            } else {
                seen.push(key);
                n
            }
        };
        let own = match &e.kind {
            TKind::Input => fresh("x".into(), numel(&e.shape)),
            TKind::Cond => fresh("c".into(), numel(&e.shape)),
            TKind::Param(p) => fresh(format!("p {p}"), numel(&e.shape)),
            TKind::Local(s) if !bound.contains(s) => fresh(format!("l {s}"), numel(&e.shape)),
            TKind::Call { def, .. } => self.module.defs[*def]
                .params
                .iter()
                .filter_map(|p| self.module.param(p))
                .map(|p| fresh(format!("p {}", p.name), numel(&p.shape)))
                .sum(),
            _ => 0,
        };
        let marks = bound.len();
        match &e.kind {
            TKind::Let(s, ..) => bound.push(*s),
            TKind::Scan(sc) => bound.extend([sc.carry, sc.elem]),
            _ => {}
        }
        let inner: usize = e
            .children()
            .iter()
            .map(|c| self.captured_in(c, bound, seen))
            .sum();
        bound.truncate(marks);
        own + inner
    }

    /// `scan(init, xs, (s, xt) => body)` / `fold(..)`: the step is checked
    /// with `s` bound to the carry's shape and `xt` to one element of `xs`.
    fn scan(&mut self, sig: &Sig, b: &builtins::Bound, span: Span) -> Option<TExpr> {
        let init = self.expr(b.get(sig, "init")?);
        let seq_e = b.get(sig, "xs")?;
        let seq = self.expr(seq_e);
        let step = b.get(sig, "step")?;
        let ExprKind::Lambda { params, body } = &step.kind else {
            self.diags.push(err::expected_step(sig.name, step.span));
            return None;
        };
        let (init, seq) = (init?, seq?);
        if seq.shape.is_empty() {
            self.diags.push(err::scan_scalar(sig.name, seq_e.span));
            return None;
        }
        let [carry_name, elem_name] = &params[..] else {
            self.diags.push(err::step_arity(params.len(), step.span));
            return None;
        };
        if carry_name.name == elem_name.name {
            self.diags.push(err::duplicate_argument(elem_name));
            return None;
        }
        let mut carry_shape = vec![seq.shape[0]];
        carry_shape.extend(&init.shape);
        self.check_size(&carry_shape, span)?;
        let (carry, elem) = (self.next_slot, self.next_slot + 1);
        self.next_slot += 2;
        let local = |slot: usize, shape: &[usize], at: Span| TExpr {
            kind: TKind::Local(slot),
            shape: shape.to_vec(),
            span: at,
        };
        self.locals.push(Local {
            name: carry_name.name.clone(),
            value: Some(local(carry, &init.shape, carry_name.span)),
        });
        self.locals.push(Local {
            name: elem_name.name.clone(),
            value: Some(local(elem, &seq.shape[1..], elem_name.span)),
        });
        let body_t = self.expr(body);
        self.locals.truncate(self.locals.len() - 2);
        let body_t = body_t?;
        if body_t.shape != init.shape {
            self.diags.push(err::step_shape(
                &init.shape,
                &body_t.shape,
                body.span,
                init.span,
            ));
            return None;
        }
        let per_step =
            numel(&init.shape) + numel(&seq.shape[1..]) + self.captured(&body_t, [carry, elem]);
        let stored = seq.shape[0].saturating_mul(per_step);
        if stored > MAX_SCAN_VALUES {
            self.diags
                .push(err::scan_too_large(stored, MAX_SCAN_VALUES, span));
            return None;
        }
        let last = sig.name == "fold";
        let shape = if last {
            init.shape.clone()
        } else {
            carry_shape
        };
        let scan = ScanExpr {
            init,
            seq,
            carry,
            elem,
            body: body_t,
            last,
        };
        self.mk(TKind::Scan(Box::new(scan)), shape, span)
    }

    fn name(&mut self, n: &str, span: Span) -> Option<TExpr> {
        if let Some(l) = self.locals.iter().rev().find(|l| l.name == n) {
            let mut t = l.value.clone()?;
            t.span = span;
            return Some(t);
        }
        if let Ctx::Def { input, cond, .. } = &self.ctx {
            if n == input.name {
                let shape = input.shape.clone();
                return self.mk(TKind::Input, shape, span);
            }
            if let Some(c) = cond
                && n == c.name
            {
                let shape = c.shape.clone();
                return self.mk(TKind::Cond, shape, span);
            }
        }
        match self.symbols.get(n).cloned() {
            Some(Sym::Poison) => None,
            Some(Sym::Known(Symbol::Const(i))) => {
                let t = self.module.consts[i].value.clone();
                let shape = t.shape.clone();
                Some(TExpr {
                    kind: TKind::Const(t),
                    shape,
                    span,
                })
            }
            Some(Sym::Known(Symbol::Str(i))) => {
                let value = self.module.strings[i].value.clone();
                self.diags
                    .push(err::string_const_not_tensor(n, &value, span));
                None
            }
            Some(Sym::Known(Symbol::Param(i))) => {
                if matches!(self.ctx, Ctx::Const) {
                    self.diags.push(err::param_in_const(n, span));
                    return None;
                }
                let p = &self.module.params[i];
                let (name, shape) = (p.name.clone(), p.shape.clone());
                self.mk(TKind::Param(name), shape, span)
            }
            Some(Sym::Known(Symbol::Def(i))) => {
                let d = &self.module.defs[i];
                self.diags.push(err::def_as_value(d, span));
                None
            }
            Some(Sym::Known(Symbol::RunValue(Some(i)))) if matches!(self.ctx, Ctx::Script) => {
                let mut t = self.module.statements[i].args.as_ref()?[0].clone();
                t.span = span;
                Some(t)
            }
            Some(Sym::Known(Symbol::RunValue(_))) => {
                self.diags.push(err::run_value_in_expr(n, span));
                None
            }
            // Predefined constants: a definition of the same name shadows them.
            None if n == "pi" => self.constant(
                Tensor {
                    shape: vec![],
                    data: vec![std::f64::consts::PI],
                },
                span,
            ),
            None => {
                self.unresolved(n, span, false);
                None
            }
        }
    }

    /// Reports a name that is not (yet) defined.
    fn unresolved(&mut self, n: &str, span: Span, call: bool) {
        let binder = self.binders.iter().find(|(b, _)| b == n).map(|(_, k)| *k);
        if let (Some(binder), false) = (binder, call) {
            self.diags
                .push(err::local_out_of_scope(n, binder == Binder::Step, span));
        } else if self.current.as_deref() == Some(n) {
            self.diags.push(err::recursive(n, span));
        } else if let Some(def) = self.all_names.get(n) {
            // Once per name and item: later uses would repeat the same advice.
            let key = (self.current.clone(), n.to_string());
            if self.reported_early.insert(key) {
                self.diags.push(err::used_before_definition(n, span, *def));
            }
        } else if !call && builtins::lookup(n).is_some() {
            self.diags.push(err::function_as_value(n, span));
        } else {
            // Arguments of the current definition are the likeliest meaning.
            let mut locals: Vec<&str> = Vec::new();
            if let Ctx::Def { input, cond, .. } = &self.ctx {
                locals.push(&input.name);
                if let Some(c) = cond {
                    locals.push(&c.name);
                }
            }
            let mut candidates: Vec<&str> = self.symbols.keys().map(|s| s.as_str()).collect();
            if call {
                candidates.extend(builtins::BUILTINS.iter().map(|b| b.name));
                // `let s = sampel(..)` means the statement `sample`.
                candidates.extend(builtins::STATEMENTS.iter().copied());
            }
            let hint = suggest(n, locals)
                .or_else(|| suggest(n, candidates))
                .map(str::to_string);
            self.diags
                .push(err::unknown_name(n, span, hint.as_deref(), call));
        }
    }

    fn tensor_literal(&mut self, items: &[Expr], span: Span) -> Option<TExpr> {
        if items.is_empty() {
            self.diags.push(err::empty_tensor(span));
            return None;
        }
        let mut parts = Vec::new();
        let mut ok = true;
        for it in items {
            match self.expr(it) {
                Some(t) => parts.push(t),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let first = parts[0].shape.clone();
        for p in &parts[1..] {
            if p.shape != first {
                self.diags
                    .push(err::ragged_tensor(&first, &p.shape, p.span));
                return None;
            }
        }
        let mut shape = vec![parts.len()];
        shape.extend(&first);
        self.mk(TKind::Stack(parts), shape, span)
    }

    fn binary(
        &mut self,
        op: ast::BinaryOp,
        lhs: &Expr,
        rhs: &Expr,
        span: Span,
        allow_compare: bool,
    ) -> Option<TExpr> {
        use ast::BinaryOp as B;
        let is_cmp = matches!(op, B::Lt | B::Le | B::Gt | B::Ge);
        if is_cmp && !allow_compare {
            // Still check the operands, for their own errors.
            let _ = (self.expr(lhs), self.expr(rhs));
            self.diags
                .push(err::comparison_outside_where(op.symbol(), span));
            return None;
        }
        let a = self.expr(lhs);
        let b = self.expr(rhs);
        let (a, b) = (a?, b?);
        let sym = op.symbol();
        match op {
            B::Add => self.bcast(BinaryOp::Add, sym, a, b, span),
            B::Sub => self.bcast(BinaryOp::Sub, sym, a, b, span),
            B::Mul => self.bcast(BinaryOp::Mul, sym, a, b, span),
            B::Div => self.bcast(BinaryOp::Div, sym, a, b, span),
            B::Pow => match b.as_const() {
                Some(c)
                    if c.data.len() == 1
                        && broadcast_shapes(&a.shape, &b.shape).as_deref()
                            == Some(&a.shape[..]) =>
                {
                    let exp = c.data[0];
                    let shape = a.shape.clone();
                    self.mk(TKind::PowConst(Box::new(a), exp), shape, span)
                }
                _ => self.bcast(BinaryOp::Pow, sym, a, b, span),
            },
            B::MatMul => match matmul_shape(&a.shape, &b.shape) {
                Some(shape) => self.mk(TKind::MatMul(Box::new(a), Box::new(b)), shape, span),
                None => {
                    self.diags
                        .push(err::matmul_mismatch(&a.shape, &b.shape, span));
                    None
                }
            },
            B::Gt => self.bcast(BinaryOp::Gt, sym, a, b, span),
            B::Ge => self.bcast(BinaryOp::Ge, sym, a, b, span),
            B::Lt => self.bcast(BinaryOp::Gt, sym, b, a, span),
            B::Le => self.bcast(BinaryOp::Ge, sym, b, a, span),
            B::And | B::Or => {
                let mut ok = true;
                for (side, t) in [("left", &a), ("right", &b)] {
                    if !t.shape.is_empty() {
                        self.diags
                            .push(err::compose_non_scalar(sym, side, &t.shape, t.span));
                        ok = false;
                    }
                }
                if !ok {
                    return None;
                }
                if op == B::And {
                    self.mk(
                        TKind::Binary(BinaryOp::Add, Box::new(a), Box::new(b)),
                        vec![],
                        span,
                    )
                } else {
                    let na = self.unary(Elem::Neg, a, span)?;
                    let nb = self.unary(Elem::Neg, b, span)?;
                    let l = self.mk(TKind::LogSumExpN(vec![na, nb]), vec![], span)?;
                    self.unary(Elem::Neg, l, span)
                }
            }
        }
    }

    /// `mix(E1, .., En, weights = w, logz = z)`: the mixture
    /// −logsumexp(log(wᵢ / Σw) − zᵢ − Eᵢ) of scalar energies, with constant
    /// weights (default equal) and log-normalisers (default 0, i.e. the
    /// components' own unnormalised masses).
    fn mix(&mut self, sig: &Sig, b: &builtins::Bound, span: Span) -> Option<TExpr> {
        let parts: Vec<TExpr> = b.rest.iter().filter_map(|e| self.expr(e)).collect();
        if parts.len() != b.rest.len() {
            return None;
        }
        let n = parts.len();
        if n == 0 {
            return None; // `bind` has already reported a call without energies
        }
        if let Some(p) = parts.iter().find(|p| !p.shape.is_empty()) {
            let msg = format!(
                "expected a scalar energy, found shape {}",
                super::shape_text(&p.shape)
            );
            self.diags.push(err::bad_mix(msg, p.span));
            return None;
        }
        let weights = match b.get(sig, "weights") {
            Some(e) => self.mix_vector(e, n, "`weights`", |w| w > 0.0 && w.is_finite())?,
            None => vec![1.0; n],
        };
        let logz = match b.get(sig, "logz") {
            Some(e) => self.mix_vector(e, n, "`logz`", f64::is_finite)?,
            None => vec![0.0; n],
        };
        let total: f64 = weights.iter().sum();
        let mut terms = Vec::with_capacity(n);
        for ((p, w), z) in parts.into_iter().zip(&weights).zip(&logz) {
            let at = p.span;
            let offset = self.constant(
                Tensor {
                    shape: vec![],
                    data: vec![(w / total).ln() - z],
                },
                at,
            )?;
            terms.push(self.mk(
                TKind::Binary(BinaryOp::Sub, Box::new(offset), Box::new(p)),
                vec![],
                at,
            )?);
        }
        let l = self.mk(TKind::LogSumExpN(terms), vec![], span)?;
        self.unary(Elem::Neg, l, span)
    }

    /// `logaddexp(a, b, ..)`: log Σ exp elementwise over broadcast tensors,
    /// m + log Σᵢ exp(aᵢ − m) with m the elementwise maximum (its gradient
    /// stopped, as the function does not depend on it), and m taken as 0
    /// where every term is −∞ so that the result is −∞, not NaN.
    fn logaddexp(&mut self, b: &builtins::Bound, span: Span) -> Option<TExpr> {
        let parts: Vec<TExpr> = b.rest.iter().filter_map(|e| self.expr(e)).collect();
        if parts.len() != b.rest.len() {
            return None;
        }
        let mut it = parts.iter().cloned();
        // `bind` has already reported a call without arguments.
        let first = it.next()?;
        let mut m = first;
        for p in it {
            m = self.bcast(BinaryOp::Max, "logaddexp", m, p, span)?;
        }
        let shape = m.shape.clone();
        let scalar = |v: f64| Tensor {
            shape: vec![],
            data: vec![v],
        };
        let floor = self.constant(scalar(f64::NEG_INFINITY), span)?;
        let zero = self.constant(scalar(0.0), span)?;
        let finite = self.bcast(BinaryOp::Gt, "logaddexp", m.clone(), floor, span)?;
        let m = self.mk(
            TKind::Where(Box::new(finite), Box::new(m), Box::new(zero)),
            shape.clone(),
            span,
        )?;
        let m = self.mk(TKind::StopGradient(Box::new(m)), shape, span)?;
        let mut sum: Option<TExpr> = None;
        for p in parts {
            let d = self.bcast(BinaryOp::Sub, "logaddexp", p, m.clone(), span)?;
            let e = self.unary(Elem::Exp, d, span)?;
            sum = Some(match sum {
                None => e,
                Some(s) => self.bcast(BinaryOp::Add, "logaddexp", s, e, span)?,
            });
        }
        let l = self.unary(Elem::Log, sum?, span)?;
        self.bcast(BinaryOp::Add, "logaddexp", m, l, span)
    }

    /// A constant vector of `n` numbers each passing `ok` (`mix`'s
    /// `weights` and `logz`).
    fn mix_vector(
        &mut self,
        e: &Expr,
        n: usize,
        what: &str,
        ok: impl Fn(f64) -> bool,
    ) -> Option<Vec<f64>> {
        let t = self.expr(e)?;
        let Some(c) = t.as_const() else {
            self.diags.push(err::not_constant(what, e.span));
            return None;
        };
        if c.data.len() != n || c.shape.len() > 1 {
            let msg = format!(
                "{what} has shape {}, expected [{n}] (one value per energy)",
                super::shape_text(&c.shape)
            );
            self.diags.push(err::bad_mix(msg, e.span));
            return None;
        }
        if let Some(bad) = c.data.iter().find(|&&v| !ok(v)) {
            let want = if what == "`weights`" {
                "a positive weight"
            } else {
                "a finite log-normaliser"
            };
            let msg = format!("{what} holds {bad}, expected {want}");
            self.diags.push(err::bad_mix(msg, e.span));
            return None;
        }
        Some(c.data.clone())
    }

    fn index(&mut self, base: &Expr, items: &[IndexItem], span: Span) -> Option<TExpr> {
        let mut t = self.expr(base)?;
        if items.len() > t.shape.len() {
            self.diags
                .push(err::too_many_indices(items.len(), &t.shape, span));
            return None;
        }
        if let [IndexItem::At(e)] = items {
            let i = self.expr(e)?;
            if i.as_const().is_none() {
                return self.dynamic_index(t, i, e.span, span);
            }
        }
        let mut keep = Vec::new();
        for (axis, item) in items.iter().enumerate() {
            let dim = t.shape[axis];
            match item {
                IndexItem::At(e) => {
                    let i = self.static_int(e, "an index")?;
                    let d = dim as i64;
                    if i < -d || i >= d {
                        self.diags
                            .push(err::index_out_of_range(i, axis, dim, e.span));
                        return None;
                    }
                    let i = if i < 0 { i + d } else { i } as usize;
                    let mut shape = t.shape.clone();
                    shape[axis] = 1;
                    t = self.slice(t, axis, (i, 1), shape, span)?;
                }
                IndexItem::Range {
                    start,
                    end,
                    step,
                    span: rspan,
                } => {
                    let step = match step {
                        Some(e) => {
                            let v = self.static_int(e, "a slice step")?;
                            if v < 1 {
                                self.diags.push(err::bad_slice_step(v, e.span));
                                return None;
                            }
                            v
                        }
                        None => 1,
                    };
                    let d = dim as i64;
                    let norm = |v: i64| if v < 0 { v + d } else { v };
                    let s = match start {
                        Some(e) => norm(self.static_int(e, "a slice bound")?),
                        None => 0,
                    };
                    let en = match end {
                        Some(e) => norm(self.static_int(e, "a slice bound")?),
                        None => d,
                    };
                    if s < 0 || en > d || s >= en {
                        self.diags.push(err::bad_slice(s, en, axis, dim, *rspan));
                        return None;
                    }
                    let mut shape = t.shape.clone();
                    // NumPy: ⌈(end − start) / step⌉ elements.
                    shape[axis] = ((en - s + step - 1) / step) as usize;
                    keep.push(axis);
                    t = self.slice(t, axis, (s as usize, step as usize), shape, span)?;
                }
            }
        }
        let final_shape: Shape = (0..t.shape.len())
            .filter(|a| *a >= items.len() || keep.contains(a))
            .map(|a| t.shape[a])
            .collect();
        self.reshape(t, final_shape, span)
    }

    /// `t[i]` with a run-time scalar index (e.g. a label passed as
    /// conditioning, `-f(x)[y]`): Σ_k t[k] · [k = i] over axis 0, with
    /// `[k = i]` as (k ≥ i)·(i ≥ k). A non-integer or out-of-range index
    /// selects nothing (the result is 0).
    fn dynamic_index(&mut self, t: TExpr, i: TExpr, ispan: Span, span: Span) -> Option<TExpr> {
        if !i.shape.is_empty() {
            self.diags
                .push(err::expected_number("an index", &i.shape, ispan));
            return None;
        }
        let n = t.shape[0];
        let mut mshape = vec![n];
        mshape.extend(std::iter::repeat_n(1, t.shape.len() - 1));
        let iota = Array::new(mshape.clone(), (0..n).map(|k| k as f64).collect());
        let iota = self.constant(iota, ispan)?;
        let ge = self.mk(
            TKind::Binary(BinaryOp::Ge, Box::new(iota.clone()), Box::new(i.clone())),
            mshape.clone(),
            ispan,
        )?;
        let le = self.mk(
            TKind::Binary(BinaryOp::Ge, Box::new(i), Box::new(iota)),
            mshape.clone(),
            ispan,
        )?;
        let mask = self.mk(
            TKind::Binary(BinaryOp::Mul, Box::new(ge), Box::new(le)),
            mshape,
            ispan,
        )?;
        let shape = t.shape.clone();
        let picked = self.mk(
            TKind::Binary(BinaryOp::Mul, Box::new(t), Box::new(mask)),
            shape,
            span,
        )?;
        self.reduce(Reduce::Sum, picked, Axes::of(&[0]), span)
    }

    fn slice(
        &mut self,
        t: TExpr,
        axis: usize,
        (start, step): (usize, usize),
        shape: Shape,
        span: Span,
    ) -> Option<TExpr> {
        if shape == t.shape {
            return Some(t);
        }
        // One element: its step does not matter.
        let step = if shape[axis] == 1 { 1 } else { step };
        self.mk(TKind::Slice(Box::new(t), axis, start, step), shape, span)
    }

    // ----- calls -----

    fn call(
        &mut self,
        callee: &ast::Ident,
        args: &[CallArg],
        cond: Option<&Expr>,
        span: Span,
    ) -> Option<TExpr> {
        let n = callee.name.as_str();
        match self.symbols.get(n).cloned() {
            Some(Sym::Poison) => return None,
            Some(Sym::Known(Symbol::Def(i))) => return self.def_call(i, callee, args, cond, span),
            Some(Sym::Known(_)) => {
                let kind = self.lookup_kind(n).unwrap_or_default();
                self.diags.push(err::not_callable(n, &kind, callee.span));
                return None;
            }
            None => {}
        }
        let Some(sig) = builtins::lookup(n) else {
            if STATEMENTS.contains(&n) {
                self.diags.push(err::statement_in_expr(n, callee.span));
            } else {
                self.unresolved(n, callee.span, true);
            }
            return None;
        };
        if let Some(c) = cond {
            self.diags.push(err::unexpected_cond(n, c.span));
            return None;
        }
        let bound = builtins::bind(sig, callee, span, args, &mut self.diags)?;
        match sig.class {
            Class::Elementwise => self.elementwise(sig, &bound, span),
            Class::Tensor => self.tensor_op(sig, &bound, span),
            Class::Constructor => self.constructor(sig, &bound, span),
            Class::Neural => self.neural(sig, &bound, callee, span),
            Class::Init => {
                self.diags.push(err::init_outside_param(n, callee.span));
                None
            }
        }
    }

    fn def_call(
        &mut self,
        i: usize,
        callee: &ast::Ident,
        args: &[CallArg],
        cond: Option<&Expr>,
        span: Span,
    ) -> Option<TExpr> {
        if matches!(self.ctx, Ctx::Const) {
            self.diags.push(err::call_in_const(&callee.name, span));
            return None;
        }
        let def = self.module.defs[i].clone();
        let x = match args {
            [CallArg::Positional(x)] => x,
            [CallArg::Keyword { name, .. }] => {
                self.diags.push(err::def_keyword(&def.name, name));
                return None;
            }
            _ => {
                self.diags.push(err::def_arity(&def.name, args.len(), span));
                return None;
            }
        };
        let xt = self.expr(x);
        let ct = cond.map(|c| self.expr(c));
        let xt = xt?;
        if xt.shape != def.input.shape {
            self.diags.push(err::arg_shape(
                &def.name,
                &def.input.name,
                &def.input.shape,
                &xt.shape,
                x.span,
            ));
            return None;
        }
        let ct = match (&def.cond, ct, cond) {
            (None, None, _) => None,
            (Some(c), None, _) => {
                self.diags
                    .push(err::missing_cond(&def.name, &c.name, &c.shape, span));
                return None;
            }
            (None, Some(_), Some(c)) => {
                self.diags.push(err::unexpected_cond(&def.name, c.span));
                return None;
            }
            (Some(c), Some(t), Some(ce)) => {
                let t = t?;
                if t.shape != c.shape {
                    self.diags.push(err::arg_shape(
                        &def.name, &c.name, &c.shape, &t.shape, ce.span,
                    ));
                    return None;
                }
                Some(Box::new(t))
            }
            _ => None,
        };
        self.mk(
            TKind::Call {
                def: i,
                x: Box::new(xt),
                cond: ct,
            },
            def.output.clone(),
            span,
        )
    }

    fn elementwise(&mut self, sig: &Sig, b: &builtins::Bound, span: Span) -> Option<TExpr> {
        let x = self.expr(b.get(sig, "x")?)?;
        let alpha = |a: &mut Self, default: f64| match b.get(sig, "alpha") {
            Some(e) => a.static_num(e, "`alpha`"),
            None => Some(default),
        };
        let op = match sig.name {
            "exp" => Elem::Exp,
            "log" => Elem::Log,
            "log1p" => Elem::Log1p,
            "sqrt" => Elem::Sqrt,
            "abs" => Elem::Abs,
            "sin" => Elem::Sin,
            "cos" => Elem::Cos,
            "tanh" => Elem::Tanh,
            "sigmoid" => Elem::Sigmoid,
            "softplus" => Elem::Softplus,
            "relu" => Elem::Relu,
            "swish" => Elem::Swish,
            "gelu" => Elem::Gelu,
            "leaky_relu" => Elem::LeakyRelu(alpha(self, 0.01)?),
            "elu" => Elem::Elu(alpha(self, 1.0)?),
            // invariant: the builtin table routes only the names matched above to this function.
            other => unreachable!("elementwise builtin {other}"),
        };
        self.unary(op, x, span)
    }

    fn axes_arg(
        &mut self,
        sig: &Sig,
        b: &builtins::Bound,
        rank: usize,
        default_last: bool,
    ) -> Option<Axes> {
        match b.get(sig, "axis") {
            Some(e) => {
                if rank == 0 {
                    self.diags.push(err::axis_out_of_range(0, 0, e.span));
                    return None;
                }
                Some(Axes::of(&[self.axis(e, rank)?]))
            }
            None if rank == 0 => Some(Axes::default()),
            None if default_last => Some(Axes::of(&[rank - 1])),
            None => Some(Axes::all(rank)),
        }
    }

    fn tensor_op(&mut self, sig: &Sig, b: &builtins::Bound, span: Span) -> Option<TExpr> {
        match sig.name {
            "sum" | "mean" | "max" | "min" => {
                let x = self.expr(b.get(sig, "x")?)?;
                let axes = self.axes_arg(sig, b, x.shape.len(), false)?;
                let op = match sig.name {
                    "sum" => Reduce::Sum,
                    "mean" => Reduce::Mean,
                    "max" => Reduce::Max,
                    _ => Reduce::Min,
                };
                self.reduce(op, x, axes, span)
            }
            "logsumexp" => {
                let mut parts = Vec::new();
                let mut ok = true;
                for e in &b.rest {
                    match self.expr(e) {
                        Some(t) => parts.push(t),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                if parts.len() == 1 {
                    let x = parts.pop()?;
                    let axes = self.axes_arg(sig, b, x.shape.len(), false)?;
                    return self.reduce(Reduce::LogSumExp, x, axes, span);
                }
                if let Some(e) = b.get(sig, "axis") {
                    self.diags.push(err::axis_with_many(e.span));
                    return None;
                }
                for p in &parts {
                    if !p.shape.is_empty() {
                        self.diags.push(err::lse_non_scalar(&p.shape, p.span));
                        return None;
                    }
                }
                self.mk(TKind::LogSumExpN(parts), vec![], span)
            }
            "mix" => self.mix(sig, b, span),
            "sqnorm" | "norm" => {
                let x = self.expr(b.get(sig, "x")?)?;
                let axes = self.axes_arg(sig, b, x.shape.len(), true)?;
                let shape = x.shape.clone();
                let sq = self.mk(TKind::PowConst(Box::new(x), 2.0), shape, span)?;
                let s = self.reduce(Reduce::Sum, sq, axes, span)?;
                if sig.name == "norm" {
                    self.unary(Elem::Sqrt, s, span)
                } else {
                    Some(s)
                }
            }
            "dot" => {
                let a = self.expr(b.get(sig, "a")?);
                let c = self.expr(b.get(sig, "b")?);
                let p = self.bcast(BinaryOp::Mul, "dot", a?, c?, span)?;
                let rank = p.shape.len();
                let axes = if rank == 0 {
                    Axes::default()
                } else {
                    Axes::of(&[rank - 1])
                };
                self.reduce(Reduce::Sum, p, axes, span)
            }
            "concat" => self.concat(sig, b, span),
            "reshape" => {
                let x = self.expr(b.get(sig, "x")?)?;
                let se = b.get(sig, "shape")?;
                let shape = self.static_shape(se, "`shape`")?;
                if numel(&shape) != numel(&x.shape) {
                    self.diags
                        .push(err::reshape_size(&x.shape, &shape, se.span));
                    return None;
                }
                self.reshape(x, shape, span)
            }
            "transpose" => {
                let x = self.expr(b.get(sig, "x")?)?;
                let rank = x.shape.len();
                let perm: Vec<usize> = match b.get(sig, "perm") {
                    Some(pe) => {
                        let p = self.static_ints(pe, "`perm`")?;
                        let mut sorted = p.clone();
                        sorted.sort();
                        if sorted != (0..rank as i64).collect::<Vec<_>>() {
                            self.diags.push(err::bad_perm(&p, rank, pe.span));
                            return None;
                        }
                        p.into_iter().map(|v| v as usize).collect()
                    }
                    None => (0..rank).rev().collect(),
                };
                if perm.iter().enumerate().all(|(i, &a)| i == a) {
                    return Some(x);
                }
                let shape = perm.iter().map(|&a| x.shape[a]).collect();
                self.mk(TKind::Transpose(Box::new(x), perm), shape, span)
            }
            "where" => {
                let c = self.expr_in(b.get(sig, "cond")?, true);
                let x = self.expr(b.get(sig, "a")?);
                let y = self.expr(b.get(sig, "b")?);
                let (c, x, y) = (c?, x?, y?);
                let shape = broadcast_shapes(&c.shape, &x.shape)
                    .and_then(|s| broadcast_shapes(&s, &y.shape));
                match shape {
                    Some(shape) => self.mk(
                        TKind::Where(Box::new(c), Box::new(x), Box::new(y)),
                        shape,
                        span,
                    ),
                    None => {
                        self.diags
                            .push(err::where_mismatch(&c.shape, &x.shape, &y.shape, span));
                        None
                    }
                }
            }
            "maximum" | "minimum" => {
                let a = self.expr(b.get(sig, "a")?);
                let c = self.expr(b.get(sig, "b")?);
                let op = if sig.name == "maximum" {
                    BinaryOp::Max
                } else {
                    BinaryOp::Min
                };
                self.bcast(op, sig.name, a?, c?, span)
            }
            "logaddexp" => self.logaddexp(b, span),
            "clamp" => {
                let x = self.expr(b.get(sig, "x")?);
                let lo = self.expr(b.get(sig, "lo")?);
                let hi = self.expr(b.get(sig, "hi")?);
                let m = self.bcast(BinaryOp::Max, "clamp", x?, lo?, span)?;
                self.bcast(BinaryOp::Min, "clamp", m, hi?, span)
            }
            "stop_gradient" => {
                let x = self.expr(b.get(sig, "x")?)?;
                let shape = x.shape.clone();
                self.mk(TKind::StopGradient(Box::new(x)), shape, span)
            }
            "avg_pool2d" | "max_pool2d" => self.pool2d(sig, b, span),
            "scan" | "fold" => self.scan(sig, b, span),
            "flatten" => self.flatten(sig, b, span),
            // invariant: the builtin table routes only the names matched above to this function.
            other => unreachable!("tensor builtin {other}"),
        }
    }

    fn concat(&mut self, sig: &Sig, b: &builtins::Bound, span: Span) -> Option<TExpr> {
        let mut parts = Vec::new();
        let mut ok = true;
        for e in &b.rest {
            match self.expr(e) {
                Some(t) if t.shape.is_empty() => {
                    let s = t.span;
                    parts.push(self.reshape(t, vec![1], s)?)
                }
                Some(t) => parts.push(t),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let rank = parts[0].shape.len();
        let axis = match b.get(sig, "axis") {
            Some(e) => self.axis(e, rank)?,
            None => 0,
        };
        let first = parts[0].shape.clone();
        for p in &parts[1..] {
            let same =
                p.shape.len() == rank && (0..rank).all(|i| i == axis || p.shape[i] == first[i]);
            if !same {
                self.diags
                    .push(err::concat_mismatch(&first, &p.shape, axis, p.span));
                return None;
            }
        }
        if parts.len() == 1 {
            return parts.pop();
        }
        let mut shape = first;
        shape[axis] = parts.iter().map(|p| p.shape[axis]).sum();
        self.mk(TKind::Concat(parts, axis), shape, span)
    }

    fn constructor(&mut self, sig: &Sig, b: &builtins::Bound, span: Span) -> Option<TExpr> {
        let t = match sig.name {
            "ring" => {
                let n = self.static_positive(b.get(sig, "n")?, "`n`")?;
                let r = match b.get(sig, "radius") {
                    Some(e) => self.static_num(e, "`radius`")?,
                    None => 1.0,
                };
                self.const_budget(&[n, 2], span)?;
                let mut data = Vec::with_capacity(2 * n);
                for k in 0..n {
                    let t = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
                    data.push(r * t.cos());
                    data.push(r * t.sin());
                }
                Array::new(vec![n, 2], data)
            }
            "linspace" => {
                let a = self.static_num(b.get(sig, "a")?, "`a`");
                let c = self.static_num(b.get(sig, "b")?, "`b`");
                let n = self.static_positive(b.get(sig, "n")?, "`n`");
                let (a, c, n) = (a?, c?, n?);
                self.const_budget(&[n], span)?;
                let data = (0..n)
                    .map(|i| {
                        if n == 1 {
                            a
                        } else {
                            a + (c - a) * i as f64 / (n - 1) as f64
                        }
                    })
                    .collect();
                Array::new(vec![n], data)
            }
            "zeros" | "ones" => {
                let shape = self.static_shape(b.get(sig, "shape")?, "`shape`")?;
                self.const_budget(&shape, span)?;
                let v = if sig.name == "zeros" { 0.0 } else { 1.0 };
                Array::new(shape.clone(), vec![v; numel(&shape)])
            }
            "eye" => {
                let n = self.static_positive(b.get(sig, "n")?, "`n`")?;
                self.const_budget(&[n, n], span)?;
                let mut data = vec![0.0; n * n];
                for i in 0..n {
                    data[i * n + i] = 1.0;
                }
                Array::new(vec![n, n], data)
            }
            "onehot" => {
                let ie = b.get(sig, "i")?;
                let i = self.static_int(ie, "`i`");
                let n = self.static_positive(b.get(sig, "n")?, "`n`");
                let (i, n) = (i?, n?);
                if i < 0 || i as usize >= n {
                    self.diags.push(err::onehot_range(i, n, ie.span));
                    return None;
                }
                self.const_budget(&[n], span)?;
                let mut data = vec![0.0; n];
                data[i as usize] = 1.0;
                Array::new(vec![n], data)
            }
            "randn" => {
                let shape = self.static_shape(b.get(sig, "shape")?, "`shape`")?;
                let seed = match b.get(sig, "seed") {
                    Some(e) => {
                        let s = self.static_int(e, "`seed`")?;
                        if s < 0 {
                            self.diags.push(err::expected_positive("`seed`", s, e.span));
                            return None;
                        }
                        s as u64
                    }
                    None => 0,
                };
                self.const_budget(&shape, span)?;
                Array::new(shape.clone(), data::rng::normal(seed, numel(&shape)))
            }
            "load" => self.load(sig, b)?,
            // invariant: the builtin table routes only the names matched above to this function.
            other => unreachable!("constructor {other}"),
        };
        self.constant(t, span)
    }

    fn const_budget(&mut self, shape: &[usize], span: Span) -> Option<()> {
        self.check_size(shape, span)?;
        if numel(shape) > MAX_CONST_ELEMS {
            self.diags.push(err::too_large(shape, span));
            return None;
        }
        self.spend(shape, "this constant", "", span).then_some(())
    }

    /// Counts a parameter's or constant's values (8 bytes each) against
    /// the memory limit before they are built: false, with E0328 (once per
    /// program), when the program's parameters and constants so far would
    /// exceed it.
    fn spend(&mut self, shape: &[usize], what: &str, name: &str, span: Span) -> bool {
        let elems = shape.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64));
        let bytes = elems.saturating_mul(8);
        self.memory = self.memory.saturating_add(bytes);
        if self.memory <= crate::budget::max_memory() {
            return true;
        }
        if !self.memory_reported {
            self.memory_reported = true;
            self.diags
                .push(err::memory_budget(what, name, shape, self.memory, span));
        }
        false
    }

    fn load(&mut self, sig: &Sig, b: &builtins::Bound) -> Option<Array> {
        let pe = b.get(sig, "path")?;
        let path = self.static_str(pe, "a file path")?;
        let key = match b.get(sig, "key") {
            None => data::Key::All,
            Some(ke) => match (&ke.kind, self.string_value(ke)) {
                (_, Some(s)) if s.is_empty() => data::Key::All,
                (_, Some(s)) => data::Key::One(s),
                (ExprKind::Tensor(items), None) => {
                    let mut keys = Vec::new();
                    for it in items {
                        keys.push(self.static_str(it, "a column name")?);
                    }
                    data::Key::Many(keys)
                }
                _ => {
                    self.diags.push(err::expected_string("a key", ke.span));
                    return None;
                }
            },
        };
        let full = self.base_dir.join(&path);
        self.module.inputs.push(full.clone());
        let key_span = b.get(sig, "key").map(|k| k.span).unwrap_or(pe.span);
        match data::load(&full, &key, MAX_CONST_ELEMS) {
            Ok(a) if a.shape.len() > MAX_RANK => {
                self.diags.push(err::too_large(&a.shape, pe.span));
                None
            }
            Ok(a) => self
                .spend(&a.shape, "this constant", "", pe.span)
                .then_some(a),
            Err(e) => {
                self.diags
                    .push(err::data_error(&e, &path, pe.span, key_span));
                None
            }
        }
    }

    // ----- neural primitives -----

    fn neural(
        &mut self,
        sig: &Sig,
        b: &builtins::Bound,
        callee: &ast::Ident,
        span: Span,
    ) -> Option<TExpr> {
        let Ctx::Def { name: def_name, .. } = self.ctx.clone() else {
            self.diags
                .push(err::primitive_outside_def(sig.name, callee.span));
            return None;
        };
        if sig.name == "conv2d" {
            let counter = self.counters.entry(sig.name).or_insert(0);
            let site = format!("{def_name}.conv2d{}", *counter);
            *counter += 1;
            return self.conv2d(sig, b, site, span);
        }
        let xe = b.get(sig, "x")?;
        let x = self.expr(xe)?;
        let x = match x.shape.len() {
            0 => self.reshape(x, vec![1], xe.span)?,
            1 => x,
            _ => {
                self.diags
                    .push(err::primitive_input(sig.name, &x.shape, xe.span));
                return None;
            }
        };
        let (sizes, act) = if sig.name == "linear" {
            (
                vec![self.static_positive(b.get(sig, "out")?, "`out`")?],
                Elem::Swish,
            )
        } else {
            let se = b.get(sig, "sizes")?;
            let ints = self.static_ints(se, "the layer sizes")?;
            let mut sizes = Vec::new();
            for v in ints {
                if v < 1 || v as usize > MAX_ELEMS {
                    self.diags
                        .push(err::expected_positive("a layer size", v, se.span));
                    return None;
                }
                sizes.push(v as usize);
            }
            let act = match b.get(sig, "act") {
                None => Elem::Swish,
                Some(ae) => self.activation(ae)?,
            };
            (sizes, act)
        };
        let counter = self.counters.entry(sig.name).or_insert(0);
        let site = format!("{def_name}.{}{}", sig.name, *counter);
        *counter += 1;
        let mut h = x;
        let layers = sizes.len();
        let mut fan_in = h.shape[0];
        for (l, &out) in sizes.iter().enumerate() {
            self.check_size(&[fan_in, out], span)?;
            let (wn, bn) = if sig.name == "linear" {
                (format!("{site}.w"), format!("{site}.b"))
            } else {
                (format!("{site}.w{}", l + 1), format!("{site}.b{}", l + 1))
            };
            self.declare_param(&wn, vec![fan_in, out], Init::LeCun, span);
            self.declare_param(&bn, vec![out], Init::Zeros, span);
            let w = self.mk(TKind::Param(wn), vec![fan_in, out], span)?;
            let bias = self.mk(TKind::Param(bn), vec![out], span)?;
            let m = self.mk(TKind::MatMul(Box::new(h), Box::new(w)), vec![out], span)?;
            h = self.mk(
                TKind::Binary(BinaryOp::Add, Box::new(m), Box::new(bias)),
                vec![out],
                span,
            )?;
            if l + 1 < layers {
                h = self.unary(act, h, span)?;
            }
            fan_in = out;
        }
        Some(h)
    }

    /// A neural primitive's parameter, created by its first call site
    /// (a definition inlined twice reuses it).
    fn declare_param(&mut self, name: &str, shape: Shape, init: Init, span: Span) {
        if self.module.param(name).is_none() && self.spend(&shape, "the parameter", name, span) {
            self.module.params.push(Param {
                name: name.to_string(),
                shape,
                init,
                span,
            });
        }
    }

    fn activation(&mut self, e: &Expr) -> Option<Elem> {
        let name = match &e.kind {
            ExprKind::Name(n) => n.as_str(),
            ExprKind::Str(s) => s.as_str(),
            _ => {
                self.diags.push(err::unknown_activation(None, e.span));
                return None;
            }
        };
        Some(match name {
            "swish" | "silu" => Elem::Swish,
            "relu" => Elem::Relu,
            "tanh" => Elem::Tanh,
            "sigmoid" => Elem::Sigmoid,
            "softplus" => Elem::Softplus,
            "gelu" => Elem::Gelu,
            "elu" => Elem::Elu(1.0),
            "leaky_relu" => Elem::LeakyRelu(0.01),
            _ => {
                self.diags.push(err::unknown_activation(Some(name), e.span));
                return None;
            }
        })
    }

    // ----- parameter initialisers -----

    fn init(&mut self, e: &Expr) -> Option<Init> {
        const INITS: &[&str] = &["normal", "uniform", "zeros", "glorot"];
        let (name, args, nspan): (&str, &[CallArg], Span) = match &e.kind {
            ExprKind::Name(n) => (n, &[], e.span),
            ExprKind::Call {
                callee,
                args,
                cond: None,
            } => (&callee.name, args, callee.span),
            _ => {
                self.diags.push(err::bad_init(None, None, e.span));
                return None;
            }
        };
        if !INITS.contains(&name) {
            let hint = suggest(name, INITS.iter().copied());
            self.diags.push(err::bad_init(Some(name), hint, nspan));
            return None;
        }
        if matches!(name, "zeros" | "glorot") {
            if let Some(a) = args.first() {
                self.diags.push(err::init_takes_no_args(name, a.span()));
                return None;
            }
            return Some(if name == "zeros" {
                Init::Zeros
            } else {
                Init::Glorot
            });
        }
        let sig = builtins::lookup(name)?;
        let callee = ast::Ident {
            name: name.to_string(),
            span: nspan,
        };
        let b = builtins::bind(sig, &callee, e.span, args, &mut self.diags)?;
        let p0 = sig.params[0].name;
        let p1 = sig.params[1].name;
        let v0e = b.get(sig, p0)?;
        let v0 = self.static_num(v0e, &format!("`{p0}`"));
        let v1e = b.get(sig, p1)?;
        let v1 = self.static_num(v1e, &format!("`{p1}`"));
        let (v0, v1) = (v0?, v1?);
        if !v0.is_finite() {
            // normal(0/0, 1) would make every value NaN.
            let want = if name == "normal" {
                "a finite mean"
            } else {
                "a finite lower bound"
            };
            self.diags.push(err::bad_init_value(want, v0, v0e.span));
            return None;
        }
        if name == "normal" {
            if v1 < 0.0 || !v1.is_finite() {
                self.diags.push(err::bad_init_value(
                    "a standard deviation ≥ 0",
                    v1,
                    v1e.span,
                ));
                return None;
            }
            Some(Init::Normal { mean: v0, std: v1 })
        } else {
            if v1 < v0 || !v1.is_finite() || !v0.is_finite() {
                self.diags.push(err::bad_init_value(
                    &format!("an upper bound ≥ {v0}"),
                    v1,
                    v1e.span,
                ));
                return None;
            }
            Some(Init::Uniform { lo: v0, hi: v1 })
        }
    }
}

/// Whether `e` reads `Local(slot)`.
fn reads_slot(e: &TExpr, slot: usize) -> bool {
    matches!(e.kind, TKind::Local(s) if s == slot)
        || e.children().iter().any(|c| reads_slot(c, slot))
}

/// Whether `e` reads nothing but constants and the given slots (and the
/// slots it binds itself): a closed expression that constant folding may
/// evaluate.
fn closed(e: &TExpr, slots: &[usize]) -> bool {
    match &e.kind {
        TKind::Input | TKind::Cond | TKind::Param(_) | TKind::Call { .. } | TKind::Imported(_) => {
            false
        }
        TKind::Local(s) => slots.contains(s),
        TKind::Let(s, v, b) => {
            let mut inner = slots.to_vec();
            inner.push(*s);
            closed(v, slots) && closed(b, &inner)
        }
        TKind::Scan(sc) => {
            let mut inner = slots.to_vec();
            inner.extend([sc.carry, sc.elem]);
            closed(&sc.init, slots) && closed(&sc.seq, slots) && closed(&sc.body, &inner)
        }
        _ => e.children().iter().all(|c| closed(c, slots)),
    }
}

/// The local names an item binds (`let .. in`, step parameters), anywhere.
fn item_binders(item: &ast::Item, out: &mut Vec<(String, Binder)>) {
    let exprs: Vec<&Expr> = match &item.kind {
        ItemKind::Const { value, .. }
        | ItemKind::Data { value, .. }
        | ItemKind::Let { value, .. } => vec![value],
        ItemKind::Param { init, .. } => vec![init],
        ItemKind::Energy(def) | ItemKind::Model { def, .. } => vec![&def.body],
        ItemKind::Expr(e) => vec![e],
        ItemKind::Use { .. } => vec![],
    };
    for e in exprs {
        expr_binders(e, out);
    }
}

fn expr_binders(e: &Expr, out: &mut Vec<(String, Binder)>) {
    match &e.kind {
        ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Name(_) => {}
        ExprKind::Tensor(items) => items.iter().for_each(|i| expr_binders(i, out)),
        ExprKind::Unary { operand, .. } => expr_binders(operand, out),
        ExprKind::Binary { lhs, rhs, .. } => {
            expr_binders(lhs, out);
            expr_binders(rhs, out);
        }
        ExprKind::Call { args, cond, .. } => {
            for a in args {
                match a {
                    CallArg::Positional(v) | CallArg::Keyword { value: v, .. } => {
                        expr_binders(v, out)
                    }
                }
            }
            if let Some(c) = cond {
                expr_binders(c, out);
            }
        }
        ExprKind::Index { base, indices } => {
            expr_binders(base, out);
            for ix in indices {
                match ix {
                    IndexItem::At(v) => expr_binders(v, out),
                    IndexItem::Range {
                        start, end, step, ..
                    } => {
                        for v in [start, end, step].into_iter().flatten() {
                            expr_binders(v, out);
                        }
                    }
                }
            }
        }
        ExprKind::Let { name, value, body } => {
            out.push((name.name.clone(), Binder::Let));
            expr_binders(value, out);
            expr_binders(body, out);
        }
        ExprKind::Lambda { params, body } => {
            out.extend(params.iter().map(|p| (p.name.clone(), Binder::Step)));
            expr_binders(body, out);
        }
    }
}

fn callee_name(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Call { callee, .. } => Some(&callee.name),
        _ => None,
    }
}

/// Checks the tensor-valued arguments of runner statements
/// (`sample(.., cond = onehot(0, 4))`) as `print` arguments are checked: in
/// script context, against the names defined *before* the expression.
pub struct ScriptScope<'m> {
    a: Analyzer<'m>,
    source: &'m Module,
}

impl<'m> ScriptScope<'m> {
    /// A scope over `module`'s names; constants fold with `eval_const`.
    pub fn new(module: &'m Module, eval_const: ConstEval) -> ScriptScope<'m> {
        let mut all_names = HashMap::new();
        for (name, span) in script_names(module) {
            all_names.entry(name.to_string()).or_insert(span);
        }
        ScriptScope {
            a: Analyzer {
                module: module.clone(),
                symbols: HashMap::new(),
                all_names,
                current: None,
                ctx: Ctx::Script,
                counters: HashMap::new(),
                diags: Vec::new(),
                reported_early: Default::default(),
                depth: 0,
                base_dir: &module.base_dir,
                eval_const,
                locals: Vec::new(),
                binders: Vec::new(),
                next_slot: 0,
                memory: 0,
                memory_reported: false,
            },
            source: module,
        }
    }

    /// The checked expression, or its diagnostics.
    pub fn expr(&mut self, e: &Expr) -> Result<TExpr, Vec<Diagnostic>> {
        let m = self.source;
        let mut symbols = HashMap::new();
        for (i, c) in m.consts.iter().enumerate() {
            if c.span.start < e.span.start {
                symbols.insert(c.name.clone(), Sym::Known(Symbol::Const(i)));
            }
        }
        for (i, c) in m.strings.iter().enumerate() {
            if c.span.start < e.span.start {
                symbols.insert(c.name.clone(), Sym::Known(Symbol::Str(i)));
            }
        }
        for (i, p) in m.params.iter().enumerate() {
            if !p.name.contains('.') && p.span.start < e.span.start {
                symbols.insert(p.name.clone(), Sym::Known(Symbol::Param(i)));
            }
        }
        for (i, d) in m.defs.iter().enumerate() {
            if d.span.start < e.span.start {
                symbols.insert(d.name.clone(), Sym::Known(Symbol::Def(i)));
            }
        }
        for (i, s) in m.statements.iter().enumerate() {
            if let Some(b) = &s.binding
                && s.span.start < e.span.start
            {
                let value = (s.name == "let" && s.args.is_some()).then_some(i);
                symbols.insert(b.clone(), Sym::Known(Symbol::RunValue(value)));
            }
        }
        let a = &mut self.a;
        a.symbols = symbols;
        a.ctx = Ctx::Script;
        a.current = None;
        a.depth = 0;
        a.diags.clear();
        a.locals.clear();
        a.binders.clear();
        expr_binders(e, &mut a.binders);
        let r = a.expr(e);
        let diags = std::mem::take(&mut a.diags);
        match r {
            Some(t) if diags.is_empty() => Ok(t),
            _ => Err(diags),
        }
    }
}

/// Every top-level name of a checked module and where it is defined.
fn script_names(m: &Module) -> Vec<(&str, Span)> {
    let mut v: Vec<(&str, Span)> = Vec::new();
    v.extend(m.consts.iter().map(|c| (c.name.as_str(), c.span)));
    v.extend(m.strings.iter().map(|c| (c.name.as_str(), c.span)));
    v.extend(
        m.params
            .iter()
            .filter(|p| !p.name.contains('.'))
            .map(|p| (p.name.as_str(), p.span)),
    );
    v.extend(m.defs.iter().map(|d| (d.name.as_str(), d.span)));
    v.extend(
        m.statements
            .iter()
            .filter_map(|s| s.binding.as_deref().map(|b| (b, s.span))),
    );
    v
}
