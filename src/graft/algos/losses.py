"""Per-token log-probabilities, the policy and SFT losses, and loss aggregation.

Everything here is a pure function of tensors. Shapes: B sequences, T
completion tokens, V vocabulary; ``mask`` is 1 on tokens that count.
"""

from __future__ import annotations

import torch


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per token, in float32. (B,T,V), (B,T) -> (B,T)."""
    logits = logits.float()
    # logsumexp + gather avoids keeping a second (B, T, V) log-softmax tensor
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) per token, H = logsumexp(z) - sum_v p_v z_v. (B,T,V) -> (B,T)."""
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped surrogate with separate lower and upper clip ranges.

    PPO (Schulman et al. 2017, arXiv 1707.06347, Eq. 7) with DAPO's decoupled
    "clip-higher" (Yu et al. 2025, arXiv 2503.14476, Eq. 10):
        rho = exp(logp - old_logp)
        L   = max(-A * rho, -A * clip(rho, 1 - clip_low, 1 + clip_high))
    Returns (loss (B,T), clipped (B,T) bool). ``clipped`` marks masked-in tokens
    where the clipped branch is the larger one and differs from the unclipped,
    i.e. where the gradient is zero because of clipping. Masked tokens get 0.
    advantages: (B,) per sequence (broadcast over tokens) or (B,T) per token.
    """
    adv = advantages if advantages.dim() == logp.dim() else advantages.unsqueeze(-1)  # (B, 1|T)
    ratio = torch.exp(logp - old_logp)  # (B, T)
    unclipped = -adv * ratio
    clipped_obj = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped_obj)
    on = mask > 0
    clipped = (clipped_obj > unclipped) & on
    return torch.where(on, loss, torch.zeros_like(loss)), clipped


def token_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(x * m) / sum(m) over all tokens of the batch; 0 when nothing is masked in."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def sft_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the demonstration tokens, token mean over the batch."""
    return token_mean(-logp, mask)


POLICY_LOSSES = {"ppo_clip": ppo_clip_loss}
LOSS_AGG = {"token_mean": token_mean}
