//! f32 matrix products whose rows run along the batch lanes of a tile, with
//! the shared operand (a weight matrix) packed once per kernel call.
//!
//! A tile GEMM computes `dst[f][b] (+)= Σ_p w[f][p] · x[p][b]` for the `b`
//! rows of a tile: `x` and `dst` are feature-major tile buffers (row `b`
//! contiguous), `w` a batch-invariant matrix. The `gemm` crate served this by
//! repacking `w` on every call (per tile, per step) and by treating the lanes
//! as its generic `n` axis. Here the invariant program packs `w` once per
//! call into panels of [`NR`] features, `p`-major ([`pack`]), and the tile
//! program runs an AVX-512 micro-kernel that holds a block of 64 rows × `NR`
//! features in 24 registers: per `p` it loads four vectors of `x[p]` and
//! broadcasts `NR` weights. Each output is a sequential sum over `p` in one
//! fused multiply-add chain, so results do not depend on how rows are split
//! into tiles or threads.

/// Features per packed panel (the micro-kernel's register block width).
pub(crate) const NR: usize = 6;

/// Rows per micro-kernel block: four 16-lane vectors.
const MR: usize = 64;

/// What the kernel does with a block's sums before they leave registers
/// (see `plan::Epilogue`). Tile buffers have `dst`'s row stride.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue {
    Layer(Layer),
    /// `dst = sum · by[f][b]`.
    Times(*const f32),
}

/// `h = sum + bias[f]` (stored at `dst` when `pre`), `act = f(h)` (sigmoid
/// or exp), `prod = h · act`, and `grad = scale[f] · (act + h·(act·(1 −
/// act)))` (swish's derivative; no multiplication when `scale` is null). A
/// null output is not stored. `act` and `prod` are the operations and order
/// of `vecmath::apply_biased`, `grad` those of the loop it replaces, so the
/// results are their bits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layer {
    pub sigmoid: bool,
    pub bias: *const f32,
    pub pre: bool,
    pub act: *mut f32,
    pub prod: *mut f32,
    pub grad: *mut f32,
    pub grad_scale: *const f32,
}

/// `p + n` elements, unless `p` is null.
fn shift<T>(p: *mut T, n: usize) -> *mut T {
    if p.is_null() { p } else { p.wrapping_add(n) }
}

impl Epilogue {
    /// The same epilogue from feature `f` and row `r` on (row stride `ds`).
    fn at(self, f: usize, r: usize, ds: usize) -> Self {
        let tile = f * ds + r;
        match self {
            Epilogue::Times(by) => Epilogue::Times(by.wrapping_add(tile)),
            Epilogue::Layer(l) => Epilogue::Layer(Layer {
                bias: l.bias.wrapping_add(f),
                act: shift(l.act, tile),
                prod: shift(l.prod, tile),
                grad: shift(l.grad, tile),
                grad_scale: shift(l.grad_scale.cast_mut(), f),
                ..l
            }),
        }
    }
}

/// Elements of the packed form of a `k × n` operand.
pub(crate) fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * k * NR
}

/// Whether this CPU runs the micro-kernel (AVX-512F and FMA).
pub(crate) fn available() -> bool {
    super::vecmath::available()
}

/// Packs `w[f][p]` (element at `w + f·fs + p·ps`, `f < n`, `p < k`) into
/// panels: panel `q` holds features `q·NR ..` as `k` rows of `NR` values,
/// zero-padded past `n`.
///
/// # Safety
/// `w` must be valid for every `(f, p)` above; `out` for `packed_len(k, n)`
/// elements.
pub(crate) unsafe fn pack(w: *const f32, fs: isize, ps: isize, k: usize, n: usize, out: *mut f32) {
    for q in 0..n.div_ceil(NR) {
        let width = (n - q * NR).min(NR);
        for p in 0..k {
            // SAFETY: f < n and p < k (caller's contract); the destination
            // index is below packed_len(k, n).
            unsafe {
                let src = w.offset((q * NR) as isize * fs + p as isize * ps);
                let dst = out.add((q * k + p) * NR);
                if fs == 1 {
                    std::ptr::copy_nonoverlapping(src, dst, width);
                } else {
                    for j in 0..width {
                        *dst.add(j) = *src.offset(j as isize * fs);
                    }
                }
                for j in width..NR {
                    *dst.add(j) = 0.0;
                }
            }
        }
    }
}

/// `dst[f·ds + b] (+)= Σ_p panel(f, p) · x[p·xs + b]` for `b < rows`,
/// `f < n`, with `panel` packed by [`pack`] from a `k × n` operand; with an
/// epilogue, its bias and activation applied to each sum before the store.
///
/// # Safety
/// [`available`] must be true; `x` valid for `k` rows of stride `xs` (≥
/// `rows` elements each), `dst` (and an epilogue's `act` and `prod`) for
/// `n` rows of stride `ds`, its `bias` for `n` values, `panel` for
/// `packed_len(k, n)` elements; the outputs must not overlap each other,
/// `x` or `panel`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    rows: usize,
    n: usize,
    k: usize,
    x: *const f32,
    xs: usize,
    panel: *const f32,
    dst: *mut f32,
    ds: usize,
    accumulate: bool,
    epilogue: Option<Epilogue>,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded contract.
    unsafe {
        avx512::gemm(rows, n, k, x, xs, panel, dst, ds, accumulate, epilogue)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, n, k, x, xs, panel, dst, ds, accumulate, epilogue);
        // invariant: the planner emits panel steps only when `available()`.
        unreachable!()
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::vecmath::lanes::{exp16, sigmoid16};
    use super::{Epilogue, Layer, MR, NR};
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// One block of `16·V` rows (the last vector masked by `mask`) × `N ≤ NR`
    /// features over all `k`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn block<const V: usize, const N: usize>(
        k: usize,
        x: *const f32,
        xs: usize,
        panel: *const f32,
        dst: *mut f32,
        ds: usize,
        accumulate: bool,
        mask: __mmask16,
        epilogue: Option<Epilogue>,
    ) {
        // SAFETY: the caller keeps every address inside its operands; masked
        // lanes are neither read nor written.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); N]; V];
            let (mut xp, mut wp) = (x, panel);
            for _ in 0..k {
                let mut xv = [_mm512_setzero_ps(); V];
                for (v, r) in xv.iter_mut().enumerate() {
                    *r = if v + 1 == V {
                        _mm512_maskz_loadu_ps(mask, xp.add(16 * v))
                    } else {
                        _mm512_loadu_ps(xp.add(16 * v))
                    };
                }
                for j in 0..N {
                    let w = _mm512_set1_ps(*wp.add(j));
                    for v in 0..V {
                        acc[v][j] = _mm512_fmadd_ps(xv[v], w, acc[v][j]);
                    }
                }
                xp = xp.add(xs);
                wp = wp.add(NR);
            }
            match epilogue {
                None => store_sums::<V, N>(&acc, dst, ds, accumulate, mask, None),
                Some(Epilogue::Times(by)) => {
                    store_sums::<V, N>(&acc, dst, ds, accumulate, mask, Some(by))
                }
                Some(Epilogue::Layer(e)) => {
                    // Spilled at constant indices: the activation pass below
                    // runs feature by feature, and indexing `acc` by a
                    // run-time feature would keep it in memory throughout
                    // (zeroed by a `memset` call per block).
                    let mut sums = [[MaybeUninit::<__m512>::uninit(); V]; N];
                    for j in 0..N {
                        for v in 0..V {
                            let m = if v + 1 == V { mask } else { 0xffff };
                            let at = dst.add(j * ds + 16 * v);
                            sums[j][v].write(if accumulate {
                                _mm512_add_ps(_mm512_maskz_loadu_ps(m, at), acc[v][j])
                            } else {
                                acc[v][j]
                            });
                        }
                    }
                    for (j, sj) in sums.iter().enumerate().take(N) {
                        let mut h = [_mm512_setzero_ps(); V];
                        for (hv, sv) in h.iter_mut().zip(sj) {
                            *hv = sv.assume_init();
                        }
                        layer::<V>(h, e, j, dst, ds, mask);
                    }
                }
            }
        }
    }

    /// The block's sums into `dst` (added to it with `accumulate`), times
    /// `by` when given.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn store_sums<const V: usize, const N: usize>(
        acc: &[[__m512; N]; V],
        dst: *mut f32,
        ds: usize,
        accumulate: bool,
        mask: __mmask16,
        by: Option<*const f32>,
    ) {
        // SAFETY: as `block`.
        unsafe {
            for j in 0..N {
                for v in 0..V {
                    let (at, m) = (j * ds + 16 * v, if v + 1 == V { mask } else { 0xffff });
                    let mut r = acc[v][j];
                    if accumulate {
                        r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst.add(at)), r);
                    }
                    if let Some(by) = by {
                        r = _mm512_mul_ps(r, _mm512_maskz_loadu_ps(m, by.add(at)));
                    }
                    _mm512_mask_storeu_ps(dst.add(at), m, r);
                }
            }
        }
    }

    /// A layer epilogue on the `V` vectors of feature `j`: V independent
    /// chains, interleaved.
    #[inline(always)]
    unsafe fn layer<const V: usize>(
        sums: [__m512; V],
        e: Layer,
        j: usize,
        dst: *mut f32,
        ds: usize,
        mask: __mmask16,
    ) {
        // SAFETY: as `block`: the epilogue's buffers extend past feature j.
        unsafe {
            let b = _mm512_set1_ps(*e.bias.add(j));
            // Plain loops, not `array::map`: a closure is not compiled with
            // this function's target features.
            let mut h = sums;
            for hv in h.iter_mut() {
                *hv = _mm512_add_ps(*hv, b);
            }
            let mut y = h;
            if e.sigmoid {
                for yv in y.iter_mut() {
                    *yv = sigmoid16(*yv);
                }
            } else {
                for yv in y.iter_mut() {
                    *yv = exp16(*yv);
                }
            }
            let one = _mm512_set1_ps(1.0);
            let scale = if e.grad_scale.is_null() {
                one
            } else {
                _mm512_set1_ps(*e.grad_scale.add(j))
            };
            let row = j * ds;
            for v in 0..V {
                let (at, m) = (16 * v, if v + 1 == V { mask } else { 0xffff });
                if e.pre {
                    _mm512_mask_storeu_ps(dst.add(row + at), m, h[v]);
                }
                if !e.act.is_null() {
                    _mm512_mask_storeu_ps(e.act.add(row + at), m, y[v]);
                }
                if !e.prod.is_null() {
                    _mm512_mask_storeu_ps(e.prod.add(row + at), m, _mm512_mul_ps(h[v], y[v]));
                }
                if !e.grad.is_null() {
                    // The folded loop's operations in its order, unfused.
                    let d = _mm512_mul_ps(y[v], _mm512_sub_ps(one, y[v]));
                    let d = _mm512_add_ps(y[v], _mm512_mul_ps(h[v], d));
                    let d = if e.grad_scale.is_null() {
                        d
                    } else {
                        _mm512_mul_ps(scale, d)
                    };
                    _mm512_mask_storeu_ps(e.grad.add(row + at), m, d);
                }
            }
        }
    }

    /// Every feature panel for one block of rows.
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn row_block<const V: usize>(
        n: usize,
        k: usize,
        x: *const f32,
        xs: usize,
        panel: *const f32,
        dst: *mut f32,
        ds: usize,
        accumulate: bool,
        mask: __mmask16,
        epilogue: Option<Epilogue>,
    ) {
        let full = n / NR;
        // SAFETY: panel q starts at q·k·NR and covers features q·NR..;
        // dst row f at f·ds (caller's contract).
        unsafe {
            let at = |q: usize| epilogue.map(|e| e.at(q * NR, 0, ds));
            for q in 0..full {
                let (w, d) = (panel.add(q * k * NR), dst.add(q * NR * ds));
                block::<V, NR>(k, x, xs, w, d, ds, accumulate, mask, at(q));
            }
            let (w, d) = (panel.add(full * k * NR), dst.add(full * NR * ds));
            let e = at(full);
            // The last panel's live features, as a const width.
            macro_rules! tail {
                ($($n:literal)*) => {
                    match n - full * NR {
                        $($n => block::<V, $n>(k, x, xs, w, d, ds, accumulate, mask, e),)*
                        _ => {}
                    }
                };
            }
            tail!(1 2 3 4 5);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gemm(
        rows: usize,
        n: usize,
        k: usize,
        x: *const f32,
        xs: usize,
        panel: *const f32,
        dst: *mut f32,
        ds: usize,
        accumulate: bool,
        epilogue: Option<Epilogue>,
    ) {
        let mut i = 0;
        while i < rows {
            let r = (rows - i).min(MR);
            let v = r.div_ceil(16);
            let tail = r - (v - 1) * 16;
            let mask = (((1u32 << tail) - 1) & 0xffff) as __mmask16;
            let mask = if tail == 16 { 0xffff } else { mask };
            // SAFETY: rows i..i+r of x and dst (caller's contract); the
            // CPU features were checked by `available()`.
            unsafe {
                let (x, d) = (x.add(i), dst.add(i));
                let e = epilogue.map(|e| e.at(0, i, ds));
                match v {
                    4 => row_block::<4>(n, k, x, xs, panel, d, ds, accumulate, mask, e),
                    3 => row_block::<3>(n, k, x, xs, panel, d, ds, accumulate, mask, e),
                    2 => row_block::<2>(n, k, x, xs, panel, d, ds, accumulate, mask, e),
                    _ => row_block::<1>(n, k, x, xs, panel, d, ds, accumulate, mask, e),
                }
            }
            i += r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The panel kernel against a plain triple loop, over shapes that hit
    /// every remainder (rows not a multiple of 16 or 64, features not a
    /// multiple of NR), with and without accumulation.
    #[test]
    fn matches_reference() {
        if !available() {
            return;
        }
        let shapes: [(usize, usize, usize); 5] = [
            (1, 1, 1),
            (17, 7, 3),
            (64, 6, 128),
            (130, 13, 5),
            (200, 128, 2),
        ];
        for (rows, n, k) in shapes {
            let xs = rows.div_ceil(16) * 16 + 16;
            let ds = xs;
            let x: Vec<f32> = (0..k * xs).map(|i| ((i * 37) % 17) as f32 - 8.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 11) % 13) as f32 - 6.0).collect();
            let mut packed = vec![0.0f32; packed_len(k, n)];
            // w stored k-major (w[p][f]) to exercise general strides.
            unsafe { pack(w.as_ptr(), 1, n as isize, k, n, packed.as_mut_ptr()) };
            for accumulate in [false, true] {
                let mut dst = vec![1.0f32; n * ds];
                unsafe {
                    gemm(
                        rows,
                        n,
                        k,
                        x.as_ptr(),
                        xs,
                        packed.as_ptr(),
                        dst.as_mut_ptr(),
                        ds,
                        accumulate,
                        None,
                    )
                };
                for f in 0..n {
                    for b in 0..ds {
                        let want = if b < rows {
                            let s: f32 = (0..k).map(|p| w[p * n + f] * x[p * xs + b]).sum();
                            s + if accumulate { 1.0 } else { 0.0 }
                        } else {
                            1.0
                        };
                        assert_eq!(dst[f * ds + b], want, "rows {rows} n {n} k {k} f {f} b {b}");
                    }
                }
            }
        }
    }

    /// Each epilogue against the plain product followed by the same
    /// operations: `Times`, and a layer with every output (sigmoid, the
    /// swish product, the scaled derivative) and the sum not stored, over
    /// shapes that hit every remainder. Bitwise.
    #[test]
    fn epilogues_match_the_product_then_their_operations() {
        if !available() {
            return;
        }
        for (rows, n, k) in [(17usize, 7usize, 3usize), (130, 13, 5), (64, 6, 128)] {
            let xs = rows.div_ceil(16) * 16 + 16;
            let ds = xs;
            let x: Vec<f32> = (0..k * xs)
                .map(|i| ((i * 37) % 17) as f32 * 0.0625 - 0.5)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 11) % 13) as f32 * 0.125 - 0.75)
                .collect();
            let mut packed = vec![0.0f32; packed_len(k, n)];
            unsafe { pack(w.as_ptr(), 1, n as isize, k, n, packed.as_mut_ptr()) };
            let product = |dst: &mut [f32], e: Option<Epilogue>| unsafe {
                let (xp, pp) = (x.as_ptr(), packed.as_ptr());
                gemm(rows, n, k, xp, xs, pp, dst.as_mut_ptr(), ds, false, e)
            };
            let mut plain = vec![0.0f32; n * ds];
            product(&mut plain, None);
            let by: Vec<f32> = (0..n * ds)
                .map(|i| ((i * 7) % 5) as f32 * 0.25 - 0.5)
                .collect();
            let mut times = vec![0.0f32; n * ds];
            product(&mut times, Some(Epilogue::Times(by.as_ptr())));
            let bias: Vec<f32> = (0..n).map(|f| f as f32 * 0.3 - 1.0).collect();
            let scale: Vec<f32> = (0..n).map(|f| 0.5 - f as f32 * 0.1).collect();
            let len = n * ds;
            let (mut act, mut prod, mut grad) =
                (vec![0.0f32; len], vec![0.0f32; len], vec![0.0f32; len]);
            let mut untouched = vec![7.0f32; len];
            let layer = Layer {
                sigmoid: true,
                bias: bias.as_ptr(),
                pre: false,
                act: act.as_mut_ptr(),
                prod: prod.as_mut_ptr(),
                grad: grad.as_mut_ptr(),
                grad_scale: scale.as_ptr(),
            };
            product(&mut untouched, Some(Epilogue::Layer(layer)));
            // The reference: h = product + bias, σ(h) by the whole-buffer
            // routine, then the loops' operations.
            let h: Vec<f32> = (0..len).map(|i| plain[i] + bias[i / ds]).collect();
            let mut y = vec![0.0f32; len];
            let all = super::super::vecmath::Rows {
                feats: n,
                stride: ds,
                n: rows,
            };
            unsafe { super::super::vecmath::apply(true, h.as_ptr(), y.as_mut_ptr(), all) };
            for (f, &sc) in scale.iter().enumerate() {
                for b in 0..rows {
                    let i = f * ds + b;
                    let at = format!("rows {rows} n {n} k {k} f {f} b {b}");
                    assert_eq!(times[i].to_bits(), (plain[i] * by[i]).to_bits(), "{at}");
                    assert_eq!(untouched[i], 7.0, "{at}: the sum was stored");
                    assert_eq!(act[i].to_bits(), y[i].to_bits(), "{at}");
                    assert_eq!(prod[i].to_bits(), (h[i] * y[i]).to_bits(), "{at}");
                    let d = y[i] + h[i] * (y[i] * (1.0 - y[i]));
                    assert_eq!(grad[i].to_bits(), (sc * d).to_bits(), "{at}");
                }
            }
        }
    }
}
