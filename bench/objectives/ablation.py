"""Objective ablation on the quickstart task: same warm start, same budget, several seeds.

    .venv/bin/python bench/objectives/ablation.py [--recipes grpo,dr_grpo,dapo,lite_ppo] [--seeds 0,1,2]

1. One SFT warm start: the quickstart config with rl.steps=0 (300 SFT steps, seed 0).
2. For each recipe (a packaged config: grpo.yaml, dr_grpo.yaml, ...) and seed: RL from that
   checkpoint (model.path), sft.steps=0, the quickstart's RL budget (rl.steps, prompts,
   generations, lr), evaluated greedy on the same 500 held-out examples before and after.
3. Writes bench/results/objectives.json and prints mean, sample std and range per recipe.

The budget is the same number of RL steps for every recipe; DAPO's dynamic sampling spends
extra rollouts on refills, reported as rollouts per recipe next to the accuracy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from graft.cli import packaged_config
from graft.config import load_config
from graft.train.checkpoint import list_checkpoints
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

ROOT = Path(__file__).resolve().parents[2]


def warm_start(work: Path) -> Path:
    run = work / "sft"
    if not list_checkpoints(run / "checkpoints"):
        cfg = load_config(packaged_config("quickstart"), ["rl.steps=0", "log.progress=false", "name=sft"])
        train(prepare(cfg), run)
    return list_checkpoints(run / "checkpoints")[-1] / "model"


def run_one(recipe: str, seed: int, model: Path, work: Path, steps: int | None, extra: list[str]) -> dict:
    out = work / f"{recipe}-s{seed}"
    summary_file = out / "summary.json"
    if not summary_file.is_file():
        overrides = [f"model.path={model}", "sft.steps=0", f"seed={seed}", "log.progress=false",
                     f"name={recipe}"]
        if steps is not None:
            overrides.append(f"rl.steps={steps}")
        overrides += extra
        train(prepare(load_config(packaged_config(recipe), overrides)), out)
    summary = json.loads(summary_file.read_text())
    rows = read_metrics(out / "metrics.jsonl")
    rl = load_config(out / "config.yaml").rl
    rollouts = sum(rl.num_generations * (rl.num_prompts + r.get("select/extra_prompts", 0)) for r in rows)
    return {"recipe": recipe, "seed": seed, "before": summary["accuracy_after_sft"],
            "after": summary["accuracy_after_rl"], "sampled_after": summary["sampled_accuracy_after_rl"],
            "rollouts": rollouts, "wall_seconds": summary["wall_seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipes", default="grpo,dr_grpo,dapo,lite_ppo")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=None, help="override rl.steps (default: the recipe's)")
    ap.add_argument("--set", action="append", default=[], help="extra config override for every RL run")
    ap.add_argument("--work", default=str(ROOT / "runs" / "ablation"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "objectives.json"))
    args = ap.parse_args()
    work = Path(args.work)
    t0 = time.perf_counter()
    model = warm_start(work)
    results = []
    for recipe in args.recipes.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(run_one(recipe, seed, model, work, args.steps, args.set))
            r = results[-1]
            print(f"{recipe:>10} seed {seed}: {r['before']:.3f} -> {r['after']:.3f} "
                  f"({r['rollouts']} rollouts, {r['wall_seconds']:.0f} s)", flush=True)
    table = {}
    for recipe in args.recipes.split(","):
        after = [r["after"] for r in results if r["recipe"] == recipe]
        gain = [r["after"] - r["before"] for r in results if r["recipe"] == recipe]
        table[recipe] = {"mean": statistics.mean(after), "std": statistics.stdev(after) if len(after) > 1 else 0.0,
                         "min": min(after), "max": max(after), "mean_gain": statistics.mean(gain),
                         "mean_rollouts": statistics.mean(r["rollouts"] for r in results if r["recipe"] == recipe)}
    print(f"\n{'recipe':>10}  greedy acc after RL: mean  std    min    max    gain   rollouts")
    for recipe, s in table.items():
        print(f"{recipe:>10}  {s['mean']:.3f}  {s['std']:.3f}  {s['min']:.3f}  {s['max']:.3f}  "
              f"{s['mean_gain']:+.3f}  {s['mean_rollouts']:.0f}")
    Path(args.out).write_text(json.dumps({"runs": results, "table": table, "steps": args.steps,
                                          "overrides": args.set,
                                          "wall_seconds": time.perf_counter() - t0}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
