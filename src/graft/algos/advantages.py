"""Advantage estimators: sequence rewards of groups in, per-sequence advantages out.

Registry contract: ``fn(rewards: Tensor (P, G)) -> Tensor (P, G)``, one row per
prompt, one column per completion of that prompt (a group). Every variant has
this signature, so ``algo.advantage: <name>`` in the config picks it from
``ADVANTAGES`` and the trainer never branches on the name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

AdvantageFn = Callable[[torch.Tensor], torch.Tensor]


def grpo_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO outcome-supervision advantage, one value per completion.

    DeepSeekMath (Shao et al. 2024, arXiv 2402.03300), Sec. 4.1.2 "Outcome
    Supervision RL with GRPO": A_i = (r_i - mean(r)) / std(r), mean and std over
    the G completions of one prompt; every token of o_i gets A_i.

    Args:
        rewards: (P, G) sequence rewards, any real or integer dtype.
        eps: added to the std so a near-constant group does not blow up.

    Returns:
        (P, G) advantages, in the rewards' floating dtype (float32 for integer input).

    Deviations and choices:
      - ``+ eps`` in the denominator (eps = 1e-6), as TRL and verl do; the paper has none.
      - The std is the unbiased (Bessel, divide by G - 1) one, as in TRL and verl;
        the paper does not say which.
      - G == 1: the std of one sample is undefined (G - 1 = 0), and there is
        nothing to compare against, so the advantage is 0.
      - A group whose rewards are all equal gets exactly 0. Floating-point
        ``r - mean(r)`` is not always exactly 0 (eight rewards of 0.3 leave
        3e-8, which divided by std + eps would be 0.03), so such groups are
        zeroed explicitly.
    """
    if not rewards.is_floating_point():
        rewards = rewards.float()  # (P, G); a new tensor, the caller's is untouched
    if rewards.shape[-1] < 2:
        return torch.zeros_like(rewards)  # (P, 1)
    mean = rewards.mean(dim=-1, keepdim=True)  # (P, 1)
    std = rewards.std(dim=-1, keepdim=True, unbiased=True)  # (P, 1)
    flat = (rewards == rewards[..., :1]).all(dim=-1, keepdim=True)  # (P, 1) all-equal groups
    centered = (rewards - mean).masked_fill(flat, 0.0)  # (P, G)
    return centered / (std + eps)  # (P, G)


ADVANTAGES: dict[str, AdvantageFn] = {"grpo": grpo_advantages}
