//! Sampler steps as IR. A Langevin update is a few elementwise ops around
//! ∇ₓE; expressing it as a graph lets a backend fuse energy, gradient and
//! update into one kernel call per step, with the Gaussian noise as an input.

use crate::autodiff::derived::{Want, derive};
use crate::ir::{BatchReduce, Graph, InputKind};

/// x' = x − a·∇ₓE(x) + b·ξ, with ξ a `Sample` input named `noise`.
/// Unadjusted Langevin is a = λ/2, b = √λ. Outputs `x_next` and, when asked,
/// `energy` at x.
pub fn langevin_step(
    energy: &Graph,
    grad_scale: f64,
    noise_scale: f64,
    with_energy: bool,
) -> Result<Graph, String> {
    let mut g = derive(energy, Want::ENERGY_GRAD)?;
    let x_id = g.find_input("x").ok_or("graph has no input `x`")?;
    let shape = g.input(x_id).shape.clone();
    let x = g.input_node("x", shape.clone(), InputKind::Sample);
    let noise = g.input_node("noise", shape.clone(), InputKind::Sample);
    let e = g.output("energy").expect("derive keeps the energy");
    let gx = g.output("grad_x").expect("derive builds grad_x");
    let a = g.fill(grad_scale, &shape);
    let b = g.fill(noise_scale, &shape);
    let drift = g.mul(a, gx);
    let kick = g.mul(b, noise);
    let moved = g.sub(x, drift);
    let next = g.add_(moved, kick);
    g.outputs.clear();
    g.add_output("x_next", next, BatchReduce::PerSample);
    if with_energy {
        g.add_output("energy", e, BatchReduce::PerSample);
    }
    Ok(g)
}
