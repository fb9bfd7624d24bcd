//! Errors across the boundary: the one place where a Rust `Result` or a
//! panic becomes a C return code and a message. Every entry point runs its
//! body through [`guard`] (return codes) or [`catch`] (other return values),
//! which catch panics, so no unwinding ever leaves the library; messages go
//! to the caller as `char*` strings allocated here and released by
//! `ebm_free_error`.

use std::any::Any;
use std::ffi::{CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What an entry point returns on success.
pub const EBM_OK: c_int = 0;
/// What an entry point returns when it refuses its arguments or fails
/// (`*err` says why).
pub const EBM_ERROR: c_int = 1;
/// What an entry point returns when the library caught a panic, i.e. a bug
/// in ebm (`*err` says what happened; please report it).
pub const EBM_PANIC: c_int = 2;

/// Why a call failed: refused (a bad argument, a runtime error) or a panic.
pub(crate) enum Failure {
    Error(String),
    Panic(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Error(s)
    }
}

pub(crate) type Result<T> = std::result::Result<T, Failure>;

/// Fails with a message (`fail!("...", args)`).
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::error::Failure::Error(format!($($arg)*)))
    };
}
pub(crate) use fail;

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into());
    format!("internal error in ebm (please report it): {what}")
}

/// Runs `f` with panics caught: `Ok` and `Err` as they come, a panic as
/// `Failure::Panic`. The payload is dropped inside a second `catch_unwind`
/// (a payload whose destructor panics must not escape either).
pub(crate) fn run<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Err(Failure::Panic(msg))
        }
    }
}

/// Stores `msg` in `*err` when `err` is not NULL: a new NUL-terminated
/// string the caller frees with `ebm_free_error`. Interior NUL bytes (which
/// no message of ours holds) are replaced so the text is never cut short.
///
/// # Safety
/// `err` is NULL or valid for one pointer-sized write.
pub(crate) unsafe fn set_error(err: *mut *mut c_char, msg: &str) {
    if err.is_null() {
        return;
    }
    let text = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: `err` is not NULL, and the caller promises it is writable.
    unsafe { err.write(text.into_raw()) };
}

/// Runs an entry point that returns a status code: `EBM_OK`, or
/// `EBM_ERROR`/`EBM_PANIC` with `*err` set.
///
/// # Safety
/// `err` is NULL or valid for one pointer-sized write.
pub(crate) unsafe fn guard(err: *mut *mut c_char, f: impl FnOnce() -> Result<()>) -> c_int {
    match run(f) {
        Ok(()) => EBM_OK,
        Err(Failure::Error(msg)) => {
            // SAFETY: forwarded from the caller.
            unsafe { set_error(err, &msg) };
            EBM_ERROR
        }
        Err(Failure::Panic(msg)) => {
            // SAFETY: forwarded from the caller.
            unsafe { set_error(err, &msg) };
            EBM_PANIC
        }
    }
}

/// Runs an entry point that returns a value and has no error channel:
/// `fallback` on any failure (NULL, 0, -1 as documented per function).
pub(crate) fn catch<T>(fallback: T, f: impl FnOnce() -> Result<T>) -> T {
    run(f).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

    #[test]
    fn a_panic_becomes_an_error_code_and_a_message() {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: `err` is a local pointer, valid for a write.
        let rc = unsafe { guard(&mut err, || panic!("boom {}", 7)) };
        assert_eq!(rc, EBM_PANIC);
        assert!(!err.is_null());
        // SAFETY: `guard` stored a string from `CString::into_raw`.
        let msg = unsafe { CString::from_raw(err) };
        let msg = msg.to_str().unwrap();
        assert!(
            msg.contains("internal error") && msg.contains("boom 7"),
            "{msg}"
        );
    }

    #[test]
    fn a_panic_with_a_str_payload_and_no_error_pointer() {
        // SAFETY: a NULL `err` is allowed and never written.
        let rc = unsafe { guard(ptr::null_mut(), || panic!("static")) };
        assert_eq!(rc, EBM_PANIC);
        assert_eq!(catch(-1i64, || panic!("in a value")), -1);
    }

    #[test]
    fn errors_keep_their_text_and_interior_nuls_are_escaped() {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: `err` is a local pointer, valid for a write.
        let rc = unsafe { guard(&mut err, || Err(Failure::Error("a\0b".into()))) };
        assert_eq!(rc, EBM_ERROR);
        // SAFETY: `guard` stored a string from `CString::into_raw`.
        let msg = unsafe { CString::from_raw(err) };
        assert_eq!(msg.to_str().unwrap(), "a\\0b");
    }
}
