//! The behaviour model: the scoring contract of `models/FEATURES.md` (windows, hashed n-gram
//! features, process score) and the ONNX model that scores windows, run by tract.

mod contract;
mod native_tail;
mod onnx;
mod process_score;
mod profile;
mod sparse_head;
mod window_memo;

pub use contract::{
    DIM, STRIDE, Touched, WINDOW, window_features, window_features_on_zeroed, window_starts,
    windows,
};
pub use onnx::{Model, ModelError, Thresholds};
#[cfg(test)]
pub(crate) use onnx::test_models;
pub use process_score::{ProcessScore, Verdict, score_sequence};
pub use profile::NgramProfile;
pub use window_memo::WindowMemo;

/// Where `cargo xtask install` puts the shipped model.
pub const DEFAULT_MODEL_PATH: &str = "/usr/lib/vigil/vigil.onnx";
