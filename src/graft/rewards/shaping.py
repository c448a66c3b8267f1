"""Reward shaping on top of a verifier's reward: overlong punishment and length-based shaping.

Pure functions of tensors; nothing here reads text or a tokenizer. Lengths are
completion lengths in tokens.

``LENGTH_SHAPING`` (config value = key) maps a name to
``fn(rewards (P, G), correct (P, G) bool, lengths (P, G), params) -> (P, G)``
with one row per prompt and one column per completion of it (a group). It
returns a new tensor and never modifies its inputs. ``params`` is any object
with the attributes
  - ``target_len`` (int): LASER's target length L_T;
  - ``coef`` (float): the weight of the length term (LASER's alpha, GRPO-lambda's alpha);
  - ``top_fraction`` (float): GRPO-lambda's lambda, the *fraction of the batch's
    groups*, highest correctness ratio first, that get the length penalty;
  - ``decay`` (float): S-GRPO's decay base (0.5: 1, 1/2, 1/4, ... by exit rank).

These papers score 0/1 correctness. graft's rewards may carry other parts (a
format bonus, say), so each rule below is written as a change to ``rewards``
that gives the paper's numbers exactly when rewards are 0/1 correctness.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

LengthShapingFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], torch.Tensor]


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.float()


def overlong_penalty(lengths: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """DAPO's soft overlong punishment, a length-only reward added to the task reward. (N,) -> (N,).

    DAPO (Yu et al. 2025, arXiv 2503.14476), Sec. 3.4 "Overlong Reward Shaping", Eq. 13:
        R(L) = 0                                   if L <= L_max - L_cache
             = ((L_max - L_cache) - L) / L_cache   if L_max - L_cache < L <= L_max
             = -1                                  if L > L_max
    a linear ramp from 0 to -1 over the last L_cache tokens before L_max (DAPO:
    L_max = 20480, L_cache = 4096).

    Args:
        lengths: (N,) completion lengths, any real or integer dtype.
        max_len: L_max.
        cache_len: L_cache, 0 <= cache_len <= max_len.
    Returns:
        (N,) float penalties in [-1, 0] (float32 for integer lengths).

    Deviation: ``cache_len == 0`` turns the shaping off (all zeros) rather than
    giving -1 beyond ``max_len``; when ``max_len`` is the sampler's token limit
    no completion is longer anyway.
    """
    if not 0 <= cache_len <= max_len:
        raise ValueError(f"overlong_penalty needs 0 <= cache_len <= max_len, got {cache_len}, {max_len}")
    lengths = _as_float(lengths)  # (N,)
    if cache_len == 0:
        return torch.zeros_like(lengths)
    start = max_len - cache_len
    ramp = (start - lengths) / cache_len  # (N,) 0 at start, -1 at max_len
    out = torch.where(lengths <= start, torch.zeros_like(lengths), ramp)  # (N,)
    return torch.where(lengths > max_len, torch.full_like(lengths, -1.0), out)  # (N,)


def no_length_shaping(
    rewards: torch.Tensor, correct: torch.Tensor, lengths: torch.Tensor, params: Any
) -> torch.Tensor:
    """The rewards unchanged (a new tensor). (P, G) -> (P, G)."""
    return _as_float(rewards).clone()  # (P, G)


def laser_shaping(
    rewards: torch.Tensor, correct: torch.Tensor, lengths: torch.Tensor, params: Any
) -> torch.Tensor:
    """LASER: a step bonus for correct completions no longer than a target length. (P, G) -> (P, G).

    "Learn to Reason Efficiently with Adaptive Length-based Reward Shaping"
    (Liu et al. 2025, arXiv 2505.15612), Sec. 4: the unified form (Eq. 2)
        R^(x, y) = C(y) + lambda(y) * S(y)
    with, for LASER (Table 2), lambda(y) = 1[R(x, y) = 1] (the bonus applies only
    to correct responses) and the step function S(y) = alpha * 1[L(y) <= L_T]:
        shaped = r + coef * 1[correct and length <= target_len].
    The authors' implementation (hkust-nlp/Laser, ``compute_length_reward_larse``,
    ``length_reward_type="reward"``) does exactly this, with alpha = 0.5 and
    L_T in {2048, 4096, 8192}.

    Deviations: none for the fixed-target LASER. The adaptive variants (LASER-D /
    LASER-DE, which pick L_T per difficulty bucket from monitored accuracy) are
    not implemented. ``params``: ``target_len``, ``coef``.
    """
    rewards = _as_float(rewards)  # (P, G)
    bonus = correct.bool() & (lengths <= params.target_len)  # (P, G)
    return rewards + params.coef * bonus.to(rewards.dtype)  # (P, G)


def grpo_lambda_shaping(
    rewards: torch.Tensor, correct: torch.Tensor, lengths: torch.Tensor, params: Any
) -> torch.Tensor:
    """GRPO-lambda: a length penalty only for the groups the policy already solves best.

    "Stable Reinforcement Learning for Efficient Reasoning" (Dai, Liu and Si
    2025, arXiv 2505.18086), Sec. 3 (batch-level top-lambda selection and the
    two reward strategies): rank the batch's groups by correctness ratio (the
    fraction of correct completions); the top lambda fraction get the
    efficiency-first reward
        r_i = 1 - alpha * sigmoid((L_i - mean_correct L) / std_correct L)   if o_i is correct
            = 0                                                             otherwise,
    mean and std over the correct completions of that group; the other groups
    keep the 0/1 outcome reward. This length term is the normalised-length
    penalty of Arora and Zanette (2025, arXiv 2502.04463), not Kimi k1.5's
    min-max length reward (Kimi Team 2025, arXiv 2501.12599, Sec. 2.3.3).
    Here: shaped = r - coef * sigmoid(z) on correct completions of the selected
    groups, r elsewhere (the paper's values for 0/1 rewards).

    ``params``: ``top_fraction`` = lambda, the fraction of groups selected
    (ceil(lambda * P) groups; 0 selects none, 1 all); ``coef`` = alpha.

    Deviations and choices (the equation above was read in a faithful
    secondary transcription of the method section, not in the PDF itself):
      - Ties in correctness ratio are broken by group order (stable sort), so
        the selection is deterministic; the paper does not say.
      - std is the population std of the correct lengths; a group whose correct
        completions all have the same length (including exactly one correct)
        gets z = 0, i.e. a flat penalty of coef / 2, instead of 0 / 0.
      - A selected group with no correct completion is unchanged (nothing to
        penalise).
      - ``top_fraction`` is a fraction of groups, not a correctness-ratio cut-off:
        the paper's selection is relative to the batch.
    """
    rewards = _as_float(rewards)  # (P, G)
    correct = correct.bool()  # (P, G)
    lengths = lengths.to(rewards.dtype)  # (P, G)
    P = rewards.shape[0]
    c = correct.to(rewards.dtype)  # (P, G)
    ratio = c.mean(dim=-1)  # (P,) correctness ratio
    k = min(max(math.ceil(round(params.top_fraction * P, 9)), 0), P)
    order = torch.sort(ratio, descending=True, stable=True).indices  # (P,)
    selected = torch.zeros(P, dtype=torch.bool, device=rewards.device)  # (P,)
    selected[order[:k]] = True
    n_correct = c.sum(dim=-1, keepdim=True).clamp(min=1.0)  # (P, 1)
    mean = (lengths * c).sum(dim=-1, keepdim=True) / n_correct  # (P, 1)
    var = (((lengths - mean) ** 2) * c).sum(dim=-1, keepdim=True) / n_correct  # (P, 1)
    inf = torch.tensor(math.inf, dtype=rewards.dtype, device=rewards.device)
    longest = torch.where(correct, lengths, -inf).amax(dim=-1, keepdim=True)  # (P, 1)
    shortest = torch.where(correct, lengths, inf).amin(dim=-1, keepdim=True)  # (P, 1)
    flat = longest == shortest  # (P, 1) one distinct correct length (or none correct)
    std = torch.where(flat, torch.ones_like(var), var.sqrt())  # (P, 1)
    z = torch.where(flat, torch.zeros_like(lengths), (lengths - mean) / std)  # (P, G)
    penalty = params.coef * torch.sigmoid(z)  # (P, G)
    apply = selected.unsqueeze(-1) & correct  # (P, G)
    return rewards - torch.where(apply, penalty, torch.zeros_like(penalty))  # (P, G)


def s_grpo_shaping(
    rewards: torch.Tensor, correct: torch.Tensor, lengths: torch.Tensor, params: Any
) -> torch.Tensor:
    """S-GRPO: correct answers that stop earlier get exponentially larger rewards. (P, G) -> (P, G).

    "S-GRPO: Early Exit via Reinforcement Learning in Reasoning Models" (Dai,
    Yang and Si 2025, arXiv 2505.07686), Sec. 3 (decaying-reward strategy):
    within a serial group, ordered by exit position,
        r_i = 1 / 2^(N_right - 1)   if answer i is correct,   0 otherwise,
    N_right being the number of correct answers up to and including exit i.
    Here, with base ``params.decay`` (the paper's 1/2):
        shaped_i = r_i * decay^(rank_i - 1) if correct, 0 otherwise,
        rank_i   = 1 + #{j correct in the group : length_j < length_i}.

    Deviations:
      - graft's groups are i.i.d. completions, not early-exit truncations of one
        reasoning chain; the completion length stands in for the exit position.
      - Equal lengths share the better rank (two equally short correct answers
        both get decay^0); a serial group has no ties.
      - The decayed value multiplies the reward instead of replacing it, which
        is the paper's value for 0/1 rewards and keeps other reward parts in
        proportion; wrong answers get 0, as in the paper.
      - The decay formula was recalled from the paper, not re-read for this
        docstring.
    """
    rewards = _as_float(rewards)  # (P, G)
    correct = correct.bool()  # (P, G)
    lengths = lengths.to(rewards.dtype)  # (P, G)
    shorter = lengths.unsqueeze(-2) < lengths.unsqueeze(-1)  # (P, G_i, G_j): L_j < L_i
    earlier = (shorter & correct.unsqueeze(-2)).sum(dim=-1)  # (P, G) correct j before i
    scale = torch.full_like(rewards, float(params.decay)) ** earlier.to(rewards.dtype)  # (P, G)
    return torch.where(correct, rewards * scale, torch.zeros_like(rewards))  # (P, G)


LENGTH_SHAPING: dict[str, LengthShapingFn] = {
    "none": no_length_shaping,
    "laser": laser_shaping,
    "grpo_lambda": grpo_lambda_shaping,
    "s_grpo": s_grpo_shaping,
}
