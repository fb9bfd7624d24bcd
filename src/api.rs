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
//!
//! A model file (`ebm build`, or [`Program::build`]) loads into an
//! [`Artifact`], which compiles its definitions into the same
//! `CompiledEnergy` type; batches go in and out as slices or as `ndarray`
//! arrays (`energy_array`, `grad_x_array`, `hvp_array`).
//!
//! Energies also compose in Rust ([`Energy`], from
//! [`Program::energy_handle`], [`Artifact::energy_handle`] or the
//! `ebm_macros::energy!` macro): `a & b`, `a | b`, `!a`, `w * a` build the
//! graph the language builds for `a and b`, `a or b`, `not a`, `w * a`.
//! The macros live in the separate `ebm-macros` crate (it depends on this
//! one to check sources when the host crate compiles, so this crate cannot
//! re-export them): write `ebm_macros::energy!("...")`.

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView2};

use crate::artifact;
use crate::backend::cpu::Cpu;
use crate::backend::{Backend, DType};
use crate::pipeline::{self, SourceFile};
use crate::runtime::{CompiledEnergy, ParamStore, RuntimeError, Scalar};
use crate::sema;

mod compose;
pub use compose::{Energy, EnergyError};

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

    /// Source text named `name` in diagnostics, its relative data paths
    /// (`load("w.csv")`) resolved against `dir`. The `ebm-macros` crate's
    /// `program!` and `energy!` expand to this, with the host crate's
    /// manifest folder, the folder they were checked against.
    pub fn from_source_in(text: &str, name: &str, dir: &Path) -> Result<Program, String> {
        let file = SourceFile {
            path: name.into(),
            text: text.into(),
        };
        let module = pipeline::analyze_in(&file, dir)?;
        Program::with_module(file, module)
    }

    /// Reads and checks a `.ebm` file; data paths resolve against its folder.
    pub fn from_file(path: &Path) -> Result<Program, String> {
        Program::analyse(SourceFile::read(path).map_err(|e| e.to_string())?)
    }

    fn analyse(file: SourceFile) -> Result<Program, String> {
        let module = pipeline::analyze(&file)?;
        Program::with_module(file, module)
    }

    fn with_module(file: SourceFile, module: sema::Module) -> Result<Program, String> {
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

    /// The energy `name` as a composable handle reading this program's
    /// parameter store (shared: `params().set(..)` reaches it, and whatever
    /// is compiled from it or composed with other handles of this store).
    pub fn energy_handle(&self, name: &str) -> Result<Energy, String> {
        let graph =
            pipeline::energy_graph(&self.file, &self.module, name).map_err(|e| e.to_string())?;
        Energy::from_graph(graph, self.store.clone()).map_err(|e| e.to_string())
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

    /// A model file of the named energies and models (all of them when
    /// `names` is empty) with the parameters' current values.
    pub fn build(&self, names: &[&str]) -> Result<artifact::Artifact, String> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let req = pipeline::BuildRequest {
            names: &names,
            scale: None,
            provenance: Default::default(),
        };
        pipeline::build_model(&self.file, &self.module, &self.store, &req)
            .map_err(|e| e.to_string())
    }
}

/// A model file loaded for use: its definitions, compiled on request, all
/// reading one parameter store filled from the file (`params().set(..)`
/// changes them for everything compiled from it).
pub struct Artifact {
    file: artifact::Artifact,
    store: Arc<ParamStore>,
}

impl Artifact {
    /// Reads a model file; every problem (not a model file, truncated,
    /// corrupted, a newer format) is one sentence.
    pub fn load(path: &Path) -> Result<Artifact, String> {
        let file =
            artifact::Artifact::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Artifact::from_file(file)
    }

    /// A model file's bytes, already in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Artifact, String> {
        Artifact::from_file(artifact::Artifact::from_bytes(bytes).map_err(|e| e.to_string())?)
    }

    /// Takes a model file built in this process.
    pub fn from_file(file: artifact::Artifact) -> Result<Artifact, String> {
        let store = pipeline::artifact_store(&file).map_err(|e| e.to_string())?;
        Ok(Artifact { file, store })
    }

    /// The names of the file's energies.
    pub fn energies(&self) -> Vec<&str> {
        self.names(artifact::Kind::Energy)
    }

    /// The names of the file's models.
    pub fn models(&self) -> Vec<&str> {
        self.names(artifact::Kind::Model)
    }

    fn names(&self, kind: artifact::Kind) -> Vec<&str> {
        self.file
            .defs()
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.name.as_str())
            .collect()
    }

    /// An energy on the Cranelift JIT in f64.
    pub fn energy(&self, name: &str) -> Result<CompiledEnergy, String> {
        self.energy_with(name, Arc::new(Cpu::new()), DType::F64)
    }

    /// An energy for a chosen backend and dtype.
    pub fn energy_with(
        &self,
        name: &str,
        backend: Arc<dyn Backend>,
        dtype: DType,
    ) -> Result<CompiledEnergy, String> {
        self.compile(name, artifact::Kind::Energy, backend, dtype)
    }

    /// The energy `name` as a composable handle reading this file's
    /// parameter store (shared with everything else compiled from it).
    pub fn energy_handle(&self, name: &str) -> Result<Energy, String> {
        let graph = pipeline::artifact_graph(&self.file, name, artifact::Kind::Energy)
            .map_err(|e| e.to_string())?;
        Energy::from_graph(graph.clone(), self.store.clone()).map_err(|e| e.to_string())
    }

    /// A model on the Cranelift JIT in f64.
    pub fn model(&self, name: &str) -> Result<CompiledEnergy, String> {
        self.model_with(name, Arc::new(Cpu::new()), DType::F64)
    }

    /// A model for a chosen backend and dtype.
    pub fn model_with(
        &self,
        name: &str,
        backend: Arc<dyn Backend>,
        dtype: DType,
    ) -> Result<CompiledEnergy, String> {
        self.compile(name, artifact::Kind::Model, backend, dtype)
    }

    fn compile(
        &self,
        name: &str,
        kind: artifact::Kind,
        backend: Arc<dyn Backend>,
        dtype: DType,
    ) -> Result<CompiledEnergy, String> {
        pipeline::compile_artifact(&self.file, name, kind, self.store.clone(), backend, dtype)
            .map_err(|e| e.to_string())
    }

    /// The parameters, shared by everything compiled from this file.
    pub fn params(&self) -> &Arc<ParamStore> {
        &self.store
    }

    /// The file itself: header (signatures, provenance), source, values.
    pub fn file(&self) -> &artifact::Artifact {
        &self.file
    }
}

/// Batches as `ndarray` arrays: one row per sample (`[batch, numel(x)]`,
/// and `[batch, numel(c)]` for a conditioning input). Views of any layout
/// are accepted; results are new standard-layout arrays.
impl CompiledEnergy {
    /// The values per sample (a model's outputs flattened per row are
    /// `energy` of shape `[batch * out_dim]`; use `run` for their layout).
    pub fn energy_array<T: Scalar>(
        &self,
        x: ArrayView2<T>,
        cond: Option<ArrayView2<T>>,
    ) -> Result<Array1<T>, RuntimeError> {
        let (xs, cs, batch) = self.rows(&x, cond.as_ref())?;
        Ok(Array1::from(self.energy(&xs, cs.as_deref(), batch)?))
    }

    /// Energies and ∇ₓE, one row per sample.
    pub fn grad_x_array<T: Scalar>(
        &self,
        x: ArrayView2<T>,
        cond: Option<ArrayView2<T>>,
    ) -> Result<(Array1<T>, Array2<T>), RuntimeError> {
        let (xs, cs, batch) = self.rows(&x, cond.as_ref())?;
        let eg = self.energy_and_grad_x(&xs, cs.as_deref(), batch)?;
        Ok((Array1::from(eg.energy), self.to_rows(eg.grad_x, batch)?))
    }

    /// Hessian-vector products ∇ₓ(∇ₓE·v), one row per sample.
    pub fn hvp_array<T: Scalar>(
        &self,
        x: ArrayView2<T>,
        v: ArrayView2<T>,
        cond: Option<ArrayView2<T>>,
    ) -> Result<Array2<T>, RuntimeError> {
        let (xs, cs, batch) = self.rows(&x, cond.as_ref())?;
        if v.dim() != x.dim() {
            return Err(RuntimeError::BatchShape(format!(
                "the directions have shape {:?}, the points {:?}",
                v.dim(),
                x.dim()
            )));
        }
        let vs: Vec<T> = v.iter().copied().collect();
        self.to_rows(self.hvp(&xs, &vs, cs.as_deref(), batch)?, batch)
    }

    /// Row-major copies of a batch, checked against the definition's sizes.
    #[allow(clippy::type_complexity)]
    fn rows<T: Scalar>(
        &self,
        x: &ArrayView2<T>,
        cond: Option<&ArrayView2<T>>,
    ) -> Result<(Vec<T>, Option<Vec<T>>, usize), RuntimeError> {
        let (batch, width) = x.dim();
        if width != self.dim() {
            return Err(RuntimeError::BatchShape(format!(
                "the points have {width} columns; the definition takes {}",
                self.dim()
            )));
        }
        let cs = match cond {
            Some(c) if c.dim() != (batch, self.cond_dim()) => {
                return Err(RuntimeError::BatchShape(format!(
                    "the conditioning inputs have shape {:?}; expected ({batch}, {})",
                    c.dim(),
                    self.cond_dim()
                )));
            }
            Some(c) => Some(c.iter().copied().collect()),
            None => None,
        };
        Ok((x.iter().copied().collect(), cs, batch))
    }

    fn to_rows<T: Scalar>(&self, flat: Vec<T>, batch: usize) -> Result<Array2<T>, RuntimeError> {
        Array2::from_shape_vec((batch, self.dim()), flat)
            .map_err(|e| RuntimeError::Internal(e.to_string()))
    }
}
