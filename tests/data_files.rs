//! `load(path, key)` end to end: files written to a scratch folder, read
//! through `sema` (paths relative to the script's folder), and every failure
//! a diagnostic with the right code pointing at the path or key.

use std::path::{Path, PathBuf};

use ebm::data::{Array, Key, csv, load, npy};
use ebm::sema::analyze;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-data-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `(code, spanned source text)` of each diagnostic.
type Errors = Vec<(String, String)>;

fn consts(dir: &Path, src: &str) -> Result<Vec<(String, Array)>, Errors> {
    let program = ebm::syntax::parse(src).unwrap();
    match analyze(&program, dir, ebm::lower::eval_const) {
        Ok(m) => Ok(m
            .consts
            .iter()
            .map(|c| (c.name.clone(), (*c.value).clone()))
            .collect()),
        Err(ds) => Err(ds
            .iter()
            .map(|d| {
                let text = &src[d.span.start as usize..d.span.end as usize];
                (d.code.to_string(), text.to_string())
            })
            .collect()),
    }
}

#[test]
fn json_csv_npy_round_trips() {
    let dir = scratch("ok");
    std::fs::write(dir.join("obs.json"), r#"{"y": [[1, 2], [3, 4]], "s": 0.5}"#).unwrap();
    std::fs::write(
        dir.join("t.csv"),
        csv::to_string(
            &["a", "b", "c"],
            &[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]],
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    npy::write_f64(&dir.join("sub/m.npy"), &[3], &[0.25, -1.0, 8.0]).unwrap();
    npy::write_f32(&dir.join("f.npy"), &[1, 2], &[1.5, 2.5]).unwrap();
    let got = consts(
        &dir,
        r#"const y = load("obs.json", "y")
const s = load("obs.json", key = "s")
const b = load("t.csv", "b")
const ac = load("t.csv", ["a", "c"])
const all = load("t.csv")
const m = load("sub/m.npy")
const f = load("f.npy", "") * 2"#,
    )
    .unwrap();
    let want = [
        ("y", Array::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])),
        ("s", Array::new(vec![], vec![0.5])),
        ("b", Array::new(vec![2], vec![2.0, 5.0])),
        ("ac", Array::new(vec![2, 2], vec![1.0, 3.0, 4.0, 6.0])),
        (
            "all",
            Array::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ),
        ("m", Array::new(vec![3], vec![0.25, -1.0, 8.0])),
        ("f", Array::new(vec![1, 2], vec![3.0, 5.0])),
    ];
    assert_eq!(got.len(), want.len());
    for ((gn, ga), (wn, wa)) in got.iter().zip(want) {
        assert_eq!((gn.as_str(), ga), (wn, &wa));
    }
    // The library API directly.
    assert_eq!(
        load(&dir.join("sub/m.npy"), &Key::All, usize::MAX)
            .unwrap()
            .data,
        vec![0.25, -1.0, 8.0]
    );
}

#[test]
fn data_errors_are_diagnostics() {
    let dir = scratch("bad");
    std::fs::write(dir.join("bad.json"), "{\"y\": [1, 2").unwrap();
    std::fs::write(dir.join("ragged.json"), r#"{"y": [[1, 2], [3]]}"#).unwrap();
    std::fs::write(dir.join("t.csv"), "a,b\n1,2\n").unwrap();
    std::fs::write(dir.join("bad.csv"), "a,b\n1,oops\n").unwrap();
    std::fs::write(dir.join("bad.npy"), b"\x93NUMPY garbage").unwrap();
    std::fs::write(dir.join("data.txt"), "1 2 3").unwrap();
    npy::write_f64(&dir.join("m.npy"), &[1], &[1.0]).unwrap();
    let errs = consts(
        &dir,
        r#"const a = load("missing.json", "y")
const b = load("bad.json", "y")
const c = load("ragged.json", "y")
const d = load("t.csv", "bb")
const e = load("bad.csv", "a")
const f = load("bad.npy")
const g = load("data.txt")
const h = load("m.npy", "x")
const i = load("t.csv", 3)
const j = load(3)
const k = load("sub")"#,
    )
    .unwrap_err();
    let want = [
        ("E0401", "\"missing.json\""),
        ("E0403", "\"bad.json\""),
        ("E0403", "\"ragged.json\""),
        ("E0404", "\"bb\""),
        ("E0403", "\"bad.csv\""),
        ("E0403", "\"bad.npy\""),
        ("E0402", "\"data.txt\""),
        ("E0405", "\"x\""),
        ("E0316", "3"),
        ("E0316", "3"),
        ("E0402", "\"sub\""),
    ];
    let got: Vec<(&str, &str)> = errs.iter().map(|(c, t)| (c.as_str(), t.as_str())).collect();
    assert_eq!(got, want);
}
