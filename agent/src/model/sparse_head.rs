//! The window model's first layer, computed on a window's non-zero features only.
//!
//! A window touches at most 192 of the [`DIM`] feature buckets, so a dense first layer spends
//! nearly all its time on zeros, after writing, copying and packing 16 KB per window: under
//! redis-benchmark (~500k syscalls/s, 16k windows/s) that was most of vigil's CPU. At load the
//! graph's first node — a `Gemm` (alpha = beta = 1, A not transposed) or a `MatMul` of the
//! input by a constant matrix — is split off and done here as a gather over the touched rows;
//! the rest of the graph (bias-free heads leave any `Add` to it, then activations and later
//! layers) runs from that node's output, in place when it is a plain chain (`native_tail.rs`),
//! in tract otherwise. [`super::Model`] checks the split against the whole
//! graph on sample windows before using it, and falls back to the dense graph if it differs.

use std::sync::Arc;

use tract_onnx::pb::{
    AttributeProto, ModelProto, NodeProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, tensor_shape_proto, type_proto,
};
use tract_onnx::prelude::*;

use super::{DIM, native_tail::NativeTail};

const FLOAT: i32 = 1;

pub struct SparseHead {
    /// Row `k` holds feature `k`'s weights into the `hidden` outputs.
    rows: Vec<f32>,
    bias: Vec<f32>,
    hidden: usize,
    tail: Tail,
}

enum Tail {
    Native(NativeTail),
    Tract(Arc<TypedRunnableModel>),
}

impl SparseHead {
    /// Splits `proto`'s first layer off, or says why it cannot.
    pub fn split(proto: &ModelProto) -> Result<Self, String> {
        let graph = proto.graph.as_ref().ok_or("no graph")?;
        let inits: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let input = graph
            .input
            .iter()
            .find(|i| !inits.contains(&i.name.as_str()))
            .ok_or("no graph input")?
            .name
            .clone();
        let users: Vec<&NodeProto> = graph.node.iter().filter(|n| n.input.contains(&input)).collect();
        let [head] = users[..] else {
            return Err(format!("input `{input}` feeds {} nodes, not one", users.len()));
        };
        if head.input.first() != Some(&input) || head.output.len() != 1 {
            return Err(format!("`{}` does not take the input as its first operand", head.op_type));
        }
        let init = |name: &str| graph.initializer.iter().find(|t| t.name == name);
        let weights_name = head.input.get(1).ok_or("head without a weight operand")?;
        let weights = init(weights_name).ok_or_else(|| format!("`{weights_name}` is not a constant"))?;
        let (trans_b, bias_name) = match head.op_type.as_str() {
            "MatMul" => (false, None),
            "Gemm" => {
                let f = |name: &str, default: f32| attr(head, name).map_or(default, |a| a.f);
                let i = |name: &str| attr(head, name).map_or(0, |a| a.i);
                if f("alpha", 1.0) != 1.0 || f("beta", 1.0) != 1.0 || i("transA") != 0 {
                    return Err("Gemm with alpha/beta other than 1 or a transposed input".into());
                }
                (i("transB") != 0, head.input.get(2).filter(|n| !n.is_empty()))
            }
            other => return Err(format!("first node is {other}, not Gemm or MatMul")),
        };
        let dims: Vec<usize> = weights.dims.iter().map(|&d| d as usize).collect();
        let hidden = match (&dims[..], trans_b) {
            (&[d, h], false) | (&[h, d], true) if d == DIM && h > 0 => h,
            _ => return Err(format!("weights of shape {dims:?}, expected [{DIM}, H]")),
        };
        let w = floats(weights)?;
        let mut rows = vec![0.0f32; DIM * hidden];
        for k in 0..DIM {
            for j in 0..hidden {
                rows[k * hidden + j] = if trans_b { w[j * DIM + k] } else { w[k * hidden + j] };
            }
        }
        let bias = match bias_name {
            None => vec![0.0; hidden],
            Some(name) => {
                let c = floats(init(name).ok_or_else(|| format!("bias `{name}` is not a constant"))?)?;
                match c.len() {
                    1 => vec![c[0]; hidden],
                    n if n == hidden => c,
                    n => return Err(format!("bias of {n} values for {hidden} outputs")),
                }
            }
        };

        // The tail: the same graph fed from the head's output.
        let head_out = head.output[0].clone();
        let mut tail = proto.clone();
        let g = tail.graph.as_mut().expect("cloned graph");
        g.node.retain(|n| n.output.first() != Some(&head_out));
        let used = |name: &str| g.node.iter().any(|n| n.input.iter().any(|i| i == name));
        let dropped: Vec<String> = [Some(weights_name), bias_name]
            .into_iter()
            .flatten()
            .filter(|n| !used(n))
            .cloned()
            .collect();
        g.initializer.retain(|t| !dropped.contains(&t.name));
        g.input.retain(|i| i.name != input && !dropped.contains(&i.name));
        g.input.insert(0, value_info(&head_out, &[1, hidden as i64]));
        match NativeTail::from_chain(g, &head_out, hidden) {
            Ok(native) => return Ok(Self { rows, bias, hidden, tail: Tail::Native(native) }),
            Err(why) => tracing::debug!("model tail left to tract: {why}"),
        }
        let tail = tract_onnx::onnx()
            .model_for_proto_model(&tail)
            .and_then(|m| m.with_input_fact(0, f32::fact([1, hidden]).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("the rest of the graph does not load on its own: {e:#}"))?;
        Ok(Self { rows, bias, hidden, tail: Tail::Tract(tail) })
    }

    pub fn native_tail(&self) -> bool {
        matches!(self.tail, Tail::Native(_))
    }

    /// The model's output for features that are zero outside `touched`.
    pub fn score(&self, touched: &[u16], features: &[f32]) -> TractResult<f32> {
        let mut stack = [0.0f32; 64];
        let mut heap = Vec::new();
        let h: &mut [f32] = if self.hidden <= stack.len() {
            &mut stack[..self.hidden]
        } else {
            heap.resize(self.hidden, 0.0);
            &mut heap
        };
        h.copy_from_slice(&self.bias);
        for &k in touched {
            let k = usize::from(k);
            let x = features[k];
            let row = &self.rows[k * self.hidden..(k + 1) * self.hidden];
            for (acc, w) in h.iter_mut().zip(row) {
                *acc += x * w;
            }
        }
        let tail = match &self.tail {
            Tail::Native(t) => return Ok(t.run(h)),
            Tail::Tract(t) => t,
        };
        let input = Tensor::from_shape(&[1, self.hidden], h)?;
        let out = tail.run(tvec!(input.into()))?;
        let view = out[0].to_plain_array_view::<f32>()?;
        view.iter().next().copied().ok_or_else(|| anyhow::anyhow!("empty output"))
    }
}

pub(super) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// A float tensor's values, from `float_data` or little-endian `raw_data`.
pub(super) fn floats(t: &TensorProto) -> Result<Vec<f32>, String> {
    if t.data_type != FLOAT {
        return Err(format!("`{}` is not float32", t.name));
    }
    if !t.float_data.is_empty() {
        return Ok(t.float_data.clone());
    }
    if !t.raw_data.len().is_multiple_of(4) {
        return Err(format!("`{}`: raw data of {} bytes", t.name, t.raw_data.len()));
    }
    Ok(t.raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// A float tensor input or output of the given shape.
pub(super) fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(*d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
