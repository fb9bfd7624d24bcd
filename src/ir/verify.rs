//! The IR verifier: checks the invariants every pass must preserve. Tests run
//! it between passes; a failure is always a compiler bug.

use super::{Graph, Op, op};

pub fn verify(g: &Graph) -> Result<(), String> {
    for id in g.ids() {
        let node = g.node(id);
        for a in &node.args {
            if a.index() >= id.index() {
                return Err(format!("{id}: operand {a} does not precede its user"));
            }
        }
        let arg_shapes: Vec<&[usize]> = node.args.iter().map(|&a| g.shape(a)).collect();
        op::check_shape(&node.op, &arg_shapes, &node.shape).map_err(|e| format!("{id}: {e}"))?;
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
                if t.shape != node.shape || t.data.len() != op::numel(&t.shape) {
                    return Err(format!("{id}: constant {c} has the wrong shape"));
                }
            }
            _ => {}
        }
        if node.shape.len() > op::MAX_RANK {
            return Err(format!("{id}: rank above {}", op::MAX_RANK));
        }
    }
    for o in &g.outputs {
        if o.node.index() >= g.len() {
            return Err(format!("output {} points past the graph", o.name));
        }
    }
    Ok(())
}
