"""Prompt Curriculum Learning (PCL) with a cheap, online pass-rate predictor.

PCL (Gao et al. 2025, "Prompt Curriculum Learning for Efficient LLM Post-Training",
arXiv 2510.01135, Sec. 4 / Algorithm 1): each step draws a pool of k x m candidate prompts,
predicts each one's expected reward p(x) = E_y[r(x, y)] under the current policy with a value
model V(x), trains on the m prompts whose prediction is nearest a target tau (0.5: for a binary
reward the group's reward variance p(1 - p), hence the policy-gradient signal, is largest there,
Sec. 3), and fits V to the observed mean rewards of those m prompts' rollouts.

Departures from the paper (to stay cheap on a CPU and generalise from rarely seen prompts):
- V is a logistic regression, not a separate language model: V(x) = sigmoid(w . phi(x) + b) on
  phi(x), the policy's own final hidden states of the prompt, mean-pooled over its tokens, from
  one batched no-grad forward of the whole pool (a prefill: a fraction of what sampling costs);
- the pool's features are standardised per dimension over the pool (z-scores, then / sqrt(C)),
  so the predictor does not chase the drift of the hidden states' scale as the policy trains;
- V is fit by a few full-batch gradient steps of the Bernoulli log-loss with the observed pass
  rate as a soft label (convex in (w, b), with the pass rate as its minimiser), where the paper
  regresses V on the observed mean reward.
"""

from __future__ import annotations

import torch

from graft.models.policy import Policy, device_of, left_pad, position_ids_from_mask


@torch.no_grad()
def prompt_features(policy: Policy, prompts: list[list[int]]) -> torch.Tensor:
    """phi(x) for every prompt: final hidden states mean-pooled over the prompt's real tokens,
    standardised per dimension over the batch and scaled by 1/sqrt(C). Returns (N, C) float32."""
    ids, mask = left_pad(prompts, policy.tokenizer.pad_id, device_of(policy))  # (N, T)
    was_training = policy.module.training
    policy.module.eval()
    hidden = policy.hidden(ids, mask, position_ids_from_mask(mask)).float()  # (N, T, C)
    policy.module.train(was_training)
    m = mask.float()[:, :, None]  # (N, T, 1)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # (N, C)
    centred = pooled - pooled.mean(0, keepdim=True)
    scale = centred.pow(2).mean(0, keepdim=True).sqrt() + 1e-6  # (1, C) population std per dim
    return (centred / scale / pooled.shape[1] ** 0.5).cpu()  # (N, C), rows of norm about 1; the predictor is on the CPU


def predict_pass_rate(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """V(x) = sigmoid(w . phi(x) + b) with ``weights`` = [w, b] (C + 1,); features (N, C) -> (N,)."""
    return torch.sigmoid(features @ weights[:-1] + weights[-1])  # (N,)


def fit_predictor(weights: torch.Tensor, features: torch.Tensor, pass_rates: torch.Tensor,
                  lr: float, steps: int) -> torch.Tensor:
    """``steps`` full-batch gradient steps on the mean Bernoulli log-loss
    -[y log V + (1 - y) log(1 - V)] with soft labels y = ``pass_rates`` (N,); returns new weights
    (C + 1,) (the input is not modified). The gradient is ((V - y) phi, V - y) averaged over N."""
    w = weights.clone()
    n = features.shape[0]
    for _ in range(steps):
        residual = predict_pass_rate(w, features) - pass_rates  # (N,)
        grad = torch.cat([features.T @ residual, residual.sum()[None]]) / n  # (C + 1,)
        w = w - lr * grad
    return w


def nearest_to_target(predicted: torch.Tensor, target: float, count: int) -> torch.Tensor:
    """PCL's selection: indices of the ``count`` predictions (N,) nearest ``target`` (ties: lower
    index first), returned in increasing order so that the chosen prompts keep the stream's order."""
    distance = (predicted - target).abs()  # (N,)
    order = torch.sort(distance, stable=True).indices[:count]
    return torch.sort(order).values  # (count,)
