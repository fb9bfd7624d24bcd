//! JEM (Grathwohl et al. 2020): a classifier's logits f(x) ∈ ℝᴷ read as
//! energies, E(x) = −logsumexp_y f(x)[y] and E(x | y) = −f(x)[y], and the
//! joint objective cross-entropy(f(x⁺), y) + w·(mean E(x⁺) − mean E(x⁻))
//! that trains p(y|x) and p(x) together.
//!
//! Everything here is a graph built from the model's own graph, so the
//! energies share the model's parameters (one store) and compile like any
//! other definition:
//! * [`energy_graph`]: E(x), what the SGLD negatives sample;
//! * [`conditional_graph`]: E(x | c) = −f(x)·c for a one-hot `c` (input
//!   `c`), the class-conditional energy;
//! * [`loss_graph`]: per sample (logsumexp f, f·c, max f). The whole JEM
//!   loss is Σ_b α_b·lse_b + β_b·(f·c)_b over concat(x⁺, x⁻) with constant
//!   (α, β) ([`seeds`]), so its θ-gradient is one pullback of this triple,
//!   the same single call CD's loss takes; max f gives the batch accuracy.
//!
//! The plain-classifier baseline is the same loss with w = 0 and no
//! negatives.

use crate::ir::{Axes, BatchReduce, BinaryOp, Graph, InputKind, NodeId};

/// Values per sample of [`loss_graph`].
pub const LOSS_VALUES: usize = 3;

/// A copy of the model graph with its logits node and class count.
fn logits_of(model: &Graph) -> Result<(Graph, NodeId, usize), String> {
    let out = model
        .outputs
        .first()
        .ok_or("the model graph has no output")?;
    let shape = model.shape(out.node);
    let k = match shape {
        [k] if *k >= 2 => *k,
        _ => {
            return Err(format!(
                "`{}` must return a vector of at least 2 logits (model f(x) -> [K]); it returns shape {shape:?}",
                model.name
            ));
        }
    };
    if model.find_input("c").is_some() {
        return Err(format!(
            "`{}` already has an input `c`; a classifier takes x only",
            model.name
        ));
    }
    let mut g = model.clone();
    g.outputs.clear();
    Ok((g, out.node, k))
}

/// E(x) = −logsumexp_y f(x)[y].
pub fn energy_graph(model: &Graph) -> Result<Graph, String> {
    let (mut g, f, _) = logits_of(model)?;
    let lse = g.logsumexp(f, Axes::all(1));
    let e = g.neg(lse);
    g.name = format!("{}.energy", model.name);
    g.add_output("energy", e, BatchReduce::PerSample);
    Ok(g)
}

/// E(x | c) = −f(x)·c (c one-hot: −f(x)[y]).
pub fn conditional_graph(model: &Graph) -> Result<Graph, String> {
    let (mut g, f, k) = logits_of(model)?;
    let c = g.input_node("c", vec![k], InputKind::Sample);
    let fc = dot(&mut g, f, c);
    let e = g.neg(fc);
    g.name = format!("{}.conditional", model.name);
    g.add_output("energy", e, BatchReduce::PerSample);
    Ok(g)
}

/// Per sample (logsumexp f(x), f(x)·c, max f(x)), with a per-sample input
/// `c` (the one-hot label of a positive, zeros for a negative).
pub fn loss_graph(model: &Graph) -> Result<Graph, String> {
    let (mut g, f, k) = logits_of(model)?;
    let c = g.input_node("c", vec![k], InputKind::Sample);
    let lse = g.logsumexp(f, Axes::all(1));
    let fc = dot(&mut g, f, c);
    let top = g.reduce_max(f, Axes::all(1));
    let top = g.stop_gradient(top);
    let parts: Vec<NodeId> = [lse, fc, top].iter().map(|&v| g.reshape(v, &[1])).collect();
    let triple = g.concat(parts, 0);
    g.name = format!("{}.jem_loss", model.name);
    g.add_output("lse_fc_max", triple, BatchReduce::PerSample);
    Ok(g)
}

fn dot(g: &mut Graph, a: NodeId, b: NodeId) -> NodeId {
    let p = g.binary(BinaryOp::Mul, a, b);
    g.reduce_sum(p, Axes::all(1))
}

/// `labels` one-hot in rows of `classes`, followed by `zero_rows` rows of
/// zeros (the negatives).
pub fn one_hot(labels: &[usize], classes: usize, zero_rows: usize) -> Vec<f64> {
    let mut c = vec![0.0; (labels.len() + zero_rows) * classes];
    for (i, &y) in labels.iter().enumerate() {
        c[i * classes + y] = 1.0;
    }
    c
}

/// The (α, β, 0) seeds of the loss triple for `pos` positives followed by
/// `neg` negatives: CE = mean(lse − f·c) over the positives, plus
/// `weight`·(mean E(x⁺) − mean E(x⁻)) with E = −lse.
pub fn seeds(pos: usize, neg: usize, weight: f64) -> Vec<f64> {
    let (p, n) = (pos.max(1) as f64, neg.max(1) as f64);
    let mut s = Vec::with_capacity((pos + neg) * LOSS_VALUES);
    for _ in 0..pos {
        s.extend([(1.0 - weight) / p, -1.0 / p, 0.0]);
    }
    for _ in 0..neg {
        s.extend([weight / n, 0.0, 0.0]);
    }
    s
}

/// One batch's terms, from the loss triples (positives first).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JemValue {
    pub loss: f64,
    /// Cross-entropy of the positives.
    pub ce: f64,
    /// Fraction of positives whose label has the largest logit.
    pub acc: f64,
    pub e_pos: f64,
    /// NaN without negatives.
    pub e_neg: f64,
}

pub fn value(triples: &[f64], pos: usize, weight: f64) -> JemValue {
    let rows: Vec<&[f64]> = triples.chunks_exact(LOSS_VALUES).collect();
    let (p, n) = rows.split_at(pos.min(rows.len()));
    let mean = |v: &mut dyn Iterator<Item = f64>, count: usize| {
        if count == 0 {
            f64::NAN
        } else {
            v.sum::<f64>() / count as f64
        }
    };
    let ce = mean(&mut p.iter().map(|r| r[0] - r[1]), p.len());
    let acc = mean(
        &mut p.iter().map(|r| if r[1] >= r[2] { 1.0 } else { 0.0 }),
        p.len(),
    );
    let e_pos = mean(&mut p.iter().map(|r| -r[0]), p.len());
    let e_neg = mean(&mut n.iter().map(|r| -r[0]), n.len());
    let px = if n.is_empty() { 0.0 } else { e_pos - e_neg };
    JemValue {
        loss: ce + weight * px,
        ce,
        acc,
        e_pos,
        e_neg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::interp;

    /// A 2 → 3 linear model with fixed weights.
    fn model() -> Graph {
        let mut g = Graph::new("f");
        let x = g.input_node("x", vec![2], InputKind::Sample);
        let w = g.constant_tensor(vec![2, 3], vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75]);
        let f = g.matmul(x, w);
        g.add_output("f", f, BatchReduce::PerSample);
        g
    }

    /// One sample through `g`, inputs in declaration order.
    fn run(g: &Graph, inputs: &[Vec<f64>]) -> Vec<f64> {
        let refs: Vec<&[f64]> = inputs.iter().map(|v| v.as_slice()).collect();
        interp::eval(g, &refs, 1).expect("evaluates").remove(0)
    }

    #[test]
    fn energies_and_loss_triple_match_their_definitions() {
        let x = vec![0.3, -1.2];
        let f = run(&model(), std::slice::from_ref(&x));
        let lse = f.iter().map(|v| v.exp()).sum::<f64>().ln();
        let e = run(&energy_graph(&model()).unwrap(), std::slice::from_ref(&x));
        assert!((e[0] + lse).abs() < 1e-12);
        let c = vec![0.0, 1.0, 0.0];
        let ec = run(
            &conditional_graph(&model()).unwrap(),
            &[x.clone(), c.clone()],
        );
        assert!((ec[0] + f[1]).abs() < 1e-12);
        let t = run(&loss_graph(&model()).unwrap(), &[x, c]);
        let top = f.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!((t[0] - lse).abs() < 1e-12 && (t[1] - f[1]).abs() < 1e-12 && t[2] == top);
    }

    #[test]
    fn loss_value_and_seeds_agree() {
        // Two positives, one negative: seeds·triples equals the loss up to
        // the constant max terms (seeded 0).
        let triples = [2.0, 1.5, 1.5, 1.0, -0.5, 0.7, 3.0, 0.0, 2.9];
        let v = value(&triples, 2, 0.5);
        let ce = ((2.0 - 1.5) + (1.0 + 0.5)) / 2.0;
        assert!((v.ce - ce).abs() < 1e-15);
        assert_eq!(v.acc, 0.5);
        let s = seeds(2, 1, 0.5);
        let dotted: f64 = s.iter().zip(&triples).map(|(a, b)| a * b).sum();
        assert!((dotted - v.loss).abs() < 1e-12, "{dotted} vs {}", v.loss);
    }

    #[test]
    fn a_model_without_a_logit_vector_is_refused() {
        let mut g = Graph::new("e");
        let x = g.input_node("x", vec![2], InputKind::Sample);
        let s = g.reduce_sum(x, Axes::all(1));
        g.add_output("e", s, BatchReduce::PerSample);
        assert!(energy_graph(&g).unwrap_err().contains("at least 2 logits"));
    }
}
