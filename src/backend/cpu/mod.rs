//! The Cranelift JIT backend: native, batched, multithreaded kernels.
//!
//! Pipeline: [`plan::build`] turns the graph into fused loop groups and GEMM
//! steps over a feature-major batch tile (see `plan.rs` for the layout and
//! fusion rules) and assigns arena offsets; [`codegen::compile`] emits one
//! Cranelift function per loop; a kernel call then runs
//!
//! 1. the *invariant program* once (everything that depends only on shared
//!    inputs and constants: parameter transposes, products of parameters, …);
//! 2. the *tile program* over the batch: the batch is cut into one contiguous
//!    chunk per thread, each chunk into tiles of `T` rows; per tile the sample
//!    inputs are transposed into the thread's arena, the steps run, per-sample
//!    outputs are transposed out and batch-summed outputs accumulate into the
//!    thread's partial (sequentially over rows);
//! 3. the partials are added in thread order.
//!
//! Results are deterministic for a given thread count. Scratch arenas are
//! kept in a per-kernel pool and reused across calls (no allocation per call
//! once warm). Compiled kernels are cached by the printed graph, its constant
//! data, the dtype and the thread count.

mod codegen;
mod math;
mod panel;
mod plan;
mod scanloop;

mod vecmath;
mod zmm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use self::codegen::{DirectSpec, Jit};
use self::plan::{Dim, Loc, OutSrc, Plan, Step, Stride};
use super::{Backend, BackendError, Buffer, DType, Kernel, StepLoop};
use crate::ir::Real;
use crate::ir::{BatchReduce, BinaryOp, Graph, numel};

/// Rows below which a thread is not worth waking.
const MIN_ROWS_PER_THREAD: usize = 64;

/// The number of threads kernels use by default: `EBM_THREADS`, else the
/// machine's available parallelism.
pub fn default_threads() -> usize {
    std::env::var("EBM_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// The Cranelift CPU backend.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// Threads a kernel call may use (results are deterministic per count).
    pub threads: usize,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu::new()
    }
}

impl Cpu {
    pub fn new() -> Cpu {
        Cpu {
            threads: default_threads(),
        }
    }
    pub fn with_threads(threads: usize) -> Cpu {
        Cpu {
            threads: threads.max(1),
        }
    }
    /// Compiles without consulting or filling the kernel cache.
    pub fn compile_uncached(
        &self,
        graph: &Graph,
        dtype: DType,
    ) -> Result<Arc<CpuKernel>, BackendError> {
        super::verified(graph)?;
        CpuKernel::compile(graph, dtype, self.threads)
            .map(Arc::new)
            .map_err(BackendError::Compile)
    }
}

fn cache() -> &'static Mutex<HashMap<String, Arc<CpuKernel>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<CpuKernel>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The cache key: the graph's (`backend::graph_key`), dtype, thread count
/// and tile budget.
fn cache_key(graph: &Graph, dtype: DType, threads: usize) -> String {
    format!(
        "{}|{}|threads {threads}|tile {}",
        super::graph_key(graph),
        dtype.name(),
        tile_budget()
    )
}

impl Backend for Cpu {
    fn worker(&self) -> Option<Arc<dyn Backend>> {
        (self.threads != 1).then(|| Arc::new(Cpu::with_threads(1)) as Arc<dyn Backend>)
    }
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn compile(&self, graph: &Graph, dtype: DType) -> Result<Arc<dyn Kernel>, BackendError> {
        // Before the cache key: printing a malformed graph could go wrong.
        super::verified(graph)?;
        let key = cache_key(graph, dtype, self.threads);
        if let Some(k) = cache()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(k.clone());
        }
        let k = Arc::new(
            CpuKernel::compile(graph, dtype, self.threads).map_err(BackendError::Compile)?,
        );
        cache()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, k.clone());
        Ok(k)
    }
}

/// Number of kernels in the process-wide cache (for tests and `ebm` stats).
pub fn cache_len() -> usize {
    cache().lock().unwrap_or_else(PoisonError::into_inner).len()
}

/// Scratch bytes of one thread's tile (`EBM_TILE_BYTES` overrides): the
/// tile, the packed weights its matrix products read and the loops' working
/// set stay in a 1 MiB L2. Taller tiles once amortised the `gemm` crate's
/// repacking of a weight matrix per call; the panel kernel packs once per
/// call, and at 1.5 MiB W3's tile no longer fit this machine's L2 while W4
/// ran 15% slower and the first call spent 2 ms more faulting in scratch.
fn tile_budget() -> usize {
    std::env::var("EBM_TILE_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512 * 1024)
}

/// Tile height: as many rows as fit the scratch budget, a multiple of 16, 16..=512.
fn tile_rows(plan: &Plan, elem: usize) -> usize {
    let per_row = plan.tile_feats.max(1) * elem;
    (tile_budget() / per_row / 16 * 16).clamp(16, 512)
}

/// Distance in elements between consecutive feature rows of a tile: at least
/// `rows`, and an odd number of 64-byte cache lines. The loops and the GEMM
/// kernels walk one element of many feature rows at a time; with an even
/// line count (512 f32 rows = 2 KiB) those addresses pile into a few L1 sets
/// and evict each other — W3 ran at 134 GFLOP/s with a 512-row stride and at
/// 179 with 496.
fn tile_stride(rows: usize, elem: usize) -> usize {
    let per_line = 64 / elem;
    let lines = rows.div_ceil(per_line);
    (lines | 1) * per_line
}

/// Whether a panel GEMM's following bias and activation run in its
/// registers (`plan::fuse_epilogues`; `EBM_GEMM_EPILOGUE=0` keeps them a
/// step of their own, for comparison: the outputs are bitwise the same).
fn use_epilogues() -> bool {
    std::env::var("EBM_GEMM_EPILOGUE").map_or(true, |v| v != "0")
}

/// Whether f32 tile loops are assembled as AVX-512 machine code (`zmm.rs`)
/// where they can be (`EBM_ASM_LOOPS=0` keeps every loop in Cranelift, for
/// comparison; the outputs are bitwise the same).
fn use_asm_loops() -> bool {
    vecmath::available() && std::env::var("EBM_ASM_LOOPS").map_or(true, |v| v != "0")
}

/// Whether f32 exp/sigmoid over whole buffers go through the AVX-512 routines
/// (`EBM_ARRAY_UNARY=0` forces the inline Cranelift loops, for comparison).
fn use_array_unary(dtype: DType) -> bool {
    dtype == DType::F32
        && vecmath::available()
        && std::env::var("EBM_ARRAY_UNARY").map_or(true, |v| v != "0")
}

/// Whether tile GEMMs with a shared operand run through the packed f32 panel
/// kernel (`EBM_PANEL_GEMM=0` keeps the `gemm` crate, for comparison).
fn use_panel_gemm(dtype: DType) -> bool {
    dtype == DType::F32
        && panel::available()
        && std::env::var("EBM_PANEL_GEMM").map_or(true, |v| v != "0")
}

fn build_plan(graph: &Graph, dtype: DType) -> Result<Plan, String> {
    let mut plan = plan::build(
        graph,
        use_array_unary(dtype),
        use_panel_gemm(dtype),
        use_epilogues(),
    )?;
    // A plan with a scan has neither a direct nor a fused tile program, so
    // the scans' functions come right after the loops'.
    if std::env::var("EBM_FUSE").map_or(true, |v| v != "0") {
        let first = plan.groups.len();
        scanloop::number(&mut plan, first);
    }
    Ok(plan)
}

/// The Cranelift IR of every loop of `graph`'s kernel, after a schedule summary
/// (`ebm dump --stage clif`).
pub fn clif_text(graph: &Graph, dtype: DType) -> Result<String, String> {
    let plan = build_plan(graph, dtype)?;
    let elem = if dtype == DType::F64 { 8 } else { 4 };
    let direct = direct_spec(&plan);
    let fused = use_fused(&plan, direct.is_some());
    let rows = tile_rows(&plan, elem);
    let stride = tile_stride(rows, elem);
    let mut text = schedule_text(&plan, rows, stride);
    if let Some(d) = &direct {
        text.push_str(&format!(
            "; tile program runs batch-major (loop{}, {} features, no transposes)\n",
            plan.groups.len(),
            d.n
        ));
    }
    if fused {
        text.push_str(&format!(
            "; tile program runs fused, vector-outer (loop{})\n",
            plan.groups.len()
        ));
    }
    codegen::compile(
        &plan,
        dtype == DType::F64,
        stride,
        direct.as_ref(),
        fused,
        use_asm_loops(),
        Some(&mut text),
    )?;
    Ok(text)
}

fn schedule_text(plan: &Plan, rows: usize, stride: usize) -> String {
    let mut s = format!(
        "; tile: {rows} rows (stride {stride}) x {} features; invariant arena: {} elements\n",
        plan.tile_feats, plan.inv_len
    );
    for (name, steps) in [("invariant", &plan.inv_steps), ("tile", &plan.tile_steps)] {
        s.push_str(&format!("; {name} program:\n"));
        steps_text(&mut s, plan, steps, ";   ");
    }
    s
}

/// What a layer epilogue computes and where it stores each value, for the
/// schedule text.
fn layer_text(e: &plan::Layer, dst: Loc) -> String {
    let to = |l: Option<Loc>| l.map_or("not stored".to_string(), |l| format!("-> {l:?}"));
    let mut s = format!(
        ", then + {:?} {} and {} {}",
        e.bias,
        to(e.pre.then_some(dst)),
        if e.sigmoid { "sigmoid" } else { "exp" },
        to(e.act)
    );
    if e.prod.is_some() {
        s.push_str(&format!(", times its argument {}", to(e.prod)));
    }
    if let Some((g, scale)) = e.grad {
        let by = scale.map_or(String::new(), |sc| format!(" times {sc:?}"));
        s.push_str(&format!(", its derivative{by} -> {g:?}"));
    }
    s.push_str(" in registers");
    s
}

fn steps_text(s: &mut String, plan: &Plan, steps: &[Step], pad: &str) {
    {
        for st in steps.iter() {
            s.push_str(pad);
            match st {
                Step::Scan(sc) => {
                    s.push_str(&format!(
                        "scan{} over {} rows of {} features -> {:?}, {} (next = {:?}):\n",
                        if sc.reverse { " reverse" } else { "" },
                        sc.len,
                        sc.inputs[0].feats,
                        sc.out,
                        match sc.fused {
                            Some(fi) => format!("one generated loop, loop{fi}, of the step"),
                            None => "row by row, the step".to_string(),
                        },
                        sc.next
                    ));
                    steps_text(s, plan, &sc.body, &format!("{pad}  "));
                }
                Step::Loop(i) => s.push_str(&format!(
                    "loop{i}  {} (domain {})\n",
                    plan.groups[*i].label, plan.groups[*i].domain
                )),
                Step::ArrayUnary {
                    sigmoid,
                    src,
                    dst,
                    feats,
                    bias,
                    prod,
                } => s.push_str(&format!(
                    "call {} {src:?}{} -> {dst:?}{} ({feats} features, AVX-512)\n",
                    if *sigmoid { "sigmoid" } else { "exp" },
                    match bias {
                        Some((b, pre)) => format!(" + {b:?} (stored at {pre:?})"),
                        None => String::new(),
                    },
                    match prod {
                        Some(p) => format!(", times its argument -> {p:?}"),
                        None => String::new(),
                    }
                )),
                Step::Gemm(g) => s.push_str(&format!(
                    "gemm m={:?} n={:?} k={:?} dst={:?}{}{}{}\n",
                    g.m,
                    g.n,
                    g.k,
                    g.dst.loc,
                    if g.accumulate { " (+=)" } else { "" },
                    match g.packed {
                        Some(p) => format!(" (panel kernel, weights packed at {p:?})"),
                        None => String::new(),
                    },
                    match g.epilogue {
                        Some(plan::Epilogue::Layer(e)) => layer_text(&e, g.dst.loc),
                        Some(plan::Epilogue::Times(by)) => format!(", times {by:?} in registers"),
                        None => String::new(),
                    }
                )),
                Step::Pack { src, k, n, dst } => s.push_str(&format!(
                    "pack {:?}+{} as {n}x{k} -> {dst:?} (panels of {})\n",
                    src.loc,
                    src.off,
                    panel::NR
                )),
            }
        }
    }
}

/// The largest scratch made (and faulted in) when a kernel is compiled.
const PREFAULT_BYTES: u64 = 16 << 20;

/// Writes a zero into every page of `v` (volatile: the allocation is known
/// to be zeroed, and a plain store of zero could be dropped).
fn fault_in<T: Real>(v: &mut [T]) {
    let step = (4096 / std::mem::size_of::<T>()).max(1);
    for i in (0..v.len()).step_by(step) {
        // SAFETY: `i < v.len()`.
        unsafe { std::ptr::write_volatile(v.as_mut_ptr().add(i), T::zero()) };
    }
}

/// Bytes a tile arena's start is aligned to: a cache line, so that the
/// feature rows (whose stride is a multiple of 16 lanes) start on one and a
/// 16-lane load or store never straddles two (an unaligned one costs two
/// load-port slots; a standalone copy of the panel micro-kernel ran 9%
/// faster aligned).
const ARENA_ALIGN: usize = 64;

/// A zeroed buffer of `len` values whose start is [`ARENA_ALIGN`]-aligned.
struct Arena<T> {
    buf: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Real> Arena<T> {
    fn zeroed(len: usize) -> Self {
        let slack = ARENA_ALIGN / std::mem::size_of::<T>();
        let buf = vec![T::zero(); len + slack];
        let start = buf.as_ptr().align_offset(ARENA_ALIGN).min(slack);
        Arena { buf, start, len }
    }

    fn as_slice(&self) -> &[T] {
        &self.buf[self.start..self.start + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.buf[self.start..self.start + self.len]
    }

    fn as_mut_ptr(&mut self) -> *mut T {
        self.as_mut_slice().as_mut_ptr()
    }
}

struct Scratch<T> {
    inv: Arena<T>,
    /// One tile arena per thread.
    tiles: Vec<Arena<T>>,
    /// [thread][partial] accumulators.
    partials: Vec<Vec<Vec<T>>>,
    ins: Vec<*const u8>,
}

// SAFETY: the raw pointers in `ins` are only meaningful during one call and
// are overwritten before use; the scratch itself owns plain data.
unsafe impl<T: Send> Send for Scratch<T> {}

struct Prog<T> {
    plan: Plan,
    /// The most rows a tile holds.
    rows: usize,
    /// Elements between a tile's feature rows (`tile_stride`).
    stride: usize,
    jit: Jit,
    /// (spec, output index, input index per input slot) when the tile program
    /// runs directly on the batch-major buffers.
    direct: Option<Direct>,
    /// Index in `jit.fns` of the fused (vector-outer) tile program.
    fused: Option<usize>,
    consts: Vec<T>,
    scratch: Mutex<Vec<Scratch<T>>>,
}

/// A compiled CPU kernel.
pub struct CpuKernel {
    graph: Graph,
    dtype: DType,
    threads: usize,
    p32: Option<Prog<f32>>,
    p64: Option<Prog<f64>>,
    compile_seconds: f64,
}

impl CpuKernel {
    fn compile(graph: &Graph, dtype: DType, threads: usize) -> Result<CpuKernel, String> {
        let t0 = Instant::now();
        let plan = build_plan(graph, dtype)?;
        let (mut p32, mut p64) = (None, None);
        match dtype {
            DType::F32 => p32 = Some(Prog::<f32>::new(plan, threads.max(1))?),
            DType::F64 => p64 = Some(Prog::<f64>::new(plan, threads.max(1))?),
        }
        Ok(CpuKernel {
            graph: graph.clone(),
            dtype,
            threads: threads.max(1),
            p32,
            p64,
            compile_seconds: t0.elapsed().as_secs_f64(),
        })
    }
    /// Wall time spent planning and generating code.
    pub fn compile_seconds(&self) -> f64 {
        self.compile_seconds
    }
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// The scratch one call allocates (see [`Kernel::scratch_bytes`]).
    fn scratch(&self) -> u64 {
        match (&self.p32, &self.p64) {
            (Some(p), _) => p.scratch_bytes(self.threads),
            (_, Some(p)) => p.scratch_bytes(self.threads),
            _ => 0,
        }
    }
}

/// The arenas of one call: the invariant arena, then per thread a tile of
/// `tile_feats × stride` values and the batch-summed partials.
fn scratch_bytes(plan: &Plan, stride: usize, elem: usize, threads: usize) -> u64 {
    let elem = elem as u64;
    let inv = plan.inv_len.max(1) as u64 * elem;
    let tile = (plan.tile_feats as u64)
        .saturating_mul(stride as u64)
        .max(1)
        * elem;
    let partials = plan.partials.iter().map(|&n| n as u64).sum::<u64>() * elem;
    inv.saturating_add((threads as u64).saturating_mul(tile.saturating_add(partials)))
}

impl<T: Real> Prog<T> {
    /// Plans the arenas for calls on up to `threads` threads and compiles
    /// the code; refused when the arenas alone would exceed the memory
    /// limit (a per-sample graph of tens of millions of values: every tile
    /// holds at least 16 rows of it).
    fn new(plan: Plan, threads: usize) -> Result<Prog<T>, String> {
        let elem = std::mem::size_of::<T>();
        let spec = direct_spec(&plan);
        let fused = use_fused(&plan, spec.is_some());
        let rows = tile_rows(&plan, elem);
        let stride = tile_stride(rows, elem);
        let need = scratch_bytes(&plan, stride, elem, threads);
        if need > crate::budget::max_memory() {
            return Err(format!(
                "this kernel needs about {} of scratch memory ({} values per sample in tiles of {rows} rows, {threads} thread{}); {}: use a smaller x or fewer intermediate values per sample",
                crate::budget::bytes_text(need as f64),
                plan.tile_feats,
                if threads == 1 { "" } else { "s" },
                crate::budget::limit_text()
            ));
        }
        let jit = codegen::compile(
            &plan,
            elem == 8,
            stride,
            spec.as_ref(),
            fused,
            use_asm_loops(),
            None,
        )?;
        let consts = plan.consts.iter().map(|&v| T::from_f64(v)).collect();
        let direct = spec.map(|spec| Direct {
            func: plan.groups.len(),
            n: spec.n,
            // invariant: follows from the compiled plan (built from a verified graph).
            out: plan.outputs.iter().position(|o| o.variant).unwrap(),
            slot_inputs: (0..spec.dst_slot)
                .map(|k| (plan.sample_in[k].0, plan.sample_in[k].2))
                .collect(),
            spec,
        });
        let fused = fused.then(|| plan.groups.len() + direct.is_some() as usize);
        let prog = Prog {
            plan,
            rows,
            stride,
            jit,
            direct,
            fused,
            consts,
            scratch: Mutex::new(vec![]),
        };
        // One arena set is made at compile time, so a sampler's or a
        // trainer's first step does not pay for faulting it in — when it is
        // small: a large one is committed only once a run has been checked
        // against the memory limit (its first call).
        if need <= PREFAULT_BYTES {
            let first = prog.new_scratch(threads);
            prog.give_back(first);
        }
        Ok(prog)
    }

    fn scratch_bytes(&self, threads: usize) -> u64 {
        scratch_bytes(&self.plan, self.stride, std::mem::size_of::<T>(), threads)
    }

    /// Arenas for calls on `threads` threads, their pages faulted in (a
    /// zeroed allocation maps them on first write, in the middle of a call).
    fn new_scratch(&self, threads: usize) -> Scratch<T> {
        let p = &self.plan;
        let mut s = Scratch {
            inv: Arena::zeroed(p.inv_len.max(1)),
            tiles: (0..threads)
                .map(|_| Arena::zeroed((p.tile_feats * self.stride).max(1)))
                .collect(),
            partials: (0..threads)
                .map(|_| p.partials.iter().map(|&n| vec![T::zero(); n]).collect())
                .collect(),
            ins: vec![],
        };
        fault_in(s.inv.as_mut_slice());
        s.tiles.iter_mut().for_each(|t| fault_in(t.as_mut_slice()));
        s
    }

    /// Runs one step. `tile` may be null in the invariant program.
    ///
    /// # Safety
    /// Pointers must address arenas laid out by this program's plan.
    #[allow(clippy::too_many_arguments)]
    unsafe fn exec(
        &self,
        step: &Step,
        tile: *mut T,
        inv: *mut T,
        ins: *const *const u8,
        partials: &mut [Vec<T>],
        rows: usize,
        nvec: usize,
    ) {
        match step {
            Step::Scan(sc) => match sc.fused {
                // SAFETY: the generated loop addresses the arenas its plan laid out.
                Some(fi) => unsafe {
                    (self.jit.fns[fi])(
                        tile as *mut u8,
                        inv as *mut u8,
                        self.consts.as_ptr() as *const u8,
                        ins,
                        self.plan.tables.as_ptr(),
                        nvec as i64,
                    )
                },
                None => unsafe { self.scan(sc, tile, inv, ins, partials, rows, nvec) },
            },
            Step::Loop(i) => unsafe {
                (self.jit.fns[*i])(
                    tile as *mut u8,
                    inv as *mut u8,
                    self.consts.as_ptr() as *const u8,
                    ins,
                    self.plan.tables.as_ptr(),
                    nvec as i64,
                )
            },
            Step::ArrayUnary {
                sigmoid,
                src,
                dst,
                feats,
                bias,
                prod,
            } => {
                let (Loc::Tile(so), Loc::Tile(d)) = (*src, *dst) else {
                    // invariant: follows from the compiled plan (built from a verified graph).
                    unreachable!("array steps read and write tile buffers")
                };
                let t = self.stride;
                let rows16 = vecmath::Rows {
                    feats: *feats,
                    stride: t,
                    n: rows,
                };
                if let Some((b, pre)) = bias {
                    let Loc::Tile(po) = *pre else {
                        // invariant: follows from the compiled plan.
                        unreachable!("array steps write tile buffers")
                    };
                    // SAFETY: shared operands of `feats` elements (plan).
                    let bp = unsafe { self.shared_at(*b, inv, ins) };
                    let mo = match prod {
                        Some(Loc::Tile(m)) => Some(*m),
                        None => None,
                        // invariant: follows from the compiled plan.
                        Some(_) => unreachable!("array steps write tile buffers"),
                    };
                    // SAFETY: f32 kernels only (checked at plan time); rows ≤ T
                    // and T a multiple of 16 lanes (`tile_stride`).
                    unsafe {
                        vecmath::apply_biased(
                            *sigmoid,
                            tile.add(so * t) as *const f32,
                            bp as *const f32,
                            tile.add(po * t) as *mut f32,
                            tile.add(d * t) as *mut f32,
                            mo.map_or(std::ptr::null_mut(), |m| tile.add(m * t) as *mut f32),
                            rows16,
                        )
                    }
                    return;
                }
                // SAFETY: as above.
                unsafe {
                    vecmath::apply(
                        *sigmoid,
                        tile.add(so * t) as *const f32,
                        tile.add(d * t) as *mut f32,
                        rows16,
                    )
                }
            }
            Step::Pack { src, k, n, dst } => {
                let Loc::Inv(off) = *dst else {
                    // invariant: the planner packs into invariant buffers.
                    unreachable!("pack into a tile buffer")
                };
                let consts = self.consts.as_ptr() as *mut T;
                // SAFETY: f32 kernels only (as panel steps); the operand
                // addresses a shared region of n×k elements and the panel
                // buffer was sized by the plan.
                unsafe {
                    let (w, fs, ps) = operand_at(src, 1, tile, inv, ins, consts, partials);
                    let out = inv.add(off) as *mut f32;
                    panel::pack(w as *const f32, fs, ps, *k, *n, out);
                }
            }
            Step::Gemm(g) => {
                let t = self.stride;
                let consts = self.consts.as_ptr() as *mut T;
                let mut operand = |o: &plan::Operand| unsafe {
                    operand_at(o, t, tile, inv, ins, consts, partials)
                };
                if let Some(Loc::Inv(p)) = g.packed {
                    let (d, drs, _) = operand(&g.dst);
                    let (x, xrs, _) = operand(&g.rhs);
                    let Dim::N(n) = g.m else {
                        // invariant: panel steps have a feature count as `m`.
                        unreachable!("panel gemm over rows")
                    };
                    let Dim::N(k) = g.k else {
                        // invariant: as above.
                        unreachable!("panel gemm contracting rows")
                    };
                    let lanes = match g.n {
                        Dim::Lanes(c) => (c - 1) * t + rows,
                        _ => rows,
                    };
                    // SAFETY: f32 kernels only (the planner emits panel steps
                    // for f32 with `panel::available()`); `x` and `dst` are
                    // tile buffers of stride t ≥ rows (for `Lanes(c)`, row
                    // strides of c·t ≥ lanes), the panel was packed by the
                    // invariant program.
                    unsafe {
                        panel::gemm(
                            lanes,
                            n,
                            k,
                            x as *const f32,
                            xrs as usize,
                            inv.add(p) as *const f32,
                            d as *mut f32,
                            drs as usize,
                            g.accumulate,
                            g.epilogue.map(|e| self.epilogue_at(&e, tile, inv, ins)),
                        )
                    };
                    return;
                }
                let (d, drs, dcs) = operand(&g.dst);
                let (a, ars, acs) = operand(&g.lhs);
                let (b, brs, bcs) = operand(&g.rhs);
                let dim = |d: Dim| match d {
                    Dim::N(n) => n,
                    Dim::Rows => rows,
                    Dim::Lanes(c) => (c - 1) * t + rows,
                };
                let one = T::from_f64(1.0);
                // SAFETY: the operands address arena regions sized by the plan.
                unsafe {
                    gemm::gemm(
                        dim(g.m),
                        dim(g.n),
                        dim(g.k),
                        d,
                        dcs,
                        drs,
                        g.accumulate,
                        a,
                        acs,
                        ars,
                        b,
                        bcs,
                        brs,
                        one,
                        one,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            }
        }
    }

    /// Runs a scan step ([`plan::ScanStep`]): its body's steps once per
    /// row, the body's inputs filled by copies (whole feature rows of the
    /// tile, or a shared value splatted across the lanes).
    ///
    /// # Safety
    /// As [`Prog::exec`]; scan steps run in the tile program only.
    #[allow(clippy::too_many_arguments)]
    unsafe fn scan(
        &self,
        sc: &plan::ScanStep,
        tile: *mut T,
        inv: *mut T,
        ins: *const *const u8,
        partials: &mut [Vec<T>],
        rows: usize,
        nvec: usize,
    ) {
        let lanes = nvec * (16 / std::mem::size_of::<T>());
        let fill = |dst: Option<Loc>, src: &OutSrc, from: usize, feats: usize| {
            if let Some(Loc::Tile(d)) = dst {
                // SAFETY: plan offsets; lanes ≤ the tile stride.
                unsafe { self.put(tile, d, src, from, feats, (tile, inv, ins), lanes) };
            }
        };
        let carry = sc.inputs[0].feats;
        for k in &sc.inputs[1 + sc.seqs..] {
            fill(k.dst, &k.src, 0, k.feats);
        }
        let Loc::Tile(out) = sc.out else {
            // invariant: the planner gives every scan a tile buffer.
            unreachable!("scan into a non-tile buffer")
        };
        for t in crate::ir::scan::order(sc.len, sc.reverse) {
            let init = &sc.inputs[0];
            match crate::ir::scan::previous(t, sc.len, sc.reverse) {
                Some(p) => fill(init.dst, &OutSrc::Loc(sc.out), p * carry, carry),
                None => fill(init.dst, &init.src, 0, carry),
            }
            for x in &sc.inputs[1..=sc.seqs] {
                fill(x.dst, &x.src, t * x.feats, x.feats);
            }
            for step in &sc.body {
                // SAFETY: the body's buffers were laid out with this plan's.
                unsafe { self.exec(step, tile, inv, ins, partials, rows, nvec) };
            }
            // SAFETY: as above.
            unsafe {
                self.put(
                    tile,
                    out + t * carry,
                    &sc.next,
                    0,
                    carry,
                    (tile, inv, ins),
                    lanes,
                )
            };
        }
    }

    /// The address of a shared (batch-invariant) buffer.
    ///
    /// # Safety
    /// `inv` and `ins` as for [`Prog::exec`].
    unsafe fn shared_at(&self, loc: Loc, inv: *mut T, ins: *const *const u8) -> *mut T {
        // SAFETY: the caller's contract; offsets from the plan.
        unsafe {
            match loc {
                Loc::Inv(off) => inv.add(off),
                Loc::Input(i) => *ins.add(i) as *mut T,
                Loc::Const(off) => (self.consts.as_ptr() as *mut T).add(off),
                // invariant: the planner fuses only shared biases.
                Loc::Tile(_) | Loc::Partial(_) => unreachable!("a bias in a batch buffer"),
            }
        }
    }

    /// A GEMM epilogue's buffers in this call's arenas.
    ///
    /// # Safety
    /// As [`Prog::exec`]; f32 kernels only (as panel steps).
    unsafe fn epilogue_at(
        &self,
        e: &plan::Epilogue,
        tile: *mut T,
        inv: *mut T,
        ins: *const *const u8,
    ) -> panel::Epilogue {
        let t = self.stride;
        let at = |l: Loc| match l {
            // SAFETY: tile offsets from the plan.
            Loc::Tile(off) => unsafe { tile.add(off * t) as *mut f32 },
            // invariant: the planner's epilogues read and write tile buffers.
            _ => unreachable!("an epilogue buffer outside the tile"),
        };
        let null = std::ptr::null_mut();
        match *e {
            plan::Epilogue::Times(by) => panel::Epilogue::Times(at(by)),
            plan::Epilogue::Layer(e) => panel::Epilogue::Layer(panel::Layer {
                sigmoid: e.sigmoid,
                // SAFETY: the caller's contract.
                bias: unsafe { self.shared_at(e.bias, inv, ins) } as *const f32,
                pre: e.pre,
                act: e.act.map_or(null, at),
                prod: e.prod.map_or(null, at),
                grad: e.grad.map_or(null, |(g, _)| at(g)),
                grad_scale: match e.grad {
                    // SAFETY: the caller's contract.
                    Some((_, Some(sc))) => (unsafe { self.shared_at(sc, inv, ins) }) as *const f32,
                    _ => std::ptr::null(),
                },
            }),
        }
    }

    /// `feats` feature rows of the tile from `dst` on ← the features
    /// `from..` of `src` (tile rows are copied, other values splatted).
    ///
    /// # Safety
    /// Offsets from the plan; `lanes` ≤ the tile stride.
    #[allow(clippy::too_many_arguments)]
    unsafe fn put(
        &self,
        tile: *mut T,
        dst: usize,
        src: &OutSrc,
        from: usize,
        feats: usize,
        (_, inv, ins): (*mut T, *mut T, *const *const u8),
        lanes: usize,
    ) {
        let t = self.stride;
        for f in 0..feats {
            // SAFETY: the caller's contract.
            unsafe {
                let d = tile.add((dst + f) * t);
                let v = match *src {
                    OutSrc::Loc(Loc::Tile(o)) => {
                        std::ptr::copy(tile.add((o + from + f) * t), d, lanes);
                        continue;
                    }
                    OutSrc::Loc(Loc::Inv(o)) => *inv.add(o + from + f),
                    OutSrc::Loc(Loc::Input(i)) => *(*ins.add(i) as *const T).add(from + f),
                    OutSrc::Loc(Loc::Const(o)) => self.consts[o + from + f],
                    OutSrc::Scalar(v) => T::from_f64(v),
                    // invariant: scan operands are never batch-summed partials.
                    OutSrc::Loc(Loc::Partial(_)) => unreachable!("a scan reading a partial"),
                };
                std::slice::from_raw_parts_mut(d, lanes).fill(v);
            }
        }
    }

    fn run(
        &self,
        graph: &Graph,
        threads: usize,
        inputs: &[&[T]],
        outputs: &mut [&mut [T]],
        batch: usize,
    ) -> Result<(), String> {
        let mut s = self.take_scratch(threads);
        let r = self.call(&mut s, graph, threads, inputs, outputs, batch, true);
        self.give_back(s);
        r
    }

    /// Pools arena sets for `callers` concurrent calls on `threads` threads
    /// each, when together they are small enough to commit before a run has
    /// been checked against the memory limit (as at compile time).
    fn prepare(&self, threads: usize, callers: usize) {
        let need = self.scratch_bytes(threads).saturating_mul(callers as u64);
        if need > PREFAULT_BYTES {
            return;
        }
        let mut pool = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        let ready = pool.iter().filter(|s| s.tiles.len() >= threads).count();
        for _ in ready..callers {
            pool.push(self.new_scratch(threads));
        }
    }

    /// A pooled arena set with tiles for at least `threads` threads, or a
    /// new one.
    fn take_scratch(&self, threads: usize) -> Scratch<T> {
        let mut pool = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        match pool.iter().position(|s| s.tiles.len() >= threads) {
            Some(i) => pool.swap_remove(i),
            None => {
                drop(pool);
                self.new_scratch(threads)
            }
        }
    }

    fn give_back(&self, s: Scratch<T>) {
        self.scratch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(s);
    }

    /// The invariant program into `s.inv`.
    ///
    /// # Safety
    /// `ins` must hold the address of every input of checked length.
    unsafe fn invariants(&self, s: &mut Scratch<T>, ins: *const *const u8) {
        for step in &self.plan.inv_steps {
            // SAFETY: arenas sized by the plan; the caller's contract.
            unsafe {
                self.exec(
                    step,
                    std::ptr::null_mut(),
                    s.inv.as_mut_ptr(),
                    ins,
                    &mut [],
                    1,
                    1,
                )
            };
        }
    }

    /// One call on scratch `s`. With `invariants` false the invariant arena
    /// is reused as the previous call on `s` left it: the caller guarantees
    /// that every shared input holds the same values as then.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        s: &mut Scratch<T>,
        graph: &Graph,
        threads: usize,
        inputs: &[&[T]],
        outputs: &mut [&mut [T]],
        batch: usize,
        invariants: bool,
    ) -> Result<(), String> {
        check_io(graph, inputs, outputs, batch)?;
        let p = &self.plan;
        // The chunks of a busy pool would run one after another on this
        // thread, each in its own tile arena: one chunk does the same work
        // in one arena — when no batch sum follows the chunking (partials
        // are added in chunk order, and must not depend on the pool).
        let nt = if p.partials.is_empty() && crate::backend::pool::global().busy() {
            1
        } else {
            threads.min(batch.div_ceil(MIN_ROWS_PER_THREAD)).max(1)
        };
        s.ins.clear();
        s.ins.extend(inputs.iter().map(|x| x.as_ptr() as *const u8));
        let ins = s.ins.as_ptr();
        // 1. The invariant program.
        if invariants {
            // SAFETY: `ins` holds every input's address (checked above).
            unsafe { self.invariants(s, ins) };
        }
        // 2. The tile program, one chunk per thread.
        for part in s.partials.iter_mut().take(nt) {
            for v in part.iter_mut() {
                v.fill(T::zero());
            }
        }
        if batch > 0 {
            let chunk = batch.div_ceil(nt);
            let inv_ptr = SendPtr(s.inv.as_mut_ptr());
            let tiles: Vec<SendPtr<T>> = s
                .tiles
                .iter_mut()
                .map(|t| SendPtr(t.as_mut_ptr()))
                .collect();
            let parts: Vec<SendPtr<Vec<T>>> = s
                .partials
                .iter_mut()
                .map(|v| SendPtr(v.as_mut_ptr()))
                .collect();
            let outs: Vec<SendPtr<T>> = outputs
                .iter_mut()
                .map(|o| SendPtr(o.as_mut_ptr()))
                .collect();
            let ins_ptr = SendPtr(ins as *mut *const u8);
            let task = |t: usize| {
                let r0 = t * chunk;
                let r1 = ((t + 1) * chunk).min(batch);
                // SAFETY: thread t owns tile t and partial set t; it writes
                // output rows r0..r1 only.
                unsafe {
                    let parts = std::slice::from_raw_parts_mut(parts[t].get(), p.partials.len());
                    self.run_chunk(
                        inputs,
                        &outs,
                        tiles[t].get(),
                        inv_ptr.get(),
                        ins_ptr.get(),
                        parts,
                        r0,
                        r1,
                    );
                }
            };
            crate::backend::pool::global().run(nt, &task)?;
        }
        // 3. Combine partials in thread order; invariant outputs.
        for (j, o) in p.outputs.iter().enumerate() {
            let out = &mut outputs[j];
            if o.variant {
                if let Some(pi) = o.partial {
                    out.copy_from_slice(&s.partials[0][pi]);
                    for t in 1..nt {
                        for (a, b) in out.iter_mut().zip(&s.partials[t][pi]) {
                            *a = T::binary(BinaryOp::Add, *a, *b);
                        }
                    }
                }
                continue;
            }
            let src: &[T] = match o.src {
                OutSrc::Loc(Loc::Inv(off)) => &s.inv.as_slice()[off..off + o.numel],
                OutSrc::Loc(Loc::Input(i)) => inputs[i],
                OutSrc::Loc(Loc::Const(off)) => &self.consts[off..off + o.numel],
                OutSrc::Scalar(_) | OutSrc::Loc(_) => &[],
            };
            let val = |f: usize| match o.src {
                OutSrc::Scalar(v) => T::from_f64(v),
                _ => src[f],
            };
            match o.reduce {
                BatchReduce::PerSample => {
                    for b in 0..batch {
                        for f in 0..o.numel {
                            out[b * o.numel + f] = val(f);
                        }
                    }
                }
                BatchReduce::Sum => {
                    for (f, slot) in out.iter_mut().enumerate() {
                        let mut acc = T::zero();
                        for _ in 0..batch {
                            acc = T::binary(BinaryOp::Add, acc, val(f));
                        }
                        *slot = acc;
                    }
                }
            }
        }
        Ok(())
    }

    /// Rows r0..r1 in tiles of `self.rows`.
    ///
    /// # Safety
    /// `tile`, `inv`, `parts` are this thread's arenas; `outs` are the
    /// caller's output buffers (checked lengths).
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_chunk(
        &self,
        inputs: &[&[T]],
        outs: &[SendPtr<T>],
        tile: *mut T,
        inv: *mut T,
        ins: *mut *const u8,
        parts: &mut [Vec<T>],
        r0: usize,
        r1: usize,
    ) {
        let p = &self.plan;
        if let Some(d) = &self.direct {
            let mut slots = [std::ptr::null::<u8>(); MAX_DIRECT_SLOTS];
            for (k, &(i, numel)) in d.slot_inputs.iter().enumerate() {
                slots[k] = inputs[i][r0 * numel..].as_ptr() as *const u8;
            }
            slots[d.spec.dst_slot] = unsafe { outs[d.out].0.add(r0 * d.n) as *const u8 };
            // SAFETY: every slot addresses rows r0..r1 of an n-wide buffer
            // (lengths checked by `check_io`); the output rows are this
            // thread's alone.
            unsafe {
                (self.jit.fns[d.func])(
                    slots.as_ptr() as *mut u8,
                    inv as *mut u8,
                    self.consts.as_ptr() as *const u8,
                    ins,
                    p.tables.as_ptr(),
                    (r1 - r0) as i64,
                )
            };
            return;
        }
        let t = self.stride;
        let w = 16 / std::mem::size_of::<T>();
        let mut start = r0;
        while start < r1 {
            let rows = (r1 - start).min(self.rows);
            for &(i, off, n) in &p.sample_in {
                let src = &inputs[i][start * n..(start + rows) * n];
                unsafe { transpose_in(src, rows, n, tile.add(off * t), t) };
            }
            if let Some(fi) = self.fused {
                // SAFETY: the fused function addresses the same arenas as the
                // loops it replaces.
                unsafe {
                    (self.jit.fns[fi])(
                        tile as *mut u8,
                        inv as *mut u8,
                        self.consts.as_ptr() as *const u8,
                        ins,
                        p.tables.as_ptr(),
                        rows.div_ceil(w) as i64,
                    )
                };
            } else {
                for step in &p.tile_steps {
                    unsafe { self.exec(step, tile, inv, ins, parts, rows, rows.div_ceil(w)) };
                }
            }
            for (j, o) in p.outputs.iter().enumerate() {
                if !o.variant || o.direct {
                    continue;
                }
                let OutSrc::Loc(Loc::Tile(off)) = o.src else {
                    continue;
                };
                let n = o.numel;
                let src = unsafe { tile.add(off * t) };
                match o.reduce {
                    BatchReduce::PerSample => unsafe {
                        let dst =
                            std::slice::from_raw_parts_mut(outs[j].0.add(start * n), rows * n);
                        transpose_out(src, rows, n, dst, t);
                    },
                    BatchReduce::Sum => {
                        // invariant: follows from the compiled plan (built from a verified graph).
                        let acc = &mut parts[o.partial.unwrap()];
                        for (f, a) in acc.iter_mut().enumerate() {
                            let row = unsafe { std::slice::from_raw_parts(src.add(f * t), rows) };
                            let mut x = *a;
                            for &v in row {
                                x = T::binary(BinaryOp::Add, x, v);
                            }
                            *a = x;
                        }
                    }
                }
            }
            start += rows;
        }
    }
}

/// The address of a GEMM operand and its row and column strides in
/// elements (`t` is the tile stride; 1 outside tiles).
///
/// # Safety
/// The pointers must be the arenas the plan was laid out for.
unsafe fn operand_at<T>(
    o: &plan::Operand,
    t: usize,
    tile: *mut T,
    inv: *mut T,
    ins: *const *const u8,
    consts: *mut T,
    partials: &mut [Vec<T>],
) -> (*mut T, isize, isize) {
    let scale = if matches!(o.loc, Loc::Tile(_)) { t } else { 1 };
    // SAFETY: offsets come from the plan's memory layout.
    let ptr = unsafe {
        match o.loc {
            Loc::Tile(off) => tile.add((off + o.off) * t),
            Loc::Inv(off) => inv.add(off + o.off),
            Loc::Input(i) => (*ins.add(i) as *mut T).add(o.off),
            Loc::Const(off) => consts.add(off + o.off),
            Loc::Partial(j) => partials[j].as_mut_ptr().add(o.off),
        }
    };
    let s = |st: Stride| match st {
        Stride::Feat(s) => s * scale as isize,
        Stride::Lane => 1,
    };
    (ptr, s(o.rs), s(o.cs))
}

/// Whether the tile program runs as one fused vector-outer loop
/// (`codegen::gen_fused`; `EBM_FUSE=0` keeps the group-by-group loops).
fn use_fused(plan: &Plan, direct: bool) -> bool {
    !direct && codegen::fusable(plan) && std::env::var("EBM_FUSE").map_or(true, |v| v != "0")
}

/// Sample inputs plus the output a batch-major direct loop may address.
const MAX_DIRECT_SLOTS: usize = 16;

struct Direct {
    spec: DirectSpec,
    /// Index of `jit.fns` of the direct loop.
    func: usize,
    n: usize,
    /// The per-sample output it writes.
    out: usize,
    /// (graph input index, numel) of each input slot.
    slot_inputs: Vec<(usize, usize)>,
}

/// Whether the tile program is a single elementwise loop over per-sample
/// values of one size `n`, writing the only batch-dependent output: then it
/// can run on the batch-major buffers directly (`codegen::gen_direct`).
/// Sample inputs must be read whole with the identity map; other leaves must
/// be scalars or per-feature vectors (affine maps of stride 0 or 1).
fn direct_spec(plan: &Plan) -> Option<DirectSpec> {
    if std::env::var("EBM_DIRECT").is_ok_and(|v| v == "0") {
        return None;
    }
    let [Step::Loop(gi)] = plan.tile_steps[..] else {
        return None;
    };
    let g = &plan.groups[gi];
    let n = g.domain;
    // Over one feature the stride of a map does not matter.
    let identity = |m: plan::Map| match m {
        plan::Map::Affine { a: 0, s } => s == 1 || n == 1,
        _ => false,
    };
    let Loc::Tile(doff) = g.dst else {
        return None;
    };
    if g.red > 1 || g.store != plan::Store::Set || !g.variant || !identity(g.dst_map) {
        return None;
    }
    let mut variant = plan.outputs.iter().filter(|o| o.variant);
    let out = variant.next()?;
    if variant.next().is_some()
        || out.reduce != BatchReduce::PerSample
        || out.direct
        || out.numel != n
        || !matches!(out.src, OutSrc::Loc(Loc::Tile(o)) if o == doff)
    {
        return None;
    }
    if plan.sample_in.len() + 1 > MAX_DIRECT_SLOTS {
        return None;
    }
    let mut load_slot = vec![];
    for e in &g.exprs {
        let plan::Expr::Load { loc, map } = *e else {
            continue;
        };
        match (loc, map) {
            (Loc::Tile(off), m) => {
                let k = plan.sample_in.iter().position(|s| s.1 == off)?;
                if !identity(m) || plan.sample_in[k].2 != n {
                    return None;
                }
                load_slot.push((off, k));
            }
            (Loc::Partial(_), _) | (_, plan::Map::Table(_)) => return None,
            (_, plan::Map::Affine { s, .. }) if s != 0 && s != 1 && n > 1 => return None,
            _ => {}
        }
    }
    Some(DirectSpec {
        group: gi,
        n,
        load_slot,
        dst_slot: plan.sample_in.len(),
    })
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
impl<T> SendPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// Side of the square blocks the scalar transposes work in.
const TB: usize = 16;

/// Batch-major rows → feature-major tile.
///
/// # Safety
/// `tile` holds `n` feature rows of stride `t ≥ rows`.
unsafe fn transpose_in<T: Copy>(src: &[T], rows: usize, n: usize, tile: *mut T, t: usize) {
    assert!(src.len() >= rows * n);
    if n == 1 {
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), tile, rows) };
        return;
    }
    if n == 2 {
        // De-interleave (2-D chains: W1, W3); rustc vectorises this.
        // SAFETY: two feature rows of stride t ≥ rows.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts_mut(tile, rows),
                std::slice::from_raw_parts_mut(tile.add(t), rows),
            )
        };
        for ((p, a), b) in src[..2 * rows].chunks_exact(2).zip(a).zip(b) {
            *a = p[0];
            *b = p[1];
        }
        return;
    }
    // SAFETY: bounds asserted above; the tile holds n rows of stride t ≥ rows.
    unsafe { simd::transpose(src.as_ptr(), n, 1, tile, 1, t, rows, n) }
}

/// Feature-major tile → batch-major rows.
///
/// # Safety
/// `tile` holds `n` feature rows of stride `t ≥ rows`.
unsafe fn transpose_out<T: Copy>(tile: *const T, rows: usize, n: usize, dst: &mut [T], t: usize) {
    assert!(dst.len() >= rows * n);
    if n == 1 {
        dst[..rows].copy_from_slice(unsafe { std::slice::from_raw_parts(tile, rows) });
        return;
    }
    if n == 2 {
        // SAFETY: two feature rows of stride t ≥ rows.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(tile, rows),
                std::slice::from_raw_parts(tile.add(t), rows),
            )
        };
        for ((p, a), b) in dst[..2 * rows].chunks_exact_mut(2).zip(a).zip(b) {
            p[0] = *a;
            p[1] = *b;
        }
        return;
    }
    // SAFETY: as above, with the roles swapped.
    unsafe { simd::transpose(tile, 1, t, dst.as_mut_ptr(), n, 1, rows, n) }
}

/// Strided 2-D copies `dst[i·drs + j·dcs] = src[i·srs + j·scs]` for an
/// `ni × nj` block, with 4×4 (f32) / 2×2 (f64) SSE register transposes when
/// the source is contiguous along `j` and the destination along `i`.
mod simd {
    use super::TB;

    /// # Safety
    /// Both strided regions must be valid for the given extents.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn transpose<T: Copy>(
        src: *const T,
        srs: usize,
        scs: usize,
        dst: *mut T,
        drs: usize,
        dcs: usize,
        ni: usize,
        nj: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            let size = std::mem::size_of::<T>();
            if size == 4 && scs == 1 && drs == 1 {
                // src rows i are contiguous in j; dst columns j contiguous in i.
                unsafe { t4x4(src as *const f32, srs, dst as *mut f32, dcs, ni, nj) };
                return;
            }
            if size == 4 && srs == 1 && dcs == 1 {
                unsafe { t4x4(src as *const f32, scs, dst as *mut f32, drs, nj, ni) };
                return;
            }
            if size == 8 && scs == 1 && drs == 1 {
                unsafe { t2x2(src as *const f64, srs, dst as *mut f64, dcs, ni, nj) };
                return;
            }
            if size == 8 && srs == 1 && dcs == 1 {
                unsafe { t2x2(src as *const f64, scs, dst as *mut f64, drs, nj, ni) };
                return;
            }
        }
        for i0 in (0..ni).step_by(TB) {
            for j0 in (0..nj).step_by(TB) {
                for i in i0..(i0 + TB).min(ni) {
                    for j in j0..(j0 + TB).min(nj) {
                        unsafe { *dst.add(i * drs + j * dcs) = *src.add(i * srs + j * scs) };
                    }
                }
            }
        }
    }

    /// `dst[j·ds + i] = src[i·ss + j]` for i < ni, j < nj.
    #[cfg(target_arch = "x86_64")]
    unsafe fn t4x4(src: *const f32, ss: usize, dst: *mut f32, ds: usize, ni: usize, nj: usize) {
        use std::arch::x86_64::*;
        let (bi, bj) = (ni / 4 * 4, nj / 4 * 4);
        unsafe {
            for i in (0..bi).step_by(4) {
                for j in (0..bj).step_by(4) {
                    let r0 = _mm_loadu_ps(src.add(i * ss + j));
                    let r1 = _mm_loadu_ps(src.add((i + 1) * ss + j));
                    let r2 = _mm_loadu_ps(src.add((i + 2) * ss + j));
                    let r3 = _mm_loadu_ps(src.add((i + 3) * ss + j));
                    let t0 = _mm_unpacklo_ps(r0, r1);
                    let t1 = _mm_unpacklo_ps(r2, r3);
                    let t2 = _mm_unpackhi_ps(r0, r1);
                    let t3 = _mm_unpackhi_ps(r2, r3);
                    _mm_storeu_ps(dst.add(j * ds + i), _mm_movelh_ps(t0, t1));
                    _mm_storeu_ps(dst.add((j + 1) * ds + i), _mm_movehl_ps(t1, t0));
                    _mm_storeu_ps(dst.add((j + 2) * ds + i), _mm_movelh_ps(t2, t3));
                    _mm_storeu_ps(dst.add((j + 3) * ds + i), _mm_movehl_ps(t3, t2));
                }
            }
            for i in 0..ni {
                let j_start = if i < bi { bj } else { 0 };
                for j in j_start..nj {
                    *dst.add(j * ds + i) = *src.add(i * ss + j);
                }
            }
        }
    }

    /// `dst[j·ds + i] = src[i·ss + j]` for i < ni, j < nj (f64, 2×2 blocks).
    #[cfg(target_arch = "x86_64")]
    unsafe fn t2x2(src: *const f64, ss: usize, dst: *mut f64, ds: usize, ni: usize, nj: usize) {
        use std::arch::x86_64::*;
        let (bi, bj) = (ni / 2 * 2, nj / 2 * 2);
        unsafe {
            for i in (0..bi).step_by(2) {
                for j in (0..bj).step_by(2) {
                    let r0 = _mm_loadu_pd(src.add(i * ss + j));
                    let r1 = _mm_loadu_pd(src.add((i + 1) * ss + j));
                    _mm_storeu_pd(dst.add(j * ds + i), _mm_unpacklo_pd(r0, r1));
                    _mm_storeu_pd(dst.add((j + 1) * ds + i), _mm_unpackhi_pd(r0, r1));
                }
            }
            for i in 0..ni {
                let j_start = if i < bi { bj } else { 0 };
                for j in j_start..nj {
                    *dst.add(j * ds + i) = *src.add(i * ss + j);
                }
            }
        }
    }
}

fn check_io<T>(
    g: &Graph,
    inputs: &[&[T]],
    outputs: &[&mut [T]],
    batch: usize,
) -> Result<(), String> {
    crate::ir::interp::check_inputs(g, inputs, batch)?;
    if outputs.len() != g.outputs.len() {
        return Err(format!(
            "expected {} output buffers, got {}",
            g.outputs.len(),
            outputs.len()
        ));
    }
    for (o, dst) in g.outputs.iter().zip(outputs) {
        let n = numel(g.shape(o.node));
        let want = match o.reduce {
            BatchReduce::PerSample => batch * n,
            BatchReduce::Sum => n,
        };
        if dst.len() != want {
            return Err(format!(
                "output {} needs {want} values, got {}",
                o.name,
                dst.len()
            ));
        }
    }
    Ok(())
}

impl CpuKernel {
    /// [`Kernel::run_steps`] on one scratch arena: when no shared input
    /// changes between steps, the invariant program (weight packing,
    /// parameter-only products) runs once for the whole loop.
    #[allow(clippy::too_many_arguments)]
    fn steps_on<T: Real>(
        &self,
        p: &Prog<T>,
        lp: &StepLoop<'_>,
        fixed: &[&Buffer],
        state: &mut [Buffer],
        batch: usize,
        frozen: &mut [Option<u64>],
        get: fn(&Buffer) -> Option<&[T]>,
        get_mut: fn(&mut Buffer) -> Option<&mut [T]>,
    ) -> Result<(), BackendError> {
        let reuse = super::shared_inputs_fixed(&self.graph, lp);
        let mut s = p.take_scratch(self.threads);
        let r = super::step_loop(lp, fixed, state, batch, frozen, &mut |ins, outs, t| {
            let ins = super::host_slices(ins, get)?;
            let mut outs = super::host_slices_mut(outs, |b: &mut &mut Buffer| get_mut(b))?;
            let invariants = t == 0 || !reuse;
            p.call(
                &mut s,
                &self.graph,
                self.threads,
                &ins,
                &mut outs,
                batch,
                invariants,
            )
            .map_err(BackendError::Buffers)
        });
        p.give_back(s);
        r
    }
}

impl Kernel for CpuKernel {
    fn scratch_bytes(&self) -> u64 {
        self.scratch()
    }
    fn prepare(&self, callers: usize) {
        match (&self.p32, &self.p64) {
            (Some(p), _) => p.prepare(self.threads, callers),
            (_, Some(p)) => p.prepare(self.threads, callers),
            _ => {}
        }
    }
    fn run_steps(
        &self,
        lp: &StepLoop<'_>,
        fixed: &[&Buffer],
        state: &mut [Buffer],
        batch: usize,
        frozen: &mut [Option<u64>],
    ) -> Result<(), BackendError> {
        match (&self.p32, &self.p64) {
            (Some(p), _) => self.steps_on(
                p,
                lp,
                fixed,
                state,
                batch,
                frozen,
                Buffer::f32s,
                Buffer::f32s_mut,
            ),
            (_, Some(p)) => self.steps_on(
                p,
                lp,
                fixed,
                state,
                batch,
                frozen,
                Buffer::f64s,
                Buffer::f64s_mut,
            ),
            (None, None) => Err(BackendError::Buffers("a kernel without a program".into())),
        }
    }

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
        match &self.p64 {
            Some(p) => p
                .run(&self.graph, self.threads, inputs, outputs, batch)
                .map_err(BackendError::Buffers),
            None => Err(BackendError::WrongDType {
                compiled: "f32",
                called: "f64",
            }),
        }
    }
    fn run_f32(
        &self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        batch: usize,
    ) -> Result<(), BackendError> {
        match &self.p32 {
            Some(p) => p
                .run(&self.graph, self.threads, inputs, outputs, batch)
                .map_err(BackendError::Buffers),
            None => Err(BackendError::WrongDType {
                compiled: "f64",
                called: "f32",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::InputKind;

    #[test]
    fn arenas_start_on_a_cache_line() {
        for len in [1, 15, 16, 1000, 100_000] {
            let mut a = Arena::<f32>::zeroed(len);
            assert_eq!(a.as_mut_ptr() as usize % ARENA_ALIGN, 0, "f32 × {len}");
            assert_eq!(a.as_slice().len(), len);
            let mut b = Arena::<f64>::zeroed(len);
            assert_eq!(b.as_mut_ptr() as usize % ARENA_ALIGN, 0, "f64 × {len}");
            assert!(b.as_slice().iter().all(|&v| v == 0.0));
        }
    }

    /// `prepare(n)` leaves `n` arena sets pooled, so `n` workers' first
    /// calls take one each instead of allocating; more callers than the
    /// prefault budget allows are not committed ahead.
    #[test]
    fn prepare_pools_an_arena_set_per_caller() {
        let mut g = Graph::new("sq");
        let x = g.input_node("x", vec![4], InputKind::Sample);
        let sq = g.mul(x, x);
        let e = g.sum_all(sq);
        g.add_output("energy", e, crate::ir::BatchReduce::PerSample);
        let k = CpuKernel::compile(&g, DType::F32, 1).unwrap();
        let p = k.p32.as_ref().unwrap();
        let pooled = || p.scratch.lock().unwrap().len();
        assert_eq!(pooled(), 1, "one set made at compile time");
        k.prepare(3);
        assert_eq!(pooled(), 3);
        k.prepare(2);
        assert_eq!(pooled(), 3, "sets already pooled are counted");
        let too_many = (PREFAULT_BYTES / k.scratch_bytes().max(1)) as usize + 1;
        k.prepare(too_many);
        assert_eq!(
            pooled(),
            3,
            "beyond the prefault budget nothing is committed"
        );
    }
}
