//! The IR verifier: checks the invariants every pass must preserve. Tests run
//! it between passes; every backend runs it before compiling and the decoder
//! (`ir::serial`) before handing out a loaded graph. It never panics, however
//! malformed the graph: each index is checked before it is followed.

use std::collections::HashSet;

use super::{Graph, Op, op};

/// Rank within `MAX_RANK` and an element count that fits a `usize`.
fn check_dims(shape: &[usize]) -> Result<(), String> {
    if shape.len() > op::MAX_RANK {
        return Err(format!(
            "shape {shape:?} has rank {}, above {}",
            shape.len(),
            op::MAX_RANK
        ));
    }
    if shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .is_none()
    {
        return Err(format!("shape {shape:?} has too many elements"));
    }
    Ok(())
}

/// How deeply scan bodies may nest (a body holding a scan holding ...):
/// the verifier, the printer and every pass recurse once per level.
pub const MAX_BODY_DEPTH: usize = 16;

pub fn verify(g: &Graph) -> Result<(), String> {
    verify_at(g, 0)
}

fn verify_at(g: &Graph, depth: usize) -> Result<(), String> {
    if depth > MAX_BODY_DEPTH {
        return Err(format!(
            "scan bodies nested more than {MAX_BODY_DEPTH} deep"
        ));
    }
    for (i, b) in g.bodies().iter().enumerate() {
        verify_at(b, depth + 1).map_err(|e| format!("scan body b{i} ({}): {e}", b.name))?;
    }
    let mut names = HashSet::new();
    for (i, decl) in g.inputs().iter().enumerate() {
        check_dims(&decl.shape).map_err(|e| format!("input in{i} {}: {e}", decl.name))?;
        if !names.insert((&decl.name, decl.kind)) {
            return Err(format!("input {} is declared twice", decl.name));
        }
    }
    for (i, t) in g.consts().iter().enumerate() {
        check_dims(&t.shape).map_err(|e| format!("constant c{i}: {e}"))?;
        if t.data.len() != op::numel(&t.shape) {
            return Err(format!(
                "constant c{i} holds {} values for shape {:?}",
                t.data.len(),
                t.shape
            ));
        }
    }
    for id in g.ids() {
        let node = g.node(id);
        for a in &node.args {
            if a.index() >= id.index() {
                return Err(format!("{id}: operand {a} does not precede its user"));
            }
        }
        check_dims(&node.shape).map_err(|e| format!("{id}: {e}"))?;
        let arg_shapes: Vec<&[usize]> = node.args.iter().map(|&a| g.shape(a)).collect();
        op::check_shape(&node.op, &arg_shapes, &node.shape)
            .and_then(|()| super::scan::check_body(g, &node.op, &arg_shapes))
            .map_err(|e| format!("{id}: {e}"))?;
        match node.op {
            Op::Input(i) => {
                let decl = g
                    .inputs()
                    .get(i.index())
                    .ok_or_else(|| format!("{id}: unknown input {i}"))?;
                if decl.shape != node.shape {
                    return Err(format!("{id}: input {} has the wrong shape", decl.name));
                }
            }
            Op::Const(c) => {
                let t = g
                    .consts()
                    .get(c.index())
                    .ok_or_else(|| format!("{id}: unknown constant {c}"))?;
                if t.shape != node.shape {
                    return Err(format!("{id}: constant {c} has the wrong shape"));
                }
            }
            _ => {}
        }
    }
    let mut names = HashSet::new();
    for o in &g.outputs {
        if o.node.index() >= g.len() {
            return Err(format!("output {} points past the graph", o.name));
        }
        if !names.insert(&o.name) {
            return Err(format!("output {} is defined twice", o.name));
        }
    }
    Ok(())
}
