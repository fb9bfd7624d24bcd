//! Optimisers over the parameter store: Adam (β₁ = 0 allowed, as IGEBM
//! uses) and SGD with momentum, with decoupled weight decay, global
//! gradient-norm clipping, a learning-rate schedule (linear warm-up, then
//! constant, cosine or step decay) and an optional exponential moving
//! average of the parameters. State is plain `Vec<f64>` per parameter so a
//! checkpoint holds it exactly and a resumed run continues bit for bit.

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

/// One update of `params` by `grads` at learning rate `lr`; returns the
/// gradient norm before clipping.
pub fn step(
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
    if let (Some(d), Some(ema)) = (cfg.ema, state.ema.as_mut()) {
        for (e, p) in ema.iter_mut().zip(params.iter()) {
            for (a, b) in e.iter_mut().zip(p) {
                *a = d * *a + (1.0 - d) * b;
            }
        }
    }
    norm
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
