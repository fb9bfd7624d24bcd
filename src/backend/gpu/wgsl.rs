//! WGSL code generation: an IR graph becomes one shader module with one
//! compute entry point per materialised node, and the arena layout the
//! host fills and reads. Pure text and offsets — no device — so
//! `ebm dump --stage wgsl` and its golden tests run anywhere.
//!
//! Layout. All values live in one `f32` storage array, the *arena*: first
//! the batch-invariant region (shared inputs, nodes that read no sample
//! input, the accumulators of batch-summed outputs), then one region per
//! batch-dependent node, `batch × numel` values each, sample-major, so a
//! sample input is one contiguous copy in and a per-sample output one copy
//! out. Batch-dependent offsets scale with the batch of the call (a uniform),
//! so one program serves every chunk size. Constants are a second, read-only
//! array; scalars are literals. `Reshape` and `StopGradient` reuse their
//! operand's storage.
//!
//! Shapes of a program. A pass per stored node, in graph order, passes
//! that read nothing another writes (but their own element) sharing one
//! dispatch ([`Group`]), and batch-invariant values of inputs and
//! constants computed first, together; or, for
//! a small graph (`fits_one_pass`), one pass in which each sample's
//! invocation computes all its nodes as loops over their elements (in a
//! long body, with trip counts hidden from the shader compiler, which
//! would unroll them: `settle_trips`). A scan is always the latter form
//! inside its own pass: each sample's invocation runs the whole
//! recurrence, its step's nodes as loops.
//!
//! Semantics. Every op is written to meet `ir::op`'s specification
//! (`SPECIAL_CASES`): `max_number`/`min_number` by bits, `pow` with IEEE
//! special cases, sums and matrix products accumulated in the
//! interpreter's order.

use std::fmt::Write;

use crate::ir::{BatchReduce, BinaryOp, Graph, InputKind, NodeId, Op, UnaryOp, numel};

/// Where a node's values are read from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Loc {
    /// The invariant region, at this offset.
    Inv(usize),
    /// A batch-dependent region: `VB + off·batch + b·numel`.
    Var(usize),
    /// The constants array (graph constants and scalars), at this offset.
    Const(usize),
}

/// One dispatch: the entry point computing one node.
#[derive(Clone, Debug, PartialEq)]
pub struct Pass {
    pub entry: String,
    /// Per sample (`batch × numel` invocations) or once (`numel`).
    pub varying: bool,
    pub numel: usize,
    /// A tiled matrix product: one workgroup per [`TILE`]×[`TILE`] block of
    /// its `batch·rows × cols` output, instead of one invocation per value.
    pub tiled: Option<Tiled>,
    /// Reads nothing but constants: its values are the same at every call,
    /// so a step loop computes them at its first step only.
    pub once: bool,
}

/// The output shape of a tiled product: `rows` per sample (1 for a vector
/// times a matrix), `cols` columns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tiled {
    pub rows: usize,
    pub cols: usize,
}

/// What the tiled pass of one product reads: the per-sample operand's
/// region (the rows) and the start of an indexing expression into the
/// shared matrix (`k × cols`, or `cols × k` read transposed).
struct TiledOperands {
    shape: Tiled,
    k: usize,
    a_off: usize,
    b_at: String,
    b_transposed: bool,
}

impl Pass {
    /// Workgroups for a call of `batch` samples.
    pub fn groups(&self, batch: usize) -> usize {
        match self.tiled {
            Some(t) => (batch * t.rows).div_ceil(TILE) * t.cols.div_ceil(TILE),
            None => {
                let count = if self.varying {
                    batch * self.numel
                } else {
                    self.numel
                };
                count.div_ceil(WORKGROUP)
            }
        }
    }
}

/// Where the host writes one graph input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSlot {
    pub numel: usize,
    /// `None` for an input no output reads.
    pub region: Option<Region>,
}

/// A region of the arena.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Region {
    /// `numel` values at this offset of the invariant region.
    Inv(usize),
    /// `batch × numel` values at `VB + off·batch`.
    Var(usize),
}

/// How the host reads one graph output.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputSlot {
    /// Per-sample values of a batch-dependent node.
    Rows { off: usize, numel: usize },
    /// A value that does not depend on the sample: one copy per sample
    /// (per-sample output) or the batch-sum of copies (summed output).
    Same {
        loc: Source,
        numel: usize,
        reduce: BatchReduce,
    },
    /// The batch sum of a batch-dependent node, in invariant accumulators.
    Sum { acc: usize, numel: usize },
}

/// An invariant value the host reads: from the arena or the constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source {
    Arena(usize),
    Const(usize),
}

/// A generated program: the WGSL text and everything the host needs to run it.
#[derive(Clone, Debug)]
pub struct Program {
    /// The whole module: [`PRELUDE`], then `kernel`.
    pub source: String,
    /// What is particular to this graph (`ebm dump --stage wgsl`).
    pub kernel: String,
    pub passes: Vec<Pass>,
    /// f32 values of the invariant region.
    pub inv_len: usize,
    /// f32 values of the batch-dependent regions, per sample.
    pub per_sample: usize,
    pub inputs: Vec<InputSlot>,
    pub outputs: Vec<OutputSlot>,
    /// The constants array (at least one value: bindings may not be empty).
    pub consts: Vec<f32>,
}

/// Why a graph has no GPU program.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported(pub String);

const WORKGROUP: usize = 64;
/// Invocations along x per row of the dispatch grid (65535 workgroups).
pub const ROW: usize = 65535 * WORKGROUP;

/// Output rows and columns of one workgroup of a tiled matrix product.
pub const TILE: usize = 64;
/// The contraction's slice staged in workgroup memory per round.
const TILE_K: usize = 16;
/// The fewest output columns and contraction length a tiled product has.
pub const MIN_TILED: usize = 16;

/// The dispatch grid `(x, y)` for `groups` workgroups (at most 65535 along
/// x; shaders number their workgroup `x + y·65535` and skip the surplus).
pub fn grid(groups: usize) -> (u32, u32) {
    let groups = groups.max(1);
    if groups <= 65535 {
        (groups as u32, 1)
    } else {
        (65535, groups.div_ceil(65535) as u32)
    }
}

/// Generates the program of `g` (verified).
pub fn generate(g: &Graph) -> Result<Program, Unsupported> {
    generate_as(g, true)
}

/// [`generate`], a small graph as one pass only when `one_pass` (else a
/// pass per stored node, as every larger graph).
pub fn generate_as(g: &Graph, one_pass: bool) -> Result<Program, Unsupported> {
    Gen::new(g).run(one_pass)
}

struct Gen<'g> {
    g: &'g Graph,
    locs: Vec<Option<Loc>>,
    /// Computed inside its one consumer's expression, never stored.
    inlined: Vec<bool>,
    /// A product of two per-sample operands whose only use is a
    /// batch-summed output: computed straight into the output's
    /// accumulators, never stored per sample.
    summed: Vec<bool>,
    varying: Vec<bool>,
    inv_len: usize,
    per_sample: usize,
    consts: Vec<f32>,
    const_off: Vec<usize>,
    body: String,
    passes: Vec<Pass>,
    /// Whether a tiled product needs the workgroup staging arrays.
    tiles: bool,
    /// Set while generating a scan's step (`scan_code`): `body` is then
    /// statements, not entry points.
    step: Option<Step>,
    /// The dispatch being gathered ([`Group`]); written out by `flush`.
    open: Option<Group>,
    /// The first dispatches: batch-invariant passes that read only
    /// constants (`once`), and those that read only inputs and constants
    /// (`front`), gathered from anywhere in the graph (nothing they read
    /// is written by a pass, so they may run before every pass).
    once: Option<Group>,
    front: Option<Group>,
    /// The stored nodes the pass being generated reads, each with whether
    /// every read is at the pass's own element `e` (`read` records them).
    reads: std::cell::RefCell<Vec<(NodeId, bool)>>,
}

/// One dispatch gathering several elementwise-shaped passes (a value per
/// element of a stored node, or a batch sum's accumulators) of the same
/// kind (per sample or once): each member runs in its own block, guarded
/// by its element count, over the largest count of the group. A member
/// reads no value another member writes, except the element its own
/// invocation wrote just before (same count, same index): invocations of
/// one dispatch are not ordered, the statements of one invocation are.
/// The dispatches, not the arithmetic, are what a small graph costs on a
/// GPU, each a full barrier.
struct Group {
    varying: bool,
    /// Every member reads constants only ([`Pass::once`]).
    once: bool,
    numel: usize,
    members: Vec<Member>,
    writes: Vec<NodeId>,
    loops: usize,
}

struct Member {
    entry: String,
    comment: String,
    numel: usize,
    /// Statements with `b` and `e` in scope.
    code: String,
}

impl Group {
    fn new(varying: bool, once: bool) -> Group {
        Group {
            varying,
            once,
            numel: 0,
            members: Vec::new(),
            writes: Vec::new(),
            loops: 0,
        }
    }

    fn add(&mut self, member: Member, loops: usize, writes: Option<NodeId>) {
        self.numel = self.numel.max(member.numel);
        self.loops += loops;
        self.writes.extend(writes);
        self.members.push(member);
    }

    /// The entry point's text and its pass.
    fn entry_point(self) -> (String, Pass) {
        let n = self.numel;
        let entry = match &self.members[..] {
            [one] => one.entry.clone(),
            [first, .., last] => format!("{}_{}", first.entry, last.entry),
            [] => String::new(),
        };
        let mut s = String::new();
        if self.once {
            let _ = writeln!(
                s,
                "// of constants only: a step loop runs this at its first step"
            );
        }
        for m in &self.members {
            let _ = writeln!(s, "// {}", m.comment);
        }
        let _ = writeln!(s, "@compute @workgroup_size({WORKGROUP})");
        let _ = writeln!(
            s,
            "fn {entry}(@builtin(global_invocation_id) gid: vec3<u32>) {{"
        );
        let _ = writeln!(s, "  let i = gid.x + gid.y * {ROW}u;");
        if self.varying {
            let _ = writeln!(s, "  if (i >= P.batch * {n}u) {{ return; }}");
            let _ = writeln!(s, "  let b = i / {n}u;\n  let e = i % {n}u;");
        } else {
            let _ = writeln!(s, "  if (i >= {n}u) {{ return; }}");
            let _ = writeln!(s, "  let b = 0u;\n  let e = i;");
        }
        match &self.members[..] {
            [one] => s.push_str(&one.code),
            many => {
                for m in many {
                    match m.numel < n {
                        true => {
                            let _ = writeln!(s, "  if (e < {}u) {{", m.numel);
                        }
                        false => s.push_str("  {\n"),
                    }
                    s.push_str(&indent(&m.code));
                    s.push_str("  }\n");
                }
            }
        }
        s.push_str("}\n\n");
        let pass = Pass {
            entry,
            varying: self.varying,
            numel: n,
            tiled: None,
            once: self.once,
        };
        (s, pass)
    }
}

/// The most passes one dispatch gathers ...
const GROUP_MEMBERS: usize = 16;
/// ... and the most loops its members may hold together: a shader
/// compiler unrolls loops of known counts, and a long body of them takes
/// seconds to compile (see `settle_trips`).
const GROUP_LOOPS: usize = 8;

/// How a graph is generated as statements of one invocation per sample —
/// a scan's step, inside the invocation that runs its sample's whole
/// recurrence, or a small graph whole (`fits_one_pass`): every node is a
/// loop over its elements, stored per sample (or once, for a scan that
/// reads no sample input) whatever its own operands are, so that no two
/// invocations share a value they write.
#[derive(Clone, Copy)]
struct Step {
    varying: bool,
    /// The whole graph in one pass (`one_pass`): its inputs stay where the
    /// host writes them (a shared input once), not per sample.
    whole: bool,
    /// Nesting depth (1 for a scan's step, 2 for a scan inside it, ..),
    /// which names the loop counters apart.
    depth: usize,
}

impl<'g> Gen<'g> {
    fn new(g: &'g Graph) -> Gen<'g> {
        let mut consts = Vec::new();
        let mut const_off = Vec::new();
        for c in g.consts() {
            const_off.push(consts.len());
            consts.extend(c.data.iter().map(|&v| v as f32));
        }
        Gen {
            g,
            locs: vec![None; g.len()],
            inlined: vec![false; g.len()],
            summed: vec![false; g.len()],
            varying: vec![false; g.len()],
            inv_len: 0,
            per_sample: 0,
            consts,
            const_off,
            body: String::new(),
            passes: Vec::new(),
            tiles: false,
            step: None,
            open: None,
            once: None,
            front: None,
            reads: Default::default(),
        }
    }

    /// The generator of a scan's step `body`: it continues this one's
    /// arena regions and constants (`finish_step` hands them back).
    fn step_gen(&mut self, body: &'g Graph, varying: bool) -> Gen<'g> {
        let mut consts = std::mem::take(&mut self.consts);
        let const_off = body
            .consts()
            .iter()
            .map(|c| {
                let off = consts.len();
                consts.extend(c.data.iter().map(|&v| v as f32));
                off
            })
            .collect();
        let depth = self.step.map_or(0, |s| s.depth) + 1;
        Gen {
            g: body,
            locs: vec![None; body.len()],
            inlined: vec![false; body.len()],
            summed: vec![false; body.len()],
            varying: vec![false; body.len()],
            inv_len: self.inv_len,
            per_sample: self.per_sample,
            consts,
            const_off,
            body: String::new(),
            passes: Vec::new(),
            tiles: false,
            step: Some(Step {
                varying,
                whole: false,
                depth,
            }),
            open: None,
            once: None,
            front: None,
            reads: Default::default(),
        }
    }

    fn finish_step(&mut self, step: Gen<'g>) {
        self.inv_len = step.inv_len;
        self.per_sample = step.per_sample;
        self.consts = step.consts;
    }

    /// Allocates and generates every live node.
    fn nodes(&mut self) -> Result<(), Unsupported> {
        let live = self.g.live(&[]);
        self.choose_inlined(&live);
        for id in self.g.ids() {
            if live[id.index()] {
                self.node(id)?;
            }
        }
        Ok(())
    }

    fn run(mut self, one_pass: bool) -> Result<Program, Unsupported> {
        if one_pass && fits_one_pass(self.g) {
            self.one_pass()?;
        } else {
            self.nodes()?;
        }
        let inputs = self.input_slots();
        let outputs = self.output_slots();
        self.flush();
        self.flush_front();
        if self.consts.is_empty() {
            self.consts.push(0.0);
        }
        Ok(Program {
            source: format!("{PRELUDE}{}", self.kernel_text()),
            kernel: self.kernel_text(),
            passes: self.passes,
            inv_len: self.inv_len.max(1),
            per_sample: self.per_sample,
            inputs,
            outputs,
            consts: self.consts,
        })
    }

    /// The whole graph as the one entry point `all`: each sample's
    /// invocation computes every node of its sample in turn.
    fn one_pass(&mut self) -> Result<(), Unsupported> {
        self.step = Some(Step {
            varying: true,
            whole: true,
            depth: 0,
        });
        self.nodes()?;
        let statements = settle_trips(&std::mem::take(&mut self.body));
        self.step = None;
        // The body is a function of the sample, so that a step loop can
        // run it inside its own entry point (`gpu::steps`).
        let _ = write!(
            self.body,
            "// the whole graph: one invocation per sample computes every value\n\
             fn all_of(b: u32) {{\n{statements}}}\n\n\
             @compute @workgroup_size({WORKGROUP})\n\
             fn all(@builtin(global_invocation_id) gid: vec3<u32>) {{\n\
             \x20 let i = gid.x + gid.y * {ROW}u;\n\
             \x20 if (i >= P.batch) {{ return; }}\n\
             \x20 all_of(i);\n\
             }}\n\n"
        );
        self.passes.push(Pass {
            entry: "all".into(),
            varying: true,
            numel: 1,
            tiled: None,
            once: false,
        });
        Ok(())
    }

    fn alloc(&mut self, varying: bool, n: usize) -> Loc {
        if varying {
            let off = self.per_sample;
            self.per_sample += n;
            Loc::Var(off)
        } else {
            let off = self.inv_len;
            self.inv_len += n;
            Loc::Inv(off)
        }
    }

    /// Which nodes are computed inside their consumer's expression: an
    /// elementwise op or view with one use (not an output) whose consumer
    /// maps indices one-to-one or by a view — never into a reduction, a
    /// product, a concatenation or an expanding broadcast, which would
    /// compute it many times over — and that is batch-dependent exactly
    /// when its consumer is (an invariant value is computed once, not per
    /// sample). Expressions nest at most `MAX_INLINE_DEPTH` deep. One pass
    /// then computes a whole chain of elementwise ops: the launches, not
    /// the arithmetic, are what a small graph costs on a GPU.
    fn choose_inlined(&mut self, live: &[bool]) {
        let g = self.g;
        let mut uses = vec![0usize; g.len()];
        let mut user = vec![None; g.len()];
        for id in g.ids().filter(|id| live[id.index()]) {
            for a in &g.node(id).args {
                uses[a.index()] += 1;
                user[a.index()] = Some(id);
            }
        }
        for o in &g.outputs {
            uses[o.node.index()] += 2;
        }
        for id in g.ids().filter(|id| live[id.index()]) {
            let node = g.node(id);
            self.varying[id.index()] = match (node.op, self.step) {
                (Op::Input(i), Some(Step { whole: true, .. }) | None) => {
                    g.input(i).kind == InputKind::Sample
                }
                (_, Some(step)) => step.varying,
                (_, None) => node.args.iter().any(|a| self.varying[a.index()]),
            };
        }
        for o in &g.outputs {
            let i = o.node.index();
            let node = g.node(o.node);
            self.summed[i] = uses[i] == 2
                && o.reduce == BatchReduce::Sum
                && node.op == Op::MatMul
                && node.args.iter().all(|a| self.varying[a.index()]);
        }
        // In graph order, so every operand is decided before its user: a
        // node's depth counts the inlined expressions below it.
        let mut depth = vec![0usize; g.len()];
        for id in g.ids().filter(|id| live[id.index()]) {
            let (i, node) = (id.index(), g.node(id));
            depth[i] = 1 + node
                .args
                .iter()
                .filter(|a| self.inlined[a.index()])
                .map(|a| depth[a.index()])
                .max()
                .unwrap_or(0);
            let Some(c) = user[i] else { continue };
            self.inlined[i] = uses[i] == 1
                && maps_elements(node.op)
                && maps_elements(g.node(c).op)
                && !matches!(g.node(c).op, Op::Broadcast)
                && self.varying[i] == self.varying[c.index()]
                && depth[i] < MAX_INLINE_DEPTH;
        }
    }

    fn loc(&self, id: NodeId) -> Option<Loc> {
        self.locs[id.index()]
    }

    fn node(&mut self, id: NodeId) -> Result<(), Unsupported> {
        let node = self.g.node(id);
        let varying = self.varying[id.index()];
        let n = numel(&node.shape);
        let loc = match node.op {
            // In the constants array, not a literal: a shader compiler
            // folds literals without IEEE care (0·inf, −0 + 0).
            Op::Scalar(v) => {
                self.consts.push(v.get() as f32);
                Loc::Const(self.consts.len() - 1)
            }
            Op::Const(c) => Loc::Const(self.const_off[c.index()]),
            Op::Input(_) => self.alloc(varying, n),
            _ if self.inlined[id.index()] || self.summed[id.index()] => return Ok(()),
            Op::Reshape | Op::StopGradient if self.loc(node.args[0]).is_some() => {
                // invariant: just checked.
                self.loc(node.args[0]).expect("stored operand")
            }
            Op::Scan { .. } => {
                let loc = self.alloc(varying, n);
                let code = self.scan_code(id, loc)?;
                match self.step {
                    Some(_) => {
                        let _ = writeln!(self.body, "  {{\n{}  }}", indent(&code));
                    }
                    None => self.scan_pass(id, varying, &code),
                }
                loc
            }
            _ => {
                let loc = self.alloc(varying, n);
                self.emit(id, loc)?;
                loc
            }
        };
        self.locs[id.index()] = Some(loc);
        Ok(())
    }

    /// The base address expression of a location inside an entry point
    /// (`b` is the sample index there).
    fn base(&self, loc: Loc, n: usize) -> String {
        match loc {
            Loc::Inv(o) => format!("{o}u"),
            Loc::Var(o) => format!("VB + {o}u * P.batch + b * {n}u"),
            Loc::Const(o) => format!("{o}u"),
        }
    }

    /// Element `idx` (a u32 expression) of operand `a`: a load, or the
    /// expression of an inlined node.
    fn read(&self, a: NodeId, idx: &str, s: &mut String) -> String {
        let n = numel(self.g.shape(a));
        match self.loc(a) {
            Some(loc @ Loc::Const(_)) => format!("C[{} + {idx}]", self.base(loc, n)),
            Some(loc) => {
                self.reads.borrow_mut().push((a, idx == "e"));
                format!("A[{} + {idx}]", self.base(loc, n))
            }
            None => self.expr(a, idx, s),
        }
    }

    /// Element `idx` of an elementwise op or view, as one expression. A
    /// view's re-indexing is bound to a `let` in `s` (named after the
    /// node), so nested views never copy an index expression into itself.
    fn expr(&self, id: NodeId, idx: &str, s: &mut String) -> String {
        let node = self.g.node(id);
        let arg = |i: usize| node.args[i];
        match node.op {
            Op::Unary(u) => unary(u, &self.read(arg(0), idx, s)),
            Op::PowConst(c) => {
                let c = c.get() as f32;
                let x = self.read(arg(0), idx, s);
                if c == 2.0 {
                    format!("sq({x})")
                } else if c == 1.0 {
                    x
                } else if c == -1.0 {
                    format!("(1.0 / {x})")
                } else {
                    format!("pow_ieee({x}, {})", lit(c))
                }
            }
            Op::Binary(op) => binary(op, &self.read(arg(0), idx, s), &self.read(arg(1), idx, s)),
            // `!(c == 0)`: a NaN condition picks `a` (`!=` is ordered in
            // some compilers).
            Op::Select => format!(
                "select({}, {}, !({} == 0.0))",
                self.read(arg(2), idx, s),
                self.read(arg(1), idx, s),
                self.read(arg(0), idx, s)
            ),
            Op::Broadcast => {
                let from = self.g.shape(arg(0));
                let to = &node.shape;
                let off = to.len() - from.len();
                let st = strides(from);
                let terms: Vec<String> = (0..from.len())
                    .filter(|&i| from[i] != 1)
                    .map(|i| format!("{} * {}u", coord(idx, to, i + off), st[i]))
                    .collect();
                self.read(arg(0), &bind(s, id, &terms), s)
            }
            Op::Transpose(p) => {
                let st = strides(self.g.shape(arg(0)));
                let terms: Vec<String> = p
                    .as_vec()
                    .iter()
                    .enumerate()
                    .map(|(i, &a)| format!("{} * {}u", coord(idx, &node.shape, i), st[a]))
                    .collect();
                self.read(arg(0), &bind(s, id, &terms), s)
            }
            Op::Slice { axis, start, step } => {
                let st = strides(self.g.shape(arg(0)));
                let axis = axis as usize;
                let terms: Vec<String> = (0..node.shape.len())
                    .map(|i| {
                        let c = coord(idx, &node.shape, i);
                        if i == axis {
                            format!("({start}u + {c} * {step}u) * {}u", st[i])
                        } else {
                            format!("{c} * {}u", st[i])
                        }
                    })
                    .collect();
                self.read(arg(0), &bind(s, id, &terms), s)
            }
            // A reshape keeps the row-major order; stop_gradient is the identity.
            _ => self.read(arg(0), idx, s),
        }
    }

    fn emit(&mut self, id: NodeId, loc: Loc) -> Result<(), Unsupported> {
        if self.step.is_some() {
            return self.emit_in_step(id, loc);
        }
        if let Some(ops) = self.tileable(id) {
            self.flush();
            self.emit_tiled(id, loc, ops);
            return Ok(());
        }
        let node = self.g.node(id);
        let n = numel(&node.shape);
        self.reads.borrow_mut().clear();
        let mut code = String::new();
        let value = self.value(id, &mut code)?;
        let _ = writeln!(code, "  A[{} + e] = {value};", self.base(loc, n));
        let member = Member {
            entry: format!("n{}", id.index()),
            comment: format!(
                "{} {:?} -> {:?}",
                node.op.name(),
                node.args.iter().map(|a| a.index()).collect::<Vec<_>>(),
                node.shape
            ),
            numel: n,
            code,
        };
        self.join(member, self.varying[id.index()], Some(id));
        Ok(())
    }

    /// Adds a pass to the open dispatch when it may run there (see
    /// [`Group`]), else to a new one; `writes` is the node it stores. The
    /// reads are those `read` recorded while its code was generated.
    fn join(&mut self, member: Member, varying: bool, writes: Option<NodeId>) {
        let reads = self.reads.take();
        let loops = member.code.matches("for (").count();
        let n = member.numel;
        let g = self.g;
        let from_inputs = reads
            .iter()
            .all(|&(r, _)| matches!(g.node(r).op, Op::Input(_)));
        if !varying && from_inputs {
            let once = reads.is_empty();
            let slot = if once {
                &mut self.once
            } else {
                &mut self.front
            };
            let front = slot.get_or_insert_with(|| Group::new(false, once));
            if front.members.len() < GROUP_MEMBERS && front.loops + loops <= GROUP_LOOPS {
                front.add(member, loops, writes);
                return;
            }
        }
        let fits = self.open.as_ref().is_some_and(|open| {
            open.varying == varying
                && open.members.len() < GROUP_MEMBERS
                && open.loops + loops <= GROUP_LOOPS
                && reads
                    .iter()
                    .all(|&(r, own)| !open.writes.contains(&r) || (own && numel(g.shape(r)) == n))
        });
        if !fits {
            self.flush();
        }
        let open = self.open.get_or_insert_with(|| Group::new(varying, false));
        open.add(member, loops, writes);
    }

    /// Writes the open dispatch out as one entry point.
    fn flush(&mut self) {
        if let Some(group) = self.open.take() {
            let (text, pass) = group.entry_point();
            self.body.push_str(&text);
            self.passes.push(pass);
        }
    }

    /// Writes the front dispatches out, ahead of every other: the values
    /// of constants, then those of inputs.
    fn flush_front(&mut self) {
        for group in [self.front.take(), self.once.take()].into_iter().flatten() {
            let (text, pass) = group.entry_point();
            self.body.insert_str(0, &text);
            self.passes.insert(0, pass);
        }
    }

    /// A node of a scan's step or of a one-pass graph: a loop over its
    /// elements in the invocation's statements.
    fn emit_in_step(&mut self, id: NodeId, loc: Loc) -> Result<(), Unsupported> {
        let node = self.g.node(id);
        let n = numel(&node.shape);
        let mut s = String::new();
        let value = self.value(id, &mut s)?;
        let _ = writeln!(
            self.body,
            "  // {} {:?} -> {:?}\n  for (var e = 0u; e < {}; e++) {{\n{}    A[{} + e] = {value};\n  }}",
            node.op.name(),
            node.args.iter().map(|a| a.index()).collect::<Vec<_>>(),
            node.shape,
            self.trips(n),
            indent(&s),
            self.base(loc, n)
        );
        Ok(())
    }

    /// A loop's trip count `n` in WGSL. Inside a step or one-pass body
    /// (one invocation looping over a sample's values) a count of 2 or
    /// more carries the [`TRIPS`] mark, which [`settle_trips`] turns into
    /// a count the shader compiler sees or one it cannot.
    fn trips(&self, n: usize) -> String {
        match self.step {
            Some(_) if n >= 2 => format!("{n}u{TRIPS}"),
            _ => format!("{n}u"),
        }
    }

    /// The statements that run scan `id` for sample `b`, its carries
    /// stored at `loc`: the captured values copied into the step's inputs
    /// once, then per step the sequences' rows copied in, the step's
    /// statements, and its result copied to row t and into the carry —
    /// the interpreter's order of operations, so the same values.
    fn scan_code(&mut self, id: NodeId, loc: Loc) -> Result<String, Unsupported> {
        let g = self.g;
        let node = g.node(id);
        let Op::Scan {
            body,
            seqs,
            reverse,
        } = node.op
        else {
            return Err(Unsupported(format!("{} is not a scan", node.op.name())));
        };
        let seqs = seqs as usize;
        let mut step = self.step_gen(g.body(body), self.varying[id.index()]);
        step.nodes()?;
        let depth = step.step.map_or(1, |s| s.depth);
        let input_loc = |i: usize| {
            step.g.ids().find_map(|n| match step.g.node(n).op {
                Op::Input(j) if j.index() == i => step.locs[n.index()],
                _ => None,
            })
        };
        let (len, carry) = (node.shape[0], numel(&node.shape[1..]));
        let (u, t) = (format!("u{depth}"), format!("t{depth}"));
        let mut s = String::new();
        // The carry's first value and the captures, once.
        for (i, &a) in node.args.iter().enumerate() {
            if let Some(to) = input_loc(i).filter(|_| i == 0 || i > seqs) {
                s.push_str(&self.copy_in(a, "e", to, numel(g.shape(a)), &step));
            }
        }
        let row = if reverse {
            format!("{}u - {u}", len - 1)
        } else {
            u.clone()
        };
        let mut each = format!("  let {t} = {row};\n");
        for (i, &a) in node.args.iter().enumerate().take(1 + seqs).skip(1) {
            if let Some(to) = input_loc(i) {
                let n = numel(&g.shape(a)[1..]);
                each.push_str(&self.copy_in(a, &format!("{t} * {n}u + e"), to, n, &step));
            }
        }
        each.push_str(&step.body);
        let mut read = String::new();
        let next = step.read(step.g.outputs[0].node, "e", &mut read);
        let carry_to = input_loc(0)
            .map(|to| format!("    A[{} + e] = v;\n", step.base(to, carry)))
            .unwrap_or_default();
        let _ = writeln!(
            each,
            "  for (var e = 0u; e < {}; e++) {{\n{}    let v = {next};\n\
             \x20   A[{} + {t} * {carry}u + e] = v;\n{carry_to}  }}",
            step.trips(carry),
            indent(&read),
            self.base(loc, numel(&node.shape)),
        );
        let _ = writeln!(
            s,
            "  for (var {u} = 0u; {u} < {}; {u}++) {{\n{}  }}",
            step.trips(len),
            indent(&each)
        );
        self.finish_step(step);
        Ok(s)
    }

    /// A loop copying `n` values of operand `a` (element `idx`, a function
    /// of `e`) to the step input stored at `to`.
    fn copy_in(&self, a: NodeId, idx: &str, to: Loc, n: usize, step: &Gen<'_>) -> String {
        let mut s = String::new();
        let v = self.read(a, idx, &mut s);
        format!(
            "  for (var e = 0u; e < {}; e++) {{\n{}    A[{} + e] = {v};\n  }}\n",
            step.trips(n),
            indent(&s),
            step.base(to, n)
        )
    }

    /// The entry point of a scan outside any step: one invocation per
    /// sample (one in all for a scan that reads no sample input) runs the
    /// whole recurrence.
    fn scan_pass(&mut self, id: NodeId, varying: bool, code: &str) {
        self.flush();
        let code = settle_trips(code);
        let entry = format!("n{}", id.index());
        let (count, b) = if varying {
            ("P.batch", "i")
        } else {
            ("1u", "0u")
        };
        let node = self.g.node(id);
        let _ = write!(
            self.body,
            "// {} {:?} -> {:?}: one invocation per sample runs the recurrence\n\
             @compute @workgroup_size({WORKGROUP})\n\
             fn {entry}(@builtin(global_invocation_id) gid: vec3<u32>) {{\n\
             \x20 let i = gid.x + gid.y * {ROW}u;\n\
             \x20 if (i >= {count}) {{ return; }}\n\
             \x20 let b = {b};\n{code}}}\n\n",
            node.op.name(),
            node.args.iter().map(|a| a.index()).collect::<Vec<_>>(),
            node.shape,
        );
        self.passes.push(Pass {
            entry,
            varying,
            numel: 1,
            tiled: None,
            once: false,
        });
    }

    /// A product the tiled pass computes: per-sample rows (a vector or a
    /// matrix) times a matrix shared by every sample, so that over a call
    /// it is one `batch·rows × k` by `k × cols` product — or a shared
    /// matrix times a per-sample vector, the same product transposed. Products of two
    /// per-sample operands, with a vector on the right, or narrower than
    /// [`MIN_TILED`] columns or contraction (a 64-wide tile would idle most
    /// of its invocations, or stage more than it computes) keep the plain
    /// pass.
    fn tileable(&self, id: NodeId) -> Option<TiledOperands> {
        let node = self.g.node(id);
        if node.op != Op::MatMul {
            return None;
        }
        let (a, b) = (node.args[0], node.args[1]);
        let (sa, sb) = (self.g.shape(a), self.g.shape(b));
        let shared = |id: NodeId| match self.loc(id) {
            Some(Loc::Const(o)) => Some(format!("C[{o}u + ")),
            Some(Loc::Inv(o)) => Some(format!("A[{o}u + ")),
            _ => None,
        };
        let ops = match (self.loc(a), self.loc(b)) {
            // x·W: per-sample rows times a shared matrix.
            (Some(Loc::Var(a_off)), _) if sb.len() == 2 => TiledOperands {
                shape: Tiled {
                    rows: if sa.len() == 2 { sa[0] } else { 1 },
                    cols: sb[1],
                },
                k: sb[0],
                a_off,
                b_at: shared(b)?,
                b_transposed: false,
            },
            // W·x: a shared matrix times a per-sample vector, which over a
            // call is X·Wᵀ (a backward product through a layer).
            (_, Some(Loc::Var(a_off))) if sa.len() == 2 && sb.len() == 1 => TiledOperands {
                shape: Tiled {
                    rows: 1,
                    cols: sa[0],
                },
                k: sa[1],
                a_off,
                b_at: shared(a)?,
                b_transposed: true,
            },
            _ => return None,
        };
        (ops.shape.cols >= MIN_TILED && ops.k >= MIN_TILED).then_some(ops)
    }

    /// The tiled product: a workgroup of 16×16 invocations computes a
    /// [`TILE`]×[`TILE`] block of the output, 4×4 values each, staging
    /// [`TILE_K`]-wide slices of both operands in workgroup memory. Every
    /// value still accumulates its products one at a time in contraction
    /// order from 0, each rounded before the add, as the interpreter does.
    fn emit_tiled(&mut self, id: NodeId, loc: Loc, ops: TiledOperands) {
        let node = self.g.node(id);
        let TiledOperands {
            shape: t,
            k,
            a_off,
            b_at,
            b_transposed,
        } = ops;
        let n = t.cols;
        let b_index = if b_transposed {
            format!("c * {k}u + pb")
        } else {
            format!("pb * {n}u + c")
        };
        let ob = match loc {
            Loc::Var(o) => format!("VB + {o}u * P.batch"),
            Loc::Inv(o) | Loc::Const(o) => format!("{o}u"),
        };
        let entry = format!("n{}", id.index());
        let (tk, sub) = (TILE_K, TILE / 16);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "// matmul {:?} -> {:?}, tiled: {TILE}×{TILE} values per workgroup\n\
             @compute @workgroup_size(256)\n\
             fn {entry}(@builtin(workgroup_id) wg: vec3<u32>, \
             @builtin(local_invocation_index) li: u32) {{\n\
             \x20 let rows = P.batch * {}u;\n\
             \x20 let t = wg.x + wg.y * 65535u;\n\
             \x20 let r0 = (t / {}u) * {TILE}u;\n\
             \x20 let c0 = (t % {}u) * {TILE}u;\n\
             \x20 if (r0 >= rows) {{ return; }}\n\
             \x20 let ab = VB + {a_off}u * P.batch;\n\
             \x20 let tx = li % 16u;\n\
             \x20 let ty = li / 16u;",
            node.args.iter().map(|a| a.index()).collect::<Vec<_>>(),
            node.shape,
            t.rows,
            n.div_ceil(TILE),
            n.div_ceil(TILE),
        );
        for i in 0..sub {
            for j in 0..sub {
                let _ = writeln!(s, "  var acc{i}{j} = 0.0;");
            }
        }
        let _ = writeln!(
            s,
            "  for (var p0 = 0u; p0 < {k}u; p0 += {tk}u) {{\n\
             \x20   for (var q = 0u; q < {}u; q++) {{\n\
             \x20     let l = li + q * 256u;\n\
             \x20     let r = r0 + l / {tk}u;\n\
             \x20     let pa = p0 + l % {tk}u;\n\
             \x20     var va = 0.0;\n\
             \x20     if (r < rows && pa < {k}u) {{ va = A[ab + r * {k}u + pa]; }}\n\
             \x20     TA[l] = va;\n\
             \x20     let pb = p0 + l / {TILE}u;\n\
             \x20     let c = c0 + l % {TILE}u;\n\
             \x20     var vb = 0.0;\n\
             \x20     if (pb < {k}u && c < {n}u) {{ vb = {b_at}{b_index}]; }}\n\
             \x20     TB[l] = vb;\n\
             \x20   }}\n\
             \x20   workgroupBarrier();\n\
             \x20   let kt = min({tk}u, {k}u - p0);\n\
             \x20   for (var p = 0u; p < kt; p++) {{",
            TILE * tk / 256,
        );
        for j in 0..sub {
            let _ = writeln!(s, "      let y{j} = TB[p * {TILE}u + tx + {}u];", 16 * j);
        }
        for i in 0..sub {
            let _ = writeln!(s, "      let x{i} = TA[(ty + {}u) * {tk}u + p];", 16 * i);
            for j in 0..sub {
                let _ = writeln!(s, "      let p{i}{j} = x{i} * y{j};");
                let _ = writeln!(s, "      acc{i}{j} = acc{i}{j} + p{i}{j};");
            }
        }
        let _ = writeln!(s, "    }}\n    workgroupBarrier();\n  }}");
        let _ = writeln!(s, "  let ob = {ob};");
        for i in 0..sub {
            let _ = writeln!(s, "  let row{i} = r0 + ty + {}u;", 16 * i);
            for j in 0..sub {
                let _ = writeln!(
                    s,
                    "  if (row{i} < rows && c0 + tx + {c}u < {n}u) {{ A[ob + row{i} * {n}u + c0 + tx + {c}u] = acc{i}{j}; }}",
                    c = 16 * j
                );
            }
        }
        s.push_str("}\n\n");
        self.body.push_str(&s);
        self.tiles = true;
        self.passes.push(Pass {
            entry,
            varying: true,
            numel: numel(&node.shape),
            tiled: Some(t),
            once: false,
        });
    }

    /// Statements computing the node's element `e` into `s`; returns the
    /// value expression.
    fn value(&self, id: NodeId, s: &mut String) -> Result<String, Unsupported> {
        let node = self.g.node(id);
        let arg = |i: usize| node.args[i];
        Ok(match node.op {
            Op::Concat { axis } => self.concat(id, axis as usize, s),
            Op::Sum(axes) | Op::Max(axes) => {
                let max = matches!(node.op, Op::Max(_));
                self.reduce(arg(0), axes, max, s)
            }
            Op::MatMul => self.matmul(arg(0), arg(1), s),
            Op::Scan { .. } | Op::Scalar(_) | Op::Const(_) | Op::Input(_) => {
                return Err(Unsupported(format!(
                    "{} is not computed by a pass",
                    node.op.name()
                )));
            }
            _ => self.expr(id, "e", s),
        })
    }

    fn concat(&self, id: NodeId, axis: usize, s: &mut String) -> String {
        let node = self.g.node(id);
        let coords = unravel(s, "e", &node.shape, "c");
        let _ = writeln!(s, "  var v = 0.0;");
        let mut start = 0;
        for (k, &a) in node.args.iter().enumerate() {
            let shape = self.g.shape(a);
            let st = strides(shape);
            let terms: Vec<String> = (0..shape.len())
                .map(|i| {
                    if i == axis {
                        format!("({} - {start}u) * {}u", coords[i], st[i])
                    } else {
                        format!("{} * {}u", coords[i], st[i])
                    }
                })
                .collect();
            let end = start + shape[axis];
            let cond = if k == 0 { "if" } else { "else if" };
            let part = self.read(a, &sum_expr(&terms), s);
            let _ = writeln!(s, "  {cond} ({} < {end}u) {{ v = {part}; }}", coords[axis]);
            start = end;
        }
        "v".into()
    }

    /// A `Sum` or `Max` over `axes`: the reduced points in the input's
    /// row-major order, as the interpreter visits them.
    fn reduce(&self, a: NodeId, axes: crate::ir::Axes, max: bool, s: &mut String) -> String {
        let shape = self.g.shape(a);
        let kept: Vec<usize> = (0..shape.len()).filter(|&i| !axes.contains(i)).collect();
        let kept_shape: Vec<usize> = kept.iter().map(|&i| shape[i]).collect();
        let kc = unravel(s, "e", &kept_shape, "k");
        let st = strides(shape);
        let init = if max {
            "bitcast<f32>(0xff800000u)"
        } else {
            "0.0"
        };
        let _ = writeln!(s, "  var acc = {init};");
        let mut coord = vec![String::new(); shape.len()];
        for (j, &i) in kept.iter().enumerate() {
            coord[i] = kc[j].clone();
        }
        let mut depth = 0;
        for i in 0..shape.len() {
            if axes.contains(i) {
                let _ = writeln!(
                    s,
                    "  {}for (var r{i} = 0u; r{i} < {}; r{i}++) {{",
                    "  ".repeat(depth),
                    self.trips(shape[i])
                );
                coord[i] = format!("r{i}");
                depth += 1;
            }
        }
        let terms: Vec<String> = (0..shape.len())
            .map(|i| format!("{} * {}u", coord[i], st[i]))
            .collect();
        let x = self.read(a, &sum_expr(&terms), s);
        let pad = "  ".repeat(depth + 1);
        if max {
            let _ = writeln!(s, "{pad}acc = max_number(acc, {x});");
        } else {
            let _ = writeln!(s, "{pad}acc = acc + {x};");
        }
        for d in (0..depth).rev() {
            let _ = writeln!(s, "  {}}}", "  ".repeat(d));
        }
        "acc".into()
    }

    fn matmul(&self, a: NodeId, b: NodeId, s: &mut String) -> String {
        let (sa, sb) = (self.g.shape(a), self.g.shape(b));
        let k = if sa.len() == 2 { sa[1] } else { sa[0] };
        let n = if sb.len() == 2 { sb[1] } else { 1 };
        let _ = writeln!(s, "  let row = e / {n}u;\n  let col = e % {n}u;");
        let _ = writeln!(s, "  var acc = 0.0;");
        let _ = writeln!(s, "  for (var p = 0u; p < {}; p++) {{", self.trips(k));
        let x = self.read(a, &format!("row * {k}u + p"), s);
        let y = self.read(b, &format!("p * {n}u + col"), s);
        // Rounded before the add, as the interpreter's `acc + a·b`.
        let _ = writeln!(s, "    let prod = {x} * {y};\n    acc = acc + prod;\n  }}");
        "acc".into()
    }

    fn input_slots(&self) -> Vec<InputSlot> {
        let mut slots: Vec<InputSlot> = self
            .g
            .inputs()
            .iter()
            .map(|d| InputSlot {
                numel: numel(&d.shape),
                region: None,
            })
            .collect();
        for id in self.g.ids() {
            if let (Op::Input(i), Some(loc)) = (self.g.node(id).op, self.locs[id.index()]) {
                slots[i.index()].region = match loc {
                    Loc::Inv(o) => Some(Region::Inv(o)),
                    Loc::Var(o) => Some(Region::Var(o)),
                    _ => None,
                };
            }
        }
        slots
    }

    fn output_slots(&mut self) -> Vec<OutputSlot> {
        let outputs = self.g.outputs.clone();
        outputs
            .iter()
            .map(|o| {
                let n = numel(self.g.shape(o.node));
                if self.summed[o.node.index()] {
                    let acc = self.inv_len;
                    self.inv_len += n;
                    self.summed_product_pass(o.node, acc, n);
                    return OutputSlot::Sum { acc, numel: n };
                }
                // invariant: outputs are never inlined (`choose_inlined`),
                // so every output is stored.
                let loc = self.loc(o.node).expect("outputs are stored");
                match (loc, o.reduce) {
                    (Loc::Var(off), BatchReduce::PerSample) => OutputSlot::Rows { off, numel: n },
                    (Loc::Var(off), BatchReduce::Sum) => {
                        let acc = self.inv_len;
                        self.inv_len += n;
                        self.sum_pass(o.node, off, acc, n);
                        OutputSlot::Sum { acc, numel: n }
                    }
                    (loc, reduce) => OutputSlot::Same {
                        loc: match loc {
                            Loc::Inv(o) => Source::Arena(o),
                            Loc::Const(o) => Source::Const(o),
                            // invariant: batch-dependent nodes matched above.
                            Loc::Var(_) => unreachable!("matched above"),
                        },
                        numel: n,
                        reduce,
                    },
                }
            })
            .collect()
    }

    /// The batch sum of a node into accumulators that carry over from one
    /// chunk of the batch to the next (`P.first` starts them at 0), in
    /// sample order, as the interpreter adds them.
    fn sum_pass(&mut self, node: NodeId, off: usize, acc: usize, n: usize) {
        self.reads.borrow_mut().clear();
        self.reads.borrow_mut().push((node, false));
        let code = format!(
            "  var s = select(A[{acc}u + e], 0.0, P.first != 0u);\n\
             \x20 for (var b = 0u; b < P.batch; b++) {{\n\
             \x20   s = s + A[VB + {off}u * P.batch + b * {n}u + e];\n\
             \x20 }}\n\
             \x20 A[{acc}u + e] = s;\n"
        );
        let member = Member {
            entry: format!("sum{acc}"),
            comment: format!("batch sum -> accumulators at {acc}"),
            numel: n,
            code,
        };
        self.join(member, false, None);
    }

    /// The batch sum of a product of two per-sample operands (a weight's
    /// gradient: per sample an outer product) into accumulators that carry
    /// over from one chunk to the next: each sample's product accumulated
    /// from 0 in contraction order, then added in sample order — the
    /// interpreter's two sums, without storing `batch × numel` products
    /// or running a second pass.
    fn summed_product_pass(&mut self, id: NodeId, acc: usize, n: usize) {
        let node = self.g.node(id);
        let (a, b) = (node.args[0], node.args[1]);
        let (sa, sb) = (self.g.shape(a), self.g.shape(b));
        let k = sa[sa.len() - 1];
        let cols = if sb.len() == 2 { sb[1] } else { 1 };
        self.reads.borrow_mut().clear();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  let row = e / {cols}u;\n\
             \x20 let col = e % {cols}u;\n\
             \x20 var s = select(A[{acc}u + e], 0.0, P.first != 0u);\n\
             \x20 for (var b = 0u; b < P.batch; b++) {{\n\
             \x20   var acc = 0.0;\n\
             \x20   for (var p = 0u; p < {k}u; p++) {{",
        );
        let x = self.read(a, &format!("row * {k}u + p"), &mut s);
        let y = self.read(b, &format!("p * {cols}u + col"), &mut s);
        let _ = writeln!(
            s,
            "      let prod = {x} * {y};\n      acc = acc + prod;\n    }}\n    s = s + acc;\n  }}\n  A[{acc}u + e] = s;"
        );
        let member = Member {
            entry: format!("sum{acc}"),
            comment: format!(
                "batch-summed matmul {:?} -> {:?}, accumulators at {acc}",
                node.args.iter().map(|a| a.index()).collect::<Vec<_>>(),
                node.shape,
            ),
            numel: n,
            code: s,
        };
        self.join(member, false, None);
    }

    /// The kernel's own text: its arena constant and entry points (the
    /// module is [`PRELUDE`] followed by this).
    fn kernel_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "// {}: {} passes; invariant region {} values, {} values per sample\n",
            self.g.name,
            self.passes.len(),
            self.inv_len.max(1),
            self.per_sample
        );
        let _ = writeln!(s, "const VB: u32 = {}u;\n", self.inv_len.max(1));
        if self.tiles {
            let n = TILE * TILE_K;
            let _ = writeln!(
                s,
                "var<workgroup> TA: array<f32, {n}>;\nvar<workgroup> TB: array<f32, {n}>;\n"
            );
        }
        s.push_str(&self.body);
        s
    }
}

/// Bindings and the functions that carry the op semantics: the start of
/// every module.
pub const PRELUDE: &str = r#"struct Params { batch: u32, first: u32, zero: u32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> A: array<f32>;
@group(0) @binding(1) var<storage, read> C: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;

fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn inf() -> f32 { return bitcast<f32>(0x7f800000u); }
// `P.zero` is 0 at run time, which the shader compiler cannot know: an
// operand through `opaque` is never proven equal to the other operand, so
// `x - x` is not folded to 0 (it is NaN at x = inf or NaN).
fn opaque(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ P.zero); }
fn nan() -> f32 { return bitcast<f32>(0x7fc00000u); }
fn copysign(m: f32, s: f32) -> f32 {
  return bitcast<f32>((bitcast<u32>(m) & 0x7fffffffu) | (bitcast<u32>(s) & 0x80000000u));
}
fn max_number(a: f32, b: f32) -> f32 {
  if (a > b || is_nan(b)) { return a; }
  if (a == b) { return bitcast<f32>(bitcast<u32>(a) & bitcast<u32>(b)); }
  return b;
}
fn min_number(a: f32, b: f32) -> f32 {
  if (a < b || is_nan(b)) { return a; }
  if (a == b) { return bitcast<f32>(bitcast<u32>(a) | bitcast<u32>(b)); }
  return b;
}
fn flag(c: bool) -> f32 { return select(0.0, 1.0, c); }
fn sq(x: f32) -> f32 { return x * x; }
fn exp_s(x: f32) -> f32 {
  if (is_nan(x)) { return x; }
  if (x > 88.8) { return inf(); }
  if (x < -104.0) { return 0.0; }
  return exp(x);
}
fn log_s(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  if (is_nan(x) || (bits & 0x80000000u) != 0u && (bits & 0x7fffffffu) != 0u) { return nan(); }
  if ((bits & 0x7fffffffu) == 0u) { return -inf(); }
  if (x == inf()) { return x; }
  // A subnormal (which the device may flush): m·2^-149, m exact in f32.
  if ((bits & 0x7f800000u) == 0u) { return log(f32(bits)) - 103.27892990343184; }
  return log(x);
}
fn log1p_s(x: f32) -> f32 {
  if (is_nan(x) || x < -1.0) { return nan(); }
  if (x == -1.0) { return -inf(); }
  if (x == inf()) { return x; }
  let u = 1.0 + x;
  if (u == 1.0) { return x; }
  return log(u) * (x / (u - 1.0));
}
fn sqrt_s(x: f32) -> f32 {
  if (is_nan(x) || x < 0.0) { return nan(); }
  if (x == 0.0 || x == inf()) { return x; }
  return sqrt(x);
}
fn sign_s(x: f32) -> f32 {
  if (x > 0.0) { return 1.0; }
  if (x < 0.0) { return -1.0; }
  return x;
}
fn tanh_s(x: f32) -> f32 {
  if (is_nan(x)) { return x; }
  let a = abs(x);
  if (a > 9.1) { return copysign(1.0, x); }
  if (a < 0.0004) { return x; }
  let e = exp(-2.0 * a);
  return copysign((1.0 - e) / (1.0 + e), x);
}
fn sigmoid_s(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp_s(-x)); }
  let e = exp_s(x);
  return e / (1.0 + e);
}
fn softplus_s(x: f32) -> f32 {
  return max_number(x, 0.0) + log1p_s(exp_s(-abs(x)));
}
fn sin_s(x: f32) -> f32 { if (is_nan(x) || abs(x) == inf()) { return nan(); } return sin(x); }
fn cos_s(x: f32) -> f32 { if (is_nan(x) || abs(x) == inf()) { return nan(); } return cos(x); }
fn is_int(y: f32) -> bool { return floor(y) == y && abs(y) != inf(); }
fn is_odd(y: f32) -> bool { return abs(y) < 16777216.0 && floor(y) == y && (i32(abs(y)) & 1) == 1; }
fn pow_ieee(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  if (x == 1.0) { return 1.0; }
  if (is_nan(x) || is_nan(y)) { return nan(); }
  let ax = abs(x);
  if (abs(y) == inf()) {
    if (ax == 1.0) { return 1.0; }
    if ((ax > 1.0) == (y > 0.0)) { return inf(); }
    return 0.0;
  }
  if (x == 0.0) {
    let odd = is_odd(y);
    if (y > 0.0) { return select(0.0, x, odd); }
    return select(inf(), copysign(inf(), x), odd);
  }
  if (ax == inf()) {
    let odd = is_odd(y);
    if (x > 0.0) { return select(0.0, inf(), y > 0.0); }
    if (y > 0.0) { return select(inf(), -inf(), odd); }
    return select(0.0, -0.0, odd);
  }
  if (x < 0.0 && !is_int(y)) { return nan(); }
  let r = exp2(y * log2(ax));
  if (x < 0.0 && is_odd(y)) { return -r; }
  return r;
}

"#;

fn unary(u: UnaryOp, x: &str) -> String {
    match u {
        UnaryOp::Neg => format!("(-{x})"),
        UnaryOp::Exp => format!("exp_s({x})"),
        UnaryOp::Log => format!("log_s({x})"),
        UnaryOp::Log1p => format!("log1p_s({x})"),
        UnaryOp::Sqrt => format!("sqrt_s({x})"),
        UnaryOp::Abs => format!("abs({x})"),
        UnaryOp::Sign => format!("sign_s({x})"),
        UnaryOp::Step => format!("flag({x} > 0.0)"),
        UnaryOp::Sin => format!("sin_s({x})"),
        UnaryOp::Cos => format!("cos_s({x})"),
        UnaryOp::Tanh => format!("tanh_s({x})"),
        UnaryOp::Sigmoid => format!("sigmoid_s({x})"),
        UnaryOp::Softplus => format!("softplus_s({x})"),
    }
}

fn binary(op: BinaryOp, a: &str, b: &str) -> String {
    match op {
        // Compilers fold `x - x` and `x + (-x)` to 0 (lavapipe does), where
        // IEEE gives NaN at inf and NaN; see `opaque` in the prelude.
        BinaryOp::Add => format!("({a} + opaque({b}))"),
        BinaryOp::Sub => format!("({a} - opaque({b}))"),
        BinaryOp::Mul => format!("({a} * {b})"),
        BinaryOp::Div => format!("({a} / {b})"),
        BinaryOp::Pow => format!("pow_ieee({a}, {b})"),
        BinaryOp::Max => format!("max_number({a}, {b})"),
        BinaryOp::Min => format!("min_number({a}, {b})"),
        BinaryOp::Gt => format!("flag({a} > {b})"),
        BinaryOp::Ge => format!("flag({a} >= {b})"),
    }
}

/// A literal: decimal when it reads back exactly, else its bits.
fn lit(v: f32) -> String {
    let text = format!("{v:?}");
    let exact = v.is_finite() && v.is_normal() && text.parse::<f32>() == Ok(v);
    if exact || v == 0.0 && v.is_sign_positive() {
        if text.contains(['.', 'e']) {
            format!("f32({text})")
        } else {
            format!("f32({text}.0)")
        }
    } else {
        format!("bitcast<f32>({:#010x}u)", v.to_bits())
    }
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Emits `let {p}{i}` coordinates of the flat index `flat` in `shape`;
/// returns their names.
fn unravel(s: &mut String, flat: &str, shape: &[usize], p: &str) -> Vec<String> {
    let st = strides(shape);
    (0..shape.len())
        .map(|i| {
            let name = format!("{p}{i}");
            let _ = writeln!(
                s,
                "  let {name} = ({flat} / {}u) % {}u;",
                st[i],
                shape[i].max(1)
            );
            name
        })
        .collect()
}

/// Coordinate `axis` of the flat index `flat` in `shape`, as an expression.
fn coord(flat: &str, shape: &[usize], axis: usize) -> String {
    let st = strides(shape);
    format!("(({flat}) / {}u) % {}u", st[axis], shape[axis].max(1))
}

/// Whether an op maps each output element to elements of its operands at
/// the same or a re-indexed position (elementwise ops and views).
fn maps_elements(op: Op) -> bool {
    op.is_elementwise()
        || matches!(
            op,
            Op::Broadcast | Op::Transpose(_) | Op::Slice { .. } | Op::Reshape
        )
}

/// The most values per sample a graph computed in one pass may have.
const ONE_PASS_VALUES: usize = 4096;

/// Marks a loop count of a per-sample body ([`Gen::trips`]).
const TRIPS: &str = "/*trips*/";

/// The most loops a per-sample body may hold with counts the shader
/// compiler sees ...
const UNROLLED_LOOPS: usize = 32;
/// ... and the most iterations its marked loops may run in all.
const UNROLLED_TRIPS: usize = 256;

/// Settles the marked loop counts of one entry point's per-sample body:
/// visible to the shader compiler in a short body — at most
/// [`UNROLLED_LOOPS`] loops of at most [`UNROLLED_TRIPS`] iterations in
/// all — whose unrolled loops run faster (W1's ULA step, 17 loops of 116
/// iterations, took 1.5 s unrolled, 1.9–2.3 s rolled, on lavapipe);
/// hidden in a longer one (`+ P.zero`, the uniform that is 0 at run time),
/// where unrolling turns the loops into thousands of instructions: score
/// matching's 198-node, 96-loop body took lavapipe 76 s to compile at its
/// first call unrolled and 1.0 s rolled; with improved CD's mixed product
/// (20 loops of 324 iterations) unrolled, a training run's first loss
/// phase took 10 s against 2–3 s rolled, and each later one 3 ms against
/// 1 ms. (W2's step, 5 loops of 300 iterations, runs as fast either way.)
fn settle_trips(body: &str) -> String {
    let loops = body.matches("for (var ").count();
    let hidden = if loops > UNROLLED_LOOPS || marked_trips(body) > UNROLLED_TRIPS {
        " + P.zero"
    } else {
        ""
    };
    body.replace(TRIPS, hidden)
}

/// The sum of the marked loop counts of `body` (each written `{n}u`
/// before its mark).
fn marked_trips(body: &str) -> usize {
    body.match_indices(TRIPS)
        .filter_map(|(at, _)| {
            let digits = body[..at].strip_suffix('u')?;
            let start = digits
                .rfind(|c: char| !c.is_ascii_digit())
                .map_or(0, |i| i + 1);
            digits[start..].parse::<usize>().ok()
        })
        .fold(0, usize::saturating_add)
}

/// Whether `g` runs as one pass in which each sample's invocation computes
/// every value of its sample, one node after the other: a small graph, so
/// that the dispatches (one per stored node otherwise, each a full barrier
/// on the device) are what it costs, not the arithmetic. The values its
/// nodes hold per sample — batch-invariant ones included, as each
/// invocation computes its own copy — are at most [`ONE_PASS_VALUES`],
/// and it has no product the tiled pass would take (wide enough that
/// workgroups sharing staged operands beat one invocation per sample).
/// Batch sums still follow as passes of their own, over all samples.
fn fits_one_pass(g: &Graph) -> bool {
    let live = g.live(&[]);
    let nodes = || g.ids().filter(|id| live[id.index()]).map(|id| g.node(id));
    let values: usize = nodes()
        .filter(|n| !matches!(n.op, Op::Scalar(_) | Op::Const(_)))
        .map(|n| numel(&n.shape))
        .sum();
    let wide_product = nodes().any(|n| {
        if n.op != Op::MatMul {
            return false;
        }
        let (sa, sb) = (g.shape(n.args[0]), g.shape(n.args[1]));
        let k = sa[sa.len() - 1];
        let cols = match (sa.len(), sb.len()) {
            (_, 2) => sb[1],
            (2, _) => sa[0],
            _ => 1,
        };
        k >= MIN_TILED && cols >= MIN_TILED
    });
    values <= ONE_PASS_VALUES && !wide_product
}

/// The deepest nesting of inlined expressions one pass computes.
const MAX_INLINE_DEPTH: usize = 12;

/// Binds the index `Σ terms` to `let ix{id}` in `s`; returns the name.
fn bind(s: &mut String, id: NodeId, terms: &[String]) -> String {
    let name = format!("ix{}", id.index());
    let _ = writeln!(s, "  let {name} = {};", sum_expr(terms));
    name
}

/// `text` with every line indented two more spaces.
fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn sum_expr(terms: &[String]) -> String {
    if terms.is_empty() {
        "0u".into()
    } else {
        format!("({})", terms.join(" + "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-pass graph of `links` stored sums `y ← tanh(y) + y` over
    /// `width` values: one loop each.
    fn chain(links: usize, width: usize) -> Graph {
        let mut g = Graph::new("chain");
        let mut y = g.input_node("x", vec![width], InputKind::Sample);
        for _ in 0..links {
            let t = g.unary(UnaryOp::Tanh, y);
            y = g.binary(BinaryOp::Add, t, y);
        }
        g.add_output("y", y, BatchReduce::PerSample);
        g
    }

    /// The entry points of `g`'s multi-pass program, in dispatch order.
    fn entries(g: &Graph) -> Vec<String> {
        let prog = generate_as(g, false).unwrap();
        prog.passes.iter().map(|p| p.entry.clone()).collect()
    }

    #[test]
    fn passes_share_a_dispatch_when_no_invocation_reads_another() {
        // Stored sums that each read the last at their own element: one
        // dispatch per `GROUP_MEMBERS` of them.
        let links = GROUP_MEMBERS + 4;
        assert_eq!(entries(&chain(links, 8)).len(), 2);
        // A reduction reads every element of the chain's last value, and
        // the broadcast of its result reads one element for all: each
        // starts a dispatch.
        let mut g = chain(3, 8);
        let y = g.outputs[0].node;
        let s = g.sum_all(y);
        let z = g.broadcast(s, &[8]);
        let out = g.add_(z, y);
        g.outputs.clear();
        g.add_output("out", out, BatchReduce::PerSample);
        assert_eq!(entries(&g).len(), 3, "{:?}", entries(&g));
        // A batch-invariant value of constants is computed first, in one
        // dispatch with the others like it, wherever the graph uses it.
        let mut g = chain(2, 8);
        let y = g.outputs[0].node;
        let a = g.fill(2.0, &[8]);
        let a = g.unary(UnaryOp::Exp, a);
        let b = g.fill(3.0, &[8]);
        let b = g.unary(UnaryOp::Exp, b);
        let ay = g.mul(a, y);
        let out = g.add_(ay, b);
        g.outputs.clear();
        g.add_output("out", out, BatchReduce::PerSample);
        let (a, b, out) = (a.index(), b.index(), out.index());
        assert_eq!(entries(&g), [format!("n{a}_n{b}"), format!("n2_n{out}")]);
    }

    #[test]
    fn long_bodies_hide_their_loop_counts() {
        // Past the most loops (of 3 iterations each), then past the most
        // iterations in all (4 loops of 64, then of 65).
        for (links, width, hidden) in [
            (UNROLLED_LOOPS, 3, false),
            (UNROLLED_LOOPS + 1, 3, true),
            (4, UNROLLED_TRIPS / 4, false),
            (4, UNROLLED_TRIPS / 4 + 1, true),
        ] {
            let prog = generate(&chain(links, width)).unwrap();
            let case = format!("{links} links of {width}");
            assert_eq!(prog.passes.len(), 1, "{case}: one pass");
            let text = &prog.kernel;
            assert!(!text.contains(TRIPS), "{text}");
            assert_eq!(
                text.contains(&format!("e < {width}u + P.zero;")),
                hidden,
                "{case}"
            );
            assert_eq!(text.contains(&format!("e < {width}u;")), !hidden, "{case}");
        }
        assert_eq!(
            marked_trips(&format!("a < 12u{TRIPS}; b < x + 3u{TRIPS};")),
            15
        );
    }
}
