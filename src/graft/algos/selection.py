"""Which groups carry a learning signal: DAPO's dynamic-sampling filter.

Pure functions of the (P, G) reward matrix; refilling the batch with further
prompts (and the budget for it) is the rollout loop's job, not this module's.
"""

from __future__ import annotations

import torch


def zero_variance(rewards: torch.Tensor) -> torch.Tensor:
    """True for every group whose rewards are all equal. (P, G) -> (P,) bool.

    Such a group has zero group-relative advantage under GRPO, Dr. GRPO, RLOO
    and Lite PPO, so it adds no policy gradient (only KL / entropy terms) and
    dilutes the batch. DAPO (Yu et al. 2025, arXiv 2503.14476), Sec. 3.2,
    Eq. 11, keeps a group only if 0 < |{o_i : o_i is correct}| < G.

    Deviation: the paper states the constraint on correctness counts (binary
    rewards); graft tests the rewards themselves, which is the same for 0/1
    rewards and also covers graded rewards (a group of 0.5, 0.5, 0.5 has no
    signal even though it is neither all right nor all wrong). Exact equality:
    two rewards that differ at all count as different. A group of one (G == 1)
    is zero-variance; nan compares unequal, so a group with a nan is not.
    """
    return (rewards == rewards[..., :1]).all(dim=-1)  # (P,)


def informative_groups(rewards: torch.Tensor) -> torch.Tensor:
    """True for every group whose rewards are not all equal (DAPO's kept groups). (P, G) -> (P,) bool."""
    return ~zero_variance(rewards)  # (P,)
