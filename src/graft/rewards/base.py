"""What every verifier returns: a ``Verdict`` (combine.py turns verdicts into a task's ``Score``).

A grader is any object with ``grade(completion, example) -> Verdict`` (and
``grade_many`` for a list; the default runs them one by one). The reference a
grader checks against is the ``Example``: ``answer`` for math / exact / regex,
``answer`` = the tests for code, ``answer`` = the reference query plus
``meta["db"]`` for SQL. A grader never raises on a bad completion: a failing
completion is a reward of 0 with a short reason, not an exception. Bad
*reference* data (tests that do not parse, a missing database) raises
``ValueError`` naming the problem, so that loaders can add file and line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from graft.tasks.base import Example

# Short reasons a completion earned less than full reward (the `error` of `graft verify`).
REASONS = (
    "wrong_answer",  # ran / parsed fine, answer differs
    "no_answer",     # no final answer could be extracted
    "rejected",      # refused before grading: hostile or oversized input, not a single SELECT, ...
    "syntax",        # code or SQL does not parse
    "runtime",       # raised, crashed or exited non-zero
    "timeout",       # wall or CPU time limit
    "memory",        # memory limit
    "output_limit",  # printed or returned more than the cap
)


@dataclass(frozen=True)
class Verdict:
    """A grader's result for one completion.

    reward: in [0, 1]; partial credit where the grader allows it (code: fraction of tests passed).
    error:  None when fully correct, else one of ``REASONS``.
    info:   grader-specific facts for logs (e.g. ``{"passed": 3, "total": 4}``).
    """

    reward: float
    error: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return self.error is None


class Grader(Protocol):
    name: str

    def grade(self, completion: str, example: Example) -> Verdict:
        """Never raises on a bad completion."""
        ...

    def grade_many(self, items: Sequence[tuple[str, Example]]) -> list[Verdict]:
        """Same as ``[grade(c, e) for c, e in items]``, possibly in parallel."""
        ...


def grade_serially(grader: Grader, items: Sequence[tuple[str, Example]]) -> list[Verdict]:
    return [grader.grade(completion, example) for completion, example in items]
