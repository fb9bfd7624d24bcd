//! Lowering: typed definitions (`sema::TExpr`) to the tensor IR.
//!
//! `lower(module, name)` builds one graph per definition. Its inputs are `x`
//! (sample), `c` (sample, conditional definitions only) and every parameter
//! the body reads (shared, named by full name, in first-use order); its one
//! output is `energy` (scalar) or `out` (the model's shape), per sample.
//! Calls of other definitions are inlined with the callee's `x`/`c` bound to
//! the argument nodes, so parameters of a definition inlined twice are the
//! same graph inputs (shared). Composite elementwise functions are decomposed
//! into IR primitives here; see `elem`.

use std::collections::HashMap;

use crate::diag::{Diagnostic, Span};
use crate::ir::{Axes, BatchReduce, BinaryOp, Graph, InputKind, NodeId, UnaryOp, interp};
use crate::sema::{DefInfo, DefKind, Elem, Module, Reduce, ScanExpr, TExpr, TKind, Tensor};

/// Lowers the definition `name` of `module` to a graph.
pub fn lower(module: &Module, name: &str) -> Result<Graph, Diagnostic> {
    let Some(def) = module.def(name) else {
        let hint = crate::diag::suggest(name, module.defs.iter().map(|d| d.name.as_str()));
        let mut d = Diagnostic::new(
            "E0220",
            Span::default(),
            format!("expected the name of an energy or model, found `{name}`"),
        );
        if let Some(h) = hint {
            d = d.with_help(format!("did you mean `{h}`?"));
        }
        return Err(d);
    };
    Ok(crate::sema::with_big_stack(|| lower_def(&module.defs, def)))
}

/// Lowers the definitions `names` (all of them when empty), each taking x
/// in the data's coordinates when `scale` is given (a model file's
/// graphs): what a model file holds. A name that is not a definition is
/// an error; `artifact::Artifact::new` refuses one named twice.
pub fn lower_all(
    module: &Module,
    names: &[String],
    scale: Option<&crate::artifact::Scale>,
) -> Result<Vec<Graph>, Diagnostic> {
    let names: Vec<&str> = if names.is_empty() {
        module.defs.iter().map(|d| d.name.as_str()).collect()
    } else {
        names.iter().map(String::as_str).collect()
    };
    let mut graphs: Vec<Graph> = Vec::with_capacity(names.len());
    for name in names {
        let g = lower(module, name)?;
        graphs.push(match scale {
            Some(s) => crate::artifact::scaled_input(&g, s)
                .map_err(|m| Diagnostic::new("E0220", Span::default(), m))?,
            None => g,
        });
    }
    Ok(graphs)
}

/// Lowers one definition given the definitions it may call.
pub fn lower_def(defs: &[DefInfo], def: &DefInfo) -> Graph {
    lower_def_traced(defs, def, None)
}

/// `lower` that also returns, for the nodes of the definition's own body
/// (not the bodies of the definitions it calls), the source span of the
/// outermost expression each node computes: how an IR-level analysis
/// (`lint`) points back into the source.
pub fn lower_traced(module: &Module, name: &str) -> Option<(Graph, Vec<(NodeId, Span)>)> {
    let def = module.def(name)?;
    Some(crate::sema::with_big_stack(|| {
        let mut trace = Vec::new();
        let g = lower_def_traced(&module.defs, def, Some(&mut trace));
        (g, trace)
    }))
}

fn lower_def_traced(
    defs: &[DefInfo],
    def: &DefInfo,
    trace: Option<&mut Vec<(NodeId, Span)>>,
) -> Graph {
    let mut g = Graph::new(def.name.clone());
    // Sample inputs are always `x` and `c`, whatever the user called them:
    // kernels and runners bind them by these names.
    let x = g.input_node("x", def.input.shape.clone(), InputKind::Sample);
    let c = def
        .cond
        .as_ref()
        .map(|c| g.input_node("c", c.shape.clone(), InputKind::Sample));
    let mut l = Lowerer::new(&mut g, defs, Env::bound(Some(x), c));
    l.trace = trace;
    let out = l.expr(&def.body);
    let (name, out) = match def.kind {
        DefKind::Energy => ("energy", l.g.reshape(out, &[])),
        DefKind::Model => ("out", out),
    };
    g.add_output(name, out, BatchReduce::PerSample);
    g
}

/// Lowers a closed expression (no `x`/`c`; parameters become shared inputs)
/// to a graph with one output `value`. Used by `script` and constant folding.
pub fn lower_expr(defs: &[DefInfo], e: &TExpr) -> Graph {
    let mut g = Graph::new("expr");
    let mut l = Lowerer::new(&mut g, defs, Env::bound(None, None));
    let out = l.expr(e);
    g.add_output("value", out, BatchReduce::PerSample);
    g
}

/// Evaluates a constant expression (no inputs, parameters or calls) in f64.
pub fn eval_const(e: &TExpr) -> Tensor {
    let g = lower_expr(&[], e);
    // invariant: sema folds only closed constant expressions (no x, c or parameters).
    let mut out = interp::eval::<f64>(&g, &[], 1).expect("a closed graph has no inputs");
    Tensor::new(e.shape.clone(), out.swap_remove(0))
}

/// Evaluates a closed expression with parameters at the given values
/// (`params` maps full names to row-major data).
pub fn eval_expr(
    defs: &[DefInfo],
    e: &TExpr,
    param: &dyn Fn(&str) -> Option<Vec<f64>>,
) -> Result<Tensor, String> {
    let g = crate::sema::with_big_stack(|| lower_expr(defs, e));
    let mut values = Vec::new();
    for input in g.inputs() {
        match param(&input.name) {
            Some(v) => values.push(v),
            None => return Err(format!("no value for parameter `{}`", input.name)),
        }
    }
    let data: Vec<&[f64]> = values.iter().map(|v| v.as_slice()).collect();
    let mut out = interp::eval::<f64>(&g, &data, 1)?;
    Ok(Tensor::new(e.shape.clone(), out.swap_remove(0)))
}

/// Where the current body's `x` and `c` come from.
#[derive(Clone, Copy)]
struct Env {
    x: Arg,
    c: Arg,
}

#[derive(Clone, Copy, PartialEq)]
enum Arg {
    Node(NodeId),
    /// A step body reading the enclosing body's argument: captured on use.
    Outer,
    Absent,
}

impl Env {
    fn bound(x: Option<NodeId>, c: Option<NodeId>) -> Env {
        let arg = |n: Option<NodeId>| n.map_or(Arg::Absent, Arg::Node);
        Env {
            x: arg(x),
            c: arg(c),
        }
    }
}

/// A value a step body reads from the body around it.
#[derive(Clone, Debug, PartialEq)]
enum Outer {
    X,
    C,
    Param(String),
    Local(usize),
}

struct Lowerer<'a> {
    g: &'a mut Graph,
    defs: &'a [DefInfo],
    env: Env,
    /// `let` values and step parameters in scope, by slot.
    locals: HashMap<usize, NodeId>,
    /// In a step body: what it captured (in input order after the carry
    /// and the element) and the input node that reads each.
    captures: Option<Vec<(Outer, NodeId)>>,
    /// Inlined calls already lowered, by (definition, x node, c node): with
    /// hash-consing this keeps repeated calls (and chains of definitions
    /// that call each other twice) linear instead of exponential.
    calls: HashMap<(usize, NodeId, Option<NodeId>), NodeId>,
    /// (node, span) of every expression of the definition's own body, in
    /// the order they finish (an outer expression after its operands).
    trace: Option<&'a mut Vec<(NodeId, Span)>>,
    /// How many calls deep the expression being lowered is.
    depth: usize,
}

impl<'a> Lowerer<'a> {
    fn new(g: &'a mut Graph, defs: &'a [DefInfo], env: Env) -> Lowerer<'a> {
        Lowerer {
            g,
            defs,
            env,
            locals: HashMap::new(),
            captures: None,
            calls: HashMap::new(),
            trace: None,
            depth: 0,
        }
    }

    /// The node of a value from outside the step body being lowered: a
    /// new body input the first time (the scan passes the value in).
    fn capture(&mut self, what: Outer, shape: &[usize]) -> NodeId {
        // invariant: only step bodies (captures set) reach here; sema binds every name.
        let caps = self
            .captures
            .as_mut()
            .expect("a value from outside a step body");
        if let Some((_, n)) = caps.iter().find(|(o, _)| *o == what) {
            return *n;
        }
        let name = format!("k{}", caps.len());
        let n = self.g.input_node(name, shape.to_vec(), InputKind::Sample);
        // invariant: as above.
        self.captures.as_mut().expect("step body").push((what, n));
        n
    }

    fn arg_node(&mut self, arg: Arg, what: Outer, shape: &[usize]) -> NodeId {
        match arg {
            Arg::Node(n) => n,
            Arg::Outer => self.capture(what, shape),
            // invariant: sema allows `x` and `c` only inside definitions, which bind them.
            Arg::Absent => panic!("sema allows `x` and `c` only in definitions"),
        }
    }

    fn param_node(&mut self, name: &str, shape: &[usize]) -> NodeId {
        if self.captures.is_some() {
            return self.capture(Outer::Param(name.to_string()), shape);
        }
        self.g
            .input_node(name.to_string(), shape.to_vec(), InputKind::Shared)
    }

    fn local_node(&mut self, slot: usize, shape: &[usize]) -> NodeId {
        match self.locals.get(&slot) {
            Some(&n) => n,
            None => self.capture(Outer::Local(slot), shape),
        }
    }

    /// `scan`/`fold`: the step is lowered into a graph of its own (the
    /// carry and the element its first inputs, then whatever it reads from
    /// here), then one `Scan` node runs it.
    fn scan(&mut self, s: &ScanExpr) -> NodeId {
        let init = self.expr(&s.init);
        let seq = self.expr(&s.seq);
        let mut body = Graph::new("step");
        let carry = body.input_node("s", s.init.shape.clone(), InputKind::Sample);
        let elem = body.input_node("x0", s.seq.shape[1..].to_vec(), InputKind::Sample);
        let outer = |a: Arg| if a == Arg::Absent { a } else { Arg::Outer };
        let env = Env {
            x: outer(self.env.x),
            c: outer(self.env.c),
        };
        let mut inner = Lowerer::new(&mut body, self.defs, env);
        inner.locals.insert(s.carry, carry);
        inner.locals.insert(s.elem, elem);
        inner.captures = Some(Vec::new());
        let out = inner.expr(&s.body);
        let caps = inner.captures.take().unwrap_or_default();
        body.add_output("next", out, BatchReduce::PerSample);
        let caps: Vec<NodeId> = caps
            .into_iter()
            .map(|(what, n)| {
                let shape = body.shape(n).to_vec();
                match what {
                    Outer::X => self.arg_node(self.env.x, Outer::X, &shape),
                    Outer::C => self.arg_node(self.env.c, Outer::C, &shape),
                    Outer::Param(name) => self.param_node(&name, &shape),
                    Outer::Local(slot) => self.local_node(slot, &shape),
                }
            })
            .collect();
        let ys = self.g.scan(body, init, &[seq], &caps, false);
        if !s.last {
            return ys;
        }
        let len = s.seq.shape[0];
        let row = self.g.slice(ys, 0, len - 1, 1);
        self.g.reshape(row, &s.init.shape)
    }

    fn expr(&mut self, e: &TExpr) -> NodeId {
        let id = self.expr_inner(e);
        debug_assert_eq!(self.g.shape(id), &e.shape[..], "lowering {:?}", e.kind);
        if self.depth == 0
            && let Some(t) = self.trace.as_deref_mut()
        {
            t.push((id, e.span));
        }
        id
    }

    fn expr_inner(&mut self, e: &TExpr) -> NodeId {
        match &e.kind {
            TKind::Const(t) => self.g.constant_tensor(t.shape.clone(), t.data.clone()),
            TKind::Input => self.arg_node(self.env.x, Outer::X, &e.shape),
            TKind::Cond => self.arg_node(self.env.c, Outer::C, &e.shape),
            TKind::Param(name) => self.param_node(name, &e.shape),
            TKind::Local(slot) => self.local_node(*slot, &e.shape),
            TKind::Let(slot, value, body) => {
                let v = self.expr(value);
                self.locals.insert(*slot, v);
                let b = self.expr(body);
                self.locals.remove(slot);
                b
            }
            TKind::Scan(s) => self.scan(s),
            TKind::Unary(op, a) => {
                let a = self.expr(a);
                self.elem(*op, a)
            }
            TKind::Binary(op, a, b) => {
                let a = self.expr(a);
                let b = self.expr(b);
                self.g.binary_bcast(*op, a, b)
            }
            TKind::PowConst(a, c) => {
                let a = self.expr(a);
                self.g.powc(a, *c)
            }
            TKind::MatMul(a, b) => {
                let a = self.expr(a);
                let b = self.expr(b);
                self.g.matmul(a, b)
            }
            TKind::Reduce(op, a, axes) => {
                let a = self.expr(a);
                self.reduce(*op, a, *axes)
            }
            TKind::LogSumExpN(parts) => {
                let parts: Vec<NodeId> = parts
                    .iter()
                    .map(|p| {
                        let n = self.expr(p);
                        self.g.reshape(n, &[1])
                    })
                    .collect();
                let v = self.g.concat(parts, 0);
                self.g.logsumexp(v, Axes::all(1))
            }
            TKind::Stack(parts) => {
                let parts: Vec<NodeId> = parts
                    .iter()
                    .map(|p| {
                        let n = self.expr(p);
                        let mut s = vec![1];
                        s.extend(&p.shape);
                        self.g.reshape(n, &s)
                    })
                    .collect();
                self.g.concat(parts, 0)
            }
            TKind::Concat(parts, axis) => {
                let parts: Vec<NodeId> = parts.iter().map(|p| self.expr(p)).collect();
                self.g.concat(parts, *axis)
            }
            TKind::Reshape(a) => {
                let a = self.expr(a);
                self.g.reshape(a, &e.shape)
            }
            TKind::Transpose(a, perm) => {
                let a = self.expr(a);
                self.g.transpose(a, perm)
            }
            TKind::Slice(a, axis, start, step) => {
                let a = self.expr(a);
                self.g.slice_step(a, *axis, *start, e.shape[*axis], *step)
            }
            TKind::Where(c, a, b) => {
                let c = self.expr(c);
                let a = self.expr(a);
                let b = self.expr(b);
                let c = self.g.broadcast(c, &e.shape);
                let a = self.g.broadcast(a, &e.shape);
                let b = self.g.broadcast(b, &e.shape);
                self.g.select(c, a, b)
            }
            TKind::StopGradient(a) => {
                let a = self.expr(a);
                self.g.stop_gradient(a)
            }
            TKind::Imported(imp) => {
                // The graph's inputs as nodes of this body, in input order
                // (only those it has a node for: no unused parameter input).
                let g = &imp.graph;
                let read: Vec<bool> = (0..g.inputs().len())
                    .map(|i| {
                        g.nodes()
                            .iter()
                            .any(|n| n.op == crate::ir::Op::Input(crate::ir::InputId(i as u32)))
                    })
                    .collect();
                let inputs: Vec<NodeId> = g
                    .inputs()
                    .iter()
                    .zip(&read)
                    .map(|(d, &read)| match d.kind {
                        _ if !read => NodeId(0),
                        InputKind::Sample if d.name == "x" => {
                            self.arg_node(self.env.x, Outer::X, &d.shape)
                        }
                        InputKind::Sample => self.arg_node(self.env.c, Outer::C, &d.shape),
                        InputKind::Shared => self.param_node(imp.local_name(&d.name), &d.shape),
                    })
                    .collect();
                // invariant: a model file's definitions have exactly one output (artifact::check).
                crate::ir::inline_with(self.g, &imp.graph, &inputs)[0]
            }
            TKind::Call { def, x, cond } => {
                let x = self.expr(x);
                let c = cond.as_ref().map(|c| self.expr(c));
                if let Some(&out) = self.calls.get(&(*def, x, c)) {
                    return out;
                }
                let callee = &self.defs[*def];
                let saved = self.env;
                self.env = Env::bound(Some(x), c);
                // The callee's body has its own locals (slots never clash,
                // but a step body must not capture the caller's).
                let locals = std::mem::take(&mut self.locals);
                self.depth += 1;
                let out = self.expr(&callee.body);
                self.depth -= 1;
                self.locals = locals;
                self.env = saved;
                self.calls.insert((*def, x, c), out);
                out
            }
        }
    }

    fn reduce(&mut self, op: Reduce, a: NodeId, axes: Axes) -> NodeId {
        match op {
            Reduce::Sum => self.g.reduce_sum(a, axes),
            Reduce::Mean => {
                let shape = self.g.shape(a).to_vec();
                let n: usize = axes.iter().map(|i| shape[i]).product();
                let s = self.g.reduce_sum(a, axes);
                let k = self.g.scalar(1.0 / n as f64);
                self.g.mul(s, k)
            }
            Reduce::Max => self.g.reduce_max(a, axes),
            Reduce::Min => {
                let n = self.g.neg(a);
                let m = self.g.reduce_max(n, axes);
                self.g.neg(m)
            }
            Reduce::LogSumExp => self.g.logsumexp(a, axes),
        }
    }

    /// Elementwise functions, composites decomposed:
    /// relu = max(x, 0); leaky_relu = select(x > 0, x, α·x);
    /// elu = select(x > 0, x, α·(eˣ − 1)); swish = x·sigmoid(x);
    /// gelu = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    fn elem(&mut self, op: Elem, a: NodeId) -> NodeId {
        let g = &mut *self.g;
        let shape = g.shape(a).to_vec();
        let u = |g: &mut Graph, op| g.unary(op, a);
        match op {
            Elem::Neg => u(g, UnaryOp::Neg),
            Elem::Exp => u(g, UnaryOp::Exp),
            Elem::Log => u(g, UnaryOp::Log),
            Elem::Log1p => u(g, UnaryOp::Log1p),
            Elem::Sqrt => u(g, UnaryOp::Sqrt),
            Elem::Abs => u(g, UnaryOp::Abs),
            Elem::Sin => u(g, UnaryOp::Sin),
            Elem::Cos => u(g, UnaryOp::Cos),
            Elem::Tanh => u(g, UnaryOp::Tanh),
            Elem::Sigmoid => u(g, UnaryOp::Sigmoid),
            Elem::Softplus => u(g, UnaryOp::Softplus),
            Elem::Relu => {
                let z = g.fill(0.0, &shape);
                g.binary(BinaryOp::Max, a, z)
            }
            Elem::LeakyRelu(alpha) => {
                let z = g.fill(0.0, &shape);
                let pos = g.binary(BinaryOp::Gt, a, z);
                let k = g.scalar(alpha);
                let neg = g.mul(k, a);
                g.select(pos, a, neg)
            }
            Elem::Elu(alpha) => {
                let z = g.fill(0.0, &shape);
                let pos = g.binary(BinaryOp::Gt, a, z);
                let e = g.unary(UnaryOp::Exp, a);
                let one = g.scalar(1.0);
                let em1 = g.sub(e, one);
                let k = g.scalar(alpha);
                let neg = g.mul(k, em1);
                g.select(pos, a, neg)
            }
            Elem::Swish => {
                let s = g.unary(UnaryOp::Sigmoid, a);
                g.binary(BinaryOp::Mul, a, s)
            }
            Elem::Gelu => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                let x3 = g.powc(a, 3.0);
                let k = g.scalar(0.044715);
                let t = g.mul(k, x3);
                let inner = g.binary(BinaryOp::Add, a, t);
                let kc = g.scalar(c);
                let scaled = g.mul(kc, inner);
                let th = g.unary(UnaryOp::Tanh, scaled);
                let one = g.scalar(1.0);
                let p = g.add_(one, th);
                let half = g.scalar(0.5);
                let hx = g.mul(half, a);
                g.binary(BinaryOp::Mul, hx, p)
            }
        }
    }
}
