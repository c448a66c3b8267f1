"""graft's side of bench/vs_trl.py: one RL run through graft's public API, timed by graft itself.

Run in graft's environment (PYTHONPATH=src or an installed graft):
    python bench/graft_side.py SPEC.json OUT.json
SPEC (written by vs_trl.py): model_dir, data (a JSONL of prompt/answer rows), steps,
num_prompts, num_generations, max_new_tokens, lr, threads, run_dir, and graft_options (graft-only
config overrides of the workload, e.g. W2's lean update settings; see vs_trl.WORKLOADS).

The run: ``graft.train.loop.prepare`` + ``train`` with ``task.name=jsonl`` (reward 1 when the
completion's last non-empty line, stripped, equals the answer -- vs_trl.py gives TRL the same
function), ``sft.steps=0``, no KL, one update per batch. Per-step numbers are read back from
the run's ``metrics.jsonl`` (``perf/step_time``: sampling + scoring + update of one step).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    from graft.config import build_config
    from graft.train.loop import prepare, train

    overrides = [
        f"model.path={spec['model_dir']}",
        "task.name=jsonl", f"task.path={spec['data']}", "task.num_test=8",
        "sft.steps=0", f"rl.steps={spec['steps']}",
        f"rl.num_prompts={spec['num_prompts']}", f"rl.num_generations={spec['num_generations']}",
        f"rl.max_new_tokens={spec['max_new_tokens']}", "rl.temperature=1.0", f"rl.lr={spec['lr']}",
        "rl.num_iterations=1", "algo.kl=none", "algo.kl_coef=0.0",
        "eval.num_examples=1", "eval.max_new_tokens=4", "eval.batch_size=1",
        f"checkpoint.every={spec['steps'] + 1}", "log.progress=false", f"threads={spec['threads']}",
    ]
    cfg = build_config({}, overrides + spec.get("graft_options", []))
    t0 = time.perf_counter()
    setup = prepare(cfg)
    run_dir = Path(spec["run_dir"])
    train(setup, run_dir)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [{
        "step_time": r["perf/step_time"],
        "rollout_time": r.get("perf/rollout_time"),
        "completion_tokens": r["rollout/completion_len"] * spec["num_prompts"] * spec["num_generations"],
        "reward_mean": r.get("rollout/verifier_reward_mean"),
    } for r in rows]
    prompt_tokens = [len(setup.policy.tokenizer.encode(ex.prompt)) for ex in setup.task.train_examples()]
    result = {
        "side": "graft",
        "steps": steps,
        "mean_prompt_tokens": sum(prompt_tokens) / len(prompt_tokens),
        "wall_seconds": wall,
        # Linux: kilobytes; the whole process (model load, evals, the run)
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(out_path).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:3])
