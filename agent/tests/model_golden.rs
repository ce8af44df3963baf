//! The shipped model (`models/vigil.onnx`), loaded through tract, reproduces the scores the
//! trainer computed with onnxruntime (`models/golden.json`) to the stated tolerance: features,
//! windows, window scores and process scores. A divergence between the Python and Rust sides of
//! the scoring contract fails here.

use std::path::PathBuf;

use serde_json::Value;
use vigil::model::{DIM, Model, NgramProfile, score_sequence, window_features, window_starts};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden() -> Value {
    let path = repo().join("models/golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask train`)", path.display()));
    serde_json::from_str(&text).expect("golden.json is JSON")
}

fn tokens(case: &Value) -> Vec<u16> {
    case["tokens"].as_array().expect("tokens").iter().map(|t| t.as_u64().expect("token") as u16).collect()
}

#[test]
fn shipped_model_reproduces_golden_scores() {
    let doc = golden();
    let tol = doc["tolerance"].as_f64().unwrap_or(1e-4) as f32;
    let model = Model::load(&repo().join("models/vigil.onnx")).expect("the shipped model loads");
    assert!(model.is_sparse(), "the shipped model's first layer must split off (the daemon's fast path)");
    assert!(model.has_native_tail(), "the shipped model's layers after the first must run without tract");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10, "too few golden cases");
    assert!(
        cases.iter().any(|c| tokens(c).iter().any(|&t| t >= 1024)),
        "no golden case carries a class token: the vocabulary path is untested"
    );
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let toks = tokens(case);
        let starts: Vec<u64> = window_starts(toks.len()).into_iter().map(|s| s as u64).collect();
        let expected_starts: Vec<u64> = case["windows"].as_array().expect("windows").iter().map(|b| b[0].as_u64().expect("start")).collect();
        assert_eq!(starts, expected_starts, "{name}: window starts");

        if let Some(f) = case.get("first_window_features") {
            // Features of the tokens as the model is fed them (classes dropped for a vocabulary 1
            // model); `score_sequence` below does the same on its own.
            let mut fed = toks.clone();
            model.project(&mut fed);
            let mut got = vec![0.0f32; DIM];
            window_features(&fed[..fed.len().min(64)], &mut got);
            let idx: Vec<usize> = f["indices"].as_array().expect("indices").iter().map(|i| i.as_u64().expect("i") as usize).collect();
            let vals: Vec<f32> = f["values"].as_array().expect("values").iter().map(|v| v.as_f64().expect("v") as f32).collect();
            let nonzero: Vec<usize> = got.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| i).collect();
            assert_eq!(nonzero, idx, "{name}: non-zero feature buckets");
            for (i, v) in idx.iter().zip(vals) {
                assert!((got[*i] - v).abs() < 1e-6, "{name}: feature {i}: {} vs {v}", got[*i]);
            }
        }

        // The daemon's path: the split first layer (checked below to be the one taken).
        let (windows, process) = score_sequence(&model, &toks).expect("scores");
        let expected: Vec<f32> = case["window_scores"].as_array().expect("scores").iter().map(|s| s.as_f64().expect("s") as f32).collect();
        assert_eq!(windows.len(), expected.len(), "{name}: window count");
        for (i, (g, e)) in windows.iter().zip(&expected).enumerate() {
            assert!((g - e).abs() <= tol, "{name}: window {i}: tract {g} vs onnxruntime {e}");
        }
        let e = case["process_score"].as_f64().expect("process score") as f32;
        assert!((process - e).abs() <= tol, "{name}: process score {process} vs {e}");
    }
}

#[test]
fn profile_reproduces_golden_novelty() {
    let doc = golden();
    let Some(case) = doc.get("profile") else {
        panic!("golden.json has no profile case");
    };
    let mut profile = NgramProfile::default();
    for seq in case["learn"].as_array().expect("learn sequences") {
        let seq: Vec<u16> = seq.as_array().expect("seq").iter().map(|t| t.as_u64().expect("t") as u16).collect();
        profile.learn(&seq);
    }
    for test in case["cases"].as_array().expect("profile cases") {
        let name = &test["name"];
        let toks = tokens(test);
        let windows: Vec<&[u16]> = vigil::model::windows(&toks).collect();
        let novelty = test["window_novelty"].as_array().expect("window_novelty");
        assert_eq!(windows.len(), novelty.len(), "{name}: window count");
        for (w, e) in windows.iter().zip(novelty) {
            let (got, e) = (profile.window_novelty(w), e.as_f64().expect("novelty") as f32);
            assert!((got - e).abs() < 1e-5, "{name}: window novelty {got} vs {e}");
        }
        let expected = test["score"].as_f64().expect("score") as f32;
        let got = profile.score_sequence(&toks);
        assert!((got - expected).abs() < 1e-5, "{name}: sequence novelty {got} vs {expected}");
    }
}
