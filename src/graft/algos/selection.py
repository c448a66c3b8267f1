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


def trained_rows(advantages: torch.Tensor, loss_mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The rows an update must compute. (B, T) advantages, (B, T) loss mask, (B,) bool -> (B,) bool.

    A row counts when an advantage on one of its loss tokens is non-zero, or when ``keep`` says
    another term acts on it (a demonstration's shaping loss, a regulariser's tokens). Under every
    policy loss graft has (PPO-clip, GSPO, CISPO) a token's loss is its advantage times a factor
    of the ratio, so with a zero advantage it and its gradient are exactly zero: with whole-batch
    aggregation weights, leaving the other rows out of the forward and backward gives the same
    gradient (up to float rounding) for less compute. Zero-variance groups under GRPO, Dr. GRPO,
    RLOO and Lite PPO are such rows (``zero_variance``); a baseline over the whole batch
    (REINFORCE++) or a critic gives them non-zero advantages, and they count.
    """
    signal = ((advantages != 0) & (loss_mask > 0)).any(dim=-1)  # (B,)
    return signal | keep  # (B,)
