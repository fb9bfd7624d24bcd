//! Stack room for the recursive front end. The parser (pest and the Pratt
//! parser), the checker, the lowering and the AST printer recurse once per
//! level of an expression, and a generated program may nest brackets and
//! `let`s thousands deep; they run on a thread with a large stack
//! ([`with_big_stack`]). The limits in `syntax::errors` bound the depth of
//! every input, and `tests/deep.rs` runs inputs at those limits, so no
//! input can overflow this stack.

/// The stack of the front end's thread. The memory is only reserved, not
/// touched, unless used. The deepest inputs the limits allow (those of
/// `tests/deep.rs`) ran through `ebm check` and `ebm dump --stage opt
/// --kernel all` with 16 MiB in a release build (a sum of 10 000 terms;
/// 2000 nested brackets or `let`s needed 8 MiB).
pub const STACK_BYTES: usize = 256 << 20;

/// Runs `f` on a thread with a [`STACK_BYTES`] stack, and returns what it
/// returns (a panic in `f` is resumed here).
pub fn with_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let mut slot = Some(f);
    let done = std::thread::scope(|s| {
        let taken = &mut slot;
        let spawned = std::thread::Builder::new()
            .name("ebm-front".into())
            .stack_size(STACK_BYTES)
            .spawn_scoped(s, move || taken.take().map(|f| f()));
        match spawned {
            Ok(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            Err(_) => None,
        }
    });
    match (done, slot) {
        (Some(v), _) => v,
        // No thread could be started: run here, with the current stack.
        (None, Some(f)) => f(),
        // invariant: the scoped thread either returned `f`'s value or its panic was resumed above.
        (None, None) => unreachable!("the thread took `f` and returned its value"),
    }
}
