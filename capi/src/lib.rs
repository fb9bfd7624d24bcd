//! libebmc: a C ABI for ebm model files (`.ebmc`), in the style of
//! BridgeStan. A C program (or Python through `ctypes`, Julia, R, ...)
//! opens a model file built by `ebm build`, lists its definitions and
//! parameters, reads and sets parameter values, and evaluates energies,
//! their gradients and Hessian-vector products on batches in f64 or f32.
//!
//! This crate owns the boundary only: `ffi` holds the `extern "C"` entry
//! points and their argument checks, `model` the handle behind
//! `ebm_model*`, `error` the return codes, messages and panic catching.
//! Everything else is `ebm::api::Artifact` and `ebm::runtime`. The header
//! `include/ebm.h` is generated from these sources by cbindgen (the test
//! `header_is_current` keeps it in step; `EBM_BLESS=1` rewrites it).
//! `docs/c-api.md` describes ownership, errors and thread safety.

mod error;
mod ffi;
mod model;

pub use error::{EBM_ERROR, EBM_OK, EBM_PANIC};
pub use ffi::*;
pub use model::EbmModel;
