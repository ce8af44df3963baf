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
