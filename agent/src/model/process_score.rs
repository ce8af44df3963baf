//! From window scores to one score per process (models/FEATURES.md): the best mean of `k`
//! consecutive windows, so one odd window never decides alone.

use super::{DIM, Model, ModelError, windows};
use crate::sequence::Token;

const AGGREGATE_K: usize = 3;

/// Running process score; feed window scores in order.
#[derive(Clone, Debug, Default)]
pub struct ProcessScore {
    /// The last `AGGREGATE_K` window scores.
    recent: Vec<f32>,
    windows: usize,
    best: f32,
    /// Best mean over all windows while fewer than `AGGREGATE_K` have been seen.
    early: f32,
}

impl ProcessScore {
    pub fn push(&mut self, s: f32) {
        if self.recent.len() == AGGREGATE_K {
            self.recent.remove(0);
        }
        self.recent.push(s);
        self.windows += 1;
        let mean = self.recent.iter().sum::<f32>() / self.recent.len() as f32;
        if self.windows < AGGREGATE_K {
            // k = m: the mean over every window so far, which is what `recent` holds.
            self.early = mean;
        } else {
            self.best = self.best.max(mean);
        }
    }

    pub fn windows(&self) -> usize {
        self.windows
    }

    /// The process score over the windows pushed so far.
    pub fn value(&self) -> f32 {
        if self.windows < AGGREGATE_K { self.early } else { self.best }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Normal,
    Alert,
    Quarantine,
    Kill,
}

/// Every window score and the process score of a whole sequence (offline scoring), by the
/// daemon's own path ([`Model::score_window`]).
pub fn score_sequence(model: &Model, tokens: &[Token]) -> Result<(Vec<f32>, f32), ModelError> {
    let mut tokens = tokens.to_vec();
    model.project(&mut tokens);
    let mut scratch = vec![0.0f32; DIM];
    let mut agg = ProcessScore::default();
    let mut scores = Vec::new();
    for w in windows(&tokens) {
        let s = model.score_window(w, &mut scratch)?;
        agg.push(s);
        scores.push(s);
    }
    Ok((scores, agg.value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(s: &[f32]) -> f32 {
        if s.is_empty() {
            return 0.0;
        }
        let k = s.len().min(AGGREGATE_K);
        s.windows(k).map(|w| w.iter().sum::<f32>() / k as f32).fold(f32::MIN, f32::max)
    }

    #[test]
    fn running_score_equals_the_contract_at_every_length() {
        let s = [0.1, 0.9, 0.2, 0.8, 0.85, 0.05, 0.95, 0.9, 0.99];
        let mut agg = ProcessScore::default();
        assert_eq!(agg.value(), 0.0);
        for i in 0..s.len() {
            agg.push(s[i]);
            assert!((agg.value() - reference(&s[..=i])).abs() < 1e-6, "after {} windows", i + 1);
        }
    }
}
