//! Sampler steps as IR. A Langevin move, a MALA or random-walk proposal and a
//! leapfrog step are a few elementwise ops around E and ∇ₓE; written as one
//! graph each, a backend fuses energy, gradient and update into one kernel
//! call per step. Randomness (ξ), per-chain step sizes and inverse masses are
//! inputs, so the graphs are pure and the engine owns every random number.
//!
//! Each builder returns a [`StepGraph`]: the graph, the role of each of its
//! inputs (indexed by `InputId`, stable through `opt::optimize`) and a fixed
//! output order documented on the builder. NaN and infinity propagate through
//! every step (clipping and clamping use `select`, not `max`/`min`), so a
//! diverging chain is always visible to the engine.

use crate::autodiff::derived::{KernelSpec, derive};
use crate::ir::{BatchReduce, BinaryOp, Graph, InputDecl, InputKind, NodeId, UnaryOp, inline};

/// What a step kernel's input is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepRole {
    /// The chains' positions.
    X,
    /// HMC momenta.
    Momentum,
    /// ∇ₓE at the positions.
    Grad,
    /// Standard normal noise, one per coordinate.
    Noise,
    /// Per-chain step size (shape [1]).
    Step,
    /// Per-chain diagonal inverse mass (shaped like x).
    InvMass,
    /// Per-chain inverse temperature β (shape [1]): the move targets exp(−βE).
    Beta,
    /// The conditioning input.
    Cond,
    /// A parameter, by its name in the energy graph.
    Param,
}

pub struct StepGraph {
    pub graph: Graph,
    pub roles: Vec<StepRole>,
}

/// How ULA moves: x' = clamp(x − drift·clip(∇E) + noise·ξ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UlaMove {
    pub drift: f64,
    pub noise: f64,
    pub clip: Option<f64>,
    pub clamp: Option<(f64, f64)>,
}

struct Builder {
    g: Graph,
    energy: Graph,
    shape: Vec<usize>,
}

impl Builder {
    fn new(energy: &Graph) -> Result<Builder, String> {
        let x = energy.find_input("x").ok_or("graph has no input `x`")?;
        let shape = energy.input(x).shape.clone();
        Ok(Builder {
            g: Graph::new(energy.name.clone()),
            energy: derive(energy, KernelSpec::ENERGY_GRAD)?,
            shape,
        })
    }
    fn sample(&mut self, name: &str) -> NodeId {
        self.g
            .input_node(name, self.shape.clone(), InputKind::Sample)
    }
    /// A per-chain scalar, broadcast over the coordinates (a scalar `x`
    /// reads it as it is: a rank-1 value cannot broadcast to rank 0).
    fn per_chain(&mut self, name: &str) -> NodeId {
        if self.shape.is_empty() {
            return self.g.input_node(name, vec![], InputKind::Sample);
        }
        let s = self.g.input_node(name, vec![1], InputKind::Sample);
        self.g.broadcast(s, &self.shape.clone())
    }
    fn fill(&mut self, v: f64) -> NodeId {
        self.g.fill(v, &self.shape.clone())
    }
    /// E(at) and ∇ₓE(at), the energy graph inlined at `at`.
    fn energy_grad(&mut self, at: NodeId) -> (NodeId, NodeId) {
        let outs = inline(&mut self.g, &self.energy, |g, d| match d.kind {
            InputKind::Sample if d.name == "x" => at,
            _ => g.input_node(d.name.clone(), d.shape.clone(), d.kind),
        });
        (outs[0], outs[1])
    }
    /// v where lo ≤ v ≤ hi, else the bound; NaN stays NaN.
    fn clamp(&mut self, v: NodeId, lo: f64, hi: f64) -> NodeId {
        let (lo, hi) = (self.fill(lo), self.fill(hi));
        let above = self.g.binary(BinaryOp::Gt, v, hi);
        let below = self.g.binary(BinaryOp::Gt, lo, v);
        let low = self.g.select(below, lo, v);
        self.g.select(above, hi, low)
    }
    fn finish(mut self, outputs: &[(&str, NodeId)]) -> StepGraph {
        for (name, n) in outputs {
            self.g.add_output(*name, *n, BatchReduce::PerSample);
        }
        StepGraph::of(self.g)
    }
}

impl StepGraph {
    /// A graph with the role of each input read from its conventional name.
    pub fn of(graph: Graph) -> StepGraph {
        let roles = graph.inputs().iter().map(role_of).collect();
        StepGraph { graph, roles }
    }
}

fn role_of(d: &InputDecl) -> StepRole {
    match (d.kind, d.name.as_str()) {
        (InputKind::Shared, _) => StepRole::Param,
        (_, "x") => StepRole::X,
        (_, "p") => StepRole::Momentum,
        (_, "grad") => StepRole::Grad,
        (_, "noise") => StepRole::Noise,
        (_, "step") => StepRole::Step,
        (_, "inv_mass") => StepRole::InvMass,
        (_, "beta") => StepRole::Beta,
        _ => StepRole::Cond,
    }
}

/// ULA: inputs x, noise; output `x_next`.
pub fn ula(energy: &Graph, m: UlaMove) -> Result<StepGraph, String> {
    let mut b = Builder::new(energy)?;
    let x = b.sample("x");
    let xi = b.sample("noise");
    let (_, mut gx) = b.energy_grad(x);
    if let Some(c) = m.clip {
        gx = b.clamp(gx, -c, c);
    }
    let a = b.fill(m.drift);
    let s = b.fill(m.noise);
    let drift = b.g.mul(a, gx);
    let kick = b.g.mul(s, xi);
    let moved = b.g.sub(x, drift);
    let mut next = b.g.add_(moved, kick);
    if let Some((lo, hi)) = m.clamp {
        next = b.clamp(next, lo, hi);
    }
    Ok(b.finish(&[("x_next", next)]))
}

/// MALA proposal y = x − ½h·m⊙∇E(x) + √(h·m)⊙ξ. Inputs x, grad (∇E(x)),
/// noise, step h, inv_mass m. Outputs `y`, `energy` E(y), `grad` ∇E(y) and
/// `log_q` = log q(x|y) − log q(y|x) = ½(Σ w²/(h·m) − Σ z²/(h·m)) with
/// w = y − x + ½h·m⊙∇E(x) and z = x − y + ½h·m⊙∇E(y). Both terms are
/// computed from the points as stored in the kernel's dtype, not from ξ:
/// when y rounds to x (a step too small to move the chain) the forward term
/// is the same rounded difference as the backward one, and the ratio is
/// that of the move actually proposed.
pub fn mala(energy: &Graph) -> Result<StepGraph, String> {
    mala_graph(energy, false)
}

/// The MALA proposal for the tempered target exp(−βE) (a parallel-tempering
/// replica): as [`mala`] with an extra per-chain input `beta` scaling both
/// gradients (drift β∇E(x), and β∇E(y) in `log_q`). `energy` and `grad`
/// stay E(y) and ∇E(y), unscaled: the engine keeps raw energies for swaps.
pub fn mala_tempered(energy: &Graph) -> Result<StepGraph, String> {
    mala_graph(energy, true)
}

fn mala_graph(energy: &Graph, tempered: bool) -> Result<StepGraph, String> {
    let mut b = Builder::new(energy)?;
    let x = b.sample("x");
    let mut gx = b.sample("grad");
    let xi = b.sample("noise");
    let h = b.per_chain("step");
    let m = b.sample("inv_mass");
    let beta = tempered.then(|| b.per_chain("beta"));
    if let Some(beta) = beta {
        gx = b.g.mul(beta, gx);
    }
    let half = b.fill(0.5);
    let hm = b.g.mul(h, m);
    let half_hm = b.g.mul(half, hm);
    let drift = b.g.mul(half_hm, gx);
    let sd = b.g.unary(UnaryOp::Sqrt, hm);
    let kick = b.g.mul(sd, xi);
    let moved = b.g.sub(x, drift);
    let y = b.g.add_(moved, kick);
    let (ey, gy) = b.energy_grad(y);
    let gy_t = match beta {
        Some(beta) => b.g.mul(beta, gy),
        None => gy,
    };
    let back = b.g.mul(half_hm, gy_t);
    let d = b.g.sub(x, y);
    let z = b.g.add_(d, back);
    let z2 = b.g.mul(z, z);
    let scaled = b.g.div(z2, hm);
    let bwd = b.g.sum_all(scaled);
    let dy = b.g.sub(y, x);
    let w = b.g.add_(dy, drift);
    let w2 = b.g.mul(w, w);
    let fscaled = b.g.div(w2, hm);
    let fwd = b.g.sum_all(fscaled);
    let diff = b.g.sub(fwd, bwd);
    let half_s = b.g.scalar(0.5);
    let log_q = b.g.mul(half_s, diff);
    Ok(b.finish(&[("y", y), ("energy", ey), ("grad", gy), ("log_q", log_q)]))
}

/// Random-walk proposal y = x + h·√m⊙ξ. Inputs x, noise, step, inv_mass.
/// Outputs `y` and `energy` E(y).
pub fn rwmh(energy: &Graph) -> Result<StepGraph, String> {
    let mut b = Builder::new(energy)?;
    let x = b.sample("x");
    let xi = b.sample("noise");
    let h = b.per_chain("step");
    let m = b.sample("inv_mass");
    let sm = b.g.unary(UnaryOp::Sqrt, m);
    let scale = b.g.mul(h, sm);
    let kick = b.g.mul(scale, xi);
    let y = b.g.add_(x, kick);
    let e = energy_only(&mut b, y);
    Ok(b.finish(&[("y", y), ("energy", e)]))
}

fn energy_only(b: &mut Builder, at: NodeId) -> NodeId {
    b.energy_grad(at).0
}

/// One leapfrog step with half kicks on both sides:
/// p½ = p − ½ε∇E(x); x' = x + ε·m⊙p½; p' = p½ − ½ε∇E(x').
/// Inputs x, p, grad (∇E(x)), step ε, inv_mass m. Outputs `x`, `p`, `grad`
/// ∇E(x') and `energy` E(x').
pub fn leapfrog(energy: &Graph) -> Result<StepGraph, String> {
    let mut b = Builder::new(energy)?;
    let x = b.sample("x");
    let p = b.sample("p");
    let gx = b.sample("grad");
    let eps = b.per_chain("step");
    let m = b.sample("inv_mass");
    let half = b.fill(0.5);
    let half_eps = b.g.mul(half, eps);
    let k0 = b.g.mul(half_eps, gx);
    let ph = b.g.sub(p, k0);
    let em = b.g.mul(eps, m);
    let dx = b.g.mul(em, ph);
    let x2 = b.g.add_(x, dx);
    let (e2, g2) = b.energy_grad(x2);
    let k1 = b.g.mul(half_eps, g2);
    let p2 = b.g.sub(ph, k1);
    Ok(b.finish(&[("x", x2), ("p", p2), ("grad", g2), ("energy", e2)]))
}

/// How ULD moves: the time step h and the O step's c = e^(−γh).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UldMove {
    pub h: f64,
    pub c: f64,
}

impl UldMove {
    pub fn new(h: f64, friction: f64) -> UldMove {
        UldMove {
            h,
            c: (-friction * h).exp(),
        }
    }
    /// The O step's noise scale √(1 − c²).
    pub fn noise(&self) -> f64 {
        (1.0 - self.c * self.c).max(0.0).sqrt()
    }
}

/// One BAOAB step of underdamped Langevin with unit mass:
/// v½ = v − (h/2)∇E(x); x½ = x + (h/2)v½; v' = c·v½ + √(1−c²)ξ;
/// x' = x½ + (h/2)v'; v'' = v' − (h/2)∇E(x'). Inputs x, p (v), grad
/// (∇E(x)), noise ξ. Outputs `x`, `p`, `grad` ∇E(x') and `energy` E(x').
pub fn uld(energy: &Graph, m: UldMove) -> Result<StepGraph, String> {
    let mut b = Builder::new(energy)?;
    let x = b.sample("x");
    let v = b.sample("p");
    let gx = b.sample("grad");
    let xi = b.sample("noise");
    let half_h = b.fill(0.5 * m.h);
    let c = b.fill(m.c);
    let s = b.fill(m.noise());
    let k0 = b.g.mul(half_h, gx);
    let v1 = b.g.sub(v, k0);
    let d1 = b.g.mul(half_h, v1);
    let x1 = b.g.add_(x, d1);
    let cv = b.g.mul(c, v1);
    let kick = b.g.mul(s, xi);
    let v2 = b.g.add_(cv, kick);
    let d2 = b.g.mul(half_h, v2);
    let x2 = b.g.add_(x1, d2);
    let (e2, g2) = b.energy_grad(x2);
    let k1 = b.g.mul(half_h, g2);
    let v3 = b.g.sub(v2, k1);
    Ok(b.finish(&[("x", x2), ("p", v3), ("grad", g2), ("energy", e2)]))
}
