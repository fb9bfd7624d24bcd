//! The embedding API: what a Rust program needs to use an energy written in
//! the ebm language, without the CLI.
//!
//! ```
//! use ebm::api::Program;
//! let program = Program::from_source("const mu = [1.0, -1.0]\nenergy e(x: [2]) = 0.5 * sqnorm(x - mu)").unwrap();
//! let energy = program.energy("e").unwrap();            // Cranelift JIT, f64
//! let x = [0.0, 0.0, 1.0, -1.0];                         // a batch of two points
//! let eg = energy.energy_and_grad_x(&x, None, 2).unwrap();
//! assert_eq!(eg.energy, vec![1.0, 0.0]);
//! assert_eq!(eg.grad_x, vec![-1.0, 1.0, 0.0, 0.0]);
//! ```

use std::path::Path;
use std::sync::Arc;

use crate::backend::cpu::Cpu;
use crate::backend::{Backend, DType};
use crate::pipeline::{self, SourceFile};
use crate::runtime::{CompiledEnergy, ParamStore};
use crate::sema;

type CompileFn = fn(
    &SourceFile,
    &sema::Module,
    &str,
    Arc<ParamStore>,
    Arc<dyn Backend>,
    DType,
) -> Result<CompiledEnergy, pipeline::Error>;

/// An analysed program: its constants, parameters and definitions. Every
/// energy and model compiled from one `Program` reads the same parameter
/// store: an update through one is seen by all.
pub struct Program {
    file: SourceFile,
    module: sema::Module,
    store: Arc<ParamStore>,
}

impl Program {
    /// Parses and checks source text; relative data paths resolve against the
    /// current folder. Errors in the source come back rendered
    /// (`<source>:line:col`, caret); other failures (a missing file, an
    /// unknown energy) as a plain message.
    pub fn from_source(text: &str) -> Result<Program, String> {
        Program::analyse(SourceFile {
            path: "<source>".into(),
            text: text.into(),
        })
    }

    /// Reads and checks a `.ebm` file; data paths resolve against its folder.
    pub fn from_file(path: &Path) -> Result<Program, String> {
        Program::analyse(SourceFile::read(path).map_err(|e| e.to_string())?)
    }

    fn analyse(file: SourceFile) -> Result<Program, String> {
        let module = pipeline::analyze(&file)?;
        let store = pipeline::param_store(&module).map_err(|e| e.to_string())?;
        Ok(Program {
            file,
            module,
            store,
        })
    }

    /// The names of the program's energies.
    pub fn energies(&self) -> Vec<&str> {
        self.module
            .defs
            .iter()
            .filter(|d| d.kind == sema::DefKind::Energy)
            .map(|d| d.name.as_str())
            .collect()
    }

    /// Compiles an energy with the Cranelift JIT in f64, parameters at their
    /// initial values.
    pub fn energy(&self, name: &str) -> Result<CompiledEnergy, String> {
        self.energy_with(name, Arc::new(Cpu::new()), DType::F64)
    }

    /// Compiles an energy for a chosen backend (`backend::Interp`, `Cpu`) and dtype.
    pub fn energy_with(
        &self,
        name: &str,
        backend: Arc<dyn Backend>,
        dtype: DType,
    ) -> Result<CompiledEnergy, String> {
        self.compile(pipeline::compile_energy, name, backend, dtype)
    }

    fn compile(
        &self,
        how: CompileFn,
        name: &str,
        backend: Arc<dyn Backend>,
        dtype: DType,
    ) -> Result<CompiledEnergy, String> {
        how(
            &self.file,
            &self.module,
            name,
            self.store.clone(),
            backend,
            dtype,
        )
        .map_err(|e| e.to_string())
    }

    /// Compiles a model (`model f(x) -> [K]`) for a backend and dtype: its
    /// values per sample (`energy`, `run` with `KernelSpec::ENERGY`) and
    /// their pullbacks by a per-sample seed (`weighted_grad_params`, or any
    /// `KernelSpec` with `Seed::PerSample`), on the program's parameters.
    pub fn model_with(
        &self,
        name: &str,
        backend: Arc<dyn Backend>,
        dtype: DType,
    ) -> Result<CompiledEnergy, String> {
        self.compile(pipeline::compile_model, name, backend, dtype)
    }

    /// A model on the Cranelift JIT in f64.
    pub fn model(&self, name: &str) -> Result<CompiledEnergy, String> {
        self.model_with(name, Arc::new(Cpu::new()), DType::F64)
    }

    /// The program's parameters, shared by everything compiled from it.
    pub fn params(&self) -> &Arc<ParamStore> {
        &self.store
    }

    pub fn module(&self) -> &sema::Module {
        &self.module
    }
}
