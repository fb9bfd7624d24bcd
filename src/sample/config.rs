//! Sampler configurations: unadjusted Langevin (ULA), MALA, random-walk
//! Metropolis–Hastings and HMC, their step-size conventions and adaptation
//! settings. The moves themselves are in `engine` (reference definitions)
//! and `runtime::steps` (the same moves as fused IR).
//!
//! Step-size conventions (`SamplerConfig::step`):
//! * ULA and MALA: `step` is λ in x ← x − (λ/2)∇E + √λ·ξ (the proposal variance);
//! * decoupled ULA (`noise = Some(σ)`, the EBM-papers form):
//!   x ← x − step·∇E + σ·ξ, which samples exp(−E/T) with T = σ²/(2·step)
//!   in the small-step limit (T = 1 for the coupled form);
//! * RWMH: `step` is the proposal standard deviation, x' = x + step·ξ;
//! * HMC: `step` is the leapfrog ε.
//!
//! With a diagonal inverse mass `m` (ones unless adapted), MALA and RWMH are preconditioned by it (noise scaled by √m, drift
//! by m) and HMC draws momenta p ~ N(0, diag(1/m)).
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
