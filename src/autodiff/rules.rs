//! The derivative table: one row per op. Each row receives the node, its
//! adjoint `bar`, and which operands need a contribution, and returns one
//! optional contribution per operand (`None` = structural zero).

use crate::ir::{Axes, BinaryOp, Graph, Node, NodeId, Op, UnaryOp, keepdims};

pub(super) fn pullback(
    g: &mut Graph,
    y: NodeId,
    node: &Node,
    bar: NodeId,
    needed: &[bool],
) -> Vec<Option<NodeId>> {
    let a = node.args.first().copied();
    let b = node.args.get(1).copied();
    match node.op {
        Op::Scalar(_) | Op::Const(_) | Op::Input(_) | Op::StopGradient => {
            vec![None; node.args.len()]
        }
        // invariant: the verifier fixes each op's arity, so the operands it reads exist.
        Op::Unary(u) => vec![unary(g, u, a.unwrap(), y, bar)],
        // invariant: the verifier fixes each op's arity, so the operands it reads exist.
        Op::PowConst(c) => vec![Some(powc(g, a.unwrap(), c.get(), bar))],
        // invariant: the verifier fixes each op's arity, so the operands it reads exist.
        Op::Binary(op) => binary(g, op, a.unwrap(), b.unwrap(), y, bar, needed),
        Op::Select => {
            let zero = g.fill(0.0, &node.shape);
            // invariant: the verifier fixes each op's arity, so the operands it reads exist.
            let c = a.unwrap();
            vec![
                None,
                Some(g.select(c, bar, zero)),
                Some(g.select(c, zero, bar)),
            ]
        }
        // invariant: the verifier fixes each op's arity, so the operands it reads exist.
        Op::Broadcast => vec![Some(unbroadcast(g, bar, g.shape(a.unwrap()).to_vec()))],
        Op::Sum(axes) => {
            // invariant: the verifier fixes each op's arity, so the operands it reads exist.
            let src = g.shape(a.unwrap()).to_vec();
            let kept = g.reshape(bar, &keepdims(&src, axes));
            vec![Some(g.broadcast(kept, &src))]
        }
        // invariant: the verifier fixes each op's arity, so the operands it reads exist.
        Op::Max(axes) => vec![Some(reduce_max(g, a.unwrap(), y, bar, axes))],
        Op::Reshape => {
            // invariant: the verifier fixes each op's arity, so the operands it reads exist.
            let src = g.shape(a.unwrap()).to_vec();
            vec![Some(g.reshape(bar, &src))]
        }
        Op::Transpose(p) => vec![Some(g.transpose(bar, &p.inverse().as_vec()))],
        Op::Slice { axis, start, step } => vec![Some(unslice(
            g,
            // invariant: the verifier fixes each op's arity, so the operands it reads exist.
            a.unwrap(),
            bar,
            axis as usize,
            (start as usize, step as usize),
        ))],
        Op::Concat { axis } => unconcat(g, &node.args, bar, axis as usize),
        // invariant: the verifier fixes each op's arity, so the operands it reads exist.
        Op::MatMul => matmul(g, a.unwrap(), b.unwrap(), bar, needed),
        // A reverse scan over the stored carries (`autodiff::scan`).
        Op::Scan { .. } => super::scan::pullback(g, y, node, bar, needed),
    }
}

fn unary(g: &mut Graph, op: UnaryOp, a: NodeId, y: NodeId, bar: NodeId) -> Option<NodeId> {
    let shape = g.shape(a).to_vec();
    Some(match op {
        UnaryOp::Neg => g.neg(bar),
        UnaryOp::Exp => g.mul(bar, y),
        UnaryOp::Log => g.div(bar, a),
        UnaryOp::Log1p => {
            let one = g.fill(1.0, &shape);
            let d = g.add_(one, a);
            g.div(bar, d)
        }
        UnaryOp::Sqrt => {
            let half = g.fill(0.5, &shape);
            let h = g.mul(bar, half);
            g.div(h, y)
        }
        UnaryOp::Abs => {
            let s = g.unary(UnaryOp::Sign, a);
            g.mul(bar, s)
        }
        UnaryOp::Sign | UnaryOp::Step => return None,
        UnaryOp::Sin => {
            let c = g.unary(UnaryOp::Cos, a);
            g.mul(bar, c)
        }
        UnaryOp::Cos => {
            let s = g.unary(UnaryOp::Sin, a);
            let m = g.mul(bar, s);
            g.neg(m)
        }
        UnaryOp::Tanh => {
            let one = g.fill(1.0, &shape);
            let y2 = g.mul(y, y);
            let d = g.sub(one, y2);
            g.mul(bar, d)
        }
        UnaryOp::Sigmoid => {
            let one = g.fill(1.0, &shape);
            let d = g.sub(one, y);
            let dy = g.mul(y, d);
            g.mul(bar, dy)
        }
        UnaryOp::Softplus => {
            let s = g.unary(UnaryOp::Sigmoid, a);
            g.mul(bar, s)
        }
    })
}

/// d(a^c) = c · a^(c−1).
fn powc(g: &mut Graph, a: NodeId, c: f64, bar: NodeId) -> NodeId {
    let shape = g.shape(a).to_vec();
    let scale = g.fill(c, &shape);
    let scaled = g.mul(bar, scale);
    if c - 1.0 == 0.0 {
        return scaled;
    }
    let p = if c - 1.0 == 1.0 {
        a
    } else {
        g.powc(a, c - 1.0)
    };
    g.mul(scaled, p)
}

fn binary(
    g: &mut Graph,
    op: BinaryOp,
    a: NodeId,
    b: NodeId,
    y: NodeId,
    bar: NodeId,
    needed: &[bool],
) -> Vec<Option<NodeId>> {
    let (na, nb) = (needed[0], needed[1]);
    let mut da = None;
    let mut db = None;
    match op {
        BinaryOp::Add => {
            da = Some(bar);
            db = Some(bar);
        }
        BinaryOp::Sub => {
            da = Some(bar);
            db = nb.then(|| g.neg(bar));
        }
        BinaryOp::Mul => {
            da = na.then(|| g.mul(bar, b));
            db = nb.then(|| g.mul(bar, a));
        }
        BinaryOp::Div => {
            da = na.then(|| g.div(bar, b));
            if nb {
                let t = g.mul(bar, y);
                let t = g.div(t, b);
                db = Some(g.neg(t));
            }
        }
        BinaryOp::Pow => {
            if na {
                let shape = g.shape(a).to_vec();
                let one = g.fill(1.0, &shape);
                let bm1 = g.sub(b, one);
                let p = g.binary(BinaryOp::Pow, a, bm1);
                let t = g.mul(b, p);
                da = Some(g.mul(bar, t));
            }
            if nb {
                let l = g.unary(UnaryOp::Log, a);
                let t = g.mul(y, l);
                db = Some(g.mul(bar, t));
            }
        }
        // Ties go to the first operand, matching the interpreter's choice.
        BinaryOp::Max | BinaryOp::Min => {
            let (hi, lo) = if op == BinaryOp::Max { (a, b) } else { (b, a) };
            if na {
                let m = g.binary(BinaryOp::Ge, hi, lo);
                da = Some(g.mul(bar, m));
            }
            if nb {
                let m = g.binary(BinaryOp::Gt, lo, hi);
                db = Some(g.mul(bar, m));
            }
        }
        BinaryOp::Gt | BinaryOp::Ge => {}
    }
    vec![da, db]
}

/// Sums an adjoint over the axes that a broadcast expanded.
fn unbroadcast(g: &mut Graph, bar: NodeId, src: Vec<usize>) -> NodeId {
    let out = g.shape(bar).to_vec();
    let offset = out.len() - src.len();
    let axes: Vec<usize> = (0..out.len())
        .filter(|&i| i < offset || (src[i - offset] == 1 && out[i] != 1))
        .collect();
    let summed = g.reduce_sum(bar, Axes::of(&axes));
    g.reshape(summed, &src)
}

/// Ties share the adjoint equally (mask / count), so a maximum over copies of
/// one value has that value's derivative, as finite differences see it.
fn reduce_max(g: &mut Graph, a: NodeId, y: NodeId, bar: NodeId, axes: Axes) -> NodeId {
    let src = g.shape(a).to_vec();
    let keep = keepdims(&src, axes);
    let y_keep = g.reshape(y, &keep);
    let y_full = g.broadcast(y_keep, &src);
    let mask = g.binary(BinaryOp::Ge, a, y_full);
    let count = g.reduce_sum(mask, axes);
    let share = g.div(bar, count);
    let share_keep = g.reshape(share, &keep);
    let share_full = g.broadcast(share_keep, &src);
    g.mul(share_full, mask)
}

/// The adjoint of a slice is the adjoint padded with zeros back to full size.
fn unslice(
    g: &mut Graph,
    a: NodeId,
    bar: NodeId,
    axis: usize,
    (start, step): (usize, usize),
) -> NodeId {
    if step > 1 {
        return unslice_strided(g, a, bar, axis, start, step);
    }
    let src = g.shape(a).to_vec();
    let len = g.shape(bar)[axis];
    let mut parts = Vec::new();
    if start > 0 {
        let mut s = src.clone();
        s[axis] = start;
        parts.push(g.fill(0.0, &s));
    }
    parts.push(bar);
    let after = src[axis] - start - len;
    if after > 0 {
        let mut s = src.clone();
        s[axis] = after;
        parts.push(g.fill(0.0, &s));
    }
    g.concat(parts, axis)
}

/// A strided slice's adjoint: each element of `bar` followed by `step − 1`
/// zeros (a concatenation on a new axis, flattened), then padded to full
/// size like a contiguous slice. Works on the `[outer, n, inner]` view of
/// the operand, so the extra axis never exceeds the rank limit.
fn unslice_strided(
    g: &mut Graph,
    a: NodeId,
    bar: NodeId,
    axis: usize,
    start: usize,
    step: usize,
) -> NodeId {
    let src = g.shape(a).to_vec();
    let n = src[axis];
    let len = g.shape(bar)[axis];
    let outer: usize = src[..axis].iter().product();
    let inner: usize = src[axis + 1..].iter().product();
    let b4 = g.reshape(bar, &[outer, len, 1, inner]);
    let gaps = g.fill(0.0, &[outer, len, step - 1, inner]);
    let spread = g.concat(vec![b4, gaps], 2);
    let spread = g.reshape(spread, &[outer, len * step, inner]);
    // The trailing zeros after the last element may run past the end.
    let keep = (len * step).min(n - start);
    let spread = g.slice(spread, 1, 0, keep);
    let mut parts = Vec::new();
    if start > 0 {
        parts.push(g.fill(0.0, &[outer, start, inner]));
    }
    parts.push(spread);
    if n - start - keep > 0 {
        parts.push(g.fill(0.0, &[outer, n - start - keep, inner]));
    }
    let full = g.concat(parts, 1);
    g.reshape(full, &src)
}

fn unconcat(g: &mut Graph, args: &[NodeId], bar: NodeId, axis: usize) -> Vec<Option<NodeId>> {
    let mut offset = 0;
    args.iter()
        .map(|&a| {
            let len = g.shape(a)[axis];
            let part = g.slice(bar, axis, offset, len);
            offset += len;
            Some(part)
        })
        .collect()
}

fn matmul(
    g: &mut Graph,
    a: NodeId,
    b: NodeId,
    bar: NodeId,
    needed: &[bool],
) -> Vec<Option<NodeId>> {
    let sa = g.shape(a).to_vec();
    let sb = g.shape(b).to_vec();
    let (na, nb) = (needed[0], needed[1]);
    let (da, db) = match (sa.len(), sb.len()) {
        (1, 1) => {
            let bar_v = g.broadcast(bar, &sa);
            (na.then(|| g.mul(bar_v, b)), nb.then(|| g.mul(bar_v, a)))
        }
        (1, 2) => {
            let da = na.then(|| g.matmul(b, bar));
            let db = nb.then(|| outer(g, a, bar));
            (da, db)
        }
        (2, 1) => {
            let da = na.then(|| outer(g, bar, b));
            let db = nb.then(|| {
                let at = g.transpose(a, &[1, 0]);
                g.matmul(at, bar)
            });
            (da, db)
        }
        _ => {
            let da = na.then(|| {
                let bt = g.transpose(b, &[1, 0]);
                g.matmul(bar, bt)
            });
            let db = nb.then(|| {
                let at = g.transpose(a, &[1, 0]);
                g.matmul(at, bar)
            });
            (da, db)
        }
    };
    vec![da, db]
}

/// u vᵀ for vectors, as a [m,1] @ [1,n] product.
fn outer(g: &mut Graph, u: NodeId, v: NodeId) -> NodeId {
    let (m, n) = (g.shape(u)[0], g.shape(v)[0]);
    let col = g.reshape(u, &[m, 1]);
    let row = g.reshape(v, &[1, n]);
    g.matmul(col, row)
}
