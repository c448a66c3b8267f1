"""Low-probability regularisation (Lp-Reg): keep RL from extinguishing low-probability tokens.

Lp-Reg ("Low-probability Tokens Sustain Exploration in Reinforcement Learning with Verifiable
Reward", 2025, arXiv 2510.03222; the formula as docs/objectives.md writes it, its source in
docs/references.md, "Lp-Reg"). Its finding: after SFT, RL's
negative updates push down valuable low-probability tokens ("reasoning sparks") until
exploration collapses; an entropy bonus also lifts noise. Its remedy, per token:

1. A proxy distribution that drops presumed noise: the policy restricted to the tokens whose
   probability is at least ``min_p`` times the most likely token's (a min-p filter), renormalised:
       pi_proxy(v) = pi(v) / Z  if pi(v) >= min_p * max_u pi(u),  else 0;   Z = sum of the kept pi(v).
   A kept token is likelier under the proxy than under the policy (Z <= 1); a filtered one has
   proxy probability 0 (log-prob -inf).
2. Among the tokens with a negative advantage, the lowest-probability share ``frac`` (at least
   one token) whose policy log-prob is below the proxy's (so: not filtered as noise) get the
   per-token penalty ``coef * KL(pi_theta || pi_proxy)``, estimated with k3 on the sampled token
   (``graft.algos.kl.kl_k3``), added to the policy loss. It pulls those tokens towards their
   proxy probability, against the negative advantage that pushes them down.

The reference code's defaults: ``min_p`` 0.1, ``frac`` 0.01 of the negative-advantage tokens,
``coef`` 1.0; it selects only negative-advantage tokens by default (a positive-advantage share
exists but is 0). Choices here, said so in docs/objectives.md:
  - The proxy is built from the policy at the update's start (a no-grad forward), the selection
    from the behaviour log-probs over the whole batch, so micro-batching does not change it (with
    one on-policy update both equal the current policy's at the first step).
  - The proxy is built on the tempered distribution the update trains (``rl.temperature``).
"""

from __future__ import annotations

import math

import torch

from graft.algos.kl import kl_k3


def minp_proxy_logprobs(logits: torch.Tensor, targets: torch.Tensor, min_p: float) -> torch.Tensor:
    """log pi_proxy of each target token (step 1 of the module docstring); -inf where the min-p
    filter drops it. ``logits`` (B, T, V) already tempered, ``targets`` (B, T) -> (B, T)."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    keep = logp >= logp.amax(dim=-1, keepdim=True) + math.log(min_p)  # p >= min_p * max p
    log_z = torch.logsumexp(logp.masked_fill(~keep, float("-inf")), dim=-1)  # (B, T) log of the kept mass
    token = logp.gather(-1, targets[..., None])[..., 0]  # (B, T)
    kept = keep.gather(-1, targets[..., None])[..., 0]  # (B, T) bool
    return torch.where(kept, token - log_z, torch.full_like(token, float("-inf")))


def lp_reg_selection(logp: torch.Tensor, proxy_logp: torch.Tensor, advantages: torch.Tensor,
                     mask: torch.Tensor, frac: float) -> torch.Tensor:
    """The tokens Lp-Reg regularises (step 2): of the ``mask``ed tokens with a negative advantage,
    the ``max(1, floor(frac * n))`` with the lowest ``logp`` (n: their count; ties by position),
    kept where ``logp < proxy_logp``. All (B, T) -> (B, T) bool."""
    neg = (mask > 0) & (advantages < 0)
    n = int(neg.sum())
    out = torch.zeros_like(neg)
    if n == 0:
        return out
    k = max(1, int(frac * n))
    flat = torch.where(neg, logp, torch.full_like(logp, float("inf"))).reshape(-1)
    lowest = torch.topk(flat, k, largest=False, sorted=False).indices
    out.view(-1)[lowest] = True
    return out & (logp < proxy_logp)


def lp_reg_penalty(logp: torch.Tensor, proxy_logp: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi_theta || pi_proxy) on the ``selected`` tokens, 0 elsewhere
    (the -inf proxies of unselected tokens never reach ``exp``). (B, T) each -> (B, T)."""
    safe = torch.where(selected, proxy_logp, logp.detach())
    return torch.where(selected, kl_k3(logp, safe), torch.zeros_like(logp))
