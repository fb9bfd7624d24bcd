//! The derivative row of `Scan` (`ir::scan`): the pullback of a scan is a
//! scan in the opposite direction.
//!
//! For sₜ = f(sₜ₋₁, xsₜ, k) with adjoint ȳ of the stacked carries, let Gₜ
//! be the total adjoint of sₜ and aₜ = (∂f/∂s)ᵀ Gₜ what step t passes back
//! to the carry it read. Then Gₜ = ȳₜ + aₜ₊₁ (with a past the last step 0),
//! the initial carry gets a of the first step, the sequences get
//! (∂f/∂xs)ᵀ Gₜ row by row and the captures the sum over t of
//! (∂f/∂k)ᵀ Gₜ. That recursion is itself a scan, run the other way over
//! the sequences (ȳ, the carry each step read, xs): its carry is the flat
//! vector [aₜ, the sequences' row adjoints, the captures' per-step
//! adjoints] (only the parts an operand needs), its step is `vjp` of the
//! body — so the forward intermediates are recomputed per step and only
//! the carries are stored — and the result rows are read back with
//! slices, the captures' rows summed. Being ordinary IR, it differentiates
//! again (Hessian-vector products are a scan of scans' pullbacks).

use crate::ir::{Axes, BatchReduce, Graph, InputKind, Node, NodeId, Op, inline_with, numel};

/// One part of the adjoint scan's flat carry: which operand it belongs to
/// and where it sits.
struct Part {
    operand: usize,
    offset: usize,
    len: usize,
}

pub(super) fn pullback(
    g: &mut Graph,
    y: NodeId,
    node: &Node,
    bar: NodeId,
    needed: &[bool],
) -> Vec<Option<NodeId>> {
    let Op::Scan {
        body,
        seqs,
        reverse,
    } = node.op
    else {
        // invariant: the table routes only `Scan` nodes here.
        unreachable!("scan pullback of {}", node.op.name())
    };
    let m = seqs as usize;
    let args = node.args.clone();
    let carry = g.shape(args[0]).to_vec();
    let len = g.shape(y)[0];
    let (adjoint, parts, width) = adjoint_body(g, g.body(body).clone(), &args, m, needed);
    let prev = previous_carries(g, y, args[0], reverse);
    let zero = g.fill(0.0, &[width]);
    let mut aseqs = vec![bar, prev];
    aseqs.extend_from_slice(&args[1..=m]);
    let z = g.scan(adjoint, zero, &aseqs, &args[1 + m..], !reverse);
    // The row of the step the adjoint loop runs last: the forward loop's first.
    let first = if reverse { len - 1 } else { 0 };
    let mut out = vec![None; args.len()];
    if needed[0] {
        let row = g.slice(z, 0, first, 1);
        let a = g.slice(row, 1, 0, numel(&carry));
        out[0] = Some(g.reshape(a, &carry));
    }
    for p in &parts {
        let shape = g.shape(args[p.operand]).to_vec();
        let cols = g.slice(z, 1, p.offset, p.len);
        out[p.operand] = Some(if p.operand <= m {
            g.reshape(cols, &shape)
        } else {
            let total = g.reduce_sum(cols, Axes::of(&[0]));
            g.reshape(total, &shape)
        });
    }
    out
}

/// The carry each step read, stacked like the scan's value: the initial
/// carry, then every row but the last (the reverse: shifted the other way).
fn previous_carries(g: &mut Graph, y: NodeId, init: NodeId, reverse: bool) -> NodeId {
    let shape = g.shape(y).to_vec();
    let len = shape[0];
    let mut one = shape.clone();
    one[0] = 1;
    let first = g.reshape(init, &one);
    if len == 1 {
        return first;
    }
    if reverse {
        let rest = g.slice(y, 0, 1, len - 1);
        g.concat(vec![rest, first], 0)
    } else {
        let rest = g.slice(y, 0, 0, len - 1);
        g.concat(vec![first, rest], 0)
    }
}

/// The adjoint step: inputs (a, ȳₜ, sₜ₋₁, xsₜ.., k..), output the flat
/// [a', the needed sequences' and captures' adjoints]. Returns it, where
/// each needed operand's part sits, and the carry's width.
fn adjoint_body(
    g: &Graph,
    fwd: Graph,
    args: &[NodeId],
    m: usize,
    needed: &[bool],
) -> (Graph, Vec<Part>, usize) {
    let carry = g.shape(args[0]).to_vec();
    let c = numel(&carry);
    let mut parts = Vec::new();
    let mut width = c;
    for (i, &a) in args.iter().enumerate().skip(1) {
        if needed[i] {
            let n = if i <= m {
                numel(&g.shape(a)[1..])
            } else {
                numel(g.shape(a))
            };
            parts.push(Part {
                operand: i,
                offset: width,
                len: n,
            });
            width += n;
        }
    }
    let mut b = Graph::new(format!("{}'", fwd.name));
    let a = b.input_node("a", vec![width], InputKind::Sample);
    let ybar = b.input_node("ybar", carry.clone(), InputKind::Sample);
    let mut ins = vec![b.input_node("prev", carry.clone(), InputKind::Sample)];
    for (i, d) in fwd.inputs().iter().enumerate().skip(1) {
        let kind = if i <= m { "x" } else { "k" };
        ins.push(b.input_node(format!("{kind}{i}"), d.shape.clone(), InputKind::Sample));
    }
    let out = inline_with(&mut b, &fwd, &ins)[0];
    let a_carry = b.slice(a, 0, 0, c);
    let a_carry = b.reshape(a_carry, &carry);
    let seed = b.add_(ybar, a_carry);
    let wrt: Vec<NodeId> = std::iter::once(0)
        .chain(parts.iter().map(|p| p.operand))
        .map(|i| ins[i])
        .collect();
    let grads = super::vjp(&mut b, out, seed, &wrt);
    let flat: Vec<NodeId> = grads
        .into_iter()
        .zip(&wrt)
        .map(|(d, &w)| {
            let shape = b.shape(w).to_vec();
            let d = d.unwrap_or_else(|| b.fill(0.0, &shape));
            b.reshape(d, &[numel(&shape)])
        })
        .collect();
    let next = b.concat(flat, 0);
    b.add_output("next", next, BatchReduce::PerSample);
    (b, parts, width)
}
