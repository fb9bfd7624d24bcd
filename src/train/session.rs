//! A training run with its outputs, as `ebm train` and a script's
//! `train(..)` run it: the iteration loop around a [`Trainer`], a progress
//! bar on a terminal, `metrics.csv` (one row per iteration), checkpoints
//! every N iterations and at the end (and when the user interrupts),
//! `params.safetensors`, a held-out loss with the best parameters kept in
//! `best.safetensors`, a loss-curve PNG and sample snapshots.
//!
//! Outputs are written atomically (temp file + rename), so a crash or
//! Ctrl-C never leaves a half-written checkpoint; a resumed run rewrites
//! `metrics.csv` up to its checkpoint's iteration, then appends.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::checkpoint;
use super::{IterRecord, Rollback, TrainError, Trainer, loss};
use crate::runtime::Scalar;

/// Where and how often a run writes.
#[derive(Clone, Debug)]
pub struct Session {
    pub dir: PathBuf,
    /// Write a checkpoint every this many iterations (0: only at the end).
    pub checkpoint_every: usize,
    /// Draw the negatives every this many iterations (0: never).
    pub snapshot_every: usize,
    /// Evaluate the held-out loss every this many iterations (0: never).
    pub eval_every: usize,
    pub progress: bool,
    /// The caller's description of the run (kept in checkpoints for resume).
    pub run: String,
    /// Metadata for every file written (energy name, scaling, source hash).
    pub metadata: BTreeMap<String, String>,
    /// Held-out rows (same scaling as the training data).
    pub heldout: Option<Vec<f64>>,
    /// Stop after this many iterations of this call (a resumable pause).
    pub stop_after: Option<usize>,
}

/// What a finished (or interrupted) run did.
#[derive(Clone, Debug)]
pub struct Report {
    pub iterations: usize,
    pub ran: usize,
    pub seconds: f64,
    pub last: Option<IterRecord>,
    pub rollbacks: Vec<Rollback>,
    pub best: Option<(usize, f64)>,
    pub files: Vec<PathBuf>,
    pub interrupted: bool,
}

impl Report {
    pub fn iters_per_s(&self) -> f64 {
        self.ran as f64 / self.seconds.max(1e-12)
    }
}

pub const METRICS: &str = "metrics.csv";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const PARAMS: &str = "params.safetensors";
pub const BEST: &str = "best.safetensors";
pub const EMA: &str = "ema.safetensors";
pub const LOSS_PNG: &str = "loss.png";

/// Runs `t` to its configured iteration count (or until `stop` is set),
/// writing the session's outputs.
pub fn run(t: &mut Trainer, s: &Session, stop: &AtomicBool) -> Result<Report, TrainError> {
    std::fs::create_dir_all(&s.dir)
        .map_err(|e| TrainError::Io(format!("cannot create {}: {e}", s.dir.display())))?;
    let mut metrics = Metrics::open(&s.dir.join(METRICS), t.state.it)?;
    let start = Instant::now();
    let first = t.state.it;
    let total = t.config().iters;
    let pb = progress_bar(s.progress, first, total);
    let mut report = Report {
        iterations: total,
        ran: 0,
        seconds: 0.0,
        last: None,
        rollbacks: Vec::new(),
        best: None,
        files: Vec::new(),
        interrupted: false,
    };
    while !t.done() {
        if stop.load(Ordering::Relaxed) || s.stop_after.is_some_and(|n| report.ran >= n) {
            report.interrupted = true;
            break;
        }
        let rec = t.step()?;
        metrics.push(&rec);
        if let Some(cause) = &rec.rollback {
            report.rollbacks.push(Rollback {
                iteration: rec.it,
                cause: cause.clone(),
            });
            pb.println(format!("rollback at iteration {}: {cause}", rec.it));
        }
        pb.set_position(t.state.it as u64);
        pb.set_message(format!(
            "loss {:.4} E+ {:.3} E- {:.3} acc {:.2}",
            rec.loss, rec.e_pos, rec.e_neg, rec.accept
        ));
        let it = t.state.it;
        if s.eval_every > 0 && it.is_multiple_of(s.eval_every) {
            held_out(t, s, it, &mut report)?;
        }
        if s.snapshot_every > 0 && it.is_multiple_of(s.snapshot_every) {
            report.files.extend(super::plots::snapshot(t, &s.dir, it));
        }
        if s.checkpoint_every > 0 && it.is_multiple_of(s.checkpoint_every) && !t.done() {
            metrics.flush()?;
            write_checkpoint(t, s)?;
        }
        report.last = Some(rec);
        report.ran += 1;
    }
    pb.finish_and_clear();
    report.seconds = start.elapsed().as_secs_f64();
    metrics.flush()?;
    write_checkpoint(t, s)?;
    report.files.push(s.dir.join(CHECKPOINT));
    checkpoint::write(
        &s.dir.join(PARAMS),
        &checkpoint::params_file(t, &s.metadata),
    )?;
    report.files.push(s.dir.join(PARAMS));
    if let Some(f) = checkpoint::ema_file(t, &s.metadata) {
        checkpoint::write(&s.dir.join(EMA), &f)?;
        report.files.push(s.dir.join(EMA));
    }
    if let Some(p) = super::plots::loss_curve(&s.dir.join(METRICS), &s.dir.join(LOSS_PNG)) {
        report.files.push(p);
    }
    report.files.push(s.dir.join(METRICS));
    Ok(report)
}

fn write_checkpoint(t: &Trainer, s: &Session) -> Result<(), TrainError> {
    checkpoint::write(
        &s.dir.join(CHECKPOINT),
        &checkpoint::checkpoint_file(t, &s.run, &s.metadata),
    )
}

/// The training loss with held-out positives against the buffer's (or, for
/// `cd`, fresh) negatives; the parameters with the lowest so far are saved.
fn held_out(t: &Trainer, s: &Session, it: usize, report: &mut Report) -> Result<(), TrainError> {
    let Some(h) = &s.heldout else { return Ok(()) };
    let value = match t.energy().dtype() {
        crate::backend::DType::F32 => heldout_loss::<f32>(t, h)?,
        crate::backend::DType::F64 => heldout_loss::<f64>(t, h)?,
    };
    if value.is_finite() && report.best.is_none_or(|(_, b)| value < b) {
        report.best = Some((it, value));
        let mut meta = s.metadata.clone();
        meta.insert("ebm.iteration".into(), it.to_string());
        meta.insert("ebm.heldout_loss".into(), value.to_string());
        checkpoint::write(&s.dir.join(BEST), &checkpoint::params_file(t, &meta))?;
    }
    Ok(())
}

fn heldout_loss<T: Scalar>(t: &Trainer, heldout: &[f64]) -> Result<f64, TrainError> {
    let d = t.energy().dim();
    let rows = (heldout.len() / d).min(1000);
    let neg = t
        .state
        .buffer
        .reference(t.config().seed, t.state.it as u64, rows);
    let mut x: Vec<T> = heldout[..rows * d]
        .iter()
        .map(|&v| T::from_f64(v))
        .collect();
    x.extend(neg.iter().map(|&v| T::from_f64(v)));
    let n = x.len() / d;
    let e: Vec<f64> = t
        .energy()
        .energy(&x, None, n)?
        .iter()
        .map(|v| v.to_f64())
        .collect();
    let cfg = t.config();
    Ok(loss::value(cfg.loss, cfg.l2, rows, &e).loss)
}

fn progress_bar(on: bool, first: usize, total: usize) -> ProgressBar {
    if !(on && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} train [{bar:30}] {pos}/{len} it, {per_sec}, eta {eta} | {msg}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_position(first as u64);
    pb
}

/// `metrics.csv`: kept in memory between flushes, written whole through a
/// temp file, so the file on disk always ends at a complete row.
struct Metrics {
    path: PathBuf,
    text: String,
}

impl Metrics {
    /// Opens the file of a run at iteration `from`: a new run starts it with
    /// the header; a resumed one keeps the rows of iterations before `from`.
    fn open(path: &Path, from: usize) -> Result<Metrics, TrainError> {
        let mut text = format!("{}\n", IterRecord::HEADER);
        if from > 0
            && let Ok(old) = std::fs::read_to_string(path)
        {
            for line in old.lines().skip(1) {
                let it = line.split(',').next().and_then(|v| v.parse::<usize>().ok());
                if it.is_some_and(|i| i < from) {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        let m = Metrics {
            path: path.to_path_buf(),
            text,
        };
        m.flush()?;
        Ok(m)
    }
    fn push(&mut self, r: &IterRecord) {
        self.text.push_str(&r.csv_row());
        self.text.push('\n');
    }
    fn flush(&self) -> Result<(), TrainError> {
        crate::data::atomic::write_atomic(&self.path, self.text.as_bytes()).map_err(TrainError::Io)
    }
}
