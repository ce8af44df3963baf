"""The supervised layer: the window classifier that ships as `vigil.onnx`.

Windows (FEATURES.md, hashed-ngram-v1) inherit their process's label; classes are balanced with
sample weights so that neither the long benign traces nor a verbose attack family decides the
boundary. Every model here exports to Gemm [+ Relu + Gemm] + Sigmoid, which tract runs.

Which of the few candidate models ships is not decided by hand: `select_config` runs an inner
leave-one-family-out inside the training data only (a held-out family and a held-out fifth of the
benign groups per inner fold) and keeps the best mean AUC, ties going to the a-priori choice,
an MLP 4096 -> 32 -> 1 (first in CONFIGS). The outer evaluation (evaluate.py) therefore measures
the whole procedure, selection included, on data the selection never saw. Everything is seeded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier

from . import contract

HIDDEN = 32
_MLP = dict(
    hidden_layer_sizes=(HIDDEN,),
    activation="relu",
    solver="adam",
    batch_size=256,
    learning_rate_init=1e-3,
    max_iter=40,
    tol=1e-4,
    n_iter_no_change=5,
    shuffle=True,
)
# The candidates, fixed before any selection ran; the first is the a-priori choice and wins ties.
CONFIGS = {
    "mlp32_l2_1e-4": ("mlp", dict(_MLP, alpha=1e-4)),
    "mlp32_l2_1e-2": ("mlp", dict(_MLP, alpha=1e-2)),
    "logreg_C1": ("logreg", dict(C=1.0, max_iter=3000)),
    "logreg_C0.1": ("logreg", dict(C=0.1, max_iter=3000)),
}
APRIORI = "mlp32_l2_1e-4"
INNER_BENIGN_FRACTION = 0.2


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """sklearn's "balanced" rule: n / (2 * n_class) per row."""
    n = len(y)
    pos = max(int(y.sum()), 1)
    neg = max(n - int(y.sum()), 1)
    return np.where(y == 1, n / (2.0 * pos), n / (2.0 * neg))


def fit(config: str, X: sp.csr_matrix, y: np.ndarray, seed: int):
    if len(np.unique(y)) != 2:
        raise ValueError("training needs both benign and malicious windows")
    kind, params = CONFIGS[config]
    w = balanced_weights(y)
    if kind == "mlp":
        clf = MLPClassifier(random_state=seed, **params)
    else:
        clf = LogisticRegression(random_state=seed, **params)
    with warnings.catch_warnings():
        # A bounded epoch count is part of the configuration, not a failure.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y, sample_weight=w)
    return clf


def window_scores(clf, X: sp.csr_matrix) -> np.ndarray:
    if X.shape[0] == 0:
        return np.zeros(0)
    return clf.predict_proba(X)[:, 1]


@dataclass
class Pool:
    """Window features of a set of processes, with per-process label, attack family (or ""),
    benign group (workload; for ADFA each trace is its own group) and source."""

    X: sp.csr_matrix
    owner: np.ndarray
    label: np.ndarray  # per process, 1 = malicious
    family: np.ndarray  # per process
    group: np.ndarray  # per process
    source: np.ndarray  # per process

    @classmethod
    def build(cls, seqs: Sequence[Sequence[int]], labels, families, groups, sources) -> "Pool":
        X, owner = contract.many_sequence_features(seqs)
        return cls(X, owner, np.asarray(labels, dtype=np.int64), np.asarray(families, dtype=object),
                   np.asarray(groups, dtype=object), np.asarray(sources, dtype=object))

    def __len__(self) -> int:
        return len(self.label)

    def rows(self, procs: np.ndarray) -> np.ndarray:
        return np.isin(self.owner, procs)

    def fit(self, config: str, procs: np.ndarray, seed: int):
        mask = self.rows(procs)
        return fit(config, self.X[mask], self.label[self.owner[mask]], seed)

    def scores(self, clf, procs: np.ndarray) -> np.ndarray:
        """Process scores of `procs` (in that order)."""
        procs = np.asarray(procs)
        mask = self.rows(procs)
        ws = window_scores(clf, self.X[mask])
        every = contract.process_scores(ws, self.owner[mask], len(self))
        return every[procs]

    def counts(self, procs: np.ndarray) -> dict:
        out = {}
        procs = np.asarray(procs)
        for src in sorted(set(self.source[procs])):
            p = procs[self.source[procs] == src]
            out[str(src)] = {"benign_processes": int((self.label[p] == 0).sum()), "malicious_processes": int((self.label[p] == 1).sum())}
        mask = self.rows(procs)
        y = self.label[self.owner[mask]]
        out["windows"] = {"benign": int((y == 0).sum()), "malicious": int((y == 1).sum())}
        return out


def _auc(b: np.ndarray, m: np.ndarray) -> float:
    return float(roc_auc_score(np.r_[np.zeros(len(b)), np.ones(len(m))], np.r_[b, m]))


def _inner_fold(pool: Pool, config: str, train: np.ndarray, held_benign: np.ndarray, fam: str, seed: int) -> float:
    fam_procs = train[pool.family[train] == fam]
    fit_procs = np.setdiff1d(train, np.r_[fam_procs, held_benign])
    clf = pool.fit(config, fit_procs, seed)
    return _auc(pool.scores(clf, held_benign), pool.scores(clf, fam_procs))


def select_config(pool: Pool, train: np.ndarray, seed: int, n_jobs: int = 2) -> tuple[str, dict]:
    """Inner leave-one-family-out over the malicious families in `train`, with a seeded fifth of
    the benign groups in `train` held out as inner-validation benign; returns the config with
    the best mean inner AUC (first in CONFIGS on ties) and every config's inner scores."""
    train = np.asarray(train)
    fams = sorted(set(pool.family[train[pool.label[train] == 1]]))
    if len(fams) < 2:
        return APRIORI, {"note": "fewer than two families: a-priori config"}
    benign = train[pool.label[train] == 0]
    groups = sorted(set(pool.group[benign]))
    rng = np.random.default_rng(seed)
    n_held = max(1, int(round(INNER_BENIGN_FRACTION * len(groups))))
    held_groups = set(rng.permutation(np.array(groups, dtype=object))[:n_held])
    held_benign = benign[np.array([g in held_groups for g in pool.group[benign]])]
    jobs = [(c, f) for c in CONFIGS for f in fams]
    aucs = Parallel(n_jobs=n_jobs)(delayed(_inner_fold)(pool, c, train, held_benign, f, seed) for c, f in jobs)
    table = {c: {} for c in CONFIGS}
    for (c, f), a in zip(jobs, aucs):
        table[c][f] = a
    means = {c: float(np.mean(list(v.values()))) for c, v in table.items()}
    best = max(CONFIGS, key=lambda c: (means[c], -list(CONFIGS).index(c)))
    return best, {"inner_mean_auc": means, "inner_auc": table, "inner_benign_processes": int(len(held_benign))}


def export_weights(clf) -> dict[str, np.ndarray]:
    """The classifier's parameters as the ONNX graph takes them (float32): W1/b1/W2/b2 for the
    MLP, W/b for logistic regression."""
    if isinstance(clf, MLPClassifier):
        if len(clf.coefs_) != 2 or clf.out_activation_ != "logistic" or clf.activation != "relu":
            raise ValueError("export handles exactly one ReLU hidden layer and a logistic output")
        return {
            "W1": clf.coefs_[0].astype(np.float32),
            "b1": clf.intercepts_[0].astype(np.float32),
            "W2": clf.coefs_[1].astype(np.float32),
            "b2": clf.intercepts_[1].astype(np.float32),
        }
    if isinstance(clf, LogisticRegression):
        return {"W": clf.coef_.T.astype(np.float32), "b": clf.intercept_.astype(np.float32)}
    raise TypeError(f"cannot export {type(clf).__name__}")
