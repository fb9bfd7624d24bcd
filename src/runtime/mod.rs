//! The runtime: an energy compiled for one backend and dtype, with its
//! parameter values, callable on batches. It builds each derivative kernel
//! (`autodiff::derived`) on first use, optimises it and hands it to the
//! backend; runners (samplers, training) only ever talk to this type.

pub mod fused;
pub mod langevin;
pub mod noise;
pub mod sampling;

use std::sync::{Arc, Mutex};

use crate::autodiff::derived::{Want, derive};
use crate::backend::{Backend, DType, Kernel};
use crate::ir::interp::Real;
use crate::ir::{Graph, InputKind, numel};
use crate::opt;

/// Element types a compiled energy can be called with.
pub trait Scalar: Real {
    const DTYPE: DType;
    fn run(
        k: &dyn Kernel,
        inputs: &[&[Self]],
        outputs: &mut [&mut [Self]],
        batch: usize,
    ) -> Result<(), String>;
}

impl Scalar for f64 {
    const DTYPE: DType = DType::F64;
    fn run(
        k: &dyn Kernel,
        inputs: &[&[f64]],
        outputs: &mut [&mut [f64]],
        batch: usize,
    ) -> Result<(), String> {
        k.run_f64(inputs, outputs, batch)
    }
}

impl Scalar for f32 {
    const DTYPE: DType = DType::F32;
    fn run(
        k: &dyn Kernel,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        batch: usize,
    ) -> Result<(), String> {
        k.run_f32(inputs, outputs, batch)
    }
}

/// Input gradients and energies of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyGrad<T> {
    pub energy: Vec<T>,
    pub grad_x: Vec<T>,
}

pub struct CompiledEnergy {
    graph: Graph,
    backend: Arc<dyn Backend>,
    dtype: DType,
    /// Parameter values in the graph's `Shared` input order, as f64.
    params: Vec<(String, Vec<f64>)>,
    kernels: Mutex<Vec<(Want, Arc<dyn Kernel>)>>,
}

impl CompiledEnergy {
    /// `graph` is a lowered energy (input `x`, optional `c`, parameters as
    /// `Shared` inputs, output `energy`); `param` supplies each parameter's value.
    pub fn new(
        graph: Graph,
        param: impl Fn(&str) -> Option<Vec<f64>>,
        backend: Arc<dyn Backend>,
        dtype: DType,
    ) -> Result<CompiledEnergy, String> {
        let mut params = Vec::new();
        for decl in graph
            .inputs()
            .iter()
            .filter(|d| d.kind == InputKind::Shared)
        {
            let value = param(&decl.name)
                .ok_or_else(|| format!("no value for parameter `{}`", decl.name))?;
            if value.len() != numel(&decl.shape) {
                return Err(format!(
                    "parameter `{}` needs {} values",
                    decl.name,
                    numel(&decl.shape)
                ));
            }
            params.push((decl.name.clone(), value));
        }
        Ok(CompiledEnergy {
            graph,
            backend,
            dtype,
            params,
            kernels: Mutex::new(Vec::new()),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }
    pub fn energy_graph(&self) -> &Graph {
        &self.graph
    }
    /// Elements per sample of `x`.
    pub fn dim(&self) -> usize {
        self.input_len("x")
    }
    /// Elements per sample of the conditioning input (0 when unconditional).
    pub fn cond_dim(&self) -> usize {
        self.input_len("c")
    }
    pub fn x_shape(&self) -> Vec<usize> {
        let id = self.graph.find_input("x").expect("energy graphs read x");
        self.graph.input(id).shape.clone()
    }
    pub fn param_names(&self) -> Vec<&str> {
        self.params.iter().map(|(n, _)| n.as_str()).collect()
    }
    pub fn param_values(&self) -> &[(String, Vec<f64>)] {
        &self.params
    }
    pub fn set_param(&mut self, name: &str, value: &[f64]) -> Result<(), String> {
        let slot = self
            .params
            .iter_mut()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("no parameter `{name}`"))?;
        if slot.1.len() != value.len() {
            return Err(format!("parameter `{name}` needs {} values", slot.1.len()));
        }
        slot.1.copy_from_slice(value);
        Ok(())
    }

    fn input_len(&self, name: &str) -> usize {
        self.graph
            .find_input(name)
            .map(|i| numel(&self.graph.input(i).shape))
            .unwrap_or(0)
    }

    /// The optimised graph that computes `want` (the one a backend compiles).
    pub fn graph_for(&self, want: Want) -> Result<Graph, String> {
        Ok(opt::optimize(
            &derive(&self.graph, want)?,
            opt::Config::default(),
        ))
    }

    /// The compiled kernel for `want`, built once.
    pub fn kernel(&self, want: Want) -> Result<Arc<dyn Kernel>, String> {
        let mut cache = self.kernels.lock().unwrap();
        if let Some((_, k)) = cache.iter().find(|(w, _)| *w == want) {
            return Ok(k.clone());
        }
        let k = self.backend.compile(&self.graph_for(want)?, self.dtype)?;
        cache.push((want, k.clone()));
        Ok(k)
    }

    /// Runs the kernel for `want`; returns one buffer per output in order.
    pub fn run<T: Scalar>(
        &self,
        want: Want,
        x: &[T],
        cond: Option<&[T]>,
        v: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<Vec<T>>, String> {
        if T::DTYPE != self.dtype {
            return Err(format!(
                "energy was compiled for {}, called with {}",
                self.dtype.name(),
                T::DTYPE.name()
            ));
        }
        let kernel = self.kernel(want)?;
        let g = kernel.graph();
        let params: Vec<Vec<T>> = self
            .params
            .iter()
            .map(|(_, v)| v.iter().map(|&p| T::from_f64(p)).collect())
            .collect();
        let mut inputs: Vec<&[T]> = Vec::with_capacity(g.inputs().len());
        let mut next_param = 0;
        for decl in g.inputs() {
            let data: &[T] = match (decl.kind, decl.name.as_str()) {
                (InputKind::Shared, _) => {
                    next_param += 1;
                    &params[next_param - 1]
                }
                (_, "x") => x,
                (_, "c") => cond.ok_or("this energy needs a conditioning input")?,
                (_, "v") => v.ok_or("this kernel needs a direction v")?,
                (_, other) => return Err(format!("unexpected input `{other}`")),
            };
            let want_len = numel(&decl.shape)
                * if decl.kind == InputKind::Sample {
                    batch
                } else {
                    1
                };
            if data.len() != want_len {
                return Err(format!(
                    "input `{}` needs {want_len} values for a batch of {batch}, got {}",
                    decl.name,
                    data.len()
                ));
            }
            inputs.push(data);
        }
        let mut outs: Vec<Vec<T>> = g
            .outputs
            .iter()
            .map(|o| {
                let per = numel(g.shape(o.node));
                match o.reduce {
                    crate::ir::BatchReduce::PerSample => vec![T::zero(); per * batch],
                    crate::ir::BatchReduce::Sum => vec![T::zero(); per],
                }
            })
            .collect();
        let mut views: Vec<&mut [T]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        T::run(kernel.as_ref(), &inputs, &mut views, batch)?;
        Ok(outs)
    }

    pub fn energy<T: Scalar>(
        &self,
        x: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<T>, String> {
        Ok(self.run(Want::ENERGY, x, cond, None, batch)?.remove(0))
    }

    pub fn energy_and_grad_x<T: Scalar>(
        &self,
        x: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<EnergyGrad<T>, String> {
        let mut outs = self.run(Want::ENERGY_GRAD, x, cond, None, batch)?;
        let grad_x = outs.pop().unwrap();
        let energy = outs.pop().unwrap();
        Ok(EnergyGrad { energy, grad_x })
    }

    pub fn grad_x<T: Scalar>(
        &self,
        x: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<T>, String> {
        let want = Want {
            grad_x: true,
            ..Want::default()
        };
        Ok(self.run(want, x, cond, None, batch)?.remove(0))
    }

    /// ∇_θ of the batch-summed energy, one vector per parameter (in `param_names` order).
    pub fn grad_params<T: Scalar>(
        &self,
        x: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<Vec<T>>, String> {
        let want = Want {
            grad_params: true,
            ..Want::default()
        };
        self.run(want, x, cond, None, batch)
    }

    /// Hessian-vector products ∇ₓ(∇ₓE·v), one per sample.
    pub fn hvp<T: Scalar>(
        &self,
        x: &[T],
        v: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<T>, String> {
        let want = Want {
            hvp: true,
            ..Want::default()
        };
        Ok(self.run(want, x, cond, Some(v), batch)?.remove(0))
    }

    /// Mixed products ∇_θ(∇ₓE·v), summed over the batch, one per parameter.
    pub fn mixed<T: Scalar>(
        &self,
        x: &[T],
        v: &[T],
        cond: Option<&[T]>,
        batch: usize,
    ) -> Result<Vec<Vec<T>>, String> {
        let want = Want {
            mixed: true,
            ..Want::default()
        };
        self.run(want, x, cond, Some(v), batch)
    }
}
