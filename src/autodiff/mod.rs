//! Symbolic reverse-mode differentiation as an IR → IR transform.
//!
//! `vjp` appends to the graph the nodes that compute the adjoints of chosen
//! nodes; its result is ordinary IR, so it can be applied to its own output
//! (Hessian-vector products and the mixed θ-x product of improved CD are
//! gradients of gradients). Adjoints are `Option<NodeId>`: `None` is a
//! **structural zero**, and no rule ever builds `0 * x`. Only nodes that lie on
//! a path from a differentiated-against node to the output get adjoints.
//! The derivative of each op is one row of the table in `rules`.

pub mod derived;
mod rules;
mod scan;

use crate::ir::{Graph, NodeId};

/// Vector-Jacobian product: d⟨seed, output⟩ / d(wrt[i]) for each `wrt[i]`.
/// `seed` must have the output's shape. `None` means the derivative is zero.
pub fn vjp(g: &mut Graph, output: NodeId, seed: NodeId, wrt: &[NodeId]) -> Vec<Option<NodeId>> {
    assert_eq!(
        g.shape(output),
        g.shape(seed),
        "seed must match the output's shape"
    );
    let on_path = on_path(g, output, wrt);
    let mut adjoint: Vec<Option<NodeId>> = vec![None; output.index() + 1];
    adjoint[output.index()] = Some(seed);
    for i in (0..=output.index()).rev() {
        let Some(bar) = adjoint[i] else { continue };
        let id = NodeId(i as u32);
        let node = g.node(id).clone();
        let needed: Vec<bool> = node.args.iter().map(|a| on_path[a.index()]).collect();
        if !needed.iter().any(|&n| n) {
            continue;
        }
        let contributions = rules::pullback(g, id, &node, bar, &needed);
        for ((arg, contribution), need) in node.args.iter().zip(contributions).zip(needed) {
            if let (Some(c), true) = (contribution, need) {
                let slot = &mut adjoint[arg.index()];
                *slot = Some(match *slot {
                    Some(prev) => g.add_(prev, c),
                    None => c,
                });
            }
        }
    }
    wrt.iter()
        .map(|w| adjoint.get(w.index()).copied().flatten())
        .collect()
}

/// Gradient of a scalar node.
pub fn grad(g: &mut Graph, output: NodeId, wrt: &[NodeId]) -> Vec<Option<NodeId>> {
    assert!(g.shape(output).is_empty(), "grad needs a scalar output");
    let one = g.scalar(1.0);
    vjp(g, output, one, wrt)
}

/// Nodes that depend on some `wrt` node and feed `output`: the only nodes whose
/// adjoints can be nonzero and are worth building.
fn on_path(g: &Graph, output: NodeId, wrt: &[NodeId]) -> Vec<bool> {
    let n = output.index() + 1;
    let mut depends = vec![false; n];
    for w in wrt {
        if w.index() < n {
            depends[w.index()] = true;
        }
    }
    for i in 0..n {
        if !depends[i]
            && g.node(NodeId(i as u32))
                .args
                .iter()
                .any(|a| depends[a.index()])
        {
            depends[i] = true;
        }
    }
    depends
}
