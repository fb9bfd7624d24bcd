//! Warm-up adaptation: dual-averaging step size (Hoffman & Gelman 2014, as in
//! Stan, with a final fit that lands on the target: [`DualAveraging::final_step`])
//! and a windowed metric, diagonal or dense (Stan's schedule; the
//! covariance accumulator is in `metric`).
//!
//! Schedule for `warmup` iterations: an initial fast interval (75 iterations),
//! slow windows of 25, 50, 100, … iterations (the last one stretched to the
//! terminal interval), a terminal fast interval (50). When `warmup < 150` the
//! intervals become 15% / 75% / 10% of it. At the end of each slow window the
//! metric is set from the window's draws — their variances (diagonal), or
//! their covariance with a relative ridge (dense) — and
//! dual averaging restarts at μ = log(2·ε). At the end of warm-up the step
//! size is set by [`DualAveraging::final_step`] and everything is frozen.
//! The estimates are scale-free: a coordinate of scale 10⁻³ next to one of
//! scale 1 gets its own variance, where Stan's ridge of 10⁻³·5/(n+5) would
//! inflate it tenfold.
//!
//! Scope: `PerChain` (default) adapts every chain from its own statistics, so
//! chains stay fully independent (a chain's draws do not depend on the number
//! of chains); `Shared` pools the acceptance statistics and the window
//! variances over all chains, and every chain uses the same step size and
//! mass (steadier with many short chains; chains then interact through
//! warm-up).

/// Whether adaptation is per chain or pooled over chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AdaptScope {
    #[default]
    PerChain,
    Shared,
}

impl AdaptScope {
    pub fn name(self) -> &'static str {
        match self {
            AdaptScope::PerChain => "per_chain",
            AdaptScope::Shared => "shared",
        }
    }
}

/// Nesterov dual averaging of log ε towards a target acceptance rate.
#[derive(Clone, Debug, PartialEq)]
pub struct DualAveraging {
    pub target: f64,
    mu: f64,
    log_eps: f64,
    log_eps_bar: f64,
    h_bar: f64,
    count: f64,
    /// (log ε, acceptance) of every update since the last restart, for
    /// the final fit.
    trace: Vec<(f64, f64)>,
}

/// The shrinkage γ: 0.15 where Stan has 0.05. A smaller γ lets the iterates
/// swing further (a factor of about 2 either way in the final window),
/// which is what makes the acceptance at their average overshoot the
/// target; 0.15 cuts the swing to a third at the cost of a slower first
/// approach, which the window restarts absorb. Measured on the
/// statistical suite's targets (docs/sampling.md, "Adaptation").
const GAMMA: f64 = 0.15;
const T0: f64 = 10.0;
const KAPPA: f64 = 0.75;

/// The constants a whole transition's graph needs to repeat
/// [`DualAveraging::update`] on a device.
pub const RULE: crate::runtime::steps::DualAveragingRule =
    crate::runtime::steps::DualAveragingRule {
        t0: T0,
        gamma: GAMMA,
    };

impl DualAveraging {
    pub fn new(eps: f64, target: f64) -> Self {
        let mut d = DualAveraging {
            target,
            mu: 0.0,
            log_eps: eps.ln(),
            log_eps_bar: 0.0,
            h_bar: 0.0,
            count: 0.0,
            trace: Vec::new(),
        };
        d.restart(eps);
        d
    }
    pub fn restart(&mut self, eps: f64) {
        self.mu = (MU_FACTOR * eps).ln();
        self.log_eps = eps.ln();
        self.log_eps_bar = 0.0;
        self.h_bar = 0.0;
        self.count = 0.0;
        self.trace.clear();
    }
    /// What a device's copy of the update starts a window from: μ, h̄ and
    /// the count of updates since the last restart.
    pub fn carried(&self) -> (f64, f64, f64) {
        (self.mu, self.h_bar, self.count)
    }
    /// Feed one acceptance statistic; returns the next step size.
    pub fn update(&mut self, accept: f64) -> f64 {
        self.update_used(accept, None)
    }
    /// [`update`](Self::update) for a transition that ran with step `used`
    /// rather than the current iterate (HMC's jittered ε): the final fit
    /// relates acceptance to the step that produced it.
    pub fn update_used(&mut self, accept: f64, used: Option<f64>) -> f64 {
        let a = if accept.is_finite() {
            accept.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let x = used.filter(|u| *u > 0.0).map_or(self.log_eps, f64::ln);
        self.trace.push((x, a));
        self.count += 1.0;
        let eta = 1.0 / (self.count + T0);
        self.h_bar = (1.0 - eta) * self.h_bar + eta * (self.target - a);
        self.log_eps = self.mu - self.count.sqrt() / GAMMA * self.h_bar;
        let w = self.count.powf(-KAPPA);
        self.log_eps_bar = w * self.log_eps + (1.0 - w) * self.log_eps_bar;
        self.log_eps.exp()
    }
    /// The step size used after warm-up: where the acceptance curve fitted
    /// to the last window's iterates meets the target, near the averaged
    /// iterate ε̄.
    ///
    /// Dual averaging makes the *mean* acceptance over its fluctuating
    /// iterates equal the target, but acceptance falls steeply above the
    /// best step and saturates at 1 below it, so the acceptance *at* ε̄ is
    /// higher (Stan's HMC lands at 0.93–0.97 for a 0.8 target). A logistic
    /// curve a = σ(α + β·log ε), fitted to the window's (log ε, acceptance)
    /// pairs, sees the curvature; its solution replaces ε̄ when the curve
    /// decreases, moved at most a factor [`MAX_REFIT`] from ε̄.
    pub fn final_step(&self) -> f64 {
        if self.count == 0.0 {
            return self.log_eps.exp();
        }
        let bar = self.log_eps_bar;
        match fit_logistic(&self.trace) {
            Some((alpha, beta, centre)) if beta < 0.0 => {
                let t = self.target.clamp(1e-3, 1.0 - 1e-3);
                let x = centre + ((t / (1.0 - t)).ln() - alpha) / beta;
                let m = MAX_REFIT.ln();
                if x.is_finite() {
                    x.clamp(bar - m, bar + m).exp()
                } else {
                    bar.exp()
                }
            }
            _ => bar.exp(),
        }
    }
}

/// Each (re)start shrinks towards log(2ε), where Stan has log(10ε): right
/// after a restart the iterate sits near μ, and ten times a step that was
/// just right diverges (hundreds of warm-up "divergences" on a Gaussian);
/// twice is still an upward probe, and a window of a few iterations (short
/// warm-ups) can come back from it.
const MU_FACTOR: f64 = 2.0;

/// The most the final fit moves the step from the averaged iterate.
pub const MAX_REFIT: f64 = 2.0;

/// Fits a = σ(α + β·(x − x̄)) to (x, a) pairs with a ∈ [0, 1] (cross-entropy,
/// Newton's method); returns (α, β, x̄), or `None` when the pairs cannot
/// pin a curve down (too few, no spread in x, or no convergence).
pub fn fit_logistic(pairs: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let n = pairs.len() as f64;
    if pairs.len() < 8 {
        return None;
    }
    let centre = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let spread = pairs.iter().map(|p| (p.0 - centre).powi(2)).sum::<f64>() / n;
    if !(spread > 1e-12 && spread.is_finite()) {
        return None;
    }
    let (mut alpha, mut beta) = (0.0f64, 0.0f64);
    for _ in 0..50 {
        // A small ridge keeps the Newton step defined when every point is
        // accepted (the curve would run off to α = ∞).
        let (mut ga, mut gb) = (1e-3 * alpha, 1e-3 * beta);
        let (mut haa, mut hab, mut hbb) = (1e-3, 0.0, 1e-3);
        for &(x, a) in pairs {
            let u = x - centre;
            let sig = 1.0 / (1.0 + (-(alpha + beta * u)).exp());
            let w = sig * (1.0 - sig);
            ga += sig - a;
            gb += (sig - a) * u;
            haa += w;
            hab += w * u;
            hbb += w * u * u;
        }
        let det = haa * hbb - hab * hab;
        if !(det > 0.0 && det.is_finite()) {
            return None;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        alpha -= da;
        beta -= db;
        if da.abs() + db.abs() < 1e-10 {
            return (alpha.is_finite() && beta.is_finite()).then_some((alpha, beta, centre));
        }
    }
    None
}

/// Running mean and variance (Welford).
#[derive(Clone, Debug, PartialEq)]
pub struct Welford {
    pub n: f64,
    pub mean: Vec<f64>,
    pub m2: Vec<f64>,
}

impl Welford {
    pub fn new(dim: usize) -> Self {
        Welford {
            n: 0.0,
            mean: vec![0.0; dim],
            m2: vec![0.0; dim],
        }
    }
    pub fn add(&mut self, x: &[f64]) {
        self.n += 1.0;
        for (i, &v) in x.iter().enumerate() {
            let d = v - self.mean[i];
            self.mean[i] += d / self.n;
            self.m2[i] += d * (v - self.mean[i]);
        }
    }
    /// The window's variances, each coordinate falling back to `prev` (the
    /// metric in use) where the window gives none (fewer than two draws, a
    /// coordinate that never moved, a non-finite value).
    ///
    /// No ridge towards a fixed scale: Stan's 10⁻³·5/(n+5) turns a
    /// variance of 10⁻⁶ into 10⁻⁵ and leaves that coordinate ill-scaled.
    pub fn variance_or(&self, prev: &[f64]) -> Vec<f64> {
        let n = self.n;
        self.m2
            .iter()
            .zip(prev)
            .map(|(m2, &p)| {
                let var = m2 / (n - 1.0);
                if n > 1.0 && var > 0.0 && var.is_finite() {
                    var
                } else {
                    p
                }
            })
            .collect()
    }
    pub fn reset(&mut self) {
        let d = self.mean.len();
        *self = Welford::new(d);
    }
}

/// Stan's warm-up windows: returns the (exclusive) end iteration of each slow
/// window, and the start of the first one.
pub fn mass_windows(warmup: usize) -> (usize, Vec<usize>) {
    let (mut init, mut term, base) = (75usize, 50usize, 25usize);
    if warmup < init + term + base {
        init = warmup * 15 / 100;
        term = warmup / 10;
    }
    let slow_end = warmup.saturating_sub(term);
    if slow_end <= init {
        return (init, Vec::new());
    }
    let mut base = if warmup < 150 { slow_end - init } else { base };
    let mut ends = Vec::new();
    let mut start = init;
    loop {
        let end = start + base;
        // If the next window would overrun, stretch this one to slow_end.
        if end + 2 * base > slow_end {
            ends.push(slow_end);
            break;
        }
        ends.push(end);
        start = end;
        base *= 2;
    }
    (init, ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stan_windows() {
        // Stan with 1000 warm-up: 75..100..150..250..450..950, then 50 fast.
        assert_eq!(mass_windows(1000), (75, vec![100, 150, 250, 450, 950]));
        let (s, w) = mass_windows(100);
        assert_eq!(s, 15);
        assert_eq!(w, vec![90]);
        assert_eq!(mass_windows(0).1, Vec::<usize>::new());
    }

    #[test]
    fn dual_averaging_converges_on_a_monotone_response() {
        // Acceptance exp(−ε) hits 0.5 at ε = ln 2.
        let mut da = DualAveraging::new(0.01, 0.5);
        let mut eps: f64 = 0.01;
        for _ in 0..2000 {
            eps = da.update((-eps).exp());
        }
        assert!(
            (da.final_step() - 2f64.ln()).abs() < 0.02,
            "{}",
            da.final_step()
        );
        assert!(eps > 0.0);
    }
}
