//! Lowering a graph to a schedule of fused loops and GEMM calls.
//!
//! Layout: inside a batch tile of `T` rows, every batch-dependent value is
//! stored **feature-major** ("structure of arrays"): element `e` of sample
//! `b` sits at `(off + e)·T + b`. Every IR op acts on per-sample features and
//! never on the batch axis, so each op is a pure index map over features and
//! the vector lanes (`f32x4`/`f64x2`) always run across samples: no shuffles,
//! no gathers, any shape. Batch-invariant values (parameters, constants and
//! everything computed from them only) live once per call in the invariant
//! arena and are splatted into the loops.
//!
//! Fusion: a node is *materialised* (gets a buffer and a loop of its own) when
//! it is a reduction, a matrix product, a concatenation, an output, used more
//! than once, read through an expanding broadcast, or an invariant value used
//! by batch-dependent code. Everything else — elementwise ops and all views
//! (broadcast, reshape, transpose, slice) — is inlined into its consumer's loop
//! as an expression tree whose leaves read buffers through index maps
//! (affine, or a table computed here at compile time).

use std::collections::{HashMap, HashSet};

use crate::ir::{
    Axes, BatchReduce, BinaryOp, Graph, InputKind, NodeId, Op, UnaryOp, kept_dims, numel,
};

/// Where a value lives. Offsets are in features for `Tile` (times `T` rows),
/// in elements elsewhere. Before memory planning, `Tile`/`Inv` hold virtual
/// buffer ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Loc {
    Tile(usize),
    Inv(usize),
    /// A shared input, read in place.
    Input(usize),
    Const(usize),
    /// The per-thread accumulator of batch-summed output `j`.
    Partial(usize),
}

/// How a loop's feature counter `f` maps to a buffer's feature index.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Map {
    Affine {
        a: i64,
        s: i64,
    },
    /// `tables[off + f]`.
    Table(usize),
}

#[derive(Clone, Debug)]
pub(crate) enum Expr {
    Load { loc: Loc, map: Map },
    Scalar(f64),
    Unary(UnaryOp, u32),
    PowC(f64, u32),
    Binary(BinaryOp, u32, u32),
    Select(u32, u32, u32),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Store {
    Set,
    Add,
    Max,
}

/// One fused loop: for f in 0..domain, for each lane vector:
/// `dst[dst_map(f)] (=|+=|max=) exprs[root]`.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub domain: usize,
    pub exprs: Vec<Expr>,
    pub root: u32,
    pub dst: Loc,
    pub dst_map: Map,
    pub store: Store,
    pub variant: bool,
    pub label: String,
    /// `> 1`: an unrolled reduction. The loop runs over `domain` outputs;
    /// `exprs` are indexed over `domain·red` points in (output, reduced)
    /// order, combined in registers with `store`'s op from its identity, then
    /// stored once (no read-modify-write, no init loop).
    pub red: usize,
}

/// Largest reduced extent unrolled into registers.
const MAX_UNROLL: usize = 16;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Dim {
    N(usize),
    Rows,
    /// The lanes of `c` consecutive feature rows of a tile: (c − 1)·T +
    /// rows (the padding lanes between them are computed and never read).
    Lanes(usize),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Stride {
    /// A step of `s` features (× T in a tile, × 1 elsewhere).
    Feat(isize),
    /// The batch lane axis of a tile (stride 1).
    Lane,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand {
    pub loc: Loc,
    pub off: usize,
    pub rs: Stride,
    pub cs: Stride,
}

/// `dst (+)= lhs[m×k] · rhs[k×n]` through the `gemm` crate, or through the
/// panel kernel (`panel.rs`) when `packed` is set.
#[derive(Clone, Debug)]
pub(crate) struct GemmStep {
    pub m: Dim,
    pub n: Dim,
    pub k: Dim,
    pub dst: Operand,
    pub lhs: Operand,
    pub rhs: Operand,
    pub accumulate: bool,
    /// The invariant buffer holding `lhs` packed by a [`Step::Pack`]: then
    /// `n` is the tile's rows, `rhs` and `dst` are tile buffers with lane
    /// columns, and the product runs in the f32 panel kernel.
    pub packed: Option<Loc>,
    /// With `packed` only: what the panel kernel does with the products in
    /// registers before they leave them (folded in by [`fuse_epilogues`]
    /// and [`fuse_swish_backward`]).
    pub epilogue: Option<Epilogue>,
}

/// A panel GEMM's epilogue.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue {
    Layer(Layer),
    /// `dst = product · by`, `by` a tile buffer of `dst`'s shape: a
    /// backward layer's product times its activation's derivative.
    Times(Loc),
}

/// A layer on the products: `h = product + bias` (stored at the GEMM's
/// `dst` when `pre`), `act = f(h)`, `prod = h · act` and, for swish,
/// `grad = scale · (act + h · (act · (1 − act)))`, its derivative times a
/// shared per-feature vector (or 1), which is what its backward pass reads.
/// Each output is stored only when some later step reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layer {
    pub sigmoid: bool,
    /// A shared per-feature vector.
    pub bias: Loc,
    pub pre: bool,
    pub act: Option<Loc>,
    pub prod: Option<Loc>,
    /// `(grad, scale)`.
    pub grad: Option<(Loc, Option<Loc>)>,
}

#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Call compiled loop `groups[i]`.
    Loop(usize),
    /// `dst = exp|sigmoid(src)` over `feats` whole tile rows, through the
    /// AVX-512 routines of `vecmath.rs` (f32 only; chosen at compile time).
    ArrayUnary {
        sigmoid: bool,
        src: Loc,
        dst: Loc,
        feats: usize,
        /// `Some((bias, pre))`: the argument is `src + bias` (a shared
        /// per-feature vector), computed in the same pass and also stored
        /// at `pre` (the add node's buffer): `pre = src + bias`,
        /// `dst = f(pre)`.
        bias: Option<(Loc, Loc)>,
        /// With `bias` only: also `prod = pre · dst` (swish), for a
        /// materialised product node of the two.
        prod: Option<Loc>,
    },
    Gemm(Box<GemmStep>),
    /// Packs the shared `src[n×k]` (strides `src.rs`, `src.cs`) into panels
    /// at `dst` for [`GemmStep::packed`] (invariant program only).
    Pack {
        src: Operand,
        k: usize,
        n: usize,
        dst: Loc,
    },
    /// A loop over a scan's rows (tile program only): see [`ScanStep`].
    Scan(Box<ScanStep>),
}

/// One operand of a scan and the body input buffer it fills.
#[derive(Clone, Debug)]
pub(crate) struct ScanInput {
    /// Where the whole operand is read (a sequence: row t at features
    /// t·feats..).
    pub src: OutSrc,
    /// The body's input buffer (`None`: the body never reads it).
    pub dst: Option<Loc>,
    /// Features the body reads per step.
    pub feats: usize,
}

/// `Op::Scan` as a loop: per row t in the loop's order, fill the body's
/// carry input from row t∓1 of `out` (or the initial carry), its element
/// inputs from row t of each sequence, run `body`, copy `next` into row t
/// of `out`. The captures are filled once, before the first row. The body's
/// loops are compiled once; only this step repeats them.
#[derive(Clone, Debug)]
pub(crate) struct ScanStep {
    pub len: usize,
    pub reverse: bool,
    pub seqs: usize,
    /// The operands in order: initial carry, sequences, captures.
    pub inputs: Vec<ScanInput>,
    /// The body's output.
    pub next: OutSrc,
    /// The tile buffer of every carry, `len` rows of `inputs[0].feats`.
    pub out: Loc,
    pub body: Vec<Step>,
    /// The index of its generated function when the whole loop is one
    /// (`scanloop`); `None`: the body's loops are called row by row.
    pub fused: Option<usize>,
}

#[derive(Clone, Debug)]
pub(crate) enum OutSrc {
    Loc(Loc),
    Scalar(f64),
}

#[derive(Clone, Debug)]
pub(crate) struct OutPlan {
    pub src: OutSrc,
    pub numel: usize,
    pub reduce: BatchReduce,
    /// Batch-dependent (else computed once and replicated / scaled by the batch).
    pub variant: bool,
    /// Index of this output's per-thread partial sum (batch-summed variant outputs).
    pub partial: Option<usize>,
    /// The partial is filled directly by GEMM steps (no per-sample value exists).
    pub direct: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    pub groups: Vec<Group>,
    pub inv_steps: Vec<Step>,
    pub tile_steps: Vec<Step>,
    pub consts: Vec<f64>,
    pub tables: Vec<u32>,
    /// Elements of the invariant arena.
    pub inv_len: usize,
    /// Features (rows of `T` lanes) of the tile arena.
    pub tile_feats: usize,
    /// (input index, tile offset, numel) of each sample input read by the tile program.
    pub sample_in: Vec<(usize, usize, usize)>,
    pub outputs: Vec<OutPlan>,
    /// numel of each partial accumulator.
    pub partials: Vec<usize>,
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

fn unravel(mut flat: usize, shape: &[usize], idx: &mut [usize]) {
    for i in (0..shape.len()).rev() {
        idx[i] = flat % shape[i];
        flat /= shape[i];
    }
}

/// Flat source index (in `from`) of each flat index of `to` under broadcasting.
fn broadcast_src(from: &[usize], to: &[usize], flat: usize) -> usize {
    let off = to.len() - from.len();
    let st = strides(from);
    let mut idx = vec![0; to.len()];
    unravel(flat, to, &mut idx);
    (0..from.len())
        .map(|i| {
            if from[i] == 1 {
                0
            } else {
                idx[i + off] * st[i]
            }
        })
        .sum()
}

fn transpose_src(in_shape: &[usize], perm: &[usize], flat: usize) -> usize {
    let out_shape: Vec<usize> = perm.iter().map(|&a| in_shape[a]).collect();
    let st = strides(in_shape);
    let mut idx = vec![0; out_shape.len()];
    unravel(flat, &out_shape, &mut idx);
    perm.iter().enumerate().map(|(i, &a)| idx[i] * st[a]).sum()
}

fn slice_src(
    in_shape: &[usize],
    out_shape: &[usize],
    axis: usize,
    (start, step): (usize, usize),
    flat: usize,
) -> usize {
    let st = strides(in_shape);
    let mut idx = vec![0; out_shape.len()];
    unravel(flat, out_shape, &mut idx);
    idx[axis] = start + idx[axis] * step;
    idx.iter().zip(&st).map(|(i, s)| i * s).sum()
}

fn reduce_dst(shape: &[usize], axes: Axes, flat: usize) -> usize {
    let kept = kept_dims(shape, axes);
    let kst = strides(&kept);
    let mut idx = vec![0; shape.len()];
    unravel(flat, shape, &mut idx);
    (0..shape.len())
        .filter(|&a| !axes.contains(a))
        .zip(&kst)
        .map(|(a, s)| idx[a] * s)
        .sum()
}

/// Normalised matrix view of a matmul operand: (rows, cols, row stride, col stride).
fn mat_dims(shape: &[usize], lhs: bool) -> (usize, usize) {
    match (shape.len(), lhs) {
        (1, true) => (1, shape[0]),
        (1, false) => (shape[0], 1),
        _ => (shape[0], shape[1]),
    }
}

struct Builder<'g> {
    g: &'g Graph,
    variant: Vec<bool>,
    users: Vec<u32>,
    user: Vec<Option<NodeId>>,
    is_out: Vec<bool>,
    loc: Vec<Option<Loc>>,
    plan: Plan,
    /// Virtual buffers: (is_tile, size).
    vbufs: Vec<(bool, usize)>,
    const_off: HashMap<usize, usize>,
    table_off: HashMap<Vec<u32>, usize>,
    /// Use `Step::ArrayUnary` for materialised exp/sigmoid of tile buffers.
    array_unary: bool,
    /// Run tile GEMMs with a shared operand through the packed panel kernel.
    panel_gemm: bool,
    /// Planning a scan body: the tile buffer of each of its inputs (every
    /// body input is batch-dependent and read from a tile buffer the scan
    /// step fills). `None` at the top level.
    body_inputs: Option<Vec<Option<Loc>>>,
}

/// Per-group expression builder state.
struct GroupBuild {
    exprs: Vec<Expr>,
    memo: HashMap<(NodeId, Vec<u32>), u32>,
}

impl GroupBuild {
    fn push(&mut self, e: Expr) -> u32 {
        self.exprs.push(e);
        self.exprs.len() as u32 - 1
    }
}

impl<'g> Builder<'g> {
    /// The per-node analysis of `g`: which nodes depend on the batch, their
    /// users, the outputs. `body` plans a scan body (every input a tile
    /// buffer).
    fn new(g: &'g Graph, live: &[bool], body: Option<usize>) -> Builder<'g> {
        let n = g.len();
        let mut variant = vec![false; n];
        let mut users = vec![0u32; n];
        let mut user = vec![None; n];
        for id in g.ids() {
            if !live[id.index()] {
                continue;
            }
            let node = g.node(id);
            variant[id.index()] = match node.op {
                Op::Input(_) if body.is_some() => true,
                Op::Input(i) => g.input(i).kind == InputKind::Sample,
                // A loop runs per tile (its body's buffers are tile buffers).
                Op::Scan { .. } => true,
                _ => node.args.iter().any(|a| variant[a.index()]),
            };
            for a in &node.args {
                users[a.index()] += 1;
                user[a.index()] = Some(id);
            }
        }
        let mut is_out = vec![false; n];
        for o in &g.outputs {
            is_out[o.node.index()] = true;
        }
        Builder {
            g,
            variant,
            users,
            user,
            is_out,
            loc: vec![None; n],
            plan: Plan::default(),
            vbufs: vec![],
            const_off: HashMap::new(),
            table_off: HashMap::new(),
            array_unary: false,
            panel_gemm: false,
            body_inputs: body.map(|k| vec![None; k]),
        }
    }

    /// Where node `n`'s value can be read whole: its buffer (looking
    /// through reshapes), a scalar, or a buffer it is materialised into now.
    fn source(&mut self, n: NodeId) -> OutSrc {
        let mut r = n;
        loop {
            if self.loc[r.index()].is_some() {
                break;
            }
            let node = self.g.node(r);
            match node.op {
                Op::Reshape | Op::StopGradient => r = node.args[0],
                _ => break,
            }
        }
        if let Op::Scalar(v) = self.g.node(r).op {
            return OutSrc::Scalar(v.get());
        }
        let l = match self.loc[r.index()] {
            Some(l) => l,
            None => {
                let l = self.materialise_elementwise(n, false);
                self.loc[n.index()] = Some(l);
                l
            }
        };
        OutSrc::Loc(l)
    }

    /// Plans scan node `id`: its operands read whole, its body planned into
    /// a step list of its own that shares this plan's loops, constants and
    /// arenas, and one `Step::Scan` that loops over it.
    fn scan(&mut self, id: NodeId, body: &'g Graph, seqs: usize, reverse: bool) {
        let node = self.g.node(id).clone();
        let srcs: Vec<OutSrc> = node.args.iter().map(|&a| self.source(a)).collect();
        let out = self.new_buf(true, numel(&node.shape));
        self.loc[id.index()] = Some(out);
        let live = body.live(&[]);
        let mut sub = Builder::new(body, &live, Some(body.inputs().len()));
        sub.array_unary = self.array_unary;
        sub.panel_gemm = self.panel_gemm;
        sub.plan = std::mem::take(&mut self.plan);
        sub.vbufs = std::mem::take(&mut self.vbufs);
        sub.table_off = std::mem::take(&mut self.table_off);
        let outer_steps = std::mem::take(&mut sub.plan.tile_steps);
        sub.plan_nodes(&live, &HashSet::new(), &HashMap::new());
        // invariant: the verifier gives every body exactly one output.
        let next = sub.source(body.outputs[0].node);
        let steps = std::mem::replace(&mut sub.plan.tile_steps, outer_steps);
        let ins = sub.body_inputs.take().unwrap_or_default();
        self.plan = sub.plan;
        self.vbufs = sub.vbufs;
        self.table_off = sub.table_off;
        let feats = |a: NodeId, seq: bool| {
            let s = self.g.shape(a);
            numel(if seq { &s[1..] } else { s })
        };
        let inputs = node
            .args
            .iter()
            .zip(srcs)
            .zip(ins)
            .enumerate()
            .map(|(i, ((&a, src), dst))| ScanInput {
                src,
                dst,
                feats: feats(a, (1..=seqs).contains(&i)),
            })
            .collect();
        self.plan.tile_steps.push(Step::Scan(Box::new(ScanStep {
            len: node.shape[0],
            reverse,
            seqs,
            inputs,
            next,
            out,
            body: steps,
            fused: None,
        })));
    }

    fn new_buf(&mut self, tile: bool, size: usize) -> Loc {
        self.vbufs.push((tile, size));
        let id = self.vbufs.len() - 1;
        if tile { Loc::Tile(id) } else { Loc::Inv(id) }
    }

    fn map_of(&mut self, table: &[u32]) -> Map {
        if table.is_empty() {
            return Map::Affine { a: 0, s: 0 };
        }
        let a = table[0] as i64;
        let s = if table.len() > 1 {
            table[1] as i64 - a
        } else {
            0
        };
        if table
            .iter()
            .enumerate()
            .all(|(f, &t)| t as i64 == a + s * f as i64)
        {
            return Map::Affine { a, s };
        }
        if let Some(&off) = self.table_off.get(table) {
            return Map::Table(off);
        }
        let off = self.plan.tables.len();
        self.plan.tables.extend_from_slice(table);
        self.table_off.insert(table.to_vec(), off);
        Map::Table(off)
    }

    fn const_loc(&mut self, c: usize) -> Loc {
        if let Some(&off) = self.const_off.get(&c) {
            return Loc::Const(off);
        }
        let off = self.plan.consts.len();
        self.plan.consts.extend_from_slice(&self.g.consts()[c].data);
        self.const_off.insert(c, off);
        Loc::Const(off)
    }

    /// The expression for node `n` evaluated at feature indices `map` (one per domain step).
    fn build(&mut self, gb: &mut GroupBuild, n: NodeId, map: Vec<u32>) -> u32 {
        let key = (n, map);
        if let Some(&e) = gb.memo.get(&key) {
            return e;
        }
        let (n, map) = key;
        let node = self.g.node(n);
        let e = if let Op::Scalar(v) = node.op {
            gb.push(Expr::Scalar(v.get()))
        } else if let Some(loc) = self.loc[n.index()] {
            let m = self.map_of(&map);
            gb.push(Expr::Load { loc, map: m })
        } else {
            self.build_op(gb, n, &map)
        };
        gb.memo.insert((n, map), e);
        e
    }

    /// Node `n`'s own operation (not a load of its buffer).
    fn build_op(&mut self, gb: &mut GroupBuild, n: NodeId, map: &[u32]) -> u32 {
        let node = self.g.node(n);
        let args = node.args.clone();
        let arg_shape = |i: usize| self.g.shape(args[i]).to_vec();
        match node.op {
            Op::Unary(u) => {
                let a = self.build(gb, args[0], map.to_vec());
                gb.push(Expr::Unary(u, a))
            }
            Op::PowConst(c) => {
                let a = self.build(gb, args[0], map.to_vec());
                gb.push(Expr::PowC(c.get(), a))
            }
            Op::Binary(op) => {
                let a = self.build(gb, args[0], map.to_vec());
                let b = self.build(gb, args[1], map.to_vec());
                gb.push(Expr::Binary(op, a, b))
            }
            Op::Select => {
                let c = self.build(gb, args[0], map.to_vec());
                let a = self.build(gb, args[1], map.to_vec());
                let b = self.build(gb, args[2], map.to_vec());
                gb.push(Expr::Select(c, a, b))
            }
            Op::StopGradient | Op::Reshape => self.build(gb, args[0], map.to_vec()),
            Op::Broadcast => {
                let from = arg_shape(0);
                let to = node.shape.clone();
                let m = map
                    .iter()
                    .map(|&f| broadcast_src(&from, &to, f as usize) as u32)
                    .collect();
                self.build(gb, args[0], m)
            }
            Op::Transpose(p) => {
                let from = arg_shape(0);
                let perm = p.as_vec();
                let m = map
                    .iter()
                    .map(|&f| transpose_src(&from, &perm, f as usize) as u32)
                    .collect();
                self.build(gb, args[0], m)
            }
            Op::Slice { axis, start, step } => {
                let from = arg_shape(0);
                let to = node.shape.clone();
                let at = (start as usize, step as usize);
                let m = map
                    .iter()
                    .map(|&f| slice_src(&from, &to, axis as usize, at, f as usize) as u32)
                    .collect();
                self.build(gb, args[0], m)
            }
            // invariant: the planner runs on a verified graph; this follows from its construction.
            ref op => panic!(
                "cpu backend: {} reached the inliner unmaterialised",
                op.name()
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_group(
        &mut self,
        variant: bool,
        domain: usize,
        gb: GroupBuild,
        root: u32,
        dst: Loc,
        dst_table: &[u32],
        store: Store,
        label: String,
    ) {
        let dst_map = self.map_of(dst_table);
        self.plan.groups.push(Group {
            domain,
            exprs: gb.exprs,
            root,
            dst,
            dst_map,
            store,
            variant,
            label,
            red: 1,
        });
        let step = Step::Loop(self.plan.groups.len() - 1);
        self.steps(variant).push(step);
    }

    fn steps(&mut self, variant: bool) -> &mut Vec<Step> {
        if variant {
            &mut self.plan.tile_steps
        } else {
            &mut self.plan.inv_steps
        }
    }

    fn fill(&mut self, variant: bool, dst: Loc, size: usize, v: f64, label: &str) {
        let mut gb = GroupBuild {
            exprs: vec![],
            memo: HashMap::new(),
        };
        let root = gb.push(Expr::Scalar(v));
        let id: Vec<u32> = (0..size as u32).collect();
        self.push_group(
            variant,
            size,
            gb,
            root,
            dst,
            &id,
            Store::Set,
            format!("{label} init"),
        );
    }

    /// `dst[o] = ⊕_r value(order[o·red + r])`: the reduction of a per-point
    /// expression. `points[i]` gives, for the i-th point of the (output,
    /// reduced) enumeration, the operand feature maps via `build`.
    #[allow(clippy::too_many_arguments)]
    fn reduction(
        &mut self,
        variant: bool,
        dst: Loc,
        outs: usize,
        red: usize,
        sum: bool,
        label: String,
        build: &mut dyn FnMut(&mut Self, &mut GroupBuild, &[usize]) -> u32,
        dst_of_point: &dyn Fn(usize) -> usize,
        points: Vec<usize>,
    ) {
        let store = if sum { Store::Add } else { Store::Max };
        let mut gb = GroupBuild {
            exprs: vec![],
            memo: HashMap::new(),
        };
        if red > 1 && red <= MAX_UNROLL {
            let root = build(self, &mut gb, &points);
            if gb.exprs.len() * red <= 1024 {
                let id: Vec<u32> = (0..outs as u32).collect();
                let dst_map = self.map_of(&id);
                self.plan.groups.push(Group {
                    domain: outs,
                    exprs: gb.exprs,
                    root,
                    dst,
                    dst_map,
                    store,
                    variant,
                    label: format!("{label} (unrolled x{red})"),
                    red,
                });
                let step = Step::Loop(self.plan.groups.len() - 1);
                self.steps(variant).push(step);
                return;
            }
            gb = GroupBuild {
                exprs: vec![],
                memo: HashMap::new(),
            };
        }
        let init = if sum { 0.0 } else { f64::NEG_INFINITY };
        self.fill(variant, dst, outs, init, &label);
        let root = build(self, &mut gb, &points);
        let dt: Vec<u32> = points.iter().map(|&p| dst_of_point(p) as u32).collect();
        self.push_group(variant, points.len(), gb, root, dst, &dt, store, label);
    }

    /// A loop writing node `n`'s value into a new buffer, inlining its operands.
    fn materialise_elementwise(&mut self, n: NodeId, own_op: bool) -> Loc {
        let size = numel(self.g.shape(n));
        let variant = self.variant[n.index()];
        let dst = self.new_buf(variant, size);
        let mut gb = GroupBuild {
            exprs: vec![],
            memo: HashMap::new(),
        };
        let id: Vec<u32> = (0..size as u32).collect();
        let root = if own_op {
            self.build_op(&mut gb, n, &id)
        } else {
            self.build(&mut gb, n, id.clone())
        };
        let label = format!("{} {}", n, self.g.node(n).op.name());
        self.push_group(variant, size, gb, root, dst, &id, Store::Set, label);
        dst
    }

    /// Follows reshapes to a buffer usable as a GEMM operand: (loc, transposed).
    fn resolve(&self, mut n: NodeId) -> Option<(Loc, bool)> {
        let mut transposed = false;
        loop {
            if let Some(l) = self.loc[n.index()] {
                return Some((l, transposed));
            }
            let node = self.g.node(n);
            match node.op {
                Op::Reshape | Op::StopGradient => n = node.args[0],
                Op::Transpose(p) if p.as_vec() == [1, 0] => {
                    transposed = !transposed;
                    n = node.args[0];
                }
                _ => return None,
            }
        }
    }

    /// A GEMM operand for matmul argument `a` viewed as `rows × cols`.
    fn operand(&mut self, a: NodeId, rows: usize, cols: usize) -> (Loc, isize, isize) {
        let (loc, t) = match self.resolve(a) {
            Some(r) => r,
            None => {
                let l = self.materialise_elementwise(a, false);
                self.loc[a.index()] = Some(l);
                (l, false)
            }
        };
        if t {
            (loc, 1, rows as isize)
        } else {
            (loc, cols as isize, 1)
        }
    }

    /// Plans matmul `n`; `direct_partial` is the partial (and whether
    /// transposed) that a per-sample × per-sample product accumulates into.
    fn matmul(&mut self, n: NodeId, direct_partial: Option<(usize, bool)>) {
        let node = self.g.node(n).clone();
        let (a, b) = (node.args[0], node.args[1]);
        let (m, k) = mat_dims(self.g.shape(a), true);
        let (_, nn) = mat_dims(self.g.shape(b), false);
        let (va, vb) = (self.variant[a.index()], self.variant[b.index()]);
        let macs = m * k * nn;
        let gemm = match (va, vb) {
            (false, false) => macs >= 4096,
            (true, false) | (false, true) => macs >= 64,
            (true, true) => direct_partial.is_some(),
        };
        if !gemm {
            let variant = va || vb;
            let dst = self.new_buf(variant, m * nn);
            self.loc[n.index()] = Some(dst);
            // Points enumerate (i, j, p) with p innermost: point = (i·n + j)·k + p.
            let points: Vec<usize> = (0..m * nn * k).collect();
            let label = format!("{n} matmul {m}x{k}x{nn} (contraction loop)");
            let mut build = |this: &mut Self, gb: &mut GroupBuild, pts: &[usize]| {
                let ta = pts
                    .iter()
                    .map(|&q| {
                        let (i, p) = (q / (nn * k), q % k);
                        (i * k + p) as u32
                    })
                    .collect();
                let tb = pts
                    .iter()
                    .map(|&q| {
                        let (j, p) = ((q / k) % nn, q % k);
                        (p * nn + j) as u32
                    })
                    .collect();
                let ea = this.build(gb, a, ta);
                let eb = this.build(gb, b, tb);
                gb.push(Expr::Binary(BinaryOp::Mul, ea, eb))
            };
            self.reduction(
                variant,
                dst,
                m * nn,
                k,
                true,
                label,
                &mut build,
                &|q| q / k,
                points,
            );
            return;
        }
        let (la, ars, acs) = self.operand(a, m, k);
        let (lb, brs, bcs) = self.operand(b, k, nn);
        use Stride::{Feat, Lane};
        let op = |loc, off, rs, cs| Operand { loc, off, rs, cs };
        match (va, vb) {
            (false, false) => {
                let dst = self.new_buf(false, m * nn);
                self.loc[n.index()] = Some(dst);
                self.plan.inv_steps.push(Step::Gemm(Box::new(GemmStep {
                    m: Dim::N(m),
                    n: Dim::N(nn),
                    k: Dim::N(k),
                    dst: op(dst, 0, Feat(nn as isize), Feat(1)),
                    lhs: op(la, 0, Feat(ars), Feat(acs)),
                    rhs: op(lb, 0, Feat(brs), Feat(bcs)),
                    accumulate: false,
                    packed: None,
                    epilogue: None,
                })));
            }
            (true, false) => {
                // Out_i^T [n × rows] = B^T [n × k] · A_i^T [k × rows]
                let dst = self.new_buf(true, m * nn);
                self.loc[n.index()] = Some(dst);
                let packed = self.pack(op(lb, 0, Feat(bcs), Feat(brs)), k, nn);
                for i in 0..m {
                    self.plan.tile_steps.push(Step::Gemm(Box::new(GemmStep {
                        m: Dim::N(nn),
                        n: Dim::Rows,
                        k: Dim::N(k),
                        dst: op(dst, i * nn, Feat(1), Lane),
                        lhs: op(lb, 0, Feat(bcs), Feat(brs)),
                        rhs: op(la, (ars * i as isize) as usize, Feat(acs), Lane),
                        accumulate: false,
                        packed,
                        epilogue: None,
                    })));
                }
            }
            (false, true) => {
                // Out_j [m × rows] = A [m × k] · B_j [k × rows]
                let dst = self.new_buf(true, m * nn);
                self.loc[n.index()] = Some(dst);
                let packed = self.pack(op(la, 0, Feat(ars), Feat(acs)), k, m);
                if nn > 1 && bcs == 1 && brs == nn as isize {
                    // A row-major B: its columns are adjacent feature rows,
                    // so all nn products are one over nn·T lanes (conv2d's
                    // W·patches: every position of every sample at once).
                    self.plan.tile_steps.push(Step::Gemm(Box::new(GemmStep {
                        m: Dim::N(m),
                        n: Dim::Lanes(nn),
                        k: Dim::N(k),
                        dst: op(dst, 0, Feat(nn as isize), Lane),
                        lhs: op(la, 0, Feat(ars), Feat(acs)),
                        rhs: op(lb, 0, Feat(brs), Lane),
                        accumulate: false,
                        packed,
                        epilogue: None,
                    })));
                    return;
                }
                for j in 0..nn {
                    self.plan.tile_steps.push(Step::Gemm(Box::new(GemmStep {
                        m: Dim::N(m),
                        n: Dim::Rows,
                        k: Dim::N(k),
                        dst: op(dst, j, Feat(nn as isize), Lane),
                        lhs: op(la, 0, Feat(ars), Feat(acs)),
                        rhs: op(lb, (bcs * j as isize) as usize, Feat(brs), Lane),
                        accumulate: false,
                        packed,
                        epilogue: None,
                    })));
                }
            }
            (true, true) => {
                // Σ_b Out = Σ_p A_p [m × rows] · B_p [rows × n], into the partial.
                // invariant: the planner runs on a verified graph; this follows from its construction.
                let (j, transposed) = direct_partial.unwrap();
                let dst = if transposed {
                    op(Loc::Partial(j), 0, Feat(1), Feat(m as isize))
                } else {
                    op(Loc::Partial(j), 0, Feat(nn as isize), Feat(1))
                };
                for p in 0..k {
                    self.plan.tile_steps.push(Step::Gemm(Box::new(GemmStep {
                        m: Dim::N(m),
                        n: Dim::N(nn),
                        k: Dim::Rows,
                        dst,
                        lhs: op(la, (acs * p as isize) as usize, Feat(ars), Lane),
                        rhs: op(lb, (brs * p as isize) as usize, Lane, Feat(bcs)),
                        accumulate: true,
                        packed: None,
                        epilogue: None,
                    })));
                }
            }
        }
    }

    /// With the panel kernel on: a `Step::Pack` of the shared `n × k`
    /// operand `src` into a new invariant buffer, which it returns.
    fn pack(&mut self, src: Operand, k: usize, n: usize) -> Option<Loc> {
        if !self.panel_gemm {
            return None;
        }
        let dst = self.new_buf(false, super::panel::packed_len(k, n));
        self.plan.inv_steps.push(Step::Pack { src, k, n, dst });
        Some(dst)
    }

    /// For a batch-dependent `h = a + b` with `a` a tile buffer and `b` a
    /// shared vector of the same size (a layer's bias), materialised, whose
    /// user `u = exp|sigmoid(h)` would be an array call: `(u, a's loc, b's
    /// loc)`. The planner then computes `h` and `u` in one AVX-512 pass.
    fn fused_bias_unary(&self, h: NodeId, live: &[bool]) -> Option<(NodeId, Loc, Loc)> {
        if !self.array_unary
            || !self.variant[h.index()]
            || self.is_out[h.index()]
            || self.inline_ok(h)
        {
            return None;
        }
        let node = self.g.node(h);
        let feats = numel(&node.shape);
        let [x, y] = node.args[..] else {
            return None;
        };
        let shared = |n: NodeId| match self.loc[n.index()] {
            Some(l @ (Loc::Input(_) | Loc::Const(_) | Loc::Inv(_))) => {
                (!self.variant[n.index()] && numel(self.g.shape(n)) == feats).then_some(l)
            }
            _ => None,
        };
        let tile = |n: NodeId| match self.loc[n.index()] {
            Some(l @ Loc::Tile(_)) => (numel(self.g.shape(n)) == feats).then_some(l),
            _ => None,
        };
        let (src, bias) = match (tile(x), shared(y), tile(y), shared(x)) {
            (Some(s), Some(b), _, _) | (_, _, Some(s), Some(b)) => (s, b),
            _ => return None,
        };
        let u = self.g.ids().find(|&u| {
            live[u.index()]
                && matches!(
                    self.g.node(u).op,
                    Op::Unary(UnaryOp::Exp | UnaryOp::Sigmoid)
                )
                && self.g.node(u).args[..] == [h]
                && self.variant[u.index()]
                && self.array_pays(u)
        })?;
        Some((u, src, bias))
    }

    /// A materialised batch-dependent `h · u` (either order) of the fused
    /// pair `h`, `u = f(h)`: computed in the same array pass.
    fn fused_product(&self, h: NodeId, u: NodeId, feats: usize, live: &[bool]) -> Option<NodeId> {
        self.g.ids().find(|&m| {
            let node = self.g.node(m);
            live[m.index()]
                && matches!(node.op, Op::Binary(BinaryOp::Mul))
                && (node.args[..] == [h, u] || node.args[..] == [u, h])
                && numel(&node.shape) == feats
                && self.variant[m.index()]
                && !self.is_out[m.index()]
                && !self.inline_ok(m)
        })
    }

    /// Whether a batch-dependent exp/sigmoid `u` of a tile buffer is worth an
    /// AVX-512 array pass of its own: when it is materialised anyway, or when
    /// it spans a layer's width (≥ `ARRAY_MIN_FEATS`), where inlining it
    /// would run the exponential on Cranelift's 4-lane vectors (a
    /// forward-only MLP kernel spent more time in its inline swish than the
    /// whole Langevin step spent in the array version).
    fn array_pays(&self, u: NodeId) -> bool {
        !self.inline_ok(u) || numel(self.g.shape(u)) >= ARRAY_MIN_FEATS
    }

    /// Where `n`'s values are stored, looking through reshapes and
    /// stop_gradient (which keep the row-major feature order, so the
    /// buffer of their operand is theirs too).
    fn tile_source(&self, mut n: NodeId) -> Option<Loc> {
        loop {
            if let Some(l) = self.loc[n.index()] {
                return Some(l);
            }
            let node = self.g.node(n);
            match node.op {
                Op::Reshape | Op::StopGradient => n = node.args[0],
                _ => return None,
            }
        }
    }

    /// Plans every live node of the graph in order (the main loop of
    /// `build`, and of a scan body's plan).
    fn plan_nodes(
        &mut self,
        live: &[bool],
        folded: &HashSet<NodeId>,
        direct: &HashMap<NodeId, (usize, bool)>,
    ) {
        let g = self.g;
        for id in g.ids() {
            if !live[id.index()] || folded.contains(&id) {
                continue;
            }
            let node = g.node(id).clone();
            let var = self.variant[id.index()];
            match node.op {
                Op::Input(i) if self.body_inputs.is_some() => {
                    let l = self.new_buf(true, numel(&node.shape));
                    self.loc[id.index()] = Some(l);
                    if let Some(ins) = self.body_inputs.as_mut() {
                        ins[i.index()] = Some(l);
                    }
                }
                Op::Input(i) => {
                    let decl = g.input(i);
                    if decl.kind == InputKind::Sample {
                        let l = self.new_buf(true, numel(&decl.shape));
                        self.plan
                            .sample_in
                            .push((i.index(), l_id(l), numel(&decl.shape)));
                        self.loc[id.index()] = Some(l);
                    } else {
                        self.loc[id.index()] = Some(Loc::Input(i.index()));
                    }
                }
                Op::Const(c) => {
                    let l = self.const_loc(c.index());
                    self.loc[id.index()] = Some(l);
                }
                Op::Scalar(_) => {}
                Op::Unary(UnaryOp::Exp | UnaryOp::Sigmoid) if self.loc[id.index()].is_some() => {
                    // Already computed with its biased argument (below).
                }
                Op::Binary(BinaryOp::Add) if self.fused_bias_unary(id, live).is_some() => {
                    // invariant: `fused_bias_unary` just returned Some.
                    let (u, src, bias) = self.fused_bias_unary(id, live).unwrap();
                    let feats = numel(&node.shape);
                    let pre = self.new_buf(true, feats);
                    let dst = self.new_buf(true, feats);
                    self.loc[id.index()] = Some(pre);
                    self.loc[u.index()] = Some(dst);
                    let sigmoid = matches!(g.node(u).op, Op::Unary(UnaryOp::Sigmoid));
                    let prod = if sigmoid {
                        self.fused_product(id, u, feats, live).map(|m| {
                            let l = self.new_buf(true, feats);
                            self.loc[m.index()] = Some(l);
                            l
                        })
                    } else {
                        None
                    };
                    self.plan.tile_steps.push(Step::ArrayUnary {
                        sigmoid,
                        src,
                        dst,
                        feats,
                        bias: Some((bias, pre)),
                        prod,
                    });
                }
                Op::Binary(BinaryOp::Mul) if self.loc[id.index()].is_some() => {
                    // Already computed by a fused array step (above).
                }
                Op::Unary(u @ (UnaryOp::Exp | UnaryOp::Sigmoid))
                    if self.array_unary
                        && var
                        && self.array_pays(id)
                        && matches!(self.tile_source(node.args[0]), Some(Loc::Tile(_))) =>
                {
                    let feats = numel(&node.shape);
                    let dst = self.new_buf(true, feats);
                    self.loc[id.index()] = Some(dst);
                    // invariant: the guard just matched a tile source.
                    let src = self.tile_source(node.args[0]).unwrap();
                    self.plan.tile_steps.push(Step::ArrayUnary {
                        sigmoid: u == UnaryOp::Sigmoid,
                        src,
                        dst,
                        feats,
                        bias: None,
                        prod: None,
                    });
                }
                Op::Unary(_) | Op::PowConst(_) | Op::Binary(_) | Op::Select => {
                    if !self.inline_ok(id) {
                        let l = self.materialise_elementwise(id, true);
                        self.loc[id.index()] = Some(l);
                    }
                }
                Op::Broadcast
                | Op::Reshape
                | Op::Transpose(_)
                | Op::Slice { .. }
                | Op::StopGradient => {}
                Op::Sum(axes) | Op::Max(axes) => {
                    let size = numel(&node.shape);
                    let dst = self.new_buf(var, size);
                    self.loc[id.index()] = Some(dst);
                    let is_sum = matches!(node.op, Op::Sum(_));
                    let ashape = g.shape(node.args[0]).to_vec();
                    let dom = numel(&ashape);
                    let red = dom / size.max(1);
                    // Input points in (output, reduced) order; within one output
                    // the reduced elements come in flat order, as the interpreter
                    // accumulates them.
                    let mut points: Vec<usize> = (0..dom).collect();
                    points.sort_by_key(|&f| reduce_dst(&ashape, axes, f));
                    let arg = node.args[0];
                    let mut build = |this: &mut Builder, gb: &mut GroupBuild, pts: &[usize]| {
                        let m: Vec<u32> = pts.iter().map(|&p| p as u32).collect();
                        this.build(gb, arg, m)
                    };
                    let shape2 = ashape.clone();
                    self.reduction(
                        var,
                        dst,
                        size,
                        red,
                        is_sum,
                        format!("{id} {}", node.op.name()),
                        &mut build,
                        &|p| reduce_dst(&shape2, axes, p),
                        points,
                    );
                }
                Op::Concat { axis } => {
                    let size = numel(&node.shape);
                    let dst = self.new_buf(var, size);
                    self.loc[id.index()] = Some(dst);
                    let axis = axis as usize;
                    let outer: usize = node.shape[..axis].iter().product();
                    let inner_out: usize = node.shape[axis..].iter().product();
                    let mut before = 0;
                    for &p in &node.args {
                        let ps = g.shape(p).to_vec();
                        let chunk: usize = ps[axis..].iter().product();
                        let dom = numel(&ps);
                        let mut gb = GroupBuild {
                            exprs: vec![],
                            memo: HashMap::new(),
                        };
                        let ident: Vec<u32> = (0..dom as u32).collect();
                        let root = self.build(&mut gb, p, ident);
                        let inner_before: usize = before * ps[axis + 1..].iter().product::<usize>();
                        let dt: Vec<u32> = (0..dom)
                            .map(|f| {
                                let (o, r) = (f / chunk, f % chunk);
                                (o * inner_out + inner_before + r) as u32
                            })
                            .collect();
                        debug_assert_eq!(outer * chunk, dom);
                        self.push_group(
                            var,
                            dom,
                            gb,
                            root,
                            dst,
                            &dt,
                            Store::Set,
                            format!("{id} concat part"),
                        );
                        before += ps[axis];
                    }
                }
                Op::MatMul => {
                    let d = direct.get(&id).copied();
                    self.matmul(id, d);
                }
                Op::Scan {
                    body,
                    seqs,
                    reverse,
                } => self.scan(id, g.body(body), seqs as usize, reverse),
            }
        }
    }

    fn inline_ok(&self, n: NodeId) -> bool {
        if self.is_out[n.index()] || self.users[n.index()] != 1 {
            return false;
        }
        // invariant: the planner runs on a verified graph; this follows from its construction.
        let u = self.user[n.index()].unwrap();
        if self.variant[n.index()] != self.variant[u.index()] {
            return false;
        }
        let un = self.g.node(u);
        match un.op {
            Op::Unary(_) | Op::PowConst(_) | Op::Binary(_) | Op::Select => true,
            Op::Sum(_) | Op::Max(_) | Op::Concat { .. } => true,
            Op::Broadcast => numel(&un.shape) == numel(self.g.shape(n)) && self.inline_ok(u),
            Op::Reshape | Op::Transpose(_) | Op::Slice { .. } | Op::StopGradient => {
                self.inline_ok(u)
            }
            _ => false,
        }
    }
}

/// Features from which an exp/sigmoid gets an array pass even when it could
/// be inlined into its single user's loop (see `Builder::array_pays`).
const ARRAY_MIN_FEATS: usize = 16;

/// Builds the schedule for `g` (memory not yet planned: locations are virtual).
pub(crate) fn build(
    g: &Graph,
    array_unary: bool,
    panel_gemm: bool,
    epilogues: bool,
) -> Result<Plan, String> {
    let live = g.live(&[]);
    let mut b = Builder::new(g, &live, None);
    b.array_unary = array_unary;
    b.panel_gemm = panel_gemm;
    // Batch-summed outputs whose node is a per-sample × per-sample product,
    // or a sum of such products, used nowhere else become batch-contracting
    // GEMMs accumulating into the partial (a parameter's gradient through a
    // gradient — score matching, improved CD — is such a sum).
    let mut partial_of = vec![None; g.outputs.len()];
    let mut direct: HashMap<NodeId, (usize, bool)> = HashMap::new();
    let mut direct_out: HashSet<NodeId> = HashSet::new();
    let mut folded: HashSet<NodeId> = HashSet::new();
    for (j, o) in g.outputs.iter().enumerate() {
        if o.reduce == BatchReduce::Sum && b.variant[o.node.index()] {
            let partial = b.plan.partials.len();
            partial_of[j] = Some(partial);
            b.plan.partials.push(numel(g.shape(o.node)));
            let once = g.outputs.iter().filter(|p| p.node == o.node).count() == 1;
            if !once || b.users[o.node.index()] != 0 {
                continue;
            }
            let mut terms = Vec::new();
            let mut adds = Vec::new();
            if product_terms(&b, o.node, false, &mut terms, &mut adds) {
                direct.extend(terms.into_iter().map(|(t, tr)| (t, (partial, tr))));
                folded.extend(adds);
                direct_out.insert(o.node);
            }
        }
    }
    b.plan_nodes(&live, &folded, &direct);
    // Outputs.
    for (j, o) in g.outputs.iter().enumerate() {
        let var = b.variant[o.node.index()];
        let size = numel(g.shape(o.node));
        let is_direct = direct_out.contains(&o.node);
        let src = if is_direct {
            OutSrc::Scalar(0.0)
        } else {
            let mut r = o.node;
            loop {
                let node = g.node(r);
                if b.loc[r.index()].is_some() {
                    break;
                }
                match node.op {
                    Op::Reshape | Op::StopGradient => r = node.args[0],
                    _ => break,
                }
            }
            if let Op::Scalar(v) = g.node(r).op {
                OutSrc::Scalar(v.get())
            } else {
                let l = match b.loc[r.index()] {
                    Some(l) => l,
                    None => {
                        let l = b.materialise_elementwise(o.node, false);
                        b.loc[o.node.index()] = Some(l);
                        l
                    }
                };
                OutSrc::Loc(l)
            }
        };
        b.plan.outputs.push(OutPlan {
            src,
            numel: size,
            reduce: o.reduce,
            variant: var,
            partial: partial_of[j],
            direct: is_direct,
        });
    }
    if epilogues {
        fuse_epilogues(&mut b.plan);
        fuse_swish_backward(&mut b);
    }
    plan_memory(&mut b);
    for g in &mut b.plan.groups {
        divide_by_reciprocal(g);
    }
    Ok(b.plan)
}

/// Whether `n` is a per-sample × per-sample matmul, or a tree of `Add`s
/// and 2-D transposes over such matmuls in which every node but `n` has
/// one user: then `terms` gets the matmuls (with whether they are added
/// transposed) and `adds` the additions and transposes (which the GEMMs'
/// accumulation, with swapped destination strides, replaces).
fn product_terms(
    b: &Builder,
    n: NodeId,
    transposed: bool,
    terms: &mut Vec<(NodeId, bool)>,
    adds: &mut Vec<NodeId>,
) -> bool {
    let node = b.g.node(n);
    let single = |a: NodeId| b.users[a.index()] == 1 && !b.is_out[a.index()];
    match node.op {
        Op::MatMul => {
            let both = b.variant[node.args[0].index()] && b.variant[node.args[1].index()];
            if both {
                terms.push((n, transposed));
            }
            both
        }
        Op::Transpose(p) if p.as_vec() == [1, 0] && single(node.args[0]) => {
            adds.push(n);
            product_terms(b, node.args[0], !transposed, terms, adds)
        }
        Op::Binary(BinaryOp::Add) => {
            let (l, r) = (node.args[0], node.args[1]);
            if l == r || !single(l) || !single(r) {
                return false;
            }
            adds.push(n);
            product_terms(b, l, transposed, terms, adds)
                && product_terms(b, r, transposed, terms, adds)
        }
        _ => false,
    }
}

/// `x / c` for a compile-time scalar `c` becomes `x · (1/c)` (a vector
/// division costs several multiplies; W1 divides its 8 logits and 8 weights
/// by σ²-terms). The reciprocal is rounded once more than the quotient, so
/// results may differ from the interpreter by an ulp; only `c` whose
/// reciprocal is a normal number in both dtypes is rewritten.
fn divide_by_reciprocal(g: &mut Group) {
    let recip = |c: f64| {
        let r = 1.0 / c;
        let ok = |v: f64| v.is_normal() && (v as f32).is_normal();
        (ok(c) && ok(r)).then_some(r)
    };
    let needs = g.exprs.iter().any(|e| match *e {
        Expr::Binary(BinaryOp::Div, _, c) => {
            matches!(g.exprs[c as usize], Expr::Scalar(k) if recip(k).is_some())
        }
        _ => false,
    });
    if !needs {
        return;
    }
    let mut map = Vec::with_capacity(g.exprs.len());
    let mut out: Vec<Expr> = Vec::with_capacity(g.exprs.len() + 4);
    for e in &g.exprs {
        let m = |i: u32| map[i as usize];
        let new = match *e {
            Expr::Binary(BinaryOp::Div, a, c) => match (g.exprs[c as usize].clone(), m(a)) {
                (Expr::Scalar(k), a) if recip(k).is_some() => {
                    // invariant: the planner runs on a verified graph; this follows from its construction.
                    out.push(Expr::Scalar(recip(k).unwrap()));
                    Expr::Binary(BinaryOp::Mul, a, out.len() as u32 - 1)
                }
                (_, a) => Expr::Binary(BinaryOp::Div, a, m(c)),
            },
            Expr::Unary(u, a) => Expr::Unary(u, m(a)),
            Expr::PowC(k, a) => Expr::PowC(k, m(a)),
            Expr::Binary(op, a, c) => Expr::Binary(op, m(a), m(c)),
            Expr::Select(c, a, d) => Expr::Select(m(c), m(a), m(d)),
            Expr::Load { .. } | Expr::Scalar(_) => e.clone(),
        };
        out.push(new);
        map.push(out.len() as u32 - 1);
    }
    g.root = map[g.root as usize];
    g.exprs = out;
}

/// Folds each biased [`Step::ArrayUnary`] into the panel GEMM right before
/// it when that GEMM's product is read by nothing else: the bias and the
/// activation then run on the accumulators in registers ([`Epilogue`]), and
/// the product is neither stored nor read back. Runs on virtual buffer ids
/// (before `plan_memory`), where one id is one value.
fn fuse_epilogues(plan: &mut Plan) {
    let reads = read_counts(plan);
    let mut i = 0;
    while i + 1 < plan.tile_steps.len() {
        let fused = match (&plan.tile_steps[i], &plan.tile_steps[i + 1]) {
            (
                Step::Gemm(g),
                &Step::ArrayUnary {
                    sigmoid,
                    src,
                    dst,
                    feats,
                    bias: Some((bias, pre)),
                    prod,
                },
            ) if g.packed.is_some()
                && g.epilogue.is_none()
                && !g.accumulate
                && matches!(g.n, Dim::Rows)
                && matches!(g.m, Dim::N(m) if m == feats)
                && g.dst.loc == src
                && g.dst.off == 0
                && matches!(g.dst.rs, Stride::Feat(1))
                && reads.get(&src) == Some(&1) =>
            {
                let mut g = g.clone();
                g.dst.loc = pre;
                g.epilogue = Some(Epilogue::Layer(Layer {
                    sigmoid,
                    bias,
                    pre: true,
                    act: Some(dst),
                    prod,
                    grad: None,
                }));
                Some(g)
            }
            _ => None,
        };
        if let Some(g) = fused {
            plan.tile_steps[i] = Step::Gemm(g);
            plan.tile_steps.remove(i + 1);
        }
        i += 1;
    }
}

/// How many times each buffer is read by the tile program and the outputs.
fn read_counts(plan: &mut Plan) -> HashMap<Loc, usize> {
    let mut reads: HashMap<Loc, usize> = HashMap::new();
    for o in &plan.outputs {
        if let OutSrc::Loc(l) = o.src {
            *reads.entry(l).or_default() += 1;
        }
    }
    for st in &mut plan.tile_steps {
        for_each_loc(st, &mut plan.groups, &mut |l, write| {
            if !write {
                *reads.entry(*l).or_default() += 1;
            }
        });
    }
    reads
}

/// A loop computing `s·(a + h·(a·(1 − a)))` feature by feature (any
/// operand order of `+` and `·`, which give the same bits): swish's
/// vector-Jacobian product at `h` (`a = σ(h)`, both tile buffers) with
/// cotangent `s` (a tile buffer, or a shared per-feature vector), as
/// reverse mode's product rule writes it once `opt` has factored out `s`.
#[derive(Clone, Copy, Debug)]
struct SwishVjp {
    cot: Loc,
    pre: Loc,
    act: Loc,
}

fn swish_vjp(g: &Group) -> Option<SwishVjp> {
    const SAME: Map = Map::Affine { a: 0, s: 1 };
    if g.store != Store::Set || g.red > 1 || !g.variant || g.dst_map != SAME {
        return None;
    }
    let e = |i: u32| &g.exprs[i as usize];
    let load = |i: u32| match *e(i) {
        Expr::Load { loc, map } if map == SAME => Some(loc),
        _ => None,
    };
    let tile = |i: u32| load(i).filter(|l| matches!(l, Loc::Tile(_)));
    let both = |op: BinaryOp, i: u32| match *e(i) {
        Expr::Binary(o, x, y) if o == op => Some([(x, y), (y, x)]),
        _ => None,
    };
    // a · (1 − a): a.
    let dsigmoid = |i: u32| {
        both(BinaryOp::Mul, i)?.into_iter().find_map(|(x, y)| {
            let a = tile(x)?;
            match *e(y) {
                Expr::Binary(BinaryOp::Sub, one, z)
                    if matches!(*e(one), Expr::Scalar(c) if c == 1.0) && load(z) == Some(a) =>
                {
                    Some(a)
                }
                _ => None,
            }
        })
    };
    // a + h · dsigmoid(a): (h, a).
    let derivative = |i: u32| {
        both(BinaryOp::Add, i)?.into_iter().find_map(|(x, w)| {
            let a = tile(x)?;
            both(BinaryOp::Mul, w)?
                .into_iter()
                .find_map(|(h, c)| (dsigmoid(c) == Some(a)).then_some((tile(h)?, a)))
        })
    };
    both(BinaryOp::Mul, g.root)?.into_iter().find_map(|(s, d)| {
        let cot = load(s)?;
        let (pre, act) = derivative(d)?;
        let shared = matches!(cot, Loc::Input(_) | Loc::Inv(_) | Loc::Const(_));
        (pre != act && cot != act && cot != pre && (shared || matches!(cot, Loc::Tile(_))))
            .then_some(SwishVjp { cot, pre, act })
    })
}

/// Folds the backward pass of swish layers into panel GEMM epilogues. A
/// loop computing swish's vector-Jacobian product ([`SwishVjp`]) at a
/// layer whose forward epilogue computes `h` and `σ(h)`:
/// * with a shared cotangent (the last hidden layer under a linear
///   readout), becomes a third output of that forward epilogue;
/// * with a cotangent that a panel GEMM produces for this loop alone (the
///   backward product through the next layer's weights), becomes
///   `product · d` in that GEMM's epilogue, where `d = σ + h·(σ·(1 − σ))`
///   is written by the forward epilogue.
///
/// Either way the loop is gone, and `h` and `σ(h)`, which only it read, are
/// no longer stored: the backward pass reads one buffer a layer instead of
/// three. The epilogues run the loop's operations in its order, so the
/// results are its bits.
fn fuse_swish_backward(b: &mut Builder) {
    let mut i = 0;
    while i < b.plan.tile_steps.len() {
        let folded = match b.plan.tile_steps[i] {
            Step::Loop(gi) => {
                swish_vjp(&b.plan.groups[gi]).is_some_and(|v| fold_swish_vjp(b, i, gi, v))
            }
            _ => false,
        };
        if folded {
            b.plan.tile_steps.remove(i);
        } else {
            i += 1;
        }
    }
    prune_epilogue_stores(&mut b.plan);
    drop_unused_groups(&mut b.plan);
}

/// Folds loop `gi` (tile step `at`) into epilogues, if its layer has one.
fn fold_swish_vjp(b: &mut Builder, at: usize, gi: usize, v: SwishVjp) -> bool {
    let (domain, dst) = (b.plan.groups[gi].domain, b.plan.groups[gi].dst);
    let is_layer = |st: &Step| match st {
        Step::Gemm(g) => matches!(
            g.epilogue,
            Some(Epilogue::Layer(e)) if e.grad.is_none()
                && e.act == Some(v.act) && g.dst.loc == v.pre
                && matches!(g.m, Dim::N(m) if m == domain)
        ),
        _ => false,
    };
    let Some(layer) = b.plan.tile_steps[..at].iter().position(is_layer) else {
        return false;
    };
    let grad = match v.cot {
        Loc::Tile(_) => {
            let reads = read_counts(&mut b.plan);
            let is_product = |st: &Step| match st {
                Step::Gemm(g) => {
                    g.packed.is_some()
                        && g.epilogue.is_none()
                        && !g.accumulate
                        && matches!(g.n, Dim::Rows)
                        && matches!(g.m, Dim::N(m) if m == domain)
                        && g.dst.loc == v.cot
                        && g.dst.off == 0
                        && matches!(g.dst.rs, Stride::Feat(1))
                }
                _ => false,
            };
            // The product must be read by this loop alone.
            let own = b.plan.groups[gi]
                .exprs
                .iter()
                .filter(|e| matches!(e, Expr::Load { loc, .. } if *loc == v.cot))
                .count();
            if reads.get(&v.cot) != Some(&own) {
                return false;
            }
            let Some(p) = (layer + 1..at).find(|&s| is_product(&b.plan.tile_steps[s])) else {
                return false;
            };
            let d = b.new_buf(true, domain);
            if let Step::Gemm(g) = &mut b.plan.tile_steps[p] {
                g.dst.loc = dst;
                g.epilogue = Some(Epilogue::Times(d));
            }
            (d, None)
        }
        shared => (dst, Some(shared)),
    };
    if let Step::Gemm(g) = &mut b.plan.tile_steps[layer]
        && let Some(Epilogue::Layer(e)) = &mut g.epilogue
    {
        e.grad = Some(grad);
    }
    true
}

/// Layer epilogue outputs nothing reads are not stored.
fn prune_epilogue_stores(plan: &mut Plan) {
    let reads = read_counts(plan);
    let read = |l: Loc| reads.get(&l).is_some_and(|&n| n > 0);
    for st in &mut plan.tile_steps {
        if let Step::Gemm(g) = st
            && let Some(Epilogue::Layer(e)) = &mut g.epilogue
            && e.grad.is_some()
        {
            e.pre = read(g.dst.loc);
            e.act = e.act.filter(|&l| read(l));
            e.prod = e.prod.filter(|&l| read(l));
        }
    }
}

/// Removes the loop groups no step calls any more, renumbering the rest.
fn drop_unused_groups(plan: &mut Plan) {
    fn visit(steps: &mut [Step], f: &mut impl FnMut(&mut usize)) {
        for st in steps {
            match st {
                Step::Loop(i) => f(i),
                Step::Scan(sc) => visit(&mut sc.body, f),
                _ => {}
            }
        }
    }
    let mut used = vec![false; plan.groups.len()];
    visit(&mut plan.tile_steps, &mut |i| used[*i] = true);
    visit(&mut plan.inv_steps, &mut |i| used[*i] = true);
    if used.iter().all(|&u| u) {
        return;
    }
    let mut new_index = vec![usize::MAX; used.len()];
    let mut kept = 0;
    for (i, &u) in used.iter().enumerate() {
        if u {
            new_index[i] = kept;
            kept += 1;
        }
    }
    let mut i = 0;
    plan.groups.retain(|_| {
        i += 1;
        used[i - 1]
    });
    visit(&mut plan.tile_steps, &mut |i| *i = new_index[*i]);
    visit(&mut plan.inv_steps, &mut |i| *i = new_index[*i]);
}

fn l_id(l: Loc) -> usize {
    match l {
        Loc::Tile(i) | Loc::Inv(i) => i,
        // invariant: the planner runs on a verified graph; this follows from its construction.
        _ => unreachable!(),
    }
}

fn for_each_loc(step: &mut Step, groups: &mut [Group], f: &mut impl FnMut(&mut Loc, bool)) {
    match step {
        Step::Loop(i) => {
            let g = &mut groups[*i];
            for e in &mut g.exprs {
                if let Expr::Load { loc, .. } = e {
                    f(loc, false);
                }
            }
            f(&mut g.dst, true);
        }
        Step::ArrayUnary {
            src,
            dst,
            bias,
            prod,
            ..
        } => {
            f(src, false);
            if let Some((b, pre)) = bias {
                f(b, false);
                f(pre, true);
            }
            f(dst, true);
            if let Some(p) = prod {
                f(p, true);
            }
        }
        Step::Gemm(s) => {
            f(&mut s.lhs.loc, false);
            f(&mut s.rhs.loc, false);
            if let Some(p) = &mut s.packed {
                f(p, false);
            }
            f(&mut s.dst.loc, true);
            match &mut s.epilogue {
                Some(Epilogue::Layer(e)) => {
                    f(&mut e.bias, false);
                    for l in [&mut e.act, &mut e.prod].into_iter().flatten() {
                        f(l, true);
                    }
                    if let Some((g, scale)) = &mut e.grad {
                        f(g, true);
                        if let Some(sc) = scale {
                            f(sc, false);
                        }
                    }
                }
                Some(Epilogue::Times(by)) => f(by, false),
                None => {}
            }
        }
        Step::Pack { src, dst, .. } => {
            f(&mut src.loc, false);
            f(dst, true);
        }
        // Every buffer of a scan, its body's included, is in use for the
        // whole step: they never share space with each other.
        Step::Scan(sc) => {
            for i in &mut sc.inputs {
                if let OutSrc::Loc(l) = &mut i.src {
                    f(l, false);
                }
                if let Some(l) = &mut i.dst {
                    f(l, true);
                }
            }
            if let OutSrc::Loc(l) = &mut sc.next {
                f(l, false);
            }
            f(&mut sc.out, true);
            for st in &mut sc.body {
                for_each_loc(st, groups, f);
            }
        }
    }
}

/// Assigns arena offsets. Invariant buffers are laid out linearly; tile
/// buffers are packed first-fit by live range over the tile schedule (a
/// buffer's space is reused once its last reader has run).
fn plan_memory(b: &mut Builder) {
    let nv = b.vbufs.len();
    let mut inv_off = vec![usize::MAX; nv];
    let mut off = 0;
    for (v, &(tile, size)) in b.vbufs.iter().enumerate() {
        if !tile {
            inv_off[v] = off;
            off += size;
        }
    }
    b.plan.inv_len = off;
    // Live ranges over tile steps: sample inputs are defined before step 0,
    // outputs live to the end.
    let nsteps = b.plan.tile_steps.len();
    let mut first = vec![usize::MAX; nv];
    let mut last = vec![0usize; nv];
    for &(_, v, _) in &b.plan.sample_in {
        first[v] = 0;
    }
    let mut steps = std::mem::take(&mut b.plan.tile_steps);
    for (s, step) in steps.iter_mut().enumerate() {
        for_each_loc(step, &mut b.plan.groups, &mut |l, _| {
            if let Loc::Tile(v) = *l {
                first[v] = first[v].min(s);
                last[v] = last[v].max(s);
            }
        });
    }
    for o in &b.plan.outputs {
        if let OutSrc::Loc(Loc::Tile(v)) = o.src {
            last[v] = nsteps;
        }
    }
    let mut tile_off = vec![usize::MAX; nv];
    let mut free: Vec<(usize, usize)> = vec![];
    let mut top = 0;
    for s in 0..=nsteps {
        for v in 0..nv {
            if b.vbufs[v].0 && first[v] == s {
                let size = b.vbufs[v].1;
                let slot = free.iter().position(|&(_, len)| len >= size);
                tile_off[v] = match slot {
                    Some(i) => {
                        let (o, len) = free[i];
                        if len == size {
                            free.remove(i);
                        } else {
                            free[i] = (o + size, len - size);
                        }
                        o
                    }
                    None => {
                        top += size;
                        top - size
                    }
                };
            }
        }
        for v in 0..nv {
            if b.vbufs[v].0 && first[v] != usize::MAX && last[v] == s && s < nsteps {
                free.push((tile_off[v], b.vbufs[v].1));
                free.sort();
                let mut merged: Vec<(usize, usize)> = vec![];
                for &(o, l) in &free {
                    match merged.last_mut() {
                        Some((mo, ml)) if *mo + *ml == o => *ml += l,
                        _ => merged.push((o, l)),
                    }
                }
                free = merged;
            }
        }
    }
    b.plan.tile_feats = top;
    let remap = |l: &mut Loc, _w: bool| match *l {
        Loc::Tile(v) => *l = Loc::Tile(tile_off[v]),
        Loc::Inv(v) => *l = Loc::Inv(inv_off[v]),
        _ => {}
    };
    let mut remap = remap;
    for step in steps.iter_mut() {
        for_each_loc(step, &mut b.plan.groups, &mut remap);
    }
    let mut inv_steps = std::mem::take(&mut b.plan.inv_steps);
    for step in inv_steps.iter_mut() {
        for_each_loc(step, &mut b.plan.groups, &mut remap);
    }
    b.plan.tile_steps = steps;
    b.plan.inv_steps = inv_steps;
    for s in &mut b.plan.sample_in {
        s.1 = tile_off[s.1];
    }
    for o in &mut b.plan.outputs {
        if let OutSrc::Loc(l) = &mut o.src {
            remap(l, false);
        }
    }
}
