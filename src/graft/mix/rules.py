"""Pure rules of the SFT <-> RL mixer: numbers and tensors in, numbers and tensors out.

No model, no I/O, inputs never modified; randomness only from a generator the
caller passes in. The schedules (``schedules.py``) and their revisions
(``revisions.py``) call these; each has a unit test on hand-computed values
(``tests/mix/test_rules.py``).
"""

from __future__ import annotations

import math

import torch


def uft_hint_probability(t: int, horizon: int, p_low: float, p_high: float) -> float:
    """Expected hint fraction at mixed step ``t``: UFT's cosine schedule.

    UFT (Liu et al. 2025, "UFT: Unifying Supervised and Reinforcement Fine-Tuning",
    arXiv 2505.16984; the formula is from a secondary source, the equation number was
    not checked: docs/references.md, "UFT"):
        p(t) = p_low + 0.5 (p_high - p_low) (1 + cos((t + 1) pi / T_hint))   for t < T_hint
        p(t) = 0                                                            for t >= T_hint
    so the hint shrinks from about p_high to exactly p_low at t = T_hint - 1, then
    disappears: training ends on hint-free prompts, the distribution it is tested on.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if t >= horizon:
        return 0.0
    return p_low + 0.5 * (p_high - p_low) * (1.0 + math.cos((t + 1) * math.pi / horizon))


def sample_hint_lengths(
    lengths: torch.Tensor, p: float, generator: torch.Generator, max_len: int
) -> torch.Tensor:
    """Hint lengths l ~ Binomial(L, p) per demonstration, capped at ``max_len``. (N,) -> (N,) long.

    UFT (arXiv 2505.16984, secondary source; docs/references.md, "UFT"): the hint is
    the first l tokens of the demonstration, l ~ Binomial(L, p(t)) with L the
    demonstration's length, so the expected hint is p(t) L and it varies around that
    from prompt to prompt. The cap keeps room for the policy to write at least one
    token of its own.
    """
    counts = lengths.to(torch.float64)  # (N,)
    probs = torch.full_like(counts, float(p))  # (N,)
    drawn = torch.binomial(counts, probs, generator=generator)  # (N,)
    return drawn.to(torch.long).clamp(max=max_len)  # (N,)


def sasr_sft_probability(grad_norm: float, ref_grad_norm: float, p_min: float, p_max: float) -> float:
    """Probability that the next step is an SFT step: clip(g / g_ref, p_min, p_max).

    SASR-style (Chen et al. 2025, "Step-wise Adaptive Integration of Supervised
    Fine-tuning and Reinforcement Learning", arXiv 2505.13026): after an SFT warm-up,
    each step picks SFT or GRPO with a probability that grows with the current SFT
    gradient norm g relative to the warm-up's g_ref. A large ratio means the policy
    has drifted from (or not yet absorbed) the demonstrations, so imitation is
    chosen more often; a small one means they are learnt and RL takes over.
    Deviation: the paper's exact formula was not seen (docs/references.md, "SASR");
    graft uses the ratio itself, clipped to [p_min, p_max] so that neither kind of
    step ever stops (SFT steps keep measuring g, RL steps keep exploring).
    """
    if ref_grad_norm <= 0 or not math.isfinite(grad_norm):
        return p_max
    return min(p_max, max(p_min, grad_norm / ref_grad_norm))


def policy_shaping_loss(
    logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, gamma: float
) -> torch.Tensor:
    """LUFFY's per-token loss on off-policy demonstration tokens: -A * f(pi_theta), f(p) = p / (p + gamma).

    LUFFY (Yan et al. 2025, "Learning to Reason under Off-Policy Guidance", arXiv
    2504.14945, Sec. 3, "policy shaping via regularized importance sampling"; the
    equation number was not checked): the demonstration's behaviour probability is
    taken as 1, so the importance ratio of an expert token is pi_theta(tok) itself,
    and it is replaced by f(pi_theta) = pi_theta / (pi_theta + gamma), gamma = 0.1,
    with no clipping. d f / d log p = gamma p / (p + gamma)^2 is largest at
    p = gamma, so low-probability expert tokens get a larger gradient than under the
    plain ratio (whose gradient p d log p vanishes as p -> 0).

    Args:
        logp: (B, T) log pi_theta of the demonstration tokens (carries the gradient).
        advantages: (B,) per sequence or (B, T) per token (detached here).
        mask: (B, T) 1 on the tokens this loss applies to.
        gamma: > 0.
    Returns:
        (B, T) loss, exactly 0 where mask is 0 (garbage logp there never leaks).
    """
    adv = advantages.detach()
    if adv.dim() == logp.dim() - 1:
        adv = adv.unsqueeze(-1)  # (B, 1)
    on = mask > 0  # (B, T)
    p = torch.exp(torch.where(on, logp, torch.zeros_like(logp)))  # (B, T)
    shaped = p / (p + gamma)  # (B, T)
    loss = -adv * shaped  # (B, T)
    return torch.where(on, loss, torch.zeros_like(loss))


def linear_weight(t: int, horizon: int, start: float, end: float) -> float:
    """A weight moving linearly from ``start`` (t = 0) to ``end`` (t = horizon - 1), then ``end``.

    The schedule of the ``weighted`` mixer: loss = L_RL + w(t) L_SFT (a fixed weight
    when start == end, as in SFT-regularised RL; a decaying one moves the update from
    imitation to reinforcement over the run).
    """
    if horizon <= 1 or t >= horizon - 1:
        return float(end)
    return float(start + (end - start) * t / (horizon - 1))


def sft_share(rl_weight: float, demo_weight: float, sft_weight: float) -> float:
    """Share of imitation in an update, by loss weight: (w_SFT + D) / (w_SFT + R).

    The update minimises L = sum_tok(a_tok * l_tok) + w_SFT * L_SFT, where a are the
    RL batch's aggregation weights (summing to R; R = 1 for token_mean) and L_SFT is a
    token mean over demonstrations (total weight w_SFT). D is the part of R that sits
    on demonstration tokens inside RL groups (injected demonstrations, hint
    prefixes). So a pure SFT step has share 1 (R = 0), a pure RL step 0, a weighted
    step w / (w + 1), an injected group its demonstration tokens' share of R.
    0 when the update is empty.
    """
    total = sft_weight + rl_weight
    return 0.0 if total <= 0 else (sft_weight + demo_weight) / total


def lr_at(step: int, steps: int, warmup: int, peak: float, cosine: bool) -> float:
    """Linear warm-up to ``peak``, then constant or cosine decay to 10% of peak by ``steps``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if not cosine or steps <= warmup:
        return peak
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
