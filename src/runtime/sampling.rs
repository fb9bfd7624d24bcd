//! A compiled energy seen as the samplers' `BatchEnergy`: the sampler state is
//! f64; the kernel runs in the energy's dtype, with the conditioning input (if
//! any) fixed and repeated across the batch.

use crate::backend::DType;
use crate::sample::BatchEnergy;

use super::{CompiledEnergy, Scalar};

pub struct SampledEnergy<'a> {
    energy: &'a CompiledEnergy,
    /// One conditioning vector, shared by every chain.
    cond: Option<Vec<f64>>,
}

impl<'a> SampledEnergy<'a> {
    pub fn new(
        energy: &'a CompiledEnergy,
        cond: Option<Vec<f64>>,
    ) -> Result<SampledEnergy<'a>, String> {
        let want = energy.cond_dim();
        match (&cond, want) {
            (None, 0) => {}
            (None, n) => {
                return Err(format!(
                    "this energy is conditional: it needs a conditioning vector of {n} values"
                ));
            }
            (Some(c), n) if c.len() != n => {
                return Err(format!(
                    "the conditioning vector needs {n} values, found {}",
                    c.len()
                ));
            }
            _ => {}
        }
        Ok(SampledEnergy { energy, cond })
    }

    fn cond_batch<T: Scalar>(&self, batch: usize) -> Option<Vec<T>> {
        self.cond.as_ref().map(|c| {
            (0..batch)
                .flat_map(|_| c.iter().map(|&v| T::from_f64(v)))
                .collect()
        })
    }

    fn eval<T: Scalar>(&self, x: &[f64], batch: usize, e: &mut [f64], g: Option<&mut [f64]>) {
        let xs: Vec<T> = x.iter().map(|&v| T::from_f64(v)).collect();
        let c = self.cond_batch::<T>(batch);
        // Sizes were checked when the sampler was set up; a failure here is a bug.
        let fail = |err: String| -> ! { panic!("compiled energy failed: {err}") };
        match g {
            Some(g) => {
                let out = self
                    .energy
                    .energy_and_grad_x(&xs, c.as_deref(), batch)
                    .unwrap_or_else(|e| fail(e));
                widen_into(&out.energy, e);
                widen_into(&out.grad_x, g);
            }
            None => {
                let out = self
                    .energy
                    .energy(&xs, c.as_deref(), batch)
                    .unwrap_or_else(|e| fail(e));
                widen_into(&out, e);
            }
        }
    }
}

fn widen_into<T: Scalar>(src: &[T], dst: &mut [f64]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f64();
    }
}

impl BatchEnergy for SampledEnergy<'_> {
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
