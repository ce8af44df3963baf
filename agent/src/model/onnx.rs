//! Loading `vigil.onnx` with tract: its metadata must match the contract this build implements,
//! and the graph is optimised once for the fixed input shape `[1, DIM]`.

use std::{collections::HashMap, path::{Path, PathBuf}, sync::Arc};

use thiserror::Error;
use tract_onnx::prelude::*;

use super::{
    DIM, STRIDE, WINDOW, process_score::Verdict, sparse_head::SparseHead, window_features,
    window_features_on_zeroed,
};
use crate::sequence::{Token, token::VOCAB_VERSION};

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("model {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model {path}: not a loadable ONNX model: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("model {path}: metadata `{key}` is {found}, this vigil needs {expected}")]
    Metadata {
        path: PathBuf,
        key: &'static str,
        found: String,
        expected: String,
    },
    #[error("model {path}: running it failed: {reason}")]
    Run { path: PathBuf, reason: String },
}

/// Process-score thresholds from the model's metadata, increasing.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Thresholds {
    pub alert: f32,
    pub quarantine: f32,
    pub kill: f32,
}

impl Thresholds {
    /// A process is over a threshold only when its score is strictly greater (FEATURES.md): the
    /// trainer sets each threshold at or above the highest benign score it calibrated on.
    pub fn verdict(&self, score: f32) -> Verdict {
        if score > self.kill {
            Verdict::Kill
        } else if score > self.quarantine {
            Verdict::Quarantine
        } else if score > self.alert {
            Verdict::Alert
        } else {
            Verdict::Normal
        }
    }
}

pub struct Model {
    path: PathBuf,
    plan: Arc<TypedRunnableModel>,
    /// The first layer done on the touched features only, when the graph allows it and the
    /// split reproduces the whole graph (see `sparse_head.rs`).
    sparse: Option<SparseHead>,
    pub thresholds: Thresholds,
    pub trained_on: String,
    /// The token vocabulary the model was trained on (`vigil.vocab_version`).
    vocab: u32,
}

/// Contract values the file must carry exactly (the vocabulary is checked on its own: two are
/// accepted).
fn required() -> [(&'static str, String); 6] {
    [
        ("vigil.contract", "1".into()),
        ("vigil.features", "hashed-ngram-v1".into()),
        ("vigil.dim", DIM.to_string()),
        ("vigil.window", WINDOW.to_string()),
        ("vigil.stride", STRIDE.to_string()),
        ("vigil.aggregate_k", "3".into()),
    ]
}

impl Model {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.into(), source })?;
        Self::from_bytes(path, &bytes)
    }

    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, ModelError> {
        let parse = |reason: String| ModelError::Parse { path: path.into(), reason };
        let onnx = tract_onnx::onnx();
        let proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(|e| parse(format!("{e:#}")))?;
        let meta: HashMap<&str, &str> =
            proto.metadata_props.iter().map(|p| (p.key.as_str(), p.value.as_str())).collect();
        let mismatch = |key: &'static str, found: Option<&str>, expected: String| ModelError::Metadata {
            path: path.into(),
            key,
            found: found.map_or("missing".into(), |v| format!("{v:?}")),
            expected,
        };
        for (key, expected) in required() {
            match meta.get(key) {
                Some(v) if *v == expected => {}
                other => return Err(mismatch(key, other.copied(), format!("{expected:?}"))),
            }
        }
        // Vocabulary 1 is vocabulary 2 without classes: such a model is fed projected tokens.
        let vocab = match meta.get("vigil.vocab_version").copied() {
            Some("1") => 1,
            Some(v) if v == VOCAB_VERSION.to_string() => VOCAB_VERSION,
            other => {
                return Err(mismatch(
                    "vigil.vocab_version",
                    other,
                    format!("\"1\" or \"{VOCAB_VERSION}\""),
                ));
            }
        };
        let threshold = |key: &'static str| -> Result<f32, ModelError> {
            let v = meta.get(key).copied();
            v.and_then(|s| s.parse::<f32>().ok())
                .filter(|x| x.is_finite())
                .ok_or_else(|| mismatch(key, v, "a finite number".into()))
        };
        let thresholds = Thresholds {
            alert: threshold("vigil.threshold.alert")?,
            quarantine: threshold("vigil.threshold.quarantine")?,
            kill: threshold("vigil.threshold.kill")?,
        };
        if !(thresholds.alert <= thresholds.quarantine && thresholds.quarantine <= thresholds.kill) {
            return Err(mismatch(
                "vigil.threshold.*",
                Some(&format!("{thresholds:?}")),
                "alert <= quarantine <= kill".into(),
            ));
        }
        let plan = onnx
            .model_for_proto_model(&proto)
            .and_then(|m| m.with_input_fact(0, f32::fact([1, DIM]).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| parse(format!("{e:#}")))?;
        let mut model = Self {
            path: path.into(),
            plan,
            sparse: None,
            thresholds,
            trained_on: meta.get("vigil.trained_on").unwrap_or(&"").to_string(),
            vocab,
        };
        // A model that loads but cannot run is as useless as one that does not load.
        model.score(&vec![0.0; DIM])?;
        match SparseHead::split(&proto) {
            Ok(head) => match model.check_split(&head) {
                Ok(()) => model.sparse = Some(head),
                Err(why) => tracing::warn!(path = %path.display(), "model scored densely: the split first layer {why}"),
            },
            Err(why) => tracing::info!(path = %path.display(), "model scored densely: {why}"),
        }
        Ok(model)
    }

    /// The split must give the whole graph's scores: on the empty window and on windows from a
    /// fixed pseudo-random stream of tokens, all within 1e-5.
    fn check_split(&self, head: &SparseHead) -> Result<(), String> {
        let mut next = super::token_stream(400);
        let mut dense = vec![0.0f32; DIM];
        for len in [0usize, 1, 7, 64, 64, 64, 64, 64, 33, 64] {
            let window: Vec<Token> = (0..len).map(|_| next()).collect();
            window_features(&window, &mut dense);
            let touched: Vec<u16> = (0..DIM).filter(|&k| dense[k] != 0.0).map(|k| k as u16).collect();
            let want = self.score(&dense).map_err(|e| e.to_string())?;
            let got = head.score(&touched, &dense).map_err(|e| format!("fails to run: {e:#}"))?;
            // Written so that a NaN on either side counts as a difference.
            let close = (want - got).abs() <= 1e-5;
            if !close {
                return Err(format!("differs from the whole graph ({got} vs {want})"));
            }
        }
        Ok(())
    }

    /// Scores one window: features, then the split first layer (or the dense graph). `scratch`
    /// is all zero on entry and on return, [`DIM`] long.
    pub fn score_window(&self, window: &[Token], scratch: &mut [f32]) -> Result<f32, ModelError> {
        let touched = window_features_on_zeroed(window, scratch);
        let scored = match &self.sparse {
            Some(head) => head.score(touched.buckets(), scratch).map_err(|e| ModelError::Run {
                path: self.path.clone(),
                reason: format!("{e:#}"),
            }),
            None => self.score(scratch),
        };
        for &k in touched.buckets() {
            scratch[usize::from(k)] = 0.0;
        }
        let s = scored?;
        if !s.is_finite() {
            return Err(ModelError::Run { path: self.path.clone(), reason: format!("non-finite score {s}") });
        }
        Ok(s)
    }

    /// The token vocabulary the model was trained on.
    pub fn vocab_version(&self) -> u32 {
        self.vocab
    }

    /// Tokens as the model knows them: unchanged for a vocabulary 2 model, without their
    /// classes for a vocabulary 1 one.
    pub fn project(&self, tokens: &mut [Token]) {
        if self.vocab != VOCAB_VERSION {
            for t in tokens {
                *t = crate::sequence::token::project(*t, self.vocab);
            }
        }
    }

    /// Whether windows take the split first layer.
    pub fn is_sparse(&self) -> bool {
        self.sparse.is_some()
    }

    /// Whether the layers after the split one run without tract (see `native_tail.rs`).
    pub fn has_native_tail(&self) -> bool {
        self.sparse.as_ref().is_some_and(SparseHead::native_tail)
    }

    /// Scores one window's features (length [`DIM`]).
    pub fn score(&self, features: &[f32]) -> Result<f32, ModelError> {
        let run = |reason: String| ModelError::Run { path: self.path.clone(), reason };
        let input = Tensor::from_shape(&[1, DIM], features).map_err(|e| run(format!("{e:#}")))?;
        let out = self.plan.run(tvec!(input.into())).map_err(|e| run(format!("{e:#}")))?;
        let view = out[0].to_plain_array_view::<f32>().map_err(|e| run(format!("{e:#}")))?;
        let s = view.iter().next().copied().ok_or_else(|| run("empty output".into()))?;
        if !s.is_finite() {
            return Err(run(format!("non-finite score {s}")));
        }
        Ok(s)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Small ONNX models built in Rust, so the loader's checks are tested without a trainer.
#[cfg(test)]
pub(crate) mod test_models {
    use prost::Message as _;
    use tract_onnx::pb::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    };

    use super::DIM;
    use crate::model::sparse_head::value_info;

    const FLOAT: i32 = 1;

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn floats(name: &str, dims: &[i64], values: Vec<f32>) -> TensorProto {
        TensorProto { name: name.into(), dims: dims.to_vec(), data_type: FLOAT, float_data: values, ..Default::default() }
    }

    /// `sigmoid(features · w + b)` with the contract's metadata, overridden by `meta`.
    pub fn logistic(w: &[f32], b: f32, meta: &[(&str, &str)]) -> Vec<u8> {
        assert_eq!(w.len(), DIM);
        let nodes = vec![node("MatMul", &["features", "w"], "z"), node("Add", &["z", "b"], "zb"), node("Sigmoid", &["zb"], "score")];
        let inits = vec![floats("w", &[DIM as i64, 1], w.to_vec()), floats("b", &[1], vec![b])];
        model(nodes, inits, meta)
    }

    /// `features -> Gemm(W1ᵀ, b1) -> Relu -> Gemm(W2, b2) -> act -> score`, `hidden` wide, with
    /// weights from a fixed formula (`act`: "Sigmoid", or another op to keep the tail in tract).
    pub fn mlp(hidden: usize, act: &str) -> Vec<u8> {
        let h = hidden as i64;
        let w1: Vec<f32> = (0..DIM * hidden).map(|i| ((i * 7919) % 17) as f32 / 17.0 - 0.5).collect();
        let b1: Vec<f32> = (0..hidden).map(|j| j as f32 / hidden as f32 - 0.5).collect();
        let w2: Vec<f32> = (0..hidden).map(|j| ((j * 31) % 7) as f32 / 7.0 - 0.4).collect();
        let mut dense1 = node("Gemm", &["features", "W1", "b1"], "h1");
        dense1.attribute.push(tract_onnx::pb::AttributeProto { name: "transB".into(), i: 1, r#type: 2, ..Default::default() });
        let nodes = vec![
            dense1,
            node("Relu", &["h1"], "r1"),
            node("Gemm", &["r1", "W2", "b2"], "logit"),
            node(act, &["logit"], "score"),
        ];
        let inits = vec![
            floats("W1", &[h, DIM as i64], w1),
            floats("b1", &[h], b1),
            floats("W2", &[h, 1], w2),
            floats("b2", &[1], vec![0.1]),
        ];
        model(nodes, inits, &[])
    }

    fn model(nodes: Vec<NodeProto>, initializer: Vec<TensorProto>, meta: &[(&str, &str)]) -> Vec<u8> {
        let mut props: Vec<(String, String)> = [
            ("vigil.contract", "1"),
            ("vigil.vocab_version", "2"),
            ("vigil.features", "hashed-ngram-v1"),
            ("vigil.dim", "4096"),
            ("vigil.window", "64"),
            ("vigil.stride", "32"),
            ("vigil.aggregate_k", "3"),
            ("vigil.threshold.alert", "0.5"),
            ("vigil.threshold.quarantine", "0.8"),
            ("vigil.threshold.kill", "0.95"),
            ("vigil.trained_on", "unit test"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in meta {
            props.retain(|(pk, _)| pk != k);
            if !v.is_empty() {
                props.push((k.to_string(), v.to_string()));
            }
        }
        let graph = GraphProto {
            name: "test".into(),
            node: nodes,
            initializer,
            input: vec![value_info("features", &[1, DIM as i64])],
            output: vec![value_info("score", &[1, 1])],
            ..Default::default()
        };
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
            graph: Some(graph),
            metadata_props: props.into_iter().map(|(key, value)| StringStringEntryProto { key, value }).collect(),
            ..Default::default()
        }
        .encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{test_models::logistic, *};
    use crate::model::{score_sequence, window_features};

    fn weights() -> Vec<f32> {
        (0..DIM).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect()
    }

    #[test]
    fn scores_match_the_closed_form() {
        let w = weights();
        let m = Model::from_bytes(Path::new("t.onnx"), &logistic(&w, 0.25, &[])).expect("load");
        assert!(m.is_sparse() && m.has_native_tail(), "MatMul head splits off; Add and Sigmoid run in place");
        assert_eq!(m.thresholds, Thresholds { alert: 0.5, quarantine: 0.8, kill: 0.95 });
        let tokens: Vec<u16> = (0..150).map(|i| (i * 37 % 300) as u16).collect();
        let (windows, process) = score_sequence(&m, &tokens).expect("score");
        assert_eq!(windows.len(), 4, "0, 32, 64 and the tail at 86");
        let mut f = vec![0.0; DIM];
        window_features(&tokens[..64], &mut f);
        let z: f32 = f.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() + 0.25;
        assert!((windows[0] - 1.0 / (1.0 + (-z).exp())).abs() < 1e-5);
        assert!(process >= windows.iter().copied().fold(f32::MAX, f32::min));
    }

    #[test]
    fn an_mlp_splits_and_its_tail_runs_in_place_or_in_tract_like_the_whole_graph() {
        let mut scratch = vec![0.0; DIM];
        let mut dense = vec![0.0; DIM];
        // 32 wide stays on the stack in the native tail, 80 does not; Tanh is left to tract.
        for (hidden, act, native) in [(32, "Sigmoid", true), (80, "Sigmoid", true), (32, "Tanh", false)] {
            let m = Model::from_bytes(Path::new("mlp.onnx"), &test_models::mlp(hidden, act)).expect("load");
            assert!(m.is_sparse(), "{hidden} {act}");
            assert_eq!(m.has_native_tail(), native, "{hidden} {act}");
            let mut spread = (f32::MAX, f32::MIN);
            for seed in 0..20u16 {
                let window: Vec<u16> = (0..64).map(|i| (i * 13 + seed * 11) % 330).collect();
                let (got, want) = split_and_dense(&m, &window, &mut scratch, &mut dense);
                assert!((got - want).abs() < 1e-5, "{hidden} {act}: {got} vs {want}");
                spread = (spread.0.min(got), spread.1.max(got));
            }
            // Not a constant: the hidden layer and its Relu matter to the score.
            assert!(spread.1 - spread.0 > 1e-3, "{hidden} {act}: scores {spread:?}");
        }
    }

    /// A window's score through the split first layer, and through the whole graph.
    fn split_and_dense(m: &Model, window: &[u16], scratch: &mut [f32], dense: &mut [f32]) -> (f32, f32) {
        let got = m.score_window(window, scratch).expect("split");
        window_features(window, dense);
        (got, m.score(dense).expect("dense"))
    }

    #[test]
    fn the_split_first_layer_scores_like_the_whole_graph_and_leaves_scratch_zeroed() {
        let w = weights();
        let m = Model::from_bytes(Path::new("t.onnx"), &logistic(&w, -0.4, &[])).expect("load");
        let mut scratch = vec![0.0; DIM];
        let mut dense = vec![0.0; DIM];
        for seed in 0..20u16 {
            let window: Vec<u16> = (0..64).map(|i| (i * 31 + seed * 7) % 350).collect();
            let (got, want) = split_and_dense(&m, &window, &mut scratch, &mut dense);
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
            assert!(scratch.iter().all(|&x| x == 0.0), "scratch must be zero again");
        }
    }

    #[test]
    fn refuses_garbage_and_mismatched_metadata_naming_the_key() {
        let p = Path::new("bad.onnx");
        let err = Model::from_bytes(p, b"definitely not protobuf").err().expect("garbage refused");
        assert!(matches!(err, ModelError::Parse { .. }), "{err}");
        let w = weights();
        for (key, value, needle) in [
            ("vigil.window", "128", "vigil.window"),
            ("vigil.vocab_version", "", "vigil.vocab_version"),
            ("vigil.vocab_version", "3", "vigil.vocab_version"),
            ("vigil.threshold.kill", "abc", "vigil.threshold.kill"),
            ("vigil.threshold.alert", "0.99", "vigil.threshold.*"),
        ] {
            let err = Model::from_bytes(p, &logistic(&w, 0.0, &[(key, value)])).err().expect("refused");
            let msg = err.to_string();
            assert!(msg.contains(needle) && msg.contains("bad.onnx"), "{key}={value:?}: {msg}");
        }
    }

    #[test]
    fn a_vocabulary_1_model_is_fed_tokens_without_classes() {
        let p = Path::new("v1.onnx");
        let w = weights();
        let v1 = Model::from_bytes(p, &logistic(&w, 0.0, &[("vigil.vocab_version", "1")])).expect("v1 loads");
        let v2 = Model::from_bytes(p, &logistic(&w, 0.0, &[])).expect("v2 loads");
        assert_eq!((v1.vocab_version(), v2.vocab_version()), (1, 2));
        let classed = [1024 + 257, 512 * 7 + 2, 42, crate::sequence::token::EXEC];
        let (mut a, mut b) = (classed, classed);
        v1.project(&mut a);
        v2.project(&mut b);
        assert_eq!(a, [257, 2, 42, crate::sequence::token::EXEC]);
        assert_eq!(b, classed);
    }

    #[test]
    fn a_truncated_model_file_is_refused() {
        let bytes = logistic(&weights(), 0.0, &[]);
        let err = Model::from_bytes(Path::new("cut.onnx"), &bytes[..bytes.len() / 2]).err().expect("refused");
        assert!(matches!(err, ModelError::Parse { .. } | ModelError::Metadata { .. }), "{err}");
    }
}
