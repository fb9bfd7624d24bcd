//! Graph outputs as readable math, in the ebm language's syntax where it has
//! one (`(x - mu) / s^2`, `sum(t1, axis = 1)`, `x[0]`, `W @ v`): what the
//! REPL's `:grad` prints. This module owns that rendering: which nodes a
//! reader does not need to see (broadcasts, `stop_gradient`, and reshapes
//! under elementwise operations, where the language broadcasts anyway),
//! which subexpressions are shared and so named once (`t1 = x - mu`), and
//! infix output with the language's precedence and the fewest parentheses.
//! It is for people: the text reads like the energy one would have written,
//! and some shape-only operations are dropped, so it need not re-parse to
//! the same graph (the tests check that it does where nothing was dropped).

use std::fmt::Write as _;

use super::{BinaryOp, Graph, NodeId, Op, UnaryOp, numel};
use crate::diag::shortest;

#[cfg(test)]
mod tests;

/// An expression nested deeper than this is cut into named lines: a reader
/// cannot follow it anyway, and building and printing recurse once per level.
const MAX_INLINE_DEPTH: usize = 48;

/// Constants with at most this many elements print as literals.
const MAX_LITERAL: usize = 4;

/// Concatenations of scalars and fills up to this length print as `[a, 0, b]`.
const MAX_VECTOR_LITERAL: usize = 8;

/// Readable math for the graph outputs named in `outputs` (in that order):
/// lines `tK = expr` for shared subexpressions (in topological order,
/// numbered t1, t2, … by first appearance), then one line `LABEL = expr`
/// per output, where LABEL is given by the caller. A name that is not an
/// output of `g` prints `LABEL = <no output NAME>`.
pub fn math(g: &Graph, outputs: &[(&str, &str)]) -> String {
    let view = View::new(g);
    let roots: Vec<Option<NodeId>> = outputs
        .iter()
        .map(|(name, _)| g.output(name).map(|n| view.canon(n)))
        .collect();
    let p = Printer::new(view, &roots);
    let mut out = String::new();
    for &id in &p.shared {
        let _ = writeln!(out, "{} = {}", p.name(id), render(&p.build(id)));
    }
    for ((name, label), root) in outputs.iter().zip(&roots) {
        let _ = match root {
            Some(r) => writeln!(out, "{label} = {}", render(&p.operand(*r))),
            None => writeln!(out, "{label} = <no output {name}>"),
        };
    }
    out
}

// ----- What a reader sees of the graph -----

/// The graph as a reader sees it: which node stands for which, and what
/// each printed node prints inside itself.
struct View<'g> {
    g: &'g Graph,
    /// The node a reader sees for each node: broadcasts, `stop_gradient`
    /// (equal forward) and reshapes other than indexing are looked through.
    canon: Vec<NodeId>,
}

impl<'g> View<'g> {
    fn new(g: &'g Graph) -> View<'g> {
        // Operands precede users: one forward pass resolves every chain.
        let mut canon: Vec<NodeId> = Vec::with_capacity(g.len());
        for id in g.ids() {
            let node = g.node(id);
            let seen = match node.op {
                Op::Broadcast | Op::StopGradient => canon[node.args[0].index()],
                Op::Reshape if indexing(g, id).is_none() => canon[node.args[0].index()],
                _ => id,
            };
            canon.push(seen);
        }
        View { g, canon }
    }

    fn canon(&self, id: NodeId) -> NodeId {
        self.canon[id.index()]
    }

    /// The value of a constant scalar spread over a tensor (a broadcast,
    /// or a reshape of one), if `id` is one.
    fn fill_value(&self, id: NodeId) -> Option<f64> {
        let spread = matches!(
            self.g.node(id).op,
            Op::Broadcast | Op::Reshape | Op::StopGradient
        );
        match self.g.node(self.canon(id)).op {
            Op::Scalar(v) if spread && !self.g.shape(id).is_empty() => Some(v.get()),
            _ => None,
        }
    }

    /// The nodes printed inside `id`'s expression, in the order `form` takes them.
    fn children(&self, id: NodeId) -> Vec<NodeId> {
        let node = self.g.node(id);
        if self.fill_value(id).is_some() {
            return Vec::new();
        }
        let operand = |a: NodeId| {
            if self.keeps_shape(id, a) {
                a
            } else {
                self.canon(a)
            }
        };
        match node.op {
            Op::Input(_) | Op::Scalar(_) | Op::Const(_) => Vec::new(),
            Op::Slice { .. } | Op::Reshape => match indexing(self.g, id) {
                Some(ix) => vec![operand(ix.base)],
                None => vec![self.canon(node.args[0])],
            },
            _ => node.args.iter().map(|&a| operand(a)).collect(),
        }
    }

    /// Whether `user` shows its operand `a`'s own shape: a constant spread
    /// over a tensor or a reshape that `canon` would look through. Elementwise
    /// operands broadcast in the language too, so there a spread constant
    /// reads as the number (`4 * t1`) and a reshape is noise; elsewhere the
    /// shape decides what is computed: `x @ ones([3])`, not `x @ 1`;
    /// `reshape(x, [2, 1]) @ reshape(y, [1, 3])`, an outer product; axes
    /// that count in the reshaped tensor.
    fn keeps_shape(&self, user: NodeId, a: NodeId) -> bool {
        let g = self.g;
        let node = g.node(user);
        let full = |axes: super::Axes| axes.iter().count() == g.shape(a).len();
        let shaped = match node.op {
            Op::Unary(_) | Op::PowConst(_) | Op::Binary(_) | Op::Select => false,
            Op::Concat { .. } => !self.is_vector_literal(user),
            _ => true,
        };
        let reshape = g.node(a).op == Op::Reshape && self.canon(a) != a;
        let shape_free = match node.op {
            // Every element in, one out: the arrangement does not matter.
            Op::Sum(axes) | Op::Max(axes) => full(axes),
            // The language's `concat` takes a scalar as `[1]`.
            Op::Concat { .. } => g.shape(self.canon(a)).is_empty(),
            _ => false,
        };
        shaped && (self.fill_value(a).is_some() || (reshape && !shape_free))
    }

    /// A short rank-1 concatenation of scalars (each reshaped or broadcast
    /// to one element) and constant fills: the language's `[a, 0, 0, b]`.
    fn is_vector_literal(&self, id: NodeId) -> bool {
        let g = self.g;
        let node = g.node(id);
        let piece = |&a: &NodeId| {
            (g.shape(a) == [1] && g.shape(self.canon(a)).is_empty()) || self.fill_value(a).is_some()
        };
        node.shape.len() == 1 && node.shape[0] <= MAX_VECTOR_LITERAL && node.args.iter().all(piece)
    }
}

/// One index item of `x[..]`, for one axis of the indexed value.
#[derive(Clone, Debug, PartialEq)]
enum Item {
    /// `:`, the whole axis.
    All,
    /// `i`: one element, the axis removed.
    At(usize),
    /// `a:b` or `a:b:s`, already written.
    Range(String),
}

/// A chain of slices on distinct axes of `base`, perhaps with a reshape on
/// top that drops the axes sliced to one element: `x[1:]`, `W[:, 2]`.
struct Indexing {
    base: NodeId,
    items: Vec<Item>,
}

/// `id` as indexing, if it is a slice, or a reshape that removes exactly
/// the unit axes of the slices below it (how the language lowers `x[i]`).
fn indexing(g: &Graph, id: NodeId) -> Option<Indexing> {
    let node = g.node(id);
    let top = match node.op {
        Op::Slice { .. } => id,
        Op::Reshape => node.args[0],
        _ => return None,
    };
    // (axis, start, step, length), outermost first.
    let mut slices: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut base = top;
    while let Op::Slice { axis, start, step } = g.node(base).op {
        let axis = axis as usize;
        if slices.iter().any(|s| s.0 == axis) {
            break; // a slice of a slice on one axis prints as two: `x[1:][::2]`
        }
        slices.push((axis, start as usize, step as usize, g.shape(base)[axis]));
        base = g.node(base).args[0];
    }
    if slices.is_empty() {
        return None;
    }
    let dims = g.shape(base);
    let mut items = vec![Item::All; dims.len()];
    for &(axis, start, step, len) in &slices {
        items[axis] = range_item(start, step, len, dims[axis]);
    }
    if node.op == Op::Reshape {
        let unit = |a: usize| slices.iter().any(|s| s.0 == a && s.3 == 1);
        let kept: Vec<usize> = (0..dims.len())
            .filter(|&a| !unit(a))
            .map(|a| g.shape(top)[a])
            .collect();
        if kept != node.shape {
            return None;
        }
        for &(axis, start, _, len) in &slices {
            if len == 1 {
                items[axis] = Item::At(start);
            }
        }
    }
    while items.last() == Some(&Item::All) {
        items.pop();
    }
    Some(Indexing { base, items })
}

/// NumPy's `start:end:step` for `len` elements of an axis of `dim`, with
/// the parts a reader can leave out left out (`1:`, `:3`, `::2`).
fn range_item(start: usize, step: usize, len: usize, dim: usize) -> Item {
    let first = if start == 0 {
        String::new()
    } else {
        start.to_string()
    };
    // Past the end, the end bound is implied; else the tightest one.
    let reaches_end = start.saturating_add(len.saturating_mul(step)) >= dim;
    let end = if reaches_end {
        String::new()
    } else {
        (start + (len - 1) * step + 1).to_string()
    };
    let step = if step == 1 {
        String::new()
    } else {
        format!(":{step}")
    };
    Item::Range(format!("{first}:{end}{step}"))
}

// ----- Which nodes get their own line -----

struct Printer<'g> {
    view: View<'g>,
    /// Each node's `View::children`.
    kids: Vec<Vec<NodeId>>,
    /// The line name of each node that gets one (`t1`, …), by node index.
    names: Vec<Option<String>>,
    /// Nodes with their own line, in topological order.
    shared: Vec<NodeId>,
}

impl<'g> Printer<'g> {
    fn new(view: View<'g>, roots: &[Option<NodeId>]) -> Printer<'g> {
        let g = view.g;
        let n = g.len();
        let kids: Vec<Vec<NodeId>> = g.ids().map(|id| view.children(id)).collect();
        // Reachable from the requested outputs, looking only through what is printed.
        let mut reach = vec![false; n];
        for r in roots.iter().flatten() {
            reach[r.index()] = true;
        }
        for i in (0..n).rev() {
            if reach[i] {
                for c in &kids[i] {
                    reach[c.index()] = true;
                }
            }
        }
        // How many times each node would be printed: once per use, but a
        // node with its own line prints its operands once. Users come after
        // their operands, so a backward pass sees every use first.
        let mut uses = vec![0usize; n];
        for r in roots.iter().flatten() {
            uses[r.index()] += 1;
        }
        let mut named = vec![false; n];
        for i in (0..n).rev().filter(|&i| reach[i]) {
            named[i] = uses[i] > 1 && !cheap(g, &kids, i);
            let times = if named[i] { 1 } else { uses[i] };
            for c in &kids[i] {
                uses[c.index()] += times;
            }
        }
        // Too deep to follow (or to recurse over): a line of its own too.
        let mut depth = vec![0usize; n];
        for i in (0..n).filter(|&i| reach[i]) {
            let inline = |c: &NodeId| {
                if named[c.index()] {
                    0
                } else {
                    depth[c.index()]
                }
            };
            depth[i] = 1 + kids[i].iter().map(inline).max().unwrap_or(0);
            named[i] |= depth[i] > MAX_INLINE_DEPTH;
        }
        let prefix = line_prefix(g);
        let mut names = vec![None; n];
        let mut shared = Vec::new();
        for id in g.ids().filter(|id| named[id.index()]) {
            shared.push(id);
            names[id.index()] = Some(format!("{prefix}{}", shared.len()));
        }
        Printer {
            view,
            kids,
            names,
            shared,
        }
    }

    fn name(&self, id: NodeId) -> &str {
        self.names[id.index()].as_deref().unwrap_or("?")
    }

    /// `id` where it is used: its line's name, or its expression inline.
    fn operand(&self, id: NodeId) -> Expr {
        match &self.names[id.index()] {
            Some(name) => Expr::Atom(name.clone()),
            None => self.build(id),
        }
    }

    /// `id`'s own expression, its operands inlined or named.
    fn build(&self, id: NodeId) -> Expr {
        let args = self.kids[id.index()]
            .iter()
            .map(|&c| self.operand(c))
            .collect();
        form(&self.view, id, args)
    }
}

/// Whether node `i` is cheap to repeat, so never named for being shared:
/// inputs, constants and fills (no children), negative numbers, and
/// indexing and reshapes (`x[0]`, `t1[:2]`; their operand is what counts).
fn cheap(g: &Graph, kids: &[Vec<NodeId>], i: usize) -> bool {
    let number = |c: &NodeId| matches!(g.node(*c).op, Op::Scalar(_));
    match g.nodes()[i].op {
        _ if kids[i].is_empty() => true,
        Op::Slice { .. } | Op::Reshape => true,
        Op::Unary(UnaryOp::Neg) => kids[i].iter().all(number),
        _ => false,
    }
}

/// `t`, or `t_`, `t__`, … if an input is already called `t1`-like.
fn line_prefix(g: &Graph) -> String {
    let mut prefix = String::from("t");
    let clashes = |p: &str| {
        g.inputs().iter().any(|i| {
            i.name
                .strip_prefix(p)
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    while clashes(&prefix) {
        prefix.push('_');
    }
    prefix
}

// ----- Nodes as expressions -----

/// A printed expression, before parenthesisation.
#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Num(f64),
    /// Printed as is, binding like a name: names, literals, `<const [4, 2]>`.
    Atom(String),
    Neg(Box<Expr>),
    Infix(Infix, Box<Expr>, Box<Expr>),
    /// `f(args, key = value, ..)`.
    Call(&'static str, Vec<Expr>, Vec<(&'static str, String)>),
    Index(Box<Expr>, Vec<Item>),
    /// A vector literal `[a, b]`.
    List(Vec<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Infix {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
    Gt,
    Ge,
}

/// The expression of node `id` with its children's expressions `args`.
fn form(view: &View, id: NodeId, mut args: Vec<Expr>) -> Expr {
    let g = view.g;
    let node = g.node(id);
    // Verified graphs give every op its operands; `?` keeps a bad one printable.
    let arg = |args: &mut Vec<Expr>| {
        if args.is_empty() {
            Expr::Atom("?".into())
        } else {
            args.remove(0)
        }
    };
    if let Some(v) = view.fill_value(id) {
        return fill(v, &node.shape);
    }
    match node.op {
        Op::Scalar(v) => Expr::Num(v.get()),
        Op::Const(c) => constant(&g.constant(c).shape, &g.constant(c).data),
        Op::Input(i) => Expr::Atom(g.input(i).name.clone()),
        Op::Unary(u) => unary(u, arg(&mut args)),
        Op::PowConst(c) => pow_const(arg(&mut args), c.get()),
        Op::Binary(b) => {
            let a = arg(&mut args);
            binary(b, a, arg(&mut args))
        }
        Op::Select => Expr::Call("where", args, Vec::new()),
        Op::Sum(axes) | Op::Max(axes) => {
            let f = if matches!(node.op, Op::Sum(_)) {
                "sum"
            } else {
                "max"
            };
            let rank = node.args.first().map_or(0, |&a| g.shape(a).len());
            reduce(
                f,
                arg(&mut args),
                axes.iter().filter(|&a| a < rank).collect(),
                rank,
            )
        }
        Op::Slice { .. } | Op::Reshape => match indexing(g, id) {
            Some(ix) => index(arg(&mut args), ix.items),
            // Only reached where the shape matters (`View::children`).
            None => {
                let shape = Expr::Atom(format!("{:?}", node.shape));
                call("reshape", vec![arg(&mut args), shape])
            }
        },
        Op::Transpose(p) => {
            let p = p.as_vec();
            let reversed = p.iter().rev().copied().eq(0..p.len());
            let kw = if reversed {
                Vec::new()
            } else {
                vec![("perm", format!("{p:?}"))]
            };
            Expr::Call("transpose", args, kw)
        }
        Op::Concat { .. } if view.is_vector_literal(id) => vector_literal(g, id, args),
        Op::Concat { axis } => {
            let kw = if axis == 0 {
                Vec::new()
            } else {
                vec![("axis", axis.to_string())]
            };
            Expr::Call("concat", args, kw)
        }
        Op::MatMul => {
            let a = arg(&mut args);
            infix(Infix::MatMul, a, arg(&mut args))
        }
        Op::Scan { reverse, .. } => {
            let kw = if reverse {
                vec![("reverse", "true".to_string())]
            } else {
                Vec::new()
            };
            Expr::Call("scan", args, kw)
        }
        // Looked through by `canon`; only reached if asked for directly.
        Op::Broadcast | Op::StopGradient => arg(&mut args),
    }
}

/// The elements of a vector literal: each piece's expression, a fill's
/// number repeated along its length.
fn vector_literal(g: &Graph, id: NodeId, pieces: Vec<Expr>) -> Expr {
    let lens = g.node(id).args.iter().map(|&a| g.shape(a)[0]);
    let elements = pieces
        .into_iter()
        .zip(lens)
        .flat_map(|(e, n)| std::iter::repeat_n(e, n))
        .collect();
    Expr::List(elements)
}

fn infix(op: Infix, a: Expr, b: Expr) -> Expr {
    Expr::Infix(op, Box::new(a), Box::new(b))
}

fn call(f: &'static str, args: Vec<Expr>) -> Expr {
    Expr::Call(f, args, Vec::new())
}

/// `-a`, the minus on the first factor of a product: `-(2 * x)` is
/// `-2 * x`, and `-(-a * b)` is `a * b` (negation is exact, so this is
/// the same number).
fn neg(a: Expr) -> Expr {
    match a {
        Expr::Num(v) => Expr::Num(-v),
        Expr::Neg(inner) => *inner,
        Expr::Infix(op @ (Infix::Mul | Infix::Div | Infix::MatMul), l, r) => {
            Expr::Infix(op, Box::new(neg(*l)), r)
        }
        a => Expr::Neg(Box::new(a)),
    }
}

/// Whether `e` prints with a leading minus that `neg` removes.
fn is_negated(e: &Expr) -> bool {
    match e {
        Expr::Neg(_) => true,
        Expr::Num(v) => *v < 0.0,
        Expr::Infix(Infix::Mul | Infix::Div | Infix::MatMul, l, _) => is_negated(l),
        _ => false,
    }
}

/// The rewrites that make sums and products read as written: `a + -b * c`
/// is `a - b * c`, `-1 * a` is `-a`, `a * (1 / b)` is `a / b`.
fn binary(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    match op {
        BinaryOp::Add if is_negated(&b) => infix(Infix::Sub, a, neg(b)),
        BinaryOp::Add => infix(Infix::Add, a, b),
        BinaryOp::Sub if is_negated(&b) => infix(Infix::Add, a, neg(b)),
        BinaryOp::Sub => infix(Infix::Sub, a, b),
        BinaryOp::Mul if a == Expr::Num(-1.0) => neg(b),
        BinaryOp::Mul if b == Expr::Num(-1.0) => neg(a),
        BinaryOp::Mul => match b {
            Expr::Infix(Infix::Div, one, d) if *one == Expr::Num(1.0) => infix(Infix::Div, a, *d),
            b => infix(Infix::Mul, a, b),
        },
        BinaryOp::Div => infix(Infix::Div, a, b),
        BinaryOp::Pow => infix(Infix::Pow, a, b),
        BinaryOp::Max => call("maximum", vec![a, b]),
        BinaryOp::Min => call("minimum", vec![a, b]),
        BinaryOp::Gt => infix(Infix::Gt, a, b),
        BinaryOp::Ge => infix(Infix::Ge, a, b),
    }
}

fn unary(op: UnaryOp, a: Expr) -> Expr {
    let f = match op {
        UnaryOp::Neg => return neg(a),
        // The language has no step function; `where` says the same.
        UnaryOp::Step => {
            let cond = infix(Infix::Gt, a, Expr::Num(0.0));
            return call("where", vec![cond, Expr::Num(1.0), Expr::Num(0.0)]);
        }
        UnaryOp::Exp => "exp",
        UnaryOp::Log => "log",
        UnaryOp::Log1p => "log1p",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Abs => "abs",
        UnaryOp::Sign => "sign",
        UnaryOp::Sin => "sin",
        UnaryOp::Cos => "cos",
        UnaryOp::Tanh => "tanh",
        UnaryOp::Sigmoid => "sigmoid",
        UnaryOp::Softplus => "softplus",
    };
    call(f, vec![a])
}

fn pow_const(a: Expr, c: f64) -> Expr {
    let one = || Expr::Num(1.0);
    if c == 0.5 {
        call("sqrt", vec![a])
    } else if c == -0.5 {
        infix(Infix::Div, one(), call("sqrt", vec![a]))
    } else if c == -1.0 {
        infix(Infix::Div, one(), a)
    } else {
        infix(Infix::Pow, a, Expr::Num(c))
    }
}

/// `sum(a)` over every axis, else one `sum(a, axis = k)` per axis, the
/// highest innermost so the lower axes keep their numbers (the language
/// reduces one axis at a time).
fn reduce(f: &'static str, a: Expr, axes: Vec<usize>, rank: usize) -> Expr {
    if axes.len() == rank {
        return call(f, vec![a]);
    }
    axes.into_iter().rev().fold(a, |e, axis| {
        Expr::Call(f, vec![e], vec![("axis", axis.to_string())])
    })
}

/// `base[items]`; indexing an index (`x[0][1]`) merges into `x[0, 1]`.
fn index(base: Expr, items: Vec<Item>) -> Expr {
    match base {
        Expr::Index(inner, mut first) if first.iter().all(|i| matches!(i, Item::At(_))) => {
            first.extend(items);
            Expr::Index(inner, first)
        }
        base => Expr::Index(Box::new(base), items),
    }
}

/// `v` spread over `shape`: `zeros([2, 3])`, `ones([3])`, `0.5 * ones([3])`.
fn fill(v: f64, shape: &[usize]) -> Expr {
    let shape = Expr::Atom(format!("{shape:?}"));
    match v {
        0.0 if v.is_sign_positive() => call("zeros", vec![shape]),
        1.0 => call("ones", vec![shape]),
        v => infix(Infix::Mul, Expr::Num(v), call("ones", vec![shape])),
    }
}

/// A small constant as a literal (`[1, 2]`, nested for matrices), a larger
/// one as its shape.
fn constant(shape: &[usize], data: &[f64]) -> Expr {
    let n = numel(shape);
    if n == 0 || n > MAX_LITERAL || data.len() != n {
        return Expr::Atom(format!("<const {shape:?}>"));
    }
    Expr::Atom(literal(shape, data))
}

fn literal(shape: &[usize], data: &[f64]) -> String {
    match shape.split_first() {
        None => shortest(data[0]),
        Some((&rows, rest)) => {
            let size = numel(rest);
            let rows: Vec<String> = (0..rows)
                .map(|r| literal(rest, &data[r * size..(r + 1) * size]))
                .collect();
            format!("[{}]", rows.join(", "))
        }
    }
}

// ----- Expressions as text -----

/// Binding strength, loosest first, as in the language's precedence table.
const CMP: u8 = 1;
const ADD: u8 = 2;
const MUL: u8 = 3;
const NEG: u8 = 4;
const POW: u8 = 5;
const ATOM: u8 = 6;

impl Infix {
    fn symbol(self) -> &'static str {
        match self {
            Infix::Add => " + ",
            Infix::Sub => " - ",
            Infix::Mul => " * ",
            Infix::Div => " / ",
            Infix::MatMul => " @ ",
            Infix::Pow => "^",
            Infix::Gt => " > ",
            Infix::Ge => " >= ",
        }
    }

    fn level(self) -> u8 {
        match self {
            Infix::Add | Infix::Sub => ADD,
            Infix::Mul | Infix::Div | Infix::MatMul => MUL,
            Infix::Pow => POW,
            Infix::Gt | Infix::Ge => CMP,
        }
    }

    /// The weakest operand each side takes without parentheses. Left-
    /// associative operators need a tighter right operand (`a - (b - c)`);
    /// `^` takes only atoms, so `-x^2`, `(-x)^2` and `2^(x^2)` are unambiguous
    /// to a reader who does not know its associativity.
    fn operand_levels(self) -> (u8, u8) {
        match self {
            Infix::Add | Infix::Sub => (ADD, MUL),
            Infix::Mul | Infix::Div | Infix::MatMul => (MUL, NEG),
            Infix::Pow => (ATOM, ATOM),
            Infix::Gt | Infix::Ge => (ADD, ADD),
        }
    }
}

fn level(e: &Expr) -> u8 {
    match e {
        Expr::Num(v) if shortest(*v).starts_with('-') => NEG,
        Expr::Neg(_) => NEG,
        Expr::Infix(op, ..) => op.level(),
        _ => ATOM,
    }
}

fn render(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e);
    out
}

fn write_expr(out: &mut String, e: &Expr) {
    match e {
        Expr::Num(v) => out.push_str(&shortest(*v)),
        Expr::Atom(s) => out.push_str(s),
        Expr::Neg(a) => {
            out.push('-');
            write_operand(out, a, POW, false);
        }
        Expr::Infix(op, a, b) => {
            let (left, right) = op.operand_levels();
            write_operand(out, a, left, false);
            out.push_str(op.symbol());
            write_operand(out, b, right, true);
        }
        Expr::Call(f, args, kw) => {
            out.push_str(f);
            out.push('(');
            write_list(out, args);
            for (k, v) in kw {
                let _ = write!(out, ", {k} = {v}");
            }
            out.push(')');
        }
        Expr::Index(base, items) => {
            write_operand(out, base, ATOM, false);
            let items: Vec<String> = items.iter().map(item_text).collect();
            let _ = write!(out, "[{}]", items.join(", "));
        }
        Expr::List(xs) => {
            out.push('[');
            write_list(out, xs);
            out.push(']');
        }
    }
}

fn write_list(out: &mut String, xs: &[Expr]) {
    for (k, x) in xs.iter().enumerate() {
        if k > 0 {
            out.push_str(", ");
        }
        write_expr(out, x);
    }
}

/// `e` as an operand that needs at least binding `min`. A right operand
/// that starts with a minus is parenthesised too: `a * (-b)`, not `a * -b`.
fn write_operand(out: &mut String, e: &Expr, min: u8, right: bool) {
    let text = render(e);
    if level(e) < min || (right && text.starts_with('-')) {
        let _ = write!(out, "({text})");
    } else {
        out.push_str(&text);
    }
}

fn item_text(item: &Item) -> String {
    match item {
        Item::All => ":".into(),
        Item::At(i) => i.to_string(),
        Item::Range(r) => r.clone(),
    }
}
