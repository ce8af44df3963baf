"""vigil's own recorded datasets, as exported by `vigil dataset export FILE.vds > FILE.jsonl`.

One JSON object per recorded process (schema at the bottom of FEATURES.md). These are what the
shipped model is meant for: x86-64, this kernel, vigil's own sensor, so they decide the
thresholds. Benign processes are grouped by workload (the `family` field: "attack family or
benign workload name" in agent/src/dataset.rs) so that a workload is either in training or in a
held-out split, never both: windows of one workload are too alike for a window-level split to
mean anything. Malicious processes are grouped by attack family for leave-one-family-out.
"""

from __future__ import annotations

import json
import random
import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from . import contract

REQUIRED = ("pid", "start_ns", "exe", "label", "family", "scenario", "tokens")


@dataclass
class Proc:
    """One recorded process."""

    source: str  # file name it came from
    pid: int
    start_ns: int
    ppid: int
    exe: str
    argv: list[str]
    label: str  # "benign" | "malicious"
    family: str
    scenario: str
    tokens: list[int]

    @property
    def malicious(self) -> bool:
        return self.label == "malicious"


def read_jsonl(path: Path) -> list[Proc]:
    """Reads one export; a malformed line is an error naming the file and line."""
    out = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON: {e}") from None
            missing = [k for k in REQUIRED if k not in obj]
            if missing:
                raise ValueError(f"{where}: missing {', '.join(missing)}")
            if obj["label"] not in ("benign", "malicious"):
                raise ValueError(f"{where}: label must be benign or malicious, got {obj['label']!r}")
            try:
                contract.check_tokens(obj["tokens"])
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
            out.append(
                Proc(
                    source=path.name,
                    pid=int(obj["pid"]),
                    start_ns=int(obj["start_ns"]),
                    ppid=int(obj.get("ppid", 0)),
                    exe=str(obj["exe"]),
                    argv=[str(a) for a in obj.get("argv", [])],
                    label=obj["label"],
                    family=str(obj["family"]),
                    scenario=str(obj["scenario"]),
                    tokens=[int(t) for t in obj["tokens"]],
                )
            )
    return out


def load_dir(data_dir: Path) -> list[Proc]:
    """Every `*.jsonl` in `data_dir`, files in name order; [] when there are none."""
    procs: list[Proc] = []
    if data_dir.is_dir():
        for p in sorted(data_dir.glob("*.jsonl")):
            procs.extend(read_jsonl(p))
    return procs


def group_key(p: Proc, benign_by: str = "family") -> str:
    """The unit of splitting: workload for benign processes, attack family for malicious ones."""
    if p.malicious:
        return p.family
    return getattr(p, benign_by) or p.family or p.scenario


def groups(procs: list[Proc], label: str, benign_by: str = "family") -> dict[str, list[Proc]]:
    out: dict[str, list[Proc]] = defaultdict(list)
    for p in procs:
        if p.label == label:
            out[group_key(p, benign_by)].append(p)
    return dict(sorted(out.items()))


@dataclass
class BenignSplit:
    """Benign workloads assigned whole to one of three roles."""

    train: list[str]
    calibration: list[str]  # held out; thresholds are chosen here and only here
    test: list[str]  # held out; false positives are counted here


def split_benign(workloads: list[str], seed: int, fractions=(0.6, 0.2, 0.2)) -> BenignSplit:
    """Shuffles workload names with `seed` and cuts them 60/20/20 (each role gets at least one
    workload when there are three or more); with fewer than 3 workloads no honest split exists
    and this raises."""
    names = sorted(workloads)
    if len(names) < 3:
        raise ValueError(f"need at least 3 benign workloads to split train/calibration/test, have {names}")
    random.Random(seed).shuffle(names)
    n = len(names)
    n_cal = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2]))
    n_train = n - n_cal - n_test
    if n_train < 1:
        n_train, n_cal, n_test = 1, 1, n - 2
    return BenignSplit(
        train=sorted(names[:n_train]),
        calibration=sorted(names[n_train : n_train + n_cal]),
        test=sorted(names[n_train + n_cal :]),
    )


# --- attack steps ------------------------------------------------------------------------------------
STEP_KEYS = ("argv", "exe", "tokens_any")


@dataclass
class StepRule:
    """Which processes of one family perform its technique (models/scenarios/attack-steps.toml)."""

    argv: list[re.Pattern]
    exe: list[re.Pattern]
    tokens_any: frozenset[int]

    def matches(self, p: Proc) -> bool:
        named = any(r.search(" ".join(p.argv)) for r in self.argv) or any(r.search(p.exe) for r in self.exe)
        return named and (not self.tokens_any or not self.tokens_any.isdisjoint(p.tokens))


def load_steps(path: Path) -> dict[str, StepRule]:
    """Parses the attack-step labels; an unknown key, a bad pattern or token is an error naming
    the file, the family and the field."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: {e}") from None
    out = {}
    for fam, entry in raw.items():
        where = f"{path}: [{fam}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a table with {', '.join(STEP_KEYS)}")
        unknown = sorted(set(entry) - set(STEP_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r}, expected one of {', '.join(STEP_KEYS)}")

        def patterns(key):
            vals = entry.get(key, [])
            if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
                raise ValueError(f"{where}.{key}: expected a list of regular expressions")
            try:
                return [re.compile(v) for v in vals]
            except re.error as e:
                raise ValueError(f"{where}.{key}: {e.pattern!r}: {e}") from None

        tokens = entry.get("tokens_any", [])
        if not isinstance(tokens, list) or not all(isinstance(t, int) and contract.is_token(t) for t in tokens):
            raise ValueError(f"{where}.tokens_any: expected tokens of vocabulary {contract.VOCAB_VERSION} "
                             f"(0..={contract.VOCAB_V1_SIZE - 1}, {contract.FIRST_CLASSED}..={contract.VOCAB_SIZE - 1})")
        rule = StepRule(argv=patterns("argv"), exe=patterns("exe"), tokens_any=frozenset(tokens))
        if not rule.argv and not rule.exe:
            raise ValueError(f"{where}: names no process (neither argv nor exe)")
        out[fam] = rule
    return out


def apply_steps(procs: list[Proc], steps: dict[str, StepRule]) -> tuple[list[Proc], dict]:
    """Keeps benign processes and the malicious processes that are attack steps; returns them
    with per-family counts of steps and of the context left out. A malicious family without a
    rule, or whose rule names none of its processes, is an error: its labels would silently
    vanish."""
    kept, counts = [], {}
    for p in procs:
        if not p.malicious:
            kept.append(p)
            continue
        rule = steps.get(p.family)
        if rule is None:
            raise ValueError(f"malicious family {p.family!r} ({p.source}) has no entry in the attack-step labels")
        c = counts.setdefault(p.family, {"steps": 0, "context": 0})
        if rule.matches(p):
            kept.append(p)
            c["steps"] += 1
        else:
            c["context"] += 1
    empty = sorted(f for f, c in counts.items() if c["steps"] == 0)
    if empty:
        raise ValueError(f"the attack-step labels name no process of {', '.join(empty)}")
    return kept, dict(sorted(counts.items()))
