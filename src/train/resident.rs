//! Training state resident on a device: on a backend that holds buffers
//! (the GPU) in f32, the optimiser's moments and moving average live in the
//! device's memory beside the parameters, and each update runs there as
//! the compiled [`optim::update_graph`]. An iteration reads back only the
//! gradient's norm and the `bad` flag the guard needs; the new parameters
//! become the store's next version where they are (`adopt_held`), and the
//! host copies of parameters and moments are brought home only when asked
//! (a checkpoint, the final files, `Trainer::sync`).
//!
//! A rejected update leaves the old buffers in place (each update writes
//! new ones), so the guard's rollback costs nothing on the device.

use std::sync::Arc;

use super::TrainError;
use super::optim::{self, OptimConfig, OptimState, Slot, UpdateLayout};
use crate::backend::{Arg, Backend, Buffer, DType, Dest, HostData, Kernel};
use crate::ir::{BatchReduce, Graph, InputKind};
use crate::runtime::{ParamId, ParamStore, RuntimeError};

/// The optimiser's state in a device's memory and its compiled update.
pub struct Resident {
    backend: Arc<dyn Backend>,
    kernel: Arc<dyn Kernel>,
    layout: UpdateLayout,
    /// Per parameter, the carried state other than the parameter itself,
    /// in `carried()` order (m, [v], [ema]).
    state: Vec<Vec<Buffer>>,
    sizes: Vec<usize>,
    /// g + c·h over every parameter, compiled at its first use.
    combine: Option<Arc<dyn Kernel>>,
    /// The host copy (`OptimState`) holds `state`'s values: nothing to
    /// download until the next adopted update.
    home: bool,
}

/// The gradient an update reads: host values (methods whose gradient is
/// assembled on the host) or buffers kernels left on the device.
pub enum Grads<'a> {
    Host(&'a [Vec<f64>]),
    Held(&'a HeldGrads),
}

/// A θ-gradient in a device's memory, one buffer per parameter: `g`, plus
/// c·h where a second term was computed apart (improved CD's mixed product
/// through the last Langevin step, c = −drift).
pub struct HeldGrads {
    pub g: Vec<Buffer>,
    pub plus: Option<(f64, Vec<Buffer>)>,
}

/// An update computed but not yet adopted.
pub struct Update {
    /// Per parameter, the new p, m, [v], [ema] (layout order).
    next: Vec<Vec<Buffer>>,
    /// The gradient's global norm before clipping.
    pub norm: f64,
    /// 0 when every updated parameter is finite, NaN otherwise.
    pub bad: f64,
}

impl Resident {
    /// Compiles the update for `cfg` and uploads `optim`'s state for the
    /// parameters `ids` of `store`.
    pub fn new(
        backend: &Arc<dyn Backend>,
        cfg: &OptimConfig,
        store: &ParamStore,
        ids: &[ParamId],
        optim: &OptimState,
    ) -> Result<Resident, TrainError> {
        let shapes = (ids.iter())
            .map(|id| store.shape_of(*id))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| TrainError::Config("a trained parameter left the store".into()))?;
        let graph = optim::update_graph(cfg, &shapes);
        let kernel = backend
            .compile(&graph, DType::F32)
            .map_err(RuntimeError::Backend)?;
        let layout = UpdateLayout::new(cfg);
        let sizes: Vec<usize> = shapes.iter().map(|s| crate::ir::numel(s)).collect();
        let mut r = Resident {
            backend: backend.clone(),
            kernel,
            layout,
            state: Vec::new(),
            sizes,
            combine: None,
            home: true,
        };
        r.state = (0..ids.len())
            .map(|i| {
                (r.carried().iter())
                    .map(|&s| r.upload(host_slot(optim, s, i), r.sizes[i]))
                    .collect::<Result<Vec<_>, TrainError>>()
            })
            .collect::<Result<_, _>>()?;
        Ok(r)
    }

    /// The state slots kept here besides the parameter.
    fn carried(&self) -> Vec<Slot> {
        let mut s = self.layout.outputs();
        s.retain(|&s| s != Slot::P);
        s
    }

    fn upload(&self, v: Option<&Vec<f64>>, len: usize) -> Result<Buffer, TrainError> {
        let values: Vec<f32> = match v {
            Some(v) if v.len() == len => v.iter().map(|&x| x as f32).collect(),
            _ => {
                return Err(TrainError::Config(format!(
                    "the optimiser state does not match a parameter of {len} values"
                )));
            }
        };
        Ok(self
            .backend
            .upload(HostData::F32(&values))
            .map_err(RuntimeError::Backend)?)
    }

    /// Runs update number `t` (the step count after it) at rate `lr` on
    /// the parameters `params` (held, one per trained parameter) and
    /// `grads`; nothing changes until `adopt`.
    pub fn update(
        &mut self,
        cfg: &OptimConfig,
        t: u64,
        lr: f64,
        params: &[&Buffer],
        grads: Grads<'_>,
    ) -> Result<Update, TrainError> {
        let summed;
        let grads = match grads {
            Grads::Held(HeldGrads {
                g,
                plus: Some((c, h)),
            }) => {
                summed = HeldGrads {
                    g: self.sum(g, *c, h)?,
                    plus: None,
                };
                Grads::Held(&summed)
            }
            other => other,
        };
        let scalars: Vec<f32> = (optim::update_scalars(cfg, t, lr).iter())
            .map(|&v| v as f32)
            .collect();
        let host_grads: Vec<Vec<f32>> = match grads {
            Grads::Host(g) => (g.iter())
                .map(|v| v.iter().map(|&x| x as f32).collect())
                .collect(),
            Grads::Held(_) => Vec::new(),
        };
        let carried = self.carried();
        let mut args: Vec<Arg<'_>> = scalars.chunks(1).map(Arg::F32).collect();
        for (i, p) in params.iter().enumerate() {
            for slot in self.layout.inputs() {
                args.push(match (slot, &grads) {
                    (Slot::P, _) => Arg::Buffer(p),
                    (Slot::G, Grads::Held(g)) => Arg::Buffer(held_at(&g.g, i)?),
                    (Slot::G, Grads::Host(_)) => Arg::F32(vec_at(&host_grads, i)?),
                    (s, _) => {
                        let at = carried.iter().position(|&c| c == s);
                        let b = at.and_then(|at| self.state.get(i)?.get(at));
                        Arg::Buffer(b.ok_or_else(|| internal("optimiser state slot"))?)
                    }
                });
            }
        }
        let per = self.layout.outputs();
        let mut next: Vec<Vec<Buffer>> = (self.sizes.iter())
            .map(|&n| {
                (per.iter())
                    .map(|_| self.backend.alloc(n, DType::F32))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()
            .map_err(RuntimeError::Backend)?;
        let (mut norm, mut bad) = ([0f32], [0f32]);
        {
            let mut dests: Vec<Dest<'_>> = next.iter_mut().flatten().map(Dest::Buffer).collect();
            dests.push(Dest::F32(&mut norm));
            dests.push(Dest::F32(&mut bad));
            self.kernel
                .run_args(&args, &mut dests, 1)
                .map_err(RuntimeError::Backend)?;
        }
        Ok(Update {
            next,
            norm: norm[0] as f64,
            bad: bad[0] as f64,
        })
    }

    /// g + c·h, parameter by parameter, into new buffers.
    fn sum(&mut self, g: &[Buffer], c: f64, h: &[Buffer]) -> Result<Vec<Buffer>, TrainError> {
        if self.combine.is_none() {
            let graph = combine_graph(&self.sizes);
            let k = (self.backend.compile(&graph, DType::F32)).map_err(RuntimeError::Backend)?;
            self.combine = Some(k);
        }
        let kernel = self
            .combine
            .as_ref()
            .ok_or_else(|| internal("combine kernel"))?;
        let c = [c as f32];
        let mut args = vec![Arg::F32(&c)];
        for i in 0..self.sizes.len() {
            args.push(Arg::Buffer(held_at(g, i)?));
            args.push(Arg::Buffer(held_at(h, i)?));
        }
        let mut out = (self.sizes.iter())
            .map(|&n| self.backend.alloc(n, DType::F32))
            .collect::<Result<Vec<_>, _>>()
            .map_err(RuntimeError::Backend)?;
        let mut dests: Vec<Dest<'_>> = out.iter_mut().map(Dest::Buffer).collect();
        kernel
            .run_args(&args, &mut dests, 1)
            .map_err(RuntimeError::Backend)?;
        Ok(out)
    }

    /// Makes `u` the state: the moments stay here, the parameters become
    /// `store`'s next version, held where they are.
    pub fn adopt(
        &mut self,
        u: Update,
        store: &ParamStore,
        ids: &[ParamId],
    ) -> Result<(), TrainError> {
        let mut params = Vec::with_capacity(ids.len());
        self.state.clear();
        for mut per in u.next {
            // Layout order: p first, then the carried slots.
            params.push(per.remove(0));
            self.state.push(per);
        }
        self.home = false;
        store.adopt_held(&self.backend, ids, params)?;
        Ok(())
    }

    /// Downloads the moments and moving average into `optim` (the host
    /// copy a checkpoint writes); `optim.t` is the caller's.
    pub fn pull(&mut self, optim: &mut OptimState) -> Result<(), TrainError> {
        if self.home {
            return Ok(());
        }
        for (at, slot) in self.carried().into_iter().enumerate() {
            let host: &mut Vec<Vec<f64>> = match slot {
                Slot::M => &mut optim.m,
                Slot::V => &mut optim.v,
                Slot::Ema => match &mut optim.ema {
                    Some(e) => e,
                    None => continue,
                },
                Slot::P | Slot::G => continue,
            };
            host.resize_with(self.state.len(), Vec::new);
            for (h, per) in host.iter_mut().zip(&self.state) {
                let b = per
                    .get(at)
                    .ok_or_else(|| internal("optimiser state slot"))?;
                *h = self.backend.download(b).map_err(RuntimeError::Backend)?;
            }
        }
        self.home = true;
        Ok(())
    }
}

/// g_i + c·h_i for parameters of `sizes` values (inputs `c`, then `g{i}`,
/// `h{i}` per parameter; outputs `g{i}`; batch 1).
fn combine_graph(sizes: &[usize]) -> Graph {
    let mut g = Graph::new("gradient_sum");
    let c = g.input_node("c", vec![], InputKind::Shared);
    for (i, &n) in sizes.iter().enumerate() {
        let a = g.input_node(format!("g{i}"), vec![n], InputKind::Shared);
        let b = g.input_node(format!("h{i}"), vec![n], InputKind::Shared);
        let cb = g.mul(c, b);
        let sum = g.add_(a, cb);
        g.add_output(format!("g{i}"), sum, BatchReduce::PerSample);
    }
    g
}

/// `optim`'s host values of `slot` for parameter `i`.
fn host_slot(optim: &OptimState, slot: Slot, i: usize) -> Option<&Vec<f64>> {
    match slot {
        Slot::M => optim.m.get(i),
        Slot::V => optim.v.get(i),
        Slot::Ema => optim.ema.as_ref()?.get(i),
        Slot::P | Slot::G => None,
    }
}

fn held_at(g: &[Buffer], i: usize) -> Result<&Buffer, TrainError> {
    g.get(i).ok_or_else(|| internal("a gradient per parameter"))
}

fn vec_at(g: &[Vec<f32>], i: usize) -> Result<&[f32], TrainError> {
    g.get(i)
        .map(Vec::as_slice)
        .ok_or_else(|| internal("a gradient per parameter"))
}

fn internal(what: &str) -> TrainError {
    TrainError::Runtime(RuntimeError::Internal(format!(
        "resident optimiser: {what}"
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use crate::backend::{Backend, DType, StandIn};
    use crate::train::{Method, TrainConfig, Trainer};

    /// After the first iteration (which uploads θ and the optimiser's
    /// state), an iteration of every method uploads and downloads no
    /// parameter or moment (NCE reads its scalar log Z and sends up that
    /// scalar's gradient); `sync` then brings home θ, m, v and the EMA,
    /// one download each per parameter, and a second `sync` nothing.
    #[test]
    fn an_iteration_moves_no_parameter_or_moment() {
        let src = "energy e(x: [2]) = sum(mlp(x, [8, 1], act = swish)) + 0.1 * sum(x^2)\n";
        let data = crate::data::rng::normal(3, 400);
        for method in [
            Method::Cd,
            Method::Pcd,
            Method::Icd,
            Method::Ssm,
            Method::Nce,
        ] {
            let dev = Arc::new(StandIn::default());
            let backend: Arc<dyn Backend> = dev.clone();
            let program = crate::api::Program::from_source(src).unwrap();
            let e = program.energy_with("e", backend, DType::F32).unwrap();
            let mut cfg = TrainConfig::new(method);
            (cfg.iters, cfg.batch, cfg.sampler_steps, cfg.seed) = (6, 16, 3, 1);
            cfg.optim.ema = Some(0.9);
            if !method.samples_negatives() {
                cfg.l2 = 0.0;
            }
            cfg.buffer.reinit = 0.0;
            let mut t = Trainer::new(&e, &data, cfg).unwrap();
            assert!(t.on_device());
            let counts = || {
                (
                    dev.up.load(Ordering::Relaxed),
                    dev.down.load(Ordering::Relaxed),
                )
            };
            t.step().unwrap();
            let first = counts();
            assert!(
                first.0 > 0,
                "{method:?}: the first iteration uploads the state"
            );
            while !t.done() {
                let r = t.step().unwrap();
                assert!(r.rollback.is_none(), "{method:?}: {r:?}");
            }
            // NCE's loss reads log Z on the host, and its gradient goes up:
            // one scalar each way per iteration. CD's and PCD's negatives
            // stay on the device: the positives go up beside them, and
            // CD's fresh starts go up (PCD's buffer is there, and no start
            // is fresh at `reinit` 0).
            let (ups, reads) = match method {
                Method::Nce => (5, 5),
                Method::Pcd => (5, 0),
                Method::Cd => (10, 0),
                _ => (0, 0),
            };
            let now = counts();
            assert_eq!(
                now.0,
                first.0 + ups,
                "{method:?}: uploads after the first iteration"
            );
            assert_eq!(
                now.1,
                first.1 + reads,
                "{method:?}: downloads after the first iteration"
            );
            let first = now;
            t.sync().unwrap();
            // θ, m, v and the EMA per parameter, and PCD's buffer.
            let home = 4 * t.param_ids().len() + usize::from(method == Method::Pcd);
            assert_eq!(counts().1 - first.1, home, "{method:?}: the state");
            t.sync().unwrap();
            assert_eq!(
                counts().1 - first.1,
                home,
                "{method:?}: a second sync is free"
            );
        }
    }
}
