"""Fake finished runs with chosen numbers, for the evaluation command tests."""

import json
from pathlib import Path

from conftest import TINY

from graft.config import build_config, dump_config


def fake_run(root: Path, name: str, seed: int, accuracy: float | None, *, difficulty: int = 2,
             curve=None, metrics=True, eval_curve: dict[int, float] | None = None) -> Path:
    """A finished-looking run: a real tiny config, summary.json, and metrics.jsonl with an RL curve.

    ``eval_curve``: metrics.jsonl step -> held-out ``eval/accuracy`` logged on that row (a row of
    the RL curve or step 0), with the periodic eval/step_<step + 1>.json that training writes."""
    run = root / f"{name}-seed{seed}"
    run.mkdir(parents=True)
    cfg = build_config({}, [*TINY, "threads=1", f"name={name}", f"seed={seed}", f"task.difficulty={difficulty}"])
    (run / "config.yaml").write_text(dump_config(cfg))
    if accuracy is not None:
        (run / "summary.json").write_text(json.dumps({
            "name": name, "seed": seed, "accuracy_after_sft": 0.1, "accuracy_after_rl": accuracy,
            "sampled_accuracy_after_sft": 0.2, "sampled_accuracy_after_rl": accuracy}))
    if metrics:
        rows = [{"step": 0, "losses/sft": 1.0, "mix/sft_share": 1.0}]
        for i, acc in enumerate(curve if curve is not None else [0.2, 0.3]):
            rows.append({"step": i + 1, "rollout/accuracy": float(acc), "rollout/reward_mean": float(acc),
                         "rollout/completion_len": 10.0, "losses/entropy": 1.0, "losses/kl": 0.0,
                         "mix/sft_share": 0.0})
        for step, value in (eval_curve or {}).items():
            rows[step]["eval/accuracy"] = float(value)
            (run / "eval").mkdir(exist_ok=True)
            (run / "eval" / f"step_{step + 1}.json").write_text(json.dumps(
                {"kind": "periodic", "step": step + 1, "n": 16, "accuracy": float(value)}))
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run
