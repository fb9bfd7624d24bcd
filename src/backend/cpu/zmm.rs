//! AVX-512 machine code for the fused f32 loops of a plan.
//!
//! Cranelift's x86 backend vectorises to 128 bits only, so a fused
//! elementwise loop written through it handles 4 samples per instruction on
//! a machine that can do 16. Loops whose every op is one short AVX-512
//! sequence (arithmetic, comparisons, selects, the `max_rule` of
//! `codegen.rs`) are assembled here instead, with the same `LoopFn`
//! signature and the same shape: per feature `f` the leaf addresses and the
//! batch-invariant values, then a loop over 16-lane vectors of the batch.
//! Every op is the lanewise IEEE operation Cranelift emits, in the same
//! operand order and without contraction into FMAs, so the two code paths
//! agree bit for bit (tested below against `codegen::gen_loop`). Anything
//! else — transcendental functions, unrolled reductions, more live values
//! than registers — returns `None` and stays with Cranelift.
//!
//! The loop covers ⌈nvec/4⌉ 16-lane vectors, which may pass the `4·nvec`
//! rows asked for: a tile's feature rows are a multiple of 16 lanes apart
//! (`tile_stride`), so the extra lanes are padding of the same row, computed
//! and never read.

use iced_x86::code_asm::*;

use super::plan::{Expr, Group, Loc, Map, Store};
use crate::ir::{BinaryOp, UnaryOp};

/// Registers holding per-feature addresses of tile buffers.
const ADDR: [AsmRegister64; 5] = [rbp, r12, r13, r14, r15];

const Z: [AsmRegisterZmm; 32] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14,
    zmm15, zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27,
    zmm28, zmm29, zmm30, zmm31,
];

/// `vcmpps` predicates (ordered, quiet: the same truth tables as
/// Cranelift's `FloatCC` conditions).
const EQ_OQ: i32 = 0x00;
const UNORD_Q: i32 = 0x03;
const NEQ_UQ: i32 = 0x04;
const LT_OQ: i32 = 0x11;
const GE_OQ: i32 = 0x1D;
const GT_OQ: i32 = 0x1E;

const SIGN_BIT: u32 = 0x8000_0000;
const ONE: u32 = 0x3f80_0000;
const MINUS_ONE: u32 = 0xbf80_0000;

/// The machine code of `g`, or `None` when it has an op or a shape this
/// assembler does not handle. `stride` is the tile's row stride in elements.
pub(crate) fn assemble(g: &Group, stride: usize) -> Option<Vec<u8>> {
    if !eligible(g) {
        return None;
    }
    let mut a = Loop::new(g, stride)?;
    a.emit().ok()?;
    a.asm.assemble(0).ok()
}

fn eligible(g: &Group) -> bool {
    g.variant
        && g.red <= 1
        && matches!(g.dst, Loc::Tile(_))
        && g.exprs.iter().all(|e| match *e {
            Expr::Load { loc, .. } => !matches!(loc, Loc::Partial(_)),
            Expr::Scalar(_) | Expr::Select(..) => true,
            Expr::Unary(u, _) => matches!(
                u,
                UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sqrt | UnaryOp::Sign | UnaryOp::Step
            ),
            Expr::PowC(c, _) => c == 1.0 || c == 2.0 || c == -1.0,
            Expr::Binary(op, ..) => op != BinaryOp::Pow,
        })
}

/// Where a tile access finds its feature row: a register set per feature
/// (one per distinct feature stride or table) plus a constant displacement.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AddrKey {
    /// `f·s` feature rows from the tile's start.
    Affine(i64),
    /// `tables[t + f]` feature rows from the tile's start.
    Table(usize),
}

struct Loop<'g> {
    g: &'g Group,
    asm: CodeAssembler,
    /// Bytes between feature rows of the tile.
    row_bytes: i64,
    level: Vec<u8>,
    /// The zmm register of each expression's value.
    reg: Vec<Option<usize>>,
    /// The index of each expression's last reader (`usize::MAX`: the root).
    last_use: Vec<usize>,
    free: Vec<usize>,
    addr_keys: Vec<AddrKey>,
    pool: Vec<(u32, CodeLabel)>,
}

/// Why a loop stays with Cranelift (never shown to users: the fallback is
/// silent and equivalent).
#[derive(Debug)]
enum Bail {
    Unsupported,
}

impl Bail {
    fn new(_why: &'static str) -> Self {
        Bail::Unsupported
    }
}

impl From<IcedError> for Bail {
    fn from(_: IcedError) -> Self {
        Bail::Unsupported
    }
}

type R = Result<(), Bail>;

impl<'g> Loop<'g> {
    fn new(g: &'g Group, stride: usize) -> Option<Self> {
        let level = super::codegen::expr_levels(&g.exprs);
        let mut last_use = vec![0; g.exprs.len()];
        for (i, e) in g.exprs.iter().enumerate() {
            for j in operands(e) {
                last_use[j as usize] = i;
            }
        }
        last_use[g.root as usize] = usize::MAX;
        let mut addr_keys = vec![];
        let tile_maps = g
            .exprs
            .iter()
            .filter_map(|e| match *e {
                Expr::Load {
                    loc: Loc::Tile(_),
                    map,
                } => Some(map),
                _ => None,
            })
            .chain(std::iter::once(g.dst_map));
        for map in tile_maps {
            let key = match map {
                Map::Affine { s: 0, .. } => continue,
                Map::Affine { s, .. } => AddrKey::Affine(s),
                Map::Table(t) => AddrKey::Table(t),
            };
            if !addr_keys.contains(&key) {
                addr_keys.push(key);
            }
        }
        if addr_keys.len() > ADDR.len() {
            return None;
        }
        Some(Loop {
            g,
            asm: CodeAssembler::new(64).ok()?,
            row_bytes: i64::try_from(stride).ok()? * 4,
            level,
            reg: vec![None; g.exprs.len()],
            last_use,
            free: (0..32).rev().collect(),
            addr_keys,
            pool: vec![],
        })
    }

    fn emit(&mut self) -> R {
        let a = &mut self.asm;
        let mut exit = a.create_label();
        for r in [rbx, rbp, r12, r13, r14, r15] {
            a.push(r)?;
        }
        // r10 = bytes of ⌈nvec/4⌉ 16-lane vectors.
        a.lea(r10, ptr(r9 + 3))?;
        a.shr(r10, 2)?;
        a.shl(r10, 6)?;
        a.test(r10, r10)?;
        a.jz(exit)?;
        if self.g.domain == 0 {
            a.jmp(exit)?;
        }
        self.values(0)?;
        let a = &mut self.asm;
        let mut floop = a.create_label();
        let mut vloop = a.create_label();
        a.xor(r11, r11)?;
        a.set_label(&mut floop)?;
        self.addresses()?;
        self.values(1)?;
        self.asm.xor(ebx, ebx)?;
        self.asm.set_label(&mut vloop)?;
        self.values(2)?;
        self.store()?;
        let a = &mut self.asm;
        a.add(rbx, 64)?;
        a.cmp(rbx, r10)?;
        a.jb(vloop)?;
        a.inc(r11)?;
        a.cmp(r11, imm32(self.g.domain)?)?;
        a.jb(floop)?;
        a.set_label(&mut exit)?;
        a.vzeroupper()?;
        for r in [r15, r14, r13, r12, rbp, rbx] {
            a.pop(r)?;
        }
        a.ret()?;
        for (bits, label) in &mut self.pool {
            a.set_label(label)?;
            a.dd(&[*bits])?;
        }
        Ok(())
    }

    /// The tile address registers of feature `r11`.
    fn addresses(&mut self) -> R {
        for (k, key) in self.addr_keys.iter().enumerate() {
            let reg = ADDR[k];
            match *key {
                AddrKey::Affine(s) => {
                    self.asm.imul_3(reg, r11, imm32(s * self.row_bytes)?)?;
                    self.asm.add(reg, rdi)?;
                }
                AddrKey::Table(t) => {
                    self.asm.mov(eax, dword_ptr(r8 + r11 * 4 + imm32(4 * t)?))?;
                    self.asm.imul_3(rax, rax, imm32(self.row_bytes)?)?;
                    self.asm.lea(reg, ptr(rdi + rax))?;
                }
            }
        }
        Ok(())
    }

    /// The base register and displacement of tile feature `off + map(f)`.
    fn tile_addr(&self, off: usize, map: Map) -> Result<(AsmRegister64, i32), Bail> {
        let rb = self.row_bytes;
        let (key, first) = match map {
            Map::Affine { a, s: 0 } => return Ok((rdi, imm32((off as i64 + a) * rb)?)),
            Map::Affine { a, s } => (AddrKey::Affine(s), off as i64 + a),
            Map::Table(t) => (AddrKey::Table(t), off as i64),
        };
        // invariant: `new` collected every tile map's key.
        let k = self.addr_keys.iter().position(|&x| x == key).unwrap_or(0);
        Ok((ADDR[k], imm32(first * rb)?))
    }

    /// The values of every expression of `level` (0: constants, once; 1:
    /// per feature; 2: per lane vector), each in a register of its own.
    fn values(&mut self, level: u8) -> R {
        for i in 0..self.g.exprs.len() {
            if self.level[i] != level {
                continue;
            }
            let Some(d) = self.free.pop() else {
                return Err(Bail::new("out of zmm registers"));
            };
            self.reg[i] = Some(d);
            let e = self.g.exprs[i].clone();
            match e {
                Expr::Load { loc, map } => self.load(Z[d], loc, map)?,
                Expr::Scalar(c) => {
                    let m = self.konst((c as f32).to_bits());
                    self.asm.vbroadcastss(Z[d], m)?;
                }
                _ => self.op(&e, Z[d])?,
            }
            if level == 2 {
                for j in operands(&e) {
                    if self.last_use[j as usize] == i
                        && self.level[j as usize] == 2
                        && let Some(r) = self.reg[j as usize]
                    {
                        self.free.push(r);
                    }
                }
            }
        }
        Ok(())
    }

    fn load(&mut self, d: AsmRegisterZmm, loc: Loc, map: Map) -> R {
        let (base, off) = match loc {
            Loc::Tile(off) => {
                let (reg, disp) = self.tile_addr(off, map)?;
                return Ok(self.asm.vmovups(d, zmmword_ptr(reg + rbx + disp))?);
            }
            Loc::Inv(off) => (rsi, off),
            Loc::Const(off) => (rdx, off),
            Loc::Input(i) => {
                self.asm.mov(r9, qword_ptr(rcx + imm32(8 * i)?))?;
                (r9, 0)
            }
            Loc::Partial(_) => return Err(Bail::new("partial leaf")),
        };
        match map {
            Map::Affine { a, s: 0 } => {
                let disp = imm32(4 * (off as i64 + a))?;
                Ok(self.asm.vbroadcastss(d, dword_ptr(base + disp))?)
            }
            Map::Affine { a, s } => {
                self.asm.imul_3(rax, r11, imm32(4 * s)?)?;
                let disp = imm32(4 * (off as i64 + a))?;
                Ok(self.asm.vbroadcastss(d, dword_ptr(base + rax + disp))?)
            }
            Map::Table(t) => {
                self.asm.mov(eax, dword_ptr(r8 + r11 * 4 + imm32(4 * t)?))?;
                Ok(self
                    .asm
                    .vbroadcastss(d, dword_ptr(base + rax * 4 + imm32(4 * off)?))?)
            }
        }
    }

    /// The label of the 32-bit constant `bits` in the pool after the code.
    fn label(&mut self, bits: u32) -> CodeLabel {
        if let Some((_, l)) = self.pool.iter().find(|(b, _)| *b == bits) {
            return *l;
        }
        let l = self.asm.create_label();
        self.pool.push((bits, l));
        l
    }

    /// The constant `bits` as a scalar memory operand (for `vbroadcastss`).
    fn konst(&mut self, bits: u32) -> AsmMemoryOperand {
        dword_ptr(self.label(bits))
    }

    /// The constant `bits` as an embedded-broadcast memory operand.
    fn bcst(&mut self, bits: u32) -> AsmMemoryOperand {
        dword_bcst(self.label(bits))
    }

    fn val(&self, i: u32) -> AsmRegisterZmm {
        // invariant: operands precede their readers and keep their registers
        // until their last reader has run.
        Z[self.reg[i as usize].unwrap_or(0)]
    }

    /// `d = e(operands)`; `d` is distinct from every operand's register.
    fn op(&mut self, e: &Expr, d: AsmRegisterZmm) -> R {
        match *e {
            Expr::Unary(u, x) => self.unary(u, d, self.val(x)),
            Expr::PowC(c, x) => {
                let x = self.val(x);
                if c == 2.0 {
                    Ok(self.asm.vmulps(d, x, x)?)
                } else if c == 1.0 {
                    Ok(self.asm.vmovaps(d, x)?)
                } else {
                    let one = self.konst(ONE);
                    self.asm.vbroadcastss(d, one)?;
                    Ok(self.asm.vdivps(d, d, x)?)
                }
            }
            Expr::Binary(op, x, y) => self.binary(op, d, self.val(x), self.val(y)),
            Expr::Select(c, t, f) => {
                let zero = self.bcst(0);
                let (c, t, f) = (self.val(c), self.val(t), self.val(f));
                self.asm.vcmpps(k1, c, zero, NEQ_UQ)?;
                Ok(self.asm.vblendmps(d.k1(), f, t)?)
            }
            Expr::Load { .. } | Expr::Scalar(_) => Err(Bail::new("not an op")),
        }
    }

    fn unary(&mut self, u: UnaryOp, d: AsmRegisterZmm, x: AsmRegisterZmm) -> R {
        match u {
            UnaryOp::Neg => {
                let m = self.bcst(SIGN_BIT);
                Ok(self.asm.vpxord(d, x, m)?)
            }
            UnaryOp::Abs => {
                let m = self.bcst(!SIGN_BIT);
                Ok(self.asm.vpandd(d, x, m)?)
            }
            UnaryOp::Sqrt => Ok(self.asm.vsqrtps(d, x)?),
            UnaryOp::Step => {
                let zero = self.bcst(0);
                let one = self.konst(ONE);
                self.asm.vcmpps(k1, x, zero, GT_OQ)?;
                Ok(self.asm.vbroadcastss(d.k1().z(), one)?)
            }
            UnaryOp::Sign => {
                // x·0 (±0, or NaN), then −1 where x < 0 and 1 where x > 0.
                let zero = self.bcst(0);
                let one = self.konst(ONE);
                let mone = self.konst(MINUS_ONE);
                self.asm.vcmpps(k1, x, zero, LT_OQ)?;
                self.asm.vcmpps(k2, x, zero, GT_OQ)?;
                self.asm.vmulps(d, x, zero)?;
                self.asm.vbroadcastss(d.k1(), mone)?;
                Ok(self.asm.vbroadcastss(d.k2(), one)?)
            }
            _ => Err(Bail::new("unsupported unary op")),
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        d: AsmRegisterZmm,
        x: AsmRegisterZmm,
        y: AsmRegisterZmm,
    ) -> R {
        match op {
            BinaryOp::Add => Ok(self.asm.vaddps(d, x, y)?),
            BinaryOp::Sub => Ok(self.asm.vsubps(d, x, y)?),
            BinaryOp::Mul => Ok(self.asm.vmulps(d, x, y)?),
            BinaryOp::Div => Ok(self.asm.vdivps(d, x, y)?),
            BinaryOp::Max => self.max_rule(d, x, y, true),
            BinaryOp::Min => self.max_rule(d, x, y, false),
            BinaryOp::Gt | BinaryOp::Ge => {
                let one = self.konst(ONE);
                let cc = if op == BinaryOp::Gt { GT_OQ } else { GE_OQ };
                self.asm.vcmpps(k1, x, y, cc)?;
                Ok(self.asm.vbroadcastss(d.k1().z(), one)?)
            }
            BinaryOp::Pow => Err(Bail::new("unsupported binary op")),
        }
    }

    /// `codegen::max_rule`: `x` where `x > y` (`<` for min) or `y` is NaN,
    /// else `y`; on a tie the bitwise AND (OR) of the two.
    fn max_rule(
        &mut self,
        d: AsmRegisterZmm,
        x: AsmRegisterZmm,
        y: AsmRegisterZmm,
        max: bool,
    ) -> R {
        let a = &mut self.asm;
        a.vcmpps(k1, x, y, if max { GT_OQ } else { LT_OQ })?;
        a.vcmpps(k2, y, y, UNORD_Q)?;
        a.korw(k1, k1, k2)?;
        a.vcmpps(k3, x, y, EQ_OQ)?;
        a.vblendmps(d.k1(), y, x)?;
        if max {
            Ok(a.vpandd(d.k3(), x, y)?)
        } else {
            Ok(a.vpord(d.k3(), x, y)?)
        }
    }

    fn store(&mut self) -> R {
        let Loc::Tile(off) = self.g.dst else {
            return Err(Bail::new("non-tile destination"));
        };
        let (reg, disp) = self.tile_addr(off, self.g.dst_map)?;
        let dst = zmmword_ptr(reg + rbx + disp);
        let v = self.val(self.g.root);
        let (Some(t), Some(u)) = (self.free.pop(), self.free.pop()) else {
            return Err(Bail::new("out of zmm registers"));
        };
        let (old, out) = (Z[t], Z[u]);
        match self.g.store {
            Store::Set => self.asm.vmovups(dst, v)?,
            Store::Add => {
                self.asm.vmovups(old, dst)?;
                self.asm.vaddps(out, old, v)?;
                self.asm.vmovups(dst, out)?;
            }
            Store::Max => {
                self.asm.vmovups(old, dst)?;
                self.max_rule(out, old, v, true)?;
                self.asm.vmovups(dst, out)?;
            }
        }
        self.free.extend([u, t]);
        if self.level[self.g.root as usize] == 2
            && let Some(r) = self.reg[self.g.root as usize]
        {
            self.free.push(r);
        }
        Ok(())
    }
}

/// The distinct operands of `e`.
fn operands(e: &Expr) -> Vec<u32> {
    let mut v = match *e {
        Expr::Load { .. } | Expr::Scalar(_) => vec![],
        Expr::Unary(_, a) | Expr::PowC(_, a) => vec![a],
        Expr::Binary(_, a, b) => vec![a, b],
        Expr::Select(c, a, b) => vec![c, a, b],
    };
    v.sort_unstable();
    v.dedup();
    v
}

fn imm32<T: TryInto<i32>>(v: T) -> Result<i32, Bail> {
    v.try_into()
        .map_err(|_| Bail::new("offset out of 32-bit range"))
}

#[cfg(test)]
mod tests {
    use super::super::codegen;
    use super::super::plan::{Expr, Group, Loc, Map, Plan, Store};
    use crate::ir::{BinaryOp, UnaryOp};

    /// Feature rows of the test tile; lanes a row (a multiple of 16).
    const FEATS: usize = 24;
    const STRIDE: usize = 48;
    /// The loops run over 4·NVEC = 40 lanes of each row; the assembled code
    /// also computes lanes 40..48, which are compared nowhere.
    const NVEC: usize = 10;
    const DOMAIN: usize = 4;

    fn special(i: usize) -> f32 {
        const S: [f32; 12] = [
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-45,
            -1e-40,
            1.0,
            -1.0,
            2.5,
            f32::MAX,
            -3.0,
        ];
        S[i % S.len()]
    }

    /// Values mixing the special ones with a spread of ordinary ones, and
    /// every pair of them meeting in some lane of rows f and f + DOMAIN.
    fn tile() -> Vec<f32> {
        (0..FEATS * STRIDE)
            .map(|i| {
                let (f, l) = (i / STRIDE, i % STRIDE);
                if (f + l) % 3 == 0 {
                    special(l + 5 * f)
                } else {
                    ((i * 7919) % 1000) as f32 / 125.0 - 4.0
                }
            })
            .collect()
    }

    fn load(loc: Loc, map: Map) -> Expr {
        Expr::Load { loc, map }
    }

    fn id(off: usize) -> Expr {
        load(Loc::Tile(off), Map::Affine { a: 0, s: 1 })
    }

    fn group(exprs: Vec<Expr>, store: Store, dst_map: Map) -> Group {
        Group {
            domain: DOMAIN,
            root: exprs.len() as u32 - 1,
            exprs,
            dst: Loc::Tile(16),
            dst_map,
            store,
            variant: true,
            label: "test".into(),
            red: 1,
        }
    }

    /// Expression lists over two tile leaves (0, 1) and a per-feature
    /// invariant (2), covering every op the assembler takes.
    fn cases() -> Vec<Vec<Expr>> {
        let leaves = || {
            vec![
                id(0),
                id(DOMAIN),
                load(Loc::Inv(0), Map::Affine { a: 1, s: 1 }),
            ]
        };
        let mut out = vec![];
        for u in [
            UnaryOp::Neg,
            UnaryOp::Abs,
            UnaryOp::Sqrt,
            UnaryOp::Sign,
            UnaryOp::Step,
        ] {
            let mut e = leaves();
            e.push(Expr::Unary(u, 0));
            out.push(e);
        }
        for c in [1.0, 2.0, -1.0] {
            let mut e = leaves();
            e.push(Expr::PowC(c, 1));
            out.push(e);
        }
        for op in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Max,
            BinaryOp::Min,
            BinaryOp::Gt,
            BinaryOp::Ge,
        ] {
            for (a, b) in [(0, 1), (1, 0), (0, 2), (2, 0), (0, 0)] {
                let mut e = leaves();
                e.push(Expr::Binary(op, a, b));
                out.push(e);
            }
        }
        let mut e = leaves();
        e.push(Expr::Select(0, 1, 2));
        out.push(e);
        // Every level at once: a constant, ops on constants and on the
        // invariant, a table leaf, a shared input, a strided and a fixed
        // tile feature.
        out.push(vec![
            id(0),
            load(Loc::Tile(8), Map::Affine { a: 2, s: 2 }),
            load(Loc::Tile(20), Map::Affine { a: 1, s: 0 }),
            load(Loc::Tile(0), Map::Table(0)),
            load(Loc::Const(1), Map::Affine { a: 0, s: 0 }),
            load(Loc::Input(0), Map::Table(4)),
            Expr::Scalar(0.75),
            Expr::Binary(BinaryOp::Mul, 6, 4),
            Expr::Binary(BinaryOp::Sub, 5, 7),
            Expr::Binary(BinaryOp::Mul, 0, 1),
            Expr::Binary(BinaryOp::Add, 9, 2),
            Expr::Binary(BinaryOp::Max, 10, 3),
            Expr::Binary(BinaryOp::Mul, 11, 8),
            Expr::Unary(UnaryOp::Neg, 12),
            Expr::Select(1, 13, 12),
        ]);
        out
    }

    /// Runs loop 0 of `plan` compiled with or without the assembler.
    fn run(plan: &Plan, asm: bool, tile: &mut [f32]) {
        let jit = codegen::compile(plan, false, STRIDE, None, false, asm, None).unwrap();
        let mut inv: Vec<f32> = (0..8).map(|i| special(3 * i + 1)).collect();
        let consts: Vec<f32> = vec![0.5, -2.0];
        let input: Vec<f32> = (0..8).map(|i| i as f32 - 2.5).collect();
        let ins = [input.as_ptr() as *const u8];
        unsafe {
            (jit.fns[0])(
                tile.as_mut_ptr() as *mut u8,
                inv.as_mut_ptr() as *mut u8,
                consts.as_ptr() as *const u8,
                ins.as_ptr(),
                plan.tables.as_ptr(),
                NVEC as i64,
            )
        };
    }

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Every case, stored with each store kind and through a table, gives
    /// Cranelift's bits in every lane Cranelift computes.
    #[test]
    fn assembled_loops_match_cranelift_bit_for_bit() {
        if !super::super::vecmath::available() {
            eprintln!("skipped: this CPU has no AVX-512");
            return;
        }
        let stores = [
            (Store::Set, Map::Affine { a: 0, s: 1 }),
            (Store::Add, Map::Affine { a: 0, s: 1 }),
            (Store::Max, Map::Affine { a: 0, s: 1 }),
            (Store::Set, Map::Table(8)),
        ];
        for (k, exprs) in cases().into_iter().enumerate() {
            for (store, dst_map) in stores {
                let g = group(exprs.clone(), store, dst_map);
                assert!(
                    super::assemble(&g, STRIDE).is_some(),
                    "case {k} not assembled"
                );
                let plan = Plan {
                    groups: vec![g],
                    // Feature tables: a permutation, input indices, dst rows.
                    tables: vec![3, 1, 0, 2, 7, 0, 5, 2, 2, 0, 3, 1],
                    ..Plan::default()
                };
                let (mut want, mut got) = (tile(), tile());
                run(&plan, false, &mut want);
                run(&plan, true, &mut got);
                for f in 0..FEATS {
                    for l in 0..4 * NVEC {
                        let (w, g) = (want[f * STRIDE + l], got[f * STRIDE + l]);
                        assert!(
                            same(w, g),
                            "case {k} {store:?}: row {f} lane {l}: {g:e}, want {w:e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn loops_it_cannot_assemble_stay_with_cranelift() {
        let exp = vec![id(0), Expr::Unary(UnaryOp::Exp, 0)];
        let g = group(exp, Store::Set, Map::Affine { a: 0, s: 1 });
        assert!(super::assemble(&g, STRIDE).is_none());
        let mut reduction = group(vec![id(0)], Store::Add, Map::Affine { a: 0, s: 1 });
        reduction.red = 4;
        assert!(super::assemble(&reduction, STRIDE).is_none());
        // More live values than registers.
        let mut wide: Vec<Expr> = (0..40).map(|i| id(i % 8)).collect();
        wide.push(Expr::Binary(BinaryOp::Add, 0, 1));
        wide.extend((1..39).map(|i| Expr::Binary(BinaryOp::Add, 39 + i, i + 1)));
        let g = group(wide, Store::Set, Map::Affine { a: 0, s: 1 });
        assert!(super::assemble(&g, STRIDE).is_none());
    }
}
