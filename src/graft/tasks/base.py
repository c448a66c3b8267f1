"""The Task protocol: what a task gives the loop.

A task owns its data (seeded train/test split), its demonstrations (worked
solutions used for SFT) and its verifier. Tasks know nothing about tokens:
prompts, answers and completions are plain strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
