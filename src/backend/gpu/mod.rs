//! The GPU backend: IR graphs run as WGSL compute shaders through wgpu, in
//! f32. `wgsl` writes one entry point per materialised node and the arena
//! layout; this module owns the device, turns a program into pipelines and
//! runs a call: the batch is cut into chunks that fit the device's largest
//! storage binding, each chunk's inputs are written into the arena, every
//! pass is dispatched in order, and the outputs are read back.
//!
//! The device is opened once per process (the first `Gpu::new`); when no
//! adapter exists the error names the problem instead of panicking, and
//! wgpu's own errors (shader validation, lost devices) are caught through
//! error scopes and an uncaptured-error handler, never as a panic.

mod held;
mod steps;
pub mod wgsl;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use wgpu::util::DeviceExt;

use super::{
    Arg, Backend, BackendError, Buffer, DType, Dest, HostData, Kernel, StepLoop, verified,
};
use crate::ir::{BatchReduce, Graph};
use wgsl::{OutputSlot, Program, Region, Source};

/// The opened device.
struct Device {
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// "llvmpipe (LLVM 15.0.6, 256 bits), Vulkan, driver llvmpipe".
    name: String,
    /// Largest storage binding, in f32 values.
    max_values: usize,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    /// The step loop's module: the arena, the step buffer (`u32`), the params,
    /// the step index within a submit (a uniform at a dynamic offset), the
    /// history of recorded outputs.
    step_layout: wgpu::BindGroupLayout,
    step_pipeline_layout: wgpu::PipelineLayout,
    /// Bytes between dynamic offsets of a uniform binding.
    uniform_align: u64,
    /// The step-index uniform (`steps::ticks`), made once.
    ticks: wgpu::Buffer,
    /// The last error wgpu reported outside an error scope.
    uncaptured: Arc<Mutex<Option<String>>>,
}

fn device() -> Result<Arc<Device>, BackendError> {
    static DEVICE: OnceLock<Result<Arc<Device>, String>> = OnceLock::new();
    DEVICE
        .get_or_init(|| open().map(Arc::new))
        .clone()
        .map_err(BackendError::Device)
}

fn open() -> Result<Device, String> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let backends = desc.backends;
    let instance = wgpu::Instance::new(desc);
    let adapter = match std::env::var("WGPU_ADAPTER_NAME") {
        Ok(name) => adapter_named(&instance, backends, &name)?,
        Err(_) => pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| {
            format!(
                "no GPU adapter: {e} (a Vulkan driver is needed; on Debian or Ubuntu, \
                 `apt-get install mesa-vulkan-drivers libvulkan1` gives the software \
                 device lavapipe)"
            )
        })?,
    };
    let info = adapter.get_info();
    let limits = adapter.limits();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("ebm"),
        required_limits: limits.clone(),
        ..Default::default()
    }))
    .map_err(|e| format!("cannot open the GPU device {}: {e}", info.name))?;
    let uncaptured = Arc::new(Mutex::new(None));
    let sink = uncaptured.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        *sink.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
    }));
    let entry = |binding, ty, has_dynamic_offset| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset,
            min_binding_size: None,
        },
        count: None,
    };
    // The kernels' passes read the constants; the step loop's passes also
    // read which step of the submit they are from a uniform at a dynamic
    // offset and write the history and the step table. Both bind the
    // arena, the constants and the params first, so that a step loop can
    // run a one-pass kernel's text in its own entry point.
    let layouts = |label, for_steps: bool| {
        let mut entries = vec![
            entry(
                0,
                wgpu::BufferBindingType::Storage { read_only: false },
                false,
            ),
            entry(
                1,
                wgpu::BufferBindingType::Storage { read_only: true },
                false,
            ),
            entry(2, wgpu::BufferBindingType::Uniform, false),
        ];
        if for_steps {
            entries.push(entry(3, wgpu::BufferBindingType::Uniform, true));
            for binding in [4, 5] {
                entries.push(entry(
                    binding,
                    wgpu::BufferBindingType::Storage { read_only: false },
                    false,
                ));
            }
        }
        let bind = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &entries,
        });
        let pipeline = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &[Some(&bind)],
            immediate_size: 0,
        });
        (bind, pipeline)
    };
    let (layout, pipeline_layout) = layouts("ebm arena", false);
    let (step_layout, step_pipeline_layout) = layouts("ebm steps", true);
    let uniform_align = limits.min_uniform_buffer_offset_alignment.max(16) as u64;
    let ticks = steps::ticks(&device, uniform_align);
    let max_bytes = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    Ok(Device {
        device,
        queue,
        name: format!("{}, {:?}, driver {}", info.name, info.backend, info.driver),
        max_values: (max_bytes / 4) as usize,
        layout,
        pipeline_layout,
        step_layout,
        step_pipeline_layout,
        uniform_align,
        ticks,
        uncaptured,
    })
}

/// The first adapter whose name contains `name` (in any case): the choice
/// `WGPU_ADAPTER_NAME` makes for wgpu's own tools, where the default is the
/// high-performance adapter.
fn adapter_named(
    instance: &wgpu::Instance,
    backends: wgpu::Backends,
    name: &str,
) -> Result<wgpu::Adapter, String> {
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
    let want = name.to_lowercase();
    adapters
        .into_iter()
        .find(|a| a.get_info().name.to_lowercase().contains(&want))
        .ok_or_else(|| {
            let found = match names.is_empty() {
                true => "none".to_string(),
                false => names.join("; "),
            };
            format!("no GPU adapter's name contains `{name}` (WGPU_ADAPTER_NAME); the adapters are: {found}")
        })
}

impl Device {
    /// Runs `f` inside a validation error scope; a wgpu error becomes `Err`.
    fn checked<T>(&self, f: impl FnOnce() -> T) -> Result<T, String> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(e.to_string()),
            None => Ok(value),
        }
    }

    fn take_uncaptured(&self) -> Option<String> {
        self.uncaptured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The wgpu backend (f32 only).
#[derive(Clone)]
pub struct Gpu {
    dev: Arc<Device>,
    /// The most f32 values one call's arena holds: the device's largest
    /// storage binding, or less.
    max_values: usize,
    /// Small graphs run as one pass (`wgsl::generate_as`).
    one_pass: bool,
}

impl Gpu {
    /// Opens the device (once per process); an error names what is missing.
    pub fn new() -> Result<Gpu, BackendError> {
        let dev = device()?;
        let max_values = dev.max_values;
        Ok(Gpu {
            dev,
            max_values,
            one_pass: true,
        })
    }

    /// The same device with every graph compiled a pass per stored node
    /// (passes sharing dispatches where they may), small ones too (tests
    /// run both forms against the interpreter).
    pub fn pass_per_node(self) -> Gpu {
        Gpu {
            one_pass: false,
            ..self
        }
    }

    /// The same device with arenas of at most `values` f32s, so that calls
    /// are cut into more chunks than the device needs (tests of chunking on
    /// a device with large bindings).
    pub fn with_arena_limit(values: usize) -> Result<Gpu, BackendError> {
        let gpu = Gpu::new()?;
        let max_values = values.min(gpu.max_values);
        Ok(Gpu { max_values, ..gpu })
    }
}

impl Gpu {
    /// Refuses a held buffer of `len` values the device cannot bind (wgpu
    /// would report it only later, as an error on a call that uses it).
    fn fits(&self, len: usize) -> Result<(), BackendError> {
        let max = self.dev.max_values;
        match len <= max {
            true => Ok(()),
            false => Err(BackendError::Buffers(format!(
                "a buffer of {len} f32 values is larger than the GPU binds ({max} values)"
            ))),
        }
    }
}

/// The WGSL particular to `graph` (`ebm dump --stage wgsl`; its module is
/// [`wgsl::PRELUDE`] followed by this); needs no device.
pub fn wgsl_text(graph: &Graph) -> Result<String, BackendError> {
    verified(graph)?;
    wgsl::generate(graph)
        .map(|p| p.kernel)
        .map_err(|e| BackendError::Compile(e.0))
}

impl Backend for Gpu {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn dtypes(&self) -> &'static [DType] {
        &[DType::F32]
    }

    fn device(&self) -> Option<String> {
        Some(self.dev.name.clone())
    }

    fn holds_buffers(&self) -> bool {
        true
    }

    /// The device's largest storage binding (or buffer), in f32 values.
    fn max_buffer_values(&self) -> usize {
        self.dev.max_values
    }

    /// Zeros held on the device; a buffer larger than the device binds is
    /// refused.
    fn alloc(&self, len: usize, dtype: DType) -> Result<Buffer, BackendError> {
        if dtype != DType::F32 {
            return Err(f64_refused());
        }
        self.fits(len)?;
        Ok(Buffer::Held(held::zeros(&self.dev, len)))
    }

    /// A copy of host f32 values held on the device (refused as `alloc`).
    fn upload(&self, data: HostData<'_>) -> Result<Buffer, BackendError> {
        match data {
            HostData::F32(v) => {
                self.fits(v.len())?;
                Ok(Buffer::Held(held::upload(&self.dev, v)))
            }
            HostData::F64(_) => Err(f64_refused()),
        }
    }

    /// Held rows are copied on the device, one copy command per run of
    /// consecutive rows, all in one submit (in order, so a later move to a
    /// row wins); host buffers as on the host.
    fn copy_rows(
        &self,
        src: &Buffer,
        dst: &mut Buffer,
        width: usize,
        moves: &[(usize, usize)],
    ) -> Result<(), BackendError> {
        let (Buffer::Held(s), Buffer::Held(d)) = (src, &*dst) else {
            return crate::backend::copy_host_rows(src, dst, width, moves);
        };
        crate::backend::check_rows(s.len(), d.len(), width, moves)?;
        held::copy_rows(&self.dev, (s, d), width, moves)
    }

    /// Held values are read back from the device (after every call
    /// submitted before); host ones are copied.
    fn download(&self, buf: &Buffer) -> Result<Vec<f64>, BackendError> {
        match buf {
            Buffer::Held(h) => Ok(held::download(&self.dev, h)?
                .into_iter()
                .map(f64::from)
                .collect()),
            Buffer::F32(v) => Ok(v.iter().map(|&x| f64::from(x)).collect()),
            Buffer::F64(v) => Ok(v.clone()),
        }
    }

    /// Yes: a call is a round trip to the device. `EBM_MH_WINDOWS=0` runs
    /// one call per proposal instead (for comparisons).
    fn metropolis_windows(&self) -> bool {
        std::env::var("EBM_MH_WINDOWS").map_or(true, |v| v != "0")
    }

    /// The kernel of `graph`, its shaders compiled once per process: a
    /// graph compiled again (each `sample(..)` of a script, each energy of a
    /// training run that shares a kernel) reuses the pipelines, which on a
    /// shader compiler like lavapipe's cost far more than a call.
    fn compile(&self, graph: &Graph, dtype: DType) -> Result<Arc<dyn Kernel>, BackendError> {
        compilable(graph, dtype)?;
        let key = cache_key(graph, self.one_pass);
        let cached = cache()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let shaders = match cached {
            Some(s) => s,
            None => {
                let s = Arc::new(self.shaders(graph)?);
                cache()
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, s.clone());
                s
            }
        };
        Ok(Arc::new(self.kernel(graph, shaders)))
    }
}

impl Gpu {
    /// Compiles without consulting or filling the cache (`ebm bench` times
    /// the shader compiler).
    pub fn compile_uncached(
        &self,
        graph: &Graph,
        dtype: DType,
    ) -> Result<Arc<dyn Kernel>, BackendError> {
        compilable(graph, dtype)?;
        Ok(Arc::new(self.kernel(graph, Arc::new(self.shaders(graph)?))))
    }

    fn shaders(&self, graph: &Graph) -> Result<Shaders, BackendError> {
        let prog =
            wgsl::generate_as(graph, self.one_pass).map_err(|e| BackendError::Compile(e.0))?;
        let dev = &self.dev;
        let pipelines = dev
            .checked(|| pipelines(dev, &prog))
            .map_err(|e| BackendError::Compile(format!("the device rejected the shader: {e}")))?;
        let consts = dev
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("ebm consts"),
                contents: bytes(&prog.consts),
                usage: wgpu::BufferUsages::STORAGE,
            });
        Ok(Shaders {
            prog,
            pipelines,
            consts,
        })
    }

    fn kernel(&self, graph: &Graph, shaders: Arc<Shaders>) -> GpuKernel {
        GpuKernel {
            graph: graph.clone(),
            sh: shaders,
            dev: self.dev.clone(),
            max_values: self.max_values,
            arena: Mutex::new(None),
            steps: Mutex::new(None),
        }
    }
}

/// What one graph compiles to on the device, shared by all its kernels.
struct Shaders {
    prog: Program,
    pipelines: Vec<wgpu::ComputePipeline>,
    consts: wgpu::Buffer,
}

/// The process's compiled graphs, by `backend::graph_key` (the device is
/// the process's one device).
fn cache() -> &'static Mutex<HashMap<String, Arc<Shaders>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Shaders>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether `graph`'s shaders are in the process's cache (for tests).
pub fn is_cached(graph: &Graph) -> bool {
    cache()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(&cache_key(graph, true))
}

fn cache_key(graph: &Graph, one_pass: bool) -> String {
    format!("{}|one pass {one_pass}", super::graph_key(graph))
}

/// A verified graph, in the one dtype the device runs.
fn compilable(graph: &Graph, dtype: DType) -> Result<(), BackendError> {
    verified(graph)?;
    if dtype != DType::F32 {
        return Err(f64_refused());
    }
    Ok(())
}

fn f64_refused() -> BackendError {
    BackendError::UnsupportedDType {
        backend: "gpu",
        dtype: "f64 (WGSL has no f64; f32 runs)",
    }
}

fn pipelines(dev: &Device, prog: &Program) -> Vec<wgpu::ComputePipeline> {
    let module = dev
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("ebm kernel"),
            source: wgpu::ShaderSource::Wgsl(prog.source.as_str().into()),
        });
    prog.passes
        .iter()
        .map(|p| {
            dev.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&p.entry),
                    layout: Some(&dev.pipeline_layout),
                    module: &module,
                    entry_point: Some(&p.entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
        })
        .collect()
}

fn bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and every bit pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// The device buffers of one kernel, sized for `chunk` samples.
struct Arena {
    chunk: usize,
    arena: wgpu::Buffer,
    params: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind: wgpu::BindGroup,
}

struct GpuKernel {
    graph: Graph,
    sh: Arc<Shaders>,
    dev: Arc<Device>,
    max_values: usize,
    /// Calls take turns on one arena.
    arena: Mutex<Option<Arena>>,
    /// The step module of the last device step loop, by its layout.
    steps: Mutex<Option<(steps::Layout, StepPipelines)>>,
}

/// The entry points of a step module.
struct StepPipelines {
    /// A one-pass kernel's whole step (`steps::fused_module`); then no
    /// other pipeline is used.
    fused: Option<wgpu::ComputePipeline>,
    draw: Option<wgpu::ComputePipeline>,
    finish: Option<wgpu::ComputePipeline>,
}

impl GpuKernel {
    /// Samples per chunk for a call of `batch`: as many as fit one binding.
    fn chunk_for(&self, batch: usize) -> Result<usize, BackendError> {
        let p = &self.sh.prog;
        let room = self.max_values.saturating_sub(p.inv_len);
        let fit = room.checked_div(p.per_sample).unwrap_or(usize::MAX);
        if fit == 0 {
            return Err(BackendError::Buffers(format!(
                "one sample needs {} values of device memory; the device binds at most {}",
                p.per_sample + p.inv_len,
                self.max_values
            )));
        }
        Ok(batch.clamp(1, fit))
    }

    fn arena(&self, chunk: usize) -> Arena {
        let d = &self.dev.device;
        let values = self.sh.prog.inv_len + chunk * self.sh.prog.per_sample;
        let size = (values.max(1) * 4) as u64;
        let arena = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ebm arena"),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let params = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ebm params"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let back: usize = read_ranges(&self.sh.prog, chunk).iter().map(|r| r.1).sum();
        let readback = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ebm readback"),
            size: (back.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("ebm arena"),
            layout: &self.dev.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: arena.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: self.sh.consts.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: params.as_entire_binding(),
                },
            ],
        });
        Arena {
            chunk,
            arena,
            params,
            readback,
            bind,
        }
    }

    /// Samples `lo..hi` of a call: inputs in (written from the host, or
    /// copied on the device from held buffers), every pass, then each
    /// output copied into its held buffer or read back into its host one.
    fn run_chunk(
        &self,
        a: &Arena,
        inputs: &[Arg<'_>],
        outputs: &mut [Target<'_>],
        (lo, hi): (usize, usize),
        batch: usize,
    ) -> Result<(), BackendError> {
        let (dev, q) = (&self.dev.device, &self.dev.queue);
        let prog = &self.sh.prog;
        let n = hi - lo;
        let first = u32::from(lo == 0);
        q.write_buffer(&a.params, 0, bytes_u32(&[n as u32, first, 0, 0]));
        let mut enc = dev.create_command_encoder(&Default::default());
        for (slot, arg) in prog.inputs.iter().zip(inputs) {
            let (at, rows) = match slot.region {
                Some(Region::Inv(o)) => (o, 0..arg.len()),
                Some(Region::Var(o)) => (prog.inv_len + o * n, lo * slot.numel..hi * slot.numel),
                None => continue,
            };
            if rows.is_empty() {
                continue;
            }
            let to = (at * 4) as u64;
            match arg {
                Arg::Buffer(Buffer::Held(h)) => {
                    let from = (rows.start * 4) as u64;
                    let len = (rows.len() * 4) as u64;
                    enc.copy_buffer_to_buffer(held::storage(h)?, from, &a.arena, to, len);
                }
                _ => {
                    let data = arg.f32s().ok_or_else(wrong_dtype)?;
                    q.write_buffer(&a.arena, to, bytes(&data[rows]));
                }
            }
        }
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.encode_passes(&mut pass, a, n, false);
        }
        // Held outputs are copied on the device; only the host ones come
        // back, packed one after another.
        let mut at = 0;
        for ((from, len), (slot, out)) in read_ranges(prog, n)
            .into_iter()
            .zip(prog.outputs.iter().zip(outputs.iter()))
        {
            if len == 0 {
                continue;
            }
            let (from, bytes_len) = ((from * 4) as u64, (len * 4) as u64);
            match out {
                Target::Device(buf) => {
                    let to = match *slot {
                        OutputSlot::Rows { numel, .. } => lo * numel,
                        _ => 0,
                    };
                    enc.copy_buffer_to_buffer(&a.arena, from, buf, (to * 4) as u64, bytes_len);
                }
                Target::Host(_) => {
                    enc.copy_buffer_to_buffer(
                        &a.arena,
                        from,
                        &a.readback,
                        (at * 4) as u64,
                        bytes_len,
                    );
                    at += len;
                }
            }
        }
        q.submit([enc.finish()]);
        if outputs.iter().all(|o| matches!(o, Target::Device(_))) {
            // Nothing to wait for: the queue runs later calls, and any
            // read of these buffers, after this one.
            return Ok(());
        }
        let values = read_mapped(&self.dev, &a.readback, at)?;
        gather(prog, &values, outputs, (lo, hi), batch);
        Ok(())
    }

    /// Every pass of the kernel over `n` samples; with `again`, none of
    /// those whose values are already in the arena ([`wgsl::Pass::once`]).
    fn encode_passes(&self, pass: &mut wgpu::ComputePass<'_>, a: &Arena, n: usize, again: bool) {
        pass.set_bind_group(0, &a.bind, &[]);
        for (p, pipe) in self.sh.prog.passes.iter().zip(&self.sh.pipelines) {
            if again && p.once {
                continue;
            }
            let (x, y) = wgsl::grid(p.groups(n));
            pass.set_pipeline(pipe);
            pass.dispatch_workgroups(x, y, 1);
        }
    }

    fn check_args(
        &self,
        inputs: &[Arg<'_>],
        outputs: &[Dest<'_>],
        batch: usize,
    ) -> Result<(), BackendError> {
        crate::ir::interp::check_input_lens(&self.graph, inputs.len(), |i| inputs[i].len(), batch)
            .map_err(BackendError::Buffers)?;
        if outputs.len() != self.sh.prog.outputs.len() {
            return Err(BackendError::Buffers(format!(
                "expected {} output buffers, got {}",
                self.sh.prog.outputs.len(),
                outputs.len()
            )));
        }
        for (o, out) in self.graph.outputs.iter().zip(outputs) {
            let n = crate::ir::numel(self.graph.shape(o.node));
            let want = match o.reduce {
                BatchReduce::PerSample => batch * n,
                BatchReduce::Sum => n,
            };
            if out.len() != want {
                return Err(BackendError::Buffers(format!(
                    "output buffer holds {}, needs {want}",
                    out.len()
                )));
            }
        }
        Ok(())
    }
}

fn bytes_u32(v: &[u32]) -> &[u8] {
    // SAFETY: u32 has no padding and every bit pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// The arena range `(offset, values)` each output is read back from, for
/// a chunk of `n` samples (empty for an output read from the constants).
fn read_ranges(prog: &Program, n: usize) -> Vec<(usize, usize)> {
    prog.outputs
        .iter()
        .map(|slot| match *slot {
            OutputSlot::Rows { off, numel } => (prog.inv_len + off * n, n * numel),
            OutputSlot::Sum { acc, numel } => (acc, numel),
            OutputSlot::Same {
                loc: Source::Arena(o),
                numel,
                ..
            } => (o, numel),
            OutputSlot::Same { .. } => (0, 0),
        })
        .collect()
}

/// Where one output of a call goes on the device side: a host slice it is
/// read back into, or a held buffer it is copied into.
enum Target<'a> {
    Host(&'a mut [f32]),
    Device(&'a wgpu::Buffer),
}

/// Writes the chunk `lo..hi`'s share of every host output from `back`:
/// their ranges ([`read_ranges`]) packed in order.
fn gather(
    prog: &Program,
    back: &[f32],
    outputs: &mut [Target<'_>],
    (lo, hi): (usize, usize),
    batch: usize,
) {
    let mut at = 0;
    let ranges = read_ranges(prog, hi - lo);
    for ((slot, target), (_, len)) in prog.outputs.iter().zip(outputs.iter_mut()).zip(ranges) {
        let Target::Host(out) = target else {
            continue;
        };
        let part = &back[at..at + len];
        at += len;
        match *slot {
            OutputSlot::Rows { numel, .. } => out[lo * numel..hi * numel].copy_from_slice(part),
            OutputSlot::Sum { .. } => out.copy_from_slice(part),
            OutputSlot::Same { loc, numel, reduce } => {
                let value = |e: usize| match loc {
                    Source::Arena(_) => part[e],
                    Source::Const(o) => prog.consts[o + e],
                };
                match reduce {
                    BatchReduce::PerSample => {
                        for b in lo..hi {
                            for e in 0..numel {
                                out[b * numel + e] = value(e);
                            }
                        }
                    }
                    // Added once per sample, in order, as the interpreter.
                    BatchReduce::Sum if hi == batch => {
                        for (e, o) in out.iter_mut().enumerate() {
                            let mut s = 0.0f32;
                            for _ in 0..batch {
                                s += value(e);
                            }
                            *o = s;
                        }
                    }
                    BatchReduce::Sum => {}
                }
            }
        }
    }
}

/// `len` f32 values from the start of a mappable buffer, once the queue
/// has run everything submitted (a wgpu error since is returned instead).
fn read_mapped(dev: &Device, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, BackendError> {
    let slice = buffer.slice(..(len.max(1) * 4) as u64);
    slice.map_async(wgpu::MapMode::Read, |_| {});
    dev.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| BackendError::Device(format!("the GPU did not finish: {e}")))?;
    if let Some(e) = dev.take_uncaptured() {
        buffer.unmap();
        return Err(BackendError::Device(e));
    }
    let view = slice
        .get_mapped_range()
        .map_err(|e| BackendError::Device(format!("cannot read results back: {e}")))?;
    let values = view
        .chunks_exact(4)
        .take(len)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    drop(view);
    buffer.unmap();
    Ok(values)
}

fn wrong_dtype() -> BackendError {
    BackendError::Buffers("the GPU takes f32 values (or its own held buffers)".into())
}

impl Kernel for GpuKernel {
    fn graph(&self) -> &Graph {
        &self.graph
    }
    fn dtype(&self) -> DType {
        DType::F32
    }
    fn run_f64(&self, _: &[&[f64]], _: &mut [&mut [f64]], _: usize) -> Result<(), BackendError> {
        Err(f64_refused())
    }
    /// On the device: every buffer stays resident for the whole loop
    /// (`steps`), noise is generated there, and the state is read back once.
    fn run_steps(
        &self,
        lp: &StepLoop<'_>,
        fixed: &[&Buffer],
        state: &mut [Buffer],
        batch: usize,
        frozen: &mut [Option<u64>],
    ) -> Result<(), BackendError> {
        self.steps(lp, fixed, state, batch, frozen)
    }
    fn run_f32(
        &self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        batch: usize,
    ) -> Result<(), BackendError> {
        let args: Vec<Arg<'_>> = inputs.iter().map(|v| Arg::F32(v)).collect();
        let mut dests: Vec<Dest<'_>> = outputs.iter_mut().map(|v| Dest::F32(v)).collect();
        self.run_args(&args, &mut dests, batch)
    }
    /// Held inputs are copied into the arena on the device and held
    /// outputs out of it; a call with no host output returns without
    /// waiting for the device.
    fn run_args(
        &self,
        inputs: &[Arg<'_>],
        outputs: &mut [Dest<'_>],
        batch: usize,
    ) -> Result<(), BackendError> {
        self.check_args(inputs, outputs, batch)?;
        let chunk = self.chunk_for(batch)?;
        let mut slot = self.arena.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|a| a.chunk < chunk) {
            *slot = Some(self.arena(chunk));
        }
        // invariant: set just above.
        let a = slot.as_ref().expect("arena allocated");
        // A held output of a batch-invariant node is repeated or summed over
        // the batch on the host (`gather`), then written to its buffer.
        let mut staged: Vec<Option<Vec<f32>>> = outputs
            .iter()
            .zip(&self.sh.prog.outputs)
            .map(|(d, slot)| match (d, slot) {
                (Dest::Buffer(Buffer::Held(h)), OutputSlot::Same { .. }) => {
                    Some(vec![0.0; h.len()])
                }
                _ => None,
            })
            .collect();
        {
            let mut targets = targets(outputs, &mut staged)?;
            let mut lo = 0;
            loop {
                let hi = (lo + chunk).min(batch);
                self.run_chunk(a, inputs, &mut targets, (lo, hi), batch)?;
                lo = hi;
                if lo >= batch {
                    break;
                }
            }
        }
        for (d, v) in outputs.iter().zip(staged) {
            if let (Dest::Buffer(Buffer::Held(h)), Some(v)) = (d, v) {
                self.dev.queue.write_buffer(held::storage(h)?, 0, bytes(&v));
            }
        }
        Ok(())
    }
}

/// Each output's target: its held buffer, the host buffer it is staged in,
/// or its host slice.
fn targets<'a>(
    outputs: &'a mut [Dest<'_>],
    staged: &'a mut [Option<Vec<f32>>],
) -> Result<Vec<Target<'a>>, BackendError> {
    outputs
        .iter_mut()
        .zip(staged.iter_mut())
        .map(|(d, s)| match (d, s) {
            (_, Some(v)) => Ok(Target::Host(v.as_mut_slice())),
            (Dest::Buffer(Buffer::Held(h)), None) => held::storage(h).map(Target::Device),
            (Dest::F32(v), None) => Ok(Target::Host(v)),
            (Dest::Buffer(Buffer::F32(v)), None) => Ok(Target::Host(v.as_mut_slice())),
            _ => Err(wrong_dtype()),
        })
        .collect()
}
