//! Backends turn an IR graph into a runnable batched kernel. Every backend sits
//! behind the same `Backend` / `Kernel` traits, so runners never know which one
//! they drive; the reference interpreter (`Interp`) is one of them and is the
//! oracle the others are tested against.

pub mod cpu;

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
    ) -> Result<(), String>;
    fn run_f32(
        &self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        batch: usize,
    ) -> Result<(), String>;
}

/// Every backend's `compile` runs the verifier first and refuses a graph it
/// rejects, so no code generator ever sees a malformed graph.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn compile(&self, graph: &Graph, dtype: DType) -> Result<Arc<dyn Kernel>, String>;
    /// The dtypes this backend compiles (a GPU backend will be f32-only).
    fn dtypes(&self) -> &'static [DType] {
        &[DType::F32, DType::F64]
    }
    /// The same backend with kernels that run on the calling thread, for a
    /// caller that parallelises over chains itself (the sampling engine);
    /// `None` when kernels already run on the calling thread.
    fn worker(&self) -> Option<Arc<dyn Backend>> {
        None
    }
}

/// A backend by its name on the command line and in scripts.
pub fn named(name: &str) -> Result<Arc<dyn Backend>, String> {
    match name {
        "interp" => Ok(Arc::new(Interp)),
        "cpu" => Ok(Arc::new(cpu::Cpu::new())),
        other => Err(format!(
            "unknown backend `{other}`; expected `interp` or `cpu`"
        )),
    }
}

/// The verifier's verdict on a graph about to be compiled, as a compile error.
pub(crate) fn verified(graph: &Graph) -> Result<(), String> {
    crate::ir::verify::verify(graph).map_err(|e| format!("invalid IR: {e}"))
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
    fn compile(&self, graph: &Graph, dtype: DType) -> Result<Arc<dyn Kernel>, String> {
        verified(graph)?;
        Ok(Arc::new(InterpKernel {
            graph: graph.clone(),
            dtype,
        }))
    }
}

fn copy_outputs<T: Copy>(results: Vec<Vec<T>>, outputs: &mut [&mut [T]]) -> Result<(), String> {
    if results.len() != outputs.len() {
        return Err(format!(
            "expected {} output buffers, got {}",
            results.len(),
            outputs.len()
        ));
    }
    for (dst, src) in outputs.iter_mut().zip(results) {
        if dst.len() != src.len() {
            return Err(format!(
                "output buffer holds {}, needs {}",
                dst.len(),
                src.len()
            ));
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
    ) -> Result<(), String> {
        if self.dtype != DType::F64 {
            return Err("kernel was compiled for f32".into());
        }
        copy_outputs(interp::eval(&self.graph, inputs, batch)?, outputs)
    }
    fn run_f32(
        &self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        batch: usize,
    ) -> Result<(), String> {
        if self.dtype != DType::F32 {
            return Err("kernel was compiled for f64".into());
        }
        copy_outputs(interp::eval(&self.graph, inputs, batch)?, outputs)
    }
}
