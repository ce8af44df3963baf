"""The whole of `train.main` on a small synthetic stand-in for ADFA-LD, with and without the
own-data fixture: every code path that real own data will take runs here first."""

import dataclasses
import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnx

from train import adfa, contract, main, owndata

FIXTURES = Path(__file__).resolve().parent / "fixtures"
COMMON = [0, 1, 3, 5, 9, 10, 11, 12, 257, 262]


def fake_adfa(seed: int = 0) -> adfa.Adfa:
    rng = np.random.default_rng(seed)

    def seq(n, motif=None):
        out = []
        while len(out) < n:
            out += rng.choice(COMMON, size=rng.integers(2, 8)).tolist()
            if motif is not None and rng.random() < 0.3:
                out += motif
        return out[:n]

    train = [adfa.Trace(f"t{i}", "train", "benign", "normal", 0, seq(int(rng.integers(40, 300)))) for i in range(30)]
    val = [adfa.Trace(f"v{i}", "validation", "benign", "normal", 0, seq(int(rng.integers(20, 400)))) for i in range(40)]
    attack = []
    for j, fam in enumerate(adfa.FAMILIES):
        motif = [59 + j, 42, 33 + j, 41]
        for r in range(4):
            attack.append(adfa.Trace(f"{fam}_{r}", "attack", "malicious", fam, r + 1, seq(int(rng.integers(60, 400)), motif)))
    return adfa.Adfa(train, val, attack)


class Pipeline(unittest.TestCase):
    def run_main(self, data_dir: Path, out: Path, *extra: str) -> dict:
        args = main.parse_args(["--data", str(data_dir), "--out", str(out), "--seed", "7",
                                "--steps", str(FIXTURES / "steps.toml"), *extra])
        d = fake_adfa()
        return main.run(args, {"with_vdso": d, "without_vdso": d}, d)

    def check_outputs(self, out: Path):
        model = onnx.load(str(out / "vigil.onnx"))
        meta = {p.key: p.value for p in model.metadata_props}
        a, q, k = (float(meta[f"vigil.threshold.{x}"]) for x in ("alert", "quarantine", "kill"))
        self.assertTrue(0 < a < q < k < 1)
        gold = json.loads((out / "golden.json").read_text())
        self.assertGreaterEqual(len(gold["cases"]), 20)
        lengths = {c["length"] for c in gold["cases"]}
        self.assertTrue({0, 63, 64, 65, 96} <= lengths)
        self.assertIn("profile", gold)
        # The Rust golden test must meet class tokens, up to the last one.
        tokens = {t for c in gold["cases"] for t in c["tokens"]}
        self.assertIn(8703, tokens)
        self.assertTrue(any(t >= 1024 for c in gold["cases"] if c["label"] == "synthetic" and c["name"] != "vocabulary_edges"
                            for t in c["tokens"]))
        self.assertFalse(any(524 <= t < 1024 or t >= 8704 for t in tokens))
        ev = json.loads((out / "eval.json").read_text())
        self.assertIn("supervised_lofo", ev["adfa"])
        return ev, (out / "README.md").read_text()

    def test_with_own_data(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.run_main(FIXTURES, Path(tmp))
            ev, card = self.check_outputs(Path(tmp))
            self.assertEqual(sorted(ev["own"]["lofo"]["per_family"]), ["cred_read", "memfd_exec", "reverse_shell"])
            split = ev["shipped"]["benign_split"]
            self.assertEqual(sorted(split["train"] + split["calibration"] + split["test"]),
                             ["cargo_build", "git", "nginx_bench", "tar_gzip"])
            self.assertIn("own", ev["shipped"]["training"])
            self.assertNotIn("pending", card)
            self.assertIn("reverse_shell", card)
            layers = ev["own"]["layers"]["groups"]
            self.assertIn("benign test", layers)
            self.assertEqual(sorted(k for k in layers if not k.startswith("benign")), ["cred_read", "memfd_exec", "reverse_shell"])
            for r in layers.values():
                # The gate only ever lowers a score.
                self.assertLessEqual(r["mean_score_gated"], r["mean_score_ungated"] + 1e-12)
                self.assertLessEqual(r["profiled"], r["processes"])
            self.assertIn("the daemon's two layers", card)
            # Whole trees by default; the two labellings scored on the same held-out steps.
            self.assertEqual(ev["shipped"]["own_labels"], "whole scenario trees")
            self.assertEqual(sum(c["steps"] for c in ev["own"]["steps"]["counts"].values()), 9)
            lc = ev["own"]["labels_compared"]
            self.assertEqual(sorted(lc["trained_on_trees"]["per_family"]), ["cred_read", "memfd_exec", "reverse_shell"])
            for fam, r in lc["trained_on_trees"]["per_family"].items():
                self.assertEqual(r["processes"], lc["trained_on_steps"]["per_family"][fam]["processes"])
            self.assertEqual(sum(r["processes"] for r in lc["trained_on_trees"]["per_family"].values()), 9)
            self.assertTrue(ev["own"]["calibration_top"])
            self.assertIn("attack steps against whole trees", card)
            # Shipped on vocabulary 1 by default; vocabulary 2 compared on the same folds, the
            # shipped vocabulary's column is the LOFO above.
            self.check_vocab_compared(ev, card, shipped=1)
            gold = json.loads((Path(tmp) / "golden.json").read_text())
            self.assertTrue(any(c["name"].startswith("own_") for c in gold["cases"]))

    def test_trained_on_vocabulary_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.run_main(FIXTURES, Path(tmp), "--vocab", "2")
            ev, card = self.check_outputs(Path(tmp))
            self.check_vocab_compared(ev, card, shipped=2)

    def check_vocab_compared(self, ev: dict, card: str, shipped: int):
        other = 3 - shipped
        vc = ev["own"]["vocab_compared"]
        lofo = ev["own"]["lofo"]["per_family"]
        self.assertEqual(vc["config"], ev["shipped"]["config"])
        self.assertEqual(vc["shipped_vocab"], shipped)
        self.assertGreater(vc["own_tokens_classed"], 0)
        self.assertEqual(sorted(vc["per_family"]), sorted(lofo))
        for fam, r in vc["per_family"].items():
            self.assertEqual(r["processes"], lofo[fam]["processes"])
            self.assertEqual(r[f"vocab{shipped}"]["auc_vs_test_benign"], lofo[fam]["auc_vs_test_benign"])
            self.assertEqual(r[f"vocab{shipped}"]["over_alert"], lofo[fam]["detected_at_fold_thresholds"]["alert"]["count"])
            for v in ("vocab1", "vocab2"):
                self.assertEqual(set(r[v]), {"auc_vs_test_benign", "over_alert", "benign_test_over_alert"})
                self.assertLessEqual(r[v]["over_alert"], r["processes"])
        for v in ("vocab1", "vocab2"):
            m = vc["mean"][v]
            self.assertEqual(m["processes"], sum(r["processes"] for r in lofo.values()))
            self.assertTrue(0.0 <= m["auc_vs_test_benign"] <= 1.0)
        self.assertAlmostEqual(vc["mean"][f"vocab{shipped}"]["detection_rate_alert"],
                               ev["own"]["lofo"]["mean_detection_rate_alert"])
        self.assertNotEqual(vc["mean"][f"vocab{other}"], vc["mean"][f"vocab{shipped}"], "the other vocabulary was run")
        self.assertIn("### Own data: vocabulary 2 against vocabulary 1", card)
        self.assertLess(card.index("### Own data: attack steps against whole trees"),
                        card.index("### Own data: vocabulary 2 against vocabulary 1"))
        self.assertIn(f"trained on vocabulary {shipped}", card)
        self.assertIn("(vocabulary 2)" if shipped == 2 else "in vocabulary 1: the sensor records vocabulary 2", card)
        self.assertEqual(ev["export"]["metadata"]["vigil.vocab_version"], str(shipped))
        self.assertIn(f"token vocabulary {shipped}", ev["export"]["metadata"]["vigil.trained_on"])

    def test_trained_on_attack_steps(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.run_main(FIXTURES, Path(tmp), "--labels", "steps")
            ev, card = self.check_outputs(Path(tmp))
            self.assertEqual(ev["shipped"]["own_labels"], "attack steps")
            self.assertEqual(ev["shipped"]["training"]["own"]["malicious_processes"], 9)
            self.assertIn("The shipped model trains on attack steps.", card)

    def test_vocabularies_not_compared_without_classes(self):
        """Own data recorded before vocabulary 2 has nothing to project: no second LOFO."""
        procs = [dataclasses.replace(p, tokens=contract.project_v1(p.tokens)) for p in owndata.load_dir(FIXTURES)]
        args = main.parse_args(["--data", str(FIXTURES)])
        vc = main.vocab_compared(args, fake_adfa(), procs, {"config": "mlp32_l2_1e-4"})
        self.assertEqual(vc["own_tokens_classed"], 0)
        self.assertEqual(vc["own_tokens"], sum(len(p.tokens) for p in procs))
        self.assertIsNone(vc["per_family"])

    def test_without_own_data(self):
        with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as empty:
            self.run_main(Path(empty), Path(tmp))
            ev, card = self.check_outputs(Path(tmp))
            self.assertIsNone(ev["own"])
            self.assertIn("Own-data results are pending", card)


if __name__ == "__main__":
    unittest.main()
