"""Held-out accuracy vs ``distributed.max_staleness``, with and without the decoupled correction,
at an equal number of RL steps, over seeds (issue 17's accuracy half; bench/async.py has the time).

From one SFT-warmed quickstart model (cached in bench/.cache/async_acc_warm_<steps>), each run
trains ``--rl-steps`` GRPO steps on the Ray backend (one rollout worker, one reward worker):

- ``max_staleness`` 0: synchronous (on-policy), the baseline;
- ``max_staleness`` k >= 1, ``plain``: trained tokens sampled by an older policy keep their
  behaviour log-probs in the PPO ratio (``rollout.stale: correct``);
- ``max_staleness`` k >= 1, ``decoupled``: AReaL's decoupled PPO (``rollout.stale_is_cap``): the
  clip is taken around the current policy and the ratio current / behaviour, capped, weights the
  loss (docs/objectives.md).

Printed and written to bench/results/async_accuracy.json: per setting the held-out greedy accuracy
per seed, its mean and IQM with a 95% bootstrap CI (graft.eval.stats), and the mean staleness of
trained rollouts.

    PYTHONPATH=src nice -n 10 python bench/async_accuracy.py [--seeds 0,1,2] [--staleness 0,1,2,4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import ray

from graft.config import load_config
from graft.eval.stats import iqm_over_seeds
from graft.train import checkpoint as ckpt
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "src" / "graft" / "configs" / "quickstart.yaml"


def warm(args) -> Path:
    """The SFT-warmed quickstart model (made once per --sft-steps, then reused)."""
    run_dir = ROOT / "bench" / ".cache" / f"async_acc_warm_{args.sft_steps}"
    found = ckpt.list_checkpoints(run_dir / "checkpoints") if run_dir.is_dir() else []
    if not found:
        cfg = load_config(QUICKSTART, ["name=async_acc_warm", "log.progress=false", f"sft.steps={args.sft_steps}",
                                       "rl.steps=0", "checkpoint.every=100000", "eval.num_examples=1"])
        train(prepare(cfg), run_dir)
        found = ckpt.list_checkpoints(run_dir / "checkpoints")
    return found[-1] / "model"


def run(k: int, correction: str, seed: int, args, model: Path, work: Path) -> dict:
    name = f"s{k}-{correction}-seed{seed}"
    overrides = [
        f"name={name}", f"seed={seed}", "log.progress=false", f"model.path={model}", "sft.steps=0",
        f"rl.steps={args.rl_steps}", f"rl.num_prompts={args.prompts}", f"eval.num_examples={args.eval_examples}",
        "checkpoint.every=100000", "distributed.backend=ray", "distributed.rollout_workers=1",
        "distributed.reward_workers=1", "distributed.worker_cpus=0", f"distributed.max_staleness={k}",
    ]
    if correction == "decoupled":
        overrides.append(f"rollout.stale_is_cap={args.is_cap}")
    t0 = time.perf_counter()
    summary = train(prepare(load_config(QUICKSTART, overrides)), work / name)
    rows = [m for m in read_metrics(work / name / "metrics.jsonl") if "losses/policy" in m]
    return {"max_staleness": k, "correction": correction, "seed": seed,
            "accuracy_after_rl": summary["accuracy_after_rl"], "accuracy_start": summary["accuracy_after_sft"],
            "staleness_mean": sum(m.get("rollout/staleness_mean", 0.0) for m in rows) / len(rows),
            "wall_s": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--staleness", default="0,1,2,4", help="max_staleness values (0 first: the baseline)")
    p.add_argument("--sft-steps", type=int, default=300, help="SFT warm-up steps (cached)")
    p.add_argument("--rl-steps", type=int, default=30)
    p.add_argument("--prompts", type=int, default=16, help="rl.num_prompts")
    p.add_argument("--eval-examples", type=int, default=300)
    p.add_argument("--is-cap", type=float, default=2.0, help="rollout.stale_is_cap of the decoupled runs")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "async_accuracy.json")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = [(int(k), c) for k in args.staleness.split(",") for c in (("plain",) if int(k) == 0
                                                                       else ("plain", "decoupled"))]
    model = warm(args)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, c in settings:
            for seed in seeds:
                runs.append(run(k, c, seed, args, model, Path(tmp)))
                r = runs[-1]
                print(f"max_staleness {k} {c:9} seed {seed}: {r['accuracy_start']:.3f} -> "
                      f"{r['accuracy_after_rl']:.3f} (staleness {r['staleness_mean']:.2f}, {r['wall_s']:.0f} s)",
                      flush=True)
    ray.shutdown()
    table = {}
    rng = np.random.default_rng(0)
    print(f"{'setting':>22} {'mean':>6} {'IQM':>6} {'95% CI':>15} {'staleness':>9}")
    for k, c in settings:
        mine = [r for r in runs if r["max_staleness"] == k and r["correction"] == c]
        acc = np.array([[r["accuracy_after_rl"]] for r in mine])  # (seeds, 1 task)
        point, lo, hi = iqm_over_seeds(acc, rng=rng, reps=2000)
        key = f"staleness{k}_{c}"
        table[key] = {"max_staleness": k, "correction": c, "seeds": [r["seed"] for r in mine],
                      "accuracy": [r["accuracy_after_rl"] for r in mine], "mean": float(acc.mean()),
                      "iqm": point, "ci95": [lo, hi],
                      "staleness_mean": sum(r["staleness_mean"] for r in mine) / len(mine)}
        print(f"{key:>22} {acc.mean():>6.3f} {point:>6.3f} {f'[{lo:.3f}, {hi:.3f}]':>15} "
              f"{table[key]['staleness_mean']:>9.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in vars(args).items() if k != "out"}
    args.out.write_text(json.dumps({"args": meta, "table": table, "runs": runs}, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
