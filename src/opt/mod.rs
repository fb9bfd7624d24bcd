//! Simplification after AD. One pass rebuilds the graph node by node into a
//! fresh arena, applying local rewrites as each node is re-added:
//! IEEE-exact constant folding, directional identities (`x*1 → x`,
//! `x+0 → x`, `--x → x`, `0·x → 0`, elementwise ops pulled through
//! broadcasts), factoring a common multiplicand out of a sum
//! (`s·a + (s·b)·c → s·(a + b·c)`, the product rule's shape), CSE (the
//! new graph hash-conses) and DCE (only nodes live from the outputs are
//! visited). Every rewrite can be switched off for tests and bisection.
//! `docs/op-semantics.md` lists where the identities differ from IEEE
//! (signed zeros, `0·inf`, factoring's rounding).

use std::collections::{HashMap, HashSet};

use crate::ir::interp;
use crate::ir::{BatchReduce, BinaryOp, Graph, InputKind, NodeId, Op, Shape, UnaryOp, numel};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub fold: bool,
    pub identities: bool,
    /// `s·a + (s·b)·c → s·(a + b·c)` (see [`factorable`]).
    pub factor: bool,
    pub cse: bool,
    pub dce: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            fold: true,
            identities: true,
            factor: true,
            cse: true,
            dce: true,
        }
    }
}

impl Config {
    pub const NONE: Config = Config {
        fold: false,
        identities: false,
        factor: false,
        cse: false,
        dce: false,
    };
}

/// Largest constant tensor that folding may create.
const FOLD_LIMIT: usize = 1 << 12;

pub fn optimize(g: &Graph, cfg: Config) -> Graph {
    let mut out = g.empty_like();
    // Every live scan re-adds its (simplified) body below.
    out.clear_bodies();
    out.set_cse(cfg.cse);
    let live = if cfg.dce {
        g.live(&[])
    } else {
        vec![true; g.len()]
    };
    let (factored, absorbed) = if cfg.factor {
        factorable(g, &live)
    } else {
        Default::default()
    };
    let mut map: Vec<Option<NodeId>> = vec![None; g.len()];
    for id in g.ids() {
        if !live[id.index()] || absorbed.contains(&id) {
            continue;
        }
        if let Some(f) = factored.get(&id) {
            // invariant: operands precede users (verified), so each is mapped before it is read.
            let m = |n: NodeId| map[n.index()].expect("operand visited");
            let shape = g.shape(id).to_vec();
            let mul = Op::Binary(BinaryOp::Mul);
            let bc = rebuild(&mut out, mul, vec![m(f.b), m(f.c)], shape.clone(), cfg);
            let sum = rebuild(
                &mut out,
                Op::Binary(BinaryOp::Add),
                vec![m(f.a), bc],
                shape.clone(),
                cfg,
            );
            map[id.index()] = Some(rebuild(&mut out, mul, vec![m(f.s), sum], shape, cfg));
            continue;
        }
        let node = g.node(id);
        // invariant: operands precede users (verified), so each is mapped before it is read.
        let args: Vec<NodeId> = node
            .args
            .iter()
            .map(|a| map[a.index()].expect("operand visited"))
            .collect();
        let op = match node.op {
            // A scan's step is a graph of its own: simplified the same way.
            Op::Scan {
                body,
                seqs,
                reverse,
            } => Op::Scan {
                body: out.add_body(optimize(g.body(body), cfg)),
                seqs,
                reverse,
            },
            op => op,
        };
        map[id.index()] = Some(rebuild(&mut out, op, args, node.shape.clone(), cfg));
    }
    for o in &g.outputs {
        // invariant: operands precede users (verified), so each is mapped before it is read.
        out.add_output(o.name.clone(), map[o.node.index()].unwrap(), o.reduce);
    }
    out.set_cse(true);
    out
}

/// `s·a + (s·b)·c` as `s·(a + b·c)`.
#[derive(Clone, Copy, Debug)]
struct Factored {
    s: NodeId,
    a: NodeId,
    b: NodeId,
    c: NodeId,
}

/// The live sums `s·a + (s·b)·c` (either operand order of each `+` and `·`)
/// whose three products are used nowhere else, with those products (which
/// the factored form no longer needs). Reverse mode writes the derivative
/// of a product `h·f(h)` this way — for swish, `s·σ + (s·h)·σ'` with `s`
/// the incoming gradient — and the factored form is three operations
/// instead of four, which the CPU planner folds into a layer's epilogue
/// (`backend::cpu::plan::fuse_swish_backward`). It rounds differently, and
/// `s = ±inf` with `a = 0` no longer gives NaN.
fn factorable(g: &Graph, live: &[bool]) -> (HashMap<NodeId, Factored>, HashSet<NodeId>) {
    let mut users = vec![0usize; g.len()];
    for id in g.ids().filter(|id| live[id.index()]) {
        for a in &g.node(id).args {
            users[a.index()] += 1;
        }
    }
    // An output is read outside the graph: never a single-user product.
    for o in &g.outputs {
        users[o.node.index()] += 2;
    }
    let product = |n: NodeId| match g.node(n).op {
        Op::Binary(BinaryOp::Mul) if users[n.index()] == 1 => {
            let [x, y] = [g.node(n).args[0], g.node(n).args[1]];
            Some([(x, y), (y, x)])
        }
        _ => None,
    };
    let mut factored = HashMap::new();
    let mut absorbed = HashSet::new();
    for id in g.ids().filter(|id| live[id.index()]) {
        let node = g.node(id);
        if node.op != Op::Binary(BinaryOp::Add) {
            continue;
        }
        let [l, r] = [node.args[0], node.args[1]];
        let found = [(l, r), (r, l)].into_iter().find_map(|(sa, sbc)| {
            product(sbc)?.into_iter().find_map(|(sb, c)| {
                product(sb)?.into_iter().find_map(|(s, b)| {
                    let (_, a) = product(sa)?.into_iter().find(|&(s2, _)| s2 == s)?;
                    Some((Factored { s, a, b, c }, [sa, sbc, sb]))
                })
            })
        });
        if let Some((f, products)) = found
            && products.iter().all(|p| !absorbed.contains(p))
        {
            factored.insert(id, f);
            absorbed.extend(products);
        }
    }
    (factored, absorbed)
}

fn rebuild(g: &mut Graph, op: Op, args: Vec<NodeId>, shape: Shape, cfg: Config) -> NodeId {
    if cfg.identities
        && let Some(n) = identity(g, op, &args, &shape, cfg)
    {
        return n;
    }
    if cfg.fold
        && let Some(n) = fold(g, op, &args, &shape)
    {
        return n;
    }
    g.add(op, args, shape)
}

/// The scalar value of a node that is a literal or a broadcast literal.
pub fn scalar_value(g: &Graph, n: NodeId) -> Option<f64> {
    match g.node(n).op {
        Op::Scalar(v) => Some(v.get()),
        Op::Broadcast => scalar_value(g, g.node(n).args[0]),
        _ => None,
    }
}

fn identity(
    g: &mut Graph,
    op: Op,
    args: &[NodeId],
    shape: &[usize],
    cfg: Config,
) -> Option<NodeId> {
    let val = |i: usize| scalar_value(g, args[i]);
    match op {
        Op::Binary(BinaryOp::Add) if val(1) == Some(0.0) => Some(args[0]),
        Op::Binary(BinaryOp::Add) if val(0) == Some(0.0) => Some(args[1]),
        Op::Binary(BinaryOp::Sub) if val(1) == Some(0.0) => Some(args[0]),
        Op::Binary(BinaryOp::Sub) if val(0) == Some(0.0) => Some(g.neg(args[1])),
        // The one rewrite that is not IEEE-exact: 0·x → 0 even for x = ±inf/NaN.
        // Zeros reach a product only through folded masks (a comparison of
        // constants); they are the structural zeros AD would have produced.
        Op::Binary(BinaryOp::Mul) if val(0) == Some(0.0) || val(1) == Some(0.0) => {
            Some(g.fill(0.0, shape))
        }
        Op::Binary(BinaryOp::Mul) if val(1) == Some(1.0) => Some(args[0]),
        Op::Binary(BinaryOp::Mul) if val(0) == Some(1.0) => Some(args[1]),
        Op::Binary(BinaryOp::Mul) if val(1) == Some(-1.0) => Some(g.neg(args[0])),
        Op::Binary(BinaryOp::Mul) if val(0) == Some(-1.0) => Some(g.neg(args[1])),
        Op::Binary(BinaryOp::Div) if val(1) == Some(1.0) => Some(args[0]),
        Op::PowConst(c) if c.get() == 1.0 => Some(args[0]),
        Op::Unary(UnaryOp::Neg) => match g.node(args[0]).op {
            Op::Unary(UnaryOp::Neg) => Some(g.node(args[0]).args[0]),
            _ => through_broadcast(g, op, args, shape, cfg),
        },
        Op::Broadcast | Op::Reshape => {
            let inner = g.node(args[0]).clone();
            let inner_src = inner.args.first().copied();
            match inner_src {
                // Chains of reshapes or of broadcasts collapse to one.
                Some(src) if inner.op == op => Some(g.add(op, vec![src], shape.to_vec())),
                // Reshaping or broadcasting a broadcast (or reshape) of a scalar
                // is a broadcast of that scalar.
                Some(src)
                    if g.shape(src).is_empty()
                        && matches!(inner.op, Op::Broadcast | Op::Reshape) =>
                {
                    Some(g.broadcast(src, shape))
                }
                _ => None,
            }
        }
        Op::Transpose(p) => match g.node(args[0]).op {
            Op::Transpose(q) => {
                let (p, q) = (p.as_vec(), q.as_vec());
                let composed: Vec<usize> = p.iter().map(|&i| q[i]).collect();
                let inner = g.node(args[0]).args[0];
                Some(g.transpose(inner, &composed))
            }
            _ => None,
        },
        Op::MatMul => matmul_by_one(g, args, shape),
        _ if op.is_elementwise() => through_broadcast(g, op, args, shape, cfg),
        _ => None,
    }
}

/// A product with a 1×1 (or length-1) literal one is a reshape of the other
/// operand; AD produces these when a layer's output has width 1.
fn matmul_by_one(g: &mut Graph, args: &[NodeId], shape: &[usize]) -> Option<NodeId> {
    let is_one = |g: &Graph, n: NodeId| {
        crate::ir::numel(g.shape(n)) == 1
            && match g.node(n).op {
                Op::Const(c) => g.constant(c).data[0] == 1.0,
                _ => scalar_value(g, n) == Some(1.0),
            }
    };
    let other = if is_one(g, args[1]) {
        args[0]
    } else if is_one(g, args[0]) {
        args[1]
    } else {
        return None;
    };
    Some(g.reshape(other, shape))
}

/// `f(broadcast(a), broadcast(b))` → `broadcast(f(a, b))` when every operand is
/// broadcast from the same smaller shape: the same arithmetic on fewer elements.
fn through_broadcast(
    g: &mut Graph,
    op: Op,
    args: &[NodeId],
    shape: &[usize],
    cfg: Config,
) -> Option<NodeId> {
    let sources: Vec<NodeId> = args
        .iter()
        .map(|&a| (g.node(a).op == Op::Broadcast).then(|| g.node(a).args[0]))
        .collect::<Option<_>>()?;
    let mut small = g.shape(sources[0]).to_vec();
    if sources.iter().any(|&s| g.shape(s) != small.as_slice()) {
        // Single-element sources of different ranks ([], [1], [1, 1]) meet as scalars.
        if !sources.iter().all(|&s| numel(g.shape(s)) == 1) {
            return None;
        }
        small = vec![];
    }
    let sources: Vec<NodeId> = sources.iter().map(|&s| g.reshape(s, &small)).collect();
    // The smaller op may simplify further (e.g. fold), so it goes through `rebuild`.
    let inner = rebuild(g, op, sources, small, cfg);
    Some(g.broadcast(inner, shape))
}

fn is_literal(g: &Graph, n: NodeId) -> bool {
    matches!(g.node(n).op, Op::Scalar(_) | Op::Const(_))
}

/// Evaluates an op whose operands are all literals, keeping the result only if
/// f32 and f64 evaluation agree exactly (so folding never changes a result in
/// either dtype). Broadcasts stay symbolic: they are cheaper than their result.
fn fold(g: &mut Graph, op: Op, args: &[NodeId], shape: &[usize]) -> Option<NodeId> {
    let foldable = !args.is_empty()
        && !matches!(op, Op::Broadcast | Op::Input(_) | Op::Scan { .. })
        && numel(shape) <= FOLD_LIMIT
        && args.iter().all(|&a| is_literal(g, a));
    if !foldable {
        return None;
    }
    let mut tiny = Graph::new("fold");
    let tiny_args: Vec<NodeId> = args
        .iter()
        .map(|&a| {
            let data = literal_data(g, a);
            tiny.constant_tensor(g.shape(a).to_vec(), data)
        })
        .collect();
    let n = tiny.add(op, tiny_args, shape.to_vec());
    tiny.add_output("v", n, BatchReduce::PerSample);
    let wide = interp::eval::<f64>(&tiny, &[], 1).ok()?.remove(0);
    let narrow = interp::eval::<f32>(&tiny, &[], 1).ok()?.remove(0);
    let exact = wide
        .iter()
        .zip(&narrow)
        .all(|(&w, &n)| (w as f32).to_bits() == n.to_bits());
    if !exact {
        return None;
    }
    // A uniform result is kept in the canonical form of a fill: a broadcast scalar.
    Some(if wide.iter().all(|&v| v.to_bits() == wide[0].to_bits()) {
        g.fill(wide[0], shape)
    } else {
        g.constant_tensor(shape.to_vec(), wide)
    })
}

fn literal_data(g: &Graph, n: NodeId) -> std::sync::Arc<[f64]> {
    match g.node(n).op {
        Op::Scalar(v) => [v.get()].into(),
        Op::Const(c) => g.constant(c).data.clone(),
        // invariant: operands precede users (verified), so each is mapped before it is read.
        _ => unreachable!("literal_data on a non-literal"),
    }
}

/// Whether any `Sample` input reaches `n` (otherwise it is batch-invariant).
pub fn depends_on_sample(g: &Graph) -> Vec<bool> {
    let mut dep = vec![false; g.len()];
    for id in g.ids() {
        let node = g.node(id);
        dep[id.index()] = match node.op {
            Op::Input(i) => g.input(i).kind == InputKind::Sample,
            _ => node.args.iter().any(|a| dep[a.index()]),
        };
    }
    dep
}
