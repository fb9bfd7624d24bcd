//! The user's request to stop the work in progress (Ctrl-C in `ebm repl`):
//! one process-wide flag that the binary's signal handler sets and long
//! loops poll — the sampling engine between kept draws (and every MH
//! iteration), training between iterations — so an interrupted command
//! ends with [`RuntimeError::Interrupted`](crate::runtime::RuntimeError)
//! (training: with its checkpoint written) and the session goes on. The
//! commands that end the process at Ctrl-C never set it.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the work in progress to stop; returns whether a request was
/// already pending (a second Ctrl-C, for a handler that then gives up).
pub fn request() -> bool {
    REQUESTED.swap(true, Ordering::SeqCst)
}

/// Whether a stop was requested and not yet cleared.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Forgets a request: called before each new piece of work.
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}
