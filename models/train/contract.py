"""The scoring contract v1 of `models/FEATURES.md`, in Python, on tokens of vocabulary 2.

The daemon (Rust, `agent/src/model/`) computes the same windows, features and process score;
`models/golden.json` written from this module is what its tests compare against to 1e-4. So
everything here follows FEATURES.md literally, and every vectorised function has a plain
Python reference next to it that reads like the contract; `self_test()` compares the two.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

# --- constants (FEATURES.md); the ONNX metadata is built from these ---------------------------
CONTRACT_VERSION = 1
VOCAB_VERSION = 2
# Vocabulary 2 ("## Tokens"): 0..=511 syscalls without a class, 512..=523 events, and syscall nr of
# class c (1..=15) as CLASS_BASE * (c + 1) + nr, i.e. 1024..=8703; 524..=1023 are not tokens.
CLASS_BASE = 512
# Class names, index = class - 1 (agent-common/src/call_class.rs).
CLASS_NAMES = (
    "err_perm", "err_noent", "err_again", "err_net", "err_other",
    "create", "write", "dir", "exec", "write_exec",
    "inet", "netlink", "raw", "stdio", "mode_exec",
)
VOCAB_SIZE = CLASS_BASE * (len(CLASS_NAMES) + 2)  # 8704
VOCAB_V1_SIZE = 524  # vocabulary 1: numbers and events only
FIRST_CLASSED = 2 * CLASS_BASE  # 1024, the first token with a class
FEATURES_NAME = "hashed-ngram-v1"
WINDOW = 64  # W
STRIDE = 32  # S
DIM = 4096  # D
NGRAM_ORDERS = (1, 2, 3)
AGGREGATE_K = 3

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193

# Event tokens (agent/src/sequence.rs), used by tests and golden sequences.
TOK_EXEC, TOK_FORK, TOK_EXIT, TOK_CONNECT, TOK_ACCEPT, TOK_BIND, TOK_LISTEN = range(512, 519)
TOK_CRED_CHANGE, TOK_PTRACE, TOK_MEMFD_CREATE, TOK_MODULE_LOAD, TOK_BPF_PROG_LOAD = range(519, 524)


def _invalid(arr: np.ndarray) -> np.ndarray:
    return (arr < 0) | (arr >= VOCAB_SIZE) | ((arr >= VOCAB_V1_SIZE) & (arr < FIRST_CLASSED))


def is_token(t: int) -> bool:
    """Whether `t` is a token of vocabulary 2 (the gap 524..=1023 between events and classes is not)."""
    return not bool(_invalid(np.asarray(t)))


def check_tokens(tokens: Sequence[int]) -> None:
    """Rejects tokens outside the vocabulary: the contract calls them invalid input."""
    arr = np.asarray(tokens)
    if arr.size:
        bad = arr[_invalid(arr)]
        if bad.size:
            raise ValueError(f"token {int(bad[0])} outside the vocabulary "
                             f"(0..={VOCAB_V1_SIZE - 1}, {FIRST_CLASSED}..={VOCAB_SIZE - 1})")


def class_token(nr: int, c: int) -> int:
    """The token of syscall `nr` with class `c` (0 = no class)."""
    if not 0 <= nr < CLASS_BASE or not 0 <= c <= len(CLASS_NAMES):
        raise ValueError(f"no token for syscall {nr} of class {c}")
    return nr if c == 0 else CLASS_BASE * (c + 1) + nr


def split_token(t: int) -> tuple[int, int] | None:
    """(syscall number, class) of a syscall token, class 0 for none; None for an event token or
    outside the vocabulary. As `token::split` in agent/src/sequence.rs."""
    if 0 <= t < CLASS_BASE:
        return int(t), 0
    if t < FIRST_CLASSED or t >= VOCAB_SIZE:
        return None
    return int(t % CLASS_BASE), int(t // CLASS_BASE - 1)


def project_v1(tokens):
    """The same tokens in vocabulary 1, every class dropped (t >= 1024 -> t % 512): what a
    vocabulary-1 model is fed. A list gives a list, an array an array of the same dtype."""
    if isinstance(tokens, np.ndarray):
        return np.where(tokens >= FIRST_CLASSED, tokens % CLASS_BASE, tokens).astype(tokens.dtype, copy=False)
    return [int(t) % CLASS_BASE if t >= FIRST_CLASSED else int(t) for t in tokens]


def random_tokens(rng: np.random.Generator, n: int, classed: float = 0.5) -> list[int]:
    """`n` random valid tokens, each with probability `classed` a class token (uniform over
    1024..=8703), else uniform over 0..=523: both halves of the vocabulary, every byte pattern."""
    plain = rng.integers(0, VOCAB_V1_SIZE, size=n)
    cls = rng.integers(FIRST_CLASSED, VOCAB_SIZE, size=n)
    return np.where(rng.random(n) < classed, cls, plain).tolist()


# --- windows ----------------------------------------------------------------------------------
def window_bounds(length: int, window: int = WINDOW, stride: int = STRIDE) -> list[tuple[int, int]]:
    """`[start, end)` of each window of a sequence of `length` tokens, in order."""
    if length <= 0:
        return []
    if length < window:
        return [(0, length)]
    bounds = []
    start = 0
    while start + window <= length:
        bounds.append((start, start + window))
        start += stride
    if bounds[-1][1] != length:  # the last start did not reach the end: one final window
        bounds.append((length - window, length))
    return bounds


# --- FNV-1a and n-gram hashing ---------------------------------------------------------------
def fnv1a32(data: bytes) -> int:
    """32-bit FNV-1a, reference implementation."""
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & 0xFFFFFFFF
    return h


def ngram_bytes(gram: Sequence[int]) -> bytes:
    """The bytes hashed for an n-gram: the byte n, then each token as u16 little-endian."""
    out = bytearray([len(gram)])
    for t in gram:
        out += int(t).to_bytes(2, "little")
    return bytes(out)


def ngram_bucket_ref(gram: Sequence[int]) -> int:
    return fnv1a32(ngram_bytes(gram)) % DIM


def window_features_ref(window: Sequence[int]) -> list[float]:
    """hashed-ngram-v1 feature vector of one window, plain Python (the reference)."""
    counts = [0] * DIM
    for n in NGRAM_ORDERS:
        for i in range(len(window) - n + 1):
            counts[ngram_bucket_ref(window[i : i + n])] += 1
    x = [math.log1p(c) for c in counts]
    norm = math.sqrt(sum(v * v for v in x))
    if norm > 0:
        x = [v / norm for v in x]
    return [float(np.float32(v)) for v in x]


def sequence_features_ref(tokens: Sequence[int]) -> list[list[float]]:
    return [window_features_ref(tokens[a:b]) for a, b in window_bounds(len(tokens))]


# --- vectorised -------------------------------------------------------------------------------
def _fnv_step(h: np.ndarray, byte: np.ndarray | int) -> np.ndarray:
    # uint32 array arithmetic wraps modulo 2^32, which is what FNV-1a wants.
    return (h ^ np.uint32(byte) if np.isscalar(byte) else h ^ byte) * np.uint32(FNV_PRIME)


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """FNV-1a hash of every n-gram `tokens[i:i+n]`, `i = 0 .. len-n`, as uint32."""
    t = np.asarray(tokens, dtype=np.uint32)
    count = len(t) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint32)
    h = np.full(count, FNV_OFFSET, dtype=np.uint32)
    with np.errstate(over="ignore"):
        h = _fnv_step(h, n)
        for j in range(n):
            tok = t[j : j + count]
            h = _fnv_step(h, tok & np.uint32(0xFF))
            h = _fnv_step(h, tok >> np.uint32(8))
    return h


def sequence_features(tokens: Sequence[int]) -> sp.csr_matrix:
    """Feature rows of every window of a sequence (CSR, float32, one row per window).

    Hashes each n-gram of the sequence once, then counts per window the n-grams that lie
    entirely inside it, which is the same as hashing each window separately.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    check_tokens(tokens)
    bounds = window_bounds(len(tokens))
    if not bounds:
        return sp.csr_matrix((0, DIM), dtype=np.float32)
    buckets = {n: (ngram_hashes(tokens, n) % np.uint32(DIM)).astype(np.int64) for n in NGRAM_ORDERS}
    rows, cols = [], []
    for r, (a, b) in enumerate(bounds):
        for n in NGRAM_ORDERS:
            if b - a >= n:
                c = buckets[n][a : b - n + 1]
                cols.append(c)
                rows.append(np.full(len(c), r, dtype=np.int64))
    rows_a = np.concatenate(rows)
    cols_a = np.concatenate(cols)
    counts = sp.coo_matrix(
        (np.ones(len(rows_a), dtype=np.float64), (rows_a, cols_a)), shape=(len(bounds), DIM)
    ).tocsr()  # duplicates are summed
    counts.sum_duplicates()
    counts.data = np.log1p(counts.data)
    norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    feats = sp.diags(1.0 / norms) @ counts
    return sp.csr_matrix(feats, dtype=np.float32)


def many_sequence_features(seqs: Iterable[Sequence[int]]) -> tuple[sp.csr_matrix, np.ndarray]:
    """Stacked window features of many sequences and, per row, the index of its sequence."""
    mats, owner = [], []
    for i, s in enumerate(seqs):
        m = sequence_features(s)
        mats.append(m)
        owner.append(np.full(m.shape[0], i, dtype=np.int64))
    if not mats:
        return sp.csr_matrix((0, DIM), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return sp.vstack(mats, format="csr", dtype=np.float32), np.concatenate(owner)


# --- process score ----------------------------------------------------------------------------
def process_score_ref(window_scores: Sequence[float], k_max: int = AGGREGATE_K) -> float:
    """Max over j of mean(s_j..s_{j+k-1}), k = min(3, m); 0 for no windows. Reference."""
    m = len(window_scores)
    if m == 0:
        return 0.0
    k = min(k_max, m)
    return max(sum(window_scores[j : j + k]) / k for j in range(m - k + 1))


def process_score(window_scores: np.ndarray, k_max: int = AGGREGATE_K) -> float:
    s = np.asarray(window_scores, dtype=np.float64)
    m = len(s)
    if m == 0:
        return 0.0
    k = min(k_max, m)
    c = np.concatenate([[0.0], np.cumsum(s)])
    return float(np.max((c[k:] - c[:-k]) / k))


def process_scores(window_scores: np.ndarray, owner: np.ndarray, n_seqs: int, k_max: int = AGGREGATE_K) -> np.ndarray:
    """Process score of each of `n_seqs` sequences from stacked window scores (rows in order)."""
    out = np.zeros(n_seqs, dtype=np.float64)
    if len(owner) == 0:
        return out
    edges = np.flatnonzero(np.diff(owner)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(owner)]])
    for a, b in zip(starts, ends):
        out[owner[a]] = process_score(window_scores[a:b], k_max)
    return out


# --- self-test --------------------------------------------------------------------------------
def self_test(seed: int = 0) -> None:
    """Vectorised == reference on random sequences of awkward lengths; raises on mismatch."""
    assert fnv1a32(b"") == 0x811C9DC5
    assert fnv1a32(b"a") == 0xE40C292C
    assert fnv1a32(b"foobar") == 0xBF9CF968
    rng = np.random.default_rng(seed)
    for length in (0, 1, 2, 3, 5, 63, 64, 65, 95, 96, 97, 128, 129, 300):
        seq = random_tokens(rng, length)
        fast = sequence_features(seq).toarray()
        ref = np.array(sequence_features_ref(seq), dtype=np.float32).reshape(-1, DIM)
        assert fast.shape == ref.shape, (length, fast.shape, ref.shape)
        assert np.allclose(fast, ref, atol=1e-6), length
        ws = rng.random(len(window_bounds(length)))
        assert abs(process_score(ws) - process_score_ref(list(ws))) < 1e-12
    for n in (1, 2, 3):
        seq = np.array(random_tokens(rng, 20))
        fast = ngram_hashes(seq, n)
        ref = [fnv1a32(ngram_bytes(seq[i : i + n])) for i in range(20 - n + 1)]
        assert fast.tolist() == ref


if __name__ == "__main__":
    self_test()
    print("contract self-test ok")
