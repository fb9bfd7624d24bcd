//! The model file's reader against its writer, and against damaged files.

use super::*;
use crate::ir::{BatchReduce, Graph, InputKind};

/// E(x) = ½‖x − μ‖², μ a parameter: the smallest definition with a parameter.
fn quadratic(name: &str) -> Graph {
    let mut g = Graph::new(name);
    let x = g.input_node("x", vec![2], InputKind::Sample);
    let mu = g.input_node(format!("{name}.mu"), vec![2], InputKind::Shared);
    let d = g.sub(x, mu);
    let sq = g.mul(d, d);
    let s = g.sum_all(sq);
    let half = g.scalar(0.5);
    let e = g.mul(half, s);
    g.add_output("energy", e, BatchReduce::PerSample);
    g
}

fn mu(name: &str) -> ParamValue {
    ParamValue {
        name: format!("{name}.mu"),
        shape: vec![2],
        data: vec![1.0, -2.5],
    }
}

fn sample() -> Artifact {
    let params = [mu("a"), mu("b"), mu("unused")];
    Artifact::new(
        "prog.ebm",
        "energy a(x: [2]) = ...",
        vec![quadratic("a"), quadratic("b")],
        &params,
        None,
        BTreeMap::from([("params".to_string(), "run/params.safetensors".to_string())]),
    )
    .unwrap()
}

#[test]
fn round_trips_bytewise() {
    let a = sample();
    let bytes = a.to_bytes();
    let b = Artifact::from_bytes(&bytes).unwrap();
    assert_eq!(b.to_bytes(), bytes);
    assert_eq!(b.header(), a.header());
    assert_eq!(b.params(), a.params());
    assert_eq!(b.source(), a.source());
    // Unused parameters are not stored.
    assert_eq!(b.params().len(), 2);
    assert_eq!(b.param_count(), 4);
}

#[test]
fn every_flipped_byte_is_refused() {
    let bytes = sample().to_bytes();
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= flip;
            assert!(Artifact::from_bytes(&bad).is_err(), "byte {i} ^ {flip:#x}");
        }
    }
}

#[test]
fn every_truncation_is_refused_as_truncated_or_not_a_model() {
    let bytes = sample().to_bytes();
    for n in 0..bytes.len() {
        let e = Artifact::from_bytes(&bytes[..n]).unwrap_err();
        match e {
            ArtifactError::Truncated { .. } | ArtifactError::NotAModel => {}
            other => panic!("cut at {n}: {other}"),
        }
    }
}

#[test]
fn names_the_problem() {
    let bytes = sample().to_bytes();
    let check = |bytes: &[u8], expect: &str| {
        let got = Artifact::from_bytes(bytes).unwrap_err().to_string();
        assert!(got.contains(expect), "{got:?} lacks {expect:?}");
    };
    check(b"energy e(x: [2]) = 0", "not an ebm model file");
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&7u32.to_le_bytes());
    check(&newer, "format version 7");
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 4;
    check(&flipped, "checksum");
    check(&bytes[..bytes.len() - 3], "truncated");
    let mut longer = bytes.clone();
    longer.push(0);
    check(&longer, "checksum");
}

/// A forged file whose checksum holds reaches the structural checks.
fn forge(mut body: Vec<u8>) -> Vec<u8> {
    let sum = fnv1a64(&body);
    body.extend_from_slice(&sum.to_le_bytes());
    body
}

#[test]
fn inconsistent_files_are_refused_even_with_a_valid_checksum() {
    let good = sample();
    // A header that lies about a shape.
    let mut header = good.header().clone();
    header.defs[0].x = vec![3];
    let lie = Artifact {
        header,
        ..good.clone()
    };
    let bytes = forge(lie.to_bytes()[..lie.to_bytes().len() - 8].to_vec());
    let e = Artifact::from_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("signature"), "{e}");
    // A parameter stored with the wrong shape.
    let mut params = good.params().to_vec();
    params[0].shape = vec![1, 2];
    let wrong = Artifact {
        params,
        ..good.clone()
    };
    let bytes = forge(wrong.to_bytes()[..wrong.to_bytes().len() - 8].to_vec());
    let e = Artifact::from_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("shape [1, 2]"), "{e}");
    // A missing parameter.
    let missing = Artifact {
        params: good.params()[..1].to_vec(),
        ..good.clone()
    };
    let bytes = forge(missing.to_bytes()[..missing.to_bytes().len() - 8].to_vec());
    let e = Artifact::from_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("not stored"), "{e}");
}

#[test]
fn new_refuses_a_graph_without_its_parameter_values() {
    let e = Artifact::new("p", "", vec![quadratic("a")], &[], None, BTreeMap::new()).unwrap_err();
    assert!(e.to_string().contains("`a.mu`, which has no value"), "{e}");
}

#[test]
fn lookup_suggests_a_name() {
    let a = sample();
    assert!(a.def("b").is_ok());
    let e = a.def("aa").unwrap_err().to_string();
    assert!(e.contains("did you mean `a`"), "{e}");
}
