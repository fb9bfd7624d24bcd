//! The driver strings the stages together for the CLI and the tests: read a
//! file, parse, analyse, lower. Each function returns diagnostics already
//! rendered against the file, so callers only print them.

use std::path::Path;

use crate::diag::render_all;
use crate::syntax::{self, ast};
use crate::{lower, script, sema};

/// A source file read into memory, with the name used in diagnostics.
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<SourceFile, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("error: cannot read {}: {e}", path.display()))?;
        Ok(SourceFile {
            path: path.display().to_string(),
            // Invalid UTF-8 becomes U+FFFD, which the parser then reports with a caret.
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// The folder that relative data paths in the script are resolved against.
    pub fn base_dir(&self) -> &Path {
        Path::new(&self.path).parent().unwrap_or(Path::new("."))
    }
}

/// Parses, or returns the rendered diagnostics.
pub fn parse(file: &SourceFile) -> Result<ast::Program, String> {
    syntax::parse(&file.text).map_err(|d| render_all(&d, &file.path, &file.text))
}

/// Parses and analyses, or returns the rendered diagnostics.
pub fn analyze(file: &SourceFile) -> Result<sema::Module, String> {
    let program = parse(file)?;
    sema::analyze(&program, file.base_dir()).map_err(|d| render_all(&d, &file.path, &file.text))
}

/// Everything `ebm check` does: succeeds iff the program is valid (it parses,
/// passes semantic analysis, and every definition lowers to IR).
pub fn check(file: &SourceFile) -> Result<(), String> {
    let module = analyze(file)?;
    for def in &module.defs {
        lower::lower(&module, &def.name).map_err(|d| render_all(&[d], &file.path, &file.text))?;
    }
    Ok(())
}

/// `ebm run`: analyses the script, then executes its statements.
pub fn run(file: &SourceFile, out: &mut dyn std::io::Write) -> Result<(), String> {
    let module = analyze(file)?;
    script::run(&module, out).map_err(|d| render_all(&[d], &file.path, &file.text))
}

/// `check` on text held in memory (the fuzzer and tests use it); `path` is
/// only the name printed in diagnostics.
pub fn check_source(path: &str, text: &str) -> Result<(), String> {
    check(&SourceFile {
        path: path.to_string(),
        text: text.to_string(),
    })
}
