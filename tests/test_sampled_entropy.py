"""``rollout/entropy``: the sampling policy's per-token entropy estimated from its own samples
(``graft.rollout.tree.sampled_entropy``), by hand and against the exact entropy."""

import math

import torch

from graft.rollout.decode import pick_tokens, tempered_logprobs
from graft.rollout.tree import sampled_entropy, token_metrics
from graft.rollout.types import Group, Rollout
from graft.tasks.base import Example


def _group(*rollouts: tuple[list[float], int]) -> Group:
    rows = [Rollout(prompt_ids=[1], completion_ids=[2] * len(lp), logprobs=lp, policy_version=0,
                    finish_reason="stop", demo_len=demo) for lp, demo in rollouts]
    return Group(example=Example(prompt="p", answer="a"), rollouts=rows)


def test_mean_negative_logprob_of_the_sampled_tokens_by_hand():
    groups = [_group(([-1.0, -2.0], 0), ([-0.5], 0)),
              _group(([0.0, -3.0], 1))]  # its first token was copied from a demonstration
    # (1 + 2 + 0.5 + 3) / 4 sampled tokens
    assert sampled_entropy(groups) == 1.625
    assert token_metrics(groups)["rollout/entropy"] == 1.625


def test_nothing_sampled_gives_none():
    assert sampled_entropy([_group(([], 0), ([0.0, 0.0], 2))]) is None
    assert sampled_entropy([]) is None


def test_it_estimates_the_exact_entropy_of_the_tempered_policy():
    torch.manual_seed(0)
    temperature, n = 0.7, 20_000
    logits = torch.randn(4, 12) * 2  # (4, V) four next-token distributions
    rows = logits.repeat(n // 4, 1)  # (n, V)
    _, logp = pick_tokens(rows, temperature, 1.0, torch.rand(n, generator=torch.Generator().manual_seed(1)))
    groups = [_group(*[([float(x)], 0) for x in logp[i:i + 8]]) for i in range(0, n, 8)]
    exact_rows = -(tempered_logprobs(rows, temperature).exp() * tempered_logprobs(rows, temperature)).sum(-1)
    exact = float(exact_rows.mean())
    spread = float((-logp).std()) / math.sqrt(n)  # standard error of the mean of -log p
    assert abs(sampled_entropy(groups) - exact) < 5 * spread
    # and it is not the entropy of the untempered distribution (which is larger at T < 1)
    untempered = float(-(torch.log_softmax(rows, -1).exp() * torch.log_softmax(rows, -1)).sum(-1).mean())
    assert untempered - exact > 20 * spread
