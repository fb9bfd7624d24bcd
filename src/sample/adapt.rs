//! Warm-up adaptation: dual-averaging step size (Hoffman & Gelman 2014, as in
//! Stan) and a windowed diagonal mass matrix (Stan's schedule).
//!
//! Schedule for `warmup` iterations: an initial fast interval (75 iterations),
//! slow windows of 25, 50, 100, … iterations (the last one stretched to the
//! terminal interval), a terminal fast interval (50). When `warmup < 150` the
//! intervals become 15% / 75% / 10% of it. At the end of each slow window the
//! inverse mass is set to the regularised variance of the window's draws,
//! (n/(n+5))·var + 1e-3·5/(n+5), and dual averaging restarts at
//! μ = log(10·ε). At the end of warm-up the step size becomes the averaged
//! iterate exp(log ε̄) and everything is frozen.
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
}

const GAMMA: f64 = 0.05;
const T0: f64 = 10.0;
const KAPPA: f64 = 0.75;

impl DualAveraging {
    pub fn new(eps: f64, target: f64) -> Self {
        let mut d = DualAveraging {
            target,
            mu: 0.0,
            log_eps: eps.ln(),
            log_eps_bar: 0.0,
            h_bar: 0.0,
            count: 0.0,
        };
        d.restart(eps);
        d
    }
    pub fn restart(&mut self, eps: f64) {
        self.mu = (10.0 * eps).ln();
        self.log_eps = eps.ln();
        self.log_eps_bar = 0.0;
        self.h_bar = 0.0;
        self.count = 0.0;
    }
    /// Feed one acceptance statistic; returns the next step size.
    pub fn update(&mut self, accept: f64) -> f64 {
        let a = if accept.is_finite() {
            accept.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.count += 1.0;
        let eta = 1.0 / (self.count + T0);
        self.h_bar = (1.0 - eta) * self.h_bar + eta * (self.target - a);
        self.log_eps = self.mu - self.count.sqrt() / GAMMA * self.h_bar;
        let w = self.count.powf(-KAPPA);
        self.log_eps_bar = w * self.log_eps + (1.0 - w) * self.log_eps_bar;
        self.log_eps.exp()
    }
    /// The averaged step size, used after warm-up.
    pub fn final_step(&self) -> f64 {
        if self.count == 0.0 {
            self.log_eps.exp()
        } else {
            self.log_eps_bar.exp()
        }
    }
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
    /// Stan's regularised variance estimate.
    pub fn regularized_variance(&self) -> Vec<f64> {
        let n = self.n;
        self.m2
            .iter()
            .map(|m2| {
                let var = if n > 1.0 { m2 / (n - 1.0) } else { 1.0 };
                (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
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
