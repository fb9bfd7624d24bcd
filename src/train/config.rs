//! What a training run is asked to do and what it reports: the method,
//! the sampler of the negatives, the loss, the buffer, the optimiser and
//! the guard ([`TrainConfig`]); the data prepared for it ([`prepare`]);
//! the state between iterations ([`TrainState`]), one iteration's
//! measurements ([`IterRecord`]) and the errors ([`TrainError`]).

use super::buffer::{BufferConfig, ReplayBuffer};
use super::loss::LossKind;
use super::optim::{OptimConfig, OptimState};
use crate::runtime::RuntimeError;
use crate::sample::{Method as SamplerMethod, SamplerConfig};

/// Training rows ready for a run: the held-out rows split off, both scaled
/// by the scaling fitted on the training rows.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub train: crate::data::Dataset,
    pub heldout: Option<crate::data::Dataset>,
    /// x' = (x − shift)·mul, when the scaling is not the identity.
    pub scale: Option<crate::data::Scaler>,
}

/// Splits off a `heldout` fraction (seeded) and scales both parts.
pub fn prepare(
    data: crate::data::Dataset,
    heldout: f64,
    seed: u64,
    scale: crate::data::Scale,
) -> Prepared {
    let (mut train, mut held) = if heldout > 0.0 {
        let (a, b) = data.split(heldout, seed);
        (a, Some(b))
    } else {
        (data, None)
    };
    let scaler = train.fit_scale(scale);
    scaler.apply(&mut train.x);
    if let Some(h) = held.as_mut() {
        scaler.apply(&mut h.x);
    }
    let recorded = (!scaler.is_identity()).then_some(scaler);
    Prepared {
        train,
        heldout: held,
        scale: recorded,
    }
}

/// How an energy learns: from sampled negatives (the CD family), from its
/// score (score matching), or against a known noise density (NCE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// K sampler steps from fresh noise.
    Cd,
    /// K sampler steps from the replay buffer.
    Pcd,
    /// PCD plus the KL and entropy terms of improved CD.
    Icd,
    /// Exact score matching ([`super::score::exact_graph`]).
    Sm,
    /// Sliced score matching ([`super::score::sliced_graph`]).
    Ssm,
    /// Denoising score matching ([`super::score::denoising_graph`]).
    Dsm,
    /// Noise-contrastive estimation ([`super::nce`]).
    Nce,
}

impl Method {
    pub const NAMES: [&'static str; 7] = ["cd", "pcd", "icd", "sm", "ssm", "dsm", "nce"];

    pub fn name(self) -> &'static str {
        match self {
            Method::Cd => "cd",
            Method::Pcd => "pcd",
            Method::Icd => "icd",
            Method::Sm => "sm",
            Method::Ssm => "ssm",
            Method::Dsm => "dsm",
            Method::Nce => "nce",
        }
    }
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "cd" => Method::Cd,
            "pcd" => Method::Pcd,
            "icd" => Method::Icd,
            "sm" => Method::Sm,
            "ssm" => Method::Ssm,
            "dsm" => Method::Dsm,
            "nce" => Method::Nce,
            _ => return None,
        })
    }
    /// Whether negatives start from a replay buffer.
    pub fn persistent(self) -> bool {
        matches!(self, Method::Pcd | Method::Icd)
    }
    /// Whether iterations sample negatives (the CD family).
    pub fn samples_negatives(self) -> bool {
        matches!(self, Method::Cd | Method::Pcd | Method::Icd)
    }
    /// Whether the loss is a score-matching loss.
    pub fn is_score(self) -> bool {
        matches!(self, Method::Sm | Method::Ssm | Method::Dsm)
    }
}

/// The divergence guard's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guard {
    /// An energy of magnitude above this (on the batch) is a blow-up.
    pub max_energy: f64,
    /// The learning rate is multiplied by this after each rollback.
    pub lr_factor: f64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            max_energy: 1e4,
            lr_factor: 0.5,
        }
    }
}

/// What a run learns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Objective {
    /// An energy, by the contrastive loss of `loss` on the method's negatives.
    Contrastive,
    /// JEM: a classifier's cross-entropy plus
    /// `weight`·(mean E(x⁺) − mean E(x⁻)) with E(x) = −logsumexp f(x)
    /// ([`super::jem`]).
    Jem { weight: f64 },
    /// The same classifier by cross-entropy only (JEM's baseline): no
    /// negatives are drawn.
    Classifier,
}

impl Objective {
    pub fn name(self) -> &'static str {
        match self {
            Objective::Contrastive => "contrastive",
            Objective::Jem { .. } => "jem",
            Objective::Classifier => "classifier",
        }
    }
    /// Whether iterations draw negatives (with a method that samples them).
    pub fn has_negatives(self) -> bool {
        self != Objective::Classifier
    }
    /// Whether the run trains a classifier (labelled data, a model).
    pub fn is_classifier(self) -> bool {
        self != Objective::Contrastive
    }
    /// The weight of the p(x) term (0 for the baseline).
    pub fn px_weight(self) -> f64 {
        match self {
            Objective::Jem { weight } => weight,
            _ => 0.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub objective: Objective,
    pub method: Method,
    pub iters: usize,
    pub batch: usize,
    /// The negatives' sampler (its adaptation is turned off: the step is fixed).
    pub sampler: SamplerConfig,
    pub sampler_steps: usize,
    pub loss: LossKind,
    /// α of α·mean(E⁺² + E⁻²).
    pub l2: f64,
    /// Improved CD's KL and entropy weights.
    pub kl: f64,
    pub entropy: f64,
    /// Rows of the buffer the entropy term searches for nearest neighbours.
    pub entropy_reference: usize,
    pub buffer: BufferConfig,
    pub optim: OptimConfig,
    /// Project every rank-2 parameter to spectral norm ≤ this after each update.
    pub spectral_norm: Option<f64>,
    pub guard: Guard,
    /// Score matching's projections and noise levels.
    pub score: super::score::ScoreConfig,
    /// NCE's noise density and ratio.
    pub nce: super::nce::NceConfig,
    pub seed: u64,
    /// Shuffle the data every epoch (else batches take rows in order).
    pub shuffle: bool,
    pub threads: usize,
}

impl TrainConfig {
    /// Persistent CD with ULA negatives and Adam: the defaults chosen on the
    /// 2-D toy sets (docs/training.md): 5000 iterations, 20 ULA steps of
    /// 0.005, lr 0.003 with cosine decay, L2 0.05.
    pub fn new(method: Method) -> TrainConfig {
        TrainConfig {
            objective: Objective::Contrastive,
            method,
            iters: 5000,
            batch: 256,
            sampler: SamplerConfig::ula(0.005),
            sampler_steps: 20,
            loss: LossKind::Cd,
            l2: 0.05,
            kl: 1.0,
            entropy: 0.1,
            entropy_reference: 1000,
            buffer: BufferConfig::default(),
            optim: OptimConfig {
                lr: 3e-3,
                decay: super::optim::Decay::Cosine { floor: 0.0 },
                ..OptimConfig::default()
            },
            spectral_norm: None,
            guard: Guard::default(),
            score: Default::default(),
            nce: Default::default(),
            seed: 0,
            shuffle: true,
            threads: 1,
        }
    }

    /// JEM with the paper's settings (Grathwohl et al. 2020): persistent
    /// SGLD negatives x ← x − 1·∇ₓE(x) + 0.01ξ, 20 steps, from a 10000-row
    /// buffer re-initialised from U[−1, 1] with probability 0.05; Adam at
    /// lr 1e-4 without decay; batch 128; no energy penalty. The data should
    /// be scaled to [−1, 1] like the noise.
    pub fn jem(weight: f64) -> TrainConfig {
        let mut c = TrainConfig::new(Method::Pcd);
        c.objective = Objective::Jem { weight };
        c.iters = 2000;
        c.batch = 128;
        c.sampler = SamplerConfig::ula(1.0);
        c.sampler.method = SamplerMethod::Ula(crate::sample::UlaOptions {
            noise: Some(0.01),
            ..Default::default()
        });
        c.l2 = 0.0;
        c.buffer.fresh = super::buffer::Fresh::Uniform { lo: -1.0, hi: 1.0 };
        c.optim.lr = 1e-4;
        c.optim.decay = super::optim::Decay::Constant;
        c
    }

    /// `key = value` pairs for headers and checkpoints.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vec![
            ("objective".into(), self.objective.name().into()),
            ("method".into(), self.method.name().into()),
            ("iters".into(), self.iters.to_string()),
            ("batch".into(), self.batch.to_string()),
            ("sampler_steps".into(), self.sampler_steps.to_string()),
            ("loss".into(), self.loss.name().into()),
            ("l2".into(), self.l2.to_string()),
        ];
        if let Objective::Jem { weight } = self.objective {
            v.push(("px_weight".into(), weight.to_string()));
        }
        match self.method {
            Method::Ssm => {
                v.push(("projections".into(), self.score.projections.to_string()));
                v.push(("projection".into(), self.score.projection.name().into()));
            }
            Method::Dsm => {
                let s: Vec<String> = self.score.sigmas.iter().map(|s| s.to_string()).collect();
                v.push(("sigmas".into(), s.join(",")));
            }
            Method::Nce => {
                v.push(("nce_noise".into(), self.nce.noise.describe()));
                v.push(("nce_ratio".into(), self.nce.ratio.to_string()));
            }
            _ => {}
        }
        if self.method == Method::Icd {
            v.push(("kl".into(), self.kl.to_string()));
            v.push(("entropy".into(), self.entropy.to_string()));
        }
        if self.method.persistent() {
            v.push(("buffer".into(), self.buffer.size.to_string()));
            v.push(("reinit".into(), self.buffer.reinit.to_string()));
            v.push(("replace".into(), self.buffer.replace.name().into()));
        }
        if self.method.samples_negatives() {
            v.push(("fresh".into(), self.buffer.fresh.describe()));
        }
        v.push(("optimizer".into(), self.optim.rule.name().into()));
        if let Some(b) = self.spectral_norm {
            v.push(("spectral_norm".into(), b.to_string()));
        }
        v.push(("lr".into(), self.optim.lr.to_string()));
        v.push(("seed".into(), self.seed.to_string()));
        if self.method.samples_negatives() {
            v.extend(self.sampler.describe());
        }
        v
    }

    pub(crate) fn validate(&self, dim: usize, rows: usize) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if dim == 0 {
            return bad("the energy has no coordinates".into());
        }
        if rows == 0 {
            return bad("the data set is empty".into());
        }
        let negatives = self.objective.has_negatives() && self.method.samples_negatives();
        if self.batch == 0 || self.iters == 0 || (negatives && self.sampler_steps == 0) {
            return bad("iters, batch and sampler steps must each be at least 1".into());
        }
        self.validate_method(dim)?;
        if self.objective.is_classifier() {
            if self.method == Method::Icd || self.loss != LossKind::Cd || self.l2 != 0.0 {
                return bad("a classifier trains with JEM's loss: no icd terms, loss variants or energy penalty (l2 = 0)".into());
            }
            if !(self.objective.px_weight() >= 0.0 && self.objective.px_weight().is_finite()) {
                return bad(format!(
                    "the p(x) weight must be a number ≥ 0, found {}",
                    self.objective.px_weight()
                ));
            }
        }
        if !(self.sampler.step > 0.0 && self.sampler.step.is_finite()) {
            return bad(format!(
                "the sampler step must be a positive number, found {}",
                self.sampler.step
            ));
        }
        if !(self.optim.lr > 0.0 && self.optim.lr.is_finite()) {
            return bad(format!(
                "the learning rate must be a positive number, found {}",
                self.optim.lr
            ));
        }
        if !(0.0..=1.0).contains(&self.buffer.reinit) {
            return bad(format!(
                "the reinit fraction must be between 0 and 1, found {}",
                self.buffer.reinit
            ));
        }
        if self.method.persistent() && self.buffer.size == 0 {
            return bad("the replay buffer needs at least one row".into());
        }
        let need = self.state_bytes(dim);
        if need > crate::budget::max_memory() {
            return bad(format!(
                "this run needs about {} for its replay buffer and batch state ({} buffer rows and a batch of {} × {dim} values); {}: use a smaller --buffer or --batch",
                crate::budget::bytes_text(need as f64),
                self.buffer.size,
                self.batch,
                crate::budget::limit_text()
            ));
        }
        if self.method == Method::Icd
            && let SamplerMethod::Ula(o) = &self.sampler.method
            && (o.clip_grad.is_some() || o.clamp.is_some())
        {
            return bad("improved CD differentiates through the last Langevin step, which must be smooth: use a sampler without `clip` or `clamp`".into());
        }
        if matches!(
            self.sampler.method,
            SamplerMethod::Rwmh | SamplerMethod::Pt(_) | SamplerMethod::Uld(_)
        ) {
            return bad(format!(
                "{} is not a training sampler; train with ula, mala or hmc negatives",
                self.sampler.method.name()
            ));
        }
        Ok(())
    }
}

impl TrainConfig {
    /// The checks of the score-matching and NCE settings.
    fn validate_method(&self, dim: usize) -> Result<(), TrainError> {
        use super::score::{MAX_EXACT_DIM, MAX_PROJECTIONS};
        let bad = |m: String| Err(TrainError::Config(m));
        let m = self.method;
        if self.objective.is_classifier() && !m.samples_negatives() {
            return bad(format!(
                "a classifier trains with JEM's objective (cd, pcd or icd negatives), not `{}`",
                m.name()
            ));
        }
        if !m.samples_negatives() && (self.loss != LossKind::Cd || self.l2 != 0.0) {
            return bad(format!(
                "`{}` has its own loss: the contrastive loss variants and the energy penalty (l2) apply to cd, pcd and icd",
                m.name()
            ));
        }
        if m == Method::Sm && dim > MAX_EXACT_DIM {
            return bad(format!(
                "exact score matching takes {dim} Hessian-vector products per sample for this {dim}-d energy; it is limited to d ≤ {MAX_EXACT_DIM}: use ssm (sliced) or dsm (denoising)"
            ));
        }
        let p = self.score.projections;
        if m == Method::Ssm && !(1..=MAX_PROJECTIONS).contains(&p) {
            return bad(format!(
                "ssm takes 1 to {MAX_PROJECTIONS} projections per sample, found {p}"
            ));
        }
        if m == Method::Dsm {
            let s = &self.score.sigmas;
            if s.is_empty() || s.len() > 64 || !s.iter().all(|v| *v > 0.0 && v.is_finite()) {
                return bad(format!(
                    "dsm needs 1 to 64 noise levels, each a number > 0, found {s:?}"
                ));
            }
        }
        if m == Method::Nce && !(1..=64).contains(&self.nce.ratio) {
            return bad(format!(
                "the NCE noise ratio must be between 1 and 64, found {}",
                self.nce.ratio
            ));
        }
        Ok(())
    }
}

impl TrainConfig {
    /// An upper bound on the run's own memory, parameters aside: the buffer
    /// in f64 (and its f32 copy where a device holds it: 12 bytes a value),
    /// and about 24 batch-sized buffers (positives, negatives, the engine's
    /// chain state and scratch, the loss's inputs and outputs).
    pub fn state_bytes(&self, dim: usize) -> u64 {
        let dim = dim as u64;
        let buffer = if self.method.persistent() {
            (self.buffer.size as u64).saturating_mul(dim)
        } else {
            0
        };
        let buffer_bytes = buffer.saturating_mul(12);
        // SSM's projections and NCE's noise rows multiply the batch's rows.
        let widen = match self.method {
            Method::Ssm => self.score.projections as u64 + 1,
            Method::Nce => self.nce.ratio as u64 + 1,
            _ => 1,
        };
        let batch = (self.batch as u64)
            .saturating_mul(dim.saturating_add(1))
            .saturating_mul(widen)
            .saturating_mul(24);
        batch.saturating_mul(8).saturating_add(buffer_bytes)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A file could not be read or written (the message names it).
    #[error("{0}")]
    Io(String),
    /// The user interrupted the run (a checkpoint was written first).
    #[error("interrupted at iteration {0}")]
    Interrupted(usize),
}

/// Why an iteration was rolled back.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollback {
    pub iteration: usize,
    pub cause: String,
}

/// Everything that changes between iterations besides the parameters
/// (which live in the store).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Iterations done.
    pub it: usize,
    pub optim: OptimState,
    pub buffer: ReplayBuffer,
    /// The learning rate's factor after rollbacks.
    pub lr_scale: f64,
    pub rollbacks: u64,
}

/// One iteration's measurements (a row of `metrics.csv`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IterRecord {
    pub it: usize,
    pub loss: f64,
    pub e_pos: f64,
    pub e_neg: f64,
    pub l2: f64,
    pub kl: f64,
    pub entropy: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub accept: f64,
    /// Negatives whose chain diverged (frozen by the sampler).
    pub frozen: usize,
    /// Classifiers: the positives' cross-entropy and accuracy.
    pub ce: Option<f64>,
    pub acc: Option<f64>,
    pub seconds: f64,
    pub rollback: Option<String>,
}

impl IterRecord {
    pub const HEADER: &'static str =
        "iter,loss,e_pos,e_neg,l2,kl,entropy,grad_norm,lr,accept,frozen,ce,acc,seconds,rollback";
    pub fn csv_row(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6},{}",
            self.it,
            self.loss,
            self.e_pos,
            self.e_neg,
            self.l2,
            self.kl,
            self.entropy,
            self.grad_norm,
            self.lr,
            self.accept,
            self.frozen,
            opt(self.ce),
            opt(self.acc),
            self.seconds,
            self.rollback.as_deref().unwrap_or("")
        )
    }
}
