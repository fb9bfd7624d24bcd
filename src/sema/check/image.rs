//! Image primitives on `x: [C, H, W]` (channels first; `[H, W]` is one
//! channel), expanded into tensor operations the IR already has — slices,
//! reshapes, concatenation, one matrix product, reductions — so that the
//! derivative table, the interpreter and every backend cover them without a
//! rule of their own, and no op walks the image in a naive loop:
//!
//! * `conv2d(x, out, kernel, stride = 1, padding = 0)` is im2col: the k·k
//!   shifted views of the zero-padded input (strided by reshaping) stacked
//!   into a [C·k·k, OH·OW] patch matrix P, then W·P + b with fresh
//!   parameters W: [out, C·k·k] (PyTorch's [out, C, k, k] flattened:
//!   columns in channel, kernel-row, kernel-column order; LeCun-initialised
//!   with fan-in C·k·k) and b: [out]. On the CPU, W·P is one GEMM over
//!   every position of every sample of a batch tile (P's positions are
//!   adjacent rows of the tile), and W's gradient Σ_batch G·Pᵀ is
//!   batch-contracting GEMMs. The result is [out, OH, OW] with
//!   OH = (H + 2·padding − k) / stride + 1 (rounded down), likewise OW.
//! * `avg_pool2d(x, kernel, stride = kernel)` and `max_pool2d(..)`: the same
//!   windows (no padding) reduced by their mean or maximum: [C, OH, OW].
//! * `flatten(x)`: the row-major reshape to one axis.

use super::*;

/// The most window positions (kernel²) an image primitive expands into:
/// each is a few IR nodes, so this bounds the graph (a 32×32 kernel).
const MAX_WINDOW: usize = 1024;

/// A window geometry, checked: kernel, stride, padding and the output size.
struct Windows {
    k: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Analyzer<'_> {
    /// `x` as [C, H, W] (a [H, W] image gets one channel), or a diagnostic.
    fn image(&mut self, name: &str, x: TExpr, span: Span) -> Option<TExpr> {
        match x.shape.len() {
            3 => Some(x),
            2 => {
                let s = vec![1, x.shape[0], x.shape[1]];
                self.reshape(x, s, span)
            }
            _ => {
                self.diags.push(err::image_input(name, &x.shape, span));
                None
            }
        }
    }

    fn windows(
        &mut self,
        name: &str,
        shape: &[usize],
        (k, stride, pad): (usize, usize, usize),
        span: Span,
    ) -> Option<Windows> {
        if k.saturating_mul(k) > MAX_WINDOW {
            self.diags
                .push(err::kernel_too_large_for_graph(name, k, MAX_WINDOW, span));
            return None;
        }
        let (h, w) = (
            shape[1].saturating_add(2 * pad),
            shape[2].saturating_add(2 * pad),
        );
        // The padded image (with the strided windows' slack) is built as a
        // tensor: refuse one beyond the size limits before it is.
        self.check_size(&[shape[0], h.saturating_add(k), w.saturating_add(k)], span)?;
        if k > h || k > w {
            self.diags
                .push(err::kernel_too_large(name, k, shape, pad, span));
            return None;
        }
        Some(Windows {
            k,
            stride,
            pad,
            oh: (h - k) / stride + 1,
            ow: (w - k) / stride + 1,
        })
    }

    /// `x` with `before` and `after` zeros on `axis`.
    fn pad_axis(
        &mut self,
        x: TExpr,
        axis: usize,
        (before, after): (usize, usize),
        span: Span,
    ) -> Option<TExpr> {
        if before == 0 && after == 0 {
            return Some(x);
        }
        let zeros = |n: usize| {
            let mut shape = x.shape.clone();
            shape[axis] = n;
            let data = vec![0.0; shape.iter().product()];
            Tensor { shape, data }
        };
        let (front, back) = (zeros(before), zeros(after));
        let mut shape = x.shape.clone();
        shape[axis] += before + after;
        let mut all = Vec::with_capacity(3);
        if before > 0 {
            all.push(self.constant(front, span)?);
        }
        all.push(x);
        if after > 0 {
            all.push(self.constant(back, span)?);
        }
        self.mk(TKind::Concat(all, axis), shape, span)
    }

    /// Elements start, start + stride, …, `count` of them, along `axis`
    /// (the input holds at least start + stride·count there).
    fn strided(
        &mut self,
        x: TExpr,
        axis: usize,
        (start, count, stride): (usize, usize, usize),
        span: Span,
    ) -> Option<TExpr> {
        let mut s = x.shape.clone();
        s[axis] = count * stride;
        let run = if start == 0 && x.shape[axis] == count * stride {
            x
        } else {
            self.mk(TKind::Slice(Box::new(x), axis, start, 1), s.clone(), span)?
        };
        if stride == 1 {
            return Some(run);
        }
        let mut split = s[..axis].to_vec();
        split.extend([count, stride]);
        split.extend_from_slice(&s[axis + 1..]);
        let grid = self.reshape(run, split.clone(), span)?;
        let mut first = split;
        first[axis + 1] = 1;
        let picked = self.mk(TKind::Slice(Box::new(grid), axis + 1, 0, 1), first, span)?;
        let mut out = s;
        out[axis] = count;
        self.reshape(picked, out, span)
    }

    /// The k·k windows of `x` ([C, H, W]) as [C, k·k, OH·OW], zero-padded.
    fn patches(&mut self, x: TExpr, g: &Windows, span: Span) -> Option<TExpr> {
        let c = x.shape[0];
        // Room for the last window's strided run: start k − 1, stride·count long.
        let need_h = g.k - 1 + g.stride * g.oh;
        let need_w = g.k - 1 + g.stride * g.ow;
        let (h, w) = (x.shape[1] + 2 * g.pad, x.shape[2] + 2 * g.pad);
        let x = self.pad_axis(x, 1, (g.pad, g.pad + need_h.saturating_sub(h)), span)?;
        let x = self.pad_axis(x, 2, (g.pad, g.pad + need_w.saturating_sub(w)), span)?;
        let mut parts = Vec::with_capacity(g.k * g.k);
        for i in 0..g.k {
            let rows = self.strided(x.clone(), 1, (i, g.oh, g.stride), span)?;
            for j in 0..g.k {
                let v = self.strided(rows.clone(), 2, (j, g.ow, g.stride), span)?;
                parts.push(self.reshape(v, vec![c, 1, g.oh * g.ow], span)?);
            }
        }
        let shape = vec![c, g.k * g.k, g.oh * g.ow];
        if parts.len() == 1 {
            return parts.pop();
        }
        self.mk(TKind::Concat(parts, 1), shape, span)
    }

    /// `conv2d(x, out, kernel, stride = 1, padding = 0)`.
    pub(super) fn conv2d(
        &mut self,
        sig: &Sig,
        b: &builtins::Bound,
        site: String,
        span: Span,
    ) -> Option<TExpr> {
        let xe = b.get(sig, "x")?;
        let x = self.expr(xe)?;
        let x = self.image(sig.name, x, xe.span)?;
        let out = self.static_positive(b.get(sig, "out")?, "`out`")?;
        let k = self.static_positive(b.get(sig, "kernel")?, "`kernel`")?;
        let stride = match b.get(sig, "stride") {
            Some(e) => self.static_positive(e, "`stride`")?,
            None => 1,
        };
        let pad = match b.get(sig, "padding") {
            Some(e) => self.static_count(e, "`padding`")?,
            None => 0,
        };
        let c = x.shape[0];
        let g = self.windows(sig.name, &x.shape, (k, stride, pad), span)?;
        let rows = c * k * k;
        self.check_size(&[rows, g.oh * g.ow], span)?;
        self.check_size(&[rows, out], span)?;
        let (wn, bn) = (format!("{site}.w"), format!("{site}.b"));
        self.declare_param(&wn, vec![out, rows], Init::LeCunOutFirst, span);
        self.declare_param(&bn, vec![out], Init::Zeros, span);
        let n = g.oh * g.ow;
        let p = self.patches(x, &g, span)?;
        let p = self.reshape(p, vec![rows, n], span)?;
        let w = self.mk(TKind::Param(wn), vec![out, rows], span)?;
        let m = self.mk(TKind::MatMul(Box::new(w), Box::new(p)), vec![out, n], span)?;
        let bias = self.mk(TKind::Param(bn), vec![out], span)?;
        let bias = self.reshape(bias, vec![out, 1], span)?;
        let y = self.mk(
            TKind::Binary(BinaryOp::Add, Box::new(m), Box::new(bias)),
            vec![out, n],
            span,
        )?;
        self.reshape(y, vec![out, g.oh, g.ow], span)
    }

    /// `avg_pool2d(x, kernel, stride = kernel)` and `max_pool2d(..)`.
    pub(super) fn pool2d(&mut self, sig: &Sig, b: &builtins::Bound, span: Span) -> Option<TExpr> {
        let xe = b.get(sig, "x")?;
        let x = self.expr(xe)?;
        let x = self.image(sig.name, x, xe.span)?;
        let k = self.static_positive(b.get(sig, "kernel")?, "`kernel`")?;
        let stride = match b.get(sig, "stride") {
            Some(e) => self.static_positive(e, "`stride`")?,
            None => k,
        };
        let c = x.shape[0];
        let g = self.windows(sig.name, &x.shape, (k, stride, 0), span)?;
        let p = self.patches(x, &g, span)?;
        let op = if sig.name == "max_pool2d" {
            Reduce::Max
        } else {
            Reduce::Mean
        };
        let r = self.reduce(op, p, Axes::of(&[1]), span)?;
        self.reshape(r, vec![c, g.oh, g.ow], span)
    }

    /// `flatten(x)`: all elements, row-major, on one axis.
    pub(super) fn flatten(&mut self, sig: &Sig, b: &builtins::Bound, span: Span) -> Option<TExpr> {
        let x = self.expr(b.get(sig, "x")?)?;
        let n = x.shape.iter().product();
        self.reshape(x, vec![n], span)
    }

    /// A compile-time integer ≥ 0.
    fn static_count(&mut self, e: &Expr, what: &str) -> Option<usize> {
        let v = self.static_int(e, what)?;
        if v < 0 || v as usize > MAX_ELEMS {
            self.diags.push(err::expected_count(what, v, e.span));
            return None;
        }
        Some(v as usize)
    }
}
