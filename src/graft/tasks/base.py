"""The Task protocol: what a task gives the loop.

A task owns its data (seeded train/test split), its demonstrations (worked
solutions used for SFT) and its verifier. Tasks know nothing about tokens:
prompts, answers and completions are plain strings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Protocol


@dataclass(frozen=True)
class Example:
    """One task item.

    prompt:        text the policy is conditioned on.
    answer:        reference final answer (string form, as the verifier expects it).
    demonstration: optional worked solution; the exact completion SFT trains on
                   (it must score as correct under the task's own verifier).
    meta:          free-form facts: ``id`` (stable, unique within the task), ``difficulty``, ...
    """

    prompt: str
    answer: str
    demonstration: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """A verifier's verdict on one completion.

    reward:  the scalar the RL update uses.
    correct: whether the final answer is right (drives accuracy metrics).
    parts:   named reward components, e.g. {"correct": 1.0, "format": 1.0}.
    """

    reward: float
    correct: bool
    parts: dict[str, float] = field(default_factory=dict)


class Task(Protocol):
    """What every task provides. Built-in tasks are registered in ``graft.tasks.TASKS``."""

    name: str

    def train_examples(self) -> list[Example]:
        """Training items, in a fixed seeded order."""
        ...

    def test_examples(self) -> list[Example]:
        """Held-out items; disjoint from training (by prompt)."""
        ...

    def score(self, example: Example, completion: str) -> Score:
        """Verify a completion against the example. Never raises on bad completions."""
        ...

    # Optional: ``final_answer(completion) -> str | None``, the answer in canonical form that
    # maj@k votes on (graft.eval.evaluate.answer_of falls back to the last non-empty line).

class DemoSubset:
    """A task whose training examples keep their demonstration only on a seeded subset.

    ``round(fraction * N)`` training positions, drawn with ``random.Random(seed)`` (the config's
    ``task.split_seed``, so every run ``seed`` sees the same subset), keep their demonstration;
    the others become prompt + answer only (RL can use them, SFT cannot). Test examples, the
    verifier and anything else (``final_answer``, ``bind_tokenizer``) are the wrapped task's, and
    the examples are read from it on every call, so a task whose prompts change when a tokenizer
    is bound stays right. Models a common real situation: worked solutions exist for part of the
    prompts only (``task.demo_fraction``).
    """

    def __init__(self, task: Task, fraction: float, seed: int):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"demo_fraction must be in [0, 1], got {fraction}")
        self._task = task
        self.name = task.name
        n = len(task.train_examples())
        self._keep = frozenset(random.Random(seed).sample(range(n), round(fraction * n)))

    def train_examples(self) -> list[Example]:
        return [ex if i in self._keep else replace(ex, demonstration=None)
                for i, ex in enumerate(self._task.train_examples())]

    def test_examples(self) -> list[Example]:
        return self._task.test_examples()

    def score(self, example: Example, completion: str) -> Score:
        return self._task.score(example, completion)

    def __getattr__(self, name: str):
        if name.startswith("_"):  # not set yet (e.g. while unpickling): no recursion through _task
            raise AttributeError(name)
        return getattr(self._task, name)
