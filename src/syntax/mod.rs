//! Syntax: the pest grammar (`grammar/ebm.pest`) and a Pratt parser that
//! builds the span-carrying AST in `ast`.
//!
//! Pipeline: `scan` (comments, strings, brackets, nesting limit; newlines
//! inside brackets become spaces) → pest on each logical line → `parser`
//! (Pratt parser over the flat operator sequences) → `ast`. Errors are built
//! by the constructors in `errors` (codes E01xx); `print` renders an AST as
//! S-expressions for `ebm dump --stage ast` and the golden tests.

pub mod ast;
pub mod errors;
mod expect;
mod parser;
pub mod print;
mod scan;

use crate::diag::Diagnostic;

/// Parses a whole script. Never panics, whatever the input; runs on a
/// thread with a large stack (`crate::stack`), as parsing recurses once per
/// level of nesting.
pub fn parse(source: &str) -> Result<ast::Program, Vec<Diagnostic>> {
    crate::stack::with_big_stack(|| parser::parse(source))
}
#[cfg(test)]
mod tests;
