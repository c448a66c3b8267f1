"""Batched sampling with a key/value cache.

The sampler knows token ids only: prompts in, completions out. Prompts are
left-padded into one batch, prefilled once, then decoded one token per step
for every row until each row has emitted EOS or reached ``max_new_tokens``.

Two savings, both exact (issue 7), each switchable:

- ``share_prefill``: with ``repeats`` = G completions per prompt, the P distinct
  prompts are prefilled once and their cache rows repeated G times, instead of
  prefilling P * G copies of the same prompts.
- ``compact``: a row that has finished (EOS or ``max_new_tokens``) leaves the
  decode batch and the cache, so no compute is spent on padding after EOS.

Randomness is drawn per *original* row, independent of which rows are still
decoding: every step draws one uniform number for each of the B rows (from the
one ``generator``) and a row samples its token by inverting its own CDF at its
number. So the sampled tokens do not depend on ``compact`` or ``share_prefill``;
they are a deterministic function of the generator's state. (Logits of a row can
still differ in the last float bits when the batch has a different shape, which
can flip a token only on a near-exact tie.)

Log-probabilities are those of the policy at the sampling temperature,
``log_softmax(logits / T)``, taken over the full vocabulary (not the top-p
truncated one), as verl and TRL do; the loss recomputes them the same way so
that importance ratios start at 1. Greedy decoding (``temperature=0``) records
``log_softmax(logits)``.
"""

from __future__ import annotations

import torch

from graft.models.policy import Policy, left_pad, position_ids_from_mask
from graft.rollout.types import Group, Rollout  # noqa: F401 (re-exported)


def tempered_logprobs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log_softmax(logits / T)`` in float32, (B, V); the policy a token is sampled from."""
    logits = logits.float()
    # x / 1.0 == x exactly, so skipping the division at temperature 1 changes no bit (one pass fewer)
    return torch.log_softmax(logits if temperature == 1.0 else logits / temperature, -1)


def pick_tokens(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
    uniform: torch.Tensor | None = None,
    logprobs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose one token per row; return (tokens (B,), logprobs (B,)) under the tempered policy.

    Sampling inverts each row's CDF at ``uniform`` (B,) in [0, 1); without it, B numbers are
    drawn from ``generator``. A row's token depends only on its logits and its own number.
    ``logprobs``: ``tempered_logprobs(logits, temperature)`` when the caller already has it."""
    logits = logits.float()  # (B, V)
    if temperature == 0:
        tokens = logits.argmax(-1)
        return tokens, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]
    if logprobs is None:
        logprobs = tempered_logprobs(logits, temperature)  # (B, V)
    probs = logprobs.exp()
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    if uniform is None:
        uniform = torch.rand(probs.shape[0], generator=generator)  # (B,)
    cdf = probs.cumsum(-1)  # (B, V)
    # first token whose cumulative mass exceeds u * total: a zero-probability token never is
    target = (uniform.to(cdf.dtype) * cdf[:, -1])[:, None]  # (B, 1)
    tokens = torch.searchsorted(cdf, target, right=True)[:, 0]  # (B,)
    # rounding guard: a row that lands past the end or on a zero-mass token takes the last token
    # with mass instead. Any other row's token has mass, so it is <= that last token already: the
    # guard's second cumsum over (b, V) runs only on the rows that need it (same tokens).
    V = probs.shape[-1]
    off = (tokens >= V) | (probs.gather(-1, tokens.clamp(max=V - 1)[:, None])[:, 0] == 0)  # (B,)
    if bool(off.any()):
        last = (probs[off] > 0).long().cumsum(-1).argmax(-1)  # (b',) last token with mass
        tokens = tokens.clone()
        tokens[off] = torch.minimum(tokens[off], last)
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
    repeats: int | list[int] = 1,
    share_prefill: bool = True,
    compact: bool = True,
    budgets: list[int] | None = None,
    groups: list[int] | None = None,
    stop_after_groups: int = 0,
) -> list[Rollout]:
    """Complete each prompt ``repeats`` times (prompt-major order: all of prompt 0's, then 1's ...).

    ``share_prefill``: prefill each distinct prompt once and copy its cache rows ``repeats``
    times (else prefill every copy). ``compact``: drop finished rows from the decode batch and
    the cache (else they keep decoding a masked pad token). Neither changes the result.

    For partial rollouts (``graft.rollout.partial``), all optional: ``repeats`` may be a count
    per prompt; ``budgets`` (B,) caps each row's new tokens (<= ``max_new_tokens``; a row that
    reaches its cap ends with 'length'); ``groups`` (B,) names each row's group and, with
    ``stop_after_groups`` = K > 0, decoding stops as soon as K groups have all their rows
    finished: rows still running then end with finish_reason 'aborted'."""
    tok = policy.tokenizer
    counts = [repeats] * len(prompts) if isinstance(repeats, int) else list(repeats)
    rows = [p for p, n in zip(prompts, counts) for _ in range(n)]  # the B = sum(counts) rows, in order
    if share_prefill and max(counts) > 1:
        ids, mask = left_pad(prompts, tok.pad_id)  # (P, Tp)
        logits, cache = policy.forward(ids, mask, position_ids_from_mask(mask))
        expand = torch.arange(len(prompts)).repeat_interleave(torch.tensor(counts))  # (B,) row -> prompt
        cache = policy.select_cache_rows(cache, expand)
        mask, next_logits = mask[expand], logits[expand, -1]  # (B, Tp), (B, V)
    else:
        ids, mask = left_pad(rows, tok.pad_id)  # (B, Tp)
        logits, cache = policy.forward(ids, mask, position_ids_from_mask(mask))
        next_logits = logits[:, -1]  # (B, V)
    B = len(rows)
    positions = mask.sum(-1)  # (B,) position of the next token
    out_tokens = torch.full((B, max_new_tokens), tok.pad_id, dtype=torch.long)
    out_logp = torch.zeros((B, max_new_tokens))
    lengths = torch.zeros(B, dtype=torch.long)
    live = torch.arange(B)  # (b,) original row of each row still in the decode batch
    done = torch.zeros(B, dtype=torch.bool)  # (b,) finished rows among them (compact: none)
    cap = None if budgets is None else torch.tensor(budgets, dtype=torch.long)  # (B,) per-row budget
    if stop_after_groups:
        group_of = torch.tensor(groups, dtype=torch.long)  # (B,)
        present = torch.unique(group_of)  # the group ids in this batch, once
        finished = torch.zeros(B, dtype=torch.bool)  # (B,) by original row
    for t in range(max_new_tokens):
        # one number per original row, every step: a row's draw never depends on the others
        uniform = None if temperature == 0 else torch.rand(B, generator=generator)[live]  # (b,)
        tokens, logp = pick_tokens(next_logits, temperature, top_p, generator, uniform)  # (b,)
        tokens = tokens.masked_fill(done, tok.pad_id)
        out_tokens[live, t] = tokens
        out_logp[live, t] = logp.masked_fill(done, 0.0)
        lengths[live] += (~done).long()
        done = done | (tokens == tok.eos_id)
        if cap is not None:
            done = done | (lengths[live] >= cap[live])
        if stop_after_groups:  # a group is complete when none of its rows is still running
            finished[live] = done
            running = torch.zeros(int(group_of.max()) + 1).index_add_(0, group_of, (~finished).float())
            complete = int((running[present] == 0).sum())
            if complete >= stop_after_groups:
                break
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        if compact and bool(done.any()):  # finished rows leave the batch and the cache
            keep = (~done).nonzero()[:, 0]  # (b',)
            cache = policy.select_cache_rows(cache, keep)
            live, tokens, mask, positions = live[keep], tokens[keep], mask[keep], positions[keep]
            done = done[keep]
        # without compaction finished rows keep decoding a pad token whose key is masked out
        mask = torch.cat([mask, (~done).long()[:, None]], dim=1)  # (b, Tp + t + 1)
        logits, cache = policy.forward(tokens[:, None], mask, positions[:, None], cache)
        next_logits = logits[:, -1]
        positions = positions + 1

    rollouts = []
    for i in range(B):
        n = int(lengths[i])
        completion = out_tokens[i, :n].tolist()
        stopped = n > 0 and completion[-1] == tok.eos_id
        reason = "stop" if stopped else "length"
        if not stopped and (cap is not None or stop_after_groups):
            limit = max_new_tokens if cap is None else int(cap[i])
            reason = "length" if n >= limit else "aborted"
        rollouts.append(
            Rollout(
                prompt_ids=list(rows[i]),
                completion_ids=completion,
                logprobs=out_logp[i, :n].tolist(),
                policy_version=policy_version,
                finish_reason=reason,
                text=tok.decode(completion),
            )
        )
    return rollouts
