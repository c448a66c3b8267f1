"""Per-token KL estimators between the policy and a reference policy.

Schulman (2020), "Approximating KL Divergence" (joschu.net/blog/kl-approx.html),
with x = log pi_ref(a) - log pi_theta(a) for a sampled from pi_theta:
    k1 = -x            unbiased, high variance, can be negative
    k2 = x^2 / 2       biased, low variance
    k3 = exp(x) - x - 1  unbiased, low variance, always >= 0
Deviation: k3 clamps x to [-20, 20] so exp cannot overflow (a no-op for any
sane policy; it bounds the term when the two policies have drifted far apart).
"""

from __future__ import annotations

import torch


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return logp - ref_logp


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return 0.5 * (ref_logp - logp) ** 2


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    x = (ref_logp - logp).clamp(-20.0, 20.0)
    return torch.exp(x) - x - 1.0


KL_ESTIMATORS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}
