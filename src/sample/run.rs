//! The run driver: initialisation, warm-up with adaptation, sampling,
//! thinning, progress bar and run summary.

use std::fmt;
use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::BatchEnergy;
use super::adapt::AdaptScope;
use super::compiled::CompiledTarget;
use super::config::{Method, SamplerConfig, UlaOptions, UldOptions};
use super::engine::{Block, Target, Window, run_block, window_end};
use super::spill::{Spill, Stream};
use crate::backend::{Backend, Buffer, DType, pool};
use crate::runtime::{CompiledEnergy, RuntimeError, Scalar};

/// How chains start. Draws come from each chain's own stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// Independent N(mean, sd²) coordinates.
    Normal { mean: f64, sd: f64 },
    /// Independent U(a, b) coordinates.
    Uniform { a: f64, b: f64 },
    /// Rows of `rows × dim` values (data or a file read by the caller);
    /// chain c starts at row c mod rows.
    Array { values: Vec<f64>, rows: usize },
}

impl Init {
    pub fn describe(&self) -> String {
        match self {
            Init::Normal { mean, sd } => format!("normal({mean}, {sd})"),
            Init::Uniform { a, b } => format!("uniform({a}, {b})"),
            Init::Array { rows, .. } => format!("array({rows} rows)"),
        }
    }
}

/// Run settings besides the sampler itself.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    pub chains: usize,
    pub warmup: usize,
    /// Post-warm-up iterations; every `thin`-th one is kept (the first is).
    pub steps: usize,
    pub thin: usize,
    pub seed: u64,
    pub init: Init,
    /// Show a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Run contiguous blocks of chains on this many threads (per-chain
    /// adaptation only; with shared adaptation the run uses one block).
    /// Results are identical for any value when the energy evaluates each
    /// point independently of the batch.
    pub threads: usize,
    /// Evaluate E where a sampler does not need it: ULA's start points and
    /// kept draws (the draws' energy column, and freezing a chain whose E is
    /// not finite there). Off, ULA only moves the chains: the energy column
    /// is NaN and only non-finite positions freeze a chain. Training's
    /// negative phase turns it off (its loss pass evaluates E at the
    /// negatives and guards it); MH samplers and ULD (whose step computes
    /// E at the new point) always evaluate E.
    pub energies: bool,
    /// Stream the kept draws to spill files beside this output as the
    /// chains run ([`super::spill`]): the run's memory no longer grows with
    /// its length, and the returned draws hold a subsample in memory (every
    /// [`Stream::stride`]-th kept draw) with the full
    /// draws in [`Draws::spill`]. `None` keeps every draw in memory.
    pub stream: Option<Stream>,
}

impl RunConfig {
    pub fn new(chains: usize, warmup: usize, steps: usize, seed: u64) -> Self {
        RunConfig {
            chains,
            warmup,
            steps,
            thin: 1,
            seed,
            init: Init::Normal { mean: 0.0, sd: 1.0 },
            progress: false,
            threads: 1,
            energies: true,
            stream: None,
        }
    }
    /// Every how many kept draws the returned draws hold in memory: 1, or
    /// for a streamed run [`Stream::stride`].
    pub fn stride(&self, dim: usize) -> usize {
        self.stream
            .as_ref()
            .map_or(1, |st| st.stride(self.chains, self.kept(), dim))
    }
    pub fn kept(&self) -> usize {
        self.steps.div_ceil(self.thin.max(1))
    }
}

/// A chain's first divergence.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    pub chain: usize,
    /// Iteration counted from the start of warm-up.
    pub iteration: usize,
}

/// A chain that escaped to infinity: it diverged (first at `iteration`)
/// far out, with its energy far below where it started — what an energy
/// unbounded below does to a sampler (`sample::engine` tells it from an
/// ordinary divergence).
#[derive(Clone, Debug, PartialEq)]
pub struct Escape {
    pub chain: usize,
    /// Iteration of its first divergence, counted from the start of
    /// warm-up; `None` for a chain still running away (finite) at the end.
    pub iteration: Option<usize>,
    /// ‖x‖ and E where the chain ended (its last finite state).
    pub norm: f64,
    pub energy: f64,
}

/// A chain the run summary flags as stuck: its step size collapsed (below
/// [`COLLAPSED_STEP`] × the median chain's) or it stopped moving (no change
/// between kept draws, or at most 1% distinct draws when it kept at least
/// [`STUCK_MIN_KEPT`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Stuck {
    pub chain: usize,
    pub step: f64,
    pub accept: f64,
    /// Distinct kept draws: 1 + the kept draws that differ from the one
    /// before (bitwise), of `kept`.
    pub distinct: usize,
    pub kept: usize,
    pub collapsed: bool,
    pub stopped: bool,
    /// Frozen at its last finite point after a divergence.
    pub frozen: bool,
}

/// A chain's step size collapsed below this × the median chain's.
pub const COLLAPSED_STEP: f64 = 1e-8;
/// A chain stopped moving when it kept this many draws or more and at most
/// 1% of them (at least 1) are distinct.
pub const STUCK_MIN_KEPT: usize = 100;

impl Stuck {
    /// The chains of a run that are stuck, in chain order.
    pub fn find(
        step: &[f64],
        accept: &[f64],
        distinct: &[usize],
        frozen: &[bool],
        kept: usize,
    ) -> Vec<Stuck> {
        let median = median(step);
        (0..step.len())
            .filter_map(|c| {
                let collapsed = median > 0.0 && step[c] < COLLAPSED_STEP * median;
                let stopped = kept >= STUCK_MIN_KEPT && distinct[c] <= (kept / 100).max(1);
                (collapsed || stopped).then(|| Stuck {
                    chain: c,
                    step: step[c],
                    accept: accept[c],
                    distinct: distinct[c],
                    kept,
                    collapsed,
                    stopped,
                    frozen: frozen.get(c).copied().unwrap_or(false),
                })
            })
            .collect()
    }
}

/// The median of `v` (NaN for none; NaNs sort last).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Per chain of `d`: 1 + the kept draws that differ (bitwise) from the
/// draw before (0 for a chain with no draws).
pub fn distinct_draws(d: &Draws) -> Vec<usize> {
    (0..d.chains)
        .map(|c| {
            if d.draws == 0 {
                return 0;
            }
            1 + (1..d.draws)
                .filter(|&k| {
                    d.point(c, k)
                        .iter()
                        .zip(d.point(c, k - 1))
                        .any(|(a, b)| a.to_bits() != b.to_bits())
                })
                .count()
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub sampler: String,
    pub chains: usize,
    pub warmup: usize,
    pub steps: usize,
    pub thin: usize,
    pub seed: u64,
    /// Mean acceptance probability over post-warm-up transitions.
    pub accept_rate: f64,
    /// Divergent transitions after / during warm-up (PT: of every replica;
    /// the acceptance rate, frozen chains and draws are the T = 1 replica's).
    pub divergences: usize,
    pub warmup_divergences: usize,
    /// Each chain's first divergence after warm-up (or its freeze, at any
    /// time), in chain order.
    pub divergent_chains: Vec<Divergence>,
    /// Chains that escaped to infinity (listed here instead of in
    /// `divergent_chains`; their transitions still count as divergences).
    pub escaped_chains: Vec<Escape>,
    /// Final step size: mean, min, median and max over chains.
    pub step_mean: f64,
    pub step_min: f64,
    pub step_median: f64,
    pub step_max: f64,
    /// Per chain (PT: its T = 1 replica): the final (adapted) step size,
    /// the mean acceptance over post-warm-up transitions (a proposal that
    /// rounded to no move counts as 0), and the distinct kept draws (see
    /// [`distinct_draws`]).
    pub chain_step: Vec<f64>,
    pub chain_accept: Vec<f64>,
    pub chain_distinct: Vec<usize>,
    /// Per chain, the final inverse mass matrix where the sampler records
    /// it: `dim` diagonal entries, or `dim × dim` row-major for a dense
    /// metric; empty when not recorded (CmdStan files then state a unit
    /// metric, or omit the entries of an adapted one).
    pub chain_inv_metric: Vec<Vec<f64>>,
    /// Chains whose step collapsed or that stopped moving ([`Stuck`]).
    pub stuck_chains: Vec<Stuck>,
    /// T = noise²/(2·step) for decoupled Langevin.
    pub effective_temperature: Option<f64>,
    /// Chains frozen at the end (ULA divergences or non-finite starts).
    pub frozen_chains: usize,
    pub elapsed_s: f64,
    pub chain_steps_per_s: f64,
    /// Gradient (or energy, for RWMH) evaluations, counted per chain
    /// (and per replica for PT).
    pub evaluations: u64,
    /// NUTS: sampling-phase transitions that stopped at the maximum tree
    /// depth (0 for the other samplers).
    pub max_depth_hits: usize,
    /// PT only (empty otherwise): the temperature ladder, the mean swap
    /// acceptance probability of each adjacent pair (T_k, T_k+1), and each
    /// temperature's mean acceptance and final step size over chains.
    pub ladder: Vec<f64>,
    pub swap_rates: Vec<f64>,
    pub replica_accept: Vec<f64>,
    pub replica_step: Vec<f64>,
}

/// Values as one space-separated list for the CSV header.
fn list(v: &[f64]) -> String {
    let t: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
    t.join(" ")
}

/// Values in exponent form (shortest round-trip digits), space-separated:
/// adapted step sizes span hundreds of orders of magnitude.
fn exp_list(v: &[f64]) -> String {
    let t: Vec<String> = v.iter().map(|x| format!("{x:e}")).collect();
    t.join(" ")
}

/// Values as a short list for the screen.
fn short_list(v: &[f64], digits: usize) -> String {
    let t: Vec<String> = v.iter().map(|x| format!("{x:.digits$}")).collect();
    t.join(", ")
}

impl RunSummary {
    /// `key = value` pairs for the CSV header. Timings are left out, so the
    /// same seed writes the same bytes (the run summary on screen has them).
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("accept_rate".to_string(), format!("{}", self.accept_rate)),
            ("divergences".into(), format!("{}", self.divergences)),
            (
                "warmup_divergences".into(),
                format!("{}", self.warmup_divergences),
            ),
            ("step_size_mean".into(), format!("{}", self.step_mean)),
            ("step_size_min".into(), format!("{}", self.step_min)),
            ("step_size_median".into(), format!("{}", self.step_median)),
            ("step_size_max".into(), format!("{}", self.step_max)),
            ("step_sizes".into(), exp_list(&self.chain_step)),
            ("frozen_chains".into(), format!("{}", self.frozen_chains)),
        ];
        v.push((
            "gradient_evaluations".into(),
            format!("{}", self.evaluations),
        ));
        if self.sampler == "nuts" {
            v.push(("max_depth_hits".into(), format!("{}", self.max_depth_hits)));
        }
        for (c, m) in self.chain_inv_metric.iter().enumerate() {
            v.push((format!("inv_metric_{c}"), exp_list(m)));
        }
        if !self.stuck_chains.is_empty() {
            let ids: Vec<String> = self
                .stuck_chains
                .iter()
                .map(|c| c.chain.to_string())
                .collect();
            v.push(("stuck_chains".into(), ids.join(" ")));
        }
        if let Some(t) = self.effective_temperature {
            v.push(("effective_temperature".into(), format!("{t}")));
        }
        if !self.ladder.is_empty() {
            v.push(("pt_ladder".into(), list(&self.ladder)));
            v.push(("pt_swap_rates".into(), list(&self.swap_rates)));
            v.push(("pt_accept_rates".into(), list(&self.replica_accept)));
            v.push(("pt_step_sizes".into(), list(&self.replica_step)));
        }
        if !self.divergent_chains.is_empty() {
            let list: Vec<String> = self
                .divergent_chains
                .iter()
                .take(20)
                .map(|d| format!("{}@{}", d.chain, d.iteration))
                .collect();
            v.push(("first_divergence(chain@iter)".into(), list.join(" ")));
        }
        if !self.escaped_chains.is_empty() {
            let list: Vec<String> = self
                .escaped_chains
                .iter()
                .take(20)
                .map(|d| match d.iteration {
                    Some(it) => format!("{}@{it}", d.chain),
                    None => format!("{}@end", d.chain),
                })
                .collect();
            v.push(("escaped_to_infinity(chain@iter)".into(), list.join(" ")));
        }
        v
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} chains × ({} warm-up + {} steps, thin {}), seed {}",
            self.sampler, self.chains, self.warmup, self.steps, self.thin, self.seed
        )?;
        writeln!(
            f,
            "  acceptance {:.3}, divergences {} (+{} in warm-up), frozen chains {}",
            self.accept_rate, self.divergences, self.warmup_divergences, self.frozen_chains
        )?;
        if self.step_min == self.step_max {
            writeln!(f, "  step size {:.4e}", self.step_mean)?;
        } else {
            writeln!(
                f,
                "  step size {:.4e} (min {:.4e}, median {:.4e}, max {:.4e})",
                self.step_mean, self.step_min, self.step_median, self.step_max
            )?;
        }
        if self.sampler == "nuts" {
            let per =
                self.evaluations as f64 / (self.chains * (self.warmup + self.steps)).max(1) as f64;
            writeln!(
                f,
                "  {per:.1} leapfrog steps per transition; maximum tree depth reached {} times",
                self.max_depth_hits
            )?;
        }
        if let Some(t) = self.effective_temperature {
            writeln!(
                f,
                "  decoupled step/noise: samples exp(-E/T) with effective temperature T = {t:.4}"
            )?;
        }
        if !self.ladder.is_empty() {
            writeln!(
                f,
                "  temperatures {} (acceptance {}; step sizes {})",
                short_list(&self.ladder, 3),
                short_list(&self.replica_accept, 3),
                short_list(&self.replica_step, 3)
            )?;
            writeln!(
                f,
                "  swap acceptance between adjacent temperatures: {}",
                short_list(&self.swap_rates, 3)
            )?;
        }
        for d in self.divergent_chains.iter().take(5) {
            writeln!(
                f,
                "  chain {} diverged first at iteration {}",
                d.chain, d.iteration
            )?;
        }
        if self.divergent_chains.len() > 5 {
            writeln!(
                f,
                "  ... and {} more divergent chains",
                self.divergent_chains.len() - 5
            )?;
        }
        for st in self.stuck_chains.iter().take(5) {
            writeln!(f, "  {}", st.describe(self.step_median))?;
        }
        if self.stuck_chains.len() > 5 {
            writeln!(
                f,
                "  ... and {} more stuck chains",
                self.stuck_chains.len() - 5
            )?;
        }
        if !self.stuck_chains.is_empty() && self.chain_step.len() <= 16 {
            writeln!(
                f,
                "  {:>7} {:>11} {:>10} {:>14}",
                "chain", "step size", "acceptance", "distinct draws"
            )?;
            for c in 0..self.chain_step.len() {
                writeln!(
                    f,
                    "  {:>7} {:>11.3e} {:>10.3} {:>14}",
                    c,
                    self.chain_step[c],
                    self.chain_accept.get(c).copied().unwrap_or(f64::NAN),
                    self.chain_distinct.get(c).copied().unwrap_or(0)
                )?;
            }
        }
        for d in self.escaped_chains.iter().take(5) {
            let when = match d.iteration {
                Some(it) => format!("escaped to infinity at iteration {it}"),
                None => "was escaping to infinity at the end".to_string(),
            };
            writeln!(
                f,
                "  chain {} {when} (|x| = {:.3e}, E = {:.3e}): the energy looks unbounded below (a `not` or a negative weight?)",
                d.chain, d.norm, d.energy
            )?;
        }
        if self.escaped_chains.len() > 5 {
            writeln!(
                f,
                "  ... and {} more chains escaped to infinity",
                self.escaped_chains.len() - 5
            )?;
        }
        write!(
            f,
            "  {:.3} s, {:.3e} chain-steps/s",
            self.elapsed_s, self.chain_steps_per_s
        )
    }
}

impl Stuck {
    /// "chain 3 is stuck: step size 1.2e-44 (median 2.3e-1), …".
    pub fn describe(&self, median: f64) -> String {
        let mut why = Vec::new();
        if self.frozen {
            why.push("frozen after a divergence".to_string());
        }
        why.push(format!("step size {:.1e} (median {median:.1e})", self.step));
        why.push(format!("acceptance {:.3}", self.accept));
        why.push(format!(
            "{} distinct draw{} of {}",
            self.distinct,
            if self.distinct == 1 { "" } else { "s" },
            self.kept
        ));
        let hint = if self.collapsed && !self.frozen {
            ": its step size collapsed (a region where the energy is too steep to move in?)"
        } else {
            ""
        };
        format!("chain {} is stuck: {}{hint}", self.chain, why.join(", "))
    }
}

/// Kept draws, chain-major: value `(chain, draw, coord)` is at
/// `x[(chain * draws + draw) * dim + coord]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Draws {
    pub chains: usize,
    pub draws: usize,
    pub dim: usize,
    pub x: Vec<f64>,
    /// `chains × draws` sampler columns.
    pub energy: Vec<f64>,
    pub accept: Vec<f64>,
    pub divergent: Vec<bool>,
    /// `chains × draws` Hamiltonian sampler columns (HMC and NUTS; empty
    /// for the other samplers): the Hamiltonian E + K at the start of the
    /// transition that produced the draw, the number of leapfrog steps, and
    /// (NUTS) the tree depth.
    pub hamiltonian: Vec<f64>,
    pub n_leapfrog: Vec<u32>,
    pub tree_depth: Vec<u32>,
    pub image_shape: Option<Vec<usize>>,
    /// Configuration (`key = value`) written to the CSV header.
    pub header: Vec<(String, String)>,
    pub summary: Option<RunSummary>,
    /// A streamed run's full draws, on disk: then `x` and the sampler
    /// columns hold every [`stride`](Self::stride)-th kept draw only, and
    /// the writers of [`super::io`] read the spill.
    pub spill: Option<std::sync::Arc<Spill>>,
}

impl Draws {
    pub fn empty(chains: usize, draws: usize, dim: usize) -> Self {
        Draws {
            chains,
            draws,
            dim,
            x: vec![0.0; chains * draws * dim],
            energy: vec![0.0; chains * draws],
            accept: vec![0.0; chains * draws],
            divergent: vec![false; chains * draws],
            hamiltonian: Vec::new(),
            n_leapfrog: Vec::new(),
            tree_depth: Vec::new(),
            image_shape: None,
            header: Vec::new(),
            summary: None,
            spill: None,
        }
    }
    /// Kept draws per chain: [`draws`](Self::draws), or for a streamed run
    /// the spill's.
    pub fn stored_draws(&self) -> usize {
        self.spill.as_ref().map_or(self.draws, |s| s.kept())
    }
    /// Maps every draw back to the data's scale (a trained energy fitted to
    /// scaled data samples in the scaled space), the spilled draws too.
    pub fn invert_scale(&mut self, scale: &crate::data::Scaler) -> Result<(), String> {
        scale.invert(&mut self.x);
        match &self.spill {
            Some(s) => s.invert_scale(scale),
            None => Ok(()),
        }
    }
    /// Every how many stored draws `x` holds one (1 unless streamed).
    pub fn stride(&self) -> usize {
        self.spill.as_ref().map_or(1, |s| s.stride())
    }
    /// Draw `draw` of chain `chain`.
    pub fn point(&self, chain: usize, draw: usize) -> &[f64] {
        let o = (chain * self.draws + draw) * self.dim;
        &self.x[o..o + self.dim]
    }
    /// Coordinate `coord` of every draw, chain-major (`chains × draws`).
    pub fn coord(&self, coord: usize) -> Vec<f64> {
        self.x
            .iter()
            .skip(coord)
            .step_by(self.dim.max(1))
            .copied()
            .collect()
    }
    /// Column names of the coordinates: `x.0`, `x.1`, …
    pub fn coord_names(&self) -> Vec<String> {
        (0..self.dim).map(|i| format!("x.{i}")).collect()
    }
    pub fn divergence_count(&self) -> usize {
        self.divergent.iter().filter(|d| **d).count()
    }
    pub fn mean_accept(&self) -> f64 {
        if self.accept.is_empty() {
            return f64::NAN;
        }
        self.accept.iter().sum::<f64>() / self.accept.len() as f64
    }
}

/// Checks the settings of a run against an energy with `dim` coordinates.
/// The most memory the dense metrics of one run may take.
const MAX_DENSE_BYTES: f64 = 4.0 * (1u64 << 30) as f64;

fn validate(dim: usize, sampler: &SamplerConfig, run: &RunConfig) -> Result<(), RuntimeError> {
    let bad = |m: String| Err(RuntimeError::Config(m));
    if dim == 0 {
        return bad("the energy has no coordinates".into());
    }
    if run.chains == 0 {
        return bad("chains must be at least 1".into());
    }
    if run.thin == 0 {
        return bad("thin must be at least 1".into());
    }
    if !(sampler.step > 0.0 && sampler.step.is_finite()) {
        return bad(format!(
            "step must be a positive number, found {}",
            sampler.step
        ));
    }
    if let Init::Array { values, rows } = &run.init
        && (*rows == 0 || values.len() != rows * dim)
    {
        return bad(format!(
            "initial array holds {} values, expected rows × {dim} with rows ≥ 1",
            values.len()
        ));
    }
    if let Method::Ula(UlaOptions { noise: Some(s), .. }) = &sampler.method
        && !(*s >= 0.0 && s.is_finite())
    {
        return bad(format!("noise must be a non-negative number, found {s}"));
    }
    if let Method::Nuts { max_depth } = sampler.method
        && !(1..=super::config::MAX_TREE_DEPTH).contains(&max_depth)
    {
        return bad(format!(
            "max_depth must be between 1 and {}, found {max_depth}",
            super::config::MAX_TREE_DEPTH
        ));
    }
    if sampler.metric == super::MetricKind::Dense && sampler.method.is_mh() {
        if dim > super::config::MAX_DENSE_DIM {
            return bad(format!(
                "a dense metric is offered up to {} coordinates (it costs d² per chain and gradient); this energy has {dim}: use the diagonal metric",
                super::config::MAX_DENSE_DIM
            ));
        }
        // Each chain holds M⁻¹, its factor and a window covariance.
        let bytes = run.chains as f64 * (dim * dim) as f64 * 3.0 * 8.0;
        if bytes > MAX_DENSE_BYTES {
            return bad(format!(
                "dense metrics for {} chains of {dim} coordinates need {:.1} GiB; the limit is {:.0} GiB: use fewer chains or the diagonal metric",
                run.chains,
                bytes / (1u64 << 30) as f64,
                MAX_DENSE_BYTES / (1u64 << 30) as f64
            ));
        }
    }
    if let Method::Pt(o) = &sampler.method {
        if let Some(m) = o.check() {
            return bad(m);
        }
        if sampler.adapt_scope == AdaptScope::Shared {
            return bad("parallel tempering adapts each temperature's step size per chain: shared adaptation does not apply".into());
        }
    }
    if let Method::Uld(UldOptions { friction }) = &sampler.method
        && !(*friction > 0.0 && friction.is_finite())
    {
        return bad(format!(
            "friction must be a positive number, found {friction}"
        ));
    }
    if let Some(m) = too_long(sampler, run) {
        return bad(m);
    }
    let need = run_bytes(dim, sampler.method.replicas(), run);
    if need > crate::budget::max_memory() {
        return bad(format!(
            "this run needs about {} for chain state and draws ({} chains{} × {dim} coordinates, {} kept draws each); {}: use fewer chains, or thin more",
            crate::budget::bytes_text(need as f64),
            run.chains,
            replicas_text(sampler),
            run.kept(),
            crate::budget::limit_text()
        ));
    }
    Ok(())
}

/// The most worker threads one run spawns (a larger `threads` or
/// `EBM_THREADS` is capped, never an abort spawning them).
pub const MAX_THREADS: usize = 256;

/// The most gradient (or energy) evaluations one run may ask for: chains ×
/// (warm-up + steps) × evaluations per step. 10¹¹ is over half an hour at
/// the fastest rate measured here (about 5·10⁷ a second on a 2-D energy)
/// and days for a network, so anything beyond is a mistyped flag, refused
/// before the run starts rather than left to spin.
pub const MAX_EVALUATIONS: f64 = 1e11;

/// Why `run` is longer than any run should be (see [`MAX_EVALUATIONS`]).
pub fn too_long(sampler: &SamplerConfig, run: &RunConfig) -> Option<String> {
    let per_step = sampler.method.max_evals_per_step();
    let steps = run.warmup as f64 + run.steps as f64;
    let replicas = sampler.method.replicas() as f64;
    let work = run.chains as f64 * replicas * steps * per_step;
    (work > MAX_EVALUATIONS).then(|| {
        format!(
            "this run asks for about {work:.1e} evaluations ({} chains{} × {} warm-up and {} steps{}); the limit is {MAX_EVALUATIONS:.0e}: use fewer chains{} or steps",
            run.chains,
            replicas_text(sampler),
            run.warmup,
            run.steps,
            if per_step > 1.0 {
                format!(" × {per_step} leapfrog steps")
            } else {
                String::new()
            },
            if replicas > 1.0 { ", replicas" } else { "" }
        )
    })
}

/// " × K replicas" for PT, nothing otherwise.
fn replicas_text(sampler: &SamplerConfig) -> String {
    match sampler.method.replicas() {
        1 => String::new(),
        k => format!(" × {k} replicas"),
    }
}

/// An upper bound on the chain state and draws of a run (checked against
/// `budget::max_memory` by `validate`, and with each worker's kernel
/// scratch added by `Sampler::run`): the engine keeps about sixteen
/// chain-sized buffers (state, proposal, noise, masses, the HMC trajectory)
/// in at most f64, and the draws hold `dim + 3` f64 values per kept draw.
/// PT's state is per replica (`replicas` engine chains per user chain);
/// only the T = 1 replica's draws are kept.
fn run_bytes(dim: usize, replicas: usize, run: &RunConfig) -> u64 {
    let chains = run.chains as u64;
    let state = chains
        .saturating_mul(replicas as u64)
        .saturating_mul((dim as u64).saturating_add(1))
        .saturating_mul(16 * 8);
    state.saturating_add(draw_bytes(dim, run))
}

/// The memory a run's kept draws take: all of them, or for a streamed run
/// the in-memory subsample, a tile per block, each chain's last point (to
/// count distinct draws) and the writers' read buffer.
fn draw_bytes(dim: usize, run: &RunConfig) -> u64 {
    let (chains, kept) = (run.chains as u64, run.kept());
    let row = (dim as u64).saturating_add(3).saturating_mul(8);
    let Some(st) = &run.stream else {
        return chains.saturating_mul(kept as u64).saturating_mul(row);
    };
    let in_memory = kept.div_ceil(run.stride(dim)) as u64;
    let workers = run.threads.clamp(1, MAX_THREADS) as u64;
    let tiles = workers.saturating_mul(st.tile_bytes as u64);
    chains
        .saturating_mul(in_memory.saturating_add(1))
        .saturating_mul(row)
        .saturating_add(tiles)
        .saturating_add(2 * st.read_bytes as u64)
}

/// The blocks of chains, one per worker: contiguous, starting at even chain
/// indices (noise is drawn in pairs; PT's engine chains start at
/// chain × K, even too). Shared adaptation pools every chain,
/// so it runs as one block.
fn blocks(sampler: &SamplerConfig, run: &RunConfig) -> Vec<(usize, usize)> {
    let threads = if sampler.adapt_scope == AdaptScope::Shared && sampler.method.is_mh() {
        1
    } else {
        run.threads.clamp(1, run.chains.min(MAX_THREADS))
    };
    let per = run.chains.div_ceil(threads).next_multiple_of(2);
    (0..threads)
        .map(|t| (t * per, ((t + 1) * per).min(run.chains)))
        .filter(|(a, b)| b > a)
        .collect()
}

/// Runs `run.chains` chains of `sampler` on a closure energy (f64, the
/// engine's reference moves). Compiled energies go through [`run_compiled`].
pub fn run_chains<E: BatchEnergy + ?Sized>(
    energy: &E,
    sampler: &SamplerConfig,
    run: &RunConfig,
) -> Result<Draws, RuntimeError> {
    let dim = energy.dim();
    validate(dim, sampler, run)?;
    let target = HostTarget(energy);
    drive::<f64, _>(&target, sampler, run, energy.image_shape())
}

/// Runs `run.chains` chains of `sampler` on a compiled energy: fused step
/// kernels in the energy's dtype, chains resident per worker thread. This is
/// what `ebm sample`, `sample(...)`, the embedding API and `ebm bench` run.
pub fn run_compiled(
    energy: &CompiledEnergy,
    cond: Option<&[f64]>,
    sampler: &SamplerConfig,
    run: &RunConfig,
) -> Result<Draws, RuntimeError> {
    validate(energy.dim(), sampler, run)?;
    Sampler::new(energy, cond, sampler, run)?.run(run)
}

/// A compiled energy's sampler kept for repeated runs (training's negative
/// phase runs one per iteration): the step kernels are compiled once, and
/// `refresh` re-reads the parameters after an optimiser step.
pub struct Sampler {
    target: AnyTarget,
    sampler: SamplerConfig,
    image_shape: Option<Vec<usize>>,
    max_block: usize,
    /// The kernels run on a device, which takes every chain at once.
    device: bool,
}

/// `run` as one block of every chain when the kernels run on a device (a
/// GPU parallelises over the chains itself, and one block keeps one
/// resident state); unchanged on the host.
fn one_block_on_a_device(device: bool, run: &RunConfig) -> std::borrow::Cow<'_, RunConfig> {
    if device && run.threads != 1 {
        let mut one = run.clone();
        one.threads = 1;
        std::borrow::Cow::Owned(one)
    } else {
        std::borrow::Cow::Borrowed(run)
    }
}

enum AnyTarget {
    F32(CompiledTarget<f32>),
    F64(CompiledTarget<f64>),
}

impl Sampler {
    /// Kernels for runs shaped like `run` (its chain count and threads bound
    /// the block size; later runs may have fewer chains, not more per block).
    pub fn new(
        energy: &CompiledEnergy,
        cond: Option<&[f64]>,
        sampler: &SamplerConfig,
        run: &RunConfig,
    ) -> Result<Sampler, RuntimeError> {
        let device = energy.backend().device().is_some();
        let run = &*one_block_on_a_device(device, run);
        let ranges = blocks(sampler, run);
        let max_block = ranges.iter().map(|(a, b)| b - a).max().unwrap_or(1);
        let shape = energy.x_shape();
        // Kernels see engine chains: K replicas per user chain for PT.
        let engine_block = max_block * sampler.method.replicas();
        let target = match energy.dtype() {
            DType::F64 => AnyTarget::F64(CompiledTarget::new(energy, sampler, cond, engine_block)?),
            DType::F32 => AnyTarget::F32(CompiledTarget::new(energy, sampler, cond, engine_block)?),
        };
        // Workers and their kernels' arenas are set up here, not in the
        // first steps of a run: a short run would time a thread start and
        // page faults, and training's runs reuse them.
        let workers = ranges.len();
        pool::global()
            .reserve(workers)
            .map_err(RuntimeError::Internal)?;
        match &target {
            AnyTarget::F64(t) => t.prepare(workers),
            AnyTarget::F32(t) => t.prepare(workers),
        }
        Ok(Sampler {
            target,
            sampler: sampler.clone(),
            image_shape: (shape.len() >= 2).then_some(shape),
            max_block,
            device,
        })
    }

    /// Picks up parameter updates made since the kernels last read them.
    pub fn refresh(&mut self, energy: &CompiledEnergy) -> Result<(), RuntimeError> {
        match &mut self.target {
            AnyTarget::F32(t) => t.refresh(energy),
            AnyTarget::F64(t) => t.refresh(energy),
        }
    }

    /// Sets the conditioning vector of a conditional energy's chains for
    /// the next runs.
    pub fn set_cond(&mut self, cond: &[f64]) -> Result<(), RuntimeError> {
        match &mut self.target {
            AnyTarget::F32(t) => t.set_cond(cond),
            AnyTarget::F64(t) => t.set_cond(cond),
        }
    }

    /// `run`'s ULA moves of chains whose positions are the buffer `x`
    /// (`run.chains × dim` f32 values of `backend`, held where a device's
    /// kernels read them: training's negatives drawn from a replay buffer
    /// on the device), the final positions left in `x` and nothing read
    /// back but the freeze flags. The engine's windows, noise and freezing,
    /// so chains that start finite end where `run` takes them; the number
    /// of frozen chains. `None` for a sampler other than ULA, or f64.
    pub fn ula_in_place(
        &self,
        backend: &dyn Backend,
        x: &mut Buffer,
        run: &RunConfig,
    ) -> Result<Option<usize>, RuntimeError> {
        let (Method::Ula(_), AnyTarget::F32(t)) = (&self.sampler.method, &self.target) else {
            return Ok(None);
        };
        // `run.init` is unread: the chains start at `x`.
        let (n, d) = (run.chains, t.dim());
        if x.len() != n * d {
            return Err(RuntimeError::Internal(format!(
                "{} chain values for {n} chains of {d}",
                x.len()
            )));
        }
        let scratch = || backend.alloc(n * d, DType::F32);
        let mut state = [std::mem::take(x), scratch()?, scratch()?];
        let mut frozen = vec![None; n];
        let (mut it, total) = (0, run.warmup + run.steps);
        let mut result = Ok(());
        while it < total && result.is_ok() {
            if crate::interrupt::requested() {
                result = Err(RuntimeError::Interrupted);
                break;
            }
            let end = window_end(it, run);
            let w = Window {
                n,
                seed: run.seed,
                t0: it as u64,
                steps: (end - it) as u64,
                offset: 0,
            };
            result = t.ula_steps_on(w, &mut state, &mut frozen);
            it = end;
        }
        let [moved, _, _] = state;
        *x = moved;
        result.map(|()| Some(frozen.iter().filter(|f| f.is_some()).count()))
    }

    pub fn run(&self, run: &RunConfig) -> Result<Draws, RuntimeError> {
        let run = &*one_block_on_a_device(self.device, run);
        let (dim, scratch) = match &self.target {
            AnyTarget::F32(t) => (t.dim(), t.scratch_bytes()),
            AnyTarget::F64(t) => (t.dim(), t.scratch_bytes()),
        };
        validate(dim, &self.sampler, run)?;
        // Each worker keeps its own kernel arenas besides the chain state.
        let workers = blocks(&self.sampler, run).len() as u64;
        let need = run_bytes(dim, self.sampler.method.replicas(), run)
            .saturating_add(workers.saturating_mul(scratch));
        if need > crate::budget::max_memory() {
            return Err(RuntimeError::Config(format!(
                "this run needs about {} for chain state, draws and the kernels' scratch ({} of scratch per worker, {workers} worker{}); {}: use fewer threads (EBM_THREADS) or a smaller energy",
                crate::budget::bytes_text(need as f64),
                crate::budget::bytes_text(scratch as f64),
                if workers == 1 { "" } else { "s" },
                crate::budget::limit_text()
            )));
        }
        let widest = blocks(&self.sampler, run)
            .iter()
            .map(|(a, b)| b - a)
            .max()
            .unwrap_or(1);
        if widest > self.max_block {
            return Err(RuntimeError::Config(format!(
                "this sampler was built for blocks of at most {} chains, asked for {widest}",
                self.max_block
            )));
        }
        let image = self.image_shape.clone();
        match &self.target {
            AnyTarget::F64(t) => drive::<f64, _>(t, &self.sampler, run, image),
            AnyTarget::F32(t) => drive::<f32, _>(t, &self.sampler, run, image),
        }
    }
}

/// A closure energy as an engine target (f64).
struct HostTarget<'a, E: ?Sized>(&'a E);

impl<E: BatchEnergy + ?Sized> Target<f64> for HostTarget<'_, E> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn eval(
        &self,
        x: &[f64],
        n: usize,
        e: &mut [f64],
        g: Option<&mut [f64]>,
    ) -> Result<(), RuntimeError> {
        match g {
            Some(g) => self.0.energy_grad(x, n, e, g),
            None => self.0.energy(x, n, e),
        }
        Ok(())
    }
}

fn progress_bar(sampler: &SamplerConfig, run: &RunConfig) -> ProgressBar {
    let total = (run.chains * (run.warmup + run.steps)) as u64;
    if !(run.progress && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {percent:>3}% {human_pos}/{human_len} chain-steps, {per_sec}, eta {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(sampler.method.name().to_string());
    pb
}

/// Runs every block on its own thread and merges the results.
fn drive<T: Scalar, G: Target<T> + ?Sized>(
    target: &G,
    sampler: &SamplerConfig,
    run: &RunConfig,
    image_shape: Option<Vec<usize>>,
) -> Result<Draws, RuntimeError> {
    let dim = target.dim();
    let ranges = blocks(sampler, run);
    pool::global()
        .reserve(ranges.len())
        .map_err(RuntimeError::Internal)?;
    let start = Instant::now();
    let total = (run.chains * (run.warmup + run.steps)) as u64;
    let pb = progress_bar(sampler, run);
    // Blocks run as tasks of the shared worker pool (parked threads, not
    // spawned per run: training samples every iteration); each task sets
    // the floating-point mode for its dtype and restores it, so it is the
    // same whatever thread runs the block.
    let results = pool::global()
        .map(ranges.len(), |i| {
            let (a, b) = ranges[i];
            let _mode = SubnormalMode::for_dtype::<T>();
            run_block(target, sampler, run, a, b - a, &pb)
        })
        .map_err(RuntimeError::Internal)?;
    pb.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64();
    let blocks = results.into_iter().collect::<Result<Vec<Block>, _>>()?;

    // Merge blocks (chain-major, so blocks concatenate).
    let kept = run.kept();
    let stride = run.stride(dim);
    let mut out = Draws::empty(0, kept.div_ceil(stride), dim);
    out.chains = run.chains;
    let mut spills = Vec::new();
    let mut streamed_distinct = Vec::new();
    let mut steps = Vec::with_capacity(run.chains);
    let mut chain_acc = Vec::with_capacity(run.chains);
    let mut chain_frozen = Vec::with_capacity(run.chains);
    let (mut div, mut wdiv, mut frozen) = (0, 0, 0);
    let (mut leapfrogs, mut depth_hits, mut chain_metric) = (0u64, 0usize, Vec::new());
    let mut first_div = Vec::new();
    let mut escaped = Vec::new();
    let k = sampler.method.replicas();
    // Per-chain values in chain order, summed below in that order.
    let (mut t_acc_c, mut t_step_c, mut sw_acc_c) = (Vec::new(), Vec::new(), Vec::new());
    let mut sw_n = vec![0u64; k - 1];
    for b in blocks {
        if let Some((spill, distinct)) = b.spill {
            spills.push(spill);
            streamed_distinct.extend(distinct);
        }
        out.x.extend_from_slice(&b.draws.x);
        out.energy.extend_from_slice(&b.draws.energy);
        out.accept.extend_from_slice(&b.draws.accept);
        out.divergent.extend_from_slice(&b.draws.divergent);
        out.hamiltonian.extend_from_slice(&b.draws.hamiltonian);
        out.n_leapfrog.extend_from_slice(&b.draws.n_leapfrog);
        out.tree_depth.extend_from_slice(&b.draws.tree_depth);
        leapfrogs += b.leapfrogs;
        depth_hits += b.max_depth_hits;
        chain_metric.extend(b.metric);
        steps.extend_from_slice(&b.step);
        chain_acc.extend_from_slice(&b.chain_accept);
        chain_frozen.extend_from_slice(&b.chain_frozen);
        div += b.divergences;
        wdiv += b.warmup_divergences;
        frozen += b.frozen;
        first_div.extend(b.first_div);
        escaped.extend(b.escaped);
        t_acc_c.extend_from_slice(&b.temp_accept);
        t_step_c.extend_from_slice(&b.temp_step);
        sw_acc_c.extend_from_slice(&b.swap_accept);
        for (a, b) in sw_n.iter_mut().zip(&b.swap_tries) {
            *a += b;
        }
    }
    // Each block lists its chains' first divergences in iteration order;
    // merged, they are ordered the same way whatever the blocks were.
    first_div.sort_by_key(|d| (d.iteration, d.chain));
    // Sums over chains in chain order: the same bytes for any block layout
    // (per-block partial sums would round differently with the thread count).
    let acc: f64 = chain_acc.iter().sum();
    let by_slot = |v: &[f64], slots: usize| -> Vec<f64> {
        let mut out = vec![0.0; slots];
        for (i, x) in v.iter().enumerate() {
            if let Some(o) = out.get_mut(i % slots.max(1)) {
                *o += x;
            }
        }
        out
    };
    let t_acc = by_slot(&t_acc_c, k);
    let t_step = by_slot(&t_step_c, k);
    let sw_acc = by_slot(&sw_acc_c, k - 1);
    let pt = match &sampler.method {
        Method::Pt(o) => Some(o),
        _ => None,
    };
    let per_chain = |v: &[f64], n: f64| v.iter().map(|x| x / n).collect::<Vec<f64>>();
    let step_mean = steps.iter().sum::<f64>() / steps.len() as f64;
    let step_min = steps.iter().copied().fold(f64::INFINITY, f64::min);
    let step_max = steps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let step_median = median(&steps);
    let chain_accept: Vec<f64> = chain_acc
        .iter()
        .map(|a| {
            if run.steps > 0 {
                a / run.steps as f64
            } else {
                f64::NAN
            }
        })
        .collect();
    let chain_distinct = match run.stream {
        Some(_) => streamed_distinct,
        None => distinct_draws(&out),
    };
    let stuck_chains = Stuck::find(&steps, &chain_accept, &chain_distinct, &chain_frozen, kept);
    let evals_per_step = match sampler.method {
        Method::Hmc { leapfrog } => leapfrog as u64,
        _ => 1,
    } * k as u64;
    let evaluations = match sampler.method {
        Method::Nuts { .. } => leapfrogs,
        _ => total * evals_per_step,
    };
    let summary = RunSummary {
        sampler: sampler.method.name().to_string(),
        chains: run.chains,
        warmup: run.warmup,
        steps: run.steps,
        thin: run.thin,
        seed: run.seed,
        accept_rate: if run.steps > 0 {
            acc / (run.steps * run.chains) as f64
        } else {
            f64::NAN
        },
        divergences: div,
        warmup_divergences: wdiv,
        divergent_chains: first_div,
        escaped_chains: escaped,
        step_mean,
        step_min,
        step_median,
        step_max,
        chain_step: steps,
        chain_accept,
        chain_distinct,
        stuck_chains,
        effective_temperature: sampler.effective_temperature(),
        frozen_chains: frozen,
        elapsed_s: elapsed,
        chain_steps_per_s: total as f64 / elapsed.max(1e-12),
        evaluations,
        max_depth_hits: depth_hits,
        chain_inv_metric: chain_metric,
        ladder: pt.map(|o| o.ladder.clone()).unwrap_or_default(),
        swap_rates: match pt {
            Some(_) => sw_acc
                .iter()
                .zip(&sw_n)
                .map(|(a, &n)| if n > 0 { a / n as f64 } else { f64::NAN })
                .collect(),
            None => Vec::new(),
        },
        replica_accept: match pt {
            Some(_) if run.steps > 0 => per_chain(&t_acc, (run.steps * run.chains) as f64),
            Some(_) => vec![f64::NAN; k],
            None => Vec::new(),
        },
        replica_step: match pt {
            Some(_) => per_chain(&t_step, run.chains as f64),
            None => Vec::new(),
        },
    };
    let mut header = vec![(
        "ebm_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    header.extend(sampler.describe());
    header.extend([
        ("chains".to_string(), run.chains.to_string()),
        ("warmup".into(), run.warmup.to_string()),
        ("steps".into(), run.steps.to_string()),
        ("thin".into(), run.thin.to_string()),
        ("seed".into(), run.seed.to_string()),
        ("init".into(), run.init.describe()),
        ("dim".into(), dim.to_string()),
    ]);
    out.image_shape = image_shape;
    if let Some(s) = &out.image_shape {
        let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
        header.push(("image_shape".into(), dims.join("x")));
    }
    out.header = header;
    out.summary = Some(summary);
    if let Some(st) = &run.stream {
        let hamiltonian = sampler.method.is_hamiltonian();
        let spill = Spill::new(st, spills, kept, stride, dim, hamiltonian);
        out.spill = Some(std::sync::Arc::new(spill));
    }
    Ok(out)
}

/// Flush-to-zero and denormals-are-zero for f32 runs while alive, the
/// thread's previous mode restored on drop. Subnormal f32 values are below
/// 1.2e-38, far under the resolution of a chain coordinate, yet every x86
/// operation producing or reading one takes a microcode assist: mixture
/// weights e^(−90…−104) made the eight-Gaussian ULA ~30% slower. f64 runs
/// keep IEEE gradual underflow; `EBM_SUBNORMALS=1` keeps it for f32.
pub(crate) struct SubnormalMode {
    #[cfg(target_arch = "x86_64")]
    saved: Option<u32>,
}

impl SubnormalMode {
    pub(crate) fn for_dtype<T: Scalar>() -> SubnormalMode {
        #[cfg(target_arch = "x86_64")]
        {
            // Read once: every block of every training iteration asks.
            static KEEP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            let keep =
                *KEEP.get_or_init(|| std::env::var_os("EBM_SUBNORMALS").is_some_and(|v| v == "1"));
            let flush = T::DTYPE == DType::F32 && !keep;
            #[allow(deprecated)]
            // SAFETY: only MXCSR's FTZ (bit 15) and DAZ (bit 6) change; SSE2
            // is part of the x86_64 baseline.
            let saved = flush.then(|| unsafe {
                use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
                let old = _mm_getcsr();
                _mm_setcsr(old | 0x8040);
                old
            });
            SubnormalMode { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        SubnormalMode {}
    }
}

impl Drop for SubnormalMode {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(old) = self.saved {
            #[allow(deprecated)]
            // SAFETY: restores the mode read when this guard was made.
            unsafe {
                std::arch::x86_64::_mm_setcsr(old)
            };
        }
    }
}
