"""Batched sampling with a key/value cache.

The sampler knows token ids only: prompts in, completions out. Prompts are
left-padded into one batch, prefilled once, then decoded one token per step
for every row until each row has emitted EOS or reached ``max_new_tokens``.

Log-probabilities are those of the policy at the sampling temperature,
``log_softmax(logits / T)``, taken over the full vocabulary (not the top-p
truncated one), as verl and TRL do; the loss recomputes them the same way so
that importance ratios start at 1. Greedy decoding (``temperature=0``) records
``log_softmax(logits)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from graft.models.policy import Policy, position_ids_from_mask


@dataclass
class Rollout:
    """One sampled completion and everything the update needs about it.

    prompt_ids:      prompt token ids (no padding).
    completion_ids:  sampled token ids, EOS included when the row stopped on it.
    logprobs:        per-token log-probabilities of completion_ids under the sampling policy.
    policy_version:  the training step whose weights sampled it.
    finish_reason:   'stop' (emitted EOS) or 'length' (hit max_new_tokens).
    text:            decoded completion (specials dropped).
    reward, correct, parts: filled in by the verifier.
    demo_len:        leading completion tokens copied from a demonstration rather than sampled
                     (a hint prefix, an injected demonstration; ``graft.mix``); their behaviour
                     probability is taken as 1, so their ``logprobs`` are 0.
    shaped:          those tokens take LUFFY's policy-shaping loss instead of the ratio loss.
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    policy_version: int
    finish_reason: str
    text: str = ""
    reward: float = 0.0
    correct: bool = False
    parts: dict[str, float] = field(default_factory=dict)
    demo_len: int = 0
    shaped: bool = False


Group = list[Rollout]
"""The rollouts that share one prompt (GRPO's unit)."""


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad to a (B, T) id tensor and its (B, T) attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids, mask


def pick_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose one token per row; return (tokens (B,), logprobs (B,)) under the tempered policy."""
    logits = logits.float()  # (B, V)
    if temperature == 0:
        tokens = logits.argmax(-1)
        return tokens, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]
    logprobs = torch.log_softmax(logits / temperature, -1)  # (B, V)
    probs = logprobs.exp()
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    tokens = torch.multinomial(probs, 1, generator=generator)[:, 0]  # (B,)
    return tokens, logprobs.gather(-1, tokens[:, None])[:, 0]


@torch.no_grad()
def sample(
    policy: Policy,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    policy_version: int = 0,
) -> list[Rollout]:
    """Complete each prompt once (repeat a prompt in ``prompts`` to get a group)."""
    tok = policy.tokenizer
    ids, mask = left_pad(prompts, tok.pad_id)  # (B, Tp)
    B = ids.shape[0]
    logits, cache = policy.forward(ids, mask, position_ids_from_mask(mask))
    next_logits = logits[:, -1]  # (B, V)
    positions = mask.sum(-1)  # (B,) position of the next token
    out_tokens = torch.full((B, max_new_tokens), tok.pad_id, dtype=torch.long)
    out_logp = torch.zeros((B, max_new_tokens))
    lengths = torch.zeros(B, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    for t in range(max_new_tokens):
        tokens, logp = pick_tokens(next_logits, temperature, top_p, generator)
        tokens = tokens.masked_fill(done, tok.pad_id)
        out_tokens[:, t] = tokens
        out_logp[:, t] = logp.masked_fill(done, 0.0)
        lengths += (~done).long()
        done = done | (tokens == tok.eos_id)
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        # finished rows keep decoding a pad token whose key is masked out (compaction: issue 7)
        mask = torch.cat([mask, (~done).long()[:, None]], dim=1)  # (B, Tp + t + 1)
        logits, cache = policy.forward(tokens[:, None], mask, positions[:, None], cache)
        next_logits = logits[:, -1]
        positions = positions + 1

    rollouts = []
    for i in range(B):
        n = int(lengths[i])
        completion = out_tokens[i, :n].tolist()
        stopped = n > 0 and completion[-1] == tok.eos_id
        rollouts.append(
            Rollout(
                prompt_ids=list(prompts[i]),
                completion_ids=completion,
                logprobs=out_logp[i, :n].tolist(),
                policy_version=policy_version,
                finish_reason="stop" if stopped else "length",
                text=tok.decode(completion),
            )
        )
    return rollouts
