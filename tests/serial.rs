//! The binary IR form (`ir::serial`): lossless round trips of every example
//! energy and its derivative kernels (same bytes, same printout, bitwise-same
//! kernel outputs on the interpreter and the JIT in both dtypes), refusal of
//! corrupt files without a panic, and refusal of malformed graphs by the
//! backends.

use std::path::Path;
use std::sync::Arc;

use ebm::autodiff::derived::derive;
use ebm::backend::cpu::Cpu;
use ebm::backend::{Backend, BackendError, DType, Interp, Kernel};
use ebm::ir::serial::{FORMAT_VERSION, MAGIC, SerialError, decode, encode, fnv1a64};
use ebm::ir::{
    BatchReduce, BinaryOp, Graph, InputId, InputKind, Node, NodeId, Op, UnaryOp, numel, print,
    verify,
};
use ebm::pipeline::{SourceFile, analyze, kernel_named};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const HEADER_LEN: usize = 10;
const BATCH: usize = 5;

/// Every energy of every example, each with its derivative kernels: raw, as
/// optimised, and (for the full set) rebuilt with no rewrite and no CSE.
fn example_graphs() -> Vec<(String, Graph)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("ebm"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let file = SourceFile::read(&path).unwrap();
        let module = analyze(&file).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        for def in &module.defs {
            if def.kind != ebm::sema::DefKind::Energy {
                continue;
            }
            let Ok(energy) = ebm::lower::lower(&module, &def.name) else {
                continue;
            };
            let tag = format!("{stem}:{}", def.name);
            for kernel in ["energy", "grad", "params", "hvp", "mixed", "all"] {
                let g = derive(&energy, kernel_named(kernel).unwrap()).unwrap();
                let opt = ebm::opt::optimize(&g, ebm::opt::Config::default());
                if kernel == "all" {
                    let plain = ebm::opt::optimize(&g, ebm::opt::Config::NONE);
                    out.push((format!("{tag} {kernel} no-opt"), plain));
                }
                out.push((format!("{tag} {kernel}"), g));
                out.push((format!("{tag} {kernel} opt"), opt));
            }
            out.push((tag, energy));
        }
    }
    out
}

fn inputs_for(g: &Graph, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    g.inputs()
        .iter()
        .map(|d| {
            let n = numel(&d.shape)
                * match d.kind {
                    InputKind::Sample => BATCH,
                    InputKind::Shared => 1,
                };
            (0..n)
                .map(|_| (rng.random_range(-2.0f64..2.0) as f32) as f64)
                .collect()
        })
        .collect()
}

fn output_lens(g: &Graph) -> Vec<usize> {
    g.outputs
        .iter()
        .map(|o| {
            numel(g.shape(o.node))
                * match o.reduce {
                    BatchReduce::PerSample => BATCH,
                    BatchReduce::Sum => 1,
                }
        })
        .collect()
}

/// The kernel's outputs as bits (f32 results widened exactly).
fn run(k: &dyn Kernel, ins: &[Vec<f64>]) -> Vec<Vec<u64>> {
    let lens = output_lens(k.graph());
    match k.dtype() {
        DType::F64 => {
            let refs: Vec<&[f64]> = ins.iter().map(|v| &v[..]).collect();
            let mut outs: Vec<Vec<f64>> = lens.iter().map(|&n| vec![0.0; n]).collect();
            let mut o: Vec<&mut [f64]> = outs.iter_mut().map(|v| &mut v[..]).collect();
            k.run_f64(&refs, &mut o, BATCH).unwrap();
            outs.iter()
                .map(|v| v.iter().map(|x| x.to_bits()).collect())
                .collect()
        }
        DType::F32 => {
            let ins32: Vec<Vec<f32>> = ins
                .iter()
                .map(|v| v.iter().map(|&x| x as f32).collect())
                .collect();
            let refs: Vec<&[f32]> = ins32.iter().map(|v| &v[..]).collect();
            let mut outs: Vec<Vec<f32>> = lens.iter().map(|&n| vec![0.0; n]).collect();
            let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| &mut v[..]).collect();
            k.run_f32(&refs, &mut o, BATCH).unwrap();
            outs.iter()
                .map(|v| v.iter().map(|x| u64::from(x.to_bits())).collect())
                .collect()
        }
    }
}

/// The same graph, field by field (constants by their bits).
fn assert_same_graph(a: &Graph, b: &Graph, what: &str) {
    assert_eq!(a.name, b.name, "{what}: name");
    assert_eq!(a.inputs(), b.inputs(), "{what}: inputs");
    assert_eq!(a.nodes(), b.nodes(), "{what}: nodes");
    assert_eq!(a.outputs, b.outputs, "{what}: outputs");
    assert_eq!(a.cse(), b.cse(), "{what}: cse mode");
    assert_eq!(a.consts().len(), b.consts().len(), "{what}: constant count");
    for (x, y) in a.consts().iter().zip(b.consts()) {
        assert_eq!(x.shape, y.shape, "{what}: constant shape");
        let bits = |d: &[f64]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&x.data), bits(&y.data), "{what}: constant data");
    }
}

fn round_trip(g: &Graph, what: &str) -> Graph {
    let bytes = encode(g);
    let back = decode(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        encode(&back) == bytes,
        "{what}: re-encoding changed the bytes"
    );
    assert_eq!(print::print(&back), print::print(g), "{what}: printout");
    assert_same_graph(g, &back, what);
    back
}

#[test]
fn example_graphs_round_trip_bit_for_bit() {
    let graphs = example_graphs();
    assert!(graphs.len() >= 5 * 14, "only {} graphs", graphs.len());
    let cpu = Cpu::with_threads(2);
    for (i, (what, g)) in graphs.iter().enumerate() {
        let back = round_trip(g, what);
        let ins = inputs_for(g, i as u64);
        for dtype in [DType::F64, DType::F32] {
            let want = run(&*Interp.compile(g, dtype).unwrap(), &ins);
            let got = run(&*Interp.compile(&back, dtype).unwrap(), &ins);
            assert!(
                want == got,
                "{what}: interp {} outputs differ",
                dtype.name()
            );
            // Uncached: the cache is keyed by the printout, so the decoded
            // graph would otherwise just get the original's kernel.
            let k: Arc<dyn Kernel> = cpu.compile_uncached(g, dtype).unwrap();
            let want = run(&*k, &ins);
            let k: Arc<dyn Kernel> = cpu.compile_uncached(&back, dtype).unwrap();
            let got = run(&*k, &ins);
            assert!(want == got, "{what}: cpu {} outputs differ", dtype.name());
        }
    }
}

/// Constants survive by their bits: NaN payloads in the pool (which keeps raw
/// data), −0.0, subnormals, infinities; op literals keep the one NaN.
#[test]
fn awkward_constants_survive_exactly() {
    let odd_nan = f64::from_bits(0x7ff0_0000_dead_beef);
    let neg_nan = f64::from_bits(0xfff8_0000_0000_0001);
    let data = vec![
        -0.0,
        0.0,
        f64::from_bits(1),
        -f64::MIN_POSITIVE / 4.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        odd_nan,
        neg_nan,
        f64::MAX,
        1.0 / 3.0,
    ];
    let mut g = Graph::new("awkward ✓");
    let x = g.input_node("x", vec![10], InputKind::Sample);
    let c = g.constant_tensor(vec![10], data.clone());
    let _unused = g.constant_tensor(vec![2, 1], vec![f64::NAN, -0.0]);
    let s = g.scalar(-0.0);
    let t = g.scalar(f64::from_bits(3));
    let n = g.scalar(odd_nan);
    let p = g.powc(x, 5e-324);
    let y = g.binary(BinaryOp::Mul, x, c);
    let y = g.binary(BinaryOp::Add, y, p);
    let st = g.add_(s, t);
    let stn = g.add_(st, n);
    let y = g.add_(y, stn);
    let e = g.sum_all(y);
    g.add_output("energy", e, BatchReduce::PerSample);
    g.add_output("y", y, BatchReduce::Sum);
    let back = round_trip(&g, "awkward");
    let bits: Vec<u64> = back.consts()[0].data.iter().map(|v| v.to_bits()).collect();
    let want: Vec<u64> = data.iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, want);
    assert_eq!(back.consts().len(), 2, "the unused constant is kept");
    // The decoded graph hash-conses exactly as the original: building the
    // same constant again finds the same pool entry and node.
    let mut a = g.clone();
    let mut b = back;
    assert_eq!(
        a.constant_tensor(vec![10], data.clone()),
        b.constant_tensor(vec![10], data)
    );
    assert_eq!(a.len(), b.len());
}

/// A graph built without CSE keeps its duplicate nodes and its mode.
#[test]
fn graphs_built_without_cse_keep_their_duplicates() {
    let mut g = Graph::new("dups");
    g.set_cse(false);
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let x2 = g.input_node("x", vec![3], InputKind::Sample);
    let a = g.unary(UnaryOp::Exp, x);
    let b = g.unary(UnaryOp::Exp, x2);
    assert_ne!(a, b);
    let s = g.binary(BinaryOp::Add, a, b);
    let e = g.sum_all(s);
    g.add_output("energy", e, BatchReduce::PerSample);
    let back = round_trip(&g, "dups");
    assert!(!back.cse());
    assert_eq!(back.len(), g.len());
    g.set_cse(true);
    let back = round_trip(&g, "dups, cse back on");
    assert!(back.cse());
}

fn small_graph() -> Graph {
    let mut g = Graph::new("small");
    let x = g.input_node("x", vec![2, 3], InputKind::Sample);
    let w = g.input_node("w", vec![3, 4], InputKind::Shared);
    let c = g.constant_tensor(vec![4], vec![0.5, -1.0, 2.0, 0.0]);
    let h = g.matmul(x, w);
    let h = g.add_(h, c);
    let h = g.unary(UnaryOp::Tanh, h);
    let t = g.transpose(h, &[1, 0]);
    let sl = g.slice(t, 0, 1, 2);
    let cat = g.concat(vec![sl, t], 0);
    let m = g.reduce_max(cat, ebm::ir::Axes::of(&[1]));
    let l = g.logsumexp(m, ebm::ir::Axes::all(1));
    let p = g.powc(l, 2.0);
    g.add_output("energy", p, BatchReduce::PerSample);
    g.add_output("h", h, BatchReduce::Sum);
    g
}

/// A file with a valid checksum over `body` (everything after the header).
fn forge(body: &[u8], version: u32) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(body);
    let sum = fnv1a64(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

#[test]
fn corrupt_files_are_refused_with_the_right_error() {
    let g = small_graph();
    let bytes = encode(&g);
    round_trip(&g, "small");

    let mut flipped = bytes.clone();
    flipped[HEADER_LEN + 5] ^= 0x40;
    assert_eq!(decode(&flipped).unwrap_err(), SerialError::ChecksumMismatch);
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(decode(&flipped).unwrap_err(), SerialError::ChecksumMismatch);

    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "prefix of {len} bytes");
    }
    assert!(matches!(
        decode(&bytes[..3]).unwrap_err(),
        SerialError::Truncated { .. }
    ));

    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(decode(&bad).unwrap_err(), SerialError::BadMagic);
    assert_eq!(decode(b"PK\x03\x04").unwrap_err(), SerialError::BadMagic);

    let mut newer = bytes.clone();
    newer[6..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = decode(&newer).unwrap_err();
    assert_eq!(
        err,
        SerialError::UnsupportedVersion {
            found: FORMAT_VERSION + 1,
            supported: FORMAT_VERSION
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("version {}", FORMAT_VERSION + 1))
            && msg.contains(&format!("1 to {FORMAT_VERSION}")),
        "{msg}"
    );

    // Structural errors behind a good checksum.
    let body = &bytes[HEADER_LEN..bytes.len() - 8];
    let mut trailing = body.to_vec();
    trailing.push(0);
    assert!(matches!(
        decode(&forge(&trailing, FORMAT_VERSION)).unwrap_err(),
        SerialError::Malformed(_)
    ));
    let err = decode(&forge(&body[..body.len() - 3], FORMAT_VERSION)).unwrap_err();
    assert!(matches!(err, SerialError::Truncated { .. }), "{err}");
    let huge = forge(&[0xff, 0xff, 0xff, 0xff], FORMAT_VERSION);
    assert!(matches!(
        decode(&huge).unwrap_err(),
        SerialError::Malformed(_)
    ));
}

/// Errors a hand-built graph with an unknown op tag and one with a bad shape.
#[test]
fn structural_errors_name_the_problem() {
    let mut g = Graph::new("t");
    let x = g.input_node("x", vec![2], InputKind::Sample);
    let e = g.unary(UnaryOp::Exp, x);
    g.add_output("energy", e, BatchReduce::PerSample);
    let bytes = encode(&g);
    let body = &bytes[HEADER_LEN..bytes.len() - 8];
    // Layout: name "t" (4+1), flags (1), 1 input: "x" (4+1), kind, rank 1, dim (8),
    // 0 consts (4), 0 scan bodies (4), 2 nodes (4), node 0 = input tag at this offset.
    let node0 = 5 + 1 + 4 + (4 + 1 + 1 + 1 + 8) + 4 + 4 + 4;
    assert_eq!(body[node0], 2, "input tag");
    let node1 = node0 + 1 + 4 + 4 + 1 + 8;
    assert_eq!(body[node1], 3, "unary tag");

    let mut b = body.to_vec();
    b[node1] = 200;
    let err = decode(&forge(&b, FORMAT_VERSION)).unwrap_err();
    assert!(err.to_string().contains("unknown op tag 200"), "{err}");

    let mut b = body.to_vec();
    b[node1 + 1] = 99;
    let err = decode(&forge(&b, FORMAT_VERSION)).unwrap_err();
    assert!(err.to_string().contains("unknown unary op 99"), "{err}");

    let mut b = body.to_vec();
    b[node0 + 1] = 7; // input in7
    let err = decode(&forge(&b, FORMAT_VERSION)).unwrap_err();
    assert!(matches!(err, SerialError::Malformed(_)), "{err}");

    // Node 1's shape: rank 1, dim 2 → dim 3: exp of [2] claimed as [3].
    let mut b = body.to_vec();
    let dim = node1 + 2 + 4 + 4 + 1;
    assert_eq!(b[dim], 2);
    b[dim] = 3;
    let err = decode(&forge(&b, FORMAT_VERSION)).unwrap_err();
    assert!(matches!(err, SerialError::Invalid(_)), "{err}");

    // A non-canonical NaN as a scalar literal cannot have been written.
    let mut s = Graph::new("s");
    let n = s.scalar(f64::NAN);
    s.add_output("energy", n, BatchReduce::PerSample);
    let mut b = encode(&s);
    // From the end: checksum, the output (4 + 6 + 4 + 1), the output count,
    // the node's rank, its operand count, then the literal's 8 bytes.
    let pos = b.len() - 8 - 15 - 4 - 1 - 4 - 8;
    assert_eq!(b[pos - 1], 0, "scalar tag");
    b[pos] = 1;
    let b = forge(&b[HEADER_LEN..b.len() - 8], FORMAT_VERSION);
    let err = decode(&b).unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
}

/// Random and half-valid inputs never panic; whatever decodes re-encodes to
/// the very same bytes and passes the verifier.
#[test]
fn decoding_garbage_never_panics() {
    let mut rng = StdRng::seed_from_u64(0x5e71a1);
    let seeds: Vec<Vec<u8>> = {
        let mut v = vec![encode(&small_graph())];
        let ex = example_graphs();
        for (_, g) in ex.iter().step_by(7).take(6) {
            v.push(encode(g));
        }
        v
    };
    let mut decoded = 0;
    let mut check = |bytes: &[u8]| {
        if let Ok(g) = decode(bytes) {
            assert!(
                encode(&g) == bytes,
                "a decoded graph re-encodes differently"
            );
            assert!(verify::verify(&g).is_ok());
            decoded += 1;
        }
    };
    for i in 0..4000 {
        let seed = &seeds[i % seeds.len()];
        let body = &seed[HEADER_LEN..seed.len() - 8];
        let bytes = match i % 5 {
            // Pure noise, sometimes with the right header.
            0 => {
                let n = rng.random_range(0..200);
                let mut b: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                if rng.random_bool(0.5) && b.len() >= HEADER_LEN {
                    b[..HEADER_LEN].copy_from_slice(&seed[..HEADER_LEN]);
                }
                b
            }
            // Noise behind a good header and checksum.
            1 => {
                let n = rng.random_range(0..300);
                let b: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                forge(&b, FORMAT_VERSION)
            }
            // A valid prefix, then garbage, with a good checksum.
            2 => {
                let cut = rng.random_range(0..=body.len());
                let mut b = body[..cut].to_vec();
                let n = rng.random_range(0..64);
                b.extend((0..n).map(|_| rng.random::<u8>()));
                forge(&b, FORMAT_VERSION)
            }
            // A few bytes mutated, with a good checksum.
            3 => {
                let mut b = body.to_vec();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..b.len());
                    b[at] = match rng.random_range(0..3) {
                        0 => rng.random(),
                        1 => b[at].wrapping_add(1),
                        _ => b[at].wrapping_sub(1),
                    };
                }
                forge(&b, FORMAT_VERSION)
            }
            // A few mutated bytes, checksum left stale.
            _ => {
                let mut b = seed.clone();
                let at = rng.random_range(0..b.len());
                b[at] ^= 1 << rng.random_range(0..8);
                b
            }
        };
        check(&bytes);
    }
    // The mutations that keep a graph valid (an op swapped for a sibling,
    // a constant changed) must decode; make sure some did.
    assert!(decoded > 10, "only {decoded} inputs decoded");
}

/// Graphs that break the invariants, built with the test-only constructor.
fn malformed_graphs() -> Vec<(&'static str, Graph)> {
    let mut out = Vec::new();

    let mut g = Graph::new("operand after user");
    g.push_unchecked(Node {
        op: Op::Unary(UnaryOp::Neg),
        args: vec![NodeId(1)],
        shape: vec![],
    });
    g.push_unchecked(Node {
        op: Op::Scalar(ebm::ir::F64::new(1.0)),
        args: vec![],
        shape: vec![],
    });
    g.add_output("energy", NodeId(0), BatchReduce::PerSample);
    out.push(("operand after user", g));

    let mut g = Graph::new("operand past the end");
    g.push_unchecked(Node {
        op: Op::Unary(UnaryOp::Neg),
        args: vec![NodeId(1000)],
        shape: vec![],
    });
    g.add_output("energy", NodeId(0), BatchReduce::PerSample);
    out.push(("operand past the end", g));

    let mut g = Graph::new("wrong shape");
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let e = g.push_unchecked(Node {
        op: Op::Unary(UnaryOp::Exp),
        args: vec![x],
        shape: vec![4],
    });
    g.add_output("energy", e, BatchReduce::PerSample);
    out.push(("wrong shape", g));

    let mut g = Graph::new("unknown input");
    let x = g.push_unchecked(Node {
        op: Op::Input(InputId(5)),
        args: vec![],
        shape: vec![2],
    });
    let e = g.sum_all(x);
    g.add_output("energy", e, BatchReduce::PerSample);
    out.push(("unknown input", g));

    let mut g = Graph::new("rank too high");
    let x = g.push_unchecked(Node {
        op: Op::Scalar(ebm::ir::F64::new(1.0)),
        args: vec![],
        shape: vec![1; 9],
    });
    g.add_output("energy", x, BatchReduce::PerSample);
    out.push(("rank too high", g));

    let mut g = Graph::new("slice out of range");
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let s = g.push_unchecked(Node {
        op: Op::Slice {
            axis: 0,
            start: u32::MAX,
            step: 1,
        },
        args: vec![x],
        shape: vec![usize::MAX],
    });
    g.add_output("energy", s, BatchReduce::PerSample);
    out.push(("slice out of range", g));

    let mut g = Graph::new("concat axis");
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let s = g.push_unchecked(Node {
        op: Op::Concat { axis: 4 },
        args: vec![x, x],
        shape: vec![6],
    });
    g.add_output("energy", s, BatchReduce::PerSample);
    out.push(("concat axis", g));

    let mut g = Graph::new("output past the end");
    let x = g.input_node("x", vec![3], InputKind::Sample);
    g.add_output("energy", x, BatchReduce::PerSample);
    g.add_output("ghost", NodeId(7), BatchReduce::PerSample);
    out.push(("output past the end", g));

    let mut g = Graph::new("duplicate output");
    let x = g.input_node("x", vec![3], InputKind::Sample);
    let e = g.sum_all(x);
    g.add_output("energy", e, BatchReduce::PerSample);
    g.add_output("energy", x, BatchReduce::PerSample);
    out.push(("duplicate output", g));

    out
}

#[test]
fn backends_refuse_malformed_graphs() {
    let cpu = Cpu::with_threads(1);
    for (what, g) in malformed_graphs() {
        let err = verify::verify(&g).expect_err(what);
        for dtype in [DType::F64, DType::F32] {
            let e = Interp.compile(&g, dtype).err().expect(what);
            assert_eq!(e, BackendError::InvalidIr(err.clone()), "{what}");
            assert!(e.to_string().starts_with("invalid IR: "), "{what}: {e}");
            let e = cpu.compile(&g, dtype).err().expect(what);
            assert!(matches!(e, BackendError::InvalidIr(_)), "{what}: {e}");
            let e = cpu.compile_uncached(&g, dtype).err().expect(what);
            assert!(matches!(e, BackendError::InvalidIr(_)), "{what}: {e}");
        }
        // Any graph can be written; a malformed one is refused on reading.
        let err = decode(&encode(&g)).expect_err(what);
        assert!(
            matches!(err, SerialError::Malformed(_) | SerialError::Invalid(_)),
            "{what}: {err}"
        );
    }
}
