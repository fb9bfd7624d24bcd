//! Cranelift code generation for the fused loops of a [`Plan`].
//!
//! Every loop has the signature
//! `fn(tile, inv, consts, ins, tables, nvec)` (all pointer-sized) and the shape
//!
//! ```text
//! entry:   hoisted constants, input base pointers          -> f_loop(0)
//! f_loop:  leaf addresses from index maps (affine or table), invariant leaves
//!          loaded and splatted once per feature            -> v_loop(0)
//! v_loop:  lane-vector loads, the fused expression, store  -> v_loop | f_next
//! ```
//!
//! so all index arithmetic and every batch-invariant value stays out of the
//! innermost (batch-lane) loop.

use cranelift_codegen::ir::{
    AbiParam, Function, InstBuilder, MemFlagsData, Signature, UserFuncName, Value,
    condcodes::FloatCC, condcodes::IntCC, types,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};

use super::math::{self, Lanes};
use super::plan::{Expr, Group, Loc, Map, Plan, Store};
use crate::ir::{BinaryOp, UnaryOp};

pub(crate) type LoopFn = unsafe extern "C" fn(
    tile: *mut u8,
    inv: *mut u8,
    consts: *const u8,
    ins: *const *const u8,
    tables: *const u32,
    nvec: i64,
);

/// Scalar libm functions the loops may call, by name.
fn shim_table(f64: bool) -> [(&'static str, *const u8, usize); 3] {
    use math::shims::*;
    if f64 {
        [
            ("ebm_sin_f64", sin_f64 as *const u8, 1),
            ("ebm_cos_f64", cos_f64 as *const u8, 1),
            ("ebm_pow_f64", pow_f64 as *const u8, 2),
        ]
    } else {
        [
            ("ebm_sin_f32", sin_f32 as *const u8, 1),
            ("ebm_cos_f32", cos_f32 as *const u8, 1),
            ("ebm_pow_f32", pow_f32 as *const u8, 2),
        ]
    }
}

pub(crate) struct Jit {
    module: Option<JITModule>,
    pub fns: Vec<LoopFn>,
}

impl Drop for Jit {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the function pointers die with `self`; kernels holding
            // them are dropped first (the `Jit` is owned by its kernel).
            unsafe { m.free_memory() };
        }
    }
}

// SAFETY: the module is only read after `finalize_definitions` (the code and
// data it owns are immutable); it is dropped, not shared mutably.
unsafe impl Send for Jit {}
unsafe impl Sync for Jit {}

pub(crate) fn new_module(f64: bool) -> Result<JITModule, String> {
    let mut jb = JITBuilder::with_flags(&[("opt_level", "speed")], default_libcall_names())
        .map_err(|e| format!("cranelift: {e}"))?;
    for (name, ptr, _) in shim_table(f64) {
        jb.symbol(name, ptr);
    }
    Ok(JITModule::new(jb))
}

fn loop_sig(module: &JITModule) -> Signature {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    for _ in 0..6 {
        sig.params.push(AbiParam::new(ptr));
    }
    sig
}

/// Compiles every loop of `plan`. `rows` is the tile height `T`. With `asm`
/// (f32 on an AVX-512 machine), the tile loops `zmm.rs` can assemble are
/// assembled there and the rest go through Cranelift. When `text` is given,
/// the optimised-before-lowering Cranelift IR of each loop is appended.
pub(crate) fn compile(
    plan: &Plan,
    f64: bool,
    rows: usize,
    direct: Option<&DirectSpec>,
    fused: bool,
    asm: bool,
    mut text: Option<&mut String>,
) -> Result<Jit, String> {
    let mut module = new_module(f64)?;
    let sig = loop_sig(&module);
    let mut shim_ids = vec![];
    for (name, _, nargs) in shim_table(f64) {
        let mut s = module.make_signature();
        let ft = if f64 { types::F64 } else { types::F32 };
        for _ in 0..nargs {
            s.params.push(AbiParam::new(ft));
        }
        s.returns.push(AbiParam::new(ft));
        let id = module
            .declare_function(name, Linkage::Import, &s)
            .map_err(|e| e.to_string())?;
        shim_ids.push(id);
    }
    let mut ids = vec![];
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    // (function index, group, direct spec, whether it is the fused program)
    let ng = plan.groups.len();
    let fused_job = fused.then(|| (ng + direct.is_some() as usize, &plan.groups[0], None, true));
    let jobs = plan
        .groups
        .iter()
        .enumerate()
        .map(|(gi, g)| (gi, g, None, false))
        .chain(direct.map(|d| (ng, &plan.groups[d.group], Some(d), false)))
        .chain(fused_job);
    // The loops of scans run as one generated function each are never
    // called on their own: they get an empty body (compile time).
    let in_scans = super::scanloop::replaced_groups(plan);
    let scans = super::scanloop::fused_scans(plan);
    let scan_jobs = scans.iter().map(|sc| {
        // invariant: `fused_scans` returns only numbered scans.
        let fi = sc.fused.unwrap_or(usize::MAX);
        (fi, &plan.groups[0], None, false)
    });
    let jobs = jobs.chain(scan_jobs);
    for (gi, group, dspec, is_fused) in jobs {
        let scan = scans.iter().find(|sc| sc.fused == Some(gi) && gi >= ng);
        let id = module
            .declare_function(&format!("loop{gi}"), Linkage::Local, &sig)
            .map_err(|e| e.to_string())?;
        // With the fused program, the tile loops it replaces are never
        // called: they get an empty body (compile time).
        let replaced = (fused
            && !is_fused
            && plan
                .tile_steps
                .iter()
                .any(|st| matches!(st, super::plan::Step::Loop(i) if *i == gi)))
            || (gi < ng && in_scans.contains(&gi));
        let plain = gi < ng && dspec.is_none() && !is_fused && scan.is_none();
        let machine_code = (asm && !f64 && plain && !replaced)
            .then(|| super::zmm::assemble(group, rows))
            .flatten();
        if let Some(bytes) = machine_code {
            module
                .define_function_bytes(id, 64, &bytes, &[])
                .map_err(|e| format!("cranelift: {e:?}"))?;
            if let Some(t) = text.as_deref_mut() {
                t.push_str(&format!(
                    "; loop{gi}: {} (domain {}), AVX-512, assembled ({} bytes)\n\n",
                    group.label,
                    group.domain,
                    bytes.len()
                ));
            }
            ids.push(id);
            continue;
        }
        ctx.func = Function::with_name_signature(UserFuncName::user(0, gi as u32), sig.clone());
        let lanes = Lanes::new(f64, group.variant);
        let fcfg = module.isa().frontend_config();
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let shims: Vec<_> = shim_ids
                .iter()
                .map(|&id| module.declare_func_in_func(id, b.func))
                .collect();
            match dspec {
                _ if scan.is_some() => {
                    // invariant: just matched.
                    let sc = scan.unwrap();
                    super::scanloop::gen_scan(&mut b, plan, sc, f64, rows as i64, &shims)
                }
                _ if is_fused => gen_fused(&mut b, plan, f64, rows as i64, &shims),
                _ if replaced => {
                    let entry = b.create_block();
                    b.append_block_params_for_function_params(entry);
                    b.switch_to_block(entry);
                    b.ins().return_(&[]);
                }
                Some(d) => gen_direct(&mut b, group, d, f64, &shims),
                None => gen_loop(&mut b, group, lanes, rows as i64, &shims),
            }
            b.seal_all_blocks();
            b.finalize(fcfg);
        }
        if let Some(t) = text.as_deref_mut() {
            if scan.is_some() {
                t.push_str(&format!("; loop{gi}: a scan, the whole loop\n"));
            } else if is_fused {
                t.push_str(&format!(
                    "; loop{gi}: the tile program fused (vector-outer)\n"
                ));
            } else {
                t.push_str(&format!(
                    "; loop{gi}: {}{} (domain {})\n",
                    if dspec.is_some() {
                        "batch-major direct "
                    } else {
                        ""
                    },
                    group.label,
                    group.domain
                ));
            }
            t.push_str(&ctx.func.display().to_string());
            t.push('\n');
        }
        let disasm = std::env::var_os("EBM_DISASM").is_some();
        ctx.set_disasm(disasm);
        module
            .define_function(id, &mut ctx)
            .map_err(|e| format!("cranelift: {e:?}"))?;
        if let Some(code) = ctx
            .compiled_code()
            .and_then(|c| c.vcode.as_ref())
            .filter(|_| disasm)
        {
            eprintln!("; loop{gi}: {}\n{code}", group.label);
        }
        module.clear_context(&mut ctx);
        ids.push(id);
    }
    module
        .finalize_definitions()
        .map_err(|e| format!("cranelift: {e}"))?;
    let fns = ids
        .iter()
        .map(|&id: &FuncId| {
            let p = module.get_finalized_function(id);
            // SAFETY: compiled with `loop_sig`, which matches `LoopFn`.
            unsafe { std::mem::transmute::<*const u8, LoopFn>(p) }
        })
        .collect();
    Ok(Jit {
        module: Some(module),
        fns,
    })
}

pub(super) struct Params {
    pub tile: Value,
    pub inv: Value,
    pub consts: Value,
    pub ins: Value,
    pub tables: Value,
}

/// The loop function's pointer parameters and its count (vectors or rows),
/// read from the entry block: `fn(tile, inv, consts, inputs, tables, count)`.
pub(super) fn entry_params(
    b: &mut FunctionBuilder,
    entry: cranelift_codegen::ir::Block,
) -> (Params, Value) {
    let ps = b.block_params(entry).to_vec();
    let p = Params {
        tile: ps[0],
        inv: ps[1],
        consts: ps[2],
        ins: ps[3],
        tables: ps[4],
    };
    (p, ps[5])
}

pub(super) fn base_and_stride(
    b: &mut FunctionBuilder,
    p: &Params,
    loc: Loc,
    l: &Lanes,
    rows: i64,
    inputs: &mut Vec<(usize, Value)>,
) -> (Value, i64, i64) {
    let sz = l.elem_bytes();
    match loc {
        Loc::Tile(off) => (p.tile, off as i64 * rows * sz, rows * sz),
        Loc::Inv(off) => (p.inv, off as i64 * sz, sz),
        Loc::Const(off) => (p.consts, off as i64 * sz, sz),
        Loc::Input(i) => {
            let v = match inputs.iter().find(|(j, _)| *j == i) {
                Some(&(_, v)) => v,
                None => {
                    let v = b.ins().load(
                        types::I64,
                        MemFlagsData::trusted().with_readonly(),
                        p.ins,
                        (8 * i) as i32,
                    );
                    inputs.push((i, v));
                    v
                }
            };
            (v, 0, sz)
        }
        // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
        Loc::Partial(_) => unreachable!("partials are only GEMM destinations"),
    }
}

/// Byte address of feature `map(f)` of a buffer.
fn address(
    b: &mut FunctionBuilder,
    p: &Params,
    base: Value,
    off: i64,
    stride: i64,
    map: Map,
    f: Value,
) -> Value {
    match map {
        Map::Affine { a, s } => {
            let base = b.ins().iadd_imm_s(base, off + a * stride);
            if s == 0 {
                base
            } else {
                let d = b.ins().imul_imm_s(f, s * stride);
                b.ins().iadd(base, d)
            }
        }
        Map::Table(t) => {
            let ta = b.ins().iadd_imm_s(p.tables, 4 * t as i64);
            let f4 = b.ins().ishl_imm_u(f, 2);
            let ta = b.ins().iadd(ta, f4);
            let idx = b
                .ins()
                .uload32(MemFlagsData::trusted().with_readonly(), ta, 0);
            let d = b.ins().imul_imm_s(idx, stride);
            let base = b.ins().iadd_imm_s(base, off);
            b.ins().iadd(base, d)
        }
    }
}

fn gen_loop(
    b: &mut FunctionBuilder,
    g: &Group,
    l: Lanes,
    rows: i64,
    shims: &[cranelift_codegen::ir::FuncRef],
) {
    let entry = b.create_block();
    let fblock = b.create_block();
    let vblock = b.create_block();
    let fnext = b.create_block();
    let exit = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let (p, nvec) = entry_params(b, entry);
    let lane_bytes = l.bytes();
    let level = expr_levels(&g.exprs);
    let mut vals: Vec<Option<Value>> = vec![None; g.exprs.len()];
    let mut inputs = vec![];
    for (i, e) in g.exprs.iter().enumerate() {
        if level[i] == 0 {
            vals[i] = Some(gen_op(b, &l, e, &vals, shims));
        }
    }
    let nbytes = b.ins().imul_imm_s(nvec, lane_bytes);
    // Resolve input base pointers in the entry block.
    for e in &g.exprs {
        if let Expr::Load { loc, .. } = *e {
            base_and_stride(b, &p, loc, &l, rows, &mut inputs);
        }
    }
    let zero = b.ins().iconst(types::I64, 0);
    b.ins().jump(fblock, &[zero.into()]);

    // Per-feature block. An unrolled reduction evaluates the expression at
    // `red` consecutive points f·red + r and combines them in registers.
    b.switch_to_block(fblock);
    let f = b.append_block_param(fblock, types::I64);
    let red = g.red.max(1);
    let mut addrs: Vec<Vec<Option<Value>>> = vec![vec![None; g.exprs.len()]; red];
    let mut rvals: Vec<Vec<Option<Value>>> = vec![vals.clone(); red];
    let flags = MemFlagsData::trusted();
    for r in 0..red {
        let fr = if red == 1 {
            f
        } else {
            let t = b.ins().imul_imm_s(f, red as i64);
            b.ins().iadd_imm_s(t, r as i64)
        };
        for (i, e) in g.exprs.iter().enumerate() {
            if let Expr::Load { loc, map } = *e {
                let (base, off, stride) = base_and_stride(b, &p, loc, &l, rows, &mut inputs);
                let a = address(b, &p, base, off, stride, map, fr);
                if level[i] == 2 {
                    addrs[r][i] = Some(a);
                } else {
                    let s = b.ins().load(l.sft(), flags.with_readonly(), a, 0);
                    rvals[r][i] = Some(l.splat(b, s));
                }
            } else if level[i] == 1 {
                rvals[r][i] = Some(gen_op(b, &l, e, &rvals[r], shims));
            }
        }
    }
    let (dbase, doff, dstride) = base_and_stride(b, &p, g.dst, &l, rows, &mut inputs);
    let daddr = address(b, &p, dbase, doff, dstride, g.dst_map, f);
    b.ins().jump(vblock, &[zero.into()]);

    // Per-lane-vector block.
    b.switch_to_block(vblock);
    let vb = b.append_block_param(vblock, types::I64);
    let flags = MemFlagsData::new().with_notrap();
    for r in 0..red {
        for (i, e) in g.exprs.iter().enumerate() {
            if level[i] != 2 {
                continue;
            }
            if let Expr::Load { .. } = e {
                // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
                let a = b.ins().iadd(addrs[r][i].unwrap(), vb);
                rvals[r][i] = Some(b.ins().load(l.ft, flags, a, 0));
            } else {
                rvals[r][i] = Some(gen_op(b, &l, e, &rvals[r], shims));
            }
        }
    }
    let a = b.ins().iadd(daddr, vb);
    let v = if red > 1 {
        let mut acc = l.f(
            b,
            if g.store == Store::Max {
                f64::NEG_INFINITY
            } else {
                0.0
            },
        );
        for rv in &rvals {
            // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
            let x = rv[g.root as usize].unwrap();
            acc = match g.store {
                Store::Max => max_rule(b, &l, acc, x, true),
                _ => b.ins().fadd(acc, x),
            };
        }
        acc
    } else {
        // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
        let v = rvals[0][g.root as usize].unwrap();
        match g.store {
            Store::Set => v,
            Store::Add => {
                let old = b.ins().load(l.ft, flags, a, 0);
                b.ins().fadd(old, v)
            }
            Store::Max => {
                let old = b.ins().load(l.ft, flags, a, 0);
                max_rule(b, &l, old, v, true)
            }
        }
    };
    b.ins().store(flags, v, a, 0);
    let vb1 = b.ins().iadd_imm_s(vb, lane_bytes);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, vb1, nbytes);
    b.ins().brif(more, vblock, &[vb1.into()], fnext, &[]);

    b.switch_to_block(fnext);
    let f1 = b.ins().iadd_imm_s(f, 1);
    let more = b
        .ins()
        .icmp_imm_s(IntCC::UnsignedLessThan, f1, g.domain as i64);
    b.ins().brif(more, fblock, &[f1.into()], exit, &[]);

    b.switch_to_block(exit);
    b.ins().return_(&[]);
}

/// `ir::op::max_number` / `min_number` (IEEE 754-2019 maximumNumber /
/// minimumNumber): `x` wins when `x > y` (`<`) or `y` is NaN; on a tie the
/// bitwise AND (OR) of the two, which is `x` unless they are zeros of
/// opposite signs, where it gives +0 (−0).
fn max_rule(b: &mut FunctionBuilder, l: &Lanes, x: Value, y: Value, max: bool) -> Value {
    let cc = if max {
        FloatCC::GreaterThan
    } else {
        FloatCC::LessThan
    };
    let c1 = l.cmp(b, cc, x, y);
    let c2 = l.cmp(b, FloatCC::Unordered, y, y);
    let c = b.ins().bor(c1, c2);
    let r = l.sel(b, c, x, y);
    let tie = l.cmp(b, FloatCC::Equal, x, y);
    let xi = l.as_int(b, x);
    let yi = l.as_int(b, y);
    let zi = if max {
        b.ins().band(xi, yi)
    } else {
        b.ins().bor(xi, yi)
    };
    let z = l.as_float(b, zi);
    l.sel(b, tie, z, r)
}

fn lanewise_call(
    b: &mut FunctionBuilder,
    l: &Lanes,
    f: cranelift_codegen::ir::FuncRef,
    args: &[Value],
) -> Value {
    if !l.vector {
        let call = b.ins().call(f, args);
        return b.inst_results(call)[0];
    }
    let mut out = None;
    for lane in 0..l.width() as u8 {
        let xs: Vec<Value> = args.iter().map(|&a| b.ins().extractlane(a, lane)).collect();
        let call = b.ins().call(f, &xs);
        let r = b.inst_results(call)[0];
        out = Some(match out {
            None => b.ins().splat(l.ft, r),
            Some(v) => b.ins().insertlane(v, r, lane),
        });
    }
    // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
    out.unwrap()
}

fn gen_op(
    b: &mut FunctionBuilder,
    l: &Lanes,
    e: &Expr,
    vals: &[Option<Value>],
    shims: &[cranelift_codegen::ir::FuncRef],
) -> Value {
    // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
    let v = |i: u32| vals[i as usize].expect("operand computed");
    match *e {
        // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
        Expr::Load { .. } => unreachable!(),
        Expr::Scalar(c) => l.f(b, c),
        Expr::Unary(u, a) => {
            let x = v(a);
            match u {
                UnaryOp::Neg => b.ins().fneg(x),
                UnaryOp::Exp => math::exp(b, l, x),
                UnaryOp::Log => math::log(b, l, x),
                UnaryOp::Log1p => math::log1p(b, l, x),
                UnaryOp::Sqrt => b.ins().sqrt(x),
                UnaryOp::Abs => b.ins().fabs(x),
                UnaryOp::Sign => {
                    let zero = l.f(b, 0.0);
                    let one = l.f(b, 1.0);
                    let mone = l.f(b, -1.0);
                    let x0 = b.ins().fmul(x, zero);
                    let neg = l.cmp(b, FloatCC::LessThan, x, zero);
                    let r = l.sel(b, neg, mone, x0);
                    let pos = l.cmp(b, FloatCC::GreaterThan, x, zero);
                    l.sel(b, pos, one, r)
                }
                UnaryOp::Step => {
                    let zero = l.f(b, 0.0);
                    let pos = l.cmp(b, FloatCC::GreaterThan, x, zero);
                    l.mask_to_one(b, pos)
                }
                UnaryOp::Sin => lanewise_call(b, l, shims[0], &[x]),
                UnaryOp::Cos => lanewise_call(b, l, shims[1], &[x]),
                UnaryOp::Tanh => math::tanh(b, l, x),
                UnaryOp::Sigmoid => math::sigmoid(b, l, x),
                UnaryOp::Softplus => math::softplus(b, l, x),
            }
        }
        Expr::PowC(c, a) => {
            let x = v(a);
            if c == 2.0 {
                b.ins().fmul(x, x)
            } else if c == 1.0 {
                x
            } else if c == -1.0 {
                let one = l.f(b, 1.0);
                b.ins().fdiv(one, x)
            } else {
                let cv = l.f(b, c);
                lanewise_call(b, l, shims[2], &[x, cv])
            }
        }
        Expr::Binary(op, a, c) => {
            let (x, y) = (v(a), v(c));
            match op {
                BinaryOp::Add => b.ins().fadd(x, y),
                BinaryOp::Sub => b.ins().fsub(x, y),
                BinaryOp::Mul => b.ins().fmul(x, y),
                BinaryOp::Div => b.ins().fdiv(x, y),
                BinaryOp::Pow => lanewise_call(b, l, shims[2], &[x, y]),
                BinaryOp::Max => max_rule(b, l, x, y, true),
                BinaryOp::Min => max_rule(b, l, x, y, false),
                BinaryOp::Gt => {
                    let c = l.cmp(b, FloatCC::GreaterThan, x, y);
                    l.mask_to_one(b, c)
                }
                BinaryOp::Ge => {
                    let c = l.cmp(b, FloatCC::GreaterThanOrEqual, x, y);
                    l.mask_to_one(b, c)
                }
            }
        }
        Expr::Select(c, a, d) => {
            let zero = l.f(b, 0.0);
            let m = l.cmp(b, FloatCC::NotEqual, v(c), zero);
            l.sel(b, m, v(a), v(d))
        }
    }
}

/// A tile program that is one elementwise loop over per-sample values of the
/// same size `n` (sample inputs read with the identity map, invariant leaves
/// that are scalars or per-feature vectors): it runs directly on the
/// batch-major input and output buffers, lanes across features, with no
/// transposes and no tile arena.
#[derive(Clone, Debug)]
pub(crate) struct DirectSpec {
    /// The group (`plan.groups`) whose expression is evaluated.
    pub group: usize,
    /// Features per sample.
    pub n: usize,
    /// (tile offset of a sample input, slot) for every tile leaf.
    pub load_slot: Vec<(usize, usize)>,
    /// The slot of the per-sample output.
    pub dst_slot: usize,
}

/// `fn(slots, inv, consts, ins, tables, rows)`: `slots[k]` is the address of
/// row 0 of slot `k`'s batch-major buffer; every slot has `n` values a row.
/// Full lane vectors run across features; a scalar tail covers `n % width`.
pub(crate) fn gen_direct(
    b: &mut FunctionBuilder,
    g: &Group,
    spec: &DirectSpec,
    f64: bool,
    shims: &[cranelift_codegen::ir::FuncRef],
) {
    let lv = Lanes::new(f64, true);
    let ls = Lanes::new(f64, false);
    let sz = lv.elem_bytes();
    let n = spec.n as i64;
    let row_bytes = n * sz;
    let vec_bytes = (n / lv.width() as i64) * lv.bytes();
    let entry = b.create_block();
    let rblock = b.create_block();
    let vblock = b.create_block();
    let tblock = b.create_block();
    let rnext = b.create_block();
    let exit = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let (p, rows) = entry_params(b, entry);
    let slot_of = |off: usize| {
        // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
        spec.load_slot
            .iter()
            .find(|&&(o, _)| o == off)
            .map(|&(_, s)| s)
            .expect("direct plan: tile leaf without a slot")
    };
    let flags = MemFlagsData::trusted().with_readonly();
    // Level 0: constants; 1: invariant scalars (splatted); 2: per element.
    let mut level = vec![0u8; g.exprs.len()];
    let mut vv: Vec<Option<Value>> = vec![None; g.exprs.len()];
    let mut sv: Vec<Option<Value>> = vec![None; g.exprs.len()];
    // Per level-2 leaf: (base address, byte offset, whether it moves with the row).
    let mut leaf: Vec<Option<(Value, i64, bool)>> = vec![None; g.exprs.len()];
    let mut inputs = vec![];
    for (i, e) in g.exprs.iter().enumerate() {
        level[i] = match *e {
            Expr::Load { loc, map } => {
                let Map::Affine { a, s } = map else {
                    // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
                    unreachable!("direct plan: table map")
                };
                if let Loc::Tile(off) = loc {
                    let ptr = b
                        .ins()
                        .load(types::I64, flags, p.tile, (8 * slot_of(off)) as i32);
                    leaf[i] = Some((ptr, 0, true));
                    2
                } else {
                    let (base, off, _) = base_and_stride(b, &p, loc, &lv, 1, &mut inputs);
                    if s == 0 || spec.n == 1 {
                        let a = b.ins().iadd_imm_s(base, off + a * sz);
                        let x = b.ins().load(lv.sft(), flags, a, 0);
                        sv[i] = Some(x);
                        vv[i] = Some(lv.splat(b, x));
                        1
                    } else {
                        leaf[i] = Some((base, off + a * sz, false));
                        2
                    }
                }
            }
            Expr::Scalar(_) => 0,
            Expr::Unary(_, a) | Expr::PowC(_, a) => level[a as usize],
            Expr::Binary(_, a, c) => level[a as usize].max(level[c as usize]),
            Expr::Select(c, a, d) => level[c as usize]
                .max(level[a as usize])
                .max(level[d as usize]),
        };
        if level[i] < 2 && !matches!(e, Expr::Load { .. }) {
            vv[i] = Some(gen_op(b, &lv, e, &vv, shims));
            sv[i] = Some(gen_op(b, &ls, e, &sv, shims));
        }
    }
    let dst = b
        .ins()
        .load(types::I64, flags, p.tile, (8 * spec.dst_slot) as i32);
    let total = b.ins().imul_imm_s(rows, row_bytes);
    let zero = b.ins().iconst(types::I64, 0);
    let none = b.ins().icmp_imm_s(IntCC::Equal, rows, 0);
    b.ins().brif(none, exit, &[], rblock, &[zero.into()]);

    // One body: lane type `l`, values `vals`, element byte offset `eo` within
    // the row `ro`; stores the root.
    let body = |b: &mut FunctionBuilder, l: &Lanes, vals: &mut Vec<Option<Value>>, ro, eo| {
        let mflags = MemFlagsData::new().with_notrap();
        for (i, e) in g.exprs.iter().enumerate() {
            if level[i] != 2 {
                continue;
            }
            if let Some((base, off, moves)) = leaf[i] {
                let a = b.ins().iadd(base, eo);
                let a = if moves { b.ins().iadd(a, ro) } else { a };
                vals[i] = Some(b.ins().load(l.ft, mflags, a, off as i32));
            } else {
                vals[i] = Some(gen_op(b, l, e, vals, shims));
            }
        }
        // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
        let v = vals[g.root as usize].unwrap();
        let a = b.ins().iadd(dst, ro);
        let a = b.ins().iadd(a, eo);
        b.ins().store(mflags, v, a, 0);
    };

    b.switch_to_block(rblock);
    let ro = b.append_block_param(rblock, types::I64);
    if vec_bytes > 0 {
        b.ins().jump(vblock, &[zero.into()]);
    } else {
        b.ins().jump(tblock, &[]);
    }

    b.switch_to_block(vblock);
    let vb = b.append_block_param(vblock, types::I64);
    body(b, &lv, &mut vv.clone(), ro, vb);
    let vb1 = b.ins().iadd_imm_s(vb, lv.bytes());
    let more = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, vb1, vec_bytes);
    b.ins().brif(more, vblock, &[vb1.into()], tblock, &[]);

    b.switch_to_block(tblock);
    if vec_bytes < row_bytes {
        let sblock = b.create_block();
        let start = b.ins().iconst(types::I64, vec_bytes);
        b.ins().jump(sblock, &[start.into()]);
        b.switch_to_block(sblock);
        let sb = b.append_block_param(sblock, types::I64);
        body(b, &ls, &mut sv.clone(), ro, sb);
        let sb1 = b.ins().iadd_imm_s(sb, sz);
        let more = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, sb1, row_bytes);
        b.ins().brif(more, sblock, &[sb1.into()], rnext, &[]);
    } else {
        b.ins().jump(rnext, &[]);
    }

    b.switch_to_block(rnext);
    let ro1 = b.ins().iadd_imm_s(ro, row_bytes);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, ro1, total);
    b.ins().brif(more, rblock, &[ro1.into()], exit, &[]);

    b.switch_to_block(exit);
    b.ins().return_(&[]);
}

/// Constant feature index of `map` at loop counter `f`.
fn feature_index(plan: &Plan, map: Map, f: usize) -> i64 {
    match map {
        Map::Affine { a, s } => a + s * f as i64,
        Map::Table(t) => plan.tables[t + f] as i64,
    }
}

/// Unrolled (group, feature) iterations above which a tile program is not
/// fused into one loop (code size).
pub(crate) const FUSE_BUDGET: usize = 1024;

/// Whether the tile program of `plan` can run as one vector-outer loop
/// ([`gen_fused`]): loops only, small enough to unroll over features.
pub(crate) fn fusable(plan: &Plan) -> bool {
    let mut work = 0;
    for st in &plan.tile_steps {
        let super::plan::Step::Loop(i) = st else {
            return false;
        };
        let g = &plan.groups[*i];
        if !g.variant || matches!(g.dst, Loc::Partial(_)) {
            return false;
        }
        work += g.domain * g.red.max(1) * g.exprs.len();
    }
    // Few features a sample (a column of the tile stays in L1 and registers):
    // where several passes over the tile cost the most and code stays small.
    plan.tile_steps.len() > 1 && plan.tile_feats <= 64 && work <= FUSE_BUDGET
}

/// The whole tile program as one loop over lane vectors: per vector, every
/// group in schedule order, every feature unrolled (addresses are constants).
/// Lanes never interact, so each lane sees exactly the operations, in the
/// order, of the group-by-group schedule — but a vector's column of the tile
/// stays in L1 instead of being streamed through once per group.
pub(crate) fn gen_fused(
    b: &mut FunctionBuilder,
    plan: &Plan,
    f64: bool,
    rows: i64,
    shims: &[cranelift_codegen::ir::FuncRef],
) {
    let l = Lanes::new(f64, true);
    let entry = b.create_block();
    let vblock = b.create_block();
    let exit = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let (p, nvec) = entry_params(b, entry);
    let nbytes = b.ins().imul_imm_s(nvec, l.bytes());
    let groups = loop_groups(plan, &plan.tile_steps);
    let hoisted = hoist(b, plan, &groups, &l, &p, rows, shims);
    let zero = b.ins().iconst(types::I64, 0);
    b.ins().jump(vblock, &[zero.into()]);

    b.switch_to_block(vblock);
    let vb = b.append_block_param(vblock, types::I64);
    let col = b.ins().iadd(p.tile, vb);
    let flags = MemFlagsData::new().with_notrap();
    let sz = l.elem_bytes();
    // Store-to-load forwarding within a vector's column: the latest value
    // written at each byte offset. Only the tile rows of outputs (read after
    // this function) are stored, once, at the end of the iteration; every
    // other intermediate lives in registers (or spill slots).
    let mut fwd: Fwd = Default::default();
    let out_ranges: Vec<(i64, i64)> = plan
        .outputs
        .iter()
        .filter(|o| o.variant && !o.direct)
        .filter_map(|o| match o.src {
            super::plan::OutSrc::Loc(Loc::Tile(off)) => {
                Some((off as i64 * rows * sz, (off + o.numel) as i64 * rows * sz))
            }
            _ => None,
        })
        .collect();
    let col_at = Column { l: &l, col, rows };
    emit_groups(b, plan, &groups, &hoisted, &col_at, &mut fwd, shims);
    for (&a, &v) in &fwd {
        if out_ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&a)) {
            b.ins().store(flags, v, col, a as i32);
        }
    }
    let vb1 = b.ins().iadd_imm_s(vb, l.bytes());
    let more = b.ins().icmp(IntCC::UnsignedLessThan, vb1, nbytes);
    b.ins().brif(more, vblock, &[vb1.into()], exit, &[]);

    b.switch_to_block(exit);
    b.ins().return_(&[]);
}

/// The latest value written at each byte offset of a lane vector's column
/// of the tile (store-to-load forwarding in SSA values).
pub(super) type Fwd = std::collections::BTreeMap<i64, Value>;

/// The groups of a list of loop steps.
pub(super) fn loop_groups<'p>(plan: &'p Plan, steps: &[super::plan::Step]) -> Vec<&'p Group> {
    steps
        .iter()
        .map(|st| match st {
            super::plan::Step::Loop(i) => &plan.groups[*i],
            // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
            _ => unreachable!("checked by fusable"),
        })
        .collect()
}

/// Per group: the levels of its expressions and, per (feature, reduced)
/// point, the values of levels 0 and 1 (constants and invariant loads),
/// computed where the builder stands (an entry block, out of every loop).
pub(super) struct Hoisted {
    levels: Vec<Vec<u8>>,
    pre: Vec<Vec<Vec<Option<Value>>>>,
}

pub(super) fn hoist(
    b: &mut FunctionBuilder,
    plan: &Plan,
    groups: &[&Group],
    l: &Lanes,
    p: &Params,
    rows: i64,
    shims: &[cranelift_codegen::ir::FuncRef],
) -> Hoisted {
    let mut inputs = vec![];
    let flags = MemFlagsData::trusted();
    let mut levels = vec![];
    let mut pre: Vec<Vec<Vec<Option<Value>>>> = vec![];
    for g in groups {
        let level = expr_levels(&g.exprs);
        let red = g.red.max(1);
        let mut consts: Vec<Option<Value>> = vec![None; g.exprs.len()];
        for (i, e) in g.exprs.iter().enumerate() {
            if level[i] == 0 {
                consts[i] = Some(gen_op(b, l, e, &consts, shims));
            }
        }
        let mut per_point = vec![];
        for f in 0..g.domain {
            for r in 0..red {
                let fr = f * red + r;
                let mut vals = consts.clone();
                for (i, e) in g.exprs.iter().enumerate() {
                    if level[i] != 1 {
                        continue;
                    }
                    if let Expr::Load { loc, map } = *e {
                        let (base, off, stride) = base_and_stride(b, p, loc, l, rows, &mut inputs);
                        let a = off + feature_index(plan, map, fr) * stride;
                        let s = b.ins().load(l.sft(), flags.with_readonly(), base, a as i32);
                        vals[i] = Some(l.splat(b, s));
                    } else {
                        vals[i] = Some(gen_op(b, l, e, &vals, shims));
                    }
                }
                per_point.push(vals);
            }
        }
        levels.push(level);
        pre.push(per_point);
    }
    Hoisted { levels, pre }
}

/// One lane vector's column of the tile: its address and the tile stride.
pub(super) struct Column<'a> {
    pub l: &'a Lanes,
    pub col: Value,
    pub rows: i64,
}

/// Every group of `groups`, in order, on one column, every feature
/// unrolled; tile values come from `fwd` (or memory) and go into it.
pub(super) fn emit_groups(
    b: &mut FunctionBuilder,
    plan: &Plan,
    groups: &[&Group],
    h: &Hoisted,
    c: &Column,
    fwd: &mut Fwd,
    shims: &[cranelift_codegen::ir::FuncRef],
) {
    let (l, col, rows) = (c.l, c.col, c.rows);
    let flags = MemFlagsData::new().with_notrap();
    let sz = l.elem_bytes();
    for (gi, g) in groups.iter().enumerate() {
        let level = &h.levels[gi];
        let red = g.red.max(1);
        for f in 0..g.domain {
            let mut rvals = vec![];
            for r in 0..red {
                let mut vals = h.pre[gi][f * red + r].clone();
                for (i, e) in g.exprs.iter().enumerate() {
                    if level[i] != 2 {
                        continue;
                    }
                    if let Expr::Load {
                        loc: Loc::Tile(off),
                        map,
                    } = *e
                    {
                        let a = (off as i64 + feature_index(plan, map, f * red + r)) * rows * sz;
                        vals[i] = Some(match fwd.get(&a) {
                            Some(&v) => v,
                            None => b.ins().load(l.ft, flags, col, a as i32),
                        });
                    } else {
                        vals[i] = Some(gen_op(b, l, e, &vals, shims));
                    }
                }
                // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
                rvals.push(vals[g.root as usize].unwrap());
            }
            // The destination: a tile row (vector) or, never for a variant
            // group, anything else.
            let Loc::Tile(doff) = g.dst else {
                // invariant: codegen runs on a plan built from a verified graph; the planner guarantees this.
                unreachable!("variant groups write tile buffers")
            };
            let da = (doff as i64 + feature_index(plan, g.dst_map, f)) * rows * sz;
            let v = if red > 1 {
                let mut acc = l.f(
                    b,
                    if g.store == Store::Max {
                        f64::NEG_INFINITY
                    } else {
                        0.0
                    },
                );
                for &x in &rvals {
                    acc = match g.store {
                        Store::Max => max_rule(b, l, acc, x, true),
                        _ => b.ins().fadd(acc, x),
                    };
                }
                acc
            } else {
                let v = rvals[0];
                match g.store {
                    Store::Set => v,
                    Store::Add => {
                        let old = match fwd.get(&da) {
                            Some(&o) => o,
                            None => b.ins().load(l.ft, flags, col, da as i32),
                        };
                        b.ins().fadd(old, v)
                    }
                    Store::Max => {
                        let old = match fwd.get(&da) {
                            Some(&o) => o,
                            None => b.ins().load(l.ft, flags, col, da as i32),
                        };
                        max_rule(b, l, old, v, true)
                    }
                }
            };
            fwd.insert(da, v);
        }
    }
}

/// Where each expression of a fused loop varies: 0 = constant, 1 = per
/// feature (hoisted out of the lane loop), 2 = per lane vector.
pub(super) fn expr_levels(exprs: &[Expr]) -> Vec<u8> {
    let mut level = vec![0u8; exprs.len()];
    for (i, e) in exprs.iter().enumerate() {
        level[i] = match *e {
            Expr::Load { loc, .. } => {
                if matches!(loc, Loc::Tile(_)) {
                    2
                } else {
                    1
                }
            }
            Expr::Scalar(_) => 0,
            Expr::Unary(_, a) | Expr::PowC(_, a) => level[a as usize],
            Expr::Binary(_, a, c) => level[a as usize].max(level[c as usize]),
            Expr::Select(c, a, d) => level[c as usize]
                .max(level[a as usize])
                .max(level[d as usize]),
        };
    }
    level
}
