//! The runtime: definitions compiled for one backend and dtype, reading their
//! parameters from a shared [`ParamStore`], callable on batches through typed
//! kernel specs ([`KernelSpec`]: values, pullbacks by a unit or per-sample
//! seed, HVPs, mixed products). Each spec's graph is derived, optimised,
//! verified and compiled once per definition and cached; results come back
//! by typed [`Slot`], inputs are bound by role ([`Role`]), never by name.
//!
//! `steps` writes sampler steps as IR (ULA, the MALA and RWMH proposals, a
//! leapfrog step) so a backend fuses each into one kernel (the sampling
//! engine, `sample::engine`, runs chains on them).

pub mod params;
pub mod steps;

use std::sync::{Arc, Mutex};

use crate::autodiff::derived::derive;
pub use crate::autodiff::derived::{KernelSpec, Pullback, Seed, Slot};
use crate::backend::{Arg, Backend, BackendError, Buffer, DType, Dest, Kernel, noise};
use crate::ir::Real;
use crate::ir::{BatchReduce, Graph, InputKind, numel};
use crate::opt;
pub use params::{HeldView, ParamId, ParamStore, ParamView};

/// What goes wrong in the runtime: each kind its own variant, rendered by
/// the caller (the CLI prefixes `error:`; scripts attach a span).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    #[error("no value for parameter `{0}`")]
    UnknownParam(String),
    #[error("parameter `{name}` needs {expected} values, found {found}")]
    ParamLength {
        name: String,
        expected: usize,
        found: usize,
    },
    #[error("parameter `{name}` has shape {expected:?} in the store, the graph reads {found:?}")]
    ParamShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("this kernel was compiled for {compiled}, called with {called}")]
    DType {
        compiled: &'static str,
        called: &'static str,
    },
    #[error("the {backend} backend does not run {dtype}{}", dtype_hint(backend))]
    UnsupportedDType {
        backend: &'static str,
        dtype: &'static str,
    },
    #[error("input `{input}` needs {expected} values for a batch of {batch}, found {found}")]
    InputLength {
        input: &'static str,
        expected: usize,
        batch: usize,
        found: usize,
    },
    #[error("this {what} needs {needs}")]
    MissingInput {
        what: &'static str,
        needs: &'static str,
    },
    #[error("cannot build the kernel: {0}")]
    Derive(String),
    /// An `ndarray` batch whose shape does not fit the definition.
    #[error("wrong batch shape: {0}")]
    BatchShape(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The user asked the run to stop (`crate::interrupt`).
    #[error("interrupted")]
    Interrupted,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

/// Element types a compiled definition can be called with.
pub trait Scalar: Real {
    const DTYPE: DType;
    fn run(
        k: &dyn Kernel,
        inputs: &[&[Self]],
        outputs: &mut [&mut [Self]],
        batch: usize,
    ) -> Result<(), BackendError>;
    fn cached_view(store: &ParamStore) -> Arc<ParamView<Self>>;
    /// Standard normals for counter positions `start..` of stream `key`
    /// (`noise::fill_normal_f32`, or `fill_normal_f64` with 53-bit uniforms;
    /// `tmp` is scratch a dtype may use).
    fn fill_normal(key: u64, start: u64, out: &mut [Self], tmp: &mut [f32]);
    /// Whether every value is finite (a vectorised scan: the engine checks
    /// every chain after every Langevin step).
    fn all_finite(v: &[Self]) -> bool;
    /// Moves values into a host buffer of this dtype (no copy).
    fn into_buffer(v: Vec<Self>) -> Buffer;
    /// Moves values out of a host buffer of this dtype (no copy).
    fn from_buffer(b: Buffer) -> Option<Vec<Self>>;
    /// The values of a host buffer of this dtype.
    fn slice(b: &Buffer) -> Option<&[Self]>;
    /// Host values as a call input.
    fn arg(v: &[Self]) -> Arg<'_>;
    /// Host memory as a call output.
    fn dest(v: &mut [Self]) -> Dest<'_>;
}

impl Scalar for f64 {
    const DTYPE: DType = DType::F64;
    fn run(
        k: &dyn Kernel,
        inputs: &[&[f64]],
        outputs: &mut [&mut [f64]],
        batch: usize,
    ) -> Result<(), BackendError> {
        k.run_f64(inputs, outputs, batch)
    }
    fn cached_view(store: &ParamStore) -> Arc<ParamView<f64>> {
        store.view_f64()
    }
    fn fill_normal(key: u64, start: u64, out: &mut [f64], _tmp: &mut [f32]) {
        noise::fill_normal_f64(key, start, out);
    }
    fn all_finite(v: &[f64]) -> bool {
        crate::backend::all_finite_f64(v)
    }
    fn into_buffer(v: Vec<f64>) -> Buffer {
        Buffer::F64(v)
    }
    fn from_buffer(b: Buffer) -> Option<Vec<f64>> {
        match b {
            Buffer::F64(v) => Some(v),
            Buffer::F32(_) | Buffer::Held(_) => None,
        }
    }
    fn slice(b: &Buffer) -> Option<&[f64]> {
        match b {
            Buffer::F64(v) => Some(v),
            Buffer::F32(_) | Buffer::Held(_) => None,
        }
    }
    fn arg(v: &[f64]) -> Arg<'_> {
        Arg::F64(v)
    }
    fn dest(v: &mut [f64]) -> Dest<'_> {
        Dest::F64(v)
    }
}

impl Scalar for f32 {
    const DTYPE: DType = DType::F32;
    fn run(
        k: &dyn Kernel,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        batch: usize,
    ) -> Result<(), BackendError> {
        k.run_f32(inputs, outputs, batch)
    }
    fn cached_view(store: &ParamStore) -> Arc<ParamView<f32>> {
        store.view_f32()
    }
    fn fill_normal(key: u64, start: u64, out: &mut [f32], _tmp: &mut [f32]) {
        noise::fill_normal_f32(key, start, out);
    }
    fn all_finite(v: &[f32]) -> bool {
        crate::backend::all_finite_f32(v)
    }
    fn into_buffer(v: Vec<f32>) -> Buffer {
        Buffer::F32(v)
    }
    fn from_buffer(b: Buffer) -> Option<Vec<f32>> {
        match b {
            Buffer::F32(v) => Some(v),
            Buffer::F64(_) | Buffer::Held(_) => None,
        }
    }
    fn slice(b: &Buffer) -> Option<&[f32]> {
        match b {
            Buffer::F32(v) => Some(v),
            Buffer::F64(_) | Buffer::Held(_) => None,
        }
    }
    fn arg(v: &[f32]) -> Arg<'_> {
        Arg::F32(v)
    }
    fn dest(v: &mut [f32]) -> Dest<'_> {
        Dest::F32(v)
    }
}

/// What a kernel input is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    X,
    Cond,
    /// The per-sample cotangent of a pullback.
    Seed,
    /// The direction `v` of an HVP or mixed product.
    Direction,
    Param(ParamId),
}

/// Binds a graph's inputs to roles: `Shared` inputs to store entries (which
/// must exist with the same shape), `Sample` inputs by the names `lower`
/// and `derive` give them (`x`, `c`, `seed`, `v`). (Step graphs bind their
/// own inputs the same way, in `steps::StepGraph::of`.)
pub fn bind_roles(g: &Graph, store: &ParamStore) -> Result<Vec<Role>, RuntimeError> {
    g.inputs()
        .iter()
        .map(|d| match d.kind {
            InputKind::Shared => {
                let id = store
                    .id(&d.name)
                    .ok_or_else(|| RuntimeError::UnknownParam(d.name.clone()))?;
                // The shape alone: values held on a device stay there.
                let shape = store
                    .shape_of(id)
                    .ok_or_else(|| RuntimeError::UnknownParam(d.name.clone()))?;
                if shape != d.shape {
                    return Err(RuntimeError::ParamShape {
                        name: d.name.clone(),
                        expected: shape,
                        found: d.shape.clone(),
                    });
                }
                Ok(Role::Param(id))
            }
            InputKind::Sample => match d.name.as_str() {
                "x" => Ok(Role::X),
                "c" => Ok(Role::Cond),
                "seed" => Ok(Role::Seed),
                "v" => Ok(Role::Direction),
                other => Err(RuntimeError::Internal(format!(
                    "unexpected sample input `{other}`"
                ))),
            },
        })
        .collect()
}

/// A kernel compiled for one spec, with its input roles and output slots.
pub struct SpecKernel {
    pub kernel: Arc<dyn Kernel>,
    pub spec: KernelSpec,
    pub roles: Vec<Role>,
    pub slots: Vec<Slot>,
}

/// The points a kernel is called at: host values, or a buffer of the
/// kernel's backend (held where a device's kernels bind it).
pub enum Points<'a, T> {
    Host(&'a [T]),
    Buffer(&'a Buffer),
}

// By hand: a derive would ask `T: Copy` of the values behind the references.
impl<T> Clone for Points<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Points<'_, T> {}
impl<T> Default for Points<'_, T> {
    fn default() -> Self {
        Points::Host(&[])
    }
}

/// The per-sample inputs of one call (`batch × numel` values each).
#[derive(Clone, Copy, Default)]
pub struct Args<'a, T> {
    pub x: Points<'a, T>,
    pub cond: Option<&'a [T]>,
    pub seed: Option<&'a [T]>,
    pub v: Option<&'a [T]>,
}

impl<'a, T> Args<'a, T> {
    pub fn x(x: &'a [T]) -> Self {
        Self::at(Points::Host(x))
    }
    pub fn at(x: Points<'a, T>) -> Self {
        Args {
            x,
            cond: None,
            seed: None,
            v: None,
        }
    }
    pub fn cond(self, cond: Option<&'a [T]>) -> Self {
        Args { cond, ..self }
    }
    pub fn seed(self, seed: &'a [T]) -> Self {
        Args {
            seed: Some(seed),
            ..self
        }
    }
    pub fn v(self, v: &'a [T]) -> Self {
        Args { v: Some(v), ..self }
    }
}

/// A kernel's results, addressed by slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Outputs<T> {
    pub slots: Vec<Slot>,
    pub data: Vec<Vec<T>>,
}

impl<T> Outputs<T> {
    pub fn get(&self, slot: Slot) -> Option<&[T]> {
        let i = self.slots.iter().position(|s| *s == slot)?;
        Some(&self.data[i])
    }
    pub fn take(&mut self, slot: Slot) -> Option<Vec<T>> {
        let i = self.slots.iter().position(|s| *s == slot)?;
        Some(std::mem::take(&mut self.data[i]))
    }
}

/// Input gradients and energies of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyGrad<T> {
    pub energy: Vec<T>,
    pub grad_x: Vec<T>,
}

/// A definition (energy or model) compiled for one backend and dtype.
pub struct CompiledEnergy {
    graph: Graph,
    store: Arc<ParamStore>,
    /// The store entries of the graph's `Shared` inputs, in input order.
    params: Vec<ParamId>,
    backend: Arc<dyn Backend>,
    dtype: DType,
    kernels: Mutex<Vec<Arc<SpecKernel>>>,
}

/// What to use instead when a backend refuses a dtype.
fn dtype_hint(backend: &str) -> &'static str {
    match backend {
        "gpu" => " (WGSL has no f64): use --dtype f32 (dtype = \"f32\" in a script)",
        _ => "",
    }
}

impl CompiledEnergy {
    /// `graph` is a lowered definition; every parameter it reads must be in
    /// `store`, which it shares with whatever else was compiled from it.
    pub fn in_store(
        graph: Graph,
        store: Arc<ParamStore>,
        backend: Arc<dyn Backend>,
        dtype: DType,
    ) -> Result<CompiledEnergy, RuntimeError> {
        if !backend.dtypes().contains(&dtype) {
            return Err(RuntimeError::UnsupportedDType {
                backend: backend.name(),
                dtype: dtype.name(),
            });
        }
        let params = bind_roles(&graph, &store)?
            .into_iter()
            .filter_map(|r| match r {
                Role::Param(id) => Some(id),
                _ => None,
            })
            .collect();
        Ok(CompiledEnergy {
            graph,
            store,
            params,
            backend,
            dtype,
            kernels: Mutex::new(Vec::new()),
        })
    }

    /// A definition with a store of its own, filled by `param`.
    pub fn new(
        graph: Graph,
        param: impl Fn(&str) -> Option<Vec<f64>>,
        backend: Arc<dyn Backend>,
        dtype: DType,
    ) -> Result<CompiledEnergy, RuntimeError> {
        let store = Arc::new(ParamStore::new());
        for d in graph
            .inputs()
            .iter()
            .filter(|d| d.kind == InputKind::Shared)
        {
            let value = param(&d.name).ok_or_else(|| RuntimeError::UnknownParam(d.name.clone()))?;
            store.insert(&d.name, &d.shape, value)?;
        }
        CompiledEnergy::in_store(graph, store, backend, dtype)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }
    pub fn energy_graph(&self) -> &Graph {
        &self.graph
    }
    pub fn store(&self) -> &Arc<ParamStore> {
        &self.store
    }
    /// Elements per sample of `x`.
    pub fn dim(&self) -> usize {
        self.input_len("x")
    }
    /// Elements per sample of the conditioning input (0 when unconditional).
    pub fn cond_dim(&self) -> usize {
        self.input_len("c")
    }
    /// Elements per sample of the definition's output (1 for an energy).
    pub fn out_dim(&self) -> usize {
        self.graph
            .outputs
            .first()
            .map_or(0, |o| numel(self.graph.shape(o.node)))
    }
    pub fn x_shape(&self) -> Vec<usize> {
        self.graph
            .find_input("x")
            .map(|id| self.graph.input(id).shape.clone())
            .unwrap_or_default()
    }
    /// The parameters this definition reads, in the order of its gradients.
    pub fn param_ids(&self) -> &[ParamId] {
        &self.params
    }
    pub fn param_names(&self) -> Vec<String> {
        self.graph
            .inputs()
            .iter()
            .filter(|d| d.kind == InputKind::Shared)
            .map(|d| d.name.clone())
            .collect()
    }
    /// Sets a parameter in the shared store (every kernel reading it sees it).
    pub fn set_param(&self, name: &str, value: &[f64]) -> Result<(), RuntimeError> {
        self.store.set(name, value)
    }
    /// Kernels compiled so far (for tests: an update must not recompile).
    pub fn compiled_kernels(&self) -> usize {
        self.kernels.lock().map_or(0, |k| k.len())
    }

    fn input_len(&self, name: &str) -> usize {
        self.graph
            .find_input(name)
            .map(|i| numel(&self.graph.input(i).shape))
            .unwrap_or(0)
    }

    /// The optimised graph that computes `spec` (the one a backend compiles).
    pub fn graph_for(&self, spec: KernelSpec) -> Result<Graph, RuntimeError> {
        let g = derive(&self.graph, spec).map_err(RuntimeError::Derive)?;
        Ok(opt::optimize(&g, opt::Config::default()))
    }

    /// The compiled kernel for `spec`, built once.
    pub fn kernel(&self, spec: KernelSpec) -> Result<Arc<SpecKernel>, RuntimeError> {
        let mut cache = self
            .kernels
            .lock()
            .map_err(|_| RuntimeError::Internal("kernel cache poisoned".into()))?;
        if let Some(k) = cache.iter().find(|k| k.spec == spec) {
            return Ok(k.clone());
        }
        let graph = self.graph_for(spec)?;
        let kernel = self
            .backend
            .compile(&graph, self.dtype)
            .map_err(RuntimeError::Backend)?;
        let roles = bind_roles(kernel.graph(), &self.store)?;
        let k = Arc::new(SpecKernel {
            kernel,
            spec,
            roles,
            slots: spec.layout(self.params.len()),
        });
        cache.push(k.clone());
        Ok(k)
    }

    /// Runs the kernel for `spec` on a batch; one buffer per slot.
    pub fn run<T: Scalar>(
        &self,
        spec: KernelSpec,
        args: Args<'_, T>,
        batch: usize,
    ) -> Result<Outputs<T>, RuntimeError> {
        self.run_into(spec, args, batch, &mut [])
    }

    /// `run`, with the outputs of the slots named in `held` written to
    /// those buffers (in the device's memory) instead of the host; their
    /// host vectors come back empty.
    pub fn run_into<T: Scalar>(
        &self,
        spec: KernelSpec,
        args: Args<'_, T>,
        batch: usize,
        held: &mut [(Slot, Buffer)],
    ) -> Result<Outputs<T>, RuntimeError> {
        if T::DTYPE != self.dtype {
            return Err(RuntimeError::DType {
                compiled: self.dtype.name(),
                called: T::DTYPE.name(),
            });
        }
        let k = self.kernel(spec)?;
        let g = k.kernel.graph();
        // On a device that holds buffers the parameters are bound where
        // they are (uploaded once per store version), else host values.
        let held_params = match self.backend.holds_buffers() {
            true => Some(self.store.held_view(self.backend.as_ref())?),
            false => None,
        };
        // Host values only where they are bound: a device's view may be
        // newer than the host copy, which would have to come home first.
        let view = held_params.is_none().then(|| self.store.view::<T>());
        let mut inputs: Vec<Arg<'_>> = Vec::with_capacity(g.inputs().len());
        for (decl, role) in g.inputs().iter().zip(&k.roles) {
            if let (Role::Param(id), Some(h)) = (role, &held_params) {
                let b = &h.buffers[id.0 as usize];
                inputs.push(Arg::Buffer(b));
                continue;
            }
            let (data, name): (&[T], &'static str) = match (role, &view) {
                (Role::Param(id), Some(view)) => (&view.values[id.0 as usize], "parameter"),
                (Role::Param(_), None) => {
                    return Err(RuntimeError::Internal(
                        "a parameter with no values to bind".into(),
                    ));
                }
                (Role::X, _) => match args.x {
                    Points::Host(x) => (x, "x"),
                    Points::Buffer(b) => {
                        let expected = numel(&decl.shape) * batch;
                        if b.len() != expected {
                            return Err(RuntimeError::InputLength {
                                input: "x",
                                expected,
                                batch,
                                found: b.len(),
                            });
                        }
                        inputs.push(Arg::Buffer(b));
                        continue;
                    }
                },
                (Role::Cond, _) => (
                    args.cond.ok_or(RuntimeError::MissingInput {
                        what: "energy",
                        needs: "a conditioning input",
                    })?,
                    "c",
                ),
                (Role::Seed, _) => (
                    args.seed.ok_or(RuntimeError::MissingInput {
                        what: "kernel",
                        needs: "a per-sample seed",
                    })?,
                    "seed",
                ),
                (Role::Direction, _) => (
                    args.v.ok_or(RuntimeError::MissingInput {
                        what: "kernel",
                        needs: "a direction v",
                    })?,
                    "v",
                ),
            };
            let per = numel(&decl.shape);
            let expected = if decl.kind == InputKind::Sample {
                per * batch
            } else {
                per
            };
            if data.len() != expected {
                return Err(RuntimeError::InputLength {
                    input: name,
                    expected,
                    batch,
                    found: data.len(),
                });
            }
            inputs.push(T::arg(data));
        }
        let is_held = |i: usize| held.iter().any(|(s, _)| k.slots.get(i) == Some(s));
        let mut data: Vec<Vec<T>> = (g.outputs.iter().enumerate())
            .map(|(i, o)| {
                let per = numel(g.shape(o.node));
                match o.reduce {
                    _ if is_held(i) => Vec::new(),
                    BatchReduce::PerSample => vec![T::zero(); per * batch],
                    BatchReduce::Sum => vec![T::zero(); per],
                }
            })
            .collect();
        let mut held_by_slot: Vec<Option<&mut Buffer>> = k.slots.iter().map(|_| None).collect();
        for (slot, buffer) in held.iter_mut() {
            let Some(i) = k.slots.iter().position(|s| s == slot) else {
                return Err(RuntimeError::Internal(format!("no {slot:?} output")));
            };
            held_by_slot[i] = Some(buffer);
        }
        let mut dests: Vec<Dest<'_>> = (data.iter_mut().zip(held_by_slot))
            .map(|(o, h)| match h {
                Some(b) => Dest::Buffer(b),
                None => T::dest(o),
            })
            .collect();
        k.kernel
            .run_args(&inputs, &mut dests, batch)
            .map_err(RuntimeError::Backend)?;
        Ok(Outputs {
            slots: k.slots.clone(),
            data,
        })
    }

    fn slot<T: Scalar>(
        &self,
        spec: KernelSpec,
        slot: Slot,
        args: Args<'_, T>,
        batch: usize,
    ) -> Result<Vec<T>, RuntimeError> {
        self.run(spec, args, batch)?
            .take(slot)
            .ok_or_else(|| RuntimeError::Internal(format!("no {slot:?} output")))
    }

    /// The definition's values (energies, or a model's outputs), per sample.
    pub fn energy<T: Scalar>(
        &self,
        x: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<T>, RuntimeError> {
        self.energy_at(Points::Host(x), cond, batch)
    }

    /// `energy` at host points or at a buffer's.
    pub fn energy_at<T: Scalar>(
        &self,
        x: Points<'_, T>,
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<T>, RuntimeError> {
        self.slot(
            KernelSpec::ENERGY,
            Slot::Value,
            Args::at(x).cond(cond),
            batch,
        )
    }

    pub fn energy_and_grad_x<T: Scalar>(
        &self,
        x: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<EnergyGrad<T>, RuntimeError> {
        let mut o = self.run(KernelSpec::ENERGY_GRAD, Args::x(x).cond(cond), batch)?;
        let missing = || RuntimeError::Internal("energy kernel lost an output".into());
        Ok(EnergyGrad {
            energy: o.take(Slot::Value).ok_or_else(missing)?,
            grad_x: o.take(Slot::PullbackX).ok_or_else(missing)?,
        })
    }

    pub fn grad_x<T: Scalar>(
        &self,
        x: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<T>, RuntimeError> {
        self.slot(
            KernelSpec::GRAD_X,
            Slot::PullbackX,
            Args::x(x).cond(cond),
            batch,
        )
    }

    /// ∇_θ of the batch-summed energy, one vector per parameter (in `param_names` order).
    pub fn grad_params<T: Scalar>(
        &self,
        x: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<Vec<T>>, RuntimeError> {
        Ok(self
            .run(KernelSpec::GRAD_PARAMS, Args::x(x).cond(cond), batch)?
            .data)
    }

    /// ∇_θ Σ_b ⟨seed_b, f(x_b)⟩ with the values f(x_b): a pullback of the
    /// definition's output by a per-sample cotangent (CD's weighted
    /// energies, JEM's logits). Returns (values, one gradient per parameter).
    pub fn weighted_grad_params<T: Scalar>(
        &self,
        x: &[T],
        seed: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<(Vec<T>, Vec<Vec<T>>), RuntimeError> {
        let mut o = self.run(
            KernelSpec::weighted_grad_params(),
            Args::x(x).cond(cond).seed(seed),
            batch,
        )?;
        let values = o
            .take(Slot::Value)
            .ok_or_else(|| RuntimeError::Internal("no values".into()))?;
        o.data.remove(0);
        Ok((values, o.data))
    }

    /// `weighted_grad_params` with the gradients left in the device's
    /// memory (new buffers, one per parameter), for an optimiser that
    /// runs there: only the values come back to the host.
    pub fn weighted_grad_params_held<T: Scalar>(
        &self,
        x: Points<'_, T>,
        seed: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<(Vec<T>, Vec<Buffer>), RuntimeError> {
        let mut held = self.param_outputs(Slot::PullbackParam)?;
        let spec = KernelSpec::weighted_grad_params();
        let args = Args::at(x).cond(cond).seed(seed);
        let mut o = self.run_into(spec, args, batch, &mut held)?;
        let values = o
            .take(Slot::Value)
            .ok_or_else(|| RuntimeError::Internal("no values".into()))?;
        Ok((values, held.into_iter().map(|(_, b)| b).collect()))
    }

    /// `mixed` with the products left in the device's memory, one new
    /// buffer per parameter.
    pub fn mixed_held<T: Scalar>(
        &self,
        x: &[T],
        v: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<Buffer>, RuntimeError> {
        let mut held = self.param_outputs(Slot::Mixed)?;
        let args = Args::x(x).cond(cond).v(v);
        self.run_into(KernelSpec::MIXED, args, batch, &mut held)?;
        Ok(held.into_iter().map(|(_, b)| b).collect())
    }

    /// A new device buffer for each parameter's output `slot(k)`.
    fn param_outputs(&self, slot: fn(usize) -> Slot) -> Result<Vec<(Slot, Buffer)>, RuntimeError> {
        (self.params.iter().enumerate())
            .map(|(k, id)| {
                let len = self.store.shape_of(*id).map_or(0, |s| numel(&s));
                let b = self.backend.alloc(len, self.dtype)?;
                Ok((slot(k), b))
            })
            .collect()
    }

    /// Hessian-vector products ∇ₓ(∇ₓE·v), one per sample.
    pub fn hvp<T: Scalar>(
        &self,
        x: &[T],
        v: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<T>, RuntimeError> {
        self.slot(
            KernelSpec::HVP,
            Slot::Hvp,
            Args::x(x).cond(cond).v(v),
            batch,
        )
    }

    /// Mixed products ∇_θ(∇ₓE·v), summed over the batch, one per parameter.
    pub fn mixed<T: Scalar>(
        &self,
        x: &[T],
        v: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<Vec<T>>, RuntimeError> {
        Ok(self
            .run(KernelSpec::MIXED, Args::x(x).cond(cond).v(v), batch)?
            .data)
    }
}
