"""Per-token log-probabilities, the policy and SFT losses, and loss aggregation.

Everything here is a pure function of tensors: no model, no I/O, inputs never
modified. Shapes: B sequences, T completion tokens, V vocabulary; ``mask`` is
1 (or True) on tokens that count and 0 on padding / prompt tokens.

Registries (config value = key):
  - ``POLICY_LOSSES``: ``fn(logp, old_logp, advantages, mask, clip_low, clip_high)
    -> (loss (B, T), clipped (B, T) bool)``, per-token, masked tokens exactly 0.
  - ``LOSS_AGG``: ``fn(x (B, T), mask (B, T)) -> scalar``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

PolicyLossFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]
AggFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per token, computed in float32.

    log p(y_t) = z_{t, y_t} - logsumexp_v z_{t, v}. Gathering the target logit
    and subtracting the logsumexp keeps no (B, T, V) log-softmax tensor around
    (only logsumexp's own temporary, and the float32 copy when logits are in a
    lower precision).

    Args:
        logits: (B, T, V) any floating dtype; must be finite.
        targets: (B, T) long token ids in [0, V).
    Returns:
        (B, T) float32.
    """
    logits = logits.float()  # (B, T, V) no copy if already float32
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)  # (B, T)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) per token, in float32. (B, T, V) -> (B, T).

    H = -sum_v p_v log p_v, with log p from ``log_softmax`` (max-shifted, so
    large logits neither overflow nor lose precision to the cancellation in
    logsumexp(z) - sum_v p_v z_v). Logits must be finite: a -inf logit would
    give 0 * -inf = nan.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    return -(logp.exp() * logp).sum(dim=-1)  # (B, T)


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
    "clip-higher" (Yu et al. 2025, arXiv 2503.14476, Eq. 8, Sec. 3.1), written
    as a loss to minimise:
        rho = exp(logp - old_logp)
        L   = max(-A * rho, -A * clip(rho, 1 - clip_low, 1 + clip_high))
    DAPO uses clip_low = 0.2, clip_high = 0.28; clip_low == clip_high is PPO.

    Args:
        logp: (B, T) log pi_theta of the sampled tokens (carries the gradient).
        old_logp: (B, T) log pi_old of the same tokens, from sampling time.
        advantages: (B,) per sequence (broadcast over tokens) or (B, T) per token.
        mask: (B, T) 1/True on tokens that count.
        clip_low, clip_high: the band is [1 - clip_low, 1 + clip_high].

    Returns:
        loss: (B, T), exactly 0 where mask is 0.
        clipped: (B, T) bool, True where mask is 1 and the clipped branch is
          strictly larger, i.e. where clipping zeroes the gradient (A > 0 and
          rho > 1 + clip_high, or A < 0 and rho < 1 - clip_low).

    Deviations and choices:
      - ``old_logp`` and ``advantages`` are detached: in PPO both are
        constants of the update.
      - The log-ratio of masked tokens is set to 0 before ``exp``, so padding
        with garbage log-probs cannot produce inf / nan in the loss or, through
        ``0 * inf``, in the gradient.
      - No dual clip (Ye et al. 2020) here; it would be a separate registry entry.
    """
    adv = advantages.detach()
    if adv.dim() == logp.dim() - 1:
        adv = adv.unsqueeze(-1)  # (B, 1) one advantage per sequence
    on = mask > 0  # (B, T) bool
    log_ratio = torch.where(on, logp - old_logp.detach(), torch.zeros_like(logp))  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T)
    surrogate = -adv * ratio  # (B, T)
    surrogate_clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)  # (B, T)
    loss = torch.maximum(surrogate, surrogate_clipped)  # (B, T)
    clipped = on & (surrogate_clipped > surrogate)  # (B, T) bool
    return torch.where(on, loss, torch.zeros_like(loss)), clipped


def token_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(x * m) / max(sum(m), 1) over every token of the batch. (B, T), (B, T) -> ().

    DAPO's token-level aggregation (arXiv 2503.14476, Sec. 3.3): each token
    weighs the same, whatever the length of its sequence. A batch with no
    token masked in gives 0, not nan; masked-out entries of ``x`` are never
    read, so nan / inf there does not leak into the result or its gradient.
    """
    m = mask.to(x.dtype)  # (B, T)
    x = torch.where(mask > 0, x, torch.zeros_like(x))  # (B, T)
    return (x * m).sum() / m.sum().clamp(min=1.0)  # ()


def sft_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the demonstration tokens, token mean over the batch.

    L_SFT = -sum_t m_t log p(y_t) / sum_t m_t. (B, T), (B, T) -> (); 0 when the mask is empty.
    """
    return token_mean(-logp, mask)  # ()


POLICY_LOSSES: dict[str, PolicyLossFn] = {"ppo_clip": ppo_clip_loss}
LOSS_AGG: dict[str, AggFn] = {"token_mean": token_mean}
