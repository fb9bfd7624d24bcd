//! A seeded generator of random, well-shaped energy graphs over every op, used
//! by the property tests (autodiff vs finite differences, optimiser vs
//! unoptimised, and later backends vs the interpreter). Expressions are built
//! to stay inside each op's smooth domain (log of 1+a², division by 1+b², ...)
//! so that finite differences are meaningful.

#![allow(dead_code)]

use ebm::ir::{Axes, BatchReduce, BinaryOp, Graph, InputKind, NodeId, UnaryOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct RandomEnergy {
    pub graph: Graph,
    /// Values for every input in declaration order (x first, one sample).
    pub dims: Vec<usize>,
}

pub fn random_energy(seed: u64, depth: usize) -> Graph {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut g = Graph::new(format!("rand{seed}"));
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let w = g.input_node("w", vec![3, 2], InputKind::Shared);
    let b = g.input_node("b", vec![2], InputKind::Shared);
    let leaves = [x, w, b];
    let mut pool: Vec<NodeId> = leaves.to_vec();
    let mut e = None;
    for _ in 0..depth {
        let a = pool[rng.random_range(0..pool.len())];
        let c = pool[rng.random_range(0..pool.len())];
        let n = random_op(&mut g, &mut rng, a, c, x, w, b);
        pool.push(n);
        let s = g.sum_all(n);
        e = Some(match e {
            None => s,
            Some(prev) => g.add_(prev, s),
        });
    }
    // Always depend on x and the parameters, nonlinearly.
    let xw = g.matmul(x, w);
    let xwb = g.add_(xw, b);
    let t = g.unary(UnaryOp::Tanh, xwb);
    let st = g.sum_all(t);
    let energy = g.add_(e.unwrap(), st);
    g.add_output("energy", energy, BatchReduce::PerSample);
    g
}

fn positive(g: &mut Graph, a: NodeId) -> NodeId {
    let sq = g.mul(a, a);
    let one = g.scalar(1.0);
    g.add_(one, sq)
}

fn squash(g: &mut Graph, a: NodeId) -> NodeId {
    g.unary(UnaryOp::Tanh, a)
}

/// Brings `c` to the shape of `a` (sum to a scalar, then broadcast).
fn conform(g: &mut Graph, a: NodeId, c: NodeId) -> NodeId {
    if g.shape(a) == g.shape(c) {
        return c;
    }
    let s = g.sum_all(c);
    let s = squash(g, s);
    let shape = g.shape(a).to_vec();
    g.broadcast(s, &shape)
}

fn random_op(
    g: &mut Graph,
    rng: &mut StdRng,
    a: NodeId,
    c: NodeId,
    x: NodeId,
    w: NodeId,
    b: NodeId,
) -> NodeId {
    let c = conform(g, a, c);
    match rng.random_range(0..30) {
        0 => g.unary(UnaryOp::Neg, a),
        1 => {
            let t = squash(g, a);
            g.unary(UnaryOp::Exp, t)
        }
        2 => {
            let p = positive(g, a);
            g.unary(UnaryOp::Log, p)
        }
        3 => {
            let sq = g.mul(a, a);
            g.unary(UnaryOp::Log1p, sq)
        }
        4 => {
            let p = positive(g, a);
            g.unary(UnaryOp::Sqrt, p)
        }
        5 => g.unary(UnaryOp::Abs, a),
        6 => g.unary(UnaryOp::Sin, a),
        7 => g.unary(UnaryOp::Cos, a),
        8 => g.unary(UnaryOp::Tanh, a),
        9 => g.unary(UnaryOp::Sigmoid, a),
        10 => g.unary(UnaryOp::Softplus, a),
        11 => {
            let p = positive(g, a);
            let exps = [2.0, 3.0, 0.5, -1.0, -1.5];
            g.powc(p, exps[rng.random_range(0..exps.len())])
        }
        12 => g.add_(a, c),
        13 => g.sub(a, c),
        14 => g.mul(a, c),
        15 => {
            let p = positive(g, c);
            g.div(a, p)
        }
        16 => {
            let p = positive(g, a);
            let t = squash(g, c);
            g.binary(BinaryOp::Pow, p, t)
        }
        17 => g.binary(BinaryOp::Max, a, c),
        18 => g.binary(BinaryOp::Min, a, c),
        19 => {
            let cond = g.binary(BinaryOp::Gt, a, c);
            g.select(cond, a, c)
        }
        20 => {
            let s = g.sum_all(a);
            let shape = [4, 3];
            g.broadcast(s, &shape)
        }
        21 => {
            let rank = g.shape(a).len();
            g.reduce_max(a, Axes::all(rank))
        }
        22 => {
            let rank = g.shape(a).len();
            g.logsumexp(a, Axes::all(rank))
        }
        23 => {
            // stop_gradient where it cannot change a derivative: a shift that cancels.
            let m = g.sum_all(a);
            let m = g.stop_gradient(m);
            let shape = g.shape(a).to_vec();
            let mb = g.broadcast(m, &shape);
            let shifted = g.sub(a, mb);
            g.add_(shifted, mb)
        }
        24 => {
            let xw = g.matmul(x, w);
            g.mul(xw, b)
        }
        25 => {
            // matrix @ vector and a transpose
            let wt = g.transpose(w, &[1, 0]);
            let t = squash(g, x);
            g.matmul(wt, t)
        }
        26 => {
            // A contiguous and a strided slice (x[1:3] + x[::2]).
            let lo = g.slice(x, 0, 1, 2);
            let every_other = g.slice_step(x, 0, 0, 2, 2);
            let lo = g.add_(lo, every_other);
            g.concat(vec![lo, b, x], 0)
        }
        27 => {
            let outer = {
                let col = g.reshape(x, &[3, 1]);
                let row = g.reshape(b, &[1, 2]);
                g.matmul(col, row)
            };
            let m = g.mul(outer, w);
            g.reduce_sum(m, Axes::of(&[0]))
        }
        28 => g.dot_self(a),
        _ => {
            let s = g.unary(UnaryOp::Sign, a);
            let st = g.unary(UnaryOp::Step, c);
            let m = g.mul(s, st);
            g.mul(m, a)
        }
    }
}

trait DotSelf {
    fn dot_self(&mut self, a: NodeId) -> NodeId;
}

impl DotSelf for Graph {
    /// A [k]@[k] product when `a` is a vector, else a plain square.
    fn dot_self(&mut self, a: NodeId) -> NodeId {
        if self.shape(a).len() == 1 {
            self.matmul(a, a)
        } else {
            self.mul(a, a)
        }
    }
}

/// Deterministic input values for a graph's inputs (one sample).
pub fn random_inputs(g: &Graph, seed: u64, batch: usize) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    g.inputs()
        .iter()
        .map(|d| {
            let n: usize = d.shape.iter().product::<usize>()
                * if d.kind == InputKind::Sample {
                    batch
                } else {
                    1
                };
            (0..n).map(|_| rng.random_range(-1.5..1.5)).collect()
        })
        .collect()
}
