//! ebm: a language and compiler for energy-based models.
//!
//! The modules follow the pipeline: `syntax` (pest → AST) → `sema` (names,
//! shapes, constants) → `lower` (AST → IR) → `ir` → `autodiff` → `opt` →
//! `backend` → `runtime` → runners (`sample`, ...); `pipeline` strings the
//! stages together. Layers depend downward only, and the library knows
//! nothing of command-line flags: those live in the `ebm` binary
//! (`src/main.rs`, `src/cli`). See `docs/ARCHITECTURE.md`.

pub mod api;
pub mod artifact;
pub mod autodiff;
pub mod backend;
pub mod bench;
pub mod budget;
pub mod data;
pub mod diag;
pub mod interrupt;
pub mod ir;
pub mod lint;
pub mod lower;
pub mod opt;
pub mod pipeline;
pub mod plot;
pub mod repl;
pub mod runtime;
pub mod sample;
pub mod script;
pub mod sema;
pub mod stack;
pub mod stats;
pub mod syntax;
pub mod train;
