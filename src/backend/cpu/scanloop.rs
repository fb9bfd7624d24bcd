//! A scan as one generated function: the loop over the sequence is in the
//! machine code, with the carry in registers.
//!
//! For a scan whose body is elementwise loops only and small (the same
//! bounds as the fused tile program, `codegen::fusable`), this emits
//!
//! ```text
//! entry:    hoisted constants and invariant loads of the body
//! v_loop:   per lane vector: the captures and the initial carry    -> t_loop(0, carry)
//! t_loop:   k, carry (block parameters): load row t of each sequence,
//!           the body's groups with every feature unrolled (its tile values
//!           forwarded in SSA), store the next carry in row t of the
//!           stacked output                          -> t_loop(k + 1, next) | v_next
//! ```
//!
//! (t = k forward, T − 1 − k in reverse). Lanes never interact, so each
//! lane sees the operations of the step-by-step schedule in the same order:
//! results are bit-identical to the interpreted loop of `Prog::scan`, which
//! runs the scans this cannot take (bodies with matrix products, array
//! calls or scans of their own, or too large to unroll).

use cranelift_codegen::ir::{BlockArg, InstBuilder, MemFlagsData, Value, condcodes::IntCC, types};
use cranelift_frontend::FunctionBuilder;

use super::codegen::{
    Column, FUSE_BUDGET, Fwd, Params, base_and_stride, emit_groups, entry_params, hoist,
    loop_groups,
};
use super::math::Lanes;
use super::plan::{Group, Loc, OutSrc, Plan, ScanStep, Step};

/// Features of a carry, an element or a capture above which a scan keeps
/// the step-by-step loop (its values would not stay in registers).
const MAX_FEATS: usize = 64;

/// Whether `sc` can be generated as one function ([`gen_scan`]).
fn fusable(groups: &[Group], sc: &ScanStep) -> bool {
    let mut work = 0;
    for st in &sc.body {
        let Step::Loop(i) = st else {
            return false;
        };
        let g = &groups[*i];
        if !g.variant || !matches!(g.dst, Loc::Tile(_)) {
            return false;
        }
        work += g.domain * g.red.max(1) * g.exprs.len();
    }
    let small = sc.inputs.iter().all(|i| i.feats <= MAX_FEATS);
    small && work <= FUSE_BUDGET && !sc.body.is_empty()
}

/// Numbers the scans of `plan` that get a function of their own (from
/// `first`, the index after every loop's function): sets `ScanStep::fused`.
pub(crate) fn number(plan: &mut Plan, first: usize) {
    fn walk(groups: &[Group], steps: &mut [Step], next: &mut usize) {
        for st in steps {
            if let Step::Scan(sc) = st {
                if fusable(groups, sc) {
                    sc.fused = Some(*next);
                    *next += 1;
                } else {
                    walk(groups, &mut sc.body, next);
                }
            }
        }
    }
    let mut next = first;
    let groups = std::mem::take(&mut plan.groups);
    walk(&groups, &mut plan.tile_steps, &mut next);
    plan.groups = groups;
}

/// Every fusable scan of the tile program (nested ones included), in a
/// fixed order: the order their functions are compiled in.
pub(crate) fn fused_scans(plan: &Plan) -> Vec<&ScanStep> {
    fn walk<'p>(steps: &'p [Step], out: &mut Vec<&'p ScanStep>) {
        for st in steps {
            if let Step::Scan(sc) = st {
                if sc.fused.is_some() {
                    out.push(sc);
                } else {
                    walk(&sc.body, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&plan.tile_steps, &mut out);
    out
}

/// The groups of every fused scan's body: their own functions are never
/// called (compiled empty).
pub(crate) fn replaced_groups(plan: &Plan) -> Vec<usize> {
    fused_scans(plan)
        .iter()
        .flat_map(|sc| sc.body.iter())
        .filter_map(|st| match st {
            Step::Loop(i) => Some(*i),
            _ => None,
        })
        .collect()
}

/// Values of operand `src` at features `from .. from + n` for one lane
/// vector: tile rows are loaded from the column (at byte offset `dyn_tile`
/// more, when given), other buffers loaded as scalars and splatted (their
/// address `dyn_elem` bytes further), scalars splatted.
struct Reader<'a> {
    l: &'a Lanes,
    p: &'a Params,
    col: Value,
    rows: i64,
}

impl Reader<'_> {
    fn read(
        &self,
        b: &mut FunctionBuilder,
        src: &OutSrc,
        from: usize,
        n: usize,
        row: Option<Value>,
    ) -> Vec<Value> {
        let l = self.l;
        let sz = l.elem_bytes();
        let loc = match *src {
            OutSrc::Scalar(v) => return (0..n).map(|_| l.f(b, v)).collect(),
            OutSrc::Loc(loc) => loc,
        };
        let mut inputs = vec![];
        let (base, off, stride) = match loc {
            Loc::Tile(o) => (self.col, o as i64 * self.rows * sz, self.rows * sz),
            other => base_and_stride(b, self.p, other, l, self.rows, &mut inputs),
        };
        // Row `row` of a sequence starts `row · n` features further.
        let base = match row {
            Some(t) => {
                let d = b.ins().imul_imm_s(t, n as i64 * stride);
                b.ins().iadd(base, d)
            }
            None => base,
        };
        (0..n)
            .map(|f| {
                let a = (off + (from + f) as i64 * stride) as i32;
                if matches!(loc, Loc::Tile(_)) {
                    b.ins()
                        .load(l.ft, MemFlagsData::new().with_notrap(), base, a)
                } else {
                    let flags = MemFlagsData::trusted().with_readonly();
                    let s = b.ins().load(l.sft(), flags, base, a);
                    l.splat(b, s)
                }
            })
            .collect()
    }
}

/// Seeds the forwarding map with a body input's values.
fn seed(fwd: &mut Fwd, dst: Option<Loc>, vals: &[Value], rows: i64, sz: i64) {
    if let Some(Loc::Tile(o)) = dst {
        for (f, &v) in vals.iter().enumerate() {
            fwd.insert((o + f) as i64 * rows * sz, v);
        }
    }
}

/// The function of scan `sc` (see the module doc). `rows` is the tile stride.
pub(crate) fn gen_scan(
    b: &mut FunctionBuilder,
    plan: &Plan,
    sc: &ScanStep,
    f64: bool,
    rows: i64,
    shims: &[cranelift_codegen::ir::FuncRef],
) {
    let l = Lanes::new(f64, true);
    let sz = l.elem_bytes();
    let carry = sc.inputs[0].feats;
    let (entry, vblock, tblock, vnext, exit) = (
        b.create_block(),
        b.create_block(),
        b.create_block(),
        b.create_block(),
        b.create_block(),
    );
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let (p, nvec) = entry_params(b, entry);
    let nbytes = b.ins().imul_imm_s(nvec, l.bytes());
    let groups = loop_groups(plan, &sc.body);
    let hoisted = hoist(b, plan, &groups, &l, &p, rows, shims);
    let zero = b.ins().iconst(types::I64, 0);
    b.ins().jump(vblock, &[zero.into()]);

    // Per lane vector: captures and the initial carry.
    b.switch_to_block(vblock);
    let vb = b.append_block_param(vblock, types::I64);
    let col = b.ins().iadd(p.tile, vb);
    let rd = Reader {
        l: &l,
        p: &p,
        col,
        rows,
    };
    let caps: Vec<Vec<Value>> = sc.inputs[1 + sc.seqs..]
        .iter()
        .map(|k| rd.read(b, &k.src, 0, k.feats, None))
        .collect();
    let init = rd.read(b, &sc.inputs[0].src, 0, carry, None);
    let mut args: Vec<BlockArg> = vec![zero.into()];
    args.extend(init.iter().map(|&v| BlockArg::from(v)));
    b.ins().jump(tblock, &args);

    // One step: k and the carry are block parameters.
    b.switch_to_block(tblock);
    let k = b.append_block_param(tblock, types::I64);
    let state: Vec<Value> = (0..carry)
        .map(|_| b.append_block_param(tblock, l.ft))
        .collect();
    let t = if sc.reverse {
        let last = b.ins().iconst(types::I64, sc.len as i64 - 1);
        b.ins().isub(last, k)
    } else {
        k
    };
    let mut fwd = Fwd::default();
    seed(&mut fwd, sc.inputs[0].dst, &state, rows, sz);
    for x in &sc.inputs[1..=sc.seqs] {
        let vals = rd.read(b, &x.src, 0, x.feats, Some(t));
        seed(&mut fwd, x.dst, &vals, rows, sz);
    }
    for (kv, k_in) in caps.iter().zip(&sc.inputs[1 + sc.seqs..]) {
        seed(&mut fwd, k_in.dst, kv, rows, sz);
    }
    let column = Column { l: &l, col, rows };
    emit_groups(b, plan, &groups, &hoisted, &column, &mut fwd, shims);
    let next: Vec<Value> = match sc.next {
        OutSrc::Loc(Loc::Tile(o)) => (0..carry)
            .map(|f| {
                let a = (o + f) as i64 * rows * sz;
                match fwd.get(&a) {
                    Some(&v) => v,
                    None => b
                        .ins()
                        .load(l.ft, MemFlagsData::new().with_notrap(), col, a as i32),
                }
            })
            .collect(),
        ref other => rd.read(b, other, 0, carry, None),
    };
    let Loc::Tile(out) = sc.out else {
        // invariant: the planner gives every scan a tile buffer.
        unreachable!("scan into a non-tile buffer")
    };
    let row = b.ins().imul_imm_s(t, carry as i64 * rows * sz);
    let at = b.ins().iadd(col, row);
    for (f, &v) in next.iter().enumerate() {
        let a = (out + f) as i64 * rows * sz;
        b.ins()
            .store(MemFlagsData::new().with_notrap(), v, at, a as i32);
    }
    let k1 = b.ins().iadd_imm_s(k, 1);
    let more = b
        .ins()
        .icmp_imm_s(IntCC::UnsignedLessThan, k1, sc.len as i64);
    let mut again: Vec<BlockArg> = vec![k1.into()];
    again.extend(next.iter().map(|&v| BlockArg::from(v)));
    b.ins().brif(more, tblock, &again, vnext, &[]);

    b.switch_to_block(vnext);
    let vb1 = b.ins().iadd_imm_s(vb, l.bytes());
    let more = b.ins().icmp(IntCC::UnsignedLessThan, vb1, nbytes);
    b.ins().brif(more, vblock, &[vb1.into()], exit, &[]);

    b.switch_to_block(exit);
    b.ins().return_(&[]);
}
