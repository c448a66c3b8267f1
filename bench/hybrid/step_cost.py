"""What leaving zero-advantage rows out of the update (``optim.skip_zero_advantage``) saves, per
seed, from the hybrid bench's run directories: a ``X+skip`` row against its ``X`` row.

    .venv/bin/python bench/hybrid/step_cost.py [--work runs/bench-hybrid] [--out bench/results/hybrid_skip_cost.json]

Per seed: the mean compute of one RL step (``perf/compute``, forward-token equivalents) with and
without skipping and their ratio, the mean share of all-equal groups and of skipped rows, and how
many RL steps ran identically (same policy loss to 1e-6, same sampled accuracy) before float
rounding let the two runs part. A base run without a run directory of its own (recorded before
the shared warm-ups) is costed from its results file: its compute less its warm-up's
(``<setting>/warmups/s<seed>/metrics.jsonl``), over its RL steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from graft.train.logging import read_metrics

ROOT = Path(__file__).resolve().parents[2]
PAIRS = (("teacher", "sft_then_rl"), ("few_demos", "sft_then_rl"), ("few_demos", "sft_then_rl+warm1200"),
         ("countdown_teacher", "sft_then_rl"))


def rl_rows(path: Path) -> list[dict]:
    return [r for r in read_metrics(path) if "losses/policy" in r]


def base_step_compute(work: Path, setting: str, method: str, seed: int) -> tuple[float, int, list[dict]]:
    """(mean RL-step compute, RL steps, the RL steps' metrics or [] when only the results file is left)."""
    run = work / setting / "runs" / f"{method}-s{seed}" / "metrics.jsonl"
    if run.exists():
        rows = rl_rows(run)
        return statistics.mean(r["perf/compute"] for r in rows), len(rows), rows
    result = json.loads((work / setting / "results" / f"{method}-s{seed}.json").read_text())
    warm = [r for r in read_metrics(work / setting / "warmups" / f"s{seed}" / "metrics.jsonl") if "losses/sft" in r]
    steps = result["steps"] - len(warm)
    return (result["compute"] - sum(r["perf/compute"] for r in warm)) / steps, steps, []


def identical_steps(a: list[dict], b: list[dict]) -> int:
    n = 0
    for x, y in zip(a, b):
        if abs(x["losses/policy"] - y["losses/policy"]) > 1e-6 or x["rollout/accuracy"] != y["rollout/accuracy"]:
            break
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-hybrid"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "hybrid_skip_cost.json"))
    args = ap.parse_args()
    work = Path(args.work)
    out = []
    print(f"{'setting':18} {'method':22} seed  RL steps plain -> skip  compute/step plain -> skip  ratio  all-equal  "
          f"skipped rows  identical steps")
    for setting, method in PAIRS:
        for seed in range(5):
            skip_run = work / setting / "runs" / f"{method}+skip-s{seed}" / "metrics.jsonl"
            if not skip_run.exists():
                continue
            plain, plain_steps, plain_rows = base_step_compute(work, setting, method, seed)
            rows = rl_rows(skip_run)
            cost = statistics.mean(r["perf/compute"] for r in rows)
            row = {"setting": setting, "method": method, "seed": seed, "rl_steps": len(rows),
                   "rl_steps_plain": plain_steps, "step_compute_plain": plain, "step_compute_skip": cost,
                   "ratio": cost / plain,
                   "zero_var_frac": statistics.mean(r["rollout/zero_var_frac"] for r in rows),
                   "skipped_rows": statistics.mean(r["batch/skipped_rows"] for r in rows),
                   "identical_steps": identical_steps(plain_rows, rows) if plain_rows else None}
            out.append(row)
            same = "-" if row["identical_steps"] is None else str(row["identical_steps"])
            print(f"{setting:18} {method:22} {seed:4}  {plain_steps:14} -> {len(rows):4}  {plain:18.0f} -> {cost:4.0f}  {row['ratio']:5.3f}"
                  f"  {row['zero_var_frac']:9.2f}  {row['skipped_rows']:12.1f}  {same:>15}")
    ratios = {}
    for r in out:
        ratios.setdefault(f"{r['setting']} {r['method']}", []).append(r["ratio"])
    summary = {k: {"min": min(v), "max": max(v), "median": statistics.median(v)} for k, v in ratios.items()}
    for k, v in summary.items():
        print(f"{k}: RL-step compute with skipping / without, median {v['median']:.3f} (range {v['min']:.3f}-{v['max']:.3f})")
    Path(args.out).write_text(json.dumps({"what": __doc__.split("\n\n")[0], "runs": out, "summary": summary},
                                         indent=1) + "\n")


if __name__ == "__main__":
    main()
