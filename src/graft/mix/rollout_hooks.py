"""The mixer's hooks into the rollout stage: small functions that see each step's freshly sampled,
scored groups and return the groups to train on (``graft.train.rl.RolloutHook``).

- ``collect_failures``: ReLIFT's buffer (the groups pass through unchanged).
- ``inject_demonstrations``: LUFFY's off-policy group member.
- ``hint_groups``: resample failing prompts with a prefix of their demonstration (UFT / Guide).

A group "fails" when none of its completions is correct (the verifier's verdict, not the shaped
reward) and its example has a demonstration. Hooks never modify the sampled rollouts: a changed
group is built from copies, so the rollout metrics stay those of the policy's own samples.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from graft.config import Config
from graft.mix.rules import sample_hint_lengths
from graft.models.policy import Policy
from graft.rollout.sampler import Group, Rollout, sample
from graft.tasks.base import Example, Task
from graft.train.rl import shape_rewards


def failing(examples: list[Example], groups: list[Group]) -> list[int]:
    """Indices of groups with no correct completion whose example has a demonstration."""
    return [i for i, (ex, g) in enumerate(zip(examples, groups))
            if ex.demonstration and not any(ro.correct for ro in g)]


def collect_failures(buffer: list[Example]):
    """ReLIFT (Ma et al. 2025, "Learning What Reinforcement Learning Can't", arXiv 2506.07527,
    Sec. 3; equation numbers not checked): prompts on which every rollout failed go, with their
    demonstrations, to ``buffer`` (appended in place: it is the schedule's state); the schedule
    turns a full buffer into an SFT step. Groups pass through unchanged."""

    def hook(policy: Policy, task: Task, examples: list[Example], groups: list[Group], cfg: Config,
             generator: torch.Generator, version: int) -> tuple[list[Group], dict]:
        found = failing(examples, groups)
        buffer.extend(examples[i] for i in found)
        return groups, {"mix/buffered": float(len(found))}

    return hook


def _rescored(groups: list[Group], cfg: Config) -> list[Group]:
    """Shape the verifier rewards of rebuilt groups again (length shaping can be group-relative)."""
    for g in groups:
        for ro in g:
            ro.reward = ro.parts.get("verifier", ro.reward)
    shape_rewards(groups, cfg)
    return groups


def _copy(ro: Rollout) -> Rollout:
    return replace(ro, parts=dict(ro.parts))


def _scored(ro: Rollout, task: Task, example: Example) -> Rollout:
    score = task.score(example, ro.text)
    ro.reward, ro.correct, ro.parts = score.reward, score.correct, dict(score.parts)
    ro.parts["verifier"] = score.reward
    return ro


def inject_demonstrations(policy: Policy, task: Task, examples: list[Example], groups: list[Group],
                          cfg: Config, generator: torch.Generator, version: int) -> tuple[list[Group], dict]:
    """LUFFY (Yan et al. 2025, arXiv 2504.14945, Sec. 3): in a failing group, the last rollout is
    replaced by the demonstration (+ EOS), an off-policy member whose behaviour probability is taken
    as 1 (``logprobs`` 0). GRPO advantages are then computed over the mixed group, so the
    demonstration gets a positive advantage and the failed own samples negative ones; its tokens
    are marked ``shaped`` for the policy-shaping loss (``rules.policy_shaping_loss``), unclipped.
    Deviation: LUFFY adds the expert trace to the group (e.g. 7 own + 1 expert); replacing one of
    the G rollouts keeps the batch shape and the rollout budget of plain GRPO.
    """
    tok = policy.tokenizer
    out = list(groups)
    found = failing(examples, groups)
    for i in found:
        ex, g = examples[i], groups[i]
        ids = tok.encode(ex.demonstration) + [tok.eos_id]
        demo = Rollout(prompt_ids=list(g[0].prompt_ids), completion_ids=ids, logprobs=[0.0] * len(ids),
                       policy_version=version, finish_reason="stop", text=ex.demonstration,
                       demo_len=len(ids), shaped=True)
        out[i] = [_copy(ro) for ro in g[:-1]] + [_scored(demo, task, ex)]
    _rescored([out[i] for i in found], cfg)
    return out, {"mix/injected": float(len(found))}


def hint_groups(policy: Policy, task: Task, examples: list[Example], groups: list[Group], cfg: Config,
                generator: torch.Generator, version: int, *, p: float,
                hint_rng: torch.Generator) -> tuple[list[Group], dict]:
    """Resample each failing group with a hint: the first l tokens of its demonstration.

    The hint length is l ~ Binomial(L, p) (UFT, arXiv 2505.16984; ``rules.sample_hint_lengths``,
    drawn from ``hint_rng``), capped so the policy writes at least one token. The policy continues
    prompt + hint for ``rl.num_generations`` samples; each new rollout is the completion
    hint + continuation *of the hint-free prompt*, scored on the hint-free example, and the group
    replaces the failing one.

    Importance correction (Guide, Nath et al. 2025, arXiv 2506.13923, Sec. 2, "Guide-GRPO"; the
    paper's hint is free text in the context, here it is a prefix of the demonstration): the update
    targets pi_theta(completion | hint-free prompt) with the ratio pi_theta(tok | hint-free context)
    / pi_behaviour(tok | hinted sampling context). For continuation tokens both contexts are the same
    token string (prompt + hint + earlier tokens), so the ratio is the usual on-policy one; the hint
    tokens were not sampled (behaviour probability 1, stored logprob 0), so their ratio is
    pi_theta(tok) itself and the product over a sequence is pi_theta(o | q) / pi_b(o | q, hint).
    They go through the configured policy loss (PPO's clip binds only for A < 0, as rho <= 1).
    Returns counters ``mix/hinted_groups``, ``mix/hint_tokens`` and the sampling cost
    ``perf/fwd_tokens`` (prompt + hint prefill plus generated tokens).
    """
    found = failing(examples, groups)
    if not found or p <= 0:
        return groups, {"mix/hinted_groups": 0.0, "mix/hint_tokens": 0.0}
    tok, G, budget = policy.tokenizer, cfg.rl.num_generations, cfg.rl.max_new_tokens
    demos = [tok.encode(examples[i].demonstration) for i in found]
    lengths = sample_hint_lengths(torch.tensor([len(d) for d in demos]), p, hint_rng, budget - 1)  # (H,)
    hints = [d[: int(n)] for d, n in zip(demos, lengths)]
    prompts = [groups[i][0].prompt_ids + h for i, h in zip(found, hints)]
    policy.module.eval()
    flat = sample(policy, prompts, max_new_tokens=budget - int(lengths.min()),
                  temperature=cfg.rl.temperature, top_p=cfg.rl.top_p, generator=generator,
                  policy_version=version, repeats=G, share_prefill=cfg.rollout.share_prefill,
                  compact=cfg.rollout.compact)
    policy.module.train()
    out = list(groups)
    for k, (i, hint) in enumerate(zip(found, hints)):
        room = budget - len(hint)  # the completion, hint included, stays within rl.max_new_tokens
        group = []
        for ro in flat[k * G : (k + 1) * G]:
            cont = ro.completion_ids[:room]
            done = ro.finish_reason if len(ro.completion_ids) <= room else "length"
            ids = hint + cont
            group.append(_scored(Rollout(
                prompt_ids=list(groups[i][0].prompt_ids), completion_ids=ids,
                logprobs=[0.0] * len(hint) + ro.logprobs[:room], policy_version=version,
                finish_reason=done, text=tok.decode(ids), demo_len=len(hint),
            ), task, examples[i]))
        out[i] = group
    _rescored([out[i] for i in found], cfg)
    cost = sum(len(pr) + len(ro.completion_ids) for pr, ro in zip(prompts, flat))
    return out, {"mix/hinted_groups": float(len(found)), "mix/hint_tokens": float(lengths.sum()),
                 "perf/fwd_tokens": float(cost)}
