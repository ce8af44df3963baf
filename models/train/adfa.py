"""ADFA-LD (Creech & Hu, UNSW 2013), read straight from the published zip.

The traces are i386 syscall numbers from Ubuntu 11.04; vigil's tokens are x86-64 syscall
numbers (FEATURES.md), so every trace is mapped through `i386_to_x86_64.tsv` and ids with no
x86-64 equivalent (socketcall, ipc) or missing from the table are dropped. "Without vDSO"
also drops time/gettimeofday/clock_gettime/getcpu, which the agent never sees on x86-64:
results are always reported both ways because those calls are 28% of the attack tokens.
ADFA-LD records numbers only, neither results nor arguments, so its tokens are the class-less
ones of vocabulary 2 (0..=511): valid input as they are, and unchanged by the projection to
vocabulary 1.
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# x86-64 ids of the calls served by the vDSO: time, gettimeofday, clock_gettime, getcpu.
VDSO_X86_64 = frozenset({201, 96, 228, 309})

FAMILIES = ("Adduser", "Hydra_FTP", "Hydra_SSH", "Java_Meterpreter", "Meterpreter", "Web_Shell")

_PREFIX = "ADFA-LD/"
_ATTACK_DIR = re.compile(r"^ADFA-LD/Attack_Data_Master/(?P<family>[A-Za-z_]+?)_(?P<run>\d+)/[^/]+\.txt$")


@dataclass
class Trace:
    """One ADFA-LD trace (one process), tokens already in x86-64 ids."""

    name: str  # path inside the zip
    split: str  # "train" | "validation" | "attack"
    label: str  # "benign" | "malicious"
    family: str  # attack family, or "normal"
    run: int  # attack run 1..10, 0 for normals
    tokens: list[int]


@dataclass
class Adfa:
    train: list[Trace]
    validation: list[Trace]
    attack: list[Trace]
    dropped: Counter = field(default_factory=Counter)  # i386 id -> tokens dropped (no equivalent)
    vdso_removed: bool = False

    def by_family(self) -> dict[str, list[Trace]]:
        out: dict[str, list[Trace]] = {f: [] for f in FAMILIES}
        for t in self.attack:
            out[t.family].append(t)
        return out


def load_mapping(tsv: Path) -> dict[int, int | None]:
    """i386 id -> x86-64 id, or None where the table says there is no equivalent."""
    out: dict[int, int | None] = {}
    with open(tsv, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            x = row["x86_64_id"].strip()
            out[int(row["adfa_id"])] = int(x) if x else None
    return out


def map_trace(i386: list[int], mapping: dict[int, int | None], drop_vdso: bool, dropped: Counter) -> list[int]:
    out = []
    for s in i386:
        x = mapping.get(s)
        if x is None:
            dropped[s] += 1
            continue
        if drop_vdso and x in VDSO_X86_64:
            continue
        out.append(x)
    return out


def load(root: Path, drop_vdso: bool, raw_i386: bool = False) -> Adfa:
    """Reads `root/ADFA-LD.zip` with `root/i386_to_x86_64.tsv`; traces sorted by name.

    `raw_i386` keeps the published i386 ids unmapped: not vigil tokens, only for comparing with
    the figures published on the raw dataset."""
    mapping = load_mapping(root / "i386_to_x86_64.tsv")
    if raw_i386:
        if drop_vdso:
            raise ValueError("raw i386 ids are only offered as published (with vDSO calls)")
        mapping = {i: i for i in range(512)}
    dropped: Counter = Counter()
    train, validation, attack = [], [], []
    with zipfile.ZipFile(root / "ADFA-LD.zip") as z:
        for name in sorted(z.namelist()):
            if not name.endswith(".txt") or not name.startswith(_PREFIX):
                continue
            rel = name[len(_PREFIX) :]
            if rel.startswith("Training_Data_Master/"):
                split, label, family, run = "train", "benign", "normal", 0
            elif rel.startswith("Validation_Data_Master/"):
                split, label, family, run = "validation", "benign", "normal", 0
            elif rel.startswith("Attack_Data_Master/"):
                m = _ATTACK_DIR.match(name)
                if not m or m["family"] not in FAMILIES:
                    raise ValueError(f"unexpected attack path in ADFA-LD.zip: {name}")
                split, label, family, run = "attack", "malicious", m["family"], int(m["run"])
            else:
                continue  # the syscall list, which does not decode these ids anyway
            raw = [int(v) for v in z.read(name).split()]
            t = Trace(name, split, label, family, run, map_trace(raw, mapping, drop_vdso, dropped))
            {"train": train, "validation": validation, "attack": attack}[split].append(t)
    if (len(train), len(validation), len(attack)) != (833, 4372, 746):
        raise ValueError(f"ADFA-LD: expected 833/4372/746 traces, got {len(train)}/{len(validation)}/{len(attack)}")
    return Adfa(train, validation, attack, dropped, drop_vdso)
