//! Score matching (Hyvärinen 2005; sliced: Song et al. 2019; denoising:
//! Vincent 2011) as loss graphs built from the energy's own graph.
//!
//! Each method's per-sample loss is a function of ∇ₓE (and, for the exact
//! and sliced forms, of second derivatives), so it is built here as IR by
//! applying `vjp` to the energy graph once or twice; the θ-gradient of the
//! batch loss is then one pullback of that graph, like every other loss of
//! training, and reaches third-order derivatives of E without a tape. Every
//! graph returns (loss, E) per sample ([`LOSS_VALUES`]) and takes its
//! per-sample auxiliary values through the input `c`:
//! * [`exact_graph`]: ½‖∇ₓE‖² − tr ∇ₓ²E, the trace as d Hessian-vector
//!   products against the basis vectors, so only for small d
//!   ([`MAX_EXACT_DIM`]);
//! * [`sliced_graph`]: ½‖∇ₓE‖² − (1/M) Σₘ vₘᵀ ∇ₓ²E vₘ for M projections
//!   vₘ with E[vvᵀ] = I (Gaussian or Rademacher), one HVP each — the
//!   variance-reduced sliced loss (SSM-VR), whose mean over projections is
//!   exactly the exact loss;
//! * [`denoising_graph`]: ½‖σ·∇ₓE(x̃) − ε‖² at x̃ = x + σε, i.e.
//!   σ²·½‖s_θ(x̃) − ∇ log q_σ(x̃ | x)‖² (the σ² weighting of Song & Ermon
//!   2019, so several noise levels share one scale); `c` = (ε, σ).
//!
//! The host side ([`projections`], [`denoising_inputs`]) draws the keyed
//! random inputs of one iteration.

use crate::autodiff::vjp;
use crate::ir::{BatchReduce, Graph, InputKind, NodeId};

use super::keyed::Keyed;

/// Values per sample of every score-matching graph: (loss, E).
pub const LOSS_VALUES: usize = 2;

/// The exact loss takes d HVPs per sample; beyond this, use `ssm`.
pub const MAX_EXACT_DIM: usize = 64;

/// The sliced loss builds one HVP per projection into its graph.
pub const MAX_PROJECTIONS: usize = 64;

/// The largest loss graph the exact and sliced forms may build: each HVP
/// adds about three copies of the energy's graph, so an energy near the
/// inlined-size bound times d or M HVPs would take gigabytes to compile.
pub const MAX_LOSS_NODES: usize = 1 << 22;

/// Refuses a loss of `hvps` HVPs whose graph would exceed [`MAX_LOSS_NODES`]
/// (before any node is built).
fn check_size(energy: &Graph, hvps: usize, method: &str) -> Result<(), String> {
    let estimate = energy
        .len()
        .saturating_mul(3usize.saturating_mul(hvps).saturating_add(3));
    if estimate > MAX_LOSS_NODES {
        return Err(format!(
            "{method} with {hvps} Hessian-vector products of `{}` ({} operations) would build a graph of about {estimate} operations; the limit is {MAX_LOSS_NODES}: use fewer projections (ssm) or dsm",
            energy.name,
            energy.len()
        ));
    }
    Ok(())
}

/// How sliced score matching draws its projections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    Gaussian,
    /// Independent ±1 entries (lower variance than Gaussian).
    Rademacher,
}

impl Projection {
    pub fn name(self) -> &'static str {
        match self {
            Projection::Gaussian => "gaussian",
            Projection::Rademacher => "rademacher",
        }
    }
    pub fn parse(s: &str) -> Option<Projection> {
        match s {
            "gaussian" => Some(Projection::Gaussian),
            "rademacher" => Some(Projection::Rademacher),
            _ => None,
        }
    }
}

/// The settings of the score-matching methods.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreConfig {
    /// `ssm`: projections per sample (M).
    pub projections: usize,
    pub projection: Projection,
    /// `dsm`: the noise levels σ; each sample draws one uniformly.
    pub sigmas: Vec<f64>,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            projections: 1,
            projection: Projection::Rademacher,
            sigmas: vec![0.1],
        }
    }
}

/// The energy graph without outputs, with its E node, its `x` node and
/// x's shape.
struct Energy {
    g: Graph,
    e: NodeId,
    x: NodeId,
    shape: Vec<usize>,
}

impl Energy {
    fn of(energy: &Graph) -> Result<Energy, String> {
        let out = energy
            .outputs
            .first()
            .ok_or("the energy graph has no output")?;
        if !energy.shape(out.node).is_empty() {
            return Err(format!(
                "score matching needs an energy (one number per sample); `{}` returns shape {:?}",
                energy.name,
                energy.shape(out.node)
            ));
        }
        if energy.find_input("c").is_some() {
            return Err(format!(
                "`{}` is conditional (it has an input `c`); score matching trains unconditional energies",
                energy.name
            ));
        }
        let x_id = energy
            .find_input("x")
            .ok_or("the energy graph has no input `x`")?;
        let shape = energy.input(x_id).shape.clone();
        let mut g = energy.clone();
        let e = out.node;
        g.outputs.clear();
        let x = g.input_node("x", shape.clone(), InputKind::Sample);
        Ok(Energy { g, e, x, shape })
    }

    fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// ∇ₓE, shaped like x.
    fn grad(&mut self) -> NodeId {
        let one = self.g.scalar(1.0);
        let d = vjp(&mut self.g, self.e, one, &[self.x])[0];
        d.unwrap_or_else(|| self.g.fill(0.0, &self.shape))
    }

    /// ∇ₓ(∇ₓE·v) for a node `v` shaped like x: one HVP.
    fn hvp(&mut self, gx: NodeId, v: NodeId) -> NodeId {
        let d = vjp(&mut self.g, gx, v, &[self.x])[0];
        d.unwrap_or_else(|| self.g.fill(0.0, &self.shape))
    }

    fn dot(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let p = self.g.mul(a, b);
        self.g.sum_all(p)
    }

    /// ½‖∇ₓE‖² and ∇ₓE.
    fn half_norm(&mut self) -> (NodeId, NodeId) {
        let gx = self.grad();
        let sq = self.dot(gx, gx);
        let half = self.g.scalar(0.5);
        (self.g.mul(half, sq), gx)
    }

    /// Row `k` of a per-sample input holding rows shaped like x.
    fn row(&mut self, c: NodeId, k: usize) -> NodeId {
        let d = self.dim();
        let part = self.g.slice(c, 0, k * d, d);
        self.g.reshape(part, &self.shape.clone())
    }

    /// The graph returning (loss, E) per sample.
    fn finish(mut self, loss: NodeId, name: &str) -> Graph {
        let l = self.g.reshape(loss, &[1]);
        let e = self.g.reshape(self.e, &[1]);
        let pair = self.g.concat(vec![l, e], 0);
        self.g.name = format!("{}.{name}", self.g.name);
        self.g
            .add_output("loss_and_energy", pair, BatchReduce::PerSample);
        self.g
    }
}

/// ½‖∇ₓE‖² − tr ∇ₓ²E per sample, the trace from d HVPs against the basis.
pub fn exact_graph(energy: &Graph) -> Result<Graph, String> {
    let mut en = Energy::of(energy)?;
    let d = en.dim();
    if d > MAX_EXACT_DIM {
        return Err(format!(
            "exact score matching needs d = {d} Hessian-vector products per sample; it is limited to d ≤ {MAX_EXACT_DIM}: use `ssm` (sliced) or `dsm` (denoising)"
        ));
    }
    check_size(energy, d, "exact score matching")?;
    let (half, gx) = en.half_norm();
    let mut trace: Option<NodeId> = None;
    for i in 0..d {
        let mut basis = vec![0.0; d];
        basis[i] = 1.0;
        let e_i = en.g.constant_tensor(en.shape.clone(), basis);
        let column = en.hvp(gx, e_i);
        let h_ii = en.dot(column, e_i);
        trace = Some(match trace {
            Some(t) => en.g.add_(t, h_ii),
            None => h_ii,
        });
    }
    let trace = trace.ok_or("the energy has no coordinates")?;
    let loss = en.g.sub(half, trace);
    Ok(en.finish(loss, "sm_loss"))
}

/// ½‖∇ₓE‖² − (1/M) Σₘ vₘᵀ∇ₓ²E vₘ per sample, the M projections as rows of
/// the input `c` ([M·d]).
pub fn sliced_graph(energy: &Graph, projections: usize) -> Result<Graph, String> {
    if projections == 0 || projections > MAX_PROJECTIONS {
        return Err(format!(
            "sliced score matching takes 1 to {MAX_PROJECTIONS} projections, found {projections}"
        ));
    }
    check_size(energy, projections, "sliced score matching")?;
    let mut en = Energy::of(energy)?;
    let d = en.dim();
    let c =
        en.g.input_node("c", vec![projections * d], InputKind::Sample);
    let (half, gx) = en.half_norm();
    let mut quad: Option<NodeId> = None;
    for k in 0..projections {
        let v = en.row(c, k);
        let hv = en.hvp(gx, v);
        let q = en.dot(v, hv);
        quad = Some(match quad {
            Some(t) => en.g.add_(t, q),
            None => q,
        });
    }
    let quad = quad.ok_or("no projections")?;
    let mean = en.g.scalar(1.0 / projections as f64);
    let quad = en.g.mul(mean, quad);
    let loss = en.g.sub(half, quad);
    Ok(en.finish(loss, "ssm_loss"))
}

/// ½‖σ·∇ₓE(x) − ε‖² per sample at the noised point x, with `c` = (ε, σ)
/// ([d + 1]).
pub fn denoising_graph(energy: &Graph) -> Result<Graph, String> {
    let mut en = Energy::of(energy)?;
    let d = en.dim();
    let c = en.g.input_node("c", vec![d + 1], InputKind::Sample);
    let eps = en.row(c, 0);
    let sigma = en.g.slice(c, 0, d, 1);
    let sigma = en.g.reshape(sigma, &[]);
    let sigma = en.g.broadcast(sigma, &en.shape.clone());
    let gx = en.grad();
    let scaled = en.g.mul(sigma, gx);
    let r = en.g.sub(scaled, eps);
    let sq = en.dot(r, r);
    let half = en.g.scalar(0.5);
    let loss = en.g.mul(half, sq);
    Ok(en.finish(loss, "dsm_loss"))
}

/// `rows` × `m` projections of dimension `d` (row-major: sample, projection,
/// coordinate), keyed by `key`.
pub fn projections(kind: Projection, key: &Keyed, rows: usize, m: usize, d: usize) -> Vec<f64> {
    let n = rows * m * d;
    (0..n as u64)
        .map(|i| match kind {
            Projection::Gaussian => key.normal(i),
            Projection::Rademacher => {
                if key.bits(i) >> 63 == 0 {
                    1.0
                } else {
                    -1.0
                }
            }
        })
        .collect()
}

/// The noised points x̃ = x + σε and the inputs `c` = (ε, σ) of
/// [`denoising_graph`] for the rows of `x`, each row's σ drawn uniformly
/// from `sigmas`.
pub fn denoising_inputs(x: &[f64], d: usize, sigmas: &[f64], key: &Keyed) -> (Vec<f64>, Vec<f64>) {
    let rows = x.len() / d.max(1);
    let mut noised = Vec::with_capacity(x.len());
    let mut c = Vec::with_capacity(rows * (d + 1));
    for r in 0..rows {
        // Normals use positions 2i and 2i + 1 below 2·rows·d; the levels come after.
        let at = (2 * rows * d + r) as u64;
        let level = key.below(at, sigmas.len().max(1) as u64) as usize;
        let sigma = sigmas.get(level).copied().unwrap_or(1.0);
        for j in 0..d {
            let eps = key.normal((r * d + j) as u64);
            noised.push(x[r * d + j] + sigma * eps);
            c.push(eps);
        }
        c.push(sigma);
    }
    (noised, c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::BatchReduce;

    /// An energy of `n` chained operations on x: [2].
    fn chain(n: usize) -> Graph {
        let mut g = Graph::new("big");
        let x = g.input_node("x", vec![2], InputKind::Sample);
        let mut v = x;
        for _ in 0..n {
            v = g.unary(crate::ir::UnaryOp::Tanh, v);
        }
        let e = g.sum_all(v);
        g.add_output("energy", e, BatchReduce::PerSample);
        g
    }

    #[test]
    fn oversized_loss_graphs_are_refused_before_they_are_built() {
        let big = chain(100_000);
        let err = sliced_graph(&big, 64).unwrap_err();
        assert!(err.contains("the limit is"), "{err}");
        assert!(exact_graph(&chain(500_000)).is_err());
        assert!(sliced_graph(&chain(10), 4).is_ok());
    }
}
