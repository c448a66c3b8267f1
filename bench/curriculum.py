"""Prompt curriculum: uniform vs PCL (optionally + DARS) from one SFT-warmed start, side by side.

The task mixes arithmetic of 1, 2 and 3 digits per operand (equal shares), so that after a short
SFT warm-up some prompts are nearly always solved, some nearly never, and some in between: the
situation where a uniform draw wastes groups whose rollouts all agree (zero-variance groups, no
GRPO signal) and PCL's predictor can help. One SFT run makes the start; every arm and seed then
runs ``--rl-steps`` RL steps from it (``model.path`` = the warm checkpoint, ``sft.steps=0``).

Reported per arm, averaged over the RL steps and then over seeds: the share of zero-variance
groups among the trained prompts' first-round groups (``rollout/zero_var_frac``), their pass
rate (``rollout/accuracy``), forward tokens per step (sampling + scoring; PCL's pool prefill and
DARS's extra rollouts included), the predictor's calibration (PCL), held-out greedy accuracy
before and after RL, and wall time (contended machines distort it: compare within one run).

    PYTHONPATH=src python bench/curriculum.py [--seeds 0 1 2] [--rl-steps 30] [--arms uniform pcl]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from time_to_target import repo_relative  # results record repo-relative paths (one definition)

from graft.config import build_config
from graft.tasks.arithmetic import ArithmeticTask
from graft.train.logging import read_metrics
from graft.train.loop import Setup, prepare, train

ARMS = {
    "uniform": [],
    "pcl": ["curriculum.name=pcl"],
    "pcl+dars": ["curriculum.name=pcl", "curriculum.dars=true", "curriculum.dars_extra=32"],
    "uniform+dars": ["curriculum.dars=true", "curriculum.dars_extra=32"],
}


class MixedArithmetic:
    """Arithmetic with 1-, 2- and 3-digit operands in equal shares (interleaved train and test)."""

    name = "arithmetic"

    def __init__(self, per_level_train: int = 120, per_level_test: int = 30, split_seed: int = 0):
        self._parts = [ArithmeticTask(difficulty=d, num_train=per_level_train, num_test=per_level_test,
                                      split_seed=split_seed) for d in (1, 2, 3)]

    def train_examples(self):
        return [ex for row in zip(*(p.train_examples() for p in self._parts)) for ex in row]

    def test_examples(self):
        return [ex for row in zip(*(p.test_examples() for p in self._parts)) for ex in row]

    def final_answer(self, completion):
        return self._parts[0].final_answer(completion)

    def score(self, example, completion):
        return self._parts[0].score(example, completion)


COMMON = [
    "log.progress=false", "threads=1", "model.d_model=64", "model.n_layers=2", "model.n_heads=2",
    "sft.batch_size=32", "sft.lr=3e-3", "sft.warmup_steps=10",
    "rl.num_prompts=8", "rl.num_generations=8", "rl.max_new_tokens=40", "rl.lr=5e-5",
    "eval.num_examples=90", "eval.batch_size=90", "eval.max_new_tokens=40", "checkpoint.every=1000",
]


def run(cfg_overrides: list[str], out: Path, task: MixedArithmetic) -> tuple[dict, list[dict]]:
    cfg = build_config({}, cfg_overrides)
    setup = prepare(cfg)  # validates the config, builds the policy
    summary = train(Setup(cfg, task, setup.policy), out)
    return summary, read_metrics(out / "metrics.jsonl")


def mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return statistics.fmean(values) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sft-steps", type=int, default=150)
    ap.add_argument("--rl-steps", type=int, default=30)
    ap.add_argument("--arms", nargs="+", default=["uniform", "pcl"], choices=sorted(ARMS))
    ap.add_argument("--set", nargs="*", default=[], help="extra KEY=VALUE overrides for every RL arm")
    ap.add_argument("--warm", type=Path, default=None, help="reuse this warm model directory (skip SFT)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as JSON here")
    args = ap.parse_args()
    task = MixedArithmetic()
    work = Path(tempfile.mkdtemp(prefix="graft-curriculum-"))

    warm = args.warm
    if warm is None:
        t0 = time.perf_counter()
        run(COMMON + ["name=warm", f"sft.steps={args.sft_steps}", "rl.steps=0"], work / "warm", task)
        warm = work / "warm" / "checkpoints" / f"step_{args.sft_steps}" / "model"
        print(f"SFT warm-up: {args.sft_steps} steps in {time.perf_counter() - t0:.0f} s -> {warm}")

    results: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    for seed in args.seeds:
        for arm in args.arms:
            t = time.perf_counter()
            overrides = COMMON + ARMS[arm] + [f"name={arm}", f"seed={seed}", f"model.path={warm}",
                                              "sft.steps=0", f"rl.steps={args.rl_steps}", *args.set]
            summary, rows = run(overrides, work / f"{arm}-{seed}", task)
            results[arm].append({
                "seed": seed,
                "zero_var_frac": mean(rows, "rollout/zero_var_frac"),
                "pass_rate": mean(rows, "rollout/accuracy"),
                "fwd_tokens": mean(rows, "perf/fwd_tokens"),
                "pred_mae": mean(rows, "curriculum/pred_mae"),
                "pred_mae_last10": mean(rows[-10:], "curriculum/pred_mae"),
                "dars_extra": mean(rows, "curriculum/dars_extra_rollouts"),
                "acc_before": summary["accuracy_after_sft"], "acc_after": summary["accuracy_after_rl"],
                "seconds": time.perf_counter() - t,
            })
            r = results[arm][-1]
            print(f"seed {seed} {arm:13s} zero_var {r['zero_var_frac']:.3f} pass {r['pass_rate']:.3f} "
                  f"mae {r['pred_mae']:.3f} acc {r['acc_before']:.3f}->{r['acc_after']:.3f} {r['seconds']:.0f} s",
                  flush=True)

    cols = ["zero_var_frac", "pass_rate", "fwd_tokens", "pred_mae", "pred_mae_last10", "dars_extra",
            "acc_before", "acc_after", "seconds"]
    print(f"\nmean over seeds {args.seeds}, {args.rl_steps} RL steps each, 8 prompts x 8 rollouts per step")
    print("| arm | " + " | ".join(cols) + " |")
    print("| --- |" + " --- |" * len(cols))
    table = {}
    for arm, runs in results.items():
        table[arm] = {c: statistics.fmean(r[c] for r in runs) for c in cols}
        print(f"| {arm} | " + " | ".join(f"{table[arm][c]:.3f}" if c != "fwd_tokens" else f"{table[arm][c]:.0f}"
                                        for c in cols) + " |")
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": repo_relative(args.out), "warm": repo_relative(args.warm)}, "mean": table,
                                        "runs": results}, indent=2))


if __name__ == "__main__":
    main()
