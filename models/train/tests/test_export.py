"""ONNX export roundtrip on tiny random models: the hand-built graph must load, pass the
checker, carry every metadata key, use only tract-friendly ops and agree with scikit-learn."""

import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnx
import scipy.sparse as sp

from train import contract, export, supervised

THR = {"alert": 0.5, "quarantine": 0.7, "kill": 0.9}
KEYS = {
    "vigil.contract", "vigil.vocab_version", "vigil.features", "vigil.dim", "vigil.window",
    "vigil.stride", "vigil.aggregate_k", "vigil.threshold.alert", "vigil.threshold.quarantine",
    "vigil.threshold.kill", "vigil.trained_on",
}


def tiny_data(seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 40 if i % 2 else 80, size=rng.integers(10, 150)).tolist() for i in range(24)]
    X, owner = contract.many_sequence_features(seqs)
    y = (owner % 2).astype(np.int64)
    return X, y


class Export(unittest.TestCase):
    def roundtrip(self, config):
        X, y = tiny_data()
        clf = supervised.fit(config, X, y, seed=0)
        model = export.build_model(supervised.export_weights(clf), export.metadata(THR, "unit test"))
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "m.onnx"
            export.save(model, path)
            loaded = onnx.load(str(path))
        self.assertLessEqual(loaded.ir_version, 9)
        self.assertEqual([o.version for o in loaded.opset_import if o.domain in ("", "ai.onnx")], [17])
        self.assertTrue({n.op_type for n in loaded.graph.node} <= {"Gemm", "Relu", "Sigmoid"})
        meta = {p.key: p.value for p in loaded.metadata_props}
        self.assertEqual(set(meta), KEYS)
        self.assertEqual(meta["vigil.features"], "hashed-ngram-v1")
        self.assertEqual(meta["vigil.dim"], "4096")
        self.assertEqual(meta["vigil.vocab_version"], "2")
        self.assertEqual(float(meta["vigil.threshold.kill"]), 0.9)
        shape = [d.dim_value for d in loaded.graph.input[0].type.tensor_type.shape.dim]
        self.assertEqual((loaded.graph.input[0].name, shape), ("features", [1, 4096]))
        self.assertEqual(loaded.graph.output[0].name, "score")
        diff = export.cross_check(loaded, clf, X)
        self.assertLess(diff, 1e-5)
        zero = export.OrtScorer(loaded).windows(sp.csr_matrix((1, contract.DIM), dtype=np.float32))
        self.assertTrue(0.0 <= zero[0] <= 1.0)

    def test_mlp_roundtrip(self):
        self.roundtrip("mlp32_l2_1e-4")

    def test_logreg_roundtrip(self):
        self.roundtrip("logreg_C1")

    def test_thresholds_must_increase(self):
        with self.assertRaises(ValueError):
            export.metadata({"alert": 0.5, "quarantine": 0.5, "kill": 0.9}, "x")

    def test_a_vocabulary_1_model_scores_golden_tokens_without_their_classes(self):
        X, y = tiny_data(1)
        clf = supervised.fit("logreg_C1", X, y, seed=0)
        model = export.build_model(supervised.export_weights(clf), export.metadata(THR, "unit test", vocab=1))
        self.assertEqual({p.key: p.value for p in model.metadata_props}["vigil.vocab_version"], "1")
        classed = [contract.class_token(257, 6), contract.class_token(9, 9), 42, contract.TOK_EXEC] * 20
        doc = export.golden(model, [{"name": "c", "label": "synthetic", "tokens": classed},
                                    {"name": "p", "label": "synthetic", "tokens": contract.project_v1(classed)}], vocab=1)
        c, p = doc["cases"]
        self.assertEqual(c["tokens"], classed, "written as recorded: the daemon does the projection")
        self.assertEqual(c["window_scores"], p["window_scores"])
        with self.assertRaises(ValueError):
            export.metadata(THR, "x", vocab=3)

    def test_golden_document(self):
        X, y = tiny_data(1)
        clf = supervised.fit("mlp32_l2_1e-4", X, y, seed=0)
        model = export.build_model(supervised.export_weights(clf), export.metadata(THR, "unit test"))
        cases = [{"name": f"len{n}", "label": "synthetic", "tokens": list(range(n))} for n in (0, 3, 64, 65, 96)]
        doc = export.golden(model, cases)
        by = {c["name"]: c for c in doc["cases"]}
        self.assertEqual(by["len0"]["window_scores"], [])
        self.assertEqual(by["len0"]["process_score"], 0.0)
        self.assertEqual(len(by["len65"]["window_scores"]), 2)
        self.assertEqual(by["len96"]["windows"], [[0, 64], [32, 96]])
        self.assertIn("first_window_features", by["len3"])
        for c in doc["cases"]:
            self.assertAlmostEqual(c["process_score"], contract.process_score(c["window_scores"]), places=9)
        # What the Rust side does: hashes from scratch and compares.
        x = contract.window_features_ref(list(range(3)))
        f = by["len3"]["first_window_features"]
        self.assertEqual(f["indices"], [i for i, v in enumerate(x) if v != 0])


if __name__ == "__main__":
    unittest.main()
