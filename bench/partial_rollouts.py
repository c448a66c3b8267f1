"""Partial rollouts (APRIL) on vs off, side by side in one process, on a long-tail setting.

A fresh tiny transformer is warmed with ``--sft-steps`` steps of SFT on two-digit arithmetic
(so most completions end at EOS after ~25 tokens, with a tail that rambles on), then two copies
of it run ``--steps`` RL steps each, interleaved step by step (so load drifts hit both alike):
one samples every group to the end (``rollout.strategy=iid``), the other stops once
``rl.num_prompts`` groups are complete (``rollout.strategy=partial``) and carries the rest over.
``rl.max_new_tokens`` (``--max-new``) is set well above the typical length: that is the long tail.

Printed per setting: mean sequential decode steps, generated tokens, rollout and step wall time
per RL step, groups trained per step, and (partial) the off-policy token fraction.

    PYTHONPATH=src python bench/partial_rollouts.py [--steps 8] [--sft-steps 60] [--max-new 96]
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch

from graft.config import build_config
from graft.curriculum.uniform import UniformStream
from graft.mix.schedules import Plan
from graft.train.collect import step_seed
from graft.train.loop import build_pipeline, prepare, start_rl
from graft.train.rl import rl_step, step_requests
from graft.train.steps import sft_step

KEYS = ("rollout/decode_steps", "rollout/generated_tokens", "perf/rollout_time", "perf/step_time",
        "rollout/trained_groups", "rollout/off_policy_token_frac", "rollout/accuracy")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=8, help="RL steps per setting")
    p.add_argument("--sft-steps", type=int, default=60)
    p.add_argument("--max-new", type=int, default=96, help="rl.max_new_tokens (the long tail's room)")
    p.add_argument("--prompts", type=int, default=16, help="rl.num_prompts")
    p.add_argument("--generations", type=int, default=8, help="rl.num_generations")
    p.add_argument("--over-provision", type=float, default=1.5)
    p.add_argument("--stale", default="correct", choices=["correct", "mask"])
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    sets = [f"threads={args.threads}", "log.progress=false", f"model.d_model={args.d_model}", "model.n_layers=2",
            "model.n_heads=2", "task.difficulty=2", "task.num_train=2000", "sft.batch_size=32", "sft.lr=0.01",
            f"sft.steps={args.sft_steps}", f"rl.steps={args.steps}", f"rl.num_prompts={args.prompts}",
            f"rl.num_generations={args.generations}", f"rl.max_new_tokens={args.max_new}",
            "model.max_seq_len=160", "rl.lr=0.0001"]
    partial_sets = [*sets, "rollout.strategy=partial", f"rollout.over_provision={args.over_provision}",
                    f"rollout.stale={args.stale}"]
    setup = prepare(build_config({}, sets))
    cfg, task, policy = setup.cfg, setup.task, setup.policy
    cfg_p = build_config({}, partial_sets)
    optimizer = torch.optim.AdamW(policy.module.parameters(), lr=cfg.sft.lr)
    demos = UniformStream(task.train_examples(), cfg.seed)
    for step in range(cfg.sft.steps):
        sft_step(policy, optimizer, demos.take(step * cfg.sft.batch_size, cfg.sft.batch_size), cfg, cfg.sft.lr)

    learners = {"full": start_rl(copy.deepcopy(policy), cfg), "partial": start_rl(copy.deepcopy(policy), cfg_p)}
    configs = {"full": cfg, "partial": cfg_p}
    pipes = {name: build_pipeline(c, task, UniformStream(task.train_examples(), 1)) for name, c in configs.items()}
    rows: dict[str, list[dict]] = {name: [] for name in learners}
    extra = UniformStream(task.train_examples(), 2)
    for step in range(args.steps):
        for name, learner in learners.items():  # interleaved: both see the same machine load
            c = configs[name]
            requests, refills = step_requests(pipes[name], learner.policy, step, extra)
            metrics = rl_step(learner, pipes[name], requests, refills, Plan(rl=True, lr=c.rl.lr), [],
                              step_seed(cfg.seed, step), version=step).metrics()
            metrics.setdefault("rollout/trained_groups", float(c.rl.num_prompts))
            rows[name].append(metrics)

    print(f"partial rollouts: {args.prompts} prompts x {args.generations} generations per step, "
          f"max_new_tokens={args.max_new}, over_provision={args.over_provision}, stale={args.stale}, "
          f"tiny model d_model={args.d_model} after {args.sft_steps} SFT steps, threads={args.threads}, "
          f"{args.steps} RL steps each (means per step; first step included)")
    print(f"  {'setting':8s} " + " ".join(f"{k.split('/')[1]:>20s}" for k in KEYS))
    means = {}
    for name, rs in rows.items():
        means[name] = {k: statistics.mean(r.get(k, 0.0) for r in rs) for k in KEYS}
        print(f"  {name:8s} " + " ".join(f"{means[name][k]:20.3f}" for k in KEYS))
    f, q = means["full"], means["partial"]
    print(f"  partial / full: decode steps x{q[KEYS[0]] / f[KEYS[0]]:.2f}, generated tokens "
          f"x{q[KEYS[1]] / f[KEYS[1]]:.2f}, rollout time x{q[KEYS[2]] / f[KEYS[2]]:.2f}, "
          f"step time x{q[KEYS[3]] / f[KEYS[3]]:.2f}; per trained group: rollout time "
          f"x{(q[KEYS[2]] / q[KEYS[4]]) / (f[KEYS[2]] / f[KEYS[4]]):.2f}")


if __name__ == "__main__":
    main()
