"""Difficulty Adaptive Rollout Sampling (DARS): extra rollouts for prompts that turned out hard.

DARS (Yang et al. 2025, "Depth-Breadth Synergy in RLVR", arXiv 2508.13755, Sec. 3-4): GRPO's
cumulative advantage (the sum of |A_i| over a prompt's rollouts) is largest for prompts of
accuracy 0.5 and shrinks towards 0 and 1, so hard prompts weigh little in the update. After a
first round of N rollouts per prompt, DARS samples more rollouts for the prompts whose observed
accuracy is low, by a re-balancing schedule. Its Equal-Treatment schedule gives a hard prompt
enough extra rollouts that its cumulative advantage matches that of an accuracy-0.5 prompt.

With binary rewards, accuracy a and GRPO's A_i = (r_i - a) / sqrt(a (1 - a)) (population std),
the cumulative advantage of n rollouts is n * 2 sqrt(a (1 - a)); at a = 0.5 it is n. Equal
treatment of a prompt with N rollouts therefore needs (derived here from that statement; the
paper's own equation was not seen)

    Delta n(a) = N * (1 / (2 sqrt(a (1 - a))) - 1)    extra rollouts.

Departures from the paper:
- extra rollouts come in whole groups of N = rl.num_generations, and each extra group is its own
  GRPO group (its own mean and std), so every advantage estimator, the batch and the loss
  aggregation keep working on equal-sized (P, N) groups unchanged; the paper pools a prompt's
  rollouts into one group. Equal groups were chosen over unequal ones because several estimators
  (lite_ppo, batch-normalised ones) take whole (P, N) tensors;
- an observed accuracy of 0 (where Delta n is infinite) is taken as 1 / (2N) ("less than one
  success in N"), and a per-step budget caps the total; the budget goes round-robin, one group
  at a time, to the hard prompts in order of increasing accuracy, until each has its need or the
  budget is spent.
"""

from __future__ import annotations

import math

import torch


def equal_treatment_need(pass_rates: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Delta n(a) = N (1 / (2 sqrt(a (1 - a))) - 1) extra rollouts per prompt, a = pass rate (P,)
    clamped to [1 / (2N), 1 - 1 / (2N)]. Returns (P,) float (0 at a = 0.5, negative never)."""
    n = float(num_generations)
    a = pass_rates.double().clamp(1.0 / (2 * n), 1.0 - 1.0 / (2 * n))  # (P,)
    return (n * (0.5 / (a * (1 - a)).sqrt() - 1.0)).clamp(min=0.0)  # (P,)


def dars_allocation(pass_rates: torch.Tensor, num_generations: int, budget_groups: int,
                    threshold: float) -> torch.Tensor:
    """Extra groups (of ``num_generations`` rollouts) per prompt: (P,) long.

    A prompt is hard when its pass rate (P,) is below ``threshold``; it needs
    ceil(Delta n / N) groups (``equal_treatment_need``). ``budget_groups`` groups are handed out
    one per hard prompt per round, hardest first (ties: lower index), until needs or budget run out.
    """
    need_rollouts = equal_treatment_need(pass_rates, num_generations)  # (P,)
    need = [math.ceil(x / num_generations - 1e-9) if hard else 0
            for x, hard in zip(need_rollouts.tolist(), (pass_rates < threshold).tolist())]
    order = torch.sort(pass_rates, stable=True).indices.tolist()  # hardest first
    alloc = [0] * len(need)
    left = budget_groups
    while left > 0:
        round_start = left
        for i in order:
            if left > 0 and alloc[i] < need[i]:
                alloc[i] += 1
                left -= 1
        if left == round_start:  # every hard prompt has what it needs
            break
    return torch.tensor(alloc, dtype=torch.long)
