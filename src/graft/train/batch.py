"""Batch: padded tensors and masks ready for a loss.

Both SFT (prompt + demonstration) and RL (prompt + sampled completion) become
the same shape: the prompt left-padded, the completion right-padded, so that
every row's completion starts at column ``prompt_width``. Logits at columns
``prompt_width - 1 ... prompt_width + Tc - 2`` predict the completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from graft.algos.losses import entropy_from_logits, token_logprobs
from graft.models.policy import Policy, position_ids_from_mask
from graft.rollout.sampler import left_pad


@dataclass
class Batch:
    ids: torch.Tensor  # (B, Tp + Tc) long: left-padded prompt, right-padded completion
    attention_mask: torch.Tensor  # (B, Tp + Tc) long, 1 = real token
    targets: torch.Tensor  # (B, Tc) long: completion tokens
    loss_mask: torch.Tensor  # (B, Tc) float, 1 = completion token that counts in the loss
    old_logprobs: torch.Tensor  # (B, Tc) float: logprobs under the sampling policy (0 for SFT)
    advantages: torch.Tensor  # (B, Tc) float per token (0 for SFT and on masked tokens)
    loss_weights: torch.Tensor  # (B, Tc) float: aggregation weights over the WHOLE batch (sum = loss)
    old_values: torch.Tensor  # (B, Tc) float: critic values at scoring time (gae only, else 0)
    returns: torch.Tensor  # (B, Tc) float: value targets (gae only, else 0)
    demo_mask: torch.Tensor  # (B, Tc) float: 1 on loss tokens copied from a demonstration (graft.mix)
    shaped_mask: torch.Tensor  # (B, Tc) float: 1 on tokens taking LUFFY's policy-shaping loss
    prompt_width: int  # Tp

    def __len__(self) -> int:
        return self.ids.shape[0]

    def split(self, size: int) -> list[Batch]:
        """Micro-batches of at most ``size`` rows (views, never copies to mutate)."""
        out = []
        for start in range(0, len(self), size):
            part = {
                f.name: getattr(self, f.name)[start : start + size]
                for f in fields(self)
                if f.name != "prompt_width"
            }
            out.append(Batch(**part, prompt_width=self.prompt_width))
        return out


def make_batch(
    prompts: list[list[int]],
    completions: list[list[int]],
    pad_id: int,
    old_logprobs: list[list[float]] | None = None,
    advantages: list[float] | None = None,
) -> Batch:
    p_ids, p_mask = left_pad(prompts, pad_id)  # (B, Tp)
    width = max(1, max(len(c) for c in completions))
    B = len(completions)
    c_ids = torch.full((B, width), pad_id, dtype=torch.long)
    c_mask = torch.zeros((B, width))
    old = torch.zeros((B, width))
    for i, c in enumerate(completions):
        c_ids[i, : len(c)] = torch.tensor(c, dtype=torch.long)
        c_mask[i, : len(c)] = 1.0
        if old_logprobs is not None:
            old[i, : len(c)] = torch.tensor(old_logprobs[i])
    adv = torch.tensor(advantages if advantages is not None else [0.0] * B, dtype=torch.float32)
    return Batch(
        ids=torch.cat([p_ids, c_ids], dim=1),
        attention_mask=torch.cat([p_mask, c_mask.long()], dim=1),
        targets=c_ids,
        loss_mask=c_mask,
        old_logprobs=old,
        advantages=adv[:, None] * c_mask,  # (B, Tc) one value per sequence, on its tokens
        loss_weights=c_mask / c_mask.sum().clamp(min=1.0),  # token mean over the batch
        old_values=torch.zeros((B, width)),
        returns=torch.zeros((B, width)),
        demo_mask=torch.zeros((B, width)),
        shaped_mask=torch.zeros((B, width)),
        prompt_width=p_ids.shape[1],
    )


def completion_logprobs(
    policy: Policy, batch: Batch, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token logprobs (B, Tc) of the completion under ``policy`` at ``temperature``."""
    mask = batch.attention_mask
    logits, _ = policy.forward(batch.ids, mask, position_ids_from_mask(mask), use_cache=False)  # (B, T, V)
    Tp, Tc = batch.prompt_width, batch.targets.shape[1]
    logits = logits[:, Tp - 1 : Tp - 1 + Tc]  # (B, Tc, V) predicts the completion
    if temperature != 1.0:
        logits = logits / temperature
    logp = token_logprobs(logits, batch.targets)  # (B, Tc)
    entropy = entropy_from_logits(logits) if with_entropy else None
    return logp, entropy
