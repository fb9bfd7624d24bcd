//! The replay buffer of persistent contrastive divergence (IGEBM): each
//! iteration starts its negatives from stored samples, each row replaced by
//! fresh noise with probability `reinit`, and writes the sampled negatives
//! back. Two policies: `Uniform` (a full buffer from the start; rows drawn
//! with replacement and written back in place, as the W4 benchmark and
//! JEM do) and `Reservoir` (the buffer starts empty and keeps a uniform
//! sample of every negative generated so far, Algorithm R).
//!
//! Every random choice is a function of (seed, iteration, row), so a run
//! resumed from a checkpoint draws exactly what an uninterrupted run would.

use super::keyed::Keyed;

/// Where fresh negatives come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fresh {
    /// Independent U(lo, hi) coordinates.
    Uniform { lo: f64, hi: f64 },
    /// Independent N(0, sd²) coordinates.
    Normal { sd: f64 },
}

impl Fresh {
    /// Uniform over the range of `data`'s values, padded by 10% each side
    /// (the default: fresh negatives cover the data and a margin around it).
    pub fn around(data: &[f64]) -> Fresh {
        let (lo, hi) = data
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let pad = 0.1 * (hi - lo).max(1e-6);
        Fresh::Uniform {
            lo: lo - pad,
            hi: hi + pad,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Fresh::Uniform { lo, hi } => format!("uniform({lo}, {hi})"),
            Fresh::Normal { sd } => format!("normal(0, {sd})"),
        }
    }
    /// Fills `out` with fresh points from stream `k`, counter `at` onwards.
    pub fn fill(&self, k: &Keyed, at: u64, out: &mut [f64]) {
        match *self {
            Fresh::Uniform { lo, hi } => {
                for (i, v) in out.iter_mut().enumerate() {
                    *v = lo + (hi - lo) * k.uniform(at + i as u64);
                }
            }
            Fresh::Normal { sd } => {
                for (i, v) in out.iter_mut().enumerate() {
                    *v = sd * k.normal(at + i as u64);
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    Uniform,
    Reservoir,
}

impl Replace {
    pub fn name(self) -> &'static str {
        match self {
            Replace::Uniform => "uniform",
            Replace::Reservoir => "reservoir",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BufferConfig {
    pub size: usize,
    pub reinit: f64,
    pub fresh: Fresh,
    pub replace: Replace,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            size: 10_000,
            reinit: 0.05,
            fresh: Fresh::Uniform { lo: -3.0, hi: 3.0 },
            replace: Replace::Uniform,
        }
    }
}

/// Stream tags (distinct streams of one run's keyed generator).
const FILL: u64 = 11;
const PICK: u64 = 12;
const REINIT: u64 = 13;
const FRESH: u64 = 14;
const KEEP: u64 = 15;

/// The stored samples (`rows × dim`) and, for a reservoir, how many
/// negatives it has been offered.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayBuffer {
    pub x: Vec<f64>,
    pub dim: usize,
    pub seen: u64,
}

/// The starting points of one iteration's negatives, the buffer slot each
/// is written back to (`None` while a reservoir is empty), and whether each
/// start is fresh noise rather than a stored sample.
pub struct Drawn {
    pub x: Vec<f64>,
    pub rows: Vec<Option<usize>>,
    pub fresh: Vec<bool>,
}

impl ReplayBuffer {
    pub fn new(cfg: &BufferConfig, dim: usize, seed: u64) -> ReplayBuffer {
        let mut x = Vec::new();
        if cfg.replace == Replace::Uniform {
            x = vec![0.0; cfg.size * dim];
            cfg.fresh.fill(&Keyed::new(seed, FILL, 0), 0, &mut x);
        }
        ReplayBuffer { x, dim, seen: 0 }
    }

    pub fn rows(&self) -> usize {
        self.x.len() / self.dim.max(1)
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    /// `n` starting points for iteration `it`. Every row of a filled buffer
    /// takes a slot (drawn with replacement); with probability `reinit` its
    /// start is fresh noise instead of the slot's sample, and the slot
    /// receives the new negative either way (as W4 and JEM write back).
    pub fn draw(&self, cfg: &BufferConfig, seed: u64, it: u64, n: usize) -> Drawn {
        let mut drawn = self.choose(cfg, seed, it, n);
        let d = self.dim;
        for (b, (slot, &fresh)) in drawn.rows.iter().zip(&drawn.fresh).enumerate() {
            if let (Some(r), false) = (slot, fresh) {
                drawn.x[b * d..(b + 1) * d].copy_from_slice(self.row(*r));
            }
        }
        drawn
    }

    /// `draw`'s slots and fresh starts without the stored samples: their
    /// rows of `x` are zeros, for a caller that holds the samples elsewhere
    /// (a device) and gathers them there.
    pub fn choose(&self, cfg: &BufferConfig, seed: u64, it: u64, n: usize) -> Drawn {
        let d = self.dim;
        let (pick, reinit, fresh) = (
            Keyed::new(seed, PICK, it),
            Keyed::new(seed, REINIT, it),
            Keyed::new(seed, FRESH, it),
        );
        let stored = self.rows();
        let mut x = vec![0.0; n * d];
        let mut rows = Vec::with_capacity(n);
        let mut is_fresh = Vec::with_capacity(n);
        for b in 0..n {
            let slot = (stored > 0).then(|| pick.below(b as u64, stored as u64) as usize);
            let keep = slot.is_some() && reinit.uniform(b as u64) >= cfg.reinit;
            if !keep {
                cfg.fresh
                    .fill(&fresh, (b * d) as u64, &mut x[b * d..(b + 1) * d]);
            }
            is_fresh.push(!keep);
            rows.push(slot);
        }
        Drawn {
            x,
            rows,
            fresh: is_fresh,
        }
    }

    /// Stores the sampled negatives `x` (rows as drawn); non-finite rows are
    /// never stored.
    pub fn write_back(&mut self, cfg: &BufferConfig, seed: u64, it: u64, drawn: &Drawn, x: &[f64]) {
        let d = self.dim;
        let finite: Vec<bool> = (x.chunks_exact(d.max(1)))
            .map(|row| row.iter().all(|v| v.is_finite()))
            .collect();
        for (b, r) in self.place(cfg, seed, it, drawn, &finite) {
            self.x[r * d..(r + 1) * d].copy_from_slice(&x[b * d..(b + 1) * d]);
        }
    }

    /// Where iteration `it`'s sampled negatives go, as `(negative, slot)`
    /// moves in order (a later move to a slot wins): the uniform policy's
    /// drawn slot, or the reservoir's (Algorithm R: while the buffer fills,
    /// a new row, appended here as zeros for the move to fill). Negatives
    /// not `finite` go nowhere and are not offered to the reservoir.
    pub fn place(
        &mut self,
        cfg: &BufferConfig,
        seed: u64,
        it: u64,
        drawn: &Drawn,
        finite: &[bool],
    ) -> Vec<(usize, usize)> {
        let keep = Keyed::new(seed, KEEP, it);
        let mut moves = Vec::with_capacity(drawn.rows.len());
        for (b, from) in drawn.rows.iter().enumerate() {
            if !finite.get(b).copied().unwrap_or(false) {
                continue;
            }
            let slot = match cfg.replace {
                Replace::Uniform => *from,
                Replace::Reservoir => {
                    self.seen += 1;
                    let stored = self.rows();
                    if stored < cfg.size {
                        self.x.extend(std::iter::repeat_n(0.0, self.dim));
                        Some(stored)
                    } else {
                        let j = keep.below(b as u64, self.seen) as usize;
                        (j < cfg.size).then_some(j)
                    }
                }
            };
            if let Some(r) = slot {
                moves.push((b, r));
            }
        }
        moves
    }

    /// Up to `n` stored rows chosen for iteration `it` (the entropy term's
    /// nearest-neighbour reference set).
    pub fn reference(&self, seed: u64, it: u64, n: usize) -> Vec<f64> {
        match self.reference_rows(seed, it, n) {
            None => self.x.clone(),
            Some(rows) => rows.iter().flat_map(|&r| self.row(r).to_vec()).collect(),
        }
    }

    /// The rows `reference` takes; `None` for every row.
    pub fn reference_rows(&self, seed: u64, it: u64, n: usize) -> Option<Vec<usize>> {
        let stored = self.rows();
        if stored <= n {
            return None;
        }
        let k = Keyed::new(seed, PICK ^ 0xFF, it);
        Some(
            (0..n)
                .map(|i| k.below(i as u64, stored as u64) as usize)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_buffer_draws_and_writes_back_in_place() {
        let cfg = BufferConfig {
            size: 100,
            reinit: 0.05,
            ..Default::default()
        };
        let mut buf = ReplayBuffer::new(&cfg, 2, 7);
        assert_eq!(buf.rows(), 100);
        assert!(buf.x.iter().all(|v| (-3.0..3.0).contains(v)));
        let d = buf.draw(&cfg, 7, 0, 1000);
        assert!(d.rows.iter().all(|r| r.is_some()), "every row takes a slot");
        let fresh = (0..1000)
            .filter(|&b| d.x[2 * b..2 * b + 2] != *buf.row(d.rows[b].unwrap()))
            .count();
        assert_eq!(fresh, d.fresh.iter().filter(|&&f| f).count());
        // Binomial(1000, 0.05): mean 50, sd 6.9.
        assert!((20..80).contains(&fresh), "{fresh}");
        let moved: Vec<f64> = d.x.iter().map(|v| v + 100.0).collect();
        buf.write_back(&cfg, 7, 0, &d, &moved);
        assert!(buf.x.iter().any(|v| *v > 90.0));
        assert_eq!(buf.rows(), 100);
        // Same seed and iteration, same draw.
        assert_eq!(buf.draw(&cfg, 7, 3, 10).x, buf.draw(&cfg, 7, 3, 10).x);
    }

    #[test]
    fn reservoir_fills_then_replaces_and_skips_non_finite_rows() {
        let cfg = BufferConfig {
            size: 10,
            reinit: 0.05,
            replace: Replace::Reservoir,
            ..Default::default()
        };
        let mut buf = ReplayBuffer::new(&cfg, 1, 1);
        assert_eq!(buf.rows(), 0);
        let d = buf.draw(&cfg, 1, 0, 6);
        assert!(d.rows.iter().all(|r| r.is_none()));
        assert!(
            d.fresh.iter().all(|&f| f),
            "an empty reservoir starts from noise"
        );
        buf.write_back(&cfg, 1, 0, &d, &[1.0, 2.0, f64::NAN, 3.0, 4.0, 5.0]);
        assert_eq!(buf.x, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        for it in 1..50 {
            let d = buf.draw(&cfg, 1, it, 6);
            let x = vec![it as f64; 6];
            buf.write_back(&cfg, 1, it, &d, &x);
        }
        assert_eq!(buf.rows(), 10);
        assert_eq!(buf.seen, 5 + 49 * 6);
    }
}
