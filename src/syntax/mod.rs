//! Syntax: the pest grammar (`grammar/ebm.pest`) and a Pratt parser that
//! builds the span-carrying AST in `ast`.

pub mod ast;
