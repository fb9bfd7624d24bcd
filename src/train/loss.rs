//! Training losses as cotangents of one compiled kernel.
//!
//! The loss kernel is the energy with its output replaced by the pair
//! (E, E²) per sample. Every contrastive loss this module knows is
//! Σ_b w_b·E_b + c_b·E_b² over the batch concat(x⁺, x⁻), so its θ-gradient
//! is one pullback of that pair seeded by (w_b, c_b): one kernel call per
//! batch, never a loop over samples. For the plain CD loss the seeds are
//! constants and that one call also yields the energies; the softplus and
//! logsumexp variants need the energies first (one forward pass more).
//!
//! Improved CD (Du et al. 2021) adds two terms differentiated through the
//! last Langevin step x_K = x_{K−1} − d·∇ₓE_θ(x_{K−1}) + σξ, with θ held
//! constant in the outer energy:
//! * KL: mean_b E_θ̄(x_K,b), whose gradient is Σ_b v_b·∂x_K,b/∂θ with
//!   v_b = ∇ₓE(x_K,b)/B;
//! * entropy: −mean_b log‖x_K,b − n_b‖ (n_b the nearest stored sample,
//!   a constant), with ∂/∂x_K,b = −(x_K,b − n_b)/(B‖x_K,b − n_b‖²).
//!
//! Since ∂x_K/∂θ = −d·∂(∇ₓE_θ(x_{K−1}))/∂θ, both reach θ through one mixed
//! product: −d·∇_θ Σ_b ∇ₓE(x_{K−1,b})·u_b (`CompiledEnergy::mixed`).

use crate::ir::{BatchReduce, Graph};

/// Which contrastive loss (all with IGEBM's α·mean(E⁺² + E⁻²) on top).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// mean E(x⁺) − mean E(x⁻).
    Cd,
    /// mean_b softplus(E(x⁺_b) − E(x⁻_b)) (pairs positives with negatives).
    Softplus,
    /// mean E(x⁺) + log mean_b exp(−E(x⁻_b)): negatives weighted by their
    /// self-normalised importance exp(−E)/Σexp(−E).
    Logsumexp,
}

impl LossKind {
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Cd => "cd",
            LossKind::Softplus => "softplus",
            LossKind::Logsumexp => "logsumexp",
        }
    }
    /// Whether the seeds depend on the energies (a forward pass first).
    pub fn needs_energies(self) -> bool {
        self != LossKind::Cd
    }
}

/// The energy graph with its output replaced by (E, E²) per sample.
pub fn loss_graph(energy: &Graph) -> Result<Graph, String> {
    let out = energy
        .outputs
        .first()
        .ok_or("the energy graph has no output")?;
    if !energy.shape(out.node).is_empty() {
        return Err(format!(
            "training needs an energy (one number per sample); `{}` returns shape {:?}",
            energy.name,
            energy.shape(out.node)
        ));
    }
    let mut g = energy.clone();
    let e = g.reshape(out.node, &[1]);
    let sq = g.mul(e, e);
    let pair = g.concat(vec![e, sq], 0);
    g.outputs.clear();
    g.add_output("energy_and_square", pair, BatchReduce::PerSample);
    Ok(g)
}

/// The value of a loss and the seeds of its gradient for `pos` positives
/// followed by `neg` negatives.
#[derive(Clone, Debug, PartialEq)]
pub struct Seeds {
    /// (w_b, c_b) per sample of concat(x⁺, x⁻).
    pub seed: Vec<f64>,
}

/// Seeds of the loss for energies `e` (positives first); `e` may be empty
/// for `LossKind::Cd`, whose seeds do not depend on it.
pub fn seeds(kind: LossKind, l2: f64, pos: usize, neg: usize, e: &[f64]) -> Seeds {
    let (bp, bn) = (pos as f64, neg as f64);
    let mut seed = Vec::with_capacity(2 * (pos + neg));
    match kind {
        LossKind::Cd => {
            seed.extend((0..pos).flat_map(|_| [1.0 / bp, l2 / bp]));
            seed.extend((0..neg).flat_map(|_| [-1.0 / bn, l2 / bn]));
        }
        LossKind::Softplus => {
            let sig: Vec<f64> = (0..pos).map(|b| sigmoid(e[b] - e[pos + b]) / bp).collect();
            seed.extend(sig.iter().flat_map(|s| [*s, l2 / bp]));
            seed.extend(sig.iter().flat_map(|s| [-*s, l2 / bn]));
        }
        LossKind::Logsumexp => {
            let w = softmax_neg(&e[pos..]);
            seed.extend((0..pos).flat_map(|_| [1.0 / bp, l2 / bp]));
            seed.extend(w.iter().flat_map(|w| [-*w, l2 / bn]));
        }
    }
    Seeds { seed }
}

/// The loss terms for energies `e` (positives first).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossValue {
    pub loss: f64,
    pub e_pos: f64,
    pub e_neg: f64,
    pub l2: f64,
}

pub fn value(kind: LossKind, l2: f64, pos: usize, e: &[f64]) -> LossValue {
    let (p, n) = e.split_at(pos);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let sq = |v: &[f64]| mean(&v.iter().map(|x| x * x).collect::<Vec<_>>());
    let (e_pos, e_neg) = (mean(p), mean(n));
    let l2v = l2 * (sq(p) + sq(n));
    let main = match kind {
        LossKind::Cd => e_pos - e_neg,
        LossKind::Softplus => mean(
            &p.iter()
                .zip(n)
                .map(|(a, b)| softplus(a - b))
                .collect::<Vec<_>>(),
        ),
        LossKind::Logsumexp => {
            let m = n.iter().map(|v| -v).fold(f64::NEG_INFINITY, f64::max);
            let lse = m + n.iter().map(|v| (-v - m).exp()).sum::<f64>().ln();
            e_pos + lse - (n.len() as f64).ln()
        }
    };
    LossValue {
        loss: main + l2v,
        e_pos,
        e_neg,
        l2: l2v,
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// softmax(−e).
fn softmax_neg(e: &[f64]) -> Vec<f64> {
    let m = e.iter().map(|v| -v).fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = e.iter().map(|v| (-v - m).exp()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| v / s).collect()
}

/// The entropy term's value −mean log‖x_b − n_b‖ and its gradient with
/// respect to each x_b (n_b the nearest row of `reference` to x_b, found by
/// brute force; a row at distance 0 contributes nothing).
pub fn nn_entropy(x: &[f64], reference: &[f64], dim: usize) -> (f64, Vec<f64>) {
    let n = x.len() / dim;
    let mut grad = vec![0.0; x.len()];
    let mut total = 0.0;
    for b in 0..n {
        let xb = &x[b * dim..(b + 1) * dim];
        let mut best: Option<(f64, usize)> = None;
        for (r, row) in reference.chunks_exact(dim).enumerate() {
            let d2: f64 = xb.iter().zip(row).map(|(a, c)| (a - c) * (a - c)).sum();
            if d2 > 0.0 && best.is_none_or(|(bd, _)| d2 < bd) {
                best = Some((d2, r));
            }
        }
        let Some((d2, r)) = best else { continue };
        let nb = &reference[r * dim..(r + 1) * dim];
        total -= 0.5 * d2.ln();
        for k in 0..dim {
            grad[b * dim + k] = -(xb[k] - nb[k]) / (d2 * n as f64);
        }
    }
    (total / n.max(1) as f64, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds are the derivatives of `value` with respect to each E_b
    /// and E_b² (checked by central differences).
    fn check(kind: LossKind) {
        let e = [0.3, -1.2, 0.8, 2.0, -0.5, 1.1];
        let (pos, l2) = (3, 0.25);
        let s = seeds(kind, l2, pos, 3, &e);
        for b in 0..e.len() {
            let h = 1e-6;
            let at = |d: f64| {
                let mut v = e;
                v[b] += d;
                value(kind, l2, pos, &v).loss
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            let analytic = s.seed[2 * b] + 2.0 * e[b] * s.seed[2 * b + 1];
            assert!(
                (fd - analytic).abs() < 1e-7,
                "{kind:?} b={b}: {fd} vs {analytic}"
            );
        }
    }

    #[test]
    fn seeds_are_loss_derivatives() {
        check(LossKind::Cd);
        check(LossKind::Softplus);
        check(LossKind::Logsumexp);
    }

    #[test]
    fn entropy_gradient_matches_differences() {
        let x = [0.1, 0.2, 1.0, -0.5, 2.0, 2.0];
        let r = [0.0, 0.0, 1.0, 0.0, 3.0, 3.0, 1.0, -0.6];
        let (_, g) = nn_entropy(&x, &r, 2);
        for i in 0..x.len() {
            let h = 1e-7;
            let at = |d: f64| {
                let mut v = x;
                v[i] += d;
                nn_entropy(&v, &r, 2).0
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-5, "{i}: {fd} vs {}", g[i]);
        }
    }
}
