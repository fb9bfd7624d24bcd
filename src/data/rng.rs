//! "SM64": the portable generator used for every seeded tensor the compiler
//! creates (`randn`, parameter initialisation). It is SplitMix64 in counter
//! form, so output `i` (1-based) depends only on `(seed, i)`:
//!
//! ```text
//! z = seed + i * 0x9E3779B97F4A7C15            (mod 2^64)
//! z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//! z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//! z =  z ^ (z >> 31)
//! ```
//!
//! This equals sequential SplitMix64 started with state `seed`. Uniforms are
//! `(z >> 11) * 2^-53` in `[0, 1)`; normals apply Box–Muller to consecutive
//! uniform pairs `(u1, u2)`: `r = sqrt(-2 ln(1 - u1))`, `out[2j] = r cos(2π u2)`,
//! `out[2j+1] = r sin(2π u2)`, keeping the first `n`. All arithmetic is f64,
//! so the values are identical on every platform and in the Python peers.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The `i`-th (1-based) raw output of SM64 for `seed`.
pub fn sm64_at(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_mul(GOLDEN));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The first `n` raw outputs.
pub fn sm64_u64(seed: u64, n: usize) -> Vec<u64> {
    (1..=n as u64).map(|i| sm64_at(seed, i)).collect()
}

/// `n` uniforms in `[0, 1)`.
pub fn uniform(seed: u64, n: usize) -> Vec<f64> {
    (1..=n as u64)
        .map(|i| (sm64_at(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64))
        .collect()
}

/// `n` standard normals (Box–Muller on consecutive uniform pairs).
pub fn normal(seed: u64, n: usize) -> Vec<f64> {
    let u = uniform(seed, n.div_ceil(2) * 2);
    let mut out = Vec::with_capacity(n + 1);
    for pair in u.chunks_exact(2) {
        let r = (-2.0 * (1.0 - pair[0]).ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * pair[1];
        out.push(r * t.cos());
        out.push(r * t.sin());
    }
    out.truncate(n);
    out
}

/// A 64-bit FNV-1a hash, used to derive seeds from parameter names.
pub fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm64_check_values() {
        assert_eq!(
            sm64_u64(0, 3),
            vec![
                16294208416658607535,
                7960286522194355700,
                487617019471545679
            ]
        );
    }

    #[test]
    fn normal_check_values() {
        let want = [-0.0342673, -1.2926085, -2.5000675, 0.9114666];
        let got = normal(1, 4);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
        // Odd lengths keep a prefix of the even-length stream.
        assert_eq!(normal(1, 3), got[..3].to_vec());
    }

    #[test]
    fn uniform_in_unit_interval() {
        assert!(uniform(7, 1000).iter().all(|&u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a("net.mlp0.w1"), fnv1a("net.mlp0.w2"));
    }
}
