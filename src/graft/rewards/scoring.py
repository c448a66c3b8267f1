"""The step's reward stage on groups: verify each completion once, shape once.

``verify_groups`` asks the task's verifier for a verdict on every rollout of the given groups in
one call (``task.score_many`` where the task has it: the code sandbox and math workers run in
parallel), filling ``verifier_reward``, ``correct`` and ``parts``. It runs once per round of
sampling (a round's verdicts decide the mixer's revisions and dynamic sampling's refills), and
each completion is verified exactly once.

``shape_groups`` runs once per step, over the step's final groups: DAPO's overlong penalty and
the configured length shaping (``graft.rewards.shaping``) turn the verifier's rewards into
``shaped_reward``. Some shaping is relative to the whole batch (``grpo_lambda`` ranks the batch's
groups), so it must see exactly the groups that are trained.
"""

from __future__ import annotations

import torch

from graft.rewards.shaping import LENGTH_SHAPING, overlong_penalty
from graft.rollout.types import Group
from graft.tasks.base import Example, Score, Task


def score_pairs(task: Task, items: list[tuple[Example, str]]) -> list[Score]:
    """The task's verdict on each (example, completion), in one ``score_many`` call where the task has
    it (code sandboxes and math workers run in parallel, a TRL-style reward function is one call)."""
    if not items:
        return []
    if hasattr(task, "score_many"):
        return list(task.score_many(items))
    return [task.score(example, completion) for example, completion in items]


def verify_groups(task: Task, groups: list[Group]) -> None:
    """Fill each rollout's ``verifier_reward``, ``correct`` and ``parts`` from the task's verifier."""
    pairs = [(g.example, ro) for g in groups for ro in g]
    if not pairs:
        return
    scores = score_pairs(task, [(ex, ro.text) for ex, ro in pairs])
    for (_, ro), score in zip(pairs, scores):
        ro.verifier_reward, ro.correct, ro.parts = score.reward, score.correct, dict(score.parts)


class InProcessVerifier:
    """The verifier stage of the local backend: ``verify_groups`` in this process. The Ray backend
    has one with the same method that sends the groups to reward workers
    (``graft.distributed.ray_backend``)."""

    def verify(self, task: Task, groups: list[Group]) -> None:
        verify_groups(task, groups)


def shape_groups(groups: list[Group], shaping, max_new_tokens: int) -> None:
    """Set ``shaped_reward`` of every rollout: length shaping ``shaping.length`` over the batch's
    groups (P, G), plus DAPO's overlong penalty over the last ``shaping.overlong_cache`` tokens
    before ``max_new_tokens``. ``shaping`` is the config's ``shaping`` section. Groups of unequal
    size are shaped group by group (each its own batch)."""
    if not groups:
        return
    if len({len(g) for g in groups}) > 1:
        for g in groups:
            shape_groups([g], shaping, max_new_tokens)
        return
    rewards = torch.tensor([[ro.verifier_reward for ro in g] for g in groups], dtype=torch.float32)  # (P, G)
    correct = torch.tensor([[ro.correct for ro in g] for g in groups], dtype=torch.bool)  # (P, G)
    lengths = torch.tensor([[len(ro.completion_ids) for ro in g] for g in groups], dtype=torch.float32)
    shaped = LENGTH_SHAPING[shaping.length](rewards, correct, lengths, shaping)  # (P, G)
    if shaping.overlong_cache:
        penalty = overlong_penalty(lengths.flatten(), max_new_tokens, shaping.overlong_cache)
        shaped = shaped + penalty.view_as(shaped)  # (P, G)
    for g, row in zip(groups, shaped.tolist()):
        for ro, value in zip(g, row):
            ro.shaped_reward = value
