//! A trained classifier judged as JEM judges one (Grathwohl et al. 2020):
//! accuracy, NLL and calibration (ECE over 15 bins, with the reliability
//! bins for a diagram), out-of-distribution detection, and
//! class-conditional samples.
//!
//! [`Classifier`] is a model (logits f(x) ∈ ℝᴷ) with its two energies,
//! E(x) = −logsumexp f(x) and E(x | y) = −f(x)[y] ([`super::jem`]), all
//! reading one parameter store.
//!
//! **OOD detection.** Each score is oriented so that higher means "in
//! distribution", and AUROC measures how well it separates the test rows
//! from each out-of-distribution set:
//! * `msp`: the largest softmax probability max_y p(y | x);
//! * `logsumexp`: logsumexp_y f(x) = −E(x), the unnormalised log p(x);
//! * `grad_norm`: −‖∇ₓ log p(x)‖ = −‖∇ₓE(x)‖ (JEM's "approximate mass":
//!   data sits where the density is flat).
//!
//! The OOD sets are made from the test rows themselves ([`ood_sets`]):
//! `noise` (uniform on the data's value range), `permuted` (each row's
//! features shuffled, seeded per row), `inverted` (lo + hi − x), and, when
//! classes were left out of training, `classes`: the test rows of those
//! classes.

use std::collections::BTreeMap;

use crate::backend::DType;
use crate::runtime::{CompiledEnergy, Scalar};
use crate::sample::{Init, RunConfig, SamplerConfig, run_compiled};
use crate::stats::classify as cl;

use super::TrainError;
use super::jem;
use super::keyed::Keyed;

/// Confidence bins of the ECE (as in the JEM paper).
pub const ECE_BINS: usize = 15;

/// The OOD scores, in report order.
pub const SCORES: [&str; 3] = ["msp", "logsumexp", "grad_norm"];

/// A model and its JEM energies, in one store.
pub struct Classifier {
    pub model: CompiledEnergy,
    /// E(x) = −logsumexp f(x).
    pub energy: CompiledEnergy,
    /// E(x | c) = −f(x)·c.
    pub conditional: CompiledEnergy,
    pub classes: usize,
}

impl Classifier {
    pub fn new(model: CompiledEnergy) -> Result<Classifier, TrainError> {
        let compile = |g: Result<crate::ir::Graph, String>| -> Result<CompiledEnergy, TrainError> {
            Ok(CompiledEnergy::in_store(
                g.map_err(TrainError::Config)?,
                model.store().clone(),
                model.backend().clone(),
                model.dtype(),
            )?)
        };
        let energy = compile(jem::energy_graph(model.energy_graph()))?;
        let conditional = compile(jem::conditional_graph(model.energy_graph()))?;
        let classes = model.out_dim();
        Ok(Classifier {
            model,
            energy,
            conditional,
            classes,
        })
    }

    pub fn dim(&self) -> usize {
        self.model.dim()
    }

    /// Logits of `rows` inputs (`rows × K`).
    pub fn logits(&self, x: &[f64], rows: usize) -> Result<Vec<f64>, TrainError> {
        match self.model.dtype() {
            DType::F32 => values::<f32>(&self.model, x, rows),
            DType::F64 => values::<f64>(&self.model, x, rows),
        }
    }

    /// ∇ₓE(x) per row.
    pub fn grad_x(&self, x: &[f64], rows: usize) -> Result<Vec<f64>, TrainError> {
        match self.energy.dtype() {
            DType::F32 => grad::<f32>(&self.energy, x, rows),
            DType::F64 => grad::<f64>(&self.energy, x, rows),
        }
    }

    /// The three OOD scores of each row (higher: more in-distribution).
    pub fn scores(
        &self,
        x: &[f64],
        rows: usize,
    ) -> Result<BTreeMap<&'static str, Vec<f64>>, TrainError> {
        let k = self.classes;
        let logits = self.logits(x, rows)?;
        let probs = cl::softmax(&logits, k);
        let msp = probs
            .chunks_exact(k)
            .map(|r| r.iter().cloned().fold(0.0, f64::max))
            .collect();
        let g = self.grad_x(x, rows)?;
        let d = self.dim();
        let norm = g
            .chunks_exact(d)
            .map(|r| -r.iter().map(|v| v * v).sum::<f64>().sqrt())
            .collect();
        Ok(BTreeMap::from([
            ("msp", msp),
            ("logsumexp", cl::logsumexp(&logits, k)),
            ("grad_norm", norm),
        ]))
    }
}

fn values<T: Scalar>(e: &CompiledEnergy, x: &[f64], rows: usize) -> Result<Vec<f64>, TrainError> {
    let xs: Vec<T> = x.iter().map(|&v| T::from_f64(v)).collect();
    Ok(e.energy(&xs, None, rows)?
        .iter()
        .map(|v| v.to_f64())
        .collect())
}

fn grad<T: Scalar>(e: &CompiledEnergy, x: &[f64], rows: usize) -> Result<Vec<f64>, TrainError> {
    let xs: Vec<T> = x.iter().map(|&v| T::from_f64(v)).collect();
    Ok(e.grad_x(&xs, None, rows)?
        .iter()
        .map(|v| v.to_f64())
        .collect())
}

/// The out-of-distribution sets made from `x` (`dim` per row), whose values
/// span [lo, hi]: `noise`, `permuted`, `inverted`.
pub fn ood_sets(
    x: &[f64],
    dim: usize,
    lo: f64,
    hi: f64,
    seed: u64,
) -> Vec<(&'static str, Vec<f64>)> {
    let noise_key = Keyed::new(seed, 101, 0);
    let noise = (0..x.len())
        .map(|i| lo + (hi - lo) * noise_key.uniform(i as u64))
        .collect();
    let mut permuted = x.to_vec();
    for (r, row) in permuted.chunks_exact_mut(dim).enumerate() {
        let k = Keyed::new(seed, 102, r as u64);
        for i in (1..dim).rev() {
            let j = k.below(i as u64, i as u64 + 1) as usize;
            row.swap(i, j);
        }
    }
    let inverted = x.iter().map(|v| lo + hi - v).collect();
    vec![
        ("noise", noise),
        ("permuted", permuted),
        ("inverted", inverted),
    ]
}

/// What [`evaluate`] reports.
#[derive(Clone, Debug)]
pub struct Report {
    pub rows: usize,
    pub calibration: cl::Calibration,
    /// AUROC by OOD set, then by score.
    pub auroc: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Scores `c` on labelled test rows `x`; rows whose label is in `excluded`
/// (classes left out of training) are not classified but form the OOD set
/// `classes`. `range` is the data's value range (for the OOD sets).
pub fn evaluate(
    c: &Classifier,
    x: &[f64],
    labels: &[usize],
    excluded: &[usize],
    range: (f64, f64),
    seed: u64,
) -> Result<Report, TrainError> {
    let d = c.dim();
    let (mut inside, mut held, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for (row, &label) in x.chunks_exact(d).zip(labels) {
        if excluded.contains(&label) {
            held.extend_from_slice(row);
        } else {
            inside.extend_from_slice(row);
            y.push(label);
        }
    }
    if let Some(bad) = y.iter().find(|&&l| l >= c.classes) {
        return Err(TrainError::Config(format!(
            "label {bad} is out of range: the model has {} classes (labels 0..{})",
            c.classes,
            c.classes - 1
        )));
    }
    let n = y.len();
    if n == 0 {
        return Err(TrainError::Config(
            "no test rows of the trained classes".into(),
        ));
    }
    let logits = c.logits(&inside, n)?;
    let calibration = cl::calibration(&cl::softmax(&logits, c.classes), c.classes, &y, ECE_BINS);
    let base = c.scores(&inside, n)?;
    let mut sets = ood_sets(&inside, d, range.0, range.1, seed);
    if !held.is_empty() {
        sets.push(("classes", held));
    }
    let mut auroc = BTreeMap::new();
    for (name, rows) in sets {
        let s = c.scores(&rows, rows.len() / d)?;
        let per: BTreeMap<String, f64> = SCORES
            .iter()
            .map(|k| (k.to_string(), cl::auroc(&base[k], &s[k])))
            .collect();
        auroc.insert(name.to_string(), per);
    }
    Ok(Report {
        rows: n,
        calibration,
        auroc,
    })
}

/// How class-conditional samples are drawn: SGLD on E(x | y) from uniform
/// noise on `range`, as JEM samples.
#[derive(Clone, Debug)]
pub struct ConditionalSampling {
    pub per_class: usize,
    pub steps: usize,
    pub sampler: SamplerConfig,
    pub range: (f64, f64),
    pub seed: u64,
    pub threads: usize,
}

/// `per_class` samples of each class in turn (`classes × per_class` rows).
pub fn conditional_samples(
    c: &Classifier,
    s: &ConditionalSampling,
) -> Result<Vec<f64>, TrainError> {
    let mut out = Vec::with_capacity(c.classes * s.per_class * c.dim());
    for y in 0..c.classes {
        let cond = jem::one_hot(&[y], c.classes, 0);
        let mut run = RunConfig::new(
            s.per_class,
            s.steps.saturating_sub(1),
            1,
            s.seed ^ (y as u64) << 32,
        );
        run.init = Init::Uniform {
            a: s.range.0,
            b: s.range.1,
        };
        run.threads = s.threads.max(1);
        run.energies = false;
        let draws = run_compiled(&c.conditional, Some(&cond), &s.sampler, &run)?;
        out.extend_from_slice(&draws.x);
    }
    Ok(out)
}
