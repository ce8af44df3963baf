//! The rest of the window model after the split-off first layer, evaluated in place when it is a
//! chain of dense layers and activations (what `models/train/export.py` writes: `Sigmoid`, or
//! `Relu, Gemm, Sigmoid`). tract allocates and frees its tensors on every run, which under
//! redis-benchmark (~25k windows/s) was a fifth of the scorer's time for a tail that is a dot
//! product and an exp. Any other op keeps the tail in tract. The split, tail included, is checked
//! against the whole graph at load (`Model::check_split`), so a mistake here falls back to the
//! dense graph rather than scoring wrongly.

use tract_onnx::pb::{GraphProto, NodeProto};

use super::sparse_head::{attr, floats};

/// Widths up to this stay on the stack.
const STACK_WIDTH: usize = 64;

enum Op {
    Relu,
    Sigmoid,
    /// `y = x · W + b`, `w` row-major `[inputs][outputs]`.
    Dense { w: Vec<f32>, b: Vec<f32>, outputs: usize },
    /// `y = x + c` (c of one value or one per element).
    Add(Vec<f32>),
}

pub struct NativeTail {
    ops: Vec<Op>,
}

impl NativeTail {
    /// Follows the graph from `from` (width `width`) to its single output, or says which node
    /// it cannot evaluate.
    pub fn from_chain(g: &GraphProto, from: &str, width: usize) -> Result<Self, String> {
        let [output] = &g.output[..] else {
            return Err(format!("{} graph outputs, not one", g.output.len()));
        };
        let init = |name: &str| g.initializer.iter().find(|t| t.name == name);
        let mut ops = Vec::new();
        let (mut cur, mut width) = (from.to_string(), width);
        while cur != output.name {
            let users: Vec<&NodeProto> =
                g.node.iter().filter(|n| n.input.contains(&cur)).collect();
            let [node] = users[..] else {
                return Err(format!("`{cur}` feeds {} nodes, not one", users.len()));
            };
            let [out] = &node.output[..] else {
                return Err(format!("`{}` has {} outputs", node.op_type, node.output.len()));
            };
            let constant = |i: usize| -> Result<(Vec<f32>, Vec<usize>), String> {
                let name = node.input.get(i).ok_or("missing operand")?;
                let t = init(name).ok_or_else(|| format!("`{name}` is not a constant"))?;
                Ok((floats(t)?, t.dims.iter().map(|&d| d as usize).collect()))
            };
            let op = match node.op_type.as_str() {
                "Relu" => Op::Relu,
                "Sigmoid" => Op::Sigmoid,
                "Add" => {
                    let other = usize::from(node.input.first() == Some(&cur));
                    let (c, _) = constant(other)?;
                    if c.len() != 1 && c.len() != width {
                        return Err(format!("Add of {} values to {width}", c.len()));
                    }
                    Op::Add(c)
                }
                "Gemm" | "MatMul" => {
                    if node.input.first() != Some(&cur) {
                        return Err(format!("`{cur}` is not {}'s first operand", node.op_type));
                    }
                    let trans_b = if node.op_type == "Gemm" {
                        let f = |name: &str| attr(node, name).map_or(1.0, |a| a.f);
                        let i = |name: &str| attr(node, name).map_or(0, |a| a.i);
                        if f("alpha") != 1.0 || f("beta") != 1.0 || i("transA") != 0 {
                            return Err("Gemm with alpha/beta other than 1 or transA".into());
                        }
                        i("transB") != 0
                    } else {
                        false
                    };
                    let (raw, dims) = constant(1)?;
                    let outputs = match (&dims[..], trans_b) {
                        (&[i, o], false) | (&[o, i], true) if i == width => o,
                        _ => return Err(format!("weights {dims:?} for an input of {width}")),
                    };
                    let mut w = vec![0.0f32; width * outputs];
                    for i in 0..width {
                        for o in 0..outputs {
                            w[i * outputs + o] =
                                if trans_b { raw[o * width + i] } else { raw[i * outputs + o] };
                        }
                    }
                    let b = match node.input.get(2).filter(|n| !n.is_empty()) {
                        None => vec![0.0; outputs],
                        Some(_) => match constant(2)?.0 {
                            c if c.len() == 1 => vec![c[0]; outputs],
                            c if c.len() == outputs => c,
                            c => return Err(format!("bias of {} for {outputs} outputs", c.len())),
                        },
                    };
                    width = outputs;
                    Op::Dense { w, b, outputs }
                }
                other => return Err(format!("`{other}` is not evaluated natively")),
            };
            ops.push(op);
            cur = out.clone();
        }
        if width != 1 {
            return Err(format!("the output has {width} values, not one"));
        }
        Ok(Self { ops })
    }

    /// Runs the chain on the first layer's output `h`; returns the single output value.
    pub fn run(&self, h: &[f32]) -> f32 {
        let mut a = [0.0f32; STACK_WIDTH];
        let mut b = [0.0f32; STACK_WIDTH];
        let (mut heap_a, mut heap_b) = (Vec::new(), Vec::new());
        let widest = self
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Dense { outputs, .. } => Some(*outputs),
                _ => None,
            })
            .chain([h.len()])
            .max()
            .unwrap_or(0);
        let (mut x, mut y): (&mut [f32], &mut [f32]) = if widest <= STACK_WIDTH {
            (&mut a, &mut b)
        } else {
            heap_a.resize(widest, 0.0);
            heap_b.resize(widest, 0.0);
            (&mut heap_a, &mut heap_b)
        };
        let mut n = h.len();
        x[..n].copy_from_slice(h);
        for op in &self.ops {
            match op {
                Op::Relu => x[..n].iter_mut().for_each(|v| *v = v.max(0.0)),
                Op::Sigmoid => x[..n].iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
                Op::Add(c) if c.len() == 1 => x[..n].iter_mut().for_each(|v| *v += c[0]),
                Op::Add(c) => x[..n].iter_mut().zip(c).for_each(|(v, c)| *v += c),
                Op::Dense { w, b, outputs } => {
                    y[..*outputs].copy_from_slice(b);
                    for (i, &xi) in x[..n].iter().enumerate() {
                        let row = &w[i * outputs..(i + 1) * outputs];
                        y[..*outputs].iter_mut().zip(row).for_each(|(acc, w)| *acc += xi * w);
                    }
                    n = *outputs;
                    std::mem::swap(&mut x, &mut y);
                }
            }
        }
        x[0]
    }
}
