"""Own-data reading and the workload split, on the synthetic fixture `fixtures/tiny.jsonl`
(4 benign workloads, 3 attack families, 21 processes) until real exports exist."""

import json
import tempfile
import unittest
from pathlib import Path

from train import owndata

FIXTURES = Path(__file__).resolve().parent / "fixtures"


class Reading(unittest.TestCase):
    def test_fixture(self):
        procs = owndata.load_dir(FIXTURES)
        self.assertEqual(len(procs), 21)
        self.assertEqual(sorted(owndata.groups(procs, "benign")), ["cargo_build", "git", "nginx_bench", "tar_gzip"])
        self.assertEqual(sorted(owndata.groups(procs, "malicious")), ["cred_read", "memfd_exec", "reverse_shell"])
        self.assertTrue(all(p.tokens[0] == 512 for p in procs))
        self.assertEqual(procs[0].source, "tiny.jsonl")

    def test_missing_dir_is_empty(self):
        self.assertEqual(owndata.load_dir(Path("/nonexistent/vigil")), [])

    def test_errors_name_file_and_line(self):
        good = json.loads((FIXTURES / "tiny.jsonl").read_text().splitlines()[0])
        cases = {
            "not JSON": "{",
            "missing": json.dumps({k: v for k, v in good.items() if k != "tokens"}),
            "vocabulary": json.dumps(dict(good, tokens=[1, 2, 524])),
            "benign or malicious": json.dumps(dict(good, label="weird")),
        }
        for needle, line in cases.items():
            with tempfile.TemporaryDirectory() as d:
                p = Path(d) / "x.jsonl"
                p.write_text(json.dumps(good) + "\n" + line + "\n")
                with self.assertRaises(ValueError) as cm:
                    owndata.read_jsonl(p)
                self.assertIn("x.jsonl:2", str(cm.exception))
                self.assertIn(needle, str(cm.exception))


class Split(unittest.TestCase):
    def test_disjoint_complete_deterministic(self):
        names = [f"w{i}" for i in range(7)]
        s = owndata.split_benign(names, seed=1)
        self.assertEqual(sorted(s.train + s.calibration + s.test), sorted(names))
        self.assertFalse(set(s.train) & set(s.calibration) or set(s.train) & set(s.test) or set(s.calibration) & set(s.test))
        self.assertTrue(s.train and s.calibration and s.test)
        self.assertEqual(s, owndata.split_benign(list(reversed(names)), seed=1))

    def test_too_few_workloads(self):
        with self.assertRaises(ValueError):
            owndata.split_benign(["a", "b"], seed=1)


if __name__ == "__main__":
    unittest.main()
