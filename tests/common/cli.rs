//! Runs the `ebm` binary the way a user does: (exit code, stdout, stderr).

#![allow(dead_code)]

use std::process::Command;

pub fn ebm(args: &[&str]) -> (i32, String, String) {
    ebm_in(std::path::Path::new("."), args)
}

/// `ebm args` run in the folder `dir`.
pub fn ebm_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    result(out)
}

/// `ebm args` with `input` on its standard input.
pub fn ebm_stdin(args: &[&str], input: &str) -> (i32, String, String) {
    ebm_stdin_in(std::path::Path::new("."), args, input)
}

/// `ebm args` in the folder `dir`, with `input` on its standard input.
pub fn ebm_stdin_in(dir: &std::path::Path, args: &[&str], input: &str) -> (i32, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    result(child.wait_with_output().unwrap())
}

fn result(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ebm args` with extra environment variables.
pub fn ebm_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    result(out)
}
