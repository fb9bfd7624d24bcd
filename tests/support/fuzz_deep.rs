//! The stages after the front end, for the whole-pipeline fuzzers
//! (`examples/fuzz_pipeline.rs`, `tests/fuzz_smoke.rs`): a program that
//! checks has each of its first energies compiled by the Cranelift JIT in
//! f32 and f64 (lowering, symbolic AD of ∇ₓE, the optimiser, code
//! generation) and run for a few steps of ULA, MALA and HMC. Errors are
//! fine (a diagnostic or a refused run); only a panic, an abort or a hang is
//! a finding.

use std::sync::Arc;

use ebm::backend::DType;
use ebm::backend::cpu::Cpu;
use ebm::sample::{RunConfig, SamplerConfig, run_compiled};

/// The memory limit the fuzzers run under: generated shapes are refused at
/// a size a test machine holds many times over.
pub const FUZZ_MEMORY: u64 = 256 << 20;

/// How far one input went.
#[derive(Default, Debug, Clone, Copy)]
pub struct Reached {
    /// Energies compiled (per dtype).
    pub compiled: usize,
    /// Sampler runs that finished.
    pub sampled: usize,
}

/// Runs `text` past the front end; see the module doc.
pub fn deep(text: &str) -> Reached {
    let mut reached = Reached::default();
    let Ok(program) = ebm::api::Program::from_source(text) else {
        return reached;
    };
    for name in program.energies().into_iter().take(2) {
        for dtype in [DType::F32, DType::F64] {
            let Ok(energy) = program.energy_with(name, Arc::new(Cpu::new()), dtype) else {
                continue;
            };
            reached.compiled += 1;
            let cond = vec![0.5; energy.cond_dim()];
            let cond = (!cond.is_empty()).then_some(&cond[..]);
            let samplers = [
                SamplerConfig::ula(0.01),
                SamplerConfig::mala(0.01),
                SamplerConfig::hmc(0.01, 3),
            ];
            for sampler in &samplers {
                let run = RunConfig::new(3, 2, 3, 7);
                if run_compiled(&energy, cond, sampler, &run).is_ok() {
                    reached.sampled += 1;
                }
            }
        }
    }
    reached
}
