"""Graders combined with weights, plus a format reward, into the task's ``Score``.

    reward = sum_i w_i * r_i + format_weight * f

where r_i is grader i's verdict reward and f in {0, 1} says whether the
completion has the required shape (``FORMATS``). ``correct`` is the first
(main) grader's verdict; ``parts`` names every term: ``{"correct": 0/1,
"<grader name>": r_i, ..., "format": f}``, so logs show what was earned where.
With one grader of weight 1 and no format term the reward is that grader's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from graft.rewards.base import Grader, Verdict
from graft.tasks.base import Example, Score

# name -> pattern the whole completion must contain (search, DOTALL)
FORMATS = {
    "answer_tags": r"<answer>.+?</answer>",
    "think_answer": r"\A\s*<think>.+?</think>\s*<answer>.+?</answer>\s*\Z",
    "boxed": r"\\boxed\{.+?\}",
    "code_fence": r"```(?:python3?|py)?[ \t]*\n.+?```",
    "sql_fence": r"```(?:sql|sqlite)?[ \t]*\n.+?```",
}


def format_reward(completion: str, name: str) -> float:
    """1.0 when the completion has the shape ``FORMATS[name]``, else 0.0."""
    return float(re.search(FORMATS[name], completion, re.DOTALL) is not None)


class Combined:
    """Weighted graders and an optional format term; ``score`` returns a ``Score``.

    graders:       [(grader, weight), ...]; the first one decides ``correct``.
    format:        a ``FORMATS`` name, or None for no format term.
    format_weight: weight of the format term.
    """

    def __init__(self, graders: Sequence[tuple[Grader, float]], format: str | None = None,
                 format_weight: float = 0.0):
        if not graders:
            raise ValueError("combine: needs at least one grader")
        if format is not None and format not in FORMATS:
            raise ValueError(f"unknown format {format!r}; choose one of {', '.join(sorted(FORMATS))}")
        self.graders = list(graders)
        self.format, self.format_weight = format, float(format_weight)

    def _combine(self, completion: str, verdicts: list[Verdict]) -> Score:
        parts = {"correct": float(verdicts[0].correct)}
        reward = 0.0
        for (grader, weight), verdict in zip(self.graders, verdicts):
            parts[grader.name] = verdict.reward
            reward += weight * verdict.reward
        if self.format is not None:
            parts["format"] = format_reward(completion, self.format)
            reward += self.format_weight * parts["format"]
        return Score(reward=reward, correct=verdicts[0].correct, parts=parts)

    def verdicts_many(self, items: Sequence[tuple[str, Example]]) -> list[list[Verdict]]:
        """Per item, one verdict per grader (each grader grades the whole list at once)."""
        per_grader = [grader.grade_many(items) for grader, _ in self.graders]
        return [list(row) for row in zip(*per_grader)]

    def score(self, completion: str, example: Example) -> Score:
        return self.score_many([(completion, example)])[0]

    def score_many(self, items: Sequence[tuple[str, Example]]) -> list[Score]:
        return [self._combine(c, v) for (c, _), v in zip(items, self.verdicts_many(items))]
