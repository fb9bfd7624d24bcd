//! The device step loop: [`Kernel::run_steps`](crate::backend::Kernel) with
//! every buffer resident on the GPU. The inputs are written into the arena
//! once, then each step is three kinds of dispatch in one command stream —
//! Gaussian noise generated on the device, the step kernel's passes, and a
//! carry pass per carried buffer (the freeze guard included) — and only
//! the final state is read back. Which step of a submit a pass is on, it
//! reads from a uniform bound at that step's dynamic offset (no counter to
//! advance, so no dispatch for it). A window of a thousand Langevin steps
//! is one upload, a few submits and one read.
//!
//! The noise is `backend::noise`'s generator (the same hash, pair layout,
//! sub-keys and Box–Muller polynomials) written in WGSL: a pure function of
//! (seed, step, position), so a run is reproducible on a device and chains
//! do not depend on the batch split. Shader compilers may fuse a product
//! and a sum the host rounds twice, so the numbers can differ from the
//! CPU's in the last bits.
//!
//! Loops this module cannot keep on the device (a batch larger than one
//! arena, outputs summed over the batch, streams past 2³² pairs, step
//! numbers past 2³²−2) run on host buffers, as every backend's default.

use std::fmt::Write;
use std::sync::PoisonError;

use wgpu::util::DeviceExt;

use super::wgsl::{self, OutputSlot, Program, Region};
use crate::backend::{Arg, BackendError, Bind, Buffer, NoiseFeed, StepLoop, noise};

/// Steps encoded per submit: bounds the command buffer and the step table.
const STEPS_PER_SUBMIT: u64 = 256;
/// Where the step table starts in the step buffer.
const TABLE: usize = 0;
/// Per step: the noise sub-keys (two words), the run's step number + 1, the
/// step's index in the loop (its row of the history), then each uniform
/// stream's key (two words, low first).
const WORDS_PER_STEP: usize = 4 + 2 * MAX_UNIFORM_FEEDS;
/// The most uniform feeds a device loop draws (HMC's decision and jitter).
const MAX_UNIFORM_FEEDS: usize = 2;

/// Where one loop's buffers live in the kernel's arena (regions of the
/// per-sample part, offsets in values per sample) — what the step module's
/// text depends on.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Layout {
    /// The noise input's region and values per sample, and the stream
    /// position (in pairs) of its first value.
    noise: Option<(usize, usize, u64)>,
    /// The uniform input's region and the chain number of sample 0.
    uniforms: Vec<(usize, u32)>,
    /// Per carry: the output's region, the input's region, values per sample.
    carry: Vec<(usize, usize, usize)>,
    /// Per recorded output: its region and values per sample.
    record: Vec<(usize, usize)>,
    freeze: bool,
}

impl Layout {
    /// Whether a step draws anything (normals or uniforms) on the device.
    fn draws(&self) -> bool {
        self.noise.is_some() || !self.uniforms.is_empty()
    }
    /// Whether a step records or carries anything after the kernel.
    fn finishes(&self) -> bool {
        !self.carry.is_empty() || !self.record.is_empty()
    }
    /// Invocations of `draw`: one per normal pair, and one per sample.
    fn draw_invocations(&self, batch: usize) -> usize {
        let pairs = self
            .noise
            .map_or(0, |(_, numel, _)| (batch * numel).div_ceil(2));
        let samples = if self.uniforms.is_empty() { 0 } else { batch };
        pairs.max(samples)
    }
}

/// How the loop's state buffers map onto the arena.
pub(super) struct Plan {
    pub layout: Layout,
    /// Per graph input: the bound buffer and where it goes.
    inputs: Vec<(Bind, Option<Region>)>,
    /// Per graph output: its state buffer and region.
    outputs: Vec<(usize, usize, usize)>,
    /// The carried-into state buffers and their regions (read back at the end).
    carried_in: Vec<(usize, usize, usize)>,
    noise_buffer: Option<usize>,
    uniform_buffers: Vec<usize>,
    /// Per recorded output, the state buffer its history goes to.
    histories: Vec<usize>,
}

/// The device plan of `lp`, or `None` when the loop must run on the host.
pub(super) fn plan(prog: &Program, lp: &StepLoop<'_>, batch: usize) -> Option<Plan> {
    if lp.inputs.len() != prog.inputs.len() || lp.outputs.len() != prog.outputs.len() {
        return None;
    }
    let outputs = lp
        .outputs
        .iter()
        .zip(&prog.outputs)
        .map(|(&buf, slot)| match *slot {
            OutputSlot::Rows { off, numel } => Some((buf, off, numel)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    let inputs: Vec<(Bind, Option<Region>)> = lp
        .inputs
        .iter()
        .zip(&prog.inputs)
        .map(|(&b, slot)| (b, slot.region))
        .collect();
    // The per-sample region a state buffer is read from (one input only).
    let region_of = |buf: usize| -> Option<(usize, usize)> {
        let mut found = inputs
            .iter()
            .zip(&prog.inputs)
            .filter(|((b, _), _)| *b == Bind::State(buf));
        let ((_, region), slot) = found.next()?;
        if found.next().is_some() {
            return None;
        }
        match region {
            Some(Region::Var(off)) => Some((*off, slot.numel)),
            _ => None,
        }
    };
    let mut carry = Vec::new();
    let mut carried_in = Vec::new();
    for &(o, i) in lp.carry {
        let &(_, out_off, numel) = outputs.iter().find(|(b, _, _)| *b == o)?;
        let (in_off, in_numel) = region_of(i)?;
        if in_numel != numel {
            return None;
        }
        carry.push((out_off, in_off, numel));
        carried_in.push((i, in_off, numel));
    }
    let noise = match lp.noise {
        Some(NoiseFeed { buffer, offset, .. }) => {
            let (off, numel) = region_of(buffer)?;
            let last_pair = (offset / 2).checked_add((batch * numel).div_ceil(2) as u64)?;
            if offset % 2 != 0 || last_pair >= 1 << 32 {
                return None;
            }
            Some((off, numel, offset / 2))
        }
        None => None,
    };
    if lp.first_step.checked_add(lp.steps)? >= u32::MAX as u64 - 1 {
        return None;
    }
    if lp.uniforms.len() > MAX_UNIFORM_FEEDS {
        return None;
    }
    let mut uniforms = Vec::new();
    for uf in lp.uniforms {
        let (off, numel) = region_of(uf.buffer)?;
        let first = u32::try_from(uf.first.checked_add(batch as u64)?).ok()?;
        if numel != 1 {
            return None;
        }
        uniforms.push((off, first - batch as u32));
    }
    let mut record = Vec::new();
    let mut histories = Vec::new();
    for &(o, h) in lp.record {
        let &(_, off, numel) = outputs.iter().find(|(b, _, _)| *b == o)?;
        record.push((off, numel));
        histories.push(h);
    }
    Some(Plan {
        layout: Layout {
            noise,
            uniforms,
            carry,
            record,
            freeze: lp.freeze,
        },
        inputs,
        outputs,
        carried_in,
        noise_buffer: lp.noise.map(|n| n.buffer),
        uniform_buffers: lp.uniforms.iter().map(|u| u.buffer).collect(),
        histories,
    })
}

/// Values a loop's history needs on the device (0 without records), from
/// the program's per-sample output sizes.
fn history_values(lp: &StepLoop<'_>, prog: &Program, batch: usize) -> u64 {
    let row: usize = lp
        .record
        .iter()
        .filter_map(|&(o, _)| {
            let j = lp.outputs.iter().position(|&b| b == o)?;
            match prog.outputs.get(j)? {
                OutputSlot::Rows { numel, .. } => Some(*numel),
                _ => None,
            }
        })
        .sum();
    lp.steps.saturating_mul((batch * row) as u64)
}

/// The step-index uniform: step t of a submit at byte `t · align`.
pub(super) fn ticks(device: &wgpu::Device, align: u64) -> wgpu::Buffer {
    let align = align as usize / 4;
    let mut words = vec![0u32; STEPS_PER_SUBMIT as usize * align];
    for t in 0..STEPS_PER_SUBMIT as usize {
        words[t * align] = t as u32;
    }
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("ebm step index"),
        contents: super::bytes_u32(&words),
        usage: wgpu::BufferUsages::UNIFORM,
    })
}

/// The step module of a layout, for a kernel of several passes: two entry
/// points, so that a step is the kernel's passes and two dispatches.
/// `draw` writes the step's normals (one invocation per pair) and uniforms
/// (one per sample); `finish` records the outputs into the history and
/// carries them, with the freeze guard (one invocation per sample).
pub(super) fn module(layout: &Layout, vb: usize) -> String {
    let mut s = format!("{KERNEL_BINDINGS}{}", prelude());
    let _ = writeln!(s, "const VB: u32 = {vb}u;\n");
    if layout.draws() {
        let _ = write!(
            s,
            "@compute @workgroup_size(64)\n\
             fn draw(@builtin(global_invocation_id) gid: vec3<u32>) {{\n\
             \x20 let i = gid.x + gid.y * {row}u;\n\
             \x20 let at = {TABLE}u + {WORDS_PER_STEP}u * T.t;\n",
            row = wgsl::ROW,
        );
        if let Some((off, numel, first_pair)) = layout.noise {
            let _ = write!(
                s,
                "  let len = P.batch * {numel}u;\n\
                 \x20 if (2u * i < len) {{\n\
                 \x20   let p = {first_pair}u + i;\n\
                 \x20   let z = box_muller(hash32(p ^ S[at]), hash32((p * 0x9e3779b9u) ^ S[at + 1u]));\n\
                 \x20   let base = VB + {off}u * P.batch;\n\
                 \x20   A[base + 2u * i] = z.x;\n\
                 \x20   if (2u * i + 1u < len) {{ A[base + 2u * i + 1u] = z.y; }}\n\
                 \x20 }}\n"
            );
        }
        uniform(&mut s, layout, "i");
        s.push_str("}\n\n");
    }
    if layout.finishes() {
        entry_head(&mut s, "finish");
        finish(&mut s, layout);
        s.push_str("}\n\n");
    }
    s
}

/// The step module of a kernel that is one pass (`wgsl`'s `all_of`):
/// the kernel's own text and one entry point `step`, in which each sample's
/// invocation draws its normals and uniform, computes its values, and
/// records and carries them. Nothing a sample reads is written by another
/// sample's invocation, so a step is one dispatch.
pub(super) fn fused_module(layout: &Layout, prog: &Program) -> String {
    let mut s = format!("{}{}{}", wgsl::PRELUDE, prelude(), prog.kernel);
    entry_head(&mut s, "step");
    if let Some((off, numel, first_pair)) = layout.noise {
        // The pairs that cover this sample's values; a pair shared with a
        // neighbour is computed by both, each writing its own half.
        let _ = write!(
            s,
            "  let lo = b * {numel}u;\n\
             \x20 let hi = lo + {numel}u;\n\
             \x20 for (var v = lo - lo % 2u; v < hi; v += 2u) {{\n\
             \x20   let p = {first_pair}u + v / 2u;\n\
             \x20   let z = box_muller(hash32(p ^ S[at]), hash32((p * 0x9e3779b9u) ^ S[at + 1u]));\n\
             \x20   let base = VB + {off}u * P.batch;\n\
             \x20   if (v >= lo) {{ A[base + v] = z.x; }}\n\
             \x20   if (v + 1u < hi) {{ A[base + v + 1u] = z.y; }}\n\
             \x20 }}\n"
        );
    }
    uniform(&mut s, layout, "b");
    s.push_str("  all_of(b);\n");
    finish(&mut s, layout);
    s.push_str("}\n\n");
    s
}

/// The start of a per-sample step entry point: `b`, the sample; `at`, the
/// step's row of the table.
fn entry_head(s: &mut String, name: &str) {
    let _ = write!(
        s,
        "@compute @workgroup_size(64)\n\
         fn {name}(@builtin(global_invocation_id) gid: vec3<u32>) {{\n\
         \x20 let b = gid.x + gid.y * {row}u;\n\
         \x20 if (b >= P.batch) {{ return; }}\n\
         \x20 let at = {TABLE}u + {WORDS_PER_STEP}u * T.t;\n",
        row = wgsl::ROW,
    );
}

/// The uniforms of sample `sample` (an expression), one per feed of the
/// layout, each from its stream's key in the step's row of the table.
fn uniform(s: &mut String, layout: &Layout, sample: &str) {
    for (k, &(off, first)) in layout.uniforms.iter().enumerate() {
        let (lo, hi) = (4 + 2 * k, 5 + 2 * k);
        let _ = write!(
            s,
            "  if ({sample} < P.batch) {{\n\
             \x20   A[VB + {off}u * P.batch + {sample}] = uniform_of(vec2<u32>(S[at + {lo}u], S[at + {hi}u]), {first}u + {sample});\n\
             \x20 }}\n"
        );
    }
}

/// Sample `b`'s records and carries.
fn finish(s: &mut String, layout: &Layout) {
    record(s, &layout.record);
    if layout.freeze && !layout.carry.is_empty() {
        freeze(s, &layout.carry);
    }
    for &c in &layout.carry {
        carry(s, c, layout.freeze);
    }
}

/// `finish`'s copies of the recorded outputs into row `S[at + 3]` of the
/// history (per step: each output's rows of every sample).
fn record(s: &mut String, record: &[(usize, usize)]) {
    let row: usize = record.iter().map(|r| r.1).sum();
    if row == 0 {
        return;
    }
    let _ = writeln!(s, "  let base = S[at + 3u] * P.batch * {row}u;");
    let mut prefix = 0;
    for &(off, numel) in record {
        let _ = write!(
            s,
            "  for (var e = 0u; e < {numel}u; e++) {{\n\
             \x20   H[base + P.batch * {prefix}u + b * {numel}u + e] = A[VB + {off}u * P.batch + b * {numel}u + e];\n\
             \x20 }}\n"
        );
        prefix += numel;
    }
}

/// The freeze guard: a sample not yet frozen whose new carried rows are
/// not all finite freezes at this step (its flag takes the step number), so
/// that it keeps every carried row, as on the host. Finiteness is read from
/// the exponent bits: a shader compiler may assume arithmetic never meets
/// inf or NaN.
fn freeze(s: &mut String, carry: &[(usize, usize, usize)]) {
    let _ = write!(
        s,
        "  let flag = {TABLE}u + {WORDS_PER_STEP}u * {STEPS_PER_SUBMIT}u + b;\n\
         \x20 if (S[flag] == 0u) {{\n\
         \x20   var bad = false;\n"
    );
    for &(out_off, _, numel) in carry {
        let _ = write!(
            s,
            "    for (var e = 0u; e < {numel}u && !bad; e++) {{\n\
             \x20     bad = (bitcast<u32>(A[VB + {out_off}u * P.batch + b * {numel}u + e]) & 0x7f800000u) == 0x7f800000u;\n\
             \x20   }}\n"
        );
    }
    s.push_str("    if (bad) { S[flag] = S[at + 2u]; }\n  }\n");
}

/// `finish`'s copy of one carried output into its input; with the freeze
/// guard a frozen sample keeps its row.
fn carry(s: &mut String, (out_off, in_off, numel): (usize, usize, usize), freeze: bool) {
    let moves = if freeze { "S[flag] == 0u" } else { "true" };
    let _ = write!(
        s,
        "  if ({moves}) {{\n\
         \x20   let src = VB + {out_off}u * P.batch + b * {numel}u;\n\
         \x20   let dst = VB + {in_off}u * P.batch + b * {numel}u;\n\
         \x20   for (var e = 0u; e < {numel}u; e++) {{ A[dst + e] = A[src + e]; }}\n\
         \x20 }}\n"
    );
}

/// The step table of steps `from..from + n` of the run: noise sub-keys and
/// step numbers (+1, so 0 means "not frozen" in the freeze flags).
pub(super) fn table(lp: &StepLoop<'_>, from: u64, n: u64) -> Vec<u32> {
    let mut words = vec![0u32; TABLE + WORDS_PER_STEP * n as usize];
    for t in 0..n {
        let step = lp.first_step + from + t;
        let at = TABLE + WORDS_PER_STEP * t as usize;
        if let Some(nf) = lp.noise {
            let (a, b) = noise::subkeys_of_step(nf.seed, step);
            words[at] = a;
            words[at + 1] = b;
        }
        words[at + 2] = (step + 1) as u32;
        words[at + 3] = (from + t) as u32;
        for (k, uf) in lp.uniforms.iter().enumerate() {
            let key = noise::uniform_key(uf.seed, uf.stream, step);
            words[at + 4 + 2 * k] = key as u32;
            words[at + 5 + 2 * k] = (key >> 32) as u32;
        }
    }
    words
}

/// Words of the step buffer: the table of one submit, then a freeze flag
/// per sample.
pub(super) fn step_words(batch: usize) -> usize {
    TABLE + WORDS_PER_STEP * STEPS_PER_SUBMIT as usize + batch
}

/// Where the freeze flags start in the step buffer.
pub(super) fn flags_at() -> usize {
    TABLE + WORDS_PER_STEP * STEPS_PER_SUBMIT as usize
}

/// One graph input's values (host values, or a held buffer) and its arena
/// region (`None`: unread).
type Upload<'b> = (Arg<'b>, Option<Region>);

impl Plan {
    /// Each graph input's values and where they go in the arena.
    pub fn uploads<'b>(
        &self,
        fixed: &[&'b Buffer],
        state: &'b [Buffer],
    ) -> Result<Vec<Upload<'b>>, BackendError> {
        self.inputs
            .iter()
            .map(|&(bind, region)| {
                let buf = match bind {
                    Bind::Fixed(i) => fixed.get(i).copied(),
                    Bind::State(i) => state.get(i),
                };
                match buf {
                    Some(b @ (Buffer::F32(_) | Buffer::Held(_))) => Ok((Arg::Buffer(b), region)),
                    _ => Err(BackendError::StepLoop("a missing or f64 buffer".into())),
                }
            })
            .collect()
    }

    /// Values the history of `steps` steps holds: per step and sample, every
    /// recorded output's values.
    pub fn history_len(&self, steps: u64, batch: usize) -> usize {
        let row: usize = self.layout.record.iter().map(|r| r.1).sum();
        steps as usize * batch * row
    }

    /// Deals the device history (per step: each recorded output's rows of
    /// every sample) into the recorded outputs' history buffers.
    fn split_history(&self, words: &[u32], state: &mut [Buffer], (batch, steps): (usize, usize)) {
        let row: usize = self.layout.record.iter().map(|r| r.1).sum();
        let mut prefix = 0;
        for (&(_, numel), &h) in self.layout.record.iter().zip(&self.histories) {
            if let Some(Buffer::F32(v)) = state.get_mut(h) {
                v.clear();
                for t in 0..steps {
                    let at = t * batch * row + batch * prefix;
                    let rows = words.get(at..at + batch * numel).unwrap_or_default();
                    v.extend(rows.iter().map(|&w| f32::from_bits(w)));
                }
            }
            prefix += numel;
        }
    }

    /// `(state buffer, region, values per sample)` of everything the loop
    /// leaves behind: each output, each carried-into buffer, the noise and
    /// the uniforms.
    pub fn downloads(&self) -> Vec<(usize, usize, usize)> {
        let mut v = self.outputs.clone();
        v.extend(&self.carried_in);
        if let (Some(buf), Some((off, numel, _))) = (self.noise_buffer, self.layout.noise) {
            v.push((buf, off, numel));
        }
        for (&buf, &(off, _)) in self.uniform_buffers.iter().zip(&self.layout.uniforms) {
            v.push((buf, off, 1));
        }
        v
    }
}

/// The kernel's own bindings (the arena, the constants, the params), for a
/// step module that is not fused with the kernel's text (which declares
/// them in `wgsl::PRELUDE`).
const KERNEL_BINDINGS: &str = "struct Params { batch: u32, first: u32, zero: u32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> A: array<f32>;
@group(0) @binding(1) var<storage, read> C: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;
";

/// The step loop's bindings (the step index, the history, the step table
/// and freeze flags) and `backend::noise`'s generator, word for word: the hash,
/// then Box–Muller with polynomial `ln`, and `sin`/`cos` on a quarter turn
/// rotated by the quadrant. Constants are the host's f32 values, given
/// by their bits.
fn prelude() -> String {
    let c = |v: f32| format!("bitcast<f32>({:#010x}u)", v.to_bits());
    format!(
        r#"struct Tick {{ t: u32, pad0: u32, pad1: u32, pad2: u32 }}
@group(0) @binding(3) var<uniform> T: Tick;
@group(0) @binding(4) var<storage, read_write> H: array<f32>;
@group(0) @binding(5) var<storage, read_write> S: array<u32>;

// 64-bit integers as (low, high) words: `noise::uniform_f32`'s SplitMix64.
fn mul32(a: u32, b: u32) -> vec2<u32> {{
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p00 = a0 * b0;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return vec2<u32>((p00 & 0xffffu) | (mid << 16u), a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u));
}}
fn mul64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {{
  let lo = mul32(a.x, b.x);
  return vec2<u32>(lo.x, lo.y + a.x * b.y + a.y * b.x);
}}
fn xor_shr(z: vec2<u32>, s: u32) -> vec2<u32> {{
  return z ^ vec2<u32>((z.x >> s) | (z.y << (32u - s)), z.y >> s);
}}
fn uniform_of(key: vec2<u32>, chain: u32) -> f32 {{
  var z = key ^ mul64(vec2<u32>(chain, 0u), vec2<u32>(0x7f4a7c15u, 0x9e3779b9u));
  z = mul64(xor_shr(z, 30u), vec2<u32>(0x1ce4e5b9u, 0xbf58476du));
  z = mul64(xor_shr(z, 27u), vec2<u32>(0x133111ebu, 0x94d049bbu));
  z = xor_shr(z, 31u);
  return f32((z.y >> 8u) + 1u) * {inv24};
}}

fn hash32(x0: u32) -> u32 {{
  var x = x0;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}}
fn ln_unit(u: f32) -> f32 {{
  let bits = bitcast<u32>(u);
  var e = f32(i32(bits >> 23u) - 127);
  var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u);
  let big = m > {sqrt2};
  m = select(m, m * 0.5, big);
  e = select(e, e + 1.0, big);
  let t = (m - 1.0) / (m + 1.0);
  let t2 = t * t;
  let series = t * (2.0 + t2 * ({l3} + t2 * ({l5} + t2 * ({l7} + t2 * {l9}))));
  return e * {ln2} + series;
}}
fn box_muller(h1: u32, h2: u32) -> vec2<f32> {{
  let u1 = f32((h1 >> 9u) + 1u) * {inv23};
  let r = sqrt(-2.0 * ln_unit(u1));
  let q = h2 & 3u;
  let f = f32(h2 >> 10u) * {inv22};
  let x = (f - 0.5) * {half_pi};
  let x2 = x * x;
  let s = x * (1.0 + x2 * ({s3} + x2 * ({s5} + x2 * ({s7} + x2 * {s9}))));
  let c = 1.0 + x2 * (-0.5 + x2 * ({c4} + x2 * ({c6} + x2 * ({c8} + x2 * {c10}))));
  let swap = (q & 1u) == 1u;
  let u = select(c, s, swap);
  let v = select(s, c, swap);
  let flip_x = ((q ^ (q >> 1u)) & 1u) << 31u;
  let flip_y = (q >> 1u) << 31u;
  return vec2<f32>(r * bitcast<f32>(bitcast<u32>(u) ^ flip_x), r * bitcast<f32>(bitcast<u32>(v) ^ flip_y));
}}

"#,
        sqrt2 = c(std::f32::consts::SQRT_2),
        l3 = c(2.0 / 3.0),
        l5 = c(2.0 / 5.0),
        l7 = c(2.0 / 7.0),
        l9 = c(2.0 / 9.0),
        ln2 = c(std::f32::consts::LN_2),
        inv23 = c(1.0 / 8_388_608.0),
        inv22 = c(1.0 / 4_194_304.0),
        inv24 = c(1.0 / 16_777_216.0),
        half_pi = c(std::f32::consts::FRAC_PI_2),
        s3 = c(-1.0 / 6.0),
        s5 = c(1.0 / 120.0),
        s7 = c(-1.0 / 5040.0),
        s9 = c(1.0 / 362_880.0),
        c4 = c(1.0 / 24.0),
        c6 = c(-1.0 / 720.0),
        c8 = c(1.0 / 40_320.0),
        c10 = c(-1.0 / 3_628_800.0),
    )
}

impl super::GpuKernel {
    /// [`Kernel::run_steps`](crate::backend::Kernel::run_steps) on the
    /// device when [`plan`] allows it, else on host buffers.
    pub(super) fn steps(
        &self,
        lp: &StepLoop<'_>,
        fixed: &[&Buffer],
        state: &mut [Buffer],
        batch: usize,
        frozen: &mut [Option<u64>],
    ) -> Result<(), BackendError> {
        let fits = batch > 0
            && self.chunk_for(batch)? >= batch
            && history_values(lp, &self.sh.prog, batch) <= self.max_values as u64;
        let flags_fit = frozen.iter().flatten().all(|&s| s < u32::MAX as u64 - 1);
        let plan = match plan(&self.sh.prog, lp, batch) {
            Some(p) if fits && flags_fit && frozen.len() == batch => p,
            _ => return self.host_steps(lp, fixed, state, batch, frozen),
        };
        if lp.steps == 0 {
            return Ok(());
        }
        let writable = |&(buf, _, numel): &(usize, usize, usize)| match state.get(buf) {
            Some(Buffer::F32(_)) => true,
            Some(Buffer::Held(h)) => h.len() == numel * batch,
            _ => false,
        };
        if !plan.downloads().iter().all(writable) {
            return Err(BackendError::StepLoop(
                "a state buffer the loop writes is missing, not f32, or held at another size"
                    .into(),
            ));
        }
        let uploads = plan.uploads(fixed, state)?;
        crate::ir::interp::check_input_lens(
            &self.graph,
            uploads.len(),
            |i| uploads[i].0.len(),
            batch,
        )
        .map_err(BackendError::Buffers)?;
        let mut slot = self.arena.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|a| a.chunk < batch) {
            *slot = Some(self.arena(batch));
        }
        // invariant: set just above.
        let a = slot.as_ref().expect("arena allocated");
        let mut cache = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.as_ref().is_none_or(|(l, _)| *l != plan.layout) {
            let pipes = self.step_pipelines(&plan.layout)?;
            *cache = Some((plan.layout.clone(), pipes));
        }
        // invariant: set just above.
        let (_, pipes) = cache.as_ref().expect("step pipelines compiled");
        let dev = &self.dev;
        let (d, q) = (&dev.device, &dev.queue);
        let sbuf = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ebm step table"),
            size: (step_words(batch) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let flags: Vec<u32> = frozen
            .iter()
            .map(|f| f.map_or(0, |s| s as u32 + 1))
            .collect();
        q.write_buffer(&sbuf, (flags_at() * 4) as u64, super::bytes_u32(&flags));
        let history = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ebm step history"),
            size: (plan.history_len(lp.steps, batch).max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("ebm steps"),
            layout: &dev.step_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: a.arena.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: self.sh.consts.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: a.params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &dev.ticks,
                        offset: 0,
                        size: std::num::NonZeroU64::new(16),
                    }),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: history.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: sbuf.as_entire_binding(),
                },
            ],
        });
        q.write_buffer(&a.params, 0, super::bytes_u32(&[batch as u32, 1, 0, 0]));
        let mut enc = d.create_command_encoder(&Default::default());
        for &(arg, region) in &uploads {
            let at = match region {
                Some(Region::Inv(o)) => o,
                Some(Region::Var(o)) => self.sh.prog.inv_len + o * batch,
                None => continue,
            };
            let to = (at * 4) as u64;
            match arg {
                _ if arg.is_empty() => {}
                Arg::Buffer(Buffer::Held(h)) => {
                    let len = (h.len() * 4) as u64;
                    enc.copy_buffer_to_buffer(super::held::storage(h)?, 0, &a.arena, to, len);
                }
                _ => {
                    let data = arg.f32s().ok_or_else(super::wrong_dtype)?;
                    q.write_buffer(&a.arena, to, super::bytes(data));
                }
            }
        }
        q.submit([enc.finish()]);
        let mut done = 0;
        while done < lp.steps {
            let n = (lp.steps - done).min(STEPS_PER_SUBMIT);
            q.write_buffer(&sbuf, 0, super::bytes_u32(&table(lp, done, n)));
            let mut enc = d.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for t in 0..n {
                    let tick = (t * dev.uniform_align) as u32;
                    let again = done + t > 0;
                    let at = (&bind, tick, again);
                    self.encode_step(&mut pass, a, at, pipes, &plan.layout, batch);
                }
            }
            q.submit([enc.finish()]);
            done += n;
        }
        self.read_back(
            a,
            (&sbuf, &history),
            &plan,
            state,
            (batch, lp.steps),
            frozen,
        )
    }

    /// The host's step loop (one kernel call per step), for a loop the
    /// device cannot run whole: held state buffers come home for it and go
    /// back after, at the same size.
    fn host_steps(
        &self,
        lp: &StepLoop<'_>,
        fixed: &[&Buffer],
        state: &mut [Buffer],
        batch: usize,
        frozen: &mut [Option<u64>],
    ) -> Result<(), BackendError> {
        let homes: Vec<Option<crate::backend::Held>> = (state.iter())
            .map(|b| match b {
                Buffer::Held(h) => Some(h.clone()),
                _ => None,
            })
            .collect();
        for (b, h) in state.iter_mut().zip(&homes) {
            if let Some(h) = h {
                *b = Buffer::F32(super::held::download(&self.dev, h)?);
            }
        }
        // Fixed buffers are bound where they are by each step's call.
        let r = crate::backend::host_run_steps(self, lp, fixed, state, batch, frozen);
        for (b, h) in state.iter_mut().zip(homes) {
            let Some(h) = h else { continue };
            let values = match std::mem::replace(b, Buffer::Held(h.clone())) {
                Buffer::F32(v) if v.len() == h.len() => v,
                _ => {
                    return Err(BackendError::StepLoop(
                        "a held state buffer changed size on the host".into(),
                    ));
                }
            };
            if !values.is_empty() {
                self.dev
                    .queue
                    .write_buffer(super::held::storage(&h)?, 0, super::bytes(&values));
            }
        }
        r
    }

    /// One step: its draws, the kernel's passes, then records and carries;
    /// the step passes bound at the step's offset `tick` of the step-index
    /// uniform. `again`: a step after the loop's first, whose constants'
    /// passes have run.
    fn encode_step(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        a: &super::Arena,
        (bind, tick, again): (&wgpu::BindGroup, u32, bool),
        pipes: &super::StepPipelines,
        layout: &Layout,
        batch: usize,
    ) {
        if let Some(p) = &pipes.fused {
            let (x, y) = wgsl::grid(batch.div_ceil(64));
            pass.set_bind_group(0, bind, &[tick]);
            pass.set_pipeline(p);
            pass.dispatch_workgroups(x, y, 1);
            return;
        }
        if let Some(p) = &pipes.draw {
            let (x, y) = wgsl::grid(layout.draw_invocations(batch).div_ceil(64));
            pass.set_bind_group(0, bind, &[tick]);
            pass.set_pipeline(p);
            pass.dispatch_workgroups(x, y, 1);
        }
        self.encode_passes(pass, a, batch, again);
        if let Some(p) = &pipes.finish {
            let (x, y) = wgsl::grid(batch.div_ceil(64));
            pass.set_bind_group(0, bind, &[tick]);
            pass.set_pipeline(p);
            pass.dispatch_workgroups(x, y, 1);
        }
    }

    fn step_pipelines(&self, layout: &Layout) -> Result<super::StepPipelines, BackendError> {
        let dev = &self.dev;
        let prog = &self.sh.prog;
        let one_pass = matches!(&prog.passes[..], [p] if p.entry == "all");
        let text = if one_pass {
            fused_module(layout, prog)
        } else {
            module(layout, prog.inv_len)
        };
        dev.checked(|| {
            let m = dev
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("ebm steps"),
                    source: wgpu::ShaderSource::Wgsl(text.as_str().into()),
                });
            let pipe = |entry: &str| {
                dev.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(entry),
                        layout: Some(&dev.step_pipeline_layout),
                        module: &m,
                        entry_point: Some(entry),
                        compilation_options: Default::default(),
                        cache: None,
                    })
            };
            match one_pass {
                true => super::StepPipelines {
                    fused: Some(pipe("step")),
                    draw: None,
                    finish: None,
                },
                false => super::StepPipelines {
                    fused: None,
                    draw: layout.draws().then(|| pipe("draw")),
                    finish: layout.finishes().then(|| pipe("finish")),
                },
            }
        })
        .map_err(|e| BackendError::Compile(format!("the device rejected the step shader: {e}")))
    }

    /// The loop's final state and freeze flags, in one read.
    fn read_back(
        &self,
        a: &super::Arena,
        (sbuf, history): (&wgpu::Buffer, &wgpu::Buffer),
        plan: &Plan,
        state: &mut [Buffer],
        (batch, steps): (usize, u64),
        frozen: &mut [Option<u64>],
    ) -> Result<(), BackendError> {
        let dev = &self.dev;
        let (d, q) = (&dev.device, &dev.queue);
        // Held state buffers take their final rows where they are; only
        // host ones are read back.
        let (held, downloads): (Vec<_>, Vec<_>) = (plan.downloads().into_iter())
            .partition(|&(buf, _, _)| matches!(state.get(buf), Some(Buffer::Held(_))));
        let recorded = plan.history_len(steps, batch);
        let values: usize = downloads.iter().map(|r| r.2 * batch).sum::<usize>() + batch + recorded;
        let back = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ebm step readback"),
            size: (values * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = d.create_command_encoder(&Default::default());
        for &(buf, off, numel) in &held {
            let len = (numel * batch * 4) as u64;
            if let (Some(Buffer::Held(h)), true) = (state.get(buf), len > 0) {
                let from = ((self.sh.prog.inv_len + off * batch) * 4) as u64;
                enc.copy_buffer_to_buffer(&a.arena, from, super::held::storage(h)?, 0, len);
            }
        }
        let mut at = 0;
        for &(_, off, numel) in &downloads {
            let from = self.sh.prog.inv_len + off * batch;
            let len = numel * batch;
            if len > 0 {
                enc.copy_buffer_to_buffer(
                    &a.arena,
                    (from * 4) as u64,
                    &back,
                    (at * 4) as u64,
                    (len * 4) as u64,
                );
            }
            at += len;
        }
        enc.copy_buffer_to_buffer(
            sbuf,
            (flags_at() * 4) as u64,
            &back,
            (at * 4) as u64,
            (batch * 4) as u64,
        );
        if recorded > 0 {
            let to = ((at + batch) * 4) as u64;
            enc.copy_buffer_to_buffer(history, 0, &back, to, (recorded * 4) as u64);
        }
        q.submit([enc.finish()]);
        let slice = back.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        d.poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| BackendError::Device(format!("the GPU did not finish: {e}")))?;
        if let Some(e) = dev.take_uncaptured() {
            return Err(BackendError::Device(e));
        }
        let view = slice
            .get_mapped_range()
            .map_err(|e| BackendError::Device(format!("cannot read results back: {e}")))?;
        let words: Vec<u32> = view
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        drop(view);
        back.unmap();
        let mut at = 0;
        for &(buf, _, numel) in &downloads {
            let len = numel * batch;
            if let Some(Buffer::F32(v)) = state.get_mut(buf) {
                v.clear();
                v.extend(words[at..at + len].iter().map(|&w| f32::from_bits(w)));
            }
            at += len;
        }
        for (f, &w) in frozen.iter_mut().zip(&words[at..at + batch]) {
            *f = (w != 0).then(|| u64::from(w) - 1);
        }
        plan.split_history(&words[at + batch..], state, (batch, steps as usize));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::gpu::Gpu;
    use crate::backend::{Backend, DType, HostData};
    use crate::pipeline::{self, SourceFile};
    use crate::runtime::steps::{UlaMove, ula};

    /// Lavapipe in CI (`CI=true`: a missing device fails the test); skipped
    /// with the reason printed elsewhere.
    fn gpu() -> Option<Gpu> {
        match Gpu::new() {
            Ok(g) => Some(g),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI must run the GPU tests: {e}")
            }
            Err(e) => {
                eprintln!("skipped: {e}");
                None
            }
        }
    }

    /// The ULA step of an energy that sends chains past x = 5 to −∞.
    fn cliff_step() -> crate::ir::Graph {
        let file = SourceFile {
            path: "cliff.ebm".into(),
            text: "energy cliff(x: [3]) = sum(where(x > 5, -x^4, 0.5 * x^2))\n".into(),
        };
        let module = pipeline::analyze(&file).unwrap();
        let energy = crate::lower::lower(&module, "cliff").unwrap();
        let m = UlaMove {
            drift: 0.01,
            noise: 0.02f64.sqrt(),
            clip: None,
            clamp: None,
        };
        crate::opt::optimize(&ula(&energy, m).unwrap().graph, Default::default())
    }

    /// The device loop against the host loop on the same GPU kernel: the
    /// same chains, noise (a stream position and first step not at zero),
    /// frozen chains (one frozen before the loop, some escaping during it)
    /// and more steps than one submit holds.
    #[test]
    fn the_device_loop_matches_the_host_loop() {
        let Some(gpu) = gpu() else { return };
        for gpu in [gpu.clone(), gpu.pass_per_node()] {
            device_loop_matches_host_loop(&gpu);
        }
    }

    /// One form of the step module: the fused one for a one-pass kernel,
    /// draw and finish around the kernel's passes otherwise.
    fn device_loop_matches_host_loop(gpu: &Gpu) {
        let g = cliff_step();
        let kernel = gpu.compile(&g, DType::F32).unwrap();
        let binds: Vec<Bind> = g
            .inputs()
            .iter()
            .map(|d| match d.name.as_str() {
                "noise" => Bind::State(1),
                _ => Bind::State(0),
            })
            .collect();
        let batch = 37;
        let lp = StepLoop {
            first_step: 5,
            steps: 2 * STEPS_PER_SUBMIT + 11,
            inputs: &binds,
            outputs: &[2],
            carry: &[(2, 0)],
            noise: Some(NoiseFeed {
                buffer: 1,
                seed: 99,
                offset: 3 * 12,
            }),
            uniforms: &[],
            record: &[],
            freeze: true,
        };
        let prog = wgsl::generate(&g).unwrap();
        assert!(plan(&prog, &lp, batch).is_some(), "runs on the device");
        let x0: Vec<f32> = (0..batch * 3)
            .map(|i| {
                if i % 10 == 4 {
                    4.9
                } else {
                    (i as f32 * 0.37).sin()
                }
            })
            .collect();
        let fresh = || {
            [
                Buffer::F32(x0.clone()),
                Buffer::F32(vec![0.0; batch * 3]),
                Buffer::F32(vec![0.0; batch * 3]),
            ]
        };
        let mut frozen_at = vec![None; batch];
        frozen_at[6] = Some(2);
        let (mut dev, mut dev_frozen) = (fresh(), frozen_at.clone());
        kernel
            .run_steps(&lp, &[], &mut dev, batch, &mut dev_frozen)
            .unwrap();
        let (mut host, mut host_frozen) = (fresh(), frozen_at.clone());
        crate::backend::host_run_steps(
            kernel.as_ref(),
            &lp,
            &[],
            &mut host,
            batch,
            &mut host_frozen,
        )
        .unwrap();
        assert_eq!(dev_frozen, host_frozen);
        let escaped = host_frozen.iter().flatten().count();
        assert!(escaped > 2, "{escaped} chains froze");
        assert_eq!(host_frozen[6], Some(2), "frozen before the loop: unchanged");
        for (i, (a, b)) in dev[0]
            .f32s()
            .unwrap()
            .iter()
            .zip(host[0].f32s().unwrap())
            .enumerate()
        {
            assert!(
                (a - b).abs() <= 1e-5 * (b.abs() + 1.0),
                "x[{i}]: device {a}, host {b}"
            );
        }
        assert_eq!(dev[1].f32s().unwrap().len(), batch * 3);
        let noise_close = dev[1]
            .f32s()
            .unwrap()
            .iter()
            .zip(host[1].f32s().unwrap())
            .all(|(a, b)| (a - b).abs() <= 1e-5 * (b.abs() + 1.0));
        assert!(noise_close, "the last step's noise");
        held_state_stays_on_the_device(gpu, kernel.as_ref(), &lp, (&fresh(), &frozen_at), &dev);
    }

    /// The loop on held state buffers leaves the bits it reads back for
    /// host ones (`expect`) where they are; a loop the device cannot run
    /// (step numbers past 2³²−2) brings held state home for the host's
    /// loop and sends it back, the same bits as on host buffers.
    fn held_state_stays_on_the_device(
        gpu: &Gpu,
        kernel: &dyn crate::backend::Kernel,
        lp: &StepLoop<'_>,
        (start, frozen): (&[Buffer; 3], &[Option<u64>]),
        expect: &[Buffer; 3],
    ) {
        let batch = frozen.len();
        let held = || -> Vec<Buffer> {
            let up = |b: &Buffer| gpu.upload(HostData::F32(b.f32s().unwrap())).unwrap();
            start.iter().map(up).collect()
        };
        let bits = |v: Vec<f64>| -> Vec<u64> { v.into_iter().map(f64::to_bits).collect() };
        let host_bits = |b: &Buffer| bits(b.f32s().unwrap().iter().map(|&v| v as f64).collect());
        let far = StepLoop {
            first_step: u32::MAX as u64 - 4,
            steps: 6,
            ..*lp
        };
        let prog = wgsl::generate(kernel.graph()).unwrap();
        assert!(plan(&prog, &far, batch).is_none(), "runs on the host");
        let mut far_host = start.clone();
        let mut far_frozen = frozen.to_vec();
        (kernel.run_steps(&far, &[], &mut far_host, batch, &mut far_frozen)).unwrap();
        for (lp, expect, expect_frozen) in [
            (lp, &expect[..], None),
            (&far, &far_host[..], Some(&far_frozen)),
        ] {
            let mut state = held();
            let mut flags = frozen.to_vec();
            (kernel.run_steps(lp, &[], &mut state, batch, &mut flags)).unwrap();
            if let Some(f) = expect_frozen {
                assert_eq!(&flags, f);
            }
            for (i, (h, e)) in state.iter().zip(expect).enumerate() {
                assert!(matches!(h, Buffer::Held(_)), "state {i} stays held");
                assert_eq!(bits(gpu.download(h).unwrap()), host_bits(e), "state {i}");
            }
        }
    }

    /// A window of MALA transitions (`runtime::steps::mh_transition`) on
    /// the device against the host loop on the same kernel: the uniforms
    /// (64-bit SplitMix on 32-bit words) are the host's bit for bit, and the
    /// carried state — the step sizes and their dual averaging too, as in
    /// warm-up — and every step's recorded outputs agree, over more steps
    /// than one submit holds, with a chain not live and proposals that
    /// diverge.
    #[test]
    fn metropolis_windows_on_the_device_match_the_host_loop() {
        let Some(gpu) = gpu() else { return };
        for gpu in [gpu.clone(), gpu.pass_per_node()] {
            metropolis_window_matches_host_loop(&gpu);
        }
    }

    fn metropolis_window_matches_host_loop(gpu: &Gpu) {
        use crate::backend::UniformFeed;
        use crate::runtime::steps::{MhKind, mh_transition};
        let file = SourceFile {
            path: "cliff.ebm".into(),
            text: "energy cliff(x: [3]) = sum(where(x > 2, log(-x), 0.5 * x^2))\n".into(),
        };
        let module = pipeline::analyze(&file).unwrap();
        let energy = crate::lower::lower(&module, "cliff").unwrap();
        let sg = mh_transition(&energy, MhKind::Mala, crate::sample::adapt::RULE).unwrap();
        let g = crate::opt::optimize(&sg.graph, Default::default());
        let kernel = gpu.compile(&g, DType::F32).unwrap();
        // State: 0 x, 1 e, 2 grad, 3 noise, 4 uniform, 5 step, 6 h̄,
        // 7 count, 8.. outputs, 17.. histories; fixed: 0 inv_mass, 1 live,
        // 2 μ, 3 target, 4 adapting (1).
        let binds: Vec<Bind> = g
            .inputs()
            .iter()
            .map(|d| match d.name.as_str() {
                "x" => Bind::State(0),
                "energy" => Bind::State(1),
                "grad" => Bind::State(2),
                "noise" => Bind::State(3),
                "uniform" => Bind::State(4),
                "step" => Bind::State(5),
                "da_error" => Bind::State(6),
                "da_count" => Bind::State(7),
                "inv_mass" => Bind::Fixed(0),
                "live" => Bind::Fixed(1),
                "da_mu" => Bind::Fixed(2),
                "da_target" => Bind::Fixed(3),
                "da_on" => Bind::Fixed(4),
                other => panic!("input {other}"),
            })
            .collect();
        let names: Vec<&str> = g.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "x",
                "energy",
                "grad",
                "accept",
                "divergent",
                "step",
                "da_error",
                "da_count",
                "used"
            ]
        );
        let batch = 29;
        let lp = StepLoop {
            first_step: 3,
            steps: STEPS_PER_SUBMIT + 20,
            inputs: &binds,
            outputs: &[8, 9, 10, 11, 12, 13, 14, 15, 16],
            carry: &[(8, 0), (9, 1), (10, 2), (13, 5), (14, 6), (15, 7)],
            noise: Some(NoiseFeed {
                buffer: 3,
                seed: 7,
                offset: 6 * 3,
            }),
            uniforms: &[UniformFeed {
                buffer: 4,
                seed: 7,
                stream: 1,
                first: 6,
            }],
            record: &[(8, 17), (9, 18), (11, 19), (12, 20), (16, 21)],
            freeze: false,
        };
        let prog = wgsl::generate(&g).unwrap();
        assert!(plan(&prog, &lp, batch).is_some(), "runs on the device");
        let x0: Vec<f32> = (0..batch * 3).map(|i| (i as f32 * 0.61).sin()).collect();
        let e0: Vec<f32> = x0
            .chunks(3)
            .map(|r| r.iter().map(|v| 0.5 * v * v).sum())
            .collect();
        let mut live = vec![1.0f32; batch];
        live[4] = 0.0;
        let fixed = [
            Buffer::F32(vec![1.0; batch * 3]),
            Buffer::F32(live),
            Buffer::F32(vec![(10.0f32 * 0.9).ln(); batch]),
            Buffer::F32(vec![0.6; batch]),
            Buffer::F32(vec![1.0; batch]),
        ];
        let fixed: Vec<&Buffer> = fixed.iter().collect();
        let z = |n: usize| Buffer::F32(vec![0.0; n]);
        let fresh = || {
            let mut v = vec![
                Buffer::F32(x0.clone()),
                Buffer::F32(e0.clone()),
                Buffer::F32(x0.clone()),
                z(batch * 3),
                z(batch),
                Buffer::F32(vec![0.9; batch]),
                z(batch),
                z(batch),
                z(batch * 3),
                z(batch),
                z(batch * 3),
            ];
            v.extend((0..6).map(|_| z(batch)));
            v.extend((0..5).map(|_| z(0)));
            v
        };
        let (mut dev, mut host) = (fresh(), fresh());
        let mut frozen = vec![None; batch];
        kernel
            .run_steps(&lp, &fixed, &mut dev, batch, &mut frozen)
            .unwrap();
        crate::backend::host_run_steps(kernel.as_ref(), &lp, &fixed, &mut host, batch, &mut frozen)
            .unwrap();
        assert_eq!(dev[4].f32s(), host[4].f32s(), "the last step's uniforms");
        let close = |i: usize| {
            let (a, b) = (dev[i].f32s().unwrap(), host[i].f32s().unwrap());
            assert_eq!(a.len(), b.len(), "buffer {i}");
            for (k, (p, q)) in a.iter().zip(b).enumerate() {
                let same = p.to_bits() == q.to_bits() || (p - q).abs() <= 1e-5 * (q.abs() + 1.0);
                assert!(same, "buffer {i}[{k}]: device {p}, host {q}");
            }
        };
        for i in [0, 1, 2, 5, 6, 7, 17, 18, 19, 20, 21] {
            close(i);
        }
        let steps = lp.steps as usize;
        let count = dev[7].f32s().unwrap();
        assert!(
            count.iter().all(|&c| c == steps as f32),
            "one update a step"
        );
        let used = host[21].f32s().unwrap();
        assert_eq!(
            &used[..batch],
            &[0.9; 29][..],
            "the first step used the initial step"
        );
        let div = host[20].f32s().unwrap();
        assert_eq!(div.len(), steps * batch);
        assert!(
            (0..steps).all(|t| div[t * batch + 4] == 1.0),
            "not live: divergent"
        );
        let diverged = div.iter().filter(|&&d| d == 1.0).count();
        assert!(diverged > steps + 10, "{diverged} divergent proposals");
        let accept = host[19].f32s().unwrap();
        let moved = accept.iter().filter(|&&a| a > 0.0).count();
        assert!(moved > steps * batch / 4, "{moved} accepted");
        let adapted = &dev[5].f32s().unwrap();
        assert!(
            adapted.iter().any(|&s| (s - 0.9).abs() > 0.05),
            "the steps adapted: {adapted:?}"
        );
    }

    /// Loops the device cannot hold fall back to the host loop.
    #[test]
    fn loops_past_the_step_numbers_or_streams_stay_on_the_host() {
        let g = cliff_step();
        let prog = wgsl::generate(&g).unwrap();
        let binds = [Bind::State(0), Bind::State(1)];
        let lp = |first_step: u64, offset: u64| StepLoop {
            first_step,
            steps: 10,
            inputs: &binds,
            outputs: &[2],
            carry: &[(2, 0)],
            noise: Some(NoiseFeed {
                buffer: 1,
                seed: 1,
                offset,
            }),
            uniforms: &[],
            record: &[],
            freeze: true,
        };
        assert!(plan(&prog, &lp(0, 0), 4).is_some());
        assert!(plan(&prog, &lp(u32::MAX as u64, 0), 4).is_none());
        assert!(
            plan(&prog, &lp(0, 1), 4).is_none(),
            "an odd stream position"
        );
        assert!(plan(&prog, &lp(0, 1 << 33), 4).is_none());
    }
}
