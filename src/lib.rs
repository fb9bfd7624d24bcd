//! ebm: a language and compiler for energy-based models.
//!
//! The modules follow the pipeline: `syntax` (pest → AST) → `sema` (names,
//! shapes, constants) → `lower` (AST → IR) → `ir` → `autodiff` → `opt` →
//! `backend` → `runtime` → runners (`sample`, ...). See `docs/ARCHITECTURE.md`.

pub mod api;
pub mod autodiff;
pub mod backend;
pub mod bench;
pub mod data;
pub mod diag;
pub mod driver;
pub mod ir;
pub mod lower;
pub mod opt;
pub mod plot;
pub mod runtime;
pub mod sample;
pub mod script;
pub mod sema;
pub mod stats;
pub mod syntax;
