//! The derivative kernels runners ask for, built from an energy graph by
//! applying `vjp` once (∇ₓE, ∇_θE) or twice (Hessian-vector product
//! ∇ₓ(∇ₓE·v), and the mixed product ∇_θ(∇ₓE·v) that improved CD needs).
//!
//! Conventions: the energy graph has a `Sample` input `x` and a scalar output
//! `energy`; every `Shared` input is a parameter. Added outputs are named
//! `grad_x`, `hvp` (per sample), `grad.NAME` and `mixed.NAME` (summed over the
//! batch); the HVP direction is a new `Sample` input `v` shaped like `x`.

use crate::ir::{BatchReduce, Graph, InputKind, NodeId, Op};

use super::{grad, vjp};

/// Which outputs to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    pub energy: bool,
    pub grad_x: bool,
    pub grad_params: bool,
    pub hvp: bool,
    pub mixed: bool,
}

impl Want {
    pub const ENERGY: Want = Want {
        energy: true,
        grad_x: false,
        grad_params: false,
        hvp: false,
        mixed: false,
    };
    pub const ENERGY_GRAD: Want = Want {
        grad_x: true,
        ..Want::ENERGY
    };
}

/// Builds a graph with the requested outputs from an energy graph.
pub fn derive(energy: &Graph, want: Want) -> Result<Graph, String> {
    let mut g = energy.clone();
    let e = g.output("energy").ok_or("graph has no `energy` output")?;
    let x_id = g.find_input("x").ok_or("graph has no input `x`")?;
    let x_shape = g.input(x_id).shape.clone();
    let x = g.input_node("x", x_shape.clone(), InputKind::Sample);
    let params = param_nodes(&mut g);
    g.outputs.clear();
    if want.energy {
        g.add_output("energy", e, BatchReduce::PerSample);
    }
    let needs_gx = want.grad_x || want.hvp || want.mixed;
    let gx = if needs_gx {
        let d = grad(&mut g, e, &[x])[0];
        Some(or_zero(&mut g, d, &x_shape))
    } else {
        None
    };
    if want.grad_x {
        g.add_output("grad_x", gx.unwrap(), BatchReduce::PerSample);
    }
    if want.grad_params {
        let wrt: Vec<NodeId> = params.iter().map(|(_, n)| *n).collect();
        let ds = grad(&mut g, e, &wrt);
        add_param_outputs(&mut g, "grad", &params, ds);
    }
    if want.hvp || want.mixed {
        let v = g.input_node("v", x_shape.clone(), InputKind::Sample);
        let gx = gx.unwrap();
        if want.hvp {
            let d = vjp(&mut g, gx, v, &[x])[0];
            let h = or_zero(&mut g, d, &x_shape);
            g.add_output("hvp", h, BatchReduce::PerSample);
        }
        if want.mixed {
            let wrt: Vec<NodeId> = params.iter().map(|(_, n)| *n).collect();
            let ds = vjp(&mut g, gx, v, &wrt);
            add_param_outputs(&mut g, "mixed", &params, ds);
        }
    }
    Ok(g)
}

/// The parameter inputs (every `Shared` input), with their read nodes.
fn param_nodes(g: &mut Graph) -> Vec<(String, NodeId)> {
    let decls: Vec<_> = g
        .inputs()
        .iter()
        .filter(|i| i.kind == InputKind::Shared)
        .cloned()
        .collect();
    decls
        .into_iter()
        .map(|d| {
            let n = g.input_node(d.name.clone(), d.shape, InputKind::Shared);
            (d.name, n)
        })
        .collect()
}

fn add_param_outputs(
    g: &mut Graph,
    prefix: &str,
    params: &[(String, NodeId)],
    ds: Vec<Option<NodeId>>,
) {
    for ((name, node), d) in params.iter().zip(ds) {
        let shape = g.shape(*node).to_vec();
        let d = or_zero(g, d, &shape);
        g.add_output(format!("{prefix}.{name}"), d, BatchReduce::Sum);
    }
}

/// Materialises a structural zero only where an output must exist.
fn or_zero(g: &mut Graph, d: Option<NodeId>, shape: &[usize]) -> NodeId {
    d.unwrap_or_else(|| g.fill(0.0, shape))
}

/// Whether a node is a literal zero (used by tests asserting "no 0*x").
pub fn is_zero(g: &Graph, n: NodeId) -> bool {
    match g.node(n).op {
        Op::Scalar(v) => v.get() == 0.0,
        Op::Broadcast => is_zero(g, g.node(n).args[0]),
        Op::Const(c) => g.constant(c).data.iter().all(|&v| v == 0.0),
        _ => false,
    }
}
