"""Batch: padded tensors and masks ready for a loss.

Both SFT (prompt + demonstration) and RL (prompt + sampled completion) become
the same shape: the prompt left-padded, the completion right-padded, so that
every row's completion starts at column ``prompt_width``. Logits at columns
``prompt_width - 1 ... prompt_width + Tc - 2`` predict the completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch.utils.checkpoint import checkpoint

from graft.algos.losses import entropy_from_logits, token_logprobs
from graft.algos.lp_reg import minp_proxy_logprobs
from graft.models.policy import Policy, left_pad, position_ids_from_mask
from graft.train.fused_head import fused_token_logprobs


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
    policy_shaping_mask: torch.Tensor  # (B, Tc) float: 1 on tokens taking LUFFY's policy-shaping loss
    prompt_width: int  # Tp
    ref_logprobs: torch.Tensor | None = None  # (B, Tc) float: the KL reference's logprobs (KL on)
    proxy_logprobs: torch.Tensor | None = None  # (B, Tc) float: Lp-Reg's min-p proxy (-inf: filtered)
    lp_reg_mask: torch.Tensor | None = None  # (B, Tc) bool: the tokens Lp-Reg regularises

    def __len__(self) -> int:
        return self.ids.shape[0]

    def _take(self, rows: slice | torch.Tensor) -> Batch:
        """Every tensor field indexed by ``rows`` (a slice: views; an index tensor: gathered copies)."""
        part = {
            f.name: getattr(self, f.name)[rows]
            for f in fields(self)
            if f.name != "prompt_width" and getattr(self, f.name) is not None
        }
        return Batch(**part, prompt_width=self.prompt_width)

    def split(self, size: int) -> list[Batch]:
        """Micro-batches of at most ``size`` rows (views, never copies to mutate)."""
        return [self._take(slice(start, start + size)) for start in range(0, len(self), size)]

    def rows(self, index: torch.Tensor) -> Batch:
        """The sub-batch of rows ``index`` ((b,) long), same columns; its ``loss_weights`` stay the
        whole batch's, so losses summed over it are the whole batch's terms of those rows."""
        return self._take(index)

    def split_by_length(self, size: int) -> list[Batch]:
        """Length-aware micro-batches (issue 7): rows sorted by real length, longest first, cut
        into groups of at most ``size``, each trimmed to its own longest prompt and completion,
        so short rows are not padded to the batch's longest. New tensors (gathered rows).

        The loss is unchanged because ``loss_weights`` are whole-batch weights and trimmed
        columns are padding (weight 0); values agree with ``split`` up to float rounding."""
        Tp = self.prompt_width
        real_prompt = self.attention_mask[:, :Tp].sum(-1)  # (B,)
        real_completion = self.attention_mask[:, Tp:].sum(-1)  # (B,)
        order = torch.argsort(real_prompt + real_completion, descending=True, stable=True)  # (B,)
        out = []
        for start in range(0, len(self), size):
            rows = order[start : start + size]  # (b,)
            tp = max(1, int(real_prompt[rows].max()))  # >= 1: logits at column tp - 1 predict token 1
            tc = max(1, int(real_completion[rows].max()))
            part = {
                f.name: getattr(self, f.name)[rows][:, :tc]  # (b, tc)
                for f in fields(self)
                if f.name not in ("prompt_width", "ids", "attention_mask") and getattr(self, f.name) is not None
            }
            cols = slice(Tp - tp, Tp + tc)
            out.append(Batch(ids=self.ids[rows][:, cols], attention_mask=self.attention_mask[rows][:, cols],
                             **part, prompt_width=tp))
        return out


def padding_fraction(parts: list[Batch]) -> float:
    """Share of the token slots computed for ``parts`` that are padding."""
    slots = sum(mb.attention_mask.numel() for mb in parts)
    real = sum(float(mb.attention_mask.sum()) for mb in parts)
    return 1.0 - real / max(slots, 1)


def make_batch(
    prompts: list[list[int]],
    completions: list[list[int]],
    pad_id: int,
    old_logprobs: list[list[float]] | None = None,
    advantages: list[float] | None = None,
    device: torch.device | str = "cpu",
) -> Batch:
    """The Batch of ``prompts`` + ``completions`` on ``device`` (filled on the CPU row by row, then
    moved: one copy per tensor)."""
    p_ids, p_mask = left_pad(prompts, pad_id)  # (B, Tp)
    width = max(1, max(len(c) for c in completions))
    B = len(completions)
    cpu = {"device": "cpu"}
    c_ids = torch.full((B, width), pad_id, dtype=torch.long, **cpu)
    c_mask = torch.zeros((B, width), **cpu)
    old = torch.zeros((B, width), **cpu)
    for i, c in enumerate(completions):
        c_ids[i, : len(c)] = torch.tensor(c, dtype=torch.long, **cpu)
        c_mask[i, : len(c)] = 1.0
        if old_logprobs is not None:
            old[i, : len(c)] = torch.tensor(old_logprobs[i], **cpu)
    adv = torch.tensor(advantages if advantages is not None else [0.0] * B, dtype=torch.float32, **cpu)
    p_ids, p_mask, c_ids, c_mask, old, adv = (x.to(device) for x in (p_ids, p_mask, c_ids, c_mask, old, adv))
    zeros = torch.zeros((B, width), device=device)
    return Batch(
        ids=torch.cat([p_ids, c_ids], dim=1),
        attention_mask=torch.cat([p_mask, c_mask.long()], dim=1),
        targets=c_ids,
        loss_mask=c_mask,
        old_logprobs=old,
        advantages=adv[:, None] * c_mask,  # (B, Tc) one value per sequence, on its tokens
        loss_weights=c_mask / c_mask.sum().clamp(min=1.0),  # token mean over the batch
        old_values=zeros,
        returns=zeros.clone(),
        demo_mask=zeros.clone(),
        policy_shaping_mask=zeros.clone(),
        prompt_width=p_ids.shape[1],
    )


def completion_logprobs(
    policy: Policy, batch: Batch, temperature: float = 1.0, with_entropy: bool = False, chunk: int = 0,
    fused: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token logprobs (B, Tc) of the completion under ``policy`` at ``temperature``
    (and the per-token entropy (B, Tc) when ``with_entropy``).

    ``chunk`` > 0 is the memory-lean path (issue 7): only the completion positions' final hidden
    states go through the LM head, ``chunk`` tokens at a time, and each chunk's logits are
    recomputed in backward (activation checkpointing) instead of kept; so no (B, T, V) float32
    tensor exists, only one (chunk, V) at a time. Same values as ``chunk=0`` up to float
    rounding (different matmul shapes).

    ``fused`` (with ``chunk`` > 0): the head, log-probability and entropy of each chunk are one
    autograd function with closed-form gradients (``graft.train.fused_head``) instead of
    checkpointed autograd ops: fewer passes over each (chunk, V) block and no recorded graph.
    Needs a plain linear head (``policy.head_weight()``); other heads take the checkpoint path.
    Padding columns of the completion are skipped: their log-prob and entropy are 0 (every loss
    masks them out), not the value of a pad token."""
    mask = batch.attention_mask
    Tp, Tc = batch.prompt_width, batch.targets.shape[1]
    if chunk <= 0:
        logits, _ = policy.forward(batch.ids, mask, position_ids_from_mask(mask), use_cache=False)  # (B, T, V)
        logits = logits[:, Tp - 1 : Tp - 1 + Tc]  # (B, Tc, V) predicts the completion
        if temperature != 1.0:
            logits = logits / temperature
        logp = token_logprobs(logits, batch.targets)  # (B, Tc)
        entropy = entropy_from_logits(logits) if with_entropy else None
        return logp, entropy
    hidden = policy.hidden(batch.ids, mask, position_ids_from_mask(mask))  # (B, T, C)
    hidden = hidden[:, Tp - 1 : Tp - 1 + Tc]  # (B, Tc, C) predicts the completion
    B, _, C = hidden.shape
    flat_h, flat_t = hidden.reshape(B * Tc, C), batch.targets.reshape(B * Tc)  # (N, C), (N,)
    weight = policy.head_weight() if fused and hasattr(policy, "head_weight") else None  # (V, C)
    if weight is not None:  # real completion tokens only: padding columns get 0 (always masked out)
        real = mask[:, Tp:].reshape(B * Tc).nonzero()[:, 0]  # (n,)
        lp, ent = fused_token_logprobs(flat_h[real], weight, flat_t[real], temperature, chunk)  # (n,) each
        logp = flat_h.new_zeros(B * Tc).index_put((real,), lp).view(B, Tc)  # (B, Tc)
        entropy = flat_h.new_zeros(B * Tc).index_put((real,), ent).view(B, Tc) if with_entropy else None
        return logp, entropy

    def head(h: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = policy.logits_from_hidden(h)  # (n, V)
        if temperature != 1.0:
            logits = logits / temperature
        logp = token_logprobs(logits[None], t[None])[0]  # (n,)
        ent = entropy_from_logits(logits[None])[0] if with_entropy else torch.zeros_like(logp)  # (n,)
        return logp, ent

    recompute = torch.is_grad_enabled() and flat_h.requires_grad
    parts = [
        checkpoint(head, flat_h[s : s + chunk], flat_t[s : s + chunk], use_reentrant=False)
        if recompute else head(flat_h[s : s + chunk], flat_t[s : s + chunk])
        for s in range(0, B * Tc, chunk)
    ]
    logp = torch.cat([p[0] for p in parts]).view(B, Tc)  # (B, Tc)
    entropy = torch.cat([p[1] for p in parts]).view(B, Tc) if with_entropy else None  # (B, Tc)
    return logp, entropy


@torch.no_grad()
def completion_proxy_logprobs(policy: Policy, batch: Batch, temperature: float, min_p: float,
                              chunk: int = 1024) -> torch.Tensor:
    """Lp-Reg's min-p proxy log-probs (B, Tc) of the completion tokens under ``policy`` at
    ``temperature`` (``graft.algos.lp_reg.minp_proxy_logprobs``): like ``completion_logprobs``'
    lean path, only the completion positions' hidden states go through the head, ``chunk`` tokens
    at a time, so no (B, T, V) tensor exists. Padding columns are 0."""
    mask = batch.attention_mask
    Tp, Tc = batch.prompt_width, batch.targets.shape[1]
    hidden = policy.hidden(batch.ids, mask, position_ids_from_mask(mask))[:, Tp - 1 : Tp - 1 + Tc]  # (B, Tc, C)
    B, _, C = hidden.shape
    flat_h, flat_t = hidden.reshape(B * Tc, C), batch.targets.reshape(B * Tc)  # (N, C), (N,)
    parts = [minp_proxy_logprobs(policy.logits_from_hidden(flat_h[s : s + chunk])[None] / temperature,
                                 flat_t[s : s + chunk][None], min_p)[0] for s in range(0, B * Tc, chunk)]
    proxy = torch.cat(parts).view(B, Tc)  # (B, Tc)
    return torch.where(mask[:, Tp:] > 0, proxy, torch.zeros_like(proxy))
