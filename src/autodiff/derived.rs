//! Kernel specs: the derivative kernels runners ask for, built from a
//! definition's graph by applying `vjp` once (∇ₓE, ∇_θE, pullbacks of a
//! model's outputs by a per-sample cotangent) or twice (the Hessian-vector
//! product ∇ₓ(∇ₓE·v), and the mixed product ∇_θ(∇ₓE·v) that improved CD
//! needs). A [`KernelSpec`] says *what* to compute, like a composition of
//! JAX's `vjp`/`grad`; [`derive`] builds the graph, and [`KernelSpec::layout`]
//! says which output slot holds what, so callers bind results by typed
//! [`Slot`]s rather than by output names.
//!
//! Conventions of the source graph: a `Sample` input `x`, optionally a
//! `Sample` input `c`, every `Shared` input a parameter, and one output (an
//! energy's scalar, or a model's values). Added inputs: `seed` (a per-sample
//! cotangent shaped like the output) and `v` (a direction shaped like `x`).
//! Added outputs keep readable names for `ebm dump` (`grad_x`, `grad.NAME`,
//! `hvp`, `mixed.NAME`); nothing binds by those names.

use crate::ir::{BatchReduce, Graph, InputKind, NodeId, Op};

use super::vjp;

/// What the pullback of the definition's output is seeded with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Seed {
    /// The constant 1: the gradient of a scalar output (∇ₓE, ∇_θ ΣE).
    One,
    /// A per-sample cotangent input `seed` shaped like the output:
    /// ∇ Σ_b ⟨seed_b, f(x_b)⟩ (CD's weighted energies, JEM's logits).
    PerSample,
}

/// A vector-Jacobian product of the definition's output. The `x` part is
/// per sample; the parameter part is summed over the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pullback {
    pub seed: Seed,
    pub wrt_x: bool,
    pub wrt_params: bool,
}

/// Which results one kernel computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct KernelSpec {
    /// The definition's own output, per sample.
    pub value: bool,
    pub pullback: Option<Pullback>,
    /// ∇ₓ(∇ₓE·v) per sample (energies only).
    pub hvp: bool,
    /// ∇_θ(∇ₓE·v) summed over the batch (energies only).
    pub mixed: bool,
}

/// What one output slot of a kernel holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    Value,
    PullbackX,
    /// The pullback w.r.t. the graph's `k`-th parameter (`Shared` input order).
    PullbackParam(usize),
    Hvp,
    Mixed(usize),
}

impl KernelSpec {
    pub const ENERGY: KernelSpec = KernelSpec {
        value: true,
        pullback: None,
        hvp: false,
        mixed: false,
    };
    /// E and ∇ₓE.
    pub const ENERGY_GRAD: KernelSpec = KernelSpec {
        pullback: Some(Pullback {
            seed: Seed::One,
            wrt_x: true,
            wrt_params: false,
        }),
        ..KernelSpec::ENERGY
    };
    /// ∇ₓE alone.
    pub const GRAD_X: KernelSpec = KernelSpec {
        value: false,
        ..KernelSpec::ENERGY_GRAD
    };
    /// ∇_θ of the batch-summed output.
    pub const GRAD_PARAMS: KernelSpec = KernelSpec {
        value: false,
        pullback: Some(Pullback {
            seed: Seed::One,
            wrt_x: false,
            wrt_params: true,
        }),
        hvp: false,
        mixed: false,
    };
    pub const HVP: KernelSpec = KernelSpec {
        value: false,
        pullback: None,
        hvp: true,
        mixed: false,
    };
    pub const MIXED: KernelSpec = KernelSpec {
        value: false,
        pullback: None,
        hvp: false,
        mixed: true,
    };
    /// Everything with a unit seed (what `ebm dump --kernel all` shows).
    pub const ALL: KernelSpec = KernelSpec {
        value: true,
        pullback: Some(Pullback {
            seed: Seed::One,
            wrt_x: true,
            wrt_params: true,
        }),
        hvp: true,
        mixed: true,
    };

    /// The weighted parameter gradient ∇_θ Σ_b w_b·f(x_b), with the value.
    pub fn weighted_grad_params() -> KernelSpec {
        KernelSpec {
            value: true,
            pullback: Some(Pullback {
                seed: Seed::PerSample,
                wrt_x: false,
                wrt_params: true,
            }),
            hvp: false,
            mixed: false,
        }
    }

    pub fn needs_direction(&self) -> bool {
        self.hvp || self.mixed
    }
    pub fn needs_seed(&self) -> bool {
        matches!(self.pullback, Some(p) if p.seed == Seed::PerSample)
    }

    /// The output slots, in the order `derive` adds them, for a graph with
    /// `params` parameters.
    pub fn layout(&self, params: usize) -> Vec<Slot> {
        let mut s = Vec::new();
        if self.value {
            s.push(Slot::Value);
        }
        if let Some(p) = self.pullback {
            if p.wrt_x {
                s.push(Slot::PullbackX);
            }
            if p.wrt_params {
                s.extend((0..params).map(Slot::PullbackParam));
            }
        }
        if self.hvp {
            s.push(Slot::Hvp);
        }
        if self.mixed {
            s.extend((0..params).map(Slot::Mixed));
        }
        s
    }
}

/// Builds a graph with the outputs `spec` asks for, in `spec.layout` order.
pub fn derive(source: &Graph, spec: KernelSpec) -> Result<Graph, String> {
    let mut g = source.clone();
    let out = g.outputs.first().ok_or("graph has no output")?.clone();
    let x_id = g.find_input("x").ok_or("graph has no input `x`")?;
    let x_shape = g.input(x_id).shape.clone();
    let out_shape = g.shape(out.node).to_vec();
    let scalar = out_shape.is_empty();
    let x = g.input_node("x", x_shape.clone(), InputKind::Sample);
    let params = param_nodes(&mut g);
    g.outputs.clear();
    if spec.value {
        g.add_output(out.name.clone(), out.node, BatchReduce::PerSample);
    }
    if !scalar && (spec.needs_direction() || spec.pullback.is_some_and(|p| p.seed == Seed::One)) {
        return Err(format!(
            "`{}` has values of shape {out_shape:?}: gradients, HVPs and mixed products need a scalar output (pull back a per-sample seed instead)",
            source.name
        ));
    }
    // ∇ₓE with the unit seed, shared by the pullback, the HVP and the mixed product.
    let mut unit_gx = None;
    if let Some(p) = spec.pullback {
        let seed = match p.seed {
            Seed::One => g.scalar(1.0),
            Seed::PerSample => g.input_node("seed", out_shape.clone(), InputKind::Sample),
        };
        let wrt: Vec<NodeId> = std::iter::once(x)
            .chain(params.iter().map(|(_, n)| *n))
            .collect();
        let mut ds = vjp(&mut g, out.node, seed, &wrt).into_iter();
        let dx = ds.next().flatten();
        if p.wrt_x {
            let d = or_zero(&mut g, dx, &x_shape);
            if p.seed == Seed::One {
                unit_gx = Some(d);
            }
            g.add_output("grad_x", d, BatchReduce::PerSample);
        }
        if p.wrt_params {
            add_param_outputs(&mut g, "grad", &params, ds.collect());
        }
    }
    if spec.needs_direction() {
        let gx = match unit_gx {
            Some(d) => d,
            None => {
                let one = g.scalar(1.0);
                let d = vjp(&mut g, out.node, one, &[x])[0];
                or_zero(&mut g, d, &x_shape)
            }
        };
        let v = g.input_node("v", x_shape.clone(), InputKind::Sample);
        if spec.hvp {
            let d = vjp(&mut g, gx, v, &[x])[0];
            let h = or_zero(&mut g, d, &x_shape);
            g.add_output("hvp", h, BatchReduce::PerSample);
        }
        if spec.mixed {
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
