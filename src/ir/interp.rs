//! The reference interpreter: evaluates a graph one batch element at a time,
//! op by op, in f64 or f32. It is deliberately simple — it is the oracle that
//! every compiled backend is tested against, so it must be obviously correct,
//! not fast.

use super::{BatchReduce, BinaryOp, Graph, InputKind, Op, Real, numel, op};

/// Evaluates all outputs of `g` over a batch.
///
/// `inputs[i]` holds input `i`: `batch × numel` values (batch-major) for a
/// `Sample` input, `numel` values for a `Shared` one. Returns one vector per
/// output: `batch × numel` values for per-sample outputs, `numel` for batch sums.
pub fn eval<T: Real>(g: &Graph, inputs: &[&[T]], batch: usize) -> Result<Vec<Vec<T>>, String> {
    check_inputs(g, inputs, batch)?;
    let live = g.live(&[]);
    let mut outs: Vec<Vec<T>> = g
        .outputs
        .iter()
        .map(|o| {
            let n = numel(g.shape(o.node));
            match o.reduce {
                BatchReduce::PerSample => Vec::with_capacity(batch * n),
                BatchReduce::Sum => vec![T::zero(); n],
            }
        })
        .collect();
    let mut values: Vec<Vec<T>> = vec![Vec::new(); g.len()];
    for b in 0..batch {
        for id in g.ids() {
            if live[id.index()] {
                values[id.index()] = eval_node(g, id, &values, inputs, b);
            }
        }
        for (slot, o) in outs.iter_mut().zip(&g.outputs) {
            let v = &values[o.node.index()];
            match o.reduce {
                BatchReduce::PerSample => slot.extend_from_slice(v),
                BatchReduce::Sum => {
                    for (acc, x) in slot.iter_mut().zip(v) {
                        *acc = T::binary(BinaryOp::Add, *acc, *x);
                    }
                }
            }
        }
    }
    Ok(outs)
}

/// Checks that `inputs` match the graph's input declarations for `batch`.
pub fn check_inputs<T>(g: &Graph, inputs: &[&[T]], batch: usize) -> Result<(), String> {
    check_input_lens(g, inputs.len(), |i| inputs[i].len(), batch)
}

/// [`check_inputs`] on the lengths alone: `count` inputs, input `i` of
/// `len(i)` values (a device backend's inputs need not be host slices).
pub fn check_input_lens(
    g: &Graph,
    count: usize,
    len: impl Fn(usize) -> usize,
    batch: usize,
) -> Result<(), String> {
    if count != g.inputs().len() {
        return Err(format!(
            "graph {} takes {} inputs, got {count}",
            g.name,
            g.inputs().len(),
        ));
    }
    for (i, decl) in g.inputs().iter().enumerate() {
        let want = match decl.kind {
            InputKind::Sample => batch * numel(&decl.shape),
            InputKind::Shared => numel(&decl.shape),
        };
        if len(i) != want {
            return Err(format!(
                "input {} needs {want} values, got {}",
                decl.name,
                len(i)
            ));
        }
    }
    Ok(())
}

fn eval_node<T: Real>(
    g: &Graph,
    id: super::NodeId,
    values: &[Vec<T>],
    inputs: &[&[T]],
    b: usize,
) -> Vec<T> {
    let node = g.node(id);
    let arg = |i: usize| &values[node.args[i].index()][..];
    let arg_shape = |i: usize| g.shape(node.args[i]);
    match node.op {
        Op::Scalar(v) => vec![T::from_f64(v.get())],
        Op::Const(c) => g.constant(c).data.iter().map(|&v| T::from_f64(v)).collect(),
        Op::Input(i) => {
            let n = numel(&node.shape);
            match g.input(i).kind {
                InputKind::Sample => inputs[i.index()][b * n..(b + 1) * n].to_vec(),
                InputKind::Shared => inputs[i.index()].to_vec(),
            }
        }
        Op::Unary(u) => arg(0).iter().map(|&x| T::unary(u, x)).collect(),
        Op::PowConst(c) => {
            let c = T::from_f64(c.get());
            arg(0).iter().map(|&x| op::pow_const(x, c)).collect()
        }
        Op::Binary(op) => arg(0)
            .iter()
            .zip(arg(1))
            .map(|(&a, &b)| T::binary(op, a, b))
            .collect(),
        Op::Select => (0..arg(0).len())
            .map(|i| op::select(arg(0)[i], arg(1)[i], arg(2)[i]))
            .collect(),
        Op::StopGradient => arg(0).to_vec(),
        Op::Broadcast => broadcast(arg(0), arg_shape(0), &node.shape),
        Op::Sum(axes) => reduce(arg(0), arg_shape(0), axes, T::zero(), |a, x| {
            T::binary(BinaryOp::Add, a, x)
        }),
        Op::Max(axes) => reduce(
            arg(0),
            arg_shape(0),
            axes,
            T::from_f64(op::MAX_IDENTITY),
            |a, x| T::binary(BinaryOp::Max, a, x),
        ),
        Op::Reshape => arg(0).to_vec(),
        Op::Transpose(p) => transpose(arg(0), arg_shape(0), &p.as_vec()),
        Op::Slice { axis, start, step } => slice(
            arg(0),
            arg_shape(0),
            axis as usize,
            (start as usize, step as usize),
            node.shape[axis as usize],
        ),
        Op::Scan {
            body,
            seqs,
            reverse,
        } => {
            let args: Vec<&[T]> = (0..node.args.len()).map(arg).collect();
            scan(g.body(body), &args, seqs as usize, reverse, node.shape[0])
        }
        Op::Concat { axis } => {
            let parts: Vec<(&[T], &[usize])> = (0..node.args.len())
                .map(|i| (arg(i), arg_shape(i)))
                .collect();
            concat(&parts, axis as usize)
        }
        Op::MatMul => matmul(arg(0), arg_shape(0), arg(1), arg_shape(1)),
    }
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Multi-index of a flat row-major position.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for i in (0..shape.len()).rev() {
        idx[i] = flat % shape[i];
        flat /= shape[i];
    }
    idx
}

fn broadcast<T: Real>(x: &[T], from: &[usize], to: &[usize]) -> Vec<T> {
    let offset = to.len() - from.len();
    let st = strides(from);
    (0..numel(to))
        .map(|flat| {
            let idx = unravel(flat, to);
            let src: usize = (0..from.len())
                .map(|i| {
                    if from[i] == 1 {
                        0
                    } else {
                        idx[i + offset] * st[i]
                    }
                })
                .sum();
            x[src]
        })
        .collect()
}

fn reduce<T: Real>(
    x: &[T],
    shape: &[usize],
    axes: super::Axes,
    init: T,
    f: impl Fn(T, T) -> T,
) -> Vec<T> {
    let kept = super::kept_dims(shape, axes);
    let kst = strides(&kept);
    let mut out = vec![init; numel(&kept)];
    for (flat, &v) in x.iter().enumerate() {
        let idx = unravel(flat, shape);
        let dst: usize = (0..shape.len())
            .filter(|&a| !axes.contains(a))
            .zip(&kst)
            .map(|(a, s)| idx[a] * s)
            .sum();
        out[dst] = f(out[dst], v);
    }
    out
}

fn transpose<T: Real>(x: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    let st = strides(shape);
    (0..x.len())
        .map(|flat| {
            let idx = unravel(flat, &out_shape);
            let src: usize = perm.iter().enumerate().map(|(i, &a)| idx[i] * st[a]).sum();
            x[src]
        })
        .collect()
}

/// Runs a scan (`ir::scan`): the body once per row, in the loop's order,
/// each time on the carry of the row before and row t of every sequence.
fn scan<T: Real>(body: &Graph, args: &[&[T]], seqs: usize, reverse: bool, len: usize) -> Vec<T> {
    let carry = args[0].len();
    let mut out = vec![T::zero(); len * carry];
    let mut ins: Vec<Vec<T>> = args.iter().map(|a| a.to_vec()).collect();
    for t in super::scan::order(len, reverse) {
        ins[0] = match super::scan::previous(t, len, reverse) {
            Some(p) => out[p * carry..(p + 1) * carry].to_vec(),
            None => args[0].to_vec(),
        };
        for i in 1..=seqs {
            let n = args[i].len() / len;
            ins[i] = args[i][t * n..(t + 1) * n].to_vec();
        }
        let refs: Vec<&[T]> = ins.iter().map(|v| v.as_slice()).collect();
        // invariant: the verifier checked that the body takes these shapes.
        let mut next = eval(body, &refs, 1).expect("scan body takes its operands");
        out[t * carry..(t + 1) * carry].copy_from_slice(&next.swap_remove(0));
    }
    out
}

fn slice<T: Real>(
    x: &[T],
    shape: &[usize],
    axis: usize,
    (start, step): (usize, usize),
    len: usize,
) -> Vec<T> {
    let mut out_shape = shape.to_vec();
    out_shape[axis] = len;
    let st = strides(shape);
    (0..numel(&out_shape))
        .map(|flat| {
            let mut idx = unravel(flat, &out_shape);
            idx[axis] = start + idx[axis] * step;
            x[idx.iter().zip(&st).map(|(i, s)| i * s).sum::<usize>()]
        })
        .collect()
}

fn concat<T: Real>(parts: &[(&[T], &[usize])], axis: usize) -> Vec<T> {
    let outer: usize = parts[0].1[..axis].iter().product();
    let mut out = Vec::new();
    for o in 0..outer {
        for (data, shape) in parts {
            let chunk: usize = shape[axis..].iter().product();
            out.extend_from_slice(&data[o * chunk..(o + 1) * chunk]);
        }
    }
    out
}

fn matmul<T: Real>(a: &[T], sa: &[usize], b: &[T], sb: &[usize]) -> Vec<T> {
    let (m, k) = if sa.len() == 2 {
        (sa[0], sa[1])
    } else {
        (1, sa[0])
    };
    let n = if sb.len() == 2 { sb[1] } else { 1 };
    let mut out = vec![T::zero(); m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::zero();
            for p in 0..k {
                let prod = T::binary(BinaryOp::Mul, a[i * k + p], b[p * n + j]);
                acc = T::binary(BinaryOp::Add, acc, prod);
            }
            out[i * n + j] = acc;
        }
    }
    out
}
