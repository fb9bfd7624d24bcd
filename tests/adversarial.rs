//! The adversarial corpus (issue 16): every case in `tests/adversarial/*.cases`
//! runs the real `ebm` binary under a wall-clock limit and a memory limit and
//! says what must happen — a diagnostic and exit 1 for a wrong input, exit 2
//! for a malformed command line, success where the input is legitimate. No
//! case may panic, abort, die on a signal, run past [`TIME_LIMIT`] or reach
//! [`RSS_LIMIT`] of resident memory. The case format is described in
//! `tests/adversarial/README.md`.
//!
//! `EBM_ADV_ONLY=NAME,..` runs only the named cases (a prefix ending in `*`
//! selects every case starting with it); `--nocapture` prints each case's
//! time and peak memory.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Wall-clock limit of one command; the child is killed past it. It
/// catches hangs, not slowness: the slowest case (`inline-near-bound-samples`,
/// compiling 4096 inlined copies) took 19.5 s on a shared host on
/// 2026-12-02 with the binaries of that day and of the day before.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// The bound on resident memory, checked from the child's own
/// `ru_maxrss` (reported by `wait4`).
const RSS_LIMIT: u64 = 1 << 30;

/// Address-space limit (`RLIMIT_AS`), a guard so that a runaway allocation
/// fails inside the child (and is reported as "memory allocation" or a
/// signal) instead of exhausting the machine. It counts reserved, untouched
/// memory too: the binary and its debug info, the front end's 256 MiB stack
/// reservation, glibc's 64 MiB heap arena per thread. Every command of the
/// corpus ran under 300 MiB of address space on 2 threads (measured with
/// `ulimit -v`), so 4 GiB leaves room for machines with more threads while
/// a real 1 GiB of resident memory is still caught by [`RSS_LIMIT`].
const AS_LIMIT: u64 = 4 << 30;

/// Text no run may print, whatever its case expects.
const NEVER: &[&str] = &[
    "panicked",
    "memory allocation",
    "RUST_BACKTRACE",
    "stack overflow",
];

#[derive(Debug, Default)]
struct Cmd {
    env: Vec<(String, String)>,
    args: Vec<String>,
}

#[derive(Debug)]
enum Make {
    /// Text lines (`file NAME` then `| ..` lines).
    Text(String, String),
    /// Bytes appended `count` times (`bytes NAME COUNT TEXT`).
    Bytes(String, u64, Vec<u8>),
    Sparse(String, u64),
    Fifo(String),
    Link(String, String),
    Dir(String),
    Mode(String, u32),
}

#[derive(Debug, Default)]
struct Case {
    name: String,
    at: String,
    make: Vec<Make>,
    setup: Vec<Cmd>,
    run: Option<Cmd>,
    stdin: Option<String>,
    /// Standard input read from this case file instead (big or odd bytes).
    stdin_from: Option<String>,
    exit: Option<i32>,
    stderr: Vec<String>,
    stdout: Vec<String>,
    no_stderr: Vec<String>,
    no_stdout: Vec<String>,
    same: Vec<(String, String)>,
    exists: Vec<String>,
    absent: Vec<String>,
    perm: Vec<(String, u32)>,
    unless_root: bool,
}

/// Splits a command line: whitespace separates words, `'..'` and `".."`
/// quote (no escapes inside).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A command: leading `KEY=VALUE` words set the environment.
fn command(line: &str) -> Cmd {
    let mut cmd = Cmd::default();
    let mut ws = words(line).into_iter().peekable();
    while let Some(w) = ws.next_if(|w| {
        w.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
    }) {
        let (k, v) = w.split_once('=').unwrap();
        cmd.env.push((k.to_string(), v.to_string()));
    }
    cmd.args = ws.collect();
    cmd
}

/// `\n`, `\t`, `\0`, `\\`, `\xNN` and `\s` (a space) in a `bytes` text.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            i += 1;
            match b[i] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'0' => out.push(0),
                b's' => out.push(b' '),
                b'x' => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    out
}

fn size(s: &str) -> u64 {
    let (n, mul) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 1 << 10),
        Some(b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<u64>().unwrap() * mul
}

fn parse(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut cases: Vec<Case> = Vec::new();
    // Where `| ..` lines go: a file's text or the standard input.
    enum Into {
        Nothing,
        File,
        Stdin,
    }
    let mut into = Into::Nothing;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        let at = format!("{file}:{}", n + 1);
        if let Some(rest) = line.strip_prefix('|') {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            let case = cases
                .last_mut()
                .unwrap_or_else(|| panic!("{at}: text before a case"));
            let target = match into {
                Into::File => match case.make.last_mut() {
                    Some(Make::Text(_, t)) => t,
                    _ => unreachable!(),
                },
                Into::Stdin => case.stdin.get_or_insert_with(String::new),
                Into::Nothing => panic!("{at}: `|` line outside `file` or `stdin`"),
            };
            target.push_str(rest);
            target.push('\n');
            continue;
        }
        into = Into::Nothing;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        if key == "case" {
            cases.push(Case {
                name: rest.to_string(),
                at: at.clone(),
                ..Case::default()
            });
            continue;
        }
        let case = cases
            .last_mut()
            .unwrap_or_else(|| panic!("{at}: `{key}` before a case"));
        let w = words(rest);
        match key {
            "file" => {
                case.make.push(Make::Text(rest.to_string(), String::new()));
                into = Into::File;
            }
            "bytes" => {
                let (name, rest) = rest.split_once(' ').unwrap();
                let (count, text) = rest.split_once(' ').unwrap();
                case.make
                    .push(Make::Bytes(name.into(), size(count), unescape(text)));
            }
            "sparse" => case.make.push(Make::Sparse(w[0].clone(), size(&w[1]))),
            "fifo" => case.make.push(Make::Fifo(w[0].clone())),
            "link" => case.make.push(Make::Link(w[0].clone(), w[1].clone())),
            "dir" => case.make.push(Make::Dir(w[0].clone())),
            "mode" => case.make.push(Make::Mode(
                w[0].clone(),
                u32::from_str_radix(&w[1], 8).unwrap(),
            )),
            "setup" => case.setup.push(command(rest)),
            "run" => case.run = Some(command(rest)),
            "stdin" => {
                case.stdin = Some(String::new());
                into = Into::Stdin;
            }
            "stdin-from" => case.stdin_from = Some(rest.to_string()),
            "exit" => case.exit = Some(rest.parse().unwrap()),
            "stderr" => case.stderr.push(rest.to_string()),
            "stdout" => case.stdout.push(rest.to_string()),
            "no-stderr" => case.no_stderr.push(rest.to_string()),
            "no-stdout" => case.no_stdout.push(rest.to_string()),
            "same" => case.same.push((w[0].clone(), w[1].clone())),
            "exists" => case.exists.push(rest.to_string()),
            "absent" => case.absent.push(rest.to_string()),
            "perm" => case
                .perm
                .push((w[0].clone(), u32::from_str_radix(&w[1], 8).unwrap())),
            "unless-root" => case.unless_root = true,
            other => panic!("{at}: unknown directive `{other}`"),
        }
    }
    for c in &cases {
        assert!(c.run.is_some(), "{}: case `{}` has no `run`", c.at, c.name);
        assert!(
            c.exit.is_some(),
            "{}: case `{}` has no `exit`",
            c.at,
            c.name
        );
    }
    cases
}

fn make(dir: &Path, m: &Make) -> std::io::Result<()> {
    match m {
        Make::Text(name, text) => std::fs::write(dir.join(name), text),
        Make::Bytes(name, count, bytes) => {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))?;
            let mut w = std::io::BufWriter::new(&mut f);
            for _ in 0..*count {
                w.write_all(bytes)?;
            }
            w.flush()
        }
        Make::Sparse(name, len) => std::fs::File::create(dir.join(name))?.set_len(*len),
        Make::Fifo(name) => {
            let c = std::ffi::CString::new(dir.join(name).into_os_string().into_encoded_bytes())
                .unwrap();
            // SAFETY: a valid NUL-terminated path.
            match unsafe { libc::mkfifo(c.as_ptr(), 0o644) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        }
        Make::Link(name, target) => std::os::unix::fs::symlink(target, dir.join(name)),
        Make::Dir(name) => std::fs::create_dir_all(dir.join(name)),
        Make::Mode(name, mode) => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(*mode))
        }
    }
}

/// What one command did.
struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
    seconds: f64,
    max_rss: u64,
}

fn spawn_reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

// The child is reaped by `wait4` (for its peak memory), not `Child::wait`.
#[allow(clippy::zombie_processes)]
fn execute(dir: &Path, cmd: &Cmd, stdin: Option<&str>, stdin_from: Option<&str>) -> Outcome {
    let args: Vec<String> = cmd
        .args
        .iter()
        .map(|a| a.replace("{dir}", &dir.to_string_lossy()))
        .collect();
    let mut c = Command::new(env!("CARGO_BIN_EXE_ebm"));
    c.args(&args)
        .current_dir(dir)
        .env("EBM_THREADS", "2")
        .env("EBM_BENCH_MAX_WAIT", "0")
        .env_remove("RUST_BACKTRACE")
        .stdin(match (stdin, stdin_from) {
            (_, Some(f)) => Stdio::from(std::fs::File::open(dir.join(f)).expect("stdin-from file")),
            (Some(_), None) => Stdio::piped(),
            (None, None) => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &cmd.env {
        c.env(k, v);
    }
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the hook.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: AS_LIMIT,
                rlim_max: AS_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = c.spawn().expect("spawn ebm");
    let pid = child.id() as libc::pid_t;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let text = text.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let out = spawn_reader(child.stdout.take().unwrap());
    let err = spawn_reader(child.stderr.take().unwrap());
    let mut status = 0;
    // SAFETY: rusage is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        // SAFETY: pid is our unreaped child; the pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if start.elapsed() > TIME_LIMIT {
            timed_out = true;
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::wait4(pid, &mut status, 0, &mut usage);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let seconds = start.elapsed().as_secs_f64();
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else {
        (None, Some(libc::WTERMSIG(status)))
    };
    Outcome {
        code,
        signal,
        timed_out,
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        seconds,
        // ru_maxrss is in KiB on Linux.
        max_rss: usage.ru_maxrss as u64 * 1024,
    }
}

fn is_root() -> bool {
    // SAFETY: no arguments, no failure.
    unsafe { libc::geteuid() == 0 }
}

/// Last lines of a text, for failure reports.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let from = lines.len().saturating_sub(12);
    lines[from..]
        .iter()
        .map(|l| format!("      {}", l.chars().take(200).collect::<String>()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks one outcome against the limits every command shares.
fn limits(what: &str, o: &Outcome, problems: &mut Vec<String>) {
    if o.timed_out {
        problems.push(format!("{what}: killed after {TIME_LIMIT:?}"));
    }
    if let Some(s) = o.signal.filter(|_| !o.timed_out) {
        problems.push(format!("{what}: died on signal {s}"));
    }
    if o.max_rss >= RSS_LIMIT {
        problems.push(format!(
            "{what}: peak resident memory {} MiB, the limit is {} MiB",
            o.max_rss >> 20,
            RSS_LIMIT >> 20
        ));
    }
    for bad in NEVER {
        if o.stderr.contains(bad) || o.stdout.contains(bad) {
            problems.push(format!("{what}: printed `{bad}`"));
        }
    }
}

/// Runs one case in `dir`; the problems found (none when it passes) and the
/// outcome of its `run`.
fn run_case(case: &Case, dir: &Path) -> (Vec<String>, Option<Outcome>) {
    let mut problems = Vec::new();
    for m in &case.make {
        if let Err(e) = make(dir, m) {
            return (vec![format!("cannot prepare {m:?}: {e}")], None);
        }
    }
    for s in &case.setup {
        let o = execute(dir, s, None, None);
        let what = format!("setup `ebm {}`", s.args.join(" "));
        limits(&what, &o, &mut problems);
        if o.code != Some(0) {
            problems.push(format!(
                "{what}: exit {:?}, expected 0\n    stderr:\n{}",
                o.code,
                tail(&o.stderr)
            ));
        }
        if !problems.is_empty() {
            return (problems, None);
        }
    }
    // invariant: `parse` checked that every case has a `run` and an `exit`.
    let cmd = case.run.as_ref().unwrap();
    let o = execute(dir, cmd, case.stdin.as_deref(), case.stdin_from.as_deref());
    limits("run", &o, &mut problems);
    if o.code != case.exit {
        problems.push(format!("exit {:?}, expected {:?}", o.code, case.exit));
    }
    for f in &case.stderr {
        if !o.stderr.contains(f.as_str()) {
            problems.push(format!("stderr lacks `{f}`"));
        }
    }
    for f in &case.stdout {
        if !o.stdout.contains(f.as_str()) {
            problems.push(format!("stdout lacks `{f}`"));
        }
    }
    for f in &case.no_stderr {
        if o.stderr.contains(f.as_str()) {
            problems.push(format!("stderr holds `{f}`"));
        }
    }
    for f in &case.no_stdout {
        if o.stdout.contains(f.as_str()) {
            problems.push(format!("stdout holds `{f}`"));
        }
    }
    for (a, b) in &case.same {
        let read = |p: &str| std::fs::read(dir.join(p)).unwrap_or_default();
        if read(a) != read(b) {
            problems.push(format!("{a} and {b} differ"));
        }
    }
    for p in &case.exists {
        if !dir.join(p).exists() {
            problems.push(format!("{p} was not written"));
        }
    }
    for p in &case.absent {
        if dir.join(p).exists() {
            problems.push(format!("{p} exists"));
        }
    }
    for (p, want) in &case.perm {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(p)).map(|m| m.permissions().mode() & 0o7777);
        match mode {
            Ok(m) if m == *want => {}
            Ok(m) => problems.push(format!("{p} has mode {m:o}, expected {want:o}")),
            Err(e) => problems.push(format!("{p}: {e}")),
        }
    }
    if !problems.is_empty() {
        problems.push(format!(
            "command: ebm {}\n    stdout:\n{}\n    stderr:\n{}",
            cmd.args.join(" "),
            tail(&o.stdout),
            tail(&o.stderr)
        ));
    }
    (problems, Some(o))
}

/// Makes everything under `dir` writable again, then removes it.
fn remove(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fn open_up(p: &Path) {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return;
        };
        if meta.is_dir() {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(dir);
    let _ = std::fs::remove_dir_all(dir);
}

fn selected(name: &str, only: &Option<String>) -> bool {
    match only {
        None => true,
        Some(list) => list.split(',').any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        }),
    }
}

#[test]
fn adversarial_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/adversarial");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cases"))
        .collect();
    files.sort();
    let mut cases: Vec<Case> = files.iter().flat_map(|f| parse(f)).collect();
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(
            names.insert(c.name.clone()),
            "{}: duplicate case `{}`",
            c.at,
            c.name
        );
    }
    let total = cases.len();
    assert!(total >= 60, "the corpus has {total} cases, fewer than 60");
    let only = std::env::var("EBM_ADV_ONLY").ok();
    let root_user = is_root();
    cases.retain(|c| selected(&c.name, &only) && !(c.unless_root && root_user));
    let skipped = total - cases.len();

    let scratch = std::env::temp_dir().join(format!("ebm-adversarial-{}", std::process::id()));
    let queue = std::sync::Mutex::new(cases.iter().collect::<Vec<_>>());
    let results = std::sync::Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let Some(case) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let dir = scratch.join(&case.name);
                    std::fs::create_dir_all(&dir).unwrap();
                    let (problems, outcome) = run_case(case, &dir);
                    remove(&dir);
                    results.lock().unwrap().push((case, problems, outcome));
                }
            });
        }
    });
    remove(&scratch);

    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| {
        let t = |r: &Option<Outcome>| r.as_ref().map_or(0.0, |o| o.seconds);
        t(&b.2).total_cmp(&t(&a.2))
    });
    println!("slowest cases (seconds, peak resident MiB):");
    for (case, _, o) in results.iter().take(12) {
        if let Some(o) = o {
            println!(
                "  {:6.2} s {:6} MiB  {}",
                o.seconds,
                o.max_rss >> 20,
                case.name
            );
        }
    }
    let peak = results
        .iter()
        .filter_map(|(c, _, o)| o.as_ref().map(|o| (o.max_rss, &c.name)))
        .max();
    if let Some((rss, name)) = peak {
        println!("highest peak resident memory: {} MiB ({name})", rss >> 20);
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, p, _)| !p.is_empty())
        .map(|(c, p, _)| format!("case `{}` ({}):\n  {}", c.name, c.at, p.join("\n  ")))
        .collect();
    println!(
        "{} cases run, {} skipped (running as root, or EBM_ADV_ONLY), {} failed",
        results.len(),
        skipped,
        failed.len()
    );
    assert!(failed.is_empty(), "\n{}", failed.join("\n\n"));
}
