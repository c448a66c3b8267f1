"""Synchronous vs asynchronous Ray rollouts on a task whose verifier is slow (the code sandbox).

The built-in tiny transformer is first warmed by ``--warm-steps`` SFT steps on the code task's
demonstrations (local backend, cached in bench/.cache/async_warm) so that its completions hold
code fences the sandbox runs: that makes the verifier the slow stage (each completion a sandboxed
process; a program that waits or loops costs the sandbox's wall limit). Then three runs of the same
config (configs/code.yaml from the warmed model, shrunk so that it runs in minutes on a CPU):
``distributed.max_staleness`` 0 (synchronous: sample, verify, train, in turn), 1 and 2 (the
rollout and reward workers sample and verify the next steps' requests while the learner trains).
Each run: the Ray backend, ``--rollout-workers`` rollout and ``--reward-workers`` reward workers on
one local Ray cluster, ``--steps`` RL steps. Printed: wall time of
the RL steps (the sum of their ``perf/step_time``: the learner's view, waits included), the
run's total, the mean staleness of trained rollouts, held-out accuracy (greedy, the task's test
split) after the run, and each time's ratio to the synchronous run. Writes
bench/results/async.json.

    PYTHONPATH=src python bench/async.py [--steps 16] [--warm-steps 150] [--staleness 0,1,2,0,1,2]

On 2 shared CPU cores the workers and the learner compete for the same cores, so the overlap
gains less than it would where generation, sandboxes and the learner have their own.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import ray

from graft.config import load_config
from graft.train import checkpoint as ckpt
from graft.train.logging import read_metrics
from graft.train.loop import prepare, train

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["threads=1", "model.d_model=64", "model.n_layers=2", "model.n_heads=2", "model.max_seq_len=384"]


def warm(args) -> Path:
    """The SFT-warmed model (made once per --warm-steps, then reused from bench/.cache)."""
    run_dir = ROOT / "bench" / ".cache" / f"async_warm_{args.warm_steps}"
    found = ckpt.list_checkpoints(run_dir / "checkpoints") if run_dir.is_dir() else []
    if not found:
        cfg = load_config(ROOT / "configs" / "code.yaml", [
            "name=async_warm", "log.progress=false", *MODEL, f"sft.steps={args.warm_steps}", "sft.lr=0.003",
            "rl.steps=0", "checkpoint.every=1000", "eval.num_examples=1"])
        train(prepare(cfg), run_dir)
        found = ckpt.list_checkpoints(run_dir / "checkpoints")
    return found[-1] / "model"


def run(k: int, args, model: Path, work: Path, index: int = 0) -> dict:
    """One run at ``max_staleness`` k (``index``: its place in --staleness, which may repeat a value)."""
    overrides = [
        f"name=async{k}", "log.progress=false", *MODEL, f"model.path={model}", "sft.steps=0", f"rl.steps={args.steps}",
        f"rl.num_prompts={args.prompts}", "rl.num_generations=4", f"rl.max_new_tokens={args.max_new}",
        f"eval.max_new_tokens={args.max_new}", "checkpoint.every=1000",
        "distributed.backend=ray", f"distributed.rollout_workers={args.rollout_workers}",
        f"distributed.reward_workers={args.reward_workers}", "distributed.worker_cpus=0",
        f"distributed.max_staleness={k}",
    ]
    cfg = load_config(ROOT / "configs" / "code.yaml", overrides)
    t0 = time.perf_counter()
    run_dir = work / f"run{index}-staleness{k}"
    summary = train(prepare(cfg), run_dir)
    total = time.perf_counter() - t0
    rows = [m for m in read_metrics(run_dir / "metrics.jsonl") if "losses/policy" in m]
    return {
        "max_staleness": k, "rl_wall_s": sum(m["perf/step_time"] for m in rows), "total_s": total,
        "rollout_s": sum(m["perf/rollout_time"] for m in rows),
        "staleness_mean": sum(m.get("rollout/staleness_mean", 0.0) for m in rows) / len(rows),
        "staleness_max": max(m.get("rollout/staleness_max", 0.0) for m in rows),
        "reward_mean": sum(m["rollout/reward_mean"] for m in rows) / len(rows),
        "heldout_accuracy": summary["accuracy_after_rl"], "heldout_examples": summary["eval_examples"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=16, help="RL steps per run")
    p.add_argument("--warm-steps", type=int, default=150,
                   help="SFT steps of the warm-up (cached; 150: completions reach the sandbox, reward ~0.09)")
    p.add_argument("--prompts", type=int, default=4, help="rl.num_prompts")
    p.add_argument("--max-new", type=int, default=96, help="rl.max_new_tokens")
    p.add_argument("--rollout-workers", type=int, default=1)
    p.add_argument("--reward-workers", type=int, default=2)
    p.add_argument("--staleness", default="0,1,2,0,1,2", help="max_staleness values, in run order (0 first: the baseline; "
                   "repeat them, e.g. 0,1,2,0,1,2, to see the run-to-run spread)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "async.json")
    args = p.parse_args()
    model = warm(args)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(int(k), args, model, Path(tmp), i) for i, k in enumerate(args.staleness.split(","))]
    ray.shutdown()
    base = results[0]
    print(f"{'max_staleness':>13} {'RL wall s':>10} {'ratio':>6} {'total s':>8} {'ratio':>6} "
          f"{'staleness':>9} {'reward':>7} {'held-out acc':>12}")
    for r in results:
        r["rl_wall_ratio"] = r["rl_wall_s"] / base["rl_wall_s"]
        r["total_ratio"] = r["total_s"] / base["total_s"]
        print(f"{r['max_staleness']:>13} {r['rl_wall_s']:>10.1f} {r['rl_wall_ratio']:>6.2f} {r['total_s']:>8.1f} "
              f"{r['total_ratio']:>6.2f} {r['staleness_mean']:>9.2f} {r['reward_mean']:>7.3f} "
              f"{r['heldout_accuracy']:>12.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in vars(args).items() if k != "out"}
    args.out.write_text(json.dumps({"args": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
