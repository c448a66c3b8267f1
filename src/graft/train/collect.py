"""The first half of an RL step: requests -> rollouts -> verified groups -> selection.

One *round* is: the rollout source samples a list of requests, the verifier scores the new
rollouts (once, ``score_many`` where the task has it), the mixer schedule revises the round
(hint or demonstration requests, sampled and verified in turn, then put in place of the groups
they revise), and, on the step's first round only, the curriculum adds DARS's extra requests.
Dynamic sampling (DAPO) keeps the informative groups (verifier rewards not all equal) and runs
refill rounds on the step's refill prompts until ``rl.num_prompts`` are kept or
``select.max_extra_prompts`` is spent. Reward shaping is not done here: it runs once, over the
groups this returns (``graft.rewards.scoring.shape_groups``).

Every request of a round is keyed before it is sampled (``keyed``): its ``seed`` is a function of
the step's key (``step_seed(cfg.seed, step)``), the round, what the round samples (the plain
requests, the mixer's revisions, DARS's extras) and the request's index in it, so a request's
completions do not depend on how a backend splits or orders the round's requests.

Schedules and curricula only return requests; only the source samples. Nothing here knows which
source, schedule or curriculum it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from graft.algos.selection import informative_groups
from graft.rewards.scoring import InProcessVerifier, shape_groups, verify_groups
from graft.rollout.rng import mix
from graft.rollout.sources import ROLLOUT_SOURCES, SourceReport
from graft.rollout.types import Group, Request, apply_revisions
from graft.step_stats import SelectStats
from graft.tasks.base import Example, Task


@dataclass
class Collected:
    """groups: to train on. sampled: the policy's own groups of the step's requests and refills
    (every round; revisions and DARS's extras are not the policy's plain samples). own: the
    sources' report for those; report: for every sampling call of the step."""

    groups: list[Group]
    sampled: list[Group]
    own: SourceReport
    report: SourceReport
    select: SelectStats | None
    verify_time: float = 0.0  # seconds in the verifier (the learner's wait for it on a Ray backend)


ROLLOUT_STREAM = 0x524F4C4C  # "ROLL": keeps training's sampling keys apart from eval's
PLAIN, REVISIONS, EXTRAS = 0, 1, 2  # what a round's sampling call holds (a part of each key)


def step_seed(seed: int, step: int) -> int:
    """The sampling key of training step ``step`` of a run with seed ``seed``."""
    return mix(seed, ROLLOUT_STREAM, step)


def keyed(requests: list[Request], seed: int, round: int, kind: int) -> list[Request]:
    """``requests`` with their ``seed`` set: request i of the ``kind`` call of round ``round`` of the
    step with key ``seed`` gets ``mix(seed, round, kind, i)``."""
    return [replace(r, seed=mix(seed, round, kind, i)) for i, r in enumerate(requests)]


def informative(groups: list[Group]) -> list[bool]:
    """Whether each group's verifier rewards differ (DAPO keeps only those)."""
    if not groups:
        return []
    rewards = torch.tensor([[ro.verifier_reward for ro in g] for g in groups], dtype=torch.float32)  # (P, G)
    return informative_groups(rewards).tolist()


def collect(source, policy, task: Task, requests: list[Request], refills: list[Example], schedule, plan,
            curriculum, cfg, seed: int, version: int, verifier=None) -> Collected:
    """Run the step's rounds (see the module docstring) and return what to train on; ``seed``:
    the step's sampling key (``step_seed``); ``verifier``: the backend's verifier stage
    (``verify(task, groups)``; None = in this process)."""
    verifier = verifier or InProcessVerifier()
    reports: list[tuple[bool, SourceReport]] = []  # (the policy's own samples?, report) per call
    spent = [0.0]  # seconds verifying

    def sample(reqs: list[Request], own: bool, round: int, kind: int) -> list[Group]:
        groups, report = source.generate(policy, keyed(reqs, seed, round, kind), version)
        t0 = time.perf_counter()
        verifier.verify(task, groups)
        spent[0] += time.perf_counter() - t0
        reports.append((own, report))
        return groups

    def one_round(reqs: list[Request], round: int) -> tuple[list[Group], list[Group]]:
        sampled = groups = sample(reqs, True, round, PLAIN)
        revisions = schedule.revise(plan, sampled, policy.tokenizer)
        if revisions:
            groups, _ = apply_revisions(groups, revisions, sample(revisions, False, round, REVISIONS))
        extra = curriculum.revise(sampled) if round == 0 else []
        if extra:
            groups = groups + sample(extra, False, round, EXTRAS)
        return sampled, groups

    def totals(only_own: bool) -> SourceReport:
        total = SourceReport()
        for own, report in reports:
            if own or not only_own:
                total = total.add(report)
        return total

    sampled, groups = one_round(requests, 0)
    if not cfg.select.dynamic_sampling:
        return Collected(groups, sampled, totals(True), totals(False), None, spent[0])
    want, budget, G = cfg.rl.num_prompts, cfg.select.max_extra_prompts, cfg.rl.num_generations
    sampled = list(sampled)
    kept = [g for g, ok in zip(groups, informative(groups)) if ok]
    extra, rounds = 0, 1
    budget = min(budget, len(refills))  # the step's spare prompts bound what can be drawn
    while len(kept) < want and extra < budget:
        count = min(want - len(kept), budget - extra)
        mine, more = one_round([Request(ex, n=G) for ex in refills[extra : extra + count]], rounds)
        extra, rounds = extra + count, rounds + 1
        sampled += mine
        kept += [g for g, ok in zip(more, informative(more)) if ok]
    kept = kept[:want]
    select = SelectStats(kept_groups=float(len(kept)), extra_prompts=float(extra),
                         extra_rollouts=float(extra * G), filled=float(len(kept) == want))
    return Collected(kept, sampled, totals(True), totals(False), select, spent[0])



def sample_groups(policy, task: Task, examples: list[Example], cfg, seed: int, version: int) -> list[Group]:
    """One plain round outside a step: ``rl.num_generations`` completions per example from the
    configured source, keyed as a step's first round with key ``seed``, verified and shaped (for
    tests, benchmarks and evaluation scripts)."""
    source = ROLLOUT_SOURCES[cfg.rollout.strategy](cfg)
    requests = keyed([Request(ex, n=cfg.rl.num_generations) for ex in examples], seed, 0, PLAIN)
    groups, _ = source.generate(policy, requests, version)
    verify_groups(task, groups)
    shape_groups(groups, cfg.shaping, cfg.rl.max_new_tokens)
    return groups
