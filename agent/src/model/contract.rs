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
    let mut h = FNV_OFFSET;
    let mut feed = |b: u8| {
        h ^= u32::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    };
    feed(n as u8);
    for t in gram {
        for b in t.to_le_bytes() {
            feed(b);
        }
    }
    h
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
pub fn window_features_on_zeroed(window: &[Token], out: &mut [f32]) -> Touched {
    let mut t = Touched {
        buckets: [0u16; MAX_TOUCHED],
        len: 0,
    };
    for n in 1..=MAX_N {
        for gram in window.windows(n) {
            let b = fnv1a(n, gram) as usize % DIM;
            if out[b] == 0.0 && t.len < MAX_TOUCHED {
                t.buckets[t.len] = b as u16;
                t.len += 1;
            }
            out[b] += 1.0;
        }
    }
    let mut norm = 0.0f32;
    for &b in t.buckets() {
        let x = &mut out[usize::from(b)];
        // A bucket holds a count of at most MAX_TOUCHED: its log comes from a table (the same
        // f32 `ln_1p` values, computed once).
        *x = LN_1P[*x as usize];
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
