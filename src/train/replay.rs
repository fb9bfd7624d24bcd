//! The replay buffer in a device's memory: on a run whose state is
//! resident ([`super::resident`]), persistent CD's stored samples live
//! beside the parameters, so an iteration's negatives never cross to the
//! host. The host keeps choosing (slots, fresh starts: keyed, as in
//! [`buffer`](super::buffer)); the device gathers the chosen rows into the
//! batch of starts, the sampler moves them in place, the loss binds them,
//! and they are scattered back to their slots. What crosses per iteration
//! is the fresh starts (about `reinit · batch` rows) going up; the samples
//! come home only for a checkpoint, the entropy term's or a score's
//! reference rows, or a snapshot.
//!
//! The device's buffer has room for every row from the start: a
//! reservoir's host copy grows as it fills (the host keeps its count of
//! rows and offers), the device's rows beyond it unread until written.
//! Conditional codes stored beside the samples, and improved CD's last
//! step (which differentiates through the states on the host), keep the
//! buffer on the host.

use std::sync::Arc;

use super::TrainError;
use super::buffer::{Drawn, ReplayBuffer};
use crate::backend::{Backend, Buffer, HostData};
use crate::runtime::RuntimeError;

pub struct DeviceReplay {
    backend: Arc<dyn Backend>,
    /// `rows × dim` samples, f32, where the backend keeps them.
    x: Buffer,
    dim: usize,
    /// The rows written since the host's copy (`ReplayBuffer::x`) was
    /// current: only these come home, so a row never written keeps the
    /// host's f64 value (a checkpoint is the host run's, byte for byte).
    written: Vec<bool>,
    home: bool,
}

fn up(backend: &dyn Backend, values: &[f64]) -> Result<Buffer, TrainError> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Ok(backend
        .upload(HostData::F32(&v))
        .map_err(RuntimeError::Backend)?)
}

fn backend_error(e: crate::backend::BackendError) -> TrainError {
    TrainError::Runtime(RuntimeError::Backend(e))
}

impl DeviceReplay {
    /// A copy of `buffer`'s samples on `backend`, with room for
    /// `capacity` rows (at least the buffer's).
    pub fn upload(
        backend: &Arc<dyn Backend>,
        buffer: &ReplayBuffer,
        capacity: usize,
    ) -> Result<Self, TrainError> {
        let rows = capacity.max(buffer.rows());
        let mut values = buffer.x.clone();
        values.resize(rows * buffer.dim, 0.0);
        Ok(DeviceReplay {
            backend: backend.clone(),
            x: up(backend.as_ref(), &values)?,
            dim: buffer.dim,
            written: vec![false; rows],
            home: true,
        })
    }

    /// The batch of starts `drawn` chose: stored rows gathered on the
    /// device, fresh ones uploaded.
    pub fn gather(&self, drawn: &Drawn) -> Result<Buffer, TrainError> {
        let (d, n) = (self.dim, drawn.fresh.len());
        let b = self.backend.as_ref();
        let mut starts = b
            .alloc(n * d, crate::backend::DType::F32)
            .map_err(backend_error)?;
        let stored: Vec<(usize, usize)> = (drawn.rows.iter().zip(&drawn.fresh).enumerate())
            .filter_map(|(i, (r, &fresh))| r.filter(|_| !fresh).map(|r| (r, i)))
            .collect();
        b.copy_rows(&self.x, &mut starts, d, &stored)
            .map_err(backend_error)?;
        let fresh: Vec<usize> = (0..n).filter(|&i| drawn.fresh[i]).collect();
        if !fresh.is_empty() {
            let values: Vec<f64> = (fresh.iter())
                .flat_map(|&i| drawn.x[i * d..(i + 1) * d].iter().copied())
                .collect();
            let moves: Vec<(usize, usize)> =
                fresh.iter().enumerate().map(|(k, &i)| (k, i)).collect();
            b.copy_rows(&up(b, &values)?, &mut starts, d, &moves)
                .map_err(backend_error)?;
        }
        Ok(starts)
    }

    /// Writes the sampled negatives (rows as drawn) back to the slots
    /// `buffer` places them in (its bookkeeping advanced as `write_back`
    /// advances it). Sampled chains are finite (the sampler freezes a chain
    /// at its last finite state), so no row is skipped as `write_back` may.
    pub fn scatter(
        &mut self,
        negatives: &Buffer,
        drawn: &Drawn,
        (buffer, cfg): (&mut ReplayBuffer, &super::buffer::BufferConfig),
        (seed, it): (u64, u64),
    ) -> Result<(), TrainError> {
        let all = vec![true; drawn.rows.len()];
        let moves = buffer.place(cfg, seed, it, drawn, &all);
        (self.backend)
            .copy_rows(negatives, &mut self.x, self.dim, &moves)
            .map_err(backend_error)?;
        for &(_, slot) in &moves {
            if let Some(w) = self.written.get_mut(slot) {
                *w = true;
            }
        }
        self.home = false;
        Ok(())
    }

    /// Brings the rows written on the device home into `buffer` (a no-op
    /// when none was).
    pub fn pull(&mut self, buffer: &mut ReplayBuffer) -> Result<(), TrainError> {
        if self.home {
            return Ok(());
        }
        let values = self.backend.download(&self.x).map_err(backend_error)?;
        if values.len() != self.written.len() * self.dim || buffer.rows() > self.written.len() {
            return Err(TrainError::Runtime(RuntimeError::Internal(
                "the device's replay buffer changed size".into(),
            )));
        }
        let d = self.dim;
        let stored = buffer.rows();
        for (r, w) in self.written.iter_mut().enumerate().take(stored) {
            if std::mem::take(w) {
                buffer.x[r * d..(r + 1) * d].copy_from_slice(&values[r * d..(r + 1) * d]);
            }
        }
        self.home = true;
        Ok(())
    }

    /// Rows `rows` of the samples, read back.
    pub fn rows(&self, rows: &[usize]) -> Result<Vec<f64>, TrainError> {
        let b = self.backend.as_ref();
        let mut out = b
            .alloc(rows.len() * self.dim, crate::backend::DType::F32)
            .map_err(backend_error)?;
        let moves: Vec<(usize, usize)> = rows.iter().enumerate().map(|(k, &r)| (r, k)).collect();
        b.copy_rows(&self.x, &mut out, self.dim, &moves)
            .map_err(backend_error)?;
        b.download(&out).map_err(backend_error)
    }

    /// Whether the host's copy is current.
    pub fn is_home(&self) -> bool {
        self.home
    }
}

/// Fresh starts (CD's) as a buffer of the backend.
pub fn fresh(backend: &dyn Backend, x: &[f64]) -> Result<Buffer, TrainError> {
    up(backend, x)
}

/// `pos` (host rows) followed by `neg` (the backend's buffer) as one
/// buffer of the backend: the loss's batch concat(x⁺, x⁻), assembled where
/// the negatives are.
pub fn batch_with(
    backend: &dyn Backend,
    pos: &[f64],
    neg: &Buffer,
    dim: usize,
) -> Result<Buffer, TrainError> {
    let (p, n) = (pos.len() / dim.max(1), neg.len() / dim.max(1));
    let mut all = backend
        .alloc((p + n) * dim, crate::backend::DType::F32)
        .map_err(backend_error)?;
    let first: Vec<(usize, usize)> = (0..p).map(|i| (i, i)).collect();
    backend
        .copy_rows(&up(backend, pos)?, &mut all, dim, &first)
        .map_err(backend_error)?;
    let second: Vec<(usize, usize)> = (0..n).map(|i| (i, p + i)).collect();
    backend
        .copy_rows(neg, &mut all, dim, &second)
        .map_err(backend_error)?;
    Ok(all)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use crate::backend::{Backend, DType, StandIn};
    use crate::train::buffer::Replace;
    use crate::train::loss::LossKind;
    use crate::train::{IterRecord, Method, TrainConfig, Trainer};

    /// A small run on the stand-in device: a buffer of 20 slots for
    /// batches of 16 (so slots repeat within a batch, and a reservoir fills
    /// in the second iteration) with a third of the starts fresh.
    fn config(method: Method, loss: LossKind, replace: Replace) -> TrainConfig {
        let mut cfg = TrainConfig::new(method);
        cfg.buffer.replace = replace;
        (cfg.iters, cfg.batch, cfg.sampler_steps, cfg.seed) = (8, 16, 3, 5);
        (cfg.buffer.size, cfg.buffer.reinit) = (20, 0.3);
        cfg.loss = loss;
        cfg
    }

    fn fields(r: &IterRecord) -> [u64; 6] {
        [r.loss, r.e_pos, r.e_neg, r.l2, r.grad_norm, r.accept].map(f64::to_bits)
    }

    /// The oracle of the device's replay buffer is the host's: the same run
    /// with the buffer kept on the host (`EBM_DEVICE_REPLAY=0`'s switch)
    /// records the same bits every iteration, ends with the same
    /// parameters, negatives, reference rows and (brought home) buffer;
    /// the samples cross only at `sync`, once.
    #[test]
    fn the_replay_buffer_on_a_device_trains_as_on_the_host() {
        let src = "energy e(x: [2]) = sum(mlp(x, [8, 1], act = swish)) + 0.1 * sum(x^2)\n";
        let data = crate::data::rng::normal(3, 400);
        let runs = [
            (Method::Pcd, LossKind::Cd, Replace::Uniform),
            (Method::Pcd, LossKind::Softplus, Replace::Uniform),
            (Method::Pcd, LossKind::Cd, Replace::Reservoir),
            (Method::Cd, LossKind::Cd, Replace::Uniform),
        ];
        for (method, loss, replace) in runs {
            let mut runs = Vec::new();
            for on_host in [false, true] {
                let dev = Arc::new(StandIn::default());
                let backend: Arc<dyn Backend> = dev.clone();
                let program = crate::api::Program::from_source(src).unwrap();
                let e = program.energy_with("e", backend, DType::F32).unwrap();
                let mut t = Trainer::new(&e, &data, config(method, loss, replace)).unwrap();
                t.negatives_on_host = on_host;
                assert_eq!(t.negatives_on_device(), !on_host);
                let mut records = vec![fields(&t.step().unwrap())];
                let down = dev.down.load(Ordering::Relaxed);
                while !t.done() {
                    records.push(fields(&t.step().unwrap()));
                }
                assert_eq!(
                    dev.down.load(Ordering::Relaxed),
                    down,
                    "nothing is read back during iterations"
                );
                let reference = t.persistent_samples(5, 3).unwrap();
                let negatives = t.negatives().unwrap();
                t.sync().unwrap();
                assert!(t.replay.as_ref().is_none_or(|r| r.is_home()));
                let params: Vec<u64> = (e.param_names().iter())
                    .flat_map(|name| e.store().get(name).unwrap())
                    .map(f64::to_bits)
                    .collect();
                let buffer: Vec<u64> = t.state.buffer.x.iter().map(|v| v.to_bits()).collect();
                assert_eq!(negatives.len(), 16 * 2);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
                runs.push([
                    records.concat(),
                    params,
                    buffer,
                    bits(&reference),
                    bits(&negatives),
                ]);
            }
            let what = [
                "iteration records",
                "parameters",
                "the buffer brought home",
                "reference rows",
                "last negatives",
            ];
            for (k, what) in what.iter().enumerate() {
                let (device, host) = (&runs[0][k], &runs[1][k]);
                assert_eq!(device, host, "{method:?} {loss:?} {replace:?}: {what}");
            }
        }
    }
}
