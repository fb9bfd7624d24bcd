//! A stable, line-per-node text form of a graph (used by `ebm dump` and the
//! golden tests). Only nodes reachable from the outputs are printed, and they
//! are renumbered densely so that unrelated changes do not shift every line.

use std::fmt::Write as _;

use super::{BatchReduce, Graph, InputKind, Op};

pub fn print(g: &Graph) -> String {
    let live = g.live(&[]);
    let mut number = vec![usize::MAX; g.len()];
    let mut out = String::new();
    let _ = writeln!(out, "graph {} {{", g.name);
    for (i, input) in g.inputs().iter().enumerate() {
        let kind = match input.kind {
            InputKind::Sample => "sample",
            InputKind::Shared => "shared",
        };
        let _ = writeln!(out, "  in{i} {}: {:?} {kind}", input.name, input.shape);
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
            other => other.name(),
        };
        let sep = if args.is_empty() { "" } else { " " };
        let _ = writeln!(
            out,
            "  %{next} = {op}{sep}{} : {:?}",
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
            "  out {} = %{}{reduce}",
            o.name,
            number[o.node.index()]
        );
    }
    out.push_str("}\n");
    out
}

fn summarize(data: &[f64]) -> String {
    let shown: Vec<String> = data.iter().take(4).map(|v| format!("{v}")).collect();
    let more = if data.len() > 4 { ", ..." } else { "" };
    format!("[{}{more}]", shown.join(", "))
}
