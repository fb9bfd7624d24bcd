//! Optimisers over the parameter store: Adam (β₁ = 0 allowed, as IGEBM
//! uses) and SGD with momentum, with decoupled weight decay, global
//! gradient-norm clipping, a learning-rate schedule (linear warm-up, then
//! constant, cosine or step decay) and an optional exponential moving
//! average of the parameters. State is plain `Vec<f64>` per parameter so a
//! checkpoint holds it exactly and a resumed run continues bit for bit.
//! `update_graph` is the same update as an IR graph, for a device backend
//! to run where the parameters live.

use crate::ir::{BatchReduce, BinaryOp, Graph, InputKind, NodeId, UnaryOp, numel};

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    Adam { beta1: f64, beta2: f64, eps: f64 },
    Sgd { momentum: f64 },
}

impl Rule {
    pub const ADAM: Rule = Rule::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Adam { .. } => "adam",
            Rule::Sgd { .. } => "sgd",
        }
    }
}

/// How the learning rate changes after warm-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decay {
    Constant,
    /// Cosine from lr to lr·floor over the remaining iterations.
    Cosine {
        floor: f64,
    },
    /// Multiply by `factor` every `every` iterations.
    Step {
        every: usize,
        factor: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct OptimConfig {
    pub rule: Rule,
    pub lr: f64,
    /// Decoupled weight decay (AdamW-style): θ ← θ − lr·wd·θ.
    pub weight_decay: f64,
    /// Rescale the whole gradient to at most this Euclidean norm.
    pub clip_norm: Option<f64>,
    /// Iterations of linear warm-up from lr/warmup to lr.
    pub warmup: usize,
    pub decay: Decay,
    /// Keep θ_ema ← d·θ_ema + (1 − d)·θ (written as `ema.safetensors`).
    pub ema: Option<f64>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            rule: Rule::ADAM,
            lr: 1e-3,
            weight_decay: 0.0,
            clip_norm: None,
            warmup: 0,
            decay: Decay::Constant,
            ema: None,
        }
    }
}

impl OptimConfig {
    /// The scheduled learning rate at iteration `it` (0-based) of `total`.
    pub fn lr_at(&self, it: usize, total: usize) -> f64 {
        if it < self.warmup {
            return self.lr * (it + 1) as f64 / self.warmup as f64;
        }
        let after = (it - self.warmup) as f64;
        let span = total.saturating_sub(self.warmup).max(1) as f64;
        match self.decay {
            Decay::Constant => self.lr,
            Decay::Cosine { floor } => {
                let c = 0.5 * (1.0 + (std::f64::consts::PI * (after / span).min(1.0)).cos());
                self.lr * (floor + (1.0 - floor) * c)
            }
            Decay::Step { every, factor } => {
                self.lr * factor.powi((after as usize / every.max(1)) as i32)
            }
        }
    }
}

/// The optimiser's state: moments per parameter and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimState {
    /// Adam's first moment, or SGD's velocity.
    pub m: Vec<Vec<f64>>,
    /// Adam's second moment (empty for SGD).
    pub v: Vec<Vec<f64>>,
    pub t: u64,
    pub ema: Option<Vec<Vec<f64>>>,
}

impl OptimState {
    /// Becomes a copy of `other`, reusing this state's buffers (the guard
    /// saves the state before every update).
    pub fn copy_from(&mut self, other: &OptimState) {
        self.m.clone_from(&other.m);
        self.v.clone_from(&other.v);
        self.t = other.t;
        match (&mut self.ema, &other.ema) {
            (Some(a), Some(b)) => a.clone_from(b),
            (a, b) => *a = b.clone(),
        }
    }

    pub fn new(cfg: &OptimConfig, params: &[Vec<f64>]) -> OptimState {
        let zeros = || params.iter().map(|p| vec![0.0; p.len()]).collect();
        OptimState {
            m: zeros(),
            v: match cfg.rule {
                Rule::Adam { .. } => zeros(),
                Rule::Sgd { .. } => Vec::new(),
            },
            t: 0,
            ema: cfg.ema.map(|_| params.to_vec()),
        }
    }
}

/// The Euclidean norm of all gradients together.
pub fn global_norm(grads: &[Vec<f64>]) -> f64 {
    grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|v| v * v)
        .sum::<f64>()
        .sqrt()
}

/// One update of `params` by `grads` at learning rate `lr`, then the
/// moving average; returns the gradient norm before clipping.
pub fn step(
    cfg: &OptimConfig,
    state: &mut OptimState,
    params: &mut [Vec<f64>],
    grads: &mut [Vec<f64>],
    lr: f64,
) -> f64 {
    let norm = descend_step(cfg, state, params, grads, lr);
    update_ema(cfg, state, params);
    norm
}

/// `step` without the moving average (a projection of the parameters may
/// come between the two, so that the average follows what is kept).
pub fn descend_step(
    cfg: &OptimConfig,
    state: &mut OptimState,
    params: &mut [Vec<f64>],
    grads: &mut [Vec<f64>],
    lr: f64,
) -> f64 {
    let norm = global_norm(grads);
    if let Some(c) = cfg.clip_norm
        && norm > c
    {
        let k = c / norm;
        grads.iter_mut().flatten().for_each(|g| *g *= k);
    }
    state.t += 1;
    match cfg.rule {
        Rule::Adam { beta1, beta2, eps } => {
            let t = state.t as i32;
            // Bias corrections as reciprocals: one division per element
            // (f64 division and square root dominate the update's cost).
            let r1 = 1.0 / (1.0 - beta1.powi(t));
            let r2 = 1.0 / (1.0 - beta2.powi(t));
            let wd = cfg.weight_decay;
            for (((p, m), v), g) in params
                .iter_mut()
                .zip(&mut state.m)
                .zip(&mut state.v)
                .zip(grads.iter())
            {
                // Zipped (no bounds checks) so the loop vectorises.
                for (((p, m), v), g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    let (mhat, vhat) = (*m * r1, *v * r2);
                    *p -= lr * (mhat / (vhat.sqrt() + eps) + wd * *p);
                }
            }
        }
        Rule::Sgd { momentum } => {
            for (i, p) in params.iter_mut().enumerate() {
                let (m, g) = (&mut state.m[i], &grads[i]);
                for j in 0..p.len() {
                    m[j] = momentum * m[j] + g[j];
                    p[j] -= lr * (m[j] + cfg.weight_decay * p[j]);
                }
            }
        }
    }
    norm
}

/// The moving average's step towards `params` (when the optimiser keeps one).
pub fn update_ema(cfg: &OptimConfig, state: &mut OptimState, params: &[Vec<f64>]) {
    if let (Some(d), Some(ema)) = (cfg.ema, state.ema.as_mut()) {
        for (e, p) in ema.iter_mut().zip(params.iter()) {
            for (a, b) in e.iter_mut().zip(p) {
                *a = d * *a + (1.0 - d) * b;
            }
        }
    }
}

/// Which of a parameter's tensors an update-graph input or output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The parameter.
    P,
    /// Adam's first moment, or SGD's velocity.
    M,
    /// Adam's second moment.
    V,
    /// The gradient (an input only).
    G,
    /// The moving average of the parameter.
    Ema,
}

impl Slot {
    /// The slot's name, which with the parameter's index names the graph's
    /// inputs and outputs (`p0`, `m0`, `g1`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Slot::P => "p",
            Slot::M => "m",
            Slot::V => "v",
            Slot::G => "g",
            Slot::Ema => "ema",
        }
    }
}

/// The order of [`update_graph`]'s inputs and outputs. Inputs: the scalars
/// (`lr`, then `r1`, `r2` for Adam), then per parameter `p`, `m`, `v`
/// (Adam), `g`, `ema` (when kept). Outputs: per parameter `p`, `m`, `v`
/// (Adam), `ema` (when kept), then `norm` (the gradient's global norm
/// before clipping) and `bad` (the sum of every updated parameter times
/// 0: 0 when all are finite, NaN otherwise), both scalars. Every input is
/// `Shared`, every output `PerSample`; the graph is run with batch 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateLayout {
    adam: bool,
    ema: bool,
}

impl UpdateLayout {
    /// The layout of `cfg`'s update graph.
    pub fn new(cfg: &OptimConfig) -> UpdateLayout {
        UpdateLayout {
            adam: matches!(cfg.rule, Rule::Adam { .. }),
            ema: cfg.ema.is_some(),
        }
    }

    /// The scalar inputs' names, in order.
    pub fn scalars(&self) -> &'static [&'static str] {
        if self.adam {
            &["lr", "r1", "r2"]
        } else {
            &["lr"]
        }
    }

    /// Each parameter's inputs, in order.
    pub fn inputs(&self) -> Vec<Slot> {
        let mut s = self.outputs();
        s.insert(if self.adam { 3 } else { 2 }, Slot::G);
        s
    }

    /// Each parameter's outputs, in order.
    pub fn outputs(&self) -> Vec<Slot> {
        let v = self.adam.then_some(Slot::V);
        let ema = self.ema.then_some(Slot::Ema);
        [Some(Slot::P), Some(Slot::M), v, ema]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The graph input of parameter `i`'s `slot`, if the graph reads one.
    pub fn input_index(&self, i: usize, slot: Slot) -> Option<usize> {
        let per = self.inputs();
        let at = per.iter().position(|&s| s == slot)?;
        Some(self.scalars().len() + i * per.len() + at)
    }

    /// The graph output of parameter `i`'s `slot`, if the graph writes one.
    pub fn output_index(&self, i: usize, slot: Slot) -> Option<usize> {
        let per = self.outputs();
        let at = per.iter().position(|&s| s == slot)?;
        Some(i * per.len() + at)
    }

    /// The `norm` output of a graph over `params` parameters (`bad` follows).
    pub fn norm_index(&self, params: usize) -> usize {
        params * self.outputs().len()
    }
}

/// Bytes the optimiser keeps for `values` trained values, estimated before
/// a run starts: on the host its f64 moments and moving average, the
/// guard's saved copy of them, the values and the gradient; with
/// `resident` also the f32 buffers of an update on the device (the current
/// and the next p, m, [v], [ema], the gradient, and improved CD's second
/// term and their sum).
pub fn state_bytes(cfg: &OptimConfig, values: u64, resident: bool) -> u64 {
    let per = UpdateLayout::new(cfg).outputs().len() as u64;
    let host = 8 * (2 * (per - 1) + 2);
    let device = if resident { 4 * (2 * per + 3) } else { 0 };
    values.saturating_mul(host + device)
}

/// The graph's scalar inputs for the update at learning rate `lr` whose
/// step count after the update is `t`: `lr`, then for Adam the bias
/// corrections as reciprocals, computed exactly as [`step`] computes them.
pub fn update_scalars(cfg: &OptimConfig, t: u64, lr: f64) -> Vec<f64> {
    match cfg.rule {
        Rule::Adam { beta1, beta2, .. } => {
            let t = t as i32;
            vec![lr, 1.0 / (1.0 - beta1.powi(t)), 1.0 / (1.0 - beta2.powi(t))]
        }
        Rule::Sgd { .. } => vec![lr],
    }
}

/// The optimiser's update as an IR graph over parameters of `shapes`, laid
/// out as [`UpdateLayout`] says: on the f64 interpreter it computes bit for
/// bit what [`step`] computes (the same operations in the same order, the
/// constants such as 1 − β₁ rounded in f64 here), except `state.t += 1`,
/// which stays with the caller. Run it as built: `opt`'s identities
/// (`0·x → 0`, factoring) would change signed zeros and NaNs.
pub fn update_graph(cfg: &OptimConfig, shapes: &[Vec<usize>]) -> Graph {
    let layout = UpdateLayout::new(cfg);
    let mut g = Graph::new("optim_update");
    let scalars: Vec<NodeId> = (layout.scalars().iter())
        .map(|n| g.input_node(*n, vec![], InputKind::Shared))
        .collect();
    let ins: Vec<Vec<NodeId>> = (shapes.iter().enumerate())
        .map(|(i, shape)| {
            (layout.inputs().iter())
                .map(|s| g.input_node(format!("{}{i}", s.name()), shape.clone(), InputKind::Shared))
                .collect()
        })
        .collect();
    let per = layout.inputs();
    let slot = |t: &[NodeId], s| per.iter().position(|&x| x == s).map(|k| t[k]);
    // invariant: the layout reads g for every rule.
    let grads: Vec<NodeId> = ins.iter().map(|t| slot(t, Slot::G).unwrap()).collect();
    let squares: Vec<NodeId> = grads.iter().map(|&x| g.mul(x, x)).collect();
    let norm = flat_sum(&mut g, &squares);
    let norm = g.unary(UnaryOp::Sqrt, norm);
    let grads = clip(&mut g, cfg.clip_norm, norm, grads);
    let mut news = Vec::with_capacity(shapes.len());
    for (i, (t, grad)) in ins.iter().zip(grads).enumerate() {
        let [p, m, v, ema] = [Slot::P, Slot::M, Slot::V, Slot::Ema].map(|s| slot(t, s));
        // invariant: the layout reads p and m for every rule.
        let (p, m) = (p.unwrap(), m.unwrap());
        let mut outs = match cfg.rule {
            Rule::Adam { beta1, beta2, eps } => {
                let (betas, wd) = ((beta1, beta2), (eps, cfg.weight_decay));
                adam_update(&mut g, betas, wd, &scalars, [p, m, v.unwrap(), grad]).to_vec()
            }
            Rule::Sgd { momentum } => {
                let mu = g.scalar(momentum);
                let m = g.mul(mu, m);
                let m = g.add_(m, grad);
                vec![descend(&mut g, cfg.weight_decay, scalars[0], p, m), m]
            }
        };
        if let (Some(d), Some(e)) = (cfg.ema, ema) {
            outs.push(blend(&mut g, d, e, outs[0]));
        }
        for (s, node) in layout.outputs().iter().zip(&outs) {
            g.add_output(format!("{}{i}", s.name()), *node, BatchReduce::PerSample);
        }
        news.push(outs[0]);
    }
    let zero = g.scalar(0.0);
    let zeroed: Vec<NodeId> = news.iter().map(|&p| g.mul(p, zero)).collect();
    let bad = flat_sum(&mut g, &zeroed);
    g.add_output("norm", norm, BatchReduce::PerSample);
    g.add_output("bad", bad, BatchReduce::PerSample);
    g
}

/// The sum of every element of `parts`, added one by one in order, as
/// `Iterator::sum` over the flattened values adds them (one concatenation
/// then one sum: the interpreter's sum adds in index order).
fn flat_sum(g: &mut Graph, parts: &[NodeId]) -> NodeId {
    let mut flat = Vec::with_capacity(parts.len());
    for &x in parts {
        let n = numel(g.shape(x));
        if n > 0 {
            flat.push(g.reshape(x, &[n]));
        }
    }
    if flat.is_empty() {
        return g.scalar(std::iter::empty::<f64>().sum());
    }
    let all = g.concat(flat, 0);
    g.sum_all(all)
}

/// The gradients scaled by c/norm where `clip` is `Some(c)` and norm > c,
/// else unchanged (a select, so an inactive clip never touches a bit).
fn clip(g: &mut Graph, clip: Option<f64>, norm: NodeId, grads: Vec<NodeId>) -> Vec<NodeId> {
    let Some(c) = clip else { return grads };
    let c = g.scalar(c);
    let over = g.binary(BinaryOp::Gt, norm, c);
    let k = g.div(c, norm);
    (grads.into_iter())
        .map(|x| {
            let shape = g.shape(x).to_vec();
            let scaled = g.mul(x, k);
            let over = g.broadcast(over, &shape);
            g.select(over, scaled, x)
        })
        .collect()
}

/// Adam's update of `[p, m, v, g]` to `[p, m, v]`, with `scalars` the
/// graph's `lr`, `r1`, `r2`: m ← β₁·m + (1 − β₁)·g, v ← β₂·v + ((1 − β₂)·g)·g,
/// then p descends along (m·r1)/(√(v·r2) + ε) with weight decay `wd`.
fn adam_update(
    g: &mut Graph,
    (beta1, beta2): (f64, f64),
    (eps, wd): (f64, f64),
    scalars: &[NodeId],
    [p, m, v, grad]: [NodeId; 4],
) -> [NodeId; 3] {
    let m = blend(g, beta1, m, grad);
    let (b2, c2) = (g.scalar(beta2), g.scalar(1.0 - beta2));
    let v = g.mul(b2, v);
    let cg = g.mul(c2, grad);
    let gg = g.mul(cg, grad);
    let v = g.add_(v, gg);
    let mhat = g.mul(m, scalars[1]);
    let vhat = g.mul(v, scalars[2]);
    let root = g.unary(UnaryOp::Sqrt, vhat);
    let eps = g.scalar(eps);
    let den = g.add_(root, eps);
    let dir = g.div(mhat, den);
    [descend(g, wd, scalars[0], p, dir), m, v]
}

/// d·a + (1 − d)·b, with 1 − d rounded in f64 as the host rounds it.
fn blend(g: &mut Graph, d: f64, a: NodeId, b: NodeId) -> NodeId {
    let (d, c) = (g.scalar(d), g.scalar(1.0 - d));
    let da = g.mul(d, a);
    let cb = g.mul(c, b);
    g.add_(da, cb)
}

/// p − lr·(dir + wd·p); the wd·p term stays when wd = 0, as on the host,
/// since it decides signed zeros and NaNs.
fn descend(g: &mut Graph, wd: f64, lr: NodeId, p: NodeId, dir: NodeId) -> NodeId {
    let wd = g.scalar(wd);
    let decay = g.mul(wd, p);
    let sum = g.add_(dir, decay);
    let delta = g.mul(lr, sum);
    g.sub(p, delta)
}

/// Spectral normalisation by projection (after Miyato et al. 2018, as
/// IGEBM uses it to keep the energy Lipschitz): after each update, a matrix
/// `rows × cols` whose largest singular value σ exceeds `bound` is scaled by
/// bound/σ. σ comes from 20 power iterations started from a fixed vector,
/// so the projection carries no state between iterations (a resumed run
/// needs nothing more in its checkpoint) and is deterministic.
pub fn spectral_project(w: &mut [f64], rows: usize, cols: usize, bound: f64) -> f64 {
    if rows == 0 || cols == 0 || w.len() != rows * cols {
        return 0.0;
    }
    let mut v: Vec<f64> = (0..cols).map(|j| 1.0 + 0.01 * j as f64).collect();
    let mut u = vec![0.0; rows];
    let mut sigma = 0.0;
    for _ in 0..20 {
        let nv = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if nv == 0.0 || !nv.is_finite() {
            return 0.0;
        }
        v.iter_mut().for_each(|a| *a /= nv);
        for (i, ui) in u.iter_mut().enumerate() {
            *ui = w[i * cols..(i + 1) * cols]
                .iter()
                .zip(&v)
                .map(|(a, b)| a * b)
                .sum();
        }
        sigma = u.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a = 0.0);
        for (i, ui) in u.iter().enumerate() {
            for (vj, wij) in v.iter_mut().zip(&w[i * cols..(i + 1) * cols]) {
                *vj += wij * ui;
            }
        }
    }
    if sigma > bound {
        let k = bound / sigma;
        w.iter_mut().for_each(|a| *a *= k);
    }
    sigma
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Real;
    use crate::ir::interp::eval;

    /// Minimises ½‖θ − 3‖² and returns θ after `n` steps.
    fn check(rule: Rule, lr: f64, n: usize, expect: f64, tol: f64) {
        let cfg = OptimConfig {
            rule,
            lr,
            ..OptimConfig::default()
        };
        let mut p = vec![vec![0.0, 10.0]];
        let mut s = OptimState::new(&cfg, &p);
        for _ in 0..n {
            let mut g = vec![p[0].iter().map(|v| v - 3.0).collect::<Vec<_>>()];
            step(&cfg, &mut s, &mut p, &mut g, lr);
        }
        for v in &p[0] {
            assert!((v - expect).abs() < tol, "{rule:?}: {p:?}");
        }
    }

    #[test]
    fn optimisers_converge() {
        check(Rule::ADAM, 0.1, 2000, 3.0, 1e-3);
        check(
            Rule::Adam {
                beta1: 0.0,
                beta2: 0.999,
                eps: 1e-8,
            },
            0.05,
            2000,
            3.0,
            1e-2,
        );
        check(Rule::Sgd { momentum: 0.9 }, 0.05, 500, 3.0, 1e-6);
        check(Rule::Sgd { momentum: 0.0 }, 0.5, 100, 3.0, 1e-9);
    }

    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let cfg = OptimConfig::default();
        let mut p = vec![vec![1.0, 1.0]];
        let mut s = OptimState::new(&cfg, &p);
        let mut g = vec![vec![0.5, -2.0]];
        step(&cfg, &mut s, &mut p, &mut g, 1e-3);
        assert!((p[0][0] - (1.0 - 1e-3)).abs() < 1e-9);
        assert!((p[0][1] - (1.0 + 1e-3)).abs() < 1e-9);
    }

    const SHAPES: [&[usize]; 3] = [&[3], &[2, 3], &[]];

    fn shapes() -> Vec<Vec<usize>> {
        SHAPES.iter().map(|s| s.to_vec()).collect()
    }

    /// Update `k`'s gradients: signs and magnitudes vary by element and step.
    fn gradients(k: usize, scale: f64) -> Vec<Vec<f64>> {
        (shapes().iter().enumerate())
            .map(|(i, s)| {
                (0..numel(s))
                    .map(|j| scale * (1.7 * (j + 1) as f64 + 0.9 * i as f64 + 2.3 * k as f64).sin())
                    .collect()
            })
            .collect()
    }

    /// The host's state laid out as the graph's per-parameter outputs.
    fn host_outputs(cfg: &OptimConfig, s: &OptimState, params: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let layout = UpdateLayout::new(cfg);
        let mut out = Vec::new();
        for (i, p) in params.iter().enumerate() {
            for slot in layout.outputs() {
                out.push(match slot {
                    Slot::P => p.clone(),
                    Slot::M => s.m[i].clone(),
                    Slot::V => s.v[i].clone(),
                    Slot::Ema => s.ema.as_ref().unwrap()[i].clone(),
                    Slot::G => unreachable!("gradients are never outputs"),
                });
            }
        }
        out
    }

    /// Runs the graph on the scalars for step count `t`, the gradients, and
    /// the rest from `state` (the previous run's outputs).
    fn run<T: Real>(
        g: &Graph,
        cfg: &OptimConfig,
        (t, lr): (u64, f64),
        state: &[Vec<T>],
        grads: &[Vec<f64>],
    ) -> Vec<Vec<T>> {
        let layout = UpdateLayout::new(cfg);
        let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let mut ins: Vec<Vec<T>> = update_scalars(cfg, t, lr)
            .iter()
            .map(|&x| vec![T::from_f64(x)])
            .collect();
        for (i, grad) in grads.iter().enumerate() {
            for slot in layout.inputs() {
                assert_eq!(layout.input_index(i, slot), Some(ins.len()));
                ins.push(match layout.output_index(i, slot) {
                    Some(o) => state[o].clone(),
                    None => cast(grad),
                });
            }
        }
        let refs: Vec<&[T]> = ins.iter().map(|v| v.as_slice()).collect();
        eval(g, &refs, 1).unwrap()
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Runs 3 updates by `step` and by the update graph side by side (the
    /// graph fed its own outputs): on the f64 interpreter every output is
    /// bitwise the host's, `bad` is 0; on the f32 interpreter each output is
    /// within `1e-5` of the host's, relative to the tensor's largest value.
    /// Returns step's norms.
    fn check_update(cfg: &OptimConfig, scale: f64) -> Vec<f64> {
        let g = update_graph(cfg, &shapes());
        crate::ir::verify::verify(&g).unwrap();
        let mut params: Vec<Vec<f64>> = (shapes().iter().enumerate())
            .map(|(i, s)| {
                (0..numel(s))
                    .map(|j| 0.5 + 0.25 * i as f64 - 0.3 * j as f64)
                    .collect()
            })
            .collect();
        let mut s = OptimState::new(cfg, &params);
        let mut st64 = host_outputs(cfg, &s, &params);
        let mut st32: Vec<Vec<f32>> = (st64.iter())
            .map(|v| v.iter().map(|&x| x as f32).collect())
            .collect();
        let n = st64.len();
        let mut norms = Vec::new();
        for k in 0..3 {
            let (grads, lr) = (gradients(k, scale), 0.1 / (k + 1) as f64);
            let out64 = run::<f64>(&g, cfg, (s.t + 1, lr), &st64, &grads);
            let out32 = run::<f32>(&g, cfg, (s.t + 1, lr), &st32, &grads);
            let norm = step(cfg, &mut s, &mut params, &mut grads.clone(), lr);
            let mut want = host_outputs(cfg, &s, &params);
            want.extend([vec![norm], vec![0.0]]);
            for ((o, (got, close)), w) in g.outputs.iter().zip(out64.iter().zip(&out32)).zip(&want)
            {
                let at = format!("{cfg:?}, update {k}, {}", o.name);
                assert_eq!(bits(got), bits(w), "{at}: {got:?} != {w:?}");
                let top = w.iter().fold(0.0f64, |a, x| a.max(x.abs()));
                for (c, x) in close.iter().zip(w) {
                    assert!(
                        (*c as f64 - x).abs() <= 1e-5 * top,
                        "{at} in f32: {close:?} vs {w:?}"
                    );
                }
            }
            (st64, st32) = (out64[..n].to_vec(), out32[..n].to_vec());
            norms.push(norm);
        }
        norms
    }

    #[test]
    fn update_graph_is_step_bit_for_bit() {
        let adam0 = Rule::Adam {
            beta1: 0.0,
            beta2: 0.999,
            eps: 1e-8,
        };
        let cfg = |rule, weight_decay, clip_norm, ema| OptimConfig {
            rule,
            weight_decay,
            clip_norm,
            ema,
            ..OptimConfig::default()
        };
        let sgd = |momentum| Rule::Sgd { momentum };
        // (config, gradient scale, whether every update clips)
        let cases = [
            (cfg(Rule::ADAM, 0.0, None, None), 1.0, None),
            (cfg(adam0, 0.01, Some(0.5), None), 1.0, Some(true)),
            (cfg(adam0, 0.01, Some(100.0), None), 1.0, Some(false)),
            (cfg(sgd(0.9), 0.01, None, None), 1.0, None),
            (cfg(sgd(0.0), 0.01, Some(0.5), None), 1.0, Some(true)),
            (cfg(sgd(0.0), 0.0, None, None), 3.0, None),
            (cfg(Rule::ADAM, 0.01, None, Some(0.99)), 1.0, None),
            (cfg(sgd(0.9), 0.0, Some(100.0), Some(0.9)), 2.0, Some(false)),
        ];
        for (cfg, scale, clips) in cases {
            let norms = check_update(&cfg, scale);
            if let (Some(c), Some(clips)) = (cfg.clip_norm, clips) {
                assert!(
                    norms.iter().all(|&n| (n > c) == clips),
                    "{cfg:?}: {norms:?}"
                );
            }
        }
    }

    /// One update from a poisoned start: an infinite gradient, or an
    /// infinite parameter with wd = 0 (where the host's 0·p = NaN is kept).
    #[test]
    fn update_graph_flags_a_non_finite_parameter_as_step_computes_it() {
        for rule in [Rule::Sgd { momentum: 0.9 }, Rule::ADAM] {
            for poison_param in [false, true] {
                let cfg = OptimConfig {
                    rule,
                    ..OptimConfig::default()
                };
                let g = update_graph(&cfg, &shapes());
                let mut params: Vec<Vec<f64>> =
                    shapes().iter().map(|s| vec![1.0; numel(s)]).collect();
                let mut grads = gradients(0, 1.0);
                match poison_param {
                    true => params[1][4] = f64::INFINITY,
                    false => grads[1][4] = f64::INFINITY,
                }
                let mut s = OptimState::new(&cfg, &params);
                let state = host_outputs(&cfg, &s, &params);
                let out = run::<f64>(&g, &cfg, (1, 0.1), &state, &grads);
                let norm = step(&cfg, &mut s, &mut params, &mut grads, 0.1);
                let mut want = host_outputs(&cfg, &s, &params);
                want.push(vec![norm]);
                let at = format!("{rule:?}, parameter poisoned: {poison_param}");
                for (got, w) in out.iter().zip(&want) {
                    assert_eq!(bits(got), bits(w), "{at}: {got:?} != {w:?}");
                }
                assert!(out.last().unwrap()[0].is_nan(), "{at}");
            }
        }
    }

    #[test]
    fn update_layout_names_the_graphs_inputs_and_outputs_in_order() {
        let names = |cfg: &OptimConfig, params: usize| {
            let g = update_graph(cfg, &vec![vec![2]; params]);
            assert!(g.inputs().iter().all(|i| i.kind == InputKind::Shared));
            assert!(g.outputs.iter().all(|o| o.reduce == BatchReduce::PerSample));
            let layout = UpdateLayout::new(cfg);
            assert_eq!(g.outputs[layout.norm_index(params)].name, "norm");
            let ins: Vec<_> = g.inputs().iter().map(|i| i.name.clone()).collect();
            let outs: Vec<_> = g.outputs.iter().map(|o| o.name.clone()).collect();
            (ins.join(" "), outs.join(" "))
        };
        let adam = OptimConfig {
            ema: Some(0.9),
            ..OptimConfig::default()
        };
        assert_eq!(
            names(&adam, 1),
            (
                "lr r1 r2 p0 m0 v0 g0 ema0".into(),
                "p0 m0 v0 ema0 norm bad".into()
            )
        );
        let sgd = OptimConfig {
            rule: Rule::Sgd { momentum: 0.9 },
            ..OptimConfig::default()
        };
        assert_eq!(
            names(&sgd, 2),
            ("lr p0 m0 g0 p1 m1 g1".into(), "p0 m0 p1 m1 norm bad".into())
        );
    }

    #[test]
    fn spectral_projection_bounds_the_largest_singular_value() {
        // diag(3, 0.5) embedded in a 2×3 matrix: σ_max = 3.
        let mut w = vec![3.0, 0.0, 0.0, 0.0, 0.5, 0.0];
        let s = spectral_project(&mut w, 2, 3, 1.0);
        assert!((s - 3.0).abs() < 1e-9);
        assert!((w[0] - 1.0).abs() < 1e-9 && (w[4] - 0.5 / 3.0).abs() < 1e-9);
        // Below the bound nothing changes.
        let mut small = vec![0.2, 0.1, 0.0, 0.3];
        let before = small.clone();
        spectral_project(&mut small, 2, 2, 1.0);
        assert_eq!(small, before);
    }

    #[test]
    fn clipping_and_schedule() {
        let cfg = OptimConfig {
            rule: Rule::Sgd { momentum: 0.0 },
            clip_norm: Some(1.0),
            warmup: 10,
            decay: Decay::Cosine { floor: 0.0 },
            ..OptimConfig::default()
        };
        let mut p = vec![vec![0.0, 0.0]];
        let mut s = OptimState::new(&cfg, &p);
        let mut g = vec![vec![3.0, 4.0]];
        let norm = step(&cfg, &mut s, &mut p, &mut g, 1.0);
        assert_eq!(norm, 5.0);
        assert!((p[0][0] + 0.6).abs() < 1e-12 && (p[0][1] + 0.8).abs() < 1e-12);
        assert!((cfg.lr_at(0, 110) - 1e-4).abs() < 1e-15);
        assert!((cfg.lr_at(9, 110) - 1e-3).abs() < 1e-15);
        assert!((cfg.lr_at(60, 110) - 5e-4).abs() < 1e-12);
        assert!(cfg.lr_at(110, 110).abs() < 1e-15);
    }
}
