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
        # Vocabulary 2: some calls carry a class (an inet socket, a dup onto stdio, an open that creates).
        classed = {t for p in procs for t in p.tokens if t >= 1024}
        self.assertTrue({6185, 7713, 3841} <= classed, sorted(classed))
        self.assertEqual(procs[0].source, "tiny.jsonl")

    def test_missing_dir_is_empty(self):
        self.assertEqual(owndata.load_dir(Path("/nonexistent/vigil")), [])

    def test_errors_name_file_and_line(self):
        good = json.loads((FIXTURES / "tiny.jsonl").read_text().splitlines()[0])
        cases = {
            "not JSON": "{",
            "missing": json.dumps({k: v for k, v in good.items() if k != "tokens"}),
            "vocabulary": json.dumps(dict(good, tokens=[1, 2, 8704])),
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


class AttackSteps(unittest.TestCase):
    def proc(self, family, argv, exe="/usr/bin/bash", tokens=(512, 0, 1), label="malicious"):
        return owndata.Proc("x.jsonl", 1, 1, 0, exe, argv, label, family, family, list(tokens))

    def write(self, text):
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        p = Path(d.name) / "steps.toml"
        p.write_text(text)
        return p

    def test_steps_are_kept_context_dropped_benign_untouched(self):
        steps = owndata.load_steps(self.write(
            "[scan]\nargv = ['scan\\.sh run', '^nc ']\ntokens_any = [515]\n"
            "[memfd]\nexe = ['^/proc/self/fd/']\n"))
        procs = [
            self.proc("scan", ["bash", "scan.sh", "run"], tokens=(0, 515, 3)),  # a probing subshell
            self.proc("scan", ["bash", "scan.sh", "run"]),  # the harness: same argv, no connect
            self.proc("scan", ["nc", "-z", "h", "1-9"], tokens=(515,)),
            self.proc("scan", ["sleep", "1"], tokens=(515,)),  # connects, but not named
            self.proc("memfd", ["x"], exe="/proc/self/fd/3"),
            self.proc("memfd", ["id"], exe="/usr/bin/id"),
            self.proc("build", ["id"], exe="/usr/bin/id", label="benign"),
        ]
        kept, counts = owndata.apply_steps(procs, steps)
        self.assertEqual([procs.index(p) for p in kept], [0, 2, 4, 6])
        self.assertEqual(counts, {"memfd": {"steps": 1, "context": 1}, "scan": {"steps": 2, "context": 2}})

    def test_errors_name_the_file_family_and_field(self):
        cases = {
            "[a]\nargv = ['(']\n": "[a].argv",
            "[a]\nargv = 'x'\n": "[a].argv: expected a list",
            "[a]\nargv = ['x']\ntokens_any = [524]\n": "[a].tokens_any",
            "[a]\nargv = ['x']\ntokens_any = [8704]\n": "[a].tokens_any",
            "[a]\npath = ['x']\n": "unknown key 'path'",
            "[a]\ntokens_any = [1]\n": "names no process",
            "a = 1\n": "[a]: expected a table",
            "[a\n": "steps.toml",
        }
        for text, needle in cases.items():
            with self.assertRaises(ValueError, msg=text) as cm:
                owndata.load_steps(self.write(text))
            self.assertIn("steps.toml", str(cm.exception))
            self.assertIn(needle, str(cm.exception))

    def test_a_family_without_labels_or_steps_is_an_error(self):
        steps = owndata.load_steps(self.write("[scan]\nargv = ['^nc ']\n"))
        with self.assertRaisesRegex(ValueError, "'other'.*no entry"):
            owndata.apply_steps([self.proc("other", ["nc"])], steps)
        with self.assertRaisesRegex(ValueError, "name no process of scan"):
            owndata.apply_steps([self.proc("scan", ["bash"])], steps)

    def test_the_shipped_labels_parse_and_cover_every_recorded_family(self):
        models = Path(__file__).resolve().parents[2]
        steps = owndata.load_steps(models / "scenarios" / "attack-steps.toml")
        recorded = {p.stem.split("-")[1] for p in (models / "data").glob("malicious-*.jsonl")}
        self.assertTrue(recorded, "no recorded malicious data")
        self.assertLessEqual(recorded, set(steps))


if __name__ == "__main__":
    unittest.main()
