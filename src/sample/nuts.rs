//! The no-U-turn sampler (Hoffman & Gelman 2014) in the form Stan and
//! BlackJAX run: multinomial sampling of the trajectory's points and the
//! generalised no-U-turn criterion (Betancourt 2017), on the engine's
//! batched chains.
//!
//! One transition draws a momentum p ~ N(0, M) and doubles a trajectory
//! from the current point: at depth j a direction is drawn and a subtree of
//! 2ʲ leapfrog steps grows from that end. A subtree is thrown away when a
//! step diverges (the Hamiltonian rises by more than `max_energy_error`)
//! or when any of its balanced sub-subtrees makes a U-turn: with ρ the sum
//! of the momenta of a stretch of trajectory and v = M⁻¹p the velocities
//! at its two ends, it turns when v₋·ρ ≤ 0 or v₊·ρ ≤ 0. Those checks run
//! as the leaves arrive, from checkpoints of the momentum and its running
//! sum at the leaves that start a balanced stretch (the leaf index's bits
//! say which; Phan, Pradhan & Jankowiak 2019). A valid subtree is merged:
//! its multinomial sample replaces the tree's with probability
//! min(1, w_sub/w_tree) (biased progressive sampling), and the merged tree
//! is checked as a whole. Every balanced stretch of the final tree is
//! checked once, the same way whichever of its points the transition
//! started from — the symmetry detailed balance rests on. (Stan also checks
//! across each seam between two merged halves; doing that only at the top
//! level, where a start point sees some merges but another start point
//! sees them inside a subtree, breaks the symmetry and inflated the
//! variance of a correlated Gaussian by 7%, so the seams are not checked.) The
//! transition ends at a U-turn, a rejected subtree or `max_depth`
//! doublings. The acceptance statistic for step-size adaptation is the
//! mean of min(1, exp(H₀ − H)) over every leaf built.
//!
//! Chains advance in lock step: every leaf is one batched leapfrog call
//! over the chains still building (gathered into contiguous rows, so a
//! chain that finished early costs nothing). Randomness is counter-based
//! like the rest of the engine: the direction of depth j, the leaf
//! choices and the merge decisions come from uniforms keyed by (seed,
//! iteration, chain, j or leaf), so a chain's path does not depend on the
//! others or on the block split.

use super::SamplerConfig;
use super::engine::{Chains, Phase, Scratch, Target, fill_noise, finite, leapfrog_rows, uniform};
use super::metric::Metrics;
use crate::runtime::{RuntimeError, Scalar};

type RuntimeResult<T> = Result<T, RuntimeError>;

/// Streams of NUTS's uniforms (distinct from the engine's 1–3).
const STREAM_DIRECTION: u64 = 0x100;
const STREAM_LEAF: u64 = 0x1_0000_0000;
const STREAM_MERGE: u64 = 0x2_0000_0000;

/// One of a trajectory's two ends: position, momentum, gradient (in the
/// kernel's dtype) and velocity M⁻¹p, `n × d` each.
struct End<T> {
    x: Vec<T>,
    p: Vec<T>,
    g: Vec<T>,
    v: Vec<f64>,
}

/// The state of every chain's trajectory in one block.
pub(super) struct Nuts<T> {
    n: usize,
    d: usize,
    max_depth: usize,
    /// The backward (0) and forward (1) ends.
    ends: [End<T>; 2],
    /// The tree: log of its total weight Σ exp(H₀ − H), momentum sum,
    /// initial Hamiltonian. Its sample lives in the chain state itself.
    lw: Vec<f64>,
    rho: Vec<f64>,
    h0: Vec<f64>,
    /// The subtree being built: its sample, log weight and momentum sum.
    sub_x: Vec<T>,
    sub_g: Vec<T>,
    sub_e: Vec<T>,
    sub_lw: Vec<f64>,
    sub_rho: Vec<f64>,
    /// Checkpoints: per chain and level, the momentum, velocity and
    /// running momentum sum at the leaf starting a balanced stretch.
    ck_p: Vec<f64>,
    ck_v: Vec<f64>,
    ck_rho: Vec<f64>,
    /// Per chain: direction (forward?), depth reached, leapfrog steps,
    /// summed acceptance, and whether the tree / the subtree still grows.
    forward: Vec<bool>,
    pub depth: Vec<u32>,
    pub leaps: Vec<u32>,
    acc: Vec<f64>,
    growing: Vec<bool>,
    building: Vec<bool>,
    diverged: Vec<bool>,
    /// Gathered rows of one batched leapfrog call.
    rows: Vec<usize>,
    gx: Vec<T>,
    gp: Vec<T>,
    gg: Vec<T>,
    eps: Vec<T>,
    mass: Vec<T>,
    ox: Vec<T>,
    op: Vec<T>,
    og: Vec<T>,
    oe: Vec<T>,
    /// Host scratch of one row.
    p64: Vec<f64>,
    v64: Vec<f64>,
}

/// A transition's inputs that stay fixed while the trees grow.
pub(super) struct Ctx<'a> {
    pub cfg: &'a SamplerConfig,
    pub seed: u64,
    pub t: u64,
    pub first: usize,
    pub metrics: &'a Metrics,
}

fn end<T: Scalar>(n: usize, d: usize) -> End<T> {
    End {
        x: vec![T::zero(); n * d],
        p: vec![T::zero(); n * d],
        g: vec![T::zero(); n * d],
        v: vec![0.0; n * d],
    }
}

fn log_add(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        m
    } else {
        m + ((a - m).exp() + (b - m).exp()).ln()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Whether a stretch with momentum sum `rho` and end velocities `va`, `vb`
/// keeps going (no U-turn).
fn persists(va: &[f64], vb: &[f64], rho: &[f64]) -> bool {
    dot(va, rho) > 0.0 && dot(vb, rho) > 0.0
}

/// The checkpoint levels of leaf `k` of a subtree: the leaf's momentum is
/// stored at level `hi` when `k` is even; the balanced stretches ending at
/// `k` start at the checkpoints `lo..=hi` (none when `k` is even).
fn levels(k: usize) -> (usize, usize) {
    let hi = (k >> 1).count_ones() as usize;
    let turns = (k.trailing_ones()) as usize;
    (hi + 1 - turns, hi)
}

impl<T: Scalar> Nuts<T> {
    pub fn new(n: usize, d: usize, max_depth: usize) -> Self {
        let z = |len: usize| vec![T::zero(); len];
        let f = |len: usize| vec![0.0; len];
        let levels = max_depth.max(1);
        Nuts {
            n,
            d,
            max_depth,
            ends: [end(n, d), end(n, d)],
            lw: f(n),
            rho: f(n * d),
            h0: f(n),
            sub_x: z(n * d),
            sub_g: z(n * d),
            sub_e: z(n),
            sub_lw: f(n),
            sub_rho: f(n * d),
            ck_p: f(n * levels * d),
            ck_v: f(n * levels * d),
            ck_rho: f(n * levels * d),
            forward: vec![true; n],
            depth: vec![0; n],
            leaps: vec![0; n],
            acc: f(n),
            growing: vec![false; n],
            building: vec![false; n],
            diverged: vec![false; n],
            rows: Vec::with_capacity(n),
            gx: z(n * d),
            gp: z(n * d),
            gg: z(n * d),
            eps: z(n),
            mass: z(n * d),
            ox: z(n * d),
            op: z(n * d),
            og: z(n * d),
            oe: z(n),
            p64: f(d),
            v64: f(d),
        }
    }

    /// The Hamiltonian at each chain's start (E + K), for `energy__`.
    pub fn hamiltonian(&self) -> &[f64] {
        &self.h0
    }

    /// One NUTS transition of every chain of the block. Leaves in `s` the
    /// acceptance statistic and divergence flag of each chain, as the other
    /// MH kernels do; the chain state holds the new sample.
    pub fn step<G: Target<T> + ?Sized>(
        &mut self,
        target: &G,
        ctx: &Ctx<'_>,
        ch: &mut Chains<T>,
        s: &mut Scratch<T>,
    ) -> RuntimeResult<()> {
        fill_noise(ctx.seed, ctx.t, ctx.first, self.d, &mut s.noise, &mut s.tmp);
        for c in 0..self.n {
            self.start(c, ctx.metrics, ch, s);
        }
        for j in 0..self.max_depth {
            if !self.growing.contains(&true) {
                break;
            }
            for c in 0..self.n {
                if self.growing[c] {
                    self.open_subtree(c, j, ctx);
                }
            }
            for k in 0..1usize << j {
                if !self.gather(s) {
                    break;
                }
                let out = Phase {
                    x: &mut self.ox[..self.rows.len() * self.d],
                    p: &mut self.op[..self.rows.len() * self.d],
                    g: &mut self.og[..self.rows.len() * self.d],
                    e: &mut self.oe[..self.rows.len()],
                };
                let m = self.rows.len();
                leapfrog_rows(
                    target,
                    ctx.metrics,
                    &self.rows,
                    &self.mass[..m * self.d],
                    &self.gx[..m * self.d],
                    &self.gg[..m * self.d],
                    &self.gp[..m * self.d],
                    &self.eps[..m],
                    out,
                )?;
                for r in 0..m {
                    let c = self.rows[r];
                    self.leaf(c, r, j, k, ctx);
                }
            }
            for c in 0..self.n {
                if self.growing[c] {
                    self.merge(c, j, ctx, ch);
                }
            }
        }
        self.finish(ch, s);
        Ok(())
    }

    /// Draws chain `c`'s momentum and sets up a one-point tree.
    fn start(&mut self, c: usize, metrics: &Metrics, ch: &Chains<T>, s: &mut Scratch<T>) {
        let r = c * self.d..(c + 1) * self.d;
        let xi: Vec<f64> = s.noise[r.clone()].iter().map(|v| v.to_f64()).collect();
        metrics.momentum(c, &xi, &mut self.p64);
        // The momentum as the kernel's dtype holds it, so that K and the
        // trajectory start from the same numbers.
        let p_t: Vec<T> = self.p64.iter().map(|&v| T::from_f64(v)).collect();
        let p: Vec<f64> = p_t.iter().map(|v| v.to_f64()).collect();
        metrics.velocity(c, &p, &mut self.v64);
        self.h0[c] = ch.e[c].to_f64() + 0.5 * dot(&p, &self.v64);
        for e in &mut self.ends {
            e.x[r.clone()].copy_from_slice(&ch.x[r.clone()]);
            e.g[r.clone()].copy_from_slice(&ch.g[r.clone()]);
            e.p[r.clone()].copy_from_slice(&p_t);
            e.v[r.clone()].copy_from_slice(&self.v64);
        }
        self.rho[r].copy_from_slice(&p);
        self.lw[c] = 0.0;
        self.depth[c] = 0;
        self.leaps[c] = 0;
        self.acc[c] = 0.0;
        self.diverged[c] = false;
        self.growing[c] = !ch.frozen(c);
        self.building[c] = false;
    }

    /// Draws the direction of chain `c`'s subtree at depth `j` and resets
    /// the subtree's sums.
    fn open_subtree(&mut self, c: usize, j: usize, ctx: &Ctx<'_>) {
        let r = c * self.d..(c + 1) * self.d;
        let u = uniform(
            ctx.seed,
            STREAM_DIRECTION + j as u64,
            ctx.t,
            (ctx.first + c) as u64,
        );
        self.forward[c] = u < 0.5;
        self.sub_rho[r].fill(0.0);
        self.sub_lw[c] = f64::NEG_INFINITY;
        self.building[c] = true;
    }

    /// Gathers the end each building chain grows from into the batch rows;
    /// false when no chain is building.
    fn gather(&mut self, s: &Scratch<T>) -> bool {
        let d = self.d;
        self.rows.clear();
        for c in 0..self.n {
            if !self.building[c] {
                continue;
            }
            let (r, src) = (self.rows.len(), c * d..(c + 1) * d);
            let dst = r * d..(r + 1) * d;
            let e = &self.ends[self.forward[c] as usize];
            self.gx[dst.clone()].copy_from_slice(&e.x[src.clone()]);
            self.gp[dst.clone()].copy_from_slice(&e.p[src.clone()]);
            self.gg[dst.clone()].copy_from_slice(&e.g[src.clone()]);
            self.mass[dst].copy_from_slice(&s.mass_t[src]);
            let h = s.step_t[c].to_f64();
            self.eps[r] = T::from_f64(if self.forward[c] { h } else { -h });
            self.rows.push(c);
        }
        !self.rows.is_empty()
    }

    /// Takes leaf `k` of chain `c`'s depth-`j` subtree from batch row `r`.
    fn leaf(&mut self, c: usize, r: usize, j: usize, k: usize, ctx: &Ctx<'_>) {
        let d = self.d;
        let (row, cr) = (r * d..(r + 1) * d, c * d..(c + 1) * d);
        let side = self.forward[c] as usize;
        for (dst, src) in self.p64.iter_mut().zip(&self.op[row.clone()]) {
            *dst = src.to_f64();
        }
        ctx.metrics.velocity(c, &self.p64, &mut self.v64);
        let h = self.oe[r].to_f64() + 0.5 * dot(&self.p64, &self.v64);
        self.leaps[c] += 1;
        let ok = h.is_finite()
            && finite(&self.ox[row.clone()])
            && finite(&self.og[row.clone()])
            && h - self.h0[c] <= ctx.cfg.max_energy_error;
        let dh = self.h0[c] - h;
        self.acc[c] += if dh.is_nan() { 0.0 } else { dh.exp().min(1.0) };
        if !ok {
            self.diverged[c] = true;
            self.building[c] = false;
            return;
        }
        let e = &mut self.ends[side];
        e.x[cr.clone()].copy_from_slice(&self.ox[row.clone()]);
        e.p[cr.clone()].copy_from_slice(&self.op[row.clone()]);
        e.g[cr.clone()].copy_from_slice(&self.og[row.clone()]);
        e.v[cr.clone()].copy_from_slice(&self.v64);
        // Multinomial sampling within the subtree: each valid leaf ends up
        // the subtree's sample with probability proportional to its weight.
        let lw = log_add(self.sub_lw[c], dh);
        let leaf_id = (1u64 << j) - 1 + k as u64;
        let u = uniform(
            ctx.seed,
            STREAM_LEAF + leaf_id,
            ctx.t,
            (ctx.first + c) as u64,
        );
        if u.ln() < dh - lw {
            self.sub_x[cr.clone()].copy_from_slice(&self.ox[row.clone()]);
            self.sub_g[cr.clone()].copy_from_slice(&self.og[row]);
            self.sub_e[c] = self.oe[r];
        }
        self.sub_lw[c] = lw;
        for (a, b) in self.sub_rho[cr.clone()].iter_mut().zip(&self.p64) {
            *a += b;
        }
        if self.turns_inside(c, k) {
            self.building[c] = false;
        }
    }

    /// Stores leaf `k`'s checkpoint (even `k`) and checks every balanced
    /// stretch of the subtree that ends at it (odd `k`).
    fn turns_inside(&mut self, c: usize, k: usize) -> bool {
        let (d, levels_n) = (self.d, self.max_depth.max(1));
        let (lo, hi) = levels(k);
        let at = |level: usize| (c * levels_n + level) * d;
        let cr = c * d..(c + 1) * d;
        if k.is_multiple_of(2) {
            let o = at(hi);
            self.ck_p[o..o + d].copy_from_slice(&self.p64);
            self.ck_v[o..o + d].copy_from_slice(&self.v64);
            self.ck_rho[o..o + d].copy_from_slice(&self.sub_rho[cr]);
            return false;
        }
        let mut rho = vec![0.0; d];
        for level in (lo..=hi).rev() {
            let o = at(level);
            for i in 0..d {
                rho[i] = self.sub_rho[c * d + i] - self.ck_rho[o + i] + self.ck_p[o + i];
            }
            if !persists(&self.ck_v[o..o + d], &self.v64, &rho) {
                return true;
            }
        }
        false
    }

    /// Merges chain `c`'s finished depth-`j` subtree into its tree, or ends
    /// the transition when the subtree diverged or turned.
    fn merge(&mut self, c: usize, j: usize, ctx: &Ctx<'_>, ch: &mut Chains<T>) {
        let (d, cr) = (self.d, c * self.d..(c + 1) * self.d);
        if !self.building[c] {
            self.growing[c] = false;
            return;
        }
        self.building[c] = false;
        let u = uniform(
            ctx.seed,
            STREAM_MERGE + j as u64,
            ctx.t,
            (ctx.first + c) as u64,
        );
        if u.ln() < self.sub_lw[c] - self.lw[c] {
            ch.x[cr.clone()].copy_from_slice(&self.sub_x[cr.clone()]);
            ch.g[cr.clone()].copy_from_slice(&self.sub_g[cr.clone()]);
            ch.e[c] = self.sub_e[c];
        }
        self.lw[c] = log_add(self.lw[c], self.sub_lw[c]);
        let side = self.forward[c] as usize;
        for i in 0..d {
            self.rho[c * d + i] += self.sub_rho[c * d + i];
        }
        let keeps = persists(
            &self.ends[1 - side].v[cr.clone()],
            &self.ends[side].v[cr.clone()],
            &self.rho[cr],
        );
        self.depth[c] = j as u32 + 1;
        self.growing[c] = keeps;
    }

    /// Writes each chain's acceptance statistic and divergence flag.
    fn finish(&mut self, ch: &Chains<T>, s: &mut Scratch<T>) {
        for c in 0..self.n {
            if ch.frozen(c) {
                s.accept[c] = 0.0;
                s.divergent[c] = true;
                continue;
            }
            s.accept[c] = if self.leaps[c] > 0 {
                self.acc[c] / self.leaps[c] as f64
            } else {
                0.0
            };
            s.divergent[c] = self.diverged[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_levels_follow_the_leaf_bits() {
        // Even leaves store (no stretch ends there); odd leaves check one
        // stretch per trailing one bit.
        assert_eq!(levels(0), (1, 0));
        assert_eq!(levels(1), (0, 0));
        assert_eq!(levels(3), (0, 1));
        assert_eq!(levels(6), (3, 2));
        assert_eq!(levels(7), (0, 2));
        assert_eq!(levels(13), (2, 2));
    }

    #[test]
    fn log_add_handles_empty_weights() {
        assert_eq!(log_add(f64::NEG_INFINITY, 0.5), 0.5);
        assert!((log_add(0.0, 0.0) - 2f64.ln()).abs() < 1e-15);
    }
}
