"""The model card renders from any eval.json the trainer has written: the committed one (which may
predate a section) and the same with the sections added since, present or not run."""

import copy
import json
import unittest
from pathlib import Path

from train import card

EVAL = Path(__file__).resolve().parents[2] / "eval.json"
SECTION = "### Own data: vocabulary 2 against vocabulary 1"


def committed() -> dict:
    return json.loads(EVAL.read_text())


def with_vocab_compared(ev: dict, classed: bool = True) -> dict:
    """`ev` with a `vocab_compared` block built from its own LOFO (vocabulary 1 a little worse)."""
    ev = copy.deepcopy(ev)
    per = {}
    for fam, r in ev["own"]["lofo"]["per_family"].items():
        a = r["auc_vs_test_benign"]
        v2 = {"auc_vs_test_benign": a, "over_alert": r["detected_at_fold_thresholds"]["alert"]["count"],
              "benign_test_over_alert": r["benign_test_over_fold_thresholds"]["alert"]["count"]}
        per[fam] = {"processes": r["processes"], "vocab2": v2,
                    "vocab1": dict(v2, auc_vs_test_benign=None if a is None else a * 0.9)}
    mean = {v: {"auc_vs_test_benign": 0.7, "detection_rate_alert": 0.05, "over_alert": 3,
                "processes": sum(r["processes"] for r in per.values()), "benign_test_over_alert": 0}
            for v in ("vocab2", "vocab1")}
    ev["own"]["vocab_compared"] = {
        "protocol": "test", "config": ev["shipped"]["config"], "own_tokens": 1000,
        "own_tokens_classed": 120 if classed else 0,
        "per_family": per if classed else None, "mean": mean if classed else None,
    }
    ev["export"]["metadata"]["vigil.vocab_version"] = "2"
    return ev


class Card(unittest.TestCase):
    def setUp(self):
        self.ev = committed()
        if not self.ev.get("own"):
            self.skipTest("the committed eval.json has no own data")

    def test_without_vocab_compared(self):
        ev = copy.deepcopy(self.ev)
        ev["own"].pop("vocab_compared", None)
        text = card.render(ev)
        self.assertTrue(text.startswith("# vigil behaviour model: model card"))
        self.assertNotIn(SECTION, text)

    def test_with_vocab_compared(self):
        text = card.render(with_vocab_compared(self.ev))
        self.assertIn(SECTION, text)
        self.assertIn("| held-out family | processes | AUC, vocabulary 2 | AUC, vocabulary 1 |", text)
        for fam in self.ev["own"]["lofo"]["per_family"]:
            self.assertIn(f"| {fam} |", text.split(SECTION)[1])
        self.assertIn("same recordings and the same config", text)
        self.assertIn("120 of 1,000 own tokens (12.0%) carry a class", text)
        self.assertIn("(vocabulary 2)", text)
        if self.ev["own"].get("labels_compared"):
            self.assertLess(text.index("attack steps against whole trees"), text.index(SECTION))
        if "Below 0.6 even trained on steps" in text:
            self.assertIn("not by which file or which address", text)
            self.assertNotIn("Vocabulary 1 carries", text)

    def test_vocab_compared_not_run(self):
        text = card.render(with_vocab_compared(self.ev, classed=False))
        self.assertIn(SECTION, text)
        self.assertIn("comparison was not run", text)
        self.assertNotIn("AUC, vocabulary 1", text)

    def test_vocabulary_1_card_keeps_its_wording(self):
        ev = copy.deepcopy(self.ev)
        ev["export"]["metadata"]["vigil.vocab_version"] = "1"
        ev["own"].pop("vocab_compared", None)
        text = card.render(ev)
        self.assertIn("(vocabulary 1)", text)
        self.assertNotIn("(vocabulary 2)", text)

    def test_a_vocabulary_1_model_on_classed_data_says_why(self):
        ev = with_vocab_compared(self.ev)
        ev["export"]["metadata"]["vigil.vocab_version"] = "1"
        ev["own"]["vocab_compared"]["shipped_vocab"] = 1
        ev["own"]["vocab_compared"]["mean"]["vocab2"]["auc_vs_test_benign"] = 0.6
        text = card.render(ev)
        self.assertIn("in vocabulary 1: the sensor records vocabulary 2", text)
        self.assertIn("held-out mean AUC 0.700 without the classes, 0.600 with them", text)
        self.assertIn("The shipped model is trained on vocabulary 1", text)
        self.assertNotIn("(vocabulary 2)", text)


if __name__ == "__main__":
    unittest.main()
