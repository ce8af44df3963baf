"""`python -m train.main` (run by `cargo xtask train` from models/): everything, seeded.

1. Self-test of the contract code.
2. ADFA-LD evaluation (both with and without vDSO calls): the unsupervised profile on the
   standard split, the supervised procedure leave-one-family-out, and the published-style
   baselines that show where AUC goes (mapping, vDSO, windowing).
3. The shipped model: trained on own data (when exported to data/*.jsonl) plus ADFA mapped
   without vDSO, labelled by source (own malicious processes: whole scenario trees, or with
   `--labels steps` only their attack steps); config chosen by inner leave-one-family-out;
   thresholds from held-out benign processes only.
4. Own-data evaluation when present: per held-out family detection, benign test workloads, the
   two labellings compared on the same held-out attack steps, and vocabulary 2 against its
   projection to vocabulary 1 (classes dropped).
5. Writes vigil.onnx, golden.json, eval.json and README.md (the model card).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import random
import time
from pathlib import Path

import numpy as np

from . import adfa, card, contract, evaluate, export, owndata, supervised, unsupervised
from .evaluate import log

SEED = 1234
MODELS = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m train.main", description=__doc__.splitlines()[0])
    ap.add_argument("--adfa", type=Path, default=MODELS.parent.parent / "shared" / "datasets" / "adfa-ld",
                    help="directory with ADFA-LD.zip and i386_to_x86_64.tsv")
    ap.add_argument("--data", type=Path, default=MODELS / "data", help="own datasets exported as *.jsonl")
    ap.add_argument("--out", type=Path, default=MODELS, help="where vigil.onnx, golden.json, eval.json, README.md go")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--steps", type=Path, default=MODELS / "scenarios" / "attack-steps.toml",
                    help="which processes of each malicious scenario are its attack steps")
    ap.add_argument("--labels", choices=("trees", "steps"), default="trees",
                    help="own malicious processes the shipped model trains on: whole scenario trees, or only the "
                         "attack steps `--steps` names")
    ap.add_argument("--vocab", type=int, choices=(1, 2), default=1,
                    help="token vocabulary the shipped model is trained on: 2 as recorded (with call classes), or 1 "
                         "(classes dropped); the other one is compared in the card")
    ap.add_argument("--benign-by", choices=("family", "scenario"), default="family",
                    help="field that names a benign workload (the unit of the benign split)")
    return ap.parse_args(argv)


def versions() -> dict:
    import onnx
    import onnxruntime
    import scipy
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


# --- shipped pool ------------------------------------------------------------------------------------
def shipped_pool(d: adfa.Adfa, procs: list[owndata.Proc], seed: int, benign_by: str):
    """All processes the shipped model may see, each with a role: train, calibration (thresholds
    only), test (false positives only) or adfa_validation (informational)."""
    seqs, labels, fams, groups, sources, roles = [], [], [], [], [], []

    def add(tokens, label, fam, group, source, role):
        seqs.append(tokens); labels.append(label); fams.append(fam); groups.append(group)
        sources.append(source); roles.append(role)

    for t in d.train:
        add(t.tokens, 0, "", t.name, "adfa", "train")
    for t in d.attack:
        add(t.tokens, 1, t.family, t.name, "adfa", "train")
    split = None
    if procs:
        workloads = sorted({owndata.group_key(p, benign_by) for p in procs if not p.malicious})
        split = owndata.split_benign(workloads, seed)
        role_of = {w: r for r in ("train", "calibration", "test") for w in getattr(split, r)}
        for t in d.validation:
            add(t.tokens, 0, "", t.name, "adfa", "adfa_validation")
        for p in procs:
            g = owndata.group_key(p, benign_by)
            if p.malicious:
                add(p.tokens, 1, p.family, g, "own", "train")
            else:
                add(p.tokens, 0, "", g, "own", role_of[g])
    else:
        cal, _ = evaluate.validation_halves(len(d.validation), seed)
        cal = set(cal.tolist())
        for i, t in enumerate(d.validation):
            add(t.tokens, 0, "", t.name, "adfa", "calibration" if i in cal else "test")
    pool = supervised.Pool.build(seqs, labels, fams, groups, sources)
    return pool, seqs, np.array(roles), split


def label_overlap(procs: list[owndata.Proc]) -> dict:
    """How many malicious processes run an executable that benign workloads also run (shells,
    coreutils): a scenario labels its whole process tree, so these carry the malicious label
    for behaviour that is also benign, and bound what a per-process classifier can learn."""
    benign_exes = {Path(p.exe).name for p in procs if not p.malicious}
    mal = [p for p in procs if p.malicious]
    shared = sum(Path(p.exe).name in benign_exes for p in mal)
    return {"malicious_processes": len(mal), "exe_also_in_benign": shared,
            "fraction": shared / len(mal) if mal else None}


def attack_steps(args: argparse.Namespace, procs: list[owndata.Proc]):
    """Benign processes and each malicious family's attack steps (`--steps`), with per-family
    counts; None when there is no own data or no such file (`--labels steps` needs it)."""
    if not procs or not args.steps.is_file():
        if procs and args.labels == "steps":
            raise ValueError(f"--labels steps: no attack-step labels at {args.steps}")
        if procs:
            log(f"no attack-step labels at {args.steps}: the labellings are not compared")
        return None
    kept, counts = owndata.apply_steps(procs, owndata.load_steps(args.steps))
    log(f"attack steps: {sum(c['steps'] for c in counts.values())} of {sum(p.malicious for p in procs)} malicious processes")
    return kept, counts


def labels_compared(args: argparse.Namespace, d: adfa.Adfa, procs: list[owndata.Proc], kept: list[owndata.Proc],
                    config: str, thr: dict) -> dict:
    """The own-data leave-one-family-out twice, trained on attack steps and on whole scenario
    trees, both scored on the held-out family's attack steps: what each labelling teaches about
    a technique it has not seen."""
    pool_s, _, role_s, _ = shipped_pool(d, kept, args.seed, args.benign_by)
    on_steps = evaluate.own_data_lofo(pool_s, role_s, config, thr, args.seed)
    pool_t, _, role_t, _ = shipped_pool(d, procs, args.seed, args.benign_by)
    step_ids = {id(p) for p in kept if p.malicious}
    first_own = len(pool_t) - len(procs)
    is_step = np.zeros(len(pool_t), dtype=bool)
    is_step[[first_own + i for i, p in enumerate(procs) if id(p) in step_ids]] = True
    on_trees = evaluate.own_data_trees_on_steps(pool_t, role_t, is_step, config, args.seed)
    return {
        "protocol": "own_data_lofo trained on attack steps, and trained on whole scenario trees; both scored on the held-out family's attack steps against the benign test workloads, thresholds by the shipped rule per fold",
        "config": config,
        "trained_on_steps": on_steps,
        "trained_on_trees": on_trees,
    }


def in_vocab(procs: list[owndata.Proc], vocab: int) -> list[owndata.Proc]:
    """The processes with their tokens in `vocab`: as recorded (2), or with classes dropped (1)."""
    if vocab == 2:
        return procs
    return [dataclasses.replace(p, tokens=contract.project_v1(p.tokens)) for p in procs]


def vocab_compared(args: argparse.Namespace, d: adfa.Adfa, recorded: list[owndata.Proc], lofo: dict) -> dict:
    """The own-data leave-one-family-out (`lofo`, on the shipped vocabulary `args.vocab`) run
    again on the other vocabulary: the same recordings (`recorded`, vocabulary 2 as recorded),
    split and config, with or without the classes. Only the folds are refitted (no inner
    selection), so it costs one more leave-one-family-out. Own data recorded before vocabulary 2
    has no class to drop: then nothing is run."""
    total = sum(len(p.tokens) for p in recorded)
    classed = sum(int(np.count_nonzero(np.asarray(p.tokens) >= contract.FIRST_CLASSED)) for p in recorded)
    other = 1 if args.vocab == 2 else 2
    out = {
        "protocol": f"own_data_lofo with the shipped config, on the shipped vocabulary {args.vocab} (the table above) "
                    f"and on vocabulary {other} (vocabulary 1: every own token projected, t >= 1024 -> t % 512; "
                    "ADFA-LD is class-less either way); thresholds by the shipped rule per fold and per vocabulary",
        "config": lofo["config"],
        "shipped_vocab": args.vocab,
        "own_tokens": total,
        "own_tokens_classed": classed,
    }
    if not classed:
        log("own data carries no class tokens: vocabularies 1 and 2 not compared")
        return {**out, "per_family": None, "mean": None}
    pool, _, role, _ = shipped_pool(d, in_vocab(recorded, other), args.seed, args.benign_by)
    return {**out, **evaluate.own_data_vocab_compared(lofo, args.vocab, pool, role, other, args.seed)}


# --- golden sequences --------------------------------------------------------------------------------
def golden_cases(d: adfa.Adfa, procs: list[owndata.Proc], seed: int) -> list[dict]:
    rng = np.random.default_rng(seed + 1)
    cases = []
    for n in (0, 1, 2, 3, 5, 63, 64, 65, 96, 97, 128, 200):
        cases.append({"name": f"random_len_{n}", "label": "synthetic",
                      "note": "random tokens, half class-less 0..523, half classed 1024..8703",
                      "tokens": contract.random_tokens(rng, n)})
    E = contract
    C = {name: i + 1 for i, name in enumerate(E.CLASS_NAMES)}
    cases.append({"name": "vocabulary_edges", "label": "synthetic", "note": "first and last token of each block",
                  "tokens": [0, 511, E.TOK_EXEC, E.TOK_BPF_PROG_LOAD, E.FIRST_CLASSED, 1535, 1536, 8191, 8192,
                             E.VOCAB_SIZE - 1] * 8})
    cases.append({"name": "reverse_shell_like", "label": "synthetic", "note": "socket, connect, dup2 x3, execve (no classes)",
                  "tokens": [E.TOK_EXEC, 12, 9, 41, 42, E.TOK_CONNECT, 33, 33, 33, 59, E.TOK_EXEC, 12, 9, 0, 1] * 3})
    cases.append({"name": "reverse_shell_classed", "label": "synthetic",
                  "note": "exec mapping, inet socket, connect, dup2 onto stdio x3, execve, a failed open",
                  "tokens": ([E.TOK_EXEC, 12, E.class_token(9, C["exec"]), E.class_token(41, C["inet"]), 42, E.TOK_CONNECT]
                             + [E.class_token(33, C["stdio"])] * 3
                             + [59, E.TOK_EXEC, 12, E.class_token(257, C["err_noent"]), 257, 0, 1, 0, 1, 3]) * 3})
    cases.append({"name": "memfd_exec_like", "label": "synthetic", "note": "memfd_create, write, execveat",
                  "tokens": [319, E.TOK_MEMFD_CREATE, 1, 1, 1, 322, E.TOK_EXEC] + [9, 10, 11, 0, 1] * 13})
    cases.append({"name": "ransom_like_classed", "label": "synthetic",
                  "note": "directory walk, opens for writing and creating, chmod +x, a writable executable mapping",
                  "tokens": [E.class_token(257, C["dir"]), 217, 217] + [E.class_token(257, C["write"]), 0, 1, 1, 3,
                             E.class_token(257, C["create"]), 1, 3, 87] * 6
                  + [E.class_token(90, C["mode_exec"]), E.class_token(10, C["write_exec"]), E.class_token(2, C["err_perm"])]})

    def pick(traces, k, max_len):
        ok = [t for t in traces if 0 < len(t.tokens) <= max_len]
        idx = np.random.default_rng(seed + len(traces)).choice(len(ok), size=min(k, len(ok)), replace=False)
        return [ok[i] for i in sorted(idx)]

    for t in pick(d.train, 3, 1500) + pick(d.validation, 3, 1500):
        cases.append({"name": "adfa_" + Path(t.name).stem, "label": "benign", "note": f"ADFA-LD {t.split}, mapped, no vDSO", "tokens": t.tokens})
    for fam in adfa.FAMILIES:
        t = pick([t for t in d.attack if t.family == fam], 1, 1500)[0]
        cases.append({"name": f"adfa_{fam}_{t.run}_{Path(t.name).stem}", "label": "malicious",
                      "note": "ADFA-LD attack, mapped, no vDSO", "tokens": t.tokens})
    for label in ("benign", "malicious"):
        for p in [p for p in procs if p.label == label and 0 < len(p.tokens) <= 4000][:2]:
            cases.append({"name": f"own_{p.family}_{p.pid}", "label": label, "note": f"own data {p.source}: {p.exe}", "tokens": p.tokens})
    return cases


def golden_profile(d: adfa.Adfa) -> dict:
    """A small profile case for the Rust side of "## Profile (unsupervised)"."""
    learn = [t.tokens for t in d.train if 0 < len(t.tokens) <= 300][:3]
    attack = next(t.tokens for t in d.attack if len(t.tokens) > 200)
    tests = {
        "learned_sequence": learn[0],
        "empty": [],
        "short_unseen": [0, 1, 2, 3, 523],
        "adfa_attack_prefix": attack[:200],
        "learn_then_events": learn[1][:70] + [contract.TOK_EXEC, contract.TOK_PTRACE] + learn[1][:30],
    }
    prof = unsupervised.Profile().fit(learn)
    ref = unsupervised.fit_ref(learn)
    out = []
    for name, toks in tests.items():
        nov = prof.window_novelty(toks)
        nov_ref = unsupervised.window_novelty_ref(ref, toks)
        assert np.allclose(nov, nov_ref), name
        out.append({"name": name, "tokens": [int(t) for t in toks], "window_novelty": [float(v) for v in nov_ref],
                    "score": unsupervised.score_ref(ref, toks)})
    return {"orders": list(unsupervised.ORDERS), "aggregate_k": contract.AGGREGATE_K,
            "learn": [[int(t) for t in s] for s in learn], "cases": out}


# --- main ----------------------------------------------------------------------------------------------
def main(argv=None) -> None:
    args = parse_args(argv)
    variants = {"with_vdso": adfa.load(args.adfa, False), "without_vdso": adfa.load(args.adfa, True)}
    raw = adfa.load(args.adfa, False, raw_i386=True)
    run(args, variants, raw)


def run(args: argparse.Namespace, variants: dict[str, adfa.Adfa], raw: adfa.Adfa) -> dict:
    """Everything after loading ADFA-LD (tests pass a small synthetic stand-in)."""
    random.seed(args.seed)
    np.random.seed(args.seed)
    t_start = time.time()
    contract.self_test(args.seed)
    log("contract self-test ok")

    ev: dict = {"seed": args.seed, "versions": versions(), "adfa": {}, "baselines": {}}
    ev["adfa"]["dropped_i386_ids"] = {str(k): v for k, v in sorted(variants["with_vdso"].dropped.items())}

    # (a) unsupervised, standard split
    ev["adfa"]["unsupervised"] = {}
    for key, d in variants.items():
        r = evaluate.unsupervised_standard(d)
        ev["adfa"]["unsupervised"][key] = r
        log(f"unsupervised {key}: AUC {r['auc']:.4f}")
    ev["baselines"]["stide6_whole_trace"] = {
        "note": "reference: stide n=6 scored on whole traces (published 0.827 on raw i386)",
        "raw_i386": evaluate.stide_baseline(raw),
        **{k: evaluate.stide_baseline(d) for k, d in variants.items()},
    }
    ev["baselines"]["sequence_covering_whole_trace"] = {
        "note": "reference: greedy cover of each whole trace by substrings of the training normals, pieces per token (post hoc, not shipped)",
        "raw_i386": evaluate.sequence_covering_baseline(raw),
        **{k: evaluate.sequence_covering_baseline(d) for k, d in variants.items()},
    }
    sets = {"raw_i386": evaluate.syscall_set_baselines(raw), **{k: evaluate.syscall_set_baselines(d) for k, d in variants.items()}}
    ev["baselines"]["syscall_sets_whole_trace"] = {
        "note": "reference: which calls a whole trace makes (post hoc): fewest distinct calls (nothing learned), and Jaccard kNN (k = 3) to the training normals' call sets",
        **sets,
    }
    ev["baselines"]["profile_on_raw_i386"] = {
        "note": "reference: the shipped profile algorithm on unmapped i386 ids (not vigil tokens)",
        "auc": evaluate.unsupervised_standard(raw)["auc"],
    }
    log(f"baselines: {ev['baselines']}")

    # (b) supervised, leave-one-family-out
    ev["adfa"]["supervised_lofo"] = {}
    for key, d in variants.items():
        log(f"supervised LOFO {key}")
        r = evaluate.supervised_lofo(evaluate.AdfaPool(d), args.seed)
        ev["adfa"]["supervised_lofo"][key] = r
        log(f"supervised LOFO {key}: mean AUC {r['mean_auc']:.4f}")
    ev["baselines"]["trace_level_logreg_lofo"] = {
        "note": "reference: logistic regression on hashed n-grams (1-3) of whole traces, same LOFO (published 0.958 on raw i386)",
        "raw_i386": evaluate.trace_level_baseline(raw, args.seed),
        **{k: evaluate.trace_level_baseline(d, args.seed) for k, d in variants.items()},
    }
    log("trace-level baselines: " + ", ".join(f"{k} {v['mean_auc']:.4f}" for k, v in ev["baselines"]["trace_level_logreg_lofo"].items() if isinstance(v, dict)))

    # the shipped model
    recorded = owndata.load_dir(args.data)
    log(f"own data: {len(recorded)} processes from {args.data}; the model is trained on vocabulary {args.vocab}")
    d = variants["without_vdso"]
    steps_recorded = attack_steps(args, recorded)
    shipped_recorded = steps_recorded[0] if args.labels == "steps" else recorded
    # Everything below sees the shipped vocabulary, the profiles of the layers table included:
    # the daemon feeds both layers the model's tokens.
    procs = in_vocab(recorded, args.vocab)
    # The same objects in both lists: the labels comparison matches steps to trees by identity.
    projected = {id(r): p for r, p in zip(recorded, procs)}
    steps = ([projected[id(p)] for p in steps_recorded[0]], steps_recorded[1]) if steps_recorded else None
    shipped_procs = steps[0] if args.labels == "steps" else procs
    pool, seqs, role, split = shipped_pool(d, shipped_procs, args.seed, args.benign_by)
    train = np.flatnonzero(role == "train")
    config, inner = supervised.select_config(pool, train, args.seed)
    log(f"shipped config: {config} (inner LOFO {inner.get('inner_mean_auc')})")
    clf = pool.fit(config, train, args.seed)
    cal = np.flatnonzero(role == "calibration")
    test = np.flatnonzero(role == "test")
    thr = evaluate.choose_thresholds(pool.scores(clf, cal))
    if thr["saturated"]:
        log(f"WARNING: the highest calibration score is {thr['max_benign']:.6f}: thresholds have almost no headroom")
    cal_desc = (f"{len(cal)} own benign processes of the calibration workloads {split.calibration}" if procs
                else f"{len(cal)} ADFA-LD validation normals (seeded half; the other half is the test)")
    shipped = {
        "config": config,
        "inner_selection": inner,
        "training": pool.counts(train),
        "calibration": cal_desc,
        "thresholds": evaluate.thresholds_public(thr),
        "threshold_rule": "m = highest calibration process score; alert/quarantine/kill = m + f(1-m), f = 0.1/0.4/0.7; over = strictly greater",
        "benign_test_over_thresholds": evaluate.over(pool.scores(clf, test), thr),
        "benign_test": (f"own benign test workloads {split.test}" if procs else "the other seeded half of the ADFA-LD validation normals"),
        "own_labels": ("attack steps" if args.labels == "steps" else "whole scenario trees") if procs else None,
    }
    if procs:
        shipped["benign_split"] = {"by": args.benign_by, "train": split.train, "calibration": split.calibration, "test": split.test}
        val = np.flatnonzero(role == "adfa_validation")
        shipped["adfa_validation_over_thresholds"] = evaluate.over(pool.scores(clf, val), thr)
    ev["shipped"] = shipped
    log(f"thresholds {evaluate.thresholds_public(thr)}; benign test {shipped['benign_test_over_thresholds']}")

    # (c) own data
    if procs:
        lofo = evaluate.own_data_lofo(pool, role, config, thr, args.seed)
        ev["own"] = {
            "processes": {"benign": int(sum(not p.malicious for p in procs)), "malicious": int(sum(p.malicious for p in procs))},
            "families": sorted({p.family for p in procs if p.malicious}),
            "label_overlap": label_overlap(procs),
            "steps": {"file": args.steps.name, "counts": steps[1]} if steps else None,
            "lofo": lofo,
            "labels_compared": labels_compared(args, d, procs, steps[0], config, thr) if steps else None,
            "vocab_compared": vocab_compared(args, d, shipped_recorded, lofo),
            "calibration_top": evaluate.calibration_top(pool, role, shipped_procs, clf),
            "unsupervised_global_profile": evaluate.own_data_unsupervised(seqs, pool, role),
            "layers": evaluate.own_data_layers(shipped_procs, pool, role, clf, thr),
        }
    else:
        ev["own"] = None

    # export
    src = (f"own data {len(shipped_procs)} processes ({args.data.name}/*.jsonl, malicious: {shipped.get('own_labels')}, benign split by {args.benign_by}: train {split.train}, "
           f"calibration {split.calibration}, test {split.test}) + " if procs else "own data: none yet; ")
    trained_on = (f"{src}ADFA-LD i386->x86-64 without vDSO: 833 training normals + 746 attacks (6 families); "
                  f"config {config} by inner leave-one-family-out; thresholds: {cal_desc}; seed {args.seed}")
    trained_on += f"; token vocabulary {args.vocab}" + (" (the recorded vocabulary 2 with classes dropped)" if args.vocab == 1 else "")
    model = export.build_model(supervised.export_weights(clf), export.metadata(thr, trained_on, args.vocab))
    sample = np.random.default_rng(args.seed).choice(pool.X.shape[0], size=min(2000, pool.X.shape[0]), replace=False)
    diff = export.cross_check(model, clf, pool.X[np.sort(sample)])
    args.out.mkdir(parents=True, exist_ok=True)
    export.save(model, args.out / "vigil.onnx")
    # Cases keep their recorded tokens: the daemon projects them for a vocabulary 1 model.
    gold = export.golden(model, golden_cases(d, shipped_recorded, args.seed), golden_profile(d), vocab=args.vocab)
    export.write_json(gold, args.out / "golden.json")
    ev["export"] = {"file": "vigil.onnx", "bytes": (args.out / "vigil.onnx").stat().st_size, "opset": export.OPSET,
                    "ir_version": export.IR_VERSION, "onnxruntime_vs_sklearn_max_abs_diff": diff,
                    "cross_checked_windows": int(len(sample)), "golden_cases": len(gold["cases"]),
                    "metadata": {p.key: p.value for p in model.metadata_props}}
    ev["runtime_seconds"] = round(time.time() - t_start)
    export.write_json(ev, args.out / "eval.json")
    (args.out / "README.md").write_text(card.render(ev))
    log(f"wrote {args.out / 'vigil.onnx'}, golden.json, eval.json, README.md ({ev['runtime_seconds']} s)")
    return ev


if __name__ == "__main__":
    main()
