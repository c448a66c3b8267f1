"""graft's side of bench/vs_trl.py and bench/time_to_target.py, through graft's public API.

Run in graft's environment (PYTHONPATH=src or an installed graft):
    python bench/graft_side.py SPEC.json OUT.json
SPEC["mode"] picks the job (default "step_time"):
- "step_time" (vs_trl.py): model_dir, data (a JSONL of prompt/answer rows), steps,
  num_prompts, num_generations, max_new_tokens, lr, threads, run_dir, and graft_options (graft-only
  config overrides of the workload, e.g. W2's lean update settings; see vs_trl.WORKLOADS, or
  gpu_bench.py's device, precision and LoRA settings). Described below.
- "sft" (time_to_target.py): SFT-warm a Hugging Face model on a config's demonstrations and
  copy the result, HF format, to ``out_model``.
- "rl_checkpoints" (time_to_target.py): RL from ``model_dir`` with a config, saving the policy
  (HF format) every ``save_every`` steps with the training wall time at that point.
- "score" (time_to_target.py): greedy held-out accuracy of a list of HF checkpoints.

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
    mode = spec.get("mode", "step_time")
    if mode != "step_time":
        result = MODES[mode](spec)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(out_path).write_text(json.dumps(result, indent=2))
        return
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
        **{f"{k}_time": r.get(f"perf/{k}_time")
           for k in ("prefill", "verify", "frozen", "update", "backward", "optimizer")},
        "completion_tokens": r["rollout/completion_len"] * spec["num_prompts"] * spec["num_generations"],
        "reward_mean": r.get("rollout/reward_mean"),
    } for r in rows]
    prompt_tokens = [len(setup.policy.tokenizer.encode(ex.prompt)) for ex in setup.task.train_examples()]
    result = {
        "side": "graft",
        "steps": steps,
        "mean_prompt_tokens": sum(prompt_tokens) / len(prompt_tokens),
        "wall_seconds": wall,
        # Linux: kilobytes; the whole process (model load, evals, the run)
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_memory": cuda_memory(),
        "trainable_params": sum(p.numel() for p in setup.policy.module.parameters() if p.requires_grad),
        # the update's four lean keys as prepare resolved them (``auto`` -> graft.train.lean's rules)
        "lean": {k: getattr(setup.cfg.optim, k) for k in ("logprob_chunk", "logprob_impl", "micro_batch_size",
                                                          "sort_by_length")},
    }
    Path(out_path).write_text(json.dumps(result, indent=2))


def cuda_memory() -> dict | None:
    """This process's peak GPU memory (None when it never used CUDA; trl_side.py imports this).

    ``max_allocated_mb`` / ``max_reserved_mb``: torch's caching allocator, peak over the process
    (tensors alive / blocks held from the driver); ``device_used_at_end_mb``: the whole GPU's used
    memory at the end (cudaMemGetInfo), which also counts what torch's allocator does not see
    (the CUDA context, an inference engine's own pools) and other processes."""
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return {"max_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
            "max_reserved_mb": torch.cuda.max_memory_reserved() / 2**20,
            "device_used_at_end_mb": (total - free) / 2**20, "device_total_mb": total / 2**20}


# ---------------------------------------------------------------- time_to_target.py's jobs
# Each takes the SPEC with "config" (a YAML path) and "overrides" (--set strings) built by
# time_to_target.py, so the settings of a run are decided in one place.


def _setup(spec: dict):
    from graft.config import load_config
    from graft.train.loop import prepare

    return prepare(load_config(spec["config"], spec["overrides"]))


def sft_start(spec: dict) -> dict:
    """SFT the HF model named in the overrides (``model.path``; ``rl.steps=0``) and save the
    resulting policy, weights + tokenizer in HF format, to ``out_model``."""
    from graft.train.loop import train

    setup = _setup(spec)
    summary = train(setup, Path(spec["run_dir"]))
    setup.policy.save(Path(spec["out_model"]))  # trained in place: SFT-only runs keep one policy
    return {"summary": summary}


def rl_checkpoints(spec: dict) -> dict:
    """RL from ``model.path``; every ``save_every`` steps (and at the last) the policy is saved in HF
    format under ``checkpoint_dir/step_N`` together with the training wall time so far.

    Training wall = the first step's own ``perf/step_time``, then the wall time between the ends of
    consecutive steps (sampling, scoring, update, the loop's bookkeeping), minus the time spent
    here saving checkpoints. The loop's own evaluations before the first and after the last step
    are outside it."""
    from graft.train.loop import train

    setup = _setup(spec)
    out = Path(spec["checkpoint_dir"])
    every = spec["save_every"]
    clock = {"wall": 0.0, "last": None}
    points, steps = [], []

    def progress(step: int, total: int, metrics: dict) -> None:
        now = time.perf_counter()
        clock["wall"] += metrics["perf/step_time"] if clock["last"] is None else now - clock["last"]
        steps.append({"step": step, "wall_s": clock["wall"], "step_time": metrics["perf/step_time"],
                      "reward_mean": metrics.get("rollout/reward_mean"),
                      "completion_len": metrics.get("rollout/completion_len")})
        if step % every == 0 or step == total:
            path = out / f"step_{step}"
            setup.policy.save(path)  # the learner's policy: RL updates it in place
            points.append({"step": step, "wall_s": clock["wall"], "path": str(path)})
        clock["last"] = time.perf_counter()  # the save above is not training time

    train(setup, Path(spec["run_dir"]), progress=progress)
    return {"side": "graft", "checkpoints": points, "steps": steps}


def score(spec: dict) -> dict:
    """graft's held-out evaluation (``evaluate_both``: greedy accuracy, and sampled accuracy at
    ``eval.temperature`` with graft's fixed evaluation seed, the same draws for every checkpoint)
    of each HF directory in ``checkpoints`` on the first ``eval.num_examples`` test examples."""
    import torch

    from graft.config import load_config
    from graft.eval.evaluate import evaluate_both
    from graft.models.load import load_saved_policy
    from graft.train.loop import bind_tokenizer, build_task

    cfg = load_config(spec["config"], spec["overrides"])
    torch.set_num_threads(cfg.threads)
    task = build_task(cfg.task)
    scores = {}
    for path in spec["checkpoints"]:
        policy = load_saved_policy(path)
        bind_tokenizer(task, policy)
        scores[path] = evaluate_both(policy, task, cfg.eval, cfg.seed)
    return {"scores": scores}


MODES = {"sft": sft_start, "rl_checkpoints": rl_checkpoints, "score": score}


if __name__ == "__main__":
    main(*sys.argv[1:3])
