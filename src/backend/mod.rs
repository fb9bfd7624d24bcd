//! Backends turn an IR graph into a runnable batched kernel. Every backend sits
//! behind the same `Backend` / `Kernel` traits, so runners never know which one
//! they drive; the reference interpreter (`Interp`) is one of them and is the
//! oracle the others are tested against.

pub mod cpu;
pub mod gpu;
pub mod noise;
pub(crate) mod pool;

use std::sync::Arc;

use crate::ir::Graph;
use crate::ir::interp;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DType {
    F32,
    F64,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
}

/// What a backend reports: each kind its own variant; callers render it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The verifier rejected the graph (a compiler bug, never user input).
    #[error("invalid IR: {0}")]
    InvalidIr(String),
    #[error("the {backend} backend does not hold {dtype}")]
    UnsupportedDType {
        backend: &'static str,
        dtype: &'static str,
    },
    #[error("kernel was compiled for {compiled}, called with {called}")]
    WrongDType {
        compiled: &'static str,
        called: &'static str,
    },
    /// Input or output buffers of the wrong number or size for a call.
    #[error("{0}")]
    Buffers(String),
    /// Code generation failed.
    #[error("cannot compile: {0}")]
    Compile(String),
    /// The GPU device: none found, or it failed while running.
    #[error("{0}")]
    Device(String),
    /// A multi-step call was set up inconsistently.
    #[error("step loop: {0}")]
    StepLoop(String),
}

/// Values a kernel reads or writes, owned by a backend. The interpreter and
/// the CPU JIT keep them in host memory (so a host vector moves in and out
/// without a copy); a device backend keeps its own storage ([`Held`]) and
/// copies only in `upload`/`download`.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// f32 values in a device's memory, readable only by the backend that
    /// made them (and by the host through its `download`).
    Held(Held),
}

/// A device's storage of `len` f32 values: an opaque handle that the
/// backend which made it downcasts. Clones share the storage, so a kernel
/// writing into one is seen through every clone (as two handles of one
/// GPU buffer are); equality is identity.
#[derive(Clone)]
pub struct Held {
    len: usize,
    storage: Arc<dyn std::any::Any + Send + Sync>,
}

impl Held {
    pub fn new(len: usize, storage: Arc<dyn std::any::Any + Send + Sync>) -> Held {
        Held { len, storage }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The backend's own handle, when it is of type `T`.
    pub fn storage<T: 'static>(&self) -> Option<&T> {
        self.storage.downcast_ref::<T>()
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({} f32 on the device)", self.len)
    }
}

impl Default for Buffer {
    fn default() -> Buffer {
        Buffer::F32(Vec::new())
    }
}

impl Buffer {
    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::F64(v) => v.len(),
            Buffer::Held(h) => h.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) | Buffer::Held(_) => DType::F32,
            Buffer::F64(_) => DType::F64,
        }
    }
    pub fn f32s(&self) -> Option<&[f32]> {
        match self {
            Buffer::F32(v) => Some(v),
            Buffer::F64(_) | Buffer::Held(_) => None,
        }
    }
    pub fn f32s_mut(&mut self) -> Option<&mut [f32]> {
        match self {
            Buffer::F32(v) => Some(v),
            Buffer::F64(_) | Buffer::Held(_) => None,
        }
    }
    pub fn f64s(&self) -> Option<&[f64]> {
        match self {
            Buffer::F64(v) => Some(v),
            Buffer::F32(_) | Buffer::Held(_) => None,
        }
    }
    pub fn f64s_mut(&mut self) -> Option<&mut [f64]> {
        match self {
            Buffer::F64(v) => Some(v),
            Buffer::F32(_) | Buffer::Held(_) => None,
        }
    }
}

/// One input of a call: host values, or a buffer of the kernel's backend
/// (which a device backend binds without a trip through the host).
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    Buffer(&'a Buffer),
}

impl<'a> Arg<'a> {
    fn f32s(self) -> Option<&'a [f32]> {
        match self {
            Arg::F32(v) => Some(v),
            Arg::Buffer(b) => b.f32s(),
            Arg::F64(_) => None,
        }
    }
    fn f64s(self) -> Option<&'a [f64]> {
        match self {
            Arg::F64(v) => Some(v),
            Arg::Buffer(b) => b.f64s(),
            Arg::F32(_) => None,
        }
    }
    pub fn len(self) -> usize {
        match self {
            Arg::F32(v) => v.len(),
            Arg::F64(v) => v.len(),
            Arg::Buffer(b) => b.len(),
        }
    }
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Where one output of a call goes: host memory, or a buffer of the
/// kernel's backend (which a device backend fills without reading it back).
#[derive(Debug)]
pub enum Dest<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    Buffer(&'a mut Buffer),
}

impl Dest<'_> {
    pub fn len(&self) -> usize {
        match self {
            Dest::F32(v) => v.len(),
            Dest::F64(v) => v.len(),
            Dest::Buffer(b) => b.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn f32s_mut(&mut self) -> Option<&mut [f32]> {
        match self {
            Dest::F32(v) => Some(v),
            Dest::Buffer(b) => b.f32s_mut(),
            Dest::F64(_) => None,
        }
    }
    fn f64s_mut(&mut self) -> Option<&mut [f64]> {
        match self {
            Dest::F64(v) => Some(v),
            Dest::Buffer(b) => b.f64s_mut(),
            Dest::F32(_) => None,
        }
    }
}

/// Host values to upload.
#[derive(Clone, Copy, Debug)]
pub enum HostData<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

/// How a multi-step call binds one kernel input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// A buffer that stays the same for every step (parameters, conditioning).
    Fixed(usize),
    /// A state buffer (the carried state, the noise, scratch).
    State(usize),
}

/// Normals written into a state buffer before each step `t`: positions
/// `offset..` of the stream `noise::step_key(seed, first_step + t)`, where
/// `first_step` is the loop's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoiseFeed {
    pub buffer: usize,
    pub seed: u64,
    pub offset: u64,
}

/// One uniform in (0, 1] per sample written into a state buffer before each
/// step `t` (a loop may have several, each its own stream): sample `b` gets `noise::uniform_f32` (or `_f64`, by the
/// buffer's dtype) of key `noise::uniform_key(seed, stream, first_step + t)`
/// and chain `first + b` — the sampling engine's Metropolis uniforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniformFeed {
    pub buffer: usize,
    pub seed: u64,
    pub stream: u64,
    pub first: u64,
}

/// `steps` calls of one step kernel on resident buffers: the kernel's
/// inputs read `inputs[i]`, its outputs write state buffers `outputs[j]`;
/// after each step every `(out, in)` of `carry` swaps, so the next step
/// reads what this one wrote. With `freeze`, a sample whose carried row
/// turns non-finite keeps its last finite row and is reported frozen at that
/// step (`frozen[b]`); frozen samples never change again. Each `(out,
/// history)` of `record` keeps every step's values of state buffer `out`
/// as the kernel wrote them: `history` ends up holding `steps` of them, one
/// after another (a window's per-step draws and statistics, read back once).
#[derive(Clone, Copy, Debug)]
pub struct StepLoop<'a> {
    /// The run's step number of the first step (noise streams and freeze
    /// steps are numbered from it).
    pub first_step: u64,
    pub steps: u64,
    pub inputs: &'a [Bind],
    pub outputs: &'a [usize],
    pub carry: &'a [(usize, usize)],
    pub noise: Option<NoiseFeed>,
    pub uniforms: &'a [UniformFeed],
    pub record: &'a [(usize, usize)],
    pub freeze: bool,
}

/// A compiled graph, callable on batches.
///
/// Input `i` of the graph is `inputs[i]`: `batch × numel` values (batch-major)
/// for a `Sample` input, `numel` for a `Shared` one. Output `j` is written to
/// `outputs[j]`: `batch × numel` values when per-sample, `numel` when summed
/// over the batch. A kernel compiled for one dtype rejects calls in the other.
pub trait Kernel: Send + Sync {
    fn graph(&self) -> &Graph;
    fn dtype(&self) -> DType;
    fn run_f64(
        &self,
        inputs: &[&[f64]],
        outputs: &mut [&mut [f64]],
        batch: usize,
    ) -> Result<(), BackendError>;
    fn run_f32(
        &self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        batch: usize,
    ) -> Result<(), BackendError>;

    /// One call on backend buffers (of the kernel's dtype).
    fn run_buffers(
        &self,
        inputs: &[&Buffer],
        outputs: &mut [&mut Buffer],
        batch: usize,
    ) -> Result<(), BackendError> {
        let args: Vec<Arg<'_>> = inputs.iter().map(|b| Arg::Buffer(b)).collect();
        let mut dests: Vec<Dest<'_>> = outputs.iter_mut().map(|b| Dest::Buffer(b)).collect();
        self.run_args(&args, &mut dests, batch)
    }

    /// One call whose inputs and outputs are each host values or buffers of
    /// this kernel's backend. A device backend binds held buffers where they
    /// are and reads back only the host outputs; the default resolves every
    /// buffer to host memory (a held one is refused: no host backend makes
    /// them).
    fn run_args(
        &self,
        inputs: &[Arg<'_>],
        outputs: &mut [Dest<'_>],
        batch: usize,
    ) -> Result<(), BackendError> {
        match self.dtype() {
            DType::F32 => {
                let ins = host_slices(inputs, Arg::f32s)?;
                let mut outs = host_slices_mut(outputs, Dest::f32s_mut)?;
                self.run_f32(&ins, &mut outs, batch)
            }
            DType::F64 => {
                let ins = host_slices(inputs, Arg::f64s)?;
                let mut outs = host_slices_mut(outputs, Dest::f64s_mut)?;
                self.run_f64(&ins, &mut outs, batch)
            }
        }
    }

    /// `lp.steps` steps of this (step) kernel on resident buffers; see
    /// [`StepLoop`]. A device backend keeps every buffer on the device for
    /// the whole loop; the default runs it on host buffers.
    fn run_steps(
        &self,
        lp: &StepLoop<'_>,
        fixed: &[&Buffer],
        state: &mut [Buffer],
        batch: usize,
        frozen: &mut [Option<u64>],
    ) -> Result<(), BackendError> {
        host_run_steps(self, lp, fixed, state, batch, frozen)
    }

    /// The scratch memory one call may allocate (arenas a backend keeps
    /// between calls, all threads of one call together), so a caller that
    /// runs the kernel from several workers can check the total against
    /// `budget::max_memory` before the first call. 0 when none is kept.
    fn scratch_bytes(&self) -> u64 {
        0
    }

    /// Makes ready the arenas for `callers` concurrent calls, with their
    /// memory committed, so that the first calls of a run (one per worker
    /// thread) do not allocate and fault pages in while they are timed. A
    /// hint: a backend may keep fewer (the CPU backend skips arenas too large
    /// to commit before a run's memory check).
    fn prepare(&self, callers: usize) {
        let _ = callers;
    }
}

/// Host slices of call inputs (arguments or buffers), or an error for one
/// of the wrong dtype or held by a device.
fn host_slices<'a, A: Copy, T>(
    args: &[A],
    get: impl Fn(A) -> Option<&'a [T]>,
) -> Result<Vec<&'a [T]>, BackendError> {
    args.iter()
        .map(|&a| get(a).ok_or_else(not_on_host))
        .collect()
}

fn host_slices_mut<'a, A, T>(
    dests: &'a mut [A],
    get: impl Fn(&'a mut A) -> Option<&'a mut [T]>,
) -> Result<Vec<&'a mut [T]>, BackendError> {
    dests
        .iter_mut()
        .map(|d| get(d).ok_or_else(not_on_host))
        .collect()
}

fn not_on_host() -> BackendError {
    BackendError::Buffers("a buffer of the wrong dtype, or held by a device".into())
}

/// x·0 is ±0 for a finite x and NaN otherwise; sixteen independent lanes
/// let the compiler vectorise the scan (the sampling engine checks every
/// chain after every Langevin step).
macro_rules! all_finite {
    ($t:ty, $v:expr) => {{
        let mut acc = [0.0 as $t; 16];
        let mut chunks = $v.chunks_exact(16);
        for c in &mut chunks {
            for l in 0..16 {
                acc[l] += c[l] * 0.0;
            }
        }
        let tail = chunks.remainder().iter().fold(0.0, |a, x| a + x * 0.0);
        acc.iter().sum::<$t>() + tail == 0.0
    }};
}

/// Whether every value is finite.
pub fn all_finite_f32(v: &[f32]) -> bool {
    all_finite!(f32, v)
}

/// Whether every value is finite.
pub fn all_finite_f64(v: &[f64]) -> bool {
    all_finite!(f64, v)
}

/// The host form of [`Kernel::run_steps`].
pub(crate) fn host_run_steps<K: Kernel + ?Sized>(
    k: &K,
    lp: &StepLoop<'_>,
    fixed: &[&Buffer],
    state: &mut [Buffer],
    batch: usize,
    frozen: &mut [Option<u64>],
) -> Result<(), BackendError> {
    step_loop(lp, fixed, state, batch, frozen, &mut |ins, outs, _| {
        k.run_buffers(ins, outs, batch)
    })
}

/// Whether every shared input of `graph` is bound to a fixed buffer in `lp`,
/// so that values computed from shared inputs alone stay valid from one
/// step of the loop to the next.
fn shared_inputs_fixed(graph: &Graph, lp: &StepLoop<'_>) -> bool {
    graph.inputs().iter().enumerate().all(|(i, d)| {
        d.kind != crate::ir::InputKind::Shared || matches!(lp.inputs.get(i), Some(Bind::Fixed(_)))
    })
}

/// One step's kernel call: `(inputs, outputs, t)`.
type StepCall<'c> = dyn FnMut(&[&Buffer], &mut [&mut Buffer], u64) -> Result<(), BackendError> + 'c;

/// The step loop on host buffers: noise, one `call(inputs, outputs, t)` per
/// step `t`, freezing and carrying.
fn step_loop(
    lp: &StepLoop<'_>,
    fixed: &[&Buffer],
    state: &mut [Buffer],
    batch: usize,
    frozen: &mut [Option<u64>],
    call: &mut StepCall<'_>,
) -> Result<(), BackendError> {
    let bad = |what: &str| Err(BackendError::StepLoop(what.into()));
    if frozen.len() != batch {
        return bad("one freeze flag per sample");
    }
    for &(o, h) in lp.record {
        if o == h {
            return bad("a buffer recorded into itself");
        }
        let len = state.get(o).map(Buffer::len);
        // The step count comes from the caller: a history too large to
        // hold is refused here rather than aborting the process.
        let Some(total) = len.and_then(|l| usize::try_from(lp.steps).ok()?.checked_mul(l)) else {
            return bad("record index out of range, or a history too long to hold");
        };
        let held = match state.get_mut(h) {
            Some(Buffer::F32(v)) => grow_zeroed(v, total),
            Some(Buffer::F64(v)) => grow_zeroed(v, total),
            Some(Buffer::Held(_)) => return bad("a device buffer in a host step loop"),
            None => return bad("record index out of range"),
        };
        if !held {
            return bad("not enough memory for the recorded history");
        }
    }
    for t in 0..lp.steps {
        if let Some(nf) = lp.noise {
            let key = noise::step_key(nf.seed, lp.first_step + t);
            match state.get_mut(nf.buffer) {
                Some(Buffer::F32(v)) => noise::fill_normal_f32(key, nf.offset, v),
                Some(Buffer::F64(v)) => noise::fill_normal_f64(key, nf.offset, v),
                Some(Buffer::Held(_)) | None => return bad("no host noise buffer"),
            }
        }
        for &uf in lp.uniforms {
            if !fill_uniforms(uf, lp.first_step + t, state.get_mut(uf.buffer)) {
                return bad("no uniform buffer");
            }
        }
        // Outputs leave `state` for the call, so inputs and outputs never alias.
        let mut outs: Vec<Buffer> = Vec::with_capacity(lp.outputs.len());
        for &o in lp.outputs {
            match state.get_mut(o) {
                Some(b) => outs.push(std::mem::take(b)),
                None => return bad("output index out of range"),
            }
        }
        let result = {
            let mut ins: Vec<&Buffer> = Vec::with_capacity(lp.inputs.len());
            for b in lp.inputs {
                let buf = match *b {
                    Bind::Fixed(i) => fixed.get(i).copied(),
                    Bind::State(i) => state.get(i),
                };
                match buf {
                    Some(buf) => ins.push(buf),
                    None => return bad("input index out of range"),
                }
            }
            let mut out_refs: Vec<&mut Buffer> = outs.iter_mut().collect();
            call(&ins, &mut out_refs, t)
        };
        for (&o, b) in lp.outputs.iter().zip(outs) {
            state[o] = b;
        }
        result?;
        for &(o, h) in lp.record {
            let (src, dst) = pair_mut(state, o, h);
            if !copy_row(src, dst, t as usize) {
                return bad(
                    "a recorded buffer changed length or differs from its history in dtype",
                );
            }
        }
        if lp
            .carry
            .iter()
            .any(|&(o, i)| o >= state.len() || i >= state.len())
        {
            return bad("carry index out of range");
        }
        if lp.freeze {
            freeze_rows(state, lp.carry, batch, frozen, lp.first_step + t);
        }
        for &(o, i) in lp.carry {
            if lp.freeze {
                let (old, new) = pair_mut(state, i, o);
                keep_frozen(old, new, batch, frozen);
            }
            state.swap(o, i);
        }
    }
    Ok(())
}

/// Resizes `v` to `len` zeros' worth (keeping what it holds); false when
/// the memory cannot be had.
fn grow_zeroed<T: Copy + Default>(v: &mut Vec<T>, len: usize) -> bool {
    if len > v.len() && v.try_reserve_exact(len - v.len()).is_err() {
        return false;
    }
    v.resize(len, T::default());
    true
}

/// Writes step `step`'s uniforms into `buf` (one per sample); false when
/// there is no such buffer.
fn fill_uniforms(uf: UniformFeed, step: u64, buf: Option<&mut Buffer>) -> bool {
    let key = noise::uniform_key(uf.seed, uf.stream, step);
    match buf {
        Some(Buffer::F32(v)) => v
            .iter_mut()
            .zip(uf.first..)
            .for_each(|(u, c)| *u = noise::uniform_f32(key, c)),
        Some(Buffer::F64(v)) => v
            .iter_mut()
            .zip(uf.first..)
            .for_each(|(u, c)| *u = noise::uniform_f64(key, c)),
        Some(Buffer::Held(_)) | None => return false,
    }
    true
}

/// Copies `src` into row `t` of `history` (rows of `src.len()` values).
fn copy_row(src: &Buffer, history: &mut Buffer, t: usize) -> bool {
    fn copy<T: Copy>(src: &[T], dst: &mut [T], t: usize) -> bool {
        let n = src.len();
        match dst.get_mut(t * n..(t + 1) * n) {
            Some(row) => {
                row.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
    match (src, history) {
        (Buffer::F32(s), Buffer::F32(d)) => copy(s, d, t),
        (Buffer::F64(s), Buffer::F64(d)) => copy(s, d, t),
        _ => false,
    }
}

fn pair_mut(v: &mut [Buffer], a: usize, b: usize) -> (&Buffer, &mut Buffer) {
    if a < b {
        let (lo, hi) = v.split_at_mut(b);
        (&lo[a], &mut hi[0])
    } else {
        let (lo, hi) = v.split_at_mut(a);
        (&hi[0], &mut lo[b])
    }
}

/// The freeze guard's test: a sample not yet frozen whose new carried rows
/// (every carry's output) are not all finite freezes at `step`, so that it
/// keeps all of its rows (a state is moved whole or not at all).
fn freeze_rows(
    state: &[Buffer],
    carry: &[(usize, usize)],
    batch: usize,
    frozen: &mut [Option<u64>],
    step: u64,
) {
    let finite = |b: &Buffer, r: std::ops::Range<usize>| match b {
        Buffer::F32(v) => all_finite_f32(&v[r]),
        Buffer::F64(v) => all_finite_f64(&v[r]),
        Buffer::Held(_) => true,
    };
    let whole = |b: &Buffer| finite(b, 0..b.len());
    if frozen.iter().all(|f| f.is_none()) && carry.iter().all(|&(o, _)| whole(&state[o])) {
        return;
    }
    for (b, f) in frozen.iter_mut().enumerate() {
        let bad = carry.iter().any(|&(o, _)| {
            let w = state[o].len() / batch.max(1);
            !finite(&state[o], b * w..(b + 1) * w)
        });
        if f.is_none() && bad {
            *f = Some(step);
        }
    }
}

/// A frozen sample's new row is its old one.
fn keep_frozen(old: &Buffer, new: &mut Buffer, batch: usize, frozen: &[Option<u64>]) {
    fn rows<T: Copy>(old: &[T], new: &mut [T], batch: usize, frozen: &[Option<u64>]) {
        let w = new.len() / batch.max(1);
        for (b, f) in frozen.iter().enumerate() {
            let r = b * w..(b + 1) * w;
            if f.is_some() && r.end <= old.len().min(new.len()) {
                new[r.clone()].copy_from_slice(&old[r]);
            }
        }
    }
    match (old, new) {
        (Buffer::F32(o), Buffer::F32(n)) => rows(o, n, batch, frozen),
        (Buffer::F64(o), Buffer::F64(n)) => rows(o, n, batch, frozen),
        _ => {}
    }
}

/// Every backend's `compile` runs the verifier first and refuses a graph it
/// rejects, so no code generator ever sees a malformed graph.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn compile(&self, graph: &Graph, dtype: DType) -> Result<Arc<dyn Kernel>, BackendError>;
    /// The dtypes this backend compiles (a GPU backend will be f32-only).
    fn dtypes(&self) -> &'static [DType] {
        &[DType::F32, DType::F64]
    }
    /// A zeroed buffer of `len` values.
    fn alloc(&self, len: usize, dtype: DType) -> Result<Buffer, BackendError> {
        if !self.dtypes().contains(&dtype) {
            return Err(BackendError::UnsupportedDType {
                backend: self.name(),
                dtype: dtype.name(),
            });
        }
        Ok(match dtype {
            DType::F32 => Buffer::F32(vec![0.0; len]),
            DType::F64 => Buffer::F64(vec![0.0; len]),
        })
    }
    /// A buffer holding a copy of host values.
    fn upload(&self, data: HostData<'_>) -> Result<Buffer, BackendError> {
        let (len, dtype) = match data {
            HostData::F32(v) => (v.len(), DType::F32),
            HostData::F64(v) => (v.len(), DType::F64),
        };
        let mut b = self.alloc(len, dtype)?;
        match (&mut b, data) {
            (Buffer::F32(d), HostData::F32(s)) => d.copy_from_slice(s),
            (Buffer::F64(d), HostData::F64(s)) => d.copy_from_slice(s),
            _ => return Err(BackendError::Buffers("upload: dtype mismatch".into())),
        }
        Ok(b)
    }
    /// Host copies of a buffer's values, widened to f64.
    fn download(&self, buf: &Buffer) -> Result<Vec<f64>, BackendError> {
        Ok(match buf {
            Buffer::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Buffer::F64(v) => v.clone(),
            Buffer::Held(_) => {
                return Err(BackendError::Buffers(
                    "a device buffer downloaded through a host backend".into(),
                ));
            }
        })
    }
    /// Copies rows of `width` values from `src` to `dst`: for each
    /// `(from, to)` in `moves`, row `from` of `src` into row `to` of `dst`,
    /// in order (a later move to the same row wins). Both buffers are this
    /// backend's and of one dtype; a row out of either buffer is refused
    /// before anything is copied. A device copies where the buffers are
    /// (gathering a replay buffer's rows into a batch, and scattering a
    /// batch back).
    fn copy_rows(
        &self,
        src: &Buffer,
        dst: &mut Buffer,
        width: usize,
        moves: &[(usize, usize)],
    ) -> Result<(), BackendError> {
        copy_host_rows(src, dst, width, moves)
    }
    /// Whether `alloc` and `upload` make buffers held in a device's memory,
    /// which kernels of this backend read and write where they are (so
    /// values used by many calls, like parameters, are worth uploading
    /// once).
    fn holds_buffers(&self) -> bool {
        false
    }
    /// The most values one buffer of this backend holds (a device's largest
    /// buffer; unbounded on the host), so a caller can keep state too large
    /// for one where it fits instead.
    fn max_buffer_values(&self) -> usize {
        usize::MAX
    }
    /// The device kernels run on, for run summaries (the GPU's adapter);
    /// `None` for the host.
    fn device(&self) -> Option<String> {
        None
    }
    /// Whether samplers should run their Metropolis transitions as windows
    /// of [`Kernel::run_steps`] (whole transitions as one graph, the chain
    /// state resident) rather than one kernel call per proposal with the
    /// decision on the host: worth it where every call is a round trip to a
    /// device. The default: on a device.
    fn metropolis_windows(&self) -> bool {
        self.device().is_some()
    }
    /// The same backend with kernels that run on the calling thread, for a
    /// caller that parallelises over chains itself (the sampling engine);
    /// `None` when kernels already run on the calling thread.
    fn worker(&self) -> Option<Arc<dyn Backend>> {
        None
    }
}

/// Refuses a row copy that reads or writes past either buffer.
pub(crate) fn check_rows(
    src: usize,
    dst: usize,
    width: usize,
    moves: &[(usize, usize)],
) -> Result<(), BackendError> {
    let fits = |row: usize, len: usize| {
        row.checked_add(1)
            .and_then(|end| end.checked_mul(width))
            .is_some_and(|end| end <= len)
    };
    match moves.iter().find(|&&(f, t)| !fits(f, src) || !fits(t, dst)) {
        Some(&(f, t)) => Err(BackendError::Buffers(format!(
            "a row copy from row {f} to row {t} ({width} values each) leaves a buffer of {src} or {dst} values"
        ))),
        None => Ok(()),
    }
}

/// `Backend::copy_rows` on host buffers.
pub(crate) fn copy_host_rows(
    src: &Buffer,
    dst: &mut Buffer,
    width: usize,
    moves: &[(usize, usize)],
) -> Result<(), BackendError> {
    check_rows(src.len(), dst.len(), width, moves)?;
    match (src, dst) {
        (Buffer::F32(s), Buffer::F32(d)) => host_copy_rows(s, d, width, moves),
        (Buffer::F64(s), Buffer::F64(d)) => host_copy_rows(s, d, width, moves),
        _ => {
            return Err(BackendError::Buffers(
                "rows copied between buffers of different dtypes or places".into(),
            ));
        }
    }
    Ok(())
}

fn host_copy_rows<T: Copy>(src: &[T], dst: &mut [T], width: usize, moves: &[(usize, usize)]) {
    for &(f, t) in moves {
        dst[t * width..(t + 1) * width].copy_from_slice(&src[f * width..(f + 1) * width]);
    }
}

/// A backend by its name on the command line and in scripts.
pub fn named(name: &str) -> Result<Arc<dyn Backend>, String> {
    match name {
        "interp" => Ok(Arc::new(Interp)),
        "cpu" => Ok(Arc::new(cpu::Cpu::new())),
        "gpu" => gpu::Gpu::new()
            .map(|g| Arc::new(g) as Arc<dyn Backend>)
            .map_err(|e| e.to_string()),
        other => Err(format!(
            "unknown backend `{other}`; expected `interp`, `cpu` or `gpu`"
        )),
    }
}

/// The verifier's verdict on a graph about to be compiled, as a compile error.
pub(crate) fn verified(graph: &Graph) -> Result<(), BackendError> {
    crate::ir::verify::verify(graph).map_err(BackendError::InvalidIr)
}

/// What identifies a (verified) graph in a backend's kernel cache: its
/// printout (canonical, live nodes only) and a hash of all constant data,
/// scan bodies' included (the printer abbreviates constants).
pub(crate) fn graph_key(graph: &Graph) -> String {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_consts(graph, &mut h);
    format!(
        "{}|consts {:016x}",
        crate::ir::print::print(graph),
        h.finish()
    )
}

fn hash_consts(g: &Graph, h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    for c in g.consts() {
        c.shape.hash(h);
        for v in c.data.iter() {
            v.to_bits().hash(h);
        }
    }
    for b in g.bodies() {
        hash_consts(b, h);
    }
}

/// The reference interpreter as a backend.
pub struct Interp;

struct InterpKernel {
    graph: Graph,
    dtype: DType,
}

impl Backend for Interp {
    fn name(&self) -> &'static str {
        "interp"
    }
    fn compile(&self, graph: &Graph, dtype: DType) -> Result<Arc<dyn Kernel>, BackendError> {
        verified(graph)?;
        Ok(Arc::new(InterpKernel {
            graph: graph.clone(),
            dtype,
        }))
    }
}

fn copy_outputs<T: Copy>(
    results: Vec<Vec<T>>,
    outputs: &mut [&mut [T]],
) -> Result<(), BackendError> {
    if results.len() != outputs.len() {
        return Err(BackendError::Buffers(format!(
            "expected {} output buffers, got {}",
            results.len(),
            outputs.len()
        )));
    }
    for (dst, src) in outputs.iter_mut().zip(results) {
        if dst.len() != src.len() {
            return Err(BackendError::Buffers(format!(
                "output buffer holds {}, needs {}",
                dst.len(),
                src.len()
            )));
        }
        dst.copy_from_slice(&src);
    }
    Ok(())
}

impl Kernel for InterpKernel {
    fn graph(&self) -> &Graph {
        &self.graph
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn run_f64(
        &self,
        inputs: &[&[f64]],
        outputs: &mut [&mut [f64]],
        batch: usize,
    ) -> Result<(), BackendError> {
        if self.dtype != DType::F64 {
            return Err(BackendError::WrongDType {
                compiled: "f32",
                called: "f64",
            });
        }
        let results = interp::eval(&self.graph, inputs, batch).map_err(BackendError::Buffers)?;
        copy_outputs(results, outputs)
    }
    fn run_f32(
        &self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        batch: usize,
    ) -> Result<(), BackendError> {
        if self.dtype != DType::F32 {
            return Err(BackendError::WrongDType {
                compiled: "f64",
                called: "f32",
            });
        }
        let results = interp::eval(&self.graph, inputs, batch).map_err(BackendError::Buffers)?;
        copy_outputs(results, outputs)
    }
}

/// The reference interpreter standing in for a device in unit tests: it
/// claims to hold its buffers (host f32 vectors behind the same contract)
/// and counts every upload and download, so a test can see what crosses.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct StandIn {
    pub up: std::sync::atomic::AtomicUsize,
    pub down: std::sync::atomic::AtomicUsize,
}

#[cfg(test)]
impl Backend for StandIn {
    fn name(&self) -> &'static str {
        "stand-in device"
    }
    fn compile(&self, g: &Graph, dtype: DType) -> Result<Arc<dyn Kernel>, BackendError> {
        Interp.compile(g, dtype)
    }
    fn holds_buffers(&self) -> bool {
        true
    }
    fn upload(&self, data: HostData<'_>) -> Result<Buffer, BackendError> {
        self.up.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Interp.upload(data)
    }
    fn download(&self, buf: &Buffer) -> Result<Vec<f64>, BackendError> {
        self.down.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Interp.download(buf)
    }
}
