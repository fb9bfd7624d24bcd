//! Random and mutated `.ebm` programs for fuzzing the front end. Shared by
//! `examples/fuzz_pipeline.rs` (long runs) and `tests/fuzz_smoke.rs` (CI),
//! included in both with `#[path]`. Deterministic for a given seed.

#![allow(dead_code)]

/// SplitMix64: small, fast, good enough, and stable across crate versions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const NAMES: &[&str] = &[
    "x",
    "c",
    "y",
    "w",
    "centers",
    "gmm",
    "net",
    "f",
    "E",
    "moons",
    "s",
    "sqnorm",
    "logsumexp",
    "mlp",
    "concat",
    "onehot",
    "sum",
    "exp",
    "ring",
    "sample",
    "train",
    "print",
    "plot",
    "_a1",
];
const KEYWORDS: &[&str] = &[
    "and", "or", "not", "const", "param", "energy", "model", "data", "let",
];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2.5",
    "1e-3",
    "2E+4",
    "0.1",
    "1e308",
    "00012",
    "4.9e-324",
    "123456789012345678901234567890",
];
const BAD_NUMBERS: &[&str] = &["1e999", "1e-999", ".5", "5.", "2x", "1e"];
const STRINGS: &[&str] = &[
    "\"f.png\"",
    "\"a\\\"b\"",
    "\"tab\\t\"",
    "\"bad\\q\"",
    "\"#x\"",
    "\"\"",
    "\"λ\"",
];
const BINOPS: &[&str] = &[
    "+", "-", "*", "/", "^", "@", "<", "<=", ">", ">=", "and", "or",
];

/// A random program that follows the grammar (mostly: a few choices are
/// deliberately wrong, like `.5` or a keyword as a name).
pub fn program(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..1 + rng.below(6) {
        if rng.chance(0.15) {
            out.push_str("# a comment ( [\n");
        }
        item(rng, &mut out);
        out.push('\n');
    }
    out
}

fn name(rng: &mut Rng) -> &'static str {
    if rng.chance(0.03) {
        KEYWORDS[rng.below(KEYWORDS.len())]
    } else {
        NAMES[rng.below(NAMES.len())]
    }
}

fn item(rng: &mut Rng, out: &mut String) {
    match rng.below(7) {
        0 => out.push_str(&format!("const {} = {}", name(rng), expr(rng, 4))),
        1 => out.push_str(&format!(
            "param {}: {} ~ {}",
            name(rng),
            shape(rng),
            expr(rng, 2)
        )),
        2 => {
            let cond = if rng.chance(0.4) {
                format!(" | {}: {}", name(rng), shape(rng))
            } else {
                String::new()
            };
            out.push_str(&format!(
                "energy {}({}: {}{cond}) = {}",
                name(rng),
                name(rng),
                shape(rng),
                expr(rng, 5)
            ))
        }
        3 => out.push_str(&format!(
            "model {}({}: {}) -> {} = {}",
            name(rng),
            name(rng),
            shape(rng),
            shape(rng),
            expr(rng, 4)
        )),
        4 => out.push_str(&format!("data {} = {}", name(rng), expr(rng, 3))),
        5 => out.push_str(&format!("let {} = {}", name(rng), expr(rng, 3))),
        _ => out.push_str(&expr(rng, 4)),
    }
}

fn shape(rng: &mut Rng) -> String {
    let dims: Vec<String> = (0..rng.below(4)).map(|_| expr(rng, 1)).collect();
    format!("[{}]", dims.join(", "))
}

pub fn expr(rng: &mut Rng, depth: usize) -> String {
    if depth == 0 || rng.chance(0.25) {
        return match rng.below(10) {
            0..=4 => name(rng).to_string(),
            5..=8 if rng.chance(0.05) => rng.pick(BAD_NUMBERS).to_string(),
            5..=8 => rng.pick(NUMBERS).to_string(),
            _ => rng.pick(STRINGS).to_string(),
        };
    }
    let d = depth - 1;
    match rng.below(15) {
        12 => format!("let {} = {} in {}", name(rng), expr(rng, d), expr(rng, d)),
        13 => format!(
            "{}({}, {}, ({}, {}) => {})",
            if rng.chance(0.5) { "scan" } else { "fold" },
            expr(rng, d),
            expr(rng, d),
            name(rng),
            name(rng),
            expr(rng, d)
        ),
        14 => format!("{}[{}::{}]", expr(rng, d), expr(rng, 0), expr(rng, 0)),
        0..=2 => format!("{} {} {}", expr(rng, d), rng.pick(BINOPS), expr(rng, d)),
        3 => format!("-{}", expr(rng, d)),
        4 => format!("not {}", expr(rng, d)),
        5 => format!("({})", expr(rng, d)),
        6 => {
            let n = rng.below(4);
            let sep = if rng.chance(0.2) { ",\n  " } else { ", " };
            let elems: Vec<String> = (0..n).map(|_| expr(rng, d)).collect();
            format!("[{}]", elems.join(sep))
        }
        7 => {
            let idx = match rng.below(5) {
                0 => format!("{}:{}", expr(rng, 0), expr(rng, 0)),
                1 => ":, 0".to_string(),
                2 => format!("{}:", expr(rng, 0)),
                _ => expr(rng, d),
            };
            format!("{}[{idx}]", expr(rng, d))
        }
        8 => format!("{}({} | {})", name(rng), expr(rng, d), expr(rng, d)),
        _ => {
            let mut args: Vec<String> = (0..rng.below(4)).map(|_| expr(rng, d)).collect();
            if rng.chance(0.4) {
                args.push(format!("{} = {}", name(rng), expr(rng, d)));
            }
            format!("{}({})", name(rng), args.join(", "))
        }
    }
}

/// A damaged copy of `src`: one or a few random edits.
pub fn mutate(rng: &mut Rng, src: &str, other: &str) -> String {
    let mut bytes = src.as_bytes().to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(12) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => bytes.insert(at, rng.below(256) as u8),
            2 if !bytes.is_empty() => {
                let end = (at + rng.below(8)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            3 => bytes.truncate(at),
            4 => {
                // Splice in a piece of another program.
                let o = other.as_bytes();
                let s = rng.below(o.len() + 1);
                let e = (s + rng.below(40)).min(o.len());
                bytes.splice(at..at, o[s..e].iter().copied());
            }
            5 => {
                let n = [10, 150, 199, 200, 201, 1000, 100_000][rng.below(7)];
                let (open, close) = *rng.pick(&[
                    ("(", ")"),
                    ("[", "]"),
                    ("f(", ")"),
                    ("x[", "]"),
                    ("-", ""),
                    ("not ", ""),
                    ("1^", ""),
                    ("2^-", ""),
                    ("-(", ")"),
                    ("1+", ""),
                ]);
                let text = format!("{}1{}", open.repeat(n), close.repeat(n * rng.below(2)));
                bytes.splice(at..at, text.into_bytes());
            }
            6 => {
                let big = match rng.below(4) {
                    0 => "9".repeat(1 + rng.below(2000)),
                    1 => format!("1e{}", "9".repeat(1 + rng.below(30))),
                    2 => format!("0.{}1e-{}", "0".repeat(rng.below(400)), rng.below(400)),
                    _ => format!("{}e+{}", rng.next(), rng.next()),
                };
                bytes.splice(at..at, big.into_bytes());
            }
            7 => {
                let junk: Vec<u8> = (0..rng.below(32)).map(|_| rng.below(256) as u8).collect();
                bytes.splice(at..at, junk);
            }
            8 => {
                let piece = *rng.pick(&[
                    "\0", "\"", "\\", "#", "\n", "\r\n", "λ", "\u{FFFD}", "|", "->", "~", ":", "=",
                    ",", "(", ")", "[", "]", "and", "not", "energy ", "\t",
                ]);
                bytes.splice(at..at, piece.bytes());
            }
            9 if !bytes.is_empty() => {
                // Duplicate a range.
                let s = rng.below(bytes.len());
                let e = (s + rng.below(64)).min(bytes.len());
                let piece: Vec<u8> = bytes[s..e].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => {
                let e = expr(rng, 3);
                bytes.splice(at..at, e.into_bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The next fuzz input: a fresh program, a mutation of one, or something odd.
pub fn input(rng: &mut Rng, corpus: &[String]) -> String {
    let base = if !corpus.is_empty() && rng.chance(0.3) {
        rng.pick(corpus).clone()
    } else {
        program(rng)
    };
    match rng.below(20) {
        0..=7 => base,
        8..=17 => {
            let other = program(rng);
            mutate(rng, &base, &other)
        }
        18 => {
            let bytes: Vec<u8> = (0..rng.below(512)).map(|_| rng.below(256) as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => {
            // Large but valid-looking: many copies of a program.
            let n = if rng.chance(0.05) { 2000 } else { 50 };
            base.repeat(n)
        }
    }
}

/// The UI cases and example scripts, as seeds for mutation.
#[allow(dead_code)] // not every includer mutates the corpus
pub fn corpus() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut corpus = Vec::new();
    for dir in ["tests/ui", "examples"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "ebm")
                && let Ok(text) = std::fs::read_to_string(e.path())
            {
                corpus.push(text);
            }
        }
    }
    corpus.sort();
    corpus
}

/// The command line the fuzzing examples share: `--seconds N`, `--seed N`,
/// `--out DIR`, and the boolean flags `switches` names (set in the result
/// when given). An unknown argument exits 2.
#[allow(dead_code)] // the tests do not read a command line
pub struct FuzzArgs {
    pub seconds: u64,
    pub seed: u64,
    pub out: std::path::PathBuf,
    pub switches: Vec<&'static str>,
}

#[allow(dead_code)]
impl FuzzArgs {
    pub fn parse(switches: &[&'static str]) -> FuzzArgs {
        let mut a = FuzzArgs {
            seconds: 60,
            seed: 1,
            out: "fuzz_crashes".into(),
            switches: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().unwrap_or_default();
            match arg.as_str() {
                "--seconds" => a.seconds = value().parse().expect("--seconds N"),
                "--seed" => a.seed = value().parse().expect("--seed N"),
                "--out" => a.out = value().into(),
                s if switches.contains(&s) => a.switches.extend(switches.iter().find(|w| **w == s)),
                other => {
                    eprintln!("unknown argument {other}");
                    std::process::exit(2);
                }
            }
        }
        a
    }

    pub fn has(&self, switch: &str) -> bool {
        self.switches.contains(&switch)
    }
}
