"""Per-token KL estimators between the policy and a frozen reference policy.

Schulman (2020), "Approximating KL Divergence" (joschu.net/blog/kl-approx.html).
For a token a sampled from pi_theta, with x = log pi_ref(a) - log pi_theta(a)
(so r = pi_ref / pi_theta = exp(x)), each estimates KL(pi_theta || pi_ref):
    k1 = -x                 unbiased, high variance, can be negative
    k2 = x^2 / 2            biased, low variance, >= 0
    k3 = exp(x) - x - 1     unbiased, low variance, >= 0

Registry contract: ``fn(logp (B, T), ref_logp (B, T)) -> (B, T)``, chosen by
``algo.kl`` from ``KL_ESTIMATORS``. Masking and aggregation are left to the
caller (``graft.algos.losses.LOSS_AGG``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

KLFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

K3_MAX_X = 20.0  # exp(20) ~ 4.9e8: far from float32 overflow (exp(88.7))


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k1 = -x = log pi_theta - log pi_ref (Schulman 2020). (B, T), (B, T) -> (B, T)."""
    return logp - ref_logp  # (B, T)


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k2 = x^2 / 2 (Schulman 2020). (B, T), (B, T) -> (B, T)."""
    x = ref_logp - logp  # (B, T)
    return 0.5 * x * x  # (B, T)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = exp(x) - x - 1 (Schulman 2020). (B, T), (B, T) -> (B, T).

    Deviation: x is clamped above at ``K3_MAX_X`` = 20 before ``exp`` so it
    cannot overflow to inf; where x > 20 (the reference is e^20 times likelier
    than the policy) the value is capped at exp(20) - 21 and its gradient is 0.
    Only the upper side is clamped, because only it can overflow: for very
    negative x, k3 ~ -x - 1 is finite and keeps its gradient. (verl's
    ``low_var_kl`` clamps x to [-20, 20] and the result to [-10, 10]; graft does
    neither on the lower side.)
    """
    x = (ref_logp - logp).clamp(max=K3_MAX_X)  # (B, T)
    return torch.exp(x) - x - 1.0  # (B, T)


KL_ESTIMATORS: dict[str, KLFn] = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}
