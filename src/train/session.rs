//! A training run with its outputs, as `ebm train` and a script's
//! `train(..)` run it: the iteration loop around a [`Trainer`], a progress
//! bar on a terminal, `metrics.csv` (one row per iteration), checkpoints
//! every N iterations and at the end (and when the user interrupts),
//! `params.safetensors`, a held-out score (the exact NLL for 2-D energies,
//! else the MMD² of the persistent samples) with the best parameters kept in
//! `best.safetensors`, a loss-curve PNG and sample snapshots.
//!
//! Checkpoints and parameter files are written atomically (temp file +
//! rename), so a crash or Ctrl-C never leaves a half-written one;
//! `metrics.csv` is appended to, and a resumed run first rewrites it up to
//! its checkpoint's iteration (dropping rows a crash left beyond it).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{IterRecord, Rollback, TrainError, Trainer};
use super::{checkpoint, evaluate};

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
    /// Classifiers: the held-out rows' labels.
    pub heldout_labels: Option<Vec<usize>>,
    /// Conditional energies: the held-out rows' conditioning vectors.
    pub heldout_cond: Option<Vec<f64>>,
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
    /// The device the kernels ran on (a GPU backend's adapter), if any.
    pub device: Option<String>,
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
        device: t.energy().backend().device(),
    };
    while !t.done() {
        let asked = stop.load(Ordering::Relaxed) || crate::interrupt::requested();
        if asked || s.stop_after.is_some_and(|n| report.ran >= n) {
            report.interrupted = true;
            break;
        }
        let rec = t.step()?;
        metrics.push(&rec)?;
        if let Some(cause) = &rec.rollback {
            report.rollbacks.push(Rollback {
                iteration: rec.it,
                cause: cause.clone(),
            });
            pb.println(format!("rollback at iteration {}: {cause}", rec.it));
        }
        pb.set_position(t.state.it as u64);
        pb.set_message(progress_message(&rec));
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
    // The final files below read the state this brought home.
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

fn progress_message(r: &IterRecord) -> String {
    match (r.ce, r.acc) {
        (Some(ce), Some(acc)) => format!(
            "loss {:.4} CE {:.4} acc {:.3} E+ {:.3} E- {:.3}",
            r.loss, ce, acc, r.e_pos, r.e_neg
        ),
        _ if r.e_neg.is_nan() => format!("loss {:.4} E {:.3}", r.loss, r.e_pos),
        (None, Some(acc)) => format!(
            "loss {:.4} E+ {:.3} E- {:.3} told apart {:.2}",
            r.loss, r.e_pos, r.e_neg, acc
        ),
        _ => format!(
            "loss {:.4} E+ {:.3} E- {:.3} acc {:.2}",
            r.loss, r.e_pos, r.e_neg, r.accept
        ),
    }
}

/// Writes the whole state, brought home from the device first.
fn write_checkpoint(t: &mut Trainer, s: &Session) -> Result<(), TrainError> {
    t.sync()?;
    checkpoint::write(
        &s.dir.join(CHECKPOINT),
        &checkpoint::checkpoint_file(t, &s.run, &s.metadata),
    )
}

/// The held-out score, lower is better: for classifiers the held-out
/// cross-entropy; for 2-D energies the exact
/// held-out negative log-likelihood (log Z by quadrature on the held-out
/// rows' range padded by 50%, 100 × 100 cells); otherwise, for score
/// matching and NCE, the method's own loss on the held-out rows, and for
/// the CD family the MMD² between the persistent samples (the buffer, or
/// the last negatives) and the held-out rows. The parameters with the best score are kept.
fn held_out(t: &Trainer, s: &Session, it: usize, report: &mut Report) -> Result<(), TrainError> {
    let Some(h) = &s.heldout else { return Ok(()) };
    let value = match (&s.heldout_labels, t.labels(), &s.heldout_cond) {
        (Some(labels), Some(_), _) => t.classifier_scores(h, labels)?.0,
        (_, _, Some(cond)) if t.cond_width() > 0 => conditional_score(t, h, cond)?,
        _ => heldout_score(t, h)?,
    };
    if value.is_finite() && report.best.is_none_or(|(_, b)| value < b) {
        report.best = Some((it, value));
        let mut meta = s.metadata.clone();
        meta.insert("ebm.iteration".into(), it.to_string());
        meta.insert("ebm.heldout_score".into(), value.to_string());
        // Parameters held on the device come home (a failure is an error,
        // never a file of older values).
        t.energy().store().pull()?;
        checkpoint::write(&s.dir.join(BEST), &checkpoint::params_file(t, &meta))?;
    }
    Ok(())
}

fn heldout_score(t: &Trainer, heldout: &[f64]) -> Result<f64, TrainError> {
    use crate::stats::eval as ev;
    let e = t.energy();
    let d = e.dim();
    if d == 2 {
        let grid = evaluate::grid_around(heldout, 100);
        let Ok(dens) = evaluate::density_on(e, &grid) else {
            return Ok(f64::NAN);
        };
        let rows = heldout.len() / 2;
        return Ok(ev::heldout_nll(
            dens.log_z,
            &evaluate::energies(e, heldout, rows)?,
        ));
    }
    if let Some(loss) = t.heldout_loss(heldout)? {
        return Ok(loss);
    }
    let samples = if t.state.buffer.rows() > 0 {
        t.persistent_samples(1000, t.state.it as u64)?
    } else {
        t.negatives()?
    };
    Ok(ev::mmd2(&samples, heldout, d, None).mmd2)
}

/// The held-out score of a conditional energy: for 2-D energies the exact
/// negative log-likelihood −log p(x | c) averaged over the held-out rows
/// (log Z(c) by quadrature for each distinct code), otherwise the MMD² of
/// the persistent samples and the held-out rows.
fn conditional_score(t: &Trainer, heldout: &[f64], cond: &[f64]) -> Result<f64, TrainError> {
    let e = t.energy();
    let (d, w) = (e.dim(), t.cond_width());
    let rows = heldout.len() / d.max(1);
    if d != 2 || cond.len() != rows * w {
        return heldout_score(t, heldout);
    }
    let grid = evaluate::grid_around(heldout, 100);
    let energies = evaluate::energies_given(e, heldout, Some(cond), rows)?;
    let mut log_z: Vec<(Vec<u64>, f64)> = Vec::new();
    let mut total = 0.0;
    for (code, energy) in cond.chunks_exact(w).zip(&energies) {
        let key: Vec<u64> = code.iter().map(|v| v.to_bits()).collect();
        let z = match log_z.iter().find(|(k, _)| *k == key) {
            Some((_, z)) => *z,
            None => {
                let Ok(dens) = evaluate::density_given(e, &grid, Some(code)) else {
                    return Ok(f64::NAN);
                };
                log_z.push((key, dens.log_z));
                dens.log_z
            }
        };
        total += energy + z;
    }
    Ok(total / rows.max(1) as f64)
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

/// `metrics.csv`. Opening rewrites it atomically (the header, and for a
/// resumed run the rows before its checkpoint); rows then wait in memory and
/// are appended at each flush, at the latest every `FLUSH_ROWS` rows, so a
/// long run neither holds its whole history nor rewrites it.
struct Metrics {
    path: PathBuf,
    pending: String,
    rows: usize,
}

const FLUSH_ROWS: usize = 1000;

impl Metrics {
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
        crate::data::atomic::write_atomic(path, text.as_bytes()).map_err(TrainError::Io)?;
        Ok(Metrics {
            path: path.to_path_buf(),
            pending: String::new(),
            rows: 0,
        })
    }
    fn push(&mut self, r: &IterRecord) -> Result<(), TrainError> {
        self.pending.push_str(&r.csv_row());
        self.pending.push('\n');
        self.rows += 1;
        if self.rows >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TrainError> {
        use std::io::Write;
        if self.pending.is_empty() {
            return Ok(());
        }
        let fail = |e: std::io::Error| {
            TrainError::Io(format!("cannot write {}: {e}", self.path.display()))
        };
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(fail)?;
        f.write_all(self.pending.as_bytes()).map_err(fail)?;
        self.pending.clear();
        self.rows = 0;
        Ok(())
    }
}
