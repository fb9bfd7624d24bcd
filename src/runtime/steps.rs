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
    /// E at the positions (shape [], a Metropolis transition's carried energy).
    Energy,
    /// One uniform in (0, 1] per chain (shape []): the Metropolis decision's.
    Uniform,
    /// 1 for a chain that may move, 0 for one frozen (shape []).
    Live,
    /// A second uniform in (0, 1] per chain (shape []): HMC's step jitter.
    Jitter,
    /// The conditioning input.
    Cond,
    /// A parameter, by its name in the energy graph.
    Param,
    /// Dual averaging of a whole transition's step (shape [] each): 1 to
    /// adapt or 0 to keep the step, μ, the target acceptance, the averaged
    /// error h̄ and the count of updates since the last restart.
    AdaptOn,
    AdaptMu,
    AdaptTarget,
    AdaptError,
    AdaptCount,
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
        (_, "energy") => StepRole::Energy,
        (_, "uniform") => StepRole::Uniform,
        (_, "live") => StepRole::Live,
        (_, "jitter") => StepRole::Jitter,
        (_, "da_on") => StepRole::AdaptOn,
        (_, "da_mu") => StepRole::AdaptMu,
        (_, "da_target") => StepRole::AdaptTarget,
        (_, "da_error") => StepRole::AdaptError,
        (_, "da_count") => StepRole::AdaptCount,
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
    let gx = b.sample("grad");
    let p = b.mala_proposal(x, gx, tempered);
    let log_q = p.log_q.unwrap_or(p.energy);
    Ok(b.finish(&[
        ("y", p.y),
        ("energy", p.energy),
        ("grad", p.grad),
        ("log_q", log_q),
    ]))
}

/// Random-walk proposal y = x + h·√m⊙ξ. Inputs x, noise, step, inv_mass.
/// Outputs `y` and `energy` E(y).
pub fn rwmh(energy: &Graph) -> Result<StepGraph, String> {
    let mut b = Builder::new(energy)?;
    let x = b.sample("x");
    let p = b.rwmh_proposal(x);
    Ok(b.finish(&[("y", p.y), ("energy", p.energy)]))
}

/// Which proposal a Metropolis transition makes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MhKind {
    Mala,
    RandomWalk,
    Hmc(HmcMove),
}

/// Static HMC's trajectory: `leapfrog` steps of a per-chain ε jittered by
/// ±`jitter` (relative), and the energy error above which a transition is
/// divergent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HmcMove {
    pub leapfrog: usize,
    pub jitter: f64,
    pub max_error: f64,
}

/// A whole Metropolis–Hastings transition as one graph — the proposal
/// ([`mala`]'s or [`rwmh`]'s), then the decision — so that a backend can run
/// a window of transitions on resident buffers. Inputs x, `energy` E(x),
/// `grad` ∇E(x) (MALA only), noise, step, inv_mass, `uniform` u ∈ (0, 1]
/// and `live` (1, or 0 for a chain that never moves). Outputs the chain's
/// next state `x`, `energy` and (MALA) `grad`, then `accept` and
/// `divergent` (1 or 0).
///
/// The decision is the sampling engine's, written as ops: a proposal whose
/// point, energy or gradient is not finite, or a chain not live, is
/// divergent and stays; a proposal that rounds to x bit for bit is no move
/// (acceptance 0); otherwise log a = (E(x) − E(y)) + log q, the acceptance
/// is min(1, exp(log a)) (0 for NaN) and the chain moves where ln u < log a.
/// In f64 with the engine's uniforms it makes the engine's decisions.
///
/// Then warm-up's step adaptation (`Builder::dual_averaging`): outputs
/// `step` (the chain's next step size: the adapted one where input `da_on`
/// is 1, else the same), `da_error` and `da_count`, which a window carries
/// into the inputs of the same names, and `used`, the step this transition
/// took (HMC's jittered ε). Warm-up and sampling windows thus run one
/// kernel with one carried state, `da_on` telling them apart.
pub fn mh_transition(
    energy: &Graph,
    kind: MhKind,
    rule: DualAveragingRule,
) -> Result<StepGraph, String> {
    let mut b = Builder::new(energy)?;
    let x = b.sample("x");
    let e = b.g.input_node("energy", vec![], InputKind::Sample);
    let (p, gx) = match kind {
        MhKind::Mala => {
            let gx = b.sample("grad");
            (b.mala_proposal(x, gx, false), Some(gx))
        }
        MhKind::RandomWalk => (b.rwmh_proposal(x), None),
        MhKind::Hmc(m) => return hmc_transition(b, x, e, m, rule),
    };
    let u = b.g.input_node("uniform", vec![], InputKind::Sample);
    let live = b.g.input_node("live", vec![], InputKind::Sample);
    let y_ok = b.finite(p.y);
    let mut ok = b.g.mul(live, y_ok);
    let e_ok = b.finite(p.energy);
    ok = b.g.mul(ok, e_ok);
    if kind == MhKind::Mala {
        let g_ok = b.finite(p.grad);
        ok = b.g.mul(ok, g_ok);
    }
    let moved = b.differs(p.y, x);
    let mut log_a = b.g.sub(e, p.energy);
    if let Some(q) = p.log_q {
        log_a = b.g.add_(log_a, q);
    }
    let d = b.decide(log_a, ok, moved, u);
    let take_row = b.spread(d.take);
    let x_next = b.g.select(take_row, p.y, x);
    let e_next = b.g.select(d.take, p.energy, e);
    let mut outs = vec![("x", x_next), ("energy", e_next)];
    if let Some(gx) = gx {
        outs.push(("grad", b.g.select(take_row, p.grad, gx)));
    }
    outs.extend([("accept", d.accept), ("divergent", d.divergent)]);
    let used = b.step_input();
    outs.extend(b.dual_averaging(d.accept, used, rule));
    Ok(b.finish(&outs))
}

/// Dual averaging's constants t₀ and γ (the sampling engine's
/// `adapt::DualAveraging`, whose update [`mh_transition`] repeats as ops).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DualAveragingRule {
    pub t0: f64,
    pub gamma: f64,
}

/// [`mh_transition`] for static HMC. Inputs x, energy, grad, noise ξ (the
/// momenta's normals), step ε, inv_mass m, `uniform` (the decision's),
/// `jitter` (ε's, both in (0, 1]) and live. The engine's transition as
/// ops: momenta p = ξ/√m, H₀ = E(x) + ½Σp·(m⊙p); the chain's ε times
/// 1 + jitter·(2u − 1); `leapfrog` unrolled leapfrog steps (the fused
/// [`leapfrog`]'s ops), a trajectory that meets a non-finite point, energy
/// or gradient being dead; ΔH = E(x_L) + ½Σp_L·(m⊙p_L) − H₀. A dead
/// trajectory, a non-finite ΔH or one above `max_error`, or a chain not
/// live is divergent and stays; one that ends where it began is no move;
/// otherwise log a = −ΔH as in [`mh_transition`]. Outputs as MALA's
/// transition (`x`, `energy`, `grad`, `accept`, `divergent`), then
/// `hamiltonian` H₀ and the step adaptation's outputs.
fn hmc_transition(
    mut b: Builder,
    x: NodeId,
    e: NodeId,
    m: HmcMove,
    rule: DualAveragingRule,
) -> Result<StepGraph, String> {
    let gx = b.sample("grad");
    let xi = b.sample("noise");
    let mass = b.sample("inv_mass");
    let u = b.g.input_node("uniform", vec![], InputKind::Sample);
    let uj = b.g.input_node("jitter", vec![], InputKind::Sample);
    let live = b.g.input_node("live", vec![], InputKind::Sample);
    let eps = b.jittered_step(uj, m.jitter);
    let sm = b.g.unary(UnaryOp::Sqrt, mass);
    let p0 = b.g.div(xi, sm);
    let k0 = b.kinetic(p0, mass);
    let h0 = b.g.add_(e, k0);
    let (mut xt, mut pt, mut gt, mut et) = (x, p0, gx, e);
    let mut alive = live;
    for _ in 0..m.leapfrog {
        (xt, pt, gt, et) = b.leapfrog_step(xt, pt, gt, eps, mass);
        for v in [et, xt, gt] {
            let f = b.finite(v);
            alive = b.g.mul(alive, f);
        }
    }
    let k = b.kinetic(pt, mass);
    let h = b.g.add_(et, k);
    let dh = b.g.sub(h, h0);
    let dh_ok = b.finite(dh);
    let bound = b.g.scalar(m.max_error);
    let small = b.g.binary(BinaryOp::Ge, bound, dh);
    let ok = b.g.mul(alive, dh_ok);
    let ok = b.g.mul(ok, small);
    let moved = b.differs(xt, x);
    let log_a = b.g.unary(UnaryOp::Neg, dh);
    let d = b.decide(log_a, ok, moved, u);
    let take_row = b.spread(d.take);
    let x_next = b.g.select(take_row, xt, x);
    let e_next = b.g.select(d.take, et, e);
    let g_next = b.g.select(take_row, gt, gx);
    let used = b.jittered_chain_step(uj, m.jitter);
    let mut outs = vec![
        ("x", x_next),
        ("energy", e_next),
        ("grad", g_next),
        ("accept", d.accept),
        ("divergent", d.divergent),
        ("hamiltonian", h0),
    ];
    outs.extend(b.dual_averaging(d.accept, used, rule));
    Ok(b.finish(&outs))
}

/// A Metropolis decision: whether the chain moves, its acceptance and
/// whether the transition was divergent (each 1 or 0).
struct Decision {
    take: NodeId,
    accept: NodeId,
    divergent: NodeId,
}

impl Builder {
    /// The engine's decision on log a for a proposal that is `ok` (finite,
    /// live) and `moved` (not bitwise x): the acceptance min(1, exp(log a))
    /// (0 for NaN) of a tried proposal, and a move where ln u < log a.
    fn decide(&mut self, log_a: NodeId, ok: NodeId, moved: NodeId, u: NodeId) -> Decision {
        let g = &mut self.g;
        let zero = g.scalar(0.0);
        let one = g.scalar(1.0);
        let sure = g.binary(BinaryOp::Ge, log_a, zero);
        let ratio = g.unary(UnaryOp::Exp, log_a);
        let a = g.select(sure, one, ratio);
        let a_not_nan = g.binary(BinaryOp::Ge, a, zero);
        let a = g.select(a_not_nan, a, zero);
        let ln_u = g.unary(UnaryOp::Log, u);
        let yes = g.binary(BinaryOp::Gt, log_a, ln_u);
        let tried = g.mul(ok, moved);
        Decision {
            take: g.mul(tried, yes),
            accept: g.select(tried, a, zero),
            divergent: g.sub(one, ok),
        }
    }
    /// The chain's step (input `step`) times 1 + jitter·(2u − 1), over x's
    /// shape, in the engine's order of operations.
    fn jittered_step(&mut self, u: NodeId, jitter: f64) -> NodeId {
        let factor = self.jitter_factor(u, jitter);
        let factor = self.spread(factor);
        let step = self.per_chain("step");
        self.g.mul(step, factor)
    }
    /// 1 + jitter·(2u − 1), per chain.
    fn jitter_factor(&mut self, u: NodeId, jitter: f64) -> NodeId {
        let g = &mut self.g;
        let (two, one, j) = (g.scalar(2.0), g.scalar(1.0), g.scalar(jitter));
        let u2 = g.mul(two, u);
        let centred = g.sub(u2, one);
        let spread = g.mul(j, centred);
        g.add_(one, spread)
    }
    /// [`jittered_step`](Self::jittered_step)'s value once per chain, shaped
    /// like the `step` input (the same products, so the same bits).
    fn jittered_chain_step(&mut self, u: NodeId, jitter: f64) -> NodeId {
        let factor = self.jitter_factor(u, jitter);
        let step = self.step_input();
        let shape = self.g.shape(step).to_vec();
        let factor = if shape.is_empty() {
            factor
        } else {
            self.g.broadcast(factor, &shape)
        };
        self.g.mul(step, factor)
    }
    /// The per-chain input `step` as declared: [1], or [] for a scalar x.
    fn step_input(&mut self) -> NodeId {
        let shape = if self.shape.is_empty() {
            vec![]
        } else {
            vec![1]
        };
        self.g.input_node("step", shape, InputKind::Sample)
    }
    /// One update of the engine's dual averaging of log ε towards the
    /// target acceptance, from this transition's acceptance `accept` (in
    /// [0, 1] by construction) — the engine's operations in its order, so
    /// f64 gives its bits: n = count + 1, η = 1/(n + t₀),
    /// h̄ ← (1 − η)·h̄ + η·(target − accept), log ε = μ − √n/γ·h̄. Inputs
    /// `da_on`, `da_mu`, `da_target`, `da_error` (h̄) and `da_count`, each
    /// per chain; outputs `step` (exp(log ε) where `da_on` is 1, else the
    /// input step), `da_error`, `da_count` and `used`.
    fn dual_averaging(
        &mut self,
        accept: NodeId,
        used: NodeId,
        rule: DualAveragingRule,
    ) -> [(&'static str, NodeId); 4] {
        let per_chain =
            |b: &mut Builder, name: &str| b.g.input_node(name, vec![], InputKind::Sample);
        let on = per_chain(self, "da_on");
        let mu = per_chain(self, "da_mu");
        let target = per_chain(self, "da_target");
        let error = per_chain(self, "da_error");
        let count = per_chain(self, "da_count");
        let g = &mut self.g;
        let one = g.scalar(1.0);
        let n = g.add_(count, one);
        let t0 = g.scalar(rule.t0);
        let shifted = g.add_(n, t0);
        let eta = g.div(one, shifted);
        let keep = g.sub(one, eta);
        let kept = g.mul(keep, error);
        let miss = g.sub(target, accept);
        let added = g.mul(eta, miss);
        let error_next = g.add_(kept, added);
        let root = g.unary(UnaryOp::Sqrt, n);
        let gamma = g.scalar(rule.gamma);
        let scale = g.div(root, gamma);
        let pull = g.mul(scale, error_next);
        let log_step = g.sub(mu, pull);
        let adapted = g.unary(UnaryOp::Exp, log_step);
        let same = self.step_input();
        let same = if self.shape.is_empty() {
            same
        } else {
            self.g.reshape(same, &[])
        };
        let step = self.g.select(on, adapted, same);
        [
            ("step", step),
            ("da_error", error_next),
            ("da_count", n),
            ("used", used),
        ]
    }
    /// ½Σ p·(m⊙p) per chain ([] for a scalar x).
    fn kinetic(&mut self, p: NodeId, mass: NodeId) -> NodeId {
        let g = &mut self.g;
        let v = g.mul(mass, p);
        let pv = g.mul(p, v);
        let sum = if g.shape(pv).is_empty() {
            pv
        } else {
            g.sum_all(pv)
        };
        let half = g.scalar(0.5);
        g.mul(half, sum)
    }
    /// [`leapfrog`]'s step from (x, p, ∇E(x)) with step ε (over x's shape)
    /// and inverse mass m: the new x, p, ∇E and E.
    fn leapfrog_step(
        &mut self,
        x: NodeId,
        p: NodeId,
        gx: NodeId,
        eps: NodeId,
        m: NodeId,
    ) -> (NodeId, NodeId, NodeId, NodeId) {
        let half = self.fill(0.5);
        let half_eps = self.g.mul(half, eps);
        let k0 = self.g.mul(half_eps, gx);
        let ph = self.g.sub(p, k0);
        let em = self.g.mul(eps, m);
        let dx = self.g.mul(em, ph);
        let x2 = self.g.add_(x, dx);
        let (e2, g2) = self.energy_grad(x2);
        let k1 = self.g.mul(half_eps, g2);
        let p2 = self.g.sub(ph, k1);
        (x2, p2, g2, e2)
    }
    /// 1 when every value of `v` is finite, else 0: |v| < inf is false for
    /// ±inf and NaN, and the flags are counted. (Not v − v = 0: lavapipe's
    /// shader compiler folds v − v to 0 whatever v is.)
    fn finite(&mut self, v: NodeId) -> NodeId {
        let g = &mut self.g;
        let shape = g.shape(v).to_vec();
        let inf = g.fill(f64::INFINITY, &shape);
        let size = g.unary(UnaryOp::Abs, v);
        let flags = g.binary(BinaryOp::Gt, inf, size);
        if shape.is_empty() {
            return flags;
        }
        let count = g.sum_all(flags);
        let all = g.scalar(crate::ir::numel(&shape) as f64);
        g.binary(BinaryOp::Ge, count, all)
    }
    /// 1 when the finite rows `a` and `b` differ in any bit, else 0: in
    /// value (a > b or b > a) or in the sign of a zero (1/a against 1/b).
    fn differs(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let g = &mut self.g;
        let (gt, lt) = (g.binary(BinaryOp::Gt, a, b), g.binary(BinaryOp::Gt, b, a));
        let one = self.fill(1.0);
        let g = &mut self.g;
        let (ra, rb) = (g.div(one, a), g.div(one, b));
        let (zgt, zlt) = (
            g.binary(BinaryOp::Gt, ra, rb),
            g.binary(BinaryOp::Gt, rb, ra),
        );
        let v = g.add_(gt, lt);
        let z = g.add_(zgt, zlt);
        let n = g.add_(v, z);
        let count = if g.shape(n).is_empty() {
            n
        } else {
            g.sum_all(n)
        };
        let zero = g.scalar(0.0);
        g.binary(BinaryOp::Gt, count, zero)
    }
    /// A per-chain value [] spread over x's shape.
    fn spread(&mut self, v: NodeId) -> NodeId {
        if self.shape.is_empty() {
            v
        } else {
            self.g.broadcast(v, &self.shape.clone())
        }
    }
}

/// A proposal: its point, E and ∇E there, and log q(x|y) − log q(y|x)
/// (`None` for the symmetric random walk).
struct Proposed {
    y: NodeId,
    energy: NodeId,
    grad: NodeId,
    log_q: Option<NodeId>,
}

impl Builder {
    /// [`mala`]'s proposal from x and ∇E(x), reading inputs noise, step,
    /// inv_mass and, when tempered, beta (which scales both gradients).
    fn mala_proposal(&mut self, x: NodeId, gx: NodeId, tempered: bool) -> Proposed {
        let xi = self.sample("noise");
        let h = self.per_chain("step");
        let m = self.sample("inv_mass");
        let beta = tempered.then(|| self.per_chain("beta"));
        let g = &mut self.g;
        let gx = match beta {
            Some(beta) => g.mul(beta, gx),
            None => gx,
        };
        let half = self.fill(0.5);
        let g = &mut self.g;
        let hm = g.mul(h, m);
        let half_hm = g.mul(half, hm);
        let drift = g.mul(half_hm, gx);
        let sd = g.unary(UnaryOp::Sqrt, hm);
        let kick = g.mul(sd, xi);
        let moved = g.sub(x, drift);
        let y = g.add_(moved, kick);
        let (ey, gy) = self.energy_grad(y);
        let g = &mut self.g;
        let gy_t = match beta {
            Some(beta) => g.mul(beta, gy),
            None => gy,
        };
        let back = g.mul(half_hm, gy_t);
        let d = g.sub(x, y);
        let z = g.add_(d, back);
        let z2 = g.mul(z, z);
        let scaled = g.div(z2, hm);
        let bwd = g.sum_all(scaled);
        let dy = g.sub(y, x);
        let w = g.add_(dy, drift);
        let w2 = g.mul(w, w);
        let fscaled = g.div(w2, hm);
        let fwd = g.sum_all(fscaled);
        let diff = g.sub(fwd, bwd);
        let half_s = g.scalar(0.5);
        let log_q = g.mul(half_s, diff);
        Proposed {
            y,
            energy: ey,
            grad: gy,
            log_q: Some(log_q),
        }
    }

    /// [`rwmh`]'s proposal from x, reading inputs noise, step and inv_mass.
    fn rwmh_proposal(&mut self, x: NodeId) -> Proposed {
        let xi = self.sample("noise");
        let h = self.per_chain("step");
        let m = self.sample("inv_mass");
        let g = &mut self.g;
        let sm = g.unary(UnaryOp::Sqrt, m);
        let scale = g.mul(h, sm);
        let kick = g.mul(scale, xi);
        let y = g.add_(x, kick);
        let (energy, grad) = self.energy_grad(y);
        Proposed {
            y,
            energy,
            grad,
            log_q: None,
        }
    }
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
    let (x2, p2, g2, e2) = b.leapfrog_step(x, p, gx, eps, m);
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
