//! Counter-based random numbers for training: a stream is fixed by (seed,
//! tag, iteration) and element `i` of it is a pure function of `i`, so
//! every draw of iteration `it` is the same whether the run went straight
//! through or was resumed from a checkpoint, on any thread count.

use crate::data::rng::sm64_at;
use crate::sample::rng::mix64;

pub struct Keyed {
    key: u64,
}

const UNIT: f64 = 1.0 / (1u64 << 53) as f64;

impl Keyed {
    pub fn new(seed: u64, tag: u64, it: u64) -> Keyed {
        let k = mix64(seed ^ tag.wrapping_mul(0xA076_1D64_78BD_642F));
        Keyed {
            key: sm64_at(k, it.wrapping_add(1)),
        }
    }
    /// The raw key (for the backend's noise streams).
    pub fn key(&self) -> u64 {
        self.key
    }
    pub fn bits(&self, i: u64) -> u64 {
        sm64_at(self.key, i.wrapping_add(1))
    }
    /// A uniform in [0, 1).
    pub fn uniform(&self, i: u64) -> f64 {
        (self.bits(i) >> 11) as f64 * UNIT
    }
    /// An integer in [0, n) (n ≥ 1), by multiply-shift (bias < n/2⁶⁴).
    pub fn below(&self, i: u64, n: u64) -> u64 {
        ((self.bits(i) as u128 * n as u128) >> 64) as u64
    }
    /// A standard normal (Box–Muller on two uniforms of positions 2i, 2i+1).
    pub fn normal(&self, i: u64) -> f64 {
        let u1 = self.uniform(2 * i);
        let u2 = self.uniform(2 * i + 1);
        (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
