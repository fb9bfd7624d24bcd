//! Transition kernels: unadjusted Langevin (ULA), MALA, random-walk
//! Metropolis–Hastings and HMC, each a pure `step(rngs, &State) -> (State, Info)`
//! over a batch of chains.
//!
//! Step-size conventions (`SamplerConfig::step`):
//! * ULA and MALA: `step` is λ in x ← x − (λ/2)∇E + √λ·ξ (the proposal variance);
//! * decoupled ULA (`noise = Some(σ)`, the EBM-papers form):
//!   x ← x − step·∇E + σ·ξ, which samples exp(−E/T) with T = σ²/(2·step)
//!   in the small-step limit (T = 1 for the coupled form);
//! * RWMH: `step` is the proposal standard deviation, x' = x + step·ξ;
//! * HMC: `step` is the leapfrog ε.
//!
//! With a diagonal inverse mass `m` (`Params::inv_mass`, ones unless
//! adapted), MALA and RWMH are preconditioned by it (noise scaled by √m, drift
//! by m) and HMC draws momenta p ~ N(0, diag(1/m)).
//!
//! Divergence: a chain is `divergent` on a transition when its proposal has a
//! non-finite energy, gradient or position (and, for HMC, when the energy
//! error exceeds `max_energy_error`). MH kernels reject such a proposal, so
//! the chain stays at its last finite state and continues. ULA has no
//! rejection: a chain whose new state is non-finite is *frozen* at its last
//! finite state (`State::frozen`), reported divergent on every later
//! transition, and skipped (its position is still passed to the batched
//! energy, but it is finite). Chains never read each other's values.

use super::BatchEnergy;
use super::rng::ChainRngs;

/// Options of the unadjusted Langevin kernel.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct UlaOptions {
    /// Decoupled noise standard deviation σ: x ← x − step·∇E + σξ.
    pub noise: Option<f64>,
    /// Clip each gradient entry to [−c, c] before the drift.
    pub clip_grad: Option<f64>,
    /// Clamp positions to the box [lo, hi] after each step.
    pub clamp: Option<(f64, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Ula(UlaOptions),
    Mala,
    Rwmh,
    /// Static HMC with `leapfrog` steps per transition.
    Hmc {
        leapfrog: usize,
    },
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Ula(_) => "ula",
            Method::Mala => "mala",
            Method::Rwmh => "rwmh",
            Method::Hmc { .. } => "hmc",
        }
    }
    /// Whether the kernel has an accept/reject step (and so adapts).
    pub fn is_mh(&self) -> bool {
        !matches!(self, Method::Ula(_))
    }
    pub fn needs_grad(&self) -> bool {
        !matches!(self, Method::Rwmh)
    }
}

/// A sampler: the kernel, its step size and the warm-up adaptation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    pub method: Method,
    /// Initial (or fixed) step size; see the module docs for its meaning.
    pub step: f64,
    /// Dual-averaging step-size adaptation during warm-up (MH kernels only).
    pub adapt_step: bool,
    /// Target mean acceptance probability of the adaptation.
    pub target_accept: f64,
    /// Estimate a diagonal inverse mass matrix in warm-up windows.
    pub adapt_mass: bool,
    /// Whether adaptation is per chain or shared by all chains.
    pub adapt_scope: super::AdaptScope,
    /// HMC: each transition's ε is drawn uniformly in ε·(1 ± jitter).
    pub step_jitter: f64,
    /// HMC: an energy error above this marks the transition divergent.
    pub max_energy_error: f64,
}

impl SamplerConfig {
    fn base(method: Method, step: f64, target: f64) -> Self {
        let mh = method.is_mh();
        let hmc = matches!(method, Method::Hmc { .. });
        SamplerConfig {
            method,
            step,
            adapt_step: mh,
            target_accept: target,
            adapt_mass: hmc,
            adapt_scope: super::AdaptScope::PerChain,
            step_jitter: 0.0,
            max_energy_error: 1000.0,
        }
    }
    /// Unadjusted Langevin, x ← x − (λ/2)∇E + √λξ.
    pub fn ula(step: f64) -> Self {
        Self::base(Method::Ula(UlaOptions::default()), step, 1.0)
    }
    /// Decoupled Langevin, x ← x − step·∇E + noise·ξ (temperature noise²/(2·step)).
    pub fn ula_decoupled(step: f64, noise: f64) -> Self {
        Self::base(
            Method::Ula(UlaOptions {
                noise: Some(noise),
                ..Default::default()
            }),
            step,
            1.0,
        )
    }
    pub fn mala(step: f64) -> Self {
        Self::base(Method::Mala, step, 0.574)
    }
    pub fn rwmh(step: f64) -> Self {
        Self::base(Method::Rwmh, step, 0.234)
    }
    /// Static HMC. The step size is jittered by ±20% per transition by
    /// default: with a fixed trajectory length, static HMC can resonate
    /// with the target (a trajectory that returns near its start gives a
    /// tiny ESS); jitter breaks the periodicity.
    pub fn hmc(step: f64, leapfrog: usize) -> Self {
        let mut c = Self::base(Method::Hmc { leapfrog }, step, 0.8);
        c.step_jitter = 0.2;
        c
    }

    /// Effective temperature T = noise²/(2·step) of decoupled Langevin
    /// (`None` for the other kernels, whose target is exp(−E)).
    pub fn effective_temperature(&self) -> Option<f64> {
        match &self.method {
            Method::Ula(UlaOptions { noise: Some(s), .. }) => Some(s * s / (2.0 * self.step)),
            _ => None,
        }
    }

    /// `key = value` pairs describing the full configuration (CSV header).
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("sampler".to_string(), self.method.name().to_string()),
            ("step".to_string(), format!("{}", self.step)),
        ];
        match &self.method {
            Method::Ula(o) => {
                let opt = |x: Option<f64>| x.map_or("none".to_string(), |v| format!("{v}"));
                v.push(("noise".into(), opt(o.noise)));
                v.push(("clip_grad".into(), opt(o.clip_grad)));
                v.push((
                    "clamp".into(),
                    o.clamp
                        .map_or("none".into(), |(a, b)| format!("[{a}, {b}]")),
                ));
                if let Some(t) = self.effective_temperature() {
                    v.push(("effective_temperature".into(), format!("{t}")));
                }
            }
            Method::Hmc { leapfrog } => {
                v.push(("leapfrog".into(), format!("{leapfrog}")));
                v.push(("step_jitter".into(), format!("{}", self.step_jitter)));
                v.push((
                    "max_energy_error".into(),
                    format!("{}", self.max_energy_error),
                ));
            }
            _ => {}
        }
        if self.method.is_mh() {
            v.push(("adapt_step".into(), format!("{}", self.adapt_step)));
            v.push(("target_accept".into(), format!("{}", self.target_accept)));
            v.push(("adapt_mass".into(), format!("{}", self.adapt_mass)));
            v.push(("adapt_scope".into(), self.adapt_scope.name().into()));
        }
        v
    }
}

/// Per-chain kernel parameters (changed by warm-up adaptation).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Step size per chain.
    pub step: Vec<f64>,
    /// Diagonal inverse mass per chain (`chains × dim`).
    pub inv_mass: Vec<f64>,
}

impl Params {
    pub fn new(step: f64, chains: usize, dim: usize) -> Self {
        Params {
            step: vec![step; chains],
            inv_mass: vec![1.0; chains * dim],
        }
    }
}

/// The state of a batch of chains. `grad` is empty for gradient-free kernels.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub chains: usize,
    pub dim: usize,
    /// Positions, `chains × dim`.
    pub x: Vec<f64>,
    /// E(x) per chain.
    pub energy: Vec<f64>,
    /// ∇E(x), `chains × dim` (empty for RWMH).
    pub grad: Vec<f64>,
    /// Chains stopped at their last finite state (see module docs).
    pub frozen: Vec<bool>,
}

/// What happened to each chain on one transition.
#[derive(Clone, Debug, PartialEq)]
pub struct Info {
    /// Metropolis acceptance probability min(1, α) (1 for ULA).
    pub accept_prob: Vec<f64>,
    pub accepted: Vec<bool>,
    pub divergent: Vec<bool>,
}

impl Info {
    fn new(chains: usize) -> Self {
        Info {
            accept_prob: vec![0.0; chains],
            accepted: vec![false; chains],
            divergent: vec![false; chains],
        }
    }
}

fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|a| a.is_finite())
}

/// A kernel bound to an energy and its current parameters.
pub struct Kernel<'a, E: BatchEnergy + ?Sized> {
    pub energy: &'a E,
    pub config: SamplerConfig,
    pub params: Params,
}

impl<'a, E: BatchEnergy + ?Sized> Kernel<'a, E> {
    pub fn new(energy: &'a E, config: SamplerConfig, chains: usize) -> Self {
        let params = Params::new(config.step, chains, energy.dim());
        Kernel {
            energy,
            config,
            params,
        }
    }

    fn eval(&self, x: &[f64], chains: usize) -> (Vec<f64>, Vec<f64>) {
        let dim = self.energy.dim();
        let mut e = vec![0.0; chains];
        if self.config.method.needs_grad() {
            let mut g = vec![0.0; chains * dim];
            self.energy.energy_grad(x, chains, &mut e, &mut g);
            (e, g)
        } else {
            self.energy.energy(x, chains, &mut e);
            (e, Vec::new())
        }
    }

    /// Evaluate the energy (and gradient) at `x` (`chains × dim`). Chains
    /// whose initial state is not finite start frozen.
    pub fn init(&self, x: Vec<f64>) -> State {
        let dim = self.energy.dim();
        let chains = x.len().checked_div(dim).unwrap_or(0);
        assert_eq!(chains * dim, x.len(), "x must hold chains × dim values");
        let (energy, grad) = self.eval(&x, chains);
        let frozen = (0..chains)
            .map(|c| {
                !energy[c].is_finite()
                    || !all_finite(&x[c * dim..(c + 1) * dim])
                    || (!grad.is_empty() && !all_finite(&grad[c * dim..(c + 1) * dim]))
            })
            .collect();
        State {
            chains,
            dim,
            x,
            energy,
            grad,
            frozen,
        }
    }

    /// One transition of every chain.
    pub fn step(&self, rngs: &mut ChainRngs, s: &State) -> (State, Info) {
        assert_eq!(rngs.len(), s.chains, "one RNG stream per chain");
        match &self.config.method {
            Method::Ula(o) => self.ula(o, rngs, s),
            Method::Mala | Method::Rwmh => self.mh(rngs, s),
            Method::Hmc { leapfrog } => self.hmc(*leapfrog, rngs, s),
        }
    }

    fn ula(&self, o: &UlaOptions, rngs: &mut ChainRngs, s: &State) -> (State, Info) {
        let (n, d) = (s.chains, s.dim);
        let mut xi = vec![0.0; n * d];
        rngs.fill_normal(&mut xi, d);
        let mut y = s.x.clone();
        for c in 0..n {
            if s.frozen[c] {
                continue;
            }
            let h = self.params.step[c];
            let (drift, sd) = match o.noise {
                Some(sigma) => (h, sigma),
                None => (0.5 * h, h.sqrt()),
            };
            for i in c * d..(c + 1) * d {
                let mut g = s.grad[i];
                if let Some(cl) = o.clip_grad {
                    g = g.clamp(-cl, cl);
                }
                let mut v = s.x[i] - drift * g + sd * xi[i];
                if let Some((lo, hi)) = o.clamp {
                    v = v.clamp(lo, hi);
                }
                y[i] = v;
            }
        }
        let (e, g) = self.eval(&y, n);
        let mut info = Info::new(n);
        let mut out = State {
            chains: n,
            dim: d,
            x: y,
            energy: e,
            grad: g,
            frozen: s.frozen.clone(),
        };
        for c in 0..n {
            let r = c * d..(c + 1) * d;
            let ok = !s.frozen[c]
                && out.energy[c].is_finite()
                && all_finite(&out.x[r.clone()])
                && all_finite(&out.grad[r.clone()]);
            if ok {
                info.accept_prob[c] = 1.0;
                info.accepted[c] = true;
            } else {
                info.divergent[c] = true;
                out.frozen[c] = true;
                out.x[r.clone()].copy_from_slice(&s.x[r.clone()]);
                out.grad[r.clone()].copy_from_slice(&s.grad[r]);
                out.energy[c] = s.energy[c];
            }
        }
        (out, info)
    }

    /// MALA and RWMH.
    fn mh(&self, rngs: &mut ChainRngs, s: &State) -> (State, Info) {
        let (n, d) = (s.chains, s.dim);
        let mala = matches!(self.config.method, Method::Mala);
        let mut xi = vec![0.0; n * d];
        rngs.fill_normal(&mut xi, d);
        let m = &self.params.inv_mass;
        let mut y = s.x.clone();
        for c in 0..n {
            if s.frozen[c] {
                continue;
            }
            let h = self.params.step[c];
            for i in c * d..(c + 1) * d {
                y[i] = if mala {
                    s.x[i] - 0.5 * h * m[i] * s.grad[i] + (h * m[i]).sqrt() * xi[i]
                } else {
                    s.x[i] + h * m[i].sqrt() * xi[i]
                };
            }
        }
        let (ey, gy) = self.eval(&y, n);
        let mut info = Info::new(n);
        let mut out = s.clone();
        for c in 0..n {
            // One uniform per chain per transition, drawn unconditionally so
            // the stream position never depends on the outcome.
            let u = rngs.rngs[c].uniform_open0();
            if s.frozen[c] {
                info.divergent[c] = true;
                continue;
            }
            let r = c * d..(c + 1) * d;
            let finite = ey[c].is_finite()
                && all_finite(&y[r.clone()])
                && (!mala || all_finite(&gy[r.clone()]));
            if !finite {
                info.divergent[c] = true;
                continue;
            }
            let h = self.params.step[c];
            let mut log_a = s.energy[c] - ey[c];
            if mala {
                // log q(x | y) − log q(y | x); the forward term is −|ξ|²/2.
                let mut fwd = 0.0;
                let mut bwd = 0.0;
                for i in r.clone() {
                    fwd += xi[i] * xi[i];
                    let z = s.x[i] - y[i] + 0.5 * h * m[i] * gy[i];
                    bwd += z * z / (h * m[i]);
                }
                log_a += 0.5 * (fwd - bwd);
            }
            let a = if log_a >= 0.0 { 1.0 } else { log_a.exp() };
            info.accept_prob[c] = if a.is_nan() { 0.0 } else { a };
            if u.ln() < log_a {
                info.accepted[c] = true;
                out.x[r.clone()].copy_from_slice(&y[r.clone()]);
                out.energy[c] = ey[c];
                if mala {
                    out.grad[r.clone()].copy_from_slice(&gy[r]);
                }
            }
        }
        (out, info)
    }

    fn hmc(&self, leapfrog: usize, rngs: &mut ChainRngs, s: &State) -> (State, Info) {
        let (n, d) = (s.chains, s.dim);
        let m = &self.params.inv_mass;
        // Momenta p = ξ/√m ~ N(0, M), then one jitter uniform and one accept
        // uniform per chain.
        let mut p = vec![0.0; n * d];
        rngs.fill_normal(&mut p, d);
        let mut eps = vec![0.0; n];
        let mut u_acc = vec![0.0; n];
        for c in 0..n {
            let uj = rngs.rngs[c].uniform();
            u_acc[c] = rngs.rngs[c].uniform_open0();
            eps[c] = self.params.step[c] * (1.0 + self.config.step_jitter * (2.0 * uj - 1.0));
        }
        let kinetic = |p: &[f64], c: usize| -> f64 {
            (c * d..(c + 1) * d)
                .map(|i| 0.5 * m[i] * p[i] * p[i])
                .sum::<f64>()
        };
        let mut h0 = vec![0.0; n];
        for c in 0..n {
            for i in c * d..(c + 1) * d {
                p[i] /= m[i].sqrt();
            }
            h0[c] = s.energy[c] + kinetic(&p, c);
        }
        let mut alive: Vec<bool> = s.frozen.iter().map(|f| !f).collect();
        let mut x = s.x.clone();
        let mut g = s.grad.clone();
        let mut e = s.energy.clone();
        for c in 0..n {
            for i in c * d..(c + 1) * d {
                p[i] -= 0.5 * eps[c] * g[i];
            }
        }
        let mut ge = vec![0.0; n];
        let mut gg = vec![0.0; n * d];
        for l in 0..leapfrog {
            let mut xn = x.clone();
            for c in 0..n {
                if !alive[c] {
                    continue;
                }
                for i in c * d..(c + 1) * d {
                    xn[i] = x[i] + eps[c] * m[i] * p[i];
                }
            }
            self.energy.energy_grad(&xn, n, &mut ge, &mut gg);
            let last = l + 1 == leapfrog;
            for c in 0..n {
                if !alive[c] {
                    continue;
                }
                let r = c * d..(c + 1) * d;
                if !ge[c].is_finite() || !all_finite(&xn[r.clone()]) || !all_finite(&gg[r.clone()])
                {
                    alive[c] = false;
                    continue;
                }
                let k = if last { 0.5 } else { 1.0 } * eps[c];
                for i in r.clone() {
                    x[i] = xn[i];
                    g[i] = gg[i];
                    p[i] -= k * g[i];
                }
                e[c] = ge[c];
            }
        }
        let mut info = Info::new(n);
        let mut out = s.clone();
        for c in 0..n {
            if s.frozen[c] {
                info.divergent[c] = true;
                continue;
            }
            let dh = e[c] + kinetic(&p, c) - h0[c];
            if !alive[c] || !dh.is_finite() || dh > self.config.max_energy_error {
                info.divergent[c] = true;
                continue;
            }
            let a = if dh <= 0.0 { 1.0 } else { (-dh).exp() };
            info.accept_prob[c] = a;
            if u_acc[c].ln() < -dh {
                info.accepted[c] = true;
                let r = c * d..(c + 1) * d;
                out.x[r.clone()].copy_from_slice(&x[r.clone()]);
                out.grad[r.clone()].copy_from_slice(&g[r]);
                out.energy[c] = e[c];
            }
        }
        (out, info)
    }
}
