//! The abstract syntax tree: what the parser produces and `sema` consumes.
//! Every node carries the byte span of its source text so that any later
//! stage can point a diagnostic at it. The AST is per-sample: it never
//! mentions the batch axis.

use crate::diag::Span;

/// A whole `.ebm` script: items in source order.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemKind {
    /// `const NAME = expr`: a constant tensor evaluated at compile time.
    Const { name: Ident, value: Expr },
    /// `param NAME: [d0, d1] ~ init`: an explicit learnable parameter.
    Param {
        name: Ident,
        shape: ShapeAnn,
        init: Expr,
    },
    /// `energy NAME(x: [..] | c: [..]) = expr`: a per-sample scalar energy.
    Energy(Def),
    /// `model NAME(x: [..] | c: [..]) -> [..] = expr`: a per-sample tensor-valued network.
    Model { def: Def, output: ShapeAnn },
    /// `data NAME = expr`: a data set (e.g. `toy(..)`, `csv(..)`).
    Data { name: Ident, value: Expr },
    /// `let NAME = expr`: a run-time value (samples, trained models, ...).
    Let { name: Ident, value: Expr },
    /// A bare statement such as `print(..)`, `plot(..)`, `train(..)`.
    Expr(Expr),
    /// `use a, b as b2 from "model.ebmc"`: definitions from a model file.
    Use {
        names: Vec<UseName>,
        path: String,
        path_span: Span,
    },
}

/// One imported definition: its name in the model file and, after `as`,
/// the name (and parameter namespace) it takes in this script.
#[derive(Clone, Debug, PartialEq)]
pub struct UseName {
    pub name: Ident,
    pub alias: Option<Ident>,
}

impl UseName {
    /// The name the definition goes by in the script.
    pub fn local(&self) -> &Ident {
        self.alias.as_ref().unwrap_or(&self.name)
    }
}

/// The shared shape of `energy` and `model` definitions.
#[derive(Clone, Debug, PartialEq)]
pub struct Def {
    pub name: Ident,
    /// The sample argument (`x: [2]`).
    pub input: Arg,
    /// Optional conditioning argument after `|` (`c: [4]`).
    pub cond: Option<Arg>,
    pub body: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Ident,
    pub shape: ShapeAnn,
}

/// A shape annotation `[d0, d1, ...]`; `[]` is a scalar. Each dimension is an
/// expression that `sema` must evaluate to a positive integer (a literal or a const).
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeAnn {
    pub dims: Vec<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(f64),
    Str(String),
    Name(String),
    /// `[a, b, 2*c]`; nested literals make matrices.
    Tensor(Vec<Expr>),
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `f(a, b, key = v)` or `E(x | c)`.
    Call {
        callee: Ident,
        args: Vec<CallArg>,
        cond: Option<Box<Expr>>,
    },
    /// `x[0]`, `x[1:3]`, `W[:, 0]`, `f(x)[y]`.
    Index {
        base: Box<Expr>,
        indices: Vec<IndexItem>,
    },
    /// `let name = value in body`: `name` is bound to `value` in `body` only.
    Let {
        name: Ident,
        value: Box<Expr>,
        body: Box<Expr>,
    },
    /// `(s, xt) => body`: a step function; only `scan`/`fold` take one.
    Lambda {
        params: Vec<Ident>,
        body: Box<Expr>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// Arithmetic `-e`.
    Neg,
    /// Composition `not e` (= −E).
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `^`, right-associative, binds tighter than unary minus.
    Pow,
    /// `@` matrix product.
    MatMul,
    Lt,
    Le,
    Gt,
    Ge,
    /// Composition `a and b` (= E_a + E_b).
    And,
    /// Composition `a or b` (= −logsumexp(−E_a, −E_b)).
    Or,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Pow => "^",
            BinaryOp::MatMul => "@",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum CallArg {
    Positional(Expr),
    Keyword { name: Ident, value: Expr },
}

impl CallArg {
    pub fn span(&self) -> Span {
        match self {
            CallArg::Positional(e) => e.span,
            CallArg::Keyword { name, value } => name.span.to(value.span),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum IndexItem {
    /// `x[i]`: selects one element along the axis and removes it.
    At(Expr),
    /// `x[a:b]`, `x[:b]`, `x[a:]`, `x[:]`, `x[a:b:s]`, `x[::s]`: a range,
    /// every `step`-th element (1 when omitted).
    Range {
        start: Option<Expr>,
        end: Option<Expr>,
        step: Option<Expr>,
        span: Span,
    },
}
