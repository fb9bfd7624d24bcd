//! The `Scan` op: a loop over the leading axis of one or more sequences
//! with a carried state, whose step is a graph of its own (a *body*, held
//! in the pool of the graph the node belongs to, addressed by `BodyId`).
//!
//! `Scan { body, seqs: m, reverse }` with operands `[init, xs₁..xsₘ,
//! k₁..kₙ]` (every `xsᵢ` of shape `[T, ..]`, the same T ≥ 1) computes
//!
//! ```text
//! forward:  s₋₁ = init,  sₜ = body(sₜ₋₁, xs₁[t], .., xsₘ[t], k₁, .., kₙ)  for t = 0 .. T−1
//! reverse:  s_T = init,  sₜ = body(sₜ₊₁, xs₁[t], .., xsₘ[t], k₁, .., kₙ)  for t = T−1 .. 0
//! ```
//!
//! and its value is every carry stacked, `[T, ..shape(init)]`, row t
//! holding sₜ (a `fold` is the last row, a slice). The captured values
//! `k` are whatever the step reads from the enclosing graph (x, the
//! parameters, outer values), passed in explicitly so that a body is a
//! closed graph: the op stays small and `Copy`, and every pass handles a
//! body as an ordinary graph.
//!
//! Body conventions (checked by `check_body` when a node is added, and by
//! the verifier): inputs in operand order — the carry, one element of each
//! sequence (the leading axis removed), the captures — all `Sample`
//! inputs (a body is per sample like its graph); exactly one output, per
//! sample, of the carry's shape. A body may hold scans of its own.
//!
//! Why stacked carries: reverse mode needs them. The pullback of a scan
//! is a scan in the opposite direction over the stored carries (the rule
//! in `autodiff::rules`), whose step is the pullback of the body; the
//! forward intermediates of a step are recomputed there, so memory is
//! T × carry, not T × body.

use super::{Graph, InputKind, Op};

/// Checks a scan's operand and result shapes (the body aside).
pub fn check_operands(seqs: usize, args: &[&[usize]], out: &[usize]) -> Result<(), String> {
    if seqs == 0 {
        return Err("scan needs at least one sequence".into());
    }
    if args.len() < 1 + seqs {
        return Err(format!(
            "scan with {seqs} sequences takes at least {} operands, got {}",
            1 + seqs,
            args.len()
        ));
    }
    let len = match args[1].first() {
        Some(&t) if t >= 1 => t,
        _ => return Err(format!("scan sequence of shape {:?}", args[1])),
    };
    for s in &args[1..=seqs] {
        if s.first() != Some(&len) {
            return Err(format!(
                "scan sequences differ in length: {:?} vs {:?}",
                args[1], s
            ));
        }
    }
    let mut want = vec![len];
    want.extend_from_slice(args[0]);
    if want != out {
        return Err(format!("scan should give {want:?}, node says {out:?}"));
    }
    Ok(())
}

/// For a `Scan` node of graph `g`: checks that its body exists and takes
/// and returns what the operands say. Other ops pass.
pub fn check_body(g: &Graph, op: &Op, args: &[&[usize]]) -> Result<(), String> {
    let Op::Scan { body, seqs, .. } = *op else {
        return Ok(());
    };
    let b = g
        .bodies()
        .get(body.index())
        .ok_or_else(|| format!("unknown scan body {body}"))?;
    check_signature(b, seqs as usize, args)
}

/// The shape body input `i` must have, given the operand shapes.
pub fn input_shape(seqs: usize, args: &[&[usize]], i: usize) -> Vec<usize> {
    let a = args.get(i).copied().unwrap_or(&[]);
    if (1..=seqs).contains(&i) {
        a.get(1..).unwrap_or(&[]).to_vec()
    } else {
        a.to_vec()
    }
}

fn check_signature(b: &Graph, seqs: usize, args: &[&[usize]]) -> Result<(), String> {
    if b.inputs().len() != args.len() {
        return Err(format!(
            "scan body {} takes {} inputs, the node passes {}",
            b.name,
            b.inputs().len(),
            args.len()
        ));
    }
    for (i, d) in b.inputs().iter().enumerate() {
        let want = input_shape(seqs, args, i);
        if d.shape != want || d.kind != InputKind::Sample {
            return Err(format!(
                "scan body input {} is {:?} {:?}, the node passes {want:?}",
                d.name, d.kind, d.shape
            ));
        }
    }
    match &b.outputs[..] {
        [o] if o.node.index() < b.len() && b.shape(o.node) == args[0] => Ok(()),
        _ => Err(format!(
            "scan body {} must have one output of the carry's shape {:?}",
            b.name, args[0]
        )),
    }
}

/// The rows in the order the loop visits them.
pub fn order(len: usize, reverse: bool) -> impl Iterator<Item = usize> {
    (0..len).map(move |k| if reverse { len - 1 - k } else { k })
}

/// The row whose carry step `t` reads (`None`: the initial carry).
pub fn previous(t: usize, len: usize, reverse: bool) -> Option<usize> {
    if reverse {
        (t + 1 < len).then_some(t + 1)
    } else {
        t.checked_sub(1)
    }
}
