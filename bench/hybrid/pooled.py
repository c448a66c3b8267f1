"""One setting's methods over the seeds of several recorded results files, pooled: IQM with a 95%
bootstrap CI over every seed, and each method's per-seed difference to a baseline (same seed = same
initialisation and data order), with a bootstrap CI of its mean and the count of seeds ahead.

    PYTHONPATH=src .venv/bin/python bench/hybrid/pooled.py --setting few_demos \\
        --files bench/results/hybrid.json,bench/results/hybrid_few_demos_seeds5-9.json \\
        --methods sft_then_rl,sft_then_rl+warm1200+raft1e-4+g4 --out bench/results/hybrid_few_demos_pooled.json

A file given as ``PATH=LABEL`` holds other draws of the same seeds (runs on another machine kind,
whose float rounding sends a seed's training elsewhere: tests/golden): its seed s counts as draw
``LABEL/s``, paired only with the same file's baseline run of that seed.

Why: with 5 seeds per method the seed-to-seed spread (0.35 to 0.80 held-out accuracy on few_demos)
is wider than the differences between methods, and a row picked as the best of many on seeds 0-4
carries that selection in its interval; fresh seeds, and the paired difference on each seed, show
whether its lead is the method's or the seeds'. Statistics: ``graft.eval.stats`` (IQM and the
stratified bootstrap of Agarwal et al. 2021; here one task, the seeds its runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np

from graft.eval.stats import aggregate_mean, stratified_bootstrap_ci

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import REPS, SEED, iqm_ci  # bench/hybrid/report.py: the tables' own IQM and CI

ROOT = Path(__file__).resolve().parents[2]


def finals(files: list[Path], setting: str, labels: list[str | None] | None = None
           ) -> dict[str, dict[int | str, float]]:
    """method -> draw -> final greedy accuracy, from every file's runs of ``setting``. A draw is the
    run's seed, or ``f"{label}/{seed}"`` for a file with a label (``labels``, one per file, None for
    none); a draw recorded twice for one method must agree (unlabelled files are meant to hold
    disjoint seeds)."""
    out: dict[str, dict[int | str, float]] = {}
    for path, label in zip(files, labels or [None] * len(files), strict=True):
        for run in json.loads(path.read_text())["settings"].get(setting, {}).get("runs", []):
            seen = out.setdefault(run["method"], {})
            draw = run["seed"] if label is None else f"{label}/{run['seed']}"
            if draw in seen and seen[draw] != run["final_accuracy"]:
                raise SystemExit(f"{path}: {run['method']} seed {run['seed']} differs from another file's")
            seen[draw] = run["final_accuracy"]
    return out


def pooled(acc: dict[str, dict[int, float]], methods: list[str], baseline: str) -> dict:
    """The summary for ``methods`` (and the baseline) on the seeds every one of them has."""
    seeds = sorted(set.intersection(*(set(acc[m]) for m in [baseline, *methods])),
                   key=lambda d: (isinstance(d, str), str(d) if isinstance(d, str) else d))  # seeds, then labelled draws
    if len(seeds) < 2:
        raise SystemExit(f"fewer than two seeds shared by {baseline} and {methods}")
    rows = {}
    for m in [baseline, *methods]:
        values = [acc[m][s] for s in seeds]
        summary = iqm_ci(values, m, "final_accuracy")  # as report.py's tables compute it, on these seeds
        row = {"values": values, "iqm": summary["iqm"], "ci95": summary["ci95"]}
        if m != baseline:
            diff = np.array(values) - np.array([acc[baseline][s] for s in seeds])
            rng = np.random.default_rng([SEED, zlib.crc32(f"{m}/minus_{baseline}".encode())])  # a stream of its own
            mean, dlo, dhi = stratified_bootstrap_ci(aggregate_mean, diff.reshape(-1, 1), rng=rng, reps=REPS)
            row[f"minus_{baseline}"] = {"per_seed": diff.round(6).tolist(), "mean": mean, "ci95": [dlo, dhi],
                                        "seeds_ahead": int((diff > 0).sum()), "seeds_behind": int((diff < 0).sum())}
        rows[m] = row
    return {"seeds": seeds, "baseline": baseline, "methods": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setting", required=True)
    ap.add_argument("--files", required=True, help="comma-separated results files (hybrid.json form); "
                    "PATH=LABEL: that file's seeds are draws of their own, LABEL/seed")
    ap.add_argument("--methods", required=True, help="comma-separated methods to compare with the baseline")
    ap.add_argument("--baseline", default="sft_only")
    ap.add_argument("--out", default=None, help="write the summary here (JSON)")
    args = ap.parse_args()
    parts = [f.partition("=") for f in args.files.split(",")]
    files, labels = [Path(f) for f, _, _ in parts], [label or None for _, _, label in parts]
    for f in files:
        if not f.is_file():
            raise SystemExit(f"--files: {f} does not exist")
    if len({lb for lb in labels if lb}) < sum(1 for lb in labels if lb) or any(lb and "/" in lb for lb in labels):
        raise SystemExit("--files: each LABEL once, without '/'")
    acc = finals(files, args.setting, labels)
    methods = args.methods.split(",")
    for m in [args.baseline, *methods]:
        if m not in acc:
            raise SystemExit(f"--methods: no runs of {m!r} on {args.setting} in {args.files}")
    shown = [str(f.resolve().relative_to(ROOT)) if f.resolve().is_relative_to(ROOT) else f.name for f in files]
    if any(labels):
        shown = [f"{f}={lb}" if lb else f for f, lb in zip(shown, labels, strict=True)]
    result = {"setting": args.setting, "files": shown, "bootstrap_reps": REPS,
              **pooled(acc, methods, args.baseline)}
    print(f"{args.setting}, seeds {result['seeds']}")
    for m, row in result["methods"].items():
        line = f"{m:40s} IQM {row['iqm']:.3f} [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]"
        d = row.get(f"minus_{args.baseline}")
        if d:
            line += (f"  - {args.baseline}: mean {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}],"
                     f" ahead on {d['seeds_ahead']}/{len(result['seeds'])} seeds")
        print(line)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
