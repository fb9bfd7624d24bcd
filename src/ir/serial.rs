//! The binary form of a [`Graph`]: versioned, lossless and stable. `encode`
//! writes a graph; `decode` reads one back, rebuilding it through the graph's
//! own constructors and running the verifier, so a loaded graph is as
//! trustworthy as a built one. The reader never panics and never allocates
//! more than the input's size warrants, whatever the bytes.
//!
//! Byte layout (all integers little-endian):
//!
//! ```text
//! magic     6 bytes   "EBMIR\0"
//! version   u32       FORMAT_VERSION (2)
//! graph                (below)
//! checksum  u64       FNV-1a-64 of every byte before it
//!
//! graph =
//! name      str       graph name            str = u32 byte length, UTF-8 bytes
//! flags     u8        bit 0: hash-consing is off (`Graph::set_cse(false)`)
//! inputs    u32 n, then n × { name: str, kind: u8 (0 sample, 1 shared), shape }
//! consts    u32 n, then n × { shape, numel(shape) × u64 (each f64's exact bits) }
//! bodies    u32 n, then n × graph (the scan bodies' pool, nested at most
//!           `verify::MAX_BODY_DEPTH` deep)
//! nodes     u32 n, then n × { op, args: u32 count + count × u32 node id, shape }
//! outputs   u32 n, then n × { name: str, node: u32, reduce: u8 (0 per sample, 1 sum) }
//!
//! shape = u8 rank (≤ MAX_RANK), then rank × u64 dims
//! op    = u8 tag, then the op's fields:
//!   0 scalar   u64 bits     4 powc u64 bits    8 sum u8 axes   12 slice u8 axis, u32 start, u32 step
//!   1 const    u32 id       5 binary u8 op     9 max u8 axes   13 concat u8 axis
//!   2 input    u32 id       6 select          10 reshape       14 matmul
//!   3 unary    u8 op        7 broadcast       11 transpose     15 stop_gradient
//!                                                u8 len, len × u8 axes
//!  16 scan     u32 body, u8 sequences, u8 reverse (0 or 1)
//! ```
//!
//! Version 1 (still read) had no `bodies` section, no scan and no slice
//! step (every slice contiguous).
//!
//! Unary and binary sub-ops are numbered in their enum's declaration order.
//! Every graph has exactly one encoding, so decoding then encoding gives back
//! the same bytes; the reader rejects anything the writer cannot produce
//! (unknown tags, a non-canonical NaN in an op, trailing bytes).
//!
//! Version policy: any change to the layout, including a new op or sub-op,
//! bumps `FORMAT_VERSION`; the writer writes only it, the reader reads it
//! and every earlier version (model files outlive compilers).

use thiserror::Error;

use super::op::{self, Axes, BinaryOp, F64, MAX_RANK, Op, Perm, Shape, UnaryOp};
use super::{
    BatchReduce, BodyId, ConstId, ConstTensor, Graph, InputDecl, InputId, InputKind, NodeId,
};

/// The file signature.
pub const MAGIC: &[u8; 6] = b"EBMIR\0";
/// The layout version this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest layout the reader still reads.
pub const OLDEST_VERSION: u32 = 1;

const HEADER_LEN: usize = MAGIC.len() + 4;
const CHECKSUM_LEN: usize = 8;

/// Why bytes could not be read as a graph.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SerialError {
    #[error("this is not an ebm IR file: it does not start with the EBMIR signature")]
    BadMagic,
    #[error("this is IR format version {found}; this build of ebm reads versions 1 to {supported}")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("the IR file ends early: more bytes were needed at offset {at}")]
    Truncated { at: usize },
    #[error("the IR file is corrupt: its checksum does not match its contents")]
    ChecksumMismatch,
    #[error("the IR file is malformed: {0}")]
    Malformed(String),
    #[error("the IR file holds an invalid graph: {0}")]
    Invalid(String),
}

/// The checksum the format uses: FNV-1a, 64 bits (public so tests can forge
/// files whose checksum holds, to reach the structural checks).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

// ----------------------------------------------------------------- writing

/// The bytes of `g`. Total: every graph can be written, valid or not (a graph
/// the verifier rejects is then refused by `decode`).
pub fn encode(g: &Graph) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.0.extend_from_slice(MAGIC);
    w.u32(FORMAT_VERSION);
    w.graph(g);
    let sum = fnv1a64(&w.0);
    w.u64(sum);
    w.0
}

impl Writer {
    fn graph(&mut self, g: &Graph) {
        let w = self;
        w.str(&g.name);
        w.u8(u8::from(!g.cse()));
        w.len(g.inputs().len());
        for i in g.inputs() {
            w.str(&i.name);
            w.u8(match i.kind {
                InputKind::Sample => 0,
                InputKind::Shared => 1,
            });
            w.shape(&i.shape);
        }
        w.len(g.consts().len());
        for c in g.consts() {
            w.shape(&c.shape);
            // The reader takes the value count from the shape; a pool entry whose
            // data disagrees is invalid anyway and will be refused when read.
            for v in c.data.iter() {
                w.u64(v.to_bits());
            }
        }
        w.len(g.bodies().len());
        for b in g.bodies() {
            w.graph(b);
        }
        w.len(g.len());
        for n in g.nodes() {
            w.op(&n.op);
            w.len(n.args.len());
            for a in &n.args {
                w.u32(a.0);
            }
            w.shape(&n.shape);
        }
        w.len(g.outputs.len());
        for o in &g.outputs {
            w.str(&o.name);
            w.u32(o.node.0);
            w.u8(match o.reduce {
                BatchReduce::PerSample => 0,
                BatchReduce::Sum => 1,
            });
        }
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A count; graphs never approach 2³² of anything.
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn shape(&mut self, s: &[usize]) {
        self.u8(u8::try_from(s.len()).unwrap_or(u8::MAX));
        for &d in s {
            self.u64(d as u64);
        }
    }
    fn op(&mut self, op: &Op) {
        match *op {
            Op::Scalar(v) => {
                self.u8(0);
                self.u64(v.get().to_bits());
            }
            Op::Const(c) => {
                self.u8(1);
                self.u32(c.0);
            }
            Op::Input(i) => {
                self.u8(2);
                self.u32(i.0);
            }
            Op::Unary(u) => {
                self.u8(3);
                self.u8(unary_tag(u));
            }
            Op::PowConst(c) => {
                self.u8(4);
                self.u64(c.get().to_bits());
            }
            Op::Binary(b) => {
                self.u8(5);
                self.u8(binary_tag(b));
            }
            Op::Select => self.u8(6),
            Op::Broadcast => self.u8(7),
            Op::Sum(a) => {
                self.u8(8);
                self.u8(a.0);
            }
            Op::Max(a) => {
                self.u8(9);
                self.u8(a.0);
            }
            Op::Reshape => self.u8(10),
            Op::Transpose(p) => {
                self.u8(11);
                let axes = p.as_vec();
                self.u8(axes.len() as u8);
                for a in axes {
                    self.u8(a as u8);
                }
            }
            Op::Slice { axis, start, step } => {
                self.u8(12);
                self.u8(axis);
                self.u32(start);
                self.u32(step);
            }
            Op::Concat { axis } => {
                self.u8(13);
                self.u8(axis);
            }
            Op::MatMul => self.u8(14),
            Op::StopGradient => self.u8(15),
            Op::Scan {
                body,
                seqs,
                reverse,
            } => {
                self.u8(16);
                self.u32(body.0);
                self.u8(seqs);
                self.u8(u8::from(reverse));
            }
        }
    }
}

fn unary_tag(u: UnaryOp) -> u8 {
    match u {
        UnaryOp::Neg => 0,
        UnaryOp::Exp => 1,
        UnaryOp::Log => 2,
        UnaryOp::Log1p => 3,
        UnaryOp::Sqrt => 4,
        UnaryOp::Abs => 5,
        UnaryOp::Sign => 6,
        UnaryOp::Step => 7,
        UnaryOp::Sin => 8,
        UnaryOp::Cos => 9,
        UnaryOp::Tanh => 10,
        UnaryOp::Sigmoid => 11,
        UnaryOp::Softplus => 12,
    }
}

fn unary_of(tag: u8) -> Option<UnaryOp> {
    Some(match tag {
        0 => UnaryOp::Neg,
        1 => UnaryOp::Exp,
        2 => UnaryOp::Log,
        3 => UnaryOp::Log1p,
        4 => UnaryOp::Sqrt,
        5 => UnaryOp::Abs,
        6 => UnaryOp::Sign,
        7 => UnaryOp::Step,
        8 => UnaryOp::Sin,
        9 => UnaryOp::Cos,
        10 => UnaryOp::Tanh,
        11 => UnaryOp::Sigmoid,
        12 => UnaryOp::Softplus,
        _ => return None,
    })
}

fn binary_tag(b: BinaryOp) -> u8 {
    match b {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Pow => 4,
        BinaryOp::Max => 5,
        BinaryOp::Min => 6,
        BinaryOp::Gt => 7,
        BinaryOp::Ge => 8,
    }
}

fn binary_of(tag: u8) -> Option<BinaryOp> {
    Some(match tag {
        0 => BinaryOp::Add,
        1 => BinaryOp::Sub,
        2 => BinaryOp::Mul,
        3 => BinaryOp::Div,
        4 => BinaryOp::Pow,
        5 => BinaryOp::Max,
        6 => BinaryOp::Min,
        7 => BinaryOp::Gt,
        8 => BinaryOp::Ge,
        _ => return None,
    })
}

// ----------------------------------------------------------------- reading

/// Reads a graph written by [`encode`]. Checks, in order: the signature, the
/// version, the checksum, then the structure (every length against the bytes
/// left, every tag, every id), building the graph node by node with each
/// node's shape checked before it is added; finally the verifier.
pub fn decode(bytes: &[u8]) -> Result<Graph, SerialError> {
    let sig = &bytes[..bytes.len().min(MAGIC.len())];
    if sig != &MAGIC[..sig.len()] {
        return Err(SerialError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(SerialError::Truncated { at: bytes.len() });
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[MAGIC.len()..HEADER_LEN]);
    let version = u32::from_le_bytes(version);
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(SerialError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(SerialError::Truncated { at: bytes.len() });
    }
    let body_end = bytes.len() - CHECKSUM_LEN;
    let mut stored = [0u8; CHECKSUM_LEN];
    stored.copy_from_slice(&bytes[body_end..]);
    if u64::from_le_bytes(stored) != fnv1a64(&bytes[..body_end]) {
        return Err(SerialError::ChecksumMismatch);
    }
    let mut r = Reader {
        bytes: &bytes[..body_end],
        pos: HEADER_LEN,
        version,
    };
    let g = read_graph(&mut r, 0)?;
    if r.pos != r.bytes.len() {
        return Err(malformed(format!(
            "{} unexpected bytes after the outputs, at offset {}",
            r.bytes.len() - r.pos,
            r.pos
        )));
    }
    super::verify::verify(&g).map_err(SerialError::Invalid)?;
    Ok(g)
}

fn malformed(msg: impl Into<String>) -> SerialError {
    SerialError::Malformed(msg.into())
}

fn read_graph(r: &mut Reader, depth: usize) -> Result<Graph, SerialError> {
    if depth > super::verify::MAX_BODY_DEPTH {
        return Err(malformed(format!(
            "scan bodies nested more than {} deep",
            super::verify::MAX_BODY_DEPTH
        )));
    }
    let name = r.str("the graph name")?;
    let flags = r.u8()?;
    if flags > 1 {
        return Err(malformed(format!("unknown graph flags {flags:#04x}")));
    }
    let mut g = Graph::new(name);
    // Nodes are appended exactly as stored (ids preserved, duplicates of a
    // graph built without CSE kept); the stored mode is restored at the end.
    g.set_cse(false);

    let n = r.count(1 + 4 + 1, "inputs")?;
    for i in 0..n {
        let name = r.str("an input name")?;
        let kind = match r.u8()? {
            0 => InputKind::Sample,
            1 => InputKind::Shared,
            k => return Err(malformed(format!("input in{i} has unknown kind {k}"))),
        };
        let shape = r.shape()?;
        g.push_input_decl(InputDecl { name, shape, kind });
    }

    let n = r.count(1, "constants")?;
    for _ in 0..n {
        let shape = r.shape()?;
        let len = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| malformed(format!("constant shape {shape:?} is too large")))?;
        if len.saturating_mul(8) > r.left() {
            return Err(SerialError::Truncated { at: r.pos });
        }
        let mut data = Vec::with_capacity(len);
        for _ in 0..len {
            data.push(f64::from_bits(r.u64()?));
        }
        g.push_const(ConstTensor {
            shape,
            data: data.into(),
        });
    }

    if r.version >= 2 {
        // A body is at least a name, flags and five counts.
        let n = r.count(4 + 1 + 5 * 4, "scan bodies")?;
        for _ in 0..n {
            let b = read_graph(r, depth + 1)?;
            g.push_body(b);
        }
    }

    let n = r.count(1 + 4 + 1, "nodes")?;
    for i in 0..n {
        let id = NodeId(i as u32);
        let op = r.op(&g, id)?;
        let nargs = r.count(4, "operands")?;
        let mut args = Vec::with_capacity(nargs);
        for _ in 0..nargs {
            let a = r.u32()?;
            if a >= id.0 {
                return Err(malformed(format!(
                    "{id}: operand %{a} does not precede its user"
                )));
            }
            args.push(NodeId(a));
        }
        let shape = r.shape()?;
        let arg_shapes: Vec<&[usize]> = args.iter().map(|&a| g.shape(a)).collect();
        op::check_shape(&op, &arg_shapes, &shape)
            .and_then(|()| super::scan::check_body(&g, &op, &arg_shapes))
            .map_err(|e| SerialError::Invalid(format!("{id}: {e}")))?;
        // CSE is off, so the node is appended and gets id `id`.
        g.add(op, args, shape);
    }

    let n = r.count(4 + 4 + 1, "outputs")?;
    for _ in 0..n {
        let name = r.str("an output name")?;
        let node = r.u32()?;
        if node as usize >= g.len() {
            return Err(malformed(format!(
                "output {name} names node %{node}, but the graph has {} nodes",
                g.len()
            )));
        }
        let reduce = match r.u8()? {
            0 => BatchReduce::PerSample,
            1 => BatchReduce::Sum,
            k => {
                return Err(malformed(format!(
                    "output {name} has unknown batch reduction {k}"
                )));
            }
        };
        g.add_output(name, NodeId(node), reduce);
    }
    g.set_cse(flags & 1 == 0);
    Ok(g)
}

struct Reader<'a> {
    /// The bytes up to (not including) the checksum.
    bytes: &'a [u8],
    pos: usize,
    /// The layout version being read.
    version: u32,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&[u8], SerialError> {
        if n > self.left() {
            return Err(SerialError::Truncated { at: self.pos });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SerialError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, SerialError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, SerialError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, SerialError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A count of items each at least `min_size` bytes long, checked against
    /// the bytes left so that nothing is allocated for items that cannot be
    /// there.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize, SerialError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.left() {
            return Err(malformed(format!(
                "the count of {what} at offset {at} ({n}) exceeds what the file holds"
            )));
        }
        Ok(n)
    }
    fn str(&mut self, what: &str) -> Result<String, SerialError> {
        let at = self.pos;
        let n = self.count(1, "string bytes")?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| malformed(format!("{what} at offset {at} is not UTF-8")))
    }
    fn shape(&mut self) -> Result<Shape, SerialError> {
        let at = self.pos;
        let rank = self.u8()? as usize;
        if rank > MAX_RANK {
            return Err(malformed(format!(
                "a shape at offset {at} has rank {rank}, above the limit of {MAX_RANK}"
            )));
        }
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            let d = self.u64()?;
            let d = usize::try_from(d)
                .map_err(|_| malformed(format!("dimension {d} does not fit this machine")))?;
            shape.push(d);
        }
        Ok(shape)
    }
    /// A finite or infinite f64 from an op, or the one NaN `F64::new` keeps.
    fn op_f64(&mut self, id: NodeId) -> Result<F64, SerialError> {
        let bits = self.u64()?;
        let v = F64::new(f64::from_bits(bits));
        if v.get().to_bits() != bits {
            return Err(malformed(format!(
                "{id}: the literal {bits:#018x} is a NaN other than the canonical one"
            )));
        }
        Ok(v)
    }
    fn op(&mut self, g: &Graph, id: NodeId) -> Result<Op, SerialError> {
        let at = self.pos;
        let tag = self.u8()?;
        Ok(match tag {
            0 => Op::Scalar(self.op_f64(id)?),
            1 => {
                let c = self.u32()?;
                if c as usize >= g.consts().len() {
                    return Err(malformed(format!(
                        "{id}: constant c{c} is not in the pool of {}",
                        g.consts().len()
                    )));
                }
                Op::Const(ConstId(c))
            }
            2 => {
                let i = self.u32()?;
                if i as usize >= g.inputs().len() {
                    return Err(malformed(format!(
                        "{id}: input in{i} is not among the {} inputs",
                        g.inputs().len()
                    )));
                }
                Op::Input(InputId(i))
            }
            3 => {
                let t = self.u8()?;
                Op::Unary(
                    unary_of(t).ok_or_else(|| malformed(format!("{id}: unknown unary op {t}")))?,
                )
            }
            4 => Op::PowConst(self.op_f64(id)?),
            5 => {
                let t = self.u8()?;
                Op::Binary(
                    binary_of(t)
                        .ok_or_else(|| malformed(format!("{id}: unknown binary op {t}")))?,
                )
            }
            6 => Op::Select,
            7 => Op::Broadcast,
            8 => Op::Sum(Axes(self.u8()?)),
            9 => Op::Max(Axes(self.u8()?)),
            10 => Op::Reshape,
            11 => {
                let len = self.u8()? as usize;
                if len > MAX_RANK {
                    return Err(malformed(format!(
                        "{id}: a permutation of {len} axes, above the limit of {MAX_RANK}"
                    )));
                }
                let axes: Vec<usize> = self.take(len)?.iter().map(|&a| a as usize).collect();
                Op::Transpose(Perm::new(&axes))
            }
            12 => {
                let axis = self.u8()?;
                let start = self.u32()?;
                let step = if self.version >= 2 { self.u32()? } else { 1 };
                Op::Slice { axis, start, step }
            }
            13 => Op::Concat { axis: self.u8()? },
            14 => Op::MatMul,
            15 => Op::StopGradient,
            16 if self.version >= 2 => {
                let body = self.u32()?;
                if body as usize >= g.bodies().len() {
                    return Err(malformed(format!(
                        "{id}: scan body b{body} is not in the pool of {}",
                        g.bodies().len()
                    )));
                }
                let seqs = self.u8()?;
                let reverse = match self.u8()? {
                    0 => false,
                    1 => true,
                    k => return Err(malformed(format!("{id}: scan direction {k}"))),
                };
                Op::Scan {
                    body: BodyId(body),
                    seqs,
                    reverse,
                }
            }
            t => {
                return Err(malformed(format!(
                    "{id}: unknown op tag {t} at offset {at}"
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sub_op_tag_round_trips() {
        for t in 0..=u8::MAX {
            if let Some(u) = unary_of(t) {
                assert_eq!(unary_tag(u), t);
            }
            if let Some(b) = binary_of(t) {
                assert_eq!(binary_tag(b), t);
            }
        }
        assert!(unary_of(13).is_none() && binary_of(9).is_none());
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }
}
