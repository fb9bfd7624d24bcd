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
use crate::sema::{DefInfo, DefKind, Elem, Module, Reduce, TExpr, TKind, Tensor};

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
    let mut l = Lowerer {
        g: &mut g,
        defs,
        env: Env { x: Some(x), c },
        calls: HashMap::new(),
        trace,
        depth: 0,
    };
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
    let mut l = Lowerer {
        g: &mut g,
        defs,
        env: Env { x: None, c: None },
        calls: HashMap::new(),
        trace: None,
        depth: 0,
    };
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

#[derive(Clone, Copy)]
struct Env {
    x: Option<NodeId>,
    c: Option<NodeId>,
}

struct Lowerer<'a> {
    g: &'a mut Graph,
    defs: &'a [DefInfo],
    env: Env,
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

impl Lowerer<'_> {
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
            // invariant: sema allows `x` and `c` only inside definitions, which bind them.
            TKind::Input => self.env.x.expect("sema allows `x` only in definitions"),
            TKind::Cond => self.env.c.expect("sema allows `c` only in definitions"),
            TKind::Param(name) => {
                self.g
                    .input_node(name.clone(), e.shape.clone(), InputKind::Shared)
            }
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
            TKind::Slice(a, axis, start) => {
                let a = self.expr(a);
                self.g.slice(a, *axis, *start, e.shape[*axis])
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
                let env = self.env;
                let outs = crate::ir::inline(self.g, &imp.graph, |g, d| match d.kind {
                    // invariant: sema gives imported bodies only to definitions, which bind x (and c when the graph reads it).
                    InputKind::Sample if d.name == "x" => env.x.expect("definitions bind x"),
                    InputKind::Sample => env.c.expect("conditional definitions bind c"),
                    InputKind::Shared => g.input_node(
                        imp.local_name(&d.name).to_string(),
                        d.shape.clone(),
                        InputKind::Shared,
                    ),
                });
                // invariant: a model file's definitions have exactly one output (artifact::check).
                outs[0]
            }
            TKind::Call { def, x, cond } => {
                let x = self.expr(x);
                let c = cond.as_ref().map(|c| self.expr(c));
                if let Some(&out) = self.calls.get(&(*def, x, c)) {
                    return out;
                }
                let callee = &self.defs[*def];
                let saved = self.env;
                self.env = Env { x: Some(x), c };
                self.depth += 1;
                let out = self.expr(&callee.body);
                self.depth -= 1;
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
