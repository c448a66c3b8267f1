"""Advantage estimators: sequence rewards of groups in, per-sequence advantages out.

Contract of the registry: ``fn(rewards: Tensor (P, G)) -> Tensor (P, G)``, one
row per prompt, one column per completion of that prompt (a group).
"""

from __future__ import annotations

from typing import Callable

import torch


def grpo_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO outcome-supervision advantage.

    DeepSeekMath (Shao et al. 2024, arXiv 2402.03300), Sec. 4.1.2:
    A_i = (r_i - mean(r)) / (std(r) + eps) over the G completions of one prompt.

    Deviations / choices: std is the unbiased (Bessel-corrected) one, as in the
    reference implementations (TRL, verl); eps = 1e-6. A group of one has no
    std: its advantage is 0 (nothing to compare against). All-equal rewards give
    exactly 0 (numerator is 0).
    """
    rewards = rewards.float()  # (P, G)
    if rewards.shape[-1] < 2:
        return torch.zeros_like(rewards)
    mean = rewards.mean(-1, keepdim=True)  # (P, 1)
    std = rewards.std(-1, keepdim=True, unbiased=True)  # (P, 1)
    return (rewards - mean) / (std + eps)


ADVANTAGES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"grpo": grpo_advantages}
