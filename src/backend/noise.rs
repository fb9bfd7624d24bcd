//! Fast, seeded, counter-based Gaussian noise for samplers.
//!
//! Langevin-type samplers draw one normal per coordinate per step, so noise
//! is a first-order cost (10⁸ normals for a 1024×100×1000 run). This
//! generator is built to vectorise: every pair of normals is a pure function
//! of (key, counter) — a 32-bit integer hash for two uniforms, then
//! Box–Muller with branch-free polynomial `ln`, `sin` and `cos` — so the
//! compiler turns the inner loop into wide SIMD (AVX-512 / AVX2 when the CPU
//! has them, chosen at run time). Only IEEE basic operations are used and no
//! FMA contraction happens, so every code path gives bitwise-identical output:
//! the same (seed, counter) means the same numbers on every machine and for
//! any split of the buffer across threads.
//!
//! Accuracy: `ln` and `sin`/`cos` are within ~2e-7 relative of libm on their
//! reduced ranges; uniforms carry 23 bits (the smallest u1 is 2⁻²³, so |z| is
//! at most √(−2 ln 2⁻²³) ≈ 5.65). f64 runs use `fill_normal_f64`, with
//! 53-bit uniforms and untruncated tails (to ≈ 8.6σ).

/// The stream key of step `t` of a run seeded `seed`: each step draws from
/// its own stream, at positions fixed by the chain (`chain × dim`), so a
/// chain's noise depends on neither the thread split nor the chain count.
pub fn step_key(seed: u64, t: u64) -> u64 {
    crate::data::rng::sm64_at(seed, t)
}

/// The key of the uniform stream `stream` at step `t` of a run seeded
/// `seed`: a sampler's Metropolis decisions (and HMC's step jitter) draw one
/// uniform per chain per step from it, so, like the normals, a chain's
/// uniforms depend only on (seed, step, chain).
pub fn uniform_key(seed: u64, stream: u64, t: u64) -> u64 {
    crate::data::rng::sm64_at(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F), t)
}

/// Chain `chain`'s 64 random bits of the uniform stream `key`.
pub fn uniform_bits(key: u64, chain: u64) -> u64 {
    crate::data::rng::sm64_at(key ^ chain.wrapping_mul(0x9E37_79B9_7F4A_7C15), 0)
}

/// Chain `chain`'s uniform in (0, 1] with 53 bits (safe under `ln`).
pub fn uniform_f64(key: u64, chain: u64) -> f64 {
    ((uniform_bits(key, chain) >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The same draw with the top 24 bits: ((bits >> 40) + 1) · 2⁻²⁴, exact in
/// f32, so a device without 64-bit floats computes the same value.
pub fn uniform_f32(key: u64, chain: u64) -> f32 {
    ((uniform_bits(key, chain) >> 40) + 1) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// The sub-keys of step `step`'s stream for its first 2³² pairs: what a
/// device generator needs to draw the same numbers as `fill_normal_f32`.
pub fn subkeys_of_step(seed: u64, step: u64) -> (u32, u32) {
    subkeys(step_key(seed, step), 0)
}

/// Normals `out[i]` for counter positions `start + i`, from stream `key`.
/// `start` must be even (pairs share one hash); odd lengths drop the last partner.
pub fn fill_normal_f32(key: u64, start: u64, out: &mut [f32]) {
    assert!(
        start.is_multiple_of(2),
        "normal streams are consumed in pairs"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected at run time.
            return unsafe { fill_avx512(key, start, out) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was detected at run time.
            return unsafe { fill_avx2(key, start, out) };
        }
    }
    fill_portable(key, start, out)
}

/// f64 normals for counter positions `start + i` of stream `key` (`start`
/// even): Box–Muller on two 53-bit uniforms per pair with libm's `ln` and
/// `sin_cos`, so the tails are exact out to |z| ≈ 8.6 (the smallest u1 is
/// 2⁻⁵³). A stream of its own (not the f32 numbers widened); scalar, about
/// ten times slower than the f32 generator, which f64 energies dwarf anyway.
pub fn fill_normal_f64(key: u64, start: u64, out: &mut [f64]) {
    use crate::data::rng::sm64_at;
    const UNIT: f64 = 1.0 / (1u64 << 53) as f64;
    let first_pair = start / 2;
    for (i, pair) in out.chunks_mut(2).enumerate() {
        let p = first_pair + i as u64;
        let (h1, h2) = (sm64_at(key, 2 * p), sm64_at(key, 2 * p + 1));
        // u1 in (0, 1] so ln is finite; 53 bits each.
        let u1 = ((h1 >> 11) + 1) as f64 * UNIT;
        let u2 = (h2 >> 11) as f64 * UNIT;
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        pair[0] = r * c;
        if let Some(second) = pair.get_mut(1) {
            *second = r * s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn fill_avx512(key: u64, start: u64, out: &mut [f32]) {
    fill_portable(key, start, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fill_avx2(key: u64, start: u64, out: &mut [f32]) {
    fill_portable(key, start, out)
}

const LANES: usize = 16;

#[inline(always)]
fn fill_portable(key: u64, start: u64, out: &mut [f32]) {
    let mut pair = start / 2;
    let mut chunks = out.chunks_exact_mut(2 * LANES);
    for chunk in &mut chunks {
        let (z0, z1) = pairs(key, pair);
        for l in 0..LANES {
            chunk[2 * l] = z0[l];
            chunk[2 * l + 1] = z1[l];
        }
        pair += LANES as u64;
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let (z0, z1) = pairs(key, pair);
        for (i, v) in rest.iter_mut().enumerate() {
            *v = if i % 2 == 0 { z0[i / 2] } else { z1[i / 2] };
        }
    }
}

/// A 32-bit avalanche hash (xor-shift-multiply), good enough for noise.
#[inline(always)]
fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// Two sub-keys per 2³² pairs, so a stream never repeats within 2³³ normals.
#[inline(always)]
fn subkeys(key: u64, pair: u64) -> (u32, u32) {
    let k = crate::data::rng::sm64_at(key, pair >> 32);
    (k as u32, (k >> 32) as u32 | 1)
}

#[inline(always)]
fn pairs(key: u64, first_pair: u64) -> ([f32; LANES], [f32; LANES]) {
    let mut z0 = [0f32; LANES];
    let mut z1 = [0f32; LANES];
    let (a, b) = subkeys(key, first_pair);
    if subkeys(key, first_pair + LANES as u64 - 1) != (a, b) {
        // A chunk straddling a 2³² boundary takes its sub-keys lane by lane.
        for l in 0..LANES {
            let p = first_pair + l as u64;
            let (a, b) = subkeys(key, p);
            (z0[l], z1[l]) = pair(p as u32, a, b);
        }
        return (z0, z1);
    }
    let c0 = first_pair as u32;
    for l in 0..LANES {
        (z0[l], z1[l]) = pair(c0.wrapping_add(l as u32), a, b);
    }
    (z0, z1)
}

#[inline(always)]
fn pair(c: u32, a: u32, b: u32) -> (f32, f32) {
    box_muller(hash32(c ^ a), hash32(c.wrapping_mul(0x9e37_79b9) ^ b))
}

/// Box–Muller on two hashes: radius from the first, angle from the second.
#[inline(always)]
fn box_muller(h1: u32, h2: u32) -> (f32, f32) {
    // u1 in (0, 1]: 23 bits, never 0, so ln is finite.
    let u1 = ((h1 >> 9) + 1) as f32 * (1.0 / 8_388_608.0);
    let r = (-2.0 * ln(u1)).sqrt();
    // Angle: quadrant q from 2 bits, then φ uniform in [−π/4, π/4) from 22 bits.
    let q = h2 & 3;
    let f = (h2 >> 10) as f32 * (1.0 / 4_194_304.0);
    let phi = (f - 0.5) * std::f32::consts::FRAC_PI_2;
    let (s, c) = sin_cos_quarter(phi);
    // Rotating by q·π/2 keeps the angle uniform and is exact:
    // q = 0: (c, s), 1: (−s, c), 2: (−c, −s), 3: (s, −c). Written with a blend
    // and sign-bit flips so that the loop vectorises.
    let swap = q & 1 == 1;
    let (u, v) = (if swap { s } else { c }, if swap { c } else { s });
    let flip_x = ((q ^ (q >> 1)) & 1) << 31;
    let flip_y = (q >> 1) << 31;
    (
        r * f32::from_bits(u.to_bits() ^ flip_x),
        r * f32::from_bits(v.to_bits() ^ flip_y),
    )
}

/// ln(u) for u in (0, 1]: exponent split, mantissa in [√½, √2), atanh series.
#[inline(always)]
fn ln(u: f32) -> f32 {
    let bits = u.to_bits();
    let mut e = ((bits >> 23) as i32 - 127) as f32;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e = if big { e + 1.0 } else { e };
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series =
        t * (2.0 + t2 * (2.0 / 3.0 + t2 * (2.0 / 5.0 + t2 * (2.0 / 7.0 + t2 * (2.0 / 9.0)))));
    e * std::f32::consts::LN_2 + series
}

/// sin and cos on [−π/4, π/4] by Taylor polynomials (error below 1e-8 absolute).
#[inline(always)]
fn sin_cos_quarter(x: f32) -> (f32, f32) {
    let x2 = x * x;
    let s = x
        * (1.0
            + x2 * (-1.0 / 6.0
                + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362_880.0)))));
    let c = 1.0
        + x2 * (-0.5
            + x2 * (1.0 / 24.0
                + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40_320.0 + x2 * (-1.0 / 3_628_800.0)))));
    (s, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_matches_libm() {
        for i in 1..=10_000 {
            let u = i as f32 / 10_000.0;
            let (a, b) = (ln(u), u.ln());
            assert!(
                (a - b).abs() <= 2e-7 * b.abs().max(1.0),
                "ln({u}) = {a} vs {b}"
            );
        }
        for i in -1000..=1000 {
            let x = i as f32 / 1000.0 * std::f32::consts::FRAC_PI_4;
            let (s, c) = sin_cos_quarter(x);
            assert!(
                (s - x.sin()).abs() < 2e-7 && (c - x.cos()).abs() < 2e-7,
                "sincos({x})"
            );
        }
    }

    #[test]
    fn any_split_gives_the_same_numbers() {
        let mut whole = vec![0f32; 1000];
        fill_normal_f32(7, 0, &mut whole);
        let mut parts = vec![0f32; 1000];
        let (a, b) = parts.split_at_mut(334);
        fill_normal_f32(7, 0, a);
        fill_normal_f32(7, 334, b);
        assert_eq!(whole, parts);
        let mut scalar = vec![0f32; 1000];
        fill_portable(7, 0, &mut scalar);
        assert_eq!(whole, scalar, "SIMD and portable paths differ");
    }

    /// Moments of 2²⁰ draws: mean 0 ± 5/√n, variance 1, kurtosis 3.
    #[test]
    fn moments_are_standard_normal() {
        let n = 1 << 20;
        let mut z = vec![0f32; n];
        fill_normal_f32(42, 0, &mut z);
        check_moments(&z.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let mut z = vec![0f64; n];
        fill_normal_f64(42, 0, &mut z);
        check_moments(&z);
        // Any split of an f64 buffer gives the same numbers too.
        let mut parts = vec![0f64; 1000];
        let (a, b) = parts.split_at_mut(334);
        fill_normal_f64(42, 0, a);
        fill_normal_f64(42, 334, b);
        assert_eq!(&z[..1000], &parts[..]);
    }

    fn check_moments(z: &[f64]) {
        let n = z.len();
        let m = |k: i32| z.iter().map(|&v| v.powi(k)).sum::<f64>() / n as f64;
        let se = 1.0 / (n as f64).sqrt();
        assert!(m(1).abs() < 5.0 * se, "mean {}", m(1));
        assert!((m(2) - 1.0).abs() < 5.0 * se * 2f64.sqrt(), "var {}", m(2));
        assert!(
            (m(4) - 3.0).abs() < 5.0 * se * 96f64.sqrt(),
            "kurtosis {}",
            m(4)
        );
        let tail = z.iter().filter(|v| v.abs() > 3.0).count() as f64 / n as f64;
        assert!(
            (tail - 0.0026998).abs() < 5.0 * (0.0027f64 / n as f64).sqrt(),
            "tail {tail}"
        );
    }
}
