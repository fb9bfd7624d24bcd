//! The C entry points (`ebm_*`): argument checking at the boundary
//! (pointers, names, sizes), evaluation on batches in f64 and f32, and the
//! conversion of every outcome into a return code. Each function runs its
//! body under `error::guard`/`error::catch`, so no panic crosses into C.
//! `include/ebm.h` is generated from this file by cbindgen.

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::PathBuf;
use std::sync::OnceLock;

use ebm::artifact::Kind;
use ebm::runtime::{CompiledEnergy, Scalar};

use crate::error::{Result, catch, fail, guard};
use crate::model::EbmModel;

/// `ebm_model_def_kind`: an energy (a scalar per point).
pub const EBM_KIND_ENERGY: c_int = 0;
/// `ebm_model_def_kind`: a model (a tensor per point; listed, not evaluated).
pub const EBM_KIND_MODEL: c_int = 1;

// ---------------------------------------------------------------------------
// Arguments

/// The model behind a handle.
///
/// # Safety
/// `m` is NULL or a live handle from `ebm_model_open`.
unsafe fn model<'a>(m: *const EbmModel) -> Result<&'a EbmModel> {
    if m.is_null() {
        fail!("the model handle is NULL");
    }
    // SAFETY: not NULL, and the caller promises a live handle.
    Ok(unsafe { &*m })
}

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        fail!("{what} is NULL");
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(p) };
    match s.to_str() {
        Ok(s) => Ok(s),
        Err(_) => fail!("{what} is not UTF-8: {:?}", s.to_string_lossy()),
    }
}

/// Checks a pointer before it is read or written: not NULL, aligned for
/// `T`, and `len` values of `T` fit in an allocation.
fn check_ptr<T>(p: *const T, len: usize, what: &str) -> Result<()> {
    if p.is_null() {
        fail!("{what} is NULL");
    }
    if !p.is_aligned() {
        fail!("{what} is not aligned for {}", std::any::type_name::<T>());
    }
    if len
        .checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        fail!("{what} would hold {len} values: too many");
    }
    Ok(())
}

/// `len` values the caller passed in.
///
/// # Safety
/// `p` is NULL or valid for reads of `len` values of `T`.
unsafe fn input<'a, T>(p: *const T, len: usize, what: &str) -> Result<&'a [T]> {
    check_ptr(p, len, what)?;
    // SAFETY: `p` is non-NULL and aligned, the size fits in an allocation
    // (both checked), and the caller promises `len` readable values.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Copies results into the caller's buffer. `ptr::copy` (memmove), not a
/// `&mut` slice: the buffer may be one of the inputs (results are complete
/// before anything is written).
///
/// # Safety
/// `p` passed `check_ptr` for `values.len()` values and is valid for writes
/// of that many.
unsafe fn write<T: Copy>(p: *mut T, values: &[T]) {
    // SAFETY: promised by the caller.
    unsafe { std::ptr::copy(values.as_ptr(), p, values.len()) };
}

/// `a * b` values, or an error naming both.
fn count(batch: usize, per: usize, what: &str) -> Result<usize> {
    match batch.checked_mul(per) {
        Some(n) => Ok(n),
        None => fail!("{what}: a batch of {batch} points of {per} values each is too large"),
    }
}

/// The checked inputs of one evaluation.
struct Batch<'a, T> {
    energy: &'a CompiledEnergy,
    x: &'a [T],
    c: Option<&'a [T]>,
    batch: usize,
}

/// Resolves the energy and reads `x` and `c` (NULL for an unconditional
/// energy; required, `cond_dim` values per point, for a conditional one).
///
/// # Safety
/// `m` is NULL or a live handle; `name` NULL or NUL-terminated; `x` NULL or
/// `batch * dim` readable values; `c` NULL or `batch * cond_dim` readable values.
unsafe fn batch_in<'a, T: Scalar>(
    m: *const EbmModel,
    name: *const c_char,
    x: *const T,
    c: *const T,
    batch: usize,
) -> Result<Batch<'a, T>> {
    // SAFETY: forwarded from the caller.
    let (m, name) = unsafe { (model(m)?, text(name, "the energy name")?) };
    let energy = m.energy(name, T::DTYPE)?;
    let nx = count(batch, energy.dim(), "x")?;
    // SAFETY: forwarded from the caller.
    let x = unsafe { input(x, nx, "x")? };
    let c = match (c.is_null(), energy.cond_dim()) {
        (true, 0) => None,
        (true, n) => fail!("`{name}` is conditional: pass c, {n} values per point (c is NULL)"),
        (false, 0) => fail!("`{name}` is not conditional: c must be NULL"),
        (false, n) => {
            let nc = count(batch, n, "c")?;
            // SAFETY: forwarded from the caller.
            Some(unsafe { input(c, nc, "c")? })
        }
    };
    Ok(Batch {
        energy,
        x,
        c,
        batch,
    })
}

/// Checks that the runtime returned exactly what the caller's buffer holds
/// (never write past it, whatever happens).
fn exactly<T>(values: &[T], expected: usize, what: &str) -> Result<()> {
    if values.len() != expected {
        fail!(
            "internal error: {what} has {} values, expected {expected}",
            values.len()
        );
    }
    Ok(())
}

fn runtime<T>(r: std::result::Result<T, ebm::runtime::RuntimeError>) -> Result<T> {
    r.map_err(|e| e.to_string().into())
}

/// The body of `ebm_energy_f64`/`_f32`.
///
/// # Safety
/// As `ebm_energy_f64`.
unsafe fn energy<T: Scalar>(
    m: *const EbmModel,
    name: *const c_char,
    x: *const T,
    c: *const T,
    batch: usize,
    out_energy: *mut T,
) -> Result<()> {
    // SAFETY: forwarded from the caller.
    let b = unsafe { batch_in(m, name, x, c, batch)? };
    check_ptr(out_energy, batch, "out_energy")?;
    if batch == 0 {
        return Ok(());
    }
    let values = runtime(b.energy.energy(b.x, b.c, b.batch))?;
    exactly(&values, batch, "the energy")?;
    // SAFETY: checked above; the caller promises `batch` writable values.
    unsafe { write(out_energy, &values) };
    Ok(())
}

/// The body of `ebm_grad_f64`/`_f32`.
///
/// # Safety
/// As `ebm_grad_f64`.
unsafe fn grad<T: Scalar>(
    m: *const EbmModel,
    name: *const c_char,
    x: *const T,
    c: *const T,
    batch: usize,
    out_energy: *mut T,
    out_grad: *mut T,
) -> Result<()> {
    // SAFETY: forwarded from the caller.
    let b = unsafe { batch_in(m, name, x, c, batch)? };
    let n = b.x.len();
    if !out_energy.is_null() {
        check_ptr(out_energy, batch, "out_energy")?;
    }
    check_ptr(out_grad, n, "out_grad")?;
    if batch == 0 {
        return Ok(());
    }
    let eg = runtime(b.energy.energy_and_grad_x(b.x, b.c, b.batch))?;
    exactly(&eg.energy, batch, "the energy")?;
    exactly(&eg.grad_x, n, "the gradient")?;
    // SAFETY: checked above; the caller promises `batch * dim` writable
    // values at `out_grad` and `batch` at `out_energy` when it is not NULL.
    unsafe {
        write(out_grad, &eg.grad_x);
        if !out_energy.is_null() {
            write(out_energy, &eg.energy);
        }
    }
    Ok(())
}

/// The body of `ebm_hvp_f64`/`_f32`.
///
/// # Safety
/// As `ebm_hvp_f64`.
#[allow(clippy::too_many_arguments)]
unsafe fn hvp<T: Scalar>(
    m: *const EbmModel,
    name: *const c_char,
    x: *const T,
    c: *const T,
    batch: usize,
    v: *const T,
    out: *mut T,
) -> Result<()> {
    // SAFETY: forwarded from the caller.
    let b = unsafe { batch_in(m, name, x, c, batch)? };
    let n = b.x.len();
    // SAFETY: the caller promises `batch * dim` readable values at `v`.
    let v = unsafe { input(v, n, "v")? };
    check_ptr(out, n, "out")?;
    if batch == 0 {
        return Ok(());
    }
    let values = runtime(b.energy.hvp(b.x, v, b.c, b.batch))?;
    exactly(&values, n, "the Hessian-vector product")?;
    // SAFETY: checked above; the caller promises `batch * dim` writable values.
    unsafe { write(out, &values) };
    Ok(())
}

// ---------------------------------------------------------------------------
// Library

/// The version of ebm this library was built from, e.g. "0.1.0": a static
/// string, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn ebm_version() -> *const c_char {
    static VERSION: OnceLock<CString> = OnceLock::new();
    catch(std::ptr::null(), || {
        let v = VERSION.get_or_init(|| {
            let full = ebm::artifact::compiler_version();
            let v = full.strip_prefix("ebm ").unwrap_or(&full);
            CString::new(v).unwrap_or_default()
        });
        Ok(v.as_ptr())
    })
}

/// The newest model-file format version this library reads (it reads every
/// version from 1 up to this one).
#[unsafe(no_mangle)]
pub extern "C" fn ebm_format_version() -> u32 {
    ebm::artifact::FORMAT_VERSION
}

/// Frees an error message that a function stored in `*err`. NULL is
/// accepted (and ignored).
///
/// # Safety
/// `err` is NULL or a message from this library not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_free_error(err: *mut c_char) {
    if err.is_null() {
        return;
    }
    catch((), || {
        // SAFETY: the caller passes back a string made by `set_error` with
        // `CString::into_raw`, once.
        drop(unsafe { CString::from_raw(err) });
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Model handles

/// Opens a model file (`ebm build ... -o PATH`): reads and checks it; each
/// energy is compiled on its first evaluation in each dtype. Returns NULL on
/// failure (a missing file, not a model file, truncated, corrupted, a newer
/// format), with `*err` set when `err` is not NULL. Free the handle with
/// `ebm_model_free`.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `err` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_open(
    path: *const c_char,
    err: *mut *mut c_char,
) -> *mut EbmModel {
    let mut handle = std::ptr::null_mut();
    let body = || {
        if path.is_null() {
            fail!("the path is NULL");
        }
        // SAFETY: not NULL, and the caller promises a NUL-terminated string.
        let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
        handle = Box::into_raw(Box::new(EbmModel::open(&path_of(bytes)?)?));
        Ok(())
    };
    // SAFETY: `err` is forwarded from the caller.
    unsafe { guard(err, body) };
    handle
}

#[cfg(unix)]
fn path_of(bytes: &[u8]) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

#[cfg(not(unix))]
fn path_of(bytes: &[u8]) -> Result<PathBuf> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(PathBuf::from(s)),
        Err(_) => fail!("the path is not UTF-8"),
    }
}

/// Frees a model handle and everything it owns (the names it returned
/// included). NULL is accepted (and ignored).
///
/// # Safety
/// `m` is NULL or a handle from `ebm_model_open` not freed before, and no
/// other thread is using it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_free(m: *mut EbmModel) {
    if m.is_null() {
        return;
    }
    catch((), || {
        // SAFETY: the caller passes a handle made by `Box::into_raw` in
        // `ebm_model_open`, once, and no longer uses it.
        drop(unsafe { Box::from_raw(m) });
        Ok(())
    })
}

/// The number of definitions (energies and models) in the file; 0 when `m`
/// is NULL.
///
/// # Safety
/// `m` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_num_defs(m: *const EbmModel) -> usize {
    // SAFETY: forwarded from the caller.
    catch(0, || Ok(unsafe { model(m)? }.num_defs()))
}

/// The name of definition `i` (0-based, in file order): a string owned by
/// the handle, valid until `ebm_model_free`. NULL when `m` is NULL or `i`
/// is out of range.
///
/// # Safety
/// `m` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_def_name(m: *const EbmModel, i: usize) -> *const c_char {
    catch(std::ptr::null(), || {
        // SAFETY: forwarded from the caller.
        let m = unsafe { model(m)? };
        Ok(m.def_name(i).map_or(std::ptr::null(), |n| n.as_ptr()))
    })
}

/// The kind of definition `i`: `EBM_KIND_ENERGY` or `EBM_KIND_MODEL`; -1
/// when `m` is NULL or `i` is out of range.
///
/// # Safety
/// `m` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_def_kind(m: *const EbmModel, i: usize) -> c_int {
    catch(-1, || {
        // SAFETY: forwarded from the caller.
        let m = unsafe { model(m)? };
        Ok(match m.def_kind(i) {
            Some(Kind::Energy) => EBM_KIND_ENERGY,
            Some(Kind::Model) => EBM_KIND_MODEL,
            None => -1,
        })
    })
}

/// The number of values per point of `x` for definition `name` (the
/// product of its shape; points are stored row-major, one after another).
/// -1 when `m` or `name` is NULL or there is no such definition.
///
/// # Safety
/// `m` is NULL or a live handle; `name` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_dim(m: *const EbmModel, name: *const c_char) -> i64 {
    catch(-1, || {
        // SAFETY: forwarded from the caller.
        let (m, name) = unsafe { (model(m)?, text(name, "the name")?) };
        Ok(m.sig(name)?.x.iter().product::<usize>() as i64)
    })
}

/// The number of values per point of the conditioning input `c` of
/// definition `name`; 0 when it is unconditional, -1 when `m` or `name` is
/// NULL or there is no such definition.
///
/// # Safety
/// `m` is NULL or a live handle; `name` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_cond_dim(m: *const EbmModel, name: *const c_char) -> i64 {
    catch(-1, || {
        // SAFETY: forwarded from the caller.
        let (m, name) = unsafe { (model(m)?, text(name, "the name")?) };
        let sig = m.sig(name)?;
        Ok(sig.c.as_ref().map_or(0, |c| c.iter().product::<usize>()) as i64)
    })
}

// ---------------------------------------------------------------------------
// Parameters

/// The number of parameter tensors in the file; 0 when `m` is NULL.
///
/// # Safety
/// `m` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_num_params(m: *const EbmModel) -> usize {
    // SAFETY: forwarded from the caller.
    catch(0, || Ok(unsafe { model(m)? }.num_params()))
}

/// The name of parameter `i` (0-based; names like `net.mlp0.w1`): a string
/// owned by the handle, valid until `ebm_model_free`. NULL when `m` is NULL
/// or `i` is out of range.
///
/// # Safety
/// `m` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_param_name(m: *const EbmModel, i: usize) -> *const c_char {
    catch(std::ptr::null(), || {
        // SAFETY: forwarded from the caller.
        let m = unsafe { model(m)? };
        Ok(m.param_name(i).map_or(std::ptr::null(), |n| n.as_ptr()))
    })
}

/// The number of values of parameter `name` (the product of its shape,
/// row-major); -1 when `m` or `name` is NULL or there is no such parameter.
///
/// # Safety
/// `m` is NULL or a live handle; `name` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_param_size(m: *const EbmModel, name: *const c_char) -> i64 {
    catch(-1, || {
        // SAFETY: forwarded from the caller.
        let (m, name) = unsafe { (model(m)?, text(name, "the parameter name")?) };
        Ok(m.param_size(name)? as i64)
    })
}

/// Copies the current values of parameter `name` into `out`, which holds
/// `n` doubles; `n` must be the parameter's size (`ebm_model_param_size`).
/// Returns `EBM_OK`, or nonzero with `*err` set.
///
/// # Safety
/// `m` is NULL or a live handle; `name` is NULL or NUL-terminated; `out`
/// is NULL or valid for writes of `n` doubles; `err` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_get_param(
    m: *const EbmModel,
    name: *const c_char,
    out: *mut f64,
    n: usize,
    err: *mut *mut c_char,
) -> c_int {
    let body = || {
        // SAFETY: forwarded from the caller.
        let (m, name) = unsafe { (model(m)?, text(name, "the parameter name")?) };
        let size = m.param_size(name)?;
        if n != size {
            fail!("parameter `{name}` has {size} values; n is {n}");
        }
        check_ptr(out, n, "out")?;
        let Some(values) = m.store().get(name) else {
            fail!("internal error: parameter `{name}` has no values");
        };
        exactly(&values, n, "the parameter")?;
        // SAFETY: checked above; the caller promises `n` writable values.
        unsafe { write(out, &values) };
        Ok(())
    };
    // SAFETY: `err` is forwarded from the caller.
    unsafe { guard(err, body) }
}

/// Replaces the values of parameter `name` with the `n` doubles at
/// `values`; `n` must be the parameter's size. Every energy of the handle
/// sees the new values from its next call on (nothing is recompiled).
/// Returns `EBM_OK`, or nonzero with `*err` set (the values are unchanged).
///
/// # Safety
/// `m` is NULL or a live handle; `name` is NULL or NUL-terminated; `values`
/// is NULL or valid for reads of `n` doubles; `err` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_model_set_param(
    m: *const EbmModel,
    name: *const c_char,
    values: *const f64,
    n: usize,
    err: *mut *mut c_char,
) -> c_int {
    let body = || {
        // SAFETY: forwarded from the caller.
        let (m, name) = unsafe { (model(m)?, text(name, "the parameter name")?) };
        let size = m.param_size(name)?;
        if n != size {
            fail!("parameter `{name}` has {size} values; n is {n}");
        }
        // SAFETY: the caller promises `n` readable values.
        let values = unsafe { input(values, n, "values")? };
        runtime(m.store().set(name, values))
    };
    // SAFETY: `err` is forwarded from the caller.
    unsafe { guard(err, body) }
}

// ---------------------------------------------------------------------------
// Evaluation

/// Energies of a batch: `x` holds `batch` points of `ebm_model_dim` values
/// each (row-major, one point after another); `c` is NULL for an
/// unconditional energy, else `batch` rows of `ebm_model_cond_dim` values;
/// `out_energy` receives `batch` values. A batch of 0 writes nothing.
/// Returns `EBM_OK`, or nonzero with `*err` set (an unknown energy, a NULL
/// pointer, a missing or unexpected `c`, ...).
///
/// # Safety
/// `m` is NULL or a live handle; `name` is NULL or NUL-terminated; every
/// non-NULL array holds the number of values above; `err` is NULL or
/// writable. Outputs may alias inputs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_energy_f64(
    m: *const EbmModel,
    name: *const c_char,
    x: *const f64,
    c: *const f64,
    batch: usize,
    out_energy: *mut f64,
    err: *mut *mut c_char,
) -> c_int {
    // SAFETY: every pointer is forwarded from the caller.
    unsafe { guard(err, || energy(m, name, x, c, batch, out_energy)) }
}

/// `ebm_energy_f64` in single precision (the energy compiled for f32;
/// parameters are rounded to f32 once per update).
///
/// # Safety
/// As `ebm_energy_f64`, with floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ebm_energy_f32(
    m: *const EbmModel,
    name: *const c_char,
    x: *const f32,
    c: *const f32,
    batch: usize,
    out_energy: *mut f32,
    err: *mut *mut c_char,
) -> c_int {
    // SAFETY: every pointer is forwarded from the caller.
    unsafe { guard(err, || energy(m, name, x, c, batch, out_energy)) }
}

/// Energies and their gradients with respect to `x` on a batch:
/// `out_grad` receives `batch * dim` values (row-major, like `x`);
/// `out_energy` is NULL or receives `batch` values. Arguments otherwise as
/// `ebm_energy_f64`.
///
/// # Safety
/// As `ebm_energy_f64`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ebm_grad_f64(
    m: *const EbmModel,
    name: *const c_char,
    x: *const f64,
    c: *const f64,
    batch: usize,
    out_energy: *mut f64,
    out_grad: *mut f64,
    err: *mut *mut c_char,
) -> c_int {
    // SAFETY: every pointer is forwarded from the caller.
    unsafe { guard(err, || grad(m, name, x, c, batch, out_energy, out_grad)) }
}

/// `ebm_grad_f64` in single precision.
///
/// # Safety
/// As `ebm_energy_f64`, with floats.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ebm_grad_f32(
    m: *const EbmModel,
    name: *const c_char,
    x: *const f32,
    c: *const f32,
    batch: usize,
    out_energy: *mut f32,
    out_grad: *mut f32,
    err: *mut *mut c_char,
) -> c_int {
    // SAFETY: every pointer is forwarded from the caller.
    unsafe { guard(err, || grad(m, name, x, c, batch, out_energy, out_grad)) }
}

/// Hessian-vector products on a batch: for each point x_b and direction
/// v_b (`v` holds `batch * dim` values, like `x`), `out` receives
/// the gradient in x of (gradient of E at x_b) . v_b, `batch * dim` values. Arguments otherwise as
/// `ebm_energy_f64`.
///
/// # Safety
/// As `ebm_energy_f64`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ebm_hvp_f64(
    m: *const EbmModel,
    name: *const c_char,
    x: *const f64,
    c: *const f64,
    batch: usize,
    v: *const f64,
    out: *mut f64,
    err: *mut *mut c_char,
) -> c_int {
    // SAFETY: every pointer is forwarded from the caller.
    unsafe { guard(err, || hvp(m, name, x, c, batch, v, out)) }
}

/// `ebm_hvp_f64` in single precision.
///
/// # Safety
/// As `ebm_energy_f64`, with floats.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ebm_hvp_f32(
    m: *const EbmModel,
    name: *const c_char,
    x: *const f32,
    c: *const f32,
    batch: usize,
    v: *const f32,
    out: *mut f32,
    err: *mut *mut c_char,
) -> c_int {
    // SAFETY: every pointer is forwarded from the caller.
    unsafe { guard(err, || hvp(m, name, x, c, batch, v, out)) }
}
