"""The unsupervised layer: an n-gram novelty profile learned from benign sequences only.

The daemon learns one such profile per executable during a learn period and scores every
window against it, so the algorithm must be cheap, exact and small enough to specify in a few
lines: it is the "## Profile (unsupervised)" section of FEATURES.md, which this module
implements literally (orders 1..6, equal weights, the model's k = 3 aggregation). Those
choices were fixed a priori; `evaluate.py` reports other orders only as a post-hoc table.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import contract

ORDERS = (1, 2, 3, 4, 5, 6)


def _grams(tokens: np.ndarray, n: int) -> np.ndarray:
    """Every n-gram of `tokens` as one fixed-size byte string (numpy void), exact."""
    t = np.ascontiguousarray(np.asarray(tokens, dtype="<u2"))
    if len(t) < n:
        return np.zeros(0, dtype=f"V{2 * n}")
    return np.ascontiguousarray(sliding_window_view(t, n)).view(f"V{2 * n}").ravel()


class Profile:
    """The sets G_n of n-grams seen in the learn sequences, for n in `orders`."""

    def __init__(self, orders: Sequence[int] = ORDERS):
        self.orders = tuple(orders)
        self.sets = {n: np.zeros(0, dtype=f"V{2 * n}") for n in self.orders}

    def fit(self, seqs: Iterable[Sequence[int]]) -> "Profile":
        seqs = [np.asarray(s) for s in seqs]
        for n in self.orders:
            parts = [_grams(s, n) for s in seqs]
            parts.append(self.sets[n])
            self.sets[n] = np.unique(np.concatenate(parts))
        return self

    def size(self) -> dict[int, int]:
        return {n: len(v) for n, v in self.sets.items()}

    def novel_mask(self, tokens: Sequence[int], n: int) -> np.ndarray:
        """For each start i, whether tokens[i:i+n] is absent from G_n."""
        g = _grams(np.asarray(tokens), n)
        known = self.sets[n]
        if len(known) == 0:
            return np.ones(len(g), dtype=bool)
        idx = np.searchsorted(known, g)
        idx[idx >= len(known)] = 0
        return known[idx] != g

    def window_fractions(self, tokens: Sequence[int]) -> np.ndarray:
        """`f_n` per order (rows, in `self.orders` order) and window (columns); NaN where the
        window is shorter than n."""
        tokens = np.asarray(tokens)
        bounds = contract.window_bounds(len(tokens))
        out = np.full((len(self.orders), len(bounds)), np.nan)
        if not bounds:
            return out
        a = np.array([b[0] for b in bounds])
        b = np.array([b[1] for b in bounds])
        for r, n in enumerate(self.orders):
            cum = np.concatenate([[0], np.cumsum(self.novel_mask(tokens, n))])
            ok = b - a >= n
            out[r, ok] = (cum[b[ok] - n + 1] - cum[a[ok]]) / (b[ok] - a[ok] - n + 1)
        return out

    def window_novelty(self, tokens: Sequence[int]) -> np.ndarray:
        """Novelty of each FEATURES.md window of `tokens`, in window order: the mean of `f_n`
        over the orders the window is long enough for."""
        f = self.window_fractions(tokens)
        if f.shape[1] == 0:
            return np.zeros(0)
        return nanmean_rows(f)

    def score(self, tokens: Sequence[int], k: int = contract.AGGREGATE_K) -> float:
        """Sequence score: the process-score rule over the window novelties."""
        return contract.process_score(self.window_novelty(tokens), k)

    def scores(self, seqs: Iterable[Sequence[int]], k: int = contract.AGGREGATE_K) -> np.ndarray:
        return np.array([self.score(s, k) for s in seqs])


def nanmean_rows(f: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN (every column has at least the n = 1 row)."""
    ok = ~np.isnan(f)
    return np.where(ok, f, 0.0).sum(axis=0) / ok.sum(axis=0)


def gate(window_scores: np.ndarray, novelty: np.ndarray) -> np.ndarray:
    """FEATURES.md "## Layers in the daemon": a window the executable's learned profile holds
    entirely (novelty 0) scores 0 instead of its model score."""
    return np.where(np.asarray(novelty) > 0, window_scores, 0.0)


# --- plain reference, as FEATURES.md reads ------------------------------------------------------
def fit_ref(seqs: Iterable[Sequence[int]], orders: Sequence[int] = ORDERS) -> dict[int, set]:
    sets: dict[int, set] = {n: set() for n in orders}
    for s in seqs:
        s = list(s)
        for n in orders:
            for i in range(len(s) - n + 1):
                sets[n].add(tuple(s[i : i + n]))
    return sets


def window_novelty_ref(sets: dict[int, set], tokens: Sequence[int]) -> list[float]:
    tokens = list(tokens)
    out = []
    for a, b in contract.window_bounds(len(tokens)):
        w = tokens[a:b]
        fs = []
        for n, g in sets.items():
            if len(w) >= n:
                novel = sum(tuple(w[i : i + n]) not in g for i in range(len(w) - n + 1))
                fs.append(novel / (len(w) - n + 1))
        out.append(sum(fs) / len(fs))
    return out


def score_ref(sets: dict[int, set], tokens: Sequence[int]) -> float:
    return contract.process_score_ref(window_novelty_ref(sets, tokens))
