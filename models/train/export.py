"""Writes `vigil.onnx` by hand and the golden scores the Rust side checks itself against.

The graph is built node by node with `onnx.helper` rather than through a converter, so that it
contains exactly Gemm, Relu, Gemm, Sigmoid with fixed shapes [1, 4096] -> [1, 1] (what tract
runs and optimises once), opset 17 and IR version 8 (tract reads IR <= 9), plus the
`metadata_props` the daemon checks at load. Before anything is written, onnxruntime runs the
graph and must agree with scikit-learn's `predict_proba` to 1e-5: a wrong export fails here,
not in the daemon.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import contract

OPSET = 17
IR_VERSION = 8
INPUT = "features"
OUTPUT = "score"


def metadata(thresholds: dict[str, float], trained_on: str, vocab: int = contract.VOCAB_VERSION) -> dict[str, str]:
    """Every `metadata_props` key of FEATURES.md, as strings; `vocab` is the token vocabulary the
    model was trained on (1: the daemon feeds it tokens with their classes dropped)."""
    if vocab not in (1, contract.VOCAB_VERSION):
        raise ValueError(f"no token vocabulary {vocab}")
    a, q, k = thresholds["alert"], thresholds["quarantine"], thresholds["kill"]
    if not (0.0 < a < q < k < 1.0):
        raise ValueError(f"thresholds must increase strictly inside (0, 1): {thresholds}")
    text = {name: format_threshold(x) for name, x in (("alert", a), ("quarantine", q), ("kill", k))}
    if not (float(text["alert"]) < float(text["quarantine"]) < float(text["kill"])):
        raise ValueError(f"thresholds collapse when written out: {text}")
    return {
        "vigil.contract": str(contract.CONTRACT_VERSION),
        "vigil.vocab_version": str(vocab),
        "vigil.features": contract.FEATURES_NAME,
        "vigil.dim": str(contract.DIM),
        "vigil.window": str(contract.WINDOW),
        "vigil.stride": str(contract.STRIDE),
        "vigil.aggregate_k": str(contract.AGGREGATE_K),
        "vigil.threshold.alert": text["alert"],
        "vigil.threshold.quarantine": text["quarantine"],
        "vigil.threshold.kill": text["kill"],
        "vigil.trained_on": trained_on,
    }


def format_threshold(x: float) -> str:
    """Eight decimals: more than float32 resolves near 1, so nothing is lost in the daemon."""
    return f"{x:.8f}"


def build_model(weights: dict[str, np.ndarray], meta: dict[str, str]) -> onnx.ModelProto:
    """features[1,D] -> Gemm(W1,b1) -> Relu -> Gemm(W2,b2) -> Sigmoid -> score[1,1] for the MLP,
    features[1,D] -> Gemm(W,b) -> Sigmoid -> score[1,1] for logistic regression."""
    D = contract.DIM
    w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    if set(w) == {"W1", "b1", "W2", "b2"}:
        hidden = w["W1"].shape[1]
        shapes = {"W1": (D, hidden), "b1": (hidden,), "W2": (hidden, 1), "b2": (1,)}
        nodes = [
            helper.make_node("Gemm", [INPUT, "W1", "b1"], ["hidden_pre"], name="dense1"),
            helper.make_node("Relu", ["hidden_pre"], ["hidden"], name="relu1"),
            helper.make_node("Gemm", ["hidden", "W2", "b2"], ["logit"], name="dense2"),
            helper.make_node("Sigmoid", ["logit"], [OUTPUT], name="sigmoid"),
        ]
        name = "vigil_window_mlp"
    elif set(w) == {"W", "b"}:
        shapes = {"W": (D, 1), "b": (1,)}
        nodes = [
            helper.make_node("Gemm", [INPUT, "W", "b"], ["logit"], name="dense"),
            helper.make_node("Sigmoid", ["logit"], [OUTPUT], name="sigmoid"),
        ]
        name = "vigil_window_logreg"
    else:
        raise ValueError(f"unexpected weights {sorted(w)}")
    for k, shape in shapes.items():
        if w[k].shape != shape:
            raise ValueError(f"{k}: shape {w[k].shape}, expected {shape}")
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, D])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, 1])],
        initializer=[numpy_helper.from_array(w[k], k) for k in shapes],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="vigil-train",
        producer_version=str(contract.CONTRACT_VERSION),
        doc_string="vigil behaviour model: hashed-ngram-v1 window -> P(malicious). See models/FEATURES.md.",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


class OrtScorer:
    """Scores windows through onnxruntime, one [1, D] row at a time as the daemon does."""

    def __init__(self, model: onnx.ModelProto):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def windows(self, X) -> np.ndarray:
        X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
        out = np.zeros(X.shape[0], dtype=np.float32)
        for i in range(X.shape[0]):
            out[i] = self.sess.run([OUTPUT], {INPUT: X[i : i + 1].astype(np.float32)})[0][0, 0]
        return out


def cross_check(model: onnx.ModelProto, clf, X, tol: float = 1e-5) -> float:
    """Max |onnxruntime - sklearn predict_proba| over the rows of X; raises above `tol`."""
    ort_scores = OrtScorer(model).windows(X)
    sk = clf.predict_proba(X)[:, 1]
    diff = float(np.max(np.abs(ort_scores.astype(np.float64) - sk))) if len(sk) else 0.0
    if diff >= tol:
        raise ValueError(f"onnxruntime and sklearn disagree by {diff:.3g} (limit {tol})")
    return diff


def save(model: onnx.ModelProto, path: Path) -> None:
    path.write_bytes(model.SerializeToString())
    onnx.checker.check_model(str(path), full_check=True)


def golden(
    model: onnx.ModelProto,
    cases: Sequence[dict],
    profile_case: dict | None = None,
    feature_checks: int = 4,
    vocab: int = contract.VOCAB_VERSION,
) -> dict:
    """Expected per-window and process scores of `cases` ({name, label, note, tokens}), for a
    model of vocabulary `vocab`: the tokens are written as given and scored as the daemon feeds
    them to such a model (projected to vocabulary 1 for a vocabulary 1 model).

    Features come from the contract code (the vectorised path, checked here against the
    reference), scores from onnxruntime; the first `feature_checks` non-empty cases also carry
    the non-zero features of their first window, so a Rust mismatch can be traced to features or
    to the model.
    """
    scorer = OrtScorer(model)
    out_cases = []
    checked = 0
    for c in cases:
        toks = [int(t) for t in c["tokens"]]
        fed = contract.project_v1(toks) if vocab == 1 else toks
        X = contract.sequence_features(fed)
        ref = np.array(contract.sequence_features_ref(fed), dtype=np.float32).reshape(-1, contract.DIM)
        if not np.allclose(X.toarray(), ref, atol=1e-6):
            raise AssertionError(f"golden case {c['name']}: vectorised features differ from the reference")
        ws = scorer.windows(X)
        entry = {
            "name": c["name"],
            "label": c["label"],
            "note": c.get("note", ""),
            "length": len(toks),
            "tokens": toks,
            "windows": [list(b) for b in contract.window_bounds(len(toks))],
            "window_scores": [float(s) for s in ws],
            "process_score": contract.process_score_ref([float(s) for s in ws]),
        }
        if checked < feature_checks and X.shape[0] > 0:
            row = X.getrow(0)
            order = np.argsort(row.indices)
            entry["first_window_features"] = {
                "indices": [int(i) for i in row.indices[order]],
                "values": [float(v) for v in row.data[order]],
            }
            checked += 1
        out_cases.append(entry)
    meta = {p.key: p.value for p in model.metadata_props}
    doc = {
        "contract": contract.CONTRACT_VERSION,
        "tolerance": 1e-4,
        "metadata": meta,
        "cases": out_cases,
    }
    if profile_case is not None:
        doc["profile"] = profile_case
    return doc


def dumps(doc) -> str:
    """Indented JSON with every list of plain numbers kept on one line, so a file of long token
    sequences stays readable and diffable."""
    text = json.dumps(doc, indent=1)
    num = r"-?[0-9][0-9.eE+-]*"
    flat = re.compile(r"\[\s*(" + num + r"(?:,\s*" + num + r")*)\s*\]")
    return flat.sub(lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)


def write_json(doc: dict, path: Path) -> None:
    path.write_text(dumps(doc) + "\n")
