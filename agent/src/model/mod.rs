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

/// A fixed xorshift stream of tokens below `below`: the same varied windows on every run, for
/// checks that compare two ways of computing one thing.
pub(crate) fn token_stream(below: u64) -> impl FnMut() -> crate::sequence::Token {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below) as crate::sequence::Token
    }
}

/// Where `cargo xtask install` puts the shipped model.
pub const DEFAULT_MODEL_PATH: &str = "/usr/lib/vigil/vigil.onnx";
