"""Held-out evaluation: greedy accuracy, and from n samples per prompt sampled accuracy,
unbiased pass@k, maj@k, completion length, and a per-difficulty breakdown.

Sampled completions are keyed, not drawn from a shared generator: sample r of example i (its
index in the evaluated list) draws from row key ``mix(key, i, r)`` (``graft.rollout.rng``), where
``key`` is the evaluation's (``sampling_key(seed)``, or ``periodic_seed(seed, step)``). So the
results do not depend on ``eval.batch_size`` or on which examples share a batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graft.eval.metrics import maj_at_k, pass_at_k
from graft.models.policy import Policy
from graft.rewards.scoring import score_pairs
from graft.rollout.rng import mix
from graft.rollout.sampler import sample
from graft.tasks.base import Example, Task


@dataclass(frozen=True)
class Graded:
    """One completion of one example: the verifier's verdict, its final answer and length."""

    index: int  # position of the example in the evaluated list
    correct: bool
    reward: float
    answer: str | None
    length: int  # completion tokens


def answer_of(task: Task, completion: str) -> str | None:
    """The task's final answer (``task.final_answer``), or the last non-empty line if it has none."""
    extract = getattr(task, "final_answer", None)
    if extract is not None:
        return extract(completion)
    lines = [ln.strip() for ln in completion.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def decode(
    policy: Policy, task: Task, examples: list[Example], *, repeats: int, max_new_tokens: int,
    batch_size: int, temperature: float, seed: int = 0,
    stop: tuple[str, ...] | list[str] = (),
) -> list[Graded]:
    """``repeats`` completions per example (example-major order), ``batch_size`` rows per batch;
    sample r of example i from row key ``mix(seed, i, r)``; ``stop``: stop strings (``rl.stop``),
    besides the model's stop ids."""
    was_training = policy.module.training
    policy.module.eval()
    rows = [(i, r) for i in range(len(examples)) for r in range(repeats)]
    graded = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        prompts = [policy.tokenizer.encode(examples[i].prompt) for i, _ in chunk]
        rollouts = sample(policy, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                          keys=[mix(seed, i, r) for i, r in chunk], stop_strings=stop)
        scores = score_pairs(task, [(examples[i], ro.text) for (i, _), ro in zip(chunk, rollouts)])
        for (i, _), ro, score in zip(chunk, rollouts, scores):
            graded.append(Graded(i, bool(score.correct), float(score.reward), answer_of(task, ro.text),
                                 len(ro.completion_ids)))
    policy.module.train(was_training)
    return graded


def evaluate(
    policy: Policy,
    task: Task,
    examples: list[Example],
    *,
    max_new_tokens: int,
    batch_size: int,
    temperature: float = 0.0,
    seed: int = 0,
    stop: tuple[str, ...] | list[str] = (),
) -> dict:
    """One completion per example (example i from row key ``mix(seed, i, 0)``); ``temperature=0``
    is greedy. Returns accuracy and friends."""
    graded = decode(policy, task, examples, repeats=1, max_new_tokens=max_new_tokens,
                    batch_size=batch_size, temperature=temperature, seed=seed, stop=stop)
    n = len(examples)
    return {"accuracy": sum(g.correct for g in graded) / n, "reward_mean": sum(g.reward for g in graded) / n,
            "completion_len": sum(g.length for g in graded) / n, "n": n}


SAMPLED_SALT = 7919  # keeps the end-of-phase evaluation's keys apart from training's and periodic's


def sampling_key(seed: int) -> int:
    """The key of the sampled pass of ``evaluate_both`` / ``evaluate_full`` for run seed ``seed``."""
    return mix(seed, SAMPLED_SALT)


def evaluate_both(policy: Policy, task: Task, eval_cfg, seed: int, stop: tuple[str, ...] | list[str] = ()
                  ) -> dict:
    """Greedy accuracy and sampled accuracy (at ``eval.temperature``) on the first N test examples;
    ``stop``: the run's stop strings (``rl.stop``)."""
    examples = task.test_examples()[: eval_cfg.num_examples]
    greedy = evaluate(
        policy, task, examples, max_new_tokens=eval_cfg.max_new_tokens, batch_size=eval_cfg.batch_size,
        stop=stop,
    )
    sampled = evaluate(
        policy, task, examples, max_new_tokens=eval_cfg.max_new_tokens,
        batch_size=eval_cfg.batch_size, temperature=eval_cfg.temperature, seed=sampling_key(seed),
        stop=stop,
    )
    return {
        "accuracy": greedy["accuracy"],
        "sampled_accuracy": sampled["accuracy"],
        "completion_len": greedy["completion_len"],
        "n": greedy["n"],
    }


PERIODIC_SALT = 7919  # with the step, keeps the periodic keys apart from every other key
PERIODIC_KEYS = ("accuracy", "completion_len", "sampled_accuracy", "sampled_completion_len")


def periodic_seed(seed: int, step: int) -> int:
    """Key of the sampled pass of the periodic evaluation after ``step`` training steps: a function
    of (seed, step) alone (``mix(seed, step, PERIODIC_SALT)``), so the same step of a resumed or
    uninterrupted run draws the same samples, and no two steps share keys."""
    return mix(seed, step, PERIODIC_SALT)


def evaluate_periodic(policy: Policy, task: Task, eval_cfg, seed: int, step: int, *, greedy: bool,
                      sampled: bool) -> dict:
    """The periodic evaluation after ``step`` steps (``eval.every`` / ``eval.sampled_every``) on the
    first ``eval.num_examples`` test examples: greedy accuracy and mean completion length when
    ``greedy``; sampled accuracy (one completion each at ``eval.temperature``, keyed by
    ``periodic_seed(seed, step)``) and its mean length when ``sampled``.

    The policy's weights are only read and no training state is touched, so training is unchanged."""
    examples = task.test_examples()[: eval_cfg.num_examples]
    common = {"max_new_tokens": eval_cfg.max_new_tokens, "batch_size": eval_cfg.batch_size}
    out: dict = {"kind": "periodic", "step": step, "n": len(examples)}
    if greedy:
        result = evaluate(policy, task, examples, **common)
        out.update(accuracy=result["accuracy"], completion_len=result["completion_len"])
    if sampled:
        result = evaluate(policy, task, examples, temperature=eval_cfg.temperature, seed=periodic_seed(seed, step),
                          **common)
        out.update(sampled_accuracy=result["accuracy"], sampled_completion_len=result["completion_len"])
    return out


def summarize(greedy: list[Graded], sampled: list[Graded], num_examples: int, samples: int,
              ks: list[int]) -> dict:
    """Aggregate graded completions of ``num_examples`` examples (``samples`` sampled ones each)."""
    correct = np.zeros((num_examples, samples), dtype=bool)  # (E, N)
    answers: list[list[str | None]] = [[] for _ in range(num_examples)]
    for j, g in enumerate(sampled):
        correct[g.index, j % samples] = g.correct
        answers[g.index].append(g.answer)
    out = {
        "n": num_examples,
        "accuracy": float(np.mean([g.correct for g in greedy])),
        "sampled_accuracy": float(correct.mean()),
        "completion_len": float(np.mean([g.length for g in greedy])),
        "sampled_completion_len": float(np.mean([g.length for g in sampled])),
    }
    for k in ks:
        out[f"pass@{k}"] = float(np.mean([pass_at_k(samples, int(c), k) for c in correct.sum(1)]))
    for k in ks:
        out[f"maj@{k}"] = float(np.mean([maj_at_k(answers[e], correct[e], k) for e in range(num_examples)]))
    return out


def evaluate_full(policy: Policy, task: Task, eval_cfg, seed: int, ks: list[int], samples: int,
                  stop: tuple[str, ...] | list[str] = ()) -> dict:
    """Greedy accuracy, and from ``samples`` completions per prompt at ``eval.temperature``:
    sampled accuracy, pass@k and maj@k for each k in ``ks``, mean lengths, and all of these per
    ``meta["difficulty"]`` (examples without one are grouped under "-").

    With ``samples=1`` the sampled pass draws the same completions as ``evaluate_both``.
    """
    if not ks or min(ks) < 1 or max(ks) > samples:
        raise ValueError(f"every k must be in 1..samples={samples}, got {ks}")
    examples = task.test_examples()[: eval_cfg.num_examples]
    common = {"max_new_tokens": eval_cfg.max_new_tokens, "batch_size": eval_cfg.batch_size, "stop": stop}
    greedy = decode(policy, task, examples, repeats=1, temperature=0.0, **common)
    sampled = decode(policy, task, examples, repeats=samples, temperature=eval_cfg.temperature,
                     seed=sampling_key(seed), **common)
    return {"samples": samples, "k": list(ks), "temperature": eval_cfg.temperature,
            **breakdown(examples, greedy, sampled, samples, ks)}


def breakdown(examples: list[Example], greedy: list[Graded], sampled: list[Graded], samples: int,
              ks: list[int]) -> dict:
    """``summarize`` over all examples, and under "by_difficulty" per ``meta["difficulty"]``."""
    result = summarize(greedy, sampled, len(examples), samples, ks)
    levels: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        levels.setdefault(str(ex.meta.get("difficulty", "-")), []).append(i)
    result["by_difficulty"] = {}
    for level, members in sorted(levels.items()):
        where = {old: new for new, old in enumerate(members)}
        sub_greedy = [Graded(where[g.index], g.correct, g.reward, g.answer, g.length)
                      for g in greedy if g.index in where]
        sub_sampled = [Graded(where[g.index], g.correct, g.reward, g.answer, g.length)
                       for g in sampled if g.index in where]
        result["by_difficulty"][level] = summarize(sub_greedy, sub_sampled, len(members), samples, ks)
    return result
