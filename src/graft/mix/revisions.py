"""The mixer's revisions of a round of verified groups: rollout ``Request``s, never samples.

- ``failing``: the groups a revision may act on.
- ``inject_requests``: LUFFY's off-policy group member (a placed demonstration).
- ``hint_requests``: resample failing prompts with a prefix of their demonstration (UFT / Guide).

A group "fails" when none of its completions is correct (the verifier's verdict) and its example
has a demonstration. The rollout source carries the requests out (``graft.rollout.sources``) and
the step puts the results in place of the failing groups (``graft.rollout.types.apply_revisions``,
copies: the policy's own samples stay as they were, so the rollout metrics are those of its
own samples). The verifier scores the new rollouts once, with the rest of the round.
"""

from __future__ import annotations

import torch

from graft.mix.rules import sample_hint_lengths
from graft.rollout.types import Group, Request


def failing(groups: list[Group]) -> list[int]:
    """Indices of groups with no correct completion whose example has a demonstration."""
    return [i for i, g in enumerate(groups) if g.example.demonstration and g.failed]


def inject_requests(groups: list[Group], found: list[int]) -> list[Request]:
    """LUFFY (Yan et al. 2025, arXiv 2504.14945, Sec. 3): in each failing group the last rollout
    is replaced by the demonstration (+ EOS), an off-policy member whose behaviour probability is
    taken as 1 (``logprobs`` 0). GRPO advantages are then computed over the mixed group, so the
    demonstration gets a positive advantage and the failed own samples negative ones; its tokens
    take the policy-shaping loss (``rules.policy_shaping_loss``), unclipped.
    Deviation: LUFFY adds the expert trace to the group (e.g. 7 own + 1 expert); replacing one of
    the G rollouts keeps the batch shape and the rollout budget of plain GRPO."""
    return [Request(groups[i].example, n=0, demonstration=True, replaces=i, keep=len(groups[i]) - 1)
            for i in found]


def hint_requests(groups: list[Group], found: list[int], tokenizer, p: float, hint_rng: torch.Generator,
                  num_generations: int, max_new_tokens: int) -> list[Request]:
    """Resample each failing group with a hint: the first l tokens of its demonstration.

    The hint length is l ~ Binomial(L, p) (UFT, arXiv 2505.16984; ``rules.sample_hint_lengths``,
    drawn from ``hint_rng``), capped so the policy writes at least one token. The policy continues
    prompt + hint for ``num_generations`` samples; each new rollout is the completion
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
    """
    if not found or p <= 0:
        return []
    demos = [tokenizer.encode(groups[i].example.demonstration) for i in found]
    lengths = sample_hint_lengths(torch.tensor([len(d) for d in demos]), p, hint_rng, max_new_tokens - 1)  # (H,)
    return [Request(groups[i].example, n=num_generations, prefix=tuple(d[: int(n)]), replaces=i)
            for i, d, n in zip(found, demos, lengths.tolist())]
