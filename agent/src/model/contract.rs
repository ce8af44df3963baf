//! `hashed-ngram-v1` (models/FEATURES.md): windows over a token sequence and their feature
//! vectors. The trainer implements the same; golden scores exported at training time keep the
//! two in step.

use crate::sequence::Token;

pub const WINDOW: usize = 64;
pub const STRIDE: usize = 32;
pub const DIM: usize = 4096;
const MAX_N: usize = 3;

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// Start offsets of the windows of a sequence of length `len`.
pub fn window_starts(len: usize) -> Vec<usize> {
    match len {
        0 => Vec::new(),
        l if l < WINDOW => vec![0],
        l => {
            let mut starts: Vec<usize> = (0..).map(|i| i * STRIDE).take_while(|s| s + WINDOW <= l).collect();
            if starts.last().is_some_and(|&s| s + WINDOW < l) {
                starts.push(l - WINDOW);
            }
            starts
        }
    }
}

/// The windows of `tokens`, in order.
pub fn windows(tokens: &[Token]) -> impl Iterator<Item = &[Token]> {
    window_starts(tokens.len())
        .into_iter()
        .map(move |s| &tokens[s..(s + WINDOW).min(tokens.len())])
}

fn fnv1a(n: usize, gram: &[Token]) -> u32 {
    gram.iter()
        .fold(fnv_byte(FNV_OFFSET, n as u8), |h, &t| fnv_token(h, t))
}

#[inline(always)]
fn fnv_byte(h: u32, b: u8) -> u32 {
    (h ^ u32::from(b)).wrapping_mul(FNV_PRIME)
}

#[inline(always)]
fn fnv_token(h: u32, t: Token) -> u32 {
    let [lo, hi] = t.to_le_bytes();
    fnv_byte(fnv_byte(h, lo), hi)
}

/// Tokens below this (the vocabulary) have their prefix states in [`PREFIX`]; larger values
/// (out of vocabulary, as a malformed record can carry) are hashed byte by byte. 104 KiB, of
/// which a host's few hundred distinct tokens touch a few KiB.
const PREFIX_TOKENS: usize = crate::sequence::token::VOCAB_SIZE;

/// FNV-1a's state after an n-gram's order byte and its first token, for every order and token
/// below [`PREFIX_TOKENS`]. FNV-1a is one serial chain of multiplies per byte, and hashing a
/// window's 189 n-grams byte by byte was a quarter of vigil's CPU under redis-benchmark; with
/// the prefix looked up, a 2-gram costs the two bytes of its second token and a 3-gram four.
/// The hashes are the same.
static PREFIX: std::sync::LazyLock<Box<[[u32; PREFIX_TOKENS]; MAX_N]>> =
    std::sync::LazyLock::new(|| {
        Box::new(std::array::from_fn(|i| {
            std::array::from_fn(|t| fnv1a(i + 1, &[t as Token]))
        }))
    });

/// [`fnv1a`] of an `n`-gram starting with `first`, with the rest to be fed by the caller.
#[inline(always)]
fn prefix(table: &[[u32; PREFIX_TOKENS]; MAX_N], n: usize, first: Token) -> u32 {
    match table[n - 1].get(usize::from(first)) {
        Some(&h) => h,
        None => fnv1a(n, &[first]),
    }
}

/// Most buckets one window can touch: its 1-, 2- and 3-grams.
const MAX_TOUCHED: usize = 3 * WINDOW;

/// `ln(1 + count)` for every count a bucket can reach (a window has at most MAX_TOUCHED grams).
static LN_1P: std::sync::LazyLock<[f32; MAX_TOUCHED + 1]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|i| (i as f32).ln_1p()));

/// The feature vector of one window into `out` (length [`DIM`]).
///
/// Only the buckets the window's n-grams touch (at most 192 of 4096) are non-zero, so the log and
/// the norm are taken over those alone; the result is the contract's, ~10x cheaper.
pub fn window_features(window: &[Token], out: &mut [f32]) {
    out.fill(0.0);
    window_features_on_zeroed(window, out);
}

/// Counts one gram with hash `h` into `out`; returns the number of distinct buckets so far.
///
/// Branch-free: whether a gram is its bucket's first is a coin flip to the branch predictor,
/// and each wrong guess waited on the load of `out[b]` (in the daemon `out` is rarely in L1).
/// The count travels by value because kept in `Touched` it went through memory on every gram.
/// A window has at most MAX_TOUCHED grams, so the unconditional write stays in bounds.
#[inline(always)]
fn touch(buckets: &mut [u16; MAX_TOUCHED], len: usize, out: &mut [f32], h: u32) -> usize {
    let b = h as usize % DIM;
    buckets[len] = b as u16;
    let fresh = out[b] == 0.0;
    out[b] += 1.0;
    len + usize::from(fresh)
}

/// The buckets a window's features occupy: the only non-zero entries of its feature vector.
pub struct Touched {
    buckets: [u16; MAX_TOUCHED],
    len: usize,
}

impl Touched {
    pub fn buckets(&self) -> &[u16] {
        &self.buckets[..self.len]
    }
}

/// [`window_features`] into an `out` that is all zero on entry, returning the buckets it
/// wrote, so that a caller scoring many windows re-zeroes those instead of all [`DIM`].
///
/// Windows are at most [`WINDOW`] tokens (the contract's); only the first [`WINDOW`] of a
/// longer slice are read.
pub fn window_features_on_zeroed(window: &[Token], out: &mut [f32]) -> Touched {
    let window = &window[..window.len().min(WINDOW)];
    // Sliced to DIM so that the bucket indexing below needs no bounds check.
    let out = &mut out[..DIM];
    let mut t = Touched {
        buckets: [0u16; MAX_TOUCHED],
        len: 0,
    };
    // By order, then position, as the contract lists them: the buckets' order is the order the
    // sparse head sums in.
    let table = &**PREFIX;
    let mut len = 0;
    for &a in window {
        len = touch(&mut t.buckets, len, out, prefix(table, 1, a));
    }
    for g in window.windows(2) {
        len = touch(&mut t.buckets, len, out, fnv_token(prefix(table, 2, g[0]), g[1]));
    }
    for g in window.windows(3) {
        let h = fnv_token(fnv_token(prefix(table, 3, g[0]), g[1]), g[2]);
        len = touch(&mut t.buckets, len, out, h);
    }
    t.len = len;
    let ln_1p = &*LN_1P;
    let mut norm = 0.0f32;
    for &b in t.buckets() {
        let x = &mut out[usize::from(b)];
        // A bucket holds a count of at most MAX_TOUCHED: its log comes from a table (the same
        // f32 `ln_1p` values, computed once).
        // SAFETY: the count is a whole number in 1..=MAX_TOUCHED, exact in an f32, so it fits a
        // u32; the saturating `as` cast and its clamps were most of this loop's time.
        let count = unsafe { x.to_int_unchecked::<u32>() };
        *x = ln_1p[count as usize];
        norm += *x * *x;
    }
    if norm > 0.0 {
        let inv = norm.sqrt().recip();
        for &b in t.buckets() {
            out[usize::from(b)] *= inv;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_edges_follow_the_contract() {
        assert!(window_starts(0).is_empty());
        assert_eq!(window_starts(10), vec![0]);
        assert_eq!(window_starts(64), vec![0]);
        assert_eq!(window_starts(65), vec![0, 1]);
        assert_eq!(window_starts(96), vec![0, 32]);
        assert_eq!(window_starts(100), vec![0, 32, 36]);
        assert_eq!(windows(&[1, 2, 3]).collect::<Vec<_>>(), vec![&[1, 2, 3][..]]);
    }

    #[test]
    fn fnv1a_matches_the_reference_vector() {
        // FNV-1a 32 of the bytes "a" is 0xe40c292c; here the first byte is n, so check the
        // algorithm on a one-byte input the same way: n=97 ('a') and no tokens.
        assert_eq!(fnv1a(97, &[]), 0xe40c_292c);
    }

    /// The dense definition, straight from the contract.
    fn reference(window: &[Token]) -> Vec<f32> {
        let mut out = vec![0.0f32; DIM];
        for n in 1..=MAX_N {
            for gram in window.windows(n) {
                out[fnv1a(n, gram) as usize % DIM] += 1.0;
            }
        }
        out.iter_mut().for_each(|x| *x = x.ln_1p());
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            out.iter_mut().for_each(|x| *x /= norm);
        }
        out
    }

    #[test]
    fn sparse_features_equal_the_dense_definition() {
        let mut x: u32 = 7;
        let mut got = vec![0.0; DIM];
        for len in [0usize, 1, 5, 63, 64] {
            let w: Vec<Token> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    ((x >> 16) % 40) as Token
                })
                .collect();
            window_features(&w, &mut got);
            for (g, r) in got.iter().zip(reference(&w)) {
                assert!((g - r).abs() < 1e-6, "len {len}: {g} vs {r}");
            }
        }
    }

    #[test]
    fn prefix_table_gives_the_byte_by_byte_hash() {
        let table = &**PREFIX;
        // Both sides of the table's edge, the vocabulary's end and the largest u16.
        for first in [0, 1, 523, 1023, 1024, 4242, 8703, 8704, Token::MAX] {
            for n in 1..=MAX_N {
                let rest: Vec<Token> = [7, Token::MAX][..n - 1].to_vec();
                let h = rest.iter().fold(prefix(table, n, first), |h, &t| fnv_token(h, t));
                let mut gram = vec![first];
                gram.extend(&rest);
                assert_eq!(h, fnv1a(n, &gram), "n {n}, first {first}");
            }
        }
        let mut x: u32 = 11;
        let mut got = vec![0.0; DIM];
        let w: Vec<Token> = (0..64)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                // Mostly in vocabulary, some beyond the table.
                if x >> 28 == 0 { (x >> 8) as Token } else { ((x >> 16) % 524) as Token }
            })
            .collect();
        window_features(&w, &mut got);
        for (g, r) in got.iter().zip(reference(&w)) {
            assert!((g - r).abs() < 1e-6, "{g} vs {r}");
        }
    }

    #[test]
    fn features_are_unit_length_log_counts() {
        let mut f = vec![0.0; DIM];
        window_features(&[0, 0, 0], &mut f);
        // unigram 0 x3, bigram (0,0) x2, trigram (0,0,0) x1, in three distinct buckets here
        let mut nz: Vec<f32> = f.iter().copied().filter(|&x| x > 0.0).collect();
        nz.sort_by(f32::total_cmp);
        let raw = [2f32.ln(), 3f32.ln(), 4f32.ln()];
        let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert_eq!(nz.len(), 3);
        for (got, want) in nz.iter().zip(raw) {
            assert!((got - want / norm).abs() < 1e-6, "{got} vs {}", want / norm);
        }
        window_features(&[], &mut f);
        assert!(f.iter().all(|&x| x == 0.0));
    }
}
