//! The memory limit every estimate is checked against before anything is
//! allocated: a program's parameters and constants (`sema`, E0328), a
//! sampling run's chain state and draws (`sample::run`), an AIS estimate's
//! chains, a CPU kernel's scratch arenas (`backend::cpu`).
//!
//! One number, [`DEFAULT_MAX_MEMORY`] (8 GiB) unless the environment variable
//! `EBM_MAX_MEMORY` sets it: a byte count, optionally with a binary suffix
//! `K`, `M`, `G` or `T` (`512M`, `16G`). Each estimate is checked against it
//! on its own; it bounds what one request may plan for, not the process.

use std::sync::OnceLock;

/// The limit when `EBM_MAX_MEMORY` is unset.
pub const DEFAULT_MAX_MEMORY: u64 = 8 << 30;

/// The environment variable that sets the limit.
pub const ENV: &str = "EBM_MAX_MEMORY";

/// Reads a size: digits with an optional `K`/`M`/`G`/`T` (powers of 1024),
/// an optional `B`/`iB` after it, at least 1 MiB.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        Some((i, 'T' | 't')) => (&t[..i], 40),
        _ => (t, 0),
    };
    let bad =
        || format!("{ENV} must be a size in bytes of at least 1M (e.g. 512M, 16G), found `{text}`");
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1 << shift).ok_or_else(bad)?;
    if bytes < 1 << 20 {
        return Err(bad());
    }
    Ok(bytes)
}

/// The limit from the environment: `Ok(None)` when unset, an error naming
/// the variable when it is not a size. The binary checks this once at
/// start-up, so a mistyped value is refused instead of ignored.
pub fn from_env() -> Result<Option<u64>, String> {
    match std::env::var_os(ENV) {
        None => Ok(None),
        Some(v) => parse_size(&v.to_string_lossy()).map(Some),
    }
}

static LIMIT: OnceLock<u64> = OnceLock::new();

/// The limit in bytes (read once; an unreadable value falls back to the
/// default — the binary refuses it before any work, see [`from_env`]).
pub fn max_memory() -> u64 {
    *LIMIT.get_or_init(|| from_env().ok().flatten().unwrap_or(DEFAULT_MAX_MEMORY))
}

/// Sets the limit for this process instead of `EBM_MAX_MEMORY` (a program
/// embedding the library, a fuzzer): only before the first check reads it.
/// Returns the limit in force.
pub fn set_max_memory(bytes: u64) -> u64 {
    *LIMIT.get_or_init(|| bytes)
}

/// A byte count for messages: `12.8 GiB`, `640.0 MiB`.
pub fn bytes_text(bytes: f64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes / GIB)
    } else {
        format!("{:.1} MiB", bytes / MIB)
    }
}

/// "the limit is 8.0 GiB (EBM_MAX_MEMORY)", the tail of every refusal.
pub fn limit_text() -> String {
    format!("the limit is {} ({ENV})", bytes_text(max_memory() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("16G"), Ok(16 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("lots").unwrap_err().contains("EBM_MAX_MEMORY"));
        assert!(parse_size("1K").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(bytes_text(12.8e9), "11.9 GiB");
    }
}
