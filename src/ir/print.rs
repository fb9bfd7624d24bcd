//! A stable, line-per-node text form of a graph (used by `ebm dump` and the
//! golden tests). Only nodes reachable from the outputs are printed, and they
//! are renumbered densely so that unrelated changes do not shift every line.

use std::fmt::Write as _;

use super::{BatchReduce, BodyId, Graph, InputKind, Op};

pub fn print(g: &Graph) -> String {
    let mut out = String::new();
    print_to(&mut out, g, "");
    out
}

/// Prints `g` with every line indented by `pad`; the bodies of its live
/// scans follow its outputs, numbered in order of first use.
fn print_to(out: &mut String, g: &Graph, pad: &str) {
    let live = g.live(&[]);
    let mut number = vec![usize::MAX; g.len()];
    let mut bodies: Vec<BodyId> = Vec::new();
    let _ = writeln!(out, "{pad}graph {} {{", g.name);
    for (i, input) in g.inputs().iter().enumerate() {
        let kind = match input.kind {
            InputKind::Sample => "sample",
            InputKind::Shared => "shared",
        };
        let _ = writeln!(out, "{pad}  in{i} {}: {:?} {kind}", input.name, input.shape);
    }
    let mut next = 0;
    for id in g.ids() {
        if !live[id.index()] {
            continue;
        }
        number[id.index()] = next;
        let node = g.node(id);
        let args: Vec<String> = node
            .args
            .iter()
            .map(|a| format!("%{}", number[a.index()]))
            .collect();
        let op = match node.op {
            Op::Input(i) => format!("input {}", g.input(i).name),
            Op::Const(c) => format!("const {}", summarize(&g.constant(c).data)),
            Op::Scan {
                body,
                seqs,
                reverse,
            } => {
                let k = bodies.iter().position(|&b| b == body).unwrap_or_else(|| {
                    bodies.push(body);
                    bodies.len() - 1
                });
                let dir = if reverse { " reverse" } else { "" };
                format!("scan{dir} b{k} seqs={seqs}")
            }
            other => other.name(),
        };
        let sep = if args.is_empty() { "" } else { " " };
        let _ = writeln!(
            out,
            "{pad}  %{next} = {op}{sep}{} : {:?}",
            args.join(", "),
            node.shape
        );
        next += 1;
    }
    for o in &g.outputs {
        let reduce = match o.reduce {
            BatchReduce::PerSample => "",
            BatchReduce::Sum => " (batch sum)",
        };
        let _ = writeln!(
            out,
            "{pad}  out {} = %{}{reduce}",
            o.name,
            number[o.node.index()]
        );
    }
    let inner = format!("{pad}    ");
    for (k, &b) in bodies.iter().enumerate() {
        let _ = writeln!(out, "{pad}  body b{k}:");
        print_to(out, g.body(b), &inner);
    }
    let _ = writeln!(out, "{pad}}}");
}

fn summarize(data: &[f64]) -> String {
    let shown: Vec<String> = data.iter().take(4).map(|v| format!("{v}")).collect();
    let more = if data.len() > 4 { ", ..." } else { "" };
    format!("[{}{more}]", shown.join(", "))
}
