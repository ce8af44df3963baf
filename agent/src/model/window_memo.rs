//! Exact memo of window → model score. A window's score is a pure function of its tokens
//! (features, then a fixed model), and exec-heavy hosts repeat windows all the time: every run
//! of a tool walks the same loader and libc start-up, so most short processes are made of
//! windows already scored. Keys are the whole window, never a digest, so a hit is the score the
//! model would give.
//!
//! Bounded by two generations: lookups hit either; inserts go to the young one; when it fills,
//! the old one is dropped and the young one ages. Recently used windows survive a turnover
//! because a hit in the old generation is copied into the young one.
//!
//! Keys are held inline, not boxed: on a busy server most windows are new (6% hits under
//! redis-benchmark), and an allocation per insert and a free per entry at each turnover were
//! a twentieth of vigil's CPU there.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::{WINDOW, profile::MixHasher};
use crate::sequence::Token;

/// A whole window of at most [`WINDOW`] tokens, zero-padded: with `len`, equal keys are equal
/// windows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    len: u8,
    tokens: [Token; WINDOW],
}

impl Key {
    /// `None` for a window longer than the contract's (never scored by the daemon).
    fn of(window: &[Token]) -> Option<Self> {
        let mut key = Key {
            len: u8::try_from(window.len()).ok()?,
            tokens: [0; WINDOW],
        };
        key.tokens.get_mut(..window.len())?.copy_from_slice(window);
        Some(key)
    }
}

/// Keys are attacker-chosen only in the sense that a process picks its syscalls, and a
/// collision costs a comparison, never a wrong score: the whole window is the key.
type Generation = HashMap<Key, f32, BuildHasherDefault<MixHasher>>;

pub struct WindowMemo {
    young: Generation,
    old: Generation,
    /// Entries per generation.
    capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl WindowMemo {
    /// At most `2 * capacity` windows are held (about 140 bytes each, plus the tables' slack).
    pub fn new(capacity: usize) -> Self {
        Self {
            young: Generation::default(),
            old: Generation::default(),
            capacity: capacity.max(1),
            hits: 0,
            misses: 0,
        }
    }

    /// The memoised score of `window`, or `score(window)` computed and remembered. Errors are
    /// not remembered.
    pub fn get_or_score<E>(
        &mut self,
        window: &[Token],
        score: impl FnOnce(&[Token]) -> Result<f32, E>,
    ) -> Result<f32, E> {
        let Some(key) = Key::of(window) else {
            self.misses += 1;
            return score(window);
        };
        if let Some(&s) = self.young.get(&key) {
            self.hits += 1;
            return Ok(s);
        }
        if let Some(&s) = self.old.get(&key) {
            self.hits += 1;
            self.insert(key, s);
            return Ok(s);
        }
        self.misses += 1;
        let s = score(window)?;
        self.insert(key, s);
        Ok(s)
    }

    fn insert(&mut self, key: Key, s: f32) {
        if self.young.len() >= self.capacity {
            // Swapped and cleared rather than replaced: the table keeps its capacity, so a
            // turnover does not regrow it from nothing (a rehash at every doubling).
            std::mem::swap(&mut self.old, &mut self.young);
            self.young.clear();
        }
        self.young.insert(key, s);
    }

    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting(calls: &mut u32) -> impl FnOnce(&[Token]) -> Result<f32, ()> + '_ {
        move |w| {
            *calls += 1;
            Ok(w.iter().map(|&t| f32::from(t)).sum())
        }
    }

    #[test]
    fn a_repeated_window_is_scored_once() {
        let mut memo = WindowMemo::new(8);
        let mut calls = 0;
        let a: Vec<Token> = (0..64).collect();
        assert_eq!(memo.get_or_score(&a, counting(&mut calls)), Ok(2016.0));
        assert_eq!(memo.get_or_score(&a, counting(&mut calls)), Ok(2016.0));
        assert_eq!(calls, 1);
        assert_eq!((memo.hits, memo.misses), (1, 1));
    }

    #[test]
    fn windows_differing_in_one_token_or_length_are_distinct() {
        let mut memo = WindowMemo::new(8);
        let mut calls = 0;
        let a: Vec<Token> = vec![1, 2, 3];
        let b: Vec<Token> = vec![1, 2, 4];
        let c: Vec<Token> = vec![1, 2];
        for w in [&a, &b, &c] {
            memo.get_or_score(w, counting(&mut calls)).unwrap();
        }
        assert_eq!(calls, 3);
        assert_eq!(memo.get_or_score(&b, counting(&mut calls)), Ok(7.0));
        assert_eq!(calls, 3);
    }

    #[test]
    fn bounded_and_recently_used_windows_survive_turnover() {
        let mut memo = WindowMemo::new(4);
        let mut calls = 0;
        let hot: Vec<Token> = vec![9, 9, 9];
        memo.get_or_score(&hot, counting(&mut calls)).unwrap();
        for i in 0..100u16 {
            memo.get_or_score(&[i, i + 1], counting(&mut calls)).unwrap();
            // Keep touching the hot window: it must never be scored again.
            memo.get_or_score(&hot, counting(&mut calls)).unwrap();
            assert!(memo.len() <= 8, "memo grew to {}", memo.len());
        }
        assert_eq!(calls, 101);
    }

    #[test]
    fn zero_padding_does_not_join_windows_and_longer_windows_are_scored_unmemoised() {
        let mut memo = WindowMemo::new(8);
        let mut calls = 0;
        // [1, 0] and [1] pad to the same tokens; their lengths keep them apart.
        memo.get_or_score(&[1, 0], counting(&mut calls)).unwrap();
        memo.get_or_score(&[1], counting(&mut calls)).unwrap();
        assert_eq!(calls, 2);
        let long: Vec<Token> = (0..WINDOW as Token + 1).collect();
        memo.get_or_score(&long, counting(&mut calls)).unwrap();
        memo.get_or_score(&long, counting(&mut calls)).unwrap();
        assert_eq!(calls, 4);
        assert_eq!(memo.len(), 2);
    }

    #[test]
    fn errors_are_not_remembered() {
        let mut memo = WindowMemo::new(4);
        assert_eq!(memo.get_or_score(&[1], |_| Err::<f32, &str>("boom")), Err("boom"));
        assert_eq!(memo.get_or_score(&[1], |_| Ok::<f32, &str>(0.5)), Ok(0.5));
        assert!(memo.get_or_score(&[1], |_| Err::<f32, &str>("unused")).is_ok());
    }
}
