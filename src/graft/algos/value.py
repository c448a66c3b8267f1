"""The critic's loss for PPO with a learned value function (used by ``algo.advantage: gae``)."""

from __future__ import annotations

import torch


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    weights: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped value loss, summed with aggregation weights.

    PPO2 value clipping (the OpenAI baselines implementation of Schulman et al.
    2017, arXiv 1707.06347; Eq. 9's squared-error term L^VF with the clip that
    the reference code adds, also used by ReFT's PPO):
        V_clip = V_old + clip(V - V_old, -c, c)
        L_t    = 0.5 * max((V_t - R_t)^2, (V_clip_t - R_t)^2)
        loss   = sum_t w_t L_t
    ``clip <= 0`` turns the clip off (plain 0.5 * (V - R)^2).

    Args:
        values: (B, T) V_phi, carries the gradient.
        old_values: (B, T) values when the rollouts were scored (constants).
        returns: (B, T) GAE returns R_t = A_t + V_old_t (constants).
        weights: (B, T) aggregation weights, 0 on tokens that do not count
          (e.g. ``m / sum(m)`` for a token mean).
        clip: c.

    Returns:
        loss: () scalar.
        clipped: (B, T) bool, where the clipped branch is strictly larger (weights > 0).
    """
    on = weights > 0  # (B, T)
    old = old_values.detach()
    ret = returns.detach()
    v = torch.where(on, values, torch.zeros_like(values))  # (B, T) garbage never leaks
    err = (v - ret) ** 2  # (B, T)
    if clip > 0:
        v_clip = old + (v - old).clamp(-clip, clip)  # (B, T)
        err_clip = (v_clip - ret) ** 2  # (B, T)
        per_token = 0.5 * torch.maximum(err, err_clip)  # (B, T)
        clipped = on & (err_clip > err)
    else:
        per_token = 0.5 * err
        clipped = torch.zeros_like(on)
    per_token = torch.where(on, per_token, torch.zeros_like(per_token))
    return (per_token * weights).sum(), clipped
