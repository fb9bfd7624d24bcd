//! From text to AST: the pre-scan (`scan`), pest (`grammar/ebm.pest`) on each
//! logical line, then a Pratt parser (pest's `PrattParser`) that gives the
//! flat operator sequences their structure.
//!
//! Robustness: the pre-scan bounds bracket nesting, so pest's recursion is
//! bounded; before each Pratt run the flat sequence is checked so that runs of
//! prefix operators and `^` chains stay under the same limit; every built
//! expression carries its tree depth, and a tree deeper than
//! `MAX_EXPR_DEPTH` is an error (so later recursive passes are safe too).

use std::sync::LazyLock;

use pest::Parser as _;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};

use super::ast::*;
use super::errors::{self, MAX_EXPR_DEPTH, MAX_NESTING};
use super::scan;
use crate::diag::{Diagnostic, Span};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/ebm.pest"]
struct EbmParser;

/// At most this many diagnostics are reported for one file.
const MAX_ERRORS: usize = 20;

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::or_op, Assoc::Left))
        .op(Op::infix(Rule::and_op, Assoc::Left))
        .op(Op::prefix(Rule::not_op))
        .op(Op::infix(Rule::lt, Assoc::Left)
            | Op::infix(Rule::le, Assoc::Left)
            | Op::infix(Rule::gt, Assoc::Left)
            | Op::infix(Rule::ge, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left)
            | Op::infix(Rule::div, Assoc::Left)
            | Op::infix(Rule::matmul, Assoc::Left))
        .op(Op::prefix(Rule::neg))
        .op(Op::infix(Rule::pow, Assoc::Right))
        .op(Op::postfix(Rule::index))
});

/// Parses a whole script. Never panics, whatever the input.
pub fn parse(source: &str) -> Result<Program, Vec<Diagnostic>> {
    let scanned = scan::scan(source).map_err(|d| vec![d])?;
    let mut items = Vec::new();
    let mut diags = Vec::new();
    for &(start, end) in &scanned.lines {
        let line = Line {
            source,
            clean: &scanned.clean,
            start,
            end,
        };
        match line.parse() {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {}
            Err(d) => {
                diags.push(d);
                if diags.len() >= MAX_ERRORS {
                    break;
                }
            }
        }
    }
    if diags.is_empty() {
        Ok(Program { items })
    } else {
        Err(diags)
    }
}

/// One logical line: `clean[start..end]` is what pest parses; offsets in
/// pest's pairs are relative to `start`.
struct Line<'s> {
    source: &'s str,
    clean: &'s str,
    start: usize,
    end: usize,
}

/// An expression under construction, with what the checks need to know.
struct Node {
    expr: Expr,
    depth: u32,
    /// A comparison not wrapped in parentheses (comparisons don't chain).
    comparison: bool,
}

type Built = Result<Node, Diagnostic>;

impl<'s> Line<'s> {
    fn parse(&self) -> Result<Option<Item>, Diagnostic> {
        let text = &self.clean[self.start..self.end];
        let mut pairs = match EbmParser::parse(Rule::line, text) {
            Ok(pairs) => pairs,
            Err(e) => return Err(self.translate(e)),
        };
        let Some(line) = pairs.next() else {
            return Ok(None);
        };
        match line.into_inner().next() {
            Some(item) if item.as_rule() != Rule::EOI => self.item(item).map(Some),
            _ => Ok(None),
        }
    }

    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.start + s.start(), self.start + s.end())
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn item(&self, pair: Pair<Rule>) -> Result<Item, Diagnostic> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        // Skip the keyword and punctuation tokens; keep the meaningful parts.
        let mut parts = pair.into_inner().filter(|p| {
            !matches!(
                p.as_rule(),
                Rule::kw_const
                    | Rule::kw_param
                    | Rule::kw_energy
                    | Rule::kw_model
                    | Rule::kw_data
                    | Rule::kw_let
                    | Rule::assign
                    | Rule::colon
                    | Rule::tilde
                    | Rule::arrow
            )
        });
        let mut next = || parts.next().ok_or_else(|| internal(span));
        let kind = match rule {
            Rule::use_item => return self.use_item(parts, span),
            Rule::const_item => ItemKind::Const {
                name: self.ident(next()?),
                value: self.expr(next()?, 0)?,
            },
            Rule::data_item => ItemKind::Data {
                name: self.ident(next()?),
                value: self.expr(next()?, 0)?,
            },
            Rule::let_item => ItemKind::Let {
                name: self.ident(next()?),
                value: self.expr(next()?, 0)?,
            },
            Rule::param_item => ItemKind::Param {
                name: self.ident(next()?),
                shape: self.shape(next()?)?,
                init: self.expr(next()?, 0)?,
            },
            Rule::energy_item => {
                let name = self.ident(next()?);
                let (input, cond) = self.signature(next()?)?;
                let body = self.expr(next()?, 0)?;
                ItemKind::Energy(Def {
                    name,
                    input,
                    cond,
                    body,
                })
            }
            Rule::model_item => {
                let name = self.ident(next()?);
                let (input, cond) = self.signature(next()?)?;
                let output = self.shape(next()?)?;
                let body = self.expr(next()?, 0)?;
                ItemKind::Model {
                    def: Def {
                        name,
                        input,
                        cond,
                        body,
                    },
                    output,
                }
            }
            Rule::expr_item => ItemKind::Expr(self.expr(next()?, 0)?),
            _ => return Err(internal(span)),
        };
        Ok(Item { kind, span })
    }

    fn signature(&self, pair: Pair<Rule>) -> Result<(Arg, Option<Arg>), Diagnostic> {
        let span = self.span(&pair);
        let mut args = pair.into_inner().filter(|p| p.as_rule() == Rule::arg);
        let input = self.arg(args.next().ok_or_else(|| internal(span))?)?;
        let cond = args.next().map(|a| self.arg(a)).transpose()?;
        Ok((input, cond))
    }

    fn arg(&self, pair: Pair<Rule>) -> Result<Arg, Diagnostic> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().ok_or_else(|| internal(span))?);
        let shape = inner
            .find(|p| p.as_rule() == Rule::shape)
            .ok_or_else(|| internal(span))?;
        Ok(Arg {
            name,
            shape: self.shape(shape)?,
        })
    }

    fn shape(&self, pair: Pair<Rule>) -> Result<ShapeAnn, Diagnostic> {
        let span = self.span(&pair);
        let dims = pair
            .into_inner()
            .filter(|p| p.as_rule() == Rule::expr)
            .map(|p| self.expr(p, 1))
            .collect::<Result<_, _>>()?;
        Ok(ShapeAnn { dims, span })
    }

    fn expr(&self, pair: Pair<Rule>, nest: usize) -> Result<Expr, Diagnostic> {
        self.node(pair, nest).map(|n| n.expr)
    }

    /// Builds one `expr` pair. `nest` counts the brackets and pending prefix
    /// operators around it, so the recursion here stays under `MAX_NESTING`.
    fn node(&self, pair: Pair<Rule>, nest: usize) -> Built {
        let seq: Vec<Pair<Rule>> = pair.into_inner().collect();
        let inner = nest + self.check_sequence(&seq, nest)? + 1;
        PRATT
            .map_primary(|p| self.primary(p, inner))
            .map_prefix(|op, operand| {
                let operand = operand?;
                let op_span = self.span(&op);
                let kind = if op.as_rule() == Rule::neg {
                    UnaryOp::Neg
                } else {
                    UnaryOp::Not
                };
                let span = op_span.to(operand.expr.span);
                make(
                    ExprKind::Unary {
                        op: kind,
                        operand: Box::new(operand.expr),
                    },
                    span,
                    operand.depth + 1,
                    false,
                    op_span,
                )
            })
            .map_infix(|lhs, op, rhs| {
                let (lhs, rhs) = (lhs?, rhs?);
                let op_span = self.span(&op);
                let bop = binary_op(op.as_rule()).ok_or_else(|| internal(op_span))?;
                let comparison = matches!(
                    bop,
                    BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
                );
                if comparison && (lhs.comparison || rhs.comparison) {
                    return Err(errors::chained_comparison(op_span, bop.symbol()));
                }
                let span = lhs.expr.span.to(rhs.expr.span);
                make(
                    ExprKind::Binary {
                        op: bop,
                        lhs: Box::new(lhs.expr),
                        rhs: Box::new(rhs.expr),
                    },
                    span,
                    lhs.depth.max(rhs.depth) + 1,
                    comparison,
                    op_span,
                )
            })
            .map_postfix(|base, op| {
                let base = base?;
                let op_span = self.span(&op);
                let span = base.expr.span.to(op_span);
                let mut depth = base.depth;
                let mut indices = Vec::new();
                for item in op.into_inner().filter(|p| p.as_rule() == Rule::index_item) {
                    let (index, d) = self.index_item(item, inner)?;
                    depth = depth.max(d);
                    indices.push(index);
                }
                make(
                    ExprKind::Index {
                        base: Box::new(base.expr),
                        indices,
                    },
                    span,
                    depth + 1,
                    false,
                    op_span,
                )
            })
            .parse(seq.into_iter())
    }

    /// Checks a flat operator sequence before the Pratt parser recurses over
    /// it; returns how many levels that recursion may add.
    fn check_sequence(&self, seq: &[Pair<Rule>], nest: usize) -> Result<usize, Diagnostic> {
        let (mut nots, mut tight, mut most) = (0usize, 0usize, 0usize);
        let mut prev: Option<&Pair<Rule>> = None;
        for p in seq {
            match p.as_rule() {
                Rule::not_op => {
                    if let Some(prev) = prev.filter(|q| {
                        !matches!(q.as_rule(), Rule::and_op | Rule::or_op | Rule::not_op)
                    }) {
                        return Err(errors::not_after_operator(self.span(p), prev.as_str()));
                    }
                    nots += 1;
                }
                Rule::neg | Rule::pow => tight += 1,
                Rule::and_op | Rule::or_op => (nots, tight) = (0, 0),
                r if binary_op(r).is_some() => tight = 0,
                _ => {}
            }
            // A primary or postfix ends a run of prefix operators.
            prev = binary_op(p.as_rule())
                .is_some()
                .then_some(p)
                .or_else(|| matches!(p.as_rule(), Rule::neg | Rule::not_op).then_some(p));
            most = most.max(nots + tight);
            if nest + most > MAX_NESTING {
                return Err(errors::too_deep(self.span(p)));
            }
        }
        Ok(most)
    }

    fn primary(&self, pair: Pair<Rule>, nest: usize) -> Built {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::number => make(ExprKind::Number(self.number(&pair)?), span, 1, false, span),
            Rule::bad_number => Err(errors::bad_number(span, pair.as_str())),
            Rule::string => make(ExprKind::Str(self.string(&pair)?), span, 1, false, span),
            Rule::name => make(
                ExprKind::Name(pair.as_str().to_string()),
                span,
                1,
                false,
                span,
            ),
            Rule::paren => {
                let inner = pair
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::expr)
                    .ok_or_else(|| internal(span))?;
                let mut node = self.node(inner, nest)?;
                // The parenthesised expression's span covers its parentheses.
                node.expr.span = span;
                node.comparison = false;
                Ok(node)
            }
            Rule::tensor => {
                let mut depth = 0;
                let mut elems = Vec::new();
                for p in pair.into_inner().filter(|p| p.as_rule() == Rule::expr) {
                    let n = self.node(p, nest)?;
                    depth = depth.max(n.depth);
                    elems.push(n.expr);
                }
                make(ExprKind::Tensor(elems), span, depth + 1, false, span)
            }
            Rule::call => self.call(pair, nest),
            Rule::let_expr => self.let_expr(pair, nest),
            Rule::lambda => self.lambda(pair, nest),
            _ => Err(internal(span)),
        }
    }

    /// `let name = value in body`.
    fn let_expr(&self, pair: Pair<Rule>, nest: usize) -> Built {
        let span = self.span(&pair);
        let mut name = None;
        let mut exprs = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => name = Some(self.ident(p)),
                Rule::expr => exprs.push(self.node(p, nest)?),
                _ => {}
            }
        }
        let name = name.ok_or_else(|| internal(span))?;
        let (Some(body), Some(value)) = (exprs.pop(), exprs.pop()) else {
            return Err(internal(span));
        };
        let depth = value.depth.max(body.depth) + 1;
        let at = name.span;
        make(
            ExprKind::Let {
                name,
                value: Box::new(value.expr),
                body: Box::new(body.expr),
            },
            span,
            depth,
            false,
            at,
        )
    }

    /// `(a, b) => body`.
    fn lambda(&self, pair: Pair<Rule>, nest: usize) -> Built {
        let span = self.span(&pair);
        let mut params = Vec::new();
        let mut body = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => params.push(self.ident(p)),
                Rule::expr => body = Some(self.node(p, nest)?),
                _ => {}
            }
        }
        let body = body.ok_or_else(|| internal(span))?;
        let depth = body.depth + 1;
        make(
            ExprKind::Lambda {
                params,
                body: Box::new(body.expr),
            },
            span,
            depth,
            false,
            span,
        )
    }

    fn call(&self, pair: Pair<Rule>, nest: usize) -> Built {
        let span = self.span(&pair);
        let mut callee = None;
        let mut args = Vec::new();
        let mut cond = None;
        let mut after_bar = false;
        let mut depth = 0;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => callee = Some(self.ident(p)),
                Rule::bar => after_bar = true,
                Rule::expr => {
                    let n = self.node(p, nest)?;
                    depth = depth.max(n.depth);
                    if after_bar {
                        cond = Some(Box::new(n.expr));
                    } else {
                        args.push(CallArg::Positional(n.expr));
                    }
                }
                Rule::kwarg => {
                    let mut kw = p.into_inner();
                    let name = self.ident(kw.next().ok_or_else(|| internal(span))?);
                    let value = kw
                        .find(|q| q.as_rule() == Rule::expr)
                        .ok_or_else(|| internal(span))?;
                    let n = self.node(value, nest)?;
                    depth = depth.max(n.depth);
                    args.push(CallArg::Keyword {
                        name,
                        value: n.expr,
                    });
                }
                _ => {}
            }
        }
        let callee = callee.ok_or_else(|| internal(span))?;
        let at = callee.span;
        make(
            ExprKind::Call { callee, args, cond },
            span,
            depth + 1,
            false,
            at,
        )
    }

    fn index_item(&self, pair: Pair<Rule>, nest: usize) -> Result<(IndexItem, u32), Diagnostic> {
        let span = self.span(&pair);
        // The parts before the first colon, between the colons, after the second.
        let mut parts: [Option<Expr>; 3] = [None, None, None];
        let mut colons = 0;
        let mut depth = 0;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::colon => colons += 1,
                Rule::expr => {
                    let n = self.node(p, nest)?;
                    depth = depth.max(n.depth);
                    parts[colons.min(2)] = Some(n.expr);
                }
                _ => {}
            }
        }
        let [start, end, step] = parts;
        let item = match (colons, start) {
            (0, Some(e)) => IndexItem::At(e),
            (0, None) => return Err(internal(span)),
            (_, start) => IndexItem::Range {
                start,
                end,
                step,
                span,
            },
        };
        Ok((item, depth))
    }

    fn number(&self, pair: &Pair<Rule>) -> Result<f64, Diagnostic> {
        let text = pair.as_str();
        let span = self.span(pair);
        let value: f64 = text.parse().map_err(|_| errors::bad_number(span, text))?;
        if value.is_infinite() {
            return Err(errors::number_out_of_range(span, text, false));
        }
        let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
        if value == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            return Err(errors::number_out_of_range(span, text, true));
        }
        Ok(value)
    }

    /// `use a, b as c from "file"` (its keyword already skipped).
    fn use_item<'i>(
        &self,
        parts: impl Iterator<Item = Pair<'i, Rule>>,
        span: Span,
    ) -> Result<Item, Diagnostic> {
        let mut names = Vec::new();
        let mut path = None;
        for p in parts {
            match p.as_rule() {
                Rule::use_name => {
                    let mut inner = p.into_inner().filter(|q| q.as_rule() == Rule::name);
                    let name = self.ident(inner.next().ok_or_else(|| internal(span))?);
                    let alias = inner.next().map(|a| self.ident(a));
                    names.push(UseName { name, alias });
                }
                Rule::string => path = Some((self.string(&p)?, self.span(&p))),
                _ => {}
            }
        }
        let (path, path_span) = path.ok_or_else(|| internal(span))?;
        Ok(Item {
            kind: ItemKind::Use {
                names,
                path,
                path_span,
            },
            span,
        })
    }

    /// The string's contents, unescaped; read from the original source.
    fn string(&self, pair: &Pair<Rule>) -> Result<String, Diagnostic> {
        let span = self.span(pair);
        let raw = &self.source[span.start as usize + 1..span.end as usize - 1];
        let base = span.start as usize + 1;
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let (_, e) = chars.next().unwrap_or((i, '\\'));
            out.push(match e {
                '\\' => '\\',
                '"' => '"',
                'n' => '\n',
                't' => '\t',
                _ => {
                    let esc = Span::new(base + i, base + i + 1 + e.len_utf8());
                    return Err(errors::bad_escape(esc, &format!("\\{e}")));
                }
            });
        }
        Ok(out)
    }

    /// Turns pest's error into one sentence: "expected X, found Y".
    fn translate(&self, e: pest::error::Error<Rule>) -> Diagnostic {
        let pos = match e.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((p, _)) => p,
        };
        let at = (self.start + pos).min(self.end);
        let positives = match &e.variant {
            pest::error::ErrorVariant::ParsingError { positives, .. } => positives.clone(),
            // pest's own stack guard; the pre-scan should make this unreachable.
            pest::error::ErrorVariant::CustomError { .. } => {
                return errors::too_deep(Span::new(at, at + 1));
            }
        };
        super::expect::describe(
            self.source,
            self.clean,
            self.start,
            self.end,
            at,
            &positives,
        )
    }
}

/// `at` is where a too-deep tree is reported: the operator that made it so.
fn make(kind: ExprKind, span: Span, depth: u32, comparison: bool, at: Span) -> Built {
    if depth > MAX_EXPR_DEPTH {
        return Err(errors::tree_too_deep(at));
    }
    Ok(Node {
        expr: Expr { kind, span },
        depth,
        comparison,
    })
}

fn binary_op(rule: Rule) -> Option<BinaryOp> {
    Some(match rule {
        Rule::or_op => BinaryOp::Or,
        Rule::and_op => BinaryOp::And,
        Rule::lt => BinaryOp::Lt,
        Rule::le => BinaryOp::Le,
        Rule::gt => BinaryOp::Gt,
        Rule::ge => BinaryOp::Ge,
        Rule::add => BinaryOp::Add,
        Rule::sub => BinaryOp::Sub,
        Rule::mul => BinaryOp::Mul,
        Rule::div => BinaryOp::Div,
        Rule::matmul => BinaryOp::MatMul,
        Rule::pow => BinaryOp::Pow,
        _ => return None,
    })
}

/// A parse tree that does not match the grammar: a bug here, reported
/// instead of panicking.
fn internal(span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0199",
        span,
        "expected the parser to understand this, found an internal error",
    )
    .with_note("this is a bug in ebm; please report it")
}
