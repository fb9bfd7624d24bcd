//! A compiled energy as the engine's [`Target`]: every move is one fused
//! kernel (`runtime::steps`) compiled once per run for the backend's
//! single-thread worker form (the engine parallelises over chains itself),
//! reading the program's parameter store through its dtype view. Inputs are
//! bound by role — positions, noise, step sizes, masses, the conditioning
//! input, parameters — so no input can ever be fed to the wrong slot.
//!
//! [`DensityOf`] is the same energy seen as a [`BatchEnergy`] in f64, for
//! plots of a density under the draws.

use std::sync::Arc;

use super::BatchEnergy;
use super::config::{Method, PtMove, SamplerConfig};
use super::engine::{
    History, MhRequest, MhState, Phase, Proposal, Target, UldState, Window, ula_move,
};
use crate::autodiff::derived::{KernelSpec, derive};
use crate::backend::{
    Arg, Backend, Bind, Buffer, DType, Dest, Kernel, NoiseFeed, StepLoop, UniformFeed,
};
use crate::ir::{Graph, InputKind, numel};
use crate::opt;
use crate::runtime::steps::{self, HmcMove, MhKind, StepGraph, StepRole, UlaMove, UldMove};
use crate::runtime::{CompiledEnergy, HeldView, RuntimeError, Scalar};

type R<T> = Result<T, RuntimeError>;

/// What feeds one kernel input.
#[derive(Clone, Copy, Debug)]
enum Feed {
    Step(StepRole),
    Param(usize),
}

struct Compiled {
    kernel: Arc<dyn Kernel>,
    feeds: Vec<Feed>,
}

impl Compiled {
    fn new(
        backend: &dyn Backend,
        energy: &CompiledEnergy,
        sg: StepGraph,
        dtype: DType,
    ) -> R<Compiled> {
        let g = opt::optimize(&sg.graph, opt::Config::default());
        let kernel = backend.compile(&g, dtype).map_err(RuntimeError::Backend)?;
        let feeds = kernel
            .graph()
            .inputs()
            .iter()
            .zip(&sg.roles)
            .map(|(d, role)| match role {
                StepRole::Param => energy
                    .store()
                    .id(&d.name)
                    .map(|id| Feed::Param(id.0 as usize))
                    .ok_or_else(|| RuntimeError::UnknownParam(d.name.clone())),
                r => Ok(Feed::Step(*r)),
            })
            .collect::<R<Vec<_>>>()?;
        Ok(Compiled { kernel, feeds })
    }

    /// A derivative kernel of the energy (value, or value and ∇ₓE).
    fn of_spec(
        backend: &dyn Backend,
        energy: &CompiledEnergy,
        spec: KernelSpec,
        dtype: DType,
    ) -> R<Compiled> {
        let g = derive(energy.energy_graph(), spec).map_err(RuntimeError::Derive)?;
        Compiled::new(backend, energy, StepGraph::of(g), dtype)
    }
}

/// The per-call inputs of a step kernel, by role.
#[derive(Clone, Copy)]
struct Feeds<'a, T> {
    x: &'a [T],
    p: &'a [T],
    grad: &'a [T],
    noise: &'a [T],
    step: &'a [T],
    inv_mass: &'a [T],
    beta: &'a [T],
}

/// An energy compiled for the engine, in dtype `T`.
pub struct CompiledTarget<T: Scalar> {
    dim: usize,
    /// The conditioning vector repeated for the largest block.
    cond: Vec<T>,
    cond_dim: usize,
    energy: Compiled,
    energy_grad: Compiled,
    /// The sampler's move.
    step: Compiled,
    /// MALA's or the random walk's whole transition, for windows of them on
    /// resident buffers (`None`: the backend prefers one call per proposal).
    transition: Option<(MhKind, Compiled)>,
    /// The parameters (the store's view at `version`), as backend buffers:
    /// kernels read them, multi-step calls bind them.
    params: Vec<Buffer>,
    /// The same values held on the device, on a backend that holds
    /// buffers: uploaded once per version for every kernel of the store.
    held: Option<Arc<HeldView>>,
    version: u64,
}

impl<T: Scalar> CompiledTarget<T> {
    /// Compiles the kernels `sampler` needs. `cond` is one conditioning
    /// vector shared by every chain; `max_block` the most chains per call.
    pub fn new(
        energy: &CompiledEnergy,
        sampler: &SamplerConfig,
        cond: Option<&[f64]>,
        max_block: usize,
    ) -> R<CompiledTarget<T>> {
        if T::DTYPE != energy.dtype() {
            return Err(RuntimeError::DType {
                compiled: energy.dtype().name(),
                called: T::DTYPE.name(),
            });
        }
        let cond_dim = energy.cond_dim();
        check_cond(cond, cond_dim)?;
        let worker = energy.backend().worker();
        let backend: &dyn Backend = worker.as_deref().unwrap_or(energy.backend().as_ref());
        let dtype = T::DTYPE;
        let graph: &Graph = energy.energy_graph();
        let step = match &sampler.method {
            Method::Ula(o) => steps::ula(graph, ula_move(sampler.step, o)),
            Method::Mala => steps::mala(graph),
            Method::Rwmh => steps::rwmh(graph),
            Method::Hmc { .. } | Method::Nuts { .. } => steps::leapfrog(graph),
            Method::Pt(o) => match o.moves {
                PtMove::Mala => steps::mala_tempered(graph),
                PtMove::Rwmh => steps::rwmh(graph),
            },
            Method::Uld(o) => steps::uld(graph, UldMove::new(sampler.step, o.friction)),
        }
        .map_err(RuntimeError::Derive)?;
        let one: Vec<T> = cond
            .unwrap_or(&[])
            .iter()
            .map(|&v| T::from_f64(v))
            .collect();
        let kind = match &sampler.method {
            Method::Mala => Some(MhKind::Mala),
            Method::Rwmh => Some(MhKind::RandomWalk),
            Method::Hmc { leapfrog } => Some(MhKind::Hmc(HmcMove {
                leapfrog: *leapfrog,
                jitter: sampler.step_jitter,
                max_error: sampler.max_energy_error,
            })),
            _ => None,
        };
        let transition = match kind.filter(|_| energy.backend().metropolis_windows()) {
            Some(kind) => transition(backend, energy, graph, kind, dtype)?.map(|k| (kind, k)),
            None => None,
        };
        CompiledTarget {
            dim: energy.dim(),
            cond: (0..max_block).flat_map(|_| one.iter().copied()).collect(),
            cond_dim,
            energy: Compiled::of_spec(backend, energy, KernelSpec::ENERGY, dtype)?,
            energy_grad: Compiled::of_spec(backend, energy, KernelSpec::ENERGY_GRAD, dtype)?,
            step: Compiled::new(backend, energy, step, dtype)?,
            transition,
            params: Vec::new(),
            held: None,
            version: u64::MAX,
        }
        .with_params(energy)
    }

    /// The scratch one call of each kernel may keep (energy, gradient,
    /// move), and with Metropolis windows a window's history, held twice
    /// (where the backend records it and on the host).
    pub fn scratch_bytes(&self) -> u64 {
        let history = match self.transition {
            Some(_) => 2 * super::engine::WINDOW_BYTES as u64,
            None => 0,
        };
        self.kernels()
            .map(|c| c.kernel.scratch_bytes())
            .fold(history, u64::saturating_add)
    }

    /// Readies every kernel's arenas for `workers` blocks calling at once.
    pub fn prepare(&self, workers: usize) {
        for c in self.kernels() {
            c.kernel.prepare(workers);
        }
    }

    fn kernels(&self) -> impl Iterator<Item = &Compiled> {
        [&self.energy, &self.energy_grad, &self.step]
            .into_iter()
            .chain(self.transition.as_ref().map(|t| &t.1))
    }

    /// Replaces the conditioning vector every chain reads (training a
    /// conditional energy samples one concept's chains at a time).
    pub fn set_cond(&mut self, cond: &[f64]) -> R<()> {
        check_cond(Some(cond), self.cond_dim)?;
        let blocks = self.cond.len() / self.cond_dim.max(1);
        self.cond.clear();
        for _ in 0..blocks {
            self.cond.extend(cond.iter().map(|&v| T::from_f64(v)));
        }
        Ok(())
    }

    fn with_params(mut self, energy: &CompiledEnergy) -> R<Self> {
        self.refresh(energy)?;
        Ok(self)
    }

    /// Re-reads the parameters when the store changed since the last read
    /// (an optimiser step between training iterations); the kernels stay.
    /// On a device that holds buffers the store's held view is bound and
    /// no host copy is made (the newest values may exist only there).
    pub fn refresh(&mut self, energy: &CompiledEnergy) -> R<()> {
        let store = energy.store();
        if store.version() == self.version {
            return Ok(());
        }
        let backend = energy.backend();
        if backend.holds_buffers() {
            let view = store.held_view(backend.as_ref())?;
            self.version = view.version;
            self.params.clear();
            self.held = Some(view);
            return Ok(());
        }
        let view = store.view::<T>();
        self.params = (view.values.iter())
            .map(|v| T::into_buffer(v.clone()))
            .collect();
        self.held = None;
        self.version = view.version;
        Ok(())
    }

    /// The parameters as multi-step calls bind them: held on the device
    /// where they are, else host buffers.
    /// A window of ULA steps on backend buffers `[x, noise, next]` (`n × dim`
    /// each; held ones stay where they are): the positions move in `x`.
    pub fn ula_steps_on(
        &self,
        w: Window,
        state: &mut [Buffer; 3],
        frozen: &mut [Option<u64>],
    ) -> R<()> {
        const X: usize = 0;
        const NOISE: usize = 1;
        const NEXT: usize = 2;
        let k = &self.step;
        let cond = self.cond_buffer(w.n);
        let binds: Vec<Bind> = k
            .feeds
            .iter()
            .map(|f| match f {
                Feed::Param(i) => Bind::Fixed(*i),
                Feed::Step(StepRole::Noise) => Bind::State(NOISE),
                Feed::Step(StepRole::Cond) => Bind::Fixed(self.param_buffers().len()),
                Feed::Step(_) => Bind::State(X),
            })
            .collect();
        let fixed: Vec<&Buffer> = self
            .param_buffers()
            .iter()
            .chain(std::iter::once(&cond))
            .collect();
        let lp = langevin_loop(w, &binds, &[NEXT], &[(NEXT, X)], NOISE);
        k.kernel
            .run_steps(&lp, &fixed, state, w.n, frozen)
            .map_err(RuntimeError::Backend)
    }

    fn param_buffers(&self) -> &[Buffer] {
        match &self.held {
            Some(h) => &h.buffers,
            None => &self.params,
        }
    }

    /// The conditioning vector repeated for `n` chains, as a buffer.
    fn cond_buffer(&self, n: usize) -> Buffer {
        let len = (n * self.cond_dim).min(self.cond.len());
        T::into_buffer(self.cond[..len].to_vec())
    }

    fn feeds<'a>(x: &'a [T]) -> Feeds<'a, T> {
        Feeds {
            x,
            p: &[],
            grad: &[],
            noise: &[],
            step: &[],
            inv_mass: &[],
            beta: &[],
        }
    }

    fn call(&self, k: &Compiled, f: Feeds<'_, T>, n: usize, outs: &mut [&mut [T]]) -> R<()> {
        let cond = &self.cond[..(n * self.cond_dim).min(self.cond.len())];
        let g = k.kernel.graph();
        // Inputs are gathered on the stack: no allocation per step for
        // kernels of up to 32 inputs (a step kernel reads 2–5 plus the
        // parameters).
        let mut stack: [&[T]; 32] = [&[]; 32];
        let mut heap: Vec<&[T]> = Vec::new();
        let many = k.feeds.len() > stack.len();
        for (i, (feed, decl)) in k.feeds.iter().zip(g.inputs()).enumerate() {
            let data: &[T] = match feed {
                // Bound below as held; the kernel checks its length.
                Feed::Param(_) if self.held.is_some() => &[],
                Feed::Param(i) => self
                    .params
                    .get(*i)
                    .and_then(T::slice)
                    .ok_or_else(|| RuntimeError::Internal("parameter buffer".into()))?,
                Feed::Step(r) => match r {
                    StepRole::X => f.x,
                    StepRole::Momentum => f.p,
                    StepRole::Grad => f.grad,
                    StepRole::Noise => f.noise,
                    StepRole::Step => f.step,
                    StepRole::InvMass => f.inv_mass,
                    StepRole::Beta => f.beta,
                    // Inputs of a whole transition only, which runs through
                    // `run_steps`, never through a single call.
                    StepRole::Energy
                    | StepRole::Uniform
                    | StepRole::Jitter
                    | StepRole::Live
                    | StepRole::AdaptOn
                    | StepRole::AdaptMu
                    | StepRole::AdaptTarget
                    | StepRole::AdaptError
                    | StepRole::AdaptCount => &[],
                    StepRole::Cond => cond,
                    StepRole::Param => &[],
                },
            };
            let want = match feed {
                Feed::Param(_) if self.held.is_some() => 0,
                _ => numel(&decl.shape) * if decl.kind == InputKind::Sample { n } else { 1 },
            };
            if data.len() < want {
                return Err(RuntimeError::InputLength {
                    input: "step input",
                    expected: want,
                    batch: n,
                    found: data.len(),
                });
            }
            if many {
                heap.push(&data[..want]);
            } else {
                stack[i] = &data[..want];
            }
        }
        let inputs = if many {
            &heap[..]
        } else {
            &stack[..k.feeds.len()]
        };
        if let Some(h) = &self.held {
            let args: Vec<Arg<'_>> = (k.feeds.iter().zip(inputs))
                .map(|(feed, &data)| match feed {
                    Feed::Param(i) => h.buffers.get(*i).map_or(T::arg(&[]), Arg::Buffer),
                    Feed::Step(_) => T::arg(data),
                })
                .collect();
            let mut dests: Vec<Dest<'_>> = outs.iter_mut().map(|o| T::dest(o)).collect();
            return (k.kernel)
                .run_args(&args, &mut dests, n)
                .map_err(RuntimeError::Backend);
        }
        T::run(k.kernel.as_ref(), inputs, outs, n).map_err(RuntimeError::Backend)
    }
}

impl<T: Scalar> Target<T> for CompiledTarget<T> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn eval(&self, x: &[T], n: usize, e: &mut [T], g: Option<&mut [T]>) -> R<()> {
        let f = Self::feeds(x);
        match g {
            Some(g) => self.call(&self.energy_grad, f, n, &mut [e, g]),
            None => self.call(&self.energy, f, n, &mut [e]),
        }
    }

    fn ula_steps(
        &self,
        _m: &UlaMove,
        w: Window,
        x: &mut Vec<T>,
        noise: &mut Vec<T>,
        y: &mut Vec<T>,
        frozen: &mut [Option<u64>],
    ) -> R<()> {
        let mut state = [
            T::into_buffer(std::mem::take(x)),
            T::into_buffer(std::mem::take(noise)),
            T::into_buffer(std::mem::take(y)),
        ];
        let r = self.ula_steps_on(w, &mut state, frozen);
        let [bx, bn, by] = state;
        let lost = || RuntimeError::Internal("a step buffer changed dtype".into());
        *x = T::from_buffer(bx).ok_or_else(lost)?;
        *noise = T::from_buffer(bn).ok_or_else(lost)?;
        *y = T::from_buffer(by).ok_or_else(lost)?;
        r
    }

    fn uld_steps(
        &self,
        _m: &UldMove,
        w: Window,
        st: UldState<'_, T>,
        frozen: &mut [Option<u64>],
    ) -> R<()> {
        // State buffers: the carried state (x, v, ∇E, E), the noise, and
        // the step's outputs in the graph's order (x, p, grad, energy).
        const X: usize = 0;
        const V: usize = 1;
        const G: usize = 2;
        const E: usize = 3;
        const NOISE: usize = 4;
        const OUT: usize = 5;
        let k = &self.step;
        let binds: Vec<Bind> = k
            .feeds
            .iter()
            .map(|f| match f {
                Feed::Param(i) => Bind::Fixed(*i),
                Feed::Step(StepRole::Cond) => Bind::Fixed(self.param_buffers().len()),
                Feed::Step(StepRole::Momentum) => Bind::State(V),
                Feed::Step(StepRole::Grad) => Bind::State(G),
                Feed::Step(StepRole::Noise) => Bind::State(NOISE),
                Feed::Step(_) => Bind::State(X),
            })
            .collect();
        let cond = self.cond_buffer(w.n);
        let fixed: Vec<&Buffer> = self
            .param_buffers()
            .iter()
            .chain(std::iter::once(&cond))
            .collect();
        let (n, d) = (w.n, self.dim);
        let zeros = |len: usize| T::into_buffer(vec![T::zero(); len]);
        let mut state = vec![
            T::into_buffer(std::mem::take(st.x)),
            T::into_buffer(std::mem::take(st.v)),
            T::into_buffer(std::mem::take(st.g)),
            T::into_buffer(std::mem::take(st.e)),
            zeros(n * d),
            zeros(n * d),
            zeros(n * d),
            zeros(n * d),
            zeros(n),
        ];
        let lp = langevin_loop(
            w,
            &binds,
            &[OUT, OUT + 1, OUT + 2, OUT + 3],
            &[(OUT, X), (OUT + 1, V), (OUT + 2, G), (OUT + 3, E)],
            NOISE,
        );
        let r = k.kernel.run_steps(&lp, &fixed, &mut state, n, frozen);
        let mut take = |i: usize| {
            T::from_buffer(std::mem::take(&mut state[i]))
                .ok_or_else(|| RuntimeError::Internal("a ULD buffer changed dtype".into()))
        };
        *st.x = take(X)?;
        *st.v = take(V)?;
        *st.g = take(G)?;
        *st.e = take(E)?;
        r.map_err(RuntimeError::Backend)
    }

    fn mh_window(&self, req: MhRequest, w: Window, st: MhState<'_, T>) -> R<Option<History<T>>> {
        let k = match &self.transition {
            Some((kind, k)) if *kind == req.kind => k,
            _ => return Ok(None),
        };
        // State buffers: the carried state (the step and its dual
        // averaging, which only warm-up changes), the per-step draws, the
        // transition's outputs, and the history each recorded output leaves.
        // Warm-up and sampling bind, carry and record the same buffers, so
        // that a device compiles one loop for both.
        const X: usize = 0;
        const E: usize = 1;
        const G: usize = 2;
        const NOISE: usize = 3;
        const U: usize = 4;
        const JITTER: usize = 5;
        const STEP: usize = 6;
        const ERROR: usize = 7;
        const COUNT: usize = 8;
        const OUT: usize = 9;
        const HIST: usize = OUT + ORDER.len();
        // Outputs by name: the carried state (into X, E, G), the statistics,
        // then the step adaptation's (carried into STEP, ERROR, COUNT).
        // Recorded: the state but the gradient, the statistics and, for
        // HMC, the step each transition used (its jittered ε, which the
        // final step's fit reads; MALA's and the walk's is the carried
        // step itself). What is recorded depends on the kind alone, so
        // one kernel keeps one loop layout.
        const ORDER: [&str; 10] = [
            "x",
            "energy",
            "grad",
            "accept",
            "divergent",
            "hamiltonian",
            "step",
            "da_error",
            "da_count",
            "used",
        ];
        let adapting = st.adapt.is_some();
        let hmc = matches!(req.kind, MhKind::Hmc(_));
        let p = self.param_buffers().len();
        let binds: Vec<Bind> = k
            .feeds
            .iter()
            .map(|f| match f {
                Feed::Param(i) => Bind::Fixed(*i),
                Feed::Step(r) => match r {
                    StepRole::Cond => Bind::Fixed(p),
                    StepRole::Step => Bind::State(STEP),
                    StepRole::InvMass => Bind::Fixed(p + 1),
                    StepRole::Live => Bind::Fixed(p + 2),
                    StepRole::AdaptOn => Bind::Fixed(p + 3),
                    StepRole::AdaptMu => Bind::Fixed(p + 4),
                    StepRole::AdaptTarget => Bind::Fixed(p + 5),
                    StepRole::AdaptError => Bind::State(ERROR),
                    StepRole::AdaptCount => Bind::State(COUNT),
                    StepRole::Energy => Bind::State(E),
                    StepRole::Grad => Bind::State(G),
                    StepRole::Noise => Bind::State(NOISE),
                    StepRole::Uniform => Bind::State(U),
                    StepRole::Jitter => Bind::State(JITTER),
                    _ => Bind::State(X),
                },
            })
            .collect();
        let mut outputs = Vec::new();
        let mut carry = Vec::new();
        let mut record = Vec::new();
        for out in &k.kernel.graph().outputs {
            let j = ORDER
                .iter()
                .position(|n| *n == out.name)
                .ok_or_else(|| RuntimeError::Internal(format!("transition output {}", out.name)))?;
            outputs.push(OUT + j);
            match j {
                0..3 => carry.push((OUT + j, j)),
                6..9 => carry.push((OUT + j, STEP + j - 6)),
                _ => {}
            }
            if !matches!(j, 2 | 6..9) && (j != 9 || hmc) {
                record.push((OUT + j, HIST + j));
            }
        }
        let (n, d) = (w.n, self.dim);
        let cond = self.cond_buffer(n);
        let fixed: Vec<&Buffer> = self.param_buffers().iter().chain([&cond]).collect();
        let zeros = |len: usize| T::into_buffer(vec![T::zero(); len]);
        let [mu, target, error, count] = match &st.adapt {
            Some(a) => [a.mu, a.target, a.error, a.count].map(<[T]>::to_vec),
            None => std::array::from_fn(|_| vec![T::zero(); n]),
        };
        let on = T::from_f64(if adapting { 1.0 } else { 0.0 });
        let extra = [
            T::into_buffer(st.inv_mass.to_vec()),
            T::into_buffer(st.live.to_vec()),
            T::into_buffer(vec![on; n]),
            T::into_buffer(mu),
            T::into_buffer(target),
        ];
        let fixed: Vec<&Buffer> = fixed.into_iter().chain(&extra).collect();
        let has_grad = req.kind == MhKind::Mala || hmc;
        let mut state: Vec<Buffer> = vec![
            T::into_buffer(std::mem::take(st.x)),
            T::into_buffer(std::mem::take(st.e)),
            T::into_buffer(std::mem::take(st.g)),
            zeros(n * d),
            zeros(n),
            zeros(if hmc { n } else { 0 }),
            T::into_buffer(st.step.to_vec()),
            T::into_buffer(error),
            T::into_buffer(count),
        ];
        // The outputs, in ORDER.
        state.extend([
            zeros(n * d),
            zeros(n),
            zeros(if has_grad { n * d } else { 0 }),
            zeros(n),
            zeros(n),
            zeros(if hmc { n } else { 0 }),
            zeros(n),
            zeros(n),
            zeros(n),
            zeros(n),
        ]);
        state.extend(ORDER.iter().map(|_| zeros(0)));
        let decision = UniformFeed {
            buffer: U,
            seed: w.seed,
            stream: req.stream,
            first: req.first,
        };
        let jitter = UniformFeed {
            buffer: JITTER,
            stream: req.jitter_stream,
            ..decision
        };
        let feeds = [decision, jitter];
        let uniforms = if hmc { &feeds[..] } else { &feeds[..1] };
        let lp = StepLoop {
            first_step: w.t0,
            steps: w.steps,
            inputs: &binds,
            outputs: &outputs,
            carry: &carry,
            noise: Some(NoiseFeed {
                buffer: NOISE,
                seed: w.seed,
                offset: w.offset,
            }),
            uniforms,
            record: &record,
            freeze: false,
        };
        let mut frozen = vec![None; n];
        let r = k.kernel.run_steps(&lp, &fixed, &mut state, n, &mut frozen);
        let mut take = |i: usize| {
            T::from_buffer(std::mem::take(&mut state[i]))
                .ok_or_else(|| RuntimeError::Internal("a transition buffer changed dtype".into()))
        };
        *st.x = take(X)?;
        *st.e = take(E)?;
        *st.g = take(G)?;
        r.map_err(RuntimeError::Backend)?;
        Ok(Some(History {
            x: take(HIST)?,
            e: take(HIST + 1)?,
            accept: take(HIST + 3)?,
            divergent: take(HIST + 4)?,
            hamiltonian: take(HIST + 5)?,
            used: take(HIST + 9)?,
        }))
    }

    fn mala(
        &self,
        s: Proposal<'_, T>,
        y: &mut [T],
        ey: &mut [T],
        gy: &mut [T],
        log_q: &mut [T],
    ) -> R<()> {
        let f = Feeds {
            grad: s.grad,
            noise: s.noise,
            step: s.step,
            inv_mass: s.inv_mass,
            beta: s.beta,
            ..Self::feeds(s.x)
        };
        self.call(&self.step, f, s.n, &mut [y, ey, gy, log_q])
    }

    fn rwmh(&self, s: Proposal<'_, T>, y: &mut [T], ey: &mut [T]) -> R<()> {
        let f = Feeds {
            noise: s.noise,
            step: s.step,
            inv_mass: s.inv_mass,
            ..Self::feeds(s.x)
        };
        self.call(&self.step, f, s.n, &mut [y, ey])
    }

    fn leapfrog(&self, s: Proposal<'_, T>, p: &[T], out: Phase<'_, T>) -> R<()> {
        let f = Feeds {
            p,
            grad: s.grad,
            step: s.step,
            inv_mass: s.inv_mass,
            ..Self::feeds(s.x)
        };
        self.call(&self.step, f, s.n, &mut [out.x, out.p, out.g, out.e])
    }

    fn uld(&self, _m: &UldMove, s: Proposal<'_, T>, p: &[T], out: Phase<'_, T>) -> R<()> {
        // The move's h and γ are constants of the compiled step.
        let f = Feeds {
            p,
            grad: s.grad,
            noise: s.noise,
            ..Self::feeds(s.x)
        };
        self.call(&self.step, f, s.n, &mut [out.x, out.p, out.g, out.e])
    }
}

/// A window of ULA or ULD steps: fresh normals into state buffer `noise`
/// before each step, each step's `outputs` carried into its inputs, and a
/// chain whose carried state turns non-finite frozen whole.
fn langevin_loop<'a>(
    w: Window,
    inputs: &'a [Bind],
    outputs: &'a [usize],
    carry: &'a [(usize, usize)],
    noise: usize,
) -> StepLoop<'a> {
    StepLoop {
        first_step: w.t0,
        steps: w.steps,
        inputs,
        outputs,
        carry,
        noise: Some(NoiseFeed {
            buffer: noise,
            seed: w.seed,
            offset: w.offset,
        }),
        uniforms: &[],
        record: &[],
        freeze: true,
    }
}

/// The most nodes a whole transition's graph may have for windows of it: an
/// HMC transition unrolls its trajectory (every leapfrog step inlines the
/// gradient), so a long trajectory of a large network stays with one kernel
/// call per leapfrog step rather than compiling an enormous kernel.
const MAX_TRANSITION_NODES: usize = 20_000;

/// The transition kernel of `kind`, or `None` when its graph is too large.
fn transition(
    backend: &dyn Backend,
    energy: &CompiledEnergy,
    graph: &Graph,
    kind: MhKind,
    dtype: DType,
) -> R<Option<Compiled>> {
    if let MhKind::Hmc(m) = kind {
        // Each leapfrog step is about one gradient graph's worth of nodes.
        let per_step = graph.len().saturating_mul(3).saturating_add(40);
        if m.leapfrog.saturating_mul(per_step) > MAX_TRANSITION_NODES {
            return Ok(None);
        }
    }
    let sg = steps::mh_transition(graph, kind, super::adapt::RULE).map_err(RuntimeError::Derive)?;
    if sg.graph.len() > MAX_TRANSITION_NODES {
        return Ok(None);
    }
    Ok(Some(Compiled::new(backend, energy, sg, dtype)?))
}

/// A conditioning vector must be given exactly when the energy has one, with
/// its number of values.
fn check_cond(cond: Option<&[f64]>, want: usize) -> R<()> {
    match (cond, want) {
        (None, 0) => Ok(()),
        (None, n) => Err(RuntimeError::Config(format!(
            "this energy is conditional: it needs a conditioning vector of {n} values"
        ))),
        (Some(c), n) if c.len() != n => Err(RuntimeError::Config(format!(
            "the conditioning vector needs {n} values, found {}",
            c.len()
        ))),
        _ => Ok(()),
    }
}

/// A compiled energy as an f64 [`BatchEnergy`] (plots draw densities with
/// it), the conditioning input fixed and repeated across the batch.
pub struct DensityOf<'a> {
    energy: &'a CompiledEnergy,
    cond: Option<Vec<f64>>,
}

impl<'a> DensityOf<'a> {
    pub fn new(energy: &'a CompiledEnergy, cond: Option<Vec<f64>>) -> R<DensityOf<'a>> {
        check_cond(cond.as_deref(), energy.cond_dim())?;
        Ok(DensityOf { energy, cond })
    }

    fn eval<T: Scalar>(&self, x: &[f64], batch: usize, e: &mut [f64], g: Option<&mut [f64]>) {
        let xs: Vec<T> = x.iter().map(|&v| T::from_f64(v)).collect();
        let c: Option<Vec<T>> = self.cond.as_ref().map(|c| {
            (0..batch)
                .flat_map(|_| c.iter().map(|&v| T::from_f64(v)))
                .collect()
        });
        // A failed call (impossible once sizes were checked) draws no density.
        let fill_nan = |e: &mut [f64]| e.iter_mut().for_each(|v| *v = f64::NAN);
        match g {
            Some(g) => match self.energy.energy_and_grad_x(&xs, c.as_deref(), batch) {
                Ok(out) => {
                    widen_into(&out.energy, e);
                    widen_into(&out.grad_x, g);
                }
                Err(_) => fill_nan(e),
            },
            None => match self.energy.energy(&xs, c.as_deref(), batch) {
                Ok(out) => widen_into(&out, e),
                Err(_) => fill_nan(e),
            },
        }
    }
}

fn widen_into<T: Scalar>(src: &[T], dst: &mut [f64]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f64();
    }
}

impl BatchEnergy for DensityOf<'_> {
    fn dim(&self) -> usize {
        self.energy.dim()
    }
    fn energy(&self, x: &[f64], batch: usize, e: &mut [f64]) {
        match self.energy.dtype() {
            DType::F64 => self.eval::<f64>(x, batch, e, None),
            DType::F32 => self.eval::<f32>(x, batch, e, None),
        }
    }
    fn energy_grad(&self, x: &[f64], batch: usize, e: &mut [f64], g: &mut [f64]) {
        match self.energy.dtype() {
            DType::F64 => self.eval::<f64>(x, batch, e, Some(g)),
            DType::F32 => self.eval::<f32>(x, batch, e, Some(g)),
        }
    }
    fn image_shape(&self) -> Option<Vec<usize>> {
        let shape = self.energy.x_shape();
        (shape.len() >= 2).then_some(shape)
    }
}
