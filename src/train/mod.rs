//! Training energies from data: contrastive divergence (`cd`), persistent
//! CD with a replay buffer (`pcd`) and improved CD (`icd`: PCD plus the KL
//! and entropy terms through the last Langevin step); score matching
//! (`sm`, `ssm`, `dsm`: [`score`]) and noise-contrastive estimation
//! (`nce`: [`nce`]); with the optimisers of [`optim`] and a divergence
//! guard.
//!
//! Score matching and NCE skip steps 2–3 below: their loss kernel is a
//! score-matching graph of the positives (with keyed projections or
//! noise), or the (E, E²) kernel on the positives and keyed noise rows with
//! NCE's seeds; steps 4–5 are the same for every method.
//!
//! One iteration of the CD family:
//! 1. a batch of positives x⁺ from the data (shuffled per epoch, or in
//!    order);
//! 2. starting points for the negatives — fresh noise (`cd`) or the replay
//!    buffer ([`buffer`]);
//! 3. K sampler steps with the parameters frozen, through the same engine
//!    `ebm sample` runs ([`crate::sample::Sampler`], kernels compiled once
//!    and re-reading the parameter store after each update); for `icd` the
//!    last step is an unadjusted Langevin step taken here, so that it can be
//!    differentiated (after MALA or HMC negatives, it is one extra ULA step
//!    from their final state, with drift λ/2 and noise √λ of the sampler's
//!    step λ);
//! 4. the loss and its θ-gradient from one pullback of the loss kernel on
//!    concat(x⁺, x⁻) ([`loss`]), plus for `icd` one mixed product;
//! 5. the guard: a non-finite loss, gradient or parameter, or an energy
//!    beyond `max_energy`, rolls the parameters and optimiser state back to
//!    those before the iteration, multiplies the learning rate by
//!    `lr_factor`, and is reported; otherwise the optimiser updates the
//!    store in place and the negatives go back to the buffer.
//!
//! Every random choice is keyed by (seed, iteration) ([`keyed`]), and the
//! whole state between iterations is [`TrainState`] (parameters live in the
//! store), so a run resumed from a checkpoint is bit-identical to one that
//! never stopped.
//!
//! `EBM_TRAIN_TIMING=1` prints each iteration's negative-phase, loss and update
//! times on stderr (for profiling; it changes no result).

pub mod buffer;
pub mod checkpoint;
pub mod classify;
pub mod concepts;
pub mod config;
pub mod evaluate;
pub mod jem;
pub mod keyed;
pub mod loss;
pub mod nce;
pub mod optim;
pub mod plots;
pub mod replay;
pub mod resident;
pub mod score;
pub mod session;

use std::time::Instant;

use crate::backend::{Buffer, HostData, pool};
use crate::runtime::{CompiledEnergy, ParamId, Points, RuntimeError, Scalar};
use crate::sample::{Init, Method as SamplerMethod, RunConfig, Sampler, SamplerConfig, UlaOptions};

pub use config::{
    Guard, IterRecord, Method, Objective, Prepared, Rollback, TrainConfig, TrainError, TrainState,
    prepare,
};

use buffer::ReplayBuffer;
pub use concepts::Concepts;
use concepts::{concept_groups, with_codes};
use keyed::Keyed;
use optim::OptimState;
use replay::DeviceReplay;
use resident::{Grads, HeldGrads, Resident};

/// The loss kernel runs on this many parts of each batch on a CPU backend
/// (see `in_parts`).
const LOSS_PARTS: usize = 2;

/// Stream tags of a run's keyed generator.
const SAMPLE: u64 = 1;
const CD_FRESH: u64 = 2;
const LAST_NOISE: u64 = 3;
const SHUFFLE: u64 = 4;
const SCORE_NOISE: u64 = 5;
const NCE_NOISE: u64 = 6;
const HELDOUT: u64 = 7;
const CONCEPT_FILL: u64 = 8;

/// A training run over one energy and one data set.
pub struct Trainer<'a> {
    energy: &'a CompiledEnergy,
    loss: CompiledEnergy,
    /// The negatives' sampler (the CD family only: score matching and NCE
    /// compile none).
    sampler: Option<Sampler>,
    cfg: TrainConfig,
    data: &'a [f64],
    rows: usize,
    dim: usize,
    params: Vec<ParamId>,
    /// The current epoch's row order (shuffled runs).
    order: (usize, Vec<usize>),
    /// The last iteration's negatives (for snapshots), on the host or, when
    /// they stayed on the device, there.
    negatives: Vec<f64>,
    held_negatives: Option<Buffer>,
    /// The replay buffer's samples on the device ([`replay`]), uploaded at
    /// the first iteration that uses them; `EBM_DEVICE_REPLAY=0` keeps them
    /// and the negatives on the host (for comparisons).
    replay: Option<DeviceReplay>,
    negatives_on_host: bool,
    /// `EBM_TRAIN_TIMING` was set when the run started.
    timing: bool,
    /// Classifiers: the class of every data row, and the current batch's.
    labels: Option<Labels<'a>>,
    batch_labels: Vec<usize>,
    /// Conditional energies: every data row's concept code, and the codes
    /// of the current batch's rows, concat(c⁺, c⁻).
    concepts: Option<Concepts<'a>>,
    batch_cond: Vec<f64>,
    /// NCE: the noise density.
    noise: Option<nce::NoiseDensity>,
    /// Buffers reused by every iteration: the optimiser state before the
    /// update (for a rollback) and the parameter values.
    saved_optim: OptimState,
    values: Vec<Vec<f64>>,
    /// On a device that holds buffers (f32), the optimiser's state there,
    /// made at the first update and after a `with_state`.
    resident: Option<Resident>,
    /// The iterations' state. On a device-resident run the optimiser's
    /// moments here are brought up to date by `sync` (the checkpoint and
    /// final files call it), not after every iteration.
    pub state: TrainState,
}

/// The labels of a classifier's data rows (each below `classes`).
#[derive(Clone, Copy, Debug)]
pub struct Labels<'a> {
    pub of_row: &'a [usize],
    pub classes: usize,
}

/// The negatives' last step x_K = x_{K−1} − drift·∇ₓE(x_{K−1}) + σξ,
/// kept for improved CD's terms.
pub struct LastStep {
    /// x_{K−1}.
    pub prev: Vec<f64>,
    pub drift: f64,
}

/// Where improved CD's terms add their gradient: to host values, or as a
/// second term beside a gradient held on the device.
enum IcdGrads<'a> {
    Host(&'a mut Vec<Vec<f64>>),
    Held(&'a mut HeldGrads),
}

/// The loss of one batch, its θ-gradient and the energies.
struct Pass {
    value: loss::LossValue,
    /// Classifiers: JEM's terms.
    jem: Option<jem::JemValue>,
    grads: Vec<Vec<f64>>,
    /// The θ-gradient left on the device instead (`grads` is then empty).
    held_grads: Option<HeldGrads>,
    energies: Vec<f64>,
}

/// The loss of one batch and its θ-gradient (one vector per parameter of
/// the energy, in `param_ids` order).
pub struct BatchLoss {
    pub total: f64,
    pub value: loss::LossValue,
    pub kl: f64,
    pub entropy: f64,
    /// Classifiers: JEM's terms.
    pub jem: Option<jem::JemValue>,
    /// NCE: the fraction of data and noise rows told apart.
    pub accuracy: Option<f64>,
    pub grads: Vec<Vec<f64>>,
    /// A device-resident run's θ-gradient, left on the device (`grads` is
    /// then empty).
    held_grads: Option<HeldGrads>,
    /// E at concat(x⁺, x⁻) (score matching: at the loss's points).
    pub energies: Vec<f64>,
}

/// A pullback's values and θ-gradient: on the host, or left on the device
/// (the host gradient is then empty).
type Pulled = (Vec<f64>, Vec<Vec<f64>>, Option<HeldGrads>);

/// A method's loss value, θ-gradient (on the host, or left on the
/// device), energies and NCE's accuracy.
type MethodPass = (
    loss::LossValue,
    Vec<Vec<f64>>,
    Option<HeldGrads>,
    Vec<f64>,
    Option<f64>,
);

impl<'a> Trainer<'a> {
    /// A run on `data` (`rows × dim`, already scaled); `energy` must be an
    /// unconditional energy whose parameters are in its store.
    pub fn new(
        energy: &'a CompiledEnergy,
        data: &'a [f64],
        cfg: TrainConfig,
    ) -> Result<Trainer<'a>, TrainError> {
        if cfg.objective.is_classifier() {
            return Err(TrainError::Config(
                "a classifier objective needs labels: use Trainer::classifier".into(),
            ));
        }
        let graph = method_graph(energy.energy_graph(), &cfg).map_err(TrainError::Config)?;
        Trainer::build(energy, graph, data, None, None, cfg)
    }

    /// A run of a conditional energy E(x | c) on `data` whose rows have the
    /// conditioning vectors `concepts` (the CD family: `cd`, `pcd`, `icd`).
    pub fn conditional(
        energy: &'a CompiledEnergy,
        data: &'a [f64],
        concepts: Concepts<'a>,
        cfg: TrainConfig,
    ) -> Result<Trainer<'a>, TrainError> {
        if cfg.objective.is_classifier() || !cfg.method.samples_negatives() {
            return Err(TrainError::Config(format!(
                "conditional energies train with cd, pcd or icd, not {}",
                cfg.method.name()
            )));
        }
        let rows = data.len() / energy.dim().max(1);
        if concepts.width != energy.cond_dim() || concepts.of_row.len() != rows * concepts.width {
            return Err(TrainError::Config(format!(
                "{} conditioning values for {rows} rows of a conditional energy whose `c` has {} values",
                concepts.of_row.len(),
                energy.cond_dim()
            )));
        }
        if let Some(bad) = concepts.of_row.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::Config(format!(
                "the conditioning vector of row {} is not finite",
                bad / concepts.width
            )));
        }
        let graph = method_graph(energy.energy_graph(), &cfg).map_err(TrainError::Config)?;
        Trainer::build(energy, graph, data, None, Some(concepts), cfg)
    }

    /// A JEM (or plain-classifier) run: `model` returns the logits, `energy`
    /// is its [`jem::energy_graph`] compiled in the same store, and `labels`
    /// gives every data row's class.
    pub fn classifier(
        energy: &'a CompiledEnergy,
        model: &CompiledEnergy,
        data: &'a [f64],
        labels: Labels<'a>,
        cfg: TrainConfig,
    ) -> Result<Trainer<'a>, TrainError> {
        if !cfg.objective.is_classifier() {
            return Err(TrainError::Config(
                "Trainer::classifier needs the jem or classifier objective".into(),
            ));
        }
        if !std::sync::Arc::ptr_eq(energy.store(), model.store()) {
            return Err(TrainError::Config(
                "the classifier's energy and model must share one parameter store".into(),
            ));
        }
        let graph = jem::loss_graph(model.energy_graph()).map_err(TrainError::Config)?;
        let rows = data.len() / energy.dim().max(1);
        if labels.of_row.len() != rows {
            return Err(TrainError::Config(format!(
                "{} labels for {rows} data rows",
                labels.of_row.len()
            )));
        }
        if let Some(bad) = labels.of_row.iter().find(|&&y| y >= labels.classes) {
            return Err(TrainError::Config(format!(
                "label {bad} is out of range: the model has {} classes (labels 0..{})",
                labels.classes,
                labels.classes - 1
            )));
        }
        Trainer::build(energy, graph, data, Some(labels), None, cfg)
    }

    fn build(
        energy: &'a CompiledEnergy,
        graph: crate::ir::Graph,
        data: &'a [f64],
        labels: Option<Labels<'a>>,
        concepts: Option<Concepts<'a>>,
        cfg: TrainConfig,
    ) -> Result<Trainer<'a>, TrainError> {
        let dim = energy.dim();
        let rows = data.len() / dim.max(1);
        cfg.validate(dim, rows)?;
        if data.len() != rows * dim {
            return Err(TrainError::Config(format!(
                "the data holds {} values, not a multiple of the energy's {dim} coordinates",
                data.len()
            )));
        }
        if energy.cond_dim() > 0 && concepts.is_none() {
            return Err(TrainError::Config(format!(
                "the energy is conditional (its `c` has {} values): train it on labelled data, each row's label giving its concept code",
                energy.cond_dim()
            )));
        }
        // The loss runs as LOSS_PARTS single-threaded calls on parts of the
        // batch (the parameter pullback's batch sum barely gains from the
        // backend's own threads).
        let backend = energy
            .backend()
            .worker()
            .unwrap_or_else(|| energy.backend().clone());
        let loss =
            CompiledEnergy::in_store(graph, energy.store().clone(), backend, energy.dtype())?;
        let mut sampler_cfg = cfg.sampler.clone();
        sampler_cfg.adapt_step = false;
        sampler_cfg.metric = crate::sample::MetricKind::Unit;
        let run = negatives_run(&cfg, Vec::new(), cfg.batch, 1, 0);
        let cond = concepts.map(|c| vec![0.0; c.width]);
        let sampler = if cfg.method.samples_negatives() && cfg.objective.has_negatives() {
            Some(Sampler::new(energy, cond.as_deref(), &sampler_cfg, &run)?)
        } else {
            None
        };
        let mut params = energy.param_ids().to_vec();
        let noise = if cfg.method == Method::Nce {
            params.push(energy.store().insert(nce::LOG_Z, &[], vec![0.0])?);
            Some(nce::NoiseDensity::new(cfg.nce.noise, data, dim).map_err(TrainError::Config)?)
        } else {
            None
        };
        let values = param_values(energy, &params);
        check_state_size(&cfg, &values, resident_backend(energy, &cfg))?;
        let state = TrainState {
            it: 0,
            optim: OptimState::new(&cfg.optim, &values),
            buffer: new_buffer(&cfg, dim, concepts),
            lr_scale: 1.0,
            rollbacks: 0,
        };
        Ok(Trainer {
            energy,
            loss,
            sampler,
            cfg: TrainConfig {
                sampler: sampler_cfg,
                ..cfg
            },
            data,
            rows,
            dim,
            params,
            order: (usize::MAX, Vec::new()),
            negatives: Vec::new(),
            held_negatives: None,
            replay: None,
            negatives_on_host: std::env::var("EBM_DEVICE_REPLAY").is_ok_and(|v| v == "0"),
            timing: std::env::var_os("EBM_TRAIN_TIMING").is_some(),
            labels,
            batch_labels: Vec::new(),
            concepts,
            batch_cond: Vec::new(),
            noise,
            saved_optim: state.optim.clone(),
            values,
            resident: None,
            state,
        })
    }

    /// Continues from a saved state (the store must hold the parameters
    /// saved with it).
    pub fn with_state(mut self, state: TrainState) -> Result<Trainer<'a>, TrainError> {
        let shapes = |v: &[Vec<f64>]| v.iter().map(|p| p.len()).collect::<Vec<_>>();
        if shapes(&state.optim.m) != shapes(&self.state.optim.m)
            || state.optim.v.len() != self.state.optim.v.len()
            || state.buffer.dim != self.state.buffer.dim
        {
            return Err(TrainError::Config(
                "the saved training state does not fit this energy and configuration".into(),
            ));
        }
        self.state = state;
        // The device's moments and samples were those of the replaced state.
        self.resident = None;
        self.replay = None;
        Ok(self)
    }

    /// Whether the optimiser runs on the device, its state held there
    /// ([`resident`]): a backend that holds buffers, in f32.
    /// Spectral normalisation's power iterations run on the host, so a run
    /// that asks for it keeps the host optimiser.
    pub fn on_device(&self) -> bool {
        resident_backend(self.energy, &self.cfg)
    }

    /// Brings the state held on the device home: the parameters into the
    /// store's host copy and the optimiser's moments into `state` (a no-op
    /// on the host). Anything that writes them out calls it first.
    pub fn sync(&mut self) -> Result<(), TrainError> {
        if let Some(r) = &mut self.resident {
            r.pull(&mut self.state.optim)?;
        }
        if let Some(r) = &mut self.replay {
            r.pull(&mut self.state.buffer)?;
        }
        self.energy.store().pull()?;
        Ok(())
    }

    /// The width of each row's conditioning vector (0: unconditional).
    pub fn cond_width(&self) -> usize {
        self.concepts.map_or(0, |c| c.width)
    }

    /// Up to `n` persistent samples (points only, without the concept codes
    /// a conditional run's buffer keeps beside them) chosen for iteration
    /// `it`.
    pub fn persistent_samples(&self, n: usize, it: u64) -> Result<Vec<f64>, TrainError> {
        let buffer = &self.state.buffer;
        let rows = match self.replay.as_ref().filter(|r| !r.is_home()) {
            Some(r) => {
                let rows = (buffer.reference_rows(self.cfg.seed, it, n))
                    .unwrap_or_else(|| (0..buffer.rows()).collect());
                r.rows(&rows)?
            }
            None => buffer.reference(self.cfg.seed, it, n),
        };
        let w = buffer.dim.max(1);
        Ok(rows
            .chunks_exact(w)
            .flat_map(|r| r[..self.dim].iter().copied())
            .collect())
    }

    /// The last iteration's negatives (`batch × dim`), read back when they
    /// stayed on the device.
    pub fn negatives(&self) -> Result<Vec<f64>, TrainError> {
        match &self.held_negatives {
            Some(b) => Ok(self
                .energy
                .backend()
                .download(b)
                .map_err(RuntimeError::Backend)?),
            None => Ok(self.negatives.clone()),
        }
    }

    /// Whether this run's negatives stay on the device ([`replay`]): CD
    /// or PCD (JEM's too) with ULA negatives on a resident run, without
    /// concept codes; for PCD the replay buffer lives there too, when one
    /// device buffer holds it.
    fn negatives_on_device(&self) -> bool {
        let cfg = &self.cfg;
        // The loss's batch concat(x⁺, x⁻), and PCD's buffer.
        let mut rows = cfg.batch.saturating_mul(2);
        if cfg.method == Method::Pcd {
            rows = rows.max(cfg.buffer.size).max(self.state.buffer.rows());
        }
        let fits = (rows.checked_mul(self.dim.max(1)))
            .is_some_and(|v| v <= self.energy.backend().max_buffer_values());
        fits && self.on_device()
            && !self.negatives_on_host
            && matches!(cfg.method, Method::Cd | Method::Pcd)
            && cfg.objective.has_negatives()
            && matches!(cfg.sampler.method, SamplerMethod::Ula(_))
            && self.cond_width() == 0
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }
    pub fn energy(&self) -> &CompiledEnergy {
        self.energy
    }
    pub fn done(&self) -> bool {
        self.state.it >= self.cfg.iters
    }
    /// The parameter ids the optimiser updates (the energy's parameters,
    /// and NCE's log Z).
    pub fn param_ids(&self) -> &[ParamId] {
        &self.params
    }
    /// Classifiers: the cross-entropy and accuracy on labelled rows `x`
    /// (f64 kernels' precision aside, what the loss computes for positives).
    pub fn classifier_scores(&self, x: &[f64], labels: &[usize]) -> Result<(f64, f64), TrainError> {
        let Some(l) = self.labels else {
            return Err(TrainError::Config("not a classifier run".into()));
        };
        let n = labels.len();
        let cond = jem::one_hot(labels, l.classes, 0);
        let triples = match self.energy.dtype() {
            crate::backend::DType::F32 => {
                let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
                let t = self.loss.energy(&f(x), Some(&f(&cond)), n)?;
                t.iter().map(|&v| v as f64).collect::<Vec<f64>>()
            }
            crate::backend::DType::F64 => self.loss.energy(x, Some(&cond), n)?,
        };
        let v = jem::value(&triples, n, 0.0);
        Ok((v.ce, v.acc))
    }
    /// Classifiers: the data rows' labels.
    pub fn labels(&self) -> Option<Labels<'a>> {
        self.labels
    }

    /// Runs one iteration.
    pub fn step(&mut self) -> Result<IterRecord, TrainError> {
        let start = Instant::now();
        let mut rec = match self.energy.dtype() {
            crate::backend::DType::F32 => self.iterate::<f32>()?,
            crate::backend::DType::F64 => self.iterate::<f64>()?,
        };
        rec.seconds = start.elapsed().as_secs_f64();
        self.state.it += 1;
        Ok(rec)
    }

    /// Row indices of iteration `it`'s positives.
    fn positive_rows(&mut self, it: usize) -> Vec<usize> {
        let b = self.cfg.batch;
        (0..b)
            .map(|i| {
                let pos = it * b + i;
                let (epoch, at) = (pos / self.rows, pos % self.rows);
                if !self.cfg.shuffle {
                    return at;
                }
                if self.order.0 != epoch {
                    self.order = (epoch, permutation(self.rows, self.cfg.seed, epoch as u64));
                }
                self.order.1[at]
            })
            .collect()
    }

    fn iterate<T: Scalar>(&mut self) -> Result<IterRecord, TrainError> {
        let (it, b, d) = (self.state.it, self.cfg.batch, self.dim);
        let seed = self.cfg.seed;
        let mut x = Vec::with_capacity(2 * b * d);
        let rows = self.positive_rows(it);
        for &r in &rows {
            x.extend_from_slice(&self.data[r * d..(r + 1) * d]);
        }
        if let Some(l) = self.labels {
            self.batch_labels = rows.iter().map(|&r| l.of_row[r]).collect();
        }
        let mut cond = Vec::new();
        if let Some(c) = self.concepts {
            rows.iter().for_each(|&r| cond.extend_from_slice(c.row(r)));
        }
        let negatives = self.cfg.objective.has_negatives() && self.cfg.method.samples_negatives();
        let device = negatives && self.negatives_on_device();
        let drawn = if device && self.cfg.method.persistent() {
            self.state
                .buffer
                .choose(&self.cfg.buffer, seed, it as u64, b)
        } else if !negatives {
            buffer::Drawn {
                x: Vec::new(),
                rows: Vec::new(),
                fresh: Vec::new(),
            }
        } else if self.cfg.method.persistent() {
            self.state.buffer.draw(&self.cfg.buffer, seed, it as u64, b)
        } else {
            let mut fresh = vec![0.0; b * d];
            let k = Keyed::new(seed, CD_FRESH, it as u64);
            self.cfg.buffer.fresh.fill(&k, 0, &mut fresh);
            buffer::Drawn {
                x: fresh,
                rows: vec![None; b],
                fresh: vec![true; b],
            }
        };
        // The device path gathers its starts where the buffer is.
        let (start, neg_cond) = match device {
            true => (Vec::new(), Vec::new()),
            false => self.split_drawn(&drawn, &cond),
        };
        let t0 = Instant::now();
        let mut held_neg = None;
        let (neg, last, accept, frozen) = if device {
            let (moved, accept, frozen) = self.sample_on_device(&drawn, it)?;
            held_neg = Some(moved);
            (Vec::new(), None, accept, frozen)
        } else if negatives {
            self.sample_negatives::<T>(&start, &neg_cond, it)?
        } else {
            (Vec::new(), None, f64::NAN, 0)
        };
        let t_neg = t0.elapsed().as_secs_f64();
        self.negatives.clone_from(&neg);
        let batch = match &held_neg {
            Some(n) => Some(replay::batch_with(
                self.energy.backend().as_ref(),
                &x,
                n,
                d,
            )?),
            None => None,
        };
        self.held_negatives = held_neg;
        x.extend_from_slice(&neg);
        cond.extend_from_slice(&neg_cond);
        self.batch_cond = cond;
        let mut rec = IterRecord {
            it,
            accept,
            frozen,
            ..IterRecord::default()
        };
        let lr = self.cfg.optim.lr_at(it, self.cfg.iters) * self.state.lr_scale;
        rec.lr = lr;
        let reference = match &last {
            Some(_) => self.persistent_samples(self.cfg.entropy_reference, it as u64)?,
            None => Vec::new(),
        };
        let t1 = Instant::now();
        let obj = if self.cfg.method.samples_negatives() {
            let held = self.on_device();
            let at = batch.as_ref();
            self.objective_with::<T>(&x, b, last.as_ref(), &reference, held, at)?
        } else {
            let held = self.on_device();
            self.method_loss::<T>(&x, it as u64, self.cfg.seed, held)?
        };
        let t_loss = t1.elapsed().as_secs_f64();
        let energies = obj.energies;
        rec.loss = obj.total;
        rec.e_pos = obj.value.e_pos;
        rec.e_neg = obj.value.e_neg;
        rec.l2 = obj.value.l2;
        rec.kl = obj.kl;
        rec.entropy = obj.entropy;
        if let Some(j) = obj.jem {
            rec.ce = Some(j.ce);
            rec.acc = Some(j.acc);
        }
        rec.acc = rec.acc.or(obj.accuracy);
        let t2 = Instant::now();
        let rejected = match self.on_device() {
            true => {
                let grads = match &obj.held_grads {
                    Some(h) => Grads::Held(h),
                    None => Grads::Host(&obj.grads),
                };
                self.update_on_device(&mut rec, grads, &energies, lr)?
            }
            false => self.update_on_host(&mut rec, obj.grads, &energies, lr)?,
        };
        if self.timing {
            let t_update = t2.elapsed().as_secs_f64();
            eprintln!("timing it={it} negatives={t_neg:.6} loss={t_loss:.6} update={t_update:.6}");
        }
        if let Some(cause) = rejected {
            return Ok(self.roll_back(rec, cause));
        }
        if let (Some(r), Some(n)) = (&mut self.replay, &self.held_negatives) {
            let buffer = (&mut self.state.buffer, &self.cfg.buffer);
            r.scatter(n, &drawn, buffer, (seed, it as u64))?;
        } else if negatives && self.cfg.method.persistent() {
            let stored = with_codes(&neg, &neg_cond, d, self.cond_width());
            self.state
                .buffer
                .write_back(&self.cfg.buffer, seed, it as u64, &drawn, &stored);
        }
        Ok(rec)
    }

    /// The optimiser's step on the host (f64 masters); the guard's cause
    /// when the update is rejected.
    fn update_on_host(
        &mut self,
        rec: &mut IterRecord,
        mut grads: Vec<Vec<f64>>,
        energies: &[f64],
        lr: f64,
    ) -> Result<Option<String>, TrainError> {
        rec.grad_norm = optim::global_norm(&grads);
        let finite = grads.iter().flatten().all(|g| g.is_finite());
        if let Some(cause) = self.check(rec, finite, energies) {
            return Ok(Some(cause));
        }
        self.saved_optim.copy_from(&self.state.optim);
        let mut values = std::mem::take(&mut self.values);
        self.energy.store().read_into(&self.params, &mut values);
        let opt = &self.cfg.optim;
        optim::descend_step(opt, &mut self.state.optim, &mut values, &mut grads, lr);
        if let Some(bound) = self.cfg.spectral_norm {
            self.project_spectral(&mut values, bound);
        }
        optim::update_ema(opt, &mut self.state.optim, &values);
        let finite = values.iter().flatten().all(|v| v.is_finite());
        if finite {
            self.write_params(&values)?;
        }
        self.values = values;
        if !finite {
            std::mem::swap(&mut self.state.optim, &mut self.saved_optim);
            return Ok(Some("non-finite parameters after the update".into()));
        }
        Ok(None)
    }

    /// Scales every rank-2 parameter whose largest singular value exceeds
    /// `bound` back to it (`spectral_norm`).
    fn project_spectral(&self, values: &mut [Vec<f64>], bound: f64) {
        let store = self.energy.store();
        for (id, v) in self.params.iter().zip(values) {
            if let Some([rows, cols]) = store.shape_of(*id).as_deref() {
                optim::spectral_project(v, *rows, *cols, bound);
            }
        }
    }

    /// The optimiser's step where the parameters live (f32 on the device,
    /// [`resident`]): only the gradient's norm and the `bad` flag come
    /// back; a rejected update's buffers are dropped.
    fn update_on_device(
        &mut self,
        rec: &mut IterRecord,
        grads: Grads<'_>,
        energies: &[f64],
        lr: f64,
    ) -> Result<Option<String>, TrainError> {
        let store = self.energy.store();
        let backend = self.energy.backend();
        let mut r = match self.resident.take() {
            Some(r) => r,
            None => Resident::new(
                backend,
                &self.cfg.optim,
                store,
                &self.params,
                &self.state.optim,
            )?,
        };
        let view = store.held_view(backend.as_ref())?;
        let params = (self.params.iter())
            .map(|id| view.buffers.get(id.0 as usize))
            .collect::<Option<Vec<&Buffer>>>()
            .ok_or_else(|| TrainError::Config("a trained parameter left the store".into()))?;
        let t = self.state.optim.t + 1;
        let outcome = r.update(&self.cfg.optim, t, lr, &params, grads);
        let verdict = outcome.and_then(|up| {
            rec.grad_norm = up.norm;
            if let Some(cause) = self.check(rec, up.norm.is_finite(), energies) {
                return Ok(Some(cause));
            }
            if !up.bad.is_finite() {
                return Ok(Some("non-finite parameters after the update".into()));
            }
            r.adopt(up, store, &self.params)?;
            Ok(None)
        });
        self.resident = Some(r);
        if matches!(verdict, Ok(None)) {
            self.state.optim.t = t;
        }
        verdict
    }

    /// The first failed check of the guard, if any.
    fn check(&self, rec: &IterRecord, grads_finite: bool, e: &[f64]) -> Option<String> {
        if !rec.loss.is_finite() {
            return Some(format!("non-finite loss ({})", rec.loss));
        }
        if !grads_finite {
            return Some("non-finite gradient".into());
        }
        let top = e.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if top > self.cfg.guard.max_energy {
            return Some(format!(
                "energy magnitude {top:.3e} above the bound {:.3e}",
                self.cfg.guard.max_energy
            ));
        }
        None
    }

    /// Skips the update (the parameters and optimiser state stay those
    /// before the iteration) and lowers the learning rate.
    fn roll_back(&mut self, mut rec: IterRecord, cause: String) -> IterRecord {
        self.state.lr_scale *= self.cfg.guard.lr_factor;
        self.state.rollbacks += 1;
        rec.rollback = Some(cause);
        rec
    }

    fn write_params(&self, values: &[Vec<f64>]) -> Result<(), TrainError> {
        let ids = &self.params;
        self.energy.store().update(|entries| {
            for (id, v) in ids.iter().zip(values) {
                entries[id.0 as usize].value.copy_from_slice(v);
            }
            Ok(())
        })?;
        Ok(())
    }

    /// The negatives of a run that keeps them on the device: the starts
    /// `drawn` chose (gathered from the replay buffer there, or fresh ones
    /// uploaded), moved in place by K ULA steps (the engine's windows and
    /// noise, as `run_sampler` would move them); with the acceptance rate
    /// and the number of frozen chains.
    fn sample_on_device(
        &mut self,
        drawn: &buffer::Drawn,
        it: usize,
    ) -> Result<(Buffer, f64, usize), TrainError> {
        let persistent = self.cfg.method.persistent();
        if persistent && self.replay.is_none() {
            let (buffer, capacity) = (&self.state.buffer, self.cfg.buffer.size);
            let r = DeviceReplay::upload(self.energy.backend(), buffer, capacity)?;
            self.replay = Some(r);
        }
        let mut x = match &self.replay {
            Some(replay) if persistent => replay.gather(drawn)?,
            _ => replay::fresh(self.energy.backend().as_ref(), &drawn.x)?,
        };
        let chains = drawn.fresh.len();
        let steps = self.cfg.sampler_steps;
        if steps == 0 {
            return Ok((x, 1.0, 0));
        }
        let Some(sampler) = self.sampler.as_mut() else {
            return Err(TrainError::Config("this method draws no negatives".into()));
        };
        sampler.refresh(self.energy)?;
        // The first (only) concept group's seed, as `run_sampler` keys it.
        let seed = Keyed::new(self.cfg.seed, SAMPLE, it as u64).key();
        let run = negatives_run(&self.cfg, Vec::new(), chains, steps, seed);
        let backend = self.energy.backend().as_ref();
        let Some(frozen) = sampler.ula_in_place(backend, &mut x, &run)? else {
            return Err(TrainError::Config(
                "the negatives' sampler cannot run on the device's buffers".into(),
            ));
        };
        let accept = (chains - frozen) as f64 / chains.max(1) as f64;
        Ok((x, accept, frozen))
    }

    /// The negatives after K steps from `start`; for improved CD also the
    /// state before the last (differentiable) step.
    fn sample_negatives<T: Scalar>(
        &mut self,
        start: &[f64],
        cond: &[f64],
        it: usize,
    ) -> Result<(Vec<f64>, Option<LastStep>, f64, usize), TrainError> {
        let k = self.cfg.sampler_steps;
        let icd = self.cfg.method == Method::Icd;
        let ula = matches!(self.cfg.sampler.method, SamplerMethod::Ula(_));
        let engine_steps = if icd && ula { k - 1 } else { k };
        let seed = Keyed::new(self.cfg.seed, SAMPLE, it as u64).key();
        let (mut x, mut accept, mut frozen) = (start.to_vec(), 1.0, 0);
        if engine_steps > 0 {
            (x, accept, frozen) = self.run_sampler(start, cond, engine_steps, seed)?;
        }
        if !icd {
            return Ok((x, None, accept, frozen));
        }
        let (drift, noise) = ula_coefficients(&self.cfg.sampler);
        let b = x.len() / self.dim;
        let xs: Vec<T> = x.iter().map(|&v| T::from_f64(v)).collect();
        let cs = self.concepts.map(|_| to_scalars::<T>(cond));
        let g = self.energy.grad_x(&xs, cs.as_deref(), b)?;
        let key = Keyed::new(self.cfg.seed, LAST_NOISE, it as u64);
        let next: Vec<f64> = x
            .iter()
            .zip(&g)
            .enumerate()
            .map(|(i, (xv, gv))| xv - drift * gv.to_f64() + noise * key.normal(i as u64))
            .collect();
        Ok((next, Some(LastStep { prev: x, drift }), accept, frozen))
    }

    /// `steps` sampler steps from `start` with the parameters frozen: one
    /// engine run, or for a conditional energy one run per distinct code
    /// in `cond` (in order of first appearance), each over that code's
    /// chains. Returns the final states, the acceptance rate and the
    /// number of frozen chains.
    fn run_sampler(
        &mut self,
        start: &[f64],
        cond: &[f64],
        steps: usize,
        seed: u64,
    ) -> Result<(Vec<f64>, f64, usize), TrainError> {
        let (d, w) = (self.dim, self.cond_width());
        let Some(sampler) = self.sampler.as_mut() else {
            return Err(TrainError::Config("this method draws no negatives".into()));
        };
        sampler.refresh(self.energy)?;
        let groups = if w == 0 {
            vec![(Vec::new(), (0..start.len() / d.max(1)).collect())]
        } else {
            concept_groups(cond, w)
        };
        let mut x = start.to_vec();
        let (mut accepted, mut frozen) = (0.0, 0);
        for (g, (code, chains)) in groups.iter().enumerate() {
            if w > 0 {
                sampler.set_cond(code)?;
            }
            let rows: Vec<f64> = chains
                .iter()
                .flat_map(|&i| start[i * d..(i + 1) * d].iter().copied())
                .collect();
            let group_seed = seed ^ (g as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let run = negatives_run(&self.cfg, rows, chains.len(), steps, group_seed);
            let draws = sampler.run(&run)?;
            if let Some(s) = &draws.summary {
                accepted += s.accept_rate * chains.len() as f64;
                frozen += s.frozen_chains;
            } else {
                accepted += chains.len() as f64;
            }
            for (k, &i) in chains.iter().enumerate() {
                x[i * d..(i + 1) * d].copy_from_slice(&draws.x[k * d..(k + 1) * d]);
            }
        }
        let chains = start.len() / d.max(1);
        Ok((x, accepted / chains.max(1) as f64, frozen))
    }

    /// The negatives' starting points and codes from a draw: a stored
    /// sample keeps the code stored with it, a fresh start takes the code
    /// of the positive it is paired with (so fresh negatives follow the
    /// data's concepts). Unconditional runs pass the draw through.
    fn split_drawn(&self, drawn: &buffer::Drawn, pos_cond: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (d, w) = (self.dim, self.cond_width());
        if w == 0 {
            return (drawn.x.clone(), Vec::new());
        }
        let width = drawn.x.len() / drawn.fresh.len().max(1);
        let mut x = Vec::with_capacity(drawn.fresh.len() * d);
        let mut c = Vec::with_capacity(drawn.fresh.len() * w);
        for (i, &fresh) in drawn.fresh.iter().enumerate() {
            let row = &drawn.x[i * width..(i + 1) * width];
            x.extend_from_slice(&row[..d]);
            if fresh || width < d + w {
                c.extend_from_slice(&pos_cond[i * w..(i + 1) * w]);
            } else {
                c.extend_from_slice(&row[d..d + w]);
            }
        }
        (x, c)
    }

    /// The codes of rows `a..b` of the current batch, in dtype `T`.
    fn batch_cond_rows<'c, T: Scalar>(&self, cond: &'c [T], a: usize, b: usize) -> Option<&'c [T]> {
        let w = self.cond_width();
        (w > 0).then(|| &cond[a * w..b * w])
    }

    /// The whole loss on concat(x⁺, x⁻) (`pos` positives) and its
    /// θ-gradient: the contrastive loss, and for improved CD (`last` given)
    /// the KL and entropy terms through the last step, the entropy's
    /// nearest neighbours searched in `reference`.
    pub fn objective<T: Scalar>(
        &self,
        x: &[f64],
        pos: usize,
        last: Option<&LastStep>,
        reference: &[f64],
    ) -> Result<BatchLoss, TrainError> {
        self.objective_with::<T>(x, pos, last, reference, false, None)
    }

    /// `objective`; with `held`, the contrastive loss's θ-gradient may be
    /// left on the device (when nothing on the host adds to it); with `at`,
    /// the batch is that buffer of the device's (`x` then holds the
    /// positives only).
    fn objective_with<T: Scalar>(
        &self,
        x: &[f64],
        pos: usize,
        last: Option<&LastStep>,
        reference: &[f64],
        held: bool,
        at: Option<&Buffer>,
    ) -> Result<BatchLoss, TrainError> {
        let Pass {
            value,
            jem,
            mut grads,
            mut held_grads,
            energies,
        } = match self.labels {
            Some(l) => self.classifier_loss::<T>(x, pos, l.classes, held, at)?,
            None => self.loss_and_grad::<T>(x, pos, held, at)?,
        };
        let (mut kl, mut entropy) = (0.0, 0.0);
        if let Some(last) = last {
            let neg = &x[pos * self.dim..];
            let grads = match &mut held_grads {
                Some(h) => IcdGrads::Held(h),
                None => IcdGrads::Host(&mut grads),
            };
            (kl, entropy) = self.icd_terms::<T>(neg, last, grads, reference)?;
        }
        Ok(BatchLoss {
            total: value.loss + self.cfg.kl * kl + self.cfg.entropy * entropy,
            value,
            kl,
            entropy,
            jem,
            accuracy: None,
            grads,
            held_grads,
            energies,
        })
    }

    /// The loss of score matching or NCE on the positives `x` with
    /// iteration `it`'s keyed projections or noise, and its θ-gradient (for
    /// NCE, log Z's derivative last).
    pub fn method_objective<T: Scalar>(
        &self,
        x: &[f64],
        it: usize,
    ) -> Result<BatchLoss, TrainError> {
        self.method_loss::<T>(x, it as u64, self.cfg.seed, false)
    }

    /// The method's own loss on held-out rows (score matching and NCE; for
    /// the CD family `None`): a score that needs no samples, with fixed
    /// projections or noise.
    pub fn heldout_loss(&self, x: &[f64]) -> Result<Option<f64>, TrainError> {
        if self.cfg.method.samples_negatives() {
            return Ok(None);
        }
        let seed = Keyed::new(self.cfg.seed, HELDOUT, 0).key();
        let l = match self.energy.dtype() {
            crate::backend::DType::F32 => self.method_loss::<f32>(x, 0, seed, false)?,
            crate::backend::DType::F64 => self.method_loss::<f64>(x, 0, seed, false)?,
        };
        Ok(Some(l.total))
    }

    /// `method_objective`; with `held`, the θ-gradient is left on the
    /// device (NCE's log Z gradient, a host scalar, goes up beside it).
    fn method_loss<T: Scalar>(
        &self,
        x: &[f64],
        it: u64,
        seed: u64,
        held: bool,
    ) -> Result<BatchLoss, TrainError> {
        let (value, grads, held_grads, energies, accuracy) = match self.cfg.method {
            Method::Nce => self.nce_loss::<T>(x, it, seed, held)?,
            _ => self.score_loss::<T>(x, it, seed, held)?,
        };
        Ok(BatchLoss {
            total: value.loss,
            value,
            kl: 0.0,
            entropy: 0.0,
            jem: None,
            accuracy,
            grads,
            held_grads,
            energies,
        })
    }

    /// Score matching's loss on `x`: one seeded pullback of the method's
    /// graph with its keyed inputs `c`.
    fn score_loss<T: Scalar>(
        &self,
        x: &[f64],
        it: u64,
        seed: u64,
        held: bool,
    ) -> Result<MethodPass, TrainError> {
        let d = self.dim;
        let n = x.len() / d;
        let key = Keyed::new(seed, SCORE_NOISE, it);
        let s = &self.cfg.score;
        let (points, cond) = match self.cfg.method {
            Method::Ssm => {
                let v = score::projections(s.projection, &key, n, s.projections, d);
                (x.to_vec(), Some(v))
            }
            Method::Dsm => {
                let (p, c) = score::denoising_inputs(x, d, &s.sigmas, &key);
                (p, Some(c))
            }
            _ => (x.to_vec(), None),
        };
        let to_t = |v: &[f64]| v.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
        let xs = to_t(&points);
        let cs = cond.as_deref().map(to_t);
        let k = score::LOSS_VALUES;
        let seeds: Vec<T> = (0..n)
            .flat_map(|_| [T::from_f64(1.0 / n as f64), T::from_f64(0.0)])
            .collect();
        let (pairs, grads, held_grads) =
            self.pullback(Points::Host(&xs), &seeds, k, cs.as_deref(), n, held)?;
        let energies: Vec<f64> = pairs.chunks_exact(k).map(|p| p[1]).collect();
        let loss = pairs.chunks_exact(k).map(|p| p[0]).sum::<f64>() / n.max(1) as f64;
        let value = loss::LossValue {
            loss,
            e_pos: mean(&energies),
            e_neg: f64::NAN,
            l2: 0.0,
        };
        Ok((value, grads, held_grads, energies, None))
    }

    /// NCE's loss on the positives `x` and ν·|x| keyed noise rows: the
    /// energies first, then one pullback seeded by NCE's weights.
    fn nce_loss<T: Scalar>(
        &self,
        x: &[f64],
        it: u64,
        seed: u64,
        held: bool,
    ) -> Result<MethodPass, TrainError> {
        let q = self
            .noise
            .as_ref()
            .ok_or_else(|| TrainError::Config("not an NCE run".into()))?;
        let d = self.dim;
        let pos = x.len() / d;
        let ratio = self.cfg.nce.ratio;
        let mut all = x.to_vec();
        all.extend(q.sample(&Keyed::new(seed, NCE_NOISE, it), pos * ratio));
        let n = all.len() / d;
        let xs: Vec<T> = all.iter().map(|&v| T::from_f64(v)).collect();
        let parts = self.in_parts(&xs, n, |x, _, rows| self.loss.energy(x, None, rows))?;
        let e: Vec<f64> = parts.iter().flat_map(|v| pairs_first(v)).collect();
        let log_z = self
            .energy
            .store()
            .get(nce::LOG_Z)
            .and_then(|v| v.first().copied())
            .unwrap_or(0.0);
        let v = nce::value(&e, &q.log_density(&all), pos, ratio, log_z);
        let seeds: Vec<T> = v.seed.iter().map(|&w| T::from_f64(w)).collect();
        // log Z's gradient is a host scalar: beside a gradient held on the
        // device it goes up as one value.
        let (_, mut grads, mut held_grads) =
            self.pullback(Points::Host(&xs), &seeds, 2, None, n, held)?;
        match &mut held_grads {
            Some(h) => {
                let g = [v.grad_log_z as f32];
                let up = self.energy.backend().upload(HostData::F32(&g));
                h.g.push(up.map_err(RuntimeError::Backend)?);
            }
            None => grads.push(vec![v.grad_log_z]),
        }
        let value = loss::LossValue {
            loss: v.loss,
            e_pos: mean(&e[..pos]),
            e_neg: mean(&e[pos..]),
            l2: 0.0,
        };
        Ok((value, grads, held_grads, e, Some(v.accuracy)))
    }

    /// A classifier's loss on concat(x⁺, x⁻) for positives labelled
    /// `labels` (the first `labels.len()` rows of `x`) and its θ-gradient,
    /// as an iteration computes it.
    pub fn classifier_objective<T: Scalar>(
        &mut self,
        x: &[f64],
        labels: &[usize],
    ) -> Result<BatchLoss, TrainError> {
        if self.labels.is_none() {
            return Err(TrainError::Config("not a classifier run".into()));
        }
        self.batch_labels = labels.to_vec();
        self.objective::<T>(x, labels.len(), None, &[])
    }

    /// A conditional energy's loss on concat(x⁺, x⁻) with the rows' codes
    /// `cond` (`pos` positives first), and its θ-gradient, as an iteration
    /// computes it.
    pub fn conditional_objective<T: Scalar>(
        &mut self,
        x: &[f64],
        cond: &[f64],
        pos: usize,
        last: Option<&LastStep>,
        reference: &[f64],
    ) -> Result<BatchLoss, TrainError> {
        let rows = x.len() / self.dim.max(1);
        if self.concepts.is_none() || cond.len() != rows * self.cond_width() {
            return Err(TrainError::Config(
                "a conditional run needs one code per row of x".into(),
            ));
        }
        self.batch_cond = cond.to_vec();
        self.objective::<T>(x, pos, last, reference)
    }

    /// JEM's loss on concat(x⁺, x⁻) (`pos` positives, labelled by the
    /// current batch's labels; no negatives for the baseline), its
    /// θ-gradient from one seeded pullback of the loss triple, and the
    /// energies −logsumexp f.
    fn classifier_loss<T: Scalar>(
        &self,
        x: &[f64],
        pos: usize,
        classes: usize,
        held: bool,
        at: Option<&Buffer>,
    ) -> Result<Pass, TrainError> {
        let (n, xs) = self.batch_points::<T>(x, at);
        let points = at.map_or(Points::Host(&xs), Points::Buffer);
        let weight = self.cfg.objective.px_weight();
        let to_t = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
        let cond = to_t(jem::one_hot(&self.batch_labels, classes, n - pos));
        let seed = to_t(jem::seeds(pos, n - pos, weight));
        let k = jem::LOSS_VALUES;
        let (triples, grads, held_grads) = self.pullback(points, &seed, k, Some(&cond), n, held)?;
        let value = jem::value(&triples, pos, weight);
        let energies = triples.chunks_exact(k).map(|t| -t[0]).collect();
        Ok(Pass {
            value: loss::LossValue {
                loss: value.loss,
                e_pos: value.e_pos,
                e_neg: value.e_neg,
                l2: 0.0,
            },
            jem: Some(value),
            grads,
            held_grads,
            energies,
        })
    }

    /// A batch's row count, and its points in `T` when they are the host's
    /// `x` (empty when they are the device's `at`).
    fn batch_points<T: Scalar>(&self, x: &[f64], at: Option<&Buffer>) -> (usize, Vec<T>) {
        let n = at.map_or(x.len(), Buffer::len) / self.dim.max(1);
        match at {
            Some(_) => (n, Vec::new()),
            None => (n, x.iter().map(|&v| T::from_f64(v)).collect()),
        }
    }

    /// The loss on concat(x⁺, x⁻) (`pos` positives), its θ-gradient and
    /// the energies.
    fn loss_and_grad<T: Scalar>(
        &self,
        x: &[f64],
        pos: usize,
        held: bool,
        at: Option<&Buffer>,
    ) -> Result<Pass, TrainError> {
        let (n, xs) = self.batch_points::<T>(x, at);
        let points = at.map_or(Points::Host(&xs), Points::Buffer);
        let cs: Vec<T> = to_scalars(&self.batch_cond);
        let kind = self.cfg.loss;
        let first: Vec<f64> = match (kind.needs_energies(), at) {
            (false, _) => Vec::new(),
            (true, Some(_)) => {
                let c = self.batch_cond_rows(&cs, 0, n);
                pairs_first(&self.loss.energy_at(points, c, n)?)
            }
            (true, None) => {
                let parts = self.in_parts(&xs, n, |x, at, rows| {
                    let c = self.batch_cond_rows(&cs, at, at + rows);
                    self.loss.energy(x, c, rows)
                })?;
                parts.iter().flat_map(|v| pairs_first(v)).collect()
            }
        };
        let s = loss::seeds(kind, self.cfg.l2, pos, n - pos, &first);
        let seed: Vec<T> = s.seed.iter().map(|&v| T::from_f64(v)).collect();
        let c = self.batch_cond_rows(&cs, 0, n);
        let (pairs, grads, held_grads) = self.pullback(points, &seed, 2, c, n, held)?;
        let e = pairs.chunks_exact(2).map(|p| p[0]).collect::<Vec<f64>>();
        Ok(Pass {
            value: loss::value(kind, self.cfg.l2, pos, &e),
            jem: None,
            grads,
            held_grads,
            energies: e,
        })
    }

    /// One seeded pullback of the loss kernel over an `n`-row batch (`k`
    /// loss values and seeds per row, `cond` the rows' conditioning): the
    /// values, and the θ-gradient on the host, or with `held` left on the
    /// device (the host gradient is then empty).
    fn pullback<T: Scalar>(
        &self,
        points: Points<'_, T>,
        seed: &[T],
        k: usize,
        cond: Option<&[T]>,
        n: usize,
        held: bool,
    ) -> Result<Pulled, TrainError> {
        if held {
            // On the device the batch is one call (as `in_parts` makes it).
            let (v, g) = self.loss.weighted_grad_params_held(points, seed, cond, n)?;
            let values = v.iter().map(|a| a.to_f64()).collect();
            return Ok((values, Vec::new(), Some(HeldGrads { g, plus: None })));
        }
        let Points::Host(xs) = points else {
            return Err(TrainError::Config(
                "a batch on the device needs its gradient held there".into(),
            ));
        };
        let width = cond.map_or(0, |c| c.len() / n.max(1));
        let parts = self.in_parts(xs, n, |x, at, rows| {
            let c = cond.map(|c| &c[width * at..width * (at + rows)]);
            self.loss
                .weighted_grad_params(x, &seed[k * at..k * (at + rows)], c, rows)
        })?;
        let (values, grads) = sum_parts(&parts);
        Ok((values, grads, None))
    }

    /// Runs `f(rows of x, first row, row count)` on the LOSS_PARTS
    /// contiguous parts of an `n`-row batch (on a device backend, the whole
    /// batch as one part), on worker threads when the run has them; the
    /// parts are fixed, so results do not depend on threads.
    fn in_parts<T: Scalar, O: Send>(
        &self,
        x: &[T],
        n: usize,
        f: impl Fn(&[T], usize, usize) -> Result<O, RuntimeError> + Sync,
    ) -> Result<Vec<O>, TrainError> {
        let d = self.dim;
        // A device's parallelism is the batch: one call, one round trip.
        let parts = match self.loss.backend().device() {
            Some(_) => 1,
            None => LOSS_PARTS,
        };
        let per = n.div_ceil(parts).max(1);
        let ranges: Vec<(usize, usize)> =
            (0..n).step_by(per).map(|a| (a, (a + per).min(n))).collect();
        let call = |&(a, b): &(usize, usize)| {
            // f32 loss kernels flush subnormals as the sampling engine does:
            // NCE's far noise rows and saturated units produce them, and each
            // costs a microcode assist (10× slower iterations on eight_gaussians).
            let _mode = crate::sample::run::SubnormalMode::for_dtype::<T>();
            f(&x[a * d..b * d], a, b - a)
        };
        if self.cfg.threads <= 1 || ranges.len() <= 1 {
            return Ok(ranges.iter().map(call).collect::<Result<Vec<O>, _>>()?);
        }
        // Parts run on the shared worker pool (no threads spawned per call).
        let parts = pool::global()
            .map(ranges.len(), |i| call(&ranges[i]))
            .map_err(RuntimeError::Internal)?;
        Ok(parts
            .into_iter()
            .collect::<Result<Vec<O>, RuntimeError>>()?)
    }

    /// Adds improved CD's KL and entropy gradients to `grads`; returns the
    /// two terms' values (KL: mean E(x_K); entropy: −mean log NN distance).
    fn icd_terms<T: Scalar>(
        &self,
        neg: &[f64],
        last: &LastStep,
        grads: IcdGrads<'_>,
        reference: &[f64],
    ) -> Result<(f64, f64), TrainError> {
        let d = self.dim;
        let b = neg.len() / d;
        let xs: Vec<T> = neg.iter().map(|&v| T::from_f64(v)).collect();
        let w = self.cond_width();
        let cs: Vec<T> = to_scalars(&self.batch_cond[self.batch_cond.len() - b * w..]);
        let c = (w > 0).then_some(&cs[..]);
        let eg = self.energy.energy_and_grad_x(&xs, c, b)?;
        let kl = eg.energy.iter().map(|e| e.to_f64()).sum::<f64>() / b as f64;
        let (ent, ent_grad) = loss::nn_entropy(neg, reference, d);
        let u: Vec<T> = eg
            .grad_x
            .iter()
            .zip(&ent_grad)
            .map(|(g, h)| T::from_f64(self.cfg.kl * g.to_f64() / b as f64 + self.cfg.entropy * h))
            .collect();
        let prev: Vec<T> = last.prev.iter().map(|&v| T::from_f64(v)).collect();
        match grads {
            IcdGrads::Held(h) => {
                let mixed = self.energy.mixed_held(&prev, &u, c, b)?;
                h.plus = Some((-last.drift, mixed));
            }
            IcdGrads::Host(grads) => {
                let mixed = self.energy.mixed(&prev, &u, c, b)?;
                for (g, m) in grads.iter_mut().zip(&mixed) {
                    for (a, v) in g.iter_mut().zip(m) {
                        *a -= last.drift * v.to_f64();
                    }
                }
            }
        }
        Ok((kl, ent))
    }
}

/// The loss kernel's graph for `cfg`'s method: a score-matching graph, or
/// the energy with its output replaced by (E, E²) (the CD family, NCE).
fn method_graph(energy: &crate::ir::Graph, cfg: &TrainConfig) -> Result<crate::ir::Graph, String> {
    match cfg.method {
        Method::Sm => score::exact_graph(energy),
        Method::Ssm => score::sliced_graph(energy, cfg.score.projections),
        Method::Dsm => score::denoising_graph(energy),
        _ => loss::loss_graph(energy),
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Whether `cfg`'s optimiser runs where `energy`'s parameters are held
/// ([`Trainer::on_device`]).
fn resident_backend(energy: &CompiledEnergy, cfg: &TrainConfig) -> bool {
    let f32 = energy.dtype() == crate::backend::DType::F32;
    energy.backend().holds_buffers() && f32 && cfg.spectral_norm.is_none()
}

/// Refuses, before the first iteration, a run whose optimiser state would
/// not fit the memory limit (on a device, with its resident buffers).
fn check_state_size(
    cfg: &TrainConfig,
    values: &[Vec<f64>],
    resident: bool,
) -> Result<(), TrainError> {
    let n: u64 = values.iter().map(|v| v.len() as u64).sum();
    let need = optim::state_bytes(&cfg.optim, n, resident);
    if need <= crate::budget::max_memory() {
        return Ok(());
    }
    let place = match resident {
        true => "on the host and the device",
        false => "on the host",
    };
    Err(TrainError::Config(format!(
        "training {n} parameter values with {} needs about {} of optimiser state {place}; {}: use a smaller model, `--optimizer sgd` or no `--ema`",
        cfg.optim.rule.name(),
        crate::budget::bytes_text(need as f64),
        crate::budget::limit_text()
    )))
}

/// The run of the negatives' sampler for one iteration: `steps` steps from
/// `start`, the final state kept.
fn negatives_run(
    cfg: &TrainConfig,
    start: Vec<f64>,
    rows: usize,
    steps: usize,
    seed: u64,
) -> RunConfig {
    RunConfig {
        chains: rows,
        warmup: steps.saturating_sub(1),
        steps: 1,
        thin: 1,
        seed,
        init: Init::Array {
            values: start,
            rows,
        },
        progress: false,
        threads: cfg.threads.max(1),
        energies: false,
        stream: None,
    }
}

/// (drift, noise) of the ULA step improved CD differentiates: the sampler's
/// own for ULA, λ/2 and √λ for MALA/HMC's step λ.
fn ula_coefficients(s: &SamplerConfig) -> (f64, f64) {
    match &s.method {
        SamplerMethod::Ula(UlaOptions {
            noise: Some(sigma), ..
        }) => (s.step, *sigma),
        _ => (s.step / 2.0, s.step.sqrt()),
    }
}

/// The replay buffer of a run: rows of the points, and for a conditional
/// energy each point's code beside it, the codes of a full buffer's initial
/// noise drawn from the data rows' codes.
fn new_buffer(cfg: &TrainConfig, dim: usize, concepts: Option<Concepts>) -> ReplayBuffer {
    let w = concepts.map_or(0, |c| c.width);
    let mut buffer = ReplayBuffer::new(&cfg.buffer, dim + w, cfg.seed);
    if let Some(c) = concepts {
        let rows = c.of_row.len() / w.max(1);
        let k = Keyed::new(cfg.seed, CONCEPT_FILL, 0);
        for (i, row) in buffer.x.chunks_exact_mut(dim + w).enumerate() {
            let r = k.below(i as u64, rows.max(1) as u64) as usize;
            row[dim..].copy_from_slice(c.row(r));
        }
    }
    buffer
}

fn to_scalars<T: Scalar>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&a| T::from_f64(a)).collect()
}

fn param_values(energy: &CompiledEnergy, ids: &[ParamId]) -> Vec<Vec<f64>> {
    ids.iter()
        .map(|id| {
            energy
                .store()
                .entry(*id)
                .map(|e| e.value)
                .unwrap_or_default()
        })
        .collect()
}

/// The E of (E, E²) pairs.
fn pairs_first<T: Scalar>(v: &[T]) -> Vec<f64> {
    v.chunks_exact(2).map(|p| p[0].to_f64()).collect()
}

/// The parts' values, concatenated, and their gradients, summed in part
/// order (so the result does not depend on threads).
fn sum_parts<T: Scalar>(parts: &[(Vec<T>, Vec<Vec<T>>)]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut values = Vec::new();
    let mut grads: Vec<Vec<f64>> = Vec::new();
    for (v, g) in parts {
        values.extend(v.iter().map(|x| x.to_f64()));
        if grads.is_empty() {
            grads = g
                .iter()
                .map(|p| p.iter().map(|x| x.to_f64()).collect())
                .collect();
        } else {
            for (acc, part) in grads.iter_mut().zip(g) {
                acc.iter_mut().zip(part).for_each(|(a, b)| *a += b.to_f64());
            }
        }
    }
    (values, grads)
}

/// A seeded permutation of 0..n (Fisher–Yates), one per epoch.
fn permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let k = Keyed::new(seed, SHUFFLE, epoch);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = k.below(i as u64, i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}
