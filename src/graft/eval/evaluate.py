"""Held-out accuracy: greedy and sampled decoding over a task's test split."""

from __future__ import annotations

import torch

from graft.models.policy import Policy
from graft.rollout.sampler import sample
from graft.tasks.base import Example, Task


def evaluate(
    policy: Policy,
    task: Task,
    examples: list[Example],
    *,
    max_new_tokens: int,
    batch_size: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> dict:
    """One completion per example; ``temperature=0`` is greedy. Returns accuracy and friends."""
    was_training = policy.module.training
    policy.module.eval()
    correct, reward, length = 0, 0.0, 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        prompts = [policy.tokenizer.encode(ex.prompt) for ex in chunk]
        rollouts = sample(
            policy, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
            generator=generator,
        )
        for ex, ro in zip(chunk, rollouts):
            score = task.score(ex, ro.text)
            correct += int(score.correct)
            reward += score.reward
            length += len(ro.completion_ids)
    policy.module.train(was_training)
    n = len(examples)
    return {"accuracy": correct / n, "reward_mean": reward / n, "completion_len": length / n, "n": n}


def evaluate_both(policy: Policy, task: Task, eval_cfg, seed: int) -> dict:
    """Greedy accuracy and sampled accuracy (at ``eval.temperature``) on the first N test examples."""
    examples = task.test_examples()[: eval_cfg.num_examples]
    greedy = evaluate(
        policy, task, examples, max_new_tokens=eval_cfg.max_new_tokens, batch_size=eval_cfg.batch_size
    )
    gen = torch.Generator().manual_seed(seed + 7919)  # private stream: eval never shifts training's
    sampled = evaluate(
        policy, task, examples, max_new_tokens=eval_cfg.max_new_tokens,
        batch_size=eval_cfg.batch_size, temperature=eval_cfg.temperature, generator=gen,
    )
    return {
        "accuracy": greedy["accuracy"],
        "sampled_accuracy": sampled["accuracy"],
        "completion_len": greedy["completion_len"],
        "n": greedy["n"],
    }
