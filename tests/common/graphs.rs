//! Graphs the backends are tested on against the reference interpreter
//! (`tests/jit_vs_interp.rs` for the CPU JIT, `tests/gpu.rs` for the GPU):
//! hand-built energies and gradients, one graph per op, seeded random
//! graphs, and the derivative graphs of every example energy.

#![allow(dead_code)]

use ebm::ir::{Axes, BatchReduce, BinaryOp, Graph, InputKind, NodeId, UnaryOp, numel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Inputs for a call of `g` over `batch` samples: f32-representable values
/// in [−2, 2), so both dtypes see the same inputs.
pub fn inputs_for(g: &Graph, batch: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    g.inputs()
        .iter()
        .map(|d| {
            let n = numel(&d.shape)
                * match d.kind {
                    InputKind::Sample => batch,
                    InputKind::Shared => 1,
                };
            (0..n)
                .map(|_| {
                    // f32-representable values so both dtypes see the same inputs.
                    (rng.random_range(-2.0f64..2.0) as f32) as f64
                })
                .collect()
        })
        .collect()
}

/// |got − want| ≤ rtol·(|want| + 1); NaN matches NaN, infinities match exactly.
pub fn close(a: f64, b: f64, rtol: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= rtol * (b.abs() + 1.0)
}

/// −logsumexp_k(−|x−μ_k|²/(2σ²)) and its hand-written gradient (W1).
pub fn gmm_graph() -> Graph {
    let mut g = Graph::new("gmm");
    let x = g.input_node("x", vec![2], InputKind::Sample);
    let mus: Vec<f64> = (0..8)
        .flat_map(|k| {
            let a = 2.0 * std::f64::consts::PI * k as f64 / 8.0;
            [2.0 * a.cos(), 2.0 * a.sin()]
        })
        .collect();
    let mu = g.constant_tensor(vec![8, 2], mus);
    let d = g.sub(x, mu); // [8,2]
    let d2 = g.mul(d, d);
    let sq = g.reduce_sum(d2, Axes::of(&[1])); // [8]
    let c = g.scalar(-1.0 / (2.0 * 0.01));
    let logits = g.mul(sq, c);
    let lse = g.logsumexp(logits, Axes::of(&[0]));
    let e = g.neg(lse);
    // softmax weights
    let lse_b = g.broadcast(lse, &[8]);
    let sh = g.sub(logits, lse_b);
    let w = g.unary(UnaryOp::Exp, sh);
    let w2 = g.reshape(w, &[8, 1]);
    let wd = g.mul(w2, d);
    let s = g.reduce_sum(wd, Axes::of(&[0]));
    let inv = g.scalar(1.0 / 0.01);
    let grad = g.mul(s, inv);
    g.add_output("E", e, BatchReduce::PerSample);
    g.add_output("grad", grad, BatchReduce::PerSample);
    g
}

/// A 2-h-h-1 SiLU MLP energy with its input gradient and batch-summed weight gradients.
pub fn mlp_graph(h: usize) -> Graph {
    let mut g = Graph::new("mlp");
    let x = g.input_node("x", vec![2], InputKind::Sample);
    let w1 = g.input_node("W1", vec![2, h], InputKind::Shared);
    let b1 = g.input_node("b1", vec![h], InputKind::Shared);
    let w2 = g.input_node("W2", vec![h, h], InputKind::Shared);
    let b2 = g.input_node("b2", vec![h], InputKind::Shared);
    let w3 = g.input_node("W3", vec![h, 1], InputKind::Shared);
    let z1 = g.matmul(x, w1);
    let z1 = g.add_(z1, b1);
    let s1 = g.unary(UnaryOp::Sigmoid, z1);
    let h1 = g.mul(z1, s1);
    let z2 = g.matmul(h1, w2);
    let z2 = g.add_(z2, b2);
    let s2 = g.unary(UnaryOp::Sigmoid, z2);
    let h2 = g.mul(z2, s2);
    let e = g.matmul(h2, w3); // [1]
    let e = g.reshape(e, &[]);
    // backward: silu'(z) = s(1 + z(1 − s))
    let silu_d = |g: &mut Graph, z: NodeId, s: NodeId| {
        let one = g.fill(1.0, g.shape(s).to_vec().as_slice());
        let oms = g.sub(one, s);
        let zo = g.mul(z, oms);
        let t = g.add_(one, zo);
        g.mul(s, t)
    };
    let w3v = g.reshape(w3, &[h]);
    let d2 = silu_d(&mut g, z2, s2);
    let g2 = g.mul(w3v, d2);
    let w2t = g.transpose(w2, &[1, 0]);
    let gh1 = g.matmul(g2, w2t);
    let d1 = silu_d(&mut g, z1, s1);
    let g1 = g.mul(gh1, d1);
    let w1t = g.transpose(w1, &[1, 0]);
    let gx = g.matmul(g1, w1t);
    // dE/dW2 = h1ᵀ g2 (batch-summed outer product)
    let h1c = g.reshape(h1, &[h, 1]);
    let g2r = g.reshape(g2, &[1, h]);
    let gw2 = g.matmul(h1c, g2r);
    g.add_output("E", e, BatchReduce::PerSample);
    g.add_output("grad_x", gx, BatchReduce::PerSample);
    g.add_output("grad_W2", gw2, BatchReduce::Sum);
    g.add_output("E_sum", e, BatchReduce::Sum);
    g
}

/// Invariant outputs (per-sample and batch-summed), products of shared inputs.
pub fn invariant_graph() -> Graph {
    let mut g = Graph::new("inv");
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let w = g.input_node("w", vec![3, 3], InputKind::Shared);
    let wt = g.transpose(w, &[1, 0]);
    let ww = g.matmul(w, wt);
    let tr = g.unary(UnaryOp::Tanh, ww);
    let y = g.matmul(x, tr);
    let s = g.sum_all(tr);
    g.add_output("y", y, BatchReduce::PerSample);
    g.add_output("s", s, BatchReduce::PerSample);
    g.add_output("s_sum", s, BatchReduce::Sum);
    g.add_output("w", w, BatchReduce::PerSample);
    let c = g.scalar(2.5);
    g.add_output("c", c, BatchReduce::Sum);
    g.add_output("x", x, BatchReduce::Sum);
    g
}

pub const UNARY: [UnaryOp; 13] = {
    use UnaryOp::*;
    [
        Neg, Exp, Log, Log1p, Sqrt, Abs, Sign, Step, Sin, Cos, Tanh, Sigmoid, Softplus,
    ]
};

pub const BINARY: [BinaryOp; 9] = {
    use BinaryOp::*;
    [Add, Sub, Mul, Div, Pow, Max, Min, Gt, Ge]
};

/// `op(3x)` for a sample input x of 5 values.
pub fn unary_graph(op: UnaryOp) -> Graph {
    let mut g = Graph::new("u");
    let x = g.input_node("x", vec![5], InputKind::Sample);
    let three = g.fill(3.0, &[5]);
    let x3 = g.mul(x, three);
    let y = g.unary(op, x3);
    g.add_output("y", y, BatchReduce::PerSample);
    g
}

/// `op(x, w)` per sample and `op(w, x)` batch-summed (|x| for `Pow`).
pub fn binary_graph(op: BinaryOp) -> Graph {
    let mut g = Graph::new("b");
    let x = g.input_node("x", vec![4], InputKind::Sample);
    let w = g.input_node("w", vec![4], InputKind::Shared);
    let a = if op == BinaryOp::Pow {
        g.unary(UnaryOp::Abs, x)
    } else {
        x
    };
    let y = g.binary(op, a, w);
    let z = g.binary(op, w, a);
    g.add_output("y", y, BatchReduce::PerSample);
    g.add_output("z", z, BatchReduce::Sum);
    g
}

// ---------------------------------------------------------------------------
// Random well-shaped graphs over every op.

struct Gen {
    rng: StdRng,
    g: Graph,
    pool: Vec<NodeId>,
    /// Nodes whose values are exact functions of the inputs (safe operands
    /// for discontinuous ops: step, sign, comparisons).
    exact: Vec<NodeId>,
}

impl Gen {
    fn pick(&mut self) -> NodeId {
        // Prefer recent nodes so graphs grow deep.
        let n = self.pool.len();
        let i = if self.rng.random_bool(0.6) {
            n - 1 - self.rng.random_range(0..n.min(4))
        } else {
            self.rng.random_range(0..n)
        };
        self.pool[i]
    }
    fn pick_exact(&mut self) -> NodeId {
        let i = self.rng.random_range(0..self.exact.len());
        self.exact[i]
    }
    fn shape(&self, n: NodeId) -> Vec<usize> {
        self.g.shape(n).to_vec()
    }
    /// Brings `b` to `a`'s shape: broadcast when possible, else sum to a scalar first.
    fn conform(&mut self, b: NodeId, shape: &[usize]) -> NodeId {
        let bs = self.shape(b);
        if bs == shape {
            return b;
        }
        if ebm::ir::op::broadcasts_to(&bs, shape) {
            return self.g.broadcast(b, shape);
        }
        let s = self.g.sum_all(b);
        let s = self.squash(s);
        self.g.broadcast(s, shape)
    }
    /// Keeps magnitudes moderate: 3·tanh(x/3).
    fn squash(&mut self, x: NodeId) -> NodeId {
        let s = self.shape(x);
        let c = self.g.fill(1.0 / 3.0, &s);
        let y = self.g.mul(x, c);
        let t = self.g.unary(UnaryOp::Tanh, y);
        let c3 = self.g.fill(3.0, &s);
        self.g.mul(t, c3)
    }
    fn positive(&mut self, x: NodeId) -> NodeId {
        let s = self.shape(x);
        let sp = self.g.unary(UnaryOp::Softplus, x);
        let c = self.g.fill(0.1, &s);
        self.g.add_(sp, c)
    }
    fn step(&mut self) {
        use UnaryOp::*;
        let choice = self.rng.random_range(0..20);
        let a = self.pick();
        let sa = self.shape(a);
        let new = match choice {
            0..=3 => {
                let op = [
                    Neg, Exp, Log, Log1p, Sqrt, Abs, Sin, Cos, Tanh, Sigmoid, Softplus,
                ][self.rng.random_range(0..11)];
                let arg = match op {
                    Exp => self.squash(a),
                    Log | Sqrt => self.positive(a),
                    Log1p => self.g.unary(Abs, a),
                    _ => a,
                };
                self.g.unary(op, arg)
            }
            4..=7 => {
                use BinaryOp::*;
                let op = [Add, Sub, Mul, Div, Pow, Max, Min][self.rng.random_range(0..7)];
                let b = self.pick();
                let b = self.conform(b, &sa);
                match op {
                    Div => {
                        let d = self.positive(b);
                        self.g.binary(Div, a, d)
                    }
                    Pow => {
                        let base = self.positive(a);
                        let e = self.g.unary(Tanh, b);
                        self.g.binary(Pow, base, e)
                    }
                    _ => self.g.binary(op, a, b),
                }
            }
            8 => {
                let c = [2.0, 3.0, -1.0, 0.5, 1.5][self.rng.random_range(0..5)];
                let p = self.positive(a);
                self.g.powc(p, c)
            }
            9 => {
                // Discontinuous ops only on exact values.
                let e = self.pick_exact();
                let se = self.shape(e);
                let a = self.conform(a, &se);
                match self.rng.random_range(0..4) {
                    0 => self.g.unary(Sign, e),
                    1 => self.g.unary(Step, e),
                    2 => {
                        let e2 = self.pick_exact();
                        let e2 = self.conform(e2, &se);
                        let op = if self.rng.random_bool(0.5) {
                            BinaryOp::Gt
                        } else {
                            BinaryOp::Ge
                        };
                        self.g.binary(op, e, e2)
                    }
                    _ => {
                        let b = self.pick();
                        let b = self.conform(b, &se);
                        self.g.select(e, a, b)
                    }
                }
            }
            10 | 11 if !sa.is_empty() => {
                let mut axes = vec![];
                for i in 0..sa.len() {
                    if self.rng.random_bool(0.5) {
                        axes.push(i);
                    }
                }
                if axes.is_empty() {
                    axes.push(self.rng.random_range(0..sa.len()));
                }
                match self.rng.random_range(0..3) {
                    0 => self.g.reduce_sum(a, Axes::of(&axes)),
                    1 => self.g.reduce_max(a, Axes::of(&axes)),
                    _ => self.g.logsumexp(a, Axes::of(&axes)),
                }
            }
            12 if sa.len() == 2 => self.g.transpose(a, &[1, 0]),
            12 => {
                let n = numel(&sa);
                self.g.reshape(a, &[n])
            }
            13 if !sa.is_empty() => {
                let axis = self.rng.random_range(0..sa.len());
                if sa[axis] < 2 {
                    self.g.stop_gradient(a)
                } else {
                    let len = self.rng.random_range(1..sa[axis]);
                    let start = self.rng.random_range(0..=sa[axis] - len);
                    self.g.slice(a, axis, start, len)
                }
            }
            14 if !sa.is_empty() => {
                let b = self.pick();
                let b = self.conform(b, &sa);
                let axis = self.rng.random_range(0..sa.len());
                self.g.concat(vec![a, b], axis)
            }
            15 => {
                let k = self.rng.random_range(2..4);
                let mut s = vec![k];
                s.extend_from_slice(&sa);
                self.g.broadcast(a, &s)
            }
            16..=18 => {
                // Matrix products: per-sample × shared, shared × per-sample,
                // per-sample × per-sample (incl. outer products).
                let b = self.pick();
                let sb = self.shape(b);
                let (x, y) = match (sa.len(), sb.len()) {
                    (1, 1) if self.rng.random_bool(0.5) => {
                        let x = self.g.reshape(a, &[sa[0], 1]);
                        let y = self.g.reshape(b, &[1, sb[0]]);
                        (x, y)
                    }
                    _ => {
                        let k = *sa.last().unwrap_or(&1);
                        let rows = numel(&sa) / k;
                        let a2 = if sa.len() == 1 {
                            a
                        } else {
                            self.g.reshape(a, &[rows, k])
                        };
                        let n = self.rng.random_range(1..5);
                        let w =
                            self.g
                                .input_node(format!("w{}x{n}", k), vec![k, n], InputKind::Shared);
                        if self.rng.random_bool(0.7) {
                            (a2, w)
                        } else {
                            // wᵀ @ aᵀ: [n,k] @ [k] or [k,rows]
                            let wt = self.g.transpose(w, &[1, 0]);
                            let at = if sa.len() == 1 {
                                a2
                            } else {
                                self.g.transpose(a2, &[1, 0])
                            };
                            (wt, at)
                        }
                    }
                };
                let m = self.g.matmul(x, y);
                self.squash(m)
            }
            _ => self.g.stop_gradient(a),
        };
        if numel(self.g.shape(new)) <= 64 {
            self.pool.push(new);
        }
    }
}

pub fn random_graph(seed: u64, steps: usize) -> Graph {
    let mut g = Graph::new("random");
    let x = g.input_node("x", vec![2, 3], InputKind::Sample);
    let y = g.input_node("y", vec![3], InputKind::Sample);
    let w = g.input_node("w", vec![3], InputKind::Shared);
    let c = g.constant_tensor(vec![2, 3], vec![0.5, -1.0, 2.0, 0.25, 1.5, -0.75]);
    let s = g.scalar(0.7);
    let mut gr = Gen {
        rng: StdRng::seed_from_u64(seed),
        g,
        pool: vec![x, y, w, c, s],
        exact: vec![x, y, w, c],
    };
    for _ in 0..steps {
        gr.step();
    }
    let n = gr.pool.len();
    let mut outs = vec![gr.pool[n - 1]];
    for _ in 0..gr.rng.random_range(0..3) {
        outs.push(gr.pick());
    }
    for (i, o) in outs.into_iter().enumerate() {
        let reduce = if gr.rng.random_bool(0.3) {
            BatchReduce::Sum
        } else {
            BatchReduce::PerSample
        };
        gr.g.add_output(format!("o{i}"), o, reduce);
    }
    gr.g
}

// ---------------------------------------------------------------------------
// Derivative graphs from `ebm::autodiff` (∇ₓE, ∇_θE, HVP, mixed θ-x product),
// optimised as the runtime compiles them.

pub fn all_derivatives(energy: &Graph) -> Graph {
    use ebm::autodiff::derived::{KernelSpec, derive};
    let g = derive(energy, KernelSpec::ALL).unwrap();
    ebm::opt::optimize(&g, ebm::opt::Config::default())
}

/// A random energy: a scalar built from the random graph's last node.
pub fn random_energy(seed: u64, steps: usize) -> Graph {
    let mut g = random_graph(seed, steps);
    let last = g.outputs[0].node;
    g.outputs.clear();
    let s = g.sum_all(last);
    let c = g.scalar(0.25);
    let s = g.mul(s, c);
    let e = g.unary(UnaryOp::Tanh, s);
    g.add_output("energy", e, BatchReduce::PerSample);
    g
}

/// Every energy of `examples/*.ebm` with all its derivative kernels
/// (∇ₓE, ∇_θE, HVP, the mixed product), optimised as the runtime compiles them.
pub fn example_derivative_graphs() -> Vec<Graph> {
    use ebm::pipeline::{SourceFile, analyze};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("ebm"))
        .collect();
    paths.sort();
    let mut graphs = vec![];
    for path in paths {
        let file = SourceFile::read(&path).unwrap();
        let module = analyze(&file).unwrap();
        for def in &module.defs {
            if def.kind != ebm::sema::DefKind::Energy {
                continue;
            }
            if let Ok(energy) = ebm::lower::lower(&module, &def.name) {
                graphs.push(all_derivatives(&energy));
            }
        }
    }
    graphs
}
