//! The tensor IR: an SSA DAG in an arena. Nodes are addressed by typed `u32`
//! ids, are appended in topological order (an operand always has a smaller id
//! than its user), and are hash-consed on construction, so structurally equal
//! subgraphs are one node (CSE for free). The graph is per-sample; `Sample`
//! inputs gain a batch axis only when a kernel is run.

pub mod growth;
pub mod interp;
pub mod math;
pub mod op;
pub mod print;
pub mod real;
pub mod scan;
pub mod serial;
pub mod verify;

use std::collections::HashMap;
use std::fmt;

pub use op::{Axes, BinaryOp, F64, MAX_RANK, Op, Perm, Shape, UnaryOp, numel};
pub use real::Real;

macro_rules! typed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

typed_id!(NodeId, "%");
typed_id!(InputId, "in");
typed_id!(ConstId, "c");
typed_id!(BodyId, "b");

/// Copies `src`'s nodes into `dst`, reading each of `src`'s inputs from the
/// node `bind` gives for it; returns the nodes of `src`'s outputs, in order.
/// Constants are re-interned in `dst`, so hash-consing stays exact.
pub fn inline(
    dst: &mut Graph,
    src: &Graph,
    mut bind: impl FnMut(&mut Graph, &InputDecl) -> NodeId,
) -> Vec<NodeId> {
    inline_by(dst, src, |g, i| bind(g, src.input(i)))
}

fn inline_by(
    dst: &mut Graph,
    src: &Graph,
    mut bind: impl FnMut(&mut Graph, InputId) -> NodeId,
) -> Vec<NodeId> {
    let mut map: Vec<NodeId> = Vec::with_capacity(src.len());
    for id in src.ids() {
        let node = src.node(id);
        let args: Vec<NodeId> = node.args.iter().map(|a| map[a.index()]).collect();
        let n = match node.op {
            Op::Input(i) => bind(dst, i),
            Op::Const(c) => {
                let t = src.constant(c);
                dst.constant_tensor(t.shape.clone(), t.data.clone())
            }
            op => {
                let op = dst.import_op(src, op);
                dst.add(op, args, node.shape.clone())
            }
        };
        map.push(n);
    }
    src.outputs.iter().map(|o| map[o.node.index()]).collect()
}

/// Copies `src`'s nodes into `dst` with input `i` of `src` read from
/// `inputs[i]`; returns the nodes of `src`'s outputs.
pub fn inline_with(dst: &mut Graph, src: &Graph, inputs: &[NodeId]) -> Vec<NodeId> {
    inline_by(dst, src, |_, i| inputs[i.index()])
}

/// Whether an input varies across the batch (sample, conditioning, direction)
/// or is shared by every batch element (parameters).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum InputKind {
    Sample,
    Shared,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    pub name: String,
    pub shape: Shape,
    pub kind: InputKind,
}

/// A constant tensor of a graph's pool. Its values are shared, never
/// copied, between the clones of a graph and the graphs derived from it
/// (gradient graphs, optimised graphs, each kernel's copy): a large
/// constant costs its memory once.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstTensor {
    pub shape: Shape,
    pub data: std::sync::Arc<[f64]>,
}

/// A constant as a hash-consing key: its shape and values compared bit by
/// bit (one NaN), sharing the constant's values rather than copying them.
#[derive(Clone, Debug)]
struct ConstKey {
    shape: Shape,
    data: std::sync::Arc<[f64]>,
}

impl ConstKey {
    fn bits(&self) -> impl Iterator<Item = u64> + '_ {
        self.data.iter().map(|v| F64::new(*v).get().to_bits())
    }
}

impl PartialEq for ConstKey {
    fn eq(&self, other: &ConstKey) -> bool {
        self.shape == other.shape && self.bits().eq(other.bits())
    }
}

impl Eq for ConstKey {}

impl std::hash::Hash for ConstKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.shape.hash(h);
        self.data.len().hash(h);
        for b in self.bits() {
            b.hash(h);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    pub op: Op,
    pub args: Vec<NodeId>,
    pub shape: Shape,
}

/// How an output combines across the batch when a kernel runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BatchReduce {
    /// One value per batch element (energies, input gradients).
    PerSample,
    /// Summed over the batch (parameter gradients).
    Sum,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub node: NodeId,
    pub reduce: BatchReduce,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    nodes: Vec<Node>,
    inputs: Vec<InputDecl>,
    consts: Vec<ConstTensor>,
    pub outputs: Vec<Output>,
    interned: HashMap<Node, NodeId>,
    interned_consts: HashMap<ConstKey, ConstId>,
    /// The step graphs of this graph's `Scan` nodes (`ir::scan`).
    bodies: Vec<Graph>,
    /// Bodies by their encoding, so that equal bodies are one body and
    /// equal scans one node.
    interned_bodies: HashMap<Vec<u8>, BodyId>,
    /// Set by the optimiser's "no CSE" mode: nodes are appended without lookup.
    no_cse: bool,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// A graph with the same inputs and constants but no nodes: the target of
    /// rewriting passes.
    pub fn empty_like(&self) -> Graph {
        Graph {
            name: self.name.clone(),
            inputs: self.inputs.clone(),
            consts: self.consts.clone(),
            interned_consts: self.interned_consts.clone(),
            bodies: self.bodies.clone(),
            interned_bodies: self.interned_bodies.clone(),
            ..Graph::default()
        }
    }

    /// Empties the body pool of a graph that has no nodes yet (a
    /// rebuilding pass re-adds the bodies its scans use).
    pub fn clear_bodies(&mut self) {
        assert!(self.nodes.is_empty(), "clear_bodies on a graph with nodes");
        self.bodies.clear();
        self.interned_bodies.clear();
    }

    /// The step graphs of `Scan` nodes, by `BodyId`.
    pub fn bodies(&self) -> &[Graph] {
        &self.bodies
    }
    pub fn body(&self, id: BodyId) -> &Graph {
        &self.bodies[id.index()]
    }

    /// Adds a step graph to the pool (or finds an equal one).
    pub fn add_body(&mut self, body: Graph) -> BodyId {
        let key = serial::encode(&body);
        if let Some(&id) = self.interned_bodies.get(&key) {
            return id;
        }
        let id = BodyId(self.bodies.len() as u32);
        self.bodies.push(body);
        self.interned_bodies.insert(key, id);
        id
    }

    /// Appends a body to the pool as is (the decoder restores the pool
    /// exactly), registering it for interning unless an equal one is there.
    pub(crate) fn push_body(&mut self, body: Graph) -> BodyId {
        let id = BodyId(self.bodies.len() as u32);
        self.interned_bodies
            .entry(serial::encode(&body))
            .or_insert(id);
        self.bodies.push(body);
        id
    }

    /// `op` of graph `src` as an op of this graph: a `Scan`'s body is
    /// copied into this graph's pool (constants are re-interned by the
    /// callers that copy `Const` nodes).
    pub fn import_op(&mut self, src: &Graph, op: Op) -> Op {
        match op {
            Op::Scan {
                body,
                seqs,
                reverse,
            } => Op::Scan {
                body: self.add_body(src.body(body).clone()),
                seqs,
                reverse,
            },
            op => op,
        }
    }

    /// Turns hash-consing off (or back on) for nodes added from now on.
    pub fn set_cse(&mut self, on: bool) {
        self.no_cse = !on;
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }
    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id.index()].shape
    }
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    pub fn inputs(&self) -> &[InputDecl] {
        &self.inputs
    }
    pub fn input(&self, id: InputId) -> &InputDecl {
        &self.inputs[id.index()]
    }
    pub fn consts(&self) -> &[ConstTensor] {
        &self.consts
    }
    pub fn constant(&self, id: ConstId) -> &ConstTensor {
        &self.consts[id.index()]
    }
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        (0..self.nodes.len() as u32).map(NodeId)
    }
    /// The `Sample` input called `name` (`x`, `c`, `v`, ...). Parameters
    /// (`Shared`) live in their own namespace, so a parameter may be called `x`.
    pub fn find_input(&self, name: &str) -> Option<InputId> {
        self.find_input_of(name, InputKind::Sample)
    }

    pub fn find_input_of(&self, name: &str, kind: InputKind) -> Option<InputId> {
        self.inputs
            .iter()
            .position(|i| i.name == name && i.kind == kind)
            .map(|i| InputId(i as u32))
    }
    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.outputs.iter().find(|o| o.name == name).map(|o| o.node)
    }

    pub fn add_output(&mut self, name: impl Into<String>, node: NodeId, reduce: BatchReduce) {
        self.outputs.push(Output {
            name: name.into(),
            node,
            reduce,
        });
    }

    /// Declares an input and returns the node that reads it.
    pub fn input_node(&mut self, name: impl Into<String>, shape: Shape, kind: InputKind) -> NodeId {
        let name = name.into();
        let id = match self.find_input_of(&name, kind) {
            Some(id) => {
                assert_eq!(
                    self.inputs[id.index()].shape,
                    shape,
                    "input {name} redeclared"
                );
                id
            }
            None => {
                self.inputs.push(InputDecl {
                    name,
                    shape: shape.clone(),
                    kind,
                });
                InputId(self.inputs.len() as u32 - 1)
            }
        };
        self.add(Op::Input(id), vec![], shape)
    }

    /// Appends (or finds) a node. Shapes are checked: a mismatch here is a
    /// compiler bug, never a user error (`sema` has already rejected those).
    pub fn add(&mut self, op: Op, args: Vec<NodeId>, shape: Shape) -> NodeId {
        let arg_shapes: Vec<&[usize]> = args.iter().map(|&a| self.shape(a)).collect();
        let checked = op::check_shape(&op, &arg_shapes, &shape)
            .and_then(|()| scan::check_body(self, &op, &arg_shapes));
        if let Err(e) = checked {
            // invariant: graph builders are called with shapes sema or the verifier checked; a mismatch is a compiler bug.
            panic!("ill-shaped IR node: {e}");
        }
        let node = Node { op, args, shape };
        if !self.no_cse
            && let Some(&id) = self.interned.get(&node)
        {
            return id;
        }
        let id = NodeId(self.nodes.len() as u32);
        self.interned.insert(node.clone(), id);
        self.nodes.push(node);
        id
    }

    /// Declares an input without adding a node that reads it (the decoder
    /// restores the input table exactly, in order, before any node).
    pub(crate) fn push_input_decl(&mut self, decl: InputDecl) -> InputId {
        self.inputs.push(decl);
        InputId(self.inputs.len() as u32 - 1)
    }

    /// Appends a constant to the pool as is (no node), registering it for
    /// hash-consing unless an equal constant is already there, the way
    /// `constant_tensor` would have found it. Used by the decoder, which must
    /// restore the pool exactly, unused entries and order included.
    pub(crate) fn push_const(&mut self, t: ConstTensor) -> ConstId {
        let id = ConstId(self.consts.len() as u32);
        let key = const_key(&t.shape, &t.data);
        self.interned_consts.entry(key).or_insert(id);
        self.consts.push(t);
        id
    }

    /// Whether hash-consing is on for nodes added from now on.
    pub fn cse(&self) -> bool {
        !self.no_cse
    }

    /// Appends `node` with no checks at all (no shape check, no operand-order
    /// check, no hash-consing). It exists only so that tests can build the
    /// malformed graphs the verifier and the backends must reject; no compiler
    /// code may call it.
    #[doc(hidden)]
    pub fn push_unchecked(&mut self, node: Node) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(node);
        id
    }

    // ----- typed constructors: each infers its result shape -----

    pub fn scalar(&mut self, v: f64) -> NodeId {
        self.add(Op::Scalar(F64::new(v)), vec![], vec![])
    }

    pub fn constant_tensor(
        &mut self,
        shape: Shape,
        data: impl Into<std::sync::Arc<[f64]>>,
    ) -> NodeId {
        let data: std::sync::Arc<[f64]> = data.into();
        assert_eq!(numel(&shape), data.len());
        if shape.is_empty() {
            return self.scalar(data[0]);
        }
        let key = const_key(&shape, &data);
        let id = match self.interned_consts.get(&key) {
            Some(&id) => id,
            None => {
                self.consts.push(ConstTensor {
                    shape: shape.clone(),
                    data,
                });
                let id = ConstId(self.consts.len() as u32 - 1);
                self.interned_consts.insert(key, id);
                id
            }
        };
        self.add(Op::Const(id), vec![], shape)
    }

    /// A constant filled with `v`, as a broadcast scalar.
    pub fn fill(&mut self, v: f64, shape: &[usize]) -> NodeId {
        let s = self.scalar(v);
        self.broadcast(s, shape)
    }

    pub fn unary(&mut self, op: UnaryOp, a: NodeId) -> NodeId {
        let shape = self.shape(a).to_vec();
        self.add(Op::Unary(op), vec![a], shape)
    }

    pub fn neg(&mut self, a: NodeId) -> NodeId {
        self.unary(UnaryOp::Neg, a)
    }

    pub fn powc(&mut self, a: NodeId, c: f64) -> NodeId {
        let shape = self.shape(a).to_vec();
        self.add(Op::PowConst(F64::new(c)), vec![a], shape)
    }

    /// Elementwise binary op; operands must already have equal shapes.
    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        let shape = self.shape(a).to_vec();
        self.add(Op::Binary(op), vec![a, b], shape)
    }

    /// Elementwise binary op with NumPy broadcasting made explicit.
    /// Panics if the shapes are incompatible (callers check first).
    pub fn binary_bcast(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        let shape = op::broadcast_shapes(self.shape(a), self.shape(b)).unwrap_or_else(|| {
            // invariant: graph builders are called with shapes sema or the verifier checked; a mismatch is a compiler bug.
            panic!(
                "incompatible shapes {:?} {:?}",
                self.shape(a),
                self.shape(b)
            )
        });
        let a = self.broadcast(a, &shape);
        let b = self.broadcast(b, &shape);
        self.binary(op, a, b)
    }

    pub fn add_(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary_bcast(BinaryOp::Add, a, b)
    }
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary_bcast(BinaryOp::Sub, a, b)
    }
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary_bcast(BinaryOp::Mul, a, b)
    }
    pub fn div(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary_bcast(BinaryOp::Div, a, b)
    }

    pub fn select(&mut self, c: NodeId, a: NodeId, b: NodeId) -> NodeId {
        let shape = self.shape(a).to_vec();
        self.add(Op::Select, vec![c, a, b], shape)
    }

    /// Broadcast to `shape`; the identity when already that shape.
    pub fn broadcast(&mut self, a: NodeId, shape: &[usize]) -> NodeId {
        if self.shape(a) == shape {
            return a;
        }
        self.add(Op::Broadcast, vec![a], shape.to_vec())
    }

    pub fn reduce_sum(&mut self, a: NodeId, axes: Axes) -> NodeId {
        if axes.is_empty() {
            return a;
        }
        let shape = kept_dims(self.shape(a), axes);
        self.add(Op::Sum(axes), vec![a], shape)
    }

    pub fn reduce_max(&mut self, a: NodeId, axes: Axes) -> NodeId {
        if axes.is_empty() {
            return a;
        }
        let shape = kept_dims(self.shape(a), axes);
        self.add(Op::Max(axes), vec![a], shape)
    }

    pub fn sum_all(&mut self, a: NodeId) -> NodeId {
        let rank = self.shape(a).len();
        self.reduce_sum(a, Axes::all(rank))
    }

    pub fn reshape(&mut self, a: NodeId, shape: &[usize]) -> NodeId {
        if self.shape(a) == shape {
            return a;
        }
        self.add(Op::Reshape, vec![a], shape.to_vec())
    }

    pub fn transpose(&mut self, a: NodeId, perm: &[usize]) -> NodeId {
        let p = Perm::new(perm);
        if p.is_identity() {
            return a;
        }
        let shape = perm.iter().map(|&i| self.shape(a)[i]).collect();
        self.add(Op::Transpose(p), vec![a], shape)
    }

    pub fn slice(&mut self, a: NodeId, axis: usize, start: usize, len: usize) -> NodeId {
        self.slice_step(a, axis, start, len, 1)
    }

    /// `len` elements `start, start + step, ..` along `axis`.
    pub fn slice_step(
        &mut self,
        a: NodeId,
        axis: usize,
        start: usize,
        len: usize,
        step: usize,
    ) -> NodeId {
        let mut shape = self.shape(a).to_vec();
        if start == 0 && shape[axis] == len {
            return a;
        }
        // One element: the step never matters (one canonical node).
        let step = if len == 1 { 1 } else { step };
        shape[axis] = len;
        self.add(
            Op::Slice {
                axis: axis as u8,
                start: start as u32,
                step: step as u32,
            },
            vec![a],
            shape,
        )
    }

    /// A scan node (`ir::scan`): `body` goes into the pool; the operands
    /// are the initial carry, the sequences, then the captured values.
    pub fn scan(
        &mut self,
        body: Graph,
        init: NodeId,
        seqs: &[NodeId],
        caps: &[NodeId],
        reverse: bool,
    ) -> NodeId {
        let len = self.shape(seqs[0])[0];
        let mut shape = vec![len];
        shape.extend_from_slice(self.shape(init));
        let body = self.add_body(body);
        let mut args = vec![init];
        args.extend_from_slice(seqs);
        args.extend_from_slice(caps);
        let op = Op::Scan {
            body,
            seqs: seqs.len() as u8,
            reverse,
        };
        self.add(op, args, shape)
    }

    pub fn concat(&mut self, parts: Vec<NodeId>, axis: usize) -> NodeId {
        if parts.len() == 1 {
            return parts[0];
        }
        let mut shape = self.shape(parts[0]).to_vec();
        shape[axis] = parts.iter().map(|&p| self.shape(p)[axis]).sum();
        self.add(Op::Concat { axis: axis as u8 }, parts, shape)
    }

    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        // invariant: graph builders are called with shapes sema or the verifier checked; a mismatch is a compiler bug.
        let shape = op::matmul_shape(self.shape(a), self.shape(b))
            .unwrap_or_else(|| panic!("matmul {:?} @ {:?}", self.shape(a), self.shape(b)));
        self.add(Op::MatMul, vec![a, b], shape)
    }

    pub fn stop_gradient(&mut self, a: NodeId) -> NodeId {
        let shape = self.shape(a).to_vec();
        self.add(Op::StopGradient, vec![a], shape)
    }

    /// Numerically stable log-sum-exp over `axes`:
    /// m + log(sum(exp(x − m))) with m = stop_gradient(max(x)).
    pub fn logsumexp(&mut self, a: NodeId, axes: Axes) -> NodeId {
        let shape = self.shape(a).to_vec();
        let m = self.reduce_max(a, axes);
        let m = self.stop_gradient(m);
        let keep = keepdims(&shape, axes);
        let m_keep = self.reshape(m, &keep);
        let m_full = self.broadcast(m_keep, &shape);
        let shifted = self.binary(BinaryOp::Sub, a, m_full);
        let e = self.unary(UnaryOp::Exp, shifted);
        let s = self.reduce_sum(e, axes);
        let l = self.unary(UnaryOp::Log, s);
        self.binary(BinaryOp::Add, m, l)
    }

    /// Nodes reachable from the outputs (and the given extra roots), as a mask.
    pub fn live(&self, extra_roots: &[NodeId]) -> Vec<bool> {
        let mut live = vec![false; self.nodes.len()];
        let roots = self
            .outputs
            .iter()
            .map(|o| o.node)
            .chain(extra_roots.iter().copied());
        for r in roots {
            live[r.index()] = true;
        }
        for i in (0..self.nodes.len()).rev() {
            if live[i] {
                for a in &self.nodes[i].args {
                    live[a.index()] = true;
                }
            }
        }
        live
    }
}

/// The hash-consing key of a constant: its shape and its values' bits, with
/// NaNs made one NaN (as `F64::new` does).
fn const_key(shape: &[usize], data: &std::sync::Arc<[f64]>) -> ConstKey {
    ConstKey {
        shape: shape.to_vec(),
        data: data.clone(),
    }
}

/// The shape after removing `axes`.
pub fn kept_dims(shape: &[usize], axes: Axes) -> Shape {
    (0..shape.len())
        .filter(|&a| !axes.contains(a))
        .map(|a| shape[a])
        .collect()
}

/// The shape after setting `axes` to 1 (NumPy `keepdims=True`).
pub fn keepdims(shape: &[usize], axes: Axes) -> Shape {
    (0..shape.len())
        .map(|a| if axes.contains(a) { 1 } else { shape[a] })
        .collect()
}
