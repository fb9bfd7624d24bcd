//! Semantic analysis: name resolution, static shapes, constant evaluation and
//! parameter creation. `analyze` turns the AST into a `Module`: every
//! definition's body as a typed, shape-annotated expression tree (`TExpr`)
//! with names resolved, constants folded to tensors, indexing and composition
//! desugared, and neural primitives expanded into named parameters. `lower`
//! then only has to translate `TExpr` nodes to IR; it never re-checks.
//! `sema` sits below `lower`: the constant folder it needs comes in as a
//! `ConstEval` from the caller.

pub mod builtins;
mod check;
pub mod errors;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::data::{Array, rng};
use crate::diag::{Diagnostic, Span};
use crate::ir::{Axes, BinaryOp};
use crate::syntax::ast;

pub use crate::ir::Shape;
pub use crate::stack::with_big_stack;
pub use check::ScriptScope;

/// A compile-time tensor (f64, row-major).
pub type Tensor = Array;

/// A typed expression: every node knows its static shape and source span.
#[derive(Clone, Debug)]
pub struct TExpr {
    pub kind: TKind,
    pub shape: Shape,
    pub span: Span,
}

/// Elementwise functions (composites such as `swish` are decomposed by `lower`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Elem {
    Neg,
    Exp,
    Log,
    Log1p,
    Sqrt,
    Abs,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Softplus,
    Relu,
    LeakyRelu(f64),
    Elu(f64),
    Swish,
    Gelu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
    LogSumExp,
}

#[derive(Clone, Debug)]
pub enum TKind {
    /// A folded constant.
    Const(Arc<Tensor>),
    /// The definition's sample argument (`x`).
    Input,
    /// The definition's conditioning argument (`c`).
    Cond,
    /// A learnable parameter, by full name (see `Module::params`).
    Param(String),
    Unary(Elem, Box<TExpr>),
    /// Elementwise with NumPy broadcasting (`Gt`/`Ge` only under `where`).
    Binary(BinaryOp, Box<TExpr>, Box<TExpr>),
    PowConst(Box<TExpr>, f64),
    MatMul(Box<TExpr>, Box<TExpr>),
    Reduce(Reduce, Box<TExpr>, Axes),
    /// `logsumexp(a, b, ..)` of scalars.
    LogSumExpN(Vec<TExpr>),
    /// A tensor literal with non-constant elements: stacked on a new axis 0.
    Stack(Vec<TExpr>),
    Concat(Vec<TExpr>, usize),
    /// Row-major reshape to `shape`.
    Reshape(Box<TExpr>),
    Transpose(Box<TExpr>, Vec<usize>),
    /// `Slice(x, axis, start, step)`: `shape[axis]` elements from `start`,
    /// every `step`-th.
    Slice(Box<TExpr>, usize, usize, usize),
    /// `where(c, a, b)`, all broadcast to `shape`; `c` is non-zero for true.
    Where(Box<TExpr>, Box<TExpr>, Box<TExpr>),
    StopGradient(Box<TExpr>),
    /// The body of a definition imported from a model file (`use`): a
    /// verified graph that `lower` inlines with `x`/`c` bound.
    Imported(Arc<ImportedGraph>),
    /// An inlined call of definition `def` (index into `Module::defs`).
    Call {
        def: usize,
        x: Box<TExpr>,
        cond: Option<Box<TExpr>>,
    },
    /// `let` in an expression: `Let(slot, value, body)` computes `value`
    /// once; `body` reads it as `Local(slot)`. Slots are unique within a
    /// module, so inlined bodies never clash.
    Let(usize, Box<TExpr>, Box<TExpr>),
    /// A `let`-bound value or a step function's parameter, by slot.
    Local(usize),
    /// `scan`/`fold` over the leading axis of a sequence.
    Scan(Box<ScanExpr>),
}

/// `scan(init, xs, (s, xt) => body)`: s₀ = init, sₜ = body(sₜ₋₁, xs[t]);
/// the value is every carry stacked, `[T, ..carry]`, or with `last` (for
/// `fold`) the final carry alone. `body` reads the carry as
/// `Local(carry)` and the element as `Local(elem)`; any other name it uses
/// (x, c, parameters, outer locals) is captured from the enclosing body.
#[derive(Clone, Debug)]
pub struct ScanExpr {
    pub init: TExpr,
    pub seq: TExpr,
    pub carry: usize,
    pub elem: usize,
    pub body: TExpr,
    pub last: bool,
}

/// A definition's graph from a model file, with the names its parameters
/// take in the importing module: `params[i]` is read where the graph reads
/// its i-th parameter input (a namespace prefix after `as`).
#[derive(Clone, Debug)]
pub struct ImportedGraph {
    pub graph: crate::ir::Graph,
    /// (name in the model file, name in this module), in graph input order.
    pub params: Vec<(String, String)>,
}

impl ImportedGraph {
    /// The module's name for the graph's parameter `name`.
    pub fn local_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.params
            .iter()
            .find(|(from, _)| from == name)
            .map_or(name, |(_, to)| to.as_str())
    }
}

impl TExpr {
    pub fn as_const(&self) -> Option<&Arc<Tensor>> {
        match &self.kind {
            TKind::Const(t) => Some(t),
            _ => None,
        }
    }

    /// The direct operands.
    pub fn children(&self) -> Vec<&TExpr> {
        match &self.kind {
            TKind::Const(_)
            | TKind::Input
            | TKind::Cond
            | TKind::Param(_)
            | TKind::Imported(_)
            | TKind::Local(_) => vec![],
            TKind::Let(_, v, b) => vec![v, b],
            TKind::Scan(s) => vec![&s.init, &s.seq, &s.body],
            TKind::Unary(_, a)
            | TKind::PowConst(a, _)
            | TKind::Reduce(_, a, _)
            | TKind::Reshape(a)
            | TKind::Transpose(a, _)
            | TKind::Slice(a, ..)
            | TKind::StopGradient(a) => vec![a],
            TKind::Binary(_, a, b) | TKind::MatMul(a, b) => vec![a, b],
            TKind::Where(a, b, c) => vec![a, b, c],
            TKind::LogSumExpN(v) | TKind::Stack(v) | TKind::Concat(v, _) => v.iter().collect(),
            TKind::Call { x, cond, .. } => {
                let mut v = vec![&**x];
                if let Some(c) = cond {
                    v.push(c);
                }
                v
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefKind {
    Energy,
    Model,
}

/// A named argument of a definition.
#[derive(Clone, Debug, PartialEq)]
pub struct ArgInfo {
    pub name: String,
    pub shape: Shape,
}

/// A checked `energy` or `model`.
#[derive(Clone, Debug)]
pub struct DefInfo {
    pub name: String,
    pub kind: DefKind,
    pub input: ArgInfo,
    pub cond: Option<ArgInfo>,
    /// `[]` for energies; the declared shape for models.
    pub output: Shape,
    /// The body, already of shape `output` (an energy of shape `[1]` is reshaped).
    pub body: TExpr,
    /// Full names of the parameters the body reads, inlined calls included,
    /// in first-use order.
    pub params: Vec<String>,
    /// 1 + the deepest chain of definitions this one inlines (bounded by sema).
    pub call_depth: usize,
    /// The body's depth with every call expanded: how deep lowering
    /// recurses (bounded by sema).
    pub inlined_depth: usize,
    /// An upper bound on the operations of the body with every call
    /// expanded (bounded by sema, so that lowering stays small).
    pub inlined_size: usize,
    pub span: Span,
}

/// How a parameter's initial value is drawn (see `Param::initial_value`).
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// Values read from a model file (`use ... from`), row-major.
    Loaded(Arc<[f64]>),
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        lo: f64,
        hi: f64,
    },
    Zeros,
    Glorot,
    /// Neural-primitive weights: N(0, 1/fan_in), fan_in = shape[0].
    LeCun,
    /// The same for a weight stored output-first (`conv2d`'s [out, C·k·k]):
    /// fan_in = the product of the axes after the first.
    LeCunOutFirst,
}

/// A learnable parameter: explicit (`param W: [..] ~ init`) or created by a
/// neural primitive call site (`net.mlp0.w1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub shape: Shape,
    pub init: Init,
    /// The `param` item or primitive call that created it.
    pub span: Span,
}

impl Param {
    /// The SM64 seed: the 64-bit FNV-1a hash of the full name.
    pub fn seed(&self) -> u64 {
        rng::fnv1a(&self.name)
    }

    /// Deterministic initial values (row-major), a function of name, shape and init only.
    pub fn initial_value(&self) -> Vec<f64> {
        let n: usize = self.shape.iter().product();
        let seed = self.seed();
        let (fan_in, fan_out) = fans(&self.shape);
        match self.init {
            Init::Loaded(ref v) => v.to_vec(),
            Init::Zeros => vec![0.0; n],
            Init::Normal { mean, std } => rng::normal(seed, n)
                .into_iter()
                .map(|z| mean + std * z)
                .collect(),
            Init::Uniform { lo, hi } => rng::uniform(seed, n)
                .into_iter()
                .map(|u| lo + (hi - lo) * u)
                .collect(),
            Init::Glorot => {
                let l = (6.0 / (fan_in + fan_out) as f64).sqrt();
                rng::uniform(seed, n)
                    .into_iter()
                    .map(|u| -l + 2.0 * l * u)
                    .collect()
            }
            Init::LeCun => {
                let s = 1.0 / (fan_in as f64).sqrt();
                rng::normal(seed, n).into_iter().map(|z| s * z).collect()
            }
            Init::LeCunOutFirst => {
                let fan_in: usize = self.shape.iter().skip(1).product();
                let s = 1.0 / (fan_in.max(1) as f64).sqrt();
                rng::normal(seed, n).into_iter().map(|z| s * z).collect()
            }
        }
    }
}

/// Fan-in and fan-out of a weight shape: `[]` → (1, 1); `[n]` → (n, n);
/// `[.., a, b]` → (a·r, b·r) with r the product of the leading dimensions.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [lead @ .., a, b] => {
            let r: usize = lead.iter().product();
            (a * r, b * r)
        }
    }
}

/// A named compile-time constant.
#[derive(Clone, Debug)]
pub struct ConstDef {
    pub name: String,
    pub value: Arc<Tensor>,
    pub span: Span,
}

/// A named string: `const path = "data/y.csv"`, usable wherever a string
/// literal is (file paths of `load`, `csv`, `save`, ..., keys, `print`).
#[derive(Clone, Debug)]
pub struct StrConst {
    pub name: String,
    pub value: String,
    pub span: Span,
}

/// A top-level statement (`print(..)`, `let s = sample(..)`, `data d = ..`).
#[derive(Clone, Debug)]
pub struct Statement {
    /// The statement name (`print`, `sample`, ...); for `let`/`data`, the called function.
    pub name: String,
    /// `let NAME =` / `data NAME =` binding, if any.
    pub binding: Option<String>,
    /// Checked arguments, for statements whose arguments are tensor
    /// expressions (`print`, whose string-literal arguments are skipped here
    /// and read from `call`); `None` for runner statements, which their
    /// owners check.
    pub args: Option<Vec<TExpr>>,
    /// The original call, for runners that interpret their own arguments.
    pub call: ast::Expr,
    pub span: Span,
}

/// The result of semantic analysis of one program.
#[derive(Clone, Debug, Default)]
pub struct Module {
    pub consts: Vec<ConstDef>,
    /// String constants, in source order.
    pub strings: Vec<StrConst>,
    /// All parameters (explicit and primitive-created), in creation order.
    pub params: Vec<Param>,
    pub defs: Vec<DefInfo>,
    pub statements: Vec<Statement>,
    /// The folder relative data paths were resolved against.
    pub base_dir: PathBuf,
    /// The files analysis read (`load`, `use .. from`), resolved against
    /// `base_dir`: a script's outputs may not overwrite them.
    pub inputs: Vec<PathBuf>,
}

impl Module {
    pub fn def(&self, name: &str) -> Option<&DefInfo> {
        self.defs.iter().find(|d| d.name == name)
    }
    pub fn def_index(&self, name: &str) -> Option<usize> {
        self.defs.iter().position(|d| d.name == name)
    }
    /// The string constant `name` defined before byte `before` of the source.
    pub fn string(&self, name: &str, before: u32) -> Option<&str> {
        self.strings
            .iter()
            .find(|c| c.name == name && c.span.start < before)
            .map(|c| c.value.as_str())
    }
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
    pub fn constant(&self, name: &str) -> Option<&Arc<Tensor>> {
        self.consts
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.value)
    }
    /// Initial values of the named parameters, concatenated in order.
    pub fn initial_values(&self, names: &[String]) -> Vec<Vec<f64>> {
        names
            .iter()
            .map(|n| self.param(n).map(Param::initial_value).unwrap_or_default())
            .collect()
    }
}

/// How analysis folds a closed constant expression (no inputs, parameters or
/// calls; at most `MAX_FOLD_COST` work) to its value. The caller supplies it:
/// `pipeline::analyze` passes `lower::eval_const`, which lowers the sub-tree
/// and runs the reference interpreter, so constants and kernels share one
/// semantics while `sema` does not depend on `lower`.
pub type ConstEval = fn(&TExpr) -> Tensor;

/// Analyses a parsed program, folding constants with `eval_const`. Relative
/// `load` paths resolve against `base_dir`. Returns every diagnostic it
/// reasonably can, in source order.
pub fn analyze(
    program: &ast::Program,
    base_dir: &Path,
    eval_const: ConstEval,
) -> Result<Module, Vec<Diagnostic>> {
    with_big_stack(|| check::analyze(program, base_dir, eval_const))
}

/// `[2, 3]`, `[]` for scalars.
pub fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// Used by callers that fold: whether a value is small enough to build at compile time.
pub const MAX_CONST_ELEMS: usize = 1 << 24;

/// The largest number of elements any static shape may hold.
pub const MAX_ELEMS: usize = 1 << 31;

/// A shared map from names to what they denote, used by `check`.
#[derive(Clone, Debug)]
pub(crate) enum Symbol {
    Const(usize),
    /// A string constant (`Module::strings`).
    Str(usize),
    Param(usize),
    Def(usize),
    /// `data`/`let` names: run-time values, not tensors.
    RunValue(Option<usize>),
}
