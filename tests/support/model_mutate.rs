//! Damaged model files for fuzzing the model-file reader. Shared by
//! `examples/fuzz_model.rs` (long runs) and `tests/artifact.rs` (CI),
//! included in both with `#[path]` next to `fuzz_gen.rs` (whose `Rng` it
//! draws from). Deterministic for a given seed.
//!
//! Half the mutants get their checksum recomputed, so they reach the
//! section, header, safetensors and IR decoders behind it instead of all
//! stopping at the checksum.

#![allow(dead_code)]

use ebm::ir::serial::fnv1a64;

// The front-end fuzzer's generator (include `fuzz_gen.rs` beside this file).
use super::fuzz_gen::Rng;

/// Values that make length fields and counts interesting.
const SPECIAL: &[u64] = &[0, 1, 7, 8, 255, 0xFFFF, 0xFFFF_FFFF, u64::MAX, 1 << 40];

/// One mutant of `good`: bytes flipped, overwritten with special values,
/// inserted, deleted or cut off; then, half the time, the checksum fixed.
pub fn mutate(rng: &mut Rng, good: &[u8]) -> Vec<u8> {
    let mut b = good.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.next() as u8,
            2 => {
                let v = SPECIAL[rng.below(SPECIAL.len())].to_le_bytes();
                let width = [1, 4, 8][rng.below(3)];
                for (i, byte) in v.iter().take(width).enumerate() {
                    if let Some(slot) = b.get_mut(at + i) {
                        *slot = *byte;
                    }
                }
            }
            3 => {
                let n = 1 + rng.below(16);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
            4 => {
                let end = (at + 1 + rng.below(32)).min(b.len());
                b.drain(at..end);
            }
            _ => b.truncate(at),
        }
    }
    if rng.below(2) == 0 && b.len() > 8 {
        let body = b.len() - 8;
        let sum = fnv1a64(&b[..body]).to_le_bytes();
        b[body..].copy_from_slice(&sum);
    }
    b
}
