//! The unsupervised layer (models/FEATURES.md, "Profile"): the set of n-grams (n = 1..6) an
//! executable showed while learning, and how much of a window falls outside it. Cheap, needs no
//! labels, explains itself (the novel n-grams) and is nearly silent on stable daemons.

use std::{
    collections::HashSet,
    hash::{BuildHasherDefault, Hasher},
};

use super::{ProcessScore, windows};
use crate::sequence::Token;

const MAX_N: usize = 6;

/// An n-gram's key: a 64-bit mix of n and its tokens. Six tokens of vocabulary 2 take 84 bits,
/// so the key cannot spell them out; two distinct n-grams share a key with probability 2^-64,
/// i.e. about 1e-8 for a profile budget's 600k n-grams. The mix is keyed per run, so that no
/// one can pick a novel n-gram to collide with a learned one.
fn key(gram: &[Token]) -> u64 {
    let mut k = gram_seed() ^ gram.len() as u64;
    for &t in gram {
        k = (k.rotate_left(23) ^ u64::from(t)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    k ^ (k >> 31)
}

fn gram_seed() -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u64))
}

/// A multiplicative mix for the already well-spread n-gram keys; SipHash costs several times
/// more per lookup, and a window takes up to 360 of them. Also hashes whole windows for
/// `window_memo.rs`, eight bytes at a time.
#[derive(Default)]
pub(super) struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
}

#[derive(Clone, Debug, Default)]
pub struct NgramProfile {
    grams: HashSet<u64, BuildHasherDefault<MixHasher>>,
    learned_sequences: usize,
}

impl NgramProfile {
    /// Adds every n-gram of `seq` (whole sequence, n = 1..6); returns how many were new.
    pub fn learn(&mut self, seq: &[Token]) -> usize {
        self.learn_after(seq, 0)
    }

    /// Like [`Self::learn`] for a window whose first `known` tokens were learned with the window
    /// before it (sliding windows overlap): only the n-grams ending after them can be new, so
    /// the rest are not looked up again. The set learned is the same.
    pub fn learn_after(&mut self, seq: &[Token], known: usize) -> usize {
        let before = self.grams.len();
        for n in 1..=MAX_N.min(seq.len()) {
            // The n-gram starting at i ends at i + n; it was learned already if i + n <= known.
            let first = (known + 1).saturating_sub(n).min(seq.len() + 1 - n);
            // Not `extend`: it reserves for every n-gram offered, and nearly all are known.
            for gram in seq[first..].windows(n) {
                self.grams.insert(key(gram));
            }
        }
        self.learned_sequences += 1;
        self.grams.len() - before
    }

    pub fn len(&self) -> usize {
        self.grams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// Mean over n of the fraction of the window's n-grams not in the profile; 1 for an empty
    /// profile.
    pub fn window_novelty(&self, w: &[Token]) -> f32 {
        if self.learned_sequences == 0 {
            return 1.0;
        }
        // The profile holds every n-gram inside each n-gram it holds: `learn` takes all orders
        // of whole windows (`learn_after` of the part its caller has not learned yet). So when
        // the window's longest n-grams are all known, so are the shorter ones inside them, and
        // the novelty is 0 after ~60 lookups instead of ~370. Known windows are what a learned
        // executable mostly shows, and this check was most of the scorer's work on one.
        let longest = MAX_N.min(w.len());
        if longest > 0 && w.windows(longest).all(|g| self.grams.contains(&key(g))) {
            return 0.0;
        }
        let mut sum = 0.0f32;
        let mut orders = 0;
        for n in 1..=MAX_N.min(w.len()) {
            let grams = w.len() - n + 1;
            let novel = w.windows(n).filter(|g| !self.grams.contains(&key(g))).count();
            sum += novel as f32 / grams as f32;
            orders += 1;
        }
        if orders == 0 { 0.0 } else { sum / orders as f32 }
    }

    /// The process-score rule over the window novelties of a whole sequence.
    pub fn score_sequence(&self, seq: &[Token]) -> f32 {
        let mut agg = ProcessScore::default();
        for w in windows(seq) {
            agg.push(self.window_novelty(w));
        }
        agg.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_exact() {
        assert_ne!(key(&[1, 2]), key(&[2, 1]));
        assert_ne!(key(&[0]), key(&[0, 0]));
        assert_ne!(key(&[523, 523, 523, 523, 523, 523]), key(&[523, 523, 523, 523, 523]));
    }

    #[test]
    fn novelty_follows_the_contract() {
        let mut p = NgramProfile::default();
        assert_eq!(p.window_novelty(&[1, 2, 3]), 1.0, "empty profile");
        p.learn(&[1, 2, 3, 4]);
        assert_eq!(p.window_novelty(&[1, 2, 3, 4]), 0.0);
        // [1, 2, 9]: n=1: 1/3 novel; n=2: (1,2) seen, (2,9) not: 1/2; n=3: 1/1.
        let expected = (1.0 / 3.0 + 0.5 + 1.0) / 3.0;
        assert!((p.window_novelty(&[1, 2, 9]) - expected).abs() < 1e-6);
        assert_eq!(p.score_sequence(&[]), 0.0);
        assert!(p.score_sequence(&[4, 3, 2, 1, 2, 3]) > 0.0);
    }

    #[test]
    fn class_tokens_are_not_their_plain_calls() {
        let mut p = NgramProfile::default();
        // openat, and the same number with classes (create, err_perm), the last token.
        p.learn(&[257, 257, 1, 2, 3, 4]);
        for t in [512 * 7 + 257, 1024 + 257, 8703] {
            assert_eq!(p.window_novelty(&[t]), 1.0, "{t}");
        }
        assert_eq!(p.window_novelty(&[257]), 0.0);
        // Same tokens, other order or length: other n-grams.
        p.learn(&[5, 6]);
        assert!(p.window_novelty(&[6, 5]) > 0.0);
        assert_ne!(key(&[5, 6]), key(&[6, 5]));
        assert_ne!(key(&[5]), key(&[5, 0]));
    }

    /// The novelty every order's lookups give, without the shortcut.
    fn novelty_by_every_order(p: &NgramProfile, w: &[Token]) -> f32 {
        let orders = MAX_N.min(w.len());
        let sum: f32 = (1..=orders)
            .map(|n| {
                let novel = w.windows(n).filter(|g| !p.grams.contains(&key(g))).count();
                novel as f32 / (w.len() - n + 1) as f32
            })
            .sum();
        if orders == 0 { 0.0 } else { sum / orders as f32 }
    }

    #[test]
    fn the_known_window_shortcut_agrees_with_every_order_looked_up() {
        // A small alphabet, so that windows are often wholly or partly known.
        let mut next = crate::model::token_stream(5);
        let stream: Vec<Token> = (0..4096).map(|_| next()).collect();
        let mut p = NgramProfile::default();
        // Learned as the scorer does: sliding windows, each after the one it overlaps.
        p.learn(&stream[..64]);
        for start in (32..2048).step_by(32) {
            p.learn_after(&stream[start..start + 64], 32);
        }
        let (mut zero, mut novel) = (0, 0);
        for start in (2048..4096 - 64).step_by(7) {
            for len in [3, 6, 64] {
                let w = &stream[start..start + len];
                let expected = novelty_by_every_order(&p, w);
                assert_eq!(p.window_novelty(w), expected, "{w:?}");
                if expected == 0.0 { zero += 1 } else { novel += 1 }
            }
        }
        assert!(zero > 0 && novel > 0, "both cases exercised: {zero} known, {novel} novel");
    }

    #[test]
    fn learning_the_new_part_of_overlapping_windows_learns_the_same_set() {
        let seq: Vec<Token> = (0..96u16).map(|i| (i * 7 + i / 5) % 23).collect();
        let mut whole = NgramProfile::default();
        whole.learn(&seq[..64]);
        whole.learn(&seq[32..96]);
        let mut sliding = NgramProfile::default();
        sliding.learn(&seq[..64]);
        sliding.learn_after(&seq[32..96], 32);
        assert_eq!(whole.grams, sliding.grams);
        // Degenerate bounds: nothing known, everything known, windows shorter than n.
        let mut p = NgramProfile::default();
        assert_eq!(p.learn_after(&[1, 2], 0), 3);
        assert_eq!(p.learn_after(&[1, 2], 2), 0);
        assert_eq!(p.learn_after(&[1, 2, 3], 2), 3);
        assert_eq!(p.learn_after(&[], 0), 0);
    }
}
