//! Sampler configurations: unadjusted Langevin (ULA), MALA, random-walk
//! Metropolis–Hastings, HMC, replica-exchange parallel tempering (PT) and
//! underdamped (kinetic) Langevin (ULD), their step-size conventions and
//! adaptation settings. The moves themselves are in `engine` (reference definitions)
//! and `runtime::steps` (the same moves as fused IR).
//!
//! Step-size conventions (`SamplerConfig::step`):
//! * ULA and MALA: `step` is λ in x ← x − (λ/2)∇E + √λ·ξ (the proposal variance);
//! * decoupled ULA (`noise = Some(σ)`, the EBM-papers form):
//!   x ← x − step·∇E + σ·ξ, which samples exp(−E/T) with T = σ²/(2·step)
//!   in the small-step limit (T = 1 for the coupled form);
//! * RWMH: `step` is the proposal standard deviation, x' = x + step·ξ;
//! * HMC: `step` is the leapfrog ε;
//! * PT: `step` is the initial step of every replica's move (MALA's λ or
//!   RWMH's sd); each temperature adapts its own during warm-up;
//! * ULD: `step` is the time step h of one BAOAB step with friction γ and
//!   unit mass, velocity v:
//!   v ← v − (h/2)∇E(x); x ← x + (h/2)v; v ← c·v + √(1 − c²)·ξ with
//!   c = e^(−γh); x ← x + (h/2)v; v ← v − (h/2)∇E(x).
//!   One gradient per step (∇E at the new x is carried to the next step).
//!   Unadjusted like ULA: the x-marginal has an O(h²) bias in general, and
//!   none on a Gaussian target for any stable h < 2/√λ_max(∇²E)
//!   (Leimkuhler & Matthews 2013). Velocities start at N(0, I).
//!
//! Parallel tempering: each user chain is K replicas on the ladder
//! 1 = T₁ < T₂ < … < T_K; replica k targets exp(−E/T_k), i.e. its move uses
//! β_k = 1/T_k as a scale of the energy (drift β∇E, MH ratio β·ΔE). Every
//! `swap_every` transitions, adjacent pairs (even pairs, then odd pairs, in
//! alternation) exchange states with probability
//! min(1, exp((β_i − β_j)(E_i − E_j))). Only the T = 1 replica is kept.
//!
//! With an inverse mass M⁻¹ (the metric: identity unless adapted), MALA is
//! preconditioned by it (x' = x − (λ/2)M⁻¹∇E + √λ·Lξ with LLᵀ = M⁻¹),
//! RWMH's noise is scaled by √diag(M⁻¹), and HMC and NUTS draw momenta
//! p ~ N(0, M) and move x by εM⁻¹p. Diagonal metrics run in the fused
//! kernels; a dense one applies M⁻¹ and L on the host around E and ∇E.
//!
//! Divergence handling is described in `engine`.

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

/// The move each parallel-tempering replica makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtMove {
    Mala,
    Rwmh,
}

/// Options of replica-exchange parallel tempering.
#[derive(Clone, Debug, PartialEq)]
pub struct PtOptions {
    /// The temperatures, T₁ = 1 < T₂ < … (checked by [`PtOptions::check`]).
    pub ladder: Vec<f64>,
    /// Propose swaps after every `swap_every`-th transition.
    pub swap_every: usize,
    pub moves: PtMove,
}

/// The most replicas a parallel-tempering chain may have.
pub const MAX_REPLICAS: usize = 256;

impl PtOptions {
    /// K replicas on the geometric ladder T_k = t_max^((k−1)/(K−1)).
    pub fn geometric(replicas: usize, t_max: f64) -> PtOptions {
        let k = replicas.max(1);
        let ladder = (0..k)
            .map(|i| {
                if k == 1 {
                    1.0
                } else {
                    t_max.powf(i as f64 / (k - 1) as f64)
                }
            })
            .collect();
        PtOptions {
            ladder,
            swap_every: 1,
            moves: PtMove::Mala,
        }
    }
    pub fn replicas(&self) -> usize {
        self.ladder.len()
    }
    /// β_k = 1/T_k.
    pub fn betas(&self) -> Vec<f64> {
        self.ladder.iter().map(|t| 1.0 / t).collect()
    }
    /// Why the ladder or swap interval is unusable, in words.
    pub fn check(&self) -> Option<String> {
        let l = &self.ladder;
        if l.len() < 2 || l.len() > MAX_REPLICAS {
            return Some(format!(
                "a ladder needs between 2 and {MAX_REPLICAS} temperatures, found {}",
                l.len()
            ));
        }
        if l[0] != 1.0 {
            return Some(format!(
                "the ladder must start at temperature 1, found {}",
                l[0]
            ));
        }
        if !l.iter().all(|t| t.is_finite()) || l.windows(2).any(|w| w[1] <= w[0]) {
            let text: Vec<String> = l.iter().map(|t| t.to_string()).collect();
            return Some(format!(
                "the ladder's temperatures must be finite and increasing, found {}",
                text.join(", ")
            ));
        }
        if self.swap_every == 0 {
            return Some("swaps must be proposed every 1 or more transitions".into());
        }
        None
    }
}

/// Options of underdamped (kinetic) Langevin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UldOptions {
    /// Friction γ (per unit time; the step is h).
    pub friction: f64,
}

impl Default for UldOptions {
    fn default() -> Self {
        UldOptions { friction: 1.0 }
    }
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
    /// The no-U-turn sampler: trajectories doubled until they turn back
    /// (or reach 2^`max_depth` leapfrog steps), multinomial sampling.
    Nuts {
        max_depth: usize,
    },
    /// Replica-exchange parallel tempering.
    Pt(PtOptions),
    /// Underdamped Langevin (BAOAB), unadjusted.
    Uld(UldOptions),
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Ula(_) => "ula",
            Method::Mala => "mala",
            Method::Rwmh => "rwmh",
            Method::Hmc { .. } => "hmc",
            Method::Nuts { .. } => "nuts",
            Method::Pt(_) => "pt",
            Method::Uld(_) => "uld",
        }
    }
    /// Whether the kernel has an accept/reject step (and so adapts).
    pub fn is_mh(&self) -> bool {
        !matches!(self, Method::Ula(_) | Method::Uld(_))
    }
    pub fn needs_grad(&self) -> bool {
        !matches!(
            self,
            Method::Rwmh
                | Method::Pt(PtOptions {
                    moves: PtMove::Rwmh,
                    ..
                })
        )
    }
    /// Whether the kernel integrates Hamiltonian trajectories (HMC, NUTS).
    pub fn is_hamiltonian(&self) -> bool {
        matches!(self, Method::Hmc { .. } | Method::Nuts { .. })
    }
    /// The most gradient evaluations one transition can take.
    pub fn max_evals_per_step(&self) -> f64 {
        match self {
            Method::Hmc { leapfrog } => *leapfrog as f64,
            Method::Nuts { max_depth } => 2f64.powi(*max_depth as i32),
            _ => 1.0,
        }
    }
    /// Engine chains per user chain (PT's replicas; 1 otherwise).
    pub fn replicas(&self) -> usize {
        match self {
            Method::Pt(o) => o.replicas().max(1),
            _ => 1,
        }
    }
}

/// The metric (inverse mass matrix M⁻¹) of the gradient samplers: `Unit`
/// (M = I, not adapted), `Diag` (a diagonal estimated from the warm-up
/// windows' variances) or `Dense` (a full matrix from their covariances).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Unit,
    Diag,
    Dense,
}

/// The deepest NUTS tree (2¹⁵ leapfrog steps per transition).
pub const MAX_TREE_DEPTH: usize = 15;
/// NUTS's default maximum depth (Stan's).
pub const DEFAULT_MAX_DEPTH: usize = 10;

/// The largest dimension a dense metric is offered for: its factor costs
/// d² per chain and d² work per gradient.
pub const MAX_DENSE_DIM: usize = 1024;

impl MetricKind {
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Unit => "unit",
            MetricKind::Diag => "diag",
            MetricKind::Dense => "dense",
        }
    }
    pub fn named(name: &str) -> Option<MetricKind> {
        Some(match name {
            "unit" => MetricKind::Unit,
            "diag" => MetricKind::Diag,
            "dense" => MetricKind::Dense,
            _ => return None,
        })
    }
    /// Whether warm-up estimates it.
    pub fn adapted(self) -> bool {
        self != MetricKind::Unit
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
    /// The metric (inverse mass matrix) of MALA, HMC and NUTS, adapted in
    /// warm-up windows unless `Unit`.
    pub metric: MetricKind,
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
        let metric = match method {
            Method::Hmc { .. } | Method::Nuts { .. } | Method::Mala => MetricKind::Diag,
            _ => MetricKind::Unit,
        };
        SamplerConfig {
            method,
            step,
            adapt_step: mh,
            target_accept: target,
            metric,
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

    /// The no-U-turn sampler with trees of at most 2^`max_depth` leaves.
    pub fn nuts(step: f64, max_depth: usize) -> Self {
        Self::base(Method::Nuts { max_depth }, step, 0.8)
    }

    /// Parallel tempering with MALA moves on K replicas, geometric ladder
    /// up to `t_max`.
    pub fn pt(step: f64, replicas: usize, t_max: f64) -> Self {
        Self::base(
            Method::Pt(PtOptions::geometric(replicas, t_max)),
            step,
            0.574,
        )
    }
    /// Underdamped Langevin (BAOAB) with time step `step` and `friction`.
    pub fn uld(step: f64, friction: f64) -> Self {
        Self::base(Method::Uld(UldOptions { friction }), step, 1.0)
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
            Method::Nuts { max_depth } => {
                v.push(("max_depth".into(), format!("{max_depth}")));
                v.push((
                    "max_energy_error".into(),
                    format!("{}", self.max_energy_error),
                ));
            }
            Method::Pt(o) => {
                let l: Vec<String> = o.ladder.iter().map(|t| format!("{t}")).collect();
                v.push(("ladder".into(), l.join(" ")));
                v.push(("swap_every".into(), format!("{}", o.swap_every)));
                let m = match o.moves {
                    PtMove::Mala => "mala",
                    PtMove::Rwmh => "rwmh",
                };
                v.push(("replica_move".into(), m.into()));
            }
            Method::Uld(o) => {
                v.push(("friction".into(), format!("{}", o.friction)));
            }
            _ => {}
        }
        if self.method.is_mh() {
            v.push(("adapt_step".into(), format!("{}", self.adapt_step)));
            v.push(("target_accept".into(), format!("{}", self.target_accept)));
            // Not `metric`: CmdStan readers take any line with `metric =` in
            // the header as theirs (ebm's keys are copied into CmdStan files).
            v.push(("metric_kind".into(), self.metric.name().into()));
            v.push(("adapt_scope".into(), self.adapt_scope.name().into()));
        }
        v
    }
}
